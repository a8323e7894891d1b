/*
 * checks.c - what posternd asks about a received message before it is
 * acknowledged, on the check pool so the event loop never waits on DNS;
 * and the DKIM signing keys, parsed once per configuration.
 *
 * Today the check is DKIM verification (RFC 6376 6): every signature up to
 * dkim.max_signatures, through a libunbound resolver of the worker's own
 * (dns group of the configuration), with a per-message query budget and a
 * key cache. The verdicts are logged on one line per message; they become
 * an Authentication-Results header and a DMARC decision with the DMARC
 * work. A check never refuses a message by itself yet.
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

#include "buf.h"
#include "daemon.h"
#include "dkim.h"
#include "dns.h"
#include "err.h"
#include "log.h"
#include "msg.h"
#include "resolver.h"
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

/* ---- per-thread DNS state ------------------------------------------------ */

/* Each check worker keeps a resolver and a key cache, made for the
 * configuration generation it serves and remade after a reload. */
struct tstate {
    unsigned long gen;
    struct pst_resolver *res;
    struct pst_dkim_keycache *cache;
    char err[256];
};

static pthread_key_t tkey;
static pthread_once_t tonce = PTHREAD_ONCE_INIT;

static void tstate_free(void *p)
{
    struct tstate *t = p;
    if (t == NULL)
        return;
    pst_resolver_free(t->res);
    pst_dkim_keycache_free(t->cache);
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
    pst_resolver_free(t->res);
    pst_dkim_keycache_free(t->cache);
    t->res = NULL;
    t->cache = NULL;
    t->gen = cr->gen;
    struct pst_resolver_unbound_conf uc;
    memset(&uc, 0, sizeof(uc));
    uc.server = cr->conf->dns_server;
    uc.trust_anchor = cr->conf->dns_trust_anchor;
    if (pst_resolver_unbound_new(&uc, &t->res, t->err, sizeof(t->err)) != 0) {
        t->res = NULL;
        return t; /* err says why; the check reports temperror */
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
    void (*cb)(void *arg, const char *summary);
    void *arg;
    struct pst_buf *summary;
};

/* 1 when the header section h[0..len) has a DKIM-Signature field (RFC
 * 6376 3.5), or may have one: a section that does not split is left to the
 * verifier, which names the problem. */
static int has_signature(const char *h, size_t len)
{
    struct pst_msg_header *mh = NULL;
    const char *why = NULL;
    if (pst_msg_split(h, len, NULL, &mh, &why) != 0)
        return 1;
    size_t n = pst_msg_count(mh, "DKIM-Signature");
    pst_msg_header_free(mh);
    return n > 0;
}

/* Reads the message from fd (offset 0) and verifies its DKIM signatures.
 * t is the worker's DNS state, made only when a signature needs it. */
static void verify_dkim(struct check *k, struct tstate *t)
{
    const struct pst_conf *c = k->cr->conf;
    struct pst_buf *hdr = pst_buf_new(HEADER_MAX);
    char *chunk = malloc(READ_CHUNK);
    struct pst_dkim_verify *v = NULL;
    if (hdr == NULL || chunk == NULL) {
        pst_buf_addstr(k->summary, "dkim=temperror (out of memory)");
        goto out;
    }
    /* the header section: up to and including the empty line */
    off_t off = 0;
    size_t body_at = 0;
    const char *eoh = NULL;
    while (eoh == NULL) {
        ssize_t r = pread(k->fd, chunk, READ_CHUNK, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t before = pst_buf_len(hdr);
        if (pst_buf_add(hdr, chunk, (size_t)r) != 0) {
            pst_buf_addstr(k->summary, "dkim=permerror (header section too large to verify)");
            goto out;
        }
        off += r;
        /* look from a little before the new bytes, in case CRLFCRLF straddles */
        size_t from = before > 3 ? before - 3 : 0;
        const char *p = pst_buf_data(hdr);
        eoh = memmem(p + from, pst_buf_len(hdr) - from, "\r\n\r\n", 4);
        if (eoh != NULL)
            body_at = (size_t)(eoh - p) + 4;
    }
    if (eoh == NULL)
        body_at = pst_buf_len(hdr); /* no body: the whole file is the header */
    if (!has_signature(pst_buf_data(hdr), body_at)) {
        /* nothing to verify: no resolver needed (RFC 8601 2.7.1 "none") */
        pst_buf_addstr(k->summary, "dkim=none");
        goto out;
    }
    if (t == NULL || t->res == NULL) {
        t = tstate_get(k->cr);
        if (t == NULL || t->res == NULL) {
            pst_buf_addf(k->summary, "dkim=temperror (resolver: %s)", t ? t->err : "out of memory");
            goto out;
        }
    }
    struct pst_dns_budget budget = {.max_queries = c->dkim_max_sigs + 2,
                                    .timeout_ms = c->dns_timeout * 1000u};
    struct pst_dkim_verify_opts o = {.resolver = t->res,
                                     .budget = &budget,
                                     .cache = t->cache,
                                     .now = (int64_t)time(NULL),
                                     .max_sigs = c->dkim_max_sigs};
    const char *why = NULL;
    /* the header section given to DKIM ends with the CRLF of its last field */
    size_t hlen = body_at >= 2 ? body_at - 2 : body_at;
    int rc = pst_dkim_verify_start(&o, pst_buf_data(hdr), hlen, &v, &why);
    if (rc != 0) {
        pst_buf_addf(k->summary, "dkim=permerror (%s)", why ? why : pst_strerror(rc));
        goto out;
    }
    if (body_at < pst_buf_len(hdr))
        pst_dkim_verify_body(v, pst_buf_data(hdr) + body_at, pst_buf_len(hdr) - body_at);
    for (;;) {
        ssize_t r = pread(k->fd, chunk, READ_CHUNK, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        pst_dkim_verify_body(v, chunk, (size_t)r);
        off += r;
    }
    if (pst_dkim_verify_finish(v) != 0) {
        pst_buf_addstr(k->summary, "dkim=temperror (out of memory)");
        goto out;
    }
    size_t n = 0, skipped = 0;
    const struct pst_dkim_verdict *vd = pst_dkim_verify_verdicts(v, &n, &skipped);
    if (n == 0)
        pst_buf_addstr(k->summary, "dkim=none");
    for (size_t i = 0; i < n; i++) {
        /* RFC 8601 2.7.1 property names, RFC 6008 header.b */
        pst_buf_addf(k->summary, "%sdkim=%s", i ? "; " : "", pst_dkim_result_name(vd[i].result));
        if (vd[i].reason[0])
            pst_buf_addf(k->summary, " (%s)", vd[i].reason);
        pst_buf_addf(k->summary, " header.d=%s header.s=%s header.a=%s header.b=%s", vd[i].d,
                     vd[i].s, vd[i].a, vd[i].b8);
    }
    if (skipped > 0)
        pst_buf_addf(k->summary, "; %zu more signature%s not verified", skipped,
                     skipped == 1 ? "" : "s");
out:
    pst_dkim_verify_free(v);
    pst_buf_free(hdr);
    free(chunk);
}

static void check_work(void *arg)
{
    struct check *k = arg;
    if (k->cr->conf->dkim_verify)
        verify_dkim(k, NULL);
}

static void check_done(void *arg)
{
    struct check *k = arg;
    k->cb(k->arg, pst_buf_data(k->summary));
    pstd_conf_put(k->d, k->cr);
    pst_buf_free(k->summary);
    free(k);
}

int pstd_check_message(struct pstd *d, int fd, void (*cb)(void *arg, const char *summary),
                       void *arg)
{
    struct check *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -1;
    k->summary = pst_buf_new(8192);
    if (k->summary == NULL) {
        free(k);
        return -1;
    }
    k->d = d;
    k->cr = pstd_conf_get(d);
    k->fd = fd;
    k->cb = cb;
    k->arg = arg;
    if (pstd_pool_submit(d->check_pool, check_work, check_done, k) != 0) {
        pstd_conf_put(d, k->cr);
        pst_buf_free(k->summary);
        free(k);
        return -1;
    }
    return 0;
}
