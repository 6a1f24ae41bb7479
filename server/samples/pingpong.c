/*
 * Pingpong: the smallest protocol with a timer, messages and an observer.
 *
 * On Init the module asks the timer for a PingTime event every period; each PingTime sends the
 * next Ping (sequence numbers 0, 1, 2, ...) to the peer, and each Ping from the peer is answered
 * with a Pong carrying the same number. Pings and Pongs from the peer are reported to an
 * observer module, which is how programs print progress and tests check the sequence numbers
 * without the module doing any I/O itself.
 *
 * Messages from any node other than the peer are dropped and counted. The counters live in the
 * dsl's metric set (mir_dsl_metrics), registered when the module is created, so tests and programs
 * read them through the registry from any thread while the node runs; the module itself is
 * single-threaded like every DSL module.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/metrics.h"
#include "samples.h"

typedef struct pingpong {
  char peer[MIR_MODULE_ID_MAX];
  char transport[MIR_MODULE_ID_MAX];
  char timer[MIR_MODULE_ID_MAX];
  char observer[MIR_MODULE_ID_MAX]; /* "" for none */
  uint64_t period_ms;
  uint64_t next_seq;
  /* In the dsl's metric set (valid while the dsl lives, which outlives this state's use). */
  mir_counter *pings_sent, *pings_received, *pongs_received, *dropped;
} pingpong;

/* Asks the timer for a PingTime to this module every period. Retention index 0: the repeat lasts
 * as long as the node. */
static mir_err pingpong_on_init(mir_dsl *dsl, const mir_event *ev, void *user) {
  pingpong *p = user;
  (void)ev;
  Samples__Pingpong__PingTime *tick = mir_xmalloc(sizeof(*tick));
  samples__pingpong__ping_time__init(tick);
  const char *id = mir_dsl_module_id(dsl);
  mir_event_list events = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&events, mir_event_new(id, id, &tick->base));
  mir_dsl_emit(dsl, mir_event_timer_repeat(p->timer, id, &events, p->period_ms, 0));
  return MIR_OK;
}

static mir_err pingpong_on_ping_time(mir_dsl *dsl, const mir_event *ev, void *user) {
  pingpong *p = user;
  (void)ev;
  Samples__Pingpong__Ping ping = SAMPLES__PINGPONG__PING__INIT;
  ping.seq_nr = p->next_seq++;
  const char *dest = p->peer;
  mir_dsl_send(dsl, p->transport, &dest, 1, mir_dsl_module_id(dsl), &ping.base);
  mir_counter_inc(p->pings_sent);
  return MIR_OK;
}

/* Tells the observer (if any) that a Ping or Pong with seq_nr arrived from `from`. */
static void pingpong_report(mir_dsl *dsl, const pingpong *p, Samples__Pingpong__Report__Kind kind,
                            const char *from, uint64_t seq_nr) {
  if (p->observer[0] == '\0') return;
  Samples__Pingpong__Report *r = mir_xmalloc(sizeof(*r));
  samples__pingpong__report__init(r);
  r->kind = kind;
  r->from = mir_xstrdup(from);
  r->seq_nr = seq_nr;
  mir_dsl_emit_new(dsl, p->observer, &r->base);
}

/* Only the peer plays with us; anything else is dropped (the transport names the sender). */
static bool pingpong_from_peer(pingpong *p, const char *from) {
  if (strcmp(from, p->peer) == 0) return true;
  mir_counter_inc(p->dropped);
  return false;
}

static mir_err pingpong_on_ping(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                void *user) {
  pingpong *p = user;
  if (!pingpong_from_peer(p, from)) return MIR_OK;
  const Samples__Pingpong__Ping *ping = (const Samples__Pingpong__Ping *)msg;
  mir_counter_inc(p->pings_received);
  Samples__Pingpong__Pong pong = SAMPLES__PINGPONG__PONG__INIT;
  pong.seq_nr = ping->seq_nr;
  mir_dsl_send(dsl, p->transport, &from, 1, mir_dsl_module_id(dsl), &pong.base);
  pingpong_report(dsl, p, SAMPLES__PINGPONG__REPORT__KIND__PING, from, ping->seq_nr);
  return MIR_OK;
}

static mir_err pingpong_on_pong(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                void *user) {
  pingpong *p = user;
  if (!pingpong_from_peer(p, from)) return MIR_OK;
  const Samples__Pingpong__Pong *pong = (const Samples__Pingpong__Pong *)msg;
  mir_counter_inc(p->pongs_received);
  pingpong_report(dsl, p, SAMPLES__PINGPONG__REPORT__KIND__PONG, from, pong->seq_nr);
  return MIR_OK;
}

static bool pingpong_node_id_ok(const char *id) {
  return id != NULL && id[0] != '\0' && strlen(id) < MIR_MODULE_ID_MAX;
}

static bool pingpong_module_id_ok(const char *id) {
  return id != NULL && mir_module_id_valid(id);
}

/* Registers the module's counters in the dsl's metric set. */
static void pingpong_metrics_init(pingpong *p, mir_dsl *dsl) {
  mir_metrics *m = mir_dsl_metrics(dsl);
  p->pings_sent = mir_metrics_counter(m, "mir_pingpong_pings_sent_total", "Pings sent to the peer.",
                                      NULL, NULL);
  p->pings_received = mir_metrics_counter(m, "mir_pingpong_pings_received_total",
                                          "Pings from the peer, each answered.", NULL, NULL);
  p->pongs_received = mir_metrics_counter(m, "mir_pingpong_pongs_received_total",
                                          "Pongs from the peer.", NULL, NULL);
  p->dropped =
      mir_metrics_counter(m, "mir_pingpong_dropped_messages_total",
                          "Messages from a node other than the peer, dropped.", NULL, NULL);
}

static mir_err pingpong_register(mir_dsl *dsl) {
  mir_err err = mir_dsl_upon_event(dsl, &mir__init__descriptor, pingpong_on_init);
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &samples__pingpong__ping_time__descriptor, pingpong_on_ping_time);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_message(dsl, &samples__pingpong__ping__descriptor, pingpong_on_ping);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_message(dsl, &samples__pingpong__pong__descriptor, pingpong_on_pong);
  }
  return err;
}

mir_err mir_pingpong_new(const char *module_id, const char *self, const char *peer,
                         const char *transport_id, const char *timer_id, uint64_t period_ms,
                         const char *observer_id, mir_dsl **out) {
  if (!pingpong_module_id_ok(module_id) || !pingpong_module_id_ok(transport_id) ||
      !pingpong_module_id_ok(timer_id) ||
      (observer_id != NULL && !pingpong_module_id_ok(observer_id))) {
    return mir_error_set(MIR_EINVAL, "pingpong: invalid module id");
  }
  if (!pingpong_node_id_ok(self) || !pingpong_node_id_ok(peer) || strcmp(self, peer) == 0) {
    return mir_error_set(MIR_EINVAL, "pingpong: invalid node ids (the peer must be another node)");
  }
  if (period_ms == 0) return mir_error_set(MIR_EINVAL, "pingpong: the period must be > 0");
  mir_err err = mir_samples_register_types();
  if (err != MIR_OK) return err;
  pingpong *p = mir_xcalloc(1, sizeof(*p));
  strcpy(p->peer, peer);
  strcpy(p->transport, transport_id);
  strcpy(p->timer, timer_id);
  if (observer_id != NULL) strcpy(p->observer, observer_id);
  p->period_ms = period_ms;
  mir_dsl *dsl = mir_dsl_new(module_id, p);
  mir_dsl_set_user_free(dsl, free);
  pingpong_metrics_init(p, dsl);
  err = pingpong_register(dsl);
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  *out = dsl;
  return MIR_OK;
}
