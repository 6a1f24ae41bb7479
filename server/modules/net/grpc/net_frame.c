/*
 * Encoded messages, bounded send queues and the frame codec of the gRPC transport. Pure code: no
 * gRPC, no threads, no locks (callers hold the lock of the queue's owner).
 *
 * A frame is the protobuf encoding of mir.net.Frame{repeated mir.PackedMessage msgs = 1}: for each
 * message the key byte 0x0a (field 1, length-delimited), the length as a varint, and the
 * message's own encoding. The sender builds it by concatenating messages that were encoded once in
 * apply(), whatever the number of destinations. The receiver walks the outer level itself before
 * decoding anything, so that it can reject a frame with too many messages (or any field other than
 * msgs) without allocating: a frame of many tiny messages would otherwise expand into many
 * allocations. Each message is then decoded on its own by protobuf-c and checked (destination
 * module id, type name, no unknown fields), all before any of them is delivered: a frame is
 * accepted or rejected as a whole.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "net_frame.h"

/* The key of field 1 with wire type 2 (length-delimited). */
#define FRAME_KEY 0x0a
/* Longest varint encoding of a 64-bit value. */
#define VARINT_MAX 10

/* ---- encoded messages ---- */

miri_msg *miri_msg_encode(const Mir__PackedMessage *pm) {
  size_t len = protobuf_c_message_get_packed_size(&pm->base);
  miri_msg *m = mir_xmalloc(sizeof *m + len);
  m->refs = 1;
  m->len = len;
  size_t written = protobuf_c_message_pack(&pm->base, m->data);
  MIR_ASSERT(written == len);
  return m;
}

miri_msg *miri_msg_ref(miri_msg *m) {
  __atomic_fetch_add(&m->refs, 1, __ATOMIC_RELAXED);
  return m;
}

void miri_msg_unref(miri_msg *m) {
  if (m == NULL) return;
  /* acq_rel: the last owner must see every write of the others before freeing. */
  if (__atomic_fetch_sub(&m->refs, 1, __ATOMIC_ACQ_REL) == 1) free(m);
}

/* ---- queues ---- */

void miri_queue_init(miri_queue *q, size_t cap, size_t bytes_max) {
  MIR_ASSERT(cap > 0);
  q->ring = mir_xcalloc(cap, sizeof *q->ring);
  q->cap = cap;
  q->head = q->len = 0;
  q->bytes = 0;
  q->bytes_max = bytes_max;
}

void miri_queue_fini(miri_queue *q) {
  miri_msg *m;
  while ((m = miri_queue_pop(q)) != NULL) miri_msg_unref(m);
  free(q->ring);
  q->ring = NULL;
  q->cap = 0;
}

bool miri_queue_push(miri_queue *q, miri_msg *m) {
  if (q->len == q->cap || m->len > q->bytes_max - q->bytes) return false;
  q->ring[(q->head + q->len) % q->cap] = m;
  q->len++;
  q->bytes += m->len;
  return true;
}

miri_msg *miri_queue_peek(const miri_queue *q, size_t i) {
  MIR_ASSERT(i < q->len);
  return q->ring[(q->head + i) % q->cap];
}

miri_msg *miri_queue_pop(miri_queue *q) {
  if (q->len == 0) return NULL;
  miri_msg *m = q->ring[q->head];
  q->ring[q->head] = NULL;
  q->head = (q->head + 1) % q->cap;
  q->len--;
  q->bytes -= m->len;
  return m;
}

/* ---- varints ---- */

static size_t frame_varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static size_t frame_varint_put(uint64_t v, uint8_t *out) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

/* Reads a varint from data[*off..len). False if it is truncated or longer than VARINT_MAX. */
static bool frame_varint_get(const uint8_t *data, size_t len, size_t *off, uint64_t *v) {
  uint64_t r = 0;
  for (size_t i = 0; i < VARINT_MAX && *off < len; i++) {
    uint8_t b = data[(*off)++];
    r |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      *v = r;
      return true;
    }
  }
  return false;
}

/* ---- encoding ---- */

size_t miri_frame_entry_size(size_t len) {
  return 1 + frame_varint_size(len) + len;
}

size_t miri_frame_plan(const miri_queue *q, size_t max_msgs, size_t max_bytes,
                       size_t *frame_bytes) {
  size_t n = 0, total = 0;
  while (n < q->len && n < max_msgs) {
    size_t add = miri_frame_entry_size(miri_queue_peek(q, n)->len);
    /* The first message always goes: apply() only queues messages that fit in a frame. */
    if (n > 0 && (total >= max_bytes || add > max_bytes - total)) break;
    total += add;
    n++;
  }
  *frame_bytes = total;
  return n;
}

void miri_frame_write(miri_queue *q, size_t n, uint8_t *out, size_t frame_bytes,
                      size_t *msg_bytes) {
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    miri_msg *m = miri_queue_pop(q);
    MIR_ASSERT(m != NULL);
    out[off++] = FRAME_KEY;
    off += frame_varint_put(m->len, out + off);
    memcpy(out + off, m->data, m->len);
    off += m->len;
    *msg_bytes += m->len;
    miri_msg_unref(m);
  }
  MIR_ASSERT(off == frame_bytes);
}

/* ---- decoding (untrusted input) ---- */

/* A message's position inside the frame. */
typedef struct frame_span {
  size_t off, len;
} frame_span;

/* Walks the outer level of the frame into spans (at most max_msgs). */
static mir_err frame_split(const uint8_t *data, size_t len, size_t max_msgs, frame_span *spans,
                           size_t *n) {
  size_t off = 0, count = 0;
  while (off < len) {
    uint64_t key, mlen;
    if (!frame_varint_get(data, len, &off, &key) || key != FRAME_KEY) {
      return mir_error_set(MIR_EPROTO, "frame: unexpected field at byte %zu", off);
    }
    if (!frame_varint_get(data, len, &off, &mlen) || mlen > len - off) {
      return mir_error_set(MIR_EPROTO, "frame: message length past the end at byte %zu", off);
    }
    if (count == max_msgs) {
      return mir_error_set(MIR_EPROTO, "frame: more than %zu messages", max_msgs);
    }
    spans[count].off = off;
    spans[count].len = (size_t)mlen;
    count++;
    off += (size_t)mlen;
  }
  if (count == 0) return mir_error_set(MIR_EPROTO, "frame: no message");
  *n = count;
  return MIR_OK;
}

/* Checks one decoded message: what a receiving module and mir_event_new rely on. */
static mir_err frame_check_msg(const Mir__PackedMessage *pm, size_t i) {
  if (!mir_module_id_valid(pm->dest_module)) {
    return mir_error_set(MIR_EPROTO, "frame: message %zu has an invalid destination module", i);
  }
  size_t type_len = strnlen(pm->type, MIRI_TYPE_NAME_MAX);
  if (type_len == 0 || type_len == MIRI_TYPE_NAME_MAX) {
    return mir_error_set(MIR_EPROTO, "frame: message %zu has an empty or too long type", i);
  }
  if (pm->base.n_unknown_fields != 0) {
    return mir_error_set(MIR_EPROTO, "frame: message %zu has unknown fields", i);
  }
  return MIR_OK;
}

static void frame_free_msgs(Mir__PackedMessage **msgs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (msgs[i] != NULL) protobuf_c_message_free_unpacked(&msgs[i]->base, NULL);
  }
  free(msgs);
}

mir_err miri_frame_decode(const uint8_t *data, size_t len, size_t max_msgs,
                          Mir__PackedMessage ***out, size_t *n) {
  MIR_ASSERT(max_msgs > 0);
  /* Each message takes at least two bytes, which bounds the spans array by the input too. */
  size_t spans_max = len / 2 < max_msgs ? len / 2 + 1 : max_msgs;
  frame_span *spans = mir_xmalloc(spans_max * sizeof *spans);
  size_t count = 0;
  mir_err err = frame_split(data, len, spans_max, spans, &count);
  if (err != MIR_OK) {
    free(spans);
    return err;
  }
  Mir__PackedMessage **msgs = mir_xcalloc(count, sizeof *msgs);
  for (size_t i = 0; i < count && err == MIR_OK; i++) {
    msgs[i] = mir__packed_message__unpack(NULL, spans[i].len, data + spans[i].off);
    if (msgs[i] == NULL) {
      err = mir_error_set(MIR_EPROTO, "frame: message %zu does not decode", i);
    } else {
      err = frame_check_msg(msgs[i], i);
    }
  }
  free(spans);
  if (err != MIR_OK) {
    frame_free_msgs(msgs, count);
    return err;
  }
  *out = msgs;
  *n = count;
  return MIR_OK;
}
