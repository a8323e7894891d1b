/*
 * spf_eval.c - check_host() (RFC 7208 4, 5, 6) over the resolver
 * interface, with the processing limits of RFC 7208 4.6.4 and the query
 * budget of dns.h; see spf.h for the choices made where the RFC leaves
 * room.
 *
 * Internal convention: helpers return 0 to go on, STOP after setting the
 * final result (temperror or permerror) and its reason in the context, or
 * a negative PST_ERR_* (out of memory) that ends the evaluation.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "err.h"
#include "spf.h"
#include "cidr.h"

#define STOP 1

struct ctx {
    struct pst_resolver *r;
    struct pst_spf_options o;
    struct pst_dns_budget budget;
    int v6;
    unsigned char ip[16];
    char c[INET6_ADDRSTRLEN];
    char i[72];
    char t[24];
    char *s, *l, *dom;
    const char *h;
    char *p; /* %{p}, computed once */
    unsigned terms, voids;
    enum pst_spf_result stop; /* TEMPERROR or PERMERROR once set */
    char reason[PST_SPF_REASON_MAX];
    char *mech;
    char *exp;
};

static int stop(struct ctx *x, enum pst_spf_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int stop(struct ctx *x, enum pst_spf_result r, const char *fmt, ...)
{
    va_list ap;
    x->stop = r;
    va_start(ap, fmt);
    vsnprintf(x->reason, sizeof x->reason, fmt, ap);
    va_end(ap);
    return STOP;
}

void pst_spf_options_default(struct pst_spf_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_terms = 10; /* RFC 7208 4.6.4 */
    o->max_void = 2;
    o->max_mx = 10;
    o->max_ptr = 10;
    o->max_queries = 128;
}

/*
 * One query. 0 with *a set (OK), or *a NULL for a void lookup (NXDOMAIN,
 * NODATA, or a name that cannot be asked), counted against max_void. soft:
 * a DNS error is also *a NULL (RFC 7208 5.5) instead of temperror.
 */
static int query(struct ctx *x, const char *name, uint16_t type, int soft,
                 struct pst_dns_answer **a)
{
    struct pst_dns_answer *ans = NULL;
    int rc = pst_dns_query(x->r, &x->budget, name, type, &ans);

    *a = NULL;
    if (rc == PST_ERR_TOOBIG)
        return stop(x, PST_SPF_PERMERROR, "DNS query budget of %u queries used up",
                    x->o.max_queries);
    if (rc == PST_ERR_NOMEM)
        return rc;
    if (rc == 0 && (ans->status == PST_DNS_RETRY || ans->status == PST_DNS_FAIL)) {
        if (soft) {
            pst_dns_answer_free(ans);
            return 0;
        }
        /* RFC 7208 4.4, 5: RCODE other than 0 or 3, or a timeout */
        rc = stop(x, PST_SPF_TEMPERROR, "DNS %s %s: %s", pst_dns_type_name(type), name,
                  ans->reason != NULL ? ans->reason : pst_dns_status_name(ans->status));
        pst_dns_answer_free(ans);
        return rc;
    }
    if (rc == 0 && ans->status == PST_DNS_OK && ans->nrrs > 0) {
        *a = ans;
        return 0;
    }
    pst_dns_answer_free(ans);
    /* RFC 7208 4.6.4: void lookups */
    if (++x->voids > x->o.max_void)
        return stop(x, PST_SPF_PERMERROR,
                    "more than %u void lookups (RFC 7208 4.6.4), the last %s %s", x->o.max_void,
                    pst_dns_type_name(type), name);
    return 0;
}

static int count_term(struct ctx *x, const char *text)
{
    if (++x->terms > x->o.max_terms)
        return stop(x, PST_SPF_PERMERROR,
                    "more than %u DNS-querying terms (RFC 7208 4.6.4) at \"%.64s\"", x->o.max_terms,
                    text);
    return 0;
}

static int addr_in(struct ctx *x, const struct pst_dns_answer *a, unsigned bits)
{
    for (size_t k = 0; a != NULL && k < a->nrrs; k++)
        if (a->rrs[k].type == (x->v6 ? PST_DNS_AAAA : PST_DNS_A) &&
            pst_cidr_match_bytes(a->rrs[k].addr, x->ip, bits))
            return 1;
    return 0;
}

/* name (resolver text form, trailing dot) equals dom or lies below it. */
static int name_under(const char *name, const char *dom)
{
    size_t n = strlen(name), d = strlen(dom);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (d > 0 && dom[d - 1] == '.')
        d--;
    if (d == 0 || n < d || strncasecmp(name + n - d, dom, d) != 0)
        return 0;
    return n == d || name[n - d - 1] == '.';
}

/*
 * RFC 7208 5.5: the client's validated names, at most max_ptr PTR names
 * looked at (the rest ignored). Every DNS error only drops a name.
 * calls fn(arg, name) for each; fn returns 1 to stop early.
 */
static int validated(struct ctx *x, int (*fn)(void *, const char *), void *arg)
{
    char rev[80];
    struct pst_dns_answer *ptr = NULL;
    int rc;

    if (pst_dns_ptr_name(x->c, rev, sizeof rev) != 0)
        return 0;
    if ((rc = query(x, rev, PST_DNS_PTR, 1, &ptr)) != 0 || ptr == NULL)
        return rc;
    for (size_t k = 0; k < ptr->nrrs && k < x->o.max_ptr; k++) {
        struct pst_dns_answer *a = NULL;
        if (ptr->rrs[k].name == NULL)
            continue;
        if ((rc = query(x, ptr->rrs[k].name, x->v6 ? PST_DNS_AAAA : PST_DNS_A, 1, &a)) != 0)
            break;
        int ok = addr_in(x, a, x->v6 ? 128 : 32);
        pst_dns_answer_free(a);
        if (ok && fn(arg, ptr->rrs[k].name))
            break;
    }
    pst_dns_answer_free(ptr);
    return rc;
}

struct pick {
    const char *dom;
    char *exact, *sub, *any;
    int match; /* for ptr: a name at or below dom */
};

static int pick_name(void *arg, const char *name)
{
    struct pick *pk = arg;
    size_t n = strlen(name);
    char *copy = NULL;

    if (n > 0 && name[n - 1] == '.')
        n--;
    if ((copy = malloc(n + 1)) == NULL)
        return 1;
    memcpy(copy, name, n);
    copy[n] = '\0';
    if (name_under(name, pk->dom)) {
        pk->match = 1;
        size_t d = strlen(pk->dom);
        if (d > 0 && pk->dom[d - 1] == '.')
            d--;
        char **slot = n == d ? &pk->exact : &pk->sub;
        if (*slot == NULL) {
            *slot = copy;
            copy = NULL;
        }
    } else if (pk->any == NULL) {
        pk->any = copy;
        copy = NULL;
    }
    free(copy);
    return 0;
}

struct penv {
    struct ctx *x;
    const char *d;
};

/* RFC 7208 7.3 %{p}: a validated name, the domain itself first, then one
 * below it, then any; "unknown" without one. */
static int p_value(void *arg, const char **text)
{
    struct penv *pe = arg;
    struct ctx *x = pe->x;

    if (x->p == NULL) {
        struct pick pk = {.dom = pe->d};
        int rc = validated(x, pick_name, &pk);
        char *best = pk.exact != NULL ? pk.exact : pk.sub != NULL ? pk.sub : pk.any;
        if (rc == 0)
            x->p = best != NULL ? best : strdup("unknown");
        if (best != pk.exact)
            free(pk.exact);
        if (best != pk.sub)
            free(pk.sub);
        if (best != pk.any)
            free(pk.any);
        if (rc != 0)
            return rc == STOP ? PST_ERR_AGAIN : rc;
        if (x->p == NULL)
            return PST_ERR_NOMEM;
    }
    *text = x->p;
    return 0;
}

/* The macro letters of RFC 7208 7.3 for domain d in the evaluation x. */
static void macro_env(struct ctx *x, const char *d, struct penv *pe, struct pst_spf_macro_env *env)
{
    *env = (struct pst_spf_macro_env){
        .s = x->s,
        .l = x->l,
        .o = x->dom,
        .d = d,
        .i = x->i,
        .h = x->h,
        .c = x->c,
        .r = x->o.receiver != NULL ? x->o.receiver : "unknown",
        .t = x->t,
        .v = x->v6 ? "ip6" : "in-addr",
        .p = p_value,
        .p_arg = pe,
    };
}

static int expand(struct ctx *x, const char *spec, const char *d, enum pst_spf_macro_kind kind,
                  char **out)
{
    struct penv pe = {x, d};
    struct pst_spf_macro_env env;
    macro_env(x, d, &pe, &env);
    char why[PST_SPF_REASON_MAX] = "";
    int rc = pst_spf_macro_expand(spec, strlen(spec), kind, &env, out, why, sizeof why);

    if (rc == PST_ERR_AGAIN && x->stop != PST_SPF_NONE)
        return STOP; /* %{p} hit a limit; the reason is set */
    if (rc == PST_ERR_SYNTAX || rc == PST_ERR_TOOBIG)
        return stop(x, PST_SPF_PERMERROR, "%s", why);
    return rc;
}

/* RFC 7208 4.3: a domain that is malformed or not multi-label gives none. */
static int domain_ok(const char *d)
{
    size_t n = strlen(d), label = 0, labels = 0;
    if (n > 0 && d[n - 1] == '.')
        n--;
    if (n == 0 || n > PST_SPF_DOMAIN_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || d[i] == '.') {
            if (label == 0 || label > PST_DNS_LABEL_MAX)
                return 0;
            labels++;
            label = 0;
        } else if ((unsigned char)d[i] <= 0x20 || (unsigned char)d[i] >= 0x7f) {
            return 0;
        } else {
            label++;
        }
    }
    return labels >= 2;
}

static int check_host(struct ctx *x, const char *domain, unsigned depth, int top,
                      enum pst_spf_result *res);

/* RFC 6.2: the explanation of a fail; any problem means none. */
static void explain(struct ctx *x, const char *spec, const char *d)
{
    char *name = NULL, *text = NULL;
    struct pst_dns_answer *a = NULL;
    char why[PST_SPF_REASON_MAX];
    char saved[PST_SPF_REASON_MAX];

    memcpy(saved, x->reason, sizeof saved);

    if (expand(x, spec, d, PST_SPF_MACRO_DOMAIN, &name) != 0 || name == NULL) {
        x->stop = PST_SPF_NONE;
        goto out;
    }
    if (pst_dns_query(x->r, &x->budget, name, PST_DNS_TXT, &a) != 0 || a->status != PST_DNS_OK ||
        a->nrrs != 1)
        goto out;
    struct penv pe = {x, d};
    struct pst_spf_macro_env env;
    macro_env(x, d, &pe, &env);
    if (pst_spf_macro_expand((const char *)a->rrs[0].data, a->rrs[0].len, PST_SPF_MACRO_EXP, &env,
                             &text, why, sizeof why) == 0) {
        free(x->exp);
        x->exp = text;
    }
    x->stop = PST_SPF_NONE; /* a limit hit in %{p} here does not change the result */
out:
    memcpy(x->reason, saved, sizeof saved);
    pst_dns_answer_free(a);
    free(name);
}

/* Evaluates one mechanism: *match set. */
static int mechanism(struct ctx *x, const struct pst_spf_term *t, const char *domain,
                     unsigned depth, int *match)
{
    char *target = NULL;
    struct pst_dns_answer *a = NULL;
    enum pst_spf_result sub;
    int rc = 0;

    *match = 0;
    switch (t->mech) {
    case PST_SPF_M_ALL:
        *match = 1;
        return 0;
    case PST_SPF_M_IP4:
        *match = !x->v6 && pst_cidr_match_bytes(t->addr, x->ip, t->cidr4);
        return 0;
    case PST_SPF_M_IP6:
        *match = x->v6 && pst_cidr_match_bytes(t->addr, x->ip, t->cidr6);
        return 0;
    default:
        break;
    }
    if ((rc = count_term(x, t->text)) != 0)
        return rc;
    if (t->domain != NULL) {
        if ((rc = expand(x, t->domain, domain, PST_SPF_MACRO_DOMAIN, &target)) != 0)
            return rc;
    } else if ((target = strdup(domain)) == NULL) {
        return PST_ERR_NOMEM;
    }
    switch (t->mech) {
    case PST_SPF_M_INCLUDE:
        /* RFC 7208 5.2: the table of include results */
        if ((rc = check_host(x, target, depth + 1, 0, &sub)) != 0)
            break;
        if (sub == PST_SPF_PASS)
            *match = 1;
        else if (sub == PST_SPF_NONE)
            rc = stop(x, PST_SPF_PERMERROR, "include:%.64s has no SPF record (RFC 7208 5.2)",
                      target);
        break;
    case PST_SPF_M_A:
        /* RFC 7208 5.3 */
        if ((rc = query(x, target, x->v6 ? PST_DNS_AAAA : PST_DNS_A, 0, &a)) == 0)
            *match = addr_in(x, a, x->v6 ? t->cidr6 : t->cidr4);
        break;
    case PST_SPF_M_MX:
        /* RFC 7208 5.4, 4.6.4: more than max_mx names is permerror */
        if ((rc = query(x, target, PST_DNS_MX, 0, &a)) != 0 || a == NULL)
            break;
        if (a->nrrs > x->o.max_mx) {
            rc = stop(x, PST_SPF_PERMERROR, "%.64s has %zu MX records, over %u (RFC 7208 4.6.4)",
                      target, a->nrrs, x->o.max_mx);
            break;
        }
        for (size_t k = 0; k < a->nrrs && !*match; k++) {
            struct pst_dns_answer *h = NULL;
            const char *ex = a->rrs[k].name;
            if (ex == NULL || strcmp(ex, ".") == 0)
                continue; /* RFC 7505 null MX */
            if ((rc = query(x, ex, x->v6 ? PST_DNS_AAAA : PST_DNS_A, 0, &h)) != 0)
                break;
            *match = addr_in(x, h, x->v6 ? t->cidr6 : t->cidr4);
            pst_dns_answer_free(h);
        }
        break;
    case PST_SPF_M_PTR: {
        /* RFC 7208 5.5 */
        struct pick pk = {.dom = target};
        rc = validated(x, pick_name, &pk);
        *match = pk.match;
        free(pk.exact);
        free(pk.sub);
        free(pk.any);
        break;
    }
    case PST_SPF_M_EXISTS:
        /* RFC 7208 5.7: always A, whatever the client's family */
        if ((rc = query(x, target, PST_DNS_A, 0, &a)) == 0)
            *match = a != NULL;
        break;
    default:
        break;
    }
    pst_dns_answer_free(a);
    free(target);
    return rc;
}

static int txt_record(struct ctx *x, const char *domain, char **rec, size_t *len,
                      enum pst_spf_result *res)
{
    struct pst_dns_answer *a = NULL;
    size_t found = 0;
    int rc = query(x, domain, PST_DNS_TXT, 0, &a);

    *rec = NULL;
    if (rc != 0)
        return rc;
    for (size_t k = 0; a != NULL && k < a->nrrs; k++) {
        if (!pst_spf_is_record((const char *)a->rrs[k].data, a->rrs[k].len))
            continue;
        if (found++ == 0) {
            if ((*rec = malloc(a->rrs[k].len + 1)) == NULL) {
                rc = PST_ERR_NOMEM;
                break;
            }
            memcpy(*rec, a->rrs[k].data, a->rrs[k].len);
            (*rec)[a->rrs[k].len] = '\0';
            *len = a->rrs[k].len;
        }
    }
    pst_dns_answer_free(a);
    if (rc != 0)
        return rc;
    if (found > 1) {
        free(*rec);
        *rec = NULL;
        /* RFC 7208 4.5 */
        return stop(x, PST_SPF_PERMERROR, "%.64s has %zu SPF records (RFC 7208 4.5)", domain,
                    found);
    }
    if (found == 0) {
        *res = PST_SPF_NONE;
        snprintf(x->reason, sizeof x->reason, "%.64s has no SPF record", domain);
    }
    return 0;
}

static int check_host(struct ctx *x, const char *domain, unsigned depth, int top,
                      enum pst_spf_result *res)
{
    struct pst_spf_record *rec = NULL;
    char *txt = NULL, *target = NULL;
    size_t len = 0;
    char why[PST_SPF_REASON_MAX];
    int rc = 0, match = 0;

    if (depth > PST_SPF_MAX_DEPTH)
        return stop(x, PST_SPF_PERMERROR, "include/redirect nesting over %d", PST_SPF_MAX_DEPTH);
    if (!domain_ok(domain)) {
        /* RFC 7208 4.3 */
        *res = PST_SPF_NONE;
        snprintf(x->reason, sizeof x->reason, "malformed domain \"%.64s\" (RFC 7208 4.3)", domain);
        return 0;
    }
    *res = PST_SPF_NONE;
    if ((rc = txt_record(x, domain, &txt, &len, res)) != 0 || txt == NULL)
        return rc;
    if ((rc = pst_spf_record_parse(txt, len, &rec, why, sizeof why)) != 0) {
        if (rc == PST_ERR_SYNTAX || rc == PST_ERR_TOOBIG)
            rc = stop(x, PST_SPF_PERMERROR, "%.64s: %s", domain, why);
        goto out;
    }
    for (size_t k = 0; k < rec->nterms; k++) {
        const struct pst_spf_term *t = &rec->terms[k];
        if ((rc = mechanism(x, t, domain, depth, &match)) != 0)
            goto out;
        if (!match)
            continue;
        *res = t->qualifier;
        snprintf(x->reason, sizeof x->reason, "%.64s: matched \"%.64s\"", domain, t->text);
        if (top) {
            free(x->mech);
            if ((x->mech = strdup(t->text)) == NULL) {
                rc = PST_ERR_NOMEM;
                goto out;
            }
            /* RFC 7208 6.2: exp= of the record that failed, not of an include */
            if (t->qualifier == PST_SPF_FAIL && rec->exp != NULL)
                explain(x, rec->exp, domain);
        }
        goto out;
    }
    if (rec->redirect != NULL) {
        /* RFC 7208 6.1: used only when no mechanism matched */
        if ((rc = count_term(x, "redirect")) != 0)
            goto out;
        if ((rc = expand(x, rec->redirect, domain, PST_SPF_MACRO_DOMAIN, &target)) != 0)
            goto out;
        if ((rc = check_host(x, target, depth + 1, top, res)) != 0)
            goto out;
        if (*res == PST_SPF_NONE)
            rc = stop(x, PST_SPF_PERMERROR, "redirect=%.64s has no SPF record (RFC 7208 6.1)",
                      target);
        goto out;
    }
    /* RFC 7208 4.7 */
    *res = PST_SPF_NEUTRAL;
    snprintf(x->reason, sizeof x->reason, "%.64s: no mechanism matched", domain);
out:
    free(target);
    free(txt);
    pst_spf_record_free(rec);
    return rc;
}

/* ---- the public entry --------------------------------------------------- */

static int set_ip(struct ctx *x, const char *ip)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1) {
        memcpy(x->ip, a, 4);
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(x->ip, a + 12, 4); /* an IPv4-mapped client is an IPv4 client */
        } else {
            x->v6 = 1;
            memcpy(x->ip, a, 16);
        }
    } else {
        return PST_ERR_INVAL;
    }
    inet_ntop(x->v6 ? AF_INET6 : AF_INET, x->ip, x->c, sizeof x->c);
    if (!x->v6) {
        snprintf(x->i, sizeof x->i, "%s", x->c);
    } else {
        /* RFC 7208 7.3: %{i} of IPv6 is dot-separated nibbles */
        static const char hex[] = "0123456789abcdef";
        for (int k = 0; k < 32; k++) {
            unsigned char b = x->ip[k / 2];
            x->i[2 * k] = hex[k % 2 == 0 ? b >> 4 : b & 15];
            x->i[2 * k + 1] = '.';
        }
        x->i[63] = '\0';
    }
    return 0;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s@%s", a, b);
    return s;
}

void pst_spf_verdict_free(struct pst_spf_verdict *v)
{
    if (v == NULL)
        return;
    free(v->sender);
    free(v->domain);
    free(v->mechanism);
    free(v->explanation);
    free(v->reason);
    free(v);
}

const char *pst_spf_ar_property(const struct pst_spf_verdict *v)
{
    return v->identity == PST_SPF_HELO ? "smtp.helo" : "smtp.mailfrom";
}

const char *pst_spf_ar_value(const struct pst_spf_verdict *v)
{
    return v->identity == PST_SPF_HELO ? v->domain : v->sender;
}

int pst_spf_check(struct pst_resolver *r, const struct pst_spf_options *o, enum pst_spf_identity id,
                  const char *ip, const char *sender, const char *helo,
                  struct pst_spf_verdict **out)
{
    struct ctx x;
    struct pst_spf_verdict *v = NULL;
    enum pst_spf_result res = PST_SPF_NONE;
    int rc;

    memset(&x, 0, sizeof x);
    if (o != NULL)
        x.o = *o;
    else
        pst_spf_options_default(&x.o);
    x.r = r;
    x.budget.max_queries = x.o.max_queries;
    x.budget.timeout_ms = x.o.timeout_ms;
    snprintf(x.t, sizeof x.t, "%lld", x.o.now);
    if (r == NULL || ip == NULL || set_ip(&x, ip) != 0)
        return PST_ERR_INVAL;
    if (helo != NULL && strlen(helo) > PST_SPF_SENDER_MAX)
        return PST_ERR_INVAL;
    x.h = helo != NULL ? helo : "unknown";
    if (id == PST_SPF_HELO || sender == NULL || sender[0] == '\0') {
        /* RFC 7208 2.3, 2.4: postmaster@HELO */
        if (helo == NULL || helo[0] == '\0')
            return PST_ERR_INVAL;
        x.l = strdup("postmaster");
        x.dom = strdup(helo);
    } else {
        if (strlen(sender) > PST_SPF_SENDER_MAX)
            return PST_ERR_INVAL;
        const char *at = strrchr(sender, '@');
        /* RFC 7208 4.3: no local-part means "postmaster" */
        if (at == NULL || at == sender)
            x.l = strdup("postmaster");
        else
            x.l = strndup(sender, (size_t)(at - sender));
        x.dom = strdup(at != NULL ? at + 1 : sender);
    }
    rc = PST_ERR_NOMEM;
    if (x.l == NULL || x.dom == NULL || (x.s = join(x.l, x.dom)) == NULL)
        goto out;
    if ((v = calloc(1, sizeof *v)) == NULL)
        goto out;

    rc = check_host(&x, x.dom, 0, 1, &res);
    if (rc < 0)
        goto out;
    if (rc == STOP) {
        res = x.stop;
        free(x.mech);
        x.mech = NULL;
    }
    rc = PST_ERR_NOMEM;
    v->result = res;
    v->identity = id == PST_SPF_HELO ? PST_SPF_HELO : PST_SPF_MAILFROM;
    v->terms = x.terms;
    v->voids = x.voids;
    v->queries = x.budget.used;
    if ((v->sender = strdup(x.s)) == NULL || (v->domain = strdup(x.dom)) == NULL ||
        (v->reason = strdup(x.reason)) == NULL)
        goto out;
    v->mechanism = x.mech;
    x.mech = NULL;
    if (res == PST_SPF_FAIL) {
        v->explanation = x.exp;
        x.exp = NULL;
    }
    *out = v;
    v = NULL;
    rc = 0;
out:
    pst_spf_verdict_free(v);
    free(x.l);
    free(x.dom);
    free(x.s);
    free(x.p);
    free(x.mech);
    free(x.exp);
    return rc;
}
