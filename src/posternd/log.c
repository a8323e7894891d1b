/* log.c - one line per event to stderr or syslog. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int log_syslog;
static int log_debug_on;
static int log_stamp = 1;

void pstd_log_init(int use_syslog, int debug)
{
    if (use_syslog && !log_syslog)
        openlog("posternd", LOG_PID | LOG_NDELAY, LOG_MAIL);
    log_syslog = use_syslog;
    log_debug_on = debug;
    /* under systemd, journald stamps each line itself */
    log_stamp = getenv("JOURNAL_STREAM") == NULL;
}

void pstd_log(enum pstd_log_level level, const char *fmt, ...)
{
    if (level == PSTD_LOG_DEBUG && !log_debug_on)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* one event, one line: never let text from the network break it */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (log_syslog) {
        syslog((int)level, "%s", msg);
        return;
    }
    static const char *names[8] = {"", "", "", "error", "warning", "", "info", "debug"};
    char line[2200];
    int n;
    if (log_stamp) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ posternd[%d]: %s: %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), (int)getpid(), names[level], msg);
    } else {
        n = snprintf(line, sizeof(line), "<%d>%s: %s\n", (int)level, names[level], msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    /* one write per line, so lines from threads never interleave */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
