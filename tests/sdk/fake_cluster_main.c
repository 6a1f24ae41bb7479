/*
 * sdk-fake-cluster: the fake cluster of fake_replica.h as a process, for tests that run the SDK's
 * programs (mir-bench, the examples) against it. Prints "127.0.0.1:port,..." on one line, then
 * serves until its standard input closes (the parent exits or closes the pipe) or a time limit.
 *
 *   sdk-fake-cluster N [max_seconds]
 */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fake_replica.h"

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 4;
  int max_s = argc > 2 ? atoi(argv[2]) : 300;
  fake_cluster *fc = fake_cluster_new((uint32_t)n);
  if (fc == NULL) {
    fprintf(stderr, "sdk-fake-cluster: cannot start %d replicas\n", n);
    return 1;
  }
  for (int i = 0; i < n; i++) printf("%s%s", i ? "," : "", fake_addr(fc, (uint32_t)i));
  printf("\n");
  fflush(stdout);
  struct pollfd p = {.fd = 0, .events = POLLIN};
  char buf[64];
  for (int waited = 0; waited < max_s * 10; waited++) {
    if (poll(&p, 1, 100) > 0 && read(0, buf, sizeof(buf)) <= 0) break;
  }
  fake_cluster_free(fc);
  return 0;
}
