/*
 * The generic misbehaving peer: a Byzantine filter that, per outgoing message, may drop, delay,
 * duplicate, corrupt or replay. It needs no knowledge of the protocol, so any scenario can use
 * it; protocol-specific behaviour (equivocation, forged fields) is a filter of the scenario's own.
 *
 * Corruption flips a few random bits of the message's data or truncates it: the receiver must
 * drop what does not decode or does not verify, and never crash. Replay keeps a ring of the
 * node's recent messages and sends an old one to a random peer, which tests that stale
 * messages are recognised as such.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "sim_internal.h"

#define BYZ_RING (sizeof(((mir_sim_byz_generic *)0)->ring) / sizeof(Mir__PackedMessage *))

/* Flips up to 4 random bits of the data, or truncates it (owned copy c). */
static void byz_corrupt(mir_sim_rng *r, Mir__PackedMessage *c) {
  if (c->data.len == 0) return;
  if (mir_sim_rng_chance(r, MIR_SIM_PPM / 4)) {
    c->data.len = (size_t)mir_sim_rng_below(r, c->data.len);
    return;
  }
  uint64_t flips = mir_sim_rng_range(r, 1, 4);
  for (uint64_t k = 0; k < flips; k++) {
    size_t at = (size_t)mir_sim_rng_below(r, c->data.len);
    c->data.data[at] ^= (uint8_t)(1u << mir_sim_rng_below(r, 8));
  }
}

/* Remembers a copy of msg for later replays. */
static void byz_remember(mir_sim_byz_generic *g, const Mir__PackedMessage *msg) {
  Mir__PackedMessage *old = g->ring[g->ring_next];
  if (old != NULL) protobuf_c_message_free_unpacked(&old->base, NULL);
  g->ring[g->ring_next] = mir_sim_packed_clone(msg);
  g->ring_next = (g->ring_next + 1) % BYZ_RING;
  if (g->ring_len < BYZ_RING) g->ring_len++;
}

void mir_sim_byz_generic_filter(void *user, mir_sim_byz *byz, size_t from, size_t to,
                                const Mir__PackedMessage *msg) {
  (void)from;
  mir_sim_byz_generic *g = user;
  mir_sim_rng *r = mir_sim_byz_rng(byz);
  size_t n = mir_sim_node_count(mir_sim_byz_sim(byz));
  if (g->replay_ppm > 0 && g->ring_len > 0 && mir_sim_rng_chance(r, g->replay_ppm)) {
    const Mir__PackedMessage *old = g->ring[mir_sim_rng_below(r, g->ring_len)];
    mir_sim_byz_send(byz, (size_t)mir_sim_rng_below(r, n), mir_sim_packed_clone(old), 0);
  }
  if (g->replay_ppm > 0) byz_remember(g, msg);
  if (mir_sim_rng_chance(r, g->drop_ppm)) return;
  int copies = mir_sim_rng_chance(r, g->duplicate_ppm) ? 2 : 1;
  for (int k = 0; k < copies; k++) {
    Mir__PackedMessage *c = mir_sim_packed_clone(msg);
    if (mir_sim_rng_chance(r, g->corrupt_ppm)) byz_corrupt(r, c);
    uint64_t extra = 0;
    if (g->delay_max_ns > 0 && mir_sim_rng_chance(r, g->delay_ppm)) {
      extra = mir_sim_rng_range(r, 0, g->delay_max_ns);
    }
    mir_sim_byz_send(byz, to, c, extra);
  }
}

void mir_sim_byz_generic_clear(mir_sim_byz_generic *g) {
  for (size_t i = 0; i < BYZ_RING; i++) {
    if (g->ring[i] != NULL) protobuf_c_message_free_unpacked(&g->ring[i]->base, NULL);
    g->ring[i] = NULL;
  }
  g->ring_len = 0;
  g->ring_next = 0;
}
