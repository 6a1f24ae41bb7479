/*
 * mir-bench-node: micro-benchmark of the node loop (not a test).
 *
 *  chain   N events injected into module m0 travel through a chain of K passive modules
 *          (each forwards every event to the next, the last one drops it); reports events
 *          applied per second summed over the chain, and end-to-end events per second.
 *  inbox   an active module's thread pushes N events in lists of L through the inbox into one
 *          passive sink; reports events per second and how often input was paused.
 *
 * Both run the real dispatcher thread (normal mode) and measure wall time from start to the last
 * event applied, so they include routing, batching, allocation and freeing of every event.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mir/alloc.h"
#include "mir/metrics.h"
#include "mir/node.h"

#define BENCH_CHAIN_MAX 32

typedef struct chain_link {
  char next[MIR_MODULE_ID_MAX]; /* "" for the last link */
  atomic_ulong seen;
} chain_link;

/* Forwards every TestUint64 to the next link by re-addressing the same event: a protocol that
 * forwards would build a new payload, so this measures the loop, not the allocator. */
static mir_err chain_apply(void *state, mir_event_list *in, mir_event_list *out) {
  chain_link *l = state;
  size_t n = 0;
  mir_event *prev = NULL, *ev = in->head;
  while (ev != NULL) {
    mir_event *next = ev->next;
    if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
      n++;
      if (l->next[0] != '\0') {
        mir_event_list_unlink(in, prev, ev);
        strcpy(ev->dest, l->next);
        mir_event_list_push(out, ev);
        ev = next;
        continue;
      }
    }
    prev = ev;
    ev = next;
  }
  atomic_fetch_add(&l->seen, n);
  return MIR_OK;
}

static const mir_module_ops chain_ops = {
    "chain", MIR_MODULE_PASSIVE, chain_apply, NULL, NULL, NULL, false, NULL};

typedef struct producer {
  size_t total, per_list;
  mir_inbox *inbox;
  pthread_t thread;
} producer;

static void *producer_main(void *arg) {
  producer *p = arg;
  for (size_t sent = 0; sent < p->total;) {
    mir_event_list l = MIR_EVENT_LIST_INIT;
    for (size_t i = 0; i < p->per_list && sent < p->total; i++, sent++) {
      mir_event_list_push(&l, mir_event_test_uint64("m0", "prod", sent));
    }
    if (mir_inbox_push(p->inbox, &l) != MIR_OK) break;
  }
  return NULL;
}
static mir_err producer_apply(void *s, mir_event_list *in, mir_event_list *out) {
  (void)s, (void)in, (void)out;
  return MIR_OK;
}
static mir_err producer_start(void *s, mir_inbox *inbox) {
  producer *p = s;
  p->inbox = inbox;
  return pthread_create(&p->thread, NULL, producer_main, p) == 0 ? MIR_OK : MIR_ENOMEM;
}
static void producer_stop(void *s) {
  producer *p = s;
  if (p->inbox) pthread_join(p->thread, NULL);
  p->inbox = NULL;
}
static const mir_module_ops producer_ops = {
    "producer", MIR_MODULE_ACTIVE, producer_apply, producer_start, producer_stop, NULL, false,
    NULL};

static double seconds_since(uint64_t t0) {
  return (double)(mir_now_ns() - t0) / 1e9;
}

/* Runs one configuration; returns wall seconds until the last link saw every event. *pauses
 * receives how often the node paused input (its registry's backpressure counter). */
static double run(size_t links, size_t events, size_t per_list, size_t batch, bool via_inbox,
                  uint64_t *pauses) {
  mir_node_config cfg;
  mir_node_config_default(&cfg);
  cfg.max_batch = batch;
  mir_node *node;
  if (mir_node_new("bench", &cfg, &node) != MIR_OK) exit(2);
  chain_link *chain = mir_xcalloc(links, sizeof *chain);
  for (size_t i = 0; i < links; i++) {
    char id[24]; /* "m" + up to 20 digits */
    snprintf(id, sizeof id, "m%zu", i);
    if (i + 1 < links) snprintf(chain[i].next, sizeof chain[i].next, "m%zu", i + 1);
    if (mir_node_add_module(node, id, &chain_ops, &chain[i]) != MIR_OK) exit(2);
  }
  producer prod = {.total = events, .per_list = per_list};
  if (via_inbox && mir_node_add_module(node, "prod", &producer_ops, &prod) != MIR_OK) exit(2);
  uint64_t t0 = mir_now_ns();
  if (mir_node_start(node) != MIR_OK) exit(2);
  for (size_t sent = 0; !via_inbox && sent < events;) {
    mir_event_list l = MIR_EVENT_LIST_INIT;
    for (size_t i = 0; i < per_list && sent < events; i++, sent++) {
      mir_event_list_push(&l, mir_event_test_uint64("m0", "", sent));
    }
    mir_node_inject(node, &l);
  }
  chain_link *last = &chain[links - 1];
  while (atomic_load(&last->seen) < events && seconds_since(t0) < 120) usleep(200);
  double secs = seconds_since(t0);
  *pauses = (uint64_t)mir_metrics_read(mir_node_metrics(node), "mir_node_backpressure_pauses_total",
                                       NULL);
  mir_node_free(node);
  free(chain);
  return secs;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: mir-bench-node [--events N] [--links K] [--list L] [--batch B] [--runs R]\n"
          "  --events N  events per run (default 2000000)\n"
          "  --links K   passive modules in the chain (default 4, at most %d)\n"
          "  --list L    events per injected/pushed list (default 256)\n"
          "  --batch B   node max_batch (default 512)\n"
          "  --runs R    repetitions of each measurement; the median is reported (default 3)\n",
          BENCH_CHAIN_MAX);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  size_t events = 2000000, links = 4, per_list = 256, batch = 512, runs = 3;
  static const struct option opts[] = {
      {"events", 1, 0, 'n'}, {"links", 1, 0, 'k'}, {"list", 1, 0, 'l'}, {"batch", 1, 0, 'b'},
      {"runs", 1, 0, 'r'},   {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    size_t v = optarg ? strtoull(optarg, NULL, 10) : 0;
    switch (c) {
      case 'n':
        events = v;
        break;
      case 'k':
        links = v;
        break;
      case 'l':
        per_list = v;
        break;
      case 'b':
        batch = v;
        break;
      case 'r':
        runs = v;
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (events == 0 || links == 0 || links > BENCH_CHAIN_MAX || per_list == 0 || batch == 0 ||
      runs == 0 || runs > 99) {
    usage(stderr);
    return 2;
  }
  printf("mir-bench-node: %zu events, lists of %zu, max_batch %zu, median of %zu runs\n", events,
         per_list, batch, runs);
  for (int mode = 0; mode < 2; mode++) {
    double t[99];
    uint64_t pauses = 0;
    size_t k = mode == 0 ? links : 1;
    for (size_t r = 0; r < runs; r++) t[r] = run(k, events, per_list, batch, mode == 1, &pauses);
    qsort(t, runs, sizeof t[0], cmp_double);
    double med = t[runs / 2];
    if (mode == 0) {
      printf("chain  %2zu passive modules: %10.0f events/s end to end, %10.0f applies/s total\n", k,
             (double)events / med, (double)(events * k) / med);
    } else {
      printf("inbox  active -> passive:  %10.0f events/s, input paused %llu times (last run)\n",
             (double)events / med, (unsigned long long)pauses);
    }
  }
  return 0;
}
