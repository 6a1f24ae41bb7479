// Storage faults of the store (server/modules/store/mir_store.h), made for real where the machine
// allows: a full disk (a small tmpfs in a private mount namespace) and a file size limit make
// RocksDB's own writes fail; a process killed in the middle of group writes, with the tail of its
// write-ahead log torn (or a record in it damaged), reopens at a prefix of its writes; a flipped
// byte in a table file is an error, never data. A failed fsync cannot be caused here, so one test
// uses the store's hook (mir_store_fail_next_write) for it.
//
// The tests that fork come first, and their parents open RocksDB only after the last fork:
// RocksDB keeps process-wide background threads, which a child forked after they started would
// lack. (ctest runs every test in a process of its own anyway.)
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "replica/test_dir.h"

extern "C" {
#include "mir/alloc.h"
#include "mir_store.h"
}

namespace {

std::string Be(uint64_t i) {
  std::string k;
  for (int b = 7; b >= 0; b--) k.push_back(static_cast<char>((i >> (8 * b)) & 0xff));
  return k;
}

uint64_t FromBe(const uint8_t *p) {
  uint64_t v = 0;
  for (int b = 0; b < 8; b++) v = (v << 8) | p[b];
  return v;
}

// Bytes that do not compress, so a value costs its size on disk and in table files.
std::string Noise(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char &c : s) c = static_cast<char>(rng());
  return s;
}

mir_store *Open(const std::string &path, bool sync = true) {
  mir_store_config cfg;
  mir_store_config_default(&cfg);
  cfg.path = path.c_str();
  cfg.sync = sync;
  mir_store *s = nullptr;
  EXPECT_EQ(mir_store_open(&cfg, &s), MIR_OK) << mir_error_detail();
  return s;
}

mir_err Put(mir_store *s, const std::string &k, const std::string &v) {
  mir_store_batch *b = mir_store_batch_new(s);
  mir_store_batch_put(b, MIR_STORE_CF_DEFAULT, k.data(), k.size(), v.data(), v.size());
  return mir_store_write(s, b);
}

bool Contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

std::vector<std::string> Split(const std::string &s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

// Runs fn in a forked child and returns the line it reports ("fail ..." if the child died).
std::string RunChild(const std::function<std::string()> &fn) {
  int p[2];
  if (pipe(p) != 0) return std::string("fail\tpipe: ") + strerror(errno);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    std::string r = fn();
    size_t off = 0;
    while (off < r.size()) {
      ssize_t n = write(p[1], r.data() + off, r.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    _exit(0);  // no atexit handlers, no gtest teardown in the child
  }
  close(p[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "fail\tchild died with status " + std::to_string(status);
  return out;
}

// In a child: writes 64 KiB values until a write fails, then checks that the store refuses every
// later write. Reports "ok", then (tab-separated) the first error's code and detail, the codes of
// a later write and submit, and mir_store_close's code.
std::string FillUntilFailure(const std::string &path) {
  mir_store_config cfg;
  mir_store_config_default(&cfg);
  cfg.path = path.c_str();
  mir_store *s = nullptr;
  if (mir_store_open(&cfg, &s) != MIR_OK) return std::string("fail\topen: ") + mir_error_detail();
  mir_err err = MIR_OK;
  std::string detail;
  for (uint64_t i = 0; i < 4096 && err == MIR_OK; i++) {  // at most 256 MiB
    err = Put(s, Be(i), Noise(i, 64 << 10));
    if (err != MIR_OK) detail = mir_error_detail();
  }
  if (err == MIR_OK) {
    (void)mir_store_close(s);
    return "fail\tno write failed in 256 MiB";
  }
  // RocksDB's error handler runs in the background after a failed write (on a full disk it logs
  // and tries to recover): give it time, since it once aborted the process here.
  usleep(300 * 1000);
  mir_err later = Put(s, "later", "v");
  mir_store_batch *b = mir_store_batch_new(s);
  mir_store_batch_put(b, MIR_STORE_CF_DEFAULT, "q", 1, "q", 1);
  mir_err submitted = mir_store_submit(s, b, nullptr);
  mir_err closed = mir_store_close(s);
  return "ok\t" + std::to_string(err) + "\t" + detail + "\t" + std::to_string(later) + "\t" +
         std::to_string(submitted) + "\t" + std::to_string(closed);
}

// Checks a FillUntilFailure report: MIR_EIO naming the path and RocksDB's reason, and a store
// that refuses everything after.
void ExpectFailedForGood(const std::string &report, const std::string &path,
                         const std::string &reason) {
  std::vector<std::string> f = Split(report, '\t');
  ASSERT_EQ(f.size(), 6u) << report;
  EXPECT_EQ(std::stoi(f[1]), MIR_EIO) << report;
  EXPECT_TRUE(Contains(f[2], "store " + path + ": write: IO error")) << f[2];
  EXPECT_TRUE(Contains(f[2], reason)) << f[2];
  EXPECT_EQ(std::stoi(f[3]), MIR_EIO) << "a later write";
  EXPECT_EQ(std::stoi(f[4]), MIR_EIO) << "a later submit";
  EXPECT_EQ(std::stoi(f[5]), MIR_EIO) << "close reports the failure";
  std::printf("the store said: %s\n", f[2].c_str());
}

TEST(StoreFaults, FullDiskFailsTheStoreForGood) {
  // A 2 MiB tmpfs mounted over the database folder in the child's own mount namespace fills up:
  // RocksDB's append to its write-ahead log fails with ENOSPC, the store reports MIR_EIO with the
  // path and "No space left on device", and refuses every later write. Needs root (or
  // CAP_SYS_ADMIN); skipped otherwise.
  reptest::TempDir d;
  std::string mnt = d.sub("mnt"), path = mnt + "/db";
  ASSERT_EQ(mkdir(mnt.c_str(), 0700), 0);
  std::string report = RunChild([&]() -> std::string {
    if (unshare(CLONE_NEWNS) != 0)
      return std::string("skip\tunshare(CLONE_NEWNS): ") + strerror(errno);
    // Private: the mount below must not propagate to the rest of the machine.
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return std::string("skip\tmaking mounts private: ") + strerror(errno);
    }
    if (mount("mir-store-test", mnt.c_str(), "tmpfs", 0, "size=2m,mode=0700") != 0) {
      return std::string("skip\tmounting a tmpfs: ") + strerror(errno);
    }
    return FillUntilFailure(path);
  });
  if (report.rfind("skip\t", 0) == 0) GTEST_SKIP() << report.substr(5);
  ASSERT_EQ(report.rfind("ok\t", 0), 0u) << report;
  ExpectFailedForGood(report, path, "No space left on device");
}

TEST(StoreFaults, FileSizeLimitFailsTheStoreForGood) {
  // The same with RLIMIT_FSIZE at 1 MiB (SIGXFSZ ignored), which needs no privilege: the
  // write-ahead log cannot grow past it, write() fails with EFBIG ("File too large").
  reptest::TempDir d;
  std::string path = d.sub("db");
  std::string report = RunChild([&]() -> std::string {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {1 << 20, 1 << 20};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
      return std::string("skip\tsetrlimit: ") + strerror(errno);
    return FillUntilFailure(path);
  });
  if (report.rfind("skip\t", 0) == 0) GTEST_SKIP() << report.substr(5);
  ASSERT_EQ(report.rfind("ok\t", 0), 0u) << report;
  ExpectFailedForGood(report, path, "File too large");
}

// Files of a RocksDB folder ending in suffix, by name.
std::vector<std::string> FilesEndingIn(const std::string &dir, const std::string &suffix) {
  std::vector<std::string> out;
  DIR *dp = opendir(dir.c_str());
  if (dp == nullptr) return out;
  for (dirent *e = readdir(dp); e != nullptr; e = readdir(dp)) {
    std::string n = e->d_name;
    if (n.size() > suffix.size() &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(dir + "/" + n);
    }
  }
  closedir(dp);
  std::sort(out.begin(), out.end());  // RocksDB numbers files with zero-padded digits
  return out;
}

off_t FileSize(const std::string &f) {
  struct stat st;
  return stat(f.c_str(), &st) == 0 ? st.st_size : -1;
}

// Flips n bytes of file f at offset off.
void FlipBytes(const std::string &f, off_t off, size_t n) {
  int fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << f;
  std::string buf(n, '\0');
  ASSERT_EQ(pread(fd, &buf[0], n, off), static_cast<ssize_t>(n));
  for (char &c : buf) c = static_cast<char>(~c);
  ASSERT_EQ(pwrite(fd, buf.data(), n, off), static_cast<ssize_t>(n));
  close(fd);
}

// Shared between the parent and a writing child.
struct Progress {
  std::atomic<int> opened;
  std::atomic<uint64_t> submitted;  // writes handed to mir_store_submit
};

// Write i of a torn-write child: three keys in one batch, so that a write is whole or absent.
std::string WValue(uint64_t i) {
  return Noise(i, 64 + i % 900);
}

// In a child: submits numbered writes until killed.
void WriteUntilKilled(const std::string &path, Progress *p) {
  mir_store_config cfg;
  mir_store_config_default(&cfg);
  cfg.path = path.c_str();
  mir_store *s = nullptr;
  if (mir_store_open(&cfg, &s) != MIR_OK) _exit(2);
  p->opened = 1;
  for (uint64_t i = 0; i < 100000000; i++) {
    mir_store_batch *b = mir_store_batch_new(s);
    std::string w = "w" + Be(i), x = "x" + Be(i), v = WValue(i), last = Be(i);
    mir_store_batch_put(b, MIR_STORE_CF_DEFAULT, w.data(), w.size(), v.data(), v.size());
    mir_store_batch_put(b, MIR_STORE_CF_DEFAULT, x.data(), x.size(), "pair", 4);
    mir_store_batch_put(b, MIR_STORE_CF_DEFAULT, "last", 4, last.data(), last.size());
    if (mir_store_submit(s, b, nullptr) != MIR_OK) _exit(3);
    p->submitted = i + 1;
  }
  _exit(4);
}

// Reads the store at path and checks that it holds exactly writes 0..n-1, each whole; returns n.
uint64_t CheckPrefix(mir_store *s) {
  uint64_t n = 0, last = UINT64_MAX;
  size_t xs = 0;
  mir_store_iter *it = mir_store_iter_new(s, MIR_STORE_CF_DEFAULT);
  for (mir_store_iter_seek_first(it); mir_store_iter_valid(it); mir_store_iter_next(it)) {
    size_t kl = 0, vl = 0;
    const uint8_t *k = mir_store_iter_key(it, &kl);
    const uint8_t *v = mir_store_iter_value(it, &vl);
    std::string val(reinterpret_cast<const char *>(v), vl);
    if (kl == 4 && std::memcmp(k, "last", 4) == 0) {
      EXPECT_EQ(vl, 8u);
      if (vl == 8) last = FromBe(v);
    } else if (kl == 9 && k[0] == 'w') {
      uint64_t i = FromBe(k + 1);
      EXPECT_EQ(i, n) << "a hole before write " << i;
      EXPECT_EQ(val, WValue(i)) << "write " << i;
      n = i + 1;
    } else if (kl == 9 && k[0] == 'x') {
      EXPECT_EQ(val, "pair");
      xs++;
    } else if (kl != 5 || std::memcmp(k, "after", 5) != 0) {
      ADD_FAILURE() << "unexpected key of " << kl << " bytes";
    }
  }
  EXPECT_EQ(mir_store_iter_status(it), MIR_OK) << mir_error_detail();
  mir_store_iter_free(it);
  EXPECT_EQ(xs, n) << "every write whole: as many pair keys as writes";
  EXPECT_EQ(last, n > 0 ? n - 1 : UINT64_MAX) << "the newest write's third key";
  return n;
}

TEST(StoreFaults, TornWriteAheadLogOpensAtAPrefixOfTheWrites) {
  // Three children submit numbered writes (three keys each, group-committed with fsync) and are
  // SIGKILLed at a random moment. Then the newest write-ahead log of each is damaged: its tail
  // cut by a few bytes (rounds 0 and 1: a record torn as by a crash mid-append), or bytes flipped
  // in its middle (round 2: a damaged record with intact ones after it). Each store opens, holds
  // exactly writes 0..n-1 with every write whole, n at most what was submitted, and works
  // afterwards (a write, a close, a reopen).
  std::random_device rd;
  const unsigned seed = rd();
  std::mt19937 rng(seed);
  std::printf("seed %u\n", seed);
  const int kRounds = 3;
  reptest::TempDir d;
  auto *progress =
      static_cast<Progress *>(mmap(nullptr, sizeof(Progress) * kRounds, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(progress, MAP_FAILED);
  std::vector<std::string> paths;
  for (int r = 0; r < kRounds; r++) {  // every fork before the parent opens RocksDB
    Progress *p = new (&progress[r]) Progress();
    p->opened = 0;
    p->submitted = 0;
    paths.push_back(d.sub("db" + std::to_string(r)));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) WriteUntilKilled(paths[r], p);
    for (int i = 0; i < 10000 && p->opened == 0; i++) usleep(1000);
    EXPECT_EQ(p->opened.load(), 1) << "round " << r << ": the child did not open its store";
    usleep(std::uniform_int_distribution<unsigned>(5000, 150000)(rng));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  }
  for (int r = 0; r < kRounds; r++) {
    SCOPED_TRACE("round " + std::to_string(r) + ", seed " + std::to_string(seed));
    std::vector<std::string> logs = FilesEndingIn(paths[r], ".log");
    ASSERT_FALSE(logs.empty());
    const std::string &wal = logs.back();
    off_t size = FileSize(wal);
    std::string damage = "none (empty log)";
    if (r < 2 && size > 0) {
      off_t cut = std::uniform_int_distribution<off_t>(1, std::min<off_t>(size, 48))(rng);
      ASSERT_EQ(truncate(wal.c_str(), size - cut), 0);
      damage = "cut " + std::to_string(cut) + " bytes";
    } else if (size > 64) {
      FlipBytes(wal, size / 2, 4);
      damage = "4 bytes flipped at " + std::to_string(size / 2);
    }
    mir_store *s = Open(paths[r]);
    ASSERT_NE(s, nullptr);
    uint64_t n = CheckPrefix(s);
    uint64_t submitted = progress[r].submitted;
    EXPECT_LE(n, submitted);
    std::printf("round %d: %llu writes submitted, log of %lld bytes, %s: %llu writes found\n", r,
                static_cast<unsigned long long>(submitted), static_cast<long long>(size),
                damage.c_str(), static_cast<unsigned long long>(n));
    ASSERT_EQ(Put(s, "after", "works"), MIR_OK) << mir_error_detail();
    EXPECT_EQ(mir_store_close(s), MIR_OK);
    s = Open(paths[r]);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(CheckPrefix(s), n);
    uint8_t *v = nullptr;
    size_t vl = 0;
    ASSERT_EQ(mir_store_get(s, MIR_STORE_CF_DEFAULT, "after", 5, &v, &vl, 0), MIR_OK);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(v), vl), "works");
    free(v);
    EXPECT_EQ(mir_store_close(s), MIR_OK);
  }
  munmap(progress, sizeof(Progress) * kRounds);
}

TEST(StoreFaults, CorruptTableFileIsAnErrorNotData) {
  // 2000 values of 1 KiB go to a table file (mir_store_flush), and 64 bytes in the middle of it
  // are flipped. Opening either fails, or reads do: every read returns the right value or MIR_EIO
  // whose detail names the path and says the data is corrupt; at least one read fails, and no
  // read returns wrong data.
  reptest::TempDir d;
  std::string path = d.sub("db");
  mir_store *s = Open(path);
  ASSERT_NE(s, nullptr);
  const uint64_t kKeys = 2000;
  for (uint64_t i = 0; i < kKeys; i += 100) {
    mir_store_batch *b = mir_store_batch_new(s);
    for (uint64_t j = i; j < i + 100; j++) {
      std::string k = Be(j), v = Noise(j, 1024);
      mir_store_batch_put(b, MIR_STORE_CF_DEFAULT, k.data(), k.size(), v.data(), v.size());
    }
    ASSERT_EQ(mir_store_write(s, b), MIR_OK);
  }
  ASSERT_EQ(mir_store_flush(s), MIR_OK) << mir_error_detail();
  ASSERT_EQ(mir_store_close(s), MIR_OK);
  std::vector<std::string> ssts = FilesEndingIn(path, ".sst");
  ASSERT_FALSE(ssts.empty()) << "the flush wrote no table file";
  std::string sst = ssts.front();
  for (const std::string &f : ssts) {
    if (FileSize(f) > FileSize(sst)) sst = f;
  }
  ASSERT_GT(FileSize(sst), static_cast<off_t>(kKeys * 1024));
  FlipBytes(sst, FileSize(sst) / 2, 64);

  mir_store_config cfg;
  mir_store_config_default(&cfg);
  cfg.path = path.c_str();
  s = nullptr;
  mir_err err = mir_store_open(&cfg, &s);
  if (err != MIR_OK) {
    std::string detail = mir_error_detail();
    EXPECT_EQ(err, MIR_EIO);
    EXPECT_TRUE(Contains(detail, "store " + path + ": open: the data is corrupt: Corruption"))
        << detail;
    std::printf("open refused: %s\n", detail.c_str());
    return;
  }
  size_t failed = 0;
  std::string first_error;
  for (uint64_t i = 0; i < kKeys; i++) {
    std::string k = Be(i);
    uint8_t *v = nullptr;
    size_t vl = 0;
    err = mir_store_get(s, MIR_STORE_CF_DEFAULT, k.data(), k.size(), &v, &vl, 0);
    if (err == MIR_OK) {
      EXPECT_EQ(std::string(reinterpret_cast<char *>(v), vl), Noise(i, 1024)) << "key " << i;
      free(v);
      continue;
    }
    std::string detail = mir_error_detail();
    EXPECT_EQ(err, MIR_EIO) << "key " << i;
    EXPECT_TRUE(Contains(detail, "store " + path + ": read: the data is corrupt: Corruption"))
        << detail;
    if (failed++ == 0) first_error = detail;
  }
  EXPECT_GE(failed, 1u) << "a flipped block was read without an error";
  std::printf("%zu of %llu reads failed: %s\n", failed, static_cast<unsigned long long>(kKeys),
              first_error.c_str());
  // An iteration stops at the damaged block with the same error instead of skipping it.
  mir_store_iter *it = mir_store_iter_new(s, MIR_STORE_CF_DEFAULT);
  uint64_t seen = 0;
  for (mir_store_iter_seek_first(it); mir_store_iter_valid(it); mir_store_iter_next(it)) {
    size_t kl = 0, vl = 0;
    const uint8_t *k = mir_store_iter_key(it, &kl);
    const uint8_t *v = mir_store_iter_value(it, &vl);
    ASSERT_EQ(kl, 8u);
    EXPECT_EQ(FromBe(k), seen);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(v), vl), Noise(seen, 1024));
    seen++;
  }
  EXPECT_LT(seen, kKeys);
  EXPECT_EQ(mir_store_iter_status(it), MIR_EIO);
  EXPECT_TRUE(Contains(mir_error_detail(), "store " + path + ": iterate: the data is corrupt"))
      << mir_error_detail();
  mir_store_iter_free(it);
  (void)mir_store_close(s);
}

// Counts the store's written callbacks, and the calls made when writing failed.
struct Calls {
  mir_store *s = nullptr;
  std::atomic<int> ok{0}, failed{0};
};

void CountCall(void *user, uint64_t) {
  auto *c = static_cast<Calls *>(user);
  if (mir_store_status(c->s, nullptr, 0) == MIR_OK) {
    c->ok++;
  } else {
    c->failed++;
  }
}

TEST(StoreFaults, FailedWriteIsRefusedForGood) {
  // The hook makes the next group write fail as a failed fsync would (the only fault here that
  // cannot be made for real): that write returns MIR_EIO naming the path and the reason, its
  // data is not there, every later write and submit is refused, mir_store_status reports the
  // reason, the written callback is called once for the failure, and close reports it. Reads
  // still work.
  reptest::TempDir d;
  std::string path = d.sub("db");
  mir_store *s = Open(path);
  ASSERT_NE(s, nullptr);
  Calls calls;
  calls.s = s;
  mir_store_set_written_cb(s, CountCall, &calls);
  ASSERT_EQ(Put(s, "a", "1"), MIR_OK);
  EXPECT_EQ(mir_store_status(s, nullptr, 0), MIR_OK);
  mir_store_fail_next_write(s, "fsync: Input/output error");
  EXPECT_EQ(Put(s, "b", "2"), MIR_EIO);
  EXPECT_EQ(std::string(mir_error_detail()),
            "store " + path + ": write: IO error: fsync: Input/output error");
  EXPECT_EQ(Put(s, "c", "3"), MIR_EIO);
  EXPECT_TRUE(Contains(mir_error_detail(), path)) << mir_error_detail();
  mir_store_batch *b = mir_store_batch_new(s);
  mir_store_batch_put(b, MIR_STORE_CF_DEFAULT, "d", 1, "4", 1);
  EXPECT_EQ(mir_store_submit(s, b, nullptr), MIR_EIO);
  EXPECT_EQ(mir_store_wait(s, 1000, 100), MIR_EIO);
  char reason[64];
  EXPECT_EQ(mir_store_status(s, reason, sizeof reason), MIR_EIO);
  EXPECT_STREQ(reason, "IO error: fsync: Input/output error");
  uint8_t *v = nullptr;
  size_t vl = 0;
  ASSERT_EQ(mir_store_get(s, MIR_STORE_CF_DEFAULT, "a", 1, &v, &vl, 0), MIR_OK);
  free(v);
  EXPECT_EQ(mir_store_get(s, MIR_STORE_CF_DEFAULT, "b", 1, &v, &vl, 0), MIR_ENOTFOUND);
  mir_store_set_written_cb(s, nullptr, nullptr);
  EXPECT_EQ(calls.ok.load(), 1);
  EXPECT_EQ(calls.failed.load(), 1);
  EXPECT_EQ(mir_store_close(s), MIR_EIO);
  EXPECT_TRUE(Contains(mir_error_detail(), "fsync: Input/output error"));
  // Nothing of the failed write reached the disk.
  s = Open(path);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(mir_store_get(s, MIR_STORE_CF_DEFAULT, "b", 1, &v, &vl, 0), MIR_ENOTFOUND);
  EXPECT_EQ(mir_store_close(s), MIR_OK);
}

}  // namespace
