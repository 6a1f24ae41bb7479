#!/bin/sh
# mir-entrypoint: the entry point of the Mir-C image (docs/OPERATIONS.md, "Docker").
#
#   mir-entrypoint replica    runs mir-replica as this process (PID 1 in the container)
#   mir-entrypoint health     exit status 0 when the local replica answers Status
#   mir-entrypoint keygen N   keys, TLS certificates and membership of an N-replica cluster in
#                             MIR_KEYS_DIR, hosts replica-0 .. replica-N-1 (a no-op when
#                             membership.json exists); where MIR_REPLICAS_DIR/<i>/keys and
#                             /<i>/data exist (default /replicas), copies replica i's own keys
#                             there and marks its data folder as that of a new replica
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
#   MIR_HTTP_LISTEN    /metrics, /debug/stats and profiles (default 0.0.0.0:9100; empty: off)
#   MIR_LOG            log level (trace, debug, info, warn, error; default info)
#   MIR_STORE_SYNC     0: no fsync per group of writes (survives process crashes only; default 1)
#
# Start mode (MIR_START; docs/OPERATIONS.md, "Data folder"):
#   auto (default)  resume when the data folder holds a store; start a new replica (--new) only
#                   when it holds none and carries the new-cluster mark that keygen leaves in
#                   the data folders of a cluster it has just created; otherwise refuse, since
#                   a replica that lost its data must start with --rejoin, never --new
#   new | rejoin    pass --new or --rejoin (the replica refuses either when a store exists)
#   resume          pass neither
set -eu

data="${MIR_DATA_DIR:-/data}"
keys="${MIR_KEYS_DIR:-/keys}"
config="${MIR_CONFIG:-/etc/mir/replica.json}"
mark=".mir-new-cluster"

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
  for f in membership.json "replica-$MIR_ID.key" ca.pem "replica-$MIR_ID.crt" "replica-$MIR_ID.tls.key"; do
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
  "client_tls": $ctls,$http
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
        rm -f "$data/$mark" # the store exists: the replica has started, the mark has served
      elif [ -f "$data/$mark" ]; then
        echo --new
      else
        die "$data holds no store and no new-cluster mark: a replica that lost its data starts with MIR_START=rejoin; the first start of a new cluster uses MIR_START=new (or keygen's mark)"
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

health() {
  port="$(port_of "${MIR_CLIENT_LISTEN:-0.0.0.0:9000}")"
  if [ "${MIR_CLIENT_TLS:-0}" = 1 ]; then
    exec mir-status --timeout-ms 3000 --tls-ca "$keys/ca.pem" --tls-server-name "replica-${MIR_ID:-0}" \
      "127.0.0.1:$port" >/dev/null
  fi
  exec mir-status --timeout-ms 3000 "127.0.0.1:$port" >/dev/null
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
  i=0
  while [ "$i" -lt "$n" ]; do
    # Replica i's own folders, where mounted: its keys (and no other replica's private key)
    # and, only for a cluster made just now, its data folder marked as that of a new replica.
    r="${MIR_REPLICAS_DIR:-/replicas}/$i"
    if [ -d "$r/keys" ] && [ ! -f "$r/keys/membership.json" ]; then
      cp "$keys/ca.pem" "$keys/replica-$i.key" "$keys/replica-$i.crt" "$keys/replica-$i.tls.key" \
        "$r/keys/"
      cp "$keys/membership.json" "$r/keys/" # last: its presence says the folder is complete
    fi
    if [ "$fresh" = 1 ] && [ -d "$r/data" ] && [ ! -d "$r/data/db" ]; then : >"$r/data/$mark"; fi
    if [ "$(id -u)" = 0 ] && [ -d "$r" ]; then chown -R mir:mir "$r"; fi
    i=$((i + 1))
  done
}

case "${1:-replica}" in
  replica) replica ;;
  health) health ;;
  keygen)
    shift
    keygen "$@"
    ;;
  *) exec "$@" ;;
esac
