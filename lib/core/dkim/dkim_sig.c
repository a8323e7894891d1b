/*
 * dkim_sig.c - the DKIM-Signature header field (RFC 6376 3.5).
 *
 * Every tag of 3.5 is read: v (must be "1"), a (rsa-sha256, ed25519-sha256
 * of RFC 8463 3, and rsa-sha1, kept only to be refused by the verifier per
 * RFC 8301), b and bh (base64, FWS removed: 3.5), c (3.5: "simple" when
 * absent, the body "simple" when only the header's is given), d, h
 * (colon-separated, must name From: 5.4), i (defaults to "@" d, must be d
 * or below it), l (1*76DIGIT, kept even when larger than 2^64: saturated),
 * q (a colon-separated list that must hold dns/txt), s, t and x
 * (1*12DIGIT, x > t), z (copied header fields: accepted, not used).
 * Unknown tags are ignored (3.2).
 *
 * Limits: PST_DKIM_MAX_TAGLIST bytes, PST_DKIM_MAX_TAGS tags, PST_DKIM_MAX_H
 * names in h=.
 */
#include "dkim.h"
#include "dkim_int.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

void pst_dkim_sig_free(struct pst_dkim_sig *sig)
{
    if (sig == NULL)
        return;
    free(sig->d);
    free(sig->s);
    free(sig->i);
    free(sig->b64);
    free(sig->b);
    free(sig->bh);
    for (size_t k = 0; k < sig->nh; k++)
        free(sig->h[k]);
    free(sig->h);
    free(sig);
}

const char *pst_dkim_alg_name(enum pst_dkim_alg alg)
{
    switch (alg) {
    case PST_DKIM_RSA_SHA256:
        return "rsa-sha256";
    case PST_DKIM_ED25519_SHA256:
        return "ed25519-sha256";
    case PST_DKIM_RSA_SHA1:
        return "rsa-sha1";
    }
    return "?";
}

/* The value of tag t as a new string without FWS. */
static int tagstr(const struct pst_dkim_tag *t, char **out)
{
    char *s = dkim_strip_fws(t->value, t->value_len);
    if (s == NULL)
        return PST_ERR_NOMEM;
    *out = s;
    return 0;
}

/* The value of tag t, a single word (d=, s=, i=: no FWS inside). */
static int tagword(const struct pst_dkim_tag *t, char **out)
{
    for (size_t k = 0; k < t->value_len; k++)
        if (dkim_wsp(t->value[k]) || t->value[k] == '\r')
            return PST_ERR_SYNTAX;
    return tagstr(t, out);
}

/* 1*maxdigits DIGIT; more digits than maxdigits is a syntax error, a value
 * past what int64 holds saturates (only l= may have that many). */
static int number(const struct pst_dkim_tag *t, size_t maxdigits, uint64_t *out)
{
    if (t->value_len == 0 || t->value_len > maxdigits)
        return PST_ERR_SYNTAX;
    uint64_t v = 0;
    for (size_t k = 0; k < t->value_len; k++) {
        char c = t->value[k];
        if (c < '0' || c > '9')
            return PST_ERR_SYNTAX;
        unsigned d = (unsigned)(c - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_canon(const char *s, size_t n, enum pst_dkim_canon *c)
{
    if (dkim_ieq(s, n, "simple"))
        *c = PST_DKIM_SIMPLE;
    else if (dkim_ieq(s, n, "relaxed"))
        *c = PST_DKIM_RELAXED;
    else
        return PST_ERR_UNSUPPORTED;
    return 0;
}

/* h=: field names separated by ":" with FWS around (RFC 6376 3.5). */
static int parse_h(struct pst_dkim_sig *sig, const struct pst_dkim_tag *t, const char **why)
{
    char *s = dkim_strip_fws(t->value, t->value_len);
    if (s == NULL)
        return PST_ERR_NOMEM;
    int rc = PST_ERR_SYNTAX, from = 0;
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ':';
    if (n > PST_DKIM_MAX_H) {
        *why = "too many names in h=";
        rc = PST_ERR_TOOBIG;
        goto out;
    }
    sig->h = calloc(n, sizeof(*sig->h));
    if (sig->h == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0) {
            *why = "empty name in h=";
            goto out;
        }
        char *name = malloc(len + 1);
        if (name == NULL) {
            rc = PST_ERR_NOMEM;
            goto out;
        }
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)p[k];
            if (c < 33 || c > 126) { /* ftext, RFC 5322 3.6.8 */
                free(name);
                *why = "bad field name in h=";
                goto out;
            }
            name[k] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        name[len] = '\0';
        sig->h[sig->nh++] = name;
        from |= strcmp(name, "from") == 0;
        if (e == NULL)
            break;
        p = e + 1;
    }
    if (!from) {
        *why = "h= does not include From"; /* RFC 6376 5.4 */
        goto out;
    }
    rc = 0;
out:
    free(s);
    return rc;
}

/* RFC 6376 3.5 i=: [ Local-part ] "@" domain-name, the domain d or below. */
static int check_i(const char *i, const char *d)
{
    const char *at = strrchr(i, '@');
    if (at == NULL)
        return PST_ERR_SYNTAX;
    const char *dom = at + 1;
    size_t dn = strlen(dom), n = strlen(d);
    if (!dkim_name_ok(dom))
        return PST_ERR_SYNTAX;
    if (dkim_ieq(dom, dn, d))
        return 0;
    if (dn > n + 1 && dom[dn - n - 1] == '.' && dkim_ieq(dom + dn - n, n, d))
        return 0;
    return PST_ERR_INVAL;
}

int pst_dkim_sig_parse(const char *value, size_t len, struct pst_dkim_sig **out, const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    *why = NULL;
    struct pst_dkim_taglist *tl = malloc(sizeof(*tl));
    struct pst_dkim_sig *sig = calloc(1, sizeof(*sig));
    int rc = PST_ERR_NOMEM;
    if (tl == NULL || sig == NULL)
        goto out;
    rc = pst_dkim_taglist_parse(value, len, tl, why);
    if (rc < 0)
        goto out;
    rc = PST_ERR_SYNTAX;
    static const char *const required[] = {"v", "a", "b", "bh", "d", "h", "s"};
    for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++) {
        if (pst_dkim_tag_get(tl, required[k]) == NULL) {
            static const char *const missing[] = {
                "missing v= tag", "missing a= tag", "missing b= tag", "missing bh= tag",
                "missing d= tag", "missing h= tag", "missing s= tag"};
            *why = missing[k];
            goto out;
        }
    }
    const struct pst_dkim_tag *t = pst_dkim_tag_get(tl, "v");
    if (!(t->value_len == 1 && t->value[0] == '1')) {
        *why = "v= is not 1";
        goto out;
    }
    t = pst_dkim_tag_get(tl, "a");
    if (dkim_ieq(t->value, t->value_len, "rsa-sha256"))
        sig->alg = PST_DKIM_RSA_SHA256;
    else if (dkim_ieq(t->value, t->value_len, "ed25519-sha256"))
        sig->alg = PST_DKIM_ED25519_SHA256;
    else if (dkim_ieq(t->value, t->value_len, "rsa-sha1"))
        sig->alg = PST_DKIM_RSA_SHA1;
    else {
        *why = "unknown signing algorithm";
        rc = PST_ERR_UNSUPPORTED;
        goto out;
    }
    if ((rc = tagstr(pst_dkim_tag_get(tl, "b"), &sig->b64)) < 0 ||
        (rc = dkim_b64_decode(sig->b64, &sig->b, &sig->b_len)) < 0) {
        *why = "b= is not base64";
        goto out;
    }
    char *bh = NULL;
    if ((rc = tagstr(pst_dkim_tag_get(tl, "bh"), &bh)) < 0)
        goto out;
    rc = dkim_b64_decode(bh, &sig->bh, &sig->bh_len);
    free(bh);
    if (rc < 0) {
        *why = "bh= is not base64";
        goto out;
    }
    rc = PST_ERR_SYNTAX;
    if (sig->b_len == 0 || sig->bh_len == 0) {
        *why = sig->b_len == 0 ? "empty b=" : "empty bh=";
        goto out;
    }
    if ((rc = tagword(pst_dkim_tag_get(tl, "d"), &sig->d)) == PST_ERR_NOMEM)
        goto out;
    if (rc < 0 || !dkim_name_ok(sig->d)) {
        *why = "d= is not a domain name";
        rc = PST_ERR_SYNTAX;
        goto out;
    }
    if ((rc = tagword(pst_dkim_tag_get(tl, "s"), &sig->s)) == PST_ERR_NOMEM)
        goto out;
    rc = PST_ERR_SYNTAX;
    if (sig->s == NULL || !dkim_name_ok(sig->s)) {
        *why = "s= is not a selector";
        goto out;
    }
    if ((rc = parse_h(sig, pst_dkim_tag_get(tl, "h"), why)) < 0)
        goto out;
    if ((t = pst_dkim_tag_get(tl, "c")) != NULL) {
        const char *slash = memchr(t->value, '/', t->value_len);
        size_t hn = slash ? (size_t)(slash - t->value) : t->value_len;
        rc = parse_canon(t->value, hn, &sig->hcanon);
        if (rc == 0 && slash)
            rc = parse_canon(slash + 1, t->value_len - hn - 1, &sig->bcanon);
        if (rc < 0) {
            *why = "unknown canonicalization in c=";
            goto out;
        }
    }
    if ((t = pst_dkim_tag_get(tl, "q")) != NULL) {
        /* RFC 6376 3.5 q=: dns/txt is the only method defined */
        int dns = 0;
        const char *p = t->value, *end = t->value + t->value_len;
        while (p <= end) {
            const char *e = memchr(p, ':', (size_t)(end - p));
            if (e == NULL)
                e = end;
            char *m = dkim_strip_fws(p, (size_t)(e - p));
            if (m == NULL) {
                rc = PST_ERR_NOMEM;
                goto out;
            }
            dns |= dkim_ieq(m, strlen(m), "dns/txt");
            free(m);
            p = e + 1;
        }
        if (!dns) {
            *why = "q= has no dns/txt";
            rc = PST_ERR_UNSUPPORTED;
            goto out;
        }
    }
    uint64_t num;
    if ((t = pst_dkim_tag_get(tl, "l")) != NULL) {
        if (number(t, 76, &num) < 0) {
            *why = "l= is not a number";
            rc = PST_ERR_SYNTAX;
            goto out;
        }
        sig->has_l = 1;
        sig->l = num;
    }
    if ((t = pst_dkim_tag_get(tl, "t")) != NULL) {
        if (number(t, 12, &num) < 0) {
            *why = "t= is not a time";
            rc = PST_ERR_SYNTAX;
            goto out;
        }
        sig->has_t = 1;
        sig->t = (int64_t)num;
    }
    if ((t = pst_dkim_tag_get(tl, "x")) != NULL) {
        if (number(t, 12, &num) < 0) {
            *why = "x= is not a time";
            rc = PST_ERR_SYNTAX;
            goto out;
        }
        sig->has_x = 1;
        sig->x = (int64_t)num;
        if (sig->has_t && sig->x <= sig->t) {
            *why = "x= is not after t="; /* RFC 6376 3.5 x= */
            rc = PST_ERR_SYNTAX;
            goto out;
        }
    }
    if ((t = pst_dkim_tag_get(tl, "i")) != NULL) {
        if ((rc = tagword(t, &sig->i)) == PST_ERR_NOMEM)
            goto out;
        rc = rc < 0 ? PST_ERR_SYNTAX : check_i(sig->i, sig->d);
        if (rc < 0) {
            *why = rc == PST_ERR_INVAL ? "i= is not within d=" : "i= is not an identity";
            rc = PST_ERR_SYNTAX;
            goto out;
        }
    } else {
        size_t n = strlen(sig->d) + 2;
        sig->i = malloc(n);
        if (sig->i == NULL) {
            rc = PST_ERR_NOMEM;
            goto out;
        }
        sig->i[0] = '@';
        memcpy(sig->i + 1, sig->d, n - 1);
    }
    *out = sig;
    sig = NULL;
    rc = 0;
out:
    pst_dkim_sig_free(sig);
    free(tl);
    return rc;
}
