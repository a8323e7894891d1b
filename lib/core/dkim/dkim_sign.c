/*
 * dkim_sign.c - DKIM signing (RFC 6376 5; rsa-sha256 3.3.1, ed25519-sha256
 * RFC 8463 3; both at once when the signer holds both keys, as RFC 8463
 * recommends).
 *
 * What postern signs: the header fields of the list (default below) that
 * the message has, each instance once, plus one more entry for From, To,
 * Subject and Date ("oversigning": RFC 6376 8.15, the extra entry hashes
 * the null string, so an instance added later breaks the signature).
 * t= is always set; x= when asked; l= never (RFC 6376 8.2). The body hash
 * streams: the body is never held. Messages without exactly one From are
 * refused (RFC 6376 5.4, RFC 5322 3.6).
 *
 * Output: one DKIM-Signature field per key, folded at about 76 columns
 * with CRLF TAB, b= last so its value can be appended after hashing.
 */
#include "dkim.h"
#include "dkim_int.h"
#include "err.h"
#include "msg.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

const char *const pst_dkim_default_headers[] = {
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "sender",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    NULL,
};
const char *const pst_dkim_oversign_headers[] = {"from", "to", "subject", "date", NULL};

struct signer_key {
    EVP_PKEY *pkey;
    enum pst_dkim_alg alg;
    char *selector;
};

struct pst_dkim_signer {
    char *domain, *identity;
    enum pst_dkim_canon hcanon, bcanon;
    char **headers;
    size_t nheaders;
    int no_oversign;
    int64_t expire;
    struct signer_key keys[PST_DKIM_MAX_KEYS];
    size_t nkeys;
};

struct pst_dkim_signing {
    const struct pst_dkim_signer *s;
    char *hdr;
    struct pst_msg_header *h;
    int64_t now;
    EVP_MD_CTX *md;
    struct pst_dkim_bodycanon bc;
    int md_bad;
};

void pst_dkim_signer_free(struct pst_dkim_signer *s)
{
    if (s == NULL)
        return;
    free(s->domain);
    free(s->identity);
    for (size_t k = 0; k < s->nheaders; k++)
        free(s->headers[k]);
    free(s->headers);
    for (size_t k = 0; k < s->nkeys; k++) {
        EVP_PKEY_free(s->keys[k].pkey);
        free(s->keys[k].selector);
    }
    free(s);
}

static char *lowdup(const char *p)
{
    size_t n = strlen(p);
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    for (size_t k = 0; k <= n; k++)
        s[k] = (char)(p[k] >= 'A' && p[k] <= 'Z' ? p[k] - 'A' + 'a' : p[k]);
    return s;
}

static int in_list(const char *const *list, const char *name)
{
    for (; *list != NULL; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

int pst_dkim_signer_new(const struct pst_dkim_signer_opts *opts, struct pst_dkim_signer **out)
{
    if (opts == NULL || opts->domain == NULL || !dkim_name_ok(opts->domain) || out == NULL)
        return PST_ERR_INVAL;
    const char *const *hl = opts->headers ? opts->headers : pst_dkim_default_headers;
    size_t n = 0;
    int from = 0;
    for (; hl[n] != NULL; n++) {
        const char *p = hl[n];
        if (*p == '\0')
            return PST_ERR_INVAL;
        for (; *p; p++)
            if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == ':')
                return PST_ERR_INVAL; /* RFC 5322 3.6.8 ftext */
        from |= dkim_ieq(hl[n], strlen(hl[n]), "from");
    }
    if (!from || n > PST_DKIM_MAX_H / 2)
        return PST_ERR_INVAL; /* RFC 6376 5.4: From MUST be signed */
    if (opts->identity != NULL) {
        const char *at = strrchr(opts->identity, '@');
        size_t dn, n2 = strlen(opts->domain);
        if (at == NULL || !dkim_name_ok(at + 1))
            return PST_ERR_INVAL;
        dn = strlen(at + 1);
        if (!dkim_ieq(at + 1, dn, opts->domain) &&
            !(dn > n2 + 1 && at[dn - n2] == '.' && dkim_ieq(at + 1 + dn - n2, n2, opts->domain)))
            return PST_ERR_INVAL; /* RFC 6376 3.5 i=: d= or below */
        for (const char *p = opts->identity; *p; p++)
            if ((unsigned char)*p <= 32 || *p == ';' || (unsigned char)*p == 127)
                return PST_ERR_INVAL;
    }
    int rc = PST_ERR_NOMEM;
    struct pst_dkim_signer *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto out;
    s->hcanon = opts->hcanon;
    s->bcanon = opts->bcanon;
    s->no_oversign = opts->no_oversign;
    s->expire = opts->expire;
    if ((s->domain = lowdup(opts->domain)) == NULL)
        goto out;
    if (opts->identity != NULL && (s->identity = strdup(opts->identity)) == NULL)
        goto out;
    if ((s->headers = calloc(n, sizeof(*s->headers))) == NULL)
        goto out;
    for (size_t k = 0; k < n; k++) {
        if ((s->headers[k] = lowdup(hl[k])) == NULL)
            goto out;
        s->nheaders++;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    pst_dkim_signer_free(s);
    return rc;
}

int pst_dkim_signer_add_key(struct pst_dkim_signer *s, const char *selector, const char *pem,
                            size_t pem_len)
{
    if (s == NULL || selector == NULL || !dkim_name_ok(selector) || pem == NULL ||
        pem_len > INT32_MAX)
        return PST_ERR_INVAL;
    if (s->nkeys == PST_DKIM_MAX_KEYS)
        return PST_ERR_TOOBIG;
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (bio == NULL)
        return PST_ERR_NOMEM;
    /* a NULL callback would prompt on the terminal for an encrypted key */
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    BIO_free(bio);
    ERR_clear_error();
    if (k == NULL)
        return PST_ERR_CRYPTO;
    int rc = PST_ERR_UNSUPPORTED;
    enum pst_dkim_alg alg;
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519)
        alg = PST_DKIM_ED25519_SHA256;
    else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) >= 1024 &&
             EVP_PKEY_get_bits(k) <= PST_DKIM_MAX_RSA_BITS)
        alg = PST_DKIM_RSA_SHA256; /* RFC 8301 3.2: at least 1024 bits */
    else
        goto out;
    char *sel = lowdup(selector);
    if (sel == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    s->keys[s->nkeys].pkey = k;
    s->keys[s->nkeys].alg = alg;
    s->keys[s->nkeys].selector = sel;
    s->nkeys++;
    k = NULL;
    rc = 0;
out:
    EVP_PKEY_free(k);
    return rc;
}

void pst_dkim_signing_free(struct pst_dkim_signing *g)
{
    if (g == NULL)
        return;
    free(g->hdr);
    pst_msg_header_free(g->h);
    EVP_MD_CTX_free(g->md);
    free(g);
}

static void body_sink(void *arg, const char *p, size_t n)
{
    struct pst_dkim_signing *g = arg;
    if (EVP_DigestUpdate(g->md, p, n) != 1)
        g->md_bad = 1;
}

int pst_dkim_sign_start(const struct pst_dkim_signer *s, const char *hdr, size_t len, int64_t now,
                        struct pst_dkim_signing **out)
{
    if (s == NULL || hdr == NULL || out == NULL || now < 0)
        return PST_ERR_INVAL;
    if (s->nkeys == 0)
        return PST_ERR_STATE;
    int rc = PST_ERR_NOMEM;
    struct pst_dkim_signing *g = calloc(1, sizeof(*g));
    if (g == NULL)
        goto out;
    g->s = s;
    g->now = now;
    struct pst_msg_header *h;
    rc = pst_msg_split(hdr, len, NULL, &h, NULL);
    if (rc < 0)
        goto out;
    size_t hlen = h->body_off;
    pst_msg_header_free(h);
    rc = PST_ERR_NOMEM;
    if ((g->hdr = malloc(hlen + 1)) == NULL)
        goto out;
    memcpy(g->hdr, hdr, hlen);
    g->hdr[hlen] = '\0';
    if ((rc = pst_msg_split(g->hdr, hlen, NULL, &g->h, NULL)) < 0)
        goto out;
    size_t froms = pst_msg_count(g->h, "from");
    if (froms != 1) {
        rc = froms == 0 ? PST_ERR_NOTFOUND : PST_ERR_SYNTAX;
        goto out;
    }
    rc = PST_ERR_CRYPTO;
    if ((g->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(g->md, EVP_sha256(), NULL) != 1)
        goto out;
    pst_dkim_bodycanon_init(&g->bc, s->bcanon, body_sink, g);
    *out = g;
    g = NULL;
    rc = 0;
out:
    pst_dkim_signing_free(g);
    return rc;
}

void pst_dkim_sign_body(struct pst_dkim_signing *g, const char *p, size_t n)
{
    if (g != NULL && n > 0)
        pst_dkim_bodycanon_update(&g->bc, p, n);
}

/* Appends base64 of p[0..n) (OpenSSL's EVP_EncodeBlock). */
static int add_b64(struct pst_buf *b, const unsigned char *p, size_t n, int fold, size_t col)
{
    size_t m = 4 * ((n + 2) / 3);
    char *t = malloc(m + 1);
    if (t == NULL)
        return PST_ERR_NOMEM;
    EVP_EncodeBlock((unsigned char *)t, p, (int)n);
    int rc = 0;
    for (size_t k = 0; k < m && rc == 0;) {
        size_t room = col < 76 ? 76 - col : 0;
        if (fold && room < 8) {
            rc = pst_buf_add(b, "\r\n\t", 3);
            col = 1;
            continue;
        }
        size_t take = fold ? (m - k < room ? m - k : room) : m - k;
        rc = pst_buf_add(b, t + k, take);
        k += take;
        col += take;
    }
    free(t);
    return rc;
}

/* The h= names: each instance of each listed name, and one more of the
 * oversigned ones. */
static int h_names(const struct pst_dkim_signing *g, char ***out, size_t *n)
{
    const struct pst_dkim_signer *s = g->s;
    size_t cap = 0;
    for (size_t k = 0; k < s->nheaders; k++)
        cap += pst_msg_count(g->h, s->headers[k]) + 1;
    char **names = calloc(cap + 1, sizeof(*names));
    if (names == NULL)
        return PST_ERR_NOMEM;
    size_t m = 0;
    for (size_t k = 0; k < s->nheaders; k++) {
        size_t c = pst_msg_count(g->h, s->headers[k]);
        if (!s->no_oversign && in_list(pst_dkim_oversign_headers, s->headers[k]))
            c++;
        for (size_t j = 0; j < c; j++)
            names[m++] = s->headers[k];
    }
    *out = names;
    *n = m;
    return 0;
}

static const char *canon_name(enum pst_dkim_canon c)
{
    return c == PST_DKIM_RELAXED ? "relaxed" : "simple";
}

/* One DKIM-Signature field for key k, appended to out. */
static int sign_one(const struct pst_dkim_signing *g, const struct signer_key *k,
                    const unsigned char bh[32], char **names, size_t nn, struct pst_buf *out)
{
    const struct pst_dkim_signer *s = g->s;
    size_t start = pst_buf_len(out);
    struct pst_buf *f = pst_buf_new(PST_DKIM_MAX_TAGLIST);
    unsigned char dg[32], *sig = NULL;
    size_t siglen = 0;
    int rc = PST_ERR_NOMEM;
    if (f == NULL)
        goto out;
    rc = pst_buf_addf(f, "DKIM-Signature: v=1; a=%s; c=%s/%s; d=%s;\r\n\ts=%s; t=%lld;",
                      pst_dkim_alg_name(k->alg), canon_name(s->hcanon), canon_name(s->bcanon),
                      s->domain, k->selector, (long long)g->now);
    if (rc == 0 && s->expire > 0)
        rc = pst_buf_addf(f, " x=%lld;", (long long)(g->now + s->expire));
    if (rc == 0 && s->identity != NULL)
        rc = pst_buf_addf(f, "\r\n\ti=%s;", s->identity);
    if (rc == 0)
        rc = pst_buf_addstr(f, "\r\n\th=");
    size_t col = 3;
    for (size_t j = 0; j < nn && rc == 0; j++) {
        size_t w = strlen(names[j]) + 1;
        if (j > 0 && col + w > 76) {
            rc = pst_buf_addstr(f, "\r\n\t"); /* FWS after ':' (3.5 h=) */
            col = 1;
        }
        if (rc == 0)
            rc = pst_buf_addf(f, "%s%s", names[j], j + 1 < nn ? ":" : ";");
        col += w;
    }
    if (rc == 0)
        rc = pst_buf_addstr(f, "\r\n\tbh=");
    if (rc == 0)
        rc = add_b64(f, bh, 32, 0, 0);
    if (rc == 0)
        rc = pst_buf_addstr(f, ";\r\n\tb=");
    if (rc < 0)
        goto out;
    /* 3.7: the field as it will be sent, b= empty, is hashed last */
    rc = dkim_header_digest(s->hcanon, g->h, names, nn, pst_buf_data(f), pst_buf_len(f), dg);
    if (rc < 0)
        goto out;
    if ((rc = dkim_sign_digest(k->pkey, k->alg, dg, &sig, &siglen)) < 0)
        goto out;
    if ((rc = add_b64(f, sig, siglen, 1, 3)) < 0 || (rc = pst_buf_add(f, "\r\n", 2)) < 0)
        goto out;
    rc = pst_buf_add(out, pst_buf_data(f), pst_buf_len(f));
out:
    if (rc < 0)
        pst_buf_truncate(out, start);
    free(sig);
    pst_buf_free(f);
    return rc;
}

int pst_dkim_sign_finish(struct pst_dkim_signing *g, struct pst_buf *out)
{
    if (g == NULL || out == NULL)
        return PST_ERR_INVAL;
    pst_dkim_bodycanon_final(&g->bc);
    unsigned char bh[32];
    unsigned int bhl = 0;
    if (g->md_bad || EVP_DigestFinal_ex(g->md, bh, &bhl) != 1 || bhl != 32)
        return PST_ERR_CRYPTO;
    char **names = NULL;
    size_t nn = 0;
    int rc = h_names(g, &names, &nn);
    if (rc < 0)
        return rc;
    size_t start = pst_buf_len(out);
    for (size_t k = 0; k < g->s->nkeys && rc == 0; k++)
        rc = sign_one(g, &g->s->keys[k], bh, names, nn, out);
    if (rc < 0)
        pst_buf_truncate(out, start);
    free(names);
    return rc;
}
