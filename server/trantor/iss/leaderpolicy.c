/*
 * Leader selection policies: simple and blacklist (leaderpolicy.h).
 *
 * State: the members sorted by id, each with its weight and, for the blacklist policy, whether it
 * was ever suspected and the highest epoch it was suspected in. Every node applies the same
 * suspicions (aborted slots of the same committed log), so every correct node computes the same
 * leaders; that only holds if the order is total, hence the tie-break by id among members
 * suspected in the same epoch (the original left such ties to map iteration order).
 *
 * Invariants: 1 <= n <= TRANTOR_MEMBERS_MAX; ids valid, unique and sorted; weights > 0 with a
 * total below 2^62 (so quorum sums never overflow); a member that is not suspected has epoch 0;
 * a simple policy has no suspected member.
 *
 * Serialised form (big-endian): kind (1 byte), member count (4 bytes), then per member: id
 * length (1 byte), id, weight (8 bytes), suspected flag (1 byte), epoch (8 bytes).
 */
#include "leaderpolicy.h"

#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "trantor_common.h"

#define LP_ID_MAX 63

typedef struct lp_member {
  char id[LP_ID_MAX + 1];
  uint64_t weight;
  bool suspected;
  uint64_t epoch; /* last epoch it was suspected in; 0 unless suspected */
} lp_member;

struct trantor_leader_policy {
  trantor_lp_kind kind;
  size_t n;
  lp_member *members; /* n, sorted by id */
};

/* Copies the members of a valid membership m into a new array (owned). */
static lp_member *lp_members_from(const Trantor__Membership *m) {
  lp_member *arr = mir_xcalloc(m->n_members, sizeof(*arr));
  for (size_t i = 0; i < m->n_members; i++) {
    size_t len = strlen(m->members[i]->id);
    MIR_ASSERT(len <= LP_ID_MAX); /* guaranteed by trantor_membership_check */
    memcpy(arr[i].id, m->members[i]->id, len + 1);
    arr[i].weight = m->members[i]->weight;
  }
  return arr;
}

mir_err trantor_lp_new(trantor_lp_kind kind, const Trantor__Membership *m,
                       trantor_leader_policy **out) {
  if (kind != TRANTOR_LP_SIMPLE && kind != TRANTOR_LP_BLACKLIST) {
    return mir_error_set(MIR_EINVAL, "leader policy: unknown kind %d", (int)kind);
  }
  mir_err err = trantor_membership_check(m);
  if (err != MIR_OK) return err;
  trantor_leader_policy *p = mir_xcalloc(1, sizeof(*p));
  p->kind = kind;
  p->n = m->n_members;
  p->members = lp_members_from(m);
  *out = p;
  return MIR_OK;
}

void trantor_lp_free(trantor_leader_policy *p) {
  if (p == NULL) return;
  free(p->members);
  free(p);
}

trantor_lp_kind trantor_lp_kind_of(const trantor_leader_policy *p) {
  return p->kind;
}

/* Index of id among the members (binary search: they are sorted), or -1. */
static long lp_find(const trantor_leader_policy *p, const char *id) {
  size_t lo = 0, hi = p->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(p->members[mid].id, id);
    if (c == 0) return (long)mid;
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return -1;
}

void trantor_lp_suspect(trantor_leader_policy *p, uint64_t epoch, const char *node) {
  if (p->kind != TRANTOR_LP_BLACKLIST) return;
  long i = lp_find(p, node);
  if (i < 0) return; /* a suspicion of a non-member changes nothing */
  lp_member *mem = &p->members[i];
  if (!mem->suspected || epoch > mem->epoch) mem->epoch = epoch;
  mem->suspected = true;
}

/* Blacklist order: unsuspected before suspected, then older suspicion first, then id. Total, so
 * qsort gives the same result everywhere. */
static int lp_cmp(const void *a, const void *b) {
  const lp_member *x = *(const lp_member *const *)a;
  const lp_member *y = *(const lp_member *const *)b;
  if (x->suspected != y->suspected) return x->suspected ? 1 : -1;
  if (x->epoch != y->epoch) return x->epoch < y->epoch ? -1 : 1;
  return strcmp(x->id, y->id);
}

size_t trantor_lp_leaders(const trantor_leader_policy *p, const char **out, size_t max) {
  MIR_ASSERT(max >= p->n);
  if (p->kind == TRANTOR_LP_SIMPLE) {
    for (size_t i = 0; i < p->n; i++) out[i] = p->members[i].id;
    return p->n;
  }
  const lp_member **order = mir_xmalloc(p->n * sizeof(*order));
  uint64_t total = 0;
  size_t suspected = 0;
  for (size_t i = 0; i < p->n; i++) {
    order[i] = &p->members[i];
    total += p->members[i].weight;
    if (p->members[i].suspected) suspected++;
  }
  qsort(order, p->n, sizeof(*order), lp_cmp);
  /* The leaders must include a strong quorum by weight (docs/PROTOCOL.md), so that suspicions
   * alone can never leave an epoch to a set of leaders that faulty nodes could make up. */
  uint64_t f = (total - 1) / 3, strong = (total + f) / 2 + 1, acc = 0;
  size_t min_prefix = 0;
  while (min_prefix < p->n && acc < strong) acc += order[min_prefix++]->weight;
  size_t k = p->n - suspected;
  if (k < min_prefix) k = min_prefix;
  for (size_t i = 0; i < k; i++) out[i] = order[i]->id;
  free(order);
  return k;
}

mir_err trantor_lp_reconfigure(trantor_leader_policy *p, const Trantor__Membership *m) {
  mir_err err = trantor_membership_check(m);
  if (err != MIR_OK) return err;
  lp_member *next = lp_members_from(m);
  for (size_t i = 0; i < m->n_members; i++) {
    long j = lp_find(p, next[i].id);
    if (j >= 0 && p->members[j].suspected) {
      next[i].suspected = true;
      next[i].epoch = p->members[j].epoch;
    }
  }
  free(p->members);
  p->members = next;
  p->n = m->n_members;
  return MIR_OK;
}

bool trantor_lp_membership_equals(const trantor_leader_policy *p, const Trantor__Membership *m) {
  if (m == NULL || m->n_members != p->n) return false;
  for (size_t i = 0; i < p->n; i++) {
    const Trantor__Member *mem = m->members[i];
    if (mem == NULL || mem->id == NULL || strcmp(mem->id, p->members[i].id) != 0 ||
        mem->weight != p->members[i].weight) {
      return false;
    }
  }
  return true;
}

/* ---- serialisation ---- */

static void lp_put_u64(uint8_t *b, uint64_t v) {
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t lp_get_u64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | b[i];
  return v;
}

void trantor_lp_to_bytes(const trantor_leader_policy *p, uint8_t **out, size_t *len) {
  size_t cap = 5;
  for (size_t i = 0; i < p->n; i++) cap += 1 + strlen(p->members[i].id) + 8 + 1 + 8;
  uint8_t *b = mir_xmalloc(cap);
  size_t o = 0;
  b[o++] = (uint8_t)p->kind;
  for (int i = 0; i < 4; i++) b[o++] = (uint8_t)(p->n >> (24 - 8 * i));
  for (size_t i = 0; i < p->n; i++) {
    const lp_member *mem = &p->members[i];
    size_t idlen = strlen(mem->id);
    b[o++] = (uint8_t)idlen;
    memcpy(b + o, mem->id, idlen);
    o += idlen;
    lp_put_u64(b + o, mem->weight);
    o += 8;
    b[o++] = mem->suspected ? 1 : 0;
    lp_put_u64(b + o, mem->epoch);
    o += 8;
  }
  MIR_ASSERT(o == cap && cap <= TRANTOR_LP_BYTES_MAX);
  *out = b;
  *len = cap;
}

/* Decodes one member at *off into mem; MIR_EPROTO if the bytes run out or a field is invalid. */
static mir_err lp_decode_member(const uint8_t *d, size_t len, size_t *off, trantor_lp_kind kind,
                                lp_member *mem) {
  size_t o = *off;
  if (o >= len) return mir_error_set(MIR_EPROTO, "leader policy: truncated member");
  size_t idlen = d[o++];
  if (idlen == 0 || idlen > LP_ID_MAX || len - o < idlen + 8 + 1 + 8) {
    return mir_error_set(MIR_EPROTO, "leader policy: bad id length or truncated member");
  }
  memcpy(mem->id, d + o, idlen);
  mem->id[idlen] = '\0';
  if (memchr(mem->id, '\0', idlen) != NULL) {
    return mir_error_set(MIR_EPROTO, "leader policy: NUL in a member id");
  }
  o += idlen;
  mem->weight = lp_get_u64(d + o);
  o += 8;
  uint8_t flag = d[o++];
  mem->epoch = lp_get_u64(d + o);
  o += 8;
  /* Canonical form only: one encoding per state, so equal states hash alike in checkpoints. */
  if (flag > 1 || (flag == 0 && mem->epoch != 0) || (flag == 1 && kind == TRANTOR_LP_SIMPLE)) {
    return mir_error_set(MIR_EPROTO, "leader policy: non-canonical suspicion of %s", mem->id);
  }
  mem->suspected = flag == 1;
  *off = o;
  return MIR_OK;
}

/* Checks ids, order and weights of decoded members with the membership rules. */
static mir_err lp_check_members(const lp_member *members, size_t n) {
  Trantor__Member *store = mir_xcalloc(n, sizeof(*store));
  Trantor__Member **ptrs = mir_xcalloc(n, sizeof(*ptrs));
  for (size_t i = 0; i < n; i++) {
    trantor__member__init(&store[i]);
    store[i].id = (char *)members[i].id;
    store[i].weight = members[i].weight;
    ptrs[i] = &store[i];
  }
  Trantor__Membership m = TRANTOR__MEMBERSHIP__INIT;
  m.n_members = n;
  m.members = ptrs;
  mir_err err = trantor_membership_check(&m);
  free(ptrs);
  free(store);
  if (err != MIR_OK) return mir_error_set(MIR_EPROTO, "leader policy: %s", mir_error_detail());
  return MIR_OK;
}

mir_err trantor_lp_from_bytes(const uint8_t *data, size_t len, trantor_leader_policy **out) {
  if (len < 5 || len > TRANTOR_LP_BYTES_MAX) {
    return mir_error_set(MIR_EPROTO, "leader policy: %zu bytes", len);
  }
  if (data[0] != TRANTOR_LP_SIMPLE && data[0] != TRANTOR_LP_BLACKLIST) {
    return mir_error_set(MIR_EPROTO, "leader policy: unknown kind %u", data[0]);
  }
  trantor_lp_kind kind = (trantor_lp_kind)data[0];
  uint32_t n =
      ((uint32_t)data[1] << 24) | ((uint32_t)data[2] << 16) | ((uint32_t)data[3] << 8) | data[4];
  if (n == 0 || n > TRANTOR_MEMBERS_MAX) {
    return mir_error_set(MIR_EPROTO, "leader policy: %u members", n);
  }
  lp_member *members = mir_xcalloc(n, sizeof(*members));
  size_t off = 5;
  mir_err err = MIR_OK;
  for (uint32_t i = 0; i < n && err == MIR_OK; i++) {
    err = lp_decode_member(data, len, &off, kind, &members[i]);
  }
  if (err == MIR_OK && off != len) {
    err = mir_error_set(MIR_EPROTO, "leader policy: %zu trailing bytes", len - off);
  }
  if (err == MIR_OK) err = lp_check_members(members, n);
  if (err != MIR_OK) {
    free(members);
    return err;
  }
  trantor_leader_policy *p = mir_xcalloc(1, sizeof(*p));
  p->kind = kind;
  p->n = n;
  p->members = members;
  *out = p;
  return MIR_OK;
}
