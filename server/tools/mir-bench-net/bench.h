/*
 * mir-bench-net: what the two measurements share. Both send `count` messages of `msg_bytes` bytes
 * from one endpoint to another in this process over loopback and time from the first send until
 * the receiver has counted the last message.
 */
#ifndef MIR_BENCH_NET_H
#define MIR_BENCH_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bench_params {
  size_t msg_bytes;    /* payload bytes per message */
  uint64_t count;      /* messages per run */
  const char *tls_dir; /* mir-keygen --tls layout (ca.pem, replica-<i>.crt/.tls.key), or NULL */
  uint64_t window;     /* transport: messages in flight (credit window) */
  uint64_t timeout_ms; /* a run that takes longer fails */
} bench_params;

typedef struct bench_result {
  double seconds;
  double cpu_seconds; /* process CPU time (both ends) over the same interval */
  uint64_t msgs;
  uint64_t frames; /* gRPC messages sent (transport: frames; raw: equal to msgs) */
} bench_result;

/* Runs the transport between two nodes ("0" sends to "1"). False on failure (printed). */
bool bench_mir(const bench_params *p, bench_result *r);

/* Runs a raw gRPC client stream, one message per SEND_MESSAGE, one in flight; with hint, every
 * message but the last carries GRPC_WRITE_BUFFER_HINT. False on failure (printed). */
bool bench_raw(const bench_params *p, bool hint, bench_result *r);

/* Reads DIR/name into a NUL-terminated buffer (owned, free()), or NULL (printed). */
char *bench_read_file(const char *dir, const char *name);

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int bench_free_port(void);

/* Monotonic seconds, and CPU seconds used by the whole process. */
double bench_now(void);
double bench_cpu(void);

#endif
