/*
 * Loader of the membership file (membership.h), with jansson.
 *
 * The file is untrusted input in the sense that a typo must never start a replica with a wrong
 * view of the system: every field is checked for type, range and uniqueness, unknown fields are
 * refused, and the first problem is reported with the file, the JSON path of the field
 * ("replicas[2].weight") and the reason. Sizes are bounded before anything is allocated: the file
 * by MIR_MEMBERSHIP_FILE_MAX, the replica count by MIR_MEMBERSHIP_MAX. Uniqueness checks are
 * quadratic, which at 1024 replicas is half a million comparisons, once, at start.
 */
#include "mir/membership.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mir/alloc.h"

/* Where an error is: the file name and the field path. */
typedef struct ms_ctx {
  const char *name;
  char path[64];
} ms_ctx;

static mir_err ms_fail(const ms_ctx *c, const char *field, const char *reason) {
  return mir_error_set(MIR_ECONFIG, "%s: %s%s%s: %s", c->name, c->path, c->path[0] ? "." : "",
                       field, reason);
}

/* ---- base64 and hex ---- */

static int ms_b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

long mir_base64_decode(const char *text, uint8_t *out, size_t cap) {
  size_t len = strlen(text);
  if (len % 4 != 0) return -1;
  size_t n = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = text[i + k];
      /* Padding only in the last group, only at its end. */
      if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || text[i + 3] == '=')) {
        v[k] = 0;
        pad++;
      } else if ((v[k] = ms_b64_value(c)) < 0) {
        return -1;
      }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    size_t bytes = 3 - (size_t)pad;
    if (n + bytes > cap) return -1;
    for (size_t k = 0; k < bytes; k++) out[n++] = (uint8_t)(w >> (16 - 8 * k));
  }
  return (long)n;
}

/* Decodes hex digits into out (cap bytes); -1 if malformed or too long. */
static long ms_hex_decode(const char *text, uint8_t *out, size_t cap) {
  size_t len = strlen(text);
  if (len % 2 != 0 || len / 2 > cap) return -1;
  for (size_t i = 0; i < len; i += 2) {
    if (!isxdigit((unsigned char)text[i]) || !isxdigit((unsigned char)text[i + 1])) return -1;
    char pair[3] = {text[i], text[i + 1], '\0'};
    out[i / 2] = (uint8_t)strtoul(pair, NULL, 16);
  }
  return (long)(len / 2);
}

/* ---- fields ---- */

static bool ms_name_char(char c, bool allow_colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-' || (allow_colon && c == ':');
}

static mir_err ms_id(const ms_ctx *c, json_t *v, mir_replica_info *r) {
  if (v == NULL) return ms_fail(c, "id", "missing");
  if (!json_is_string(v)) return ms_fail(c, "id", "must be a string");
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (n == 0 || n >= MIR_MODULE_ID_MAX) return ms_fail(c, "id", "must have 1 to 63 characters");
  for (size_t i = 0; i < n; i++) {
    if (!ms_name_char(s[i], false)) return ms_fail(c, "id", "may only contain A-Z a-z 0-9 _ . -");
  }
  memcpy(r->id, s, n + 1);
  return MIR_OK;
}

/* Splits "host:port" or "[v6]:port" into r->host and r->port. */
static mir_err ms_address(const ms_ctx *c, json_t *v, mir_replica_info *r) {
  if (v == NULL) return ms_fail(c, "address", "missing");
  if (!json_is_string(v)) return ms_fail(c, "address", "must be a string");
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  const char *colon = strrchr(s, ':');
  if (n >= sizeof r->address || colon == NULL || strlen(s) != n) {
    return ms_fail(c, "address", "must be host:port");
  }
  const char *host = s;
  size_t host_len = (size_t)(colon - s);
  bool v6 = host_len >= 2 && s[0] == '[' && s[host_len - 1] == ']';
  if (v6) {
    host++;
    host_len -= 2;
  }
  if (host_len == 0 || host_len >= MIR_HOST_MAX) return ms_fail(c, "address", "empty host");
  if (!v6 && memchr(host, ':', host_len) != NULL) {
    return ms_fail(c, "address", "IPv6 hosts must be in brackets");
  }
  for (size_t i = 0; i < host_len; i++) {
    if (!ms_name_char(host[i], v6)) return ms_fail(c, "address", "invalid character in host");
  }
  char *end = NULL;
  errno = 0;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (colon[1] == '\0' || !isdigit((unsigned char)colon[1]) || *end != '\0' || errno != 0 ||
      port == 0 || port > 65535) {
    return ms_fail(c, "address", "port must be 1 to 65535");
  }
  memcpy(r->address, s, n + 1);
  memcpy(r->host, host, host_len);
  r->host[host_len] = '\0';
  r->port = (uint16_t)port;
  return MIR_OK;
}

/* The encodings of the Ed25519 points of small order (orders 1, 2, 4 and 8), as y little-endian
 * with the sign bit of x (the top bit of the last byte) ignored, so that each entry stands for
 * both signs: y = 0, 1, the two y of the order-8 points, p - 1, and the non-canonical p and p + 1
 * (= 0 and 1), which lenient decoders accept (list as in libsodium's ge25519_has_small_order). */
static const uint8_t ms_ed25519_small_order[][MIR_ED25519_PUBLIC_KEY_LEN] = {
    {0x00},
    {0x01},
    {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
     0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
     0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
    {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
     0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
     0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

/* True if key (MIR_ED25519_PUBLIC_KEY_LEN bytes) encodes a point of small order. Such a key has
 * no secret behind it: signatures that verify under it can be made without any private key, so
 * a replica listed with one could be impersonated by anyone. The loader needs no crypto library
 * for this, since the list is short and fixed. */
static bool ms_ed25519_small_order_key(const uint8_t *key) {
  size_t last = MIR_ED25519_PUBLIC_KEY_LEN - 1;
  size_t n = sizeof ms_ed25519_small_order / sizeof ms_ed25519_small_order[0];
  for (size_t i = 0; i < n; i++) {
    const uint8_t *bad = ms_ed25519_small_order[i];
    if (memcmp(key, bad, last) == 0 && (key[last] & 0x7f) == bad[last]) return true;
  }
  return false;
}

static mir_err ms_public_key(const ms_ctx *c, json_t *v, mir_sig_scheme scheme,
                             mir_replica_info *r) {
  if (v == NULL) return ms_fail(c, "public_key", "missing");
  if (!json_is_string(v)) return ms_fail(c, "public_key", "must be a string");
  const char *s = json_string_value(v);
  long n = strncmp(s, "hex:", 4) == 0 ? ms_hex_decode(s + 4, r->public_key, sizeof r->public_key)
                                      : mir_base64_decode(s, r->public_key, sizeof r->public_key);
  if (n < 0) return ms_fail(c, "public_key", "must be base64 (or hex:<digits>) of a raw key");
  size_t want = mir_sig_public_key_len(scheme);
  if ((size_t)n != want) {
    char why[96];
    snprintf(why, sizeof why, "has %ld bytes, a %s key has %zu", n, mir_sig_scheme_name(scheme),
             want);
    return ms_fail(c, "public_key", why);
  }
  if (scheme == MIR_SIG_ECDSA_P256 && r->public_key[0] != 0x04) {
    return ms_fail(c, "public_key", "must be an uncompressed P-256 point (04 || X || Y)");
  }
  if (scheme == MIR_SIG_ED25519 && ms_ed25519_small_order_key(r->public_key)) {
    return ms_fail(c, "public_key",
                   "is an Ed25519 point of small order (signatures under it need no private key)");
  }
  r->public_key_len = (size_t)n;
  return MIR_OK;
}

static mir_err ms_weight(const ms_ctx *c, json_t *v, mir_replica_info *r) {
  r->weight = 1;
  if (v == NULL) return MIR_OK;
  if (!json_is_integer(v) || json_integer_value(v) <= 0) {
    return ms_fail(c, "weight", "must be a positive integer");
  }
  if ((unsigned long long)json_integer_value(v) > MIR_MEMBERSHIP_WEIGHT_MAX) {
    return ms_fail(c, "weight", "must be at most 4294967295");
  }
  r->weight = (uint64_t)json_integer_value(v);
  return MIR_OK;
}

/* Refuses any key of obj outside allowed (a NULL-terminated list). */
static mir_err ms_known_fields(const ms_ctx *c, json_t *obj, const char *const *allowed) {
  const char *key;
  json_t *value;
  json_object_foreach(obj, key, value) {
    bool known = false;
    for (size_t i = 0; allowed[i] != NULL && !known; i++) known = strcmp(key, allowed[i]) == 0;
    if (!known) {
      char field[80];
      snprintf(field, sizeof field, "%.60s", key);
      return ms_fail(c, field, "unknown field");
    }
  }
  return MIR_OK;
}

static mir_err ms_replica(ms_ctx *c, json_t *obj, mir_sig_scheme scheme, mir_replica_info *r) {
  static const char *const fields[] = {"id", "address", "public_key", "weight", NULL};
  if (!json_is_object(obj)) {
    ms_ctx outer = {c->name, ""};
    return ms_fail(&outer, c->path, "must be an object");
  }
  mir_err err = ms_known_fields(c, obj, fields);
  if (err == MIR_OK) err = ms_id(c, json_object_get(obj, "id"), r);
  if (err == MIR_OK) err = ms_address(c, json_object_get(obj, "address"), r);
  if (err == MIR_OK) err = ms_public_key(c, json_object_get(obj, "public_key"), scheme, r);
  if (err == MIR_OK) err = ms_weight(c, json_object_get(obj, "weight"), r);
  return err;
}

/* Checks that replica i repeats no id, address or key of an earlier replica. */
static mir_err ms_unique(const ms_ctx *c, const mir_membership *m, size_t i) {
  const mir_replica_info *r = &m->replicas[i];
  for (size_t j = 0; j < i; j++) {
    const mir_replica_info *o = &m->replicas[j];
    const char *field = NULL;
    if (strcmp(o->id, r->id) == 0)
      field = "id";
    else if (strcmp(o->host, r->host) == 0 && o->port == r->port)
      field = "address";
    else if (o->public_key_len == r->public_key_len &&
             memcmp(o->public_key, r->public_key, r->public_key_len) == 0)
      field = "public_key";
    if (field != NULL) {
      char why[64];
      snprintf(why, sizeof why, "same as replicas[%zu]", j);
      return ms_fail(c, field, why);
    }
  }
  return MIR_OK;
}

/* ---- the document ---- */

static mir_err ms_scheme(const ms_ctx *c, json_t *root, mir_sig_scheme *scheme) {
  json_t *v = json_object_get(root, "scheme");
  *scheme = MIR_SIG_ED25519;
  if (v == NULL) return MIR_OK;
  if (!json_is_string(v) || !mir_sig_scheme_parse(json_string_value(v), scheme)) {
    return ms_fail(c, "scheme", "must be \"ed25519\" or \"ecdsa-p256\"");
  }
  return MIR_OK;
}

static mir_err ms_replicas(const ms_ctx *top, json_t *arr, mir_membership *m) {
  if (arr == NULL) return ms_fail(top, "replicas", "missing");
  if (!json_is_array(arr)) return ms_fail(top, "replicas", "must be an array");
  size_t n = json_array_size(arr);
  if (n == 0 || n > MIR_MEMBERSHIP_MAX) {
    return ms_fail(top, "replicas", "must have 1 to 1024 entries");
  }
  m->replicas = mir_xcalloc(n, sizeof *m->replicas);
  for (size_t i = 0; i < n; i++) {
    ms_ctx c = {top->name, ""};
    snprintf(c.path, sizeof c.path, "replicas[%zu]", i);
    mir_err err = ms_replica(&c, json_array_get(arr, i), m->scheme, &m->replicas[i]);
    if (err == MIR_OK) err = ms_unique(&c, m, i);
    if (err != MIR_OK) return err;
    m->n = i + 1;
    m->total_weight += m->replicas[i].weight;
  }
  return MIR_OK;
}

mir_err mir_membership_parse(const char *text, size_t len, const char *name, mir_membership **out) {
  static const char *const fields[] = {"scheme", "replicas", NULL};
  *out = NULL;
  ms_ctx top = {name, ""};
  if (len > MIR_MEMBERSHIP_FILE_MAX) {
    return mir_error_set(MIR_ECONFIG, "%s: larger than %u bytes", name, MIR_MEMBERSHIP_FILE_MAX);
  }
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    return mir_error_set(MIR_ECONFIG, "%s: line %d, column %d: %s", name, jerr.line, jerr.column,
                         jerr.text);
  }
  mir_membership *m = mir_xcalloc(1, sizeof *m);
  mir_err err = json_is_object(root)
                    ? MIR_OK
                    : (mir_err)mir_error_set(MIR_ECONFIG, "%s: must be a JSON object", name);
  if (err == MIR_OK) err = ms_known_fields(&top, root, fields);
  if (err == MIR_OK) err = ms_scheme(&top, root, &m->scheme);
  if (err == MIR_OK) err = ms_replicas(&top, json_object_get(root, "replicas"), m);
  json_decref(root);
  if (err != MIR_OK) {
    mir_membership_free(m);
    return err;
  }
  *out = m;
  return MIR_OK;
}

mir_err mir_membership_load(const char *path, mir_membership **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return mir_error_set(MIR_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
      (uint64_t)st.st_size > MIR_MEMBERSHIP_FILE_MAX) {
    fclose(f);
    return mir_error_set(MIR_ECONFIG, "%s: not a regular file of at most %u bytes", path,
                         MIR_MEMBERSHIP_FILE_MAX);
  }
  size_t size = (size_t)st.st_size;
  char *text = mir_xmalloc(size + 1);
  size_t got = fread(text, 1, size, f);
  fclose(f);
  mir_err err = got == size ? mir_membership_parse(text, size, path, out)
                            : (mir_err)mir_error_set(MIR_EIO, "%s: short read", path);
  free(text);
  return err;
}

void mir_membership_free(mir_membership *m) {
  if (m == NULL) return;
  free(m->replicas);
  free(m);
}

const mir_replica_info *mir_membership_find(const mir_membership *m, const char *id) {
  for (size_t i = 0; i < m->n; i++) {
    if (strcmp(m->replicas[i].id, id) == 0) return &m->replicas[i];
  }
  return NULL;
}
