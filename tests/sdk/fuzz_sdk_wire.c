/*
 * libFuzzer target for the SDK's decoders of replica bytes (sdk/src/wire.h): a Delivery, with
 * and without the client-id filter, the decoding of its canonical form into the public entry
 * view, and a SubmitResponse with its check. Nothing a replica sends may crash the client.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const filters[] = {NULL, "client-a"};
  for (size_t k = 0; k < 2; k++) {
    uint64_t sn = 0;
    uint8_t *canon = NULL;
    size_t len = 0;
    const char *why = NULL;
    if (miri_cl_delivery_canon(data, size, filters[k], &sn, &canon, &len, &why) == 0) {
      miri_cl_entry_view v;
      if (miri_cl_entry_view_init(&v, canon, len) == 0) {
        if (v.entry.sn != sn || v.entry.log_hash_len != MIRI_CL_HASH_BYTES) abort();
        miri_cl_entry_view_fini(&v);
      }
      free(canon);
    }
  }
  Mir__Api__SubmitResponse *resp = mir__api__submit_response__unpack(NULL, size, data);
  if (resp != NULL) {
    (void)miri_cl_submit_response_check(resp, resp->n_results);
    (void)miri_cl_submit_response_check(resp, 3);
    mir__api__submit_response__free_unpacked(resp, NULL);
  }
  return 0;
}
