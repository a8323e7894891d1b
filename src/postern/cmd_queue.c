/*
 * cmd_queue.c - `postern queue list|show|flush|delete|hold|release`: the
 * spool seen and managed through the public queue API (queue.h).
 *
 * list and show open the spool read-only: they never create, recover or
 * change anything, and run safely beside a live posternd; a message that
 * leaves the queue between the scan and the read is skipped.
 *
 * flush, delete, hold and release open it with pst_queue_open_admin (no
 * spool lock: the daemon holds that) and change one message at a time
 * under the message's own lock (pst_queue_lock_msg), the flock a delivery
 * attempt holds from loading the envelope to writing it back, so an
 * attempt and the tool never overwrite each other's envelope. The lock is
 * waited for LOCK_WAIT_MS at most: a message in a long attempt is
 * reported busy (exit 75) rather than hanging the tool.
 *
 * The daemon reads next_attempt and hold from the envelope at each
 * attempt, but only learns that a message is due again when it scans the
 * queue directory: flush and release send it SIGUSR1 (pid from
 * SPOOL/posternd.pid; a pid whose /proc/PID/comm is not posternd is not
 * signalled, so a stale file never hits an unrelated process).
 *
 * Envelope texts and message headers come from the network: control
 * characters are printed as \xNN so they cannot drive the terminal.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dsn.h"
#include "err.h"
#include "queue.h"

#define DEFAULT_SPOOL "./var/spool"
/* header bytes shown by `show` before it cuts the output */
#define MAX_HEADER_BYTES (1024 * 1024)
/* how long a change waits for a delivery attempt to let go of a message */
#define LOCK_WAIT_MS 5000
/* the same for each message of `flush` without an id: one still locked
 * after this is in an attempt already */
#define FLUSH_ALL_WAIT_MS 200

struct queue_args {
    const char *spool;
    const char *pos[2]; /* positional arguments */
    int npos;
    int json; /* --json (list and show) */
};

struct queue_sub {
    const char *name;
    int min_args, max_args; /* positional arguments wanted */
    int json;               /* takes --json */
    int (*run)(const struct queue_args *a);
};

static int queue_list(const struct queue_args *a);
static int queue_show(const struct queue_args *a);
static int queue_flush(const struct queue_args *a);
static int queue_delete(const struct queue_args *a);
static int queue_hold(const struct queue_args *a);
static int queue_release(const struct queue_args *a);

static const struct queue_sub subs[] = {
    {"list", 0, 0, 1, queue_list},   {"show", 1, 1, 1, queue_show},
    {"flush", 0, 1, 0, queue_flush}, {"delete", 1, 1, 0, queue_delete},
    {"hold", 1, 1, 0, queue_hold},   {"release", 1, 1, 0, queue_release},
};

void cmd_queue_usage(FILE *f)
{
    fprintf(f, "  postern queue list [--json] [--spool DIR]\n"
               "      one line per queued message: ID ARRIVAL(UTC) SIZE <SENDER>\n"
               "      rcpts=N pending=N delivered=N failed=N attempts=N\n"
               "      next=TIME|now, and \"held\" when on hold\n"
               "  postern queue show ID [--json] [--spool DIR]\n"
               "      the envelope (hold, DSN and submission fields), each recipient\n"
               "      with its state, NOTIFY/ORCPT and last reply, and the message's\n"
               "      header\n"
               "      (--json: list gives an array of objects, show one object with\n"
               "      the envelope; times are seconds since the epoch, 0 = now)\n"
               "  postern queue flush [ID] [--spool DIR]\n"
               "      makes one message, or every message not on hold, due now and\n"
               "      tells posternd (SIGUSR1) to try it at once\n"
               "  postern queue hold ID [--spool DIR]\n"
               "      keeps the message in the queue, not delivered, until released\n"
               "  postern queue release ID [--spool DIR]\n"
               "      ends a hold; the message is tried at once\n"
               "  postern queue delete ID [--spool DIR]\n"
               "      removes the message from the queue: it is NOT delivered and NO\n"
               "      bounce goes to the sender\n"
               "      (-s DIR is --spool DIR; the default spool is " DEFAULT_SPOOL ";\n"
               "      exit 1: no such message, 2: usage or I/O error, 75: the message\n"
               "      is being delivered right now, try again)\n");
}

/* ---- output helpers ---- */

/* Writes n bytes, control characters (but TAB) as \xNN. */
static void put_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static void put_str(const char *s)
{
    put_safe(s, strlen(s));
}

/* UTC ISO 8601 ("2024-05-01T12:00:00Z"); the bare number when the time
 * cannot be shown. */
static void put_time(int64_t t)
{
    char s[64];
    struct tm tm;
    time_t tt = (time_t)t;
    if ((int64_t)tt == t && gmtime_r(&tt, &tm) != NULL &&
        strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        fputs(s, stdout);
    else
        printf("%" PRId64, t);
}

static const char *state_name(enum pst_rcpt_state s)
{
    switch (s) {
    case PST_RCPT_PENDING:
        return "pending";
    case PST_RCPT_DELIVERED:
        return "delivered";
    case PST_RCPT_FAILED:
        return "failed";
    }
    return "?";
}

/* Recipients of the envelope in state s. */
static size_t state_count(const struct pst_envelope *env, enum pst_rcpt_state s)
{
    size_t n = 0;
    for (size_t i = 0; i < env->nrcpts; i++)
        n += env->rcpts[i].state == s;
    return n;
}

static size_t pending_count(const struct pst_envelope *env)
{
    return state_count(env, PST_RCPT_PENDING);
}

static void put_next(int64_t next)
{
    if (next == 0)
        fputs("now", stdout);
    else
        put_time(next);
}

/* RFC 3461 4.1 NOTIFY keywords, comma-separated, or (json) as a JSON
 * array ([] when none was given). */
static void put_notify(unsigned notify, int json)
{
    static const struct {
        unsigned bit;
        const char *name;
    } kw[] = {{PST_DSN_NOTIFY_NEVER, "NEVER"},
              {PST_DSN_NOTIFY_SUCCESS, "SUCCESS"},
              {PST_DSN_NOTIFY_FAILURE, "FAILURE"},
              {PST_DSN_NOTIFY_DELAY, "DELAY"}};
    const char *q = json ? "\"" : "";
    const char *sep = "";
    if (json)
        putchar('[');
    for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++) {
        if (notify & kw[i].bit) {
            printf("%s%s%s%s", sep, q, kw[i].name, q);
            sep = ",";
        }
    }
    if (json)
        putchar(']');
}

/* Reason text of a library error (errno for I/O errors). */
static const char *why(int rc, int err)
{
    return rc == PST_ERR_IO ? strerror(err) : pst_strerror(rc);
}

static int open_spool(const char *spool, struct pst_queue **q)
{
    int rc = pst_queue_open_readonly(spool, q);
    if (rc == 0)
        return CLI_OK;
    if (rc == PST_ERR_NOTFOUND)
        fprintf(stderr, "postern: queue: %s: no spool there (needs %s/incoming and %s/queue)\n",
                spool, spool, spool);
    else
        fprintf(stderr, "postern: queue: cannot open spool %s: %s\n", spool, why(rc, errno));
    return CLI_ERROR;
}

/* Size of the committed message; PST_ERR_NOTFOUND when it is gone. */
static int msg_size(struct pst_queue *q, const char *id, uint64_t *size)
{
    int fd;
    struct stat st;
    int rc = pst_queue_open_msg(q, id, &fd);
    if (rc != 0)
        return rc;
    rc = fstat(fd, &st) == 0 ? 0 : PST_ERR_IO;
    int err = errno;
    close(fd); /* read-only */
    errno = err;
    if (rc == 0)
        *size = (uint64_t)st.st_size;
    return rc;
}

/* ---- JSON output (--json) ---- */

/* A JSON string (RFC 8259 7). Envelope texts are UTF-8 (the envelope
 * decoder refuses anything else), so bytes >= 0x80 pass as they are. */
static void put_json_str(const char *s)
{
    if (s == NULL) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static const char *json_bool(int b)
{
    return b ? "true" : "false";
}

/* The fields list and show share. */
static void put_json_summary(const struct pst_envelope *env, uint64_t size)
{
    printf("{\"id\":\"%s\",\"arrival\":%" PRId64 ",\"size\":%" PRIu64 ",\"sender\":", env->id,
           env->arrival, size);
    put_json_str(env->sender);
    printf(",\"rcpts\":%zu,\"pending\":%zu,\"delivered\":%zu,\"failed\":%zu,\"attempts\":%u,"
           "\"next_attempt\":%" PRId64 ",\"hold\":%s",
           env->nrcpts, pending_count(env), state_count(env, PST_RCPT_DELIVERED),
           state_count(env, PST_RCPT_FAILED), env->attempts, env->next_attempt,
           json_bool(env->hold));
}

/* show --json: the summary and the whole envelope, one object. */
static void put_json_envelope(const struct pst_envelope *env, uint64_t size)
{
    static const char *const rets[] = {NULL, "full", "hdrs"};
    put_json_summary(env, size);
    printf(",\"client_addr\":");
    put_json_str(env->client_addr);
    printf(",\"helo\":");
    put_json_str(env->helo);
    printf(",\"tls\":%s,\"smtputf8\":%s,\"body_8bit\":%s,\"auth_user\":", json_bool(env->tls),
           json_bool(env->smtputf8), json_bool(env->body_8bit));
    put_json_str(env->auth_user);
    printf(",\"quarantine\":%s,\"ret\":", json_bool(env->quarantine));
    put_json_str(env->ret >= 0 && env->ret <= 2 ? rets[env->ret] : NULL);
    printf(",\"envid\":");
    put_json_str(env->envid);
    printf(",\"warned\":%s,\"recipients\":[", json_bool(env->warned));
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct pst_envelope_rcpt *r = &env->rcpts[i];
        printf("%s{\"addr\":", i ? "," : "");
        put_json_str(r->addr);
        printf(",\"user\":");
        put_json_str(r->user);
        printf(",\"state\":\"%s\",\"last_reply\":", state_name(r->state));
        put_json_str(r->last_reply);
        printf(",\"notify\":");
        put_notify(r->notify, 1);
        printf(",\"orcpt\":");
        put_json_str(r->orcpt);
        putchar('}');
    }
    printf("]}\n");
}

/* ---- list ---- */

struct list_ctx {
    struct pst_queue *q;
    int failed;
    int json;
    size_t n; /* messages listed */
};

static int list_one(const char *id, void *arg)
{
    struct list_ctx *c = arg;
    struct pst_envelope *env = NULL;
    uint64_t size = 0;

    int rc = pst_queue_load(c->q, id, &env);
    if (rc == 0)
        rc = msg_size(c->q, id, &size);
    if (rc == PST_ERR_NOTFOUND) {
        /* delivered (or removed) since the scan listed it */
        pst_envelope_free(env);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "postern: queue list: %s: %s\n", id, why(rc, errno));
        c->failed = 1;
        pst_envelope_free(env);
        return 0;
    }
    if (c->json) {
        fputs(c->n ? ",\n" : "\n", stdout);
        put_json_summary(env, size);
        putchar('}');
        c->n++;
        pst_envelope_free(env);
        return 0;
    }
    printf("%s ", env->id);
    put_time(env->arrival);
    printf(" %" PRIu64 " <", size);
    put_str(env->sender);
    printf("> rcpts=%zu pending=%zu delivered=%zu failed=%zu attempts=%u next=", env->nrcpts,
           pending_count(env), state_count(env, PST_RCPT_DELIVERED),
           state_count(env, PST_RCPT_FAILED), env->attempts);
    put_next(env->next_attempt);
    printf("%s\n", env->hold ? " held" : "");
    pst_envelope_free(env);
    return 0;
}

static int queue_list(const struct queue_args *a)
{
    struct pst_queue *q;
    int rc = open_spool(a->spool, &q);
    if (rc != CLI_OK)
        return rc;
    struct list_ctx c = {.q = q, .json = a->json};
    if (c.json)
        putchar('[');
    rc = pst_queue_scan(q, list_one, &c);
    pst_queue_close(q);
    if (c.json)
        printf("%s]\n", c.n ? "\n" : "");
    if (rc != 0) {
        fprintf(stderr, "postern: queue list: cannot read %s/queue: %s\n", a->spool,
                why(rc, errno));
        return CLI_ERROR;
    }
    return c.failed ? CLI_ERROR : CLI_OK;
}

/* ---- show ---- */

/* Prints a possibly multi-line text, continuation lines indented. */
static void put_multiline(const char *s, const char *indent)
{
    const char *p = s;
    for (;;) {
        size_t n = strcspn(p, "\r\n");
        put_safe(p, n);
        p += n;
        if (*p == '\0')
            break;
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
        if (*p == '\0')
            break;
        printf("\n%s", indent);
    }
}

/* Prints the header section of the message (up to the first empty line),
 * CRLF shown as a line end, streamed in fixed chunks. */
static int put_headers(int fd)
{
    char chunk[8192];
    size_t line_len = 0, total = 0;
    int cr = 0;

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return PST_ERR_IO;
        }
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            char c = chunk[i];
            if (c == '\n') {
                if (line_len == 0)
                    return 0; /* the empty line ends the header */
                putchar('\n');
                line_len = 0;
                cr = 0;
                continue;
            }
            if (cr) {
                put_safe("\r", 1); /* a CR alone */
                line_len++;
                cr = 0;
            }
            if (c == '\r') {
                cr = 1;
                continue;
            }
            if (++total > MAX_HEADER_BYTES) {
                printf("\n[header cut at %d bytes]\n", MAX_HEADER_BYTES);
                return 0;
            }
            put_safe(&c, 1);
            line_len++;
        }
    }
    if (cr)
        put_safe("\r", 1);
    if (line_len > 0 || cr)
        putchar('\n');
    return 0;
}

/* The id as typed, upper-cased (ids are hex; lower case is accepted). */
static int parse_id(const char *arg, char id[PST_QUEUE_ID_LEN + 1])
{
    size_t n = strnlen(arg, PST_QUEUE_ID_LEN + 1);
    if (n != PST_QUEUE_ID_LEN)
        return PST_ERR_SYNTAX;
    for (size_t i = 0; i < n; i++)
        id[i] = (char)toupper((unsigned char)arg[i]);
    id[n] = '\0';
    return pst_queue_id_check(id);
}

/* parse_id for subcommand sub; CLI_ERROR after saying why. */
static int get_id(const char *sub, const char *arg, char id[PST_QUEUE_ID_LEN + 1])
{
    if (parse_id(arg, id) == 0)
        return CLI_OK;
    fprintf(stderr, "postern: queue %s: '", sub);
    size_t n = 0;
    for (const char *p = arg; *p != '\0' && n < 64; p++, n++)
        fputc(isprint((unsigned char)*p) ? *p : '?', stderr);
    fprintf(stderr, "%s' is not a queue id (%d hex digits)\n", arg[n] != '\0' ? "..." : "",
            PST_QUEUE_ID_LEN);
    return CLI_ERROR;
}

static int queue_show(const struct queue_args *a)
{
    char id[PST_QUEUE_ID_LEN + 1];
    struct pst_queue *q = NULL;
    struct pst_envelope *env = NULL;
    int fd = -1;
    int ret;

    if (get_id("show", a->pos[0], id) != CLI_OK)
        return CLI_ERROR;
    if ((ret = open_spool(a->spool, &q)) != CLI_OK)
        return ret;
    int rc = pst_queue_load(q, id, &env);
    uint64_t size = 0;
    if (rc == 0)
        rc = pst_queue_open_msg(q, id, &fd);
    struct stat st;
    if (rc == 0) {
        if (fstat(fd, &st) == 0)
            size = (uint64_t)st.st_size;
        else
            rc = PST_ERR_IO;
    }
    if (rc == PST_ERR_NOTFOUND) {
        fprintf(stderr, "postern: queue show: %s: not in the queue at %s\n", id, a->spool);
        ret = CLI_NOTFOUND;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "postern: queue show: %s: %s\n", id, why(rc, errno));
        ret = CLI_ERROR;
        goto out;
    }

    if (a->json) {
        put_json_envelope(env, size);
        ret = CLI_OK;
        goto out;
    }
    printf("id:           %s\narrival:      ", env->id);
    put_time(env->arrival);
    printf("\nsize:         %" PRIu64 " bytes\nsender:       <", size);
    put_str(env->sender);
    printf(">\nclient:       ");
    put_str(env->client_addr != NULL ? env->client_addr : "(local)");
    if (env->helo != NULL) {
        printf(" helo ");
        put_str(env->helo);
    }
    printf("\ntls:          %s\nsmtputf8:     %s\n8bit body:    %s\n", env->tls ? "yes" : "no",
           env->smtputf8 ? "yes" : "no", env->body_8bit ? "yes" : "no");
    printf("auth user:    ");
    put_str(env->auth_user != NULL ? env->auth_user : "(none)");
    printf("\nquarantine:   %s\n", env->quarantine ? "yes (local delivery into Junk)" : "no");
    printf("held:         %s\n", env->hold ? "yes (postern queue release ID ends it)" : "no");
    printf("attempts:     %u\nnext attempt: ", env->attempts);
    put_next(env->next_attempt);
    if (env->hold)
        printf(" (on hold: not tried)");
    static const char *const rets[] = {"(not given)", "full", "hdrs"};
    printf("\ndsn ret:      %s\ndsn envid:    ",
           env->ret >= 0 && env->ret <= 2 ? rets[env->ret] : "?");
    put_str(env->envid != NULL ? env->envid : "(none)");
    printf("\ndelay notice: %s\n", env->warned ? "sent" : "not sent");
    printf("recipients:   %zu: %zu pending, %zu delivered, %zu failed\n", env->nrcpts,
           pending_count(env), state_count(env, PST_RCPT_DELIVERED),
           state_count(env, PST_RCPT_FAILED));
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct pst_envelope_rcpt *r = &env->rcpts[i];
        printf("  <");
        put_str(r->addr);
        printf("> %s", state_name(r->state));
        if (r->user != NULL) {
            printf(" user ");
            put_str(r->user);
        }
        if (r->notify != 0) {
            printf(" notify=");
            put_notify(r->notify, 0);
        }
        if (r->orcpt != NULL) {
            printf(" orcpt=");
            put_str(r->orcpt);
        }
        printf("\n");
        if (r->last_reply != NULL) {
            printf("    last reply: ");
            put_multiline(r->last_reply, "                ");
            printf("\n");
        }
    }
    printf("\nheader:\n");
    if ((rc = put_headers(fd)) != 0) {
        fprintf(stderr, "postern: queue show: %s: reading the message: %s\n", id, strerror(errno));
        ret = CLI_ERROR;
        goto out;
    }
    ret = CLI_OK;
out:
    if (fd >= 0)
        close(fd);
    pst_envelope_free(env);
    pst_queue_close(q);
    return ret;
}

/* ---- changes: flush, delete, hold, release ---- */

static int open_admin(const char *spool, struct pst_queue **q)
{
    int rc = pst_queue_open_admin(spool, q);
    if (rc == 0)
        return CLI_OK;
    if (rc == PST_ERR_NOTFOUND)
        fprintf(stderr, "postern: queue: %s: no spool there (needs %s/incoming and %s/queue)\n",
                spool, spool, spool);
    else
        fprintf(stderr, "postern: queue: cannot open spool %s: %s\n", spool, why(rc, errno));
    return CLI_ERROR;
}

/* What a change does to a locked, loaded envelope. */
enum change_result {
    CHANGE_WRITE,   /* write the envelope back */
    CHANGE_REMOVE,  /* remove the message */
    CHANGE_NOTHING, /* leave it as it is */
};

/* One message changed under its lock: lock (waiting wait_ms at most),
 * load, fn decides, write back or remove, unlock. fn NULL removes the
 * message without loading it, so a message whose envelope no longer
 * decodes can still be deleted. Returns 0 or a PST_ERR_* (PST_ERR_NOTFOUND:
 * not queued, PST_ERR_AGAIN: still locked by a delivery attempt);
 * *result gets the verdict. */
static int change_one(struct pst_queue *q, const char *id, unsigned wait_ms,
                      enum change_result (*fn)(struct pst_envelope *env, void *arg), void *arg,
                      enum change_result *result)
{
    int fd = -1;
    struct pst_envelope *env = NULL;
    int rc = pst_queue_lock_msg(q, id, wait_ms, &fd);
    if (rc != 0)
        return rc;
    if (fn == NULL)
        *result = CHANGE_REMOVE;
    else if ((rc = pst_queue_load(q, id, &env)) != 0)
        goto out;
    else
        *result = fn(env, arg);
    if (*result == CHANGE_WRITE)
        rc = pst_queue_update(q, env);
    else if (*result == CHANGE_REMOVE)
        rc = pst_queue_remove(q, id);
out:;
    int err = errno;
    pst_envelope_free(env);
    pst_queue_unlock_msg(fd);
    errno = err;
    return rc;
}

/* The message of a failed change_one; CLI_NOTFOUND, CLI_TEMPFAIL or
 * CLI_ERROR. */
static int change_failed(const char *sub, const struct queue_args *a, const char *id, int rc,
                         int err)
{
    if (rc == PST_ERR_NOTFOUND) {
        fprintf(stderr, "postern: queue %s: %s: not in the queue at %s\n", sub, id, a->spool);
        return CLI_NOTFOUND;
    }
    if (rc == PST_ERR_AGAIN) {
        fprintf(stderr,
                "postern: queue %s: %s: being delivered right now (still locked after %d s); "
                "try again\n",
                sub, id, LOCK_WAIT_MS / 1000);
        return CLI_TEMPFAIL;
    }
    fprintf(stderr, "postern: queue %s: %s: %s\n", sub, id, why(rc, err));
    return CLI_ERROR;
}

enum daemon_signal {
    SIGNAL_SENT,
    SIGNAL_NOT_RUNNING,
    SIGNAL_FAILED,
};

/* Reads at most cap - 1 bytes of dir/name into buf (NUL-terminated);
 * the number read, or -1 with errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n;
    do
        n = read(fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    errno = err;
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* SIGUSR1 to the posternd of this spool: it scans the queue directory
 * and tries every message that is due (delivery.c). *pid gets the pid
 * read, 0 when none. */
static enum daemon_signal signal_daemon(const char *spool, long *pid)
{
    char path[PATH_MAX], text[32];
    *pid = 0;
    int w = snprintf(path, sizeof(path), "%s/posternd.pid", spool);
    if (w < 0 || (size_t)w >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return SIGNAL_FAILED;
    }
    if (read_small(path, text, sizeof(text)) < 0)
        return errno == ENOENT ? SIGNAL_NOT_RUNNING : SIGNAL_FAILED;
    /* "PID\n", as main.c of posternd writes it */
    long v = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > INT_MAX)
            break;
    }
    if (p == text || v <= 1 || v > INT_MAX || (*p != '\0' && strcmp(p, "\n") != 0)) {
        errno = EINVAL;
        return SIGNAL_FAILED;
    }
    *pid = v;
    /* a stale pid file may name a process that is not ours: its comm is
     * not posternd (checked where /proc is there to ask) */
    char comm[32];
    if (access("/proc/self/comm", R_OK) == 0) {
        snprintf(path, sizeof(path), "/proc/%ld/comm", v);
        if (read_small(path, comm, sizeof(comm)) < 0)
            return errno == ENOENT ? SIGNAL_NOT_RUNNING : SIGNAL_FAILED;
        if (strcmp(comm, "posternd\n") != 0)
            return SIGNAL_NOT_RUNNING;
    }
    if (kill((pid_t)v, SIGUSR1) != 0)
        return errno == ESRCH ? SIGNAL_NOT_RUNNING : SIGNAL_FAILED;
    return SIGNAL_SENT;
}

/* Tells the daemon and says what happened; what names the message(s). */
static void wake_daemon(const char *sub, const char *spool, const char *what)
{
    long pid;
    switch (signal_daemon(spool, &pid)) {
    case SIGNAL_SENT:
        printf("posternd (pid %ld) told to try %s now\n", pid, what);
        break;
    case SIGNAL_NOT_RUNNING:
        printf("posternd not running: %s delivered at its next start\n",
               strcmp(what, "it") == 0 ? "the message is" : "the messages are");
        break;
    case SIGNAL_FAILED: {
        /* the envelope change stands: the daemon's own scan (every ten
         * minutes) finds it */
        int err = errno;
        char who[64] = "";
        if (pid != 0)
            snprintf(who, sizeof(who), ", pid %ld", pid);
        fprintf(stderr,
                "postern: queue %s: cannot signal posternd (%s/posternd.pid%s): %s; "
                "it tries %s at its next queue scan, within ten minutes\n",
                sub, spool, who, strerror(err), what);
        break;
    }
    }
}

static enum change_result do_hold(struct pst_envelope *env, void *arg)
{
    (void)arg;
    if (env->hold)
        return CHANGE_NOTHING;
    env->hold = 1;
    return CHANGE_WRITE;
}

static enum change_result do_release(struct pst_envelope *env, void *arg)
{
    (void)arg;
    if (!env->hold)
        return CHANGE_NOTHING;
    env->hold = 0;
    env->next_attempt = 0;
    return CHANGE_WRITE;
}

/* flush: due now, unless on hold (*held counts those). */
static enum change_result do_flush(struct pst_envelope *env, void *arg)
{
    int *held = arg;
    if (env->hold) {
        (*held)++;
        return CHANGE_NOTHING;
    }
    if (env->next_attempt == 0)
        return CHANGE_NOTHING;
    env->next_attempt = 0;
    return CHANGE_WRITE;
}

/* hold, release and delete (fn NULL): one message by id. */
static int change_by_id(const char *sub, const struct queue_args *a,
                        enum change_result (*fn)(struct pst_envelope *, void *),
                        char id[PST_QUEUE_ID_LEN + 1], enum change_result *result)
{
    struct pst_queue *q;
    int ret;
    if (get_id(sub, a->pos[0], id) != CLI_OK)
        return CLI_ERROR;
    if ((ret = open_admin(a->spool, &q)) != CLI_OK)
        return ret;
    int rc = change_one(q, id, LOCK_WAIT_MS, fn, NULL, result);
    int err = errno;
    pst_queue_close(q);
    if (rc != 0)
        return change_failed(sub, a, id, rc, err);
    return CLI_OK;
}

static int queue_hold(const struct queue_args *a)
{
    char id[PST_QUEUE_ID_LEN + 1];
    enum change_result r;
    int ret = change_by_id("hold", a, do_hold, id, &r);
    if (ret == CLI_OK)
        printf("%s: %s\n", id, r == CHANGE_WRITE ? "on hold" : "already on hold");
    return ret;
}

static int queue_release(const struct queue_args *a)
{
    char id[PST_QUEUE_ID_LEN + 1];
    enum change_result r;
    int ret = change_by_id("release", a, do_release, id, &r);
    if (ret != CLI_OK)
        return ret;
    if (r != CHANGE_WRITE) {
        printf("%s: not on hold; nothing to release\n", id);
        return CLI_OK;
    }
    printf("%s: released\n", id);
    wake_daemon("release", a->spool, "it");
    return CLI_OK;
}

static int queue_delete(const struct queue_args *a)
{
    char id[PST_QUEUE_ID_LEN + 1];
    enum change_result r;
    int ret = change_by_id("delete", a, NULL, id, &r);
    if (ret == CLI_OK)
        printf("%s: deleted (not delivered, no bounce sent)\n", id);
    return ret;
}

struct flush_ctx {
    struct pst_queue *q;
    const struct queue_args *a;
    size_t due, busy;
    int held, failed;
};

static int flush_cb(const char *id, void *arg)
{
    struct flush_ctx *c = arg;
    enum change_result r;
    int held = c->held;
    int rc = change_one(c->q, id, FLUSH_ALL_WAIT_MS, do_flush, &c->held, &r);
    if (rc == 0)
        c->due += c->held == held; /* held ones are left alone */
    else if (rc == PST_ERR_AGAIN)
        c->busy++;                     /* being tried right now anyway */
    else if (rc != PST_ERR_NOTFOUND) { /* NOTFOUND: delivered since the scan */
        change_failed("flush", c->a, id, rc, errno);
        c->failed = 1;
    }
    return 0;
}

static int queue_flush(const struct queue_args *a)
{
    struct pst_queue *q;
    int ret;
    char id[PST_QUEUE_ID_LEN + 1];

    if (a->npos == 1 && get_id("flush", a->pos[0], id) != CLI_OK)
        return CLI_ERROR;
    if ((ret = open_admin(a->spool, &q)) != CLI_OK)
        return ret;
    if (a->npos == 1) {
        int held = 0;
        enum change_result r;
        int rc = change_one(q, id, LOCK_WAIT_MS, do_flush, &held, &r);
        int err = errno;
        pst_queue_close(q);
        if (rc == PST_ERR_AGAIN) {
            printf("%s: being delivered right now\n", id);
            return CLI_OK;
        }
        if (rc != 0)
            return change_failed("flush", a, id, rc, err);
        if (held) {
            fprintf(stderr,
                    "postern: queue flush: %s is on hold: not flushed "
                    "(postern queue release %s delivers it)\n",
                    id, id);
            return CLI_OK;
        }
        printf("%s: due now\n", id);
        wake_daemon("flush", a->spool, "it");
        return CLI_OK;
    }
    struct flush_ctx c = {.q = q, .a = a};
    int rc = pst_queue_scan(q, flush_cb, &c);
    int err = errno;
    pst_queue_close(q);
    if (rc != 0) {
        fprintf(stderr, "postern: queue flush: cannot read %s/queue: %s\n", a->spool, why(rc, err));
        return CLI_ERROR;
    }
    printf("%zu message%s due now", c.due + c.busy, c.due + c.busy == 1 ? "" : "s");
    if (c.busy > 0)
        printf(" (%zu being delivered already)", c.busy);
    if (c.held > 0)
        printf("; %d on hold, left alone", c.held);
    printf("\n");
    if (c.due + c.busy > 0)
        wake_daemon("flush", a->spool, "the queue");
    return c.failed ? CLI_ERROR : CLI_OK;
}

/* ---- dispatch ---- */

/* Options may come before or after the positional arguments. */
static int parse_args(int argc, char **argv, const char *sub, struct queue_args *a)
{
    int opts = 1;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (opts && strcmp(s, "--") == 0) {
            opts = 0;
        } else if (opts && (strcmp(s, "--spool") == 0 || strcmp(s, "-s") == 0)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "postern: queue %s: %s needs a directory\n", sub, s);
                return CLI_ERROR;
            }
            a->spool = argv[++i];
        } else if (opts && strncmp(s, "--spool=", 8) == 0) {
            a->spool = s + 8;
        } else if (opts && strcmp(s, "--json") == 0) {
            a->json = 1;
        } else if (opts && s[0] == '-' && s[1] != '\0') {
            fprintf(stderr, "postern: queue %s: unknown option '%s'\n", sub, s);
            return CLI_ERROR;
        } else if (a->npos < 2) {
            a->pos[a->npos++] = s;
        } else {
            fprintf(stderr, "postern: queue %s: too many arguments\n", sub);
            return CLI_ERROR;
        }
    }
    if (a->spool[0] == '\0') {
        fprintf(stderr, "postern: queue %s: empty spool directory\n", sub);
        return CLI_ERROR;
    }
    return CLI_OK;
}

int cmd_queue(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "postern: queue: missing subcommand\nusage:\n");
        cmd_queue_usage(stderr);
        return CLI_ERROR;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        printf("usage:\n");
        cmd_queue_usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(subs[i].name, name) != 0)
            continue;
        struct queue_args a = {.spool = DEFAULT_SPOOL};
        if (parse_args(argc - 2, argv + 2, name, &a) != CLI_OK)
            return CLI_ERROR;
        if (a.json && !subs[i].json) {
            fprintf(stderr, "postern: queue %s: --json is for list and show\n", name);
            return CLI_ERROR;
        }
        if (a.npos < subs[i].min_args || a.npos > subs[i].max_args) {
            fprintf(stderr, "postern: queue %s: %s\nusage:\n", name,
                    a.npos < subs[i].min_args ? "missing argument" : "too many arguments");
            cmd_queue_usage(stderr);
            return CLI_ERROR;
        }
        return subs[i].run(&a);
    }
    fprintf(stderr, "postern: queue: unknown subcommand '%s'\nusage:\n", name);
    cmd_queue_usage(stderr);
    return CLI_ERROR;
}
