/*
 * dmarc_from.c - the Author Domain (RFC 9989 3.2.2, 5.3.1): the domain of
 * the single mailbox of the single From field. RFC 5322 3.4 (address,
 * mailbox, name-addr, angle-addr, group, addr-spec), 3.2.2 (CFWS, nested
 * comments), 3.2.4 (quoted-string), 3.4.1 (dot-atom, domain-literal), 4.4
 * (obs-route, obs-mbox-list's empty elements, obs-phrase's '.').
 * The parse is linear in the field's length; comment nesting is bounded by
 * PST_DMARC_MAX_COMMENT_DEPTH.
 */
#include <string.h>

#include "dmarc.h"
#include "err.h"
#include "msg.h"

enum tok {
    T_END = 0,
    T_ATOM,   /* 1*atext, '.' included (dot-atom and obs-phrase) */
    T_QUOTED, /* quoted-string */
    T_LITERAL,
    T_SPECIAL, /* one of < > @ , : ; */
    T_ERROR,
};

struct lex {
    const char *p, *end;
    enum tok t;
    const char *s; /* token text (atom) */
    size_t n;
    char c; /* T_SPECIAL */
};

static int is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    if (c >= 0x80)
        return 1; /* RFC 6532 3.2: UTF-8 in atext (refused later in a domain) */
    return strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL && c != '\0';
}

/* Skips CFWS; -1 on an unclosed or too deep comment. */
static int skip_cfws(struct lex *l)
{
    int depth = 0;
    while (l->p < l->end) {
        unsigned char c = (unsigned char)*l->p;
        if (depth > 0 && c == '\\') {
            l->p += (l->p + 1 < l->end) ? 2 : 1;
            continue;
        }
        if (c == '(') {
            if (++depth > PST_DMARC_MAX_COMMENT_DEPTH)
                return -1;
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            break;
        }
        l->p++;
    }
    return depth == 0 ? 0 : -1;
}

static void next(struct lex *l)
{
    if (skip_cfws(l) != 0) {
        l->t = T_ERROR;
        return;
    }
    if (l->p >= l->end) {
        l->t = T_END;
        return;
    }
    unsigned char c = (unsigned char)*l->p;
    l->s = l->p;
    if (c == '"') {
        l->p++;
        while (l->p < l->end && *l->p != '"') {
            if (*l->p == '\\' && l->p + 1 < l->end)
                l->p++;
            l->p++;
        }
        if (l->p >= l->end) {
            l->t = T_ERROR;
            return;
        }
        l->p++;
        l->t = T_QUOTED;
    } else if (c == '[') {
        while (l->p < l->end && *l->p != ']')
            l->p++;
        if (l->p >= l->end) {
            l->t = T_ERROR;
            return;
        }
        l->p++;
        l->t = T_LITERAL;
    } else if (strchr("<>@,:;", c) != NULL) {
        l->p++;
        l->t = T_SPECIAL;
        l->c = (char)c;
    } else if (is_atext(c)) {
        while (l->p < l->end && is_atext((unsigned char)*l->p))
            l->p++;
        l->t = T_ATOM;
    } else {
        l->t = T_ERROR; /* ')' alone, '\\', control characters */
        return;
    }
    l->n = (size_t)(l->p - l->s);
}

static int is_special(const struct lex *l, char c)
{
    return l->t == T_SPECIAL && l->c == c;
}

/*
 * addr-spec after its local-part: "@" domain. The domain's atoms may be
 * split by CFWS around the dots (obs-domain), so they are joined.
 */
static enum pst_dmarc_from parse_domain(struct lex *l, char *dom, size_t domlen)
{
    char buf[PST_DMARC_DOMAIN_MAX + 2];
    size_t n = 0;
    next(l);
    if (l->t == T_LITERAL)
        return PST_DMARC_FROM_BAD_DOMAIN;
    if (l->t != T_ATOM)
        return PST_DMARC_FROM_SYNTAX;
    while (l->t == T_ATOM) {
        if (n + l->n >= sizeof(buf))
            return PST_DMARC_FROM_BAD_DOMAIN;
        memcpy(buf + n, l->s, l->n);
        n += l->n;
        next(l);
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] >= 0x80)
            return PST_DMARC_FROM_BAD_DOMAIN; /* U-label: needs IDNA (5.3.1) */
    if (n > 0 && buf[n - 1] == '.')
        return PST_DMARC_FROM_SYNTAX; /* not a dot-atom */
    if (pst_dmarc_domain_norm(buf, n, dom, domlen) != 0)
        return PST_DMARC_FROM_BAD_DOMAIN;
    return PST_DMARC_FROM_OK;
}

/*
 * One mailbox, the current token being its first. Sets dom on success;
 * leaves the token after the mailbox current.
 */
static enum pst_dmarc_from parse_mailbox(struct lex *l, char *dom, size_t domlen, int in_group)
{
    size_t words = 0;
    while (l->t == T_ATOM || l->t == T_QUOTED) {
        words++;
        next(l);
    }
    if (l->t == T_ERROR)
        return PST_DMARC_FROM_SYNTAX;
    if (is_special(l, '@')) {
        /* addr-spec: local-part is one dot-atom or quoted-string; the
         * obs-local-part forms with CFWS between words are refused */
        if (words != 1)
            return PST_DMARC_FROM_SYNTAX;
        return parse_domain(l, dom, domlen);
    }
    if (is_special(l, '<')) {
        next(l);
        if (is_special(l, '@')) { /* obs-route: "@a,@b:" */
            while (l->t != T_END && l->t != T_ERROR && !is_special(l, ':'))
                next(l);
            if (!is_special(l, ':'))
                return PST_DMARC_FROM_SYNTAX;
            next(l);
        }
        if (is_special(l, '>'))
            return PST_DMARC_FROM_NO_ADDRESS; /* "<>" */
        size_t lw = 0;
        while (l->t == T_ATOM || l->t == T_QUOTED) {
            lw++;
            next(l);
        }
        if (lw != 1 || !is_special(l, '@'))
            return PST_DMARC_FROM_SYNTAX;
        enum pst_dmarc_from r = parse_domain(l, dom, domlen);
        if (r != PST_DMARC_FROM_OK)
            return r;
        if (!is_special(l, '>'))
            return PST_DMARC_FROM_SYNTAX;
        next(l);
        return PST_DMARC_FROM_OK;
    }
    (void)in_group;
    return PST_DMARC_FROM_SYNTAX;
}

int pst_dmarc_from_domain(const char *v, size_t len, char *out, size_t outlen,
                          enum pst_dmarc_from *res)
{
    struct lex l = {.p = v, .end = v + len};
    char dom[PST_DMARC_DOMAIN_MAX];
    size_t count = 0;
    enum pst_dmarc_from r = PST_DMARC_FROM_OK;

    if (v == NULL || out == NULL) {
        r = PST_DMARC_FROM_SYNTAX;
        goto out;
    }
    next(&l);
    /* address-list with obs-mbox-list's empty elements */
    while (l.t != T_END) {
        if (l.t == T_ERROR) {
            r = PST_DMARC_FROM_SYNTAX;
            goto out;
        }
        if (is_special(&l, ',')) {
            next(&l);
            continue;
        }
        /* group: display-name ":" [group-list] ";" (3.4) */
        struct lex save = l;
        size_t words = 0;
        while (l.t == T_ATOM || l.t == T_QUOTED) {
            words++;
            next(&l);
        }
        if (words > 0 && is_special(&l, ':')) {
            next(&l);
            while (!is_special(&l, ';')) {
                if (l.t == T_END || l.t == T_ERROR) {
                    r = PST_DMARC_FROM_SYNTAX;
                    goto out;
                }
                if (is_special(&l, ',')) {
                    next(&l);
                    continue;
                }
                r = parse_mailbox(&l, dom, sizeof(dom), 1);
                if (r != PST_DMARC_FROM_OK)
                    goto out;
                if (++count > 1) {
                    r = PST_DMARC_FROM_MULTIPLE_ADDRESSES;
                    goto out;
                }
                if (!is_special(&l, ',') && !is_special(&l, ';')) {
                    r = PST_DMARC_FROM_SYNTAX;
                    goto out;
                }
            }
            next(&l);
        } else {
            l = save;
            r = parse_mailbox(&l, dom, sizeof(dom), 0);
            if (r != PST_DMARC_FROM_OK)
                goto out;
            if (++count > 1) {
                r = PST_DMARC_FROM_MULTIPLE_ADDRESSES;
                goto out;
            }
        }
        if (l.t != T_END && !is_special(&l, ',')) {
            r = PST_DMARC_FROM_SYNTAX;
            goto out;
        }
    }
    if (count == 0)
        r = PST_DMARC_FROM_NO_ADDRESS;
out:
    if (res != NULL)
        *res = r;
    if (r != PST_DMARC_FROM_OK)
        return r == PST_DMARC_FROM_NO_ADDRESS ? PST_ERR_NOTFOUND : PST_ERR_SYNTAX;
    size_t dl = strlen(dom);
    if (dl + 1 > outlen)
        return PST_ERR_TOOBIG;
    memcpy(out, dom, dl + 1);
    return 0;
}

int pst_dmarc_author_domain(const struct pst_msg_header *h, char *out, size_t outlen,
                            enum pst_dmarc_from *res)
{
    const struct pst_msg_field *from = NULL;
    size_t n = 0;
    if (h == NULL) {
        if (res != NULL)
            *res = PST_DMARC_FROM_ABSENT;
        return PST_ERR_INVAL;
    }
    for (size_t i = 0; i < h->nfields; i++)
        if (pst_msg_field_is(&h->fields[i], "From")) {
            from = &h->fields[i];
            n++;
        }
    if (n != 1) {
        /* RFC 5322 3.6: exactly one From; RFC 9989 5.3.1 and 11.5 */
        if (res != NULL)
            *res = n == 0 ? PST_DMARC_FROM_ABSENT : PST_DMARC_FROM_MULTIPLE_FIELDS;
        return n == 0 ? PST_ERR_NOTFOUND : PST_ERR_SYNTAX;
    }
    return pst_dmarc_from_domain(from->value, from->value_len, out, outlen, res);
}

const char *pst_dmarc_from_name(enum pst_dmarc_from f)
{
    switch (f) {
    case PST_DMARC_FROM_OK:
        return "ok";
    case PST_DMARC_FROM_ABSENT:
        return "no From field";
    case PST_DMARC_FROM_MULTIPLE_FIELDS:
        return "more than one From field";
    case PST_DMARC_FROM_NO_ADDRESS:
        return "no address in From";
    case PST_DMARC_FROM_MULTIPLE_ADDRESSES:
        return "more than one address in From";
    case PST_DMARC_FROM_SYNTAX:
        return "From is not an RFC 5322 address list";
    case PST_DMARC_FROM_BAD_DOMAIN:
        return "From domain is not an ASCII DNS name";
    }
    return "?";
}
