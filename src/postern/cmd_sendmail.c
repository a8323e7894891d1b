/*
 * cmd_sendmail.c - `postern sendmail`, the sendmail-compatible entry point
 * that cron, scripts and web applications call as /usr/sbin/sendmail (the
 * program acts as this command when it is run under the name "sendmail",
 * and as `postern queue list` under the name "mailq").
 *
 * It is an SMTP client of posternd's local submission listener, a unix
 * socket whose sessions the daemon authenticates by the peer's uid
 * (SO_PEERCRED): the socket is $POSTERN_SOCKET, else DEFAULT_SOCKET. The
 * message goes through the one SMTP client of the project
 * (lib/io/smtp_client.h) from an unlinked temporary file; the daemon adds
 * Date, Message-ID and DKIM signatures.
 *
 * Options follow Sendmail and Postfix: getopt-style clusters ("-ti",
 * "-fADDR" or "-f ADDR"), options before the first recipient, "--" ends
 * them. Recipients on the command line are RFC 5322 address lists
 * ("Bob <bob@example.org>, carol@example.org").
 *
 * What is done to the message (documented deviations and choices):
 *  - Without -i / -oi a line holding only "." ends the input (what
 *    Sendmail does); reading stops there, the rest of stdin is not read.
 *  - LF and CRLF line ends both become CRLF; a bare CR becomes CRLF in the
 *    body (as the SMTP client would send it) and a space in the header.
 *  - A first line "From " (an mbox envelope line) is dropped.
 *  - The header section is the run of header fields at the start; a line
 *    that is neither a field nor a folded continuation ends it, and an
 *    empty line is put before it (RFC 5322 2.1). Input without any field
 *    is all body.
 *  - A message without From gets "From: NAME <SENDER>": SENDER is the
 *    envelope sender (the invoking user's address for the null sender);
 *    NAME is -F, else, when no -f was given, $NAME or the user's GECOS
 *    name. The name is a quoted-string when it is not plain atoms.
 *  - Bcc fields are always removed (a blind copy must not show); with -t
 *    their addresses are recipients.
 *  - -t takes the recipients of To, Cc and Bcc (not Resent-*) and adds
 *    the command-line ones; duplicates (ASCII case-insensitive) are sent
 *    once.
 *  - An address without "@" is qualified with "@" and the host name
 *    (gethostname), as Postfix does with $myorigin: posternd must list the
 *    host name among its domains for such mail to stay local.
 *  - Every recipient is sent with ORCPT=rfc822;ADDR (RFC 3461 5.2.1 d).
 *
 * Exit status (sysexits.h): 0 the daemon accepted the message for every
 * recipient; EX_USAGE bad options or no recipient; EX_DATAERR a refused
 * message or sender, or -t found no recipient; EX_NOUSER a recipient
 * refused permanently (the others, if any, got the message: stderr names
 * each refusal); EX_UNAVAILABLE the daemon refused the session; EX_TEMPFAIL
 * the daemon is not reachable or answered 4xx; EX_IOERR (reading stdin),
 * EX_CANTCREAT (the temporary file), EX_OSERR (memory) and EX_NOUSER (a
 * uid without a user name) for local failures.
 *
 * Limits: the message is read into memory up to CLI_MAX_MESSAGE; at most
 * MAX_FIELDS header fields, PST_SMTPC_MAX_RCPTS recipients and MAX_ADDR
 * octets per address.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "dsn.h"
#include "err.h"
#include "pst_config.h"
#include "smtp_client.h"

#define DEFAULT_SOCKET PST_LOCALSTATEDIR "/submit.sock"
#define MAX_FIELDS     10000
#define MAX_ADDR       512   /* octets of one address (RFC 5321 4.5.3.1.3: 256) */
#define BS_DRAIN_MS    30000 /* -bs: how long to wait for the daemon after stdin ends */
#define OUT_CHUNK      65536

static const char *const PROG = "postern: sendmail";

void cmd_sendmail_usage(FILE *f)
{
    fprintf(f, "  postern sendmail [OPTIONS] [RECIPIENT...] < MESSAGE\n"
               "      (also run as `sendmail`, e.g. through a /usr/sbin/sendmail link)\n"
               "      submits the message to posternd's local listener at $POSTERN_SOCKET,\n"
               "      default " DEFAULT_SOCKET ";\n"
               "      posternd needs the matching listener\n"
               "      { mode = \"local\"; path = \"" DEFAULT_SOCKET "\"; }\n"
               "      (the message is not kept when posternd is down: exit 75)\n"
               "      -t           recipients also from To, Cc and Bcc (Bcc is removed)\n"
               "      -f ADDR, -r ADDR  envelope sender (\"<>\" or \"\": null sender;\n"
               "                   default USER@HOSTNAME)\n"
               "      -F NAME      full name for the From field added when there is none\n"
               "      -i, -oi      a line of a single \".\" does not end the message\n"
               "      -N never|success,failure,delay   DSN NOTIFY for every recipient\n"
               "      -R full|hdrs DSN RET;  -V ENVID  DSN envelope id\n"
               "      -B 7BIT|8BITMIME  body type\n"
               "      -bm          deliver the message (the default)\n"
               "      -bs          SMTP on stdin/stdout, relayed to the daemon\n"
               "      -bp [ARGS]   list the queue (postern queue list [ARGS])\n"
               "      ignored: -m -n -v -U -G -oe[mepqw] -om -oo -od[bidq] -o7 -o8\n"
               "               -oQDIR -oAFILE -h N -C FILE -L LABEL\n"
               "      exit: 0 accepted, 64 usage, 65 message or sender refused, 67 a\n"
               "      recipient refused, 69 session refused, 75 daemon down or 4xx\n"
               "  mailq [ARGS], sendmail -bp: postern queue list [ARGS]\n");
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", PROG);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- options -------------------------------------------------------------- */

enum sm_mode { MODE_DELIVER, MODE_SMTP, MODE_QUEUE };

struct sm_opts {
    enum sm_mode mode;
    int extract;           /* -t */
    int dots;              /* a lone "." ends the input (no -i) */
    const char *sender;    /* -f / -r; NULL: the invoking user */
    const char *fullname;  /* -F */
    unsigned notify;       /* -N: PST_DSN_NOTIFY_*, 0 when absent */
    const char *ret;       /* -R: "FULL" / "HDRS" / NULL */
    struct pst_buf *envid; /* -V as xtext, empty when absent */
    int body_8bit;         /* -B 8BITMIME */
    char **args;           /* recipients */
    int nargs;
};

/* -o TEXT: the options that matter (i) or are accepted and ignored. */
static int opt_o(struct sm_opts *o, const char *t)
{
    if (strcmp(t, "i") == 0) {
        o->dots = 0;
        return 0;
    }
    if ((t[0] == 'e' && (t[1] == '\0' || (strchr("mepqw", t[1]) != NULL && t[2] == '\0'))) ||
        strcmp(t, "m") == 0 || strcmp(t, "o") == 0 || strcmp(t, "7") == 0 || strcmp(t, "8") == 0 ||
        (t[0] == 'd' && t[1] != '\0' && strchr("bidq", t[1]) != NULL && t[2] == '\0') ||
        ((t[0] == 'Q' || t[0] == 'A') && t[1] != '\0'))
        return 0;
    say("unknown option -o%s", t);
    return -1;
}

static int opt_b(struct sm_opts *o, const char *v)
{
    if (strcmp(v, "m") == 0)
        o->mode = MODE_DELIVER;
    else if (strcmp(v, "s") == 0)
        o->mode = MODE_SMTP;
    else if (strcmp(v, "p") == 0)
        o->mode = MODE_QUEUE;
    else {
        say("-b%s is not supported (only -bm, -bs and -bp)", v);
        return -1;
    }
    return 0;
}

static int opt_value(struct sm_opts *o, char c, const char *v)
{
    const char *why = NULL;
    enum pst_dsn_ret ret;
    switch (c) {
    case 'f':
    case 'r':
        o->sender = v;
        return 0;
    case 'F':
        o->fullname = v;
        return 0;
    case 'b':
        return opt_b(o, v);
    case 'o':
        return opt_o(o, v);
    case 'B':
        if (strcasecmp(v, "8BITMIME") == 0)
            o->body_8bit = 1;
        else if (strcasecmp(v, "7BIT") != 0) {
            say("-B %s: the body type is 7BIT or 8BITMIME", v);
            return -1;
        }
        return 0;
    case 'N':
        if (pst_dsn_parse_notify(v, &o->notify, &why) != 0) {
            say("-N %s: %s (never, or a list of success, failure, delay)", v, why);
            return -1;
        }
        return 0;
    case 'R':
        if (pst_dsn_parse_ret(v, &ret, &why) != 0) {
            say("-R %s: %s (full or hdrs)", v, why);
            return -1;
        }
        o->ret = ret == PST_DSN_RET_HDRS ? "HDRS" : "FULL";
        return 0;
    case 'V':
        pst_buf_reset(o->envid);
        if (pst_xtext_encode(o->envid, v, strlen(v)) != 0 ||
            pst_dsn_parse_envid(pst_buf_data(o->envid), NULL, &why) != 0) {
            say("-V: bad envelope id: %s (printable US-ASCII, at most %d octets as xtext)",
                why ? why : "too long", PST_DSN_ENVID_MAX);
            return -1;
        }
        return 0;
    case 'h': /* hop count */
    case 'C': /* configuration file */
    case 'L': /* syslog label */
        return 0;
    }
    return -1;
}

/* getopt semantics: flag letters cluster, a value is the rest of the
 * argument or the next one. Returns 0 or EX_USAGE. */
static int parse_options(int argc, char **argv, struct sm_opts *o)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        for (size_t j = 1; a[j] != '\0'; j++) {
            char c = a[j];
            if (strchr("frFboBNRVhCL", c) != NULL) {
                const char *v = a + j + 1;
                if (*v == '\0') {
                    if (i + 1 >= argc) {
                        say("option -%c needs a value", c);
                        return EX_USAGE;
                    }
                    v = argv[++i];
                }
                if (opt_value(o, c, v) != 0)
                    return EX_USAGE;
                if (o->mode == MODE_QUEUE) {
                    /* -bp: the rest is for `postern queue list` */
                    o->args = argv + i + 1;
                    o->nargs = argc - i - 1;
                    return 0;
                }
                break;
            }
            if (c == 't')
                o->extract = 1;
            else if (c == 'i')
                o->dots = 0;
            else if (strchr("mnvUG", c) == NULL) {
                say("unknown option -%c (try 'postern help sendmail')", c);
                return EX_USAGE;
            }
        }
    }
    o->args = argv + i;
    o->nargs = argc - i;
    return 0;
}

/* ---- who we are ------------------------------------------------------------- */

struct sm_ident {
    char host[256]; /* gethostname, or "localhost" */
    char user[256]; /* the invoking user's login name */
    char gecos[256];
};

static int host_ok(const char *h)
{
    if (h[0] == '\0' || h[0] == '.' || h[0] == '-')
        return 0;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-'))
            return 0;
    return 1;
}

static int ident_get(struct sm_ident *id)
{
    memset(id, 0, sizeof(*id));
    if (gethostname(id->host, sizeof(id->host) - 1) != 0 || !host_ok(id->host))
        snprintf(id->host, sizeof(id->host), "localhost");
    uid_t uid = getuid();
    struct passwd *pw = getpwuid(uid);
    if (pw == NULL || pw->pw_name == NULL || pw->pw_name[0] == '\0' ||
        strlen(pw->pw_name) >= sizeof(id->user)) {
        say("who are you? uid %u has no user name", (unsigned)uid);
        return EX_NOUSER;
    }
    snprintf(id->user, sizeof(id->user), "%s", pw->pw_name);
    if (pw->pw_gecos != NULL) {
        size_t n = strcspn(pw->pw_gecos, ",");
        if (n < sizeof(id->gecos))
            memcpy(id->gecos, pw->pw_gecos, n);
    }
    return 0;
}

/* ---- addresses --------------------------------------------------------------- */

struct sm_rcpts {
    char **addr;
    size_t n;
    size_t cap;
};

static void rcpts_free(struct sm_rcpts *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->addr[i]);
    free(r->addr);
}

/* An address we can put in MAIL/RCPT: no controls, SP, '<' or '>' (the
 * SMTP client refuses them), not empty, at most MAX_ADDR octets. */
static int addr_ok(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > MAX_ADDR)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= ' ' || c == 0x7f || c == '<' || c == '>')
            return 0;
    }
    return 1;
}

/* Qualifies a bare local part with "@host"; a malloc'd string or NULL. */
static char *qualify(const char *a, size_t n, const char *host)
{
    struct pst_buf *b = pst_buf_new(MAX_ADDR + 300);
    if (b == NULL)
        return NULL;
    int rc = pst_buf_add(b, a, n);
    if (rc == 0 && memchr(a, '@', n) == NULL)
        rc = pst_buf_addf(b, "@%s", host);
    char *s = rc == 0 ? pst_buf_steal(b) : NULL;
    pst_buf_free(b);
    return s;
}

/* Adds one address (not yet qualified): 0, or an exit code after saying
 * why. Duplicates are dropped. */
static int rcpt_add(struct sm_rcpts *r, const char *a, size_t n, const char *host, int bad_rc)
{
    char *q = qualify(a, n, host);
    if (q == NULL) {
        say("out of memory");
        return EX_OSERR;
    }
    if (!addr_ok(q)) {
        say("bad recipient address \"%.*s\"", (int)(n > 200 ? 200 : n), a);
        free(q);
        return bad_rc;
    }
    for (size_t i = 0; i < r->n; i++)
        if (strcasecmp(r->addr[i], q) == 0) {
            free(q);
            return 0;
        }
    if (r->n >= PST_SMTPC_MAX_RCPTS) {
        say("more than %d recipients", PST_SMTPC_MAX_RCPTS);
        free(q);
        return bad_rc;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        char **na = realloc(r->addr, cap * sizeof(*na));
        if (na == NULL) {
            free(q);
            say("out of memory");
            return EX_OSERR;
        }
        r->addr = na;
        r->cap = cap;
    }
    r->addr[r->n++] = q;
    return 0;
}

/*
 * The addresses of an RFC 5322 3.4 address list: "a@b", "Name <a@b>",
 * "a@b (comment)", groups "team: a@b, c@d;", quoted local parts. Display
 * names, comments and whitespace are dropped; inside <> a source route
 * ("@relay:") is dropped (RFC 5322 4.4 obs-route). Lenient by design:
 * what comes out is checked by addr_ok. Adds each through rcpt_add.
 */
static int parse_list(struct sm_rcpts *r, const char *v, size_t n, const char *host, int bad_rc)
{
    /* each input octet lands in one buffer at most once, plus a closing
     * quote that was missing */
    struct pst_buf *word = pst_buf_new(n + 2);
    struct pst_buf *angle = pst_buf_new(n + 2);
    int rc = 0, in_angle = 0, have_angle = 0, err = 0;
    if (word == NULL || angle == NULL) {
        say("out of memory");
        rc = EX_OSERR;
        goto out;
    }
    for (size_t i = 0; i <= n && rc == 0; i++) {
        char c = i < n ? v[i] : ','; /* a final ',' ends the last address */
        struct pst_buf *cur = in_angle ? angle : word;
        if (c == '(') {
            /* a comment, nested, with quoted-pairs (RFC 5322 3.2.2) */
            int depth = 1;
            for (i++; i < n && depth > 0; i++) {
                if (v[i] == '\\' && i + 1 < n)
                    i++;
                else if (v[i] == '(')
                    depth++;
                else if (v[i] == ')')
                    depth--;
            }
            i--; /* on the ')' (or the last octet): the loop moves past it */
        } else if (c == '"') {
            err |= pst_buf_addc(cur, c);
            for (i++; i < n && v[i] != '"'; i++) {
                if (v[i] == '\\' && i + 1 < n)
                    err |= pst_buf_addc(cur, v[i++]);
                err |= pst_buf_addc(cur, v[i]);
            }
            err |= pst_buf_addc(cur, '"');
            if (i >= n)
                i = n - 1; /* unterminated: still end the address */
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        } else if (in_angle) {
            if (c == '>')
                in_angle = 0;
            else if (c == ':' && pst_buf_len(angle) > 0 && pst_buf_data(angle)[0] == '@')
                pst_buf_reset(angle); /* the end of a source route */
            else
                err |= pst_buf_addc(angle, c);
        } else if (c == '<') {
            in_angle = 1;
            have_angle = 1;
            pst_buf_reset(angle);
        } else if (c == ':') {
            pst_buf_reset(word); /* a group's display name */
        } else if (c == ',' || c == ';') {
            struct pst_buf *a = have_angle ? angle : word;
            if (err != 0) {
                say("out of memory");
                rc = EX_OSERR;
            } else if (pst_buf_len(a) > 0) {
                rc = rcpt_add(r, pst_buf_data(a), pst_buf_len(a), host, bad_rc);
            }
            pst_buf_reset(word);
            pst_buf_reset(angle);
            have_angle = 0;
            in_angle = 0;
        } else {
            err |= pst_buf_addc(cur, c);
        }
    }
out:
    pst_buf_free(word);
    pst_buf_free(angle);
    return rc;
}

/* ---- reading the message ------------------------------------------------------- */

/*
 * Reads stdin into raw, up to CLI_MAX_MESSAGE. With dots, a line holding
 * only "." (before LF, CRLF or the end of input) ends the message and is
 * not part of it; reading stops there. Returns 0 or an exit code.
 */
static int read_message(struct pst_buf *raw, int dots)
{
    char chunk[65536];
    size_t scan = 0, line = 0;
    for (;;) {
        ssize_t n = read(0, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            say("reading the message: %s", strerror(errno));
            return EX_IOERR;
        }
        if (n == 0)
            break;
        int rc = pst_buf_add(raw, chunk, (size_t)n);
        if (rc == PST_ERR_TOOBIG) {
            say("the message is larger than %u octets", (unsigned)CLI_MAX_MESSAGE);
            return EX_DATAERR;
        }
        if (rc != 0) {
            say("out of memory");
            return EX_OSERR;
        }
        if (!dots)
            continue;
        const char *p = pst_buf_data(raw);
        size_t len = pst_buf_len(raw);
        for (; scan < len; scan++) {
            if (p[scan] != '\n')
                continue;
            size_t l = scan - line; /* without the LF */
            if ((l == 1 && p[line] == '.') || (l == 2 && p[line] == '.' && p[line + 1] == '\r'))
                return pst_buf_truncate(raw, line) == 0 ? 0 : EX_SOFTWARE;
            line = scan + 1;
        }
    }
    if (dots) {
        const char *p = pst_buf_data(raw);
        size_t l = pst_buf_len(raw) - line;
        if ((l == 1 && p[line] == '.') || (l == 2 && p[line] == '.' && p[line + 1] == '\r'))
            (void)pst_buf_truncate(raw, line);
    }
    return 0;
}

/* ---- the header section ------------------------------------------------------ */

struct sm_field {
    size_t start; /* first octet of the field's first line */
    size_t end;   /* after the line end of its last line */
    size_t name_len;
};

struct sm_header {
    struct sm_field *f;
    size_t n;
    size_t skip;     /* octets of a dropped "From " line at the start */
    size_t body_off; /* where the body starts */
    int separator;   /* an empty line ended the header (it is before body_off) */
};

/* Length of the field name when the line starts a header field: ftext
 * (RFC 5322 3.6.8) then optional WSP (4.5 obs) and ':'; else 0. */
static size_t field_name(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] >= 33 && p[i] <= 126 && p[i] != ':')
        i++;
    size_t name = i;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    return name > 0 && i < n && p[i] == ':' ? name : 0;
}

static int header_scan(const char *p, size_t n, struct sm_header *h)
{
    memset(h, 0, sizeof(*h));
    size_t off = 0, cap = 0;
    if (n >= 5 && memcmp(p, "From ", 5) == 0 && field_name(p, n) == 0) {
        const char *nl = memchr(p, '\n', n);
        off = nl ? (size_t)(nl - p) + 1 : n;
        h->skip = off;
    }
    while (off < n) {
        const char *nl = memchr(p + off, '\n', n - off);
        size_t next = nl ? (size_t)(nl - p) + 1 : n;
        size_t len = (nl ? (size_t)(nl - p) : n) - off; /* without the LF */
        if (len > 0 && p[off + len - 1] == '\r' && nl != NULL)
            len--;
        if (len == 0) {
            h->separator = 1;
            off = next;
            break;
        }
        if ((p[off] == ' ' || p[off] == '\t') && h->n > 0) {
            h->f[h->n - 1].end = next;
            off = next;
            continue;
        }
        size_t name = field_name(p + off, len);
        if (name == 0)
            break; /* the body starts here, without an empty line */
        if (h->n == MAX_FIELDS) {
            say("more than %d header fields", MAX_FIELDS);
            return EX_DATAERR;
        }
        if (h->n == cap) {
            cap = cap ? cap * 2 : 32;
            struct sm_field *nf = realloc(h->f, cap * sizeof(*nf));
            if (nf == NULL) {
                say("out of memory");
                return EX_OSERR;
            }
            h->f = nf;
        }
        h->f[h->n++] = (struct sm_field){off, next, name};
        off = next;
    }
    h->body_off = off;
    return 0;
}

static int field_is(const char *p, const struct sm_field *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(p + f->start, name, f->name_len) == 0;
}

/* The recipients of To, Cc and Bcc (-t). */
static int header_rcpts(const char *p, const struct sm_header *h, struct sm_rcpts *r,
                        const char *host)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct sm_field *f = &h->f[i];
        if (!field_is(p, f, "To") && !field_is(p, f, "Cc") && !field_is(p, f, "Bcc"))
            continue;
        const char *colon = memchr(p + f->start, ':', f->end - f->start);
        size_t v = (size_t)(colon - p) + 1;
        int rc = parse_list(r, p + v, f->end - v, host, EX_DATAERR);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- writing the message -------------------------------------------------------- */

struct sm_out {
    int fd;
    struct pst_buf *b;
    int err;   /* sticky errno */
    int eight; /* an octet above 127 was written */
};

static void out_flush(struct sm_out *o)
{
    const char *p = pst_buf_data(o->b);
    size_t n = pst_buf_len(o->b), done = 0;
    while (done < n && o->err == 0) {
        ssize_t w = write(o->fd, p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            o->err = errno;
        else
            done += (size_t)w;
    }
    pst_buf_reset(o->b);
}

static void out_add(struct sm_out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        o->eight |= (unsigned char)s[i] > 127;
    if (pst_buf_len(o->b) + n > OUT_CHUNK)
        out_flush(o);
    while (n > OUT_CHUNK && o->err == 0) {
        (void)pst_buf_add(o->b, s, OUT_CHUNK);
        out_flush(o);
        s += OUT_CHUNK;
        n -= OUT_CHUNK;
    }
    if (o->err == 0 && pst_buf_add(o->b, s, n) != 0)
        o->err = ENOMEM;
}

/* Writes p[0..n) with every line end as CRLF; a bare CR becomes bare_cr
 * ("\r\n" in the body, " " in the header). The last line gets a CRLF. */
static void out_text(struct sm_out *o, const char *p, size_t n, const char *bare_cr)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\r' && p[i] != '\n')
            continue;
        out_add(o, p + run, i - run);
        if (p[i] == '\n')
            out_add(o, "\r\n", 2);
        else if (i + 1 < n && p[i + 1] == '\n') {
            out_add(o, "\r\n", 2);
            i++;
        } else
            out_add(o, bare_cr, strlen(bare_cr));
        run = i + 1;
    }
    out_add(o, p + run, n - run);
    if (n > 0 && p[n - 1] != '\n' && !(p[n - 1] == '\r' && bare_cr[0] == '\r'))
        out_add(o, "\r\n", 2);
}

/* RFC 5322 3.2.3 atext, and WSP between the atoms of a phrase. */
static int phrase_plain(const char *s)
{
    if (*s == '\0' || *s == ' ')
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-/=?^_`{|}~ ", c) != NULL))
            return 0;
    }
    return s[-1] != ' ';
}

/* "From: NAME <addr>" or "From: addr"; NAME as atoms or a quoted-string
 * (controls dropped; UTF-8 kept as RFC 6532 allows). */
static void out_from(struct sm_out *o, const char *name, const char *addr)
{
    out_add(o, "From: ", 6);
    if (name != NULL && name[0] != '\0') {
        if (phrase_plain(name)) {
            out_add(o, name, strlen(name));
        } else {
            out_add(o, "\"", 1);
            for (const char *s = name; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c < 0x20 || c == 0x7f)
                    continue;
                if (c == '"' || c == '\\')
                    out_add(o, "\\", 1);
                out_add(o, s, 1);
            }
            out_add(o, "\"", 1);
        }
        out_add(o, " <", 2);
        out_add(o, addr, strlen(addr));
        out_add(o, ">\r\n", 3);
        return;
    }
    out_add(o, addr, strlen(addr));
    out_add(o, "\r\n", 2);
}

/* An unlinked temporary file, in $TMPDIR or /tmp; -1 with errno. */
static int tmp_open(void)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] != '/')
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/postern-sendmail.XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = mkstemp(path);
    if (fd >= 0)
        (void)unlink(path);
    return fd;
}

/* ---- -bs ------------------------------------------------------------------------ */

static int connect_unix(const char *path)
{
    struct sockaddr_un su;
    memset(&su, 0, sizeof(su));
    if (strlen(path) >= sizeof(su.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    su.sun_family = AF_UNIX;
    memcpy(su.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&su, sizeof(su)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void down(const char *path, int err)
{
    say("cannot reach posternd at %s: %s (try again later; posternd needs a listener "
        "{ mode = \"local\"; path = \"%s\"; }, or set POSTERN_SOCKET)",
        path, strerror(err), path);
}

/*
 * SMTP on stdin/stdout: the bytes are relayed both ways as they are.
 * When stdin ends, the socket's write side is shut and the daemon's last
 * replies are still copied (for BS_DRAIN_MS at most); when the daemon
 * closes, we are done.
 */
static int run_smtp(const char *path)
{
    int s = connect_unix(path);
    if (s < 0) {
        down(path, errno);
        return EX_TEMPFAIL;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old);
    char buf[16384];
    int in_open = 1, rc = 0;
    for (;;) {
        struct pollfd pf[2] = {{in_open ? 0 : -1, POLLIN, 0}, {s, POLLIN, 0}};
        int r = poll(pf, 2, in_open ? -1 : BS_DRAIN_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            say("poll: %s", strerror(errno));
            rc = EX_OSERR;
            break;
        }
        if (r == 0)
            break; /* the daemon did not close after our end: we are done anyway */
        if (pf[1].revents != 0) {
            ssize_t n = read(s, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                say("reading from posternd: %s", strerror(errno));
                rc = EX_IOERR;
                break;
            }
            if (n == 0)
                break; /* the daemon closed */
            if (write_all(1, buf, (size_t)n) != 0) {
                if (errno != EPIPE)
                    say("writing to stdout: %s", strerror(errno));
                rc = EX_IOERR;
                break;
            }
        }
        if (in_open && pf[0].revents != 0) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                say("reading stdin: %s", strerror(errno));
                rc = EX_IOERR;
                break;
            }
            if (n == 0) {
                in_open = 0;
                (void)shutdown(s, SHUT_WR);
            } else if (write_all(s, buf, (size_t)n) != 0) {
                in_open = 0; /* the daemon went away: read what it said */
            }
        }
    }
    close(s);
    sigaction(SIGPIPE, &old, NULL);
    return rc;
}

/* ---- the result ------------------------------------------------------------------- */

/* EX_NOUSER for an address refusal (5.1.x, or 550/551/553 without an
 * enhanced code), else EX_DATAERR. */
static int perm_rc(int code, const char *enh)
{
    if (enh[0] != '\0')
        return strncmp(enh, "5.1.", 4) == 0 ? EX_NOUSER : EX_DATAERR;
    return code == 550 || code == 551 || code == 553 ? EX_NOUSER : EX_DATAERR;
}

static int report(const struct pst_smtp_client_result *res, const struct sm_rcpts *to,
                  const char *path)
{
    if (res->status != PST_SMTPC_OK && res->stage == PST_SMTPC_STAGE_CONNECT) {
        say("cannot reach posternd: %s (try again later; posternd needs a listener "
            "{ mode = \"local\"; path = \"%s\"; }, or set POSTERN_SOCKET)",
            res->text ? res->text : "?", path);
        return EX_TEMPFAIL;
    }
    int rc = 0;
    if (res->status == PST_SMTPC_OK || res->stage == PST_SMTPC_STAGE_RCPT) {
        /* each recipient's fate; the others got the message when the
         * session went through */
        for (size_t i = 0; i < res->nrcpts; i++) {
            const struct pst_smtp_client_rcpt_result *r = &res->rcpts[i];
            if (r->status == PST_SMTPC_OK)
                continue;
            int this = r->status == PST_SMTPC_TEMP ? EX_TEMPFAIL : perm_rc(r->code, r->enh);
            say("<%s>: %s", i < to->n ? to->addr[i] : "?", r->text ? r->text : "?");
            if (rc == 0 || this == EX_NOUSER)
                rc = this;
        }
        if (res->status == PST_SMTPC_OK)
            return rc;
    }
    say("the message was not sent (%s): %s%s", pst_smtpc_stage_name(res->stage),
        res->text ? res->text : "?", res->status == PST_SMTPC_TEMP ? " (try again later)" : "");
    if (res->status == PST_SMTPC_TEMP)
        return EX_TEMPFAIL;
    if (rc != 0)
        return rc;
    switch (res->stage) {
    case PST_SMTPC_STAGE_GREETING:
    case PST_SMTPC_STAGE_EHLO:
    case PST_SMTPC_STAGE_HELO:
        return EX_UNAVAILABLE;
    default:
        return EX_DATAERR;
    }
}

/* ---- the whole submission ----------------------------------------------------------- */

struct sm_run {
    struct sm_opts o;
    struct sm_ident id;
    struct pst_buf *raw;
    struct sm_header h;
    struct sm_rcpts r;
    char *sender; /* envelope sender, "" for the null sender */
    char **orcpt; /* one per recipient, NULL when it could not be made */
    int fd;
};

/* The envelope sender from -f (NULL: the user's address). */
static int make_sender(struct sm_run *s)
{
    const char *f = s->o.sender;
    if (f == NULL) {
        s->sender = qualify(s->id.user, strlen(s->id.user), s->id.host);
    } else {
        size_t n = strlen(f);
        if (n >= 2 && f[0] == '<' && f[n - 1] == '>') {
            f++;
            n -= 2;
        }
        s->sender = n == 0 ? strdup("") : qualify(f, n, s->id.host);
    }
    if (s->sender == NULL) {
        say("out of memory");
        return EX_OSERR;
    }
    if (s->sender[0] != '\0' && !addr_ok(s->sender)) {
        say("bad sender address \"%.200s\"", s->sender);
        return EX_USAGE;
    }
    return 0;
}

static int write_message(struct sm_run *s)
{
    const char *p = pst_buf_data(s->raw);
    size_t n = pst_buf_len(s->raw);
    s->fd = tmp_open();
    if (s->fd < 0) {
        say("cannot make a temporary file: %s", strerror(errno));
        return EX_CANTCREAT;
    }
    struct sm_out o = {.fd = s->fd, .b = pst_buf_new(OUT_CHUNK)};
    if (o.b == NULL) {
        say("out of memory");
        return EX_OSERR;
    }
    int has_from = 0;
    for (size_t i = 0; i < s->h.n; i++)
        has_from |= field_is(p, &s->h.f[i], "From");
    if (!has_from) {
        const char *addr = s->sender[0] ? s->sender : NULL;
        const char *name = s->o.fullname;
        char *own = NULL;
        if (addr == NULL)
            addr = own = qualify(s->id.user, strlen(s->id.user), s->id.host);
        if (name == NULL && s->o.sender == NULL)
            name = getenv("NAME") ? getenv("NAME") : s->id.gecos;
        if (addr != NULL)
            out_from(&o, name, addr);
        else
            o.err = ENOMEM;
        free(own);
    }
    for (size_t i = 0; i < s->h.n; i++) {
        const struct sm_field *f = &s->h.f[i];
        if (!field_is(p, f, "Bcc"))
            out_text(&o, p + f->start, f->end - f->start, " ");
    }
    out_add(&o, "\r\n", 2);
    out_text(&o, p + s->h.body_off, n - s->h.body_off, "\r\n");
    out_flush(&o);
    pst_buf_free(o.b);
    if (o.err != 0) {
        say("writing the temporary file: %s", strerror(o.err));
        return o.err == ENOMEM ? EX_OSERR : EX_IOERR;
    }
    s->o.body_8bit |= o.eight;
    return 0;
}

static int deliver(struct sm_run *s, const char *path)
{
    struct pst_smtpc_rcpt *rcpts = calloc(s->r.n, sizeof(*rcpts));
    s->orcpt = calloc(s->r.n, sizeof(*s->orcpt));
    struct pst_buf *b = pst_buf_new(PST_DSN_ORCPT_MAX + 1);
    struct pst_buf *nb = pst_buf_new(PST_DSN_NOTIFY_MAX + 1);
    int ret = 0;
    if (rcpts == NULL || s->orcpt == NULL || b == NULL || nb == NULL ||
        (s->o.notify != 0 && pst_dsn_notify_encode(nb, s->o.notify) != 0)) {
        say("out of memory");
        ret = EX_OSERR;
        goto out;
    }
    for (size_t i = 0; i < s->r.n; i++) {
        pst_buf_reset(b);
        if (pst_dsn_orcpt_from_addr(b, s->r.addr[i]) == 0)
            s->orcpt[i] = pst_buf_steal(b);
        rcpts[i].addr = s->r.addr[i];
        rcpts[i].notify = s->o.notify != 0 ? pst_buf_data(nb) : NULL;
        rcpts[i].orcpt = s->orcpt[i];
    }
    struct pst_smtp_client_opts so;
    memset(&so, 0, sizeof(so));
    so.unix_path = path;
    so.ehlo_name = s->id.host;
    so.tls = PST_SMTPC_TLS_NONE;
    struct pst_smtp_client_msg m = {.sender = s->sender, .rcpts = rcpts, .nrcpts = s->r.n};
    m.body_8bit = s->o.body_8bit;
    m.dsn_ret = s->o.ret;
    m.dsn_envid = pst_buf_len(s->o.envid) > 0 ? pst_buf_data(s->o.envid) : NULL;
    struct pst_smtp_client_result res;
    int e = pst_smtp_client_deliver(&so, &m, s->fd, &res);
    if (e != 0) {
        say("cannot submit: %s", pst_strerror(e));
        ret = e == PST_ERR_NOMEM ? EX_OSERR : EX_SOFTWARE;
        goto out;
    }
    ret = report(&res, &s->r, path);
    pst_smtp_client_result_free(&res);
out:
    free(rcpts);
    pst_buf_free(b);
    pst_buf_free(nb);
    return ret;
}

static void run_free(struct sm_run *s)
{
    if (s->orcpt != NULL)
        for (size_t i = 0; i < s->r.n; i++)
            free(s->orcpt[i]);
    free(s->orcpt);
    rcpts_free(&s->r);
    free(s->h.f);
    free(s->sender);
    pst_buf_free(s->raw);
    pst_buf_free(s->o.envid);
    if (s->fd >= 0)
        close(s->fd);
}

int cmd_mailq(int argc, char **argv)
{
    char **qa = calloc((size_t)argc + 2, sizeof(*qa));
    if (qa == NULL) {
        say("out of memory");
        return EX_OSERR;
    }
    qa[0] = "queue";
    qa[1] = "list";
    for (int i = 1; i < argc; i++)
        qa[i + 1] = argv[i];
    int rc = cmd_queue(argc + 1, qa);
    free(qa);
    return rc;
}

int cmd_sendmail(int argc, char **argv)
{
    struct sm_run s;
    memset(&s, 0, sizeof(s));
    s.fd = -1;
    s.o.dots = 1;
    s.o.envid = pst_buf_new(PST_DSN_ENVID_MAX + 1);
    int rc = s.o.envid == NULL ? EX_OSERR : parse_options(argc, argv, &s.o);
    if (rc != 0)
        goto out;
    const char *path = getenv("POSTERN_SOCKET");
    if (path == NULL || path[0] == '\0')
        path = DEFAULT_SOCKET;
    if (s.o.mode == MODE_QUEUE) {
        /* argv[0] of cmd_mailq is not read: the option before the rest is */
        rc = cmd_mailq(s.o.nargs + 1, s.o.args - 1);
        goto out;
    }
    if (s.o.mode == MODE_SMTP) {
        rc = run_smtp(path);
        goto out;
    }
    if ((rc = ident_get(&s.id)) != 0 || (rc = make_sender(&s)) != 0)
        goto out;
    for (int i = 0; i < s.o.nargs && rc == 0; i++)
        rc = parse_list(&s.r, s.o.args[i], strlen(s.o.args[i]), s.id.host, EX_USAGE);
    if (rc != 0)
        goto out;
    if (s.r.n == 0 && !s.o.extract) {
        say("no recipients (give them as arguments, or use -t)");
        rc = EX_USAGE;
        goto out;
    }
    s.raw = pst_buf_new(CLI_MAX_MESSAGE);
    if (s.raw == NULL) {
        say("out of memory");
        rc = EX_OSERR;
        goto out;
    }
    if ((rc = read_message(s.raw, s.o.dots)) != 0)
        goto out;
    if ((rc = header_scan(pst_buf_data(s.raw), pst_buf_len(s.raw), &s.h)) != 0)
        goto out;
    if (s.o.extract && (rc = header_rcpts(pst_buf_data(s.raw), &s.h, &s.r, s.id.host)) != 0)
        goto out;
    if (s.r.n == 0) {
        say("no recipient addresses found in the message header");
        rc = EX_DATAERR;
        goto out;
    }
    if ((rc = write_message(&s)) != 0)
        goto out;
    rc = deliver(&s, path);
out:
    run_free(&s);
    return rc;
}
