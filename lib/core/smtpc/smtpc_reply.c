/*
 * smtpc_reply.c - what an SMTP client reads and writes besides commands:
 * replies (RFC 5321 4.2, 4.2.1; enhanced codes RFC 2034, RFC 3463 2), EHLO
 * keywords (RFC 5321 4.1.1.1) and the dot-stuffed DATA stream (RFC 5321
 * 4.5.2, 4.1.1.4).
 *
 * Replies are hostile input: a line is bounded by PST_SMTPC_LINE_MAX, a
 * reply by PST_SMTPC_REPLY_LINES and PST_SMTPC_REPLY_BYTES, so a server
 * that never ends a multi-line reply meets a defined error, not unbounded
 * memory. Leniency: a line may end in LF without CR (see smtpc.h).
 */
#include "smtpc.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pst_smtpc_rparser {
    char line[PST_SMTPC_LINE_MAX];
    size_t linelen;
    int code;     /* of the first line, 0 before it */
    size_t lines; /* complete lines of this reply */
    size_t bytes; /* octets of this reply */
    struct pst_buf *text;
    int failed;
};

void pst_smtpc_reply_clear(struct pst_smtpc_reply *r)
{
    if (r == NULL)
        return;
    free(r->text);
    memset(r, 0, sizeof(*r));
}

struct pst_smtpc_rparser *pst_smtpc_rparser_new(void)
{
    struct pst_smtpc_rparser *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->text = pst_buf_new(PST_SMTPC_REPLY_BYTES);
    if (p->text == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void pst_smtpc_rparser_free(struct pst_smtpc_rparser *p)
{
    if (p == NULL)
        return;
    pst_buf_free(p->text);
    free(p);
}

void pst_smtpc_rparser_reset(struct pst_smtpc_rparser *p)
{
    p->linelen = 0;
    p->code = 0;
    p->lines = 0;
    p->bytes = 0;
    p->failed = 0;
    pst_buf_reset(p->text);
}

/* Writes "prefix: 'quoted'" with non-printable octets as \xHH. */
static void why_quote(char *why, size_t whylen, const char *prefix, const char *s, size_t n)
{
    if (why == NULL || whylen == 0)
        return;
    if (whylen > PST_SMTPC_WHY_MAX)
        whylen = PST_SMTPC_WHY_MAX;
    int w = snprintf(why, whylen, "%s", prefix);
    size_t j = w < 0 ? 0 : (size_t)w;
    if (s == NULL || j + 4 >= whylen)
        return;
    const size_t show = 64;
    why[j++] = ':';
    why[j++] = ' ';
    why[j++] = '\'';
    for (size_t i = 0; i < n && i < show && j + 6 < whylen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            why[j++] = (char)c;
        } else {
            snprintf(why + j, 5, "\\x%02x", c);
            j += 4;
        }
    }
    if (n > show && j + 4 < whylen) {
        memcpy(why + j, "...", 3);
        j += 3;
    }
    if (j + 1 < whylen)
        why[j++] = '\'';
    why[j] = '\0';
}

static int fail(struct pst_smtpc_rparser *p, int rc, char *why, size_t whylen, const char *prefix,
                const char *s, size_t n)
{
    p->failed = rc;
    why_quote(why, whylen, prefix, s, n);
    return rc;
}

/* Reply-code = %x32-35 %x30-35 %x30-39 (RFC 5321 4.2) */
static int line_code(const char *s, size_t n)
{
    if (n < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' || s[2] < '0' || s[2] > '9')
        return 0;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* 1*3digit (RFC 3463 2); returns the digits' count, 0 when none or > 3. */
static size_t enh_num(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i >= 1 && i <= 3 ? i : 0;
}

/* Length of a status-code (class.subject.detail) at the start of s whose
 * class matches code and that is followed by SP or the end; 0 when none. */
static size_t enh_len(const char *s, size_t n, int code)
{
    if (n < 5 || s[0] != (char)('0' + code / 100) || s[1] != '.')
        return 0;
    size_t i = 2, k = enh_num(s + i, n - i);
    if (k == 0 || i + k >= n || s[i + k] != '.')
        return 0;
    i += k + 1;
    k = enh_num(s + i, n - i);
    if (k == 0)
        return 0;
    i += k;
    if (i < n && s[i] != ' ')
        return 0;
    return i;
}

/* One complete line (without its line end). Returns 1 when it was the
 * last line of the reply, 0 when more follow, <0 on error. */
static int take_line(struct pst_smtpc_rparser *p, const char *s, size_t n, char *why, size_t whylen)
{
    int code = line_code(s, n);
    if (code == 0)
        return fail(p, PST_ERR_SYNTAX, why, whylen, "malformed reply line", s, n);
    if (n > 3 && s[3] != ' ' && s[3] != '-')
        return fail(p, PST_ERR_SYNTAX, why, whylen, "malformed reply line", s, n);
    if (p->code != 0 && code != p->code)
        return fail(p, PST_ERR_SYNTAX, why, whylen, "reply code changed within a reply", s, n);
    if (memchr(s, '\0', n) != NULL)
        return fail(p, PST_ERR_SYNTAX, why, whylen, "NUL in reply line", s, n);
    if (p->lines + 1 > PST_SMTPC_REPLY_LINES)
        return fail(p, PST_ERR_TOOBIG, why, whylen, "reply has too many lines", s, n);
    p->code = code;
    p->lines++;
    const char *t = n > 4 ? s + 4 : s + n;
    size_t tn = n > 4 ? n - 4 : 0;
    int rc = 0;
    if (p->lines > 1)
        rc = pst_buf_addc(p->text, '\n');
    size_t start = pst_buf_len(p->text);
    if (rc == 0)
        rc = pst_buf_add(p->text, t, tn);
    if (rc == PST_ERR_TOOBIG)
        return fail(p, rc, why, whylen, "reply too long", s, n);
    if (rc != 0)
        return fail(p, rc, why, whylen, "out of memory", NULL, 0);
    /* control octets in text become '?' (the separators stay '\n') */
    char *d = (char *)pst_buf_data(p->text) + start;
    for (size_t i = 0; i < tn; i++)
        if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f)
            d[i] = '?';
    return n == 3 || s[3] == ' ';
}

static int finish(struct pst_smtpc_rparser *p, struct pst_smtpc_reply *out, char *why,
                  size_t whylen)
{
    struct pst_smtpc_reply r = {0};
    r.code = p->code;
    r.nlines = p->lines;
    const char *t = pst_buf_data(p->text);
    size_t first = strcspn(t, "\n");
    size_t e = enh_len(t, first, r.code);
    if (e > 0 && e < sizeof(r.enh)) {
        memcpy(r.enh, t, e);
        r.enh[e] = '\0';
    }
    r.text = pst_buf_steal(p->text);
    if (r.text == NULL)
        return fail(p, PST_ERR_NOMEM, why, whylen, "out of memory", NULL, 0);
    p->code = 0;
    p->lines = 0;
    p->bytes = 0;
    *out = r;
    return 1;
}

int pst_smtpc_rparser_feed(struct pst_smtpc_rparser *p, const char *in, size_t len, size_t *used,
                           struct pst_smtpc_reply *out, char *why, size_t whylen)
{
    if (p->failed) {
        why_quote(why, whylen, "reply parser stopped after an error", NULL, 0);
        return p->failed;
    }
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(in + i, '\n', len - i);
        size_t take = nl != NULL ? (size_t)(nl - (in + i)) + 1 : len - i;
        if (p->bytes + take > PST_SMTPC_REPLY_BYTES)
            return fail(p, PST_ERR_TOOBIG, why, whylen, "reply longer than 65536 octets", NULL, 0);
        if (p->linelen + take > PST_SMTPC_LINE_MAX) {
            size_t show = p->linelen > 0 ? p->linelen : take;
            return fail(p, PST_ERR_TOOBIG, why, whylen, "reply line longer than 4096 octets",
                        p->linelen > 0 ? p->line : in + i, show);
        }
        memcpy(p->line + p->linelen, in + i, take);
        p->linelen += take;
        p->bytes += take;
        i += take;
        if (nl == NULL)
            break;
        size_t n = p->linelen - 1; /* without LF */
        if (n > 0 && p->line[n - 1] == '\r')
            n--;
        int rc = take_line(p, p->line, n, why, whylen);
        p->linelen = 0;
        if (rc < 0)
            return rc;
        if (rc == 1) {
            rc = finish(p, out, why, whylen);
            if (rc < 0)
                return rc;
            *used = i;
            return 1;
        }
    }
    *used = len;
    return 0;
}

int pst_smtpc_reply_parse(const char *in, size_t len, size_t *used, struct pst_smtpc_reply *out,
                          char *why, size_t whylen)
{
    struct pst_smtpc_rparser *p = pst_smtpc_rparser_new();
    if (p == NULL) {
        why_quote(why, whylen, "out of memory", NULL, 0);
        return PST_ERR_NOMEM;
    }
    size_t u = 0;
    int rc = pst_smtpc_rparser_feed(p, in, len, &u, out, why, whylen);
    pst_smtpc_rparser_free(p);
    if (rc == 0) {
        why_quote(why, whylen, "incomplete reply", NULL, 0);
        return PST_ERR_AGAIN;
    }
    if (rc == 1)
        *used = u;
    return rc;
}

size_t pst_smtpc_reply_oneline(const struct pst_smtpc_reply *r, char *out, size_t outlen)
{
    if (outlen == 0)
        return 0;
    int w = snprintf(out, outlen, "%d", r->code);
    size_t j = w < 0 ? 0 : (size_t)w;
    if (j >= outlen)
        return outlen - 1;
    const char *t = r->text != NULL ? r->text : "";
    size_t elen = strlen(r->enh);
    int first = 1;
    for (;;) {
        size_t n = strcspn(t, "\n");
        const char *s = t;
        /* "550-5.1.1 a\r\n550 5.1.1 b": say 5.1.1 once */
        if (!first && elen > 0 && n >= elen && memcmp(s, r->enh, elen) == 0 &&
            (n == elen || s[elen] == ' ')) {
            s += elen;
            n -= elen;
            while (n > 0 && *s == ' ') {
                s++;
                n--;
            }
        }
        if (n > 0 && j + 1 < outlen) {
            out[j++] = ' ';
            size_t k = n < outlen - 1 - j ? n : outlen - 1 - j;
            memcpy(out + j, s, k);
            j += k;
        }
        first = 0;
        if (t[strcspn(t, "\n")] == '\0')
            break;
        t += strcspn(t, "\n") + 1;
    }
    out[j] = '\0';
    return j;
}

/* ---- EHLO ------------------------------------------------------------- */

static int word_is(const char *s, size_t n, const char *kw)
{
    return strlen(kw) == n && strncasecmp(s, kw, n) == 0;
}

static void ehlo_params_auth(const char *s, size_t n, struct pst_smtpc_ext *ext)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        size_t k = i;
        while (k < n && s[k] != ' ')
            k++;
        if (k > i) {
            if (word_is(s + i, k - i, "PLAIN"))
                ext->auth |= PST_SMTPC_AUTH_PLAIN;
            else if (word_is(s + i, k - i, "LOGIN"))
                ext->auth |= PST_SMTPC_AUTH_LOGIN;
            else
                ext->auth |= PST_SMTPC_AUTH_OTHER;
        }
        i = k;
    }
}

static void ehlo_line(const char *s, size_t n, struct pst_smtpc_ext *ext)
{
    size_t k = 0;
    while (k < n && s[k] != ' ' && s[k] != '=')
        k++;
    const char *p = s + k;
    size_t pn = n - k;
    if (pn > 0)
        p++, pn--;
    if (word_is(s, k, "PIPELINING")) {
        ext->flags |= PST_SMTPC_EXT_PIPELINING;
    } else if (word_is(s, k, "SIZE")) {
        ext->flags |= PST_SMTPC_EXT_SIZE;
        /* RFC 1870 4: "SIZE" [SP number]; 0 or absent: no fixed limit */
        uint64_t v = 0;
        size_t i = 0;
        while (i < pn && p[i] >= '0' && p[i] <= '9') {
            unsigned d = (unsigned)(p[i] - '0');
            v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
            i++;
        }
        ext->size_max = (i > 0 && (i == pn || p[i] == ' ')) ? v : 0;
    } else if (word_is(s, k, "8BITMIME")) {
        ext->flags |= PST_SMTPC_EXT_8BITMIME;
    } else if (word_is(s, k, "SMTPUTF8")) {
        ext->flags |= PST_SMTPC_EXT_SMTPUTF8;
    } else if (word_is(s, k, "STARTTLS")) {
        ext->flags |= PST_SMTPC_EXT_STARTTLS;
    } else if (word_is(s, k, "DSN")) {
        ext->flags |= PST_SMTPC_EXT_DSN;
    } else if (word_is(s, k, "AUTH")) {
        ext->flags |= PST_SMTPC_EXT_AUTH;
        ehlo_params_auth(p, pn, ext);
    } else if (word_is(s, k, "ENHANCEDSTATUSCODES")) {
        ext->flags |= PST_SMTPC_EXT_ENHANCED;
    } else if (word_is(s, k, "CHUNKING")) {
        ext->flags |= PST_SMTPC_EXT_CHUNKING;
    }
}

void pst_smtpc_ehlo_parse(const struct pst_smtpc_reply *r, struct pst_smtpc_ext *ext)
{
    memset(ext, 0, sizeof(*ext));
    const char *t = r->text != NULL ? r->text : "";
    const char *nl = strchr(t, '\n');
    while (nl != NULL) {
        t = nl + 1;
        nl = strchr(t, '\n');
        size_t n = nl != NULL ? (size_t)(nl - t) : strlen(t);
        while (n > 0 && t[n - 1] == ' ')
            n--;
        ehlo_line(t, n, ext);
    }
}

/* ---- dot-stuffing ------------------------------------------------------ */

void pst_smtpc_dot_init(struct pst_smtpc_dot *d)
{
    d->bol = 1;
    d->cr = 0;
    d->out_bytes = 0;
}

int pst_smtpc_data_encode(struct pst_smtpc_dot *d, const char *in, size_t len, struct pst_buf *out)
{
    size_t room = pst_buf_max(out) - pst_buf_len(out);
    if (room < 2 || len > (room - 2) / 2)
        return PST_ERR_TOOBIG;
    size_t before = pst_buf_len(out);
    int rc = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        char c = in[i];
        if (d->cr) {
            /* a CR ends a line whether or not LF follows: a bare CR goes
             * out as CRLF */
            d->cr = 0;
            d->bol = 1;
            rc = pst_buf_add(out, "\r\n", 2);
            if (c == '\n')
                i++;
            continue;
        }
        if (c == '\r') {
            d->cr = 1;
            i++;
            continue;
        }
        if (c == '\n') {
            /* bare LF: written as CRLF */
            d->bol = 1;
            rc = pst_buf_add(out, "\r\n", 2);
            i++;
            continue;
        }
        if (d->bol && c == '.') /* RFC 5321 4.5.2 */
            rc = pst_buf_addc(out, '.');
        if (rc != 0)
            break;
        /* the rest of the line up to the next CR or LF in one go */
        size_t k = i;
        while (k < len && in[k] != '\r' && in[k] != '\n')
            k++;
        rc = pst_buf_add(out, in + i, k - i);
        d->bol = 0;
        i = k;
    }
    if (rc != 0) {
        pst_buf_truncate(out, before);
        return rc;
    }
    d->out_bytes += pst_buf_len(out) - before;
    return 0;
}

int pst_smtpc_data_end(struct pst_smtpc_dot *d, struct pst_buf *out)
{
    char tail[5];
    size_t n = 0;
    if (d->cr || !d->bol) {
        tail[n++] = '\r';
        tail[n++] = '\n';
    }
    memcpy(tail + n, ".\r\n", 3);
    n += 3;
    int rc = pst_buf_add(out, tail, n);
    if (rc != 0)
        return rc;
    d->cr = 0;
    d->bol = 1;
    d->out_bytes += n;
    return 0;
}
