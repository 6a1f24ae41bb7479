/*
 * Trantor in the simulator (internal to the scenario library, and used by tests/sim): the
 * scenario family "trantor-*", the state of one run, and the report a run leaves behind.
 *
 * sc_trantor.c configures a run per variant (replicas, weights, faults, workload) and checks
 * it; sc_trantor_node.c builds one replica: the simulator's edges, Trantor's protocol modules
 * and a deterministic application; sc_trantor_byz.c holds the Byzantine filters.
 *
 * Every replica is built by trantor_system_add_modules, the production wiring. The checks read
 * the modules' metrics from the registry (PBFT view changes, live submodules of the factories,
 * mempool and batch fetcher occupancy, ISS epochs and garbage collection): gauges from the
 * running node's tree (mir_node_metrics), run totals from the simulator's per-node set
 * (mir_sim_node_metrics), into which a crashed incarnation's counters fold.
 */
#ifndef MIR_SIM_SC_TRANTOR_H
#define MIR_SIM_SC_TRANTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/sim.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Scenario variants (mir_sim_scenario.variant) of the trantor-* rows. */
enum {
  SCT_V_1 = 0,           /* one replica */
  SCT_V_4,               /* four replicas, the network of the row's fault classes */
  SCT_V_7,               /* seven replicas */
  SCT_V_4_CRASH,         /* four replicas, f = 1 of them crash for good */
  SCT_V_7_CRASH,         /* seven replicas, f = 2 of them crash for good */
  SCT_V_SLOW_LEADER,     /* replica 0 (a leader in every epoch) is slow until the faults heal */
  SCT_V_PARTITION,       /* one replica is cut off, then rejoins within the retained epochs */
  SCT_V_PARTITION_LONG,  /* ... beyond them: it catches up by state transfer */
  SCT_V_EQUIVOCATE,      /* replica 0 sends different Preprepares for one sn to different peers */
  SCT_V_CORRUPT,         /* replica 3 drops, delays, duplicates, corrupts and replays messages */
  SCT_V_COLLUDE,         /* planted bug: replicas 0 and 1 equivocate together, f + 1 > f */
  SCT_V_WEIGHT_MINORITY, /* weights 3,2,2,1: replicas holding at most f of the weight crash */
  SCT_V_WEIGHT_MAJORITY, /* weights 3,2,2,1: replicas holding more than a third crash */
  SCT_V_SWARM,           /* four replicas, the seed picks the faults */
  SCT_V_LONG,            /* four replicas for 100+ epochs, memory bounds checked throughout */
  SCT_V_4_RESTART,       /* four replicas, any set of them (all at times) crash and restart */
  SCT_V_7_RESTART,       /* seven replicas, the same */
  SCT_V_SWARM_RESTART,   /* four replicas, the seed picks the faults; crash waves, torn writes */
  SCT_V_BUG_UNSYNCED,    /* planted bug: the store releases votes before they are durable */
  SCT_V_IDLE,            /* four replicas, two bursts of load with an idle time between them */
  SCT_V_IDLE_TRICKLE,    /* check of the check: transactions trickle in while the idle one runs */
  SCT_V_SLOW_DISK,       /* four replicas whose every sync is slow: correct, and never suspected */
  SCT_V_COUNT
};

/* What a run leaves behind: counters read from the modules' statistics (over every replica
 * incarnation of the run, live and collected PBFT instances alike) and the largest values of the
 * bounded quantities, sampled every SCT_SAMPLE_MS of virtual time. */
typedef struct sc_trantor_report {
  uint64_t txs;            /* transactions submitted (each to every replica) */
  uint64_t delivered_min;  /* transactions delivered by the correct replica with the fewest */
  uint64_t epoch_min;      /* lowest epoch reached by a correct replica that is up */
  uint64_t epoch_max;      /* highest epoch reached by any replica */
  uint64_t view_changes;   /* PBFT view changes started, every replica */
  uint64_t new_views;      /* NewViews adopted, every replica */
  uint64_t transfers;      /* checkpoints installed by state transfer */
  uint64_t invalid_certs;  /* committed certificates availability rejected */
  uint64_t samples;        /* bound samples taken */
  uint64_t ordering_max;   /* live PBFT instances of one replica */
  uint64_t checkpoint_max; /* live checkpoint instances of one replica */
  uint64_t epoch_lag_max;  /* current epoch minus the garbage-collection index */
  uint64_t mempool_max;    /* pending transactions in one mempool */
  uint64_t requests_max;   /* batch requests waiting in one mempool */
  uint64_t fetcher_max;    /* entries queued in one batch fetcher */
  uint64_t buffered_max;   /* events buffered in one node (inbox and module queues) */
  uint64_t msgbuf_max;     /* bytes in one factory's early-message buffer */
} sc_trantor_report;

/* The scenario functions of the table (scenarios.c). */
mir_err sc_trantor_configure(const mir_sim_scenario *sc, mir_sim_config *cfg, void **state);
mir_err sc_trantor_setup(const mir_sim_scenario *sc, mir_sim *sim, void *state);
void sc_trantor_cleanup(void *state);

/* Copies the report of a run (state from sc_trantor_configure, borrowed) into out. It is complete
 * once mir_sim_run returned for a run that passed (its final check takes the last sample and adds
 * the counters); a failed run reports the samples taken until it failed. */
void sc_trantor_report_of(const void *state, sc_trantor_report *out);

/* ---- internal to sc_trantor*.c ---- */

#define SCT_NODES_MAX 7
#define SCT_CLIENTS_MAX 12
#define SCT_TXS_MAX 1024 /* MIR_SIM_SUBMISSIONS_MAX over 4 replicas */
#define SCT_SAMPLE_MS 100

typedef struct sct_run sct_run;

/* One replica's application: applies transactions in log order, reports each one to the
 * simulator's checkers at its position in the transaction log, and keeps a running hash and a
 * count as its state. fp[p] is a fingerprint of the value at position p and chain[p] the first
 * 8 bytes of the state after it (0: not seen), for the agreement check of replicas the simulator
 * does not check (Byzantine ones run honest modules and must agree too) and for state transfers:
 * a replica that restores a checkpoint has the transactions it skipped in its state, which it
 * proves by a state equal to a correct replica's at that position; it then reports them as
 * delivered (with that replica's values), so that validity holds for it too. */
typedef struct sct_app {
  sct_run *run;
  size_t node;
  uint64_t txs;      /* transactions applied: the next position */
  uint64_t reached;  /* the most transactions applied by any incarnation since the last wipe */
  uint8_t state[32]; /* running hash of every applied transaction */
  uint64_t epoch;    /* last epoch started */
  uint64_t batches;  /* batches applied by every incarnation (sns, empty ones too) */
  uint64_t restores; /* state transfers restored */
  uint64_t *fp;      /* SCT_TXS_MAX entries, owned */
  uint64_t *chain;   /* SCT_TXS_MAX entries, owned */
} sct_app;

struct sct_run {
  int variant;
  unsigned classes; /* fault classes in effect */
  size_t nodes;
  uint64_t weights[SCT_NODES_MAX];
  Trantor__Membership *membership; /* owned */
  trantor_params params;
  mir_sim *sim; /* borrowed during the run (set by the first build) */

  /* workload */
  size_t clients;
  size_t txs;
  uint64_t load_ns; /* submissions spread over [0, load_ns] */

  /* faults planned for the checks */
  uint64_t crashed;                 /* nodes crashed for good (bit mask) */
  uint64_t waves;                   /* crash waves planned (restart variants) */
  uint64_t crash_ns[SCT_NODES_MAX]; /* ... and when */
  size_t special;                   /* the slow, equivocating, corrupting or cut-off replica */
  uint64_t epochs_min;              /* required at the end (long runs) */

  /* the idle variant: what the replicas had done when the idle window began */
  bool idle_marked, idle_checked;
  uint64_t idle_settled_ns; /* when every replica had applied the first half (0: not yet) */
  uint64_t idle_from_ns;
  uint64_t idle_batches[SCT_NODES_MAX], idle_epoch[SCT_NODES_MAX];
  uint64_t idle_sent, idle_writes;

  sct_app apps[SCT_NODES_MAX];
  uint64_t last_sample_ns;
  bool sampled_once;
  sc_trantor_report rep;

  void *byz; /* the Byzantine filter's state (sc_trantor_byz.c), owned */
};

/* sc_trantor_node.c */
/* The build callback of every run (user is the sct_run). */
mir_err sct_build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart);
/* The submit callback: value "c<client>:<tx_no>" becomes that transaction at the replica's
 * mempool. Returns owned, or NULL for a value of another shape. */
mir_event *sct_submit(void *user, mir_sim *sim, size_t node, const uint8_t *value, size_t len);
/* Formats the value of transaction tx_no of client c into buf (cap bytes); returns its length. */
size_t sct_tx_value(size_t c, uint64_t tx_no, char *buf, size_t cap);
/* Frees what the applications of run own (nodes already freed). */
void sct_nodes_free(sct_run *run);
/* Samples every running replica's statistics into run->rep; a bound exceeded fails the run. */
void sct_sample(sct_run *run, mir_sim *sim);
/* Adds the counters of every replica incarnation (PBFT view changes and NewViews, ISS state
 * transfers and invalid certificates), read from sim's registry sets, to r. */
void sct_count(const sct_run *run, const mir_sim *sim, sc_trantor_report *r);

/* sc_trantor_byz.c */
/* Marks run->special Byzantine with the filter of the run's variant (slow, equivocating or
 * corrupting). */
void sct_byz_install(sct_run *run, mir_sim *sim);
/* Frees run->byz. */
void sct_byz_free(sct_run *run);

#ifdef __cplusplus
}
#endif
#endif
