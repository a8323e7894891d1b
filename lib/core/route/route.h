/*
 * route.h - where to deliver a domain's mail (RFC 5321 5.1), the relay
 * host ("smarthost") syntax, and the retry schedule of the queue.
 *
 * No I/O: DNS goes through the struct pst_resolver the caller hands in
 * (pst_dns_query with its budget), randomness and time are arguments.
 *
 * Planning a domain (pst_route_plan), RFC 5321 5.1 and RFC 7505:
 *  1. MX lookup of the domain (CNAMEs followed by the resolver).
 *     NXDOMAIN           permanent, 5.1.2 (RFC 5321 5.1: "MUST be
 *                        reported as an error")
 *     RETRY              temporary, 4.4.3 (RFC 5321 5.1: queue and retry)
 *     FAIL (malformed)   permanent, 5.4.4 (dns.h: FAIL is permanent)
 *     NODATA             the implicit MX: the domain itself, preference 0
 *     one MX "."         null MX (RFC 7505 3): permanent, 5.1.10 (RFC 7505
 *                        4.2 registers X.1.10 "Recipient address has null
 *                        MX")
 *  2. Equal preferences in a random order (RFC 5321 5.1: "MUST randomize
 *     them"), from options.seed: the same seed gives the same order.
 *  3. Our own names (options.local_names): when one of them is an MX, that
 *     MX and all with the same or a higher preference value are dropped
 *     (RFC 5321 5.1); none left: permanent, 5.4.6 "mail for DOMAIN loops
 *     back to myself". The implicit MX counts as an MX here.
 *  4. THE POLICY HOOK: options.allow_mx(allow_arg, mx) is asked for every
 *     MX left, in order; an MX it refuses is dropped. MTA-STS (RFC 8461
 *     4.1, "mx" patterns) and later DANE policies plug in here; the name is
 *     kept on every target (pst_route_target.mx) so the delivery code can
 *     check a certificate against it, and pst_route.mx_dnssec tells
 *     whether the MX answer was DNSSEC-validated (RFC 7672 2.2.1). Whether
 *     TLS must be verified is the policy's business, not this module's
 *     (an MTA-STS "testing" policy allows every MX and only reports).
 *     Every MX refused: temporary, 4.7.0 (RFC 8461 5: "MTAs SHOULD treat
 *     such failures as transient errors").
 *  5. At most options.max_mx MX hosts, in this order.
 *  6. Each host's A and/or AAAA records (options.families), interleaved
 *     host by host starting with options.prefer (RFC 8305 4), at most
 *     options.max_addrs per host, at most options.max_targets targets in
 *     all; an address already listed (two MX names, one address) is not
 *     listed again. A host without any address (NXDOMAIN, NODATA, FAIL,
 *     RETRY for every family asked) is skipped and named in the result's
 *     reason. Every host skipped: temporary (4.4.3 when a lookup said
 *     RETRY, 4.4.4 otherwise) with the reasons; for the implicit MX,
 *     NXDOMAIN/NODATA on every family is permanent (5.4.4, RFC 5321 5.1:
 *     "the implicit MX is unusable").
 *  The DNS query budget: running out stops the planning; the targets found
 *  so far are the result (truncated = 1), or temporary 4.4.3 when none.
 *
 * Deviations and choices, each named:
 *  - An MX host named twice is used once, at its best preference.
 *  - A "." exchange next to other MX records (RFC 7505 3 forbids that) is
 *    dropped and the others are used; a single "." of any preference, or
 *    several with nothing else, is a null MX (there is no host to try
 *    either way).
 *  - "Our own names" are names only: RFC 5321 5.1 also speaks of the
 *    addresses we are known by; the daemon checks the connected address
 *    itself.
 *  - Every MX host skipped is temporary, not permanent (RFC 5321 5.1 says
 *    "error"): a missing address record is more often a DNS hiccup or a
 *    half-done migration than a final state, and the queue lifetime ends
 *    the retries anyway.
 *  - Address literals ("[192.0.2.1]", "[IPv6:2001:db8::1]", RFC 5321
 *    4.1.3) as the domain are planned without DNS: one target.
 *  - Addresses no connection can go to are dropped: IPv4 0/8 (a connection
 *    to 0.0.0.0 reaches the local host, RFC 1122 3.2.1.3), multicast,
 *    240/4 and broadcast, IPv6 :: and multicast. Loopback and private
 *    ranges are kept: tests deliver to 127.0.0.x, and refusing them is the
 *    daemon's configuration.
 *
 * Relay hosts (pst_route_relay_parse), as Postfix writes them:
 *   "[host]" "[host]:port"     the host's addresses, no MX lookup
 *   "[192.0.2.1]" "[IPv6:2001:db8::1]:587" "[2001:db8::1]"   an address
 *   "host" "host:port"         the MX records of host (then its addresses)
 * Strict: the host is an LDH name (RFC 1123 2.1, letters, digits, hyphens
 * inside labels, an optional final dot), ports are decimal 1..65535, no
 * spaces; an address without brackets is refused (an MX lookup of an
 * address means nothing), and so is an address no connection can go to
 * (0.0.0.0, ::, multicast).
 *
 * Backoff (backoff.c): the retry schedule, the queue lifetime, the delay
 * warning. Times are seconds since the epoch (int64_t), passed in.
 */
#ifndef PST_ROUTE_H
#define PST_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"

/* ---- limits and defaults ------------------------------------------------ */

#define PST_ROUTE_MAX_MX      10  /* default options.max_mx */
#define PST_ROUTE_MAX_ADDRS   10  /* default options.max_addrs (per host) */
#define PST_ROUTE_MAX_TARGETS 20  /* default options.max_targets (in all) */
#define PST_ROUTE_HARD_MAX    256 /* every cap above is clamped to this */
#define PST_ROUTE_REASON_MAX  512 /* reason texts, with the NUL */
#define PST_ROUTE_ADDR_TEXT   46  /* INET6_ADDRSTRLEN */

enum pst_route_family {
    PST_ROUTE_INET4 = 1,
    PST_ROUTE_INET6 = 2,
};

enum pst_route_status {
    PST_ROUTE_OK = 0,       /* targets to try, in order */
    PST_ROUTE_TEMPFAIL = 1, /* retry later (enh 4.x.x) */
    PST_ROUTE_PERMFAIL = 2, /* bounce (enh 5.x.x) */
};

/* "ok", "tempfail", "permfail". */
const char *pst_route_status_name(enum pst_route_status st);

/*
 * The policy hook (step 4 above): 1 to use the MX host mx (text form,
 * lower case, trailing dot), 0 to drop it. NULL in the options: all allowed.
 */
typedef int pst_route_allow_fn(void *arg, const char *mx);

struct pst_route_options {
    unsigned families;            /* PST_ROUTE_INET4 | PST_ROUTE_INET6; 0: both */
    enum pst_route_family prefer; /* the family tried first; default INET6 */
    unsigned max_mx;              /* MX hosts used; 0: PST_ROUTE_MAX_MX */
    unsigned max_addrs;           /* addresses per host; 0: PST_ROUTE_MAX_ADDRS */
    unsigned max_targets;         /* targets in all; 0: PST_ROUTE_MAX_TARGETS */
    uint16_t port;                /* of every target; 0: 25 */
    /* our own names (RFC 5321 5.1), any case, trailing dot optional;
     * borrowed. A name that is not a domain name is PST_ERR_INVAL. */
    const char *const *local_names;
    size_t nlocal_names;
    uint64_t seed; /* randomness for the order of equal preferences */
    pst_route_allow_fn *allow_mx;
    void *allow_arg;
};

/* The defaults above (both families, IPv6 first, port 25, no names). */
void pst_route_options_default(struct pst_route_options *o);

/* One place to try: an address of an MX host. */
struct pst_route_target {
    char *mx;            /* the MX host (text form, trailing dot); for an
                            address literal its text, e.g. "[192.0.2.1]" */
    uint16_t preference; /* 0 for the implicit MX and relays */
    int implicit;        /* 1: no MX records, the domain itself (RFC 5321 5.1) */
    enum pst_route_family family;
    unsigned char addr[16]; /* INET4: addr[0..3] */
    char addr_text[PST_ROUTE_ADDR_TEXT];
    uint16_t port;
    enum pst_dns_dnssec addr_dnssec; /* of the A/AAAA answer (DANE: RFC 7672 2.2.2) */
};

struct pst_route {
    char *domain; /* as planned, text form */
    enum pst_route_status status;
    const char *enh;               /* "4.4.3", "5.1.10"...: static; NULL when OK */
    char *reason;                  /* why it failed; when OK, NULL or the hosts skipped */
    enum pst_dns_dnssec mx_dnssec; /* of the MX answer (NODATA for implicit) */
    int implicit;                  /* the implicit MX was used */
    int truncated;                 /* a cap or the budget cut the list */
    struct pst_route_target *targets;
    size_t ntargets;
};

/*
 * Plans delivery to domain (a domain name, or an address literal in
 * brackets) with the resolver r and the budget b (NULL: no budget).
 * o NULL: the defaults. Returns 0 and *out whatever DNS said (look at
 * status; free with pst_route_free), or PST_ERR_SYNTAX (domain is neither
 * a domain name nor an address literal), PST_ERR_INVAL (r or out NULL, a
 * bad local name, families outside INET4|INET6), PST_ERR_NOMEM.
 */
int pst_route_plan(struct pst_resolver *r, struct pst_dns_budget *b, const char *domain,
                   const struct pst_route_options *o, struct pst_route **out);
void pst_route_free(struct pst_route *rt);

/* ---- relay hosts -------------------------------------------------------- */

struct pst_route_relay {
    char host[PST_DNS_NAME_TEXT_MAX]; /* name (lower case, no final dot) or
                                         address text */
    uint16_t port;                    /* 25 when none was written */
    int mx;                           /* 1: look up MX records of host */
    int literal;                      /* 1: host is an address */
    enum pst_route_family family;     /* of a literal */
    unsigned char addr[16];           /* of a literal */
};

/*
 * Parses a relay host spec (see the file comment). 0 and *out, or
 * PST_ERR_SYNTAX with the reason in why[0..whylen) (may be NULL), or
 * PST_ERR_INVAL (spec or out NULL).
 */
int pst_route_relay_parse(const char *spec, struct pst_route_relay *out, char *why, size_t whylen);

/*
 * Plans delivery through a relay: an MX relay as pst_route_plan of its
 * host (with its port); "[name]" the name's addresses (a host without any
 * is temporary 4.4.4: a configured relay that does not resolve is ours to
 * fix); an address literal one target. Returns as pst_route_plan.
 */
int pst_route_plan_relay(struct pst_resolver *r, struct pst_dns_budget *b,
                         const struct pst_route_relay *relay, const struct pst_route_options *o,
                         struct pst_route **out);

/* ---- backoff (backoff.c) ------------------------------------------------ */

#define PST_BACKOFF_INITIAL  300 /* 5 min */
#define PST_BACKOFF_FACTOR   2.0
#define PST_BACKOFF_MAX      3600   /* 1 h */
#define PST_BACKOFF_LIFETIME 432000 /* 5 days */
#define PST_BACKOFF_WARN     14400  /* 4 h */
#define PST_BACKOFF_JITTER   10     /* percent */

struct pst_backoff {
    int64_t initial;         /* seconds before the 2nd attempt, > 0 */
    double factor;           /* each delay is the previous times this, 1..16 */
    int64_t max;             /* no delay is longer, >= initial */
    int64_t lifetime;        /* after arrival + lifetime the message expires, > 0 */
    int64_t warn;            /* after arrival + warn a delay warning; 0: never */
    unsigned jitter_percent; /* delays are shortened by up to this, 0..50 */
};

/* The defaults: 5, 10, 20, 40, 60, 60... minutes, 5 days, warn at 4 h,
 * 10 % jitter. */
void pst_backoff_default(struct pst_backoff *b);
/* 0, or PST_ERR_INVAL when a field is outside its range above. */
int pst_backoff_check(const struct pst_backoff *b);

/*
 * The wait after the attempts-th failed attempt (attempts >= 1; 0 is
 * taken as 1): initial * factor^(attempts-1), at most max, then shortened
 * by jitter_percent * rnd / UINT32_MAX percent (rnd: random bits from the
 * caller; 0 gives the exact schedule). Never less than 1 second.
 */
int64_t pst_backoff_delay(const struct pst_backoff *b, unsigned attempts, uint32_t rnd);

/*
 * When to try next after the attempts-th attempt failed at last: last +
 * pst_backoff_delay, but not after the expiry time (arrival + lifetime)
 * when last is before it, so the last try happens when the message
 * expires. Saturates instead of overflowing.
 */
int64_t pst_backoff_next(const struct pst_backoff *b, int64_t arrival, int64_t last,
                         unsigned attempts, uint32_t rnd);

/* 1 when a message that arrived at arrival has expired at now (now >=
 * arrival + lifetime): bounce it with 4.4.7 / 5.4.7 (RFC 3463 X.4.7). */
int pst_backoff_expired(const struct pst_backoff *b, int64_t arrival, int64_t now);

/* 1 when a delay warning is due at now: warn is set, not yet warned,
 * now >= arrival + warn, and the message has not expired. */
int pst_backoff_warn_due(const struct pst_backoff *b, int64_t arrival, int64_t now, int warned);

#endif
