/*
 * The store contract: persist, then send (DESIGN.md section 4; proto/mir/store.proto).
 *
 * A protocol module that must never contradict what it said before a crash writes its state
 * through a store module and hands it the events that may only happen once that state is durable
 * (the `then` events: typically the SendMessage of the vote it just recorded). The store module
 *  - applies the ops of each mir.StoreWrite atomically, in arrival order;
 *  - emits the `then` events of a write only once that write, and every write before it, is
 *    durable; then events keep the order of their writes;
 *  - stops the node with an error when it cannot write: nothing is released without durability.
 * The module's own state may run ahead of the disk (it may count a vote as cast before the write
 * lands), because nothing leaves the node before the write does: the same contract as the Ready
 * of etcd-io/raft.
 *
 * Two implementations: the RocksDB store module of a replica (server/modules/store/
 * store_module.h: a writer thread, group commit with one fsync for many writes) and the
 * simulator's (mir_sim_add_store: durable after a simulated sync time, lost or torn by a crash
 * before it). Reading back what was written happens once, before the node starts, through the
 * store itself (a replica's RocksDB, the simulator's mir_sim_store), never through events.
 *
 * The builders below make the payload; they copy keys and values and take over the events.
 */
#ifndef MIR_STORAGE_H
#define MIR_STORAGE_H

#include <stddef.h>

#include "mir/errors.h"
#include "mir/event.h"
#include "mir/store.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest key and value a store module accepts; a write with a longer one is a programmer error
 * of the module that built it (the store module returns MIR_EINVAL and stops the node). */
#define MIR_STORAGE_KEY_MAX 1024
#define MIR_STORAGE_VALUE_MAX ((size_t)256 << 20)

/* An empty write. Returns owned (hand it to mir_event_store_write, or free it with
 * protobuf_c_message_free_unpacked). */
Mir__StoreWrite *mir_storage_write_new(void);

/* Adds a put, a delete, or a delete of [begin, end) to w (borrowed). Keys and values are
 * borrowed and copied. */
void mir_storage_put(Mir__StoreWrite *w, const void *key, size_t klen, const void *val,
                     size_t vlen);
void mir_storage_delete(Mir__StoreWrite *w, const void *key, size_t klen);
/* A put whose value (malloc'd, vlen bytes) is taken over instead of copied: for large values built
 * for the store only. */
void mir_storage_put_owned(Mir__StoreWrite *w, const void *key, size_t klen, uint8_t *val,
                           size_t vlen);
void mir_storage_delete_range(Mir__StoreWrite *w, const void *begin, size_t blen, const void *end,
                              size_t elen);

/* Adds ev (takes ownership; it is packed and freed) to the events w releases once durable. */
void mir_storage_then(Mir__StoreWrite *w, mir_event *ev);

/* The event that asks store module `store` to perform w (takes ownership). Returns owned. */
mir_event *mir_event_store_write(const char *store, const char *src, Mir__StoreWrite *w);

/* Checks what a store module must check before it writes: key and value lengths within the
 * limits, non-empty keys, ranges with begin < end. MIR_EINVAL with detail otherwise. w borrowed. */
mir_err mir_storage_check(const Mir__StoreWrite *w);

/* Unpacks the then events of w (borrowed) and appends them to out (owned events). MIR_ENOTFOUND or
 * MIR_EPROTO (detail set) if one cannot be decoded: a bug of the module that packed it. */
mir_err mir_storage_release(const Mir__StoreWrite *w, mir_event_list *out);

/* Key and value bytes of w: what a store charges for it. */
size_t mir_storage_bytes(const Mir__StoreWrite *w);

#ifdef __cplusplus
}
#endif
#endif
