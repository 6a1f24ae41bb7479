// Tests of the sample programs as scripts use them: build/bin/pingpong and build/bin/bcb run with
// --record and a short duration, exit 0, print their progress and leave one event log per node;
// --help and bad arguments give the documented exit codes; Ctrl-C (SIGINT) stops a run cleanly.
// The tests run from the build directory, where the programs are bin/pingpong and bin/bcb.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
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

Child spawn(const std::vector<std::string> &args, const std::string &out_path) {
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
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

// pingpong runs for a short while, prints pings and pongs both ways and a summary, exits 0, and
// leaves a non-empty event log for each of its two nodes.
TEST_F(ProgramsTest, PingpongRecordsAndExitsZero) {
  ASSERT_EQ(run({"bin/pingpong", "--duration", "1", "--period-ms", "50", "--record", logs_}), 0)
      << slurp(out_);
  std::string out = slurp(out_);
  EXPECT_NE(out.find("node 0: pong 0 from 1"), std::string::npos) << out;
  EXPECT_NE(out.find("node 1: pong 0 from 0"), std::string::npos) << out;
  EXPECT_NE(out.find("pingpong: ok"), std::string::npos) << out;
  EXPECT_GT(file_size(logs_ + "/0-0.mirlog.zst"), 0);
  EXPECT_GT(file_size(logs_ + "/1-0.mirlog.zst"), 0);
}

// bcb broadcasts the given value; every node prints it, the program exits 0, and each of the
// four nodes leaves a non-empty event log.
TEST_F(ProgramsTest, BcbRecordsAndExitsZero) {
  ASSERT_EQ(run({"bin/bcb", "--value", "test value 42", "--duration", "30", "--record", logs_}), 0)
      << slurp(out_);
  std::string out = slurp(out_);
  for (int i = 0; i < 4; i++) {
    std::string line = "node " + std::to_string(i) + " delivered: test value 42";
    EXPECT_NE(out.find(line), std::string::npos) << out;
    EXPECT_GT(file_size(logs_ + "/" + std::to_string(i) + "-0.mirlog.zst"), 0) << i;
  }
}

// --help exits 0 with the usage text; an unknown or incomplete argument exits 2.
TEST_F(ProgramsTest, HelpAndBadArguments) {
  for (const char *prog : {"bin/pingpong", "bin/bcb"}) {
    EXPECT_EQ(run({prog, "--help"}), 0) << prog;
    EXPECT_NE(slurp(out_).find("usage:"), std::string::npos) << prog;
    EXPECT_EQ(run({prog, "--no-such-flag"}), 2) << prog;
    EXPECT_EQ(run({prog, "--duration"}), 2) << prog;
    EXPECT_EQ(run({prog, "--duration", "-1"}), 2) << prog;
  }
  EXPECT_EQ(run({"bin/pingpong", "--period-ms", "0"}), 2);
}

// SIGINT during a long run stops the nodes and closes the logs: the program prints its summary
// and exits 0 (both nodes had received pongs), well before its duration.
TEST_F(ProgramsTest, PingpongStopsCleanlyOnSigint) {
  Child c =
      spawn({"bin/pingpong", "--duration", "600", "--period-ms", "20", "--record", logs_}, out_);
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
  EXPECT_NE(out.find("pingpong: ok"), std::string::npos) << out;
  EXPECT_GT(file_size(logs_ + "/0-0.mirlog.zst"), 0);
}

}  // namespace
