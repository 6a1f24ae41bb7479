/*
 * libmirclient: the client SDK of Mir-C replicas (docs/SDK.md). This is the library's only public
 * header; an application needs nothing else (no libmir header, no gRPC or protobuf header).
 *
 * What it does. mir_client_open connects to the n replicas of one cluster. mir_client_submit
 * numbers a transaction (per client id, sequentially from options.first_tx_no), batches it with
 * others and sends it on Submit streams to every replica (at least f+1 of them, f = (n - 1) / 3,
 * so that a faulty replica cannot censor it). The SDK follows the ordered log on Subscribe streams
 * from 2f+1 replicas and reports a transaction committed when f+1 replicas delivered it at the same
 * (sn, log_hash, content); mir_client_wait blocks until then. mir_client_subscribe reports every
 * ordered entry to a callback, in sn order, exactly once, once f+1 replicas agree on it. With
 * MIR_CLIENT_TRUST_ONE a single replica's word is enough for all of this. Streams that fail are
 * reopened with backoff, and replicas that stay unreachable are replaced by others. A replica that
 * says it is busy (TX_MEMPOOL_FULL, with its retry_after_ms hint) gets nothing more until the hint
 * has passed, and then after a growing pause while it stays busy; its stream stays open.
 *
 * Ownership vocabulary: *borrowed* (the SDK reads it during the call only), *copied*, *returns
 * owned (free with ...)*, *valid until the callback returns*.
 *
 * Threads. Every function may be called from any thread, concurrently, except where its comment
 * says otherwise. Each client runs two threads of its own; callbacks run on one of them (the
 * "SDK thread"), one at a time, and must not block long: while a callback runs, no other event of
 * that client is handled. A callback may call mir_client_submit, mir_client_wait with
 * timeout_ms == 0, mir_client_stats_get and mir_client_unsubscribe; it must not call
 * mir_client_close or block in mir_client_wait (both return MIR_CLIENT_EINVAL there).
 *
 * Errors. Functions return an int error code: MIR_CLIENT_OK (0) or one of MIR_CLIENT_E*, whose
 * values equal those of libmir's mir_err where the meaning is the same; MIR_CLIENT_EREJECTED has
 * no mir_err counterpart. mir_client_strerror names a code; mir_client_errdetail gives the
 * calling thread's detail text for the last error a mir_client function returned on that thread.
 * A function that takes a callback and fails never calls that callback.
 */
#ifndef MIR_CLIENT_H
#define MIR_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---- */

#define MIR_CLIENT_OK 0
#define MIR_CLIENT_EINVAL 1    /* invalid argument, or a call not allowed on this thread */
#define MIR_CLIENT_ENOMEM 2    /* allocation failed */
#define MIR_CLIENT_ESTOPPED 3  /* the client is closing or closed (shutdown) */
#define MIR_CLIENT_EFULL 4     /* a limit is reached (window, bytes, subscriptions); retry later */
#define MIR_CLIENT_ENOTFOUND 5 /* unknown ticket, forgotten outcome, or sn no longer retained */
#define MIR_CLIENT_EEXIST 6    /* the tx number was committed with other data (client id reuse) */
#define MIR_CLIENT_EUNAVAILABLE 7 /* replicas unreachable (mir_err: MIR_EIO) */
#define MIR_CLIENT_ETIMEDOUT 10   /* the time-out passed; the transaction is still pending */
#define MIR_CLIENT_EREJECTED 64   /* the replicas rejected the transaction (see result.reason) */

/* Returns a static name for err (never NULL). */
const char *mir_client_strerror(int err);

/* Returns the calling thread's detail message for the last error a mir_client function returned
 * on this thread ("" if none). Valid until the next mir_client call on this thread. */
const char *mir_client_errdetail(void);

/* ---- options ---- */

#define MIR_CLIENT_REPLICAS_MAX 64
#define MIR_CLIENT_ID_MAX 64 /* bytes of a client id: 1..64 of [A-Za-z0-9._:@-] */

typedef enum mir_client_trust {
  MIR_CLIENT_TRUST_QUORUM = 0, /* default: f+1 replicas must agree */
  MIR_CLIENT_TRUST_ONE = 1     /* any one replica is believed (no Byzantine tolerance) */
} mir_client_trust;

typedef struct mir_client_options {
  /* Required. replicas: n "host:port" strings (borrowed, copied by open), 1 <= n <= 64, the whole
   * membership with unit weights. client_id: 1..64 bytes of [A-Za-z0-9._:@-] (borrowed, copied;
   * the replicas refuse any other). A client id must be used by one process at a time (see
   * docs/SDK.md, "Client ids and tx numbers"). */
  const char *const *replicas;
  size_t n_replicas;
  const char *client_id;
  /* The first tx number this client assigns (default 0). To resume a client id after a clean
   * close, pass the next_tx_no that mir_client_stats_get reported before closing. */
  uint64_t first_tx_no;
  mir_client_trust trust;
  /* TLS: all NULL = plaintext. tls_ca_file: PEM of the CA that signed the replicas' certificates
   * (required for TLS); tls_cert_file/tls_key_file: a client certificate for mutual TLS (both or
   * neither), needed by replicas that require client certificates (client.require_cert): it must
   * name client_id (mir-keygen --client makes one), else the replicas reject every transaction
   * (EREJECTED, "client id differs from the certificate's"); tls_server_name: expected name in the
   * replicas' certificates when it differs from the host (testing). Paths borrowed; the files are
   * read by open. */
  const char *tls_ca_file;
  const char *tls_cert_file;
  const char *tls_key_file;
  const char *tls_server_name;
  /* Tuning; 0 means the default in brackets. */
  uint32_t submit_replicas;    /* replicas each transaction is sent to [all n]; f+1 or more
                                  keeps one faulty replica from censoring it */
  uint32_t subscribe_replicas; /* replicas the log is followed from [2f+1; TRUST_ONE: 1] */
  uint32_t window;             /* unresolved transactions at most [1024]; open lowers it to the
                                  replicas' client window that their Status reports */
  uint64_t pending_bytes_max;  /* bytes of unresolved transactions at most [64 MiB] */
  uint32_t max_tx_bytes;       /* largest transaction accepted by submit [65536] */
  uint32_t batch_max_txs;      /* transactions per Submit request [256] */
  uint32_t batch_max_bytes;    /* bytes per Submit request [262144]; at most the replicas'
                                * client.max_request_bytes (1 MiB by default) */
  uint32_t batch_delay_us;     /* how long a transaction may wait for others to join [1000] */
  uint32_t connect_timeout_ms; /* how long open waits for replicas to answer [5000] */
  uint32_t reconnect_min_ms;   /* first reconnect backoff [50] */
  uint32_t reconnect_max_ms;   /* backoff cap [1000] */
  uint32_t stall_ms;           /* no agreement for this long: follow one more replica [2000] */
  uint32_t busy_max_ms;        /* back-pressure: the longest pause before sending again to a
                                  replica that stays busy [2000]; never shorter than its hint.
                                  Also the longest a transaction a replica answered
                                  OUT_OF_WINDOW waits before it is looked at again */
} mir_client_options;

/* Fills opts with zeros and defaults; set replicas, n_replicas and client_id after it. */
void mir_client_options_init(mir_client_options *opts);

/* ---- client ---- */

typedef struct mir_client mir_client;

/* Opens a client: checks opts (borrowed; everything is copied), starts the client's threads and
 * asks the replicas for their log position with Status, waiting at most connect_timeout_ms for
 * f+1 of them (one with TRUST_ONE) to answer. On success *out is owned (free with
 * mir_client_close). Errors: MIR_CLIENT_EINVAL (bad options, unreadable TLS file),
 * MIR_CLIENT_EUNAVAILABLE (too few replicas answered; the detail names them), MIR_CLIENT_ENOMEM.
 * On error *out is NULL and nothing is left running. */
int mir_client_open(const mir_client_options *opts, mir_client **out);

/* Closes the client: stops its streams, completes every unresolved ticket with
 * MIR_CLIENT_ESTOPPED (their callbacks run on the calling thread, before close returns), gives
 * each subscription that did not end its final callback (status MIR_CLIENT_ESTOPPED), makes
 * mir_client_wait calls in progress return MIR_CLIENT_ESTOPPED, joins the client's threads and
 * frees everything, including subscription handles. Takes ownership of client (NULL is allowed and
 * ignored). Must not run concurrently with calls on this client other than mir_client_wait, and
 * no call on it may start after close began. Returns MIR_CLIENT_EINVAL, doing nothing, when
 * called from a callback of this client; MIR_CLIENT_OK otherwise. */
int mir_client_close(mir_client *client);

/* ---- transactions ---- */

/* A ticket names one submitted transaction: it is the transaction's tx number. */
typedef uint64_t mir_client_ticket;

/* How the replicas answered a transaction (the values of trantor.TxStatus). */
typedef enum mir_client_tx_status {
  MIR_CLIENT_TX_ACCEPTED = 0,
  MIR_CLIENT_TX_DUPLICATE = 1,
  MIR_CLIENT_TX_OUT_OF_WINDOW = 2,
  MIR_CLIENT_TX_TOO_LARGE = 3,
  MIR_CLIENT_TX_MEMPOOL_FULL = 4,
  MIR_CLIENT_TX_INVALID = 5
} mir_client_tx_status;

typedef struct mir_client_result {
  int status; /* MIR_CLIENT_OK (committed), _EREJECTED, _EEXIST or _ESTOPPED */
  mir_client_ticket ticket;
  uint64_t sn;      /* committed: the sequence number of the entry holding the transaction */
  int tx_status;    /* rejected: a mir_client_tx_status other than ACCEPTED and DUPLICATE */
  char reason[128]; /* rejected: the reason text of the rejecting replicas (NUL-terminated) */
} mir_client_result;

/* Called once when a transaction's outcome is known (committed, rejected, or ESTOPPED at close),
 * on the SDK thread (at close: on the closing thread). result: valid until the callback returns. */
typedef void (*mir_client_done_cb)(mir_client *client, const mir_client_result *result,
                                   void *user_data);

/* Submits one transaction: data (borrowed, len bytes, 0 <= len <= max_tx_bytes) is copied, given
 * the next tx number (*ticket), batched, and sent. done (may be NULL) is called once with the
 * outcome; user_data is passed to it. Does not block on the network. Errors (done is then never
 * called and no tx number is used): MIR_CLIENT_EINVAL (too large, NULL data with len > 0),
 * MIR_CLIENT_EFULL (window unresolved tickets or pending_bytes_max bytes: wait for older tickets
 * and retry), MIR_CLIENT_ESTOPPED (closing), MIR_CLIENT_ENOMEM. */
int mir_client_submit(mir_client *client, const void *data, size_t len, mir_client_done_cb done,
                      void *user_data, mir_client_ticket *ticket);

/* Waits until ticket's outcome is known or timeout_ms passes (0: do not wait; negative: no
 * time-out). result (may be NULL) receives the outcome when there is one. Returns MIR_CLIENT_OK
 * (committed), MIR_CLIENT_EREJECTED (f+1 replicas rejected it, or one with TRUST_ONE; see
 * result->reason), MIR_CLIENT_EEXIST (its tx number was committed with other data),
 * MIR_CLIENT_ETIMEDOUT (still pending: wait again later), MIR_CLIENT_ESTOPPED (closed before an
 * outcome), MIR_CLIENT_ENOTFOUND (never issued, or its outcome was forgotten: the SDK remembers
 * the last 4 * window outcomes), MIR_CLIENT_EINVAL (a blocking wait in a callback). A ticket may
 * be waited for any number of times, from any number of threads. */
int mir_client_wait(mir_client *client, mir_client_ticket ticket, int64_t timeout_ms,
                    mir_client_result *result);

/* ---- the ordered log ---- */

typedef struct mir_client_tx {
  const char *client_id; /* NUL-terminated */
  uint64_t tx_no;
  const uint8_t *data;
  size_t len;
} mir_client_tx;

typedef struct mir_client_entry {
  uint64_t sn;
  uint64_t epoch;
  const uint8_t *log_hash; /* log_hash_len bytes (32) */
  size_t log_hash_len;
  const mir_client_tx *txs; /* the entry's transactions, in order */
  size_t n_txs;
} mir_client_entry;

typedef struct mir_client_sub mir_client_sub;

/* Subscription callback, on the SDK thread. With entry != NULL (status MIR_CLIENT_OK): the next
 * entry in sn order (valid until the callback returns). With entry == NULL: the subscription
 * ended and this is its last call; status says why (MIR_CLIENT_ESTOPPED: the client closes;
 * MIR_CLIENT_ENOTFOUND: so many replicas no longer retain from_sn that the others cannot make a
 * quorum, n - f of them, all n with TRUST_ONE; MIR_CLIENT_ENOMEM). */
typedef void (*mir_client_entry_cb)(mir_client_sub *sub, int status, const mir_client_entry *entry,
                                    void *user_data);

/* Follows the ordered log from sequence number from_sn (MIR_CLIENT_FROM_NOW: from the replicas'
 * current position, asked with Status), calling cb for every entry in sn order exactly once, each
 * when f+1 of the followed replicas sent identical (sn, epoch, log_hash, transactions), or one
 * replica with TRUST_ONE. *out is owned (free with mir_client_unsubscribe, or left to
 * mir_client_close). At most 16 subscriptions per client. Errors (cb is then never called):
 * MIR_CLIENT_EINVAL, MIR_CLIENT_EFULL, MIR_CLIENT_ESTOPPED, MIR_CLIENT_ENOMEM. */
#define MIR_CLIENT_FROM_NOW UINT64_MAX
int mir_client_subscribe(mir_client *client, uint64_t from_sn, mir_client_entry_cb cb,
                         void *user_data, mir_client_sub **out);

/* Ends a subscription and frees sub (takes ownership). Once it returns, the callback is never
 * called again; it may be called from that very callback. NULL is ignored. */
void mir_client_unsubscribe(mir_client_sub *sub);

/* ---- statistics ---- */

typedef struct mir_client_stats {
  uint64_t next_tx_no;        /* the number the next submit will use */
  uint64_t submitted;         /* transactions accepted by mir_client_submit */
  uint64_t committed;         /* ... reported committed */
  uint64_t rejected;          /* ... reported rejected (EREJECTED or EEXIST) */
  uint64_t unresolved;        /* tickets without an outcome now */
  uint64_t requests_sent;     /* Submit requests sent (batches), over all replicas */
  uint64_t resent;            /* transactions queued to a replica again: after a reconnect or
                                 fail-over, or after it refused them (refused, OUT_OF_WINDOW) */
  uint64_t refused;           /* transactions a replica refused for back-pressure (MEMPOOL_FULL) */
  uint64_t backoffs;          /* pauses of a replica's sending for back-pressure */
  uint64_t reconnects;        /* streams reopened after they failed */
  uint64_t failovers;         /* replicas added to the submit or follow set */
  uint64_t bad_messages;      /* replica messages that failed validation (dropped) */
  uint64_t conflicting_votes; /* deliveries that disagreed with an agreed entry or a replica's
                                 own earlier delivery */
  uint64_t followed_sn;       /* the commit tracker's next sequence number */
  uint64_t lock_contended;    /* acquisitions of the client's lock that found it held */
  uint64_t lock_wait_ns;      /* time those acquisitions waited for it */
} mir_client_stats;

/* Copies the client's counters into *out (owned by the caller; NULL client or out: nothing). */
void mir_client_stats_get(mir_client *client, mir_client_stats *out);

/* ---- process settings (optional) ---- */

/* Switches off, for the whole process, the mutex deadlock detection of the Abseil library that gRPC
 * is built on, where that build leaves it on (Debian's does): a debugging aid that records every
 * lock acquisition inside gRPC in a global graph, about a tenth of a busy client's CPU
 * (docs/SDK.md, "Batching, reconnects and fail-over"). The SDK never does it by itself: the
 * setting belongs to the whole process. Call it once, before mir_client_open and before other
 * threads use gRPC. Returns 1 if it switched the detection off, 0 if the environment variable
 * MIR_ABSL_DEADLOCK_DETECTION is "1" (the detection is kept). */
int mir_client_tune_process(void);

#ifdef __cplusplus
}
#endif
#endif
