/*
 * mir-cat's replay: feeds the recorded events of one node, in log order, into a node in debug
 * mode whose modules come from a replay target, and prints what the node emits.
 *
 * Every event of the replayed node is injected, selected or not, because a module's state depends
 * on all its inputs; filters only choose what is printed (and where --step pauses). The node's
 * outputs are captured, not routed: what the original node did with them is itself in the log.
 * The log is untrusted: an event whose type is unknown or whose bytes do not decode is reported
 * and skipped, never asserted on. The replayed node is the first one met that passes --node.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/event.h"
#include "mir/module.h"
#include "mir/registry.h"
#include "mircat.h"

#include "samples.h"

/* ---- the built-in "echo" target ---- */

/* Answers every event with a copy of its payload addressed back to its source ("sink" when the
 * source is empty). */
static mir_err echo_apply(void *state, mir_event_list *in, mir_event_list *out) {
  (void)state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (ev->payload == NULL) continue;
    const char *dest = mir_module_id_valid(ev->src) ? ev->src : "sink";
    mir_event_list_push(out, mir_event_new(dest, "echo", mir_message_clone(ev->payload)));
  }
  return MIR_OK;
}

static const mir_module_ops echo_ops = {
    .name = "echo",
    .kind = MIR_MODULE_PASSIVE,
    .apply = echo_apply,
    .peer_messages = true,
};

static mir_err echo_build(mir_node *node, const char *target, const char *node_id) {
  (void)target;
  (void)node_id;
  return mir_node_add_module(node, "echo", &echo_ops, NULL);
}

static mir_err sample_build(mir_node *node, const char *target, const char *node_id) {
  return mir_sample_add_modules(node, target, node_id);
}

static const mircat_target cat_targets[] = {
    {"echo", "one module \"echo\" that sends every event's payload back to its source", echo_build},
    {"pingpong", "the pingpong sample's modules", sample_build},
    {"bcb", "the Byzantine consistent broadcast sample's modules", sample_build},
    {NULL, NULL, NULL},
};

const mircat_target *miri_cat_targets(void) {
  return cat_targets;
}

void miri_cat_register_types(void) {
  mir_registry_add_framework();
  (void)mir_samples_register_types();
}

/* ---- replay ---- */

struct mircat_replay {
  const mircat_opts *o;
  const mircat_target *target;
  FILE *in;
  bool step;
  mir_node *node;
  char *node_id; /* owned */
  bool failed;   /* the node could not be built */
  uint64_t injected;
  uint64_t emitted;
  uint64_t other_node;
  uint64_t undecodable;
};

mircat_replay *miri_cat_replay_new(const mircat_opts *o, const char *target, FILE *in) {
  const mircat_target *t = cat_targets;
  while (t->name != NULL && strcmp(t->name, target) != 0) t++;
  if (t->name == NULL) {
    fprintf(stderr, "mir-cat: unknown replay target '%s' (see --help)\n", target);
    return NULL;
  }
  mircat_replay *rp = mir_xcalloc(1, sizeof(*rp));
  rp->o = o;
  rp->target = t;
  rp->in = in;
  rp->step = o->step;
  return rp;
}

/* Creates, builds and starts the debug-mode node for node_id (borrowed). */
static mir_err replay_start(mircat_replay *rp, const char *node_id) {
  mir_node_config cfg;
  mir_node_config_default(&cfg);
  cfg.mode = MIR_NODE_DEBUG;
  rp->node_id = mir_xstrdup(node_id);
  mir_err err = mir_node_new(node_id, &cfg, &rp->node);
  if (err == MIR_OK) err = rp->target->build(rp->node, rp->target->name, node_id);
  if (err == MIR_OK) err = mir_node_start(rp->node);
  if (err != MIR_OK) {
    fprintf(stderr, "mir-cat: cannot start replay target %s for node ", rp->target->name);
    miri_cat_print_text(stderr, node_id);
    fprintf(stderr, ": %s: %s\n", mir_strerror(err), mir_error_detail());
    rp->failed = true;
    return err;
  }
  fprintf(stdout, "replay: target %s, node ", rp->target->name);
  miri_cat_print_text(stdout, node_id);
  fputc('\n', stdout);
  return MIR_OK;
}

/* Waits for a line on the step input; at its end, stepping stops and the replay runs through. */
static void replay_wait(mircat_replay *rp, uint64_t index) {
  fprintf(stderr, "-- Enter applies event %llu --\n", (unsigned long long)index);
  int c;
  while ((c = fgetc(rp->in)) != EOF && c != '\n') {
  }
  if (c == EOF) rp->step = false;
}

/* Prints the events the node emitted (borrowed) as packed events. */
static void replay_print_outputs(mircat_replay *rp, uint64_t index, int64_t time_ns,
                                 const mir_event_list *out, FILE *o) {
  mircat_mode mode = rp->o->mode == MIRCAT_JSON ? MIRCAT_JSON : MIRCAT_EVENTS;
  MIR_EVENT_LIST_FOREACH(out, ev) {
    if (ev->payload == NULL) continue;
    Mir__PackedEvent pe = MIR__PACKED_EVENT__INIT;
    mir_event_pack(ev, &pe);
    miri_cat_print_event(o, mode, index, rp->node_id, time_ns, &pe, true);
    mir_packed_event_clear(&pe);
  }
}

mir_err miri_cat_replay_event(mircat_replay *rp, uint64_t index, const Mir__LogRecord *rec,
                              const Mir__PackedEvent *pe, bool selected, FILE *out) {
  if (rp->failed) return MIR_EINVAL;
  if (rp->node == NULL) {
    mir_err err = replay_start(rp, rec->node_id);
    if (err != MIR_OK) return err;
  }
  if (strcmp(rec->node_id, rp->node_id) != 0) {
    rp->other_node++;
    return MIR_OK;
  }
  mircat_mode mode = rp->o->mode == MIRCAT_JSON ? MIRCAT_JSON : MIRCAT_EVENTS;
  if (selected) miri_cat_print_event(out, mode, index, rec->node_id, rec->time_ns, pe, false);
  if (selected && rp->step) {
    fflush(out);
    replay_wait(rp, index);
  }
  mir_event *ev = NULL;
  mir_err err = mir_event_unpack(pe, &ev);
  if (err != MIR_OK) {
    fprintf(stderr, "mir-cat: event %llu not injected: %s: %s\n", (unsigned long long)index,
            mir_strerror(err), mir_error_detail());
    rp->undecodable++;
    return MIR_OK;
  }
  mir_event_list in = MIR_EVENT_LIST_INIT, produced = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, ev);
  err = mir_node_debug_apply(rp->node, &in, &produced);
  mir_event_list_free(&in);
  rp->injected++;
  rp->emitted += produced.len;
  if (selected) replay_print_outputs(rp, index, rec->time_ns, &produced, out);
  mir_event_list_free(&produced);
  if (err != MIR_OK) {
    fprintf(stderr, "mir-cat: replay stopped at event %llu: %s: %s\n", (unsigned long long)index,
            mir_strerror(err), mir_node_last_error(rp->node));
  }
  return err;
}

mir_err miri_cat_replay_free(mircat_replay *rp, FILE *out) {
  if (rp == NULL) return MIR_OK;
  mir_err err = MIR_OK;
  if (rp->node != NULL) {
    err = mir_node_stop(rp->node);
    fprintf(out, "replay: injected %llu, emitted %llu, other nodes %llu, undecodable %llu\n",
            (unsigned long long)rp->injected, (unsigned long long)rp->emitted,
            (unsigned long long)rp->other_node, (unsigned long long)rp->undecodable);
    mir_node_free(rp->node);
  }
  free(rp->node_id);
  free(rp);
  return err;
}
