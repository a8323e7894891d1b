/*
 * dmarc_eval.c - Identifier Alignment (RFC 9989 4.4, 4.10.2) and the
 * evaluation of a message (5.3.1-5.3.6): result, the policy that applies
 * (p, sp or np: 4.7, 4.10.1), t=y (4.7) and the disposition.
 *
 * Defined results for what the RFC leaves to the receiver:
 *   - no From, or an empty one: none (5.3.1: validation not possible);
 *     several From fields or addresses, or an unusable domain: permerror
 *     (the caller may reject; OpenDMARC's multiple-From CVE class)
 *   - a DNS error in the policy walk: temperror (RETRY) or permerror
 *     (FAIL, budget) (5.3.6: the policy cannot be applied)
 *   - a DNS error in the walk of an identifier: that identifier does not
 *     align; when nothing else aligns the result is temperror
 *   - np needs to know whether the Author Domain exists (3.2.13, RFC
 *     8020): one A query, NXDOMAIN meaning it does not; asked only when
 *     the record applies to the Author Domain as a subdomain and has np.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim.h"
#include "dmarc.h"
#include "dns.h"
#include "err.h"
#include "msg.h"

const char *pst_dmarc_result_name(enum pst_dmarc_result r)
{
    switch (r) {
    case PST_DMARC_RESULT_NONE:
        return "none";
    case PST_DMARC_RESULT_PASS:
        return "pass";
    case PST_DMARC_RESULT_FAIL:
        return "fail";
    case PST_DMARC_RESULT_TEMPERROR:
        return "temperror";
    case PST_DMARC_RESULT_PERMERROR:
        return "permerror";
    }
    return "?";
}

/* 1 when d equals zone or lies below it (both normalised). */
static int in_zone(const char *d, const char *zone)
{
    size_t dl = strlen(d), zl = strlen(zone);
    if (dl == zl)
        return strcmp(d, zone) == 0;
    return dl > zl && d[dl - zl - 1] == '.' && strcmp(d + dl - zl, zone) == 0;
}

int pst_dmarc_aligned(const struct pst_dmarc_opts *o, const char *author, const char *org_author,
                      const char *id, char mode)
{
    char nid[PST_DMARC_DOMAIN_MAX];
    if (o == NULL || author == NULL || id == NULL)
        return PST_ERR_INVAL;
    if (pst_dmarc_domain_norm(id, strlen(id), nid, sizeof(nid)) != 0)
        return 0; /* not a domain: authenticates nothing */
    if (strcmp(nid, author) == 0)
        return 1;
    if (mode == 's')
        return 0; /* 3.2.10.2: identical names only */
    /* 3.2.10.1: the Organizational Domain of id is id or a parent of it,
     * so an id outside the author's Organizational Domain cannot align */
    if (org_author == NULL || !in_zone(nid, org_author))
        return 0;
    if (o->mode == PST_DMARC_PSL) {
        char reg[PST_DMARC_DOMAIN_MAX];
        int rc = o->psl->registrable(o->psl->arg, nid, reg, sizeof(reg));
        if (rc == PST_ERR_NOMEM)
            return rc;
        return rc == 0 && strcmp(reg, org_author) == 0;
    }
    struct pst_dmarc_walk *w = NULL;
    int rc = pst_dmarc_walk(o, nid, &w);
    if (rc != 0)
        return rc == PST_ERR_NOMEM ? rc : 0;
    rc = w->error ? PST_ERR_AGAIN : strcmp(w->org, org_author) == 0;
    pst_dmarc_walk_free(w);
    return rc;
}

void pst_dmarc_eval_free(struct pst_dmarc_eval *e)
{
    if (e == NULL)
        return;
    pst_dmarc_record_free(e->record);
    free(e);
}

static enum pst_dmarc_policy one_lower(enum pst_dmarc_policy p)
{
    /* 4.7 t=y: reject -> quarantine, quarantine -> none */
    if (p == PST_DMARC_POLICY_REJECT)
        return PST_DMARC_POLICY_QUARANTINE;
    return PST_DMARC_POLICY_NONE;
}

/* 0 NXDOMAIN, 1 exists, PST_ERR_AGAIN, PST_ERR_NOMEM */
static int domain_exists(const struct pst_dmarc_opts *o, const char *d)
{
    struct pst_dns_answer *a = NULL;
    int rc = pst_dns_query(o->resolver, o->budget, d, PST_DNS_A, &a);
    if (rc == PST_ERR_NOMEM)
        return rc;
    if (rc != 0)
        return PST_ERR_AGAIN;
    if (a->status == PST_DNS_NOTFOUND)
        rc = a->notfound == PST_DNS_NXDOMAIN ? 0 : 1;
    else if (a->status == PST_DNS_OK)
        rc = 1;
    else
        rc = PST_ERR_AGAIN;
    pst_dns_answer_free(a);
    return rc;
}

static void choose_policy(struct pst_dmarc_eval *e, const struct pst_dmarc_record *r, int exists)
{
    if (strcmp(e->policy_domain, e->author) == 0) {
        e->policy_tag = "p";
        e->policy = r->p;
    } else if (exists == 0 && r->np != PST_DMARC_POLICY_ABSENT) {
        e->policy_tag = "np";
        e->policy = r->np;
    } else if (r->sp != PST_DMARC_POLICY_ABSENT) {
        e->policy_tag = "sp";
        e->policy = r->sp;
    } else {
        e->policy_tag = "p";
        e->policy = r->p;
    }
}

static int evaluate(const struct pst_dmarc_opts *o, struct pst_dmarc_eval *e,
                    const struct pst_dmarc_spf *spf, const struct pst_dkim_verdict *dkim,
                    size_t ndkim)
{
    struct pst_dmarc_walk *w = NULL;
    int rc = pst_dmarc_walk(o, e->author, &w);
    if (rc == PST_ERR_NOMEM)
        return rc;
    if (rc != 0) {
        e->result = PST_DMARC_RESULT_PERMERROR;
        snprintf(e->reason, sizeof(e->reason), "author domain not usable");
        return 0;
    }
    if (w->error) {
        e->result = w->error == PST_DMARC_STEP_TEMPERROR ? PST_DMARC_RESULT_TEMPERROR
                                                         : PST_DMARC_RESULT_PERMERROR;
        snprintf(e->reason, sizeof(e->reason), "policy discovery: %s", w->dns_reason);
        goto out;
    }
    snprintf(e->org, sizeof(e->org), "%s", w->org);
    if (w->policy < 0) {
        /* 4.10.1: no record means DMARC does not apply */
        e->result = PST_DMARC_RESULT_NONE;
        snprintf(e->reason, sizeof(e->reason), "no DMARC policy record");
        goto out;
    }
    struct pst_dmarc_walk_query *q = &w->q[w->policy];
    snprintf(e->policy_domain, sizeof(e->policy_domain), "%s", q->domain);
    e->record = q->rec;
    q->rec = NULL;
    q->step = PST_DMARC_STEP_NONE;
    const struct pst_dmarc_record *r = e->record;
    if (r->state == PST_DMARC_REC_NO_POLICY) {
        e->result = PST_DMARC_RESULT_NONE;
        snprintf(e->reason, sizeof(e->reason),
                 "record at _dmarc.%s has no valid policy and no valid rua", e->policy_domain);
        goto out;
    }
    if (strcmp(e->policy_domain, e->author) != 0 && r->np != PST_DMARC_POLICY_ABSENT) {
        rc = domain_exists(o, e->author);
        if (rc == PST_ERR_NOMEM)
            goto out;
        if (rc < 0) {
            rc = 0;
            e->result = PST_DMARC_RESULT_TEMPERROR;
            snprintf(e->reason, sizeof(e->reason), "existence of %s unknown (DNS)", e->author);
            goto out;
        }
        e->author_exists = rc;
        rc = 0;
    }
    choose_policy(e, r, e->author_exists);
    e->testing = r->testing;

    int unknown = 0;
    if (spf != NULL && spf->result != NULL && spf->domain != NULL &&
        strcmp(spf->result, "pass") == 0) {
        rc = pst_dmarc_aligned(o, e->author, e->org, spf->domain, r->aspf);
        if (rc == PST_ERR_NOMEM)
            goto out;
        if (rc == PST_ERR_AGAIN)
            unknown = 1;
        e->spf_aligned = rc == 1;
    }
    for (size_t i = 0; i < ndkim && !e->dkim_aligned; i++) {
        if (dkim[i].result != PST_DKIM_PASS || dkim[i].d == NULL)
            continue;
        rc = pst_dmarc_aligned(o, e->author, e->org, dkim[i].d, r->adkim);
        if (rc == PST_ERR_NOMEM)
            goto out;
        if (rc == PST_ERR_AGAIN)
            unknown = 1;
        if (rc == 1) {
            e->dkim_aligned = 1;
            pst_dmarc_domain_norm(dkim[i].d, strlen(dkim[i].d), e->dkim_aligned_domain,
                                  sizeof(e->dkim_aligned_domain));
        }
    }
    rc = 0;
    if (e->spf_aligned || e->dkim_aligned) {
        e->result = PST_DMARC_RESULT_PASS;
        e->disposition = PST_DMARC_POLICY_NONE;
        snprintf(e->reason, sizeof(e->reason), "%s%s%s aligned", e->spf_aligned ? "SPF" : "",
                 e->spf_aligned && e->dkim_aligned ? " and " : "", e->dkim_aligned ? "DKIM" : "");
        goto out;
    }
    if (unknown) {
        e->result = PST_DMARC_RESULT_TEMPERROR;
        snprintf(e->reason, sizeof(e->reason), "alignment unknown: DNS error in a tree walk");
        goto out;
    }
    e->result = PST_DMARC_RESULT_FAIL;
    e->disposition = e->testing ? one_lower(e->policy) : e->policy;
    snprintf(e->reason, sizeof(e->reason), "no aligned SPF or DKIM pass; %s=%s%s", e->policy_tag,
             pst_dmarc_policy_name(e->policy), e->testing ? " t=y" : "");
out:
    pst_dmarc_walk_free(w);
    return rc;
}

int pst_dmarc_evaluate(const struct pst_dmarc_opts *o, const struct pst_msg_header *h,
                       const char *author, const struct pst_dmarc_spf *spf,
                       const struct pst_dkim_verdict *dkim, size_t ndkim,
                       struct pst_dmarc_eval **out)
{
    struct pst_dmarc_eval *e = NULL;
    int rc;
    if (o == NULL || o->resolver == NULL || out == NULL || (h == NULL && author == NULL) ||
        (dkim == NULL && ndkim > 0) ||
        (o->mode == PST_DMARC_PSL && (o->psl == NULL || o->psl->registrable == NULL)))
        return PST_ERR_INVAL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return PST_ERR_NOMEM;
    e->author_exists = -1;
    e->disposition = PST_DMARC_POLICY_NONE;
    if (h != NULL)
        rc = pst_dmarc_author_domain(h, e->author, sizeof(e->author), &e->from);
    else if ((rc = pst_dmarc_domain_norm(author, strlen(author), e->author, sizeof(e->author))) !=
             0)
        e->from = PST_DMARC_FROM_BAD_DOMAIN;
    if (rc != 0) {
        e->author[0] = '\0';
        e->result = (e->from == PST_DMARC_FROM_ABSENT || e->from == PST_DMARC_FROM_NO_ADDRESS)
                        ? PST_DMARC_RESULT_NONE
                        : PST_DMARC_RESULT_PERMERROR;
        snprintf(e->reason, sizeof(e->reason), "%s", pst_dmarc_from_name(e->from));
        rc = 0;
    } else {
        rc = evaluate(o, e, spf, dkim, ndkim);
    }
    if (rc != 0)
        goto out;
    *out = e;
    e = NULL;
out:
    pst_dmarc_eval_free(e);
    return rc;
}
