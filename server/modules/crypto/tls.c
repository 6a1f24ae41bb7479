/*
 * The BoringSSL backend's part of TLS material: the few calls that differ from OpenSSL 3, behind
 * which tls_issue.c issues and tls_check.c checks certificates once for both backends (making a
 * P-256 key, reading a PEM certificate, the EVP_PKEY of a loaded ECDSA key). Certificates
 * presented by peers are untrusted input: they are parsed from bounded PEM, and a failure is NULL.
 */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#include "crypto_internal.h"

EVP_PKEY *miri_tls_new_key(void) {
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  EVP_PKEY *pkey = EVP_PKEY_new();
  if (ec == NULL || pkey == NULL || EC_KEY_generate_key(ec) != 1 ||
      EVP_PKEY_assign_EC_KEY(pkey, ec) != 1) {
    EC_KEY_free(ec);
    EVP_PKEY_free(pkey);
    return NULL;
  }
  return pkey;
}

X509 *miri_tls_read_cert(const char *pem) {
  size_t len = strlen(pem);
  if (len > MIRI_CRYPTO_FILE_MAX) return NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  return x;
}

EVP_PKEY *miri_tls_ca_pkey(const mir_private_key *key) {
  if (key->scheme != MIR_SIG_ECDSA_P256) return NULL;
  EVP_PKEY *pkey = EVP_PKEY_new();
  if (pkey != NULL && EVP_PKEY_set1_EC_KEY(pkey, key->ec) != 1) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
  }
  return pkey;
}
