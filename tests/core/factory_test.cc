// Tests of the factory module: creating submodules (Init first), routing, garbage collection by
// retention index, the early-message buffer (replay, fair eviction, oversize drops) and errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/factory.h"
#include "mir/node.h"
#include "mir/registry.h"
}

namespace {

// What the submodules and the generator saw, shared by all submodules of one test.
struct World {
  std::vector<std::string> log;     // "<submodule> <dest> <what>", in apply order
  std::vector<std::string> params;  // parameters the generator got ("none" if absent)
  int created = 0;
  int destroyed = 0;
};

struct Rec {
  World *w;
  std::string id;
};

// A short description of an event: "Init", "u=<value>", "msg=<value> from <node>".
std::string describe(const mir_event *ev) {
  if (mir_event_is(ev, &mir__init__descriptor)) return "Init";
  if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
    return "u=" + std::to_string(reinterpret_cast<const Mir__TestUint64 *>(ev->payload)->value);
  }
  if (mir_event_is(ev, &mir__message_received__descriptor)) {
    auto *mr = reinterpret_cast<const Mir__MessageReceived *>(ev->payload);
    ProtobufCMessage *msg = nullptr;
    if (mir_message_unpack(mr->msg, 0, &msg) != MIR_OK) return "undecodable";
    std::string s =
        "msg=" + std::string(reinterpret_cast<Mir__TestString *>(msg)->value) + " from " + mr->from;
    protobuf_c_message_free_unpacked(msg, nullptr);
    return s;
  }
  return mir_event_type_name(ev);
}

// Logs every event; echoes TestUint64 values to "out"; fails on the value 666.
mir_err rec_apply(void *state, mir_event_list *in, mir_event_list *out) {
  auto *r = static_cast<Rec *>(state);
  MIR_EVENT_LIST_FOREACH(in, ev) {
    r->w->log.push_back(r->id + " " + ev->dest + " " + describe(ev));
    if (!mir_event_is(ev, &mir__test_uint64__descriptor)) continue;
    uint64_t v = reinterpret_cast<const Mir__TestUint64 *>(ev->payload)->value;
    if (v == 666) return static_cast<mir_err>(mir_error_set(MIR_EIO, "boom"));
    mir_event_list_push(out, mir_event_test_uint64("out", r->id.c_str(), v));
  }
  return MIR_OK;
}

void rec_destroy(void *state) {
  auto *r = static_cast<Rec *>(state);
  r->w->destroyed++;
  delete r;
}

const mir_module_ops rec_ops = {"rec",   MIR_MODULE_PASSIVE, rec_apply, nullptr,
                                nullptr, rec_destroy,        false,     nullptr};

mir_err gen(void *user_data, const char *submodule_id, const ProtobufCMessage *params,
            const mir_module_ops **ops_out, void **state_out) {
  auto *w = static_cast<World *>(user_data);
  if (params == nullptr) {
    w->params.push_back("none");
  } else if (params->descriptor == &mir__test_string__descriptor) {
    w->params.push_back(reinterpret_cast<const Mir__TestString *>(params)->value);
  } else {
    w->params.push_back(params->descriptor->name);
  }
  if (std::string(submodule_id) == "f/bad") {
    return static_cast<mir_err>(mir_error_set(MIR_EINVAL, "generator refuses f/bad"));
  }
  w->created++;
  *ops_out = &rec_ops;
  *state_out = new Rec{w, submodule_id};
  return MIR_OK;
}

// A message (TestString `value`) for `dest` from node `from`, as a transport delivers it.
mir_event *msg(const char *from, const char *dest, const std::string &value) {
  Mir__TestString m = MIR__TEST_STRING__INIT;
  m.value = const_cast<char *>(value.c_str());
  return mir_event_message_received(from, mir_message_pack(dest, &m.base));
}

size_t charge_of(const mir_event *ev) {
  return protobuf_c_message_get_packed_size(ev->payload) + MIR_FACTORY_MSG_OVERHEAD;
}

mir_event *new_sub(const char *id, uint64_t retention, const char *param = nullptr) {
  if (param == nullptr) return mir_event_new_submodule("f", "test", id, nullptr, retention);
  Mir__TestString p = MIR__TEST_STRING__INIT;
  p.value = const_cast<char *>(param);
  return mir_event_new_submodule("f", "test", id, &p.base, retention);
}

mir_event *u(const char *dest, uint64_t v) {
  return mir_event_test_uint64(dest, "test", v);
}

class FactoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_registry_add_framework();
    Make(0);
  }
  void TearDown() override {
    mir_factory_free(f_);
    mir_event_list_free(&out_);
  }

  void Make(size_t msgbuf_bytes, unsigned id_depth = 0) {
    mir_factory_free(f_);
    f_ = nullptr;
    mir_factory_params p;
    mir_factory_params_default(&p, gen, &w_);
    if (msgbuf_bytes != 0) p.msgbuf_bytes = msgbuf_bytes;
    p.id_depth = id_depth;
    ASSERT_EQ(mir_factory_new("f", &p, &f_), MIR_OK);
  }

  // Applies one batch made of evs (takes ownership) to the factory.
  mir_err Apply(std::vector<mir_event *> evs) {
    mir_event_list in = MIR_EVENT_LIST_INIT;
    for (mir_event *ev : evs) mir_event_list_push(&in, ev);
    mir_err err = mir_factory_ops.apply(f_, &in, &out_);
    mir_event_list_free(&in);
    return err;
  }

  // The outputs so far as "<src> u=<value>", emptying the output list.
  std::vector<std::string> TakeOutputs() {
    std::vector<std::string> r;
    MIR_EVENT_LIST_FOREACH(&out_, ev) r.push_back(std::string(ev->src) + " " + describe(ev));
    mir_event_list_free(&out_);
    return r;
  }

  // The factory's metric called name (label value, or any), read from its registry set.
  uint64_t Read(const char *name, const char *value = nullptr) const {
    return static_cast<uint64_t>(mir_metrics_read(mir_factory_ops.metrics(f_), name, value));
  }
  // Early messages counted with reason (buffered, evicted, dropped, replayed).
  uint64_t Early(const char *reason) const {
    return Read("mir_factory_early_messages_total", reason);
  }

  World w_;
  mir_factory *f_ = nullptr;
  mir_event_list out_ = MIR_EVENT_LIST_INIT;
};

using Log = std::vector<std::string>;

TEST_F(FactoryTest, CreatesSubmoduleWithParamsAndAppliesInitFirst) {
  // A new submodule gets its decoded parameters, then Init, then the events that follow it.
  ASSERT_EQ(Apply({mir_event_init("f"), new_sub("f/a", 0, "p1"), u("f/a", 7), new_sub("f/b", 0)}),
            MIR_OK);
  EXPECT_EQ(w_.params, (Log{"p1", "none"}));
  EXPECT_EQ(w_.log, (Log{"f/a f/a Init", "f/a f/a u=7", "f/b f/b Init"}));
  EXPECT_EQ(TakeOutputs(), (Log{"f/a u=7"}));
  EXPECT_EQ(Read("mir_factory_submodules"), 2u);
}

TEST_F(FactoryTest, RoutesDeeperIdsInOrderOfFirstEvent) {
  // Events for f/a/x reach f/a with their full id, and submodules run in the order of their
  // first event in the batch, so the output order depends only on the input.
  ASSERT_EQ(Apply({new_sub("f/a", 0), new_sub("f/b", 0)}), MIR_OK);
  w_.log.clear();
  ASSERT_EQ(Apply({u("f/b", 1), u("f/a/x", 2), u("f/b", 3)}), MIR_OK);
  EXPECT_EQ(w_.log, (Log{"f/b f/b u=1", "f/b f/b u=3", "f/a f/a/x u=2"}));
  EXPECT_EQ(TakeOutputs(), (Log{"f/b u=1", "f/b u=3", "f/a u=2"}));
}

TEST_F(FactoryTest, FactoryEventsSeeEarlierEventsApplied) {
  // Events before a NewSubmodule or GarbageCollect in a batch are applied before it takes effect;
  // events after a collection find their submodule gone.
  ASSERT_EQ(Apply({new_sub("f/a", 0)}), MIR_OK);
  w_.log.clear();
  ASSERT_EQ(Apply({u("f/a", 1), new_sub("f/b", 1), u("f/b", 2),
                   mir_event_garbage_collect("f", "t", 1), u("f/a", 3), u("f/b", 4)}),
            MIR_OK);
  EXPECT_EQ(w_.log, (Log{"f/a f/a u=1", "f/b f/b Init", "f/b f/b u=2", "f/b f/b u=4"}));
  EXPECT_EQ(w_.destroyed, 1);
  EXPECT_EQ(Early("dropped"), 1u);
}

TEST_F(FactoryTest, GarbageCollectDestroysBelowRetentionIndexMonotonically) {
  // GarbageCollect(r) destroys exactly the submodules registered below r, never goes back, and
  // later NewSubmodule events below the index are ignored.
  ASSERT_EQ(Apply({new_sub("f/a", 1), new_sub("f/b", 2), new_sub("f/c", 3)}), MIR_OK);
  ASSERT_EQ(Apply({mir_event_garbage_collect("f", "t", 3)}), MIR_OK);
  EXPECT_EQ(w_.destroyed, 2);
  EXPECT_EQ(Read("mir_factory_submodules"), 1u);
  EXPECT_EQ(Read("mir_factory_retention_index"), 3u);

  w_.log.clear();
  ASSERT_EQ(Apply({u("f/a", 1), u("f/c", 2), new_sub("f/d", 2)}), MIR_OK);
  EXPECT_EQ(w_.log, (Log{"f/c f/c u=2"}));
  EXPECT_EQ(w_.created, 3);

  ASSERT_EQ(Apply({mir_event_garbage_collect("f", "t", 2)}), MIR_OK);
  EXPECT_EQ(Read("mir_factory_retention_index"), 3u);
  EXPECT_EQ(Read("mir_factory_submodules"), 1u);
  ASSERT_EQ(Apply({mir_event_garbage_collect("f", "t", 4)}), MIR_OK);
  EXPECT_EQ(w_.destroyed, 3);
  EXPECT_EQ(Read("mir_factory_submodules"), 0u);
}

TEST_F(FactoryTest, DuplicateSubmoduleIsIgnored) {
  // A second NewSubmodule for a live id neither calls the generator nor re-initialises it.
  ASSERT_EQ(Apply({new_sub("f/a", 0), new_sub("f/a", 5)}), MIR_OK);
  EXPECT_EQ(w_.created, 1);
  EXPECT_EQ(w_.log, (Log{"f/a f/a Init"}));
}

TEST_F(FactoryTest, IdDepthTwoNamesSubmodulesWithTwoComponents) {
  // With id_depth 2, f/3/1 and f/3/2 are distinct submodules, deeper ids reach their submodule,
  // early messages wait per two-component id, and ids too short or too long are refused.
  Make(0, 2);
  ASSERT_EQ(Apply({msg("n1", "f/3/2/x", "early")}), MIR_OK);
  EXPECT_EQ(Apply({new_sub("f/3", 0)}), MIR_EINVAL);  // a wiring error, from a local module
  EXPECT_EQ(Apply({new_sub("f/3/1/x", 0)}), MIR_EINVAL);
  EXPECT_EQ(w_.created, 0) << "ids of the wrong depth must not create submodules";
  ASSERT_EQ(Apply({new_sub("f/3/1", 0), new_sub("f/3/2", 0)}), MIR_OK);
  EXPECT_EQ(w_.created, 2);
  w_.log.clear();
  ASSERT_EQ(Apply({u("f/3/2", 1), u("f/3/1/deep", 2), u("f/3", 3)}), MIR_OK);
  EXPECT_EQ(w_.log, (Log{"f/3/2 f/3/2 u=1", "f/3/1 f/3/1/deep u=2"}));
  EXPECT_EQ(Early("replayed"), 1u);
  EXPECT_EQ(Early("dropped"), 1u);  // u=3 for "f/3" names no submodule
  mir_factory_params p;
  mir_factory_params_default(&p, gen, &w_);
  p.id_depth = MIR_FACTORY_ID_DEPTH_MAX + 1;
  mir_factory *bad = nullptr;
  EXPECT_EQ(mir_factory_new("g", &p, &bad), MIR_EINVAL);
}

TEST_F(FactoryTest, BuffersEarlyMessagesAndReplaysThemAfterInit) {
  // Messages for a submodule that does not exist yet are replayed, in order, right after its
  // Init; other events for it are dropped; messages for another submodule stay buffered.
  ASSERT_EQ(Apply({msg("n1", "f/a", "x"), u("f/a", 5), msg("n2", "f/a/deep", "y"),
                   msg("n1", "f/b", "z")}),
            MIR_OK);
  EXPECT_TRUE(w_.log.empty());
  EXPECT_EQ(Early("buffered"), 3u);
  EXPECT_EQ(Early("dropped"), 1u);

  ASSERT_EQ(Apply({new_sub("f/a", 0), u("f/a", 6)}), MIR_OK);
  EXPECT_EQ(w_.log, (Log{"f/a f/a Init", "f/a f/a msg=x from n1", "f/a f/a/deep msg=y from n2",
                         "f/a f/a u=6"}));
  EXPECT_EQ(Early("replayed"), 2u);
  EXPECT_EQ(Read("mir_factory_early_buffer_messages"), 1u);
  mir_event *probe = msg("n1", "f/b", "z");
  EXPECT_EQ(Read("mir_factory_early_buffer_bytes"), charge_of(probe));
  mir_event_free(probe);
}

TEST_F(FactoryTest, FloodingSenderEvictsOnlyItsOwnMessages) {
  // With the buffer full, a flooding sender's new messages evict its own oldest ones, never the
  // single message another sender buffered earlier (plain FIFO eviction would drop that one).
  mir_event *probe = msg("evil", "f/a", "m00");
  size_t c = charge_of(probe);
  mir_event_free(probe);
  Make(4 * c);

  ASSERT_EQ(Apply({msg("good", "f/b", "h01")}), MIR_OK);
  std::vector<mir_event *> flood;
  for (int i = 0; i < 20; i++) {
    flood.push_back(msg("evil", "f/a", (i < 10 ? "m0" : "m") + std::to_string(i)));
  }
  ASSERT_EQ(Apply(flood), MIR_OK);
  EXPECT_EQ(Early("evicted"), 17u);
  EXPECT_EQ(Read("mir_factory_early_buffer_messages"), 4u);

  w_.log.clear();
  ASSERT_EQ(Apply({new_sub("f/b", 0), new_sub("f/a", 0)}), MIR_OK);
  EXPECT_EQ(w_.log, (Log{"f/b f/b Init", "f/b f/b msg=h01 from good", "f/a f/a Init",
                         "f/a f/a msg=m17 from evil", "f/a f/a msg=m18 from evil",
                         "f/a f/a msg=m19 from evil"}));
}

TEST_F(FactoryTest, NewcomerTakesSpaceFromTheBiggestSender) {
  // A sender with less than the biggest share evicts the biggest sender's oldest message, not
  // its own, until the shares are even.
  mir_event *probe = msg("evil", "f/a", "m00");
  size_t c = charge_of(probe);
  mir_event_free(probe);
  Make(4 * c);
  ASSERT_EQ(Apply({msg("evil", "f/a", "m00"), msg("evil", "f/a", "m01"), msg("evil", "f/a", "m02"),
                   msg("evil", "f/a", "m03")}),
            MIR_OK);
  ASSERT_EQ(Apply({msg("good", "f/b", "h01"), msg("good", "f/b", "h02")}), MIR_OK);
  EXPECT_EQ(Early("evicted"), 2u);
  ASSERT_EQ(Apply({new_sub("f/a", 0), new_sub("f/b", 0)}), MIR_OK);
  EXPECT_EQ(w_.log,
            (Log{"f/a f/a Init", "f/a f/a msg=m02 from evil", "f/a f/a msg=m03 from evil",
                 "f/b f/b Init", "f/b f/b msg=h01 from good", "f/b f/b msg=h02 from good"}));
}

TEST_F(FactoryTest, OversizeMessageIsDropped) {
  // A message larger than the whole buffer is dropped and counted; nothing is evicted for it.
  Make(256);
  ASSERT_EQ(Apply({msg("n1", "f/a", "small"), msg("n1", "f/a", std::string(300, 'x'))}), MIR_OK);
  EXPECT_EQ(Early("buffered"), 1u);
  EXPECT_EQ(Early("dropped"), 1u);
  EXPECT_EQ(Early("evicted"), 0u);
  ASSERT_EQ(Apply({new_sub("f/a", 0)}), MIR_OK);
  EXPECT_EQ(w_.log, (Log{"f/a f/a Init", "f/a f/a msg=small from n1"}));
}

TEST_F(FactoryTest, UnexpectedEventForTheFactoryIsAnError) {
  // Only Init, NewSubmodule and GarbageCollect may be addressed to the factory itself.
  EXPECT_EQ(Apply({mir_event_test_string("f", "t", "hi")}), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("mir.TestString"), std::string::npos);
}

TEST_F(FactoryTest, PeerMessageForTheFactoryItselfIsDropped) {
  // A peer may address the factory's own id: that is its input, not a local bug, so it is
  // dropped and counted rather than failing the module.
  ASSERT_EQ(Apply({msg("evil", "f", "hi")}), MIR_OK);
  EXPECT_EQ(Early("dropped"), 1u);
  ASSERT_EQ(Apply({new_sub("f/a", 0)}), MIR_OK);
  EXPECT_EQ(w_.log, (Log{"f/a f/a Init"}));
}

TEST_F(FactoryTest, SubmoduleAndGeneratorErrorsPropagate) {
  // A submodule's error stops the batch with the submodule's id in the detail; a generator
  // error and an invalid submodule id are errors too.
  ASSERT_EQ(Apply({new_sub("f/a", 0)}), MIR_OK);
  EXPECT_EQ(Apply({u("f/a", 666)}), MIR_EIO);
  std::string detail = mir_error_detail();
  EXPECT_NE(detail.find("f/a"), std::string::npos);
  EXPECT_NE(detail.find("boom"), std::string::npos);

  EXPECT_EQ(Apply({new_sub("f/bad", 0)}), MIR_EINVAL);
  EXPECT_EQ(Apply({new_sub("f/a/b", 0)}), MIR_EINVAL);
  EXPECT_EQ(Apply({mir_event_new_submodule("f", "t", "g/a", nullptr, 0)}), MIR_EINVAL);
}

TEST_F(FactoryTest, UnregisteredParameterTypeIsAnError) {
  // Parameters whose type is not in the registry cannot be decoded: an error, not a crash.
  mir_event *ev = new_sub("f/a", 0, "p");
  auto *ns = reinterpret_cast<Mir__NewSubmodule *>(ev->payload);
  free(ns->params->type);
  ns->params->type = mir_xstrdup("nope.Unknown");
  EXPECT_EQ(Apply({ev}), MIR_ENOTFOUND);
  EXPECT_EQ(w_.created, 0);
}

TEST(FactoryNodeTest, RunsInsideANode) {
  // Mounted in a node, the factory ignores its Init and serves submodules from injected events;
  // the submodule's output is routed by the node (here to a missing module, so it is dropped).
  mir_registry_add_framework();
  World w;
  mir_factory_params p;
  mir_factory_params_default(&p, gen, &w);
  mir_factory *f = nullptr;
  ASSERT_EQ(mir_factory_new("f", &p, &f), MIR_OK);
  mir_node_config cfg;
  mir_node_config_default(&cfg);
  cfg.mode = MIR_NODE_MANUAL;
  mir_node *node = nullptr;
  ASSERT_EQ(mir_node_new("n0", &cfg, &node), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "f", &mir_factory_ops, f), MIR_OK);
  ASSERT_EQ(mir_node_start(node), MIR_OK);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, msg("n1", "f/a", "early"));
  mir_event_list_push(&in, new_sub("f/a", 0));
  mir_event_list_push(&in, u("f/a", 9));
  ASSERT_EQ(mir_node_inject(node, &in), MIR_OK);
  size_t applied = 0;
  for (int i = 0; i < 100; i++) {
    ASSERT_EQ(mir_node_step(node, &applied), MIR_OK);
    if (applied == 0) break;
  }
  EXPECT_EQ(w.log, (Log{"f/a f/a Init", "f/a f/a msg=early from n1", "f/a f/a u=9"}));
  EXPECT_EQ(mir_node_stop(node), MIR_OK);
  mir_node_free(node);
  EXPECT_EQ(w.destroyed, 1);
}

}  // namespace
