// mir-bench --metrics against a real 4-replica cluster with the HTTP endpoint on: every replica
// gets its paragraph (CPU per committed transaction, busiest modules, threads and locks) in the
// text and the JSON report, with a CPU figure per transaction that is positive and finite; a URL
// nobody answers is reported as not read while the run completes.
#include <gtest/gtest.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "integration/cluster.h"

namespace {

using mirtest::Cluster;
using mirtest::ClusterOptions;

// A port on 127.0.0.1 that nothing listens on (bound, then closed again).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

TEST(BenchMetrics, PerReplicaSectionsInTextAndJson) {
  ClusterOptions o;
  o.http = true;
  o.store_sync = false;
  Cluster c(o);
  ASSERT_EQ(c.error(), "");
  ASSERT_TRUE(c.StartAll());
  ASSERT_TRUE(c.WaitReady(60000));

  std::vector<std::string> urls;
  std::string list;
  for (size_t i = 0; i < c.size(); i++) urls.push_back("http://" + c.HttpAddr(i));
  int closed = ClosedPort();
  ASSERT_GT(closed, 0);
  urls.push_back("http://127.0.0.1:" + std::to_string(closed));
  for (size_t i = 0; i < urls.size(); i++) list += (i ? "," : "") + urls[i];

  std::string json_path = c.dir() + "/bench.json", out_path = c.dir() + "/bench.out";
  int st = mirtest::RunProgram({mirtest::BinDir() + "/mir-bench",
                                "--replicas",
                                c.ClientAddrs(),
                                "--clients",
                                "2",
                                "--rate",
                                "300",
                                "--size",
                                "64",
                                "--duration",
                                "3",
                                "--warmup",
                                "0",
                                "--drain",
                                "20",
                                "--connect-timeout-ms",
                                "30000",
                                "--metrics",
                                list,
                                "--json",
                                json_path},
                               out_path, 120000);
  std::string out = mirtest::ReadFile(out_path);
  ASSERT_EQ(st, 0) << out;

  // The text: a paragraph per replica, the unreachable URL named with the reason.
  EXPECT_NE(out.find("replicas, from their /metrics and /debug/stats before and after the run:"),
            std::string::npos)
      << out;
  for (size_t i = 0; i < c.size(); i++) {
    std::string head = "replica " + urls[i] + ": ";
    size_t at = out.find(head);
    ASSERT_NE(at, std::string::npos) << out;
    std::string para = out.substr(at, out.find("\nreplica ", at + 1) - at);
    EXPECT_NE(para.find(" us CPU per committed transaction ("), std::string::npos) << para;
    EXPECT_NE(para.find("\n  busiest modules (busy CPU): "), std::string::npos) << para;
    EXPECT_NE(para.find("\n  busiest threads (CPU): "), std::string::npos) << para;
    EXPECT_NE(para.find("\n  most contended locks (time waited):"), std::string::npos) << para;
  }
  EXPECT_NE(out.find("replica " + urls.back() + ": not read: " + urls.back() +
                     "/metrics: cannot connect: Connection refused"),
            std::string::npos)
      << out;

  // The JSON: the same, with figures.
  json_error_t je;
  json_t *root = json_load_file(json_path.c_str(), 0, &je);
  ASSERT_NE(root, nullptr) << je.text << "\n" << mirtest::ReadFile(json_path);
  json_int_t committed = json_integer_value(json_object_get(root, "committed"));
  EXPECT_GT(committed, 0);
  json_t *rm = json_object_get(root, "replica_metrics");
  ASSERT_EQ(json_array_size(rm), urls.size());
  for (size_t i = 0; i < c.size(); i++) {
    json_t *r = json_array_get(rm, i);
    SCOPED_TRACE(urls[i]);
    EXPECT_STREQ(json_string_value(json_object_get(r, "url")), urls[i].c_str());
    ASSERT_TRUE(json_is_true(json_object_get(r, "ok"))) << mirtest::ReadFile(json_path);
    double per_tx = json_number_value(json_object_get(r, "cpu_seconds_per_tx"));
    EXPECT_TRUE(std::isfinite(per_tx));
    EXPECT_GT(per_tx, 0);
    EXPECT_LT(per_tx, 0.1);  // seconds: a larger figure would mean a unit mix-up
    EXPECT_EQ(json_integer_value(json_object_get(r, "committed")), committed);
    EXPECT_GT(json_number_value(json_object_get(r, "cpu_seconds")), 0);
    EXPECT_GT(json_number_value(json_object_get(r, "delivered")), 0);
    json_t *modules = json_object_get(r, "modules");
    ASSERT_GE(json_array_size(modules), 1u);
    EXPECT_GT(json_number_value(json_object_get(json_array_get(modules, 0), "busy_seconds")), 0);
    json_t *threads = json_object_get(r, "threads");
    ASSERT_GE(json_array_size(threads), 1u);
    EXPECT_GT(json_integer_value(json_object_get(json_array_get(threads, 0), "tid")), 0);
    EXPECT_TRUE(json_is_array(json_object_get(r, "locks")));
  }
  json_t *bad = json_array_get(rm, urls.size() - 1);
  EXPECT_TRUE(json_is_false(json_object_get(bad, "ok")));
  EXPECT_NE(std::string(json_string_value(json_object_get(bad, "error"))).find(urls.back()),
            std::string::npos);
  json_decref(root);
  if (HasFailure()) c.Keep();
}

}  // namespace
