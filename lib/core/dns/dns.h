/*
 * dns.h - DNS answers and the resolver interface of postern.
 *
 * Protocol code (SPF, DKIM, DMARC, MTA-STS, DANE) asks DNS only through a
 * struct pst_resolver it is given, with pst_dns_query(); the backends live
 * in lib/io (resolver_unbound.c: libunbound; resolver_zone.c: an RFC 1035
 * master file), so nothing here touches the network.
 *
 * An answer carries one result from the Postfix taxonomy (STYLE.md):
 *   OK        records of the asked type (after CNAMEs)
 *   NOTFOUND  NXDOMAIN (RFC 1035 4.1.1 RCODE 3) or NODATA (RFC 2308 2.2:
 *             the name exists, the type does not), told apart
 *   RETRY     SERVFAIL, timeout, DNSSEC bogus, REFUSED: may work later
 *   FAIL      permanent: malformed or oversize answer, CNAME loop,
 *             FORMERR/NOTIMP
 * plus the DNSSEC state (secure / insecure / bogus, from the backend's own
 * validation), a TTL, the canonical name after CNAMEs (RFC 1034 3.6.2) and
 * a reason text for everything that is not OK.
 *
 * Records are decoded from wire-format rdata by the bounded decoders of
 * dns_rdata.c, the same for every backend:
 *   A, AAAA      RFC 1035 3.4.1, RFC 3596 2.2 (exact lengths)
 *   TXT          RFC 1035 3.3.14: the character-strings joined, as bytes
 *                with a length (TXT may hold NUL and 8-bit bytes)
 *   MX           RFC 1035 3.3.9, sorted by preference (then exchange)
 *   TLSA         RFC 6698 2.1 (usage, selector, matching type, data)
 *   PTR, CNAME   RFC 1035 3.3.12, 3.3.1
 * Names in rdata must be uncompressed: backends hand over rdata that
 * stands alone (libunbound and ldns both expand compression), and RFC 3597
 * 4 forbids compression in the rdata of new types anyway. Whole messages
 * may be read with pst_dns_name_unpack(), which follows compression
 * pointers only backwards (RFC 1035 4.1.4), so it cannot loop.
 *
 * Text forms: names are lower case with a trailing dot; a name octet other
 * than a-z 0-9 '-' '_' '*' '/' is written \DDD (RFC 1035 5.1), so a '.' in
 * a name's text is always a label separator.
 *
 * Limits: PST_DNS_MAX_RECORDS records and PST_DNS_MAX_ANSWER_BYTES rdata
 * octets per answer (what one DNS message can carry), PST_DNS_MAX_CNAME
 * CNAME hops. Past a limit the answer is FAIL with the limit in its reason.
 */
#ifndef PST_DNS_H
#define PST_DNS_H

#include <stddef.h>
#include <stdint.h>

struct pst_buf;

/* RR types postern asks for (RFC 1035 3.2.2, RFC 3596, RFC 6698). */
enum pst_dns_type {
    PST_DNS_A = 1,
    PST_DNS_CNAME = 5,
    PST_DNS_PTR = 12,
    PST_DNS_MX = 15,
    PST_DNS_TXT = 16,
    PST_DNS_AAAA = 28,
    PST_DNS_TLSA = 52,
};

enum pst_dns_status {
    PST_DNS_OK = 0,
    PST_DNS_NOTFOUND = 1,
    PST_DNS_RETRY = 2,
    PST_DNS_FAIL = 3,
};

enum pst_dns_notfound {
    PST_DNS_FOUND = 0,    /* status is not NOTFOUND */
    PST_DNS_NXDOMAIN = 1, /* the name does not exist */
    PST_DNS_NODATA = 2,   /* the name exists, without records of the type */
};

enum pst_dns_dnssec {
    PST_DNS_INSECURE = 0, /* not validated (no trust anchor, unsigned zone) */
    PST_DNS_SECURE = 1,   /* validated from a trust anchor */
    PST_DNS_BOGUS = 2,    /* validation failed: status is RETRY */
};

#define PST_DNS_NAME_WIRE_MAX    255 /* RFC 1035 2.3.4 */
#define PST_DNS_LABEL_MAX        63
#define PST_DNS_NAME_TEXT_MAX    1025 /* text form with NUL: every octet \DDD */
#define PST_DNS_MAX_RECORDS      128
#define PST_DNS_MAX_ANSWER_BYTES 65535
#define PST_DNS_MAX_CNAME        8
#define PST_DNS_TIMEOUT_MS       5000 /* per query, when the caller sets none */

/* One record. Which fields are set depends on type; the others are 0. */
struct pst_dns_rr {
    uint16_t type;
    uint32_t ttl;
    unsigned char addr[16]; /* A: addr[0..3]; AAAA: addr[0..15] */
    uint16_t preference;    /* MX */
    char *name;             /* MX exchange, PTR and CNAME target (text form) */
    uint8_t usage;          /* TLSA certificate usage */
    uint8_t selector;       /* TLSA selector */
    uint8_t mtype;          /* TLSA matching type */
    unsigned char *data;    /* TXT: the joined strings; TLSA: association data */
    size_t len;             /* of data; data has a NUL after it, not counted */
};

/* An answer; everything in it is owned by it (pst_dns_answer_free). */
struct pst_dns_answer {
    char *name;    /* as asked, text form */
    uint16_t type; /* as asked */
    enum pst_dns_status status;
    enum pst_dns_notfound notfound;
    enum pst_dns_dnssec dnssec;
    uint32_t ttl;    /* OK: smallest record TTL; NOTFOUND: negative TTL (RFC 2308) */
    char *canonical; /* name after CNAMEs; name when there were none, and
                        for RETRY and FAIL (the reason tells the chain) */
    char *reason;    /* NULL, or why (always set for RETRY and FAIL) */
    struct pst_dns_rr *rrs;
    size_t nrrs;
    size_t bytes; /* rdata octets taken, against PST_DNS_MAX_ANSWER_BYTES */
};

/* ---- the resolver interface --------------------------------------------- */

/* Called once per finished asynchronous query; takes the answer. */
typedef void pst_dns_done_fn(void *arg, struct pst_dns_answer *answer);

/*
 * A backend fills this table and embeds it as the first member of its own
 * struct. name is always in text form (pst_dns_name_normalize) and type
 * one of enum pst_dns_type: pst_dns_query() checks both before a backend
 * sees them. A resolver is used by one thread at a time.
 *
 *  query        blocking; 0 and *out (any status), or PST_ERR_NOMEM...;
 *               never longer than timeout_ms (then RETRY)
 *  query_async  optional (NULL): starts a query; done(arg, answer) runs
 *               later from process(); *id names it for cancel(). The
 *               caller enforces the timeout (cancel, then make a RETRY
 *               answer with pst_dns_answer_retry()).
 *  cancel       done will not be called for id; PST_ERR_NOTFOUND when id
 *               is not pending (already delivered)
 *  fd           a descriptor that turns readable when process() has
 *               answers to deliver
 *  process      delivers finished answers (calls done); never blocks
 *  free         cancels what is pending (done is not called) and frees
 */
struct pst_resolver {
    const char *kind; /* "unbound", "zone": for messages */
    int (*query)(struct pst_resolver *r, const char *name, uint16_t type, unsigned timeout_ms,
                 struct pst_dns_answer **out);
    int (*query_async)(struct pst_resolver *r, const char *name, uint16_t type,
                       pst_dns_done_fn *done, void *arg, unsigned *id);
    int (*cancel)(struct pst_resolver *r, unsigned id);
    int (*fd)(struct pst_resolver *r);
    int (*process)(struct pst_resolver *r);
    void (*free)(struct pst_resolver *r);
};

/*
 * The per-message query budget: protocol code gets one per message (SPF's
 * ten lookups, RFC 7208 4.6.4, live in the caller; this is the hard stop
 * for everything together). max_queries 0 means no limit; timeout_ms 0
 * means PST_DNS_TIMEOUT_MS. used counts queries asked.
 */
struct pst_dns_budget {
    unsigned max_queries;
    unsigned timeout_ms;
    unsigned used;
};

/*
 * Asks r for name (text, trailing dot optional, case-insensitive) and
 * type, counting one query against b (NULL: no budget, default timeout).
 * Returns 0 with *out set whatever the DNS result (look at status), or:
 *   PST_ERR_TOOBIG       b is used up: nothing was asked (the caller maps
 *                        this to its own permanent error, e.g. SPF
 *                        permerror)
 *   PST_ERR_SYNTAX       name is not a domain name
 *   PST_ERR_UNSUPPORTED  type is not one of enum pst_dns_type
 *   PST_ERR_NOMEM
 */
int pst_dns_query(struct pst_resolver *r, struct pst_dns_budget *b, const char *name, uint16_t type,
                  struct pst_dns_answer **out);

/* The asynchronous form: the same checks and budget, then r->query_async.
 * PST_ERR_UNSUPPORTED when r has none. */
int pst_dns_query_async(struct pst_resolver *r, struct pst_dns_budget *b, const char *name,
                        uint16_t type, pst_dns_done_fn *done, void *arg, unsigned *id);
int pst_dns_cancel(struct pst_resolver *r, unsigned id);
/* The descriptor to watch, or PST_ERR_UNSUPPORTED. */
int pst_dns_fd(struct pst_resolver *r);
int pst_dns_process(struct pst_resolver *r);
/* Frees r (NULL allowed). */
void pst_resolver_free(struct pst_resolver *r);

/* ---- answers (for backends, and for tests) ------------------------------ */

/* New answer for name (normalised here) and type: status OK, no records,
 * canonical = name, insecure. PST_ERR_SYNTAX, PST_ERR_NOMEM. */
int pst_dns_answer_new(const char *name, uint16_t type, struct pst_dns_answer **out);
/* A RETRY answer with a reason ("timed out after 5 s"): for callers that
 * enforce a timeout themselves. */
int pst_dns_answer_retry(const char *name, uint16_t type, const char *reason,
                         struct pst_dns_answer **out);
/* The RETRY answer of a query that timed out: "timed out after 5 s" (or
 * "after 300 ms" when timeout_ms is no whole number of seconds). */
int pst_dns_answer_timeout(const char *name, uint16_t type, unsigned timeout_ms,
                           struct pst_dns_answer **out);
void pst_dns_answer_free(struct pst_dns_answer *a);
/* A deep copy of a (for caches). 0 and *out, or PST_ERR_NOMEM. */
int pst_dns_answer_copy(const struct pst_dns_answer *a, struct pst_dns_answer **out);

/*
 * Decodes one rdata of the answer's type and appends it. Returns 0, or
 * PST_ERR_SYNTAX (malformed) / PST_ERR_TOOBIG (a limit) after turning the
 * answer into FAIL with the reason ("malformed MX rdata: ..."), or
 * PST_ERR_NOMEM (answer unchanged). Does nothing on an answer that is
 * already not OK.
 */
int pst_dns_answer_add(struct pst_dns_answer *a, const uint8_t *rdata, size_t len, uint32_t ttl);
/* Sets the result; records are dropped unless st is OK. reason is a
 * printf format or NULL. PST_ERR_NOMEM leaves the status set, reason NULL. */
int pst_dns_answer_set(struct pst_dns_answer *a, enum pst_dns_status st, enum pst_dns_notfound nf,
                       const char *reason, ...) __attribute__((format(printf, 4, 5)));
/* Sets the canonical name (normalised). PST_ERR_SYNTAX, PST_ERR_NOMEM. */
int pst_dns_answer_set_canonical(struct pst_dns_answer *a, const char *name);
/* Ends building: sorts MX records, makes an OK answer without records
 * NODATA, and sets ttl to the smallest record TTL when it is still 0. */
void pst_dns_answer_finish(struct pst_dns_answer *a);

/* ---- wire format (dns_rdata.c) ------------------------------------------ */

/*
 * Reads an uncompressed name at p[0..len): writes its text form into out
 * (outlen >= PST_DNS_NAME_TEXT_MAX is always enough) and the octets it
 * took into *used. PST_ERR_SYNTAX with *why set (static text) for a label
 * past the end, a name over 255 octets, a compression pointer or a
 * reserved label type (RFC 6891 ch. 5 retired the extended ones).
 */
int pst_dns_name_from_wire(const uint8_t *p, size_t len, size_t *used, char *out, size_t outlen,
                           const char **why);
/* The same inside a whole message msg[0..msglen) starting at off,
 * following compression pointers (RFC 1035 4.1.4) that point strictly
 * before the label that holds them. *next is the offset after the name
 * where it starts (after the first pointer when there is one). */
int pst_dns_name_unpack(const uint8_t *msg, size_t msglen, size_t off, size_t *next, char *out,
                        size_t outlen, const char **why);
/* Text (RFC 1035 5.1: \DDD and \X escapes, trailing dot optional, "." is
 * the root) to uncompressed wire form in wire[0..*len). PST_ERR_SYNTAX for
 * empty labels, labels over 63 octets, names over 255 octets, control
 * characters, spaces and bad escapes. */
int pst_dns_name_to_wire(const char *text, uint8_t wire[PST_DNS_NAME_WIRE_MAX], size_t *len);
/* Text to its canonical text form: lower case, trailing dot, escapes as
 * above. PST_ERR_SYNTAX, PST_ERR_TOOBIG (outlen too small). */
int pst_dns_name_normalize(const char *text, char *out, size_t outlen);
/* 1 when name (canonical) equals zone or lies below it, else 0. */
int pst_dns_name_in(const char *name, const char *zone);

/* Decodes rdata[0..len) of type into rr (cleared first; owns what it
 * allocates, free with pst_dns_rr_clear). PST_ERR_SYNTAX with *why,
 * PST_ERR_UNSUPPORTED for other types, PST_ERR_NOMEM. */
int pst_dns_rdata_decode(uint16_t type, const uint8_t *rdata, size_t len, struct pst_dns_rr *rr,
                         const char **why);
void pst_dns_rr_clear(struct pst_dns_rr *rr);

/* ---- text helpers ------------------------------------------------------- */

/* "A", "MX"...; "?" for others. */
const char *pst_dns_type_name(uint16_t type);
/* Case-insensitive name of a supported type; PST_ERR_UNSUPPORTED. */
int pst_dns_type_parse(const char *s, uint16_t *type);
const char *pst_dns_status_name(enum pst_dns_status st);    /* "ok", "notfound"... */
const char *pst_dns_notfound_name(enum pst_dns_notfound n); /* "nxdomain", "nodata", NULL */
const char *pst_dns_dnssec_name(enum pst_dns_dnssec s);     /* "secure"... */
/*
 * Appends bytes p[0..n) in RFC 1035 5.1 presentation style: bytes outside
 * 0x20..0x7e and the backslash as \DDD, and the double quote as well when
 * quote is set (for output between quotes). PST_ERR_TOOBIG, PST_ERR_NOMEM.
 */
int pst_dns_text_escape(struct pst_buf *out, const unsigned char *p, size_t n, int quote);
/* The reverse-lookup name of a numeric IPv4 (RFC 1035 3.5) or IPv6 (RFC
 * 3596 2.5) address: "1.2.0.192.in-addr.arpa.". PST_ERR_SYNTAX when ip is
 * not an address, PST_ERR_TOOBIG when outlen is too small (74 is enough). */
int pst_dns_ptr_name(const char *ip, char *out, size_t outlen);

#endif
