/*
 * The simulation: nodes, the virtual clock and the run loop.
 *
 * A step picks, with the scheduling stream of the generator, one of the runnable things: a
 * (node, module) pair with queued events, or the earliest scheduled action when it is due now.
 * When nothing is runnable, virtual time jumps to the next action. Events injected into a node
 * sit in its inbox until its next step routes them, so the simulator counts them per destination
 * module itself (pending[]) to know which modules have work.
 *
 * Invariants: now_ns never decreases; every action in the heap is due at or after now_ns; a node
 * is up iff mn != NULL; pending[] is zero right after any step of the node; once `over` is set
 * nothing runs any more. Every choice that shapes the run comes from the seed, and the trace
 * prints only values derived from it (never pointers or real time), so identical seeds give
 * identical traces and event logs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "sim_internal.h"

#define SIM_TRACE_TYPES_MAX 8 /* event types listed per batch in the trace */

void mir_sim_config_default(mir_sim_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->nodes = 4;
  cfg->net.delay_min_ns = 1 * MIR_SIM_NS_PER_MS;
  cfg->net.delay_max_ns = 5 * MIR_SIM_NS_PER_MS;
  cfg->clock_min_ppm = MIR_SIM_PPM;
  cfg->clock_max_ppm = MIR_SIM_PPM;
  cfg->steps_max = 2000000;
  cfg->actions_max = MIR_SIM_ACTIONS_MAX_DEFAULT;
  cfg->timers_max = MIR_SIM_TIMERS_MAX_DEFAULT;
  cfg->crypto = MIR_SIM_CRYPTO_FAKE;
  cfg->store.sync_min_ns = 200 * 1000;
  cfg->store.sync_max_ns = 2 * MIR_SIM_NS_PER_MS;
  cfg->checks.agreement = true;
  cfg->checks.no_duplicates = true;
  cfg->checks.validity = true;
  cfg->checks.liveness_ns = 10000 * MIR_SIM_NS_PER_MS;
}

static mir_err sim_config_check(const mir_sim_config *c) {
  if (c->nodes == 0 || c->nodes > MIR_SIM_NODES_MAX) {
    return mir_error_set(MIR_EINVAL, "sim: nodes must be 1..%d", MIR_SIM_NODES_MAX);
  }
  if (c->build == NULL) return mir_error_set(MIR_EINVAL, "sim: a build callback is required");
  if (c->net.delay_min_ns > c->net.delay_max_ns) {
    return mir_error_set(MIR_EINVAL, "sim: delay_min_ns exceeds delay_max_ns");
  }
  if (c->clock_min_ppm == 0 || c->clock_min_ppm > c->clock_max_ppm ||
      c->clock_max_ppm > 100 * MIR_SIM_PPM || c->timer_jitter_ppm >= MIR_SIM_PPM) {
    return mir_error_set(MIR_EINVAL,
                         "sim: clock speeds must satisfy 0 < min <= max <= 100x and "
                         "jitter < 1e6 ppm");
  }
  if (c->store.sync_min_ns > c->store.sync_max_ns ||
      c->store.sync_max_ns > MIR_SIM_STORE_SYNC_NS_MAX || c->store.torn_ppm > MIR_SIM_PPM) {
    return mir_error_set(MIR_EINVAL,
                         "sim: store sync times must satisfy min <= max <= %llu ns and "
                         "torn_ppm <= 1e6",
                         (unsigned long long)MIR_SIM_STORE_SYNC_NS_MAX);
  }
  if (c->steps_max == 0 || c->actions_max == 0 || c->timers_max == 0) {
    return mir_error_set(MIR_EINVAL, "sim: steps_max, actions_max and timers_max must be > 0");
  }
  return MIR_OK;
}

/* Seeds every stream and draws each node's clock speed. */
static void sim_init_streams(mir_sim *sim) {
  uint64_t seed = sim->cfg.seed;
  mir_sim_rng_init(&sim->sched, mir_sim_seed_derive(seed, MIRI_SIM_STREAM_SCHED));
  mir_sim_rng_init(&sim->net, mir_sim_seed_derive(seed, MIRI_SIM_STREAM_NET));
  mir_sim_rng_init(&sim->plan, mir_sim_seed_derive(seed, MIRI_SIM_STREAM_PLAN));
  mir_sim_rng_init(&sim->byz, mir_sim_seed_derive(seed, MIRI_SIM_STREAM_BYZ));
  mir_sim_rng_init(&sim->clock, mir_sim_seed_derive(seed, MIRI_SIM_STREAM_CLOCK));
  mir_sim_rng_init(&sim->scenario, mir_sim_seed_derive(seed, MIRI_SIM_STREAM_SCENARIO));
  mir_sim_rng_init(&sim->store, mir_sim_seed_derive(seed, MIRI_SIM_STREAM_STORE));
  for (size_t i = 0; i < sim->cfg.nodes; i++) {
    sim->nodes[i].clock_ppm =
        (uint32_t)mir_sim_rng_range(&sim->clock, sim->cfg.clock_min_ppm, sim->cfg.clock_max_ppm);
  }
}

static int64_t sim_record_time(void *user_data) {
  const mir_sim *sim = user_data;
  return (int64_t)sim->now_ns;
}

/* Opens node i's recorder in record_dir: synchronous (no thread), stamped with virtual time. */
static mir_err sim_open_recorder(mir_sim *sim, miri_sim_node *sn) {
  mir_recorder_config rc;
  mir_recorder_config_default(&rc);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "node%zu", sn->index);
  rc.dir = sim->record_dir;
  rc.node_id = sn->id;
  rc.prefix = prefix;
  rc.time_fn = sim_record_time;
  rc.time_user_data = sim;
  rc.sync = true;
  mir_err err = mir_recorder_new(&rc, &sn->rec);
  if (err != MIR_OK) return err;
  mir_recorder_interceptor(sn->rec, &sn->rec_icpt);
  return MIR_OK;
}

/* Registers the simulator's own counters (names and meanings in sim.h, mir_sim_metrics). */
static void sim_metrics_init(mir_sim *sim) {
  mir_metrics *m = sim->metrics = mir_metrics_new("sim");
  miri_sim_counters *c = &sim->c;
  c->steps = mir_metrics_counter(m, "mir_sim_steps_total", "Scheduler steps.", NULL, NULL);
  c->batches = mir_metrics_counter(m, "mir_sim_batches_total", "Batches applied.", NULL, NULL);
  c->events = mir_metrics_counter(m, "mir_sim_events_total", "Events applied.", NULL, NULL);
  c->sent =
      mir_metrics_counter(m, "mir_sim_messages_sent_total",
                          "Messages handed to the network (after Byzantine filters).", NULL, NULL);
  c->delivered = mir_metrics_counter(m, "mir_sim_messages_delivered_total",
                                     "Messages delivered to a node.", NULL, NULL);
  c->duplicated = mir_metrics_counter(m, "mir_sim_messages_duplicated_total",
                                      "Extra copies made by duplicate faults.", NULL, NULL);
  const char *lost = "mir_sim_messages_lost_total";
  const char *lost_help = "Messages not delivered, by reason.";
  c->lost_dropped = mir_metrics_counter(m, lost, lost_help, "reason", "dropped");
  c->lost_partitioned = mir_metrics_counter(m, lost, lost_help, "reason", "partitioned");
  c->lost_down = mir_metrics_counter(m, lost, lost_help, "reason", "down");
  c->unknown_dest = mir_metrics_counter(m, lost, lost_help, "reason", "unknown_destination");
  c->timers = mir_metrics_counter(m, "mir_sim_timers_fired_total", "Timer firings.", NULL, NULL);
  c->crashes = mir_metrics_counter(m, "mir_sim_crashes_total", "Node crashes.", NULL, NULL);
  c->restarts = mir_metrics_counter(m, "mir_sim_restarts_total", "Node restarts.", NULL, NULL);
  c->partitions =
      mir_metrics_counter(m, "mir_sim_partitions_total", "Partitions made.", NULL, NULL);
  c->deliveries = mir_metrics_counter(m, "mir_sim_deliveries_total",
                                      "Deliveries the nodes reported.", NULL, NULL);
  c->redeliveries = mir_metrics_counter(
      m, "mir_sim_redeliveries_total",
      "Deliveries of a position again, same value, after a restart with the store.", NULL, NULL);
  c->store_writes = mir_metrics_counter(m, "mir_sim_store_writes_total",
                                        "Writes the simulated stores accepted.", NULL, NULL);
  c->store_syncs =
      mir_metrics_counter(m, "mir_sim_store_syncs_total", "Store syncs completed.", NULL, NULL);
  c->store_lost =
      mir_metrics_counter(m, "mir_sim_store_writes_lost_total",
                          "Writes lost by crashes before their sync completed.", NULL, NULL);
  c->store_torn = mir_metrics_counter(
      m, "mir_sim_store_writes_torn_total",
      "Unsynced writes that torn crashes kept (never acknowledged).", NULL, NULL);
}

mir_err mir_sim_new(const mir_sim_config *cfg, mir_sim **out) {
  *out = NULL;
  mir_err err = sim_config_check(cfg);
  if (err != MIR_OK) return err;
  mir_sim *sim = mir_xcalloc(1, sizeof *sim);
  sim->cfg = *cfg;
  if (cfg->record_dir != NULL) sim->record_dir = mir_xstrdup(cfg->record_dir);
  sim->cfg.record_dir = sim->record_dir;
  sim_metrics_init(sim);
  miri_sim_heap_init(&sim->heap, cfg->actions_max);
  sim_init_streams(sim);
  for (size_t i = 0; i < cfg->nodes; i++) {
    miri_sim_node *sn = &sim->nodes[i];
    sn->sim = sim;
    sn->index = i;
    snprintf(sn->id, sizeof sn->id, "%u", (unsigned)i);
    sn->metrics = mir_metrics_new(sn->id);
    sn->store = mir_sim_store_new();
    if (sim->record_dir != NULL && (err = sim_open_recorder(sim, sn)) != MIR_OK) {
      mir_sim_free(sim);
      return err;
    }
  }
  *out = sim;
  return MIR_OK;
}

void mir_sim_free(mir_sim *sim) {
  if (sim == NULL) return;
  for (size_t i = 0; i < sim->cfg.nodes; i++) {
    miri_sim_node *sn = &sim->nodes[i];
    mir_node_free(sn->mn);
    mir_metrics_free(sn->metrics);
    mir_recorder_free(sn->rec);
    miri_sim_store_drop(sim, i);
    free(sn->writes);
    mir_sim_store_free(sn->store);
    miri_sim_map_free(&sn->pos_value);
    miri_sim_map_free(&sn->value_pos);
    miri_sim_map_free(&sn->pos_inc);
  }
  miri_sim_heap_free(&sim->heap);
  miri_sim_check_free(sim);
  free(sim->scratch);
  free(sim->cands);
  free(sim->record_dir);
  mir_metrics_free(sim->metrics);
  free(sim);
}

/* ---- trace ---- */

void miri_sim_trace(mir_sim *sim, const char *fmt, ...) {
  if (sim->cfg.trace == NULL) return;
  fprintf(sim->cfg.trace, "[%4llu.%06llu] ", (unsigned long long)(sim->now_ns / 1000000000ull),
          (unsigned long long)(sim->now_ns % 1000000000ull / 1000ull));
  va_list ap;
  va_start(ap, fmt);
  vfprintf(sim->cfg.trace, fmt, ap);
  va_end(ap);
  fputc('\n', sim->cfg.trace);
}

void mir_sim_fail(mir_sim *sim, const char *fmt, ...) {
  if (sim->failed) return;
  sim->failed = true;
  sim->over = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sim->failure, sizeof sim->failure, fmt, ap);
  va_end(ap);
  miri_sim_trace(sim, "FAIL %s", sim->failure);
}

/* Folds one event (dest, src, type, packed payload) into h. */
static uint64_t sim_hash_event(mir_sim *sim, uint64_t h, const mir_event *ev) {
  h = miri_sim_hash_bytes(h, ev->dest, strlen(ev->dest));
  h = miri_sim_hash_bytes(h, ev->src, strlen(ev->src));
  if (ev->payload == NULL) return miri_sim_hash_u64(h, 0);
  const char *type = ev->payload->descriptor->name;
  h = miri_sim_hash_bytes(h, type, strlen(type));
  size_t len = protobuf_c_message_get_packed_size(ev->payload);
  if (len > sim->scratch_cap) {
    sim->scratch_cap = len * 2;
    sim->scratch = mir_xrealloc(sim->scratch, sim->scratch_cap);
  }
  protobuf_c_message_pack(ev->payload, sim->scratch);
  return miri_sim_hash_bytes(h, sim->scratch, len);
}

/* Prints one batch: node, module, count and the first event types with their sources. */
static void sim_trace_batch(mir_sim *sim, const miri_sim_node *sn, const char *module_id,
                            const mir_event_list *batch) {
  char line[1024];
  size_t off = 0, k = 0;
  line[0] = '\0';
  MIR_EVENT_LIST_FOREACH(batch, ev) {
    if (k++ == SIM_TRACE_TYPES_MAX) {
      snprintf(line + off, sizeof line - off, " ...");
      break;
    }
    int w = snprintf(line + off, sizeof line - off, " %s<-%s", mir_event_type_name(ev),
                     ev->src[0] ? ev->src : "-");
    if (w < 0 || (size_t)w >= sizeof line - off) break;
    off += (size_t)w;
  }
  miri_sim_trace(sim, "n%zu %s x%zu:%s", sn->index, module_id, batch->len, line);
}

/* The interceptor of every simulated node: folds the batch into the trace hash, prints it, and
 * hands it to the recorder if there is one. */
static mir_err sim_intercept(void *user_data, const char *node_id, const char *module_id,
                             const mir_event_list *batch) {
  miri_sim_node *sn = user_data;
  mir_sim *sim = sn->sim;
  uint64_t h = miri_sim_hash_u64(sim->trace_hash, sim->now_ns);
  h = miri_sim_hash_u64(h, sn->index);
  h = miri_sim_hash_bytes(h, module_id, strlen(module_id));
  MIR_EVENT_LIST_FOREACH(batch, ev) h = sim_hash_event(sim, h, ev);
  sim->trace_hash = h;
  mir_counter_inc(sim->c.batches);
  mir_counter_add(sim->c.events, batch->len);
  if (sim->cfg.trace != NULL) sim_trace_batch(sim, sn, module_id, batch);
  if (sn->rec != NULL)
    return sn->rec_icpt.intercept(sn->rec_icpt.user_data, node_id, module_id, batch);
  return MIR_OK;
}

/* ---- nodes ---- */

mir_err miri_sim_node_boot(mir_sim *sim, size_t i, bool restart) {
  miri_sim_node *sn = &sim->nodes[i];
  MIR_ASSERT(sn->mn == NULL);
  mir_node_config nc;
  mir_node_config_default(&nc);
  nc.mode = MIR_NODE_MANUAL;
  if (sim->cfg.node_max_batch != 0) nc.max_batch = sim->cfg.node_max_batch;
  mir_node *mn = NULL;
  mir_err err = mir_node_new(sn->id, &nc, &mn);
  if (err != MIR_OK) return err;
  mir_interceptor icpt = {sim_intercept, sn};
  mir_node_set_interceptor(mn, &icpt);
  sn->incarnation++;
  sn->timer_retention = 0;
  sn->timers_pending = 0;
  memset(sn->pending, 0, sizeof sn->pending);
  err = sim->cfg.build(sim->cfg.user, sim, i, mn, restart);
  if (err == MIR_OK) err = mir_node_start(mn);
  if (err != MIR_OK) {
    mir_node_free(mn);
    return err;
  }
  sn->mn = mn;
  sn->started = true;
  mir_metrics_attach(sn->metrics, mir_node_metrics(mn));
  return MIR_OK;
}

/* Index of the module of node mn that receives events for dest, or -1. */
static int sim_module_index(mir_node *mn, const char *dest) {
  size_t top = mir_module_id_top_len(dest);
  size_t n = mir_node_module_count(mn);
  for (size_t m = 0; m < n; m++) {
    const char *id = mir_node_module_id(mn, m);
    if (strlen(id) == top && memcmp(id, dest, top) == 0) return (int)m;
  }
  return -1;
}

mir_err miri_sim_inject(mir_sim *sim, size_t i, mir_event_list *events) {
  miri_sim_node *sn = &sim->nodes[i];
  if (sn->mn == NULL) {
    mir_event_list_free(events);
    return MIR_ESTOPPED;
  }
  MIR_EVENT_LIST_FOREACH(events, ev) {
    int m = sim_module_index(sn->mn, ev->dest);
    if (m >= 0) sn->pending[m]++;
  }
  return mir_node_inject(sn->mn, events);
}

mir_err mir_sim_inject(mir_sim *sim, size_t i, mir_event_list *events) {
  if (i >= sim->cfg.nodes) {
    mir_event_list_free(events);
    return mir_error_set(MIR_EINVAL, "sim: no node %zu", i);
  }
  return miri_sim_inject(sim, i, events);
}

void miri_sim_schedule(mir_sim *sim, miri_sim_action *a) {
  MIR_ASSERT(a->at_ns >= sim->now_ns);
  if (miri_sim_heap_push(&sim->heap, a) != MIR_OK) {
    mir_sim_fail(sim, "%s", mir_error_detail());
  }
}

/* ---- inspection ---- */

const mir_metrics *mir_sim_metrics(const mir_sim *sim) {
  return sim->metrics;
}

uint64_t mir_sim_trace_hash(const mir_sim *sim) {
  return sim->trace_hash;
}

uint64_t mir_sim_now(const mir_sim *sim) {
  return sim->now_ns;
}

uint64_t mir_sim_seed(const mir_sim *sim) {
  return sim->cfg.seed;
}

uint64_t mir_sim_heal_ns(const mir_sim *sim) {
  return sim->cfg.heal_ns;
}

size_t mir_sim_node_count(const mir_sim *sim) {
  return sim->cfg.nodes;
}

const char *mir_sim_node_id(const mir_sim *sim, size_t i) {
  return i < sim->cfg.nodes ? sim->nodes[i].id : NULL;
}

int mir_sim_node_index(const mir_sim *sim, const char *id) {
  /* Ids are the decimal indices; parse instead of searching, rejecting anything else. */
  if (id == NULL || id[0] == '\0' || strlen(id) > 2 || (id[0] == '0' && id[1] != '\0')) return -1;
  size_t v = 0;
  for (const char *p = id; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (size_t)(*p - '0');
  }
  return v < sim->cfg.nodes ? (int)v : -1;
}

mir_node *mir_sim_node(mir_sim *sim, size_t i) {
  return i < sim->cfg.nodes ? sim->nodes[i].mn : NULL;
}

const mir_metrics *mir_sim_node_metrics(const mir_sim *sim, size_t i) {
  return i < sim->cfg.nodes ? sim->nodes[i].metrics : NULL;
}

bool mir_sim_node_up(const mir_sim *sim, size_t i) {
  return i < sim->cfg.nodes && sim->nodes[i].mn != NULL;
}

bool mir_sim_node_correct(const mir_sim *sim, size_t i) {
  return i < sim->cfg.nodes && !sim->nodes[i].byz && !sim->nodes[i].wiped;
}

uint32_t mir_sim_node_clock_ppm(const mir_sim *sim, size_t i) {
  return i < sim->cfg.nodes ? sim->nodes[i].clock_ppm : 0;
}

mir_sim_rng *mir_sim_scenario_rng(mir_sim *sim) {
  return &sim->scenario;
}

bool mir_sim_failed(const mir_sim *sim) {
  return sim->failed;
}

const char *mir_sim_failure(const mir_sim *sim) {
  return sim->failure;
}

const uint8_t *mir_sim_delivered_at(const mir_sim *sim, size_t i, uint64_t position, size_t *len) {
  uint64_t id;
  if (i >= sim->cfg.nodes || !miri_sim_map_get(&sim->nodes[i].pos_value, position, &id)) {
    return NULL;
  }
  if (len) *len = sim->values[id].len;
  return sim->values[id].data;
}

size_t mir_sim_delivered_count(const mir_sim *sim, size_t i) {
  return i < sim->cfg.nodes ? sim->nodes[i].pos_value.len : 0;
}
