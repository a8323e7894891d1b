/*
 * dsn_int.h - helpers shared by dsn_params.c and dsn.c; not a public
 * header (others include dsn.h only).
 */
#ifndef PST_DSN_INT_H
#define PST_DSN_INT_H

#include <stddef.h>

#include "buf.h"

/* One UTF-8 character at s (n >= 1 octets left): sets *cp to its code
 * point and returns its length; an invalid sequence gives 1 and U+FFFD
 * (RFC 3629 4: no overlong forms, surrogates or values past U+10FFFF). */
size_t pst_dsn_utf8_next(const unsigned char *s, size_t n, unsigned long *cp);

/* Appends addr in the RFC 6533 3 utf-8-addr-xtext form: printable ASCII
 * but "+", "=" and "\" as itself, every other character as "\x{HEX}"
 * (upper-case hex, at least two digits). All or nothing. */
int pst_dsn_utf8_addr_xtext(struct pst_buf *out, const char *addr);

#endif
