/*
 * Internal to the OpenSSL 3 backend of the crypto seam (mir_crypto_ossl): the key structures
 * behind the opaque handles of crypto.h and the helpers its files share. With crypto_common.h
 * (which it includes) it is the backend's whole internal interface, the counterpart of
 * crypto_internal.h in the BoringSSL backend. It includes OpenSSL 3 headers only, and only the
 * files of this folder include it; BoringSSL's headers must never be on this backend's include
 * path.
 *
 * Keys hold provider-native EVP_PKEY objects that are never changed after creation: OpenSSL
 * allows any number of threads to sign or verify with one such key at once, each with its own
 * operation context.
 */
#ifndef MIRI_OSSL_INTERNAL_H
#define MIRI_OSSL_INTERNAL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto_common.h"
#include "mir/crypto.h"
#include "mir/errors.h"

/* OpenSSL's name of the P-256 group in key parameters. */
#define MIRI_OSSL_P256 "prime256v1"

struct mir_private_key {
  mir_sig_scheme scheme;
  EVP_PKEY *pkey;                  /* owned: the private key with its public half */
  uint8_t pub[MIR_PUBLIC_KEY_MAX]; /* raw public key */
  size_t pub_len;
};

struct mir_public_key {
  mir_sig_scheme scheme;
  uint8_t raw[MIR_PUBLIC_KEY_MAX];
  size_t len;
  EVP_PKEY *pkey; /* owned: parsed once, so that verifying does not decode the key again */
};

/* Builds a private key around pkey (takes ownership, also on failure): it must be an Ed25519 key
 * or an EC key on P-256 with its private half. Fills the raw public key. NULL (pkey freed) for any
 * other key; the detail is not set. */
mir_private_key *miri_ossl_private_key_from_pkey(EVP_PKEY *pkey);

/* The raw public key of pkey (borrowed): 32 bytes for Ed25519, the uncompressed 65-byte point for
 * an EC key on P-256, whatever point form the key was loaded from. Writes into out
 * (MIR_PUBLIC_KEY_MAX bytes) and sets *scheme; returns the length, or 0 for any other key type,
 * curve, or a key without a public half. */
size_t miri_ossl_raw_public(const EVP_PKEY *pkey, mir_sig_scheme *scheme, uint8_t *out);

/* Declines every password request (pem_password_cb): encrypted PEM is not supported, and a
 * library must never prompt on a terminal, which OpenSSL's default callback would. */
int miri_ossl_no_password(char *buf, int size, int rwflag, void *user_data);

/* The fetched SHA-256 implementation, fetched once per process and kept (borrowed; never NULL:
 * a library without SHA-256 is a broken installation and stops the process). */
const EVP_MD *miri_ossl_sha256(void);

#endif
