/*
 * route.c - delivery planning (RFC 5321 5.1, RFC 7505 null MX) and the
 * relay host syntax. route.h describes the steps, results and limits.
 *
 * Every count is bounded before anything is allocated from it: MX answers
 * carry at most PST_DNS_MAX_RECORDS records (dns.h), the target list at
 * most PST_ROUTE_HARD_MAX entries, reason texts PST_ROUTE_REASON_MAX.
 */
#include "route.h"
#include "buf.h"
#include "err.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pst_route_status_name(enum pst_route_status st)
{
    switch (st) {
    case PST_ROUTE_OK:
        return "ok";
    case PST_ROUTE_TEMPFAIL:
        return "tempfail";
    case PST_ROUTE_PERMFAIL:
        return "permfail";
    }
    return "?";
}

void pst_route_options_default(struct pst_route_options *o)
{
    memset(o, 0, sizeof *o);
    o->families = PST_ROUTE_INET4 | PST_ROUTE_INET6;
    o->prefer = PST_ROUTE_INET6;
    o->max_mx = PST_ROUTE_MAX_MX;
    o->max_addrs = PST_ROUTE_MAX_ADDRS;
    o->max_targets = PST_ROUTE_MAX_TARGETS;
    o->port = 25;
}

void pst_route_free(struct pst_route *rt)
{
    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->ntargets; i++)
        free(rt->targets[i].mx);
    free(rt->targets);
    free(rt->domain);
    free(rt->reason);
    free(rt);
}

/* ---- small helpers ------------------------------------------------------ */

/* splitmix64: a few lines of well-mixed bits from the caller's seed; the
 * state lives in the call, never in the library. */
static uint64_t mix_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The length of a text-form name without its trailing dot (for messages). */
static int shown(const char *name)
{
    size_t n = strlen(name);
    if (n > 1 && name[n - 1] == '.')
        n--;
    return (int)n;
}

static unsigned clamp_cap(unsigned v, unsigned dflt)
{
    if (v == 0)
        return dflt;
    return v > PST_ROUTE_HARD_MAX ? PST_ROUTE_HARD_MAX : v;
}

/* Parses an IPv4 or IPv6 address text. 0 or PST_ERR_SYNTAX. */
static int parse_addr(const char *s, int v6, enum pst_route_family *fam, unsigned char addr[16])
{
    unsigned char a[16];

    if (strlen(s) >= PST_ROUTE_ADDR_TEXT)
        return PST_ERR_SYNTAX;
    if (!v6 && inet_pton(AF_INET, s, a) == 1) {
        memset(addr, 0, 16);
        memcpy(addr, a, 4);
        *fam = PST_ROUTE_INET4;
        return 0;
    }
    if (v6 && inet_pton(AF_INET6, s, a) == 1) {
        memcpy(addr, a, 16);
        *fam = PST_ROUTE_INET6;
        return 0;
    }
    return PST_ERR_SYNTAX;
}

static int strncaseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return 0;
        if (x == '\0')
            return 1;
    }
    return 1;
}

/*
 * An address literal "[...]" (RFC 5321 4.1.3): IPv4, or "IPv6:" and an
 * IPv6 address; bare_v6 also accepts an IPv6 address without the tag
 * (Postfix's relayhost form). 0, or PST_ERR_SYNTAX.
 */
static int parse_literal(const char *s, size_t len, int bare_v6, enum pst_route_family *fam,
                         unsigned char addr[16], char text[PST_ROUTE_ADDR_TEXT])
{
    char in[PST_ROUTE_ADDR_TEXT + 8];

    if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof in)
        return PST_ERR_SYNTAX;
    memcpy(in, s + 1, len - 2);
    in[len - 2] = '\0';
    const char *a = in;
    int v6 = 0;
    if (strncaseeq(in, "ipv6:", 5)) {
        a = in + 5;
        v6 = 1;
    } else if (bare_v6 && strchr(in, ':') != NULL) {
        v6 = 1;
    }
    if (parse_addr(a, v6, fam, addr) != 0)
        return PST_ERR_SYNTAX;
    if (inet_ntop(*fam == PST_ROUTE_INET4 ? AF_INET : AF_INET6, addr, text, PST_ROUTE_ADDR_TEXT) ==
        NULL)
        return PST_ERR_SYNTAX;
    return 0;
}

/* ---- the planner -------------------------------------------------------- */

struct mx {
    const char *name; /* borrowed from the MX answer, or the domain */
    uint16_t pref;
};

struct plan {
    struct pst_resolver *r;
    struct pst_dns_budget *b;
    struct pst_route_options o; /* with defaults and clamps applied */
    struct pst_route *rt;
    struct pst_buf *skipped; /* "host: why; host: why" */
    size_t cap;              /* room in rt->targets */
    int any_retry;           /* a skipped host had a RETRY lookup */
    int any_addr;            /* some host had an address (even a duplicate) */
    int budget_out;
};

static int set_result(struct pst_route *rt, enum pst_route_status st, const char *enh,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int set_result(struct pst_route *rt, enum pst_route_status st, const char *enh,
                      const char *fmt, ...)
{
    char text[PST_ROUTE_REASON_MAX];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap); /* a longer text is cut */
    va_end(ap);
    if (n < 0)
        return PST_ERR_INVAL;
    free(rt->reason);
    rt->reason = strdup(text);
    if (rt->reason == NULL)
        return PST_ERR_NOMEM;
    rt->status = st;
    rt->enh = enh;
    return 0;
}

static int new_route(const char *domain, struct pst_route **out)
{
    struct pst_route *rt = calloc(1, sizeof *rt);

    if (rt == NULL)
        return PST_ERR_NOMEM;
    rt->domain = strdup(domain);
    if (rt->domain == NULL) {
        free(rt);
        return PST_ERR_NOMEM;
    }
    *out = rt;
    return 0;
}

static int add_target(struct plan *p, const char *mx, uint16_t pref, int implicit,
                      enum pst_route_family fam, const unsigned char *addr, uint16_t port,
                      enum pst_dns_dnssec sec)
{
    struct pst_route *rt = p->rt;
    size_t alen = fam == PST_ROUTE_INET4 ? 4 : 16;

    /* one address once, at its best place */
    for (size_t i = 0; i < rt->ntargets; i++)
        if (rt->targets[i].family == fam && memcmp(rt->targets[i].addr, addr, alen) == 0)
            return 0;
    if (rt->ntargets >= p->o.max_targets) {
        rt->truncated = 1;
        return 0;
    }
    if (rt->ntargets == p->cap) {
        size_t ncap = p->cap == 0 ? 4 : p->cap * 2;
        struct pst_route_target *t = realloc(rt->targets, ncap * sizeof *t);
        if (t == NULL)
            return PST_ERR_NOMEM;
        rt->targets = t;
        p->cap = ncap;
    }
    struct pst_route_target *t = &rt->targets[rt->ntargets];
    memset(t, 0, sizeof *t);
    t->mx = strdup(mx);
    if (t->mx == NULL)
        return PST_ERR_NOMEM;
    t->preference = pref;
    t->implicit = implicit;
    t->family = fam;
    memcpy(t->addr, addr, alen);
    if (inet_ntop(fam == PST_ROUTE_INET4 ? AF_INET : AF_INET6, addr, t->addr_text,
                  sizeof t->addr_text) == NULL)
        t->addr_text[0] = '\0';
    t->port = port;
    t->addr_dnssec = sec;
    rt->ntargets++;
    return 0;
}

static void note_skip(struct plan *p, const char *host, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends "host: why" to the list of skipped hosts; a list past
 * PST_ROUTE_REASON_MAX is cut (pst_buf refuses the append). */
static void note_skip(struct plan *p, const char *host, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pst_buf_addf(p->skipped, "%s%.*s: %s", pst_buf_len(p->skipped) > 0 ? "; " : "", shown(host),
                 host, text);
}

/*
 * 0 for an address no SMTP connection can go to (RFC 6890 special-purpose
 * blocks): IPv4 0/8 ("this network", RFC 1122 3.2.1.3: a connection to it
 * reaches the local host), 224/4 multicast, 240/4 reserved and the
 * broadcast address; IPv6 :: (unspecified) and ff00::/8 multicast.
 */
static int usable(enum pst_route_family fam, const unsigned char *a)
{
    static const unsigned char zero[16] = {0};

    if (fam == PST_ROUTE_INET4)
        return a[0] != 0 && a[0] < 224;
    return memcmp(a, zero, 16) != 0 && a[0] != 0xff;
}

/*
 * The addresses of one host: A and/or AAAA, interleaved from the preferred
 * family (RFC 8305 4), at most max_addrs. Adds targets; notes a host
 * without addresses in p->skipped. 0 or PST_ERR_NOMEM.
 */
static int resolve_host(struct plan *p, const char *host, uint16_t pref, int implicit)
{
    enum pst_route_family fams[2];
    struct pst_dns_answer *ans[2] = {NULL, NULL};
    char why[2][160];
    size_t nf = 0;
    int rc = 0, retry = 0;

    if (p->o.families & p->o.prefer)
        fams[nf++] = p->o.prefer;
    enum pst_route_family other =
        p->o.prefer == PST_ROUTE_INET6 ? PST_ROUTE_INET4 : PST_ROUTE_INET6;
    if (p->o.families & other)
        fams[nf++] = other;
    for (size_t i = 0; i < nf; i++) {
        uint16_t type = fams[i] == PST_ROUTE_INET4 ? PST_DNS_A : PST_DNS_AAAA;
        why[i][0] = '\0';
        rc = pst_dns_query(p->r, p->b, host, type, &ans[i]);
        if (rc == PST_ERR_TOOBIG) {
            p->budget_out = 1;
            snprintf(why[i], sizeof why[i], "%s: DNS query budget used up",
                     pst_dns_type_name(type));
            rc = 0;
            continue;
        }
        if (rc == PST_ERR_SYNTAX || rc == PST_ERR_UNSUPPORTED) {
            snprintf(why[i], sizeof why[i], "not a host name");
            rc = 0;
            continue;
        }
        if (rc != 0)
            goto out;
        const struct pst_dns_answer *a = ans[i];
        if (a->status == PST_DNS_RETRY)
            retry = 1;
        if (a->status == PST_DNS_NOTFOUND)
            snprintf(why[i], sizeof why[i], "%s %s", pst_dns_type_name(type),
                     pst_dns_notfound_name(a->notfound));
        else if (a->status != PST_DNS_OK)
            snprintf(why[i], sizeof why[i], "%s %s (%s)", pst_dns_type_name(type),
                     pst_dns_status_name(a->status), a->reason != NULL ? a->reason : "");
    }
    size_t idx[2] = {0, 0}, taken = 0, seen = 0;
    for (;;) {
        int more = 0;
        for (size_t i = 0; i < nf && taken < p->o.max_addrs; i++) {
            const struct pst_dns_answer *a = ans[i];
            if (a == NULL || a->status != PST_DNS_OK)
                continue;
            uint16_t type = fams[i] == PST_ROUTE_INET4 ? PST_DNS_A : PST_DNS_AAAA;
            /* records of another type (a misbehaving backend) and
             * addresses nobody can deliver to are skipped */
            while (idx[i] < a->nrrs &&
                   (a->rrs[idx[i]].type != type || !usable(fams[i], a->rrs[idx[i]].addr)))
                idx[i]++;
            if (idx[i] >= a->nrrs)
                continue;
            const struct pst_dns_rr *rr = &a->rrs[idx[i]++];
            seen++;
            taken++;
            if ((rc = add_target(p, host, pref, implicit, fams[i], rr->addr, p->o.port,
                                 a->dnssec)) != 0)
                goto out;
            more = 1;
        }
        if (!more || taken >= p->o.max_addrs)
            break;
    }
    for (size_t i = 0; i < nf; i++)
        if (ans[i] != NULL && ans[i]->status == PST_DNS_OK && idx[i] < ans[i]->nrrs)
            p->rt->truncated = 1; /* max_addrs left some out */
    if (seen > 0) {
        p->any_addr = 1;
        goto out;
    }
    if (retry)
        p->any_retry = 1;
    for (size_t i = 0; i < nf; i++)
        if (ans[i] != NULL && ans[i]->status == PST_DNS_OK)
            snprintf(why[i], sizeof why[i], "%s unusable addresses only",
                     pst_dns_type_name(fams[i] == PST_ROUTE_INET4 ? PST_DNS_A : PST_DNS_AAAA));
    if (nf == 2)
        note_skip(p, host, "%s, %s", why[0], why[1]);
    else
        note_skip(p, host, "%s", why[0]);
out:
    pst_dns_answer_free(ans[0]);
    pst_dns_answer_free(ans[1]);
    return rc;
}

/* RFC 5321 5.1: shuffle runs of equal preference (the list is sorted). */
static void shuffle_equal(struct mx *m, size_t n, uint64_t seed)
{
    uint64_t s = seed;

    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && m[end].pref == m[start].pref)
            end++;
        for (size_t i = end - start; i > 1; i--) {
            size_t j = (size_t)(mix_next(&s) % i);
            struct mx t = m[start + i - 1];
            m[start + i - 1] = m[start + j];
            m[start + j] = t;
        }
        start = end;
    }
}

/* 1 when name is one of ours (names normalised by the caller). */
static int is_local(char (*names)[PST_DNS_NAME_TEXT_MAX], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

static int fill_options(const struct pst_route_options *in, struct pst_route_options *o)
{
    if (in == NULL) {
        pst_route_options_default(o);
        return 0;
    }
    *o = *in;
    if (o->families == 0)
        o->families = PST_ROUTE_INET4 | PST_ROUTE_INET6;
    if ((o->families & ~(unsigned)(PST_ROUTE_INET4 | PST_ROUTE_INET6)) != 0)
        return PST_ERR_INVAL;
    if (o->prefer != PST_ROUTE_INET4)
        o->prefer = PST_ROUTE_INET6;
    o->max_mx = clamp_cap(o->max_mx, PST_ROUTE_MAX_MX);
    o->max_addrs = clamp_cap(o->max_addrs, PST_ROUTE_MAX_ADDRS);
    o->max_targets = clamp_cap(o->max_targets, PST_ROUTE_MAX_TARGETS);
    if (o->port == 0)
        o->port = 25;
    if (o->nlocal_names > 0 && o->local_names == NULL)
        return PST_ERR_INVAL;
    if (o->nlocal_names > PST_ROUTE_HARD_MAX)
        return PST_ERR_INVAL;
    return 0;
}

/* The result once the hosts are resolved. */
static int finish_hosts(struct plan *p, int implicit)
{
    struct pst_route *rt = p->rt;
    const char *d = rt->domain;
    const char *sk = pst_buf_data(p->skipped);

    if (rt->ntargets > 0) {
        if (pst_buf_len(p->skipped) > 0) {
            rt->reason = strdup(sk);
            if (rt->reason == NULL)
                return PST_ERR_NOMEM;
        }
        rt->status = PST_ROUTE_OK;
        if (p->budget_out)
            rt->truncated = 1;
        return 0;
    }
    if (p->budget_out && !p->any_addr)
        return set_result(rt, PST_ROUTE_TEMPFAIL, "4.4.3",
                          "DNS query budget used up while resolving %.*s: %s", shown(d), d, sk);
    if (p->any_retry)
        return set_result(rt, PST_ROUTE_TEMPFAIL, "4.4.3", "no address for %.*s yet: %s", shown(d),
                          d, sk);
    if (implicit)
        /* RFC 5321 5.1: "the implicit MX is unusable" is an error */
        return set_result(rt, PST_ROUTE_PERMFAIL, "5.4.4",
                          "%.*s has no MX and no address records: %s", shown(d), d, sk);
    return set_result(rt, PST_ROUTE_TEMPFAIL, "4.4.4", "no MX host of %.*s has an address: %s",
                      shown(d), d, sk);
}

/* Steps 2-6 of route.h over the MX list m[0..n) (sorted by preference). */
static int plan_mx(struct plan *p, struct mx *m, size_t n, int implicit,
                   char (*local)[PST_DNS_NAME_TEXT_MAX], size_t nlocal)
{
    struct pst_route *rt = p->rt;
    const char *d = rt->domain;

    shuffle_equal(m, n, p->o.seed);
    /* RFC 5321 5.1: drop our own preference level and every worse one */
    int self = 0;
    uint16_t self_pref = 0;
    for (size_t i = 0; i < n; i++)
        if (is_local(local, nlocal, m[i].name) && (!self || m[i].pref < self_pref)) {
            self = 1;
            self_pref = m[i].pref;
        }
    if (self) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (m[i].pref < self_pref)
                m[k++] = m[i];
        n = k;
        if (n == 0)
            return set_result(rt, PST_ROUTE_PERMFAIL, "5.4.6", "mail for %.*s loops back to myself",
                              shown(d), d);
    }
    /* the policy hook (route.h step 4): MTA-STS "mx" patterns, DANE */
    if (p->o.allow_mx != NULL) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (p->o.allow_mx(p->o.allow_arg, m[i].name))
                m[k++] = m[i];
            else
                note_skip(p, m[i].name, "not allowed by policy");
        if (k == 0)
            return set_result(rt, PST_ROUTE_TEMPFAIL, "4.7.0",
                              "no MX host of %.*s is allowed by its policy: %s", shown(d), d,
                              pst_buf_data(p->skipped));
        n = k;
    }
    if (n > p->o.max_mx) {
        n = p->o.max_mx;
        rt->truncated = 1;
    }
    for (size_t i = 0; i < n && !p->budget_out; i++) {
        if (rt->ntargets >= p->o.max_targets) {
            rt->truncated = 1;
            break;
        }
        int rc = resolve_host(p, m[i].name, m[i].pref, implicit);
        if (rc != 0)
            return rc;
    }
    return finish_hosts(p, implicit);
}

/* Normalises our names into a new array (*out, count *n). */
static int local_names(const struct pst_route_options *o, char (**out)[PST_DNS_NAME_TEXT_MAX],
                       size_t *n)
{
    *out = NULL;
    *n = 0;
    if (o->nlocal_names == 0)
        return 0;
    char(*names)[PST_DNS_NAME_TEXT_MAX] = calloc(o->nlocal_names, sizeof *names);
    if (names == NULL)
        return PST_ERR_NOMEM;
    for (size_t i = 0; i < o->nlocal_names; i++)
        if (o->local_names[i] == NULL ||
            pst_dns_name_normalize(o->local_names[i], names[i], sizeof names[i]) != 0) {
            free(names);
            return PST_ERR_INVAL;
        }
    *out = names;
    *n = o->nlocal_names;
    return 0;
}

/* Plans name: mode 1 with an MX lookup, 0 its addresses only. */
static int plan_name(struct pst_resolver *r, struct pst_dns_budget *b, const char *name, int mode,
                     const struct pst_route_options *opt, struct pst_route **out)
{
    char text[PST_DNS_NAME_TEXT_MAX];
    char(*local)[PST_DNS_NAME_TEXT_MAX] = NULL;
    struct pst_dns_answer *mxa = NULL;
    struct mx *m = NULL;
    struct plan p = {0};
    size_t nlocal = 0, n = 0;
    int rc;

    if ((rc = fill_options(opt, &p.o)) != 0)
        return rc;
    if ((rc = local_names(&p.o, &local, &nlocal)) != 0)
        return rc;
    p.r = r;
    p.b = b;
    if ((rc = new_route(name, &p.rt)) != 0)
        goto out;
    struct pst_route *rt = p.rt;
    const char *d = rt->domain;
    p.skipped = pst_buf_new(PST_ROUTE_REASON_MAX - 1);
    if (p.skipped == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    if (mode == 0) {
        struct mx one = {d, 0};
        rc = plan_mx(&p, &one, 1, 0, NULL, 0);
        goto out;
    }
    rc = pst_dns_query(r, b, d, PST_DNS_MX, &mxa);
    if (rc == PST_ERR_TOOBIG) {
        rc = set_result(rt, PST_ROUTE_TEMPFAIL, "4.4.3",
                        "DNS query budget used up before MX lookup of %.*s", shown(d), d);
        goto out;
    }
    if (rc != 0)
        goto out;
    rt->mx_dnssec = mxa->dnssec;
    snprintf(text, sizeof text, "%s", mxa->reason != NULL ? mxa->reason : "");
    switch (mxa->status) {
    case PST_DNS_RETRY:
        /* RFC 5321 5.1: "the message MUST be queued and retried later" */
        rc =
            set_result(rt, PST_ROUTE_TEMPFAIL, "4.4.3", "MX lookup of %.*s: %s", shown(d), d, text);
        goto out;
    case PST_DNS_FAIL:
        rc = set_result(rt, PST_ROUTE_PERMFAIL, "5.4.4", "MX lookup of %.*s failed: %s", shown(d),
                        d, text);
        goto out;
    case PST_DNS_NOTFOUND:
        if (mxa->notfound != PST_DNS_NODATA) {
            /* RFC 5321 5.1: non-existent domain "MUST be reported as an
             * error" */
            rc = set_result(rt, PST_ROUTE_PERMFAIL, "5.1.2",
                            "no such domain: %.*s (MX lookup: NXDOMAIN)", shown(d), d);
            goto out;
        }
        /* RFC 5321 5.1: no MX records: the implicit MX, preference 0 */
        rt->implicit = 1;
        struct mx one = {d, 0};
        rc = plan_mx(&p, &one, 1, 1, local, nlocal);
        goto out;
    case PST_DNS_OK:
        break;
    }
    m = calloc(mxa->nrrs > 0 ? mxa->nrrs : 1, sizeof *m);
    if (m == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < mxa->nrrs; i++) {
        const struct pst_dns_rr *rr = &mxa->rrs[i];
        /* a "." among other MX records names no host: dropped (route.h) */
        if (rr->type != PST_DNS_MX || rr->name == NULL || strcmp(rr->name, ".") == 0)
            continue;
        /* a host named twice keeps its best preference (the list is sorted) */
        size_t k = 0;
        while (k < n && strcmp(m[k].name, rr->name) != 0)
            k++;
        if (k < n)
            continue;
        m[n].name = rr->name;
        m[n].pref = rr->preference;
        n++;
    }
    if (n == 0) {
        /* RFC 7505 3: a single MX whose exchange is the root: the domain
         * accepts no mail (several "." and nothing else say the same) */
        rc = set_result(rt, PST_ROUTE_PERMFAIL, "5.1.10",
                        "domain %.*s does not accept mail (null MX, RFC 7505)", shown(d), d);
        goto out;
    }
    rc = plan_mx(&p, m, n, 0, local, nlocal);
out:
    free(m);
    free(local);
    pst_dns_answer_free(mxa);
    pst_buf_free(p.skipped);
    if (rc != 0) {
        pst_route_free(p.rt);
        return rc;
    }
    *out = p.rt;
    return 0;
}

/* An address literal: one target, no DNS. */
static int plan_literal(const char *text, enum pst_route_family fam, const unsigned char *addr,
                        const struct pst_route_options *opt, struct pst_route **out)
{
    struct plan p = {0};
    int rc = fill_options(opt, &p.o);

    if (rc != 0)
        return rc;
    if ((rc = new_route(text, &p.rt)) != 0)
        return rc;
    if ((p.o.families & fam) == 0)
        rc = set_result(p.rt, PST_ROUTE_PERMFAIL, "5.4.4", "%s: no usable address family", text);
    else if (!usable(fam, addr))
        rc = set_result(p.rt, PST_ROUTE_PERMFAIL, "5.4.4", "%s: no connection can go there", text);
    else
        rc = add_target(&p, text, 0, 0, fam, addr, p.o.port, PST_DNS_INSECURE);
    if (rc != 0) {
        pst_route_free(p.rt);
        return rc;
    }
    *out = p.rt;
    return 0;
}

int pst_route_plan(struct pst_resolver *r, struct pst_dns_budget *b, const char *domain,
                   const struct pst_route_options *o, struct pst_route **out)
{
    char text[PST_DNS_NAME_TEXT_MAX], atext[PST_ROUTE_ADDR_TEXT];
    unsigned char addr[16];
    enum pst_route_family fam;

    if (r == NULL || domain == NULL || out == NULL)
        return PST_ERR_INVAL;
    if (domain[0] == '[') {
        /* RFC 5321 4.1.3: "[192.0.2.1]", "[IPv6:2001:db8::1]" */
        if (parse_literal(domain, strlen(domain), 0, &fam, addr, atext) != 0)
            return PST_ERR_SYNTAX;
        return plan_literal(domain, fam, addr, o, out);
    }
    if (pst_dns_name_normalize(domain, text, sizeof text) != 0 || strcmp(text, ".") == 0)
        return PST_ERR_SYNTAX;
    return plan_name(r, b, text, 1, o, out);
}

int pst_route_plan_relay(struct pst_resolver *r, struct pst_dns_budget *b,
                         const struct pst_route_relay *relay, const struct pst_route_options *o,
                         struct pst_route **out)
{
    struct pst_route_options ro;
    char text[PST_DNS_NAME_TEXT_MAX];
    int rc;

    if (r == NULL || relay == NULL || out == NULL)
        return PST_ERR_INVAL;
    if ((rc = fill_options(o, &ro)) != 0)
        return rc;
    ro.port = relay->port != 0 ? relay->port : 25;
    if (relay->literal) {
        char lit[PST_DNS_NAME_TEXT_MAX + 8];
        snprintf(lit, sizeof lit, "[%s]", relay->host);
        return plan_literal(lit, relay->family, relay->addr, &ro, out);
    }
    if (pst_dns_name_normalize(relay->host, text, sizeof text) != 0 || strcmp(text, ".") == 0)
        return PST_ERR_SYNTAX;
    if (relay->mx)
        return plan_name(r, b, text, 1, &ro, out);
    /* "[name]": its addresses; none is our configuration's problem, so
     * the mail waits (finish_hosts: not implicit, temporary) */
    ro.local_names = NULL;
    ro.nlocal_names = 0;
    return plan_name(r, b, text, 0, &ro, out);
}

/* ---- relay host syntax -------------------------------------------------- */

static int bad(char *why, size_t whylen, const char *text)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", text);
    return PST_ERR_SYNTAX;
}

/* RFC 1123 2.1 LDH labels, an optional final dot, at most 253 octets. */
static int ldh_name(const char *s, size_t len)
{
    size_t label = 0;

    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0))
            return 0;
        if (++label > PST_DNS_LABEL_MAX)
            return 0;
    }
    return label > 0 && s[len - 1] != '-'; /* no empty last label ("a..") */
}

int pst_route_relay_parse(const char *spec, struct pst_route_relay *out, char *why, size_t whylen)
{
    struct pst_route_relay rl;
    const char *host, *colon = NULL;
    size_t hlen, len;

    if (spec == NULL || out == NULL)
        return PST_ERR_INVAL;
    memset(&rl, 0, sizeof rl);
    len = strlen(spec);
    if (len == 0)
        return bad(why, whylen, "empty relay host");
    if (len > PST_DNS_NAME_TEXT_MAX)
        return bad(why, whylen, "relay host too long");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)spec[i] <= 0x20 || (unsigned char)spec[i] >= 0x7f)
            return bad(why, whylen, "space, control or non-ASCII octet in relay host");
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL)
            return bad(why, whylen, "'[' without ']'");
        host = spec + 1;
        hlen = (size_t)(close - host);
        if (close[1] != '\0') {
            if (close[1] != ':')
                return bad(why, whylen, "after ']' only ':port' may follow");
            colon = close + 1;
        }
        rl.mx = 0;
        char atext[PST_ROUTE_ADDR_TEXT];
        if (parse_literal(spec, (size_t)(close - spec) + 1, 1, &rl.family, rl.addr, atext) == 0) {
            if (!usable(rl.family, rl.addr))
                return bad(why, whylen, "an address no connection can go to");
            rl.literal = 1;
            snprintf(rl.host, sizeof rl.host, "%s", atext);
        } else if (ldh_name(host, hlen)) {
            if (hlen > 0 && host[hlen - 1] == '.')
                hlen--; /* the final dot is implied */
            /* a dotted quad is an address or nothing (RFC 1123 2.1) */
            int digits = 1;
            for (size_t i = 0; i < hlen; i++)
                if (!(host[i] >= '0' && host[i] <= '9') && host[i] != '.')
                    digits = 0;
            if (digits)
                return bad(why, whylen, "not an IPv4 address");
            memcpy(rl.host, host, hlen);
            rl.host[hlen] = '\0';
        } else {
            return bad(why, whylen, "not a host name or address between '[' and ']'");
        }
    } else {
        if (strchr(spec, ']') != NULL)
            return bad(why, whylen, "']' without '['");
        colon = strchr(spec, ':');
        host = spec;
        hlen = colon != NULL ? (size_t)(colon - spec) : len;
        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            return bad(why, whylen, "an IPv6 address needs brackets: [IPv6:...]");
        if (!ldh_name(host, hlen))
            return bad(why, whylen, "not a host name");
        if (hlen > 0 && host[hlen - 1] == '.')
            hlen--;
        int digits = 1;
        for (size_t i = 0; i < hlen; i++)
            if (!(host[i] >= '0' && host[i] <= '9') && host[i] != '.')
                digits = 0;
        if (digits)
            return bad(why, whylen, "an address needs brackets: [192.0.2.1]");
        memcpy(rl.host, host, hlen);
        rl.host[hlen] = '\0';
        rl.mx = 1;
    }
    rl.port = 25;
    if (colon != NULL) {
        const char *ps = colon + 1;
        unsigned long v = 0;
        size_t nd = 0;
        for (; ps[nd] != '\0'; nd++) {
            if (ps[nd] < '0' || ps[nd] > '9' || nd >= 5)
                return bad(why, whylen, "port is not a number from 1 to 65535");
            v = v * 10 + (unsigned long)(ps[nd] - '0');
        }
        if (nd == 0 || v == 0 || v > 65535)
            return bad(why, whylen, "port is not a number from 1 to 65535");
        rl.port = (uint16_t)v;
    }
    for (char *c = rl.host; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    *out = rl;
    return 0;
}
