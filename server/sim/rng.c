/*
 * The simulator's generator and hashes.
 *
 * xoshiro256** (Blackman and Vigna) gives the random stream: small state, fast, and good enough
 * for scheduling and fault decisions; splitmix64 expands a 64-bit seed into its state (an
 * all-zero state would be a fixed point, and splitmix64 never yields four zero words for one
 * seed). Bounded draws use Lemire's multiply-and-reject method, so no modulo bias creeps into
 * fault rates. Nothing here reads real randomness or a clock: the seed is the only input.
 *
 * The hashes below are not cryptographic: they fingerprint traces and index the value pool.
 */
#include <string.h>

#include "mir/assert.h"
#include "sim_internal.h"

static uint64_t rng_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rng_rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

void mir_sim_rng_init(mir_sim_rng *rng, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) rng->s[i] = rng_splitmix(&x);
}

uint64_t mir_sim_rng_next(mir_sim_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rng_rotl(s[3], 45);
  return result;
}

uint64_t mir_sim_rng_below(mir_sim_rng *rng, uint64_t n) {
  MIR_ASSERT(n > 0);
  /* Lemire: the high word of x * n is uniform once the low word is outside the biased zone. */
  unsigned __int128 m = (unsigned __int128)mir_sim_rng_next(rng) * n;
  uint64_t low = (uint64_t)m;
  if (low < n) {
    uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = (unsigned __int128)mir_sim_rng_next(rng) * n;
      low = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

uint64_t mir_sim_rng_range(mir_sim_rng *rng, uint64_t lo, uint64_t hi) {
  MIR_ASSERT(lo <= hi);
  if (lo == 0 && hi == UINT64_MAX) return mir_sim_rng_next(rng);
  return lo + mir_sim_rng_below(rng, hi - lo + 1);
}

bool mir_sim_rng_chance(mir_sim_rng *rng, uint32_t ppm) {
  if (ppm == 0) return false;
  if (ppm >= MIR_SIM_PPM) return true;
  return mir_sim_rng_below(rng, MIR_SIM_PPM) < ppm;
}

uint64_t mir_sim_seed_derive(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ rng_splitmix(&stream);
  return rng_splitmix(&x);
}

/* ---- hashing ---- */

static uint64_t hash_mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

uint64_t miri_sim_hash_u64(uint64_t h, uint64_t v) {
  return hash_mix(h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2)));
}

uint64_t miri_sim_hash_bytes(uint64_t h, const void *data, size_t len) {
  const uint8_t *p = data;
  h = miri_sim_hash_u64(h, len);
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = miri_sim_hash_u64(h, w);
    p += 8;
    len -= 8;
  }
  uint64_t tail = 0;
  for (size_t i = 0; i < len; i++) tail |= (uint64_t)p[i] << (8 * i);
  return miri_sim_hash_u64(h, tail);
}
