#!/usr/bin/env bash
# A local Mir-C cluster on 127.0.0.1 (docs/OPERATIONS.md, "Local cluster").
#
#   cluster.sh start [N]   keys, membership and configurations for N replicas (default 4) in the
#                          cluster folder (made once; later starts reuse keys and data), then
#                          starts every replica in the background and waits until all answer
#   cluster.sh stop        SIGTERM to every replica (SIGKILL after 15 s)
#   cluster.sh status      per replica: id, epoch, last delivered sn and log hash (mir-status)
#   cluster.sh clean       stop, then delete the cluster folder
#
# Environment:
#   MIR_CLUSTER_DIR       the cluster folder (default: ./mir-cluster)
#   MIR_BIN_DIR           where mir-replica, mir-keygen and mir-status are (default: build/bin of
#                         this repository)
#   MIR_PEER_BASE_PORT    replica i listens for peers on this + i (default 7000)
#   MIR_CLIENT_BASE_PORT  and for clients on this + i (default 9000)
#   MIR_LOG               log level of the replicas (trace, debug, info, warn, error)
#
# Files in the folder: membership.json, keys and TLS certificates (mir-keygen), replica-<i>.json,
# data-<i>/ (RocksDB), logs/replica-<i>.log, pids/replica-<i>.pid, client-addresses (one
# host:port per line, for clients and benchmarks).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${MIR_CLUSTER_DIR:-$PWD/mir-cluster}"
bin="${MIR_BIN_DIR:-$repo/build/bin}"
peer_base="${MIR_PEER_BASE_PORT:-7000}"
client_base="${MIR_CLIENT_BASE_PORT:-9000}"

die() { echo "cluster.sh: $*" >&2; exit 1; }

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
}

need_bin() {
  for b in mir-replica mir-keygen mir-status; do
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
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

make_cluster() {
  local n="$1"
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 64 ]; then
    die "N must be 1..64, not '$n'"
  fi
  mkdir -p "$dir/logs" "$dir/pids"
  "$bin/mir-keygen" --n "$n" --out "$dir" --tls --base-port "$peer_base" >/dev/null
  : >"$dir/client-addresses"
  for ((i = 0; i < n; i++)); do
    cat >"$dir/replica-$i.json" <<JSON
{
  "id": "$i",
  "membership": "membership.json",
  "key_file": "replica-$i.key",
  "tls": {"ca_file": "ca.pem", "cert_file": "replica-$i.crt", "key_file": "replica-$i.tls.key"},
  "client_listen": "127.0.0.1:$((client_base + i))",
  "data_dir": "data-$i"
}
JSON
    echo "127.0.0.1:$((client_base + i))" >>"$dir/client-addresses"
  done
}


start() {
  need_bin
  local n="${1:-}" have
  have="$(cluster_size)"
  if [ "$have" -eq 0 ]; then
    make_cluster "${n:-4}"
  elif [ -n "$n" ] && [ "$n" != "$have" ]; then
    die "$dir holds a $have-replica cluster; 'cluster.sh clean' first to make one of $n"
  fi
  n="$(cluster_size)"
  for ((i = 0; i < n; i++)); do
    if pid="$(pid_of "$i")"; then
      echo "replica $i already running (pid $pid)"
      continue
    fi
    nohup "$bin/mir-replica" --config "$dir/replica-$i.json" >>"$dir/logs/replica-$i.log" 2>&1 &
    echo $! >"$dir/pids/replica-$i.pid"
  done
  # Bounded wait until every replica answers Status.
  local addrs=()
  mapfile -t addrs <"$dir/client-addresses"
  for _ in $(seq 1 100); do
    if "$bin/mir-status" --timeout-ms 500 "${addrs[@]}" >/dev/null 2>&1; then
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
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
      echo "replica $i (pid $p) did not stop in 15 s: killing it"
      kill -KILL "$p" 2>/dev/null || true
    fi
    rm -f "$dir/pids/replica-$i.pid"
    echo "replica $i stopped"
  done
  [ "${#pids[@]}" -gt 0 ] || echo "no replica running"
}

status() {
  need_bin
  local n
  n="$(cluster_size)"
  [ "$n" -gt 0 ] || die "no cluster in $dir ('cluster.sh start' makes one)"
  local rc=0
  for ((i = 0; i < n; i++)); do
    local addr
    addr="$(sed -n "$((i + 1))p" "$dir/client-addresses")"
    if pid_of "$i" >/dev/null; then
      "$bin/mir-status" --timeout-ms 2000 "$addr" || rc=1
    else
      printf '%-22s id %-4s not running\n' "$addr" "$i"
      rc=1
    fi
  done
  return $rc
}

case "${1:-}" in
  start) start "${2:-}" ;;
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
