/*
 * Internals of the gRPC peer transport (mir/net_grpc.h), shared by its .c files:
 *   net_grpc.c    configuration, module ops (apply/start/stop/destroy), self delivery, statistics
 *   net_client.c  outgoing streams: connect, reconnect with backoff, send frames
 *   net_server.c  incoming streams: accept, authenticate, decode, push into the inbox
 *   net_frame.c   shared encoded messages, bounded send queues, the frame codec (pure; its
 *                 declarations are in net_frame.h, which C++ tests include on its own)
 *   net_auth.c    node ids, credentials, and the identity check of incoming streams
 *
 * Threads and locks.
 *  - The dispatcher thread runs apply(): it encodes each message once and appends it to the
 *    queues of its destinations, and starts a send when the peer's stream is idle.
 *  - The client thread polls client_cq: it opens and reopens outgoing streams and continues
 *    sending from each send completion.
 *  - The server thread polls server_cq: every event of every incoming call is handled there, so
 *    incoming stream contexts need no lock; it blocks in mir_inbox_push under backpressure.
 *  - The self thread moves messages from the self queue into the inbox.
 * Each peer's lock (peer->mu, the named lock "net_grpc_send_queue") guards its queue and its
 * outgoing stream context (all of it, including the one-send-in-flight rule of gRPC). It is held
 * while a frame is packed and its batch started, never while pushing into the inbox or waiting. No
 * code holds two peer locks at once. net->server_mu guards the server's shutdown flag together
 * with every request for a new call (so none is made on a server that is shutting down) and the
 * count of live incoming calls; net->client_mu guards the count of live outgoing streams. Lock
 * order: peer->mu before client_mu, which is innermost (held only to update a count); server_mu is
 * never held with another lock. Neither is taken per message, so they stay plain mutexes.
 *
 * Metrics (mir/metrics.h): the transport owns a set "net" (handed to the node through
 * ops.metrics) with the transport-wide counters and the lock's counts, and below it one set per
 * member named after its id, with that peer's counters and gauges (label peer). Every update is a
 * relaxed atomic on a registry cell, so the dispatcher, the client, server and self threads count
 * without sharing a lock; a set per peer keeps each set far below MIR_METRICS_PER_SET_MAX with
 * MIR_NET_MEMBERS_MAX members.
 */
#ifndef MIR_NET_GRPC_INTERNAL_H
#define MIR_NET_GRPC_INTERNAL_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/event.h"
#include "mir/lock.h"
#include "mir/metrics.h"
#include "mir/net_grpc.h"
#include "net/transport.pb-c.h"
#include "net_frame.h"

#define NET_LOG "net"

/* How long the client thread sleeps at most between reconnect checks. */
#define MIRI_CLIENT_TICK_MS 100
/* Most messages the self thread moves into the inbox in one push. */
#define MIRI_SELF_BATCH 256

/* ---- completion-queue tags: each carries its handler; ok is the event's success flag ---- */

typedef struct miri_tag miri_tag;
struct miri_tag {
  void (*fn)(miri_tag *tag, bool ok);
  void *self;
};

/* ---- log rate limiting: at most one line per second per limiter ---- */

typedef struct miri_ratelimit {
  _Atomic uint64_t last_ns;
  _Atomic uint64_t suppressed;
} miri_ratelimit;

/* True if a line may be logged now; *suppressed gets the number of lines skipped since the last
 * one allowed. Thread-safe. */
bool miri_ratelimit_allow(miri_ratelimit *rl, uint64_t *suppressed);

/* ---- the transport ---- */

/* Why messages were dropped (label reason of mir_net_messages_dropped_total). */
typedef enum miri_drop {
  MIRI_DROP_QUEUE_FULL,    /* the peer's send queue was at its bound */
  MIRI_DROP_OVERSIZED,     /* larger than any frame may be */
  MIRI_DROP_STREAM_BROKEN, /* in the frame in flight when its stream broke */
  MIRI_DROP_UNKNOWN_DEST,  /* to an id outside the membership */
  MIRI_DROP_N
} miri_drop;

/* Why incoming streams were refused (label reason of mir_net_streams_refused_total). */
typedef enum miri_refusal {
  MIRI_REFUSE_NO_ID,       /* no (or a repeated) MIR_NET_ID_METADATA */
  MIRI_REFUSE_BAD_ID,      /* a claimed id that is not a valid node id */
  MIRI_REFUSE_NOT_MEMBER,  /* a valid id outside the membership */
  MIRI_REFUSE_OWN_ID,      /* the receiver's own id */
  MIRI_REFUSE_CERTIFICATE, /* the client certificate is not the claimed member's */
  MIRI_REFUSE_N
} miri_refusal;

/* One peer's metrics (label peer = its id), in the peer's own set below the transport's. */
typedef struct miri_peer_metrics {
  mir_metrics *set;
  mir_counter *msgs_sent, *bytes_sent, *frames_sent; /* accepted by gRPC (self: delivered) */
  mir_counter *msgs_received, *bytes_received, *frames_received; /* pushed into the inbox */
  mir_counter *msgs_dropped;           /* for any reason of miri_drop but unknown destination */
  mir_counter *streams_opened;         /* outgoing streams the peer accepted */
  mir_counter *reconnects;             /* of those, the ones after the first */
  mir_counter *connect_failures;       /* outgoing attempts that ended before being accepted */
  mir_counter *refused;                /* incoming streams claiming this id that were refused */
  mir_counter *malformed;              /* frames from this peer rejected as malformed */
  mir_gauge *connected;                /* 1 while the outgoing stream is open */
  mir_gauge *incoming;                 /* 1 while an accepted incoming stream is open */
  mir_gauge *queue_msgs, *queue_bytes; /* the send queue now */
} miri_peer_metrics;

typedef struct miri_cstream miri_cstream; /* an outgoing stream (net_client.c) */
typedef struct miri_sstream miri_sstream; /* an incoming call (net_server.c) */

typedef struct miri_peer {
  struct mir_net_grpc *net;
  size_t index;
  char id[MIR_NET_ID_MAX];
  char addr[MIR_NET_ADDR_MAX];
  bool is_self;
  grpc_channel *channel; /* peers only; created by start, destroyed by stop */

  mir_lock mu; /* "net_grpc_send_queue" */
  /* under mu */
  miri_queue queue;
  miri_cstream *out;        /* the current outgoing stream, or NULL */
  miri_sstream *in;         /* the current accepted incoming stream, or NULL */
  uint64_t next_attempt_ns; /* when to (re)open the outgoing stream */
  uint32_t backoff_ms;      /* the next delay after a failure */
  miri_ratelimit drop_log, fail_log;
  miri_peer_metrics mx; /* the cells are updated without mu */
} miri_peer;

typedef enum miri_state { MIRI_CREATED, MIRI_RUNNING, MIRI_STOPPED } miri_state;

struct mir_net_grpc {
  mir_net_grpc_config cfg; /* scalars; the pointers are cleared (copies live below) */
  char own_id[MIR_NET_ID_MAX];
  char listen_addr[MIR_NET_ADDR_MAX];
  miri_peer *peers; /* cfg.n_members, in membership order; one is self */
  size_t n_peers;
  miri_peer *self;
  char *tls_ca, *tls_cert, *tls_key; /* PEM text (owned), NULL in insecure mode */
  int port;
  miri_state state;     /* touched by new/start/stop/destroy only */
  mir_inbox *inbox;     /* set by start */
  atomic_bool stopping; /* set first thing in stop */

  /* incoming side (net_server.c) */
  grpc_server *server;
  grpc_completion_queue *server_cq;
  void *stream_method;
  pthread_t server_thread;
  bool server_thread_started;
  pthread_mutex_t server_mu;
  pthread_cond_t server_cv;
  bool server_shutdown;      /* under server_mu: no more call requests */
  bool server_shutdown_done; /* under server_mu: the shutdown tag completed */
  size_t server_live;        /* under server_mu: incoming call contexts not yet freed */
  miri_tag shutdown_tag;

  /* outgoing side (net_client.c) */
  grpc_completion_queue *client_cq;
  pthread_t client_thread;
  bool client_thread_started;
  pthread_mutex_t client_mu;
  pthread_cond_t client_cv;
  size_t client_live; /* under client_mu: outgoing stream contexts not yet freed */

  /* self delivery (net_grpc.c): the self peer's queue, under self->mu */
  pthread_t self_thread;
  bool self_thread_started;
  pthread_cond_t self_cv;

  /* metrics: the transport's set (owned), the peers' sets hang below it */
  mir_metrics *metrics;
  mir_counter *dropped[MIRI_DROP_N]; /* messages, by reason */
  mir_counter *refused[MIRI_REFUSE_N];
  mir_counter *unknown_calls; /* incoming calls to other methods (answered UNIMPLEMENTED) */
  miri_ratelimit unknown_log, refuse_log, malformed_log;
};

/* Returns the member with this id (borrowed), or NULL. id need not be NUL-terminated: len bytes. */
miri_peer *miri_peer_find(mir_net_grpc *net, const char *id, size_t len);

/* Sets peer's queue gauges from its queue. Caller holds peer->mu. */
void miri_queue_gauges_locked(miri_peer *peer);

/* ---- net_auth.c ---- */

/* True if id (len bytes, not necessarily NUL-terminated) is a valid node id: 1..MIR_NET_ID_MAX-1
 * bytes of [A-Za-z0-9_.-]. */
bool miri_node_id_valid(const char *id, size_t len);

/* Reads a PEM file of at most MIR_NET_PEM_BYTES_MAX bytes. *out is owned (free()). MIR_EIO. */
mir_err miri_read_pem(const char *path, char **out);

/* Credentials for the server and for the channel to peer (owned; release with the gRPC release
 * functions). The channel arguments that go with the channel credentials (the expected server
 * identity) are added by miri_client_channel_args. */
grpc_server_credentials *miri_server_credentials(mir_net_grpc *net);
grpc_channel_credentials *miri_channel_credentials(mir_net_grpc *net);

/* Writes "mir:replica:<id>" into buf (size MIR_NET_ID_MAX + 16). */
void miri_replica_uri(const char *id, char *buf, size_t size);

/* Authenticates an incoming call: reads its claimed id from md (borrowed) and checks it against
 * the membership and (TLS) the client certificate. *claimed gets the member the caller claims to
 * be (borrowed; NULL if none). Returns true if the call is from *claimed; false with *status,
 * *reason and *why (a static string) set for the refusal. Server thread. */
bool miri_authenticate(mir_net_grpc *net, grpc_call *call, const grpc_metadata_array *md,
                       miri_peer **claimed, grpc_status_code *status, miri_refusal *reason,
                       const char **why);

/* ---- net_server.c ---- */

/* Creates the server, registers the method and the completion queue, and binds listen_addr. */
mir_err miri_server_create(mir_net_grpc *net);
/* Starts the server and its thread. */
mir_err miri_server_start(mir_net_grpc *net);
/* Stops accepting, cancels every incoming call, waits until every call context is freed, and
 * destroys the server, its completion queue and its thread. Also right after create (never
 * started). Idempotent. */
void miri_server_stop(mir_net_grpc *net);

/* ---- net_client.c ---- */

/* Creates a channel per peer and starts the client thread, which opens the streams. */
mir_err miri_client_start(mir_net_grpc *net);
/* Cancels every outgoing stream, waits until every stream context is freed, destroys the
 * channels, the completion queue and the thread. Idempotent. */
void miri_client_stop(mir_net_grpc *net);
/* Starts sending the next frame to peer if its stream is open and idle. Caller holds peer->mu. */
void miri_client_kick_locked(miri_peer *peer);
/* True if peer's outgoing stream is open (accepted). Caller holds peer->mu. */
bool miri_client_connected_locked(const miri_peer *peer);

#endif
