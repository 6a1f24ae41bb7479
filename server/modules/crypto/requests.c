/*
 * Request constructors of crypto.h and hasher.h, and the origin check both modules apply before
 * answering. Each constructor builds an owned payload tree (every buffer malloc'd) so the
 * generic protobuf-c free path releases it.
 */
#include "requests.h"

#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/hasher.h"

mir_err miri_origin_check(const Mir__Origin *origin, const mir_event *ev, const char *what) {
  if (origin == NULL || origin->module == NULL || !mir_module_id_valid(origin->module)) {
    return mir_error_set(MIR_EPROTO, "%s %s: %s from %s has no valid origin module", what, ev->dest,
                         mir_event_type_name(ev), ev->src);
  }
  return MIR_OK;
}

ProtobufCBinaryData *miri_bytes_copy(const ProtobufCBinaryData *parts, size_t n) {
  if (n == 0) return NULL;
  ProtobufCBinaryData *copy = mir_xcalloc(n, sizeof *copy);
  for (size_t i = 0; i < n; i++) {
    copy[i].len = parts[i].len;
    copy[i].data = mir_xmemdup(parts[i].data, parts[i].len);
  }
  return copy;
}

Mir__Origin *miri_origin_new(const char *module, uint64_t context_id) {
  Mir__Origin *o = mir_xmalloc(sizeof *o);
  mir__origin__init(o);
  o->module = mir_xstrdup(module);
  o->context_id = context_id;
  return o;
}

mir_event *mir_event_sign_request(const char *crypto, const char *src,
                                  const ProtobufCBinaryData *parts, size_t n_parts,
                                  uint64_t context_id) {
  Mir__SignRequest *req = mir_xmalloc(sizeof *req);
  mir__sign_request__init(req);
  req->n_data = n_parts;
  req->data = miri_bytes_copy(parts, n_parts);
  req->origin = miri_origin_new(src, context_id);
  return mir_event_new(crypto, src, &req->base);
}

mir_event *mir_event_verify_request(const char *crypto, const char *src,
                                    const ProtobufCBinaryData *parts, size_t n_parts,
                                    const uint8_t *sig, size_t sig_len, const char *node_id,
                                    uint64_t context_id) {
  Mir__VerifyRequest *req = mir_xmalloc(sizeof *req);
  mir__verify_request__init(req);
  req->n_data = n_parts;
  req->data = miri_bytes_copy(parts, n_parts);
  req->signature.len = sig_len;
  req->signature.data = mir_xmemdup(sig, sig_len);
  req->node_id = mir_xstrdup(node_id);
  req->origin = miri_origin_new(src, context_id);
  return mir_event_new(crypto, src, &req->base);
}

mir_event *mir_event_hash_request(const char *hasher, const char *src,
                                  const ProtobufCBinaryData *parts, size_t n_parts,
                                  uint64_t context_id) {
  Mir__HashRequest *req = mir_xmalloc(sizeof *req);
  mir__hash_request__init(req);
  req->n_items = 1;
  req->items = mir_xmalloc(sizeof *req->items);
  req->items[0] = mir_xmalloc(sizeof *req->items[0]);
  mir__hash_data__init(req->items[0]);
  req->items[0]->n_parts = n_parts;
  req->items[0]->parts = miri_bytes_copy(parts, n_parts);
  req->origin = miri_origin_new(src, context_id);
  return mir_event_new(hasher, src, &req->base);
}
