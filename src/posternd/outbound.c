/*
 * outbound.c - remote delivery of a queued message's recipients that are
 * not local (envelope recipients without a user), on a delivery worker
 * thread: recipients grouped by domain, the domain's route planned
 * (lib/core/route: MX with the implicit-MX fallback, null MX, or the relay
 * host), and each target tried in order with the SMTP client
 * (lib/io/smtp_client) until one takes the transaction.
 *
 * The TLS policy of a domain is decided in one place, tls_policy(): today
 * opportunistic STARTTLS (RFC 3207: use it whenever offered, record whether
 * the certificate verified, go on either way; a handshake that fails is
 * retried once without TLS) and, for a relay host, what relay_tls says.
 * MTA-STS (RFC 8461) plugs in there: its allowed MX names go to the route
 * planner's allow_mx hook and its "enforce" mode demands verified TLS.
 *
 * At most destination_concurrency deliveries run at once per domain; a
 * domain at its limit is skipped (the message is due again a second
 * later, without counting an attempt), so no worker waits while other
 * domains' mail is due.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "buf.h"
#include "daemon.h"
#include "dns.h"
#include "dsn.h"
#include "err.h"
#include "log.h"
#include "route.h"
#include "smtp_client.h"

#define MAX_RCPTS_PER_TXN 100 /* RFC 5321 4.5.3.1.8: servers take at least 100 */
#define PASSWORD_MAX      1024

/* ---- per-domain concurrency -------------------------------------------- */

struct slot {
    char domain[256];
    unsigned used;
    struct slot *next;
};

struct pstd_outbound {
    pthread_mutex_t mu;
    struct slot *slots;
};

struct pstd_outbound *pstd_outbound_new(void)
{
    struct pstd_outbound *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    pthread_mutex_init(&o->mu, NULL);
    return o;
}

void pstd_outbound_free(struct pstd_outbound *o)
{
    if (o == NULL)
        return;
    while (o->slots) {
        struct slot *s = o->slots;
        o->slots = s->next;
        free(s);
    }
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* Takes a slot of domain when fewer than limit are in use: 1, else 0.
 * Never waits: a worker that waited would sit idle while other domains'
 * mail is due (head-of-line blocking). */
static int slot_take(struct pstd_outbound *o, const char *domain, unsigned limit)
{
    int got = 1;
    pthread_mutex_lock(&o->mu);
    struct slot *s = o->slots;
    while (s && strcmp(s->domain, domain) != 0)
        s = s->next;
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s != NULL) {
            snprintf(s->domain, sizeof(s->domain), "%s", domain);
            s->next = o->slots;
            o->slots = s;
        }
    }
    if (s != NULL) {
        if (s->used < limit)
            s->used++;
        else
            got = 0;
    }
    pthread_mutex_unlock(&o->mu);
    return got;
}

static void slot_give(struct pstd_outbound *o, const char *domain)
{
    pthread_mutex_lock(&o->mu);
    for (struct slot **pp = &o->slots; *pp; pp = &(*pp)->next) {
        struct slot *s = *pp;
        if (strcmp(s->domain, domain) != 0)
            continue;
        if (s->used > 0)
            s->used--;
        if (s->used == 0) {
            *pp = s->next;
            free(s);
        }
        break;
    }
    pthread_mutex_unlock(&o->mu);
}

/* ---- helpers ------------------------------------------------------------ */

/* The domain part of an address, lower case, into out; "" when none. */
static void addr_domain(const char *addr, char *out, size_t len)
{
    const char *at = strrchr(addr, '@');
    size_t i = 0;
    if (at != NULL)
        for (at++; *at && i + 1 < len; at++)
            out[i++] = (*at >= 'A' && *at <= 'Z') ? (char)(*at + 32) : *at;
    out[i] = '\0';
}

/* The TLS policy for a domain: see the file comment. */
struct tls_policy {
    enum pst_smtpc_tls mode;
    int verify;       /* an unverified certificate fails the attempt */
    int implicit;     /* TLS from the first byte (relay host on 465) */
    const char *name; /* "opportunistic", "relay-starttls"... for the log */
};

static void tls_policy(const struct pst_conf *c, int via_relay, struct tls_policy *p)
{
    memset(p, 0, sizeof(*p));
    if (via_relay && c->relay_tls == 0) {
        p->mode = PST_SMTPC_TLS_REQUIRED;
        p->verify = 1;
        p->name = "relay-starttls";
    } else if (via_relay && c->relay_tls == 1) {
        p->mode = PST_SMTPC_TLS_NONE;
        p->implicit = 1;
        p->verify = 1;
        p->name = "relay-tls";
    } else {
        p->mode = PST_SMTPC_TLS_OPPORTUNISTIC;
        p->name = "opportunistic";
    }
}

/* Reads the relay password file (one line); 0 or -1 with errno. */
static int read_password(const char *path, char *out, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, len - 1);
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return -1;
    }
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* ---- one domain --------------------------------------------------------- */

struct group {
    char domain[256];
    size_t *idx; /* recipient indexes in the envelope */
    size_t n;
};

/* Marks recipients idx[0..n) with one outcome. */
static void mark(struct pstd_out_report *rep, struct pst_envelope *env, const size_t *idx, size_t n,
                 enum pstd_out_action act, const char *enh, const char *text, const char *mta)
{
    for (size_t k = 0; k < n; k++) {
        struct pstd_out_rcpt *o = &rep->rcpts[idx[k]];
        struct pst_envelope_rcpt *r = &env->rcpts[idx[k]];
        o->action = act;
        snprintf(o->status, sizeof(o->status), "%s", enh ? enh : "");
        snprintf(o->mta, sizeof(o->mta), "%s", mta ? mta : "");
        pstd_set_reply(r, text);
        if (act == PSTD_OUT_FAILED)
            r->state = PST_RCPT_FAILED;
        else if (act == PSTD_OUT_PASSED || act == PSTD_OUT_RELAYED)
            r->state = PST_RCPT_DELIVERED;
    }
}

static void log_attempt(const char *id, const struct pst_envelope *env, const size_t *idx, size_t n,
                        const struct pst_route_target *t, const struct pst_smtp_client_result *res,
                        const char *policy)
{
    for (size_t k = 0; k < n; k++) {
        const struct pst_smtp_client_rcpt_result *rr = &res->rcpts[k];
        const char *st = rr->status == PST_SMTPC_OK     ? "sent"
                         : rr->status == PST_SMTPC_PERM ? "bounced"
                                                        : "deferred";
        log_info("delivery %s: to=<%s> relay=%s[%s]:%u tls=%s%s%s verified=%s%s%s policy=%s "
                 "status=%s (%s)",
                 id, env->rcpts[idx[k]].addr, t->mx, t->addr_text, (unsigned)t->port,
                 res->tls.used ? res->tls.version : "none", res->tls.used ? "/" : "",
                 res->tls.used ? res->tls.cipher : "", res->tls.verified ? "yes" : "no",
                 res->tls.verify_error[0] ? " " : "", res->tls.verify_error, policy, st,
                 rr->text ? rr->text : (res->text ? res->text : ""));
    }
}

static void deliver_group(struct pstd *d, const struct pstd_confref *cr, struct pst_envelope *env,
                          int fd, struct group *g, struct pstd_out_report *rep)
{
    const struct pst_conf *c = cr->conf;
    char err[256];
    struct pst_resolver *res = pstd_thread_resolver(cr, err, sizeof(err));
    if (res == NULL) {
        char text[320];
        snprintf(text, sizeof(text), "resolver unavailable: %s", err);
        mark(rep, env, g->idx, g->n, PSTD_OUT_DEFERRED, "4.4.3", text, NULL);
        return;
    }

    struct pst_route_options ro;
    pst_route_options_default(&ro);
    ro.families = c->out_families;
    ro.port = c->out_port;
    const char *names[1] = {c->hostname};
    ro.local_names = names;
    ro.nlocal_names = 1;
    RAND_bytes((unsigned char *)&ro.seed, sizeof(ro.seed));
    struct pst_dns_budget budget = {.max_queries = 64, .timeout_ms = c->dns_timeout * 1000u};
    struct pst_route *rt = NULL;
    int via_relay = c->relayhost != NULL;
    int rc;
    struct pst_route_relay relay;
    if (via_relay) {
        rc = pst_route_relay_parse(c->relayhost, &relay, err, sizeof(err));
        if (rc == 0) {
            ro.port = relay.port;
            rc = pst_route_plan_relay(res, &budget, &relay, &ro, &rt);
        }
    } else {
        rc = pst_route_plan(res, &budget, g->domain, &ro, &rt);
    }
    if (rc != 0) {
        /* PST_ERR_SYNTAX: a recipient domain that is no domain (it was
         * accepted at RCPT, so this is rare): permanent */
        char text[320];
        snprintf(text, sizeof(text), "cannot route to %s: %s", g->domain, pst_strerror(rc));
        mark(rep, env, g->idx, g->n, rc == PST_ERR_NOMEM ? PSTD_OUT_DEFERRED : PSTD_OUT_FAILED,
             rc == PST_ERR_NOMEM ? "4.3.0" : "5.1.2", text, NULL);
        return;
    }
    if (rt->status != PST_ROUTE_OK) {
        char text[PST_ROUTE_REASON_MAX + 64];
        snprintf(text, sizeof(text), "%s %s", rt->enh, rt->reason ? rt->reason : "no route");
        mark(rep, env, g->idx, g->n,
             rt->status == PST_ROUTE_PERMFAIL ? PSTD_OUT_FAILED : PSTD_OUT_DEFERRED, rt->enh, text,
             NULL);
        log_info("delivery %s: domain %s status=%s (%s)", env->id, g->domain,
                 rt->status == PST_ROUTE_PERMFAIL ? "bounced" : "deferred", text);
        pst_route_free(rt);
        return;
    }

    struct tls_policy pol;
    tls_policy(c, via_relay, &pol);
    char password[PASSWORD_MAX] = "";
    if (via_relay && c->relay_user != NULL &&
        read_password(c->relay_password_file, password, sizeof(password)) != 0) {
        char text[320];
        snprintf(text, sizeof(text), "relay password file %s: %s", c->relay_password_file,
                 strerror(errno));
        mark(rep, env, g->idx, g->n, PSTD_OUT_DEFERRED, "4.3.5", text, NULL);
        pst_route_free(rt);
        return;
    }

    /* the recipients, with their DSN parameters to pass on (RFC 3461 5.2.1) */
    struct pst_smtpc_rcpt *sr = calloc(g->n, sizeof(*sr));
    struct pst_buf **notify = calloc(g->n, sizeof(*notify));
    if (sr == NULL || notify == NULL) {
        mark(rep, env, g->idx, g->n, PSTD_OUT_DEFERRED, "4.3.0", "out of memory", NULL);
        goto out;
    }
    for (size_t k = 0; k < g->n; k++) {
        const struct pst_envelope_rcpt *r = &env->rcpts[g->idx[k]];
        sr[k].addr = r->addr;
        sr[k].orcpt = r->orcpt;
        if (r->notify) {
            notify[k] = pst_buf_new(64);
            if (notify[k] != NULL && pst_dsn_notify_encode(notify[k], r->notify) == 0)
                sr[k].notify = pst_buf_data(notify[k]);
        }
    }
    static const char *const rets[] = {NULL, "FULL", "HDRS"};
    struct pst_smtp_client_msg m = {.sender = env->sender,
                                    .rcpts = sr,
                                    .nrcpts = g->n,
                                    .body_8bit = env->body_8bit,
                                    .smtputf8 = env->smtputf8,
                                    .dsn_ret = rets[env->ret],
                                    .dsn_envid = env->envid};
    int done = 0, plaintext = 0;
    for (size_t t = 0; t < rt->ntargets && !done;) {
        const struct pst_route_target *tg = &rt->targets[t];
        struct pst_smtp_client_opts o;
        memset(&o, 0, sizeof(o));
        o.host = tg->addr_text;
        o.port = tg->port;
        /* the certificate is checked against the MX name (RFC 3207 does
         * not say which; RFC 8461 4.1 and RFC 7672 use the MX host) */
        char mxname[PST_DNS_NAME_TEXT_MAX];
        snprintf(mxname, sizeof(mxname), "%s", tg->mx);
        size_t ml = strlen(mxname);
        if (ml > 1 && mxname[ml - 1] == '.')
            mxname[ml - 1] = '\0';
        o.mx_name = mxname[0] == '[' ? NULL : mxname;
        o.ehlo_name = c->hostname;
        o.tls = plaintext ? PST_SMTPC_TLS_NONE : pol.mode;
        o.implicit_tls = pol.implicit;
        o.tls_verify = pol.verify;
        o.ca_file = c->out_ca_file;
        o.ssl_ctx = cr->client_tls;
        if (via_relay && c->relay_user != NULL) {
            o.auth_user = c->relay_user;
            o.auth_pass = password;
        }
        unsigned cmd_ms = c->out_command_timeout * 1000u;
        o.timeouts.connect = c->out_connect_timeout * 1000u;
        o.timeouts.tls = cmd_ms < 60000 ? cmd_ms : 60000;
        o.timeouts.greeting = o.timeouts.command = o.timeouts.mail = o.timeouts.rcpt = cmd_ms;
        o.timeouts.data_init = cmd_ms < 120000 ? cmd_ms : 120000;
        o.timeouts.data_block = cmd_ms < 180000 ? cmd_ms : 180000;
        o.timeouts.dot = cmd_ms < 600000 ? cmd_ms * 2 : 600000;

        struct pst_smtp_client_result r;
        rc = pst_smtp_client_deliver(&o, &m, fd, &r);
        if (rc != 0) {
            /* PST_ERR_INVAL: an address no server could take (a control
             * octet, <, >): it will never work, so it bounces */
            char text[128];
            snprintf(text, sizeof(text), "SMTP client: %s", pst_strerror(rc));
            int perm = rc == PST_ERR_INVAL;
            mark(rep, env, g->idx, g->n, perm ? PSTD_OUT_FAILED : PSTD_OUT_DEFERRED,
                 perm ? "5.1.3" : "4.3.0", text, NULL);
            break;
        }
        log_attempt(env->id, env, g->idx, g->n, tg, &r, plaintext ? "plaintext-retry" : pol.name);
        if (r.status == PST_SMTPC_OK) {
            /* the transaction went through: each recipient has its final word */
            int dsn_offered = (r.ext.flags & PST_SMTPC_EXT_DSN) != 0;
            for (size_t k = 0; k < g->n; k++) {
                const struct pst_smtp_client_rcpt_result *rr = &r.rcpts[k];
                /* RFC 3461 5.2.2: a next hop with DSN reports from
                 * here on; without it, SUCCESS is answered "relayed" */
                enum pstd_out_action act = rr->status == PST_SMTPC_OK
                                               ? (dsn_offered ? PSTD_OUT_PASSED : PSTD_OUT_RELAYED)
                                           : rr->status == PST_SMTPC_PERM ? PSTD_OUT_FAILED
                                                                          : PSTD_OUT_DEFERRED;
                mark(rep, env, &g->idx[k], 1, act, rr->enh, rr->text ? rr->text : "", mxname);
            }
            done = 1;
        } else if (r.retry_plaintext && !plaintext && pol.mode == PST_SMTPC_TLS_OPPORTUNISTIC) {
            /* RFC 3207 opportunistic: the handshake failed; try the same
             * host once in plaintext (recorded in the log line above) */
            plaintext = 1;
            pst_smtp_client_result_free(&r);
            continue;
        } else if (r.status == PST_SMTPC_PERM && !r.host_failure) {
            /* refused for good (at MAIL, at DATA, or every recipient): each
             * recipient by its own outcome, so one refused with 4xx at RCPT
             * waits instead of bouncing with the others */
            for (size_t k = 0; k < g->n; k++) {
                const struct pst_smtp_client_rcpt_result *rr = &r.rcpts[k];
                int temp = rr->status == PST_SMTPC_TEMP;
                const char *enh = rr->enh[0] ? rr->enh : r.enh;
                const char *text = rr->text && rr->text[0] ? rr->text : (r.text ? r.text : "");
                mark(rep, env, &g->idx[k], 1, temp ? PSTD_OUT_DEFERRED : PSTD_OUT_FAILED, enh, text,
                     mxname);
            }
            done = 1;
        } else {
            /* this host failed (or said 4xx): note why, try the next one */
            mark(rep, env, g->idx, g->n, PSTD_OUT_DEFERRED, r.enh[0] ? r.enh : "4.4.1",
                 r.text ? r.text : "", mxname);
        }
        pst_smtp_client_result_free(&r);
        plaintext = 0;
        t++;
    }
out:
    explicit_bzero(password, sizeof(password));
    for (size_t k = 0; notify && k < g->n; k++)
        pst_buf_free(notify[k]);
    free(notify);
    free(sr);
    pst_route_free(rt);
}

int pstd_outbound_deliver(struct pstd *d, const struct pstd_confref *cr, struct pst_envelope *env,
                          int fd, struct pstd_out_report *rep)
{
    rep->rcpts = calloc(env->nrcpts, sizeof(*rep->rcpts));
    if (rep->rcpts == NULL)
        return PST_ERR_NOMEM;
    rep->n = env->nrcpts;
    /* group pending remote recipients by domain, at most
     * MAX_RCPTS_PER_TXN per transaction */
    struct group *groups = calloc(env->nrcpts, sizeof(*groups));
    size_t ng = 0;
    if (groups == NULL)
        return PST_ERR_NOMEM;
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct pst_envelope_rcpt *r = &env->rcpts[i];
        if (r->user != NULL || r->state != PST_RCPT_PENDING)
            continue;
        char dom[256];
        addr_domain(r->addr, dom, sizeof(dom));
        struct group *g = NULL;
        for (size_t k = 0; k < ng; k++)
            if (strcmp(groups[k].domain, dom) == 0 && groups[k].n < MAX_RCPTS_PER_TXN)
                g = &groups[k];
        if (g == NULL) {
            g = &groups[ng++];
            snprintf(g->domain, sizeof(g->domain), "%s", dom);
            g->idx = calloc(MAX_RCPTS_PER_TXN, sizeof(size_t));
            if (g->idx == NULL) {
                ng--;
                continue; /* stays pending: the next attempt */
            }
        }
        g->idx[g->n++] = i;
    }
    for (size_t k = 0; k < ng; k++) {
        if (__atomic_load_n(&d->stop_flag, __ATOMIC_RELAXED))
            break; /* shutting down: the rest waits for the next start */
        const char *key = cr->conf->relayhost ? "(relayhost)" : groups[k].domain;
        if (!slot_take(d->outbound, key, cr->conf->out_dest_concurrency)) {
            /* the destination is busy: no attempt now, again in a moment */
            rep->busy++;
            continue;
        }
        rep->tried++;
        deliver_group(d, cr, env, fd, &groups[k], rep);
        slot_give(d->outbound, key);
    }
    for (size_t k = 0; k < ng; k++)
        free(groups[k].idx);
    free(groups);
    return 0;
}
