// Heavy and hostile clients against a real mir-replica process on 127.0.0.1 (one replica: what
// is tested is its client API): a Subscribe from far beyond the log is refused, subscriber slots
// are limited per connection and per client id, client ids that are not valid on the wire are
// rejected, and a Submit stream whose last message is cut short ends OK with "mir-requests"
// counting only the requests read (gRPC drops the cut message without telling the server; sent
// with curl, which can write such a stream). Client certificates against real replicas are in
// tests/sdk/e2e_test.cc, an oversized request in cluster_test.cc. Every wait is bounded.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "integration/api_client.h"
#include "integration/cluster.h"

using mirtest::Channel;
using mirtest::Cluster;
using mirtest::ClusterOptions;
using mirtest::SubmitStream;
using mirtest::Subscription;

namespace {

// Protobuf encoding by hand, for bytes the generated code would not write (a NUL in a string).
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  return out + static_cast<char>(v);
}

std::string LenField(unsigned field, const std::string &bytes) {
  return Varint(field << 3 | 2) + Varint(bytes.size()) + bytes;
}

std::string RawRequest(uint64_t request_id, const std::vector<std::string> &client_ids) {
  std::string out = Varint(1 << 3) + Varint(request_id);
  uint64_t tx_no = 0;
  for (const std::string &id : client_ids) {
    out += LenField(2, LenField(1, id) + Varint(2 << 3) + Varint(tx_no++) + LenField(3, "x"));
  }
  return out;
}

class ClientDefences : public ::testing::Test {
 protected:
  void Start(const std::string &client_json) {
    ClusterOptions o;
    o.n = 1;
    o.client_json = client_json;
    cluster_ = std::make_unique<Cluster>(o);
    ASSERT_EQ(cluster_->error(), "");
    ASSERT_TRUE(cluster_->StartAll());
    ASSERT_TRUE(cluster_->WaitReady(30000)) << cluster_->LogTail(0);
  }
  std::string Addr() const { return cluster_->ClientAddr(0); }
  std::unique_ptr<Cluster> cluster_;
};

// The next message of sub: 1 (a delivery), 0 (nothing yet: an admitted subscriber waiting), -1
// (the stream ended).
int Next(Subscription &sub, int timeout_ms) {
  Mir__Api__Delivery *d = nullptr;
  int r = sub.Next(&d, timeout_ms);
  if (r == 1) mir__api__delivery__free_unpacked(d, nullptr);
  return r;
}

TEST_F(ClientDefences, FarAheadSubscribesAndSlotHoggingAreRefused) {
  // subscribe_ahead_max 100: from 2^63 is refused (OUT_OF_RANGE, "mir-range: ahead"). At most two
  // subscribers per connection and three per client id: a third over one connection is refused,
  // and a fourth for client "x" over a third connection too; others still get in.
  Start(
      "\"subscribe_ahead_max\": 100, \"max_subscribers_per_connection\": 2, "
      "\"max_subscribers_per_client\": 3");
  Channel a(Addr(), nullptr, true), b(Addr(), nullptr, true), c(Addr(), nullptr, true);
  Subscription far(a.get(), uint64_t{1} << 63);
  EXPECT_EQ(Next(far, 10000), -1);
  EXPECT_EQ(far.status(), GRPC_STATUS_OUT_OF_RANGE) << far.details();
  EXPECT_EQ(far.trailer("mir-range"), "ahead");
  Subscription a1(a.get(), 50), a2(a.get(), 50);  // admitted: they wait for sn 50
  EXPECT_EQ(Next(a1, 500), 0);
  EXPECT_EQ(Next(a2, 500), 0);
  Subscription a3(a.get(), 50);
  EXPECT_EQ(Next(a3, 10000), -1);
  EXPECT_EQ(a3.status(), GRPC_STATUS_RESOURCE_EXHAUSTED);
  EXPECT_NE(a3.details().find("over this connection"), std::string::npos) << a3.details();
  Subscription b1(b.get(), 50, 120000, "x"), b2(b.get(), 50, 120000, "x");
  Subscription c1(c.get(), 50, 120000, "x");
  EXPECT_EQ(Next(b1, 500), 0);
  EXPECT_EQ(Next(b2, 500), 0);
  EXPECT_EQ(Next(c1, 500), 0);
  Subscription c2(c.get(), 50, 120000, "x");
  EXPECT_EQ(Next(c2, 10000), -1);
  EXPECT_EQ(c2.status(), GRPC_STATUS_RESOURCE_EXHAUSTED);
  EXPECT_NE(c2.details().find("for client x"), std::string::npos) << c2.details();
  Subscription c3(c.get(), 50, 120000, "y");
  EXPECT_EQ(Next(c3, 500), 0);
}

TEST_F(ClientDefences, ClientIdsInvalidOnTheWireAreRejected) {
  // A NUL inside, bytes that are not UTF-8, 65 bytes: each rejected (TX_INVALID) with the rule,
  // and a valid id in the same request is taken.
  Start("");
  Channel ch(Addr());
  SubmitStream st(ch.get());
  ASSERT_TRUE(st.SendRaw(RawRequest(
      1, {std::string("ok\0id", 5), "\xc3\x28", std::string(65, 'x'), "ok-id.1:a@b_c"})));
  Mir__Api__SubmitResponse *r = nullptr;
  ASSERT_EQ(st.Recv(&r, 10000), 1);
  ASSERT_EQ(r->n_results, 4u);
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(r->results[i]->status, TRANTOR__TX_STATUS__TX_INVALID) << i;
    EXPECT_EQ(std::string(r->results[i]->reason),
              "invalid client id: it must be 1 to 64 bytes of [A-Za-z0-9._:@-]");
  }
  EXPECT_EQ(r->results[3]->status, TRANTOR__TX_STATUS__TX_ACCEPTED) << r->results[3]->reason;
  mir__api__submit_response__free_unpacked(r, nullptr);
}

// Runs curl with args, output (stderr included) to a file; returns the output, or "" when curl
// cannot run.
std::string Curl(const std::vector<std::string> &args, const std::string &dir) {
  std::vector<std::string> argv = {"/usr/bin/curl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out = dir + "/curl.out";
  if (mirtest::RunProgram(argv, out, 20000) != 0) return "";
  return mirtest::ReadFile(out);
}

TEST_F(ClientDefences, ATruncatedLastRequestIsNotCountedAsRead) {
  // Over HTTP/2 by hand (curl): one whole SubmitRequest followed by a gRPC message whose length
  // prefix promises more bytes than the stream carries. The replica answers the whole one, and
  // ends the stream OK with "mir-requests: 1": the cut one never reached it.
  if (access("/usr/bin/curl", X_OK) != 0) GTEST_SKIP() << "curl not found";
  Start("");
  std::string whole = RawRequest(7, {"curl-client"});
  std::string body;
  body += '\0';
  for (int shift = 24; shift >= 0; shift -= 8) body += static_cast<char>(whole.size() >> shift);
  body += whole;
  body += std::string("\0\0\0\0\x64", 5) + "\x08\x08\x12";  // promises 100 bytes, carries 3
  std::string file = cluster_->dir() + "/truncated.bin";
  FILE *f = fopen(file.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  fwrite(body.data(), 1, body.size(), f);
  fclose(f);
  std::string out =
      Curl({"-sS", "-v", "--http2-prior-knowledge", "-H", "content-type: application/grpc", "-H",
            "te: trailers", "--data-binary", "@" + file, "-o", cluster_->dir() + "/answer.bin",
            "http://" + Addr() + "/mir.api.Client/Submit"},
           cluster_->dir());
  if (out.find("HTTP/2 200") == std::string::npos) GTEST_SKIP() << "curl without HTTP/2: " << out;
  EXPECT_NE(out.find("grpc-status: 0"), std::string::npos) << out;
  EXPECT_NE(out.find("mir-requests: 1"), std::string::npos) << out;
  std::string answer = mirtest::ReadFile(cluster_->dir() + "/answer.bin");
  ASSERT_GT(answer.size(), 5u);  // one framed SubmitResponse for request 7
  Mir__Api__SubmitResponse *r = mir__api__submit_response__unpack(
      nullptr, answer.size() - 5, reinterpret_cast<const uint8_t *>(answer.data()) + 5);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->request_id, 7u);
  mir__api__submit_response__free_unpacked(r, nullptr);
}

}  // namespace
