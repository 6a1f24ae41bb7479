/*
 * Internal to the recorder library: the compressed log-file writer shared by the synchronous and
 * asynchronous recorder paths.
 */
#ifndef MIRI_REC_INTERNAL_H
#define MIRI_REC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "mir/errors.h"

/* One open log file: a zstd compression stream writing into a file descriptor. */
typedef struct miri_log_file {
  ZSTD_CCtx *cctx; /* owned; reused across files */
  int fd;          /* -1 when no file is open */
  uint8_t *out;    /* owned compression output buffer of out_cap bytes */
  size_t out_cap;
  bool dirty;             /* data was compressed since the last flush */
  uint64_t bytes_written; /* compressed bytes written, across files */
} miri_log_file;

/* Prepares f (borrowed) with no file open; level is the zstd level. MIR_ENOMEM if zstd cannot
 * allocate. Free its buffers with miri_log_file_fini. */
mir_err miri_log_file_init(miri_log_file *f, int level);

/* Creates (or truncates) path (borrowed) with mode 0600 and starts a new zstd frame in f
 * (borrowed). */
mir_err miri_log_file_open(miri_log_file *f, const char *path);

/* Compresses len bytes of data (borrowed) into the current frame of f (borrowed). */
mir_err miri_log_file_write(miri_log_file *f, const void *data, size_t len);

/* Flushes f's (borrowed) zstd stream and writes out everything compressed so far, so that a reader
 * sees every record written before the flush; with do_fsync also fsyncs the file. */
mir_err miri_log_file_flush(miri_log_file *f, bool do_fsync);

/* Ends f's (borrowed) frame, writes it out and closes the file. No-op when no file is open. The
 * descriptor is closed even when writing fails. */
mir_err miri_log_file_close(miri_log_file *f, bool do_fsync);

/* Closes any open file (ignoring errors) and frees f's buffers; f itself stays the caller's. */
void miri_log_file_fini(miri_log_file *f);

/* Creates dir and its missing parents with mode 0700. path is borrowed. */
mir_err miri_mkdir_p(const char *path);

/* Writes the protobuf unsigned varint of v into buf (borrowed, at least 10 bytes); returns its
 * length. */
size_t miri_varint_put(uint8_t *buf, uint64_t v);

#endif
