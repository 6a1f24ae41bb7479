/*
 * Trantor's write-ahead log: the keys and records a replica writes through its store module
 * before it sends what they record, and the recovery that reads them back (docs/PROTOCOL.md,
 * "Durability"). Pure functions, shared by the protocol modules that write and by the embedders
 * (mir-replica, the simulator) that read the store back before a node starts.
 *
 * Keys (bytes; integers 8 bytes big-endian unless stated):
 *   'I' epoch segment(4) 'V'               WalView           PBFT instance: view entered
 *   'I' epoch segment(4) 'B' sn digest(32) WalCert           a batch it holds for sn
 *   'I' epoch segment(4) 'K' sn digest(32) WalKnown          it preprepared (sn, digest)
 *   'I' epoch segment(4) 'P' sn            WalSlot           P-set entry (prepared)
 *   'I' epoch segment(4) 'R' sn            WalSlot           proposed as primary
 *   'I' epoch segment(4) 'C' sn            WalSlot           committed
 *   'I' epoch segment(4) 'N'               NewView           the NewView sent as primary
 *   'I' epoch ffffffff   'S'               WalCheckpointSig  checkpoint/<epoch>: own signature
 *   'S'                                    StableCheckpoint  the last stable checkpoint
 *   'F'                                    WalFloor          no votes below this epoch (rejoin)
 *   'J'                                    WalFloor          rejoin pending: ask the peers first
 *   'M'                                    WalParams         fingerprint of membership, parameters
 * Every epoch-scoped key starts with 'I' and the epoch, so one range delete drops every record of
 * the epochs below a stable checkpoint. Values are the packed record followed by the CRC-32C
 * (Castagnoli) of those bytes, 4 bytes big-endian: a torn or corrupt record is detected when it
 * is read back, never trusted.
 */
#ifndef TRANTOR_WAL_H
#define TRANTOR_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/storage.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRANTOR_WAL_KEY_MAX (1 + 8 + 4 + 1 + 8 + TRANTOR_DIGEST_BYTES)
#define TRANTOR_WAL_CHECKPOINT_SEGMENT UINT32_C(0xffffffff)

/* Record kinds of an instance key (the byte after epoch and segment). */
#define TRANTOR_WAL_VIEW 'V'
#define TRANTOR_WAL_BATCH 'B'
#define TRANTOR_WAL_KNOWN 'K'
#define TRANTOR_WAL_PREPARED 'P'
#define TRANTOR_WAL_PROPOSED 'R'
#define TRANTOR_WAL_COMMITTED 'C'
#define TRANTOR_WAL_NEW_VIEW 'N'
#define TRANTOR_WAL_CHECKPOINT_SIG 'S'

/* Writes the key of an instance record into key (TRANTOR_WAL_KEY_MAX bytes) and returns its
 * length: sn is used by B, K, P, R, C; digest (32 bytes, borrowed) by B and K only. */
size_t trantor_wal_instance_key(uint8_t *key, uint64_t epoch, uint32_t segment, char kind,
                                uint64_t sn, const uint8_t *digest);
/* Keys of the global records. */
size_t trantor_wal_stable_key(uint8_t *key);
size_t trantor_wal_floor_key(uint8_t *key);
size_t trantor_wal_rejoin_key(uint8_t *key);
size_t trantor_wal_params_key(uint8_t *key);

/* Adds to w (borrowed) a put of key (borrowed) with record msg (borrowed) as its value. */
void trantor_wal_put(Mir__StoreWrite *w, const uint8_t *key, size_t klen,
                     const ProtobufCMessage *msg);
/* Adds to w the deletion of every instance and checkpoint record of epochs below `epoch`. */
void trantor_wal_delete_epochs_below(Mir__StoreWrite *w, uint64_t epoch);

/* The value of a record: msg packed, then its CRC-32C. Returns owned bytes (free with free()). */
uint8_t *trantor_wal_encode(const ProtobufCMessage *msg, size_t *len);

/* CRC-32C (Castagnoli) of data: with the processor's CRC32 instruction where it has one. */
uint32_t trantor_wal_crc32c(const uint8_t *data, size_t len);
/* The same value computed with tables only (for tests). */
uint32_t trantor_wal_crc32c_portable(const uint8_t *data, size_t len);

/* The fingerprint of what a replica's votes depend on: H("params", packed membership, every
 * field of params). 32 bytes into out. */
void trantor_wal_params_hash(trantor_hash_fn hash, const Trantor__Membership *m,
                             const trantor_params *p, uint8_t out[32]);

/* One stored record, as an embedder reads it from its store (borrowed). */
typedef struct trantor_wal_kv {
  const uint8_t *key;
  size_t klen;
  const uint8_t *val;
  size_t vlen;
} trantor_wal_kv;

/* Decodes every record of kvs (borrowed, n entries in ascending key order, as a store iterates
 * them) into a Recovered event payload for iss: the stable checkpoint, the vote floor, the rejoin
 * marker, the parameters' fingerprint, and per instance its view, batches, P-set, proposals,
 * commits and NewView, per checkpoint instance its own signature (instances of epochs below the
 * stable checkpoint are left out: a restart starts there). MIR_EIO with detail naming the
 * key and the reason for a record that fails its checksum, does not decode, or has a key of an
 * unknown shape: the log is damaged, and a replica must not vote on guesswork. *out is owned (free
 * with protobuf_c_message_free_unpacked); it is empty (every field unset) for an empty log. */
mir_err trantor_wal_recover(const trantor_wal_kv *kvs, size_t n, Trantor__Recovered **out);

/* Formats key (borrowed) readably into buf (cap bytes), e.g. "I/7/2/K/130/3fa2..": for messages. */
const char *trantor_wal_key_format(const uint8_t *key, size_t klen, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
