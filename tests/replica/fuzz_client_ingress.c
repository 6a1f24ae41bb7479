/*
 * Fuzz target for the replica's client API ingress (server/replica/client_internal.h): the checks
 * that every SubmitRequest and SubscribeRequest from any client goes through before anything else
 * sees it.
 *
 * Input: byte 0 picks the request type (even: Submit, odd: Subscribe); bytes 1..4 pick the limits
 * (small, so that each one is reached) and whether the stream's client id is already fixed (and
 * whether by a certificate); the rest is up to 8 requests of one stream, each a 2-byte
 * little-endian length and that many bytes.
 *
 * Invariants: a refused request is MIR_EPROTO with a reason, owns nothing and leaves the stream's
 * client id alone; protobuf-c, run on the same bytes (and counting what it allocates against the
 * decode budget), agrees on what is malformed (so counting the
 * transactions before decoding neither refuses a valid request nor lets a long one through), and
 * a refused request echoes the request_id protobuf-c reads (also when it is too large); every
 * accepted transaction has the stream's client id, a valid client id (1..64 bytes of
 * [A-Za-z0-9._:@-]) that stands in the input as it was decoded (so no NUL cut it short), and at
 * most max_tx_bytes of data; every rejection has a reason; the forwarded indexes are exactly the
 * accepted ones, in order. A SubscribeRequest is accepted only with an empty or valid client_id
 * that stands in the input as decoded, and refused when protobuf-c refuses it or the limits do.
 * No leak (AddressSanitizer).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/crypto.h"

#define FUZZ_REQUESTS_MAX 8
#define FUZZ_STREAM_ID "client-a"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* protobuf-c's default allocation, counted: what decoding the request costs. */
static void *fuzz_count_alloc(void *data, size_t size) {
  *(size_t *)data += size;
  return malloc(size);
}

static void fuzz_count_free(void *data, void *ptr) {
  (void)data;
  free(ptr);
}

/* True if the string field `field` with value s (decoded) stands in bytes[0..len) as encoded:
 * its key, a one-byte length and the bytes of s. A client id that had a NUL on the wire decodes
 * shorter than it stood there, so it would not be found (ids are at most 64 bytes: one length
 * byte). */
static bool fuzz_stands_in(const uint8_t *bytes, size_t len, unsigned field, const char *s) {
  size_t n = strlen(s);
  uint8_t enc[2 + TRANTOR_CLIENT_ID_MAX];
  if (n > TRANTOR_CLIENT_ID_MAX) return false;
  enc[0] = (uint8_t)(field << 3 | 2);
  enc[1] = (uint8_t)n;
  memcpy(enc + 2, s, n);
  return memmem(bytes, len, enc, n + 2) != NULL;
}

/* Checks one SubmitRequest of a stream whose client id is stream_id (in/out). */
static void fuzz_submit(const uint8_t *bytes, size_t len, const mir_replica_client_limits *l,
                        uint64_t max_tx_bytes, char *stream_id, bool id_from_cert) {
  char before[TRANTOR_CLIENT_ID_MAX + 1];
  memcpy(before, stream_id, sizeof(before));
  size_t cost = 0;
  ProtobufCAllocator counting = {fuzz_count_alloc, fuzz_count_free, &cost};
  Mir__Api__SubmitRequest *ref = mir__api__submit_request__unpack(&counting, len, bytes);
  bool malformed = len > l->max_request_bytes || ref == NULL ||
                   ref->n_txs > l->max_txs_per_request || cost > miri_cs_decode_budget(len);

  cs_submit_check chk;
  mir_err err = miri_cs_submit_check(bytes, len, l, max_tx_bytes, stream_id, id_from_cert, &chk);
  MIR_ASSERT(err == MIR_OK || err == MIR_EPROTO);
  MIR_ASSERT((err != MIR_OK) == malformed);
  if (err != MIR_OK) {
    MIR_ASSERT(chk.req == NULL && chk.q == NULL);
    MIR_ASSERT(mir_error_detail()[0] != '\0');
    MIR_ASSERT(memcmp(before, stream_id, sizeof(before)) == 0);
    if (ref != NULL) MIR_ASSERT(chk.request_id == ref->request_id);
    if (ref != NULL) mir__api__submit_request__free_unpacked(ref, NULL);
    return;
  }
  const Mir__Api__SubmitRequest *r = chk.req;
  const cs_req *q = chk.q;
  MIR_ASSERT(r != NULL && q != NULL);
  MIR_ASSERT(r->n_txs == ref->n_txs && r->request_id == ref->request_id);
  MIR_ASSERT(q->n == r->n_txs && q->n <= l->max_txs_per_request && q->n_fwd <= q->n);
  MIR_ASSERT(chk.request_id == r->request_id && q->request_id == r->request_id);
  size_t k = 0;
  const char *first = NULL;
  for (size_t i = 0; i < q->n; i++) {
    const Trantor__Tx *tx = r->txs[i];
    if (q->status[i] == TRANTOR__TX_STATUS__TX_ACCEPTED) {
      size_t idlen = tx->client_id != NULL ? strlen(tx->client_id) : 0;
      MIR_ASSERT(idlen >= 1 && idlen <= TRANTOR_CLIENT_ID_MAX);
      MIR_ASSERT(mir_tls_client_id_valid(tx->client_id, idlen));
      MIR_ASSERT(fuzz_stands_in(bytes, len, 1, tx->client_id));
      MIR_ASSERT(strcmp(tx->client_id, stream_id) == 0);
      MIR_ASSERT(tx->data.len <= max_tx_bytes);
      MIR_ASSERT(tx->base.n_unknown_fields == 0); /* forwarded in canonical form */
      MIR_ASSERT(q->reason[i] == NULL);
      MIR_ASSERT(k < q->n_fwd && q->fwd[k] == i);
      k++;
      if (first == NULL) first = tx->client_id;
    } else {
      MIR_ASSERT(q->status[i] == TRANTOR__TX_STATUS__TX_INVALID ||
                 q->status[i] == TRANTOR__TX_STATUS__TX_TOO_LARGE);
      MIR_ASSERT(q->reason[i] != NULL && q->reason[i][0] != '\0');
    }
  }
  MIR_ASSERT(k == q->n_fwd);
  /* The stream's id, once fixed, never changes; an empty one is fixed by the first accepted. */
  if (before[0] != '\0') {
    MIR_ASSERT(strcmp(before, stream_id) == 0);
  } else if (first != NULL) {
    MIR_ASSERT(strcmp(first, stream_id) == 0);
  } else {
    MIR_ASSERT(stream_id[0] == '\0');
  }
  mir__api__submit_request__free_unpacked(ref, NULL);
  mir__api__submit_request__free_unpacked(chk.req, NULL);
  miri_cs_req_free(chk.q);
}

/* Checks one SubscribeRequest. */
static void fuzz_subscribe(const uint8_t *bytes, size_t len, const mir_replica_client_limits *l) {
  Mir__Api__SubscribeRequest *ref = mir__api__subscribe_request__unpack(NULL, len, bytes);
  size_t ref_id_len = ref != NULL && ref->client_id != NULL ? strlen(ref->client_id) : 0;
  bool malformed = len > l->max_request_bytes || ref == NULL ||
                   ref_id_len > TRANTOR_CLIENT_ID_MAX ||
                   (ref_id_len > 0 && !mir_tls_client_id_valid(ref->client_id, ref_id_len));
  char client_id[TRANTOR_CLIENT_ID_MAX + 1];
  memset(client_id, 'x', sizeof(client_id));
  uint64_t from_sn = 0;
  mir_err err = miri_cs_subscribe_check(bytes, len, l, &from_sn, client_id);
  MIR_ASSERT(err == MIR_OK || err == MIR_EPROTO);
  /* Besides what protobuf-c and the limits refuse, a client_id that is invalid on the wire only
   * (a NUL inside: it decodes to a shorter, valid-looking id) is refused. */
  MIR_ASSERT(!malformed || err != MIR_OK);
  if (err != MIR_OK) {
    MIR_ASSERT(mir_error_detail()[0] != '\0');
    MIR_ASSERT(malformed || strncmp(mir_error_detail(), "invalid client_id", 17) == 0);
  } else {
    MIR_ASSERT(from_sn == ref->from_sn);
    MIR_ASSERT(ref_id_len == 0 || fuzz_stands_in(bytes, len, 2, ref->client_id));
    MIR_ASSERT(memchr(client_id, '\0', sizeof(client_id)) != NULL);
    MIR_ASSERT(strcmp(client_id, ref_id_len > 0 ? ref->client_id : "") == 0);
  }
  if (ref != NULL) mir__api__subscribe_request__free_unpacked(ref, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 5) return 0;
  mir_replica_client_limits l = {.max_txs_per_request = 1 + (uint64_t)data[1] % 64,
                                 .max_request_bytes = 16 + (uint64_t)data[3] * 16,
                                 .max_submit_streams = 1,
                                 .max_requests_in_flight = 1,
                                 .max_bytes_in_flight = 1024,
                                 .max_subscribers = 1,
                                 .subscriber_stall_ms = 100,
                                 .max_subscribers_per_client = 1,
                                 .max_subscribers_per_connection = 1,
                                 .subscribe_ahead_max = 0,
                                 .retry_after_ms = 100};
  uint64_t max_tx_bytes = 1 + (uint64_t)data[2] * 4;
  char stream_id[TRANTOR_CLIENT_ID_MAX + 1] = "";
  if (data[4] & 1) memcpy(stream_id, FUZZ_STREAM_ID, sizeof(FUZZ_STREAM_ID));
  size_t pos = 5;
  for (int i = 0; i < FUZZ_REQUESTS_MAX && size - pos >= 2; i++) {
    size_t n = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
    pos += 2;
    if (n > size - pos) n = size - pos;
    if (data[0] & 1) {
      fuzz_subscribe(data + pos, n, &l);
    } else {
      fuzz_submit(data + pos, n, &l, max_tx_bytes, stream_id, (data[4] & 2) != 0);
    }
    pos += n;
  }
  return 0;
}
