/*
 * dkim_int.h - helpers shared by the files of lib/core/dkim; not for
 * other modules (they include dkim.h).
 */
#ifndef PST_DKIM_INT_H
#define PST_DKIM_INT_H

#include <stddef.h>

#include "dkim.h"

/* WSP (RFC 5234 B.1) */
static inline int dkim_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Length of the FWS (RFC 5322 3.2.2: WSP, or CRLF followed by WSP) at
 * p[0..n), 0 when there is none. */
size_t dkim_fws(const char *p, size_t n);

/* Copies p[0..n) without its FWS (and CR, LF) into a new string.
 * NULL when out of memory. */
char *dkim_strip_fws(const char *p, size_t n);

/*
 * Decodes base64 s (no FWS left in it; RFC 6376 2.4 base64string) into a
 * new buffer: 0 with *out and *outlen (which may be 0; *out is still freed),
 * PST_ERR_SYNTAX, PST_ERR_NOMEM. Uses OpenSSL's EVP_DecodeBlock.
 */
int dkim_b64_decode(const char *s, unsigned char **out, size_t *outlen);

/* 1 when s is a domain name of letters, digits, '-' and '_' in non-empty
 * labels (RFC 6376 3.5 d=, s=: sub-domain), at most 253 octets. */
int dkim_name_ok(const char *s);

/* 1 when a and b are equal, ASCII case-insensitive. */
int dkim_ieq(const char *a, size_t an, const char *b);

struct pst_msg_header;

/*
 * The SHA-256 digest of the header fields named in names (RFC 6376 5.4.2:
 * several instances are taken from the bottom up, a name with no instance
 * left adds nothing) canonicalized with c, followed by the DKIM-Signature
 * field sigfield[0..siglen) (its b= value already empty) without its CRLF
 * (3.7). PST_ERR_NOMEM, PST_ERR_TOOBIG, PST_ERR_CRYPTO.
 */
int dkim_header_digest(enum pst_dkim_canon c, const struct pst_msg_header *h, char *const *names,
                       size_t n, const char *sigfield, size_t siglen, unsigned char out[32]);

/* Signs or verifies a header digest: rsa-sha256 as PKCS#1 v1.5 over the
 * SHA-256 digest (RFC 6376 3.3.1), ed25519-sha256 as pure Ed25519 over the
 * 32 digest octets (RFC 8463 3). pkey is an EVP_PKEY. sign: 0 with a new
 * *sig (caller frees), PST_ERR_CRYPTO; verify: 0 when the signature
 * holds, PST_ERR_CRYPTO when it does not. */
int dkim_sign_digest(void *pkey, enum pst_dkim_alg alg, const unsigned char dg[32],
                     unsigned char **sig, size_t *siglen);
int dkim_verify_digest(void *pkey, enum pst_dkim_alg alg, const unsigned char dg[32],
                       const unsigned char *sig, size_t siglen);

#endif
