/*
 * mir-cat: lists, filters, prints and replays the event logs the recorder writes.
 *
 *   mir-cat [options] FILE...
 *
 * Files are read in the order given; every event gets a global index (0, 1, ...) counting all
 * events of all files, selected or not, so --offset and the printed indices agree across runs
 * with different filters. A file that fails to open or holds corrupt data is reported on stderr
 * and reading goes on with the next file (exit status 1); a truncated last record (a writer that
 * died) is a warning only. Exit status: 0 success, 1 unreadable input or replay failure, 2 usage.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/eventlog.h"
#include "mircat.h"

#define CAT_EXIT_OK 0
#define CAT_EXIT_INPUT 1
#define CAT_EXIT_USAGE 2

static void cat_usage(FILE *out) {
  fputs(
      "usage: mir-cat [options] FILE...\n"
      "\n"
      "Reads event logs (*.mirlog.zst) and prints a summary: records, events, and event counts\n"
      "per node, type and destination.\n"
      "\n"
      "output:\n"
      "  --events          one line per event: index node time_ns src -> dest type\n"
      "  --json            one JSON object per event, payload decoded from its descriptor\n"
      "filters (an event is shown if it passes all of them):\n"
      "  --type NAME       full payload type name, e.g. mir.TestString (repeatable)\n"
      "  --dest ID         destination module id; 'ID/' also matches ID and its submodules\n"
      "                    (repeatable)\n"
      "  --node ID         recording node id (repeatable)\n"
      "  --offset N        skip events whose global index is below N\n"
      "  --limit N         stop after N selected events (0: no limit)\n"
      "replay:\n"
      "  --replay TARGET   inject every event of one node (the first passing --node) into a\n"
      "                    debug-mode node built by TARGET; print the selected events and\n"
      "                    what the node emits after each (lines starting with '  <')\n"
      "  --step            wait for Enter on stdin before each selected event (EOF: run on)\n"
      "  --help            this text\n"
      "\n"
      "replay targets:\n",
      out);
  for (const mircat_target *t = miri_cat_targets(); t->name != NULL; t++) {
    fprintf(out, "  %-16s  %s\n", t->name, t->help);
  }
}

static bool cat_parse_u64(const char *s, uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9') return false;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = (uint64_t)v;
  return true;
}

static bool cat_add_filter(const char **list, size_t *n, const char *value, const char *opt) {
  if (*n >= MIRCAT_FILTERS_MAX) {
    fprintf(stderr, "mir-cat: at most %d %s options\n", MIRCAT_FILTERS_MAX, opt);
    return false;
  }
  list[(*n)++] = value;
  return true;
}

/* Applies one option that takes a value; false for a usage error. */
static bool cat_option_value(mircat_opts *o, const char *name, const char *value) {
  if (value == NULL) {
    fprintf(stderr, "mir-cat: %s needs a value\n", name);
    return false;
  }
  if (strcmp(name, "--type") == 0) return cat_add_filter(o->types, &o->n_types, value, name);
  if (strcmp(name, "--dest") == 0) return cat_add_filter(o->dests, &o->n_dests, value, name);
  if (strcmp(name, "--node") == 0) return cat_add_filter(o->nodes, &o->n_nodes, value, name);
  if (strcmp(name, "--replay") == 0) {
    o->replay = value;
    return true;
  }
  uint64_t *num = strcmp(name, "--offset") == 0  ? &o->offset
                  : strcmp(name, "--limit") == 0 ? &o->limit
                                                 : NULL;
  if (num == NULL) {
    fprintf(stderr, "mir-cat: unknown option %s\n", name);
    return false;
  }
  if (!cat_parse_u64(value, num)) {
    fprintf(stderr, "mir-cat: %s needs a non-negative integer, not '%s'\n", name, value);
    return false;
  }
  return true;
}

/* Parses argv into o. Returns -1 to go on, else the exit status. */
static int cat_parse_args(int argc, char **argv, mircat_opts *o) {
  memset(o, 0, sizeof(*o));
  o->files = mir_xcalloc((size_t)argc, sizeof(char *));
  bool only_files = false;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (only_files || a[0] != '-' || a[1] == '\0') {
      o->files[o->n_files++] = a;
    } else if (strcmp(a, "--") == 0) {
      only_files = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cat_usage(stdout);
      return CAT_EXIT_OK;
    } else if (strcmp(a, "--events") == 0) {
      o->mode = MIRCAT_EVENTS;
    } else if (strcmp(a, "--json") == 0) {
      o->mode = MIRCAT_JSON;
    } else if (strcmp(a, "--step") == 0) {
      o->step = true;
    } else {
      char *eq = strchr(a, '=');
      if (eq != NULL) *eq = '\0'; /* --name=value */
      const char *value = eq != NULL ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
      if (!cat_option_value(o, a, value)) return CAT_EXIT_USAGE;
    }
  }
  if (o->n_files == 0) {
    fputs("mir-cat: no input files (see --help)\n", stderr);
    return CAT_EXIT_USAGE;
  }
  if (o->step && o->replay == NULL) {
    fputs("mir-cat: --step needs --replay\n", stderr);
    return CAT_EXIT_USAGE;
  }
  return -1;
}

static bool cat_in(const char *const *list, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(list[i], s) == 0) return true;
  }
  return false;
}

/* "ID" matches ID only; "ID/" matches ID and every id below it. */
static bool cat_dest_match(const char *filter, const char *dest) {
  size_t n = strlen(filter);
  if (n == 0 || filter[n - 1] != '/') return strcmp(filter, dest) == 0;
  return strncmp(filter, dest, n) == 0 ||
         (strncmp(filter, dest, n - 1) == 0 && dest[n - 1] == '\0');
}

bool miri_cat_selected(const mircat_opts *o, uint64_t index, const char *node_id,
                       const Mir__PackedEvent *pe) {
  if (index < o->offset) return false;
  if (o->n_nodes > 0 && !cat_in(o->nodes, o->n_nodes, node_id)) return false;
  if (o->n_types > 0 && !cat_in(o->types, o->n_types, pe->type)) return false;
  if (o->n_dests == 0) return true;
  for (size_t i = 0; i < o->n_dests; i++) {
    if (cat_dest_match(o->dests[i], pe->dest)) return true;
  }
  return false;
}

/* State of one run over the input files. */
typedef struct cat_run {
  const mircat_opts *o;
  mircat_summary *summary; /* summary mode only */
  mircat_replay *replay;   /* replay mode only */
  uint64_t index;          /* global index of the next event */
  uint64_t selected;       /* events selected so far */
  bool done;               /* limit reached or replay stopped */
  int status;
} cat_run;

/* Handles one event of rec. */
/* Handles one event of rec; *record_counted tells whether the summary already counted rec. */
static void cat_event(cat_run *run, const Mir__LogRecord *rec, const Mir__PackedEvent *pe,
                      bool *record_counted) {
  const mircat_opts *o = run->o;
  uint64_t index = run->index++;
  bool sel = miri_cat_selected(o, index, rec->node_id, pe);
  if (sel) run->selected++;
  if (run->replay != NULL) {
    bool node_ok = o->n_nodes == 0 || cat_in(o->nodes, o->n_nodes, rec->node_id);
    if (node_ok && miri_cat_replay_event(run->replay, index, rec, pe, sel, stdout) != MIR_OK) {
      run->status = CAT_EXIT_INPUT;
      run->done = true;
    }
  } else if (sel && o->mode == MIRCAT_SUMMARY) {
    miri_cat_summary_add(run->summary, rec->node_id, pe, !*record_counted);
    *record_counted = true;
  } else if (sel) {
    miri_cat_print_event(stdout, o->mode, index, rec->node_id, rec->time_ns, pe, false);
  }
  if (o->limit > 0 && run->selected >= o->limit) run->done = true;
}

/* Reports how a file ended: a warning for a truncated tail, an error for corrupt data. */
static void cat_file_end(cat_run *run, const char *path, mir_log_reader *r, mir_err err) {
  mir_log_reader_info info;
  mir_log_reader_info_get(r, &info);
  if (err == MIR_EEOF && info.truncated) {
    fprintf(stderr, "mir-cat: %s: warning: log ends inside a record (%llu bytes dropped)\n", path,
            (unsigned long long)info.truncated_bytes);
  } else if (err != MIR_EEOF && err != MIR_OK) {
    fprintf(stderr, "mir-cat: %s: %s: %s (after %llu records)\n", path, mir_strerror(err),
            mir_log_reader_error(r), (unsigned long long)info.records);
    run->status = CAT_EXIT_INPUT;
  }
}

static void cat_file(cat_run *run, const char *path) {
  mir_log_reader *r = NULL;
  mir_err err = mir_log_reader_open(path, &r);
  if (err != MIR_OK) {
    fprintf(stderr, "mir-cat: %s: %s\n", path, mir_error_detail());
    run->status = CAT_EXIT_INPUT;
    return;
  }
  Mir__LogRecord *rec = NULL;
  while (!run->done && (err = mir_log_reader_next(r, &rec)) == MIR_OK) {
    bool counted = false;
    for (size_t i = 0; i < rec->n_events && !run->done; i++) {
      cat_event(run, rec, rec->events[i], &counted);
    }
    mir__log_record__free_unpacked(rec, NULL);
  }
  if (err != MIR_OK) cat_file_end(run, path, r, err);
  mir_log_reader_close(r);
}

int main(int argc, char **argv) {
  mircat_opts o;
  int status = cat_parse_args(argc, argv, &o);
  if (status >= 0) {
    free(o.files);
    return status;
  }
  miri_cat_register_types();
  cat_run run = {.o = &o, .status = CAT_EXIT_OK};
  if (o.replay != NULL) {
    run.replay = miri_cat_replay_new(&o, o.replay, stdin);
    if (run.replay == NULL) {
      free(o.files);
      return CAT_EXIT_USAGE;
    }
  } else if (o.mode == MIRCAT_SUMMARY) {
    run.summary = miri_cat_summary_new();
  }
  for (size_t i = 0; i < o.n_files && !run.done; i++) cat_file(&run, o.files[i]);
  if (run.summary != NULL) miri_cat_summary_print(run.summary, stdout);
  miri_cat_summary_free(run.summary);
  if (run.replay != NULL && miri_cat_replay_free(run.replay, stdout) != MIR_OK) {
    run.status = CAT_EXIT_INPUT;
  }
  free(o.files);
  return run.status;
}
