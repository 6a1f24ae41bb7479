/*
 * The Byzantine replicas of the Trantor scenarios (sc_trantor.h). All run Trantor's honest
 * modules; only what they put on the wire differs, through the simulator's per-destination
 * filter.
 *
 * The corrupting replica (replica 3, leader of the last segment) runs the simulator's generic
 * misbehaving filter: it drops, delays, duplicates, corrupts and replays its messages, except
 * that it does not corrupt the certificates it proposes (below).
 *
 * With an accomplice (the planted-bug scenario: f + 1 Byzantine replicas, beyond what the
 * protocol tolerates) the splits leave the accomplice on the leader's side and it votes both
 * ways as well; two correct replicas can then commit different certificates, which the agreement
 * check must catch.
 *
 * The slow leader delays every message it sends to a peer by more than the PBFT sn timeout until
 * the faults heal, so the segments it leads (segment 0 of every epoch) can only progress through
 * a view change; after that it is an ordinary replica again.
 *
 * The equivocating leader rewrites the certificate of the trantor.Preprepare messages it sends:
 * for every (instance, sn, view) it picks a random non-empty set of peers that receive another
 * certificate than the rest (the leader itself keeps the original), and it votes for both: its
 * Prepare and Commit for the original carry the other digest on their way to that set, so each
 * side sees the leader's full support for what it got. The other certificate is a
 * valid batch, so that nothing but the equivocation itself is wrong with it: the empty batch,
 * the same transactions in reverse order, or the batch plus a transaction the leader proposed
 * before (already ordered, which the batch fetcher must then drop as a duplicate, or outside the
 * segment's buckets, which availability must reject). It never invents a transaction: clients'
 * transactions carry no signatures in this version, so a forged one would be indistinguishable
 * from a real one for every replica. Correct replicas must still agree, and every transaction
 * submitted to them must still be delivered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/event.h"
#include "pbft.h"
#include "sc.h"
#include "sc_trantor.h"
#include "trantor_common.h"

#define SCT_SLOW_MIN_MS 600 /* above the sn timeout of view 0 (sc_trantor.c) */
#define SCT_SLOW_MAX_MS 900
#define SCT_OLD_TXS 16     /* transactions the equivocating leader remembers */
#define SCT_BATCH_TXS 1024 /* larger batches are answered with the empty one */
#define SCT_SPLITS 64      /* equivocations remembered for the votes that follow them */

/* One equivocation: the peers of `side` got the other certificate of (module, sn, view), and
 * digest[0] and digest[1] are the original's and the other's. */
typedef struct sct_split {
  bool used;
  char module[MIR_MODULE_ID_MAX];
  uint64_t sn, view;
  uint64_t side;
  uint8_t digest[2][TRANTOR_DIGEST_BYTES];
  Mir__PackedMessage *alt; /* the rewritten Preprepare (owned) */
} sct_split;

typedef struct sct_byz {
  sct_run *run;
  uint64_t accomplices;      /* Byzantine replicas that vote both ways with the leader (bit mask) */
  mir_sim_byz_generic any;   /* the corrupting replica: its rates for most messages */
  mir_sim_byz_generic certs; /* ... and for those with a certificate it proposes */
  sct_split splits[SCT_SPLITS]; /* the latest equivocations, oldest replaced first */
  size_t next_split;
  Trantor__Tx *old[SCT_OLD_TXS]; /* owned copies of transactions proposed before */
  size_t n_old, next_old;
} sct_byz;

/* ---- the slow leader ---- */

static void sct_slow_filter(void *user, mir_sim_byz *byz, size_t from, size_t to,
                            const Mir__PackedMessage *msg) {
  (void)user;
  mir_sim *sim = mir_sim_byz_sim(byz);
  uint64_t extra = 0;
  if (to != from && mir_sim_now(sim) < mir_sim_heal_ns(sim)) {
    extra = mir_sim_rng_range(mir_sim_byz_rng(byz), SCT_SLOW_MIN_MS, SCT_SLOW_MAX_MS) *
            MIR_SIM_NS_PER_MS;
  }
  mir_sim_byz_send(byz, to, mir_sim_packed_clone(msg), extra);
}

/* ---- the equivocating leader ---- */

/* Remembers a copy of tx (borrowed) for later proposals. */
static void sct_remember(sct_byz *b, const Trantor__Tx *tx) {
  Trantor__Tx *c = (Trantor__Tx *)mir_message_clone(&tx->base);
  Trantor__Tx **slot = &b->old[b->next_old];
  if (*slot != NULL) protobuf_c_message_free_unpacked(&(*slot)->base, NULL);
  *slot = c;
  b->next_old = (b->next_old + 1) % SCT_OLD_TXS;
  if (b->n_old < SCT_OLD_TXS) b->n_old++;
}

/* Returns the other certificate for cert (borrowed): owned bytes in *out. */
static void sct_other_cert(sct_byz *b, mir_sim_rng *r, const ProtobufCBinaryData *cert,
                           ProtobufCBinaryData *out) {
  Trantor__Batch *batch = trantor__batch__unpack(NULL, cert->len, cert->data);
  Trantor__Batch alt = TRANTOR__BATCH__INIT;
  Trantor__Tx *txs[SCT_BATCH_TXS + 1];
  size_t n = batch != NULL && batch->n_txs <= SCT_BATCH_TXS ? batch->n_txs : 0;
  uint64_t choice = mir_sim_rng_below(r, 3);
  if (choice == 1 && n >= 2) {
    for (size_t i = 0; i < n; i++) txs[i] = batch->txs[n - 1 - i];
    alt.n_txs = n;
  } else if (choice != 0 && b->n_old > 0) {
    for (size_t i = 0; i < n; i++) txs[i] = batch->txs[i];
    txs[n] = b->old[mir_sim_rng_below(r, b->n_old)];
    alt.n_txs = n + 1;
  } /* else: the empty batch */
  alt.txs = txs;
  out->len = protobuf_c_message_get_packed_size(&alt.base);
  out->data = mir_xmalloc(out->len ? out->len : 1);
  protobuf_c_message_pack(&alt.base, out->data);
  for (size_t i = 0; i < n; i++) sct_remember(b, batch->txs[i]);
  if (batch != NULL) trantor__batch__free_unpacked(batch, NULL);
}

/* The split of (module, sn, view), or NULL. */
static sct_split *sct_split_find(sct_byz *b, const char *module, uint64_t sn, uint64_t view) {
  for (size_t k = 0; k < SCT_SPLITS; k++) {
    sct_split *x = &b->splits[k];
    if (x->used && x->sn == sn && x->view == view && strcmp(x->module, module) == 0) return x;
  }
  return NULL;
}

/* Decides, once per (instance, sn, view), which peers get which certificate of pp (borrowed,
 * rewritten to the other certificate here) and remembers both digests for the votes. */
static sct_split *sct_split_new(sct_byz *b, mir_sim_byz *byz, size_t from,
                                const Mir__PackedMessage *msg, Trantor__Preprepare *pp) {
  mir_sim_rng *r = mir_sim_byz_rng(byz);
  size_t n = mir_sim_node_count(mir_sim_byz_sim(byz));
  sct_split *x = &b->splits[b->next_split];
  b->next_split = (b->next_split + 1) % SCT_SPLITS;
  if (x->alt != NULL) protobuf_c_message_free_unpacked(&x->alt->base, NULL);
  memset(x, 0, sizeof *x);
  x->used = true;
  snprintf(x->module, sizeof x->module, "%s", msg->dest_module);
  x->sn = pp->sn;
  x->view = pp->view;
  uint64_t others = ((1ull << n) - 1) & ~(1ull << from) & ~b->accomplices;
  do {
    x->side = mir_sim_rng_next(r) & others;
  } while (x->side == 0);
  trantor_pbft_preprepare_digest(trantor_hash_reference, pp->sn, pp->aborted, pp->cert.data,
                                 pp->cert.len, x->digest[0]);
  ProtobufCBinaryData other;
  sct_other_cert(b, r, &pp->cert, &other);
  free(pp->cert.data);
  pp->cert = other;
  pp->aborted = false;
  trantor_pbft_preprepare_digest(trantor_hash_reference, pp->sn, false, pp->cert.data, pp->cert.len,
                                 x->digest[1]);
  x->alt = mir_message_pack(msg->dest_module, &pp->base);
  return x;
}

/* A Prepare or Commit (the same layout: sn, view, digest) for the original of a split goes to
 * the split's other side with the other digest: the leader votes for both. Returns the message
 * to send (owned), or NULL to send msg as it is. */
static Mir__PackedMessage *sct_double_vote(sct_byz *b, size_t to, const Mir__PackedMessage *msg,
                                           ProtobufCMessage *m) {
  Trantor__Prepare *v = (Trantor__Prepare *)m;
  sct_split *x = sct_split_find(b, msg->dest_module, v->sn, v->view);
  if (x == NULL || !((x->side >> to) & 1) || v->digest.len != TRANTOR_DIGEST_BYTES ||
      memcmp(v->digest.data, x->digest[0], TRANTOR_DIGEST_BYTES) != 0) {
    return NULL;
  }
  memcpy(v->digest.data, x->digest[1], TRANTOR_DIGEST_BYTES);
  return mir_message_pack(msg->dest_module, m);
}

static bool sct_is(const Mir__PackedMessage *msg, const char *type) {
  return msg->type != NULL && strcmp(msg->type, type) == 0;
}

static void sct_equivocate_filter(void *user, mir_sim_byz *byz, size_t from, size_t to,
                                  const Mir__PackedMessage *msg) {
  sct_byz *b = user;
  bool pp = sct_is(msg, "trantor.Preprepare");
  bool vote = sct_is(msg, "trantor.Prepare") || sct_is(msg, "trantor.Commit");
  ProtobufCMessage *m = NULL;
  if (to == from || (!pp && !vote) || msg->dest_module == NULL ||
      mir_message_unpack(msg, 0, &m) != MIR_OK) {
    mir_sim_byz_send(byz, to, mir_sim_packed_clone(msg), 0);
    return;
  }
  Mir__PackedMessage *out = NULL;
  if (pp && from != b->run->special) {
    out = NULL; /* an accomplice's own proposals are honest */
  } else if (pp) {
    Trantor__Preprepare *p = (Trantor__Preprepare *)m;
    sct_split *x = sct_split_find(b, msg->dest_module, p->sn, p->view);
    if (x == NULL) x = sct_split_new(b, byz, from, msg, p);
    if ((x->side >> to) & 1) out = mir_sim_packed_clone(x->alt);
  } else {
    out = sct_double_vote(b, to, msg, m);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  mir_sim_byz_send(byz, to, out != NULL ? out : mir_sim_packed_clone(msg), 0);
}

/* ---- the corrupting replica ---- */

/* The generic misbehaving peer, except that the certificates it proposes as a primary are not
 * corrupted: a changed certificate is a valid proposal with other transactions, which a
 * Byzantine primary may make (and the protocol orders), but which forges clients' transactions
 * (see the file comment). Corrupting every other message tests ingress validation. */
static void sct_corrupt_filter(void *user, mir_sim_byz *byz, size_t from, size_t to,
                               const Mir__PackedMessage *msg) {
  sct_byz *b = user;
  bool pp = sct_is(msg, "trantor.Preprepare");
  mir_sim_byz_generic_filter(pp ? &b->certs : &b->any, byz, from, to, msg);
}

static void sct_corrupt_rates(sct_byz *b) {
  sc_generic_byz(&b->any);
  sc_generic_byz(&b->certs);
  b->certs.corrupt_ppm = 0;
  b->certs.replay_ppm = 0;
}

/* The over-threshold adversary: replica 1 colludes with the equivocating leader (every split
 * leaves it on the leader's side, and it votes both ways too), so f + 1 replicas misbehave. */
static void sct_collude(sct_byz *b, mir_sim *sim) {
  b->accomplices = 1ull << 1;
  mir_sim_set_byzantine(sim, 1, sct_equivocate_filter, b);
}

void sct_byz_install(sct_run *run, mir_sim *sim) {
  sct_byz *b = mir_xcalloc(1, sizeof *b);
  b->run = run;
  run->byz = b;
  mir_sim_byz_fn fn = sct_equivocate_filter;
  if (run->variant == SCT_V_SLOW_LEADER) {
    fn = sct_slow_filter;
  } else if (run->variant == SCT_V_CORRUPT) {
    sct_corrupt_rates(b);
    fn = sct_corrupt_filter;
  } else if (run->variant == SCT_V_COLLUDE) {
    sct_collude(b, sim);
  }
  mir_sim_set_byzantine(sim, run->special, fn, b);
}

void sct_byz_free(sct_run *run) {
  sct_byz *b = run->byz;
  if (b == NULL) return;
  for (size_t i = 0; i < SCT_SPLITS; i++) {
    if (b->splits[i].alt != NULL) protobuf_c_message_free_unpacked(&b->splits[i].alt->base, NULL);
  }
  mir_sim_byz_generic_clear(&b->any);
  mir_sim_byz_generic_clear(&b->certs);
  for (size_t i = 0; i < SCT_OLD_TXS; i++) {
    if (b->old[i] != NULL) protobuf_c_message_free_unpacked(&b->old[i]->base, NULL);
  }
  free(b);
  run->byz = NULL;
}
