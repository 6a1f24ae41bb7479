#!/usr/bin/env bash
# What observability costs (docs/PERFORMANCE.md, "What observability costs"): a local 4-replica
# cluster in three modes, runs interleaved (off, on, profiling, off, on, ...), the same load each:
#
#   off        no HTTP endpoint (MIR_HTTP=0). The registry itself cannot be switched off: its
#              counters are always updated; this mode is the replica without anything reading them.
#   on         the endpoint on every replica, /metrics and /debug/stats of all four read once a
#              second during the run (a scraper twenty times as eager as Prometheus' default 15 s).
#   profiling  as on, and a CPU profile taken on every replica over the warm-up and the measured
#              seconds (gperftools, /debug/pprof/profile; the profiles are kept in the results).
#
#   scripts/metrics-cost.sh [options]
#
#   --rounds N      rounds of the three modes (default 3)
#   --clients C     mir-bench clients (default 8)
#   --rate R        offered tx/s (default 16000: below the peak, so CPU per transaction compares)
#   --seconds S     measured seconds per run (default 20; warm-up 2 s, drain 5 s)
#   --out DIR       results (default: a new folder under /tmp)
#   --base-port P   peers on P.., clients on P+100.., HTTP on P+200.. (default 33000)
#   --bin DIR       the programs (default: MIR_BIN_DIR, else build/bin of this repository)
#
# Each run: committed tx/s, p50 and p99, the whole machine's non-idle CPU time (/proc/stat) and the
# four replicas' CPU time (/proc/<pid>/stat) per committed transaction. The summary gives medians
# per mode and their ratio to "off". Run on an otherwise idle machine. Every process it starts is
# stopped (the cluster by the cluster script, the scraper by its pid; a profile request ends with
# its profile), and each run is bounded in time.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_NAME=metrics-cost
# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
rounds=3
clients=8
rate=16000
seconds=20
out=""
base_port=33000
bin="${MIR_BIN_DIR:-$repo/build/bin}"

usage() { bench_usage; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) bench_num "$1" "$2"; rounds="$2"; shift 2 ;;
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
[ "$rounds" -ge 1 ] || bench_die "--rounds: at least 1"
[ "$seconds" -ge 2 ] || bench_die "--seconds: at least 2"
[ "$seconds" -le 298 ] || bench_die "--seconds: at most 298 (a replica's CPU profile lasts 300 s at most)"
bench_need "$bin" mir-replica mir-keygen mir-status mir-bench
command -v curl >/dev/null || bench_die "curl not found (Debian package curl)"
out="$(bench_out_dir "$out" mir-metrics-cost)"

bench_cluster_env "$out" "$base_port" "$bin"
helpers=()
stop_helpers() {
  local p
  for p in "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${helpers[@]}"; do wait "$p" 2>/dev/null || true; done
  helpers=()
}
trap 'stop_helpers; cluster clean >/dev/null 2>&1 || true' EXIT

# Reads every replica's /metrics and /debug/stats once a second, for at most $1 seconds.
scrape() {
  local until=$((SECONDS + $1)) u
  while [ "$SECONDS" -lt "$until" ]; do
    while read -r u; do
      curl -s -m 5 -o /dev/null "$u" || true
      curl -s -m 5 -o /dev/null "${u%/metrics}/debug/stats" || true
    done <"$MIR_CLUSTER_DIR/metrics-urls"
    sleep 1
  done
}

# One CPU profile of replica URL $1 for $2 seconds, into file $3.
profile() {
  curl -s -f -m $(($2 + 30)) -o "$3" "${1%/metrics}/debug/pprof/profile?seconds=$2" || true
}

# One run on a fresh cluster: mode round. Appends to cost.tsv.
run() {
  local mode="$1" round="$2" tag="$1-r$2" json="$out/run-$1-r$2.json" t0 t1 s0 s1 u span
  cluster clean >/dev/null 2>&1 || true
  if [ "$mode" = off ]; then
    MIR_HTTP=0 cluster start 4 >"$out/start-$tag.log" 2>&1 ||
      bench_die "the cluster did not start: $out/start-$tag.log"
  else
    cluster start 4 >"$out/start-$tag.log" 2>&1 ||
      bench_die "the cluster did not start: $out/start-$tag.log"
  fi
  span=$((seconds + 10))
  if [ "$mode" != off ]; then
    scrape "$span" &
    helpers+=($!)
  fi
  local i=0 profilers=()
  if [ "$mode" = profiling ]; then
    # One profile per replica over the warm-up and the measured seconds.
    while read -r u; do
      profile "$u" $((seconds + 2)) "$out/profile-$tag-replica-$i.prof" &
      profilers+=($!)
      i=$((i + 1))
    done <"$MIR_CLUSTER_DIR/metrics-urls"
  fi
  bench_say "round $round, $mode: $clients clients offering $rate tx/s for $seconds s"
  t0="$(bench_machine_ticks)" s0="$(bench_cluster_ticks)"
  bench_mir_bench "$bin" "$json" "$out/bench-$tag.log" "$clients" "$rate" "$seconds"
  t1="$(bench_machine_ticks)" s1="$(bench_cluster_ticks)"
  stop_helpers
  for i in "${profilers[@]}"; do wait "$i" || true; done
  if [ "$mode" = profiling ]; then
    # The mode is what it says only if every replica was profiled during the run.
    for ((i = 0; i < 4; i++)); do
      [ -s "$out/profile-$tag-replica-$i.prof" ] ||
        bench_die "replica $i gave no CPU profile during $tag (see $out/logs-$tag)"
    done
  fi
  cp -r "$MIR_CLUSTER_DIR/logs" "$out/logs-$tag"
  cluster clean >/dev/null 2>&1 || true
  python3 - "$json" "$mode" "$round" "$((t1 - t0))" "$((s1 - s0))" "$(getconf CLK_TCK)" \
    >>"$out/cost.tsv" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
mode, rnd, ticks, rticks, hz = sys.argv[2:7]
c = j["committed"]
per = lambda t: int(t) * 1e6 / int(hz) / c if c else float("nan")
lat = j["latency_ms"]
print("\t".join([mode, rnd, f'{j["throughput_tx_s"]:.0f}', f'{lat["p50"]:.1f}',
                 f'{lat["p99"]:.1f}', f'{per(ticks):.1f}', f'{per(rticks):.1f}']))
PY
}

printf 'mode\tround\tcommitted_tx_s\tp50_ms\tp99_ms\tcpu_us_per_tx\treplicas_cpu_us_per_tx\n' \
  >"$out/cost.tsv"
for ((r = 1; r <= rounds; r++)); do
  # The order rotates so that no mode always runs first or last in a round.
  case $((r % 3)) in
    1) order=(off on profiling) ;;
    2) order=(on profiling off) ;;
    0) order=(profiling off on) ;;
  esac
  for m in "${order[@]}"; do run "$m" "$r"; done
done

python3 - "$out/cost.tsv" "$clients" "$rate" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda m, k: statistics.median(float(r[k]) for r in rows if r["mode"] == m)
n = sum(1 for r in rows if r["mode"] == "off")
print(f"{sys.argv[2]} clients offering {int(sys.argv[3]):,} tx/s; medians of {n} runs per mode")
print("| mode | committed tx/s | p50 | p99 | CPU µs/tx: machine | replicas | machine vs off |")
print("|---|---|---|---|---|---|---|")
base = med("off", "cpu_us_per_tx")
for m in ("off", "on", "profiling"):
    cpu = med(m, "cpu_us_per_tx")
    print(f'| {m} | {med(m, "committed_tx_s"):,.0f} | {med(m, "p50_ms"):.1f} ms | '
          f'{med(m, "p99_ms"):.1f} ms | {cpu:.1f} | {med(m, "replicas_cpu_us_per_tx"):.1f} | '
          f'{cpu / base:.3f} |')
PY
