// Tests of Trantor's write-ahead log encodings and recovery (server/trantor/wal): the CRC-32C
// (known vector, the instruction and the tables agree), keys that sort by epoch so that one range
// deletion drops an epoch's records, recovery of every record kind into the right instance, and
// damage that recovery refuses (checksums, truncation, unknown keys, a vote without its batch)
// instead of skipping it; records of epochs below the stable checkpoint are left out.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/storage.h"
#include "trantor_common.h"
#include "wal.h"
}

namespace {

using Store = std::map<std::string, std::string>;  // a store: keys in byte order

std::string key_of(const uint8_t *k, size_t n) {
  return std::string(reinterpret_cast<const char *>(k), n);
}

std::string ikey(uint64_t epoch, uint32_t seg, char kind, uint64_t sn = 0,
                 const std::string &digest = "") {
  uint8_t k[TRANTOR_WAL_KEY_MAX];
  size_t n = trantor_wal_instance_key(
      k, epoch, seg, kind, sn,
      digest.empty() ? nullptr : reinterpret_cast<const uint8_t *>(digest.data()));
  return key_of(k, n);
}

// Applies the ops of w (borrowed) to st, as a store does.
void apply_write(Store &st, const Mir__StoreWrite *w) {
  for (size_t i = 0; i < w->n_ops; i++) {
    const Mir__StoreOp *op = w->ops[i];
    std::string k(reinterpret_cast<char *>(op->key.data), op->key.len);
    if (op->kind == MIR__STORE_OP__KIND__PUT) {
      st[k] = std::string(reinterpret_cast<char *>(op->value.data), op->value.len);
    } else if (op->kind == MIR__STORE_OP__KIND__DELETE) {
      st.erase(k);
    } else {
      std::string e(reinterpret_cast<char *>(op->end.data), op->end.len);
      st.erase(st.lower_bound(k), st.lower_bound(e));
    }
  }
}

// Puts record msg under key into st through a StoreWrite.
void put(Store &st, const std::string &key, const ProtobufCMessage *msg) {
  Mir__StoreWrite *w = mir_storage_write_new();
  trantor_wal_put(w, reinterpret_cast<const uint8_t *>(key.data()), key.size(), msg);
  apply_write(st, w);
  protobuf_c_message_free_unpacked(&w->base, nullptr);
}

mir_err recover(const Store &st, Trantor__Recovered **out) {
  std::vector<trantor_wal_kv> kvs;
  for (const auto &kv : st) {
    kvs.push_back({reinterpret_cast<const uint8_t *>(kv.first.data()), kv.first.size(),
                   reinterpret_cast<const uint8_t *>(kv.second.data()), kv.second.size()});
  }
  return trantor_wal_recover(kvs.data(), kvs.size(), out);
}

const std::string kD1(32, 'a'), kD2(32, 'b');

// A batch record and its Q-set entry, a P-set entry, a commit and a view of instance (e, seg).
void put_instance(Store &st, uint64_t e, uint32_t seg) {
  Trantor__WalCert c = TRANTOR__WAL_CERT__INIT;
  c.cert = {5, reinterpret_cast<uint8_t *>(const_cast<char *>("batch"))};
  put(st, ikey(e, seg, TRANTOR_WAL_BATCH, 7, kD1), &c.base);
  put(st, ikey(e, seg, TRANTOR_WAL_BATCH, 7, kD2), &c.base);
  Trantor__WalKnown k = TRANTOR__WAL_KNOWN__INIT;
  k.view = 2;
  put(st, ikey(e, seg, TRANTOR_WAL_KNOWN, 7, kD2), &k.base);
  Trantor__WalSlot s = TRANTOR__WAL_SLOT__INIT;
  s.view = 2;
  s.digest = {32, reinterpret_cast<uint8_t *>(const_cast<char *>(kD2.data()))};
  put(st, ikey(e, seg, TRANTOR_WAL_PREPARED, 7), &s.base);
  put(st, ikey(e, seg, TRANTOR_WAL_COMMITTED, 7), &s.base);
  Trantor__WalView v = TRANTOR__WAL_VIEW__INIT;
  v.view = 3;
  v.in_view_change = true;
  put(st, ikey(e, seg, TRANTOR_WAL_VIEW), &v.base);
}

TEST(WalCrc, KnownVectorAndTheTwoImplementationsAgree) {
  EXPECT_EQ(trantor_wal_crc32c(reinterpret_cast<const uint8_t *>("123456789"), 9), 0xe3069283u);
  EXPECT_EQ(trantor_wal_crc32c_portable(reinterpret_cast<const uint8_t *>("123456789"), 9),
            0xe3069283u);
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf(70000);
  for (auto &b : buf) b = static_cast<uint8_t>(rng());
  for (size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 4096u, 70000u}) {
    for (size_t off : {0u, 1u, 3u}) {
      if (off + len > buf.size()) continue;
      EXPECT_EQ(trantor_wal_crc32c(buf.data() + off, len),
                trantor_wal_crc32c_portable(buf.data() + off, len))
          << len << " at " << off;
    }
  }
}

TEST(WalKeys, EpochsSortAndOneRangeDeletionDropsTheEpochsBelow) {
  Store st;
  put_instance(st, 1, 0);
  put_instance(st, 2, 3);
  put_instance(st, 256, 1);
  Trantor__WalCheckpointSig sig = TRANTOR__WAL_CHECKPOINT_SIG__INIT;
  put(st, ikey(2, TRANTOR_WAL_CHECKPOINT_SEGMENT, TRANTOR_WAL_CHECKPOINT_SIG), &sig.base);
  Trantor__WalFloor f = TRANTOR__WAL_FLOOR__INIT;
  uint8_t k[TRANTOR_WAL_KEY_MAX];
  put(st, key_of(k, trantor_wal_floor_key(k)), &f.base);
  Mir__StoreWrite *w = mir_storage_write_new();
  trantor_wal_delete_epochs_below(w, 256);
  apply_write(st, w);
  protobuf_c_message_free_unpacked(&w->base, nullptr);
  for (const auto &kv : st) {
    if (kv.first[0] != 'I') continue;
    uint64_t e = 0;
    for (int i = 1; i <= 8; i++) e = e << 8 | static_cast<uint8_t>(kv.first[i]);
    EXPECT_EQ(e, 256u);
  }
  EXPECT_EQ(st.count(key_of(k, trantor_wal_floor_key(k))), 1u) << "global records stay";
  char buf[96];
  EXPECT_STREQ(
      trantor_wal_key_format(reinterpret_cast<const uint8_t *>(ikey(7, 2, 'P', 130).data()), 22,
                             buf, sizeof buf),
      "I/7/2/P/130");
}

TEST(WalRecover, EveryRecordGoesToItsInstance) {
  Store st;
  put_instance(st, 4, 1);
  put_instance(st, 5, 0);
  Trantor__WalCheckpointSig sig = TRANTOR__WAL_CHECKPOINT_SIG__INIT;
  sig.signature = {3, reinterpret_cast<uint8_t *>(const_cast<char *>("sig"))};
  put(st, ikey(5, TRANTOR_WAL_CHECKPOINT_SEGMENT, TRANTOR_WAL_CHECKPOINT_SIG), &sig.base);
  uint8_t k[TRANTOR_WAL_KEY_MAX];
  Trantor__WalFloor f = TRANTOR__WAL_FLOOR__INIT;
  f.epoch = 9;
  put(st, key_of(k, trantor_wal_floor_key(k)), &f.base);
  put(st, key_of(k, trantor_wal_rejoin_key(k)), &f.base);
  Trantor__WalParams wp = TRANTOR__WAL_PARAMS__INIT;
  wp.hash = {4, reinterpret_cast<uint8_t *>(const_cast<char *>("hash"))};
  put(st, key_of(k, trantor_wal_params_key(k)), &wp.base);
  Trantor__Recovered *r = nullptr;
  ASSERT_EQ(recover(st, &r), MIR_OK) << mir_error_detail();
  EXPECT_EQ(r->vote_floor, 9u);
  EXPECT_TRUE(r->rejoin);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(r->params_hash.data), r->params_hash.len), "hash");
  ASSERT_EQ(r->n_instances, 2u);
  EXPECT_EQ(r->instances[0]->epoch, 4u);
  EXPECT_EQ(r->instances[0]->segment, 1u);
  EXPECT_EQ(r->instances[1]->epoch, 5u);
  const Trantor__PbftRecovered *p = r->instances[1]->pbft;
  ASSERT_EQ(p->n_batches, 2u);
  EXPECT_FALSE(p->batches[0]->preprepared);
  EXPECT_TRUE(p->batches[1]->preprepared);
  EXPECT_EQ(p->batches[1]->preprepared_view, 2u);
  ASSERT_EQ(p->n_prepared, 1u);
  EXPECT_EQ(p->prepared[0]->view, 2u);
  ASSERT_EQ(p->n_committed, 1u);
  EXPECT_EQ(p->committed[0]->sn, 7u);
  ASSERT_NE(p->view, nullptr);
  EXPECT_EQ(p->view->view, 3u);
  EXPECT_TRUE(p->view->in_view_change);
  ASSERT_EQ(r->n_checkpoint_sigs, 1u);
  EXPECT_EQ(r->checkpoint_sigs[0]->epoch, 5u);
  protobuf_c_message_free_unpacked(&r->base, nullptr);
}

TEST(WalRecover, InstancesBelowTheStableCheckpointAreLeftOut) {
  // A retained epoch's instance may write after the checkpoint's write deleted its epoch (a late
  // commit): its records are left-overs, even inconsistent ones, not votes to take back.
  Store st;
  Trantor__WalKnown orphan = TRANTOR__WAL_KNOWN__INIT;
  put(st, ikey(2, 0, TRANTOR_WAL_KNOWN, 3, kD1), &orphan.base);  // no batch behind it
  put_instance(st, 3, 0);
  Trantor__EpochConfig ec = TRANTOR__EPOCH_CONFIG__INIT;
  ec.epoch = 3;
  Trantor__StateSnapshot snap = TRANTOR__STATE_SNAPSHOT__INIT;
  snap.epoch_config = &ec;
  Trantor__StableCheckpoint chk = TRANTOR__STABLE_CHECKPOINT__INIT;
  chk.snapshot = &snap;
  uint8_t k[TRANTOR_WAL_KEY_MAX];
  put(st, key_of(k, trantor_wal_stable_key(k)), &chk.base);
  Trantor__Recovered *r = nullptr;
  ASSERT_EQ(recover(st, &r), MIR_OK) << mir_error_detail();
  ASSERT_EQ(r->n_instances, 1u);
  EXPECT_EQ(r->instances[0]->epoch, 3u);
  ASSERT_NE(r->checkpoint, nullptr);
  protobuf_c_message_free_unpacked(&r->base, nullptr);
}

TEST(WalRecover, DamageIsAnErrorNamingTheRecord) {
  Store good;
  put_instance(good, 4, 1);
  auto expect_refused = [](const Store &st, const char *what) {
    Trantor__Recovered *r = nullptr;
    EXPECT_EQ(recover(st, &r), MIR_EIO) << what;
    EXPECT_EQ(r, nullptr);
    std::string d = mir_error_detail();
    EXPECT_NE(d.find("write-ahead log"), std::string::npos) << d;
    return d;
  };
  std::string pkey = ikey(4, 1, TRANTOR_WAL_PREPARED, 7);
  Store st = good;
  st[pkey][0] ^= 1;  // a flipped bit
  EXPECT_NE(expect_refused(st, "flip").find("I/4/1/P/7: checksum mismatch"), std::string::npos);
  st = good;
  st[pkey].resize(st[pkey].size() - 1);  // a torn value
  expect_refused(st, "torn");
  st = good;
  st[pkey] = "ab";  // shorter than a checksum
  expect_refused(st, "short");
  st = good;
  st.erase(ikey(4, 1, TRANTOR_WAL_BATCH, 7, kD2));  // a Q-set entry without its batch
  EXPECT_NE(expect_refused(st, "orphan").find("without the batch"), std::string::npos);
  st = good;
  st["Z"] = good.begin()->second;  // a key of no known kind
  expect_refused(st, "unknown");
  st = good;
  st[ikey(4, 1, TRANTOR_WAL_PREPARED, 7).substr(0, 20)] = good.begin()->second;  // cut key
  expect_refused(st, "malformed key");
  st = good;
  Trantor__WalSlot bad = TRANTOR__WAL_SLOT__INIT;  // a digest of the wrong length
  bad.digest = {3, reinterpret_cast<uint8_t *>(const_cast<char *>("abc"))};
  put(st, pkey, &bad.base);
  expect_refused(st, "digest");
}

TEST(WalRecover, AnEmptyLogRecoversNothing) {
  Store st;
  Trantor__Recovered *r = nullptr;
  ASSERT_EQ(recover(st, &r), MIR_OK);
  EXPECT_EQ(r->n_instances, 0u);
  EXPECT_EQ(r->checkpoint, nullptr);
  EXPECT_FALSE(r->rejoin);
  protobuf_c_message_free_unpacked(&r->base, nullptr);
}

}  // namespace
