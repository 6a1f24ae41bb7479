/*
 * Process-wide settings of the gRPC runtime that our programs (mir-replica, mir-limit, mir-bench,
 * mir-bench-net) make first thing in main(), before any gRPC call (docs/PERFORMANCE.md, "Carried
 * out, tried, measured").
 *
 * Debian builds Abseil, on which its gRPC is built, without NDEBUG, so every absl::Mutex (every
 * lock inside gRPC) by default records its acquisitions in a process-wide lock graph to detect
 * lock-order cycles: a global lock of its own and a graph walk on every contended acquisition,
 * on the hot path of every RPC. That detection is a debugging aid; our programs switch it off.
 * Libraries (libmirclient) leave the process's settings to the application that embeds them.
 */
#ifndef MIR_GRPC_TUNE_H
#define MIR_GRPC_TUNE_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Switches off Abseil's mutex deadlock detection for the whole process, unless the environment
 * variable MIR_ABSL_DEADLOCK_DETECTION is "1" (to debug a lock-order problem inside gRPC). Returns
 * true if it switched it off. Call before other threads start; idempotent. */
bool mir_grpc_tune_process(void);

#ifdef __cplusplus
}
#endif

#endif
