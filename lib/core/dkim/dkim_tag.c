/*
 * dkim_tag.c - the tag=value lists of RFC 6376 3.2, shared by signatures
 * and key records, and small text helpers of the DKIM module.
 *
 *   tag-list  = tag-spec *( ";" tag-spec ) [ ";" ]
 *   tag-spec  = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
 *   tag-name  = ALPHA *ALNUMPUNC
 *   tag-value = [ tval *( 1*(WSP / FWS) tval ) ]   tval = 1*VALCHAR
 *   VALCHAR   = %x21-3A / %x3C-7E
 *
 * Refused: a tag name seen twice (3.2: "MUST be interpreted as a syntax
 * error"), an empty tag-spec (";;"), a tag without "=", control octets.
 * Leniency: octets >= 0x80 in values (RFC 8616 3.2: UTF-8 in i=).
 * Limits: PST_DKIM_MAX_TAGLIST bytes, PST_DKIM_MAX_TAGS tags.
 */
#include "dkim.h"
#include "dkim_int.h"
#include "err.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

size_t dkim_fws(const char *p, size_t n)
{
    size_t i = 0;
    for (;;) {
        if (i < n && dkim_wsp(p[i]))
            i++;
        else if (i + 2 < n && p[i] == '\r' && p[i + 1] == '\n' && dkim_wsp(p[i + 2]))
            i += 3;
        else
            return i;
    }
}

char *dkim_strip_fws(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (!dkim_wsp(p[i]) && p[i] != '\r' && p[i] != '\n')
            s[j++] = p[i];
    s[j] = '\0';
    return s;
}

static int b64char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

int dkim_b64_decode(const char *s, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(s), pad = 0;
    while (pad < n && pad < 2 && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64char(s[i]))
            return PST_ERR_SYNTAX;
    if (n % 4 != 0 || n > (size_t)INT32_MAX)
        return PST_ERR_SYNTAX;
    unsigned char *b = malloc(n / 4 * 3 + 1);
    if (b == NULL)
        return PST_ERR_NOMEM;
    int m = n ? EVP_DecodeBlock(b, (const unsigned char *)s, (int)n) : 0;
    if (m < 0 || (size_t)m < pad) {
        free(b);
        return PST_ERR_SYNTAX;
    }
    *out = b;
    *outlen = (size_t)m - pad; /* EVP_DecodeBlock counts the padding */
    return 0;
}

int dkim_name_ok(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0;
}

int dkim_ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

static int alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int valchar(unsigned char c)
{
    return (c >= 0x21 && c <= 0x7e && c != ';') || c >= 0x80;
}

int pst_dkim_taglist_parse(const char *text, size_t len, struct pst_dkim_taglist *out,
                           const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    if (text == NULL || out == NULL) {
        *why = "no tag list";
        return PST_ERR_INVAL;
    }
    if (len > PST_DKIM_MAX_TAGLIST) {
        *why = "tag list too long";
        return PST_ERR_TOOBIG;
    }
    struct pst_dkim_taglist tl;
    tl.ntags = 0;
    size_t i = 0;
    for (;;) {
        i += dkim_fws(text + i, len - i);
        if (i == len) {
            if (tl.ntags == 0 && len > 0 && memchr(text, ';', len) != NULL) {
                *why = "empty tag";
                return PST_ERR_SYNTAX;
            }
            break; /* end, or one trailing ";" (RFC 6376 3.2) */
        }
        if (!alpha(text[i])) {
            *why = text[i] == ';' ? "empty tag" : "tag name does not start with a letter";
            return PST_ERR_SYNTAX;
        }
        size_t ns = i;
        while (i < len && (alpha(text[i]) || (text[i] >= '0' && text[i] <= '9') || text[i] == '_'))
            i++;
        size_t nn = i - ns;
        i += dkim_fws(text + i, len - i);
        if (i == len || text[i] != '=') {
            *why = "tag without '='";
            return PST_ERR_SYNTAX;
        }
        i++;
        size_t vstart = i;
        i += dkim_fws(text + i, len - i);
        size_t vs = i, ve = i;
        while (i < len && text[i] != ';') {
            size_t f = dkim_fws(text + i, len - i);
            if (f > 0) {
                i += f;
                continue;
            }
            if (!valchar((unsigned char)text[i])) {
                *why = "bad character in tag value";
                return PST_ERR_SYNTAX;
            }
            i++;
            ve = i;
        }
        for (size_t k = 0; k < tl.ntags; k++) {
            if (tl.tags[k].name_len == nn && memcmp(tl.tags[k].name, text + ns, nn) == 0) {
                *why = "duplicate tag";
                return PST_ERR_SYNTAX;
            }
        }
        if (tl.ntags == PST_DKIM_MAX_TAGS) {
            *why = "too many tags";
            return PST_ERR_TOOBIG;
        }
        struct pst_dkim_tag *t = &tl.tags[tl.ntags++];
        t->name = text + ns;
        t->name_len = nn;
        t->value = text + vs;
        t->value_len = ve - vs;
        t->vstart = vstart;
        t->vend = i;
        if (i == len)
            break;
        i++; /* ';' */
    }
    memcpy(out, &tl, sizeof(tl));
    return 0;
}

const struct pst_dkim_tag *pst_dkim_tag_get(const struct pst_dkim_taglist *tl, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < tl->ntags; i++)
        if (tl->tags[i].name_len == n && memcmp(tl->tags[i].name, name, n) == 0)
            return &tl->tags[i];
    return NULL;
}
