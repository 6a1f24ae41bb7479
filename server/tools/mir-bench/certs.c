/*
 * mir-bench's client certificates (--tls-dir): for replicas that require them
 * (client.require_cert), every bench client needs a certificate naming its own client id, and
 * mir-bench makes fresh client ids each run (a client id's tx numbers cannot be reused). So it
 * issues them itself, with the CA of a test cluster (DIR/ca.pem and DIR/ca.key, as
 * deploy/local/cluster.sh and mir-keygen leave them), into a private temporary folder that is
 * removed as soon as the clients have read them (the SDK reads its TLS files at open).
 *
 * Only for test clusters: whoever holds a CA's key can make certificates for any client id.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "mir/alloc.h" /* mir_error_detail */
#include "mir/crypto.h"

#define BENCH_PEM_MAX (64u << 10)
#define BENCH_CERT_DAYS 2

/* Reads path (a PEM file of at most BENCH_PEM_MAX bytes) into an owned string, or NULL. */
static char *certs_read(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *buf = malloc(BENCH_PEM_MAX + 1);
  size_t n = buf != NULL ? fread(buf, 1, BENCH_PEM_MAX + 1, f) : 0;
  bool bad = ferror(f) != 0;
  fclose(f);
  if (buf == NULL || bad || n == 0 || n > BENCH_PEM_MAX) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* Writes text to path with mode; 0 or -1. */
static int certs_write(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return -1;
  size_t n = strlen(text);
  int rc = fchmod(fileno(f), mode) == 0 && fwrite(text, 1, n, f) == n ? 0 : -1;
  if (fclose(f) != 0) rc = -1;
  return rc;
}

int bench_certs_init(bench_certs *bc, const char *dir) {
  memset(bc, 0, sizeof(*bc));
  snprintf(bc->ca_file, sizeof(bc->ca_file), "%s/ca.pem", dir);
  char key_file[PATH_MAX];
  snprintf(key_file, sizeof(key_file), "%s/ca.key", dir);
  bc->ca_pem = certs_read(bc->ca_file);
  bc->ca_key = bc->ca_pem != NULL ? certs_read(key_file) : NULL;
  if (bc->ca_key == NULL) {
    fprintf(stderr, "mir-bench: --tls-dir: cannot read %s and %s (the CA of the cluster)\n",
            bc->ca_file, key_file);
    bench_certs_fini(bc);
    return -1;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(bc->tmp, sizeof(bc->tmp), "%s/mir-bench-certs-XXXXXX", tmp != NULL ? tmp : "/tmp");
  if (mkdtemp(bc->tmp) == NULL) { /* mode 0700 */
    fprintf(stderr, "mir-bench: cannot make a folder for client certificates: %s\n",
            strerror(errno));
    bc->tmp[0] = '\0';
    bench_certs_fini(bc);
    return -1;
  }
  return 0;
}

int bench_certs_issue(bench_certs *bc, const char *client_id, char *cert_path, char *key_path,
                      size_t cap) {
  char *cert = NULL, *key = NULL;
  if (mir_tls_client_cert_new(bc->ca_pem, bc->ca_key, client_id, BENCH_CERT_DAYS, &cert, &key) !=
      MIR_OK) {
    fprintf(stderr, "mir-bench: client certificate for %s: %s\n", client_id, mir_error_detail());
    return -1;
  }
  snprintf(cert_path, cap, "%s/client-%s.crt", bc->tmp, client_id);
  snprintf(key_path, cap, "%s/client-%s.key", bc->tmp, client_id);
  int rc =
      certs_write(cert_path, cert, 0644) == 0 && certs_write(key_path, key, 0600) == 0 ? 0 : -1;
  memset(key, 0, strlen(key));
  free(cert);
  free(key);
  if (rc != 0) fprintf(stderr, "mir-bench: cannot write %s: %s\n", cert_path, strerror(errno));
  return rc;
}

void bench_certs_forget(const char *cert_path, const char *key_path) {
  unlink(cert_path);
  unlink(key_path);
}

void bench_certs_fini(bench_certs *bc) {
  if (bc->tmp[0] != '\0') rmdir(bc->tmp); /* the files went after each client opened */
  if (bc->ca_key != NULL) memset(bc->ca_key, 0, strlen(bc->ca_key));
  free(bc->ca_key);
  free(bc->ca_pem);
  memset(bc, 0, sizeof(*bc));
}
