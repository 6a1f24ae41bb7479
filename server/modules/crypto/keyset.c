/*
 * The key set of a node: its own private key and the public key of every node it verifies.
 *
 * Public keys sit in an open-addressing hash table keyed by node id (linear probing, tombstones
 * on removal, grown to keep the load under one half), so that a verification looks its signer up
 * in constant time even with tens of thousands of client keys. The table is bounded by
 * MIR_KEYSET_MAX. Worker threads only read it; changes happen while no module uses it.
 *
 * The pseudo key set derives every node's key from one seed, so each node of a test or a
 * simulation can build the full set locally; it is insecure by design.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_common.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/hasher.h"
#include "mir/membership.h"

typedef struct keyset_slot {
  char *id;            /* owned; NULL: empty (or a tombstone when key is the marker) */
  mir_public_key *key; /* owned */
} keyset_slot;

struct mir_keyset {
  char own_id[MIR_MODULE_ID_MAX];
  mir_private_key *own;
  keyset_slot *slots;
  size_t cap;   /* power of two */
  size_t count; /* live keys */
  size_t used;  /* live keys plus tombstones */
};

/* Marks a removed slot so that probing continues past it. Never dereferenced. */
static mir_public_key *const keyset_tombstone = (mir_public_key *)&keyset_tombstone;

static uint64_t keyset_hash(const char *s) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

mir_keyset *mir_keyset_new(const char *own_id, mir_private_key *own) {
  MIR_ASSERT(strlen(own_id) < MIR_MODULE_ID_MAX);
  mir_keyset *ks = mir_xcalloc(1, sizeof *ks);
  strcpy(ks->own_id, own_id);
  ks->own = own;
  ks->cap = 16;
  ks->slots = mir_xcalloc(ks->cap, sizeof *ks->slots);
  return ks;
}

void mir_keyset_free(mir_keyset *ks) {
  if (ks == NULL) return;
  for (size_t i = 0; i < ks->cap; i++) {
    free(ks->slots[i].id);
    if (ks->slots[i].key != keyset_tombstone) mir_public_key_free(ks->slots[i].key);
  }
  free(ks->slots);
  mir_private_key_free(ks->own);
  free(ks);
}

/* Index of node_id's live slot, or of the slot where it would go (*found false). */
static size_t keyset_probe(const mir_keyset *ks, const char *node_id, bool *found) {
  size_t mask = ks->cap - 1;
  size_t i = (size_t)keyset_hash(node_id) & mask;
  size_t first_free = SIZE_MAX;
  for (;;) {
    const keyset_slot *s = &ks->slots[i];
    if (s->key == NULL) {
      *found = false;
      return first_free != SIZE_MAX ? first_free : i;
    }
    if (s->key == keyset_tombstone) {
      if (first_free == SIZE_MAX) first_free = i;
    } else if (strcmp(s->id, node_id) == 0) {
      *found = true;
      return i;
    }
    i = (i + 1) & mask;
  }
}

/* Rehashes into a table of new_cap slots, dropping tombstones. */
static void keyset_rehash(mir_keyset *ks, size_t new_cap) {
  keyset_slot *old = ks->slots;
  size_t old_cap = ks->cap;
  ks->slots = mir_xcalloc(new_cap, sizeof *ks->slots);
  ks->cap = new_cap;
  ks->used = ks->count;
  for (size_t i = 0; i < old_cap; i++) {
    if (old[i].key == NULL || old[i].key == keyset_tombstone) continue;
    bool found = false;
    size_t j = keyset_probe(ks, old[i].id, &found);
    ks->slots[j] = old[i];
  }
  free(old);
}

mir_err mir_keyset_add(mir_keyset *ks, const char *node_id, mir_public_key *key) {
  size_t id_len = strlen(node_id);
  if (id_len == 0 || id_len >= MIR_MODULE_ID_MAX) {
    mir_public_key_free(key);
    return mir_error_set(MIR_EINVAL, "node id of %zu bytes (1 to %d allowed)", id_len,
                         MIR_MODULE_ID_MAX - 1);
  }
  if (ks->count >= MIR_KEYSET_MAX) {
    mir_public_key_free(key);
    return mir_error_set(MIR_EFULL, "key set holds %d keys already", MIR_KEYSET_MAX);
  }
  /* Live keys plus tombstones stay at most half the slots, so every probe meets an empty slot.
   * Rehashing drops the tombstones; the table doubles only if live keys alone need it. */
  if (2 * (ks->used + 1) > ks->cap) {
    keyset_rehash(ks, 2 * (ks->count + 1) > ks->cap ? ks->cap * 2 : ks->cap);
  }
  bool found = false;
  size_t i = keyset_probe(ks, node_id, &found);
  if (found) {
    mir_public_key_free(key);
    return mir_error_set(MIR_EEXIST, "node %s has a key already", node_id);
  }
  if (ks->slots[i].key == NULL) ks->used++;
  free(ks->slots[i].id); /* a reused tombstone keeps no id, so this frees NULL */
  ks->slots[i].id = mir_xstrdup(node_id);
  ks->slots[i].key = key;
  ks->count++;
  return MIR_OK;
}

mir_err mir_keyset_remove(mir_keyset *ks, const char *node_id) {
  bool found = false;
  size_t i = keyset_probe(ks, node_id, &found);
  if (!found) return mir_error_set(MIR_ENOTFOUND, "node %s has no key", node_id);
  free(ks->slots[i].id);
  ks->slots[i].id = NULL;
  mir_public_key_free(ks->slots[i].key);
  ks->slots[i].key = keyset_tombstone;
  ks->count--;
  return MIR_OK;
}

const mir_public_key *mir_keyset_find(const mir_keyset *ks, const char *node_id) {
  bool found = false;
  size_t i = keyset_probe(ks, node_id, &found);
  return found ? ks->slots[i].key : NULL;
}

const char *mir_keyset_own_id(const mir_keyset *ks) {
  return ks->own_id;
}
const mir_private_key *mir_keyset_own_key(const mir_keyset *ks) {
  return ks->own;
}
size_t mir_keyset_count(const mir_keyset *ks) {
  return ks->count;
}

mir_err mir_keyset_sign(const mir_keyset *ks, const ProtobufCBinaryData *parts, size_t n_parts,
                        uint8_t *sig, size_t *sig_len) {
  if (ks->own == NULL) return mir_error_set(MIR_EINVAL, "node %s has no private key", ks->own_id);
  return mir_sign(ks->own, parts, n_parts, sig, sig_len);
}

mir_err mir_keyset_verify(const mir_keyset *ks, const char *node_id,
                          const ProtobufCBinaryData *parts, size_t n_parts, const uint8_t *sig,
                          size_t sig_len) {
  const mir_public_key *key = mir_keyset_find(ks, node_id);
  if (key == NULL) return mir_error_set(MIR_ENOTFOUND, "node %s has no key", node_id);
  return mir_verify(key, parts, n_parts, sig, sig_len);
}

void mir_crypto_pseudo_seed(uint64_t seed, const char *node_id, uint8_t *out) {
  static const char label[] = "mir pseudo key v1";
  uint8_t seed_be[8];
  for (int b = 0; b < 8; b++) seed_be[b] = (uint8_t)(seed >> (8 * (7 - b)));
  mir_hash_ctx ctx;
  mir_hash_init(&ctx);
  mir_hash_update_part(&ctx, label, sizeof label - 1);
  mir_hash_update_part(&ctx, seed_be, sizeof seed_be);
  mir_hash_update_part(&ctx, node_id, strlen(node_id));
  mir_hash_final(&ctx, out);
}

mir_err mir_keyset_new_pseudo(mir_sig_scheme scheme, uint64_t seed, const char *const *node_ids,
                              size_t n, const char *own_id, mir_keyset **out) {
  *out = NULL;
  mir_private_key *own = NULL;
  uint8_t s[MIR_SIG_SEED_LEN];
  if (own_id != NULL) {
    mir_crypto_pseudo_seed(seed, own_id, s);
    mir_err err = mir_private_key_from_seed(scheme, s, &own);
    if (err != MIR_OK) return err;
  }
  mir_keyset *ks = mir_keyset_new(own_id ? own_id : "", own);
  for (size_t i = 0; i < n; i++) {
    mir_private_key *k = NULL;
    mir_crypto_pseudo_seed(seed, node_ids[i], s);
    mir_err err = mir_private_key_from_seed(scheme, s, &k);
    if (err == MIR_OK) {
      err = mir_keyset_add(ks, node_ids[i], mir_private_key_public(k));
      mir_private_key_free(k);
    }
    if (err != MIR_OK) {
      mir_keyset_free(ks);
      return err;
    }
  }
  *out = ks;
  return MIR_OK;
}

/* Adds replica r's key from the membership to ks; MIR_ECONFIG naming the replica if invalid. */
static mir_err keyset_add_replica(mir_keyset *ks, mir_sig_scheme scheme,
                                  const mir_replica_info *r) {
  mir_public_key *key = NULL;
  if (mir_public_key_from_bytes(scheme, r->public_key, r->public_key_len, &key) != MIR_OK) {
    char why[200];
    snprintf(why, sizeof why, "%s", mir_error_detail());
    return mir_error_set(MIR_ECONFIG, "membership: replica %s: public key: %s", r->id, why);
  }
  if (mir_keyset_add(ks, r->id, key) != MIR_OK) {
    return mir_error_set(MIR_ECONFIG, "membership: replica %s listed twice", r->id);
  }
  return MIR_OK;
}

/* True if own's (borrowed) public key is the one the membership lists for its replica (self). */
static bool keyset_own_matches(const mir_private_key *own, const mir_replica_info *self) {
  size_t len = 0;
  const uint8_t *pub = miri_private_key_raw_public(own, &len);
  return len == self->public_key_len && memcmp(pub, self->public_key, len) == 0;
}

mir_err mir_keyset_from_membership(const struct mir_membership *m, const char *own_id,
                                   mir_private_key *own, mir_keyset **out) {
  *out = NULL;
  /* A plain search rather than mir_membership_find keeps this library free of a link
   * dependency on the loader: only the struct layout of membership.h is used. */
  const mir_replica_info *self = NULL;
  for (size_t i = 0; own_id != NULL && i < m->n && self == NULL; i++) {
    if (strcmp(m->replicas[i].id, own_id) == 0) self = &m->replicas[i];
  }
  mir_err err = MIR_OK;
  if (own != NULL && own_id == NULL) {
    err = mir_error_set(MIR_EINVAL, "membership: a private key needs its replica id");
  } else if (own_id != NULL && self == NULL) {
    err = mir_error_set(MIR_ECONFIG, "membership: no replica %s", own_id);
  } else if (own != NULL && mir_private_key_scheme(own) != m->scheme) {
    err = mir_error_set(MIR_ECONFIG, "membership: scheme is %s but the key of %s is %s",
                        mir_sig_scheme_name(m->scheme), own_id,
                        mir_sig_scheme_name(mir_private_key_scheme(own)));
  } else if (own != NULL && !keyset_own_matches(own, self)) {
    err = mir_error_set(MIR_ECONFIG,
                        "membership: the private key of %s does not match its public key", own_id);
  }
  if (err != MIR_OK) {
    mir_private_key_free(own);
    return err;
  }
  mir_keyset *ks = mir_keyset_new(own_id ? own_id : "", own);
  for (size_t i = 0; i < m->n; i++) {
    err = keyset_add_replica(ks, m->scheme, &m->replicas[i]);
    if (err != MIR_OK) {
      mir_keyset_free(ks);
      return err;
    }
  }
  *out = ks;
  return MIR_OK;
}
