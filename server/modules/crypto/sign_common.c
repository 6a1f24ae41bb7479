/*
 * Signing and verifying lists of byte strings (crypto.h), the same for both backends: the
 * length-prefixed encoding, the limits on what one signature covers, and the choice of what the
 * scheme signs. Only the primitives below come from the backend (mir_sign_message,
 * mir_verify_message, miri_ecdsa_sign_digest, miri_ecdsa_verify_digest).
 *
 * Ed25519 signs the encoding itself (PureEdDSA needs the whole message, so the encoding is built
 * in a buffer: on the stack when small, else on the heap, bounded by MIR_SIGN_BYTES_MAX). ECDSA
 * P-256 signs the SHA-256 of the encoding, which is streamed without a buffer; its signature is
 * the fixed-size r || s form so that a signature's length alone tells a malformed one apart.
 *
 * The limits are checked before any work, and every input that may come from a peer (signatures,
 * signed data) is reported as MIR_ECRYPTO or MIR_EINVAL, never asserted.
 */
#include <stdlib.h>
#include <string.h>

#include "crypto_common.h"
#include "mir/alloc.h"
#include "mir/hasher.h"

/* Encodings up to this size are built on the stack when signing with Ed25519. */
#define SIGN_STACK_BUF 1024

mir_err miri_sign_check_limits(const ProtobufCBinaryData *parts, size_t n_parts, size_t *len) {
  if (n_parts > MIR_SIGN_PARTS_MAX) {
    return mir_error_set(MIR_EINVAL, "signed data has %zu parts, more than %u", n_parts,
                         MIR_SIGN_PARTS_MAX);
  }
  size_t total = 0;
  for (size_t i = 0; i < n_parts; i++) {
    if (parts[i].len > MIR_SIGN_BYTES_MAX || total + 8 + parts[i].len > MIR_SIGN_BYTES_MAX) {
      return mir_error_set(MIR_EINVAL, "signed data is longer than %u bytes", MIR_SIGN_BYTES_MAX);
    }
    total += 8 + parts[i].len;
  }
  *len = total;
  return MIR_OK;
}

size_t mir_sign_encoded_len(const ProtobufCBinaryData *parts, size_t n_parts) {
  size_t total = 0;
  for (size_t i = 0; i < n_parts; i++) total += 8 + parts[i].len;
  return total;
}

void mir_sign_encode(const ProtobufCBinaryData *parts, size_t n_parts, uint8_t *out) {
  for (size_t i = 0; i < n_parts; i++) {
    uint64_t len = parts[i].len;
    for (int b = 7; b >= 0; b--) {
      *out++ = (uint8_t)(len >> (8 * b));
    }
    if (parts[i].len > 0) memcpy(out, parts[i].data, parts[i].len);
    out += parts[i].len;
  }
}

/* Builds the encoding of parts in stack_buf when it fits, else in a heap buffer that *heap owns.
 */
static const uint8_t *sign_encode_buf(const ProtobufCBinaryData *parts, size_t n_parts, size_t len,
                                      uint8_t *stack_buf, uint8_t **heap) {
  uint8_t *buf = stack_buf;
  *heap = NULL;
  if (len > SIGN_STACK_BUF) buf = *heap = mir_xmalloc(len);
  mir_sign_encode(parts, n_parts, buf);
  return buf;
}

mir_err mir_sign(const mir_private_key *key, const ProtobufCBinaryData *parts, size_t n_parts,
                 uint8_t *sig, size_t *sig_len) {
  size_t len = 0;
  mir_err err = miri_sign_check_limits(parts, n_parts, &len);
  if (err != MIR_OK) return err;
  if (mir_private_key_scheme(key) == MIR_SIG_ECDSA_P256) {
    uint8_t digest[MIR_HASH_LEN];
    mir_hash_parts(parts, n_parts, digest);
    *sig_len = MIR_SIGNATURE_LEN;
    return miri_ecdsa_sign_digest(key, digest, sig);
  }
  uint8_t stack_buf[SIGN_STACK_BUF];
  uint8_t *heap = NULL;
  const uint8_t *msg = sign_encode_buf(parts, n_parts, len, stack_buf, &heap);
  err = mir_sign_message(key, msg, len, sig, sig_len);
  free(heap);
  return err;
}

mir_err mir_verify(const mir_public_key *key, const ProtobufCBinaryData *parts, size_t n_parts,
                   const uint8_t *sig, size_t sig_len) {
  size_t len = 0;
  mir_err err = miri_sign_check_limits(parts, n_parts, &len);
  if (err != MIR_OK) return err;
  if (sig_len != MIR_SIGNATURE_LEN) {
    return mir_error_set(MIR_ECRYPTO, "signature has %zu bytes, want %d", sig_len,
                         MIR_SIGNATURE_LEN);
  }
  if (mir_public_key_scheme(key) == MIR_SIG_ECDSA_P256) {
    uint8_t digest[MIR_HASH_LEN];
    mir_hash_parts(parts, n_parts, digest);
    return miri_ecdsa_verify_digest(key, digest, sig)
               ? MIR_OK
               : mir_error_set(MIR_ECRYPTO, "signature does not verify");
  }
  uint8_t stack_buf[SIGN_STACK_BUF];
  uint8_t *heap = NULL;
  const uint8_t *msg = sign_encode_buf(parts, n_parts, len, stack_buf, &heap);
  err = mir_verify_message(key, msg, len, sig, sig_len);
  free(heap);
  return err;
}

bool mir_verify_many(const mir_signed_item *items, size_t n, bool *ok) {
  bool all_ok = true;
  for (size_t i = 0; i < n; i++) {
    const mir_signed_item *it = &items[i];
    bool good = it->key != NULL &&
                mir_verify(it->key, it->parts, it->n_parts, it->sig, it->sig_len) == MIR_OK;
    if (ok != NULL) ok[i] = good;
    all_ok = all_ok && good;
  }
  return all_ok;
}
