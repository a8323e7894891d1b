/*
 * authres.c - Authentication-Results (RFC 8601): generation (2.2 grammar,
 * 2.7.1 dkim, 2.7.2 spf; RFC 9989 9.1 dmarc; RFC 6008 header.b) and the
 * removal of fields carrying our authserv-id (5). See authres.h for the
 * quoting rules and limits.
 */
#include <string.h>

#include "authres.h"
#include "buf.h"
#include "dkim.h"
#include "dmarc.h"
#include "err.h"
#include "msg.h"

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int is_bare(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == '+';
}

int pst_authres_value(struct pst_buf *out, const char *v, size_t n)
{
    size_t ats = 0;
    int bare = n > 0;
    for (size_t i = 0; i < n && bare; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '@')
            ats++;
        else if (!is_bare(c))
            bare = 0;
    }
    if (bare && ats <= 1)
        return pst_buf_add(out, v, n);
    /* RFC 2045 5.1 quoted-string; RFC 5322 3.2.4 quoted-pair */
    size_t mark = pst_buf_len(out);
    int rc = pst_buf_addc(out, '"');
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"' || c == '\\')
            rc = pst_buf_addc(out, '\\');
        if (rc == 0)
            rc = pst_buf_addc(out, (c < 0x20 || c > 0x7e) ? '?' : (char)c);
    }
    if (rc == 0)
        rc = pst_buf_addc(out, '"');
    if (rc != 0)
        pst_buf_truncate(out, mark);
    return rc;
}

/* " name=value" unless v is NULL, empty or too long. */
static int prop(struct pst_buf *out, const char *name, const char *v)
{
    if (v == NULL || *v == '\0')
        return 0;
    size_t n = strnlen(v, PST_AUTHRES_MAX_VALUE + 1);
    if (n > PST_AUTHRES_MAX_VALUE)
        return 0;
    int rc = pst_buf_addc(out, ' ');
    if (rc == 0)
        rc = pst_buf_addstr(out, name);
    if (rc == 0)
        rc = pst_buf_addc(out, '=');
    if (rc == 0)
        rc = pst_authres_value(out, v, n);
    return rc;
}

/* " reason=\"...\"" (always quoted). */
static int reason(struct pst_buf *out, const char *v)
{
    if (v == NULL || *v == '\0')
        return 0;
    size_t n = strnlen(v, PST_AUTHRES_MAX_VALUE);
    int rc = pst_buf_addstr(out, " reason=");
    if (rc == 0) {
        /* force quoting: a bare word would be fine, but one rule is simpler
         * to check */
        rc = pst_buf_addc(out, '"');
        for (size_t i = 0; i < n && rc == 0; i++) {
            unsigned char c = (unsigned char)v[i];
            if (c == '"' || c == '\\')
                rc = pst_buf_addc(out, '\\');
            if (rc == 0)
                rc = pst_buf_addc(out, (c < 0x20 || c > 0x7e) ? '?' : (char)c);
        }
        if (rc == 0)
            rc = pst_buf_addc(out, '"');
    }
    return rc;
}

static int id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > PST_AUTHRES_MAX_ID)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_bare((unsigned char)id[i]) || id[i] == '+')
            return 0;
    return 1;
}

static int method(struct pst_buf *out, const char *name, const char *result)
{
    /* RFC 8601 2.2: resinfo = [CFWS] ";" methodspec ...; one per line */
    int rc = pst_buf_addstr(out, ";\r\n\t");
    if (rc == 0)
        rc = pst_buf_addf(out, "%s=%s", name, result);
    return rc;
}

static const char *word(const char *w)
{
    /* a result word is a keyword (RFC 8601 2.2): letters only */
    if (w == NULL || *w == '\0')
        return NULL;
    for (const char *p = w; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return NULL;
    return strlen(w) <= 16 ? w : NULL;
}

int pst_authres_header(const struct pst_authres *a, struct pst_buf *out)
{
    if (a == NULL || out == NULL || !id_ok(a->authserv_id) || (a->dkim == NULL && a->ndkim > 0))
        return PST_ERR_INVAL;
    size_t mark = pst_buf_len(out);
    int any = 0;
    int rc = pst_buf_addf(out, "Authentication-Results: %s", a->authserv_id);
    if (rc == 0 && word(a->spf_result) != NULL) {
        any = 1;
        rc = method(out, "spf", word(a->spf_result));
        if (rc == 0)
            rc = reason(out, a->spf_reason);
        if (rc == 0) {
            if (a->spf_mailfrom != NULL && *a->spf_mailfrom != '\0')
                rc = prop(out, "smtp.mailfrom", a->spf_mailfrom);
            else
                rc = prop(out, "smtp.helo", a->spf_helo);
        }
    }
    if (rc == 0 && word(a->spf_helo_result) != NULL && a->spf_helo_name != NULL) {
        any = 1;
        rc = method(out, "spf", word(a->spf_helo_result));
        if (rc == 0)
            rc = reason(out, a->spf_helo_reason);
        if (rc == 0)
            rc = prop(out, "smtp.helo", a->spf_helo_name);
    }
    for (size_t i = 0; rc == 0 && i < a->ndkim; i++) {
        const struct pst_dkim_verdict *v = &a->dkim[i];
        any = 1;
        rc = method(out, "dkim", pst_dkim_result_name(v->result));
        if (rc == 0 && v->result != PST_DKIM_PASS)
            rc = reason(out, v->reason);
        if (rc == 0)
            rc = prop(out, "header.d", v->d);
        if (rc == 0)
            rc = prop(out, "header.s", v->s);
        if (rc == 0)
            rc = prop(out, "header.i", v->i);
        if (rc == 0)
            rc = prop(out, "header.a", v->a);
        if (rc == 0)
            rc = prop(out, "header.b", v->b8);
    }
    if (rc == 0 && a->dmarc != NULL) {
        const struct pst_dmarc_eval *e = a->dmarc;
        any = 1;
        rc = method(out, "dmarc", pst_dmarc_result_name(e->result));
        if (rc == 0 && e->result != PST_DMARC_RESULT_PASS)
            rc = reason(out, e->reason);
        if (rc == 0)
            rc = prop(out, "header.from", e->author);
        if (rc == 0 && e->policy_tag != NULL &&
            (e->result == PST_DMARC_RESULT_PASS || e->result == PST_DMARC_RESULT_FAIL))
            rc = prop(out, "policy.dmarc", pst_dmarc_policy_name(e->disposition));
    }
    if (rc == 0 && !any)
        rc = pst_buf_addstr(out, "; none"); /* 2.2 no-result */
    if (rc == 0)
        rc = pst_buf_addstr(out, "\r\n");
    if (rc != 0)
        pst_buf_truncate(out, mark);
    return rc;
}

/* RFC 2045 5.1 token characters. */
static int is_token(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

int pst_authres_is_ours(const char *v, size_t n, const char *authserv_id)
{
    size_t i = 0, depth = 0;
    char id[PST_AUTHRES_MAX_ID + 1];
    size_t idn = 0;
    if (v == NULL || authserv_id == NULL)
        return 0;
    /* [CFWS] (RFC 5322 3.2.2), comments nested */
    while (i < n) {
        char c = v[i];
        if (depth > 0 && c == '\\') {
            i += 2;
            continue;
        }
        if (c == '(')
            depth++;
        else if (c == ')' && depth > 0)
            depth--;
        else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n')
            break;
        i++;
    }
    if (i >= n)
        return 0;
    if (v[i] == '"') {
        for (i++; i < n && v[i] != '"'; i++) {
            if (v[i] == '\\' && i + 1 < n)
                i++;
            if (idn >= PST_AUTHRES_MAX_ID)
                return 0;
            id[idn++] = v[i];
        }
        if (i >= n)
            return 0;
    } else {
        while (i < n && is_token((unsigned char)v[i])) {
            if (idn >= PST_AUTHRES_MAX_ID)
                return 0;
            id[idn++] = v[i++];
        }
    }
    if (idn != strlen(authserv_id))
        return 0;
    for (size_t k = 0; k < idn; k++)
        if (lower((unsigned char)id[k]) != lower((unsigned char)authserv_id[k]))
            return 0;
    return 1;
}

int pst_authres_strip(const char *text, size_t len, const char *authserv_id, struct pst_buf *out,
                      size_t *removed, const char **why)
{
    struct pst_msg_header *h = NULL;
    size_t n = 0, pos = 0, mark;
    int rc;
    if (text == NULL || out == NULL || !id_ok(authserv_id))
        return PST_ERR_INVAL;
    rc = pst_msg_split(text, len, NULL, &h, why);
    if (rc != 0)
        return rc;
    mark = pst_buf_len(out);
    for (size_t i = 0; i < h->nfields && rc == 0; i++) {
        const struct pst_msg_field *f = &h->fields[i];
        if (!pst_msg_field_is(f, "Authentication-Results") ||
            !pst_authres_is_ours(f->value, f->value_len, authserv_id))
            continue;
        size_t start = (size_t)(f->raw - text);
        rc = pst_buf_add(out, text + pos, start - pos);
        pos = start + f->raw_len + 2; /* the field's final CRLF */
        if (pos > len)
            pos = len;
        n++;
    }
    if (rc == 0)
        rc = pst_buf_add(out, text + pos, len - pos);
    pst_msg_header_free(h);
    if (rc != 0) {
        pst_buf_truncate(out, mark);
        return rc;
    }
    if (removed != NULL)
        *removed = n;
    return 0;
}
