/*
 * smtpc.h - the client side of SMTP without I/O: a reply parser, the EHLO
 * keyword parser, a streaming dot-stuffer and a state machine that runs one
 * mail transaction.
 *
 * RFC 5321 (client: 3.1-3.3, 4.1.1, replies 4.2, timeouts 4.5.3.2),
 * RFC 3207 (STARTTLS), RFC 2920 (PIPELINING), RFC 1870 (SIZE),
 * RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN parameters),
 * RFC 4954 (AUTH PLAIN and LOGIN), RFC 2034/3463 (enhanced status codes).
 *
 * Nothing here opens a socket, reads the clock or a file. The blocking
 * driver in lib/io/smtp_client.h runs the engine over a connection; most
 * callers want that one call (pst_smtp_client_deliver) instead of this
 * file.
 *
 * How the engine is driven (what lib/io/smtp_client.c does):
 *
 *   struct pst_smtpc *e;  pst_smtpc_new(&cfg, &e);
 *   for (;;) {
 *       take pst_smtpc_output(e, wbuf) and write it all;
 *       switch (pst_smtpc_event(e)) {
 *       case PST_SMTPC_EV_READ:      read with the timeout of
 *                                    pst_smtpc_wait_stage(e); feed the bytes
 *                                    to pst_smtpc_input(), or call
 *                                    pst_smtpc_eof() / pst_smtpc_fail();
 *       case PST_SMTPC_EV_NEED_TLS:  TLS handshake, then pst_smtpc_tls_done();
 *       case PST_SMTPC_EV_NEED_DATA: stream the message through
 *                                    pst_smtpc_data_encode() and
 *                                    pst_smtpc_data_end(), write it, then
 *                                    pst_smtpc_data_sent();
 *       case PST_SMTPC_EV_DONE:      close; read the results.
 *       }
 *   }
 *
 * Before writing a command the driver should feed any bytes that are
 * already readable: a server that answers a command it has not yet
 * received is a protocol error (the engine rejects input that arrives
 * while a command is still unsent).
 *
 * Policy decisions (documented deviations and choices):
 *  - Reply lines may end in a bare LF (the CR is optional): a reply is
 *    only read by us, so this leniency cannot smuggle anything. A line
 *    holds at most PST_SMTPC_LINE_MAX octets, a reply at most
 *    PST_SMTPC_REPLY_LINES lines and PST_SMTPC_REPLY_BYTES octets (RFC
 *    5321 4.5.3.1.5 says 512 per line; we are lenient up to the cap).
 *  - EHLO refused with 500, 501, 502 or 504 (command not recognised or
 *    not implemented, RFC 5321 3.2, 4.2.4) falls back to HELO, after which
 *    no extension is used. Other EHLO failures end the session.
 *  - An 8-bit message (body_8bit) to a server without 8BITMIME is sent
 *    as it is, without BODY=: what most MTAs do, and converting MIME is
 *    not this module's job. A message that needs SMTPUTF8 (smtputf8 set,
 *    or a non-ASCII address) to a server without it fails permanently
 *    with 5.6.7 before MAIL (RFC 6531 3.4, 3.7.3 allows no downgrade).
 *  - A message larger than the server's SIZE fails permanently with
 *    552 5.3.4 before MAIL (RFC 1870 4, 6.1).
 *  - DSN parameters (RET, ENVID, NOTIFY, ORCPT) are passed only when the
 *    server offers DSN (RFC 3461 4); otherwise they are dropped (the
 *    RFC 3461 4.1 relay behaviour; a NOTIFY=SUCCESS "relayed" DSN is the
 *    caller's business).
 *  - AUTH credentials are never sent in plaintext unless the caller says
 *    so (auth_plaintext_ok, for a unix socket or tests). With credentials
 *    and no TLS, no AUTH offered, or no PLAIN/LOGIN offered, the session
 *    fails temporarily (4.7.0) rather than send the mail unauthenticated.
 *    A refusal of the credentials (535 and the like) is temporary too: it
 *    is a configuration problem, not a reason to bounce the mail.
 *  - After the 220 reply to STARTTLS, bytes the server sent in plaintext
 *    are discarded and counted (RFC 3207 4.2: knowledge from before TLS is
 *    dropped, EHLO is sent again and its extensions replace the old ones).
 *  - Bytes that arrive when no reply is due, or while a command is still
 *    unsent, end the session with a protocol error (4.5.0).
 *  - A 421 reply at any point ends the session at once (no QUIT, RFC 5321
 *    3.8); other failures send QUIT; protocol errors and timeouts do not.
 *  - If a pipelined DATA gets 354 although MAIL failed or no recipient
 *    was accepted, an empty message (".") is sent and its reply ignored,
 *    as RFC 2920 3.1 leaves the client no other way to end DATA.
 */
#ifndef PST_SMTPC_H
#define PST_SMTPC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---- replies (RFC 5321 4.2) ------------------------------------------ */

#define PST_SMTPC_LINE_MAX    4096  /* octets of one reply line, CRLF included */
#define PST_SMTPC_REPLY_LINES 200   /* lines of one reply */
#define PST_SMTPC_REPLY_BYTES 65536 /* octets of one reply */
#define PST_SMTPC_ENH_MAX     16    /* "5.123.123" and its NUL fit */
#define PST_SMTPC_WHY_MAX     256   /* a reason text, NUL included */

/*
 * One reply. text holds the text of each line (what follows "CODE-" or
 * "CODE ") joined by '\n', with every other control octet (and NUL)
 * replaced by '?'; it is malloc'd and owned by the struct. enh is the
 * enhanced status code at the start of the first line's text (RFC 2034:
 * class.subject.detail whose class is the code's first digit), "" when
 * there is none; it stays in text too.
 */
struct pst_smtpc_reply {
    int code; /* 200..559 */
    char enh[PST_SMTPC_ENH_MAX];
    char *text;
    size_t nlines;
};
/* Frees text and zeroes the struct; safe on a zeroed struct. */
void pst_smtpc_reply_clear(struct pst_smtpc_reply *r);

/*
 * Writes "550 5.1.1 text of line 1 text of line 2" into out (NUL
 * terminated, cut to outlen): the code, then each line's text separated
 * by one space, with a repeated enhanced code at the start of later lines
 * left out. For log lines and DSN Diagnostic-Code fields. Returns the
 * length written.
 */
size_t pst_smtpc_reply_oneline(const struct pst_smtpc_reply *r, char *out, size_t outlen);

/* An incremental reply parser; keeps the partial line it has seen. */
struct pst_smtpc_rparser;

struct pst_smtpc_rparser *pst_smtpc_rparser_new(void);
void pst_smtpc_rparser_free(struct pst_smtpc_rparser *p);
/* Forgets any partial reply and a previous error. */
void pst_smtpc_rparser_reset(struct pst_smtpc_rparser *p);

/*
 * Feeds len bytes. Returns
 *   1  a reply is complete: *out is filled (clear it after use), *used
 *      tells how many bytes of in it took; the rest is the next reply;
 *   0  every byte was taken (*used == len) and the reply goes on;
 *  <0  PST_ERR_SYNTAX (a line that is not Reply-code [("-"/SP) text],
 *      a code outside 200-559, a continuation line with another code, a
 *      NUL), PST_ERR_TOOBIG (a line over PST_SMTPC_LINE_MAX, more than
 *      PST_SMTPC_REPLY_LINES lines or PST_SMTPC_REPLY_BYTES octets) or
 *      PST_ERR_NOMEM, with a reason in why (the offending text quoted with
 *      non-printable octets as \xHH, at most PST_SMTPC_WHY_MAX). After an
 *      error the parser refuses input until it is reset.
 * Memory used is bounded by PST_SMTPC_LINE_MAX + PST_SMTPC_REPLY_BYTES,
 * however the input is split.
 */
int pst_smtpc_rparser_feed(struct pst_smtpc_rparser *p, const char *in, size_t len, size_t *used,
                           struct pst_smtpc_reply *out, char *why, size_t whylen);

/* Parses one whole reply at the start of in: the same returns as the
 * feed, but an incomplete reply gives PST_ERR_AGAIN. */
int pst_smtpc_reply_parse(const char *in, size_t len, size_t *used, struct pst_smtpc_reply *out,
                          char *why, size_t whylen);

/* ---- EHLO keywords (RFC 5321 4.1.1.1, 2.2.2) -------------------------- */

#define PST_SMTPC_EXT_PIPELINING 0x001 /* RFC 2920 */
#define PST_SMTPC_EXT_SIZE       0x002 /* RFC 1870 */
#define PST_SMTPC_EXT_8BITMIME   0x004 /* RFC 6152 */
#define PST_SMTPC_EXT_SMTPUTF8   0x008 /* RFC 6531 */
#define PST_SMTPC_EXT_STARTTLS   0x010 /* RFC 3207 */
#define PST_SMTPC_EXT_DSN        0x020 /* RFC 3461 */
#define PST_SMTPC_EXT_AUTH       0x040 /* RFC 4954 */
#define PST_SMTPC_EXT_ENHANCED   0x080 /* ENHANCEDSTATUSCODES, RFC 2034 */
#define PST_SMTPC_EXT_CHUNKING   0x100 /* RFC 3030 (recorded, not used) */

#define PST_SMTPC_AUTH_PLAIN 0x1
#define PST_SMTPC_AUTH_LOGIN 0x2
#define PST_SMTPC_AUTH_OTHER 0x4 /* some other mechanism was offered */

struct pst_smtpc_ext {
    unsigned flags;    /* PST_SMTPC_EXT_* */
    uint64_t size_max; /* SIZE's number; 0 when absent or 0 (no limit) */
    unsigned auth;     /* PST_SMTPC_AUTH_* offered */
};

/* Reads the keywords of an EHLO reply (lines after the first),
 * case-insensitively; "AUTH=..." (an old form) counts as AUTH. Unknown
 * keywords and bad parameters are ignored. Fills *ext (zeroed first). */
void pst_smtpc_ehlo_parse(const struct pst_smtpc_reply *r, struct pst_smtpc_ext *ext);

/* ---- the message body: dot-stuffing (RFC 5321 4.5.2) ------------------ */

/*
 * A streaming encoder for the DATA section: a '.' at the start of a line
 * becomes "..", and every line end goes out as CRLF: a bare CR or bare LF
 * in the input is written as CRLF, so nothing we send can look like a
 * different end of data to the receiver (the SMTP smuggling family).
 * State carries across calls, so any split of the input gives the same
 * bytes.
 */
struct pst_smtpc_dot {
    int bol;            /* at the start of a line */
    int cr;             /* the last input octet was a CR */
    uint64_t out_bytes; /* octets produced so far */
};

void pst_smtpc_dot_init(struct pst_smtpc_dot *d);
/* Appends the stuffed form of in to out. out must have room for 2 * len
 * + 2 more octets, else PST_ERR_TOOBIG and nothing is appended. Returns 0,
 * PST_ERR_TOOBIG or PST_ERR_NOMEM. */
int pst_smtpc_data_encode(struct pst_smtpc_dot *d, const char *in, size_t len, struct pst_buf *out);
/* Ends the data: a CRLF when the last line has none, then ".\r\n"
 * (RFC 5321 4.1.1.4). Appends at most 5 octets, all or nothing. */
int pst_smtpc_data_end(struct pst_smtpc_dot *d, struct pst_buf *out);

/* ---- the engine ------------------------------------------------------- */

enum pst_smtpc_tls {
    PST_SMTPC_TLS_NONE = 0,          /* never STARTTLS */
    PST_SMTPC_TLS_OPPORTUNISTIC = 1, /* STARTTLS whenever offered */
    PST_SMTPC_TLS_REQUIRED = 2,      /* fail (4.7.10, temporary) when not offered */
};

/* Where a session ended, for a DSN Diagnostic-Code and a log line. */
enum pst_smtpc_stage {
    PST_SMTPC_STAGE_CONNECT = 0, /* "connection" */
    PST_SMTPC_STAGE_GREETING,    /* "in the greeting" */
    PST_SMTPC_STAGE_EHLO,        /* "after EHLO" */
    PST_SMTPC_STAGE_HELO,        /* "after HELO" */
    PST_SMTPC_STAGE_STARTTLS,    /* "after STARTTLS" */
    PST_SMTPC_STAGE_TLS,         /* "in the TLS handshake" */
    PST_SMTPC_STAGE_AUTH,        /* "after AUTH" */
    PST_SMTPC_STAGE_BEFORE_MAIL, /* "before MAIL FROM" (our own refusal) */
    PST_SMTPC_STAGE_MAIL,        /* "after MAIL FROM" */
    PST_SMTPC_STAGE_RCPT,        /* "after RCPT TO" */
    PST_SMTPC_STAGE_DATA,        /* "after DATA" */
    PST_SMTPC_STAGE_DATA_BLOCK,  /* "while sending data" */
    PST_SMTPC_STAGE_DOT,         /* "after end of data" */
    PST_SMTPC_STAGE_QUIT,        /* "after QUIT" */
};
const char *pst_smtpc_stage_name(enum pst_smtpc_stage s);

enum pst_smtpc_status {
    PST_SMTPC_OK = 0,   /* delivered (a recipient) / transaction done (session) */
    PST_SMTPC_TEMP = 1, /* try again later (4xx, timeouts, lost connection) */
    PST_SMTPC_PERM = 2, /* give up and bounce (5xx) */
};

struct pst_smtpc_rcpt {
    const char *addr;   /* mailbox without <>; no control octets */
    const char *notify; /* NOTIFY= value (e.g. "SUCCESS,FAILURE") or NULL */
    const char *orcpt;  /* ORCPT= value as xtext ("rfc822;a@b.example") or NULL */
};

/* Everything is borrowed and must outlive the engine. */
struct pst_smtpc_config {
    const char *ehlo_name; /* our host name (or address literal) */
    const char *sender;    /* reverse-path without <>, "" for the null sender */
    const struct pst_smtpc_rcpt *rcpts;
    size_t nrcpts;         /* 1 .. PST_SMTPC_MAX_RCPTS */
    uint64_t size;         /* message octets for SIZE= (0: not announced) */
    int body_8bit;         /* the message has 8-bit octets: BODY=8BITMIME */
    int smtputf8;          /* the message needs SMTPUTF8 (also implied by a
                              non-ASCII sender or recipient) */
    const char *dsn_ret;   /* "FULL" or "HDRS", or NULL */
    const char *dsn_envid; /* ENVID as xtext, or NULL */
    enum pst_smtpc_tls tls;
    int tls_active;        /* the connection is already TLS (implicit TLS,
                              port 465): no STARTTLS */
    const char *auth_user; /* NULL: no AUTH */
    const char *auth_pass;
    int auth_plaintext_ok; /* allow AUTH without TLS */
};

#define PST_SMTPC_MAX_RCPTS 10000
#define PST_SMTPC_TEXT_MAX  4096 /* stored reply text (one-line form) */

struct pst_smtpc;

/*
 * Checks cfg (no control octets, SP, '<' or '>' in addresses or
 * parameters, a non-empty EHLO name, 1..PST_SMTPC_MAX_RCPTS recipients,
 * both AUTH strings or neither) and makes an engine waiting for the
 * greeting. Returns 0 and *out, PST_ERR_INVAL (bad cfg) or PST_ERR_NOMEM.
 */
int pst_smtpc_new(const struct pst_smtpc_config *cfg, struct pst_smtpc **out);
/* Frees the engine (wiping buffers that held credentials); NULL is fine. */
void pst_smtpc_free(struct pst_smtpc *e);

enum pst_smtpc_event {
    PST_SMTPC_EV_READ = 0,  /* a reply is due: read (after writing output) */
    PST_SMTPC_EV_NEED_TLS,  /* do the TLS handshake, then pst_smtpc_tls_done */
    PST_SMTPC_EV_NEED_DATA, /* send the message, then pst_smtpc_data_sent */
    PST_SMTPC_EV_DONE,      /* the session is over: close the connection */
};
/* What the driver must do next (after writing any output). */
enum pst_smtpc_event pst_smtpc_event(const struct pst_smtpc *e);
/* The stage of the reply the engine is waiting for: the driver picks its
 * timeout by it (RFC 5321 4.5.3.2). While the message is being sent it is
 * PST_SMTPC_STAGE_DATA_BLOCK. */
enum pst_smtpc_stage pst_smtpc_wait_stage(const struct pst_smtpc *e);

/* Moves the bytes to send (commands) to the end of out and empties the
 * engine's buffer; all or nothing (PST_ERR_TOOBIG / PST_ERR_NOMEM). The
 * bytes may hold AUTH credentials: use a pst_buf_new_secret() buffer. */
int pst_smtpc_output(struct pst_smtpc *e, struct pst_buf *out);
/* Octets waiting in the engine's output. */
size_t pst_smtpc_output_len(const struct pst_smtpc *e);

/* Feeds bytes received from the server. Returns 0 (protocol errors end
 * the session and are reported in the result, see pst_smtpc_event) or
 * PST_ERR_NOMEM (the session ends too). Bytes fed while the engine waits
 * for the TLS handshake are discarded (counted in info.discarded); while
 * the message is being sent they are a protocol error; after DONE they
 * are ignored. */
int pst_smtpc_input(struct pst_smtpc *e, const char *in, size_t len);
/* The server closed the connection. Ends the session: quietly after QUIT,
 * else as a temporary failure ("connection closed", 4.4.2). */
void pst_smtpc_eof(struct pst_smtpc *e);
/* The driver gave up (timeout, I/O error): ends the session as a
 * temporary failure at the current stage with enh (NULL: "4.4.2") and
 * reason. Ignored once the session has a result and is only quitting. */
void pst_smtpc_fail(struct pst_smtpc *e, const char *enh, const char *reason);
/* The TLS handshake after STARTTLS succeeded (ok = 1: EHLO is sent again)
 * or failed (ok = 0: the session ends, temporary, 4.7.5, reason). */
void pst_smtpc_tls_done(struct pst_smtpc *e, int ok, const char *reason);
/* The whole message and its ".\r\n" have been written. */
void pst_smtpc_data_sent(struct pst_smtpc *e);

/* ---- results (valid at any time, final after DONE) --------------------- */

struct pst_smtpc_outcome {
    enum pst_smtpc_status status;
    int code;                    /* the server's reply code; 0 when no reply (local) */
    char enh[PST_SMTPC_ENH_MAX]; /* the server's, or ours for local errors */
    const char *text;            /* one-line reply ("550 5.1.1 ...") or our reason;
                                    borrowed from the engine, "" when none */
    enum pst_smtpc_stage stage;
    int from_server; /* 1: code/text are the server's reply */
};

/* The session: OK when the server accepted the end of data (look at each
 * recipient still), else the failure that ended the transaction. */
void pst_smtpc_session(const struct pst_smtpc *e, struct pst_smtpc_outcome *out);
/* Recipient i: OK when delivered; the refusal at RCPT or after the data;
 * when the session ended before it had its own result, the session's
 * outcome (TEMP when the session ended without a failure of its own). */
void pst_smtpc_rcpt_outcome(const struct pst_smtpc *e, size_t i, struct pst_smtpc_outcome *out);
/* The server's extensions after the last EHLO (zero after HELO). */
const struct pst_smtpc_ext *pst_smtpc_extensions(const struct pst_smtpc *e);
/* Counters: TLS was started (and tls_done(ok=1)), AUTH succeeded, octets
 * of plaintext discarded after STARTTLS, HELO fallback used, replies. */
struct pst_smtpc_info {
    int tls;
    int auth;
    int helo;
    size_t discarded;
    int tls_not_offered; /* STARTTLS was wanted but not offered / refused */
    size_t replies;      /* complete replies read (a driver restarts its
                            reply timeout when this moves) */
};
void pst_smtpc_info(const struct pst_smtpc *e, struct pst_smtpc_info *out);

#endif
