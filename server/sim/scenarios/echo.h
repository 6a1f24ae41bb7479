/*
 * The echo protocol: the simulator's own test protocol, a quorum echo broadcast with a fixed
 * leader, retransmission driven by status messages, and persistence in the simulated store
 * (proto/mirsim/echo.proto describes the messages). Its quorum is a parameter, so a test can
 * plant the classic bug (a quorum one too small) and watch the checkers catch it.
 */
#ifndef MIR_SIM_ECHO_H
#define MIR_SIM_ECHO_H

#include <stddef.h>
#include <stdint.h>

#include "mir/dsl.h"
#include "mir/errors.h"
#include "mir/sim.h"
#include "mirsim/echo.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_ECHO_POSITIONS_MAX 256   /* positions one run can order */
#define MIR_ECHO_VALUE_BYTES_MAX 256 /* one value */
#define MIR_ECHO_RESEND_MAX 16       /* positions resent in answer to one Status */

typedef struct mir_echo_config {
  const char *module_id;    /* this module; peers use the same id */
  const char *transport_id; /* the transport */
  const char *timer_id;     /* the timer (Tick every tick_ms) */
  const char *app_id;       /* receives mirsim.echo.Deliver */
  size_t nodes;             /* members "0" .. nodes-1, at most MIR_SIM_NODES_MAX */
  size_t self;              /* this node */
  size_t leader;            /* the node that orders values */
  size_t quorum;            /* matching echoes needed to deliver (correct: 2f + 1) */
  uint64_t tick_ms;         /* status period */
  mir_sim_store *store;     /* durable state (borrowed; NULL: nothing survives a crash) */
} mir_echo_config;

/* The correct quorum for n nodes: 2f + 1 with f = (n - 1) / 3. */
size_t mir_echo_quorum(size_t nodes);

/* Registers the mirsim.echo.* types in the type registry. Idempotent. */
mir_err mir_echo_register_types(void);

/* Creates an echo module from cfg (borrowed, copied; the store stays borrowed). Values already
 * in the store are loaded at Init. *out is owned (add with mir_dsl_ops, or mir_dsl_free). */
mir_err mir_echo_new(const mir_echo_config *cfg, mir_dsl **out);

/* Returns an owned Submit event for dest carrying value (borrowed). */
mir_event *mir_echo_submit(const char *dest, const void *value, size_t len);

#ifdef __cplusplus
}
#endif
#endif
