/*
 * Prints the ordered log of a Mir-C cluster: every entry once f+1 replicas agree on it.
 *
 *   mir-example-subscribe host:port,host:port,... [from_sn|now] [seconds]
 *
 * The callback runs on the SDK's thread; it only prints, and counts entries for main.
 */
#define _POSIX_C_SOURCE 200809L /* getpid, nanosleep */

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mir/client.h"

#define MAX_REPLICAS 64

typedef struct printer {
  atomic_ulong entries;
  atomic_int ended; /* the subscription's final status + 1, or 0 */
} printer;

/* Called for each entry in sn order (entry valid until return), then once with entry == NULL if
 * the subscription ends by itself. */
static void on_entry(mir_client_sub *sub, int status, const mir_client_entry *entry, void *ud) {
  printer *p = ud;
  (void)sub;
  if (entry == NULL) {
    atomic_store(&p->ended, status + 1);
    return;
  }
  printf("sn %" PRIu64 " epoch %" PRIu64 ": %zu transactions", entry->sn, entry->epoch,
         entry->n_txs);
  for (size_t i = 0; i < entry->n_txs && i < 3; i++) {
    const mir_client_tx *tx = &entry->txs[i];
    printf(" [%s/%" PRIu64 " %.*s]", tx->client_id, tx->tx_no, (int)(tx->len > 32 ? 32 : tx->len),
           (const char *)tx->data);
  }
  printf("%s\n", entry->n_txs > 3 ? " ..." : "");
  atomic_fetch_add(&p->entries, 1);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s host:port,... [from_sn|now] [seconds]\n", argv[0]);
    return 2;
  }
  const char *replicas[MAX_REPLICAS];
  size_t n = 0;
  for (char *t = strtok(argv[1], ","); t != NULL && n < MAX_REPLICAS; t = strtok(NULL, ",")) {
    replicas[n++] = t;
  }
  uint64_t from = MIR_CLIENT_FROM_NOW;
  if (argc > 2 && strcmp(argv[2], "now") != 0) from = strtoull(argv[2], NULL, 10);
  int seconds = argc > 3 ? atoi(argv[3]) : 10;
  char client_id[64];
  snprintf(client_id, sizeof(client_id), "subscriber-%d", (int)getpid());

  mir_client_options opts;
  mir_client_options_init(&opts);
  opts.replicas = replicas;
  opts.n_replicas = n;
  opts.client_id = client_id;
  mir_client *client = NULL;
  int err = mir_client_open(&opts, &client);
  if (err != MIR_CLIENT_OK) {
    fprintf(stderr, "open: %s: %s\n", mir_client_strerror(err), mir_client_errdetail());
    return 1;
  }
  printer p = {0};
  mir_client_sub *sub = NULL;
  err = mir_client_subscribe(client, from, on_entry, &p, &sub);
  if (err != MIR_CLIENT_OK) {
    fprintf(stderr, "subscribe: %s: %s\n", mir_client_strerror(err), mir_client_errdetail());
    mir_client_close(client);
    return 1;
  }
  for (int i = 0; i < seconds * 10 && atomic_load(&p.ended) == 0; i++) {
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
  }
  int ended = atomic_load(&p.ended);
  if (ended != 0) fprintf(stderr, "subscription ended: %s\n", mir_client_strerror(ended - 1));
  mir_client_unsubscribe(sub);
  printf("%lu entries\n", (unsigned long)atomic_load(&p.entries));
  mir_client_close(client);
  return ended != 0;
}
