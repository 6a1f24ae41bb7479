/*
 * Submission: one Submit stream to each replica of the submit set (submit_k = f+1 replicas by
 * default, so that at least one correct replica gets every transaction and a faulty one cannot
 * censor it).
 *
 * A stream's life: open (the timer thread, or fail-over) creates the call, posts the initial
 * metadata, the status and a RECV_MESSAGE, and queues every unresolved transaction on it, so a
 * reopened or newly added stream carries whatever may have been lost (a replica answers a
 * transaction it already has with DUPLICATE, which counts as acceptance). Batches leave from the
 * queue (batch.h), one SEND_MESSAGE in flight and at most MIRI_CL_INFLIGHT_MAX requests without
 * an answer. Answers are matched to requests by request_id and checked (wire.h); an answer that
 * does not match is a protocol violation: the stream is cancelled and reopened after a backoff.
 * MEMPOOL_FULL and OUT_OF_WINDOW are transient (the replica is busy or has not yet delivered what
 * this client saw committed): the transaction is queued again and the replica gets nothing for
 * MIRI_CL_RETRY_TRANSIENT_MS. Other rejections count towards the f+1 rule of tickets.h.
 *
 * Fail-over: a replica whose stream failed MIRI_CL_FAILS_BEFORE_FAILOVER times in a row counts as
 * down; while fewer than submit_k members are up, the next replica outside the set joins it. A
 * down member stays in the set and keeps being retried with backoff.
 *
 * Every function here runs with the client lock held.
 */
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

static void submit_on_start(miri_cl_tag *tag, bool ok);
static void submit_on_send(miri_cl_tag *tag, bool ok);
static void submit_on_recv(miri_cl_tag *tag, bool ok);
static void submit_on_status(miri_cl_tag *tag, bool ok);

static void submit_maybe_free(miri_cl_sstream *ss) {
  if (ss->pending > 0 || !ss->done) return;
  mir_client *c = ss->rep->c;
  for (uint32_t i = 0; i < ss->n_inflight; i++) free(ss->inflight[i].tx_nos);
  if (ss->send_bb != NULL) grpc_byte_buffer_destroy(ss->send_bb);
  if (ss->recv_bb != NULL) grpc_byte_buffer_destroy(ss->recv_bb);
  grpc_call_unref(ss->call);
  miri_cl_callst_fini(&ss->st);
  free(ss);
  miri_cl_call_gone(c);
}

static bool submit_can_send(const miri_cl_replica *r, int64_t now_ns) {
  const miri_cl_sstream *ss = r->ss;
  return ss != NULL && !ss->done && !ss->sending && ss->n_inflight < MIRI_CL_INFLIGHT_MAX &&
         now_ns >= r->hold_ns;
}

/* Packs the tx numbers (their tickets are unresolved) into a SubmitRequest byte buffer. */
static grpc_byte_buffer *submit_pack(mir_client *c, uint64_t request_id, const uint64_t *tx_nos,
                                     uint32_t n) {
  Trantor__Tx *txs = calloc(n, sizeof(*txs));
  Trantor__Tx **ptrs = calloc(n, sizeof(*ptrs));
  grpc_byte_buffer *bb = NULL;
  if (txs != NULL && ptrs != NULL) {
    for (uint32_t i = 0; i < n; i++) {
      const miri_cl_ticket *t = miri_cl_tickets_pending(&c->tickets, tx_nos[i]);
      trantor__tx__init(&txs[i]);
      txs[i].client_id = c->client_id;
      txs[i].tx_no = tx_nos[i];
      txs[i].data.len = t->len;
      txs[i].data.data = t->data;
      ptrs[i] = &txs[i];
    }
    Mir__Api__SubmitRequest req = MIR__API__SUBMIT_REQUEST__INIT;
    req.request_id = request_id;
    req.n_txs = n;
    req.txs = ptrs;
    bb = miri_cl_pack(&req.base);
  }
  free(txs);
  free(ptrs);
  return bb;
}

/* Sends the next batch from r's queue if there is one. */
static void submit_send(miri_cl_replica *r) {
  mir_client *c = r->c;
  miri_cl_sstream *ss = r->ss;
  uint32_t n = miri_cl_batch_take(&r->q, &c->tickets, &c->limits, c->batch_buf);
  if (n == 0) return;
  uint64_t *tx_nos = malloc(n * sizeof(*tx_nos));
  uint64_t id = r->next_request_id++;
  grpc_byte_buffer *bb = tx_nos != NULL ? submit_pack(c, id, c->batch_buf, n) : NULL;
  if (bb == NULL) {
    /* Out of memory: the transactions go out again when the stream is reopened. */
    free(tx_nos);
    grpc_call_cancel(ss->call, NULL);
    return;
  }
  memcpy(tx_nos, c->batch_buf, n * sizeof(*tx_nos));
  ss->inflight[ss->n_inflight++] = (miri_cl_request){.id = id, .n = n, .tx_nos = tx_nos};
  ss->send_bb = bb;
  ss->sending = true;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  miri_cl_start_batch(ss->call, &op, 1, &ss->t_send, &ss->pending);
  c->stats.requests_sent++;
}

/* Sends a batch if one is due, else tells the timer thread when the next one will be. */
static void submit_maybe_send(miri_cl_replica *r, int64_t now_ns) {
  if (r->q.count == 0) return;
  if (submit_can_send(r, now_ns) && miri_cl_batch_due(&r->q, &r->c->limits, now_ns)) {
    submit_send(r);
  }
  if (r->q.count == 0 || r->ss == NULL || r->ss->sending) return;
  if (now_ns < r->hold_ns) {
    miri_cl_timer_poke(r->c, r->hold_ns);
  } else if (r->ss->n_inflight < MIRI_CL_INFLIGHT_MAX) {
    miri_cl_timer_poke(r->c, miri_cl_batch_deadline(&r->q, &r->c->limits));
  }
}

static void submit_post_recv(miri_cl_sstream *ss) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &ss->recv_bb;
  miri_cl_start_batch(ss->call, &op, 1, &ss->t_recv, &ss->pending);
}

/* Queues every unresolved transaction on r (a new or reopened stream). */
static void submit_queue_all(miri_cl_replica *r, int64_t now_ns) {
  mir_client *c = r->c;
  miri_cl_queue_clear(&r->q);
  for (uint64_t n = c->tickets.oldest; n < c->tickets.next; n++) {
    const miri_cl_ticket *t = miri_cl_tickets_pending(&c->tickets, n);
    if (t != NULL && miri_cl_queue_push(&r->q, n, t->len, now_ns)) c->stats.resent++;
  }
}

static void submit_open(miri_cl_replica *r, int64_t now_ns) {
  mir_client *c = r->c;
  miri_cl_sstream *ss = calloc(1, sizeof(*ss));
  if (ss == NULL) {
    r->retry_ns = now_ns + (int64_t)c->opts.reconnect_max_ms * 1000000;
    return;
  }
  ss->call = miri_cl_call_new(r, MIRI_CL_METHOD_SUBMIT, 0);
  if (ss->call == NULL) {
    free(ss);
    r->retry_ns = now_ns + (int64_t)c->opts.reconnect_max_ms * 1000000;
    return;
  }
  if (r->failures > 0) c->stats.reconnects++;
  ss->rep = r;
  miri_cl_callst_init(&ss->st);
  ss->t_start = (miri_cl_tag){.fn = submit_on_start, .self = ss};
  ss->t_send = (miri_cl_tag){.fn = submit_on_send, .self = ss};
  ss->t_recv = (miri_cl_tag){.fn = submit_on_recv, .self = ss};
  ss->t_status = (miri_cl_tag){.fn = submit_on_status, .self = ss};
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[1].data.recv_initial_metadata.recv_initial_metadata = &ss->st.imd;
  miri_cl_start_batch(ss->call, ops, 2, &ss->t_start, &ss->pending);
  miri_cl_start_recv_status(ss->call, &ss->st, &ss->t_status, &ss->pending);
  submit_post_recv(ss);
  r->ss = ss;
  r->retry_ns = 0;
  submit_queue_all(r, now_ns);
  submit_maybe_send(r, now_ns);
}

static void submit_on_start(miri_cl_tag *tag, bool ok) {
  miri_cl_sstream *ss = tag->self;
  (void)ok; /* a failed start shows up in the status */
  ss->pending--;
  submit_maybe_free(ss);
}

static void submit_on_send(miri_cl_tag *tag, bool ok) {
  miri_cl_sstream *ss = tag->self;
  ss->pending--;
  ss->sending = false;
  grpc_byte_buffer_destroy(ss->send_bb);
  ss->send_bb = NULL;
  if (ok && ss->rep->ss == ss) submit_maybe_send(ss->rep, miri_cl_now_ns());
  submit_maybe_free(ss);
}

/* Applies one transaction's answer from replica r. */
static void submit_apply_one(miri_cl_replica *r, uint64_t tx_no, int status, const char *reason,
                             int64_t now_ns) {
  mir_client *c = r->c;
  if (status == MIR_CLIENT_TX_MEMPOOL_FULL || status == MIR_CLIENT_TX_OUT_OF_WINDOW) {
    const miri_cl_ticket *t = miri_cl_tickets_pending(&c->tickets, tx_no);
    if (t != NULL && miri_cl_queue_push(&r->q, tx_no, t->len, now_ns)) {
      r->hold_ns = now_ns + (int64_t)MIRI_CL_RETRY_TRANSIENT_MS * 1000000;
      miri_cl_timer_poke(c, r->hold_ns);
    }
    return;
  }
  char text[MIRI_CL_REASON_MAX + 1];
  snprintf(text, sizeof(text), "%s", reason != NULL ? reason : "");
  miri_cl_deferred d = {.kind = MIRI_CL_D_DONE};
  if (miri_cl_tickets_answer(&c->tickets, tx_no, r->index, status, text, &d.done)) {
    c->stats.rejected++;
    miri_cl_defer(c, &d);
  }
}

/* Checks and applies a SubmitResponse; false when it violates the protocol. */
static bool submit_apply(miri_cl_sstream *ss, const Mir__Api__SubmitResponse *resp) {
  uint32_t k = 0;
  while (k < ss->n_inflight && ss->inflight[k].id != resp->request_id) k++;
  if (k == ss->n_inflight) return false;
  miri_cl_request req = ss->inflight[k];
  if (miri_cl_submit_response_check(resp, req.n) != NULL) return false;
  bool refused = resp->error != NULL && resp->error[0] != '\0';
  int64_t now = miri_cl_now_ns();
  for (uint32_t i = 0; i < req.n; i++) {
    int status = refused ? MIR_CLIENT_TX_INVALID : (int)resp->results[i]->status;
    const char *reason = refused ? resp->error : resp->results[i]->reason;
    submit_apply_one(ss->rep, req.tx_nos[i], status, reason, now);
  }
  free(req.tx_nos);
  memmove(&ss->inflight[k], &ss->inflight[k + 1], (ss->n_inflight - k - 1) * sizeof(req));
  ss->n_inflight--;
  return true;
}

static void submit_on_recv(miri_cl_tag *tag, bool ok) {
  miri_cl_sstream *ss = tag->self;
  mir_client *c = ss->rep->c;
  (void)ok;
  ss->pending--;
  if (ss->recv_bb == NULL) { /* the stream ended; its status follows */
    submit_maybe_free(ss);
    return;
  }
  Mir__Api__SubmitResponse *resp = NULL;
  grpc_slice s;
  if (miri_cl_flatten(ss->recv_bb, &s)) {
    resp = mir__api__submit_response__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
  }
  grpc_byte_buffer_destroy(ss->recv_bb);
  ss->recv_bb = NULL;
  bool good = resp != NULL && submit_apply(ss, resp);
  if (resp != NULL) mir__api__submit_response__free_unpacked(resp, NULL);
  if (!good) {
    c->stats.bad_messages++;
    grpc_call_cancel(ss->call, NULL); /* a replica that breaks the protocol gets a new stream */
    submit_maybe_free(ss);
    return;
  }
  if (ss->done) { /* a late answer after the status: applied, nothing more to read */
    submit_maybe_free(ss);
    return;
  }
  ss->rep->failures = 0;
  ss->rep->backoff_ms = 0;
  submit_post_recv(ss);
  if (ss->rep->ss == ss) submit_maybe_send(ss->rep, miri_cl_now_ns());
  submit_maybe_free(ss);
}

/* Adds replicas to the submit set while fewer than submit_k of its members are up. */
static void submit_failover(mir_client *c, int64_t now_ns) {
  uint32_t up = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->rep[i].submit_member && c->rep[i].failures < MIRI_CL_FAILS_BEFORE_FAILOVER) up++;
  }
  for (uint32_t k = 0; k < c->n && up < c->submit_k; k++) {
    miri_cl_replica *r = &c->rep[(c->start_index + k) % c->n];
    if (r->submit_member) continue;
    r->submit_member = true;
    r->retry_ns = now_ns;
    c->stats.failovers++;
    up++;
    miri_cl_timer_poke(c, now_ns);
  }
}

static void submit_on_status(miri_cl_tag *tag, bool ok) {
  miri_cl_sstream *ss = tag->self;
  miri_cl_replica *r = ss->rep;
  mir_client *c = r->c;
  (void)ok;
  ss->pending--;
  ss->done = true;
  if (r->ss == ss) r->ss = NULL;
  if (!c->closing) {
    int64_t now = miri_cl_now_ns();
    r->failures++;
    r->backoff_ms = miri_cl_backoff_next(c, r->backoff_ms);
    r->retry_ns = now + (int64_t)r->backoff_ms * 1000000;
    miri_cl_timer_poke(c, r->retry_ns);
    submit_failover(c, now);
  }
  submit_maybe_free(ss);
}

void miri_cl_submit_set_init(mir_client *c) {
  int64_t now = miri_cl_now_ns();
  for (uint32_t k = 0; k < c->submit_k; k++) {
    miri_cl_replica *r = &c->rep[(c->start_index + k) % c->n];
    r->submit_member = true;
    submit_open(r, now);
  }
}

void miri_cl_submit_enqueue(mir_client *c, uint64_t tx_no, size_t len) {
  int64_t now = miri_cl_now_ns();
  for (uint32_t i = 0; i < c->n; i++) {
    miri_cl_replica *r = &c->rep[i];
    if (!r->submit_member || r->ss == NULL || r->ss->done) continue;
    /* The queue has room for the whole window, so a push fails only if the tx is queued. */
    if (miri_cl_queue_push(&r->q, tx_no, len, now)) submit_maybe_send(r, now);
  }
}

int64_t miri_cl_submit_tick(miri_cl_replica *r, int64_t now_ns) {
  if (!r->submit_member) return INT64_MAX;
  if (r->ss == NULL) {
    if (r->retry_ns <= now_ns) {
      submit_open(r, now_ns);
    }
    if (r->ss == NULL) return r->retry_ns;
  }
  submit_maybe_send(r, now_ns);
  if (r->q.count == 0 || r->ss->done) return INT64_MAX;
  if (now_ns < r->hold_ns) return r->hold_ns;
  if (r->ss->sending || r->ss->n_inflight >= MIRI_CL_INFLIGHT_MAX) return INT64_MAX;
  return miri_cl_batch_deadline(&r->q, &r->c->limits);
}

void miri_cl_submit_cancel(miri_cl_replica *r) {
  if (r->ss != NULL && !r->ss->done) grpc_call_cancel(r->ss->call, NULL);
}
