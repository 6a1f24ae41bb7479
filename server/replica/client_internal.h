/*
 * Internals of the client service shared by client_service.c (server, lifecycle, Status, the
 * module), client_submit.c (Submit streams) and client_subscribe.c (Subscribe streams and the
 * feeder thread). Not an interface.
 *
 * Every call object counts its batches in flight (`pending`) and is freed, under the service
 * mutex, when that count is zero and the call is over; each batch yields exactly one completion,
 * whatever the outcome, so the count always returns to zero. Batches on a call are started by one
 * thread at a time, as gRPC requires: a stream's batches are chosen under the service mutex and
 * started after it is released by the thread that set the stream's `starting` (Submit) or
 * `reading` (Subscribe) flag, which the others respect, and which holds a count of its own in
 * `pending` meanwhile (the batch's completion may come on another thread before the start
 * returns); only the first batches of a new call and a refusal are started under the mutex,
 * before any other thread can know the call.
 */
#ifndef MIR_REPLICA_CLIENT_INTERNAL_H
#define MIR_REPLICA_CLIENT_INTERNAL_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.pb-c.h"
#include "client_service.h"
#include "mir/event.h"
#include "mir/lock.h"

#define CS_LOG "client"
#define CS_METHOD_SUBMIT "/mir.api.Client/Submit"
#define CS_METHOD_SUBSCRIBE "/mir.api.Client/Subscribe"
#define CS_METHOD_STATUS "/mir.api.Client/Status"
#define CS_MALFORMED_MAX 16 /* malformed requests a stream may send before it is ended */
/* gRPC reads a message of up to CS_RECV_FACTOR * max_request_bytes, so that a request a little
 * over the limit gets a refusal and its stream goes on; a bigger one is refused by gRPC before it
 * is read (RESOURCE_EXHAUSTED), which bounds what one read may cost. */
#define CS_RECV_FACTOR 2
#define CS_PEER_MAX 96                /* bytes of a connection's peer address kept (truncated) */
#define CS_PEER_PEM_MAX (64u << 10)   /* a client certificate presented (PEM) */
#define CS_RANGE_MD "mir-range"       /* trailing metadata of OUT_OF_RANGE: "below" or "ahead" */
#define CS_REQUESTS_MD "mir-requests" /* trailing metadata of a Submit stream's OK status */

/* Protobuf wire types and field keys, for the walks over encoded messages. */
#define CS_WT_VARINT 0
#define CS_WT_I64 1
#define CS_WT_LEN 2
#define CS_WT_I32 5
#define CS_KEY(field, wt) (((uint64_t)(field) << 3) | (wt))

/* A completion tag that carries its handler. */
typedef struct cs_tag {
  void (*fn)(struct cs_tag *tag, bool ok);
  void *self;
} cs_tag;

/* A request forwarded to the mempool, waiting for its TxsAccepted. */
typedef struct cs_req {
  uint64_t request_id;
  uint32_t seq;    /* per stream, in the context id */
  size_t n;        /* transactions of the request */
  uint8_t *status; /* n Trantor__TxStatus values */
  char **reason;   /* n owned strings or NULL */
  size_t *fwd;     /* indexes of the forwarded transactions, in order */
  size_t n_fwd;
  uint64_t fwd_bytes; /* their data bytes, counted in the service's bytes_at_mempool */
  struct cs_req *next;
} cs_req;

/* What ingress made of one SubmitRequest (miri_cs_submit_check). */
typedef struct cs_submit_check {
  Mir__Api__SubmitRequest *req; /* the request (owned; NULL if malformed) */
  cs_req *q;           /* its verdicts (owned, free with miri_cs_req_free; NULL if malformed) */
  uint64_t request_id; /* for the answer; 0 when the request did not decode */
} cs_submit_check;

/* A packed response waiting to be sent. */
typedef struct cs_out {
  grpc_slice slice;
  struct cs_out *next;
} cs_out;

typedef struct cs_submit {
  struct mir_client_service *svc;
  grpc_call *call;
  grpc_metadata_array md;
  gpr_timespec deadline;
  grpc_byte_buffer *recv_buf;
  grpc_byte_buffer *send_buf;
  cs_tag t_new, t_recv, t_send, t_close, t_status;
  int cancelled;
  /* under svc->mu */
  uint32_t slot, gen, next_seq;
  int pending;
  bool accepted; /* counted among the open streams */
  bool recv_posted, input_done, send_in_flight, md_sent, status_sent, closed, failed;
  bool starting;     /* a thread is starting this stream's batches (cs_submit_pump) */
  size_t unanswered; /* requests at the mempool plus responses not yet sent */
  size_t at_mempool; /* requests forwarded to the mempool, awaiting its answer */
  size_t malformed;
  uint64_t n_read; /* requests read (the "mir-requests" trailer) */
  cs_req *reqs, *reqs_tail;
  cs_out *out, *out_tail;
  /* the Submit cq thread only: fixed by the stream's first valid transaction, or at the start
   * by the client certificate (id_from_cert) */
  char client_id[TRANTOR_CLIENT_ID_MAX + 1];
  bool id_from_cert;
} cs_submit;

typedef struct cs_sub {
  struct mir_client_service *svc;
  grpc_call *call;
  grpc_metadata_array md;
  gpr_timespec deadline;
  grpc_byte_buffer *req_buf;
  grpc_byte_buffer *send_buf;
  cs_tag t_new, t_md, t_send, t_close, t_status;
  int cancelled;
  /* under svc->mu */
  int pending;
  bool listed; /* in svc->subs */
  bool send_in_flight, reading, ended, closed;
  uint64_t next_sn;
  uint64_t last_progress_ns;
  struct cs_sub *prev, *next;
  /* SubscribeRequest.client_id: if not empty, each Delivery carries only this client's
   * transactions (set once at admission, read by whichever thread sends) */
  char client_id[TRANTOR_CLIENT_ID_MAX + 1];
  /* whom the subscriber counts for (set once at admission): the certificate's client id (else
   * the filter's, else none) and the connection's peer address */
  char key_id[TRANTOR_CLIENT_ID_MAX + 1];
  char peer[CS_PEER_MAX];
} cs_sub;

/* A unary Status call, or a call to an unknown method. */
typedef struct cs_unary {
  struct mir_client_service *svc;
  grpc_call *call;
  grpc_metadata_array md;
  gpr_timespec deadline;
  grpc_call_details details; /* unknown methods */
  grpc_byte_buffer *req_buf, *send_buf;
  grpc_slice status_details;
  cs_tag t_new, t_done;
  int cancelled;
  bool unknown;
} cs_unary;

#define CS_TX_STATUS_KINDS 6 /* values of Trantor__TxStatus */

struct mir_client_service {
  mir_client_service_config cfg;
  char own_id[64], module_id[MIR_MODULE_ID_MAX], mempool_id[MIR_MODULE_ID_MAX];
  char listen_addr[256];
  char *tls_cert, *tls_key; /* PEM, owned */
  char *client_ca;          /* PEM of the client CA (owned); set: client certificates required */
  int port;

  grpc_server *server;
  grpc_completion_queue *cq_submit, *cq_main;
  void *m_submit, *m_subscribe, *m_status;
  pthread_t th_submit, th_main, th_feed;
  bool threads_started;
  bool cqs_drained; /* the cq threads saw GRPC_QUEUE_SHUTDOWN */
  mir_inbox *inbox;

  mir_lock mu;            /* "client_api" */
  pthread_cond_t cv;      /* feeder: work to do; stop: live objects reached zero */
  bool started, stopping; /* under mu */
  bool shutdown_notified;
  bool feed_signal;
  uint64_t log_next_sn; /* the ordered log's next_sn, from its listener */
  size_t live;          /* call objects and outstanding server requests */
  cs_submit **slots;    /* max_submit_streams entries */
  uint32_t next_gen;
  cs_sub *subs;
  size_t n_subs;
  cs_tag t_shutdown;
  /* Transaction bytes of requests at the mempool over all Submit streams (max_bytes_in_flight):
   * what clients make the replica hold on the way to the mempool, bounded in sum, not only per
   * stream. */
  uint64_t bytes_at_mempool;
  /* Metrics (owned set, through ops.metrics), registered by cs_metrics_init. */
  mir_metrics *metrics;
  struct {
    mir_counter *submit_streams, *submit_refused, *requests, *malformed, *requests_busy;
    mir_counter *txs_accepted, *refused_busy, *refused_ingress;
    mir_counter *refused[CS_TX_STATUS_KINDS]; /* by the mempool, by Trantor__TxStatus */
    mir_counter *unauthenticated, *subscribers, *subscribers_refused, *subscribers_cut;
    mir_counter *deliveries, *status_calls, *unknown_calls;
    mir_gauge *open_submit_streams, *open_subscribers;
  } st;
};

/* ---- client_service.c ---- */
/* The most gRPC reads of one message (CS_RECV_FACTOR * max_request_bytes, capped). */
size_t miri_cs_recv_max(const mir_replica_client_limits *limits);
/* With client certificates required (svc->client_ca): copies into id (cap bytes) the client id
 * that the certificate of call (verified by gRPC against the client CA during the handshake, and
 * checked again here by mir_tls_client_cert_check) names. False with the reason in why (why_cap
 * bytes) when it names none. Costs a signature check: call it without svc->mu. */
bool miri_cs_cert_identity(struct mir_client_service *svc, grpc_call *call, char *id, size_t cap,
                           char *why, size_t why_cap);
/* Sets a tag's handler. */
void miri_cs_tag_init(cs_tag *t, void (*fn)(cs_tag *, bool), void *self);
/* Packs msg (borrowed) into a new byte buffer (owned: destroy after the send completes). */
grpc_byte_buffer *miri_cs_pack(const ProtobufCMessage *msg);
/* Copies a received buffer (borrowed) into one owned slice; false if longer than max. */
bool miri_cs_flatten(grpc_byte_buffer *bb, size_t max, grpc_slice *out);
/* Counts an object leaving; wakes a stop waiting for zero. Caller holds svc->mu. */
void miri_cs_live_dec(struct mir_client_service *svc);
uint64_t miri_cs_now_ns(void);

/* ---- client_submit.c ---- */
/* Decoding a SubmitRequest of len bytes may allocate at most miri_cs_decode_budget(len) bytes:
 * protobuf-c spends 20 to 40 bytes per byte of a message of small or unknown fields, so without a
 * budget a client could make a replica allocate ~42 times its request. Legitimate requests stay
 * below 5 times their size (empty transactions are the worst case). */
#define CS_DECODE_FACTOR 8
#define CS_DECODE_SLACK (64u << 10)
size_t miri_cs_decode_budget(size_t len);
/* The ingress checks of one SubmitRequest, without gRPC or locks (fuzzed by
 * tests/replica/fuzz_client_ingress.c). Decodes bytes[0..len) (borrowed) and checks it against
 * limits (borrowed) and max_tx_bytes: at most max_request_bytes and max_txs_per_request (counted
 * on the wire before decoding); each transaction gets a verdict: ACCEPTED (to forward), or INVALID
 * or TOO_LARGE with a reason. A client id is valid when its bytes on the wire are a client id
 * (mir_tls_client_id_valid: so no NUL, which decoding would cut at, and nothing but ASCII).
 * client_id (in/out, TRANTOR_CLIENT_ID_MAX + 1 bytes) is the stream's client id: empty until its
 * first valid transaction sets it (unless id_from_cert: then it is the certificate's, named so in
 * reasons); later ones must match it. MIR_OK: out->req and out->q are set (owned). MIR_EPROTO:
 * refused; mir_error_detail() is the text for the client and out->request_id the id to echo (0
 * when the walk over the request's fields did not get through); nothing is owned. */
mir_err miri_cs_submit_check(const uint8_t *bytes, size_t len,
                             const mir_replica_client_limits *limits, uint64_t max_tx_bytes,
                             char *client_id, bool id_from_cert, cs_submit_check *out);
/* Frees r (owned) and its reasons. */
void miri_cs_req_free(cs_req *r);
/* Asks the server for the next Submit call (no-op while stopping). Caller holds svc->mu. */
void miri_cs_submit_request(struct mir_client_service *svc);
/* The module's half: the mempool answered (payload borrowed). Dispatcher thread. */
void miri_cs_submit_answer(struct mir_client_service *svc, const Trantor__TxsAccepted *acc);

/* ---- client_subscribe.c ---- */
/* The ingress checks of a SubscribeRequest, without gRPC or locks (fuzzed with Submit's). Decodes
 * bytes[0..len) (borrowed), at most limits->max_request_bytes, with a client_id that is empty or a
 * client id (checked on the wire, as Submit's). MIR_OK: sets *from_sn and client_id (out,
 * TRANTOR_CLIENT_ID_MAX + 1 bytes; empty: every client). MIR_EPROTO: mir_error_detail() is the
 * text for the client. */
mir_err miri_cs_subscribe_check(const uint8_t *bytes, size_t len,
                                const mir_replica_client_limits *limits, uint64_t *from_sn,
                                char *client_id);
/* Reads a varint at p[*pos..n) and moves *pos past it; false if it runs past n or 10 bytes. */
bool miri_cs_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v);
/* Moves *pos past the value of a field of wire type wt; false if it runs past n. */
bool miri_cs_skip(const uint8_t *p, size_t n, size_t *pos, uint64_t wt);
void miri_cs_subscribe_request(struct mir_client_service *svc);
/* The feeder thread: sends to subscribers when the log grows, cuts stalled ones. */
void *miri_cs_feed_main(void *arg);

#endif
