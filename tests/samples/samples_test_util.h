// Helpers for the samples tests: driving a manual-mode node until it is quiet, injecting messages
// as a transport would, reading back what a collector standing in for the transport was asked to
// send, reading a sample module's counters from the metrics registry, and polling a condition
// with a bound.
#ifndef MIR_TESTS_SAMPLES_UTIL_H
#define MIR_TESTS_SAMPLES_UTIL_H

#include <gtest/gtest.h>
#include <time.h>

#include <functional>
#include <string>
#include <vector>

#include "mir/alloc.h"
#include "mir/event.h"
#include "mir/metrics.h"
#include "mir/node.h"
#include "samples.h"

namespace samples_test {

// Applies batches of a manual-mode node until nothing is queued (at most max_steps batches).
// Returns the number of batches applied; fails the test on a module error.
inline size_t run_until_quiet(mir_node *node, size_t max_steps = 10000) {
  size_t steps = 0;
  for (; steps < max_steps; steps++) {
    size_t applied = 0;
    mir_err err = mir_node_step(node, &applied);
    EXPECT_EQ(err, MIR_OK) << mir_node_last_error(node);
    if (err != MIR_OK || applied == 0) break;
  }
  EXPECT_LT(steps, max_steps) << "the node never became quiet";
  return steps;
}

// Injects one event (takes ownership) into node.
inline void inject(mir_node *node, mir_event *ev) {
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, ev);
  ASSERT_EQ(mir_node_inject(node, &l), MIR_OK);
}

// Injects msg (borrowed) as if the transport received it from node `from` for module dest.
inline void inject_message(mir_node *node, const char *from, const char *dest,
                           const ProtobufCMessage *msg) {
  inject(node, mir_event_message_received(from, mir_message_pack(dest, msg)));
}

// Injects raw bytes claiming to be a message of type `type` (for undecodable input).
inline void inject_raw_message(mir_node *node, const char *from, const char *dest, const char *type,
                               const std::string &bytes) {
  auto *pm = static_cast<Mir__PackedMessage *>(mir_xmalloc(sizeof(Mir__PackedMessage)));
  mir__packed_message__init(pm);
  pm->dest_module = mir_xstrdup(dest);
  pm->type = mir_xstrdup(type);
  pm->data.len = bytes.size();
  pm->data.data = static_cast<uint8_t *>(mir_xmemdup(bytes.data(), bytes.size()));
  inject(node, mir_event_message_received(from, pm));
}

// One message a module asked the transport to send.
struct Sent {
  std::vector<std::string> dests;
  std::string remote_module;
  ProtobufCMessage *msg = nullptr;  // owned
};

// Every SendMessage the collector `net` received, decoded (types must be registered). The caller
// frees them with free_sent.
inline std::vector<Sent> sent_messages(mir_collector *net) {
  std::vector<Sent> out;
  size_t n = mir_collector_count(net, &mir__send_message__descriptor);
  for (size_t i = 0; i < n; i++) {
    auto *sm = reinterpret_cast<Mir__SendMessage *>(
        mir_collector_get(net, &mir__send_message__descriptor, i, nullptr));
    Sent s;
    for (size_t k = 0; k < sm->n_destinations; k++) s.dests.push_back(sm->destinations[k]);
    s.remote_module = sm->msg->dest_module;
    EXPECT_EQ(mir_message_unpack(sm->msg, 0, &s.msg), MIR_OK);
    protobuf_c_message_free_unpacked(&sm->base, nullptr);
    out.push_back(s);
  }
  return out;
}

inline void free_sent(std::vector<Sent> *v) {
  for (auto &s : *v) {
    if (s.msg != nullptr) protobuf_c_message_free_unpacked(s.msg, nullptr);
  }
  v->clear();
}

// Polls cond every millisecond until it holds or timeout_ms passes; returns whether it held.
inline bool eventually(const std::function<bool()> &cond, uint64_t timeout_ms = 20000) {
  uint64_t deadline = mir_now_ns() + timeout_ms * 1000000ULL;
  while (!cond()) {
    if (mir_now_ns() >= deadline) return false;
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, nullptr);
  }
  return true;
}

inline ProtobufCBinaryData bytes_of(const std::string &s) {
  ProtobufCBinaryData b;
  b.len = s.size();
  b.data = reinterpret_cast<uint8_t *>(const_cast<char *>(s.data()));
  return b;
}

inline std::string string_of(ProtobufCBinaryData b) {
  return std::string(reinterpret_cast<const char *>(b.data), b.len);
}

// A sample module's counter called name, read from its metric set in the registry.
inline uint64_t read_counter(const mir_dsl *module, const char *name) {
  return static_cast<uint64_t>(mir_metrics_read(mir_dsl_metrics(module), name, nullptr));
}

// A pingpong module's counters (mir_pingpong_new), read from the registry.
struct PingpongCounts {
  uint64_t pings_sent, pings_received, pongs_received, dropped;
};
inline PingpongCounts pingpong_counts(const mir_dsl *pp) {
  return PingpongCounts{read_counter(pp, "mir_pingpong_pings_sent_total"),
                        read_counter(pp, "mir_pingpong_pings_received_total"),
                        read_counter(pp, "mir_pingpong_pongs_received_total"),
                        read_counter(pp, "mir_pingpong_dropped_messages_total")};
}

// A BCB module's counters (mir_bcb_new), read from the registry.
struct BcbCounts {
  uint64_t dropped, echoes_valid, echoes_invalid, finals_rejected, stale;
  bool delivered;
};
inline BcbCounts bcb_counts(const mir_dsl *bcb) {
  return BcbCounts{read_counter(bcb, "mir_bcb_dropped_messages_total"),
                   read_counter(bcb, "mir_bcb_echoes_valid_total"),
                   read_counter(bcb, "mir_bcb_echoes_invalid_total"),
                   read_counter(bcb, "mir_bcb_finals_rejected_total"),
                   read_counter(bcb, "mir_bcb_stale_responses_total"),
                   read_counter(bcb, "mir_bcb_deliveries_total") > 0};
}

}  // namespace samples_test

#endif
