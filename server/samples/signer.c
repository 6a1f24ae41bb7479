/*
 * The test signer: a synchronous, deterministic, and deliberately NOT SECURE stand-in for the
 * crypto module, so that the samples and their tests run without keys.
 *
 * A "signature" is 32 bytes computed from the node id and the signed parts by a keyless mixing
 * function (four 64-bit lanes of FNV-1a with distinct offsets, each finished with a SplitMix64
 * finaliser). The input is encoded without ambiguity (a domain tag, the node id and every part
 * each prefixed by its 8-byte length), so a signature binds the node id and the exact list of
 * parts: node A's signature does not verify as node B's, and changing, splitting or joining
 * parts makes verification fail. Anyone can compute any node's signature, which is fine for
 * tests and for nothing else; the Ed25519 crypto module (server/modules/crypto) serves the same
 * events for real.
 *
 * Requests are answered in the batch they arrive in, to origin.module with the request's origin.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/crypto.pb-c.h"
#include "samples.h"

#define SIG_LANES (MIR_TEST_SIGNATURE_BYTES / 8)
#define SIG_TAG "mir-test-signer/1"

typedef struct sig_state {
  uint64_t lane[SIG_LANES];
} sig_state;

static void sig_bytes(sig_state *s, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < SIG_LANES; k++) s->lane[k] = (s->lane[k] ^ p[i]) * 0x100000001b3ULL;
  }
}

/* Feeds a length as 8 bytes little-endian, so that lengths delimit the parts. */
static void sig_len(sig_state *s, uint64_t len) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(len >> (8 * i));
  sig_bytes(s, b, sizeof(b));
}

static uint64_t sig_finish(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

void mir_test_signature(const char *node_id, const ProtobufCBinaryData *parts, size_t n,
                        uint8_t out[MIR_TEST_SIGNATURE_BYTES]) {
  sig_state s;
  for (size_t k = 0; k < SIG_LANES; k++)
    s.lane[k] = 0xcbf29ce484222325ULL + 0x9e3779b97f4a7c15ULL * k;
  sig_bytes(&s, (const uint8_t *)SIG_TAG, sizeof(SIG_TAG));
  size_t id_len = strlen(node_id);
  sig_len(&s, id_len);
  sig_bytes(&s, (const uint8_t *)node_id, id_len);
  sig_len(&s, n);
  for (size_t i = 0; i < n; i++) {
    sig_len(&s, parts[i].len);
    sig_bytes(&s, parts[i].data, parts[i].len);
  }
  for (size_t k = 0; k < SIG_LANES; k++) {
    uint64_t v = sig_finish(s.lane[k]);
    for (int i = 0; i < 8; i++) out[8 * k + (size_t)i] = (uint8_t)(v >> (8 * i));
  }
}

/* True if sig is node_id's test signature over the parts. */
static bool signer_check(const char *node_id, const ProtobufCBinaryData *parts, size_t n,
                         ProtobufCBinaryData sig) {
  if (node_id == NULL || sig.len != MIR_TEST_SIGNATURE_BYTES) return false;
  uint8_t expect[MIR_TEST_SIGNATURE_BYTES];
  mir_test_signature(node_id, parts, n, expect);
  return memcmp(expect, sig.data, sizeof(expect)) == 0;
}

typedef struct signer {
  char node_id[MIR_MODULE_ID_MAX];
} signer;

/* Requests come from local modules, so a missing or invalid origin is a wiring error. */
static mir_err signer_origin_check(mir_dsl *dsl, const mir_event *ev, const Mir__Origin *o) {
  if (o == NULL || o->module == NULL || !mir_module_id_valid(o->module)) {
    return mir_error_set(MIR_EINVAL, "%s: %s from %s without a valid origin",
                         mir_dsl_module_id(dsl), mir_event_type_name(ev), ev->src);
  }
  return MIR_OK;
}

static Mir__Origin *signer_origin_copy(const Mir__Origin *o) {
  Mir__Origin *c = mir_xmalloc(sizeof(*c));
  mir__origin__init(c);
  c->module = mir_xstrdup(o->module);
  c->context_id = o->context_id;
  return c;
}

static mir_err signer_on_sign(mir_dsl *dsl, const mir_event *ev, void *user) {
  const signer *s = user;
  const Mir__SignRequest *req = (const Mir__SignRequest *)ev->payload;
  mir_err err = signer_origin_check(dsl, ev, req->origin);
  if (err != MIR_OK) return err;
  Mir__SignResult *res = mir_xmalloc(sizeof(*res));
  mir__sign_result__init(res);
  res->signature.len = MIR_TEST_SIGNATURE_BYTES;
  res->signature.data = mir_xmalloc(MIR_TEST_SIGNATURE_BYTES);
  mir_test_signature(s->node_id, req->data, req->n_data, res->signature.data);
  res->origin = signer_origin_copy(req->origin);
  mir_dsl_emit_new(dsl, req->origin->module, &res->base);
  return MIR_OK;
}

static mir_err signer_on_verify(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)user;
  const Mir__VerifyRequest *req = (const Mir__VerifyRequest *)ev->payload;
  mir_err err = signer_origin_check(dsl, ev, req->origin);
  if (err != MIR_OK) return err;
  Mir__VerifyResult *res = mir_xmalloc(sizeof(*res));
  mir__verify_result__init(res);
  res->node_id = mir_xstrdup(req->node_id != NULL ? req->node_id : "");
  res->ok = signer_check(req->node_id, req->data, req->n_data, req->signature);
  res->origin = signer_origin_copy(req->origin);
  mir_dsl_emit_new(dsl, req->origin->module, &res->base);
  return MIR_OK;
}

static mir_err signer_on_verify_many(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)user;
  const Mir__VerifyManyRequest *req = (const Mir__VerifyManyRequest *)ev->payload;
  mir_err err = signer_origin_check(dsl, ev, req->origin);
  if (err != MIR_OK) return err;
  Mir__VerifyManyResult *res = mir_xmalloc(sizeof(*res));
  mir__verify_many_result__init(res);
  res->n_ok = req->n_items;
  res->ok = req->n_items ? mir_xmalloc(req->n_items * sizeof(*res->ok)) : NULL;
  res->all_ok = true;
  for (size_t i = 0; i < req->n_items; i++) {
    const Mir__SignedData *it = req->items[i];
    res->ok[i] = it != NULL && signer_check(it->node_id, it->data, it->n_data, it->signature);
    res->all_ok = res->all_ok && res->ok[i];
  }
  res->origin = signer_origin_copy(req->origin);
  mir_dsl_emit_new(dsl, req->origin->module, &res->base);
  return MIR_OK;
}

mir_err mir_test_signer_new(const char *module_id, const char *node_id, mir_dsl **out) {
  if (module_id == NULL || !mir_module_id_valid(module_id)) {
    return mir_error_set(MIR_EINVAL, "test signer: invalid module id");
  }
  if (node_id == NULL || node_id[0] == '\0' || strlen(node_id) >= MIR_MODULE_ID_MAX) {
    return mir_error_set(MIR_EINVAL, "test signer: invalid node id");
  }
  signer *s = mir_xcalloc(1, sizeof(*s));
  strcpy(s->node_id, node_id);
  mir_dsl *dsl = mir_dsl_new(module_id, s);
  mir_dsl_set_user_free(dsl, free);
  mir_err err = mir_dsl_upon_event(dsl, &mir__sign_request__descriptor, signer_on_sign);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &mir__verify_request__descriptor, signer_on_verify);
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &mir__verify_many_request__descriptor, signer_on_verify_many);
  }
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  *out = dsl;
  return MIR_OK;
}
