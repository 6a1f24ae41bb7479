/*
 * Byzantine consistent broadcast with signed echoes (M. Reiter, "Secure agreement protocols:
 * reliable and atomic group multicast in Rampart", CCS 1994; the "signed echo broadcast" of
 * Cachin, Guerraoui and Rodrigues, Introduction to Reliable and Secure Distributed Programming,
 * section 3.11).
 *
 * N members, f = (N - 1) / 3 of them possibly Byzantine, quorum Q = floor((N + f) / 2) + 1.
 *  1. The leader sends Start(data) to every member.
 *  2. A member signs [instance, "ECHO", data] for the first Start from the leader and sends the
 *     signature to the leader in an Echo (it echoes at most once per instance).
 *  3. The leader verifies the first Echo of each member; with Q valid echoes it sends
 *     Final(data, signers, signatures) to every member.
 *  4. A member verifies a Final from the leader (Q or more distinct member signers, every
 *     signature over [instance, "ECHO", data]) and delivers data once.
 * Consistency: two certificates for different data would need two quorums of echoes; any two
 * quorums share more than f members, so a correct member would have echoed twice, which it never
 * does. Hence no two correct members deliver different data, whatever the leader does.
 *
 * Every peer message is checked before it costs anything (sender is the leader or a member,
 * sizes, signer ids unique and members, counts) and dropped and counted if bad. At most one
 * signing, N echo verifications and one Final verification are in flight, so the number of
 * contexts is bounded by N + 2.
 *
 * The counters (drops, echoes, rejected Finals, stale responses, the delivery) live in the dsl's
 * metric set, registered when the module is created; tests read them through the registry.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/crypto.pb-c.h"
#include "mir/metrics.h"
#include "samples.h"

#define BCB_ECHO_TAG "ECHO"

typedef enum bcb_ctx_kind { BCB_CTX_SIGN, BCB_CTX_ECHO, BCB_CTX_FINAL } bcb_ctx_kind;

/* What a crypto request needs to find again when its response arrives. */
typedef struct bcb_ctx {
  bcb_ctx_kind kind;
  size_t signer;           /* BCB_CTX_ECHO: the member whose echo is verified */
  ProtobufCBinaryData buf; /* ECHO: the signature; FINAL: the certified data (owned) */
} bcb_ctx;

typedef struct bcb {
  char *instance;
  char **nodes;
  size_t n, self, leader, quorum;
  char transport[MIR_MODULE_ID_MAX];
  char crypto[MIR_MODULE_ID_MAX];
  char consumer[MIR_MODULE_ID_MAX];

  ProtobufCBinaryData data; /* leader: what it broadcasts (owned) */
  bool have_request;
  bool echo_requested, sent_echo, sent_final, final_pending, delivered;
  bool *echo_seen;               /* leader: first echo of member i was taken */
  ProtobufCBinaryData *echo_sig; /* leader: member i's verified signature (owned), or empty */
  size_t n_valid;

  /* In the dsl's metric set (it outlives every handler call). */
  mir_counter *dropped, *echoes_valid, *echoes_invalid, *finals_rejected, *stale, *deliveries;
} bcb;

size_t mir_bcb_quorum(size_t n_nodes) {
  size_t f = n_nodes > 0 ? (n_nodes - 1) / 3 : 0;
  return (n_nodes + f) / 2 + 1;
}

/* Index of node id among the members, or SIZE_MAX. */
static size_t bcb_member(const bcb *b, const char *id) {
  for (size_t i = 0; i < b->n; i++) {
    if (strcmp(b->nodes[i], id) == 0) return i;
  }
  return SIZE_MAX;
}

/* Drops a peer's message: counted, never an error. */
static mir_err bcb_drop(bcb *b) {
  mir_counter_inc(b->dropped);
  return MIR_OK;
}

static void bcb_ctx_free(void *p) {
  bcb_ctx *c = p;
  free(c->buf.data);
  free(c);
}

/* Stores a context and returns its id through *id; the context is freed on failure. */
static mir_err bcb_store(mir_dsl *dsl, bcb_ctx_kind kind, size_t signer, ProtobufCBinaryData buf,
                         uint64_t *id) {
  bcb_ctx *c = mir_xcalloc(1, sizeof(*c));
  c->kind = kind;
  c->signer = signer;
  c->buf.len = buf.len;
  c->buf.data = mir_xmemdup(buf.data, buf.len);
  return mir_dsl_store_context(dsl, c, bcb_ctx_free, id);
}

/* Fills parts (three, borrowed from b and data) with what an echo signs. */
static void bcb_echo_parts(const bcb *b, ProtobufCBinaryData data, ProtobufCBinaryData parts[3]) {
  parts[0].data = (uint8_t *)b->instance;
  parts[0].len = strlen(b->instance);
  parts[1].data = (uint8_t *)BCB_ECHO_TAG;
  parts[1].len = strlen(BCB_ECHO_TAG);
  parts[2] = data;
}

/* Returns an owned array of the three parts, each copied (for a request payload). */
static ProtobufCBinaryData *bcb_echo_parts_copy(const bcb *b, ProtobufCBinaryData data) {
  ProtobufCBinaryData parts[3];
  bcb_echo_parts(b, data, parts);
  ProtobufCBinaryData *copy = mir_xmalloc(3 * sizeof(*copy));
  for (int i = 0; i < 3; i++) {
    copy[i].len = parts[i].len;
    copy[i].data = mir_xmemdup(parts[i].data, parts[i].len);
  }
  return copy;
}

static void bcb_send_all(mir_dsl *dsl, const bcb *b, const ProtobufCMessage *msg) {
  mir_dsl_send(dsl, b->transport, (const char *const *)b->nodes, b->n, mir_dsl_module_id(dsl), msg);
}

/* ---- 1. the leader starts ---- */

static mir_err bcb_on_request(mir_dsl *dsl, const mir_event *ev, void *user) {
  bcb *b = user;
  const Samples__Bcb__BroadcastRequest *req = (const Samples__Bcb__BroadcastRequest *)ev->payload;
  if (b->self != b->leader || b->have_request || req->data.len > MIR_BCB_DATA_BYTES_MAX) {
    return mir_error_set(MIR_EINVAL,
                         "%s: BroadcastRequest from %s refused (not the leader, a second "
                         "request, or more than %zu bytes)",
                         mir_dsl_module_id(dsl), ev->src, MIR_BCB_DATA_BYTES_MAX);
  }
  b->have_request = true;
  b->data.len = req->data.len;
  b->data.data = mir_xmemdup(req->data.data, req->data.len);
  Samples__Bcb__StartMessage start = SAMPLES__BCB__START_MESSAGE__INIT;
  start.data = b->data;
  bcb_send_all(dsl, b, &start.base);
  return MIR_OK;
}

/* ---- 2. members echo ---- */

static mir_err bcb_on_start(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                            void *user) {
  bcb *b = user;
  const Samples__Bcb__StartMessage *start = (const Samples__Bcb__StartMessage *)msg;
  if (strcmp(from, b->nodes[b->leader]) != 0 || start->data.len > MIR_BCB_DATA_BYTES_MAX) {
    return bcb_drop(b);
  }
  if (b->echo_requested) return MIR_OK; /* echo once, whatever the leader sends next */
  b->echo_requested = true;
  uint64_t id;
  mir_err err = bcb_store(dsl, BCB_CTX_SIGN, 0, (ProtobufCBinaryData){0, NULL}, &id);
  if (err != MIR_OK) return err;
  Mir__SignRequest *req = mir_xmalloc(sizeof(*req));
  mir__sign_request__init(req);
  req->n_data = 3;
  req->data = bcb_echo_parts_copy(b, start->data);
  req->origin = mir_dsl_origin_new(dsl, id);
  mir_dsl_emit_new(dsl, b->crypto, &req->base);
  return MIR_OK;
}

/* The context of a crypto response, if it is ours and of the expected kind; else NULL (counted
 * as stale). The context is disposed at the end of the batch. */
static bcb_ctx *bcb_response_ctx(mir_dsl *dsl, bcb *b, const Mir__Origin *o, bcb_ctx_kind kind) {
  bcb_ctx *c = o != NULL ? mir_dsl_context(dsl, o->context_id) : NULL;
  if (c == NULL || c->kind != kind) {
    mir_counter_inc(b->stale);
    return NULL;
  }
  mir_dsl_dispose_context(dsl, o->context_id);
  return c;
}

static mir_err bcb_on_sign_result(mir_dsl *dsl, const mir_event *ev, void *user) {
  bcb *b = user;
  const Mir__SignResult *res = (const Mir__SignResult *)ev->payload;
  if (bcb_response_ctx(dsl, b, res->origin, BCB_CTX_SIGN) == NULL || b->sent_echo) return MIR_OK;
  b->sent_echo = true;
  Samples__Bcb__EchoMessage echo = SAMPLES__BCB__ECHO_MESSAGE__INIT;
  echo.signature = res->signature;
  const char *leader = b->nodes[b->leader];
  mir_dsl_send(dsl, b->transport, &leader, 1, mir_dsl_module_id(dsl), &echo.base);
  return MIR_OK;
}

/* ---- 3. the leader collects echoes ---- */

static mir_err bcb_on_echo(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                           void *user) {
  bcb *b = user;
  const Samples__Bcb__EchoMessage *echo = (const Samples__Bcb__EchoMessage *)msg;
  size_t i = bcb_member(b, from);
  if (b->self != b->leader || !b->have_request || i == SIZE_MAX || echo->signature.len == 0 ||
      echo->signature.len > MIR_BCB_SIGNATURE_BYTES_MAX) {
    return bcb_drop(b);
  }
  if (b->echo_seen[i]) return bcb_drop(b); /* only a member's first echo counts */
  b->echo_seen[i] = true;
  uint64_t id;
  mir_err err = bcb_store(dsl, BCB_CTX_ECHO, i, echo->signature, &id);
  if (err != MIR_OK) return err;
  Mir__VerifyRequest *req = mir_xmalloc(sizeof(*req));
  mir__verify_request__init(req);
  req->n_data = 3;
  req->data = bcb_echo_parts_copy(b, b->data);
  req->signature.len = echo->signature.len;
  req->signature.data = mir_xmemdup(echo->signature.data, echo->signature.len);
  req->node_id = mir_xstrdup(from);
  req->origin = mir_dsl_origin_new(dsl, id);
  mir_dsl_emit_new(dsl, b->crypto, &req->base);
  return MIR_OK;
}

static mir_err bcb_on_verify_result(mir_dsl *dsl, const mir_event *ev, void *user) {
  bcb *b = user;
  const Mir__VerifyResult *res = (const Mir__VerifyResult *)ev->payload;
  bcb_ctx *c = bcb_response_ctx(dsl, b, res->origin, BCB_CTX_ECHO);
  if (c == NULL) return MIR_OK;
  if (!res->ok) {
    mir_counter_inc(b->echoes_invalid);
    return MIR_OK;
  }
  mir_counter_inc(b->echoes_valid);
  if (b->echo_sig[c->signer].data == NULL) {
    b->echo_sig[c->signer].len = c->buf.len;
    b->echo_sig[c->signer].data = mir_xmemdup(c->buf.data, c->buf.len);
    b->n_valid++;
  }
  return MIR_OK;
}

/* After every batch: once the leader holds a quorum of valid echoes, it certifies the data. The
 * signers go out in membership order, so the Final is the same in every run. */
static mir_err bcb_check_final(mir_dsl *dsl, void *user) {
  bcb *b = user;
  if (b->self != b->leader || b->sent_final || b->n_valid < b->quorum) return MIR_OK;
  b->sent_final = true;
  Samples__Bcb__FinalMessage fin = SAMPLES__BCB__FINAL_MESSAGE__INIT;
  fin.data = b->data;
  fin.signers = mir_xmalloc(b->n_valid * sizeof(*fin.signers));
  fin.signatures = mir_xmalloc(b->n_valid * sizeof(*fin.signatures));
  for (size_t i = 0; i < b->n; i++) {
    if (b->echo_sig[i].data == NULL) continue;
    fin.signers[fin.n_signers++] = b->nodes[i];
    fin.signatures[fin.n_signatures++] = b->echo_sig[i];
  }
  bcb_send_all(dsl, b, &fin.base);
  free(fin.signers);
  free(fin.signatures);
  return MIR_OK;
}

/* ---- 4. members verify the certificate and deliver ---- */

/* True if fin is a well-formed certificate: a quorum of distinct members, one bounded signature
 * each. Says nothing about the signatures themselves. */
static bool bcb_final_well_formed(const bcb *b, const Samples__Bcb__FinalMessage *fin) {
  if (fin->n_signers != fin->n_signatures || fin->n_signers < b->quorum || fin->n_signers > b->n ||
      fin->data.len > MIR_BCB_DATA_BYTES_MAX) {
    return false;
  }
  bool seen[MIR_BCB_NODES_MAX] = {false};
  for (size_t k = 0; k < fin->n_signers; k++) {
    size_t i = bcb_member(b, fin->signers[k]);
    size_t len = fin->signatures[k].len;
    if (i == SIZE_MAX || seen[i] || len == 0 || len > MIR_BCB_SIGNATURE_BYTES_MAX) return false;
    seen[i] = true;
  }
  return true;
}

static Mir__SignedData *bcb_signed_data(const bcb *b, const Samples__Bcb__FinalMessage *fin,
                                        size_t k) {
  Mir__SignedData *it = mir_xmalloc(sizeof(*it));
  mir__signed_data__init(it);
  it->n_data = 3;
  it->data = bcb_echo_parts_copy(b, fin->data);
  it->signature.len = fin->signatures[k].len;
  it->signature.data = mir_xmemdup(fin->signatures[k].data, fin->signatures[k].len);
  it->node_id = mir_xstrdup(fin->signers[k]);
  return it;
}

static mir_err bcb_on_final(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                            void *user) {
  bcb *b = user;
  const Samples__Bcb__FinalMessage *fin = (const Samples__Bcb__FinalMessage *)msg;
  if (strcmp(from, b->nodes[b->leader]) != 0 || !bcb_final_well_formed(b, fin)) {
    return bcb_drop(b);
  }
  /* One verification at a time: a leader flooding Finals cannot pile up requests. */
  if (b->delivered || b->final_pending) return bcb_drop(b);
  uint64_t id;
  mir_err err = bcb_store(dsl, BCB_CTX_FINAL, 0, fin->data, &id);
  if (err != MIR_OK) return err;
  b->final_pending = true;
  Mir__VerifyManyRequest *req = mir_xmalloc(sizeof(*req));
  mir__verify_many_request__init(req);
  req->n_items = fin->n_signers;
  req->items = mir_xmalloc(req->n_items * sizeof(*req->items));
  for (size_t k = 0; k < req->n_items; k++) req->items[k] = bcb_signed_data(b, fin, k);
  req->origin = mir_dsl_origin_new(dsl, id);
  mir_dsl_emit_new(dsl, b->crypto, &req->base);
  return MIR_OK;
}

static mir_err bcb_on_verify_many_result(mir_dsl *dsl, const mir_event *ev, void *user) {
  bcb *b = user;
  const Mir__VerifyManyResult *res = (const Mir__VerifyManyResult *)ev->payload;
  bcb_ctx *c = bcb_response_ctx(dsl, b, res->origin, BCB_CTX_FINAL);
  if (c == NULL) return MIR_OK;
  b->final_pending = false;
  if (!res->all_ok) {
    mir_counter_inc(b->finals_rejected);
    return MIR_OK;
  }
  if (b->delivered) return MIR_OK;
  b->delivered = true;
  mir_counter_inc(b->deliveries);
  Samples__Bcb__Deliver *d = mir_xmalloc(sizeof(*d));
  samples__bcb__deliver__init(d);
  d->data.len = c->buf.len;
  d->data.data = mir_xmemdup(c->buf.data, c->buf.len);
  mir_dsl_emit_new(dsl, b->consumer, &d->base);
  return MIR_OK;
}

/* ---- construction ---- */

static void bcb_free(void *p) {
  bcb *b = p;
  for (size_t i = 0; i < b->n; i++) {
    free(b->nodes[i]);
    free(b->echo_sig[i].data);
  }
  free(b->nodes);
  free(b->echo_sig);
  free(b->echo_seen);
  free(b->data.data);
  free(b->instance);
  free(b);
}

static bool bcb_module_id_ok(const char *id) {
  return id != NULL && mir_module_id_valid(id);
}

/* Checks cfg: valid module ids, 1..MIR_BCB_NODES_MAX distinct members, leader and self members. */
static mir_err bcb_config_check(const mir_bcb_config *cfg) {
  if (!bcb_module_id_ok(cfg->module_id) || !bcb_module_id_ok(cfg->transport_id) ||
      !bcb_module_id_ok(cfg->crypto_id) || !bcb_module_id_ok(cfg->consumer_id)) {
    return mir_error_set(MIR_EINVAL, "bcb: invalid module id");
  }
  if (cfg->instance_id == NULL || strlen(cfg->instance_id) > MIR_BCB_INSTANCE_BYTES_MAX) {
    return mir_error_set(MIR_EINVAL, "bcb: instance id missing or longer than %d bytes",
                         MIR_BCB_INSTANCE_BYTES_MAX);
  }
  if (cfg->n_nodes == 0 || cfg->n_nodes > MIR_BCB_NODES_MAX || cfg->nodes == NULL) {
    return mir_error_set(MIR_EINVAL, "bcb: 1 to %d members needed", MIR_BCB_NODES_MAX);
  }
  bool self_in = false, leader_in = false;
  for (size_t i = 0; i < cfg->n_nodes; i++) {
    const char *id = cfg->nodes[i];
    if (id == NULL || id[0] == '\0' || strlen(id) >= MIR_MODULE_ID_MAX) {
      return mir_error_set(MIR_EINVAL, "bcb: invalid node id at position %zu", i);
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(cfg->nodes[j], id) == 0) return mir_error_set(MIR_EINVAL, "bcb: %s twice", id);
    }
    self_in = self_in || (cfg->self != NULL && strcmp(cfg->self, id) == 0);
    leader_in = leader_in || (cfg->leader != NULL && strcmp(cfg->leader, id) == 0);
  }
  if (!self_in || !leader_in)
    return mir_error_set(MIR_EINVAL, "bcb: self and leader must be members");
  return MIR_OK;
}

static bcb *bcb_state_new(const mir_bcb_config *cfg) {
  bcb *b = mir_xcalloc(1, sizeof(*b));
  b->instance = mir_xstrdup(cfg->instance_id);
  b->n = cfg->n_nodes;
  b->nodes = mir_xcalloc(b->n, sizeof(*b->nodes));
  for (size_t i = 0; i < b->n; i++) b->nodes[i] = mir_xstrdup(cfg->nodes[i]);
  b->self = bcb_member(b, cfg->self);
  b->leader = bcb_member(b, cfg->leader);
  b->quorum = mir_bcb_quorum(b->n);
  strcpy(b->transport, cfg->transport_id);
  strcpy(b->crypto, cfg->crypto_id);
  strcpy(b->consumer, cfg->consumer_id);
  b->echo_seen = mir_xcalloc(b->n, sizeof(*b->echo_seen));
  b->echo_sig = mir_xcalloc(b->n, sizeof(*b->echo_sig));
  return b;
}

static mir_err bcb_register(mir_dsl *dsl) {
  mir_err err =
      mir_dsl_upon_event(dsl, &samples__bcb__broadcast_request__descriptor, bcb_on_request);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &mir__sign_result__descriptor, bcb_on_sign_result);
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &mir__verify_result__descriptor, bcb_on_verify_result);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &mir__verify_many_result__descriptor, bcb_on_verify_many_result);
  }
  if (err == MIR_OK)
    err = mir_dsl_upon_message(dsl, &samples__bcb__start_message__descriptor, bcb_on_start);
  if (err == MIR_OK)
    err = mir_dsl_upon_message(dsl, &samples__bcb__echo_message__descriptor, bcb_on_echo);
  if (err == MIR_OK)
    err = mir_dsl_upon_message(dsl, &samples__bcb__final_message__descriptor, bcb_on_final);
  if (err == MIR_OK) err = mir_dsl_after_batch(dsl, bcb_check_final);
  return err;
}

/* Registers the module's counters in the dsl's metric set. */
static void bcb_metrics_init(bcb *b, mir_dsl *dsl) {
  mir_metrics *m = mir_dsl_metrics(dsl);
  b->dropped = mir_metrics_counter(
      m, "mir_bcb_dropped_messages_total",
      "Peer messages rejected at ingress (sender, sizes, counts, ids).", NULL, NULL);
  b->echoes_valid = mir_metrics_counter(m, "mir_bcb_echoes_valid_total",
                                        "Leader: echoes whose signature verified.", NULL, NULL);
  b->echoes_invalid =
      mir_metrics_counter(m, "mir_bcb_echoes_invalid_total",
                          "Leader: echoes whose signature did not verify.", NULL, NULL);
  b->finals_rejected =
      mir_metrics_counter(m, "mir_bcb_finals_rejected_total",
                          "Final certificates that failed verification.", NULL, NULL);
  b->stale = mir_metrics_counter(m, "mir_bcb_stale_responses_total",
                                 "Crypto responses for unknown contexts, ignored.", NULL, NULL);
  b->deliveries = mir_metrics_counter(m, "mir_bcb_deliveries_total",
                                      "Deliveries of the instance (at most one).", NULL, NULL);
}

mir_err mir_bcb_new(const mir_bcb_config *cfg, mir_dsl **out) {
  mir_err err = bcb_config_check(cfg);
  if (err == MIR_OK) err = mir_samples_register_types();
  if (err != MIR_OK) return err;
  bcb *b = bcb_state_new(cfg);
  mir_dsl *dsl = mir_dsl_new(cfg->module_id, b);
  mir_dsl_set_user_free(dsl, bcb_free);
  bcb_metrics_init(b, dsl);
  err = bcb_register(dsl);
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  *out = dsl;
  return MIR_OK;
}

mir_event *mir_bcb_broadcast_request(const char *dest, const char *src, const void *data,
                                     size_t len) {
  Samples__Bcb__BroadcastRequest *req = mir_xmalloc(sizeof(*req));
  samples__bcb__broadcast_request__init(req);
  req->data.len = len;
  req->data.data = mir_xmemdup(data, len);
  return mir_event_new(dest, src, &req->base);
}
