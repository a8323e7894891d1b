/*
 * dmarc_walk.c - DMARC policy discovery and the Organizational Domain:
 * the DNS Tree Walk of RFC 9989 4.10 (steps 1-7, at most 8 queries),
 * 4.10.1 (which record is the policy record) and 4.10.2 (selection of the
 * Organizational Domain); and the RFC 7489 6.6.3 lookups with a Public
 * Suffix List as the configured alternative.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "dns.h"
#include "err.h"

int pst_dmarc_domain_norm(const char *in, size_t len, char *out, size_t outlen)
{
    if (len > 0 && in[len - 1] == '.')
        len--; /* a trailing dot names the same domain */
    if (len == 0 || len > 253)
        return PST_ERR_SYNTAX;
    if (outlen < len + 1)
        return PST_ERR_TOOBIG;
    size_t lab = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (lab == 0)
                return PST_ERR_SYNTAX;
            lab = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return PST_ERR_SYNTAX;
        if (++lab > 63)
            return PST_ERR_SYNTAX;
    }
    if (lab == 0)
        return PST_ERR_SYNTAX;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    out[len] = '\0';
    return 0;
}

static size_t count_labels(const char *d)
{
    size_t n = 1;
    for (; *d; d++)
        if (*d == '.')
            n++;
    return n;
}

/* The last n labels of d (n >= 1, n <= labels of d). */
static const char *last_labels(const char *d, size_t n)
{
    size_t have = count_labels(d);
    while (have > n) {
        d = strchr(d, '.') + 1;
        have--;
    }
    return d;
}

void pst_dmarc_walk_free(struct pst_dmarc_walk *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->nq; i++) {
        pst_dmarc_record_free(w->q[i].rec);
        free(w->q[i].text);
    }
    free(w);
}

/* One query at _dmarc.<domain> (steps 1-2 and 5-6). Returns 0 or
 * PST_ERR_NOMEM; the outcome is in q. */
static int query_one(const struct pst_dmarc_opts *o, struct pst_dmarc_walk *w, const char *domain)
{
    struct pst_dmarc_walk_query *q = &w->q[w->nq++];
    char name[PST_DMARC_DOMAIN_MAX + 8];
    struct pst_dns_answer *a = NULL;
    int rc;

    snprintf(q->domain, sizeof(q->domain), "%s", domain);
    snprintf(name, sizeof(name), "_dmarc.%s", domain);
    rc = pst_dns_query(o->resolver, o->budget, name, PST_DNS_TXT, &a);
    if (rc == PST_ERR_NOMEM)
        return rc;
    if (rc == PST_ERR_SYNTAX) {
        /* _dmarc.<domain> is over 255 octets: no record can be there */
        q->step = PST_DMARC_STEP_NONE;
        q->why = "_dmarc name too long";
        return 0;
    }
    if (rc != 0) {
        /* the budget is used up */
        q->step = PST_DMARC_STEP_PERMERROR;
        q->why = rc == PST_ERR_TOOBIG ? "DNS query budget used up" : "name not queryable";
        snprintf(w->dns_reason, sizeof(w->dns_reason), "%s: %s", name, q->why);
        return 0;
    }
    if (a->status == PST_DNS_RETRY || a->status == PST_DNS_FAIL) {
        q->step = a->status == PST_DNS_RETRY ? PST_DMARC_STEP_TEMPERROR : PST_DMARC_STEP_PERMERROR;
        q->why = a->status == PST_DNS_RETRY ? "temporary DNS error" : "DNS failure";
        snprintf(w->dns_reason, sizeof(w->dns_reason), "%s TXT: %s", name,
                 a->reason ? a->reason : pst_dns_status_name(a->status));
        goto done;
    }
    q->step = PST_DMARC_STEP_NONE;
    if (a->status != PST_DNS_OK)
        goto done;
    size_t found = 0, which = 0;
    for (size_t i = 0; i < a->nrrs; i++)
        if (pst_dmarc_record_is_dmarc((const char *)a->rrs[i].data, a->rrs[i].len)) {
            found++;
            which = i;
        }
    if (found > 1) {
        q->step = PST_DMARC_STEP_MULTIPLE; /* all discarded (step 2) */
        q->why = "more than one DMARC record";
        goto done;
    }
    if (found == 0)
        goto done;
    q->text = malloc(a->rrs[which].len + 1);
    if (q->text == NULL) {
        rc = PST_ERR_NOMEM;
        goto done;
    }
    memcpy(q->text, a->rrs[which].data, a->rrs[which].len);
    q->text[a->rrs[which].len] = '\0';
    rc = pst_dmarc_record_parse((const char *)a->rrs[which].data, a->rrs[which].len, &q->rec,
                                &q->why);
    if (rc == PST_ERR_NOMEM)
        goto done;
    q->step = rc == 0 ? PST_DMARC_STEP_RECORD : PST_DMARC_STEP_INVALID;
    rc = 0;
done:
    pst_dns_answer_free(a);
    return rc;
}

/* RFC 9989 4.10.2 (records from the longest name to the shortest) and
 * 4.10.1 (the policy record). */
static void select_org(struct pst_dmarc_walk *w)
{
    int last = -1;
    w->policy = -1;
    for (size_t i = 0; i < w->nq; i++)
        if (w->q[i].step == PST_DMARC_STEP_RECORD)
            last = (int)i;
    snprintf(w->org, sizeof(w->org), "%s", w->start);
    if (last < 0)
        return; /* "the initial target domain is the Organizational Domain" */
    const struct pst_dmarc_walk_query *l = &w->q[last];
    if (l->rec->psd == 'y' && last != 0) {
        /* rule 2: one label below the PSD, on the path of the start */
        size_t n = count_labels(l->domain) + 1;
        snprintf(w->org, sizeof(w->org), "%s", last_labels(w->start, n));
    } else {
        /* rule 1 (psd=n: the walk stopped there) and rule 3 (fewest labels) */
        snprintf(w->org, sizeof(w->org), "%s", l->domain);
    }
    /* 4.10.1: the Author Domain's own record, else the Organizational
     * Domain's, else the PSD's */
    if (w->q[0].step == PST_DMARC_STEP_RECORD) {
        w->policy = 0;
        return;
    }
    for (size_t i = 0; i < w->nq; i++)
        if (w->q[i].step == PST_DMARC_STEP_RECORD && strcmp(w->q[i].domain, w->org) == 0) {
            w->policy = (int)i;
            return;
        }
    if (l->rec->psd == 'y')
        w->policy = last;
}

static int walk_tree(const struct pst_dmarc_opts *o, struct pst_dmarc_walk *w)
{
    const char *target = w->start;
    size_t x = count_labels(target);
    for (;;) {
        int rc = query_one(o, w, target);
        if (rc != 0)
            return rc;
        const struct pst_dmarc_walk_query *q = &w->q[w->nq - 1];
        if (q->step == PST_DMARC_STEP_TEMPERROR || q->step == PST_DMARC_STEP_PERMERROR) {
            w->error = q->step;
            return 0;
        }
        if (q->step == PST_DMARC_STEP_RECORD && q->rec->psd != 'u')
            return 0; /* steps 2 and 6: psd=y or psd=n stops the walk */
        if (x <= 1 || w->nq >= PST_DMARC_WALK_MAX)
            return 0; /* no labels left (step 7) */
        /* step 4: from 8 or more labels straight to 7; else one less */
        size_t next = (w->nq == 1 && x >= 8) ? 7 : x - 1;
        target = last_labels(w->start, next);
        x = next;
    }
}

/* RFC 7489 6.6.3: the Author Domain, then its Organizational Domain from
 * the PSL (RFC 7489 3.2). */
static int walk_psl(const struct pst_dmarc_opts *o, struct pst_dmarc_walk *w)
{
    char reg[PST_DMARC_DOMAIN_MAX];
    int rc = o->psl->registrable(o->psl->arg, w->start, reg, sizeof(reg));
    if (rc == PST_ERR_NOMEM)
        return rc;
    if (rc != 0)
        snprintf(reg, sizeof(reg), "%s", w->start); /* a public suffix itself */
    snprintf(w->org, sizeof(w->org), "%s", reg);
    w->policy = -1;
    rc = query_one(o, w, w->start);
    if (rc != 0)
        return rc;
    if (w->q[0].step == PST_DMARC_STEP_TEMPERROR || w->q[0].step == PST_DMARC_STEP_PERMERROR) {
        w->error = w->q[0].step;
        return 0;
    }
    if (w->q[0].step == PST_DMARC_STEP_RECORD) {
        w->policy = 0;
        return 0;
    }
    if (strcmp(reg, w->start) == 0)
        return 0;
    rc = query_one(o, w, reg);
    if (rc != 0)
        return rc;
    if (w->q[1].step == PST_DMARC_STEP_TEMPERROR || w->q[1].step == PST_DMARC_STEP_PERMERROR)
        w->error = w->q[1].step;
    else if (w->q[1].step == PST_DMARC_STEP_RECORD)
        w->policy = 1;
    return 0;
}

int pst_dmarc_walk(const struct pst_dmarc_opts *o, const char *domain, struct pst_dmarc_walk **out)
{
    struct pst_dmarc_walk *w = NULL;
    int rc;

    if (o == NULL || o->resolver == NULL || domain == NULL || out == NULL ||
        (o->mode == PST_DMARC_PSL && (o->psl == NULL || o->psl->registrable == NULL)))
        return PST_ERR_INVAL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PST_ERR_NOMEM;
    w->policy = -1;
    rc = pst_dmarc_domain_norm(domain, strlen(domain), w->start, sizeof(w->start));
    if (rc != 0) {
        rc = PST_ERR_SYNTAX;
        goto out;
    }
    if (o->mode == PST_DMARC_PSL) {
        rc = walk_psl(o, w);
    } else {
        rc = walk_tree(o, w);
        if (rc == 0 && w->error == 0)
            select_org(w);
    }
    if (rc != 0)
        goto out;
    *out = w;
    w = NULL;
out:
    pst_dmarc_walk_free(w);
    return rc;
}
