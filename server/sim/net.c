/*
 * The simulated network: the transport module, the fault model on the wire, and the hooks of
 * Byzantine nodes.
 *
 * A message's path: a module emits mir.SendMessage to the node's sim transport; the transport
 * hands the packed message to miri_sim_net_send, which resolves each destination id, passes a
 * Byzantine sender's copy through its filter, and enqueues every resulting copy. Enqueueing
 * applies the link state and the random faults: a blocked link (partition) loses the message;
 * before heal_ns a message may be dropped or duplicated; its delay is drawn from the configured
 * distribution, and on FIFO links it never arrives before an earlier message of the same link.
 * At its due time the message is delivered as mir.MessageReceived, unless the destination is
 * down or the link got blocked meanwhile.
 *
 * The transport reports the true sender: even a Byzantine filter cannot forge `from`, as with
 * authenticated channels. What arrives is validated like network input (the destination module
 * id must be valid), since a corrupting filter may have changed anything.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "sim_internal.h"

struct mir_sim_byz {
  mir_sim *sim;
  size_t from;
};

/* ---- packed-message helpers ---- */

static char *net_strdup_field(const char *s) {
  return (s == NULL || s == protobuf_c_empty_string) ? (char *)protobuf_c_empty_string
                                                     : mir_xstrdup(s);
}

Mir__PackedMessage *mir_sim_packed_clone(const Mir__PackedMessage *msg) {
  Mir__PackedMessage *c = mir_xmalloc(sizeof *c);
  mir__packed_message__init(c);
  c->dest_module = net_strdup_field(msg->dest_module);
  c->type = net_strdup_field(msg->type);
  c->data.len = msg->data.len;
  c->data.data = msg->data.len ? mir_xmemdup(msg->data.data, msg->data.len) : NULL;
  return c;
}

/* ---- the wire ---- */

/* Draws a message delay from the configured distribution. */
static uint64_t net_delay(mir_sim *sim) {
  const mir_sim_net *nc = &sim->cfg.net;
  uint64_t d = mir_sim_rng_range(&sim->net, nc->delay_min_ns, nc->delay_max_ns);
  if (nc->tail_max_ns > 0 && mir_sim_rng_chance(&sim->net, nc->tail_ppm)) {
    d += mir_sim_rng_range(&sim->net, 0, nc->tail_max_ns);
  }
  return d;
}

/* Schedules the arrival of msg (takes ownership) on from -> to. */
static void net_schedule(mir_sim *sim, size_t from, size_t to, Mir__PackedMessage *msg,
                         uint64_t extra_ns) {
  miri_sim_node *src = &sim->nodes[from];
  uint64_t at = sim->now_ns + net_delay(sim) + extra_ns;
  if (!sim->cfg.net.reorder) {
    if (at < src->link_last_ns[to]) at = src->link_last_ns[to];
    src->link_last_ns[to] = at;
  }
  miri_sim_action *a = miri_sim_action_new(MIRI_ACT_DELIVER, at);
  a->node = (uint32_t)to;
  a->from = (uint32_t)from;
  a->msg = msg;
  miri_sim_schedule(sim, a);
}

void miri_sim_net_enqueue(mir_sim *sim, size_t from, size_t to, Mir__PackedMessage *msg,
                          uint64_t extra_ns) {
  mir_counter_inc(sim->c.sent);
  if (sim->nodes[from].blocked_to[to]) {
    mir_counter_inc(sim->c.lost_partitioned);
    miri_sim_trace(sim, "blocked %zu->%zu %s", from, to, msg->type);
    protobuf_c_message_free_unpacked(&msg->base, NULL);
    return;
  }
  bool faulty = sim->now_ns < sim->cfg.heal_ns;
  if (faulty && mir_sim_rng_chance(&sim->net, sim->cfg.net.drop_ppm)) {
    mir_counter_inc(sim->c.lost_dropped);
    miri_sim_trace(sim, "drop %zu->%zu %s", from, to, msg->type);
    protobuf_c_message_free_unpacked(&msg->base, NULL);
    return;
  }
  if (faulty && mir_sim_rng_chance(&sim->net, sim->cfg.net.duplicate_ppm)) {
    mir_counter_inc(sim->c.duplicated);
    net_schedule(sim, from, to, mir_sim_packed_clone(msg), extra_ns);
  }
  net_schedule(sim, from, to, msg, extra_ns);
}

void miri_sim_net_send(mir_sim *sim, size_t from, char *const *dests, size_t n,
                       const Mir__PackedMessage *msg) {
  miri_sim_node *src = &sim->nodes[from];
  for (size_t k = 0; k < n; k++) {
    int to = mir_sim_node_index(sim, dests[k]);
    if (to < 0) {
      mir_counter_inc(sim->c.unknown_dest);
      continue;
    }
    if (src->byz_fn != NULL) {
      mir_sim_byz byz = {sim, from};
      src->byz_fn(src->byz_user, &byz, from, (size_t)to, msg);
    } else {
      miri_sim_net_enqueue(sim, from, (size_t)to, mir_sim_packed_clone(msg), 0);
    }
  }
}

void miri_sim_net_deliver(mir_sim *sim, miri_sim_action *a) {
  miri_sim_node *dst = &sim->nodes[a->node];
  Mir__PackedMessage *msg = a->msg;
  a->msg = NULL;
  const char *type = msg->type ? msg->type : "";
  if (dst->mn == NULL || sim->nodes[a->from].blocked_to[a->node]) {
    bool down = dst->mn == NULL;
    if (down) {
      mir_counter_inc(sim->c.lost_down);
    } else {
      mir_counter_inc(sim->c.lost_partitioned);
    }
    miri_sim_trace(sim, "%s %u->%u %s", down ? "lost-down" : "blocked", a->from, a->node, type);
    protobuf_c_message_free_unpacked(&msg->base, NULL);
  } else if (msg->dest_module == NULL || !mir_module_id_valid(msg->dest_module)) {
    mir_counter_inc(sim->c.unknown_dest);
    miri_sim_trace(sim, "bad-dest %u->%u %s", a->from, a->node, type);
    protobuf_c_message_free_unpacked(&msg->base, NULL);
  } else {
    mir_counter_inc(sim->c.delivered);
    miri_sim_trace(sim, "deliver %u->%u %s %s", a->from, a->node, msg->dest_module, type);
    mir_event_list l = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&l, mir_event_message_received(sim->nodes[a->from].id, msg));
    miri_sim_inject(sim, a->node, &l);
  }
  miri_sim_action_free(a);
}

/* ---- the transport module ---- */

typedef struct net_module {
  mir_sim *sim;
  size_t node;
} net_module;

static mir_err net_apply(void *state, mir_event_list *in, mir_event_list *out) {
  (void)out;
  net_module *nm = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__init__descriptor)) continue;
    if (!mir_event_is(ev, &mir__send_message__descriptor)) {
      return mir_error_set(MIR_EINVAL, "sim transport %s: unexpected event type %s", ev->dest,
                           mir_event_type_name(ev));
    }
    const Mir__SendMessage *sm = (const Mir__SendMessage *)ev->payload;
    if (sm->msg == NULL) {
      return mir_error_set(MIR_EINVAL, "sim transport %s: SendMessage without a message", ev->dest);
    }
    miri_sim_net_send(nm->sim, nm->node, sm->destinations, sm->n_destinations, sm->msg);
  }
  return MIR_OK;
}

static void net_destroy(void *state) {
  free(state);
}

static const mir_module_ops net_ops = {
    .name = "sim-transport",
    .kind = MIR_MODULE_PASSIVE,
    .apply = net_apply,
    .destroy = net_destroy,
};

mir_err mir_sim_add_transport(mir_sim *sim, size_t node, mir_node *mn, const char *id) {
  MIR_ASSERT(node < sim->cfg.nodes);
  net_module *nm = mir_xcalloc(1, sizeof *nm);
  nm->sim = sim;
  nm->node = node;
  return mir_node_add_module(mn, id, &net_ops, nm);
}

/* ---- Byzantine hooks ---- */

void mir_sim_set_byzantine(mir_sim *sim, size_t node, mir_sim_byz_fn fn, void *user) {
  MIR_ASSERT(node < sim->cfg.nodes);
  miri_sim_node *sn = &sim->nodes[node];
  sn->byz = true;
  sn->byz_fn = fn;
  sn->byz_user = user;
  sim->dl_dirty = true;
}

void mir_sim_byz_send(mir_sim_byz *byz, size_t to, Mir__PackedMessage *msg, uint64_t extra_ns) {
  if (to >= byz->sim->cfg.nodes) {
    protobuf_c_message_free_unpacked(&msg->base, NULL);
    return;
  }
  miri_sim_net_enqueue(byz->sim, byz->from, to, msg, extra_ns);
}

mir_sim_rng *mir_sim_byz_rng(mir_sim_byz *byz) {
  return &byz->sim->byz;
}

mir_sim *mir_sim_byz_sim(mir_sim_byz *byz) {
  return byz->sim;
}
