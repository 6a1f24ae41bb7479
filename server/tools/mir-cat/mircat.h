/*
 * Internal to mir-cat: options, the event printers, the generic protobuf-c to JSON printer, the
 * summary tables and the replay targets.
 */
#ifndef MIRI_MIRCAT_H
#define MIRI_MIRCAT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mir/errors.h"
#include "mir/event.pb-c.h"
#include "mir/node.h"
#include "mir/record.pb-c.h"

/* Most values of each repeatable filter option. */
#define MIRCAT_FILTERS_MAX 64
/* Deepest nesting the JSON printer follows (messages and packed payloads); deeper values are
 * printed as "...". */
#define MIRCAT_JSON_DEPTH_MAX 32

typedef enum mircat_mode { MIRCAT_SUMMARY = 0, MIRCAT_EVENTS, MIRCAT_JSON } mircat_mode;

typedef struct mircat_opts {
  mircat_mode mode;
  const char *types[MIRCAT_FILTERS_MAX];
  size_t n_types;
  const char *dests[MIRCAT_FILTERS_MAX];
  size_t n_dests;
  const char *nodes[MIRCAT_FILTERS_MAX];
  size_t n_nodes;
  uint64_t offset;
  uint64_t limit; /* 0: no limit */
  const char *replay;
  bool step;
  char **files; /* borrowed from argv */
  size_t n_files;
} mircat_opts;

/* True if the event at global index `index` of a record of node_id passes every filter except
 * the limit. All arguments are borrowed. */
bool miri_cat_selected(const mircat_opts *o, uint64_t index, const char *node_id,
                       const Mir__PackedEvent *pe);

/* ---- output (json.c) ---- */

/* Prints s (borrowed) to out (borrowed) for a terminal: printable ASCII as is, every other byte as
 * \xHH, NULL as
 * "-" and "" as "-". */
void miri_cat_print_text(FILE *out, const char *s);

/* Prints len bytes of s (borrowed) as a JSON string: escapes, invalid UTF-8 replaced by U+FFFD. */
void miri_cat_json_string(FILE *out, const char *s, size_t len);

/* Prints data (borrowed) as a JSON string holding its standard base64 (with padding). */
void miri_cat_json_base64(FILE *out, const uint8_t *data, size_t len);

/* Prints msg (borrowed) as a JSON object, field names as in the .proto file. 64-bit integers are
 * JSON numbers. Packed payloads (mir.PackedEvent.payload, mir.PackedMessage.data,
 * mir.AnyMessage.data) whose type is registered are decoded and printed as objects. */
void miri_cat_json_message(FILE *out, const ProtobufCMessage *msg, int depth);

/* Prints the packed message data (borrowed) of type `type` as a JSON object if the type is
 * registered and the bytes decode, else as a base64 string. */
void miri_cat_json_payload(FILE *out, const char *type, const uint8_t *data, size_t len, int depth);

/* Prints one event line (--events) or JSON object (--json). `emitted` marks an event a replayed
 * node produced. Arguments are borrowed. */
void miri_cat_print_event(FILE *out, mircat_mode mode, uint64_t index, const char *node_id,
                          int64_t time_ns, const Mir__PackedEvent *pe, bool emitted);

/* ---- summary (summary.c) ---- */

typedef struct mircat_summary mircat_summary;

/* Creates empty counting tables. Returns owned (free with miri_cat_summary_free). */
mircat_summary *miri_cat_summary_new(void);
/* Counts one selected event; all arguments are borrowed. new_record: the first selected event of
 * its record. */
void miri_cat_summary_add(mircat_summary *s, const char *node_id, const Mir__PackedEvent *pe,
                          bool new_record);
/* Prints the counts, each table sorted by name; s and out are borrowed. */
void miri_cat_summary_print(const mircat_summary *s, FILE *out);
/* Frees s (takes ownership). NULL is a no-op. */
void miri_cat_summary_free(mircat_summary *s);

/* ---- replay (replay.c) ---- */

/* Adds the modules of a replay target to node (borrowed), for the recorded node_id (borrowed). */
typedef mir_err (*mircat_build_fn)(mir_node *node, const char *target, const char *node_id);

typedef struct mircat_target {
  const char *name;
  const char *help;
  mircat_build_fn build;
} mircat_target;

/* Registers every payload type mir-cat can decode (framework and linked samples); the
 * descriptors are static. */
void miri_cat_register_types(void);

/* The replay targets, terminated by an entry whose name is NULL. Borrowed, static. */
const mircat_target *miri_cat_targets(void);

typedef struct mircat_replay mircat_replay;

/* Creates a replay of target (borrowed) reading Enter from in (borrowed) when o->step. The node is
 * created at the first event. Returns owned (free with miri_cat_replay_free), or NULL with a
 * message on stderr for an unknown target. */
mircat_replay *miri_cat_replay_new(const mircat_opts *o, const char *target, FILE *in);

/* Feeds one recorded event (borrowed) of record rec (borrowed) at global index `index`; prints it
 * and what the node emits when the event is selected. MIR_OK to go on; any other value stops. */
mir_err miri_cat_replay_event(mircat_replay *rp, uint64_t index, const Mir__LogRecord *rec,
                              const Mir__PackedEvent *pe, bool selected, FILE *out);

/* Stops the node, prints the replay counters to out (borrowed) and frees rp (takes ownership).
 * Returns the node's error. NULL is a no-op. */
mir_err miri_cat_replay_free(mircat_replay *rp, FILE *out);

#endif
