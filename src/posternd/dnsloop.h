/*
 * dnsloop.h - DNS on posternd's event loop: the asynchronous side of a
 * resolver (lib/core/dns/dns.h: query_async, fd, process, cancel) driven by
 * libevent, with the per-query timeout as one timer per query. lib/io may
 * not use libevent, so this glue lives in the daemon.
 *
 * Everything runs on the loop's thread: queries are started there and
 * callbacks run there. Worker threads that need DNS make their own
 * resolver and call pst_dns_query() (blocking) instead.
 */
#ifndef PSTD_DNSLOOP_H
#define PSTD_DNSLOOP_H

#include <stdint.h>

#include "dns.h"

struct event_base;
struct pstd_dns;
struct pstd_dns_query;

/* Watches r's descriptor on base. r is borrowed: it must outlive the
 * pstd_dns and support the asynchronous calls. NULL when out of memory or
 * when r has no descriptor. */
struct pstd_dns *pstd_dns_new(struct event_base *base, struct pst_resolver *r);
/* Cancels every pending query (no callback runs) and frees d; NULL is
 * allowed. Not from inside a callback. */
void pstd_dns_free(struct pstd_dns *d);

/*
 * Starts a query counted against b (NULL: no budget). done(arg, answer)
 * runs exactly once on the loop, later, with an answer it owns: the
 * resolver's, or RETRY "timed out after N s" when b->timeout_ms (default
 * PST_DNS_TIMEOUT_MS) passes first. *q (when q is not NULL) names the
 * query for pstd_dns_cancel until done runs. Returns 0 or the errors of
 * pst_dns_query_async (PST_ERR_TOOBIG: budget used up), and then done
 * never runs.
 */
int pstd_dns_query(struct pstd_dns *d, struct pst_dns_budget *b, const char *name, uint16_t type,
                   pst_dns_done_fn *done, void *arg, struct pstd_dns_query **q);
/* Drops a pending query: done will not run. */
void pstd_dns_cancel(struct pstd_dns_query *q);
/* Queries started and not yet finished. */
unsigned pstd_dns_pending(const struct pstd_dns *d);

#endif
