/*
 * libFuzzer target for what mir-bench --metrics reads from a replica (server/tools/mir-bench/
 * scrape.h): the first input byte picks the decoder of the rest, even the Prometheus text parser,
 * odd the /debug/stats threads list. Either must end in 0 or -1 with a message, without a crash
 * or a leak; a parsed page must hold only samples within the format's bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mir/assert.h"
#include "scrape.h"

static void fuzz_page(const char *data, size_t len) {
  prom_page p;
  char err[SCRAPE_ERR_MAX] = "";
  if (prom_parse(data, len, &p, err, sizeof err) == 0) {
    MIR_ASSERT(p.n <= PROM_LINES_MAX);
    for (size_t i = 0; i < p.n; i++) {
      MIR_ASSERT(p.samples[i].name[0] != '\0');
      MIR_ASSERT(strlen(p.samples[i].name) <= PROM_LINE_MAX);
      MIR_ASSERT(p.samples[i].n_labels <= PROM_LABELS_MAX);
    }
  } else {
    MIR_ASSERT(err[0] != '\0');
  }
  prom_page_fini(&p);
}

static void fuzz_threads(const char *data, size_t len) {
  scrape_snapshot s;
  memset(&s, 0, sizeof s);
  char err[SCRAPE_ERR_MAX] = "";
  if (scrape_parse_threads(data, len, &s, err, sizeof err) == 0) {
    MIR_ASSERT(s.n_threads <= SCRAPE_THREADS_MAX);
  } else {
    MIR_ASSERT(err[0] != '\0');
  }
  scrape_snapshot_fini(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  if ((data[0] & 1) == 0) {
    fuzz_page((const char *)data + 1, size - 1);
  } else {
    fuzz_threads((const char *)data + 1, size - 1);
  }
  return 0;
}
