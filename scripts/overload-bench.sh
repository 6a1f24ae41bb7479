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
#   --peak-seconds S  measured seconds of the peak run (default 20)
#   --out DIR       results (default: a new folder under /tmp)
#   --base-port P   peers listen on P.., clients on P+100.. (default 31000); 127.0.0.1 only
#   --bin DIR       the programs (default: MIR_BIN_DIR, else build/bin of this repository)
#
# The overload runs are those of the flow-control issue: up to 2x the peak, 8 clients each with a
# window of 8,192 transactions; beyond 2x, 16 clients with that window. Each row: committed tx/s
# and its share of the peak, the transactions refused (back-pressure answers the SDK got), the SDK's
# resent requests and reconnects, p50/p99 submit-to-commit of the committed transactions, the
# largest resident set of any replica over the run (VmHWM, /proc/<pid>/status), and the whole
# machine's non-idle CPU time (/proc/stat) per committed transaction. Run on an otherwise idle
# machine. Every process it starts is stopped by the cluster script.
#
# Output: a table on stdout, overload.tsv and every run's mir-bench JSON in DIR.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
multiples="1,2,10"
seconds=60
peak=""
peak_seconds=20
out=""
base_port=31000
bin="${MIR_BIN_DIR:-$repo/build/bin}"

die() {
  echo "overload-bench: $*" >&2
  exit 1
}
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
num() { [[ "$2" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$1: a number, not '$2'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --multiples) multiples="$2"; shift 2 ;;
    --seconds) num "$1" "$2"; seconds="$2"; shift 2 ;;
    --peak) num "$1" "$2"; peak="$2"; shift 2 ;;
    --peak-seconds) num "$1" "$2"; peak_seconds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --base-port) num "$1" "$2"; base_port="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
IFS=, read -r -a mult_list <<<"$multiples"
for m in "${mult_list[@]}"; do num --multiples "$m"; done
for b in mir-replica mir-keygen mir-status mir-bench; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: build first (make build), or --bin"
done
[ -n "$out" ] || out="$(mktemp -d /tmp/mir-overload.XXXXXX)"
mkdir -p "$out"
echo "overload-bench: results in $out" >&2

export MIR_CLUSTER_DIR="$out/cluster" MIR_BIN_DIR="$bin" MIR_PEER_BASE_PORT="$base_port"
export MIR_CLIENT_BASE_PORT=$((base_port + 100)) MIR_LOG=warn
cluster() { "$repo/deploy/local/cluster.sh" "$@"; }
trap 'cluster clean >/dev/null 2>&1 || true' EXIT

cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }

# Largest VmHWM (kB) of the cluster's replicas, which must all still run.
max_hwm() {
  local max=0 f pid kb
  for f in "$MIR_CLUSTER_DIR"/pids/replica-*.pid; do
    pid="$(cat "$f")"
    kb="$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null)" ||
      die "replica pid $pid ($f) is gone: see $MIR_CLUSTER_DIR/logs"
    [ -n "$kb" ] || die "replica pid $pid ($f) is gone: see $MIR_CLUSTER_DIR/logs"
    ((kb > max)) && max=$kb
  done
  echo "$max"
}

# One run on a fresh cluster: label clients rate window(0: default) seconds. Appends to overload.tsv.
run() {
  local label="$1" clients="$2" rate="$3" window="$4" secs="$5"
  local json="$out/run-$label.json" flags=() t0 t1 hwm
  cluster clean >/dev/null 2>&1 || true
  cluster start 4 >"$out/start-$label.log" 2>&1 || die "the cluster did not start: $out/start-$label.log"
  if [ -s "$MIR_CLUSTER_DIR/client-flags" ]; then read -r -a flags <"$MIR_CLUSTER_DIR/client-flags"; fi
  [ "$window" -gt 0 ] && flags+=(--window "$window")
  echo "overload-bench: $label: $clients clients offering $rate tx/s for $secs s" >&2
  t0="$(cpu_ticks)"
  "$bin/mir-bench" --replicas "$(paste -sd, "$MIR_CLUSTER_DIR/client-addresses")" "${flags[@]}" \
    --clients "$clients" --rate "$rate" --size 256 --duration "$secs" --warmup 2 --drain 5 \
    --json "$json" >"$out/bench-$label.log" 2>&1 || true
  t1="$(cpu_ticks)"
  hwm="$(max_hwm)"
  cp -r "$MIR_CLUSTER_DIR/logs" "$out/logs-$label"
  cluster clean >/dev/null 2>&1 || true
  [ -s "$json" ] || die "mir-bench wrote no results: $out/bench-$label.log"
  python3 - "$json" "$label" "$clients" "$rate" "$window" "$((t1 - t0))" "$(getconf CLK_TCK)" \
    "$hwm" >>"$out/overload.tsv" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
label, clients, rate, window, ticks, hz, hwm = sys.argv[2:9]
c = j["committed"]
cpu = int(ticks) * 1e6 / int(hz) / c if c else float("nan")
sdk, lat = j["sdk"], j["latency_ms"]
print("\t".join(str(x) for x in [label, clients, rate, "default" if window == "0" else window,
      f'{j["throughput_tx_s"]:.0f}', j["refused"], sdk["resent"], sdk["reconnects"],
      f'{lat["p50"]:.1f}', f'{lat["p99"]:.1f}', f'{int(hwm) / 1024:.0f}', f'{cpu:.1f}']))
PY
}

printf 'run\tclients\toffered\twindow\tcommitted_tx_s\trefused\tresent\treconnects\tp50_ms\tp99_ms\tmax_rss_mb\tcpu_us_per_tx\n' \
  >"$out/overload.tsv"
if [ -z "$peak" ]; then
  run peak 8 200000 0 "$peak_seconds"
  peak="$(awk -F'\t' '$1 == "peak" {print $5}' "$out/overload.tsv")"
  [ "${peak:-0}" -gt 0 ] || die "the peak run committed nothing: $out/bench-peak.log"
fi
echo "overload-bench: peak $peak tx/s" >&2
for m in "${mult_list[@]}"; do
  rate="$(awk -v p="$peak" -v m="$m" 'BEGIN{printf "%d", p * m}')"
  if awk -v m="$m" 'BEGIN{exit !(m <= 1)}'; then
    run "${m}x" 8 "$rate" 0 "$seconds"
  elif awk -v m="$m" 'BEGIN{exit !(m <= 2)}'; then
    run "${m}x" 8 "$rate" 8192 "$seconds"
  else
    run "${m}x" 16 "$rate" 8192 "$seconds"
  fi
done

python3 - "$out/overload.tsv" "$peak" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
peak = float(sys.argv[2])
print(f"peak: {peak:.0f} tx/s")
print("| run | clients | offered tx/s | window | committed tx/s | of peak | refused | resent | "
      "reconnects | p50 | p99 | max RSS/replica | CPU µs/tx |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    share = float(r["committed_tx_s"]) / peak
    print(f'| {r["run"]} | {r["clients"]} | {int(r["offered"]):,} | {r["window"]} | '
          f'{int(r["committed_tx_s"]):,} | {share:.0%} | {int(r["refused"]):,} | '
          f'{int(r["resent"]):,} | {r["reconnects"]} | {r["p50_ms"]} ms | {r["p99_ms"]} ms | '
          f'{r["max_rss_mb"]} MB | {r["cpu_us_per_tx"]} |')
PY
