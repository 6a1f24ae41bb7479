/*
 * Internal to the scenario library: the protocols' configure/setup/cleanup functions that the
 * scenario table (scenarios.c) combines with fault classes and variants.
 */
#ifndef MIR_SIM_SC_H
#define MIR_SIM_SC_H

#include "mir/sim.h"

/* Scenario variants (mir_sim_scenario.variant). */
enum {
  SC_PLAIN = 0,      /* correct nodes only */
  SC_CORRUPT = 1,    /* one non-leader node runs the generic misbehaving filter */
  SC_EQUIVOCATE = 2, /* the leader equivocates */
  SC_BUG = 3         /* the leader equivocates and the protocol has a planted bug */
};

/* Classes that make a protocol without retransmission lose messages for good. */
#define SC_LOSSY \
  (MIR_SIM_FAULT_DROP | MIR_SIM_FAULT_PARTITION | MIR_SIM_FAULT_CRASH | MIR_SIM_FAULT_WIPE)

/* The generic misbehaving peer used by SC_CORRUPT scenarios (rates in ppm). */
void sc_generic_byz(mir_sim_byz_generic *g);

mir_err sc_echo_configure(const mir_sim_scenario *sc, mir_sim_config *cfg, void **state);
mir_err sc_echo_setup(const mir_sim_scenario *sc, mir_sim *sim, void *state);
void sc_echo_cleanup(void *state);

mir_err sc_bcb_configure(const mir_sim_scenario *sc, mir_sim_config *cfg, void **state);
mir_err sc_bcb_setup(const mir_sim_scenario *sc, mir_sim *sim, void *state);
void sc_bcb_cleanup(void *state);

mir_err sc_pingpong_configure(const mir_sim_scenario *sc, mir_sim_config *cfg, void **state);
mir_err sc_pingpong_setup(const mir_sim_scenario *sc, mir_sim *sim, void *state);
void sc_pingpong_cleanup(void *state);

/* Trantor: sc_trantor.h. */

#endif
