// Tests of the sample programs as scripts use them: build/bin/mir-pingpong and build/bin/mir-bcb
// run with --record and a short duration, exit 0, print their progress and leave one event log
// per node; mir-bcb --grpc (in builds with gRPC) does the same over the gRPC transport with
// Ed25519, with TLS and on a given --base-port; --help and bad arguments give the documented exit
// codes; Ctrl-C (SIGINT) stops a run cleanly. The tests run from the build directory, where the
// programs are bin/mir-pingpong and bin/mir-bcb.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mir/alloc.h"

namespace {

const uint64_t kRunLimitMs = 60000;  // a bound on how long a program may take, not a timing claim

// A program started with stdout and stderr redirected to files.
struct Child {
  pid_t pid = -1;
};

// tmpdir, if not empty, becomes the child's TMPDIR.
Child spawn(const std::vector<std::string> &args, const std::string &out_path,
            const std::string &tmpdir = "") {
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    if (!tmpdir.empty()) setenv("TMPDIR", tmpdir.c_str(), 1);
    int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    std::vector<char *> argv;
    for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return c;
}

// Waits up to kRunLimitMs for the child; kills it past that. Returns its exit code, or -1 if it
// did not exit normally in time.
int wait_exit(Child c) {
  uint64_t deadline = mir_now_ns() + kRunLimitMs * 1000000ULL;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(c.pid, &status, WNOHANG);
    if (r == c.pid) break;
    if (r < 0 || mir_now_ns() >= deadline) {
      kill(c.pid, SIGKILL);
      waitpid(c.pid, &status, 0);
      return -1;
    }
    struct timespec ts = {0, 10000000L};
    nanosleep(&ts, nullptr);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string slurp(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

off_t file_size(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// Entries of directory path other than . and .. (-1 if it cannot be read).
int dir_entries(const std::string &path) {
  DIR *d = opendir(path.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  for (struct dirent *e = readdir(d); e != nullptr; e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  }
  closedir(d);
  return n;
}

// A loopback port P such that P to P + 3 were all free a moment ago (bound at once, then
// released), or -1 if none was found in a few tries.
int free_port_range() {
  for (int attempt = 0; attempt < 50; attempt++) {
    int fds[4] = {-1, -1, -1, -1};
    int base = -1;
    bool ok = true;
    for (int i = 0; i < 4 && ok; i++) {
      fds[i] = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(i == 0 ? 0 : base + i));
      socklen_t len = sizeof a;
      ok = fds[i] >= 0 && bind(fds[i], reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
           getsockname(fds[i], reinterpret_cast<sockaddr *>(&a), &len) == 0;
      if (ok && i == 0) base = ntohs(a.sin_port);
      ok = ok && base + 3 <= 65535;
    }
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
    if (ok) return base;
  }
  return -1;
}

class ProgramsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char *tmp = getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") + "/mir-samples-test-XXXXXX";
    ASSERT_NE(mkdtemp(&tmpl[0]), nullptr);
    dir_ = tmpl;
    logs_ = dir_ + "/logs";
    out_ = dir_ + "/out.txt";
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
  }
  int run(const std::vector<std::string> &args) { return wait_exit(spawn(args, out_)); }
  std::string dir_, logs_, out_;
};

// mir-pingpong runs for a short while, prints pings and pongs both ways and a summary, exits 0, and
// leaves a non-empty event log for each of its two nodes.
TEST_F(ProgramsTest, PingpongRecordsAndExitsZero) {
  ASSERT_EQ(run({"bin/mir-pingpong", "--duration", "1", "--period-ms", "50", "--record", logs_}), 0)
      << slurp(out_);
  std::string out = slurp(out_);
  EXPECT_NE(out.find("node 0: pong 0 from 1"), std::string::npos) << out;
  EXPECT_NE(out.find("node 1: pong 0 from 0"), std::string::npos) << out;
  EXPECT_NE(out.find("mir-pingpong: ok"), std::string::npos) << out;
  EXPECT_GT(file_size(logs_ + "/0-0.mirlog.zst"), 0);
  EXPECT_GT(file_size(logs_ + "/1-0.mirlog.zst"), 0);
}

// mir-bcb broadcasts the given value; every node prints it, the program exits 0, and each of the
// four nodes leaves a non-empty event log.
TEST_F(ProgramsTest, BcbRecordsAndExitsZero) {
  ASSERT_EQ(run({"bin/mir-bcb", "--value", "test value 42", "--duration", "30", "--record", logs_}),
            0)
      << slurp(out_);
  std::string out = slurp(out_);
  for (int i = 0; i < 4; i++) {
    std::string line = "node " + std::to_string(i) + " delivered: test value 42";
    EXPECT_NE(out.find(line), std::string::npos) << out;
    EXPECT_GT(file_size(logs_ + "/" + std::to_string(i) + "-0.mirlog.zst"), 0) << i;
  }
}

#ifdef MIR_BCB_GRPC
// mir-bcb --grpc --tls runs the four nodes over gRPC with mutual TLS and Ed25519: every node
// delivers the value, the program exits 0, says what it ran, leaves an event log per node, and
// removes its temporary TLS directory.
TEST_F(ProgramsTest, BcbOverGrpcWithTlsRecordsAndExitsZero) {
  std::string tmp = dir_ + "/tmp";
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  ASSERT_EQ(wait_exit(spawn({"bin/mir-bcb", "--grpc", "--tls", "--value", "grpc value 7",
                             "--duration", "30", "--record", logs_},
                            out_, tmp)),
            0)
      << slurp(out_);
  std::string out = slurp(out_);
  EXPECT_NE(out.find("(mutual TLS), Ed25519 signatures"), std::string::npos) << out;
  EXPECT_NE(out.find("mir-bcb: ok"), std::string::npos) << out;
  for (int i = 0; i < 4; i++) {
    std::string line = "node " + std::to_string(i) + " delivered: grpc value 7";
    EXPECT_NE(out.find(line), std::string::npos) << out;
    EXPECT_GT(file_size(logs_ + "/" + std::to_string(i) + "-0.mirlog.zst"), 0) << i;
  }
  EXPECT_EQ(dir_entries(tmp), 0);
}

// mir-bcb --grpc --base-port P listens on P to P + 3 (in plaintext) and every node delivers. The
// range was free a moment before the run; if another process took a port meanwhile, the run
// fails at setup and is tried again with another range.
TEST_F(ProgramsTest, BcbOverGrpcOnBasePort) {
  int rc = -1;
  std::string out;
  for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
    int base = free_port_range();
    ASSERT_GT(base, 0);
    rc = run({"bin/mir-bcb", "--grpc", "--base-port", std::to_string(base), "--duration", "30"});
    out = slurp(out_);
    std::string ports = "ports " + std::to_string(base) + " " + std::to_string(base + 1) + " " +
                        std::to_string(base + 2) + " " + std::to_string(base + 3) + " (plaintext)";
    if (rc == 0) {
      EXPECT_NE(out.find(ports), std::string::npos) << out;
    }
    if (rc != 0 && out.find("setup failed") == std::string::npos) break;
  }
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("mir-bcb: ok"), std::string::npos) << out;
}
#endif

// --help exits 0 with the usage text; an unknown or incomplete argument exits 2.
TEST_F(ProgramsTest, HelpAndBadArguments) {
  for (const char *prog : {"bin/mir-pingpong", "bin/mir-bcb"}) {
    EXPECT_EQ(run({prog, "--help"}), 0) << prog;
    EXPECT_NE(slurp(out_).find("usage:"), std::string::npos) << prog;
    EXPECT_EQ(run({prog, "--no-such-flag"}), 2) << prog;
    EXPECT_EQ(run({prog, "--duration"}), 2) << prog;
    EXPECT_EQ(run({prog, "--duration", "-1"}), 2) << prog;
  }
  EXPECT_EQ(run({"bin/mir-pingpong", "--period-ms", "0"}), 2);
  EXPECT_EQ(run({"bin/mir-bcb", "--help"}), 0);
  EXPECT_NE(slurp(out_).find("--grpc"), std::string::npos);
  // --tls and --base-port only go with --grpc; ports must leave room for four nodes.
  EXPECT_EQ(run({"bin/mir-bcb", "--tls"}), 2);
  EXPECT_EQ(run({"bin/mir-bcb", "--base-port", "7000"}), 2);
  EXPECT_EQ(run({"bin/mir-bcb", "--grpc", "--base-port"}), 2);
  EXPECT_EQ(run({"bin/mir-bcb", "--grpc", "--base-port", "0"}), 2);
  EXPECT_EQ(run({"bin/mir-bcb", "--grpc", "--base-port", "65533"}), 2);
#ifndef MIR_BCB_GRPC
  EXPECT_EQ(run({"bin/mir-bcb", "--grpc"}), 2);  // a build without gRPC says so
#endif
}

// SIGINT during a long run stops the nodes and closes the logs: the program prints its summary
// and exits 0 (both nodes had received pongs), well before its duration.
TEST_F(ProgramsTest, PingpongStopsCleanlyOnSigint) {
  Child c = spawn({"bin/mir-pingpong", "--duration", "600", "--period-ms", "20", "--record", logs_},
                  out_);
  uint64_t deadline = mir_now_ns() + kRunLimitMs * 1000000ULL;
  while (slurp(out_).find("node 0: pong 1 from 1") == std::string::npos ||
         slurp(out_).find("node 1: pong 1 from 0") == std::string::npos) {
    if (mir_now_ns() >= deadline) break;
    struct timespec ts = {0, 10000000L};
    nanosleep(&ts, nullptr);
  }
  ASSERT_EQ(kill(c.pid, SIGINT), 0);
  EXPECT_EQ(wait_exit(c), 0) << slurp(out_);
  std::string out = slurp(out_);
  EXPECT_NE(out.find("interrupted"), std::string::npos) << out;
  EXPECT_NE(out.find("mir-pingpong: ok"), std::string::npos) << out;
  EXPECT_GT(file_size(logs_ + "/0-0.mirlog.zst"), 0);
}

}  // namespace
