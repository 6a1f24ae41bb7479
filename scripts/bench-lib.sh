# Shared pieces of the benchmark scripts (overload-bench.sh, limit-bench.sh, metrics-cost.sh):
# sourced, not run. The caller sets BENCH_NAME (the prefix of its messages) before sourcing.
#
# CPU is read from /proc in clock ticks: the whole machine's non-idle time (/proc/stat: user, nice,
# system, irq, softirq, steal) and the user plus system time of the cluster's processes
# (/proc/<pid>/stat, fields 14 and 15), which other work on a shared machine does not inflate.

bench_die() {
  echo "${BENCH_NAME:-bench}: $*" >&2
  exit 1
}

bench_say() { echo "${BENCH_NAME:-bench}: $*" >&2; }

# bench_num OPTION VALUE: VALUE must be a whole number.
bench_num() { [[ "$2" =~ ^[0-9]+$ ]] || bench_die "$1: a whole number, not '$2'"; }

# bench_need BIN_DIR PROGRAM...: every program exists in BIN_DIR.
bench_need() {
  local dir="$1" p
  shift
  for p in "$@"; do
    [ -x "$dir/$p" ] || bench_die "$dir/$p not found: build first (make build), or --bin"
  done
}

# Non-idle ticks of the whole machine.
bench_machine_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }

# User plus system ticks of the cluster's processes (MIR_CLUSTER_DIR/pids/replica-*.pid), which
# must all still run.
bench_cluster_ticks() {
  local sum=0 f t
  for f in "$MIR_CLUSTER_DIR"/pids/replica-*.pid; do
    t="$(awk '{print $14 + $15}' "/proc/$(cat "$f")/stat" 2>/dev/null)" ||
      bench_die "a replica exited during the run: see $MIR_CLUSTER_DIR/logs"
    sum=$((sum + t))
  done
  echo "$sum"
}

# Largest VmHWM (kB) of the cluster's processes, which must all still run.
bench_cluster_max_hwm() {
  local max=0 f pid kb
  for f in "$MIR_CLUSTER_DIR"/pids/replica-*.pid; do
    pid="$(cat "$f")"
    kb="$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null)" ||
      bench_die "replica pid $pid ($f) is gone: see $MIR_CLUSTER_DIR/logs"
    [ -n "$kb" ] || bench_die "replica pid $pid ($f) is gone: see $MIR_CLUSTER_DIR/logs"
    ((kb > max)) && max=$kb
  done
  echo "$max"
}

# User plus system ticks of the finished children in the output of bash's `times` in file $1 (its
# second line; `times` must run in the calling shell itself: a subshell starts with no children's
# times).
bench_child_ticks() {
  awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
    n = split($1 " " $2, f, " ")
    t = 0
    for (i = 1; i <= n; i++) { split(f[i], ms, "m"); sub("s", "", ms[2]); t += ms[1] * 60 + ms[2] }
    printf "%d", t * hz }' "$1"
}

# bench_mir_bench BIN JSON LOG CLIENTS RATE SECONDS [mir-bench flags...]: one mir-bench run against
# the cluster of MIR_CLUSTER_DIR (its client addresses and client flags), 256-byte transactions,
# 2 s of warm-up and 5 s of drain. mir-bench ends by itself once every transaction scheduled in the
# run was submitted (beyond the peak that takes longer than the run: the schedule falls behind) and
# the drain passed; the time limit only catches a hang, allowing for at least 10,000 commits per
# second. Its exit status is not fatal: the caller checks that JSON was written.
bench_mir_bench() {
  local bin="$1" json="$2" log="$3" clients="$4" rate="$5" secs="$6" flags=()
  shift 6
  if [ -s "$MIR_CLUSTER_DIR/client-flags" ]; then read -r -a flags <"$MIR_CLUSTER_DIR/client-flags"; fi
  timeout --signal=TERM --kill-after=10 $((3 * (secs + 7) + rate * (secs + 2) / 10000)) \
    "$bin/mir-bench" --replicas "$(paste -sd, "$MIR_CLUSTER_DIR/client-addresses")" \
    "${flags[@]}" "$@" --clients "$clients" --rate "$rate" --size 256 --duration "$secs" \
    --warmup 2 --drain 5 --json "$json" >"$log" 2>&1 || true
  [ -s "$json" ] || bench_die "mir-bench wrote no results: $log"
}

# bench_out_dir DIR NAME: DIR, or a new folder /tmp/NAME.XXXXXX when DIR is empty; made, said and
# echoed.
bench_out_dir() {
  local d="$1"
  [ -n "$d" ] || d="$(mktemp -d "/tmp/$2.XXXXXX")"
  mkdir -p "$d"
  bench_say "results in $d"
  echo "$d"
}

# bench_cluster_env OUT BASE_PORT BIN: the environment of deploy/local/cluster.sh for a cluster in
# OUT/cluster with peers on BASE_PORT.., clients on BASE_PORT+100.. and HTTP on BASE_PORT+200..,
# 127.0.0.1 only; the replicas log warnings and errors only.
bench_cluster_env() {
  export MIR_CLUSTER_DIR="$1/cluster" MIR_BIN_DIR="$3" MIR_PEER_BASE_PORT="$2"
  export MIR_CLIENT_BASE_PORT=$(($2 + 100)) MIR_HTTP_BASE_PORT=$(($2 + 200)) MIR_LOG=warn
}

# The local cluster script of this repository.
cluster() { "$(dirname "${BASH_SOURCE[0]}")/../deploy/local/cluster.sh" "$@"; }

# Prints the calling script's header comment (its usage), from line 2 to the first line that is
# not a comment, so the text and the help never disagree on where it ends.
bench_usage() { awk 'NR == 1 {next} /^#/ {sub(/^# ?/, ""); print; next} {exit}' "$0"; }
