/*
 * The configuration file of mir-replica (config.h).
 *
 * Every numeric field is a row of one table (section, name, where it goes, bounds, meaning), which
 * drives parsing, range checks, the defaults shown by --help and the help text itself, so the
 * documentation cannot drift from what is accepted. Objects are walked key by key and each key is
 * looked up in the table or among the few string and boolean fields; anything else is an unknown
 * field. Cross-field rules (TLS files all or none, Trantor's own consistency rules) run last.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/event.h"
#include "mir/timer.h"

#define CFG_MS_MAX MIR_TIMER_DURATION_MS_MAX
#define CFG_STR_MAX 4096 /* longest string value (paths, addresses) */

/* A numeric field: config->(offset) is a uint32_t or uint64_t. zero_ok: 0 (the component's
 * default) is accepted besides [min, max]. */
typedef struct cfg_num {
  const char *section; /* "" for the top level */
  const char *name;
  size_t offset;
  int bits;
  uint64_t min, max;
  bool zero_ok;
  const char *help;
} cfg_num;

#define T(f) offsetof(mir_replica_config, trantor.f)
#define C(f) offsetof(mir_replica_config, client.f)
#define N(f) offsetof(mir_replica_config, net.f)

static const cfg_num cfg_nums[] = {
    {"store", "retention_sns", offsetof(mir_replica_config, retention_sns), 64, 16,
     1000000000000ull, false, "delivered sequence numbers kept for Subscribe"},
    {"crypto", "workers", offsetof(mir_replica_config, crypto_workers), 64, 0, 256, false,
     "signature worker threads (0: one per core)"},
    {"client", "max_request_bytes", C(max_request_bytes), 64, 1024, 256u << 20, false,
     "largest message a client may send"},
    {"client", "max_txs_per_request", C(max_txs_per_request), 64, 1, 1000000, false,
     "transactions in one SubmitRequest"},
    {"client", "max_submit_streams", C(max_submit_streams), 64, 1, 65536, false,
     "Submit streams open at once"},
    {"client", "max_requests_in_flight", C(max_requests_in_flight), 64, 1, 65536, false,
     "requests of one Submit stream at the mempool (more are answered busy, with a hint)"},
    {"client", "max_bytes_in_flight", C(max_bytes_in_flight), 64, 1024, 1ull << 40, false,
     "transaction bytes of all Submit streams at the mempool (more are answered busy)"},
    {"client", "max_subscribers", C(max_subscribers), 64, 1, 65536, false,
     "Subscribe streams open at once"},
    {"client", "subscriber_stall_ms", C(subscriber_stall_ms), 64, 100, CFG_MS_MAX, false,
     "a subscriber that accepts no delivery for this long is cancelled"},
    {"client", "max_subscribers_per_client", C(max_subscribers_per_client), 64, 1, 65536, false,
     "Subscribe streams open at once for one client id"},
    {"client", "max_subscribers_per_connection", C(max_subscribers_per_connection), 64, 1, 65536,
     false, "Subscribe streams open at once over one connection (peer address and port)"},
    {"client", "subscribe_ahead_max", C(subscribe_ahead_max), 64, 0, 1000000000000ull, false,
     "a Subscribe from beyond the next sn plus this is refused (OUT_OF_RANGE)"},
    {"client", "retry_after_ms", C(retry_after_ms), 64, 1, 60000, false,
     "how long a client told the replica is busy (mempool full) waits before it sends again"},
    {"net", "max_message_bytes", N(max_message_bytes), 64, 1024, 256u << 20, true,
     "largest frame between replicas (0: 4 MiB)"},
    {"net", "queue_max_msgs", N(queue_max_msgs), 64, 1, 10000000, true,
     "messages queued per peer (0: 8192)"},
    {"net", "queue_max_bytes", N(queue_max_bytes), 64, 1024, 4ull << 30, true,
     "bytes queued per peer (0: 64 MiB)"},
    {"net", "backoff_min_ms", N(backoff_min_ms), 64, 1, 60000, true,
     "first reconnect delay (0: 100)"},
    {"net", "backoff_max_ms", N(backoff_max_ms), 64, 1, 600000, true,
     "longest reconnect delay (0: 1000)"},
    {"net", "keepalive_ms", N(keepalive_ms), 64, 100, 86400000, true,
     "keepalive ping period on idle links (0: 10000)"},
    {"trantor", "segment_length", T(segment_length), 32, 1, 4096, false, "sns per segment"},
    {"trantor", "num_buckets", T(num_buckets), 32, 1, 65536, false, "transaction buckets"},
    {"trantor", "retained_epochs", T(retained_epochs), 32, 1, 64, false,
     "epochs kept below the last stable checkpoint"},
    {"trantor", "epochs_ahead_max", T(epochs_ahead_max), 32, 1, 64, false,
     "epochs a replica may run ahead of its last durable stable checkpoint"},
    {"trantor", "view_change_sn_timeout_ms", T(view_change_sn_timeout_ms), 64, 1, CFG_MS_MAX, false,
     "view change when the segment holds up the log this long without progress"},
    {"trantor", "view_change_segment_timeout_ms", T(view_change_segment_timeout_ms), 64, 1,
     CFG_MS_MAX, false, "view change when a segment takes longer than this"},
    {"trantor", "done_resend_ms", T(done_resend_ms), 64, 1, CFG_MS_MAX, false,
     "Done message resend period"},
    {"trantor", "catch_up_delay_ms", T(catch_up_delay_ms), 64, 1, CFG_MS_MAX, false,
     "catch-up request period"},
    {"trantor", "view_change_resend_ms", T(view_change_resend_ms), 64, 1, CFG_MS_MAX, false,
     "view change resend period"},
    {"trantor", "msg_buf_bytes", T(msg_buf_bytes), 64, 4096, 4ull << 30, false,
     "future-view message buffer per PBFT instance"},
    {"trantor", "max_batch_txs", T(max_batch_txs), 32, 1, 1000000, false, "transactions per batch"},
    {"trantor", "max_batch_bytes", T(max_batch_bytes), 64, 1, 64u << 20, false,
     "transaction bytes per batch"},
    {"trantor", "batch_timeout_ms", T(batch_timeout_ms), 64, 1, CFG_MS_MAX, false,
     "cut a batch that is not full after this long"},
    {"trantor", "max_tx_bytes", T(max_tx_bytes), 64, 1, 64u << 20, false, "largest transaction"},
    {"trantor", "client_window", T(client_window), 64, 1, 1000000, false,
     "tx numbers a client may have ahead of its first undelivered one"},
    {"trantor", "mempool_max_txs", T(mempool_max_txs), 64, 1, 1000000000, false,
     "pending transactions in all"},
    {"trantor", "mempool_max_bytes", T(mempool_max_bytes), 64, 1, 64ull << 30, false,
     "pending transaction bytes in all"},
    {"trantor", "checkpoint_resend_ms", T(checkpoint_resend_ms), 64, 1, CFG_MS_MAX, false,
     "checkpoint message resend period"},
};
#define CFG_N_NUMS (sizeof(cfg_nums) / sizeof(cfg_nums[0]))

/* A string, path or boolean field. */
typedef enum cfg_kind { CFG_STRING, CFG_PATH, CFG_ADDR, CFG_BOOL, CFG_ID } cfg_kind;
typedef struct cfg_other {
  const char *section;
  const char *name;
  cfg_kind kind;
  size_t offset; /* a char * or a bool */
  bool required;
  const char *help;
} cfg_other;

#define F(f) offsetof(mir_replica_config, f)
static const cfg_other cfg_others[] = {
    {"", "id", CFG_ID, F(id), true, "this replica's id in the membership"},
    {"", "membership", CFG_PATH, F(membership_file), true, "the membership file (mir-keygen)"},
    {"", "key_file", CFG_PATH, F(key_file), true, "this replica's signing key (PEM PKCS#8)"},
    {"", "insecure", CFG_BOOL, F(insecure), false,
     "plaintext peer channels that trust claimed ids (local tests only); else \"tls\""},
    {"tls", "ca_file", CFG_PATH, F(tls_ca_file), false, "the cluster CA certificate (PEM)"},
    {"tls", "cert_file", CFG_PATH, F(tls_cert_file), false, "this replica's certificate"},
    {"tls", "key_file", CFG_PATH, F(tls_key_file), false, "its private key"},
    {"", "peer_listen", CFG_ADDR, F(peer_listen), false,
     "host:port of the peer transport (default: the membership's address)"},
    {"", "client_listen", CFG_ADDR, F(client_listen), true, "host:port of the client API"},
    {"", "http_listen", CFG_ADDR, F(http_listen), false,
     "host:port of the HTTP endpoint (/metrics, /debug/pprof/..., /debug/stats); off if unset"},
    {"", "client_tls", CFG_BOOL, F(client_tls), false,
     "serve the client API over TLS with the \"tls\" certificate (default false)"},
    {"client", "require_cert", CFG_BOOL, F(client_require_cert), false,
     "clients need a certificate naming the one client id they may use (needs client_tls)"},
    {"client", "ca_file", CFG_PATH, F(client_ca_file), false,
     "the CA that signs client certificates (default: tls.ca_file); needs require_cert"},
    {"", "data_dir", CFG_PATH, F(data_dir), true, "data folder (created if missing)"},
    {"", "log_level", CFG_STRING, F(log_level), false, "trace, debug, info, warn or error"},
    {"store", "sync", CFG_BOOL, F(store_sync), false,
     "fsync each group of writes (default true; false survives process crashes only)"},
};
#define CFG_N_OTHERS (sizeof(cfg_others) / sizeof(cfg_others[0]))

/* The objects a file may contain besides the fields above. */
static const char *const cfg_sections[] = {"tls", "store", "client", "net", "crypto", "trantor"};

typedef struct cfg_ctx {
  const char *name;     /* the file, for messages */
  const char *base_dir; /* for relative paths; NULL: the current folder */
  mir_replica_config *c;
} cfg_ctx;

static mir_err cfg_error(const cfg_ctx *x, const char *section, const char *field,
                         const char *reason) {
  return mir_error_set(MIR_ECONFIG, "%s: %s%s%s: %s", x->name, section, section[0] ? "." : "",
                       field, reason);
}

static void cfg_defaults(mir_replica_config *c) {
  memset(c, 0, sizeof(*c));
  c->store_sync = true;
  c->retention_sns = 1000000;
  c->client = (mir_replica_client_limits){.max_request_bytes = 1u << 20,
                                          .max_txs_per_request = 4096,
                                          .max_submit_streams = 1024,
                                          .max_requests_in_flight = 64,
                                          .max_bytes_in_flight = 64u << 20,
                                          .max_subscribers = 256,
                                          .subscriber_stall_ms = 30000,
                                          .max_subscribers_per_client = 32,
                                          .max_subscribers_per_connection = 32,
                                          .subscribe_ahead_max = 10000,
                                          .retry_after_ms = 100};
  trantor_params_default(&c->trantor);
}

/* ---- one field ---- */

static mir_err cfg_set_num(const cfg_ctx *x, const cfg_num *f, const json_t *v) {
  char reason[128];
  json_int_t i = json_is_integer(v) ? json_integer_value(v) : -1;
  bool ok = i >= 0 && ((uint64_t)i >= f->min || (f->zero_ok && i == 0)) && (uint64_t)i <= f->max;
  if (!ok) {
    snprintf(reason, sizeof(reason), "must be an integer in %s%" PRIu64 "..%" PRIu64,
             f->zero_ok ? "0 or " : "", f->min, f->max);
    return cfg_error(x, f->section, f->name, reason);
  }
  char *at = (char *)x->c + f->offset;
  if (f->bits == 32) {
    *(uint32_t *)at = (uint32_t)i;
  } else {
    *(uint64_t *)at = (uint64_t)i;
  }
  return MIR_OK;
}

/* True for "host:port" with a non-empty host and a port in 1..65535. */
static bool cfg_addr_valid(const char *s) {
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s || colon[1] == '\0') return false;
  char *end = NULL;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  return errno == 0 && *end == '\0' && port >= 1 && port <= 65535;
}

/* Resolves a relative path against base_dir; returns owned. */
static char *cfg_resolve(const cfg_ctx *x, const char *path) {
  if (path[0] == '/' || x->base_dir == NULL || x->base_dir[0] == '\0') return mir_xstrdup(path);
  size_t len = strlen(x->base_dir) + strlen(path) + 2;
  char *out = mir_xmalloc(len);
  snprintf(out, len, "%s/%s", x->base_dir, path);
  return out;
}

static mir_err cfg_set_string(const cfg_ctx *x, const cfg_other *f, const json_t *v) {
  const char *s = json_is_string(v) ? json_string_value(v) : NULL;
  size_t len = s != NULL ? strlen(s) : 0;
  if (s == NULL || len == 0 || len > CFG_STR_MAX || strlen(s) != json_string_length(v)) {
    return cfg_error(x, f->section, f->name, "must be a non-empty string");
  }
  if (f->kind == CFG_ADDR && !cfg_addr_valid(s)) {
    return cfg_error(x, f->section, f->name, "must be host:port with a port in 1..65535");
  }
  if (f->kind == CFG_ID &&
      (len >= MIR_MODULE_ID_MAX || strchr(s, '/') || !mir_module_id_valid(s))) {
    return cfg_error(x, f->section, f->name, "must be 1 to 63 characters of [A-Za-z0-9_.-]");
  }
  char **at = (char **)((char *)x->c + f->offset);
  free(*at);
  *at = f->kind == CFG_PATH ? cfg_resolve(x, s) : mir_xstrdup(s);
  return MIR_OK;
}

static mir_err cfg_set_other(const cfg_ctx *x, const cfg_other *f, const json_t *v) {
  if (f->kind != CFG_BOOL) return cfg_set_string(x, f, v);
  if (!json_is_boolean(v)) return cfg_error(x, f->section, f->name, "must be true or false");
  *(bool *)((char *)x->c + f->offset) = json_is_true(v);
  return MIR_OK;
}

/* trantor.leader_policy: the one enumerated field. */
static mir_err cfg_set_policy(const cfg_ctx *x, const json_t *v) {
  const char *s = json_is_string(v) ? json_string_value(v) : "";
  if (strcmp(s, "simple") == 0 || strcmp(s, "blacklist") == 0) {
    x->c->trantor.leader_policy_blacklist = strcmp(s, "blacklist") == 0;
    return MIR_OK;
  }
  return cfg_error(x, "trantor", "leader_policy", "must be \"simple\" or \"blacklist\"");
}

/* Sets field key of section from v; an unknown key is an error. */
static mir_err cfg_set_field(const cfg_ctx *x, const char *section, const char *key,
                             const json_t *v) {
  for (size_t i = 0; i < CFG_N_NUMS; i++) {
    if (strcmp(cfg_nums[i].section, section) == 0 && strcmp(cfg_nums[i].name, key) == 0) {
      return cfg_set_num(x, &cfg_nums[i], v);
    }
  }
  for (size_t i = 0; i < CFG_N_OTHERS; i++) {
    if (strcmp(cfg_others[i].section, section) == 0 && strcmp(cfg_others[i].name, key) == 0) {
      return cfg_set_other(x, &cfg_others[i], v);
    }
  }
  if (strcmp(section, "trantor") == 0 && strcmp(key, "leader_policy") == 0) {
    return cfg_set_policy(x, v);
  }
  return cfg_error(x, section, key, "unknown field");
}

/* ---- the file ---- */

static bool cfg_is_section(const char *key) {
  for (size_t i = 0; i < sizeof(cfg_sections) / sizeof(cfg_sections[0]); i++) {
    if (strcmp(cfg_sections[i], key) == 0) return true;
  }
  return false;
}

static mir_err cfg_walk(const cfg_ctx *x, const json_t *root) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)root, key, v) {
    mir_err err = MIR_OK;
    if (cfg_is_section(key)) {
      if (!json_is_object(v)) return cfg_error(x, "", key, "must be an object");
      const char *k2;
      json_t *v2;
      json_object_foreach(v, k2, v2) {
        err = cfg_set_field(x, key, k2, v2);
        if (err != MIR_OK) return err;
      }
    } else {
      err = cfg_set_field(x, "", key, v);
    }
    if (err != MIR_OK) return err;
  }
  return MIR_OK;
}

static mir_err cfg_check_required(const cfg_ctx *x) {
  for (size_t i = 0; i < CFG_N_OTHERS; i++) {
    const cfg_other *f = &cfg_others[i];
    if (f->required && *(char **)((char *)x->c + f->offset) == NULL) {
      return cfg_error(x, f->section, f->name, "required");
    }
  }
  return MIR_OK;
}

/* Rules between fields. */
static mir_err cfg_check_cross(const cfg_ctx *x) {
  mir_replica_config *c = x->c;
  int tls = (c->tls_ca_file != NULL) + (c->tls_cert_file != NULL) + (c->tls_key_file != NULL);
  if (tls != 0 && tls != 3) {
    return cfg_error(x, "", "tls", "needs ca_file, cert_file and key_file");
  }
  if ((tls == 3) == c->insecure) {
    return cfg_error(x, "", "tls",
                     "set either \"tls\" (mutual TLS between replicas) or "
                     "\"insecure\": true (plaintext, local tests only), not both");
  }
  if (c->client_tls && tls != 3) return cfg_error(x, "", "client_tls", "needs \"tls\"");
  if (c->client_require_cert && !c->client_tls) {
    return cfg_error(x, "client", "require_cert", "needs \"client_tls\": true");
  }
  if (c->client_ca_file != NULL && !c->client_require_cert) {
    return cfg_error(x, "client", "ca_file", "is used only with \"require_cert\": true");
  }
  const char *levels[] = {"trace", "debug", "info", "warn", "error", "off"};
  bool level_ok = c->log_level == NULL;
  for (size_t i = 0; i < 6 && !level_ok; i++) level_ok = strcmp(c->log_level, levels[i]) == 0;
  if (!level_ok) {
    return cfg_error(x, "", "log_level", "must be trace, debug, info, warn, error or off");
  }
  if (c->net.backoff_min_ms != 0 && c->net.backoff_max_ms != 0 &&
      c->net.backoff_min_ms > c->net.backoff_max_ms) {
    return cfg_error(x, "net", "backoff_max_ms", "must be >= backoff_min_ms");
  }
  if (trantor_params_check(&c->trantor) != MIR_OK) {
    /* "trantor params: <field>: <reason>" */
    char d[256]; /* copied: mir_error_set writes the buffer mir_error_detail returns */
    snprintf(d, sizeof(d), "%s", mir_error_detail());
    const char *p = strncmp(d, "trantor params: ", 16) == 0 ? d + 16 : d;
    return mir_error_set(MIR_ECONFIG, "%s: trantor.%s", x->name, p);
  }
  return MIR_OK;
}

mir_err mir_replica_config_parse(const char *text, size_t len, const char *name,
                                 const char *base_dir, mir_replica_config *out) {
  cfg_defaults(out);
  cfg_ctx x = {.name = name, .base_dir = base_dir, .c = out};
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  mir_err err = MIR_OK;
  if (root == NULL) {
    err = mir_error_set(MIR_ECONFIG, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
  } else if (!json_is_object(root)) {
    err = mir_error_set(MIR_ECONFIG, "%s: the configuration must be a JSON object", name);
  } else {
    err = cfg_walk(&x, root);
    if (err == MIR_OK) err = cfg_check_required(&x);
    if (err == MIR_OK) err = cfg_check_cross(&x);
  }
  json_decref(root);
  if (err == MIR_OK) {
    out->file = mir_xstrdup(name);
  } else {
    mir_replica_config_fini(out);
  }
  return err;
}

/* Reads the whole file (at most MIR_REPLICA_CONFIG_FILE_MAX bytes) into an owned buffer. */
static mir_err cfg_read_file(const char *path, char **text, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return mir_error_set(MIR_EIO, "%s: cannot open: %s", path, strerror(errno));
  char *buf = mir_xmalloc(MIR_REPLICA_CONFIG_FILE_MAX + 1);
  size_t n = fread(buf, 1, MIR_REPLICA_CONFIG_FILE_MAX + 1, f);
  bool bad = ferror(f) != 0;
  fclose(f);
  if (bad || n > MIR_REPLICA_CONFIG_FILE_MAX) {
    free(buf);
    return mir_error_set(bad ? MIR_EIO : MIR_ECONFIG, "%s: %s", path,
                         bad ? "cannot read" : "larger than 1 MiB");
  }
  *text = buf;
  *len = n;
  return MIR_OK;
}

mir_err mir_replica_config_load(const char *path, mir_replica_config *out) {
  memset(out, 0, sizeof(*out));
  char *text = NULL;
  size_t len = 0;
  mir_err err = cfg_read_file(path, &text, &len);
  if (err != MIR_OK) return err;
  char *dir = mir_xstrdup(path);
  char *slash = strrchr(dir, '/');
  if (slash != NULL) {
    slash[slash == dir ? 1 : 0] = '\0';
  } else {
    dir[0] = '\0';
  }
  err = mir_replica_config_parse(text, len, path, dir, out);
  free(dir);
  free(text);
  return err;
}

void mir_replica_config_fini(mir_replica_config *c) {
  char **strs[] = {&c->file,         &c->id,          &c->membership_file,
                   &c->key_file,     &c->tls_ca_file, &c->tls_cert_file,
                   &c->tls_key_file, &c->peer_listen, &c->client_listen,
                   &c->data_dir,     &c->log_level,   &c->client_ca_file,
                   &c->http_listen};
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) free(*strs[i]);
  memset(c, 0, sizeof(*c));
}

/* ---- help ---- */

static void cfg_help_section(FILE *f, const char *section, const mir_replica_config *d) {
  for (size_t i = 0; i < CFG_N_OTHERS; i++) {
    const cfg_other *o = &cfg_others[i];
    if (strcmp(o->section, section) != 0) continue;
    fprintf(f, "  %s%s%-32s %s%s\n", section, section[0] ? "." : "", o->name, o->help,
            o->required ? " (required)" : "");
  }
  for (size_t i = 0; i < CFG_N_NUMS; i++) {
    const cfg_num *n = &cfg_nums[i];
    if (strcmp(n->section, section) != 0) continue;
    const char *at = (const char *)d + n->offset;
    uint64_t dv = n->bits == 32 ? *(const uint32_t *)at : *(const uint64_t *)at;
    fprintf(f, "  %s.%-32s %s; %s%" PRIu64 "..%" PRIu64 ", default %" PRIu64 "\n", section, n->name,
            n->help, n->zero_ok ? "0 or " : "", n->min, n->max, dv);
  }
}

void mir_replica_config_help(FILE *f) {
  mir_replica_config d;
  cfg_defaults(&d);
  fprintf(f,
          "Configuration file (JSON object; relative paths are relative to its folder;\n"
          "unknown fields are errors):\n\n");
  const char *order[] = {"", "tls", "store", "client", "net", "crypto", "trantor"};
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
    cfg_help_section(f, order[i], &d);
    if (strcmp(order[i], "trantor") == 0) {
      fprintf(f,
              "  trantor.%-32s \"simple\" (default) or \"blacklist\" (suspected leaders are\n"
              "  %-40s left out of the next epochs)\n",
              "leader_policy", "");
    }
  }
  fprintf(f,
          "\nExample:\n"
          "  {\"id\": \"0\", \"membership\": \"membership.json\", \"key_file\": "
          "\"replica-0.key\",\n"
          "   \"tls\": {\"ca_file\": \"ca.pem\", \"cert_file\": \"replica-0.crt\", "
          "\"key_file\": \"replica-0.tls.key\"},\n"
          "   \"client_listen\": \"127.0.0.1:9000\", \"data_dir\": \"data-0\",\n"
          "   \"trantor\": {\"segment_length\": 16}}\n");
}
