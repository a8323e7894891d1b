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
 * Renames into queue/ refuse to replace an existing file (RENAME_NOREPLACE
 * where the file system has it), so an id clash can never overwrite a
 * committed message.
 *
 * Queue ids: 16 upper-case hex digits of microseconds since the epoch,
 * then 4 of a per-process counter, then 4 of the pid: unique, and sortable
 * by arrival time ("0006176339D93000" "0001" "3F2A", 24 characters).
 * Within a process, ids are strictly increasing even when the clock steps
 * back (the time part then stays at the last one used).
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
/* Envelope bounds. A recipient costs about 60 bytes of JSON plus its
 * address (at most 256), user and last reply (the daemon stores at most
 * 512 bytes of it), so 4 MiB holds PST_ENVELOPE_MAX_RCPTS recipients. */
#define PST_ENVELOPE_MAX_JSON  (4 * 1024 * 1024)
#define PST_ENVELOPE_MAX_RCPTS 10000

struct pst_queue;

enum pst_rcpt_state {
    PST_RCPT_PENDING = 0,
    PST_RCPT_DELIVERED = 1,
    PST_RCPT_FAILED = 2, /* permanent failure */
};

/* Text fields are UTF-8. addr, user, sender, client_addr and helo may not
 * hold control characters (bytes below 0x20, 0x7f); last_reply may hold
 * CR, LF and TAB (multi-line replies) but no other control character. */
struct pst_envelope_rcpt {
    char *addr; /* the address as accepted at RCPT, without <> */
    char *user; /* local user it maps to, or NULL (not local) */
    enum pst_rcpt_state state;
    char *last_reply; /* last delivery result text, or NULL */
    unsigned notify;  /* RFC 3461 NOTIFY flags (PST_DSN_NOTIFY_*), 0: none given */
    char *orcpt;      /* RFC 3461 ORCPT as received ("rfc822;a+40b"), or NULL */
};

struct pst_envelope {
    char id[PST_QUEUE_ID_LEN + 1];
    char *sender;      /* reverse-path without <>, "" for the null sender */
    int64_t arrival;   /* seconds since the epoch */
    char *client_addr; /* "192.0.2.1", or NULL (local submission) */
    char *helo;        /* or NULL */
    int smtputf8;
    int body_8bit;
    int tls;         /* received over TLS */
    int quarantine;  /* DMARC quarantine: local delivery into the Junk folder */
    int ret;         /* RFC 3461 RET: 0 none, 1 FULL, 2 HDRS */
    char *envid;     /* RFC 3461 ENVID (xtext as received), or NULL */
    int warned;      /* a delay notice has been sent */
    int hold;        /* `postern queue hold`: not delivered until released */
    char *auth_user; /* submitted by this authenticated user, or NULL */
    unsigned attempts;
    int64_t next_attempt; /* seconds since the epoch, 0 = now */
    struct pst_envelope_rcpt *rcpts;
    size_t nrcpts; /* 1 .. PST_ENVELOPE_MAX_RCPTS */
};

/* Opens (creating the directories when missing, mode 0700) the spool at
 * path and takes an exclusive lock on it (flock), so two daemons never
 * share one spool. Returns 0, PST_ERR_AGAIN when another process holds
 * the lock, or another PST_ERR_* code. */
int pst_queue_open(const char *path, struct pst_queue **out);
/* Opens an existing spool for reading only (the CLI): creates nothing;
 * PST_ERR_NOTFOUND when path, incoming/ or queue/ is missing. Functions
 * that would change the spool return PST_ERR_STATE on such a handle. */
int pst_queue_open_readonly(const char *path, struct pst_queue **out);
/* Opens an existing spool for `postern queue` hold, release, flush and
 * delete: like pst_queue_open_readonly it creates nothing and takes no
 * spool lock (it runs beside the daemon, which holds that lock), but
 * pst_queue_update and pst_queue_remove work on it. Reception and
 * recovery (create, commit, abort, recover) return PST_ERR_STATE
 * (abort does nothing): only the daemon brings messages in. Every change
 * to a message must be made under pst_queue_lock_msg, the lock a
 * delivery attempt holds. PST_ERR_NOTFOUND when path, incoming/ or
 * queue/ is missing. */
int pst_queue_open_admin(const char *path, struct pst_queue **out);
/* Closes the directory fds and frees q; NULL is allowed. */
void pst_queue_close(struct pst_queue *q);

/* 0 when id is a well-formed queue id (24 upper-case hex digits), else
 * PST_ERR_SYNTAX. Every function taking an id checks it (PST_ERR_INVAL). */
int pst_queue_id_check(const char *id);

/* Writes a new unique id (PST_QUEUE_ID_LEN chars + NUL) for time now_usec.
 * Thread-safe; the counter is per process, so q may be NULL. */
void pst_queue_new_id(struct pst_queue *q, uint64_t now_usec, char id[PST_QUEUE_ID_LEN + 1]);

/* Creates incoming/ID.msg (O_EXCL, 0600) and returns its open fd in *fd;
 * the caller writes the message to it (the fd is open for reading too, so
 * checks can read the message back with pread before the commit). PST_ERR_IO with errno EEXIST when
 * the id is already in use (incoming/ or queue/): take a new id. */
int pst_queue_create(struct pst_queue *q, const char *id, int *fd);
/* Makes the message durable with its envelope (see the order above).
 * fd is the one pst_queue_create gave; it is closed in every case.
 * Returns 0 only when message, envelope and directory entry are on disk.
 * On failure the message's files are removed (best effort; recovery does
 * the rest), so the caller answers 4xx and must not use fd again; calling
 * pst_queue_abort(q, id, -1) afterwards is allowed and harmless.
 * Errors: PST_ERR_INVAL/PST_ERR_TOOBIG (envelope not encodable),
 * PST_ERR_IO (errno set), PST_ERR_NOMEM, PST_ERR_STATE (read-only q). */
int pst_queue_commit(struct pst_queue *q, int fd, const struct pst_envelope *env);
/* Group commit: the same for n messages with one fsync of queue/ at the
 * end; results[i] gets each message's result; returns 0 when all
 * succeeded. */
int pst_queue_commit_batch(struct pst_queue *q, const int *fds,
                           const struct pst_envelope *const *envs, size_t n, int *results);
/* Drops a message that was not committed (fd closed unless it is -1,
 * incoming/ files removed; no fsync: recovery removes what survives). */
void pst_queue_abort(struct pst_queue *q, const char *id, int fd);

/* Deletes leftovers of interrupted receptions and orphans (see above):
 * incoming/ID.msg and ID.env, queue/ID.msg without ID.env, queue/ID.env
 * without ID.msg (a commit cut between its two renames, before the fsync
 * of queue/, so never acknowledged) and queue/ID.env.tmp. Files whose
 * names are not queue files are left alone. Call it at start, before any
 * reception runs on this spool. Returns the number of files removed, or a
 * negative PST_ERR_*. */
int pst_queue_recover(struct pst_queue *q);

/* Calls cb for each committed id in queue/, in id (arrival) order.
 * Stops and returns cb's value when it is non-zero. */
int pst_queue_scan(struct pst_queue *q, int (*cb)(const char *id, void *arg), void *arg);

/* Loads an envelope; *out is freed with pst_envelope_free.
 * PST_ERR_NOTFOUND when not queued; PST_ERR_SYNTAX when the file does not
 * decode or names another id; PST_ERR_TOOBIG past the JSON cap. */
int pst_queue_load(struct pst_queue *q, const char *id, struct pst_envelope **out);
/* Replaces the envelope atomically (tmp, fsync, rename, fsync dir).
 * PST_ERR_NOTFOUND when env->id is not queued (never resurrects one). */
int pst_queue_update(struct pst_queue *q, const struct pst_envelope *env);
/* Opens the committed message read-only; the caller closes *fd.
 * PST_ERR_NOTFOUND when not queued. */
int pst_queue_open_msg(struct pst_queue *q, const char *id, int *fd);
/* Removes a finished message: envelope first, then message, then fsync.
 * PST_ERR_NOTFOUND when neither file existed. */
int pst_queue_remove(struct pst_queue *q, const char *id);

/* Takes the lock of one committed message: flock(LOCK_EX) on queue/ID.msg,
 * the lock the daemon holds for a whole delivery attempt (load, deliver,
 * write the envelope back or remove the message). Tries for timeout_ms
 * milliseconds (0: once), retrying every few milliseconds, so a caller
 * never waits for ever behind a long attempt. *fd gets the locked,
 * read-only descriptor; pst_queue_unlock_msg(*fd) releases it.
 * Returns 0; PST_ERR_NOTFOUND when the message is not queued, or left the
 * queue while we waited (delivered, removed); PST_ERR_AGAIN when the lock
 * was still taken after timeout_ms; PST_ERR_INVAL; PST_ERR_IO (errno).
 * Any kind of handle may lock. */
int pst_queue_lock_msg(struct pst_queue *q, const char *id, unsigned timeout_ms, int *fd);
/* Releases a lock from pst_queue_lock_msg and closes fd; -1 is allowed. */
void pst_queue_unlock_msg(int fd);

/*
 * Envelope JSON codec (bounded: at most PST_ENVELOPE_MAX_JSON bytes of JSON,
 * PST_ENVELOPE_MAX_RCPTS recipients). Format version 1, one object:
 *   {"v":1,"id":"<24 hex>","sender":"a@b","arrival":N,"client_addr":S|null,
 *    "helo":S|null,"smtputf8":B,"body_8bit":B,"tls":B,"attempts":N,
 *    "next_attempt":N,"rcpts":[{"addr":S,"user":S|null,
 *    "state":"pending"|"delivered"|"failed","last_reply":S|null},...]}
 * and the optional keys (absent means false, 0 or NULL): "quarantine":B,
 * "ret":"full"|"hdrs", "envid":S, "warned":B, "hold":B, "auth_user":S, and
 * per recipient "notify":N (1..15) and "orcpt":S.
 * The decoder is strict: every other key is required (null only where shown),
 * unknown and duplicate keys, wrong types, negative numbers, unknown states,
 * a bad id, an empty recipient list and trailing bytes are PST_ERR_SYNTAX;
 * over the bounds is PST_ERR_TOOBIG. The encoder refuses (PST_ERR_INVAL or
 * PST_ERR_TOOBIG) every envelope the decoder would refuse, so what is
 * written can always be read back.
 * to_json: *json is a NUL-terminated malloc'd string; the caller frees it.
 * from_json: json need not be NUL-terminated; *out is freed with
 * pst_envelope_free (NULL allowed).
 */
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
 * ends become LF as Maildir readers expect (a CR not followed by LF is
 * kept). <size> is the size of the file written, those two lines included.
 * The message is streamed through a fixed 64 KiB buffer with pread(), so
 * msg_fd's offset is left as it was. hostname NULL means gethostname().
 * Returns 0 or PST_ERR_IO (errno set; ENOSPC/EDQUOT and similar are
 * temporary for the caller); PST_ERR_INVAL when an argument is missing,
 * sender or rcpt holds a control character, or name_len is shorter than
 * the name could be (PATH_MAX always suffices). On failure nothing is left
 * in tmp/ or new/ (best effort).
 * name_out (may be NULL) receives the file name in new/.
 */
int pst_maildir_deliver(const char *path, int msg_fd, const char *hostname, const char *sender,
                        const char *rcpt, uint64_t now_usec, char *name_out, size_t name_len);

#endif
