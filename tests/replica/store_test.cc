// Tests of the store (server/modules/store): column families, point reads and ordered iteration,
// atomic batches, group-committed queued writes in submission order, persistence across a reopen,
// range deletes, and the errors a second opener or a bad config get.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "replica/test_dir.h"

extern "C" {
#include "mir/alloc.h"
#include "mir_store.h"
}

namespace {

const char *const kCfs[] = {"a", "b"};

mir_store *Open(const std::string &path, bool sync = true) {
  mir_store_config cfg;
  mir_store_config_default(&cfg);
  cfg.path = path.c_str();
  cfg.cfs = kCfs;
  cfg.n_cfs = 2;
  cfg.sync = sync;
  mir_store *s = nullptr;
  EXPECT_EQ(mir_store_open(&cfg, &s), MIR_OK) << mir_error_detail();
  return s;
}

std::string Get(mir_store *s, int cf, const std::string &key) {
  uint8_t *v = nullptr;
  size_t n = 0;
  mir_err err = mir_store_get(s, cf, key.data(), key.size(), &v, &n, 0);
  if (err != MIR_OK) return err == MIR_ENOTFOUND ? "<none>" : "<error>";
  std::string out(reinterpret_cast<char *>(v), n);
  free(v);
  return out;
}

void Put(mir_store *s, int cf, const std::string &k, const std::string &v) {
  mir_store_batch *b = mir_store_batch_new(s);
  mir_store_batch_put(b, cf, k.data(), k.size(), v.data(), v.size());
  ASSERT_EQ(mir_store_write(s, b), MIR_OK) << mir_error_detail();
}

TEST(Store, ColumnFamiliesKeepTheirOwnKeys) {
  // The same key in two column families holds two values; absent keys are MIR_ENOTFOUND; the
  // default family always exists.
  reptest::TempDir d;
  mir_store *s = Open(d.sub("db"));
  ASSERT_NE(s, nullptr);
  int a = mir_store_cf(s, "a"), b = mir_store_cf(s, "b");
  EXPECT_GE(a, 1);
  EXPECT_GE(b, 1);
  EXPECT_NE(a, b);
  EXPECT_EQ(mir_store_cf(s, "default"), MIR_STORE_CF_DEFAULT);
  EXPECT_EQ(mir_store_cf(s, "nope"), -1);
  Put(s, a, "k", "in a");
  Put(s, b, "k", "in b");
  EXPECT_EQ(Get(s, a, "k"), "in a");
  EXPECT_EQ(Get(s, b, "k"), "in b");
  EXPECT_EQ(Get(s, MIR_STORE_CF_DEFAULT, "k"), "<none>");
  uint8_t *v = nullptr;
  size_t n = 0;
  EXPECT_EQ(mir_store_get(s, a, "k", 1, &v, &n, 2), MIR_EPROTO);  // longer than allowed
  EXPECT_EQ(mir_store_close(s), MIR_OK);
}

// Bytes of RocksDB's write-ahead log files (*.log) in folder dir.
uint64_t LogFileBytes(const std::string &dir) {
  uint64_t total = 0;
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (struct dirent *e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".log") != 0) continue;
    struct stat st;
    if (stat((dir + "/" + name).c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  }
  closedir(d);
  return total;
}

TEST(Store, LogFilesStayBoundedWhileAFamilyIsRarelyWritten) {
  // One key in family b, then 320 MiB in family a. A RocksDB log file goes only once every
  // family with data in it was flushed, and b's one key would keep every log file since it
  // (about 320 MiB here, gigabytes on a replica under load) without a bound on their total. With
  // it, what stays is the bound plus the memtables written since the last check (one write
  // buffer of 64 MiB for a): about 134 MiB.
  reptest::TempDir d;
  mir_store *s = Open(d.sub("db"), false);
  ASSERT_NE(s, nullptr);
  int a = mir_store_cf(s, "a"), b = mir_store_cf(s, "b");
  Put(s, b, "rare", "x");
  std::string value(1u << 20, 'v');
  for (int i = 0; i < 320; i++) {
    value[0] = static_cast<char>(i);
    Put(s, a, "k" + std::to_string(i), value);
  }
  // The flushes that free old log files run in the background: give them up to 10 s.
  const uint64_t bound = uint64_t{192} << 20;
  uint64_t logs = LogFileBytes(d.sub("db"));
  for (int i = 0; i < 100 && logs >= bound; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    logs = LogFileBytes(d.sub("db"));
  }
  EXPECT_LT(logs, bound) << "RocksDB log files of " << logs << " bytes";
  EXPECT_EQ(Get(s, b, "rare"), "x");
  EXPECT_EQ(mir_store_close(s), MIR_OK);
}

TEST(Store, QueuedWritesAreGroupedAndKeepTheirOrder) {
  // Many queued batches from several threads are written in fewer groups than batches, every
  // ticket becomes written, and a later write of a key wins over an earlier one.
  reptest::TempDir d;
  mir_store *s = Open(d.sub("db"));
  ASSERT_NE(s, nullptr);
  int a = mir_store_cf(s, "a");
  const int kThreads = 4, kPer = 500;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([s, a, t] {
      for (int i = 0; i < kPer; i++) {
        mir_store_batch *b = mir_store_batch_new(s);
        std::string k = "t" + std::to_string(t) + "-" + std::to_string(i);
        mir_store_batch_put(b, a, k.data(), k.size(), "v", 1);
        mir_store_batch_put(b, a, "last", 4, k.data(), k.size());
        EXPECT_EQ(mir_store_submit(s, b, nullptr), MIR_OK);
      }
    });
  }
  for (auto &t : ts) t.join();
  mir_store_batch *b = mir_store_batch_new(s);
  mir_store_batch_put(b, a, "last", 4, "final", 5);
  uint64_t ticket = 0;
  ASSERT_EQ(mir_store_submit(s, b, &ticket), MIR_OK);
  EXPECT_EQ(ticket, static_cast<uint64_t>(kThreads * kPer + 1));
  ASSERT_EQ(mir_store_wait(s, ticket, 10000), MIR_OK);
  EXPECT_GE(mir_store_written(s), ticket);
  EXPECT_EQ(Get(s, a, "t3-499"), "v");
  EXPECT_EQ(Get(s, a, "last"), "final");
  const mir_metrics *m = mir_store_metrics(s);
  int64_t submitted = mir_metrics_read(m, "mir_store_batches_submitted_total", nullptr);
  int64_t groups = mir_metrics_read(m, "mir_store_writes_total", nullptr);
  EXPECT_EQ(submitted, static_cast<int64_t>(ticket));
  EXPECT_LT(groups, submitted);  // group commit: fewer writes than batches
  // Every group was synced, and each sync's latency went into the histogram.
  EXPECT_EQ(mir_metrics_read(m, "mir_store_fsyncs_total", nullptr), groups);
  EXPECT_EQ(mir_metrics_read(m, "mir_store_fsync_seconds", nullptr), groups);
  EXPECT_EQ(mir_metrics_read(m, "mir_store_bytes_written_total", nullptr) > 0, true);
  EXPECT_EQ(mir_metrics_read(m, "mir_store_queue_bytes", nullptr), 0);
  EXPECT_EQ(mir_store_close(s), MIR_OK);
}

TEST(Store, DataSurvivesReopenAndRangeDeletesAreOrdered) {
  // After a close and a reopen the values are there; a range delete removes exactly [begin, end),
  // and iteration sees keys in bytewise order from a seek.
  reptest::TempDir d;
  mir_store *s = Open(d.sub("db"), false);
  ASSERT_NE(s, nullptr);
  int a = mir_store_cf(s, "a");
  for (char c = 'a'; c <= 'f'; c++) Put(s, a, std::string(1, c), std::string(3, c));
  mir_store_batch *b = mir_store_batch_new(s);
  mir_store_batch_delete_range(b, a, "b", 1, "d", 1);
  mir_store_batch_delete(b, a, "f", 1);
  ASSERT_EQ(mir_store_write(s, b), MIR_OK);
  EXPECT_EQ(mir_store_close(s), MIR_OK);
  s = Open(d.sub("db"));
  ASSERT_NE(s, nullptr);
  a = mir_store_cf(s, "a");
  std::string keys;
  mir_store_iter *it = mir_store_iter_new(s, a);
  for (mir_store_iter_seek_first(it); mir_store_iter_valid(it); mir_store_iter_next(it)) {
    size_t n = 0;
    const uint8_t *k = mir_store_iter_key(it, &n);
    keys.append(reinterpret_cast<const char *>(k), n);
  }
  EXPECT_EQ(mir_store_iter_status(it), MIR_OK);
  mir_store_iter_seek_for_prev(it, "c", 1);
  ASSERT_TRUE(mir_store_iter_valid(it));
  size_t n = 0;
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(mir_store_iter_key(it, &n)), 1), "a");
  mir_store_iter_seek_last(it);
  ASSERT_TRUE(mir_store_iter_valid(it));
  const uint8_t *v = mir_store_iter_value(it, &n);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(v), n), "eee");
  mir_store_iter_free(it);
  EXPECT_EQ(keys, "ade");
  EXPECT_EQ(mir_store_close(s), MIR_OK);
}

TEST(Store, SecondOpenerAndBadConfigsAreRefused) {
  // A database held by another handle is MIR_EIO with the path in the detail; a missing path,
  // too many column families or a reserved name are MIR_EINVAL.
  reptest::TempDir d;
  mir_store *s = Open(d.sub("db"));
  ASSERT_NE(s, nullptr);
  mir_store_config cfg;
  mir_store_config_default(&cfg);
  std::string path = d.sub("db");
  cfg.path = path.c_str();
  mir_store *t = nullptr;
  EXPECT_EQ(mir_store_open(&cfg, &t), MIR_EIO);
  EXPECT_NE(std::string(mir_error_detail()).find(path), std::string::npos) << mir_error_detail();
  EXPECT_EQ(mir_store_close(s), MIR_OK);
  cfg.path = nullptr;
  EXPECT_EQ(mir_store_open(&cfg, &t), MIR_EINVAL);
  cfg.path = path.c_str();
  const char *bad[] = {"default"};
  cfg.cfs = bad;
  cfg.n_cfs = 1;
  EXPECT_EQ(mir_store_open(&cfg, &t), MIR_EINVAL);
  cfg.n_cfs = MIR_STORE_CFS_MAX + 1;
  EXPECT_EQ(mir_store_open(&cfg, &t), MIR_EINVAL);
  cfg.n_cfs = 0;
  cfg.queue_bytes_max = 0;
  EXPECT_EQ(mir_store_open(&cfg, &t), MIR_EINVAL);
}

}  // namespace
