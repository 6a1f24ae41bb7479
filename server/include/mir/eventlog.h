/*
 * Reading event logs written by the recorder (mir/recorder.h): a zstd stream (one or more frames)
 * of records, each a protobuf unsigned varint length followed by a packed mir.LogRecord.
 *
 * The reader treats a log as untrusted input: a record longer than max_record_bytes, a bad varint,
 * bad zstd data or a record that does not decode is MIR_EPROTO (and stays so for the reader),
 * never a crash. A log that ends inside a record, as the recorder's files do when the process died
 * between flushes, ends with MIR_EEOF and is flagged as truncated in mir_log_reader_info.
 */
#ifndef MIR_EVENTLOG_H
#define MIR_EVENTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/record.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default and largest bound on one encoded record. */
#define MIR_LOG_RECORD_MAX ((size_t)64 << 20)
/* File name suffix of the recorder's files. */
#define MIR_LOG_FILE_SUFFIX ".mirlog.zst"

typedef struct mir_log_reader mir_log_reader;

typedef struct mir_log_reader_info {
  uint64_t records;         /* records returned so far */
  uint64_t bytes;           /* decompressed bytes consumed by those records */
  bool truncated;           /* the log ended inside a record */
  uint64_t truncated_bytes; /* bytes of that incomplete record */
  bool frame_unfinished;    /* the compressed stream ended inside a zstd frame (writer died) */
} mir_log_reader_info;

/* Opens the log file at path (borrowed). MIR_ENOTFOUND if it does not exist, MIR_EIO if it cannot
 * be opened. *out is owned (free with mir_log_reader_close). */
mir_err mir_log_reader_open(const char *path, mir_log_reader **out);

/* Reads a log held in memory: data is borrowed and must stay valid until the reader is closed.
 * *out is owned (free with mir_log_reader_close). */
mir_err mir_log_reader_open_mem(const void *data, size_t len, mir_log_reader **out);

/* Lowers the bound on one record (default and maximum MIR_LOG_RECORD_MAX); r is borrowed. */
void mir_log_reader_set_max_record(mir_log_reader *r, size_t max_record_bytes);

/* Reads the next record; r is borrowed. On MIR_OK, *rec_out is owned (free with
 * mir__log_record__free_unpacked(rec, NULL)). MIR_EEOF at the end of the log (also after a
 * truncated last record), MIR_EPROTO for corrupt data, MIR_EIO for a read error; then *rec_out is
 * NULL and the detail is in mir_log_reader_error. Errors are sticky. */
mir_err mir_log_reader_next(mir_log_reader *r, Mir__LogRecord **rec_out);

/* Copies the counters and end-of-log flags into out (borrowed); r is borrowed. */
void mir_log_reader_info_get(const mir_log_reader *r, mir_log_reader_info *out);

/* Detail of the last error ("" if none); r is borrowed. Returns borrowed text, valid until the
 * next call on r. */
const char *mir_log_reader_error(const mir_log_reader *r);

/* Closes and frees r (takes ownership). NULL is a no-op. */
void mir_log_reader_close(mir_log_reader *r);

#ifdef __cplusplus
}
#endif
#endif
