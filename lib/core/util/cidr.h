/*
 * cidr.h - address prefixes ("192.0.2.0/24", "2001:db8::/32", a bare
 * address meaning the whole address) and matching client addresses
 * against them: the daemon's allow-lists, and SPF's ip4/ip6/a/mx terms.
 * An IPv4-mapped IPv6 client (::ffff:192.0.2.1) matches IPv4 prefixes.
 */
#ifndef PST_CIDR_H
#define PST_CIDR_H

#include <stddef.h>

struct pst_cidr {
    int v6;                 /* 0: IPv4 (addr[0..3]), 1: IPv6 */
    unsigned char addr[16]; /* bits past the prefix are zero */
    unsigned bits;          /* 0..32 or 0..128 */
};

/* Parses "ADDR" or "ADDR/BITS". 0, or PST_ERR_SYNTAX. */
int pst_cidr_parse(const char *text, struct pst_cidr *out);
/* 1 when the first bits bits of a and b are equal. */
int pst_cidr_match_bytes(const unsigned char *a, const unsigned char *b, unsigned bits);
/* 1 when the address text ip lies in one of the n prefixes, else 0 (also
 * for text that is not an address). */
int pst_cidr_match_any(const struct pst_cidr *list, size_t n, const char *ip);

#endif
