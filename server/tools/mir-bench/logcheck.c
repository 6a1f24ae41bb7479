/*
 * mir-logcheck: checks a cluster's ordered log against what load generators saw
 * (docs/OPERATIONS.md, "Crash campaign").
 *
 *   mir-logcheck --replicas host:port,... --to-sn T [--record FILE]... [--timeout-s S]
 *
 * 1. Reads the log from sn 0 to T as a subscriber of the SDK (libmirclient, default trust: each
 *    entry once f+1 replicas sent it identically), and recomputes the hash chain of api.proto over
 *    it: the entries read are exactly the ones log_hash(T) commits to.
 * 2. Asks every replica on its own for its entry at T: each must have the same log_hash(T), so
 *    every replica holds the same entries 0..T (the chain covers them all).
 * 3. Checks every ticket of the record files (mir-bench --record): a transaction the load
 *    generator saw committed at sn s is in the log exactly once, at s; one it saw accepted and
 *    never committed (not-committed: pending when the generator closed) is a loss; a rejected one
 *    is a failure too (the generator's transactions are all valid); no transaction of a recorded
 *    client is in the log twice, or without having been submitted.
 *
 * T must be at most the last sn of every replica (mir-status --json: the least last_sn). Prints
 * what it checked and exits 0 when everything holds, 1 with "FAILED" lines naming clients, tx
 * numbers and sns otherwise, 2 for a usage error. Everything is bounded: the read by --timeout-s
 * (default 300), memory by the record (one byte and two sns per ticket) and MIR_CLIENT limits.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mir/client.h"
#include "trantor/trantor.pb-c.h"
#include "trantor_common.h"

#define LC_CLIENTS_MAX 1024
#define LC_TICKETS_MAX ((uint64_t)1 << 28) /* per client */
#define LC_EXAMPLES 10                     /* failures printed per kind */
#define LC_NONE UINT64_MAX

typedef struct lc_client {
  char id[MIR_CLIENT_ID_MAX + 1];
  uint64_t n;       /* tickets: tx numbers 0..n-1 */
  uint8_t *outcome; /* per ticket: 0 none, 1 committed, 2 rejected, 3 not-committed */
  uint64_t *sn;     /* committed: the sn the SDK reported */
  uint64_t *at;     /* the sn the log holds it at (LC_NONE: not in the log) */
} lc_client;

typedef struct lc {
  const char *replicas[MIR_CLIENT_REPLICAS_MAX];
  size_t n_replicas;
  uint64_t to_sn;
  long timeout_s;
  lc_client *clients; /* sorted by id */
  size_t n_clients;
  /* The reading, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t next_sn;
  uint8_t prev[32];
  uint8_t hash_at_to[32];
  bool done;
  int ended; /* the subscription's final status + 1, or 0 */
  uint64_t entries, txs;
  uint64_t failures;
  uint64_t dup, phantom, chain;
} lc;

static void lc_fail(lc *c, uint64_t *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lc_fail(lc *c, uint64_t *kind, const char *fmt, ...) {
  c->failures++;
  if (kind != NULL && (*kind)++ >= LC_EXAMPLES) return;
  va_list ap;
  va_start(ap, fmt);
  printf("FAILED: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

static int lc_client_cmp(const void *a, const void *b) {
  return strcmp(((const lc_client *)a)->id, ((const lc_client *)b)->id);
}

static lc_client *lc_find(lc *c, const char *id) {
  lc_client key;
  snprintf(key.id, sizeof(key.id), "%s", id);
  return bsearch(&key, c->clients, c->n_clients, sizeof(lc_client), lc_client_cmp);
}

static lc_client *lc_find_or_add(lc *c, const char *id) {
  for (size_t i = 0; i < c->n_clients; i++) {
    if (strcmp(c->clients[i].id, id) == 0) return &c->clients[i];
  }
  if (c->n_clients == LC_CLIENTS_MAX) return NULL;
  lc_client *k = &c->clients[c->n_clients++];
  memset(k, 0, sizeof(*k));
  snprintf(k->id, sizeof(k->id), "%s", id);
  return k;
}

/* Grows k's arrays to hold ticket t. False past the bound. */
static bool lc_client_grow(lc_client *k, uint64_t t) {
  if (t >= LC_TICKETS_MAX) return false;
  if (t < k->n) return true;
  uint64_t n = t + 1, cap = 1;
  while (cap < n) cap *= 2;
  uint64_t old = 1;
  while (old < k->n) old *= 2;
  if (k->n == 0 || cap > old) {
    uint8_t *o = realloc(k->outcome, cap);
    uint64_t *s = realloc(k->sn, cap * sizeof(uint64_t));
    uint64_t *a = realloc(k->at, cap * sizeof(uint64_t));
    if (o != NULL) k->outcome = o;
    if (s != NULL) k->sn = s;
    if (a != NULL) k->at = a;
    if (o == NULL || s == NULL || a == NULL) return false;
  }
  for (uint64_t i = k->n; i < n; i++) {
    k->outcome[i] = 0;
    k->sn[i] = 0;
    k->at[i] = LC_NONE;
  }
  k->n = n;
  return true;
}

/* Reads a record file of mir-bench: "<client> <tx no> committed <sn>" or "<client> <tx no>
 * rejected|not-committed". Returns 0, or -1 with a message. */
static int lc_read_record(lc *c, const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "mir-logcheck: %s: %s\n", path, strerror(errno));
    return -1;
  }
  char line[512];
  unsigned long lineno = 0;
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
    lineno++;
    char id[MIR_CLIENT_ID_MAX + 2], what[32];
    uint64_t t = 0, sn = 0;
    int got = sscanf(line, "%65s %" SCNu64 " %31s %" SCNu64, id, &t, what, &sn);
    uint8_t o = 0;
    if (got >= 3 && strcmp(what, "committed") == 0 && got == 4) o = 1;
    if (got == 3 && strcmp(what, "rejected") == 0) o = 2;
    if (got == 3 && strcmp(what, "not-committed") == 0) o = 3;
    lc_client *k = o != 0 && strlen(id) <= MIR_CLIENT_ID_MAX ? lc_find_or_add(c, id) : NULL;
    if (k == NULL || !lc_client_grow(k, t) || k->outcome[t] != 0) {
      fprintf(stderr, "mir-logcheck: %s:%lu: not a record line, a repeated ticket, or too many\n",
              path, lineno);
      rc = -1;
      break;
    }
    k->outcome[t] = o;
    k->sn[t] = sn;
  }
  fclose(f);
  return rc;
}

/* log_hash(sn) from prev and the entry (proto/api/api.proto), with the portable SHA-256. */
static void lc_log_hash(const uint8_t prev[32], const mir_client_entry *e, uint8_t out[32]) {
  size_t n = e->n_txs;
  const uint8_t **parts = malloc((n + 4) * sizeof(*parts));
  size_t *lens = malloc((n + 4) * sizeof(*lens));
  uint8_t **packed = calloc(n + 1, sizeof(*packed));
  if (parts == NULL || lens == NULL || packed == NULL) abort();
  uint8_t sn_be[8], epoch_be[8];
  for (int i = 0; i < 8; i++) {
    sn_be[i] = (uint8_t)(e->sn >> (56 - 8 * i));
    epoch_be[i] = (uint8_t)(e->epoch >> (56 - 8 * i));
  }
  parts[0] = (const uint8_t *)"log";
  lens[0] = 3;
  parts[1] = prev;
  lens[1] = 32;
  parts[2] = sn_be;
  lens[2] = 8;
  parts[3] = epoch_be;
  lens[3] = 8;
  for (size_t i = 0; i < n; i++) {
    Trantor__Tx tx = TRANTOR__TX__INIT;
    tx.client_id = (char *)e->txs[i].client_id;
    tx.tx_no = e->txs[i].tx_no;
    tx.data.data = (uint8_t *)e->txs[i].data;
    tx.data.len = e->txs[i].len;
    size_t len = trantor__tx__get_packed_size(&tx);
    packed[i] = malloc(len > 0 ? len : 1);
    if (packed[i] == NULL) abort();
    lens[4 + i] = trantor__tx__pack(&tx, packed[i]);
    parts[4 + i] = packed[i];
  }
  trantor_hash_reference(parts, lens, n + 4, out);
  for (size_t i = 0; i < n; i++) free(packed[i]);
  free(packed);
  free(lens);
  free(parts);
}

static void lc_hex(const uint8_t *h, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* The quorum subscriber's callback (SDK thread). */
static void lc_on_entry(mir_client_sub *sub, int status, const mir_client_entry *e, void *ud) {
  lc *c = ud;
  (void)sub;
  pthread_mutex_lock(&c->mu);
  if (e == NULL) {
    c->ended = status + 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return;
  }
  if (c->done) {
    pthread_mutex_unlock(&c->mu);
    return;
  }
  if (e->sn != c->next_sn) {
    lc_fail(c, &c->chain, "the log went from sn %" PRIu64 " to sn %" PRIu64 " (a gap)",
            c->next_sn - 1, e->sn);
  }
  uint8_t h[32];
  lc_log_hash(c->prev, e, h);
  if (e->log_hash_len != 32 || memcmp(h, e->log_hash, 32) != 0) {
    lc_fail(c, &c->chain, "sn %" PRIu64 ": the log hash does not chain (entry and hash differ)",
            e->sn);
  }
  memcpy(c->prev, e->log_hash_len == 32 ? e->log_hash : h, 32);
  c->next_sn = e->sn + 1;
  c->entries++;
  for (size_t i = 0; i < e->n_txs; i++) {
    const mir_client_tx *tx = &e->txs[i];
    c->txs++;
    lc_client *k = lc_find(c, tx->client_id);
    if (k == NULL) continue;
    if (tx->tx_no >= k->n) {
      lc_fail(c, &c->phantom,
              "%s/%" PRIu64 " is in the log at sn %" PRIu64
              " but was never submitted (the record has %" PRIu64 " tickets)",
              k->id, tx->tx_no, e->sn, k->n);
    } else if (k->at[tx->tx_no] != LC_NONE) {
      lc_fail(c, &c->dup,
              "DUPLICATE: %s/%" PRIu64 " is in the log at sn %" PRIu64 " and again at sn %" PRIu64,
              k->id, tx->tx_no, k->at[tx->tx_no], e->sn);
    } else {
      k->at[tx->tx_no] = e->sn;
    }
  }
  if (e->sn >= c->to_sn) {
    memcpy(c->hash_at_to, e->log_hash_len == 32 ? e->log_hash : h, 32);
    c->done = true;
    pthread_cond_broadcast(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
}

/* Waits until pred (c->done or c->ended) or the deadline; mu held. False on time-out. */
static bool lc_wait(lc *c, const struct timespec *deadline, const bool *flag) {
  while (!*flag && c->ended == 0) {
    if (pthread_cond_timedwait(&c->cv, &c->mu, deadline) == ETIMEDOUT) return false;
  }
  return true;
}

static int lc_open(lc *c, const char *const *replicas, size_t n, mir_client_trust trust,
                   const char *tag, mir_client **out) {
  char id[64];
  snprintf(id, sizeof(id), "logcheck-%d-%s", (int)getpid(), tag);
  mir_client_options o;
  mir_client_options_init(&o);
  o.replicas = replicas;
  o.n_replicas = n;
  o.client_id = id;
  o.trust = trust;
  o.connect_timeout_ms = 10000;
  (void)c;
  int err = mir_client_open(&o, out);
  if (err != MIR_CLIENT_OK) {
    fprintf(stderr, "mir-logcheck: cannot connect to %s: %s: %s\n", replicas[0],
            mir_client_strerror(err), mir_client_errdetail());
  }
  return err;
}

static struct timespec lc_deadline(long seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += seconds;
  return ts;
}

/* Step 1: the whole log 0..to_sn from a quorum. Returns 0, or -1 if it could not be read. */
static int lc_read_log(lc *c) {
  mir_client *cl = NULL;
  if (lc_open(c, c->replicas, c->n_replicas, MIR_CLIENT_TRUST_QUORUM, "all", &cl) != 0) return -1;
  mir_client_sub *sub = NULL;
  int err = mir_client_subscribe(cl, 0, lc_on_entry, c, &sub);
  if (err != MIR_CLIENT_OK) {
    fprintf(stderr, "mir-logcheck: subscribe: %s\n", mir_client_errdetail());
    mir_client_close(cl);
    return -1;
  }
  struct timespec deadline = lc_deadline(c->timeout_s);
  pthread_mutex_lock(&c->mu);
  bool ok = lc_wait(c, &deadline, &c->done) && c->done;
  uint64_t at = c->next_sn;
  int ended = c->ended;
  pthread_mutex_unlock(&c->mu);
  mir_client_unsubscribe(sub);
  mir_client_close(cl);
  if (!ok) {
    lc_fail(c, NULL,
            "the log could not be read up to sn %" PRIu64
            " within %ld s: stopped at "
            "sn %" PRIu64 "%s%s",
            c->to_sn, c->timeout_s, at, ended ? ", subscription ended: " : "",
            ended ? mir_client_strerror(ended - 1) : "");
    return -1;
  }
  return 0;
}

/* The entry at to_sn of one replica (its log_hash into out). */
typedef struct lc_one {
  pthread_mutex_t *mu;
  pthread_cond_t *cv;
  bool got;
  int ended;
  uint64_t sn;
  uint8_t hash[32];
} lc_one;

static void lc_on_one(mir_client_sub *sub, int status, const mir_client_entry *e, void *ud) {
  lc_one *o = ud;
  (void)sub;
  pthread_mutex_lock(o->mu);
  if (e == NULL) {
    o->ended = status + 1;
  } else if (!o->got) {
    o->got = true;
    o->sn = e->sn;
    memcpy(o->hash, e->log_hash, e->log_hash_len == 32 ? 32 : 0);
  }
  pthread_cond_broadcast(o->cv);
  pthread_mutex_unlock(o->mu);
}

/* Step 2: every replica's log_hash(to_sn) against the one the quorum read. */
static void lc_check_replicas(lc *c) {
  char want[65];
  lc_hex(c->hash_at_to, 32, want);
  for (size_t i = 0; i < c->n_replicas; i++) {
    mir_client *cl = NULL;
    char tag[24];
    snprintf(tag, sizeof(tag), "r%zu", i);
    if (lc_open(c, &c->replicas[i], 1, MIR_CLIENT_TRUST_ONE, tag, &cl) != 0) {
      lc_fail(c, NULL, "replica %s does not answer", c->replicas[i]);
      continue;
    }
    lc_one o = {.mu = &c->mu, .cv = &c->cv};
    mir_client_sub *sub = NULL;
    int err = mir_client_subscribe(cl, c->to_sn, lc_on_one, &o, &sub);
    if (err == MIR_CLIENT_OK) {
      struct timespec deadline = lc_deadline(60);
      pthread_mutex_lock(&c->mu);
      while (!o.got && o.ended == 0) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT) break;
      }
      pthread_mutex_unlock(&c->mu);
      mir_client_unsubscribe(sub);
    }
    mir_client_close(cl);
    char got[65];
    lc_hex(o.hash, 32, got);
    if (!o.got || o.sn != c->to_sn) {
      lc_fail(c, NULL, "replica %s did not serve sn %" PRIu64 "%s%s", c->replicas[i], c->to_sn,
              o.ended ? ": " : " within 60 s", o.ended ? mir_client_strerror(o.ended - 1) : "");
    } else if (memcmp(o.hash, c->hash_at_to, 32) != 0) {
      lc_fail(c, NULL, "DIVERGENCE: replica %s has log_hash(%" PRIu64 ") %s, the quorum %s",
              c->replicas[i], c->to_sn, got, want);
    } else {
      printf("replica %-21s log_hash(%" PRIu64 ") %s\n", c->replicas[i], c->to_sn, got);
    }
  }
}

/* Step 3: the tickets of the records against the log. */
static void lc_check_records(lc *c) {
  uint64_t tickets = 0, committed = 0, in_log = 0, lost = 0, late = 0, pending = 0, rejected = 0,
           moved = 0;
  for (size_t i = 0; i < c->n_clients; i++) {
    const lc_client *k = &c->clients[i];
    for (uint64_t t = 0; t < k->n; t++) {
      tickets++;
      bool there = k->at[t] != LC_NONE;
      in_log += there;
      switch (k->outcome[t]) {
        case 1:
          committed++;
          if (!there) {
            lc_fail(c, &lost,
                    "LOST: %s/%" PRIu64 " was committed at sn %" PRIu64
                    " for the load generator, and the log does not hold it",
                    k->id, t, k->sn[t]);
          } else if (k->at[t] != k->sn[t]) {
            lc_fail(c, &moved,
                    "%s/%" PRIu64 " was committed at sn %" PRIu64
                    " for the load generator, and the log holds it at sn %" PRIu64,
                    k->id, t, k->sn[t], k->at[t]);
          }
          break;
        case 2:
          lc_fail(c, &rejected, "%s/%" PRIu64 " was rejected (the load's transactions are valid)",
                  k->id, t);
          break;
        case 3:
          if (there) {
            lc_fail(c, &late,
                    "%s/%" PRIu64
                    " was still pending when the load generator closed; "
                    "it is in the log at sn %" PRIu64 " (committed too late)",
                    k->id, t, k->at[t]);
          } else {
            lc_fail(c, &pending,
                    "LOST: %s/%" PRIu64
                    " was accepted by the SDK and never "
                    "committed",
                    k->id, t);
          }
          break;
        default:
          lc_fail(c, NULL, "%s/%" PRIu64 ": no outcome in the record", k->id, t);
      }
    }
  }
  printf("records: %zu clients, %" PRIu64 " tickets: %" PRIu64
         " committed for the load "
         "generator, %" PRIu64 " in the log (exactly once each), %" PRIu64
         " lost after a commit, %" PRIu64 " at another sn, %" PRIu64 " never committed, %" PRIu64
         " committed too late, %" PRIu64 " rejected\n",
         c->n_clients, tickets, committed, in_log, lost, moved, pending, late, rejected);
}

static int lc_usage(void) {
  fprintf(stderr,
          "usage: mir-logcheck --replicas host:port,... --to-sn T [--record FILE]... "
          "[--timeout-s S]\n");
  return 2;
}

int main(int argc, char **argv) {
  static lc c;
  c.timeout_s = 300;
  c.to_sn = LC_NONE;
  c.clients = calloc(LC_CLIENTS_MAX, sizeof(lc_client));
  if (c.clients == NULL) return 1;
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) return lc_usage();
    char *end = NULL;
    if (strcmp(argv[i], "--replicas") == 0) {
      for (char *t = strtok(argv[i + 1], ","); t != NULL; t = strtok(NULL, ",")) {
        if (c.n_replicas == MIR_CLIENT_REPLICAS_MAX) return lc_usage();
        c.replicas[c.n_replicas++] = t;
      }
    } else if (strcmp(argv[i], "--to-sn") == 0) {
      c.to_sn = strtoull(argv[i + 1], &end, 10);
      if (*end != '\0' || c.to_sn == LC_NONE) return lc_usage();
    } else if (strcmp(argv[i], "--timeout-s") == 0) {
      c.timeout_s = strtol(argv[i + 1], &end, 10);
      if (*end != '\0' || c.timeout_s < 1 || c.timeout_s > 86400) return lc_usage();
    } else if (strcmp(argv[i], "--record") == 0) {
      if (lc_read_record(&c, argv[i + 1]) != 0) return 2;
    } else {
      return lc_usage();
    }
  }
  if (c.n_replicas == 0 || c.to_sn == LC_NONE) return lc_usage();
  qsort(c.clients, c.n_clients, sizeof(lc_client), lc_client_cmp);
  if (lc_read_log(&c) == 0) {
    char h[65];
    lc_hex(c.hash_at_to, 32, h);
    printf("log: sns 0..%" PRIu64 " read from a quorum of %zu replicas, %" PRIu64
           " transactions, hash chain verified, log_hash(%" PRIu64 ") %s\n",
           c.to_sn, c.n_replicas, c.txs, c.to_sn, h);
    lc_check_replicas(&c);
    lc_check_records(&c);
  }
  if (c.failures > 0) {
    printf("mir-logcheck: FAILED: %" PRIu64 " problems (duplicates %" PRIu64 ", chain %" PRIu64
           ", unsubmitted %" PRIu64 ")\n",
           c.failures, c.dup, c.chain, c.phantom);
  } else {
    printf("mir-logcheck: ok\n");
  }
  for (size_t i = 0; i < c.n_clients; i++) {
    free(c.clients[i].outcome);
    free(c.clients[i].sn);
    free(c.clients[i].at);
  }
  free(c.clients);
  return c.failures > 0 ? 1 : 0;
}
