/*
 * The factory: a passive module that owns dynamically created passive submodules.
 *
 * A factory mounted as "f" owns the submodules "f/<name>". Protocol code creates one with a
 * mir.NewSubmodule event (mir_event_new_submodule) carrying the submodule's parameters and a
 * retention index, and destroys every submodule below a retention index with mir.GarbageCollect.
 * Events for "f/<name>" and deeper ids ("f/<name>/x") are handed to the submodule "f/<name>".
 *
 * Messages from the network can arrive before the local node created the submodule they are for
 * (a faster peer already started the next instance). The factory keeps such mir.MessageReceived
 * events in a bounded buffer and replays them once the submodule exists. The buffer is shared
 * fairly among senders: when it is full, the oldest message of the sender using the most bytes
 * is evicted, so a flooding peer only ever evicts its own messages. Every other event for a
 * submodule that does not exist is counted and dropped.
 */
#ifndef MIR_FACTORY_H
#define MIR_FACTORY_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bound of the early-message buffer, in bytes. */
#define MIR_FACTORY_MSGBUF_BYTES_DEFAULT ((size_t)1 << 20)
/* Default bound on the number of live submodules. */
#define MIR_FACTORY_SUBMODULES_MAX_DEFAULT 65536
/* Each buffered message is charged its packed size plus this many bytes of bookkeeping, so that
 * even empty messages cannot grow the buffer without limit. */
#define MIR_FACTORY_MSG_OVERHEAD 64

typedef struct mir_factory mir_factory;

/* Creates the passive submodule submodule_id ("f/<name>" with id_depth names, borrowed). params is
 * the decoded parameter message (borrowed, valid until the callback returns; NULL when the
 * NewSubmodule event carried none). On success sets *ops_out (borrowed; must outlive the factory)
 * and *state_out (the factory takes ownership and frees it with ops->destroy). An error stops the
 * node; set mir_error_set() detail first. */
typedef mir_err (*mir_factory_create_fn)(void *user_data, const char *submodule_id,
                                         const ProtobufCMessage *params,
                                         const mir_module_ops **ops_out, void **state_out);

typedef struct mir_factory_params {
  mir_factory_create_fn create; /* required */
  void *user_data;              /* passed to create; borrowed, must outlive the factory */
  size_t msgbuf_bytes;          /* early-message buffer bound (0: the default, 1 MiB) */
  size_t submodules_max;        /* most live submodules (0: the default, 65536) */
  /* Components below the factory's id that name a submodule (0: the default, 1; at most
   * MIR_FACTORY_ID_DEPTH_MAX). With depth 2, "ordering/3/1" is a submodule and an event for
   * "ordering/3/1/x" goes to it. Every submodule of one factory has the same depth. */
  unsigned id_depth;
} mir_factory_params;

#define MIR_FACTORY_ID_DEPTH_MAX 4

/* Fills p with the defaults for create and user_data (both borrowed). */
void mir_factory_params_default(mir_factory_params *p, mir_factory_create_fn create,
                                void *user_data);

/* Creates a factory for the module id `id` (one component, copied). params is copied.
 * MIR_EINVAL for an invalid id or a missing create callback. *out is owned (free with
 * mir_factory_free, or hand it to mir_node_add_module with mir_factory_ops). */
mir_err mir_factory_new(const char *id, const mir_factory_params *params, mir_factory **out);

/* Destroys every submodule and frees the factory and every buffered event. NULL is a no-op. */
void mir_factory_free(mir_factory *factory);

/* The ops of a factory; the state is the mir_factory * (borrowed ops, static). The factory's
 * numbers are in its metric set, mir_factory_ops.metrics(factory), which each submodule's set
 * hangs below (a collected submodule's counters fold into it):
 * mir_factory_early_messages_total{reason="buffered"|"evicted"|"dropped"|"replayed"},
 * mir_factory_early_buffer_bytes and _messages, mir_factory_submodules (live) and
 * mir_factory_retention_index. Read them with mir_metrics_read. */
extern const mir_module_ops mir_factory_ops;

#ifdef __cplusplus
}
#endif
#endif
