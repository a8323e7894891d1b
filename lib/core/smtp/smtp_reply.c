/*
 * smtp_reply.c - SMTP reply lines (RFC 5321 4.2, 4.2.1) with enhanced
 * status codes (RFC 2034, RFC 3463 2).
 *
 * Reply text may carry client-supplied strings (an address, a HELO name),
 * so every control octet in it becomes '?': nothing the client sends can
 * end a reply line early or add one. A line is kept within 512 octets
 * including CRLF (RFC 5321 4.5.3.1.5); longer text is cut at a UTF-8
 * character boundary. A reply is appended whole or not at all.
 */
#include "smtp.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define REPLY_MAX_LINE 512 /* RFC 5321 4.5.3.1.5, CRLF included */

/* Reply-code = %x32-35 %x30-35 %x30-39 (RFC 5321 4.2) */
static int code_ok(int code)
{
    return code >= 200 && code <= 559 && (code / 10) % 10 <= 5;
}

/* 1*3digit without a leading zero (RFC 3463 2) */
static const char *subcode(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return NULL;
    return s + n;
}

/* status-code = class "." subject "." detail (RFC 3463 2), and a class
 * that agrees with the reply code: a 4yz reply with 5.x.x would tell the
 * client two different things. */
static int enh_ok(const char *enh, int code)
{
    if (enh[0] != (char)('0' + code / 100) || (enh[0] != '2' && enh[0] != '4' && enh[0] != '5'))
        return 0;
    if (enh[1] != '.')
        return 0;
    const char *p = subcode(enh + 2);
    if (p == NULL || *p != '.')
        return 0;
    p = subcode(p + 1);
    return p != NULL && *p == '\0';
}

/* Replaces control octets by '?' in place. */
static void sanitize(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            s[i] = '?';
    }
}

/* Length of s[0..n) cut back so it does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n)
{
    size_t i = n, back = 0;
    while (i > 0 && back < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (need > 1 && n - (i - 1) < need)
        return i - 1;
    return n;
}

/* Writes "CODE" plus sep into p. */
static void put_code(char *p, int code, char sep)
{
    p[0] = (char)('0' + code / 100);
    p[1] = (char)('0' + code / 10 % 10);
    p[2] = (char)('0' + code % 10);
    p[3] = sep;
}

int pst_smtp_reply(struct pst_buf *out, int code, const char *enh, const char *fmt, ...)
{
    char line[REPLY_MAX_LINE + 1];
    size_t n = 0;

    if (out == NULL || fmt == NULL || !code_ok(code) || (enh != NULL && !enh_ok(enh, code)))
        return PST_ERR_INVAL;
    put_code(line, code, ' ');
    n = 4;
    if (enh != NULL) {
        size_t el = strlen(enh); /* at most 9 octets, checked above */
        memcpy(line + n, enh, el);
        n += el;
        line[n++] = ' ';
    }
    /* room for the text, keeping 2 octets for CRLF */
    size_t room = REPLY_MAX_LINE - 2 - n;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(line + n, room + 1, fmt, ap);
    va_end(ap);
    if (w < 0)
        return PST_ERR_INVAL;
    size_t tl = (size_t)w;
    if (tl > room)
        tl = utf8_cut(line + n, room);
    sanitize(line + n, tl);
    n += tl;
    if (tl == 0)
        n--; /* no text: "250 2.0.0" or "250", without a trailing SP */
    line[n++] = '\r';
    line[n++] = '\n';
    return pst_buf_add(out, line, n);
}

int pst_smtp_reply_lines(struct pst_buf *out, int code, const char *const *lines, size_t n)
{
    char line[REPLY_MAX_LINE];

    if (out == NULL || lines == NULL || n == 0 || !code_ok(code))
        return PST_ERR_INVAL;
    for (size_t i = 0; i < n; i++)
        if (lines[i] == NULL)
            return PST_ERR_INVAL;
    size_t start = pst_buf_len(out);
    for (size_t i = 0; i < n; i++) {
        /* RFC 5321 4.2.1: "CODE-" on every line but the last, "CODE " on
         * the last */
        int last = i + 1 == n;
        put_code(line, code, last ? ' ' : '-');
        size_t len = 4;
        size_t room = REPLY_MAX_LINE - 2 - len;
        size_t tl = strlen(lines[i]);
        if (tl > room)
            tl = utf8_cut(lines[i], room);
        memcpy(line + len, lines[i], tl);
        sanitize(line + len, tl);
        len += tl;
        if (tl == 0 && last)
            len--; /* Reply-code [ SP textstring ] CRLF */
        line[len++] = '\r';
        line[len++] = '\n';
        int rc = pst_buf_add(out, line, len);
        if (rc < 0) {
            pst_buf_truncate(out, start); /* all or nothing */
            return rc;
        }
    }
    return 0;
}
