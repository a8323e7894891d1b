/*
 * resolver_unbound.c - the DNS resolver interface on libunbound: its own
 * caching, validating resolver (DNSSEC per RFC 4033-4035 when a trust
 * anchor is configured), forwarding to one given server or to the
 * nameservers of resolv.conf. resolver.h lists the result mapping.
 *
 * Every query is asynchronous inside: ub_resolve_async() in a context
 * that resolves on a background thread (ub_ctx_async(ctx, 1), never a
 * fork), answers arriving on ub_fd() and delivered by ub_process(). The
 * blocking query() polls that descriptor until its own deadline, so the
 * per-query timeout holds even when upstream servers never answer
 * (ub_resolve() has no timeout); on expiry it cancels the query and answers
 * RETRY. The daemon's event loop drives the same descriptor through
 * query_async/fd/process/cancel and keeps its own timers.
 *
 * libunbound refuses .test names with a built-in local zone (RFC 6761
 * 6.2); the zone is made transparent so that test domains resolve through
 * the configured server like any other. Private address reverse zones are
 * unblocked (unblock-lan-zones) for the same reason, and queries to
 * loopback servers are allowed (a local resolver is the common case).
 * libunbound's own log output is switched off: the library never prints.
 */
#include "resolver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "buf.h"
#include "err.h"

struct ub;

struct ubq {
    struct ub *u; /* the resolver it belongs to */
    struct ubq *next, *prev;
    unsigned id;  /* ours: stable across the CNAME probes */
    int ubid;     /* libunbound's id of the step in flight */
    int inflight; /* ubid is valid */
    char name[PST_DNS_NAME_TEXT_MAX];
    uint16_t type;
    pst_dns_done_fn *done; /* NULL: a blocking query waits for it */
    void *arg;
    /* after SERVFAIL: CNAME queries along the chain, looking for a loop */
    struct pst_dns_answer *servfail;
    char chain[PST_DNS_MAX_CNAME + 1][PST_DNS_NAME_TEXT_MAX];
    size_t nchain;
    /* a blocking query's result */
    int finished;
    int err;
    struct pst_dns_answer *answer;
};

/*
 * Answers of blocking queries are kept in a small set-associative cache of
 * the resolver's own, for their TTL but at most UB_CACHE_TTL seconds: even
 * a libunbound cache hit is a round trip through its worker thread, and an
 * SPF check asks the same names again and again. Only OK and NOTFOUND
 * answers are kept (RFC 2308 for the negative ones); RETRY and FAIL never.
 */
#define UB_CACHE_SLOTS 1024
#define UB_CACHE_TTL   300

struct ub_slot {
    struct pst_dns_answer *a;
    long long expires_ms;
};

struct ub {
    struct pst_resolver r; /* first: the interface */
    struct ub_ctx *ctx;
    struct ubq *pending;
    unsigned next_id;
    struct ub_slot cache[UB_CACHE_SLOTS];
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- results ------------------------------------------------------------ */

/* Turns a libunbound result into an answer; *servfail tells the caller to
 * probe for a CNAME loop. */
static int make_answer(const struct ubq *q, int err, const struct ub_result *res,
                       struct pst_dns_answer **out, int *servfail)
{
    struct pst_dns_answer *a;
    int rc = pst_dns_answer_new(q->name, q->type, &a);

    *servfail = 0;
    if (rc != 0)
        return rc;
    if (err != 0) {
        if (err == UB_NOMEM) {
            pst_dns_answer_free(a);
            return PST_ERR_NOMEM;
        }
        rc = pst_dns_answer_set(a, PST_DNS_RETRY, PST_DNS_FOUND, "resolver error: %s",
                                ub_strerror(err));
        goto out;
    }
    a->dnssec = res->secure ? PST_DNS_SECURE : res->bogus ? PST_DNS_BOGUS : PST_DNS_INSECURE;
    if (res->canonname != NULL)
        pst_dns_answer_set_canonical(a, res->canonname); /* unreadable: keep the name */
    if (res->bogus) {
        /* RFC 4035 5.5: bogus data is not used; the zone may be fixed */
        rc = pst_dns_answer_set(a, PST_DNS_RETRY, PST_DNS_FOUND, "DNSSEC validation failed: %s",
                                res->why_bogus != NULL ? res->why_bogus : "bogus");
        goto out;
    }
    uint32_t ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
    switch (res->rcode) {
    case 0: /* NOERROR */
        if (!res->havedata || res->data == NULL || res->data[0] == NULL) {
            rc = pst_dns_answer_set(a, PST_DNS_NOTFOUND, PST_DNS_NODATA, NULL);
            a->ttl = ttl;
            goto out;
        }
        for (size_t i = 0; res->data[i] != NULL && a->status == PST_DNS_OK; i++) {
            if (res->len[i] < 0)
                break;
            rc = pst_dns_answer_add(a, (const uint8_t *)res->data[i], (size_t)res->len[i], ttl);
            if (rc == PST_ERR_NOMEM)
                goto out;
        }
        rc = 0;
        if (a->status == PST_DNS_OK) {
            a->ttl = ttl;
            pst_dns_answer_finish(a);
        }
        goto out;
    case 3: /* NXDOMAIN */
        rc = pst_dns_answer_set(a, PST_DNS_NOTFOUND, PST_DNS_NXDOMAIN, NULL);
        a->ttl = ttl;
        goto out;
    case 2: /* SERVFAIL */
        *servfail = q->type != PST_DNS_CNAME;
        rc = pst_dns_answer_set(a, PST_DNS_RETRY, PST_DNS_FOUND, "SERVFAIL%s",
                                res->was_ratelimited ? " (rate limited)" : "");
        goto out;
    case 5: /* REFUSED: see resolver.h for why this is RETRY */
        rc = pst_dns_answer_set(a, PST_DNS_RETRY, PST_DNS_FOUND, "REFUSED");
        goto out;
    case 1:
        rc = pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND, "FORMERR");
        goto out;
    case 4:
        rc = pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND, "NOTIMP");
        goto out;
    default:
        rc = pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND, "RCODE %d", res->rcode);
        goto out;
    }
out:
    if (rc == PST_ERR_NOMEM) {
        pst_dns_answer_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* ---- query life cycle --------------------------------------------------- */

static void unlink_q(struct ub *u, struct ubq *q)
{
    if (q->prev != NULL)
        q->prev->next = q->next;
    else if (u->pending == q)
        u->pending = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    q->next = q->prev = NULL;
}

static void free_q(struct ubq *q)
{
    pst_dns_answer_free(q->servfail);
    pst_dns_answer_free(q->answer);
    free(q);
}

static void callback(void *arg, int err, struct ub_result *res);

/* The query is over: hand a (or err) to whoever waits. */
static void finish(struct ub *u, struct ubq *q, int err, struct pst_dns_answer *a)
{
    q->inflight = 0;
    if (q->done == NULL) {
        q->finished = 1;
        q->err = err;
        q->answer = a;
        return;
    }
    unlink_q(u, q);
    if (a == NULL) /* out of memory: the caller still hears back */
        pst_dns_answer_retry(q->name, q->type, "out of memory", &a);
    pst_dns_done_fn *done = q->done;
    void *darg = q->arg;
    free_q(q);
    if (a != NULL)
        done(darg, a);
}

static int start(struct ub *u, struct ubq *q, const char *name, int type)
{
    int rc = ub_resolve_async(u->ctx, name, type, 1 /* IN */, q, callback, &q->ubid);

    if (rc != 0)
        return rc == UB_NOMEM ? PST_ERR_NOMEM : PST_ERR_AGAIN;
    q->inflight = 1;
    return 0;
}

/* RFC 1034 3.6.2: after a SERVFAIL, ask for the CNAME at each name of the
 * chain; a name seen twice is a loop, more than PST_DNS_MAX_CNAME hops a
 * chain too long. Anything else keeps the SERVFAIL. */
static void probe_result(struct ub *u, struct ubq *q, int err, struct ub_result *res)
{
    char target[PST_DNS_NAME_TEXT_MAX];
    struct pst_dns_answer *a = q->servfail;
    struct pst_dns_rr rr;
    const char *why;

    if (err != 0 || res == NULL || res->bogus || res->rcode != 0 || !res->havedata ||
        res->data == NULL || res->data[0] == NULL || res->len[0] < 0 ||
        pst_dns_rdata_decode(PST_DNS_CNAME, (const uint8_t *)res->data[0], (size_t)res->len[0], &rr,
                             &why) != 0)
        goto keep;
    snprintf(target, sizeof target, "%s", rr.name);
    pst_dns_rr_clear(&rr);
    int loop = 0;
    for (size_t i = 0; i < q->nchain; i++)
        loop |= strcmp(q->chain[i], target) == 0;
    if (loop || q->nchain > PST_DNS_MAX_CNAME) {
        struct pst_buf *b = pst_buf_new(400);
        if (b != NULL) {
            for (size_t i = 0; i < q->nchain; i++)
                pst_buf_addf(b, "%s -> ", q->chain[i]);
            pst_buf_addstr(b, target);
        }
        if (loop)
            pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND, "CNAME loop: %s",
                               b != NULL ? pst_buf_data(b) : "");
        else
            pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND, "CNAME chain longer than %d: %s",
                               PST_DNS_MAX_CNAME, b != NULL ? pst_buf_data(b) : "");
        pst_buf_free(b);
        goto keep;
    }
    snprintf(q->chain[q->nchain++], PST_DNS_NAME_TEXT_MAX, "%s", target);
    if (start(u, q, target, PST_DNS_CNAME) == 0)
        return;
keep:
    q->servfail = NULL;
    finish(u, q, 0, a);
}

static void callback(void *arg, int err, struct ub_result *res)
{
    struct ubq *q = arg;
    struct ub *u = q->u;
    struct pst_dns_answer *a = NULL;
    int servfail;

    q->inflight = 0;
    if (q->servfail != NULL) {
        probe_result(u, q, err, res);
        ub_resolve_free(res);
        return;
    }
    int rc = make_answer(q, err, res, &a, &servfail);
    ub_resolve_free(res);
    if (rc != 0) {
        finish(u, q, rc, NULL);
        return;
    }
    if (servfail) {
        q->servfail = a;
        snprintf(q->chain[0], PST_DNS_NAME_TEXT_MAX, "%s", q->name);
        q->nchain = 1;
        if (start(u, q, q->name, PST_DNS_CNAME) == 0)
            return;
        q->servfail = NULL;
    }
    finish(u, q, 0, a);
}

static struct ubq *new_q(struct ub *u, const char *name, uint16_t type)
{
    struct ubq *q = calloc(1, sizeof *q);

    if (q == NULL)
        return NULL;
    q->u = u;
    snprintf(q->name, sizeof q->name, "%s", name);
    q->type = type;
    q->id = ++u->next_id;
    if (q->id == 0) /* wrapped: 0 is never an id */
        q->id = ++u->next_id;
    q->next = u->pending;
    if (u->pending != NULL)
        u->pending->prev = q;
    u->pending = q;
    return q;
}

static void drop_q(struct ub *u, struct ubq *q)
{
    if (q->inflight)
        ub_cancel(u->ctx, q->ubid);
    unlink_q(u, q);
    free_q(q);
}

/* ---- the interface ------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The cache is 4-way set associative: names that hash alike share a set
 * instead of evicting each other on every use (a direct-mapped table
 * thrashed on a few dozen names). */
#define UB_CACHE_WAYS 4

static struct ub_slot *cache_set(struct ub *u, const char *name, uint16_t type)
{
    unsigned h = 2166136261u ^ type;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &u->cache[(h % (UB_CACHE_SLOTS / UB_CACHE_WAYS)) * UB_CACHE_WAYS];
}

/* A copy of a live cached answer, with its TTL counted down; 0 when none. */
static int cache_get(struct ub *u, const char *name, uint16_t type, struct pst_dns_answer **out)
{
    struct ub_slot *set = cache_set(u, name, type);
    long long now = now_ms();
    for (int w = 0; w < UB_CACHE_WAYS; w++) {
        struct ub_slot *sl = &set[w];
        if (sl->a == NULL || sl->a->type != type || strcmp(sl->a->name, name) != 0)
            continue;
        if (now >= sl->expires_ms) {
            pst_dns_answer_free(sl->a);
            sl->a = NULL;
            return 0;
        }
        struct pst_dns_answer *c;
        if (pst_dns_answer_copy(sl->a, &c) != 0)
            return 0;
        uint32_t left = (uint32_t)((sl->expires_ms - now + 999) / 1000);
        if (c->ttl > left)
            c->ttl = left;
        *out = c;
        return 1;
    }
    return 0;
}

static void cache_put(struct ub *u, const struct pst_dns_answer *a)
{
    if ((a->status != PST_DNS_OK && a->status != PST_DNS_NOTFOUND) || a->ttl == 0)
        return;
    struct pst_dns_answer *c;
    if (pst_dns_answer_copy(a, &c) != 0)
        return;
    /* the same name's slot, else an empty one, else the one expiring first */
    struct ub_slot *set = cache_set(u, a->name, a->type), *sl = &set[0];
    for (int w = 0; w < UB_CACHE_WAYS; w++) {
        struct ub_slot *x = &set[w];
        if (x->a != NULL && x->a->type == a->type && strcmp(x->a->name, a->name) == 0) {
            sl = x;
            break;
        }
        if (sl->a != NULL && (x->a == NULL || x->expires_ms < sl->expires_ms))
            sl = x;
    }
    pst_dns_answer_free(sl->a);
    sl->a = c;
    sl->expires_ms = now_ms() + 1000LL * (a->ttl < UB_CACHE_TTL ? a->ttl : UB_CACHE_TTL);
}

static int ub_query(struct pst_resolver *r, const char *name, uint16_t type, unsigned timeout_ms,
                    struct pst_dns_answer **out)
{
    struct ub *u = (struct ub *)r;
    if (cache_get(u, name, type, out))
        return 0;
    struct ubq *q = new_q(u, name, type);
    long long deadline = now_ms() + timeout_ms;
    const char *why = NULL;
    int rc;

    if (q == NULL)
        return PST_ERR_NOMEM;
    if ((rc = start(u, q, name, type)) != 0) {
        drop_q(u, q);
        return rc == PST_ERR_NOMEM ? rc : pst_dns_answer_retry(name, type, "resolver error", out);
    }
    while (!q->finished) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break; /* timed out: why stays NULL */
        struct pollfd p = {.fd = ub_fd(u->ctx), .events = POLLIN};
        int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (n < 0 && errno != EINTR) {
            why = "cannot wait for the resolver";
            break;
        }
        if (n > 0 && ub_process(u->ctx) != 0) {
            why = "cannot read from the resolver";
            break;
        }
    }
    if (!q->finished) {
        drop_q(u, q);
        if (why == NULL)
            return pst_dns_answer_timeout(name, type, timeout_ms, out);
        return pst_dns_answer_retry(name, type, why, out);
    }
    struct pst_dns_answer *a = q->answer;
    rc = q->err;
    q->answer = NULL;
    drop_q(u, q);
    if (rc != 0)
        return rc;
    cache_put(u, a);
    *out = a;
    return 0;
}

static int ub_query_async(struct pst_resolver *r, const char *name, uint16_t type,
                          pst_dns_done_fn *done, void *arg, unsigned *id)
{
    struct ub *u = (struct ub *)r;
    struct ubq *q = new_q(u, name, type);
    int rc;

    if (q == NULL)
        return PST_ERR_NOMEM;
    q->done = done;
    q->arg = arg;
    if ((rc = start(u, q, name, type)) != 0) {
        drop_q(u, q);
        return rc;
    }
    *id = q->id;
    return 0;
}

static int ub_cancel_q(struct pst_resolver *r, unsigned id)
{
    struct ub *u = (struct ub *)r;

    for (struct ubq *q = u->pending; q != NULL; q = q->next) {
        if (q->id == id && q->done != NULL) {
            drop_q(u, q);
            return 0;
        }
    }
    return PST_ERR_NOTFOUND;
}

static int ub_get_fd(struct pst_resolver *r)
{
    int fd = ub_fd(((struct ub *)r)->ctx);
    return fd >= 0 ? fd : PST_ERR_IO;
}

static int ub_do_process(struct pst_resolver *r)
{
    return ub_process(((struct ub *)r)->ctx) == 0 ? 0 : PST_ERR_IO;
}

static void ub_free(struct pst_resolver *r)
{
    struct ub *u = (struct ub *)r;

    while (u->pending != NULL)
        drop_q(u, u->pending);
    if (u->ctx != NULL)
        ub_ctx_delete(u->ctx);
    for (size_t i = 0; i < UB_CACHE_SLOTS; i++)
        pst_dns_answer_free(u->cache[i].a);
    free(u);
}

/* ---- configuration ------------------------------------------------------ */

int pst_resolver_server_parse(const char *spec, char *addr, size_t addrlen, unsigned *port)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *p = NULL;
    unsigned char bin[16];
    size_t hlen;
    int v6;

    if (spec == NULL || spec[0] == '\0')
        return PST_ERR_SYNTAX;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return PST_ERR_SYNTAX;
        hlen = (size_t)(end - spec - 1);
        spec++;
        p = end[1] == ':' ? end + 2 : NULL;
        v6 = 1;
        if (end[1] == ':' && *p == '\0')
            return PST_ERR_SYNTAX;
    } else {
        const char *colon = strchr(spec, ':');
        v6 = colon != NULL && strchr(colon + 1, ':') != NULL; /* bare IPv6, no port */
        hlen = v6 || colon == NULL ? strlen(spec) : (size_t)(colon - spec);
        p = !v6 && colon != NULL ? colon + 1 : NULL;
        if (p != NULL && *p == '\0')
            return PST_ERR_SYNTAX;
    }
    if (hlen == 0 || hlen >= sizeof host)
        return PST_ERR_SYNTAX;
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1)
        return PST_ERR_SYNTAX;
    unsigned long v = 53;
    if (p != NULL) {
        v = 0;
        for (size_t i = 0; p[i] != '\0'; i++) {
            if (p[i] < '0' || p[i] > '9' || i >= 5)
                return PST_ERR_SYNTAX;
            v = v * 10 + (unsigned long)(p[i] - '0');
        }
        if (v < 1 || v > 65535)
            return PST_ERR_SYNTAX;
    }
    if (strlen(host) >= addrlen)
        return PST_ERR_TOOBIG;
    memcpy(addr, host, strlen(host) + 1);
    *port = (unsigned)v;
    return 0;
}

/* Parses the trust anchor file with ldns so that a mistake is reported with
 * its line, before libunbound reads it; only DS and DNSKEY records. */
static int check_anchors(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    ldns_rdf *origin = NULL, *prev = NULL;
    uint32_t ttl = 3600;
    size_t n = 0;
    int line = 0, rc = 0;

    if (fp == NULL) {
        seterr(err, errlen, "trust anchor %s: cannot open: %s", path, strerror(errno));
        return PST_ERR_IO;
    }
    /* record by record: ldns_zone_new_frm_fp_l leaks on errors */
    while (rc == 0 && !feof(fp)) {
        ldns_rr *rr = NULL;
        ldns_status st = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &origin, &prev, &line);
        if (st == LDNS_STATUS_SYNTAX_EMPTY || st == LDNS_STATUS_SYNTAX_TTL ||
            st == LDNS_STATUS_SYNTAX_ORIGIN)
            continue;
        if (st != LDNS_STATUS_OK) {
            seterr(err, errlen, "trust anchor %s:%d: %s", path, line, ldns_get_errorstr_by_id(st));
            rc = PST_ERR_SYNTAX;
            break;
        }
        ldns_rr_type t = ldns_rr_get_type(rr);
        ldns_rr_free(rr);
        n++;
        if (t != LDNS_RR_TYPE_DS && t != LDNS_RR_TYPE_DNSKEY) {
            seterr(err, errlen, "trust anchor %s:%d: not a DS or DNSKEY record", path, line);
            rc = PST_ERR_SYNTAX;
        }
    }
    fclose(fp);
    ldns_rdf_deep_free(origin);
    ldns_rdf_deep_free(prev);
    if (rc == 0 && n == 0) {
        seterr(err, errlen, "trust anchor %s: no DS or DNSKEY record", path);
        rc = PST_ERR_SYNTAX;
    }
    return rc;
}

static int set_opt(struct ub_ctx *ctx, const char *opt, const char *val, char *err, size_t errlen)
{
    int rc = ub_ctx_set_option(ctx, opt, val);

    if (rc != 0) {
        seterr(err, errlen, "libunbound: option %s %s: %s", opt, val, ub_strerror(rc));
        return PST_ERR_INVAL;
    }
    return 0;
}

int pst_resolver_unbound_new(const struct pst_resolver_unbound_conf *conf,
                             struct pst_resolver **out, char *err, size_t errlen)
{
    static const struct pst_resolver_unbound_conf none = {0};
    struct ub *u = NULL;
    int rc, urc;

    if (out == NULL)
        return PST_ERR_INVAL;
    if (conf == NULL)
        conf = &none;
    char fwd[INET6_ADDRSTRLEN + 8];
    if (conf->server != NULL) {
        char addr[INET6_ADDRSTRLEN + 1];
        unsigned port;
        if (pst_resolver_server_parse(conf->server, addr, sizeof addr, &port) != 0) {
            seterr(err, errlen,
                   "DNS server \"%s\": not ADDR[:PORT] (a numeric IPv4 or IPv6 address, "
                   "IPv6 with a port in brackets: [::1]:5353)",
                   conf->server);
            return PST_ERR_SYNTAX;
        }
        snprintf(fwd, sizeof fwd, "%s@%u", addr, port);
    }
    if (conf->trust_anchor != NULL && (rc = check_anchors(conf->trust_anchor, err, errlen)) != 0)
        return rc;
    u = calloc(1, sizeof *u);
    if (u == NULL || (u->ctx = ub_ctx_create()) == NULL) {
        seterr(err, errlen, "libunbound: cannot create a context");
        free(u);
        return PST_ERR_NOMEM;
    }
    u->r = (struct pst_resolver){
        .kind = "unbound",
        .query = ub_query,
        .query_async = ub_query_async,
        .cancel = ub_cancel_q,
        .fd = ub_get_fd,
        .process = ub_do_process,
        .free = ub_free,
    };
    ub_ctx_debugout(u->ctx, NULL);
    if ((rc = set_opt(u->ctx, "verbosity:", "0", err, errlen)) != 0 ||
        (rc = set_opt(u->ctx, "do-not-query-localhost:", "no", err, errlen)) != 0 ||
        (rc = set_opt(u->ctx, "unblock-lan-zones:", "yes", err, errlen)) != 0 ||
        (rc = set_opt(u->ctx, "insecure-lan-zones:", "yes", err, errlen)) != 0)
        goto fail;
    if (conf->server != NULL) {
        if ((urc = ub_ctx_set_fwd(u->ctx, fwd)) != 0) {
            seterr(err, errlen, "DNS server %s: %s", conf->server, ub_strerror(urc));
            rc = PST_ERR_INVAL;
            goto fail;
        }
    } else {
        const char *rcf = conf->resolv_conf != NULL ? conf->resolv_conf : "/etc/resolv.conf";
        FILE *fp = fopen(rcf, "r");
        if (fp == NULL) {
            seterr(err, errlen, "%s: cannot open: %s", rcf, strerror(errno));
            rc = PST_ERR_IO;
            goto fail;
        }
        fclose(fp);
        if ((urc = ub_ctx_resolvconf(u->ctx, rcf)) != 0) {
            seterr(err, errlen, "%s: %s", rcf, ub_strerror(urc));
            rc = urc == UB_READFILE ? PST_ERR_IO : PST_ERR_SYNTAX;
            goto fail;
        }
    }
    if (conf->trust_anchor != NULL && (urc = ub_ctx_add_ta_file(u->ctx, conf->trust_anchor)) != 0) {
        seterr(err, errlen, "trust anchor %s: %s", conf->trust_anchor, ub_strerror(urc));
        rc = PST_ERR_INVAL;
        goto fail;
    }
    if ((urc = ub_ctx_async(u->ctx, 1)) != 0) {
        seterr(err, errlen, "libunbound: threads: %s", ub_strerror(urc));
        rc = PST_ERR_INVAL;
        goto fail;
    }
    /* last: this finalises the context (and loads the trust anchors) */
    if ((urc = ub_ctx_zone_add(u->ctx, "test.", "transparent")) != 0) {
        seterr(err, errlen, "libunbound: cannot start%s: %s",
               conf->trust_anchor != NULL ? " (trust anchor refused?)" : "", ub_strerror(urc));
        rc = PST_ERR_INVAL;
        goto fail;
    }
    *out = &u->r;
    return 0;
fail:
    ub_free(&u->r);
    return rc;
}
