/* tls.c - OpenSSL server contexts and the self-signed development pair. */
#include "tls.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static void ssl_reason(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) : "unknown error");
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file, buf);
}

int pst_tls_server_ctx(const char *cert_file, const char *key_file, SSL_CTX **out, char *err,
                       size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_reason(err, errlen, "creating TLS context", "");
        return PST_ERR_CRYPTO;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* no session tickets kept across reloads, no renegotiation */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern", 7);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_reason(err, errlen, "loading certificate", cert_file);
        SSL_CTX_free(ctx);
        return PST_ERR_CRYPTO;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_reason(err, errlen, "loading key", key_file);
        SSL_CTX_free(ctx);
        return PST_ERR_CRYPTO;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(err, errlen, "key does not match certificate", cert_file);
        SSL_CTX_free(ctx);
        return PST_ERR_CRYPTO;
    }
    *out = ctx;
    return 0;
}

/* Writes a PEM object to path atomically with the given mode. */
static int write_pem(const char *path, mode_t mode, int (*wr)(FILE *, void *), void *obj, char *err,
                     size_t errlen)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        snprintf(err, errlen, "path too long: %s", path);
        return PST_ERR_INVAL;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "creating %s: %s", tmp, strerror(errno));
        return PST_ERR_IO;
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        snprintf(err, errlen, "creating %s: %s", tmp, strerror(errno));
        return PST_ERR_IO;
    }
    int ok = wr(f, obj);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        ssl_reason(err, errlen, "writing", path);
        unlink(tmp);
        return PST_ERR_IO;
    }
    return 0;
}

static int wr_key(FILE *f, void *obj)
{
    return PEM_write_PrivateKey(f, obj, NULL, NULL, 0, NULL, NULL) == 1;
}

static int wr_cert(FILE *f, void *obj)
{
    return PEM_write_X509(f, obj) == 1;
}

int pst_tls_make_selfsigned(const char *cert_file, const char *key_file, const char *hostname,
                            int days, char *err, size_t errlen)
{
    int rc = PST_ERR_CRYPTO;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_EXTENSION *ext = NULL;
    if (key == NULL || x == NULL) {
        ssl_reason(err, errlen, "generating key for", hostname);
        goto out;
    }
    X509_set_version(x, 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        goto crypto;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
        BN_free(bn);
        goto crypto;
    }
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    char san[512];
    snprintf(san, sizeof(san), "DNS:%s", hostname);
    ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    if (ext == NULL || !X509_add_ext(x, ext, -1))
        goto crypto;
    if (X509_sign(x, key, EVP_sha256()) == 0)
        goto crypto;
    rc = write_pem(key_file, 0600, wr_key, key, err, errlen);
    if (rc == 0)
        rc = write_pem(cert_file, 0644, wr_cert, x, err, errlen);
    goto out;
crypto:
    ssl_reason(err, errlen, "making certificate for", hostname);
    rc = PST_ERR_CRYPTO;
out:
    X509_EXTENSION_free(ext);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

void pst_tls_describe(const void *vssl, char *out, size_t outlen)
{
    SSL *ssl = (SSL *)vssl;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    int alg = 0;
    int bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;
    snprintf(out, outlen, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
             c ? SSL_CIPHER_get_name(c) : "none", bits, alg);
}
