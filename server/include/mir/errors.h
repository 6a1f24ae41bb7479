/*
 * The one error type of libmir. Every fallible function returns mir_err (MIR_OK == 0) and passes
 * results through out-parameters. Library errors (errno, gRPC status, RocksDB strings) are
 * wrapped into these codes once, at the seam that calls the library; the detail text lives in a
 * per-object "last error" message where the object has one.
 */
#ifndef MIR_ERRORS_H
#define MIR_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mir_err {
  MIR_OK = 0,
  MIR_EINVAL,    /* invalid argument or parameter (a programmer or configuration error) */
  MIR_ENOMEM,    /* allocation failed */
  MIR_ESTOPPED,  /* the node (or module) is stopped or stopping */
  MIR_EFULL,     /* a bounded queue or buffer is full */
  MIR_ENOTFOUND, /* no such module, file, key or type */
  MIR_EEXIST,    /* already exists */
  MIR_EIO,       /* I/O failure (file, disk, socket) */
  MIR_EPROTO,    /* malformed input: cannot decode, wrong type, out of range */
  MIR_ECONFIG,   /* invalid configuration file */
  MIR_ETIMEDOUT, /* a deadline passed */
  MIR_ECRYPTO,   /* signature or key failure */
  MIR_EMODULE,   /* a module reported an error; the node's last-error message says which */
  MIR_EEOF,      /* end of input */
  MIR_EUNSUPPORTED,
  MIR_ERR_COUNT_ /* number of codes; not an error */
} mir_err;

/* Returns a static, human-readable name for err (never NULL). */
const char *mir_strerror(mir_err err);

#ifdef __cplusplus
}
#endif
#endif
