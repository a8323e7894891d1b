/*
 * dkim_verify.c - DKIM verification (RFC 6376 6) with RFC 8301 and
 * RFC 8463, results in the words of RFC 8601 2.7.1, and a key cache.
 *
 * Order of checks per signature (6.1): the field parses (else permerror
 * with the parser's reason); rsa-sha1 refused (RFC 8301 3.1, permerror);
 * x= not passed (6.1.1, permerror "signature expired"); the key record
 * (6.1.2): DNS RETRY is temperror, no record / a broken record / a revoked
 * key / a key of another type / h= without sha256 / s= without the
 * service / t=s with a subdomain i= / RSA under 1024 bits (RFC 8301 3.2)
 * are permerror; then the body hash (6.1.3, fail "body hash mismatch") and
 * the signature (fail "signature mismatch"). See dkim.h for the neutral
 * (t=y) and policy (l= short of the body) choices.
 *
 * Body hashes are shared by signatures with the same body canonicalization
 * and l=, so two signatures of one signer (RSA and Ed25519) hash the body
 * once. Nothing of the body is kept.
 *
 * The key cache keeps parsed keys and NXDOMAIN/NODATA answers for their
 * DNS TTL (capped), keyed by the query name; RETRY and FAIL are never
 * cached. When full, the entry that expires first is replaced.
 */
#include "dkim.h"
#include "dkim_int.h"
#include "dns.h"
#include "err.h"
#include "msg.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- key cache ----------------------------------------------------------- */

struct cache_entry {
    char *name;
    int64_t expires;
    struct pst_dkim_key *key; /* NULL: there is no key record */
};

struct pst_dkim_keycache {
    struct cache_entry *e;
    size_t n;
    uint32_t max_ttl;
};

int pst_dkim_keycache_new(size_t entries, uint32_t max_ttl, struct pst_dkim_keycache **out)
{
    if (out == NULL || entries > 100000)
        return PST_ERR_INVAL;
    struct pst_dkim_keycache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PST_ERR_NOMEM;
    c->n = entries ? entries : 64;
    c->max_ttl = max_ttl;
    c->e = calloc(c->n, sizeof(*c->e));
    if (c->e == NULL) {
        free(c);
        return PST_ERR_NOMEM;
    }
    *out = c;
    return 0;
}

static void entry_clear(struct cache_entry *e)
{
    free(e->name);
    pst_dkim_key_free(e->key);
    memset(e, 0, sizeof(*e));
}

void pst_dkim_keycache_free(struct pst_dkim_keycache *c)
{
    if (c == NULL)
        return;
    for (size_t k = 0; k < c->n; k++)
        entry_clear(&c->e[k]);
    free(c->e);
    free(c);
}

static struct cache_entry *cache_get(struct pst_dkim_keycache *c, const char *name, int64_t now)
{
    if (c == NULL)
        return NULL;
    for (size_t k = 0; k < c->n; k++) {
        struct cache_entry *e = &c->e[k];
        if (e->name == NULL || strcmp(e->name, name) != 0)
            continue;
        if (e->expires > now)
            return e;
        entry_clear(e);
    }
    return NULL;
}

/* Takes key (NULL: no record) when it returns 0. */
static int cache_put(struct pst_dkim_keycache *c, const char *name, int64_t now, uint32_t ttl,
                     struct pst_dkim_key *key)
{
    if (c->max_ttl > 0 && ttl > c->max_ttl)
        ttl = c->max_ttl;
    if (ttl == 0)
        return PST_ERR_INVAL;
    struct cache_entry *victim = &c->e[0];
    for (size_t k = 0; k < c->n; k++) {
        struct cache_entry *e = &c->e[k];
        if (e->name == NULL || e->expires <= now) {
            victim = e;
            break;
        }
        if (e->expires < victim->expires)
            victim = e;
    }
    char *n = strdup(name);
    if (n == NULL)
        return PST_ERR_NOMEM;
    entry_clear(victim);
    victim->name = n;
    victim->expires = now + ttl;
    victim->key = key;
    return 0;
}

/* ---- verifier ------------------------------------------------------------ */

struct bodyhash {
    struct pst_dkim_verify *v;
    enum pst_dkim_canon canon;
    uint64_t l;     /* UINT64_MAX: whole body */
    uint64_t total; /* canonical octets seen */
    EVP_MD_CTX *md;
    int bad;
    struct pst_dkim_bodycanon bc;
    unsigned char digest[32];
};

struct vsig {
    struct pst_dkim_sig *sig; /* NULL: did not parse */
    const char *why;          /* parse error */
    size_t field;
    struct bodyhash *bh;
    struct pst_dkim_verdict out;
    char *d, *s, *i, *a; /* owned texts of out */
    char reason[160];
};

struct pst_dkim_verify {
    struct pst_dkim_verify_opts o;
    char *hdr;
    struct pst_msg_header *h;
    struct vsig *sigs;
    struct pst_dkim_verdict *verdicts; /* copies of sigs[].out */
    size_t nsigs, skipped;
    struct bodyhash *hashes;
    size_t nhashes;
    int finished;
};

const char *pst_dkim_result_name(enum pst_dkim_result r)
{
    static const char *const names[] = {"none",   "pass",      "fail",     "neutral",
                                        "policy", "temperror", "permerror"};
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

void pst_dkim_verify_free(struct pst_dkim_verify *v)
{
    if (v == NULL)
        return;
    for (size_t k = 0; k < v->nsigs; k++) {
        struct vsig *s = &v->sigs[k];
        pst_dkim_sig_free(s->sig);
        free(s->d);
        free(s->s);
        free(s->i);
        free(s->a);
    }
    free(v->sigs);
    free(v->verdicts);
    for (size_t k = 0; k < v->nhashes; k++)
        EVP_MD_CTX_free(v->hashes[k].md);
    free(v->hashes);
    free(v->hdr);
    pst_msg_header_free(v->h);
    free(v);
}

static void hash_sink(void *arg, const char *p, size_t n)
{
    struct bodyhash *b = arg;
    uint64_t take = n;
    if (b->total >= b->l)
        take = 0;
    else if (b->l - b->total < take)
        take = b->l - b->total; /* RFC 6376 3.5 l=: only the first l octets */
    if (take > 0 && EVP_DigestUpdate(b->md, p, (size_t)take) != 1)
        b->bad = 1;
    b->total += n;
}

/* A copy of tag name's value (FWS removed), or of "" when absent. */
static char *tag_copy(const struct pst_dkim_taglist *tl, const char *name)
{
    const struct pst_dkim_tag *t = tl ? pst_dkim_tag_get(tl, name) : NULL;
    if (t == NULL)
        return strdup("");
    char *s = dkim_strip_fws(t->value, t->value_len > 255 ? 255 : t->value_len);
    for (char *p = s; p && *p; p++)
        if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
            *p = '?'; /* these texts end up in headers and terminals */
    return s;
}

static int sig_setup(struct pst_dkim_verify *v, struct vsig *s, struct pst_dkim_taglist *tl)
{
    const struct pst_msg_field *f = &v->h->fields[s->field];
    int tl_ok = pst_dkim_taglist_parse(f->value, f->value_len, tl, NULL) == 0;
    int rc = pst_dkim_sig_parse(f->value, f->value_len, &s->sig, &s->why);
    if (rc == PST_ERR_NOMEM)
        return rc;
    if (rc < 0)
        s->sig = NULL;
    if ((s->d = tag_copy(tl_ok ? tl : NULL, "d")) == NULL ||
        (s->s = tag_copy(tl_ok ? tl : NULL, "s")) == NULL ||
        (s->a = tag_copy(tl_ok ? tl : NULL, "a")) == NULL)
        return PST_ERR_NOMEM;
    if (s->sig != NULL) {
        s->i = strdup(s->sig->i);
        if (s->i == NULL)
            return PST_ERR_NOMEM;
        strncpy(s->out.b8, s->sig->b64, 8);
    } else if ((s->i = tag_copy(tl_ok ? tl : NULL, "i")) == NULL) {
        return PST_ERR_NOMEM;
    }
    s->out.d = s->d;
    s->out.s = s->s;
    s->out.i = s->i;
    s->out.a = s->a;
    s->out.reason = "";
    if (s->sig == NULL || s->sig->alg == PST_DKIM_RSA_SHA1)
        return 0;
    uint64_t l = s->sig->has_l ? s->sig->l : UINT64_MAX;
    for (size_t k = 0; k < v->nhashes; k++) {
        if (v->hashes[k].canon == s->sig->bcanon && v->hashes[k].l == l) {
            s->bh = &v->hashes[k];
            return 0;
        }
    }
    struct bodyhash *b = &v->hashes[v->nhashes];
    b->v = v;
    b->canon = s->sig->bcanon;
    b->l = l;
    if ((b->md = EVP_MD_CTX_new()) == NULL)
        return PST_ERR_NOMEM;
    v->nhashes++;
    if (EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
        return PST_ERR_CRYPTO;
    pst_dkim_bodycanon_init(&b->bc, b->canon, hash_sink, b);
    s->bh = b;
    return 0;
}

int pst_dkim_verify_start(const struct pst_dkim_verify_opts *opts, const char *hdr, size_t len,
                          struct pst_dkim_verify **out, const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    *why = NULL;
    if (opts == NULL || opts->resolver == NULL || hdr == NULL || out == NULL ||
        opts->max_sigs > PST_DKIM_MAX_SIGS_HARD) {
        *why = "bad arguments";
        return PST_ERR_INVAL;
    }
    int rc = PST_ERR_NOMEM;
    struct pst_dkim_taglist *tl = malloc(sizeof(*tl));
    struct pst_dkim_verify *v = calloc(1, sizeof(*v));
    if (v == NULL || tl == NULL)
        goto out;
    v->o = *opts;
    if (v->o.max_sigs == 0)
        v->o.max_sigs = PST_DKIM_MAX_SIGS;
    if (v->o.services == 0)
        v->o.services = PST_DKIM_SVC_EMAIL;
    struct pst_msg_header *h;
    if ((rc = pst_msg_split(hdr, len, NULL, &h, why)) < 0)
        goto out;
    size_t hlen = h->body_off;
    pst_msg_header_free(h);
    rc = PST_ERR_NOMEM;
    if ((v->hdr = malloc(hlen + 1)) == NULL)
        goto out;
    memcpy(v->hdr, hdr, hlen);
    v->hdr[hlen] = '\0';
    if ((rc = pst_msg_split(v->hdr, hlen, NULL, &v->h, why)) < 0)
        goto out;
    size_t total = pst_msg_count(v->h, "dkim-signature");
    size_t n = total < v->o.max_sigs ? total : v->o.max_sigs;
    v->skipped = total - n;
    rc = PST_ERR_NOMEM;
    if ((v->sigs = calloc(n + 1, sizeof(*v->sigs))) == NULL ||
        (v->verdicts = calloc(n + 1, sizeof(*v->verdicts))) == NULL ||
        (v->hashes = calloc(n + 1, sizeof(*v->hashes))) == NULL)
        goto out;
    for (size_t f = 0; f < v->h->nfields && v->nsigs < n; f++) {
        if (!pst_msg_field_is(&v->h->fields[f], "dkim-signature"))
            continue;
        struct vsig *s = &v->sigs[v->nsigs++];
        s->field = f;
        if ((rc = sig_setup(v, s, tl)) < 0)
            goto out;
    }
    *out = v;
    v = NULL;
    rc = 0;
out:
    free(tl);
    pst_dkim_verify_free(v);
    return rc;
}

void pst_dkim_verify_body(struct pst_dkim_verify *v, const char *p, size_t n)
{
    if (v == NULL || v->finished || n == 0)
        return;
    for (size_t k = 0; k < v->nhashes; k++)
        pst_dkim_bodycanon_update(&v->hashes[k].bc, p, n);
}

static void verdict(struct vsig *s, enum pst_dkim_result r, const char *fmt, const char *arg)
{
    s->out.result = r;
    snprintf(s->reason, sizeof(s->reason), fmt, arg ? arg : "");
    s->out.reason = s->reason;
}

/*
 * The key for s: from the cache or DNS. 0 with *key (borrowed from the
 * cache, or owned by the caller when *owned), or a verdict set and
 * PST_ERR_NOTFOUND.
 */
static int get_key(struct pst_dkim_verify *v, struct vsig *s, struct pst_dkim_key **key, int *owned)
{
    char name[PST_DNS_NAME_TEXT_MAX];
    int n = snprintf(name, sizeof(name), "%s._domainkey.%s", s->sig->s, s->sig->d);
    if (n < 0 || (size_t)n >= sizeof(name) || n > 253) {
        verdict(s, PST_DKIM_PERMERROR, "key name too long", NULL);
        return PST_ERR_NOTFOUND;
    }
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    struct cache_entry *e = cache_get(v->o.cache, name, v->o.now);
    if (e != NULL) {
        if (e->key == NULL) {
            verdict(s, PST_DKIM_PERMERROR, "no key record at %.100s (cached)", name);
            return PST_ERR_NOTFOUND;
        }
        *key = e->key;
        *owned = 0;
        return 0;
    }
    struct pst_dns_answer *a = NULL;
    int rc = pst_dns_query(v->o.resolver, v->o.budget, name, PST_DNS_TXT, &a);
    if (rc == PST_ERR_TOOBIG) {
        verdict(s, PST_DKIM_PERMERROR, "DNS query budget used up", NULL);
        return PST_ERR_NOTFOUND;
    }
    if (rc < 0) {
        verdict(s, rc == PST_ERR_NOMEM ? PST_DKIM_TEMPERROR : PST_DKIM_PERMERROR, "key lookup: %s",
                pst_strerror(rc));
        return PST_ERR_NOTFOUND;
    }
    rc = PST_ERR_NOTFOUND;
    char what[120];
    switch (a->status) {
    case PST_DNS_RETRY: /* RFC 6376 6.1.2: TEMPFAIL (key unavailable) */
        snprintf(what, sizeof(what), "key lookup for %.40s: %.60s", name,
                 a->reason ? a->reason : "temporary DNS failure");
        verdict(s, PST_DKIM_TEMPERROR, "%s", what);
        goto out;
    case PST_DNS_FAIL:
        snprintf(what, sizeof(what), "key lookup for %.40s: %.60s", name,
                 a->reason ? a->reason : "DNS failure");
        verdict(s, PST_DKIM_PERMERROR, "%s", what);
        goto out;
    case PST_DNS_NOTFOUND: /* RFC 6376 6.1.2: PERMFAIL (no key for signature) */
        if (v->o.cache != NULL)
            cache_put(v->o.cache, name, v->o.now, a->ttl, NULL);
        verdict(s, PST_DKIM_PERMERROR, "no key record at %.100s", name);
        goto out;
    case PST_DNS_OK:
        break;
    }
    const char *why = "no TXT record";
    struct pst_dkim_key *k = NULL;
    for (size_t r = 0; r < a->nrrs && k == NULL; r++) {
        const char *w = NULL;
        int prc = pst_dkim_key_parse((const char *)a->rrs[r].data, a->rrs[r].len, &k, &w);
        if (prc == PST_ERR_NOMEM) {
            verdict(s, PST_DKIM_TEMPERROR, "out of memory", NULL);
            goto out;
        }
        if (prc < 0 && r == 0)
            why = w ? w : pst_strerror(prc);
    }
    if (k == NULL) {
        verdict(s, PST_DKIM_PERMERROR, "bad key record: %s", why);
        goto out;
    }
    if (v->o.cache != NULL && cache_put(v->o.cache, name, v->o.now, a->ttl, k) == 0) {
        *owned = 0;
    } else {
        *owned = 1;
    }
    *key = k;
    rc = 0;
out:
    pst_dns_answer_free(a);
    return rc;
}

/* RFC 6376 6.1.2 and RFC 8301: may this key verify this signature? */
static int key_acceptable(struct pst_dkim_verify *v, struct vsig *s, const struct pst_dkim_key *k)
{
    const struct pst_dkim_sig *g = s->sig;
    if (k->revoked) {
        verdict(s, PST_DKIM_PERMERROR, "key revoked", NULL);
        return 0;
    }
    if ((k->type == PST_DKIM_KEY_ED25519) != (g->alg == PST_DKIM_ED25519_SHA256)) {
        verdict(s, PST_DKIM_PERMERROR, "key type does not match a=", NULL);
        return 0;
    }
    if (!(k->hashes & PST_DKIM_HASH_SHA256)) {
        verdict(s, PST_DKIM_PERMERROR, "sha256 not allowed by the key's h=", NULL);
        return 0;
    }
    if (!(k->services & v->o.services)) {
        verdict(s, PST_DKIM_PERMERROR, "key not for this service (s=)", NULL);
        return 0;
    }
    if (k->strict) {
        const char *dom = strrchr(g->i, '@') + 1;
        if (!dkim_ieq(dom, strlen(dom), g->d)) {
            verdict(s, PST_DKIM_PERMERROR, "key has t=s but i= is a subdomain of d=", NULL);
            return 0;
        }
    }
    if (k->type == PST_DKIM_KEY_RSA && k->bits < PST_DKIM_MIN_RSA_BITS) {
        char bits[16];
        snprintf(bits, sizeof(bits), "%u", k->bits);
        verdict(s, PST_DKIM_PERMERROR, "RSA key too small (%s bits; RFC 8301)", bits);
        return 0;
    }
    return 1;
}

/* The signature field with the value of b= emptied (RFC 6376 3.7). */
static int sig_without_b(const struct pst_msg_field *f, struct pst_buf *out)
{
    struct pst_dkim_taglist *tl = malloc(sizeof(*tl));
    if (tl == NULL)
        return PST_ERR_NOMEM;
    int rc = pst_dkim_taglist_parse(f->value, f->value_len, tl, NULL);
    const struct pst_dkim_tag *b = rc == 0 ? pst_dkim_tag_get(tl, "b") : NULL;
    if (b == NULL) {
        free(tl);
        return PST_ERR_SYNTAX;
    }
    size_t off = (size_t)(f->value - f->raw);
    rc = pst_buf_add(out, f->raw, off + b->vstart);
    if (rc == 0)
        rc = pst_buf_add(out, f->raw + off + b->vend, f->raw_len - off - b->vend);
    free(tl);
    return rc;
}

static int check_one(struct pst_dkim_verify *v, struct vsig *s)
{
    const struct pst_dkim_sig *g = s->sig;
    if (g == NULL) {
        verdict(s, PST_DKIM_PERMERROR, "bad signature: %s", s->why ? s->why : "syntax");
        return 0;
    }
    if (g->alg == PST_DKIM_RSA_SHA1) {
        verdict(s, PST_DKIM_PERMERROR, "rsa-sha1 is not accepted (RFC 8301)", NULL);
        return 0;
    }
    if (g->has_x && v->o.now > g->x) {
        verdict(s, PST_DKIM_PERMERROR, "signature expired (x=)", NULL);
        return 0;
    }
    struct pst_dkim_key *k = NULL;
    int owned = 0;
    if (get_key(v, s, &k, &owned) < 0)
        return 0;
    int rc = 0;
    s->out.testing = k->testing;
    s->out.key_bits = k->bits;
    if (!key_acceptable(v, s, k))
        goto out;
    enum pst_dkim_result bad = k->testing ? PST_DKIM_NEUTRAL : PST_DKIM_FAIL;
    const struct bodyhash *bh = s->bh;
    if (bh->bad) {
        verdict(s, PST_DKIM_TEMPERROR, "hash error", NULL);
        goto out;
    }
    if (g->has_l && g->l > bh->total) {
        verdict(s, bad, "l= is longer than the body", NULL);
        goto out;
    }
    if (g->bh_len != 32 || memcmp(g->bh, bh->digest, 32) != 0) {
        verdict(s, bad, "body hash mismatch", NULL);
        goto out;
    }
    struct pst_buf *sf = pst_buf_new(PST_MSG_MAX_FIELD_LEN);
    if (sf == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    unsigned char dg[32];
    rc = sig_without_b(&v->h->fields[s->field], sf);
    if (rc == 0)
        rc =
            dkim_header_digest(g->hcanon, v->h, g->h, g->nh, pst_buf_data(sf), pst_buf_len(sf), dg);
    pst_buf_free(sf);
    if (rc == PST_ERR_NOMEM)
        goto out;
    if (rc < 0) {
        verdict(s, PST_DKIM_PERMERROR, "header hash: %s", pst_strerror(rc));
        rc = 0;
        goto out;
    }
    if (dkim_verify_digest(k->pkey, g->alg, dg, g->b, g->b_len) != 0) {
        verdict(s, bad, "signature mismatch", NULL);
        goto out;
    }
    if (g->has_l && bh->total > g->l) {
        char n[32];
        snprintf(n, sizeof(n), "%llu", (unsigned long long)(bh->total - g->l));
        verdict(s, PST_DKIM_POLICY, "l= leaves %s body octets unsigned", n);
        goto out;
    }
    verdict(s, PST_DKIM_PASS, k->testing ? "key in testing mode (t=y)" : "", NULL);
out:
    if (owned)
        pst_dkim_key_free(k);
    return rc;
}

int pst_dkim_verify_finish(struct pst_dkim_verify *v)
{
    if (v == NULL)
        return PST_ERR_INVAL;
    if (v->finished)
        return PST_ERR_STATE;
    v->finished = 1;
    for (size_t k = 0; k < v->nhashes; k++) {
        struct bodyhash *b = &v->hashes[k];
        unsigned int len = 0;
        pst_dkim_bodycanon_final(&b->bc);
        if (EVP_DigestFinal_ex(b->md, b->digest, &len) != 1 || len != 32)
            b->bad = 1;
    }
    for (size_t k = 0; k < v->nsigs; k++) {
        int rc = check_one(v, &v->sigs[k]);
        if (rc < 0)
            return rc;
        v->verdicts[k] = v->sigs[k].out;
    }
    return 0;
}

const struct pst_dkim_verdict *pst_dkim_verify_verdicts(const struct pst_dkim_verify *v, size_t *n,
                                                        size_t *skipped)
{
    static const struct pst_dkim_verdict none;
    if (n != NULL)
        *n = v && v->finished ? v->nsigs : 0;
    if (skipped != NULL)
        *skipped = v ? v->skipped : 0;
    if (v == NULL || !v->finished || v->nsigs == 0)
        return &none;
    return v->verdicts;
}
