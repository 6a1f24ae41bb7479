/*
 * The node: named modules, one dispatcher thread, per-module FIFO queues, a bounded inbox for
 * active modules.
 *
 * Loop phases (node.c): (1) drain the inbox into the per-module queues (routing on the first
 * component of each event's destination); (2) pick the next module with queued events in
 * round-robin order; (3) hand at most max_batch of its events to the interceptor, then to apply();
 * (4) route apply's output back into the queues; (5) resume paused input once buffered events
 * fell to the resume threshold. Per destination module, events are applied in the order they were
 * routed. The first module error stops the node.
 *
 * Modes: normal (a dispatcher thread), manual (no thread: the caller drives mir_node_step, as the
 * simulator does) and debug (no Init, only injected events are applied, and outputs are captured
 * instead of routed: mir_node_debug_apply).
 */
#ifndef MIR_NODE_H
#define MIR_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/event.h"
#include "mir/metrics.h"
#include "mir/module.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_NODE_MODULES_MAX 64

typedef struct mir_node mir_node;

typedef enum mir_node_mode {
  MIR_NODE_NORMAL = 0,
  MIR_NODE_MANUAL = 1,
  MIR_NODE_DEBUG = 2
} mir_node_mode;

typedef struct mir_node_config {
  size_t max_batch;        /* most events per apply (default 512) */
  size_t pause_threshold;  /* pause active input when buffered events exceed this (8192) */
  size_t resume_threshold; /* resume when they fall to this or below (6144) */
  mir_node_mode mode;
} mir_node_config;

/* Fills cfg with the defaults. */
void mir_node_config_default(mir_node_config *cfg);

/* Sees every batch just before it is applied, on the dispatcher thread. An error stops the node.
 * batch is borrowed and valid until the call returns. */
typedef struct mir_interceptor {
  mir_err (*intercept)(void *user_data, const char *node_id, const char *module_id,
                       const mir_event_list *batch);
  void *user_data;
} mir_interceptor;

/* Creates a node. node_id and cfg are copied (cfg NULL: defaults). MIR_EINVAL for an invalid
 * config (detail in mir_error_detail()). *out is owned (free with mir_node_free). */
mir_err mir_node_new(const char *node_id, const mir_node_config *cfg, mir_node **out);

/* Adds a top-level module before start. Takes ownership of state (ops->destroy is called by
 * mir_node_free, or right away if this fails). ops is borrowed and must outlive the node. id must
 * be one component. MIR_EEXIST for a duplicate id. */
mir_err mir_node_add_module(mir_node *node, const char *id, const mir_module_ops *ops, void *state);

/* Sets the interceptor (copied) before start. */
void mir_node_set_interceptor(mir_node *node, const mir_interceptor *interceptor);

/* Queues Init to every module (not in debug mode), starts active modules, then (normal mode)
 * the dispatcher thread. */
mir_err mir_node_start(mir_node *node);

/* Adds events from outside (takes ownership). Not throttled; MIR_ESTOPPED once stopped. In
 * manual mode the events are routed at the next mir_node_step. */
mir_err mir_node_inject(mir_node *node, mir_event_list *events);

/* Waits until the node stops by itself (a module error) or timeout_ms passes (0: forever).
 * Returns MIR_ETIMEDOUT if still running, else the node's exit error. */
mir_err mir_node_wait(mir_node *node, uint64_t timeout_ms);

/* Stops the node: the dispatcher and every active module's threads are joined. Idempotent.
 * Returns the first module error, or MIR_OK if the node was stopped by request. */
mir_err mir_node_stop(mir_node *node);

/* Stops (if needed) and frees the node, its modules and every buffered event. NULL is a no-op. */
void mir_node_free(mir_node *node);

/* The node's id (borrowed, valid until mir_node_free). */
const char *mir_node_id(const mir_node *node);

/* Detail of the error that stopped the node ("" if none); valid until mir_node_free. */
const char *mir_node_last_error(const mir_node *node);

/* Manual mode: routes injected/inbox events, then applies one batch of the next module with
 * queued events (round robin). *applied is set to the number of events applied (0: nothing to do).
 * Returns the module's error, if any, which also stops the node. */
mir_err mir_node_step(mir_node *node, size_t *applied);

/* Manual mode: applies one batch of the module with index `module_index` (order of
 * mir_node_add_module). Lets a simulator choose the schedule. */
mir_err mir_node_step_module(mir_node *node, size_t module_index, size_t *applied);

/* Number of modules and the id of module i (borrowed). */
size_t mir_node_module_count(const mir_node *node);
const char *mir_node_module_id(const mir_node *node, size_t i);
/* Events queued for module i (manual mode; approximate while a dispatcher runs). */
size_t mir_node_module_queued(const mir_node *node, size_t i);

/* Debug mode: routes in (takes ownership) to the module queues, applies until every queue is
 * empty, and appends every produced event to out instead of routing it. */
mir_err mir_node_debug_apply(mir_node *node, mir_event_list *in, mir_event_list *out);

/* ---- statistics ---- */

/* The root of the node's metric tree (metrics.h), and the only way to read the node's numbers:
 * the node's own metrics (mir_node_inbox_depth, mir_node_buffered_events and its high-water mark
 * mir_node_buffered_events_max, mir_node_backpressure_pauses_total and _paused_seconds_total,
 * mir_node_dropped_events_total{reason="unknown_module"|"stray_message"}), one set per module
 * (named after it: mir_module_events_total, mir_module_batches_total,
 * mir_module_busy_seconds_total, mir_module_queue_depth; read one module's with
 * mir_metrics_read_child) and below it the module's own set (mir_module_ops.metrics). Borrowed,
 * valid until mir_node_free; readable from any thread. */
mir_metrics *mir_node_metrics(mir_node *node);

#ifdef __cplusplus
}
#endif
#endif
