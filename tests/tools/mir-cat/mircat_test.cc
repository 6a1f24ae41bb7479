// Tests of the mir-cat tool, run as a process on logs the tests write with the recorder (and by
// hand, for unknown types and damaged files): summary, event lines, filters, JSON rendering,
// several files, damaged input, usage errors and replay into a debug-mode node.
#include <dirent.h>
#include <gtest/gtest.h>
#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/eventlog.h"
#include "mir/recorder.h"
}

#include "samples/pingpong.pb-c.h"

#ifndef MIRCAT_PATH
#define MIRCAT_PATH "bin/mir-cat"
#endif

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "mir-cat-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    EXPECT_NE(mkdtemp(buf.data()), nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    DIR *d = opendir(path_.c_str());
    if (d != nullptr) {
      while (struct dirent *e = readdir(d)) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
          unlink((path_ + "/" + e->d_name).c_str());
        }
      }
      closedir(d);
    }
    rmdir(path_.c_str());
  }
  const std::string &path() const { return path_; }
  std::string File(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct Result {
  int status = -1;
  std::string out;
  std::string err;
  std::vector<std::string> lines;  // stdout split at newlines
};

// Runs mir-cat with args (already shell-quoted where needed), feeding `input` on stdin.
Result MirCat(const TempDir &dir, const std::string &args, const std::string &input = "") {
  std::string in_path = dir.File("stdin.txt"), err_path = dir.File("stderr.txt");
  FILE *f = fopen(in_path.c_str(), "w");
  EXPECT_NE(f, nullptr);
  if (f != nullptr) {
    fputs(input.c_str(), f);
    fclose(f);
  }
  std::string cmd =
      std::string(MIRCAT_PATH) + " " + args + " <'" + in_path + "' 2>'" + err_path + "'";
  Result r;
  FILE *p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr) << cmd;
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  FILE *e = fopen(err_path.c_str(), "r");
  if (e != nullptr) {
    while ((n = fread(buf, 1, sizeof(buf), e)) > 0) r.err.append(buf, n);
    fclose(e);
  }
  std::istringstream ss(r.out);
  std::string line;
  while (std::getline(ss, line)) r.lines.push_back(line);
  return r;
}

std::string Q(const std::string &s) {
  return "'" + s + "'";
}

// Parses the summary's "  name  count" lines of one section.
std::map<std::string, uint64_t> Section(const Result &r, const std::string &title) {
  std::map<std::string, uint64_t> out;
  bool in = false;
  for (const std::string &l : r.lines) {
    if (l.rfind(title + " (", 0) == 0) {
      in = true;
      continue;
    }
    if (in && l.rfind("  ", 0) != 0) break;
    if (!in) continue;
    std::istringstream ss(l);
    std::string name;
    uint64_t count = 0;
    ss >> name >> count;
    out[name] = count;
  }
  return out;
}

std::vector<std::string> Split(const std::string &l) {
  std::istringstream ss(l);
  std::vector<std::string> w;
  std::string x;
  while (ss >> x) w.push_back(x);
  return w;
}

// Writes a log with the recorder: each batch is (node id, events).
class LogWriter {
 public:
  explicit LogWriter(const std::string &dir, const char *prefix = "log", uint64_t every_n = 0) {
    mir_recorder_config cfg;
    mir_recorder_config_default(&cfg);
    cfg.dir = dir.c_str();
    cfg.node_id = "n0";
    cfg.prefix = prefix;
    cfg.sync = true;
    cfg.time_fn = [](void *ud) -> int64_t { return ++*static_cast<int64_t *>(ud); };
    cfg.time_user_data = &clock_;
    if (every_n > 0) {
      cfg.rotation = MIR_RECORDER_EVERY_N;
      cfg.rotate_every_events = every_n;
    }
    EXPECT_EQ(mir_recorder_new(&cfg, &rec_), MIR_OK);
  }
  ~LogWriter() { Close(); }
  void Add(const char *node, std::vector<mir_event *> events) {
    mir_event_list l = MIR_EVENT_LIST_INIT;
    for (mir_event *ev : events) mir_event_list_push(&l, ev);
    mir_interceptor ic;
    mir_recorder_interceptor(rec_, &ic);
    EXPECT_EQ(ic.intercept(ic.user_data, node, "x", &l), MIR_OK);
    mir_event_list_free(&l);
  }
  void Close() {
    if (rec_ == nullptr) return;
    EXPECT_EQ(mir_recorder_close(rec_), MIR_OK);
    mir_recorder_free(rec_);
    rec_ = nullptr;
  }

 private:
  mir_recorder *rec_ = nullptr;
  int64_t clock_ = 0;
};

// The standard log of these tests: 10 events, 4 records, 2 nodes, 5 types, 5 destinations.
void WriteStandardLog(const std::string &dir) {
  LogWriter w(dir);
  w.Add("n0", {mir_event_test_string("app", "src", "a"), mir_event_test_string("app", "src", "b"),
               mir_event_test_uint64("app/sub/1", "src", 7)});
  w.Add("n1", {mir_event_test_string("apple", "src", "c"), mir_event_init("app")});
  mir_event_list nested = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&nested, mir_event_test_string("app", "timer", "later"));
  const char *dests[] = {"n1", "n2"};
  Mir__TestUint64 msg = MIR__TEST_UINT64__INIT;
  msg.value = 42;
  w.Add("n0", {mir_event_timer_delay("timer", "app", &nested, 250),
               mir_event_send_message("net", "app", dests, 2, "app", &msg.base)});
  w.Add("n0", {mir_event_test_uint64("app", "src", 1), mir_event_test_uint64("app", "src", 2),
               mir_event_test_string("app", "src", "tab\there \"quoted\" \xff")});
}

// Writes records by hand (for types mir-cat does not know and for damaged logs).
std::string RawRecord(const char *node, const char *type, const std::string &payload,
                      const char *dest = "app") {
  Mir__PackedEvent pe = MIR__PACKED_EVENT__INIT;
  pe.dest = const_cast<char *>(dest);
  pe.src = const_cast<char *>("src");
  pe.type = const_cast<char *>(type);
  pe.payload.data = reinterpret_cast<uint8_t *>(const_cast<char *>(payload.data()));
  pe.payload.len = payload.size();
  Mir__PackedEvent *ptr = &pe;
  Mir__LogRecord lr = MIR__LOG_RECORD__INIT;
  lr.node_id = const_cast<char *>(node);
  lr.n_events = 1;
  lr.events = &ptr;
  std::string body(mir__log_record__get_packed_size(&lr), '\0');
  mir__log_record__pack(&lr, reinterpret_cast<uint8_t *>(&body[0]));
  std::string len;
  size_t v = body.size();
  while (v >= 0x80) {
    len.push_back((char)(v | 0x80));
    v >>= 7;
  }
  len.push_back((char)v);
  return len + body;
}

void WriteCompressed(const std::string &path, const std::string &raw) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n = ZSTD_compress(&out[0], out.size(), raw.data(), raw.size(), 3);
  ASSERT_FALSE(ZSTD_isError(n));
  FILE *f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  fwrite(out.data(), 1, n, f);
  fclose(f);
}

// The summary counts records, events, and events per node, type and destination.
TEST(MirCat, Summary) {
  TempDir dir;
  WriteStandardLog(dir.path());
  Result r = MirCat(dir, Q(dir.File("log-0.mirlog.zst")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("records: 4\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("events: 10\n"), std::string::npos) << r.out;
  EXPECT_EQ(Section(r, "nodes"), (std::map<std::string, uint64_t>{{"n0", 8}, {"n1", 2}}));
  EXPECT_EQ(Section(r, "types"), (std::map<std::string, uint64_t>{{"mir.Init", 1},
                                                                  {"mir.SendMessage", 1},
                                                                  {"mir.TestString", 4},
                                                                  {"mir.TestUint64", 3},
                                                                  {"mir.TimerDelay", 1}}));
  EXPECT_EQ(Section(r, "destinations"),
            (std::map<std::string, uint64_t>{
                {"app", 6}, {"app/sub/1", 1}, {"apple", 1}, {"net", 1}, {"timer", 1}}));
}

// --events prints one line per event: index, node, time, src -> dest, type.
TEST(MirCat, EventLines) {
  TempDir dir;
  WriteStandardLog(dir.path());
  Result r = MirCat(dir, "--events " + Q(dir.File("log-0.mirlog.zst")));
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 10u) << r.out;
  EXPECT_EQ(r.lines[0], "0 n0 1 src -> app mir.TestString");
  EXPECT_EQ(r.lines[2], "2 n0 1 src -> app/sub/1 mir.TestUint64");
  EXPECT_EQ(r.lines[4], "4 n1 2 - -> app mir.Init");
  EXPECT_EQ(r.lines[5], "5 n0 3 app -> timer mir.TimerDelay");
  EXPECT_EQ(r.lines[9], "9 n0 4 src -> app mir.TestString");
}

std::vector<std::string> Indices(const Result &r) {
  std::vector<std::string> out;
  for (const std::string &l : r.lines) out.push_back(Split(l).at(0));
  return out;
}

// Type, destination (exact and prefix), node, offset and limit filters select events; indices
// keep counting every event.
TEST(MirCat, Filters) {
  TempDir dir;
  WriteStandardLog(dir.path());
  std::string f = " " + Q(dir.File("log-0.mirlog.zst"));
  using V = std::vector<std::string>;
  Result types = MirCat(dir, "--events --type mir.TestUint64 --type=mir.Init" + f);
  EXPECT_EQ(Indices(types), (V{"2", "4", "7", "8"}));
  Result exact = MirCat(dir, "--events --dest app" + f);
  EXPECT_EQ(Indices(exact), (V{"0", "1", "4", "7", "8", "9"}));
  Result prefix = MirCat(dir, "--events --dest app/" + f);
  EXPECT_EQ(Indices(prefix), (V{"0", "1", "2", "4", "7", "8", "9"}));  // not "apple"
  Result node = MirCat(dir, "--events --node n1" + f);
  EXPECT_EQ(Indices(node), (V{"3", "4"}));
  Result window = MirCat(dir, "--events --offset 3 --limit 4" + f);
  EXPECT_EQ(Indices(window), (V{"3", "4", "5", "6"}));
  Result combined = MirCat(dir, "--events --type mir.TestString --offset 1 --limit 2" + f);
  EXPECT_EQ(Indices(combined), (V{"1", "3"}));
  Result summary = MirCat(dir, "--node n0 --type mir.TestString" + f);
  EXPECT_NE(summary.out.find("events: 3\n"), std::string::npos) << summary.out;
  EXPECT_NE(summary.out.find("records: 2\n"), std::string::npos) << summary.out;
}

// Parses every output line as JSON (jansson rejects invalid UTF-8 and bad escapes).
std::vector<json_t *> ParseJson(const Result &r) {
  std::vector<json_t *> out;
  for (const std::string &l : r.lines) {
    json_error_t err;
    json_t *j = json_loads(l.c_str(), 0, &err);
    EXPECT_NE(j, nullptr) << err.text << ": " << l;
    if (j != nullptr) out.push_back(j);
  }
  return out;
}

std::string Str(json_t *j, const char *path_a, const char *path_b = nullptr,
                const char *path_c = nullptr) {
  json_t *v = json_object_get(j, path_a);
  if (path_b != nullptr) v = json_object_get(v, path_b);
  if (path_c != nullptr) v = json_object_get(v, path_c);
  return json_is_string(v) ? json_string_value(v) : "<not a string>";
}

// --json renders each event with its payload decoded from the descriptor: strings escaped
// (invalid UTF-8 replaced), numbers, repeated fields as arrays, nested packed events and
// messages decoded by type name.
TEST(MirCat, JsonRendering) {
  TempDir dir;
  WriteStandardLog(dir.path());
  Result r = MirCat(dir, "--json " + Q(dir.File("log-0.mirlog.zst")));
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<json_t *> js = ParseJson(r);
  ASSERT_EQ(js.size(), 10u);
  EXPECT_EQ(json_integer_value(json_object_get(js[0], "index")), 0);
  EXPECT_EQ(Str(js[0], "node"), "n0");
  EXPECT_EQ(json_integer_value(json_object_get(js[0], "time_ns")), 1);
  EXPECT_EQ(Str(js[0], "type"), "mir.TestString");
  EXPECT_EQ(Str(js[0], "payload", "value"), "a");
  EXPECT_EQ(json_integer_value(json_object_get(json_object_get(js[2], "payload"), "value")), 7);
  EXPECT_EQ(json_object_size(json_object_get(js[4], "payload")), 0u);  // mir.Init {}
  // TimerDelay: repeated PackedEvent whose payload is decoded as mir.TestString.
  json_t *events = json_object_get(json_object_get(js[5], "payload"), "events");
  ASSERT_TRUE(json_is_array(events));
  ASSERT_EQ(json_array_size(events), 1u);
  EXPECT_EQ(Str(json_array_get(events, 0), "payload", "value"), "later");
  EXPECT_EQ(Str(json_array_get(events, 0), "type"), "mir.TestString");
  EXPECT_EQ(json_integer_value(json_object_get(json_object_get(js[5], "payload"), "delay_ms")),
            250);
  // SendMessage: destinations array, PackedMessage data decoded as mir.TestUint64.
  json_t *send = json_object_get(js[6], "payload");
  EXPECT_EQ(json_array_size(json_object_get(send, "destinations")), 2u);
  EXPECT_EQ(json_integer_value(
                json_object_get(json_object_get(json_object_get(send, "msg"), "data"), "value")),
            42);
  EXPECT_EQ(Str(js[9], "payload", "value"), "tab\there \"quoted\" \xef\xbf\xbd");
  for (json_t *j : js) json_decref(j);
}

// A type mir-cat does not know keeps its payload as base64; a known type whose bytes do not
// decode too.
TEST(MirCat, JsonUnknownTypeIsBase64) {
  TempDir dir;
  std::string raw = RawRecord("n0", "test.Unknown", std::string("\x01\x02\xfb\xff", 4)) +
                    RawRecord("n0", "mir.TestString",
                              "\x0a\x05"
                              "ab");
  WriteCompressed(dir.File("raw.mirlog.zst"), raw);
  Result r = MirCat(dir, "--json " + Q(dir.File("raw.mirlog.zst")));
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<json_t *> js = ParseJson(r);
  ASSERT_EQ(js.size(), 2u);
  EXPECT_EQ(Str(js[0], "payload"), "AQL7/w==");
  EXPECT_EQ(Str(js[1], "payload"), "CgVhYg==");
  for (json_t *j : js) json_decref(j);
}

// Text output escapes control bytes that come from the log (a node id with a terminal escape).
TEST(MirCat, TextOutputEscapesControlBytes) {
  TempDir dir;
  {
    LogWriter w(dir.path());
    w.Add("evil\x1b[31m", {mir_event_test_uint64("app", "src", 1)});
  }
  Result r = MirCat(dir, "--events " + Q(dir.File("log-0.mirlog.zst")));
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_EQ(r.lines[0], "0 evil\\x1b[31m 1 src -> app mir.TestUint64");
}

// Several files (rotated logs) are read in the order given with one running index.
TEST(MirCat, SeveralFiles) {
  TempDir dir;
  {
    LogWriter w(dir.path(), "rot", 3);
    for (int i = 0; i < 4; i++) {
      w.Add("n0", {mir_event_test_uint64("app", "src", (uint64_t)(2 * i)),
                   mir_event_test_uint64("app", "src", (uint64_t)(2 * i + 1))});
    }
  }
  std::string files;
  for (int k = 0; k < 3; k++)
    files += " " + Q(dir.File("rot-" + std::to_string(k) + ".mirlog.zst"));
  Result r = MirCat(dir, "--json" + files);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<json_t *> js = ParseJson(r);
  ASSERT_EQ(js.size(), 8u);
  for (size_t i = 0; i < js.size(); i++) {
    EXPECT_EQ(json_integer_value(json_object_get(js[i], "index")), (json_int_t)i);
    EXPECT_EQ(json_integer_value(json_object_get(json_object_get(js[i], "payload"), "value")),
              (json_int_t)i);
  }
  for (json_t *j : js) json_decref(j);
  Result summary = MirCat(dir, files);
  EXPECT_NE(summary.out.find("events: 8\n"), std::string::npos);
}

// A corrupt or missing file is reported and skipped (exit status 1) while the others are still
// read; a truncated tail is only a warning.
TEST(MirCat, DamagedInput) {
  TempDir dir;
  WriteStandardLog(dir.path());
  FILE *f = fopen(dir.File("junk.mirlog.zst").c_str(), "wb");
  ASSERT_NE(f, nullptr);
  fputs("definitely not zstd", f);
  fclose(f);
  std::string good = RawRecord("n0", "mir.TestString", "\x0a\x01x");
  WriteCompressed(dir.File("cut.mirlog.zst"), good + good.substr(0, good.size() - 2));

  Result r =
      MirCat(dir, "--events " + Q(dir.File("junk.mirlog.zst")) + " " +
                      Q(dir.File("missing.mirlog.zst")) + " " + Q(dir.File("log-0.mirlog.zst")));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.lines.size(), 10u);
  EXPECT_NE(r.err.find("junk.mirlog.zst"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing.mirlog.zst"), std::string::npos) << r.err;

  Result cut = MirCat(dir, "--events " + Q(dir.File("cut.mirlog.zst")));
  EXPECT_EQ(cut.status, 0) << cut.err;
  EXPECT_EQ(cut.lines.size(), 1u);
  EXPECT_NE(cut.err.find("warning"), std::string::npos) << cut.err;
}

// Usage errors exit with status 2; --help exits 0 and lists the replay targets.
TEST(MirCat, Usage) {
  TempDir dir;
  Result help = MirCat(dir, "--help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--replay"), std::string::npos);
  EXPECT_NE(help.out.find("echo"), std::string::npos);
  EXPECT_EQ(MirCat(dir, "").status, 2);
  EXPECT_EQ(MirCat(dir, "--limit ten x").status, 2);
  EXPECT_EQ(MirCat(dir, "--limit").status, 2);
  EXPECT_EQ(MirCat(dir, "--bogus x").status, 2);
  EXPECT_EQ(MirCat(dir, "--step x").status, 2);
  EXPECT_EQ(MirCat(dir, "--replay nosuchtarget x").status, 2);
}

void WriteEchoLog(const std::string &dir) {
  LogWriter w(dir);
  w.Add("n0", {mir_event_test_string("echo", "client", "one"),
               mir_event_test_uint64("echo", "client", 2)});
  w.Add("other", {mir_event_test_string("echo", "client", "foreign")});
  w.Add("n0", {mir_event_test_string("echo", "", "three")});
}

// Replay injects the recorded events of the first node into the "echo" target and prints, after
// each one, what the node emitted; events of other nodes are not injected.
TEST(MirCat, ReplayEcho) {
  TempDir dir;
  WriteEchoLog(dir.path());
  Result r = MirCat(dir, "--replay echo " + Q(dir.File("log-0.mirlog.zst")));
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> want = {
      "replay: target echo, node n0",
      "0 n0 1 client -> echo mir.TestString",
      "  < 0 n0 1 echo -> client mir.TestString",
      "1 n0 1 client -> echo mir.TestUint64",
      "  < 1 n0 1 echo -> client mir.TestUint64",
      "3 n0 3 - -> echo mir.TestString",
      "  < 3 n0 3 echo -> sink mir.TestString",
      "replay: injected 3, emitted 3, other nodes 1, undecodable 0",
  };
  EXPECT_EQ(r.lines, want);
}

// With filters, replay still injects every event of the node but prints only the selected ones;
// --json shows the emitted payloads; --step waits for a line per selected event and runs on at
// the end of its input.
TEST(MirCat, ReplayFiltersJsonAndStep) {
  TempDir dir;
  WriteEchoLog(dir.path());
  std::string f = " " + Q(dir.File("log-0.mirlog.zst"));
  Result typed = MirCat(dir, "--replay echo --type mir.TestUint64" + f);
  ASSERT_EQ(typed.status, 0) << typed.err;
  ASSERT_EQ(typed.lines.size(), 4u) << typed.out;
  EXPECT_EQ(typed.lines[1], "1 n0 1 client -> echo mir.TestUint64");
  EXPECT_EQ(typed.lines[3], "replay: injected 3, emitted 3, other nodes 1, undecodable 0");

  Result js = MirCat(dir, "--replay echo --json --limit 1" + f);
  ASSERT_EQ(js.status, 0) << js.err;
  ASSERT_EQ(js.lines.size(), 4u) << js.out;
  json_error_t err;
  json_t *out = json_loads(js.lines[2].c_str(), 0, &err);
  ASSERT_NE(out, nullptr) << js.lines[2];
  EXPECT_TRUE(json_is_true(json_object_get(out, "emitted")));
  EXPECT_EQ(Str(out, "dest"), "client");
  EXPECT_EQ(Str(out, "payload", "value"), "one");
  json_decref(out);

  Result step = MirCat(dir, "--replay echo --step" + f, "\n");
  ASSERT_EQ(step.status, 0) << step.err;
  size_t prompts = 0;
  for (size_t at = 0; (at = step.err.find("Enter", at)) != std::string::npos; at++) prompts++;
  EXPECT_EQ(prompts, 2u);  // one line answers the first; at EOF the rest runs without waiting
  EXPECT_EQ(step.lines.back(), "replay: injected 3, emitted 3, other nodes 1, undecodable 0");

  Result other = MirCat(dir, "--replay echo --node other" + f);
  ASSERT_EQ(other.status, 0) << other.err;
  EXPECT_EQ(other.lines.front(), "replay: target echo, node other");
  EXPECT_EQ(other.lines.back(), "replay: injected 1, emitted 1, other nodes 0, undecodable 0");
}

// Events that cannot be decoded are reported and skipped by replay.
TEST(MirCat, ReplaySkipsUndecodableEvents) {
  TempDir dir;
  std::string raw = RawRecord("n0", "test.Unknown", "zz", "echo") +
                    RawRecord("n0", "mir.TestString", "\x0a\x02ok", "echo");
  WriteCompressed(dir.File("raw.mirlog.zst"), raw);
  Result r = MirCat(dir, "--replay echo " + Q(dir.File("raw.mirlog.zst")));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.lines.back(), "replay: injected 1, emitted 1, other nodes 0, undecodable 1");
  EXPECT_NE(r.err.find("test.Unknown"), std::string::npos) << r.err;
}

// Replay with the pingpong sample's modules: the recorded Init makes node 0's pingpong module ask
// the timer for ticks, and a recorded Ping from node 1 makes it send a Pong with the same sequence
// number and report the Ping; the sample's types are decoded in the JSON output.
TEST(MirCat, ReplayPingpongSample) {
  TempDir dir;
  {
    LogWriter w(dir.path());
    w.Add("0", {mir_event_init("pingpong")});
    Samples__Pingpong__Ping ping = SAMPLES__PINGPONG__PING__INIT;
    ping.seq_nr = 5;
    w.Add("0", {mir_event_message_received("1", mir_message_pack("pingpong", &ping.base))});
  }
  std::string f = " " + Q(dir.File("log-0.mirlog.zst"));
  Result text = MirCat(dir, "--replay pingpong" + f);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_EQ(text.lines.front(), "replay: target pingpong, node 0");
  bool timer = false, send = false, report = false;
  for (const std::string &l : text.lines) {
    timer |= l.find("< 0 0 1 pingpong -> timer mir.TimerRepeat") != std::string::npos;
    send |= l.find("< 1 0 2 pingpong -> net mir.SendMessage") != std::string::npos;
    report |= l.find("< 1 0 2 pingpong -> app samples.pingpong.Report") != std::string::npos;
  }
  EXPECT_TRUE(timer && send && report) << text.out;

  Result js = MirCat(dir, "--replay pingpong --json --type mir.MessageReceived" + f);
  ASSERT_EQ(js.status, 0) << js.err;
  bool pong = false, ping_in = false;
  for (const std::string &l : js.lines) {
    json_t *j = json_loads(l.c_str(), 0, nullptr);
    if (j == nullptr) continue;  // the "replay:" text lines
    json_t *payload = json_object_get(j, "payload");
    json_t *data = json_object_get(json_object_get(payload, "msg"), "data");
    if (Str(j, "type") == "mir.MessageReceived") {
      ping_in = json_integer_value(json_object_get(data, "seq_nr")) == 5;
    } else if (Str(j, "type") == "mir.SendMessage") {
      pong = Str(json_object_get(payload, "msg"), "type") == "samples.pingpong.Pong" &&
             json_integer_value(json_object_get(data, "seq_nr")) == 5;
    }
    json_decref(j);
  }
  EXPECT_TRUE(ping_in) << js.out;
  EXPECT_TRUE(pong) << js.out;
}

}  // namespace
