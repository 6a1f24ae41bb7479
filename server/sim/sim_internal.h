/*
 * Internals of the simulator shared by its files: the simulation, its nodes, the action heap, the
 * delivery book-keeping for the checkers, and the hashing behind the trace hash.
 */
#ifndef MIR_SIM_INTERNAL_H
#define MIR_SIM_INTERNAL_H

#include <stdarg.h>

#include "mir/node.h"
#include "mir/recorder.h"
#include "mir/sim.h"
#include "mir/storage.h"

/* Streams of the generator: each purpose draws from its own, so that a change in how often one
 * purpose draws does not reshuffle the others. */
enum {
  MIRI_SIM_STREAM_SCHED = 1,
  MIRI_SIM_STREAM_NET = 2,
  MIRI_SIM_STREAM_PLAN = 3,
  MIRI_SIM_STREAM_BYZ = 4,
  MIRI_SIM_STREAM_CLOCK = 5,
  MIRI_SIM_STREAM_SCENARIO = 6,
  MIRI_SIM_STREAM_PROFILE = 7,
  MIRI_SIM_STREAM_STORE = 8
};

/* ---- scheduled actions ---- */

typedef enum miri_sim_act_kind {
  MIRI_ACT_DELIVER = 0, /* msg from `from` arrives at `node` */
  MIRI_ACT_TIMER = 1,   /* events of a timer of `node` (incarnation) fire */
  MIRI_ACT_FAULT = 2,   /* a scheduled fault */
  MIRI_ACT_SUBMIT = 3,  /* a client submission is due */
  MIRI_ACT_SYNC = 4     /* the store sync in flight of `node` (incarnation) completes */
} miri_sim_act_kind;

typedef struct miri_sim_action {
  uint64_t at_ns;
  uint64_t seq; /* ties at equal times go in scheduling order */
  miri_sim_act_kind kind;
  uint32_t node;
  uint32_t from;
  uint64_t incarnation;    /* TIMER, SYNC: the node incarnation that set it */
  uint64_t period_ms;      /* TIMER: 0 for a delay */
  uint64_t retention;      /* TIMER: repeats only */
  mir_event_list events;   /* TIMER: owned */
  Mir__PackedMessage *msg; /* DELIVER: owned */
  mir_sim_fault fault;     /* FAULT */
  size_t submission;       /* SUBMIT */
} miri_sim_action;

typedef struct miri_sim_heap {
  miri_sim_action **items;
  size_t len, cap, max;
  uint64_t seq;
} miri_sim_heap;

/* ---- a map from uint64 keys to uint64 values (open addressing, grows) ---- */

typedef struct miri_sim_map {
  uint64_t *keys;
  uint64_t *vals;
  uint8_t *used;
  size_t len, cap;
} miri_sim_map;

void miri_sim_map_free(miri_sim_map *m);
void miri_sim_map_clear(miri_sim_map *m);
/* Sets key to val (replacing). */
void miri_sim_map_put(miri_sim_map *m, uint64_t key, uint64_t val);
bool miri_sim_map_get(const miri_sim_map *m, uint64_t key, uint64_t *val);

/* ---- delivered and submitted values ---- */

typedef struct miri_sim_value {
  uint8_t *data;
  size_t len;
} miri_sim_value;

typedef struct miri_sim_submission {
  uint32_t node;
  uint64_t value; /* id in the value pool */
  bool due;       /* its time has come */
  bool injected;  /* handed to the node at least once */
} miri_sim_submission;

/* ---- store writes waiting for their sync ---- */

typedef struct miri_sim_write {
  Mir__StoreWrite *w;  /* owned: the ops (the then events are unpacked below) */
  mir_event_list then; /* owned: released once the write is durable */
  size_t bytes;        /* mir_storage_bytes(w) */
} miri_sim_write;

/* ---- nodes ---- */

typedef struct miri_sim_node {
  mir_sim *sim;
  size_t index;
  char id[16];
  mir_node *mn; /* NULL while down */
  /* Owned: the node's metrics over every incarnation. The running node's tree hangs below it;
   * a crash folds that tree's counters and histograms into it before the node is freed. */
  mir_metrics *metrics;
  bool started; /* built at least once */
  bool byz;
  bool wiped; /* restarted with a wiped store at least once */
  uint64_t incarnation;
  uint32_t clock_ppm;
  uint64_t timer_retention;
  size_t timers_pending;
  size_t pending[MIR_NODE_MODULES_MAX]; /* injected events per module, not yet routed */
  mir_sim_byz_fn byz_fn;
  void *byz_user;
  mir_sim_store *store;
  miri_sim_write *writes; /* unsynced writes in FIFO order: [0, sync_n) are in the sync */
  size_t n_writes, cap_writes;
  size_t writes_bytes; /* key and value bytes of writes[] */
  size_t sync_n;       /* writes the sync in flight covers; 0: no sync in flight */
  mir_recorder *rec;
  mir_interceptor rec_icpt;
  uint64_t link_last_ns[MIR_SIM_NODES_MAX]; /* FIFO: latest arrival scheduled per destination */
  bool blocked_to[MIR_SIM_NODES_MAX];
  miri_sim_map pos_value; /* position -> value id delivered there */
  miri_sim_map value_pos; /* value id -> first position it was delivered at */
  miri_sim_map pos_inc;   /* position -> incarnation that (last) delivered it */
} miri_sim_node;

typedef struct miri_sim_checker {
  mir_sim_check_fn fn;
  void *user;
} miri_sim_checker;

/* The cells of the simulator's counters (sim.c registers them; names in sim.h). */
typedef struct miri_sim_counters {
  mir_counter *steps, *batches, *events;
  mir_counter *sent, *delivered, *duplicated;
  mir_counter *lost_dropped, *lost_partitioned, *lost_down, *unknown_dest;
  mir_counter *timers, *crashes, *restarts, *partitions;
  mir_counter *deliveries, *redeliveries;
  mir_counter *store_writes, *store_syncs, *store_lost, *store_torn;
} miri_sim_counters;

struct mir_sim {
  mir_sim_config cfg;
  char *record_dir;
  mir_sim_rng sched, net, plan, byz, clock, scenario, store;
  uint64_t now_ns;
  miri_sim_heap heap;
  miri_sim_node nodes[MIR_SIM_NODES_MAX];
  bool started;
  bool over;
  bool failed;
  char failure[MIR_SIM_FAILURE_MAX];
  /* Owned: the simulator's own counters (mir_sim_metrics), a set of its own. */
  mir_metrics *metrics;
  miri_sim_counters c;
  uint64_t steps;         /* scheduler steps, against cfg.steps_max (also counted in c.steps) */
  uint64_t deliveries;    /* reported deliveries, against MIR_SIM_DELIVERIES_MAX (and c) */
  uint64_t trace_hash;    /* running hash of every applied batch (mir_sim_trace_hash) */
  uint64_t last_fault_ns; /* latest scheduled fault */
  size_t submits_due;     /* submissions not yet injected */
  bool dl_dirty;          /* deliveries or node states changed since dl_all was computed */
  bool dl_all;            /* every required submission delivered by every validity node */
  uint32_t *cands;        /* scratch: runnable (node << 16 | module) pairs */

  miri_sim_value *values; /* value pool: distinct values seen */
  size_t n_values, cap_values;
  miri_sim_map value_index; /* hash -> first value id with that hash (chains by probing) */
  miri_sim_map agreed;      /* position -> value id first delivered by a correct node */
  miri_sim_submission *subs;
  size_t n_subs, cap_subs;

  miri_sim_checker checkers[MIR_SIM_CHECKERS_MAX];
  size_t n_checkers;

  uint8_t *scratch; /* packing buffer for the trace hash */
  size_t scratch_cap;
};

/* ---- hashing (not cryptographic: the trace fingerprint and the value pool) ---- */

uint64_t miri_sim_hash_bytes(uint64_t h, const void *data, size_t len);
uint64_t miri_sim_hash_u64(uint64_t h, uint64_t v);

/* ---- heap (heap.c) ---- */

void miri_sim_heap_init(miri_sim_heap *h, size_t max);
void miri_sim_heap_free(miri_sim_heap *h);
/* Schedules a (takes ownership; a->seq is assigned). MIR_EFULL (a freed) past the bound. */
mir_err miri_sim_heap_push(miri_sim_heap *h, miri_sim_action *a);
miri_sim_action *miri_sim_heap_pop(miri_sim_heap *h);
static inline const miri_sim_action *miri_sim_heap_top(const miri_sim_heap *h) {
  return h->len ? h->items[0] : NULL;
}
/* Frees an action and whatever it owns. */
void miri_sim_action_free(miri_sim_action *a);
/* A zeroed action (owned). */
miri_sim_action *miri_sim_action_new(miri_sim_act_kind kind, uint64_t at_ns);

/* ---- sim.c ---- */

/* Schedules a; failure (past actions_max) fails the run. Takes ownership. */
void miri_sim_schedule(mir_sim *sim, miri_sim_action *a);
/* Injects events (takes ownership) into node i, counting them per destination module. */
mir_err miri_sim_inject(mir_sim *sim, size_t i, mir_event_list *events);
/* Prints one trace line if a trace is set (format is identical for identical runs). */
void miri_sim_trace(mir_sim *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Boots or reboots node i. */
mir_err miri_sim_node_boot(mir_sim *sim, size_t i, bool restart);

/* ---- net.c ---- */

/* Hands msg (borrowed) from node `from` to every destination id of dests. */
void miri_sim_net_send(mir_sim *sim, size_t from, char *const *dests, size_t n,
                       const Mir__PackedMessage *msg);
/* Puts msg (takes ownership) from -> to on the wire through the fault model. */
void miri_sim_net_enqueue(mir_sim *sim, size_t from, size_t to, Mir__PackedMessage *msg,
                          uint64_t extra_ns);
/* Executes a due DELIVER action (takes ownership). */
void miri_sim_net_deliver(mir_sim *sim, miri_sim_action *a);

/* ---- timer.c ---- */

/* Executes a due TIMER action (takes ownership; repeats are rescheduled). */
void miri_sim_timer_fire(mir_sim *sim, miri_sim_action *a);

/* ---- store.c ---- */

/* Executes a due SYNC action (takes ownership): applies the covered writes, releases their then
 * events and starts the next sync. Discarded if the node restarted or is down. */
void miri_sim_store_sync_done(mir_sim *sim, miri_sim_action *a);
/* Decides the fate of node i's unsynced writes at a crash (lost, or a prefix kept when the crash
 * tears) and frees them; writes a note for the trace into buf ("" if there were none). */
void miri_sim_store_crash(mir_sim *sim, size_t i, char *buf, size_t cap);
/* Frees node i's unsynced writes without applying any (wipe, mir_sim_free). */
void miri_sim_store_drop(mir_sim *sim, size_t i);

/* ---- check.c ---- */

/* Interns value (copied) and returns its id. */
uint64_t miri_sim_value_intern(mir_sim *sim, const void *value, size_t len);
/* Forgets node i's deliveries (a wiped node starts from scratch). */
void miri_sim_forget_deliveries(mir_sim *sim, size_t i);
/* Runs the final checks. */
void miri_sim_check_final(mir_sim *sim);
/* Runs the custom checkers (final == false). */
void miri_sim_check_step(mir_sim *sim);
/* Re-injects node i's submissions it has not delivered (after a restart). */
void miri_sim_resubmit(mir_sim *sim, size_t i);
/* Injects a due submission. */
void miri_sim_submit_fire(mir_sim *sim, size_t k);
void miri_sim_check_free(mir_sim *sim);

/* ---- fault application (faults.c) ---- */

void miri_sim_fault_apply(mir_sim *sim, const mir_sim_fault *f);

#endif
