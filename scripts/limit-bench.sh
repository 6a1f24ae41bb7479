#!/usr/bin/env bash
# Measures the limit pipeline (docs/PERFORMANCE.md, "Limit pipeline"): 4 mir-limit servers on
# 127.0.0.1, made and started by deploy/local/cluster.sh with the configurations it gives replicas
# (mutual TLS between servers, plaintext client API), driven by mir-bench exactly as
# scripts/overload-bench.sh drives a replica cluster. By default the peak run of that script: 8
# clients at the SDK's default window offering far more than any run commits, 256-byte
# transactions.
#
#   scripts/limit-bench.sh [options]
#
#   --clients C     mir-bench clients (default 8)
#   --rate R        offered tx/s in all (default 200000)
#   --seconds S     measured seconds (default 20; warm-up 2 s, drain 5 s)
#   --window W      the SDK's window per client (default: the SDK's)
#   --servers N     limit servers (default 4)
#   --out DIR       results (default: a new folder under /tmp)
#   --base-port P   servers listen for peers on P.., clients on P+100.. (default 32000)
#   --bin DIR       the programs (default: MIR_BIN_DIR, else build/bin of this repository)
#
# Prints one row: committed tx/s, p50 and p99 submit-to-commit, the whole machine's non-idle CPU
# time (/proc/stat, all processes) per committed transaction, and the CPU time of the four servers
# (/proc/<pid>/stat) and of mir-bench (the shell's `times`) per committed transaction, which other
# work on a shared machine does not inflate. Every process it starts is stopped by the cluster
# script (by pid), also on failure; mir-bench runs under a time limit.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
clients=8
rate=200000
seconds=20
window=0
servers=4
out=""
base_port=32000
bin="${MIR_BIN_DIR:-$repo/build/bin}"

die() {
  echo "limit-bench: $*" >&2
  exit 1
}
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
num() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1: a whole number, not '$2'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --clients) num "$1" "$2"; clients="$2"; shift 2 ;;
    --rate) num "$1" "$2"; rate="$2"; shift 2 ;;
    --seconds) num "$1" "$2"; seconds="$2"; shift 2 ;;
    --window) num "$1" "$2"; window="$2"; shift 2 ;;
    --servers) num "$1" "$2"; servers="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --base-port) num "$1" "$2"; base_port="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for b in mir-limit mir-keygen mir-status mir-bench; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: build first (make build), or --bin"
done
[ -n "$out" ] || out="$(mktemp -d /tmp/mir-limit-bench.XXXXXX)"
mkdir -p "$out"
echo "limit-bench: results in $out" >&2

export MIR_CLUSTER_DIR="$out/cluster" MIR_BIN_DIR="$bin" MIR_PEER_BASE_PORT="$base_port"
export MIR_CLIENT_BASE_PORT=$((base_port + 100)) MIR_HTTP_BASE_PORT=$((base_port + 200))
export MIR_LOG=warn MIR_REPLICA_PROGRAM=mir-limit
cluster() { "$repo/deploy/local/cluster.sh" "$@"; }
trap 'cluster clean >/dev/null 2>&1 || true' EXIT

cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
# User plus system ticks of the servers (their pid files), which must all still run.
server_ticks() {
  local sum=0 f t
  for f in "$MIR_CLUSTER_DIR"/pids/replica-*.pid; do
    t="$(awk '{print $14 + $15}' "/proc/$(cat "$f")/stat" 2>/dev/null)" ||
      die "a server exited during the run: see $MIR_CLUSTER_DIR/logs"
    sum=$((sum + t))
  done
  echo "$sum"
}
# User plus system ticks of the finished children in the output of bash's `times` in file $1 (its
# second line; `times` runs in this shell itself: a subshell starts with no children's times).
child_ticks() {
  awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
    n = split($1 " " $2, f, " ")
    t = 0
    for (i = 1; i <= n; i++) { split(f[i], ms, "m"); sub("s", "", ms[2]); t += ms[1] * 60 + ms[2] }
    printf "%d", t * hz }' "$1"
}

cluster clean >/dev/null 2>&1 || true
cluster start "$servers" >"$out/start.log" 2>&1 || die "the servers did not start: $out/start.log"
flags=()
if [ -s "$MIR_CLUSTER_DIR/client-flags" ]; then read -r -a flags <"$MIR_CLUSTER_DIR/client-flags"; fi
[ "$window" -gt 0 ] && flags+=(--window "$window")
json="$out/bench.json"
echo "limit-bench: $clients clients offering $rate tx/s for $seconds s" >&2
times >"$out/times-before"
t0="$(cpu_ticks)" s0="$(server_ticks)"
# mir-bench ends by itself once every transaction scheduled in the run was submitted (beyond the
# peak that takes longer than the run: the schedule falls behind) and the drain passed; the bound
# only catches a hang, allowing for at least 10,000 commits per second.
timeout --signal=TERM --kill-after=10 $((3 * (seconds + 7) + rate * (seconds + 2) / 10000)) \
  "$bin/mir-bench" --replicas "$(paste -sd, "$MIR_CLUSTER_DIR/client-addresses")" "${flags[@]}" \
  --clients "$clients" --rate "$rate" --size 256 --duration "$seconds" --warmup 2 --drain 5 \
  --json "$json" >"$out/bench.log" 2>&1 || true
t1="$(cpu_ticks)" s1="$(server_ticks)"
times >"$out/times-after"
c0="$(child_ticks "$out/times-before")" c1="$(child_ticks "$out/times-after")"
cp -r "$MIR_CLUSTER_DIR/logs" "$out/logs"
cluster clean >/dev/null 2>&1 || true
[ -s "$json" ] || die "mir-bench wrote no results: $out/bench.log"

python3 - "$json" "$clients" "$rate" "$((t1 - t0))" "$((s1 - s0))" "$((c1 - c0))" \
  "$(getconf CLK_TCK)" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
clients, rate, ticks, servers, bench, hz = sys.argv[2:8]
c = j["committed"]
per_tx = lambda t: int(t) * 1e6 / int(hz) / c if c else float("nan")
lat = j["latency_ms"]
print("| pipeline | clients | offered tx/s | committed tx/s | p50 | p99 | CPU µs/tx: machine | "
      "servers | mir-bench |")
print("|---|---|---|---|---|---|---|---|---|")
print(f'| limit | {clients} | {int(rate):,} | {j["throughput_tx_s"]:,.0f} | {lat["p50"]:.1f} ms | '
      f'{lat["p99"]:.1f} ms | {per_tx(ticks):.1f} | {per_tx(servers):.1f} | {per_tx(bench):.1f} |')
PY
