/*
 * The BCB sample over gRPC with Ed25519 (bcb_grpc.h): loopback ports, an in-memory membership,
 * throwaway TLS material, and the per-node wiring of the crypto module, the gRPC transport and the
 * BCB module.
 *
 * The membership is built as membership-file text and parsed by mir_membership_parse rather than
 * filled in directly, so the sample's keys and addresses meet every check a replica's membership
 * file meets (unique ids, addresses and keys; small-order Ed25519 keys refused). Each node's key
 * set then comes from mir_keyset_from_membership in the caller, which also checks that the node's
 * private key is the one the membership lists.
 *
 * Only 127.0.0.1 is ever used: the sample is a demonstration and a test, not a deployment, and a
 * membership naming any other host is refused before a socket is opened.
 */
#include "bcb_grpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mir/alloc.h"

#define BG_N MIR_SAMPLE_BCB_NODES
#define BG_CERT_DAYS 1
#define BG_CA_NAME "mir-bcb-sample-ca"

static const char *const bg_ids[BG_N] = {"0", "1", "2", "3"};

/* ---- ports ---- */

mir_err mir_bcb_grpc_free_ports(uint16_t *ports, size_t n) {
  int fds[BG_N];
  if (n > BG_N) return mir_error_set(MIR_EINVAL, "bcb: at most %d ports", BG_N);
  mir_err err = MIR_OK;
  size_t opened = 0;
  for (; opened < n && err == MIR_OK; opened++) {
    fds[opened] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fds[opened] < 0 || bind(fds[opened], (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fds[opened], (struct sockaddr *)&a, &len) != 0) {
      err = mir_error_set(MIR_EIO, "bcb: no free loopback port: %s", strerror(errno));
    } else {
      ports[opened] = ntohs(a.sin_port);
    }
  }
  /* All sockets stay bound until every port is chosen, so the ports differ. */
  for (size_t i = 0; i < opened; i++) {
    if (fds[i] >= 0) close(fds[i]);
  }
  return err;
}

/* ---- membership ---- */

/* Appends the replica entry of node i to the JSON text in buf (cap bytes at *len). */
static mir_err bg_replica_json(size_t i, const mir_public_key *pub, uint16_t port, char *buf,
                               size_t cap, size_t *len) {
  if (mir_public_key_scheme(pub) != MIR_SIG_ED25519) {
    return mir_error_set(MIR_EINVAL, "bcb: the key of node %s is not an Ed25519 key", bg_ids[i]);
  }
  char *b64 = mir_public_key_to_base64(pub);
  int n = snprintf(buf + *len, cap - *len,
                   "%s{\"id\": \"%s\", \"address\": \"" MIR_BCB_GRPC_HOST
                   ":%u\", \"public_key\": \"%s\"}",
                   i == 0 ? "" : ", ", bg_ids[i], (unsigned)port, b64);
  free(b64);
  if (n < 0 || (size_t)n >= cap - *len) return mir_error_set(MIR_EINVAL, "bcb: membership text");
  *len += (size_t)n;
  return MIR_OK;
}

mir_err mir_bcb_grpc_membership_new(const mir_public_key *const pubs[MIR_SAMPLE_BCB_NODES],
                                    const uint16_t ports[MIR_SAMPLE_BCB_NODES],
                                    mir_membership **out) {
  char text[1024];
  size_t len = (size_t)snprintf(text, sizeof text, "{\"scheme\": \"ed25519\", \"replicas\": [");
  mir_err err = MIR_OK;
  for (size_t i = 0; i < BG_N && err == MIR_OK; i++) {
    err = bg_replica_json(i, pubs[i], ports[i], text, sizeof text, &len);
  }
  if (err != MIR_OK) return err;
  if (len + 3 > sizeof text) return mir_error_set(MIR_EINVAL, "bcb: membership text");
  memcpy(text + len, "]}", 3);
  return mir_membership_parse(text, len + 2, "bcb membership", out);
}

/* ---- TLS material ---- */

/* Writes text (borrowed) to dir/name with mode, refusing to replace an existing file. */
static mir_err bg_write(const char *dir, const char *name, const char *text, mode_t mode) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
    return mir_error_set(MIR_EIO, "bcb: path too long in %s", dir);
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return mir_error_set(MIR_EIO, "bcb: %s: %s", path, strerror(errno));
  size_t len = strlen(text), done = 0;
  while (done < len) {
    ssize_t w = write(fd, text + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
  }
  bool ok = done == len;
  ok = close(fd) == 0 && ok;
  return ok ? MIR_OK : mir_error_set(MIR_EIO, "bcb: writing %s failed", path);
}

/* Frees a PEM string holding a private key, wiping it first. */
static void bg_free_secret(char *pem) {
  if (pem == NULL) return;
  explicit_bzero(pem, strlen(pem));
  free(pem);
}

/* Issues node id's certificate under the CA and writes <id>.crt and <id>.key into dir. */
static mir_err bg_write_node_tls(const char *dir, const char *ca_cert, const char *ca_key,
                                 const char *id) {
  char *cert = NULL, *key = NULL;
  mir_err err = mir_tls_cert_new(ca_cert, ca_key, id, MIR_BCB_GRPC_HOST, BG_CERT_DAYS, &cert, &key);
  char name[MIR_MODULE_ID_MAX + 8];
  if (err == MIR_OK) {
    snprintf(name, sizeof name, "%s.crt", id);
    err = bg_write(dir, name, cert, 0644);
  }
  if (err == MIR_OK) {
    snprintf(name, sizeof name, "%s.key", id);
    err = bg_write(dir, name, key, 0600);
  }
  free(cert);
  bg_free_secret(key);
  return err;
}

mir_err mir_bcb_grpc_tls_write(const char *dir) {
  char *ca_cert = NULL, *ca_key = NULL;
  mir_err err = mir_tls_ca_new(BG_CA_NAME, BG_CERT_DAYS, &ca_cert, &ca_key);
  if (err == MIR_OK) err = bg_write(dir, "ca.pem", ca_cert, 0644);
  for (size_t i = 0; i < BG_N && err == MIR_OK; i++) {
    err = bg_write_node_tls(dir, ca_cert, ca_key, bg_ids[i]);
  }
  free(ca_cert);
  bg_free_secret(ca_key);
  return err;
}

void mir_bcb_grpc_tls_remove(const char *dir) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/ca.pem", dir);
  unlink(path);
  for (size_t i = 0; i < BG_N; i++) {
    snprintf(path, sizeof path, "%s/%s.crt", dir, bg_ids[i]);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s.key", dir, bg_ids[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* ---- per-node wiring ---- */

/* Checks that m is the sample's membership (nodes "0" .. "3", Ed25519, loopback only) and that
 * node_id and the key set's own id name the same member. */
static mir_err bg_check(const mir_bcb_grpc_node_config *cfg) {
  const mir_membership *m = cfg->membership;
  if (m == NULL || m->scheme != MIR_SIG_ED25519 || m->n != BG_N) {
    return mir_error_set(MIR_EINVAL, "bcb: the membership must list nodes 0 to 3 with Ed25519");
  }
  for (size_t i = 0; i < m->n; i++) {
    if (strcmp(m->replicas[i].id, bg_ids[i]) != 0) {
      return mir_error_set(MIR_EINVAL, "bcb: replicas[%zu] must be node %s", i, bg_ids[i]);
    }
    if (strcmp(m->replicas[i].host, MIR_BCB_GRPC_HOST) != 0) {
      return mir_error_set(MIR_EINVAL, "bcb: node %s: only " MIR_BCB_GRPC_HOST " is allowed",
                           m->replicas[i].id);
    }
  }
  if (cfg->node_id == NULL || mir_membership_find(m, cfg->node_id) == NULL) {
    return mir_error_set(MIR_EINVAL, "bcb: node '%.64s' is not a member",
                         cfg->node_id ? cfg->node_id : "");
  }
  if (cfg->keys == NULL || strcmp(mir_keyset_own_id(cfg->keys), cfg->node_id) != 0) {
    return mir_error_set(MIR_EINVAL, "bcb: node %s needs its own key set", cfg->node_id);
  }
  return MIR_OK;
}

/* Adds the gRPC transport "net" of cfg->node_id, listening on its membership address. */
static mir_err bg_add_net(mir_node *node, const mir_bcb_grpc_node_config *cfg, mir_net_grpc **out) {
  const mir_membership *m = cfg->membership;
  mir_net_member members[BG_N];
  for (size_t i = 0; i < BG_N; i++) {
    members[i].id = m->replicas[i].id;
    members[i].addr = m->replicas[i].address;
  }
  mir_net_grpc_config nc;
  mir_net_grpc_config_default(&nc);
  nc.own_id = cfg->node_id;
  nc.listen_addr = mir_membership_find(m, cfg->node_id)->address;
  nc.members = members;
  nc.n_members = BG_N;
  char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
  if (cfg->tls_dir != NULL) {
    snprintf(ca, sizeof ca, "%s/ca.pem", cfg->tls_dir);
    snprintf(cert, sizeof cert, "%s/%s.crt", cfg->tls_dir, cfg->node_id);
    snprintf(key, sizeof key, "%s/%s.key", cfg->tls_dir, cfg->node_id);
    nc.tls_ca_file = ca;
    nc.tls_cert_file = cert;
    nc.tls_key_file = key;
  } else {
    nc.insecure = true;
  }
  mir_net_grpc *net;
  mir_err err = mir_net_grpc_new(&nc, &net);
  if (err == MIR_OK) err = mir_node_add_module(node, MIR_SAMPLE_NET, &mir_net_grpc_ops, net);
  if (err == MIR_OK) *out = net;
  return err;
}

mir_err mir_bcb_grpc_add_modules(mir_node *node, const mir_bcb_grpc_node_config *cfg,
                                 mir_bcb_grpc_modules *out) {
  mir_bcb_grpc_modules mods = {0};
  mir_err err = bg_check(cfg);
  if (err != MIR_OK) {
    mir_keyset_free(cfg->keys);
    return err;
  }
  mir_crypto_config cc;
  mir_crypto_config_default(&cc);
  cc.workers = cfg->crypto_workers > 0 ? cfg->crypto_workers : 1;
  err = mir_crypto_module_new(cfg->keys, &cc, &mods.crypto); /* takes the key set */
  if (err == MIR_OK) {
    err = mir_node_add_module(node, MIR_SAMPLE_CRYPTO, &mir_crypto_module_ops, mods.crypto);
  }
  if (err == MIR_OK) err = bg_add_net(node, cfg, &mods.net);
  if (err == MIR_OK) err = mir_sample_add_bcb(node, cfg->node_id, &mods.bcb);
  if (err == MIR_OK && out != NULL) *out = mods;
  return err;
}
