/*
 * The OpenSSL 3 backend's part of TLS material: the few calls that differ from BoringSSL, behind
 * which tls_issue.c issues and tls_check.c checks certificates once for both backends (making a
 * P-256 key, reading a PEM certificate, the EVP_PKEY of a loaded ECDSA key).
 *
 * Certificates presented by peers are untrusted input: they are parsed from bounded PEM with a
 * password callback that declines (OpenSSL's default one would prompt on the terminal for an
 * "encrypted" PEM block, letting a peer stall the process), and a failure is NULL.
 */
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#include "ossl_internal.h"

EVP_PKEY *miri_tls_new_key(void) {
  return EVP_EC_gen("P-256");
}

X509 *miri_tls_read_cert(const char *pem) {
  size_t len = strlen(pem);
  if (len > MIRI_CRYPTO_FILE_MAX) return NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  X509 *x = bio ? PEM_read_bio_X509(bio, NULL, miri_ossl_no_password, NULL) : NULL;
  BIO_free(bio);
  return x;
}

EVP_PKEY *miri_tls_ca_pkey(const mir_private_key *key) {
  if (key->scheme != MIR_SIG_ECDSA_P256 || EVP_PKEY_up_ref(key->pkey) != 1) return NULL;
  return key->pkey;
}
