/*
 * Assertions that stay on in production builds. MIR_ASSERT is for programmer errors only: a value
 * that a peer, a client, a file or the disk controls must be validated and rejected as an
 * operating error instead, never reach an assertion.
 */
#ifndef MIR_ASSERT_H
#define MIR_ASSERT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Prints "assertion failed: expr (file:line)" to stderr and aborts. */
_Noreturn void mir_assert_fail(const char *expr, const char *file, int line);

#define MIR_ASSERT(expr) ((expr) ? (void)0 : mir_assert_fail(#expr, __FILE__, __LINE__))

/* Marks a branch that correct code never takes. */
#define MIR_UNREACHABLE() mir_assert_fail("unreachable", __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif
#endif
