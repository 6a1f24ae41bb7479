/*
 * Internal to the crypto seam: checks and copies shared by the crypto and hasher modules and the
 * request constructors. Free of BoringSSL.
 */
#ifndef MIRI_CRYPTO_REQUESTS_H
#define MIRI_CRYPTO_REQUESTS_H

#include <protobuf-c/protobuf-c.h>

#include "mir/crypto.pb-c.h"
#include "mir/errors.h"
#include "mir/event.h"

/* MIR_OK if origin (borrowed) names a valid module to answer; otherwise MIR_EPROTO with detail
 * naming the module kind (what), the request type and its source. */
mir_err miri_origin_check(const Mir__Origin *origin, const mir_event *ev, const char *what);

/* Deep copy of n byte strings (borrowed) into an owned array whose buffers are owned (a valid
 * protobuf-c repeated bytes field). NULL for n == 0. */
ProtobufCBinaryData *miri_bytes_copy(const ProtobufCBinaryData *parts, size_t n);

/* MIR_OK if parts (borrowed) are within MIR_SIGN_PARTS_MAX and MIR_SIGN_BYTES_MAX, setting *len
 * to the encoded length; MIR_EINVAL with detail otherwise. */
mir_err miri_sign_check_limits(const ProtobufCBinaryData *parts, size_t n_parts, size_t *len);

/* A new owned Origin {module (copied), context_id}. */
Mir__Origin *miri_origin_new(const char *module, uint64_t context_id);

#endif
