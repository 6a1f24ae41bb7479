/*
 * Identity and credentials of the gRPC transport.
 *
 * A replica's id is bound to its TLS certificate by the URI SAN "mir:replica:<id>"; a certificate
 * without any "mir:replica:" URI SAN is matched on its subject CN instead. The certificate chain
 * itself is verified by gRPC against the cluster CA during the handshake (mutual TLS with a client
 * certificate required), so by the time a call exists its auth context holds a verified identity;
 * this file only compares that identity with the id the caller claims in its metadata and with
 * the membership. Everything read from metadata or the auth context is untrusted bytes with a
 * length: it is bounded and compared, never assumed NUL-terminated, never asserted on.
 *
 * The caller side needs no code here beyond credentials: the channel to peer X names
 * "mir:replica:X" as the TLS target name (net_client.c), and gRPC refuses the handshake unless the
 * server's certificate carries that name.
 */
#include <errno.h>
#include <grpc/grpc_security.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "net_internal.h"

#define REPLICA_URI_PREFIX "mir:replica:"

bool miri_node_id_valid(const char *id, size_t len) {
  if (len == 0 || len >= MIR_NET_ID_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void miri_replica_uri(const char *id, char *buf, size_t size) {
  snprintf(buf, size, "%s%s", REPLICA_URI_PREFIX, id);
}

mir_err miri_read_pem(const char *path, char **out) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return mir_error_set(MIR_EIO, "cannot open %s: %s", path, strerror(errno));
  char *buf = mir_xmalloc(MIR_NET_PEM_BYTES_MAX + 1);
  size_t n = fread(buf, 1, MIR_NET_PEM_BYTES_MAX + 1, f);
  bool failed = ferror(f) != 0;
  fclose(f);
  if (failed || n == 0 || n > MIR_NET_PEM_BYTES_MAX) {
    free(buf);
    return mir_error_set(MIR_EIO, "cannot read %s: %s", path,
                         failed ? "read error" : (n == 0 ? "empty" : "larger than 1 MiB"));
  }
  buf[n] = '\0';
  *out = buf;
  return MIR_OK;
}

grpc_server_credentials *miri_server_credentials(mir_net_grpc *net) {
  if (net->cfg.insecure) return grpc_insecure_server_credentials_create();
  grpc_ssl_pem_key_cert_pair pair = {.private_key = net->tls_key, .cert_chain = net->tls_cert};
  /* Core copies the PEM strings. The CA verifies client certificates, which are required. */
  return grpc_ssl_server_credentials_create_ex(
      net->tls_ca, &pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
}

grpc_channel_credentials *miri_channel_credentials(mir_net_grpc *net) {
  if (net->cfg.insecure) return grpc_insecure_credentials_create();
  grpc_ssl_pem_key_cert_pair pair = {.private_key = net->tls_key, .cert_chain = net->tls_cert};
  return grpc_ssl_credentials_create(net->tls_ca, &pair, NULL, NULL);
}

/* True if the property value (untrusted, value_length bytes) equals s. */
static bool auth_value_is(const grpc_auth_property *p, const char *s) {
  size_t n = strlen(s);
  return p->value != NULL && p->value_length == n && memcmp(p->value, s, n) == 0;
}

/* True if the verified client certificate of call names replica id. */
static bool auth_cert_names(grpc_call *call, const char *id) {
  grpc_auth_context *ctx = grpc_call_auth_context(call);
  if (ctx == NULL) return false;
  bool ok = false;
  if (grpc_auth_context_peer_is_authenticated(ctx)) {
    char uri[MIR_NET_ID_MAX + 16];
    miri_replica_uri(id, uri, sizeof uri);
    bool has_replica_uri = false, uri_match = false;
    grpc_auth_property_iterator it =
        grpc_auth_context_find_properties_by_name(ctx, GRPC_PEER_URI_PROPERTY_NAME);
    const grpc_auth_property *p;
    while ((p = grpc_auth_property_iterator_next(&it)) != NULL) {
      size_t plen = strlen(REPLICA_URI_PREFIX);
      if (p->value != NULL && p->value_length >= plen &&
          memcmp(p->value, REPLICA_URI_PREFIX, plen) == 0) {
        has_replica_uri = true;
        if (auth_value_is(p, uri)) uri_match = true;
      }
    }
    if (has_replica_uri) {
      ok = uri_match; /* the URI SAN is authoritative when present */
    } else {
      it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
      while ((p = grpc_auth_property_iterator_next(&it)) != NULL) {
        if (auth_value_is(p, id)) ok = true;
      }
    }
  }
  grpc_auth_context_release(ctx);
  return ok;
}

/* Finds the one MIR_NET_ID_METADATA entry of md; NULL if absent or repeated. */
static const grpc_metadata *auth_claim(const grpc_metadata_array *md) {
  const grpc_metadata *found = NULL;
  for (size_t i = 0; i < md->count; i++) {
    const grpc_metadata *e = &md->metadata[i];
    size_t klen = strlen(MIR_NET_ID_METADATA);
    if (GRPC_SLICE_LENGTH(e->key) == klen &&
        memcmp(GRPC_SLICE_START_PTR(e->key), MIR_NET_ID_METADATA, klen) == 0) {
      if (found != NULL) return NULL;
      found = e;
    }
  }
  return found;
}

bool miri_authenticate(mir_net_grpc *net, grpc_call *call, const grpc_metadata_array *md,
                       miri_peer **claimed, grpc_status_code *status, miri_refusal *reason,
                       const char **why) {
  *claimed = NULL;
  *status = GRPC_STATUS_UNAUTHENTICATED;
  const grpc_metadata *claim = auth_claim(md);
  if (claim == NULL) {
    *reason = MIRI_REFUSE_NO_ID;
    *why = "missing or repeated " MIR_NET_ID_METADATA;
    return false;
  }
  const char *id = (const char *)GRPC_SLICE_START_PTR(claim->value);
  size_t len = GRPC_SLICE_LENGTH(claim->value);
  if (!miri_node_id_valid(id, len)) {
    *reason = MIRI_REFUSE_BAD_ID;
    *why = "malformed node id";
    return false;
  }
  *claimed = miri_peer_find(net, id, len);
  *status = GRPC_STATUS_PERMISSION_DENIED;
  if (*claimed == NULL) {
    *reason = MIRI_REFUSE_NOT_MEMBER;
    *why = "not a member";
    return false;
  }
  if ((*claimed)->is_self) {
    *reason = MIRI_REFUSE_OWN_ID;
    *why = "claims the receiver's own id";
    return false;
  }
  if (!net->cfg.insecure && !auth_cert_names(call, (*claimed)->id)) {
    *reason = MIRI_REFUSE_CERTIFICATE;
    *why = "certificate does not match the claimed id";
    return false;
  }
  return true;
}
