/* The edge modules' configurations from a replica configuration (replica_wiring.h). */
#include "replica_wiring.h"

#include <string.h>

static void rep_net_limits(const mir_replica_net_limits *l, mir_net_grpc_config *nc) {
  if (l->max_message_bytes) nc->max_message_bytes = l->max_message_bytes;
  if (l->queue_max_msgs) nc->queue_max_msgs = l->queue_max_msgs;
  if (l->queue_max_bytes) nc->queue_max_bytes = l->queue_max_bytes;
  if (l->backoff_min_ms) nc->backoff_min_ms = (uint32_t)l->backoff_min_ms;
  if (l->backoff_max_ms) nc->backoff_max_ms = (uint32_t)l->backoff_max_ms;
  if (l->keepalive_ms) nc->keepalive_ms = (uint32_t)l->keepalive_ms;
  if (nc->frame_max_bytes > nc->max_message_bytes) nc->frame_max_bytes = nc->max_message_bytes;
}

void mir_replica_net_config(const mir_replica_config *c, const mir_membership *m,
                            mir_net_member *members, mir_net_grpc_config *nc) {
  for (size_t i = 0; i < m->n; i++) {
    members[i].id = m->replicas[i].id;
    members[i].addr = m->replicas[i].address;
  }
  mir_net_grpc_config_default(nc);
  nc->own_id = c->id;
  nc->listen_addr =
      c->peer_listen != NULL ? c->peer_listen : mir_membership_find(m, c->id)->address;
  nc->members = members;
  nc->n_members = m->n;
  nc->tls_ca_file = c->tls_ca_file;
  nc->tls_cert_file = c->tls_cert_file;
  nc->tls_key_file = c->tls_key_file;
  nc->insecure = c->insecure;
  rep_net_limits(&c->net, nc);
}

void mir_replica_client_config(const mir_replica_config *c, mir_olog *log,
                               mir_client_service_config *cc) {
  memset(cc, 0, sizeof(*cc));
  cc->own_id = c->id;
  cc->listen_addr = c->client_listen;
  cc->log = log;
  cc->limits = c->client;
  cc->max_tx_bytes = c->trantor.max_tx_bytes;
  cc->client_window = c->trantor.client_window;
  if (c->client_tls) {
    cc->tls_cert_file = c->tls_cert_file;
    cc->tls_key_file = c->tls_key_file;
  }
  if (c->client_require_cert) {
    cc->tls_client_ca_file = c->client_ca_file != NULL ? c->client_ca_file : c->tls_ca_file;
  }
}
