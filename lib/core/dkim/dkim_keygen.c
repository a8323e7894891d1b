/*
 * dkim_keygen.c - new DKIM key pairs: the private key as PKCS#8 PEM and
 * the key record to publish (RFC 6376 3.6.1; RSA as SubjectPublicKeyInfo,
 * Ed25519 as the 32 raw octets of RFC 8463 4.2). OpenSSL makes the keys.
 */
#include "dkim.h"
#include "dkim_int.h"
#include "err.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>

static int add_b64(struct pst_buf *b, const unsigned char *p, size_t n)
{
    char *t = malloc(4 * ((n + 2) / 3) + 1);
    if (t == NULL)
        return PST_ERR_NOMEM;
    int m = EVP_EncodeBlock((unsigned char *)t, p, (int)n);
    int rc = pst_buf_add(b, t, (size_t)m);
    free(t);
    return rc;
}

int pst_dkim_keygen(enum pst_dkim_keytype type, unsigned bits, struct pst_buf *pem,
                    struct pst_buf *record)
{
    if (pem == NULL || record == NULL)
        return PST_ERR_INVAL;
    if (type == PST_DKIM_KEY_RSA && (bits < PST_DKIM_MIN_RSA_BITS || bits > 4096))
        return PST_ERR_INVAL;
    EVP_PKEY *k = NULL;
    BIO *bio = NULL;
    unsigned char *der = NULL;
    size_t pem_start = pst_buf_len(pem), rec_start = pst_buf_len(record);
    int rc = PST_ERR_CRYPTO;
    if (type == PST_DKIM_KEY_RSA)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    else if (type == PST_DKIM_KEY_ED25519)
        k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else
        return PST_ERR_INVAL;
    if (k == NULL)
        goto out;
    if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
        PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    if (n <= 0)
        goto out;
    if ((rc = pst_buf_add(pem, p, (size_t)n)) < 0)
        goto out;
    if (type == PST_DKIM_KEY_RSA) {
        int len = i2d_PUBKEY(k, &der);
        rc = PST_ERR_CRYPTO;
        if (len <= 0)
            goto out;
        if ((rc = pst_buf_addstr(record, "v=DKIM1; k=rsa; p=")) < 0 ||
            (rc = add_b64(record, der, (size_t)len)) < 0)
            goto out;
    } else {
        unsigned char raw[32];
        size_t len = sizeof(raw);
        rc = PST_ERR_CRYPTO;
        if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1 || len != 32)
            goto out;
        if ((rc = pst_buf_addstr(record, "v=DKIM1; k=ed25519; p=")) < 0 ||
            (rc = add_b64(record, raw, len)) < 0)
            goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        ERR_clear_error();
        pst_buf_truncate(pem, pem_start);
        pst_buf_truncate(record, rec_start);
    }
    OPENSSL_free(der);
    BIO_free(bio);
    EVP_PKEY_free(k);
    return rc;
}
