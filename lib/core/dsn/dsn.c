/*
 * dsn.c - writes delivery status notifications: an RFC 5322 message with
 * a multipart/report; report-type=delivery-status body (RFC 6522) holding
 * a human explanation, the RFC 3464 message/delivery-status fields and
 * the original message or its header section (RFC 3461 6.2).
 *
 * RFC 3461 6 (contents), RFC 3464 2.2 (per-message fields), 2.3
 * (per-recipient fields), RFC 5322 3.3 (dates) and 2.2.3 (folding),
 * RFC 2046 5.1.1 (boundaries), RFC 3834 5 (Auto-Submitted), RFC 6533 3
 * and 6.3, RFC 6532 3.7. Choices and limits are listed in dsn.h.
 *
 * Everything from outside (addresses, reply texts, host names) passes
 * through clean(): whitespace runs (CR and LF included) become one SP,
 * other controls "?", so no value can start a new field or a MIME part.
 */
#include "dsn.h"
#include "dsn_int.h"
#include "err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_SOFT  78  /* RFC 5322 2.1.1 SHOULD */
#define LINE_HARD  998 /* RFC 5322 2.1.1 MUST */
#define ADDR_MAX   512 /* addresses kept, octets (a path has 256) */
#define HOST_MAX   255
#define STATUS_MAX 16

/* ---- dates ---- */

int pst_dsn_date(struct pst_buf *out, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11 || tm.tm_year + 1900 < 1900 || tm.tm_year + 1900 > 9999)
        return PST_ERR_INVAL;
    /* RFC 5322 3.3: day-name "," day month year time zone */
    return pst_buf_addf(out, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
                        months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- cleaning and folding ---- */

/*
 * Copies s into dst (room for cap octets with the NUL, cap > 8): runs of
 * SP, HTAB, CR and LF become one SP, leading and trailing ones go, other
 * control octets and DEL become "?". Non-ASCII is kept when it is valid
 * UTF-8 and utf8 is set (*nonascii is then set), else "?". Longer text is
 * cut at a character boundary and ends in "...". Returns the length.
 */
static size_t clean(const char *s, char *dst, size_t cap, int utf8, int *nonascii)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = s != NULL ? strlen(s) : 0;
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = 1;
            i++;
            continue;
        }
        char tmp[4];
        size_t k = 1, w = 1;
        if (c < 0x20 || c == 0x7f)
            tmp[0] = '?';
        else if (c < 0x80)
            tmp[0] = (char)c;
        else {
            unsigned long cp;
            k = pst_dsn_utf8_next(p + i, n - i, &cp);
            if (utf8 && !(cp == 0xfffd && k == 1)) {
                memcpy(tmp, p + i, k);
                w = k;
                if (nonascii != NULL)
                    *nonascii = 1;
            } else
                tmp[0] = '?';
        }
        size_t need = w + (space && o > 0 ? 1 : 0);
        if (o + need + 4 > cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (space && o > 0)
            dst[o++] = ' ';
        space = 0;
        memcpy(dst + o, tmp, w);
        o += w;
        i += k;
    }
    dst[o] = '\0';
    return o;
}

/*
 * Appends first, then v (clean text: single SPs, no controls) folded so
 * lines stay near LINE_SOFT and never pass LINE_HARD, then CRLF. In a
 * header field (field set) a fold is CRLF and the SP that was in the text
 * (RFC 5322 2.2.3); in plain text it is CRLF and cont, the SP dropped. A
 * word too long for one line is split with CRLF SP (field) or CRLF cont.
 */
static int add_wrapped(struct pst_buf *b, const char *first, const char *v, const char *cont,
                       int field)
{
    size_t n = strlen(v), clen = strlen(cont);
    size_t col = strlen(first);
    int rc = pst_buf_addstr(b, first);
    size_t i = 0;
    while (rc == 0 && i < n) {
        size_t j = i;
        if (v[j] == ' ')
            j++;
        while (j < n && v[j] != ' ')
            j++;
        const char *t = v + i;
        size_t tok = j - i;
        /* never fold before a lone SP: no line may be only blanks
         * (RFC 5322 3.2.2) */
        if (i > 0 && col + tok > LINE_SOFT && (tok > 1 || t[0] != ' ')) {
            rc = pst_buf_addstr(b, "\r\n");
            if (rc == 0)
                rc = pst_buf_addstr(b, cont);
            col = clen;
            if (!field && t[0] == ' ' && tok > 1) {
                t++;
                tok--;
            }
        }
        while (rc == 0 && tok > 0) {
            size_t room = LINE_HARD - col;
            if (tok <= room) {
                rc = pst_buf_add(b, t, tok);
                col += tok;
                break;
            }
            rc = pst_buf_add(b, t, room);
            t += room;
            tok -= room;
            if (rc == 0)
                rc = pst_buf_addstr(b, "\r\n");
            if (rc == 0)
                rc = pst_buf_addstr(b, field ? " " : cont);
            col = field ? 1 : clen;
        }
        i = j;
    }
    if (rc == 0)
        rc = pst_buf_addstr(b, "\r\n");
    return rc;
}

/* A header-style field "Name: value" from clean text. */
static int add_field(struct pst_buf *b, const char *name, const char *v)
{
    char first[64];
    size_t n = strlen(name);
    if (n + 3 > sizeof(first))
        return PST_ERR_INVAL;
    memcpy(first, name, n);
    memcpy(first + n, ": ", 3);
    return add_wrapped(b, first, v, "", 1);
}

/* Appends prefix, the date of t and suffix; a t that has no date (years
 * past 9999) leaves the line out: it is optional wherever it is used. */
static int add_date_line(struct pst_buf *b, const char *prefix, time_t t, const char *suffix)
{
    struct pst_buf *d = pst_buf_new(64);
    if (d == NULL)
        return PST_ERR_NOMEM;
    int rc = pst_dsn_date(d, t);
    if (rc == 0)
        rc = pst_buf_addf(b, "%s%s%s", prefix, pst_buf_data(d), suffix);
    else if (rc == PST_ERR_INVAL)
        rc = 0;
    pst_buf_free(d);
    return rc;
}

static int add_date_field(struct pst_buf *b, const char *name, time_t t)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s: ", name);
    return add_date_line(b, prefix, t, "\r\n");
}

/* RFC 1035 2.3.1 host name: letters, digits, hyphens, dots. */
static int good_host(const char *h)
{
    size_t n = h != NULL ? strlen(h) : 0;
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-' || h[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
        if (c == '.' && h[i + 1] == '.')
            return 0;
    }
    return 1;
}

/* The envelope sender for To:: no controls, valid UTF-8, bounded. */
static int good_sender(const char *s, int *utf8)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (n == 0 || n > ADDR_MAX || strchr(s, '@') == NULL)
        return 0;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return 0;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        unsigned long cp;
        size_t k = pst_dsn_utf8_next(p + i, n - i, &cp);
        if (cp == 0xfffd && k == 1)
            return 0;
        *utf8 = 1;
        i += k;
    }
    return 1;
}

static int has_nonascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

/* ---- the returned message ---- */

/* Length of the header section with the CRLF of its last field, without
 * the empty line; the whole text when there is no empty line. */
static size_t header_len(const char *m, size_t n)
{
    if (n >= 2 && m[0] == '\r' && m[1] == '\n')
        return 0;
    if (n >= 1 && m[0] == '\n')
        return 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (m[i] != '\n')
            continue;
        if (m[i + 1] == '\n')
            return i + 1;
        if (m[i + 1] == '\r' && i + 2 < n && m[i + 2] == '\n')
            return i + 1;
    }
    return n;
}

/* Cuts a header section to at most max octets at a field boundary: after
 * an LF that is not followed by a continuation line. */
static size_t cut_fields(const char *m, size_t n, size_t max)
{
    if (n <= max)
        return n;
    for (size_t i = max; i > 0; i--)
        if (m[i - 1] == '\n' && m[i] != ' ' && m[i] != '\t')
            return i;
    return 0;
}

static int any_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

/* Appends s[0..n) with every line ending CRLF (a bare CR or LF becomes
 * CRLF, RFC 5322 2.3), NUL as "?", lines over LINE_HARD octets broken
 * with CRLF SP (RFC 5322 2.1.1; a header field stays one field), and a
 * final CRLF when missing. */
static int add_lines(struct pst_buf *b, const char *s, size_t n)
{
    size_t i = 0, col = 0;
    int rc = 0;
    while (rc == 0 && i < n) {
        size_t k = 0;
        while (i + k < n && s[i + k] != '\r' && s[i + k] != '\n' && s[i + k] != '\0' &&
               col + k < LINE_HARD)
            k++;
        if (k > 0) {
            rc = pst_buf_add(b, s + i, k);
            i += k;
            col += k;
            continue;
        }
        char c = s[i];
        if (c == '\r' || c == '\n') {
            rc = pst_buf_add(b, "\r\n", 2);
            col = 0;
            i += (c == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
        } else if (col >= LINE_HARD) {
            rc = pst_buf_add(b, "\r\n ", 3);
            col = 1;
        } else {
            rc = pst_buf_addc(b, '?'); /* NUL */
            col++;
            i++;
        }
    }
    if (rc == 0 && n > 0 && s[n - 1] != '\n' && s[n - 1] != '\r')
        rc = pst_buf_add(b, "\r\n", 2);
    return rc;
}

/* Does "--" boundary start a line anywhere in s[0..n)? */
static int boundary_in(const char *s, size_t n, const char *bd)
{
    size_t bl = strlen(bd);
    for (size_t i = 0; i + 2 + bl <= n; i++) {
        if ((i == 0 || s[i - 1] == '\n' || s[i - 1] == '\r') && s[i] == '-' && s[i + 1] == '-' &&
            memcmp(s + i + 2, bd, bl) == 0)
            return 1;
    }
    return 0;
}

/* ---- the human-readable part ---- */

struct rview {
    const struct pst_dsn_rcpt *r;
    char addr[ADDR_MAX + 8]; /* cleaned and capped, UTF-8 kept: text and Final-Recipient */
    int addr_utf8;           /* the envelope address is not ASCII */
    char status[STATUS_MAX];
    char remote[HOST_MAX + 8];
    char diag[PST_DSN_DIAG_MAX + 8];
};

static int add_text_rcpt(struct pst_buf *t, const struct rview *v)
{
    int rc;
    char line[ADDR_MAX + 256];
    const char *what = "";
    switch (v->r->action) {
    case PST_DSN_FAILED:
        what = v->status[0] == '4' ? "delivery failed; gave up after retrying"
                                   : "delivery failed permanently";
        break;
    case PST_DSN_DELAYED:
        what = "not delivered yet; still trying";
        break;
    case PST_DSN_DELIVERED:
        what = "delivered to the recipient's mailbox";
        break;
    case PST_DSN_RELAYED:
        what = "passed on to a mail system that does not report delivery";
        break;
    case PST_DSN_EXPANDED:
        what = "delivered to an alias or list that sends it on";
        break;
    }
    int n = snprintf(line, sizeof(line), "<%s>: %s (status %s).", v->addr, what, v->status);
    if (n < 0 || (size_t)n >= sizeof(line))
        return PST_ERR_TOOBIG;
    rc = add_wrapped(t, "", line, "    ", 0);
    if (rc == 0 && v->r->action == PST_DSN_DELAYED && v->r->retry_until != 0) {
        rc = add_date_line(t, "    Next attempts until ", v->r->retry_until, ".\r\n");
    }
    if (rc == 0 && v->diag[0] != '\0') {
        char first[HOST_MAX + 64];
        if (v->remote[0] != '\0')
            snprintf(first, sizeof(first), "    %s said: ", v->remote);
        else
            snprintf(first, sizeof(first), "    The reason given: ");
        rc = add_wrapped(t, first, v->diag, "    ", 0);
    }
    if (rc == 0)
        rc = pst_buf_addstr(t, "\r\n");
    return rc;
}

/* One paragraph of our own text, folded, then an empty line. */
static int add_para(struct pst_buf *t, const char *text)
{
    int rc = add_wrapped(t, "", text, "", 0);
    return rc == 0 ? pst_buf_addstr(t, "\r\n") : rc;
}

static int write_text(struct pst_buf *t, const struct pst_dsn_msg *m, const struct rview *vs,
                      size_t nv, int any[6], int full, int returned)
{
    int rc = pst_buf_addf(t, "This is the mail system at %s.\r\n\r\n", m->reporting_mta);
    if (rc == 0 && any[PST_DSN_FAILED])
        rc = add_para(t, "Your message could not be delivered to one or more recipients.");
    if (rc == 0 && any[PST_DSN_DELAYED])
        rc = add_para(t, "Your message has not been delivered yet to one or more recipients. "
                         "The mail system will keep trying; you do not need to send it again.");
    if (rc == 0 && (any[PST_DSN_DELIVERED] || any[PST_DSN_RELAYED] || any[PST_DSN_EXPANDED]))
        rc = add_para(t, "You asked to be told about successful delivery; "
                         "here is the report for one or more recipients.");
    for (size_t i = 0; rc == 0 && i < nv; i++)
        rc = add_text_rcpt(t, &vs[i]);
    if (rc == 0 && returned)
        rc = add_wrapped(t, "",
                         full ? "Your message is attached below."
                              : "The header section of your message is attached below.",
                         "", 0);
    return rc;
}

/* ---- the machine-readable part (RFC 3464 2) ---- */

/* "rfc822; addr" or, for non-ASCII, "utf-8; " in utf-8-addr-xtext form */
static int add_addr_field(struct pst_buf *s, const char *name, const char *addr)
{
    int rc;
    if (has_nonascii(addr)) {
        struct pst_buf *x = pst_buf_new(ADDR_MAX * 10 + 16);
        if (x == NULL)
            return PST_ERR_NOMEM;
        rc = pst_buf_addstr(x, "utf-8; ");
        if (rc == 0)
            rc = pst_dsn_utf8_addr_xtext(x, addr);
        if (rc == 0)
            rc = add_field(s, name, pst_buf_data(x));
        pst_buf_free(x);
        return rc;
    }
    char a[ADDR_MAX + 16];
    char v[ADDR_MAX + 32];
    clean(addr, a, sizeof(a), 0, NULL);
    snprintf(v, sizeof(v), "rfc822; %s", a);
    return add_field(s, name, v);
}

static void tabs_to_sp(char *s)
{
    for (; *s != '\0'; s++)
        if (*s == '\t')
            *s = ' ';
}

static int write_status(struct pst_buf *s, const struct pst_dsn_msg *m, const struct rview *vs,
                        size_t nv)
{
    int rc = 0;
    char envid[PST_DSN_ENVID_MAX + 1];
    /* RFC 3461 6.3 a: the ENVID, decoded from xtext; a stored value that
     * no longer parses is left out rather than copied */
    if (m->envid != NULL && m->envid[0] != '\0' &&
        pst_dsn_parse_envid(m->envid, envid, NULL) == 0) {
        /* kept as sent, case and spaces (RFC 3464 2.2.1); the parser
         * allowed only printable ASCII and HTAB */
        tabs_to_sp(envid);
        rc = add_field(s, "Original-Envelope-Id", envid);
    }
    if (rc == 0)
        rc = pst_buf_addf(s, "Reporting-MTA: dns; %s\r\n", m->reporting_mta); /* 6.3 b */
    if (rc == 0 && m->arrival != 0)
        rc = add_date_field(s, "Arrival-Date", m->arrival);
    for (size_t i = 0; rc == 0 && i < nv; i++) {
        const struct rview *v = &vs[i];
        const struct pst_dsn_rcpt *r = v->r;
        rc = pst_buf_addstr(s, "\r\n");
        /* RFC 3461 6.3 d: only when ORCPT was given */
        char type[PST_DSN_ADDRTYPE_MAX + 1], oaddr[PST_DSN_ORCPT_MAX + 1];
        if (rc == 0 && r->orcpt != NULL && r->orcpt[0] != '\0' &&
            pst_dsn_parse_orcpt(r->orcpt, type, oaddr, NULL) == 0) {
            char f[PST_DSN_ORCPT_MAX + PST_DSN_ADDRTYPE_MAX + 16];
            tabs_to_sp(oaddr);
            snprintf(f, sizeof(f), "%s; %s", type, oaddr);
            rc = add_field(s, "Original-Recipient", f);
        }
        if (rc == 0)
            rc = add_addr_field(s, "Final-Recipient", v->addr); /* 6.3 e */
        if (rc == 0)
            rc = pst_buf_addf(s, "Action: %s\r\nStatus: %s\r\n", pst_dsn_action_name(r->action),
                              v->status);
        if (rc == 0 && v->remote[0] != '\0')
            rc = pst_buf_addf(s, "Remote-MTA: dns; %s\r\n", v->remote); /* 6.3 h */
        if (rc == 0 && v->diag[0] != '\0') {
            /* 6.3 i; diagnostic-type is an atom: anything else is "smtp" */
            const char *dt =
                r->diag_type != NULL && good_host(r->diag_type) ? r->diag_type : "smtp";
            char f[PST_DSN_DIAG_MAX + HOST_MAX + 16];
            snprintf(f, sizeof(f), "%s; %s", dt, v->diag);
            rc = add_field(s, "Diagnostic-Code", f);
        }
        if (rc == 0 && r->last_attempt != 0)
            rc = add_date_field(s, "Last-Attempt-Date", r->last_attempt);
        if (rc == 0 && r->action == PST_DSN_DELAYED && r->retry_until != 0)
            rc = add_date_field(s, "Will-Retry-Until", r->retry_until);
    }
    return rc;
}

/* ---- the whole report ---- */

static const char default_status[6][6] = {"", "5.0.0", "4.0.0", "2.0.0", "2.0.0", "2.0.0"};

/* A well-formed status of a class that matches the action (RFC 3464
 * 2.3.4, RFC 3463 3.1): 2 for delivered / relayed / expanded, 4 for
 * delayed, 4 or 5 for failed (a message that timed out keeps its 4.x.x). */
static int status_fits(const char *st, enum pst_dsn_action a)
{
    if (pst_dsn_status_permanent(st) < 0 || strlen(st) >= STATUS_MAX)
        return 0;
    switch (a) {
    case PST_DSN_FAILED:
        return st[0] == '4' || st[0] == '5';
    case PST_DSN_DELAYED:
        return st[0] == '4';
    default:
        return st[0] == '2';
    }
}

static int generate(const struct pst_dsn_msg *m, struct rview *vs, size_t nv, int any[6],
                    struct pst_buf *out, struct pst_buf *text, struct pst_buf *status,
                    struct pst_dsn_info *info)
{
    int rc;
    int sender_utf8 = 0;
    char hex[2 * 16 + 1];
    char boundary[80];

    if (!good_sender(m->sender, &sender_utf8))
        return PST_ERR_INVAL;

    /* what to return (RFC 3461 6.2) */
    size_t max_ret = m->max_return != 0 ? m->max_return : PST_DSN_DEFAULT_MAX_RETURN;
    const char *orig = m->original;
    size_t olen = orig != NULL ? m->original_len : 0;
    int full = any[PST_DSN_FAILED] && m->ret != PST_DSN_RET_HDRS && olen > 0 && olen <= max_ret;
    size_t hlen = header_len(orig, olen);
    size_t rlen = full ? olen : cut_fields(orig, hlen, max_ret);
    int hdr8 = any_8bit(orig, hlen < rlen ? hlen : rlen);
    int body8 = any_8bit(orig, rlen);

    rc = write_text(text, m, vs, nv, any, full, rlen > 0);
    if (rc == 0)
        rc = write_status(status, m, vs, nv);
    if (rc < 0)
        return rc;
    int text8 = any_8bit(pst_buf_data(text), pst_buf_len(text));

    size_t sl = m->seed_len > 16 ? 16 : m->seed_len;
    for (size_t i = 0; i < sl; i++) {
        static const char hx[] = "0123456789abcdef";
        hex[2 * i] = hx[m->seed[i] >> 4];
        hex[2 * i + 1] = hx[m->seed[i] & 15];
    }
    hex[2 * sl] = '\0';
    /* RFC 2046 5.1.1: at most 70 characters; "=_" cannot occur in
     * quoted-printable or base64 text. Retry with a suffix in the unlikely
     * case the content holds the delimiter. */
    for (int k = 0;; k++) {
        if (k == 0)
            snprintf(boundary, sizeof(boundary), "=_pst_dsn_%s", hex);
        else
            snprintf(boundary, sizeof(boundary), "=_pst_dsn_%s.%d", hex, k);
        if (!boundary_in(orig, rlen, boundary))
            break;
        if (k == 99)
            return PST_ERR_INVAL;
    }

    const char *subject = any[PST_DSN_FAILED]    ? "Undelivered Mail Returned to Sender"
                          : any[PST_DSN_DELAYED] ? "Delayed Mail (still being retried)"
                                                 : "Successful Mail Delivery Report";
    struct tm tm;
    if (gmtime_r(&m->now, &tm) == NULL)
        return PST_ERR_INVAL;

    rc = pst_buf_addf(out, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n",
                      m->reporting_mta);
    if (rc == 0)
        rc = pst_buf_addf(out, "To: <%s>\r\nSubject: %s\r\nDate: ", m->sender, subject);
    if (rc == 0)
        rc = pst_dsn_date(out, m->now);
    if (rc == 0)
        rc = pst_buf_addf(out, "\r\nMessage-ID: <dsn.%04d%02d%02d%02d%02d%02d.%s@%s>\r\n",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, hex, m->reporting_mta);
    if (rc == 0)
        rc =
            pst_buf_addf(out,
                         "Auto-Submitted: auto-replied\r\n" /* RFC 3834 5 */
                         "MIME-Version: 1.0\r\n"
                         "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                         " boundary=\"%s\"\r\n"
                         "\r\n"
                         "This is a MIME-encapsulated delivery status notification.\r\n"
                         "\r\n--%s\r\n"
                         "Content-Type: text/plain; charset=%s\r\n"
                         "Content-Transfer-Encoding: %s\r\n"
                         "Content-Description: Notification\r\n\r\n",
                         boundary, boundary, text8 ? "utf-8" : "us-ascii", text8 ? "8bit" : "7bit");
    if (rc == 0)
        rc = pst_buf_add(out, pst_buf_data(text), pst_buf_len(text));
    if (rc == 0)
        rc = pst_buf_addf(out,
                          "\r\n--%s\r\n"
                          "Content-Type: message/delivery-status\r\n"
                          "Content-Description: Delivery report\r\n\r\n",
                          boundary);
    if (rc == 0)
        rc = pst_buf_add(out, pst_buf_data(status), pst_buf_len(status));
    if (rc == 0 && rlen > 0) {
        /* RFC 6532 3.7 and RFC 6533 6.3 for UTF-8 header fields */
        const char *ct = full ? (hdr8 ? "message/global" : "message/rfc822")
                              : (hdr8 ? "message/global-headers" : "text/rfc822-headers");
        rc = pst_buf_addf(out, "\r\n--%s\r\nContent-Type: %s\r\nContent-Description: %s\r\n",
                          boundary, ct, full ? "Undelivered message" : "Message headers");
        if (rc == 0 && body8)
            rc = pst_buf_addstr(out, "Content-Transfer-Encoding: 8bit\r\n");
        if (rc == 0)
            rc = pst_buf_addstr(out, "\r\n");
        if (rc == 0)
            rc = add_lines(out, orig, rlen);
    }
    if (rc == 0)
        rc = pst_buf_addf(out, "\r\n--%s--\r\n", boundary);
    if (rc < 0)
        return rc;
    if (info != NULL) {
        info->nreported = nv;
        info->kind = any[PST_DSN_FAILED]    ? PST_DSN_FAILED
                     : any[PST_DSN_DELAYED] ? PST_DSN_DELAYED
                                            : PST_DSN_DELIVERED;
        info->full_returned = full;
        info->needs_smtputf8 = sender_utf8 || hdr8;
        info->needs_8bitmime = info->needs_smtputf8 || text8 || body8;
    }
    return 0;
}

int pst_dsn_generate(const struct pst_dsn_msg *m, struct pst_buf *out, struct pst_dsn_info *info)
{
    int any[6] = {0};
    size_t nv = 0;
    if (m == NULL || out == NULL)
        return PST_ERR_INVAL;
    /* RFC 3461 5.2 NOTE: never a DSN to the null reverse-path */
    if (!pst_dsn_sender_ok(m->sender) || !good_host(m->reporting_mta))
        return PST_ERR_INVAL;
    if (m->seed == NULL || m->seed_len < PST_DSN_SEED_MIN || m->seed_len > 64)
        return PST_ERR_INVAL;
    if (m->ret != PST_DSN_RET_NONE && m->ret != PST_DSN_RET_FULL && m->ret != PST_DSN_RET_HDRS)
        return PST_ERR_INVAL;
    if (m->nrcpts > PST_DSN_MAX_RCPTS)
        return PST_ERR_TOOBIG;
    if (m->nrcpts > 0 && m->rcpts == NULL)
        return PST_ERR_INVAL;
    if (m->original == NULL && m->original_len > 0)
        return PST_ERR_INVAL;
    for (size_t i = 0; i < m->nrcpts; i++) {
        const struct pst_dsn_rcpt *r = &m->rcpts[i];
        if (pst_dsn_action_name(r->action) == NULL || r->rcpt == NULL || r->rcpt[0] == '\0')
            return PST_ERR_INVAL;
        if (pst_dsn_wanted(r->notify, r->action, m->delay_policy))
            nv++;
    }
    if (nv == 0)
        return PST_ERR_NOTFOUND;

    struct rview *vs = calloc(nv, sizeof(*vs));
    struct pst_buf *text = pst_buf_new(nv * (ADDR_MAX + PST_DSN_DIAG_MAX + 1024) + 4096);
    struct pst_buf *status =
        pst_buf_new(nv * (ADDR_MAX * 10 + PST_DSN_ORCPT_MAX + PST_DSN_DIAG_MAX + 1024) + 4096);
    size_t start = pst_buf_len(out);
    int rc = PST_ERR_NOMEM;
    if (vs == NULL || text == NULL || status == NULL)
        goto out;
    nv = 0;
    for (size_t i = 0; i < m->nrcpts; i++) {
        const struct pst_dsn_rcpt *r = &m->rcpts[i];
        if (!pst_dsn_wanted(r->notify, r->action, m->delay_policy))
            continue;
        struct rview *v = &vs[nv++];
        v->r = r;
        any[r->action] = 1;
        clean(r->rcpt, v->addr, sizeof(v->addr), 1, &v->addr_utf8);
        if (status_fits(r->status, r->action))
            memcpy(v->status, r->status, strlen(r->status) + 1);
        else
            memcpy(v->status, default_status[r->action], 6);
        clean(r->remote_mta, v->remote, sizeof(v->remote), 0, NULL);
        for (char *p = v->remote; *p != '\0'; p++)
            if (*p == ' ')
                *p = '?'; /* a host name has no spaces */
        clean(r->diag, v->diag, sizeof(v->diag), 0, NULL);
    }
    rc = generate(m, vs, nv, any, out, text, status, info);
out:
    if (rc < 0)
        pst_buf_truncate(out, start);
    pst_buf_free(text);
    pst_buf_free(status);
    free(vs);
    return rc;
}
