/*
 * spf.h - Sender Policy Framework (RFC 7208) without I/O: record parsing,
 * macro expansion and check_host(), asking DNS only through the struct
 * pst_resolver the caller hands in.
 *
 * RFC 7208: record selection 4.5, syntax 4.6 and 12 (ABNF), limits 4.6.4,
 * check_host() 4, mechanisms 5.1-5.7, modifiers 6 (redirect 6.1, exp 6.2),
 * macros 7, identities 2.3/2.4 (HELO, MAIL FROM, the null sender), results
 * 2.6, and RFC 8601 2.7.2 (smtp.mailfrom / smtp.helo).
 *
 * Deviations and choices, each named:
 *  - A record longer than PST_SPF_RECORD_MAX octets is permerror (RFC 7208
 *    3.4 asks records to fit in a 512-octet UDP answer; nothing real comes
 *    close to the cap).
 *  - A macro-string longer than PST_SPF_MACRO_IN_MAX, or an expansion that
 *    passes PST_SPF_MACRO_WORK_MAX before the RFC 7208 7.3 truncation to
 *    253 octets, is permerror: expansion is bounded in time and memory
 *    whatever the record says (libspf2's CVE-2021-20314 and friends).
 *  - The DIGIT transformer 0 is a syntax error (RFC 7208 7.1: "MUST be
 *    nonzero"); more than 3 digits as well (any value over 127 means "all
 *    parts").
 *  - A DNS answer that is FAIL (malformed, CNAME loop) is temperror like
 *    SERVFAIL (RFC 7208 4.4: an RCODE other than 0 or 3).
 *  - A "ptr" DNS error, and a failing A/AAAA lookup of one PTR name, make
 *    the mechanism not match or skip the name (RFC 7208 5.5); they never
 *    give temperror.
 *  - Void lookups (RFC 7208 4.6.4: NXDOMAIN or NODATA) are counted for
 *    every query a term makes: the include/redirect TXT, the a/exists
 *    address, the MX query, each MX host's addresses, the PTR query and each
 *    PTR name's addresses (pyspf counts the same queries).
 *  - The query budget (options.max_queries, default 128: more than the RFC
 *    limits can ever use) is the hard stop for one evaluation; running out
 *    is permerror (it is the record's doing, so retrying cannot help). With
 *    options.timeout_ms per query, the time of an evaluation is bounded by
 *    max_queries * timeout_ms; library code does not read the clock.
 *  - A null MX (RFC 7505, exchange ".") names no host and is skipped.
 *  - The sender's local part is what precedes the last '@'.
 */
#ifndef PST_SPF_H
#define PST_SPF_H

#include <stddef.h>
#include <stdint.h>

struct pst_resolver;

/* ---- limits ------------------------------------------------------------- */

#define PST_SPF_RECORD_MAX     8192  /* octets of one record */
#define PST_SPF_MACRO_IN_MAX   2048  /* octets of one macro-string */
#define PST_SPF_MACRO_WORK_MAX 65536 /* expansion before truncation */
#define PST_SPF_EXP_MAX        1024  /* expanded explanation text */
#define PST_SPF_DOMAIN_MAX     253   /* RFC 7208 7.3 */
#define PST_SPF_SENDER_MAX     512   /* octets of a MAIL FROM address */
#define PST_SPF_REASON_MAX     256   /* reason texts, with the NUL */
#define PST_SPF_MAX_DEPTH      32    /* include/redirect nesting, always */

/* ---- results (RFC 7208 2.6) --------------------------------------------- */

enum pst_spf_result {
    PST_SPF_NONE = 0,
    PST_SPF_NEUTRAL,
    PST_SPF_PASS,
    PST_SPF_FAIL,
    PST_SPF_SOFTFAIL,
    PST_SPF_TEMPERROR,
    PST_SPF_PERMERROR,
};

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror":
 * the words of RFC 7208 2.6 and RFC 8601 2.7.2. */
const char *pst_spf_result_name(enum pst_spf_result r);

enum pst_spf_identity {
    PST_SPF_MAILFROM = 0, /* RFC 7208 2.4 (the null sender: postmaster@HELO) */
    PST_SPF_HELO = 1,     /* RFC 7208 2.3 */
};

/* ---- records (RFC 7208 4.6, 12) ----------------------------------------- */

enum pst_spf_mech {
    PST_SPF_M_ALL,
    PST_SPF_M_INCLUDE,
    PST_SPF_M_A,
    PST_SPF_M_MX,
    PST_SPF_M_PTR,
    PST_SPF_M_IP4,
    PST_SPF_M_IP6,
    PST_SPF_M_EXISTS,
};

/* One directive. domain is the unexpanded domain-spec (NULL: the current
 * domain), cidr4/cidr6 the prefix lengths (32/128 when absent). */
struct pst_spf_term {
    enum pst_spf_mech mech;
    enum pst_spf_result qualifier; /* PASS, FAIL, SOFTFAIL or NEUTRAL */
    char *text;                    /* the directive as written */
    char *domain;
    unsigned char addr[16]; /* ip4: addr[0..3]; ip6 */
    unsigned cidr4, cidr6;
};

struct pst_spf_record {
    struct pst_spf_term *terms;
    size_t nterms;
    char *redirect; /* domain-spec or NULL */
    char *exp;      /* domain-spec or NULL */
    size_t unknown_modifiers;
};

/*
 * Parses one SPF record (the TXT text, "v=spf1 ..."; case-insensitive
 * names) of len octets. The whole record is checked: every term, every
 * macro-string (RFC 7208 4.6: a syntax error anywhere is permerror).
 * Returns 0 and *out (free with pst_spf_record_free), or PST_ERR_SYNTAX /
 * PST_ERR_TOOBIG with the reason in why[0..whylen) (NUL-terminated), or
 * PST_ERR_NOMEM.
 */
int pst_spf_record_parse(const char *txt, size_t len, struct pst_spf_record **out, char *why,
                         size_t whylen);
void pst_spf_record_free(struct pst_spf_record *rec);
/* 1 when txt[0..len) is an SPF record by RFC 7208 4.5 ("v=spf1" then a
 * space or the end, case-insensitive), else 0. */
int pst_spf_is_record(const char *txt, size_t len);

/* ---- macros (RFC 7208 7) ------------------------------------------------ */

/*
 * The values of the macro letters, all borrowed NUL-terminated texts:
 * s sender, l local part, o sender domain, d current domain, i the client
 * address (dotted IPv4, or 32 dotted nibbles for IPv6), h HELO, c the
 * client address in its usual text form, r the receiving host, t the
 * timestamp in decimal, v "in-addr" or "ip6". p is asked only when a macro
 * uses it: p(p_arg, &text) sets a borrowed text or returns a negative
 * PST_ERR_* that the expansion returns. p NULL: "unknown".
 */
struct pst_spf_macro_env {
    const char *s, *l, *o, *d, *i, *h, *c, *r, *t, *v;
    int (*p)(void *p_arg, const char **text);
    void *p_arg;
};

/* What is expanded: a domain-spec (c, r and t refused, a trailing dot
 * dropped, truncated on the left to 253 octets by whole labels, RFC 7208
 * 7.3), or explanation text (spaces allowed, every letter, RFC 7208 6.2). */
enum pst_spf_macro_kind {
    PST_SPF_MACRO_DOMAIN = 0,
    PST_SPF_MACRO_EXP = 1,
};

/* Checks that in[0..len) is a macro-string of kind (RFC 7208 7.1): 0, or
 * PST_ERR_SYNTAX / PST_ERR_TOOBIG with why. */
int pst_spf_macro_check(const char *in, size_t len, enum pst_spf_macro_kind kind, char *why,
                        size_t whylen);

/*
 * Expands in[0..len) with env. Returns 0 and *out (malloc'd, NUL-
 * terminated, at most 253 octets for a domain-spec or PST_SPF_EXP_MAX for
 * an explanation), or PST_ERR_SYNTAX / PST_ERR_TOOBIG with why, the error
 * of env->p, or PST_ERR_NOMEM.
 */
int pst_spf_macro_expand(const char *in, size_t len, enum pst_spf_macro_kind kind,
                         const struct pst_spf_macro_env *env, char **out, char *why, size_t whylen);

/* ---- evaluation (RFC 7208 4) -------------------------------------------- */

/* Limits, RFC 7208 4.6.4 values by pst_spf_options_default(). */
struct pst_spf_options {
    unsigned max_terms;   /* DNS-querying terms (include a mx ptr exists redirect): 10 */
    unsigned max_void;    /* void lookups: 2 */
    unsigned max_mx;      /* MX names per mx term (more: permerror): 10 */
    unsigned max_ptr;     /* PTR names per ptr term (the rest ignored): 10 */
    unsigned max_queries; /* DNS queries per evaluation, all together: 128 */
    unsigned timeout_ms;  /* per query; 0: the resolver's default */
    const char *receiver; /* %{r}: this host's domain; NULL: "unknown" */
    long long now;        /* %{t}: seconds since the epoch */
};
void pst_spf_options_default(struct pst_spf_options *o);

/* What an evaluation found; everything in it is owned by it. */
struct pst_spf_verdict {
    enum pst_spf_result result;
    enum pst_spf_identity identity;
    char *sender;      /* <sender> of check_host: postmaster@HELO for the null sender */
    char *domain;      /* <domain> checked first (the sender's, or the HELO) */
    char *mechanism;   /* the directive that matched (at the top level), or NULL */
    char *explanation; /* fail only, from exp= (RFC 7208 6.2); NULL when none */
    char *reason;      /* always set: why, in one line */
    unsigned terms;    /* DNS-querying terms evaluated */
    unsigned voids;    /* void lookups */
    unsigned queries;  /* DNS queries asked */
};

/*
 * check_host() for one identity (RFC 7208 4): ip is the client address as
 * text (IPv4, IPv6, IPv4-mapped IPv6 taken as IPv4); for PST_SPF_MAILFROM
 * sender is the MAIL FROM address without angle brackets ("" for the null
 * sender, then postmaster@helo is checked, RFC 7208 2.4); for
 * PST_SPF_HELO sender is ignored and postmaster@helo checked (RFC 7208
 * 2.3). helo may be NULL for MAIL FROM with a sender. o NULL: defaults.
 *
 * Returns 0 and *out whatever the SPF result (temperror and permerror are
 * results), or PST_ERR_INVAL (ip is not an address, the identity is
 * missing or longer than PST_SPF_SENDER_MAX), or PST_ERR_NOMEM.
 * Blocking: asks r synchronously (call it from a worker, not a loop).
 */
int pst_spf_check(struct pst_resolver *r, const struct pst_spf_options *o, enum pst_spf_identity id,
                  const char *ip, const char *sender, const char *helo,
                  struct pst_spf_verdict **out);
void pst_spf_verdict_free(struct pst_spf_verdict *v);

/* For Authentication-Results (RFC 8601 2.7.2): "smtp.mailfrom" or
 * "smtp.helo", and the value: the sender address (postmaster@HELO for the
 * null sender), or the HELO name. Borrowed from v. */
const char *pst_spf_ar_property(const struct pst_spf_verdict *v);
const char *pst_spf_ar_value(const struct pst_spf_verdict *v);

#endif
