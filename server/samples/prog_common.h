/*
 * Helpers shared by the sample programs (pingpong_main.c, bcb_main.c): command-line numbers,
 * Ctrl-C handling, per-node recorders and the wait loop. Not part of the mir_samples library:
 * this is program plumbing with signals, clocks and files.
 */
#ifndef MIR_SAMPLES_PROG_COMMON_H
#define MIR_SAMPLES_PROG_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/node.h"
#include "mir/recorder.h"

/* Longest run a program accepts, in seconds (one day). */
#define PROG_DURATION_S_MAX 86400.0

/* Parses a duration in seconds (decimal, > 0, at most PROG_DURATION_S_MAX) from s (borrowed)
 * into *ms. Returns false if s is not one. */
bool prog_parse_duration(const char *s, uint64_t *ms);

/* Parses an unsigned integer in [min, max] from s (borrowed). Returns false if s is not one. */
bool prog_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Makes SIGINT and SIGTERM set a flag that prog_interrupted reports, instead of killing the
 * process, so that a program can stop its nodes and close its logs. */
void prog_install_signals(void);
bool prog_interrupted(void);

/* Creates a recorder for node_id (borrowed) writing to dir (borrowed) with prefix node_id and
 * installs it as the node's interceptor. *out is owned (close with mir_recorder_close after the
 * node stopped, then free with mir_recorder_free). */
mir_err prog_record(mir_node *node, const char *dir, const char *node_id, mir_recorder **out);

/* Sleeps in short steps until done(user) is true, a node stopped by itself, the program was
 * interrupted, or timeout_ms passed. nodes is borrowed. Returns MIR_OK if done(user) became true,
 * MIR_ETIMEDOUT when the time is up, MIR_ESTOPPED when interrupted, or a stopped node's error. */
mir_err prog_wait(mir_node *const *nodes, size_t n, uint64_t timeout_ms, bool (*done)(void *user),
                  void *user);

#endif
