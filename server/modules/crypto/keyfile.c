/*
 * Key (de)serialisation: PEM files (PKCS#8 private keys, SubjectPublicKeyInfo public keys) and
 * base64 of raw public keys for the membership file, plus the small file helpers of the seam.
 *
 * Everything read here is untrusted: files are bounded by MIRI_CRYPTO_FILE_MAX before they are
 * parsed, a key of another type or curve is refused with MIR_EUNSUPPORTED, and an encrypted
 * private key is refused instead of prompting for a password (the callback always declines).
 * Files are written through a temporary name, fsync and rename, so a crash leaves either the old
 * file or the complete new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_internal.h"
#include "mir/alloc.h"

/* ---- files ---- */

mir_err miri_crypto_read_file(const char *path, size_t max, char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return mir_error_set(MIR_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return mir_error_set(MIR_EIO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > max) {
    close(fd);
    return mir_error_set(MIR_EINVAL, "%s: larger than %zu bytes", path, max);
  }
  char *buf = mir_xmalloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (got != (size_t)st.st_size) {
    free(buf);
    return mir_error_set(MIR_EIO, "%s: short read", path);
  }
  buf[got] = '\0';
  *data = buf;
  *len = got;
  return MIR_OK;
}

/* Writes all of data to fd, retrying short writes. */
static bool keyfile_write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

mir_err miri_crypto_write_file(const char *path, const void *data, size_t len, unsigned mode) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
    return mir_error_set(MIR_EIO, "%s: path too long", path);
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
  if (fd < 0) return mir_error_set(MIR_EIO, "%s: %s", tmp, strerror(errno));
  /* fchmod: the umask must not widen or narrow what the caller asked for. */
  bool ok = fchmod(fd, (mode_t)mode) == 0 && keyfile_write_all(fd, data, len) && fsync(fd) == 0;
  int saved = errno;
  close(fd);
  if (!ok || rename(tmp, path) != 0) {
    if (ok) saved = errno;
    unlink(tmp);
    return mir_error_set(MIR_EIO, "%s: %s", path, strerror(saved));
  }
  return MIR_OK;
}

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

/* Copies the contents of a memory BIO into an owned NUL-terminated string. */
static char *keyfile_bio_string(BIO *bio) {
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
  if (ok) *out = keyfile_bio_string(bio);
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  return *out ? MIR_OK : miri_crypto_error(MIR_ECRYPTO, "private key PEM encoding");
}

mir_err mir_public_key_to_pem(const mir_public_key *key, char **out) {
  *out = NULL;
  EVP_PKEY *pkey = keyfile_pkey(key->scheme, NULL, key->raw, key->ec);
  BIO *bio = BIO_new(BIO_s_mem());
  bool ok = pkey != NULL && bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1;
  if (ok) *out = keyfile_bio_string(bio);
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

/* ---- files of keys ---- */

mir_err mir_private_key_save(const mir_private_key *key, const char *path) {
  char *pem = NULL;
  mir_err err = mir_private_key_to_pem(key, &pem);
  if (err != MIR_OK) return err;
  err = miri_crypto_write_file(path, pem, strlen(pem), 0600);
  OPENSSL_cleanse(pem, strlen(pem));
  free(pem);
  return err;
}

mir_err mir_public_key_save(const mir_public_key *key, const char *path) {
  char *pem = NULL;
  mir_err err = mir_public_key_to_pem(key, &pem);
  if (err != MIR_OK) return err;
  err = miri_crypto_write_file(path, pem, strlen(pem), 0644);
  free(pem);
  return err;
}

/* Prefixes the current error detail with path, keeping the code. */
static mir_err keyfile_name_error(mir_err err, const char *path) {
  char detail[400];
  snprintf(detail, sizeof detail, "%s", mir_error_detail());
  return mir_error_set(err, "%s: %s", path, detail);
}

mir_err mir_private_key_load(const char *path, mir_private_key **out) {
  *out = NULL;
  char *pem = NULL;
  size_t len = 0;
  mir_err err = miri_crypto_read_file(path, MIRI_CRYPTO_FILE_MAX, &pem, &len);
  if (err != MIR_OK) return err;
  err = mir_private_key_from_pem(pem, len, out);
  OPENSSL_cleanse(pem, len);
  free(pem);
  return err == MIR_OK ? MIR_OK : keyfile_name_error(err, path);
}

mir_err mir_public_key_load(const char *path, mir_public_key **out) {
  *out = NULL;
  char *pem = NULL;
  size_t len = 0;
  mir_err err = miri_crypto_read_file(path, MIRI_CRYPTO_FILE_MAX, &pem, &len);
  if (err != MIR_OK) return err;
  err = mir_public_key_from_pem(pem, len, out);
  free(pem);
  return err == MIR_OK ? MIR_OK : keyfile_name_error(err, path);
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

char *mir_public_key_to_hex(const mir_public_key *key) {
  static const char digits[] = "0123456789abcdef";
  char *out = mir_xmalloc(4 + 2 * key->len + 1);
  memcpy(out, "hex:", 4);
  for (size_t i = 0; i < key->len; i++) {
    out[4 + 2 * i] = digits[key->raw[i] >> 4];
    out[4 + 2 * i + 1] = digits[key->raw[i] & 15];
  }
  out[4 + 2 * key->len] = '\0';
  return out;
}

/* Value of one hex digit, or -1. */
static int keyfile_hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

mir_err mir_public_key_from_text(mir_sig_scheme scheme, const char *text, mir_public_key **out) {
  *out = NULL;
  if (strncmp(text, "hex:", 4) != 0) return mir_public_key_from_base64(scheme, text, out);
  const char *hex = text + 4;
  size_t len = strlen(hex);
  uint8_t raw[MIR_PUBLIC_KEY_MAX];
  if (len % 2 != 0 || len / 2 > sizeof raw) {
    return mir_error_set(MIR_ECRYPTO, "public key hex has %zu digits", len);
  }
  for (size_t i = 0; i < len / 2; i++) {
    int hi = keyfile_hex_digit(hex[2 * i]), lo = keyfile_hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return mir_error_set(MIR_ECRYPTO, "public key is not valid hex");
    raw[i] = (uint8_t)(hi << 4 | lo);
  }
  return mir_public_key_from_bytes(scheme, raw, len / 2, out);
}
