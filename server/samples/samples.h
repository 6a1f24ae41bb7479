/*
 * The framework samples: protocol modules small enough to read in one sitting, written with the
 * DSL (mir/dsl.h), plus the pieces that let tests, programs and mir-cat run them.
 *
 *  - pingpong: two nodes ping each other on a timer and answer every Ping with a Pong;
 *  - bcb: Byzantine consistent broadcast with signed echoes (Reiter 1994);
 *  - the test signer: a passive stand-in for the crypto module. NOT SECURE: its "signatures" are
 *    a keyless function of the node id and the data that anyone can compute. It only lets tests
 *    see that a signature by one node does not pass as another's and that tampered data fails;
 *  - the collector: a passive module that keeps what it receives, for tests and programs to look
 *    at from other threads;
 *  - mir_sample_add_modules: the protocol modules of a sample for one node, as the programs
 *    (server/samples/pingpong_main.c, bcb_main.c) wire them, for mir-cat --replay.
 *
 * The protocol modules are pure: no clocks, I/O, threads or randomness. Every message from a peer
 * is validated (sender, sizes, membership) and dropped and counted if bad, never an error.
 */
#ifndef MIR_SAMPLES_H
#define MIR_SAMPLES_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/dsl.h"
#include "mir/errors.h"
#include "mir/event.h"
#include "mir/module.h"
#include "mir/node.h"
#include "samples/bcb.pb-c.h"
#include "samples/pingpong.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Registers the payload types of the samples (samples.pingpong.*, samples.bcb.*) in the type
 * registry, so that nested events, messages and event logs naming them can be decoded.
 * Idempotent; the module constructors below call it too. */
mir_err mir_samples_register_types(void);

/* ---- module ids the sample programs use (and mir_sample_add_modules assumes) ---- */

#define MIR_SAMPLE_NET "net"               /* the transport */
#define MIR_SAMPLE_TIMER "timer"           /* the timer (pingpong) */
#define MIR_SAMPLE_CRYPTO "crypto"         /* the signer (bcb) */
#define MIR_SAMPLE_APP "app"               /* the collector: reports and deliveries go here */
#define MIR_SAMPLE_PINGPONG "pingpong"     /* the pingpong module */
#define MIR_SAMPLE_BCB "bcb"               /* the BCB module */
#define MIR_SAMPLE_BCB_INSTANCE "bcb-demo" /* the BCB instance id */
#define MIR_SAMPLE_BCB_NODES 4             /* nodes "0" .. "3"; "0" leads */
#define MIR_SAMPLE_BCB_LEADER "0"

/* Adds the protocol modules of `sample` for node node_id to node (borrowed, not started), as the
 * sample programs wire them, without edge modules (transport, timer) or the collector:
 *  - "pingpong" (node_id "0" or "1"): the pingpong module "pingpong" (peer: the other node,
 *    period MIR_PINGPONG_PERIOD_MS_DEFAULT, reports to "app");
 *  - "bcb" (node_id "0" .. "3"): the test signer "crypto" and the BCB module "bcb" (instance
 *    MIR_SAMPLE_BCB_INSTANCE, leader "0", deliveries to "app").
 * MIR_ENOTFOUND for an unknown sample, MIR_EINVAL for a node id the sample does not have, or an
 * error of mir_node_add_module. sample and node_id are borrowed. */
mir_err mir_sample_add_modules(mir_node *node, const char *sample, const char *node_id);

/* Adds only the BCB module "bcb" of node node_id ("0" .. "3"), configured exactly as
 * mir_sample_add_modules(node, "bcb", node_id) configures it, without the test signer: the caller
 * adds the module that serves "crypto" (the Ed25519 crypto module in bcb_grpc.h). node is borrowed
 * and not started. *bcb_out (may be NULL) receives the module (its counters: mir_dsl_metrics); the
 * node owns it (valid until mir_node_free). MIR_EINVAL for another node id, or an error of
 * mir_node_add_module. */
mir_err mir_sample_add_bcb(mir_node *node, const char *node_id, mir_dsl **bcb_out);

/* ---- pingpong ---- */

#define MIR_PINGPONG_PERIOD_MS_DEFAULT 1000

/* Creates a pingpong module named module_id for node self. On Init it asks the timer timer_id for
 * a samples.pingpong.PingTime event every period_ms (> 0); on each PingTime it sends
 * Ping{seq_nr} (0, 1, 2, ...) through transport transport_id to module_id on node peer; it
 * answers a Ping from peer with Pong{same seq_nr}. Every Ping and Pong received from peer is
 * reported to observer_id as a samples.pingpong.Report event (observer_id NULL: no reports).
 * All strings are borrowed and copied; module ids must be valid, node ids 1 to
 * MIR_MODULE_ID_MAX - 1 characters and different from each other (MIR_EINVAL otherwise). *out is
 * owned: add it to a node with mir_dsl_ops (the node frees it), or free it with mir_dsl_free.
 * Its counters are in its metric set (mir_dsl_metrics, below the node's set for module_id):
 * mir_pingpong_pings_sent_total, mir_pingpong_pings_received_total,
 * mir_pingpong_pongs_received_total and mir_pingpong_dropped_messages_total (from a node other
 * than the peer). */
mir_err mir_pingpong_new(const char *module_id, const char *self, const char *peer,
                         const char *transport_id, const char *timer_id, uint64_t period_ms,
                         const char *observer_id, mir_dsl **out);

/* ---- BCB ---- */

#define MIR_BCB_NODES_MAX 256                    /* members of one instance */
#define MIR_BCB_DATA_BYTES_MAX ((size_t)1 << 20) /* broadcast payload */
#define MIR_BCB_SIGNATURE_BYTES_MAX 512          /* one signature in an Echo or a Final */
#define MIR_BCB_INSTANCE_BYTES_MAX 256           /* the instance id */

typedef struct mir_bcb_config {
  const char *module_id;    /* this module's id; peers' BCB modules have the same id */
  const char *instance_id;  /* distinguishes instances: part of every signed echo */
  const char *const *nodes; /* the members, n_nodes distinct node ids */
  size_t n_nodes;           /* 1 .. MIR_BCB_NODES_MAX */
  const char *leader;       /* a member: the node that broadcasts */
  const char *self;         /* a member: this node */
  const char *transport_id; /* transport module */
  const char *crypto_id;    /* serves SignRequest, VerifyRequest, VerifyManyRequest */
  const char *consumer_id;  /* gets samples.bcb.Deliver */
} mir_bcb_config;

/* Echoes needed for a certificate among n nodes: more than (n + f) / 2 with f = (n - 1) / 3. */
size_t mir_bcb_quorum(size_t n_nodes);

/* Creates a BCB module from cfg (borrowed; everything is copied). With N members and
 * f = (N - 1) / 3: the leader, on a samples.bcb.BroadcastRequest, sends StartMessage(data) to
 * every member; a member signs [instance_id, "ECHO", data] for the first Start from the leader
 * and sends EchoMessage(signature) to the leader; the leader verifies each member's first echo
 * and, holding mir_bcb_quorum(N) valid ones, sends FinalMessage(data, signers, signatures) to
 * every member; a member verifies the first well-formed Final from the leader (one at a time)
 * and emits samples.bcb.Deliver(data) to consumer_id once. A BroadcastRequest at a non-leader,
 * a second one, or one larger than MIR_BCB_DATA_BYTES_MAX stops the node (a local wiring
 * error). MIR_EINVAL for an invalid config. *out is owned (add with mir_dsl_ops, or
 * mir_dsl_free). Its counters are in its metric set (mir_dsl_metrics):
 * mir_bcb_dropped_messages_total (peer messages rejected at ingress: sender, sizes, counts, ids),
 * mir_bcb_echoes_valid_total and mir_bcb_echoes_invalid_total (leader: echoes by whether their
 * signature verified), mir_bcb_finals_rejected_total (Finals that failed verification),
 * mir_bcb_stale_responses_total (crypto responses for unknown contexts) and
 * mir_bcb_deliveries_total (0 or 1). */
mir_err mir_bcb_new(const mir_bcb_config *cfg, mir_dsl **out);

/* Returns an owned event (free with mir_event_free, or hand to a node) asking the BCB module
 * dest to broadcast data (borrowed, len bytes). src may be NULL. */
mir_event *mir_bcb_broadcast_request(const char *dest, const char *src, const void *data,
                                     size_t len);

/* ---- the test signer (NOT SECURE) ---- */

#define MIR_TEST_SIGNATURE_BYTES 32

/* Computes the test signature of node_id (borrowed) over the n parts (borrowed): a keyless
 * mixing function of the node id and the length-prefixed parts. Deterministic; anyone can compute
 * it, which is exactly why it is only for tests. */
void mir_test_signature(const char *node_id, const ProtobufCBinaryData *parts, size_t n,
                        uint8_t out[MIR_TEST_SIGNATURE_BYTES]);

/* Creates a passive signer module module_id for node node_id (both borrowed, copied). It answers
 * mir.SignRequest with mir_test_signature(node_id, data), mir.VerifyRequest and
 * mir.VerifyManyRequest by recomputing the named node's signature, at once (same batch), to
 * origin.module with the request's origin. A request without a valid origin stops the node (a
 * local wiring error). *out is owned (add with mir_dsl_ops, or mir_dsl_free). */
mir_err mir_test_signer_new(const char *module_id, const char *node_id, mir_dsl **out);

/* ---- the collector ---- */

#define MIR_COLLECTOR_EVENTS_MAX_DEFAULT 65536

typedef struct mir_collector mir_collector;

/* Called on the node's dispatcher thread for every event the collector keeps (ev borrowed, valid
 * until the call returns), after it is stored. Must not block for long. */
typedef void (*mir_collector_fn)(void *user_data, const mir_event *ev);

/* Creates a collector that keeps up to events_max (0: the default) events, other than mir.Init,
 * addressed to it; further events are dropped and counted. fn may be NULL; user_data is
 * borrowed. *out is owned (free with mir_collector_free). To use it, add it to a node with
 * mir_collector_ops: the node does NOT take ownership (the ops have no destroy), so that tests can
 * read the collector after the node is gone; free it after mir_node_free. */
mir_err mir_collector_new(size_t events_max, mir_collector_fn fn, void *user_data,
                          mir_collector **out);

/* Frees the collector and the events it kept. NULL is a no-op. */
void mir_collector_free(mir_collector *c);

/* Number of kept events of type `type` (NULL: of any type). Thread-safe. */
size_t mir_collector_count(mir_collector *c, const ProtobufCMessageDescriptor *type);

/* A copy of the payload of the i-th kept event of type `type` (NULL: any type), in arrival order,
 * or NULL if there are not that many. Returns owned (free with protobuf_c_message_free_unpacked).
 * If src_out is not NULL it receives the event's source module id. Thread-safe. */
ProtobufCMessage *mir_collector_get(mir_collector *c, const ProtobufCMessageDescriptor *type,
                                    size_t i, char src_out[MIR_MODULE_ID_MAX]);

/* Waits until at least count events of type `type` (NULL: any) are kept or timeout_ms passes.
 * Returns true if they are. Thread-safe. */
bool mir_collector_wait(mir_collector *c, const ProtobufCMessageDescriptor *type, size_t count,
                        uint64_t timeout_ms);

/* Events dropped because the collector was full. Thread-safe. */
uint64_t mir_collector_dropped(mir_collector *c);

/* The ops of a collector; the state is the mir_collector *. Passive, no destroy. */
extern const mir_module_ops mir_collector_ops;

#ifdef __cplusplus
}
#endif
#endif
