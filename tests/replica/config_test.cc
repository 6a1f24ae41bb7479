// Tests of mir-replica's configuration file (server/replica/config.h): a minimal file gets the
// documented defaults and resolved paths; every kind of mistake is refused with the file, the
// field and the reason (line and column for JSON syntax); --help documents every field.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "replica/test_dir.h"

extern "C" {
#include "config.h"
#include "mir/alloc.h"
}

namespace {

const char *kMinimal =
    "{\"id\": \"r1\", \"membership\": \"m.json\", \"key_file\": \"k.pem\", \"insecure\": true,\n"
    " \"client_listen\": \"127.0.0.1:9000\", \"data_dir\": \"/var/lib/mir\"}";

// Parses text as file "replica.json" in folder /etc/mir; returns the error detail ("" if ok).
std::string Parse(const std::string &text, mir_replica_config *out = nullptr) {
  mir_replica_config c;
  mir_err err = mir_replica_config_parse(text.data(), text.size(), "replica.json", "/etc/mir", &c);
  if (err != MIR_OK) {
    EXPECT_EQ(err, MIR_ECONFIG);
    return mir_error_detail();
  }
  if (out != nullptr) {
    *out = c;
  } else {
    mir_replica_config_fini(&c);
  }
  return "";
}

// The minimal file with one more member (a JSON fragment such as "\"x\": 1").
std::string With(const std::string &member) {
  std::string s = kMinimal;
  return s.substr(0, s.size() - 1) + ", " + member + "}";
}

TEST(ReplicaConfig, MinimalFileGetsDefaultsAndResolvedPaths) {
  // Relative paths are resolved against the file's folder, absolute ones kept; numeric fields
  // take the documented defaults, Trantor's included.
  mir_replica_config c;
  ASSERT_EQ(Parse(kMinimal, &c), "");
  EXPECT_STREQ(c.id, "r1");
  EXPECT_STREQ(c.membership_file, "/etc/mir/m.json");
  EXPECT_STREQ(c.key_file, "/etc/mir/k.pem");
  EXPECT_STREQ(c.data_dir, "/var/lib/mir");
  EXPECT_TRUE(c.insecure);
  EXPECT_EQ(c.tls_ca_file, nullptr);
  EXPECT_EQ(c.peer_listen, nullptr);
  EXPECT_TRUE(c.store_sync);
  EXPECT_EQ(c.retention_sns, 1000000u);
  EXPECT_EQ(c.client.max_request_bytes, 1u << 20);
  EXPECT_EQ(c.client.max_subscribers_per_client, 32u);
  EXPECT_EQ(c.client.max_subscribers_per_connection, 32u);
  EXPECT_EQ(c.client.subscribe_ahead_max, 10000u);
  EXPECT_EQ(c.client.retry_after_ms, 100u);
  EXPECT_FALSE(c.client_require_cert);
  EXPECT_EQ(c.client_ca_file, nullptr);
  trantor_params d;
  trantor_params_default(&d);
  EXPECT_EQ(c.trantor.segment_length, d.segment_length);
  EXPECT_EQ(c.trantor.batch_timeout_ms, d.batch_timeout_ms);
  mir_replica_config_fini(&c);
}

TEST(ReplicaConfig, EverySectionIsParsed) {
  // Values in every section land in their fields.
  mir_replica_config c;
  ASSERT_EQ(Parse(With("\"store\": {\"sync\": false, \"retention_sns\": 5000}, "
                       "\"client\": {\"max_subscribers\": 7}, \"net\": {\"queue_max_msgs\": 99}, "
                       "\"crypto\": {\"workers\": 2}, \"log_level\": \"debug\", "
                       "\"peer_listen\": \"0.0.0.0:7000\", \"trantor\": {\"segment_length\": 8, "
                       "\"leader_policy\": \"blacklist\", \"client_window\": 77}"),
                  &c),
            "");
  EXPECT_FALSE(c.store_sync);
  EXPECT_EQ(c.retention_sns, 5000u);
  EXPECT_EQ(c.client.max_subscribers, 7u);
  EXPECT_EQ(c.net.queue_max_msgs, 99u);
  EXPECT_EQ(c.crypto_workers, 2u);
  EXPECT_STREQ(c.log_level, "debug");
  EXPECT_STREQ(c.peer_listen, "0.0.0.0:7000");
  EXPECT_EQ(c.trantor.segment_length, 8u);
  EXPECT_EQ(c.trantor.leader_policy_blacklist, 1);
  EXPECT_EQ(c.trantor.client_window, 77u);
  mir_replica_config_fini(&c);
}

TEST(ReplicaConfig, ClientLimitsAndCertificates) {
  // The client section's subscriber limits, start bound and back-pressure hint, and client
  // certificates: require_cert needs client_tls, ca_file needs require_cert (a CA that would be
  // ignored is an error, not a surprise), and every mistake names client.<field>.
  const std::string tls =
      "\"insecure\": false, \"tls\": {\"ca_file\": \"ca.pem\", \"cert_file\": \"r.crt\", "
      "\"key_file\": \"r.key\"}, \"client_tls\": true";
  auto with_tls = [&](const std::string &client) {
    std::string s = kMinimal;
    s = s.substr(0, s.size() - 1);
    s.replace(s.find("\"insecure\": true"), 16, tls);
    return s + ", \"client\": {" + client + "}}";
  };
  mir_replica_config c;
  ASSERT_EQ(Parse(with_tls("\"require_cert\": true, \"ca_file\": \"clients.pem\", "
                           "\"max_subscribers_per_client\": 3, "
                           "\"max_subscribers_per_connection\": 4, \"subscribe_ahead_max\": 0, "
                           "\"retry_after_ms\": 250"),
                  &c),
            "");
  EXPECT_TRUE(c.client_require_cert);
  EXPECT_STREQ(c.client_ca_file, "/etc/mir/clients.pem");
  EXPECT_EQ(c.client.max_subscribers_per_client, 3u);
  EXPECT_EQ(c.client.max_subscribers_per_connection, 4u);
  EXPECT_EQ(c.client.subscribe_ahead_max, 0u);
  EXPECT_EQ(c.client.retry_after_ms, 250u);
  mir_replica_config_fini(&c);
  ASSERT_EQ(Parse(with_tls("\"require_cert\": true"), &c), "");
  EXPECT_EQ(c.client_ca_file, nullptr);  // the replica then uses tls.ca_file
  mir_replica_config_fini(&c);
  struct Case {
    std::string text, want;
  } cases[] = {
      {With("\"client\": {\"require_cert\": true}"),
       "replica.json: client.require_cert: needs \"client_tls\": true"},
      {with_tls("\"ca_file\": \"clients.pem\""),
       "replica.json: client.ca_file: is used only with \"require_cert\": true"},
      {with_tls("\"require_cert\": \"yes\""), "replica.json: client.require_cert: must be true"},
      {With("\"client\": {\"max_subscribers_per_client\": 0}"),
       "replica.json: client.max_subscribers_per_client: must be an integer in 1..65536"},
      {With("\"client\": {\"max_subscribers_per_connection\": 70000}"),
       "client.max_subscribers_per_connection: must be an integer in 1..65536"},
      {With("\"client\": {\"subscribe_ahead_max\": -1}"), "client.subscribe_ahead_max: must be"},
      {With("\"client\": {\"retry_after_ms\": 0}"),
       "replica.json: client.retry_after_ms: must be an integer in 1..60000"},
  };
  for (const auto &k : cases) {
    std::string got = Parse(k.text);
    EXPECT_NE(got.find(k.want), std::string::npos) << "got: " << got << "\nwant: " << k.want;
  }
}

TEST(ReplicaConfig, ErrorsNameTheFileTheFieldAndTheReason) {
  // Each mistake gives "replica.json: <field>: <reason>".
  struct Case {
    std::string text, want;
  } cases[] = {
      {With("\"colour\": 1"), "replica.json: colour: unknown field"},
      {With("\"trantor\": {\"segmentlength\": 1}"), "replica.json: trantor.segmentlength: unknown"},
      {With("\"trantor\": {\"segment_length\": 0}"),
       "replica.json: trantor.segment_length: must be an integer in 1..4096"},
      {With("\"trantor\": {\"segment_length\": \"16\"}"), "trantor.segment_length: must be"},
      {With("\"trantor\": {\"batch_timeout_ms\": 9999}"), "replica.json: trantor.batch_timeout_ms"},
      {With("\"trantor\": {\"leader_policy\": \"fair\"}"), "trantor.leader_policy: must be"},
      {With("\"client\": {\"max_request_bytes\": 10}"), "client.max_request_bytes: must be"},
      {With("\"store\": 3"), "replica.json: store: must be an object"},
      {With("\"store\": {\"sync\": 1}"), "replica.json: store.sync: must be true or false"},
      {With("\"log_level\": \"loud\""), "replica.json: log_level: must be trace"},
      {With("\"peer_listen\": \"nohost\""), "replica.json: peer_listen: must be host:port"},
      {With("\"peer_listen\": \"h:70000\""), "peer_listen: must be host:port"},
      {With("\"tls\": {\"ca_file\": \"ca.pem\"}"), "replica.json: tls: needs ca_file"},
      {With("\"tls\": {\"ca_file\": \"a\", \"cert_file\": \"b\", \"key_file\": \"c\"}"),
       "replica.json: tls: set either"},
      {With("\"client_tls\": true"), "replica.json: client_tls: needs \"tls\""},
      {With("\"net\": {\"backoff_min_ms\": 500, \"backoff_max_ms\": 100}"),
       "net.backoff_max_ms: must be >= backoff_min_ms"},
      {"{\"id\": \"r1\"}", "replica.json: membership: required"},
      {With("\"id\": \"r1\""), "replica.json:"},  // a duplicate key
      {"{\"id\": \"a/b\", \"membership\": \"m\", \"key_file\": \"k\", \"insecure\": true, "
       "\"client_listen\": \"h:1\", \"data_dir\": \"d\"}",
       "replica.json: id: must be 1 to 63 characters"},
      {"{\"id\": \"r1\",\n  \"membership\": }", "replica.json:2:"},
      {"[1, 2]", "replica.json: the configuration must be a JSON object"},
      {With("\"log_level\": \"\""), "replica.json: log_level: must be a non-empty string"},
      {With("\"trantor\": {\"batch_timeout_ms\": 9999}"),
       "replica.json: trantor.batch_timeout_ms: must be > 0 and below view_change_sn_timeout_ms"},
  };
  for (const auto &c : cases) {
    std::string got = Parse(c.text);
    EXPECT_NE(got.find(c.want), std::string::npos) << "got: " << got << "\nwant: " << c.want;
  }
}

TEST(ReplicaConfig, LoadReadsTheFileAndNamesIt) {
  // A missing file is MIR_EIO naming it; a file on disk resolves paths against its own folder.
  reptest::TempDir d;
  mir_replica_config c;
  std::string missing = d.sub("none.json");
  EXPECT_EQ(mir_replica_config_load(missing.c_str(), &c), MIR_EIO);
  EXPECT_NE(std::string(mir_error_detail()).find(missing), std::string::npos);
  std::string path = d.sub("r.json");
  std::ofstream(path) << kMinimal;
  ASSERT_EQ(mir_replica_config_load(path.c_str(), &c), MIR_OK) << mir_error_detail();
  EXPECT_EQ(std::string(c.membership_file), d.sub("m.json"));
  EXPECT_EQ(std::string(c.file), path);
  mir_replica_config_fini(&c);
}

TEST(ReplicaConfig, HelpDocumentsEveryField) {
  // The help text names every field the parser accepts, with defaults and bounds.
  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  mir_replica_config_help(f);
  fclose(f);
  std::string help(buf, len);
  free(buf);
  for (const char *field : {"id",
                            "membership",
                            "key_file",
                            "insecure",
                            "tls.ca_file",
                            "tls.cert_file",
                            "tls.key_file",
                            "peer_listen",
                            "client_listen",
                            "client_tls",
                            "data_dir",
                            "log_level",
                            "store.sync",
                            "store.retention_sns",
                            "client.max_request_bytes",
                            "client.max_txs_per_request",
                            "client.max_submit_streams",
                            "client.max_requests_in_flight",
                            "client.max_bytes_in_flight",
                            "client.max_subscribers",
                            "client.subscriber_stall_ms",
                            "net.max_message_bytes",
                            "net.queue_max_msgs",
                            "net.queue_max_bytes",
                            "net.backoff_min_ms",
                            "net.backoff_max_ms",
                            "net.keepalive_ms",
                            "crypto.workers",
                            "trantor.segment_length",
                            "trantor.num_buckets",
                            "trantor.retained_epochs",
                            "trantor.view_change_sn_timeout_ms",
                            "trantor.view_change_segment_timeout_ms",
                            "trantor.done_resend_ms",
                            "trantor.catch_up_delay_ms",
                            "trantor.view_change_resend_ms",
                            "trantor.msg_buf_bytes",
                            "trantor.max_batch_txs",
                            "trantor.max_batch_bytes",
                            "trantor.batch_timeout_ms",
                            "trantor.max_tx_bytes",
                            "trantor.client_window",
                            "trantor.mempool_max_txs",
                            "trantor.mempool_max_bytes",
                            "trantor.checkpoint_resend_ms",
                            "trantor.leader_policy"}) {
    EXPECT_NE(help.find(std::string(field) + " "), std::string::npos) << field;
  }
  EXPECT_NE(help.find("default 16"), std::string::npos);
}

}  // namespace
