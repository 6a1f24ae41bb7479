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
BENCH_NAME=limit-bench
# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
clients=8
rate=200000
seconds=20
window=0
servers=4
out=""
base_port=32000
bin="${MIR_BIN_DIR:-$repo/build/bin}"

usage() { bench_usage; }
num() { bench_num "$@"; }

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
bench_need "$bin" mir-limit mir-keygen mir-status mir-bench
out="$(bench_out_dir "$out" mir-limit-bench)"

bench_cluster_env "$out" "$base_port" "$bin"
export MIR_REPLICA_PROGRAM=mir-limit
trap 'cluster clean >/dev/null 2>&1 || true' EXIT

cluster clean >/dev/null 2>&1 || true
cluster start "$servers" >"$out/start.log" 2>&1 || bench_die "the servers did not start: $out/start.log"
flags=()
[ "$window" -gt 0 ] && flags+=(--window "$window")
json="$out/bench.json"
bench_say "$clients clients offering $rate tx/s for $seconds s"
times >"$out/times-before"
t0="$(bench_machine_ticks)" s0="$(bench_cluster_ticks)"
bench_mir_bench "$bin" "$json" "$out/bench.log" "$clients" "$rate" "$seconds" "${flags[@]}"
t1="$(bench_machine_ticks)" s1="$(bench_cluster_ticks)"
times >"$out/times-after"
c0="$(bench_child_ticks "$out/times-before")" c1="$(bench_child_ticks "$out/times-after")"
cp -r "$MIR_CLUSTER_DIR/logs" "$out/logs"
cluster clean >/dev/null 2>&1 || true

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
