/*
 * smtp_cmd.c - the SMTP command line parser, the MAIL/RCPT parameter checks
 * and the verb names.
 *
 * RFC 5321 4.1.1 (commands), 4.1.2 (argument syntax), 4.1.3 (address
 * literals), 4.5.3.1 (size limits); RFC 6531 3.3 (UTF-8 mailboxes), 3.4 and
 * 3.5 (SMTPUTF8 parameter and its replies), 3.7.1 (EHLO stays ASCII);
 * RFC 3030 2 (BDAT); RFC 1870 (SIZE); RFC 6152 (BODY=8BITMIME); RFC 3463
 * (enhanced status codes); RFC 3207 4 (STARTTLS takes no argument).
 *
 * The parser works on one line without its CRLF, copies what it keeps into
 * one allocation owned by the command, and refuses rather than guesses.
 *
 * Deliberate leniencies, each one common client behaviour that is not
 * ambiguous:
 *  - one SP after "FROM:" / "TO:" ("MAIL FROM: <a@b>"); RFC 5321 4.1.1.2
 *    and 4.1.1.3 have none. Only one: a second one is a syntax error.
 *  - SP and HTAB at the very end of the line are ignored.
 *  - ESMTP parameters may be separated by more than one SP (RFC 5321 4.1.2
 *    has exactly one).
 *  - a UTF-8 local part may have 64 characters rather than 64 octets
 *    (RFC 5321 4.5.3.1.1 counts octets; an ASCII local part keeps the
 *    64-octet limit). The whole path stays within 256 octets.
 *
 * Strictness worth knowing: the path must be in angle brackets; HELO takes
 * a domain only, EHLO a domain or an address literal, both ASCII only;
 * General-address-literal ([tag:...]) is refused; verbs must be followed by
 * exactly one SP; domain labels are at most 63 octets (RFC 1035 2.3.4).
 * U-labels are checked as valid UTF-8 in letter-digit-hyphen form, not
 * against IDNA2008 (lib/core has no IDNA library).
 */
#include "smtp.h"
#include "err.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A hard cap far above any sane command line (RFC 4954 4 allows 12288
 * octets for AUTH); the caller enforces its own, smaller, limit. */
#define CMD_MAX_LINE 65536

#define SMTP_MAX_PATH   256 /* RFC 5321 4.5.3.1.3, brackets included */
#define SMTP_MAX_LOCAL  64  /* RFC 5321 4.5.3.1.1 */
#define SMTP_MAX_DOMAIN 255 /* RFC 5321 4.5.3.1.2 */
#define DNS_MAX_LABEL   63  /* RFC 1035 2.3.4 */

static const char *const verb_names[] = {
    [PST_SMTP_UNKNOWN] = "UNKNOWN", [PST_SMTP_EHLO] = "EHLO",         [PST_SMTP_HELO] = "HELO",
    [PST_SMTP_MAIL] = "MAIL",       [PST_SMTP_RCPT] = "RCPT",         [PST_SMTP_DATA] = "DATA",
    [PST_SMTP_BDAT] = "BDAT",       [PST_SMTP_RSET] = "RSET",         [PST_SMTP_NOOP] = "NOOP",
    [PST_SMTP_QUIT] = "QUIT",       [PST_SMTP_HELP] = "HELP",         [PST_SMTP_VRFY] = "VRFY",
    [PST_SMTP_EXPN] = "EXPN",       [PST_SMTP_STARTTLS] = "STARTTLS", [PST_SMTP_AUTH] = "AUTH",
};

const char *pst_smtp_verb_name(enum pst_smtp_verb verb)
{
    if ((unsigned)verb >= sizeof(verb_names) / sizeof(verb_names[0]) || verb_names[verb] == NULL)
        return "UNKNOWN";
    return verb_names[verb];
}

/* ---- replies for refused lines (RFC 3463 codes) ---- */

static int refuse(struct pst_smtp_perr *why, int rc, int code, const char *enh, const char *msg)
{
    why->code = code;
    why->enh = enh;
    why->msg = msg;
    return rc;
}

#define E_UNRECOGNIZED(w) refuse(w, PST_ERR_SYNTAX, 500, "5.5.2", "Command unrecognized")
#define E_ARGS(w, m)      refuse(w, PST_ERR_SYNTAX, 501, "5.5.4", m)
#define E_PARAM(w, m)     refuse(w, PST_ERR_SYNTAX, 555, "5.5.4", m)

/* ---- character classes ---- */

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_letdig(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

static char to_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static char to_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* atext of RFC 5322 3.2.3, which RFC 5321 4.1.2 Atom points to. */
static int is_atext(unsigned char c)
{
    if (is_letdig(c))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Length of the UTF8-non-ascii sequence (RFC 6532 3.1, RFC 3629 4) at s,
 * or 0 when s does not start a valid one: no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}

/* ---- the command's storage ---- */

struct arena {
    char *base;
    size_t cap;
    size_t used;
};

/* Copies n bytes plus a NUL; the arena is sized so this cannot run out. */
static char *arena_dup(struct arena *a, const char *s, size_t n)
{
    char *p = a->base + a->used;
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    a->used += n + 1;
    return p;
}

/* ---- domains and address literals ---- */

/*
 * Checks that s[0..n) is an RFC 5321 4.1.2 Domain: sub-domain *("."
 * sub-domain), sub-domain = Let-dig [Ldh-str]. With utf8, U-labels are
 * allowed (RFC 6531 3.3): UTF8-non-ascii counts as a letter; *has_utf8 is
 * set when one is present.
 */
static int check_domain(const unsigned char *s, size_t n, int utf8, int *has_utf8)
{
    if (n == 0 || n > SMTP_MAX_DOMAIN)
        return -1;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        int last_hyphen = 0;
        int label_utf8 = 0;
        while (i < n && s[i] != '.') {
            if (s[i] >= 0x80) {
                size_t k = utf8 ? utf8_len(s + i, n - i) : 0;
                if (k == 0)
                    return -1;
                i += k;
                label_utf8 = 1;
                last_hyphen = 0;
            } else if (is_letdig(s[i])) {
                i++;
                last_hyphen = 0;
            } else if (s[i] == '-' && i > start) {
                i++;
                last_hyphen = 1;
            } else
                return -1;
        }
        if (i == start || last_hyphen)
            return -1;
        /* a U-label's A-label length is not known without IDNA; the
         * 255-octet domain limit still bounds it */
        if (!label_utf8 && i - start > DNS_MAX_LABEL)
            return -1;
        if (label_utf8)
            *has_utf8 = 1;
        if (i < n) {
            i++; /* the dot */
            if (i == n)
                return -1; /* no trailing dot in SMTP */
        }
    }
    return 0;
}

/*
 * Checks an address literal's content between the brackets (RFC 5321
 * 4.1.3): IPv4-address-literal or "IPv6:" IPv6-addr, both checked with
 * inet_pton. General-address-literal is refused: no standardized tag is
 * in use and nothing here could route to one.
 */
static int check_addr_literal(const char *s, size_t n)
{
    char tmp[64];
    unsigned char addr[16];
    /* RFC 5321 2.4: the "IPv6" tag is not case sensitive */
    if (n > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
        if (n - 5 >= sizeof(tmp))
            return -1;
        memcpy(tmp, s + 5, n - 5);
        tmp[n - 5] = '\0';
        return inet_pton(AF_INET6, tmp, addr) == 1 ? 0 : -1;
    }
    if (n == 0 || n >= sizeof(tmp) || memchr(s, ':', n) != NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i]) && s[i] != '.')
            return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET, tmp, addr) == 1 ? 0 : -1;
}

/* Length of an address literal "[...]" starting at s[0] == '[', 0 if bad. */
static size_t scan_addr_literal(const char *s, size_t n)
{
    const char *close = memchr(s, ']', n);
    if (close == NULL)
        return 0;
    size_t k = (size_t)(close - s) + 1;
    if (check_addr_literal(s + 1, k - 2) < 0)
        return 0;
    return k;
}

/* Length of a run of characters that may appear in a Domain. */
static size_t span_domain(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (is_letdig(s[i]) || s[i] == '-' || s[i] == '.' || s[i] >= 0x80))
        i++;
    return i;
}

/* ---- local parts ---- */

/*
 * Scans a Local-part (RFC 5321 4.1.2, extended by RFC 6531 3.3) at s.
 * Returns its length in octets, 0 when it is malformed; *chars gets its
 * length in characters and *has_utf8 is set for non-ASCII content.
 */
static size_t scan_local(const unsigned char *s, size_t n, size_t *chars, int *has_utf8)
{
    size_t i = 0, nchars = 0;
    if (n > 0 && s[0] == '"') {
        /* Quoted-string = DQUOTE *QcontentSMTP DQUOTE */
        i = 1;
        nchars = 1;
        for (;;) {
            if (i >= n)
                return 0;
            unsigned char c = s[i];
            if (c == '"') {
                i++;
                nchars++;
                break;
            }
            if (c == '\\') {
                /* quoted-pairSMTP = %d92 %d32-126 */
                if (i + 1 >= n || s[i + 1] < 32 || s[i + 1] > 126)
                    return 0;
                i += 2;
                nchars += 2;
            } else if (c >= 0x80) {
                size_t k = utf8_len(s + i, n - i);
                if (k == 0)
                    return 0;
                i += k;
                nchars++;
                *has_utf8 = 1;
            } else if (c >= 32 && c <= 126) {
                i++; /* qtextSMTP: all graphics and SP but DQUOTE and "\" */
                nchars++;
            } else
                return 0;
        }
    } else {
        /* Dot-string = Atom *("." Atom) */
        int need_atext = 1;
        while (i < n) {
            unsigned char c = s[i];
            if (c >= 0x80) {
                size_t k = utf8_len(s + i, n - i);
                if (k == 0)
                    return 0;
                i += k;
                *has_utf8 = 1;
                need_atext = 0;
            } else if (is_atext(c)) {
                i++;
                need_atext = 0;
            } else if (c == '.' && !need_atext) {
                i++;
                need_atext = 1;
            } else
                break;
            nchars++;
        }
        if (need_atext)
            return 0; /* empty, or ends with a dot */
    }
    *chars = nchars;
    return i;
}

/* ---- paths ---- */

struct path {
    size_t len;       /* octets from "<" to ">" inclusive */
    size_t mb_off;    /* the mailbox, relative to the "<" */
    size_t mb_len;    /* 0 for "<>" */
    size_t local_len; /* local part length within the mailbox */
    size_t dom_off;   /* domain, relative to the "<" */
    size_t dom_len;
    int postmaster; /* RCPT TO:<Postmaster> */
    int utf8;
};

/*
 * Parses Path (RFC 5321 4.1.2) at s[0] == '<': "<" [ A-d-l ":" ] Mailbox
 * ">", or "<>" when null_ok, or "<Postmaster>" when postmaster_ok.
 */
static int parse_path(const char *line, size_t n, int null_ok, int postmaster_ok, struct path *pa)
{
    const unsigned char *s = (const unsigned char *)line;
    size_t i = 1;
    int utf8 = 0;
    memset(pa, 0, sizeof(*pa));
    if (n == 0 || s[0] != '<')
        return -1;
    if (n >= 2 && s[1] == '>') {
        if (!null_ok)
            return -1;
        pa->len = 2;
        return 0;
    }
    /* RFC 5321 4.1.1.3: "Postmaster" without a domain, case-insensitive */
    if (postmaster_ok && n >= 12 && strncasecmp(line + 1, "postmaster>", 11) == 0) {
        pa->len = 12;
        pa->mb_off = 1;
        pa->mb_len = 10;
        pa->local_len = 10;
        pa->dom_off = 11;
        pa->postmaster = 1;
        return 0;
    }
    /* A-d-l = At-domain *( "," At-domain ): accepted and dropped
     * (RFC 5321 4.1.1.3 and Appendix C) */
    if (i < n && s[i] == '@') {
        int route_utf8 = 0; /* dropped with the route: path_utf8 is about the mailbox */
        for (;;) {
            i++; /* the "@" */
            size_t k = span_domain(s + i, n - i);
            if (check_domain(s + i, k, 1, &route_utf8) < 0)
                return -1;
            i += k;
            if (i < n && s[i] == ',' && i + 1 < n && s[i + 1] == '@') {
                i++;
                continue;
            }
            if (i < n && s[i] == ':') {
                i++;
                break;
            }
            return -1;
        }
    }
    pa->mb_off = i;
    size_t chars = 0;
    size_t ll = scan_local(s + i, n - i, &chars, &utf8);
    if (ll == 0)
        return -1;
    /* RFC 5321 4.5.3.1.1; a UTF-8 local part is counted in characters,
     * see the file comment */
    if ((utf8 ? chars : ll) > SMTP_MAX_LOCAL)
        return -1;
    i += ll;
    if (i >= n || s[i] != '@')
        return -1;
    i++;
    pa->dom_off = i;
    if (i < n && s[i] == '[') {
        size_t k = scan_addr_literal(line + i, n - i);
        if (k == 0)
            return -1;
        i += k;
    } else {
        size_t k = span_domain(s + i, n - i);
        if (check_domain(s + i, k, 1, &utf8) < 0)
            return -1;
        i += k;
    }
    pa->dom_len = i - pa->dom_off;
    if (i >= n || s[i] != '>')
        return -1;
    i++;
    pa->len = i;
    pa->mb_len = i - 1 - pa->mb_off;
    pa->local_len = ll;
    pa->utf8 = utf8;
    if (pa->len > SMTP_MAX_PATH)
        return -1;
    return 0;
}

/*
 * Parses Mail-parameters / Rcpt-parameters (RFC 5321 4.1.2) in s[0..n):
 * esmtp-param *(SP esmtp-param), more than one SP allowed (see the file
 * comment). s has no trailing SP.
 */
static int parse_params(const char *line, size_t n, struct arena *a, struct pst_smtp_cmd *c,
                        struct pst_smtp_perr *why)
{
    const unsigned char *s = (const unsigned char *)line;
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        if (i == n)
            break;
        size_t kw = i;
        /* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
        if (!is_letdig(s[i]))
            return E_PARAM(why, "Malformed parameter");
        while (i < n && (is_letdig(s[i]) || s[i] == '-'))
            i++;
        size_t kwlen = i - kw;
        size_t val = 0, vallen = 0;
        int has_val = 0;
        if (i < n && s[i] == '=') {
            i++;
            val = i;
            has_val = 1;
            /* esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 3.3 adds
             * UTF8-non-ascii */
            while (i < n && s[i] != ' ') {
                if (s[i] >= 0x80) {
                    size_t k = utf8_len(s + i, n - i);
                    if (k == 0)
                        return E_PARAM(why, "Malformed parameter value");
                    i += k;
                } else if (s[i] >= 33 && s[i] <= 126 && s[i] != '=')
                    i++;
                else
                    return E_PARAM(why, "Malformed parameter value");
            }
            vallen = i - val;
            if (vallen == 0)
                return E_PARAM(why, "Malformed parameter value");
        }
        if (i < n && s[i] != ' ')
            return E_PARAM(why, "Malformed parameter");
        if (c->nparams == PST_SMTP_MAX_PARAMS)
            return E_PARAM(why, "Too many parameters");
        char *k = arena_dup(a, line + kw, kwlen);
        for (size_t j = 0; j < kwlen; j++)
            k[j] = to_upper(k[j]);
        c->params[c->nparams].keyword = k;
        c->params[c->nparams].value = has_val ? arena_dup(a, line + val, vallen) : NULL;
        c->nparams++;
    }
    return 0;
}

/* MAIL FROM:<path> [params] and RCPT TO:<path> [params]; s is after the
 * verb's SP. */
static int parse_mail_rcpt(const char *s, size_t n, struct arena *a, struct pst_smtp_cmd *c,
                           struct pst_smtp_perr *why)
{
    int mail = c->verb == PST_SMTP_MAIL;
    const char *kw = mail ? "FROM:" : "TO:";
    size_t kwlen = mail ? 5 : 3;
    const char *syntax = mail ? "Syntax: MAIL FROM:<address> [parameters]"
                              : "Syntax: RCPT TO:<address> [parameters]";
    const char *enh = mail ? "5.1.7" : "5.1.3"; /* RFC 3463 3.2 */
    const char *bad = mail ? "Bad sender address syntax" : "Bad recipient address syntax";

    /* RFC 5321 2.4: "FROM:" and "from:" are the same */
    if (n < kwlen || strncasecmp(s, kw, kwlen) != 0)
        return E_ARGS(why, syntax);
    size_t i = kwlen;
    if (i < n && s[i] == ' ')
        i++; /* the one leniency, see the file comment */
    if (i >= n || s[i] != '<')
        return refuse(why, PST_ERR_SYNTAX, 501, enh, bad);
    struct path pa;
    if (parse_path(s + i, n - i, mail, !mail, &pa) < 0)
        return refuse(why, PST_ERR_SYNTAX, 501, enh, bad);
    const char *p = s + i;
    i += pa.len;
    if (i < n && s[i] != ' ')
        return E_ARGS(why, syntax);
    int rc = parse_params(s + i, n - i, a, c, why);
    if (rc < 0)
        return rc;

    c->path = arena_dup(a, p + pa.mb_off, pa.mb_len);
    c->path_utf8 = pa.utf8;
    if (pa.postmaster) {
        c->local = arena_dup(a, "postmaster", 10);
        c->domain = arena_dup(a, "", 0);
    } else {
        c->local = arena_dup(a, p + pa.mb_off, pa.local_len);
        char *d = arena_dup(a, p + pa.dom_off, pa.dom_len);
        /* domains compare case-insensitively (RFC 5321 2.4); address
         * literals are kept as sent */
        if (d[0] != '[')
            for (char *q = d; *q != '\0'; q++)
                *q = to_lower(*q);
        c->domain = d;
    }
    return 0;
}

/* EHLO SP ( Domain / address-literal ), HELO SP Domain (RFC 5321 4.1.1.1);
 * ASCII only (RFC 6531 3.7.1). */
static int parse_hello(const char *s, size_t n, struct arena *a, struct pst_smtp_cmd *c,
                       struct pst_smtp_perr *why)
{
    int ok;
    if (n == 0)
        ok = 0;
    else if (s[0] == '[')
        ok = c->verb == PST_SMTP_EHLO && scan_addr_literal(s, n) == n;
    else {
        int utf8 = 0;
        ok = check_domain((const unsigned char *)s, n, 0, &utf8) == 0;
    }
    if (!ok)
        return E_ARGS(why, c->verb == PST_SMTP_EHLO ? "Syntax: EHLO domain-or-address-literal"
                                                    : "Syntax: HELO domain");
    c->arg = arena_dup(a, s, n);
    return 0;
}

/* BDAT SP chunk-size [ SP end-marker ] (RFC 3030 2). */
static int parse_bdat(const char *s, size_t n, struct pst_smtp_cmd *c, struct pst_smtp_perr *why)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && is_digit((unsigned char)s[i])) {
        unsigned d = (unsigned)(s[i] - '0');
        if (i == 20 || v > (UINT64_MAX - d) / 10)
            return E_ARGS(why, "Chunk size too large");
        v = v * 10 + d;
        i++;
    }
    if (i == 0)
        return E_ARGS(why, "Syntax: BDAT size [LAST]");
    if (i < n) {
        /* end-marker = "LAST", not case sensitive (RFC 5321 2.4) */
        if (n - i != 5 || strncasecmp(s + i, " LAST", 5) != 0)
            return E_ARGS(why, "Syntax: BDAT size [LAST]");
        c->bdat_last = 1;
    }
    c->bdat_size = v;
    return 0;
}

static const struct {
    const char *name;
    enum pst_smtp_verb verb;
} verbs[] = {
    {"EHLO", PST_SMTP_EHLO}, {"HELO", PST_SMTP_HELO},         {"MAIL", PST_SMTP_MAIL},
    {"RCPT", PST_SMTP_RCPT}, {"DATA", PST_SMTP_DATA},         {"BDAT", PST_SMTP_BDAT},
    {"RSET", PST_SMTP_RSET}, {"NOOP", PST_SMTP_NOOP},         {"QUIT", PST_SMTP_QUIT},
    {"HELP", PST_SMTP_HELP}, {"VRFY", PST_SMTP_VRFY},         {"EXPN", PST_SMTP_EXPN},
    {"AUTH", PST_SMTP_AUTH}, {"STARTTLS", PST_SMTP_STARTTLS},
};

static enum pst_smtp_verb find_verb(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strlen(verbs[i].name) == n && strncasecmp(s, verbs[i].name, n) == 0)
            return verbs[i].verb;
    return PST_SMTP_UNKNOWN;
}

int pst_smtp_cmd_parse(const char *line, size_t len, struct pst_smtp_cmd *cmd,
                       struct pst_smtp_perr *why)
{
    struct pst_smtp_cmd c;
    struct arena a = {0};
    int rc;

    if (line == NULL || len == 0)
        return E_UNRECOGNIZED(why);
    if (len > CMD_MAX_LINE)
        return refuse(why, PST_ERR_TOOBIG, 500, "5.5.2", "Line too long");
    if (memchr(line, '\0', len) != NULL)
        return refuse(why, PST_ERR_NUL, 500, "5.5.2", "NUL octet in command");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        /* RFC 5321 4.1.2: no control characters in commands; HTAB is kept
         * for free-text arguments such as NOOP's */
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return refuse(why, PST_ERR_SYNTAX, 500, "5.5.2", "Control character in command");
    }
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--; /* the trailing-blank leniency */

    size_t vlen = 0;
    while (vlen < len && line[vlen] != ' ')
        vlen++;
    memset(&c, 0, sizeof(c));
    c.verb = find_verb(line, vlen);
    if (c.verb == PST_SMTP_UNKNOWN)
        return E_UNRECOGNIZED(why);
    const char *arg = vlen < len ? line + vlen + 1 : NULL;
    size_t alen = vlen < len ? len - vlen - 1 : 0;

    /* Every kept string is a copy of part of the line; five copies plus
     * their NULs bound them all (arg, path, local, domain, params). */
    a.cap = 5 * (len + 1) + 2 * PST_SMTP_MAX_PARAMS + 16;
    a.base = malloc(a.cap);
    if (a.base == NULL)
        return refuse(why, PST_ERR_NOMEM, 451, "4.3.0", "Out of memory");

    switch (c.verb) {
    case PST_SMTP_EHLO:
    case PST_SMTP_HELO:
        rc = parse_hello(arg, alen, &a, &c, why);
        break;
    case PST_SMTP_MAIL:
    case PST_SMTP_RCPT:
        rc = arg == NULL
                 ? E_ARGS(why, c.verb == PST_SMTP_MAIL ? "Syntax: MAIL FROM:<address> [parameters]"
                                                       : "Syntax: RCPT TO:<address> [parameters]")
                 : parse_mail_rcpt(arg, alen, &a, &c, why);
        break;
    case PST_SMTP_BDAT:
        rc = parse_bdat(arg, alen, &c, why);
        break;
    case PST_SMTP_DATA:     /* RFC 5321 4.1.1.4 */
    case PST_SMTP_RSET:     /* RFC 5321 4.1.1.5 */
    case PST_SMTP_QUIT:     /* RFC 5321 4.1.1.10 */
    case PST_SMTP_STARTTLS: /* RFC 3207 4 */
        rc = arg != NULL ? E_ARGS(why, "No parameters allowed") : 0;
        break;
    case PST_SMTP_VRFY: /* RFC 5321 4.1.1.6: "VRFY" SP String */
    case PST_SMTP_EXPN: /* RFC 5321 4.1.1.7 */
    case PST_SMTP_AUTH: /* RFC 4954 4: a mechanism is required */
        if (arg == NULL || alen == 0) {
            rc = E_ARGS(why, "Argument required");
            break;
        }
        /* FALLTHROUGH */
    case PST_SMTP_NOOP: /* RFC 5321 4.1.1.9: a parameter string is ignored */
    case PST_SMTP_HELP: /* RFC 5321 4.1.1.8 */
        if (arg != NULL)
            c.arg = arena_dup(&a, arg, alen);
        rc = 0;
        break;
    default:
        rc = E_UNRECOGNIZED(why);
        break;
    }
    if (rc < 0) {
        free(a.base);
        return rc;
    }
    c.storage = a.base;
    *cmd = c;
    return 0;
}

void pst_smtp_cmd_clear(struct pst_smtp_cmd *cmd)
{
    if (cmd == NULL)
        return;
    free(cmd->storage);
    memset(cmd, 0, sizeof(*cmd));
}

/* ---- MAIL and RCPT parameters ---- */

static int parse_size(const char *v, uint64_t *out)
{
    uint64_t n = 0;
    size_t i = 0;
    if (v == NULL || v[0] == '\0')
        return -1;
    /* RFC 1870 3: size-value ::= 1*20DIGIT */
    for (; v[i] != '\0'; i++) {
        if (!is_digit((unsigned char)v[i]) || i == 20)
            return -1;
        unsigned d = (unsigned)(v[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

#define E_DSN(w, m) refuse(w, PST_ERR_SYNTAX, 501, "5.5.4", m) /* RFC 3461 5.1 */

int pst_smtp_mail_params(const struct pst_smtp_cmd *cmd, struct pst_smtp_mail_params *out,
                         struct pst_smtp_perr *why)
{
    return pst_smtp_mail_params_dsn(cmd, 0, out, why);
}

int pst_smtp_mail_params_dsn(const struct pst_smtp_cmd *cmd, int dsn_offered,
                             struct pst_smtp_mail_params *out, struct pst_smtp_perr *why)
{
    struct pst_smtp_mail_params mp = {0};
    int seen_size = 0, seen_body = 0, seen_ret = 0, seen_envid = 0;
    const char *reason = NULL;

    if (cmd->verb != PST_SMTP_MAIL)
        return refuse(why, PST_ERR_INVAL, 503, "5.5.1", "Not a MAIL command");
    for (size_t i = 0; i < cmd->nparams; i++) {
        const struct pst_smtp_param *p = &cmd->params[i];
        if (strcmp(p->keyword, "SIZE") == 0) {
            if (seen_size)
                return E_PARAM(why, "Duplicate SIZE parameter");
            seen_size = 1;
            if (parse_size(p->value, &mp.size) < 0)
                return E_PARAM(why, "Malformed SIZE parameter");
        } else if (strcmp(p->keyword, "BODY") == 0) {
            /* RFC 6152 2: BODY=7BIT / BODY=8BITMIME (BINARYMIME is not
             * offered) */
            if (seen_body)
                return E_PARAM(why, "Duplicate BODY parameter");
            seen_body = 1;
            if (p->value != NULL && strcasecmp(p->value, "8BITMIME") == 0)
                mp.body_8bit = 1;
            else if (p->value == NULL || strcasecmp(p->value, "7BIT") != 0)
                return E_PARAM(why, "Unsupported BODY type");
        } else if (strcmp(p->keyword, "SMTPUTF8") == 0) {
            /* RFC 6531 3.4: it MUST NOT have a value */
            if (mp.smtputf8)
                return E_PARAM(why, "Duplicate SMTPUTF8 parameter");
            if (p->value != NULL)
                return E_PARAM(why, "SMTPUTF8 takes no value");
            mp.smtputf8 = 1;
        } else if (dsn_offered && strcmp(p->keyword, "RET") == 0) {
            /* RFC 3461 4.3, 4.5: once, FULL or HDRS */
            if (seen_ret)
                return E_DSN(why, "Duplicate RET parameter");
            seen_ret = 1;
            if (pst_dsn_parse_ret(p->value, &mp.ret, &reason) < 0)
                return E_DSN(why, reason);
        } else if (dsn_offered && strcmp(p->keyword, "ENVID") == 0) {
            /* RFC 3461 4.4, 4.5: once, xtext; kept as received for
             * relaying (5.2.1 a) */
            if (seen_envid)
                return E_DSN(why, "Duplicate ENVID parameter");
            seen_envid = 1;
            if (pst_dsn_parse_envid(p->value, NULL, &reason) < 0)
                return E_DSN(why, reason);
            memcpy(mp.envid, p->value, strlen(p->value) + 1);
        } else {
            /* RFC 5321 4.1.1.11 */
            return E_PARAM(why, "Unsupported parameter");
        }
    }
    /* RFC 6531 3.5: a MAIL command that needs SMTPUTF8 without asking for
     * it gets 550 and X.6.7 */
    if (cmd->path_utf8 && !mp.smtputf8)
        return refuse(why, PST_ERR_SYNTAX, 550, "5.6.7", "Non-ASCII address without SMTPUTF8");
    *out = mp;
    return 0;
}

int pst_smtp_rcpt_params(const struct pst_smtp_cmd *cmd, int smtputf8, struct pst_smtp_perr *why)
{
    struct pst_smtp_rcpt_params rp;
    return pst_smtp_rcpt_params_dsn(cmd, smtputf8, 0, &rp, why);
}

int pst_smtp_rcpt_params_dsn(const struct pst_smtp_cmd *cmd, int smtputf8, int dsn_offered,
                             struct pst_smtp_rcpt_params *out, struct pst_smtp_perr *why)
{
    struct pst_smtp_rcpt_params rp = {0};
    int seen_notify = 0, seen_orcpt = 0;
    const char *reason = NULL;

    if (cmd->verb != PST_SMTP_RCPT)
        return refuse(why, PST_ERR_INVAL, 503, "5.5.1", "Not a RCPT command");
    for (size_t i = 0; i < cmd->nparams; i++) {
        const struct pst_smtp_param *p = &cmd->params[i];
        if (dsn_offered && strcmp(p->keyword, "NOTIFY") == 0) {
            /* RFC 3461 4.1, 4.5: once */
            if (seen_notify)
                return E_DSN(why, "Duplicate NOTIFY parameter");
            seen_notify = 1;
            if (pst_dsn_parse_notify(p->value, &rp.notify, &reason) < 0)
                return E_DSN(why, reason);
        } else if (dsn_offered && strcmp(p->keyword, "ORCPT") == 0) {
            /* RFC 3461 4.2, 4.5: once; kept as received, case and all
             * (5.2.1 d) */
            if (seen_orcpt)
                return E_DSN(why, "Duplicate ORCPT parameter");
            seen_orcpt = 1;
            if (pst_dsn_parse_orcpt(p->value, NULL, NULL, &reason) < 0)
                return E_DSN(why, reason);
            memcpy(rp.orcpt, p->value, strlen(p->value) + 1);
        } else
            return E_PARAM(why, "Unsupported parameter"); /* RFC 5321 4.1.1.11 */
    }
    /* RFC 6531 3.5: RCPT gets 553 and X.6.7 */
    if (cmd->path_utf8 && !smtputf8)
        return refuse(why, PST_ERR_SYNTAX, 553, "5.6.7", "Non-ASCII address without SMTPUTF8");
    *out = rp;
    return 0;
}
