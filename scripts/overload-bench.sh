#!/usr/bin/env bash
# Offers a local 4-replica cluster more than it can commit and reports what it does with it: the
# peak first (8 clients at the SDK's default window, offering far more than any run commits), then
# one run per multiple of that peak, each against a fresh cluster with the defaults of
# deploy/local/cluster.sh, 256-byte transactions.
#
#   scripts/overload-bench.sh [options]
#
#   --multiples L   comma-separated multiples of the peak to offer (default 1,2,10)
#   --seconds S     measured seconds per run (default 60; warm-up 2 s, drain 5 s)
#   --peak R        use this peak (tx/s) instead of measuring it
#   --peak-seconds S  measured seconds of the peak run (default: --seconds, so that the peak and
#                   the rows it is compared with are measured alike)
#   --rounds N      repeat the whole set N times, interleaved (peak, 1x, 2x, ..., peak, 1x, ...),
#                   and report medians (default 1); the multiples offer the first round's peak
#   --out DIR       results (default: a new folder under /tmp)
#   --base-port P   peers listen on P.., clients on P+100.. (default 31000); 127.0.0.1 only
#   --bin DIR       the programs (default: MIR_BIN_DIR, else build/bin of this repository)
#
# The overload runs are those of the flow-control issue: up to 2x the peak, 8 clients each with a
# window of 8,192 transactions; beyond 2x, 16 clients with that window. Each row: committed tx/s
# and its share of the peak, the submissions refused (mir-bench could not submit: its client's
# window was full), the SDK's resent requests and reconnects, p50/p99 submit-to-commit of the
# committed transactions, the largest resident set of any replica over the run (VmHWM,
# /proc/<pid>/status), and the whole machine's non-idle CPU time (/proc/stat) per committed
# transaction. Run on an otherwise idle
# machine. Every process it starts is stopped by the cluster script. With --rounds, each row's
# share of the peak is the median of its rounds over the median of the peak's rounds.
#
# Output: a table on stdout, overload.tsv and every run's mir-bench JSON in DIR.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_NAME=overload-bench
# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
multiples="1,2,10"
seconds=60
peak=""
peak_seconds=""
rounds=1
out=""
base_port=31000
bin="${MIR_BIN_DIR:-$repo/build/bin}"

usage() { bench_usage; }
mult() { [[ "$2" =~ ^[0-9]+([.][0-9]+)?$ ]] || bench_die "$1: a number, not '$2'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --multiples) multiples="$2"; shift 2 ;;
    --seconds) bench_num "$1" "$2"; seconds="$2"; shift 2 ;;
    --peak) bench_num "$1" "$2"; peak="$2"; shift 2 ;;
    --peak-seconds) bench_num "$1" "$2"; peak_seconds="$2"; shift 2 ;;
    --rounds) bench_num "$1" "$2"; rounds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --base-port) bench_num "$1" "$2"; base_port="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ -n "$peak_seconds" ] || peak_seconds="$seconds"
[ "$rounds" -ge 1 ] || bench_die "--rounds: at least 1"
IFS=, read -r -a mult_list <<<"$multiples"
for m in "${mult_list[@]}"; do mult --multiples "$m"; done
bench_need "$bin" mir-replica mir-keygen mir-status mir-bench
out="$(bench_out_dir "$out" mir-overload)"

bench_cluster_env "$out" "$base_port" "$bin"
trap 'cluster clean >/dev/null 2>&1 || true' EXIT

# One run on a fresh cluster: label round clients rate window(0: default) seconds. Appends to
# overload.tsv.
run() {
  local label="$1" round="$2" clients="$3" rate="$4" window="$5" secs="$6"
  local tag="$label-r$round" json="$out/run-$1-r$2.json" flags=() t0 t1 hwm
  cluster clean >/dev/null 2>&1 || true
  cluster start 4 >"$out/start-$tag.log" 2>&1 || bench_die "the cluster did not start: $out/start-$tag.log"
  [ "$window" -gt 0 ] && flags+=(--window "$window")
  bench_say "round $round, $label: $clients clients offering $rate tx/s for $secs s"
  t0="$(bench_machine_ticks)"
  bench_mir_bench "$bin" "$json" "$out/bench-$tag.log" "$clients" "$rate" "$secs" "${flags[@]}"
  t1="$(bench_machine_ticks)"
  hwm="$(bench_cluster_max_hwm)"
  cp -r "$MIR_CLUSTER_DIR/logs" "$out/logs-$tag"
  cluster clean >/dev/null 2>&1 || true
  python3 - "$json" "$label" "$round" "$clients" "$rate" "$window" "$((t1 - t0))" \
    "$(getconf CLK_TCK)" "$hwm" >>"$out/overload.tsv" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
label, rnd, clients, rate, window, ticks, hz, hwm = sys.argv[2:10]
c = j["committed"]
cpu = int(ticks) * 1e6 / int(hz) / c if c else float("nan")
sdk, lat = j["sdk"], j["latency_ms"]
print("\t".join(str(x) for x in [label, rnd, clients, rate, "default" if window == "0" else window,
      f'{j["throughput_tx_s"]:.0f}', j["refused"], sdk["resent"], sdk["reconnects"],
      f'{lat["p50"]:.1f}', f'{lat["p99"]:.1f}', f'{int(hwm) / 1024:.0f}', f'{cpu:.1f}']))
PY
}

printf 'run\tround\tclients\toffered\twindow\tcommitted_tx_s\trefused\tresent\treconnects\tp50_ms\tp99_ms\tmax_rss_mb\tcpu_us_per_tx\n' \
  >"$out/overload.tsv"
measure_peak=0
[ -n "$peak" ] || measure_peak=1
for ((r = 1; r <= rounds; r++)); do
  if [ "$measure_peak" = 1 ]; then
    run peak "$r" 8 200000 0 "$peak_seconds"
    if [ -z "$peak" ]; then
      peak="$(awk -F'\t' '$1 == "peak" {print $6}' "$out/overload.tsv")"
      [ "${peak:-0}" -gt 0 ] || bench_die "the peak run committed nothing: $out/bench-peak-r1.log"
      bench_say "peak $peak tx/s: the multiples offer multiples of it"
    fi
  fi
  for m in "${mult_list[@]}"; do
    rate="$(awk -v p="$peak" -v m="$m" 'BEGIN{printf "%d", p * m}')"
    if awk -v m="$m" 'BEGIN{exit !(m <= 1)}'; then
      run "${m}x" "$r" 8 "$rate" 0 "$seconds"
    elif awk -v m="$m" 'BEGIN{exit !(m <= 2)}'; then
      run "${m}x" "$r" 8 "$rate" 8192 "$seconds"
    else
      run "${m}x" "$r" 16 "$rate" 8192 "$seconds"
    fi
  done
done

python3 - "$out/overload.tsv" "$peak" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
labels = list(dict.fromkeys(r["run"] for r in rows))
peak_rows = [r for r in rows if r["run"] == "peak"]
peak = med(peak_rows, "committed_tx_s") if peak_rows else float(sys.argv[2])
rounds = max(int(r["round"]) for r in rows)
print(f"peak: {peak:.0f} tx/s" + (f" (median of {len(peak_rows)} runs)" if len(peak_rows) > 1 else ""))
if rounds > 1:
    print("each row: medians of " + str(rounds) + " rounds; committed per round in brackets")
print("| run | clients | offered tx/s | window | committed tx/s | of peak | refused | resent | "
      "reconnects | p50 | p99 | max RSS/replica | CPU µs/tx |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for label in labels:
    rs = [r for r in rows if r["run"] == label]
    r0 = rs[0]
    committed = med(rs, "committed_tx_s")
    each = "" if len(rs) == 1 else " (" + ", ".join(f'{int(r["committed_tx_s"]):,}' for r in rs) + ")"
    print(f'| {label} | {r0["clients"]} | {int(r0["offered"]):,} | {r0["window"]} | '
          f'{committed:,.0f}{each} | {committed / peak:.0%} | {med(rs, "refused"):,.0f} | '
          f'{med(rs, "resent"):,.0f} | {med(rs, "reconnects"):.0f} | {med(rs, "p50_ms"):.1f} ms | '
          f'{med(rs, "p99_ms"):.1f} ms | {max(float(r["max_rss_mb"]) for r in rs):.0f} MB | '
          f'{med(rs, "cpu_us_per_tx"):.1f} |')
PY
