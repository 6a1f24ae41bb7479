/*
 * Followers of the ordered log: the commit tracker (learns which of this client's transactions
 * are committed) and application subscriptions. Each follower reads Subscribe streams from
 * `target` replicas (2f+1 by default) into its agreement table (votes.h) and acts on each entry
 * once f+1 of them sent identical content: the tracker resolves tickets, a subscription queues
 * the entry for its callback.
 *
 * Validation before a delivery can vote: it must decode and pass wire.h's checks, and its sn must
 * not go backwards on its stream (the first one not below the requested from_sn). A violation
 * cancels the stream (reopened after a backoff). A delivery whose content differs from what f+1
 * replicas agreed on at its sn (or from the replica's own earlier vote) is counted
 * (conflicting_votes) and has no effect.
 *
 * Flow control: a RECV_MESSAGE is posted only while the replica has room in the table
 * (miri_cl_votes_room), so a replica that runs ahead of agreement is paused by gRPC flow
 * control instead of filling memory; agreement re-posts the reads.
 *
 * Fail-over and stalls: a member whose stream failed MIRI_CL_FAILS_BEFORE_FAILOVER times in a row
 * counts as down, and another replica joins while fewer than `target` are up. If deliveries wait
 * at or beyond the frontier without agreement for stall_ms (for example f replicas are silent or
 * lie and one correct replica is slow), one more replica joins, up to all n.
 *
 * A replica that ends a stream with OUT_OF_RANGE no longer retains the requested sn; once so many
 * say so that the others cannot make a quorum (n - f with TRUST_QUORUM, all n with TRUST_ONE), a
 * subscription ends with MIR_CLIENT_ENOTFOUND. Not when it adds
 * the trailing metadata "mir-range: ahead": then the sn lies too far beyond that replica's log
 * (it lags, or the sn is not there yet), which is a failure like any other, retried with backoff.
 *
 * Every function here runs with the client lock held, except miri_cl_follower_deliver.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

static void follow_on_start(miri_cl_tag *tag, bool ok);
static void follow_on_recv(miri_cl_tag *tag, bool ok);
static void follow_on_status(miri_cl_tag *tag, bool ok);

void miri_cl_follower_unref(miri_cl_follower *f) {
  if (--f->refs > 0) return;
  mir_client *c = f->c;
  miri_cl_follower **p = &c->followers;
  while (*p != NULL && *p != f) p = &(*p)->next;
  if (*p == f) *p = f->next;
  miri_cl_votes_fini(&f->votes);
  free(f->filter_id);
  free(f);
}

static void follow_maybe_free(miri_cl_fstream *s) {
  if (s->pending > 0 || !s->done) return;
  miri_cl_follower *f = s->f;
  if (s->req_bb != NULL) grpc_byte_buffer_destroy(s->req_bb);
  if (s->recv_bb != NULL) grpc_byte_buffer_destroy(s->recv_bb);
  grpc_call_unref(s->call);
  miri_cl_callst_fini(&s->st);
  free(s);
  miri_cl_call_gone(f->c);
  miri_cl_follower_unref(f);
}

static void follow_post_recv(miri_cl_fstream *s) {
  if (s->reading || s->done) return;
  s->reading = true;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->recv_bb;
  miri_cl_start_batch(s->call, &op, 1, &s->t_recv, &s->pending);
}

static void follow_open(miri_cl_follower *f, uint32_t r, int64_t now_ns) {
  mir_client *c = f->c;
  miri_cl_fmember *m = &f->m[r];
  miri_cl_fstream *s = calloc(1, sizeof(*s));
  Mir__Api__SubscribeRequest req = MIR__API__SUBSCRIBE_REQUEST__INIT;
  req.from_sn = miri_cl_votes_resume_sn(&f->votes, r);
  req.client_id = f->filter_id != NULL ? f->filter_id : (char *)"";
  if (s != NULL) s->req_bb = miri_cl_pack(&req.base);
  if (s != NULL && s->req_bb != NULL)
    s->call = miri_cl_call_new(&c->rep[r], MIRI_CL_METHOD_SUBSCRIBE, 0);
  if (s == NULL || s->call == NULL) {
    if (s != NULL && s->req_bb != NULL) grpc_byte_buffer_destroy(s->req_bb);
    free(s);
    m->retry_ns = now_ns + (int64_t)c->opts.reconnect_max_ms * 1000000;
    return;
  }
  if (m->failures > 0) c->stats.reconnects++;
  s->f = f;
  s->replica = r;
  s->min_sn = req.from_sn;
  miri_cl_callst_init(&s->st);
  s->t_start = (miri_cl_tag){.fn = follow_on_start, .self = s};
  s->t_recv = (miri_cl_tag){.fn = follow_on_recv, .self = s};
  s->t_status = (miri_cl_tag){.fn = follow_on_status, .self = s};
  grpc_op ops[4];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->req_bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->st.imd;
  miri_cl_start_batch(s->call, ops, 4, &s->t_start, &s->pending);
  miri_cl_start_recv_status(s->call, &s->st, &s->t_status, &s->pending);
  f->refs++;
  m->s = s;
  m->retry_ns = 0;
  if (miri_cl_votes_room(&f->votes, r)) follow_post_recv(s);
}

static void follow_on_start(miri_cl_tag *tag, bool ok) {
  miri_cl_fstream *s = tag->self;
  (void)ok; /* a failed start shows up in the status */
  s->pending--;
  follow_maybe_free(s);
}

/* The tracker's part: resolve this client's tickets named by an agreed entry. */
static void follow_commit(miri_cl_follower *f, const miri_cl_blob *b) {
  mir_client *c = f->c;
  miri_cl_entry_view v;
  if (miri_cl_entry_view_init(&v, b->data, b->len) != 0) {
    /* Canonical bytes decode unless memory runs out; the tickets then time out for the caller. */
    return;
  }
  for (size_t i = 0; i < v.entry.n_txs; i++) {
    const mir_client_tx *tx = &v.entry.txs[i];
    if (strcmp(tx->client_id, c->client_id) != 0) continue;
    miri_cl_deferred d = {.kind = MIRI_CL_D_DONE};
    if (!miri_cl_tickets_commit(&c->tickets, tx->tx_no, tx->data, tx->len, v.entry.sn, &d.done)) {
      continue;
    }
    if (d.done.result.status == MIR_CLIENT_OK) {
      c->stats.committed++;
    } else {
      c->stats.rejected++;
    }
    miri_cl_defer(c, &d);
  }
  miri_cl_entry_view_fini(&v);
}

/* Hands out every agreed entry at the frontier, then lets paused streams read again. */
static void follow_drain(miri_cl_follower *f) {
  mir_client *c = f->c;
  miri_cl_blob *b;
  while ((b = miri_cl_votes_pop(&f->votes)) != NULL) {
    f->waiting_since_ns = 0;
    if (f->commits) {
      follow_commit(f, b);
    } else if (!f->stopped && !f->ended) {
      miri_cl_deferred d = {.kind = MIRI_CL_D_ENTRY, .f = f, .blob = b};
      f->refs++;
      if (miri_cl_defer(c, &d)) continue; /* the queue owns the reference now */
      f->refs--;
    }
    miri_cl_blob_unref(b);
  }
  c->stats.conflicting_votes += f->votes.dissent - f->dissent_counted;
  f->dissent_counted = f->votes.dissent;
  if (f->commits) c->stats.followed_sn = f->votes.frontier;
  for (uint32_t r = 0; r < c->n; r++) {
    miri_cl_fstream *s = f->m[r].s;
    if (s != NULL && !s->done && miri_cl_votes_room(&f->votes, r)) follow_post_recv(s);
  }
}

/* Validates one delivery and records its vote; false when the stream must be dropped. */
static bool follow_take(miri_cl_fstream *s, const uint8_t *buf, size_t len) {
  miri_cl_follower *f = s->f;
  mir_client *c = f->c;
  uint64_t sn = 0;
  uint8_t *canon = NULL;
  size_t canon_len = 0;
  const char *why = NULL;
  int rc = miri_cl_delivery_canon(buf, len, f->filter_id, &sn, &canon, &canon_len, &why);
  if (rc != 0) {
    if (rc == -1) c->stats.bad_messages++;
    return false;
  }
  if (sn < s->min_sn) {
    free(canon);
    c->stats.bad_messages++;
    return false;
  }
  s->min_sn = sn + 1;
  miri_cl_vote_result vr = miri_cl_votes_add(&f->votes, s->replica, sn, canon, canon_len);
  free(canon);
  if (vr == MIRI_CL_VOTE_CONFLICT) c->stats.conflicting_votes++;
  if (vr == MIRI_CL_VOTE_NOMEM) return false;
  s->got_any = true;
  f->m[s->replica].failures = 0;
  f->m[s->replica].backoff_ms = 0;
  return true;
}

static void follow_on_recv(miri_cl_tag *tag, bool ok) {
  miri_cl_fstream *s = tag->self;
  (void)ok;
  s->pending--;
  s->reading = false;
  if (s->recv_bb == NULL) { /* the stream ended; its status follows */
    follow_maybe_free(s);
    return;
  }
  grpc_slice sl;
  bool good = miri_cl_flatten(s->recv_bb, &sl);
  grpc_byte_buffer_destroy(s->recv_bb);
  s->recv_bb = NULL;
  if (good) {
    good = follow_take(s, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl));
    grpc_slice_unref(sl);
  }
  if (!good) {
    grpc_call_cancel(s->call, NULL);
  } else {
    follow_drain(s->f);
    if (!s->done && miri_cl_votes_room(&s->f->votes, s->replica)) follow_post_recv(s);
  }
  follow_maybe_free(s);
}

/* Adds one replica outside the member set, if any. Returns whether it did. */
static bool follow_add_member(miri_cl_follower *f, int64_t now_ns) {
  mir_client *c = f->c;
  for (uint32_t k = 0; k < c->n; k++) {
    uint32_t r = (c->start_index + k) % c->n;
    if (f->m[r].member) continue;
    f->m[r].member = true;
    f->m[r].retry_ns = now_ns;
    c->stats.failovers++;
    miri_cl_timer_poke(c, now_ns);
    return true;
  }
  return false;
}

static void follow_failover(miri_cl_follower *f, int64_t now_ns) {
  uint32_t up = 0;
  for (uint32_t r = 0; r < f->c->n; r++) {
    const miri_cl_fmember *m = &f->m[r];
    if (m->member && !m->gone && m->failures < MIRI_CL_FAILS_BEFORE_FAILOVER) up++;
  }
  while (up < f->target && follow_add_member(f, now_ns)) up++;
}

/* Ends a subscription on its own (mu held): final callback with status, streams stopped. */
static void follow_end(miri_cl_follower *f, int status) {
  if (f->ended || f->commits) return;
  f->ended = true;
  if (!f->stopped) {
    miri_cl_deferred d = {.kind = MIRI_CL_D_END, .f = f, .status = status};
    f->refs++;
    if (!miri_cl_defer(f->c, &d)) f->refs--;
  }
  miri_cl_follower_cancel(f);
}

static void follow_on_status(miri_cl_tag *tag, bool ok) {
  miri_cl_fstream *s = tag->self;
  miri_cl_follower *f = s->f;
  mir_client *c = f->c;
  (void)ok;
  s->pending--;
  s->done = true;
  miri_cl_fmember *m = &f->m[s->replica];
  if (m->s == s) m->s = NULL;
  if (!c->closing && !f->stopped && !f->ended) {
    int64_t now = miri_cl_now_ns();
    if (s->st.status == GRPC_STATUS_OUT_OF_RANGE && !s->got_any &&
        !miri_cl_callst_md_is(&s->st, MIRI_CL_RANGE_MD, "ahead")) {
      m->gone = true;
      uint32_t gone = 0;
      for (uint32_t r = 0; r < c->n; r++) gone += f->m[r].gone ? 1u : 0u;
      /* Ended only once the replicas left cannot make a quorum: a correct replica brought
       * forward by a state transfer holds nothing below its checkpoint while its peers still
       * do, so f + 1 replicas without the sn do not mean it is gone. */
      if (gone > c->n - c->quorum) follow_end(f, MIR_CLIENT_ENOTFOUND);
    } else {
      m->failures++;
      m->backoff_ms = miri_cl_backoff_next(c, m->backoff_ms);
      m->retry_ns = now + (int64_t)m->backoff_ms * 1000000;
      miri_cl_timer_poke(c, m->retry_ns);
    }
    follow_failover(f, now);
  }
  follow_maybe_free(s);
}

miri_cl_follower *miri_cl_follower_new(mir_client *c, bool commits, uint64_t from_sn,
                                       mir_client_entry_cb cb, void *user_data) {
  miri_cl_follower *f = calloc(1, sizeof(*f));
  if (f == NULL) return NULL;
  f->c = c;
  f->commits = commits;
  f->cb = cb;
  f->user_data = user_data;
  f->target = c->follow_k;
  f->refs = 1;
  f->attached = true;
  if ((commits && (f->filter_id = strdup(c->client_id)) == NULL) ||
      miri_cl_votes_init(&f->votes, c->n, c->quorum, MIRI_CL_FOLLOW_WINDOW, MIRI_CL_FOLLOW_BYTES,
                         from_sn) != 0) {
    miri_cl_votes_fini(&f->votes);
    free(f->filter_id);
    free(f);
    return NULL;
  }
  f->next = c->followers;
  c->followers = f;
  int64_t now = miri_cl_now_ns();
  for (uint32_t k = 0; k < f->target; k++) {
    uint32_t r = (c->start_index + k) % c->n;
    f->m[r].member = true;
    follow_open(f, r, now);
  }
  return f;
}

/* For the tracker, a transaction unresolved for stall_ns also counts as waiting: followed
 * replicas that send nothing at all (so no vote waits) must not hide commits for ever. */
static bool follow_tracker_waiting(const miri_cl_follower *f, int64_t now_ns, int64_t stall_ns) {
  const miri_cl_tickets *t = &f->c->tickets;
  if (!f->commits || t->unresolved == 0) return false;
  const miri_cl_ticket *oldest = &t->slots[t->oldest % t->cap];
  return oldest->state == MIRI_CL_T_PENDING && now_ns - oldest->submit_ns >= stall_ns;
}

int64_t miri_cl_follower_tick(miri_cl_follower *f, int64_t now_ns) {
  mir_client *c = f->c;
  if (f->stopped || f->ended) return INT64_MAX;
  int64_t next = INT64_MAX;
  for (uint32_t r = 0; r < c->n; r++) {
    miri_cl_fmember *m = &f->m[r];
    if (!m->member || m->gone || m->s != NULL) continue;
    if (m->retry_ns <= now_ns) follow_open(f, r, now_ns);
    if (m->s == NULL && m->retry_ns < next) next = m->retry_ns;
  }
  int64_t stall_ns = (int64_t)c->opts.stall_ms * 1000000;
  if (!miri_cl_votes_waiting(&f->votes) && !follow_tracker_waiting(f, now_ns, stall_ns)) {
    f->waiting_since_ns = 0;
    return next;
  }
  if (f->waiting_since_ns == 0) f->waiting_since_ns = now_ns;
  if (now_ns - f->waiting_since_ns >= stall_ns) {
    follow_add_member(f, now_ns);
    f->waiting_since_ns = now_ns;
  }
  int64_t stall_at = f->waiting_since_ns + stall_ns;
  return stall_at < next ? stall_at : next;
}

void miri_cl_follower_cancel(miri_cl_follower *f) {
  for (uint32_t r = 0; r < f->c->n; r++) {
    miri_cl_fstream *s = f->m[r].s;
    if (s != NULL && !s->done) grpc_call_cancel(s->call, NULL);
  }
}

bool miri_cl_follower_deliver(miri_cl_follower *f, const miri_cl_deferred *d) {
  if (d->kind == MIRI_CL_D_END) {
    f->cb(f, d->status, NULL, f->user_data);
    return true;
  }
  miri_cl_entry_view v;
  if (miri_cl_entry_view_init(&v, d->blob->data, d->blob->len) != 0) {
    /* Skipping the entry would break "every entry exactly once": end the subscription. */
    f->cb(f, MIR_CLIENT_ENOMEM, NULL, f->user_data);
    return false;
  }
  f->cb(f, MIR_CLIENT_OK, &v.entry, f->user_data);
  miri_cl_entry_view_fini(&v);
  return true;
}

void miri_cl_follower_fail(miri_cl_follower *f) {
  f->ended = true;
  miri_cl_follower_cancel(f);
}
