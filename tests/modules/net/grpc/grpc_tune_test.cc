// mir_grpc_tune_process (mir/grpc_tune.h): Abseil's mutex deadlock detection, which Debian's
// build leaves on, is off afterwards, unless MIR_ABSL_DEADLOCK_DETECTION=1 keeps it. The
// detection reports two locks taken in both orders (a potential deadlock, even on one thread) by
// aborting the process; each case runs in a child process of its own, since the setting is
// process-wide.
#include <absl/synchronization/mutex.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "mir/grpc_tune.h"

namespace {

// Takes a then b, then b then a: a lock-order cycle for the deadlock detection.
void lock_both_orders() {
  static absl::Mutex a, b;
  a.Lock();
  b.Lock();
  b.Unlock();
  a.Unlock();
  b.Lock();
  a.Lock();
  a.Unlock();
  b.Unlock();
}

// Exits 0 if the cycle went unnoticed (the detection is off), else the detection aborted.
[[noreturn]] void run_cycle(bool tune, const char *env) {
  if (env != nullptr) setenv("MIR_ABSL_DEADLOCK_DETECTION", env, 1);
  if (tune) (void)mir_grpc_tune_process();
  lock_both_orders();
  std::exit(0);
}

bool cycle_aborts_untuned() {
  // Where Abseil was built with NDEBUG the detection is off already; then there is nothing to
  // switch off, and the cases below that need it on are skipped.
  pid_t pid = fork();
  if (pid == 0) run_cycle(false, nullptr);
  int status = 0;
  waitpid(pid, &status, 0);
  return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(GrpcTune, SwitchesOffAbseilsDeadlockDetection) {
  if (!cycle_aborts_untuned()) GTEST_SKIP() << "this Abseil has no deadlock detection on";
  EXPECT_EXIT(run_cycle(true, nullptr), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(run_cycle(true, "0"), ::testing::ExitedWithCode(0), "");
}

TEST(GrpcTune, EnvironmentKeepsTheDetection) {
  if (!cycle_aborts_untuned()) GTEST_SKIP() << "this Abseil has no deadlock detection on";
  EXPECT_DEATH(run_cycle(true, "1"), "");
}

TEST(GrpcTune, ReportsWhatItDid) {
  EXPECT_EXIT(
      {
        unsetenv("MIR_ABSL_DEADLOCK_DETECTION");
        std::exit(mir_grpc_tune_process() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        setenv("MIR_ABSL_DEADLOCK_DETECTION", "1", 1);
        std::exit(mir_grpc_tune_process() ? 1 : 0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
