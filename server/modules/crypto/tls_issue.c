/*
 * Issuing TLS material for authenticated channels (mir_tls_ca_new, mir_tls_cert_new,
 * mir_tls_client_cert_new in mir/crypto.h): a self-signed cluster CA and the certificates it signs
 * (X.509 v3, ECDSA P-256 keys, SHA-256 signatures), as PEM texts.
 *
 * A replica is identified by the URI subjectAltName "mir:replica:<id>" (the CN carries the same id
 * for humans); its certificate also names "replica-<id>" and the replica's host as DNS or IP
 * alternative names (tls_common.c), so that TLS clients can verify the server name, and serves
 * both TLS servers and clients (mutual TLS between replicas). A client certificate for the client
 * API has the same shape with the URI "mir:client:<id>", the fixed CN "mir client" and usage by
 * TLS clients only.
 *
 * Like tls_check.c, this one source is compiled into both backends, each time against its own
 * library's headers (server/modules/crypto/CMakeLists.txt): the X.509 calls below have the same
 * names and meaning in BoringSSL and OpenSSL 3, so both backends issue certificates of exactly one
 * shape, and a CA made by either issues and checks certificates in the other. What differs per
 * backend is behind a small shim in each backend's tls.c and keyfile.c: making a P-256 key
 * (miri_tls_new_key), reading a PEM certificate (miri_tls_read_cert), the EVP_PKEY of a loaded
 * private key (miri_tls_ca_pkey) and copying a memory BIO (miri_crypto_bio_string).
 */
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_common.h"
#include "mir/alloc.h"

/* Sets a random positive 127-bit serial number, as CAs must not repeat serials. */
static bool tls_set_serial(X509 *x) {
  uint8_t raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) return false;
  raw[0] &= 0x7f;
  BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
  ASN1_INTEGER *serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
  bool ok = serial != NULL && X509_set_serialNumber(x, serial) == 1;
  ASN1_INTEGER_free(serial);
  BN_free(bn);
  return ok;
}

/* Fills the fields every certificate has: v3, serial, validity, subject CN, public key. */
static bool tls_fill(X509 *x, EVP_PKEY *key, const char *cn, unsigned days) {
  X509_NAME *name = X509_NAME_new();
  bool ok =
      name != NULL && X509_set_version(x, X509_VERSION_3) == 1 && tls_set_serial(x) &&
      X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
      X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) != NULL &&
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const uint8_t *)"mir", -1, -1, 0) == 1 &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0) == 1 &&
      X509_set_subject_name(x, name) == 1 && X509_set_pubkey(x, key) == 1;
  X509_NAME_free(name);
  return ok;
}

/* Adds extension nid with a configuration-style value, issuer giving the authority key id. */
static bool tls_add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
  bool ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

/* PEM text of a certificate (x) or else a private key (key), owned; NULL on failure. */
static char *tls_pem(X509 *x, EVP_PKEY *key) {
  BIO *bio = BIO_new(BIO_s_mem());
  bool ok = bio != NULL &&
            (x != NULL ? PEM_write_bio_X509(bio, x) == 1
                       : PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1);
  char *s = ok ? miri_crypto_bio_string(bio) : NULL;
  BIO_free(bio);
  return s;
}

/* Hands out the PEM texts of x and key; false (nothing handed out) on failure. */
static bool tls_output(X509 *x, EVP_PKEY *key, char **cert_pem, char **key_pem) {
  *cert_pem = tls_pem(x, NULL);
  *key_pem = tls_pem(NULL, key);
  if (*cert_pem != NULL && *key_pem != NULL) return true;
  free(*cert_pem);
  free(*key_pem);
  *cert_pem = *key_pem = NULL;
  return false;
}

mir_err mir_tls_ca_new(const char *common_name, unsigned days, char **cert_pem, char **key_pem) {
  *cert_pem = *key_pem = NULL;
  if (days == 0 || days > MIRI_TLS_DAYS_MAX || common_name[0] == '\0' || strlen(common_name) > 64) {
    return mir_error_set(MIR_EINVAL, "CA: name of 1..64 bytes and 1..%d days required",
                         MIRI_TLS_DAYS_MAX);
  }
  EVP_PKEY *key = miri_tls_new_key();
  X509 *x = X509_new();
  bool ok = key != NULL && x != NULL && tls_fill(x, key, common_name, days) &&
            X509_set_issuer_name(x, X509_get_subject_name(x)) == 1 &&
            tls_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") &&
            tls_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") &&
            tls_add_ext(x, x, NID_subject_key_identifier, "hash") &&
            X509_sign(x, key, EVP_sha256()) > 0 && tls_output(x, key, cert_pem, key_pem);
  X509_free(x);
  EVP_PKEY_free(key);
  return ok ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "CA certificate");
}

/* Parses the CA's private key (borrowed) and checks that it is an ECDSA P-256 key belonging to
 * the CA certificate. Returns the key (owned) or NULL. */
static EVP_PKEY *tls_read_ca_key(X509 *ca, const char *key_pem) {
  mir_private_key *k = NULL;
  if (mir_private_key_from_pem(key_pem, strlen(key_pem), &k) != MIR_OK) return NULL;
  EVP_PKEY *pkey = miri_tls_ca_pkey(k);
  mir_private_key_free(k);
  if (pkey != NULL && X509_check_private_key(ca, pkey) != 1) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
  }
  return pkey;
}

/* Builds and signs the certificate x for key under ca/ca_key: subject CN cn, the extended key
 * usage eku ("serverAuth,clientAuth" for replicas, "clientAuth" for clients) and the
 * subjectAltName san. */
static bool tls_issue(X509 *x, EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, const char *cn,
                      const char *eku, const char *san, unsigned days) {
  return tls_fill(x, key, cn, days) && X509_set_issuer_name(x, X509_get_subject_name(ca)) == 1 &&
         tls_add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") &&
         tls_add_ext(x, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         tls_add_ext(x, ca, NID_ext_key_usage, eku) &&
         tls_add_ext(x, ca, NID_subject_key_identifier, "hash") &&
         tls_add_ext(x, ca, NID_authority_key_identifier, "keyid:always") &&
         tls_add_ext(x, ca, NID_subject_alt_name, san) && X509_sign(x, ca_key, EVP_sha256()) > 0;
}

/* Issues a certificate with a new key under the CA (PEM texts borrowed); what names it in errors.
 */
static mir_err tls_issue_new(const char *ca_cert_pem, const char *ca_key_pem, const char *cn,
                             const char *eku, const char *san, unsigned days, const char *what,
                             char **cert_pem, char **key_pem) {
  X509 *ca = miri_tls_read_cert(ca_cert_pem);
  EVP_PKEY *ca_key = ca ? tls_read_ca_key(ca, ca_key_pem) : NULL;
  if (ca_key == NULL) {
    X509_free(ca);
    return miri_crypto_error(MIR_ECRYPTO, "CA certificate and ECDSA P-256 key do not match");
  }
  EVP_PKEY *key = miri_tls_new_key();
  X509 *x = X509_new();
  bool ok = key != NULL && x != NULL && tls_issue(x, key, ca, ca_key, cn, eku, san, days) &&
            tls_output(x, key, cert_pem, key_pem);
  X509_free(x);
  EVP_PKEY_free(key);
  EVP_PKEY_free(ca_key);
  X509_free(ca);
  return ok ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, what);
}

mir_err mir_tls_cert_new(const char *ca_cert_pem, const char *ca_key_pem, const char *replica_id,
                         const char *host, unsigned days, char **cert_pem, char **key_pem) {
  *cert_pem = *key_pem = NULL;
  char san[256];
  if (!miri_tls_id_ok(replica_id) || days == 0 || days > MIRI_TLS_DAYS_MAX ||
      !miri_tls_san(replica_id, host, san, sizeof san)) {
    return mir_error_set(MIR_EINVAL, "certificate for \"%s\" (host \"%s\", %u days): bad argument",
                         replica_id, host ? host : "", days);
  }
  return tls_issue_new(ca_cert_pem, ca_key_pem, replica_id, "serverAuth,clientAuth", san, days,
                       "replica certificate", cert_pem, key_pem);
}

mir_err mir_tls_client_cert_new(const char *ca_cert_pem, const char *ca_key_pem,
                                const char *client_id, unsigned days, char **cert_pem,
                                char **key_pem) {
  *cert_pem = *key_pem = NULL;
  char san[128];
  if (client_id == NULL || !mir_tls_client_id_valid(client_id, strlen(client_id)) || days == 0 ||
      days > MIRI_TLS_DAYS_MAX || !miri_tls_client_san(client_id, san, sizeof san)) {
    return mir_error_set(MIR_EINVAL, "client certificate for \"%s\" (%u days): bad argument",
                         client_id != NULL ? client_id : "", days);
  }
  return tls_issue_new(ca_cert_pem, ca_key_pem, MIRI_TLS_CLIENT_CN, "clientAuth", san, days,
                       "client certificate", cert_pem, key_pem);
}
