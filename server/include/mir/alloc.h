/*
 * Allocation helpers. Out-of-memory is not recoverable in a replica (state would be half
 * updated), so the x-functions abort with a message instead of returning NULL; every size they
 * see is bounded by a configured limit before it gets here.
 */
#ifndef MIR_ALLOC_H
#define MIR_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return owned memory (free with free()); never NULL. */
void *mir_xmalloc(size_t size);
void *mir_xcalloc(size_t count, size_t size);
void *mir_xrealloc(void *ptr, size_t size);
char *mir_xstrdup(const char *s);                /* s borrowed */
void *mir_xmemdup(const void *data, size_t len); /* data borrowed; len 0 gives NULL */

/* Error detail: a thread-local message that goes with the mir_err just returned. mir_error_set
 * formats the message and returns code, so `return mir_error_set(MIR_EPROTO, "...")` reads well.
 * The node copies the detail of a failing module into its last-error message. */
int mir_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the calling thread's last detail ("" if none); valid until the next mir_error_set. */
const char *mir_error_detail(void);
void mir_error_clear(void);

/* Monotonic clock in nanoseconds (edges and tools only: protocol modules never read clocks). */
uint64_t mir_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif
