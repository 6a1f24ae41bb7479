// Tests of the gRPC peer transport (mir/net_grpc.h): real nodes exchanging messages over loopback
// (in order, with and without TLS), delivery to self, drops at the bounds, reconnection after a
// peer restarts, backpressure, refusal of wrong identities (certificates made here with the
// openssl command line), rejection of malformed and oversize frames sent with plain gRPC calls,
// configuration errors, the transport's metrics in the registry (per peer, and on the node's tree
// under the module id), and the frame codec on its own.
//
// Every wait is bounded (kWaitMs) and no test asserts a duration.
#include <arpa/inet.h>
#include <dirent.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/log.h"
#include "mir/metrics.h"
#include "mir/net_grpc.h"
#include "mir/node.h"
#include "net/transport.pb-c.h"
#include "net_frame.h"
}

namespace {

constexpr uint64_t kWaitMs = 60000;  // upper bound of every wait; never reached when things work

// Polls pred every 2 ms until it holds or timeout_ms passes; returns its last value.
bool WaitUntil(const std::function<bool()> &pred, uint64_t timeout_ms = kWaitMs) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// A port that was free a moment ago (the kernel's choice for port 0).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

std::string Addr(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

// ---- certificates ----

// A temporary directory with a cluster CA (ca.pem, replica-<id>.crt, replica-<id>.tls.key for ids
// 0..3 and 9, CN = id and URI SAN mir:replica:<id>), and a second, unrelated CA in other/ with a
// certificate for id 1.
class Certs {
 public:
  Certs() {
    std::string tmpl = ::testing::TempDir() + "mir-net-certs-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) dir_ = buf.data();
  }
  ~Certs() {
    if (!dir_.empty()) Remove(dir_);
  }
  // Makes the files; false (with a test failure) if openssl is missing or fails.
  bool Make() {
#ifndef MIR_OPENSSL_PATH
    ADD_FAILURE() << "the openssl command line tool is needed to make test certificates";
    return false;
#else
    if (dir_.empty()) return false;
    if (!MakeCa(dir_)) return false;
    for (const char *id : {"0", "1", "2", "3", "9"}) {
      if (!MakeLeaf(dir_, id)) return false;
    }
    std::string other = dir_ + "/other";
    mkdir(other.c_str(), 0700);
    return MakeCa(other) && MakeLeaf(other, "1");
#endif
  }
  std::string Ca() const {
    return dir_ + "/ca.pem";
  }
  std::string Cert(const std::string &id) const {
    return dir_ + "/replica-" + id + ".crt";
  }
  std::string Key(const std::string &id) const {
    return dir_ + "/replica-" + id + ".tls.key";
  }
  std::string OtherCert() const {
    return dir_ + "/other/replica-1.crt";
  }
  std::string OtherKey() const {
    return dir_ + "/other/replica-1.tls.key";
  }

 private:
#ifdef MIR_OPENSSL_PATH
  static bool Run(const std::string &cmd) {
    int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
    EXPECT_EQ(rc, 0) << cmd;
    return rc == 0;
  }
  static bool MakeCa(const std::string &d) {
    return Run(std::string(MIR_OPENSSL_PATH) +
               " req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
               " -subj /CN=mir-test-ca -keyout " +
               d + "/ca.key -out " + d + "/ca.pem");
  }
  static bool MakeLeaf(const std::string &d, const std::string &id) {
    std::string base = d + "/replica-" + id;
    FILE *f = fopen((base + ".ext").c_str(), "w");
    if (f == nullptr) return false;
    fprintf(f, "subjectAltName=URI:mir:replica:%s\n", id.c_str());
    fclose(f);
    return Run(std::string(MIR_OPENSSL_PATH) +
               " req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + id +
               " -keyout " + base + ".tls.key -out " + base + ".csr") &&
           Run(std::string(MIR_OPENSSL_PATH) + " x509 -req -in " + base + ".csr -CA " + d +
               "/ca.pem -CAkey " + d + "/ca.key -CAcreateserial -days 2 -extfile " + base +
               ".ext -out " + base + ".crt");
  }
#endif
  static void Remove(const std::string &p) {
    DIR *d = opendir(p.c_str());
    if (d == nullptr) return;
    while (struct dirent *e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      std::string child = p + "/" + n;
      struct stat st;
      if (lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        Remove(child);
      } else {
        unlink(child.c_str());
      }
    }
    closedir(d);
    rmdir(p.c_str());
  }
  std::string dir_;
};

// ---- the test application: a passive module that sends numbered messages and checks order ----

// What one node's app saw, per sender. Written on the dispatcher, read by the test (mutex).
struct AppCounters {
  std::mutex mu;
  struct Sender {
    uint64_t received = 0;
    uint64_t next = 0;       // the value expected next
    uint64_t backwards = 0;  // values below the expected one: duplicates or reordering
    uint64_t gaps = 0;       // values above it: losses
  };
  std::map<std::string, Sender> from;
  uint64_t sent = 0;
  uint64_t undecodable = 0;

  Sender Get(const std::string &id) {
    std::lock_guard<std::mutex> g(mu);
    return from[id];
  }
  uint64_t Sent() {
    std::lock_guard<std::mutex> g(mu);
    return sent;
  }
};

struct AppState {
  std::shared_ptr<AppCounters> c;
  std::vector<std::string> targets;
  uint64_t seq = 0;
  int apply_sleep_us = 0;  // > 0: a slow module, to push back on its inbox
};

void AppRecord(AppState *s, const Mir__MessageReceived *mr) {
  ProtobufCMessage *m = nullptr;
  std::lock_guard<std::mutex> g(s->c->mu);
  if (mr->msg == nullptr || mir_message_unpack(mr->msg, 0, &m) != MIR_OK ||
      m->descriptor != &mir__test_uint64__descriptor) {
    s->c->undecodable++;
    if (m != nullptr) protobuf_c_message_free_unpacked(m, nullptr);
    return;
  }
  uint64_t v = reinterpret_cast<Mir__TestUint64 *>(m)->value;
  protobuf_c_message_free_unpacked(m, nullptr);
  AppCounters::Sender &snd = s->c->from[mr->from];
  snd.received++;
  if (v < snd.next) snd.backwards++;
  if (v > snd.next) snd.gaps++;
  if (v >= snd.next) snd.next = v + 1;
}

// TestUint64{n} (injected): send n messages, numbered, each to every target at once.
// MessageReceived: record and check the number against the sender's previous one.
mir_err AppApply(void *state, mir_event_list *in, mir_event_list *out) {
  auto *s = static_cast<AppState *>(state);
  if (s->apply_sleep_us > 0)
    std::this_thread::sleep_for(std::chrono::microseconds(s->apply_sleep_us));
  std::vector<const char *> dests;
  for (const auto &t : s->targets) dests.push_back(t.c_str());
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
      uint64_t n = reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value;
      for (uint64_t i = 0; i < n; i++) {
        Mir__TestUint64 v = MIR__TEST_UINT64__INIT;
        v.value = s->seq++;
        mir_event_list_push(
            out, mir_event_send_message("net", "app", dests.data(), dests.size(), "app", &v.base));
      }
      std::lock_guard<std::mutex> g(s->c->mu);
      s->c->sent += n;
    } else if (mir_event_is(ev, &mir__message_received__descriptor)) {
      AppRecord(s, reinterpret_cast<Mir__MessageReceived *>(ev->payload));
    }
  }
  return MIR_OK;
}

void AppDestroy(void *state) {
  delete static_cast<AppState *>(state);
}

const mir_module_ops kAppOps = {"test-app", MIR_MODULE_PASSIVE, AppApply, nullptr,
                                nullptr,    AppDestroy,         true,     nullptr};

// ---- nodes ----

// One peer's numbers, read from the transport's metric set (mir_net_grpc_metrics).
struct PeerCounts {
  uint64_t msgs_sent, frames_sent, bytes_sent;
  uint64_t msgs_received, frames_received, bytes_received;
  uint64_t msgs_dropped, streams_opened, reconnects, connect_failures, refused, malformed;
  bool connected, incoming;
  uint64_t queued_msgs, queued_bytes;
};

// The transport-wide numbers.
struct NetCounts {
  uint64_t unknown_dest_dropped, oversize_dropped, queue_full_dropped, stream_broken_dropped;
  uint64_t refused;    // every reason
  uint64_t malformed;  // from every peer
  uint64_t unknown_method;
};

uint64_t Read(mir_net_grpc *net, const char *name, const char *value) {
  return static_cast<uint64_t>(mir_metrics_read(mir_net_grpc_metrics(net), name, value));
}

PeerCounts ReadPeer(mir_net_grpc *net, const std::string &peer) {
  const char *p = peer.c_str();
  PeerCounts c;
  c.msgs_sent = Read(net, "mir_net_messages_sent_total", p);
  c.frames_sent = Read(net, "mir_net_frames_sent_total", p);
  c.bytes_sent = Read(net, "mir_net_sent_bytes_total", p);
  c.msgs_received = Read(net, "mir_net_messages_received_total", p);
  c.frames_received = Read(net, "mir_net_frames_received_total", p);
  c.bytes_received = Read(net, "mir_net_received_bytes_total", p);
  c.msgs_dropped = Read(net, "mir_net_peer_messages_dropped_total", p);
  c.streams_opened = Read(net, "mir_net_streams_opened_total", p);
  c.reconnects = Read(net, "mir_net_reconnects_total", p);
  c.connect_failures = Read(net, "mir_net_connect_failures_total", p);
  c.refused = Read(net, "mir_net_peer_streams_refused_total", p);
  c.malformed = Read(net, "mir_net_malformed_frames_total", p);
  c.connected = Read(net, "mir_net_connected", p) == 1;
  c.incoming = Read(net, "mir_net_incoming_connected", p) == 1;
  c.queued_msgs = Read(net, "mir_net_send_queue_depth", p);
  c.queued_bytes = Read(net, "mir_net_send_queue_bytes", p);
  return c;
}

NetCounts ReadNet(mir_net_grpc *net) {
  const char *drops = "mir_net_messages_dropped_total";
  NetCounts c;
  c.unknown_dest_dropped = Read(net, drops, "unknown_destination");
  c.oversize_dropped = Read(net, drops, "oversized");
  c.queue_full_dropped = Read(net, drops, "queue_full");
  c.stream_broken_dropped = Read(net, drops, "stream_broken");
  c.refused = Read(net, "mir_net_streams_refused_total", nullptr);
  c.malformed = Read(net, "mir_net_malformed_frames_total", nullptr);
  c.unknown_method = Read(net, "mir_net_unknown_calls_total", nullptr);
  return c;
}

struct Options {
  bool tls = false;
  const Certs *certs = nullptr;
  std::string cert_id;         // whose certificate this node presents (default: its own id)
  bool other_ca_cert = false;  // present the certificate of the unrelated CA
  size_t queue_max_msgs = 65536;
  size_t max_message_bytes = (size_t)4 << 20;
  int apply_sleep_us = 0;
  size_t pause_threshold = 0;  // node input thresholds (0: the node's defaults)
  size_t resume_threshold = 0;
};

// One node: a transport "net" and the test app "app".
struct TestNode {
  std::string id;
  mir_node *node = nullptr;
  mir_net_grpc *net = nullptr;  // owned by node
  std::shared_ptr<AppCounters> app = std::make_shared<AppCounters>();

  ~TestNode() { Free(); }
  void Free() {
    mir_node_free(node);
    node = nullptr;
    net = nullptr;
  }
  void Send(uint64_t n) {
    mir_event_list l = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&l, mir_event_test_uint64("app", nullptr, n));
    ASSERT_EQ(mir_node_inject(node, &l), MIR_OK);
  }
  PeerCounts Peer(const std::string &peer) { return ReadPeer(net, peer); }
  NetCounts Stats() { return ReadNet(net); }
};

struct Member {
  std::string id;
  int port;
};

void FillSecurity(mir_net_grpc_config *cfg, const std::string &id, const Options &o) {
  if (!o.tls) {
    cfg->insecure = true;
    return;
  }
  static thread_local std::string ca, cert, key;
  std::string who = o.cert_id.empty() ? id : o.cert_id;
  ca = o.certs->Ca();
  cert = o.other_ca_cert ? o.certs->OtherCert() : o.certs->Cert(who);
  key = o.other_ca_cert ? o.certs->OtherKey() : o.certs->Key(who);
  cfg->tls_ca_file = ca.c_str();
  cfg->tls_cert_file = cert.c_str();
  cfg->tls_key_file = key.c_str();
}

// Creates and starts node `id` listening on its port in members; targets are the ids its app
// sends to. Returns the mir_net_grpc_new error (MIR_EIO if the port was taken meanwhile).
mir_err StartNode(TestNode *n, const std::string &id, const std::vector<Member> &members,
                  const std::vector<std::string> &targets, const Options &o) {
  std::vector<std::string> addrs;
  std::vector<mir_net_member> ms;
  int own_port = -1;
  for (const auto &m : members) addrs.push_back(Addr(m.port));
  for (size_t i = 0; i < members.size(); i++) {
    ms.push_back({members[i].id.c_str(), addrs[i].c_str()});
    if (members[i].id == id) own_port = members[i].port;
  }
  std::string listen = Addr(own_port);
  mir_net_grpc_config cfg;
  mir_net_grpc_config_default(&cfg);
  cfg.own_id = id.c_str();
  cfg.listen_addr = listen.c_str();
  cfg.members = ms.data();
  cfg.n_members = ms.size();
  cfg.queue_max_msgs = o.queue_max_msgs;
  cfg.max_message_bytes = o.max_message_bytes;
  cfg.frame_max_bytes = std::min(cfg.frame_max_bytes, o.max_message_bytes);
  cfg.backoff_min_ms = 20;
  cfg.backoff_max_ms = 200;
  FillSecurity(&cfg, id, o);
  n->id = id;
  mir_err err = mir_net_grpc_new(&cfg, &n->net);
  if (err != MIR_OK) return err;
  mir_node_config ncfg;
  mir_node_config_default(&ncfg);
  if (o.pause_threshold > 0) {
    ncfg.pause_threshold = o.pause_threshold;
    ncfg.resume_threshold = o.resume_threshold;
  }
  EXPECT_EQ(mir_node_new(id.c_str(), &ncfg, &n->node), MIR_OK);
  EXPECT_EQ(mir_node_add_module(n->node, "net", &mir_net_grpc_ops, n->net), MIR_OK);
  auto *app = new AppState{n->app, targets, 0, o.apply_sleep_us};
  EXPECT_EQ(mir_node_add_module(n->node, "app", &kAppOps, app), MIR_OK);
  EXPECT_EQ(mir_node_start(n->node), MIR_OK);
  return MIR_OK;
}

// Starts nodes for ids on fresh ports; each app sends to all the others. Retries with new ports
// if one was taken between choosing and binding (bounded).
bool StartCluster(const std::vector<std::string> &ids, const Options &o,
                  std::vector<std::unique_ptr<TestNode>> *nodes, std::vector<Member> *members) {
  for (int attempt = 0; attempt < 5; attempt++) {
    members->clear();
    nodes->clear();
    for (const auto &id : ids) members->push_back({id, FreePort()});
    bool ok = true;
    for (const auto &id : ids) {
      std::vector<std::string> targets;
      for (const auto &t : ids) {
        if (t != id) targets.push_back(t);
      }
      nodes->push_back(std::make_unique<TestNode>());
      mir_err err = StartNode(nodes->back().get(), id, *members, targets, o);
      if (err != MIR_OK) {
        EXPECT_EQ(err, MIR_EIO) << mir_error_detail();
        ok = false;
        break;
      }
    }
    if (ok) return true;
  }
  return false;
}

// ---- raw gRPC calls, as a misbehaving peer would make them ----

struct RawResult {
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  std::string details;
};

// One plaintext client stream to `method` on the server at port, claiming node_id (none if
// empty), driven step by step from the test thread: what a misbehaving peer would do. Every wait
// is bounded by kWaitMs.
class RawStream {
 public:
  RawStream(int port, const std::string &method, const std::string &node_id) {
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    ch_ = grpc_channel_create(Addr(port).c_str(), creds, nullptr);
    grpc_channel_credentials_release(creds);
    cq_ = grpc_completion_queue_create_for_next(nullptr);
    grpc_slice m = grpc_slice_from_copied_string(method.c_str());
    call_ = grpc_channel_create_call(ch_, nullptr, GRPC_PROPAGATE_DEFAULTS, cq_, m, nullptr,
                                     Deadline(), nullptr);
    grpc_slice_unref(m);
    md_.key = grpc_slice_from_static_string(MIR_NET_ID_METADATA);
    md_.value = grpc_slice_from_copied_string(node_id.c_str());
    grpc_metadata_array_init(&imd_);
    grpc_metadata_array_init(&trailing_);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = node_id.empty() ? 0 : 1;
    ops[0].data.send_initial_metadata.metadata = &md_;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &imd_;
    Start(ops, 2, &tag_start_);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &trailing_;
    ops[0].data.recv_status_on_client.status = &result_.status;
    ops[0].data.recv_status_on_client.status_details = &details_;
    ops[0].data.recv_status_on_client.error_string = &err_str_;
    Start(ops, 1, &tag_status_);
  }
  ~RawStream() {
    grpc_call_cancel(call_, nullptr);
    bool ok;
    while (pending_ > 0 && Next(&ok) != nullptr) {
    }
    grpc_slice_unref(details_);
    grpc_slice_unref(md_.value);
    if (err_str_ != nullptr) gpr_free(const_cast<char *>(err_str_));
    grpc_metadata_array_destroy(&imd_);
    grpc_metadata_array_destroy(&trailing_);
    grpc_call_unref(call_);
    grpc_channel_destroy(ch_);
    grpc_completion_queue_shutdown(cq_);
    while (grpc_completion_queue_next(cq_, gpr_inf_future(GPR_CLOCK_REALTIME), nullptr).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq_);
    grpc_shutdown();
  }
  // Waits for the server's initial metadata; true if it accepted the stream (named its id).
  bool Accepted() {
    if (!Wait(&tag_start_)) return false;
    for (size_t i = 0; i < imd_.count; i++) {
      if (grpc_slice_str_cmp(imd_.metadata[i].key, MIR_NET_ID_METADATA) == 0) return true;
    }
    return false;
  }
  // Sends one message and waits for its completion; false if the stream failed.
  bool Send(const std::string &bytes) {
    if (status_done_) return false;
    grpc_slice sl = grpc_slice_from_copied_buffer(bytes.data(), bytes.size());
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    Start(&op, 1, &tag_send_);
    bool ok = Wait(&tag_send_) && last_ok_;
    grpc_byte_buffer_destroy(bb);
    return ok;
  }
  // Half-closes (unless the call already ended) and returns the final status.
  RawResult Finish() {
    if (!status_done_) {
      grpc_op op;
      memset(&op, 0, sizeof op);
      op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
      Start(&op, 1, &tag_send_);
      Wait(&tag_send_);
    }
    EXPECT_TRUE(Wait(&tag_status_)) << "no status within the bound";
    char *d = grpc_slice_to_c_string(details_);
    result_.details = d;
    gpr_free(d);
    return result_;
  }

 private:
  static gpr_timespec Deadline() {
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(kWaitMs, GPR_TIMESPAN));
  }
  void Start(const grpc_op *ops, size_t n, int *tag) {
    ASSERT_EQ(grpc_call_start_batch(call_, ops, n, tag, nullptr), GRPC_CALL_OK);
    pending_++;
    done_[tag] = false;
  }
  void *Next(bool *ok) {
    grpc_event ev = grpc_completion_queue_next(cq_, Deadline(), nullptr);
    if (ev.type != GRPC_OP_COMPLETE) return nullptr;
    pending_--;
    *ok = ev.success != 0;
    done_[ev.tag] = true;
    if (ev.tag == &tag_status_) status_done_ = true;
    return ev.tag;
  }
  // Runs events until tag completed; false on timeout.
  bool Wait(int *tag) {
    while (!done_[tag]) {
      void *t = Next(&last_ok_);
      if (t == nullptr) return false;
      if (t != tag) last_ok_ = true;
    }
    return true;
  }

  grpc_channel *ch_;
  grpc_completion_queue *cq_;
  grpc_call *call_;
  grpc_metadata md_;
  grpc_metadata_array imd_, trailing_;
  grpc_slice details_ = grpc_empty_slice();
  const char *err_str_ = nullptr;
  RawResult result_;
  int tag_start_ = 0, tag_status_ = 0, tag_send_ = 0;
  std::map<void *, bool> done_;
  int pending_ = 0;
  bool status_done_ = false;
  bool last_ok_ = false;
};

// Sends the frames one by one on a new stream (stopping at the first failure), half-closes and
// returns the final status.
RawResult RawCall(int port, const std::string &method, const std::string &node_id,
                  const std::vector<std::string> &frames) {
  RawStream st(port, method, node_id);
  for (const auto &f : frames) {
    if (!st.Send(f)) break;
  }
  return st.Finish();
}

// The encoding of a Frame holding the given packed messages.
std::string EncodeFrame(const std::vector<Mir__PackedMessage *> &msgs) {
  Mir__Net__Frame f = MIR__NET__FRAME__INIT;
  f.n_msgs = msgs.size();
  f.msgs = const_cast<Mir__PackedMessage **>(msgs.data());
  std::string out(mir__net__frame__get_packed_size(&f), '\0');
  mir__net__frame__pack(&f, reinterpret_cast<uint8_t *>(&out[0]));
  return out;
}

// A frame with TestUint64{value} for module dest.
std::string ValidFrame(uint64_t value, const char *dest = "app") {
  Mir__TestUint64 v = MIR__TEST_UINT64__INIT;
  v.value = value;
  Mir__PackedMessage *pm = mir_message_pack(dest, &v.base);
  std::string f = EncodeFrame({pm});
  protobuf_c_message_free_unpacked(&pm->base, nullptr);
  return f;
}

// The encoding of a PackedMessage with TestUint64{value} for "app".
std::string PackedBytes(uint64_t value) {
  Mir__TestUint64 v = MIR__TEST_UINT64__INIT;
  v.value = value;
  Mir__PackedMessage *pm = mir_message_pack("app", &v.base);
  std::string out(mir__packed_message__get_packed_size(pm), '\0');
  mir__packed_message__pack(pm, reinterpret_cast<uint8_t *>(&out[0]));
  protobuf_c_message_free_unpacked(&pm->base, nullptr);
  return out;
}

// A frame whose one message is the given bytes (short: one length byte).
std::string FrameOfRaw(const std::string &msg) {
  return std::string("\x0a", 1) + static_cast<char>(msg.size()) + msg;
}

// Starts one insecure node "0" whose membership also has "1" (at an address nobody serves).
void StartLoneNode(TestNode *n, const Options &o = Options()) {
  std::vector<Member> members = {{"0", 0}, {"1", FreePort()}};
  for (int attempt = 0; attempt < 5; attempt++) {
    members[0].port = FreePort();
    if (StartNode(n, "0", members, {"0"}, o) == MIR_OK) return;
  }
  FAIL() << "no free port";
}

// ---- tests ----

void ExchangeAndCheck(const Options &o) {
  // 4 nodes, each sends kPerNode numbered messages to the 3 others: 12 * 8334 = 100,008 deliveries.
  const std::vector<std::string> ids = {"0", "1", "2", "3"};
  const uint64_t kPerNode = 8334, kChunk = 1000;
  std::vector<std::unique_ptr<TestNode>> nodes;
  std::vector<Member> members;
  ASSERT_TRUE(StartCluster(ids, o, &nodes, &members));
  auto min_received = [&]() {
    uint64_t lo = UINT64_MAX;
    for (auto &n : nodes) {
      for (const auto &from : ids) {
        if (from != n->id) lo = std::min(lo, n->app->Get(from).received);
      }
    }
    return lo;
  };
  // Paced in chunks so the per-peer queues never reach their bound: a chunk is injected only when
  // every pair has received all but the last two chunks.
  for (uint64_t sent = 0; sent < kPerNode;) {
    uint64_t k = std::min(kChunk, kPerNode - sent);
    for (auto &n : nodes) n->Send(k);
    sent += k;
    uint64_t need = sent > 2 * kChunk ? sent - 2 * kChunk : 0;
    ASSERT_TRUE(WaitUntil([&] { return min_received() >= need; })) << "stalled at " << sent;
  }
  ASSERT_TRUE(WaitUntil([&] { return min_received() >= kPerNode; }));
  uint64_t total = 0;
  for (auto &n : nodes) {
    for (const auto &from : ids) {
      if (from == n->id) continue;
      AppCounters::Sender s = n->app->Get(from);
      EXPECT_EQ(s.received, kPerNode) << from << " -> " << n->id;
      EXPECT_EQ(s.backwards, 0u) << from << " -> " << n->id;
      EXPECT_EQ(s.gaps, 0u) << from << " -> " << n->id;
      total += s.received;
      PeerCounts ps = n->Peer(from);
      EXPECT_EQ(ps.msgs_received, kPerNode);
      EXPECT_EQ(ps.msgs_dropped, 0u);
      EXPECT_GE(ps.streams_opened, 1u);
      EXPECT_LE(ps.frames_sent, ps.msgs_sent);
    }
    EXPECT_EQ(n->Stats().malformed, 0u);
    EXPECT_EQ(n->Stats().refused, 0u);
  }
  EXPECT_EQ(total, 12 * kPerNode);
  EXPECT_GE(total, 100000u);
}

// Four nodes exchange 100,008 messages over plaintext loopback streams: every message arrives
// exactly once and, per ordered pair, in the order it was sent.
TEST(GrpcTransport, FourNodesExchangeInOrderInsecure) {
  ExchangeAndCheck(Options());
}

// The same exchange over mutually authenticated TLS.
TEST(GrpcTransport, FourNodesExchangeInOrderTls) {
  Certs certs;
  ASSERT_TRUE(certs.Make());
  Options o;
  o.tls = true;
  o.certs = &certs;
  ExchangeAndCheck(o);
}

// Messages to the node's own id are delivered with from = own id, and nothing goes to the network.
TEST(GrpcTransport, SelfMessagesBypassTheNetwork) {
  TestNode n;
  StartLoneNode(&n);
  ASSERT_NE(n.node, nullptr);
  n.Send(100);
  ASSERT_TRUE(WaitUntil([&] { return n.app->Get("0").received >= 100; }));
  AppCounters::Sender s = n.app->Get("0");
  EXPECT_EQ(s.received, 100u);
  EXPECT_EQ(s.backwards + s.gaps, 0u);
  // Counted once the push into the inbox returned, which may be after the app saw the messages.
  ASSERT_TRUE(WaitUntil([&] { return n.Peer("0").msgs_received >= 100; }));
  PeerCounts self = n.Peer("0");
  EXPECT_EQ(self.msgs_received, 100u);
  EXPECT_EQ(self.msgs_sent, 100u);
  EXPECT_EQ(self.bytes_sent, self.bytes_received);
  EXPECT_GT(self.bytes_received, 0u);
  EXPECT_EQ(self.frames_sent + self.queued_msgs, 0u);
  PeerCounts other = n.Peer("1");
  EXPECT_EQ(other.frames_sent + other.msgs_sent + other.queued_msgs, 0u);
}

// A destination outside the membership is counted and dropped; the node keeps running.
TEST(GrpcTransport, UnknownDestinationIsCountedAndDropped) {
  TestNode n;
  std::vector<Member> members = {{"0", FreePort()}};
  ASSERT_EQ(StartNode(&n, "0", members, {"0", "nobody", "x"}, Options()), MIR_OK);
  n.Send(5);
  ASSERT_TRUE(WaitUntil([&] { return n.Stats().unknown_dest_dropped >= 10; }));
  EXPECT_EQ(n.Stats().unknown_dest_dropped, 10u);
  ASSERT_TRUE(WaitUntil([&] { return n.app->Get("0").received >= 5; }));
  EXPECT_EQ(mir_node_wait(n.node, 1), MIR_ETIMEDOUT);  // still running
}

// With the peer unreachable, the send queue holds queue_max_msgs messages and drops the newer
// ones, counting them.
TEST(GrpcTransport, FullQueueDropsNewMessages) {
  TestNode n;
  Options o;
  o.queue_max_msgs = 10;
  std::vector<Member> members = {{"0", FreePort()}, {"1", FreePort()}};
  ASSERT_EQ(StartNode(&n, "0", members, {"1"}, o), MIR_OK);
  n.Send(25);
  ASSERT_TRUE(WaitUntil([&] { return n.Peer("1").msgs_dropped >= 15; }));
  PeerCounts st = n.Peer("1");
  EXPECT_EQ(st.queued_msgs, 10u);
  EXPECT_EQ(st.msgs_dropped, 15u);
  EXPECT_EQ(n.Stats().queue_full_dropped, 15u);
  EXPECT_GT(st.queued_bytes, 0u);
  EXPECT_EQ(st.msgs_sent, 0u);
  EXPECT_FALSE(st.connected);
}

// A message larger than max_message_bytes can never be framed: it is dropped and counted.
TEST(GrpcTransport, OversizeMessageIsDroppedAtTheSender) {
  TestNode n;
  Options o;
  o.max_message_bytes = 1024;
  std::vector<Member> members = {{"0", FreePort()}, {"1", FreePort()}};
  ASSERT_EQ(StartNode(&n, "0", members, {"1"}, o), MIR_OK);
  std::string big(2000, 'x');
  std::vector<const char *> dests = {"1"};
  Mir__TestString s = MIR__TEST_STRING__INIT;
  s.value = &big[0];
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, mir_event_send_message("net", "app", dests.data(), 1, "app", &s.base));
  ASSERT_EQ(mir_node_inject(n.node, &l), MIR_OK);
  ASSERT_TRUE(WaitUntil([&] { return n.Stats().oversize_dropped >= 1; }));
  EXPECT_EQ(n.Stats().oversize_dropped, 1u);
  EXPECT_EQ(n.Peer("1").msgs_dropped, 1u);
  EXPECT_EQ(n.Peer("1").queued_msgs, 0u);
}

// A peer that is stopped and freed, then started again on the same address, is reconnected to in
// both directions; what arrives after the restart is in order and never duplicated.
TEST(GrpcTransport, RestartedPeerIsReconnected) {
  std::vector<std::unique_ptr<TestNode>> nodes;
  std::vector<Member> members;
  ASSERT_TRUE(StartCluster({"0", "1"}, Options(), &nodes, &members));
  TestNode &a = *nodes[0];
  a.Send(100);
  ASSERT_TRUE(WaitUntil([&] { return nodes[1]->app->Get("0").received >= 100; }));
  nodes[1]->Free();
  a.Send(50);  // queued or lost while the peer is away; never an error
  auto b = std::make_unique<TestNode>();
  mir_err err = MIR_EIO;
  for (int i = 0; i < 100 && err != MIR_OK; i++) {  // the port may linger briefly
    err = StartNode(b.get(), "1", members, {"0"}, Options());
    if (err != MIR_OK) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(err, MIR_OK) << mir_error_detail();
  // Keep sending until the restarted node hears from a (bounded).
  ASSERT_TRUE(WaitUntil([&] {
    if (b->app->Get("0").received > 0) return true;
    a.Send(5);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return false;
  }));
  b->Send(20);
  ASSERT_TRUE(WaitUntil([&] { return a.app->Get("1").received >= 20; }));
  AppCounters::Sender got = b->app->Get("0");
  EXPECT_EQ(got.backwards, 0u);
  PeerCounts st = a.Peer("1");
  EXPECT_GE(st.reconnects, 1u);
  EXPECT_GE(st.streams_opened, 2u);
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(a.app->Get("1").backwards, 0u);
}

// After one node sends N messages to another, the per-peer counters of both transports say N
// messages, the sender's frame and byte counts equal the receiver's, the send queue is empty, and
// the same numbers are on the node's metric tree under the module id "net" (as /metrics shows
// them), together with the named lock of the send queues.
TEST(GrpcTransport, MetricsCountMessagesFramesAndBytes) {
  std::vector<std::unique_ptr<TestNode>> nodes;
  std::vector<Member> members;
  ASSERT_TRUE(StartCluster({"0", "1"}, Options(), &nodes, &members));
  TestNode &a = *nodes[0], &b = *nodes[1];
  ASSERT_TRUE(WaitUntil([&] { return a.Peer("1").connected && b.Peer("0").incoming; }));
  const uint64_t kCount = 5000;
  a.Send(kCount);
  ASSERT_TRUE(WaitUntil([&] { return b.app->Get("0").received >= kCount; }));
  // The transport counts after the push into the inbox (the app may see messages first), and the
  // sender counts at the send completion, which may come after the receiver delivered the frame.
  ASSERT_TRUE(WaitUntil([&] {
    PeerCounts o = a.Peer("1"), i = b.Peer("0");
    return o.msgs_sent >= kCount && i.msgs_received >= kCount &&
           o.frames_sent == i.frames_received && o.bytes_sent == i.bytes_received;
  }));
  PeerCounts out = a.Peer("1"), in = b.Peer("0");
  EXPECT_EQ(out.msgs_sent, kCount);
  EXPECT_EQ(in.msgs_received, kCount);
  EXPECT_EQ(out.frames_sent, in.frames_received);
  EXPECT_EQ(out.bytes_sent, in.bytes_received);
  EXPECT_GE(out.frames_sent, 1u);
  EXPECT_LE(out.frames_sent, kCount);
  // Each message costs at least its type name, destination and value on the wire.
  EXPECT_GE(out.bytes_sent, kCount * 10);
  EXPECT_EQ(out.msgs_dropped, 0u);
  EXPECT_EQ(out.queued_msgs, 0u);
  EXPECT_EQ(out.queued_bytes, 0u);
  EXPECT_EQ(out.streams_opened, 1u);
  EXPECT_EQ(out.reconnects, 0u);
  EXPECT_EQ(a.Peer("0").msgs_sent, 0u);  // nothing went to self
  EXPECT_EQ(b.Peer("1").msgs_received, 0u);

  const mir_metrics *root = mir_node_metrics(b.node);
  EXPECT_EQ(mir_metrics_read_child(root, "net", "mir_net_messages_received_total", "0"),
            static_cast<int64_t>(kCount));
  mir_metrics_snapshot snap;
  mir_metrics_snapshot_take(mir_node_metrics(a.node), &snap);
  const mir_metric_sample *sent =
      mir_metrics_snapshot_find(&snap, "mir_net_messages_sent_total", "net", "1");
  ASSERT_NE(sent, nullptr);
  EXPECT_STREQ(sent->label, "peer");
  EXPECT_EQ(sent->raw, static_cast<int64_t>(kCount));
  const mir_metric_sample *up = mir_metrics_snapshot_find(&snap, "mir_net_connected", "net", "1");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->kind, MIR_METRIC_GAUGE);
  EXPECT_EQ(up->raw, 1);
  EXPECT_NE(
      mir_metrics_snapshot_find(&snap, "mir_lock_contended_total", "net", "net_grpc_send_queue"),
      nullptr);
  mir_metrics_snapshot_fini(&snap);

  // When the peer goes away, the gauges say so.
  b.Free();
  ASSERT_TRUE(WaitUntil([&] { return !a.Peer("1").connected && !a.Peer("1").incoming; }));
}

// When the receiving node pauses its input, the transport stops reading and the sender waits
// (HTTP/2 flow control): every message still arrives, in order, without a drop.
TEST(GrpcTransport, BackpressurePausesWithoutLoss) {
  Options o;
  o.apply_sleep_us = 300;
  o.pause_threshold = 64;
  o.resume_threshold = 32;
  std::vector<std::unique_ptr<TestNode>> nodes;
  std::vector<Member> members;
  ASSERT_TRUE(StartCluster({"0", "1"}, o, &nodes, &members));
  const uint64_t kCount = 20000;
  nodes[0]->Send(kCount);
  ASSERT_TRUE(WaitUntil([&] { return nodes[1]->app->Get("0").received >= kCount; }));
  AppCounters::Sender s = nodes[1]->app->Get("0");
  EXPECT_EQ(s.received, kCount);
  EXPECT_EQ(s.backwards + s.gaps, 0u);
  EXPECT_EQ(nodes[0]->Peer("1").msgs_dropped, 0u);
  EXPECT_GE(mir_metrics_read(mir_node_metrics(nodes[1]->node), "mir_node_backpressure_pauses_total",
                             nullptr),
            1);
}

// A replica presenting a valid certificate of another replica (claiming 1 with 2's certificate)
// is refused and counted by the receiver; nothing it sends is delivered. The other way round, a
// replica dialling 1 refuses the server that presents 2's certificate.
TEST(GrpcTransport, CertificateOfAnotherIdIsRefused) {
  Certs certs;
  ASSERT_TRUE(certs.Make());
  Options o;
  o.tls = true;
  o.certs = &certs;
  std::vector<Member> members = {{"0", FreePort()}, {"1", FreePort()}, {"2", FreePort()}};
  TestNode good, rogue;
  ASSERT_EQ(StartNode(&good, "0", members, {}, o), MIR_OK);
  Options ro = o;
  ro.cert_id = "2";
  ASSERT_EQ(StartNode(&rogue, "1", members, {"0"}, ro), MIR_OK);
  rogue.Send(10);
  ASSERT_TRUE(WaitUntil([&] { return good.Peer("1").refused >= 2; }));
  EXPECT_GE(good.Stats().refused, 2u);
  EXPECT_EQ(good.Peer("1").msgs_received, 0u);
  EXPECT_EQ(good.app->Get("1").received + good.app->Get("2").received, 0u);
  PeerCounts r = rogue.Peer("0");
  EXPECT_EQ(r.streams_opened, 0u);
  EXPECT_GE(r.connect_failures, 1u);
  EXPECT_EQ(r.msgs_sent, 0u);
  ASSERT_TRUE(WaitUntil([&] { return good.Peer("1").connect_failures >= 1; }));
  EXPECT_EQ(good.Peer("1").streams_opened, 0u);
}

// A replica that is not in the receiver's membership (valid certificate for id 9) is refused.
TEST(GrpcTransport, NonMemberIsRefused) {
  Certs certs;
  ASSERT_TRUE(certs.Make());
  Options o;
  o.tls = true;
  o.certs = &certs;
  std::vector<Member> members = {{"0", FreePort()}, {"1", FreePort()}};
  TestNode good, rogue;
  ASSERT_EQ(StartNode(&good, "0", members, {}, o), MIR_OK);
  std::vector<Member> rogue_view = {members[0], {"9", FreePort()}};
  ASSERT_EQ(StartNode(&rogue, "9", rogue_view, {"0"}, o), MIR_OK);
  rogue.Send(10);
  ASSERT_TRUE(WaitUntil([&] { return good.Stats().refused >= 2; }));
  EXPECT_EQ(good.Peer("1").refused, 0u);  // no member was claimed
  EXPECT_EQ(good.Peer("1").msgs_received, 0u);
  EXPECT_EQ(rogue.Peer("0").streams_opened, 0u);
}

// A certificate from another CA fails the TLS handshake: the connecting side counts the failed
// attempts and the receiver never delivers anything from it.
TEST(GrpcTransport, CertificateFromAnotherCaIsRefused) {
  Certs certs;
  ASSERT_TRUE(certs.Make());
  Options o;
  o.tls = true;
  o.certs = &certs;
  std::vector<Member> members = {{"0", FreePort()}, {"1", FreePort()}};
  TestNode good, rogue;
  ASSERT_EQ(StartNode(&good, "0", members, {}, o), MIR_OK);
  Options ro = o;
  ro.other_ca_cert = true;  // trusts the cluster CA, presents a certificate of the other one
  ASSERT_EQ(StartNode(&rogue, "1", members, {"0"}, ro), MIR_OK);
  rogue.Send(10);
  ASSERT_TRUE(WaitUntil([&] { return rogue.Peer("0").connect_failures >= 2; }));
  EXPECT_EQ(rogue.Peer("0").streams_opened, 0u);
  EXPECT_EQ(rogue.Peer("0").msgs_sent, 0u);
  EXPECT_EQ(good.Peer("1").msgs_received, 0u);
  EXPECT_FALSE(good.Peer("1").incoming);
  EXPECT_EQ(good.app->Get("1").received, 0u);
}

// Malformed frames from an accepted peer are counted, their stream is cancelled with
// INVALID_ARGUMENT, nothing of them is delivered, and the transport keeps working.
TEST(GrpcTransport, MalformedFramesAreRejected) {
  TestNode n;
  StartLoneNode(&n);
  ASSERT_NE(n.node, nullptr);
  int port = mir_net_grpc_port(n.net);
  Mir__PackedMessage bad_dest = MIR__PACKED_MESSAGE__INIT;
  bad_dest.dest_module = const_cast<char *>("a//b");
  bad_dest.type = const_cast<char *>("mir.TestUint64");
  Mir__PackedMessage no_type = MIR__PACKED_MESSAGE__INIT;
  no_type.dest_module = const_cast<char *>("app");
  std::vector<std::string> bad = {
      std::string("\xff\xff\xff garbage", 11),                  // not protobuf at all
      std::string(),                                            // a frame without messages
      EncodeFrame({&bad_dest}),                                 // invalid destination module id
      EncodeFrame({&no_type}),                                  // no type name
      std::string("\x0a\x7f\x0a", 3),                           // length past the end
      std::string("\x12\x01\x00", 3),                           // a field the frame does not have
      FrameOfRaw(PackedBytes(1) + std::string("\x40\x01", 2)),  // unknown field in a message
  };
  for (size_t i = 0; i < bad.size(); i++) {
    RawResult r = RawCall(port, MIR_NET_STREAM_METHOD, "1", {bad[i]});
    EXPECT_EQ(r.status, GRPC_STATUS_INVALID_ARGUMENT) << "case " << i << ": " << r.details;
  }
  EXPECT_EQ(n.Stats().malformed, bad.size());
  EXPECT_EQ(n.Peer("1").malformed, bad.size());
  EXPECT_EQ(n.app->Get("1").received, 0u);
  // A well-formed frame on a new stream is delivered, from the id the (insecure) caller claimed.
  RawResult ok = RawCall(port, MIR_NET_STREAM_METHOD, "1", {ValidFrame(0), ValidFrame(1)});
  EXPECT_EQ(ok.status, GRPC_STATUS_OK) << ok.details;
  ASSERT_TRUE(WaitUntil([&] { return n.app->Get("1").received >= 2; }));
  EXPECT_EQ(n.app->Get("1").gaps + n.app->Get("1").backwards, 0u);
}

// A second stream from the same sender supersedes the first: the old one is cancelled (ABORTED)
// and what the new one carries is delivered.
TEST(GrpcTransport, NewStreamSupersedesTheOld) {
  TestNode n;
  StartLoneNode(&n);
  ASSERT_NE(n.node, nullptr);
  int port = mir_net_grpc_port(n.net);
  RawStream first(port, MIR_NET_STREAM_METHOD, "1");
  ASSERT_TRUE(first.Accepted());
  ASSERT_TRUE(first.Send(ValidFrame(0)));
  ASSERT_TRUE(WaitUntil([&] { return n.app->Get("1").received >= 1; }));
  RawStream second(port, MIR_NET_STREAM_METHOD, "1");
  ASSERT_TRUE(second.Accepted());
  RawResult old = first.Finish();
  EXPECT_EQ(old.status, GRPC_STATUS_ABORTED) << old.details;
  ASSERT_TRUE(second.Send(ValidFrame(1)));
  ASSERT_TRUE(WaitUntil([&] { return n.app->Get("1").received >= 2; }));
  EXPECT_EQ(second.Finish().status, GRPC_STATUS_OK);
  EXPECT_TRUE(WaitUntil([&] { return !n.Peer("1").incoming; }));
  AppCounters::Sender s = n.app->Get("1");
  EXPECT_EQ(s.received, 2u);
  EXPECT_EQ(s.backwards + s.gaps, 0u);
}

// A node stopped while its transport is blocked pushing into a paused inbox, with a busy stream
// from a sender, stops cleanly (no hang, nothing leaked), and so does the sender afterwards.
TEST(GrpcTransport, StopWhileBackpressured) {
  Options o;
  o.apply_sleep_us = 2000;
  o.pause_threshold = 64;
  o.resume_threshold = 32;
  std::vector<std::unique_ptr<TestNode>> nodes;
  std::vector<Member> members;
  ASSERT_TRUE(StartCluster({"0", "1"}, o, &nodes, &members));
  nodes[0]->Send(50000);
  ASSERT_TRUE(WaitUntil([&] { return nodes[1]->app->Get("0").received >= 100; }));
  EXPECT_GE(mir_metrics_read(mir_node_metrics(nodes[1]->node), "mir_node_backpressure_pauses_total",
                             nullptr),
            1);
  EXPECT_LT(nodes[1]->app->Get("0").received, 50000u);
  nodes[1]->Free();
  ASSERT_TRUE(WaitUntil([&] { return !nodes[0]->Peer("1").connected; }));
  nodes[0]->Free();
}

// A frame above max_message_bytes is refused by gRPC before it is decoded; the transport keeps
// working.
TEST(GrpcTransport, OversizeFrameIsRejected) {
  TestNode n;
  Options o;
  o.max_message_bytes = 64 * 1024;
  StartLoneNode(&n, o);
  ASSERT_NE(n.node, nullptr);
  int port = mir_net_grpc_port(n.net);
  std::string huge(128 * 1024, '\x0a');
  RawResult r = RawCall(port, MIR_NET_STREAM_METHOD, "1", {huge});
  EXPECT_EQ(r.status, GRPC_STATUS_RESOURCE_EXHAUSTED) << r.details;
  EXPECT_EQ(n.app->Get("1").received, 0u);
  RawResult ok = RawCall(port, MIR_NET_STREAM_METHOD, "1", {ValidFrame(0)});
  EXPECT_EQ(ok.status, GRPC_STATUS_OK) << ok.details;
  ASSERT_TRUE(WaitUntil([&] { return n.app->Get("1").received >= 1; }));
}

// Even in insecure mode a stream must claim a member's id other than the receiver's own; other
// methods are answered UNIMPLEMENTED at once.
TEST(GrpcTransport, BadClaimsAndMethodsAreRefused) {
  TestNode n;
  StartLoneNode(&n);
  ASSERT_NE(n.node, nullptr);
  int port = mir_net_grpc_port(n.net);
  EXPECT_EQ(RawCall(port, MIR_NET_STREAM_METHOD, "", {ValidFrame(0)}).status,
            GRPC_STATUS_UNAUTHENTICATED);
  EXPECT_EQ(RawCall(port, MIR_NET_STREAM_METHOD, "bad id!", {ValidFrame(0)}).status,
            GRPC_STATUS_UNAUTHENTICATED);
  EXPECT_EQ(RawCall(port, MIR_NET_STREAM_METHOD, "7", {ValidFrame(0)}).status,
            GRPC_STATUS_PERMISSION_DENIED);
  EXPECT_EQ(RawCall(port, MIR_NET_STREAM_METHOD, "0", {ValidFrame(0)}).status,
            GRPC_STATUS_PERMISSION_DENIED);
  EXPECT_EQ(n.Stats().refused, 4u);
  for (const char *reason : {"no_id", "bad_id", "not_member", "own_id"}) {
    EXPECT_EQ(Read(n.net, "mir_net_streams_refused_total", reason), 1u) << reason;
  }
  EXPECT_EQ(RawCall(port, "/mir.net.Transport/Other", "1", {}).status, GRPC_STATUS_UNIMPLEMENTED);
  EXPECT_EQ(n.Stats().unknown_method, 1u);
  EXPECT_EQ(n.app->Get("0").received + n.app->Get("7").received, 0u);
}

// Invalid configurations are refused with MIR_EINVAL (TLS is required unless insecure is asked
// for), a taken port with MIR_EIO, and a transport that never started frees cleanly.
TEST(GrpcTransport, ConfigErrors) {
  mir_net_member ms[] = {{"0", "127.0.0.1:1"}, {"1", "127.0.0.1:2"}};
  mir_net_grpc_config base;
  mir_net_grpc_config_default(&base);
  base.own_id = "0";
  base.listen_addr = "127.0.0.1:0";
  base.members = ms;
  base.n_members = 2;
  mir_net_grpc *net = nullptr;
  EXPECT_EQ(mir_net_grpc_new(&base, &net), MIR_EINVAL);  // neither TLS files nor insecure
  mir_net_grpc_config c = base;
  c.insecure = true;
  c.tls_ca_file = "ca.pem";
  EXPECT_EQ(mir_net_grpc_new(&c, &net), MIR_EINVAL);  // both
  c = base;
  c.insecure = true;
  c.own_id = "5";
  EXPECT_EQ(mir_net_grpc_new(&c, &net), MIR_EINVAL);  // not a member
  c = base;
  c.insecure = true;
  c.frame_max_bytes = c.max_message_bytes + 1;
  EXPECT_EQ(mir_net_grpc_new(&c, &net), MIR_EINVAL);
  c = base;
  c.insecure = true;
  c.backoff_max_ms = 1;
  EXPECT_EQ(mir_net_grpc_new(&c, &net), MIR_EINVAL);
  mir_net_member dup[] = {{"0", "127.0.0.1:1"}, {"0", "127.0.0.1:2"}};
  c = base;
  c.insecure = true;
  c.members = dup;
  EXPECT_EQ(mir_net_grpc_new(&c, &net), MIR_EINVAL);
  c = base;
  c.tls_ca_file = "/nonexistent/ca.pem";
  c.tls_cert_file = "/nonexistent/c.crt";
  c.tls_key_file = "/nonexistent/c.key";
  EXPECT_EQ(mir_net_grpc_new(&c, &net), MIR_EIO);
  c = base;
  c.insecure = true;
  ASSERT_EQ(mir_net_grpc_new(&c, &net), MIR_OK);
  int port = mir_net_grpc_port(net);
  EXPECT_GT(port, 0);
  std::string taken = Addr(port);
  mir_net_grpc_config c2 = c;
  c2.listen_addr = taken.c_str();
  mir_net_grpc *net2 = nullptr;
  EXPECT_EQ(mir_net_grpc_new(&c2, &net2), MIR_EIO);
  mir_net_grpc_free(net);  // bound, never started
}

// ---- the frame codec on its own ----

std::vector<miri_msg *> Msgs(size_t n, size_t payload) {
  std::vector<miri_msg *> out;
  std::string data(payload, 'p');
  for (size_t i = 0; i < n; i++) {
    Mir__TestString s = MIR__TEST_STRING__INIT;
    s.value = &data[0];
    Mir__PackedMessage *pm = mir_message_pack("app/x", &s.base);
    out.push_back(miri_msg_encode(pm));
    protobuf_c_message_free_unpacked(&pm->base, nullptr);
  }
  return out;
}

// Frames respect the message and byte bounds (one message always fits), and decode back to the
// same messages in the same order.
TEST(FrameCodec, PlanWriteDecodeRoundTrip) {
  miri_queue q;
  miri_queue_init(&q, 64, 1 << 20);
  for (miri_msg *m : Msgs(50, 300)) ASSERT_TRUE(miri_queue_push(&q, m));
  size_t bytes = 0;
  size_t n = miri_frame_plan(&q, 16, 1 << 20, &bytes);
  EXPECT_EQ(n, 16u);
  size_t entry = miri_frame_entry_size(miri_queue_peek(&q, 0)->len);
  n = miri_frame_plan(&q, 1000, 1000, &bytes);
  EXPECT_EQ(n, 1000 / entry);
  EXPECT_EQ(bytes, n * entry);
  n = miri_frame_plan(&q, 1000, 10, &bytes);  // too small for any: still one
  EXPECT_EQ(n, 1u);
  n = miri_frame_plan(&q, 20, 1 << 20, &bytes);
  std::vector<uint8_t> buf(bytes);
  size_t msg_bytes = 0;
  miri_frame_write(&q, n, buf.data(), bytes, &msg_bytes);
  EXPECT_EQ(q.len, 30u);
  Mir__PackedMessage **msgs = nullptr;
  size_t got = 0;
  ASSERT_EQ(miri_frame_decode(buf.data(), buf.size(), 20, &msgs, &got), MIR_OK);
  EXPECT_EQ(got, 20u);
  for (size_t i = 0; i < got; i++) {
    EXPECT_STREQ(msgs[i]->dest_module, "app/x");
    EXPECT_STREQ(msgs[i]->type, "mir.TestString");
    protobuf_c_message_free_unpacked(&msgs[i]->base, nullptr);
  }
  free(msgs);
  // The receiver's bound on messages per frame applies before anything is decoded.
  EXPECT_EQ(miri_frame_decode(buf.data(), buf.size(), 19, &msgs, &got), MIR_EPROTO);
  miri_queue_fini(&q);
}

// The queue refuses messages at either bound and keeps the older ones.
TEST(FrameCodec, QueueBounds) {
  std::vector<miri_msg *> ms = Msgs(4, 100);
  miri_queue q;
  miri_queue_init(&q, 3, 1 << 20);
  EXPECT_TRUE(miri_queue_push(&q, ms[0]));
  EXPECT_TRUE(miri_queue_push(&q, ms[1]));
  EXPECT_TRUE(miri_queue_push(&q, ms[2]));
  EXPECT_FALSE(miri_queue_push(&q, ms[3]));
  EXPECT_EQ(miri_queue_peek(&q, 0), ms[0]);
  miri_queue_fini(&q);
  miri_queue_init(&q, 10, 2 * ms[3]->len);
  EXPECT_TRUE(miri_queue_push(&q, miri_msg_ref(ms[3])));
  EXPECT_TRUE(miri_queue_push(&q, miri_msg_ref(ms[3])));
  EXPECT_FALSE(miri_queue_push(&q, ms[3]));  // over the byte bound
  EXPECT_EQ(q.bytes, 2 * ms[3]->len);
  miri_queue_fini(&q);
  miri_msg_unref(ms[3]);
}

// Random bytes never crash the decoder and never yield a message with an invalid destination.
TEST(FrameCodec, RandomBytesAreRejectedOrValid) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  std::string good = ValidFrame(7);
  for (int iter = 0; iter < 20000; iter++) {
    std::string f = good;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t flips = 1 + x % 4;
    for (size_t k = 0; k < flips; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      f[x % f.size()] = static_cast<char>(x >> 32);
    }
    if (x % 5 == 0) f.resize(x % (f.size() + 1));
    Mir__PackedMessage **msgs = nullptr;
    size_t n = 0;
    if (miri_frame_decode(reinterpret_cast<const uint8_t *>(f.data()), f.size(), 8, &msgs, &n) ==
        MIR_OK) {
      for (size_t i = 0; i < n; i++) {
        EXPECT_TRUE(mir_module_id_valid(msgs[i]->dest_module));
        protobuf_c_message_free_unpacked(&msgs[i]->base, nullptr);
      }
      free(msgs);
    }
  }
}

}  // namespace
