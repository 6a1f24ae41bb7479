/*
 * libFuzzer target for the event-log reader (mir/eventlog.h), which decodes untrusted files.
 *
 * The first input byte picks what the rest is: even, a compressed log as it would sit on disk
 * (exercising zstd framing and the reader's handling of its errors); odd, the decompressed record
 * stream, which the harness compresses first so that mutations reach the varint lengths and the
 * protobuf decoding directly. Every read must end in MIR_EEOF or MIR_EPROTO without a crash or a
 * leak; the record bound is lowered to keep each run small.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <zstd.h>

#include "mir/assert.h"
#include "mir/eventlog.h"

#define FUZZ_MAX_RECORD ((size_t)1 << 20)

static void fuzz_read(const uint8_t *data, size_t len) {
  mir_log_reader *r = NULL;
  if (mir_log_reader_open_mem(data, len, &r) != MIR_OK) return;
  mir_log_reader_set_max_record(r, FUZZ_MAX_RECORD);
  Mir__LogRecord *rec = NULL;
  mir_err err;
  while ((err = mir_log_reader_next(r, &rec)) == MIR_OK) {
    MIR_ASSERT(rec != NULL);
    mir__log_record__free_unpacked(rec, NULL);
  }
  MIR_ASSERT(rec == NULL);
  MIR_ASSERT(err == MIR_EEOF || err == MIR_EPROTO);
  mir_log_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  if ((data[0] & 1) == 0) {
    fuzz_read(data + 1, size - 1);
    return 0;
  }
  size_t cap = ZSTD_compressBound(size - 1);
  uint8_t *z = malloc(cap);
  if (z == NULL) return 0;
  size_t n = ZSTD_compress(z, cap, data + 1, size - 1, 1);
  if (!ZSTD_isError(n)) fuzz_read(z, n);
  free(z);
  return 0;
}
