/*
 * The store module of a replica: the store contract (mir/storage.h, proto/mir/store.proto) over
 * RocksDB (mir_store.h). Persist, then send.
 *
 * Input events: mir.Init (nothing to do) and mir.StoreWrite. Each StoreWrite is checked
 * (mir_storage_check), its ops become one batch in the configured column family, and the batch
 * is queued to the store's writer thread, which merges everything queued into one RocksDB write
 * and one fsync (group commit). The write's `then` events wait in a FIFO with the write's ticket;
 * a release thread pushes them into the node's inbox once the store reports the ticket written
 * (synced, with the store's `sync`), in the order of the writes. A StoreWrite without ops is a
 * barrier: its events follow every earlier write of the module.
 *
 * Errors stop the node (apply returns them): any other event type (MIR_EINVAL), a write that
 * fails mir_storage_check (MIR_EINVAL: a bug of the module that built it), too many writes
 * waiting to be released (MIR_EFULL), a then event that cannot be decoded (MIR_EPROTO), and a
 * failed write (MIR_EIO: a full disk, a failed fsync, any RocksDB error). After a failed write no
 * event is released any more, whatever its write: the replica stops rather than vote without
 * durability.
 *
 * Threads: apply runs on the dispatcher and never waits for the disk; the store's writer thread
 * writes; the module's release thread ("mir-store-rel") unpacks then events and pushes them,
 * blocking in the inbox under backpressure (which is why it is not the writer).
 */
#ifndef MIR_STORE_MODULE_H
#define MIR_STORE_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/module.h"
#include "mir_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bound on writes submitted and not yet released (each holds its then events). */
#define MIR_STORE_MODULE_PENDING_MAX_DEFAULT ((size_t)1 << 20)

/* store is borrowed and must outlive the module (close it after mir_node_free). The module takes
 * the store's written callback (mir_store_set_written_cb): one store module per store, while
 * other code may still write to the same store. */
typedef struct mir_store_module_config {
  mir_store *store;
  const char *cf;     /* column family the writes go to (must be open; borrowed during new) */
  size_t pending_max; /* most writes waiting to be released (0: the default) */
} mir_store_module_config;

extern const mir_module_ops mir_store_module_ops;

/* Creates the state of a store module. cfg is borrowed (copied). MIR_EINVAL without a store, or
 * with a column family the store did not open. *state is owned; hand it to mir_node_add_module
 * with &mir_store_module_ops, which frees it. */
mir_err mir_store_module_new(const mir_store_module_config *cfg, void **state);

/* The module reports through ops.metrics: counters mir_store_module_writes_total,
 * mir_store_module_barriers_total, mir_store_module_ops_total, mir_store_module_bytes_total,
 * mir_store_module_released_total; gauge mir_store_module_pending; the named lock
 * "store_pending"; and, below, the store's own set (mir_store_metrics). */

#ifdef __cplusplus
}
#endif
#endif
