/*
 * dkim_key.c - DKIM key records (RFC 6376 3.6.1), the TXT record at
 * selector._domainkey.domain.
 *
 *   v=  "DKIM1", and then the first tag (3.6.1)
 *   k=  rsa (default) or ed25519 (RFC 8463 4.2); others: unsupported
 *   p=  base64: for rsa an RSA SubjectPublicKeyInfo (3.6.1) or a bare
 *       PKCS#1 RSAPublicKey (published by some tools; accepted as a named
 *       leniency), for ed25519 the 32 raw octets; empty = revoked
 *   h=  acceptable hashes (colon list; unknown ones ignored)
 *   s=  service types: email, tlsrpt (RFC 8460 3), * (default)
 *   t=  flags: y (testing), s (no subdomains in i=); unknown ignored
 *   n=  notes, ignored
 * Unknown tags are ignored. Limits: those of the tag list, and RSA keys of
 * at most PST_DKIM_MAX_RSA_BITS (a bigger modulus costs unbounded time).
 */
#include "dkim.h"
#include "dkim_int.h"
#include "err.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

void pst_dkim_key_free(struct pst_dkim_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

/* Calls fn for each element of a colon-separated list (FWS dropped). */
static int each_item(const struct pst_dkim_tag *t, unsigned *acc,
                     unsigned (*fn)(const char *s, size_t n))
{
    char *s = dkim_strip_fws(t->value, t->value_len);
    if (s == NULL)
        return PST_ERR_NOMEM;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        *acc |= fn(p, n);
        if (e == NULL)
            break;
        p = e + 1;
    }
    free(s);
    return 0;
}

static unsigned hash_bit(const char *s, size_t n)
{
    if (dkim_ieq(s, n, "sha256"))
        return PST_DKIM_HASH_SHA256;
    if (dkim_ieq(s, n, "sha1"))
        return PST_DKIM_HASH_SHA1;
    return 0;
}

static unsigned svc_bit(const char *s, size_t n)
{
    if (n == 1 && s[0] == '*')
        return PST_DKIM_SVC_ANY;
    if (dkim_ieq(s, n, "email"))
        return PST_DKIM_SVC_EMAIL;
    if (dkim_ieq(s, n, "tlsrpt"))
        return PST_DKIM_SVC_TLSRPT;
    return 0;
}

static unsigned flag_bit(const char *s, size_t n)
{
    if (n == 1 && (s[0] == 'y' || s[0] == 'Y'))
        return 1;
    if (n == 1 && (s[0] == 's' || s[0] == 'S'))
        return 2;
    return 0;
}

/* An RSA key from DER: SubjectPublicKeyInfo first, then RSAPublicKey. */
static EVP_PKEY *rsa_from_der(const unsigned char *der, size_t n)
{
    const unsigned char *p = der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)n);
    if (k != NULL && p == der + n && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA)
        return k;
    EVP_PKEY_free(k);
    p = der;
    k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)n);
    if (k != NULL && p == der + n) {
        ERR_clear_error(); /* the failed first try left its errors */
        return k;
    }
    EVP_PKEY_free(k);
    ERR_clear_error();
    return NULL;
}

int pst_dkim_key_parse(const char *rec, size_t len, struct pst_dkim_key **out, const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    *why = NULL;
    struct pst_dkim_taglist *tl = malloc(sizeof(*tl));
    struct pst_dkim_key *key = calloc(1, sizeof(*key));
    unsigned char *der = NULL;
    char *p64 = NULL;
    int rc = PST_ERR_NOMEM;
    if (tl == NULL || key == NULL)
        goto out;
    if (rec == NULL) {
        rc = PST_ERR_INVAL;
        goto out;
    }
    if (memchr(rec, '\0', len) != NULL) {
        *why = "NUL in key record";
        rc = PST_ERR_SYNTAX;
        goto out;
    }
    rc = pst_dkim_taglist_parse(rec, len, tl, why);
    if (rc < 0)
        goto out;
    rc = PST_ERR_SYNTAX;
    const struct pst_dkim_tag *t = pst_dkim_tag_get(tl, "v");
    if (t != NULL) {
        if (t != &tl->tags[0] || !(t->value_len == 5 && memcmp(t->value, "DKIM1", 5) == 0)) {
            *why = t != &tl->tags[0] ? "v= is not the first tag" : "v= is not DKIM1";
            goto out;
        }
    }
    key->type = PST_DKIM_KEY_RSA;
    if ((t = pst_dkim_tag_get(tl, "k")) != NULL) {
        if (dkim_ieq(t->value, t->value_len, "ed25519"))
            key->type = PST_DKIM_KEY_ED25519;
        else if (!dkim_ieq(t->value, t->value_len, "rsa")) {
            *why = "unknown key type";
            rc = PST_ERR_UNSUPPORTED;
            goto out;
        }
    }
    key->hashes = PST_DKIM_HASH_SHA1 | PST_DKIM_HASH_SHA256;
    if ((t = pst_dkim_tag_get(tl, "h")) != NULL) {
        key->hashes = 0;
        if ((rc = each_item(t, &key->hashes, hash_bit)) < 0)
            goto out;
    }
    key->services = PST_DKIM_SVC_ANY;
    if ((t = pst_dkim_tag_get(tl, "s")) != NULL) {
        key->services = 0;
        if ((rc = each_item(t, &key->services, svc_bit)) < 0)
            goto out;
    }
    if ((t = pst_dkim_tag_get(tl, "t")) != NULL) {
        unsigned f = 0;
        if ((rc = each_item(t, &f, flag_bit)) < 0)
            goto out;
        key->testing = (f & 1) != 0;
        key->strict = (f & 2) != 0;
    }
    rc = PST_ERR_SYNTAX;
    if ((t = pst_dkim_tag_get(tl, "p")) == NULL) {
        *why = "missing p= tag";
        goto out;
    }
    p64 = dkim_strip_fws(t->value, t->value_len);
    if (p64 == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    size_t n;
    if ((rc = dkim_b64_decode(p64, &der, &n)) < 0) {
        *why = "p= is not base64";
        goto out;
    }
    if (n == 0) {
        key->revoked = 1; /* RFC 6376 3.6.1: empty p= */
    } else if (key->type == PST_DKIM_KEY_ED25519) {
        if (n != 32) {
            *why = "ed25519 key is not 32 octets";
            rc = PST_ERR_SYNTAX;
            goto out;
        }
        key->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, n);
        if (key->pkey == NULL) {
            *why = "bad ed25519 key";
            rc = PST_ERR_CRYPTO;
            goto out;
        }
        key->bits = 256;
    } else {
        if (n > 4096) {
            *why = "RSA key too large";
            rc = PST_ERR_TOOBIG;
            goto out;
        }
        key->pkey = rsa_from_der(der, n);
        if (key->pkey == NULL) {
            *why = "p= is not an RSA public key";
            rc = PST_ERR_SYNTAX;
            goto out;
        }
        int bits = EVP_PKEY_get_bits(key->pkey);
        if (bits <= 0 || bits > PST_DKIM_MAX_RSA_BITS) {
            *why = "RSA key too large";
            rc = PST_ERR_TOOBIG;
            goto out;
        }
        key->bits = (unsigned)bits;
    }
    *out = key;
    key = NULL;
    rc = 0;
out:
    free(der);
    free(p64);
    free(tl);
    pst_dkim_key_free(key);
    return rc;
}
