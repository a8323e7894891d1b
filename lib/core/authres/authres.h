/*
 * authres.h - the Authentication-Results header field (RFC 8601): making
 * ours, and removing incoming ones that carry our authserv-id (RFC 8601
 * 5, so that a sender cannot forge our verdict).
 *
 * Generation (RFC 8601 2.2-2.7): one resinfo per line, folded with
 * CRLF TAB:
 *   Authentication-Results: mx.example.org;
 *   	spf=pass smtp.mailfrom=user@example.com;
 *   	dkim=pass header.d=example.com header.s=sel header.i=@example.com
 *   	 header.a=rsa-sha256 header.b=abcdefgh;
 *   	dmarc=pass header.from=example.com policy.dmarc=none
 * (the dkim line is folded here only for the comment; we write it whole).
 * Values that come from the message or the SMTP session are written as a
 * pvalue (RFC 8601 2.2) bare only when every byte is a letter, digit or
 * one of ".-_+@" (with at most one '@'); otherwise as an RFC 2045
 * quoted-string with '"' and '\' escaped. Bytes outside 0x20..0x7e (CR,
 * LF, NUL, 8-bit) are written as '?', so no value can end the field or
 * start another. A value over PST_AUTHRES_MAX_VALUE bytes is left out
 * (the property is omitted rather than cut). reason= (RFC 8601 2.2
 * reasonspec) is always a quoted-string. The dmarc method's properties are
 * those of RFC 9989 9.1: header.from and policy.dmarc (the disposition,
 * after t=y).
 */
#ifndef PST_AUTHRES_H
#define PST_AUTHRES_H

#include <stddef.h>

struct pst_buf;
struct pst_dkim_verdict;
struct pst_dmarc_eval;

#define PST_AUTHRES_MAX_VALUE 320
#define PST_AUTHRES_MAX_ID    255

struct pst_authres {
    const char *authserv_id; /* required: letters, digits, '.', '-', '_' */
    /* SPF (RFC 8601 2.7.2): the RFC 7208 result word, NULL for no spf
     * resinfo; smtp.mailfrom when mailfrom is not empty (the MAIL FROM
     * address), else smtp.helo when helo is set */
    const char *spf_result;
    const char *spf_mailfrom;
    const char *spf_helo;
    const char *spf_reason; /* NULL or text for reason= */
    /* SPF for the HELO identity (RFC 7208 2.3) besides the MAIL FROM one:
     * a second spf resinfo with smtp.helo; NULL result: none */
    const char *spf_helo_result;
    const char *spf_helo_name;
    const char *spf_helo_reason;
    /* DKIM (RFC 8601 2.7.1, RFC 6008 header.b): one resinfo each */
    const struct pst_dkim_verdict *dkim;
    size_t ndkim;
    /* DMARC (RFC 9989 9.1); NULL: no dmarc resinfo */
    const struct pst_dmarc_eval *dmarc;
};

/*
 * Appends the whole field, name to final CRLF, to out. With no method at
 * all the field says "none" (RFC 8601 2.2 no-result). Returns 0, or
 * PST_ERR_INVAL (no or bad authserv-id, dkim NULL with ndkim > 0),
 * PST_ERR_TOOBIG (out's maximum; out is then cut back to where it was),
 * PST_ERR_NOMEM.
 */
int pst_authres_header(const struct pst_authres *a, struct pst_buf *out);

/*
 * Appends v[0..n) as an RFC 8601 pvalue / RFC 2045 value, as above.
 * PST_ERR_TOOBIG, PST_ERR_NOMEM.
 */
int pst_authres_value(struct pst_buf *out, const char *v, size_t n);

/*
 * 1 when the Authentication-Results field value v[0..n) carries
 * authserv_id (after CFWS, as a token or a quoted-string; compared ASCII
 * case-insensitively), else 0.
 */
int pst_authres_is_ours(const char *v, size_t n, const char *authserv_id);

/*
 * Copies text[0..len) (a message, or its header section) to out without
 * the Authentication-Results fields (any case of the name) that carry
 * authserv_id (RFC 8601 5); *removed (may be NULL) gets how many. Returns
 * 0, or the header split's errors (PST_ERR_SYNTAX, PST_ERR_BARE_EOL,
 * PST_ERR_NUL, PST_ERR_TOOBIG) with *why, PST_ERR_INVAL, PST_ERR_NOMEM.
 */
int pst_authres_strip(const char *text, size_t len, const char *authserv_id, struct pst_buf *out,
                      size_t *removed, const char **why);

#endif
