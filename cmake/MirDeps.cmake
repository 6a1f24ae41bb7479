# Finds the Debian packages of DESIGN.md section 2. Each dependency becomes an imported target so
# that a module links exactly the seams it owns (mir::grpc only in net, mir::rocksdb only in store,
# mir::boringssl only in crypto).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(PROTOBUF_C REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(GRPC IMPORTED_TARGET grpc)
# The Abseil that Debian's gRPC is built on (libabsl-dev, a dependency of libgrpc-dev): our
# programs switch off its mutex deadlock detection (server/include/mir/grpc_tune.h).
pkg_check_modules(ABSL_SYNC IMPORTED_TARGET absl_synchronization)
pkg_check_modules(ROCKSDB IMPORTED_TARGET rocksdb)
pkg_check_modules(MHD IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(PROFILER IMPORTED_TARGET libprofiler)

find_program(PROTOC_C protoc-c REQUIRED)

# BoringSSL from android-libboringssl-dev: headers under /usr/include/android, the library in the
# multiarch android folder. It shares symbol names with the OpenSSL that gRPC links, so it is
# linked with an rpath into the crypto seam only, never into a target that also includes gRPC.
if(CMAKE_LIBRARY_ARCHITECTURE)
  set(_mir_android_libdir /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android)
else()
  set(_mir_android_libdir /usr/lib/x86_64-linux-gnu/android)
endif()
find_path(BORINGSSL_INCLUDE_DIR openssl/curve25519.h PATHS /usr/include/android NO_DEFAULT_PATH)
find_library(BORINGSSL_CRYPTO_LIBRARY NAMES crypto PATHS ${_mir_android_libdir} NO_DEFAULT_PATH)
if(BORINGSSL_INCLUDE_DIR AND BORINGSSL_CRYPTO_LIBRARY)
  add_library(mir_boringssl INTERFACE)
  target_include_directories(mir_boringssl SYSTEM INTERFACE ${BORINGSSL_INCLUDE_DIR})
  target_link_libraries(mir_boringssl INTERFACE ${BORINGSSL_CRYPTO_LIBRARY})
  target_link_options(mir_boringssl INTERFACE "LINKER:-rpath,${_mir_android_libdir}")
  add_library(mir::boringssl ALIAS mir_boringssl)
  message(STATUS "BoringSSL: ${BORINGSSL_CRYPTO_LIBRARY}")
else()
  message(STATUS "BoringSSL not found (android-libboringssl-dev); the crypto module is skipped")
endif()

if(MIR_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
