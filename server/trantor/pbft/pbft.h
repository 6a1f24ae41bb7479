/*
 * The PBFT segment orderer of Trantor (internal): one passive instance per segment,
 * `ordering/<epoch>/<segment>`, created by the `ordering` factory (docs/PROTOCOL.md, "PBFT per
 * segment").
 *
 * Events in: mir.Init; mir.MessageReceived carrying Preprepare, Prepare, Commit, Done,
 * CatchUpRequest, CatchUpResponse, SignedViewChange, NewView, PreprepareRequest and
 * MissingPreprepare from the instance's members; trantor.NewCert from availability;
 * mir.SignResult, mir.VerifyResult and mir.VerifyManyResult from crypto; and its own timer events
 * trantor.ViewChangeSnTimeout, trantor.ViewChangeSegTimeout and trantor.PbftTick.
 * Events out: mir.SendMessage to the transport, trantor.RequestCert to availability,
 * mir.SignRequest / mir.VerifyRequest / mir.VerifyManyRequest to crypto, mir.TimerDelay and
 * mir.TimerRepeat (retention index = epoch) to the timer, trantor.SbDeliver to iss, and
 * mir.StoreWrite to the store, which carries every vote's SendMessage until it is durable.
 *
 * Persist, then send (docs/PROTOCOL.md "Durability"): the batch behind a Prepare and the Q-set
 * entry it creates, the P-set entry behind a Commit, a primary's proposal, the view entered
 * before its ViewChange and when a NewView is adopted, and the NewView a primary sends are
 * written through the store module, and the message leaves only once the store releases it.
 * Commits are recorded too (without holding anything back), so a restarted replica re-delivers
 * them at once. params->recovered hands all of it back after a restart; the instance resumes in
 * its view and resends its durable votes, never one that contradicts them. A passive instance
 * (params->passive: a replica rejoining after losing its data, in an epoch it may have voted in
 * before) never votes: it delivers through Done and catch-up only.
 *
 * The instance is pure: no I/O, clock, randomness or threads; hashing goes through the injected
 * trantor_hash_fn and signatures through crypto events. Every peer message is validated at
 * ingress and, when invalid, dropped and counted (the metrics in pbft.c); nothing a peer sends
 * makes apply return an error.
 *
 * Choices where docs/PROTOCOL.md leaves room or the reference had gaps (its section 9):
 *  - No null slots. A NewView carries only the re-proposals its view changes force; every other
 *    (free) sn is proposed by the new primary like in view 0: first a batch it preprepared for
 *    that sn in an earlier view, then a certificate it got too late to propose before, then a
 *    fresh one from availability (an empty certificate when the mempool is empty). A correct
 *    primary never sets `aborted`; a preprepare with `aborted` must carry an empty certificate.
 *  - View changes go to every member, and view changes of a weak quorum for higher views make a
 *    node join the smallest of them (PBFT's join rule). A node that committed every sn does not
 *    start a view change on its own timeouts (its lagging peers catch up through Done), but still
 *    joins one. The sn timeout re-armed after a commit is doubled per view too.
 *  - Nodes that committed an sn still prepare and commit its re-proposal in later views (without
 *    delivering it again), so that the others can commit it.
 *  - The new primary retries PreprepareRequests and resends its NewView to nodes that keep
 *    sending view changes, at every resend tick; crypto answers that never come back (an
 *    overloaded crypto module drops requests) are asked for again after a few ticks.
 *  - Catch-up asks one member of the Done quorum per tick (rotating), and only committed sns with
 *    the asked digest are answered.
 */
#ifndef TRANTOR_PBFT_H
#define TRANTOR_PBFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/module.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits ---- */

#define TRANTOR_PBFT_SNS_MAX 4096                 /* sequence numbers of one segment */
#define TRANTOR_PBFT_BUCKETS_MAX 65536            /* buckets a segment proposes from */
#define TRANTOR_PBFT_CERT_BYTES_MAX (64u << 20)   /* largest max_cert_bytes accepted */
#define TRANTOR_PBFT_VIEWS_AHEAD_MAX 16           /* messages for views further ahead are dropped */
#define TRANTOR_PBFT_VIEW_MAX (UINT64_C(1) << 32) /* views never go beyond this */
#define TRANTOR_PBFT_SIGNATURE_BYTES_MAX 512      /* longest signature accepted from a peer */
#define TRANTOR_PBFT_KNOWN_PER_SN_MAX 6           /* preprepares (Q-set entries) kept per sn */
#define TRANTOR_PBFT_NEW_VIEW_CHECKS_MAX 4        /* NewView signature checks in flight */
#define TRANTOR_PBFT_MSG_OVERHEAD 64              /* bookkeeping charged per buffered message */

/* PbftTick kinds. */
#define TRANTOR_PBFT_TICK_RESEND 0   /* resend view change, NewView, requests, waiting votes */
#define TRANTOR_PBFT_TICK_CATCH_UP 1 /* send catch-up requests */
#define TRANTOR_PBFT_TICK_DONE 2     /* resend Done to members whose Done has not come */

/* What an instance needs besides its PbftParams. Every string is borrowed and copied. */
typedef struct trantor_pbft_config {
  const char *self;         /* own node id (a member) */
  trantor_hash_fn hash;     /* pure hash of byte-string lists */
  const char *iss;          /* module ids: SbDeliver goes here */
  const char *availability; /* RequestCert */
  const char *crypto;       /* SignRequest, VerifyRequest, VerifyManyRequest */
  const char *timer;        /* TimerDelay, TimerRepeat */
  const char *net;          /* SendMessage */
  const char *store;        /* mir.StoreWrite: votes are persisted before they are sent */
} trantor_pbft_config;

/* Why a peer message (or a late local answer) was dropped. */
typedef enum trantor_pbft_drop {
  TRANTOR_PBFT_DROP_NOT_MEMBER = 0, /* sender not a member */
  TRANTOR_PBFT_DROP_BAD_SN,         /* sn not in the segment */
  TRANTOR_PBFT_DROP_VIEW_AHEAD,     /* view too far ahead (or beyond the view bound) */
  TRANTOR_PBFT_DROP_OLD_VIEW,       /* view already left */
  TRANTOR_PBFT_DROP_BAD_DIGEST,     /* digest not 32 bytes */
  TRANTOR_PBFT_DROP_CERT_TOO_LARGE, /* certificate above max_cert_bytes */
  TRANTOR_PBFT_DROP_DUPLICATE,      /* a second vote / preprepare / Done of a sender */
  TRANTOR_PBFT_DROP_NOT_PRIMARY,    /* a primary's message from someone else */
  TRANTOR_PBFT_DROP_MALFORMED,      /* missing fields, bad sizes, unsorted sets, signer != sender */
  TRANTOR_PBFT_DROP_BAD_NEW_VIEW,   /* NewView content wrong (quorum, members, re-proposals) */
  TRANTOR_PBFT_DROP_BAD_SIGNATURE,  /* a view change signature does not verify */
  TRANTOR_PBFT_DROP_UNSOLICITED,    /* an answer nobody asked for, or with the wrong digest */
  TRANTOR_PBFT_DROP_CONFLICT,       /* contradicts what this node committed */
  TRANTOR_PBFT_DROP_BUFFER,         /* future-view message evicted or too big for the buffer */
  TRANTOR_PBFT_DROP_BUSY,           /* too many checks in flight */
  TRANTOR_PBFT_DROP_PASSIVE,        /* a vote or view change for an instance that does not vote */
  TRANTOR_PBFT_DROP_KINDS
} trantor_pbft_drop;

/* An instance registers its metrics in its dsl's set (mir_dsl_metrics of *state): counters
 * mir_pbft_messages_received_total, mir_pbft_dropped_messages_total{reason=<drop name>},
 * mir_pbft_stale_answers_total, mir_pbft_view_changes_total, mir_pbft_view_change_joins_total,
 * mir_pbft_new_views_total, mir_pbft_proposals_total, mir_pbft_committed_total,
 * mir_pbft_caught_up_total; gauges mir_pbft_view{segment=<last id component>} (largest over
 * instances), mir_pbft_instances_in_view_change, mir_pbft_instances_done,
 * mir_pbft_instances_stable and mir_pbft_buffered_bytes, set after every batch. Messages the
 * runtime cannot decode count in mir_dsl_messages_dropped_total. */

/* Creates an instance for module_id (borrowed, copied; a valid module id). params is borrowed
 * (copied): the epoch's membership (must contain cfg->self and params->leader), the segment's
 * sns (1..TRANTOR_PBFT_SNS_MAX, strictly ascending), its buckets and the timing and size
 * parameters (all > 0, durations at most MIR_TIMER_DURATION_MS_MAX). cfg is borrowed (copied).
 * MIR_EINVAL with detail for bad arguments. On success *ops is static and *state is owned (free
 * with (*ops)->destroy, or hand both to a factory or mir_node_add_module). */
mir_err trantor_pbft_new(const char *module_id, const Trantor__PbftParams *params,
                         const trantor_pbft_config *cfg, const mir_module_ops **ops, void **state);

/* Static name of a drop reason ("not_member", ...), "?" for an unknown one. */
const char *trantor_pbft_drop_name(trantor_pbft_drop reason);

/* Preprepare digest H("pp", sn, aborted ? "\x01" : "\x00", cert). cert borrowed (len bytes). */
void trantor_pbft_preprepare_digest(trantor_hash_fn hash, uint64_t sn, bool aborted,
                                    const uint8_t *cert, size_t len, uint8_t out[32]);

/* What a ViewChange signature covers: H("vc", view, per P-set entry sn, view, digest, "q", per
 * Q-set entry sn, view, digest), entries in their message order (senders sort them). vc is
 * borrowed; its entries must be non-NULL (digest lengths are hashed as they are). */
void trantor_pbft_view_change_hash(trantor_hash_fn hash, const Trantor__ViewChange *vc,
                                   uint8_t out[32]);

#ifdef __cplusplus
}
#endif
#endif
