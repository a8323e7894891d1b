/*
 * checks.c - what posternd asks about a received message before it is
 * acknowledged, on the check pool so the event loop never waits on DNS;
 * and the DKIM signing keys, parsed once per configuration.
 *
 * The checks are lib/core/auth's: SPF for the MAIL FROM identity, every
 * DKIM signature (up to dkim.max_signatures), and DMARC for the From
 * domain, through a libunbound resolver of the worker's own (dns group)
 * with a key cache. Then the policy (RFC 9989 5.3 and 8): what the author
 * domain asks, softened by the configuration (dmarc.reject = quarantine,
 * dmarc.temperror = accept, auth.allow sources and authenticated
 * sessions). A message that is kept is rewritten with our
 * Authentication-Results field on top and without incoming ones that carry
 * our authserv-id (RFC 8601 5). Each checked message's results go to the
 * SQLite store (auth.store) for DMARC aggregate reports.
 *
 * The signing keys (dkim.sign) are read and parsed when a configuration is
 * loaded (start and SIGHUP); a key that does not load refuses that
 * configuration. Key bytes live in wiped buffers and are never logged.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/rand.h>

#include "buf.h"
#include "daemon.h"
#include "dkim.h"
#include "dns.h"
#include "err.h"
#include "fsio.h"
#include "log.h"
#include "auth.h"
#include "dsn.h"
#include "authres.h"
#include "msg.h"
#include "psl.h"
#include "store.h"
#include "worker.h"

#define KEYFILE_MAX (64 * 1024)
#define HEADER_MAX  (1024 * 1024) /* a header section larger than this is not verified */
#define READ_CHUNK  (64 * 1024)

/* ---- signing keys -------------------------------------------------------- */

struct pstd_signers {
    size_t n;
    struct {
        char *domain;
        struct pst_dkim_signer *signer;
    } * v;
};

static int read_key(const char *path, struct pst_buf *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "dkim key %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "dkim key %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) {
            explicit_bzero(buf, sizeof(buf));
            close(fd);
            return 0;
        }
        if (pst_buf_add(out, buf, (size_t)r) != 0) {
            snprintf(err, errlen, "dkim key %s: larger than %d bytes", path, KEYFILE_MAX);
            break;
        }
    }
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return -1;
}

void pstd_signers_free(struct pstd_signers *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].domain);
        pst_dkim_signer_free(s->v[i].signer);
    }
    free(s->v);
    free(s);
}

/* The signer for domain, grouping its keys (rsa and ed25519 together). */
static struct pst_dkim_signer *signer_for(struct pstd_signers *s, const char *domain, char *err,
                                          size_t errlen)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].domain, domain) == 0)
            return s->v[i].signer;
    void *p = realloc(s->v, (s->n + 1) * sizeof(*s->v));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->v = p;
    struct pst_dkim_signer_opts o;
    memset(&o, 0, sizeof(o));
    o.domain = domain;
    o.hcanon = PST_DKIM_RELAXED;
    o.bcanon = PST_DKIM_RELAXED;
    struct pst_dkim_signer *sg = NULL;
    int rc = pst_dkim_signer_new(&o, &sg);
    char *dup = strdup(domain);
    if (rc != 0 || dup == NULL) {
        pst_dkim_signer_free(sg);
        free(dup);
        snprintf(err, errlen, "dkim signer for %s: %s", domain, pst_strerror(rc));
        return NULL;
    }
    s->v[s->n].domain = dup;
    s->v[s->n].signer = sg;
    s->n++;
    return sg;
}

int pstd_signers_load(const struct pst_conf *c, struct pstd_signers **out, char *err, size_t errlen)
{
    struct pstd_signers *s = calloc(1, sizeof(*s));
    struct pst_buf *pem = pst_buf_new_secret(KEYFILE_MAX);
    if (s == NULL || pem == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < c->ndkim_keys; i++) {
        const struct pst_dkim_key_conf *k = &c->dkim_keys[i];
        pst_buf_reset(pem);
        if (read_key(k->key_file, pem, err, errlen) != 0)
            goto fail;
        struct pst_dkim_signer *sg = signer_for(s, k->domain, err, errlen);
        if (sg == NULL)
            goto fail;
        int rc = pst_dkim_signer_add_key(sg, k->selector, pst_buf_data(pem), pst_buf_len(pem));
        if (rc != 0) {
            snprintf(err, errlen, "dkim key %s (%s._domainkey.%s): %s", k->key_file, k->selector,
                     k->domain,
                     rc == PST_ERR_CRYPTO || rc == PST_ERR_SYNTAX
                         ? "not a usable private key (PEM RSA of 1024 bits or more, or Ed25519)"
                         : pst_strerror(rc));
            goto fail;
        }
    }
    pst_buf_free(pem);
    *out = s;
    return 0;
fail:
    pst_buf_free(pem);
    pstd_signers_free(s);
    return -1;
}

const struct pst_dkim_signer *pstd_signer_for(const struct pstd_signers *s, const char *domain)
{
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].domain, domain) == 0)
            return s->v[i].signer;
    return NULL;
}

size_t pstd_signers_count(const struct pstd_signers *s)
{
    return s ? s->n : 0;
}

/* ---- per-thread state ----------------------------------------------------- */

/* Each check worker keeps a resolver, a key cache, the Public Suffix List
 * when the configuration wants it, made for the
 * configuration generation it serves and remade after a reload. */
struct tstate {
    unsigned long gen;
    struct pst_resolver *res; /* borrowed: pstd_thread_resolver */
    struct pst_dkim_keycache *cache;
    struct pst_psl *psl;
    char err[256];
};

static pthread_key_t tkey;
static pthread_once_t tonce = PTHREAD_ONCE_INIT;

static void tstate_clear(struct tstate *t)
{
    /* the resolver is the thread's (tres.c), not ours to free */
    pst_dkim_keycache_free(t->cache);
    pst_psl_free(t->psl);
    t->res = NULL;
    t->cache = NULL;
    t->psl = NULL;
}

static void tstate_free(void *p)
{
    struct tstate *t = p;
    if (t == NULL)
        return;
    tstate_clear(t);
    free(t);
}

static void tkey_make(void)
{
    pthread_key_create(&tkey, tstate_free);
}

static struct tstate *tstate_get(const struct pstd_confref *cr)
{
    pthread_once(&tonce, tkey_make);
    struct tstate *t = pthread_getspecific(tkey);
    if (t != NULL && t->gen == cr->gen && t->res != NULL)
        return t;
    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t == NULL)
            return NULL;
        pthread_setspecific(tkey, t);
    }
    tstate_clear(t);
    t->gen = cr->gen;
    const struct pst_conf *c = cr->conf;
    t->res = pstd_thread_resolver(cr, t->err, sizeof(t->err));
    if (t->res == NULL)
        return t; /* err says why; the checks report temperror */
    if (c->dmarc_verify && c->dmarc_psl &&
        pst_psl_open(c->psl_file, &t->psl, t->err, sizeof(t->err)) != 0) {
        t->res = NULL;
        return t;
    }
    if (pst_dkim_keycache_new(256, 3600, &t->cache) != 0)
        t->cache = NULL;
    t->err[0] = '\0';
    return t;
}

/* ---- the check ------------------------------------------------------------ */

struct check {
    struct pstd *d;
    struct pstd_confref *cr;
    int fd;
    struct pstd_check_in in; /* strings owned here */
    char id[PST_QUEUE_ID_LEN + 1];
    void (*cb)(void *arg, struct pstd_check_result *r);
    void *arg;
    struct pst_buf *summary;
    struct pstd_check_result r;
    char reason[640];
};

/* Records the results for aggregate reports (RFC 9990 3.1.2 rows). */
/* The results store: one SQLite handle for every check worker, inserts
 * batched (64 rows or one second in a transaction; committed at the next
 * insert past that, by the one-second tick, and when posternd stops). One writer at a time: the
 * lock, not SQLite's busy handler (which sleeps milliseconds at a time). */
struct pstd_results {
    pthread_mutex_t mu;
    struct pst_store *store;
    char *path;
    int failed;       /* said once per path */
    int pending;      /* rows wait in an open transaction (atomic reads) */
    int flush_queued; /* loop thread only */
};

struct pstd_results *pstd_results_new(void)
{
    struct pstd_results *r = calloc(1, sizeof(*r));
    if (r != NULL)
        pthread_mutex_init(&r->mu, NULL);
    return r;
}

void pstd_results_free(struct pstd_results *r)
{
    if (r == NULL)
        return;
    pst_store_close(r->store); /* commits what is gathered */
    free(r->path);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void flush_work(void *arg)
{
    struct pstd_results *r = arg;
    char err[256];
    pthread_mutex_lock(&r->mu);
    if (r->store != NULL && pst_store_flush(r->store, err, sizeof(err)) != 0)
        log_warn("checks: results store %s: %s", r->path, err);
    __atomic_store_n(&r->pending, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&r->mu);
}

static void flush_done(void *arg)
{
    struct pstd_results *r = arg;
    r->flush_queued = 0;
}

void pstd_results_tick(struct pstd *d)
{
    struct pstd_results *r = d->results;
    /* rows gathered while mail came in are committed within a second or
     * two after it stops, on the check pool (SQLite never runs on the loop) */
    if (r == NULL || r->flush_queued || !__atomic_load_n(&r->pending, __ATOMIC_RELAXED))
        return;
    r->flush_queued = 1;
    if (pstd_pool_submit(d->check_pool, flush_work, flush_done, r) != 0)
        r->flush_queued = 0;
}

/* The handle for path (reopened after a reload changed it); NULL when it
 * does not open. Called with r->mu held. */
static struct pst_store *results_store(struct pstd_results *r, const char *path)
{
    if (r->path != NULL && strcmp(r->path, path) != 0) {
        pst_store_close(r->store);
        r->store = NULL;
        free(r->path);
        r->path = NULL;
        r->failed = 0;
    }
    if (r->store != NULL || r->failed)
        return r->store;
    char err[256];
    r->path = strdup(path);
    if (r->path == NULL || pst_store_open(path, &r->store, err, sizeof(err)) != 0) {
        r->store = NULL;
        r->failed = 1;
        log_warn("checks: results store %s: %s; results are not kept", path,
                 r->path ? err : "out of memory");
        return NULL;
    }
    pst_store_batch(r->store, 64, 1000);
    return r->store;
}

/* Records the results for aggregate reports (RFC 9990 3.1.2 rows). */
static void store_results(struct check *k, const struct pst_auth *au, const char *disposition,
                          const char *override)
{
    const struct pst_conf *c = k->cr->conf;
    if (c->auth_store == NULL || k->d->results == NULL)
        return;
    char err[256];
    struct pst_store_auth a;
    memset(&a, 0, sizeof(a));
    a.time = (int64_t)time(NULL);
    a.queue_id = k->id;
    a.source_ip = k->in.ip;
    a.helo = k->in.helo;
    a.envelope_from = k->in.sender;
    const struct pst_spf_verdict *spf = pst_auth_spf(au);
    if (spf != NULL) {
        a.spf_result = pst_spf_result_name(spf->result);
        a.spf_domain = spf->domain;
    }
    const struct pst_dmarc_eval *e = pst_auth_dmarc(au);
    if (e != NULL) {
        a.header_from = e->author[0] ? e->author : NULL;
        a.dmarc_result = pst_dmarc_result_name(e->result);
        a.policy_domain = e->policy_domain[0] ? e->policy_domain : NULL;
        a.policy_tag = e->policy_tag;
        a.policy = e->policy_tag ? pst_dmarc_policy_name(e->policy) : NULL;
        a.testing = e->testing;
        if (e->record != NULL) {
            a.adkim = e->record->adkim;
            a.aspf = e->record->aspf;
        }
    }
    size_t n = 0, skipped = 0;
    const struct pst_dkim_verdict *v = pst_auth_dkim(au, &n, &skipped);
    struct pst_store_dkim dk[64];
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++) {
        dk[i].domain = v[i].d[0] ? v[i].d : NULL;
        dk[i].selector = v[i].s[0] ? v[i].s : NULL;
        dk[i].result = pst_dkim_result_name(v[i].result);
    }
    a.dkim = dk;
    a.ndkim = n;
    a.disposition = disposition;
    a.override = override;
    struct pstd_results *r = k->d->results;
    pthread_mutex_lock(&r->mu);
    struct pst_store *st = results_store(r, c->auth_store);
    int src = st != NULL ? pst_store_add_auth(st, &a, err, sizeof(err)) : 0;
    __atomic_store_n(&r->pending, pst_store_pending(st) > 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&r->mu);
    if (src != 0)
        log_warn("checks: %s: results not stored: %s", k->id, err);
}

/* Moves the bytes [from, size) of fd by delta (either way), in chunks
 * (from the end when growing, so nothing is overwritten before it is
 * read), and cuts the file when it shrinks. 0 or -1 (errno). */
static int shift_tail(int fd, off_t from, off_t size, off_t delta, char *chunk)
{
    if (delta > 0) {
        for (off_t end = size; end > from;) {
            size_t n = end - from > READ_CHUNK ? READ_CHUNK : (size_t)(end - from);
            off_t at = end - (off_t)n;
            if (pst_fsio_pread(fd, chunk, n, at) != (ssize_t)n ||
                pst_fsio_pwrite_all(fd, chunk, n, at + delta) != 0)
                return -1;
            end = at;
        }
    } else if (delta < 0) {
        for (off_t at = from; at < size;) {
            size_t n = size - at > READ_CHUNK ? READ_CHUNK : (size_t)(size - at);
            if (pst_fsio_pread(fd, chunk, n, at) != (ssize_t)n ||
                pst_fsio_pwrite_all(fd, chunk, n, at + delta) != 0)
                return -1;
            at += (off_t)n;
        }
        if (ftruncate(fd, size + delta) != 0)
            return -1;
    }
    return 0;
}

/* Rewrites the spooled message in place (the same file: no new inode, no
 * rename; it is not acknowledged yet, so a crash halfway loses nothing
 * that was promised): prefix (fields put on top), the header section
 * hdr[0..hlen) (without incoming Authentication-Results fields that carry
 * our authserv-id when strip is set: RFC 8601 5), suffix (fields added at
 * the end of the header section), then the rest of the file from hlen on
 * (the empty line and the body), moved as far as the header grew. */
static int rewrite(struct check *k, const struct pst_buf *prefix, const char *hdr, size_t hlen,
                   int strip, const struct pst_buf *suffix, char *chunk)
{
    struct pst_buf *out = pst_buf_new(HEADER_MAX + 256 * 1024);
    int ok = 0;
    size_t removed = 0;
    const char *why = NULL;
    struct stat st;
    if (out == NULL)
        return -1;
    if (prefix != NULL && pst_buf_add(out, pst_buf_data(prefix), pst_buf_len(prefix)) != 0)
        goto done;
    size_t mark = pst_buf_len(out);
    if (!strip ||
        pst_authres_strip(hdr, hlen, k->cr->conf->authserv_id, out, &removed, &why) != 0) {
        /* nothing to strip, or a header that does not split: kept as it
         * came (no split-based reader finds a field of ours in it either) */
        pst_buf_truncate(out, mark);
        if (pst_buf_add(out, hdr, hlen) != 0)
            goto done;
    }
    if (suffix != NULL && pst_buf_add(out, pst_buf_data(suffix), pst_buf_len(suffix)) != 0)
        goto done;
    if (fstat(k->fd, &st) != 0)
        goto done;
    off_t delta = (off_t)pst_buf_len(out) - (off_t)hlen;
    if (shift_tail(k->fd, (off_t)hlen, st.st_size, delta, chunk) != 0 ||
        pst_fsio_pwrite_all(k->fd, pst_buf_data(out), pst_buf_len(out), 0) != 0)
        goto done;
    ok = 1;
    if (removed > 0)
        pst_buf_addf(k->summary,
                     "; removed %zu Authentication-Results field%s with our authserv-id", removed,
                     removed == 1 ? "" : "s");
done:
    if (!ok)
        log_err("checks: %s: rewriting the message: %s", k->id, strerror(errno));
    pst_buf_free(out);
    return ok ? 0 : -1;
}

/* The policy decision: what the author domain asks (lib/core/auth),
 * softened by the configuration. *override gets RFC 9990's
 * PolicyOverrideType word when the decision differs. */
static enum pstd_check_action decide(const struct check *k, enum pst_auth_disposition d,
                                     const char **override)
{
    const struct pst_conf *c = k->cr->conf;
    *override = NULL;
    if (d == PST_AUTH_DELIVER)
        return PSTD_CHECK_ACCEPT;
    if (k->in.authenticated || pst_cidr_match_any(c->auth_allow, c->nauth_allow, k->in.ip)) {
        *override = "local_policy";
        return PSTD_CHECK_ACCEPT;
    }
    switch (d) {
    case PST_AUTH_REJECT:
        if (c->dmarc_reject_quarantine) {
            *override = "local_policy";
            return PSTD_CHECK_QUARANTINE;
        }
        return PSTD_CHECK_REJECT;
    case PST_AUTH_QUARANTINE:
        return PSTD_CHECK_QUARANTINE;
    case PST_AUTH_TEMPFAIL:
        return c->dmarc_temperror_accept ? PSTD_CHECK_ACCEPT : PSTD_CHECK_TEMPFAIL;
    default:
        return PSTD_CHECK_ACCEPT;
    }
}

static const char *action_name(enum pstd_check_action a)
{
    switch (a) {
    case PSTD_CHECK_QUARANTINE:
        return "quarantine";
    case PSTD_CHECK_REJECT:
        return "reject";
    case PSTD_CHECK_TEMPFAIL:
        return "tempfail";
    default:
        return "deliver";
    }
}

/* Reads the header section of the spooled message into hdr (with the
 * first bytes of the body that came along): *hlen ends with the CRLF of
 * its last field, *body_at is where the body starts, *off how far the file
 * was read. -1 when the header section is larger than HEADER_MAX (the
 * result says 552), -2 when memory ran out. */
static int read_header(struct check *k, struct pst_buf *hdr, char *chunk, off_t *off, size_t *hlen,
                       size_t *body_at)
{
    const char *eoh = NULL;
    *off = 0;
    *body_at = 0;
    while (eoh == NULL) {
        ssize_t r = pread(k->fd, chunk, READ_CHUNK, *off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t before = pst_buf_len(hdr);
        if (pst_buf_add(hdr, chunk, (size_t)r) != 0) {
            /* larger than any header section the parsers accept
             * (PST_MSG_MAX_HEADER): nothing could be checked */
            pst_buf_addstr(k->summary, "header section too large");
            k->r.action = PSTD_CHECK_REJECT;
            k->r.code = 552;
            k->r.enh = "5.3.4";
            snprintf(k->reason, sizeof(k->reason), "Message header section exceeds fixed limit");
            return -1;
        }
        *off += r;
        /* look from a little before the new bytes, in case CRLFCRLF straddles */
        size_t from = before > 3 ? before - 3 : 0;
        const char *p = pst_buf_data(hdr);
        eoh = memmem(p + from, pst_buf_len(hdr) - from, "\r\n\r\n", 4);
        if (eoh != NULL)
            *body_at = (size_t)(eoh - p) + 4;
    }
    if (eoh == NULL)
        *body_at = pst_buf_len(hdr); /* no body: the whole file is the header */
    *hlen = eoh != NULL ? *body_at - 2 : *body_at;
    return 0;
}

static void nomem(struct check *k)
{
    pst_buf_addstr(k->summary, "checks not run (out of memory)");
    k->r.action = PSTD_CHECK_TEMPFAIL;
    snprintf(k->reason, sizeof(k->reason), "Local resources exhausted, try again later");
}

/* Feeds the rest of the file from off (after what hdr holds past body_at). */
static void feed_body(struct check *k, const struct pst_buf *hdr, size_t body_at, off_t off,
                      char *chunk, void (*feed)(void *, const char *, size_t), void *arg)
{
    if (body_at < pst_buf_len(hdr))
        feed(arg, pst_buf_data(hdr) + body_at, pst_buf_len(hdr) - body_at);
    for (;;) {
        ssize_t r = pread(k->fd, chunk, READ_CHUNK, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        feed(arg, chunk, (size_t)r);
        off += r;
    }
}

static void feed_auth(void *arg, const char *p, size_t n)
{
    pst_auth_body(arg, p, n);
}

static void feed_sign(void *arg, const char *p, size_t n)
{
    pst_dkim_sign_body(arg, p, n);
}

/* A submitted message (an authenticated or local sender): Date and
 * Message-ID when missing (RFC 6409 8.2 and 8.3), then DKIM signatures of
 * the author's domain when we have its keys (RFC 6376 5), on top. */
static void submission_work(struct check *k)
{
    const struct pst_conf *c = k->cr->conf;
    struct pst_buf *hdr = pst_buf_new(HEADER_MAX);
    struct pst_buf *add = pst_buf_new(4096);
    struct pst_buf *full = NULL, *sigs = NULL;
    struct pst_msg_header *mh = NULL;
    struct pst_dkim_signing *g = NULL;
    char *chunk = malloc(READ_CHUNK);
    off_t off = 0;
    size_t hlen = 0, body_at = 0;
    if (hdr == NULL || add == NULL || chunk == NULL) {
        nomem(k);
        goto out;
    }
    if (read_header(k, hdr, chunk, &off, &hlen, &body_at) != 0)
        goto out;
    const char *why = NULL;
    if (pst_msg_split(pst_buf_data(hdr), hlen, NULL, &mh, &why) != 0) {
        /* RFC 6409 8: the MSA may reject what it cannot fix */
        pst_buf_addf(k->summary, "submission: header section does not parse (%s)", why ? why : "?");
        k->r.action = PSTD_CHECK_REJECT;
        k->r.code = 554;
        k->r.enh = "5.6.0";
        snprintf(k->reason, sizeof(k->reason), "Message header does not parse: %.200s",
                 why ? why : "syntax error");
        goto out;
    }
    time_t now = time(NULL);
    if (pst_msg_count(mh, "Date") == 0) {
        pst_buf_addstr(add, "Date: ");
        pst_dsn_date(add, now);
        pst_buf_addstr(add, "\r\n");
    }
    if (pst_msg_count(mh, "Message-ID") == 0) {
        unsigned char rnd[12];
        RAND_bytes(rnd, sizeof(rnd));
        pst_buf_addstr(add, "Message-ID: <");
        for (size_t i = 0; i < sizeof(rnd); i++)
            pst_buf_addf(add, "%02x", rnd[i]);
        pst_buf_addf(add, ".%s@%s>\r\n", k->id, c->hostname);
    }
    /* the signing domain: the author's (From), for DMARC alignment */
    char dom[PST_DMARC_DOMAIN_MAX] = "";
    enum pst_dmarc_from fr;
    const struct pst_dkim_signer *sg = NULL;
    if (pst_dmarc_author_domain(mh, dom, sizeof(dom), &fr) == 0)
        sg = pstd_signer_for(k->cr->signers, dom);
    if (sg != NULL) {
        full = pst_buf_new(HEADER_MAX + 8192);
        sigs = pst_buf_new(64 * 1024);
        if (full == NULL || sigs == NULL || pst_buf_add(full, pst_buf_data(hdr), hlen) != 0 ||
            pst_buf_add(full, pst_buf_data(add), pst_buf_len(add)) != 0) {
            nomem(k);
            goto out;
        }
        int rc = pst_dkim_sign_start(sg, pst_buf_data(full), pst_buf_len(full), (int64_t)now, &g);
        if (rc == 0) {
            feed_body(k, hdr, body_at, off, chunk, feed_sign, g);
            rc = pst_dkim_sign_finish(g, sigs);
        }
        if (rc != 0) {
            /* unsigned mail from a signing domain would fail DMARC later:
             * better the sender hears it now */
            pst_buf_addf(k->summary, "submission: DKIM signing for %s failed (%s)", dom,
                         pst_strerror(rc));
            k->r.action = PSTD_CHECK_TEMPFAIL;
            k->r.code = 451;
            k->r.enh = "4.7.0";
            snprintf(k->reason, sizeof(k->reason), "Cannot sign the message now, try again later");
            goto out;
        }
        pst_buf_addf(k->summary, "submission: signed for %s", dom);
    } else {
        pst_buf_addf(k->summary, "submission: not signed (no key for %s)",
                     dom[0] ? dom : "(no From)");
    }
    if (pst_buf_len(add) > 0)
        pst_buf_addf(k->summary, "; added%s%s", strstr(pst_buf_data(add), "Date:") ? " Date" : "",
                     strstr(pst_buf_data(add), "Message-ID:") ? " Message-ID" : "");
    k->r.action = PSTD_CHECK_ACCEPT;
    if ((sigs != NULL || pst_buf_len(add) > 0) &&
        rewrite(k, sigs, pst_buf_data(hdr), hlen, 0, add, chunk) != 0) {
        k->r.action = PSTD_CHECK_TEMPFAIL;
        k->r.code = 451;
        k->r.enh = "4.3.0";
        snprintf(k->reason, sizeof(k->reason), "Queue write failed, try again later");
    }
out:
    pst_dkim_signing_free(g);
    pst_msg_header_free(mh);
    pst_buf_free(hdr);
    pst_buf_free(add);
    pst_buf_free(full);
    pst_buf_free(sigs);
    free(chunk);
}

static void check_work(void *arg)
{
    struct check *k = arg;
    if (k->in.authenticated) {
        submission_work(k);
        return;
    }
    const struct pst_conf *c = k->cr->conf;
    struct pst_buf *hdr = pst_buf_new(HEADER_MAX);
    char *chunk = malloc(READ_CHUNK);
    struct pst_auth *au = NULL;
    off_t off = 0;
    size_t hlen = 0, body_at = 0;
    if (hdr == NULL || chunk == NULL) {
        nomem(k);
        goto out;
    }
    if (read_header(k, hdr, chunk, &off, &hlen, &body_at) != 0)
        goto out;

    struct tstate *t = tstate_get(k->cr);
    if (t == NULL || t->res == NULL) {
        pst_buf_addf(k->summary, "temperror (resolver: %s)", t ? t->err : "out of memory");
        k->r.action = c->dmarc_temperror_accept ? PSTD_CHECK_ACCEPT : PSTD_CHECK_TEMPFAIL;
        snprintf(k->reason, sizeof(k->reason), "DNS resolver unavailable, try again later");
        goto out;
    }
    struct pst_auth_opts o = {.resolver = t->res,
                              .authserv_id = c->authserv_id,
                              .now = (int64_t)time(NULL),
                              .timeout_ms = c->dns_timeout * 1000u,
                              .no_spf = !c->spf_verify,
                              .no_dkim = !c->dkim_verify,
                              .no_dmarc = !c->dmarc_verify,
                              .dkim_max_sigs = c->dkim_max_sigs,
                              .dkim_cache = t->cache,
                              .dmarc_mode = c->dmarc_psl ? PST_DMARC_PSL : PST_DMARC_TREEWALK,
                              .dmarc_psl = t->psl ? pst_psl_dmarc(t->psl) : NULL};
    struct pst_auth_in in = {.ip = k->in.ip, .helo = k->in.helo, .mailfrom = k->in.sender};
    if (pst_auth_start(&o, &in, pst_buf_data(hdr), hlen, &au) != 0) {
        nomem(k);
        goto out;
    }
    feed_body(k, hdr, body_at, off, chunk, feed_auth, au);
    if (pst_auth_finish(au) != 0) {
        pst_buf_addstr(k->summary, "checks not finished (out of memory)");
        k->r.action = PSTD_CHECK_TEMPFAIL;
        snprintf(k->reason, sizeof(k->reason), "Local resources exhausted, try again later");
        goto out;
    }
    pst_auth_summary(au, k->summary);
    enum pst_auth_disposition disp = pst_auth_disposition(au);
    const char *override = NULL;
    k->r.action = decide(k, disp, &override);
    pst_buf_addf(k->summary, "; action=%s", action_name(k->r.action));
    if (override != NULL)
        pst_buf_addf(k->summary, " (override %s)", override);
    store_results(k, au, action_name(k->r.action), override);

    const struct pst_dmarc_eval *e = pst_auth_dmarc(au);
    switch (k->r.action) {
    case PSTD_CHECK_REJECT:
        /* RFC 9989 8.3 / RFC 7372 3.2: 550 5.7.1 with the reason */
        k->r.code = 550;
        k->r.enh = "5.7.1";
        snprintf(k->reason, sizeof(k->reason),
                 "Message rejected by the DMARC policy of %.253s: %.200s",
                 e ? e->author : "its domain", e ? e->reason : "authentication failed");
        break;
    case PSTD_CHECK_TEMPFAIL:
        /* RFC 7372 3.2 (4.7.5 cryptographic failure / temporary) */
        k->r.code = 451;
        k->r.enh = "4.7.5";
        snprintf(k->reason, sizeof(k->reason),
                 "DMARC of %.253s cannot be decided now (%.200s), try again later",
                 e && e->author[0] ? e->author : "the From domain", e ? e->reason : "DNS error");
        break;
    default:
        k->r.quarantine = k->r.action == PSTD_CHECK_QUARANTINE;
        struct pst_buf *ar = pst_buf_new(64 * 1024);
        int wrc = ar != NULL && pst_auth_header(au, ar) == 0
                      ? rewrite(k, ar, pst_buf_data(hdr), hlen, 1, NULL, chunk)
                      : -1;
        pst_buf_free(ar);
        if (wrc != 0) {
            k->r.action = PSTD_CHECK_TEMPFAIL;
            k->r.code = 451;
            k->r.enh = "4.3.0";
            snprintf(k->reason, sizeof(k->reason), "Queue write failed, try again later");
        }
        break;
    }
out:
    pst_auth_free(au);
    pst_buf_free(hdr);
    free(chunk);
}

static void check_done(void *arg)
{
    struct check *k = arg;
    k->r.summary = pst_buf_data(k->summary);
    k->r.reason = k->reason;
    if (k->r.code == 0 && k->r.action == PSTD_CHECK_TEMPFAIL) {
        k->r.code = 451;
        k->r.enh = "4.7.5";
    }
    k->cb(k->arg, &k->r);
    pstd_conf_put(k->d, k->cr);
    pst_buf_free(k->summary);
    free((char *)k->in.ip);
    free((char *)k->in.helo);
    free((char *)k->in.sender);
    free(k);
}

int pstd_check_message(struct pstd *d, int fd, const char *id, const struct pstd_check_in *in,
                       void (*cb)(void *arg, struct pstd_check_result *r), void *arg)
{
    struct check *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -1;
    k->summary = pst_buf_new(8192);
    k->in.ip = strdup(in->ip ? in->ip : "");
    k->in.helo = in->helo ? strdup(in->helo) : NULL;
    k->in.sender = strdup(in->sender ? in->sender : "");
    k->in.authenticated = in->authenticated;
    if (k->summary == NULL || k->in.ip == NULL || (in->helo && k->in.helo == NULL) ||
        k->in.sender == NULL)
        goto fail;
    snprintf(k->id, sizeof(k->id), "%s", id);
    k->d = d;
    k->cr = pstd_conf_get(d);
    k->fd = fd;
    k->cb = cb;
    k->arg = arg;
    if (pstd_pool_submit(d->check_pool, check_work, check_done, k) != 0) {
        pstd_conf_put(d, k->cr);
        goto fail;
    }
    return 0;
fail:
    pst_buf_free(k->summary);
    free((char *)k->in.ip);
    free((char *)k->in.helo);
    free((char *)k->in.sender);
    free(k);
    return -1;
}
