#!/bin/sh
# mir-entrypoint: the entry point of the Mir-C image (docs/OPERATIONS.md, "Docker").
#
#   mir-entrypoint replica    runs mir-replica as this process (PID 1 in the container)
#   mir-entrypoint health     exit status 0 when the local replica answers Status
#   mir-entrypoint status [ADDR...]
#                             mir-status of ADDR (default: the local replica) with the TLS
#                             options the client API of this container's replica asks for
#   mir-entrypoint keygen N   keys, TLS certificates and membership of an N-replica cluster in
#                             MIR_KEYS_DIR, hosts replica-0 .. replica-N-1 (a no-op when
#                             membership.json exists); where MIR_REPLICAS_DIR/<i>/keys and
#                             /<i>/data exist (default /replicas), copies replica i's own keys
#                             there and marks its data folder as that of a new replica; client
#                             certificates (below) for the ids in MIR_CLIENT_IDS and for
#                             "status", copied with ca.pem into MIR_CLIENTS_DIR where it exists
#                             (default /clients); an id's certificate is made once
#   mir-entrypoint bench ARG...
#                             mir-bench ARG..., with --tls-dir MIR_KEYS_DIR when MIR_CLIENT_TLS=1:
#                             it issues its clients' certificates with the CA key found there
#   mir-entrypoint demo ARG...
#                             mir-demo ARG..., with MIR_CLIENT_TLS=1 as the client "demo" with the
#                             certificate in MIR_CLIENTS_DIR (client-demo.crt, .key, ca.pem)
#   mir-entrypoint CMD ARG... runs CMD (mir-status, mir-bench, mir-cat, ...)
#
# Configuration. With a file at MIR_CONFIG (default /etc/mir/replica.json, mounted read-only)
# the replica reads it as it is. Without one, the file is made from these variables:
#   MIR_ID             this replica's id (required)
#   MIR_KEYS_DIR       membership.json, replica-<id>.key, ca.pem, replica-<id>.crt and
#                      replica-<id>.tls.key (default /keys)
#   MIR_DATA_DIR       the data folder (default /data, the volume)
#   MIR_PEER_LISTEN    peer transport address (default 0.0.0.0:7000)
#   MIR_CLIENT_LISTEN  client API address (default 0.0.0.0:9000)
#   MIR_CLIENT_TLS     1: the client API serves TLS with the replica's certificate (default 0)
#   MIR_CLIENT_CERTS   1: every client must present a certificate issued by the cluster CA that
#                      names its client id (mir:client:<id>; needs MIR_CLIENT_TLS=1); the health
#                      check presents MIR_KEYS_DIR/client-status.crt and .key (default 0)
#   MIR_HTTP_LISTEN    /metrics, /debug/stats and profiles (default 0.0.0.0:9100; empty: off)
#   MIR_LOG            log level (trace, debug, info, warn, error; default info)
#   MIR_STORE_SYNC     0: no fsync per group of writes (survives process crashes only; default 1)
#
# Start mode (MIR_START; docs/OPERATIONS.md, "Data folder"):
#   auto (default)  resume when the data folder holds a store; start a new replica (--new) only
#                   when it holds none and carries the new-cluster mark that keygen leaves in
#                   the data folders of a cluster it has just created (or rejoin, --rejoin,
#                   when it carries the rejoin mark .mir-rejoin that an operator or Ansible
#                   leaves); otherwise refuse, since a replica that lost its data must start
#                   with --rejoin, never --new. A mark serves one start: it is removed once the
#                   store exists, so that every later start of the container resumes
#   new | rejoin    pass --new or --rejoin (the replica refuses either when a store exists)
#   resume          pass neither
set -eu

data="${MIR_DATA_DIR:-/data}"
keys="${MIR_KEYS_DIR:-/keys}"
config="${MIR_CONFIG:-/etc/mir/replica.json}"
mark=".mir-new-cluster"
rejoin_mark=".mir-rejoin"

die() {
  echo "mir-entrypoint: $*" >&2
  exit 2
}

# The port of a host:port address.
port_of() { echo "${1##*:}"; }

make_config() {
  [ -n "${MIR_ID:-}" ] || die "no configuration file at $config and MIR_ID is not set"
  case "$MIR_ID" in *[!A-Za-z0-9._-]*) die "MIR_ID: '$MIR_ID' is not a replica id" ;; esac
  case "${MIR_STORE_SYNC:-1}" in 1) sync=true ;; 0) sync=false ;; *) die "MIR_STORE_SYNC must be 0 or 1" ;; esac
  case "${MIR_CLIENT_TLS:-0}" in 1) ctls=true ;; 0) ctls=false ;; *) die "MIR_CLIENT_TLS must be 0 or 1" ;; esac
  case "${MIR_CLIENT_CERTS:-0}" in
    1) [ "$ctls" = true ] || die "MIR_CLIENT_CERTS=1 needs MIR_CLIENT_TLS=1 (client certificates are a TLS matter)"
       certs=true ;;
    0) certs=false ;;
    *) die "MIR_CLIENT_CERTS must be 0 or 1" ;;
  esac
  files="membership.json replica-$MIR_ID.key ca.pem replica-$MIR_ID.crt replica-$MIR_ID.tls.key"
  if [ "$certs" = true ]; then files="$files client-status.crt client-status.key"; fi
  for f in $files; do
    [ -r "$keys/$f" ] || die "MIR_KEYS_DIR: $keys/$f is missing or unreadable"
  done
  out="${TMPDIR:-/tmp}/mir-replica.json"
  http="${MIR_HTTP_LISTEN-0.0.0.0:9100}"
  if [ -n "$http" ]; then http="
  \"http_listen\": \"$http\","; fi
  cat >"$out" <<JSON
{
  "id": "$MIR_ID",
  "membership": "$keys/membership.json",
  "key_file": "$keys/replica-$MIR_ID.key",
  "tls": {"ca_file": "$keys/ca.pem", "cert_file": "$keys/replica-$MIR_ID.crt",
          "key_file": "$keys/replica-$MIR_ID.tls.key"},
  "peer_listen": "${MIR_PEER_LISTEN:-0.0.0.0:7000}",
  "client_listen": "${MIR_CLIENT_LISTEN:-0.0.0.0:9000}",
  "client_tls": $ctls,
  "client": {"require_cert": $certs},$http
  "data_dir": "$data",
  "store": {"sync": $sync}
}
JSON
  config="$out"
}

start_flag() {
  case "${MIR_START:-auto}" in
    new) echo --new ;;
    rejoin) echo --rejoin ;;
    resume) ;;
    auto)
      if [ -d "$data/db" ]; then
        # The store exists: the replica has started, the marks have served.
        rm -f "$data/$mark" "$data/$rejoin_mark"
      elif [ -f "$data/$rejoin_mark" ]; then
        echo --rejoin
      elif [ -f "$data/$mark" ]; then
        echo --new
      else
        die "$data holds no store and no new-cluster mark: a replica that lost its data starts with MIR_START=rejoin (or the mark $data/$rejoin_mark); the first start of a new cluster uses MIR_START=new (or keygen's mark)"
      fi
      ;;
    *) die "MIR_START must be auto, new, rejoin or resume, not '${MIR_START}'" ;;
  esac
}

replica() {
  [ -f "$config" ] || make_config
  flag="$(start_flag)" || exit 2
  # exec: the replica is process 1, so docker stop's SIGTERM reaches it directly.
  # shellcheck disable=SC2086
  exec mir-replica --config "$config" $flag
}

# mir-status with the TLS options of this container's client API (MIR_CLIENT_TLS,
# MIR_CLIENT_CERTS) and the given arguments; the local replica when no address is given.
status() {
  set -- --timeout-ms 3000 "$@"
  if [ "${MIR_CLIENT_TLS:-0}" = 1 ]; then
    set -- --tls-ca "$keys/ca.pem" "$@"
    if [ "${MIR_CLIENT_CERTS:-0}" = 1 ]; then
      set -- --tls-cert "$keys/client-status.crt" --tls-key "$keys/client-status.key" "$@"
    fi
  fi
  for a in "$@"; do
    case "$a" in *:[0-9]*) exec mir-status "$@" ;; esac
  done
  # No address: the local replica, by loopback; its certificate names it replica-<id>, whatever
  # host names the certificate was made for.
  if [ "${MIR_CLIENT_TLS:-0}" = 1 ] && [ -n "${MIR_ID:-}" ]; then
    set -- --tls-server-name "replica-$MIR_ID" "$@"
  fi
  exec mir-status "$@" "127.0.0.1:$(port_of "${MIR_CLIENT_LISTEN:-0.0.0.0:9000}")"
}

# mir-bench and mir-demo as clients of a cluster whose client API is TLS with client
# certificates when MIR_CLIENT_TLS=1 (as compose runs it), plaintext otherwise.
bench() {
  if [ "${MIR_CLIENT_TLS:-0}" = 1 ]; then set -- --tls-dir "$keys" "$@"; fi
  exec mir-bench "$@"
}

demo() {
  c="${MIR_CLIENTS_DIR:-/clients}"
  if [ "${MIR_CLIENT_TLS:-0}" = 1 ]; then
    set -- --client-id demo --tls-ca "$c/ca.pem" --tls-cert "$c/client-demo.crt" \
      --tls-key "$c/client-demo.key" "$@"
  fi
  exec mir-demo "$@"
}

# The HEALTHCHECK: the local replica answers Status (over TLS, with the status client's
# certificate, when its client API asks for them).
health() {
  status >/dev/null
}

# Client certificates from the cluster CA in MIR_KEYS_DIR, one per id of MIR_CLIENT_IDS
# (default "app demo") and one for "status" (the health check's and mir-entrypoint status's), each
# made once; then ca.pem and every client-<id> pair go to MIR_CLIENTS_DIR (default /clients) where
# it exists, for the clients of the cluster. A client id's transactions are numbered from 0 by a
# new client: give every application its own id, and mir-bench its own run of ids (--tls-dir).
client_certs() {
  for c in status ${MIR_CLIENT_IDS-app demo}; do
    case "$c" in *[!A-Za-z0-9._:@-]*) die "MIR_CLIENT_IDS: '$c' is not a client id" ;; esac
    if [ ! -f "$keys/client-$c.crt" ]; then
      mir-keygen --out "$keys" --client "$c" >/dev/null
      echo "mir-entrypoint: client certificate for '$c' in $keys"
    fi
  done
  clients="${MIR_CLIENTS_DIR:-/clients}"
  if [ -d "$clients" ]; then
    cp "$keys/ca.pem" "$keys"/client-*.crt "$keys"/client-*.key "$clients/"
    if [ "$(id -u)" = 0 ]; then chown -R mir:mir "$clients"; fi
  fi
}

keygen() {
  n="${1:-}"
  case "$n" in '' | *[!0-9]*) die "keygen N: N must be a number of replicas" ;; esac
  port="$(port_of "${MIR_PEER_LISTEN:-0.0.0.0:7000}")"
  fresh=0
  if [ -f "$keys/membership.json" ]; then
    echo "mir-entrypoint: $keys/membership.json exists: keys kept"
  else
    # Every replica listens on the same port in its own container; mir-keygen numbers ports
    # from a base, so the addresses become replica-<i>:<port> (the certificates name
    # mir:replica:<i>, which is what the transport checks, not the host).
    mir-keygen --n "$n" --out "$keys" --tls --base-port "$port" --host 127.0.0.1 >/dev/null
    i=0
    while [ "$i" -lt "$n" ]; do
      sed -i "s/\"127\\.0\\.0\\.1:$((port + i))\"/\"replica-$i:$port\"/" "$keys/membership.json"
      i=$((i + 1))
    done
    fresh=1
    echo "mir-entrypoint: keys of $n replicas in $keys"
  fi
  client_certs
  i=0
  while [ "$i" -lt "$n" ]; do
    # Replica i's own folders, where mounted: its keys (and no other replica's private key), the
    # certificate its health check presents, and, only for a cluster made just now, its data
    # folder marked as that of a new replica.
    r="${MIR_REPLICAS_DIR:-/replicas}/$i"
    if [ -d "$r/keys" ] && [ ! -f "$r/keys/membership.json" ]; then
      cp "$keys/ca.pem" "$keys/replica-$i.key" "$keys/replica-$i.crt" "$keys/replica-$i.tls.key" \
        "$keys/client-status.crt" "$keys/client-status.key" "$r/keys/"
      cp "$keys/membership.json" "$r/keys/" # last: its presence says the folder is complete
    elif [ -d "$r/keys" ] && [ ! -f "$r/keys/client-status.crt" ]; then
      cp "$keys/client-status.crt" "$keys/client-status.key" "$r/keys/" # keys of an older keygen
    fi
    if [ "$fresh" = 1 ] && [ -d "$r/data" ] && [ ! -d "$r/data/db" ]; then : >"$r/data/$mark"; fi
    if [ "$(id -u)" = 0 ] && [ -d "$r" ]; then chown -R mir:mir "$r"; fi
    i=$((i + 1))
  done
  # mir-bench --tls-dir (the bench service) reads the CA key here as the image's user.
  if [ "$(id -u)" = 0 ]; then chown -R mir:mir "$keys"; fi
}

case "${1:-replica}" in
  replica) replica ;;
  health) health ;;
  status | bench | demo)
    cmd="$1"
    shift
    "$cmd" "$@"
    ;;
  keygen)
    shift
    keygen "$@"
    ;;
  *) exec "$@" ;;
esac
