/*
 * The BoringSSL backend of SHA-256 (hasher.h): the incremental context lives inside mir_hash_ctx
 * (a SHA256_CTX needs no allocation), and one-shot digests call SHA256 directly. The list
 * encoding and the hasher module are backend-neutral (hasher_module.c).
 */
#include <openssl/sha.h>

#include "crypto_internal.h"
#include "mir/hasher.h"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((mir_hash_ctx *)0)->opaque.bytes),
               "mir_hash_ctx is too small for SHA256_CTX");
_Static_assert(_Alignof(SHA256_CTX) <= _Alignof(uint64_t), "mir_hash_ctx is under-aligned");

static SHA256_CTX *hash_sha(mir_hash_ctx *ctx) {
  return (SHA256_CTX *)ctx->opaque.bytes;
}

void mir_hash_init(mir_hash_ctx *ctx) {
  SHA256_Init(hash_sha(ctx));
}

void mir_hash_update_raw(mir_hash_ctx *ctx, const void *data, size_t len) {
  if (len > 0) SHA256_Update(hash_sha(ctx), data, len);
}

void mir_hash_final(mir_hash_ctx *ctx, uint8_t *out) {
  SHA256_Final(out, hash_sha(ctx));
}

void mir_sha256(const void *data, size_t len, uint8_t *out) {
  SHA256(data, len, out);
}
