/*
 * Leader selection policies of ISS (docs/PROTOCOL.md, "Epochs, segments, buckets").
 *
 * A policy turns a membership and the suspicions gathered so far into the ordered list of leaders
 * of the next epoch. Two kinds:
 *  - simple: every member, sorted by id; suspicions are ignored;
 *  - blacklist: never-suspected members first (by id), then suspected ones by ascending epoch of
 *    their last suspicion, ties broken by id; the list is cut to max(n - suspected, smallest
 *    prefix whose weight is a strong quorum).
 *
 * The serialised form travels inside checkpoints, so it is canonical (one byte string per state)
 * and its decoder treats the bytes as untrusted: every length, count, id and weight is checked.
 * Pure functions; no I/O.
 */
#ifndef TRANTOR_LEADERPOLICY_H
#define TRANTOR_LEADERPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/trantor.h"
#include "trantor/trantor.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum trantor_lp_kind { TRANTOR_LP_SIMPLE = 0, TRANTOR_LP_BLACKLIST = 1 } trantor_lp_kind;

/* Longest serialised policy: kind, count, then per member an id (length byte plus at most 63
 * bytes), a weight, a suspected flag and an epoch. */
#define TRANTOR_LP_BYTES_MAX (5 + TRANTOR_MEMBERS_MAX * (1 + 63 + 8 + 1 + 8))

typedef struct trantor_leader_policy trantor_leader_policy;

/* Creates a policy of kind over membership m (borrowed; copied). m must be valid
 * (trantor_membership_check); MIR_EINVAL otherwise, with detail. *out is owned (free with
 * trantor_lp_free). */
mir_err trantor_lp_new(trantor_lp_kind kind, const Trantor__Membership *m,
                       trantor_leader_policy **out);

/* Frees p. NULL is a no-op. */
void trantor_lp_free(trantor_leader_policy *p);

/* The policy's kind. p borrowed. */
trantor_lp_kind trantor_lp_kind_of(const trantor_leader_policy *p);

/* Records that node (borrowed) was suspected in epoch. Non-members are ignored; a member keeps
 * the highest epoch it was suspected in. A simple policy ignores every suspicion. */
void trantor_lp_suspect(trantor_leader_policy *p, uint64_t epoch, const char *node);

/* Writes the leaders, in order, into out (at most max entries; ids borrowed from p, valid until
 * the next call that changes p) and returns how many there are (always >= 1). max must be at least
 * the number of members (asserted). */
size_t trantor_lp_leaders(const trantor_leader_policy *p, const char **out, size_t max);

/* Replaces the membership with m (borrowed; copied): suspicions of members that stay are kept,
 * the others are forgotten. MIR_EINVAL with detail (p unchanged) if m is not valid. */
mir_err trantor_lp_reconfigure(trantor_leader_policy *p, const Trantor__Membership *m);

/* Serialises p (borrowed). *out is owned (free with free), *len its length (<=
 * TRANTOR_LP_BYTES_MAX). Equal states give equal bytes. */
void trantor_lp_to_bytes(const trantor_leader_policy *p, uint8_t **out, size_t *len);

/* Decodes untrusted bytes (borrowed). Accepts exactly the canonical output of trantor_lp_to_bytes:
 * anything else (truncation, trailing bytes, bad ids, unsorted members, zero weights, total
 * weight of 2^62 or more, a set epoch without the flag) is MIR_EPROTO with detail. *out is owned
 * (free with trantor_lp_free). */
mir_err trantor_lp_from_bytes(const uint8_t *data, size_t len, trantor_leader_policy **out);

/* True if the policy's membership equals m (borrowed): same ids and weights, in order. */
bool trantor_lp_membership_equals(const trantor_leader_policy *p, const Trantor__Membership *m);

#ifdef __cplusplus
}
#endif
#endif
