/*
 * The gRPC peer transport: an active module that carries protocol messages between replicas over
 * long-lived gRPC streams (C core), with mutually authenticated TLS channels.
 *
 * Input events: mir.Init (nothing to do) and mir.SendMessage. For each destination of a
 * SendMessage:
 *  - the node's own id: the message is delivered to this node without touching the network, as a
 *    mir.MessageReceived with from = own id, pushed into the inbox by the transport's own thread
 *    (apply never blocks);
 *  - an id that is not in the membership: the message is dropped and counted
 *    (mir_net_messages_dropped_total{reason="unknown_destination"});
 *  - a peer: the message is appended to that peer's bounded send queue. When the queue already
 *    holds queue_max_msgs messages or queue_max_bytes bytes, the NEW message is dropped (the queue
 *    keeps the older ones, so what does get through stays in order), counted (reason queue_full,
 *    and in the peer's mir_net_peer_messages_dropped_total), and a warning is logged at most once
 *    per second per peer.
 * Any other event type is an error (it stops the node).
 *
 * Wire (proto/net/transport.proto): one client-streaming call "/mir.net.Transport/Stream" per
 * ordered pair of replicas, opened by the sender and kept open; messages queued while a frame is
 * in flight are packed together into the next frame (at most frame_max_msgs messages and
 * frame_max_bytes bytes). Received frames are checked (size, structure, destination module id)
 * and each message becomes a mir.MessageReceived event whose `from` is the AUTHENTICATED sender.
 * A malformed frame is counted, logged and its stream cancelled; it never reaches an assertion.
 * Pushing into the inbox blocks while the node's input is paused, which stops reading from the
 * stream and so pushes back on the sender through HTTP/2 flow control.
 *
 * Authentication. With TLS (the default) both sides present a certificate signed by the cluster
 * CA (gRPC verifies the chains). A replica's id is bound to its certificate by the URI SAN
 * "mir:replica:<id>" (as mir-keygen --tls writes it, with CN = <id> as well). The caller states
 * its id in the request metadata "mir-node-id"; the receiver refuses (cancels with
 * UNAUTHENTICATED or PERMISSION_DENIED, counts, logs) a stream whose id is missing, malformed, not
 * a member, its own id, or not the id of the client certificate (its URI SAN; only a certificate
 * without any "mir:replica:" URI SAN is matched on its CN instead). The caller in turn names
 * "mir:replica:<id of the peer it dials>" as the TLS target name, so gRPC refuses the handshake
 * unless the server's certificate carries that URI SAN: a caller never sends to the wrong replica,
 * and server certificates need the URI SAN. A certificate from another CA fails the TLS handshake
 * inside gRPC, before any call exists: the receiver cannot see or count it (gRPC logs it), the
 * caller counts it in mir_net_connect_failures_total.
 * Insecure mode (plaintext, the claimed id is trusted) is for local tests only and is off unless
 * the config sets `insecure`.
 *
 * Delivery guarantees. Per ordered pair of replicas, the messages that are delivered are delivered
 * in the order they were queued (FIFO), and no message is ever delivered twice: the transport
 * never retransmits (at-most-once). Messages may be lost: when the queue is full (above), when a
 * stream breaks (the frame in flight, and frames gRPC had accepted but the peer had not read, are
 * lost; the frame in flight is counted as dropped), and at shutdown. A new stream from the same
 * sender supersedes the old one on the receiver, which drops whatever still arrives on the old
 * one, so reconnects never reorder. Protocols retransmit what they need.
 *
 * Reconnects. The sender opens its stream at start and reopens it after a failure with
 * exponential backoff (backoff_min_ms doubling up to backoff_max_ms; back to the minimum once a
 * stream was accepted). Messages stay queued (within the bound) while a peer is away and flow
 * once it is back.
 *
 * Threads and locks (details in server/modules/net/grpc/net_internal.h): a server thread drives
 * the completion queue of incoming streams and pushes received messages into the inbox; a client
 * thread drives the completion queue of outgoing streams and reconnects; a self thread delivers
 * messages to self. apply() (the node's dispatcher) and the client thread share each peer's state
 * under that peer's lock (the named lock "net_grpc_send_queue").
 *
 * Metrics (mir/metrics.h; the list with units is in docs/OPERATIONS.md). The transport registers
 * them in its own set, which the node hangs below the module's (ops.metrics), so they appear on a
 * replica's /metrics with module = the transport's module id. Per member (label peer, this node
 * included for messages to self): mir_net_messages_sent_total, mir_net_messages_received_total,
 * mir_net_sent_bytes_total, mir_net_received_bytes_total, mir_net_frames_sent_total,
 * mir_net_frames_received_total, mir_net_peer_messages_dropped_total,
 * mir_net_streams_opened_total, mir_net_reconnects_total, mir_net_connect_failures_total,
 * mir_net_peer_streams_refused_total, mir_net_malformed_frames_total, and the gauges
 * mir_net_connected (0/1: the outgoing stream is open), mir_net_incoming_connected (0/1),
 * mir_net_send_queue_depth and mir_net_send_queue_bytes. Transport-wide:
 * mir_net_messages_dropped_total{reason}, mir_net_streams_refused_total{reason} and
 * mir_net_unknown_calls_total. Updates are relaxed atomics from whichever thread counts; reading
 * (mir_metrics_read on mir_net_grpc_metrics, or the node's tree) is thread-safe.
 *
 * gRPC: mir_net_grpc_new calls grpc_init() and mir_net_grpc_free (or the node, when it frees the
 * module) calls the matching grpc_shutdown(), so a process needs no gRPC calls of its own.
 */
#ifndef MIR_NET_GRPC_H
#define MIR_NET_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/metrics.h"
#include "mir/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest node id, including the terminating NUL. Node ids are made of [A-Za-z0-9_.-]. */
#define MIR_NET_ID_MAX 64
/* Longest "host:port" address, including the terminating NUL. */
#define MIR_NET_ADDR_MAX 256
/* Most members of a membership (this node included). */
#define MIR_NET_MEMBERS_MAX 256
/* Largest accepted value of max_message_bytes (and smallest). */
#define MIR_NET_MESSAGE_BYTES_MAX ((size_t)256 << 20)
#define MIR_NET_MESSAGE_BYTES_MIN ((size_t)1024)
/* Largest PEM file read for TLS. */
#define MIR_NET_PEM_BYTES_MAX ((size_t)1 << 20)

/* The request metadata key that carries the caller's node id. */
#define MIR_NET_ID_METADATA "mir-node-id"
/* The method path of a peer stream. */
#define MIR_NET_STREAM_METHOD "/mir.net.Transport/Stream"

/* One member: its node id and the address its transport listens on ("host:port"). */
typedef struct mir_net_member {
  const char *id;
  const char *addr;
} mir_net_member;

typedef struct mir_net_grpc_config {
  const char *own_id;            /* this node's id; must be one of members (required) */
  const char *listen_addr;       /* "host:port" to listen on; port 0 picks a free one (required) */
  const mir_net_member *members; /* the membership, this node included (its addr is not dialled) */
  size_t n_members;

  /* Security: either all three TLS files (PEM), or insecure = true (plaintext, for local tests:
   * a peer's claimed id is trusted). Neither, or both, is a configuration error. */
  const char *tls_ca_file;   /* the cluster CA, which signed every replica certificate */
  const char *tls_cert_file; /* this replica's certificate (URI SAN mir:replica:<own_id>) */
  const char *tls_key_file;  /* its private key */
  bool insecure;

  /* Limits. */
  size_t max_message_bytes; /* largest frame sent or received (default 4 MiB) */
  size_t queue_max_msgs;    /* per-peer send queue bound, messages (default 8192) */
  size_t queue_max_bytes;   /* per-peer send queue bound, bytes (default 64 MiB) */
  size_t frame_max_msgs;    /* most messages per frame, sent or received (default 1024) */
  size_t frame_max_bytes;   /* most bytes per frame sent, <= max_message_bytes (default 1 MiB) */

  /* Reconnects and liveness. */
  uint32_t backoff_min_ms; /* first delay before reopening a failed stream (default 100) */
  uint32_t backoff_max_ms; /* the delay doubles up to this (default 1000) */
  uint32_t keepalive_ms;   /* HTTP/2 keepalive ping period on idle links (default 10000) */
} mir_net_grpc_config;

/* Fills cfg with the defaults; own_id, listen_addr, members and security stay unset (NULL,
 * insecure = false). */
void mir_net_grpc_config_default(mir_net_grpc_config *cfg);

typedef struct mir_net_grpc mir_net_grpc;

/* Creates a transport: checks cfg (MIR_EINVAL with detail in mir_error_detail()), reads the TLS
 * files (MIR_EIO), and binds listen_addr (MIR_EIO if it cannot be bound). Nothing is sent or
 * accepted before the node starts the module. cfg and everything it points to are borrowed and
 * copied. *out is owned: free it with mir_net_grpc_free, or hand it to mir_node_add_module with
 * mir_net_grpc_ops (the node then frees it; the pointer stays valid for the accessors below until
 * mir_node_free). */
mir_err mir_net_grpc_new(const mir_net_grpc_config *cfg, mir_net_grpc **out);

/* Stops the transport if it runs (cancels every call, joins every thread) and frees it. NULL is a
 * no-op. Only for a transport that was not handed to a node. */
void mir_net_grpc_free(mir_net_grpc *net);

/* The port the transport listens on (useful with port 0). net is borrowed. */
int mir_net_grpc_port(const mir_net_grpc *net);

/* The transport's metric set (see the top of this file): borrowed, valid as long as net. Read a
 * peer's numbers with mir_metrics_read(set, name, peer_id), e.g. whether the stream to peer 1 is
 * open: mir_metrics_read(mir_net_grpc_metrics(net), "mir_net_connected", "1") == 1. */
mir_metrics *mir_net_grpc_metrics(mir_net_grpc *net);

/* The ops of the transport; the state is the mir_net_grpc *. */
extern const mir_module_ops mir_net_grpc_ops;

#ifdef __cplusplus
}
#endif
#endif
