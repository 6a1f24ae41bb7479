// `cmake --install` of the build tree into a fresh prefix: bin/ holds the operator's programs and
// no test binary, the SDK is there as libmirclient.so (exporting only mir_client_ functions),
// mir/client.h and mirclient.pc; and the SDK's submit example compiles and links against the
// installed tree with nothing but pkg-config's flags, and runs.
#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <string>

#include "sdk/sdk_proc.h"

namespace {

struct Out {
  int rc;
  std::string text;
};

Out Sh(const std::string &cmd, const std::vector<std::string> &env = {}) {
  Out o{-1, ""};
  o.rc = RunProgram({"/bin/sh", "-c", cmd}, env, 300000, &o.text);
  return o;
}

std::set<std::string> List(const std::string &dir) {
  std::set<std::string> names;
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent *e = readdir(d)) {
    if (e->d_name[0] != '.') names.insert(e->d_name);
  }
  closedir(d);
  return names;
}

class InstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char *tmp = getenv("TMPDIR");
    std::string t =
        std::string(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") + "/mir-install-XXXXXX";
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr);
    prefix_ = buf.data();
    Out o = Sh(std::string("cmake --install ") + MIR_BUILD_DIR + " --prefix " + prefix_);
    ASSERT_EQ(o.rc, 0) << o.text;
  }
  void TearDown() override {
    if (!prefix_.empty()) Sh("rm -rf " + prefix_);
  }
  std::string prefix_;
};

// The programs an operator runs, and nothing else, are in bin/.
TEST_F(InstallTest, BinHoldsTheProgramsOnly) {
  std::set<std::string> bin = List(prefix_ + "/bin");
  for (const char *p : {"mir-replica", "mir-status", "mir-keygen", "mir-cat", "mir-bench",
                        "mir-logcheck", "mir-demo", "mir-limit"}) {
    EXPECT_EQ(bin.count(p), 1u) << p;
  }
  for (const auto &name : bin) {
    EXPECT_EQ(name.rfind("mir-", 0), 0u) << name << ": programs share the mir- prefix";
    EXPECT_EQ(name.find("test"), std::string::npos) << name;
  }
  Out help = Sh(prefix_ + "/bin/mir-replica --help");
  EXPECT_EQ(help.rc, 0) << help.text;
}

// The SDK's library exports its API and nothing else; an application builds against the
// installed tree with pkg-config alone and runs (the example's usage error, exit status 2).
TEST_F(InstallTest, SdkBuildsWithPkgConfig) {
  std::string lib = prefix_ + "/lib";
  Out syms = Sh("nm -D --defined-only " + lib + "/libmirclient.so | awk '{print $3}'");
  ASSERT_EQ(syms.rc, 0) << syms.text;
  std::istringstream in(syms.text);
  std::string s;
  int api = 0;
  while (std::getline(in, s)) {
    if (s.empty()) continue;
    EXPECT_EQ(s.rfind("mir_client_", 0), 0u) << s << " is exported";
    api++;
  }
  EXPECT_GT(api, 5);
  std::vector<std::string> env = {"PKG_CONFIG_PATH=" + lib + "/pkgconfig"};
  Out flags = Sh("pkg-config --cflags --libs mirclient", env);
  ASSERT_EQ(flags.rc, 0) << flags.text;
  EXPECT_NE(flags.text.find("-lmirclient"), std::string::npos) << flags.text;
  std::string exe = prefix_ + "/submit";
#if defined(__SANITIZE_ADDRESS__)
  // An SDK built with AddressSanitizer loads only into a program whose runtime comes first.
  const std::string san = " -fsanitize=address";
#else
  const std::string san;
#endif
  Out cc = Sh(std::string("cc -std=c11 -Wall -Werror") + san + " -o " + exe + " " + MIR_SOURCE_DIR +
                  "/sdk/examples/submit.c $(pkg-config --cflags --libs mirclient) " +
                  "-Wl,-rpath," + lib,
              env);
  ASSERT_EQ(cc.rc, 0) << cc.text;
  Out run = Sh(exe);
  EXPECT_EQ(run.rc, 2) << run.text;
  EXPECT_NE(run.text.find("usage:"), std::string::npos) << run.text;
}

}  // namespace
