/*
 * The agreement table (votes.h): which replica delivered what at which sequence number, and
 * whether `quorum` of them agree on the entry at the frontier.
 *
 * Why byte equality: a vote is the canonical re-encoding of a Delivery, so two correct replicas
 * that delivered the same (sn, epoch, log_hash, transactions) produce identical bytes, and any
 * difference a faulty replica makes (another hash, a dropped or altered transaction) makes its
 * vote a different candidate. The 64-bit hash only speeds up the search; equality is always
 * decided by memcmp, so hash collisions cannot merge different contents.
 *
 * Invariants: slots hold exactly the sns in [frontier, frontier + window) that received a vote
 * (slot.sn == sn, or slot.voted == 0 when unused); a voter appears in at most one candidate per
 * slot; voters[r].bytes is the sum of the lengths of r's votes in the table.
 */
#include "votes.h"

#include <stdlib.h>
#include <string.h>

static uint64_t votes_hash(const uint8_t *data, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
  for (size_t i = 0; i < len; i++) {
    h ^= data[i];
    h *= 1099511628211ull;
  }
  return h;
}

void miri_cl_blob_unref(miri_cl_blob *blob) {
  if (blob != NULL && --blob->refs == 0) free(blob);
}

int miri_cl_votes_init(miri_cl_votes *v, uint32_t n_voters, uint32_t quorum, uint32_t window,
                       uint64_t bytes_max, uint64_t from_sn) {
  memset(v, 0, sizeof(*v));
  v->n_voters = n_voters;
  v->quorum = quorum;
  v->window = window;
  v->bytes_max = bytes_max;
  v->frontier = from_sn;
  for (uint32_t r = 0; r < MIRI_CL_VOTERS_MAX; r++) v->voters[r].last_sn = UINT64_MAX;
  v->slots = calloc(window, sizeof(*v->slots));
  v->decided = calloc(window, sizeof(*v->decided));
  if (v->slots == NULL || v->decided == NULL) return -1;
  for (uint32_t i = 0; i < window; i++) {
    v->slots[i].cands = calloc(n_voters, sizeof(miri_cl_cand));
    if (v->slots[i].cands == NULL) return -1;
  }
  return 0;
}

/* Drops every vote of slot s and gives the bytes back to their voters. */
static void votes_clear_slot(miri_cl_votes *v, miri_cl_slot *s) {
  for (uint32_t i = 0; i < s->n_cands; i++) {
    miri_cl_cand *c = &s->cands[i];
    for (uint32_t r = 0; r < v->n_voters; r++) {
      if (c->voters & (1ull << r)) v->voters[r].bytes -= c->blob->len;
    }
    miri_cl_blob_unref(c->blob);
    c->blob = NULL;
    c->voters = 0;
  }
  s->n_cands = 0;
  s->voted = 0;
}

void miri_cl_votes_fini(miri_cl_votes *v) {
  free(v->decided);
  v->decided = NULL;
  if (v->slots == NULL) return;
  for (uint32_t i = 0; i < v->window; i++) {
    if (v->slots[i].cands != NULL) votes_clear_slot(v, &v->slots[i]);
    free(v->slots[i].cands);
  }
  free(v->slots);
  v->slots = NULL;
}

static miri_cl_cand *votes_find(miri_cl_slot *s, uint64_t h, const uint8_t *data, size_t len) {
  for (uint32_t i = 0; i < s->n_cands; i++) {
    miri_cl_blob *b = s->cands[i].blob;
    if (b->hash == h && b->len == len && memcmp(b->data, data, len) == 0) return &s->cands[i];
  }
  return NULL;
}

miri_cl_vote_result miri_cl_votes_add(miri_cl_votes *v, uint32_t voter, uint64_t sn,
                                      const uint8_t *data, size_t len) {
  if (sn < v->frontier) {
    /* A late vote: compare it with what was agreed, while that is remembered. The 64-bit hash is
     * enough here, it only feeds a statistic. */
    if (v->frontier - sn <= v->window && v->decided[sn % v->window] != votes_hash(data, len)) {
      v->dissent++;
    }
    return MIRI_CL_VOTE_DECIDED;
  }
  if (sn - v->frontier >= v->window) return MIRI_CL_VOTE_AHEAD;
  miri_cl_slot *s = &v->slots[sn % v->window];
  if (s->voted == 0) s->sn = sn; /* an unused slot takes the sn */
  uint64_t bit = 1ull << voter;
  uint64_t h = votes_hash(data, len);
  miri_cl_cand *c = votes_find(s, h, data, len);
  if (s->voted & bit) {
    return (c != NULL && (c->voters & bit)) ? MIRI_CL_VOTE_REPEATED : MIRI_CL_VOTE_CONFLICT;
  }
  if (c == NULL) {
    /* Each voter makes at most one candidate per slot, so n_voters entries always suffice. */
    miri_cl_blob *b = malloc(sizeof(*b) + len);
    if (b == NULL) return MIRI_CL_VOTE_NOMEM;
    b->refs = 1;
    b->hash = h;
    b->len = len;
    if (len > 0) memcpy(b->data, data, len);
    c = &s->cands[s->n_cands++];
    c->blob = b;
    c->voters = 0;
  }
  c->voters |= bit;
  s->voted |= bit;
  v->voters[voter].bytes += len;
  if (v->voters[voter].last_sn == UINT64_MAX || sn > v->voters[voter].last_sn) {
    v->voters[voter].last_sn = sn;
  }
  if (!v->seen_any || sn > v->max_seen) v->max_seen = sn;
  v->seen_any = true;
  return MIRI_CL_VOTE_ADDED;
}

miri_cl_blob *miri_cl_votes_pop(miri_cl_votes *v) {
  miri_cl_slot *s = &v->slots[v->frontier % v->window];
  if (s->voted == 0 || s->sn != v->frontier) return NULL;
  for (uint32_t i = 0; i < s->n_cands; i++) {
    if ((uint32_t)__builtin_popcountll(s->cands[i].voters) < v->quorum) continue;
    miri_cl_blob *b = s->cands[i].blob;
    for (uint32_t j = 0; j < s->n_cands; j++) {
      if (j != i) v->dissent += (uint64_t)__builtin_popcountll(s->cands[j].voters);
    }
    v->decided[v->frontier % v->window] = b->hash;
    b->refs++; /* the caller's reference; the slot's goes with the slot */
    votes_clear_slot(v, s);
    v->frontier++;
    return b;
  }
  return NULL;
}

bool miri_cl_votes_room(const miri_cl_votes *v, uint32_t voter) {
  const miri_cl_voter *r = &v->voters[voter];
  if (r->bytes >= v->bytes_max) return false;
  if (r->last_sn == UINT64_MAX || r->last_sn < v->frontier) return true;
  return r->last_sn + 1 - v->frontier < v->window;
}

uint64_t miri_cl_votes_resume_sn(const miri_cl_votes *v, uint32_t voter) {
  const miri_cl_voter *r = &v->voters[voter];
  if (r->last_sn == UINT64_MAX || r->last_sn < v->frontier) return v->frontier;
  return r->last_sn + 1;
}

bool miri_cl_votes_waiting(const miri_cl_votes *v) {
  return v->seen_any && v->max_seen >= v->frontier;
}
