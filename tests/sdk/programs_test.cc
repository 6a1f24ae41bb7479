// Runs the SDK's programs as processes against the fake cluster (sdk-fake-cluster) on
// 127.0.0.1: mir-bench produces its live lines, summary and JSON report, and fails clearly when
// no replica is reachable; the submit example and mir-demo run to success. Every child is bounded
// in time and stopped at the end; no test asserts a duration or a rate.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "sdk_proc.h"

namespace {

constexpr int kRunMs = 120000;  // upper bound of every program run

std::string Bin(const char *name) {
  return std::string(MIR_BIN_DIR) + "/" + name;
}

// A fake cluster process; Addresses() is its comma-separated client addresses.
class FakeProcess {
 public:
  explicit FakeProcess(int n) {
    ch_ = Spawn({MIR_FAKE_CLUSTER, std::to_string(n), "300"});
    addrs_ = ReadLine(ch_, 30000);
  }
  ~FakeProcess() { Finish(&ch_, 30000); }
  const std::string &Addresses() const { return addrs_; }

 private:
  Child ch_;
  std::string addrs_;
};

uint64_t JsonNumber(const std::string &json, const std::string &key) {
  std::smatch m;
  std::regex re("\"" + key + "\": ([0-9.]+)");
  return std::regex_search(json, m, re) ? std::stoull(m[1].str()) : UINT64_MAX;
}

TEST(SdkPrograms, MirBenchReportsAndWritesJson) {
  // mir-bench against the fake cluster prints a line per second and a summary, and writes a JSON
  // report in which every submitted transaction was committed.
  FakeProcess fake(4);
  ASSERT_FALSE(fake.Addresses().empty());
  char tmpl[] = "/tmp/mir-bench-json-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string out;
  int rc =
      RunProgram({Bin("mir-bench"), "--replicas", fake.Addresses(), "--clients", "2", "--rate",
                  "400", "--size", "256", "--duration", "1.5", "--warmup", "0.5", "--json", tmpl},
                 {}, kRunMs, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("[    1s] submitted"), std::string::npos) << out;
  EXPECT_NE(out.find("throughput:"), std::string::npos) << out;
  EXPECT_NE(out.find("latency submit->commit"), std::string::npos) << out;
  std::ifstream in(tmpl);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string json = ss.str();
  unlink(tmpl);
  uint64_t submitted = JsonNumber(json, "submitted");
  EXPECT_GT(submitted, 0u) << json;
  EXPECT_EQ(JsonNumber(json, "committed"), submitted) << json;
  EXPECT_EQ(JsonNumber(json, "rejected"), 0u) << json;
  EXPECT_NE(json.find("\"p99\": "), std::string::npos) << json;
  EXPECT_NE(json.find("\"per_second\": ["), std::string::npos) << json;
}

TEST(SdkPrograms, MirBenchFailsClearlyWithoutReplicas) {
  // With nothing listening, mir-bench exits with status 1 and says which replicas it could not
  // reach.
  int a = 0;
  for (int p = 21000; p < 21100 && a == 0; p++) {
    if (PortFree(p)) a = p;
  }
  ASSERT_NE(a, 0);
  std::string addr = "127.0.0.1:" + std::to_string(a);
  std::string out;
  int rc = RunProgram(
      {Bin("mir-bench"), "--replicas", addr, "--connect-timeout-ms", "300", "--duration", "1"}, {},
      kRunMs, &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("cannot open client"), std::string::npos) << out;
  EXPECT_NE(out.find(addr), std::string::npos) << out;
  EXPECT_NE(out.find("cannot connect"), std::string::npos) << out;
}

TEST(SdkPrograms, MirBenchRefusesBadOptions) {
  // An out-of-range value or an unknown option is refused with the usage text (status 2).
  std::string out;
  EXPECT_EQ(2, RunProgram({Bin("mir-bench"), "--replicas", "127.0.0.1:1", "--rate", "-5"}, {},
                          kRunMs, &out));
  EXPECT_NE(out.find("--rate"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(2, RunProgram({Bin("mir-bench"), "--replicas", "127.0.0.1:1", "--bogus", "1"}, {},
                          kRunMs, &out));
  EXPECT_NE(out.find("usage"), std::string::npos) << out;
}

TEST(SdkPrograms, ExamplesRunAgainstACluster) {
  // The documented example commits its transactions, and mir-demo reports throughput and
  // latency, both with exit status 0.
  FakeProcess fake(4);
  ASSERT_FALSE(fake.Addresses().empty());
  std::string out;
  EXPECT_EQ(0, RunProgram({Bin("mir-example-submit"), fake.Addresses(), "3"}, {}, kRunMs, &out))
      << out;
  EXPECT_NE(out.find("tx 2 committed at sn"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(0, RunProgram({Bin("mir-demo"), "--replicas", fake.Addresses(), "--seconds", "1",
                           "--rate", "50"},
                          {}, kRunMs, &out))
      << out;
  EXPECT_NE(out.find("latency submit->commit"), std::string::npos) << out;
  EXPECT_NE(out.find("txs  first: demo-"), std::string::npos) << out;
}

}  // namespace
