/*
 * Fuzz target: every decoder of untrusted bytes in the crypto seam. The first byte picks the
 * decoder (PEM private key, PEM public key, raw public key, base64/hex key text, signature
 * verification, TLS certificate check); the rest is its input. Each must return an error or a
 * valid object, never crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mir/assert.h"
#include "mir/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed Ed25519 and ECDSA key pair, derived once, to verify fuzzed signatures against. */
static mir_public_key *fuzz_key(mir_sig_scheme scheme) {
  static mir_public_key *keys[2];
  if (keys[scheme] == NULL) {
    uint8_t seed[MIR_SIG_SEED_LEN] = {42};
    mir_private_key *k = NULL;
    MIR_ASSERT(mir_private_key_from_seed(scheme, seed, &k) == MIR_OK);
    keys[scheme] = mir_private_key_public(k);
    mir_private_key_free(k);
  }
  return keys[scheme];
}

static void fuzz_verify(mir_sig_scheme scheme, const uint8_t *data, size_t size) {
  size_t sig_len = size < MIR_SIGNATURE_LEN + 1 ? size : MIR_SIGNATURE_LEN;
  ProtobufCBinaryData part = {size - sig_len, (uint8_t *)data + sig_len};
  mir_err err = mir_verify(fuzz_key(scheme), &part, 1, data, sig_len);
  MIR_ASSERT(err == MIR_ECRYPTO || err == MIR_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint8_t which = data[0] % 7;
  mir_sig_scheme scheme = (data[0] / 7) % 2 ? MIR_SIG_ECDSA_P256 : MIR_SIG_ED25519;
  data++;
  size--;
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  mir_private_key *priv = NULL;
  mir_public_key *pub = NULL;
  char id[MIR_MODULE_ID_MAX];
  switch (which) {
    case 0:
      (void)mir_private_key_from_pem(text, size, &priv);
      break;
    case 1:
      (void)mir_public_key_from_pem(text, size, &pub);
      break;
    case 2:
      (void)mir_public_key_from_bytes(scheme, data, size, &pub);
      break;
    case 3:
      (void)mir_public_key_from_text(scheme, text, &pub);
      break;
    case 4:
      fuzz_verify(scheme, data, size);
      break;
    case 5:
      (void)mir_tls_cert_check(text, text, id, sizeof id);
      (void)mir_tls_client_cert_check(text, text, id, sizeof id); /* the same check, for clients */
      break;
    default:
      (void)mir_public_key_from_base64(scheme, text, &pub);
      break;
  }
  if (pub != NULL) MIR_ASSERT(mir_public_key_scheme(pub) == scheme || which == 1);
  mir_private_key_free(priv);
  mir_public_key_free(pub);
  free(text);
  return 0;
}
