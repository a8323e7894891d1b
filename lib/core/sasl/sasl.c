/*
 * sasl.c - SMTP AUTH exchanges (RFC 4954 4) with PLAIN (RFC 4616 2) and
 * LOGIN, the replies of RFC 4954 6, strict base64 (RFC 4648 4) and the
 * MAIL FROM permission check of an authenticated user. See sasl.h for the
 * choices and for how the session uses it.
 */
#include "sasl.h"
#include "buf.h"
#include "err.h"
#include "smtp.h"

#include <openssl/evp.h>
#include <string.h>

/* RFC 4954 6 (codes) and 4 (503 for AUTH after AUTH or in a transaction,
 * 501 for a cancel); 538 5.7.11 is RFC 4954 6 as updated by RFC 5248. */
static const struct pst_sasl_reply replies[] = {
    [PST_SASL_SUCCESS] = {235, "2.7.0", "Authentication successful"},
    [PST_SASL_BAD_CREDENTIALS] = {535, "5.7.8", "Authentication credentials invalid"},
    [PST_SASL_TOO_WEAK] = {534, "5.7.9", "Authentication mechanism is too weak"},
    [PST_SASL_ENCRYPTION_REQUIRED] = {538, "5.7.11",
                                      "Encryption required for requested authentication mechanism"},
    [PST_SASL_TEMPFAIL] = {454, "4.7.0", "Temporary authentication failure"},
    [PST_SASL_RATE_LIMITED] = {454, "4.7.0",
                               "Too many failed authentication attempts, try again later"},
    [PST_SASL_BAD_BASE64] = {501, "5.5.2", "Cannot decode response"},
    [PST_SASL_CANCELLED] = {501, "5.0.0", "Authentication cancelled"},
    [PST_SASL_SYNTAX] = {501, "5.5.4", "Syntax error in AUTH parameters"},
    [PST_SASL_UNKNOWN_MECH] = {504, "5.5.4", "Unrecognized authentication type"},
    [PST_SASL_LINE_TOO_LONG] = {500, "5.5.6", "Authentication exchange line is too long"},
    [PST_SASL_ALREADY_AUTHENTICATED] = {503, "5.5.1", "Already authenticated"},
    [PST_SASL_IN_TRANSACTION] = {503, "5.5.1", "AUTH not allowed during a mail transaction"},
};

const struct pst_sasl_reply *pst_sasl_reply(enum pst_sasl_result r)
{
    if ((unsigned)r >= sizeof(replies) / sizeof(replies[0]))
        return &replies[PST_SASL_TEMPFAIL];
    return &replies[r];
}

int pst_sasl_reply_add(struct pst_buf *out, enum pst_sasl_result r)
{
    const struct pst_sasl_reply *p = pst_sasl_reply(r);
    return pst_smtp_reply(out, p->code, p->enh, "%s", p->text);
}

int pst_sasl_challenge_add(struct pst_buf *b, const struct pst_sasl_out *out)
{
    if (b == NULL || out == NULL || out->step != PST_SASL_STEP_CHALLENGE || out->challenge == NULL)
        return PST_ERR_INVAL;
    /* RFC 4954 4: "334" SP [base64] CRLF, the SP even with no data */
    return pst_buf_addf(b, "334 %s\r\n", out->challenge);
}

int pst_sasl_result_counts(enum pst_sasl_result r)
{
    return r == PST_SASL_BAD_CREDENTIALS;
}

void pst_sasl_init(struct pst_sasl *s)
{
    memset(s, 0, sizeof(*s));
}

void pst_sasl_clear(struct pst_sasl *s)
{
    explicit_bzero(s, sizeof(*s));
    s->state = PST_SASL_IDLE;
    s->mech = PST_SASL_MECH_NONE;
}

/* ---- base64 ---- */

static int b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static unsigned b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (unsigned)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (unsigned)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0' + 52);
    return c == '+' ? 62u : 63u;
}

int pst_sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outmax,
                        size_t *outlen)
{
    if (in == NULL && len > 0)
        return PST_ERR_INVAL;
    if (out == NULL || outlen == NULL)
        return PST_ERR_INVAL;
    /* RFC 4954 4: reject any character outside the alphabet and any pad
     * that is not at the end. */
    if (len % 4 != 0)
        return PST_ERR_SYNTAX;
    size_t pad = 0;
    if (len > 0 && in[len - 1] == '=')
        pad = (len > 1 && in[len - 2] == '=') ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++)
        if (!b64_char((unsigned char)in[i]))
            return PST_ERR_SYNTAX;
    /* RFC 4648 3.5: the bits the pad leaves over must be zero here */
    if (pad == 1 && (b64_val((unsigned char)in[len - 2]) & 0x3) != 0)
        return PST_ERR_SYNTAX;
    if (pad == 2 && (b64_val((unsigned char)in[len - 3]) & 0xf) != 0)
        return PST_ERR_SYNTAX;
    size_t n = len / 4 * 3 - pad;
    if (n > outmax)
        return PST_ERR_TOOBIG;
    if (len == 0) {
        *outlen = 0;
        return 0;
    }
    /* EVP_DecodeBlock writes whole groups (pad octets as zeros) and needs
     * an int length: decode into a bounded scratch area. */
    unsigned char tmp[PST_SASL_MAX_LINE / 4 * 3];
    if (len > PST_SASL_MAX_LINE)
        return PST_ERR_TOOBIG;
    int r = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
    if (r < 0 || (size_t)r != len / 4 * 3) {
        explicit_bzero(tmp, sizeof(tmp));
        return PST_ERR_SYNTAX;
    }
    memcpy(out, tmp, n);
    explicit_bzero(tmp, sizeof(tmp));
    *outlen = n;
    return 0;
}

/* ---- UTF-8 ---- */

int pst_sasl_utf8_ok(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0; /* continuation octet, overlong lead C0/C1, F5..FF */
        }
        if (len - i - 1 < need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* RFC 3629 4: shortest form only, no surrogates, <= U+10FFFF */
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* A user name: 1..MAX octets, UTF-8, no control characters. */
static int authcid_ok(const char *s, size_t len)
{
    if (len == 0 || len > PST_SASL_MAX_FIELD || !pst_sasl_utf8_ok(s, len))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* A password: 1..MAX octets, UTF-8 without NUL (RFC 4616 2: 1*SAFE). */
static int passwd_ok(const char *s, size_t len)
{
    return len > 0 && len <= PST_SASL_MAX_FIELD && pst_sasl_utf8_ok(s, len);
}

/* ---- exchange ---- */

static int fail(struct pst_sasl *s, struct pst_sasl_out *out, enum pst_sasl_result r,
                const char *reason)
{
    pst_sasl_clear(s);
    out->step = PST_SASL_STEP_FAIL;
    out->challenge = NULL;
    out->result = r;
    out->reason = reason;
    return 0;
}

static int challenge(struct pst_sasl *s, struct pst_sasl_out *out, enum pst_sasl_state st,
                     const char *text)
{
    s->state = st;
    out->step = PST_SASL_STEP_CHALLENGE;
    out->challenge = text;
    out->result = PST_SASL_SUCCESS;
    out->reason = NULL;
    return 0;
}

static int verify(struct pst_sasl *s, struct pst_sasl_out *out)
{
    s->state = PST_SASL_VERIFY;
    out->step = PST_SASL_STEP_VERIFY;
    out->challenge = NULL;
    out->result = PST_SASL_SUCCESS;
    out->reason = NULL;
    return 0;
}

/*
 * Decodes one response (initial or continuation) into buf. Returns 0, or
 * fills *out with the failure and returns 1. "*" is the cancel (RFC 4954 4)
 * and "=" the empty response (only as initial response, RFC 4954 4).
 */
static int decode_response(struct pst_sasl *s, const char *line, size_t len, int initial,
                           unsigned char *buf, size_t bufmax, size_t *n, struct pst_sasl_out *out)
{
    if (len > PST_SASL_MAX_LINE) {
        fail(s, out, PST_SASL_LINE_TOO_LONG, "response line too long");
        return 1;
    }
    if (!initial && len == 1 && line[0] == '*') {
        fail(s, out, PST_SASL_CANCELLED, "cancelled by the client");
        return 1;
    }
    if (initial && len == 1 && line[0] == '=') {
        *n = 0;
        return 0;
    }
    int rc = pst_sasl_b64_decode(line, len, buf, bufmax, n);
    if (rc == PST_ERR_TOOBIG) {
        fail(s, out, PST_SASL_BAD_CREDENTIALS, "response too long for its mechanism");
        return 1;
    }
    if (rc != 0) {
        fail(s, out, PST_SASL_BAD_BASE64, "response is not valid base64");
        return 1;
    }
    return 0;
}

/* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
static int plain_message(struct pst_sasl *s, const unsigned char *m, size_t n,
                         struct pst_sasl_out *out)
{
    const unsigned char *nul1 = memchr(m, 0, n);
    if (nul1 == NULL)
        return fail(s, out, PST_SASL_BAD_CREDENTIALS, "PLAIN message without NUL separators");
    size_t zlen = (size_t)(nul1 - m);
    const unsigned char *c = nul1 + 1;
    size_t rest = n - zlen - 1;
    const unsigned char *nul2 = memchr(c, 0, rest);
    if (nul2 == NULL)
        return fail(s, out, PST_SASL_BAD_CREDENTIALS, "PLAIN message with one NUL separator");
    size_t clen = (size_t)(nul2 - c);
    const unsigned char *p = nul2 + 1;
    size_t plen = rest - clen - 1;
    if (memchr(p, 0, plen) != NULL)
        return fail(s, out, PST_SASL_BAD_CREDENTIALS, "PLAIN message with a NUL in the password");
    if (zlen > PST_SASL_MAX_FIELD || clen > PST_SASL_MAX_FIELD || plen > PST_SASL_MAX_FIELD)
        return fail(s, out, PST_SASL_BAD_CREDENTIALS, "PLAIN field too long");
    if (!authcid_ok((const char *)c, clen))
        return fail(s, out, PST_SASL_BAD_CREDENTIALS, "PLAIN authcid empty or not valid text");
    if (!passwd_ok((const char *)p, plen))
        return fail(s, out, PST_SASL_BAD_CREDENTIALS, "PLAIN password empty or not UTF-8");
    /* No proxy authorization: an authzid must name the authcid itself. */
    if (zlen != 0 && (zlen != clen || memcmp(m, c, clen) != 0))
        return fail(s, out, PST_SASL_BAD_CREDENTIALS, "PLAIN authzid differs from authcid");
    memcpy(s->authcid, c, clen);
    s->authcid[clen] = '\0';
    s->authcid_len = clen;
    memcpy(s->passwd, p, plen);
    s->passwd[plen] = '\0';
    s->passwd_len = plen;
    return verify(s, out);
}

static int plain_response(struct pst_sasl *s, const char *line, size_t len, int initial,
                          struct pst_sasl_out *out)
{
    unsigned char m[3 * PST_SASL_MAX_FIELD + 2];
    size_t n = 0;
    if (decode_response(s, line, len, initial, m, sizeof(m), &n, out) != 0)
        return 0;
    int rc = plain_message(s, m, n, out);
    explicit_bzero(m, sizeof(m));
    return rc;
}

/* LOGIN: one field per response, the user name then the password. */
static int login_response(struct pst_sasl *s, const char *line, size_t len, int initial,
                          struct pst_sasl_out *out)
{
    unsigned char m[PST_SASL_MAX_FIELD];
    size_t n = 0;
    if (decode_response(s, line, len, initial, m, sizeof(m), &n, out) != 0)
        return 0;
    int rc;
    if (s->state == PST_SASL_WAIT_PASS) {
        if (!passwd_ok((const char *)m, n)) {
            rc = fail(s, out, PST_SASL_BAD_CREDENTIALS, "LOGIN password empty or not UTF-8");
        } else {
            memcpy(s->passwd, m, n);
            s->passwd[n] = '\0';
            s->passwd_len = n;
            rc = verify(s, out);
        }
    } else if (!authcid_ok((const char *)m, n)) {
        rc = fail(s, out, PST_SASL_BAD_CREDENTIALS, "LOGIN user name empty or not valid text");
    } else {
        memcpy(s->authcid, m, n);
        s->authcid[n] = '\0';
        s->authcid_len = n;
        rc = challenge(s, out, PST_SASL_WAIT_PASS, "UGFzc3dvcmQ6"); /* "Password:" */
    }
    explicit_bzero(m, sizeof(m));
    return rc;
}

static int mech_char(unsigned char c)
{
    /* RFC 4954 8: mech-char = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE;
     * lower case accepted (see sasl.h) */
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static int word_is(const char *w, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = w[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c != name[i])
            return 0;
    }
    return 1;
}

int pst_sasl_start(struct pst_sasl *s, const char *arg, size_t len, int tls,
                   struct pst_sasl_out *out)
{
    if (s == NULL || out == NULL || (arg == NULL && len > 0))
        return PST_ERR_INVAL;
    if (s->state != PST_SASL_IDLE)
        return PST_ERR_STATE;
    pst_sasl_clear(s);
    if (len > 21 + PST_SASL_MAX_LINE)
        return fail(s, out, PST_SASL_LINE_TOO_LONG, "AUTH line too long");
    size_t m = 0;
    while (m < len && arg[m] != ' ')
        m++;
    if (m == 0)
        return fail(s, out, PST_SASL_SYNTAX, "no mechanism");
    for (size_t i = 0; i < m; i++)
        if (!mech_char((unsigned char)arg[i]))
            return fail(s, out, PST_SASL_SYNTAX, "mechanism name with a bad character");
    if (m > 20) /* RFC 4954 8: sasl-mech = 1*20mech-char */
        return fail(s, out, PST_SASL_SYNTAX, "mechanism name too long");
    const char *ir = NULL;
    size_t irlen = 0;
    if (m < len) {
        ir = arg + m + 1;
        irlen = len - m - 1;
        /* exactly one SP and one token: AUTH mechanism [SP initial-response] */
        if (irlen == 0 || memchr(ir, ' ', irlen) != NULL)
            return fail(s, out, PST_SASL_SYNTAX, "bad initial response");
    }
    enum pst_sasl_mech mech;
    if (word_is(arg, m, "PLAIN"))
        mech = PST_SASL_MECH_PLAIN;
    else if (word_is(arg, m, "LOGIN"))
        mech = PST_SASL_MECH_LOGIN;
    else
        return fail(s, out, PST_SASL_UNKNOWN_MECH, "unknown mechanism");
    /* Both send the password in the clear: only inside TLS. */
    if (!tls)
        return fail(s, out, PST_SASL_ENCRYPTION_REQUIRED, "password mechanism without TLS");
    s->mech = mech;
    if (mech == PST_SASL_MECH_PLAIN) {
        if (ir == NULL) /* RFC 4954 4: an empty challenge is "334 " */
            return challenge(s, out, PST_SASL_WAIT_PLAIN, "");
        s->state = PST_SASL_WAIT_PLAIN;
        return plain_response(s, ir, irlen, 1, out);
    }
    if (ir == NULL)
        return challenge(s, out, PST_SASL_WAIT_USER, "VXNlcm5hbWU6"); /* "Username:" */
    s->state = PST_SASL_WAIT_USER;
    return login_response(s, ir, irlen, 1, out);
}

int pst_sasl_continue(struct pst_sasl *s, const char *line, size_t len, struct pst_sasl_out *out)
{
    if (s == NULL || out == NULL || (line == NULL && len <= PST_SASL_MAX_LINE))
        return PST_ERR_INVAL;
    switch (s->state) {
    case PST_SASL_WAIT_PLAIN:
        return plain_response(s, line, len, 0, out);
    case PST_SASL_WAIT_USER:
    case PST_SASL_WAIT_PASS:
        return login_response(s, line, len, 0, out);
    default:
        return PST_ERR_STATE;
    }
}

/* ---- MAIL FROM permission ---- */

static int ascii_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

/* Does one entry ("local@domain" or "@domain") cover local@domain? */
static int entry_covers(const char *e, const char *local, const char *domain)
{
    const char *at = strrchr(e, '@');
    if (at == NULL || at[1] == '\0')
        return 0;
    if (!ascii_ieq(at + 1, strlen(at + 1), domain, strlen(domain)))
        return 0;
    if (at == e) /* "@domain": any local part */
        return 1;
    return ascii_ieq(e, (size_t)(at - e), local, strlen(local));
}

int pst_sasl_may_send(const char *login, const char *const *addrs, size_t naddrs, const char *local,
                      const char *domain)
{
    if (local == NULL || domain == NULL || (addrs == NULL && naddrs > 0))
        return 0;
    /* RFC 5321 4.5.5 / RFC 3834 3.3: the null reverse-path claims no
     * address; users' clients send auto-replies with it. */
    if (local[0] == '\0' && domain[0] == '\0')
        return 1;
    if (local[0] == '\0' || domain[0] == '\0')
        return 0;
    if (login != NULL && login[0] != '@' && strchr(login, '@') != NULL &&
        entry_covers(login, local, domain))
        return 1;
    for (size_t i = 0; i < naddrs; i++)
        if (addrs[i] != NULL && entry_covers(addrs[i], local, domain))
            return 1;
    return 0;
}
