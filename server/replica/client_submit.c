/*
 * Submit streams (client_service.h, "Submit").
 *
 * A stream reads one request at a time (one RECV_MESSAGE posted), checks it at ingress, forwards
 * the transactions that pass to the mempool through the node's inbox, and answers each request
 * once, with its request_id: at once when nothing was forwarded (or it is refused as busy), else
 * when the mempool's TxsAccepted comes back to the module (miri_cs_submit_answer, on the
 * dispatcher thread), so an answer given at once may overtake earlier requests' answers.
 *
 * The origin's context id names the stream and the request: slot (16 bits) | request sequence
 * (24 bits) << 16 | stream generation (24 bits) << 40. A slot is reused by later streams, so an
 * answer for a stream that ended finds another generation (or none) and is dropped.
 *
 * Back-pressure: a request read while max_requests_in_flight requests of its stream are at the
 * mempool is answered at once, every transaction that passed the checks TX_MEMPOOL_FULL with the
 * hint retry_after_ms (as are the ones the mempool answers MEMPOOL_FULL), instead of being held:
 * the client learns explicitly that the replica is busy and for how long to leave it alone.
 * Reading stops at twice that many unanswered requests, so refusals the client does not read
 * cannot pile up either.
 *
 * Invariants (under svc->mu): `unanswered` counts requests at the mempool (`at_mempool`) plus
 * responses not yet sent, and no RECV_MESSAGE is posted while it is at 2 *
 * max_requests_in_flight; at most one SEND_MESSAGE is in flight; the status is sent once, after
 * the last response; a stream that failed sends nothing more and is freed when its last batch
 * completes. Batches are started without svc->mu (cs_submit_pump).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/log.h"

#define CS_SLOT_BITS 16
#define CS_SEQ_BITS 24
#define CS_SEQ_MASK ((1u << CS_SEQ_BITS) - 1)

/* What the reading thread made of one request. */
typedef struct cs_work {
  cs_req *req;                  /* forwarded part waiting for the mempool (or NULL) */
  Trantor__NewTransactions *nt; /* to push (or NULL) */
  cs_out *resp;                 /* an immediate answer (or NULL) */
  bool malformed;
  size_t rejected; /* transactions rejected at ingress */
} cs_work;

static void cs_submit_on_new(cs_tag *t, bool ok);
static void cs_submit_on_recv(cs_tag *t, bool ok);
static void cs_submit_on_send(cs_tag *t, bool ok);
static void cs_submit_on_done(cs_tag *t, bool ok);

/* ---- requests and responses ---- */

void miri_cs_req_free(cs_req *r) {
  for (size_t i = 0; i < r->n; i++) free(r->reason[i]);
  free(r->reason);
  free(r->status);
  free(r->fwd);
  free(r);
}

static char *cs_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *cs_fmt(const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return mir_xstrdup(buf);
}

/* The reason given for a status the mempool chose. Returns owned. */
static char *cs_reason(const mir_client_service *svc, Trantor__TxStatus st) {
  switch (st) {
    case TRANTOR__TX_STATUS__TX_ACCEPTED:
      return NULL;
    case TRANTOR__TX_STATUS__TX_DUPLICATE:
      return cs_fmt("duplicate: this tx number is already pending or delivered");
    case TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW:
      return cs_fmt("outside the client's window: tx numbers must lie within %" PRIu64
                    " of the first undelivered one",
                    svc->cfg.client_window);
    case TRANTOR__TX_STATUS__TX_TOO_LARGE:
      return cs_fmt("too large: at most %" PRIu64 " bytes", svc->cfg.max_tx_bytes);
    case TRANTOR__TX_STATUS__TX_MEMPOOL_FULL:
      return cs_fmt("the mempool is full; retry after %" PRIu64 " ms",
                    svc->cfg.limits.retry_after_ms);
    default:
      return cs_fmt("invalid transaction");
  }
}

/* Packs the response to r (borrowed), or an error response when error is set. retry_after_ms is
 * the back-pressure hint, sent when a transaction of r is TX_MEMPOOL_FULL. */
static cs_out *cs_response(uint64_t request_id, const cs_req *r, const char *error,
                           uint64_t retry_after_ms) {
  Mir__Api__SubmitResponse resp = MIR__API__SUBMIT_RESPONSE__INIT;
  resp.request_id = request_id;
  resp.error = (char *)(error != NULL ? error : "");
  for (size_t i = 0; r != NULL && i < r->n; i++) {
    if (r->status[i] == TRANTOR__TX_STATUS__TX_MEMPOOL_FULL) {
      resp.retry_after_ms = (uint32_t)retry_after_ms;
      break;
    }
  }
  size_t n = r != NULL ? r->n : 0;
  Mir__Api__TxResult *res = n > 0 ? mir_xcalloc(n, sizeof(*res)) : NULL;
  Mir__Api__TxResult **ptrs = n > 0 ? mir_xcalloc(n, sizeof(*ptrs)) : NULL;
  for (size_t i = 0; i < n; i++) {
    mir__api__tx_result__init(&res[i]);
    res[i].status = (Trantor__TxStatus)r->status[i];
    res[i].reason = r->reason[i] != NULL ? r->reason[i] : (char *)"";
    ptrs[i] = &res[i];
  }
  resp.n_results = n;
  resp.results = ptrs;
  cs_out *o = mir_xcalloc(1, sizeof(*o));
  size_t len = mir__api__submit_response__get_packed_size(&resp);
  o->slice = grpc_slice_malloc(len);
  mir__api__submit_response__pack(&resp, GRPC_SLICE_START_PTR(o->slice));
  free(ptrs);
  free(res);
  return o;
}

/* Checks one transaction at ingress. Returns the status (ACCEPTED: forward it) and sets *reason
 * (owned) for a rejection. id_wire_ok: its client id was valid on the wire (cs_ids_on_wire). The
 * stream's client id is fixed by its first valid transaction (or by the certificate). */
static Trantor__TxStatus cs_check_tx(const Trantor__Tx *tx, bool id_wire_ok, uint64_t max_tx_bytes,
                                     char *client_id, bool id_from_cert, char **reason) {
  size_t idlen = tx->client_id != NULL ? strlen(tx->client_id) : 0;
  if (!id_wire_ok || !mir_tls_client_id_valid(tx->client_id, idlen)) {
    *reason = cs_fmt("invalid client id: it must be 1 to %d bytes of [A-Za-z0-9._:@-]",
                     TRANTOR_CLIENT_ID_MAX);
    return TRANTOR__TX_STATUS__TX_INVALID;
  }
  if (client_id[0] != '\0' && strcmp(client_id, tx->client_id) != 0) {
    *reason = cs_fmt("client id differs from the %s (%s)",
                     id_from_cert ? "certificate's" : "stream's", client_id);
    return TRANTOR__TX_STATUS__TX_INVALID;
  }
  if (tx->data.len > max_tx_bytes) {
    *reason = cs_fmt("too large: %zu bytes, at most %" PRIu64, tx->data.len, max_tx_bytes);
    return TRANTOR__TX_STATUS__TX_TOO_LARGE;
  }
  if (client_id[0] == '\0') memcpy(client_id, tx->client_id, idlen + 1);
  return TRANTOR__TX_STATUS__TX_ACCEPTED;
}

size_t miri_cs_decode_budget(size_t len) {
  return CS_DECODE_FACTOR * len + CS_DECODE_SLACK;
}

/* protobuf-c's allocator for one decode, with a budget (malloc'ed memory, so the message can be
 * freed later with the default allocator). */
typedef struct cs_budget {
  size_t left;
  bool exhausted;
} cs_budget;

static void *cs_budget_alloc(void *data, size_t size) {
  cs_budget *b = data;
  if (size > b->left) {
    b->exhausted = true;
    return NULL;
  }
  b->left -= size;
  return malloc(size);
}

static void cs_budget_free(void *data, void *ptr) {
  (void)data;
  free(ptr);
}

/* Accepted transactions travel on in their canonical form: fields this version does not know
 * would otherwise ride along into batches, beyond what max_tx_bytes allows. */
static void cs_strip_unknown(Trantor__Tx *tx) {
  for (size_t i = 0; i < tx->base.n_unknown_fields; i++) free(tx->base.unknown_fields[i].data);
  free(tx->base.unknown_fields);
  tx->base.unknown_fields = NULL;
  tx->base.n_unknown_fields = 0;
}

/* Walks the top level of an encoded SubmitRequest, counting its transactions (field 2) and reading
 * its request_id (field 1; the last one wins, as in protobuf), so that a request of too many
 * transactions, or one that breaks off at its end, is refused before protobuf-c decodes it: that
 * costs 20 to 40 bytes of memory per byte of a message of small fields (an empty transaction
 * takes 2 bytes on the wire and about 80 once decoded). False if the walk does not get through,
 * which protobuf-c would refuse too (tests/replica/fuzz_client_ingress.c checks that they agree).
 */
static bool cs_count_txs(const uint8_t *p, size_t n, size_t *n_txs, uint64_t *request_id) {
  size_t pos = 0;
  *n_txs = 0;
  while (pos < n) {
    uint64_t key, v;
    if (!miri_cs_varint(p, n, &pos, &key)) return false;
    if (key == CS_KEY(1, CS_WT_VARINT)) {
      if (!miri_cs_varint(p, n, &pos, &v)) return false;
      *request_id = v;
      continue;
    }
    if (key == CS_KEY(2, CS_WT_LEN)) (*n_txs)++;
    if (!miri_cs_skip(p, n, &pos, key & 7)) return false;
  }
  return true;
}

/* True if every client_id (field 1) of the encoded trantor.Tx p[0..n) is a valid client id on
 * the wire, and there is one. The check runs on the wire bytes because decoding cuts a string at
 * a NUL ("a\0b" would become "a": another client's id) and does not check UTF-8; the alphabet
 * (ASCII, no NUL) rules out both. */
static bool cs_tx_id_on_wire_ok(const uint8_t *p, size_t n) {
  size_t pos = 0;
  bool seen = false;
  while (pos < n) {
    uint64_t key, len;
    if (!miri_cs_varint(p, n, &pos, &key)) return false;
    if (key == CS_KEY(1, CS_WT_LEN)) {
      if (!miri_cs_varint(p, n, &pos, &len) || len > n - pos ||
          !mir_tls_client_id_valid((const char *)p + pos, (size_t)len)) {
        return false;
      }
      pos += (size_t)len;
      seen = true;
      continue;
    }
    if (!miri_cs_skip(p, n, &pos, key & 7)) return false;
  }
  return seen;
}

/* Sets ok[k] for the k-th transaction (field 2) of the encoded SubmitRequest p[0..n), for the
 * first n_txs of them: is its client id valid on the wire? The request decoded, so the walk gets
 * through and meets the transactions in the decoded order. */
static void cs_ids_on_wire(const uint8_t *p, size_t n, bool *ok, size_t n_txs) {
  size_t pos = 0, k = 0;
  while (pos < n && k < n_txs) {
    uint64_t key, len;
    if (!miri_cs_varint(p, n, &pos, &key)) return;
    if (key == CS_KEY(2, CS_WT_LEN)) {
      if (!miri_cs_varint(p, n, &pos, &len) || len > n - pos) return;
      ok[k++] = cs_tx_id_on_wire_ok(p + pos, (size_t)len);
      pos += (size_t)len;
      continue;
    }
    if (!miri_cs_skip(p, n, &pos, key & 7)) return;
  }
}

/* Sets out for a malformed request and returns MIR_EPROTO with text as the detail. */
static mir_err cs_malformed(cs_submit_check *out, uint64_t request_id, const char *text) {
  out->request_id = request_id;
  return mir_error_set(MIR_EPROTO, "%s", text);
}

/* Refuses a request of more than max transactions. */
static mir_err cs_too_many(cs_submit_check *out, uint64_t request_id, size_t n, uint64_t max) {
  char text[128];
  snprintf(text, sizeof(text), "too many transactions: %zu, at most %" PRIu64 " per request", n,
           max);
  return cs_malformed(out, request_id, text);
}

mir_err miri_cs_submit_check(const uint8_t *bytes, size_t len,
                             const mir_replica_client_limits *limits, uint64_t max_tx_bytes,
                             char *client_id, bool id_from_cert, cs_submit_check *out) {
  memset(out, 0, sizeof(*out));
  size_t n_txs = 0;
  uint64_t request_id = 0;
  bool walked = cs_count_txs(bytes, len, &n_txs, &request_id);
  if (len > limits->max_request_bytes) {
    char text[128];
    snprintf(text, sizeof(text), "request too large: %zu bytes, at most %" PRIu64, len,
             limits->max_request_bytes);
    return cs_malformed(out, walked ? request_id : 0, text);
  }
  const char *bad = "malformed request: not a mir.api.SubmitRequest";
  if (!walked) return cs_malformed(out, 0, bad);
  if (n_txs > limits->max_txs_per_request) {
    return cs_too_many(out, request_id, n_txs, limits->max_txs_per_request);
  }
  cs_budget budget = {miri_cs_decode_budget(len), false};
  ProtobufCAllocator alloc = {cs_budget_alloc, cs_budget_free, &budget};
  Mir__Api__SubmitRequest *r = mir__api__submit_request__unpack(&alloc, len, bytes);
  if (r == NULL && budget.exhausted) {
    return cs_malformed(out, request_id, "malformed request: decodes to too much memory");
  }
  if (r == NULL) return cs_malformed(out, 0, bad);
  if (r->n_txs > limits->max_txs_per_request) { /* never when the walk got through */
    mir_err err = cs_too_many(out, r->request_id, r->n_txs, limits->max_txs_per_request);
    mir__api__submit_request__free_unpacked(r, NULL);
    return err;
  }
  cs_req *q = mir_xcalloc(1, sizeof(*q));
  q->request_id = r->request_id;
  q->n = r->n_txs;
  q->status = mir_xcalloc(q->n + 1, 1);
  q->reason = mir_xcalloc(q->n + 1, sizeof(*q->reason));
  q->fwd = mir_xcalloc(q->n + 1, sizeof(*q->fwd));
  bool *ids_ok = mir_xcalloc(q->n + 1, sizeof(*ids_ok));
  cs_ids_on_wire(bytes, len, ids_ok, q->n);
  for (size_t i = 0; i < r->n_txs; i++) {
    Trantor__TxStatus st =
        cs_check_tx(r->txs[i], ids_ok[i], max_tx_bytes, client_id, id_from_cert, &q->reason[i]);
    q->status[i] = (uint8_t)st;
    if (st == TRANTOR__TX_STATUS__TX_ACCEPTED) {
      cs_strip_unknown(r->txs[i]);
      q->fwd[q->n_fwd++] = i;
    }
  }
  free(ids_ok);
  out->req = r;
  out->q = q;
  out->request_id = r->request_id;
  return MIR_OK;
}

/* Moves the accepted transactions of a checked request (consumed) into a NewTransactions. */
static void cs_split(cs_submit_check *chk, cs_work *w) {
  Mir__Api__SubmitRequest *r = chk->req;
  cs_req *q = chk->q;
  w->rejected = q->n - q->n_fwd;
  if (q->n_fwd == 0) {
    w->resp = cs_response(q->request_id, q, NULL, 0);
    miri_cs_req_free(q);
    mir__api__submit_request__free_unpacked(r, NULL);
    return;
  }
  Trantor__NewTransactions *nt = mir_xmalloc(sizeof(*nt));
  trantor__new_transactions__init(nt);
  nt->txs = mir_xcalloc(q->n_fwd, sizeof(*nt->txs));
  size_t kept = 0;
  for (size_t i = 0, k = 0; i < r->n_txs; i++) {
    if (k < q->n_fwd && q->fwd[k] == i) {
      nt->txs[nt->n_txs++] = r->txs[i]; /* moved */
      q->fwd_bytes += r->txs[i]->data.len;
      k++;
    } else {
      r->txs[kept++] = r->txs[i];
    }
  }
  r->n_txs = kept;
  mir__api__submit_request__free_unpacked(r, NULL);
  w->req = q;
  w->nt = nt;
}

/* Decodes and checks one received message (bb borrowed). Runs on the Submit cq thread. */
static void cs_decode(cs_submit *c, grpc_byte_buffer *bb, cs_work *w) {
  const mir_client_service_config *cfg = &c->svc->cfg;
  grpc_slice s;
  /* gRPC already refused anything above miri_cs_recv_max; this bound only guards the copy. */
  if (!miri_cs_flatten(bb, miri_cs_recv_max(&cfg->limits), &s)) {
    w->malformed = true;
    w->resp = cs_response(0, NULL, "malformed request: unreadable", 0);
    return;
  }
  cs_submit_check chk;
  mir_err err = miri_cs_submit_check(GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), &cfg->limits,
                                     cfg->max_tx_bytes, c->client_id, c->id_from_cert, &chk);
  grpc_slice_unref(s);
  if (err != MIR_OK) {
    w->malformed = true;
    w->resp = cs_response(chk.request_id, NULL, mir_error_detail(), 0);
    return;
  }
  cs_split(&chk, w);
}

/* ---- the call (every function below: caller holds svc->mu) ---- */

static void cs_submit_free_locked(cs_submit *c) {
  mir_client_service *svc = c->svc;
  while (c->reqs != NULL) {
    cs_req *r = c->reqs;
    c->reqs = r->next;
    svc->bytes_at_mempool -= r->fwd_bytes;
    miri_cs_req_free(r);
  }
  while (c->out != NULL) {
    cs_out *o = c->out;
    c->out = o->next;
    grpc_slice_unref(o->slice);
    free(o);
  }
  if (c->accepted) {
    svc->slots[c->slot] = NULL;
    mir_gauge_add(svc->st.open_submit_streams, -1);
  }
  if (c->recv_buf != NULL) grpc_byte_buffer_destroy(c->recv_buf);
  grpc_metadata_array_destroy(&c->md);
  if (c->call != NULL) grpc_call_unref(c->call);
  free(c);
  miri_cs_live_dec(svc);
}

static void cs_submit_maybe_free(cs_submit *c) {
  if (c->pending == 0) cs_submit_free_locked(c);
}

static void cs_submit_batch(cs_submit *c, const grpc_op *ops, size_t n, cs_tag *tag) {
  c->pending++;
  if (grpc_call_start_batch(c->call, ops, n, tag, NULL) != GRPC_CALL_OK) {
    /* Only a programming error makes a batch fail to start: no completion will come. */
    c->pending--;
    c->failed = true;
  }
}

/* Drops the responses of a failed stream. */
static void cs_submit_drop_out(cs_submit *c) {
  while (c->out != NULL) {
    cs_out *o = c->out;
    c->out = o->next;
    grpc_slice_unref(o->slice);
    free(o);
    c->unanswered--;
  }
  c->out_tail = NULL;
}

/* A batch chosen under svc->mu, to be started once the mutex is released. */
typedef struct cs_start {
  grpc_op ops[2];
  size_t n;
  cs_tag *tag;
  grpc_metadata md; /* the status's trailing metadata (md.value owned when has_md) */
  bool has_md;
} cs_start;

/* Chooses the stream's next batch, if one is due, and marks it started: a read when fewer than
 * 2 * max_requests_in_flight requests are unanswered; else the next response when no send is in
 * flight; else the status, once a client that half-closed has every request answered. */
static bool cs_submit_next_batch(cs_submit *c, cs_start *b) {
  memset(b, 0, sizeof(*b));
  if (c->failed) cs_submit_drop_out(c);
  if (!c->recv_posted && !c->input_done && !c->failed && !c->status_sent &&
      c->unanswered < 2 * c->svc->cfg.limits.max_requests_in_flight) {
    b->ops[0].op = GRPC_OP_RECV_MESSAGE;
    b->ops[0].data.recv_message.recv_message = &c->recv_buf;
    b->n = 1;
    b->tag = &c->t_recv;
    c->recv_posted = true;
    return true;
  }
  if (!c->send_in_flight && c->out != NULL && !c->status_sent) {
    cs_out *o = c->out;
    c->out = o->next;
    if (c->out == NULL) c->out_tail = NULL;
    c->send_buf = grpc_raw_byte_buffer_create(&o->slice, 1);
    grpc_slice_unref(o->slice);
    free(o);
    if (!c->md_sent) b->ops[b->n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    b->ops[b->n].op = GRPC_OP_SEND_MESSAGE;
    b->ops[b->n++].data.send_message.send_message = c->send_buf;
    b->tag = &c->t_send;
    c->md_sent = true;
    c->send_in_flight = true;
    return true;
  }
  if (c->input_done && !c->failed && !c->status_sent && !c->send_in_flight && c->unanswered == 0) {
    if (!c->md_sent) b->ops[b->n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    /* How many requests the replica read: a client that sent more (a last request cut short,
     * which gRPC discards without a word to the server) can tell. gRPC takes its own reference
     * of the value and copies the key. */
    char count[24];
    snprintf(count, sizeof(count), "%" PRIu64, c->n_read);
    b->md.key = grpc_slice_from_static_string(CS_REQUESTS_MD);
    b->md.value = grpc_slice_from_copied_string(count);
    b->has_md = true;
    b->ops[b->n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    b->ops[b->n].data.send_status_from_server.status = GRPC_STATUS_OK;
    b->ops[b->n].data.send_status_from_server.trailing_metadata_count = 1;
    b->ops[b->n++].data.send_status_from_server.trailing_metadata = &b->md;
    b->tag = &c->t_status;
    c->md_sent = c->status_sent = true;
    return true;
  }
  return false;
}

/* Starts every batch that is due, each with svc->mu released: starting a batch may write to the
 * socket and take gRPC's own locks, and holding the service mutex across it made the Submit
 * thread, the dispatcher and the feeder wait on each other (the most waited-for lock of a loaded
 * replica). One thread at a time starts batches on a stream (`starting`), as gRPC requires of
 * calls to grpc_call_start_batch on one call; a thread that finds another starting leaves the
 * work to it, which looks again before it lets go. Caller holds svc->mu, which may be released
 * and retaken; the caller must call cs_submit_maybe_free afterwards. */
static void cs_submit_pump(cs_submit *c) {
  mir_client_service *svc = c->svc;
  cs_start b;
  while (!c->starting && cs_submit_next_batch(c, &b)) {
    c->starting = true;
    /* One count for the batch's completion, one for this thread while the mutex is released:
     * the completion may come, on another thread, before grpc_call_start_batch returns, and
     * must not free the stream under this thread. */
    c->pending += 2;
    mir_lock_release(&svc->mu);
    grpc_call_error e = grpc_call_start_batch(c->call, b.ops, b.n, b.tag, NULL);
    if (b.has_md) grpc_slice_unref(b.md.value);
    mir_lock_acquire(&svc->mu);
    c->pending--;
    c->starting = false;
    if (e != GRPC_CALL_OK) {
      /* Only a programming error makes a batch fail to start: no completion will come. */
      c->pending--;
      c->failed = true;
    }
  }
}

static void cs_submit_enqueue(cs_submit *c, cs_out *o) {
  if (c->out_tail != NULL) {
    c->out_tail->next = o;
  } else {
    c->out = o;
  }
  c->out_tail = o;
}

/* ---- completions ---- */

/* Answers a request that passed ingress at once, without forwarding it: every forwarded
 * transaction is TX_MEMPOOL_FULL ("busy: " what, then the back-pressure hint). Consumes w->req
 * and w->nt. Caller holds svc->mu. */
static void cs_submit_busy(cs_submit *c, cs_work *w, const char *what) {
  mir_client_service *svc = c->svc;
  cs_req *q = w->req;
  uint64_t hint = svc->cfg.limits.retry_after_ms;
  for (size_t k = 0; k < q->n_fwd; k++) {
    q->status[q->fwd[k]] = TRANTOR__TX_STATUS__TX_MEMPOOL_FULL;
    q->reason[q->fwd[k]] = cs_fmt("busy: %s; retry after %" PRIu64 " ms", what, hint);
  }
  mir_counter_inc(svc->st.requests_busy);
  mir_counter_add(svc->st.refused_busy, q->n_fwd);
  cs_out *o = cs_response(q->request_id, q, NULL, hint);
  miri_cs_req_free(q);
  protobuf_c_message_free_unpacked(&w->nt->base, NULL); /* owns the transactions moved in */
  w->req = NULL;
  w->nt = NULL;
  c->unanswered++;
  cs_submit_enqueue(c, o);
}

/* Hands the outcome of one decoded request to the stream (locked), and returns the event to push
 * (owned), if any. */
static mir_event *cs_submit_take(cs_submit *c, cs_work *w) {
  mir_client_service *svc = c->svc;
  mir_counter_inc(svc->st.requests);
  c->n_read++;
  mir_counter_add(svc->st.refused_ingress, w->rejected);
  if (w->malformed) {
    mir_counter_inc(svc->st.malformed);
    if (++c->malformed > CS_MALFORMED_MAX) {
      grpc_call_cancel_with_status(c->call, GRPC_STATUS_INVALID_ARGUMENT,
                                   "too many malformed requests", NULL);
      c->failed = true;
    }
  }
  if (w->resp != NULL) {
    c->unanswered++;
    cs_submit_enqueue(c, w->resp);
  }
  if (w->req == NULL) return NULL;
  const mir_replica_client_limits *l = &svc->cfg.limits;
  char what[96];
  if (c->at_mempool >= l->max_requests_in_flight) {
    snprintf(what, sizeof(what), "%zu requests of this stream await the mempool", c->at_mempool);
    cs_submit_busy(c, w, what);
    return NULL;
  }
  /* A request alone may exceed the budget (it is within max_request_bytes): it passes when
   * nothing else is in flight, so no request size is refused for good. */
  if (svc->bytes_at_mempool > 0 &&
      svc->bytes_at_mempool + w->req->fwd_bytes > l->max_bytes_in_flight) {
    snprintf(what, sizeof(what), "%" PRIu64 " bytes of client requests await the mempool",
             svc->bytes_at_mempool);
    cs_submit_busy(c, w, what);
    return NULL;
  }
  cs_req *q = w->req;
  svc->bytes_at_mempool += q->fwd_bytes;
  q->seq = c->next_seq++ & CS_SEQ_MASK;
  if (c->reqs_tail != NULL) {
    c->reqs_tail->next = q;
  } else {
    c->reqs = q;
  }
  c->reqs_tail = q;
  c->unanswered++;
  c->at_mempool++;
  uint64_t ctx = (uint64_t)c->slot | (uint64_t)q->seq << CS_SLOT_BITS |
                 (uint64_t)c->gen << (CS_SLOT_BITS + CS_SEQ_BITS);
  w->nt->origin = mir_xmalloc(sizeof(*w->nt->origin));
  mir__origin__init(w->nt->origin);
  w->nt->origin->module = mir_xstrdup(svc->module_id);
  w->nt->origin->context_id = ctx;
  return mir_event_new(svc->mempool_id, svc->module_id, &w->nt->base);
}

static void cs_submit_on_recv(cs_tag *t, bool ok) {
  cs_submit *c = t->self;
  mir_client_service *svc = c->svc;
  grpc_byte_buffer *bb = c->recv_buf;
  c->recv_buf = NULL;
  cs_work w = {0};
  if (bb != NULL) {
    cs_decode(c, bb, &w);
    grpc_byte_buffer_destroy(bb);
  }
  mir_lock_acquire(&svc->mu);
  c->recv_posted = false;
  c->pending--;
  mir_event *ev = NULL;
  if (bb == NULL) {
    c->input_done = true;
    if (!ok || grpc_call_failed_before_recv_message(c->call)) c->failed = true;
  } else {
    ev = cs_submit_take(c, &w);
  }
  c->pending++;      /* held while the event is pushed without the lock */
  cs_submit_pump(c); /* an answer given at once */
  mir_lock_release(&svc->mu);
  /* Blocks while the node's input is paused: this stream (and this cq) stops reading, which is
   * the backpressure clients feel. MIR_ESTOPPED only when the node stops; the event is freed. */
  if (ev != NULL) (void)mir_inbox_push_one(svc->inbox, ev);
  mir_lock_acquire(&svc->mu);
  c->pending--;
  cs_submit_pump(c);
  cs_submit_maybe_free(c);
  mir_lock_release(&svc->mu);
}

static void cs_submit_on_send(cs_tag *t, bool ok) {
  cs_submit *c = t->self;
  mir_client_service *svc = c->svc;
  mir_lock_acquire(&svc->mu);
  c->pending--;
  c->send_in_flight = false;
  grpc_byte_buffer_destroy(c->send_buf);
  c->send_buf = NULL;
  c->unanswered--;
  if (!ok) c->failed = true;
  cs_submit_pump(c);
  cs_submit_maybe_free(c);
  mir_lock_release(&svc->mu);
}

/* The status was sent, or the call closed. */
static void cs_submit_on_done(cs_tag *t, bool ok) {
  (void)ok;
  cs_submit *c = t->self;
  mir_client_service *svc = c->svc;
  mir_lock_acquire(&svc->mu);
  c->pending--;
  if (t == &c->t_close) {
    c->closed = true;
    if (c->cancelled) c->failed = true;
    cs_submit_pump(c); /* drops what a failed stream still holds */
  }
  cs_submit_maybe_free(c);
  mir_lock_release(&svc->mu);
}

/* Ends a stream that was not admitted with a status. Caller holds svc->mu. */
static void cs_submit_refuse(cs_submit *c, grpc_status_code code, const char *text) {
  grpc_slice details = grpc_slice_from_copied_string(text);
  grpc_op ops[3];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[1].data.send_status_from_server.status = code;
  ops[1].data.send_status_from_server.status_details = &details;
  ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[2].data.recv_close_on_server.cancelled = &c->cancelled;
  c->status_sent = true;
  cs_submit_batch(c, ops, 3, &c->t_status);
  grpc_slice_unref(details);
}

/* Takes a free slot for c, or refuses the stream. Caller holds svc->mu. */
static bool cs_submit_admit(cs_submit *c) {
  mir_client_service *svc = c->svc;
  for (uint32_t i = 0; i < svc->cfg.limits.max_submit_streams; i++) {
    if (svc->slots[i] == NULL) {
      svc->slots[i] = c;
      c->slot = i;
      c->gen = ++svc->next_gen & ((1u << 24) - 1);
      c->accepted = true;
      mir_counter_inc(svc->st.submit_streams);
      mir_gauge_add(svc->st.open_submit_streams, 1);
      return true;
    }
  }
  mir_counter_inc(svc->st.submit_refused);
  cs_submit_refuse(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many Submit streams open");
  return false;
}

static void cs_submit_on_new(cs_tag *t, bool ok) {
  cs_submit *c = t->self;
  mir_client_service *svc = c->svc;
  if (ok) miri_cs_submit_request(svc);
  /* With client certificates, the stream's client id is the certificate's from the start. */
  char why[256] = "";
  bool authenticated = true;
  if (ok && svc->client_ca != NULL) {
    authenticated =
        miri_cs_cert_identity(svc, c->call, c->client_id, sizeof(c->client_id), why, sizeof(why));
    c->id_from_cert = authenticated;
  }
  mir_lock_acquire(&svc->mu);
  if (!ok) { /* the server is shutting down */
    cs_submit_free_locked(c);
    mir_lock_release(&svc->mu);
    return;
  }
  if (!authenticated) {
    mir_counter_inc(svc->st.unauthenticated);
    char text[320];
    snprintf(text, sizeof(text), "client certificate refused: %s", why);
    cs_submit_refuse(c, GRPC_STATUS_UNAUTHENTICATED, text);
  } else if (cs_submit_admit(c)) {
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    cs_submit_batch(c, &op, 1, &c->t_close);
    cs_submit_pump(c);
  }
  cs_submit_maybe_free(c);
  mir_lock_release(&svc->mu);
}

void miri_cs_submit_request(mir_client_service *svc) {
  cs_submit *c = mir_xcalloc(1, sizeof(*c));
  c->svc = svc;
  grpc_metadata_array_init(&c->md);
  miri_cs_tag_init(&c->t_new, cs_submit_on_new, c);
  miri_cs_tag_init(&c->t_recv, cs_submit_on_recv, c);
  miri_cs_tag_init(&c->t_send, cs_submit_on_send, c);
  miri_cs_tag_init(&c->t_close, cs_submit_on_done, c);
  miri_cs_tag_init(&c->t_status, cs_submit_on_done, c);
  mir_lock_acquire(&svc->mu);
  grpc_call_error e = GRPC_CALL_ERROR;
  if (!svc->stopping) {
    e = grpc_server_request_registered_call(svc->server, svc->m_submit, &c->call, &c->deadline,
                                            &c->md, NULL, svc->cq_submit, svc->cq_submit,
                                            &c->t_new);
  }
  if (e == GRPC_CALL_OK) {
    svc->live++;
  }
  mir_lock_release(&svc->mu);
  if (e != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&c->md);
    free(c);
  }
}

/* ---- answers from the mempool (dispatcher thread) ---- */

/* Fills the forwarded transactions' statuses of q from acc (borrowed). */
static void cs_fill(mir_client_service *svc, cs_req *q, const Trantor__TxsAccepted *acc) {
  for (size_t k = 0; k < q->n_fwd; k++) {
    Trantor__TxStatus st =
        k < acc->n_status ? acc->status[k] : TRANTOR__TX_STATUS__TX_INVALID; /* never short */
    q->status[q->fwd[k]] = (uint8_t)st;
    if (st == TRANTOR__TX_STATUS__TX_ACCEPTED) {
      mir_counter_inc(svc->st.txs_accepted);
    } else {
      q->reason[q->fwd[k]] = cs_reason(svc, st);
      if ((unsigned)st < CS_TX_STATUS_KINDS) mir_counter_inc(svc->st.refused[st]);
    }
  }
}

void miri_cs_submit_answer(mir_client_service *svc, const Trantor__TxsAccepted *acc) {
  const Mir__Origin *o = acc->origin;
  if (o == NULL || o->module == NULL || strcmp(o->module, svc->module_id) != 0) return;
  uint32_t slot = (uint32_t)(o->context_id & ((1u << CS_SLOT_BITS) - 1));
  uint32_t seq = (uint32_t)(o->context_id >> CS_SLOT_BITS) & CS_SEQ_MASK;
  uint32_t gen = (uint32_t)(o->context_id >> (CS_SLOT_BITS + CS_SEQ_BITS));
  mir_lock_acquire(&svc->mu);
  cs_submit *c = slot < svc->cfg.limits.max_submit_streams ? svc->slots[slot] : NULL;
  cs_req *q = NULL, *prev = NULL;
  if (c != NULL && c->gen == gen) {
    for (q = c->reqs; q != NULL && q->seq != seq; q = q->next) prev = q;
  }
  if (q == NULL) { /* the stream ended meanwhile */
    mir_lock_release(&svc->mu);
    return;
  }
  if (prev != NULL) {
    prev->next = q->next;
  } else {
    c->reqs = q->next;
  }
  if (c->reqs_tail == q) c->reqs_tail = prev;
  c->at_mempool--;
  svc->bytes_at_mempool -= q->fwd_bytes;
  c->pending++; /* held while the response is made without the lock */
  mir_lock_release(&svc->mu);
  cs_fill(svc, q, acc);
  cs_out *out = cs_response(q->request_id, q, NULL, svc->cfg.limits.retry_after_ms);
  miri_cs_req_free(q);
  mir_lock_acquire(&svc->mu);
  c->pending--;
  cs_submit_enqueue(c, out); /* unanswered stays: the request became a response */
  cs_submit_pump(c);
  cs_submit_maybe_free(c);
  mir_lock_release(&svc->mu);
}
