/*
 * queue.h - the durable mail queue on disk, and Maildir delivery.
 *
 * Layout below the spool directory:
 *   incoming/ID.msg  message being received (not yet acknowledged)
 *   incoming/ID.env  envelope being written
 *   queue/ID.msg     committed message (raw RFC 5322 text, CRLF lines,
 *                    starting with our Received: header)
 *   queue/ID.env     committed envelope (JSON, jansson). Its presence in
 *                    queue/ is THE commit point: a message exists in the
 *                    queue iff queue/ID.env exists.
 *
 * Commit order (pst_queue_commit): fsync(msg) -> write env to incoming/,
 * fsync(env) -> rename msg into queue/ -> rename env into queue/ ->
 * fsync(queue/). Only after that may the server answer 250. Every later
 * envelope change writes queue/ID.env.tmp, fsyncs, renames, fsyncs queue/.
 * Removal unlinks the envelope first, then the message, then fsyncs.
 * After a crash, pst_queue_recover() deletes incoming/ leftovers and
 * queue/ messages without an envelope (never acknowledged).
 *
 * Queue ids: 16 upper-case hex digits of microseconds since the epoch,
 * then 4 of a per-process counter, then 4 of the pid: unique, and sortable
 * by arrival time ("18A0F3C2B1D4E5F60001" style, 24 characters).
 *
 * All functions block (fsync); the daemon calls them from worker threads.
 * A struct pst_queue may be shared by threads: operations on different ids
 * are independent; the caller serialises work on the same id.
 */
#ifndef PST_QUEUE_H
#define PST_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PST_QUEUE_ID_LEN 24

struct pst_queue;

enum pst_rcpt_state {
    PST_RCPT_PENDING = 0,
    PST_RCPT_DELIVERED = 1,
    PST_RCPT_FAILED = 2, /* permanent failure */
};

struct pst_envelope_rcpt {
    char *addr;       /* the address as accepted at RCPT, without <> */
    char *user;       /* local user it maps to */
    enum pst_rcpt_state state;
    char *last_reply; /* last delivery result text, or NULL */
};

struct pst_envelope {
    char id[PST_QUEUE_ID_LEN + 1];
    char *sender; /* reverse-path without <>, "" for the null sender */
    int64_t arrival; /* seconds since the epoch */
    char *client_addr; /* "192.0.2.1" */
    char *helo;
    int smtputf8;
    int body_8bit;
    int tls; /* received over TLS */
    unsigned attempts;
    int64_t next_attempt; /* seconds since the epoch, 0 = now */
    struct pst_envelope_rcpt *rcpts;
    size_t nrcpts;
};

/* Opens (creating the directories when missing, mode 0700) the spool at
 * path. Returns 0 or a PST_ERR_* code. */
int pst_queue_open(const char *path, struct pst_queue **out);
void pst_queue_close(struct pst_queue *q);

/* Writes a new unique id (PST_QUEUE_ID_LEN chars + NUL) for time now_usec. */
void pst_queue_new_id(struct pst_queue *q, uint64_t now_usec, char id[PST_QUEUE_ID_LEN + 1]);

/* Creates incoming/ID.msg (O_EXCL, 0600) and returns its open fd in *fd;
 * the caller writes the message to it. */
int pst_queue_create(struct pst_queue *q, const char *id, int *fd);
/* Makes the message durable with its envelope (see the order above).
 * fd is the one pst_queue_create gave; it is closed in every case.
 * Returns 0 only when message, envelope and directory entry are on disk. */
int pst_queue_commit(struct pst_queue *q, int fd, const struct pst_envelope *env);
/* Group commit: the same for n messages with one fsync of queue/ at the
 * end; results[i] gets each message's result; returns 0 when all
 * succeeded. */
int pst_queue_commit_batch(struct pst_queue *q, const int *fds,
                           const struct pst_envelope *const *envs, size_t n, int *results);
/* Drops a message that was not committed (fd closed, file removed). */
void pst_queue_abort(struct pst_queue *q, const char *id, int fd);

/* Deletes leftovers of interrupted receptions and orphans (see above).
 * Returns the number of files removed, or a negative PST_ERR_*. */
int pst_queue_recover(struct pst_queue *q);

/* Calls cb for each committed id in queue/, in id (arrival) order.
 * Stops and returns cb's value when it is non-zero. */
int pst_queue_scan(struct pst_queue *q, int (*cb)(const char *id, void *arg), void *arg);

/* Loads an envelope; *out is freed with pst_envelope_free. */
int pst_queue_load(struct pst_queue *q, const char *id, struct pst_envelope **out);
/* Replaces the envelope atomically (tmp, fsync, rename, fsync dir). */
int pst_queue_update(struct pst_queue *q, const struct pst_envelope *env);
/* Opens the committed message read-only; the caller closes *fd. */
int pst_queue_open_msg(struct pst_queue *q, const char *id, int *fd);
/* Removes a finished message: envelope first, then message, then fsync. */
int pst_queue_remove(struct pst_queue *q, const char *id);

/* Envelope JSON codec (bounded: at most 64 KiB of JSON, 10000 recipients). */
int pst_envelope_to_json(const struct pst_envelope *env, char **json);
int pst_envelope_from_json(const char *json, size_t len, struct pst_envelope **out);
void pst_envelope_free(struct pst_envelope *env);

/*
 * Delivers the message read from msg_fd (from offset 0) into the Maildir at
 * path (creating path/{tmp,new,cur} with mode 0700 when missing), per the
 * Maildir convention: write tmp/UNIQUE, fsync, rename to new/UNIQUE, fsync
 * new/. UNIQUE is "SECONDS.M<usec>P<pid>Q<n>.HOST,S=<size>" with '/' and ':'
 * in HOST written as \057 and \072. A "Return-Path: <sender>" line and a
 * "Delivered-To: rcpt" line are written first (RFC 5321 4.4), and CRLF line
 * ends become LF as Maildir readers expect. Returns 0 or PST_ERR_IO
 * (errno set; ENOSPC/EDQUOT and similar are temporary for the caller).
 * name_out (may be NULL) receives the file name in new/.
 */
int pst_maildir_deliver(const char *path, int msg_fd, const char *hostname, const char *sender,
                        const char *rcpt, uint64_t now_usec, char *name_out, size_t name_len);

#endif
