/*
 * The table of named scenarios: each protocol under each fault class, its Byzantine variants,
 * a swarm profile where the seed picks the faults, and the planted bug.
 *
 * To add a scenario, write (or reuse) a protocol's configure/setup/cleanup (sc_*.c) and add a
 * row here; mir-sim --list and the ctest seed lists pick it up by name.
 */
#include <string.h>

#include "sc.h"
#include "sc_trantor.h"

#define F_DELAY_REORDER (MIR_SIM_FAULT_DELAY | MIR_SIM_FAULT_REORDER)
#define F_CRASH (MIR_SIM_FAULT_CRASH | MIR_SIM_FAULT_WIPE)
#define F_SWARM (MIR_SIM_FAULT_ALL | MIR_SIM_FAULT_SWARM)

#define ECHO(name, desc, faults, variant, bug) \
  { name, desc, sc_echo_configure, sc_echo_setup, sc_echo_cleanup, faults, variant, bug }
#define BCB(name, desc, faults, variant) \
  { name, desc, sc_bcb_configure, sc_bcb_setup, sc_bcb_cleanup, faults, variant, false }
#define PP(name, desc, faults, variant)                                                         \
  {                                                                                             \
    name, desc, sc_pingpong_configure, sc_pingpong_setup, sc_pingpong_cleanup, faults, variant, \
        false                                                                                   \
  }

#define TRANTOR(name, desc, faults, variant) \
  { name, desc, sc_trantor_configure, sc_trantor_setup, sc_trantor_cleanup, faults, variant, false }
#define TRANTOR_BUG(name, desc, faults, variant) \
  { name, desc, sc_trantor_configure, sc_trantor_setup, sc_trantor_cleanup, faults, variant, true }

static const mir_sim_scenario sc_table[] = {
    ECHO("echo-none", "echo broadcast, 4 nodes, no faults", 0, SC_PLAIN, false),
    ECHO("echo-delay", "echo broadcast under long-tailed delays and reordering", F_DELAY_REORDER,
         SC_PLAIN, false),
    ECHO("echo-drop", "echo broadcast, messages dropped until the faults heal", MIR_SIM_FAULT_DROP,
         SC_PLAIN, false),
    ECHO("echo-duplicate", "echo broadcast, messages duplicated", MIR_SIM_FAULT_DUPLICATE, SC_PLAIN,
         false),
    ECHO("echo-partition", "echo broadcast, one-way and two-way partitions that heal",
         MIR_SIM_FAULT_PARTITION, SC_PLAIN, false),
    ECHO("echo-crash", "echo broadcast, crashes and restarts with the store or wiped", F_CRASH,
         SC_PLAIN, false),
    ECHO("echo-clock", "echo broadcast, clocks at different speeds, timer jitter",
         MIR_SIM_FAULT_CLOCK, SC_PLAIN, false),
    ECHO("echo-byz-corrupt", "echo broadcast, node 3 corrupts, drops, replays and delays",
         MIR_SIM_FAULT_DELAY, SC_CORRUPT, false),
    ECHO("echo-byz-equivocate", "echo broadcast, the leader equivocates", F_DELAY_REORDER,
         SC_EQUIVOCATE, false),
    ECHO("echo-swarm", "echo broadcast, the seed picks the faults and their rates", F_SWARM,
         SC_PLAIN, false),
    ECHO("echo-bug", "PLANTED BUG: quorum 2f against an equivocating leader (must fail)",
         F_DELAY_REORDER, SC_BUG, true),
    BCB("bcb-none", "BCB sample, 4 nodes, no faults", 0, SC_PLAIN),
    BCB("bcb-delay", "BCB sample under long-tailed delays and reordering", F_DELAY_REORDER,
        SC_PLAIN),
    BCB("bcb-drop", "BCB sample, messages dropped (safety only)", MIR_SIM_FAULT_DROP, SC_PLAIN),
    BCB("bcb-duplicate", "BCB sample, messages duplicated", MIR_SIM_FAULT_DUPLICATE, SC_PLAIN),
    BCB("bcb-partition", "BCB sample, partitions that heal (safety only)", MIR_SIM_FAULT_PARTITION,
        SC_PLAIN),
    BCB("bcb-crash", "BCB sample, crashes with wiped restarts (safety only)", MIR_SIM_FAULT_WIPE,
        SC_PLAIN),
    BCB("bcb-clock", "BCB sample, clocks at different speeds", MIR_SIM_FAULT_CLOCK, SC_PLAIN),
    BCB("bcb-byz-corrupt", "BCB sample, node 3 corrupts, drops, replays and delays",
        MIR_SIM_FAULT_DELAY, SC_CORRUPT),
    BCB("bcb-byz-equivocate", "BCB sample, the leader equivocates and certifies both values",
        F_DELAY_REORDER, SC_EQUIVOCATE),
    BCB("bcb-swarm", "BCB sample, the seed picks the faults and their rates", F_SWARM, SC_PLAIN),
    PP("pingpong-none", "pingpong sample, 2 nodes, no faults", 0, SC_PLAIN),
    PP("pingpong-delay", "pingpong sample under long-tailed delays and reordering", F_DELAY_REORDER,
       SC_PLAIN),
    PP("pingpong-drop", "pingpong sample, messages dropped until the faults heal",
       MIR_SIM_FAULT_DROP, SC_PLAIN),
    PP("pingpong-duplicate", "pingpong sample, messages duplicated", MIR_SIM_FAULT_DUPLICATE,
       SC_PLAIN),
    PP("pingpong-partition", "pingpong sample, partitions that heal", MIR_SIM_FAULT_PARTITION,
       SC_PLAIN),
    PP("pingpong-crash", "pingpong sample, crashes and restarts", F_CRASH, SC_PLAIN),
    PP("pingpong-clock", "pingpong sample, clocks at different speeds", MIR_SIM_FAULT_CLOCK,
       SC_PLAIN),
    PP("pingpong-byz-corrupt", "pingpong sample, node 1 corrupts, drops, replays and delays",
       MIR_SIM_FAULT_DELAY, SC_CORRUPT),
    PP("pingpong-swarm", "pingpong sample, the seed picks the faults and their rates", F_SWARM,
       SC_PLAIN),
    TRANTOR("trantor-1", "Trantor, 1 replica, no faults", 0, SCT_V_1),
    TRANTOR("trantor-4", "Trantor, 4 replicas, no faults", 0, SCT_V_4),
    TRANTOR("trantor-7", "Trantor, 7 replicas, no faults", 0, SCT_V_7),
    TRANTOR("trantor-4-delay", "Trantor, 4 replicas, long-tailed delays and reordering",
            F_DELAY_REORDER, SCT_V_4),
    TRANTOR("trantor-4-drop", "Trantor, 4 replicas, messages dropped until the faults heal",
            MIR_SIM_FAULT_DROP, SCT_V_4),
    TRANTOR("trantor-4-crash-f", "Trantor, 4 replicas, f = 1 crashes for good; delays, drops",
            F_DELAY_REORDER | MIR_SIM_FAULT_DROP, SCT_V_4_CRASH),
    TRANTOR("trantor-7-crash-f", "Trantor, 7 replicas, f = 2 crash for good; delays",
            F_DELAY_REORDER, SCT_V_7_CRASH),
    TRANTOR("trantor-4-slow-leader",
            "Trantor, 4 replicas, a leader slower than the view-change timeout; delays",
            F_DELAY_REORDER, SCT_V_SLOW_LEADER),
    TRANTOR("trantor-4-partition-rejoin",
            "Trantor, 4 replicas, one cut off, back within the retained epochs; delays, duplicates",
            F_DELAY_REORDER | MIR_SIM_FAULT_DUPLICATE, SCT_V_PARTITION),
    TRANTOR("trantor-4-partition-transfer",
            "Trantor, 4 replicas, one cut off beyond the retained epochs (state transfer)", 0,
            SCT_V_PARTITION_LONG),
    TRANTOR("trantor-4-equivocate",
            "Trantor, 4 replicas, a leader equivocates and votes both ways; delays, drops, dups",
            F_DELAY_REORDER | MIR_SIM_FAULT_DROP | MIR_SIM_FAULT_DUPLICATE, SCT_V_EQUIVOCATE),
    TRANTOR("trantor-4-byz-corrupt",
            "Trantor, 4 replicas, replica 3 drops, corrupts, replays and delays; delays",
            F_DELAY_REORDER, SCT_V_CORRUPT),
    TRANTOR("trantor-4-weighted-minority-crash",
            "Trantor, weights 3,2,2,1, crashed replicas hold less than a third; delays, drops",
            F_DELAY_REORDER | MIR_SIM_FAULT_DROP, SCT_V_WEIGHT_MINORITY),
    TRANTOR("trantor-4-weighted-majority-crash",
            "Trantor, weights 3,2,2,1, crashed replicas hold more than a third (safety only)",
            F_DELAY_REORDER | MIR_SIM_FAULT_DROP, SCT_V_WEIGHT_MAJORITY),
    TRANTOR("trantor-4-swarm", "Trantor, 4 replicas, the seed picks the faults and their rates",
            F_SWARM, SCT_V_SWARM),
    TRANTOR_BUG("trantor-4-bug-collude",
                "PLANTED BUG: f + 1 replicas equivocate together, beyond f (must fail)",
                F_DELAY_REORDER, SCT_V_COLLUDE),
    TRANTOR("trantor-4-long", "Trantor, 4 replicas, 100+ epochs with memory bounds checked", 0,
            SCT_V_LONG),
    TRANTOR("trantor-4-crash-restart",
            "Trantor, 4 replicas, any set of them (up to all) crash and restart with their store; "
            "delays",
            MIR_SIM_FAULT_DELAY, SCT_V_4_RESTART),
    TRANTOR("trantor-7-crash-restart",
            "Trantor, 7 replicas, any set of them (up to all) crash and restart with their store",
            0, SCT_V_7_RESTART),
    TRANTOR("trantor-4-swarm-restart",
            "Trantor, 4 replicas, the seed picks the faults; crash waves and torn unsynced writes",
            F_SWARM | MIR_SIM_FAULT_TORN, SCT_V_SWARM_RESTART),
    TRANTOR("trantor-4-idle",
            "Trantor, 4 replicas, two bursts of load, the second to f + 1 replicas: quiet while "
            "idle (no batch, epoch or write), live again after; delays",
            MIR_SIM_FAULT_DELAY, SCT_V_IDLE),
    TRANTOR("trantor-4-slow-disk",
            "Trantor, 4 replicas whose every sync takes 150-300 ms (a saturated machine): no "
            "view change, since no leader is faulty",
            0, SCT_V_SLOW_DISK),
    TRANTOR_BUG("trantor-4-idle-trickle",
                "CHECK OF THE CHECK: transactions trickle in while the idle check runs (must fail)",
                MIR_SIM_FAULT_DELAY, SCT_V_IDLE_TRICKLE),
    TRANTOR_BUG("trantor-4-bug-unsynced",
                "PLANTED BUG: votes leave before their write is durable; crash waves (must fail)",
                0, SCT_V_BUG_UNSYNCED),
};

const mir_sim_scenario *mir_sim_scenarios(size_t *n) {
  *n = sizeof sc_table / sizeof sc_table[0];
  return sc_table;
}

const mir_sim_scenario *mir_sim_scenario_find(const char *name) {
  for (size_t i = 0; i < sizeof sc_table / sizeof sc_table[0]; i++) {
    if (strcmp(sc_table[i].name, name) == 0) return &sc_table[i];
  }
  return NULL;
}

void sc_generic_byz(mir_sim_byz_generic *g) {
  mir_sim_byz_generic_clear(g);
  g->drop_ppm = 100000;
  g->delay_ppm = 200000;
  g->delay_max_ns = 200 * MIR_SIM_NS_PER_MS;
  g->duplicate_ppm = 100000;
  g->corrupt_ppm = 300000;
  g->replay_ppm = 100000;
}
