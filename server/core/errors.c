/* Names of the error codes. The table is indexed by code, so its order follows errors.h. */
#include "mir/errors.h"

#include <stddef.h>

static const char *const error_names[MIR_ERR_COUNT_] = {
    [MIR_OK] = "ok",
    [MIR_EINVAL] = "invalid argument",
    [MIR_ENOMEM] = "out of memory",
    [MIR_ESTOPPED] = "stopped",
    [MIR_EFULL] = "full",
    [MIR_ENOTFOUND] = "not found",
    [MIR_EEXIST] = "already exists",
    [MIR_EIO] = "input/output error",
    [MIR_EPROTO] = "malformed input",
    [MIR_ECONFIG] = "invalid configuration",
    [MIR_ETIMEDOUT] = "timed out",
    [MIR_ECRYPTO] = "cryptographic failure",
    [MIR_EMODULE] = "module error",
    [MIR_EEOF] = "end of input",
    [MIR_EUNSUPPORTED] = "not supported",
};

const char *mir_strerror(mir_err err) {
  if ((int)err < 0 || err >= MIR_ERR_COUNT_ || error_names[err] == NULL) return "unknown error";
  return error_names[err];
}
