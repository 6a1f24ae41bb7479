/*
 * mir-cat's summary: counts of selected events per node, per type and per destination.
 *
 * Names come from an untrusted log, so each table is bounded: at most SUMMARY_KEYS_MAX distinct
 * names (open addressing in a fixed table of twice that many slots); events with further names are
 * counted under "(other)". Tables print sorted by name so the output is deterministic.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mircat.h"

#define SUMMARY_KEYS_MAX 4096
#define SUMMARY_SLOTS (2 * SUMMARY_KEYS_MAX)

typedef struct summary_entry {
  char *key; /* owned; NULL for a free slot */
  uint64_t count;
} summary_entry;

typedef struct summary_table {
  summary_entry *slots; /* owned array of SUMMARY_SLOTS */
  size_t len;
  uint64_t other; /* events whose name did not fit */
} summary_table;

struct mircat_summary {
  uint64_t records;
  uint64_t events;
  summary_table nodes;
  summary_table types;
  summary_table dests;
};

static uint64_t summary_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s != '\0'; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static void summary_count(summary_table *t, const char *key) {
  if (key == NULL) key = "";
  size_t i = (size_t)(summary_hash(key) % SUMMARY_SLOTS);
  /* The table is never more than half full, so probing always ends at a match or a free slot. */
  while (t->slots[i].key != NULL && strcmp(t->slots[i].key, key) != 0) i = (i + 1) % SUMMARY_SLOTS;
  if (t->slots[i].key == NULL) {
    if (t->len >= SUMMARY_KEYS_MAX) {
      t->other++;
      return;
    }
    t->slots[i].key = mir_xstrdup(key);
    t->len++;
  }
  t->slots[i].count++;
}

mircat_summary *miri_cat_summary_new(void) {
  mircat_summary *s = mir_xcalloc(1, sizeof(*s));
  s->nodes.slots = mir_xcalloc(SUMMARY_SLOTS, sizeof(summary_entry));
  s->types.slots = mir_xcalloc(SUMMARY_SLOTS, sizeof(summary_entry));
  s->dests.slots = mir_xcalloc(SUMMARY_SLOTS, sizeof(summary_entry));
  return s;
}

void miri_cat_summary_add(mircat_summary *s, const char *node_id, const Mir__PackedEvent *pe,
                          bool new_record) {
  if (new_record) s->records++;
  s->events++;
  summary_count(&s->nodes, node_id);
  summary_count(&s->types, pe->type);
  summary_count(&s->dests, pe->dest);
}

static int summary_cmp(const void *a, const void *b) {
  const summary_entry *x = a, *y = b;
  return strcmp(x->key, y->key);
}

static void summary_print_table(const summary_table *t, const char *title, FILE *out) {
  summary_entry *sorted = mir_xcalloc(t->len > 0 ? t->len : 1, sizeof(*sorted));
  size_t n = 0, width = 0;
  for (size_t i = 0; i < SUMMARY_SLOTS; i++) {
    if (t->slots[i].key == NULL) continue;
    sorted[n++] = t->slots[i];
    size_t w = strlen(t->slots[i].key);
    if (w > width) width = w;
  }
  qsort(sorted, n, sizeof(*sorted), summary_cmp);
  fprintf(out, "%s (%zu):\n", title, n);
  for (size_t i = 0; i < n; i++) {
    fputs("  ", out);
    miri_cat_print_text(out, sorted[i].key);
    size_t w = sorted[i].key[0] != '\0' ? strlen(sorted[i].key) : 1;
    fprintf(out, "%*s  %llu\n", (int)(width > w ? width - w : 0), "",
            (unsigned long long)sorted[i].count);
  }
  if (t->other > 0) fprintf(out, "  (other)  %llu\n", (unsigned long long)t->other);
  free(sorted);
}

void miri_cat_summary_print(const mircat_summary *s, FILE *out) {
  fprintf(out, "records: %llu\n", (unsigned long long)s->records);
  fprintf(out, "events: %llu\n", (unsigned long long)s->events);
  summary_print_table(&s->nodes, "nodes", out);
  summary_print_table(&s->types, "types", out);
  summary_print_table(&s->dests, "destinations", out);
}

static void summary_table_free(summary_table *t) {
  for (size_t i = 0; i < SUMMARY_SLOTS; i++) free(t->slots[i].key);
  free(t->slots);
}

void miri_cat_summary_free(mircat_summary *s) {
  if (s == NULL) return;
  summary_table_free(&s->nodes);
  summary_table_free(&s->types);
  summary_table_free(&s->dests);
  free(s);
}
