/*
 * Subscribe streams and the feeder thread (client_service.h, "Subscribe").
 *
 * A subscriber is a cursor (next_sn) into the ordered log and at most one SEND_MESSAGE in flight.
 * When a send completes, the next delivery is read from the log and sent at once (hinted with
 * GRPC_WRITE_BUFFER_HINT when more are already there, so bursts leave in few writes); when the
 * subscriber has caught up it waits, and the feeder thread, woken by the log's listener, sends it
 * the next one. The initial metadata travels alone, so no hinted message ever shares its batch
 * (the gRPC guide's pitfall P4).
 *
 * Reading the log and starting the send happen without the service mutex (the read may touch
 * the disk, the start may write to the socket): the subscriber is marked `reading` and held
 * (pending + 1) meanwhile, so no other thread sends on it and it is not freed. A subscriber whose
 * send has not completed for subscriber_stall_ms is cancelled with RESOURCE_EXHAUSTED; one whose
 * cursor fell out of the retention window with OUT_OF_RANGE.
 *
 * A subscriber that names a client id gets each entry with that client's transactions only (the
 * SDK's commit trackers do), cut out of the encoded entry without decoding it (below).
 *
 * Admission (cs_sub_admit) bounds what a subscriber may ask for and how many one client may hold:
 * a from_sn further than subscribe_ahead_max beyond the log is refused, because such a
 * subscriber would hold a slot while it waits for an sn that may never come (the stall rule only
 * cuts subscribers that do not read what is sent); and within max_subscribers, one connection and
 * one client id each hold at most their own limit, so that no single client takes every slot.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/support/alloc.h>

#include "client_internal.h"
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/log.h"

#define CS_FEED_TICK_MS 250

static void cs_sub_on_new(cs_tag *t, bool ok);
static void cs_sub_on_send(cs_tag *t, bool ok);
static void cs_sub_on_done(cs_tag *t, bool ok);

/* ---- the call (every function below: caller holds svc->mu) ---- */

static void cs_sub_unlist(cs_sub *s) {
  mir_client_service *svc = s->svc;
  if (!s->listed) return;
  if (s->prev != NULL) {
    s->prev->next = s->next;
  } else {
    svc->subs = s->next;
  }
  if (s->next != NULL) s->next->prev = s->prev;
  s->listed = false;
  svc->n_subs--;
  mir_gauge_add(svc->st.open_subscribers, -1);
}

static void cs_sub_maybe_free(cs_sub *s) {
  if (s->pending > 0) return;
  mir_client_service *svc = s->svc;
  cs_sub_unlist(s);
  if (s->req_buf != NULL) grpc_byte_buffer_destroy(s->req_buf);
  if (s->send_buf != NULL) grpc_byte_buffer_destroy(s->send_buf);
  grpc_metadata_array_destroy(&s->md);
  if (s->call != NULL) grpc_call_unref(s->call);
  free(s);
  miri_cs_live_dec(svc);
}

static void cs_sub_batch(cs_sub *s, const grpc_op *ops, size_t n, cs_tag *tag) {
  s->pending++;
  if (grpc_call_start_batch(s->call, ops, n, tag, NULL) != GRPC_CALL_OK) {
    s->pending--; /* a programming error: no completion will come */
    s->ended = true;
  }
}

/* Ends a subscriber that has not been served yet with a status; range (may be NULL) is the value
 * of the trailing metadata CS_RANGE_MD ("below" or "ahead", static). gRPC takes its own
 * references of the details and copies the metadata. */
static void cs_sub_refuse(cs_sub *s, grpc_status_code code, const char *text, const char *range) {
  grpc_slice details = grpc_slice_from_copied_string(text);
  grpc_metadata md;
  memset(&md, 0, sizeof(md));
  md.key = grpc_slice_from_static_string(CS_RANGE_MD);
  md.value = grpc_slice_from_static_string(range != NULL ? range : "");
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[1].data.send_status_from_server.status = code;
  ops[1].data.send_status_from_server.status_details = &details;
  ops[1].data.send_status_from_server.trailing_metadata_count = range != NULL ? 1 : 0;
  ops[1].data.send_status_from_server.trailing_metadata = range != NULL ? &md : NULL;
  s->ended = true;
  mir_counter_inc(s->svc->st.subscribers_refused);
  cs_sub_batch(s, ops, 2, &s->t_md);
  grpc_slice_unref(details);
}

/* Ends a running subscriber: its send in flight (if any) fails and the call closes. */
static void cs_sub_cut(cs_sub *s, grpc_status_code code, const char *text) {
  if (s->ended) return;
  s->ended = true;
  mir_counter_inc(s->svc->st.subscribers_cut);
  grpc_call_cancel_with_status(s->call, code, text, NULL);
  mir_log(MIR_LOG_INFO, CS_LOG, "%s: subscriber at sn %" PRIu64 " ended: %s", s->svc->own_id,
          s->next_sn, text);
}

/* ---- the client-id filter, on the wire encoding ----
 *
 * A filtered entry is the stored Delivery with the other clients' transactions (field 3) cut out:
 * sn, epoch and log_hash stay those of the whole entry, so subscribers can still compare entries
 * across replicas. It works on the protobuf encoding in place, without decoding: decoding and
 * re-encoding every entry for every filtering subscriber cost the replicas more CPU than it saved
 * the clients (docs/PERFORMANCE.md, "mir-bench"). The bytes were written by this replica, but the
 * walk still checks every length, so a damaged store ends the stream rather than the process. */

bool miri_cs_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 64 && *pos < n; shift += 7) {
    uint8_t b = p[(*pos)++];
    x |= (uint64_t)(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = x;
      return true;
    }
  }
  return false;
}

bool miri_cs_skip(const uint8_t *p, size_t n, size_t *pos, uint64_t wt) {
  uint64_t v;
  switch (wt) {
    case CS_WT_VARINT:
      return miri_cs_varint(p, n, pos, &v);
    case CS_WT_I64:
    case CS_WT_I32: {
      size_t w = wt == CS_WT_I64 ? 8 : 4;
      if (n - *pos < w) return false;
      *pos += w;
      return true;
    }
    case CS_WT_LEN:
      if (!miri_cs_varint(p, n, pos, &v) || v > n - *pos) return false;
      *pos += (size_t)v;
      return true;
    default:
      return false;
  }
}

/* True if the encoded trantor.Tx p[0..n) has client_id (field 1) id[0..id_len). */
static bool cs_tx_is_of(const uint8_t *p, size_t n, const char *id, size_t id_len) {
  size_t pos = 0;
  while (pos < n) {
    uint64_t key, len;
    if (!miri_cs_varint(p, n, &pos, &key)) return false;
    if (key == CS_KEY(1, CS_WT_LEN)) {
      if (!miri_cs_varint(p, n, &pos, &len) || len > n - pos) return false;
      return len == id_len && memcmp(p + pos, id, id_len) == 0;
    }
    if (!miri_cs_skip(p, n, &pos, key & 7)) return false;
  }
  return false;
}

/* Keeps only client_id's transactions in the encoded Delivery bytes[0..*len), in place. */
static mir_err cs_sub_filter(const char *client_id, uint8_t *bytes, size_t *len) {
  size_t n = *len, r = 0, w = 0, id_len = strlen(client_id);
  while (r < n) {
    size_t start = r;
    uint64_t key, tx_len;
    bool keep = true, ok = miri_cs_varint(bytes, n, &r, &key);
    if (ok && key == CS_KEY(3, CS_WT_LEN)) {
      ok = miri_cs_varint(bytes, n, &r, &tx_len) && tx_len <= n - r;
      if (ok) {
        keep = cs_tx_is_of(bytes + r, (size_t)tx_len, client_id, id_len);
        r += (size_t)tx_len;
      }
    } else if (ok) {
      ok = miri_cs_skip(bytes, n, &r, key & 7);
    }
    if (!ok) return mir_error_set(MIR_EPROTO, "stored delivery does not decode");
    if (keep) {
      memmove(bytes + w, bytes + start, r - start);
      w += r - start;
    }
  }
  *len = w;
  return MIR_OK;
}

/* ---- sending ---- */

/* Sends the subscriber's deliveries while it is free and the log has them: each entry is read
 * from the log and its send started with svc->mu released (starting a batch may write to the
 * socket and take gRPC's own locks). `reading` marks the one thread that does this for the
 * subscriber, which is also what serialises its batches; a send that completes meanwhile leaves
 * the next one to that thread, which looks again before it lets go. Caller holds svc->mu, which
 * may be released and retaken; the caller must call cs_sub_maybe_free afterwards. */
static void cs_sub_try_send(cs_sub *s) {
  mir_client_service *svc = s->svc;
  while (!s->send_in_flight && !s->reading && !s->ended && s->next_sn < svc->log_next_sn) {
    uint64_t sn = s->next_sn;
    s->reading = true;
    s->pending++; /* this thread's, while it reads and starts the send without the mutex */
    mir_lock_release(&svc->mu);
    uint8_t *bytes = NULL;
    size_t len = 0;
    mir_err err = mir_olog_read(svc->cfg.log, sn, &bytes, &len);
    if (err == MIR_OK && s->client_id[0] != '\0') err = cs_sub_filter(s->client_id, bytes, &len);
    char why[200] = "";
    if (err != MIR_OK && err != MIR_EEOF) snprintf(why, sizeof(why), "%s", mir_error_detail());
    mir_lock_acquire(&svc->mu);
    if (err != MIR_OK || s->ended) {
      s->reading = false;
      s->pending--;
      free(bytes);
      if (err == MIR_ENOTFOUND) cs_sub_cut(s, GRPC_STATUS_OUT_OF_RANGE, why);
      if (err != MIR_OK && err != MIR_EEOF && err != MIR_ENOTFOUND) {
        cs_sub_cut(s, GRPC_STATUS_INTERNAL, why);
      }
      return;
    }
    grpc_slice sl = grpc_slice_new(bytes, len, free); /* takes the bytes */
    s->send_buf = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->send_buf;
    if (sn + 1 < svc->log_next_sn) op.flags = GRPC_WRITE_BUFFER_HINT; /* more follow at once */
    s->next_sn = sn + 1;
    s->send_in_flight = true;
    mir_counter_inc(svc->st.deliveries);
    /* The send's completion gets a count of its own: it may come, on another thread, before
     * grpc_call_start_batch returns, and must not free the subscriber under this thread, which
     * keeps the read's count until it holds the mutex again. */
    s->pending++;
    mir_lock_release(&svc->mu);
    grpc_call_error e = grpc_call_start_batch(s->call, &op, 1, &s->t_send, NULL);
    mir_lock_acquire(&svc->mu);
    s->reading = false;
    s->pending--;
    if (e != GRPC_CALL_OK) {
      s->pending--; /* a programming error: no completion will come */
      s->send_in_flight = false;
      s->ended = true;
    }
  }
}

/* True if every client_id (field 2) of the encoded SubscribeRequest p[0..n) is empty or a
 * valid client id on the wire (decoding would cut it at a NUL and does not check UTF-8). */
static bool cs_sub_id_on_wire_ok(const uint8_t *p, size_t n) {
  size_t pos = 0;
  while (pos < n) {
    uint64_t key, len;
    if (!miri_cs_varint(p, n, &pos, &key)) return false;
    if (key == CS_KEY(2, CS_WT_LEN)) {
      if (!miri_cs_varint(p, n, &pos, &len) || len > n - pos ||
          (len > 0 && !mir_tls_client_id_valid((const char *)p + pos, (size_t)len))) {
        return false;
      }
      pos += (size_t)len;
      continue;
    }
    if (!miri_cs_skip(p, n, &pos, key & 7)) return false;
  }
  return true;
}

mir_err miri_cs_subscribe_check(const uint8_t *bytes, size_t len,
                                const mir_replica_client_limits *limits, uint64_t *from_sn,
                                char *client_id) {
  if (len > limits->max_request_bytes) {
    return mir_error_set(MIR_EPROTO, "request too large: %zu bytes, at most %" PRIu64, len,
                         limits->max_request_bytes);
  }
  Mir__Api__SubscribeRequest *req = mir__api__subscribe_request__unpack(NULL, len, bytes);
  if (req == NULL) {
    return mir_error_set(MIR_EPROTO, "malformed request: not a SubscribeRequest");
  }
  size_t id_len = req->client_id != NULL ? strlen(req->client_id) : 0;
  if (!cs_sub_id_on_wire_ok(bytes, len) || id_len > TRANTOR_CLIENT_ID_MAX) {
    mir__api__subscribe_request__free_unpacked(req, NULL);
    return mir_error_set(MIR_EPROTO,
                         "invalid client_id: it must be empty or 1 to %d bytes of "
                         "[A-Za-z0-9._:@-]",
                         TRANTOR_CLIENT_ID_MAX);
  }
  *from_sn = req->from_sn;
  memcpy(client_id, id_len > 0 ? req->client_id : "", id_len + 1);
  mir__api__subscribe_request__free_unpacked(req, NULL);
  return MIR_OK;
}

/* Counts the listed subscribers over connection peer, and those of client key (if not empty). */
static void cs_sub_count(const mir_client_service *svc, const char *peer, const char *key,
                         size_t *by_peer, size_t *by_key) {
  *by_peer = *by_key = 0;
  for (const cs_sub *o = svc->subs; o != NULL; o = o->next) {
    if (strcmp(o->peer, peer) == 0) (*by_peer)++;
    if (key[0] != '\0' && strcmp(o->key_id, key) == 0) (*by_key)++;
  }
}

/* Validates the request and lists the subscriber, or refuses it. s->key_id holds the
 * certificate's client id if there is one. */
static void cs_sub_admit(cs_sub *s) {
  mir_client_service *svc = s->svc;
  const mir_replica_client_limits *l = &svc->cfg.limits;
  grpc_slice sl;
  mir_err err = mir_error_set(MIR_EPROTO, "malformed request: not a SubscribeRequest");
  if (miri_cs_flatten(s->req_buf, miri_cs_recv_max(l), &sl)) {
    err = miri_cs_subscribe_check(GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl), l, &s->next_sn,
                                  s->client_id);
    grpc_slice_unref(sl);
  }
  if (err != MIR_OK) {
    cs_sub_refuse(s, GRPC_STATUS_INVALID_ARGUMENT, mir_error_detail(), NULL);
    return;
  }
  if (s->key_id[0] == '\0') memcpy(s->key_id, s->client_id, sizeof(s->key_id));
  mir_olog_status st;
  mir_olog_get_status(svc->cfg.log, &st);
  char text[200];
  if (s->next_sn < st.retained_from_sn) {
    snprintf(text, sizeof(text), "sn %" PRIu64 " is no longer retained (oldest: %" PRIu64 ")",
             s->next_sn, st.retained_from_sn);
    cs_sub_refuse(s, GRPC_STATUS_OUT_OF_RANGE, text, "below");
    return;
  }
  if (s->next_sn > st.next_sn && s->next_sn - st.next_sn > l->subscribe_ahead_max) {
    snprintf(text, sizeof(text),
             "sn %" PRIu64 " is more than %" PRIu64 " beyond the log (next sn: %" PRIu64 ")",
             s->next_sn, l->subscribe_ahead_max, st.next_sn);
    cs_sub_refuse(s, GRPC_STATUS_OUT_OF_RANGE, text, "ahead");
    return;
  }
  size_t by_peer, by_key;
  cs_sub_count(svc, s->peer, s->key_id, &by_peer, &by_key);
  if (svc->n_subs >= l->max_subscribers) {
    snprintf(text, sizeof(text), "too many subscribers (at most %" PRIu64 ")", l->max_subscribers);
  } else if (by_peer >= l->max_subscribers_per_connection) {
    snprintf(text, sizeof(text), "too many subscribers over this connection (at most %" PRIu64 ")",
             l->max_subscribers_per_connection);
  } else if (by_key >= l->max_subscribers_per_client) {
    snprintf(text, sizeof(text), "too many subscribers for client %s (at most %" PRIu64 ")",
             s->key_id, l->max_subscribers_per_client);
  } else {
    text[0] = '\0';
  }
  if (text[0] != '\0') {
    cs_sub_refuse(s, GRPC_STATUS_RESOURCE_EXHAUSTED, text, NULL);
    return;
  }
  s->listed = true;
  s->next = svc->subs;
  if (svc->subs != NULL) svc->subs->prev = s;
  svc->subs = s;
  svc->n_subs++;
  mir_counter_inc(svc->st.subscribers);
  mir_gauge_add(svc->st.open_subscribers, 1);
  s->last_progress_ns = miri_cs_now_ns();
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  cs_sub_batch(s, &op, 1, &s->t_md);
  cs_sub_try_send(s);
}

/* ---- completions ---- */

static void cs_sub_on_new(cs_tag *t, bool ok) {
  cs_sub *s = t->self;
  mir_client_service *svc = s->svc;
  if (ok) miri_cs_subscribe_request(svc);
  /* Whom the subscriber counts for: its connection, and its certificate's client id. */
  char why[256] = "";
  bool authenticated = true;
  if (ok) {
    char *peer = grpc_call_get_peer(s->call);
    snprintf(s->peer, sizeof(s->peer), "%s", peer != NULL ? peer : "");
    gpr_free(peer);
    if (svc->client_ca != NULL) {
      authenticated =
          miri_cs_cert_identity(svc, s->call, s->key_id, sizeof(s->key_id), why, sizeof(why));
    }
  }
  mir_lock_acquire(&svc->mu);
  if (ok) {
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &s->cancelled;
    cs_sub_batch(s, &op, 1, &s->t_close);
    if (authenticated) {
      cs_sub_admit(s);
    } else {
      mir_counter_inc(svc->st.unauthenticated);
      char text[320];
      snprintf(text, sizeof(text), "client certificate refused: %s", why);
      cs_sub_refuse(s, GRPC_STATUS_UNAUTHENTICATED, text, NULL);
    }
  }
  cs_sub_maybe_free(s);
  mir_lock_release(&svc->mu);
}

static void cs_sub_on_send(cs_tag *t, bool ok) {
  cs_sub *s = t->self;
  mir_client_service *svc = s->svc;
  mir_lock_acquire(&svc->mu);
  s->pending--;
  s->send_in_flight = false;
  grpc_byte_buffer_destroy(s->send_buf);
  s->send_buf = NULL;
  if (ok) {
    s->last_progress_ns = miri_cs_now_ns();
    cs_sub_try_send(s);
  } else {
    s->ended = true; /* the client went away or the call was cancelled */
  }
  cs_sub_maybe_free(s);
  mir_lock_release(&svc->mu);
}

/* Initial metadata or a refusal was sent, or the call closed. */
static void cs_sub_on_done(cs_tag *t, bool ok) {
  (void)ok;
  cs_sub *s = t->self;
  mir_client_service *svc = s->svc;
  mir_lock_acquire(&svc->mu);
  s->pending--;
  if (t == &s->t_close) {
    s->closed = s->ended = true;
    cs_sub_unlist(s);
  }
  cs_sub_maybe_free(s);
  mir_lock_release(&svc->mu);
}

void miri_cs_subscribe_request(mir_client_service *svc) {
  cs_sub *s = mir_xcalloc(1, sizeof(*s));
  s->svc = svc;
  grpc_metadata_array_init(&s->md);
  miri_cs_tag_init(&s->t_new, cs_sub_on_new, s);
  miri_cs_tag_init(&s->t_md, cs_sub_on_done, s);
  miri_cs_tag_init(&s->t_send, cs_sub_on_send, s);
  miri_cs_tag_init(&s->t_close, cs_sub_on_done, s);
  mir_lock_acquire(&svc->mu);
  grpc_call_error e = GRPC_CALL_ERROR;
  if (!svc->stopping) {
    e = grpc_server_request_registered_call(svc->server, svc->m_subscribe, &s->call, &s->deadline,
                                            &s->md, &s->req_buf, svc->cq_main, svc->cq_main,
                                            &s->t_new);
  }
  if (e == GRPC_CALL_OK) svc->live++;
  mir_lock_release(&svc->mu);
  if (e != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&s->md);
    free(s);
  }
}

/* ---- the feeder ---- */

/* One pass over the subscribers: cut the stalled ones, send to the idle ones. Caller holds
 * svc->mu. Subscribers are held while the pass may release the mutex. */
static void cs_feed_round(mir_client_service *svc) {
  size_t n = 0;
  cs_sub **todo = mir_xmalloc((svc->n_subs + 1) * sizeof(*todo));
  uint64_t now = miri_cs_now_ns();
  uint64_t stall_ns = svc->cfg.limits.subscriber_stall_ms * 1000000ull;
  for (cs_sub *s = svc->subs; s != NULL; s = s->next) {
    if (s->ended) continue;
    if (s->send_in_flight && now - s->last_progress_ns > stall_ns) {
      char text[128];
      snprintf(text, sizeof(text), "too slow: no delivery accepted for %" PRIu64 " ms",
               svc->cfg.limits.subscriber_stall_ms);
      cs_sub_cut(s, GRPC_STATUS_RESOURCE_EXHAUSTED, text);
    } else if (!s->send_in_flight && !s->reading && s->next_sn < svc->log_next_sn) {
      s->pending++;
      todo[n++] = s;
    }
  }
  for (size_t i = 0; i < n; i++) {
    cs_sub_try_send(todo[i]);
    todo[i]->pending--;
    cs_sub_maybe_free(todo[i]);
  }
  free(todo);
}

void *miri_cs_feed_main(void *arg) {
  pthread_setname_np(pthread_self(), "mir-client-feed"); /* named in top, perf and debuggers */
  mir_client_service *svc = arg;
  mir_lock_acquire(&svc->mu);
  while (!svc->stopping) {
    if (!svc->feed_signal) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_nsec += CS_FEED_TICK_MS * 1000000L;
      if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&svc->cv, &svc->mu.mu, &until);
    }
    svc->feed_signal = false;
    if (!svc->stopping) cs_feed_round(svc);
  }
  mir_lock_release(&svc->mu);
  return NULL;
}
