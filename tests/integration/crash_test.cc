// Integration tests of crash safety with real mir-replica processes on 127.0.0.1 (issue: a
// cluster-wide crash must never rewrite the log). Load comes from mir-bench (libmirclient
// clients, --record of every ticket's outcome) and the log is checked with mir-logcheck, the
// tools of scripts/crash-campaign.sh:
//  - kill -9 of two replicas, then of all four, a few times under load: each kill is confirmed
//    (the process is reaped and its pid is gone), each restart too (the new process answers
//    Status); afterwards every transaction the clients saw committed is in the log exactly once
//    at its sn, nothing they submitted is lost, and every replica has the same log hash;
//  - a replica whose data folder is wiped rejoins with --rejoin: it votes nowhere before its
//    peers answered, catches up by state transfer to the same log hash, the cluster keeps
//    committing meanwhile, and a later restart keeps its vote floor;
//  - damaged storage: a write-ahead log record with flipped bytes makes the replica refuse to
//    start (exit status 2) with a message naming the data folder, the record and the remedy; a
//    full disk (a file size limit) stops a running replica with an error instead of going on.
// Every replica log must be free of sanitizer reports; every wait is bounded.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "integration/api_client.h"
#include "integration/cluster.h"

extern "C" {
#include "mir/alloc.h"
#include "mir/errors.h"
#include "mir_store.h"
#include "wal.h"
}

using mirtest::Channel;
using mirtest::Cluster;
using mirtest::ClusterOptions;

namespace {

Mir__Api__StatusResponse *StatusOf(const Cluster &c, size_t i, int timeout_ms = 2000) {
  Channel ch(c.ClientAddr(i));
  return mirtest::GetStatus(ch.get(), timeout_ms);
}

// Replica i is running and answers Status within timeout_ms: a restart confirmed.
bool Answers(const Cluster &c, size_t i, int timeout_ms) {
  return mirtest::WaitFor(
      [&] {
        if (!c.Running(i)) return false;
        Mir__Api__StatusResponse *s = StatusOf(c, i, 1000);
        if (s != nullptr) mir__api__status_response__free_unpacked(s, nullptr);
        return s != nullptr;
      },
      timeout_ms);
}

// next_sn and log hash of replica i (next_sn 0 if it does not answer).
uint64_t NextSn(const Cluster &c, size_t i, std::string *hash = nullptr,
                uint64_t *retained = nullptr) {
  Mir__Api__StatusResponse *s = StatusOf(c, i);
  if (s == nullptr) return 0;
  uint64_t n = s->next_sn;
  if (hash != nullptr)
    hash->assign(reinterpret_cast<const char *>(s->log_hash.data), s->log_hash.len);
  if (retained != nullptr) *retained = s->retained_from_sn;
  mir__api__status_response__free_unpacked(s, nullptr);
  return n;
}

// The least last sn over the running replicas (0 when one does not answer or has none).
uint64_t LeastLastSn(const Cluster &c) {
  uint64_t least = UINT64_MAX;
  for (size_t i = 0; i < c.size(); i++) {
    uint64_t n = NextSn(c, i);
    if (n == 0) return 0;
    least = std::min(least, n - 1);
  }
  return least;
}

// mir-bench in the background: `rate` tx/s from 4 clients <prefix>-<i> for `seconds`, then a
// drain; every ticket's outcome goes to a record file.
class Load {
 public:
  Load(const Cluster &c, const std::string &prefix, int rate, int seconds, int drain_s)
      : out_(c.dir() + "/load-" + prefix + ".out"), record_(c.dir() + "/record-" + prefix) {
    pid_ = mirtest::StartProgram({mirtest::BinDir() + "/mir-bench",
                                  "--replicas",
                                  c.ClientAddrs(),
                                  "--clients",
                                  "4",
                                  "--rate",
                                  std::to_string(rate),
                                  "--size",
                                  "256",
                                  "--duration",
                                  std::to_string(seconds),
                                  "--warmup",
                                  "0",
                                  "--drain",
                                  std::to_string(drain_s),
                                  "--connect-timeout-ms",
                                  "30000",
                                  "--client-prefix",
                                  prefix,
                                  "--record",
                                  record_},
                                 out_);
  }
  ~Load() {
    if (pid_ > 0) mirtest::WaitProgram(pid_, 0);
  }
  // Waits for the run to end: its exit status (-1: it did not end in time and was killed).
  int Finish(int timeout_ms) {
    int st = pid_ > 0 ? mirtest::WaitProgram(pid_, timeout_ms) : -1;
    pid_ = -1;
    return st;
  }
  std::string Output() const { return mirtest::ReadFile(out_); }
  const std::string &record() const { return record_; }

 private:
  pid_t pid_ = -1;
  std::string out_, record_;
};

// Runs mir-logcheck up to to_sn over the records; returns its exit status, output in *out.
int LogCheck(const Cluster &c, uint64_t to_sn, const std::vector<std::string> &records,
             std::string *out) {
  std::vector<std::string> argv = {mirtest::BinDir() + "/mir-logcheck",
                                   "--replicas",
                                   c.ClientAddrs(),
                                   "--to-sn",
                                   std::to_string(to_sn),
                                   "--timeout-s",
                                   "240"};
  for (const auto &r : records) {
    argv.push_back("--record");
    argv.push_back(r);
  }
  std::string file = c.dir() + "/logcheck.out";
  std::remove(file.c_str());
  int st = mirtest::RunProgram(argv, file, 300000);
  *out = mirtest::ReadFile(file);
  return st;
}

// The last line of text that holds word ("" if none).
std::string LastLineWith(const std::string &text, const std::string &word) {
  size_t p = text.rfind(word);
  if (p == std::string::npos) return "";
  size_t b = text.rfind('\n', p);
  b = b == std::string::npos ? 0 : b + 1;
  size_t e = text.find('\n', p);
  return text.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

// Stops every running replica with SIGTERM (each must exit 0), then checks that no replica log
// of this cluster, killed ones included, holds a sanitizer report.
void StopAllCleanly(Cluster &c) {
  for (size_t i = 0; i < c.size(); i++) {
    if (!c.Running(i)) continue;
    EXPECT_EQ(c.Stop(i, 30000), 0) << "replica " << i;
  }
  for (size_t i = 0; i < c.size(); i++) {
    EXPECT_EQ(c.Log(i).find("Sanitizer"), std::string::npos) << "replica " << i;
  }
}

void DumpOnFailure(Cluster &c) {
  if (!::testing::Test::HasFailure()) return;
  c.Keep();
  for (size_t i = 0; i < c.size(); i++) {
    fprintf(stderr, "---- replica %zu ----\n%s\n", i, c.LogTail(i, 25).c_str());
  }
}

bool ToolsBuilt() {
  return access((mirtest::BinDir() + "/mir-bench").c_str(), X_OK) == 0 &&
         access((mirtest::BinDir() + "/mir-logcheck").c_str(), X_OK) == 0;
}

TEST(ReplicaCrash, KillTwoThenAllUnderLoadLosesNothing) {
  // Three cycles of (kill -9 of two random replicas, restart; kill -9 of all four, restart) under
  // 400 tx/s from four SDK clients. Afterwards the log up to the least last sn chains, every
  // replica has the same log hash there, and every ticket the clients had is in it exactly once,
  // at the sn they saw it committed at.
  if (!ToolsBuilt()) GTEST_SKIP() << "mir-bench or mir-logcheck not built";
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  ASSERT_TRUE(c.StartAll());
  ASSERT_TRUE(c.WaitReady(30000));
  unsigned seed =
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count());
  printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  Load load(c, "crash", 400, 24, 120);
  auto kill_and_restart = [&](const std::vector<size_t> &victims, int cycle) {
    for (size_t v : victims) ASSERT_TRUE(c.Kill(v)) << "cycle " << cycle << ": replica " << v;
    for (size_t v : victims) ASSERT_TRUE(c.Start(v));
    for (size_t v : victims) {
      ASSERT_TRUE(Answers(c, v, 30000))
          << "cycle " << cycle << ": replica " << v << " did not come back\n"
          << c.LogTail(v);
    }
  };
  for (int cycle = 0; cycle < 3 && !HasFatalFailure(); cycle++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + rng() % 2000));
    size_t a = rng() % 4, b = (a + 1 + rng() % 3) % 4;
    kill_and_restart({a, b}, cycle);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + rng() % 2000));
    kill_and_restart({0, 1, 2, 3}, cycle);
  }
  ASSERT_FALSE(HasFatalFailure());
  int st = load.Finish(240000);
  std::string out = load.Output();
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("not committed at the end 0"), std::string::npos) << out;
  uint64_t to_sn = LeastLastSn(c);
  ASSERT_GT(to_sn, 0u);
  std::string check;
  EXPECT_EQ(LogCheck(c, to_sn, {load.record()}, &check), 0) << check;
  EXPECT_NE(check.find("mir-logcheck: ok"), std::string::npos) << check;
  printf("%s", check.c_str());
  for (size_t i = 0; i < c.size(); i++) {
    // Each replica resumed from its write-ahead log at least once (the kills of all four).
    EXPECT_NE(c.Log(i).find("recovered the write-ahead log of " + c.DataDir(i)), std::string::npos)
        << "replica " << i;
    EXPECT_EQ(c.Log(i).find("stopping instead of rewriting"), std::string::npos) << "replica " << i;
  }
  StopAllCleanly(c);
  DumpOnFailure(c);
}

TEST(ReplicaCrash, WipedReplicaRejoinsByStateTransfer) {
  // Replica 3 loses its data folder and is started with --rejoin: it marks its new log, asks its
  // peers before voting, catches up by state transfer to the same log hash while the others keep
  // committing, and a later restart finds its vote floor in the log.
  if (!ToolsBuilt()) GTEST_SKIP() << "mir-bench or mir-logcheck not built";
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  ASSERT_TRUE(c.StartAll());
  ASSERT_TRUE(c.WaitReady(30000));
  // Epochs advance only under load (an idle cluster orders nothing): the load lasts until the
  // cluster is well past the epochs replica 3 will find retained.
  Load before(c, "rejoin-a", 300, 20, 60);
  ASSERT_TRUE(mirtest::WaitFor(
      [&] {
        Mir__Api__StatusResponse *s = StatusOf(c, 0);
        bool far = s != nullptr && s->epoch >= 8;
        if (s != nullptr) mir__api__status_response__free_unpacked(s, nullptr);
        return far;
      },
      60000));
  EXPECT_EQ(before.Finish(120000), 0) << before.Output();
  ASSERT_TRUE(c.Kill(3));
  c.WipeData(3);
  Load during(c, "rejoin-b", 300, 8, 60);
  ASSERT_TRUE(c.StartWith(3, {"--rejoin"}));
  ASSERT_TRUE(Answers(c, 3, 30000)) << c.LogTail(3);
  EXPECT_EQ(during.Finish(120000), 0) << during.Output();
  EXPECT_NE(during.Output().find("not committed at the end 0"), std::string::npos)
      << during.Output();
  uint64_t target = NextSn(c, 0);
  uint64_t n3 = 0, retained = 0;
  std::string h3;
  EXPECT_TRUE(mirtest::WaitFor(
      [&] {
        n3 = NextSn(c, 3, &h3, &retained);
        return n3 >= target;
      },
      60000))
      << "replica 3 at sn " << n3 << ", wanted " << target;
  std::string log3 = c.Log(3);
  EXPECT_NE(log3.find("--rejoin: marked the new log of " + c.DataDir(3)), std::string::npos);
  EXPECT_NE(log3.find("rejoin pending"), std::string::npos);
  EXPECT_NE(log3.find("(state transfer)"), std::string::npos) << c.LogTail(3);
  EXPECT_GT(retained, 0u);  // its log starts at the transferred checkpoint
  uint64_t to_sn = LeastLastSn(c);
  ASSERT_GT(to_sn, 0u);
  std::string check;
  EXPECT_EQ(LogCheck(c, to_sn, {before.record(), during.record()}, &check), 0) << check;
  // A crash after the rejoin: the log holds the vote floor, and no rejoin is pending any more.
  ASSERT_TRUE(c.Kill(3));
  ASSERT_TRUE(c.Start(3));
  ASSERT_TRUE(Answers(c, 3, 30000)) << c.LogTail(3);
  printf("%s\n", LastLineWith(log3, "state transfer").c_str());
  std::string line = LastLineWith(c.Log(3), "recovered the write-ahead log");
  printf("%s\n", line.c_str());
  EXPECT_NE(line.find("rejoin no"), std::string::npos) << line;
  EXPECT_EQ(line.find("vote floor epoch 0,"), std::string::npos) << line;
  StopAllCleanly(c);
  DumpOnFailure(c);
}

// Flips a byte in the middle of the value of the first PBFT instance record ('I' key) of the
// "wal" column family of the store at path (the replica is stopped). Returns the record's name
// as the replica formats it ("" on failure).
std::string CorruptWalRecord(const std::string &path) {
  const char *cfs[] = {"log", "batches", "wal"};
  mir_store_config sc;
  mir_store_config_default(&sc);
  sc.path = path.c_str();
  sc.cfs = cfs;
  sc.n_cfs = 3;
  mir_store *s = nullptr;
  if (mir_store_open(&sc, &s) != MIR_OK) return "";
  int cf = mir_store_cf(s, "wal");
  std::string key, val;
  mir_store_iter *it = mir_store_iter_new(s, cf);
  for (mir_store_iter_seek_first(it); mir_store_iter_valid(it); mir_store_iter_next(it)) {
    size_t kl = 0, vl = 0;
    const uint8_t *k = mir_store_iter_key(it, &kl);
    const uint8_t *v = mir_store_iter_value(it, &vl);
    if (kl > 0 && k[0] == 'I' && vl > 8) {
      key.assign(reinterpret_cast<const char *>(k), kl);
      val.assign(reinterpret_cast<const char *>(v), vl);
      break;
    }
  }
  mir_store_iter_free(it);
  std::string name;
  if (!key.empty()) {
    val[val.size() / 2] = static_cast<char>(val[val.size() / 2] ^ 0x5a);
    mir_store_batch *b = mir_store_batch_new(s);
    mir_store_batch_put(b, cf, key.data(), key.size(), val.data(), val.size());
    char buf[96];
    if (mir_store_write(s, b) == MIR_OK) {
      name = trantor_wal_key_format(reinterpret_cast<const uint8_t *>(key.data()), key.size(), buf,
                                    sizeof(buf));
    }
  }
  if (mir_store_close(s) != MIR_OK) name = "";
  return name;
}

TEST(ReplicaStorage, CorruptWriteAheadLogRecordIsRefusedAtStart) {
  // With flipped bytes in one vote record, the replica does not start (exit status 2): the
  // message names the data folder, the record, the checksum and the remedy. The remedy works:
  // with the folder removed, --rejoin brings the replica back.
  if (!ToolsBuilt()) GTEST_SKIP() << "mir-bench not built";
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  ASSERT_TRUE(c.StartAll());
  ASSERT_TRUE(c.WaitReady(30000));
  {
    Load load(c, "corrupt", 300, 3, 30); /* an idle cluster orders nothing */
    EXPECT_EQ(load.Finish(60000), 0) << load.Output();
  }
  ASSERT_TRUE(mirtest::WaitFor([&] { return NextSn(c, 0) > 100; }, 30000));
  ASSERT_TRUE(c.Kill(0));
  std::string record = CorruptWalRecord(c.DataDir(0) + "/db");
  ASSERT_NE(record, "");
  ASSERT_TRUE(c.Start(0));
  EXPECT_EQ(c.WaitExit(0, 30000), 2);
  std::string log = c.Log(0);
  EXPECT_NE(log.find("data folder " + c.DataDir(0)), std::string::npos) << log;
  EXPECT_NE(log.find("record " + record + ": checksum mismatch"), std::string::npos) << log;
  EXPECT_NE(log.find("restore the data folder, or remove it and start with --rejoin"),
            std::string::npos)
      << log;
  printf("%s\n", LastLineWith(log, "checksum mismatch").c_str());
  c.WipeData(0);
  ASSERT_TRUE(c.StartWith(0, {"--rejoin"}));
  ASSERT_TRUE(Answers(c, 0, 30000)) << c.LogTail(0);
  uint64_t target = NextSn(c, 1);
  EXPECT_TRUE(mirtest::WaitFor([&] { return NextSn(c, 0) >= target; }, 60000)) << c.LogTail(0);
  StopAllCleanly(c);
  DumpOnFailure(c);
}

TEST(ReplicaStorage, AStoreOfAVersionWithoutWriteAheadLogIsRefused) {
  // A data folder written before votes were stored (its ordered log kept checkpoints in a column
  // family of its own) cannot tell what the replica voted: the replica refuses it, exit status 2,
  // and says to remove it and rejoin.
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  const char *cfs[] = {"log", "batches", "checkpoints"};
  mir_store_config sc;
  mir_store_config_default(&sc);
  std::string path = c.DataDir(0) + "/db";
  ASSERT_EQ(mirtest::RunProgram({"/bin/mkdir", "-p", c.DataDir(0)}, "", 10000), 0);
  sc.path = path.c_str();
  sc.cfs = cfs;
  sc.n_cfs = 3;
  mir_store *s = nullptr;
  ASSERT_EQ(mir_store_open(&sc, &s), MIR_OK) << mir_error_detail();
  ASSERT_EQ(mir_store_close(s), MIR_OK);
  std::string out = c.dir() + "/old.out";
  EXPECT_EQ(mirtest::RunProgram({mirtest::BinDir() + "/mir-replica", "--config", c.ConfigPath(0)},
                                out, 60000),
            2);
  std::string text = mirtest::ReadFile(out);
  EXPECT_NE(text.find("store " + path +
                      " was written by an older version without the "
                      "write-ahead log"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("remove " + path + " and start with --rejoin"), std::string::npos) << text;
  EXPECT_EQ(text.find("Sanitizer"), std::string::npos) << text;
}

TEST(ReplicaStorage, FullDiskStopsTheReplica) {
  // Replica 3 runs with a file size limit of 8 MiB (prlimit; the limit is per file, like a disk
  // that fills up): once its store's log reaches it, the write fails and the replica stops with
  // exit status 1 and the store's error, instead of voting without durability. The other three
  // commit every transaction.
  if (!ToolsBuilt()) GTEST_SKIP() << "mir-bench or mir-logcheck not built";
  const std::string prlimit = "/usr/bin/prlimit";
  if (access(prlimit.c_str(), X_OK) != 0) GTEST_SKIP() << "no " << prlimit;
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  for (size_t i = 0; i < 3; i++) ASSERT_TRUE(c.Start(i));
  ASSERT_TRUE(c.StartWith(3, {"--new"}, {prlimit, "--fsize=8388608", "--"}));
  ASSERT_TRUE(c.WaitReady(30000));
  Load load(c, "disk", 1500, 40, 60);
  int st = c.WaitExit(3, 120000);
  EXPECT_EQ(st, 1) << c.LogTail(3);
  std::string log = c.Log(3);
  EXPECT_NE(log.find("File too large"), std::string::npos) << c.LogTail(3);
  EXPECT_NE(log.find(c.DataDir(3) + "/db"), std::string::npos) << c.LogTail(3);
  EXPECT_NE(log.find("the node stopped"), std::string::npos) << c.LogTail(3);
  EXPECT_NE(log.find(": stopped"), std::string::npos) << c.LogTail(3);
  printf("%s\n", LastLineWith(log, "File too large").c_str());
  EXPECT_EQ(load.Finish(180000), 0) << load.Output();
  EXPECT_NE(load.Output().find("not committed at the end 0"), std::string::npos) << load.Output();
  StopAllCleanly(c);
  DumpOnFailure(c);
}

}  // namespace
