/*
 * The deterministic simulator: N nodes in one thread, on a virtual clock, under faults, all
 * decided by one 64-bit seed.
 *
 * Each simulated node is an ordinary mir_node in MIR_NODE_MANUAL mode whose modules come from a
 * scenario's build callback. The simulator provides the edge modules that replace the real ones
 * without changes to protocol modules: a transport (mir.SendMessage in, mir.MessageReceived out at
 * the destination), a timer (mir.TimerDelay, mir.TimerRepeat, mir.GarbageCollect), a synchronous
 * crypto module (mir.SignRequest, mir.VerifyRequest, mir.VerifyManyRequest), a hasher, an
 * in-memory key-value store that survives a crash (or is wiped), and a store module that writes
 * to it through the store contract (mir/storage.h: mir.StoreWrite, durable after a simulated
 * sync time, lost or torn by a crash before it).
 *
 * The run loop. At every step a seeded generator picks one runnable thing: a (node, module) pair
 * with queued events, which then applies one batch (mir_node_step_module), or the earliest
 * scheduled action if it is due now (a message delivery, a timer, a fault, a client submission).
 * Virtual time only moves when nothing is runnable: it jumps to the next scheduled action. Nothing
 * reads the real clock or real randomness, so the same seed and the same code give the same
 * schedule, the same event logs and the same trace. A step budget and a virtual-time budget bound
 * every run.
 *
 * Faults: message delay (uniform with a long tail), reordering (otherwise links are FIFO), drop,
 * duplication, partitions (one-way or two-way, healed at a time), node crash and restart (with
 * the node's store, or wiped; writes not yet synced are lost, or a prefix of them kept by a torn
 * crash), clock-speed differences (each node's timers run fast or slow, with
 * jitter), and Byzantine nodes: a per-node filter sees each outgoing message and may drop, delay,
 * duplicate, corrupt, replay or replace it per destination (equivocation). Random message faults,
 * partitions and crashes stop at heal_ns; after that only delays and reordering remain, so
 * liveness can be checked within a bound.
 *
 * Checkers: deliveries reported by a collector module (or mir_sim_report_delivery) are checked
 * for agreement (no two correct nodes deliver different values at one position) and duplicates
 * at once (a node restarted with its store may deliver a position again with the same value);
 * validity and liveness (every value submitted to a correct node is delivered by every
 * correct running node before the run's time budget, heal_ns + liveness_ns) at the end. A
 * scenario can add its own checks. The first violation stops the run.
 *
 * Everything here is single-threaded. Ownership follows mir/event.h; pointer arguments are
 * borrowed (valid for the duration of the call) unless a comment says otherwise.
 *
 * Libraries: mir_sim has everything below except the table of named scenarios
 * (mir_sim_scenarios, mir_sim_scenario_find), which lives in mir_sim_scenarios
 * (server/sim/scenarios) with the protocols it runs.
 */
#ifndef MIR_SIM_H
#define MIR_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mir/errors.h"
#include "mir/event.h"
#include "mir/node.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the seeded generator (xoshiro256**, seeded through splitmix64) ---- */

typedef struct mir_sim_rng {
  uint64_t s[4];
} mir_sim_rng;

/* Seeds rng from seed; every seed (0 included) gives a usable, distinct stream. */
void mir_sim_rng_init(mir_sim_rng *rng, uint64_t seed);
/* The next 64 random bits. */
uint64_t mir_sim_rng_next(mir_sim_rng *rng);
/* Uniform in [0, n) without modulo bias; n must be > 0 (asserted). */
uint64_t mir_sim_rng_below(mir_sim_rng *rng, uint64_t n);
/* Uniform in [lo, hi] (lo <= hi, asserted). */
uint64_t mir_sim_rng_range(mir_sim_rng *rng, uint64_t lo, uint64_t hi);
/* True with probability ppm / 1 000 000. */
bool mir_sim_rng_chance(mir_sim_rng *rng, uint32_t ppm);
/* An independent seed for stream `stream` of `seed` (splitmix64 of both). */
uint64_t mir_sim_seed_derive(uint64_t seed, uint64_t stream);

#define MIR_SIM_PPM 1000000u
#define MIR_SIM_NS_PER_MS 1000000ull

/* ---- limits ---- */

#define MIR_SIM_NODES_MAX 32                   /* nodes in one simulation */
#define MIR_SIM_ACTIONS_MAX_DEFAULT (1u << 20) /* scheduled actions (messages, timers, ...) */
#define MIR_SIM_TIMERS_MAX_DEFAULT 65536       /* pending timers per node */
#define MIR_SIM_SUBMISSIONS_MAX 4096           /* client submissions per run */
#define MIR_SIM_DELIVERIES_MAX (1u << 20)      /* reported deliveries per run */
#define MIR_SIM_VALUE_BYTES_MAX 4096           /* bytes of one submitted or delivered value */
#define MIR_SIM_CHECKERS_MAX 16                /* custom checkers */
#define MIR_SIM_FAILURE_MAX 512                /* bytes of the failure message */
#define MIR_SIM_PATH_MAX 1024                  /* bytes of a log directory path */

/* ---- configuration ---- */

/* Network behaviour. Drop and duplicate apply only before heal_ns. */
typedef struct mir_sim_net {
  uint64_t delay_min_ns; /* every message takes at least this long */
  uint64_t delay_max_ns; /* ... and at most this long (uniform), plus the tail */
  uint32_t tail_ppm;     /* chance that a message gets an extra delay of up to tail_max_ns */
  uint64_t tail_max_ns;
  bool reorder;           /* false: each directed link delivers in sending order (FIFO) */
  uint32_t drop_ppm;      /* chance a message is lost */
  uint32_t duplicate_ppm; /* chance a message is delivered twice (the copy has its own delay) */
} mir_sim_net;

/* Which signatures the crypto module makes. */
typedef enum mir_sim_crypto_kind {
  MIR_SIM_CRYPTO_FAKE = 0,   /* 64-byte tags from SHA-256 over (seed, signer, data): fast */
  MIR_SIM_CRYPTO_ED25519 = 1 /* real, deterministic Ed25519 from mir_keyset_new_pseudo */
} mir_sim_crypto_kind;

/* Which checks run. Agreement and duplicates are checked at every delivery; validity and
 * liveness at the end (they are one check: what was submitted must be delivered in time).
 * A node restarted with its store recovers and may replay: delivering a position again, with the
 * value it delivered there before, in a later incarnation is a re-delivery (counted in
 * mir_sim_redeliveries_total, mir_sim_metrics), not a duplicate; another value there is a
 * violation. */
typedef struct mir_sim_checks {
  bool agreement;       /* no two correct nodes deliver different values at one position */
  bool no_duplicates;   /* no correct node delivers at one position twice in one incarnation,
                           or another value there after a restart (or a value twice) */
  bool unique_values;   /* with no_duplicates: also flag one value delivered at two positions */
  bool validity;        /* every required submission is delivered by every correct running node */
  uint64_t liveness_ns; /* ... before heal_ns + liveness_ns (the run's time budget) */
} mir_sim_checks;

/* How the store module's writes become durable (mir_sim_add_store). Each node has one simulated
 * disk: its writes are synced in FIFO order, a sync covering every write queued when it starts
 * (group commit); a sync takes a delay drawn uniformly from [sync_min_ns, sync_max_ns] of virtual
 * time. A crash loses every write not yet synced, except that with probability torn_ppm per crash
 * a random prefix of them (whole writes) reaches the store anyway. */
typedef struct mir_sim_store_model {
  uint64_t sync_min_ns; /* at most MIR_SIM_STORE_SYNC_NS_MAX */
  uint64_t sync_max_ns;
  uint32_t torn_ppm; /* chance that a crash keeps a prefix of the unsynced writes */
  /* A planted bug, for showing that the checkers catch a broken store contract: release each
   * write's then events as soon as the write is accepted, before it is durable (a disk that
   * acknowledges before it syncs). The write itself is synced, lost or torn as usual. */
  bool release_early;
} mir_sim_store_model;

#define MIR_SIM_STORE_SYNC_NS_MAX (60000ull * MIR_SIM_NS_PER_MS)

typedef struct mir_sim mir_sim;

/* Builds the modules of node `node` (index) into `mn` (a new manual-mode node, not started; its
 * id is mir_sim_node_id(sim, node)). Add the simulator's edges with mir_sim_add_* and the
 * protocol's own modules with mir_node_add_module. restart is true when the node comes back
 * after a crash; its store is then the one it had (or empty, if wiped). An error fails the run. */
typedef mir_err (*mir_sim_build_fn)(void *user, mir_sim *sim, size_t node, mir_node *mn,
                                    bool restart);

/* Makes the event that hands a client's value (borrowed, len bytes) to node `node`: the
 * simulator injects it when the submission is due (and again after the node restarts, until the
 * node delivered the value). Returns owned, or NULL to skip. */
typedef mir_event *(*mir_sim_submit_fn)(void *user, mir_sim *sim, size_t node, const uint8_t *value,
                                        size_t len);

/* Runs after every batch of every node (final == false) and once at the end (final == true). A
 * violation is reported with mir_sim_fail; the return value is ignored beyond MIR_OK. */
typedef void (*mir_sim_check_fn)(void *user, mir_sim *sim, bool final);

typedef struct mir_sim_config {
  uint64_t seed;
  size_t nodes; /* 1..MIR_SIM_NODES_MAX */
  mir_sim_net net;
  uint32_t clock_min_ppm;    /* each node's clock speed is drawn from [min, max]; 1e6 = exact, */
  uint32_t clock_max_ppm;    /* 2e6 = timers fire after twice their delay */
  uint32_t timer_jitter_ppm; /* each timer's delay varies by up to this much either way */
  uint64_t heal_ns;          /* random faults stop here */
  uint64_t steps_max;        /* step budget (exhausting it is a failure: livelock) */
  size_t actions_max;        /* bound on scheduled actions */
  size_t timers_max;         /* bound on pending timers per node */
  mir_sim_crypto_kind crypto;
  mir_sim_store_model store; /* the store module's sync times and torn crashes */
  mir_sim_checks checks;
  size_t node_max_batch; /* max_batch of every node (0: the node default) */

  mir_sim_build_fn build; /* required */
  mir_sim_submit_fn submit;
  void *user; /* passed to the callbacks; borrowed, must outlive the simulation */

  const char *record_dir; /* non-NULL: record every node's events there (created if missing) */
  FILE *trace;            /* non-NULL: print every step (identical for identical seeds) */
} mir_sim_config;

/* Fills cfg with defaults: 4 nodes, delays of 1..5 ms on FIFO links, no faults, exact clocks,
 * heal_ns 0, agreement and duplicate checks on, validity with a 10 s liveness bound, 2 000 000
 * steps, fake crypto, store syncs of 200 us..2 ms and no torn crashes. build stays NULL. */
void mir_sim_config_default(mir_sim_config *cfg);

/* ---- fault classes and profiles (swarm testing) ---- */

typedef enum mir_sim_fault_class {
  MIR_SIM_FAULT_DELAY = 1u << 0,     /* wide delays with a long tail */
  MIR_SIM_FAULT_REORDER = 1u << 1,   /* links are not FIFO */
  MIR_SIM_FAULT_DROP = 1u << 2,      /* messages are lost */
  MIR_SIM_FAULT_DUPLICATE = 1u << 3, /* messages arrive twice */
  MIR_SIM_FAULT_PARTITION = 1u << 4, /* one-way and two-way partitions, healed later */
  MIR_SIM_FAULT_CRASH = 1u << 5,     /* crash and restart with the store */
  MIR_SIM_FAULT_WIPE = 1u << 6,      /* crash and restart with a wiped store (the node is faulty) */
  MIR_SIM_FAULT_CLOCK = 1u << 7,     /* clocks run at different speeds, timers jitter */
  MIR_SIM_FAULT_SWARM = 1u << 8,     /* the seed picks a subset of the other classes and rates */
  MIR_SIM_FAULT_TORN = 1u << 9       /* crashes tear the tail of unsynced writes */
} mir_sim_fault_class;

/* Every fault class (not SWARM, which is a mode). TORN joined later than the others; swarm mode
 * draws it after everything the others draw, so the older classes' picks and rates per seed are
 * what they were before it existed. */
#define MIR_SIM_FAULT_ALL (0xffu | MIR_SIM_FAULT_TORN)

/* Sets cfg's network, clock and heal settings for the fault classes (a mask), with rates drawn
 * from seed (its own stream). With MIR_SIM_FAULT_SWARM the seed also picks the classes among
 * `classes`. Returns the classes in effect (for partitions and crashes, pass them to
 * mir_sim_plan_faults). */
unsigned mir_sim_profile_apply(mir_sim_config *cfg, unsigned classes, uint64_t seed);

/* Writes the names of the classes in mask ("drop+partition", "none") into buf (cap bytes). */
void mir_sim_fault_classes_format(unsigned mask, char *buf, size_t cap);

/* ---- lifecycle ---- */

/* Creates a simulation: seeds its streams, draws each node's clock speed and opens the recorders
 * (record_dir). The nodes are built with cfg->build and started at the first step, so that the
 * scenario can plan faults, mark Byzantine nodes and submit values first; a build error then
 * fails the run. cfg is copied (record_dir too; callbacks, user and trace borrowed). MIR_EINVAL
 * for a bad config (detail in mir_error_detail()), MIR_EIO if a recorder cannot open its file.
 * *out is owned (free with mir_sim_free). */
mir_err mir_sim_new(const mir_sim_config *cfg, mir_sim **out);

/* Frees every node, scheduled action, store and recorder (closing the logs). NULL is a no-op. */
void mir_sim_free(mir_sim *sim);

/* ---- the scenario's plan (call after mir_sim_new, before or during the run) ---- */

typedef enum mir_sim_fault_kind {
  MIR_SIM_PARTITION = 0, /* block messages from `side` to the rest (and back, unless one_way) */
  MIR_SIM_HEAL = 1,      /* lift every partition */
  MIR_SIM_CRASH = 2,     /* node stops; its queued events, timers, in-memory state and unsynced
                            writes are lost (a torn crash keeps a prefix of the writes) */
  MIR_SIM_RESTART = 3    /* node is rebuilt (restart = true) with its store, or wiped */
} mir_sim_fault_kind;

typedef struct mir_sim_fault {
  mir_sim_fault_kind kind;
  uint64_t at_ns;
  uint64_t side; /* PARTITION: bit i set = node i on side A */
  bool one_way;  /* PARTITION: only A -> rest is blocked */
  size_t node;   /* CRASH, RESTART */
  bool wipe;     /* RESTART: the store is cleared and the node counts as faulty */
} mir_sim_fault;

/* Schedules a fault (copied). MIR_EINVAL for a bad node or side, MIR_EFULL past actions_max. */
mir_err mir_sim_schedule_fault(mir_sim *sim, const mir_sim_fault *fault);

/* Draws partitions and crashes for the classes in mask from the seed and schedules them, all
 * between 0 and heal_ns: at most `faulty_budget` nodes are ever wiped or Byzantine in total (the
 * nodes already marked Byzantine count), and every crashed node is restarted before heal_ns. */
mir_err mir_sim_plan_faults(mir_sim *sim, unsigned mask, size_t faulty_budget);

/* Submits value (copied, at most MIR_SIM_VALUE_BYTES_MAX bytes) to node at virtual time at_ns
 * through cfg->submit. If the node is correct the value becomes required for validity. While the
 * node is down the submission waits for its restart. MIR_EFULL past MIR_SIM_SUBMISSIONS_MAX. */
mir_err mir_sim_submit(mir_sim *sim, uint64_t at_ns, size_t node, const void *value, size_t len);

/* Adds a checker (fn and user borrowed). MIR_EFULL past MIR_SIM_CHECKERS_MAX. */
mir_err mir_sim_add_checker(mir_sim *sim, mir_sim_check_fn fn, void *user);

/* ---- Byzantine nodes ---- */

/* What a Byzantine filter works with while it handles one outgoing message. */
typedef struct mir_sim_byz mir_sim_byz;

/* Sees each message node `from` sends to node `to` (msg borrowed, valid until the call returns).
 * The filter decides what goes on the wire with mir_sim_byz_send (any number of times, to any
 * node, possibly changed); sending nothing drops the message. */
typedef void (*mir_sim_byz_fn)(void *user, mir_sim_byz *byz, size_t from, size_t to,
                               const Mir__PackedMessage *msg);

/* Makes node Byzantine: its outgoing messages go through fn (user borrowed, must outlive the
 * simulation); fn may be NULL for a node made Byzantine by its own modules (the build callback
 * gives it a misbehaving module set). The node's deliveries are not checked and nothing
 * submitted to it is required. Call before the run starts or at any time during it. */
void mir_sim_set_byzantine(mir_sim *sim, size_t node, mir_sim_byz_fn fn, void *user);

/* Puts msg (takes ownership) on the wire to node `to`, with extra_ns of delay on top of the
 * network's, through the normal fault model. */
void mir_sim_byz_send(mir_sim_byz *byz, size_t to, Mir__PackedMessage *msg, uint64_t extra_ns);
/* The Byzantine stream of the generator (borrowed). */
mir_sim_rng *mir_sim_byz_rng(mir_sim_byz *byz);
/* The simulation (borrowed), for the time and the node count. */
mir_sim *mir_sim_byz_sim(mir_sim_byz *byz);

/* Returns an owned deep copy of msg (free with protobuf_c_message_free_unpacked). */
Mir__PackedMessage *mir_sim_packed_clone(const Mir__PackedMessage *msg);

/* A generic misbehaving peer. Rates are per outgoing message. */
typedef struct mir_sim_byz_generic {
  uint32_t drop_ppm;  /* send nothing */
  uint32_t delay_ppm; /* send late, by up to delay_max_ns */
  uint64_t delay_max_ns;
  uint32_t duplicate_ppm; /* send twice */
  uint32_t corrupt_ppm;   /* flip bits or truncate the message's data */
  uint32_t replay_ppm;    /* also send an older message of this node to a random peer */
  /* Internal: the replay ring (up to 64 recent messages). Zero-initialise; free with
   * mir_sim_byz_generic_clear. */
  Mir__PackedMessage *ring[64];
  size_t ring_len, ring_next;
} mir_sim_byz_generic;

/* The filter for a mir_sim_byz_generic (pass the struct as user). */
void mir_sim_byz_generic_filter(void *user, mir_sim_byz *byz, size_t from, size_t to,
                                const Mir__PackedMessage *msg);
/* Frees the messages kept for replay. */
void mir_sim_byz_generic_clear(mir_sim_byz_generic *g);

/* Signs parts (borrowed) as node `signer` the way the simulation's crypto module does, for
 * Byzantine filters that forge their own node's messages. sig receives MIR_SIM_SIG_LEN bytes. */
#define MIR_SIM_SIG_LEN 64
mir_err mir_sim_sign(mir_sim *sim, size_t signer, const ProtobufCBinaryData *parts, size_t n,
                     uint8_t *sig);

/* ---- edge modules, for the build callback (each adds one module to mn under id) ---- */

/* The transport: serves mir.SendMessage (destinations are node ids; unknown ids are counted and
 * dropped) and delivers mir.MessageReceived at the destination. */
mir_err mir_sim_add_transport(mir_sim *sim, size_t node, mir_node *mn, const char *id);
/* The timer: same events and semantics as mir/timer.h, on the node's virtual clock. */
mir_err mir_sim_add_timer(mir_sim *sim, size_t node, mir_node *mn, const char *id);
/* The synchronous crypto module of cfg->crypto, bound to the node's identity. */
mir_err mir_sim_add_crypto(mir_sim *sim, size_t node, mir_node *mn, const char *id);
/* The hasher (mir/hasher.h; SHA-256 is deterministic and fast enough to run inline). */
mir_err mir_sim_add_hasher(mir_sim *sim, size_t node, mir_node *mn, const char *id);

/* Extracts a delivery from an event (borrowed): returns true and sets *position, *value (borrowed
 * from ev) and *len if ev is one. */
typedef bool (*mir_sim_extract_fn)(void *user, const mir_event *ev, uint64_t *position,
                                   const uint8_t **value, size_t *len);
/* The collector: a passive module that reports every delivery extract finds to the checkers and
 * ignores every other event. user is borrowed. */
mir_err mir_sim_add_collector(mir_sim *sim, size_t node, mir_node *mn, const char *id,
                              mir_sim_extract_fn extract, void *user);

/* Reports a delivery by node directly (for collectors of one's own). value is borrowed. */
void mir_sim_report_delivery(mir_sim *sim, size_t node, uint64_t position, const void *value,
                             size_t len);

/* ---- the store: an in-memory key-value map that outlives crashes (not wipes) ---- */

typedef struct mir_sim_store mir_sim_store;

#define MIR_SIM_STORE_KEYS_MAX 65536
#define MIR_SIM_STORE_BYTES_MAX ((size_t)64 << 20)
#define MIR_SIM_STORE_PENDING_MAX 65536 /* writes of one node waiting for their sync */

/* The store module of node: a passive module (it takes no peer messages) that serves
 * mir.StoreWrite (mir/storage.h) and nothing else (another event type stops the node, which
 * fails the run, as does a write mir_storage_check refuses or one past the bounds:
 * MIR_SIM_STORE_PENDING_MAX writes or MIR_SIM_STORE_BYTES_MAX bytes waiting). Writes become
 * durable as cfg->store describes: at the end of each sync the covered writes' ops are applied
 * in order to mir_sim_node_store(sim, node), then their `then` events are injected into the node
 * in order. A sync of an earlier incarnation of the node never completes: a crash decides the
 * fate of every unsynced write (lost, or kept by a torn crash, never released). */
mir_err mir_sim_add_store(mir_sim *sim, size_t node, mir_node *mn, const char *id);

/* The store of node (borrowed; the same object across restarts), for reading back what was
 * written before the node (re)starts, and for modules that persist directly: a direct
 * mir_sim_store_put is durable as soon as the call returns, so a module that writes before
 * emitting its sends persists before sending. The store module (mir_sim_add_store) is the path
 * with a sync delay, where a crash can lose or tear what was written. */
mir_sim_store *mir_sim_node_store(mir_sim *sim, size_t node);

/* Sets key (copied) to value (copied). MIR_EFULL past the key or byte bounds. */
mir_err mir_sim_store_put(mir_sim_store *st, const void *key, size_t key_len, const void *value,
                          size_t len);
/* Finds key: *value is borrowed until the next write to the store. */
bool mir_sim_store_get(const mir_sim_store *st, const void *key, size_t key_len, const void **value,
                       size_t *len);
/* Removes key; false if it was absent. */
bool mir_sim_store_delete(mir_sim_store *st, const void *key, size_t key_len);
/* Removes every key in [begin, end) (bytewise order, a shorter prefix first; both borrowed) and
 * returns how many; an empty or inverted range removes nothing. */
size_t mir_sim_store_delete_range(mir_sim_store *st, const void *begin, size_t blen,
                                  const void *end, size_t elen);
size_t mir_sim_store_count(const mir_sim_store *st);
/* The i-th entry in key order: false if i >= count, else *key and *val are borrowed until the
 * next write to the store (any out-pointer may be NULL). */
bool mir_sim_store_at(const mir_sim_store *st, size_t i, const uint8_t **key, size_t *klen,
                      const uint8_t **val, size_t *vlen);
void mir_sim_store_clear(mir_sim_store *st);
/* Creates and frees a stand-alone store (tests). Returns owned (free with mir_sim_store_free). */
mir_sim_store *mir_sim_store_new(void);
void mir_sim_store_free(mir_sim_store *st);

/* ---- running ---- */

/* Runs one step (see the file comment). *progress is false once the run is over: failure,
 * budget, or nothing left to do. */
mir_err mir_sim_step(mir_sim *sim, bool *progress);

/* Runs until the first of: a failure, virtual time passing until_ns, nothing left to do, the step
 * budget. Returns MIR_OK (check mir_sim_failed) or MIR_EINVAL if misused. */
mir_err mir_sim_run_until(mir_sim *sim, uint64_t until_ns);

/* Runs the whole scenario: until every required submission is delivered everywhere after the
 * last scheduled fault, or the time budget (heal_ns + checks.liveness_ns) ends; then runs the
 * final checks. */
mir_err mir_sim_run(mir_sim *sim);

/* Records a violation (the first one wins) and stops the run. */
void mir_sim_fail(mir_sim *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Crash, restart, partition and heal right now (tests; scenarios schedule faults instead). */
mir_err mir_sim_crash(mir_sim *sim, size_t node);
mir_err mir_sim_restart(mir_sim *sim, size_t node, bool wipe);
mir_err mir_sim_partition(mir_sim *sim, uint64_t side, bool one_way);
void mir_sim_heal(mir_sim *sim);

/* ---- inspection ---- */

/* The simulator's own counters: a set of its own (metrics.h), not below any node's. Borrowed, valid
 * until mir_sim_free; read with mir_metrics_read. Names:
 *   mir_sim_steps_total, mir_sim_batches_total, mir_sim_events_total   scheduler steps, batches
 *                                                                       and events applied
 *   mir_sim_messages_sent_total          handed to the network (after Byzantine filters)
 *   mir_sim_messages_delivered_total     delivered to a node
 *   mir_sim_messages_duplicated_total    extra copies made by duplicate faults
 *   mir_sim_messages_lost_total{reason}  "dropped" (drop faults), "partitioned", "down" (the
 *                                        destination), "unknown_destination" (not a node id, or
 *                                        a bad module id)
 *   mir_sim_timers_fired_total, mir_sim_crashes_total, mir_sim_restarts_total,
 *   mir_sim_partitions_total
 *   mir_sim_deliveries_total             deliveries the nodes reported
 *   mir_sim_redeliveries_total           ... of a position again, same value, after a restart
 *                                        with the store
 *   mir_sim_store_writes_total           mir.StoreWrite accepted by store modules
 *   mir_sim_store_syncs_total            syncs completed
 *   mir_sim_store_writes_lost_total      writes lost by crashes before their sync completed
 *   mir_sim_store_writes_torn_total      unsynced writes that torn crashes kept (never
 *                                        acknowledged)
 * The nodes' own numbers are in mir_sim_node_metrics. */
const mir_metrics *mir_sim_metrics(const mir_sim *sim);

/* The running hash of every applied batch (virtual time, node, module, events): the same seed
 * gives the same hash. */
uint64_t mir_sim_trace_hash(const mir_sim *sim);

uint64_t mir_sim_now(const mir_sim *sim);
uint64_t mir_sim_seed(const mir_sim *sim);
/* The configured heal time: random faults stop there. */
uint64_t mir_sim_heal_ns(const mir_sim *sim);
size_t mir_sim_node_count(const mir_sim *sim);
/* Node i's id ("0", "1", ...), borrowed for the simulation's life; NULL past the count. */
const char *mir_sim_node_id(const mir_sim *sim, size_t i);
/* Node index of id (borrowed), or -1. */
int mir_sim_node_index(const mir_sim *sim, const char *id);
/* Node i's mir_node while it runs (borrowed until it crashes), else NULL. */
mir_node *mir_sim_node(mir_sim *sim, size_t i);
bool mir_sim_node_up(const mir_sim *sim, size_t i);
/* Node i's metrics over every incarnation (borrowed for the simulation's life; NULL past the
 * count): counters and histograms of crashed incarnations are folded in, and the running node's
 * tree (mir_node_metrics) hangs below, so mir_metrics_read gives run totals; gauges are those of
 * the running incarnation. */
const mir_metrics *mir_sim_node_metrics(const mir_sim *sim, size_t i);
/* Not Byzantine and never wiped. */
bool mir_sim_node_correct(const mir_sim *sim, size_t i);
/* Node i's clock speed in ppm (1e6 = exact). */
uint32_t mir_sim_node_clock_ppm(const mir_sim *sim, size_t i);
/* The stream of the generator reserved for the scenario's own choices (borrowed). */
mir_sim_rng *mir_sim_scenario_rng(mir_sim *sim);
/* Injects events (takes ownership) into node i now: MIR_ESTOPPED (events freed) if it is down. */
mir_err mir_sim_inject(mir_sim *sim, size_t i, mir_event_list *events);

bool mir_sim_failed(const mir_sim *sim);
/* The first violation ("" if none); borrowed, valid until mir_sim_free. */
const char *mir_sim_failure(const mir_sim *sim);
/* True if every required submission was delivered by every correct running node. */
bool mir_sim_all_delivered(const mir_sim *sim);
/* Deliveries node i reported at position (the value of the first; NULL if none). */
const uint8_t *mir_sim_delivered_at(const mir_sim *sim, size_t i, uint64_t position, size_t *len);
/* Number of distinct positions node i delivered (since its last wipe). */
size_t mir_sim_delivered_count(const mir_sim *sim, size_t i);

/* ---- named scenarios and the seed runner (mir-sim, ctest) ---- */

typedef struct mir_sim_scenario mir_sim_scenario;
struct mir_sim_scenario {
  const char *name;        /* [a-z0-9-]+, unique */
  const char *description; /* one line */
  /* Fills cfg (already defaulted, seed set, record_dir and trace set by the runner) for seed. */
  mir_err (*configure)(const mir_sim_scenario *sc, mir_sim_config *cfg, void **run_state);
  /* Plans faults, Byzantine nodes, submissions and checkers on the new simulation. */
  mir_err (*setup)(const mir_sim_scenario *sc, mir_sim *sim, void *run_state);
  /* Frees what configure allocated (may be NULL). */
  void (*cleanup)(void *run_state);
  unsigned faults;     /* fault classes (mir_sim_fault_class) */
  int variant;         /* scenario-specific (Byzantine behaviour, planted bug, ...) */
  bool expect_failure; /* a planted bug: some seeds must fail */
};

typedef struct mir_sim_run_opts {
  const char *log_dir; /* where failing runs keep their logs (NULL: "mir-sim-logs") */
  const char *program; /* the command shown to reproduce (NULL: "build/bin/mir-sim") */
  bool keep_logs;      /* record every run and keep its logs, also on success */
  FILE *trace;         /* non-NULL: the full trace of every run */
  FILE *report;        /* non-NULL: failure reports (seed, reason, logs, command) */
} mir_sim_run_opts;

typedef struct mir_sim_result {
  bool ok;
  char failure[MIR_SIM_FAILURE_MAX];
  char log_path[MIR_SIM_PATH_MAX]; /* "" unless logs were kept */
  uint64_t now_ns;                 /* virtual time at the end */
  uint64_t trace_hash;             /* mir_sim_trace_hash at the end */
  mir_metrics *metrics; /* owned: the simulator's counters at the end (mir_sim_metrics's names);
                           release with mir_sim_result_fini */
} mir_sim_result;

/* Frees what res owns (its metrics) and clears it. A zeroed result is a no-op. */
void mir_sim_result_fini(mir_sim_result *res);

/* Runs scenario sc for one seed. On failure the run is repeated with recording on (the same seed
 * gives the same run; a different trace hash is reported as nondeterminism) and its logs are kept
 * under opts->log_dir/<name>-<seed>; on success recorded logs are deleted unless keep_logs.
 * Returns MIR_OK when the run completed (pass or fail: see res->ok), else a setup error; either
 * way res is the caller's to release with mir_sim_result_fini. */
mir_err mir_sim_scenario_run(const mir_sim_scenario *sc, uint64_t seed,
                             const mir_sim_run_opts *opts, mir_sim_result *res);

/* The built-in scenarios (library mir_sim_scenarios): a static table, borrowed; *n receives the
 * count. */
const mir_sim_scenario *mir_sim_scenarios(size_t *n);
/* The scenario named name (borrowed), or NULL. */
const mir_sim_scenario *mir_sim_scenario_find(const char *name);

#ifdef __cplusplus
}
#endif
#endif
