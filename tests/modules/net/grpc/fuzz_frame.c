/*
 * Fuzz target of the transport's frame decoder (server/modules/net/grpc/net_frame.c), the first
 * code that reads bytes from a peer. Any input must either be rejected with MIR_EPROTO or decode
 * into messages whose destination module ids are valid, without crashing or leaking.
 */
#include <stdint.h>
#include <stdlib.h>

#include "mir/assert.h"
#include "net_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Mir__PackedMessage **msgs = NULL;
  size_t n = 0;
  if (miri_frame_decode(data, size, 64, &msgs, &n) != MIR_OK) return 0;
  MIR_ASSERT(n >= 1 && n <= 64);
  for (size_t i = 0; i < n; i++) {
    MIR_ASSERT(mir_module_id_valid(msgs[i]->dest_module));
    protobuf_c_message_free_unpacked(&msgs[i]->base, NULL);
  }
  free(msgs);
  return 0;
}
