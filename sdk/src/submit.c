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
 * OUT_OF_WINDOW is transient: the tx number lies beyond the replica's window of this client,
 * which moves only when the replica delivers the client's older transactions (the client's window
 * is larger than the replicas', or the replica lags). Sending it again before then is wasted, and
 * with a window much larger than the replicas' it was most of the traffic under load: the
 * transaction is parked for that replica. Answers also show how far beyond this client's oldest
 * unresolved tx number the replica takes transactions now (window_est: a transaction taken lies
 * below that bound, one refused OUT_OF_WINDOW at or above it), and a parked transaction is queued
 * again when it fits below the bound from the client's oldest unresolved transaction now, so each
 * is sent again about once per time the window moves past it. As the estimate can be off (a
 * replica that lags takes less), every busy_max_ms the whole parked set is looked at with a bound
 * of at least one, so the oldest transaction is never parked for good. Other rejections count
 * towards the f+1 rule of tickets.h.
 *
 * Back-pressure: MEMPOOL_FULL means the replica could not take the transaction now, and the answer
 * says for how long to leave it alone (retry_after_ms; MIRI_CL_RETRY_TRANSIENT_MS when a replica
 * sends none). The transactions are queued again and the replica gets nothing, on this stream or a
 * reopened one, before the pause ends: the hint plus a random part of up to half of it, so that
 * clients refused together do not come back together. While the replica stays busy (an answer to a
 * request sent after the pause began is refused again), the pause doubles, up to busy_max_ms but
 * never below the hint; the first answer taken ends the episode. The stream stays open: being
 * busy is not a failure, and a reconnect would resend the whole window to a replica that just said
 * it has no room.
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
  ss->inflight[ss->n_inflight++] =
      (miri_cl_request){.id = id, .n = n, .tx_nos = tx_nos, .sent_ns = miri_cl_now_ns()};
  ss->send_bb = bb;
  ss->sending = true;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  miri_cl_start_batch(ss->call, &op, 1, &ss->t_send, &ss->pending);
  c->stats.requests_sent++;
}

/* Queues r's parked transactions again that fit its window from the oldest unresolved one: from
 * the head of the parked queue (they were parked in increasing order, mostly) when the oldest
 * moved, all of them every busy_max_ms. */
static void submit_unpark(miri_cl_replica *r, int64_t now_ns) {
  mir_client *c = r->c;
  if (r->parked.count == 0) return;
  bool all = now_ns - r->parked_ns >= (int64_t)c->opts.busy_max_ms * 1000000;
  if (!all && c->tickets.oldest == r->parked_oldest) return;
  r->parked_oldest = c->tickets.oldest;
  if (all) r->parked_ns = now_ns;
  uint64_t limit = c->tickets.oldest + (r->window_est > 0 ? r->window_est : 1);
  if (limit < c->tickets.oldest) limit = UINT64_MAX;
  uint32_t look = all ? r->parked.count : UINT32_MAX;
  uint64_t tx_no;
  while ((all ? look-- > 0 : r->parked.count > 0) && miri_cl_queue_pop(&r->parked, &tx_no)) {
    const miri_cl_ticket *t = miri_cl_tickets_pending(&c->tickets, tx_no);
    if (t == NULL) continue; /* resolved meanwhile */
    if (tx_no < limit) {
      if (miri_cl_queue_push(&r->q, tx_no, t->len, now_ns)) c->stats.resent++;
    } else {
      (void)miri_cl_queue_push(&r->parked, tx_no, t->len, now_ns); /* just popped: room */
      if (!all) break;                                             /* the rest lie beyond it too */
    }
  }
}

/* Sends a batch if one is due, else tells the timer thread when the next one will be. */
static void submit_maybe_send(miri_cl_replica *r, int64_t now_ns) {
  submit_unpark(r, now_ns);
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
  miri_cl_queue_clear(&r->parked); /* every unresolved one is queued below */
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

/* Applies one transaction's answer from replica r. Returns true if the replica refused it for
 * back-pressure (MEMPOOL_FULL). */
static bool submit_apply_one(miri_cl_replica *r, uint64_t tx_no, int status, const char *reason,
                             int64_t now_ns) {
  mir_client *c = r->c;
  bool busy = status == MIR_CLIENT_TX_MEMPOOL_FULL;
  if (busy) {
    const miri_cl_ticket *t = miri_cl_tickets_pending(&c->tickets, tx_no);
    c->stats.refused++;
    if (t != NULL && miri_cl_queue_push(&r->q, tx_no, t->len, now_ns)) c->stats.resent++;
    return true;
  }
  if (status == MIR_CLIENT_TX_OUT_OF_WINDOW) {
    const miri_cl_ticket *t = miri_cl_tickets_pending(&c->tickets, tx_no);
    if (t != NULL) {
      if (r->parked.count == 0) {
        r->parked_oldest = c->tickets.oldest;
        r->parked_ns = now_ns;
        miri_cl_timer_poke(c, now_ns + (int64_t)c->opts.busy_max_ms * 1000000);
      }
      (void)miri_cl_queue_push(&r->parked, tx_no, t->len, now_ns); /* room for the window */
    }
    return false;
  }
  char text[MIRI_CL_REASON_MAX + 1];
  snprintf(text, sizeof(text), "%s", reason != NULL ? reason : "");
  miri_cl_deferred d = {.kind = MIRI_CL_D_DONE};
  if (miri_cl_tickets_answer(&c->tickets, tx_no, r->index, status, text, &d.done)) {
    c->stats.rejected++;
    miri_cl_defer(c, &d);
  }
  return false;
}

/* Replica r answered req, refusing transactions of it for back-pressure (refused) or not, with the
 * hint hint_ms (0: none given). Pauses r's sending as the file comment says. */
static void submit_backpressure(miri_cl_replica *r, const miri_cl_request *req, bool refused,
                                uint32_t hint_ms, int64_t now_ns) {
  mir_client *c = r->c;
  /* Only an answer to a request sent after the current pause began says something about the
   * replica since then; answers to requests already on their way when it began say nothing new. */
  bool fresh = r->busy_ms == 0 || req->sent_ns >= r->busy_since_ns;
  if (!refused) {
    if (fresh) r->busy_ms = 0; /* it took something: the busy episode is over */
    return;
  }
  uint64_t hint = hint_ms > 0 ? hint_ms : MIRI_CL_RETRY_TRANSIENT_MS;
  if (!fresh) {
    /* Honour this hint too, without growing the pause. */
    int64_t until = now_ns + (int64_t)hint * 1000000;
    if (until > r->hold_ns) r->hold_ns = until;
    miri_cl_timer_poke(c, r->hold_ns);
    return;
  }
  uint64_t base = hint;
  if (r->busy_ms > 0) {
    uint64_t grown = 2 * r->busy_ms < c->opts.busy_max_ms ? 2 * r->busy_ms : c->opts.busy_max_ms;
    if (grown > base) base = grown;
  }
  uint64_t pause_ms = base + miri_cl_random(c, base / 2 + 1);
  int64_t until = now_ns + (int64_t)pause_ms * 1000000;
  if (until > r->hold_ns) r->hold_ns = until;
  r->busy_ms = base;
  r->busy_since_ns = now_ns;
  c->stats.backoffs++;
  miri_cl_timer_poke(c, r->hold_ns);
}

/* Checks and applies a SubmitResponse; false when it violates the protocol. */
static bool submit_apply(miri_cl_sstream *ss, const Mir__Api__SubmitResponse *resp) {
  mir_client *c = ss->rep->c;
  uint32_t k = 0;
  while (k < ss->n_inflight && ss->inflight[k].id != resp->request_id) k++;
  if (k == ss->n_inflight) return false;
  miri_cl_request req = ss->inflight[k];
  if (miri_cl_submit_response_check(resp, req.n) != NULL) return false;
  bool refused = resp->error != NULL && resp->error[0] != '\0';
  int64_t now = miri_cl_now_ns();
  bool busy = false;
  miri_cl_replica *r = ss->rep;
  for (uint32_t i = 0; i < req.n; i++) {
    int status = refused ? MIR_CLIENT_TX_INVALID : (int)resp->results[i]->status;
    const char *reason = refused ? resp->error : resp->results[i]->reason;
    uint64_t tx_no = req.tx_nos[i];
    /* What the answer shows of r's window (see the file comment), in the order of the request. */
    if (tx_no >= c->tickets.oldest) {
      uint64_t ahead = tx_no - c->tickets.oldest;
      if (status == MIR_CLIENT_TX_OUT_OF_WINDOW && (r->window_est == 0 || ahead < r->window_est)) {
        r->window_est = ahead > 0 ? ahead : 1;
      } else if ((status == MIR_CLIENT_TX_ACCEPTED || status == MIR_CLIENT_TX_DUPLICATE) &&
                 ahead + 1 > r->window_est) {
        r->window_est = ahead + 1;
      }
    }
    if (submit_apply_one(r, tx_no, status, reason, now)) busy = true;
  }
  submit_backpressure(ss->rep, &req, busy, resp->retry_after_ms, now);
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
  int64_t unpark =
      r->parked.count > 0 ? r->parked_ns + (int64_t)r->c->opts.busy_max_ms * 1000000 : INT64_MAX;
  if (r->q.count == 0 || r->ss->done) return unpark;
  int64_t next = INT64_MAX;
  if (now_ns < r->hold_ns) {
    next = r->hold_ns;
  } else if (!r->ss->sending && r->ss->n_inflight < MIRI_CL_INFLIGHT_MAX) {
    next = miri_cl_batch_deadline(&r->q, &r->c->limits);
  }
  return next < unpark ? next : unpark;
}

void miri_cl_submit_cancel(miri_cl_replica *r) {
  if (r->ss != NULL && !r->ss->done) grpc_call_cancel(r->ss->call, NULL);
}
