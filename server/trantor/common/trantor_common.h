/*
 * Helpers shared by the Trantor modules (internal): weighted quorums over a membership, the
 * length-prefixed hash encoding, and membership validation. Pure functions.
 */
#ifndef TRANTOR_COMMON_H
#define TRANTOR_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Quorum thresholds of a membership (docs/PROTOCOL.md "Weighted quorums"). */
typedef struct trantor_quorum {
  uint64_t total;  /* W */
  uint64_t f;      /* (W - 1) / 3 */
  uint64_t strong; /* (W + f) / 2 + 1 */
  uint64_t weak;   /* f + 1 */
} trantor_quorum;

/* Validates m (borrowed): 1..TRANTOR_MEMBERS_MAX members, sorted by id, ids unique and valid
 * (1..63 chars of [A-Za-z0-9_.-]), weights > 0, total < 2^62. MIR_EINVAL with detail. */
mir_err trantor_membership_check(const Trantor__Membership *m);

/* Quorum thresholds of a valid membership. */
void trantor_quorum_of(const Trantor__Membership *m, trantor_quorum *q);

/* Index of id in m, or -1. m borrowed. */
int trantor_member_index(const Trantor__Membership *m, const char *id);

/* Weight of id in m (0 if not a member). */
uint64_t trantor_member_weight(const Trantor__Membership *m, const char *id);

/* A small builder for hash inputs: up to TRANTOR_HASH_PARTS_MAX parts, borrowed pointers, plus
 * an 8-byte big-endian buffer per integer part. */
#define TRANTOR_HASH_PARTS_MAX 64
typedef struct trantor_hash_input {
  const uint8_t *parts[TRANTOR_HASH_PARTS_MAX];
  size_t lens[TRANTOR_HASH_PARTS_MAX];
  uint8_t ints[TRANTOR_HASH_PARTS_MAX][8];
  size_t n;
} trantor_hash_input;

void trantor_hash_input_init(trantor_hash_input *in);
/* Adds a part (borrowed until the hash is computed). Asserts the bound (callers add a fixed
 * number of parts). */
void trantor_hash_add_bytes(trantor_hash_input *in, const void *data, size_t len);
void trantor_hash_add_str(trantor_hash_input *in, const char *s);
void trantor_hash_add_u64(trantor_hash_input *in, uint64_t v);
void trantor_hash_compute(const trantor_hash_input *in, trantor_hash_fn fn, uint8_t out[32]);

/* bucket(client_id) = FNV-1a-64(client_id) mod num_buckets. */
uint32_t trantor_bucket_of(const char *client_id, uint32_t num_buckets);

/* A portable reference SHA-256 with the length-prefixed list encoding, for tests and the
 * simulator (production passes the crypto module's BoringSSL-backed function). */
void trantor_hash_reference(const uint8_t *const *parts, const size_t *lens, size_t n,
                            uint8_t out[32]);

#ifdef __cplusplus
}
#endif
#endif
