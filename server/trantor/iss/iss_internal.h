/*
 * ISS internals shared by iss.c (epochs and the commit log) and iss_checkpoint.c (stable
 * checkpoints, garbage collection, state transfer). Not a public interface.
 */
#ifndef TRANTOR_ISS_INTERNAL_H
#define TRANTOR_ISS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iss.h"
#include "leaderpolicy.h"
#include "mir/dsl.h"
#include "mir/event.h"

#define ISS_LOG "iss"

/* Where an epoch's sns are: enough to check which segment reports an sn. */
typedef struct iss_epoch_info {
  uint64_t nr;
  uint64_t first_sn;
  uint64_t length; /* k * segment_length */
  size_t k;        /* leaders = segments */
} iss_epoch_info;

/* One commit-log entry of the current epoch: decided (SbDeliver), then its certificate checked
 * by availability (VerifyCert), then deliverable. */
typedef enum iss_slot_state {
  ISS_SLOT_EMPTY = 0,
  ISS_SLOT_VERIFYING,
  ISS_SLOT_READY
} iss_slot_state;

typedef struct iss_slot {
  iss_slot_state state;
  bool aborted;
  ProtobufCBinaryData cert; /* owned */
} iss_slot;

/* The module's metrics, registered in its dsl's set (iss.c iss_metrics_init). Counters move as
 * events happen; epoch and next_sn when they change; the other gauges are set from the state
 * after every batch. */
typedef struct iss_metrics {
  mir_gauge *epoch, *next_sn, *stable_epoch, *gc_index, *durable_epoch, *vote_floor, *rejoining;
  mir_counter *delivered;
  mir_counter *duplicates, *invalid_deliver;    /* SbDeliver dropped */
  mir_counter *oversized_certs, *invalid_certs; /* delivered empty */
  mir_counter *stale_verdicts, *suspicions, *pushes;
  mir_counter *transfer_dropped, *transfer_stale, *transfer_busy, *transfer_bad_sig;
  mir_counter *transfers, *local_restores, *local_restores_rejected, *recovered_instances;
  mir_counter *blocked_starts, *rejoin_answers;
} iss_metrics;

typedef struct iss {
  char id[MIR_MODULE_ID_MAX], self[MIR_MODULE_ID_MAX];
  /* Short enough that "<factory>/<epoch>/<segment>" always fits in a module id. */
  char ordering[TRANTOR_ISS_FACTORY_ID_MAX + 1], checkpoint[TRANTOR_ISS_FACTORY_ID_MAX + 1];
  char batchfetcher[MIR_MODULE_ID_MAX], timer[MIR_MODULE_ID_MAX];
  char net[MIR_MODULE_ID_MAX], crypto[MIR_MODULE_ID_MAX];
  char availability[MIR_MODULE_ID_MAX];
  char store[MIR_MODULE_ID_MAX];
  trantor_params params;
  trantor_hash_fn hash;
  uint64_t push_period_ms;
  uint64_t max_cert_bytes;
  Trantor__Membership *membership; /* owned; every epoch's membership (static for now) */
  trantor_leader_policy *policy;   /* owned; the policy of the current epoch plus suspicions */
  bool started;                    /* Init seen */
  bool genesis_pending; /* Init seen, no epoch started yet: a local RestoreState may come first */

  /* The current epoch: its layout, leaders (owned ids, cur.k), commit log (cur.length slots)
   * and the next sn to deliver (cur.first_sn <= next_sn < cur.first_sn + cur.length). */
  iss_epoch_info cur;
  char **leaders;
  iss_slot *log;
  uint64_t next_sn;
  /* Per segment of the current epoch (cur.k entries, owned): the position of its first sn not
   * decided yet, and the highest Needed sent to it (docs/PROTOCOL.md, "Idle"). */
  uint64_t *seg_low;
  uint64_t *seg_needed;
  bool active;        /* the mempool's last Activity: it holds transactions */
  bool epoch_decided; /* an sn of the current epoch was decided */
  bool idle_seen;     /* a push tick found the node idle with the epoch begun */

  /* Finished epochs whose instances may still report (duplicates), oldest first. At most
   * params.retained_epochs entries. */
  iss_epoch_info *hist;
  size_t n_hist;

  /* Checkpoints and state transfer. */
  Trantor__StableCheckpoint *stable; /* owned; the last stable checkpoint, or NULL */
  uint64_t gc_index;                 /* highest GarbageCollect index sent (0: none) */
  uint64_t *node_epoch;              /* per member: highest epoch it signed a checkpoint of */
  bool *transfer_pending;            /* per member: a checkpoint of its is being verified */

  /* Durability (docs/PROTOCOL.md "Durability"). */
  uint64_t durable_epoch; /* epoch of the latest stable checkpoint known durable (genesis: 0) */
  bool start_blocked;     /* the next epoch waits for a durable checkpoint (epochs_ahead_max) */
  uint64_t blocked_nr, blocked_first;
  uint64_t vote_floor;           /* instances of epochs below are passive (a rejoined replica) */
  Trantor__Recovered *recovered; /* owned: what the log held at start-up, until consumed */
  bool params_written;           /* the parameters' fingerprint is in the log */

  /* Rejoining after the loss of the data (iss_rejoin.c). */
  bool rejoining;         /* waiting for the peers' checkpoints: no epoch runs */
  uint64_t *rejoin_epoch; /* per member: the epoch it answered, or ISS_NONE */
  bool *rejoin_asked;     /* per member: answer its RejoinRequest at the next tick */
  Trantor__StableCheckpoint *rejoin_best; /* owned: the highest verified answer, or NULL */

  iss_metrics stats;
} iss;

/* In every function below, dsl and s are borrowed (the module's own), and handlers follow the
 * DSL's contract (mir/dsl.h): events and messages are borrowed for the call. */

/* iss.c */
/* Frees the current epoch's log and leaders. */
void miri_iss_epoch_clear(iss *s);
/* Starts epoch nr at first_sn: leaders from the policy, a fresh commit log, checkpoint/<nr>,
 * NewEpoch and SnapshotRequest to the batch fetcher, then one PBFT instance per segment.
 * MIR_EINVAL if the sn space would overflow. */
mir_err miri_iss_start_epoch(mir_dsl *dsl, iss *s, uint64_t nr, uint64_t first_sn);

#define ISS_NONE UINT64_MAX

/* iss.c */
/* Push tick: an epoch begun while the node stays idle is finished (iss.c). */
void miri_iss_idle_tick(mir_dsl *dsl, iss *s);
/* Starts epoch nr at first_sn now, or as soon as the stable checkpoint of epoch
 * nr - epochs_ahead_max or later is durable. */
mir_err miri_iss_start_or_block(mir_dsl *dsl, iss *s, uint64_t nr, uint64_t first_sn);

/* iss_checkpoint.c */
/* Writes chkp (borrowed) as the last stable checkpoint, with the deletion of every log record of
 * the epochs below it; the store answers with CheckpointDurable. */
void miri_iss_persist_stable(mir_dsl *dsl, iss *s, const Trantor__StableCheckpoint *chkp);
mir_err miri_iss_on_checkpoint_durable(mir_dsl *dsl, const mir_event *ev, void *user);
mir_err miri_iss_on_checkpoint_stable(mir_dsl *dsl, const mir_event *ev, void *user);
mir_err miri_iss_on_epoch_progress(mir_dsl *dsl, const mir_event *ev, void *user);
mir_err miri_iss_on_push(mir_dsl *dsl, const mir_event *ev, void *user);
mir_err miri_iss_on_verify_many(mir_dsl *dsl, const mir_event *ev, void *user);
mir_err miri_iss_on_stable_checkpoint_msg(mir_dsl *dsl, const char *from,
                                          const ProtobufCMessage *msg, void *user);
/* Arms the state-transfer push tick with the current GC index as its retention index. */
void miri_iss_arm_push(mir_dsl *dsl, iss *s);
/* Installs chkp (borrowed), read back from this replica's own store, as the starting point instead
 * of the genesis: checked like a state transfer (structure, configuration, strong quorum of
 * signers) except for the signatures, which were verified before it was stored. MIR_EPROTO with
 * detail if it does not fit; nothing changes then. */
mir_err miri_iss_install_local(mir_dsl *dsl, iss *s, const Trantor__StableCheckpoint *chkp);
/* Checks chkp (borrowed; received from a peer) like a state transfer before its signatures are
 * verified: structure, the configuration, a strong quorum of signers. digest receives what the
 * signatures cover. MIR_EPROTO with detail. */
mir_err miri_iss_check_foreign(const iss *s, const Trantor__StableCheckpoint *chkp,
                               uint8_t digest[32]);
/* Asks crypto to verify every signature of chkp (takes ownership) from member; the answer comes
 * to miri_iss_on_verify_many, which installs it (rejoin: hands it to the rejoin count).
 * MIR_OK also when it cannot be asked (counted). */
mir_err miri_iss_verify_foreign(mir_dsl *dsl, iss *s, size_t member,
                                Trantor__StableCheckpoint *chkp, const uint8_t digest[32],
                                bool rejoin);
/* Installs chkp (takes ownership), verified, received from a peer. */
mir_err miri_iss_install_foreign(mir_dsl *dsl, iss *s, Trantor__StableCheckpoint *chkp);

/* iss_rejoin.c */
/* Starts rejoining: no epoch runs until peers holding a strong quorum of weight answered with
 * their stable checkpoints (docs/PROTOCOL.md "Rejoining"). MIR_EINVAL if the replica has no peers.
 */
mir_err miri_iss_rejoin_start(mir_dsl *dsl, iss *s);
mir_err miri_iss_on_rejoin_request(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                   void *user);
mir_err miri_iss_on_rejoin_answer(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                  void *user);
/* A RejoinAnswer's checkpoint of member verified (takes ownership of chkp; NULL: rejected). */
mir_err miri_iss_rejoin_verified(mir_dsl *dsl, iss *s, size_t member,
                                 Trantor__StableCheckpoint *chkp);
/* Push tick: answers the RejoinRequests of the last period; while rejoining, asks again. */
void miri_iss_rejoin_tick(mir_dsl *dsl, iss *s);

#endif
