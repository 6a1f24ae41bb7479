/*
 * The BoringSSL backend of the signature schemes behind crypto.h: key generation and derivation,
 * raw public keys, and the signing primitives (one message, one ECDSA digest) that the neutral
 * sign_common.c builds mir_sign and mir_verify on.
 *
 * ECDSA P-256 signatures are the fixed-size r || s form so that a signature's length alone tells
 * a malformed one apart. Keys derived from a seed use BoringSSL's EC_KEY_derive_from_secret
 * (HKDF-SHA256, reduced modulo the group order); the OpenSSL backend reproduces it byte for byte.
 *
 * Every input that may come from a peer (public key bytes, signatures, signed data) is checked
 * and reported as MIR_ECRYPTO, never asserted. Keys are immutable after creation, so signing and
 * verifying from several worker threads at once needs no lock.
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_internal.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/hasher.h"

mir_err miri_crypto_error(mir_err code, const char *what) {
  uint32_t e = ERR_get_error();
  char reason[160] = "unknown reason";
  if (e != 0) ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  return mir_error_set(code, "%s: %s", what, reason);
}

/* ---- keys ---- */

static const EC_GROUP *sig_p256(void) {
  /* BoringSSL returns a static built-in group here; freeing it is a no-op, so no reference is
   * kept and none is leaked. */
  return EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

mir_private_key *miri_private_key_from_ed25519_seed(const uint8_t *seed) {
  mir_private_key *key = mir_xcalloc(1, sizeof *key);
  key->scheme = MIR_SIG_ED25519;
  ED25519_keypair_from_seed(key->pub, key->ed, seed);
  key->pub_len = MIR_ED25519_PUBLIC_KEY_LEN;
  return key;
}

/* Makes sure ec has its public point (PKCS#8 files may omit it) and that it is a P-256 key. */
static bool sig_ec_complete(EC_KEY *ec) {
  const EC_GROUP *group = EC_KEY_get0_group(ec);
  if (group == NULL || EC_GROUP_get_curve_name(group) != NID_X9_62_prime256v1) return false;
  if (EC_KEY_get0_private_key(ec) == NULL) return false;
  if (EC_KEY_get0_public_key(ec) != NULL) return true;
  EC_POINT *pub = EC_POINT_new(group);
  bool ok = pub != NULL &&
            EC_POINT_mul(group, pub, EC_KEY_get0_private_key(ec), NULL, NULL, NULL) == 1 &&
            EC_KEY_set_public_key(ec, pub) == 1;
  EC_POINT_free(pub);
  return ok;
}

mir_private_key *miri_private_key_from_ec(EC_KEY *ec) {
  if (!sig_ec_complete(ec)) {
    EC_KEY_free(ec);
    return NULL;
  }
  mir_private_key *key = mir_xcalloc(1, sizeof *key);
  key->scheme = MIR_SIG_ECDSA_P256;
  key->ec = ec;
  key->pub_len = EC_POINT_point2oct(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec),
                                    POINT_CONVERSION_UNCOMPRESSED, key->pub, sizeof key->pub, NULL);
  if (key->pub_len != MIR_ECDSA_P256_PUBLIC_KEY_LEN) {
    mir_private_key_free(key);
    return NULL;
  }
  return key;
}

mir_err mir_private_key_generate(mir_sig_scheme scheme, mir_private_key **out) {
  *out = NULL;
  if (scheme == MIR_SIG_ED25519) {
    uint8_t seed[MIR_SIG_SEED_LEN];
    if (RAND_bytes(seed, sizeof seed) != 1) return miri_crypto_error(MIR_ECRYPTO, "random seed");
    *out = miri_private_key_from_ed25519_seed(seed);
    OPENSSL_cleanse(seed, sizeof seed);
    return MIR_OK;
  }
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  if (ec == NULL || EC_KEY_generate_key(ec) != 1) {
    EC_KEY_free(ec);
    return miri_crypto_error(MIR_ECRYPTO, "ECDSA P-256 key generation");
  }
  *out = miri_private_key_from_ec(ec);
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "ECDSA P-256 key generation");
}

mir_err mir_private_key_from_seed(mir_sig_scheme scheme, const uint8_t *seed,
                                  mir_private_key **out) {
  *out = NULL;
  if (scheme == MIR_SIG_ED25519) {
    *out = miri_private_key_from_ed25519_seed(seed);
    return MIR_OK;
  }
  EC_KEY *ec = EC_KEY_derive_from_secret(sig_p256(), seed, MIR_SIG_SEED_LEN);
  if (ec == NULL) return miri_crypto_error(MIR_ECRYPTO, "ECDSA P-256 key derivation");
  *out = miri_private_key_from_ec(ec);
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "ECDSA P-256 key derivation");
}

void mir_private_key_free(mir_private_key *key) {
  if (key == NULL) return;
  OPENSSL_cleanse(key->ed, sizeof key->ed);
  EC_KEY_free(key->ec);
  free(key);
}

mir_sig_scheme mir_private_key_scheme(const mir_private_key *key) {
  return key->scheme;
}

const uint8_t *miri_private_key_raw_public(const mir_private_key *key, size_t *len) {
  *len = key->pub_len;
  return key->pub;
}

mir_public_key *mir_private_key_public(const mir_private_key *key) {
  mir_public_key *pub = NULL;
  mir_err err = mir_public_key_from_bytes(key->scheme, key->pub, key->pub_len, &pub);
  MIR_ASSERT(err == MIR_OK); /* our own key's point is valid by construction */
  return pub;
}

/* Parses an uncompressed P-256 point into a public-only EC_KEY; NULL if it is not on the curve. */
static EC_KEY *sig_ec_public(const uint8_t *bytes, size_t len) {
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  if (ec == NULL) return NULL;
  const EC_GROUP *group = EC_KEY_get0_group(ec);
  EC_POINT *pt = EC_POINT_new(group);
  bool ok = pt != NULL && EC_POINT_oct2point(group, pt, bytes, len, NULL) == 1 &&
            EC_KEY_set_public_key(ec, pt) == 1;
  EC_POINT_free(pt);
  if (!ok) {
    EC_KEY_free(ec);
    return NULL;
  }
  return ec;
}

mir_err mir_public_key_from_bytes(mir_sig_scheme scheme, const uint8_t *bytes, size_t len,
                                  mir_public_key **out) {
  *out = NULL;
  size_t want = mir_sig_public_key_len(scheme);
  if (len != want) {
    return mir_error_set(MIR_ECRYPTO, "%s public key has %zu bytes, want %zu",
                         mir_sig_scheme_name(scheme), len, want);
  }
  EC_KEY *ec = NULL;
  if (scheme == MIR_SIG_ECDSA_P256) {
    if (bytes[0] != 0x04) {
      return mir_error_set(MIR_ECRYPTO, "ecdsa-p256 public key is not an uncompressed point");
    }
    ec = sig_ec_public(bytes, len);
    if (ec == NULL) return miri_crypto_error(MIR_ECRYPTO, "ecdsa-p256 public key");
  }
  mir_public_key *key = mir_xcalloc(1, sizeof *key);
  key->scheme = scheme;
  memcpy(key->raw, bytes, len);
  key->len = len;
  key->ec = ec;
  *out = key;
  return MIR_OK;
}

size_t mir_public_key_bytes(const mir_public_key *key, uint8_t *out) {
  memcpy(out, key->raw, key->len);
  return key->len;
}

mir_sig_scheme mir_public_key_scheme(const mir_public_key *key) {
  return key->scheme;
}

bool mir_public_key_equal(const mir_public_key *a, const mir_public_key *b) {
  return a->scheme == b->scheme && a->len == b->len && memcmp(a->raw, b->raw, a->len) == 0;
}

mir_public_key *mir_public_key_clone(const mir_public_key *key) {
  mir_public_key *copy = NULL;
  mir_err err = mir_public_key_from_bytes(key->scheme, key->raw, key->len, &copy);
  MIR_ASSERT(err == MIR_OK); /* key was valid when it was built */
  return copy;
}

void mir_public_key_free(mir_public_key *key) {
  if (key == NULL) return;
  EC_KEY_free(key->ec);
  free(key);
}

/* ---- sign and verify ---- */

mir_err miri_ecdsa_sign_digest(const mir_private_key *key, const uint8_t *digest, uint8_t *sig) {
  ECDSA_SIG *s = ECDSA_do_sign(digest, MIR_HASH_LEN, key->ec);
  if (s == NULL) return miri_crypto_error(MIR_ECRYPTO, "ECDSA sign");
  const BIGNUM *r = NULL, *sv = NULL;
  ECDSA_SIG_get0(s, &r, &sv);
  bool ok = BN_bn2bin_padded(sig, 32, r) == 1 && BN_bn2bin_padded(sig + 32, 32, sv) == 1;
  ECDSA_SIG_free(s);
  return ok ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "ECDSA signature encoding");
}

bool miri_ecdsa_verify_digest(const mir_public_key *key, const uint8_t *digest,
                              const uint8_t *sig) {
  ECDSA_SIG *s = ECDSA_SIG_new();
  if (s == NULL) return false;
  BIGNUM *r = BN_bin2bn(sig, 32, NULL);
  BIGNUM *sv = BN_bin2bn(sig + 32, 32, NULL);
  if (r == NULL || sv == NULL || ECDSA_SIG_set0(s, r, sv) != 1) {
    BN_free(r);
    BN_free(sv);
    ECDSA_SIG_free(s);
    ERR_clear_error();
    return false;
  }
  /* ECDSA_do_verify rejects r or s outside [1, n-1]. */
  bool ok = ECDSA_do_verify(digest, MIR_HASH_LEN, s, key->ec) == 1;
  ECDSA_SIG_free(s);
  ERR_clear_error();
  return ok;
}

mir_err mir_sign_message(const mir_private_key *key, const uint8_t *msg, size_t len, uint8_t *sig,
                         size_t *sig_len) {
  if (len > MIR_SIGN_BYTES_MAX) {
    return mir_error_set(MIR_EINVAL, "signed data is longer than %u bytes", MIR_SIGN_BYTES_MAX);
  }
  *sig_len = MIR_SIGNATURE_LEN;
  if (key->scheme == MIR_SIG_ED25519) {
    if (ED25519_sign(sig, msg, len, key->ed) != 1) {
      return miri_crypto_error(MIR_ECRYPTO, "Ed25519 sign");
    }
    return MIR_OK;
  }
  uint8_t digest[MIR_HASH_LEN];
  mir_sha256(msg, len, digest);
  return miri_ecdsa_sign_digest(key, digest, sig);
}

mir_err mir_verify_message(const mir_public_key *key, const uint8_t *msg, size_t len,
                           const uint8_t *sig, size_t sig_len) {
  if (len > MIR_SIGN_BYTES_MAX) {
    return mir_error_set(MIR_EINVAL, "signed data is longer than %u bytes", MIR_SIGN_BYTES_MAX);
  }
  if (sig_len != MIR_SIGNATURE_LEN) {
    return mir_error_set(MIR_ECRYPTO, "signature has %zu bytes, want %d", sig_len,
                         MIR_SIGNATURE_LEN);
  }
  bool ok;
  if (key->scheme == MIR_SIG_ED25519) {
    ok = ED25519_verify(msg, len, sig, key->raw) == 1;
  } else {
    uint8_t digest[MIR_HASH_LEN];
    mir_sha256(msg, len, digest);
    ok = miri_ecdsa_verify_digest(key, digest, sig);
  }
  return ok ? MIR_OK : mir_error_set(MIR_ECRYPTO, "signature does not verify");
}
