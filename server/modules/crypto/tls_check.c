/*
 * Checking a certificate a peer presents (mir_tls_cert_check, mir/crypto.h): issued by the
 * cluster CA, valid now, and naming one replica by the URI subjectAltName "mir:replica:<id>"; and
 * the same check for a client of the client API (mir_tls_client_cert_check), whose certificate
 * names it by "mir:client:<id>". One check, two name prefixes and alphabets.
 *
 * The X.509 calls used here exist with the same names and meaning in BoringSSL and OpenSSL 3, so
 * this one source is compiled into both backends, each time against its own library's headers
 * (server/modules/crypto/CMakeLists.txt): the check that decides which replica a TLS peer is has
 * a single implementation. Reading the PEM is backend-specific (miri_tls_read_cert).
 */
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "crypto_common.h"
#include "mir/alloc.h"

/* Which names a check looks for. */
typedef struct tls_role {
  const char *prefix;            /* of the URI subjectAltName */
  bool (*id_ok)(const char *id); /* the alphabet of the id after it */
  const char *what;              /* for the error: "names no <what>" */
} tls_role;

static bool tls_client_id_ok(const char *id) {
  return mir_tls_client_id_valid(id, strlen(id));
}

static const tls_role tls_replica = {MIRI_TLS_URI_PREFIX, miri_tls_id_ok, "replica"};
static const tls_role tls_client = {MIRI_TLS_CLIENT_URI_PREFIX, tls_client_id_ok, "client"};

/* Finds the "<prefix><id>" URI among x's alternative names and copies the id. On failure id_out
 * is left empty: a candidate is copied into it before it is checked, and a caller that logs or
 * compares the id after an error must not see a name the certificate failed to prove. */
static bool tls_find_id(X509 *x, const tls_role *role, char *id_out, size_t id_cap) {
  GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  /* sk_*_num is an int in OpenSSL (-1 for NULL) and a size_t in BoringSSL. */
  size_t count = names != NULL ? (size_t)sk_GENERAL_NAME_num(names) : 0;
  bool found = false;
  for (size_t i = 0; i < count && !found; i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING *uri = gn->d.uniformResourceIdentifier;
    size_t plen = strlen(role->prefix);
    size_t len = (size_t)ASN1_STRING_length(uri);
    const char *data = (const char *)ASN1_STRING_get0_data(uri);
    if (len <= plen || len - plen >= id_cap || memcmp(data, role->prefix, plen) != 0) {
      continue;
    }
    memcpy(id_out, data + plen, len - plen);
    id_out[len - plen] = '\0';
    /* An embedded NUL or a character outside the id alphabet makes the name unusable. */
    found = strlen(id_out) == len - plen && role->id_ok(id_out);
  }
  GENERAL_NAMES_free(names);
  if (!found && id_cap > 0) id_out[0] = '\0';
  return found;
}

static mir_err tls_check(const char *ca_cert_pem, const char *cert_pem, const tls_role *role,
                         char *id_out, size_t id_cap) {
  if (id_cap > 0) id_out[0] = '\0';
  X509 *ca = miri_tls_read_cert(ca_cert_pem);
  X509 *x = miri_tls_read_cert(cert_pem);
  EVP_PKEY *ca_pub = ca ? X509_get_pubkey(ca) : NULL;
  const char *why = NULL;
  bool unnamed = false;
  if (ca_pub == NULL || x == NULL) {
    why = "not a PEM certificate";
  } else if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca)) != 0 ||
             X509_verify(x, ca_pub) != 1) {
    why = "not issued by the cluster CA";
  } else if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0 ||
             X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
    why = "not valid now";
  } else if (!tls_find_id(x, role, id_out, id_cap)) {
    unnamed = true;
  }
  EVP_PKEY_free(ca_pub);
  X509_free(x);
  X509_free(ca);
  ERR_clear_error();
  if (why != NULL) return mir_error_set(MIR_ECRYPTO, "certificate %s", why);
  if (unnamed) {
    return mir_error_set(MIR_ECRYPTO, "certificate names no %s (URI %s<id>)", role->what,
                         role->prefix);
  }
  return MIR_OK;
}

mir_err mir_tls_cert_check(const char *ca_cert_pem, const char *cert_pem, char *id_out,
                           size_t id_cap) {
  return tls_check(ca_cert_pem, cert_pem, &tls_replica, id_out, id_cap);
}

mir_err mir_tls_client_cert_check(const char *ca_cert_pem, const char *cert_pem, char *id_out,
                                  size_t id_cap) {
  return tls_check(ca_cert_pem, cert_pem, &tls_client, id_out, id_cap);
}
