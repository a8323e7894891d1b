/*
 * users.h - the submission users file: who may AUTH, with which password
 * hash, and which MAIL FROM addresses each user may use.
 *
 * ---- The file ----
 *
 * One user per line, three fields separated by ':':
 *
 *     # comment
 *     alice:$y$j9T$...$...:alice@example.org,@alias.example
 *     bob:$y$j9T$...$...:
 *
 *   name      1..PST_USERS_MAX_NAME octets of A-Z a-z 0-9 . _ - + @, not
 *             starting with '#'; unique without regard to ASCII case (and
 *             looked up that way: "Alice" logs in as "alice").
 *   hash      a crypt(5) hash that libxcrypt accepts as current
 *             (crypt_checksalt() == CRYPT_SALT_OK). `postern user` writes
 *             yescrypt ("$y$"); others (e.g. "$6$" from /etc/shadow) are
 *             accepted so accounts can be moved over. Never a password.
 *   addresses the MAIL FROM addresses the user may send as, comma
 *             separated, possibly none: "local@domain" or "@domain" (any
 *             local part at the domain); see pst_sasl_may_send (sasl.h) for
 *             the comparison rules. A name of the form local@domain is an
 *             address too.
 *
 * Lines end in LF (the last one may lack it); a CR, a NUL, a line over
 * PST_USERS_MAX_LINE octets, a fourth field, spaces, or more than
 * PST_USERS_MAX_USERS users are errors. Blank lines and lines starting
 * with '#' are ignored. Errors read "FILE:LINE: reason" and never quote a
 * hash.
 *
 * The file must not be readable or writable by group or others (it holds
 * hashes an attacker could crack offline): pst_users_load refuses such a
 * file with PST_USERS_ERR_MODE. The edits (pst_users_add / _passwd / _del)
 * rewrite it atomically: a new file (mode 0600, the old file's owner and
 * group), fsync, rename over the old one, fsync the directory, all under
 * an flock on the directory so two edits do not lose each other's change.
 * Comments and blank lines are kept. When the path is a symlink the file
 * it points to is rewritten.
 *
 * ---- How the daemon uses it ----
 *
 *   At start and on reload (before or after dropping privileges: the file
 *   must be readable by the user that loads it):
 *       struct pst_users *u; char err[256];
 *       rc = pst_users_load(path, &u, err, sizeof(err));
 *       rc < 0: log err (rc == PST_USERS_ERR_MODE: "chmod 600"); at start
 *       submission AUTH cannot work; on reload keep the old table.
 *   The table is immutable once loaded and may be shared by any number of
 *   threads; free it when no worker uses it any more (reference count it
 *   across a reload).
 *
 *   On AUTH (sasl.h, STEP_VERIFY), on a worker thread (yescrypt takes tens
 *   of milliseconds and 16 MiB):
 *       const struct pst_user *who;
 *       rc = pst_users_verify(u, s.authcid, s.passwd, s.passwd_len, &who);
 *       PST_USERS_OK        -> 235 2.7.0, remember who (or its name)
 *       PST_USERS_MISMATCH  -> 535 5.7.8 (log "bad password for NAME")
 *       PST_USERS_UNKNOWN   -> 535 5.7.8 (same reply: the client must not
 *                              learn which names exist; the time taken is
 *                              the same too)
 *       rc < 0              -> 454 4.7.0
 *
 *   On MAIL FROM in an authenticated session:
 *       if (!pst_users_may_send(who, cmd.local, cmd.domain))
 *           reply "553 5.7.1 Sender address not owned by the authenticated user"
 *   The null sender <> is allowed.
 */
#ifndef PST_USERS_H
#define PST_USERS_H

#include <stddef.h>

#include "err.h"

#define PST_USERS_MAX_LINE  4096
#define PST_USERS_MAX_USERS 10000
#define PST_USERS_MAX_ADDRS 100 /* per user */
#define PST_USERS_MAX_NAME  254 /* a name may be an address */
#define PST_USERS_MAX_FILE  (8u * 1024 * 1024)
#define PST_USERS_MAX_PASS  255 /* = PST_SASL_MAX_FIELD */

/* pst_users_load's error for a file that group or others may read or write:
 * the file is refused. (PST_ERR_STATE: the file exists and parses, but its
 * mode is wrong.) */
#define PST_USERS_ERR_MODE PST_ERR_STATE

/* pst_users_verify's verdicts (>= 0); errors are negative PST_ERR_*. */
enum {
    PST_USERS_OK = 0,
    PST_USERS_MISMATCH = 1,
    PST_USERS_UNKNOWN = 2,
};

struct pst_users;
struct pst_user;

/*
 * Parses a users file held in memory (len octets; NULs are errors). fname
 * names it in error texts ("FILE:LINE: reason", written to err, at most
 * errlen octets with the NUL; err may be NULL). Returns 0 and *out (the
 * caller frees it with pst_users_free), or PST_ERR_SYNTAX, PST_ERR_TOOBIG
 * (len > PST_USERS_MAX_FILE, too many users), PST_ERR_NOMEM, PST_ERR_INVAL.
 */
int pst_users_parse(const char *buf, size_t len, const char *fname, struct pst_users **out,
                    char *err, size_t errlen);

/*
 * Reads and parses the file at path. Besides pst_users_parse's errors:
 * PST_ERR_NOTFOUND (no such file), PST_ERR_IO (errno set; not a regular
 * file is EINVAL), PST_USERS_ERR_MODE (group or others may read or write
 * it). err says which, with the path.
 */
int pst_users_load(const char *path, struct pst_users **out, char *err, size_t errlen);

/* Frees the table; NULL is allowed. The hashes are wiped. */
void pst_users_free(struct pst_users *u);

/* Number of users, and the i-th in file order (NULL when i is too big). */
size_t pst_users_count(const struct pst_users *u);
const struct pst_user *pst_users_at(const struct pst_users *u, size_t i);
/* The user with this name (ASCII case ignored), or NULL. */
const struct pst_user *pst_users_find(const struct pst_users *u, const char *name);

/* A user's name and addresses; borrowed, valid while the table lives. */
const char *pst_user_name(const struct pst_user *user);
size_t pst_user_naddrs(const struct pst_user *user);
const char *pst_user_addr(const struct pst_user *user, size_t i);

/*
 * Checks a password (len octets; at most PST_USERS_MAX_PASS, no NUL) for
 * name. Returns PST_USERS_OK (and *user when user is not NULL),
 * PST_USERS_MISMATCH, PST_USERS_UNKNOWN (no such user: a hash is computed
 * anyway, with the cost of the table's first user, so the answer takes as
 * long as for a real user), or PST_ERR_INVAL / PST_ERR_NOMEM /
 * PST_ERR_CRYPTO. The result of crypt is compared in constant time.
 * Thread-safe: every call has its own crypt state (heap, wiped).
 */
int pst_users_verify(const struct pst_users *u, const char *name, const char *password, size_t len,
                     const struct pst_user **user);

/* pst_sasl_may_send for this user: 1 may send as local@domain, 0 not.
 * local == "" and domain == "" is the null sender: allowed. */
int pst_users_may_send(const struct pst_user *user, const char *local, const char *domain);

/*
 * Hashes a password with yescrypt (crypt_gensalt_rn("$y$") with the
 * default cost and a salt from the OS, then crypt_rn) into out (outlen
 * >= 128 is enough). 0, PST_ERR_INVAL (password empty, longer than
 * PST_USERS_MAX_PASS, not UTF-8 or holding a NUL; outlen too small),
 * PST_ERR_CRYPTO.
 */
int pst_users_hash(const char *password, size_t len, char *out, size_t outlen);

/* 1 when name may be a user name in the file, 0 otherwise. */
int pst_users_name_ok(const char *name);
/* 1 when addr may be listed as an address ("local@domain" or "@domain"). */
int pst_users_addr_ok(const char *addr);

/*
 * The edits of `postern user`. Each reads the file (missing: empty for
 * add), refuses a file that does not parse or has a bad mode, changes one
 * line and rewrites the file atomically (see above). err gets the reason.
 *   add:    PST_ERR_INVAL for a bad name, address or password, or a name
 *           that exists already ("user exists" in err).
 *   passwd: PST_ERR_NOTFOUND when there is no such user (or no file).
 *   del:    PST_ERR_NOTFOUND likewise.
 * Besides: the errors of pst_users_load (but NOTFOUND for add), PST_ERR_IO
 * (errno set), PST_ERR_TOOBIG (the file would pass the limits).
 */
int pst_users_add(const char *path, const char *name, const char *password, size_t len,
                  const char *const *addrs, size_t naddrs, char *err, size_t errlen);
int pst_users_passwd(const char *path, const char *name, const char *password, size_t len,
                     char *err, size_t errlen);
int pst_users_del(const char *path, const char *name, char *err, size_t errlen);

#endif
