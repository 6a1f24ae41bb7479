/*
 * The harness behind fuzz_trantor_ingress (libFuzzer) and trantor_fuzz_replay_test (GoogleTest):
 * one input is a script of messages that a Byzantine replica forges, replays and mangles, injected
 * into the correct replicas of a live four-replica Trantor cluster in the deterministic simulator
 * (trantor_ingress_harness.c describes the input format). Both front ends run the same function,
 * so a crash the fuzzer finds replays in the ordinary test suite.
 */
#ifndef TRANTOR_INGRESS_HARNESS_H
#define TRANTOR_INGRESS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Runs one input (borrowed, size bytes) to the end of the cluster's run. Returns true if every
 * correct replica is still up, no module stopped a node, the correct replicas agree on every
 * position and delivered every submitted transaction within the liveness budget. Otherwise
 * returns false with the simulator's first violation in why (cap bytes, always terminated). */
bool fuzz_trantor_ingress_check(const uint8_t *data, size_t size, char *why, size_t cap);

/* The fuzzer's entry: fuzz_trantor_ingress_check, aborting with the violation on stderr when it
 * fails, so that libFuzzer reports the input. Always returns 0. */
int fuzz_trantor_ingress_one(const uint8_t *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
