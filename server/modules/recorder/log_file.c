/*
 * The compressed log-file writer: one zstd compression context streaming into one file
 * descriptor at a time.
 *
 * Invariants: fd is -1 exactly when no file is open; everything handed to miri_log_file_write
 * since the last flush sits inside zstd (dirty) until flush or close writes it out; after a flush
 * returns MIR_OK, the file holds a valid zstd prefix that decompresses to every byte written so far
 * (this is what lets a reader recover a log whose writer died). The output buffer is bounded by
 * ZSTD_CStreamOutSize(); write(2) is retried on EINTR and short writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mir/alloc.h"
#include "rec_internal.h"

mir_err miri_log_file_init(miri_log_file *f, int level) {
  memset(f, 0, sizeof(*f));
  f->fd = -1;
  f->cctx = ZSTD_createCCtx();
  if (f->cctx == NULL) return mir_error_set(MIR_ENOMEM, "recorder: cannot create zstd context");
  size_t rc = ZSTD_CCtx_setParameter(f->cctx, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(f->cctx, ZSTD_c_checksumFlag, 1);
  if (ZSTD_isError(rc)) {
    ZSTD_freeCCtx(f->cctx);
    f->cctx = NULL;
    return mir_error_set(MIR_EINVAL, "recorder: zstd: %s", ZSTD_getErrorName(rc));
  }
  f->out_cap = ZSTD_CStreamOutSize();
  f->out = mir_xmalloc(f->out_cap);
  return MIR_OK;
}

/* Writes all of buf to fd, retrying short writes and EINTR. */
static mir_err logfile_write_all(miri_log_file *f, const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(f->fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return mir_error_set(MIR_EIO, "recorder: write: %s", strerror(errno));
    }
    buf += n;
    len -= (size_t)n;
    f->bytes_written += (uint64_t)n;
  }
  return MIR_OK;
}

/* Runs the compressor over in with directive op until the input is consumed and, for flush and
 * end, until zstd reports nothing left, writing every produced block out. */
static mir_err logfile_stream(miri_log_file *f, ZSTD_inBuffer *in, ZSTD_EndDirective op) {
  for (;;) {
    ZSTD_outBuffer out = {f->out, f->out_cap, 0};
    size_t remaining = ZSTD_compressStream2(f->cctx, &out, in, op);
    if (ZSTD_isError(remaining)) {
      return mir_error_set(MIR_EIO, "recorder: zstd: %s", ZSTD_getErrorName(remaining));
    }
    mir_err err = logfile_write_all(f, f->out, out.pos);
    if (err != MIR_OK) return err;
    bool input_done = in->pos == in->size;
    if (op == ZSTD_e_continue ? input_done : (input_done && remaining == 0)) return MIR_OK;
  }
}

mir_err miri_log_file_open(miri_log_file *f, const char *path) {
  if (f->fd >= 0) return mir_error_set(MIR_EINVAL, "recorder: a file is already open");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return mir_error_set(MIR_EIO, "recorder: cannot create %s: %s", path, strerror(errno));
  /* A previous frame may have been abandoned by an error; start the new file clean. */
  ZSTD_CCtx_reset(f->cctx, ZSTD_reset_session_only);
  f->fd = fd;
  f->dirty = false;
  return MIR_OK;
}

mir_err miri_log_file_write(miri_log_file *f, const void *data, size_t len) {
  if (f->fd < 0) return mir_error_set(MIR_EIO, "recorder: no file open");
  ZSTD_inBuffer in = {data, len, 0};
  f->dirty = true;
  return logfile_stream(f, &in, ZSTD_e_continue);
}

mir_err miri_log_file_flush(miri_log_file *f, bool do_fsync) {
  if (f->fd < 0) return mir_error_set(MIR_EIO, "recorder: no file open");
  if (f->dirty) {
    ZSTD_inBuffer in = {NULL, 0, 0};
    mir_err err = logfile_stream(f, &in, ZSTD_e_flush);
    if (err != MIR_OK) return err;
    f->dirty = false;
  }
  if (do_fsync && fsync(f->fd) != 0) {
    return mir_error_set(MIR_EIO, "recorder: fsync: %s", strerror(errno));
  }
  return MIR_OK;
}

mir_err miri_log_file_close(miri_log_file *f, bool do_fsync) {
  if (f->fd < 0) return MIR_OK;
  ZSTD_inBuffer in = {NULL, 0, 0};
  mir_err err = logfile_stream(f, &in, ZSTD_e_end);
  if (err == MIR_OK && do_fsync && fsync(f->fd) != 0) {
    err = mir_error_set(MIR_EIO, "recorder: fsync: %s", strerror(errno));
  }
  if (close(f->fd) != 0 && err == MIR_OK) {
    err = mir_error_set(MIR_EIO, "recorder: close: %s", strerror(errno));
  }
  f->fd = -1;
  f->dirty = false;
  return err;
}

void miri_log_file_fini(miri_log_file *f) {
  if (f->fd >= 0) {
    close(f->fd);
    f->fd = -1;
  }
  ZSTD_freeCCtx(f->cctx);
  f->cctx = NULL;
  free(f->out);
  f->out = NULL;
}

mir_err miri_mkdir_p(const char *path) {
  size_t len = strlen(path);
  if (len == 0 || len >= PATH_MAX) return mir_error_set(MIR_EINVAL, "recorder: bad directory");
  char buf[PATH_MAX];
  memcpy(buf, path, len + 1);
  /* Create each prefix ending before a '/', then the whole path; existing ones are fine. */
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
      return mir_error_set(MIR_EIO, "recorder: cannot create %s: %s", buf, strerror(errno));
    }
    buf[i] = saved;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return mir_error_set(MIR_EIO, "recorder: %s is not a directory", path);
  }
  return MIR_OK;
}

size_t miri_varint_put(uint8_t *buf, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  buf[n++] = (uint8_t)v;
  return n;
}
