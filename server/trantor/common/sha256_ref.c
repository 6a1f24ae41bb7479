/*
 * A small portable SHA-256 (FIPS 180-4) with the length-prefixed list encoding of
 * docs/PROTOCOL.md. Production nodes hash with the crypto module's BoringSSL-backed function; this
 * one serves tests and the simulator, which must not depend on the crypto seam.
 *
 * The round constants and initial values are derived at first use from their definition (the
 * first 32 bits of the fractional parts of the cube roots of the first 64 primes, and of the square
 * roots of the first 8 primes) rather than typed in; the FIPS test vectors in the tests check them.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "trantor_common.h"

static uint32_t sha_k[64], sha_h0[8];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static uint32_t frac32(long double x) {
  long double f = x - floorl(x);
  return (uint32_t)(f * 4294967296.0L);
}

static void sha_init_constants(void) {
  int primes[64], n = 0;
  for (int c = 2; n < 64; c++) {
    int prime = 1;
    for (int d = 2; d * d <= c; d++) {
      if (c % d == 0) prime = 0;
    }
    if (prime) primes[n++] = c;
  }
  for (int i = 0; i < 64; i++) sha_k[i] = frac32(cbrtl((long double)primes[i]));
  for (int i = 0; i < 8; i++) sha_h0[i] = frac32(sqrtl((long double)primes[i]));
}

typedef struct sha_ctx {
  uint32_t h[8];
  uint8_t block[64];
  size_t used;
  uint64_t total;
} sha_ctx;

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(sha_ctx *c, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) {
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  }
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5],
           g = c->h[6], h = c->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 =
        h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
    h = g, g = f, f = e, e = d + t1, d = cc, cc = b, b = a, a = t1 + t2;
  }
  c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d;
  c->h[4] += e, c->h[5] += f, c->h[6] += g, c->h[7] += h;
}

static void sha_update(sha_ctx *c, const uint8_t *p, size_t len) {
  c->total += len;
  while (len > 0) {
    size_t take = 64 - c->used < len ? 64 - c->used : len;
    memcpy(c->block + c->used, p, take);
    c->used += take, p += take, len -= take;
    if (c->used == 64) {
      sha_block(c, c->block);
      c->used = 0;
    }
  }
}

static void sha_final(sha_ctx *c, uint8_t out[32]) {
  uint64_t bits = c->total * 8;
  uint8_t pad = 0x80, zero = 0, len[8];
  sha_update(c, &pad, 1);
  while (c->used != 56) sha_update(c, &zero, 1);
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha_update(c, len, 8);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(c->h[i] >> 24), out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(c->h[i] >> 8), out[4 * i + 3] = (uint8_t)c->h[i];
  }
}

/* Plain SHA-256 of one buffer (for the known-answer tests). */
void trantor_sha256_plain(const uint8_t *data, size_t len, uint8_t out[32]);
void trantor_sha256_plain(const uint8_t *data, size_t len, uint8_t out[32]) {
  pthread_once(&sha_once, sha_init_constants);
  sha_ctx c = {.used = 0, .total = 0};
  memcpy(c.h, sha_h0, sizeof c.h);
  sha_update(&c, data, len);
  sha_final(&c, out);
}

void trantor_hash_reference(const uint8_t *const *parts, const size_t *lens, size_t n,
                            uint8_t out[32]) {
  pthread_once(&sha_once, sha_init_constants);
  sha_ctx c = {.used = 0, .total = 0};
  memcpy(c.h, sha_h0, sizeof c.h);
  for (size_t i = 0; i < n; i++) {
    uint8_t len[8];
    for (int k = 0; k < 8; k++) len[k] = (uint8_t)((uint64_t)lens[i] >> (56 - 8 * k));
    sha_update(&c, len, 8);
    if (lens[i] > 0) sha_update(&c, parts[i], lens[i]);
  }
  sha_final(&c, out);
}
