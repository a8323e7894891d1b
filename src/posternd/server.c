/*
 * server.c - listeners, connection limits, signals, configuration swaps
 * and the orderly shutdown of posternd.
 *
 *   SIGTERM/SIGINT: stop accepting; sessions get shutdown_grace seconds to
 *     finish; then each is told 421 4.3.2 and closed; pending commits and
 *     deliveries finish; exit 0.
 *   SIGHUP: load the configuration file and certificate again; on success
 *     new sessions use them while open ones keep the old (reference
 *     counted); on failure the reason is logged and the old stay. Listener
 *     changes need a restart (logged).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "smtp_client.h"
#include "tls.h"
#include "users.h"
#include "worker.h"

static pthread_mutex_t conf_mu = PTHREAD_MUTEX_INITIALIZER;

struct pstd_confref *pstd_conf_get(struct pstd *d)
{
    pthread_mutex_lock(&conf_mu);
    struct pstd_confref *r = d->cur;
    r->refs++;
    pthread_mutex_unlock(&conf_mu);
    return r;
}

static void confref_free(struct pstd_confref *r)
{
    pst_users_free(r->users);
    SSL_CTX_free(r->client_tls);
    pstd_signers_free(r->signers);
    pst_conf_free(r->conf);
    SSL_CTX_free(r->tls);
    free(r);
}

void pstd_conf_put(struct pstd *d, struct pstd_confref *r)
{
    (void)d;
    pthread_mutex_lock(&conf_mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&conf_mu);
    if (last)
        confref_free(r);
}

struct pstd_confref *pstd_confref_make(struct pst_conf *conf, char *err, size_t errlen)
{
    struct pstd_confref *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (conf->tls_cert != NULL && conf->tls_key != NULL) {
        if (conf->tls_generate && access(conf->tls_cert, F_OK) != 0 &&
            access(conf->tls_key, F_OK) != 0) {
            if (pstd_mkdirs_for(conf->tls_cert) != 0 || pstd_mkdirs_for(conf->tls_key) != 0 ||
                pst_tls_make_selfsigned(conf->tls_cert, conf->tls_key, conf->hostname, 365, err,
                                        errlen) != 0) {
                if (err[0] == '\0')
                    snprintf(err, errlen, "cannot create %s: %s", conf->tls_cert, strerror(errno));
                free(r);
                return NULL;
            }
            log_info("made a self-signed certificate for %s in %s", conf->hostname, conf->tls_cert);
        }
        if (pst_tls_server_ctx(conf->tls_cert, conf->tls_key, &r->tls, err, errlen) != 0) {
            free(r);
            return NULL;
        }
    }
    if (pstd_signers_load(conf, &r->signers, err, errlen) != 0) {
        SSL_CTX_free(r->tls);
        free(r);
        return NULL;
    }
    /* the client context of remote delivery: the CA store is read once per
     * configuration, not once per connection */
    if (pst_smtp_client_ctx(conf->out_ca_file, &r->client_tls, err, errlen) != 0) {
        pstd_signers_free(r->signers);
        SSL_CTX_free(r->tls);
        free(r);
        return NULL;
    }
    if (conf->has_submission) {
        /* AUTH needs the users (postern user add); a file that does not
         * load refuses the configuration, as a bad key does */
        int rc = pst_users_load(conf->users_file, &r->users, err, errlen);
        if (rc != 0 && rc != PST_ERR_NOTFOUND) {
            SSL_CTX_free(r->client_tls);
            pstd_signers_free(r->signers);
            SSL_CTX_free(r->tls);
            free(r);
            return NULL;
        }
        if (rc == PST_ERR_NOTFOUND) {
            r->users = NULL;
            log_warn("submission: no users file %s yet; AUTH refuses everyone until "
                     "`postern user add` makes one (and SIGHUP)",
                     conf->users_file);
            err[0] = '\0';
        } else {
            log_info("submission: %zu user%s in %s", pst_users_count(r->users),
                     pst_users_count(r->users) == 1 ? "" : "s", conf->users_file);
        }
    }
    if (conf->ndkim_keys > 0)
        log_info("dkim: %zu signing key%s for %zu domain%s loaded", conf->ndkim_keys,
                 conf->ndkim_keys == 1 ? "" : "s", pstd_signers_count(r->signers),
                 pstd_signers_count(r->signers) == 1 ? "" : "s");
    static unsigned long generation;
    r->gen = ++generation;
    r->conf = conf;
    r->refs = 1;
    return r;
}

int pstd_mkdirs(const char *path)
{
    char buf[4096];
    int n = snprintf(buf, sizeof(buf), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int pstd_mkdirs_for(const char *file)
{
    char buf[4096];
    int n = snprintf(buf, sizeof(buf), "%s", file);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf)
        return 0;
    *slash = '\0';
    return pstd_mkdirs(buf);
}

/* ---- sessions per client address -------------------------------------- */

#define IPTAB_BUCKETS 4096

struct ipent {
    char ip[INET6_ADDRSTRLEN];
    unsigned count;
    struct ipent *next;
};

struct pstd_iptab {
    struct ipent *b[IPTAB_BUCKETS];
};

struct pstd_iptab *pstd_iptab_new(void)
{
    return calloc(1, sizeof(struct pstd_iptab));
}

void pstd_iptab_free(struct pstd_iptab *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < IPTAB_BUCKETS; i++) {
        while (t->b[i]) {
            struct ipent *e = t->b[i];
            t->b[i] = e->next;
            free(e);
        }
    }
    free(t);
}

static unsigned hash_ip(const char *ip)
{
    unsigned h = 2166136261u;
    for (; *ip; ip++)
        h = (h ^ (unsigned char)*ip) * 16777619u;
    return h % IPTAB_BUCKETS;
}

static unsigned iptab_count(struct pstd *d, const char *ip)
{
    for (struct ipent *e = d->iptab->b[hash_ip(ip)]; e; e = e->next)
        if (strcmp(e->ip, ip) == 0)
            return e->count;
    return 0;
}

unsigned pstd_iptab_add(struct pstd *d, const char *ip)
{
    unsigned h = hash_ip(ip);
    for (struct ipent *e = d->iptab->b[h]; e; e = e->next)
        if (strcmp(e->ip, ip) == 0)
            return ++e->count;
    struct ipent *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return 0;
    snprintf(e->ip, sizeof(e->ip), "%s", ip);
    e->count = 1;
    e->next = d->iptab->b[h];
    d->iptab->b[h] = e;
    return 1;
}

void pstd_iptab_del(struct pstd *d, const char *ip)
{
    for (struct ipent **pp = &d->iptab->b[hash_ip(ip)]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->ip, ip) == 0) {
            if (--(*pp)->count == 0) {
                struct ipent *e = *pp;
                *pp = e->next;
                free(e);
            }
            return;
        }
    }
}

/* ---- listeners -------------------------------------------------------- */

static void refuse(int fd, const char *text)
{
    /* best effort, never blocks: the socket is non-blocking */
    ssize_t w = send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    close(fd);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct pstd_listener *l = arg;
    (void)lev;
    (void)salen;
    struct pstd *dd = l->d;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        port = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        port = ntohs(sin6->sin6_port);
        /* an IPv4 client on a dual-stack socket is counted by its IPv4 address */
        if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
            memmove(ip, ip + 7, strlen(ip + 7) + 1);
    }
    char local_user[64] = "";
    if (sa->sa_family == AF_UNIX) {
        /* local submission: the peer's uid is who sends (SO_PEERCRED) */
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        struct passwd pw, *pwp = NULL;
        char pwbuf[4096];
        snprintf(ip, sizeof(ip), "local");
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
            getpwuid_r(cred.uid, &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 || pwp == NULL ||
            strlen(pw.pw_name) >= sizeof(local_user)) {
            log_warn("local submission from an unknown uid refused");
            refuse(fd, "421 4.7.0 Who are you?\r\n");
            return;
        }
        snprintf(local_user, sizeof(local_user), "%s", pw.pw_name);
    } else {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    const struct pst_conf *c = dd->cur->conf;
    char text[512];
    if (dd->stopping) {
        snprintf(text, sizeof(text), "421 4.3.2 %s Service shutting down\r\n", c->hostname);
        refuse(fd, text);
        return;
    }
    if (dd->nsessions >= c->max_sessions) {
        log_warn("refused [%s]:%d: %u sessions open", ip, port, dd->nsessions);
        snprintf(text, sizeof(text), "421 4.7.0 %s Too many connections, try again later\r\n",
                 c->hostname);
        refuse(fd, text);
        return;
    }
    if (iptab_count(dd, ip) >= c->max_sessions_per_ip) {
        log_warn("refused [%s]:%d: too many sessions from this address", ip, port);
        snprintf(text, sizeof(text), "421 4.7.0 %s Too many connections from your address\r\n",
                 c->hostname);
        refuse(fd, text);
        return;
    }
    if (session_new(dd, fd, &l->lc, ip, port, local_user[0] ? local_user : NULL) == NULL)
        log_err("cannot start a session for [%s]:%d", ip, port);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)lev;
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    log_err("accept: %s", evutil_socket_error_to_string(e));
}

int pstd_listen(struct pstd *d, char *err, size_t errlen)
{
    const struct pst_conf *c = d->cur->conf;
    d->listeners = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*d->listeners));
    if (d->listeners == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct pst_listener_conf *lc = &c->listeners[i];
        struct sockaddr_storage ss;
        socklen_t sl;
        memset(&ss, 0, sizeof(ss));
        if (lc->mode == PST_LISTEN_UNIX) {
            struct sockaddr_un *su = (struct sockaddr_un *)&ss;
            su->sun_family = AF_UNIX;
            snprintf(su->sun_path, sizeof(su->sun_path), "%s", lc->path);
            sl = sizeof(*su);
            /* a socket left by an earlier run; we hold the spool lock, so
             * no other posternd uses this configuration */
            pstd_mkdirs_for(lc->path);
            unlink(lc->path);
        } else if (strchr(lc->address, ':') != NULL) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons((uint16_t)lc->port);
            inet_pton(AF_INET6, lc->address, &s6->sin6_addr);
            sl = sizeof(*s6);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            s4->sin_port = htons((uint16_t)lc->port);
            inet_pton(AF_INET, lc->address, &s4->sin_addr);
            sl = sizeof(*s4);
        }
        struct pstd_listener *l = &d->listeners[i];
        l->lc = *lc;
        l->lc.address = lc->address ? strdup(lc->address) : NULL;
        l->lc.path = lc->path ? strdup(lc->path) : NULL;
        l->d = d;
        unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
        /* "::" and "0.0.0.0" on one port are two listeners, so keep them apart */
        if (ss.ss_family == AF_INET6)
            flags |= LEV_OPT_BIND_IPV6ONLY;
        l->lev = evconnlistener_new_bind(d->base, on_accept, l, flags, 1024, (struct sockaddr *)&ss,
                                         (int)sl);
        d->nlisteners = i + 1;
        if (l->lev == NULL) {
            if (lc->mode == PST_LISTEN_UNIX)
                snprintf(err, errlen, "cannot listen on %s: %s", lc->path, strerror(errno));
            else
                snprintf(err, errlen, "cannot listen on [%s]:%d: %s", lc->address, lc->port,
                         strerror(errno));
            return -1;
        }
        evconnlistener_set_error_cb(l->lev, on_accept_error);
        if (lc->mode == PST_LISTEN_UNIX) {
            /* every local user may submit, as with sendmail(1) */
            chmod(lc->path, 0666);
            log_info("listening on %s (local submission)", lc->path);
            continue;
        }
        log_info("listening on [%s]:%d (%s%s%s)", lc->address, lc->port,
                 lc->mode == PST_LISTEN_TLS ? "implicit TLS" : "smtp",
                 lc->mode == PST_LISTEN_SMTP && lc->starttls ? " with STARTTLS" : "",
                 lc->submission ? ", submission: AUTH required" : "");
    }
    return 0;
}

static void close_listeners(struct pstd *d)
{
    for (size_t i = 0; i < d->nlisteners; i++) {
        if (d->listeners[i].lev != NULL)
            evconnlistener_free(d->listeners[i].lev);
        d->listeners[i].lev = NULL;
    }
}

void pstd_listeners_free(struct pstd *d)
{
    close_listeners(d);
    for (size_t i = 0; i < d->nlisteners; i++) {
        free(d->listeners[i].lc.address);
        free(d->listeners[i].lc.path);
    }
    free(d->listeners);
    d->listeners = NULL;
    d->nlisteners = 0;
}

/* ---- shutdown and reload ---------------------------------------------- */

static void finish(struct pstd *d)
{
    log_info("all sessions ended; stopping");
    event_base_loopexit(d->base, NULL);
}

void pstd_session_gone(struct pstd *d)
{
    if (d->stopping && d->nsessions == 0)
        finish(d);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct pstd *d = arg;
    (void)fd;
    (void)what;
    log_info("shutdown grace period over; closing %u session%s", d->nsessions,
             d->nsessions == 1 ? "" : "s");
    struct session *s = d->sessions;
    while (s != NULL) {
        struct session *next = session_next(s);
        session_shutdown(s);
        s = next;
    }
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct pstd *d = arg;
    (void)what;
    if (d->stopping) {
        log_info("signal %d again; closing sessions now", (int)sig);
        on_grace(-1, 0, d);
        return;
    }
    d->stopping = 1;
    __atomic_store_n(&d->stop_flag, 1, __ATOMIC_RELAXED);
    close_listeners(d);
    unsigned grace = d->cur->conf->shutdown_grace;
    log_info("signal %d: no longer accepting; %u session%s get %u s to finish", (int)sig,
             d->nsessions, d->nsessions == 1 ? "" : "s", grace);
    if (d->nsessions == 0) {
        finish(d);
        return;
    }
    struct timeval tv = {.tv_sec = grace, .tv_usec = 0};
    d->grace_timer = evtimer_new(d->base, on_grace, d);
    if (d->grace_timer != NULL)
        evtimer_add(d->grace_timer, &tv);
}

static int same_listeners(const struct pst_conf *a, const struct pst_conf *b)
{
    if (a->nlisteners != b->nlisteners)
        return 0;
    for (size_t i = 0; i < a->nlisteners; i++) {
        const struct pst_listener_conf *x = &a->listeners[i], *y = &b->listeners[i];
        if (strcmp(x->address ? x->address : "", y->address ? y->address : "") != 0 ||
            strcmp(x->path ? x->path : "", y->path ? y->path : "") != 0 || x->port != y->port ||
            x->mode != y->mode || x->submission != y->submission)
            return 0;
    }
    return 1;
}

void pstd_reload(struct pstd *d)
{
    char err[1024] = "";
    struct pst_conf *c = d->conf_path ? pst_conf_load_file(d->conf_path, err, sizeof(err))
                                      : pst_conf_load_default(err, sizeof(err));
    if (c == NULL) {
        log_err("reload refused, keeping the running configuration: %s", err);
        return;
    }
    err[0] = '\0';
    struct pstd_confref *r = pstd_confref_make(c, err, sizeof(err));
    if (r == NULL) {
        log_err("reload refused, keeping the running configuration: %s", err);
        pst_conf_free(c);
        return;
    }
    if (!same_listeners(d->cur->conf, c))
        log_warn("reload: listener changes take effect at the next restart");
    pthread_mutex_lock(&conf_mu);
    struct pstd_confref *old = d->cur;
    d->cur = r;
    pthread_mutex_unlock(&conf_mu);
    /* listeners keep their own copy; STARTTLS offers follow the new file */
    for (size_t i = 0; i < d->nlisteners && i < c->nlisteners; i++)
        if (d->listeners[i].lc.port == c->listeners[i].port)
            d->listeners[i].lc.starttls = c->listeners[i].starttls;
    pstd_conf_put(d, old);
    log_info("configuration reloaded from %s", c->source);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    pstd_reload(arg);
}

int pstd_signals(struct pstd *d)
{
    signal(SIGPIPE, SIG_IGN);
    d->sig_term = evsignal_new(d->base, SIGTERM, on_term, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_term, d);
    d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
    if (!d->sig_term || !d->sig_int || !d->sig_hup)
        return -1;
    evsignal_add(d->sig_term, NULL);
    evsignal_add(d->sig_int, NULL);
    evsignal_add(d->sig_hup, NULL);
    return 0;
}

void pstd_signals_free(struct pstd *d)
{
    if (d->sig_term)
        event_free(d->sig_term);
    if (d->sig_int)
        event_free(d->sig_int);
    if (d->sig_hup)
        event_free(d->sig_hup);
    if (d->grace_timer)
        event_free(d->grace_timer);
}
