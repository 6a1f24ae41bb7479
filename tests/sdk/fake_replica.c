/*
 * The fake cluster of fake_replica.h.
 *
 * One mutex (fc->mu) guards everything; each replica incarnation has one completion queue and
 * one thread that handles every event of its calls with the mutex held. Appending an entry kicks
 * the Subscribe streams of every replica from whichever thread appended it, which is safe because
 * all batches are started with the mutex held.
 *
 * A call context is freed when its last batch completed and RECV_CLOSE_ON_SERVER arrived. Stop
 * follows the order of the gRPC guide: shutdown_and_notify and cancel_all_calls under the mutex,
 * wait for the notification and for every call context to go, destroy the server, then shut the
 * queue down and join its thread.
 */
#include "fake_replica.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.pb-c.h"

#define FAKE_MAX 16
#define FAKE_REQUESTS_KEPT 4096

typedef struct fk_tag {
  void (*fn)(struct fk_tag *tag, int ok);
  void *self;
} fk_tag;

typedef struct fk_tx {
  char *client_id;
  uint64_t tx_no;
  uint8_t *data;
  size_t len;
} fk_tx;

typedef struct fk_entry {
  fk_tx *txs;
  size_t n;
  uint8_t hash[32];
} fk_entry;

typedef enum fk_kind { FK_SUBMIT, FK_SUBSCRIBE, FK_STATUS } fk_kind;

typedef struct fk_server fk_server;

typedef struct fk_call {
  fk_server *srv;
  fk_kind kind;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload, *recv_bb, *send_bb;
  fk_tag t_new, t_send, t_recv, t_close, t_status;
  int pending;
  int cancelled;
  int closed, sending, finished;
  /* Submit: responses waiting for the send side. */
  grpc_byte_buffer **outq;
  size_t n_out, cap_out;
  /* Subscribe. */
  uint64_t cursor;
  int twice; /* equivocation: the second send of cursor is pending */
  char *filter;
  struct fk_call *next_sub;
} fk_call;

struct fk_server {
  struct fake_cluster *fc;
  uint32_t index;
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t thread;
  void *m_submit, *m_subscribe, *m_status;
  fk_tag t_shutdown;
  int shutting_down, shutdown_done, live;
  fk_call *subs;
};

struct fake_cluster {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint32_t n;
  int port[FAKE_MAX];
  char addr[FAKE_MAX][32];
  fake_mode mode[FAKE_MAX];
  fk_server *srv[FAKE_MAX];
  uint64_t submitted[FAKE_MAX], subscribes[FAKE_MAX];
  fk_entry *log;
  size_t n_log, cap_log;
  fk_tx *pending;
  size_t n_pending, cap_pending;
  bool hold;
  char *cert_pem, *key_pem; /* TLS when set */
  uint32_t full_budget;
  uint32_t retry_after_ms;
  uint64_t window;
  bool report_window; /* Status says client_window (true unless a test turns it off) */
  bool refuse_ahead;
  uint64_t retained_from[FAKE_MAX]; /* per replica: a state transfer leaves each its own base */
  fake_request *requests[FAKE_MAX]; /* FAKE_REQUESTS_KEPT each, allocated on first use */
  size_t n_requests[FAKE_MAX];
};

/* ---- the shared log ---- */

static void fk_hash(const uint8_t prev[32], uint64_t sn, const fk_entry *e, uint8_t out[32]) {
  for (int part = 0; part < 4; part++) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)part;
    for (int i = 0; i < 32; i++) h = (h ^ prev[i]) * 1099511628211ull;
    h = (h ^ sn) * 1099511628211ull;
    for (size_t t = 0; t < e->n; t++) {
      for (const char *p = e->txs[t].client_id; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
      h = (h ^ e->txs[t].tx_no) * 1099511628211ull;
      for (size_t i = 0; i < e->txs[t].len; i++) h = (h ^ e->txs[t].data[i]) * 1099511628211ull;
    }
    memcpy(out + 8 * part, &h, 8);
  }
}

static bool fk_known(struct fake_cluster *fc, const char *id, uint64_t tx_no) {
  for (size_t i = 0; i < fc->n_pending; i++) {
    if (fc->pending[i].tx_no == tx_no && strcmp(fc->pending[i].client_id, id) == 0) return true;
  }
  for (size_t e = 0; e < fc->n_log; e++) {
    for (size_t i = 0; i < fc->log[e].n; i++) {
      const fk_tx *t = &fc->log[e].txs[i];
      if (t->tx_no == tx_no && strcmp(t->client_id, id) == 0) return true;
    }
  }
  return false;
}

static void fk_kick(fk_call *c);

static void fk_append(struct fake_cluster *fc, fk_tx *txs, size_t n) {
  if (fc->n_log == fc->cap_log) {
    fc->cap_log = fc->cap_log ? 2 * fc->cap_log : 64;
    fc->log = realloc(fc->log, fc->cap_log * sizeof(*fc->log));
  }
  fk_entry *e = &fc->log[fc->n_log];
  e->txs = txs;
  e->n = n;
  uint8_t zero[32] = {0};
  fk_hash(fc->n_log > 0 ? fc->log[fc->n_log - 1].hash : zero, fc->n_log, e, e->hash);
  fc->n_log++;
  for (uint32_t i = 0; i < fc->n; i++) {
    if (fc->srv[i] == NULL) continue;
    for (fk_call *c = fc->srv[i]->subs; c != NULL; c = c->next_sub) fk_kick(c);
  }
}

/* Orders every pending transaction into one new entry (unless held). */
static void fk_cut(struct fake_cluster *fc) {
  if (fc->hold || fc->n_pending == 0) return;
  fk_tx *txs = fc->pending;
  size_t n = fc->n_pending;
  fc->pending = NULL;
  fc->n_pending = fc->cap_pending = 0;
  fk_append(fc, txs, n);
}

/* ---- calls ---- */

static void fk_request(fk_server *s, fk_kind kind);

static void fk_start(fk_call *c, const grpc_op *ops, size_t n, fk_tag *tag) {
  c->pending++;
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
  if (e != GRPC_CALL_OK) {
    fprintf(stderr, "fake replica: start_batch: %s\n", grpc_call_error_to_string(e));
    abort();
  }
}

static void fk_maybe_free(fk_call *c) {
  if (c->pending > 0 || !c->closed) return;
  fk_server *s = c->srv;
  if (c->kind == FK_SUBSCRIBE) {
    fk_call **p = &s->subs;
    while (*p != NULL && *p != c) p = &(*p)->next_sub;
    if (*p == c) *p = c->next_sub;
  }
  for (size_t i = 0; i < c->n_out; i++) grpc_byte_buffer_destroy(c->outq[i]);
  free(c->outq);
  free(c->filter);
  if (c->payload != NULL) grpc_byte_buffer_destroy(c->payload);
  if (c->recv_bb != NULL) grpc_byte_buffer_destroy(c->recv_bb);
  if (c->send_bb != NULL) grpc_byte_buffer_destroy(c->send_bb);
  grpc_metadata_array_destroy(&c->md);
  grpc_call_unref(c->call);
  free(c);
  s->live--;
  pthread_cond_broadcast(&s->fc->cv);
}

static grpc_byte_buffer *fk_pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice sl = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

static ProtobufCMessage *fk_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  if (bb == NULL || !grpc_byte_buffer_reader_init(&r, bb)) return NULL;
  grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  ProtobufCMessage *m =
      protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
  grpc_slice_unref(sl);
  return m;
}

static void fk_send(fk_call *c, grpc_byte_buffer *bb) {
  c->send_bb = bb;
  c->sending = 1;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  fk_start(c, &op, 1, &c->t_send);
}

static void fk_on_close(fk_tag *tag, int ok) {
  fk_call *c = tag->self;
  (void)ok;
  c->pending--;
  c->closed = 1;
  fk_maybe_free(c);
}

static void fk_post_close(fk_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->cancelled;
  fk_start(c, &op, 1, &c->t_close);
}

/* Ends the call with code and details (static); range, if not NULL (static), is sent as the
 * trailing metadata "mir-range", as the replica does with OUT_OF_RANGE. */
static void fk_send_status_md(fk_call *c, grpc_status_code code, const char *details,
                              const char *range) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  op.data.send_status_from_server.status = code;
  grpc_slice d = grpc_slice_from_static_string(details);
  op.data.send_status_from_server.status_details = &d;
  grpc_metadata md;
  memset(&md, 0, sizeof(md));
  md.key = grpc_slice_from_static_string("mir-range");
  md.value = grpc_slice_from_static_string(range != NULL ? range : "");
  op.data.send_status_from_server.trailing_metadata_count = range != NULL ? 1 : 0;
  op.data.send_status_from_server.trailing_metadata = range != NULL ? &md : NULL;
  c->finished = 1;
  fk_start(c, &op, 1, &c->t_status);
}

static void fk_send_status(fk_call *c, grpc_status_code code, const char *details) {
  fk_send_status_md(c, code, details, NULL);
}

static void fk_on_status_sent(fk_tag *tag, int ok) {
  fk_call *c = tag->self;
  (void)ok;
  c->pending--;
  fk_maybe_free(c);
}

/* ---- Submit ---- */

static void fk_submit_flush(fk_call *c) {
  if (c->sending || c->n_out == 0 || c->closed) return;
  grpc_byte_buffer *bb = c->outq[0];
  memmove(c->outq, c->outq + 1, (c->n_out - 1) * sizeof(*c->outq));
  c->n_out--;
  fk_send(c, bb);
}

static void fk_submit_post_recv(fk_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_bb;
  fk_start(c, &op, 1, &c->t_recv);
}

/* The lowest tx number of client id not in the log (its window starts there). */
static uint64_t fk_low_wm(struct fake_cluster *fc, const char *id) {
  uint64_t low = 0;
  for (bool moved = true; moved;) {
    moved = false;
    for (size_t e = 0; e < fc->n_log && !moved; e++) {
      for (size_t i = 0; i < fc->log[e].n && !moved; i++) {
        const fk_tx *t = &fc->log[e].txs[i];
        if (t->tx_no == low && strcmp(t->client_id, id) == 0) {
          low++;
          moved = true;
        }
      }
    }
  }
  return low;
}

/* The answer of one transaction from a replica in `mode`. */
static int fk_admit(struct fake_cluster *fc, fake_mode mode, const Trantor__Tx *tx) {
  if (mode == FAKE_REJECT) return TRANTOR__TX_STATUS__TX_TOO_LARGE;
  if (mode == FAKE_CENSOR) return TRANTOR__TX_STATUS__TX_ACCEPTED;
  if (fc->full_budget > 0) {
    fc->full_budget--;
    return TRANTOR__TX_STATUS__TX_MEMPOOL_FULL;
  }
  if (fk_known(fc, tx->client_id, tx->tx_no)) return TRANTOR__TX_STATUS__TX_DUPLICATE;
  if (fc->window > 0 && tx->tx_no >= fk_low_wm(fc, tx->client_id) + fc->window) {
    return TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW;
  }
  if (fc->n_pending == fc->cap_pending) {
    fc->cap_pending = fc->cap_pending ? 2 * fc->cap_pending : 64;
    fc->pending = realloc(fc->pending, fc->cap_pending * sizeof(*fc->pending));
  }
  fk_tx *t = &fc->pending[fc->n_pending++];
  t->client_id = strdup(tx->client_id);
  t->tx_no = tx->tx_no;
  t->len = tx->data.len;
  t->data = malloc(t->len + 1);
  if (t->len > 0) memcpy(t->data, tx->data.data, t->len);
  return TRANTOR__TX_STATUS__TX_ACCEPTED;
}

/* Records a request replica i received. */
static fake_request *fk_log_request(struct fake_cluster *fc, uint32_t i, uint32_t n_txs) {
  if (fc->requests[i] == NULL) fc->requests[i] = calloc(FAKE_REQUESTS_KEPT, sizeof(fake_request));
  size_t k = fc->n_requests[i]++;
  if (k >= FAKE_REQUESTS_KEPT) return NULL;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fake_request *r = &fc->requests[i][k];
  r->at_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  r->n_txs = n_txs;
  return r;
}

static grpc_byte_buffer *fk_submit_answer(fk_call *c, const Mir__Api__SubmitRequest *req) {
  struct fake_cluster *fc = c->srv->fc;
  fake_mode mode = fc->mode[c->srv->index];
  fc->submitted[c->srv->index] += req->n_txs;
  fake_request *logged = fk_log_request(fc, c->srv->index, (uint32_t)req->n_txs);
  if (mode == FAKE_SILENT) return NULL;
  Mir__Api__SubmitResponse resp = MIR__API__SUBMIT_RESPONSE__INIT;
  resp.request_id = req->request_id;
  Mir__Api__TxResult *res = calloc(req->n_txs + 1, sizeof(*res));
  Mir__Api__TxResult **ptrs = calloc(req->n_txs + 1, sizeof(*ptrs));
  for (size_t i = 0; i < req->n_txs; i++) {
    mir__api__tx_result__init(&res[i]);
    res[i].status = (Trantor__TxStatus)fk_admit(fc, mode, req->txs[i]);
    res[i].reason =
        res[i].status == TRANTOR__TX_STATUS__TX_TOO_LARGE ? (char *)"fake: too large" : (char *)"";
    if (res[i].status == TRANTOR__TX_STATUS__TX_MEMPOOL_FULL) {
      resp.retry_after_ms = fc->retry_after_ms;
      if (logged != NULL) logged->refused = true;
    }
    ptrs[i] = &res[i];
  }
  resp.n_results = mode == FAKE_GARBAGE ? 0 : req->n_txs;
  resp.results = ptrs;
  grpc_byte_buffer *bb = fk_pack(&resp.base);
  free(res);
  free(ptrs);
  fk_cut(fc);
  return bb;
}

static void fk_submit_on_recv(fk_tag *tag, int ok) {
  fk_call *c = tag->self;
  c->pending--;
  if (c->recv_bb == NULL) {
    if (ok && !grpc_call_failed_before_recv_message(c->call) && !c->finished) {
      fk_send_status(c, GRPC_STATUS_OK, "");
    }
    fk_maybe_free(c);
    return;
  }
  Mir__Api__SubmitRequest *req =
      (Mir__Api__SubmitRequest *)fk_unpack(&mir__api__submit_request__descriptor, c->recv_bb);
  grpc_byte_buffer_destroy(c->recv_bb);
  c->recv_bb = NULL;
  if (req != NULL) {
    grpc_byte_buffer *bb = fk_submit_answer(c, req);
    mir__api__submit_request__free_unpacked(req, NULL);
    if (bb != NULL) {
      if (c->n_out == c->cap_out) {
        c->cap_out = c->cap_out ? 2 * c->cap_out : 16;
        c->outq = realloc(c->outq, c->cap_out * sizeof(*c->outq));
      }
      c->outq[c->n_out++] = bb;
      fk_submit_flush(c);
    }
  }
  fk_submit_post_recv(c);
  fk_maybe_free(c);
}

static void fk_submit_on_send(fk_tag *tag, int ok) {
  fk_call *c = tag->self;
  c->pending--;
  c->sending = 0;
  grpc_byte_buffer_destroy(c->send_bb);
  c->send_bb = NULL;
  if (ok) fk_submit_flush(c);
  fk_maybe_free(c);
}

/* ---- Subscribe ---- */

static grpc_byte_buffer *fk_delivery(fk_call *c, uint64_t sn, bool second) {
  struct fake_cluster *fc = c->srv->fc;
  fake_mode mode = fc->mode[c->srv->index];
  if (mode == FAKE_GARBAGE) {
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x07};
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)junk, sizeof(junk));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
  }
  const fk_entry *e = &fc->log[sn];
  Mir__Api__Delivery d = MIR__API__DELIVERY__INIT;
  d.sn = sn;
  uint8_t hash[32];
  memcpy(hash, e->hash, 32);
  if (mode == FAKE_LIE_HASH || second) hash[0] ^= 0x5a;
  d.log_hash.data = hash;
  d.log_hash.len = 32;
  Trantor__Tx *txs = calloc(e->n + 1, sizeof(*txs));
  Trantor__Tx **ptrs = calloc(e->n + 1, sizeof(*ptrs));
  uint8_t **altered = calloc(e->n + 1, sizeof(*altered)); /* one copy per transaction */
  /* Even-numbered replicas honour the client-id filter, odd ones send everything. */
  bool filter = c->filter != NULL && c->filter[0] != '\0' && c->srv->index % 2 == 0;
  for (size_t i = 0; i < e->n; i++) {
    if (filter && strcmp(e->txs[i].client_id, c->filter) != 0) continue;
    trantor__tx__init(&txs[d.n_txs]);
    txs[d.n_txs].client_id = e->txs[i].client_id;
    txs[d.n_txs].tx_no = e->txs[i].tx_no;
    txs[d.n_txs].data.data = e->txs[i].data;
    txs[d.n_txs].data.len = e->txs[i].len;
    if (mode == FAKE_LIE_DATA) {
      altered[i] = malloc(e->txs[i].len + 1);
      memcpy(altered[i], e->txs[i].data, e->txs[i].len);
      altered[i][e->txs[i].len] = 'X';
      txs[d.n_txs].data.data = altered[i];
      txs[d.n_txs].data.len = e->txs[i].len + 1;
    }
    ptrs[d.n_txs] = &txs[d.n_txs];
    d.n_txs++;
  }
  d.txs = ptrs;
  grpc_byte_buffer *bb = fk_pack(&d.base);
  free(txs);
  free(ptrs);
  for (size_t i = 0; i < e->n; i++) free(altered[i]);
  free(altered);
  return bb;
}

static void fk_kick(fk_call *c) {
  struct fake_cluster *fc = c->srv->fc;
  fake_mode mode = fc->mode[c->srv->index];
  if (c->sending || c->closed || c->finished || c->srv->shutting_down) return;
  if (mode == FAKE_SILENT || mode == FAKE_MUTE_LOG) return;
  if (c->twice) {
    c->twice = 0;
    fk_send(c, fk_delivery(c, c->cursor - 1, true));
    return;
  }
  if (c->cursor >= fc->n_log) return;
  uint64_t sn = c->cursor++;
  if (mode == FAKE_EQUIVOCATE) c->twice = 1;
  fk_send(c, fk_delivery(c, sn, false));
}

static void fk_sub_on_send(fk_tag *tag, int ok) {
  fk_call *c = tag->self;
  c->pending--;
  c->sending = 0;
  grpc_byte_buffer_destroy(c->send_bb);
  c->send_bb = NULL;
  if (ok) fk_kick(c);
  fk_maybe_free(c);
}

/* ---- new calls ---- */

static void fk_send_imd(fk_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  fk_start(c, &op, 1, &c->t_status);
}

static void fk_new_submit(fk_call *c) {
  c->t_send.fn = fk_submit_on_send;
  c->t_recv.fn = fk_submit_on_recv;
  fk_send_imd(c);
  fk_post_close(c);
  fk_submit_post_recv(c);
}

static void fk_new_subscribe(fk_call *c) {
  struct fake_cluster *fc = c->srv->fc;
  Mir__Api__SubscribeRequest *req =
      (Mir__Api__SubscribeRequest *)fk_unpack(&mir__api__subscribe_request__descriptor, c->payload);
  fk_send_imd(c);
  fk_post_close(c);
  if (req == NULL) {
    fk_send_status(c, GRPC_STATUS_INVALID_ARGUMENT, "not a SubscribeRequest");
  } else if (req->from_sn < fc->retained_from[c->srv->index]) {
    fk_send_status_md(c, GRPC_STATUS_OUT_OF_RANGE, "not retained", "below");
  } else if (fc->refuse_ahead) {
    fk_send_status_md(c, GRPC_STATUS_OUT_OF_RANGE, "too far beyond the log", "ahead");
  } else {
    fc->subscribes[c->srv->index]++;
    c->cursor = req->from_sn;
    c->filter = strdup(req->client_id != NULL ? req->client_id : "");
    c->t_send.fn = fk_sub_on_send;
    c->next_sub = c->srv->subs;
    c->srv->subs = c;
    fk_kick(c);
  }
  if (req != NULL) mir__api__subscribe_request__free_unpacked(req, NULL);
}

static void fk_new_status(fk_call *c) {
  struct fake_cluster *fc = c->srv->fc;
  Mir__Api__StatusResponse resp = MIR__API__STATUS_RESPONSE__INIT;
  resp.next_sn = fc->n_log;
  resp.retained_from_sn = fc->retained_from[c->srv->index];
  resp.client_window = fc->report_window ? fc->window : 0;
  grpc_op ops[3];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  c->send_bb = fk_pack(&resp.base);
  ops[1].data.send_message.send_message = c->send_bb;
  ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
  c->finished = 1;
  fk_start(c, ops, 3, &c->t_status);
  fk_post_close(c);
}

static void fk_on_new(fk_tag *tag, int ok) {
  fk_call *c = tag->self;
  fk_server *s = c->srv;
  if (!ok) { /* the server is shutting down: this request was never matched */
    grpc_metadata_array_destroy(&c->md);
    free(c);
    s->live--;
    pthread_cond_broadcast(&s->fc->cv);
    return;
  }
  fk_request(s, c->kind);
  if (c->kind == FK_SUBMIT) fk_new_submit(c);
  if (c->kind == FK_SUBSCRIBE) fk_new_subscribe(c);
  if (c->kind == FK_STATUS) fk_new_status(c);
}

static void fk_request(fk_server *s, fk_kind kind) {
  if (s->shutting_down) return;
  fk_call *c = calloc(1, sizeof(*c));
  c->srv = s;
  c->kind = kind;
  grpc_metadata_array_init(&c->md);
  c->t_new = (fk_tag){.fn = fk_on_new, .self = c};
  c->t_send = (fk_tag){.fn = NULL, .self = c};
  c->t_recv = (fk_tag){.fn = NULL, .self = c};
  c->t_close = (fk_tag){.fn = fk_on_close, .self = c};
  c->t_status = (fk_tag){.fn = fk_on_status_sent, .self = c};
  void *method =
      kind == FK_SUBMIT ? s->m_submit : (kind == FK_SUBSCRIBE ? s->m_subscribe : s->m_status);
  s->live++;
  grpc_call_error e = grpc_server_request_registered_call(
      s->server, method, &c->call, &c->deadline, &c->md, kind == FK_SUBMIT ? NULL : &c->payload,
      s->cq, s->cq, &c->t_new);
  if (e != GRPC_CALL_OK) abort();
}

static void fk_on_shutdown(fk_tag *tag, int ok) {
  fk_server *s = tag->self;
  (void)ok;
  s->shutdown_done = 1;
  pthread_cond_broadcast(&s->fc->cv);
}

static void *fk_thread(void *arg) {
  fk_server *s = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    fk_tag *tag = ev.tag;
    pthread_mutex_lock(&s->fc->mu);
    tag->fn(tag, ev.success);
    pthread_mutex_unlock(&s->fc->mu);
  }
  return NULL;
}

/* ---- replicas ---- */

static fk_server *fk_server_start(struct fake_cluster *fc, uint32_t i, int port) {
  fk_server *s = calloc(1, sizeof(*s));
  s->fc = fc;
  s->index = i;
  s->server = grpc_server_create(NULL, NULL);
  s->m_submit = grpc_server_register_method(s->server, "/mir.api.Client/Submit", NULL,
                                            GRPC_SRM_PAYLOAD_NONE, 0);
  s->m_subscribe = grpc_server_register_method(s->server, "/mir.api.Client/Subscribe", NULL,
                                               GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  s->m_status = grpc_server_register_method(s->server, "/mir.api.Client/Status", NULL,
                                            GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
  grpc_server_credentials *cr = grpc_insecure_server_credentials_create();
  if (fc->cert_pem != NULL) {
    grpc_server_credentials_release(cr);
    grpc_ssl_pem_key_cert_pair kp = {.private_key = fc->key_pem, .cert_chain = fc->cert_pem};
    cr = grpc_ssl_server_credentials_create(NULL, &kp, 1, 0, NULL);
  }
  int bound = grpc_server_add_http2_port(s->server, addr, cr);
  grpc_server_credentials_release(cr);
  if (bound == 0) {
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->cq);
    free(s);
    return NULL;
  }
  fc->port[i] = bound;
  snprintf(fc->addr[i], sizeof(fc->addr[i]), "127.0.0.1:%d", bound);
  grpc_server_start(s->server);
  s->t_shutdown = (fk_tag){.fn = fk_on_shutdown, .self = s};
  pthread_create(&s->thread, NULL, fk_thread, s);
  pthread_mutex_lock(&fc->mu);
  fk_request(s, FK_SUBMIT);
  fk_request(s, FK_SUBSCRIBE);
  fk_request(s, FK_STATUS);
  pthread_mutex_unlock(&fc->mu);
  return s;
}

static void fk_server_stop(fk_server *s) {
  struct fake_cluster *fc = s->fc;
  pthread_mutex_lock(&fc->mu);
  s->shutting_down = 1;
  grpc_server_shutdown_and_notify(s->server, s->cq, &s->t_shutdown);
  grpc_server_cancel_all_calls(s->server);
  while (!s->shutdown_done || s->live > 0) pthread_cond_wait(&fc->cv, &fc->mu);
  pthread_mutex_unlock(&fc->mu);
  grpc_server_destroy(s->server);
  grpc_completion_queue_shutdown(s->cq);
  pthread_join(s->thread, NULL);
  grpc_completion_queue_destroy(s->cq);
  free(s);
}

fake_cluster *fake_cluster_new(uint32_t n) {
  return fake_cluster_new_tls(n, NULL, NULL);
}

fake_cluster *fake_cluster_new_tls(uint32_t n, const char *cert_pem, const char *key_pem) {
  if (n == 0 || n > FAKE_MAX) return NULL;
  grpc_init();
  struct fake_cluster *fc = calloc(1, sizeof(*fc));
  pthread_mutex_init(&fc->mu, NULL);
  pthread_cond_init(&fc->cv, NULL);
  fc->n = n;
  fc->report_window = true;
  if (cert_pem != NULL && key_pem != NULL) {
    fc->cert_pem = strdup(cert_pem);
    fc->key_pem = strdup(key_pem);
  }
  for (uint32_t i = 0; i < n; i++) {
    fk_server *s = fk_server_start(fc, i, 0);
    pthread_mutex_lock(&fc->mu);
    fc->srv[i] = s;
    pthread_mutex_unlock(&fc->mu);
    if (s == NULL) {
      fake_cluster_free(fc);
      return NULL;
    }
  }
  return fc;
}

void fake_stop(fake_cluster *fc, uint32_t i) {
  pthread_mutex_lock(&fc->mu);
  fk_server *s = fc->srv[i];
  fc->srv[i] = NULL;
  pthread_mutex_unlock(&fc->mu);
  if (s != NULL) fk_server_stop(s);
}

int fake_start(fake_cluster *fc, uint32_t i) {
  if (fc->srv[i] != NULL) return 0;
  fk_server *s = fk_server_start(fc, i, fc->port[i]);
  pthread_mutex_lock(&fc->mu);
  fc->srv[i] = s;
  pthread_mutex_unlock(&fc->mu);
  return s != NULL ? 0 : -1;
}

static void fk_free_txs(fk_tx *txs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(txs[i].client_id);
    free(txs[i].data);
  }
  free(txs);
}

void fake_cluster_free(fake_cluster *fc) {
  if (fc == NULL) return;
  for (uint32_t i = 0; i < fc->n; i++) fake_stop(fc, i);
  for (size_t e = 0; e < fc->n_log; e++) fk_free_txs(fc->log[e].txs, fc->log[e].n);
  free(fc->log);
  fk_free_txs(fc->pending, fc->n_pending);
  for (uint32_t i = 0; i < FAKE_MAX; i++) free(fc->requests[i]);
  free(fc->cert_pem);
  free(fc->key_pem);
  pthread_cond_destroy(&fc->cv);
  pthread_mutex_destroy(&fc->mu);
  free(fc);
  grpc_shutdown();
}

const char *fake_addr(fake_cluster *fc, uint32_t i) {
  return fc->addr[i];
}

void fake_set_mode(fake_cluster *fc, uint32_t i, fake_mode mode) {
  pthread_mutex_lock(&fc->mu);
  fc->mode[i] = mode;
  pthread_mutex_unlock(&fc->mu);
}

void fake_set_hold(fake_cluster *fc, bool hold) {
  pthread_mutex_lock(&fc->mu);
  fc->hold = hold;
  fk_cut(fc);
  pthread_mutex_unlock(&fc->mu);
}

void fake_drop_pending(fake_cluster *fc) {
  pthread_mutex_lock(&fc->mu);
  fk_free_txs(fc->pending, fc->n_pending);
  fc->pending = NULL;
  fc->n_pending = fc->cap_pending = 0;
  pthread_mutex_unlock(&fc->mu);
}

void fake_set_full_budget(fake_cluster *fc, uint32_t count) {
  pthread_mutex_lock(&fc->mu);
  fc->full_budget = count;
  pthread_mutex_unlock(&fc->mu);
}

void fake_set_window(fake_cluster *fc, uint64_t window) {
  pthread_mutex_lock(&fc->mu);
  fc->window = window;
  pthread_mutex_unlock(&fc->mu);
}

void fake_set_report_window(fake_cluster *fc, bool report) {
  pthread_mutex_lock(&fc->mu);
  fc->report_window = report;
  pthread_mutex_unlock(&fc->mu);
}

void fake_set_retry_after(fake_cluster *fc, uint32_t ms) {
  pthread_mutex_lock(&fc->mu);
  fc->retry_after_ms = ms;
  pthread_mutex_unlock(&fc->mu);
}

void fake_set_refuse_ahead(fake_cluster *fc, bool refuse) {
  pthread_mutex_lock(&fc->mu);
  fc->refuse_ahead = refuse;
  pthread_mutex_unlock(&fc->mu);
}

size_t fake_requests(fake_cluster *fc, uint32_t i, fake_request *out, size_t cap) {
  pthread_mutex_lock(&fc->mu);
  size_t n = fc->n_requests[i];
  size_t kept = n < FAKE_REQUESTS_KEPT ? n : FAKE_REQUESTS_KEPT;
  for (size_t k = 0; k < kept && k < cap; k++) out[k] = fc->requests[i][k];
  pthread_mutex_unlock(&fc->mu);
  return n;
}

void fake_set_retained_from(fake_cluster *fc, uint64_t sn) {
  pthread_mutex_lock(&fc->mu);
  for (uint32_t i = 0; i < FAKE_MAX; i++) fc->retained_from[i] = sn;
  pthread_mutex_unlock(&fc->mu);
}

void fake_set_replica_retained_from(fake_cluster *fc, uint32_t i, uint64_t sn) {
  pthread_mutex_lock(&fc->mu);
  if (i < FAKE_MAX) fc->retained_from[i] = sn;
  pthread_mutex_unlock(&fc->mu);
}

void fake_append_empty(fake_cluster *fc) {
  pthread_mutex_lock(&fc->mu);
  fk_append(fc, NULL, 0);
  pthread_mutex_unlock(&fc->mu);
}

uint64_t fake_log_size(fake_cluster *fc) {
  pthread_mutex_lock(&fc->mu);
  uint64_t n = fc->n_log;
  pthread_mutex_unlock(&fc->mu);
  return n;
}

uint64_t fake_submitted(fake_cluster *fc, uint32_t i) {
  pthread_mutex_lock(&fc->mu);
  uint64_t n = fc->submitted[i];
  pthread_mutex_unlock(&fc->mu);
  return n;
}

uint64_t fake_subscribes(fake_cluster *fc, uint32_t i) {
  pthread_mutex_lock(&fc->mu);
  uint64_t n = fc->subscribes[i];
  pthread_mutex_unlock(&fc->mu);
  return n;
}

int fake_log_hash(fake_cluster *fc, uint64_t sn, uint8_t out[32]) {
  pthread_mutex_lock(&fc->mu);
  int rc = sn < fc->n_log ? 0 : -1;
  if (rc == 0) memcpy(out, fc->log[sn].hash, 32);
  pthread_mutex_unlock(&fc->mu);
  return rc;
}
