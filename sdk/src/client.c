/*
 * The public API of libmirclient (mir/client.h): options, open and close, submit and wait,
 * subscriptions, statistics, and the client's two threads.
 *
 * The completion-queue thread handles every gRPC completion with the client lock held, then runs
 * the callbacks the handlers queued (miri_cl_deferred) with the lock released, in the order they
 * were queued; it is the only thread that runs callbacks, except at close, where the remaining
 * tickets and subscriptions get their final callbacks on the closing thread after both threads
 * are joined. A thread-local marks the threads that run callbacks, so that close and blocking
 * waits, which would deadlock there, are refused.
 *
 * The timer thread sleeps until the earliest of: a batch delay, a stream's reconnect time, a
 * back-pressure pause, a stall check (MIRI_CL_TIMER_MAX_SLEEP_MS at most); other threads
 * wake it early through miri_cl_timer_poke.
 *
 * open learns where the log is with a Status round: it waits for f+1 answers (one with
 * TRUST_ONE), a short grace for the rest, and starts the commit tracker at the (f+1)-th largest
 * next_sn answered. Any transaction submitted afterwards is ordered at or after the largest
 * next_sn of a correct replica at that time, and at least one of the f+1 largest answers is from
 * a correct replica, so the tracker never starts past this client's transactions.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_internal.h"
#include "mir/grpc_tune.h"

static _Thread_local char cl_detail[512];
static _Thread_local mir_client *cl_callback_client; /* set on threads that run callbacks */

int64_t miri_cl_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int miri_cl_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cl_detail, sizeof(cl_detail), fmt, ap);
  va_end(ap);
  return code;
}

const char *mir_client_errdetail(void) {
  return cl_detail;
}

const char *mir_client_strerror(int err) {
  switch (err) {
    case MIR_CLIENT_OK:
      return "ok";
    case MIR_CLIENT_EINVAL:
      return "invalid argument";
    case MIR_CLIENT_ENOMEM:
      return "out of memory";
    case MIR_CLIENT_ESTOPPED:
      return "client closed";
    case MIR_CLIENT_EFULL:
      return "full";
    case MIR_CLIENT_ENOTFOUND:
      return "not found";
    case MIR_CLIENT_EEXIST:
      return "tx number used with other data";
    case MIR_CLIENT_EUNAVAILABLE:
      return "replicas unavailable";
    case MIR_CLIENT_ETIMEDOUT:
      return "timed out";
    case MIR_CLIENT_EREJECTED:
      return "rejected";
    default:
      return "unknown error";
  }
}

bool miri_cl_defer(mir_client *c, const miri_cl_deferred *d) {
  if (c->n_deferred == c->cap_deferred) {
    size_t cap = c->cap_deferred > 0 ? 2 * c->cap_deferred : 64;
    miri_cl_deferred *p = realloc(c->deferred, cap * sizeof(*p));
    if (p == NULL) return false;
    c->deferred = p;
    c->cap_deferred = cap;
  }
  c->deferred[c->n_deferred++] = *d;
  if (d->kind == MIRI_CL_D_DONE) pthread_cond_broadcast(&c->cv); /* waiters */
  return true;
}

void miri_cl_timer_poke(mir_client *c, int64_t at_ns) {
  if (at_ns < c->timer_wake_ns) {
    c->timer_wake_ns = at_ns;
    pthread_cond_signal(&c->timer_cv);
  }
}

uint64_t miri_cl_backoff_next(const mir_client *c, uint64_t backoff_ms) {
  if (backoff_ms == 0) return c->opts.reconnect_min_ms;
  uint64_t next = 2 * backoff_ms;
  return next > c->opts.reconnect_max_ms ? c->opts.reconnect_max_ms : next;
}

uint64_t miri_cl_random(mir_client *c, uint64_t bound) {
  c->rng ^= c->rng >> 12;
  c->rng ^= c->rng << 25;
  c->rng ^= c->rng >> 27;
  return (c->rng * 2685821657736338717ull) % bound;
}

static void cl_abs_time(int64_t at_ns, struct timespec *ts) {
  ts->tv_sec = (time_t)(at_ns / 1000000000);
  ts->tv_nsec = (long)(at_ns % 1000000000);
}

/* ---- the two threads ---- */

/* Runs queued callbacks (lock not held). Subscription items run only while the subscription is
 * not stopped; cb_running lets mir_client_unsubscribe wait for a callback in progress. */
static void cl_run_deferred(mir_client *c, miri_cl_deferred *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    miri_cl_deferred *d = &items[i];
    if (d->kind == MIRI_CL_D_DONE) {
      if (d->done.done != NULL) d->done.done(c, &d->done.result, d->done.user_data);
      continue;
    }
    miri_cl_follower *f = d->f;
    mc_lock(c);
    bool run = !f->stopped;
    if (run) c->cb_running = f;
    pthread_mutex_unlock(&c->mu);
    bool ok = !run || miri_cl_follower_deliver(f, d);
    mc_lock(c);
    if (run) c->cb_running = NULL;
    if (!ok) miri_cl_follower_fail(f);
    pthread_cond_broadcast(&c->cv);
    miri_cl_blob_unref(d->blob);
    miri_cl_follower_unref(f);
    pthread_mutex_unlock(&c->mu);
  }
}

static void *cl_cq_main(void *arg) {
  pthread_setname_np(pthread_self(), "mirclient-cq"); /* named in top, perf and debuggers */
  mir_client *c = arg;
  cl_callback_client = c;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    miri_cl_tag *tag = ev.tag;
    mc_lock(c);
    tag->fn(tag, ev.success != 0);
    miri_cl_deferred *items = c->deferred;
    size_t n = c->n_deferred;
    c->deferred = NULL;
    c->n_deferred = c->cap_deferred = 0;
    pthread_mutex_unlock(&c->mu);
    if (items != NULL) {
      cl_run_deferred(c, items, n);
      free(items);
    }
  }
  return NULL;
}

static void *cl_timer_main(void *arg) {
  pthread_setname_np(pthread_self(), "mirclient-timer"); /* named in top, perf and debuggers */
  mir_client *c = arg;
  mc_lock(c);
  while (!c->timer_stop) {
    c->timer_wake_ns = INT64_MAX; /* collects the pokes made during this pass */
    int64_t now = miri_cl_now_ns();
    int64_t next = now + (int64_t)MIRI_CL_TIMER_MAX_SLEEP_MS * 1000000;
    for (uint32_t i = 0; i < c->n; i++) {
      int64_t t = miri_cl_submit_tick(&c->rep[i], now);
      if (t < next) next = t;
    }
    for (miri_cl_follower *f = c->followers; f != NULL; f = f->next) {
      int64_t t = miri_cl_follower_tick(f, now);
      if (t < next) next = t;
    }
    if (c->timer_wake_ns < next) next = c->timer_wake_ns;
    if (next <= now) continue;
    c->timer_wake_ns = next;
    struct timespec ts;
    cl_abs_time(next, &ts);
    pthread_cond_timedwait(&c->timer_cv, &c->mu, &ts);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---- options ---- */

void mir_client_options_init(mir_client_options *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->trust = MIR_CLIENT_TRUST_QUORUM;
}

/* True if id[0..len) is a client id as the replicas accept it (proto/api/api.proto): 1..64 bytes
 * of [A-Za-z0-9._:@-]. */
static bool cl_client_id_ok(const char *id, size_t len) {
  if (len == 0 || len > MIR_CLIENT_ID_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char ch = id[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == ':' || ch == '@';
    if (!ok) return false;
  }
  return true;
}

/* Replaces zeros by defaults and checks every field (o is the client's own copy). */
static int cl_options_check(mir_client_options *o) {
  if (o->replicas == NULL || o->n_replicas == 0 || o->n_replicas > MIR_CLIENT_REPLICAS_MAX) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "replicas: 1 to %d addresses required",
                        MIR_CLIENT_REPLICAS_MAX);
  }
  for (size_t i = 0; i < o->n_replicas; i++) {
    if (o->replicas[i] == NULL || o->replicas[i][0] == '\0' || strlen(o->replicas[i]) > 255) {
      return miri_cl_fail(MIR_CLIENT_EINVAL, "replicas[%zu]: empty or too long address", i);
    }
  }
  size_t id_len = o->client_id != NULL ? strlen(o->client_id) : 0;
  if (!cl_client_id_ok(o->client_id, id_len)) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "client_id: 1 to %d bytes of [A-Za-z0-9._:@-] required",
                        MIR_CLIENT_ID_MAX);
  }
  if (o->trust != MIR_CLIENT_TRUST_QUORUM && o->trust != MIR_CLIENT_TRUST_ONE) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "trust: unknown mode %d", (int)o->trust);
  }
  if ((o->tls_cert_file == NULL) != (o->tls_key_file == NULL) ||
      (o->tls_cert_file != NULL && o->tls_ca_file == NULL)) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "tls: cert and key go together, and need tls_ca_file");
  }
  if (o->window == 0) o->window = 1024;
  if (o->pending_bytes_max == 0) o->pending_bytes_max = 64u << 20;
  if (o->max_tx_bytes == 0) o->max_tx_bytes = 65536;
  if (o->batch_max_txs == 0) o->batch_max_txs = 256;
  if (o->batch_max_bytes == 0) o->batch_max_bytes = 256u << 10;
  if (o->batch_delay_us == 0) o->batch_delay_us = 1000;
  if (o->connect_timeout_ms == 0) o->connect_timeout_ms = 5000;
  if (o->reconnect_min_ms == 0) o->reconnect_min_ms = 50;
  if (o->reconnect_max_ms == 0) o->reconnect_max_ms = 1000;
  if (o->stall_ms == 0) o->stall_ms = 2000;
  if (o->busy_max_ms == 0) o->busy_max_ms = 2000;
  if (o->window > 65536 || o->max_tx_bytes > (8u << 20) || o->batch_max_txs > 65536 ||
      o->batch_max_bytes > (8u << 20) || o->batch_delay_us > 1000000 ||
      o->connect_timeout_ms > 3600000 || o->reconnect_min_ms > o->reconnect_max_ms ||
      o->reconnect_max_ms > 600000 || o->busy_max_ms > 600000 ||
      o->submit_replicas > o->n_replicas || o->subscribe_replicas > o->n_replicas) {
    return miri_cl_fail(MIR_CLIENT_EINVAL,
                        "a tuning option is out of range (see mir/client.h for the limits)");
  }
  return MIR_CLIENT_OK;
}

/* Copies the options and their strings into c and derives the replica counts. */
static int cl_configure(mir_client *c, const mir_client_options *opts) {
  c->opts = *opts;
  int err = cl_options_check(&c->opts);
  if (err != MIR_CLIENT_OK) return err;
  mir_client_options *o = &c->opts;
  c->n = (uint32_t)o->n_replicas;
  c->f = (c->n - 1) / 3;
  bool one = o->trust == MIR_CLIENT_TRUST_ONE;
  c->quorum = one ? 1 : c->f + 1;
  /* Every replica by default: Trantor orders a transaction only in epochs whose leader for its
   * bucket holds it, so sending to fewer costs whole epochs of latency (docs/SDK.md). */
  c->submit_k = o->submit_replicas ? o->submit_replicas : c->n;
  uint32_t follow = 2 * c->f + 1 < c->n ? 2 * c->f + 1 : c->n;
  c->follow_k = o->subscribe_replicas ? o->subscribe_replicas : (one ? 1 : follow);
  c->limits = (miri_cl_batch_limits){.max_txs = o->batch_max_txs,
                                     .max_bytes = o->batch_max_bytes,
                                     .delay_ns = (int64_t)o->batch_delay_us * 1000};
  c->client_id = strdup(o->client_id);
  if (c->client_id == NULL) return MIR_CLIENT_ENOMEM;
  uint64_t h = 1469598103934665603ull; /* FNV-1a: clients spread over the replicas */
  for (const char *p = c->client_id; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  c->start_index = (uint32_t)(h % c->n);
  /* Clients that start together must not pause in step: seed with the time as well. */
  c->rng = (h ^ (uint64_t)miri_cl_now_ns()) | 1;
  for (uint32_t i = 0; i < c->n; i++) {
    miri_cl_replica *r = &c->rep[i];
    r->c = c;
    r->index = i;
    r->addr = strdup(o->replicas[i]);
    if (r->addr == NULL || miri_cl_queue_init(&r->q, o->window) != 0 ||
        miri_cl_queue_init(&r->parked, o->window) != 0) {
      return MIR_CLIENT_ENOMEM;
    }
  }
  c->batch_buf = calloc(o->batch_max_txs, sizeof(uint64_t));
  if (c->batch_buf == NULL) return MIR_CLIENT_ENOMEM;
  if (miri_cl_tickets_init(&c->tickets, o->first_tx_no, o->window, 4 * (uint64_t)o->window,
                           o->pending_bytes_max, c->quorum) != 0) {
    return MIR_CLIENT_ENOMEM;
  }
  /* The strings the options pointed to belong to the caller; only the copies above are used. */
  o->replicas = NULL;
  o->client_id = NULL;
  return MIR_CLIENT_OK;
}

/* ---- open and close ---- */

static int cl_sync_init(mir_client *c) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0) return MIR_CLIENT_ENOMEM;
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  int rc = pthread_mutex_init(&c->mu, NULL);
  rc |= pthread_cond_init(&c->cv, &attr);
  rc |= pthread_cond_init(&c->timer_cv, &attr);
  pthread_condattr_destroy(&attr);
  return rc == 0 ? MIR_CLIENT_OK : MIR_CLIENT_ENOMEM;
}

/* Stops everything that runs (idempotent): cancels every call, joins the timer thread, waits for
 * every call context to go, destroys the channels and drains and joins the cq thread. */
static void cl_stop(mir_client *c) {
  mc_lock(c);
  c->closing = true;
  c->timer_stop = true;
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->status_calls[i] != NULL) grpc_call_cancel(c->status_calls[i]->call, NULL);
    miri_cl_submit_cancel(&c->rep[i]);
  }
  for (miri_cl_follower *f = c->followers; f != NULL; f = f->next) miri_cl_follower_cancel(f);
  pthread_cond_signal(&c->timer_cv);
  pthread_cond_broadcast(&c->cv); /* waiters return ESTOPPED */
  pthread_mutex_unlock(&c->mu);
  if (c->timer_thread_started) pthread_join(c->timer_thread, NULL);
  c->timer_thread_started = false;
  mc_lock(c);
  while (c->live_calls > 0) pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->rep[i].ch != NULL) grpc_channel_destroy(c->rep[i].ch);
    c->rep[i].ch = NULL;
  }
  if (c->cq != NULL) {
    grpc_completion_queue_shutdown(c->cq);
    if (c->cq_thread_started) pthread_join(c->cq_thread, NULL);
    c->cq_thread_started = false;
    grpc_completion_queue_destroy(c->cq);
    c->cq = NULL;
  }
}

/* Frees what cl_stop left (no thread runs any more). Ends the grpc_init of open. */
static void cl_free(mir_client *c) {
  while (c->followers != NULL) {
    miri_cl_follower *f = c->followers;
    c->followers = f->next;
    miri_cl_votes_fini(&f->votes);
    free(f->filter_id);
    free(f);
  }
  for (uint32_t i = 0; i < c->n; i++) {
    free(c->rep[i].addr);
    miri_cl_queue_fini(&c->rep[i].q);
    miri_cl_queue_fini(&c->rep[i].parked);
  }
  miri_cl_tickets_fini(&c->tickets);
  free(c->batch_buf);
  free(c->deferred);
  free(c->client_id);
  pthread_cond_destroy(&c->timer_cv);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
  grpc_shutdown();
}

static int cl_cmp_desc(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? 1 : (x > y ? -1 : 0);
}

/* open's Status round (mu held): waits for `quorum` answers plus a grace for the others, then
 * returns the sn the commit tracker starts at through *start_sn. */
static int cl_find_start(mir_client *c, uint64_t *start_sn) {
  int64_t now = miri_cl_now_ns();
  int64_t deadline = now + (int64_t)c->opts.connect_timeout_ms * 1000000 + 500000000;
  int64_t grace_end = INT64_MAX;
  miri_cl_status_round_start(c);
  while (c->status_done < c->n && now < deadline && now < grace_end) {
    struct timespec ts;
    cl_abs_time(grace_end < deadline ? grace_end : deadline, &ts);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    now = miri_cl_now_ns();
    if (c->status_ok >= c->quorum && grace_end == INT64_MAX) {
      grace_end = now + (int64_t)MIRI_CL_STATUS_GRACE_MS * 1000000;
    }
  }
  if (c->status_ok < c->quorum) {
    return miri_cl_fail(MIR_CLIENT_EUNAVAILABLE,
                        "%u of %u replicas answered Status within %u ms, %u needed: %s",
                        c->status_ok, c->n, c->opts.connect_timeout_ms, c->quorum,
                        c->status_error[0] ? c->status_error : "no answer");
  }
  uint64_t sns[MIR_CLIENT_REPLICAS_MAX];
  uint32_t k = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->status_answered[i]) sns[k++] = c->status_next_sn[i];
  }
  qsort(sns, k, sizeof(sns[0]), cl_cmp_desc);
  *start_sn = sns[c->quorum - 1];
  /* The window no larger than the replicas' windows: a transaction beyond a replica's window is
   * refused OUT_OF_WINDOW, parked and sent again, and with many clients that traffic crowded out
   * the commits (a collapse under overload). The quorum-th largest report, so that no f replicas
   * can shrink it alone; no clamp unless a quorum reports one. */
  uint64_t w[MIR_CLIENT_REPLICAS_MAX];
  k = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->status_answered[i] && c->status_client_window[i] > 0)
      w[k++] = c->status_client_window[i];
  }
  if (k >= c->quorum) {
    qsort(w, k, sizeof(w[0]), cl_cmp_desc);
    if (w[c->quorum - 1] < c->tickets.window) c->tickets.window = (uint32_t)w[c->quorum - 1];
  }
  return MIR_CLIENT_OK;
}

/* Everything of open after the configuration: gRPC, threads, the Status round, the tracker and
 * the submit streams. */
static int cl_start(mir_client *c) {
  c->cq = grpc_completion_queue_create_for_next(NULL);
  int err = miri_cl_channels_create(c);
  c->opts.tls_ca_file = c->opts.tls_cert_file = c->opts.tls_key_file = NULL;
  c->opts.tls_server_name = NULL;
  if (err != MIR_CLIENT_OK) return err;
  if (pthread_create(&c->cq_thread, NULL, cl_cq_main, c) != 0) return MIR_CLIENT_ENOMEM;
  c->cq_thread_started = true;
  mc_lock(c);
  uint64_t start_sn = 0;
  err = cl_find_start(c, &start_sn);
  if (err == MIR_CLIENT_OK) {
    c->tracker = miri_cl_follower_new(c, true, start_sn, NULL, NULL);
    if (c->tracker == NULL) err = MIR_CLIENT_ENOMEM;
  }
  if (err == MIR_CLIENT_OK) {
    c->stats.followed_sn = start_sn;
    miri_cl_submit_set_init(c);
  }
  pthread_mutex_unlock(&c->mu);
  if (err != MIR_CLIENT_OK) return err;
  if (pthread_create(&c->timer_thread, NULL, cl_timer_main, c) != 0) return MIR_CLIENT_ENOMEM;
  c->timer_thread_started = true;
  return MIR_CLIENT_OK;
}

int mir_client_open(const mir_client_options *opts, mir_client **out) {
  if (out == NULL || opts == NULL) return miri_cl_fail(MIR_CLIENT_EINVAL, "NULL argument");
  *out = NULL;
  mir_client *c = calloc(1, sizeof(*c));
  if (c == NULL) return miri_cl_fail(MIR_CLIENT_ENOMEM, "out of memory");
  grpc_init(); /* every exit below goes through cl_free, which calls grpc_shutdown */
  c->timer_wake_ns = INT64_MAX;
  int err = cl_sync_init(c);
  if (err == MIR_CLIENT_OK) err = cl_configure(c, opts);
  if (err == MIR_CLIENT_OK) err = cl_start(c);
  if (err != MIR_CLIENT_OK) {
    if (err == MIR_CLIENT_ENOMEM) miri_cl_fail(err, "out of memory");
    cl_stop(c);
    cl_free(c);
    return err;
  }
  *out = c;
  return MIR_CLIENT_OK;
}

/* Gives every live subscription its final callback (close, no client thread running). A
 * callback may unsubscribe any subscription, so each is held by a reference meanwhile. */
static void cl_final_callbacks(mir_client *c) {
  miri_cl_follower *list[MIRI_CL_SUBS_MAX];
  size_t k = 0;
  mc_lock(c);
  for (miri_cl_follower *f = c->followers; f != NULL && k < MIRI_CL_SUBS_MAX; f = f->next) {
    if (f->commits || !f->attached || f->stopped || f->ended) continue;
    f->refs++;
    list[k++] = f;
  }
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < k; i++) {
    mc_lock(c);
    bool run = !list[i]->stopped && !list[i]->ended;
    list[i]->ended = true;
    pthread_mutex_unlock(&c->mu);
    if (run) list[i]->cb(list[i], MIR_CLIENT_ESTOPPED, NULL, list[i]->user_data);
  }
  mc_lock(c);
  for (size_t i = 0; i < k; i++) miri_cl_follower_unref(list[i]);
  pthread_mutex_unlock(&c->mu);
}

int mir_client_close(mir_client *c) {
  if (c == NULL) return MIR_CLIENT_OK;
  if (cl_callback_client == c) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "mir_client_close called from a callback of its client");
  }
  cl_stop(c);
  /* No thread of the client runs now; the final callbacks run here, marked as callbacks. */
  mir_client *saved = cl_callback_client;
  cl_callback_client = c;
  for (;;) {
    miri_cl_done d;
    mc_lock(c); /* waiters still read the table */
    bool more = miri_cl_tickets_resolve_oldest(&c->tickets, MIR_CLIENT_ESTOPPED, &d);
    pthread_mutex_unlock(&c->mu);
    if (!more) break;
    if (d.done != NULL) d.done(c, &d.result, d.user_data);
  }
  cl_final_callbacks(c);
  cl_callback_client = saved;
  mc_lock(c);
  pthread_cond_broadcast(&c->cv);
  while (c->waiters > 0) pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
  cl_free(c);
  return MIR_CLIENT_OK;
}

/* ---- transactions ---- */

int mir_client_submit(mir_client *c, const void *data, size_t len, mir_client_done_cb done,
                      void *user_data, mir_client_ticket *ticket) {
  if (c == NULL || (data == NULL && len > 0)) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "NULL client or data");
  }
  if (len > c->opts.max_tx_bytes) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "transaction of %zu bytes exceeds max_tx_bytes %u", len,
                        c->opts.max_tx_bytes);
  }
  mc_lock(c);
  int err = MIR_CLIENT_ESTOPPED;
  uint64_t tx_no = 0;
  if (!c->closing) {
    err = miri_cl_tickets_add(&c->tickets, data, len, miri_cl_now_ns(), done, user_data, &tx_no);
  }
  if (err == MIR_CLIENT_OK) {
    c->stats.submitted++;
    miri_cl_submit_enqueue(c, tx_no, len);
  }
  uint64_t unresolved = c->tickets.unresolved, bytes = c->tickets.bytes;
  pthread_mutex_unlock(&c->mu);
  if (err == MIR_CLIENT_EFULL) {
    return miri_cl_fail(err,
                        "%" PRIu64 " transactions (%" PRIu64
                        " bytes) await an outcome; "
                        "window %u, pending_bytes_max %" PRIu64,
                        unresolved, bytes, c->opts.window, c->opts.pending_bytes_max);
  }
  if (err != MIR_CLIENT_OK) return miri_cl_fail(err, "%s", mir_client_strerror(err));
  if (ticket != NULL) *ticket = tx_no;
  return MIR_CLIENT_OK;
}

int mir_client_wait(mir_client *c, mir_client_ticket ticket, int64_t timeout_ms,
                    mir_client_result *result) {
  if (c == NULL) return miri_cl_fail(MIR_CLIENT_EINVAL, "NULL client");
  if (timeout_ms != 0 && cl_callback_client == c) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "a blocking wait in a callback would deadlock");
  }
  int64_t deadline = timeout_ms > 0 ? miri_cl_now_ns() + timeout_ms * 1000000 : INT64_MAX;
  mc_lock(c);
  c->waiters++;
  int rc;
  for (;;) {
    rc = miri_cl_tickets_lookup(&c->tickets, ticket, result);
    if (rc != MIR_CLIENT_ETIMEDOUT) break;
    if (c->closing) {
      rc = MIR_CLIENT_ESTOPPED;
      break;
    }
    if (timeout_ms == 0 || miri_cl_now_ns() >= deadline) break;
    if (timeout_ms < 0) {
      pthread_cond_wait(&c->cv, &c->mu);
    } else {
      struct timespec ts;
      cl_abs_time(deadline, &ts);
      pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
  }
  if (--c->waiters == 0 && c->closing) pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if (rc != MIR_CLIENT_OK) {
    miri_cl_fail(rc, "ticket %" PRIu64 ": %s", ticket, mir_client_strerror(rc));
  }
  return rc;
}

/* ---- subscriptions ---- */

int mir_client_subscribe(mir_client *c, uint64_t from_sn, mir_client_entry_cb cb, void *user_data,
                         mir_client_sub **out) {
  if (c == NULL || cb == NULL || out == NULL) {
    return miri_cl_fail(MIR_CLIENT_EINVAL, "NULL client, callback or out");
  }
  mc_lock(c);
  int err = MIR_CLIENT_OK;
  miri_cl_follower *f = NULL;
  if (c->closing) {
    err = miri_cl_fail(MIR_CLIENT_ESTOPPED, "client closing");
  } else if (c->n_subs >= MIRI_CL_SUBS_MAX) {
    err = miri_cl_fail(MIR_CLIENT_EFULL, "%d subscriptions already", MIRI_CL_SUBS_MAX);
  } else {
    uint64_t from = from_sn == MIR_CLIENT_FROM_NOW ? c->tracker->votes.frontier : from_sn;
    f = miri_cl_follower_new(c, false, from, cb, user_data);
    if (f == NULL) err = miri_cl_fail(MIR_CLIENT_ENOMEM, "out of memory");
  }
  if (f != NULL) c->n_subs++;
  pthread_mutex_unlock(&c->mu);
  *out = f;
  return err;
}

void mir_client_unsubscribe(mir_client_sub *sub) {
  if (sub == NULL) return;
  mir_client *c = sub->c;
  mc_lock(c);
  if (sub->attached) {
    sub->stopped = true;
    sub->attached = false;
    c->n_subs--;
    miri_cl_follower_cancel(sub);
    /* Another thread's unsubscribe waits for a callback in progress; the callback's own thread
     * cannot, and need not: the cq thread holds a reference until the callback returns. */
    if (cl_callback_client != c) {
      while (c->cb_running == sub) pthread_cond_wait(&c->cv, &c->mu);
    }
    miri_cl_follower_unref(sub);
  }
  pthread_mutex_unlock(&c->mu);
}

void mir_client_stats_get(mir_client *c, mir_client_stats *out) {
  if (c == NULL || out == NULL) return;
  mc_lock(c);
  *out = c->stats;
  out->next_tx_no = c->tickets.next;
  out->unresolved = c->tickets.unresolved;
  pthread_mutex_unlock(&c->mu);
}

int mir_client_tune_process(void) {
  return mir_grpc_tune_process() ? 1 : 0;
}
