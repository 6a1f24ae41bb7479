// Helpers for the tests of Trantor's passive modules (checkpoint, ISS): memberships, driving a
// module's apply() by hand, inspecting what it emitted, a fake crypto module whose signature of
// node n over parts is H(n, parts...) with the reference hash, and turning SendMessage events
// into the MessageReceived events the destinations would get.
#ifndef TRANTOR_TEST_UTIL_H
#define TRANTOR_TEST_UTIL_H

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/crypto.pb-c.h"
#include "mir/event.h"
#include "mir/module.h"
#include "mir/registry.h"
#include "mir/storage.h"
#include "trantor/trantor.pb-c.h"
#include "trantor_common.h"
}

namespace tt {

// An owned membership (free with protobuf_c_message_free_unpacked) of (id, weight) pairs, in the
// order given (tests pass them sorted unless they test the check).
inline Trantor__Membership *membership(const std::vector<std::pair<std::string, uint64_t>> &list) {
  auto *m = static_cast<Trantor__Membership *>(mir_xmalloc(sizeof(Trantor__Membership)));
  trantor__membership__init(m);
  m->n_members = list.size();
  m->members =
      static_cast<Trantor__Member **>(mir_xmalloc(list.size() * sizeof(Trantor__Member *)));
  for (size_t i = 0; i < list.size(); i++) {
    auto *mem = static_cast<Trantor__Member *>(mir_xmalloc(sizeof(Trantor__Member)));
    trantor__member__init(mem);
    mem->id = mir_xstrdup(list[i].first.c_str());
    mem->weight = list[i].second;
    m->members[i] = mem;
  }
  return m;
}

inline Trantor__Membership *unit_membership(const std::vector<std::string> &ids) {
  std::vector<std::pair<std::string, uint64_t>> list;
  for (const auto &id : ids) list.emplace_back(id, 1);
  return membership(list);
}

template <typename T>
void free_msg(T *m) {
  if (m != nullptr) protobuf_c_message_free_unpacked(&m->base, nullptr);
}

// A borrowed view of s's bytes, valid while s lives (temporaries are refused).
inline ProtobufCBinaryData bytes(const std::string &s) {
  ProtobufCBinaryData b;
  b.len = s.size();
  b.data = s.empty() ? nullptr : reinterpret_cast<uint8_t *>(const_cast<char *>(s.data()));
  return b;
}
ProtobufCBinaryData bytes(std::string &&) = delete;
// A borrowed view of a string literal's bytes (static storage).
inline ProtobufCBinaryData bytes(const char *s) {
  ProtobufCBinaryData b;
  b.len = strlen(s);
  b.data = reinterpret_cast<uint8_t *>(const_cast<char *>(s));
  return b;
}

inline std::string str(const ProtobufCBinaryData &b) {
  return std::string(reinterpret_cast<const char *>(b.data), b.len);
}

// Owns a list of events: what a module emitted.
struct Events {
  mir_event_list list = MIR_EVENT_LIST_INIT;
  // Keys the module wrote through its store (sync_store), in order, and how many writes.
  std::vector<std::string> stored;
  size_t writes = 0;
  Events() = default;
  Events(const Events &) = delete;
  Events &operator=(const Events &) = delete;
  ~Events() { mir_event_list_free(&list); }

  void clear() {
    mir_event_list_free(&list);
    stored.clear();
    writes = 0;
  }
  size_t size() const { return list.len; }

  // Events whose payload has type desc and, if dest is given, whose destination is dest.
  std::vector<const mir_event *> of(const ProtobufCMessageDescriptor *desc,
                                    const char *dest = nullptr) const {
    std::vector<const mir_event *> out;
    MIR_EVENT_LIST_FOREACH(&list, ev) {
      if (mir_event_is(ev, desc) && (dest == nullptr || strcmp(ev->dest, dest) == 0)) {
        out.push_back(ev);
      }
    }
    return out;
  }
  size_t count(const ProtobufCMessageDescriptor *desc, const char *dest = nullptr) const {
    return of(desc, dest).size();
  }
  // Types of every event to dest, in order ("trantor.DeliverCert", ...).
  std::vector<std::string> types_to(const char *dest) const {
    std::vector<std::string> out;
    MIR_EVENT_LIST_FOREACH(&list, ev) {
      if (strcmp(ev->dest, dest) == 0) out.push_back(mir_event_type_name(ev));
    }
    return out;
  }
  // Moves every event out (the caller owns them).
  mir_event_list take() {
    mir_event_list l = list;
    mir_event_list_init(&list);
    return l;
  }
};

template <typename T>
const T *payload(const mir_event *ev) {
  return reinterpret_cast<const T *>(ev->payload);
}

// The store as a disk that is durable at once: every mir.StoreWrite of out is replaced, where it
// stands, by the events it releases; its keys are recorded in out.stored.
inline void sync_store(Events &out) {
  mir_registry_add_framework(); /* the released events are framework types, e.g. SendMessage */
  mir_event_list in = out.take(), kept = MIR_EVENT_LIST_INIT;
  while (mir_event *ev = mir_event_list_pop(&in)) {
    if (!mir_event_is(ev, &mir__store_write__descriptor)) {
      mir_event_list_push(&kept, ev);
      continue;
    }
    auto *w = payload<Mir__StoreWrite>(ev);
    EXPECT_EQ(mir_storage_check(w), MIR_OK) << mir_error_detail();
    for (size_t i = 0; i < w->n_ops; i++) out.stored.push_back(str(w->ops[i]->key));
    out.writes++;
    EXPECT_EQ(mir_storage_release(w, &kept), MIR_OK) << mir_error_detail();
    mir_event_free(ev);
  }
  out.list = kept;
}

// A module under test: ops and state, destroyed at the end.
struct Module {
  const mir_module_ops *ops = nullptr;
  void *state = nullptr;
  Module() = default;
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;
  ~Module() {
    if (state != nullptr && ops->destroy != nullptr) ops->destroy(state);
  }
  // Applies in (takes ownership) and appends the output to out, with the store's writes made
  // durable at once (sync_store); returns apply's result.
  mir_err apply(mir_event_list *in, Events &out) {
    mir_err err = ops->apply(state, in, &out.list);
    mir_event_list_free(in);
    sync_store(out);
    return err;
  }
  mir_err apply_one(mir_event *ev, Events &out) {
    mir_event_list in = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&in, ev);
    return apply(&in, out);
  }
};

// A message from node `from` for module dest on this node, as the transport delivers it.
inline mir_event *received(const char *dest, const char *from, const ProtobufCMessage *msg) {
  return mir_event_message_received(from, mir_message_pack(dest, msg));
}

// The fake signature of node over parts: H(node, parts...) (32 bytes).
inline std::string fake_sig(const char *node, const ProtobufCBinaryData *parts, size_t n) {
  std::vector<const uint8_t *> p{reinterpret_cast<const uint8_t *>(node)};
  std::vector<size_t> l{strlen(node)};
  for (size_t i = 0; i < n; i++) {
    p.push_back(parts[i].data);
    l.push_back(parts[i].len);
  }
  uint8_t out[32];
  trantor_hash_reference(p.data(), l.data(), p.size(), out);
  return std::string(reinterpret_cast<char *>(out), 32);
}

inline bool fake_ok(const char *node, const ProtobufCBinaryData *parts, size_t n,
                    const ProtobufCBinaryData &sig) {
  return node != nullptr && str(sig) == fake_sig(node, parts, n);
}

inline ProtobufCBinaryData dup_bytes(const std::string &s) {
  ProtobufCBinaryData b;
  b.len = s.size();
  b.data = static_cast<uint8_t *>(mir_xmemdup(s.data(), s.size()));
  return b;
}

// The answer of node's fake crypto module to a request event (borrowed), or nullptr if ev is not
// a crypto request. Results go to origin.module with the request's origin.
inline mir_event *fake_crypto(const char *node, const mir_event *ev) {
  if (mir_event_is(ev, &mir__sign_request__descriptor)) {
    auto *req = payload<Mir__SignRequest>(ev);
    auto *res = static_cast<Mir__SignResult *>(mir_xmalloc(sizeof(Mir__SignResult)));
    mir__sign_result__init(res);
    res->signature = dup_bytes(fake_sig(node, req->data, req->n_data));
    res->origin = reinterpret_cast<Mir__Origin *>(mir_message_clone(&req->origin->base));
    return mir_event_new(req->origin->module, "crypto", &res->base);
  }
  if (mir_event_is(ev, &mir__verify_request__descriptor)) {
    auto *req = payload<Mir__VerifyRequest>(ev);
    auto *res = static_cast<Mir__VerifyResult *>(mir_xmalloc(sizeof(Mir__VerifyResult)));
    mir__verify_result__init(res);
    res->node_id = mir_xstrdup(req->node_id);
    res->ok = fake_ok(req->node_id, req->data, req->n_data, req->signature);
    res->origin = reinterpret_cast<Mir__Origin *>(mir_message_clone(&req->origin->base));
    return mir_event_new(req->origin->module, "crypto", &res->base);
  }
  if (mir_event_is(ev, &mir__verify_many_request__descriptor)) {
    auto *req = payload<Mir__VerifyManyRequest>(ev);
    auto *res = static_cast<Mir__VerifyManyResult *>(mir_xmalloc(sizeof(Mir__VerifyManyResult)));
    mir__verify_many_result__init(res);
    res->n_ok = req->n_items;
    res->ok = static_cast<protobuf_c_boolean *>(
        mir_xcalloc(req->n_items ? req->n_items : 1, sizeof(protobuf_c_boolean)));
    res->all_ok = true;
    for (size_t i = 0; i < req->n_items; i++) {
      const Mir__SignedData *sd = req->items[i];
      res->ok[i] = fake_ok(sd->node_id, sd->data, sd->n_data, sd->signature);
      res->all_ok = res->all_ok && res->ok[i];
    }
    res->origin = reinterpret_cast<Mir__Origin *>(mir_message_clone(&req->origin->base));
    return mir_event_new(req->origin->module, "crypto", &res->base);
  }
  return nullptr;
}

// Answers every crypto request of evs (borrowed) as node would; the answers go into out.
inline void answer_crypto(const char *node, const Events &evs, mir_event_list *out) {
  MIR_EVENT_LIST_FOREACH(&evs.list, ev) {
    mir_event *res = fake_crypto(node, ev);
    if (res != nullptr) mir_event_list_push(out, res);
  }
}

// For every SendMessage of evs (borrowed) sent by node `from`, the MessageReceived events each
// destination gets, as (destination node, event) pairs (events owned by the caller).
inline std::vector<std::pair<std::string, mir_event *>> deliveries(const char *from,
                                                                   const Events &evs) {
  std::vector<std::pair<std::string, mir_event *>> out;
  for (const mir_event *ev : evs.of(&mir__send_message__descriptor)) {
    auto *sm = payload<Mir__SendMessage>(ev);
    for (size_t i = 0; i < sm->n_destinations; i++) {
      auto *pm = reinterpret_cast<Mir__PackedMessage *>(mir_message_clone(&sm->msg->base));
      out.emplace_back(sm->destinations[i], mir_event_message_received(from, pm));
    }
  }
  return out;
}

// Decodes the message of a SendMessage event (borrowed). Returns an owned tree.
inline ProtobufCMessage *sent_message(const mir_event *ev) {
  auto *sm = payload<Mir__SendMessage>(ev);
  ProtobufCMessage *msg = nullptr;
  EXPECT_EQ(mir_message_unpack(sm->msg, 0, &msg), MIR_OK);
  return msg;
}

inline std::vector<std::string> destinations(const mir_event *ev) {
  auto *sm = payload<Mir__SendMessage>(ev);
  return std::vector<std::string>(sm->destinations, sm->destinations + sm->n_destinations);
}

}  // namespace tt

#endif
