/*
 * The first availability implementation (availability.h): the certificate is the packed batch.
 *
 * RequestCert stores the requester's origin in a dsl context and asks the mempool for a batch of
 * the requested buckets (RequestBatch, origin = this module and the context); the NewBatch that
 * comes back is packed and returned as NewCert to the stored origin. VerifyCert and
 * RequestTransactions decode the certificate: at most cert_bytes_max bytes, a Batch in canonical
 * encoding (packing the decoded batch gives the same bytes back, so one batch has exactly one
 * certificate and unknown fields cannot hide in it) that passes trantor_batch_valid. Both are
 * answered at once, from the certificate alone, so every correct node answers alike. The epoch
 * of VerifyCert is not used: a packed batch means the same in every epoch.
 *
 * Decoding once. Every ordered certificate is decoded twice in a row: VerifyCert when its slot is
 * decided, RequestTransactions when the log delivers it. A batch that VerifyCert found valid is
 * kept, with a copy of its certificate, until the RequestTransactions of the same bytes takes
 * it: first in, first out, at most BC_CACHE_ENTRIES batches and BC_CACHE_BYTES certificate
 * bytes. A hit answers what decoding would: the bytes match exactly, and a certificate valid for
 * VerifyCert (its buckets checked) is valid for RequestTransactions (no bucket check). Only the
 * CPU spent depends on the cache, never an answer.
 *
 * Certificates are untrusted bytes (a primary proposes them): no value in them reaches an
 * assertion. Malformed requests from local modules (no origin, bucket out of range) are wiring
 * errors and stop the node. At most requests_max RequestCerts are in flight; beyond that a
 * request gets the certificate of an empty batch at once.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "availability.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/dsl.h"

#define BC_MAGIC 0x62636572u /* "bcer" */
#define BC_STATS_FIELDS (sizeof(trantor_availability_stats) / sizeof(uint64_t))
#define BC_REASON_BYTES 160
/* Encoding overhead of one transaction in a packed Batch beyond its data bytes: the txs tag and
 * length (1 + 5), client id tag, length and up to 64 bytes (66), tx_no tag and varint (11), data
 * tag and length (1 + 5). */
#define BC_TX_OVERHEAD_BYTES 96
/* The cache of decoded batches (above): a delivery follows its decision by a few rows of the log,
 * so a few dozen batches cover it. */
#define BC_CACHE_ENTRIES 64
#define BC_CACHE_BYTES ((uint64_t)16 << 20)

_Static_assert(sizeof(trantor_availability_stats) % sizeof(uint64_t) == 0,
               "the stats are published as an array of uint64_t");

typedef struct bc_origin {
  char module[MIR_MODULE_ID_MAX];
  uint64_t context_id;
} bc_origin;

typedef struct bc_cached {
  ProtobufCBinaryData cert; /* owned copy */
  Trantor__Batch *batch;    /* owned */
} bc_cached;

typedef struct batchcert {
  uint32_t magic;
  trantor_params params;
  char self[MIR_MODULE_ID_MAX];
  char mempool[MIR_MODULE_ID_MAX];
  size_t requests_max;
  uint64_t cert_max;
  trantor_availability_stats st;
  _Atomic uint64_t published[BC_STATS_FIELDS];
  bc_cached cache[BC_CACHE_ENTRIES]; /* oldest first */
  size_t cache_n;
  uint64_t cache_bytes;
} batchcert;

static uint64_t bc_cert_bytes_max(const trantor_params *p) {
  return p->max_batch_bytes + (uint64_t)p->max_batch_txs * BC_TX_OVERHEAD_BYTES;
}

/* Returns an owned Origin for module and context id. */
static Mir__Origin *bc_origin_new(const char *module, uint64_t context_id) {
  Mir__Origin *o = mir_xmalloc(sizeof(*o));
  mir__origin__init(o);
  o->module = mir_xstrdup(module);
  o->context_id = context_id;
  return o;
}

static mir_err bc_check_origin(const batchcert *b, const Mir__Origin *o, const char *what,
                               const char *src) {
  if (o == NULL || o->module == NULL || !mir_module_id_valid(o->module)) {
    return mir_error_set(MIR_EINVAL, "%s: %s from %s without a valid origin", b->self, what, src);
  }
  return MIR_OK;
}

static mir_err bc_check_buckets(const batchcert *b, const uint32_t *buckets, size_t n,
                                const char *what, const char *src) {
  for (size_t i = 0; i < n; i++) {
    if (buckets[i] >= b->params.num_buckets) {
      return mir_error_set(MIR_EINVAL, "%s: %s from %s: bucket %u of %u", b->self, what, src,
                           buckets[i], b->params.num_buckets);
    }
  }
  return MIR_OK;
}

/* Packs batch (borrowed) into a certificate (owned bytes in *out). */
static void bc_pack(const Trantor__Batch *batch, ProtobufCBinaryData *out) {
  out->len = trantor__batch__get_packed_size(batch);
  out->data = out->len > 0 ? mir_xmalloc(out->len) : NULL;
  if (out->len > 0) trantor__batch__pack(batch, out->data);
}

/* True if cert is the one encoding of batch (decoded from it): no unknown fields, which
 * protobuf-c would keep and re-emit, and the same bytes when packed again (no non-minimal
 * varints, no repeated or reordered fields). */
static bool bc_canonical(const Trantor__Batch *batch, ProtobufCBinaryData cert) {
  if (batch->base.n_unknown_fields != 0) return false;
  for (size_t i = 0; i < batch->n_txs; i++) {
    if (batch->txs[i] != NULL && batch->txs[i]->base.n_unknown_fields != 0) return false;
  }
  ProtobufCBinaryData again;
  bc_pack(batch, &again);
  bool same =
      again.len == cert.len && (cert.len == 0 || memcmp(again.data, cert.data, cert.len) == 0);
  free(again.data);
  return same;
}

/* Decodes an untrusted certificate. Returns the batch (owned; protobuf_c_message_free_unpacked)
 * or NULL with a reason. */
static Trantor__Batch *bc_decode(const batchcert *b, ProtobufCBinaryData cert, bool check_buckets,
                                 const uint32_t *buckets, size_t n, char *reason,
                                 size_t reason_len) {
  if (cert.len > b->cert_max) {
    snprintf(reason, reason_len, "certificate of %zu bytes, at most %llu", cert.len,
             (unsigned long long)b->cert_max);
    return NULL;
  }
  Trantor__Batch *batch = trantor__batch__unpack(NULL, cert.len, cert.data);
  if (batch == NULL) {
    snprintf(reason, reason_len, "certificate does not decode as a batch");
    return NULL;
  }
  if (!bc_canonical(batch, cert)) {
    snprintf(reason, reason_len, "certificate is not the canonical encoding of a batch");
  } else if (trantor_batch_valid(batch, &b->params, check_buckets, buckets, n, reason,
                                 reason_len)) {
    return batch;
  }
  protobuf_c_message_free_unpacked(&batch->base, NULL);
  return NULL;
}

/* ---- the cache of decoded batches ---- */

static void bc_cache_drop(batchcert *b, size_t i) {
  bc_cached *c = &b->cache[i];
  b->cache_bytes -= c->cert.len;
  free(c->cert.data);
  if (c->batch != NULL) protobuf_c_message_free_unpacked(&c->batch->base, NULL);
  memmove(c, c + 1, (b->cache_n - i - 1) * sizeof(*c));
  b->cache_n--;
}

/* Keeps batch (takes ownership), decoded from cert (borrowed, copied), evicting the oldest
 * entries to make room. */
static void bc_cache_put(batchcert *b, ProtobufCBinaryData cert, Trantor__Batch *batch) {
  if (cert.len == 0 || cert.len > BC_CACHE_BYTES) {
    protobuf_c_message_free_unpacked(&batch->base, NULL);
    return;
  }
  while (b->cache_n == BC_CACHE_ENTRIES || b->cache_bytes + cert.len > BC_CACHE_BYTES) {
    bc_cache_drop(b, 0);
  }
  bc_cached *c = &b->cache[b->cache_n++];
  c->cert.len = cert.len;
  c->cert.data = mir_xmemdup(cert.data, cert.len);
  c->batch = batch;
  b->cache_bytes += cert.len;
}

/* Takes the batch decoded from exactly these bytes (cert borrowed) out of the cache: owned, or
 * NULL if it is not there. */
static Trantor__Batch *bc_cache_take(batchcert *b, ProtobufCBinaryData cert) {
  for (size_t i = 0; i < b->cache_n; i++) {
    bc_cached *c = &b->cache[i];
    if (c->cert.len != cert.len || memcmp(c->cert.data, cert.data, cert.len) != 0) continue;
    Trantor__Batch *batch = c->batch;
    c->batch = NULL;
    bc_cache_drop(b, i);
    return batch;
  }
  return NULL;
}

static void bc_free(void *user) {
  batchcert *b = user;
  while (b->cache_n > 0) bc_cache_drop(b, b->cache_n - 1);
  free(b);
}

/* Sends NewCert for batch (borrowed) to origin (module, context id). */
static void bc_emit_cert(mir_dsl *dsl, batchcert *b, const Trantor__Batch *batch,
                         const char *module, uint64_t context_id) {
  Trantor__NewCert *nc = mir_xmalloc(sizeof(*nc));
  trantor__new_cert__init(nc);
  bc_pack(batch, &nc->cert);
  nc->origin = bc_origin_new(module, context_id);
  b->st.certs++;
  if (batch->n_txs == 0) b->st.certs_empty++;
  mir_dsl_emit_new(dsl, module, &nc->base);
}

static void bc_ctx_free(void *ctx) {
  free(ctx);
}

static mir_err bc_on_request_cert(mir_dsl *dsl, const mir_event *ev, void *user) {
  batchcert *b = user;
  const Trantor__RequestCert *rc = (const Trantor__RequestCert *)ev->payload;
  mir_err err = bc_check_origin(b, rc->origin, "RequestCert", ev->src);
  if (err == MIR_OK) err = bc_check_buckets(b, rc->buckets, rc->n_buckets, "RequestCert", ev->src);
  if (err != MIR_OK) return err;
  uint64_t id = 0;
  bc_origin *o = NULL;
  if (mir_dsl_context_count(dsl) < b->requests_max) {
    o = mir_xcalloc(1, sizeof(*o));
    snprintf(o->module, sizeof(o->module), "%s", rc->origin->module);
    o->context_id = rc->origin->context_id;
    if (mir_dsl_store_context(dsl, o, bc_ctx_free, &id) != MIR_OK) o = NULL; /* freed */
  }
  if (o == NULL) {
    Trantor__Batch empty = TRANTOR__BATCH__INIT;
    b->st.busy++;
    bc_emit_cert(dsl, b, &empty, rc->origin->module, rc->origin->context_id);
    return MIR_OK;
  }
  Trantor__RequestBatch *rb = mir_xmalloc(sizeof(*rb));
  trantor__request_batch__init(rb);
  rb->epoch = rc->epoch;
  rb->n_buckets = rc->n_buckets;
  rb->buckets = mir_xmemdup(rc->buckets, rc->n_buckets * sizeof(uint32_t));
  rb->origin = mir_dsl_origin_new(dsl, id);
  rb->fill = rc->fill;
  mir_dsl_emit_new(dsl, b->mempool, &rb->base);
  return MIR_OK;
}

static mir_err bc_on_new_batch(mir_dsl *dsl, const mir_event *ev, void *user) {
  batchcert *b = user;
  const Trantor__NewBatch *nb = (const Trantor__NewBatch *)ev->payload;
  const bc_origin *o = nb->origin != NULL ? mir_dsl_context(dsl, nb->origin->context_id) : NULL;
  if (o == NULL) {
    b->st.stale++;
    return MIR_OK;
  }
  mir_dsl_dispose_context(dsl, nb->origin->context_id);
  Trantor__Batch empty = TRANTOR__BATCH__INIT;
  bc_emit_cert(dsl, b, nb->batch != NULL ? nb->batch : &empty, o->module, o->context_id);
  return MIR_OK;
}

static mir_err bc_on_verify_cert(mir_dsl *dsl, const mir_event *ev, void *user) {
  batchcert *b = user;
  const Trantor__VerifyCert *vc = (const Trantor__VerifyCert *)ev->payload;
  mir_err err = bc_check_origin(b, vc->origin, "VerifyCert", ev->src);
  if (err == MIR_OK) err = bc_check_buckets(b, vc->buckets, vc->n_buckets, "VerifyCert", ev->src);
  if (err != MIR_OK) return err;
  char reason[BC_REASON_BYTES] = "";
  Trantor__Batch *batch =
      bc_decode(b, vc->cert, true, vc->buckets, vc->n_buckets, reason, sizeof(reason));
  Trantor__CertVerified *cv = mir_xmalloc(sizeof(*cv));
  trantor__cert_verified__init(cv);
  cv->valid = batch != NULL;
  if (batch == NULL) cv->reason = mir_xstrdup(reason);
  cv->origin = bc_origin_new(vc->origin->module, vc->origin->context_id);
  if (batch != NULL) {
    b->st.verified_valid++;
  } else {
    b->st.verified_invalid++;
  }
  if (batch != NULL) bc_cache_put(b, vc->cert, batch); /* for its RequestTransactions */
  mir_dsl_emit_new(dsl, vc->origin->module, &cv->base);
  return MIR_OK;
}

static mir_err bc_on_request_transactions(mir_dsl *dsl, const mir_event *ev, void *user) {
  batchcert *b = user;
  const Trantor__RequestTransactions *rt = (const Trantor__RequestTransactions *)ev->payload;
  mir_err err = bc_check_origin(b, rt->origin, "RequestTransactions", ev->src);
  if (err != MIR_OK) return err;
  char reason[BC_REASON_BYTES] = "";
  Trantor__ProvideTransactions *pt = mir_xmalloc(sizeof(*pt));
  trantor__provide_transactions__init(pt);
  pt->batch = bc_cache_take(b, rt->cert);
  if (pt->batch != NULL) {
    b->st.provided_cached++;
  } else {
    pt->batch = bc_decode(b, rt->cert, false, NULL, 0, reason, sizeof(reason));
  }
  b->st.provided++;
  if (pt->batch == NULL) {
    /* An ordered but invalid certificate delivers nothing, alike at every correct node. */
    b->st.provided_invalid++;
    pt->batch = mir_xmalloc(sizeof(*pt->batch));
    trantor__batch__init(pt->batch);
  }
  pt->origin = bc_origin_new(rt->origin->module, rt->origin->context_id);
  mir_dsl_emit_new(dsl, rt->origin->module, &pt->base);
  return MIR_OK;
}

static mir_err bc_publish(mir_dsl *dsl, void *user) {
  (void)dsl;
  batchcert *b = user;
  const uint64_t *f = (const uint64_t *)&b->st;
  for (size_t i = 0; i < BC_STATS_FIELDS; i++) {
    atomic_store_explicit(&b->published[i], f[i], memory_order_relaxed);
  }
  return MIR_OK;
}

void trantor_availability_batchcert_stats(const void *state, trantor_availability_stats *out) {
  const batchcert *b = mir_dsl_user(state);
  MIR_ASSERT(b != NULL && b->magic == BC_MAGIC);
  uint64_t *f = (uint64_t *)out;
  for (size_t i = 0; i < BC_STATS_FIELDS; i++) {
    f[i] = atomic_load_explicit(&b->published[i], memory_order_relaxed);
  }
}

static mir_err bc_register(mir_dsl *dsl) {
  mir_err err = mir_dsl_upon_event(dsl, &trantor__request_cert__descriptor, bc_on_request_cert);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__new_batch__descriptor, bc_on_new_batch);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__verify_cert__descriptor, bc_on_verify_cert);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__request_transactions__descriptor,
                             bc_on_request_transactions);
  if (err == MIR_OK) err = mir_dsl_after_batch(dsl, bc_publish);
  return err;
}

static mir_err bc_copy_id(char dst[MIR_MODULE_ID_MAX], const char *id, const char *dflt,
                          const char *field) {
  if (id == NULL) id = dflt;
  if (!mir_module_id_valid(id)) {
    return mir_error_set(MIR_EINVAL, "availability config: %s: invalid module id", field);
  }
  snprintf(dst, MIR_MODULE_ID_MAX, "%s", id);
  return MIR_OK;
}

static mir_err bc_create(const trantor_availability_config *cfg, const mir_module_ops **ops,
                         void **state) {
  if (cfg == NULL || cfg->params == NULL) {
    return mir_error_set(MIR_EINVAL, "availability config: no params");
  }
  mir_err err = trantor_params_check(cfg->params);
  if (err != MIR_OK) return err;
  batchcert *b = mir_xcalloc(1, sizeof(*b));
  b->magic = BC_MAGIC;
  b->params = *cfg->params;
  b->cert_max = bc_cert_bytes_max(&b->params);
  b->requests_max =
      cfg->requests_max ? cfg->requests_max : TRANTOR_AVAILABILITY_REQUESTS_MAX_DEFAULT;
  err = bc_copy_id(b->self, cfg->module_id, TRANTOR_AVAILABILITY_ID, "module_id");
  if (err == MIR_OK) err = bc_copy_id(b->mempool, cfg->mempool_id, "mempool", "mempool_id");
  if (err != MIR_OK) {
    free(b);
    return err;
  }
  mir_dsl *dsl = mir_dsl_new(b->self, b);
  mir_dsl_set_user_free(dsl, bc_free);
  mir_dsl_set_contexts_max(dsl, b->requests_max);
  err = bc_register(dsl);
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  *ops = &mir_dsl_ops;
  *state = dsl;
  return MIR_OK;
}

const trantor_availability_impl trantor_availability_batchcert = {
    .name = "batchcert",
    .create = bc_create,
    .cert_bytes_max = bc_cert_bytes_max,
};
