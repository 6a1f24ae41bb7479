/*
 * The BoringSSL backend of key (de)serialisation: PEM text (PKCS#8 private keys,
 * SubjectPublicKeyInfo public keys) and base64 of raw public keys for the membership file. Files
 * and the hex form are backend-neutral (keyfile_common.c).
 *
 * Everything parsed here is untrusted: text is bounded by MIRI_CRYPTO_FILE_MAX before it is
 * parsed, a key of another type or curve is refused with MIR_EUNSUPPORTED, and an encrypted
 * private key is refused instead of prompting for a password (the callback always declines).
 */
#include <openssl/base64.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_internal.h"
#include "mir/alloc.h"

/* ---- PEM ---- */

/* Declines every password request: encrypted keys are not supported, and a library must never
 * prompt on a terminal. */
static int keyfile_no_password(char *buf, int size, int rwflag, void *user_data) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)user_data;
  return 0;
}

/* Backend (crypto_common.h): BIO_mem_contents is BoringSSL's call for it. */
char *miri_crypto_bio_string(BIO *bio) {
  const uint8_t *contents = NULL;
  size_t len = 0;
  if (BIO_mem_contents(bio, &contents, &len) != 1) return NULL;
  char *s = mir_xmalloc(len + 1);
  memcpy(s, contents, len);
  s[len] = '\0';
  return s;
}

/* Wraps key (borrowed) in an EVP_PKEY (owned by the caller), private or public half. */
static EVP_PKEY *keyfile_pkey(mir_sig_scheme scheme, const uint8_t *ed_private,
                              const uint8_t *ed_public, EC_KEY *ec) {
  if (scheme == MIR_SIG_ED25519) {
    return ed_private != NULL ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, ed_private, 32)
                              : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, ed_public, 32);
  }
  EVP_PKEY *pkey = EVP_PKEY_new();
  if (pkey != NULL && EVP_PKEY_set1_EC_KEY(pkey, ec) != 1) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
  }
  return pkey;
}

mir_err mir_private_key_to_pem(const mir_private_key *key, char **out) {
  *out = NULL;
  EVP_PKEY *pkey = keyfile_pkey(key->scheme, key->ed, NULL, key->ec);
  BIO *bio = BIO_new(BIO_s_mem());
  bool ok = pkey != NULL && bio != NULL &&
            PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1;
  if (ok) *out = miri_crypto_bio_string(bio);
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "private key PEM encoding");
}

mir_err mir_public_key_to_pem(const mir_public_key *key, char **out) {
  *out = NULL;
  EVP_PKEY *pkey = keyfile_pkey(key->scheme, NULL, key->raw, key->ec);
  BIO *bio = BIO_new(BIO_s_mem());
  bool ok = pkey != NULL && bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1;
  if (ok) *out = miri_crypto_bio_string(bio);
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "public key PEM encoding");
}

/* Parses one PEM key (private or public half) from untrusted text into an EVP_PKEY (owned). */
static EVP_PKEY *keyfile_read_pkey(const char *pem, size_t len, bool private_half) {
  if (len > MIRI_CRYPTO_FILE_MAX) return NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL) return NULL;
  EVP_PKEY *pkey = private_half ? PEM_read_bio_PrivateKey(bio, NULL, keyfile_no_password, NULL)
                                : PEM_read_bio_PUBKEY(bio, NULL, keyfile_no_password, NULL);
  BIO_free(bio);
  return pkey;
}

/* Converts a parsed private EVP_PKEY into our key; MIR_EUNSUPPORTED for other types. */
static mir_err keyfile_private_from_pkey(EVP_PKEY *pkey, mir_private_key **out) {
  if (EVP_PKEY_id(pkey) == EVP_PKEY_ED25519) {
    uint8_t seed[32];
    size_t seed_len = sizeof seed;
    if (EVP_PKEY_get_raw_private_key(pkey, seed, &seed_len) != 1 || seed_len != sizeof seed) {
      return miri_crypto_error(MIR_ECRYPTO, "Ed25519 private key");
    }
    *out = miri_private_key_from_ed25519_seed(seed);
    OPENSSL_cleanse(seed, sizeof seed);
    return MIR_OK;
  }
  if (EVP_PKEY_id(pkey) == EVP_PKEY_EC) {
    EC_KEY *ec = EVP_PKEY_get1_EC_KEY(pkey);
    *out = ec != NULL ? miri_private_key_from_ec(ec) : NULL;
    if (*out == NULL) return mir_error_set(MIR_EUNSUPPORTED, "EC private key is not on P-256");
    return MIR_OK;
  }
  return mir_error_set(MIR_EUNSUPPORTED, "private key is neither Ed25519 nor ECDSA P-256");
}

mir_err mir_private_key_from_pem(const char *pem, size_t len, mir_private_key **out) {
  *out = NULL;
  EVP_PKEY *pkey = keyfile_read_pkey(pem, len, true);
  if (pkey == NULL) return miri_crypto_error(MIR_ECRYPTO, "not a PEM private key");
  mir_err err = keyfile_private_from_pkey(pkey, out);
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  return err;
}

/* Converts a parsed public EVP_PKEY into our key; MIR_EUNSUPPORTED for other types. */
static mir_err keyfile_public_from_pkey(EVP_PKEY *pkey, mir_public_key **out) {
  if (EVP_PKEY_id(pkey) == EVP_PKEY_ED25519) {
    uint8_t raw[32];
    size_t raw_len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) != 1) {
      return miri_crypto_error(MIR_ECRYPTO, "Ed25519 public key");
    }
    return mir_public_key_from_bytes(MIR_SIG_ED25519, raw, raw_len, out);
  }
  if (EVP_PKEY_id(pkey) == EVP_PKEY_EC) {
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pkey);
    const EC_GROUP *group = ec ? EC_KEY_get0_group(ec) : NULL;
    if (group == NULL || EC_GROUP_get_curve_name(group) != NID_X9_62_prime256v1 ||
        EC_KEY_get0_public_key(ec) == NULL) {
      return mir_error_set(MIR_EUNSUPPORTED, "EC public key is not on P-256");
    }
    uint8_t raw[MIR_PUBLIC_KEY_MAX];
    size_t n = EC_POINT_point2oct(group, EC_KEY_get0_public_key(ec), POINT_CONVERSION_UNCOMPRESSED,
                                  raw, sizeof raw, NULL);
    return mir_public_key_from_bytes(MIR_SIG_ECDSA_P256, raw, n, out);
  }
  return mir_error_set(MIR_EUNSUPPORTED, "public key is neither Ed25519 nor ECDSA P-256");
}

mir_err mir_public_key_from_pem(const char *pem, size_t len, mir_public_key **out) {
  *out = NULL;
  EVP_PKEY *pkey = keyfile_read_pkey(pem, len, false);
  if (pkey == NULL) return miri_crypto_error(MIR_ECRYPTO, "not a PEM public key");
  mir_err err = keyfile_public_from_pkey(pkey, out);
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  return err;
}

/* ---- base64 ---- */

char *mir_public_key_to_base64(const mir_public_key *key) {
  size_t cap = 0;
  int ok = EVP_EncodedLength(&cap, key->len);
  (void)ok; /* cannot fail for a 65-byte input */
  char *out = mir_xmalloc(cap);
  EVP_EncodeBlock((uint8_t *)out, key->raw, key->len);
  return out;
}

mir_err mir_public_key_from_base64(mir_sig_scheme scheme, const char *text, mir_public_key **out) {
  *out = NULL;
  size_t text_len = strlen(text);
  if (text_len > 4 * MIR_PUBLIC_KEY_MAX) {
    return mir_error_set(MIR_ECRYPTO, "public key text is too long (%zu characters)", text_len);
  }
  uint8_t raw[4 * MIR_PUBLIC_KEY_MAX];
  size_t raw_len = 0;
  if (EVP_DecodeBase64(raw, &raw_len, sizeof raw, (const uint8_t *)text, text_len) != 1) {
    ERR_clear_error();
    return mir_error_set(MIR_ECRYPTO, "public key is not valid base64");
  }
  return mir_public_key_from_bytes(scheme, raw, raw_len, out);
}
