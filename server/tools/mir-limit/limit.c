/*
 * The limit pipeline's module (limit.h): ingress answers and forwarding on every server, numbering
 * on the sequencer, and applying the numbered sns to the ordered log everywhere.
 *
 * Invariants (checked where they matter): the sequencer's queue holds at most n *
 * forward_max_txs transactions, each kept once in `seen`; issue_sn - min_acked <= sns_ahead_max;
 * ahead_bytes is the data of the sns in [min_acked, issue_sn); a server's next_sn only grows by
 * one per applied Deliver. Transactions move between messages by pointer (a moved entry is set to
 * NULL, which protobuf-c's free skips), so a transaction's bytes are decoded once per hop and
 * never copied inside a server.
 */
#include "limit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clientprogress.h"
#include "limit/limit.pb-c.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/crypto.h"
#include "mir/log.h"
#include "mir/metrics.h"

#define LIM_LOG "limit"

/* Ingress answers, in the order of the reason labels of mir_limit_answers_total. */
typedef enum lim_answer {
  LIM_ACCEPTED,
  LIM_DUPLICATE,
  LIM_OUT_OF_WINDOW,
  LIM_FULL,
  LIM_INVALID,
  LIM_ANSWERS
} lim_answer;
static const char *const lim_answer_names[LIM_ANSWERS] = {"accepted", "duplicate", "out_of_window",
                                                          "full", "invalid"};

typedef struct lim_pending {
  Trantor__Tx *tx; /* owned */
  uint32_t src;    /* the server that forwarded it */
} lim_pending;

typedef struct mir_limit {
  mir_limit_config cfg; /* ids and net_id point into the copies below */
  char **ids;
  char net_id[MIR_MODULE_ID_MAX];
  trantor_client_progress *admit; /* delivered here: the ingress window checks */
  uint64_t next_sn;               /* the next sn this server applies */
  uint64_t acked_sn;              /* the last next_sn acknowledged to the sequencer */
  uint64_t unacked_bytes;         /* data bytes of the sns applied since then */
  uint64_t fwd_txs, fwd_bytes;    /* forwarded in all */
  uint64_t used_txs, used_bytes;  /* ... of which the sequencer consumed (its last report) */
  /* the sequencer only */
  trantor_client_progress *seen; /* every transaction kept (queued or numbered) */
  lim_pending *ring;
  size_t ring_cap, ring_head, ring_n;
  uint64_t *cons_txs, *cons_bytes; /* per server: consumed in all */
  uint64_t *rep_txs, *rep_bytes;   /* per server: ... as last reported */
  bool cons_dirty;                 /* changed since the last report */
  uint64_t *acked;                 /* per server: its last Ack */
  uint64_t issue_sn, min_acked, ahead_bytes;
  uint64_t *sn_bytes; /* data bytes of sn, at sn % sns_ahead_max, for sns in [min_acked, issue) */
  /* Owned: the module's metric set (mir_limit_ops.metrics) and its cells. */
  mir_metrics *metrics;
  mir_counter *answers[LIM_ANSWERS];
  mir_counter *txs_forwarded, *sns_applied, *txs_applied;
  mir_counter *seq_numbered, *seq_dup, *seq_dropped; /* the sequencer's, by what it did */
  mir_counter *peer_dropped;
} mir_limit;

static bool lim_is_seq(const mir_limit *m) {
  return m->cfg.self == 0;
}

/* ---- configuration ---- */

static mir_err lim_check(const mir_limit_config *c) {
  if (c == NULL || c->ids == NULL || c->n == 0 || c->n > MIR_LIMIT_SERVERS_MAX || c->self >= c->n ||
      c->app.apply_batch == NULL) {
    return mir_error_set(MIR_EINVAL, "limit: ids, n (1..%d), self and app are required",
                         MIR_LIMIT_SERVERS_MAX);
  }
  if (c->client_window == 0 || c->max_tx_bytes == 0 || c->max_batch_txs == 0 ||
      c->max_batch_bytes == 0 || c->forward_max_txs == 0 || c->forward_max_txs > (1u << 24) ||
      c->forward_max_bytes == 0 || c->sns_ahead_max == 0 || c->sns_ahead_max > (1u << 20) ||
      c->bytes_ahead_max == 0 || c->max_tx_bytes > c->forward_max_bytes / 2) {
    /* max_tx_bytes <= forward_max_bytes / 2: a server refused for bytes then has more than half
     * its bound at the sequencer, which reports on its own at half (seq_report_due). */
    return mir_error_set(MIR_EINVAL, "limit: a limit is out of range");
  }
  for (size_t i = 0; i < c->n; i++) {
    if (c->ids[i] == NULL || !mir_module_id_valid(c->ids[i])) {
      return mir_error_set(MIR_EINVAL, "limit: server %zu has an invalid id", i);
    }
  }
  return MIR_OK;
}

/* Registers the module's counters in its own set. */
static void lim_metrics_init(mir_limit *m) {
  mir_metrics *s = m->metrics = mir_metrics_new(MIR_LIMIT_MODULE_ID);
  for (size_t i = 0; i < LIM_ANSWERS; i++) {
    m->answers[i] =
        mir_metrics_counter(s, "mir_limit_answers_total", "Ingress answers to transactions.",
                            "reason", lim_answer_names[i]);
  }
  m->txs_forwarded = mir_metrics_counter(s, "mir_limit_forwarded_transactions_total",
                                         "Transactions forwarded to the sequencer.", NULL, NULL);
  m->sns_applied = mir_metrics_counter(s, "mir_limit_applied_sns_total",
                                       "Sequence numbers applied to the ordered log.", NULL, NULL);
  m->txs_applied = mir_metrics_counter(s, "mir_limit_applied_transactions_total",
                                       "Transactions applied to the ordered log.", NULL, NULL);
  const char *seq_help = "Sequencer: forwarded transactions, by what it did with them.";
  m->seq_numbered = mir_metrics_counter(s, "mir_limit_sequencer_transactions_total", seq_help,
                                        "reason", "numbered");
  m->seq_dup = mir_metrics_counter(s, "mir_limit_sequencer_transactions_total", seq_help, "reason",
                                   "duplicate");
  m->seq_dropped = mir_metrics_counter(s, "mir_limit_sequencer_transactions_total", seq_help,
                                       "reason", "dropped");
  m->peer_dropped =
      mir_metrics_counter(s, "mir_limit_dropped_messages_total",
                          "Peer messages dropped (malformed or not allowed).", NULL, NULL);
}

static mir_metrics *lim_metrics(void *state) {
  return ((mir_limit *)state)->metrics;
}

static uint64_t lim_read(const mir_limit *m, const char *name, const char *value) {
  return (uint64_t)mir_metrics_read(m->metrics, name, value);
}

static void lim_free(void *state) {
  mir_limit *m = state;
  if (m == NULL) return;
  const char *ans = "mir_limit_answers_total";
  mir_log(MIR_LOG_INFO, LIM_LOG,
          "%s: accepted %" PRIu64 ", duplicate %" PRIu64 ", out of window %" PRIu64
          ", busy %" PRIu64 ", forwarded %" PRIu64 "; applied %" PRIu64 " sns of %" PRIu64
          " txs; peer messages dropped %" PRIu64,
          m->ids[m->cfg.self], lim_read(m, ans, "accepted"), lim_read(m, ans, "duplicate"),
          lim_read(m, ans, "out_of_window"), lim_read(m, ans, "full"),
          lim_read(m, "mir_limit_forwarded_transactions_total", NULL),
          lim_read(m, "mir_limit_applied_sns_total", NULL),
          lim_read(m, "mir_limit_applied_transactions_total", NULL),
          lim_read(m, "mir_limit_dropped_messages_total", NULL));
  for (size_t i = 0; m->ring != NULL && i < m->ring_n; i++) {
    trantor__tx__free_unpacked(m->ring[(m->ring_head + i) % m->ring_cap].tx, NULL);
  }
  for (size_t i = 0; i < m->cfg.n; i++) free(m->ids[i]);
  free(m->ids);
  trantor_client_progress_free(m->admit);
  trantor_client_progress_free(m->seen);
  free(m->ring);
  free(m->cons_txs);
  free(m->cons_bytes);
  free(m->rep_txs);
  free(m->rep_bytes);
  free(m->acked);
  free(m->sn_bytes);
  mir_metrics_free(m->metrics);
  free(m);
}

mir_err mir_limit_new(const mir_limit_config *cfg, void **state) {
  mir_err err = lim_check(cfg);
  if (err != MIR_OK) return err;
  mir_limit *m = mir_xcalloc(1, sizeof(*m));
  m->cfg = *cfg;
  m->ids = mir_xcalloc(cfg->n, sizeof(*m->ids));
  for (size_t i = 0; i < cfg->n; i++) m->ids[i] = mir_xstrdup(cfg->ids[i]);
  m->cfg.ids = (const char *const *)m->ids;
  snprintf(m->net_id, sizeof(m->net_id), "%s", cfg->net_id != NULL ? cfg->net_id : "net");
  m->cfg.net_id = m->net_id;
  lim_metrics_init(m);
  err = trantor_client_progress_new(cfg->client_window, 0, &m->admit);
  if (err == MIR_OK && lim_is_seq(m)) {
    err = trantor_client_progress_new(cfg->client_window, 0, &m->seen);
    m->ring_cap = cfg->n * cfg->forward_max_txs;
    m->ring = mir_xcalloc(m->ring_cap, sizeof(*m->ring));
    m->cons_txs = mir_xcalloc(cfg->n, sizeof(*m->cons_txs));
    m->cons_bytes = mir_xcalloc(cfg->n, sizeof(*m->cons_bytes));
    m->rep_txs = mir_xcalloc(cfg->n, sizeof(*m->rep_txs));
    m->rep_bytes = mir_xcalloc(cfg->n, sizeof(*m->rep_bytes));
    m->acked = mir_xcalloc(cfg->n, sizeof(*m->acked));
    m->sn_bytes = mir_xcalloc(cfg->sns_ahead_max, sizeof(*m->sn_bytes));
  }
  if (err != MIR_OK) {
    lim_free(m);
    return err;
  }
  *state = m;
  return MIR_OK;
}

/* ---- sending ---- */

/* Sends msg (borrowed, packed here) to server i's module of this id. */
static void lim_send_to(mir_limit *m, size_t i, const ProtobufCMessage *msg, mir_event_list *out) {
  const char *dest = m->ids[i];
  mir_event_list_push(out, mir_event_send_message(m->net_id, MIR_LIMIT_MODULE_ID, &dest, 1,
                                                  MIR_LIMIT_MODULE_ID, msg));
}

/* Sends msg (borrowed) to every server but this one. */
static void lim_send_others(mir_limit *m, const ProtobufCMessage *msg, mir_event_list *out) {
  const char *dests[MIR_LIMIT_SERVERS_MAX];
  size_t k = 0;
  for (size_t i = 0; i < m->cfg.n; i++) {
    if (i != m->cfg.self) dests[k++] = m->ids[i];
  }
  if (k == 0) return;
  mir_event_list_push(out, mir_event_send_message(m->net_id, MIR_LIMIT_MODULE_ID, dests, k,
                                                  MIR_LIMIT_MODULE_ID, msg));
}

/* ---- applying sns (every server) ---- */

/* Applies sn with txs (borrowed) to the ordered log and to the ingress window. */
static mir_err lim_apply_sn(mir_limit *m, uint64_t sn, Trantor__Tx *const *txs, size_t n) {
  if (sn != m->next_sn) {
    return mir_error_set(MIR_EPROTO,
                         "limit: %s: sn %" PRIu64 " arrived where sn %" PRIu64
                         " was due (a delivery was lost; the limit pipeline does not retransmit)",
                         m->ids[m->cfg.self], sn, m->next_sn);
  }
  for (size_t i = 0; i < n; i++) {
    (void)trantor_client_progress_add(m->admit, txs[i]->client_id, txs[i]->tx_no, NULL);
  }
  mir_err err = m->cfg.app.apply_batch(m->cfg.app.user_data, sn, 0, txs, n);
  if (err != MIR_OK) return err;
  for (size_t i = 0; i < n; i++) m->unacked_bytes += txs[i]->data.len;
  m->next_sn++;
  mir_counter_inc(m->sns_applied);
  mir_counter_add(m->txs_applied, n);
  return MIR_OK;
}

/* ---- the sequencer ---- */

/* Takes txs[0..n) (each owned, or NULL) forwarded by server src: keeps each transaction once. */
static void seq_take(mir_limit *m, size_t src, Trantor__Tx **txs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    Trantor__Tx *tx = txs[i];
    txs[i] = NULL;
    if (tx == NULL) continue;
    size_t idlen = tx->client_id != NULL ? strlen(tx->client_id) : 0;
    bool valid =
        mir_tls_client_id_valid(tx->client_id, idlen) && tx->data.len <= m->cfg.max_tx_bytes;
    trantor_cp_status why = TRANTOR_CP_INVALID;
    if (valid && m->ring_n < m->ring_cap &&
        trantor_client_progress_add(m->seen, tx->client_id, tx->tx_no, &why)) {
      m->ring[(m->ring_head + m->ring_n++) % m->ring_cap] = (lim_pending){tx, (uint32_t)src};
      continue;
    }
    /* A copy (another server forwarded it too), or one that cannot be numbered (no room, or
     * outside the sequencer's window: a server checks the same window, so never expected):
     * consumed at once. */
    if (why == TRANTOR_CP_DELIVERED) {
      mir_counter_inc(m->seq_dup);
    } else {
      mir_counter_inc(m->seq_dropped);
    }
    m->cons_txs[src]++;
    m->cons_bytes[src] += tx->data.len;
    m->cons_dirty = true;
    trantor__tx__free_unpacked(tx, NULL);
  }
}

/* Moves min_acked up to the slowest server's acknowledgement. */
static void seq_advance_acked(mir_limit *m) {
  uint64_t min = m->issue_sn;
  for (size_t i = 0; i < m->cfg.n; i++) {
    if (i != m->cfg.self && m->acked[i] < min) min = m->acked[i];
  }
  while (m->min_acked < min) {
    m->ahead_bytes -= m->sn_bytes[m->min_acked % m->cfg.sns_ahead_max];
    m->min_acked++;
  }
}

/* Fills c (pointing into m's counters) with what every server's forwards consumed so far, and
 * notes it as reported. Returns c. */
static Mir__Limit__Consumed *seq_report(mir_limit *m, Mir__Limit__Consumed *c) {
  c->txs = m->cons_txs;
  c->n_txs = m->cfg.n;
  c->bytes = m->cons_bytes;
  c->n_bytes = m->cfg.n;
  memcpy(m->rep_txs, m->cons_txs, m->cfg.n * sizeof(*m->rep_txs));
  memcpy(m->rep_bytes, m->cons_bytes, m->cfg.n * sizeof(*m->rep_bytes));
  m->cons_dirty = false;
  return c;
}

/* True if some server's unreported consumption reached half its bound: a report on its own is due
 * (otherwise the next Deliver carries it). A server that waits at its bound has at least that
 * much unreported once its forwards arrived, so no server waits for good. */
static bool seq_report_due(const mir_limit *m) {
  for (size_t i = 0; i < m->cfg.n; i++) {
    if (i == m->cfg.self) continue;
    if (m->cons_txs[i] - m->rep_txs[i] >= (m->cfg.forward_max_txs + 1) / 2 ||
        m->cons_bytes[i] - m->rep_bytes[i] >= (m->cfg.forward_max_bytes + 1) / 2) {
      return true;
    }
  }
  return false;
}

static bool seq_may_cut(const mir_limit *m) {
  return m->ring_n > 0 && m->issue_sn - m->min_acked < m->cfg.sns_ahead_max &&
         m->ahead_bytes < m->cfg.bytes_ahead_max;
}

/* Cuts one sn from the front of the queue, applies it here and sends it to the others. */
static mir_err seq_cut_one(mir_limit *m, mir_event_list *out) {
  size_t k = 0;
  uint64_t bytes = 0;
  while (k < m->ring_n && k < m->cfg.max_batch_txs) {
    const Trantor__Tx *tx = m->ring[(m->ring_head + k) % m->ring_cap].tx;
    if (k > 0 && bytes + tx->data.len > m->cfg.max_batch_bytes) break;
    bytes += tx->data.len;
    k++;
  }
  Trantor__Tx **txs = mir_xcalloc(k, sizeof(*txs));
  for (size_t j = 0; j < k; j++) {
    lim_pending *p = &m->ring[(m->ring_head + j) % m->ring_cap];
    txs[j] = p->tx;
    m->cons_txs[p->src]++;
    m->cons_bytes[p->src] += p->tx->data.len;
  }
  m->ring_head = (m->ring_head + k) % m->ring_cap;
  m->ring_n -= k;
  m->cons_dirty = true;
  uint64_t sn = m->issue_sn++;
  m->sn_bytes[sn % m->cfg.sns_ahead_max] = bytes;
  m->ahead_bytes += bytes;
  mir_counter_add(m->seq_numbered, k);
  mir_err err = lim_apply_sn(m, sn, txs, k);
  if (err == MIR_OK) {
    Mir__Limit__Deliver d = MIR__LIMIT__DELIVER__INIT;
    Mir__Limit__Consumed c = MIR__LIMIT__CONSUMED__INIT;
    d.sn = sn;
    d.txs = txs;
    d.n_txs = k;
    if (!seq_may_cut(m)) d.consumed = seq_report(m, &c); /* the round's last sn */
    lim_send_others(m, &d.base, out);
  }
  for (size_t j = 0; j < k; j++) trantor__tx__free_unpacked(txs[j], NULL);
  free(txs);
  return err;
}

/* The end of a round: number what the bounds allow (the last sn carries the report of what was
 * consumed), then report on its own only when a server may be waiting for it. */
static mir_err seq_round(mir_limit *m, mir_event_list *out) {
  seq_advance_acked(m);
  while (seq_may_cut(m)) {
    mir_err err = seq_cut_one(m, out);
    if (err != MIR_OK) return err;
  }
  m->used_txs = m->cons_txs[m->cfg.self];
  m->used_bytes = m->cons_bytes[m->cfg.self];
  if (m->cons_dirty && seq_report_due(m)) {
    Mir__Limit__Consumed c = MIR__LIMIT__CONSUMED__INIT;
    lim_send_others(m, &seq_report(m, &c)->base, out);
  }
  return MIR_OK;
}

/* ---- ingress (every server) ---- */

/* The answer to one transaction; ACCEPTED means: forward it. */
static Trantor__TxStatus lim_admit(mir_limit *m, const Trantor__Tx *tx) {
  size_t idlen = tx->client_id != NULL ? strlen(tx->client_id) : 0;
  if (!mir_tls_client_id_valid(tx->client_id, idlen)) return TRANTOR__TX_STATUS__TX_INVALID;
  if (tx->data.len > m->cfg.max_tx_bytes) return TRANTOR__TX_STATUS__TX_TOO_LARGE;
  switch (trantor_client_progress_check(m->admit, tx->client_id, tx->tx_no)) {
    case TRANTOR_CP_NEW:
      break;
    case TRANTOR_CP_DELIVERED:
      return TRANTOR__TX_STATUS__TX_DUPLICATE;
    case TRANTOR_CP_OUT_OF_WINDOW:
      return TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW;
    case TRANTOR_CP_TOO_MANY_CLIENTS: /* as Trantor's mempool: it could never be delivered */
      return TRANTOR__TX_STATUS__TX_MEMPOOL_FULL;
    default:
      return TRANTOR__TX_STATUS__TX_INVALID;
  }
  if (m->fwd_txs - m->used_txs >= m->cfg.forward_max_txs ||
      m->fwd_bytes - m->used_bytes + tx->data.len > m->cfg.forward_max_bytes) {
    return TRANTOR__TX_STATUS__TX_MEMPOOL_FULL;
  }
  m->fwd_txs++;
  m->fwd_bytes += tx->data.len;
  return TRANTOR__TX_STATUS__TX_ACCEPTED;
}

static void lim_count(mir_limit *m, Trantor__TxStatus st) {
  lim_answer a;
  switch (st) {
    case TRANTOR__TX_STATUS__TX_ACCEPTED:
      a = LIM_ACCEPTED;
      break;
    case TRANTOR__TX_STATUS__TX_DUPLICATE:
      a = LIM_DUPLICATE;
      break;
    case TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW:
      a = LIM_OUT_OF_WINDOW;
      break;
    case TRANTOR__TX_STATUS__TX_MEMPOOL_FULL:
      a = LIM_FULL;
      break;
    default:
      a = LIM_INVALID;
  }
  mir_counter_inc(m->answers[a]);
}

/* Sends the accepted transactions fwd[0..n) (owned) to the sequencer, in Forward messages of at
 * most max_batch_bytes data bytes each (the sequencer takes them directly). */
static void lim_forward(mir_limit *m, Trantor__Tx **fwd, size_t n, mir_event_list *out) {
  mir_counter_add(m->txs_forwarded, n);
  if (lim_is_seq(m)) {
    seq_take(m, m->cfg.self, fwd, n);
    return;
  }
  for (size_t i = 0; i < n;) {
    size_t k = 0;
    uint64_t bytes = 0;
    while (i + k < n && (k == 0 || bytes + fwd[i + k]->data.len <= m->cfg.max_batch_bytes)) {
      bytes += fwd[i + k]->data.len;
      k++;
    }
    Mir__Limit__Forward f = MIR__LIMIT__FORWARD__INIT;
    f.txs = fwd + i;
    f.n_txs = k;
    lim_send_to(m, 0, &f.base, out);
    i += k;
  }
  for (size_t i = 0; i < n; i++) trantor__tx__free_unpacked(fwd[i], NULL);
}

/* Answers a NewTransactions (borrowed; the accepted transactions are moved out of it). */
static mir_err lim_on_new_txs(mir_limit *m, Trantor__NewTransactions *nt, mir_event_list *out) {
  const Mir__Origin *o = nt->origin;
  if (o == NULL || o->module == NULL || !mir_module_id_valid(o->module)) {
    return mir_error_set(MIR_EINVAL, "limit: NewTransactions without a valid origin");
  }
  Trantor__TxsAccepted *acc = mir_xmalloc(sizeof(*acc));
  trantor__txs_accepted__init(acc);
  acc->status = mir_xcalloc(nt->n_txs + 1, sizeof(*acc->status));
  acc->n_status = nt->n_txs;
  Trantor__Tx **fwd = mir_xcalloc(nt->n_txs + 1, sizeof(*fwd));
  size_t n_fwd = 0;
  for (size_t i = 0; i < nt->n_txs; i++) {
    Trantor__TxStatus st = lim_admit(m, nt->txs[i]);
    acc->status[i] = st;
    lim_count(m, st);
    if (st == TRANTOR__TX_STATUS__TX_ACCEPTED) {
      fwd[n_fwd++] = nt->txs[i];
      nt->txs[i] = NULL; /* moved; protobuf-c's free skips it */
    }
  }
  acc->origin = mir_xmalloc(sizeof(*acc->origin));
  mir__origin__init(acc->origin);
  acc->origin->module = mir_xstrdup(o->module);
  acc->origin->context_id = o->context_id;
  mir_event_list_push(out, mir_event_new(o->module, MIR_LIMIT_MODULE_ID, &acc->base));
  lim_forward(m, fwd, n_fwd, out);
  free(fwd);
  return MIR_OK;
}

/* ---- peer messages ---- */

/* Index of server id, or -1. */
static int lim_index(const mir_limit *m, const char *id) {
  for (size_t i = 0; id != NULL && i < m->cfg.n; i++) {
    if (strcmp(m->ids[i], id) == 0) return (int)i;
  }
  return -1;
}

/* Decodes pm's data as desc if its type is desc's; NULL otherwise. Returns owned. */
static ProtobufCMessage *lim_decode(const Mir__PackedMessage *pm,
                                    const ProtobufCMessageDescriptor *desc) {
  if (pm->type == NULL || strcmp(pm->type, desc->name) != 0) return NULL;
  return protobuf_c_message_unpack(desc, NULL, pm->data.len, pm->data.data);
}

static void lim_on_consumed(mir_limit *m, const Mir__Limit__Consumed *c) {
  size_t s = m->cfg.self;
  if (c->n_txs != m->cfg.n || c->n_bytes != m->cfg.n) {
    mir_counter_inc(m->peer_dropped);
    return;
  }
  /* Never beyond what this server forwarded; reports only grow. */
  if (c->txs[s] > m->used_txs && c->txs[s] <= m->fwd_txs) m->used_txs = c->txs[s];
  if (c->bytes[s] > m->used_bytes && c->bytes[s] <= m->fwd_bytes) m->used_bytes = c->bytes[s];
}

static mir_err lim_on_deliver(mir_limit *m, Mir__Limit__Deliver *d) {
  for (size_t i = 0; i < d->n_txs; i++) {
    if (d->txs[i]->client_id == NULL) {
      return mir_error_set(MIR_EPROTO, "limit: sn %" PRIu64 " holds a transaction without id",
                           d->sn);
    }
  }
  mir_err err = lim_apply_sn(m, d->sn, d->txs, d->n_txs);
  if (err == MIR_OK && d->consumed != NULL) lim_on_consumed(m, d->consumed);
  return err;
}

/* One message from a peer (the event's payload is borrowed). */
static mir_err lim_on_message(mir_limit *m, const Mir__MessageReceived *mr) {
  int from = lim_index(m, mr->from);
  const Mir__PackedMessage *pm = mr->msg;
  ProtobufCMessage *msg = NULL;
  mir_err err = MIR_OK;
  if (from < 0 || from == (int)m->cfg.self || pm == NULL) {
    /* nothing: dropped below */
  } else if (lim_is_seq(m) && (msg = lim_decode(pm, &mir__limit__forward__descriptor)) != NULL) {
    Mir__Limit__Forward *f = (Mir__Limit__Forward *)msg;
    seq_take(m, (size_t)from, f->txs, f->n_txs);
  } else if (lim_is_seq(m) && (msg = lim_decode(pm, &mir__limit__ack__descriptor)) != NULL) {
    uint64_t s = ((Mir__Limit__Ack *)msg)->next_sn;
    if (s > m->acked[from] && s <= m->issue_sn) m->acked[from] = s;
  } else if (from == 0 && (msg = lim_decode(pm, &mir__limit__deliver__descriptor)) != NULL) {
    err = lim_on_deliver(m, (Mir__Limit__Deliver *)msg);
  } else if (from == 0 && (msg = lim_decode(pm, &mir__limit__consumed__descriptor)) != NULL) {
    lim_on_consumed(m, (Mir__Limit__Consumed *)msg);
  }
  if (msg == NULL) mir_counter_inc(m->peer_dropped);
  protobuf_c_message_free_unpacked(msg, NULL);
  return err;
}

/* ---- the module ---- */

static mir_err lim_apply(void *state, mir_event_list *in, mir_event_list *out) {
  mir_limit *m = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    mir_err err = MIR_OK;
    if (mir_event_is(ev, &trantor__new_transactions__descriptor)) {
      err = lim_on_new_txs(m, (Trantor__NewTransactions *)ev->payload, out);
    } else if (mir_event_is(ev, &mir__message_received__descriptor)) {
      err = lim_on_message(m, (const Mir__MessageReceived *)ev->payload);
    } else if (!mir_event_is(ev, &mir__init__descriptor)) {
      err = mir_error_set(MIR_EINVAL, "limit: unexpected event %s from %s", mir_event_type_name(ev),
                          ev->src);
    }
    if (err != MIR_OK) return err;
  }
  if (lim_is_seq(m)) return seq_round(m, out);
  /* An Ack once a quarter of the sequencer's bounds was applied: it waits only at a bound, and
   * a server that applied everything has at least that much unacknowledged then. */
  uint64_t sns_due = m->cfg.sns_ahead_max / 4 > 0 ? m->cfg.sns_ahead_max / 4 : 1;
  if (m->next_sn > m->acked_sn &&
      (m->next_sn - m->acked_sn >= sns_due || m->unacked_bytes >= m->cfg.bytes_ahead_max / 4)) {
    m->acked_sn = m->next_sn;
    m->unacked_bytes = 0;
    Mir__Limit__Ack a = MIR__LIMIT__ACK__INIT;
    a.next_sn = m->next_sn;
    lim_send_to(m, 0, &a.base, out);
  }
  return MIR_OK;
}

const mir_module_ops mir_limit_ops = {
    .name = "limit",
    .kind = MIR_MODULE_PASSIVE,
    .apply = lim_apply,
    .destroy = lim_free,
    .peer_messages = true,
    .metrics = lim_metrics,
};
