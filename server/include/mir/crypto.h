/*
 * Signatures: keys, signing and verification, the key set of a node, and the crypto module that
 * serves mir.SignRequest, mir.VerifyRequest and mir.VerifyManyRequest (proto/mir/crypto.proto).
 *
 * Schemes: Ed25519 (the default) and ECDSA over P-256 with SHA-256. Both produce 64-byte
 * signatures (ECDSA as r || s, each 32 bytes big-endian). Public keys travel as raw bytes: 32
 * bytes for Ed25519, the 65-byte uncompressed point (0x04 || X || Y) for ECDSA P-256.
 *
 * What is signed: a list of byte strings, encoded as the concatenation of every part prefixed by
 * its length as 8 bytes big-endian. Two different lists never encode alike, so a signature over
 * ["ab","c"] is not one over ["a","bc"].
 *
 * Key files are PEM: private keys PKCS#8 ("PRIVATE KEY"), public keys SubjectPublicKeyInfo
 * ("PUBLIC KEY"), readable by `openssl pkey`. The membership file carries public keys as base64
 * of the raw bytes.
 *
 * The implementation lives in server/modules/crypto, the only code that uses a crypto library,
 * in two backends with the same symbols and byte formats; a binary links exactly one of them:
 *   mir_crypto       BoringSSL: the simulator, the tools and most tests.
 *   mir_crypto_ossl  OpenSSL 3: every process that also links gRPC (the replica server and its
 *                    tests). gRPC loads OpenSSL 3, whose unversioned symbol names BoringSSL
 *                    shares, so in a process holding both, calls bind to the wrong library.
 * Both give the same Ed25519 keys and signatures and the same ECDSA key for a seed, and each
 * verifies the other's ECDSA signatures and reads the other's PEM files and certificates
 * (tests/modules/crypto/fixtures). This header exposes no library type, so any target may include
 * it.
 */
#ifndef MIR_CRYPTO_H
#define MIR_CRYPTO_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mir/crypto.pb-c.h"
#include "mir/errors.h"
#include "mir/event.h"
#include "mir/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- schemes ---- */

typedef enum mir_sig_scheme { MIR_SIG_ED25519 = 0, MIR_SIG_ECDSA_P256 = 1 } mir_sig_scheme;

#define MIR_SIG_SEED_LEN 32              /* deterministic key derivation input */
#define MIR_ED25519_PUBLIC_KEY_LEN 32    /* raw Ed25519 point */
#define MIR_ECDSA_P256_PUBLIC_KEY_LEN 65 /* 0x04 || X || Y */
#define MIR_PUBLIC_KEY_MAX 65
#define MIR_SIGNATURE_LEN 64 /* both schemes */

/* Limits on what one signature covers; larger inputs are rejected (MIR_EINVAL), never truncated. */
#define MIR_SIGN_PARTS_MAX (1u << 16)
#define MIR_SIGN_BYTES_MAX (64u << 20) /* encoded length, prefixes included */

/* Returns the scheme's name as used in files and flags ("ed25519", "ecdsa-p256"); static. */
static inline const char *mir_sig_scheme_name(mir_sig_scheme scheme) {
  return scheme == MIR_SIG_ECDSA_P256 ? "ecdsa-p256" : "ed25519";
}

/* Parses a scheme name (borrowed); false for an unknown name. */
static inline bool mir_sig_scheme_parse(const char *name, mir_sig_scheme *out) {
  if (strcmp(name, "ed25519") == 0) {
    *out = MIR_SIG_ED25519;
  } else if (strcmp(name, "ecdsa-p256") == 0) {
    *out = MIR_SIG_ECDSA_P256;
  } else {
    return false;
  }
  return true;
}

/* Length of a raw public key of the scheme. */
static inline size_t mir_sig_public_key_len(mir_sig_scheme scheme) {
  return scheme == MIR_SIG_ECDSA_P256 ? MIR_ECDSA_P256_PUBLIC_KEY_LEN : MIR_ED25519_PUBLIC_KEY_LEN;
}

/* ---- keys ---- */

typedef struct mir_private_key mir_private_key;
typedef struct mir_public_key mir_public_key;

/* Generates a fresh key pair from the system's random source. *out is owned (free with
 * mir_private_key_free). MIR_ECRYPTO if the library fails. */
mir_err mir_private_key_generate(mir_sig_scheme scheme, mir_private_key **out);

/* Derives a key pair deterministically from seed (borrowed, MIR_SIG_SEED_LEN bytes): the same seed
 * always gives the same key. For tests and the simulator; real keys come from
 * mir_private_key_generate. *out is owned (free with mir_private_key_free). */
mir_err mir_private_key_from_seed(mir_sig_scheme scheme, const uint8_t *seed,
                                  mir_private_key **out);

/* Frees key, wiping its secret. NULL is a no-op. */
void mir_private_key_free(mir_private_key *key);

/* The key's scheme. key is borrowed. */
mir_sig_scheme mir_private_key_scheme(const mir_private_key *key);

/* Returns the public half of key (borrowed) as an owned key (free with mir_public_key_free). */
mir_public_key *mir_private_key_public(const mir_private_key *key);

/* PEM (PKCS#8) text of key (borrowed). *out is an owned NUL-terminated string (free with free()).
 */
mir_err mir_private_key_to_pem(const mir_private_key *key, char **out);

/* Parses a PEM private key (pem borrowed, len bytes, untrusted). MIR_ECRYPTO if it is not a PEM
 * PKCS#8 key, MIR_EUNSUPPORTED for a key type other than Ed25519 or ECDSA P-256. *out is owned
 * (free with mir_private_key_free). */
mir_err mir_private_key_from_pem(const char *pem, size_t len, mir_private_key **out);

/* Writes key (borrowed) to path (borrowed) as PEM, readable only by the owner (mode 0600),
 * through a temporary file and a rename so that a crash never leaves half a key. MIR_EIO. */
mir_err mir_private_key_save(const mir_private_key *key, const char *path);

/* Reads a PEM private key from path (borrowed). MIR_EIO, MIR_ECRYPTO, MIR_EUNSUPPORTED; the
 * detail names the file. *out is owned (free with mir_private_key_free). */
mir_err mir_private_key_load(const char *path, mir_private_key **out);

/* Builds a public key from raw bytes (borrowed, untrusted): the length must be the scheme's and an
 * ECDSA point must lie on the curve. MIR_ECRYPTO otherwise. *out is owned (free with
 * mir_public_key_free). */
mir_err mir_public_key_from_bytes(mir_sig_scheme scheme, const uint8_t *bytes, size_t len,
                                  mir_public_key **out);

/* Copies the raw bytes of key (borrowed) into out (at least MIR_PUBLIC_KEY_MAX bytes) and returns
 * their length. */
size_t mir_public_key_bytes(const mir_public_key *key, uint8_t *out);

/* The key's scheme. key is borrowed. */
mir_sig_scheme mir_public_key_scheme(const mir_public_key *key);

/* True if a and b (borrowed) are the same key of the same scheme. */
bool mir_public_key_equal(const mir_public_key *a, const mir_public_key *b);

/* Returns an owned copy of key (free with mir_public_key_free). */
mir_public_key *mir_public_key_clone(const mir_public_key *key);

/* Frees key. NULL is a no-op. */
void mir_public_key_free(mir_public_key *key);

/* PEM (SubjectPublicKeyInfo) text of key (borrowed). *out is owned (free with free()). */
mir_err mir_public_key_to_pem(const mir_public_key *key, char **out);

/* Parses a PEM public key (borrowed, untrusted). Errors as mir_private_key_from_pem. *out is owned
 * (free with mir_public_key_free). */
mir_err mir_public_key_from_pem(const char *pem, size_t len, mir_public_key **out);

/* Writes key (borrowed) to path (borrowed) as PEM (mode 0644), atomically. MIR_EIO. */
mir_err mir_public_key_save(const mir_public_key *key, const char *path);

/* Reads a PEM public key from path (borrowed). *out is owned (free with mir_public_key_free). */
mir_err mir_public_key_load(const char *path, mir_public_key **out);

/* Standard base64 (with padding) of key's raw bytes. Returns owned (free with free()). */
char *mir_public_key_to_base64(const mir_public_key *key);

/* Decodes base64 text (borrowed, untrusted) into a public key of scheme. MIR_ECRYPTO for bad
 * base64, a wrong length or an invalid point. *out is owned (free with mir_public_key_free). */
mir_err mir_public_key_from_base64(mir_sig_scheme scheme, const char *text, mir_public_key **out);

/* Lowercase hex of key's raw bytes, prefixed "hex:" (the membership file's alternative to base64).
 * Returns owned (free with free()). */
char *mir_public_key_to_hex(const mir_public_key *key);

/* Decodes a public key written as the membership file writes them: "hex:<digits>" or base64.
 * text is borrowed and untrusted. Errors as mir_public_key_from_base64. */
mir_err mir_public_key_from_text(mir_sig_scheme scheme, const char *text, mir_public_key **out);

/* ---- signing and verification ---- */

/* Length of the length-prefixed encoding of parts (borrowed, n_parts of them). */
size_t mir_sign_encoded_len(const ProtobufCBinaryData *parts, size_t n_parts);

/* Writes the length-prefixed encoding of parts into out (mir_sign_encoded_len bytes). */
void mir_sign_encode(const ProtobufCBinaryData *parts, size_t n_parts, uint8_t *out);

/* Signs the length-prefixed encoding of parts (borrowed). sig receives MIR_SIGNATURE_LEN bytes and
 * *sig_len their count. MIR_EINVAL past MIR_SIGN_PARTS_MAX or MIR_SIGN_BYTES_MAX; MIR_ECRYPTO if
 * the library fails. Thread-safe: a key may sign from several threads at once. */
mir_err mir_sign(const mir_private_key *key, const ProtobufCBinaryData *parts, size_t n_parts,
                 uint8_t *sig, size_t *sig_len);

/* MIR_OK if sig (borrowed, untrusted) is key's signature of the encoding of parts; MIR_ECRYPTO if
 * not (wrong length, wrong key, other data); MIR_EINVAL past the limits. Thread-safe. */
mir_err mir_verify(const mir_public_key *key, const ProtobufCBinaryData *parts, size_t n_parts,
                   const uint8_t *sig, size_t sig_len);

/* Sign and verify one plain message, without the list encoding (for standard test vectors and
 * for callers that encode themselves). Same errors as above. */
mir_err mir_sign_message(const mir_private_key *key, const uint8_t *msg, size_t len, uint8_t *sig,
                         size_t *sig_len);
mir_err mir_verify_message(const mir_public_key *key, const uint8_t *msg, size_t len,
                           const uint8_t *sig, size_t sig_len);

/* One item of mir_verify_many; every pointer is borrowed. */
typedef struct mir_signed_item {
  const ProtobufCBinaryData *parts;
  size_t n_parts;
  const uint8_t *sig;
  size_t sig_len;
  const mir_public_key *key; /* NULL counts as a failed verification (unknown signer) */
} mir_signed_item;

/* Verifies n items on the calling thread. ok (may be NULL) receives one result per item.
 * Returns true if every item verified. */
bool mir_verify_many(const mir_signed_item *items, size_t n, bool *ok);

/* ---- key set: the node's own private key and the public key of every node ---- */

#define MIR_KEYSET_MAX 65536 /* most public keys in one set */

typedef struct mir_keyset mir_keyset;

/* Creates a key set for node own_id (copied; shorter than MIR_MODULE_ID_MAX). own is the node's
 * private key (takes ownership; NULL for a set that only verifies). Returns owned (free with
 * mir_keyset_free). The set is read by worker threads without locks: change it only while no
 * crypto module that uses it runs. */
mir_keyset *mir_keyset_new(const char *own_id, mir_private_key *own);

/* Frees ks and every key in it. NULL is a no-op. */
void mir_keyset_free(mir_keyset *ks);

/* Registers key as node_id's (node_id copied). Takes ownership of key, also on failure.
 * MIR_EEXIST: node_id has a key; MIR_EFULL: past MIR_KEYSET_MAX; MIR_EINVAL: bad id length. */
mir_err mir_keyset_add(mir_keyset *ks, const char *node_id, mir_public_key *key);

/* Forgets node_id's key. MIR_ENOTFOUND if it had none. */
mir_err mir_keyset_remove(mir_keyset *ks, const char *node_id);

/* node_id's key (borrowed from ks, valid until it is removed), or NULL. */
const mir_public_key *mir_keyset_find(const mir_keyset *ks, const char *node_id);

/* The own id and key (borrowed; the key may be NULL) and the number of public keys. */
const char *mir_keyset_own_id(const mir_keyset *ks);
const mir_private_key *mir_keyset_own_key(const mir_keyset *ks);
size_t mir_keyset_count(const mir_keyset *ks);

/* Signs with the own key. MIR_EINVAL if the set has none; otherwise as mir_sign. */
mir_err mir_keyset_sign(const mir_keyset *ks, const ProtobufCBinaryData *parts, size_t n_parts,
                        uint8_t *sig, size_t *sig_len);

/* Verifies node_id's signature. MIR_ENOTFOUND for an unknown node; otherwise as mir_verify. */
mir_err mir_keyset_verify(const mir_keyset *ks, const char *node_id,
                          const ProtobufCBinaryData *parts, size_t n_parts, const uint8_t *sig,
                          size_t sig_len);

struct mir_membership;

/* Builds the key set of own_id from a loaded membership (membership.h; borrowed): one public key
 * per replica, each checked to be a valid key of the membership's scheme (an ECDSA point must lie
 * on the curve, which the crypto-library-free loader cannot check). own (takes ownership, also on
 * failure; may be NULL for a verify-only set) must be the key the membership lists for own_id.
 * MIR_ECONFIG with detail naming the replica otherwise. *out is owned (free with
 * mir_keyset_free). */
mir_err mir_keyset_from_membership(const struct mir_membership *m, const char *own_id,
                                   mir_private_key *own, mir_keyset **out);

/* Deterministic 32-byte seed for node_id under seed: SHA-256 of a fixed label, the seed and the
 * id. Every node of a test or simulation can derive every key. out receives MIR_SIG_SEED_LEN. */
void mir_crypto_pseudo_seed(uint64_t seed, const char *node_id, uint8_t *out);

/* Builds the key set of own_id (may be NULL for verify-only) over node_ids (n of them, borrowed)
 * with keys derived by mir_crypto_pseudo_seed. Insecure by design: tests and simulation only.
 * *out is owned (free with mir_keyset_free). */
mir_err mir_keyset_new_pseudo(mir_sig_scheme scheme, uint64_t seed, const char *const *node_ids,
                              size_t n, const char *own_id, mir_keyset **out);

/* ---- the crypto module ---- */

/* Most items in one VerifyManyRequest (a larger one is answered at once, every item failed) and
 * most worker threads of the active module. */
#define MIR_CRYPTO_ITEMS_MAX 65536
#define MIR_CRYPTO_WORKERS_MAX 256

typedef struct mir_crypto_config {
  size_t workers;           /* worker threads (0: one per online core) */
  size_t queue_max;         /* most work units queued (default 65536) */
  size_t verify_many_chunk; /* items of a VerifyManyRequest per work unit (default 8) */
} mir_crypto_config;

/* Fills cfg with the defaults. */
void mir_crypto_config_default(mir_crypto_config *cfg);

/*
 * Both variants serve the same events:
 *   mir.SignRequest        -> mir.SignResult        (signed with the key set's own key)
 *   mir.VerifyRequest      -> mir.VerifyResult      (ok is false for an unknown node, a signature
 *                                                    of the wrong length or a wrong signature)
 *   mir.VerifyManyRequest  -> mir.VerifyManyResult  (one ok per item, and all_ok)
 * Each result goes to request.origin.module with the request's origin; its source is the module
 * id the request was addressed to. mir.Init is ignored. A request without a valid origin, a sign
 * request past the limits or without an own key, or any other event type is a programmer error
 * in the requesting module and stops the node (apply returns MIR_EPROTO or MIR_EINVAL with
 * detail); nothing a peer sends can cause that, since peers only influence verify inputs.
 *
 * The active variant (mir_crypto_module_ops) queues requests for a pool of worker threads and
 * pushes results through the node's inbox; results of different requests may arrive in any
 * order. A VerifyManyRequest is split into chunks that several workers verify at once. When the
 * queue is full, a request is dropped, counted and logged: like a lost message, the requester
 * must be able to ask again (verification inputs come from peers, who must not be able to stop a
 * node by flooding it).
 *
 * The passive variant (mir_crypto_sync_module_ops) answers every request inline, in order, in
 * apply's output: deterministic, for the simulator and tests.
 */
extern const mir_module_ops mir_crypto_module_ops;
extern const mir_module_ops mir_crypto_sync_module_ops;

/* Creates the state of the active module. Takes ownership of keys (also on failure). cfg is
 * copied (NULL: defaults). MIR_EINVAL for a bad config. *state is owned; hand it to
 * mir_node_add_module with &mir_crypto_module_ops, which frees it. */
mir_err mir_crypto_module_new(mir_keyset *keys, const mir_crypto_config *cfg, void **state);

/* Creates the state of the passive module (use with &mir_crypto_sync_module_ops). Takes ownership
 * of keys. Never fails for non-NULL keys. */
mir_err mir_crypto_sync_module_new(mir_keyset *keys, void **state);

/* Both variants report through ops.metrics (a set the node hangs below the module's):
 * counters mir_crypto_signs_total, mir_crypto_verifies_total, mir_crypto_verify_failures_total,
 * mir_crypto_shed_total (requests dropped at a full queue); gauges mir_crypto_queue_depth,
 * mir_crypto_queue_depth_max, mir_crypto_workers; and the named lock "crypto_queue"
 * (mir/lock.h). */

/* ---- request constructors (return owned events; arguments borrowed and copied) ---- */

/* A SignRequest to crypto from src, over parts, with origin {src, context_id}. */
mir_event *mir_event_sign_request(const char *crypto, const char *src,
                                  const ProtobufCBinaryData *parts, size_t n_parts,
                                  uint64_t context_id);

/* A VerifyRequest to crypto from src: did node_id sign parts with sig? Origin {src, context_id}.
 */
mir_event *mir_event_verify_request(const char *crypto, const char *src,
                                    const ProtobufCBinaryData *parts, size_t n_parts,
                                    const uint8_t *sig, size_t sig_len, const char *node_id,
                                    uint64_t context_id);

/* ---- TLS material for authenticated channels (X.509, ECDSA P-256) ---- */

/* Creates a self-signed cluster CA: CN common_name (borrowed), valid for days from now, with
 * basicConstraints CA:TRUE. *cert_pem and *key_pem are owned strings (free with free()). */
mir_err mir_tls_ca_new(const char *common_name, unsigned days, char **cert_pem, char **key_pem);

/* Issues a certificate for replica_id, signed by the CA (ca_cert_pem and ca_key_pem borrowed):
 * subject CN replica_id; subjectAltName URI "mir:replica:<id>", DNS "replica-<id>" and host (an IP
 * address or a DNS name; may be NULL); usable by TLS servers and clients; valid for days. The new
 * key is ECDSA P-256. *cert_pem and *key_pem are owned (free with free()). */
mir_err mir_tls_cert_new(const char *ca_cert_pem, const char *ca_key_pem, const char *replica_id,
                         const char *host, unsigned days, char **cert_pem, char **key_pem);

/* Checks that cert_pem (borrowed, untrusted) is signed by the CA in ca_cert_pem (borrowed), is
 * valid now, and names a replica in a "mir:replica:<id>" URI; copies that id into id_out (borrowed
 * buffer of id_cap bytes; "" on failure). MIR_ECRYPTO with detail otherwise. */
mir_err mir_tls_cert_check(const char *ca_cert_pem, const char *cert_pem, char *id_out,
                           size_t id_cap);

/* Client certificates for the client API (proto/api/api.proto, "Client certificates").
 * MIR_TLS_CLIENT_ID_MAX: the longest client id, in bytes. */
#define MIR_TLS_CLIENT_ID_MAX 64

/* True if id (borrowed, len bytes, untrusted) is a client id: 1 to MIR_TLS_CLIENT_ID_MAX bytes of
 * [A-Za-z0-9._:@-]. The one definition of the client-id alphabet on the server side. */
bool mir_tls_client_id_valid(const char *id, size_t len);

/* Issues a certificate for client_id (a valid client id), signed by the CA (ca_cert_pem and
 * ca_key_pem borrowed): subjectAltName URI "mir:client:<id>", subject CN "mir client" (never a
 * replica id, so the replicas' transport, which falls back to the CN of certificates without a
 * replica name, cannot take it for a replica), usable by TLS clients only, valid for days. The new
 * key is ECDSA P-256. *cert_pem and *key_pem are owned (free with free()). MIR_EINVAL for a bad
 * id or days, MIR_ECRYPTO if the CA certificate and key do not match. */
mir_err mir_tls_client_cert_new(const char *ca_cert_pem, const char *ca_key_pem,
                                const char *client_id, unsigned days, char **cert_pem,
                                char **key_pem);

/* As mir_tls_cert_check, for a client: cert_pem (borrowed, untrusted) must be signed by the CA in
 * ca_cert_pem (borrowed), be valid now and name a client in a "mir:client:<id>" URI (a valid
 * client id); the id is copied into id_out (borrowed buffer of id_cap bytes; "" on failure).
 * MIR_ECRYPTO with detail otherwise. */
mir_err mir_tls_client_cert_check(const char *ca_cert_pem, const char *cert_pem, char *id_out,
                                  size_t id_cap);

#ifdef __cplusplus
}
#endif
#endif
