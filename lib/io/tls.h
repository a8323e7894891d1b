/*
 * tls.h - OpenSSL server contexts for postern's listeners.
 *
 * TLS 1.2 is the minimum (RFC 8996 retires 1.0 and 1.1; RFC 7525). The
 * context owns the certificate chain and key loaded from PEM files; a
 * reload makes a new context and lets sessions keep the old one until they
 * end (SSL_CTX is reference counted by OpenSSL).
 */
#ifndef PST_TLS_H
#define PST_TLS_H

#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;

/*
 * Makes a server context from a PEM certificate chain and PEM private key.
 * Returns 0 and *out, or PST_ERR_CRYPTO / PST_ERR_IO with a reason in err
 * (OpenSSL's error text, never key material).
 */
int pst_tls_server_ctx(const char *cert_file, const char *key_file, SSL_CTX **out, char *err,
                       size_t errlen);

/*
 * Writes a self-signed certificate for hostname (EC P-256 key, valid for
 * days days, subjectAltName DNS:hostname) to cert_file and the key to
 * key_file (mode 0600), creating both atomically (temporary file + rename).
 * Returns 0 or a PST_ERR_* code with the reason in err.
 */
int pst_tls_make_selfsigned(const char *cert_file, const char *key_file, const char *hostname,
                            int days, char *err, size_t errlen);

/* Writes "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" style
 * text describing the connection ssl (an SSL *) into out. */
void pst_tls_describe(const void *ssl, char *out, size_t outlen);

#endif
