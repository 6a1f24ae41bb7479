/*
 * The echo protocol (echo.h): a fixed leader orders client values; every node echoes the first
 * proposal it sees per position; a quorum of matching echoes delivers.
 *
 * Safety rule (the whole point of the quorum): with n = 3f + 1 nodes and quorum 2f + 1, two
 * quorums share at least f + 1 nodes, at least one of them correct, and a correct node echoes
 * one value per position, so no two correct nodes deliver different values at one position, even
 * if the leader equivocates. A quorum of 2f is the planted bug: two such quorums may share only
 * faulty nodes.
 *
 * Crash recovery: a node writes its proposal, its echo and its deliveries to the store before it
 * sends or emits anything that depends on them (persist, then send), so after a restart it never
 * echoes a second value for a position nor delivers a position twice. Liveness: every tick_ms a
 * node broadcasts Status(low), its lowest undelivered position, and peers resend their proposals
 * and echoes from low on, so lost messages, partitions and crashes only delay delivery.
 *
 * Every peer message is validated (sender, position, value size) and dropped and counted if bad.
 */
#include "echo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/registry.h"

typedef struct echo_slot {
  bool proposed, echoed, delivered;
  ProtobufCBinaryData proposal, mine, done; /* owned copies */
  bool *heard;                              /* heard[i]: node i's echo arrived (lazy, n) */
  ProtobufCBinaryData *echo;                /* echo[i]: node i's value (owned) */
} echo_slot;

typedef struct echo {
  mir_echo_config cfg;
  char module[MIR_MODULE_ID_MAX], transport[MIR_MODULE_ID_MAX];
  char timer[MIR_MODULE_ID_MAX], app[MIR_MODULE_ID_MAX];
  char ids[MIR_SIM_NODES_MAX][4];
  const char *idp[MIR_SIM_NODES_MAX];
  uint64_t next_pos;                          /* leader: the next position to assign */
  uint64_t dropped;                           /* peer messages rejected at ingress */
  echo_slot slot[MIR_ECHO_POSITIONS_MAX + 1]; /* positions 1 .. MAX */
} echo;

size_t mir_echo_quorum(size_t nodes) {
  return 2 * ((nodes - 1) / 3) + 1;
}

mir_err mir_echo_register_types(void) {
  static const ProtobufCMessageDescriptor *const types[] = {
      &mirsim__echo__submit__descriptor, &mirsim__echo__deliver__descriptor,
      &mirsim__echo__tick__descriptor,   &mirsim__echo__propose__descriptor,
      &mirsim__echo__echo__descriptor,   &mirsim__echo__status__descriptor,
  };
  return mir_registry_add_all(types, sizeof types / sizeof types[0]);
}

static void echo_copy(ProtobufCBinaryData *dst, const void *data, size_t len) {
  free(dst->data);
  dst->data = mir_xmemdup(data, len);
  dst->len = len;
}

static bool echo_equal(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Node index of id, or -1 (ids are "0" .. n-1). */
static int echo_index(const echo *e, const char *id) {
  for (size_t i = 0; i < e->cfg.nodes; i++) {
    if (strcmp(e->ids[i], id) == 0) return (int)i;
  }
  return -1;
}

static void echo_free(void *p) {
  echo *e = p;
  for (size_t k = 0; k <= MIR_ECHO_POSITIONS_MAX; k++) {
    echo_slot *s = &e->slot[k];
    free(s->proposal.data);
    free(s->mine.data);
    free(s->done.data);
    if (s->echo != NULL) {
      for (size_t i = 0; i < e->cfg.nodes; i++) free(s->echo[i].data);
    }
    free(s->echo);
    free(s->heard);
  }
  free(e);
}

/* ---- persistence ---- */

static mir_err echo_persist(echo *e, char tag, uint64_t pos, const ProtobufCBinaryData *v) {
  if (e->cfg.store == NULL) return MIR_OK;
  uint8_t key[9] = {(uint8_t)tag};
  for (int i = 0; i < 8; i++) key[1 + i] = (uint8_t)(pos >> (56 - 8 * i));
  return mir_sim_store_put(e->cfg.store, key, sizeof key, v->data, v->len);
}

static bool echo_load(const echo *e, char tag, uint64_t pos, ProtobufCBinaryData *out) {
  uint8_t key[9] = {(uint8_t)tag};
  for (int i = 0; i < 8; i++) key[1 + i] = (uint8_t)(pos >> (56 - 8 * i));
  const void *v;
  size_t len;
  if (!mir_sim_store_get(e->cfg.store, key, sizeof key, &v, &len)) return false;
  echo_copy(out, v, len);
  return true;
}

/* Restores what the node promised before a crash. */
static void echo_restore(echo *e) {
  if (e->cfg.store == NULL) return;
  for (uint64_t p = 1; p <= MIR_ECHO_POSITIONS_MAX; p++) {
    echo_slot *s = &e->slot[p];
    s->proposed = echo_load(e, 'p', p, &s->proposal);
    s->echoed = echo_load(e, 'e', p, &s->mine);
    s->delivered = echo_load(e, 'd', p, &s->done);
    if (s->proposed && p >= e->next_pos) e->next_pos = p + 1;
  }
}

/* ---- sending ---- */

static void echo_send_value(mir_dsl *dsl, echo *e, const ProtobufCMessageDescriptor *type,
                            uint64_t pos, const ProtobufCBinaryData *v, const char *const *to,
                            size_t n) {
  if (type == &mirsim__echo__propose__descriptor) {
    Mirsim__Echo__Propose m = MIRSIM__ECHO__PROPOSE__INIT;
    m.position = pos;
    m.value = *v;
    mir_dsl_send(dsl, e->transport, to, n, e->module, &m.base);
  } else {
    Mirsim__Echo__Echo m = MIRSIM__ECHO__ECHO__INIT;
    m.position = pos;
    m.value = *v;
    mir_dsl_send(dsl, e->transport, to, n, e->module, &m.base);
  }
}

/* ---- handlers ---- */

static mir_err echo_on_init(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)ev;
  echo *e = user;
  echo_restore(e);
  Mirsim__Echo__Tick *tick = mir_xmalloc(sizeof *tick);
  mirsim__echo__tick__init(tick);
  mir_event_list events = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&events, mir_event_new(e->module, e->module, &tick->base));
  mir_dsl_emit(dsl, mir_event_timer_repeat(e->timer, e->module, &events, e->cfg.tick_ms, 0));
  return MIR_OK;
}

static mir_err echo_on_submit(mir_dsl *dsl, const mir_event *ev, void *user) {
  echo *e = user;
  const Mirsim__Echo__Submit *sub = (const Mirsim__Echo__Submit *)ev->payload;
  if (e->cfg.self != e->cfg.leader || sub->value.len == 0 ||
      sub->value.len > MIR_ECHO_VALUE_BYTES_MAX || e->next_pos > MIR_ECHO_POSITIONS_MAX) {
    e->dropped++;
    return MIR_OK;
  }
  for (uint64_t p = 1; p < e->next_pos; p++) {
    if (e->slot[p].proposed && echo_equal(&e->slot[p].proposal, &sub->value)) return MIR_OK;
  }
  uint64_t pos = e->next_pos++;
  echo_slot *s = &e->slot[pos];
  echo_copy(&s->proposal, sub->value.data, sub->value.len);
  s->proposed = true;
  mir_err err = echo_persist(e, 'p', pos, &s->proposal);
  if (err != MIR_OK) return err;
  echo_send_value(dsl, e, &mirsim__echo__propose__descriptor, pos, &s->proposal, e->idp,
                  e->cfg.nodes);
  return MIR_OK;
}

/* Validates a (position, value) pair from a peer. */
static bool echo_valid(uint64_t pos, const ProtobufCBinaryData *v) {
  return pos >= 1 && pos <= MIR_ECHO_POSITIONS_MAX && v->len > 0 &&
         v->len <= MIR_ECHO_VALUE_BYTES_MAX;
}

static mir_err echo_on_propose(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                               void *user) {
  echo *e = user;
  const Mirsim__Echo__Propose *p = (const Mirsim__Echo__Propose *)msg;
  if (echo_index(e, from) != (int)e->cfg.leader || !echo_valid(p->position, &p->value)) {
    e->dropped++;
    return MIR_OK;
  }
  echo_slot *s = &e->slot[p->position];
  if (s->echoed) return MIR_OK; /* echo once per position, whatever the leader sends next */
  echo_copy(&s->mine, p->value.data, p->value.len);
  s->echoed = true;
  mir_err err = echo_persist(e, 'e', p->position, &s->mine);
  if (err != MIR_OK) return err;
  echo_send_value(dsl, e, &mirsim__echo__echo__descriptor, p->position, &s->mine, e->idp,
                  e->cfg.nodes);
  return MIR_OK;
}

/* Delivers position pos with value v if a quorum of echoes matches it. */
static mir_err echo_try_deliver(mir_dsl *dsl, echo *e, uint64_t pos, const ProtobufCBinaryData *v) {
  echo_slot *s = &e->slot[pos];
  size_t matching = 0;
  for (size_t i = 0; i < e->cfg.nodes; i++) {
    if (s->heard[i] && echo_equal(&s->echo[i], v)) matching++;
  }
  if (s->delivered || matching < e->cfg.quorum) return MIR_OK;
  s->delivered = true;
  echo_copy(&s->done, v->data, v->len);
  mir_err err = echo_persist(e, 'd', pos, &s->done);
  if (err != MIR_OK) return err;
  Mirsim__Echo__Deliver *d = mir_xmalloc(sizeof *d);
  mirsim__echo__deliver__init(d);
  d->position = pos;
  d->value.data = mir_xmemdup(v->data, v->len);
  d->value.len = v->len;
  mir_dsl_emit_new(dsl, e->app, &d->base);
  return MIR_OK;
}

static mir_err echo_on_echo(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                            void *user) {
  echo *e = user;
  const Mirsim__Echo__Echo *m = (const Mirsim__Echo__Echo *)msg;
  int i = echo_index(e, from);
  if (i < 0 || !echo_valid(m->position, &m->value)) {
    e->dropped++;
    return MIR_OK;
  }
  echo_slot *s = &e->slot[m->position];
  if (s->heard == NULL) {
    s->heard = mir_xcalloc(e->cfg.nodes, sizeof *s->heard);
    s->echo = mir_xcalloc(e->cfg.nodes, sizeof *s->echo);
  }
  if (s->heard[i]) return MIR_OK; /* first echo of each node counts */
  s->heard[i] = true;
  echo_copy(&s->echo[i], m->value.data, m->value.len);
  return echo_try_deliver(dsl, e, m->position, &s->echo[i]);
}

static mir_err echo_on_tick(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)ev;
  echo *e = user;
  Mirsim__Echo__Status st = MIRSIM__ECHO__STATUS__INIT;
  st.low = 1;
  while (st.low <= MIR_ECHO_POSITIONS_MAX && e->slot[st.low].delivered) st.low++;
  mir_dsl_send(dsl, e->transport, e->idp, e->cfg.nodes, e->module, &st.base);
  return MIR_OK;
}

static mir_err echo_on_status(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                              void *user) {
  echo *e = user;
  const Mirsim__Echo__Status *st = (const Mirsim__Echo__Status *)msg;
  int i = echo_index(e, from);
  if (i < 0 || st->low < 1 || st->low > MIR_ECHO_POSITIONS_MAX + 1) {
    e->dropped++;
    return MIR_OK;
  }
  const char *to = e->ids[i];
  for (uint64_t p = st->low; p < st->low + MIR_ECHO_RESEND_MAX && p <= MIR_ECHO_POSITIONS_MAX;
       p++) {
    echo_slot *s = &e->slot[p];
    if (e->cfg.self == e->cfg.leader && s->proposed) {
      echo_send_value(dsl, e, &mirsim__echo__propose__descriptor, p, &s->proposal, &to, 1);
    }
    if (s->echoed) echo_send_value(dsl, e, &mirsim__echo__echo__descriptor, p, &s->mine, &to, 1);
  }
  return MIR_OK;
}

/* ---- construction ---- */

static mir_err echo_register(mir_dsl *dsl) {
  mir_err err = mir_dsl_upon_event(dsl, &mir__init__descriptor, echo_on_init);
  if (!err) err = mir_dsl_upon_event(dsl, &mirsim__echo__submit__descriptor, echo_on_submit);
  if (!err) err = mir_dsl_upon_event(dsl, &mirsim__echo__tick__descriptor, echo_on_tick);
  if (!err) err = mir_dsl_upon_message(dsl, &mirsim__echo__propose__descriptor, echo_on_propose);
  if (!err) err = mir_dsl_upon_message(dsl, &mirsim__echo__echo__descriptor, echo_on_echo);
  if (!err) err = mir_dsl_upon_message(dsl, &mirsim__echo__status__descriptor, echo_on_status);
  return err;
}

mir_err mir_echo_new(const mir_echo_config *cfg, mir_dsl **out) {
  if (cfg->nodes == 0 || cfg->nodes > MIR_SIM_NODES_MAX || cfg->self >= cfg->nodes ||
      cfg->leader >= cfg->nodes || cfg->quorum == 0 || cfg->tick_ms == 0 ||
      !mir_module_id_valid(cfg->module_id) || !mir_module_id_valid(cfg->transport_id) ||
      !mir_module_id_valid(cfg->timer_id) || !mir_module_id_valid(cfg->app_id)) {
    return mir_error_set(MIR_EINVAL, "echo: invalid config");
  }
  mir_err err = mir_echo_register_types();
  if (err != MIR_OK) return err;
  echo *e = mir_xcalloc(1, sizeof *e);
  e->cfg = *cfg;
  snprintf(e->module, sizeof e->module, "%s", cfg->module_id);
  snprintf(e->transport, sizeof e->transport, "%s", cfg->transport_id);
  snprintf(e->timer, sizeof e->timer, "%s", cfg->timer_id);
  snprintf(e->app, sizeof e->app, "%s", cfg->app_id);
  for (size_t i = 0; i < cfg->nodes; i++) {
    snprintf(e->ids[i], sizeof e->ids[i], "%u", (unsigned)(i % 100));
    e->idp[i] = e->ids[i];
  }
  e->next_pos = 1;
  mir_dsl *dsl = mir_dsl_new(e->module, e);
  mir_dsl_set_user_free(dsl, echo_free);
  err = echo_register(dsl);
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  *out = dsl;
  return MIR_OK;
}

mir_event *mir_echo_submit(const char *dest, const void *value, size_t len) {
  Mirsim__Echo__Submit *s = mir_xmalloc(sizeof *s);
  mirsim__echo__submit__init(s);
  s->value.data = mir_xmemdup(value, len);
  s->value.len = len;
  return mir_event_new(dest, NULL, &s->base);
}
