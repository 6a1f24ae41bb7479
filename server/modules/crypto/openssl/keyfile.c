/*
 * The OpenSSL 3 backend of key (de)serialisation: PEM text (PKCS#8 private keys,
 * SubjectPublicKeyInfo public keys) and base64 of raw public keys for the membership file. Files
 * and the hex form are backend-neutral (keyfile_common.c).
 *
 * The formats are the standard ones, so PEM written by either backend loads in the other (the
 * fixtures of tests/modules/crypto prove it). Everything parsed here is untrusted: text is bounded
 * by MIRI_CRYPTO_FILE_MAX before it is parsed, a key of another type or curve is refused with
 * MIR_EUNSUPPORTED, an encrypted key is refused instead of prompting for a password, and an EC
 * private key whose stored public point does not belong to its scalar is refused (OpenSSL, unlike
 * BoringSSL, does not check that while parsing).
 *
 * Base64 is decoded by our own strict decoder rather than EVP_DecodeBlock, which skips white
 * space and cannot tell padding from data: it accepts exactly what BoringSSL's EVP_DecodeBase64
 * accepts (the standard alphabet, a length that is a multiple of four, padding only at the end),
 * so a membership file reads the same under both backends.
 */
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "ossl_internal.h"

/* ---- PEM ---- */

int miri_ossl_no_password(char *buf, int size, int rwflag, void *user_data) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)user_data;
  return 0;
}

char *miri_crypto_bio_string(BIO *bio) {
  char *contents = NULL;
  long len = BIO_get_mem_data(bio, &contents);
  if (len < 0 || contents == NULL) return NULL;
  char *s = mir_xmalloc((size_t)len + 1);
  memcpy(s, contents, (size_t)len);
  s[len] = '\0';
  return s;
}

mir_err mir_private_key_to_pem(const mir_private_key *key, char **out) {
  *out = NULL;
  BIO *bio = BIO_new(BIO_s_mem());
  bool ok =
      bio != NULL && PEM_write_bio_PKCS8PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) == 1;
  if (ok) *out = miri_crypto_bio_string(bio);
  BIO_free(bio);
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "private key PEM encoding");
}

mir_err mir_public_key_to_pem(const mir_public_key *key, char **out) {
  *out = NULL;
  BIO *bio = BIO_new(BIO_s_mem());
  bool ok = bio != NULL && PEM_write_bio_PUBKEY(bio, key->pkey) == 1;
  if (ok) *out = miri_crypto_bio_string(bio);
  BIO_free(bio);
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "public key PEM encoding");
}

/* Parses one PEM key (private or public half) from untrusted text into an EVP_PKEY (owned). */
static EVP_PKEY *keyfile_read_pkey(const char *pem, size_t len, bool private_half) {
  if (len > MIRI_CRYPTO_FILE_MAX) return NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL) return NULL;
  EVP_PKEY *pkey = private_half ? PEM_read_bio_PrivateKey(bio, NULL, miri_ossl_no_password, NULL)
                                : PEM_read_bio_PUBKEY(bio, NULL, miri_ossl_no_password, NULL);
  BIO_free(bio);
  return pkey;
}

/* True if pkey's (borrowed) public half belongs to its private half. */
static bool keyfile_pair_matches(EVP_PKEY *pkey) {
  EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
  bool ok = pctx != NULL && EVP_PKEY_pairwise_check(pctx) == 1;
  EVP_PKEY_CTX_free(pctx);
  return ok;
}

/* Converts a parsed private EVP_PKEY (takes ownership) into our key; MIR_EUNSUPPORTED for other
 * types and curves. */
static mir_err keyfile_private_from_pkey(EVP_PKEY *pkey, mir_private_key **out) {
  bool ed = EVP_PKEY_is_a(pkey, "ED25519"), ec = EVP_PKEY_is_a(pkey, "EC");
  if (!ed && !ec) {
    EVP_PKEY_free(pkey);
    return mir_error_set(MIR_EUNSUPPORTED, "private key is neither Ed25519 nor ECDSA P-256");
  }
  if (ec && !keyfile_pair_matches(pkey)) {
    EVP_PKEY_free(pkey);
    return miri_crypto_error(MIR_ECRYPTO, "EC private key does not match its public key");
  }
  *out = miri_ossl_private_key_from_pkey(pkey);
  if (*out != NULL) return MIR_OK;
  if (ec) return mir_error_set(MIR_EUNSUPPORTED, "EC private key is not on P-256");
  return miri_crypto_error(MIR_ECRYPTO, "Ed25519 private key");
}

mir_err mir_private_key_from_pem(const char *pem, size_t len, mir_private_key **out) {
  *out = NULL;
  EVP_PKEY *pkey = keyfile_read_pkey(pem, len, true);
  if (pkey == NULL) return miri_crypto_error(MIR_ECRYPTO, "not a PEM private key");
  mir_err err = keyfile_private_from_pkey(pkey, out);
  ERR_clear_error();
  return err;
}

/* Converts a parsed public EVP_PKEY (borrowed) into our key; MIR_EUNSUPPORTED for other types. */
static mir_err keyfile_public_from_pkey(const EVP_PKEY *pkey, mir_public_key **out) {
  uint8_t raw[MIR_PUBLIC_KEY_MAX];
  mir_sig_scheme scheme = MIR_SIG_ED25519;
  size_t len = miri_ossl_raw_public(pkey, &scheme, raw);
  if (len == 0) {
    return mir_error_set(MIR_EUNSUPPORTED, "public key is neither Ed25519 nor ECDSA P-256");
  }
  return mir_public_key_from_bytes(scheme, raw, len, out);
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
  size_t cap = 4 * ((key->len + 2) / 3) + 1; /* with the NUL EVP_EncodeBlock writes */
  char *out = mir_xmalloc(cap);
  EVP_EncodeBlock((uint8_t *)out, key->raw, (int)key->len);
  return out;
}

/* Value of a character of the standard base64 alphabet; '=' counts as 0 (padding is checked by
 * position); -1 for any other character. */
static int keyfile_b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return c == '=' ? 0 : -1;
}

/* Decodes one group of four characters into out; sets *n to 3, 2 or 1 bytes. False for a bad
 * character or padding anywhere but "xxx=" and "xx==". */
static bool keyfile_b64_quad(const char *in, uint8_t *out, size_t *n) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int d = keyfile_b64_value(in[i]);
    if (d < 0) return false;
    v = v << 6 | (uint32_t)d;
  }
  unsigned pad = (unsigned)(in[0] == '=') << 3 | (unsigned)(in[1] == '=') << 2 |
                 (unsigned)(in[2] == '=') << 1 | (unsigned)(in[3] == '=');
  if (pad != 0 && pad != 1 && pad != 3) return false;
  out[0] = (uint8_t)(v >> 16);
  out[1] = (uint8_t)(v >> 8);
  out[2] = (uint8_t)v;
  *n = pad == 0 ? 3 : pad == 1 ? 2 : 1;
  return true;
}

/* Decodes text (len characters, untrusted) into out (at least len / 4 * 3 bytes). */
static bool keyfile_b64_decode(const char *text, size_t len, uint8_t *out, size_t *out_len) {
  *out_len = 0;
  if (len % 4 != 0) return false;
  for (size_t i = 0; i < len; i += 4) {
    size_t n = 0;
    if (!keyfile_b64_quad(text + i, out + *out_len, &n)) return false;
    *out_len += n;
    if (n != 3 && i + 4 != len) return false; /* padding ends the text */
  }
  return true;
}

mir_err mir_public_key_from_base64(mir_sig_scheme scheme, const char *text, mir_public_key **out) {
  *out = NULL;
  size_t text_len = strlen(text);
  if (text_len > 4 * MIR_PUBLIC_KEY_MAX) {
    return mir_error_set(MIR_ECRYPTO, "public key text is too long (%zu characters)", text_len);
  }
  uint8_t raw[3 * MIR_PUBLIC_KEY_MAX];
  size_t raw_len = 0;
  if (!keyfile_b64_decode(text, text_len, raw, &raw_len)) {
    return mir_error_set(MIR_ECRYPTO, "public key is not valid base64");
  }
  return mir_public_key_from_bytes(scheme, raw, raw_len, out);
}
