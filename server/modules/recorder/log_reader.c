/*
 * The event-log reader (mir/eventlog.h): streams a zstd-compressed file (or memory) through a
 * decompression context into a bounded window and cuts it into varint-delimited mir.LogRecord
 * entries.
 *
 * The input is untrusted: every length is checked against max_record before anything is
 * allocated for it, the window never grows beyond max_record plus a varint, zstd's window is
 * capped (READER_WINDOW_LOG_MAX), and every failure becomes a sticky MIR_EPROTO / MIR_EIO with a
 * message, never an assertion. Invariants: buf[pos, end) holds decompressed bytes not yet consumed;
 * end <= cap <= max_record + READER_VARINT_MAX; once err is set, next returns it without reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "mir/alloc.h"
#include "mir/eventlog.h"

/* A protobuf varint is at most 10 bytes. */
#define READER_VARINT_MAX 10
/* Initial size of the decompressed window. */
#define READER_WINDOW_INIT ((size_t)64 << 10)
/* Largest zstd window accepted (16 MiB); the recorder's levels stay below it. */
#define READER_WINDOW_LOG_MAX 24

struct mir_log_reader {
  int fd;          /* -1 for a memory source */
  bool src_eof;    /* no more compressed input to read */
  ZSTD_DCtx *dctx; /* owned */
  uint8_t *in;     /* owned read buffer of in_cap bytes (file source only) */
  size_t in_cap;
  ZSTD_inBuffer inb; /* compressed input not yet consumed */
  bool frame_open;   /* decoding stopped inside a zstd frame */
  uint8_t *buf;      /* owned decompressed window */
  size_t cap;
  size_t pos;
  size_t end;
  size_t max_record;
  mir_err err; /* sticky error (MIR_EEOF included) */
  char detail[256];
  mir_log_reader_info info;
};

/* Records a sticky error with its message (also as the thread's error detail). */
__attribute__((format(printf, 3, 4))) static mir_err reader_fail(mir_log_reader *r, mir_err err,
                                                                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
  va_end(ap);
  r->err = err;
  return mir_error_set(err, "%s", r->detail);
}

static mir_err reader_init(mir_log_reader **out) {
  mir_log_reader *r = mir_xcalloc(1, sizeof(*r));
  r->fd = -1;
  r->max_record = MIR_LOG_RECORD_MAX;
  r->dctx = ZSTD_createDCtx();
  if (r->dctx == NULL) {
    free(r);
    return mir_error_set(MIR_ENOMEM, "log reader: cannot create zstd context");
  }
  ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, READER_WINDOW_LOG_MAX);
  r->cap = READER_WINDOW_INIT;
  r->buf = mir_xmalloc(r->cap);
  *out = r;
  return MIR_OK;
}

mir_err mir_log_reader_open(const char *path, mir_log_reader **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    mir_err code = errno == ENOENT ? MIR_ENOTFOUND : MIR_EIO;
    return mir_error_set(code, "log reader: cannot open %s: %s", path, strerror(errno));
  }
  mir_log_reader *r = NULL;
  mir_err err = reader_init(&r);
  if (err != MIR_OK) {
    close(fd);
    return err;
  }
  r->fd = fd;
  r->in_cap = ZSTD_DStreamInSize();
  r->in = mir_xmalloc(r->in_cap);
  r->inb.src = r->in;
  *out = r;
  return MIR_OK;
}

mir_err mir_log_reader_open_mem(const void *data, size_t len, mir_log_reader **out) {
  *out = NULL;
  mir_log_reader *r = NULL;
  mir_err err = reader_init(&r);
  if (err != MIR_OK) return err;
  r->inb.src = data;
  r->inb.size = len;
  r->src_eof = true;
  *out = r;
  return MIR_OK;
}

void mir_log_reader_set_max_record(mir_log_reader *r, size_t max_record_bytes) {
  if (max_record_bytes > 0 && max_record_bytes < MIR_LOG_RECORD_MAX) {
    r->max_record = max_record_bytes;
  }
}

/* Refills the compressed input buffer from the file once it is consumed. */
static mir_err reader_read_input(mir_log_reader *r) {
  if (r->src_eof || r->inb.pos < r->inb.size) return MIR_OK;
  for (;;) {
    ssize_t n = read(r->fd, r->in, r->in_cap);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return reader_fail(r, MIR_EIO, "log reader: read: %s", strerror(errno));
    r->inb.size = (size_t)n;
    r->inb.pos = 0;
    if (n == 0) r->src_eof = true;
    return MIR_OK;
  }
}

/* Makes room after end for at least one byte and for need bytes from pos, compacting first and
 * growing the window only as far as need (which the caller bounded by max_record). */
static void reader_make_room(mir_log_reader *r, size_t need) {
  if (r->pos > 0 && (r->cap - r->end < READER_WINDOW_INIT || r->cap - r->pos < need)) {
    memmove(r->buf, r->buf + r->pos, r->end - r->pos);
    r->end -= r->pos;
    r->pos = 0;
  }
  if (r->cap < need || r->end == r->cap) {
    size_t ncap = r->cap * 2 > need ? r->cap * 2 : need;
    size_t limit = r->max_record + READER_VARINT_MAX;
    if (ncap > limit) ncap = limit > need ? limit : need;
    if (ncap <= r->cap) return; /* only after the bound was lowered: the window is large enough */
    r->buf = mir_xrealloc(r->buf, ncap);
    r->cap = ncap;
  }
}

/* Decompresses until buf[pos, end) holds need bytes. MIR_EEOF (not sticky) when the input ends
 * first; the bytes that did arrive stay in the window. */
static mir_err reader_fill(mir_log_reader *r, size_t need) {
  int idle = 0;
  while (r->end - r->pos < need) {
    reader_make_room(r, need);
    mir_err err = reader_read_input(r);
    if (err != MIR_OK) return err;
    size_t in_before = r->inb.pos;
    ZSTD_outBuffer out = {r->buf + r->end, r->cap - r->end, 0};
    size_t ret = ZSTD_decompressStream(r->dctx, &out, &r->inb);
    if (ZSTD_isError(ret)) {
      return reader_fail(r, MIR_EPROTO, "log reader: corrupt compressed data: %s",
                         ZSTD_getErrorName(ret));
    }
    r->end += out.pos;
    bool progress = out.pos > 0 || r->inb.pos > in_before;
    if (progress) r->frame_open = ret != 0;
    if (progress) {
      idle = 0;
    } else if (r->src_eof && r->inb.pos == r->inb.size) {
      r->info.frame_unfinished = r->frame_open;
      return MIR_EEOF;
    } else if (++idle > 2) {
      return reader_fail(r, MIR_EPROTO, "log reader: decompressor made no progress");
    }
  }
  return MIR_OK;
}

/* Reads the varint length of the next record. MIR_EEOF at a clean end (no bytes left); a varint
 * cut off by the end counts as a truncated record. */
static mir_err reader_length(mir_log_reader *r, uint64_t *len, size_t *hdr) {
  uint64_t v = 0;
  for (size_t i = 0; i < READER_VARINT_MAX; i++) {
    mir_err err = reader_fill(r, i + 1);
    if (err == MIR_EEOF) {
      if (i > 0) {
        r->info.truncated = true;
        r->info.truncated_bytes = i;
      }
      r->err = MIR_EEOF;
      return MIR_EEOF;
    }
    if (err != MIR_OK) return err;
    uint8_t b = r->buf[r->pos + i];
    if (i == READER_VARINT_MAX - 1 && b > 1) break; /* would overflow 64 bits */
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      *len = v;
      *hdr = i + 1;
      return MIR_OK;
    }
  }
  return reader_fail(r, MIR_EPROTO, "log reader: bad record length varint at byte %llu",
                     (unsigned long long)r->info.bytes);
}

mir_err mir_log_reader_next(mir_log_reader *r, Mir__LogRecord **rec_out) {
  *rec_out = NULL;
  if (r->err != MIR_OK) return r->err;
  uint64_t len = 0;
  size_t hdr = 0;
  mir_err err = reader_length(r, &len, &hdr);
  if (err != MIR_OK) return err;
  if (len > r->max_record) {
    return reader_fail(r, MIR_EPROTO, "log reader: record %llu of %llu bytes exceeds the bound %zu",
                       (unsigned long long)r->info.records, (unsigned long long)len, r->max_record);
  }
  err = reader_fill(r, hdr + (size_t)len);
  if (err == MIR_EEOF) {
    r->info.truncated = true;
    r->info.truncated_bytes = r->end - r->pos;
    r->err = MIR_EEOF;
    return MIR_EEOF;
  }
  if (err != MIR_OK) return err;
  Mir__LogRecord *rec = mir__log_record__unpack(NULL, (size_t)len, r->buf + r->pos + hdr);
  if (rec == NULL) {
    return reader_fail(r, MIR_EPROTO, "log reader: record %llu (%llu bytes) does not decode",
                       (unsigned long long)r->info.records, (unsigned long long)len);
  }
  r->pos += hdr + (size_t)len;
  r->info.records++;
  r->info.bytes += hdr + len;
  *rec_out = rec;
  return MIR_OK;
}

void mir_log_reader_info_get(const mir_log_reader *r, mir_log_reader_info *out) {
  *out = r->info;
}

const char *mir_log_reader_error(const mir_log_reader *r) {
  return r->detail;
}

void mir_log_reader_close(mir_log_reader *r) {
  if (r == NULL) return;
  if (r->fd >= 0) close(r->fd);
  ZSTD_freeDCtx(r->dctx);
  free(r->in);
  free(r->buf);
  free(r);
}
