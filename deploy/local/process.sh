# Process helpers shared by deploy/local/cluster.sh and scripts/crash-campaign.sh; sourced, not
# run (bash).

# True while any thread of process $1 runs (a killed replica whose parent has not reaped it yet is
# gone for every purpose here once all its threads are). Not only the main thread's state: after
# SIGKILL the main thread of a multi-threaded process can be a zombie while its other threads
# still exit, holding the process's files (the store's lock among them).
alive() {
  local t state
  for t in /proc/"$1"/task/*/status; do
    state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "$t" 2>/dev/null)" || continue
    [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ] && return 0
  done
  return 1
}
