/*
 * cmd_queue.c - `postern queue list` and `postern queue show ID`: read-only
 * views of the spool through the public queue API (queue.h). The spool is
 * opened read-only, so the tool never creates, recovers or changes
 * anything, and runs safely beside a live posternd: a message that leaves
 * the queue between the scan and the read is skipped.
 *
 * Envelope texts and message headers come from the network: control
 * characters are printed as \xNN so they cannot drive the terminal.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "queue.h"

#define DEFAULT_SPOOL "./var/spool"
/* header bytes shown by `show` before it cuts the output */
#define MAX_HEADER_BYTES (1024 * 1024)

struct queue_args {
    const char *spool;
    const char *pos[2]; /* positional arguments */
    int npos;
};

struct queue_sub {
    const char *name;
    int nargs; /* positional arguments wanted */
    int (*run)(const struct queue_args *a);
};

static int queue_list(const struct queue_args *a);
static int queue_show(const struct queue_args *a);

static const struct queue_sub subs[] = {
    {"list", 0, queue_list},
    {"show", 1, queue_show},
};

void cmd_queue_usage(FILE *f)
{
    fprintf(f, "  postern queue list [--spool DIR]\n"
               "      one line per queued message: ID ARRIVAL(UTC) SIZE <SENDER>\n"
               "      PENDING/TOTAL-RECIPIENTS ATTEMPTS\n"
               "  postern queue show ID [--spool DIR]\n"
               "      the envelope, each recipient with its state and last reply, and\n"
               "      the message's header\n"
               "      (-s DIR is --spool DIR; the default spool is " DEFAULT_SPOOL ")\n");
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

static size_t pending_count(const struct pst_envelope *env)
{
    size_t n = 0;
    for (size_t i = 0; i < env->nrcpts; i++)
        n += env->rcpts[i].state == PST_RCPT_PENDING;
    return n;
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

/* ---- list ---- */

struct list_ctx {
    struct pst_queue *q;
    int failed;
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
    printf("%s ", env->id);
    put_time(env->arrival);
    printf(" %" PRIu64 " <", size);
    put_str(env->sender);
    printf("> %zu/%zu %u\n", pending_count(env), env->nrcpts, env->attempts);
    pst_envelope_free(env);
    return 0;
}

static int queue_list(const struct queue_args *a)
{
    struct pst_queue *q;
    int rc = open_spool(a->spool, &q);
    if (rc != CLI_OK)
        return rc;
    struct list_ctx c = {.q = q};
    rc = pst_queue_scan(q, list_one, &c);
    pst_queue_close(q);
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

static int queue_show(const struct queue_args *a)
{
    char id[PST_QUEUE_ID_LEN + 1];
    struct pst_queue *q = NULL;
    struct pst_envelope *env = NULL;
    int fd = -1;
    int ret;

    if (parse_id(a->pos[0], id) != 0) {
        fprintf(stderr, "postern: queue show: '");
        for (const char *p = a->pos[0]; *p != '\0'; p++)
            fputc(isprint((unsigned char)*p) ? *p : '?', stderr);
        fprintf(stderr, "' is not a queue id (%d hex digits)\n", PST_QUEUE_ID_LEN);
        return CLI_ERROR;
    }
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
    printf("attempts:     %u\nnext attempt: ", env->attempts);
    if (env->next_attempt == 0)
        printf("now");
    else
        put_time(env->next_attempt);
    printf("\nrecipients:   %zu pending of %zu\n", pending_count(env), env->nrcpts);
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct pst_envelope_rcpt *r = &env->rcpts[i];
        printf("  <");
        put_str(r->addr);
        printf("> %s", state_name(r->state));
        if (r->user != NULL) {
            printf(" user ");
            put_str(r->user);
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
        if (a.npos != subs[i].nargs) {
            fprintf(stderr, "postern: queue %s: %s\nusage:\n", name,
                    a.npos < subs[i].nargs ? "missing argument" : "too many arguments");
            cmd_queue_usage(stderr);
            return CLI_ERROR;
        }
        return subs[i].run(&a);
    }
    fprintf(stderr, "postern: queue: unknown subcommand '%s'\nusage:\n", name);
    cmd_queue_usage(stderr);
    return CLI_ERROR;
}
