/*
 * The in-process transport: nodes of one process exchange messages through a shared
 * mir_local_net, with no sockets and no serialisation beyond the packed message itself.
 *
 * Each node gets an active transport module attached to the net under its node id. Its apply()
 * takes mir.SendMessage events and, for each destination, queues a mir.MessageReceived (from =
 * the sender's node id, addressed to msg.dest_module) on the destination's delivery queue. A
 * delivery thread per node moves queued messages into that node's inbox, in order, blocking
 * there under the node's backpressure; apply() itself never waits for another node. Messages to
 * the sending node itself take the same queue, so they too arrive asynchronously.
 *
 * Order: messages from one sender to one destination arrive in the order they were sent (each
 * destination has a single FIFO queue and a single delivery thread).
 *
 * Drops (counted in the sender's statistics, never an error): a destination that is not
 * attached to the net, a destination whose transport has stopped, a destination whose queue
 * holds queue_max messages already, and a malformed SendMessage (no message, or an invalid
 * destination module id). A message queued for a node whose transport has been created but not
 * yet started waits for the start, so nodes of one process may start in any order. Messages
 * still queued (or refused by a stopping node) when a transport stops are counted as
 * dropped_at_stop in the receiver's statistics.
 *
 * The module accepts mir.Init (nothing to do) and mir.SendMessage; any other event type is a
 * wiring error that stops the node.
 */
#ifndef MIR_NET_LOCAL_H
#define MIR_NET_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bound of one node's delivery queue, in messages. */
#define MIR_LOCAL_NET_QUEUE_MAX_DEFAULT 65536
/* Most nodes attached to one net at a time. */
#define MIR_LOCAL_NET_NODES_MAX 1024
/* Most messages a delivery thread hands to the inbox in one push. */
#define MIR_LOCAL_NET_PUSH_MAX 256

typedef struct mir_local_net mir_local_net;
typedef struct mir_local_transport mir_local_transport;

typedef struct mir_local_net_params {
  size_t queue_max; /* most messages waiting in one node's delivery queue (0: the default) */
} mir_local_net_params;

/* Creates a net. params may be NULL for the defaults and is copied. *out is owned (free with
 * mir_local_net_free, after every transport attached to it has been freed). */
mir_err mir_local_net_new(const mir_local_net_params *params, mir_local_net **out);

/* Frees the net. Every transport created on it must have been freed first (asserted: a transport
 * keeps a pointer to its net). NULL is a no-op. */
void mir_local_net_free(mir_local_net *net);

/* Creates the transport module of node node_id (borrowed, copied; 1 to MIR_MODULE_ID_MAX - 1
 * characters) and attaches it to net (borrowed; must outlive the transport). From now on
 * messages to node_id are queued for it. MIR_EEXIST if node_id is attached already, MIR_EFULL
 * past MIR_LOCAL_NET_NODES_MAX nodes, MIR_EINVAL for a bad id. *out is owned: hand it to
 * mir_node_add_module with mir_local_transport_ops (the node frees it), or free it with
 * mir_local_transport_free. */
mir_err mir_local_net_transport_new(mir_local_net *net, const char *node_id,
                                    mir_local_transport **out);

/* Stops the delivery thread if running, detaches the node from its net and frees the transport
 * with every message still queued for it. NULL is a no-op. */
void mir_local_transport_free(mir_local_transport *t);

/* The transport reports through ops.metrics: mir_net_messages_sent_total (queued for a
 * destination), mir_net_messages_received_total (pushed into this node's inbox),
 * mir_net_messages_dropped_total{reason="unknown_destination"|"stopped"|"queue_full"|"invalid"|
 * "at_stop"}, gauges mir_net_queue_depth and mir_net_queue_depth_max (this node's receive queue),
 * and the named lock "net_local_queue". */

/* The ops of the transport module; the state is the mir_local_transport *. Active. */
extern const mir_module_ops mir_local_transport_ops;

#ifdef __cplusplus
}
#endif
#endif
