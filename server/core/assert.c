/* Always-on assertions: print what failed and where, then abort (core dump for gdb). */
#include "mir/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void mir_assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "mir: assertion failed: %s (%s:%d)\n", expr, file, line);
  fflush(stderr);
  abort();
}
