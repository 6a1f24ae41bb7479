/*
 * Submits a few transactions to a Mir-C cluster and waits until each is committed.
 *
 *   mir-example-submit 127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 [count]
 *
 * Each transaction is committed once f+1 replicas delivered it at the same sequence number;
 * the program prints that number, then the client's counters.
 */
#define _POSIX_C_SOURCE 200809L /* getpid, nanosleep */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mir/client.h"

#define MAX_REPLICAS 64

/* Splits "a,b,c" in place into at most MAX_REPLICAS addresses; returns the count. */
static size_t split_addresses(char *list, const char **out) {
  size_t n = 0;
  for (char *tok = strtok(list, ","); tok != NULL && n < MAX_REPLICAS; tok = strtok(NULL, ",")) {
    out[n++] = tok;
  }
  return n;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s host:port,host:port,... [count]\n", argv[0]);
    return 2;
  }
  const char *replicas[MAX_REPLICAS];
  char client_id[64];
  /* A client id is used by one process at a time: make one per run. */
  snprintf(client_id, sizeof(client_id), "example-%d", (int)getpid());
  int count = argc > 2 ? atoi(argv[2]) : 5;

  mir_client_options opts;
  mir_client_options_init(&opts);
  opts.replicas = replicas;
  opts.n_replicas = split_addresses(argv[1], replicas);
  opts.client_id = client_id;

  mir_client *client = NULL;
  int err = mir_client_open(&opts, &client);
  if (err != MIR_CLIENT_OK) {
    fprintf(stderr, "open: %s: %s\n", mir_client_strerror(err), mir_client_errdetail());
    return 1;
  }

  int failed = 0;
  for (int i = 0; i < count; i++) {
    char data[64];
    int len = snprintf(data, sizeof(data), "hello %d from %s", i, client_id);
    mir_client_ticket ticket;
    err = mir_client_submit(client, data, (size_t)len, NULL, NULL, &ticket);
    if (err != MIR_CLIENT_OK) {
      fprintf(stderr, "submit: %s: %s\n", mir_client_strerror(err), mir_client_errdetail());
      failed = 1;
      break;
    }
    mir_client_result result;
    err = mir_client_wait(client, ticket, 10000, &result);
    if (err == MIR_CLIENT_OK) {
      printf("tx %" PRIu64 " committed at sn %" PRIu64 "\n", ticket, result.sn);
    } else if (err == MIR_CLIENT_EREJECTED) {
      printf("tx %" PRIu64 " rejected: %s\n", ticket, result.reason);
      failed = 1;
    } else {
      printf("tx %" PRIu64 ": %s\n", ticket, mir_client_strerror(err));
      failed = 1;
    }
  }

  mir_client_stats stats;
  mir_client_stats_get(client, &stats);
  printf("submitted %" PRIu64 ", committed %" PRIu64 ", requests %" PRIu64 ", reconnects %" PRIu64
         "\n",
         stats.submitted, stats.committed, stats.requests_sent, stats.reconnects);
  mir_client_close(client);
  return failed;
}
