/*
 * Decoding and validation of what replicas send (internal, pure). Everything a replica sends is
 * untrusted: it is decoded with size limits, checked, and turned into a canonical form before it
 * can influence anything; a malformed message is dropped and counted, never asserted on.
 */
#ifndef MIRI_CL_WIRE_H
#define MIRI_CL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "api/api.pb-c.h"
#include "mir/client.h"

#define MIRI_CL_HASH_BYTES 32          /* log_hash length */
#define MIRI_CL_ENTRY_TXS_MAX 1000000u /* transactions in one delivery */
#define MIRI_CL_WIRE_ID_MAX 1024u      /* client id bytes accepted from a replica */
#define MIRI_CL_REASON_MAX 127u        /* reason bytes kept from a replica */

/* Decodes a Delivery (buf borrowed, len bytes), checks it, keeps only the transactions of
 * filter_id when it is not NULL, and re-encodes it canonically. On success returns 0, *sn is its
 * sequence number and *out (returns owned: free with free) holds *out_len bytes. Returns -1 with
 * *why (static text) for a malformed delivery, -2 when out of memory. */
int miri_cl_delivery_canon(const uint8_t *buf, size_t len, const char *filter_id, uint64_t *sn,
                           uint8_t **out, size_t *out_len, const char **why);

/* A decoded canonical delivery, viewed through the public types. */
typedef struct miri_cl_entry_view {
  Mir__Api__Delivery *msg;
  mir_client_tx *txs;
  mir_client_entry entry;
} miri_cl_entry_view;

/* Decodes canonical bytes (borrowed; produced by miri_cl_delivery_canon) into *view. Returns 0, or
 * -1 when out of memory. Release with miri_cl_entry_view_fini. */
int miri_cl_entry_view_init(miri_cl_entry_view *view, const uint8_t *buf, size_t len);
void miri_cl_entry_view_fini(miri_cl_entry_view *view);

/* Checks a decoded SubmitResponse against the number of transactions its request carried.
 * Returns NULL when it is well-formed, else a static reason. */
const char *miri_cl_submit_response_check(const Mir__Api__SubmitResponse *resp, size_t n_txs);

#endif
