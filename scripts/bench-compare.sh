#!/usr/bin/env bash
# Compares two versions of Mir-C end to end: each is built from its commit, a local 4-replica
# cluster of each runs mir-bench at the same offered loads, and the runs are interleaved (version
# A, version B, B, A, ...) so that drift of a shared machine hits both alike. Prints one line per
# run and a summary with medians and the ratio B/A.
#
#   scripts/bench-compare.sh [options] REV_A REV_B
#
# REV is a git revision, or "." for the working tree as it is (uncommitted changes included).
# Options:
#   --runs N           runs per version and load (default 3)
#   --loads L          comma-separated clients:rate pairs (default 4:2000,8:10000,8:40000)
#   --size B           transaction bytes (default 256)
#   --duration S       measured seconds per run (default 10; warm-up 2 s, drain 5 s)
#   --work DIR         builds, clusters and results (default: a new folder under /tmp)
#   --base-port P      ports P.. for version A's cluster, P+200.. for B's (default 27000)
#
# CPU per committed transaction is the whole machine's: the non-idle CPU time of /proc/stat over
# the mir-bench run (replicas, load generator, everything), divided by the transactions the run
# committed. Run it on an otherwise idle machine. Only 127.0.0.1; every process it starts is
# stopped by the cluster script of its version.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
runs=3
loads="4:2000,8:10000,8:40000"
size=256
duration=10
work=""
base_port=27000

die() {
  echo "bench-compare: $*" >&2
  exit 1
}
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --loads) loads="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --base-port) base_port="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (--help)" ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { usage >&2; exit 2; }
rev_a="$1"
rev_b="$2"
[[ "$runs" =~ ^[0-9]+$ ]] && [ "$runs" -ge 1 ] || die "--runs: a positive number, not '$runs'"
[[ "$duration" =~ ^[0-9]+$ ]] && [ "$duration" -ge 1 ] || die "--duration: seconds, not '$duration'"
[ -n "$work" ] || work="$(mktemp -d /tmp/mir-bench-compare.XXXXXX)"
mkdir -p "$work"
echo "bench-compare: working in $work"

# Sources of a revision in $work/src-<label> ("." uses the working tree in place).
sources() {
  local rev="$1" label="$2"
  if [ "$rev" = "." ]; then
    echo "$repo"
    return
  fi
  local dir="$work/src-$label"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    git -C "$repo" archive "$(git -C "$repo" rev-parse --verify "$rev^{commit}")" | tar -x -C "$dir"
  fi
  echo "$dir"
}

# Builds what a cluster and the load need (Release, no tests); echoes the bin folder.
build() {
  local src="$1" label="$2"
  local b="$work/build-$label"
  echo "bench-compare: building $label ($src) in $b" >&2
  cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=Release -DMIR_BUILD_TESTS=OFF >"$work/cmake-$label.log" 2>&1 ||
    die "configure of $label failed: $work/cmake-$label.log"
  cmake --build "$b" -j "$(nproc)" --target mir-replica mir-keygen mir-status mir-bench \
    >>"$work/cmake-$label.log" 2>&1 || die "build of $label failed: $work/cmake-$label.log"
  echo "$b/bin"
}

# Non-idle CPU ticks of the whole machine (user nice system irq softirq steal).
cpu_ticks() {
  awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat
}

src_a="$(sources "$rev_a" A)"
src_b="$(sources "$rev_b" B)"
bin_a="$(build "$src_a" A)"
bin_b="$(build "$src_b" B)"
hz="$(getconf CLK_TCK)"
results="$work/results.tsv"
printf 'version\tclients\trate\trun\tcommitted_tx_s\tp50_ms\tp99_ms\trefused\tcpu_us_per_tx\n' >"$results"

# One run: a fresh cluster of version (label, src, bin, port base), mir-bench, the cluster stopped.
one_run() {
  local label="$1" src="$2" bin="$3" port="$4" clients="$5" rate="$6" run="$7"
  local dir="$work/cluster-$label"
  export MIR_CLUSTER_DIR="$dir" MIR_BIN_DIR="$bin" MIR_PEER_BASE_PORT="$port"
  export MIR_CLIENT_BASE_PORT=$((port + 100)) MIR_LOG=warn
  "$src/deploy/local/cluster.sh" clean >/dev/null 2>&1 || true
  "$src/deploy/local/cluster.sh" start 4 >"$work/start-$label.log" 2>&1 ||
    { "$src/deploy/local/cluster.sh" stop >/dev/null 2>&1 || true; die "cluster $label did not start: $work/start-$label.log"; }
  local json="$work/run-$label-$clients-$rate-$run.json"
  local t0 t1 flags=()
  # The client options the version's cluster asks of clients (client certificates), if any.
  if [ -s "$dir/client-flags" ]; then read -r -a flags <"$dir/client-flags"; fi
  t0="$(cpu_ticks)"
  "$bin/mir-bench" --replicas "$(paste -sd, "$dir/client-addresses")" "${flags[@]}" \
    --clients "$clients" --rate "$rate" --size "$size" --duration "$duration" --warmup 2 \
    --drain 5 --json "$json" >"$work/bench-$label-$clients-$rate-$run.log" 2>&1 || true
  t1="$(cpu_ticks)"
  "$src/deploy/local/cluster.sh" clean >/dev/null 2>&1 || true
  [ -s "$json" ] || die "mir-bench wrote no results: $work/bench-$label-$clients-$rate-$run.log"
  python3 - "$json" "$label" "$clients" "$rate" "$run" "$((t1 - t0))" "$hz" >>"$results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
label, clients, rate, run, ticks, hz = sys.argv[2:8]
committed = j["committed"]
cpu_us = int(ticks) * 1e6 / int(hz)
per_tx = cpu_us / committed if committed else float("nan")
lat = j["latency_ms"]
print(f'{label}\t{clients}\t{rate}\t{run}\t{j["throughput_tx_s"]:.0f}\t{lat["p50"]:.1f}\t'
      f'{lat["p99"]:.1f}\t{j["refused"]}\t{per_tx:.1f}')
PY
  tail -n 1 "$results"
}

IFS=, read -r -a load_list <<<"$loads"
for ((r = 1; r <= runs; r++)); do
  for load in "${load_list[@]}"; do
    clients="${load%%:*}"
    rate="${load##*:}"
    # Alternate which version goes first, so that neither always runs on a warmer machine.
    if ((r % 2 == 1)); then order="A B"; else order="B A"; fi
    for v in $order; do
      if [ "$v" = A ]; then
        one_run A "$src_a" "$bin_a" "$base_port" "$clients" "$rate" "$r"
      else
        one_run B "$src_b" "$bin_b" $((base_port + 200)) "$clients" "$rate" "$r"
      fi
    done
  done
done

echo
echo "A = $rev_a, B = $rev_b; medians of $runs runs; 4 replicas, $size-byte transactions, ${duration} s"
python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
loads = []
for r in rows:
    k = (int(r["clients"]), int(r["rate"]))
    if k not in loads:
        loads.append(k)
def med(v, load, field):
    xs = [float(r[field]) for r in rows if r["version"] == v and (int(r["clients"]), int(r["rate"])) == load]
    return statistics.median(xs) if xs else float("nan")
print("| clients | offered tx/s | committed A | committed B | B/A | p50 A | p50 B | p99 A | p99 B | CPU us/tx A | CPU us/tx B | B/A |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for load in loads:
    ca, cb = med("A", load, "committed_tx_s"), med("B", load, "committed_tx_s")
    ua, ub = med("A", load, "cpu_us_per_tx"), med("B", load, "cpu_us_per_tx")
    print(f"| {load[0]} | {load[1]:,} | {ca:,.0f} | {cb:,.0f} | {cb / ca:.2f} | "
          f"{med('A', load, 'p50_ms'):.0f} ms | {med('B', load, 'p50_ms'):.0f} ms | "
          f"{med('A', load, 'p99_ms'):.0f} ms | {med('B', load, 'p99_ms'):.0f} ms | "
          f"{ua:.0f} | {ub:.0f} | {ub / ua:.2f} |")
PY
echo "per-run results: $results"
