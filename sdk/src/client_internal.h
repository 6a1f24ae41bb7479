/*
 * Internals of libmirclient shared by its .c files (never installed).
 *
 * Threads and locks: one mutex per client (mu) guards every field below except where noted. Three
 * kinds of thread take it: application threads (submit, wait, subscribe, stats), the client's
 * completion-queue thread (all gRPC completions; the only thread that runs application
 * callbacks, outside the lock) and the client's timer thread (batch delays, reconnect backoff,
 * stall checks). gRPC batches are started with mu held, which serialises the batches of each
 * call as gRPC requires.
 *
 * Lifetimes: a call context (status call, submit stream, subscribe stream) is freed exactly when
 * its last batch completed (pending == 0) and its status arrived; live_calls counts them so that
 * close can wait for zero before it destroys channels and the completion queue. A subscription
 * is freed when its reference count drops to zero: one reference while the application holds
 * it, one per live stream context, one per queued callback.
 */
#ifndef MIRI_CL_CLIENT_INTERNAL_H
#define MIRI_CL_CLIENT_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "batch.h"
#include "mir/client.h"
#include "tickets.h"
#include "votes.h"
#include "wire.h"

#define MIRI_CL_INFLIGHT_MAX 32           /* unanswered Submit requests per stream */
#define MIRI_CL_SUBS_MAX 16               /* subscriptions per client */
#define MIRI_CL_FOLLOW_WINDOW 1024u       /* sequence numbers buffered ahead of agreement */
#define MIRI_CL_FOLLOW_BYTES (8u << 20)   /* vote bytes per replica and subscription */
#define MIRI_CL_MAX_RECV_BYTES (16 << 20) /* largest message accepted from a replica */
#define MIRI_CL_FAILS_BEFORE_FAILOVER 2u  /* consecutive stream failures that count as "down" */
#define MIRI_CL_RETRY_TRANSIENT_MS 100    /* the pause after MEMPOOL_FULL without a hint */
#define MIRI_CL_STATUS_GRACE_MS 200       /* open: wait this long for more Status answers */
#define MIRI_CL_TIMER_MAX_SLEEP_MS 200    /* the timer thread looks around at least this often */

#define MIRI_CL_RANGE_MD "mir-range" /* trailing metadata of OUT_OF_RANGE: "below" or "ahead" */
#define MIRI_CL_METHOD_SUBMIT "/mir.api.Client/Submit"
#define MIRI_CL_METHOD_SUBSCRIBE "/mir.api.Client/Subscribe"
#define MIRI_CL_METHOD_STATUS "/mir.api.Client/Status"

typedef struct miri_cl_tag {
  void (*fn)(struct miri_cl_tag *tag, bool ok);
  void *self;
} miri_cl_tag;

/* What ended a call, for logs and error details. */
typedef struct miri_cl_callst {
  grpc_metadata_array imd, trailing;
  grpc_status_code status;
  grpc_slice details;
  const char *error_string;
} miri_cl_callst;

typedef struct miri_cl_request {
  uint64_t id;
  uint32_t n;
  uint64_t *tx_nos; /* owned */
  int64_t sent_ns;  /* when it was handed to gRPC */
} miri_cl_request;

typedef struct miri_cl_replica miri_cl_replica;
typedef struct mir_client_sub miri_cl_follower;

/* A Submit stream to one replica. */
typedef struct miri_cl_sstream {
  miri_cl_replica *rep;
  grpc_call *call;
  miri_cl_tag t_start, t_send, t_recv, t_status;
  miri_cl_callst st;
  grpc_byte_buffer *send_bb, *recv_bb;
  int pending;
  bool done;    /* the status arrived */
  bool sending; /* a SEND_MESSAGE is in flight */
  miri_cl_request inflight[MIRI_CL_INFLIGHT_MAX];
  uint32_t n_inflight;
} miri_cl_sstream;

struct miri_cl_replica {
  mir_client *c;
  uint32_t index;
  char *addr;
  grpc_channel *ch;
  /* Submit side. */
  bool submit_member;
  miri_cl_sstream *ss; /* the current stream, NULL while none (backoff) */
  miri_cl_queue q;
  uint32_t failures; /* consecutive stream failures */
  uint64_t backoff_ms;
  int64_t retry_ns; /* reopen the stream at this time (when ss == NULL) */
  int64_t hold_ns;  /* send nothing before this time (back-pressure, transient rejections) */
  /* Back-pressure (submit.c): the pause of the current busy episode (0: none) and when it began. */
  uint64_t busy_ms;
  int64_t busy_since_ns;
  /* Transactions r answered OUT_OF_WINDOW, held back until the window can have moved (submit.c).
   * window_est: how far beyond this client's oldest unresolved tx number r takes transactions, as
   * its answers showed it (0: not known yet); parked_oldest and parked_ns: the oldest unresolved
   * tx number and the time when the parked ones were last looked at. */
  miri_cl_queue parked;
  uint64_t window_est;
  uint64_t parked_oldest;
  int64_t parked_ns;
  uint64_t next_request_id;
};

/* A Subscribe stream of a follower to one replica. */
typedef struct miri_cl_fstream {
  miri_cl_follower *f;
  uint32_t replica;
  grpc_call *call;
  miri_cl_tag t_start, t_recv, t_status;
  miri_cl_callst st;
  grpc_byte_buffer *req_bb, *recv_bb;
  int pending;
  bool done;
  bool reading;    /* a RECV_MESSAGE is posted */
  bool got_any;    /* a valid delivery arrived */
  uint64_t min_sn; /* the lowest sn the next delivery may carry */
} miri_cl_fstream;

typedef struct miri_cl_fmember {
  bool member;
  bool gone; /* the replica said it no longer retains what we asked for */
  miri_cl_fstream *s;
  uint32_t failures;
  uint64_t backoff_ms;
  int64_t retry_ns;
} miri_cl_fmember;

/* A follower of the ordered log: the commit tracker (commits == true) or a subscription (the
 * public mir_client_sub). */
struct mir_client_sub {
  mir_client *c;
  bool commits;
  mir_client_entry_cb cb;
  void *user_data;
  char *filter_id; /* the client id to keep transactions of, or NULL for all (owned) */
  miri_cl_votes votes;
  miri_cl_fmember m[MIR_CLIENT_REPLICAS_MAX];
  uint32_t target; /* how many healthy members it wants */
  uint32_t refs;
  bool attached;            /* the application (or the client, for the tracker) holds it */
  bool stopped;             /* no callback may start any more */
  bool ended;               /* the final callback is queued or delivered */
  int64_t waiting_since_ns; /* since when deliveries wait without agreement (0: not waiting) */
  uint64_t dissent_counted; /* votes.dissent already added to stats.conflicting_votes */
  miri_cl_follower *next;   /* in c->followers */
};

typedef enum miri_cl_dkind { MIRI_CL_D_DONE, MIRI_CL_D_ENTRY, MIRI_CL_D_END } miri_cl_dkind;

/* A callback to run outside the lock, on the completion-queue thread. */
typedef struct miri_cl_deferred {
  miri_cl_dkind kind;
  miri_cl_done done;   /* DONE */
  miri_cl_follower *f; /* ENTRY, END (holds a reference) */
  miri_cl_blob *blob;  /* ENTRY (owned reference) */
  int status;          /* END */
} miri_cl_deferred;

/* One Status call made by open. */
typedef struct miri_cl_status_call {
  mir_client *c;
  uint32_t replica;
  grpc_call *call;
  miri_cl_tag tag;
  miri_cl_callst st;
  grpc_byte_buffer *req_bb, *resp_bb;
} miri_cl_status_call;

struct mir_client {
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* outcomes, Status answers, live_calls, callbacks finishing */
  pthread_cond_t timer_cv; /* wakes the timer thread */

  /* Configuration (immutable after open). */
  char *client_id;
  uint32_t n, f, quorum, submit_k, follow_k;
  mir_client_options opts; /* with defaults applied; pointers in it are not used after open */
  miri_cl_batch_limits limits;
  uint32_t start_index; /* where the submit and follow sets start (spreads clients) */
  uint64_t rng;         /* jitter of back-pressure pauses (xorshift64*, never 0) */

  grpc_completion_queue *cq;
  pthread_t cq_thread, timer_thread;
  bool cq_thread_started, timer_thread_started;
  bool closing, timer_stop;
  int64_t timer_wake_ns;
  int live_calls;
  int waiters; /* threads inside mir_client_wait */

  miri_cl_replica rep[MIR_CLIENT_REPLICAS_MAX];
  miri_cl_tickets tickets;
  uint64_t *batch_buf; /* scratch: limits.max_txs tx numbers */
  miri_cl_follower *tracker;
  miri_cl_follower *followers;  /* the tracker and every subscription not yet freed */
  uint32_t n_subs;              /* attached subscriptions */
  miri_cl_follower *cb_running; /* the subscription whose callback runs now */

  /* Deferred callbacks: filled under mu by handlers, emptied by the cq thread. */
  miri_cl_deferred *deferred;
  size_t n_deferred, cap_deferred;

  /* open's Status round. */
  bool status_answered[MIR_CLIENT_REPLICAS_MAX];
  uint64_t status_next_sn[MIR_CLIENT_REPLICAS_MAX];
  uint64_t status_client_window[MIR_CLIENT_REPLICAS_MAX]; /* 0: not reported */
  uint32_t status_done, status_ok;
  miri_cl_status_call *status_calls[MIR_CLIENT_REPLICAS_MAX]; /* in flight, for cancelling */
  char status_error[512];

  mir_client_stats stats;
};

/* Takes c->mu, counting the acquisitions that found it held and how long they waited
 * (stats.lock_contended, stats.lock_wait_ns, updated once the lock is held). Only a failed
 * try-lock reads the clock, so an uncontended acquisition costs what pthread_mutex_lock does; this
 * is the server's named lock (mir/lock.h) for a library that has no metrics registry. */
static inline void mc_lock(mir_client *c) {
  if (pthread_mutex_trylock(&c->mu) == 0) return;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_mutex_lock(&c->mu);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  c->stats.lock_contended++;
  c->stats.lock_wait_ns +=
      (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
}

/* ---- client.c ---- */
int64_t miri_cl_now_ns(void);
/* Sets the calling thread's error detail and returns code. */
int miri_cl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queues a callback (mu held). Returns false when memory ran out (the item is then dropped and
 * its references released by the caller). */
bool miri_cl_defer(mir_client *c, const miri_cl_deferred *d);
/* Wakes the timer thread if `at` is earlier than its planned wake-up (mu held). */
void miri_cl_timer_poke(mir_client *c, int64_t at_ns);
/* The next backoff after backoff_ms (0: the first). */
uint64_t miri_cl_backoff_next(const mir_client *c, uint64_t backoff_ms);
/* A pseudo-random number in [0, bound) for jitter (mu held; bound > 0). */
uint64_t miri_cl_random(mir_client *c, uint64_t bound);

/* ---- grpcutil.c ---- */
void miri_cl_callst_init(miri_cl_callst *st);
void miri_cl_callst_fini(miri_cl_callst *st);
/* True if the trailing metadata of a finished call has key with exactly value (both borrowed). */
bool miri_cl_callst_md_is(const miri_cl_callst *st, const char *key, const char *value);
/* "STATUS: details" of a finished call into buf. */
void miri_cl_callst_text(const miri_cl_callst *st, char *buf, size_t len);
/* Packs msg into a new byte buffer (returns owned: grpc_byte_buffer_destroy), NULL if too big. */
grpc_byte_buffer *miri_cl_pack(const ProtobufCMessage *msg);
/* Flattens bb (borrowed) into one slice (returns owned: grpc_slice_unref). False on failure. */
bool miri_cl_flatten(grpc_byte_buffer *bb, grpc_slice *out);
/* Starts a batch; a failure here is a bug in this library (one op of each kind in flight). */
void miri_cl_start_batch(grpc_call *call, const grpc_op *ops, size_t n, miri_cl_tag *tag,
                         int *pending);
/* Starts the RECV_STATUS_ON_CLIENT batch of call, filling st (borrowed, lives until the tag
 * completes). */
void miri_cl_start_recv_status(grpc_call *call, miri_cl_callst *st, miri_cl_tag *tag, int *pending);
/* Creates a call of method on rep's channel, bound to the client's cq, without deadline unless
 * deadline_ms > 0. Counts it in live_calls (mu held). */
grpc_call *miri_cl_call_new(miri_cl_replica *rep, const char *method, int64_t deadline_ms);
/* One call context is gone (mu held): live_calls--, wakes close. */
void miri_cl_call_gone(mir_client *c);
/* Creates every replica's channel (TLS as configured). Returns MIR_CLIENT_OK or EINVAL/ENOMEM. */
int miri_cl_channels_create(mir_client *c);
/* Starts the Status call to every replica (mu held). */
void miri_cl_status_round_start(mir_client *c);

/* ---- submit.c ---- */
/* Puts a freshly submitted tx on the queue of every open submit stream and sends what is due. */
void miri_cl_submit_enqueue(mir_client *c, uint64_t tx_no, size_t len);
/* Timer work for replica r (mu held): reopen, send due batches. Returns its next deadline. */
int64_t miri_cl_submit_tick(miri_cl_replica *r, int64_t now_ns);
/* Makes the submit set: submit_k replicas from start_index (mu held). */
void miri_cl_submit_set_init(mir_client *c);
/* Cancels r's stream (close; mu held). */
void miri_cl_submit_cancel(miri_cl_replica *r);

/* ---- follow.c ---- */
/* Creates a follower from from_sn (mu held). NULL when out of memory. */
miri_cl_follower *miri_cl_follower_new(mir_client *c, bool commits, uint64_t from_sn,
                                       mir_client_entry_cb cb, void *user_data);
/* Timer work for f (mu held): reopen streams, stall and fail-over checks. Next deadline. */
int64_t miri_cl_follower_tick(miri_cl_follower *f, int64_t now_ns);
/* Stops every stream of f (mu held). */
void miri_cl_follower_cancel(miri_cl_follower *f);
/* Drops one reference (mu held); frees f at zero. */
void miri_cl_follower_unref(miri_cl_follower *f);
/* Runs the application callback for one deferred ENTRY or END item (mu NOT held). Returns false
 * when an entry could not be decoded for lack of memory: the callback then got its final call
 * (MIR_CLIENT_ENOMEM) and the caller must end f with miri_cl_follower_fail. */
bool miri_cl_follower_deliver(miri_cl_follower *f, const miri_cl_deferred *d);
/* Ends f without a callback (mu held). */
void miri_cl_follower_fail(miri_cl_follower *f);

#endif
