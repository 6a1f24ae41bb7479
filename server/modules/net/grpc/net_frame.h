/*
 * The pure part of the gRPC transport (net_frame.c): encoded messages shared among queues,
 * bounded send queues, and the frame codec. No gRPC, no threads; includable from C++ tests.
 */
#ifndef MIR_NET_GRPC_FRAME_H
#define MIR_NET_GRPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest type name accepted in a received PackedMessage. */
#define MIRI_TYPE_NAME_MAX 256

/* ---- encoded messages (net_frame.c) ---- */

/* One mir.PackedMessage in its protobuf encoding, shared (reference-counted) by the queues of
 * all its destinations. */
typedef struct miri_msg {
  size_t refs; /* changed only with the __atomic builtins (this header is also C++) */
  size_t len;
  uint8_t data[];
} miri_msg;

/* Encodes pm (borrowed). Returns owned with one reference (release with miri_msg_unref). */
miri_msg *miri_msg_encode(const Mir__PackedMessage *pm);
/* Adds a reference; returns m. */
miri_msg *miri_msg_ref(miri_msg *m);
/* Drops a reference, freeing m with the last. NULL is a no-op. */
void miri_msg_unref(miri_msg *m);

/* A bounded FIFO of messages (a ring). Not synchronised: the owner's lock guards it. */
typedef struct miri_queue {
  miri_msg **ring;
  size_t cap, head, len;
  size_t bytes, bytes_max;
} miri_queue;

void miri_queue_init(miri_queue *q, size_t cap, size_t bytes_max);
/* Releases every queued message and the ring. */
void miri_queue_fini(miri_queue *q);
/* Appends m (takes ownership of one reference) unless the queue is at a bound: then returns
 * false and m stays with the caller. */
bool miri_queue_push(miri_queue *q, miri_msg *m);
/* The i-th message from the front (borrowed); i < len. */
miri_msg *miri_queue_peek(const miri_queue *q, size_t i);
/* Removes the first message and returns it (owned reference), or NULL if empty. */
miri_msg *miri_queue_pop(miri_queue *q);

/* ---- frames (net_frame.c): the encoding of mir.net.Frame{repeated PackedMessage msgs = 1} ---- */

/* Bytes one message of len bytes takes in a frame (field tag, length, data). */
size_t miri_frame_entry_size(size_t len);

/* How many messages from the front of q go into the next frame: at least one (if any), at most
 * max_msgs, and more only while the frame stays within max_bytes. *frame_bytes gets its size. */
size_t miri_frame_plan(const miri_queue *q, size_t max_msgs, size_t max_bytes, size_t *frame_bytes);

/* Writes the frame of the first n messages of q into out (frame_bytes long, from
 * miri_frame_plan) and removes them from q, adding their encoded sizes to *msg_bytes. */
void miri_frame_write(miri_queue *q, size_t n, uint8_t *out, size_t frame_bytes, size_t *msg_bytes);

/* Decodes a frame received from a peer (untrusted; data borrowed). On success *out is an owned
 * array (free()) of *n owned messages (protobuf_c_message_free_unpacked), 1 <= *n <= max_msgs,
 * each with a valid dest_module (mir_module_id_valid) and a non-empty type name. MIR_EPROTO
 * (nothing allocated, detail in mir_error_detail()) for any malformed input. */
mir_err miri_frame_decode(const uint8_t *data, size_t len, size_t max_msgs,
                          Mir__PackedMessage ***out, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
