// A small harness for simulator tests: a world of N nodes, each with the simulator's transport,
// timer and crypto modules plus a "probe" module whose behaviour is a C++ callback and which
// records what it receives (message values with sender and virtual time, timer firings, crypto
// results).
#ifndef MIR_TESTS_SIM_HARNESS_H
#define MIR_TESTS_SIM_HARNESS_H

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/crypto.pb-c.h"
#include "mir/sim.h"
}

namespace simtest {

struct World;

// What a node's probe saw; one Probe per node incarnation.
struct Probe {
  World *world = nullptr;
  size_t node = 0;
  bool restart = false;
  uint64_t applied = 0;
};

struct Received {
  size_t node;
  size_t from;
  uint64_t value;
  uint64_t at_ns;
};

struct Fired {
  size_t node;
  uint64_t value;
  uint64_t at_ns;
};

struct World {
  mir_sim *sim = nullptr;
  std::vector<std::unique_ptr<Probe>> probes;
  std::vector<Received> received;
  std::vector<Fired> fired;
  std::vector<std::string> crypto_results;  // "sign:<len>", "verify:<0|1>", "many:<all_ok>"
  std::vector<std::vector<uint8_t>> signatures;
  std::vector<size_t> boots;  // per node: times built
  // Called on each node's probe Init (after a restart too); may emit events into out.
  std::function<void(Probe *, mir_event_list *out)> on_init;
  // Called for every other event the probe applies.
  std::function<mir_err(Probe *, const mir_event *ev, mir_event_list *out)> on_event;

  ~World() { mir_sim_free(sim); }
};

inline uint64_t ms(uint64_t v) {
  return v * MIR_SIM_NS_PER_MS;
}

// Emits a SendMessage of TestUint64{value} from node's probe to the probes of nodes `to`.
inline void send_u64(size_t node, const std::vector<size_t> &to, uint64_t value,
                     mir_event_list *out) {
  (void)node;
  std::vector<std::string> ids;
  for (size_t t : to) ids.push_back(std::to_string(t));
  std::vector<const char *> p;
  for (auto &s : ids) p.push_back(s.c_str());
  Mir__TestUint64 m = MIR__TEST_UINT64__INIT;
  m.value = value;
  mir_event_list_push(out,
                      mir_event_send_message("net", "probe", p.data(), p.size(), "probe", &m.base));
}

// Emits a TimerDelay that hands TestUint64{value} to the probe after delay_ms.
inline void timer_u64(uint64_t delay_ms, uint64_t value, mir_event_list *out) {
  mir_event_list evs = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&evs, mir_event_test_uint64("probe", "probe", value));
  mir_event_list_push(out, mir_event_timer_delay("timer", "probe", &evs, delay_ms));
}

inline mir_err probe_apply(void *state, mir_event_list *in, mir_event_list *out) {
  auto *p = static_cast<Probe *>(state);
  World *w = p->world;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    p->applied++;
    uint64_t now = mir_sim_now(w->sim);
    if (mir_event_is(ev, &mir__init__descriptor)) {
      if (w->on_init) w->on_init(p, out);
      continue;
    }
    if (mir_event_is(ev, &mir__message_received__descriptor)) {
      auto *mr = reinterpret_cast<Mir__MessageReceived *>(ev->payload);
      ProtobufCMessage *m = nullptr;
      if (mir_message_unpack(mr->msg, 0, &m) == MIR_OK) {
        if (m->descriptor == &mir__test_uint64__descriptor) {
          w->received.push_back({p->node, (size_t)mir_sim_node_index(w->sim, mr->from),
                                 reinterpret_cast<Mir__TestUint64 *>(m)->value, now});
        }
        protobuf_c_message_free_unpacked(m, nullptr);
      }
    } else if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
      w->fired.push_back({p->node, reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value, now});
    } else if (mir_event_is(ev, &mir__sign_result__descriptor)) {
      auto *r = reinterpret_cast<Mir__SignResult *>(ev->payload);
      w->crypto_results.push_back("sign:" + std::to_string(r->signature.len));
      w->signatures.emplace_back(r->signature.data, r->signature.data + r->signature.len);
    } else if (mir_event_is(ev, &mir__verify_result__descriptor)) {
      auto *r = reinterpret_cast<Mir__VerifyResult *>(ev->payload);
      w->crypto_results.push_back(std::string("verify:") + (r->ok ? "1" : "0"));
    } else if (mir_event_is(ev, &mir__verify_many_result__descriptor)) {
      auto *r = reinterpret_cast<Mir__VerifyManyResult *>(ev->payload);
      w->crypto_results.push_back(std::string("many:") + (r->all_ok ? "1" : "0"));
    }
    if (w->on_event) {
      mir_err err = w->on_event(p, ev, out);
      if (err != MIR_OK) return err;
    }
  }
  return MIR_OK;
}

// The probe's state belongs to the World (it outlives the node), so the ops have no destroy.
inline const mir_module_ops *probe_ops() {
  static mir_module_ops ops;
  ops.name = "probe";
  ops.kind = MIR_MODULE_PASSIVE;
  ops.apply = probe_apply;
  ops.peer_messages = true;
  return &ops;
}

inline mir_err world_build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart) {
  auto *w = static_cast<World *>(user);
  w->sim = sim;
  if (w->boots.size() <= node) w->boots.resize(node + 1);
  w->boots[node]++;
  mir_err err = mir_sim_add_transport(sim, node, mn, "net");
  if (err == MIR_OK) err = mir_sim_add_timer(sim, node, mn, "timer");
  if (err == MIR_OK) err = mir_sim_add_crypto(sim, node, mn, "crypto");
  if (err == MIR_OK) err = mir_sim_add_hasher(sim, node, mn, "hasher");
  if (err != MIR_OK) return err;
  auto p = std::make_unique<Probe>();
  p->world = w;
  p->node = node;
  p->restart = restart;
  Probe *raw = p.get();
  w->probes.push_back(std::move(p));
  return mir_node_add_module(mn, "probe", probe_ops(), raw);
}

// A configuration for a world of n nodes with exact 1 ms delays and no faults.
inline mir_sim_config world_config(World *w, size_t n, uint64_t seed) {
  mir_sim_config cfg;
  mir_sim_config_default(&cfg);
  cfg.seed = seed;
  cfg.nodes = n;
  cfg.net.delay_min_ns = cfg.net.delay_max_ns = ms(1);
  cfg.build = world_build;
  cfg.user = w;
  cfg.checks.validity = false;
  return cfg;
}

// The simulator's own counter called name (label value, or any), from mir_sim_metrics.
inline uint64_t sim_read(const mir_sim *sim, const char *name, const char *value = nullptr) {
  return static_cast<uint64_t>(mir_metrics_read(mir_sim_metrics(sim), name, value));
}

inline void world_start(World *w, const mir_sim_config &cfg) {
  mir_sim *sim = nullptr;
  ASSERT_EQ(mir_sim_new(&cfg, &sim), MIR_OK) << mir_error_detail();
  w->sim = sim;
}

}  // namespace simtest

#endif
