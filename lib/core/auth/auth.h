/*
 * auth.h - the authentication checks of one received message, together:
 * SPF for the MAIL FROM and HELO identities (RFC 7208), DKIM verification of every
 * signature (RFC 6376), DMARC evaluation of the author domain (RFC 9989)
 * from those two, and the Authentication-Results field that reports them
 * (RFC 8601). The daemon runs this on its check pool before it answers the
 * end of data; `postern auth` runs the same on a message from stdin, so the
 * two can never disagree.
 *
 * Use: pst_auth_start() with the SMTP facts and the header section (SPF is
 * evaluated there, and DKIM starts), pst_auth_body() with the body in
 * pieces, pst_auth_finish() (DKIM keys are fetched, then DMARC), then read
 * the results, pst_auth_header() and pst_auth_summary(). Everything blocks
 * on the resolver it is given: call it from a worker thread.
 *
 * Each check has its own DNS budget (SPF: the options' max_queries; DKIM:
 * two queries more than the signatures verified; DMARC: the tree walk's
 * eight plus as many again for alignment), so one check cannot starve the
 * others.
 */
#ifndef PST_AUTH_H
#define PST_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "dkim.h"
#include "dmarc.h"
#include "spf.h"

struct pst_buf;

struct pst_auth_opts {
    struct pst_resolver *resolver;         /* borrowed, required */
    const char *authserv_id;               /* required for pst_auth_header */
    int64_t now;                           /* seconds since the epoch */
    unsigned timeout_ms;                   /* per DNS query; 0: the default */
    int no_spf, no_dkim, no_dmarc;         /* checks to leave out */
    const struct pst_spf_options *spf;     /* NULL: the RFC defaults */
    size_t dkim_max_sigs;                  /* 0: PST_DKIM_MAX_SIGS */
    struct pst_dkim_keycache *dkim_cache;  /* borrowed, NULL: none */
    enum pst_dmarc_orgmode dmarc_mode;     /* 0: tree walk */
    const struct pst_dmarc_psl *dmarc_psl; /* for PST_DMARC_PSL */
};

/* What the SMTP session knew: the client address (text), the HELO name
 * (NULL when none) and the MAIL FROM address without <> ("" for the null
 * sender). */
struct pst_auth_in {
    const char *ip;
    const char *helo;
    const char *mailfrom;
};

struct pst_auth;

/*
 * Starts the checks of a message whose header section is hdr[0..len), up
 * to and including the CRLF of its last field (without the empty line).
 * SPF runs here. Returns 0 and *out, or PST_ERR_INVAL (missing resolver or
 * ip), PST_ERR_NOMEM. A header section that does not split is not an
 * error: DKIM and DMARC then report permerror with the reason.
 */
int pst_auth_start(const struct pst_auth_opts *o, const struct pst_auth_in *in, const char *hdr,
                   size_t len, struct pst_auth **out);
/* The body, in pieces of any size (for the DKIM body hashes). */
void pst_auth_body(struct pst_auth *a, const char *p, size_t n);
/* DKIM verification ends (key lookups), then DMARC. 0 or PST_ERR_NOMEM. */
int pst_auth_finish(struct pst_auth *a);
void pst_auth_free(struct pst_auth *a);

/* The results, borrowed from a: NULL when the check was left out (or, for
 * DMARC, not finished). */
const struct pst_spf_verdict *pst_auth_spf(const struct pst_auth *a);
/* SPF for the HELO identity (RFC 7208 2.3), checked when the HELO name is a
 * domain and the MAIL FROM is not null; NULL otherwise. Reported in
 * Authentication-Results; DMARC uses the MAIL FROM result only (RFC 9989
 * 4.4.2). */
const struct pst_spf_verdict *pst_auth_spf_helo(const struct pst_auth *a);
const struct pst_dkim_verdict *pst_auth_dkim(const struct pst_auth *a, size_t *n, size_t *skipped);
const struct pst_dmarc_eval *pst_auth_dmarc(const struct pst_auth *a);

/* What the author domain's policy asks for the message (RFC 9989 5.3,
 * after t=y): DELIVER (pass, none, permerror, or p=none), QUARANTINE,
 * REJECT, or TEMPFAIL when DMARC could not be decided for a DNS error
 * (the receiver's choice: RFC 9989 5.3 step 6 and 8.3). The daemon's
 * configuration may soften it (reject as quarantine, temperror as
 * deliver, an allow-listed source). */
enum pst_auth_disposition {
    PST_AUTH_DELIVER = 0,
    PST_AUTH_QUARANTINE,
    PST_AUTH_REJECT,
    PST_AUTH_TEMPFAIL,
};
enum pst_auth_disposition pst_auth_disposition(const struct pst_auth *a);
/* "deliver", "quarantine", "reject", "tempfail" */
const char *pst_auth_disposition_name(enum pst_auth_disposition d);

/* Appends the Authentication-Results field (name to CRLF) to out. */
int pst_auth_header(const struct pst_auth *a, struct pst_buf *out);
/* Appends a one-line summary in RFC 8601 words for logs:
 * "spf=pass smtp.mailfrom=...; dkim=pass header.d=...; dmarc=pass ...". */
int pst_auth_summary(const struct pst_auth *a, struct pst_buf *out);

#endif
