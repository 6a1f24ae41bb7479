/*
 * Shared Trantor helpers: membership checks, weighted quorums, hash inputs, buckets, defaults.
 *
 * Quorum arithmetic stays in uint64_t: trantor_membership_check bounds the total weight below
 * 2^62, so W + f cannot overflow.
 */
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/event.h"
#include "trantor_common.h"

mir_err trantor_membership_check(const Trantor__Membership *m) {
  if (m == NULL || m->n_members == 0) return mir_error_set(MIR_EINVAL, "membership: no members");
  if (m->n_members > TRANTOR_MEMBERS_MAX) {
    return mir_error_set(MIR_EINVAL, "membership: %zu members, at most %d", m->n_members,
                         TRANTOR_MEMBERS_MAX);
  }
  uint64_t total = 0;
  for (size_t i = 0; i < m->n_members; i++) {
    const Trantor__Member *mem = m->members[i];
    if (mem == NULL || !mir_module_id_valid(mem->id) || strchr(mem->id, '/') != NULL) {
      return mir_error_set(MIR_EINVAL, "membership: members[%zu].id: invalid node id", i);
    }
    if (i > 0 && strcmp(m->members[i - 1]->id, mem->id) >= 0) {
      return mir_error_set(MIR_EINVAL, "membership: members[%zu].id: not sorted or duplicate", i);
    }
    if (mem->weight == 0) {
      return mir_error_set(MIR_EINVAL, "membership: members[%zu].weight: must be > 0", i);
    }
    if (mem->weight >= (UINT64_C(1) << 62) - total) {
      return mir_error_set(MIR_EINVAL, "membership: total weight must be below 2^62");
    }
    total += mem->weight;
  }
  return MIR_OK;
}

void trantor_quorum_of(const Trantor__Membership *m, trantor_quorum *q) {
  uint64_t w = 0;
  for (size_t i = 0; i < m->n_members; i++) w += m->members[i]->weight;
  MIR_ASSERT(w > 0);
  q->total = w;
  q->f = (w - 1) / 3;
  q->strong = (w + q->f) / 2 + 1;
  q->weak = q->f + 1;
}

int trantor_member_index(const Trantor__Membership *m, const char *id) {
  size_t lo = 0, hi = m->n_members; /* sorted by id: binary search */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(m->members[mid]->id, id);
    if (c == 0) return (int)mid;
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return -1;
}

uint64_t trantor_member_weight(const Trantor__Membership *m, const char *id) {
  int i = trantor_member_index(m, id);
  return i < 0 ? 0 : m->members[i]->weight;
}

void trantor_hash_input_init(trantor_hash_input *in) {
  in->n = 0;
}

void trantor_hash_add_bytes(trantor_hash_input *in, const void *data, size_t len) {
  MIR_ASSERT(in->n < TRANTOR_HASH_PARTS_MAX);
  in->parts[in->n] = data;
  in->lens[in->n] = len;
  in->n++;
}

void trantor_hash_add_str(trantor_hash_input *in, const char *s) {
  trantor_hash_add_bytes(in, s, strlen(s));
}

void trantor_hash_add_u64(trantor_hash_input *in, uint64_t v) {
  MIR_ASSERT(in->n < TRANTOR_HASH_PARTS_MAX);
  for (int i = 0; i < 8; i++) in->ints[in->n][i] = (uint8_t)(v >> (56 - 8 * i));
  trantor_hash_add_bytes(in, in->ints[in->n], 8);
}

void trantor_hash_compute(const trantor_hash_input *in, trantor_hash_fn fn, uint8_t out[32]) {
  fn(in->parts, in->lens, in->n, out);
}

uint32_t trantor_bucket_of(const char *client_id, uint32_t num_buckets) {
  uint64_t h = UINT64_C(1469598103934665603);
  for (const unsigned char *p = (const unsigned char *)client_id; *p; p++) {
    h = (h ^ *p) * UINT64_C(1099511628211);
  }
  return (uint32_t)(h % num_buckets);
}

void trantor_params_default(trantor_params *p) {
  memset(p, 0, sizeof *p);
  p->segment_length = 16;
  p->num_buckets = 64;
  p->retained_epochs = 2;
  p->epochs_ahead_max = 4;
  p->leader_policy_blacklist = 0;
  p->view_change_sn_timeout_ms = 500;
  p->view_change_segment_timeout_ms = 4000;
  p->done_resend_ms = 250;
  p->catch_up_delay_ms = 250;
  p->view_change_resend_ms = 250;
  p->msg_buf_bytes = 8u << 20;
  p->max_batch_txs = 1024;
  p->max_batch_bytes = 1u << 20;
  p->batch_timeout_ms = 50;
  p->max_tx_bytes = 64u << 10;
  p->client_window = 1024;
  p->mempool_max_txs = 1000000;
  p->mempool_max_bytes = (uint64_t)128 << 20; /* 20 s of the peak at 256 bytes a transaction */
  p->checkpoint_resend_ms = 500;
}

#define CHECK(cond, field, reason) \
  if (!(cond)) return mir_error_set(MIR_EINVAL, "trantor params: %s: %s", field, reason)

mir_err trantor_params_check(const trantor_params *p) {
  CHECK(p->segment_length >= 1 && p->segment_length <= 4096, "segment_length", "must be 1..4096");
  CHECK(p->num_buckets >= 1 && p->num_buckets <= 65536, "num_buckets", "must be 1..65536");
  CHECK(p->retained_epochs >= 1 && p->retained_epochs <= 64, "retained_epochs", "must be 1..64");
  CHECK(p->epochs_ahead_max >= 1 && p->epochs_ahead_max <= 64, "epochs_ahead_max", "must be 1..64");
  CHECK(p->leader_policy_blacklist == 0 || p->leader_policy_blacklist == 1,
        "leader_policy_blacklist", "must be 0 or 1");
  CHECK(p->view_change_sn_timeout_ms >= 1, "view_change_sn_timeout_ms", "must be > 0");
  CHECK(p->view_change_segment_timeout_ms >= p->view_change_sn_timeout_ms,
        "view_change_segment_timeout_ms", "must be >= view_change_sn_timeout_ms");
  CHECK(p->done_resend_ms >= 1, "done_resend_ms", "must be > 0");
  CHECK(p->catch_up_delay_ms >= 1, "catch_up_delay_ms", "must be > 0");
  CHECK(p->view_change_resend_ms >= 1, "view_change_resend_ms", "must be > 0");
  CHECK(p->msg_buf_bytes >= 4096, "msg_buf_bytes", "must be >= 4096");
  CHECK(p->max_batch_txs >= 1 && p->max_batch_txs <= 1000000, "max_batch_txs", "must be 1..1e6");
  CHECK(p->max_tx_bytes >= 1, "max_tx_bytes", "must be > 0");
  CHECK(p->max_batch_bytes >= p->max_tx_bytes && p->max_batch_bytes <= (64u << 20),
        "max_batch_bytes", "must be >= max_tx_bytes and <= 64 MiB");
  CHECK(p->batch_timeout_ms >= 1 && p->batch_timeout_ms < p->view_change_sn_timeout_ms,
        "batch_timeout_ms", "must be > 0 and below view_change_sn_timeout_ms");
  CHECK(p->client_window >= 1 && p->client_window <= 1000000, "client_window", "must be 1..1e6");
  CHECK(p->mempool_max_txs >= p->max_batch_txs, "mempool_max_txs", "must be >= max_batch_txs");
  CHECK(p->mempool_max_bytes >= p->max_batch_bytes, "mempool_max_bytes",
        "must be >= max_batch_bytes");
  CHECK(p->checkpoint_resend_ms >= 1, "checkpoint_resend_ms", "must be > 0");
  return MIR_OK;
}
