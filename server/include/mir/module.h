/*
 * Modules: a const ops table plus a state pointer.
 *
 * Passive modules hold all protocol logic: apply() is pure and deterministic (no I/O, clock,
 * randomness, threads or blocking), so the same state and the same events give the same output.
 * Active modules sit at the edges (network, timer, crypto workers, storage, client API): their
 * apply() must not block either; they own threads that push events into the node's inbox.
 */
#ifndef MIR_MODULE_H
#define MIR_MODULE_H

#include "mir/errors.h"
#include "mir/event.h"
#include "mir/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mir_module_kind { MIR_MODULE_PASSIVE = 0, MIR_MODULE_ACTIVE = 1 } mir_module_kind;

/* Where an active module's threads put the events they produce. */
typedef struct mir_inbox mir_inbox;

typedef struct mir_module_ops {
  const char *name; /* kind of module, for logs ("timer", "pbft") */
  mir_module_kind kind;

  /* Applies a batch of events addressed to this module (or its submodules), in FIFO order.
   * in: borrowed list of owned events; the module may unlink events from it (then owns them);
   * the node frees the rest after apply returns. out: events produced, appended (takes
   * ownership). Returning an error stops the node; set mir_error_set() detail first. Runs on the
   * node's dispatcher thread and never blocks. Required. */
  mir_err (*apply)(void *state, mir_event_list *in, mir_event_list *out);

  /* Active modules only: starts the module's threads, which push through inbox (borrowed, valid
   * until stop returns). Called once, after every module got its Init event queued. */
  mir_err (*start)(void *state, mir_inbox *inbox);

  /* Active modules only: stops and joins the module's threads. Idempotent. After it returns the
   * module never touches the inbox again. */
  void (*stop)(void *state);

  /* Frees state and everything it owns. Called once, after stop. May be NULL. */
  void (*destroy)(void *state);

  /* True if the module (or a submodule of it) takes mir.MessageReceived, messages from peers.
   * The node drops and counts a peer message addressed to any other module
   * (mir_node_dropped_events_total{reason="stray_message"}): the transport only checks that a
   * destination is a well-formed module id, and a module that never expects MessageReceived would
   * fail on it and stop the node, which would let any peer stop a replica by addressing its timer
   * or its crypto module. */
  bool peer_messages;

  /* The module's own metric set (borrowed: the state owns it and frees it in destroy), or NULL
   * when it has none. The node (or the factory, for a submodule) hangs it below the module's id
   * when the module is added and takes it off before destroy; a factory folds a collected
   * submodule's counters into its own. May be NULL. */
  mir_metrics *(*metrics)(void *state);
} mir_module_ops;

/* Pushes events (takes ownership; the list is left empty) into the node. Blocks while the node's
 * input is paused (buffered events above the pause threshold) until they drop to the resume
 * threshold. Returns MIR_ESTOPPED, freeing the events, once the node is stopping. Thread-safe. */
mir_err mir_inbox_push(mir_inbox *inbox, mir_event_list *events);

/* Like mir_inbox_push but never blocks: MIR_EFULL while input is paused (events stay with the
 * caller, in the list). */
mir_err mir_inbox_try_push(mir_inbox *inbox, mir_event_list *events);

/* Pushes one event (takes ownership). */
mir_err mir_inbox_push_one(mir_inbox *inbox, mir_event *ev);

#ifdef __cplusplus
}
#endif
#endif
