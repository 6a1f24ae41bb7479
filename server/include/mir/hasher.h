/*
 * Hashing: SHA-256 over lists of byte strings, and the hasher module that serves mir.HashRequest
 * (proto/mir/crypto.proto).
 *
 * A list is hashed as the concatenation of its parts, each prefixed by its length as 8 bytes
 * big-endian (the same encoding signatures use, crypto.h). So ["ab","c"] and ["a","bc"] never
 * hash alike, and no part boundary can be moved by whoever chooses the bytes.
 *
 * The implementation (SHA-256 of BoringSSL in mir_crypto, of OpenSSL 3 in mir_crypto_ossl; see
 * crypto.h for which binary links which) lives in server/modules/crypto; this header exposes no
 * library type.
 */
#ifndef MIR_HASHER_H
#define MIR_HASHER_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/crypto.pb-c.h"
#include "mir/errors.h"
#include "mir/event.h"
#include "mir/module.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_HASH_LEN 32

/* Incremental hashing state. Opaque storage, large and aligned enough for the library's context
 * (checked at compile time in the implementation); may live on the stack. Every mir_hash_init
 * must be followed by mir_hash_final, and a started context must not be copied: the OpenSSL 3
 * backend keeps a library context, allocated by init and freed by final, behind these bytes. */
typedef struct mir_hash_ctx {
  union {
    uint64_t align;
    unsigned char bytes[128];
  } opaque;
} mir_hash_ctx;

/* Starts a hash. ctx is borrowed. */
void mir_hash_init(mir_hash_ctx *ctx);

/* Adds one part (data borrowed, len bytes) with its 8-byte length prefix. */
void mir_hash_update_part(mir_hash_ctx *ctx, const void *data, size_t len);

/* Adds bytes with no prefix (plain SHA-256 streaming). */
void mir_hash_update_raw(mir_hash_ctx *ctx, const void *data, size_t len);

/* Finishes the hash into out (MIR_HASH_LEN bytes). ctx may be initialised again afterwards. */
void mir_hash_final(mir_hash_ctx *ctx, uint8_t *out);

/* Digest of the list parts (borrowed, n of them) into out (MIR_HASH_LEN bytes). */
void mir_hash_parts(const ProtobufCBinaryData *parts, size_t n, uint8_t *out);

/* Plain SHA-256 of data (borrowed) into out (MIR_HASH_LEN bytes). */
void mir_sha256(const void *data, size_t len, uint8_t *out);

/* ---- the hasher module (passive: hashing is fast enough to run inline) ----
 *
 * mir.HashRequest -> mir.HashResult with one digest per item, in order, sent to
 * request.origin.module with the request's origin; the source is the id the request was
 * addressed to. mir.Init is ignored. A request without a valid origin or any other event type is
 * a programmer error in the requesting module: apply returns MIR_EPROTO with detail. */
extern const mir_module_ops mir_hasher_module_ops;

/* Creates the module's state (owned; mir_node_add_module takes it with &mir_hasher_module_ops). */
mir_err mir_hasher_module_new(void **state);

/* Digests computed by a hasher module state (borrowed). Call on the dispatcher thread or after
 * the node stopped. */
uint64_t mir_hasher_module_hashed(const void *state);

/* A HashRequest with one item (parts borrowed and copied) to hasher from src, origin
 * {src, context_id}. Returns owned. */
mir_event *mir_event_hash_request(const char *hasher, const char *src,
                                  const ProtobufCBinaryData *parts, size_t n_parts,
                                  uint64_t context_id);

#ifdef __cplusplus
}
#endif
#endif
