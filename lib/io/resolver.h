/*
 * resolver.h - the backends of the DNS resolver interface (lib/core/dns/
 * dns.h): libunbound for the network, an RFC 1035 master file for tests
 * and for trying records before publishing them.
 *
 * Both give answers through the same dns.h calls (pst_dns_query with its
 * budget) and the same bounded rdata decoders, so they agree on TXT
 * joining, MX order, limits and names. Each resolver is used by one thread
 * at a time: a worker pool makes one per thread.
 */
#ifndef PST_RESOLVER_H
#define PST_RESOLVER_H

#include <stddef.h>

#include "dns.h"

/* ---- libunbound (resolver_unbound.c) ------------------------------------ */

struct pst_resolver_unbound_conf {
    /* "ADDR[:PORT]" of a resolver to forward every query to ("192.0.2.53",
     * "127.0.0.1:5353", "::1", "[::1]:5353"); NULL: the nameservers of
     * resolv_conf */
    const char *server;
    /* DNSSEC trust anchors: a file of DS or DNSKEY records in master-file
     * form (RFC 4033 ch. 5); NULL: no validation, every answer insecure */
    const char *trust_anchor;
    /* NULL: /etc/resolv.conf (another file only for tests) */
    const char *resolv_conf;
};

/*
 * Makes a libunbound resolver: a validating (when a trust anchor is given)
 * caching resolver of its own that forwards to conf->server or to the
 * system's nameservers. Loads and checks everything before it returns, so
 * a bad server, a missing or unreadable resolv.conf, or a trust anchor
 * file that does not parse is reported here: PST_ERR_SYNTAX / PST_ERR_IO
 * / PST_ERR_INVAL with "what: why" in err (a trust anchor error names its
 * line). The resolver supports query_async/fd/process/cancel.
 *
 * Result mapping (Postfix's dns_lookup taxonomy): NOERROR with records
 * OK; NOERROR without NODATA; NXDOMAIN NXDOMAIN; SERVFAIL, REFUSED
 * (deviation: Postfix fails permanently; a resolver refusing us is our own
 * configuration, so mail waits instead of bouncing), DNSSEC bogus and a
 * timeout RETRY; FORMERR, NOTIMP and malformed or oversize data FAIL. A
 * SERVFAIL is probed for a CNAME loop or an over-long chain (RFC 1034
 * 3.6.2), which are FAIL with the chain in the reason.
 */
int pst_resolver_unbound_new(const struct pst_resolver_unbound_conf *conf,
                             struct pst_resolver **out, char *err, size_t errlen);

/*
 * Parses "ADDR[:PORT]": a numeric IPv4 address with an optional port, or an
 * IPv6 address bare ("::1", no port) or in brackets ("[::1]:5353"). Port
 * 1..65535, default 53. Writes the address text into addr (INET6_ADDRSTRLEN
 * is enough) and the port into *port. PST_ERR_SYNTAX on anything else
 * (host names are not accepted: resolving the resolver needs a resolver).
 */
int pst_resolver_server_parse(const char *spec, char *addr, size_t addrlen, unsigned *port);

/* ---- master file (resolver_zone.c) -------------------------------------- */

/*
 * Loads an RFC 1035 master file with ldns (ldns_zone_new_frm_fp_l: $ORIGIN,
 * $TTL, relative names, parentheses, every record type ldns knows). A
 * syntax error is PST_ERR_SYNTAX with "FILE:LINE: reason" in err, and so is
 * a second SOA record (one zone per file) and $INCLUDE; a file that cannot
 * be read PST_ERR_IO; more than PST_ZONE_MAX_RECORDS records PST_ERR_TOOBIG.
 *
 * The file is the whole DNS for this resolver: a name it does not hold
 * does not exist (NXDOMAIN), a name that holds other types or only has
 * names below it (an empty non-terminal) is NODATA. CNAMEs are followed
 * within the file up to PST_DNS_MAX_CNAME hops; a loop or a longer chain
 * is FAIL with the chain in the reason. Wildcards (RFC 4592 3.3.1) are
 * served: "*.example.test." answers for names below example.test. that do
 * not exist. Negative answers carry the TTL of RFC 2308 5 (the SOA's TTL or
 * MINIMUM, whichever is smaller; 0 without an SOA). Answers are insecure.
 * Limits are those of dns.h: too many records or octets at a name is FAIL.
 *
 * Simulated failures, for temperror tests: a name holding the TXT record
 * "postern-test=servfail" answers RETRY ("SERVFAIL (simulated)") for every
 * type and "postern-test=timeout" RETRY ("timed out (simulated)"),
 * immediately; these marker records are not served themselves. So does a
 * name given to pst_resolver_zone_fail(). A CNAME chain through such a
 * name fails the same way.
 *
 * Queries are linear scans of the records: fine for test zones.
 */
#define PST_ZONE_MAX_RECORDS 100000
int pst_resolver_zone_open(const char *path, struct pst_resolver **out, char *err, size_t errlen);
/* The same from text[0..len) (tests); err names the source "(text)". */
int pst_resolver_zone_from_text(const char *text, size_t len, struct pst_resolver **out, char *err,
                                size_t errlen);
/*
 * Makes name (and queries that reach it through a CNAME) answer st, which
 * must be PST_DNS_RETRY or PST_DNS_FAIL, with reason (NULL: "SERVFAIL
 * (simulated)" for RETRY, "failure (simulated)" for FAIL). r must be a zone
 * resolver. PST_ERR_INVAL, PST_ERR_SYNTAX (name), PST_ERR_NOMEM.
 */
int pst_resolver_zone_fail(struct pst_resolver *r, const char *name, enum pst_dns_status st,
                           const char *reason);

#endif
