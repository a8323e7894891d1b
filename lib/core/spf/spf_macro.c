/*
 * spf_macro.c - SPF macro-strings (RFC 7208 7): syntax check and bounded
 * expansion.
 *
 * Bounds (spf.h): the input is at most PST_SPF_MACRO_IN_MAX octets, every
 * letter's value is split into at most MAX_PARTS parts, and everything is
 * written through one pst_buf capped at PST_SPF_MACRO_WORK_MAX, so no
 * input can make expansion write past a buffer or run long; then a
 * domain-spec is cut to 253 octets by whole labels (RFC 7208 7.3) and an
 * explanation refused past PST_SPF_EXP_MAX.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "spf.h"

#define MAX_PARTS 256 /* a value of 512 octets has at most 257 parts; more are joined */

static int fail(char *why, size_t whylen, int rc, const char *fmt, const char *arg)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, fmt, arg);
    return rc;
}

static int is_letter(char c)
{
    return strchr("slodiphcrtvSLODIPHCRTV", c) != NULL && c != '\0';
}

static int is_delim(char c)
{
    /* RFC 7208 7.1: delimiter = "." / "-" / "+" / "," / "/" / "_" / "=" */
    return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

/*
 * Reads one macro-expand at in[*pos] (in[*pos] == '%'). Sets the letter,
 * digits (0: none), reverse and the delimiter set. 0 or PST_ERR_SYNTAX.
 */
static int read_expand(const char *in, size_t len, size_t *pos, char *letter, unsigned *digits,
                       int *reverse, char delims[8], enum pst_spf_macro_kind kind, char *why,
                       size_t whylen)
{
    size_t i = *pos + 1;
    size_t nd = 0;
    char tok[2] = {0, 0};

    if (i >= len)
        return fail(why, whylen, PST_ERR_SYNTAX, "macro-string ends with '%%'%s", "");
    if (in[i] == '%' || in[i] == '_' || in[i] == '-') {
        *letter = in[i];
        *pos = i + 1;
        return 0;
    }
    if (in[i] != '{') {
        tok[0] = in[i];
        return fail(why, whylen, PST_ERR_SYNTAX, "'%%' followed by '%s' (RFC 7208 7.1)",
                    (unsigned char)tok[0] >= 0x21 && (unsigned char)tok[0] < 0x7f ? tok : "?");
    }
    i++;
    if (i >= len || !is_letter(in[i]))
        return fail(why, whylen, PST_ERR_SYNTAX, "unknown macro letter%s (RFC 7208 7.2)", "");
    *letter = in[i++];
    if (kind == PST_SPF_MACRO_DOMAIN && strchr("crtCRT", *letter) != NULL) {
        tok[0] = *letter;
        return fail(why, whylen, PST_ERR_SYNTAX,
                    "macro letter '%s' is allowed only in exp text (RFC 7208 7.2)", tok);
    }
    *digits = 0;
    while (i < len && in[i] >= '0' && in[i] <= '9') {
        if (++nd > 3)
            return fail(why, whylen, PST_ERR_SYNTAX, "macro transformer over 3 digits%s", "");
        *digits = *digits * 10 + (unsigned)(in[i] - '0');
        i++;
    }
    if (nd > 0 && *digits == 0)
        return fail(why, whylen, PST_ERR_SYNTAX,
                    "macro transformer 0 (RFC 7208 7.1: must be nonzero)%s", "");
    *reverse = 0;
    if (i < len && (in[i] == 'r' || in[i] == 'R')) {
        *reverse = 1;
        i++;
    }
    size_t nl = 0;
    while (i < len && is_delim(in[i])) {
        if (strchr(delims, in[i]) == NULL && nl < 7) {
            delims[nl++] = in[i];
            delims[nl] = '\0';
        }
        i++;
    }
    if (i >= len || in[i] != '}')
        return fail(why, whylen, PST_ERR_SYNTAX, "unterminated or malformed macro%s", "");
    *pos = i + 1;
    return 0;
}

int pst_spf_macro_check(const char *in, size_t len, enum pst_spf_macro_kind kind, char *why,
                        size_t whylen)
{
    if (len > PST_SPF_MACRO_IN_MAX)
        return fail(why, whylen, PST_ERR_TOOBIG, "macro-string over %s octets", "2048");
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            char letter, delims[8] = "";
            unsigned digits;
            int rev;
            int rc = read_expand(in, len, &i, &letter, &digits, &rev, delims, kind, why, whylen);
            if (rc != 0)
                return rc;
            continue;
        }
        /* RFC 7208 7.1: macro-literal = %x21-24 / %x26-7E; 6.2: SP in exp text */
        if (!(c >= 0x21 && c <= 0x7e) && !(c == ' ' && kind == PST_SPF_MACRO_EXP))
            return fail(why, whylen, PST_ERR_SYNTAX,
                        "character outside macro-literal (RFC 7208 7.1)%s", "");
        i++;
    }
    return 0;
}

/* RFC 7208 7.3: upper-case letters are URL-escaped (RFC 3986 2.3: all but
 * the unreserved characters). */
static int add_value(struct pst_buf *b, const char *p, size_t n, int escape)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!escape)
        return pst_buf_add(b, p, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        int rc;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            rc = pst_buf_addc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = pst_buf_add(b, e, 3);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One letter's value through the transformers (RFC 7208 7.3): split on
 * the delimiters (default "."), reverse when asked, keep the rightmost
 * digits parts, join with ".". */
static int expand_one(struct pst_buf *b, const char *val, unsigned digits, int reverse,
                      const char *delims, int escape)
{
    struct {
        const char *p;
        size_t n;
    } part[MAX_PARTS];
    size_t np = 0, start = 0, vlen = strlen(val);
    int rc = 0;

    if (delims[0] == '\0')
        delims = ".";
    for (size_t i = 0; i <= vlen; i++) {
        if (i == vlen || (strchr(delims, val[i]) != NULL && np + 1 < MAX_PARTS)) {
            part[np].p = val + start;
            part[np].n = i - start;
            np++;
            start = i + 1;
        }
    }
    size_t first = 0;
    if (digits > 0 && digits < np)
        first = np - digits;
    for (size_t k = first; k < np; k++) {
        size_t idx = reverse ? np - 1 - k : k;
        if (k > first && (rc = pst_buf_addc(b, '.')) != 0)
            return rc;
        if ((rc = add_value(b, part[idx].p, part[idx].n, escape)) != 0)
            return rc;
    }
    return 0;
}

static const char *letter_value(const struct pst_spf_macro_env *env, char l)
{
    switch (l) {
    case 's':
        return env->s;
    case 'l':
        return env->l;
    case 'o':
        return env->o;
    case 'd':
        return env->d;
    case 'i':
        return env->i;
    case 'h':
        return env->h;
    case 'c':
        return env->c;
    case 'r':
        return env->r;
    case 't':
        return env->t;
    case 'v':
        return env->v;
    default:
        return NULL;
    }
}

/* RFC 7208 7.3: drop labels from the left until the name fits. */
static const char *truncate_domain(const char *s, size_t *len)
{
    while (*len > PST_SPF_DOMAIN_MAX) {
        const char *dot = memchr(s, '.', *len);
        if (dot == NULL)
            return NULL;
        *len -= (size_t)(dot + 1 - s);
        s = dot + 1;
    }
    return s;
}

int pst_spf_macro_expand(const char *in, size_t len, enum pst_spf_macro_kind kind,
                         const struct pst_spf_macro_env *env, char **out, char *why, size_t whylen)
{
    struct pst_buf *b = NULL;
    char *res = NULL;
    int rc = pst_spf_macro_check(in, len, kind, why, whylen);

    if (rc != 0)
        return rc;
    if ((b = pst_buf_new(PST_SPF_MACRO_WORK_MAX)) == NULL)
        return PST_ERR_NOMEM;
    for (size_t i = 0; i < len && rc == 0;) {
        if (in[i] != '%') {
            size_t j = i;
            while (j < len && in[j] != '%')
                j++;
            rc = pst_buf_add(b, in + i, j - i);
            i = j;
            continue;
        }
        char letter = 0, delims[8] = "";
        unsigned digits = 0;
        int reverse = 0;
        rc = read_expand(in, len, &i, &letter, &digits, &reverse, delims, kind, why, whylen);
        if (rc != 0)
            break;
        if (letter == '%') {
            rc = pst_buf_addc(b, '%');
        } else if (letter == '_') {
            rc = pst_buf_addc(b, ' ');
        } else if (letter == '-') {
            rc = pst_buf_add(b, "%20", 3);
        } else {
            char lower = (char)(letter | 0x20);
            const char *val = NULL;
            if (lower == 'p') {
                val = "unknown";
                if (env->p != NULL && (rc = env->p(env->p_arg, &val)) != 0)
                    break;
            } else {
                val = letter_value(env, lower);
            }
            if (val == NULL)
                val = "";
            rc = expand_one(b, val, digits, reverse, delims, letter != lower);
        }
    }
    if (rc == PST_ERR_TOOBIG) {
        fail(why, whylen, rc, "macro expansion over %s octets", "65536");
        goto out;
    }
    if (rc != 0)
        goto out;

    const char *s = pst_buf_data(b);
    size_t n = pst_buf_len(b);
    if (kind == PST_SPF_MACRO_DOMAIN) {
        if (n > 0 && s[n - 1] == '.')
            n--;
        s = truncate_domain(s, &n);
        if (s == NULL) {
            rc = fail(why, whylen, PST_ERR_TOOBIG,
                      "expanded domain over 253 octets without a dot to cut at%s", "");
            goto out;
        }
    } else if (n > PST_SPF_EXP_MAX) {
        rc = fail(why, whylen, PST_ERR_TOOBIG, "expanded explanation over %s octets", "1024");
        goto out;
    }
    if ((res = malloc(n + 1)) == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    memcpy(res, s, n);
    res[n] = '\0';
    *out = res;
out:
    pst_buf_free(b);
    return rc;
}
