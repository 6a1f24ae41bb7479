#!/usr/bin/env bash
# A local Mir-C cluster on 127.0.0.1 (docs/OPERATIONS.md, "Local cluster").
#
#   cluster.sh start [N]   keys, membership and configurations for N replicas (default 4) in the
#                          cluster folder (made once, and then the replicas start with --new;
#                          later starts reuse keys and data), then starts every replica in the
#                          background and waits until all answer
#   cluster.sh stop        SIGTERM to every replica (SIGKILL after 15 s)
#   cluster.sh status      per replica: id, epoch, last delivered sn and log hash (mir-status),
#                          and the URLs of its HTTP endpoint (/metrics, /debug/stats, profiles)
#   cluster.sh clean       stop, then delete the cluster folder
#   cluster.sh start-one I start replica I (resuming from its data) and wait until it answers
#   cluster.sh kill I      SIGKILL replica I and wait until its process is gone (a crash)
#   cluster.sh rejoin I    replica I lost its data: stop it, delete data-I, start it with --rejoin
#                          (it catches up from its peers by state transfer)
#   cluster.sh client-cert ID  a client certificate for client id ID (client-ID.crt, .key; an
#                          existing one is kept)
#
# Environment:
#   MIR_CLUSTER_DIR       the cluster folder (default: ./mir-cluster)
#   MIR_BIN_DIR           where mir-replica, mir-keygen and mir-status are (default: build/bin of
#                         this repository)
#   MIR_REPLICA_PROGRAM   the server program started with each replica's configuration (default
#                         mir-replica; mir-limit runs the limit pipeline of docs/PERFORMANCE.md
#                         with the same files, addresses and clients)
#   MIR_PEER_BASE_PORT    replica i listens for peers on this + i (default 7000)
#   MIR_CLIENT_BASE_PORT  and for clients on this + i (default 9000)
#   MIR_HTTP_BASE_PORT    and serves HTTP (metrics, profiles) on this + i (default: the client
#                         base port + 100, so 9100); read when the folder is made
#   MIR_HTTP              0: no HTTP endpoint (no http_listen; for measuring what it costs);
#                         1 (default): one per replica. Read when the folder is made.
#   MIR_TRANTOR           the members of a "trantor" section for every replica's configuration
#                         (e.g. '"batch_timeout_ms": 10'; docs/OPERATIONS.md lists the keys);
#                         the replicas check them. Read when the folder is made.
#   MIR_LOG               log level of the replicas (trace, debug, info, warn, error)
#   MIR_CLIENT_CERTS      1: the client API is TLS and every client needs a certificate naming its
#                         client id (replica option client.require_cert); 0 (default): plaintext
#                         client API, client ids not checked (development). Read when the folder
#                         is made.
#
# Files in the folder: membership.json, keys and TLS certificates (mir-keygen), replica-<i>.json,
# data-<i>/ (RocksDB), logs/replica-<i>.log, pids/replica-<i>.pid, client-addresses (one
# host:port per line, for clients and benchmarks), metrics-urls (one /metrics URL per line, for
# mir-bench --metrics and Prometheus). With client certificates: ca.pem (which
# clients trust), client-mir-tools.crt and .key (the certificate this script gives mir-status),
# and client-flags, the options mir-bench needs ("--tls-dir <folder>"; empty without).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=process.sh
. "$here/process.sh"
dir="${MIR_CLUSTER_DIR:-$PWD/mir-cluster}"
bin="${MIR_BIN_DIR:-$repo/build/bin}"
peer_base="${MIR_PEER_BASE_PORT:-7000}"
client_base="${MIR_CLIENT_BASE_PORT:-9000}"
http_base="${MIR_HTTP_BASE_PORT:-$((client_base + 100))}"
client_certs="${MIR_CLIENT_CERTS:-0}"
http_on="${MIR_HTTP:-1}"
trantor_members="${MIR_TRANTOR:-}"
case "$http_on" in 0 | 1) ;; *) echo "cluster.sh: MIR_HTTP: 0 or 1, not '$http_on'" >&2; exit 1 ;; esac
program="${MIR_REPLICA_PROGRAM:-mir-replica}"

die() { echo "cluster.sh: $*" >&2; exit 1; }

usage() {
  sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'
}

need_bin() {
  for b in "$program" mir-keygen mir-status; do
    [ -x "$bin/$b" ] || die "$bin/$b not found: build first (make build) or set MIR_BIN_DIR"
  done
}

# The number of replicas the folder was made for (0 if none).
cluster_size() {
  local n=0
  while [ -f "$dir/replica-$n.json" ]; do n=$((n + 1)); done
  echo "$n"
}


pid_of() {
  local f="$dir/pids/replica-$1.pid"
  [ -f "$f" ] || return 1
  local pid
  pid="$(cat "$f")"
  alive "$pid" || return 1
  echo "$pid"
}

# Checks that $1 names a replica of the cluster.
need_replica() {
  local n
  n="$(cluster_size)"
  [ "$n" -gt 0 ] || die "no cluster in $dir ('cluster.sh start' makes one)"
  [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -lt "$n" ] || die "replica must be 0..$((n - 1)), not '${1:-}'"
}

client_addr() {
  sed -n "$(($1 + 1))p" "$dir/client-addresses"
}

# mir-status with what this cluster's client API asks of clients (TLS and a certificate, or not).
mir_status() {
  local tls=()
  if [ -f "$dir/client-mir-tools.crt" ]; then
    tls=(--tls-ca "$dir/ca.pem" --tls-cert "$dir/client-mir-tools.crt"
      --tls-key "$dir/client-mir-tools.key")
  fi
  "$bin/mir-status" "${tls[@]}" "$@"
}

# Starts replica $1 in the background with the extra flags $2... (none: resume from its data).
launch() {
  local i="$1"
  shift
  nohup "$bin/$program" --config "$dir/replica-$i.json" "$@" >>"$dir/logs/replica-$i.log" 2>&1 &
  echo $! >"$dir/pids/replica-$i.pid"
}

# Waits up to $2 tenths of a second until replica $1 answers Status; fails if its process ended.
wait_answers() {
  local i="$1" tenths="$2" addr pid
  addr="$(client_addr "$i")"
  for ((t = 0; t < tenths; t++)); do
    pid="$(pid_of "$i")" || die "replica $i exited at start: see $dir/logs/replica-$i.log"
    if mir_status --timeout-ms 500 "$addr" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  die "replica $i did not answer within $((tenths / 10)) s: see $dir/logs/replica-$i.log"
}

make_cluster() {
  local n="$1"
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 64 ]; then
    die "N must be 1..64, not '$n'"
  fi
  case "$client_certs" in
    0 | 1) ;;
    *) die "MIR_CLIENT_CERTS must be 0 or 1, not '$client_certs'" ;;
  esac
  mkdir -p "$dir/logs" "$dir/pids"
  local keygen=(--n "$n" --out "$dir" --tls --base-port "$peer_base") client=""
  if [ "$client_certs" = 1 ]; then
    keygen+=(--client mir-tools)
    # The client API serves TLS with the replica's certificate, and takes only clients whose
    # certificate (issued by the cluster CA) names the client id they submit under.
    client='
  "client_tls": true,
  "client": {"require_cert": true},'
    echo "--tls-dir $dir" >"$dir/client-flags"
  else
    : >"$dir/client-flags"
  fi
  "$bin/mir-keygen" "${keygen[@]}" >/dev/null
  : >"$dir/client-addresses"
  : >"$dir/metrics-urls"
  local extra
  for ((i = 0; i < n; i++)); do
    extra=""
    if [ "$http_on" = 1 ]; then
      extra="
  \"http_listen\": \"127.0.0.1:$((http_base + i))\","
    fi
    if [ -n "$trantor_members" ]; then
      extra="$extra
  \"trantor\": {$trantor_members},"
    fi
    cat >"$dir/replica-$i.json" <<JSON
{
  "id": "$i",
  "membership": "membership.json",
  "key_file": "replica-$i.key",
  "tls": {"ca_file": "ca.pem", "cert_file": "replica-$i.crt", "key_file": "replica-$i.tls.key"},$client
  "client_listen": "127.0.0.1:$((client_base + i))",$extra
  "data_dir": "data-$i"
}
JSON
    echo "127.0.0.1:$((client_base + i))" >>"$dir/client-addresses"
    if [ "$http_on" = 1 ]; then
      echo "http://127.0.0.1:$((http_base + i))/metrics" >>"$dir/metrics-urls"
    fi
  done
}


start() {
  need_bin
  local n="${1:-}" have flags=()
  have="$(cluster_size)"
  if [ "$have" -eq 0 ]; then
    make_cluster "${n:-4}"
    flags=(--new) # the replicas of a new cluster have never run (no store yet)
  elif [ -n "$n" ] && [ "$n" != "$have" ]; then
    die "$dir holds a $have-replica cluster; 'cluster.sh clean' first to make one of $n"
  fi
  n="$(cluster_size)"
  for ((i = 0; i < n; i++)); do
    if pid="$(pid_of "$i")"; then
      echo "replica $i already running (pid $pid)"
      continue
    fi
    launch "$i" "${flags[@]}"
  done
  # Bounded wait until every replica answers Status.
  local addrs=()
  mapfile -t addrs <"$dir/client-addresses"
  for _ in $(seq 1 100); do
    if mir_status --timeout-ms 500 "${addrs[@]}" >/dev/null 2>&1; then
      echo "cluster of $n replicas running in $dir (logs in $dir/logs)"
      status
      return 0
    fi
    sleep 0.2
  done
  status || true
  die "not every replica answered within 20 s: see $dir/logs"
}

stop() {
  local n pid
  n="$(cluster_size)"
  local pids=()
  for ((i = 0; i < n; i++)); do
    if pid="$(pid_of "$i")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$i:$pid")
    fi
  done
  for entry in "${pids[@]}"; do
    local i="${entry%%:*}" p="${entry#*:}"
    for _ in $(seq 1 150); do
      alive "$p" || break
      sleep 0.1
    done
    if alive "$p"; then
      echo "replica $i (pid $p) did not stop in 15 s: killing it"
      kill -KILL "$p" 2>/dev/null || true
    fi
    rm -f "$dir/pids/replica-$i.pid"
    echo "replica $i stopped"
  done
  [ "${#pids[@]}" -gt 0 ] || echo "no replica running"
}

# The HTTP endpoint of replica i from its configuration ("" if it has none).
http_addr() {
  sed -n 's/.*"http_listen": *"\([^"]*\)".*/\1/p' "$dir/replica-$1.json"
}

status() {
  need_bin
  local n
  n="$(cluster_size)"
  [ "$n" -gt 0 ] || die "no cluster in $dir ('cluster.sh start' makes one)"
  local rc=0
  for ((i = 0; i < n; i++)); do
    local addr
    addr="$(client_addr "$i")"
    if pid_of "$i" >/dev/null; then
      mir_status --timeout-ms 2000 "$addr" || rc=1
      local http
      http="$(http_addr "$i")"
      if [ -n "$http" ]; then
        printf '%-22s http://%s/metrics  http://%s/debug/stats  http://%s/debug/pprof/profile?seconds=30\n' \
          "" "$http" "$http" "$http"
      fi
    else
      printf '%-22s id %-4s not running\n' "$addr" "$i"
      rc=1
    fi
  done
  return $rc
}

start_one() {
  need_bin
  need_replica "$1"
  local pid
  if pid="$(pid_of "$1")"; then
    echo "replica $1 already running (pid $pid)"
    return 0
  fi
  launch "$1"
  wait_answers "$1" 300
  echo "replica $1 running (pid $(pid_of "$1"))"
}

kill_one() {
  need_replica "$1"
  local pid
  if ! pid="$(pid_of "$1")"; then
    echo "replica $1 is not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.1
  done
  alive "$pid" && die "replica $1 (pid $pid) is still there 10 s after SIGKILL"
  rm -f "$dir/pids/replica-$1.pid"
  echo "replica $1 killed (pid $pid)"
}

rejoin() {
  need_bin
  need_replica "$1"
  local pid
  if pid="$(pid_of "$1")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      alive "$pid" || break
      sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
    alive "$pid" && die "replica $1 (pid $pid) does not go away"
  fi
  rm -rf "$dir/data-$1"
  echo "replica $1: data-$1 deleted; starting it with --rejoin"
  launch "$1" --rejoin
  wait_answers "$1" 300
  echo "replica $1 running (pid $(pid_of "$1")); it catches up from its peers"
}

# Issues a certificate for client id $1 with the cluster CA.
client_cert() {
  need_bin
  [ -f "$dir/ca.key" ] || die "no cluster CA in $dir ('cluster.sh start' makes one)"
  [ -n "${1:-}" ] || die "client-cert needs a client id"
  if [ ! -f "$dir/client-$1.crt" ]; then # an existing one stays: it may be in use
    "$bin/mir-keygen" --out "$dir" --client "$1" >/dev/null
  fi
  echo "$dir/client-$1.crt and $dir/client-$1.key (trust $dir/ca.pem)"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  client-cert) client_cert "${2:-}" ;;
  start-one) start_one "${2:-}" ;;
  kill) kill_one "${2:-}" ;;
  rejoin) rejoin "${2:-}" ;;
  stop) stop ;;
  status) status ;;
  clean)
    stop
    rm -rf "$dir"
    echo "removed $dir"
    ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
