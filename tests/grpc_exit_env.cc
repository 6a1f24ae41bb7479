// At the end of a test program that used gRPC, waits (bounded) for gRPC's threads to finish.
// Linked into the SDK's client test and the gRPC transport test.
//
// gRPC 1.51's last grpc_shutdown (reached through mir_client_close or a transport's stop) returns
// while its threads are still winding down; a program that exits meanwhile has OpenSSL's exit
// handler free what those threads still use, and LeakSanitizer may report OpenSSL objects they were
// about to free (an intermittent report of allocations inside libcrypto after TLS handshakes).
// mir-replica waits the same way before it exits (server/replica/main.c).
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace {

// Threads of this process other than the calling one, or -1 if /proc cannot be read.
int OtherThreads() {
  DIR *d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = -1;  // the caller
  while (const struct dirent *e = readdir(d)) {
    if (e->d_name[0] != '.') n++;
  }
  closedir(d);
  return n;
}

class WaitForGrpcThreads : public ::testing::Environment {
 public:
  void TearDown() override {
    for (int waited_ms = 0; waited_ms < kMaxWaitMs && OtherThreads() > 0; waited_ms += 5) {
      usleep(5000);
    }
  }

 private:
  static constexpr int kMaxWaitMs = 2000;
};

::testing::Environment *const kEnv = ::testing::AddGlobalTestEnvironment(new WaitForGrpcThreads);

}  // namespace
