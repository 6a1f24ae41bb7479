/*
 * Internal to the crypto seam (server/modules/crypto): what the backend-neutral sources and the
 * two backends (BoringSSL in this folder, OpenSSL 3 in openssl/) share. It includes no crypto
 * library, so the neutral sources (keyset.c, requests.c, crypto_module.c and the *_common.c files)
 * compile the same way into mir_crypto and mir_crypto_ossl.
 *
 * Functions marked "backend" are implemented once per backend, with identical behaviour; the
 * others are implemented by the neutral sources.
 */
#ifndef MIRI_CRYPTO_COMMON_H
#define MIRI_CRYPTO_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/crypto.h"
#include "mir/errors.h"
#include "requests.h"

/* Largest key or certificate file we read; anything bigger is not a key. */
#define MIRI_CRYPTO_FILE_MAX (64u * 1024u)

/* What a TLS certificate names a replica by, and the longest validity we issue. */
#define MIRI_TLS_URI_PREFIX "mir:replica:"
/* What a client certificate names a client by, and its fixed subject CN (a space: never a replica
 * id, so the transport's CN fallback for certificates without a replica URI cannot match it). */
#define MIRI_TLS_CLIENT_URI_PREFIX "mir:client:"
#define MIRI_TLS_CLIENT_CN "mir client"
#define MIRI_TLS_DAYS_MAX 36500

/* ---- backend ---- */

/* Clears the library's thread-local error queue and records detail "what: <library reason>".
 * Returns code, like mir_error_set. what is borrowed. */
mir_err miri_crypto_error(mir_err code, const char *what);

/* Signs a 32-byte digest (borrowed) with the ECDSA P-256 key (borrowed), writing r || s into sig
 * (MIR_SIGNATURE_LEN bytes, borrowed). MIR_ECRYPTO with detail if the library fails. */
mir_err miri_ecdsa_sign_digest(const mir_private_key *key, const uint8_t *digest, uint8_t *sig);

/* True if sig (borrowed, MIR_SIGNATURE_LEN bytes of r || s, untrusted) is key's (borrowed, ECDSA
 * P-256) signature of the 32-byte digest (borrowed). r or s outside [1, n-1] never verifies.
 * Leaves the library's error queue empty. */
bool miri_ecdsa_verify_digest(const mir_public_key *key, const uint8_t *digest, const uint8_t *sig);

/* The raw public key of key (borrowed): returns a pointer borrowed from key (valid while key
 * lives) and sets *len to its length. */
const uint8_t *miri_private_key_raw_public(const mir_private_key *key, size_t *len);

/* ---- neutral: files (keyfile_common.c) ---- */

/* Reads at most max bytes of path (borrowed) into an owned, NUL-terminated buffer (free with
 * free()). MIR_EIO (missing, unreadable) or MIR_EINVAL (larger than max), detail naming the
 * file. */
mir_err miri_crypto_read_file(const char *path, size_t max, char **data, size_t *len);

/* Writes data (borrowed) to path (borrowed) with mode through a temporary file, fsync and rename.
 * MIR_EIO with detail. */
mir_err miri_crypto_write_file(const char *path, const void *data, size_t len, unsigned mode);

/* Overwrites n bytes at p (borrowed) with zeros in a way the compiler may not drop: for secrets. */
void miri_crypto_wipe(void *p, size_t n);

/* ---- neutral: TLS names (tls_common.c) ---- */

/* True if id (borrowed) is a replica id we put into certificate names: [A-Za-z0-9_.-], 1 to
 * MIR_MODULE_ID_MAX - 1 bytes. DNS host names must use the same alphabet. */
bool miri_tls_id_ok(const char *id);

/* Writes the subjectAltName value for replica id and host (both borrowed; host may be NULL or
 * "") into buf (cap bytes), in OpenSSL configuration syntax: "URI:mir:replica:<id>,
 * DNS:replica-<id>[,IP:<host>|,DNS:<host>]". False if host is neither an IP address nor a usable
 * DNS name, or the text does not fit. */
bool miri_tls_san(const char *id, const char *host, char *buf, size_t cap);

/* Writes the subjectAltName value of a client certificate for id (borrowed, a valid client id)
 * into buf (cap bytes): "URI:mir:client:<id>". False if it does not fit. */
bool miri_tls_client_san(const char *id, char *buf, size_t cap);

/* ---- per backend: the shim under tls_issue.c and tls_check.c (tls.c, keyfile.c) ----
 *
 * Both libraries name the types struct x509_st (X509), struct evp_pkey_st (EVP_PKEY) and struct
 * bio_st (BIO), so this header needs neither library's headers. */
struct x509_st;
struct evp_pkey_st;
struct bio_st;

/* Parses one PEM certificate (untrusted; refused above MIRI_CRYPTO_FILE_MAX bytes). Returns the
 * library's X509 (owned: X509_free), or NULL if it is not one. */
struct x509_st *miri_tls_read_cert(const char *pem);

/* A fresh ECDSA P-256 key pair (owned: EVP_PKEY_free), or NULL. */
struct evp_pkey_st *miri_tls_new_key(void);

/* The library's key object of key (borrowed) when it is an ECDSA P-256 key (owned: EVP_PKEY_free,
 * a reference of its own), else NULL. */
struct evp_pkey_st *miri_tls_ca_pkey(const mir_private_key *key);

/* Copies the contents of a memory BIO (borrowed) into an owned NUL-terminated string (free with
 * free()); NULL if the BIO has no memory contents. */
char *miri_crypto_bio_string(struct bio_st *bio);

#endif
