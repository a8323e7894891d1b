/*
 * store.h - postern's state store (SQLite): the authentication results of
 * received mail, kept for DMARC aggregate reports (RFC 9990) and for
 * `postern` to show. One file; each thread opens its own handle (SQLite's
 * WAL mode lets the check workers write side by side while a reader
 * reads). Writes use synchronous=NORMAL, and may be batched: a power cut
 * or a crash may lose the last results, never corrupt the file; the
 * results are statistics, the mail itself is in the queue.
 *
 * Schema (version 1):
 *   auth_result(id INTEGER PRIMARY KEY, time INTEGER, queue_id TEXT,
 *     source_ip TEXT, helo TEXT, envelope_from TEXT, header_from TEXT,
 *     spf_result TEXT, spf_domain TEXT, dmarc_result TEXT,
 *     policy_domain TEXT, policy_tag TEXT, policy TEXT, testing INTEGER,
 *     adkim TEXT, aspf TEXT, disposition TEXT, override TEXT)
 *   auth_dkim(result_id INTEGER REFERENCES auth_result(id), domain TEXT,
 *     selector TEXT, result TEXT)
 * disposition is what was done (deliver, quarantine, reject, tempfail);
 * override names why it differs from the policy's (RFC 9990's
 * PolicyOverrideType words: local_policy, trusted_forwarder...) or is NULL.
 */
#ifndef PST_STORE_H
#define PST_STORE_H

#include <stddef.h>
#include <stdint.h>

struct pst_store;

/* Opens (creating the file and schema when missing) the store at path.
 * 0, or PST_ERR_IO with SQLite's reason in err. */
int pst_store_open(const char *path, struct pst_store **out, char *err, size_t errlen);
void pst_store_close(struct pst_store *s);

struct pst_store_dkim {
    const char *domain, *selector, *result;
};

struct pst_store_auth {
    int64_t time;
    const char *queue_id, *source_ip, *helo, *envelope_from, *header_from;
    const char *spf_result, *spf_domain;
    const char *dmarc_result, *policy_domain, *policy_tag, *policy;
    int testing;
    char adkim, aspf; /* 0 when no record */
    const char *disposition, *override;
    const struct pst_store_dkim *dkim;
    size_t ndkim;
};

/* Adds one message's results. Without batching each call is one
 * transaction; with pst_store_batch() rows gather in an open transaction
 * that is committed when it holds max_rows rows or is max_ms old (checked
 * at each call), by pst_store_flush() and by pst_store_close(). 0, or
 * PST_ERR_IO with the reason in err (SQLITE_BUSY after the busy timeout
 * included); a failed row rolls back the rows gathered with it. */
int pst_store_add_auth(struct pst_store *s, const struct pst_store_auth *a, char *err,
                       size_t errlen);
/* Batching (see pst_store_add_auth); max_rows 0 or 1 turns it off. */
void pst_store_batch(struct pst_store *s, unsigned max_rows, int64_t max_ms);
/* Rows gathered in the open transaction (0 when none). */
unsigned pst_store_pending(const struct pst_store *s);
/* Commits the rows gathered so far. 0 or PST_ERR_IO with err. */
int pst_store_flush(struct pst_store *s, char *err, size_t errlen);
/* Number of auth_result rows (for tests and `postern`), or a negative
 * PST_ERR_*. */
int64_t pst_store_count_auth(struct pst_store *s);

#endif
