/*
 * State of a PBFT segment instance and the functions its source files share (internal to
 * server/trantor/pbft). The instance is a DSL module; every handler gets the pbft state as the
 * DSL user pointer.
 *
 * Memory bounds, with n members and L sns: per sn at most TRANTOR_PBFT_KNOWN_PER_SN_MAX
 * preprepares (each at most max_cert_bytes) and 2 n vote records of the current view; per member
 * one view change, one Done and a future-view buffer of msg_buf_bytes / (n - 1) bytes; at most n
 * distinct Done lists of L digests.
 */
#ifndef TRANTOR_PBFT_INTERNAL_H
#define TRANTOR_PBFT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/crypto.pb-c.h"
#include "mir/dsl.h"
#include "mir/event.h"
#include "mir/storage.h"
#include "pbft.h"
#include "trantor_common.h"

#define PBFT_DIGEST TRANTOR_DIGEST_BYTES
#define PBFT_NONE SIZE_MAX
/* A crypto answer still missing after this many resend ticks is taken as lost (the active
 * crypto module drops requests when its queue is full) and the request is made again. */
#define PBFT_ANSWER_TICKS 3

/* One sender's vote (Prepare or Commit) for a slot in the current view. */
typedef struct pbft_vote {
  bool has;
  uint8_t digest[PBFT_DIGEST];
} pbft_vote;

/* A preprepare this node holds for an sn: accepted in some view (a Q-set entry), fetched for a
 * NewView, or obtained by catch-up. */
typedef struct pbft_known {
  uint8_t digest[PBFT_DIGEST];
  uint64_t view; /* latest view this node preprepared it in (0 if never) */
  bool aborted;
  bool in_qset;             /* this node preprepared it (so it belongs to the Q-set) */
  bool persisted;           /* its batch record is written (or queued) in the log */
  ProtobufCBinaryData cert; /* owned */
} pbft_known;

typedef struct pbft_slot {
  uint64_t sn;
  /* across views */
  pbft_known known[TRANTOR_PBFT_KNOWN_PER_SN_MAX];
  size_t n_known;
  bool has_p; /* P-set entry: latest view in which this sn prepared here */
  uint64_t p_view;
  uint8_t p_digest[PBFT_DIGEST];
  bool delivered; /* committed and handed to iss (once) */
  uint8_t c_digest[PBFT_DIGEST];
  bool has_cu; /* digest of a weak quorum of identical Done: what catch-up accepts */
  uint8_t cu_digest[PBFT_DIGEST];
  /* the current view */
  bool has_pp;
  uint8_t pp_digest[PBFT_DIGEST];
  bool proposed; /* primary: a preprepare for it was sent in this view */
  bool prepared;
  bool committed;
  pbft_vote *prepares; /* n entries, allocated at the first vote of the view */
  pbft_vote *commits;
  bool nv_requested;  /* primary: asked the holders for the preprepare the NewView needs */
  uint64_t vote_tick; /* resend tick at which the own vote of this view last changed */
} pbft_slot;

/* A message for a future view, kept until that view starts. */
typedef struct pbft_buffered {
  struct pbft_buffered *next;
  ProtobufCMessage *msg; /* owned tree */
  uint64_t view;
  size_t bytes; /* charged: packed size plus TRANTOR_PBFT_MSG_OVERHEAD */
} pbft_buffered;

typedef struct pbft_peer {
  const char *id; /* borrowed from the params' membership */
  uint64_t weight;
  pbft_buffered *buf_head, *buf_tail;
  size_t buf_bytes;
  Trantor__SignedViewChange *vc; /* the latest view change received (owned) or NULL */
  uint8_t vc_hash[PBFT_DIGEST];
  bool vc_verified;
  bool vc_pending; /* its signature check is in flight since tick vc_tick, context vc_ctx */
  uint64_t vc_ctx, vc_tick;
  bool has_done;
  size_t done_group;
  bool nv_resend; /* primary: send it the NewView again at the next tick */
  bool vc_resend; /* a complete node in a view change: send it the own view change at the tick */
} pbft_peer;

/* Senders of one distinct Done list. */
typedef struct pbft_done_group {
  uint8_t *digests; /* L * 32 bytes, owned */
  uint64_t weight;
} pbft_done_group;

typedef enum pbft_dec_kind { PBFT_DEC_UNDECIDED = 0, PBFT_DEC_FREE, PBFT_DEC_DIGEST } pbft_dec_kind;

/* The view change decision for one sn (Castro and Liskov, TOCS 2002, section 4.4). */
typedef struct pbft_decision {
  pbft_dec_kind kind;
  uint64_t view; /* DIGEST: the view it was prepared in */
  uint8_t digest[PBFT_DIGEST];
} pbft_decision;

/* A NewView signature check in flight. */
typedef struct pbft_check {
  bool used;
  uint64_t ctx, tick;
} pbft_check;

/* The NewView a primary is building for `view`. */
typedef struct pbft_nv_build {
  uint64_t view; /* 0: nothing under construction */
  bool decided;
  bool sent;
  Trantor__SignedViewChange **vcs; /* owned clones, in member order */
  size_t n_vcs;
  pbft_decision *dec;   /* L entries (owned) */
  Trantor__NewView *nv; /* the NewView sent (owned), for resends */
} pbft_nv_build;

/* The instance's metrics, registered in its dsl's set (pbft.c); the factory folds the counters
 * into its own set when the instance is collected. Counters move as events happen; the gauges
 * are set from the state after every batch. */
typedef struct pbft_metrics {
  mir_counter *received; /* decoded peer messages, every kind */
  mir_counter *dropped[TRANTOR_PBFT_DROP_KINDS];
  mir_counter *stale_answers;
  mir_counter *view_changes;
  mir_counter *joins;
  mir_counter *new_views;
  mir_counter *proposals;
  mir_counter *committed;
  mir_counter *caught_up;
  mir_gauge *view; /* labelled with the segment: the largest over the segment's instances */
  mir_gauge *in_view_change;
  mir_gauge *done;
  mir_gauge *stable;
  mir_gauge *buffered_bytes;
} pbft_metrics;

typedef struct pbft {
  mir_dsl *dsl;                /* borrowed: the DSL that owns this state */
  Trantor__PbftParams *params; /* owned copy */
  trantor_hash_fn hash;
  char mod_id[MIR_MODULE_ID_MAX]; /* this instance's module id */
  char iss[MIR_MODULE_ID_MAX];
  char availability[MIR_MODULE_ID_MAX];
  char crypto[MIR_MODULE_ID_MAX];
  char timer[MIR_MODULE_ID_MAX];
  char net[MIR_MODULE_ID_MAX];
  char store[MIR_MODULE_ID_MAX];
  bool passive; /* a rejoining replica's instance: follows through Done and catch-up, never votes */
  size_t n, self, leader;
  const char **member_ids; /* n, borrowed from params */
  trantor_quorum q;
  size_t L;
  pbft_slot *slots;
  pbft_peer *peers;
  size_t buf_cap; /* future-view buffer bytes per sender */

  uint64_t view;
  bool in_vc;
  /* The sn and segment timeouts of `view` are running. In a view change they start only with
   * view changes of a strong quorum for the view (pbft_vc.c); outside one, only while progress is
   * expected (miri_pbft_update_timers). `arming` counts armings: a timeout of an earlier one is
   * stale. */
  bool view_timers_armed;
  uint64_t arming;
  /* Idle (docs/PROTOCOL.md "Idle"): the node's mempool holds transactions (iss's Activity), and
   * every sn below needed_up_to is awaited by the log (iss's Needed). */
  bool active;
  uint64_t needed_up_to;
  /* Slots prepared or committed here so far: the progress an sn timeout looks for. */
  uint64_t progress;
  Trantor__SignedViewChange *my_vc; /* own signed view change for `view` (owned) or NULL */
  bool vc_durable;                  /* my_vc's view is in the log: it may be resent directly */
  bool sign_pending; /* a signature of the own view change is in flight (sign_ctx, sign_tick) */
  uint64_t sign_ctx, sign_tick;
  bool resend_started;
  bool catch_up_started;
  uint64_t ticks;    /* resend ticks */
  uint64_t cu_ticks; /* catch-up ticks */

  bool cert_pending; /* a RequestCert is in flight */
  bool has_spare;    /* a certificate that arrived when it could not be proposed */
  ProtobufCBinaryData spare;

  size_t n_delivered;
  bool done;
  bool done_durable; /* the commits behind the own Done are in the log: it may be resent */
  bool stable;
  pbft_done_group *groups; /* n entries at most */
  size_t n_groups;
  size_t cu_group; /* the first group with a weak quorum, or PBFT_NONE */

  pbft_nv_build nvb;
  bool nv_durable; /* nvb.nv is in the log: it may be resent directly */
  /* The NewView this node adopted for `view` (owned) or NULL: relayed to peers that still send
   * view changes for the view, in case its primary can no longer (crashed, or rejoining). */
  Trantor__NewView *adopted_nv;
  bool nv_dirty; /* primary: a view change verified since the last decision */
  pbft_check nv_checks[TRANTOR_PBFT_NEW_VIEW_CHECKS_MAX];
  pbft_metrics st;
} pbft;

/* Context of a request to another local module. */
typedef enum pbft_ctx_kind {
  PBFT_CTX_CERT = 0,
  PBFT_CTX_SIGN_VC,
  PBFT_CTX_VERIFY_VC,
  PBFT_CTX_VERIFY_NV
} pbft_ctx_kind;

typedef struct pbft_ctx {
  pbft_ctx_kind kind;
  uint64_t view;
  size_t peer;             /* VERIFY_VC */
  Trantor__ViewChange *vc; /* SIGN_VC: what is being signed (owned) */
  Trantor__NewView *nv;    /* VERIFY_NV: owned */
} pbft_ctx;

/* Conventions of the prototypes below: `p` is the instance state, borrowed (the DSL owns it);
 * every other pointer argument is borrowed for the call unless stated otherwise; DSL handlers
 * (miri_pbft_on_*) follow mir/dsl.h: dsl, from, msg and ev are borrowed until they return, and
 * they return MIR_OK for anything a peer sends. */

/* ---- pbft.c: plumbing ---- */

/* Counts a dropped message of `from` (borrowed) and logs it at debug level. Returns MIR_OK so
 * that handlers can `return miri_pbft_drop(...)`. */
mir_err miri_pbft_drop(pbft *p, const char *from, trantor_pbft_drop reason, const char *what);
/* Sends msg (borrowed) to every member, itself included. */
void miri_pbft_send_all(pbft *p, const ProtobufCMessage *msg);
/* Sends msg (borrowed) to member `to`. */
void miri_pbft_send_to(pbft *p, size_t to, const ProtobufCMessage *msg);
/* Asks the timer to give payload (takes ownership) back to this instance after delay_ms. */
void miri_pbft_timer_delay(pbft *p, ProtobufCMessage *payload, uint64_t delay_ms);
/* Starts a PbftTick of `kind` every period_ms while the epoch is retained. */
void miri_pbft_tick_repeat(pbft *p, uint32_t kind, uint64_t period_ms);
/* Arms the sn and segment timeouts of the current view (base << view, saturated): a new arming. */
void miri_pbft_arm_view_timers(pbft *p);
/* Outside a view change: arms the view's timeouts when progress is expected (the mempool holds
 * transactions, a proposal is in flight, or the log awaits an sn of this segment) and they are
 * not running, and stops them when it is not. Called after every batch. */
void miri_pbft_update_timers(pbft *p);
/* The sn timeout of the current view, re-armed after a commit. */
void miri_pbft_arm_sn_timer(pbft *p);
/* Stores a context (takes ownership of c, freed also on failure); false if the store is full.
 * *id receives its id. */
bool miri_pbft_store_ctx(pbft *p, pbft_ctx *c, uint64_t *id);
/* The context of a local answer (o borrowed, may be NULL) if it exists and has `kind`; borrowed
 * from the DSL, valid until the end of the batch, when it is disposed. NULL (counted as stale)
 * otherwise. */
pbft_ctx *miri_pbft_answer_ctx(pbft *p, const Mir__Origin *o, pbft_ctx_kind kind);
/* Index of the primary of view v. */
size_t miri_pbft_primary(const pbft *p, uint64_t v);
/* Starts the resend tick (once): view changes, NewViews and lost crypto answers need it. */
void miri_pbft_ensure_resend_tick(pbft *p);

/* ---- pbft_wal.c: persist, then send (docs/PROTOCOL.md "Durability") ---- */

/* The SendMessage of msg (borrowed) to every member, or to member `to`, as an owned event: to hand
 * to mir_storage_then, so that it leaves only once what it says is durable. */
mir_event *miri_pbft_send_all_event(pbft *p, const ProtobufCMessage *msg);
/* The same to every member but this node, or NULL when there is none. */
mir_event *miri_pbft_send_others_event(pbft *p, const ProtobufCMessage *msg);
mir_event *miri_pbft_send_to_event(pbft *p, size_t to, const ProtobufCMessage *msg);
/* Adds to w the records of this instance. The batch record of k (slot i) is written once: a
 * no-op when k->persisted, which it sets. */
void miri_pbft_wal_batch(pbft *p, Mir__StoreWrite *w, size_t i, pbft_known *k);
/* The Q-set record of k (its view): k must be persisted (same write or earlier). */
void miri_pbft_wal_known(pbft *p, Mir__StoreWrite *w, size_t i, const pbft_known *k);
/* Deletes the batch and Q-set records of (slot i, digest). */
void miri_pbft_wal_forget(pbft *p, Mir__StoreWrite *w, size_t i, const uint8_t *digest);
/* A P-set, proposal or commit record (TRANTOR_WAL_PREPARED, _PROPOSED, _COMMITTED) of slot i. */
void miri_pbft_wal_slot(pbft *p, Mir__StoreWrite *w, char kind, size_t i, uint64_t view,
                        const uint8_t *digest);
/* The view record: view and in_vc as they are now. */
void miri_pbft_wal_view(pbft *p, Mir__StoreWrite *w);
/* The NewView nv (borrowed) sent as primary. */
void miri_pbft_wal_new_view(pbft *p, Mir__StoreWrite *w, const Trantor__NewView *nv);
/* Emits w (takes ownership) to the store module. */
void miri_pbft_wal_emit(pbft *p, Mir__StoreWrite *w);
/* Writes the records in w (takes ownership), then sends msg (borrowed) to every member. */
void miri_pbft_persist_send_all(pbft *p, Mir__StoreWrite *w, const ProtobufCMessage *msg);
/* At Init: takes back what the instance persisted before a restart (params->recovered), checked
 * against the segment and the hash; resends its durable votes of the current view. MIR_EIO with
 * detail for records that contradict each other or the segment: a damaged log. */
mir_err miri_pbft_recover(pbft *p);
mir_err miri_pbft_on_persisted(mir_dsl *dsl, const mir_event *ev, void *user);
/* What a PbftPersisted says is durable. */
#define MIRI_PBFT_PERSISTED_VIEW_CHANGE 0
#define MIRI_PBFT_PERSISTED_NEW_VIEW 1
#define MIRI_PBFT_PERSISTED_DONE 2
/* The PbftPersisted{kind, current view} the store gives back to this instance. Returns owned. */
mir_event *miri_pbft_persisted_event(pbft *p, uint32_t kind);

/* ---- pbft_msg.c: encodings and ingress checks (pure) ---- */

/* Slot index of sn, or PBFT_NONE if sn is not in the segment. */
size_t miri_pbft_slot_of(const pbft *p, uint64_t sn);
/* True if d is a 32-byte digest. */
bool miri_pbft_digest_ok(const ProtobufCBinaryData *d);
/* Checks a preprepare's shape: in the segment, cert within the limit, an aborted one empty.
 * Returns the drop reason, or TRANTOR_PBFT_DROP_KINDS if it is well formed; *slot gets the
 * index. pp borrowed (may be NULL: malformed). */
trantor_pbft_drop miri_pbft_check_preprepare(const pbft *p, const Trantor__Preprepare *pp,
                                             size_t *slot);
/* Checks a view change's shape: view 1..VIEW_MAX, P-set one entry per sn ascending, Q-set
 * ascending by (sn, view, digest) with distinct digests and at most KNOWN_PER_SN_MAX per sn,
 * every entry in the segment, 32-byte digests, views below the view change's. */
bool miri_pbft_view_change_ok(const pbft *p, const Trantor__ViewChange *vc);
/* Checks a signed view change's shape: view change ok, signer a member, signature length. Sets
 * *signer to the signer's index. */
bool miri_pbft_signed_vc_ok(const pbft *p, const Trantor__SignedViewChange *svc, size_t *signer);
/* The P-set entry of vc (borrowed, checked) for sn, borrowed from vc, or NULL. The Q-set view of
 * (sn, digest) in *view, or false. */
const Trantor__PSetEntry *miri_pbft_pset_find(const Trantor__ViewChange *vc, uint64_t sn);
bool miri_pbft_qset_view(const Trantor__ViewChange *vc, uint64_t sn, const uint8_t *digest,
                         uint64_t *view);
/* Returns an owned Preprepare (free with protobuf_c_message_free_unpacked). cert borrowed. */
Trantor__Preprepare *miri_pbft_preprepare_new(uint64_t sn, uint64_t view, bool aborted,
                                              const ProtobufCBinaryData *cert);

/* ---- pbft_normal.c: the good case (OSDI 1999, section 4.2) ---- */

mir_err miri_pbft_on_preprepare(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                void *user);
mir_err miri_pbft_on_prepare(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                             void *user);
mir_err miri_pbft_on_commit(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                            void *user);
mir_err miri_pbft_on_new_cert(mir_dsl *dsl, const mir_event *ev, void *user);
/* Accepts a preprepare of the current view for slot i: cert (borrowed, copied) hashing to
 * digest (borrowed, 32 bytes); sends the Prepare. */
void miri_pbft_accept_preprepare(pbft *p, size_t i, const ProtobufCBinaryData *cert, bool aborted,
                                 const uint8_t *digest);
/* The SendMessage of the node's Prepare (or Commit) for s's preprepare of the current view, to
 * every member. Returns owned: a then event of the write that makes it safe, or sent directly
 * when it is durable already. */
mir_event *miri_pbft_vote_event(pbft *p, const pbft_slot *s, bool commit);
/* Marks slot i delivered with the held preprepare of digest (borrowed) and tells iss. */
void miri_pbft_deliver(pbft *p, size_t i, const uint8_t *digest);
/* Primary: proposes what it can for empty slots of the current view, or asks for a cert. */
void miri_pbft_propose(pbft *p);
/* Stores a preprepare for slot i unless one with that digest is held (digest and cert borrowed,
 * copied). Returns its entry (borrowed from p) or NULL if every entry is pinned. An entry it
 * evicts to make room loses its log records too: their deletion is added to w (borrowed), or
 * written on its own when w is NULL. */
pbft_known *miri_pbft_known_add(pbft *p, size_t i, const uint8_t *digest, bool aborted,
                                const ProtobufCBinaryData *cert, Mir__StoreWrite *w);
/* The held preprepare of s (borrowed) with digest (borrowed), borrowed from s, or NULL. */
pbft_known *miri_pbft_known_find(pbft_slot *s, const uint8_t *digest);
/* The Preprepare of sn that k describes, for resending: *pp borrows k's certificate, so it is
 * valid while k is and must not be freed. */
void miri_pbft_known_preprepare(const pbft_known *k, uint64_t sn, Trantor__Preprepare *pp);
/* Forgets the per-view state of every slot (a new view starts). */
void miri_pbft_reset_view_state(pbft *p);
/* Replays the buffered messages of the current view, drops older ones. */
mir_err miri_pbft_replay_buffered(pbft *p);
/* Frees every buffered message of peer i. */
void miri_pbft_buffer_clear(pbft *p, size_t i);

/* ---- pbft_vc.c: view changes (TOCS 2002, section 4.4; OSDI 1999, section 4.4, 4.5.2) ---- */

/* Moves to view v (> current) and asks for the signature of the view change. */
void miri_pbft_start_view_change(pbft *p, uint64_t v, bool join);
/* After a restart in a view change (view and in_vc recovered): signs, records and sends the own
 * view change for the view again, as miri_pbft_start_view_change does after moving. */
void miri_pbft_resume_view_change(pbft *p);
/* In a view change: starts the view's timeouts once view changes of a strong quorum (the own
 * one included) are there for it, once per view. */
void miri_pbft_arm_on_vc_quorum(pbft *p);
mir_err miri_pbft_on_sign_result(mir_dsl *dsl, const mir_event *ev, void *user);
mir_err miri_pbft_on_signed_vc(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                               void *user);
mir_err miri_pbft_on_verify_result(mir_dsl *dsl, const mir_event *ev, void *user);
mir_err miri_pbft_on_preprepare_request(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                        void *user);
mir_err miri_pbft_on_missing_preprepare(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                        void *user);
/* Decides every sn from the n_vcs view changes vcs (borrowed, checked, at most n, for one view);
 * out (borrowed, L entries) receives the decisions. Returns true if every sn is decided. */
bool miri_pbft_decide(const pbft *p, Trantor__SignedViewChange *const *vcs, size_t n_vcs,
                      pbft_decision *out);
/* Primary: builds and sends the NewView when it can (after every batch). */
void miri_pbft_new_view_progress(pbft *p);
/* Resend tick: own view change, missing preprepare requests, NewView to laggards. */
void miri_pbft_view_change_tick(pbft *p);
/* Resend tick: the own Preprepares, Prepares and Commits of the current view for slots that have
 * waited two ticks since the vote changed (a peer that restarted or lost messages needs them).
 * They go as one store barrier, released once every earlier write is durable. */
void miri_pbft_retransmit(pbft *p);
/* Frees what b (borrowed) owns and clears it. */
void miri_pbft_nvb_clear(pbft_nv_build *b);

/* ---- pbft_nv.c: NewView checks and adoption ---- */

mir_err miri_pbft_on_new_view(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                              void *user);
mir_err miri_pbft_on_verify_many_result(mir_dsl *dsl, const mir_event *ev, void *user);
/* Resend tick: forgets NewView checks whose answer was lost. */
void miri_pbft_new_view_tick(pbft *p);

/* ---- pbft_done.c: segment checkpoint and catch-up ---- */

/* Every sn is committed: send Done and keep resending it (miri_pbft_done_tick). */
void miri_pbft_on_all_committed(pbft *p);
/* Done tick: the own Done to every member whose Done has not come. */
void miri_pbft_done_tick(pbft *p);
mir_err miri_pbft_on_done(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg, void *user);
mir_err miri_pbft_on_catch_up_request(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                      void *user);
mir_err miri_pbft_on_catch_up_response(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                       void *user);
/* Catch-up tick: ask a member of the Done quorum for every missing sn. */
void miri_pbft_catch_up_tick(pbft *p);
/* Frees the Done groups p owns. */
void miri_pbft_done_clear(pbft *p);

#endif
