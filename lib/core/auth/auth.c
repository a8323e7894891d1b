/*
 * auth.c - SPF, DKIM and DMARC of one message, and its
 * Authentication-Results field (see auth.h).
 */
#include "auth.h"
#include "authres.h"
#include "buf.h"
#include "dns.h"
#include "err.h"
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pst_auth {
    struct pst_auth_opts o;
    char *authserv_id;
    char *mailfrom;
    char *helo;
    char *hdr; /* a copy of the header section: DMARC reads From from it */
    size_t hlen;
    struct pst_msg_header *split;
    const char *split_why;

    struct pst_spf_verdict *spf;
    struct pst_spf_verdict *spf_helo; /* the HELO identity, when checked */

    struct pst_dns_budget dkim_budget;
    struct pst_dkim_verify *dkim;
    struct pst_dkim_verdict dkim_err; /* when verification could not start */
    int have_dkim_err;

    struct pst_dns_budget dmarc_budget;
    struct pst_dmarc_eval *dmarc;
};

static char *dup0(const char *s)
{
    return strdup(s ? s : "");
}

int pst_auth_start(const struct pst_auth_opts *o, const struct pst_auth_in *in, const char *hdr,
                   size_t len, struct pst_auth **out)
{
    if (o == NULL || o->resolver == NULL || in == NULL || in->ip == NULL || out == NULL ||
        (hdr == NULL && len > 0))
        return PST_ERR_INVAL;
    struct pst_auth *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return PST_ERR_NOMEM;
    a->o = *o;
    a->authserv_id = dup0(o->authserv_id);
    a->mailfrom = dup0(in->mailfrom);
    a->helo = in->helo ? strdup(in->helo) : NULL;
    a->hdr = malloc(len + 1);
    if (a->authserv_id == NULL || a->mailfrom == NULL || (in->helo && a->helo == NULL) ||
        a->hdr == NULL) {
        pst_auth_free(a);
        return PST_ERR_NOMEM;
    }
    if (len > 0)
        memcpy(a->hdr, hdr, len);
    a->hdr[len] = '\0';
    a->hlen = len;
    a->o.authserv_id = a->authserv_id;
    a->o.spf = NULL; /* borrowed only for this call */

    if (pst_msg_split(a->hdr, a->hlen, NULL, &a->split, &a->split_why) != 0)
        a->split = NULL;

    /* RFC 7208 2.4: the MAIL FROM identity (postmaster@HELO for the null
     * sender); RFC 9989 4.4.2 uses exactly this result for alignment. */
    if (!o->no_spf) {
        struct pst_spf_options so;
        if (o->spf != NULL)
            so = *o->spf;
        else
            pst_spf_options_default(&so);
        if (o->timeout_ms)
            so.timeout_ms = o->timeout_ms;
        so.now = o->now;
        int rc = pst_spf_check(o->resolver, &so, PST_SPF_MAILFROM, in->ip, a->mailfrom, a->helo,
                               &a->spf);
        if (rc == PST_ERR_NOMEM) {
            pst_auth_free(a);
            return rc;
        }
        if (rc != 0)
            a->spf = NULL; /* no usable identity (bad ip or sender): no result */
        /* RFC 7208 2.3: the HELO identity is checked too (RECOMMENDED),
         * when it is a domain name and not already the one checked above
         * (the null sender's postmaster@HELO) */
        if (a->helo != NULL && a->mailfrom[0] != '\0' && strchr(a->helo, '.') != NULL &&
            a->helo[0] != '[') {
            rc = pst_spf_check(o->resolver, &so, PST_SPF_HELO, in->ip, NULL, a->helo, &a->spf_helo);
            if (rc == PST_ERR_NOMEM) {
                pst_auth_free(a);
                return rc;
            }
            if (rc != 0)
                a->spf_helo = NULL;
        }
    }

    if (!o->no_dkim) {
        a->dkim_budget.max_queries =
            (unsigned)(o->dkim_max_sigs ? o->dkim_max_sigs : PST_DKIM_MAX_SIGS) + 2;
        a->dkim_budget.timeout_ms = o->timeout_ms;
        struct pst_dkim_verify_opts vo = {.resolver = o->resolver,
                                          .budget = &a->dkim_budget,
                                          .cache = o->dkim_cache,
                                          .now = o->now,
                                          .max_sigs = o->dkim_max_sigs};
        const char *why = NULL;
        int rc = pst_dkim_verify_start(&vo, a->hdr, a->hlen, &a->dkim, &why);
        if (rc == PST_ERR_NOMEM) {
            pst_auth_free(a);
            return rc;
        }
        if (rc != 0) {
            /* RFC 8601 2.7.1: permerror, the message cannot be verified */
            a->dkim = NULL;
            a->have_dkim_err = 1;
            a->dkim_err.result = PST_DKIM_PERMERROR;
            a->dkim_err.reason = why ? why : "header section does not parse";
            a->dkim_err.d = a->dkim_err.s = a->dkim_err.i = a->dkim_err.a = "";
        }
    }
    *out = a;
    return 0;
}

void pst_auth_body(struct pst_auth *a, const char *p, size_t n)
{
    if (a != NULL && a->dkim != NULL)
        pst_dkim_verify_body(a->dkim, p, n);
}

int pst_auth_finish(struct pst_auth *a)
{
    if (a == NULL)
        return PST_ERR_INVAL;
    if (a->dkim != NULL && pst_dkim_verify_finish(a->dkim) != 0)
        return PST_ERR_NOMEM;
    if (a->o.no_dmarc)
        return 0;
    size_t n = 0, skipped = 0;
    const struct pst_dkim_verdict *v = pst_auth_dkim(a, &n, &skipped);
    if (a->split == NULL) {
        /* no Author Domain can be found in a header that does not split */
        a->dmarc = calloc(1, sizeof(*a->dmarc));
        if (a->dmarc == NULL)
            return PST_ERR_NOMEM;
        a->dmarc->result = PST_DMARC_RESULT_PERMERROR;
        a->dmarc->from = PST_DMARC_FROM_SYNTAX;
        snprintf(a->dmarc->reason, sizeof(a->dmarc->reason), "header section: %s",
                 a->split_why ? a->split_why : "does not parse");
        return 0;
    }
    /* 8 queries of the policy walk, and as many for the alignment walks */
    a->dmarc_budget.max_queries = 2 * PST_DMARC_WALK_MAX + 2;
    a->dmarc_budget.timeout_ms = a->o.timeout_ms;
    struct pst_dmarc_opts mo = {.resolver = a->o.resolver,
                                .budget = &a->dmarc_budget,
                                .mode = a->o.dmarc_mode,
                                .psl = a->o.dmarc_psl};
    struct pst_dmarc_spf spf = {NULL, NULL};
    if (a->spf != NULL) {
        spf.result = pst_spf_result_name(a->spf->result);
        spf.domain = a->spf->domain;
    }
    int rc = pst_dmarc_evaluate(&mo, a->split, NULL, &spf, v, n, &a->dmarc);
    if (rc != 0) {
        a->dmarc = NULL;
        return rc == PST_ERR_NOMEM ? rc : 0;
    }
    return 0;
}

void pst_auth_free(struct pst_auth *a)
{
    if (a == NULL)
        return;
    pst_spf_verdict_free(a->spf);
    pst_spf_verdict_free(a->spf_helo);
    pst_dkim_verify_free(a->dkim);
    pst_dmarc_eval_free(a->dmarc);
    pst_msg_header_free(a->split);
    free(a->hdr);
    free(a->authserv_id);
    free(a->mailfrom);
    free(a->helo);
    free(a);
}

const struct pst_spf_verdict *pst_auth_spf(const struct pst_auth *a)
{
    return a ? a->spf : NULL;
}

const struct pst_spf_verdict *pst_auth_spf_helo(const struct pst_auth *a)
{
    return a ? a->spf_helo : NULL;
}

const struct pst_dkim_verdict *pst_auth_dkim(const struct pst_auth *a, size_t *n, size_t *skipped)
{
    size_t dummy;
    if (skipped == NULL)
        skipped = &dummy;
    *n = 0;
    *skipped = 0;
    if (a == NULL)
        return NULL;
    if (a->have_dkim_err) {
        *n = 1;
        return &a->dkim_err;
    }
    if (a->dkim == NULL)
        return NULL;
    return pst_dkim_verify_verdicts(a->dkim, n, skipped);
}

const struct pst_dmarc_eval *pst_auth_dmarc(const struct pst_auth *a)
{
    return a ? a->dmarc : NULL;
}

/* What goes in A-R for SPF: the result, the identity and the reason. */
static void spf_fields(const struct pst_auth *a, struct pst_authres *r)
{
    if (a->spf == NULL)
        return;
    r->spf_result = pst_spf_result_name(a->spf->result);
    if (strcmp(pst_spf_ar_property(a->spf), "smtp.mailfrom") == 0)
        r->spf_mailfrom = pst_spf_ar_value(a->spf);
    else
        r->spf_helo = pst_spf_ar_value(a->spf);
    if (a->spf->result != PST_SPF_PASS)
        r->spf_reason = a->spf->reason;
    if (a->spf_helo != NULL) {
        r->spf_helo_result = pst_spf_result_name(a->spf_helo->result);
        r->spf_helo_name = a->helo;
        if (a->spf_helo->result != PST_SPF_PASS)
            r->spf_helo_reason = a->spf_helo->reason;
    }
}

int pst_auth_header(const struct pst_auth *a, struct pst_buf *out)
{
    if (a == NULL || out == NULL)
        return PST_ERR_INVAL;
    struct pst_authres r;
    memset(&r, 0, sizeof(r));
    r.authserv_id = a->authserv_id;
    spf_fields(a, &r);
    /* "dkim=none" when no signature was there (RFC 8601 2.7.1) */
    size_t skipped = 0;
    r.dkim = pst_auth_dkim(a, &r.ndkim, &skipped);
    static const struct pst_dkim_verdict none = {
        .result = PST_DKIM_NONE, .reason = "", .d = "", .s = "", .i = "", .a = ""};
    if (r.ndkim == 0 && !a->o.no_dkim) {
        r.dkim = &none;
        r.ndkim = 1;
    }
    r.dmarc = a->dmarc;
    return pst_authres_header(&r, out);
}

int pst_auth_summary(const struct pst_auth *a, struct pst_buf *out)
{
    if (a == NULL || out == NULL)
        return PST_ERR_INVAL;
    int rc = 0;
    const char *sep = "";
    if (a->spf != NULL) {
        rc = pst_buf_addf(out, "spf=%s %s=%s (%s)", pst_spf_result_name(a->spf->result),
                          pst_spf_ar_property(a->spf), pst_spf_ar_value(a->spf), a->spf->reason);
        sep = "; ";
    }
    if (rc == 0 && a->spf_helo != NULL) {
        rc = pst_buf_addf(out, "%sspf=%s smtp.helo=%s", sep,
                          pst_spf_result_name(a->spf_helo->result), a->helo);
        sep = "; ";
    }
    size_t n = 0, skipped = 0;
    const struct pst_dkim_verdict *v = pst_auth_dkim(a, &n, &skipped);
    if (rc == 0 && n == 0 && !a->o.no_dkim) {
        rc = pst_buf_addf(out, "%sdkim=none", sep);
        sep = "; ";
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = pst_buf_addf(out, "%sdkim=%s", sep, pst_dkim_result_name(v[i].result));
        if (rc == 0 && v[i].reason[0])
            rc = pst_buf_addf(out, " (%s)", v[i].reason);
        if (rc == 0 && v[i].d[0])
            rc = pst_buf_addf(out, " header.d=%s header.s=%s header.a=%s header.b=%s", v[i].d,
                              v[i].s, v[i].a, v[i].b8);
        sep = "; ";
    }
    if (rc == 0 && skipped > 0)
        rc = pst_buf_addf(out, "; %zu more signature%s not verified", skipped,
                          skipped == 1 ? "" : "s");
    if (rc == 0 && a->dmarc != NULL) {
        const struct pst_dmarc_eval *e = a->dmarc;
        rc = pst_buf_addf(out, "%sdmarc=%s header.from=%s", sep, pst_dmarc_result_name(e->result),
                          e->author[0] ? e->author : "(none)");
        if (rc == 0 && e->policy_tag != NULL)
            rc = pst_buf_addf(out, " policy=%s=%s%s disposition=%s", e->policy_tag,
                              pst_dmarc_policy_name(e->policy), e->testing ? " t=y" : "",
                              pst_dmarc_policy_name(e->disposition));
        if (rc == 0 && e->reason[0])
            rc = pst_buf_addf(out, " (%s)", e->reason);
    }
    return rc;
}

enum pst_auth_disposition pst_auth_disposition(const struct pst_auth *a)
{
    const struct pst_dmarc_eval *e = pst_auth_dmarc(a);
    if (e == NULL)
        return PST_AUTH_DELIVER;
    if (e->result == PST_DMARC_RESULT_TEMPERROR)
        return PST_AUTH_TEMPFAIL;
    if (e->result != PST_DMARC_RESULT_FAIL)
        return PST_AUTH_DELIVER;
    switch (e->disposition) {
    case PST_DMARC_POLICY_REJECT:
        return PST_AUTH_REJECT;
    case PST_DMARC_POLICY_QUARANTINE:
        return PST_AUTH_QUARANTINE;
    default:
        return PST_AUTH_DELIVER;
    }
}

const char *pst_auth_disposition_name(enum pst_auth_disposition d)
{
    switch (d) {
    case PST_AUTH_QUARANTINE:
        return "quarantine";
    case PST_AUTH_REJECT:
        return "reject";
    case PST_AUTH_TEMPFAIL:
        return "tempfail";
    default:
        return "deliver";
    }
}
