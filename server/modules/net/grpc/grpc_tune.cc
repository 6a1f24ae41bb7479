// Process-wide settings of the gRPC runtime (mir/grpc_tune.h). C++ only because Abseil's setter is
// a C++ function; nothing else here.
#include "mir/grpc_tune.h"

#include <absl/synchronization/mutex.h>

#include <cstdlib>
#include <cstring>

bool mir_grpc_tune_process(void) {
  const char *keep = std::getenv("MIR_ABSL_DEADLOCK_DETECTION");
  if (keep != nullptr && std::strcmp(keep, "1") == 0) return false;
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}
