/*
 * Logging: one line per call to stderr (or a sink set with mir_log_set_sink), prefixed with the
 * level and a component name. Thread-safe. The level is process-wide; the default is INFO and the
 * environment variable MIR_LOG (trace, debug, info, warn, error, off) overrides it at start.
 */
#ifndef MIR_LOG_H
#define MIR_LOG_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mir_log_level {
  MIR_LOG_TRACE = 0,
  MIR_LOG_DEBUG,
  MIR_LOG_INFO,
  MIR_LOG_WARN,
  MIR_LOG_ERROR,
  MIR_LOG_OFF
} mir_log_level;

/* Sets the process-wide minimum level. */
void mir_log_set_level(mir_log_level level);
mir_log_level mir_log_get_level(void);

/* Parses "trace".."off"; returns MIR_LOG_INFO for anything else. name is borrowed. */
mir_log_level mir_log_level_parse(const char *name);

/* Replaces the output sink (NULL restores stderr). The sink receives one complete line without
 * the trailing newline, is called under the logger's lock and must not log itself. */
typedef void (*mir_log_sink)(void *user_data, mir_log_level level, const char *line);
void mir_log_set_sink(mir_log_sink sink, void *user_data);

/* Logs one line when level >= the process-wide level. component and fmt are borrowed. */
void mir_log(mir_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mir_logv(mir_log_level level, const char *component, const char *fmt, va_list ap);

#define MIR_LOG_ENABLED(level) ((level) >= mir_log_get_level())

#ifdef __cplusplus
}
#endif
#endif
