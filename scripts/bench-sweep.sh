#!/usr/bin/env bash
# Steps the offered load on a local 4-replica cluster until commits stop following it, and writes
# what each step measured as CSV and JSON, with two plots (gnuplot, if installed): latency against
# committed throughput, and committed throughput over time across the whole sweep.
#
#   scripts/bench-sweep.sh [options]
#
#   --start R       first offered rate, tx/s (default 1000)
#   --factor F      each next step offers F times the previous rate (default 1.5)
#   --max R         never offer more than this (default 200000)
#   --rates LIST    comma-separated rates instead of start/factor/max
#   --clients N     mir-bench clients (default 8)
#   --size B        transaction bytes (default 256)
#   --duration S    measured seconds per step (default 10; warm-up 2 s, drain 5 s)
#   --window N      the SDK's window per client (default: mir-bench's)
#   --out DIR       results (default: a new folder under /tmp)
#   --base-port P   peers listen on P.., clients on P+100.. (default 29000); 127.0.0.1 only
#   --bin DIR       the programs (default: MIR_BIN_DIR, else build/bin of this repository)
#   --plot DIR      only draw the plots of an earlier sweep's results folder DIR, and stop
#
# A step "follows" when it commits at least 90% of what it offered. The sweep stops after two
# steps in a row that do not follow (the peak lies behind), or at --max. One cluster serves the
# whole sweep (each step uses clients of its own); it is stopped and removed at the end.
# CPU per committed transaction is the whole machine's non-idle CPU time (/proc/stat) over the
# step's mir-bench run divided by what the step committed: run on an otherwise idle machine.
#
# Outputs in DIR: sweep.csv, sweep.json (every step's mir-bench JSON plus its CPU figure),
# latency.png and timeline.png (when gnuplot is installed: Debian package gnuplot-nox).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
start=1000
factor=1.5
max=200000
rates=""
clients=8
size=256
duration=10
window=""
out=""
base_port=29000
bin="${MIR_BIN_DIR:-$repo/build/bin}"

die() {
  echo "bench-sweep: $*" >&2
  exit 1
}
usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }
num() { [[ "$2" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "bench-sweep: $1: a number, not '$2'" >&2; exit 2; }; }

# Draws latency.png and timeline.png in results folder $1 from its sweep.csv and timeline.dat.
plot() {
  local dir="$1" clients size
  if ! command -v gnuplot >/dev/null 2>&1; then
    echo "bench-sweep: gnuplot not installed (scripts/install-deps.sh --bench): no plots; data in $dir"
    return 0
  fi
  clients="$(awk -F, 'NR == 2 {print $2}' "$dir/sweep.csv")"
  size="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["size"])' "$dir/step-1.json")"
  gnuplot <<GP
set terminal png size 900,600
set datafile separator ","
set output "$dir/latency.png"
set title "Latency against committed throughput (4 replicas, $clients clients, $size-byte transactions)"
set xlabel "committed tx/s"
set ylabel "latency (ms)"
set logscale y
set key top left
plot "$dir/sweep.csv" every ::1 using 3:4 with linespoints title "p50", \
     "$dir/sweep.csv" every ::1 using 3:6 with linespoints title "p99"
set datafile separator whitespace
unset logscale y
set output "$dir/timeline.png"
set title "Committed throughput over the sweep (one point per second)"
set xlabel "seconds"
set ylabel "tx/s"
plot "$dir/timeline.dat" using 1:2 with lines title "committed", \
     "$dir/timeline.dat" using 1:3 with steps title "offered"
GP
  echo "bench-sweep: plots: $dir/latency.png $dir/timeline.png"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --start) num "$1" "$2"; start="$2"; shift 2 ;;
    --factor) num "$1" "$2"; factor="$2"; shift 2 ;;
    --max) num "$1" "$2"; max="$2"; shift 2 ;;
    --rates) rates="$2"; shift 2 ;;
    --clients) num "$1" "$2"; clients="$2"; shift 2 ;;
    --size) num "$1" "$2"; size="$2"; shift 2 ;;
    --duration) num "$1" "$2"; duration="$2"; shift 2 ;;
    --window) num "$1" "$2"; window="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --base-port) num "$1" "$2"; base_port="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --plot) [ -s "$2/sweep.csv" ] || die "--plot: $2/sweep.csv not found"; plot "$2"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
awk -v f="$factor" 'BEGIN{exit !(f > 1)}' || { echo "bench-sweep: --factor must be above 1" >&2; exit 2; }
for b in mir-replica mir-keygen mir-status mir-bench; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: build first (make build), or --bin"
done
[ -n "$out" ] || out="$(mktemp -d /tmp/mir-bench-sweep.XXXXXX)"
mkdir -p "$out"

# The offered rates, one per line.
if [ -n "$rates" ]; then
  tr ',' '\n' <<<"$rates" | while read -r r; do num --rates "$r"; echo "$r"; done >"$out/rates"
else
  awk -v s="$start" -v f="$factor" -v m="$max" 'BEGIN{for (r = s; r <= m; r *= f) printf "%d\n", r}' >"$out/rates"
fi
[ -s "$out/rates" ] || die "no rate to offer"

export MIR_CLUSTER_DIR="$out/cluster" MIR_BIN_DIR="$bin" MIR_LOG=warn
export MIR_PEER_BASE_PORT="$base_port" MIR_CLIENT_BASE_PORT="$((base_port + 100))"
cluster="$repo/deploy/local/cluster.sh"
trap '"$cluster" clean >/dev/null 2>&1 || true' EXIT
echo "bench-sweep: results in $out; starting a 4-replica cluster"
"$cluster" start 4 >"$out/start.log" 2>&1 || { cat "$out/start.log" >&2; die "the cluster did not start"; }
addrs="$(paste -sd, "$MIR_CLUSTER_DIR/client-addresses")"
flags=()
if [ -s "$MIR_CLUSTER_DIR/client-flags" ]; then read -r -a flags <"$MIR_CLUSTER_DIR/client-flags"; fi
[ -z "$window" ] || flags+=(--window "$window")

cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
hz="$(getconf CLK_TCK)"
echo "offered_tx_s,clients,committed_tx_s,p50_ms,p90_ms,p99_ms,refused,resent,cpu_us_per_tx" >"$out/sweep.csv"
step=0
behind=0
while read -r rate; do
  step=$((step + 1))
  json="$out/step-$step.json"
  t0="$(cpu_ticks)"
  "$bin/mir-bench" --replicas "$addrs" "${flags[@]}" --clients "$clients" --rate "$rate" \
    --size "$size" --duration "$duration" --warmup 2 --drain 5 --client-prefix "s$step" \
    --json "$json" >"$out/step-$step.log" 2>&1 || true
  t1="$(cpu_ticks)"
  [ -s "$json" ] || die "step $step (offered $rate tx/s) wrote no results: $out/step-$step.log"
  line="$(python3 - "$json" "$rate" "$clients" "$((t1 - t0))" "$hz" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
rate, clients, ticks, hz = float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
c = j["committed"]
cpu = ticks * 1e6 / hz / c if c else float("nan")
lat = j["latency_ms"]
print(f'{rate:.0f},{clients},{j["throughput_tx_s"]:.0f},{lat["p50"]:.1f},{lat["p90"]:.1f},'
      f'{lat["p99"]:.1f},{j["refused"]},{j["sdk"]["resent"]},{cpu:.1f}')
PY
)"
  echo "$line" >>"$out/sweep.csv"
  IFS=, read -r _ _ committed p50 _ p99 refused _ cpu <<<"$line"
  printf 'bench-sweep: offered %8s tx/s  committed %8s tx/s  p50 %7s ms  p99 %7s ms  refused %s  CPU %s us/tx\n' \
    "$rate" "$committed" "$p50" "$p99" "$refused" "$cpu"
  if awk -v c="$committed" -v r="$rate" 'BEGIN{exit !(c < 0.9 * r)}'; then
    behind=$((behind + 1))
    [ "$behind" -lt 2 ] || { echo "bench-sweep: two steps in a row below 90% of the offered load: stop"; break; }
  else
    behind=0
  fi
done <"$out/rates"

# Every step's JSON, with its CPU figure, in one file.
python3 - "$out" <<'PY'
import csv, glob, json, os, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "sweep.csv"))))
steps = []
for i, row in enumerate(rows, 1):
    j = json.load(open(os.path.join(out, f"step-{i}.json")))
    j["cpu_us_per_tx"] = float(row["cpu_us_per_tx"])
    steps.append(j)
json.dump({"steps": steps}, open(os.path.join(out, "sweep.json"), "w"), indent=1)
# Committed tx/s over time across the sweep, one line per second.
with open(os.path.join(out, "timeline.dat"), "w") as f:
    t = 0
    for i, j in enumerate(steps, 1):
        for s in j["per_second"]:
            t += 1
            f.write(f'{t} {s["tx_s"]} {j["rate"]:.0f}\n')
PY

plot "$out"
echo "bench-sweep: $out/sweep.csv $out/sweep.json"
