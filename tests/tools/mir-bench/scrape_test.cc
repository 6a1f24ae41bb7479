// mir-bench --metrics (server/tools/mir-bench/scrape.h): the Prometheus text parser on good and
// malformed pages, base URLs, the HTTP GET client against a canned server on 127.0.0.1 (each
// answer written byte for byte, so malformed and hostile answers are easy to make), and the
// before/after differences on canned pages.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>

#include "scrape.h"

namespace {

struct Parsed {
  prom_page page{};
  char err[SCRAPE_ERR_MAX] = "";
  int rc = -1;
  explicit Parsed(const std::string &text) {
    rc = prom_parse(text.data(), text.size(), &page, err, sizeof err);
  }
  ~Parsed() { prom_page_fini(&page); }
};

// ---- the Prometheus text format ----

// Comments and blank lines are skipped; names, labels (escapes undone, a trailing comma and
// blanks allowed), special values and timestamps are read as the format defines them.
TEST(PromParse, SamplesLabelsEscapesAndComments) {
  Parsed p(
      "# HELP mir_x_total Things {with} \"odd\" help.\n"
      "# TYPE mir_x_total counter\n"
      "\n"
      "mir_x_total 12.5\n"
      "mir_y{module=\"iss\",lock=\"a\\\"b\\\\c\\nd\"} 3\n"
      "mir_z{ module = \"app\" , } +Inf 1700000000000\n"
      "mir_n NaN\n"
      "mir_neg -2e-3\r\n"
      "  mir_indented 7");
  ASSERT_EQ(p.rc, 0) << p.err;
  ASSERT_EQ(p.page.n, 6u);
  EXPECT_STREQ(p.page.samples[0].name, "mir_x_total");
  EXPECT_EQ(p.page.samples[0].value, 12.5);
  EXPECT_EQ(p.page.samples[0].n_labels, 0u);
  const prom_sample &y = p.page.samples[1];
  EXPECT_STREQ(y.name, "mir_y");
  ASSERT_EQ(y.n_labels, 2u);
  EXPECT_STREQ(prom_label(&y, "module"), "iss");
  EXPECT_STREQ(prom_label(&y, "lock"), "a\"b\\c\nd");
  EXPECT_EQ(prom_label(&y, "peer"), nullptr);
  EXPECT_STREQ(prom_label(&p.page.samples[2], "module"), "app");
  EXPECT_TRUE(std::isinf(p.page.samples[2].value));
  EXPECT_TRUE(std::isnan(p.page.samples[3].value));
  EXPECT_EQ(p.page.samples[4].value, -2e-3);
  EXPECT_EQ(p.page.samples[5].value, 7);
}

// Every malformed line is refused with its line number and what is wrong.
TEST(PromParse, MalformedLinesAreNamed) {
  const char *bad[] = {
      "mir_x",                     // no value
      "mir_x ",                    // blank value
      "mir_x abc",                 // not a number
      "mir_x 1 2 3",               // text after the timestamp
      "mir_x 1 12a",               // timestamp not an integer
      "9mir 1",                    // name starts with a digit
      "mir-x 1",                   // bad character in the name
      "mir_x{a=\"1\" 1",           // labels not closed
      "mir_x{a=1} 1",              // value not quoted
      "mir_x{a\"1\"} 1",           // no '='
      "mir_x{=\"1\"} 1",           // no label name
      "mir_x{a=\"1} 1",            // value not terminated
      "mir_x{a=\"\\t\"} 1",        // bad escape
      "mir_x{a=\"1\"}1",           // no blank before the value
      "mir_x{a=\"1\" b=\"2\"} 1",  // no comma
      "mir_x{a=\"\",b=\"\",c=\"\",d=\"\",e=\"\",f=\"\",g=\"\",h=\"\",i=\"\"} 1",  // 9 labels
  };
  for (const char *line : bad) {
    Parsed p(std::string("mir_ok 1\n") + line + "\nmir_ok 2\n");
    EXPECT_EQ(p.rc, -1) << line;
    EXPECT_EQ(std::string(p.err).rfind("line 2: ", 0), 0u) << line << " -> " << p.err;
  }
  std::string nul = "mir_ok 1\nmir_x 1";
  nul += '\0';
  nul += "\n";
  Parsed p(nul);
  EXPECT_EQ(p.rc, -1);
  EXPECT_STREQ(p.err, "line 2: a NUL byte");
}

// A line beyond PROM_LINE_MAX bytes and a page beyond PROM_LINES_MAX lines are refused; lines at
// the limits are read.
TEST(PromParse, LineLengthAndCountAreBounded) {
  std::string label(PROM_LINE_MAX - 20, 'v');
  std::string at_limit = "m{a=\"" + label + "\"} 1";
  at_limit += std::string(PROM_LINE_MAX - at_limit.size(), ' ');
  ASSERT_EQ(at_limit.size(), (size_t)PROM_LINE_MAX);
  Parsed ok(at_limit + "\n");
  EXPECT_EQ(ok.rc, 0) << ok.err;
  Parsed longer(at_limit + " \n");
  EXPECT_EQ(longer.rc, -1);
  EXPECT_STREQ(longer.err, "line 1: longer than the line limit (4096 bytes)");

  std::string many;
  for (int i = 0; i < PROM_LINES_MAX; i++) many += "#\n";
  Parsed at_count(many);
  EXPECT_EQ(at_count.rc, 0) << at_count.err;
  Parsed beyond(many + "m 1\n");
  EXPECT_EQ(beyond.rc, -1);
  EXPECT_STREQ(beyond.err, "more than 200000 lines");
}

// prom_sum adds the samples of a name, optionally those with one label value only.
TEST(PromParse, SumsByNameAndLabel) {
  Parsed p("a{module=\"x\"} 1\na{module=\"y\"} 2\na{module=\"x\",lock=\"l\"} 4\nb 8\nab 16\n");
  ASSERT_EQ(p.rc, 0) << p.err;
  double sum = -1;
  EXPECT_EQ(prom_sum(&p.page, "a", nullptr, nullptr, &sum), 3u);
  EXPECT_EQ(sum, 7);
  EXPECT_EQ(prom_sum(&p.page, "a", "module", "x", &sum), 2u);
  EXPECT_EQ(sum, 5);
  EXPECT_EQ(prom_sum(&p.page, "a", "lock", "l", &sum), 1u);
  EXPECT_EQ(sum, 4);
  EXPECT_EQ(prom_sum(&p.page, "c", nullptr, nullptr, &sum), 0u);
  EXPECT_EQ(sum, 0);
}

// ---- URLs ----

// Base URLs with and without scheme, port, prefix, trailing slash or /metrics; https, queries
// and bad ports are refused with the URL in the message.
TEST(ScrapeUrl, BaseUrls) {
  scrape_url u;
  char err[SCRAPE_ERR_MAX];
  ASSERT_EQ(scrape_url_parse("http://127.0.0.1:9100", &u, err, sizeof err), 0) << err;
  EXPECT_STREQ(u.host, "127.0.0.1");
  EXPECT_STREQ(u.port, "9100");
  EXPECT_STREQ(u.prefix, "");
  ASSERT_EQ(scrape_url_parse("127.0.0.1:9101/metrics", &u, err, sizeof err), 0) << err;
  EXPECT_STREQ(u.port, "9101");
  EXPECT_STREQ(u.prefix, "");
  ASSERT_EQ(scrape_url_parse("HTTP://[::1]:9102/r1/", &u, err, sizeof err), 0) << err;
  EXPECT_STREQ(u.host, "::1");
  EXPECT_STREQ(u.prefix, "/r1");
  ASSERT_EQ(scrape_url_parse("http://localhost", &u, err, sizeof err), 0) << err;
  EXPECT_STREQ(u.port, "80");
  for (const char *bad :
       {"https://127.0.0.1:9100", "http://:9100", "http://h:0", "http://h:70000", "http://h:9x",
        "http://h:", "http://h:1?x=1", "http://[::1:1", "http://h:1/a b", ""}) {
    EXPECT_EQ(scrape_url_parse(bad, &u, err, sizeof err), -1) << bad;
    EXPECT_EQ(std::string(err).rfind(bad, 0), 0u) << err;
  }
}

// ---- the HTTP client ----

// A server on 127.0.0.1 that accepts one connection, reads the request head, writes `answer`
// and closes (or, with hold, keeps the connection open without answering until it is destroyed).
class CannedServer {
 public:
  explicit CannedServer(std::string answer, bool hold = false)
      : answer_(std::move(answer)), hold_(hold) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedServer() {
    shutdown(fd_, SHUT_RDWR);  // wakes a blocked accept
    close(fd_);
    if (conn_ >= 0) shutdown(conn_, SHUT_RDWR);
    thread_.join();
  }
  scrape_url Url(const char *prefix = "") const {
    scrape_url u;
    char err[SCRAPE_ERR_MAX];
    std::string text = "http://127.0.0.1:" + std::to_string(port_) + prefix;
    EXPECT_EQ(scrape_url_parse(text.c_str(), &u, err, sizeof err), 0) << err;
    return u;
  }
  const std::string &request() const { return request_; }
  int port() const { return port_; }

 private:
  void Serve() {
    conn_ = accept(fd_, nullptr, nullptr);
    if (conn_ < 0) return;
    char buf[4096];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      ssize_t k = read(conn_, buf, sizeof buf);
      if (k <= 0) break;
      request_.append(buf, (size_t)k);
    }
    if (!hold_) {
      size_t off = 0;
      while (off < answer_.size()) {
        ssize_t k = send(conn_, answer_.data() + off, answer_.size() - off, MSG_NOSIGNAL);
        if (k <= 0) break;
        off += (size_t)k;
      }
    } else {
      while (read(conn_, buf, sizeof buf) > 0) {
      }
    }
    close(conn_);
  }
  std::string answer_;
  bool hold_;
  int fd_ = -1, port_ = 0;
  std::atomic<int> conn_{-1};
  std::string request_;
  std::thread thread_;
};

struct Got {
  int rc = -1;
  std::string body;
  char err[SCRAPE_ERR_MAX] = "";
};

Got Get(const scrape_url &u, const char *path, size_t body_max = SCRAPE_BODY_BYTES_MAX,
        int timeout_ms = 3000) {
  Got g;
  char *body = nullptr;
  size_t len = 0;
  g.rc = scrape_get(&u, path, timeout_ms, body_max, &body, &len, g.err, sizeof g.err);
  if (g.rc == 0) g.body.assign(body, len);
  EXPECT_EQ(g.rc == 0, body != nullptr);
  free(body);
  return g;
}

// A 200 answer with Content-Length: the body as sent, after an HTTP/1.1 request for the prefix
// and path that names the host and asks to close.
TEST(ScrapeGet, ContentLengthBody) {
  CannedServer s(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nmir_x 1\nJUNK");
  Got g = Get(s.Url("/r1"), "/metrics");
  ASSERT_EQ(g.rc, 0) << g.err;
  EXPECT_EQ(g.body, "mir_x 1\nJ");
  EXPECT_EQ(s.request().rfind("GET /r1/metrics HTTP/1.1\r\n", 0), 0u) << s.request();
  EXPECT_NE(s.request().find("\r\nHost: 127.0.0.1:" + std::to_string(s.port()) + "\r\n"),
            std::string::npos);
  EXPECT_NE(s.request().find("\r\nConnection: close\r\n"), std::string::npos);
}

// A chunked body is decoded (extensions and trailers ignored); a body without a length is read
// to the close.
TEST(ScrapeGet, ChunkedAndUntilClose) {
  CannedServer c(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\nA\r\n, 12345678\r\n0\r\nX-Trailer: 1\r\n\r\n");
  Got g = Get(c.Url(), "/debug/stats");
  ASSERT_EQ(g.rc, 0) << g.err;
  EXPECT_EQ(g.body, "hello, 12345678");
  CannedServer e("HTTP/1.0 200 OK\r\n\r\nall of it");
  g = Get(e.Url(), "/metrics");
  ASSERT_EQ(g.rc, 0) << g.err;
  EXPECT_EQ(g.body, "all of it");
}

// Failures carry the URL and the reason: another status (with the first line of the body), a
// malformed status line or header, a truncated or oversized body, bad chunks.
TEST(ScrapeGet, BadAnswersAreNamed) {
  struct Case {
    std::string answer, want;
  } cases[] = {
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\n\r\nnot found\nmore",
       "HTTP status 404: not found"},
      {"SSH-2.0-OpenSSH\r\n\r\n", "malformed answer: not an HTTP/1.x status line"},
      {"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
       "malformed answer: a header line without a colon"},
      {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
       "malformed answer: a malformed Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\nshort", "body truncated: 5 of 30 bytes"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n",
       "malformed answer: a Content-Length beyond the body limit"},
      {"HTTP/1.1 200 OK\r\n\r\n" + std::string(40, 'x'), "body larger than 32 bytes"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "a truncated chunked body"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "a malformed chunk size"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n30\r\n" + std::string(48, 'y') +
           "\r\n0\r\n\r\n",
       "a chunked body beyond the body limit"},
      {"HTTP/1.1 200 OK\r\nX: " + std::string(SCRAPE_HEADER_BYTES_MAX, 'h') + "\r\n\r\n",
       "status line and headers longer than 16384 bytes"},
      {"HTTP/1.1 200 OK\r\nContent-Le", "connection closed inside the headers"},
      {"", "connection closed without an answer"},
  };
  for (const Case &c : cases) {
    CannedServer s(c.answer);
    Got g = Get(s.Url(), "/metrics", 32);
    EXPECT_EQ(g.rc, -1) << c.want;
    std::string want = "http://127.0.0.1:" + std::to_string(s.port()) + "/metrics: " + c.want;
    EXPECT_EQ(std::string(g.err), want);
  }
}

// A refused connection and a replica that never answers are errors naming the URL, within the
// timeout.
TEST(ScrapeGet, RefusedAndTimedOut) {
  int port = 0;
  {
    CannedServer gone("");  // its port is closed again when it goes
    port = gone.port();
  }
  scrape_url u;
  char err[SCRAPE_ERR_MAX];
  std::string text = "http://127.0.0.1:" + std::to_string(port);
  ASSERT_EQ(scrape_url_parse(text.c_str(), &u, err, sizeof err), 0);
  Got g = Get(u, "/metrics");
  EXPECT_EQ(g.rc, -1);
  EXPECT_EQ(std::string(g.err), text + "/metrics: cannot connect: Connection refused");

  CannedServer silent("", true);
  auto t0 = std::chrono::steady_clock::now();
  g = Get(silent.Url(), "/metrics", SCRAPE_BODY_BYTES_MAX, 300);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(g.rc, -1);
  EXPECT_NE(std::string(g.err).find("/metrics: timed out waiting for the answer"),
            std::string::npos)
      << g.err;
  EXPECT_GE(s, 0.25);
  EXPECT_LT(s, 2.0);
}

// ---- snapshots and differences ----

scrape_snapshot Snapshot(const std::string &page, const std::string &stats, double at_s) {
  scrape_snapshot s{};
  char err[SCRAPE_ERR_MAX];
  EXPECT_EQ(prom_parse(page.data(), page.size(), &s.page, err, sizeof err), 0) << err;
  EXPECT_EQ(scrape_parse_threads(stats.data(), stats.size(), &s, err, sizeof err), 0) << err;
  s.at_s = at_s;
  return s;
}

const char kBefore[] =
    "mir_process_cpu_seconds_total 10.00\n"
    "mir_delivered_transactions_total{module=\"app\"} 100\n"
    "mir_module_busy_seconds_total{module=\"iss\"} 1.0\n"
    "mir_module_busy_seconds_total{module=\"ordering\"} 2.0\n"
    "mir_module_busy_seconds_total{module=\"app\"} 0.5\n"
    "mir_module_busy_seconds_total{module=\"timer\"} 0.1\n"
    "mir_lock_wait_seconds_total{lock=\"node_inbox\"} 0.010\n"
    "mir_lock_contended_total{lock=\"node_inbox\"} 10\n";
const char kAfter[] =
    "mir_process_cpu_seconds_total 12.50\n"
    "mir_delivered_transactions_total{module=\"app\"} 5100\n"
    "mir_module_busy_seconds_total{module=\"iss\"} 1.3\n"
    "mir_module_busy_seconds_total{module=\"ordering\"} 2.9\n"
    "mir_module_busy_seconds_total{module=\"app\"} 1.0\n"
    "mir_module_busy_seconds_total{module=\"timer\"} 0.1\n"
    "mir_module_busy_seconds_total{module=\"crypto\"} 0.2\n"
    "mir_lock_wait_seconds_total{lock=\"node_inbox\"} 0.030\n"
    "mir_lock_contended_total{lock=\"node_inbox\"} 50\n"
    "mir_lock_wait_seconds_total{module=\"net\",lock=\"net_queue\"} 0.004\n"
    "mir_lock_wait_seconds_total{module=\"other\",lock=\"net_queue\"} 0.001\n"
    "mir_lock_contended_total{module=\"net\",lock=\"net_queue\"} 5\n";
const char kStatsBefore[] =
    "{\"node\":\"0\",\"threads\":[{\"tid\":1,\"name\":\"mir-replica\",\"cpu_seconds\":0.5},"
    "{\"tid\":2,\"name\":\"mir-node\",\"cpu_seconds\":4.0},"
    "{\"tid\":3,\"name\":\"mir-net\",\"cpu_seconds\":1.0},"
    "{\"tid\":4,\"name\":\"mir-net\",\"cpu_seconds\":1.0}],\"metrics\":[]}";
const char kStatsAfter[] =
    "{\"threads\":[{\"tid\":1,\"name\":\"mir-replica\",\"cpu_seconds\":0.5},"
    "{\"tid\":2,\"name\":\"mir-node\",\"cpu_seconds\":5.2},"
    "{\"tid\":3,\"name\":\"mir-net\",\"cpu_seconds\":1.3},"
    "{\"tid\":4,\"name\":\"mir-net\",\"cpu_seconds\":1.1},"
    "{\"tid\":9,\"name\":\"mir-new\",\"cpu_seconds\":0.7}]}";

// CPU per committed transaction is the process's CPU growth over the commits; the lists hold
// what grew, largest first, at most three: modules by busy time, threads by id (a new thread
// from zero, an idle one left out), locks by wait summed over modules with their waits.
TEST(ScrapeDelta, CpuPerTransactionAndTopLists) {
  scrape_snapshot b = Snapshot(kBefore, kStatsBefore, 100.0);
  scrape_snapshot a = Snapshot(kAfter, kStatsAfter, 112.0);
  scrape_delta d;
  char err[SCRAPE_ERR_MAX] = "";
  ASSERT_EQ(scrape_delta_compute(&b, &a, 5000, &d, err, sizeof err), 0) << err;
  EXPECT_DOUBLE_EQ(d.interval_s, 12.0);
  EXPECT_DOUBLE_EQ(d.cpu_s, 2.5);
  EXPECT_EQ(d.committed, 5000u);
  EXPECT_DOUBLE_EQ(d.cpu_s_per_tx, 2.5 / 5000);
  EXPECT_DOUBLE_EQ(d.delivered, 5000);
  ASSERT_EQ(d.n_modules, 3u);
  EXPECT_STREQ(d.modules[0].name, "ordering");
  EXPECT_NEAR(d.modules[0].seconds, 0.9, 1e-9);
  EXPECT_STREQ(d.modules[1].name, "app");
  EXPECT_STREQ(d.modules[2].name, "iss");
  ASSERT_EQ(d.n_threads, 3u);
  EXPECT_STREQ(d.threads[0].name, "mir-node");
  EXPECT_EQ(d.threads[0].tid, 2);
  EXPECT_NEAR(d.threads[0].seconds, 1.2, 1e-9);
  EXPECT_STREQ(d.threads[1].name, "mir-new");
  EXPECT_EQ(d.threads[1].tid, 9);
  EXPECT_EQ(d.threads[2].tid, 3);
  ASSERT_EQ(d.n_locks, 2u);
  EXPECT_STREQ(d.locks[0].name, "node_inbox");
  EXPECT_NEAR(d.locks[0].seconds, 0.020, 1e-12);
  EXPECT_EQ(d.locks[0].count, 40);
  EXPECT_STREQ(d.locks[1].name, "net_queue");
  EXPECT_NEAR(d.locks[1].seconds, 0.005, 1e-12);
  EXPECT_EQ(d.locks[1].count, 5);
  for (size_t i = 0; i < d.n_modules; i++) EXPECT_EQ(d.modules[i].tid, 0);

  // Nothing committed: no figure per transaction, the rest as before.
  ASSERT_EQ(scrape_delta_compute(&b, &a, 0, &d, err, sizeof err), 0) << err;
  EXPECT_TRUE(std::isnan(d.cpu_s_per_tx));
  EXPECT_EQ(d.n_modules, 3u);
  scrape_snapshot_fini(&a);
  scrape_snapshot_fini(&b);
}

// A counter that went backwards (the replica restarted between the reads) and a page without
// the process's CPU time are errors, not figures.
TEST(ScrapeDelta, RestartAndMissingCpuAreErrors) {
  char err[SCRAPE_ERR_MAX] = "";
  scrape_delta d;
  scrape_snapshot b = Snapshot(kBefore, kStatsBefore, 1);
  scrape_snapshot a = Snapshot(kAfter, kStatsAfter, 2);
  EXPECT_EQ(scrape_delta_compute(&a, &b, 10, &d, err, sizeof err), -1);
  EXPECT_NE(std::string(err).find("went backwards"), std::string::npos) << err;
  // Only the module counters went back: still a restart.
  std::string after_modules = kAfter, was = "{module=\"ordering\"} 2.9";
  after_modules.replace(after_modules.find(was), was.size(), "{module=\"ordering\"} 0.1");
  scrape_snapshot r = Snapshot(after_modules, kStatsAfter, 3);
  EXPECT_EQ(scrape_delta_compute(&b, &r, 10, &d, err, sizeof err), -1);
  scrape_snapshot none = Snapshot("mir_x 1\n", "{\"threads\":[]}", 4);
  EXPECT_EQ(scrape_delta_compute(&b, &none, 10, &d, err, sizeof err), -1);
  EXPECT_STREQ(err, "no single mir_process_cpu_seconds_total sample in /metrics");
  for (scrape_snapshot *s : {&a, &b, &r, &none}) scrape_snapshot_fini(s);
}

// /debug/stats bodies that are not JSON, lack the threads array or hold malformed threads are
// refused with the reason.
TEST(ScrapeDelta, MalformedStatsAreRefused) {
  struct Case {
    const char *body, *want;
  } cases[] = {
      {"{", "not JSON"},
      {"[]", "no \"threads\" array"},
      {"{\"threads\":{}}", "no \"threads\" array"},
      {"{\"threads\":[{\"tid\":\"1\",\"name\":\"a\",\"cpu_seconds\":1}]}", "thread 0: expected"},
      {"{\"threads\":[{\"tid\":1,\"cpu_seconds\":1}]}", "thread 0: expected"},
  };
  for (const Case &c : cases) {
    scrape_snapshot s{};
    char err[SCRAPE_ERR_MAX] = "";
    EXPECT_EQ(scrape_parse_threads(c.body, strlen(c.body), &s, err, sizeof err), -1) << c.body;
    EXPECT_EQ(std::string(err).rfind(c.want, 0), 0u) << err;
    scrape_snapshot_fini(&s);
  }
  std::string many = "{\"threads\":[";
  for (int i = 0; i <= SCRAPE_THREADS_MAX; i++) {
    many += std::string(i ? "," : "") + "{\"tid\":1,\"name\":\"t\",\"cpu_seconds\":0}";
  }
  many += "]}";
  scrape_snapshot s{};
  char err[SCRAPE_ERR_MAX] = "";
  EXPECT_EQ(scrape_parse_threads(many.data(), many.size(), &s, err, sizeof err), -1);
  EXPECT_STREQ(err, "more than 4096 threads");
  scrape_snapshot_fini(&s);
}

// scrape_read names the URL that failed: a canned replica that answers /metrics once and then
// accepts no more connections (so /debug/stats times out), and one whose /metrics is malformed.
TEST(ScrapeRead, ErrorNamesTheUrlThatFailed) {
  CannedServer s("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nm 1\n");
  scrape_url u = s.Url();
  scrape_snapshot snap{};
  char err[SCRAPE_ERR_MAX] = "";
  EXPECT_EQ(scrape_read(&u, 500, &snap, err, sizeof err), -1);
  std::string want = "http://127.0.0.1:" + std::to_string(s.port()) + "/debug/stats: ";
  EXPECT_EQ(std::string(err).rfind(want, 0), 0u) << err;
  scrape_snapshot_fini(&snap);

  CannedServer bad("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nm 1 x\n");
  u = bad.Url();
  EXPECT_EQ(scrape_read(&u, 2000, &snap, err, sizeof err), -1);
  want = "http://127.0.0.1:" + std::to_string(bad.port()) + "/metrics: line 1: ";
  EXPECT_EQ(std::string(err).rfind(want, 0), 0u) << err;
  scrape_snapshot_fini(&snap);
}

}  // namespace
