/*
 * psl.h - the Public Suffix List (libpsl) behind the function-pointer
 * interface of lib/core/dmarc (struct pst_dmarc_psl), for RFC 7489's
 * Organizational Domain (RFC 7489 3.2) when the configuration asks for it
 * instead of RFC 9989's DNS Tree Walk.
 */
#ifndef PST_PSL_H
#define PST_PSL_H

#include <stddef.h>

#include "dmarc.h"

struct pst_psl;

/*
 * Loads a list: path NULL means the newest of libpsl's built-in data and
 * Debian's /usr/share/publicsuffix (psl_latest); otherwise a file in the
 * PSL's text or DAFSA form. PST_ERR_IO with the reason in err when it
 * cannot be loaded, PST_ERR_NOMEM.
 */
int pst_psl_open(const char *path, struct pst_psl **out, char *err, size_t errlen);
void pst_psl_free(struct pst_psl *p);

/* The interface for struct pst_dmarc_opts.psl; borrowed from p, valid
 * until pst_psl_free(p). */
const struct pst_dmarc_psl *pst_psl_dmarc(struct pst_psl *p);

/*
 * The registrable domain of domain (RFC 7489 3.2: the public suffix and
 * one more label), lower case without a trailing dot, into out. 0,
 * PST_ERR_NOTFOUND (domain is a public suffix, or not under one),
 * PST_ERR_SYNTAX, PST_ERR_TOOBIG (outlen).
 */
int pst_psl_registrable(struct pst_psl *p, const char *domain, char *out, size_t outlen);

#endif
