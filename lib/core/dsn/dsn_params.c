/*
 * dsn_params.c - the SMTP DSN extension's parameters (RFC 3461): xtext,
 * NOTIFY, RET, ENVID and ORCPT, their parsers for the server and their
 * encoders for relaying; and the decisions of when a DSN is issued.
 *
 * RFC 3461 4 (xtext), 4.1-4.4 (the parameters), 5.2 (null sender),
 * 5.2.2-5.2.6 (which events are reported), 5.4 (sizes); RFC 3463 2
 * (status codes); RFC 6533 3 (utf-8 address type). Limits and deliberate
 * choices are in dsn.h.
 */
#include "dsn.h"
#include "dsn_int.h"
#include "err.h"

#include <string.h>
#include <strings.h>

static int fail(const char **why, const char *msg)
{
    if (why != NULL)
        *why = msg;
    return PST_ERR_SYNTAX;
}

static int hexval(char c)
{
    /* RFC 3461 4: "two upper case hexadecimal digits" */
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of the xtext in[0..len) once decoded, or -1 when malformed. */
static long xtext_len(const char *in, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++, o++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '+') {
            if (len - i < 3 || hexval(in[i + 1]) < 0 || hexval(in[i + 2]) < 0)
                return -1;
            i += 2;
        } else if (c < '!' || c > '~' || c == '=')
            return -1; /* not an xchar */
    }
    return (long)o;
}

int pst_xtext_decode(const char *in, size_t len, char *out, size_t outcap, size_t *outlen)
{
    if (in == NULL || out == NULL || outcap == 0)
        return PST_ERR_INVAL;
    long n = xtext_len(in, len);
    if (n < 0)
        return PST_ERR_SYNTAX;
    if ((size_t)n >= outcap)
        return PST_ERR_TOOBIG;
    /* checked: every "+" has two hex digits; out is written on success only */
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '+') {
            out[o++] = (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
            i += 2;
        } else
            out[o++] = in[i];
    }
    out[o] = '\0';
    if (outlen != NULL)
        *outlen = o;
    return 0;
}

int pst_xtext_encode(struct pst_buf *out, const void *in, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = in;
    size_t start = pst_buf_len(out);
    for (size_t i = 0; i < len; i++) {
        int rc;
        if (s[i] >= '!' && s[i] <= '~' && s[i] != '+' && s[i] != '=')
            rc = pst_buf_addc(out, (char)s[i]);
        else {
            char h[3] = {'+', hex[s[i] >> 4], hex[s[i] & 15]};
            rc = pst_buf_add(out, h, 3);
        }
        if (rc < 0) {
            pst_buf_truncate(out, start);
            return rc;
        }
    }
    return 0;
}

/* ---- NOTIFY, RET, ENVID, ORCPT ---- */

int pst_dsn_parse_notify(const char *v, unsigned *out, const char **why)
{
    static const struct {
        const char *name;
        unsigned flag;
    } kw[] = {
        {"NEVER", PST_DSN_NOTIFY_NEVER},
        {"SUCCESS", PST_DSN_NOTIFY_SUCCESS},
        {"FAILURE", PST_DSN_NOTIFY_FAILURE},
        {"DELAY", PST_DSN_NOTIFY_DELAY},
    };
    unsigned flags = 0;
    if (v == NULL || v[0] == '\0')
        return fail(why, "NOTIFY needs a value");
    if (strlen(v) > PST_DSN_NOTIFY_MAX)
        return fail(why, "NOTIFY value too long");
    const char *p = v;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        unsigned f = 0;
        for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
            if (strlen(kw[i].name) == n && strncasecmp(p, kw[i].name, n) == 0)
                f = kw[i].flag;
        if (f == 0)
            return fail(why, "NOTIFY takes NEVER or SUCCESS, FAILURE, DELAY");
        if (flags & f)
            return fail(why, "NOTIFY keyword repeated");
        flags |= f;
        if (e == NULL)
            break;
        p = e + 1;
    }
    /* RFC 3461 4.1 a: "the NEVER keyword MUST appear by itself" */
    if ((flags & PST_DSN_NOTIFY_NEVER) && flags != PST_DSN_NOTIFY_NEVER)
        return fail(why, "NOTIFY=NEVER must appear alone");
    *out = flags;
    return 0;
}

int pst_dsn_parse_ret(const char *v, enum pst_dsn_ret *out, const char **why)
{
    if (v == NULL)
        return fail(why, "RET needs a value");
    if (strcasecmp(v, "FULL") == 0)
        *out = PST_DSN_RET_FULL;
    else if (strcasecmp(v, "HDRS") == 0)
        *out = PST_DSN_RET_HDRS;
    else
        return fail(why, "RET takes FULL or HDRS");
    return 0;
}

/* RFC 3461 4.2 and 4.4: "printable (graphic and white space) characters
 * from the US-ASCII repertoire" */
static int printable_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c > 0x7e)
            return 0;
    }
    return 1;
}

int pst_dsn_parse_envid(const char *v, char *decoded, const char **why)
{
    char tmp[PST_DSN_ENVID_MAX + 1];
    size_t n;
    if (v == NULL || v[0] == '\0')
        return fail(why, "ENVID needs a value");
    size_t len = strlen(v);
    if (len > PST_DSN_ENVID_MAX)
        return fail(why, "ENVID too long");
    if (pst_xtext_decode(v, len, tmp, sizeof(tmp), &n) < 0)
        return fail(why, "Malformed xtext in ENVID");
    if (!printable_ascii(tmp, n))
        return fail(why, "ENVID must be printable US-ASCII");
    if (decoded != NULL)
        memcpy(decoded, tmp, n + 1);
    return 0;
}

/* atext of RFC 5322 3.2.3 ("=" cannot occur in an esmtp-value anyway) */
static int is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

int pst_dsn_parse_orcpt(const char *v, char *type, char *addr, const char **why)
{
    char tmp[PST_DSN_ORCPT_MAX + 1];
    size_t n;
    if (v == NULL || v[0] == '\0')
        return fail(why, "ORCPT needs a value");
    size_t len = strlen(v);
    if (len > PST_DSN_ORCPT_MAX)
        return fail(why, "ORCPT too long");
    const char *semi = strchr(v, ';');
    if (semi == NULL)
        return fail(why, "ORCPT needs addr-type;address");
    size_t tlen = (size_t)(semi - v);
    if (tlen == 0 || tlen > PST_DSN_ADDRTYPE_MAX)
        return fail(why, "Bad ORCPT address type");
    for (size_t i = 0; i < tlen; i++)
        if (!is_atext((unsigned char)v[i]))
            return fail(why, "Bad ORCPT address type");
    size_t xlen = len - tlen - 1;
    if (xlen == 0)
        return fail(why, "ORCPT address is empty");
    if (pst_xtext_decode(semi + 1, xlen, tmp, sizeof(tmp), &n) < 0)
        return fail(why, "Malformed xtext in ORCPT");
    if (n == 0 || !printable_ascii(tmp, n))
        return fail(why, "ORCPT address must be printable US-ASCII");
    if (type != NULL) {
        memcpy(type, v, tlen);
        type[tlen] = '\0';
    }
    if (addr != NULL)
        memcpy(addr, tmp, n + 1);
    return 0;
}

/* ---- encoders for relaying ---- */

int pst_dsn_notify_encode(struct pst_buf *out, unsigned notify)
{
    static const struct {
        unsigned flag;
        const char *name;
    } kw[] = {
        {PST_DSN_NOTIFY_SUCCESS, "SUCCESS"},
        {PST_DSN_NOTIFY_FAILURE, "FAILURE"},
        {PST_DSN_NOTIFY_DELAY, "DELAY"},
    };
    const unsigned all = PST_DSN_NOTIFY_NEVER | PST_DSN_NOTIFY_SUCCESS | PST_DSN_NOTIFY_FAILURE |
                         PST_DSN_NOTIFY_DELAY;
    if (notify == 0 || (notify & ~all) != 0 ||
        ((notify & PST_DSN_NOTIFY_NEVER) && notify != PST_DSN_NOTIFY_NEVER))
        return PST_ERR_INVAL;
    if (notify == PST_DSN_NOTIFY_NEVER)
        return pst_buf_addstr(out, "NEVER");
    char tmp[32];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++) {
        if (!(notify & kw[i].flag))
            continue;
        if (n > 0)
            tmp[n++] = ',';
        size_t k = strlen(kw[i].name);
        memcpy(tmp + n, kw[i].name, k);
        n += k;
    }
    return pst_buf_add(out, tmp, n);
}

int pst_dsn_mail_params_encode(struct pst_buf *out, enum pst_dsn_ret ret, const char *envid)
{
    size_t start = pst_buf_len(out);
    int rc = 0;
    if (ret != PST_DSN_RET_NONE && ret != PST_DSN_RET_FULL && ret != PST_DSN_RET_HDRS)
        return PST_ERR_INVAL;
    if (envid != NULL && envid[0] != '\0' && pst_dsn_parse_envid(envid, NULL, NULL) < 0)
        return PST_ERR_INVAL;
    if (ret != PST_DSN_RET_NONE)
        rc = pst_buf_addstr(out, ret == PST_DSN_RET_FULL ? " RET=FULL" : " RET=HDRS");
    if (rc == 0 && envid != NULL && envid[0] != '\0') {
        rc = pst_buf_addstr(out, " ENVID=");
        if (rc == 0)
            rc = pst_buf_addstr(out, envid);
    }
    if (rc < 0)
        pst_buf_truncate(out, start);
    return rc;
}

int pst_dsn_rcpt_params_encode(struct pst_buf *out, unsigned notify, const char *orcpt)
{
    size_t start = pst_buf_len(out);
    int rc = 0;
    if (orcpt != NULL && orcpt[0] != '\0' && pst_dsn_parse_orcpt(orcpt, NULL, NULL, NULL) < 0)
        return PST_ERR_INVAL;
    if (notify != 0) {
        rc = pst_buf_addstr(out, " NOTIFY=");
        if (rc == 0)
            rc = pst_dsn_notify_encode(out, notify);
    }
    if (rc == 0 && orcpt != NULL && orcpt[0] != '\0') {
        rc = pst_buf_addstr(out, " ORCPT=");
        if (rc == 0)
            rc = pst_buf_addstr(out, orcpt);
    }
    if (rc < 0)
        pst_buf_truncate(out, start);
    return rc;
}

/*
 * One UTF-8 character at s (n octets left): its code point and length, or
 * length 1 and U+FFFD for an invalid sequence (RFC 3629 4).
 */
size_t pst_dsn_utf8_next(const unsigned char *s, size_t n, unsigned long *cp)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need;
    unsigned long v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        v = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        v = c & 0x07;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        *cp = 0xfffd;
        return 1;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        *cp = 0xfffd;
        return 1;
    }
    for (size_t i = 1; i < need; i++) {
        if (i > 1 && (s[i] < 0x80 || s[i] > 0xbf)) {
            *cp = 0xfffd;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return need;
}

/*
 * Appends addr in the RFC 6533 3 utf-8-addr-xtext form: printable ASCII
 * but "+", "=", "\" as itself, everything else as "\x{HEX}" (upper-case
 * hex, no leading zeros beyond two digits).
 */
int pst_dsn_utf8_addr_xtext(struct pst_buf *out, const char *addr)
{
    const unsigned char *s = (const unsigned char *)addr;
    size_t n = strlen(addr);
    size_t start = pst_buf_len(out);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        unsigned long cp;
        size_t k = pst_dsn_utf8_next(s + i, n - i, &cp);
        if (cp >= 0x21 && cp <= 0x7e && cp != '+' && cp != '=' && cp != '\\')
            rc = pst_buf_addc(out, (char)cp);
        else
            rc = pst_buf_addf(out, "\\x{%02lX}", cp);
        i += k;
    }
    if (rc < 0)
        pst_buf_truncate(out, start);
    return rc;
}

int pst_dsn_orcpt_from_addr(struct pst_buf *out, const char *addr)
{
    size_t start = pst_buf_len(out);
    int rc;
    int ascii = 1;
    if (addr == NULL || addr[0] == '\0')
        return PST_ERR_INVAL;
    for (const char *p = addr; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return PST_ERR_INVAL; /* no envelope address has controls */
        if (c >= 0x80)
            ascii = 0;
    }
    if (ascii) {
        rc = pst_buf_addstr(out, "rfc822;");
        if (rc == 0)
            rc = pst_xtext_encode(out, addr, strlen(addr));
    } else {
        /* the utf-8-addr-xtext form is also valid xtext (RFC 6533 3) */
        rc = pst_buf_addstr(out, "utf-8;");
        if (rc == 0)
            rc = pst_dsn_utf8_addr_xtext(out, addr);
    }
    if (rc == 0 && pst_buf_len(out) - start > PST_DSN_ORCPT_MAX)
        rc = PST_ERR_TOOBIG;
    if (rc < 0)
        pst_buf_truncate(out, start);
    return rc;
}

/* ---- decisions ---- */

const char *pst_dsn_action_name(enum pst_dsn_action a)
{
    switch (a) {
    case PST_DSN_FAILED:
        return "failed";
    case PST_DSN_DELAYED:
        return "delayed";
    case PST_DSN_DELIVERED:
        return "delivered";
    case PST_DSN_RELAYED:
        return "relayed";
    case PST_DSN_EXPANDED:
        return "expanded";
    }
    return NULL;
}

int pst_dsn_wanted(unsigned notify, enum pst_dsn_action action, int delay_policy)
{
    if (notify & PST_DSN_NOTIFY_NEVER)
        return 0; /* RFC 3461 5.2.2 d, 5.2.4 c */
    switch (action) {
    case PST_DSN_FAILED:
        /* 5.2.6 a-c */
        return notify == 0 || (notify & PST_DSN_NOTIFY_FAILURE) != 0;
    case PST_DSN_DELAYED:
        /* 5.2.5: MAY with DELAY (asked for: sent) or without NOTIFY (the
         * policy decides), MUST NOT otherwise */
        if (notify == 0)
            return delay_policy != 0;
        return (notify & PST_DSN_NOTIFY_DELAY) != 0;
    case PST_DSN_DELIVERED:
    case PST_DSN_RELAYED:
    case PST_DSN_EXPANDED:
        /* 5.2.2 b and e, 5.2.3, 5.2.7.3 c */
        return (notify & PST_DSN_NOTIFY_SUCCESS) != 0;
    }
    return 0;
}

int pst_dsn_sender_ok(const char *sender)
{
    return sender != NULL && sender[0] != '\0';
}

/* Length of a well-formed status code at s (RFC 3463 2: class "."
 * 1*3digit "." 1*3digit, no leading zeros), 0 when there is none. */
static size_t status_len(const char *s)
{
    size_t i = 0;
    if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t d = 0;
        while (s[i + d] >= '0' && s[i + d] <= '9')
            d++;
        if (d == 0 || d > 3 || (d > 1 && s[i] == '0'))
            return 0;
        i += d;
        if (part == 0) {
            if (s[i] != '.')
                return 0;
            i++;
        }
    }
    return i;
}

int pst_dsn_status_permanent(const char *status)
{
    size_t n = status_len(status);
    if (n == 0 || status[n] != '\0')
        return -1;
    return status[0] == '5';
}

int pst_dsn_status_from_reply(int code, const char *text, char out[16])
{
    int cls = code / 100;
    if (code < 200 || code > 599 || cls == 3)
        return PST_ERR_INVAL;
    size_t n = text != NULL ? status_len(text) : 0;
    /* the code must be followed by SP or the end (RFC 2034 4) */
    if (n > 0 && n < 16 && text[0] - '0' == cls && (text[n] == ' ' || text[n] == '\0')) {
        memcpy(out, text, n);
        out[n] = '\0';
        return 0;
    }
    out[0] = (char)('0' + cls);
    memcpy(out + 1, ".0.0", 5);
    return 0;
}
