// Tests of the DSL runtime: handler order, after-event and after-batch checks, message decoding
// and the drop of bad or unwanted messages, unhandled events, emitting, and the context store.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/dsl.h"
#include "mir/node.h"
#include "mir/registry.h"
}

namespace {

using Log = std::vector<std::string>;

// The protocol state of the tests: a log of what ran, and knobs for the handlers.
struct Proto {
  Log log;
  uint64_t ctx_id = 0;
  int freed = 0;
  bool dispose_in_first = false;
};

Proto *P(void *user) {
  return static_cast<Proto *>(user);
}

uint64_t value_of(const mir_event *ev) {
  return reinterpret_cast<const Mir__TestUint64 *>(ev->payload)->value;
}

mir_err first(mir_dsl *dsl, const mir_event *ev, void *user) {
  P(user)->log.push_back("first " + std::to_string(value_of(ev)));
  mir_dsl_emit(dsl, mir_event_test_uint64("out", "p", value_of(ev)));
  return MIR_OK;
}

mir_err second(mir_dsl *dsl, const mir_event *ev, void *user) {
  P(user)->log.push_back("second " + std::to_string(value_of(ev)));
  auto *payload = static_cast<Mir__TestUint64 *>(mir_xmalloc(sizeof(Mir__TestUint64)));
  mir__test_uint64__init(payload);
  payload->value = value_of(ev) * 10;
  mir_dsl_emit_new(dsl, "out", &payload->base);
  return MIR_OK;
}

mir_err after_event(mir_dsl *, void *user) {
  P(user)->log.push_back("after-event");
  return MIR_OK;
}

mir_err after_batch(mir_dsl *, void *user) {
  P(user)->log.push_back("after-batch");
  return MIR_OK;
}

mir_err on_string_msg(mir_dsl *, const char *from, const ProtobufCMessage *msg, void *user) {
  P(user)->log.push_back(std::string("msg ") +
                         reinterpret_cast<const Mir__TestString *>(msg)->value + " from " + from);
  return MIR_OK;
}

mir_err on_string_msg_too(mir_dsl *, const char *, const ProtobufCMessage *, void *user) {
  P(user)->log.push_back("msg again");
  return MIR_OK;
}

mir_err failing(mir_dsl *, const mir_event *, void *) {
  return static_cast<mir_err>(mir_error_set(MIR_EIO, "handler failed"));
}

// A received message carrying msg (borrowed) for module "p" from `from`.
mir_event *received(const char *from, const ProtobufCMessage *msg) {
  return mir_event_message_received(from, mir_message_pack("p", msg));
}

mir_event *received_string(const char *from, const std::string &value) {
  Mir__TestString m = MIR__TEST_STRING__INIT;
  m.value = const_cast<char *>(value.c_str());
  return received(from, &m.base);
}

class DslTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_registry_add_framework();
    dsl_ = mir_dsl_new("p", &proto_);
  }
  void TearDown() override {
    mir_dsl_free(dsl_);
    mir_event_list_free(&out_);
  }

  // Applies one batch made of evs (takes ownership).
  mir_err Apply(std::vector<mir_event *> evs) {
    mir_event_list in = MIR_EVENT_LIST_INIT;
    for (mir_event *ev : evs) mir_event_list_push(&in, ev);
    mir_err err = mir_dsl_ops.apply(dsl_, &in, &out_);
    mir_event_list_free(&in);
    return err;
  }

  // The runtime's counters, read from the dsl's set in the registry.
  struct DslStats {
    uint64_t messages, messages_undecodable, messages_unhandled;
  };
  DslStats Stats() {
    const mir_metrics *m = mir_dsl_metrics(dsl_);
    auto rd = [m](const char *name, const char *value) {
      return static_cast<uint64_t>(mir_metrics_read(m, name, value));
    };
    return DslStats{rd("mir_dsl_messages_total", nullptr),
                    rd("mir_dsl_messages_dropped_total", "undecodable"),
                    rd("mir_dsl_messages_dropped_total", "no_handler")};
  }

  Proto proto_;
  Proto owner_;  // context owner; outlives dsl_, which may free contexts in TearDown
  mir_dsl *dsl_ = nullptr;
  mir_event_list out_ = MIR_EVENT_LIST_INIT;
};

mir_event *u(uint64_t v) {
  return mir_event_test_uint64("p", "t", v);
}

TEST_F(DslTest, HandlersRunInRegistrationOrderThenChecks) {
  // Every handler of a type runs in registration order, then the after-event checks; the
  // after-batch checks run once per batch; outputs come out in emission order.
  ASSERT_EQ(mir_dsl_upon_event(dsl_, &mir__test_uint64__descriptor, first), MIR_OK);
  ASSERT_EQ(mir_dsl_upon_event(dsl_, &mir__test_uint64__descriptor, second), MIR_OK);
  ASSERT_EQ(mir_dsl_after_event(dsl_, after_event), MIR_OK);
  ASSERT_EQ(mir_dsl_after_batch(dsl_, after_batch), MIR_OK);
  ASSERT_EQ(Apply({mir_event_init("p"), u(1), u(2)}), MIR_OK);
  EXPECT_EQ(proto_.log, (Log{"after-event", "first 1", "second 1", "after-event", "first 2",
                             "second 2", "after-event", "after-batch"}));
  std::vector<uint64_t> values;
  MIR_EVENT_LIST_FOREACH(&out_, ev) {
    EXPECT_EQ(std::string(ev->dest), "out");
    EXPECT_EQ(std::string(ev->src), "p");
    values.push_back(value_of(ev));
  }
  EXPECT_EQ(values, (std::vector<uint64_t>{1, 10, 2, 20}));
}

TEST_F(DslTest, UnhandledEventTypeIsAnErrorNamingTypeAndModule) {
  // Init without a handler is ignored, but any other event type without one is an error whose
  // detail names the type and the module.
  EXPECT_EQ(Apply({mir_event_init("p")}), MIR_OK);
  EXPECT_EQ(Apply({mir_event_test_string("p", "t", "x")}), MIR_EINVAL);
  std::string detail = mir_error_detail();
  EXPECT_NE(detail.find("mir.TestString"), std::string::npos);
  EXPECT_NE(detail.find("p"), std::string::npos);
}

TEST_F(DslTest, HandlerErrorStopsTheBatch) {
  // A handler's error is apply's error, and the rest of the batch is not applied.
  ASSERT_EQ(mir_dsl_upon_event(dsl_, &mir__test_string__descriptor, failing), MIR_OK);
  ASSERT_EQ(mir_dsl_upon_event(dsl_, &mir__test_uint64__descriptor, first), MIR_OK);
  EXPECT_EQ(Apply({mir_event_test_string("p", "t", "x"), u(1)}), MIR_EIO);
  EXPECT_TRUE(proto_.log.empty());
}

TEST_F(DslTest, DecodesMessagesForTheirHandlers) {
  // A received message is decoded and given, with its sender, to every handler of its type.
  ASSERT_EQ(mir_dsl_upon_message(dsl_, &mir__test_string__descriptor, on_string_msg), MIR_OK);
  ASSERT_EQ(mir_dsl_upon_message(dsl_, &mir__test_string__descriptor, on_string_msg_too), MIR_OK);
  ASSERT_EQ(Apply({received_string("n1", "hello")}), MIR_OK);
  EXPECT_EQ(proto_.log, (Log{"msg hello from n1", "msg again"}));
  EXPECT_EQ(Stats().messages, 1u);
}

TEST_F(DslTest, BadMessagesAreDroppedNotErrors) {
  // Garbage bytes, an unknown type, a registered type nobody handles, an oversized message and a
  // missing message are each dropped and counted; the module keeps working.
  ASSERT_EQ(mir_dsl_upon_message(dsl_, &mir__test_string__descriptor, on_string_msg), MIR_OK);
  mir_dsl_set_message_bytes_max(dsl_, 16);

  mir_event *garbage = received_string("n1", "x");
  auto *pm = reinterpret_cast<Mir__MessageReceived *>(garbage->payload)->msg;
  free(pm->data.data);
  pm->data.data = static_cast<uint8_t *>(mir_xmemdup("\xff\xff\xff\xff\xff", 5));
  pm->data.len = 5;

  mir_event *unknown = received_string("n1", "x");
  pm = reinterpret_cast<Mir__MessageReceived *>(unknown->payload)->msg;
  free(pm->type);
  pm->type = mir_xstrdup("evil.NoSuchType");

  Mir__TestUint64 num = MIR__TEST_UINT64__INIT;
  num.value = 5;
  mir_event *unhandled = received("n1", &num.base);

  mir_event *empty = received_string("n1", "x");
  auto *mr = reinterpret_cast<Mir__MessageReceived *>(empty->payload);
  protobuf_c_message_free_unpacked(&mr->msg->base, nullptr);
  mr->msg = nullptr;

  ASSERT_EQ(Apply({garbage, unknown, unhandled, received_string("n2", std::string(64, 'y')), empty,
                   received_string("n3", "ok")}),
            MIR_OK);
  EXPECT_EQ(proto_.log, (Log{"msg ok from n3"}));
  DslStats s = Stats();
  EXPECT_EQ(s.messages, 1u);
  EXPECT_EQ(s.messages_undecodable, 2u);
  EXPECT_EQ(s.messages_unhandled, 3u);
}

TEST_F(DslTest, SendWrapsTheMessageForTheTransport) {
  // mir_dsl_send emits one SendMessage to the transport with the packed message and every node.
  Mir__TestString m = MIR__TEST_STRING__INIT;
  m.value = const_cast<char *>("hi");
  const char *nodes[] = {"n1", "n2"};
  mir_dsl_send(dsl_, "net", nodes, 2, "peer", &m.base);
  mir_event_list out = MIR_EVENT_LIST_INIT;
  mir_dsl_take_emitted(dsl_, &out);
  ASSERT_EQ(out.len, 1u);
  ASSERT_TRUE(mir_event_is(out.head, &mir__send_message__descriptor));
  EXPECT_EQ(std::string(out.head->dest), "net");
  EXPECT_EQ(std::string(out.head->src), "p");
  auto *sm = reinterpret_cast<Mir__SendMessage *>(out.head->payload);
  ASSERT_EQ(sm->n_destinations, 2u);
  EXPECT_EQ(std::string(sm->destinations[1]), "n2");
  EXPECT_EQ(std::string(sm->msg->dest_module), "peer");
  EXPECT_EQ(std::string(sm->msg->type), "mir.TestString");
  mir_event_list_free(&out);
}

void count_free(void *ctx) {
  P(ctx)->freed++;
}

// Both handlers of a response read the context; the first disposes of it.
mir_err response_a(mir_dsl *dsl, const mir_event *ev, void *user) {
  void *ctx = mir_dsl_context(dsl, value_of(ev));
  P(user)->log.push_back(ctx != nullptr ? "a found" : "a missing");
  mir_dsl_dispose_context(dsl, value_of(ev));
  mir_dsl_dispose_context(dsl, value_of(ev));  // twice: ignored
  return MIR_OK;
}

mir_err response_b(mir_dsl *dsl, const mir_event *ev, void *user) {
  void *ctx = mir_dsl_context(dsl, value_of(ev));
  P(user)->log.push_back(ctx != nullptr ? "b found" : "b missing");
  return MIR_OK;
}

TEST_F(DslTest, ContextsAreSequentialAndDisposedAtBatchEnd) {
  // Context ids count from 0; a disposed context stays readable for the rest of the batch and is
  // freed at its end; an unknown id finds nothing and does not crash.
  uint64_t id0 = 99, id1 = 99;
  ASSERT_EQ(mir_dsl_store_context(dsl_, &owner_, count_free, &id0), MIR_OK);
  ASSERT_EQ(mir_dsl_store_context(dsl_, &owner_, count_free, &id1), MIR_OK);
  EXPECT_EQ(id0, 0u);
  EXPECT_EQ(id1, 1u);
  EXPECT_EQ(mir_dsl_context(dsl_, id1), &owner_);
  EXPECT_EQ(mir_dsl_context(dsl_, 12345), nullptr);

  ASSERT_EQ(mir_dsl_upon_event(dsl_, &mir__test_uint64__descriptor, response_a), MIR_OK);
  ASSERT_EQ(mir_dsl_upon_event(dsl_, &mir__test_uint64__descriptor, response_b), MIR_OK);
  ASSERT_EQ(Apply({u(id0), u(id0), u(777)}), MIR_OK);
  EXPECT_EQ(proto_.log,
            (Log{"a found", "b found", "a found", "b found", "a missing", "b missing"}));
  EXPECT_EQ(owner_.freed, 1);
  EXPECT_EQ(mir_dsl_context(dsl_, id0), nullptr);
  EXPECT_EQ(mir_dsl_context(dsl_, id1), &owner_);
  EXPECT_EQ(mir_dsl_context_count(dsl_), 1u);

  mir_dsl_dispose_context(dsl_, id1);  // outside apply: at once
  EXPECT_EQ(owner_.freed, 2);
  EXPECT_EQ(mir_dsl_context_count(dsl_), 0u);
}

TEST_F(DslTest, ContextLimitIsEnforced) {
  // Past the limit, storing fails with MIR_EFULL and frees the context it was given; ids are
  // never reused.
  mir_dsl_set_contexts_max(dsl_, 2);
  uint64_t id = 0;
  ASSERT_EQ(mir_dsl_store_context(dsl_, &owner_, count_free, &id), MIR_OK);
  ASSERT_EQ(mir_dsl_store_context(dsl_, &owner_, count_free, &id), MIR_OK);
  EXPECT_EQ(mir_dsl_store_context(dsl_, &owner_, count_free, &id), MIR_EFULL);
  EXPECT_EQ(owner_.freed, 1);
  mir_dsl_dispose_context(dsl_, 0);
  ASSERT_EQ(mir_dsl_store_context(dsl_, &owner_, count_free, &id), MIR_OK);
  EXPECT_EQ(id, 2u);
}

TEST_F(DslTest, ManyContextsSurviveTableGrowth) {
  // Thousands of live contexts stay individually reachable while the table grows, and disposing
  // every other one leaves exactly the rest.
  std::vector<int> values(5000);
  for (size_t i = 0; i < values.size(); i++) {
    uint64_t id = 0;
    ASSERT_EQ(mir_dsl_store_context(dsl_, &values[i], nullptr, &id), MIR_OK);
    ASSERT_EQ(id, i);
  }
  for (size_t i = 0; i < values.size(); i += 2) mir_dsl_dispose_context(dsl_, i);
  for (size_t i = 0; i < values.size(); i++) {
    EXPECT_EQ(mir_dsl_context(dsl_, i), i % 2 ? &values[i] : nullptr);
  }
  EXPECT_EQ(mir_dsl_context_count(dsl_), values.size() / 2);
}

TEST_F(DslTest, OriginNamesModuleAndContext) {
  // An origin built by the dsl names the module and the context, and is an owned tree.
  Mir__Origin *o = mir_dsl_origin_new(dsl_, 42);
  EXPECT_EQ(std::string(o->module), "p");
  EXPECT_EQ(o->context_id, 42u);
  protobuf_c_message_free_unpacked(&o->base, nullptr);
}

void free_proto(void *user) {
  delete static_cast<Proto *>(user);
}

mir_err echo_string(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg, void *user) {
  P(user)->log.push_back(from);
  const char *nodes[] = {from};
  mir_dsl_send(dsl, "net", nodes, 1, "p", msg);
  return MIR_OK;
}

TEST(DslNodeTest, RunsInsideANodeAndOwnsItsUserState) {
  // In a node, the dsl gets Init (ignored without a handler), handles a received message, and
  // its emitted events are routed; the node frees the dsl and, through it, the user state.
  mir_registry_add_framework();
  mir_node_config cfg;
  mir_node_config_default(&cfg);
  cfg.mode = MIR_NODE_DEBUG;
  mir_node *node = nullptr;
  ASSERT_EQ(mir_node_new("n0", &cfg, &node), MIR_OK);
  auto *proto = new Proto;
  mir_dsl *dsl = mir_dsl_new("p", proto);
  mir_dsl_set_user_free(dsl, free_proto);
  ASSERT_EQ(mir_dsl_upon_message(dsl, &mir__test_string__descriptor, echo_string), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "p", &mir_dsl_ops, dsl), MIR_OK);
  ASSERT_EQ(mir_node_start(node), MIR_OK);
  mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, mir_event_init("p"));
  mir_event_list_push(&in, received_string("n7", "ping"));
  ASSERT_EQ(mir_node_debug_apply(node, &in, &out), MIR_OK);
  EXPECT_EQ(proto->log, (Log{"n7"}));
  ASSERT_EQ(out.len, 1u);
  EXPECT_TRUE(mir_event_is(out.head, &mir__send_message__descriptor));
  mir_event_list_free(&out);
  EXPECT_EQ(mir_node_stop(node), MIR_OK);
  mir_node_free(node);
}

}  // namespace
