/*
 * The OpenSSL 3 backend of SHA-256 (hasher.h). The list encoding and the hasher module are
 * backend-neutral (hasher_module.c).
 *
 * OpenSSL 3 has no stack-allocated SHA-256 context outside its deprecated API, so mir_hash_ctx
 * holds a pointer to an EVP_MD_CTX that mir_hash_init allocates and mir_hash_final frees (the
 * contract in hasher.h: every started hash is finished, and a started context is not copied).
 * The SHA-256 implementation is fetched from the provider once per process and kept, since an
 * implicit fetch on every digest would cost more than hashing a short message.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "mir/assert.h"
#include "mir/hasher.h"
#include "ossl_internal.h"

_Static_assert(sizeof(EVP_MD_CTX *) <= sizeof(((mir_hash_ctx *)0)->opaque.bytes),
               "mir_hash_ctx is too small for a pointer");

static pthread_once_t hash_once = PTHREAD_ONCE_INIT;
static EVP_MD *hash_md; /* written once under hash_once, then only read */

static void hash_fetch(void) {
  hash_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *miri_ossl_sha256(void) {
  pthread_once(&hash_once, hash_fetch);
  /* Not input-dependent: only a broken OpenSSL installation lacks SHA-256. */
  MIR_ASSERT(hash_md != NULL);
  return hash_md;
}

/* The EVP context stored in ctx's opaque bytes. */
static EVP_MD_CTX **hash_slot(mir_hash_ctx *ctx) {
  return (EVP_MD_CTX **)(void *)ctx->opaque.bytes;
}

void mir_hash_init(mir_hash_ctx *ctx) {
  EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
  /* Both calls fail only when out of memory, which the project treats as fatal (mir/alloc.h). */
  MIR_ASSERT(md_ctx != NULL);
  int ok = EVP_DigestInit_ex2(md_ctx, miri_ossl_sha256(), NULL);
  MIR_ASSERT(ok == 1);
  *hash_slot(ctx) = md_ctx;
}

void mir_hash_update_raw(mir_hash_ctx *ctx, const void *data, size_t len) {
  if (len == 0) return;
  int ok = EVP_DigestUpdate(*hash_slot(ctx), data, len);
  MIR_ASSERT(ok == 1); /* a started SHA-256 context accepts any input */
}

void mir_hash_final(mir_hash_ctx *ctx, uint8_t *out) {
  EVP_MD_CTX *md_ctx = *hash_slot(ctx);
  unsigned int len = 0;
  int ok = EVP_DigestFinal_ex(md_ctx, out, &len);
  MIR_ASSERT(ok == 1 && len == MIR_HASH_LEN);
  EVP_MD_CTX_free(md_ctx);
  *hash_slot(ctx) = NULL;
}

void mir_sha256(const void *data, size_t len, uint8_t *out) {
  unsigned int out_len = 0;
  int ok = EVP_Digest(data, len, out, &out_len, miri_ossl_sha256(), NULL);
  MIR_ASSERT(ok == 1 && out_len == MIR_HASH_LEN); /* fails only when out of memory */
}
