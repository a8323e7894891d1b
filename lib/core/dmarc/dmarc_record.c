/*
 * dmarc_record.c - DMARC policy records: RFC 9989 4.7 (tags), 4.8 (ABNF),
 * 4.10.1 (missing or invalid p, sp, np), Appendix A.6 and C.5 (RFC 7489's
 * pct, rf, ri). Leniencies and limits are listed in dmarc.h.
 */
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "err.h"

#define IS_WSP(c)   ((c) == ' ' || (c) == '\t')
#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* 1 when p[0..n) equals the lower-case word w, ASCII case-insensitively. */
static int word_is(const char *p, size_t n, const char *w)
{
    size_t wl = strlen(w);
    if (n != wl)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != w[i])
            return 0;
    return 1;
}

static void issue(struct pst_dmarc_record *r, const char *tag, size_t tlen, const char *why)
{
    if (r->nissues >= PST_DMARC_MAX_ISSUES) {
        r->more_issues = 1;
        return;
    }
    struct pst_dmarc_issue *is = &r->issues[r->nissues++];
    size_t n = tlen < sizeof(is->tag) - 1 ? tlen : sizeof(is->tag) - 1;
    memcpy(is->tag, tag, n);
    is->tag[n] = '\0';
    is->why = why;
    is->warning = strncmp(why, "RFC 7489", 8) == 0;
}

const char *pst_dmarc_policy_name(enum pst_dmarc_policy p)
{
    switch (p) {
    case PST_DMARC_POLICY_NONE:
        return "none";
    case PST_DMARC_POLICY_QUARANTINE:
        return "quarantine";
    case PST_DMARC_POLICY_REJECT:
        return "reject";
    default:
        return "-";
    }
}

/* dmarc-request (4.8); ABSENT when v is not one. */
static enum pst_dmarc_policy parse_request(const char *v, size_t n)
{
    if (word_is(v, n, "none"))
        return PST_DMARC_POLICY_NONE;
    if (word_is(v, n, "quarantine"))
        return PST_DMARC_POLICY_QUARANTINE;
    if (word_is(v, n, "reject"))
        return PST_DMARC_POLICY_REJECT;
    return PST_DMARC_POLICY_ABSENT;
}

/* dmarc-fo (4.8): 0/1 at most one of them, d and s at most once each. */
static int parse_fo(const char *v, size_t n, unsigned *out)
{
    unsigned fo = 0;
    size_t i = 0;
    for (;;) {
        if (i >= n)
            return -1;
        unsigned bit;
        switch (lower((unsigned char)v[i])) {
        case '0':
            bit = PST_DMARC_FO_0;
            break;
        case '1':
            bit = PST_DMARC_FO_1;
            break;
        case 'd':
            bit = PST_DMARC_FO_D;
            break;
        case 's':
            bit = PST_DMARC_FO_S;
            break;
        default:
            return -1;
        }
        if ((fo & bit) ||
            ((bit & (PST_DMARC_FO_0 | PST_DMARC_FO_1)) && (fo & (PST_DMARC_FO_0 | PST_DMARC_FO_1))))
            return -1;
        fo |= bit;
        i++;
        if (i == n)
            break;
        if (v[i] != ':')
            return -1;
        i++;
    }
    /* "d" or "s" alone is a dmarc-afrf without 0/1: allowed by the second
     * alternative; the default 0 then still holds for the rest. */
    if (!(fo & (PST_DMARC_FO_0 | PST_DMARC_FO_1)))
        fo |= PST_DMARC_FO_0;
    *out = fo;
    return 0;
}

/* RFC 3986 3.1 scheme ":" and at least one more URI character; commas and
 * '!' must be percent-encoded (4.8), so they cannot appear. */
static int uri_ok(const char *u, size_t n)
{
    size_t i = 0;
    if (n == 0 || !IS_ALPHA(u[0]))
        return 0;
    while (i < n && (IS_ALPHA(u[i]) || IS_DIGIT(u[i]) || u[i] == '+' || u[i] == '-' || u[i] == '.'))
        i++;
    if (i >= n || u[i] != ':' || i + 1 >= n)
        return 0;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' ||
            c == '`' || c == '{' || c == '|' || c == '}' || c == ',' || c == '!')
            return 0;
        if (c == '%' &&
            (i + 2 >= n || !strchr("0123456789abcdefABCDEF", u[i + 1]) ||
             !strchr("0123456789abcdefABCDEF", u[i + 2]) || u[i + 1] == '\0' || u[i + 2] == '\0'))
            return 0;
    }
    return 1;
}

/* dmarc-urilist (4.8), keeping the valid URIs. 1 when none is valid. */
static int parse_urilist(struct pst_dmarc_record *r, const char *tag, size_t tlen, const char *v,
                         size_t n, char **uris, size_t *nuris)
{
    size_t i = 0;
    while (i <= n) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (s < e && IS_WSP(v[s]))
            s++;
        while (e > s && IS_WSP(v[e - 1]))
            e--;
        /* obs-dmarc-report-size: "!" 1*DIGIT [k/m/g/t], ignored (4.8) */
        const char *bang = memchr(v + s, '!', e - s);
        size_t ue = bang ? (size_t)(bang - v) : e;
        if (bang) {
            size_t k = ue + 1, d = 0;
            while (k < e && IS_DIGIT(v[k]))
                k++, d++;
            if (k < e && strchr("kmgtKMGT", v[k]))
                k++;
            if (d == 0 || k != e) {
                issue(r, tag, tlen, "bad report size after '!'");
                ue = s; /* make the URI invalid below */
            }
        }
        if (ue - s > PST_DMARC_MAX_URI) {
            issue(r, tag, tlen, "URI too long, ignored");
        } else if (!uri_ok(v + s, ue - s)) {
            if (ue > s || bang == NULL)
                issue(r, tag, tlen, "not a URI, ignored");
        } else if (*nuris >= PST_DMARC_MAX_URIS) {
            issue(r, tag, tlen, "too many URIs, the rest ignored");
            break;
        } else {
            char *u = malloc(ue - s + 1);
            if (u == NULL)
                return PST_ERR_NOMEM;
            memcpy(u, v + s, ue - s);
            u[ue - s] = '\0';
            uris[(*nuris)++] = u;
        }
        i++;
    }
    return *nuris > 0 ? 0 : 1;
}

static int parse_uint(const char *v, size_t n, long max, long *out)
{
    long x = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!IS_DIGIT(v[i]))
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    if (x > max)
        return -1;
    *out = x;
    return 0;
}

int pst_dmarc_record_is_dmarc(const char *txt, size_t len)
{
    size_t i = 0;
    if (len < 1 || txt[0] != 'v')
        return 0;
    i = 1;
    while (i < len && IS_WSP(txt[i]))
        i++;
    if (i >= len || txt[i] != '=')
        return 0;
    i++;
    while (i < len && IS_WSP(txt[i]))
        i++;
    if (len - i < 6 || memcmp(txt + i, "DMARC1", 6) != 0) /* %s"DMARC1" */
        return 0;
    i += 6;
    return i == len || IS_WSP(txt[i]) || txt[i] == ';';
}

void pst_dmarc_record_free(struct pst_dmarc_record *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nrua; i++)
        free(r->rua[i]);
    for (size_t i = 0; i < r->nruf; i++)
        free(r->ruf[i]);
    free(r);
}

enum {
    SEEN_P = 1 << 0,
    SEEN_SP = 1 << 1,
    SEEN_NP = 1 << 2,
    SEEN_T = 1 << 3,
    SEEN_PSD = 1 << 4,
    SEEN_ADKIM = 1 << 5,
    SEEN_ASPF = 1 << 6,
    SEEN_RUA = 1 << 7,
    SEEN_RUF = 1 << 8,
    SEEN_FO = 1 << 9,
    SEEN_PCT = 1 << 10,
    SEEN_RF = 1 << 11,
    SEEN_RI = 1 << 12,
};

static const struct {
    const char *name;
    unsigned bit;
} known_tags[] = {
    {"p", SEEN_P},     {"sp", SEEN_SP},       {"np", SEEN_NP},     {"t", SEEN_T},
    {"psd", SEEN_PSD}, {"adkim", SEEN_ADKIM}, {"aspf", SEEN_ASPF}, {"rua", SEEN_RUA},
    {"ruf", SEEN_RUF}, {"fo", SEEN_FO},       {"pct", SEEN_PCT},   {"rf", SEEN_RF},
    {"ri", SEEN_RI},
};

/* One tag; bad values become issues and keep the default (4.8). */
static int apply_tag(struct pst_dmarc_record *r, unsigned *seen, unsigned *bad, const char *t,
                     size_t tn, const char *v, size_t vn)
{
    unsigned bit = 0;
    for (size_t k = 0; k < sizeof(known_tags) / sizeof(known_tags[0]); k++)
        if (word_is(t, tn, known_tags[k].name))
            bit = known_tags[k].bit;
    if (bit == 0)
        return 0; /* unknown tags MUST be ignored (4.7) */
    if (*seen & bit) {
        issue(r, t, tn, "repeated tag, ignored");
        return 0;
    }
    *seen |= bit;
    if (vn == 0) {
        issue(r, t, tn, "empty value");
        *bad |= bit;
        return 0;
    }
    enum pst_dmarc_policy pol;
    long x;
    switch (bit) {
    case SEEN_P:
    case SEEN_SP:
    case SEEN_NP:
        pol = parse_request(v, vn);
        if (pol == PST_DMARC_POLICY_ABSENT) {
            issue(r, t, tn, "not none, quarantine or reject");
            *bad |= bit;
        } else if (bit == SEEN_P) {
            r->p = pol;
        } else if (bit == SEEN_SP) {
            r->sp = pol;
        } else {
            r->np = pol;
        }
        break;
    case SEEN_T:
        if (word_is(v, vn, "y") || word_is(v, vn, "n")) {
            r->testing = lower((unsigned char)v[0]) == 'y';
            r->t_set = 1;
        } else {
            issue(r, t, tn, "not y or n");
        }
        break;
    case SEEN_PSD:
        if (word_is(v, vn, "y") || word_is(v, vn, "n") || word_is(v, vn, "u"))
            r->psd = (char)lower((unsigned char)v[0]);
        else
            issue(r, t, tn, "not y, n or u");
        break;
    case SEEN_ADKIM:
    case SEEN_ASPF:
        if (word_is(v, vn, "r") || word_is(v, vn, "s")) {
            if (bit == SEEN_ADKIM)
                r->adkim = (char)lower((unsigned char)v[0]);
            else
                r->aspf = (char)lower((unsigned char)v[0]);
        } else {
            issue(r, t, tn, "not r or s");
        }
        break;
    case SEEN_FO:
        if (parse_fo(v, vn, &r->fo) != 0)
            issue(r, t, tn, "not a dmarc-fo list (0/1, d, s separated by ':')");
        break;
    case SEEN_RUA:
    case SEEN_RUF: {
        int rc = bit == SEEN_RUA ? parse_urilist(r, t, tn, v, vn, r->rua, &r->nrua)
                                 : parse_urilist(r, t, tn, v, vn, r->ruf, &r->nruf);
        if (rc == PST_ERR_NOMEM)
            return rc;
        if (rc != 0)
            *bad |= bit;
        break;
    }
    case SEEN_PCT:
        /* RFC 7489 6.3: 0..100; removed by RFC 9989 (Appendix C.5.2) */
        if (parse_uint(v, vn, 100, &x) == 0)
            r->pct = (int)x;
        else
            issue(r, t, tn, "not an integer 0..100");
        issue(r, t, tn, "RFC 7489 tag, removed by RFC 9989 (use t=y for pct=0)");
        break;
    case SEEN_RF:
        if (vn < sizeof(r->rf)) {
            memcpy(r->rf, v, vn);
            r->rf[vn] = '\0';
        } else {
            issue(r, t, tn, "value too long");
        }
        issue(r, t, tn, "RFC 7489 tag, removed by RFC 9989, ignored");
        break;
    case SEEN_RI:
        if (parse_uint(v, vn, 4294967295L, &x) == 0)
            r->ri = x;
        else
            issue(r, t, tn, "not an unsigned 32-bit integer");
        issue(r, t, tn, "RFC 7489 tag, removed by RFC 9989, ignored");
        break;
    }
    return 0;
}

int pst_dmarc_record_parse(const char *txt, size_t len, struct pst_dmarc_record **out,
                           const char **why)
{
    const char *w = NULL;
    struct pst_dmarc_record *r = NULL;
    int rc;
    unsigned seen = 0, bad = 0;
    size_t ntags = 0;

    if (txt == NULL || out == NULL) {
        rc = PST_ERR_INVAL;
        w = "no record";
        goto out;
    }
    if (len > PST_DMARC_MAX_RECORD) {
        rc = PST_ERR_TOOBIG;
        w = "record longer than 4096 bytes";
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)txt[i];
        if (c < 0x20 && c != '\t') {
            rc = PST_ERR_SYNTAX;
            w = "control character in record";
            goto out;
        }
    }
    if (!pst_dmarc_record_is_dmarc(txt, len)) {
        rc = PST_ERR_SYNTAX;
        w = "not a DMARC record: v=DMARC1 must be the first tag (RFC 9989 4.7)";
        goto out;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        rc = PST_ERR_NOMEM;
        w = "out of memory";
        goto out;
    }
    r->psd = 'u';
    r->adkim = r->aspf = 'r';
    r->fo = PST_DMARC_FO_0;
    r->pct = -1;
    r->ri = -1;

    /* skip the version tag: is_dmarc checked it */
    size_t i = 0;
    while (i < len && txt[i] != ';')
        i++;
    while (i < len) {
        i++; /* ';' */
        while (i < len && IS_WSP(txt[i]))
            i++;
        if (i >= len)
            break; /* [dmarc-sep] at the end */
        if (txt[i] == ';') {
            issue(r, "", 0, "empty tag between ';'");
            continue;
        }
        size_t ts = i;
        while (i < len && IS_ALPHA(txt[i]))
            i++;
        size_t te = i;
        while (i < len && IS_WSP(txt[i]))
            i++;
        if (te == ts || i >= len || txt[i] != '=') {
            /* 4.8: a syntax error is discarded; the tag cannot be read */
            size_t e = i;
            while (e < len && txt[e] != ';')
                e++;
            issue(r, txt + ts, (te > ts ? te : e) - ts, "not a tag=value pair, ignored");
            i = e;
            if (++ntags > PST_DMARC_MAX_TAGS)
                goto toomany;
            continue;
        }
        i++;
        while (i < len && IS_WSP(txt[i]))
            i++;
        size_t vs = i;
        while (i < len && txt[i] != ';')
            i++;
        size_t ve = i;
        while (ve > vs && IS_WSP(txt[ve - 1]))
            ve--;
        if (++ntags > PST_DMARC_MAX_TAGS)
            goto toomany;
        for (size_t k = vs; k < ve; k++)
            if ((unsigned char)txt[k] > 0x7e) {
                issue(r, txt + ts, te - ts, "non-ASCII byte in value");
                goto next;
            }
        rc = apply_tag(r, &seen, &bad, txt + ts, te - ts, txt + vs, ve - vs);
        if (rc != 0) {
            w = "out of memory";
            goto out;
        }
    next:;
    }

    /* RFC 9989 4.10.1: no valid p, or an invalid sp/np */
    if (!(seen & SEEN_P))
        issue(r, "p", 1, "missing (required for a policy record)");
    if (r->p == PST_DMARC_POLICY_ABSENT || (bad & (SEEN_SP | SEEN_NP)))
        r->state = r->nrua > 0 ? PST_DMARC_REC_AS_NONE : PST_DMARC_REC_NO_POLICY;
    if (r->state == PST_DMARC_REC_AS_NONE) {
        r->p = PST_DMARC_POLICY_NONE;
        r->sp = r->np = PST_DMARC_POLICY_ABSENT;
    }
    /* Appendix A.6 / RFC 7489 6.6.4: pct=0 is what t=y replaced */
    if (!r->t_set && r->pct == 0)
        r->testing = 1;
    *out = r;
    r = NULL;
    rc = 0;
    goto out;
toomany:
    rc = PST_ERR_TOOBIG;
    w = "more than 32 tags";
out:
    pst_dmarc_record_free(r);
    if (rc != 0 && why != NULL)
        *why = w;
    return rc;
}
