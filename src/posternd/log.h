/*
 * log.h - posternd's log: one line per event, to stderr (journald adds the
 * time when JOURNAL_STREAM is set; otherwise we write an ISO 8601 stamp) or
 * to syslog (facility mail). Safe from any thread. Never log secrets.
 */
#ifndef PSTD_LOG_H
#define PSTD_LOG_H

enum pstd_log_level {
    PSTD_LOG_ERR = 3,
    PSTD_LOG_WARNING = 4,
    PSTD_LOG_INFO = 6,
    PSTD_LOG_DEBUG = 7,
};

void pstd_log_init(int use_syslog, int debug);
void pstd_log(enum pstd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...)   pstd_log(PSTD_LOG_ERR, __VA_ARGS__)
#define log_warn(...)  pstd_log(PSTD_LOG_WARNING, __VA_ARGS__)
#define log_info(...)  pstd_log(PSTD_LOG_INFO, __VA_ARGS__)
#define log_debug(...) pstd_log(PSTD_LOG_DEBUG, __VA_ARGS__)

#endif
