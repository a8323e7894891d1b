/*
 * smtp_data.c - the DATA / BDAT byte-stream state machine.
 *
 * RFC 5321 4.1.1.4 (the end of data is <CRLF>.<CRLF> only), 4.5.2
 * (transparency: a line that begins with "." loses that "."), 2.3.8
 * (lines end in CRLF only; bare CR and bare LF are not line ends);
 * RFC 3030 2 (BDAT chunks carry the message without dot handling).
 *
 * Only a real CRLF starts a line: a bare CR or bare LF never ends the data
 * and never makes the next "." a line-leading dot, so "\n.\n", "\r.\r",
 * "\n.\r\n", "\r\n.\n" and "\r\n.\r" are message content, counted in
 * bare_eol (the SMTP smuggling family, CVE-2023-51764 and kin). The state
 * before the first byte is "just after a CRLF": the CRLF that ended the
 * DATA command, so a first line "." ends an empty message.
 *
 * Speed: plain bytes and CRLF pairs are found 16 (SSE2) or 8 (word) bytes at
 * a time and appended in one call per feed in the common case. Output is
 * appended only in whole units (a CRLF is never split) so that a full out
 * buffer leaves the state exactly at *consumed.
 */
#include "smtp.h"
#include "err.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum {
    ST_BOL = 0, /* at the beginning of a line (after a CRLF) */
    ST_MID,     /* inside a line */
    ST_CR,      /* a CR was consumed, not yet written: CRLF or bare? */
    ST_DOT,     /* a line-leading "." was consumed (and dropped) */
    ST_DOT_CR,  /* "." then CR at the beginning of a line */
    ST_DONE,
};

static int is_special(unsigned char c)
{
    return c == '\r' || c == '\n' || c == '\0';
}

/* First CR, LF or NUL in [p, end), or end. */
static const unsigned char *scan_special(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i zero = _mm_setzero_si128();
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const void *)p);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)),
                                 _mm_cmpeq_epi8(v, zero));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* a word at a time: the lowest flagged byte of haszero() is exact */
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (end - p >= 8) {
        uint64_t v, a, b;
        memcpy(&v, p, 8);
        a = v ^ (ones * '\r');
        b = v ^ (ones * '\n');
        uint64_t m = ((a - ones) & ~a) | ((b - ones) & ~b) | ((v - ones) & ~v);
        m &= highs;
        if (m != 0)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && !is_special(*p))
        p++;
    return p;
}

void pst_smtp_data_init(struct pst_smtp_data *d, enum pst_smtp_data_mode mode, int flags)
{
    memset(d, 0, sizeof(*d));
    d->mode = mode;
    d->flags = flags;
    d->st = mode == PST_SMTP_DATA_DOT ? ST_BOL : ST_MID;
}

static int emit(struct pst_smtp_data *d, struct pst_buf *out, const char *s, size_t n)
{
    int rc = pst_buf_add(out, s, n);
    if (rc == 0)
        d->out_bytes += n;
    return rc;
}

/* A bare CR or LF: CRLF when normalizing, else itself (RFC 5321 2.3.8). */
static int emit_bare(struct pst_smtp_data *d, struct pst_buf *out, char c)
{
    int rc = (d->flags & PST_SMTP_DATA_NORMALIZE) ? emit(d, out, "\r\n", 2) : emit(d, out, &c, 1);
    if (rc == 0)
        d->bare_eol++;
    return rc;
}

int pst_smtp_data_feed(struct pst_smtp_data *d, const char *in, size_t len, size_t *consumed,
                       struct pst_buf *out)
{
    const int dot = d->mode == PST_SMTP_DATA_DOT;
    int rc = 0;

    *consumed = 0;
    if (d->st == ST_DONE)
        return PST_ERR_STATE;
    if (pst_buf_max(out) < 2)
        return PST_ERR_INVAL; /* could never take a CRLF */
    if (len == 0)
        return 0; /* in may be NULL */
    const unsigned char *p = (const unsigned char *)in;
    const unsigned char *end = p + len;

    while (p < end) {
        switch (d->st) {
        case ST_BOL:
            if (*p == '.') {
                /* RFC 5321 4.5.2: the first "." of a line is dropped;
                 * ".CRLF" is the end of data (4.1.1.4) */
                p++;
                d->st = ST_DOT;
                break;
            }
            d->st = ST_MID;
            /* FALLTHROUGH */
        case ST_MID: {
            /* The longest run of plain bytes and CRLF pairs, stopping
             * after a CRLF that is followed by "." (DOT mode) or by the
             * end of the input: those need the state machine. */
            const unsigned char *q = p;
            int bol = 0;
            for (;;) {
                const unsigned char *r = scan_special(q, end);
                if (r + 1 >= end || r[0] != '\r' || r[1] != '\n') {
                    q = r;
                    break;
                }
                q = r + 2;
                if (dot && (q == end || *q == '.')) {
                    bol = 1;
                    break;
                }
            }
            if (q > p) {
                size_t n = (size_t)(q - p);
                size_t room = pst_buf_max(out) - pst_buf_len(out);
                if (n > room) {
                    /* take what fits, but never half a CRLF: inside a
                     * run every CR is followed by its LF */
                    n = room;
                    if (n > 0 && p[n - 1] == '\r')
                        n--;
                    rc = emit(d, out, (const char *)p, n);
                    if (rc < 0)
                        goto out;
                    d->st = (dot && n > 0 && p[n - 1] == '\n') ? ST_BOL : ST_MID;
                    p += n;
                    rc = PST_ERR_TOOBIG;
                    goto out;
                }
                rc = emit(d, out, (const char *)p, n);
                if (rc < 0)
                    goto out;
                p = q;
            }
            if (bol) {
                d->st = ST_BOL;
                break;
            }
            if (p == end)
                break;
            if (*p == '\0') {
                rc = emit(d, out, "", 1);
                if (rc < 0)
                    goto out;
                d->nul++;
                p++;
            } else if (*p == '\r') {
                p++; /* CRLF or bare CR: the next byte tells */
                d->st = ST_CR;
            } else {
                rc = emit_bare(d, out, '\n'); /* LF without CR */
                if (rc < 0)
                    goto out;
                p++;
            }
            break;
        }
        case ST_CR:
            if (*p == '\n') {
                rc = emit(d, out, "\r\n", 2);
                if (rc < 0)
                    goto out;
                p++;
                d->st = dot ? ST_BOL : ST_MID;
            } else {
                /* bare CR; the byte after it is inside the line */
                rc = emit_bare(d, out, '\r');
                if (rc < 0)
                    goto out;
                d->st = ST_MID;
            }
            break;
        case ST_DOT:
            if (*p == '\r') {
                p++;
                d->st = ST_DOT_CR;
            } else {
                d->st = ST_MID; /* the dot was stuffing */
            }
            break;
        case ST_DOT_CR:
            if (*p == '\n') {
                p++;
                d->st = ST_DONE;
                d->done = 1;
                rc = 1;
                goto out;
            }
            /* "." then a bare CR: not the end (2.3.8), the dot was
             * stuffing and the CR is content */
            rc = emit_bare(d, out, '\r');
            if (rc < 0)
                goto out;
            d->st = ST_MID;
            break;
        default:
            return PST_ERR_STATE;
        }
    }
out:
    *consumed = (size_t)(p - (const unsigned char *)in);
    return rc;
}

int pst_smtp_data_finish(struct pst_smtp_data *d, struct pst_buf *out)
{
    if (d->mode != PST_SMTP_DATA_RAW || d->st == ST_DONE)
        return 0;
    if (d->st == ST_CR) {
        /* a CR at the very end of the last chunk has no LF to come */
        int rc = emit_bare(d, out, '\r');
        if (rc < 0)
            return rc;
    }
    d->st = ST_DONE;
    d->done = 1;
    return 0;
}
