#!/usr/bin/env bash
# Where the whole machine's CPU goes under a given load (docs/PERFORMANCE.md, "Performance
# study"): a local 4-replica cluster, mir-bench offering the load with --metrics, and a
# system-wide `perf record` over the measured seconds. Prints the shares of all CPU samples by
# thread name (the replicas name theirs: mir-node, mir-client-cq, mir-net-*, mir-store, ...), by
# shared object (the kernel, libc, gRPC, protobuf-c, RocksDB, crypto, our programs) and the
# busiest functions, beside mir-bench's summary with the replicas' busiest modules and locks.
#
#   scripts/profile-machine.sh [options]
#
#   --clients C     mir-bench clients (default 8)
#   --rate R        offered tx/s (default 16000)
#   --seconds S     measured seconds (default 20; perf records seconds 3 to S, after warm-up)
#   --out DIR       results (default: a new folder under /tmp)
#   --base-port P   peers on P.., clients on P+100.., HTTP on P+200.. (default 35000)
#   --bin DIR       the programs (default: MIR_BIN_DIR, else build/bin of this repository)
#
# Needs perf (Debian package linux-perf) and the right to profile the whole machine (root, or
# kernel.perf_event_paranoid <= -1). Samples at 499 Hz on every CPU, without call graphs, so the
# shares are of self time. Every process it starts is stopped (the cluster by the cluster script,
# perf when its duration ends), and mir-bench runs under a time limit.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_NAME=profile-machine
# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
clients=8
rate=16000
seconds=20
out=""
base_port=35000
bin="${MIR_BIN_DIR:-$repo/build/bin}"

usage() { bench_usage; }

while [ $# -gt 0 ]; do
  case "$1" in
    --clients) bench_num "$1" "$2"; clients="$2"; shift 2 ;;
    --rate) bench_num "$1" "$2"; rate="$2"; shift 2 ;;
    --seconds) bench_num "$1" "$2"; seconds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --base-port) bench_num "$1" "$2"; base_port="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ "$seconds" -ge 5 ] || bench_die "--seconds: at least 5"
bench_need "$bin" mir-replica mir-keygen mir-status mir-bench
command -v perf >/dev/null || bench_die "perf not found (scripts/install-deps.sh --bench)"
out="$(bench_out_dir "$out" mir-profile-machine)"

bench_cluster_env "$out" "$base_port" "$bin"
perf_pid=""
trap '[ -z "$perf_pid" ] || wait "$perf_pid" 2>/dev/null || true; cluster clean >/dev/null 2>&1 || true' EXIT

cluster clean >/dev/null 2>&1 || true
cluster start 4 >"$out/start.log" 2>&1 || bench_die "the cluster did not start: $out/start.log"
json="$out/bench.json"
bench_say "$clients clients offering $rate tx/s for $seconds s; perf over seconds 3 to $seconds"
# perf starts after mir-bench's connection and warm-up (about 3 s) and stops before its drain.
(sleep 3 && exec perf record -a -F 499 -o "$out/perf.data" -- sleep $((seconds - 3))) \
  >"$out/perf-record.log" 2>&1 &
perf_pid=$!
t0="$(bench_machine_ticks)"
bench_mir_bench "$bin" "$json" "$out/bench.log" "$clients" "$rate" "$seconds" \
  --metrics "$(paste -sd, "$MIR_CLUSTER_DIR/metrics-urls")"
t1="$(bench_machine_ticks)"
wait "$perf_pid" || bench_die "perf record failed: $out/perf-record.log"
perf_pid=""
cluster clean >/dev/null 2>&1 || true
[ -s "$out/perf.data" ] || bench_die "perf wrote nothing: $out/perf-record.log"

report() { perf report -i "$out/perf.data" --stdio --no-children "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
report --sort comm >"$out/by-thread.txt"
report --sort dso >"$out/by-object.txt"
report --sort dso,sym >"$out/by-function.txt"

python3 - "$json" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
c = j["committed"]
lat = j["latency_ms"]
cpu = int(sys.argv[2]) * 1e6 / int(sys.argv[3]) / c if c else float("nan")
print(f'committed {j["throughput_tx_s"]:,.0f} tx/s, p50 {lat["p50"]:.1f} ms, p99 {lat["p99"]:.1f} ms, '
      f'whole machine {cpu:.1f} µs CPU per committed transaction')
PY
echo "--- by thread name (share of all samples) ---"
head -15 "$out/by-thread.txt"
echo "--- by shared object ---"
head -15 "$out/by-object.txt"
echo "--- busiest functions ---"
head -30 "$out/by-function.txt"
echo "--- mir-bench (replicas' metrics) ---"
sed -n '/^replica /,$p' "$out/bench.log" | head -40
