/*
 * The backend-neutral half of hashing (hasher.h): lists of byte strings hashed through the
 * backend's SHA-256 context, and the passive hasher module.
 *
 * Each part is fed to SHA-256 after its length as 8 bytes big-endian, so a list's digest commits
 * to the part boundaries as well as the bytes. The module answers every HashRequest inline, in
 * order: hashing a few kilobytes costs microseconds, less than a trip through a worker queue
 * would, and inline answers keep the module deterministic for the simulator.
 */
#include <stdlib.h>
#include <string.h>

#include "crypto_common.h"
#include "mir/alloc.h"
#include "mir/crypto.pb-c.h"
#include "mir/hasher.h"
#include "mir/log.h"
#include "requests.h"

void mir_hash_update_part(mir_hash_ctx *ctx, const void *data, size_t len) {
  uint8_t prefix[8];
  uint64_t n = len;
  for (int b = 0; b < 8; b++) prefix[b] = (uint8_t)(n >> (8 * (7 - b)));
  mir_hash_update_raw(ctx, prefix, sizeof prefix);
  mir_hash_update_raw(ctx, data, len);
}

void mir_hash_parts(const ProtobufCBinaryData *parts, size_t n, uint8_t *out) {
  mir_hash_ctx ctx;
  mir_hash_init(&ctx);
  for (size_t i = 0; i < n; i++) mir_hash_update_part(&ctx, parts[i].data, parts[i].len);
  mir_hash_final(&ctx, out);
}

/* ---- module ---- */

typedef struct hasher_module {
  uint64_t hashed; /* digests computed; only the dispatcher thread touches it */
} hasher_module;

mir_err mir_hasher_module_new(void **state) {
  *state = mir_xcalloc(1, sizeof(hasher_module));
  return MIR_OK;
}

uint64_t mir_hasher_module_hashed(const void *state) {
  return ((const hasher_module *)state)->hashed;
}

/* Answers one request (borrowed; its origin is moved into the result). */
static mir_event *hasher_answer(hasher_module *m, mir_event *ev) {
  Mir__HashRequest *req = (Mir__HashRequest *)ev->payload;
  Mir__HashResult *res = mir_xmalloc(sizeof *res);
  mir__hash_result__init(res);
  res->n_digests = req->n_items;
  res->digests = req->n_items ? mir_xcalloc(req->n_items, sizeof *res->digests) : NULL;
  for (size_t i = 0; i < req->n_items; i++) {
    const Mir__HashData *item = req->items[i];
    res->digests[i].len = MIR_HASH_LEN;
    res->digests[i].data = mir_xmalloc(MIR_HASH_LEN);
    mir_hash_parts(item ? item->parts : NULL, item ? item->n_parts : 0, res->digests[i].data);
  }
  m->hashed += req->n_items;
  res->origin = req->origin;
  req->origin = NULL;
  return mir_event_new(res->origin->module, ev->dest, &res->base);
}

static mir_err hasher_apply(void *state, mir_event_list *in, mir_event_list *out) {
  hasher_module *m = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__init__descriptor)) continue;
    if (!mir_event_is(ev, &mir__hash_request__descriptor)) {
      return mir_error_set(MIR_EPROTO, "hasher %s: unexpected event %s from %s", ev->dest,
                           mir_event_type_name(ev), ev->src);
    }
    const Mir__HashRequest *req = (const Mir__HashRequest *)ev->payload;
    mir_err err = miri_origin_check(req->origin, ev, "hasher");
    if (err != MIR_OK) return err;
    mir_event_list_push(out, hasher_answer(m, ev));
  }
  return MIR_OK;
}

static void hasher_destroy(void *state) {
  free(state);
}

const mir_module_ops mir_hasher_module_ops = {
    .name = "hasher",
    .kind = MIR_MODULE_PASSIVE,
    .apply = hasher_apply,
    .start = NULL,
    .stop = NULL,
    .destroy = hasher_destroy,
};
