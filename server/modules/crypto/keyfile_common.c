/*
 * The backend-neutral half of key files: reading and writing files of the seam, saving and
 * loading PEM keys through the backend's PEM text functions, and the "hex:" text form of public
 * keys that the membership file accepts besides base64.
 *
 * Files are untrusted: a file larger than the caller's bound is refused before it is read, and a
 * key that fails to parse is reported with the file's name. Files are written through a
 * temporary name, fsync and rename, so a crash leaves either the old file or the complete new
 * one; private key text is wiped from memory once written or parsed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_common.h"
#include "mir/alloc.h"

void miri_crypto_wipe(void *p, size_t n) {
  explicit_bzero(p, n);
}

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

/* ---- files of keys ---- */

mir_err mir_private_key_save(const mir_private_key *key, const char *path) {
  char *pem = NULL;
  mir_err err = mir_private_key_to_pem(key, &pem);
  if (err != MIR_OK) return err;
  err = miri_crypto_write_file(path, pem, strlen(pem), 0600);
  miri_crypto_wipe(pem, strlen(pem));
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
  miri_crypto_wipe(pem, len);
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

/* ---- hex text ---- */

char *mir_public_key_to_hex(const mir_public_key *key) {
  static const char digits[] = "0123456789abcdef";
  uint8_t raw[MIR_PUBLIC_KEY_MAX];
  size_t len = mir_public_key_bytes(key, raw);
  char *out = mir_xmalloc(4 + 2 * len + 1);
  memcpy(out, "hex:", 4);
  for (size_t i = 0; i < len; i++) {
    out[4 + 2 * i] = digits[raw[i] >> 4];
    out[4 + 2 * i + 1] = digits[raw[i] & 15];
  }
  out[4 + 2 * len] = '\0';
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
