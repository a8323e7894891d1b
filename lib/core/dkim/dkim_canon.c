/*
 * dkim_canon.c - DKIM canonicalization (RFC 6376 3.4): simple and relaxed,
 * for header fields (3.4.1, 3.4.2) and, streaming, for the body (3.4.3,
 * 3.4.4). Worked example: RFC 6376 3.4.5 (tests/unit/test_dkim_canon.c).
 *
 * The body canonicalizer holds no body text: trailing empty lines are
 * only counted (they are dropped at the end, 3.4.3) and a WSP run or a CR
 * is one flag, so a body of any size streams through in constant memory.
 * Only CRLF ends a line; a lone CR or LF is an ordinary octet.
 */
#include "dkim.h"
#include "dkim_int.h"
#include "err.h"

#include <stdint.h>
#include <string.h>

int pst_dkim_canon_header(enum pst_dkim_canon c, const char *raw, size_t len, int crlf,
                          struct pst_buf *out)
{
    size_t start = pst_buf_len(out);
    int rc = 0;
    if (c == PST_DKIM_SIMPLE) {
        rc = pst_buf_add(out, raw, len); /* 3.4.1: unchanged */
        goto done;
    }
    const char *colon = memchr(raw, ':', len);
    if (colon == NULL)
        return PST_ERR_SYNTAX;
    size_t nl = (size_t)(colon - raw);
    while (nl > 0 && dkim_wsp(raw[nl - 1]))
        nl--; /* 3.4.2: no WSP before the colon */
    char tmp[256];
    size_t k = 0;
    for (size_t j = 0; j < nl && rc == 0; j++) {
        char ch = raw[j];
        tmp[k++] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch); /* 3.4.2: lower case */
        if (k == sizeof(tmp)) {
            rc = pst_buf_add(out, tmp, k);
            k = 0;
        }
    }
    if (rc == 0)
        tmp[k++] = ':'; /* k < sizeof(tmp): the loop flushed a full tmp */
    int wsp = 0, seen = 0;
    for (const char *p = colon + 1; p < raw + len && rc == 0; p++) {
        char ch = *p;
        if (ch == '\r' || ch == '\n')
            continue; /* 3.4.2: unfold */
        if (dkim_wsp(ch)) {
            wsp = 1; /* 3.4.2: WSP runs to one SP; none after the colon */
            continue;
        }
        if (k + 2 > sizeof(tmp)) {
            rc = pst_buf_add(out, tmp, k);
            k = 0;
        }
        if (wsp && seen)
            tmp[k++] = ' ';
        wsp = 0;
        seen = 1;
        tmp[k++] = ch;
    }
    /* 3.4.2: WSP at the end of the value is dropped (wsp left unused) */
    if (rc == 0)
        rc = pst_buf_add(out, tmp, k);
done:
    if (rc == 0 && crlf)
        rc = pst_buf_add(out, "\r\n", 2);
    if (rc < 0)
        pst_buf_truncate(out, start);
    return rc;
}

void pst_dkim_bodycanon_init(struct pst_dkim_bodycanon *bc, enum pst_dkim_canon c,
                             pst_dkim_sink_fn *sink, void *arg)
{
    memset(bc, 0, sizeof(*bc));
    bc->canon = c;
    bc->sink = sink;
    bc->arg = arg;
}

/*
 * A staging area so the sink gets runs, not octets: short runs (words
 * between WSP in relaxed mode, held-back line ends) are copied together;
 * a run longer than the area goes to the sink directly.
 */
struct stage {
    char b[4096];
    size_t n;
    struct pst_dkim_bodycanon *bc;
};

static void flush(struct stage *s)
{
    if (s->n > 0)
        s->bc->sink(s->bc->arg, s->b, s->n);
    s->n = 0;
}

static void put(struct stage *s, const char *p, size_t n)
{
    if (n > sizeof(s->b) - s->n) {
        flush(s);
        if (n >= sizeof(s->b)) {
            s->bc->sink(s->bc->arg, p, n);
            return;
        }
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

/* Line content p[0..n) (n > 0): first the held-back line ends and WSP. */
static void content(struct stage *s, const char *p, size_t n)
{
    struct pst_dkim_bodycanon *bc = s->bc;
    for (; bc->crlfs > 0; bc->crlfs--)
        put(s, "\r\n", 2);
    if (bc->wsp) {
        put(s, " ", 1); /* 3.4.4: a WSP run becomes one SP */
        bc->wsp = 0;
    }
    put(s, p, n);
    bc->open = 1;
    bc->any = 1;
}

#if defined(__SSE2__)
#include <emmintrin.h>
#define DKIM_SSE2 1
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define DKIM_SWAR 1
/* 0x80 in each byte of w that equals the byte in pat (all 8 the same);
 * exact, no false positives (the "has zero byte" test per byte). */
static inline uint64_t bytes_eq(uint64_t w, uint64_t pat)
{
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL;
    uint64_t t = w ^ pat;
    return ~(((t & lo7) + lo7) | t | lo7);
}
#endif

/*
 * The end of the run of octets from p[i] on that pass through unchanged:
 * up to the next CR; in relaxed mode also up to a TAB or a WSP run, a
 * single SP between two content octets being its own canonical form.
 * Relaxed scans sixteen (SSE2) or eight octets at a time where it can:
 * this loop was most of the cost of verifying a large message.
 */
static size_t run_end(const char *p, size_t i, size_t n, int relaxed)
{
    if (!relaxed) {
        const char *cr = memchr(p + i, '\r', n - i);
        return cr ? (size_t)(cr - p) : n;
    }
    for (;;) {
#if defined(DKIM_SSE2)
        /* sixteen octets a time (SSE2 is part of x86-64): the same stop
         * rule as the eight-octet one below, one bit per octet */
        const __m128i vcr = _mm_set1_epi8('\r'), vtab = _mm_set1_epi8('\t');
        const __m128i vsp = _mm_set1_epi8(' ');
        while (n - i >= 16) {
            __m128i w = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
            unsigned cr = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w, vcr));
            unsigned tab = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w, vtab));
            unsigned sp = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w, vsp));
            unsigned stop = cr | tab | (sp & ((sp | tab | cr) >> 1)) | (sp & 0x8000u);
            if (stop != 0) {
                i += (size_t)__builtin_ctz(stop);
                break;
            }
            i += 16;
        }
#elif defined(DKIM_SWAR)
        const uint64_t ones = 0x0101010101010101ULL;
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            uint64_t cr = bytes_eq(w, ones * '\r'), tab = bytes_eq(w, ones * '\t');
            uint64_t sp = bytes_eq(w, ones * ' ');
            /* stop at CR, TAB, an SP before SP/TAB/CR, or an SP in the
             * last byte (its successor is in the next word) */
            uint64_t stop = cr | tab | (sp & ((sp | tab | cr) >> 8)) | (sp & (0x80ULL << 56));
            if (stop != 0) {
                i += (size_t)__builtin_ctzll(stop) >> 3;
                break;
            }
            i += 8;
        }
#endif
        if (i >= n)
            return n;
        char c = p[i];
        if (c == '\r' || c == '\t')
            return i;
        if (c == ' ') {
            if (i + 1 < n && p[i + 1] != ' ' && p[i + 1] != '\t' && p[i + 1] != '\r') {
                i += 2;
                continue;
            }
            return i;
        }
        i++;
    }
}

void pst_dkim_bodycanon_update(struct pst_dkim_bodycanon *bc, const char *p, size_t n)
{
    struct stage s = {.n = 0, .bc = bc};
    int relaxed = bc->canon == PST_DKIM_RELAXED;
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (bc->cr) {
            bc->cr = 0;
            if (c == '\n') {
                bc->wsp = 0; /* 3.4.4: no WSP at the end of a line */
                bc->open = 0;
                bc->crlfs++; /* written when content follows (3.4.3) */
                i++;
                continue;
            }
            content(&s, "\r", 1); /* a lone CR is an ordinary octet */
        }
        if (c == '\r') {
            bc->cr = 1;
            i++;
        } else if (relaxed && dkim_wsp(c)) {
            bc->wsp = 1;
            i++;
        } else {
            size_t j = run_end(p, i + 1, n, relaxed);
            content(&s, p + i, j - i);
            i = j;
        }
    }
    flush(&s);
}

void pst_dkim_bodycanon_final(struct pst_dkim_bodycanon *bc)
{
    struct stage s = {.n = 0, .bc = bc};
    if (bc->cr) {
        bc->cr = 0;
        content(&s, "\r", 1);
    }
    bc->wsp = 0;
    bc->crlfs = 0;
    /* 3.4.3: one CRLF ends the body, and stands for an empty one; 3.4.4:
     * the CRLF is added only to a non-empty body */
    if (bc->any || bc->canon == PST_DKIM_SIMPLE)
        put(&s, "\r\n", 2);
    flush(&s);
}
