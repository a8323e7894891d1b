/*
 * sasl.h - the server side of SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616)
 * and LOGIN mechanisms, the replies of each outcome, a failed-attempt
 * limiter keyed by client address, and the check of which MAIL FROM
 * addresses an authenticated user may use.
 *
 * Pure logic: no I/O, no clock (time is passed in), no global state. The
 * password check itself (yescrypt, slow) is lib/io/users.h's business.
 *
 * ---- How the SMTP session drives it ----
 *
 * The session keeps one struct pst_sasl (zeroed or pst_sasl_init) and one
 * struct pst_authlimit shared by all sessions of the daemon (one event loop
 * thread; the limiter is not locked).
 *
 * On "AUTH <arg>" (cmd.arg from pst_smtp_cmd_parse), in this order:
 *   1. already authenticated          -> PST_SASL_ALREADY_AUTHENTICATED
 *                                        503 5.5.1 (RFC 4954 4)
 *   2. inside a mail transaction      -> PST_SASL_IN_TRANSACTION
 *                                        503 5.5.1 (RFC 4954 4)
 *   3. pst_authlimit_check(lim, ip, now) != 0
 *                                     -> PST_SASL_RATE_LIMITED 454 4.7.0
 *   4. pst_sasl_start(&s, arg, strlen(arg), tls, &out), then act on out:
 *        PST_SASL_STEP_CHALLENGE: send "334 " out.challenge CRLF with
 *          pst_sasl_challenge_add(buf, &out) (the empty challenge is
 *          "334 " with its space, RFC 4954 4, which pst_smtp_reply would
 *          not write), then read the next line and call
 *          pst_sasl_continue(&s, line, len, &out). The
 *          line is read raw (it is not an SMTP command; "*" cancels).
 *          Accept lines up to PST_SASL_MAX_LINE octets without CRLF; for
 *          a longer line, discard it up to its CRLF and pass any
 *          len > PST_SASL_MAX_LINE (e.g. SIZE_MAX) with line == NULL
 *          allowed: the answer is 500 5.5.6.
 *        PST_SASL_STEP_VERIFY: the exchange is complete. s.authcid /
 *          s.authcid_len and s.passwd / s.passwd_len hold the
 *          credentials. Hand them to a worker thread
 *          (pst_users_verify, lib/io/users.h), then pst_sasl_clear(&s)
 *          (wipes the password) and reply:
 *            PST_USERS_OK       -> PST_SASL_SUCCESS 235 2.7.0; the session
 *                                  is authenticated as s.authcid;
 *                                  pst_authlimit_success(lim, ip).
 *            PST_USERS_MISMATCH,
 *            PST_USERS_UNKNOWN  -> PST_SASL_BAD_CREDENTIALS 535 5.7.8;
 *                                  pst_authlimit_fail(lim, ip, now).
 *            error (< 0)        -> PST_SASL_TEMPFAIL 454 4.7.0.
 *        PST_SASL_STEP_FAIL: reply with out.result (pst_sasl_reply_add);
 *          when pst_sasl_result_counts(out.result) call
 *          pst_authlimit_fail(lim, ip, now). The exchange is over; the
 *          struct is already cleared.
 *
 * Replies (pst_sasl_reply_add gives exactly these lines):
 *   PST_SASL_SUCCESS               235 2.7.0 Authentication successful
 *   PST_SASL_BAD_CREDENTIALS       535 5.7.8 Authentication credentials invalid
 *   PST_SASL_TOO_WEAK              534 5.7.9 Authentication mechanism is too weak
 *   PST_SASL_ENCRYPTION_REQUIRED   538 5.7.11 Encryption required for requested
 *                                  authentication mechanism
 *   PST_SASL_TEMPFAIL              454 4.7.0 Temporary authentication failure
 *   PST_SASL_RATE_LIMITED          454 4.7.0 Too many failed authentication
 *                                  attempts, try again later
 *   PST_SASL_BAD_BASE64            501 5.5.2 Cannot decode response
 *   PST_SASL_CANCELLED             501 5.0.0 Authentication cancelled
 *   PST_SASL_SYNTAX                501 5.5.4 Syntax error in AUTH parameters
 *   PST_SASL_UNKNOWN_MECH          504 5.5.4 Unrecognized authentication type
 *   PST_SASL_LINE_TOO_LONG         500 5.5.6 Authentication exchange line is too long
 *   PST_SASL_ALREADY_AUTHENTICATED 503 5.5.1 Already authenticated
 *   PST_SASL_IN_TRANSACTION        503 5.5.1 AUTH not allowed during a mail transaction
 *
 * EHLO: advertise "AUTH PLAIN LOGIN" only once TLS is active (RFC 4954 4:
 * a mechanism that needs an encryption layer is refused, here with 538
 * 5.7.11 from pst_sasl_start when tls == 0, the RFC 4954 6 code). Before
 * STARTTLS, AUTH is not advertised.
 *
 * MAIL FROM in an authenticated session: call pst_users_may_send (or
 * pst_sasl_may_send) with cmd.local / cmd.domain; when it says no, reply
 * "553 5.7.1 Sender address not owned by the authenticated user" (RFC
 * 3463 3.8: X.7.1 delivery not authorized) and keep the session.
 *
 * ---- Choices and leniencies ----
 *  - Mechanism names are matched without regard to case ("auth plain" is
 *    accepted); RFC 4954 8 has upper-case mech-char only.
 *  - LOGIN (draft-murchison-sasl-login) is server-first; an initial response
 *    to AUTH LOGIN is taken as the user name, as deployed clients send it
 *    (instead of 501 5.7.0 of RFC 4954 4).
 *  - Base64 (RFC 4648 4) is decoded strictly as RFC 4954 4 demands: only the
 *    alphabet, padding only at the end, length a multiple of 4; pad bits
 *    that are not zero are refused too (RFC 4648 3.5 allows this).
 *  - PLAIN (RFC 4616 2): message = [authzid] NUL authcid NUL passwd. The
 *    authzid must be empty or equal to the authcid (no proxy
 *    authorization); authcid and passwd are 1..PST_SASL_MAX_FIELD octets of
 *    valid UTF-8 without NUL; the authcid has no control characters. A
 *    message that breaks these rules is 535 5.7.8 and counts as a failure.
 *    SASLprep (RFC 4013) is not applied: names and passwords are compared
 *    as octets.
 *  - LOGIN fields follow the same rules as PLAIN's authcid and passwd.
 *  - "=" as initial response means an empty response (RFC 4954 4): for
 *    PLAIN that is a malformed message (535), for LOGIN an empty user
 *    name (535).
 *  - A response "*" cancels (RFC 4954 4): 501 5.0.0, not a failure.
 */
#ifndef PST_SASL_H
#define PST_SASL_H

#include <stddef.h>
#include <stdint.h>

struct pst_buf;
struct pst_sasl_out;

#define PST_SASL_MAX_FIELD 255 /* octets of authzid, authcid or passwd */
/* Longest base64 response line (without CRLF): enough for a PLAIN message
 * of three full fields (767 octets -> 1024 base64 characters). */
#define PST_SASL_MAX_LINE 2048

enum pst_sasl_mech {
    PST_SASL_MECH_NONE = 0,
    PST_SASL_MECH_PLAIN,
    PST_SASL_MECH_LOGIN,
};

enum pst_sasl_result {
    PST_SASL_SUCCESS = 0,
    PST_SASL_BAD_CREDENTIALS,
    PST_SASL_TOO_WEAK,
    PST_SASL_ENCRYPTION_REQUIRED,
    PST_SASL_TEMPFAIL,
    PST_SASL_RATE_LIMITED,
    PST_SASL_BAD_BASE64,
    PST_SASL_CANCELLED,
    PST_SASL_SYNTAX,
    PST_SASL_UNKNOWN_MECH,
    PST_SASL_LINE_TOO_LONG,
    PST_SASL_ALREADY_AUTHENTICATED,
    PST_SASL_IN_TRANSACTION,
};

/* One reply line's parts; static strings. */
struct pst_sasl_reply {
    int code;
    const char *enh;
    const char *text;
};

/* The reply for a result (never NULL: an unknown value gives TEMPFAIL's). */
const struct pst_sasl_reply *pst_sasl_reply(enum pst_sasl_result r);
/* Appends the reply line for r to out (pst_smtp_reply); its return. */
int pst_sasl_reply_add(struct pst_buf *out, enum pst_sasl_result r);
/* Appends "334 <challenge>\r\n" for a STEP_CHALLENGE output ("334 \r\n"
 * for the empty challenge). 0, PST_ERR_INVAL when out is not a challenge,
 * or pst_buf_add's error. */
int pst_sasl_challenge_add(struct pst_buf *b, const struct pst_sasl_out *out);
/* 1 when the result is a failed authentication attempt that the limiter
 * counts (PST_SASL_BAD_CREDENTIALS only: wrong password, unknown user, a
 * malformed PLAIN message or an authzid that is not the authcid); 0 for
 * everything else (a cancel, bad base64 or an unknown mechanism never
 * reaches a password check). */
int pst_sasl_result_counts(enum pst_sasl_result r);

enum pst_sasl_state {
    PST_SASL_IDLE = 0,
    PST_SASL_WAIT_PLAIN, /* sent "334 ", waiting for the PLAIN message */
    PST_SASL_WAIT_USER,  /* LOGIN: sent "334 VXNlcm5hbWU6" */
    PST_SASL_WAIT_PASS,  /* LOGIN: sent "334 UGFzc3dvcmQ6" */
    PST_SASL_VERIFY,     /* credentials complete, waiting for the verdict */
};

/*
 * One exchange. Fixed size, no allocation: embed it in the session. The
 * fields are for reading; change them only through these functions.
 * authcid and passwd are NUL-terminated (and hold no NUL) once the state
 * is PST_SASL_VERIFY. pst_sasl_clear wipes it.
 */
struct pst_sasl {
    enum pst_sasl_mech mech;
    enum pst_sasl_state state;
    size_t authcid_len;
    size_t passwd_len;
    char authcid[PST_SASL_MAX_FIELD + 1];
    char passwd[PST_SASL_MAX_FIELD + 1];
};

enum pst_sasl_step {
    PST_SASL_STEP_CHALLENGE, /* send "334 <challenge>", then continue */
    PST_SASL_STEP_VERIFY,    /* check s->authcid / s->passwd */
    PST_SASL_STEP_FAIL,      /* send the reply of result; exchange over */
};

struct pst_sasl_out {
    enum pst_sasl_step step;
    const char *challenge;       /* STEP_CHALLENGE: static base64, or "" */
    enum pst_sasl_result result; /* STEP_FAIL */
    const char *reason;          /* STEP_FAIL: static text for the log; never
                                    holds client data or secrets */
};

/* Zeroes s (state IDLE). */
void pst_sasl_init(struct pst_sasl *s);
/* Wipes s (explicit_bzero) and sets it IDLE. */
void pst_sasl_clear(struct pst_sasl *s);

/*
 * Starts an exchange from the AUTH command's argument ("PLAIN", "PLAIN
 * <base64>", "LOGIN", "LOGIN <base64>", "=" for an empty initial response),
 * len octets, without CRLF. tls: 1 when the connection is encrypted.
 * Returns 0 and fills *out; PST_ERR_INVAL for NULL pointers; PST_ERR_STATE
 * when s is not IDLE. A failed start leaves s IDLE and wiped.
 * Unknown mechanism: 504 5.5.4 (checked before TLS, so "AUTH CRAM-MD5" over
 * plain text is 504); PLAIN/LOGIN without TLS: 538 5.7.11; a missing,
 * overlong (> 20 characters, RFC 4954 8 sasl-mech) or badly formed
 * mechanism name, or more than one argument after it: 501 5.5.4.
 */
int pst_sasl_start(struct pst_sasl *s, const char *arg, size_t len, int tls,
                   struct pst_sasl_out *out);

/*
 * Feeds one client response line (len octets, no CRLF) while the state is
 * WAIT_*. Returns 0 and fills *out; PST_ERR_INVAL for NULL pointers (line
 * may be NULL when len > PST_SASL_MAX_LINE); PST_ERR_STATE when s is not
 * waiting for a response. On STEP_FAIL s is wiped and IDLE.
 */
int pst_sasl_continue(struct pst_sasl *s, const char *line, size_t len, struct pst_sasl_out *out);

/*
 * Strict base64 decoding (RFC 4648 4, RFC 4954 4): len a multiple of 4,
 * only the alphabet, at most two '=' and only at the end, zero pad bits.
 * Writes at most outmax octets to out and their count to *outlen.
 * 0, PST_ERR_SYNTAX (not valid base64) or PST_ERR_TOOBIG (the decoded data
 * would not fit in outmax). An empty input decodes to 0 octets.
 */
int pst_sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outmax,
                        size_t *outlen);

/* 1 when s[0..len) is valid UTF-8 (RFC 3629 4: no overlong forms, no
 * surrogates, nothing above U+10FFFF) and holds no NUL; 0 otherwise. Used
 * for passwords (also by `postern user`, so no one can set a password
 * that AUTH would refuse). */
int pst_sasl_utf8_ok(const char *s, size_t len);

/*
 * May a user send with this MAIL FROM? login: the user's login name;
 * addrs[0..naddrs): the user's addresses, each "local@domain" or "@domain"
 * (any local part at that domain). local/domain: the MAIL FROM mailbox
 * split as pst_smtp_cmd_parse does (cmd.local, cmd.domain).
 *  - The null reverse-path (local and domain both "") is allowed: mail
 *    clients send auto-replies and bounces with it (RFC 3834 3.3, RFC 5321
 *    4.5.5), and it claims no address.
 *  - The login name counts as an address when it has the form local@domain.
 *  - Domains compare without regard to ASCII case (RFC 5321 2.4); local
 *    parts compare without regard to ASCII case too: RFC 5321 2.4 lets a
 *    host treat them case-sensitively, but postern's own mailboxes do not
 *    differ by case, and a user may type "Alice@". Octets above 0x7f must
 *    match exactly. No "+detail" stripping: "alice+x@d" must be listed (or
 *    "@d").
 *  - A quoted local part is compared as sent (with its quotes).
 * Returns 1 (allowed) or 0 (refused); NULL arguments refuse.
 */
int pst_sasl_may_send(const char *login, const char *const *addrs, size_t naddrs, const char *local,
                      const char *domain);

/*
 * ---- Failed-attempt limiter ----
 *
 * Counts failed AUTH attempts per client: IPv4 addresses one by one, IPv6
 * addresses by their /64 prefix (one host usually holds a whole /64). After
 * max_failures failures within window seconds from the first one, the
 * client is refused (PST_SASL_RATE_LIMITED: 454 4.7.0, the session stays
 * open; the client gets no password check until first + window). Chosen over
 * 421-and-close so that a client that also sends mail is not cut off; the
 * session's own command limits end a client that keeps trying.
 *
 * Memory is fixed at creation: a table of slots entries (8-way set
 * associative, keyed hash). When a set is full, the entry evicted is, in
 * order: one whose window has passed, the not-yet-blocked entry with the
 * oldest last failure, then the blocked entry that would be released
 * first. So a flood of new addresses forgets quiet clients before it
 * forgets blocked ones. Not thread-safe: use it from one thread.
 */
struct pst_authlimit;

/* New limiter with room for about slots clients (rounded up to a
 * multiple of 8, at least 8, at most 1<<20), max_failures >= 1,
 * window >= 1 second. NULL when out of memory or an argument is out of
 * range. */
struct pst_authlimit *pst_authlimit_new(size_t slots, unsigned max_failures, int64_t window);
void pst_authlimit_free(struct pst_authlimit *l);

/* 0 when ip (a textual IPv4 or IPv6 address) may try to authenticate at
 * now; PST_ERR_AGAIN when it is blocked; PST_ERR_INVAL when ip does not
 * parse (the caller should then not block: it is its own address). */
int pst_authlimit_check(struct pst_authlimit *l, const char *ip, int64_t now);
/* Records a failure of ip at now. 0 or PST_ERR_INVAL (ip does not parse). */
int pst_authlimit_fail(struct pst_authlimit *l, const char *ip, int64_t now);
/* Forgets ip's failures (after a successful AUTH). 0 or PST_ERR_INVAL. */
int pst_authlimit_success(struct pst_authlimit *l, const char *ip);
/* Number of clients tracked (for tests and statistics). */
size_t pst_authlimit_count(const struct pst_authlimit *l);

#endif
