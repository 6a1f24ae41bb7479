/*
 * Fuzz target: the membership loader on arbitrary bytes. Any input must either load or be
 * refused with MIR_ECONFIG, never crash, leak or read out of bounds; a loaded membership must
 * satisfy the invariants the loader promises.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mir/assert.h"
#include "mir/membership.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mir_membership *m = NULL;
  mir_err err = mir_membership_parse((const char *)data, size, "fuzz.json", &m);
  MIR_ASSERT(err == MIR_OK || err == MIR_ECONFIG);
  if (err == MIR_OK) {
    MIR_ASSERT(m->n >= 1 && m->n <= MIR_MEMBERSHIP_MAX);
    for (size_t i = 0; i < m->n; i++) {
      MIR_ASSERT(m->replicas[i].weight >= 1 && m->replicas[i].port >= 1);
      MIR_ASSERT(m->replicas[i].public_key_len == mir_sig_public_key_len(m->scheme));
      MIR_ASSERT(mir_membership_find(m, m->replicas[i].id) == &m->replicas[i]);
    }
  }
  mir_membership_free(m);
  uint8_t out[64];
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  long n = mir_base64_decode(text, out, sizeof out);
  MIR_ASSERT(n >= -1 && n <= (long)sizeof out);
  free(text);
  return 0;
}
