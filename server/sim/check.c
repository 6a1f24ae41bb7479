/*
 * Deliveries, submissions and the checkers.
 *
 * Every distinct value (submitted or delivered) is interned once in a pool, so the checks
 * compare small ids. Per node the simulator keeps position -> value (duplicates: a position
 * delivered twice), position -> the incarnation that delivered it, and value -> position (unique
 * values: one value at two positions); across nodes it keeps the first value a correct node
 * delivered at each position (agreement). These checks run at each delivery, so a violation
 * stops the run at the step that caused it, with the event logs ending right there.
 *
 * A node restarted with its store recovers from what it persisted (a checkpoint, say) and may
 * replay what came after it, delivering positions again. That is allowed once per incarnation:
 * the value it delivered at a position before the restart, at the same position, in a later
 * incarnation, is a re-delivery (counted, and not a duplicate of any kind). A position twice in
 * one incarnation is still a duplicate, and another value at a position delivered before a
 * restart means the node contradicted itself across the crash: the store lost what it promised.
 *
 * Validity and liveness are one end-of-run check: every value submitted to a correct node must
 * have been delivered by every correct node that is up, before the time budget ran out. Byzantine
 * nodes are not checked, and nothing submitted to them is required; a node restarted with a
 * wiped store is faulty too (its deliveries are forgotten, since it starts from scratch).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "sim_internal.h"

#define CHECK_VALUE_SHOWN 24 /* bytes of a value shown in messages */
#define CHECK_ID_BITS 48     /* agreed map: value id | first node << CHECK_ID_BITS */

/* Formats value for messages: printable bytes as they are, others as \xNN, truncated. */
static const char *check_fmt(const miri_sim_value *v, char *buf, size_t cap) {
  size_t off = 0;
  buf[off++] = '"';
  for (size_t i = 0; i < v->len && i < CHECK_VALUE_SHOWN && off + 6 < cap; i++) {
    uint8_t c = v->data[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      buf[off++] = (char)c;
    } else {
      off += (size_t)snprintf(buf + off, cap - off, "\\x%02x", c);
    }
  }
  if (v->len > CHECK_VALUE_SHOWN && off + 4 < cap) {
    memcpy(buf + off, "...", 3);
    off += 3;
  }
  buf[off++] = '"';
  buf[off] = '\0';
  return buf;
}

uint64_t miri_sim_value_intern(mir_sim *sim, const void *value, size_t len) {
  /* Values with equal hashes take the next free keys, so a lookup probes until a gap. */
  uint64_t k = miri_sim_hash_bytes(0x76616c7565ull, value, len);
  for (;; k++) {
    uint64_t id;
    if (!miri_sim_map_get(&sim->value_index, k, &id)) break;
    const miri_sim_value *v = &sim->values[id];
    if (v->len == len && (len == 0 || memcmp(v->data, value, len) == 0)) return id;
  }
  if (sim->n_values == sim->cap_values) {
    sim->cap_values = sim->cap_values ? sim->cap_values * 2 : 64;
    sim->values = mir_xrealloc(sim->values, sim->cap_values * sizeof *sim->values);
  }
  uint64_t id = sim->n_values++;
  sim->values[id].data = mir_xmalloc(len ? len : 1);
  if (len) memcpy(sim->values[id].data, value, len);
  sim->values[id].len = len;
  miri_sim_map_put(&sim->value_index, k, id);
  return id;
}

void miri_sim_check_free(mir_sim *sim) {
  for (size_t i = 0; i < sim->n_values; i++) free(sim->values[i].data);
  free(sim->values);
  free(sim->subs);
  miri_sim_map_free(&sim->value_index);
  miri_sim_map_free(&sim->agreed);
}

void miri_sim_forget_deliveries(mir_sim *sim, size_t i) {
  miri_sim_map_clear(&sim->nodes[i].pos_value);
  miri_sim_map_clear(&sim->nodes[i].value_pos);
  miri_sim_map_clear(&sim->nodes[i].pos_inc);
  sim->dl_dirty = true;
}

/* Node i delivers pos again, which it delivered with value prev: a re-delivery after a restart
 * (same value, later incarnation) is counted and goes no further; anything else is a violation. */
static void check_again(mir_sim *sim, size_t i, uint64_t pos, uint64_t prev, uint64_t id) {
  miri_sim_node *sn = &sim->nodes[i];
  char a[128], b[128];
  uint64_t inc = 0;
  bool found = miri_sim_map_get(&sn->pos_inc, pos, &inc);
  MIR_ASSERT(found); /* set together with pos_value */
  bool restarted = inc != sn->incarnation;
  if (restarted && prev == id) {
    mir_counter_inc(sim->c.redeliveries);
    miri_sim_map_put(&sn->pos_inc, pos, sn->incarnation);
    return;
  }
  if (!sim->cfg.checks.no_duplicates) return;
  if (restarted) {
    mir_sim_fail(sim,
                 "no-duplicates: node %zu delivered %s at position %llu after a restart, where it "
                 "had delivered %s before",
                 i, check_fmt(&sim->values[id], b, sizeof b), (unsigned long long)pos,
                 check_fmt(&sim->values[prev], a, sizeof a));
  } else {
    mir_sim_fail(sim, "no-duplicates: node %zu delivered position %llu twice (%s, then %s)", i,
                 (unsigned long long)pos, check_fmt(&sim->values[prev], a, sizeof a),
                 check_fmt(&sim->values[id], b, sizeof b));
  }
}

/* Duplicate checks of node i delivering value id at pos; false if the delivery is not a new one
 * (a duplicate, or a re-delivery after a restart). */
static bool check_duplicates(mir_sim *sim, size_t i, uint64_t pos, uint64_t id) {
  miri_sim_node *sn = &sim->nodes[i];
  char a[128];
  uint64_t prev;
  if (miri_sim_map_get(&sn->pos_value, pos, &prev)) {
    check_again(sim, i, pos, prev, id);
    return false;
  }
  miri_sim_map_put(&sn->pos_value, pos, id);
  miri_sim_map_put(&sn->pos_inc, pos, sn->incarnation);
  if (miri_sim_map_get(&sn->value_pos, id, &prev)) {
    if (sim->cfg.checks.no_duplicates && sim->cfg.checks.unique_values) {
      mir_sim_fail(sim, "no-duplicates: node %zu delivered %s at positions %llu and %llu", i,
                   check_fmt(&sim->values[id], a, sizeof a), (unsigned long long)prev,
                   (unsigned long long)pos);
    }
    return true;
  }
  miri_sim_map_put(&sn->value_pos, id, pos);
  return true;
}

static void check_agreement(mir_sim *sim, size_t i, uint64_t pos, uint64_t id) {
  uint64_t first;
  if (!miri_sim_map_get(&sim->agreed, pos, &first)) {
    miri_sim_map_put(&sim->agreed, pos, id | (uint64_t)i << CHECK_ID_BITS);
    return;
  }
  uint64_t fid = first & ((1ull << CHECK_ID_BITS) - 1);
  if (fid != id && sim->cfg.checks.agreement) {
    char a[128], b[128];
    mir_sim_fail(sim, "agreement: node %zu delivered %s at position %llu, node %llu delivered %s",
                 i, check_fmt(&sim->values[id], a, sizeof a), (unsigned long long)pos,
                 (unsigned long long)(first >> CHECK_ID_BITS),
                 check_fmt(&sim->values[fid], b, sizeof b));
  }
}

void mir_sim_report_delivery(mir_sim *sim, size_t node, uint64_t position, const void *value,
                             size_t len) {
  MIR_ASSERT(node < sim->cfg.nodes);
  if (sim->over) return;
  if (len > MIR_SIM_VALUE_BYTES_MAX || sim->deliveries >= MIR_SIM_DELIVERIES_MAX) {
    mir_sim_fail(sim, "node %zu: delivery too large or too many deliveries", node);
    return;
  }
  sim->deliveries++;
  mir_counter_inc(sim->c.deliveries);
  uint64_t id = miri_sim_value_intern(sim, value, len);
  char buf[128];
  miri_sim_trace(sim, "app n%zu pos=%llu %s%s", node, (unsigned long long)position,
                 check_fmt(&sim->values[id], buf, sizeof buf),
                 sim->nodes[node].byz ? " (byz)" : "");
  if (sim->nodes[node].byz) return;
  sim->dl_dirty = true;
  if (check_duplicates(sim, node, position, id)) check_agreement(sim, node, position, id);
}

/* ---- validity ---- */

static bool check_validity_node(const mir_sim *sim, size_t i) {
  return sim->nodes[i].mn != NULL && mir_sim_node_correct(sim, i);
}

/* First (submission, node) pair still missing; false if none. */
static bool check_missing(const mir_sim *sim, size_t *sub_out, size_t *node_out) {
  for (size_t k = 0; k < sim->n_subs; k++) {
    const miri_sim_submission *s = &sim->subs[k];
    if (!mir_sim_node_correct(sim, s->node)) continue;
    for (size_t i = 0; i < sim->cfg.nodes; i++) {
      if (!check_validity_node(sim, i)) continue;
      if (!miri_sim_map_get(&sim->nodes[i].value_pos, s->value, NULL)) {
        *sub_out = k;
        *node_out = i;
        return true;
      }
    }
  }
  return false;
}

bool mir_sim_all_delivered(const mir_sim *sim) {
  mir_sim *s = (mir_sim *)sim; /* the cache is not part of the observable state */
  if (s->dl_dirty || !s->started) {
    size_t k, i;
    s->dl_all = !check_missing(s, &k, &i);
    s->dl_dirty = false;
  }
  return s->dl_all;
}

static void check_fmt_time(uint64_t ns, char *buf, size_t cap) {
  snprintf(buf, cap, "%llu.%06llus", (unsigned long long)(ns / 1000000000ull),
           (unsigned long long)(ns % 1000000000ull / 1000ull));
}

void miri_sim_check_final(mir_sim *sim) {
  size_t k, i;
  if (sim->cfg.checks.validity && check_missing(sim, &k, &i)) {
    char v[128], t[32], h[32];
    check_fmt_time(sim->now_ns, t, sizeof t);
    check_fmt_time(sim->cfg.heal_ns, h, sizeof h);
    mir_sim_fail(sim,
                 "liveness: node %zu has not delivered %s (submitted to node %zu) by %s "
                 "(faults healed at %s)",
                 i, check_fmt(&sim->values[sim->subs[k].value], v, sizeof v),
                 (size_t)sim->subs[k].node, t, h);
  }
  for (size_t c = 0; c < sim->n_checkers && !sim->failed; c++) {
    sim->checkers[c].fn(sim->checkers[c].user, sim, true);
  }
}

void miri_sim_check_step(mir_sim *sim) {
  for (size_t c = 0; c < sim->n_checkers && !sim->failed; c++) {
    sim->checkers[c].fn(sim->checkers[c].user, sim, false);
  }
}

mir_err mir_sim_add_checker(mir_sim *sim, mir_sim_check_fn fn, void *user) {
  if (sim->n_checkers == MIR_SIM_CHECKERS_MAX) {
    return mir_error_set(MIR_EFULL, "sim: more than %d checkers", MIR_SIM_CHECKERS_MAX);
  }
  sim->checkers[sim->n_checkers++] = (miri_sim_checker){fn, user};
  return MIR_OK;
}

/* ---- submissions ---- */

mir_err mir_sim_submit(mir_sim *sim, uint64_t at_ns, size_t node, const void *value, size_t len) {
  if (node >= sim->cfg.nodes || len > MIR_SIM_VALUE_BYTES_MAX || at_ns < sim->now_ns) {
    return mir_error_set(MIR_EINVAL, "sim: bad submission (node %zu, %zu bytes)", node, len);
  }
  if (sim->n_subs == MIR_SIM_SUBMISSIONS_MAX) {
    return mir_error_set(MIR_EFULL, "sim: more than %d submissions", MIR_SIM_SUBMISSIONS_MAX);
  }
  if (sim->n_subs == sim->cap_subs) {
    sim->cap_subs = sim->cap_subs ? sim->cap_subs * 2 : 16;
    sim->subs = mir_xrealloc(sim->subs, sim->cap_subs * sizeof *sim->subs);
  }
  size_t k = sim->n_subs++;
  sim->subs[k] =
      (miri_sim_submission){(uint32_t)node, miri_sim_value_intern(sim, value, len), false, false};
  sim->submits_due++;
  sim->dl_dirty = true;
  miri_sim_action *a = miri_sim_action_new(MIRI_ACT_SUBMIT, at_ns);
  a->submission = k;
  miri_sim_schedule(sim, a);
  return MIR_OK;
}

/* Hands submission k to its node if it is up. */
static void check_inject_sub(mir_sim *sim, size_t k) {
  miri_sim_submission *s = &sim->subs[k];
  if (sim->nodes[s->node].mn == NULL) return;
  if (sim->cfg.submit == NULL) {
    mir_sim_fail(sim, "submission without a submit callback");
    return;
  }
  const miri_sim_value *v = &sim->values[s->value];
  mir_event *ev = sim->cfg.submit(sim->cfg.user, sim, s->node, v->data, v->len);
  char buf[128];
  miri_sim_trace(sim, "submit n%u %s", s->node, check_fmt(v, buf, sizeof buf));
  if (!s->injected) sim->submits_due--;
  s->injected = true;
  if (ev == NULL) return;
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, ev);
  miri_sim_inject(sim, s->node, &l);
}

void miri_sim_submit_fire(mir_sim *sim, size_t k) {
  sim->subs[k].due = true;
  check_inject_sub(sim, k);
}

void miri_sim_resubmit(mir_sim *sim, size_t i) {
  for (size_t k = 0; k < sim->n_subs && !sim->over; k++) {
    const miri_sim_submission *s = &sim->subs[k];
    if (s->node != i || !s->due) continue;
    if (miri_sim_map_get(&sim->nodes[i].value_pos, s->value, NULL)) continue;
    check_inject_sub(sim, k);
  }
}

/* ---- the collector module ---- */

typedef struct collector {
  mir_sim *sim;
  size_t node;
  mir_sim_extract_fn extract;
  void *user;
} collector;

static mir_err collector_apply(void *state, mir_event_list *in, mir_event_list *out) {
  (void)out;
  collector *c = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    uint64_t pos;
    const uint8_t *value;
    size_t len;
    if (ev->payload == NULL || mir_event_is(ev, &mir__init__descriptor)) continue;
    if (c->extract(c->user, ev, &pos, &value, &len)) {
      mir_sim_report_delivery(c->sim, c->node, pos, value, len);
    }
  }
  return MIR_OK;
}

static void collector_destroy(void *state) {
  free(state);
}

static const mir_module_ops collector_ops = {
    .name = "sim-collector",
    .kind = MIR_MODULE_PASSIVE,
    .apply = collector_apply,
    .destroy = collector_destroy,
    .peer_messages = true,
};

mir_err mir_sim_add_collector(mir_sim *sim, size_t node, mir_node *mn, const char *id,
                              mir_sim_extract_fn extract, void *user) {
  MIR_ASSERT(node < sim->cfg.nodes && extract != NULL);
  collector *c = mir_xcalloc(1, sizeof *c);
  *c = (collector){sim, node, extract, user};
  return mir_node_add_module(mn, id, &collector_ops, c);
}
