/*
 * PBFT segment orderer: the hash encodings of docs/PROTOCOL.md and the shape checks every peer
 * message passes before it may touch the state.
 *
 * Everything here is pure. The checks bound every count and size a peer controls (sns in the
 * segment, digest lengths, certificate sizes, set sizes, views), so the handlers after them only
 * meet well-formed values; none of them asserts on peer input.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "pbft_internal.h"

static void pbft_put_u64(uint8_t out[8], uint64_t v) {
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (56 - 8 * i));
}

void trantor_pbft_preprepare_digest(trantor_hash_fn hash, uint64_t sn, bool aborted,
                                    const uint8_t *cert, size_t len, uint8_t out[32]) {
  static const uint8_t flag[2] = {0, 1};
  trantor_hash_input in;
  trantor_hash_input_init(&in);
  trantor_hash_add_str(&in, "pp");
  trantor_hash_add_u64(&in, sn);
  trantor_hash_add_bytes(&in, &flag[aborted ? 1 : 0], 1);
  trantor_hash_add_bytes(&in, len > 0 ? cert : flag, len); /* never a NULL pointer */
  trantor_hash_compute(&in, hash, out);
}

/* Adds the three parts (sn, view, digest) of one set entry at parts[k..k+2]. */
static size_t pbft_vc_entry_parts(const uint8_t **parts, size_t *lens, uint8_t (*ints)[8], size_t k,
                                  uint64_t sn, uint64_t view, const ProtobufCBinaryData *digest) {
  pbft_put_u64(ints[k], sn);
  parts[k] = ints[k];
  lens[k] = 8;
  pbft_put_u64(ints[k + 1], view);
  parts[k + 1] = ints[k + 1];
  lens[k + 1] = 8;
  parts[k + 2] = digest->data;
  lens[k + 2] = digest->len;
  return k + 3;
}

void trantor_pbft_view_change_hash(trantor_hash_fn hash, const Trantor__ViewChange *vc,
                                   uint8_t out[32]) {
  size_t n = 3 + 3 * (vc->n_pset + vc->n_qset);
  const uint8_t **parts = mir_xmalloc(n * sizeof(*parts));
  size_t *lens = mir_xmalloc(n * sizeof(*lens));
  uint8_t(*ints)[8] = mir_xmalloc(n * sizeof(*ints));
  size_t k = 0;
  parts[k] = (const uint8_t *)"vc";
  lens[k++] = 2;
  pbft_put_u64(ints[k], vc->view);
  parts[k] = ints[k];
  lens[k++] = 8;
  for (size_t i = 0; i < vc->n_pset; i++) {
    const Trantor__PSetEntry *e = vc->pset[i];
    k = pbft_vc_entry_parts(parts, lens, ints, k, e->sn, e->view, &e->digest);
  }
  parts[k] = (const uint8_t *)"q";
  lens[k++] = 1;
  for (size_t i = 0; i < vc->n_qset; i++) {
    const Trantor__QSetEntry *e = vc->qset[i];
    k = pbft_vc_entry_parts(parts, lens, ints, k, e->sn, e->view, &e->digest);
  }
  MIR_ASSERT(k == n);
  hash(parts, lens, n, out);
  free(parts);
  free(lens);
  free(ints);
}

size_t miri_pbft_slot_of(const pbft *p, uint64_t sn) {
  size_t lo = 0, hi = p->L; /* params sns are strictly ascending: binary search */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->slots[mid].sn == sn) return mid;
    if (p->slots[mid].sn < sn) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return PBFT_NONE;
}

bool miri_pbft_digest_ok(const ProtobufCBinaryData *d) {
  return d->len == PBFT_DIGEST && d->data != NULL;
}

trantor_pbft_drop miri_pbft_check_preprepare(const pbft *p, const Trantor__Preprepare *pp,
                                             size_t *slot) {
  if (pp == NULL) return TRANTOR_PBFT_DROP_MALFORMED;
  *slot = miri_pbft_slot_of(p, pp->sn);
  if (*slot == PBFT_NONE) return TRANTOR_PBFT_DROP_BAD_SN;
  if (pp->cert.len > p->params->max_cert_bytes) return TRANTOR_PBFT_DROP_CERT_TOO_LARGE;
  /* An aborted slot carries no certificate; anything else would be delivered as data. */
  if (pp->aborted && pp->cert.len != 0) return TRANTOR_PBFT_DROP_MALFORMED;
  if (pp->view > TRANTOR_PBFT_VIEW_MAX) return TRANTOR_PBFT_DROP_VIEW_AHEAD;
  return TRANTOR_PBFT_DROP_KINDS;
}

/* Orders set entries by (sn, view, digest); digests are 32 bytes when this runs. */
static int pbft_entry_cmp(uint64_t sn1, uint64_t v1, const uint8_t *d1, uint64_t sn2, uint64_t v2,
                          const uint8_t *d2) {
  if (sn1 != sn2) return sn1 < sn2 ? -1 : 1;
  if (v1 != v2) return v1 < v2 ? -1 : 1;
  return memcmp(d1, d2, PBFT_DIGEST);
}

static bool pbft_pset_ok(const pbft *p, const Trantor__ViewChange *vc) {
  if (vc->n_pset > p->L) return false;
  for (size_t i = 0; i < vc->n_pset; i++) {
    const Trantor__PSetEntry *e = vc->pset[i];
    if (e == NULL || miri_pbft_slot_of(p, e->sn) == PBFT_NONE || e->view >= vc->view ||
        !miri_pbft_digest_ok(&e->digest)) {
      return false;
    }
    if (i > 0 && vc->pset[i - 1]->sn >= e->sn) return false; /* one entry per sn, ascending */
  }
  return true;
}

/* True if the Q-set entries of one sn, [from, to), have distinct digests. */
static bool pbft_qset_run_distinct(const Trantor__ViewChange *vc, size_t from, size_t to) {
  for (size_t a = from; a < to; a++) {
    for (size_t b = a + 1; b < to; b++) {
      if (memcmp(vc->qset[a]->digest.data, vc->qset[b]->digest.data, PBFT_DIGEST) == 0) {
        return false;
      }
    }
  }
  return true;
}

static bool pbft_qset_ok(const pbft *p, const Trantor__ViewChange *vc) {
  if (vc->n_qset > p->L * TRANTOR_PBFT_KNOWN_PER_SN_MAX) return false;
  size_t run = 0; /* first entry of the current sn */
  for (size_t i = 0; i < vc->n_qset; i++) {
    const Trantor__QSetEntry *e = vc->qset[i];
    if (e == NULL || miri_pbft_slot_of(p, e->sn) == PBFT_NONE || e->view >= vc->view ||
        !miri_pbft_digest_ok(&e->digest)) {
      return false;
    }
    if (i == 0) continue;
    const Trantor__QSetEntry *prev = vc->qset[i - 1];
    if (pbft_entry_cmp(prev->sn, prev->view, prev->digest.data, e->sn, e->view, e->digest.data) >=
        0) {
      return false;
    }
    if (prev->sn != e->sn) run = i;
    if (i + 1 - run > TRANTOR_PBFT_KNOWN_PER_SN_MAX) return false;
  }
  /* Distinct digests per sn: checked per run, each at most KNOWN_PER_SN_MAX long. */
  for (size_t i = 0, start = 0; i <= vc->n_qset; i++) {
    if (i == vc->n_qset || vc->qset[i]->sn != vc->qset[start]->sn) {
      if (i > start && !pbft_qset_run_distinct(vc, start, i)) return false;
      start = i;
    }
  }
  return true;
}

bool miri_pbft_view_change_ok(const pbft *p, const Trantor__ViewChange *vc) {
  if (vc == NULL || vc->view == 0 || vc->view > TRANTOR_PBFT_VIEW_MAX) return false;
  return pbft_pset_ok(p, vc) && pbft_qset_ok(p, vc);
}

bool miri_pbft_signed_vc_ok(const pbft *p, const Trantor__SignedViewChange *svc, size_t *signer) {
  if (svc == NULL || svc->signer == NULL || svc->signature.len == 0 ||
      svc->signature.len > TRANTOR_PBFT_SIGNATURE_BYTES_MAX) {
    return false;
  }
  int idx = trantor_member_index(p->params->membership, svc->signer);
  if (idx < 0) return false;
  *signer = (size_t)idx;
  return miri_pbft_view_change_ok(p, svc->view_change);
}

const Trantor__PSetEntry *miri_pbft_pset_find(const Trantor__ViewChange *vc, uint64_t sn) {
  size_t lo = 0, hi = vc->n_pset; /* ascending by sn, one entry each (checked at ingress) */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (vc->pset[mid]->sn == sn) return vc->pset[mid];
    if (vc->pset[mid]->sn < sn) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return NULL;
}

bool miri_pbft_qset_view(const Trantor__ViewChange *vc, uint64_t sn, const uint8_t *digest,
                         uint64_t *view) {
  size_t lo = 0, hi = vc->n_qset; /* first entry with entry.sn >= sn */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (vc->qset[mid]->sn < sn) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  for (size_t i = lo; i < vc->n_qset && vc->qset[i]->sn == sn; i++) {
    if (memcmp(vc->qset[i]->digest.data, digest, PBFT_DIGEST) == 0) {
      *view = vc->qset[i]->view;
      return true;
    }
  }
  return false;
}

Trantor__Preprepare *miri_pbft_preprepare_new(uint64_t sn, uint64_t view, bool aborted,
                                              const ProtobufCBinaryData *cert) {
  Trantor__Preprepare *pp = mir_xmalloc(sizeof(*pp));
  trantor__preprepare__init(pp);
  pp->sn = sn;
  pp->view = view;
  pp->aborted = aborted;
  pp->cert.len = cert->len;
  pp->cert.data = mir_xmemdup(cert->data, cert->len);
  return pp;
}
