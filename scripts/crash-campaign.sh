#!/usr/bin/env bash
# Crash campaign (docs/OPERATIONS.md, "Crash campaign"; not part of CI): a local cluster on
# 127.0.0.1 under open-loop load, and N cycles of kill -9 of 1, 2 or all replicas at random
# instants, each restarted at once. Then it checks that nothing diverged, nothing was lost and
# nothing was committed twice.
#
#   scripts/crash-campaign.sh [--cycles N] [--seed S] [--rate TX_PER_S] [--replicas N]
#                             [--dir DIR] [--keep]
#
#   --cycles N     kill cycles (default 100)
#   --seed S       the seed of every random choice (default: from the clock; printed)
#   --rate R       offered load in tx/s (mir-bench, 4 clients, 256-byte transactions; default 1000)
#   --replicas N   cluster size (default 4; 3f+1 for some f)
#   --dir DIR      working folder (default: a new one under $TMPDIR); kept on failure
#   --keep         keep the working folder after a successful run too
#
# Environment: MIR_BIN_DIR, the folder of mir-replica, mir-keygen, mir-status, mir-bench and
# mir-logcheck (default: build/bin of this repository).
#
# A cycle: wait a random 0.2..3 s, pick 1, 2 or all N replicas (each size equally likely), SIGKILL
# them together, confirm every pid is gone (a process that outlives its SIGKILL for 10 s fails the
# campaign), restart them at once without flags (resuming from their data), and confirm each new
# process is alive and answers mir-status; only then does the cycle count. A replica that exits by
# itself, or a cluster whose position stops advancing for 90 s, fails the campaign.
#
# Load: mir-bench segments of 60 s (clients crash-<seed>-<k>-<i>, --record per segment), started
# back to back while cycles run, each with a drain of 180 s. At the end the campaign waits for the
# load to finish, takes T = the least last_sn of the replicas, and runs mir-logcheck: every replica
# has the same log_hash(T), the log 0..T read from sn 0 by a quorum subscriber chains to it and
# holds no transaction twice, and every transaction the load generator saw committed (or accepted
# and never committed: a loss) is in it exactly once, at the sn the generator saw.
#
# Only 127.0.0.1 and ports it picks are used; it ends only processes it started, by pid. Exit
# status 0 when every check holds, 1 with "CAMPAIGN FAILED" otherwise, 2 for a usage error.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=../deploy/local/process.sh
. "$repo/deploy/local/process.sh"
bin="${MIR_BIN_DIR:-$repo/build/bin}"
cluster_sh="$repo/deploy/local/cluster.sh"

cycles=100
seed=""
rate=1000
n=4
work=""
keep=0
segment_s=60
drain_s=180
stall_s=90

usage() {
  sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles="${2:-}"; shift 2 ;;
    --seed) seed="${2:-}"; shift 2 ;;
    --rate) rate="${2:-}"; shift 2 ;;
    --replicas) n="${2:-}"; shift 2 ;;
    --dir) work="${2:-}"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for v in "$cycles" "$rate" "$n"; do
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || { echo "crash-campaign: bad number '$v'" >&2; exit 2; }
done
[ "$n" -ge 4 ] && [ "$n" -le 16 ] || { echo "crash-campaign: --replicas must be 4..16" >&2; exit 2; }
[ -n "$seed" ] || seed=$(( $(date +%s%N) % 1000000007 ))
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "crash-campaign: --seed must be a number" >&2; exit 2; }
rng_state=$seed
# A deterministic generator of our own, so that a seed replays the same choices: sets R to
# 0..$1-1 (a global, not an output: $(rand) would run in a subshell and lose the state).
rand() {
  rng_state=$(((rng_state * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff))
  R=$(((rng_state >> 16) % $1))
}

for b in mir-replica mir-keygen mir-status mir-bench mir-logcheck; do
  [ -x "$bin/$b" ] || { echo "crash-campaign: $bin/$b not found (build it, or set MIR_BIN_DIR)" >&2; exit 2; }
done

if [ -z "$work" ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/mir-crash-campaign-XXXXXX")"
else
  mkdir -p "$work"
fi
cdir="$work/cluster"
export MIR_CLUSTER_DIR="$cdir" MIR_BIN_DIR="$bin"

t_start=$(date +%s)
failed=""
load_pids=()
segments=0

now_s() { echo $(($(date +%s) - t_start)); }
log() { echo "[$(printf '%5d' "$(now_s)")s] $*"; }


pid_of() { cat "$cdir/pids/replica-$1.pid" 2>/dev/null; }
addr_of() { sed -n "$(($1 + 1))p" "$cdir/client-addresses"; }
all_addrs() { paste -sd, "$cdir/client-addresses"; }

fail() {
  failed="$*"
  echo
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  echo "CAMPAIGN FAILED (seed $seed): $*"
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  for ((i = 0; i < n; i++)); do
    echo "---- replica $i: last lines of $cdir/logs/replica-$i.log ----"
    grep -E "error|ERROR|warn|Sanitizer" "$cdir/logs/replica-$i.log" 2>/dev/null | tail -5 || true
    tail -5 "$cdir/logs/replica-$i.log" 2>/dev/null || true
  done
  echo "working folder kept: $work (logs in $cdir/logs, load in $work/load-*.out)"
  exit 1
}

# On any exit: end the load generators and the replicas this campaign started, by pid.
cleanup() {
  local rc=$?
  for j in "${!load_pids[@]}"; do
    [ -f "$work/load-$j.rc" ] || kill -TERM "${load_pids[$j]}" 2>/dev/null || true
  done
  if [ -d "$cdir/pids" ]; then
    for f in "$cdir"/pids/replica-*.pid; do
      [ -f "$f" ] || continue
      p="$(cat "$f")"
      alive "$p" && kill -TERM "$p" 2>/dev/null || true
    done
    sleep 1
    for f in "$cdir"/pids/replica-*.pid; do
      [ -f "$f" ] || continue
      p="$(cat "$f")"
      for _ in $(seq 1 150); do alive "$p" || break; sleep 0.1; done
      alive "$p" && kill -KILL "$p" 2>/dev/null || true
    done
  fi
  for j in "${!load_pids[@]}"; do
    for _ in $(seq 1 100); do [ -f "$work/load-$j.rc" ] && break; sleep 0.1; done
  done
  if [ "$rc" -eq 0 ] && [ -z "$failed" ] && [ "$keep" -eq 0 ]; then
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# Two blocks of n free ports on 127.0.0.1 (nothing accepts a connection there now).
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_ports() {
  local ok
  for _ in $(seq 1 200); do
    rand 40000
    base=$((20000 + R))
    ok=1
    for ((p = base; p < base + 2 * n; p++)); do port_free "$p" || { ok=0; break; }; done
    [ "$ok" -eq 1 ] && return 0
  done
  return 1
}

# The least last_sn of all replicas, "-" if one does not answer.
min_last_sn() {
  local out
  out="$("$bin/mir-status" --json --timeout-ms 2000 $(cat "$cdir/client-addresses") 2>/dev/null)" ||
    { echo "-"; return; }
  echo "$out" | sed -n 's/.*"last_sn":\([0-9]*\).*/\1/p' | sort -n | head -1 | grep . || echo "-"
}

# Fails if a replica process ended by itself.
check_all_alive() {
  for ((i = 0; i < n; i++)); do
    alive "$(pid_of "$i")" || fail "replica $i (pid $(pid_of "$i")) exited by itself ($1)"
  done
}

# Starts the next load segment in the background.
# A segment runs in a subshell that writes mir-bench's exit status to load-<k>.rc when it ends:
# the campaign starts thousands of processes, so pids wrap around, and a finished segment's pid
# may belong to another process by the end (bash then forgets its status, and signalling it could
# hit a stranger). A segment is finished once its .rc exists; only unfinished ones are signalled.
start_segment() {
  local k=$segments
  segments=$((segments + 1))
  (
    child=""
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 143' TERM
    "$bin/mir-bench" --replicas "$(all_addrs)" --clients 4 --rate "$rate" --size 256 \
      --duration "$segment_s" --warmup 0 --drain "$drain_s" --connect-timeout-ms 60000 \
      --client-prefix "crash-$seed-$k" --record "$work/record-$k" >"$work/load-$k.out" 2>&1 &
    child=$!
    st=0
    wait "$child" || st=$?
    echo "$st" >"$work/load-$k.rc"
  ) &
  load_pids+=($!)
  seg_started=$(date +%s)
  log "load segment $k started (pid $!, $rate tx/s for ${segment_s} s, clients crash-$seed-$k-*)"
}

pick_ports || { echo "crash-campaign: no free ports" >&2; exit 1; }
export MIR_PEER_BASE_PORT=$base MIR_CLIENT_BASE_PORT=$((base + n))
echo "crash campaign: seed $seed, $cycles cycles, $n replicas, $rate tx/s, ports $base..$((base + 2 * n - 1)), folder $work"
"$cluster_sh" start "$n" >"$work/cluster-start.out" 2>&1 || { cat "$work/cluster-start.out"; fail "the cluster did not start"; }
log "cluster of $n replicas up"
start_segment

kills=(0 0 0) # cycles that killed 1, 2 and all replicas
killed_total=0
last_progress_sn=0
last_progress_t=$(date +%s)
for ((c = 1; c <= cycles; c++)); do
  check_all_alive "before cycle $c"
  if [ $(($(date +%s) - seg_started)) -ge "$segment_s" ]; then start_segment; fi
  # A random instant.
  rand 2800
  pause_ms=$((200 + R))
  sleep "$((pause_ms / 1000)).$(printf '%03d' $((pause_ms % 1000)))"
  # 1, 2 or all.
  rand 3
  kind=$R
  case $kind in 0) k=1 ;; 1) k=2 ;; *) k=$n ;; esac
  victims=()
  if [ "$k" -eq "$n" ]; then
    for ((i = 0; i < n; i++)); do victims+=("$i"); done
  else
    while [ "${#victims[@]}" -lt "$k" ]; do
      rand "$n"
      [[ " ${victims[*]-} " == *" $R "* ]] || victims+=("$R")
    done
  fi
  pids=()
  for v in "${victims[@]}"; do pids+=("$(pid_of "$v")"); done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  for j in "${!pids[@]}"; do
    for _ in $(seq 1 100); do alive "${pids[$j]}" || break; sleep 0.1; done
    alive "${pids[$j]}" && fail "cycle $c: replica ${victims[$j]} (pid ${pids[$j]}) outlived SIGKILL by 10 s"
    rm -f "$cdir/pids/replica-${victims[$j]}.pid"
  done
  # Restart at once, all in parallel; each start-one confirms its replica answers mir-status.
  t0=$(date +%s%N)
  starters=()
  for v in "${victims[@]}"; do
    "$cluster_sh" start-one "$v" >"$work/start-$v.out" 2>&1 &
    starters+=($!)
  done
  for j in "${!starters[@]}"; do
    wait "${starters[$j]}" || { cat "$work/start-${victims[$j]}.out"; fail "cycle $c: replica ${victims[$j]} did not restart"; }
  done
  newpids=()
  for v in "${victims[@]}"; do
    p="$(pid_of "$v")"
    alive "$p" || fail "cycle $c: replica $v (pid $p) is not alive after its restart"
    "$bin/mir-status" --timeout-ms 3000 "$(addr_of "$v")" >/dev/null 2>&1 ||
      fail "cycle $c: replica $v (pid $p) does not answer mir-status after its restart"
    newpids+=("$p")
  done
  restart_ms=$((($(date +%s%N) - t0) / 1000000))
  kills[$kind]=$((kills[kind] + 1))
  killed_total=$((killed_total + k))
  sn="$(min_last_sn)"
  if [ "$sn" != "-" ] && [ "$sn" -gt "$last_progress_sn" ]; then
    last_progress_sn=$sn
    last_progress_t=$(date +%s)
  elif [ $(($(date +%s) - last_progress_t)) -ge "$stall_s" ]; then
    fail "cycle $c: no replica's position advanced for ${stall_s} s (least last_sn $last_progress_sn): a liveness failure"
  fi
  log "cycle $c/$cycles: killed ${victims[*]} (pids ${pids[*]}) after ${pause_ms} ms; all gone; restarted (pids ${newpids[*]}) and answering in ${restart_ms} ms; least last_sn $sn"
done
cycles_s=$(now_s)

# The load finishes: its schedule, then the drain of every transaction.
log "cycles done; waiting for the load to finish (at most $((segment_s + drain_s + 60)) s)"
for j in "${!load_pids[@]}"; do
  rcf="$work/load-$j.rc"
  for _ in $(seq 1 $(((segment_s + drain_s + 60) * 10))); do [ -f "$rcf" ] && break; sleep 0.1; done
  [ -f "$rcf" ] || fail "load segment $j (pid ${load_pids[$j]}) did not finish"
  st="$(cat "$rcf")"
  [ "$st" = 0 ] || { tail -5 "$work/load-$j.out"; fail "load segment $j failed (exit status $st)"; }
  summary="$(grep -E '^submitted' "$work/load-$j.out" || true)"
  log "load segment $j: $summary"
done
check_all_alive "after the load"
for f in "$cdir"/logs/replica-*.log; do
  grep -q "Sanitizer" "$f" && fail "a sanitizer report in $f"
done

# The checks.
sleep 2
to_sn="$(min_last_sn)"
[ "$to_sn" != "-" ] || fail "not every replica answers mir-status at the end"
"$bin/mir-status" $(cat "$cdir/client-addresses") | sed 's/^/  /'
records=()
for ((k = 0; k < segments; k++)); do records+=(--record "$work/record-$k"); done
log "checking the log up to sn $to_sn (mir-logcheck)"
if ! "$bin/mir-logcheck" --replicas "$(all_addrs)" --to-sn "$to_sn" --timeout-s 600 "${records[@]}" \
  >"$work/logcheck.out" 2>&1; then
  cat "$work/logcheck.out"
  fail "mir-logcheck found divergence, loss or duplicates (above)"
fi
cat "$work/logcheck.out"

submitted=0
committed=0
for ((k = 0; k < segments; k++)); do
  s=$(sed -n 's/^submitted \([0-9]*\), committed \([0-9]*\),.*/\1 \2/p' "$work/load-$k.out")
  submitted=$((submitted + ${s%% *}))
  committed=$((committed + ${s##* }))
done
total_s=$(now_s)
echo
echo "==================================================================================="
echo "crash campaign passed: seed $seed, $n replicas"
echo "  cycles: $cycles (kill 1: ${kills[0]}, kill 2: ${kills[1]}, kill all $n: ${kills[2]}), $killed_total kills, each confirmed gone and each restart confirmed answering"
echo "  load: $segments segments of mir-bench at $rate tx/s: $submitted submitted, $committed committed"
echo "  log: every replica at log_hash($to_sn) equal; no divergence, no loss, no duplicate"
echo "  wall time: ${total_s} s (cycles ${cycles_s} s)"
echo "==================================================================================="
