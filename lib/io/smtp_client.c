/*
 * smtp_client.c - the blocking SMTP client driver: sockets, poll()
 * timeouts (RFC 5321 4.5.3.2), STARTTLS (RFC 3207) and implicit TLS
 * (RFC 8314) with OpenSSL, the message streamed from a file through the
 * dot-stuffer. The protocol itself is lib/core/smtpc.
 *
 * Certificates are verified but, unless tls_verify is set, a failure is
 * only recorded (opportunistic TLS, RFC 7435): the handshake runs with
 * SSL_VERIFY_NONE and the chain and name result is read afterwards with
 * SSL_get_verify_result (the name through SSL_set1_host, RFC 6125).
 */
#include "smtp_client.h"
#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define CHUNK 65536
/* room for the engine's commands of one pipelined group (smtpc.c) */
#define OUT_EXTRA(n) (16384 + (size_t)(n)*1600)

struct conn {
    int fd;
    SSL *ssl;
    SSL_CTX *ctx;
    int ctx_owned;
};

const char *pst_tls_failure_name(enum pst_tls_failure f)
{
    switch (f) {
    case PST_TLS_FAIL_NONE:
        return "";
    case PST_TLS_FAIL_STARTTLS_NOT_SUPPORTED:
        return "starttls-not-supported";
    case PST_TLS_FAIL_CERT_HOST_MISMATCH:
        return "certificate-host-mismatch";
    case PST_TLS_FAIL_CERT_EXPIRED:
        return "certificate-expired";
    case PST_TLS_FAIL_CERT_NOT_TRUSTED:
        return "certificate-not-trusted";
    case PST_TLS_FAIL_VALIDATION:
        return "validation-failure";
    }
    return "";
}

/* ---- time ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline)
{
    int64_t l = deadline - now_ms();
    if (l < 0)
        return 0;
    return l > 1000000000 ? 1000000000 : (int)l;
}

/* Waits for fd to be readable (POLLIN) or writable; 1 ready, 0 timeout,
 * -1 error. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = ev};
        int rc = poll(&p, 1, left_ms(deadline));
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* ---- SIGPIPE --------------------------------------------------------------- */

/* OpenSSL writes with write(2), which raises SIGPIPE on a closed peer:
 * block it in this thread and swallow a pending one afterwards. */
struct sigpipe {
    sigset_t old;
    int was_pending;
};

static void sigpipe_block(struct sigpipe *s)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pend);
    s->was_pending = sigismember(&pend, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &s->old);
}

static void sigpipe_restore(struct sigpipe *s)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pend);
    if (!s->was_pending && sigismember(&pend, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &s->old, NULL);
}

/* ---- reading and writing -------------------------------------------------- */

static void ssl_error_text(char *why, size_t whylen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[200];
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "%s", errno != 0 ? strerror(errno) : "connection closed");
    ERR_clear_error();
    snprintf(why, whylen, "%s: %s", what, buf);
}

/* Writes all of data before the deadline. 0, or -1 with why. */
static int write_all(struct conn *c, const char *data, size_t len, int64_t deadline, char *why,
                     size_t whylen)
{
    size_t off = 0;
    struct sigpipe sp;
    sigpipe_block(&sp);
    int rc = 0;
    while (off < len) {
        short ev = POLLOUT;
        if (c->ssl != NULL) {
            ERR_clear_error();
            size_t w = 0;
            errno = 0;
            if (SSL_write_ex(c->ssl, data + off, len - off, &w) == 1) {
                off += w;
                continue;
            }
            int err = SSL_get_error(c->ssl, 0);
            if (err == SSL_ERROR_WANT_READ)
                ev = POLLIN;
            else if (err != SSL_ERROR_WANT_WRITE) {
                ssl_error_text(why, whylen, "TLS write failed");
                rc = -1;
                break;
            }
        } else {
            ssize_t w = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
            if (w > 0) {
                off += (size_t)w;
                continue;
            }
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                snprintf(why, whylen, "write failed: %s", strerror(errno));
                rc = -1;
                break;
            }
        }
        int r = wait_fd(c->fd, ev, deadline);
        if (r <= 0) {
            snprintf(why, whylen, r == 0 ? "timeout while writing" : "poll failed: %s",
                     strerror(errno));
            rc = -1;
            break;
        }
    }
    sigpipe_restore(&sp);
    return rc;
}

/* Reads some bytes. >0 bytes, 0 EOF, -1 error (why), -2 timeout; with
 * deadline < 0, -3 when nothing is there right now. */
static ssize_t read_some(struct conn *c, char *buf, size_t cap, int64_t deadline, char *why,
                         size_t whylen)
{
    for (;;) {
        short ev = POLLIN;
        if (c->ssl != NULL) {
            ERR_clear_error();
            size_t n = 0;
            errno = 0;
            if (SSL_read_ex(c->ssl, buf, cap, &n) == 1)
                return (ssize_t)n;
            int err = SSL_get_error(c->ssl, 0);
            if (err == SSL_ERROR_ZERO_RETURN)
                return 0;
            if (err == SSL_ERROR_WANT_WRITE)
                ev = POLLOUT;
            else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)
                return 0; /* EOF without close_notify: the peer closed */
            else if (err != SSL_ERROR_WANT_READ) {
                ssl_error_text(why, whylen, "TLS read failed");
                return -1;
            }
        } else {
            ssize_t n = recv(c->fd, buf, cap, MSG_DONTWAIT);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                snprintf(why, whylen, "read failed: %s", strerror(errno));
                return -1;
            }
        }
        if (deadline < 0)
            return -3;
        int r = wait_fd(c->fd, ev, deadline);
        if (r == 0)
            return -2;
        if (r < 0) {
            snprintf(why, whylen, "poll failed: %s", strerror(errno));
            return -1;
        }
    }
}

/* ---- connecting ------------------------------------------------------------- */

static int do_connect(const struct pst_smtp_client_opts *o, int64_t deadline, char *peer,
                      size_t peerlen, char *why, size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    uint16_t port = o->port ? o->port : 25;
    if (o->unix_path != NULL) {
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        size_t n = strlen(o->unix_path);
        if (n >= sizeof(su->sun_path)) {
            snprintf(why, whylen, "unix socket path too long");
            return -1;
        }
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, o->unix_path, n + 1);
        sl = sizeof(*su);
        snprintf(peer, peerlen, "%s", o->unix_path);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, o->host, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            s4->sin_port = htons(port);
            sl = sizeof(*s4);
            snprintf(peer, peerlen, "%s:%u", o->host, port);
        } else if (inet_pton(AF_INET6, o->host, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(port);
            sl = sizeof(*s6);
            snprintf(peer, peerlen, "[%s]:%u", o->host, port);
        } else {
            snprintf(why, whylen, "not an IP address: %s", o->host);
            return -1;
        }
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (ss.ss_family != AF_UNIX) {
        /* each command (and the final ".") is written whole: without
         * TCP_NODELAY the kernel holds a short write back until the peer
         * acknowledges the previous one, and a peer that has nothing to
         * send delays that acknowledgement (~40 ms a message) */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            snprintf(why, whylen, "connect to %s: %s", peer, strerror(errno));
            close(fd);
            return -1;
        }
        int r = wait_fd(fd, POLLOUT, deadline);
        int soerr = 0;
        socklen_t el = sizeof(soerr);
        if (r == 0) {
            snprintf(why, whylen, "connect to %s: timed out", peer);
            close(fd);
            return -1;
        }
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) != 0 || soerr != 0) {
            snprintf(why, whylen, "connect to %s: %s", peer, strerror(soerr ? soerr : errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* ---- TLS ---------------------------------------------------------------------- */

static enum pst_tls_failure verify_failure(long v)
{
    switch (v) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return PST_TLS_FAIL_CERT_HOST_MISMATCH;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return PST_TLS_FAIL_CERT_EXPIRED;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return PST_TLS_FAIL_CERT_NOT_TRUSTED;
    default:
        return PST_TLS_FAIL_VALIDATION;
    }
}

static SSL_CTX *client_ctx(const char *ca_file, char *why, size_t whylen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        ssl_error_text(why, whylen, "TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); /* RFC 8996 */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                             : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        ssl_error_text(why, whylen, ca_file != NULL ? "loading CA file" : "loading system CAs");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int pst_smtp_client_ctx(const char *ca_file, struct ssl_ctx_st **out, char *err, size_t errlen)
{
    SSL_CTX *ctx = client_ctx(ca_file, err, errlen);
    if (ctx == NULL)
        return PST_ERR_CRYPTO;
    *out = ctx;
    return 0;
}

/* The handshake on c->fd. 0, or -1 with why and tls->handshake_failed. */
static int tls_start(struct conn *c, const struct pst_smtp_client_opts *o, int64_t deadline,
                     struct pst_smtp_client_tls *t, char *why, size_t whylen)
{
    if (c->ctx == NULL && o->ssl_ctx != NULL) {
        c->ctx = o->ssl_ctx;
    } else if (c->ctx == NULL) {
        c->ctx = client_ctx(o->ca_file, why, whylen);
        if (c->ctx == NULL)
            return -1;
        c->ctx_owned = 1;
    }
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        ssl_error_text(why, whylen, "TLS session");
        return -1;
    }
    if (o->mx_name != NULL) {
        struct in6_addr a;
        int literal =
            inet_pton(AF_INET, o->mx_name, &a) == 1 || inet_pton(AF_INET6, o->mx_name, &a) == 1;
        /* RFC 6066 3: SNI carries host names, never address literals */
        if (!literal)
            SSL_set_tlsext_host_name(c->ssl, o->mx_name);
        int hostok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), o->mx_name)
                             : SSL_set1_host(c->ssl, o->mx_name);
        if (hostok != 1) {
            ssl_error_text(why, whylen, "setting the name to verify");
            return -1;
        }
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    struct sigpipe sp;
    sigpipe_block(&sp);
    int rc = 0;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_connect(c->ssl);
        if (r == 1)
            break;
        int err = SSL_get_error(c->ssl, r);
        short ev;
        if (err == SSL_ERROR_WANT_READ)
            ev = POLLIN;
        else if (err == SSL_ERROR_WANT_WRITE)
            ev = POLLOUT;
        else {
            ssl_error_text(why, whylen, "TLS handshake");
            if (ERR_peek_error() == 0 && err == SSL_ERROR_SYSCALL && errno == 0)
                snprintf(why, whylen, "TLS handshake: connection closed by the server");
            rc = -1;
            break;
        }
        int w = wait_fd(c->fd, ev, deadline);
        if (w <= 0) {
            snprintf(why, whylen, w == 0 ? "TLS handshake: timeout" : "poll failed: %s",
                     strerror(errno));
            rc = -1;
            break;
        }
    }
    sigpipe_restore(&sp);
    if (rc != 0) {
        t->handshake_failed = 1;
        t->failure = PST_TLS_FAIL_VALIDATION;
        snprintf(t->verify_error, sizeof(t->verify_error), "%s", why);
        return -1;
    }
    t->used = 1;
    snprintf(t->version, sizeof(t->version), "%s", SSL_get_version(c->ssl));
    const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
    snprintf(t->cipher, sizeof(t->cipher), "%s", ci != NULL ? SSL_CIPHER_get_name(ci) : "");
    X509 *peer = SSL_get1_peer_certificate(c->ssl);
    long v = SSL_get_verify_result(c->ssl);
    if (peer == NULL) {
        t->verified = 0;
        t->failure = PST_TLS_FAIL_VALIDATION;
        snprintf(t->verify_error, sizeof(t->verify_error), "no server certificate");
    } else if (v != X509_V_OK) {
        t->verified = 0;
        t->failure = verify_failure(v);
        snprintf(t->verify_error, sizeof(t->verify_error), "%s", X509_verify_cert_error_string(v));
    } else {
        t->verified = 1;
    }
    X509_free(peer);
    if (!t->verified && o->tls_verify) {
        snprintf(why, whylen, "certificate not verified: %s", t->verify_error);
        return -1;
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->ssl != NULL) {
        struct sigpipe sp;
        sigpipe_block(&sp);
        /* one close_notify, without waiting for the peer's */
        SSL_shutdown(c->ssl);
        sigpipe_restore(&sp);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->ctx_owned)
        SSL_CTX_free(c->ctx);
    c->ctx = NULL;
    ERR_clear_error();
}

/* ---- the session ------------------------------------------------------------- */

static unsigned dflt(unsigned v, unsigned d)
{
    return v != 0 ? v : d;
}

static unsigned stage_timeout(const struct pst_smtp_client_timeouts *t, enum pst_smtpc_stage s)
{
    switch (s) {
    case PST_SMTPC_STAGE_GREETING:
        return dflt(t->greeting, 300000);
    case PST_SMTPC_STAGE_MAIL:
        return dflt(t->mail, 300000);
    case PST_SMTPC_STAGE_RCPT:
        return dflt(t->rcpt, 300000);
    case PST_SMTPC_STAGE_DATA:
        return dflt(t->data_init, 120000);
    case PST_SMTPC_STAGE_DATA_BLOCK:
        return dflt(t->data_block, 180000);
    case PST_SMTPC_STAGE_DOT:
        return dflt(t->dot, 600000);
    case PST_SMTPC_STAGE_TLS:
        return dflt(t->tls, 60000);
    case PST_SMTPC_STAGE_QUIT:
        return dflt(t->quit, 30000);
    default:
        return dflt(t->command, 300000);
    }
}

/* Feeds what the server already sent, without waiting. 0, or -1 when the
 * session ended (EOF, error). */
static int drain(struct conn *c, struct pst_smtpc *e, char *buf, size_t cap)
{
    char why[PST_SMTPC_WHY_MAX];
    for (int i = 0; i < 64 && pst_smtpc_event(e) != PST_SMTPC_EV_DONE; i++) {
        ssize_t n = read_some(c, buf, cap, -1, why, sizeof(why));
        if (n == -3)
            return 0;
        if (n == 0) {
            pst_smtpc_eof(e);
            return -1;
        }
        if (n < 0) {
            pst_smtpc_fail(e, "4.4.2", why);
            return -1;
        }
        if (pst_smtpc_input(e, buf, (size_t)n) != 0)
            return -1;
    }
    return 0;
}

/* Streams the message: pread from offset 0, dot-stuffed, then ".". */
static int send_body(struct conn *c, struct pst_smtpc *e, int fd, unsigned tmo, char *buf,
                     struct pst_buf *w, char *why, size_t whylen)
{
    struct pst_smtpc_dot d;
    pst_smtpc_dot_init(&d);
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whylen, "reading the message: %s", strerror(errno));
            return -2;
        }
        pst_buf_reset(w);
        int rc = n > 0 ? pst_smtpc_data_encode(&d, buf, (size_t)n, w) : pst_smtpc_data_end(&d, w);
        if (rc != 0) {
            snprintf(why, whylen, "encoding the message: %s", pst_strerror(rc));
            return -2;
        }
        if (write_all(c, pst_buf_data(w), pst_buf_len(w), now_ms() + tmo, why, whylen) != 0)
            return -1;
        if (n == 0)
            return 0;
        off += n;
    }
}

static char *dupstr(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static int fill_result(struct pst_smtpc *e, size_t nrcpts, struct pst_smtp_client_result *res)
{
    struct pst_smtpc_outcome o;
    pst_smtpc_session(e, &o);
    res->status = o.status;
    res->code = o.code;
    memcpy(res->enh, o.enh, sizeof(res->enh));
    res->text = dupstr(o.text);
    res->stage = o.stage;
    res->from_server = o.from_server;
    res->ext = *pst_smtpc_extensions(e);
    struct pst_smtpc_info info;
    pst_smtpc_info(e, &info);
    res->auth = info.auth;
    res->discarded = info.discarded;
    res->rcpts = calloc(nrcpts, sizeof(*res->rcpts));
    if (res->text == NULL || res->rcpts == NULL)
        return PST_ERR_NOMEM;
    res->nrcpts = nrcpts;
    for (size_t i = 0; i < nrcpts; i++) {
        pst_smtpc_rcpt_outcome(e, i, &o);
        struct pst_smtp_client_rcpt_result *r = &res->rcpts[i];
        r->status = o.status;
        r->code = o.code;
        memcpy(r->enh, o.enh, sizeof(r->enh));
        r->text = dupstr(o.text);
        r->stage = o.stage;
        if (r->text == NULL)
            return PST_ERR_NOMEM;
    }
    /* connection, greeting, EHLO, TLS, timeouts and protocol errors are
     * about this host; a refusal of the message is not */
    if (res->status != PST_SMTPC_OK &&
        (res->stage <= PST_SMTPC_STAGE_TLS ||
         (!res->from_server && res->stage != PST_SMTPC_STAGE_BEFORE_MAIL)))
        res->host_failure = 1;
    return 0;
}

/* A result for a session that never ran (connect failure). */
static int local_result(struct pst_smtp_client_result *res, size_t nrcpts, const char *enh,
                        enum pst_smtpc_stage stage, const char *why)
{
    res->status = PST_SMTPC_TEMP;
    snprintf(res->enh, sizeof(res->enh), "%s", enh);
    res->stage = stage;
    res->text = dupstr(why);
    res->host_failure = 1;
    res->rcpts = calloc(nrcpts, sizeof(*res->rcpts));
    if (res->text == NULL || res->rcpts == NULL)
        return PST_ERR_NOMEM;
    res->nrcpts = nrcpts;
    for (size_t i = 0; i < nrcpts; i++) {
        res->rcpts[i].status = PST_SMTPC_TEMP;
        memcpy(res->rcpts[i].enh, res->enh, sizeof(res->enh));
        res->rcpts[i].stage = stage;
        res->rcpts[i].text = dupstr(why);
        if (res->rcpts[i].text == NULL)
            return PST_ERR_NOMEM;
    }
    return 0;
}

void pst_smtp_client_result_free(struct pst_smtp_client_result *res)
{
    if (res == NULL)
        return;
    free(res->text);
    if (res->rcpts != NULL)
        for (size_t i = 0; i < res->nrcpts; i++)
            free(res->rcpts[i].text);
    free(res->rcpts);
    memset(res, 0, sizeof(*res));
}

int pst_smtp_client_deliver(const struct pst_smtp_client_opts *o,
                            const struct pst_smtp_client_msg *m, int msg_fd,
                            struct pst_smtp_client_result *out)
{
    if (o == NULL || m == NULL || out == NULL || (o->host == NULL) == (o->unix_path == NULL))
        return PST_ERR_INVAL;
    struct stat st;
    if (msg_fd < 0 || fstat(msg_fd, &st) != 0 || !S_ISREG(st.st_mode))
        return PST_ERR_INVAL;
    struct pst_smtpc_config cfg = {0};
    cfg.ehlo_name = o->ehlo_name;
    cfg.sender = m->sender;
    cfg.rcpts = m->rcpts;
    cfg.nrcpts = m->nrcpts;
    cfg.size = (uint64_t)st.st_size;
    cfg.body_8bit = m->body_8bit;
    cfg.smtputf8 = m->smtputf8;
    cfg.dsn_ret = m->dsn_ret;
    cfg.dsn_envid = m->dsn_envid;
    cfg.tls = o->implicit_tls ? PST_SMTPC_TLS_REQUIRED : o->tls;
    cfg.tls_active = o->implicit_tls;
    cfg.auth_user = o->auth_user;
    cfg.auth_pass = o->auth_pass;
    cfg.auth_plaintext_ok = o->auth_plaintext_ok;
    struct pst_smtpc *e = NULL;
    int rc = pst_smtpc_new(&cfg, &e);
    if (rc != 0)
        return rc;
    struct pst_smtp_client_result res;
    memset(&res, 0, sizeof(res));
    char *buf = malloc(CHUNK);
    struct pst_buf *w = pst_buf_new_secret(2 * CHUNK + 64 + OUT_EXTRA(m->nrcpts));
    if (buf == NULL || w == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    char why[PST_SMTPC_WHY_MAX] = "";
    struct conn c = {.fd = -1};
    const struct pst_smtp_client_timeouts *t = &o->timeouts;

    c.fd = do_connect(o, now_ms() + dflt(t->connect, 30000), res.peer, sizeof(res.peer), why,
                      sizeof(why));
    if (c.fd < 0) {
        rc = local_result(&res, m->nrcpts, "4.4.1", PST_SMTPC_STAGE_CONNECT, why);
        goto out;
    }
    if (o->implicit_tls && tls_start(&c, o, now_ms() + stage_timeout(t, PST_SMTPC_STAGE_TLS),
                                     &res.tls, why, sizeof(why)) != 0) {
        conn_close(&c);
        rc = local_result(&res, m->nrcpts, "4.7.5", PST_SMTPC_STAGE_TLS, why);
        goto out;
    }

    size_t replies = (size_t)-1;
    enum pst_smtpc_stage stage = PST_SMTPC_STAGE_CONNECT;
    int64_t deadline = 0;
    for (;;) {
        /* a reply to a command not yet sent is a protocol error */
        if (pst_smtpc_output_len(e) > 0 && drain(&c, e, buf, CHUNK) != 0)
            break;
        pst_buf_reset(w);
        if (pst_smtpc_output(e, w) != 0) {
            pst_smtpc_fail(e, "4.3.0", "output buffer");
            break;
        }
        if (pst_buf_len(w) > 0) {
            unsigned tmo = stage_timeout(t, pst_smtpc_wait_stage(e));
            if (write_all(&c, pst_buf_data(w), pst_buf_len(w), now_ms() + tmo, why, sizeof(why)) !=
                0) {
                pst_smtpc_fail(e, "4.4.2", why);
                break;
            }
            replies = (size_t)-1; /* restart the reply timer */
        }
        pst_buf_reset(w);
        enum pst_smtpc_event ev = pst_smtpc_event(e);
        if (ev == PST_SMTPC_EV_DONE)
            break;
        if (ev == PST_SMTPC_EV_NEED_TLS) {
            /* RFC 3207 4.2: plaintext already here after the 220 is
             * dropped (the engine counts it), so the handshake starts on
             * what the server sends after our ClientHello */
            drain(&c, e, buf, CHUNK);
            if (pst_smtpc_event(e) == PST_SMTPC_EV_DONE)
                break;
            if (tls_start(&c, o, now_ms() + stage_timeout(t, PST_SMTPC_STAGE_TLS), &res.tls, why,
                          sizeof(why)) != 0) {
                if (res.tls.handshake_failed && o->tls == PST_SMTPC_TLS_OPPORTUNISTIC)
                    res.retry_plaintext = 1;
                pst_smtpc_tls_done(e, 0, why);
                break;
            }
            pst_smtpc_tls_done(e, 1, NULL);
            continue;
        }
        if (ev == PST_SMTPC_EV_NEED_DATA) {
            int r = send_body(&c, e, msg_fd, stage_timeout(t, PST_SMTPC_STAGE_DATA_BLOCK), buf, w,
                              why, sizeof(why));
            if (r != 0) {
                pst_smtpc_fail(e, r == -2 ? "4.3.0" : "4.4.2", why);
                break;
            }
            pst_smtpc_data_sent(e);
            replies = (size_t)-1;
            continue;
        }
        /* a reply is due: its own deadline, restarted by every reply */
        struct pst_smtpc_info info;
        pst_smtpc_info(e, &info);
        enum pst_smtpc_stage s = pst_smtpc_wait_stage(e);
        if (info.replies != replies || s != stage) {
            replies = info.replies;
            stage = s;
            deadline = now_ms() + stage_timeout(t, s);
        }
        ssize_t n = read_some(&c, buf, CHUNK, deadline, why, sizeof(why));
        if (n == 0) {
            pst_smtpc_eof(e);
        } else if (n == -2) {
            unsigned ms = stage_timeout(t, s);
            snprintf(why, sizeof(why), "timeout (%u %s) waiting for the reply %s",
                     ms % 1000 == 0 ? ms / 1000 : ms, ms % 1000 == 0 ? "s" : "ms",
                     pst_smtpc_stage_name(s));
            pst_smtpc_fail(e, "4.4.2", why);
        } else if (n < 0) {
            pst_smtpc_fail(e, "4.4.2", why);
        } else if (pst_smtpc_input(e, buf, (size_t)n) != 0) {
            pst_smtpc_fail(e, "4.3.0", "out of memory");
        }
    }
    conn_close(&c);
    if (res.tls.failure == PST_TLS_FAIL_NONE) {
        struct pst_smtpc_info info;
        pst_smtpc_info(e, &info);
        if (info.tls_not_offered && !res.tls.used)
            res.tls.failure = PST_TLS_FAIL_STARTTLS_NOT_SUPPORTED;
    }
    rc = fill_result(e, m->nrcpts, &res);
out:
    if (rc == 0) {
        *out = res;
    } else {
        pst_smtp_client_result_free(&res);
    }
    free(buf);
    pst_buf_free(w);
    pst_smtpc_free(e);
    return rc;
}
