/*
 * cidr.c - address prefixes (see cidr.h).
 */
#include "cidr.h"
#include "err.h"

#include <arpa/inet.h>
#include <string.h>

int pst_cidr_match_bytes(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

int pst_cidr_parse(const char *text, struct pst_cidr *out)
{
    char tmp[64];
    size_t n = strlen(text);
    if (n == 0 || n >= sizeof tmp)
        return PST_ERR_SYNTAX;
    memcpy(tmp, text, n + 1);
    struct pst_cidr c;
    memset(&c, 0, sizeof c);
    char *slash = strchr(tmp, '/');
    if (slash != NULL)
        *slash = '\0';
    if (inet_pton(AF_INET, tmp, c.addr) == 1)
        c.v6 = 0;
    else if (inet_pton(AF_INET6, tmp, c.addr) == 1)
        c.v6 = 1;
    else
        return PST_ERR_SYNTAX;
    unsigned max = c.v6 ? 128 : 32;
    c.bits = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        unsigned v = 0;
        size_t digits = 0;
        for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++)
            v = v * 10 + (unsigned)(*p - '0');
        if (digits == 0 || *p != '\0' || (digits > 1 && slash[1] == '0') || v > max)
            return PST_ERR_SYNTAX;
        c.bits = v;
    }
    /* clear what lies past the prefix, so equal prefixes compare equal */
    for (unsigned i = 0; i < 16; i++) {
        unsigned lo = i * 8;
        if (lo >= c.bits)
            c.addr[i] = 0;
        else if (c.bits - lo < 8)
            c.addr[i] &= (unsigned char)(0xff << (8 - (c.bits - lo)));
    }
    *out = c;
    return 0;
}

int pst_cidr_match_any(const struct pst_cidr *list, size_t n, const char *ip)
{
    unsigned char a[16];
    int v6;
    if (ip == NULL)
        return 0;
    if (inet_pton(AF_INET, ip, a) == 1) {
        v6 = 0;
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        v6 = 1;
        if (memcmp(a, mapped, 12) == 0) {
            memmove(a, a + 12, 4);
            v6 = 0;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i].v6 == v6 && pst_cidr_match_bytes(list[i].addr, a, list[i].bits))
            return 1;
    return 0;
}
