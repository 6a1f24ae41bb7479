// Tests of the ordered log (server/replica/ordered_log.h) over a real store: the hash chain is the
// one api.proto defines, the snapshot is the position and the chain, a reopened log serves every
// stored entry and confirms the re-deliveries after a restore, a re-delivery or a checkpoint that
// contradicts a stored entry stops the log with both hashes instead of replacing it, retention and
// state transfer keep the retained range without gaps, reads come from memory or the store alike,
// and the listener sees the log grow.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "replica/test_dir.h"

extern "C" {
#include "api/api.pb-c.h"
#include "mir/alloc.h"
#include "ordered_log.h"
#include "trantor_common.h"
}

namespace {

// Owns transactions for one entry.
struct Entry {
  std::vector<Trantor__Tx> tx;
  std::vector<Trantor__Tx *> ptr;
  std::vector<std::string> data;
  explicit Entry(const std::vector<std::string> &values, const char *client = "c") {
    data = values;
    tx.resize(values.size());
    for (size_t i = 0; i < values.size(); i++) {
      trantor__tx__init(&tx[i]);
      tx[i].client_id = const_cast<char *>(client);
      tx[i].tx_no = i;
      tx[i].data.data = reinterpret_cast<uint8_t *>(&data[i][0]);
      tx[i].data.len = data[i].size();
    }
    for (auto &t : tx) ptr.push_back(&t);
  }
};

std::string Be(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[i] = static_cast<char>(v >> (56 - 8 * i));
  return s;
}

// log_hash(sn) computed here from the definition in api.proto.
std::string Expected(const std::string &prev, uint64_t sn, uint64_t epoch, const Entry &e) {
  std::vector<std::string> parts = {"log", prev, Be(sn), Be(epoch)};
  for (const auto *t : e.ptr) {
    std::string p(trantor__tx__get_packed_size(t), '\0');
    trantor__tx__pack(t, reinterpret_cast<uint8_t *>(&p[0]));
    parts.push_back(p);
  }
  std::vector<const uint8_t *> ps;
  std::vector<size_t> ls;
  for (const auto &p : parts) {
    ps.push_back(reinterpret_cast<const uint8_t *>(p.data()));
    ls.push_back(p.size());
  }
  uint8_t out[32];
  trantor_hash_reference(ps.data(), ls.data(), ps.size(), out);
  return std::string(reinterpret_cast<char *>(out), 32);
}

// A store and an ordered log over a folder; Reopen simulates a restart.
struct Log {
  std::string path;
  mir_store *store = nullptr;
  mir_olog *log = nullptr;
  trantor_app app;
  mir_olog_config cfg;
  explicit Log(const std::string &p, uint64_t retention = 1000, size_t cache = 64) : path(p) {
    mir_olog_config_default(&cfg);
    cfg.retention_sns = retention;
    cfg.cache_entries = cache;
    cfg.delete_every = 4;
    Open();
  }
  ~Log() { Close(); }
  void Open() {
    mir_store_config sc;
    mir_store_config_default(&sc);
    sc.path = path.c_str();
    sc.cfs = mir_olog_cfs;
    sc.n_cfs = MIR_OLOG_N_CFS;
    ASSERT_EQ(mir_store_open(&sc, &store), MIR_OK) << mir_error_detail();
    cfg.store = store;
    cfg.hash = trantor_hash_reference;
    ASSERT_EQ(mir_olog_open(&cfg, &log), MIR_OK) << mir_error_detail();
    mir_olog_app(log, &app);
  }
  void Close() {
    mir_olog_free(log);
    log = nullptr;
    if (store != nullptr) {
      EXPECT_EQ(mir_store_close(store), MIR_OK);
    }
    store = nullptr;
  }
  void Reopen() {
    Close();
    Open();
  }
  mir_err Apply(uint64_t sn, uint64_t epoch, const Entry &e) {
    return app.apply_batch(app.user_data, sn, epoch, e.ptr.data(), e.ptr.size());
  }
  mir_err Restore(uint64_t sn, const std::string &hash) {
    std::string snap = Be(sn) + hash;
    return app.restore(app.user_data, reinterpret_cast<const uint8_t *>(snap.data()), snap.size(),
                       sn);
  }
  mir_olog_status Status() {
    mir_olog_status st;
    mir_olog_get_status(log, &st);
    return st;
  }
  // The Delivery of sn (owned) or nullptr; *err gets the read's result.
  Mir__Api__Delivery *Read(uint64_t sn, mir_err *err = nullptr) {
    uint8_t *p = nullptr;
    size_t n = 0;
    mir_err e = mir_olog_read(log, sn, &p, &n);
    if (err != nullptr) *err = e;
    if (e != MIR_OK) return nullptr;
    Mir__Api__Delivery *d = mir__api__delivery__unpack(nullptr, n, p);
    free(p);
    return d;
  }
  std::string HashAt(uint64_t sn) {
    Mir__Api__Delivery *d = Read(sn);
    if (d == nullptr) return "";
    std::string h(reinterpret_cast<char *>(d->log_hash.data), d->log_hash.len);
    mir__api__delivery__free_unpacked(d, nullptr);
    return h;
  }
};

// Applies n entries from sn `from` (one tx "v<sn>") and returns the hash after each.
std::vector<std::string> Fill(Log &l, uint64_t from, uint64_t n, std::string prev,
                              uint64_t epoch = 1) {
  std::vector<std::string> hashes;
  for (uint64_t sn = from; sn < from + n; sn++) {
    Entry e({"v" + std::to_string(sn)});
    EXPECT_EQ(l.Apply(sn, epoch, e), MIR_OK) << mir_error_detail();
    prev = Expected(prev, sn, epoch, e);
    hashes.push_back(prev);
  }
  return hashes;
}

const std::string kZero(32, '\0');

TEST(OrderedLog, HashChainAndDeliveriesFollowTheApi) {
  // Three entries (one empty) are stored with the hash chain of api.proto, read back as
  // Deliveries with their transactions, and the status names the position and the last hash.
  reptest::TempDir d;
  Log l(d.sub("db"));
  Entry e0({"a", "bb"}), e1({}), e2({"ccc"});
  ASSERT_EQ(l.Apply(0, 0, e0), MIR_OK) << mir_error_detail();
  ASSERT_EQ(l.Apply(1, 0, e1), MIR_OK);
  ASSERT_EQ(l.Apply(2, 1, e2), MIR_OK);
  std::string h0 = Expected(kZero, 0, 0, e0), h1 = Expected(h0, 1, 0, e1),
              h2 = Expected(h1, 2, 1, e2);
  EXPECT_EQ(l.HashAt(0), h0);
  EXPECT_EQ(l.HashAt(1), h1);
  EXPECT_EQ(l.HashAt(2), h2);
  Mir__Api__Delivery *d0 = l.Read(0);
  ASSERT_NE(d0, nullptr);
  ASSERT_EQ(d0->n_txs, 2u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(d0->txs[1]->data.data), d0->txs[1]->data.len),
            "bb");
  EXPECT_EQ(d0->epoch, 0u);
  mir__api__delivery__free_unpacked(d0, nullptr);
  mir_olog_status st = l.Status();
  EXPECT_EQ(st.next_sn, 3u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(st.log_hash), 32), h2);
  mir_err err = MIR_OK;
  EXPECT_EQ(l.Read(3, &err), nullptr);
  EXPECT_EQ(err, MIR_EEOF);
}

TEST(OrderedLog, SnapshotIsThePositionAndTheChain) {
  // The snapshot at the next sn is 8 bytes of that sn and the last hash; a snapshot or an entry
  // at any other sn breaks the log order and is an error.
  reptest::TempDir d;
  Log l(d.sub("db"));
  auto h = Fill(l, 0, 3, kZero);
  uint8_t *data = nullptr;
  size_t len = 0;
  ASSERT_EQ(l.app.snapshot(l.app.user_data, 1, 3, &data, &len), MIR_OK);
  ASSERT_EQ(len, static_cast<size_t>(MIR_OLOG_SNAPSHOT_BYTES));
  EXPECT_EQ(std::string(reinterpret_cast<char *>(data), len), Be(3) + h[2]);
  free(data);
  EXPECT_NE(l.app.snapshot(l.app.user_data, 1, 2, &data, &len), MIR_OK);
  Entry e({"x"});
  EXPECT_NE(l.Apply(5, 1, e), MIR_OK);
  Log fresh(d.sub("db2"));
  EXPECT_NE(fresh.Apply(4, 0, e), MIR_OK);  // no position: neither genesis nor a restore
}

// A stable checkpoint of epoch at sn (owned: free with trantor__stable_checkpoint__free_unpacked).
Trantor__StableCheckpoint *Checkpoint(uint64_t epoch, uint64_t sn) {
  Trantor__StableCheckpoint *c =
      static_cast<Trantor__StableCheckpoint *>(mir_xcalloc(1, sizeof(Trantor__StableCheckpoint)));
  trantor__stable_checkpoint__init(c);
  c->sn = sn;
  c->snapshot =
      static_cast<Trantor__StateSnapshot *>(mir_xcalloc(1, sizeof(Trantor__StateSnapshot)));
  trantor__state_snapshot__init(c->snapshot);
  c->snapshot->epoch_config =
      static_cast<Trantor__EpochConfig *>(mir_xcalloc(1, sizeof(Trantor__EpochConfig)));
  trantor__epoch_config__init(c->snapshot->epoch_config);
  c->snapshot->epoch_config->epoch = epoch;
  return c;
}

std::string HexPrefix(const std::string &h) {
  static const char *digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < 8 && i < h.size(); i++) {
    out += digits[static_cast<uint8_t>(h[i]) >> 4];
    out += digits[static_cast<uint8_t>(h[i]) & 15];
  }
  return out;
}

TEST(OrderedLog, RestartServesWhatIsStoredAndConfirmsReDeliveries) {
  // Ten entries and a checkpoint at sn 8: after a restart every stored entry is served at once
  // (delivered entries are final), the status takes the checkpoint Trantor resumes from, and the
  // entries Trantor delivers again after the restore are confirmed, not stored twice.
  reptest::TempDir d;
  Log l(d.sub("db"));
  auto h = Fill(l, 0, 10, kZero);
  Trantor__StableCheckpoint *c = Checkpoint(2, 8);
  ASSERT_EQ(l.app.checkpoint(l.app.user_data, c), MIR_OK);
  mir_olog_status st = l.Status();
  EXPECT_TRUE(st.have_checkpoint);
  EXPECT_EQ(st.checkpoint_sn, 8u);
  l.Reopen();
  st = l.Status();
  EXPECT_EQ(st.next_sn, 10u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(st.log_hash), 32), h[9]);
  EXPECT_FALSE(st.have_checkpoint);  // the write-ahead log keeps checkpoints, not the log
  mir_olog_note_checkpoint(l.log, c);
  trantor__stable_checkpoint__free_unpacked(c, nullptr);
  st = l.Status();
  EXPECT_TRUE(st.have_checkpoint);
  EXPECT_EQ(st.checkpoint_epoch, 2u);
  EXPECT_EQ(st.checkpoint_sn, 8u);
  EXPECT_EQ(l.HashAt(9), h[9]);  // served before Trantor delivers it again
  ASSERT_EQ(l.Restore(8, h[7]), MIR_OK) << mir_error_detail();
  EXPECT_EQ(l.Status().protocol_sn, 8u);
  auto again = Fill(l, 8, 3, h[7]);
  EXPECT_EQ(again[1], h[9]);
  st = l.Status();
  EXPECT_EQ(st.confirmed, 2u);
  EXPECT_EQ(st.appended, 1u);
  EXPECT_EQ(st.next_sn, 11u);
  EXPECT_EQ(st.protocol_sn, 11u);
  EXPECT_EQ(l.HashAt(10), again[2]);
}

TEST(OrderedLog, ContradictionsStopTheLogAndReplaceNothing) {
  // After a restart, an sn delivered again with other content, or a checkpoint whose chain differs
  // from the stored entries, is an error naming the sn, both hashes and the store; the stored
  // entries stay as they were.
  reptest::TempDir d;
  Log l(d.sub("db"));
  auto h = Fill(l, 0, 6, kZero);
  l.Reopen();
  EXPECT_EQ(l.Status().next_sn, 6u);
  Fill(l, 0, 3, kZero);  // sns 0..2 confirmed
  Entry other({"other"});
  std::string got = Expected(h[2], 3, 1, other);
  ASSERT_EQ(l.Apply(3, 1, other), MIR_EIO);
  std::string detail = mir_error_detail();
  EXPECT_NE(detail.find("sn 3: the delivery"), std::string::npos) << detail;
  EXPECT_NE(detail.find(HexPrefix(got)), std::string::npos) << detail;
  EXPECT_NE(detail.find(HexPrefix(h[3])), std::string::npos) << detail;
  EXPECT_NE(detail.find(l.path), std::string::npos) << detail;
  mir_olog_status st = l.Status();
  EXPECT_EQ(st.confirmed, 3u);
  EXPECT_EQ(st.next_sn, 6u);
  EXPECT_EQ(l.HashAt(3), h[3]);
  l.Reopen();
  std::string bad(32, 'x');
  ASSERT_EQ(l.Restore(2, bad), MIR_EIO);  // the chain up to sn 1 is stored
  detail = mir_error_detail();
  EXPECT_NE(detail.find("sn 1: the chain of a stable checkpoint"), std::string::npos) << detail;
  EXPECT_NE(detail.find(HexPrefix(h[1])), std::string::npos) << detail;
  EXPECT_NE(detail.find(HexPrefix(bad)), std::string::npos) << detail;
  EXPECT_EQ(l.HashAt(5), h[5]);
}

TEST(OrderedLog, RetentionAndStateTransferKeepTheRangeWithoutGaps) {
  // With a retention of 16 sns old entries are deleted in ranges and reads below the oldest are
  // "not retained"; the base survives a restart; a state transfer past the log restarts it at the
  // checkpoint's sn with the transferred chain.
  reptest::TempDir d;
  Log l(d.sub("db"), 16, 4);
  auto h = Fill(l, 0, 40, kZero);
  mir_olog_status st = l.Status();
  EXPECT_GE(st.retained_from_sn, 40u - 16u - 4u);
  EXPECT_LE(st.retained_from_sn, 40u - 16u);
  mir_err err = MIR_OK;
  EXPECT_EQ(l.Read(0, &err), nullptr);
  EXPECT_EQ(err, MIR_ENOTFOUND);
  EXPECT_EQ(l.HashAt(39), h[39]);
  EXPECT_EQ(l.HashAt(st.retained_from_sn), h[st.retained_from_sn]);
  uint64_t base = st.retained_from_sn;
  l.Reopen();
  EXPECT_EQ(l.Status().retained_from_sn, base);
  std::string far = std::string(32, 'f');
  ASSERT_EQ(l.Restore(100, far), MIR_OK) << mir_error_detail();
  st = l.Status();
  EXPECT_EQ(st.retained_from_sn, 100u);
  EXPECT_EQ(st.next_sn, 100u);
  EXPECT_EQ(l.Read(39, &err), nullptr);
  EXPECT_EQ(err, MIR_ENOTFOUND);
  auto next = Fill(l, 100, 2, far);
  EXPECT_EQ(l.HashAt(101), next[1]);
}

TEST(OrderedLog, MemoryAndStoreServeTheSameBytes) {
  // With room for 4 entries in memory, entries read back from the store are byte for byte the
  // Deliveries that were served from memory.
  reptest::TempDir d;
  Log l(d.sub("db"), 1000, 4);
  std::vector<std::string> fresh;
  Fill(l, 0, 1, kZero);
  for (uint64_t sn = 1; sn < 20; sn++) {
    Entry e({"v" + std::to_string(sn), "w"});
    std::string prev = l.HashAt(sn - 1);
    ASSERT_EQ(l.Apply(sn, 1, e), MIR_OK);
    uint8_t *p = nullptr;
    size_t n = 0;
    ASSERT_EQ(mir_olog_read(l.log, sn, &p, &n), MIR_OK);  // newest: from memory
    fresh.emplace_back(reinterpret_cast<char *>(p), n);
    free(p);
  }
  for (uint64_t sn = 1; sn < 20; sn++) {
    uint8_t *p = nullptr;
    size_t n = 0;
    ASSERT_EQ(mir_olog_read(l.log, sn, &p, &n), MIR_OK);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(p), n), fresh[sn - 1]) << sn;
    free(p);
  }
}

TEST(OrderedLog, ListenerSeesEveryAdvance) {
  // The listener is told the new next_sn after each delivery and after a state transfer.
  reptest::TempDir d;
  Log l(d.sub("db"));
  std::vector<uint64_t> seen;
  mir_olog_set_listener(
      l.log, [](void *u, uint64_t n) { static_cast<std::vector<uint64_t> *>(u)->push_back(n); },
      &seen);
  Fill(l, 0, 3, kZero);
  ASSERT_EQ(l.Restore(50, kZero), MIR_OK);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3, 50}));
}

TEST(OrderedLog, MemoryOnlyKeepsTheNewestEntriesWithoutGaps) {
  // Without a store (the limit pipeline) the log keeps its newest 4 entries: older reads are "not
  // retained" and the retained range starts right after the last dropped entry; the chain is the
  // same as with a store; a contradicting re-delivery still stops it; a state transfer restarts
  // it at the checkpoint's sn.
  mir_olog_config cfg;
  mir_olog_config_default(&cfg);
  cfg.hash = trantor_hash_reference;
  cfg.cache_entries = 4;
  mir_olog *log = nullptr;
  ASSERT_EQ(mir_olog_open(&cfg, &log), MIR_OK) << mir_error_detail();
  trantor_app app;
  mir_olog_app(log, &app);
  std::string prev = kZero;
  std::vector<std::string> h;
  for (uint64_t sn = 0; sn < 10; sn++) {
    Entry e({"v" + std::to_string(sn)});
    ASSERT_EQ(app.apply_batch(app.user_data, sn, 1, e.ptr.data(), e.ptr.size()), MIR_OK);
    prev = Expected(prev, sn, 1, e);
    h.push_back(prev);
  }
  mir_olog_status st;
  mir_olog_get_status(log, &st);
  EXPECT_EQ(st.next_sn, 10u);
  EXPECT_EQ(st.retained_from_sn, 6u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(st.log_hash), 32), h[9]);
  uint8_t *p = nullptr;
  size_t n = 0;
  EXPECT_EQ(mir_olog_read(log, 5, &p, &n), MIR_ENOTFOUND);
  for (uint64_t sn = 6; sn < 10; sn++) {
    ASSERT_EQ(mir_olog_read(log, sn, &p, &n), MIR_OK) << sn;
    Mir__Api__Delivery *d = mir__api__delivery__unpack(nullptr, n, p);
    free(p);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(d->log_hash.data), d->log_hash.len), h[sn]);
    mir__api__delivery__free_unpacked(d, nullptr);
  }
  std::string snap = Be(8) + h[7];
  ASSERT_EQ(
      app.restore(app.user_data, reinterpret_cast<const uint8_t *>(snap.data()), snap.size(), 8),
      MIR_OK)
      << mir_error_detail();
  Entry other({"not v8"});
  EXPECT_EQ(app.apply_batch(app.user_data, 8, 1, other.ptr.data(), other.ptr.size()), MIR_EIO);
  std::string far(32, 'f');
  snap = Be(100) + far;
  ASSERT_EQ(
      app.restore(app.user_data, reinterpret_cast<const uint8_t *>(snap.data()), snap.size(), 100),
      MIR_OK)
      << mir_error_detail();
  mir_olog_get_status(log, &st);
  EXPECT_EQ(st.retained_from_sn, 100u);
  EXPECT_EQ(st.next_sn, 100u);
  Entry next({"v100"});
  EXPECT_EQ(app.apply_batch(app.user_data, 100, 2, next.ptr.data(), next.ptr.size()), MIR_OK);
  mir_olog_free(log);
}

TEST(OrderedLog, BadConfigurationsAreRefused) {
  // No hash, a retention below the minimum, or a store without the column families.
  reptest::TempDir d;
  mir_olog_config cfg;
  mir_olog_config_default(&cfg);
  mir_olog *log = nullptr;
  EXPECT_EQ(mir_olog_open(&cfg, &log), MIR_EINVAL);
  mir_store_config sc;
  mir_store_config_default(&sc);
  std::string p = d.sub("db");
  sc.path = p.c_str();
  mir_store *s = nullptr;
  ASSERT_EQ(mir_store_open(&sc, &s), MIR_OK);
  cfg.store = s;
  cfg.hash = trantor_hash_reference;
  EXPECT_EQ(mir_olog_open(&cfg, &log), MIR_EINVAL);  // column families missing
  cfg.retention_sns = 3;
  EXPECT_EQ(mir_olog_open(&cfg, &log), MIR_EINVAL);
  EXPECT_EQ(mir_store_close(s), MIR_OK);
}

}  // namespace
