#!/usr/bin/env bash
# What an idle local cluster costs: starts a 4-replica cluster (deploy/local/cluster.sh) in a new
# folder, orders a short burst of transactions with mir-bench (so that an epoch was begun, as in
# a cluster whose clients went quiet), waits, and then measures over a window with no client at
# all: the CPU time of the replica processes (utime + stime of /proc/<pid>/stat), as a share of
# one core, and the sequence numbers and epochs the replicas moved on (the growth of the log).
# Stops the cluster and removes its folder at the end.
#
#   scripts/idle-cost.sh [--seconds S] [--settle S] [--burst-txs N] [--base-port P] [--keep]
#
#   --seconds S    the measured window (default 60)
#   --settle S     the wait between the end of the burst and the window (default 5)
#   --burst-txs N  transactions of the burst, at 500 tx/s (default 1000; 0: no burst)
#   --base-port P  peers listen on P.., clients on P+100.. (default 28000); 127.0.0.1 only
#   --keep         keep the cluster folder (its logs) instead of removing it
#
# Environment: MIR_BIN_DIR as for cluster.sh (default: build/bin of this repository).
# Prints one line per replica and a summary; exit status 0, 1 if the cluster did not come up or
# a replica process ended during the window, 2 for a usage error.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
seconds=60
settle=5
burst=1000
base_port=28000
keep=0

die() {
  echo "idle-cost: $*" >&2
  exit 1
}
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --settle) settle="$2"; shift 2 ;;
    --burst-txs) burst="$2"; shift 2 ;;
    --base-port) base_port="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for v in "$seconds" "$settle" "$burst" "$base_port"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "idle-cost: '$v' is not a number (--help)" >&2; exit 2; }
done
[ "$seconds" -ge 1 ] || { echo "idle-cost: --seconds must be 1 or more" >&2; exit 2; }

bin="${MIR_BIN_DIR:-$repo/build/bin}"
for b in mir-replica mir-keygen mir-status mir-bench; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: build first (make build) or set MIR_BIN_DIR"
done
dir="$(mktemp -d /tmp/mir-idle-cost.XXXXXX)"
export MIR_CLUSTER_DIR="$dir/cluster" MIR_BIN_DIR="$bin"
export MIR_PEER_BASE_PORT="$base_port" MIR_CLIENT_BASE_PORT="$((base_port + 100))"
cluster="$repo/deploy/local/cluster.sh"

cleanup() {
  "$cluster" stop >/dev/null 2>&1 || true
  if [ "$keep" -eq 1 ]; then echo "idle-cost: cluster folder kept: $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

echo "idle-cost: starting a 4-replica cluster in $dir"
"$cluster" start 4 >"$dir/start.out" 2>&1 || { cat "$dir/start.out" >&2; die "the cluster did not start"; }
addrs="$(paste -sd, "$MIR_CLUSTER_DIR/client-addresses")"
tls=()
if [ -s "$MIR_CLUSTER_DIR/client-flags" ]; then read -r -a tls <"$MIR_CLUSTER_DIR/client-flags"; fi
status_tls=()
if [ -f "$MIR_CLUSTER_DIR/client-mir-tools.crt" ]; then
  status_tls=(--tls-ca "$MIR_CLUSTER_DIR/ca.pem" --tls-cert "$MIR_CLUSTER_DIR/client-mir-tools.crt"
    --tls-key "$MIR_CLUSTER_DIR/client-mir-tools.key")
fi

if [ "$burst" -gt 0 ]; then
  secs=$(((burst + 499) / 500))
  echo "idle-cost: a burst of $burst transactions over ${secs} s"
  "$bin/mir-bench" --replicas "$addrs" "${tls[@]}" --clients 4 --rate 500 --size 256 \
    --duration "$secs" --warmup 0 --drain 10 >"$dir/burst.out" 2>&1 ||
    { tail -5 "$dir/burst.out" >&2; die "the burst failed"; }
  grep -E "committed" "$dir/burst.out" | head -2 | sed 's/^/  /' || true
fi
echo "idle-cost: settling for $settle s, then measuring for $seconds s with no client"
sleep "$settle"

pids=()
for i in 0 1 2 3; do pids+=("$(cat "$MIR_CLUSTER_DIR/pids/replica-$i.pid")"); done
# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat, counted after
# the command name, which may hold spaces).
ticks_of() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# "last_sn epoch" of replica $1 (index), from mir-status --json.
pos_of() {
  "$bin/mir-status" "${status_tls[@]}" --json "$(sed -n "$(($1 + 1))p" "$MIR_CLUSTER_DIR/client-addresses")" |
    sed -n 's/.*"epoch": *\([0-9]*\).*"last_sn": *"\{0,1\}\([-0-9]*\).*/\2 \1/p'
}

declare -a t0 p0
for i in 0 1 2 3; do
  t0[$i]="$(ticks_of "${pids[$i]}")"
  p0[$i]="$(pos_of "$i")"
done
start_ns="$(date +%s%N)"
sleep "$seconds"
end_ns="$(date +%s%N)"
hz="$(getconf CLK_TCK)"
wall="$(awk -v a="$start_ns" -v b="$end_ns" 'BEGIN{printf "%.3f", (b - a) / 1e9}')"
total=0
for i in 0 1 2 3; do
  [ -r "/proc/${pids[$i]}/stat" ] || die "replica $i (pid ${pids[$i]}) ended during the window"
  t1="$(ticks_of "${pids[$i]}")"
  p1="$(pos_of "$i")"
  dt=$((t1 - t0[i]))
  total=$((total + dt))
  read -r sn0 ep0 <<<"${p0[$i]}"
  read -r sn1 ep1 <<<"$p1"
  awk -v i="$i" -v dt="$dt" -v hz="$hz" -v w="$wall" -v sn0="$sn0" -v sn1="$sn1" -v ep0="$ep0" \
    -v ep1="$ep1" 'BEGIN{
      printf "replica %d: cpu %.2f s (%.2f%% of a core)  last_sn %s -> %s  epoch %s -> %s\n",
        i, dt / hz, 100 * dt / hz / w, sn0, sn1, ep0, ep1 }'
done
awk -v t="$total" -v hz="$hz" -v w="$wall" 'BEGIN{
  printf "idle-cost: 4 replicas together: %.2f s CPU over %.1f s = %.2f%% of one core\n",
    t / hz, w, 100 * t / hz / w }'
