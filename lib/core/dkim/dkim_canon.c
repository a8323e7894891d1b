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

/* A staging area so the sink gets runs, not octets. */
struct stage {
    char b[4096];
    size_t n;
    struct pst_dkim_bodycanon *bc;
};

static void put(struct stage *s, const char *p, size_t n)
{
    while (n > 0) {
        size_t room = sizeof(s->b) - s->n;
        size_t k = n < room ? n : room;
        memcpy(s->b + s->n, p, k);
        s->n += k;
        p += k;
        n -= k;
        if (s->n == sizeof(s->b)) {
            s->bc->sink(s->bc->arg, s->b, s->n);
            s->n = 0;
        }
    }
}

/* An octet that is line content: first the held-back line ends and WSP. */
static void content(struct stage *s, char c)
{
    struct pst_dkim_bodycanon *bc = s->bc;
    for (; bc->crlfs > 0; bc->crlfs--)
        put(s, "\r\n", 2);
    if (bc->wsp) {
        put(s, " ", 1); /* 3.4.4: a WSP run becomes one SP */
        bc->wsp = 0;
    }
    if (s->n < sizeof(s->b) - 1)
        s->b[s->n++] = c;
    else
        put(s, &c, 1);
    bc->open = 1;
    bc->any = 1;
}

void pst_dkim_bodycanon_update(struct pst_dkim_bodycanon *bc, const char *p, size_t n)
{
    struct stage s = {.n = 0, .bc = bc};
    int relaxed = bc->canon == PST_DKIM_RELAXED;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (bc->cr) {
            bc->cr = 0;
            if (c == '\n') {
                bc->wsp = 0; /* 3.4.4: no WSP at the end of a line */
                bc->open = 0;
                bc->crlfs++; /* written when content follows (3.4.3) */
                continue;
            }
            content(&s, '\r');
        }
        if (c == '\r')
            bc->cr = 1;
        else if (relaxed && dkim_wsp(c))
            bc->wsp = 1;
        else
            content(&s, c);
    }
    if (s.n > 0)
        bc->sink(bc->arg, s.b, s.n);
}

void pst_dkim_bodycanon_final(struct pst_dkim_bodycanon *bc)
{
    struct stage s = {.n = 0, .bc = bc};
    if (bc->cr) {
        bc->cr = 0;
        content(&s, '\r');
    }
    bc->wsp = 0;
    bc->crlfs = 0;
    /* 3.4.3: one CRLF ends the body, and stands for an empty one; 3.4.4:
     * the CRLF is added only to a non-empty body */
    if (bc->any || bc->canon == PST_DKIM_SIMPLE)
        put(&s, "\r\n", 2);
    if (s.n > 0)
        bc->sink(bc->arg, s.b, s.n);
}
