/*
 * The OpenSSL 3 backend of the signature schemes behind crypto.h: key generation and derivation,
 * raw public keys, and the signing primitives (one message, one ECDSA digest) that the neutral
 * sign_common.c builds mir_sign and mir_verify on. Only EVP and provider-era APIs are used.
 *
 * Byte compatibility with the BoringSSL backend is part of the contract: an Ed25519 key is its
 * 32-byte seed (so keys and signatures are identical), ECDSA signatures are r || s with each half
 * 32 bytes big-endian (OpenSSL's DER form is converted both ways), raw public keys are the 32-byte
 * Ed25519 key or the 65-byte uncompressed point, and a P-256 key derived from a seed follows
 * BoringSSL's EC_KEY_derive_from_secret: HKDF-SHA256 of the seed (no salt, info "derive EC key
 * P-256") stretched to 48 bytes, read big-endian and reduced modulo the group order.
 *
 * Every input that may come from a peer (public key bytes, signatures, signed data) is checked
 * and reported as MIR_ECRYPTO, never asserted; OpenSSL's error queue is emptied after each
 * failure so that it cannot grow on a worker thread. Keys are immutable after creation, so signing
 * and verifying from several worker threads at once needs no lock.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/hasher.h"
#include "ossl_internal.h"

/* Bytes of HKDF output per derived P-256 scalar: the order's 32 bytes plus 16, so that the bias
 * of the reduction is at most 2^-128 (as EC_KEY_derive_from_secret). */
#define SIG_DERIVE_BYTES 48

/* Longest DER ECDSA-Sig-Value for P-256: SEQUENCE of two INTEGERs of up to 33 bytes each. */
#define SIG_DER_MAX 72

mir_err miri_crypto_error(mir_err code, const char *what) {
  unsigned long e = ERR_get_error();
  char reason[160] = "unknown reason";
  if (e != 0) ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  return mir_error_set(code, "%s: %s", what, reason);
}

/* ---- raw public keys ---- */

/* Writes the uncompressed P-256 point of pkey (an EC key, borrowed) into out; 0 on failure. */
static size_t sig_ec_raw_public(const EVP_PKEY *pkey, uint8_t *out) {
  char group[32] = "";
  size_t group_len = 0;
  if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &group_len) != 1 ||
      strcmp(group, MIRI_OSSL_P256) != 0) {
    return 0;
  }
  /* The coordinates, not the encoded point: a key read from a file with a compressed point
   * would otherwise come back compressed. */
  BIGNUM *x = NULL, *y = NULL;
  bool ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
            BN_bn2binpad(x, out + 1, 32) == 32 && BN_bn2binpad(y, out + 33, 32) == 32;
  BN_free(x);
  BN_free(y);
  out[0] = 0x04;
  return ok ? MIR_ECDSA_P256_PUBLIC_KEY_LEN : 0;
}

size_t miri_ossl_raw_public(const EVP_PKEY *pkey, mir_sig_scheme *scheme, uint8_t *out) {
  if (EVP_PKEY_is_a(pkey, "ED25519")) {
    size_t len = MIR_ED25519_PUBLIC_KEY_LEN;
    *scheme = MIR_SIG_ED25519;
    bool ok =
        EVP_PKEY_get_raw_public_key(pkey, out, &len) == 1 && len == MIR_ED25519_PUBLIC_KEY_LEN;
    return ok ? len : 0;
  }
  if (EVP_PKEY_is_a(pkey, "EC")) {
    *scheme = MIR_SIG_ECDSA_P256;
    return sig_ec_raw_public(pkey, out);
  }
  return 0;
}

/* ---- private keys ---- */

mir_private_key *miri_ossl_private_key_from_pkey(EVP_PKEY *pkey) {
  mir_private_key *key = mir_xcalloc(1, sizeof *key);
  key->pkey = pkey;
  key->pub_len = miri_ossl_raw_public(pkey, &key->scheme, key->pub);
  if (key->pub_len == 0) {
    mir_private_key_free(key);
    return NULL;
  }
  return key;
}

/* Builds an Ed25519 private key from its 32-byte seed (borrowed). NULL if the library fails. */
static mir_private_key *sig_ed25519_from_seed(const uint8_t *seed) {
  EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, MIR_SIG_SEED_LEN);
  return pkey != NULL ? miri_ossl_private_key_from_pkey(pkey) : NULL;
}

/* HKDF-SHA256 of seed (no salt) with info, SIG_DERIVE_BYTES into out. */
static bool sig_hkdf(const uint8_t *seed, const char *info, uint8_t *out) {
  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
  EVP_KDF_free(kdf);
  if (kctx == NULL) return false;
  char digest[] = "SHA256";
  uint8_t key[MIR_SIG_SEED_LEN];
  char info_copy[32];
  memcpy(key, seed, sizeof key);
  snprintf(info_copy, sizeof info_copy, "%s", info);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, key, sizeof key),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info_copy, strlen(info_copy)),
      OSSL_PARAM_construct_end()};
  bool ok = EVP_KDF_derive(kctx, out, SIG_DERIVE_BYTES, params) == 1;
  EVP_KDF_CTX_free(kctx);
  OPENSSL_cleanse(key, sizeof key);
  return ok;
}

/* Builds an EVP_PKEY (owned) for the P-256 key pair with scalar priv (borrowed, in [1, n-1]) and
 * public point pub (borrowed, 65 bytes). NULL if the library fails. */
static EVP_PKEY *sig_ec_keypair(const BIGNUM *priv, const uint8_t *pub) {
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  EVP_PKEY *pkey = NULL;
  bool ok =
      bld != NULL && pctx != NULL &&
      OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, MIRI_OSSL_P256, 0) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) == 1 &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                       MIR_ECDSA_P256_PUBLIC_KEY_LEN) == 1 &&
      (params = OSSL_PARAM_BLD_to_param(bld)) != NULL && EVP_PKEY_fromdata_init(pctx) == 1 &&
      EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) == 1;
  if (!ok) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
  }
  OSSL_PARAM_free(params); /* clears the private scalar: priv is a secure BIGNUM */
  OSSL_PARAM_BLD_free(bld);
  EVP_PKEY_CTX_free(pctx);
  return pkey;
}

/* Derives the P-256 key of seed (borrowed) as EC_KEY_derive_from_secret does. NULL on failure. */
static EVP_PKEY *sig_ec_derive(const uint8_t *seed) {
  uint8_t derived[SIG_DERIVE_BYTES];
  uint8_t pub[MIR_ECDSA_P256_PUBLIC_KEY_LEN];
  EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  EC_POINT *point = group != NULL ? EC_POINT_new(group) : NULL;
  BN_CTX *bn_ctx = BN_CTX_new();
  BIGNUM *priv = BN_secure_new();
  EVP_PKEY *pkey = NULL;
  bool ok = point != NULL && bn_ctx != NULL && priv != NULL &&
            sig_hkdf(seed, "derive EC key P-256", derived) &&
            BN_bin2bn(derived, sizeof derived, priv) != NULL &&
            BN_nnmod(priv, priv, EC_GROUP_get0_order(group), bn_ctx) == 1 && !BN_is_zero(priv) &&
            EC_POINT_mul(group, point, priv, NULL, NULL, bn_ctx) == 1 &&
            EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof pub,
                               bn_ctx) == sizeof pub;
  if (ok) pkey = sig_ec_keypair(priv, pub);
  OPENSSL_cleanse(derived, sizeof derived);
  BN_clear_free(priv);
  BN_CTX_free(bn_ctx);
  EC_POINT_free(point);
  EC_GROUP_free(group);
  return pkey;
}

mir_err mir_private_key_generate(mir_sig_scheme scheme, mir_private_key **out) {
  *out = NULL;
  if (scheme == MIR_SIG_ED25519) {
    /* From a random seed, as the BoringSSL backend does: the key is its seed either way. */
    uint8_t seed[MIR_SIG_SEED_LEN];
    if (RAND_bytes(seed, sizeof seed) != 1) return miri_crypto_error(MIR_ECRYPTO, "random seed");
    *out = sig_ed25519_from_seed(seed);
    OPENSSL_cleanse(seed, sizeof seed);
    return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "Ed25519 key generation");
  }
  EVP_PKEY *pkey = EVP_EC_gen("P-256");
  *out = pkey != NULL ? miri_ossl_private_key_from_pkey(pkey) : NULL;
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "ECDSA P-256 key generation");
}

mir_err mir_private_key_from_seed(mir_sig_scheme scheme, const uint8_t *seed,
                                  mir_private_key **out) {
  *out = NULL;
  if (scheme == MIR_SIG_ED25519) {
    *out = sig_ed25519_from_seed(seed);
    return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "Ed25519 key derivation");
  }
  EVP_PKEY *pkey = sig_ec_derive(seed);
  *out = pkey != NULL ? miri_ossl_private_key_from_pkey(pkey) : NULL;
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "ECDSA P-256 key derivation");
}

void mir_private_key_free(mir_private_key *key) {
  if (key == NULL) return;
  EVP_PKEY_free(key->pkey); /* OpenSSL clears the secret when it frees a key */
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

/* ---- public keys ---- */

/* Parses an uncompressed P-256 point (borrowed, 65 bytes) into a public-only key (owned); NULL
 * if it is not a point on the curve (OpenSSL checks that while importing it). */
static EVP_PKEY *sig_ec_public(const uint8_t *bytes) {
  char group[] = MIRI_OSSL_P256;
  uint8_t point[MIR_ECDSA_P256_PUBLIC_KEY_LEN];
  memcpy(point, bytes, sizeof point);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
      OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  EVP_PKEY *pkey = NULL;
  if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
      EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
  }
  EVP_PKEY_CTX_free(pctx);
  return pkey;
}

mir_err mir_public_key_from_bytes(mir_sig_scheme scheme, const uint8_t *bytes, size_t len,
                                  mir_public_key **out) {
  *out = NULL;
  size_t want = mir_sig_public_key_len(scheme);
  if (len != want) {
    return mir_error_set(MIR_ECRYPTO, "%s public key has %zu bytes, want %zu",
                         mir_sig_scheme_name(scheme), len, want);
  }
  EVP_PKEY *pkey = NULL;
  if (scheme == MIR_SIG_ECDSA_P256) {
    if (bytes[0] != 0x04) {
      return mir_error_set(MIR_ECRYPTO, "ecdsa-p256 public key is not an uncompressed point");
    }
    pkey = sig_ec_public(bytes);
  } else {
    /* Any 32 bytes are accepted here, as by the BoringSSL backend; a string that is not a
     * point fails every verification. */
    pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, bytes, len);
  }
  if (pkey == NULL) {
    return miri_crypto_error(
        MIR_ECRYPTO, scheme == MIR_SIG_ECDSA_P256 ? "ecdsa-p256 public key" : "ed25519 public key");
  }
  mir_public_key *key = mir_xcalloc(1, sizeof *key);
  key->scheme = scheme;
  memcpy(key->raw, bytes, len);
  key->len = len;
  key->pkey = pkey;
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
  /* Keys never change after creation, so the copy shares the parsed key by reference. */
  mir_public_key *copy = mir_xmalloc(sizeof *copy);
  *copy = *key;
  int up = EVP_PKEY_up_ref(copy->pkey);
  MIR_ASSERT(up == 1); /* an atomic increment; cannot fail */
  return copy;
}

void mir_public_key_free(mir_public_key *key) {
  if (key == NULL) return;
  EVP_PKEY_free(key->pkey);
  free(key);
}

/* ---- sign and verify ---- */

/* Converts OpenSSL's DER signature (borrowed, len bytes) into r || s (sig, 64 bytes). */
static bool sig_der_to_raw(const uint8_t *der, size_t len, uint8_t *sig) {
  const uint8_t *p = der;
  ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
  if (s == NULL) return false;
  const BIGNUM *r = NULL, *sv = NULL;
  ECDSA_SIG_get0(s, &r, &sv);
  bool ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(sv, sig + 32, 32) == 32;
  ECDSA_SIG_free(s);
  return ok;
}

/* Converts r || s (sig, 64 bytes, untrusted) into DER in der (SIG_DER_MAX bytes); returns the
 * length, 0 on failure. Any 64 bytes convert; the range of r and s is the verifier's to check. */
static size_t sig_raw_to_der(const uint8_t *sig, uint8_t *der) {
  ECDSA_SIG *s = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, 32, NULL);
  BIGNUM *sv = BN_bin2bn(sig + 32, 32, NULL);
  if (s == NULL || r == NULL || sv == NULL || ECDSA_SIG_set0(s, r, sv) != 1) {
    BN_free(r);
    BN_free(sv);
    ECDSA_SIG_free(s);
    return 0;
  }
  int len = i2d_ECDSA_SIG(s, NULL);
  uint8_t *p = der;
  if (len <= 0 || len > SIG_DER_MAX || i2d_ECDSA_SIG(s, &p) != len) len = 0;
  ECDSA_SIG_free(s);
  return (size_t)len;
}

mir_err miri_ecdsa_sign_digest(const mir_private_key *key, const uint8_t *digest, uint8_t *sig) {
  EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
  uint8_t der[SIG_DER_MAX];
  size_t der_len = sizeof der;
  /* No message digest is set on the context, so OpenSSL signs the 32 bytes as the digest. */
  bool ok = pctx != NULL && EVP_PKEY_sign_init(pctx) == 1 &&
            EVP_PKEY_sign(pctx, der, &der_len, digest, MIR_HASH_LEN) == 1;
  EVP_PKEY_CTX_free(pctx);
  if (!ok) return miri_crypto_error(MIR_ECRYPTO, "ECDSA sign");
  if (!sig_der_to_raw(der, der_len, sig)) {
    return miri_crypto_error(MIR_ECRYPTO, "ECDSA signature encoding");
  }
  return MIR_OK;
}

bool miri_ecdsa_verify_digest(const mir_public_key *key, const uint8_t *digest,
                              const uint8_t *sig) {
  uint8_t der[SIG_DER_MAX];
  size_t der_len = sig_raw_to_der(sig, der);
  EVP_PKEY_CTX *pctx = der_len > 0 ? EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL) : NULL;
  /* OpenSSL's verifier rejects r or s outside [1, n-1]. */
  bool ok = pctx != NULL && EVP_PKEY_verify_init(pctx) == 1 &&
            EVP_PKEY_verify(pctx, der, der_len, digest, MIR_HASH_LEN) == 1;
  EVP_PKEY_CTX_free(pctx);
  ERR_clear_error();
  return ok;
}

/* Ed25519 signature of msg (borrowed, len bytes) into sig (64 bytes). */
static bool sig_ed25519_sign(EVP_PKEY *pkey, const uint8_t *msg, size_t len, uint8_t *sig) {
  EVP_MD_CTX *mctx = EVP_MD_CTX_new();
  size_t sig_len = MIR_SIGNATURE_LEN;
  bool ok = mctx != NULL && EVP_DigestSignInit_ex(mctx, NULL, NULL, NULL, NULL, pkey, NULL) == 1 &&
            EVP_DigestSign(mctx, sig, &sig_len, msg, len) == 1 && sig_len == MIR_SIGNATURE_LEN;
  EVP_MD_CTX_free(mctx);
  return ok;
}

/* True if sig (borrowed, 64 bytes, untrusted) is pkey's Ed25519 signature of msg. */
static bool sig_ed25519_verify(EVP_PKEY *pkey, const uint8_t *msg, size_t len, const uint8_t *sig) {
  EVP_MD_CTX *mctx = EVP_MD_CTX_new();
  bool ok = mctx != NULL &&
            EVP_DigestVerifyInit_ex(mctx, NULL, NULL, NULL, NULL, pkey, NULL) == 1 &&
            EVP_DigestVerify(mctx, sig, MIR_SIGNATURE_LEN, msg, len) == 1;
  EVP_MD_CTX_free(mctx);
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
    if (!sig_ed25519_sign(key->pkey, msg, len, sig)) {
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
  bool ok = false;
  if (key->scheme == MIR_SIG_ED25519) {
    ok = sig_ed25519_verify(key->pkey, msg, len, sig);
  } else {
    uint8_t digest[MIR_HASH_LEN];
    mir_sha256(msg, len, digest);
    ok = miri_ecdsa_verify_digest(key, digest, sig);
  }
  return ok ? MIR_OK : mir_error_set(MIR_ECRYPTO, "signature does not verify");
}
