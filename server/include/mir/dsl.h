/*
 * The DSL: a passive-module runtime for writing protocols as handlers.
 *
 * A protocol creates a mir_dsl for its module id, registers handlers and adds the dsl to a node
 * (or returns it from a factory generator) with mir_dsl_ops. For each event of a batch the
 * runtime runs, in registration order, every handler registered for the event's type, then every
 * after-event check; after the batch it runs every after-batch check, then frees the contexts
 * disposed during the batch. Handlers emit events through the dsl; the batch's output is what
 * they emitted, in order.
 *
 * Messages from the network arrive as mir.MessageReceived events. The runtime decodes the packed
 * message and runs the handlers registered for its type. A message that cannot be decoded, is
 * too big, or has no handler is dropped and counted, never an error: a Byzantine peer must not
 * be able to stop a node. Handlers registered with mir_dsl_upon_event for mir.MessageReceived
 * itself, if any, run before the message handlers. mir.Init without a handler is ignored; any
 * other event type without a handler is an error (a wiring mistake between local modules).
 *
 * Request/response: a requester stores a context, sends the request with an Origin naming its
 * module and the context id, and finds the context again when the response comes back. Context
 * ids are sequential from 0, so runs are reproducible. Disposal waits for the end of the batch so
 * that every handler of the response can still read the context.
 *
 * Everything here is single-threaded: a dsl is used from the thread applying its events.
 */
#ifndef MIR_DSL_H
#define MIR_DSL_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/event.h"
#include "mir/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bounds. */
#define MIR_DSL_MESSAGE_BYTES_MAX_DEFAULT ((size_t)4 << 20) /* encoded size of one message */
#define MIR_DSL_CONTEXTS_MAX_DEFAULT 65536                  /* live contexts */
#define MIR_DSL_HANDLERS_MAX 1024                           /* registrations of each kind */

typedef struct mir_dsl mir_dsl;

/* Runs for every event of the registered type. ev is borrowed, valid until the handler returns.
 * user is the dsl's user pointer. An error stops the node; set mir_error_set() detail first. */
typedef mir_err (*mir_dsl_event_fn)(mir_dsl *dsl, const mir_event *ev, void *user);

/* Runs for every message of the registered type received from node `from`. from and msg are
 * borrowed, valid until the handler returns. An error stops the node, so a handler must treat a
 * bad message from a peer as something to ignore, not as an error. */
typedef mir_err (*mir_dsl_message_fn)(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                      void *user);

/* A condition check, run after every event or after every batch. */
typedef mir_err (*mir_dsl_check_fn)(mir_dsl *dsl, void *user);

/* Creates a dsl for module_id (copied; a valid module id, asserted). user is borrowed unless a
 * free function is set with mir_dsl_set_user_free. Returns owned (free with mir_dsl_free). */
mir_dsl *mir_dsl_new(const char *module_id, void *user);

/* Frees the dsl, its live contexts (with their free functions), events emitted but not yet
 * handed out, and the user pointer if a user free function was set. NULL is a no-op. */
void mir_dsl_free(mir_dsl *dsl);

/* Makes the dsl own its user pointer: mir_dsl_free calls free_fn(user). */
void mir_dsl_set_user_free(mir_dsl *dsl, void (*free_fn)(void *user));

/* Limits: largest encoded message decoded (0: the default) and most live contexts (0: the
 * default). Set them before the first event. */
void mir_dsl_set_message_bytes_max(mir_dsl *dsl, size_t bytes);
void mir_dsl_set_contexts_max(mir_dsl *dsl, size_t n);

/* The module id (borrowed, valid until mir_dsl_free) and the user pointer (borrowed). */
const char *mir_dsl_module_id(const mir_dsl *dsl);
void *mir_dsl_user(const mir_dsl *dsl);

/* ---- registration (before the module applies its first event) ---- */

/* Runs fn for every event whose payload has type `type` (borrowed, static). MIR_EFULL past
 * MIR_DSL_HANDLERS_MAX registrations. */
mir_err mir_dsl_upon_event(mir_dsl *dsl, const ProtobufCMessageDescriptor *type,
                           mir_dsl_event_fn fn);

/* Runs fn for every received message of type msg_type (borrowed, static), which is also added
 * to the type registry so that it can be decoded. MIR_EFULL past MIR_DSL_HANDLERS_MAX. */
mir_err mir_dsl_upon_message(mir_dsl *dsl, const ProtobufCMessageDescriptor *msg_type,
                             mir_dsl_message_fn fn);

/* Runs fn after every event (after its handlers), or once after every batch. */
mir_err mir_dsl_after_event(mir_dsl *dsl, mir_dsl_check_fn fn);
mir_err mir_dsl_after_batch(mir_dsl *dsl, mir_dsl_check_fn fn);

/* ---- emitting ---- */

/* Emits ev (takes ownership). */
void mir_dsl_emit(mir_dsl *dsl, mir_event *ev);

/* Emits an event to dest (borrowed, a valid module id) from this module; takes ownership of
 * payload. */
void mir_dsl_emit_new(mir_dsl *dsl, const char *dest, ProtobufCMessage *payload);

/* Asks the transport module transport_id to send msg (borrowed) to remote_module on each of the
 * n nodes (borrowed ids). */
void mir_dsl_send(mir_dsl *dsl, const char *transport_id, const char *const *nodes, size_t n,
                  const char *remote_module, const ProtobufCMessage *msg);

/* Moves the events emitted so far to the end of out. Only needed when emitting outside apply
 * (tests); apply hands them out itself. */
void mir_dsl_take_emitted(mir_dsl *dsl, mir_event_list *out);

/* ---- contexts ---- */

/* Stores ctx (takes ownership: free_fn(ctx) runs at disposal or mir_dsl_free; free_fn may be NULL
 * to keep ownership with the caller) and sets *id_out to its id. MIR_EFULL (ctx freed) once the
 * number of live contexts reached the limit. */
mir_err mir_dsl_store_context(mir_dsl *dsl, void *ctx, void (*free_fn)(void *ctx),
                              uint64_t *id_out);

/* The context stored under id (borrowed), or NULL if there is none: a response carrying an
 * unknown or already disposed id is not an error here, the caller decides. */
void *mir_dsl_context(const mir_dsl *dsl, uint64_t id);

/* Disposes of the context id at the end of the current batch (at once outside apply). Unknown
 * ids and repeated calls are ignored. */
void mir_dsl_dispose_context(mir_dsl *dsl, uint64_t id);

/* Number of live contexts (including those to be disposed at the end of the batch). */
size_t mir_dsl_context_count(const mir_dsl *dsl);

/* Fills out (an initialised Mir__Origin whose module is unset or the static empty string) with
 * this module's id (owned copy, freed with the message tree) and context_id. */
void mir_dsl_fill_origin(const mir_dsl *dsl, uint64_t context_id, Mir__Origin *out);

/* Returns a new Origin for context_id: an owned tree (protobuf_c_message_free_unpacked), ready to
 * be set as a sub-message of a request payload. */
Mir__Origin *mir_dsl_origin_new(const mir_dsl *dsl, uint64_t context_id);

/* ---- the module ---- */

/* The dsl's metric set (borrowed, valid until mir_dsl_free), named after the module. The runtime
 * counts in it mir_dsl_messages_total (peer messages handled) and
 * mir_dsl_messages_dropped_total{reason="no_handler"|"undecodable"}; a protocol registers its own
 * metrics here when it creates the dsl (metrics.h), and mir_dsl_ops.metrics hands the set to the
 * node or factory that runs the module, which reports it and folds its counters when the module
 * is collected. */
mir_metrics *mir_dsl_metrics(const mir_dsl *dsl);

/* The ops of a dsl module; the state is the mir_dsl * and destroy is mir_dsl_free. */
extern const mir_module_ops mir_dsl_ops;

#ifdef __cplusplus
}
#endif
#endif
