/*
 * dns_rdata.c - bounded decoders for DNS wire format: domain names (RFC
 * 1035 3.1, 4.1.4) and the rdata of A, AAAA, TXT, MX, TLSA, PTR and CNAME
 * (RFC 1035 3.3-3.4, RFC 3596 2.2, RFC 6698 2.1). No I/O, no clock.
 *
 * Every read is checked against the end of its input first. Limits: a
 * name is at most 255 octets on the wire and labels at most 63 (RFC 1035
 * 2.3.4); a compression pointer must point strictly before the label run
 * it was found in, so following pointers always ends; rdata names must be
 * uncompressed (see dns.h). Deliberate strictness: A and AAAA rdata of any
 * other length, octets left after an MX exchange, a TXT rdata without a
 * character-string and TLSA without association data are refused rather
 * than guessed at.
 */
#include "dns.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

/* Octets a name keeps as they are in its text form (letters are folded). */
static int name_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '*' ||
           c == '/';
}

struct textout {
    char *p;
    size_t len, cap;
    int over;
};

static void put(struct textout *t, char c)
{
    if (t->len + 1 >= t->cap) {
        t->over = 1;
        return;
    }
    t->p[t->len++] = c;
    t->p[t->len] = '\0';
}

static void put_label(struct textout *t, const uint8_t *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = l[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (name_plain(c)) {
            put(t, (char)c);
        } else {
            put(t, '\\');
            put(t, (char)('0' + c / 100));
            put(t, (char)('0' + c / 10 % 10));
            put(t, (char)('0' + c % 10));
        }
    }
    put(t, '.');
}

/*
 * The one name reader: msg[0..msglen), name at off. compress allows
 * pointers. On success out holds the text, *next the offset after the
 * name's first segment.
 */
static int read_name(const uint8_t *msg, size_t msglen, size_t off, int compress, size_t *next,
                     char *out, size_t outlen, const char **why)
{
    struct textout t = {out, 0, outlen, 0};
    size_t pos = off, seg = off, wire = 0, end = 0;
    int jumped = 0;

    if (outlen == 0) {
        *why = "no room for the name";
        return PST_ERR_TOOBIG;
    }
    out[0] = '\0';
    for (;;) {
        if (pos >= msglen) {
            *why = "name runs past the end";
            return PST_ERR_SYNTAX;
        }
        uint8_t l = msg[pos];
        if ((l & 0xc0) == 0xc0) {
            if (!compress) {
                *why = "compression pointer where the name must be uncompressed";
                return PST_ERR_SYNTAX;
            }
            if (pos + 1 >= msglen) {
                *why = "compression pointer runs past the end";
                return PST_ERR_SYNTAX;
            }
            size_t target = ((size_t)(l & 0x3f) << 8) | msg[pos + 1];
            /* strictly before this run of labels: every jump goes back,
             * so there can be no loop (RFC 1035 4.1.4 says "prior") */
            if (target >= seg) {
                *why = "compression pointer does not point backwards";
                return PST_ERR_SYNTAX;
            }
            if (!jumped)
                end = pos + 2;
            jumped = 1;
            pos = seg = target;
            continue;
        }
        if (l & 0xc0) {
            *why = "reserved label type";
            return PST_ERR_SYNTAX;
        }
        wire += (size_t)l + 1;
        if (wire > PST_DNS_NAME_WIRE_MAX) {
            *why = "name longer than 255 octets";
            return PST_ERR_SYNTAX;
        }
        if (l == 0) {
            pos++;
            break;
        }
        if (l > msglen - pos - 1) {
            *why = "label runs past the end";
            return PST_ERR_SYNTAX;
        }
        put_label(&t, msg + pos + 1, l);
        pos += (size_t)l + 1;
    }
    if (t.len == 0)
        put(&t, '.');
    if (t.over) {
        *why = "no room for the name";
        return PST_ERR_TOOBIG;
    }
    *next = jumped ? end : pos;
    return 0;
}

int pst_dns_name_from_wire(const uint8_t *p, size_t len, size_t *used, char *out, size_t outlen,
                           const char **why)
{
    const char *w = NULL;
    size_t next;
    int rc = read_name(p, len, 0, 0, &next, out, outlen, &w);
    if (rc != 0) {
        if (why != NULL)
            *why = w;
        return rc;
    }
    *used = next;
    return 0;
}

int pst_dns_name_unpack(const uint8_t *msg, size_t msglen, size_t off, size_t *next, char *out,
                        size_t outlen, const char **why)
{
    const char *w = NULL;
    size_t n;
    int rc = read_name(msg, msglen, off, 1, &n, out, outlen, &w);
    if (rc != 0) {
        if (why != NULL)
            *why = w;
        return rc;
    }
    *next = n;
    return 0;
}

int pst_dns_name_to_wire(const char *text, uint8_t wire[PST_DNS_NAME_WIRE_MAX], size_t *len)
{
    uint8_t buf[PST_DNS_NAME_WIRE_MAX];
    size_t n = 0, lstart = 0; /* lstart: index of the current label's length octet */
    const char *s = text;

    if (text == NULL || text[0] == '\0')
        return PST_ERR_SYNTAX;
    if (strcmp(text, ".") == 0) {
        wire[0] = 0;
        *len = 1;
        return 0;
    }
    buf[n++] = 0;
    while (*s != '\0') {
        unsigned c = (unsigned char)*s;
        if (c == '.') {
            if (n - lstart - 1 == 0)
                return PST_ERR_SYNTAX; /* empty label */
            s++;
            if (*s == '\0')
                break;
            if (n >= sizeof buf)
                return PST_ERR_SYNTAX;
            lstart = n;
            buf[n++] = 0;
            continue;
        }
        if (c <= 0x20 || c >= 0x7f)
            return PST_ERR_SYNTAX;
        if (c == '\\') {
            s++;
            if (s[0] >= '0' && s[0] <= '9') {
                if (!(s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'))
                    return PST_ERR_SYNTAX;
                c = (unsigned)(s[0] - '0') * 100 + (unsigned)(s[1] - '0') * 10 +
                    (unsigned)(s[2] - '0');
                if (c > 255)
                    return PST_ERR_SYNTAX;
                s += 3;
            } else if ((unsigned char)s[0] > 0x20 && (unsigned char)s[0] < 0x7f) {
                c = (unsigned char)*s++;
            } else {
                return PST_ERR_SYNTAX;
            }
        } else {
            s++;
        }
        if (n - lstart - 1 >= PST_DNS_LABEL_MAX || n >= sizeof buf)
            return PST_ERR_SYNTAX;
        buf[n++] = (uint8_t)c;
        buf[lstart] = (uint8_t)(n - lstart - 1);
    }
    if (n - lstart - 1 == 0)
        return PST_ERR_SYNTAX;
    if (n >= sizeof buf)
        return PST_ERR_SYNTAX; /* no room for the root label */
    buf[n++] = 0;
    memcpy(wire, buf, n);
    *len = n;
    return 0;
}

int pst_dns_name_normalize(const char *text, char *out, size_t outlen)
{
    uint8_t wire[PST_DNS_NAME_WIRE_MAX];
    size_t len, used;
    const char *why;

    int rc = pst_dns_name_to_wire(text, wire, &len);
    if (rc != 0)
        return rc;
    return pst_dns_name_from_wire(wire, len, &used, out, outlen, &why);
}

int pst_dns_name_in(const char *name, const char *zone)
{
    size_t n = strlen(name), z = strlen(zone);

    if (strcmp(zone, ".") == 0)
        return 1;
    if (n < z || strcmp(name + n - z, zone) != 0)
        return 0;
    return n == z || name[n - z - 1] == '.';
}

/* ---- rdata -------------------------------------------------------------- */

void pst_dns_rr_clear(struct pst_dns_rr *rr)
{
    if (rr == NULL)
        return;
    free(rr->name);
    free(rr->data);
    memset(rr, 0, sizeof *rr);
}

/* A name that must fill the rest of the rdata. */
static int rdata_name(const uint8_t *p, size_t len, char **out, const char **why)
{
    char text[PST_DNS_NAME_TEXT_MAX];
    size_t used;
    int rc = pst_dns_name_from_wire(p, len, &used, text, sizeof text, why);

    if (rc != 0)
        return rc;
    if (used != len) {
        *why = "octets after the name";
        return PST_ERR_SYNTAX;
    }
    *out = strdup(text);
    return *out != NULL ? 0 : PST_ERR_NOMEM;
}

static int copy_data(const uint8_t *p, size_t len, struct pst_dns_rr *rr)
{
    rr->data = malloc(len + 1);
    if (rr->data == NULL)
        return PST_ERR_NOMEM;
    if (len > 0)
        memcpy(rr->data, p, len);
    rr->data[len] = '\0';
    rr->len = len;
    return 0;
}

/* RFC 1035 3.3.14: one or more <character-string>s (3.3: a length octet
 * and that many octets), joined as RFC 7208 3.3 and RFC 6376 3.6.2.2 do. */
static int rdata_txt(const uint8_t *p, size_t len, struct pst_dns_rr *rr, const char **why)
{
    size_t total = 0, off = 0;

    if (len == 0) {
        *why = "no character-string";
        return PST_ERR_SYNTAX;
    }
    while (off < len) {
        size_t l = p[off];
        if (l > len - off - 1) {
            *why = "character-string runs past the end";
            return PST_ERR_SYNTAX;
        }
        total += l;
        off += l + 1;
    }
    rr->data = malloc(total + 1);
    if (rr->data == NULL)
        return PST_ERR_NOMEM;
    for (off = 0; off < len; off += (size_t)p[off] + 1) {
        memcpy(rr->data + rr->len, p + off + 1, p[off]);
        rr->len += p[off];
    }
    rr->data[rr->len] = '\0';
    return 0;
}

int pst_dns_rdata_decode(uint16_t type, const uint8_t *rdata, size_t len, struct pst_dns_rr *rr,
                         const char **why)
{
    const char *w = "malformed";
    int rc;

    memset(rr, 0, sizeof *rr);
    rr->type = type;
    switch (type) {
    case PST_DNS_A:
    case PST_DNS_AAAA: {
        size_t want = type == PST_DNS_A ? 4 : 16;
        if (len != want) {
            w = type == PST_DNS_A ? "A rdata is not 4 octets" : "AAAA rdata is not 16 octets";
            rc = PST_ERR_SYNTAX;
            break;
        }
        memcpy(rr->addr, rdata, want);
        rc = 0;
        break;
    }
    case PST_DNS_TXT:
        rc = rdata_txt(rdata, len, rr, &w);
        break;
    case PST_DNS_MX:
        if (len < 3) {
            w = "shorter than a preference and a name";
            rc = PST_ERR_SYNTAX;
            break;
        }
        rr->preference = (uint16_t)(rdata[0] << 8 | rdata[1]);
        rc = rdata_name(rdata + 2, len - 2, &rr->name, &w);
        break;
    case PST_DNS_TLSA:
        if (len < 4) {
            w = len < 3 ? "shorter than usage, selector and matching type"
                        : "no certificate association data";
            rc = PST_ERR_SYNTAX;
            break;
        }
        rr->usage = rdata[0];
        rr->selector = rdata[1];
        rr->mtype = rdata[2];
        rc = copy_data(rdata + 3, len - 3, rr);
        break;
    case PST_DNS_PTR:
    case PST_DNS_CNAME:
        rc = rdata_name(rdata, len, &rr->name, &w);
        break;
    default:
        w = "type not supported";
        rc = PST_ERR_UNSUPPORTED;
        break;
    }
    if (rc != 0) {
        pst_dns_rr_clear(rr);
        if (why != NULL)
            *why = w;
    }
    return rc;
}
