/*
 * Trantor's ingress of peer messages under a Byzantine sender, driven by fuzz bytes.
 *
 * The setup: four replicas ("0".."3", unit weights, f = 1) run Trantor's modules as wired by
 * trantor_system_add_modules, with the simulator's transport, timer and fake crypto, on a fixed
 * schedule seed (chosen by the input's first byte among four). Every replica is submitted the same
 * four transactions (one per client) over the first 60 ms; while the input plays, PBFT instances,
 * checkpoints and epochs are live, with batches and empty proposals. Replica 3 is the Byzantine
 * one: it runs the honest modules (the cluster keeps its quorum) and its outgoing messages are kept
 * in a ring for replay. The transport is authenticated, so every injected message comes from "3".
 *
 * The input after the first byte is a sequence of records, each starting with an op byte:
 *  - op % 4 == 0: let the cluster run for 1..32 ms of virtual time (next byte), so that later
 *    messages meet instances in other states; injections stop after FZ_INJECT_MS.
 *  - otherwise a message, injected at once into a correct replica (or all three), read as: target
 *    byte, destination byte (a table of real module ids: iss, ordering/<e>/<i> and checkpoint/<e>
 *    of the current and later epochs, the other modules, ids that no module owns, or an ordering
 *    or checkpoint id with numbers taken from the input), type byte (every message type a Trantor
 *    module handles, then types of events and unknown names that no module accepts as a
 *    message), and a body by mode ((op >> 2) % 4):
 *      0: raw input bytes under the chosen type name;
 *      1: a structurally valid message of the chosen type whose fields come from the input, with
 *         plausible sns and views near the live ones, certificates that are real batches,
 *         digests of those certificates and signatures that verify (replica 3's own, made as the
 *         simulator's crypto makes them), mixed with extreme and malformed values;
 *      2: a recent real message of replica 3, possibly to another destination;
 *      3: the same with a few bytes flipped or the data truncated.
 * Messages the transport would refuse (invalid destination, empty type name) are not injected.
 *
 * After the records, the run goes on until every transaction is delivered by the correct
 * replicas or FZ_LIVENESS_MS of virtual time pass. The check: the simulator saw no node stop (any
 * module error stops a node, and the simulator fails the run), no two correct replicas delivered
 * different transactions at one position, and every transaction submitted to a correct replica
 * was delivered by all of them; the correct replicas' application states are then equal. A
 * Byzantine peer can delay progress through view changes but must not prevent it.
 *
 * Everything is deterministic: the same input gives the same run. Memory for the messages being
 * built comes from a per-run arena (messages are packed before the arena is reused), so that
 * builders need no frees.
 */
#include "trantor_ingress_harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/event.h"
#include "mir/sim.h"
#include "pbft.h"
#include "trantor_common.h"
#include "trantor_system.h"

#define FZ_NODES 4
#define FZ_BYZ 3         /* the Byzantine replica */
#define FZ_TXS 4         /* transactions, each submitted to every replica */
#define FZ_TX_GAP_MS 20  /* between submissions */
#define FZ_START_MS 20   /* the run before the first record: instances exist */
#define FZ_INJECT_MS 500 /* records are played until this virtual time */
#define FZ_LIVENESS_MS 10000
#define FZ_RECORDS_MAX 64
#define FZ_RING 32           /* replica 3's recent messages kept for replay */
#define FZ_ENTRIES_MAX 4     /* entries of any repeated field built from the input */
#define FZ_ARENA_BYTES 65536 /* far above what FZ_ENTRIES_MAX entries of any type take */
#define FZ_EPOCH_SNS 16      /* 4 segments of segment_length 4 */
#define FZ_SIG_BYTES MIR_SIM_SIG_LEN

typedef struct fz_app {
  mir_sim *sim;
  size_t node;
  uint64_t txs;
  uint8_t state[32];
} fz_app;

typedef struct fz_run {
  trantor_params params;
  Trantor__Membership m;
  Trantor__Member members[FZ_NODES];
  Trantor__Member *member_ptrs[FZ_NODES];
  fz_app apps[FZ_NODES];
  mir_sim *sim;
  Mir__PackedMessage *ring[FZ_RING]; /* owned */
  size_t ring_len, ring_next;
  const uint8_t *in; /* the unread input (borrowed) */
  size_t in_len;
  uint64_t epoch_hint; /* the epoch of the current destination */
  uint8_t arena[FZ_ARENA_BYTES];
  size_t arena_used;
} fz_run;

static const char *const fz_ids[FZ_NODES] = {"0", "1", "2", "3"};

/* ---- the application: a running hash of the delivered transactions ----
 *
 * Deliveries are reported to the simulator's checkers by identity (client id and tx_no), not by
 * data: clients do not sign their transactions in this version, so a Byzantine leader can propose
 * a transaction of a real client with other data, which the replicas then order in its place
 * (sc_trantor_byz.c). The correct replicas must still agree on the data, which the hash shows. */

static void fz_hash_into(uint8_t state[32], const uint8_t *data, size_t len) {
  const uint8_t *parts[2] = {state, data};
  size_t lens[2] = {32, len};
  uint8_t out[32];
  trantor_hash_reference(parts, lens, 2, out);
  memcpy(state, out, 32);
}

static mir_err fz_apply(void *user, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs,
                        size_t n) {
  (void)sn;
  (void)epoch;
  fz_app *a = user;
  for (size_t i = 0; i < n; i++) {
    char id[MIR_SIM_VALUE_BYTES_MAX];
    int len = snprintf(id, sizeof id, "%s:%" PRIu64, txs[i]->client_id, txs[i]->tx_no);
    size_t id_len = len < (int)sizeof id ? (size_t)len : sizeof id - 1;
    mir_sim_report_delivery(a->sim, a->node, a->txs++, id, id_len);
    fz_hash_into(a->state, txs[i]->data.data, txs[i]->data.len);
  }
  return MIR_OK;
}

/* The state is the running hash followed by the transaction count (8 bytes, little endian). */
static mir_err fz_snapshot(void *user, uint64_t epoch, uint64_t sn, uint8_t **data, size_t *len) {
  (void)epoch;
  (void)sn;
  fz_app *a = user;
  *data = mir_xmalloc(40);
  memcpy(*data, a->state, 32);
  for (int i = 0; i < 8; i++) (*data)[32 + i] = (uint8_t)(a->txs >> (8 * i));
  *len = 40;
  return MIR_OK;
}

static mir_err fz_restore(void *user, const uint8_t *data, size_t len, uint64_t sn) {
  (void)sn;
  fz_app *a = user;
  if (len != 40) return mir_error_set(MIR_EINVAL, "fuzz app: snapshot of %zu bytes", len);
  memcpy(a->state, data, 32);
  a->txs = 0;
  for (int i = 0; i < 8; i++) a->txs |= (uint64_t)data[32 + i] << (8 * i);
  return MIR_OK;
}

/* ---- the cluster ---- */

static mir_err fz_build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart) {
  (void)restart;
  fz_run *r = user;
  fz_app *a = &r->apps[node];
  a->sim = sim;
  a->node = node;
  mir_err err = mir_sim_add_transport(sim, node, mn, "net");
  if (err == MIR_OK) err = mir_sim_add_timer(sim, node, mn, "timer");
  if (err == MIR_OK) err = mir_sim_add_crypto(sim, node, mn, "crypto");
  if (err == MIR_OK) err = mir_sim_add_store(sim, node, mn, "store");
  if (err != MIR_OK) return err;
  trantor_app app = {0};
  app.apply_batch = fz_apply;
  app.snapshot = fz_snapshot;
  app.restore = fz_restore;
  app.user_data = a;
  trantor_system_config cfg = {0};
  cfg.self_id = mir_sim_node_id(sim, node);
  cfg.membership = &r->m;
  cfg.params = &r->params;
  cfg.hash = trantor_hash_reference;
  cfg.app = &app;
  return trantor_system_add_modules(mn, &cfg);
}

/* Transaction k is tx_no k / 4 of client "c<k % 4>" (clients spread over the buckets, and with
 * them over the segments); its data is its name. */
static void fz_tx_name(size_t k, char *buf, size_t cap) {
  snprintf(buf, cap, "c%zu:%zu", k % 4, k / 4);
}

static mir_event *fz_submit(void *user, mir_sim *sim, size_t node, const uint8_t *value,
                            size_t len) {
  (void)user;
  (void)sim;
  (void)node;
  char name[32];
  if (len == 0 || len >= sizeof name) return NULL;
  memcpy(name, value, len);
  name[len] = '\0';
  char *colon = strchr(name, ':');
  MIR_ASSERT(colon != NULL);
  Trantor__Tx *tx = mir_xmalloc(sizeof *tx);
  trantor__tx__init(tx);
  tx->client_id = mir_xmalloc((size_t)(colon - name) + 1);
  memcpy(tx->client_id, name, (size_t)(colon - name));
  tx->client_id[colon - name] = '\0';
  tx->tx_no = strtoull(colon + 1, NULL, 10);
  tx->data.len = len;
  tx->data.data = mir_xmemdup(value, len);
  Trantor__NewTransactions *nt = mir_xmalloc(sizeof *nt);
  trantor__new_transactions__init(nt);
  nt->n_txs = 1;
  nt->txs = mir_xmalloc(sizeof *nt->txs);
  nt->txs[0] = tx;
  return mir_event_new("mempool", "client", &nt->base);
}

/* Replica 3's filter: everything goes out unchanged, and a copy is kept for replay. */
static void fz_capture(void *user, mir_sim_byz *byz, size_t from, size_t to,
                       const Mir__PackedMessage *msg) {
  fz_run *r = user;
  if (to != from) {
    Mir__PackedMessage **slot = &r->ring[r->ring_next];
    if (*slot != NULL) protobuf_c_message_free_unpacked(&(*slot)->base, NULL);
    *slot = mir_sim_packed_clone(msg);
    r->ring_next = (r->ring_next + 1) % FZ_RING;
    if (r->ring_len < FZ_RING) r->ring_len++;
  }
  mir_sim_byz_send(byz, to, mir_sim_packed_clone(msg), 0);
}

static void fz_setup(fz_run *r) {
  trantor_params_default(&r->params);
  r->params.segment_length = 4;
  r->params.num_buckets = 8;
  r->params.retained_epochs = 2;
  r->params.batch_timeout_ms = 20;
  r->params.view_change_sn_timeout_ms = 400;
  r->params.view_change_segment_timeout_ms = 2000;
  r->params.done_resend_ms = 100;
  r->params.catch_up_delay_ms = 100;
  r->params.view_change_resend_ms = 200;
  r->params.checkpoint_resend_ms = 200;
  trantor__membership__init(&r->m);
  for (size_t i = 0; i < FZ_NODES; i++) {
    trantor__member__init(&r->members[i]);
    r->members[i].id = (char *)fz_ids[i];
    r->members[i].weight = 1;
    r->member_ptrs[i] = &r->members[i];
  }
  r->m.n_members = FZ_NODES;
  r->m.members = r->member_ptrs;
}

/* ---- reading the input ---- */

static uint8_t fz_u8(fz_run *r) {
  if (r->in_len == 0) return 0;
  r->in_len--;
  return *r->in++;
}

static uint64_t fz_u64(fz_run *r) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | fz_u8(r);
  return v;
}

static void *fz_alloc(fz_run *r, size_t n) {
  size_t at = (r->arena_used + 7) & ~(size_t)7;
  MIR_ASSERT(at + n <= FZ_ARENA_BYTES);
  r->arena_used = at + n;
  return r->arena + at;
}

/* Up to max bytes of the input, length first (borrowed from the input). */
static ProtobufCBinaryData fz_raw(fz_run *r, size_t max) {
  size_t len = fz_u8(r) % (max + 1);
  if (len > r->in_len) len = r->in_len;
  ProtobufCBinaryData b = {len, (uint8_t *)r->in};
  r->in += len;
  r->in_len -= len;
  return b;
}

static char *fz_str(fz_run *r, size_t max) {
  ProtobufCBinaryData b = fz_raw(r, max);
  char *s = fz_alloc(r, b.len + 1);
  memcpy(s, b.data, b.len);
  s[b.len] = '\0';
  return s;
}

static const uint64_t fz_extremes[8] = {UINT64_MAX,
                                        UINT64_MAX - 1,
                                        1ull << 63,
                                        (1ull << 32) + 1,
                                        1000000,
                                        FZ_EPOCH_SNS * 100,
                                        TRANTOR_PBFT_VIEW_MAX,
                                        TRANTOR_PBFT_VIEW_MAX + 1};

/* Mostly an sn of the destination's epoch or the next ones, sometimes any small or extreme one. */
static uint64_t fz_sn(fz_run *r) {
  uint8_t b = fz_u8(r);
  switch (b >> 6) {
    case 0:
    case 1:
      return r->epoch_hint * FZ_EPOCH_SNS + (b & 63);
    case 2:
      return b & 63;
    default:
      return fz_extremes[b & 7];
  }
}

/* Mostly a small view, sometimes an extreme one. */
static uint64_t fz_view(fz_run *r) {
  uint8_t b = fz_u8(r);
  return b < 192 ? (b & 3) : fz_extremes[b & 7];
}

static uint64_t fz_epoch(fz_run *r) {
  uint8_t b = fz_u8(r);
  return b < 224 ? r->epoch_hint + (b & 3) : fz_extremes[b & 7];
}

/* A certificate: the empty batch, a batch of real transactions, a batch of invented ones, or raw
 * bytes. Its bytes live in the arena. */
static ProtobufCBinaryData fz_cert(fz_run *r) {
  uint8_t b = fz_u8(r);
  if ((b & 3) == 3) return fz_raw(r, 128);
  Trantor__Tx txs[FZ_ENTRIES_MAX];
  Trantor__Tx *ptrs[FZ_ENTRIES_MAX];
  Trantor__Batch batch = TRANTOR__BATCH__INIT;
  size_t n = (b & 3) == 0 ? 0 : 1 + (b >> 2) % FZ_ENTRIES_MAX;
  for (size_t i = 0; i < n; i++) {
    trantor__tx__init(&txs[i]);
    if ((b & 3) == 1) {
      char name[32];
      fz_tx_name(fz_u8(r) % FZ_TXS, name, sizeof name);
      char *data = fz_alloc(r, strlen(name) + 1);
      memcpy(data, name, strlen(name) + 1);
      char *colon = strchr(data, ':');
      txs[i].client_id = fz_alloc(r, (size_t)(colon - data) + 1);
      memcpy(txs[i].client_id, data, (size_t)(colon - data));
      txs[i].client_id[colon - data] = '\0';
      txs[i].tx_no = strtoull(colon + 1, NULL, 10);
      txs[i].data.data = (uint8_t *)data;
      txs[i].data.len = strlen(name);
    } else {
      txs[i].client_id = fz_str(r, 8);
      txs[i].tx_no = fz_u8(r) < 240 ? fz_u8(r) : fz_u64(r);
      txs[i].data = fz_raw(r, 16);
    }
    ptrs[i] = &txs[i];
  }
  batch.n_txs = n;
  batch.txs = ptrs;
  ProtobufCBinaryData out;
  out.len = protobuf_c_message_get_packed_size(&batch.base);
  out.data = fz_alloc(r, out.len);
  protobuf_c_message_pack(&batch.base, out.data);
  return out;
}

/* A Preprepare digest of a certificate from the input (for sn), an aborted one, 32 input bytes,
 * or bytes of the wrong length. */
static ProtobufCBinaryData fz_digest(fz_run *r, uint64_t sn) {
  uint8_t b = fz_u8(r);
  ProtobufCBinaryData d = {32, fz_alloc(r, 32)};
  if ((b & 3) == 0 || (b & 3) == 1) {
    ProtobufCBinaryData cert = (b & 3) == 0 ? fz_cert(r) : (ProtobufCBinaryData){0, NULL};
    trantor_pbft_preprepare_digest(trantor_hash_reference, sn, (b & 3) == 1, cert.data, cert.len,
                                   d.data);
  } else if ((b & 3) == 2) {
    memset(d.data, 0, 32);
    ProtobufCBinaryData raw = fz_raw(r, 32);
    if (raw.len > 0) memcpy(d.data, raw.data, raw.len);
  } else {
    d = fz_raw(r, 40);
  }
  return d;
}

/* A signature of replica 3 over digest that verifies, or input bytes. */
static ProtobufCBinaryData fz_signature(fz_run *r, const uint8_t digest[32]) {
  if (fz_u8(r) & 1) return fz_raw(r, 80);
  ProtobufCBinaryData part = {32, (uint8_t *)digest};
  ProtobufCBinaryData sig = {FZ_SIG_BYTES, fz_alloc(r, FZ_SIG_BYTES)};
  MIR_ASSERT(mir_sim_sign(r->sim, FZ_BYZ, &part, 1, sig.data) == MIR_OK);
  return sig;
}

/* ---- the structured messages ---- */

static Trantor__Preprepare *fz_preprepare(fz_run *r) {
  Trantor__Preprepare *pp = fz_alloc(r, sizeof *pp);
  trantor__preprepare__init(pp);
  pp->sn = fz_sn(r);
  pp->view = fz_view(r);
  uint8_t b = fz_u8(r);
  pp->aborted = (b & 7) == 7;
  if (!pp->aborted || (b & 8)) pp->cert = fz_cert(r);
  return pp;
}

static ProtobufCMessage *fz_vote(fz_run *r, bool commit) {
  /* Prepare and Commit have the same layout. */
  Trantor__Prepare *v = fz_alloc(r, sizeof(Trantor__Commit));
  if (commit) {
    trantor__commit__init((Trantor__Commit *)v);
  } else {
    trantor__prepare__init(v);
  }
  v->sn = fz_sn(r);
  v->view = fz_view(r);
  v->digest = fz_digest(r, v->sn);
  return &v->base;
}

static ProtobufCMessage *fz_done(fz_run *r) {
  Trantor__Done *d = fz_alloc(r, sizeof *d);
  trantor__done__init(d);
  uint8_t b = fz_u8(r);
  d->n_digests = b % (FZ_ENTRIES_MAX + 2);
  d->digests = fz_alloc(r, (d->n_digests + 1) * sizeof *d->digests);
  uint64_t sn = r->epoch_hint * FZ_EPOCH_SNS + (b >> 4);
  for (size_t i = 0; i < d->n_digests; i++) d->digests[i] = fz_digest(r, sn + 4 * i);
  return &d->base;
}

static Trantor__SignedViewChange *fz_signed_vc(fz_run *r, const char *signer) {
  Trantor__ViewChange *vc = fz_alloc(r, sizeof *vc);
  trantor__view_change__init(vc);
  vc->view = fz_view(r);
  uint8_t b = fz_u8(r);
  vc->n_pset = b % (FZ_ENTRIES_MAX + 1);
  vc->n_qset = (b >> 4) % (FZ_ENTRIES_MAX + 1);
  vc->pset = fz_alloc(r, (vc->n_pset + 1) * sizeof *vc->pset);
  vc->qset = fz_alloc(r, (vc->n_qset + 1) * sizeof *vc->qset);
  for (size_t i = 0; i < vc->n_pset; i++) {
    Trantor__PSetEntry *e = fz_alloc(r, sizeof *e);
    trantor__pset_entry__init(e);
    e->sn = fz_sn(r);
    e->view = fz_view(r);
    e->digest = fz_digest(r, e->sn);
    vc->pset[i] = e;
  }
  for (size_t i = 0; i < vc->n_qset; i++) {
    Trantor__QSetEntry *e = fz_alloc(r, sizeof *e);
    trantor__qset_entry__init(e);
    e->sn = fz_sn(r);
    e->view = fz_view(r);
    e->digest = fz_digest(r, e->sn);
    vc->qset[i] = e;
  }
  Trantor__SignedViewChange *s = fz_alloc(r, sizeof *s);
  trantor__signed_view_change__init(s);
  s->view_change = vc;
  s->signer = (char *)signer;
  uint8_t h[32];
  trantor_pbft_view_change_hash(trantor_hash_reference, vc, h);
  s->signature = fz_signature(r, h);
  return s;
}

static ProtobufCMessage *fz_new_view(fz_run *r) {
  Trantor__NewView *nv = fz_alloc(r, sizeof *nv);
  trantor__new_view__init(nv);
  nv->view = fz_view(r);
  uint8_t b = fz_u8(r);
  nv->n_view_changes = b % (FZ_ENTRIES_MAX + 1);
  nv->n_preprepares = (b >> 4) % (FZ_ENTRIES_MAX + 1);
  nv->view_changes = fz_alloc(r, (nv->n_view_changes + 1) * sizeof *nv->view_changes);
  nv->preprepares = fz_alloc(r, (nv->n_preprepares + 1) * sizeof *nv->preprepares);
  for (size_t i = 0; i < nv->n_view_changes; i++) {
    nv->view_changes[i] = fz_signed_vc(r, fz_ids[fz_u8(r) % FZ_NODES]);
  }
  for (size_t i = 0; i < nv->n_preprepares; i++) nv->preprepares[i] = fz_preprepare(r);
  return &nv->base;
}

static ProtobufCMessage *fz_checkpoint_msg(fz_run *r) {
  Trantor__CheckpointMsg *c = fz_alloc(r, sizeof *c);
  trantor__checkpoint_msg__init(c);
  c->epoch = fz_epoch(r);
  c->sn = fz_u8(r) < 224 ? c->epoch * FZ_EPOCH_SNS : fz_sn(r);
  c->snapshot_hash = fz_raw(r, 40);
  uint8_t hash[32] = {0};
  if (c->snapshot_hash.len > 0) {
    memcpy(hash, c->snapshot_hash.data, c->snapshot_hash.len < 32 ? c->snapshot_hash.len : 32);
  }
  uint8_t digest[32];
  trantor_checkpoint_digest(c->epoch, c->sn, hash, trantor_hash_reference, digest);
  c->signature = fz_signature(r, digest);
  return &c->base;
}

static const char *const fz_clients[3] = {"c0", "c1", "c2"};

static Trantor__ClientProgress *fz_client_progress(fz_run *r) {
  Trantor__ClientProgress *cp = fz_alloc(r, sizeof *cp);
  trantor__client_progress__init(cp);
  cp->n_clients = fz_u8(r) % (FZ_ENTRIES_MAX + 1);
  cp->clients = fz_alloc(r, (cp->n_clients + 1) * sizeof *cp->clients);
  for (size_t i = 0; i < cp->n_clients; i++) {
    Trantor__ClientWatermark *w = fz_alloc(r, sizeof *w);
    trantor__client_watermark__init(w);
    w->client_id = fz_u8(r) & 1 ? fz_str(r, 6) : (char *)fz_clients[i % 3];
    w->low_wm = fz_u8(r) < 240 ? fz_u8(r) % 8 : fz_u64(r);
    w->n_delivered = fz_u8(r) % 3;
    w->delivered = fz_alloc(r, (w->n_delivered + 1) * sizeof *w->delivered);
    for (size_t k = 0; k < w->n_delivered; k++) w->delivered[k] = w->low_wm + fz_u8(r);
    cp->clients[i] = w;
  }
  return cp;
}

/* A stable checkpoint whose certificate holds replica 3's valid signature and the input's
 * signatures of the others (never a quorum: the others' keys are not replica 3's). */
static ProtobufCMessage *fz_stable_checkpoint_msg(fz_run *r) {
  Trantor__EpochConfig *ec = fz_alloc(r, sizeof *ec);
  trantor__epoch_config__init(ec);
  ec->epoch = fz_epoch(r);
  ec->first_sn = fz_u8(r) < 224 ? ec->epoch * FZ_EPOCH_SNS : fz_sn(r);
  ec->length = fz_u8(r) < 224 ? FZ_EPOCH_SNS : fz_u8(r);
  ec->membership = fz_u8(r) < 224 ? &r->m : NULL;
  Trantor__StateSnapshot *snap = fz_alloc(r, sizeof *snap);
  trantor__state_snapshot__init(snap);
  snap->app_data = fz_raw(r, 48);
  snap->client_progress = fz_client_progress(r);
  snap->epoch_config = ec;
  snap->leader_policy = fz_raw(r, 16);
  Trantor__StableCheckpoint *sc = fz_alloc(r, sizeof *sc);
  trantor__stable_checkpoint__init(sc);
  sc->sn = fz_u8(r) < 224 ? ec->first_sn : fz_sn(r);
  sc->snapshot = snap;
  uint8_t digest[32] = {0};
  if (trantor_snapshot_check(snap) == MIR_OK) {
    uint8_t h[32];
    trantor_snapshot_hash(snap, trantor_hash_reference, h);
    trantor_checkpoint_digest(ec->epoch, sc->sn, h, trantor_hash_reference, digest);
  }
  mir_error_clear();
  uint8_t mask = fz_u8(r);
  sc->cert = fz_alloc(r, FZ_NODES * sizeof *sc->cert);
  for (size_t i = 0; i < FZ_NODES; i++) {
    if (!((mask >> i) & 1)) continue;
    Trantor__CheckpointSignature *s = fz_alloc(r, sizeof *s);
    trantor__checkpoint_signature__init(s);
    s->signer = (char *)fz_ids[(mask & 0x80) ? fz_u8(r) % FZ_NODES : i];
    s->signature = i == FZ_BYZ ? fz_signature(r, digest) : fz_raw(r, 80);
    sc->cert[sc->n_cert++] = s;
  }
  Trantor__StableCheckpointMsg *m = fz_alloc(r, sizeof *m);
  trantor__stable_checkpoint_msg__init(m);
  m->checkpoint = sc;
  return &m->base;
}

/* ---- message types and destinations ---- */

typedef enum fz_kind {
  FZ_PREPREPARE,
  FZ_PREPARE,
  FZ_COMMIT,
  FZ_DONE,
  FZ_CATCH_UP_REQUEST,
  FZ_CATCH_UP_RESPONSE,
  FZ_SIGNED_VC,
  FZ_NEW_VIEW,
  FZ_PREPREPARE_REQUEST,
  FZ_MISSING_PREPREPARE,
  FZ_CHECKPOINT_MSG,
  FZ_STABLE_CHECKPOINT_MSG,
  FZ_RAW_ONLY /* types no module accepts as a message: raw bytes only */
} fz_kind;

static const struct {
  const char *type;
  fz_kind kind;
} fz_types[] = {
    {"trantor.Preprepare", FZ_PREPREPARE},
    {"trantor.Prepare", FZ_PREPARE},
    {"trantor.Commit", FZ_COMMIT},
    {"trantor.Done", FZ_DONE},
    {"trantor.CatchUpRequest", FZ_CATCH_UP_REQUEST},
    {"trantor.CatchUpResponse", FZ_CATCH_UP_RESPONSE},
    {"trantor.SignedViewChange", FZ_SIGNED_VC},
    {"trantor.NewView", FZ_NEW_VIEW},
    {"trantor.PreprepareRequest", FZ_PREPREPARE_REQUEST},
    {"trantor.MissingPreprepare", FZ_MISSING_PREPREPARE},
    {"trantor.CheckpointMsg", FZ_CHECKPOINT_MSG},
    {"trantor.StableCheckpointMsg", FZ_STABLE_CHECKPOINT_MSG},
    {"trantor.ViewChange", FZ_RAW_ONLY},
    {"trantor.SbDeliver", FZ_RAW_ONLY},
    {"trantor.NewEpoch", FZ_RAW_ONLY},
    {"trantor.CheckpointStable", FZ_RAW_ONLY},
    {"trantor.EpochProgress", FZ_RAW_ONLY},
    {"trantor.NewTransactions", FZ_RAW_ONLY},
    {"trantor.NewCert", FZ_RAW_ONLY},
    {"trantor.ViewChangeSnTimeout", FZ_RAW_ONLY},
    {"trantor.PbftTick", FZ_RAW_ONLY},
    {"trantor.PushCheckpoint", FZ_RAW_ONLY},
    {"trantor.CheckpointTick", FZ_RAW_ONLY},
    {"trantor.PbftParams", FZ_RAW_ONLY},
    {"trantor.RejoinRequest", FZ_RAW_ONLY},
    {"trantor.RejoinAnswer", FZ_RAW_ONLY},
    {"trantor.Recovered", FZ_RAW_ONLY},
    {"trantor.CheckpointDurable", FZ_RAW_ONLY},
    {"trantor.PbftPersisted", FZ_RAW_ONLY},
    {"trantor.CheckpointPersisted", FZ_RAW_ONLY},
    {"mir.StoreWrite", FZ_RAW_ONLY},
    {"mir.Init", FZ_RAW_ONLY},
    {"mir.MessageReceived", FZ_RAW_ONLY},
    {"mir.TimerDelay", FZ_RAW_ONLY},
    {"mir.SignResult", FZ_RAW_ONLY},
    {"no.SuchType", FZ_RAW_ONLY},
    {"", FZ_RAW_ONLY},
};
#define FZ_TYPES (sizeof fz_types / sizeof fz_types[0])

static const char *const fz_dests[] = {
    "iss",
    "ordering/0/0",
    "ordering/0/1",
    "ordering/0/2",
    "ordering/0/3",
    "ordering/1/0",
    "ordering/1/3",
    "ordering/2/1",
    "ordering/4/2",
    "ordering/40/0",
    "checkpoint/0",
    "checkpoint/1",
    "checkpoint/2",
    "checkpoint/3",
    "checkpoint/50",
    "mempool",
    "batchfetcher",
    "availability",
    "app",
    "net",
    "timer",
    "crypto",
    "ordering",
    "checkpoint",
    "ordering/0",
    "ordering/0/4",
    "ordering/x/0",
    "ordering/0/0/0",
    "checkpoint/0/0",
    "nosuch",
};
#define FZ_DESTS (sizeof fz_dests / sizeof fz_dests[0])

/* The destination of the next message, written into buf; sets the epoch hint. */
static void fz_dest(fz_run *r, char *buf, size_t cap) {
  uint8_t b = fz_u8(r);
  uint64_t e = 0;
  if (b < FZ_DESTS * 6) {
    snprintf(buf, cap, "%s", fz_dests[b % FZ_DESTS]);
  } else if (b & 1) {
    e = b & 2 ? fz_u64(r) : fz_u8(r);
    snprintf(buf, cap, "ordering/%" PRIu64 "/%u", e, (unsigned)fz_u8(r));
  } else {
    e = b & 2 ? fz_u64(r) : fz_u8(r);
    snprintf(buf, cap, "checkpoint/%" PRIu64, e);
  }
  if (sscanf(buf, "ordering/%" SCNu64, &e) != 1) (void)sscanf(buf, "checkpoint/%" SCNu64, &e);
  r->epoch_hint = e < (1ull << 40) ? e : 0;
}

static ProtobufCMessage *fz_structured(fz_run *r, fz_kind kind) {
  switch (kind) {
    case FZ_PREPREPARE:
      return &fz_preprepare(r)->base;
    case FZ_PREPARE:
    case FZ_COMMIT:
      return fz_vote(r, kind == FZ_COMMIT);
    case FZ_DONE:
      return fz_done(r);
    case FZ_CATCH_UP_REQUEST:
    case FZ_PREPREPARE_REQUEST: {
      /* Same layout: sn and digest. */
      Trantor__CatchUpRequest *q = fz_alloc(r, sizeof(Trantor__PreprepareRequest));
      if (kind == FZ_CATCH_UP_REQUEST) {
        trantor__catch_up_request__init(q);
      } else {
        trantor__preprepare_request__init((Trantor__PreprepareRequest *)q);
      }
      q->sn = fz_sn(r);
      q->digest = fz_digest(r, q->sn);
      return &q->base;
    }
    case FZ_CATCH_UP_RESPONSE:
    case FZ_MISSING_PREPREPARE: {
      /* Same layout: one Preprepare. */
      Trantor__CatchUpResponse *c = fz_alloc(r, sizeof(Trantor__MissingPreprepare));
      if (kind == FZ_CATCH_UP_RESPONSE) {
        trantor__catch_up_response__init(c);
      } else {
        trantor__missing_preprepare__init((Trantor__MissingPreprepare *)c);
      }
      if (fz_u8(r) < 240) c->preprepare = fz_preprepare(r);
      return &c->base;
    }
    case FZ_SIGNED_VC: {
      uint8_t b = fz_u8(r);
      return &fz_signed_vc(r, b < 224 ? fz_ids[FZ_BYZ] : fz_ids[b % FZ_NODES])->base;
    }
    case FZ_NEW_VIEW:
      return fz_new_view(r);
    case FZ_CHECKPOINT_MSG:
      return fz_checkpoint_msg(r);
    case FZ_STABLE_CHECKPOINT_MSG:
      return fz_stable_checkpoint_msg(r);
    case FZ_RAW_ONLY:
      break;
  }
  return NULL;
}

/* A packed message of type (borrowed) with raw input bytes. Returns owned. */
static Mir__PackedMessage *fz_packed_raw(fz_run *r, const char *dest, const char *type) {
  Mir__PackedMessage *pm = mir_xmalloc(sizeof *pm);
  mir__packed_message__init(pm);
  pm->dest_module = mir_xstrdup(dest);
  pm->type = mir_xstrdup(type);
  ProtobufCBinaryData b = fz_raw(r, 255);
  pm->data.len = b.len;
  pm->data.data = mir_xmemdup(b.data, b.len);
  return pm;
}

/* A recent message of replica 3 (owned copy), perhaps to dest and perhaps mangled; NULL if none
 * was sent yet. */
static Mir__PackedMessage *fz_replay(fz_run *r, const char *dest, bool mangle) {
  uint8_t b = fz_u8(r);
  if (r->ring_len == 0) return NULL;
  Mir__PackedMessage *pm = mir_sim_packed_clone(r->ring[b % r->ring_len]);
  if (b & 0x80) {
    free(pm->dest_module);
    pm->dest_module = mir_xstrdup(dest);
  }
  if (!mangle || pm->data.len == 0) return pm;
  uint8_t n = fz_u8(r);
  if (n & 0x80) {
    pm->data.len = fz_u8(r) % pm->data.len; /* truncated */
    return pm;
  }
  for (size_t i = 0; i < (size_t)(n % 4) + 1; i++) {
    size_t pos = ((size_t)fz_u8(r) << 8 | fz_u8(r)) % pm->data.len;
    pm->data.data[pos] ^= (uint8_t)(fz_u8(r) | 1);
  }
  return pm;
}

/* What the real transport lets through (net_frame.c: a valid destination module and a type name
 * that is not empty). Messages for modules that take none (net, timer, crypto, the factories' own
 * ids) are let through too: the node must drop them (mir_module_ops.peer_messages). */
static bool fz_transport_accepts(const Mir__PackedMessage *pm) {
  if (pm->dest_module == NULL || !mir_module_id_valid(pm->dest_module) || pm->type == NULL ||
      pm->type[0] == '\0') {
    return false;
  }
  return true;
}

/* Hands pm (takes ownership) to node as the transport would: from replica 3. */
static void fz_deliver(fz_run *r, size_t node, Mir__PackedMessage *pm) {
  if (!mir_sim_node_up(r->sim, node)) {
    protobuf_c_message_free_unpacked(&pm->base, NULL);
    return;
  }
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, mir_event_message_received(fz_ids[FZ_BYZ], pm));
  (void)mir_sim_inject(r->sim, node, &l);
  mir_error_clear();
}

static void fz_message(fz_run *r, uint8_t op) {
  uint8_t target = fz_u8(r) % 4; /* 0..2: one correct replica, 3: all of them */
  char dest[96];
  fz_dest(r, dest, sizeof dest);
  size_t t = fz_u8(r) % FZ_TYPES;
  unsigned mode = (op >> 2) % 4;
  r->arena_used = 0;
  Mir__PackedMessage *pm = NULL;
  ProtobufCMessage *msg = mode == 1 ? fz_structured(r, fz_types[t].kind) : NULL;
  if (msg != NULL) {
    pm = mir_message_pack(dest, msg);
  } else if (mode >= 2) {
    pm = fz_replay(r, dest, mode == 3);
  } else {
    pm = fz_packed_raw(r, dest, fz_types[t].type);
  }
  if (pm == NULL) return;
  if (!fz_transport_accepts(pm)) {
    protobuf_c_message_free_unpacked(&pm->base, NULL);
    return;
  }
  for (size_t i = 0; i < FZ_BYZ; i++) {
    if (target != FZ_BYZ && target != i) continue;
    fz_deliver(r, i, target == FZ_BYZ ? mir_sim_packed_clone(pm) : pm);
  }
  if (target == FZ_BYZ) protobuf_c_message_free_unpacked(&pm->base, NULL);
}

/* Plays the records of the input (see the file comment). */
static void fz_play(fz_run *r) {
  uint64_t end_ns = FZ_INJECT_MS * MIR_SIM_NS_PER_MS;
  for (size_t k = 0; k < FZ_RECORDS_MAX && r->in_len > 0 && !mir_sim_failed(r->sim); k++) {
    uint8_t op = fz_u8(r);
    if (op % 4 == 0) {
      uint64_t t = mir_sim_now(r->sim) + (uint64_t)(fz_u8(r) % 32 + 1) * MIR_SIM_NS_PER_MS;
      MIR_ASSERT(mir_sim_run_until(r->sim, t < end_ns ? t : end_ns) == MIR_OK);
    } else {
      fz_message(r, op);
    }
  }
}

/* Correct replicas that delivered the same number of transactions have the same state. */
static bool fz_states_agree(const fz_run *r) {
  for (size_t i = 1; i < FZ_BYZ; i++) {
    if (r->apps[i].txs == r->apps[0].txs && memcmp(r->apps[i].state, r->apps[0].state, 32) != 0) {
      return false;
    }
  }
  return true;
}

static bool fz_verdict(fz_run *r, char *why, size_t cap) {
  if (mir_sim_failed(r->sim)) {
    snprintf(why, cap, "%s", mir_sim_failure(r->sim));
    return false;
  }
  for (size_t i = 0; i < FZ_BYZ; i++) {
    if (!mir_sim_node_up(r->sim, i)) {
      snprintf(why, cap, "correct replica %zu is down", i);
      return false;
    }
  }
  if (!mir_sim_all_delivered(r->sim)) {
    snprintf(why, cap, "not every transaction was delivered by every correct replica");
    return false;
  }
  if (!fz_states_agree(r)) {
    snprintf(why, cap, "correct replicas' application states differ");
    return false;
  }
  return true;
}

bool fuzz_trantor_ingress_check(const uint8_t *data, size_t size, char *why, size_t cap) {
  MIR_ASSERT(cap > 0);
  why[0] = '\0';
  fz_run *r = mir_xcalloc(1, sizeof *r);
  fz_setup(r);
  r->in = data;
  r->in_len = size;
  mir_sim_config cfg;
  mir_sim_config_default(&cfg);
  cfg.seed = 1 + (fz_u8(r) & 3);
  cfg.nodes = FZ_NODES;
  cfg.build = fz_build;
  cfg.submit = fz_submit;
  cfg.user = r;
  cfg.checks.liveness_ns = FZ_LIVENESS_MS * MIR_SIM_NS_PER_MS;
  MIR_ASSERT(mir_sim_new(&cfg, &r->sim) == MIR_OK);
  mir_sim_set_byzantine(r->sim, FZ_BYZ, fz_capture, r);
  for (size_t k = 0; k < FZ_TXS; k++) {
    char name[32];
    fz_tx_name(k, name, sizeof name);
    for (size_t node = 0; node < FZ_NODES; node++) {
      MIR_ASSERT(mir_sim_submit(r->sim, k * FZ_TX_GAP_MS * MIR_SIM_NS_PER_MS, node, name,
                                strlen(name)) == MIR_OK);
    }
  }
  MIR_ASSERT(mir_sim_run_until(r->sim, FZ_START_MS * MIR_SIM_NS_PER_MS) == MIR_OK);
  fz_play(r);
  if (!mir_sim_failed(r->sim)) MIR_ASSERT(mir_sim_run(r->sim) == MIR_OK);
  bool ok = fz_verdict(r, why, cap);
  mir_sim_free(r->sim);
  for (size_t i = 0; i < FZ_RING; i++) {
    if (r->ring[i] != NULL) protobuf_c_message_free_unpacked(&r->ring[i]->base, NULL);
  }
  free(r);
  return ok;
}

int fuzz_trantor_ingress_one(const uint8_t *data, size_t size) {
  char why[MIR_SIM_FAILURE_MAX + 64];
  if (!fuzz_trantor_ingress_check(data, size, why, sizeof why)) {
    fprintf(stderr, "fuzz_trantor_ingress: %s\n", why);
    abort();
  }
  return 0;
}
