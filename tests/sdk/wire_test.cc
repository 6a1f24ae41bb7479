// Tests of the validation and canonical form of deliveries (sdk/src/wire.h): what a replica sends
// is checked, filtered by client id on the client side, and equal content gives equal bytes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "wire.h"
}

namespace {

struct Tx {
  std::string id;
  uint64_t no;
  std::string data;
};

std::vector<uint8_t> Pack(uint64_t sn, const std::vector<Tx> &txs, size_t hash_len = 32) {
  std::vector<Trantor__Tx> t(txs.size());
  std::vector<Trantor__Tx *> p(txs.size());
  for (size_t i = 0; i < txs.size(); i++) {
    trantor__tx__init(&t[i]);
    t[i].client_id = const_cast<char *>(txs[i].id.c_str());
    t[i].tx_no = txs[i].no;
    t[i].data.data = reinterpret_cast<uint8_t *>(const_cast<char *>(txs[i].data.data()));
    t[i].data.len = txs[i].data.size();
    p[i] = &t[i];
  }
  std::vector<uint8_t> hash(hash_len, 7);
  Mir__Api__Delivery d = MIR__API__DELIVERY__INIT;
  d.sn = sn;
  d.epoch = 1;
  d.n_txs = txs.size();
  d.txs = p.data();
  d.log_hash.data = hash.data();
  d.log_hash.len = hash.size();
  std::vector<uint8_t> out(mir__api__delivery__get_packed_size(&d));
  mir__api__delivery__pack(&d, out.data());
  return out;
}

std::vector<uint8_t> Canon(const std::vector<uint8_t> &in, const char *filter, int *rc,
                           uint64_t *sn = nullptr) {
  uint8_t *out = nullptr;
  size_t len = 0;
  uint64_t s = 0;
  const char *why = nullptr;
  *rc = miri_cl_delivery_canon(in.data(), in.size(), filter, &s, &out, &len, &why);
  std::vector<uint8_t> v(out, out + (out ? len : 0));
  free(out);
  if (sn) *sn = s;
  return v;
}

TEST(SdkWire, FilteringOnTheClientMatchesFilteringOnTheReplica) {
  // A full delivery filtered by the SDK and a delivery the replica already filtered give the
  // same canonical bytes, so both kinds of correct replica vote together.
  int rc = 0;
  uint64_t sn = 0;
  auto full = Canon(Pack(3, {{"a", 0, "x"}, {"b", 0, "y"}, {"a", 1, "z"}}), "a", &rc, &sn);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(sn, 3u);
  auto pre = Canon(Pack(3, {{"a", 0, "x"}, {"a", 1, "z"}}), "a", &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(full, pre);
  auto other = Canon(Pack(3, {{"a", 0, "x"}, {"a", 1, "Z"}}), "a", &rc);
  EXPECT_NE(full, other);
}

TEST(SdkWire, UnknownFieldsDoNotChangeTheVote) {
  // Extra bytes a faulty replica appends as an unknown field vanish in the canonical form.
  auto base = Pack(1, {{"a", 0, "x"}});
  auto extended = base;
  extended.insert(extended.end(), {0xf8, 0x3f, 0x01});  // field 1023, varint 1
  int rc = 0;
  EXPECT_EQ(Canon(base, nullptr, &rc), Canon(extended, nullptr, &rc));
  EXPECT_EQ(rc, 0);
}

TEST(SdkWire, MalformedDeliveriesAreRefused) {
  // Undecodable bytes and a log hash that is not 32 bytes are refused with a reason.
  int rc = 0;
  Canon({0xff, 0xff, 0xff}, nullptr, &rc);
  EXPECT_EQ(rc, -1);
  Canon(Pack(1, {{"a", 0, "x"}}, 31), nullptr, &rc);
  EXPECT_EQ(rc, -1);
  std::string long_id(MIRI_CL_WIRE_ID_MAX + 1, 'i');
  Canon(Pack(1, {{long_id, 0, "x"}}), nullptr, &rc);
  EXPECT_EQ(rc, -1);
}

TEST(SdkWire, EntryViewShowsTheTransactions) {
  // A canonical delivery decodes into the public entry type with its transactions.
  int rc = 0;
  auto c = Canon(Pack(9, {{"a", 4, "data"}}), nullptr, &rc);
  miri_cl_entry_view v;
  ASSERT_EQ(0, miri_cl_entry_view_init(&v, c.data(), c.size()));
  EXPECT_EQ(v.entry.sn, 9u);
  EXPECT_EQ(v.entry.epoch, 1u);
  ASSERT_EQ(v.entry.n_txs, 1u);
  EXPECT_STREQ(v.entry.txs[0].client_id, "a");
  EXPECT_EQ(v.entry.txs[0].tx_no, 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(v.entry.txs[0].data), v.entry.txs[0].len),
            "data");
  EXPECT_EQ(v.entry.log_hash_len, 32u);
  miri_cl_entry_view_fini(&v);
}

TEST(SdkWire, SubmitResponsesAreChecked) {
  // A response must carry one known status per transaction, unless it refuses the request.
  Mir__Api__TxResult r0 = MIR__API__TX_RESULT__INIT;
  Mir__Api__TxResult *rs[1] = {&r0};
  Mir__Api__SubmitResponse resp = MIR__API__SUBMIT_RESPONSE__INIT;
  resp.n_results = 1;
  resp.results = rs;
  EXPECT_EQ(nullptr, miri_cl_submit_response_check(&resp, 1));
  EXPECT_NE(nullptr, miri_cl_submit_response_check(&resp, 2));
  r0.status = static_cast<Trantor__TxStatus>(99);
  EXPECT_NE(nullptr, miri_cl_submit_response_check(&resp, 1));
  resp.error = const_cast<char *>("malformed");
  EXPECT_EQ(nullptr, miri_cl_submit_response_check(&resp, 2));
}

}  // namespace
