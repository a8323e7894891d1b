/*
 * msg_header.c - bounded splitter of the RFC 5322 header section (2.1,
 * 2.2, 2.2.3, 3.6.8); see msg.h for the rules, limits and leniencies.
 */
#include "msg.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ftext (RFC 5322 3.6.8): printable US-ASCII except the colon */
static int ftext(unsigned char c)
{
    return c >= 33 && c <= 126 && c != ':';
}

/*
 * Length of the line at p (up to end), without its CRLF, in *n; the CRLF
 * must be there unless the line ends the text (then *eol = 0).
 */
static int line_at(const char *p, const char *end, size_t *n, int *eol, const char **why)
{
    const char *q = p;
    while (q < end) {
        if (*q == '\r') {
            if (q + 1 < end && q[1] == '\n') {
                *n = (size_t)(q - p);
                *eol = 1;
                return 0;
            }
            *why = "bare CR in the header section";
            return PST_ERR_BARE_EOL;
        }
        if (*q == '\n') {
            *why = "bare LF in the header section";
            return PST_ERR_BARE_EOL;
        }
        if (*q == '\0') {
            *why = "NUL in the header section";
            return PST_ERR_NUL;
        }
        q++;
    }
    *n = (size_t)(q - p);
    *eol = 0;
    return 0;
}

int pst_msg_split(const char *text, size_t len, const struct pst_msg_limits *lim,
                  struct pst_msg_header **out, const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    *why = NULL;
    if (text == NULL || out == NULL) {
        *why = "no text";
        return PST_ERR_INVAL;
    }
    size_t max_fields = lim && lim->max_fields ? lim->max_fields : PST_MSG_MAX_FIELDS;
    size_t max_header = lim && lim->max_header ? lim->max_header : PST_MSG_MAX_HEADER;
    size_t max_field = lim && lim->max_field ? lim->max_field : PST_MSG_MAX_FIELD_LEN;

    int rc = PST_ERR_NOMEM;
    struct pst_msg_header *h = calloc(1, sizeof(*h));
    size_t cap = 0;
    if (h == NULL)
        goto out;
    const char *p = text, *end = text + len;
    struct pst_msg_field *cur = NULL;
    for (;;) {
        if (p == end) {
            h->body_off = len; /* RFC 5322 2.1: the body is optional */
            break;
        }
        size_t n;
        int eol;
        rc = line_at(p, end, &n, &eol, why);
        if (rc < 0)
            goto out;
        size_t taken = (size_t)(p - text) + n + (eol ? 2 : 0);
        if (taken > max_header) {
            *why = "header section too large";
            rc = PST_ERR_TOOBIG;
            goto out;
        }
        if (n == 0 && eol) {
            h->body_off = taken; /* the empty line ends the header section */
            break;
        }
        if (*p == ' ' || *p == '\t') {
            /* RFC 5322 2.2.3: folded continuation of the field before */
            if (cur == NULL) {
                *why = "continuation line before the first header field";
                rc = PST_ERR_SYNTAX;
                goto out;
            }
            cur->raw_len = (size_t)(p + n - cur->raw);
            cur->value_len = (size_t)(p + n - cur->value);
        } else {
            size_t k = 0;
            while (k < n && ftext((unsigned char)p[k]))
                k++;
            size_t name_len = k;
            while (k < n && (p[k] == ' ' || p[k] == '\t'))
                k++; /* RFC 5322 4.5: obs WSP before the colon */
            if (k == n || p[k] != ':') {
                *why = "header line without a colon";
                rc = PST_ERR_SYNTAX;
                goto out;
            }
            if (name_len == 0) {
                *why = "empty header field name";
                rc = PST_ERR_SYNTAX;
                goto out;
            }
            if (h->nfields == max_fields) {
                *why = "too many header fields";
                rc = PST_ERR_TOOBIG;
                goto out;
            }
            if (h->nfields == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                if (ncap > max_fields)
                    ncap = max_fields;
                struct pst_msg_field *f = realloc(h->fields, ncap * sizeof(*f));
                if (f == NULL) {
                    rc = PST_ERR_NOMEM;
                    goto out;
                }
                h->fields = f;
                cap = ncap;
            }
            cur = &h->fields[h->nfields++];
            cur->raw = p;
            cur->raw_len = n;
            cur->name = p;
            cur->name_len = name_len;
            cur->value = p + k + 1;
            cur->value_len = n - k - 1;
        }
        if (cur->raw_len > max_field) {
            *why = "header field too long";
            rc = PST_ERR_TOOBIG;
            goto out;
        }
        p += n + (eol ? 2 : 0);
    }
    *out = h;
    h = NULL;
    rc = 0;
out:
    pst_msg_header_free(h);
    return rc;
}

void pst_msg_header_free(struct pst_msg_header *h)
{
    if (h == NULL)
        return;
    free(h->fields);
    free(h);
}

int pst_msg_field_is(const struct pst_msg_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

size_t pst_msg_count(const struct pst_msg_header *h, const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i < h->nfields; i++)
        c += (size_t)pst_msg_field_is(&h->fields[i], name);
    return c;
}
