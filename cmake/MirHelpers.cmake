# Small helpers so that a module's CMakeLists.txt is a few lines.
#
#   mir_add_library(NAME SOURCES a.c b.c DEPS other_lib ...)
#   mir_add_executable(NAME SOURCES main.c DEPS lib ...)
#   mir_add_test(NAME SOURCES foo_test.cc DEPS lib ... [LABELS unit] [TIMEOUT 120]
#                [PROPERTIES ctest-property value ...])
#   mir_add_fuzzer(NAME SOURCES fuzz_x.c DEPS lib ... [INCLUDES dir ...] [CORPUS seed_dir]
#                  [RUNS 2000])
#     with MIR_FUZZ: the libFuzzer binary NAME; otherwise NAME_replay, the same target linked with
#     tests/fuzz/replay_main.c, run by ctest (label fuzz-replay) on the seeds and RUNS inputs
#   mir_proto_library(NAME PROTOS a.proto b.proto DEPS other_proto_lib)
#   mir_test_program(NAME): puts an executable that only tests use in build/tests/
#
# Programs (what `cmake --install` installs, the samples, the benchmarks) land in build/bin/;
# test binaries, fuzz targets and the helpers only tests run land in build/tests/, so that bin/
# lists what a user runs.
# Warnings are errors in our own code; generated protobuf-c code gets the same flags except the
# ones it cannot meet.

set(MIR_C_WARNINGS -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes)
set(MIR_CXX_WARNINGS -Wall -Wextra -Werror -Wshadow)

set(MIR_SANITIZE_FLAGS "")
if(MIR_ASAN)
  list(APPEND MIR_SANITIZE_FLAGS -fsanitize=address -fno-omit-frame-pointer)
endif()
if(MIR_UBSAN)
  list(APPEND MIR_SANITIZE_FLAGS -fsanitize=undefined -fno-sanitize-recover=undefined)
endif()
if(MIR_TSAN)
  list(APPEND MIR_SANITIZE_FLAGS -fsanitize=thread)
endif()
if(MIR_FUZZ)
  list(APPEND MIR_SANITIZE_FLAGS -fsanitize=fuzzer-no-link)
endif()
if(MIR_COVERAGE)
  list(APPEND MIR_SANITIZE_FLAGS --coverage)
endif()
if(MIR_SANITIZE_FLAGS)
  add_compile_options(${MIR_SANITIZE_FLAGS})
  add_link_options(${MIR_SANITIZE_FLAGS})
endif()

set(MIR_TESTS_OUTPUT_DIR ${CMAKE_BINARY_DIR}/tests)

function(mir_test_program target)
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${MIR_TESTS_OUTPUT_DIR})
endfunction()

function(_mir_common target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:${MIR_C_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CXX>:${MIR_CXX_WARNINGS}>)
  target_compile_definitions(${target} PRIVATE _GNU_SOURCE)
endfunction()

function(mir_add_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  _mir_common(${name})
  target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR}/server/include
                                     PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
endfunction()

function(mir_add_executable name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  _mir_common(${name})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${A_DEPS})
endfunction()

function(mir_add_test name)
  if(NOT MIR_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;DEPS;LABELS;PROPERTIES" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  _mir_common(${name})
  mir_test_program(${name})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${A_DEPS} GTest::gtest GTest::gtest_main Threads::Threads)
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
    PROPERTIES TIMEOUT ${A_TIMEOUT} LABELS "${A_LABELS}" ${A_PROPERTIES}
    DISCOVERY_TIMEOUT 60)
endfunction()

# With MIR_FUZZ, `make fuzz` finds every fuzzer and its seed folder in fuzzers/ of the build
# folder: one file per fuzzer, named after it, holding the seed folder (or nothing).
if(MIR_FUZZ)
  file(REMOVE_RECURSE ${CMAKE_BINARY_DIR}/fuzzers)
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzzers)
endif()

function(mir_add_fuzzer name)
  cmake_parse_arguments(A "" "CORPUS;RUNS" "SOURCES;DEPS;INCLUDES" ${ARGN})
  set(corpus "")
  if(A_CORPUS)
    get_filename_component(corpus ${A_CORPUS} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  if(MIR_FUZZ)
    add_executable(${name} ${A_SOURCES})
    _mir_common(${name})
    mir_test_program(${name})
    target_include_directories(${name} PRIVATE ${A_INCLUDES})
    target_link_libraries(${name} PRIVATE ${A_DEPS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    file(WRITE ${CMAKE_BINARY_DIR}/fuzzers/${name} "${corpus}")
    return()
  endif()
  # Without libFuzzer the target still meets hostile input in every test run: the replay driver
  # feeds it its seeds and pseudo-random inputs from a fixed seed (tests/fuzz/replay_main.c).
  if(NOT MIR_BUILD_TESTS)
    return()
  endif()
  if(NOT A_RUNS)
    set(A_RUNS 2000)
  endif()
  set(replay ${name}_replay)
  add_executable(${replay} ${A_SOURCES} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
  _mir_common(${replay})
  mir_test_program(${replay})
  target_include_directories(${replay} PRIVATE ${A_INCLUDES})
  target_link_libraries(${replay} PRIVATE ${A_DEPS})
  add_test(NAME ${replay} COMMAND ${replay} --runs ${A_RUNS} ${corpus}
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(${replay} PROPERTIES LABELS fuzz-replay TIMEOUT 120)
endfunction()

# Generates protobuf-c code at build time from .proto files (never committed). Imports are
# resolved relative to ${CMAKE_SOURCE_DIR}/proto, so a file includes "mir/event.proto".
function(mir_proto_library name)
  cmake_parse_arguments(A "" "" "PROTOS;DEPS" ${ARGN})
  set(out_dir ${CMAKE_BINARY_DIR}/proto-gen)
  set(srcs "")
  foreach(p ${A_PROTOS})
    get_filename_component(abs ${p} ABSOLUTE)
    file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR}/proto ${abs})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    set(c ${out_dir}/${base}.pb-c.c)
    set(h ${out_dir}/${base}.pb-c.h)
    add_custom_command(
      OUTPUT ${c} ${h}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND ${PROTOC_C} --proto_path=${CMAKE_SOURCE_DIR}/proto --c_out=${out_dir} ${rel}
      DEPENDS ${abs}
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/proto
      COMMENT "protoc-c ${rel}")
    list(APPEND srcs ${c})
  endforeach()
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${out_dir})
  target_link_libraries(${name} PUBLIC PkgConfig::PROTOBUF_C ${A_DEPS})
endfunction()

# Adds every immediate subdirectory that has a CMakeLists.txt, so that a new module folder joins
# the build without editing its parent.
function(mir_add_subdirectories)
  file(GLOB children LIST_DIRECTORIES true RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
       ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT children)
  foreach(c ${children})
    if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/${c} AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${c}/CMakeLists.txt)
      add_subdirectory(${c})
    endif()
  endforeach()
endfunction()
