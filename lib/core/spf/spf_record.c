/*
 * spf_record.c - SPF record syntax (RFC 7208 4.5, 4.6, 5, 6, 12).
 *
 * The whole record is parsed before anything is evaluated: a syntax error
 * anywhere is permerror (RFC 7208 4.6), including every macro-string
 * (RFC 7208 7.1) and the domain-end rule of domain-spec (RFC 7208 12:
 * "." toplabel ["."] or a macro-expand). Terms are separated by one or
 * more SP (RFC 7208 4.6.1); nothing else is white space. Names are
 * case-insensitive. redirect= and exp= appear at most once (RFC 7208 6);
 * other modifiers are checked for syntax and otherwise ignored (6.3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "err.h"
#include "spf.h"

#define MAX_TERMS (PST_SPF_RECORD_MAX / 2)

static int fail(char *why, size_t whylen, const char *fmt, const char *term, size_t n)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, fmt, (int)(n > 64 ? 64 : n), term);
    return PST_ERR_SYNTAX;
}

const char *pst_spf_result_name(enum pst_spf_result r)
{
    static const char *const names[] = {"none",     "neutral",   "pass",     "fail",
                                        "softfail", "temperror", "permerror"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

int pst_spf_is_record(const char *txt, size_t len)
{
    /* RFC 7208 4.5: "v=spf1" followed by SP or the end */
    return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 && (len == 6 || txt[6] == ' ');
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 7208 12: toplabel = ( *alphanum ALPHA *alphanum ) /
 *                         ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static int is_toplabel(const char *p, size_t n)
{
    int alpha = 0, hyphen = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '-')
            hyphen = 1;
        else if (!is_alnum(p[i]))
            return 0;
        alpha |= is_alpha(p[i]);
    }
    if (hyphen)
        return p[0] != '-' && p[n - 1] != '-';
    return alpha;
}

/*
 * A domain-spec (RFC 7208 12): a macro-string whose end is "." toplabel
 * ["."] or a macro-expand. 0 or PST_ERR_SYNTAX/TOOBIG with why.
 */
static int check_domain_spec(const char *p, size_t n, char *why, size_t whylen)
{
    char mwhy[PST_SPF_REASON_MAX];
    int rc;

    if (n == 0)
        return fail(why, whylen, "empty domain-spec%.*s", "", 0);
    if ((rc = pst_spf_macro_check(p, n, PST_SPF_MACRO_DOMAIN, mwhy, sizeof mwhy)) != 0) {
        if (why != NULL && whylen > 0)
            snprintf(why, whylen, "%s in \"%.*s\"", mwhy, (int)(n > 64 ? 64 : n), p);
        return rc;
    }
    /* ends in a macro-expand? (the syntax is known good here) */
    int last_macro = 0;
    for (size_t i = 0; i < n;) {
        last_macro = p[i] == '%';
        if (!last_macro) {
            i++;
        } else if (p[i + 1] == '{') {
            while (i < n && p[i] != '}')
                i++;
            i++;
        } else {
            i += 2;
        }
    }
    if (last_macro)
        return 0;
    size_t end = n;
    if (p[end - 1] == '.')
        end--;
    size_t dot = end;
    while (dot > 0 && p[dot - 1] != '.')
        dot--;
    if (dot == 0 || !is_toplabel(p + dot, end - dot))
        return fail(why, whylen,
                    "domain-spec \"%.*s\" does not end in a top label or a macro (RFC 7208 "
                    "12)",
                    p, n);
    return 0;
}

/* A prefix length "/N": "0" or 1..digits without a leading 0, <= max. */
static int parse_len(const char *p, size_t n, unsigned max, unsigned *out)
{
    unsigned v = 0;
    if (n == 0 || n > 3 || (n > 1 && p[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* Strips "/N" from the end of p[0..*n) when it is there: 1 and *len;
 * 0 when there is no "/digits" suffix; -1 when it is malformed. */
static int strip_cidr(const char *p, size_t *n, unsigned max, unsigned *len, int dual)
{
    size_t e = *n, d = e;
    while (d > 0 && p[d - 1] >= '0' && p[d - 1] <= '9')
        d--;
    if (d == e || d == 0 || p[d - 1] != '/')
        return 0;
    if (dual && (d < 2 || p[d - 2] != '/'))
        return 0;
    if (parse_len(p + d, e - d, max, len) != 0)
        return -1;
    *n = d - (dual ? 2 : 1);
    return 1;
}

/* RFC 7208 12: ip4-network = qnum "." qnum "." qnum "." qnum, qnum 0..255
 * without leading zeros. */
static int parse_ip4(const char *p, size_t n, unsigned char out[4])
{
    size_t i = 0;
    for (int k = 0; k < 4; k++) {
        size_t s = i;
        unsigned v = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && i - s < 3)
            v = v * 10 + (unsigned)(p[i++] - '0');
        if (i == s || v > 255 || (i - s > 1 && p[s] == '0'))
            return -1;
        out[k] = (unsigned char)v;
        if (k < 3) {
            if (i >= n || p[i] != '.')
                return -1;
            i++;
        }
    }
    return i == n ? 0 : -1;
}

static int parse_ip6(const char *p, size_t n, unsigned char out[16])
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Mechanism names (RFC 7208 5). */
static const struct {
    const char *name;
    enum pst_spf_mech mech;
} mechs[] = {
    {"all", PST_SPF_M_ALL}, {"include", PST_SPF_M_INCLUDE}, {"a", PST_SPF_M_A},
    {"mx", PST_SPF_M_MX},   {"ptr", PST_SPF_M_PTR},         {"ip4", PST_SPF_M_IP4},
    {"ip6", PST_SPF_M_IP6}, {"exists", PST_SPF_M_EXISTS},
};

/* One directive p[0..n) into t. */
static int parse_directive(const char *p, size_t n, struct pst_spf_term *t, char *why,
                           size_t whylen)
{
    const char *term = p;
    size_t tn = n, nl = 0, i;
    size_t m;

    t->qualifier = PST_SPF_PASS; /* RFC 7208 4.6.2: "+" is the default */
    switch (p[0]) {
    case '+':
        p++, n--;
        break;
    case '-':
        t->qualifier = PST_SPF_FAIL;
        p++, n--;
        break;
    case '~':
        t->qualifier = PST_SPF_SOFTFAIL;
        p++, n--;
        break;
    case '?':
        t->qualifier = PST_SPF_NEUTRAL;
        p++, n--;
        break;
    default:
        break;
    }
    while (nl < n && p[nl] != ':' && p[nl] != '/')
        nl++;
    for (m = 0; m < sizeof mechs / sizeof mechs[0]; m++)
        if (strlen(mechs[m].name) == nl && strncasecmp(p, mechs[m].name, nl) == 0)
            break;
    if (m == sizeof mechs / sizeof mechs[0])
        return fail(why, whylen, "unknown mechanism \"%.*s\" (RFC 7208 5)", term, tn);
    t->mech = mechs[m].mech;
    t->cidr4 = 32;
    t->cidr6 = 128;
    i = nl;
    size_t end = n;
    int r4 = 0, r6 = 0;

    switch (t->mech) {
    case PST_SPF_M_ALL:
        if (n != nl)
            return fail(why, whylen, "\"all\" takes no argument: \"%.*s\"", term, tn);
        return 0;
    case PST_SPF_M_A:
    case PST_SPF_M_MX:
        /* RFC 7208 5.3/5.4: [":" domain-spec] [dual-cidr-length] */
        r6 = strip_cidr(p, &end, 128, &t->cidr6, 1);
        if (r6 >= 0)
            r4 = strip_cidr(p, &end, 32, &t->cidr4, 0);
        if (r6 < 0 || r4 < 0)
            return fail(why, whylen, "bad CIDR length in \"%.*s\" (RFC 7208 5.6)", term, tn);
        break;
    case PST_SPF_M_IP4:
        if (strip_cidr(p, &end, 32, &t->cidr4, 0) < 0)
            return fail(why, whylen, "bad ip4 CIDR length in \"%.*s\" (RFC 7208 5.6)", term, tn);
        if (i >= end || p[i] != ':' || parse_ip4(p + i + 1, end - i - 1, t->addr) != 0)
            return fail(why, whylen, "bad ip4 address in \"%.*s\" (RFC 7208 5.6)", term, tn);
        return 0;
    case PST_SPF_M_IP6:
        if (strip_cidr(p, &end, 128, &t->cidr6, 0) < 0)
            return fail(why, whylen, "bad ip6 CIDR length in \"%.*s\" (RFC 7208 5.6)", term, tn);
        if (i >= end || p[i] != ':' || parse_ip6(p + i + 1, end - i - 1, t->addr) != 0)
            return fail(why, whylen, "bad ip6 address in \"%.*s\" (RFC 7208 5.6)", term, tn);
        return 0;
    default:
        break;
    }
    if (i == end) {
        if (t->mech == PST_SPF_M_INCLUDE || t->mech == PST_SPF_M_EXISTS)
            return fail(why, whylen, "\"%.*s\" needs a domain (RFC 7208 5.2, 5.7)", term, tn);
        return 0;
    }
    if (p[i] != ':')
        return fail(why, whylen, "malformed mechanism \"%.*s\"", term, tn);
    int rc = check_domain_spec(p + i + 1, end - i - 1, why, whylen);
    if (rc != 0)
        return rc;
    if ((t->domain = dup_n(p + i + 1, end - i - 1)) == NULL)
        return PST_ERR_NOMEM;
    return 0;
}

void pst_spf_record_free(struct pst_spf_record *rec)
{
    if (rec == NULL)
        return;
    for (size_t i = 0; i < rec->nterms; i++) {
        free(rec->terms[i].text);
        free(rec->terms[i].domain);
    }
    free(rec->terms);
    free(rec->redirect);
    free(rec->exp);
    free(rec);
}

/* name "=" value: RFC 7208 12: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
static size_t modifier_name(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_alpha(p[0]))
        return 0;
    while (i < n && (is_alnum(p[i]) || p[i] == '-' || p[i] == '_' || p[i] == '.'))
        i++;
    return i < n && p[i] == '=' ? i : 0;
}

static int parse_modifier(struct pst_spf_record *rec, const char *p, size_t n, size_t nl, char *why,
                          size_t whylen)
{
    const char *v = p + nl + 1;
    size_t vn = n - nl - 1;
    char **slot = NULL;
    int rc;

    if (nl == 8 && strncasecmp(p, "redirect", 8) == 0)
        slot = &rec->redirect;
    else if (nl == 3 && strncasecmp(p, "exp", 3) == 0)
        slot = &rec->exp;
    if (slot == NULL) {
        /* RFC 7208 6.3: unknown modifiers are ignored, their syntax is not */
        char mwhy[PST_SPF_REASON_MAX];
        if ((rc = pst_spf_macro_check(v, vn, PST_SPF_MACRO_DOMAIN, mwhy, sizeof mwhy)) != 0) {
            if (why != NULL && whylen > 0)
                snprintf(why, whylen, "%s in modifier \"%.*s\"", mwhy, (int)(n > 64 ? 64 : n), p);
            return rc;
        }
        rec->unknown_modifiers++;
        return 0;
    }
    if (*slot != NULL)
        return fail(why, whylen, "\"%.*s\": modifier given twice (RFC 7208 6)", p, nl);
    if ((rc = check_domain_spec(v, vn, why, whylen)) != 0)
        return rc;
    if ((*slot = dup_n(v, vn)) == NULL)
        return PST_ERR_NOMEM;
    return 0;
}

int pst_spf_record_parse(const char *txt, size_t len, struct pst_spf_record **out, char *why,
                         size_t whylen)
{
    struct pst_spf_record *rec = NULL;
    int rc = 0;

    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (len > PST_SPF_RECORD_MAX) {
        if (why != NULL && whylen > 0)
            snprintf(why, whylen, "record over %d octets", PST_SPF_RECORD_MAX);
        return PST_ERR_TOOBIG;
    }
    if (!pst_spf_is_record(txt, len))
        return fail(why, whylen, "not an SPF record: does not start with \"v=spf1\"%.*s", "", 0);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)txt[i];
        if (c < 0x20 || c > 0x7e)
            return fail(why, whylen,
                        "control or non-ASCII octet in the record (RFC 7208 4.6.1, 12)%.*s", "", 0);
    }
    if ((rec = calloc(1, sizeof *rec)) == NULL)
        return PST_ERR_NOMEM;
    size_t cap = 0;
    for (size_t i = 6; i < len;) {
        if (txt[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && txt[j] != ' ')
            j++;
        const char *p = txt + i;
        size_t n = j - i;
        i = j;
        if (txt[6] != ' ' && p == txt + 6) {
            rc = fail(why, whylen, "no space after v=spf1%.*s", "", 0);
            goto out;
        }
        size_t nl = modifier_name(p, n);
        if (nl > 0) {
            if ((rc = parse_modifier(rec, p, n, nl, why, whylen)) != 0)
                goto out;
            continue;
        }
        if (rec->nterms == cap) {
            size_t ncap = cap == 0 ? 8 : cap * 2;
            struct pst_spf_term *nt;
            if (ncap > MAX_TERMS || (nt = realloc(rec->terms, ncap * sizeof *nt)) == NULL) {
                rc = PST_ERR_NOMEM;
                goto out;
            }
            rec->terms = nt;
            cap = ncap;
        }
        struct pst_spf_term *t = &rec->terms[rec->nterms];
        memset(t, 0, sizeof *t);
        rec->nterms++;
        if ((rc = parse_directive(p, n, t, why, whylen)) != 0)
            goto out;
        if ((t->text = dup_n(p, n)) == NULL) {
            rc = PST_ERR_NOMEM;
            goto out;
        }
    }
    *out = rec;
    rec = NULL;
out:
    pst_spf_record_free(rec);
    return rc;
}
