/*
 * dns_answer.c - building DNS answers, the caller-facing query calls with
 * their budget, and the text helpers of dns.h.
 *
 * The budget and the name and type checks live here, in front of every
 * backend, so no backend can forget them. Limits per answer (dns.h):
 * PST_DNS_MAX_RECORDS records and PST_DNS_MAX_ANSWER_BYTES rdata octets;
 * past either the answer becomes FAIL, never a partial OK.
 */
#include "dns.h"
#include "buf.h"
#include "err.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    uint16_t type;
    const char *name;
} types[] = {
    {PST_DNS_A, "A"},       {PST_DNS_AAAA, "AAAA"}, {PST_DNS_TXT, "TXT"},     {PST_DNS_MX, "MX"},
    {PST_DNS_TLSA, "TLSA"}, {PST_DNS_PTR, "PTR"},   {PST_DNS_CNAME, "CNAME"},
};
#define NTYPES (sizeof types / sizeof types[0])

const char *pst_dns_type_name(uint16_t type)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (types[i].type == type)
            return types[i].name;
    return "?";
}

int pst_dns_type_parse(const char *s, uint16_t *type)
{
    for (size_t i = 0; i < NTYPES; i++) {
        const char *a = types[i].name, *b = s;
        while (*a != '\0' && (*b == *a || *b == *a - 'A' + 'a'))
            a++, b++;
        if (*a == '\0' && *b == '\0') {
            *type = types[i].type;
            return 0;
        }
    }
    return PST_ERR_UNSUPPORTED;
}

static int type_known(uint16_t type)
{
    return strcmp(pst_dns_type_name(type), "?") != 0;
}

const char *pst_dns_status_name(enum pst_dns_status st)
{
    switch (st) {
    case PST_DNS_OK:
        return "ok";
    case PST_DNS_NOTFOUND:
        return "notfound";
    case PST_DNS_RETRY:
        return "retry";
    case PST_DNS_FAIL:
        return "fail";
    }
    return "?";
}

const char *pst_dns_notfound_name(enum pst_dns_notfound n)
{
    switch (n) {
    case PST_DNS_NXDOMAIN:
        return "nxdomain";
    case PST_DNS_NODATA:
        return "nodata";
    case PST_DNS_FOUND:
        break;
    }
    return NULL;
}

const char *pst_dns_dnssec_name(enum pst_dns_dnssec s)
{
    switch (s) {
    case PST_DNS_SECURE:
        return "secure";
    case PST_DNS_BOGUS:
        return "bogus";
    case PST_DNS_INSECURE:
        break;
    }
    return "insecure";
}

/* ---- answers ------------------------------------------------------------ */

int pst_dns_answer_new(const char *name, uint16_t type, struct pst_dns_answer **out)
{
    char text[PST_DNS_NAME_TEXT_MAX];
    struct pst_dns_answer *a = NULL;
    int rc = pst_dns_name_normalize(name, text, sizeof text);

    if (rc != 0)
        return PST_ERR_SYNTAX;
    a = calloc(1, sizeof *a);
    if (a == NULL)
        return PST_ERR_NOMEM;
    a->name = strdup(text);
    a->canonical = strdup(text);
    if (a->name == NULL || a->canonical == NULL) {
        pst_dns_answer_free(a);
        return PST_ERR_NOMEM;
    }
    a->type = type;
    *out = a;
    return 0;
}

int pst_dns_answer_retry(const char *name, uint16_t type, const char *reason,
                         struct pst_dns_answer **out)
{
    struct pst_dns_answer *a;
    int rc = pst_dns_answer_new(name, type, &a);

    if (rc != 0)
        return rc;
    rc = pst_dns_answer_set(a, PST_DNS_RETRY, PST_DNS_FOUND, "%s",
                            reason != NULL ? reason : "temporary failure");
    if (rc != 0) {
        pst_dns_answer_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int pst_dns_answer_timeout(const char *name, uint16_t type, unsigned timeout_ms,
                           struct pst_dns_answer **out)
{
    char text[64];

    if (timeout_ms % 1000 == 0)
        snprintf(text, sizeof text, "timed out after %u s", timeout_ms / 1000);
    else
        snprintf(text, sizeof text, "timed out after %u ms", timeout_ms);
    return pst_dns_answer_retry(name, type, text, out);
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    *out = strdup(s);
    return *out == NULL ? PST_ERR_NOMEM : 0;
}

int pst_dns_answer_copy(const struct pst_dns_answer *a, struct pst_dns_answer **out)
{
    struct pst_dns_answer *c = calloc(1, sizeof *c);

    if (c == NULL)
        return PST_ERR_NOMEM;
    *c = *a;
    c->name = c->canonical = c->reason = NULL;
    c->rrs = NULL;
    c->nrrs = 0;
    if (dup_opt(a->name, &c->name) != 0 || dup_opt(a->canonical, &c->canonical) != 0 ||
        dup_opt(a->reason, &c->reason) != 0)
        goto nomem;
    if (a->nrrs > 0) {
        c->rrs = calloc(a->nrrs, sizeof *c->rrs);
        if (c->rrs == NULL)
            goto nomem;
        for (size_t i = 0; i < a->nrrs; i++) {
            const struct pst_dns_rr *r = &a->rrs[i];
            struct pst_dns_rr *d = &c->rrs[i];
            *d = *r;
            d->name = NULL;
            d->data = NULL;
            c->nrrs = i + 1;
            if (dup_opt(r->name, &d->name) != 0)
                goto nomem;
            if (r->data != NULL) {
                /* data keeps its NUL after the counted bytes (dns.h) */
                d->data = malloc(r->len + 1);
                if (d->data == NULL)
                    goto nomem;
                memcpy(d->data, r->data, r->len);
                d->data[r->len] = '\0';
            }
        }
    }
    *out = c;
    return 0;
nomem:
    pst_dns_answer_free(c);
    return PST_ERR_NOMEM;
}

static void drop_records(struct pst_dns_answer *a)
{
    for (size_t i = 0; i < a->nrrs; i++)
        pst_dns_rr_clear(&a->rrs[i]);
    free(a->rrs);
    a->rrs = NULL;
    a->nrrs = 0;
    a->bytes = 0;
}

void pst_dns_answer_free(struct pst_dns_answer *a)
{
    if (a == NULL)
        return;
    drop_records(a);
    free(a->name);
    free(a->canonical);
    free(a->reason);
    free(a);
}

int pst_dns_answer_set(struct pst_dns_answer *a, enum pst_dns_status st, enum pst_dns_notfound nf,
                       const char *reason, ...)
{
    a->status = st;
    a->notfound =
        st == PST_DNS_NOTFOUND ? (nf != PST_DNS_FOUND ? nf : PST_DNS_NXDOMAIN) : PST_DNS_FOUND;
    if (st != PST_DNS_OK)
        drop_records(a);
    if (st == PST_DNS_RETRY || st == PST_DNS_FAIL) {
        /* the chain, if any, is in the reason: every backend answers
         * the same canonical name for a failure */
        char *c = strdup(a->name);
        if (c != NULL) {
            free(a->canonical);
            a->canonical = c;
        }
        a->ttl = 0;
    }
    free(a->reason);
    a->reason = NULL;
    if (reason == NULL)
        return 0;

    char text[512];
    va_list ap;
    va_start(ap, reason);
    int n = vsnprintf(text, sizeof text, reason, ap);
    va_end(ap);
    if (n < 0)
        return PST_ERR_INVAL;
    a->reason = strdup(text); /* a longer reason is cut */
    return a->reason != NULL ? 0 : PST_ERR_NOMEM;
}

int pst_dns_answer_set_canonical(struct pst_dns_answer *a, const char *name)
{
    char text[PST_DNS_NAME_TEXT_MAX];
    int rc = pst_dns_name_normalize(name, text, sizeof text);

    if (rc != 0)
        return PST_ERR_SYNTAX;
    char *c = strdup(text);
    if (c == NULL)
        return PST_ERR_NOMEM;
    free(a->canonical);
    a->canonical = c;
    return 0;
}

int pst_dns_answer_add(struct pst_dns_answer *a, const uint8_t *rdata, size_t len, uint32_t ttl)
{
    struct pst_dns_rr rr;
    const char *why = NULL;

    if (a->status != PST_DNS_OK)
        return 0;
    if (a->nrrs >= PST_DNS_MAX_RECORDS) {
        pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND,
                           "oversize answer: more than %d %s records", PST_DNS_MAX_RECORDS,
                           pst_dns_type_name(a->type));
        return PST_ERR_TOOBIG;
    }
    if (len > PST_DNS_MAX_ANSWER_BYTES - a->bytes) {
        pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND,
                           "oversize answer: more than %d octets of %s data",
                           PST_DNS_MAX_ANSWER_BYTES, pst_dns_type_name(a->type));
        return PST_ERR_TOOBIG;
    }
    int rc = pst_dns_rdata_decode(a->type, rdata, len, &rr, &why);
    if (rc == PST_ERR_NOMEM)
        return rc;
    if (rc != 0) {
        pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND, "malformed %s rdata: %s",
                           pst_dns_type_name(a->type), why != NULL ? why : "unreadable");
        return PST_ERR_SYNTAX;
    }
    /* room grows 4, 8, 16... up to PST_DNS_MAX_RECORDS: full at powers of two */
    size_t cap = 0;
    if (a->nrrs == 0)
        cap = 4;
    else if (a->nrrs >= 4 && (a->nrrs & (a->nrrs - 1)) == 0)
        cap = a->nrrs * 2;
    if (cap > 0) {
        struct pst_dns_rr *p = realloc(a->rrs, cap * sizeof *p);
        if (p == NULL) {
            pst_dns_rr_clear(&rr);
            return PST_ERR_NOMEM;
        }
        a->rrs = p;
    }
    rr.ttl = ttl;
    a->rrs[a->nrrs++] = rr;
    a->bytes += len;
    return 0;
}

static int mx_cmp(const void *x, const void *y)
{
    const struct pst_dns_rr *a = x, *b = y;

    if (a->preference != b->preference)
        return a->preference < b->preference ? -1 : 1;
    return strcmp(a->name, b->name);
}

void pst_dns_answer_finish(struct pst_dns_answer *a)
{
    if (a->status != PST_DNS_OK)
        return;
    if (a->nrrs == 0) {
        pst_dns_answer_set(a, PST_DNS_NOTFOUND, PST_DNS_NODATA, NULL);
        return;
    }
    /* RFC 5321 5.1: lowest preference first; the exchange name breaks
     * ties so output is stable (delivery code may shuffle equals) */
    if (a->type == PST_DNS_MX)
        qsort(a->rrs, a->nrrs, sizeof *a->rrs, mx_cmp);
    if (a->ttl == 0) {
        uint32_t min = a->rrs[0].ttl;
        for (size_t i = 1; i < a->nrrs; i++)
            if (a->rrs[i].ttl < min)
                min = a->rrs[i].ttl;
        a->ttl = min;
    }
}

/* ---- the caller-facing calls -------------------------------------------- */

static int check_query(struct pst_resolver *r, struct pst_dns_budget *b, const char *name,
                       uint16_t type, char text[PST_DNS_NAME_TEXT_MAX])
{
    if (r == NULL || name == NULL)
        return PST_ERR_INVAL;
    if (pst_dns_name_normalize(name, text, PST_DNS_NAME_TEXT_MAX) != 0)
        return PST_ERR_SYNTAX;
    if (!type_known(type))
        return PST_ERR_UNSUPPORTED;
    if (b != NULL && b->max_queries > 0 && b->used >= b->max_queries)
        return PST_ERR_TOOBIG;
    return 0;
}

int pst_dns_query(struct pst_resolver *r, struct pst_dns_budget *b, const char *name, uint16_t type,
                  struct pst_dns_answer **out)
{
    char text[PST_DNS_NAME_TEXT_MAX];
    struct pst_dns_answer *a = NULL;
    int rc = check_query(r, b, name, type, text);

    if (rc != 0)
        return rc;
    unsigned timeout = b != NULL && b->timeout_ms > 0 ? b->timeout_ms : PST_DNS_TIMEOUT_MS;
    if (b != NULL)
        b->used++;
    rc = r->query(r, text, type, timeout, &a);
    if (rc != 0)
        return rc;
    *out = a;
    return 0;
}

int pst_dns_query_async(struct pst_resolver *r, struct pst_dns_budget *b, const char *name,
                        uint16_t type, pst_dns_done_fn *done, void *arg, unsigned *id)
{
    char text[PST_DNS_NAME_TEXT_MAX];
    int rc = check_query(r, b, name, type, text);

    if (rc != 0)
        return rc;
    if (r->query_async == NULL || done == NULL)
        return r->query_async == NULL ? PST_ERR_UNSUPPORTED : PST_ERR_INVAL;
    unsigned qid = 0;
    rc = r->query_async(r, text, type, done, arg, &qid);
    if (rc != 0)
        return rc;
    if (b != NULL)
        b->used++;
    if (id != NULL)
        *id = qid;
    return 0;
}

int pst_dns_cancel(struct pst_resolver *r, unsigned id)
{
    if (r == NULL || r->cancel == NULL)
        return PST_ERR_UNSUPPORTED;
    return r->cancel(r, id);
}

int pst_dns_fd(struct pst_resolver *r)
{
    if (r == NULL || r->fd == NULL)
        return PST_ERR_UNSUPPORTED;
    return r->fd(r);
}

int pst_dns_process(struct pst_resolver *r)
{
    if (r == NULL || r->process == NULL)
        return PST_ERR_UNSUPPORTED;
    return r->process(r);
}

void pst_resolver_free(struct pst_resolver *r)
{
    if (r != NULL)
        r->free(r);
}

/* ---- text helpers ------------------------------------------------------- */

int pst_dns_text_escape(struct pst_buf *out, const unsigned char *p, size_t n, int quote)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        int rc;
        if (c < 0x20 || c > 0x7e || c == '\\' || (quote && c == '"'))
            rc = pst_buf_addf(out, "\\%03u", c);
        else
            rc = pst_buf_addc(out, (char)c);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int pst_dns_ptr_name(const char *ip, char *out, size_t outlen)
{
    unsigned char a[16];
    size_t len = 0;

    if (inet_pton(AF_INET, ip, a) == 1) {
        int n = snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa.", a[3], a[2], a[1], a[0]);
        return n > 0 && (size_t)n < outlen ? 0 : PST_ERR_TOOBIG;
    }
    if (inet_pton(AF_INET6, ip, a) != 1)
        return PST_ERR_SYNTAX;
    static const char hex[] = "0123456789abcdef";
    if (outlen < 64 + sizeof "ip6.arpa.")
        return PST_ERR_TOOBIG;
    for (int i = 15; i >= 0; i--) {
        out[len++] = hex[a[i] & 0xf];
        out[len++] = '.';
        out[len++] = hex[a[i] >> 4];
        out[len++] = '.';
    }
    memcpy(out + len, "ip6.arpa.", sizeof "ip6.arpa.");
    return 0;
}
