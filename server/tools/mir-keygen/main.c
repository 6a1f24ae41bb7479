/*
 * mir-keygen: creates the keys and the membership file of a new cluster, and optionally the TLS
 * material for authenticated replica channels (a cluster CA and one certificate per replica).
 *
 * Output in DIR, for i in 0..N-1:
 *   replica-<i>.key      signing key, PEM PKCS#8 (mode 0600)
 *   replica-<i>.pub      its public key, PEM SubjectPublicKeyInfo
 *   membership.json      ids "0".."N-1", addresses host:(base-port + i), base64 public keys
 * and with --tls:
 *   ca.pem, ca.key       the cluster CA (ECDSA P-256, self-signed, 10 years; key mode 0600)
 *   replica-<i>.crt      certificate of replica i: CN "<i>", URI SAN mir:replica:<i>, DNS SAN
 *                        replica-<i>, and the host as IP or DNS SAN; signed by the CA, 10 years
 *   replica-<i>.tls.key  its ECDSA P-256 key, PEM PKCS#8 (mode 0600)
 *
 * and with --client ID (repeatable), for clients of the client API (proto/api/api.proto):
 *   client-<ID>.crt      certificate of client ID: URI SAN mir:client:<ID>, CN "mir client",
 *                        usable by TLS clients only; signed by the CA, 10 years
 *   client-<ID>.key      its ECDSA P-256 key, PEM PKCS#8 (mode 0600)
 * issued by the CA made in the same run (--n N --tls), or, without --n, by the CA already in DIR
 * (ca.pem and ca.key): clients are added to a running cluster that way.
 *
 * Existing files are not overwritten unless --force is given, so that a second run cannot
 * silently replace the keys of a running cluster. The membership file is read back with the
 * same loader replicas use before the tool reports success.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/membership.h"

#define KEYGEN_TLS_DAYS 3650
#define KEYGEN_CLIENTS_MAX 64 /* --client options in one run */

typedef struct keygen_opts {
  long n;
  const char *out;
  mir_sig_scheme scheme;
  long base_port;
  const char *host;
  bool tls;
  bool force;
  const char *clients[KEYGEN_CLIENTS_MAX];
  size_t n_clients;
} keygen_opts;

static void keygen_usage(FILE *f) {
  fprintf(
      f,
      "usage: mir-keygen --n N --out DIR [options]\n"
      "       mir-keygen --out DIR --client ID [--client ID ...] [--force]\n"
      "\n"
      "Creates signing keys and the membership file of an N-replica cluster in DIR; or, without\n"
      "--n, certificates for clients from the CA in DIR (ca.pem, ca.key).\n"
      "\n"
      "  --n N              number of replicas, 1 to %d (ids \"0\" .. \"N-1\")\n"
      "  --out DIR          output folder (created if missing)\n"
      "  --scheme S         ed25519 (default) or ecdsa-p256\n"
      "  --base-port P      replica i listens on P+i (default 7000)\n"
      "  --host H           host of every replica address (default 127.0.0.1)\n"
      "  --tls              also create a cluster CA (ca.pem, ca.key) and per-replica TLS\n"
      "                     certificates (replica-<i>.crt, replica-<i>.tls.key): ECDSA P-256,\n"
      "                     X.509 v3, CN <i>, SAN URI mir:replica:<i>, DNS replica-<i> and the\n"
      "                     host, signed by the CA, valid 10 years\n"
      "  --client ID        a client certificate for client id ID (1..64 bytes of\n"
      "                     [A-Za-z0-9._:@-]; repeatable, at most %d): client-<ID>.crt with URI\n"
      "                     SAN mir:client:<ID>, and its key client-<ID>.key; signed by the CA\n"
      "                     of this run (--n N --tls) or the one in DIR, valid 10 years\n"
      "  --force            overwrite existing files\n"
      "  --help             this text\n"
      "\n"
      "Files: replica-<i>.key (private key, PEM PKCS#8, mode 0600), replica-<i>.pub (PEM),\n"
      "membership.json: {\"scheme\":..., \"replicas\":[{\"id\":\"0\", \"address\":\"H:P\",\n"
      "\"public_key\":\"<base64 of the raw key>\", \"weight\":1}, ...]}.\n",
      MIR_MEMBERSHIP_MAX, KEYGEN_CLIENTS_MAX);
}

/* Parses a decimal number in [lo, hi]; false otherwise. */
static bool keygen_number(const char *s, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

/* Fills o from argv; returns 0 to go on, 1 for a usage error, 2 after --help. */
static int keygen_parse(int argc, char **argv, keygen_opts *o) {
  static const struct option longopts[] = {
      {"n", required_argument, NULL, 'n'},      {"out", required_argument, NULL, 'o'},
      {"scheme", required_argument, NULL, 's'}, {"base-port", required_argument, NULL, 'p'},
      {"host", required_argument, NULL, 'H'},   {"tls", no_argument, NULL, 't'},
      {"client", required_argument, NULL, 'c'}, {"force", no_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
  *o = (keygen_opts){.n = 0, .scheme = MIR_SIG_ED25519, .base_port = 7000, .host = "127.0.0.1"};
  int c, idx = 0;
  while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
    bool ok = true;
    switch (c) {
      case 'n':
        ok = keygen_number(optarg, 1, MIR_MEMBERSHIP_MAX, &o->n);
        break;
      case 'o':
        o->out = optarg;
        break;
      case 's':
        ok = mir_sig_scheme_parse(optarg, &o->scheme);
        break;
      case 'p':
        ok = keygen_number(optarg, 1, 65535, &o->base_port);
        break;
      case 'H':
        o->host = optarg;
        break;
      case 't':
        o->tls = true;
        break;
      case 'c':
        ok = o->n_clients < KEYGEN_CLIENTS_MAX && mir_tls_client_id_valid(optarg, strlen(optarg));
        if (ok) o->clients[o->n_clients++] = optarg;
        break;
      case 'f':
        o->force = true;
        break;
      case 'h':
        return 2;
      default:
        return 1;
    }
    if (!ok) {
      fprintf(stderr, "mir-keygen: invalid value for --%s: %s\n", longopts[idx].name, optarg);
      return 1;
    }
  }
  if (optind != argc || (o->n == 0 && o->n_clients == 0) || o->out == NULL) return 1;
  if (o->n > 0 && o->n_clients > 0 && !o->tls) {
    fprintf(stderr, "mir-keygen: --client with --n needs --tls (the CA that issues it)\n");
    return 1;
  }
  if (o->base_port + o->n - 1 > 65535) {
    fprintf(stderr, "mir-keygen: ports %ld..%ld exceed 65535\n", o->base_port,
            o->base_port + o->n - 1);
    return 1;
  }
  return 0;
}

/* Writes data to DIR/name with mode, through a temporary file and a rename. */
static bool keygen_write(const keygen_opts *o, const char *name, const char *data, mode_t mode) {
  char path[PATH_MAX], tmp[PATH_MAX + 8];
  snprintf(path, sizeof path, "%s/%s", o->out, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  bool ok = f != NULL && fchmod(fileno(f), mode) == 0 &&
            fwrite(data, 1, strlen(data), f) == strlen(data) && fflush(f) == 0 &&
            fsync(fileno(f)) == 0;
  if (f != NULL && fclose(f) != 0) ok = false;
  if (ok && rename(tmp, path) != 0) ok = false;
  if (!ok) {
    fprintf(stderr, "mir-keygen: cannot write %s: %s\n", path, strerror(errno));
    unlink(tmp);
  }
  return ok;
}

/* True (and says so) if DIR/name exists. */
static bool keygen_exists(const keygen_opts *o, const char *name) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", o->out, name);
  if (access(path, F_OK) != 0) return false;
  fprintf(stderr, "mir-keygen: %s exists (use --force to overwrite)\n", path);
  return true;
}

/* True if none of the files this run would write exists yet (or --force is given), so that a
 * refused run leaves the folder as it was. */
static bool keygen_outputs_free(const keygen_opts *o) {
  static const char *const fixed[] = {"membership.json", "ca.pem", "ca.key"};
  static const char *const per_replica[] = {"replica-%ld.key", "replica-%ld.pub", "replica-%ld.crt",
                                            "replica-%ld.tls.key"};
  if (o->force) return true;
  for (size_t i = 0; i < o->n_clients; i++) {
    char name[128];
    snprintf(name, sizeof name, "client-%s.crt", o->clients[i]);
    if (keygen_exists(o, name)) return false;
    snprintf(name, sizeof name, "client-%s.key", o->clients[i]);
    if (keygen_exists(o, name)) return false;
  }
  if (o->n == 0) return true; /* clients only */
  for (size_t k = 0; k < (o->tls ? 3u : 1u); k++) {
    if (keygen_exists(o, fixed[k])) return false;
  }
  for (long i = 0; i < o->n; i++) {
    for (size_t k = 0; k < (o->tls ? 4u : 2u); k++) {
      char name[64];
      snprintf(name, sizeof name, per_replica[k], i);
      if (keygen_exists(o, name)) return false;
    }
  }
  return true;
}

/* True if host is a DNS name, an IPv4 or an IPv6 address in our alphabet. */
static bool keygen_host_ok(const char *host) {
  size_t n = strlen(host);
  if (n == 0 || n >= MIR_HOST_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = host[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':';
    if (!ok) return false;
  }
  return true;
}

/* Creates the signing key of replica i, writes its files and adds its entry to replicas. */
static bool keygen_replica(const keygen_opts *o, long i, json_t *replicas) {
  mir_private_key *key = NULL;
  if (mir_private_key_generate(o->scheme, &key) != MIR_OK) {
    fprintf(stderr, "mir-keygen: key generation failed: %s\n", mir_error_detail());
    return false;
  }
  mir_public_key *pub = mir_private_key_public(key);
  char *key_pem = NULL, *pub_pem = NULL;
  char name[64], address[MIR_HOST_MAX + 16], id[24];
  bool ok = mir_private_key_to_pem(key, &key_pem) == MIR_OK &&
            mir_public_key_to_pem(pub, &pub_pem) == MIR_OK;
  snprintf(name, sizeof name, "replica-%ld.key", i);
  ok = ok && keygen_write(o, name, key_pem, 0600);
  snprintf(name, sizeof name, "replica-%ld.pub", i);
  ok = ok && keygen_write(o, name, pub_pem, 0644);
  bool v6 = strchr(o->host, ':') != NULL;
  snprintf(address, sizeof address, "%s%s%s:%ld", v6 ? "[" : "", o->host, v6 ? "]" : "",
           o->base_port + i);
  snprintf(id, sizeof id, "%ld", i);
  char *b64 = mir_public_key_to_base64(pub);
  json_array_append_new(replicas, json_pack("{s:s, s:s, s:s, s:i}", "id", id, "address", address,
                                            "public_key", b64, "weight", 1));
  free(b64);
  if (key_pem != NULL) memset(key_pem, 0, strlen(key_pem));
  free(key_pem);
  free(pub_pem);
  mir_public_key_free(pub);
  mir_private_key_free(key);
  return ok;
}

/* Issues a certificate and key for every --client from the CA (PEM texts borrowed). */
static bool keygen_clients(const keygen_opts *o, const char *ca_pem, const char *ca_key) {
  for (size_t i = 0; i < o->n_clients; i++) {
    char *cert = NULL, *key = NULL, name[128];
    if (mir_tls_client_cert_new(ca_pem, ca_key, o->clients[i], KEYGEN_TLS_DAYS, &cert, &key) !=
        MIR_OK) {
      fprintf(stderr, "mir-keygen: client certificate %s failed: %s\n", o->clients[i],
              mir_error_detail());
      return false;
    }
    snprintf(name, sizeof name, "client-%s.crt", o->clients[i]);
    bool ok = keygen_write(o, name, cert, 0644);
    snprintf(name, sizeof name, "client-%s.key", o->clients[i]);
    ok = ok && keygen_write(o, name, key, 0600);
    memset(key, 0, strlen(key));
    free(cert);
    free(key);
    if (!ok) return false;
  }
  return true;
}

/* Reads DIR/name (a PEM file of at most 64 KiB) into an owned string; NULL (and says why). */
static char *keygen_read(const keygen_opts *o, const char *name) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", o->out, name);
  FILE *f = fopen(path, "rb");
  char *buf = mir_xmalloc((64u << 10) + 1);
  size_t n = f != NULL ? fread(buf, 1, 64u << 10, f) : 0;
  bool ok = f != NULL && ferror(f) == 0 && n > 0 && n < (64u << 10);
  if (f != NULL) fclose(f);
  if (!ok) {
    fprintf(stderr, "mir-keygen: cannot read %s (the CA that issues client certificates)\n", path);
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* Issues the --client certificates from the CA already in DIR. */
static bool keygen_clients_from_dir(const keygen_opts *o) {
  char *ca_pem = keygen_read(o, "ca.pem");
  char *ca_key = ca_pem != NULL ? keygen_read(o, "ca.key") : NULL;
  bool ok = ca_key != NULL && keygen_clients(o, ca_pem, ca_key);
  if (ca_key != NULL) memset(ca_key, 0, strlen(ca_key));
  free(ca_pem);
  free(ca_key);
  return ok;
}

/* Creates the cluster CA and a TLS certificate and key for every replica. */
static bool keygen_tls(const keygen_opts *o) {
  char *ca_pem = NULL, *ca_key = NULL;
  if (mir_tls_ca_new("mir cluster CA", KEYGEN_TLS_DAYS, &ca_pem, &ca_key) != MIR_OK) {
    fprintf(stderr, "mir-keygen: CA creation failed: %s\n", mir_error_detail());
    return false;
  }
  bool ok = keygen_write(o, "ca.pem", ca_pem, 0644) && keygen_write(o, "ca.key", ca_key, 0600);
  for (long i = 0; ok && i < o->n; i++) {
    char id[24], name[64];
    char *cert = NULL, *key = NULL;
    snprintf(id, sizeof id, "%ld", i);
    if (mir_tls_cert_new(ca_pem, ca_key, id, o->host, KEYGEN_TLS_DAYS, &cert, &key) != MIR_OK) {
      fprintf(stderr, "mir-keygen: certificate %ld failed: %s\n", i, mir_error_detail());
      ok = false;
      break;
    }
    snprintf(name, sizeof name, "replica-%ld.crt", i);
    ok = keygen_write(o, name, cert, 0644);
    snprintf(name, sizeof name, "replica-%ld.tls.key", i);
    ok = ok && keygen_write(o, name, key, 0600);
    free(cert);
    free(key);
  }
  ok = ok && keygen_clients(o, ca_pem, ca_key);
  free(ca_pem);
  free(ca_key);
  return ok;
}

/* Writes membership.json and reads it back with the replicas' loader. */
static bool keygen_membership(const keygen_opts *o, json_t *replicas) {
  json_t *root =
      json_pack("{s:s, s:O}", "scheme", mir_sig_scheme_name(o->scheme), "replicas", replicas);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (text == NULL) return false;
  size_t len = strlen(text);
  char *with_nl = mir_xmalloc(len + 2);
  memcpy(with_nl, text, len);
  memcpy(with_nl + len, "\n", 2);
  free(text);
  bool ok = keygen_write(o, "membership.json", with_nl, 0644);
  free(with_nl);
  if (!ok) return false;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/membership.json", o->out);
  mir_membership *m = NULL;
  if (mir_membership_load(path, &m) != MIR_OK) {
    fprintf(stderr, "mir-keygen: written membership does not load: %s\n", mir_error_detail());
    return false;
  }
  mir_membership_free(m);
  return true;
}

int main(int argc, char **argv) {
  keygen_opts o;
  int rc = keygen_parse(argc, argv, &o);
  if (rc != 0) {
    keygen_usage(rc == 2 ? stdout : stderr);
    return rc == 2 ? 0 : 2;
  }
  if (!keygen_host_ok(o.host)) {
    fprintf(stderr, "mir-keygen: invalid --host %s (a DNS name or an IP address)\n", o.host);
    return 2;
  }
  if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "mir-keygen: cannot create %s: %s\n", o.out, strerror(errno));
    return 1;
  }
  if (!keygen_outputs_free(&o)) return 1;
  if (o.n == 0) {
    if (!keygen_clients_from_dir(&o)) return 1;
    printf("mir-keygen: %zu client certificate%s in %s\n", o.n_clients, o.n_clients == 1 ? "" : "s",
           o.out);
    return 0;
  }
  json_t *replicas = json_array();
  bool ok = true;
  for (long i = 0; ok && i < o.n; i++) ok = keygen_replica(&o, i, replicas);
  ok = ok && (!o.tls || keygen_tls(&o)) && keygen_membership(&o, replicas);
  json_decref(replicas);
  if (!ok) return 1;
  printf("mir-keygen: %ld %s replicas in %s (membership.json%s%s)\n", o.n,
         mir_sig_scheme_name(o.scheme), o.out, o.tls ? ", TLS CA and certificates" : "",
         o.n_clients > 0 ? ", client certificates" : "");
  return 0;
}
