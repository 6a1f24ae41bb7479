// The replica's HTTP endpoint against real replicas: status codes, the Prometheus text format
// (parsed here, and by promtool where it is installed), a CPU profile under load read by
// google-pprof, busy times against the dispatcher's CPU time, and a real Prometheus server
// scraping a 4-replica cluster whose delivered-transactions series must match what mir-bench
// committed. Parts whose tool is missing (curl, google-pprof, promtool, prometheus) are skipped.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "integration/cluster.h"

namespace {

using mirtest::Cluster;
using mirtest::ClusterOptions;

bool Have(const char *path) {
  return access(path, X_OK) == 0;
}

struct Reply {
  int status = -1;
  std::string body;
};

// GET (or another method) with curl; the status code comes from --write-out on its own last line.
Reply Http(const Cluster &c, const std::string &url, const std::string &method = "GET",
           int timeout_s = 20) {
  static int n = 0;
  std::string out = c.dir() + "/http-" + std::to_string(n++) + ".out";
  std::vector<std::string> argv = {
      "/usr/bin/curl", "-s", "-X",           method, "-m", std::to_string(timeout_s), "-o",
      out + ".body",   "-w", "%{http_code}", url};
  Reply r;
  if (mirtest::RunProgram(argv, out, (timeout_s + 10) * 1000) != 0) return r;
  r.status = atoi(mirtest::ReadFile(out).c_str());
  r.body = mirtest::ReadFile(out + ".body");
  return r;
}

// A TCP connection to addr ("127.0.0.1:port"); -1 on failure.
int Connect(const std::string &addr) {
  size_t colon = addr.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(atoi(addr.c_str() + colon + 1)));
  if (inet_pton(AF_INET, addr.substr(0, colon).c_str(), &sa.sin_addr) != 1) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends GET path on fd (the server closes the connection after its reply).
bool SendGet(int fd, const std::string &path) {
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
  return send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
}

// Reads the reply on fd until the server closes it, waiting at most timeout_ms between reads
// (a bound on a test that must end, not a timing check); closes fd.
Reply ReadReply(int fd, int timeout_ms) {
  std::string raw;
  char buf[16384];
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, timeout_ms) == 1) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  Reply r;
  size_t sp = raw.find(' ');
  size_t end = raw.find("\r\n\r\n");
  if (raw.compare(0, 5, "HTTP/") != 0 || sp == std::string::npos || end == std::string::npos) {
    return r;
  }
  r.status = atoi(raw.c_str() + sp + 1);
  r.body = raw.substr(end + 4);
  return r;
}

std::string Url(const Cluster &c, size_t i, const std::string &path) {
  return "http://" + c.HttpAddr(i) + path;
}

// Every line of a Prometheus text page is a comment (# HELP/# TYPE) or `name{labels} value`.
// Returns the first line that is neither ("" if all parse).
std::string FirstBadLine(const std::string &page) {
  static const std::regex sample(
      R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? [-+0-9.eEInfa]+$)");
  static const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$)");
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (!std::regex_match(line, sample) && !std::regex_match(line, comment)) return line;
  }
  return "";
}

// The value of the first sample line that starts with `series` (name and labels), or -1.
double Sample(const std::string &page, const std::string &series) {
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, series.size() + 1, series + " ") == 0) {
      return atof(line.c_str() + series.size() + 1);
    }
  }
  return -1;
}

class HttpEndpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Have("/usr/bin/curl")) GTEST_SKIP() << "curl not found";
    ClusterOptions o;
    o.http = true;
    o.store_sync = false;
    cluster_ = std::make_unique<Cluster>(o);
    ASSERT_EQ(cluster_->error(), "");
    ASSERT_TRUE(cluster_->StartAll());
    ASSERT_TRUE(cluster_->WaitReady(60000));
  }
  void TearDown() override {
    if (HasFailure() && cluster_) cluster_->Keep();
  }

  // mir-bench: `rate` tx/s for `seconds`, in the background; Committed() waits and parses.
  void StartLoad(int rate, int seconds) {
    std::string addrs;
    for (size_t i = 0; i < cluster_->size(); i++) {
      addrs += (i ? "," : "") + cluster_->ClientAddr(i);
    }
    load_out_ = cluster_->dir() + "/bench.out";
    load_pid_ = mirtest::StartProgram(
        {mirtest::BinDir() + "/mir-bench", "--replicas", addrs, "--clients", "2", "--rate",
         std::to_string(rate), "--size", "64", "--duration", std::to_string(seconds), "--warmup",
         "0", "--drain", "20", "--connect-timeout-ms", "30000"},
        load_out_);
    ASSERT_GT(load_pid_, 0);
  }
  // Transactions mir-bench reports committed (-1 if it failed or said nothing).
  long Committed() {
    int st = mirtest::WaitProgram(load_pid_, 120000);
    load_pid_ = -1;
    std::string out = mirtest::ReadFile(load_out_);
    std::smatch m;
    if (st != 0 || !std::regex_search(out, m, std::regex(R"(committed (\d+), rejected 0)"))) {
      ADD_FAILURE() << "mir-bench: status " << st << "\n" << out;
      return -1;
    }
    return atol(m[1].str().c_str());
  }

  std::unique_ptr<Cluster> cluster_;
  std::string load_out_;
  pid_t load_pid_ = -1;
};

// Each path answers with its status: 200 for the pages, 404 for anything else, 400 for a bad
// profile duration, 405 for a POST, 501 for the heap profile of a replica without tcmalloc;
// every /metrics page parses and carries the node loop's and the process's series.
TEST_F(HttpEndpoint, StatusCodesAndPrometheusText) {
  for (size_t i = 0; i < cluster_->size(); i++) {
    Reply r = Http(*cluster_, Url(*cluster_, i, "/metrics"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(FirstBadLine(r.body), "");
    EXPECT_GT(Sample(r.body, "mir_module_events_total{module=\"iss\"}"), 0) << r.body;
    EXPECT_GT(Sample(r.body, "mir_process_cpu_seconds_total"), 0) << r.body;
    EXPECT_GT(Sample(r.body, "mir_process_threads"), 1) << r.body;
    EXPECT_GE(Sample(r.body, "mir_delivered_transactions_total{module=\"app\"}"), 0) << r.body;
    EXPECT_GE(Sample(r.body, "mir_thread_cpu_seconds_total{thread=\"mir-node\"}"), 0) << r.body;
    // The peer transport's series (an idle cluster sends no message: its link gauge is what
    // WaitReady established).
    std::string peer = std::to_string((i + 1) % cluster_->size());
    EXPECT_EQ(Sample(r.body, "mir_net_connected{module=\"net\",peer=\"" + peer + "\"}"), 1)
        << r.body;
  }
  EXPECT_EQ(Http(*cluster_, Url(*cluster_, 0, "/nope")).status, 404);
  EXPECT_EQ(Http(*cluster_, Url(*cluster_, 0, "/metrics/x")).status, 404);
  EXPECT_EQ(Http(*cluster_, Url(*cluster_, 0, "/metrics"), "POST").status, 405);
  for (const char *bad : {"0", "301", "abc", "-1", "99999999999", ""}) {
    Reply r =
        Http(*cluster_, Url(*cluster_, 0, std::string("/debug/pprof/profile?seconds=") + bad));
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
  }
  EXPECT_EQ(Http(*cluster_, Url(*cluster_, 0, "/debug/pprof/heap")).status, 501);
  Reply stats = Http(*cluster_, Url(*cluster_, 0, "/debug/stats"));
  ASSERT_EQ(stats.status, 200);
  json_error_t jerr;
  json_t *j = json_loads(stats.body.c_str(), 0, &jerr);
  ASSERT_NE(j, nullptr) << jerr.text;
  EXPECT_STREQ(json_string_value(json_object_get(j, "node")), "0");
  EXPECT_GT(json_array_size(json_object_get(j, "threads")), 1u);
  EXPECT_GT(json_array_size(json_object_get(j, "metrics")), 10u);
  json_decref(j);
}

// A second CPU profile while one is being taken is refused with 409; the replica keeps serving.
TEST_F(HttpEndpoint, OneProfileAtATime) {
  std::string out = cluster_->dir() + "/first.prof";
  std::string curl_out = cluster_->dir() + "/first.curl";
  auto started = std::chrono::steady_clock::now();
  pid_t first =
      mirtest::StartProgram({"/usr/bin/curl", "-sS", "-o", out, "-w", "%{http_code}", "-m", "60",
                             Url(*cluster_, 0, "/debug/pprof/profile?seconds=8")},
                            curl_out);
  ASSERT_GT(first, 0);
  ASSERT_TRUE(mirtest::WaitFor(
      [&] {
        return Http(*cluster_, Url(*cluster_, 0, "/debug/stats")).body.find("\"profiling\":true") !=
               std::string::npos;
      },
      20000))
      << "first profile request: " << mirtest::ReadFile(curl_out) << "\nreplica log:\n"
      << cluster_->LogTail(0);
  EXPECT_EQ(Http(*cluster_, Url(*cluster_, 0, "/debug/pprof/profile?seconds=1")).status, 409);
  EXPECT_EQ(Http(*cluster_, Url(*cluster_, 0, "/metrics")).status, 200);
  EXPECT_EQ(mirtest::WaitProgram(first, 60000), 0);
  EXPECT_EQ(mirtest::ReadFile(curl_out), "200");
  // The profile lasts what was asked for: a lower bound, which a slow machine cannot break.
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::seconds(8));
}

// Requests on other connections are answered while a CPU profile is being taken, whichever
// connections they came on: each /debug/stats reply must say that the profile is running. With a
// pool of threads, a connection accepted by the thread that went on to take the profile waited
// for the whole profile (this test's connections are all accepted before the profile starts).
TEST_F(HttpEndpoint, OtherConnectionsAreServedDuringAProfile) {
  constexpr int kConns = 12;
  std::vector<int> fds;
  for (int i = 0; i < kConns; i++) {
    int fd = Connect(cluster_->HttpAddr(0));
    ASSERT_GE(fd, 0) << strerror(errno);
    fds.push_back(fd);
  }
  // Every connection is accepted by the server before the profile is asked for: its answer to
  // the first request proves that the connections before it were accepted too.
  ASSERT_TRUE(SendGet(fds[0], "/metrics"));
  ASSERT_EQ(ReadReply(fds[0], 30000).status, 200);
  fds[0] = Connect(cluster_->HttpAddr(0));
  ASSERT_GE(fds[0], 0);
  ASSERT_TRUE(SendGet(fds[0], "/debug/pprof/profile?seconds=8"));
  ASSERT_TRUE(mirtest::WaitFor(
      [&] {
        return Http(*cluster_, Url(*cluster_, 0, "/debug/stats")).body.find("\"profiling\":true") !=
               std::string::npos;
      },
      20000))
      << "replica log:\n"
      << cluster_->LogTail(0);
  for (int i = 1; i < kConns; i++) {
    ASSERT_TRUE(SendGet(fds[i], "/debug/stats")) << i;
    Reply r = ReadReply(fds[i], 30000);
    EXPECT_EQ(r.status, 200) << "connection " << i;
    EXPECT_NE(r.body.find("\"profiling\":true"), std::string::npos)
        << "connection " << i << " was answered only after the profile";
  }
  EXPECT_EQ(ReadReply(fds[0], 60000).status, 200);
}

// A CPU profile taken under load is readable by google-pprof and names functions of the node
// loop and of Trantor; afterwards the modules' busy times sum to no more than the dispatcher
// thread's CPU time (busy time is the dispatcher's CPU time in apply; /proc counts in clock
// ticks, hence one tick of allowance).
TEST_F(HttpEndpoint, ProfileUnderLoadAndBusyTimes) {
  if (!Have("/usr/bin/google-pprof")) GTEST_SKIP() << "google-pprof not found (google-perftools)";
  StartLoad(1000, 8);
  sleep(2);
  std::string prof = cluster_->dir() + "/cpu.prof";
  auto started = std::chrono::steady_clock::now();
  int st = mirtest::RunProgram({"/usr/bin/curl", "-s", "-f", "-o", prof, "-m", "40",
                                Url(*cluster_, 1, "/debug/pprof/profile?seconds=5")},
                               "", 60000);
  ASSERT_EQ(st, 0);
  // SIGPROF interrupts sleeps, more often the busier the replica: the profile still lasts 5 s.
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  std::string text = cluster_->dir() + "/cpu.txt";
  ASSERT_EQ(mirtest::RunProgram({"/usr/bin/google-pprof", "--text", "--nodecount=100000",
                                 mirtest::BinDir() + "/mir-replica", prof},
                                text, 120000),
            0);
  std::string t = mirtest::ReadFile(text);
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(\b(node_iterate|node_route|node_apply)\b)")))
      << t.substr(0, 4000);
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(\b(pbft|iss|trantor|mempool|avail)\w*)")))
      << t.substr(0, 4000);
  EXPECT_GT(Committed(), 0);

  Reply stats = Http(*cluster_, Url(*cluster_, 1, "/debug/stats"));
  ASSERT_EQ(stats.status, 200);
  json_t *j = json_loads(stats.body.c_str(), 0, nullptr);
  ASSERT_NE(j, nullptr);
  double busy = 0, dispatcher = -1;
  size_t k;
  json_t *v;
  json_array_foreach(json_object_get(j, "metrics"), k, v) {
    if (strcmp(json_string_value(json_object_get(v, "name")), "mir_module_busy_seconds_total") ==
        0) {
      busy += json_real_value(json_object_get(v, "value"));
    }
  }
  json_array_foreach(json_object_get(j, "threads"), k, v) {
    if (strcmp(json_string_value(json_object_get(v, "name")), "mir-node") == 0) {
      dispatcher = json_real_value(json_object_get(v, "cpu_seconds"));
    }
  }
  json_decref(j);
  long tick = sysconf(_SC_CLK_TCK);
  EXPECT_GT(busy, 0);
  EXPECT_LE(busy, dispatcher + 1.0 / static_cast<double>(tick > 0 ? tick : 100))
      << "busy " << busy << " s, dispatcher " << dispatcher << " s";
}

// promtool accepts every replica's page.
TEST_F(HttpEndpoint, PromtoolChecksEveryPage) {
  if (!Have("/usr/bin/promtool")) GTEST_SKIP() << "promtool not found (Debian package prometheus)";
  for (size_t i = 0; i < cluster_->size(); i++) {
    Reply r = Http(*cluster_, Url(*cluster_, i, "/metrics"));
    ASSERT_EQ(r.status, 200);
    std::string page = cluster_->dir() + "/page-" + std::to_string(i) + ".txt";
    std::ofstream(page) << r.body;
    std::string out = cluster_->dir() + "/promtool.out";
    std::string cmd = "/usr/bin/promtool check metrics < " + page + " > " + out + " 2>&1";
    int st = mirtest::RunProgram({"/bin/sh", "-c", cmd}, "", 60000);
    EXPECT_EQ(st, 0) << mirtest::ReadFile(out);
  }
}

// A Prometheus server scraping the four replicas reports, through its query API, the same
// number of delivered transactions on every replica as mir-bench committed.
TEST_F(HttpEndpoint, PrometheusScrapesDeliveredTransactions) {
  if (!Have("/usr/bin/prometheus")) GTEST_SKIP() << "prometheus not found (Debian package)";
  StartLoad(500, 4);
  long committed = Committed();
  ASSERT_GT(committed, 0);

  int port = 0;
  for (int p = 19090; p < 19990 && port == 0; p += 7) {
    if (Http(*cluster_, "http://127.0.0.1:" + std::to_string(p) + "/", "GET", 1).status <= 0) {
      port = p;
    }
  }
  ASSERT_NE(port, 0);
  std::string yml = cluster_->dir() + "/prometheus.yml";
  {
    std::ofstream f(yml);
    f << "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mir\n    static_configs:\n"
         "      - targets: [";
    for (size_t i = 0; i < cluster_->size(); i++)
      f << (i ? ", " : "") << "'" << cluster_->HttpAddr(i) << "'";
    f << "]\n";
  }
  pid_t prom = mirtest::StartProgram({"/usr/bin/prometheus", "--config.file=" + yml,
                                      "--storage.tsdb.path=" + cluster_->dir() + "/prometheus-data",
                                      "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                                     cluster_->dir() + "/prometheus.log");
  ASSERT_GT(prom, 0);
  std::string q = "http://127.0.0.1:" + std::to_string(port) +
                  "/api/v1/query?query=mir_delivered_transactions_total";
  std::map<std::string, long> seen;
  bool ok = mirtest::WaitFor(
      [&] {
        Reply r = Http(*cluster_, q, "GET", 5);
        json_t *j = r.status == 200 ? json_loads(r.body.c_str(), 0, nullptr) : nullptr;
        if (j == nullptr) return false;
        seen.clear();
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(json_object_get(j, "data"), "result"), k, v) {
          const char *inst =
              json_string_value(json_object_get(json_object_get(v, "metric"), "instance"));
          const char *val = json_string_value(json_array_get(json_object_get(v, "value"), 1));
          if (inst && val) seen[inst] = atol(val);
        }
        json_decref(j);
        if (seen.size() != cluster_->size()) return false;
        for (auto &kv : seen) {
          if (kv.second != committed) return false;
        }
        return true;
      },
      60000);
  std::string got;
  for (auto &kv : seen) got += kv.first + "=" + std::to_string(kv.second) + " ";
  EXPECT_TRUE(ok) << "committed " << committed << ", Prometheus: " << got << "\n"
                  << mirtest::ReadFile(cluster_->dir() + "/prometheus.log").substr(0, 3000);
  kill(prom, SIGTERM);
  EXPECT_GE(mirtest::WaitProgram(prom, 20000), 0);
}

}  // namespace
