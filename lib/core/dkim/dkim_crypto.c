/*
 * dkim_crypto.c - the hashing and public-key operations of DKIM, all done
 * by OpenSSL 3 (EVP): the header hash of RFC 6376 3.7 and 5.4.2, RSA
 * PKCS#1 v1.5 with SHA-256 (3.3.1), Ed25519 over the SHA-256 digest
 * (RFC 8463 3).
 */
#include "dkim.h"
#include "dkim_int.h"
#include "err.h"
#include "msg.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

int dkim_header_digest(enum pst_dkim_canon c, const struct pst_msg_header *h, char *const *names,
                       size_t n, const char *sigfield, size_t siglen, unsigned char out[32])
{
    int rc = PST_ERR_NOMEM;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct pst_buf *b = pst_buf_new(PST_MSG_MAX_HEADER + 2);
    unsigned char *used = calloc(h->nfields + 1, 1);
    if (md == NULL || b == NULL || used == NULL)
        goto out;
    rc = PST_ERR_CRYPTO;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (size_t k = 0; k < n; k++) {
        /* RFC 6376 5.4.2: the last instance not yet used */
        size_t f = h->nfields;
        while (f > 0 && (used[f - 1] || !pst_msg_field_is(&h->fields[f - 1], names[k])))
            f--;
        if (f == 0)
            continue; /* 5.4: a name without instance is the null string */
        used[f - 1] = 1;
        pst_buf_reset(b);
        rc = pst_dkim_canon_header(c, h->fields[f - 1].raw, h->fields[f - 1].raw_len, 1, b);
        if (rc < 0)
            goto out;
        rc = PST_ERR_CRYPTO;
        if (EVP_DigestUpdate(md, pst_buf_data(b), pst_buf_len(b)) != 1)
            goto out;
    }
    pst_buf_reset(b);
    rc = pst_dkim_canon_header(c, sigfield, siglen, 0, b); /* 3.7: no CRLF */
    if (rc < 0)
        goto out;
    rc = PST_ERR_CRYPTO;
    unsigned int len = 0;
    if (EVP_DigestUpdate(md, pst_buf_data(b), pst_buf_len(b)) != 1 ||
        EVP_DigestFinal_ex(md, out, &len) != 1 || len != 32)
        goto out;
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    pst_buf_free(b);
    free(used);
    return rc;
}

int dkim_sign_digest(void *pkey, enum pst_dkim_alg alg, const unsigned char dg[32],
                     unsigned char **sig, size_t *siglen)
{
    EVP_PKEY *k = pkey;
    int rc = PST_ERR_CRYPTO;
    unsigned char *s = NULL;
    size_t n = 0;
    EVP_PKEY_CTX *pc = NULL;
    EVP_MD_CTX *md = NULL;
    if (alg == PST_DKIM_ED25519_SHA256) {
        md = EVP_MD_CTX_new();
        if (md == NULL || EVP_DigestSignInit(md, NULL, NULL, NULL, k) != 1 ||
            EVP_DigestSign(md, NULL, &n, dg, 32) != 1)
            goto out;
        if ((s = malloc(n)) == NULL) {
            rc = PST_ERR_NOMEM;
            goto out;
        }
        if (EVP_DigestSign(md, s, &n, dg, 32) != 1)
            goto out;
    } else if (alg == PST_DKIM_RSA_SHA256) {
        pc = EVP_PKEY_CTX_new(k, NULL);
        if (pc == NULL || EVP_PKEY_sign_init(pc) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) != 1 ||
            EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) != 1 ||
            EVP_PKEY_sign(pc, NULL, &n, dg, 32) != 1)
            goto out;
        if ((s = malloc(n)) == NULL) {
            rc = PST_ERR_NOMEM;
            goto out;
        }
        if (EVP_PKEY_sign(pc, s, &n, dg, 32) != 1)
            goto out;
    } else {
        rc = PST_ERR_UNSUPPORTED;
        goto out;
    }
    *sig = s;
    *siglen = n;
    s = NULL;
    rc = 0;
out:
    if (rc < 0)
        ERR_clear_error();
    free(s);
    EVP_PKEY_CTX_free(pc);
    EVP_MD_CTX_free(md);
    return rc;
}

int dkim_verify_digest(void *pkey, enum pst_dkim_alg alg, const unsigned char dg[32],
                       const unsigned char *sig, size_t siglen)
{
    EVP_PKEY *k = pkey;
    int ok = 0;
    if (alg == PST_DKIM_ED25519_SHA256) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        ok = md != NULL && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, siglen, dg, 32) == 1;
        EVP_MD_CTX_free(md);
    } else if (alg == PST_DKIM_RSA_SHA256) {
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k, NULL);
        ok = pc != NULL && EVP_PKEY_verify_init(pc) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
             EVP_PKEY_verify(pc, sig, siglen, dg, 32) == 1;
        EVP_PKEY_CTX_free(pc);
    }
    if (!ok)
        ERR_clear_error();
    return ok ? 0 : PST_ERR_CRYPTO;
}
