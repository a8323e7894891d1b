/*
 * resolver_zone.c - the DNS resolver interface answered from an RFC 1035
 * master file (RFC 1035 5), parsed by ldns. The lookup follows RFC 1034
 * 4.3.2 for one authoritative source: exact match, CNAME (3.6.2, chased
 * inside the file), wildcard (RFC 4592 3.3.1) from the closest encloser,
 * empty non-terminals (RFC 4592 2.2.2) as NODATA, negative TTL from the SOA
 * (RFC 2308 5). resolver.h describes the behaviour and the failure
 * markers; the rdata goes through the same decoders as every other
 * backend's (pst_dns_answer_add).
 *
 * The asynchronous side answers at once but delivers through a self-pipe,
 * so an event loop sees the same fd/process cycle as with libunbound.
 */
#include "resolver.h"

#include <errno.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"

#define MARK_SERVFAIL "postern-test=servfail"
#define MARK_TIMEOUT  "postern-test=timeout"

struct zrec {
    char *owner; /* text form */
    uint16_t type;
    uint32_t ttl;
    uint8_t *rdata;
    size_t len;
    char *target; /* CNAME target, text form */
};

struct zfail {
    char *name;
    enum pst_dns_status st;
    char *reason;
};

struct zdone {
    struct zdone *next;
    unsigned id;
    pst_dns_done_fn *done;
    void *arg;
    struct pst_dns_answer *answer;
};

struct zone {
    struct pst_resolver r; /* first: the interface */
    struct zrec *recs;
    size_t nrecs;
    struct zfail *fails;
    size_t nfails;
    uint32_t neg_ttl;
    int pipe[2];
    struct zdone *head, *tail;
    unsigned next_id;
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

/* ---- lookup ------------------------------------------------------------- */

static const struct zfail *find_fail(const struct zone *z, const char *name)
{
    for (size_t i = 0; i < z->nfails; i++)
        if (strcmp(z->fails[i].name, name) == 0)
            return &z->fails[i];
    return NULL;
}

/* A name exists when it owns records or has names below it. */
static int name_exists(const struct zone *z, const char *name)
{
    for (size_t i = 0; i < z->nrecs; i++)
        if (pst_dns_name_in(z->recs[i].owner, name))
            return 1;
    return 0;
}

static int owns_records(const struct zone *z, const char *name)
{
    for (size_t i = 0; i < z->nrecs; i++)
        if (strcmp(z->recs[i].owner, name) == 0)
            return 1;
    return 0;
}

/* RFC 4592 3.3.1: for a name that does not exist, the wildcard at its
 * closest encloser, written into out; 0 when there is none. */
static int find_wildcard(const struct zone *z, const char *name, char *out, size_t outlen)
{
    const char *anc = name;

    while (strcmp(anc, ".") != 0) {
        anc = strchr(anc, '.') + 1;
        if (*anc == '\0')
            anc = ".";
        if (!name_exists(z, anc) && strcmp(anc, ".") != 0)
            continue;
        int n = snprintf(out, outlen, "*.%s", strcmp(anc, ".") == 0 ? "" : anc);
        return n > 0 && (size_t)n < outlen && owns_records(z, out);
    }
    return 0;
}

static uint32_t min32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* The chain so far, "a. -> b. -> c.", for a reason text. */
static void chain_text(struct pst_buf *b, char chain[][PST_DNS_NAME_TEXT_MAX], size_t n,
                       const char *last)
{
    for (size_t i = 0; i < n; i++)
        pst_buf_addf(b, "%s -> ", chain[i]);
    pst_buf_addstr(b, last);
}

static int zone_resolve(struct zone *z, const char *name, uint16_t type,
                        struct pst_dns_answer **out)
{
    char chain[PST_DNS_MAX_CNAME + 1][PST_DNS_NAME_TEXT_MAX];
    char wild[PST_DNS_NAME_TEXT_MAX];
    struct pst_dns_answer *a = NULL;
    struct pst_buf *why = NULL;
    const char *cur = name;
    uint32_t ttl = UINT32_MAX;
    size_t nchain = 0;
    int rc = pst_dns_answer_new(name, type, &a);

    if (rc != 0)
        return rc;
    for (;;) {
        const struct zfail *f = find_fail(z, cur);
        if (f != NULL) {
            if (strcmp(cur, name) == 0)
                rc = pst_dns_answer_set(a, f->st, PST_DNS_FOUND, "%s", f->reason);
            else
                rc = pst_dns_answer_set(a, f->st, PST_DNS_FOUND, "%s at %s", f->reason, cur);
            goto out;
        }
        /* the records of cur, or of the wildcard that stands for it */
        const char *src = cur;
        if (!name_exists(z, cur) && find_wildcard(z, cur, wild, sizeof wild))
            src = wild;
        const struct zrec *cname = NULL;
        size_t found = 0;
        for (size_t i = 0; i < z->nrecs; i++) {
            const struct zrec *r = &z->recs[i];
            if (strcmp(r->owner, src) != 0)
                continue;
            if (r->type == type) {
                rc = pst_dns_answer_add(a, r->rdata, r->len, r->ttl);
                if (rc == PST_ERR_NOMEM)
                    goto out;
                if (rc != 0) {
                    rc = 0; /* the answer says FAIL and why */
                    goto out;
                }
                found++;
                ttl = min32(ttl, r->ttl);
            } else if (r->type == PST_DNS_CNAME) {
                cname = r;
            }
        }
        if (found > 0) {
            a->ttl = ttl;
            break;
        }
        if (cname == NULL || type == PST_DNS_CNAME) {
            int exists = src != cur || name_exists(z, cur);
            rc = pst_dns_answer_set(a, PST_DNS_NOTFOUND, exists ? PST_DNS_NODATA : PST_DNS_NXDOMAIN,
                                    NULL);
            a->ttl = min32(ttl, z->neg_ttl);
            break;
        }
        /* RFC 1034 3.6.2: follow the CNAME, refusing loops and long chains */
        snprintf(chain[nchain++], PST_DNS_NAME_TEXT_MAX, "%s", cur);
        ttl = min32(ttl, cname->ttl);
        int loop = 0;
        for (size_t i = 0; i < nchain; i++)
            loop |= strcmp(chain[i], cname->target) == 0;
        if (loop || nchain > PST_DNS_MAX_CNAME) {
            why = pst_buf_new(400);
            if (why == NULL) {
                rc = PST_ERR_NOMEM;
                goto out;
            }
            chain_text(why, chain, nchain, cname->target);
            if (loop)
                rc = pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND, "CNAME loop: %s",
                                        pst_buf_data(why));
            else
                rc = pst_dns_answer_set(a, PST_DNS_FAIL, PST_DNS_FOUND,
                                        "CNAME chain longer than %d: %s", PST_DNS_MAX_CNAME,
                                        pst_buf_data(why));
            goto out;
        }
        cur = cname->target;
        if ((rc = pst_dns_answer_set_canonical(a, cur)) != 0)
            goto out;
    }
    pst_dns_answer_finish(a);
out:
    pst_buf_free(why);
    if (rc != 0) {
        pst_dns_answer_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

static int zone_query(struct pst_resolver *r, const char *name, uint16_t type, unsigned timeout_ms,
                      struct pst_dns_answer **out)
{
    (void)timeout_ms; /* answers never wait */
    return zone_resolve((struct zone *)r, name, type, out);
}

/* ---- the asynchronous side ---------------------------------------------- */

static int ensure_pipe(struct zone *z)
{
    if (z->pipe[0] >= 0)
        return 0;
    return pipe2(z->pipe, O_NONBLOCK | O_CLOEXEC) == 0 ? 0 : PST_ERR_IO;
}

static int zone_query_async(struct pst_resolver *r, const char *name, uint16_t type,
                            pst_dns_done_fn *done, void *arg, unsigned *id)
{
    struct zone *z = (struct zone *)r;
    struct zdone *d;
    int rc = ensure_pipe(z);

    if (rc != 0)
        return rc;
    d = calloc(1, sizeof *d);
    if (d == NULL)
        return PST_ERR_NOMEM;
    if ((rc = zone_resolve(z, name, type, &d->answer)) != 0) {
        free(d);
        return rc;
    }
    d->id = ++z->next_id;
    d->done = done;
    d->arg = arg;
    if (z->tail != NULL)
        z->tail->next = d;
    else
        z->head = d;
    z->tail = d;
    /* a full pipe already wakes the loop: EAGAIN is fine */
    if (write(z->pipe[1], "", 1) < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        /* leave it queued: the next process() delivers it */
    }
    *id = d->id;
    return 0;
}

static int zone_cancel(struct pst_resolver *r, unsigned id)
{
    struct zone *z = (struct zone *)r;
    struct zdone *prev = NULL;

    for (struct zdone *d = z->head; d != NULL; prev = d, d = d->next) {
        if (d->id != id)
            continue;
        if (prev != NULL)
            prev->next = d->next;
        else
            z->head = d->next;
        if (z->tail == d)
            z->tail = prev;
        pst_dns_answer_free(d->answer);
        free(d);
        return 0;
    }
    return PST_ERR_NOTFOUND;
}

static int zone_fd(struct pst_resolver *r)
{
    struct zone *z = (struct zone *)r;
    int rc = ensure_pipe(z);

    return rc != 0 ? rc : z->pipe[0];
}

static int zone_process(struct pst_resolver *r)
{
    struct zone *z = (struct zone *)r;
    char drain[64];
    size_t n = 0;

    if (z->pipe[0] >= 0)
        while (read(z->pipe[0], drain, sizeof drain) > 0)
            ;
    /* only what is queued now: callbacks may queue more (delivered by the
     * next call, the pipe is readable again) or cancel queued ones */
    for (struct zdone *d = z->head; d != NULL; d = d->next)
        n++;
    while (n-- > 0 && z->head != NULL) {
        struct zdone *d = z->head;
        z->head = d->next;
        if (z->head == NULL)
            z->tail = NULL;
        d->done(d->arg, d->answer);
        free(d);
    }
    return 0;
}

static void zone_free(struct pst_resolver *r)
{
    struct zone *z = (struct zone *)r;

    for (size_t i = 0; i < z->nrecs; i++) {
        free(z->recs[i].owner);
        free(z->recs[i].rdata);
        free(z->recs[i].target);
    }
    free(z->recs);
    for (size_t i = 0; i < z->nfails; i++) {
        free(z->fails[i].name);
        free(z->fails[i].reason);
    }
    free(z->fails);
    while (z->head != NULL) {
        struct zdone *d = z->head;
        z->head = d->next;
        pst_dns_answer_free(d->answer);
        free(d);
    }
    if (z->pipe[0] >= 0) {
        close(z->pipe[0]);
        close(z->pipe[1]);
    }
    free(z);
}

/* ---- loading ------------------------------------------------------------ */

static int add_fail(struct zone *z, const char *name, enum pst_dns_status st, const char *reason)
{
    char text[PST_DNS_NAME_TEXT_MAX];
    int rc = pst_dns_name_normalize(name, text, sizeof text);

    if (rc != 0)
        return PST_ERR_SYNTAX;
    struct zfail *f = realloc(z->fails, (z->nfails + 1) * sizeof *f);
    if (f == NULL)
        return PST_ERR_NOMEM;
    z->fails = f;
    f = &z->fails[z->nfails];
    f->name = strdup(text);
    f->reason = strdup(reason);
    f->st = st;
    if (f->name == NULL || f->reason == NULL) {
        free(f->name);
        free(f->reason);
        return PST_ERR_NOMEM;
    }
    z->nfails++;
    return 0;
}

/* A TXT rdata that is exactly one of the markers: its reason, or NULL. */
static const char *marker(const uint8_t *rdata, size_t len)
{
    if (len == sizeof MARK_SERVFAIL && rdata[0] == len - 1 &&
        memcmp(rdata + 1, MARK_SERVFAIL, len - 1) == 0)
        return "SERVFAIL (simulated)";
    if (len == sizeof MARK_TIMEOUT && rdata[0] == len - 1 &&
        memcmp(rdata + 1, MARK_TIMEOUT, len - 1) == 0)
        return "timed out (simulated)";
    return NULL;
}

/* Turns one ldns record into a zrec (or a failure marker). */
static int add_rr(struct zone *z, const ldns_rr *rr, ldns_buffer *buf, const char *source,
                  char *err, size_t errlen)
{
    char owner[PST_DNS_NAME_TEXT_MAX], target[PST_DNS_NAME_TEXT_MAX];
    const ldns_rdf *o = ldns_rr_owner(rr);
    const char *why = "unreadable";
    size_t used;
    int rc;

    rc = pst_dns_name_from_wire(ldns_rdf_data(o), ldns_rdf_size(o), &used, owner, sizeof owner,
                                &why);
    if (rc != 0) {
        seterr(err, errlen, "%s: owner name: %s", source, why);
        return PST_ERR_SYNTAX;
    }
    ldns_buffer_clear(buf);
    if (ldns_rr_rdata2buffer_wire(buf, rr) != LDNS_STATUS_OK) {
        seterr(err, errlen, "%s: %s: cannot encode the record", source, owner);
        return PST_ERR_NOMEM;
    }
    const uint8_t *rdata = ldns_buffer_begin(buf);
    size_t len = ldns_buffer_position(buf);
    uint16_t type = (uint16_t)ldns_rr_get_type(rr);

    if (type == PST_DNS_TXT && marker(rdata, len) != NULL)
        return add_fail(z, owner, PST_DNS_RETRY, marker(rdata, len));
    target[0] = '\0';
    if (type == PST_DNS_CNAME) {
        rc = pst_dns_name_from_wire(rdata, len, &used, target, sizeof target, &why);
        if (rc != 0 || used != len) {
            seterr(err, errlen, "%s: %s: CNAME target: %s", source, owner,
                   rc != 0 ? why : "octets after the name");
            return PST_ERR_SYNTAX;
        }
    }
    if (type == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7) {
        /* RFC 2308 5: the negative TTL is min(SOA TTL, SOA MINIMUM) */
        uint32_t min = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));
        z->neg_ttl = min32(ldns_rr_ttl(rr), min);
    }
    struct zrec *r = &z->recs[z->nrecs];
    memset(r, 0, sizeof *r);
    r->owner = strdup(owner);
    r->rdata = malloc(len > 0 ? len : 1);
    r->target = target[0] != '\0' ? strdup(target) : NULL;
    if (r->owner == NULL || r->rdata == NULL || (target[0] != '\0' && r->target == NULL)) {
        free(r->owner);
        free(r->rdata);
        free(r->target);
        seterr(err, errlen, "%s: out of memory", source);
        return PST_ERR_NOMEM;
    }
    if (len > 0)
        memcpy(r->rdata, rdata, len);
    r->len = len;
    r->type = type;
    r->ttl = ldns_rr_ttl(rr);
    z->nrecs++;
    return 0;
}

/*
 * The first pass: the file read record by record with the same ldns
 * parser, keeping nothing. ldns_zone_new_frm_fp_l() loses the records read
 * before an error (it frees the zone shallowly) and drops a second SOA
 * without a word; this pass finds every error first, with its line, and
 * counts the records, so the real parse below only runs on a file that
 * parses and is small enough.
 */
static int prescan(FILE *fp, const char *source, char *err, size_t errlen)
{
    ldns_rdf *origin = NULL, *prev = NULL;
    uint32_t ttl = 3600;
    size_t n = 0;
    int line = 0, soa = 0, rc = 0;

    while (rc == 0 && !feof(fp)) {
        ldns_rr *rr = NULL;
        ldns_status st = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &origin, &prev, &line);
        if (st == LDNS_STATUS_SYNTAX_EMPTY || st == LDNS_STATUS_SYNTAX_TTL ||
            st == LDNS_STATUS_SYNTAX_ORIGIN)
            continue;
        if (st != LDNS_STATUS_OK) {
            if (st == LDNS_STATUS_SYNTAX_INCLUDE)
                st = LDNS_STATUS_SYNTAX_INCLUDE_ERR_NOTIMPL;
            seterr(err, errlen, "%s:%d: %s", source, line, ldns_get_errorstr_by_id(st));
            rc = st == LDNS_STATUS_MEM_ERR ? PST_ERR_NOMEM : PST_ERR_SYNTAX;
            break;
        }
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA) {
            if (soa++) {
                seterr(err, errlen, "%s:%d: a second SOA record (one zone per file)", source, line);
                rc = PST_ERR_SYNTAX;
            } else if (origin == NULL) {
                origin = ldns_rdf_clone(ldns_rr_owner(rr)); /* as the zone parser does */
            }
        }
        ldns_rr_free(rr);
        if (rc == 0 && ++n > PST_ZONE_MAX_RECORDS) {
            seterr(err, errlen, "%s: more than %d records", source, PST_ZONE_MAX_RECORDS);
            rc = PST_ERR_TOOBIG;
        }
    }
    ldns_rdf_deep_free(origin);
    ldns_rdf_deep_free(prev);
    return rc;
}

static int load(FILE *fp, const char *source, struct pst_resolver **out, char *err, size_t errlen)
{
    ldns_zone *lz = NULL;
    ldns_buffer *buf = NULL;
    struct zone *z = NULL;
    int line = 0, rc;

    if ((rc = prescan(fp, source, err, errlen)) != 0)
        return rc;
    rewind(fp);
    ldns_status st = ldns_zone_new_frm_fp_l(&lz, fp, NULL, 3600, LDNS_RR_CLASS_IN, &line);
    if (st != LDNS_STATUS_OK) {
        seterr(err, errlen, "%s:%d: %s", source, line, ldns_get_errorstr_by_id(st));
        return st == LDNS_STATUS_MEM_ERR ? PST_ERR_NOMEM : PST_ERR_SYNTAX;
    }
    const ldns_rr_list *list = ldns_zone_rrs(lz);
    size_t n = ldns_rr_list_rr_count(list) + (ldns_zone_soa(lz) != NULL);
    z = calloc(1, sizeof *z);
    buf = ldns_buffer_new(LDNS_MAX_RDFLEN);
    if (z == NULL || buf == NULL || (n > 0 && (z->recs = calloc(n, sizeof *z->recs)) == NULL)) {
        seterr(err, errlen, "%s: out of memory", source);
        rc = PST_ERR_NOMEM;
        goto out;
    }
    z->pipe[0] = z->pipe[1] = -1;
    z->r = (struct pst_resolver){
        .kind = "zone",
        .query = zone_query,
        .query_async = zone_query_async,
        .cancel = zone_cancel,
        .fd = zone_fd,
        .process = zone_process,
        .free = zone_free,
    };
    if (ldns_zone_soa(lz) != NULL &&
        (rc = add_rr(z, ldns_zone_soa(lz), buf, source, err, errlen)) != 0)
        goto out;
    for (size_t i = 0; i < ldns_rr_list_rr_count(list); i++)
        if ((rc = add_rr(z, ldns_rr_list_rr(list, i), buf, source, err, errlen)) != 0)
            goto out;
    *out = &z->r;
    z = NULL;
    rc = 0;
out:
    if (z != NULL)
        zone_free(&z->r);
    ldns_buffer_free(buf);
    ldns_zone_deep_free(lz);
    return rc;
}

int pst_resolver_zone_open(const char *path, struct pst_resolver **out, char *err, size_t errlen)
{
    if (path == NULL || out == NULL)
        return PST_ERR_INVAL;
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        int e = errno;
        seterr(err, errlen, "%s: cannot open: %s", path, strerror(e));
        errno = e;
        return PST_ERR_IO;
    }
    int rc = load(fp, path, out, err, errlen);
    fclose(fp);
    return rc;
}

int pst_resolver_zone_from_text(const char *text, size_t len, struct pst_resolver **out, char *err,
                                size_t errlen)
{
    if (text == NULL || out == NULL)
        return PST_ERR_INVAL;
    if (len == 0) {
        text = "\n"; /* fmemopen refuses an empty buffer */
        len = 1;
    }
    FILE *fp = fmemopen((void *)text, len, "r");
    if (fp == NULL) {
        seterr(err, errlen, "(text): cannot read: %s", strerror(errno));
        return PST_ERR_IO;
    }
    int rc = load(fp, "(text)", out, err, errlen);
    fclose(fp);
    return rc;
}

int pst_resolver_zone_fail(struct pst_resolver *r, const char *name, enum pst_dns_status st,
                           const char *reason)
{
    if (r == NULL || r->free != zone_free || name == NULL ||
        (st != PST_DNS_RETRY && st != PST_DNS_FAIL))
        return PST_ERR_INVAL;
    if (reason == NULL)
        reason = st == PST_DNS_RETRY ? "SERVFAIL (simulated)" : "failure (simulated)";
    return add_fail((struct zone *)r, name, st, reason);
}
