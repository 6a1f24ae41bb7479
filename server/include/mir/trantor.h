/*
 * Trantor: BFT state machine replication on libmir (docs/PROTOCOL.md).
 *
 * An embedding application provides a trantor_app (callbacks called on the node's dispatcher
 * thread, in log order) and trantor_params; trantor_system_add_modules builds the protocol
 * modules into a node next to the edge modules (transport, crypto, timer) it is given the ids of.
 */
#ifndef MIR_TRANTOR_H
#define MIR_TRANTOR_H

#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "trantor/trantor.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hash of a list of byte strings: SHA-256 over each part's 8-byte big-endian length then bytes.
 * parts/lens are borrowed; out receives 32 bytes. Must be a pure function. */
typedef void (*trantor_hash_fn)(const uint8_t *const *parts, const size_t *lens, size_t n,
                                uint8_t out[32]);

#define TRANTOR_DIGEST_BYTES 32
#define TRANTOR_MEMBERS_MAX 256
#define TRANTOR_CLIENT_ID_MAX 64

typedef struct trantor_params {
  /* ISS */
  uint32_t segment_length;  /* sns per segment (default 16) */
  uint32_t num_buckets;     /* transaction buckets (default 64) */
  uint32_t retained_epochs; /* epochs kept below the last stable checkpoint (default 2) */
  /* An epoch e starts only once the stable checkpoint of epoch e - epochs_ahead_max or later is
   * durable (default 4): bounds how far a replica runs ahead of its checkpoints, and with it
   * the epochs a replica that lost its data may have voted in (docs/PROTOCOL.md, "Rejoining"). */
  uint32_t epochs_ahead_max;
  int leader_policy_blacklist; /* 0: simple (default), 1: blacklist */
  /* PBFT (milliseconds) */
  uint64_t view_change_sn_timeout_ms;      /* default 500 */
  uint64_t view_change_segment_timeout_ms; /* default 4000 */
  uint64_t done_resend_ms;                 /* default 250 */
  uint64_t catch_up_delay_ms;              /* default 250 */
  uint64_t view_change_resend_ms;          /* default 250 */
  uint64_t msg_buf_bytes;                  /* future-view buffer per instance (default 8 MiB) */
  /* mempool */
  uint32_t max_batch_txs;     /* default 1024 */
  uint64_t max_batch_bytes;   /* default 1 MiB */
  uint64_t batch_timeout_ms;  /* default 50: cut a non-full batch after this */
  uint64_t max_tx_bytes;      /* default 64 KiB */
  uint64_t client_window;     /* tx numbers ahead of a client's low watermark (default 1024) */
  uint64_t mempool_max_txs;   /* pending transactions in all (default 1,000,000) */
  uint64_t mempool_max_bytes; /* pending bytes in all (default 512 MiB) */
  /* checkpoints */
  uint64_t checkpoint_resend_ms; /* default 500 */
} trantor_params;

/* Fills p with the defaults above. */
void trantor_params_default(trantor_params *p);

/* Checks every field; on error returns MIR_EINVAL with "trantor params: <field>: <reason>" in
 * mir_error_detail(). p is borrowed. */
mir_err trantor_params_check(const trantor_params *p);

/* The application. Every callback runs on the dispatcher thread, in log order; an error stops the
 * node. user_data is the application's. */
typedef struct trantor_app {
  /* Applies the deduplicated transactions of sn (possibly none). txs borrowed for the call. */
  mir_err (*apply_batch)(void *user_data, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs,
                         size_t n);
  /* Returns the application state (owned, malloc'd; free with free) covering every sn < sn. */
  mir_err (*snapshot)(void *user_data, uint64_t epoch, uint64_t sn, uint8_t **data, size_t *len);
  /* Replaces the state with a snapshot (borrowed). */
  mir_err (*restore)(void *user_data, const uint8_t *data, size_t len, uint64_t sn);
  /* Epoch `epoch` starts; the membership is static for now (returned unchanged). May be NULL. */
  mir_err (*new_epoch)(void *user_data, uint64_t epoch, uint64_t first_sn);
  /* A checkpoint became stable (borrowed). May be NULL. */
  mir_err (*checkpoint)(void *user_data, const Trantor__StableCheckpoint *chkp);
  void *user_data;
} trantor_app;

#ifdef __cplusplus
}
#endif
#endif
