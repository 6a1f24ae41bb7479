/*
 * Fuzz target: peer messages a Byzantine replica sends into a live Trantor cluster (the input
 * format is in trantor_ingress_harness.c). No input may stop a correct replica, break agreement
 * or prevent the delivery of the submitted transactions; the harness aborts if one does.
 */
#include <stddef.h>
#include <stdint.h>

#include "trantor_ingress_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fuzz_trantor_ingress_one(data, size);
}
