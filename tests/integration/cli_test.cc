// Tests of the mir-replica command line as a process: --help documents the options and every
// configuration field; configuration mistakes, a key that is not the replica's own, and a data
// folder already in use end the process with a message naming the file, field or folder; --check
// accepts a good configuration without starting anything; --new and --rejoin are required exactly
// when the data folder holds no store, and refused when it does.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "integration/cluster.h"

using mirtest::BinDir;
using mirtest::Cluster;
using mirtest::ClusterOptions;
using mirtest::ReadFile;
using mirtest::RunProgram;

namespace {

// Runs mir-replica with args; returns the exit status and its output in *out.
int Replica(const std::vector<std::string> &args, const std::string &dir, std::string *out) {
  std::vector<std::string> argv = {BinDir() + "/mir-replica"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string file = dir + "/cli.out";
  std::remove(file.c_str());
  int st = RunProgram(argv, file, 60000);
  *out = ReadFile(file);
  return st;
}

TEST(ReplicaCli, HelpDocumentsOptionsAndFields) {
  // --help exits 0 and names the options and the configuration fields.
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  std::string out;
  EXPECT_EQ(Replica({"--help"}, c.dir(), &out), 0);
  for (const char *word :
       {"--config", "--check", "--new", "--rejoin", "--status-period-ms", "client_listen",
        "trantor.segment_length", "trantor.epochs_ahead_max", "store.retention_sns", "SIGTERM"}) {
    EXPECT_NE(out.find(word), std::string::npos) << word;
  }
  EXPECT_EQ(Replica({}, c.dir(), &out), 2);  // --config is required
  EXPECT_EQ(Replica({"--config", c.ConfigPath(0), "--new", "--rejoin"}, c.dir(), &out), 2);
  EXPECT_NE(out.find("exclude each other"), std::string::npos) << out;
}

TEST(ReplicaCli, StartModesGuardTheDataFolder) {
  // A replica never votes with an empty store unless told it never voted: without a store it
  // needs --new or --rejoin (the message names both and the folder); with a store both are
  // refused, and it resumes without them.
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  std::string out, data = c.DataDir(0);
  EXPECT_EQ(Replica({"--config", c.ConfigPath(0)}, c.dir(), &out), 2);
  EXPECT_NE(out.find(data + " holds no store"), std::string::npos) << out;
  EXPECT_NE(out.find("--new"), std::string::npos) << out;
  EXPECT_NE(out.find("--rejoin"), std::string::npos) << out;
  ASSERT_TRUE(c.Start(0));  // the first start: --new
  // The genesis: the log's first record (the fingerprint of the membership and parameters) was
  // handed to the store in the batch that started epoch 0, and a clean stop writes what the store
  // holds. Stopped before that batch, the replica never wrote anything and the next start finds
  // an empty write-ahead log (safe: it cannot have voted), which is not what this test is about.
  ASSERT_TRUE(mirtest::WaitFor(
      [&] { return c.Log(0).find("epoch 0 starts at sn 0") != std::string::npos; }, 30000))
      << c.LogTail(0);
  EXPECT_EQ(c.Stop(0, 30000), 0);
  EXPECT_NE(c.Log(0).find("write-ahead log of " + data + " is empty"), std::string::npos);
  EXPECT_EQ(Replica({"--config", c.ConfigPath(0), "--new"}, c.dir(), &out), 2);
  EXPECT_NE(out.find("--new: data folder " + data + " already holds a store"), std::string::npos)
      << out;
  EXPECT_EQ(Replica({"--config", c.ConfigPath(0), "--rejoin"}, c.dir(), &out), 2);
  EXPECT_NE(out.find("--rejoin: data folder " + data + " still holds a store"), std::string::npos)
      << out;
  ASSERT_TRUE(c.Start(0));  // resumes: no flag
  ASSERT_TRUE(mirtest::WaitFor(
      [&] {
        return c.Log(0).find("recovered the write-ahead log of " + data) != std::string::npos;
      },
      30000))
      << c.LogTail(0);
  EXPECT_EQ(c.Stop(0, 30000), 0);
}

TEST(ReplicaCli, MistakesNameTheFileAndTheReason) {
  // A misspelt field, a membership that does not exist, and another replica's key are refused
  // with exit status 2 and a message saying where; --check passes the real configuration.
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  std::string out, bad = c.dir() + "/bad.json";
  std::ofstream(bad) << "{\"id\": \"0\", \"colour\": 1}";
  EXPECT_EQ(Replica({"--config", bad}, c.dir(), &out), 2);
  EXPECT_NE(out.find(bad + ": colour: unknown field"), std::string::npos) << out;
  std::string cfg = ReadFile(c.ConfigPath(0));
  std::string nomember = c.dir() + "/nomember.json";
  std::string text = cfg;
  text.replace(text.find("membership.json"), 15, "missing.json");
  std::ofstream(nomember) << text;
  EXPECT_EQ(Replica({"--config", nomember, "--check"}, c.dir(), &out), 2);
  EXPECT_NE(out.find("missing.json"), std::string::npos) << out;
  std::string wrongkey = c.dir() + "/wrongkey.json";
  text = cfg;
  text.replace(text.find("replica-0.key"), 13, "replica-1.key");
  std::ofstream(wrongkey) << text;
  EXPECT_EQ(Replica({"--config", wrongkey, "--check"}, c.dir(), &out), 2);
  EXPECT_NE(out.find("key_file"), std::string::npos) << out;
  EXPECT_NE(out.find("does not match"), std::string::npos) << out;
  EXPECT_EQ(Replica({"--config", c.ConfigPath(0), "--check"}, c.dir(), &out), 0) << out;
  EXPECT_NE(out.find("configuration ok"), std::string::npos) << out;
}

TEST(ReplicaCli, DataFolderInUseIsRefused) {
  // A second replica on a data folder that a running one holds stops at once with the store's
  // path in the message, and the first keeps running.
  Cluster c(ClusterOptions{});
  ASSERT_EQ(c.error(), "");
  ASSERT_TRUE(c.Start(0));
  ASSERT_TRUE(
      mirtest::WaitFor([&] { return c.Log(0).find("client API on") != std::string::npos; }, 30000));
  std::string out;
  EXPECT_EQ(Replica({"--config", c.ConfigPath(0)}, c.dir(), &out), 2);
  EXPECT_NE(out.find("data-0/db"), std::string::npos) << out;
  EXPECT_EQ(c.Stop(0, 30000), 0);
}

}  // namespace
