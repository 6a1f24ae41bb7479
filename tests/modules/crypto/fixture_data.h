/*
 * What the cross-backend fixtures are made of (make_fixtures.c writes them, crypto_fixture_test.cc
 * checks them): the seeds their keys derive from and the list of byte strings they sign. Shared by
 * C and C++.
 */
#ifndef MIR_TEST_CRYPTO_FIXTURE_DATA_H
#define MIR_TEST_CRYPTO_FIXTURE_DATA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Keys come from mir_crypto_pseudo_seed(FIXTURE_SEED, <id>), so either backend can derive them. */
#define FIXTURE_SEED 20240601u
#define FIXTURE_ED25519_ID "fixture-ed25519"
#define FIXTURE_ECDSA_ID "fixture-ecdsa"

/* The replica certificate: id, host and validity (long enough to outlive the repository). */
#define FIXTURE_REPLICA_ID "7"
#define FIXTURE_REPLICA_HOST "127.0.0.1"
#define FIXTURE_DAYS 36500

/* The signed list: a text, an empty part and bytes that are not text. */
#define FIXTURE_N_PARTS 3

/* Fills parts (FIXTURE_N_PARTS of them) with views of static data (borrowed, never written). */
static inline void fixture_parts(ProtobufCBinaryData *parts) {
  static uint8_t text[] = "mir-c crypto fixture";
  static uint8_t bytes[] = {0x00, 0x01, 0x02, 0xff};
  parts[0].len = sizeof text - 1;
  parts[0].data = text;
  parts[1].len = 0;
  parts[1].data = NULL;
  parts[2].len = sizeof bytes;
  parts[2].data = bytes;
}

#endif
