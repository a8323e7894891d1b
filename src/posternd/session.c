/*
 * session.c - one inbound SMTP session (RFC 5321) on the libevent loop.
 *
 * The session is a state machine fed by the lib/core command parser and
 * DATA/BDAT byte machine; it owns no protocol text of its own beyond the
 * replies. What it enforces, from the first byte:
 *   - command lines end in CRLF and fit limits.line_length (RFC 5321
 *     4.5.3.1.4 sets a 512-octet minimum; we allow more for SMTPUTF8 and
 *     ESMTP parameters); a bare LF in a command is refused;
 *   - bad or unknown commands are counted; past limits.bad_commands the
 *     session ends with 421 4.7.0;
 *   - recipients per message (452 4.5.3, RFC 5321 4.5.3.1.10) and message
 *     size (552 5.3.4, RFC 1870) are limited, the size both by SIZE= and by
 *     the bytes actually received;
 *   - per-state timeouts (RFC 5321 4.5.3.2: 5 minutes for commands,
 *     3 minutes per data block), then 421 4.4.2;
 *   - STARTTLS (RFC 3207 4.2): bytes pipelined after the command are
 *     discarded before the handshake, and all state is reset after it;
 *   - only <CRLF>.<CRLF> ends DATA; bare CR or LF in the data make the
 *     message refused at its end (554 5.6.0) unless configured to
 *     normalise.
 * A message is acknowledged (250) only after spool.c reports it on disk.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "daemon.h"
#include "dsn.h"
#include "sasl.h"
#include "users.h"
#include "worker.h"
#include "err.h"
#include "log.h"
#include "smtp.h"
#include "tls.h"

/* bytes of message data collected before a write(2) to the spool file */
#define SPOOL_CHUNK (64 * 1024)
/* stop reading commands while this much reply text waits for the client */
#define OUT_HIGH (256 * 1024)
/* the kernel may hand us this much before we parse */
#define IN_HIGH (256 * 1024)

enum sstate {
    S_TLS_ACCEPT, /* implicit TLS handshake before the greeting */
    S_CMD,
    S_DATA,
    S_BDAT,
    S_STARTTLS, /* handshake after STARTTLS */
};

struct session {
    struct pstd *d;
    struct pstd_confref *cr;
    const struct pst_conf *conf;
    struct session *prev, *next;

    uint64_t serial;
    char ip[INET6_ADDRSTRLEN];
    int port;
    struct bufferevent *bev;
    struct pst_listener_conf lc;
    enum sstate state;

    int tls;
    char tls_desc[160];
    int helo_seen;
    int esmtp;
    char *helo;
    /* AUTH (RFC 4954) on submission listeners, or the peer of a local one */
    char *auth_user;             /* authenticated as, or NULL */
    const struct pst_user *user; /* in cr->users; NULL for local sessions */
    struct pst_sasl sasl;
    unsigned bad_cmds;
    int discard_line; /* skipping the rest of an over-long line */

    /* transaction */
    int have_mail;
    char *sender;
    struct pst_smtp_mail_params mp;
    struct pst_envelope_rcpt *rcpts;
    size_t nrcpts;
    char id[PST_QUEUE_ID_LEN + 1];
    int spool_fd; /* -1 when no message is being written */
    struct pst_buf *wbuf;
    uint64_t msg_bytes;
    int too_big;
    int write_err;
    int quarantine; /* the checks said: deliver into the Junk folder */
    struct pst_smtp_data data;
    int data_started; /* a DATA or BDAT has started the message */
    uint64_t bdat_left;
    uint64_t bdat_chunk; /* size announced by the current BDAT */
    int bdat_last;
    int bdat_refuse; /* reply this code after consuming the chunk */
    const char *bdat_refuse_enh;
    const char *bdat_refuse_text;

    int busy;    /* waiting for the spool; input is not processed */
    int closing; /* flush output, then free */
    int gone;    /* the client went away while busy */
    int waiting_output;
    unsigned messages;
    struct event *close_ev;             /* frees a closing session once flushed */
    struct evbuffer_cb_entry *under_cb; /* watches the socket below a STARTTLS filter */
    int depth;                          /* callbacks of this session on the stack */
    int free_pending;                   /* freed when depth returns to 0 */
};

static void session_free(struct session *s);
static void session_release(struct session *s);
static void process(struct session *s);

/* Every callback into a session is bracketed by ENTER and LEAVE, so a
 * session that ends deep inside (QUIT, a limit, an error) is freed only
 * when the outermost callback returns, never under a caller's feet. */
#define ENTER(s) ((s)->depth++)
#define LEAVE(s)                                                                                   \
    do {                                                                                           \
        if (--(s)->depth == 0 && (s)->free_pending)                                                \
            session_release(s);                                                                    \
    } while (0)
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void under_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static void on_close_ev(evutil_socket_t fd, short what, void *arg);

static void set_timeout(struct session *s, unsigned seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    struct timeval wtv = {.tv_sec = s->conf->timeout_command, .tv_usec = 0};
    bufferevent_set_timeouts(s->bev, &tv, &wtv);
}

static void send_text(struct session *s, const char *text, size_t len)
{
    if (s->bev != NULL && !s->gone)
        bufferevent_write(s->bev, text, len);
}

static void reply(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    struct pst_buf *b = pst_buf_new(sizeof(text) + 64);
    if (b == NULL)
        return;
    if (pst_smtp_reply(b, code, enh, "%s", text) == 0)
        send_text(s, pst_buf_data(b), pst_buf_len(b));
    if (code >= 400)
        log_info("session %llu %s: reply %d %s %s", (unsigned long long)s->serial, s->ip, code,
                 enh ? enh : "", text);
    pst_buf_free(b);
}

/* A closing session is freed once everything it wrote has left: the
 * bufferevent's output and, under a STARTTLS filter, the output of the
 * socket bufferevent below it (freeing the filter earlier would drop the
 * last replies, such as the 250 before a pipelined QUIT's 221). A client
 * that stops reading gets timeout_command seconds, then is dropped. */
static void close_when_flushed(struct session *s)
{
    if (s->busy)
        return;
    if (s->bev == NULL || s->gone) {
        session_free(s);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
        return; /* on_write calls again */
    struct bufferevent *under = bufferevent_get_underlying(s->bev);
    if (under != NULL && evbuffer_get_length(bufferevent_get_output(under)) > 0) {
        if (s->under_cb == NULL) {
            s->under_cb = evbuffer_add_cb(bufferevent_get_output(under), under_drained, s);
            struct timeval tv = {.tv_sec = s->conf->timeout_command, .tv_usec = 0};
            event_add(s->close_ev, &tv);
        }
        return;
    }
    session_free(s);
}

static void under_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct session *s = arg;
    (void)info;
    if (evbuffer_get_length(buf) == 0)
        event_active(s->close_ev, EV_READ, 0);
}

static void on_close_ev(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    (void)fd;
    ENTER(s);
    if (what & EV_TIMEOUT)
        s->gone = 1; /* the client did not take our last words */
    close_when_flushed(s);
    LEAVE(s);
}

static void session_close(struct session *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    if (s->bev != NULL && !s->gone)
        bufferevent_disable(s->bev, EV_READ);
    close_when_flushed(s);
}

/* Answers a bad or refused command. Past limits.bad_commands the command
 * gets only 421 4.7.0 and the session ends. Returns 1 when closing. */
static int bad_reply(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad_reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
    if (++s->bad_cmds > s->conf->max_bad_commands) {
        reply(s, 421, "4.7.0", "%s Too many errors, closing connection", s->conf->hostname);
        session_close(s);
        return 1;
    }
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    reply(s, code, enh, "%s", text);
    return 0;
}

/* ---- transaction ------------------------------------------------------ */

static void drop_message(struct session *s)
{
    if (s->spool_fd >= 0) {
        pst_queue_abort(s->d->queue, s->id, s->spool_fd);
        s->spool_fd = -1;
    }
    pst_buf_free(s->wbuf);
    s->wbuf = NULL;
    s->data_started = 0;
    s->msg_bytes = 0;
    s->too_big = 0;
    s->write_err = 0;
    s->quarantine = 0;
    s->id[0] = '\0';
}

static void reset_transaction(struct session *s)
{
    drop_message(s);
    free(s->sender);
    s->sender = NULL;
    for (size_t i = 0; i < s->nrcpts; i++) {
        free(s->rcpts[i].addr);
        free(s->rcpts[i].user);
        free(s->rcpts[i].last_reply);
        free(s->rcpts[i].orcpt);
    }
    free(s->rcpts);
    s->rcpts = NULL;
    s->nrcpts = 0;
    s->have_mail = 0;
    memset(&s->mp, 0, sizeof(s->mp));
}

/* Writes what is collected in wbuf to the spool file. */
static void flush_spool(struct session *s)
{
    size_t len = pst_buf_len(s->wbuf);
    if (len == 0)
        return;
    if (!s->too_big && !s->write_err) {
        const char *p = pst_buf_data(s->wbuf);
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(s->spool_fd, p + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                log_err("session %llu: writing %s: %s", (unsigned long long)s->serial, s->id,
                        strerror(errno));
                s->write_err = 1;
                break;
            }
            off += (size_t)w;
        }
    }
    pst_buf_reset(s->wbuf);
}

/* Creates the spool file and writes our Received header (RFC 5321 4.4). */
static int start_message(struct session *s)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    pst_queue_new_id(s->d->queue, (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec, s->id);
    int rc = pst_queue_create(s->d->queue, s->id, &s->spool_fd);
    if (rc < 0) {
        log_err("session %llu: creating spool file: %s: %s", (unsigned long long)s->serial,
                pst_strerror(rc), strerror(errno));
        s->spool_fd = -1;
        s->id[0] = '\0';
        return -1;
    }
    s->wbuf = pst_buf_new(SPOOL_CHUNK * 3);
    if (s->wbuf == NULL) {
        drop_message(s);
        return -1;
    }
    /* RFC 3848 (ESMTPA/ESMTPSA for authenticated sessions) and RFC 6531
     * 4.3: the "with" protocol names */
    int a = s->auth_user != NULL;
    const char *proto =
        s->mp.smtputf8
            ? (s->tls ? (a ? "UTF8SMTPSA" : "UTF8SMTPS") : (a ? "UTF8SMTPA" : "UTF8SMTP"))
        : s->esmtp ? (s->tls ? (a ? "ESMTPSA" : "ESMTPS") : (a ? "ESMTPA" : "ESMTP"))
                   : (s->tls ? "SMTPS" : "SMTP");
    pst_buf_addf(s->wbuf, "Received: from %s ([%s])\r\n\tby %s (postern) with %s id %s\r\n",
                 s->helo ? s->helo : "unknown", s->ip, s->conf->hostname, proto, s->id);
    if (s->tls)
        pst_buf_addf(s->wbuf, "\t(%s)\r\n", s->tls_desc);
    if (s->nrcpts == 1)
        pst_buf_addf(s->wbuf, "\tfor <%s>; ", s->rcpts[0].addr);
    else
        pst_buf_addstr(s->wbuf, "\t; ");
    pst_dsn_date(s->wbuf, tv.tv_sec); /* RFC 5322 3.3 date-time */
    pst_buf_addstr(s->wbuf, "\r\n");
    s->data_started = 1;
    s->msg_bytes = 0;
    return 0;
}

struct commit_ctx {
    struct session *s;
    struct pst_envelope *env;
};

static void commit_message(struct session *s);
static void checks_done(void *arg, struct pstd_check_result *r);

static void commit_done(void *arg, int rc)
{
    struct commit_ctx *cc = arg;
    struct session *s = cc->s;
    ENTER(s);
    s->busy = 0;
    s->spool_fd = -1; /* closed by the commit */
    if (rc == 0) {
        s->messages++;
        log_info("session %llu %s: queued %s from=<%s> rcpts=%zu size=%llu",
                 (unsigned long long)s->serial, s->ip, cc->env->id, cc->env->sender,
                 cc->env->nrcpts, (unsigned long long)s->msg_bytes);
        reply(s, 250, "2.0.0", "Ok: queued as %s", cc->env->id);
        pstd_delivery_kick(s->d->delivery, cc->env->id);
    } else {
        log_err("session %llu: committing %s: %s", (unsigned long long)s->serial, cc->env->id,
                pst_strerror(rc));
        reply(s, 451, "4.3.0", "Queue write failed, try again later");
    }
    pst_envelope_free(cc->env);
    free(cc);
    s->id[0] = '\0';
    reset_transaction(s);
    if (s->gone || s->closing) {
        close_when_flushed(s);
    } else {
        process(s);
    }
    LEAVE(s);
}

/* The message's data has ended: refuse it or hand it to the spool. */
static void end_of_message(struct session *s)
{
    flush_spool(s);
    s->state = S_CMD;
    set_timeout(s, s->conf->timeout_command);
    if (s->too_big) {
        reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
        reset_transaction(s);
        return;
    }
    if (s->data.bare_eol > 0 && s->conf->bare_eol == PST_BARE_EOL_REJECT) {
        /* RFC 5321 2.3.8: CR and LF only as CRLF (CVE-2023-51764 family) */
        reply(s, 554, "5.6.0", "Bare CR or LF in message data");
        reset_transaction(s);
        return;
    }
    if (s->write_err || s->spool_fd < 0) {
        reply(s, 451, "4.3.0", "Queue write failed, try again later");
        reset_transaction(s);
        return;
    }
    /* inbound mail gets the SPF/DKIM/DMARC checks; submitted mail (AUTH or
     * local) gets Date, Message-ID and DKIM signatures instead */
    if (s->auth_user != NULL || s->conf->dkim_verify || s->conf->spf_verify ||
        s->conf->dmarc_verify) {
        /* the checks read the spooled message on the check pool */
        struct pstd_check_in in = {.ip = s->ip,
                                   .helo = s->helo,
                                   .sender = s->sender,
                                   .authenticated = s->auth_user != NULL};
        s->busy = 1;
        if (pstd_check_message(s->d, s->spool_fd, s->id, &in, checks_done, s) == 0)
            return;
        s->busy = 0;
        log_err("session %llu: cannot queue the message checks", (unsigned long long)s->serial);
    }
    commit_message(s);
}

/* The checks of a message are done: log them, then refuse the message or
 * make it durable. */
static void checks_done(void *arg, struct pstd_check_result *r)
{
    struct session *s = arg;
    ENTER(s);
    s->busy = 0;
    if (s->gone || s->closing) {
        /* the client left (or was told 421) before its 250: the message
         * was never ours, and the client will send it again */
        reset_transaction(s);
        close_when_flushed(s);
        LEAVE(s);
        return;
    }
    log_info("session %llu %s: %s checks: %s", (unsigned long long)s->serial, s->ip, s->id,
             r->summary);
    if (r->action == PSTD_CHECK_REJECT || r->action == PSTD_CHECK_TEMPFAIL) {
        reply(s, r->code, r->enh, "%s", r->reason);
        reset_transaction(s);
        process(s);
        LEAVE(s);
        return;
    }
    s->quarantine = r->quarantine;
    commit_message(s);
    if (!s->busy && !s->closing)
        process(s);
    LEAVE(s);
}

/* Hands the message with its envelope to the spool; 250 comes from
 * commit_done once it is on disk. */
static void commit_message(struct session *s)
{
    struct commit_ctx *cc = calloc(1, sizeof(*cc));
    struct pst_envelope *env = calloc(1, sizeof(*env));
    if (cc == NULL || env == NULL)
        goto nomem;
    memcpy(env->id, s->id, sizeof(env->id));
    env->sender = strdup(s->sender);
    env->arrival = time(NULL);
    /* queue.h: NULL for a local submission (the unix socket) */
    int local = s->lc.mode == PST_LISTEN_UNIX;
    env->client_addr = local ? NULL : strdup(s->ip);
    env->helo = strdup(s->helo ? s->helo : "");
    env->smtputf8 = s->mp.smtputf8;
    env->body_8bit = s->mp.body_8bit;
    env->tls = s->tls;
    env->quarantine = s->quarantine;
    env->ret = (int)s->mp.ret;
    env->envid = s->mp.envid[0] ? strdup(s->mp.envid) : NULL;
    env->auth_user = s->auth_user ? strdup(s->auth_user) : NULL;
    if ((s->mp.envid[0] && env->envid == NULL) || (s->auth_user && env->auth_user == NULL))
        goto nomem;
    env->rcpts = calloc(s->nrcpts, sizeof(*env->rcpts));
    if (!env->sender || (!local && !env->client_addr) || !env->helo || !env->rcpts)
        goto nomem;
    env->nrcpts = s->nrcpts;
    for (size_t i = 0; i < s->nrcpts; i++) {
        env->rcpts[i].addr = strdup(s->rcpts[i].addr);
        env->rcpts[i].user = s->rcpts[i].user ? strdup(s->rcpts[i].user) : NULL;
        env->rcpts[i].state = PST_RCPT_PENDING;
        env->rcpts[i].notify = s->rcpts[i].notify;
        env->rcpts[i].orcpt = s->rcpts[i].orcpt ? strdup(s->rcpts[i].orcpt) : NULL;
        if (!env->rcpts[i].addr || (s->rcpts[i].user && !env->rcpts[i].user) ||
            (s->rcpts[i].orcpt && !env->rcpts[i].orcpt))
            goto nomem;
    }
    cc->s = s;
    cc->env = env;
    int fd = s->spool_fd;
    s->busy = 1;
    if (pstd_spool_commit(s->d->spool, fd, env, commit_done, cc) != 0) {
        s->busy = 0;
        goto nomem;
    }
    return;
nomem:
    pst_envelope_free(env);
    free(cc);
    reply(s, 451, "4.3.0", "Queue write failed, try again later");
    reset_transaction(s);
}

/* Collects bytes produced by the data machine; counts the size limit. */
static void account(struct session *s, size_t before)
{
    size_t added = pst_buf_len(s->wbuf) - before;
    s->msg_bytes += added;
    if (s->msg_bytes > s->conf->message_size)
        s->too_big = 1;
    if (s->too_big)
        pst_buf_reset(s->wbuf); /* keep reading, keep nothing */
    else if (pst_buf_len(s->wbuf) >= SPOOL_CHUNK)
        flush_spool(s);
}

/*
 * Feeds at most max bytes of the input to the data machine and the spool.
 * Returns the machine's result (1 at the end of DATA), 0 when the input is
 * used up, or -1 after an internal error (the session is closing).
 * *used tells how many input bytes belonged to the message.
 */
static int feed_input(struct session *s, uint64_t max, size_t *used)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer_iovec v;
    *used = 0;
    if (evbuffer_peek(in, SPOOL_CHUNK, NULL, &v, 1) < 1)
        return 0;
    size_t len = v.iov_len > SPOOL_CHUNK ? SPOOL_CHUNK : v.iov_len;
    if (len > max)
        len = (size_t)max;
    size_t before = pst_buf_len(s->wbuf);
    int rc = pst_smtp_data_feed(&s->data, v.iov_base, len, used, s->wbuf);
    evbuffer_drain(in, *used);
    account(s, before);
    if (rc == PST_ERR_TOOBIG) {
        flush_spool(s); /* nothing was lost; the next call goes on */
        return 0;
    }
    if (rc < 0) {
        reply(s, 451, "4.3.0", "Internal error");
        session_close(s);
        return -1;
    }
    return rc;
}

/* DATA: returns 1 to continue with commands, 0 to wait for input. */
static int process_data(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    while (evbuffer_get_length(in) > 0) {
        size_t used;
        int rc = feed_input(s, SPOOL_CHUNK, &used);
        if (rc < 0)
            return 0;
        if (rc == 1) {
            end_of_message(s);
            return 1;
        }
    }
    return 0;
}

/* BDAT (RFC 3030): consume exactly the announced octets. */
static int process_bdat(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    while (s->bdat_left > 0 && evbuffer_get_length(in) > 0) {
        if (s->bdat_refuse || s->wbuf == NULL) {
            size_t len = evbuffer_get_length(in);
            if (len > s->bdat_left)
                len = (size_t)s->bdat_left;
            evbuffer_drain(in, len);
            s->bdat_left -= len;
            continue;
        }
        size_t used;
        int rc = feed_input(s, s->bdat_left, &used);
        s->bdat_left -= used;
        if (rc < 0)
            return 0;
    }
    if (s->bdat_left > 0)
        return 0;
    s->state = S_CMD;
    set_timeout(s, s->conf->timeout_command);
    if (s->bdat_refuse) {
        int code = s->bdat_refuse;
        s->bdat_refuse = 0;
        if (code >= 500) /* a client's sequence error counts; our 451 does not */
            return bad_reply(s, code, s->bdat_refuse_enh, "%s", s->bdat_refuse_text) ? 0 : 1;
        reply(s, code, s->bdat_refuse_enh, "%s", s->bdat_refuse_text);
        return 1;
    }
    if (!s->bdat_last) {
        if (s->too_big) {
            /* RFC 3030 2: the transaction fails; the client must RSET */
            reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
            reset_transaction(s);
            return 1;
        }
        /* RFC 3030 4.2: each chunk is acknowledged with its own size */
        reply(s, 250, "2.0.0", "%llu bytes received", (unsigned long long)s->bdat_chunk);
        return 1;
    }
    size_t before = pst_buf_len(s->wbuf);
    int frc = pst_smtp_data_finish(&s->data, s->wbuf);
    if (frc == PST_ERR_TOOBIG) {
        /* the buffer was full: write it out and finish again */
        account(s, before);
        flush_spool(s);
        before = pst_buf_len(s->wbuf);
        frc = pst_smtp_data_finish(&s->data, s->wbuf);
    }
    account(s, before);
    if (frc < 0)
        s->write_err = 1;
    end_of_message(s);
    return 1;
}

/* ---- commands --------------------------------------------------------- */

static void do_ehlo(struct session *s, const struct pst_smtp_cmd *c, int esmtp)
{
    reset_transaction(s);
    free(s->helo);
    s->helo = strdup(c->arg);
    s->helo_seen = s->helo != NULL;
    s->esmtp = esmtp;
    const struct pst_conf *cf = s->conf;
    if (!esmtp) {
        reply(s, 250, NULL, "%s", cf->hostname);
        return;
    }
    char size[48];
    snprintf(size, sizeof(size), "SIZE %llu", (unsigned long long)cf->message_size);
    const char *lines[11];
    size_t n = 0;
    lines[n++] = cf->hostname;
    lines[n++] = "PIPELINING";
    lines[n++] = size;
    lines[n++] = "8BITMIME";
    lines[n++] = "SMTPUTF8";
    lines[n++] = "ENHANCEDSTATUSCODES";
    lines[n++] = "CHUNKING";
    lines[n++] = "DSN"; /* RFC 3461 */
    if (!s->tls && s->lc.starttls && s->cr->tls != NULL)
        lines[n++] = "STARTTLS";
    /* RFC 4954 4 and sasl.h: offered only once the connection is encrypted */
    if (s->lc.submission && s->tls && s->auth_user == NULL)
        lines[n++] = "AUTH PLAIN LOGIN";
    struct pst_buf *b = pst_buf_new(4096);
    if (b != NULL && pst_smtp_reply_lines(b, 250, lines, n) == 0)
        send_text(s, pst_buf_data(b), pst_buf_len(b));
    pst_buf_free(b);
}

static void do_mail(struct session *s, const struct pst_smtp_cmd *c)
{
    struct pst_smtp_perr why;
    if (!s->helo_seen) {
        bad_reply(s, 503, "5.5.1", "Send HELO/EHLO first");
        return;
    }
    if (s->have_mail) {
        bad_reply(s, 503, "5.5.1", "Sender already specified");
        return;
    }
    if (s->lc.submission && s->auth_user == NULL) {
        /* RFC 6409 4.3 / RFC 4954 6 */
        bad_reply(s, 530, "5.7.0", "Authentication required");
        return;
    }
    if (s->user != NULL && !pst_users_may_send(s->user, c->local, c->domain)) {
        /* sasl.h: X.7.1, the user does not own this address */
        log_warn("session %llu %s: user %s may not send as <%s>", (unsigned long long)s->serial,
                 s->ip, s->auth_user, c->path);
        bad_reply(s, 553, "5.7.1", "Sender address not owned by the authenticated user");
        return;
    }
    struct pst_smtp_mail_params mp;
    if (pst_smtp_mail_params_dsn(c, 1, &mp, &why) != 0) {
        bad_reply(s, why.code, why.enh, "%s", why.msg);
        return;
    }
    if (mp.size > s->conf->message_size) {
        reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
        return;
    }
    s->sender = strdup(c->path);
    if (s->sender == NULL) {
        reply(s, 451, "4.3.0", "Out of memory");
        return;
    }
    s->mp = mp;
    s->have_mail = 1;
    reply(s, 250, "2.1.0", "Ok");
}

static void do_rcpt(struct session *s, const struct pst_smtp_cmd *c)
{
    struct pst_smtp_perr why;
    if (!s->have_mail) {
        bad_reply(s, 503, "5.5.1", "Need MAIL command");
        return;
    }
    struct pst_smtp_rcpt_params rp;
    if (pst_smtp_rcpt_params_dsn(c, s->mp.smtputf8, 1, &rp, &why) != 0) {
        bad_reply(s, why.code, why.enh, "%s", why.msg);
        return;
    }
    if (s->nrcpts >= s->conf->max_recipients) {
        /* RFC 5321 4.5.3.1.10 */
        reply(s, 452, "4.5.3", "Too many recipients");
        return;
    }
    const struct pst_user_conf *u = NULL;
    switch (pst_conf_rcpt(s->conf, c->local, c->domain, &u)) {
    case PST_RCPT_NOTLOCAL:
        /* relaying only for authenticated senders: never an open relay */
        if (s->auth_user == NULL) {
            bad_reply(s, 554, "5.7.1", "Relay access denied");
            return;
        }
        if (c->domain[0] == '\0') {
            bad_reply(s, 550, "5.1.1", "User unknown");
            return;
        }
        u = NULL;
        break;
    case PST_RCPT_NOUSER:
        /* an authenticated sender's typo is no attack: not counted
         * against the bad-command limit */
        if (s->auth_user != NULL)
            reply(s, 550, "5.1.1", "User unknown");
        else
            bad_reply(s, 550, "5.1.1", "User unknown");
        return;
    case PST_RCPT_OK:
        break;
    }
    struct pst_envelope_rcpt *r = realloc(s->rcpts, (s->nrcpts + 1) * sizeof(*r));
    if (r == NULL) {
        reply(s, 451, "4.3.0", "Out of memory");
        return;
    }
    s->rcpts = r;
    r = &s->rcpts[s->nrcpts];
    memset(r, 0, sizeof(*r));
    /* <Postmaster> without a domain is delivered as postmaster (RFC 5321 4.5.1) */
    r->addr = strdup(c->domain[0] ? c->path : "postmaster");
    r->user = u != NULL ? strdup(u->name) : NULL; /* NULL: remote delivery */
    r->notify = rp.notify;
    r->orcpt = rp.orcpt[0] ? strdup(rp.orcpt) : NULL;
    if (r->addr == NULL || (u != NULL && r->user == NULL) || (rp.orcpt[0] && r->orcpt == NULL)) {
        free(r->addr);
        free(r->user);
        free(r->orcpt);
        reply(s, 451, "4.3.0", "Out of memory");
        return;
    }
    s->nrcpts++;
    reply(s, 250, "2.1.5", "Ok");
}

static void do_data(struct session *s)
{
    if (s->data_started) {
        /* RFC 3030 2: DATA may not follow BDAT in one transaction */
        bad_reply(s, 503, "5.5.1", "BDAT in progress");
        return;
    }
    if (!s->have_mail) {
        bad_reply(s, 503, "5.5.1", "Need MAIL command");
        return;
    }
    if (s->nrcpts == 0) {
        bad_reply(s, 503, "5.5.1", "Need RCPT command");
        return;
    }
    if (start_message(s) != 0) {
        reply(s, 451, "4.3.0", "Queue write failed, try again later");
        return;
    }
    pst_smtp_data_init(&s->data, PST_SMTP_DATA_DOT,
                       s->conf->bare_eol == PST_BARE_EOL_NORMALIZE ? PST_SMTP_DATA_NORMALIZE : 0);
    reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    s->state = S_DATA;
    set_timeout(s, s->conf->timeout_data);
}

static void do_bdat(struct session *s, const struct pst_smtp_cmd *c)
{
    s->state = S_BDAT;
    s->bdat_left = c->bdat_size;
    s->bdat_chunk = c->bdat_size;
    s->bdat_last = c->bdat_last;
    s->bdat_refuse = 0;
    set_timeout(s, s->conf->timeout_data);
    if (!s->have_mail || s->nrcpts == 0) {
        /* the chunk's octets still follow; consume them, then refuse */
        s->bdat_refuse = 503;
        s->bdat_refuse_enh = "5.5.1";
        s->bdat_refuse_text = s->have_mail ? "Need RCPT command" : "Need MAIL command";
        return;
    }
    if (!s->data_started) {
        if (start_message(s) != 0) {
            s->bdat_refuse = 451;
            s->bdat_refuse_enh = "4.3.0";
            s->bdat_refuse_text = "Queue write failed, try again later";
            return;
        }
        pst_smtp_data_init(&s->data, PST_SMTP_DATA_RAW,
                           s->conf->bare_eol == PST_BARE_EOL_NORMALIZE ? PST_SMTP_DATA_NORMALIZE
                                                                       : 0);
    }
}

static void start_tls(struct session *s, int implicit);

static void do_starttls(struct session *s)
{
    if (s->tls) {
        bad_reply(s, 503, "5.5.1", "TLS already active");
        return;
    }
    if (!s->lc.starttls || s->cr->tls == NULL) {
        reply(s, 454, "4.7.0", "TLS not available");
        return;
    }
    reply(s, 220, "2.0.0", "Ready to start TLS");
    /* RFC 3207 4.2 and CVE-2011-0411: whatever the client pipelined after
     * STARTTLS was sent in plaintext and must not be acted on */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t junk = evbuffer_get_length(in);
    if (junk > 0) {
        log_warn("session %llu %s: discarded %zu bytes pipelined after STARTTLS",
                 (unsigned long long)s->serial, s->ip, junk);
        evbuffer_drain(in, junk);
    }
    /* RFC 3207 4.2: forget everything learned before the handshake */
    reset_transaction(s);
    free(s->helo);
    s->helo = NULL;
    s->helo_seen = 0;
    s->esmtp = 0;
    start_tls(s, 0);
}

/* ---- AUTH (RFC 4954) ---------------------------------------------------- */

struct auth_check {
    struct session *s;
    const struct pstd_confref *cr; /* the session's */
    char user[PST_SASL_MAX_FIELD + 1];
    char pass[PST_SASL_MAX_FIELD + 1];
    size_t pass_len;
    int verdict; /* PST_USERS_* or a negative PST_ERR_* */
    const struct pst_user *found;
};

static void auth_work(void *arg)
{
    struct auth_check *a = arg;
    /* yescrypt: slow on purpose, so on the check pool, never the loop */
    if (a->cr->users == NULL)
        a->verdict = PST_USERS_UNKNOWN;
    else
        a->verdict = pst_users_verify(a->cr->users, a->user, a->pass, a->pass_len, &a->found);
    explicit_bzero(a->pass, sizeof(a->pass));
}

static void auth_done(void *arg)
{
    struct auth_check *a = arg;
    struct session *s = a->s;
    ENTER(s);
    s->busy = 0;
    int64_t now = time(NULL);
    if (s->gone || s->closing) {
        close_when_flushed(s);
    } else if (a->verdict == PST_USERS_OK) {
        s->auth_user = strdup(a->user);
        s->user = a->found;
        if (s->auth_user == NULL) {
            s->user = NULL;
            reply(s, 454, "4.7.0", "Temporary authentication failure");
        } else {
            pst_authlimit_success(s->d->authlimit, s->ip);
            log_info("session %llu %s: authenticated as %s", (unsigned long long)s->serial, s->ip,
                     s->auth_user);
            struct pst_buf *b = pst_buf_new(512);
            if (b != NULL && pst_sasl_reply_add(b, PST_SASL_SUCCESS) == 0)
                send_text(s, pst_buf_data(b), pst_buf_len(b));
            pst_buf_free(b);
        }
    } else {
        enum pst_sasl_result r =
            a->verdict < 0 || a->cr != s->cr ? PST_SASL_TEMPFAIL : PST_SASL_BAD_CREDENTIALS;
        if (r == PST_SASL_BAD_CREDENTIALS) {
            pst_authlimit_fail(s->d->authlimit, s->ip, now);
            /* the name is the client's text: logged, the password never */
            log_warn("session %llu %s: authentication failed for user \"%.64s\"",
                     (unsigned long long)s->serial, s->ip, a->user);
        }
        struct pst_buf *b = pst_buf_new(512);
        if (b != NULL && pst_sasl_reply_add(b, r) == 0)
            send_text(s, pst_buf_data(b), pst_buf_len(b));
        pst_buf_free(b);
        s->bad_cmds++;
    }
    explicit_bzero(a, sizeof(*a));
    free(a);
    if (!s->busy && !s->closing && !s->gone)
        process(s);
    LEAVE(s);
}

/* Acts on what the SASL exchange asks next. */
static void auth_step(struct session *s, const struct pst_sasl_out *out)
{
    if (out->step == PST_SASL_STEP_CHALLENGE) {
        /* "334 " + base64 challenge: pst_smtp_reply cannot write it (sasl.h) */
        char line[64];
        int n = snprintf(line, sizeof(line), "334 %s\r\n", out->challenge);
        send_text(s, line, (size_t)n);
        return;
    }
    if (out->step == PST_SASL_STEP_FAIL) {
        if (pst_sasl_result_counts(out->result))
            pst_authlimit_fail(s->d->authlimit, s->ip, time(NULL));
        struct pst_buf *b = pst_buf_new(512);
        if (b != NULL && pst_sasl_reply_add(b, out->result) == 0)
            send_text(s, pst_buf_data(b), pst_buf_len(b));
        pst_buf_free(b);
        return;
    }
    /* PST_SASL_STEP_VERIFY */
    struct auth_check *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        pst_sasl_clear(&s->sasl);
        reply(s, 454, "4.7.0", "Temporary authentication failure");
        return;
    }
    a->s = s;
    /* the session's own configuration (it outlives the check: a busy
     * session is not freed), so a reload between AUTH and its verdict
     * changes nothing */
    a->cr = s->cr;
    memcpy(a->user, s->sasl.authcid, s->sasl.authcid_len + 1);
    memcpy(a->pass, s->sasl.passwd, s->sasl.passwd_len + 1);
    a->pass_len = s->sasl.passwd_len;
    pst_sasl_clear(&s->sasl);
    s->busy = 1;
    if (pstd_pool_submit(s->d->check_pool, auth_work, auth_done, a) != 0) {
        s->busy = 0;
        explicit_bzero(a, sizeof(*a));
        free(a);
        reply(s, 454, "4.7.0", "Temporary authentication failure");
    }
}

static void do_auth(struct session *s, const struct pst_smtp_cmd *c)
{
    if (!s->lc.submission) {
        bad_reply(s, 502, "5.5.1", "AUTH not available");
        return;
    }
    if (!s->helo_seen) {
        bad_reply(s, 503, "5.5.1", "Send EHLO first");
        return;
    }
    struct pst_sasl_out out;
    memset(&out, 0, sizeof(out));
    out.step = PST_SASL_STEP_FAIL;
    if (s->auth_user != NULL) {
        out.result = PST_SASL_ALREADY_AUTHENTICATED;
    } else if (s->have_mail) {
        out.result = PST_SASL_IN_TRANSACTION;
    } else if (pst_authlimit_check(s->d->authlimit, s->ip, time(NULL)) == PST_ERR_AGAIN) {
        out.result = PST_SASL_RATE_LIMITED;
    } else if (pst_sasl_start(&s->sasl, c->arg, strlen(c->arg), s->tls, &out) != 0) {
        pst_sasl_clear(&s->sasl);
        out.step = PST_SASL_STEP_FAIL;
        out.result = PST_SASL_TEMPFAIL;
    }
    auth_step(s, &out);
}

/* A response line of an AUTH exchange (not an SMTP command). */
static void auth_line(struct session *s, const char *line, size_t len)
{
    struct pst_sasl_out out;
    if (pst_sasl_continue(&s->sasl, line, len, &out) != 0) {
        pst_sasl_clear(&s->sasl);
        reply(s, 454, "4.7.0", "Temporary authentication failure");
        return;
    }
    auth_step(s, &out);
}

static void handle_line(struct session *s, const char *line, size_t len)
{
    struct pst_smtp_cmd c;
    struct pst_smtp_perr why;
    memset(&c, 0, sizeof(c));
    int rc = pst_smtp_cmd_parse(line, len, &c, &why);
    if (rc != 0) {
        if (rc == PST_ERR_NOMEM) {
            reply(s, 451, "4.3.0", "Out of memory");
            return;
        }
        bad_reply(s, why.code, why.enh, "%s", why.msg);
        return;
    }
    log_debug("session %llu %s: %s", (unsigned long long)s->serial, s->ip,
              pst_smtp_verb_name(c.verb));
    switch (c.verb) {
    case PST_SMTP_EHLO:
        do_ehlo(s, &c, 1);
        break;
    case PST_SMTP_HELO:
        do_ehlo(s, &c, 0);
        break;
    case PST_SMTP_MAIL:
        do_mail(s, &c);
        break;
    case PST_SMTP_RCPT:
        do_rcpt(s, &c);
        break;
    case PST_SMTP_DATA:
        do_data(s);
        break;
    case PST_SMTP_BDAT:
        do_bdat(s, &c);
        break;
    case PST_SMTP_RSET:
        reset_transaction(s);
        reply(s, 250, "2.0.0", "Ok");
        break;
    case PST_SMTP_NOOP:
        reply(s, 250, "2.0.0", "Ok");
        break;
    case PST_SMTP_QUIT:
        reply(s, 221, "2.0.0", "Bye");
        session_close(s);
        break;
    case PST_SMTP_HELP:
        reply(s, 214, "2.0.0",
              "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS");
        break;
    case PST_SMTP_VRFY:
        /* RFC 5321 3.5.3: 252, and no disclosure of who exists */
        reply(s, 252, "2.5.0", "Cannot verify the user; send mail to try delivery");
        break;
    case PST_SMTP_EXPN:
        reply(s, 502, "5.5.1", "EXPN not available");
        break;
    case PST_SMTP_STARTTLS:
        do_starttls(s);
        break;
    case PST_SMTP_AUTH:
        do_auth(s, &c);
        break;
    case PST_SMTP_UNKNOWN:
        bad_reply(s, 500, "5.5.2", "Command unrecognized");
        break;
    }
    pst_smtp_cmd_clear(&c);
}

/* Reads and handles command lines, message data and chunks until input
 * runs out or the session has to wait. */
static void process(struct session *s)
{
    while (!s->busy && !s->closing && !s->gone && !s->free_pending) {
        if (s->state == S_STARTTLS || s->state == S_TLS_ACCEPT)
            return;
        struct evbuffer *out = bufferevent_get_output(s->bev);
        if (evbuffer_get_length(out) > OUT_HIGH) {
            /* the client does not read our replies; wait for it */
            s->waiting_output = 1;
            return;
        }
        if (s->state == S_DATA) {
            if (!process_data(s))
                return;
            continue;
        }
        if (s->state == S_BDAT) {
            if (!process_bdat(s))
                return;
            continue;
        }
        struct evbuffer *in = bufferevent_get_input(s->bev);
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        size_t eol_len = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        size_t limit = s->conf->line_length;
        if (eol.pos < 0) {
            if (avail >= limit) {
                /* drop it now so a client cannot make us hold more */
                evbuffer_drain(in, avail);
                if (!s->discard_line) {
                    s->discard_line = 1;
                    if (bad_reply(s, 500, "5.5.2", "Line too long"))
                        return;
                }
            }
            return;
        }
        size_t n = (size_t)eol.pos; /* bytes before the LF */
        if (s->discard_line) {
            evbuffer_drain(in, n + 1);
            s->discard_line = 0;
            continue;
        }
        if (n + 1 > limit) {
            evbuffer_drain(in, n + 1);
            if (s->sasl.state != PST_SASL_IDLE) {
                auth_line(s, NULL, (size_t)-1); /* 500 5.5.6 */
                continue;
            }
            if (bad_reply(s, 500, "5.5.2", "Line too long"))
                return;
            continue;
        }
        char line[n + 1];
        evbuffer_remove(in, line, n + 1);
        if (n == 0 || line[n - 1] != '\r') {
            /* RFC 5321 2.3.8: lines end in CRLF */
            if (s->sasl.state != PST_SASL_IDLE)
                pst_sasl_clear(&s->sasl);
            if (bad_reply(s, 500, "5.5.2", "Bare LF in command line"))
                return;
            continue;
        }
        if (s->sasl.state != PST_SASL_IDLE)
            auth_line(s, line, n - 1);
        else
            handle_line(s, line, n - 1);
        explicit_bzero(line, n + 1); /* it may have carried a password */
    }
}

/* ---- events ----------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    (void)bev;
    ENTER(s);
    process(s);
    LEAVE(s);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    (void)bev;
    ENTER(s);
    if (s->closing) {
        close_when_flushed(s);
    } else if (s->waiting_output) {
        s->waiting_output = 0;
        process(s);
    }
    LEAVE(s);
}

static void greet(struct session *s)
{
    if (s->d->stopping) {
        reply(s, 421, "4.3.2", "%s Service shutting down", s->conf->hostname);
        session_close(s);
        return;
    }
    reply(s, 220, NULL, "%s ESMTP postern", s->conf->hostname);
}

static void on_event_body(struct session *s, short what);

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct session *s = arg;
    (void)bev;
    ENTER(s);
    on_event_body(s, what);
    LEAVE(s);
}

static void on_event_body(struct session *s, short what)
{
    if (what & BEV_EVENT_CONNECTED) {
        /* a TLS handshake finished */
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
        pst_tls_describe(ssl, s->tls_desc, sizeof(s->tls_desc));
        s->tls = 1;
        log_info("session %llu %s: TLS established: %s", (unsigned long long)s->serial, s->ip,
                 s->tls_desc);
        int implicit = s->state == S_TLS_ACCEPT;
        s->state = S_CMD;
        set_timeout(s, s->conf->timeout_command);
        if (implicit)
            greet(s);
        process(s);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (s->state == S_TLS_ACCEPT || s->state == S_STARTTLS) {
            log_info("session %llu %s: TLS handshake timed out", (unsigned long long)s->serial,
                     s->ip);
            s->gone = 1;
        } else {
            log_info("session %llu %s: timeout", (unsigned long long)s->serial, s->ip);
            reply(s, 421, "4.4.2", "%s Timeout, closing connection", s->conf->hostname);
            if (!s->closing) {
                session_close(s);
                return;
            }
            s->gone = 1; /* the write timed out too: give up */
        }
    } else if (what & BEV_EVENT_ERROR) {
        unsigned long e;
        char buf[160] = "";
        while ((e = bufferevent_get_openssl_error(s->bev)) != 0)
            ERR_error_string_n(e, buf, sizeof(buf));
        if (buf[0])
            log_info("session %llu %s: TLS error: %s", (unsigned long long)s->serial, s->ip, buf);
        else if (EVUTIL_SOCKET_ERROR() == 0)
            log_info("session %llu %s: connection closed by the client%s",
                     (unsigned long long)s->serial, s->ip, s->tls ? " (no TLS close_notify)" : "");
        else
            log_info("session %llu %s: connection error: %s", (unsigned long long)s->serial, s->ip,
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        s->gone = 1;
    } else if (what & BEV_EVENT_EOF) {
        if (!s->closing)
            log_info("session %llu %s: client disconnected%s", (unsigned long long)s->serial, s->ip,
                     s->have_mail ? " in a transaction" : "");
        s->gone = 1;
    }
    if (s->gone) {
        if (s->busy)
            return; /* commit_done frees */
        session_free(s);
    }
}

static void start_tls(struct session *s, int implicit)
{
    SSL *ssl = SSL_new(s->cr->tls);
    if (ssl == NULL) {
        log_err("session %llu: SSL_new failed", (unsigned long long)s->serial);
        s->gone = 1;
        session_close(s);
        return;
    }
    struct bufferevent *tb;
    if (implicit) {
        tb = bufferevent_openssl_socket_new(s->d->base, bufferevent_getfd(s->bev), ssl,
                                            BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
        if (tb != NULL) {
            /* the plain bufferevent only carried the fd */
            bufferevent_setfd(s->bev, -1);
            bufferevent_free(s->bev);
        }
        s->state = S_TLS_ACCEPT;
    } else {
        tb = bufferevent_openssl_filter_new(s->d->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
        s->state = S_STARTTLS;
    }
    if (tb == NULL) {
        SSL_free(ssl);
        log_err("session %llu: cannot start TLS", (unsigned long long)s->serial);
        s->gone = 1;
        session_close(s);
        return;
    }
    s->bev = tb;
    bufferevent_setcb(tb, on_read, on_write, on_event, s);
    bufferevent_setwatermark(tb, EV_READ, 0, IN_HIGH);
    set_timeout(s, s->conf->timeout_tls);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
}

/* ---- life cycle ------------------------------------------------------- */

struct session *session_new(struct pstd *d, int fd, const struct pst_listener_conf *lc,
                            const char *ip, int port, const char *local_user)
{
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->d = d;
    s->cr = pstd_conf_get(d);
    s->conf = s->cr->conf;
    s->serial = ++d->next_session;
    snprintf(s->ip, sizeof(s->ip), "%s", ip);
    s->port = port;
    s->lc = *lc;
    s->lc.address = NULL;
    s->lc.path = NULL;
    if (local_user != NULL) {
        /* a local submission: the uid said who this is (server.c) */
        s->auth_user = strdup(local_user);
        if (s->auth_user == NULL) {
            close(fd);
            pstd_conf_put(d, s->cr);
            free(s);
            return NULL;
        }
    }
    s->spool_fd = -1;
    s->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->close_ev = event_new(d->base, -1, 0, on_close_ev, s);
    if (s->bev == NULL || s->close_ev == NULL) {
        if (s->bev != NULL)
            bufferevent_free(s->bev);
        else
            close(fd);
        if (s->close_ev != NULL)
            event_free(s->close_ev);
        pstd_conf_put(d, s->cr);
        free(s);
        return NULL;
    }
    s->next = d->sessions;
    if (d->sessions)
        d->sessions->prev = s;
    d->sessions = s;
    d->nsessions++;
    pstd_iptab_add(d, s->ip);
    log_info("session %llu %s: connect from [%s]:%d to port %d%s", (unsigned long long)s->serial,
             s->ip, s->ip, port, lc->port, lc->mode == PST_LISTEN_TLS ? " (TLS)" : "");
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, IN_HIGH);
    if (lc->mode == PST_LISTEN_TLS) {
        if (s->cr->tls == NULL) {
            log_err("session %llu: TLS listener without a certificate",
                    (unsigned long long)s->serial);
            s->gone = 1;
            session_free(s);
            return NULL;
        }
        start_tls(s, 1);
        return s;
    }
    s->state = S_CMD;
    set_timeout(s, s->conf->timeout_command);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    greet(s);
    return s;
}

struct session *session_next(struct session *s)
{
    return s->next;
}

void session_shutdown(struct session *s)
{
    if (s->closing || s->busy)
        return;
    reply(s, 421, "4.3.2", "%s Service shutting down", s->conf->hostname);
    session_close(s);
}

static void session_free(struct session *s)
{
    if (s->depth > 0) {
        s->free_pending = 1;
        if (s->bev != NULL)
            bufferevent_disable(s->bev, EV_READ | EV_WRITE);
        return;
    }
    session_release(s);
}

static void session_release(struct session *s)
{
    struct pstd *d = s->d;
    log_info("session %llu %s: disconnect, %u message%s", (unsigned long long)s->serial, s->ip,
             s->messages, s->messages == 1 ? "" : "s");
    reset_transaction(s);
    free(s->helo);
    free(s->auth_user);
    pst_sasl_clear(&s->sasl);
    if (s->under_cb != NULL) {
        struct bufferevent *under = bufferevent_get_underlying(s->bev);
        if (under != NULL)
            evbuffer_remove_cb_entry(bufferevent_get_output(under), s->under_cb);
    }
    if (s->close_ev)
        event_free(s->close_ev);
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->prev)
        s->prev->next = s->next;
    else
        d->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    d->nsessions--;
    pstd_iptab_del(d, s->ip);
    pstd_conf_put(d, s->cr);
    free(s);
    pstd_session_gone(d);
}
