/*
 * The backend-neutral half of TLS material: which replica ids and host names may go into a
 * certificate, and the subjectAltName text both backends hand to their X.509 library.
 *
 * Names are restricted to [A-Za-z0-9_.-] so that an id can never smuggle a separator into the
 * configuration-syntax alternative-name list (a comma would add a name of the caller's choice);
 * hosts are either IP addresses (as parsed by inet_pton) or DNS names of the same alphabet.
 * Client ids have their own alphabet (mir_tls_client_id_valid, the client API's), which has no
 * comma either.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "crypto_common.h"

bool miri_tls_id_ok(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n >= MIR_MODULE_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool miri_tls_san(const char *id, const char *host, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "URI:" MIRI_TLS_URI_PREFIX "%s,DNS:replica-%s", id, id);
  if (host == NULL || host[0] == '\0') return n > 0 && (size_t)n < cap;
  if (n < 0 || (size_t)n >= cap) return false;
  unsigned char addr[16];
  bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
  if (!ip && !miri_tls_id_ok(host)) return false; /* DNS names share the id's alphabet */
  n += snprintf(buf + n, cap - (size_t)n, ",%s:%s", ip ? "IP" : "DNS", host);
  return (size_t)n < cap;
}

bool mir_tls_client_id_valid(const char *id, size_t len) {
  if (id == NULL || len == 0 || len > MIR_TLS_CLIENT_ID_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':' || c == '@';
    if (!ok) return false;
  }
  return true;
}

bool miri_tls_client_san(const char *id, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "URI:" MIRI_TLS_CLIENT_URI_PREFIX "%s", id);
  return n > 0 && (size_t)n < cap;
}
