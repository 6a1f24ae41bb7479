// A small in-test cluster of PBFT segment instances: every node is one instance whose apply is
// called directly, one event at a time, from a single FIFO queue. The harness stands in for the
// other modules: it routes SendMessage between instances (as MessageReceived with the sender's
// id, through an optional filter that may drop or rewrite a message per destination), answers
// RequestCert with test certificates, answers crypto requests with a deterministic fake signer
// bound to the node id (sig = H("sig", node id, data...)), keeps timer events until a test fires
// them, and records what each node delivers to iss. Each node has a store: the instance's
// StoreWrites are applied to an in-memory map and their `then` events released at once, or held
// (hold_store) until a test releases them, as a slow disk would; crash_and_restart rebuilds an
// instance from its store, as a restarted replica does.
#ifndef MIR_TESTS_PBFT_HARNESS_H
#define MIR_TESTS_PBFT_HARNESS_H

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/crypto.pb-c.h"
#include "mir/dsl.h"
#include "mir/event.h"
#include "mir/registry.h"
#include "mir/storage.h"
#include "pbft.h"
#include "trantor_common.h"
#include "wal.h"
}

namespace pbft_test {

constexpr const char *kModule = "ordering/0/0";

// Frees a protobuf-c owned tree.
inline void free_msg(ProtobufCMessage *m) {
  if (m != nullptr) protobuf_c_message_free_unpacked(m, nullptr);
}

inline ProtobufCBinaryData bytes_of(const std::string &s) {
  ProtobufCBinaryData b;
  b.len = s.size();
  b.data = static_cast<uint8_t *>(mir_xmemdup(s.data(), s.size()));
  return b;
}

inline std::string str_of(const ProtobufCBinaryData &b) {
  return std::string(reinterpret_cast<const char *>(b.data), b.len);
}

// The fake signature of node `id` over the parts.
inline std::string fake_sign(const std::string &id, const ProtobufCBinaryData *data, size_t n) {
  std::vector<const uint8_t *> parts;
  std::vector<size_t> lens;
  parts.push_back(reinterpret_cast<const uint8_t *>("sig"));
  lens.push_back(3);
  parts.push_back(reinterpret_cast<const uint8_t *>(id.data()));
  lens.push_back(id.size());
  for (size_t i = 0; i < n; i++) {
    parts.push_back(data[i].data);
    lens.push_back(data[i].len);
  }
  uint8_t out[32];
  trantor_hash_reference(parts.data(), lens.data(), parts.size(), out);
  return std::string(reinterpret_cast<const char *>(out), 32);
}

// One instance's metrics as the tests read them (Cluster::stats).
struct PbftStats {
  uint64_t received = 0;  // decoded peer messages, every kind
  uint64_t dropped[TRANTOR_PBFT_DROP_KINDS] = {};
  uint64_t dropped_total = 0;  // every reason
  uint64_t undecodable = 0;    // dropped by the runtime before PBFT saw them
  uint64_t stale_answers = 0, view_changes = 0, joins = 0, new_views = 0, proposals = 0;
  uint64_t committed = 0, caught_up = 0, view = 0, buffered_bytes = 0;
  bool in_view_change = false, done = false, stable = false;
};

struct Delivery {
  std::string cert;
  bool aborted = false;
  int count = 0;
};

struct Timer {
  uint64_t delay_ms = 0;
  bool repeat = false;
  mir_event *ev = nullptr;  // owned nested event
};

struct Node {
  std::string id;
  uint64_t weight = 1;
  const mir_module_ops *ops = nullptr;
  void *state = nullptr;
  bool crashed = false;
  std::map<uint64_t, Delivery> delivered;
  std::vector<Timer> timers;
  std::vector<uint64_t> sn_delays, seg_delays;  // TimerDelay delays of each timeout kind
  int certs_made = 0;
  bool empty_certs = false;  // answer RequestCert with an empty certificate
  bool hold_certs = false;   // keep RequestCert unanswered
  // Lose this many of the next crypto requests of each type (as an overloaded crypto module
  // does): SignRequest, VerifyRequest, VerifyManyRequest.
  int lose_sign = 0, lose_verify = 0, lose_verify_many = 0;
  std::vector<mir_event *> held_requests;
  std::map<std::string, int> sent;  // SendMessage events by message type ("trantor.Commit")
  std::map<std::string, std::string> store;  // what its StoreWrites made durable
  bool hold_store = false;                   // keep StoreWrites pending (a slow disk)
  std::vector<mir_event *> held_writes;      // pending StoreWrites, in order
  int writes = 0;                            // StoreWrites made durable
  bool failed = false;                       // an apply returned an error: the node stopped
  int fill_requests = 0;                     // RequestCerts with fill set
  int cert_requests = 0;                     // RequestCerts (proposals asked for)
};

// Decides the fate of a message from node `from` to node `to`; msg is decoded and may be
// rewritten in place. Returns false to drop it.
using Filter = std::function<bool(size_t from, size_t to, ProtobufCMessage *msg)>;

struct Options {
  std::vector<uint64_t> weights = {1, 1, 1, 1};
  size_t leader = 0;
  std::vector<uint64_t> sns = {0, 4, 8, 12, 16, 20, 24, 28};
  uint64_t sn_timeout_ms = 100;
  uint64_t seg_timeout_ms = 1000;
  uint64_t max_cert_bytes = 1024;
  uint64_t msg_buf_bytes = 1 << 20;
  bool active = true;  // the nodes' mempools hold transactions (PbftParams.active)
};

class Cluster {
 public:
  explicit Cluster(const Options &o) : opt_(o) {
    mir_registry_add_framework();
    size_t n = o.weights.size();
    for (size_t i = 0; i < n; i++) {
      Node nd;
      nd.id = "n" + std::to_string(i);
      nd.weight = o.weights[i];
      nodes_.push_back(nd);
    }
    build_params();
    for (size_t i = 0; i < n; i++) create(i, &params_);
  }

  // Builds node i's instance from params (borrowed).
  void create(size_t i, const Trantor__PbftParams *params) {
    trantor_pbft_config cfg = {nodes_[i].id.c_str(),
                               trantor_hash_reference,
                               "iss",
                               "availability",
                               "crypto",
                               "timer",
                               "net",
                               "store"};
    mir_err err = trantor_pbft_new(kModule, params, &cfg, &nodes_[i].ops, &nodes_[i].state);
    EXPECT_EQ(err, MIR_OK) << mir_error_detail();
  }

  // Node i crashes: its instance, its timers, its queued events and its pending (unsynced)
  // writes are gone; its store stays. Then it restarts: a new instance with what
  // trantor_wal_recover reads from the store, and Init. Returns false if recovery refused the
  // store.
  bool crash_and_restart(size_t i) {
    Node &nd = nodes_[i];
    for (auto &t : nd.timers) mir_event_free(t.ev);
    nd.timers.clear();
    for (auto *e : nd.held_writes) mir_event_free(e);
    nd.held_writes.clear();
    for (auto *e : nd.held_requests) mir_event_free(e);
    nd.held_requests.clear();
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->first == i) {
        mir_event_free(it->second);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (nd.ops != nullptr) nd.ops->destroy(nd.state);
    nd.ops = nullptr;
    nd.state = nullptr;
    nd.failed = false;
    std::vector<trantor_wal_kv> kvs;
    for (auto &kv : nd.store) {
      kvs.push_back({reinterpret_cast<const uint8_t *>(kv.first.data()), kv.first.size(),
                     reinterpret_cast<const uint8_t *>(kv.second.data()), kv.second.size()});
    }
    Trantor__Recovered *rec = nullptr;
    if (trantor_wal_recover(kvs.data(), kvs.size(), &rec) != MIR_OK) return false;
    Trantor__PbftParams p = params_;
    for (size_t k = 0; k < rec->n_instances; k++) {
      if (rec->instances[k]->epoch == params_.epoch &&
          rec->instances[k]->segment == params_.segment) {
        p.recovered = rec->instances[k]->pbft;
      }
    }
    create(i, &p);
    free_msg(&rec->base);
    push(i, mir_event_init(kModule));
    return nd.state != nullptr;
  }

  // Makes node i's held writes durable and releases their events, in order.
  void release_writes(size_t i) {
    auto held = std::move(nodes_[i].held_writes);
    nodes_[i].held_writes.clear();
    for (auto *e : held) write(i, e);
  }

  ~Cluster() {
    for (auto &q : queue_) mir_event_free(q.second);
    for (auto &nd : nodes_) {
      for (auto &t : nd.timers) mir_event_free(t.ev);
      for (auto *e : nd.held_requests) mir_event_free(e);
      for (auto *e : nd.held_writes) mir_event_free(e);
      if (nd.ops != nullptr) nd.ops->destroy(nd.state);
    }
  }

  Cluster(const Cluster &) = delete;
  Cluster &operator=(const Cluster &) = delete;

  size_t size() const { return nodes_.size(); }
  Node &node(size_t i) { return nodes_[i]; }
  const Trantor__PbftParams &params() const { return params_; }
  size_t index_of(const std::string &id) const {
    for (size_t i = 0; i < nodes_.size(); i++) {
      if (nodes_[i].id == id) return i;
    }
    return SIZE_MAX;
  }

  void set_filter(Filter f) { filter_ = std::move(f); }
  // With a non-zero seed, run() applies queued events in a random order (messages, crypto and
  // availability answers overtake each other); 0 keeps FIFO order.
  void set_reorder_seed(uint64_t seed) { reorder_ = seed; }
  void clear_filter() { filter_ = nullptr; }

  void start() {
    for (size_t i = 0; i < nodes_.size(); i++) push(i, mir_event_init(kModule));
  }

  void push(size_t i, mir_event *ev) { queue_.emplace_back(i, ev); }

  // Delivers a local event with payload msg (owned) to node i, as ISS sends it.
  void from_iss(size_t i, ProtobufCMessage *msg) { push(i, mir_event_new(kModule, "iss", msg)); }

  // Node i's pending one-shot view-change timeouts.
  size_t pending_timeouts(size_t i) const {
    size_t k = 0;
    for (const auto &t : nodes_[i].timers) {
      k += !t.repeat && (mir_event_is(t.ev, &trantor__view_change_sn_timeout__descriptor) ||
                         mir_event_is(t.ev, &trantor__view_change_seg_timeout__descriptor));
    }
    return k;
  }

  // Delivers msg (borrowed) to node `to` as if node `from` (any id) had sent it.
  void inject(size_t to, const std::string &from, const ProtobufCMessage *msg) {
    push(to, mir_event_message_received(from.c_str(), mir_message_pack(kModule, msg)));
  }

  // Delivers raw bytes claiming to be a message of `type`.
  void inject_raw(size_t to, const std::string &from, const char *type, const std::string &data) {
    auto *pm = static_cast<Mir__PackedMessage *>(mir_xmalloc(sizeof(Mir__PackedMessage)));
    mir__packed_message__init(pm);
    pm->dest_module = mir_xstrdup(kModule);
    pm->type = mir_xstrdup(type);
    pm->data = bytes_of(data);
    push(to, mir_event_message_received(from.c_str(), pm));
  }

  // Applies queued events until none is left (bounded).
  void run(size_t max_steps = 500000) {
    size_t steps = 0;
    while (!queue_.empty() && steps++ < max_steps) {
      size_t k = 0;
      if (reorder_ != 0) {
        reorder_ = reorder_ * 6364136223846793005ULL + 1442695040888963407ULL;
        k = static_cast<size_t>((reorder_ >> 33) % queue_.size());
      }
      auto [i, ev] = queue_[k];
      queue_.erase(queue_.begin() + static_cast<long>(k));
      apply(i, ev);
    }
    EXPECT_TRUE(queue_.empty()) << "the cluster never became quiet";
  }

  // Fires (and forgets) node i's pending one-shot timers whose event has type desc.
  size_t fire(size_t i, const ProtobufCMessageDescriptor *desc) {
    size_t fired = 0;
    auto &ts = nodes_[i].timers;
    for (size_t k = 0; k < ts.size();) {
      if (ts[k].repeat || !mir_event_is(ts[k].ev, desc)) {
        k++;
        continue;
      }
      emit_timer_event(i, ts[k].ev);
      ts.erase(ts.begin() + static_cast<long>(k));
      fired++;
    }
    return fired;
  }

  // Fires node i's view-change timeouts (both kinds).
  size_t fire_timeouts(size_t i) {
    return fire(i, &trantor__view_change_sn_timeout__descriptor) +
           fire(i, &trantor__view_change_seg_timeout__descriptor);
  }

  // Fires one period of every repeating timer of node i (Done resends and ticks).
  size_t fire_repeats(size_t i) {
    size_t fired = 0;
    for (auto &t : nodes_[i].timers) {
      if (!t.repeat) continue;
      emit_timer_event(i, mir_event_new(t.ev->dest, t.ev->src, mir_message_clone(t.ev->payload)));
      fired++;
    }
    return fired;
  }

  void fire_all_repeats() {
    for (size_t i = 0; i < nodes_.size(); i++) fire_repeats(i);
  }

  // Answers node i's held certificate requests.
  void release_certs(size_t i) {
    auto held = std::move(nodes_[i].held_requests);
    nodes_[i].held_requests.clear();
    for (auto *e : held) answer_cert(i, e);
  }

  // Node i's instance metrics, read from the instance's set in the registry.
  PbftStats stats(size_t i) const {
    const mir_metrics *m = mir_dsl_metrics(static_cast<const mir_dsl *>(nodes_[i].state));
    auto rd = [m](const char *name, const char *value = nullptr) {
      return static_cast<uint64_t>(mir_metrics_read(m, name, value));
    };
    PbftStats s;
    s.received = rd("mir_pbft_messages_received_total");
    for (int r = 0; r < TRANTOR_PBFT_DROP_KINDS; r++) {
      s.dropped[r] = rd("mir_pbft_dropped_messages_total",
                        trantor_pbft_drop_name(static_cast<trantor_pbft_drop>(r)));
    }
    s.dropped_total = rd("mir_pbft_dropped_messages_total");
    s.undecodable = rd("mir_dsl_messages_dropped_total");
    s.stale_answers = rd("mir_pbft_stale_answers_total");
    s.view_changes = rd("mir_pbft_view_changes_total");
    s.joins = rd("mir_pbft_view_change_joins_total");
    s.new_views = rd("mir_pbft_new_views_total");
    s.proposals = rd("mir_pbft_proposals_total");
    s.committed = rd("mir_pbft_committed_total");
    s.caught_up = rd("mir_pbft_caught_up_total");
    s.view = rd("mir_pbft_view");
    s.in_view_change = rd("mir_pbft_instances_in_view_change") != 0;
    s.done = rd("mir_pbft_instances_done") != 0;
    s.stable = rd("mir_pbft_instances_stable") != 0;
    s.buffered_bytes = rd("mir_pbft_buffered_bytes");
    return s;
  }

  bool all_delivered(size_t i) const { return nodes_[i].delivered.size() == opt_.sns.size(); }

  // No two nodes of `who` delivered different certificates for an sn; nobody delivered twice.
  void expect_agreement(const std::vector<size_t> &who) const {
    for (uint64_t sn : opt_.sns) {
      const Delivery *first = nullptr;
      for (size_t i : who) {
        auto it = nodes_[i].delivered.find(sn);
        if (it == nodes_[i].delivered.end()) continue;
        EXPECT_EQ(it->second.count, 1) << nodes_[i].id << " delivered sn " << sn << " twice";
        if (first == nullptr) {
          first = &it->second;
          continue;
        }
        EXPECT_EQ(it->second.cert, first->cert) << "disagreement on sn " << sn;
        EXPECT_EQ(it->second.aborted, first->aborted) << "disagreement on sn " << sn;
      }
    }
  }

  int apply_errors = 0;
  bool quiet_errors = false;  // an apply error is expected: count it, do not fail the test

 private:
  void build_params() {
    size_t n = nodes_.size();
    member_store_.resize(n);
    for (size_t i = 0; i < n; i++) {
      trantor__member__init(&member_store_[i]);
      member_store_[i].id = const_cast<char *>(nodes_[i].id.c_str());
      member_store_[i].weight = nodes_[i].weight;
      member_ptrs_.push_back(&member_store_[i]);
    }
    trantor__membership__init(&membership_);
    membership_.n_members = n;
    membership_.members = member_ptrs_.data();
    trantor__pbft_params__init(&params_);
    params_.epoch = 0;
    params_.segment = 0;
    params_.leader = const_cast<char *>(nodes_[opt_.leader].id.c_str());
    params_.membership = &membership_;
    sns_ = opt_.sns;
    params_.n_sns = sns_.size();
    params_.sns = sns_.data();
    buckets_ = {0, 4};
    params_.n_buckets = buckets_.size();
    params_.buckets = buckets_.data();
    params_.view_change_sn_timeout_ms = opt_.sn_timeout_ms;
    params_.view_change_segment_timeout_ms = opt_.seg_timeout_ms;
    params_.done_resend_ms = 50;
    params_.catch_up_delay_ms = 60;
    params_.view_change_resend_ms = 70;
    params_.msg_buf_bytes = opt_.msg_buf_bytes;
    params_.max_cert_bytes = opt_.max_cert_bytes;
    params_.active = opt_.active;
  }

  // A timer hands its event (owned) to its destination: the instance, or the transport.
  void emit_timer_event(size_t i, mir_event *ev) {
    if (std::string(ev->dest) == kModule) {
      push(i, ev);
    } else if (!nodes_[i].crashed) {
      route(i, ev);
    } else {
      mir_event_free(ev);
    }
  }

  void apply(size_t i, mir_event *ev) {
    if (nodes_[i].crashed || nodes_[i].ops == nullptr || nodes_[i].failed) {
      mir_event_free(ev);
      return;
    }
    mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&in, ev);
    mir_err err = nodes_[i].ops->apply(nodes_[i].state, &in, &out);
    if (!quiet_errors) {
      EXPECT_EQ(err, MIR_OK) << nodes_[i].id << ": " << mir_error_detail();
    }
    if (err != MIR_OK) {
      apply_errors++;
      nodes_[i].failed = true; /* a node stops at its first error */
    }
    mir_event_list_free(&in);
    while (mir_event *e = mir_event_list_pop(&out)) route(i, e);
  }

  void route(size_t i, mir_event *e) {
    std::string dest = e->dest;
    if (dest == "net" && mir_event_is(e, &mir__send_message__descriptor)) {
      on_send(i, reinterpret_cast<const Mir__SendMessage *>(e->payload));
    } else if (dest == "crypto") {
      on_crypto(i, e);
    } else if (dest == "availability" && mir_event_is(e, &trantor__request_cert__descriptor)) {
      nodes_[i].cert_requests++;
      if (nodes_[i].hold_certs) {
        nodes_[i].held_requests.push_back(e);
        return;
      }
      answer_cert(i, e);
      return;
    } else if (dest == "timer") {
      on_timer(i, e);
    } else if (dest == "iss" && mir_event_is(e, &trantor__sb_deliver__descriptor)) {
      on_deliver(i, reinterpret_cast<const Trantor__SbDeliver *>(e->payload));
    } else if (dest == "store" && mir_event_is(e, &mir__store_write__descriptor)) {
      if (nodes_[i].hold_store) {
        nodes_[i].held_writes.push_back(e);
        return;
      }
      write(i, e);
      return;
    } else {
      ADD_FAILURE() << "unexpected event " << mir_event_type_name(e) << " to " << dest;
    }
    mir_event_free(e);
  }

  // Applies a StoreWrite (takes ownership) to node i's store and releases its events.
  void write(size_t i, mir_event *e) {
    auto *w = reinterpret_cast<const Mir__StoreWrite *>(e->payload);
    EXPECT_EQ(mir_storage_check(w), MIR_OK) << mir_error_detail();
    auto &st = nodes_[i].store;
    for (size_t k = 0; k < w->n_ops; k++) {
      const Mir__StoreOp *op = w->ops[k];
      std::string key = str_of(op->key);
      if (op->kind == MIR__STORE_OP__KIND__PUT) {
        st[key] = str_of(op->value);
      } else if (op->kind == MIR__STORE_OP__KIND__DELETE) {
        st.erase(key);
      } else {
        st.erase(st.lower_bound(key), st.lower_bound(str_of(op->end)));
      }
    }
    nodes_[i].writes++;
    mir_event_list evs = MIR_EVENT_LIST_INIT;
    EXPECT_EQ(mir_storage_release(w, &evs), MIR_OK) << mir_error_detail();
    mir_event_free(e);
    while (mir_event *ev = mir_event_list_pop(&evs)) {
      if (std::string(ev->dest) == kModule) {
        push(i, ev);
      } else {
        route(i, ev);
      }
    }
  }

  void on_send(size_t i, const Mir__SendMessage *sm) {
    nodes_[i].sent[sm->msg->type]++;
    for (size_t k = 0; k < sm->n_destinations; k++) {
      size_t j = index_of(sm->destinations[k]);
      if (j == SIZE_MAX) {
        ADD_FAILURE() << "message to unknown node " << sm->destinations[k];
        continue;
      }
      ProtobufCMessage *msg = nullptr;
      if (mir_message_unpack(sm->msg, 0, &msg) != MIR_OK) {
        ADD_FAILURE() << "undecodable message from " << nodes_[i].id;
        continue;
      }
      if (filter_ && !filter_(i, j, msg)) {
        free_msg(msg);
        continue;
      }
      push(j, mir_event_message_received(nodes_[i].id.c_str(),
                                         mir_message_pack(sm->msg->dest_module, msg)));
      free_msg(msg);
    }
  }

  static Mir__Origin *clone_origin(const Mir__Origin *o) {
    return reinterpret_cast<Mir__Origin *>(mir_message_clone(&o->base));
  }

  void answer(size_t i, const Mir__Origin *o, ProtobufCMessage *payload) {
    push(i, mir_event_new(o->module, "crypto", payload));
  }

  void on_crypto(size_t i, const mir_event *e) {
    Node &nd = nodes_[i];
    int *lose = mir_event_is(e, &mir__sign_request__descriptor)     ? &nd.lose_sign
                : mir_event_is(e, &mir__verify_request__descriptor) ? &nd.lose_verify
                                                                    : &nd.lose_verify_many;
    if (*lose > 0) {
      (*lose)--;
      return;
    }
    if (mir_event_is(e, &mir__sign_request__descriptor)) {
      auto *r = reinterpret_cast<const Mir__SignRequest *>(e->payload);
      auto *res = static_cast<Mir__SignResult *>(mir_xmalloc(sizeof(Mir__SignResult)));
      mir__sign_result__init(res);
      res->signature = bytes_of(fake_sign(nodes_[i].id, r->data, r->n_data));
      res->origin = clone_origin(r->origin);
      answer(i, r->origin, &res->base);
    } else if (mir_event_is(e, &mir__verify_request__descriptor)) {
      auto *r = reinterpret_cast<const Mir__VerifyRequest *>(e->payload);
      auto *res = static_cast<Mir__VerifyResult *>(mir_xmalloc(sizeof(Mir__VerifyResult)));
      mir__verify_result__init(res);
      res->node_id = mir_xstrdup(r->node_id);
      res->ok = fake_sign(r->node_id, r->data, r->n_data) == str_of(r->signature);
      res->origin = clone_origin(r->origin);
      answer(i, r->origin, &res->base);
    } else if (mir_event_is(e, &mir__verify_many_request__descriptor)) {
      auto *r = reinterpret_cast<const Mir__VerifyManyRequest *>(e->payload);
      auto *res = static_cast<Mir__VerifyManyResult *>(mir_xmalloc(sizeof(Mir__VerifyManyResult)));
      mir__verify_many_result__init(res);
      res->n_ok = r->n_items;
      res->ok = static_cast<protobuf_c_boolean *>(mir_xcalloc(r->n_items + 1, sizeof(*res->ok)));
      res->all_ok = true;
      for (size_t k = 0; k < r->n_items; k++) {
        const Mir__SignedData *it = r->items[k];
        res->ok[k] = fake_sign(it->node_id, it->data, it->n_data) == str_of(it->signature);
        res->all_ok = res->all_ok && res->ok[k];
      }
      res->origin = clone_origin(r->origin);
      answer(i, r->origin, &res->base);
    } else {
      ADD_FAILURE() << "unexpected crypto event " << mir_event_type_name(e);
    }
  }

  void answer_cert(size_t i, mir_event *e) {
    auto *r = reinterpret_cast<const Trantor__RequestCert *>(e->payload);
    if (r->fill) nodes_[i].fill_requests++;
    EXPECT_EQ(r->epoch, 0u);
    EXPECT_EQ(r->n_buckets, buckets_.size());
    auto *nc = static_cast<Trantor__NewCert *>(mir_xmalloc(sizeof(Trantor__NewCert)));
    trantor__new_cert__init(nc);
    Node &nd = nodes_[i];
    std::string cert =
        nd.empty_certs ? "" : "cert-" + nd.id + "-" + std::to_string(nd.certs_made++);
    nc->cert = bytes_of(cert);
    nc->origin = clone_origin(r->origin);
    push(i, mir_event_new(r->origin->module, "availability", &nc->base));
    mir_event_free(e);
  }

  void keep_timer(size_t i, const Mir__PackedEvent *pe, uint64_t ms, bool repeat) {
    mir_event *ev = nullptr;
    ASSERT_EQ(mir_event_unpack(pe, &ev), MIR_OK) << mir_error_detail();
    if (mir_event_is(ev, &trantor__view_change_sn_timeout__descriptor)) {
      nodes_[i].sn_delays.push_back(ms);
    } else if (mir_event_is(ev, &trantor__view_change_seg_timeout__descriptor)) {
      nodes_[i].seg_delays.push_back(ms);
    }
    nodes_[i].timers.push_back(Timer{ms, repeat, ev});
  }

  void on_timer(size_t i, const mir_event *e) {
    if (mir_event_is(e, &mir__timer_delay__descriptor)) {
      auto *td = reinterpret_cast<const Mir__TimerDelay *>(e->payload);
      for (size_t k = 0; k < td->n_events; k++) keep_timer(i, td->events[k], td->delay_ms, false);
    } else if (mir_event_is(e, &mir__timer_repeat__descriptor)) {
      auto *tr = reinterpret_cast<const Mir__TimerRepeat *>(e->payload);
      EXPECT_EQ(tr->retention_index, params_.epoch);
      for (size_t k = 0; k < tr->n_events; k++) keep_timer(i, tr->events[k], tr->period_ms, true);
    } else {
      ADD_FAILURE() << "unexpected timer event " << mir_event_type_name(e);
    }
  }

  void on_deliver(size_t i, const Trantor__SbDeliver *d) {
    EXPECT_EQ(d->epoch, params_.epoch);
    EXPECT_EQ(d->segment, params_.segment);
    EXPECT_STREQ(d->leader, params_.leader);
    Delivery &dl = nodes_[i].delivered[d->sn];
    dl.cert = str_of(d->cert);
    dl.aborted = d->aborted;
    dl.count++;
  }

  Options opt_;
  std::vector<Node> nodes_;
  std::deque<std::pair<size_t, mir_event *>> queue_;
  Filter filter_;
  uint64_t reorder_ = 0;
  std::vector<Trantor__Member> member_store_;
  std::vector<Trantor__Member *> member_ptrs_;
  Trantor__Membership membership_;
  Trantor__PbftParams params_;
  std::vector<uint64_t> sns_;
  std::vector<uint32_t> buckets_;
};

}  // namespace pbft_test

#endif
