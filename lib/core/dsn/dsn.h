/*
 * dsn.h - delivery status notifications: the SMTP DSN extension's
 * parameters (RFC 3461) and the bounce / delay / success reports
 * themselves (RFC 3464 message/delivery-status inside an RFC 6522
 * multipart/report), without I/O.
 *
 * RFC 3461 4 (xtext), 4.1 (NOTIFY), 4.2 (ORCPT), 4.3 (RET), 4.4 (ENVID),
 * 4.5 and 5.1 (501 for bad or repeated values), 5.2 (no DSN to a null
 * sender), 5.2.1-5.2.6 (when a DSN is issued), 5.4 (sizes), 6 (the DSN);
 * RFC 3464 2 (the fields); RFC 6522 (multipart/report); RFC 3834 5
 * (Auto-Submitted); RFC 6533 3 (the utf-8 address type).
 *
 * Nothing here reads the clock or random numbers: the time and a few
 * random bytes are passed in.
 *
 * ---- How the daemon uses this module ----
 *
 * SMTP server (session):
 *   - advertise "DSN" in the EHLO reply;
 *   - MAIL: pst_smtp_mail_params_dsn(cmd, 1, &mp, &why) (smtp.h) fills
 *     mp.ret (enum pst_dsn_ret) and mp.envid (the ENVID xtext as received,
 *     "" when absent);
 *   - RCPT: pst_smtp_rcpt_params_dsn(cmd, mp.smtputf8, 1, &rp, &why) fills
 *     rp.notify (PST_DSN_NOTIFY_* bits, 0 when absent) and rp.orcpt (the
 *     ORCPT value "addr-type;xtext" as received, "" when absent);
 *   - store ret, envid, and per recipient notify and orcpt in the queue
 *     envelope exactly as received (RFC 3461 5.2.1: relayed unchanged).
 *   - accept command lines of at least 1036 octets (RFC 3461 5.4).
 *
 * SMTP client (relaying to a server that advertised DSN, RFC 3461 5.2.1):
 *   pst_dsn_mail_params_encode(buf, ret, envid) and
 *   pst_dsn_rcpt_params_encode(buf, notify, orcpt) append " RET=.. ENVID=.."
 *   and " NOTIFY=.. ORCPT=.." to the MAIL / RCPT line. To a server without
 *   DSN send none of them (5.2.2 a) and report SUCCESS as "relayed".
 *
 * Queue manager, after a delivery attempt for a recipient:
 *   1. the action: delivered (local mailbox), relayed (accepted by a
 *      server without DSN, NOTIFY had SUCCESS), failed (permanent reply,
 *      pst_dsn_status_permanent(), or retry time exhausted), delayed
 *      (still retrying after the delay-warning time);
 *   2. pst_dsn_wanted(notify, action, delay_policy) says whether this
 *      recipient is reported; pst_dsn_sender_ok(sender) is 0 for the null
 *      sender: never send a DSN about a DSN (RFC 3461 5.2), tell the
 *      postmaster through the log instead;
 *   3. fill a struct pst_dsn_msg with the recipients to report (the
 *      generator skips those pst_dsn_wanted() refuses anyway), the time,
 *      16 random bytes, and the queued message text, and call
 *      pst_dsn_generate(&m, buf, &info). buf is a pst_buf whose maximum
 *      bounds the report (max_return + 256 KiB is ample for a few dozen
 *      recipients; allow about 8 KiB more per recipient beyond that, and
 *      on PST_ERR_TOOBIG retry with a smaller max_return);
 *   4. queue the result as a new message: MAIL FROM:<> (RFC 3461 6.1),
 *      RCPT TO:<the original sender> with NOTIFY=NEVER if the next hop
 *      offers DSN and no RET; BODY=8BITMIME when info.needs_8bitmime,
 *      SMTPUTF8 when info.needs_smtputf8.
 *
 * In code (queue manager, one message, after its delivery attempts):
 *
 *   struct pst_dsn_rcpt r[n]; size_t k = 0;
 *   if (!pst_dsn_sender_ok(env->sender)) { log to the postmaster; done; }
 *   for each recipient e with a final or delayed outcome:
 *       r[k++] = (struct pst_dsn_rcpt){ .rcpt = e->addr, .orcpt = e->orcpt,
 *           .notify = e->notify, .action = PST_DSN_FAILED, .status = "5.1.1",
 *           .remote_mta = "mx.example.net", .diag = e->last_reply,
 *           .last_attempt = e->last_try, .retry_until = env->arrival + max_age };
 *   unsigned char seed[16]; RAND_bytes(seed, sizeof(seed));  (in the daemon)
 *   struct pst_dsn_msg m = { .reporting_mta = conf->hostname,
 *       .sender = env->sender, .envid = env->envid, .ret = env->ret,
 *       .arrival = env->arrival, .now = time(NULL), .seed = seed,
 *       .seed_len = sizeof(seed), .original = text, .original_len = len,
 *       .max_return = 0, .delay_policy = conf->delay_warnings,
 *       .rcpts = r, .nrcpts = k };
 *   struct pst_buf *b = pst_buf_new(PST_DSN_DEFAULT_MAX_RETURN + (256u << 10));
 *   struct pst_dsn_info info;
 *   rc = pst_dsn_generate(&m, b, &info);
 *   rc == PST_ERR_NOTFOUND: nobody asked for this notice, nothing to send;
 *   rc == 0: queue pst_buf_data(b) from "<>" to env->sender; mark the
 *   reported recipients so the same notice is not sent twice (a delay
 *   notice once per recipient, a failure once).
 *
 * Deliberate choices:
 *  - xtext hexchars must use upper-case hex digits (RFC 3461 4); "+2b" is
 *    refused.
 *  - ENVID (RFC 3461 4.4) and ORCPT (4.2) are refused above 100 and 500
 *    octets of xtext, and when their decoded value is not printable
 *    US-ASCII (graphic, SP or HTAB; HTAB is written as SP in reports).
 *  - NOTIFY with a repeated keyword ("FAILURE,FAILURE") is refused.
 *  - Non-ASCII (SMTPUTF8) addresses are written in the ASCII
 *    message/delivery-status with the RFC 6533 3 "utf-8" address type in
 *    its utf-8-addr-xtext form (non-ASCII characters, "+", "=", "\" and
 *    controls as \x{HEX}); message/global-delivery-status is not used.
 *    The human-readable part shows them as UTF-8 (charset=utf-8, 8bit).
 *  - The returned message is message/rfc822, or message/global when its
 *    header section holds non-ASCII octets (RFC 6532 3.7); headers only
 *    are text/rfc822-headers (message/global-headers, RFC 6533 6.3).
 *    Bare CR or LF in it are written as CRLF, NUL as "?", and lines over
 *    998 octets (RFC 5322 2.1.1) are broken with CRLF SP.
 */
#ifndef PST_DSN_H
#define PST_DSN_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

/* ---- RFC 3461 parameters ---- */

#define PST_DSN_NOTIFY_NEVER   0x1u
#define PST_DSN_NOTIFY_SUCCESS 0x2u
#define PST_DSN_NOTIFY_FAILURE 0x4u
#define PST_DSN_NOTIFY_DELAY   0x8u

enum pst_dsn_ret {
    PST_DSN_RET_NONE = 0, /* no RET parameter */
    PST_DSN_RET_FULL = 1,
    PST_DSN_RET_HDRS = 2,
};

#define PST_DSN_ENVID_MAX    100 /* RFC 3461 4.4 and 5.4 a: xtext octets */
#define PST_DSN_ORCPT_MAX    500 /* RFC 3461 4.2 and 5.4 c */
#define PST_DSN_NOTIFY_MAX   28  /* RFC 3461 5.4 b */
#define PST_DSN_ADDRTYPE_MAX 32

/*
 * Decodes xtext (RFC 3461 4) in[0..len) into out (room for outcap octets,
 * a NUL is added, so outcap must exceed the decoded length). Returns 0
 * and sets *outlen, PST_ERR_SYNTAX (an octet outside "!".."~", a bare "=",
 * "+" not followed by two upper-case hex digits) or PST_ERR_TOOBIG; out
 * and *outlen (outlen may be NULL) are written only on success. The
 * decoded text may hold any octet, NUL included: callers check it.
 */
int pst_xtext_decode(const char *in, size_t len, char *out, size_t outcap, size_t *outlen);
/* Appends in[0..len) as xtext: "!".."~" but "+" and "=" as themselves,
 * every other octet as "+XX". All or nothing; 0 or a pst_buf error. */
int pst_xtext_encode(struct pst_buf *out, const void *in, size_t len);

/*
 * Parsers for the parameter values (the text after "KEYWORD="; NULL when
 * the parameter had no value). Each returns 0 and writes its result, or
 * PST_ERR_SYNTAX with *why set to a static reason for the 501 5.5.4 reply
 * (RFC 3461 5.1).
 */
/* NOTIFY: "NEVER" alone, or a comma list of SUCCESS, FAILURE, DELAY, any
 * case, each at most once (RFC 3461 4.1). *out gets PST_DSN_NOTIFY_*. */
int pst_dsn_parse_notify(const char *v, unsigned *out, const char **why);
/* RET: FULL or HDRS, any case (RFC 3461 4.3). */
int pst_dsn_parse_ret(const char *v, enum pst_dsn_ret *out, const char **why);
/* ENVID: xtext of at most PST_DSN_ENVID_MAX octets whose decoded value is
 * non-empty printable US-ASCII (RFC 3461 4.4). When decoded is not NULL it
 * gets the decoded value (room for PST_DSN_ENVID_MAX + 1 octets). */
int pst_dsn_parse_envid(const char *v, char *decoded, const char **why);
/* ORCPT: addr-type ";" xtext (RFC 3461 4.2), at most PST_DSN_ORCPT_MAX
 * octets; addr-type is an atom of at most PST_DSN_ADDRTYPE_MAX octets
 * (any registered type: rfc822, utf-8, x400...), the decoded address is
 * non-empty printable US-ASCII. When type / addr are not NULL they get the
 * type as sent (room for PST_DSN_ADDRTYPE_MAX + 1) and the decoded address
 * (room for PST_DSN_ORCPT_MAX + 1). */
int pst_dsn_parse_orcpt(const char *v, char *type, char *addr, const char **why);

/* Appends the NOTIFY value for flags ("NEVER", "SUCCESS,FAILURE,DELAY"
 * in that order). PST_ERR_INVAL for 0, NEVER mixed with others, or
 * unknown bits. */
int pst_dsn_notify_encode(struct pst_buf *out, unsigned notify);
/* For relaying (RFC 3461 5.2.1): appends " RET=FULL|HDRS" when ret is set
 * and " ENVID=<envid>" when envid is neither NULL nor "" (the xtext as
 * received, checked again with pst_dsn_parse_envid). All or nothing. */
int pst_dsn_mail_params_encode(struct pst_buf *out, enum pst_dsn_ret ret, const char *envid);
/* Appends " NOTIFY=..." when notify != 0 and " ORCPT=<orcpt>" when orcpt
 * is neither NULL nor "" (the value as received, checked again). */
int pst_dsn_rcpt_params_encode(struct pst_buf *out, unsigned notify, const char *orcpt);
/* Appends an ORCPT value made from an envelope address (RFC 3461 5.2.1 d
 * allows adding one): "rfc822;" xtext for ASCII, "utf-8;" with the
 * RFC 6533 utf-8-addr-xtext form for non-ASCII. PST_ERR_INVAL for an empty
 * address or one with control octets, PST_ERR_TOOBIG past
 * PST_DSN_ORCPT_MAX. */
int pst_dsn_orcpt_from_addr(struct pst_buf *out, const char *addr);

/* ---- decisions ---- */

enum pst_dsn_action {
    PST_DSN_FAILED = 1,
    PST_DSN_DELAYED = 2,
    PST_DSN_DELIVERED = 3,
    PST_DSN_RELAYED = 4,
    PST_DSN_EXPANDED = 5,
};

/* The RFC 3464 2.3.3 keyword ("failed"...), NULL for a bad value. */
const char *pst_dsn_action_name(enum pst_dsn_action a);

/*
 * Whether a recipient gets a notice (RFC 3461 5.2.2-5.2.6): with no NOTIFY
 * (notify == 0) failures are reported, delays when delay_policy is
 * non-zero, successes never; NEVER reports nothing; otherwise FAILURE,
 * DELAY and SUCCESS select failed, delayed and delivered / relayed /
 * expanded. Whether a delay is long enough for a notice at all is the
 * queue manager's choice (delay notices are never required, 5.2.5). 1 or 0.
 */
int pst_dsn_wanted(unsigned notify, enum pst_dsn_action action, int delay_policy);
/* 0 for the null reverse-path ("" or NULL): never a DSN about a DSN or to
 * nobody (RFC 3461 5.2, RFC 5321 4.5.5); 1 otherwise. */
int pst_dsn_sender_ok(const char *sender);
/* Status codes "class.subject.detail" (RFC 3463 2): 1 when status is a
 * well-formed 5.x.x, 0 for 2.x.x / 4.x.x, -1 when malformed. */
int pst_dsn_status_permanent(const char *status);
/* Picks the status for an SMTP reply (RFC 3463, RFC 2034): the enhanced
 * code at the start of text when it is well formed and of the reply's
 * class, else "4.0.0" / "5.0.0" / "2.0.0" by the reply code (RFC 3461
 * 6.3 g). out has room for 16 octets. PST_ERR_INVAL for a code outside
 * 200-599 or 3xx. */
int pst_dsn_status_from_reply(int code, const char *text, char out[16]);

/* ---- the report ---- */

#define PST_DSN_MAX_RCPTS          1000
#define PST_DSN_DEFAULT_MAX_RETURN (10u * 1024 * 1024)
#define PST_DSN_DIAG_MAX           2048 /* diagnostic text kept, octets */
#define PST_DSN_SEED_MIN           8    /* random bytes at least */

/* One recipient to report on. Strings are borrowed; NULL = absent. */
struct pst_dsn_rcpt {
    const char *rcpt;  /* the envelope recipient (RCPT TO, no brackets); required */
    const char *orcpt; /* ORCPT as received ("rfc822;a+40b"), or NULL */
    unsigned notify;   /* NOTIFY flags from RCPT, 0 when absent */
    enum pst_dsn_action action;
    /* "5.1.1"; when NULL, malformed or of a class that does not fit the
     * action (failed: 4 or 5, delayed: 4, others: 2): 5.0.0, 4.0.0 or
     * 2.0.0 by the action */
    const char *status;
    const char *remote_mta; /* the remote host's name (Remote-MTA: dns;) */
    const char *diag;       /* the reply text, "550 5.1.1 no such user";
                             * multi-line replies welcome, flattened */
    const char *diag_type;  /* NULL: "smtp" (RFC 3464 2.3.6) */
    time_t last_attempt;    /* 0: omitted */
    time_t retry_until;     /* delayed only; 0: omitted */
};

/* The message being reported on. */
struct pst_dsn_msg {
    const char *reporting_mta; /* this host's name, an ASCII domain; required */
    const char *sender;        /* the envelope sender; "" is refused */
    const char *envid;         /* ENVID xtext as received, or NULL */
    enum pst_dsn_ret ret;
    time_t arrival;            /* 0: Arrival-Date omitted */
    time_t now;                /* Date: and the Message-ID */
    const unsigned char *seed; /* random bytes for boundary and Message-ID */
    size_t seed_len;           /* PST_DSN_SEED_MIN..64 */
    const char *original;      /* the queued message (header, CRLF, body) */
    size_t original_len;
    size_t max_return; /* 0: PST_DSN_DEFAULT_MAX_RETURN; above it, headers only */
    int delay_policy;  /* report delays for recipients without NOTIFY */
    const struct pst_dsn_rcpt *rcpts;
    size_t nrcpts; /* at most PST_DSN_MAX_RCPTS */
};

struct pst_dsn_info {
    size_t nreported;         /* recipients in the report */
    enum pst_dsn_action kind; /* FAILED, DELAYED or DELIVERED (any success) */
    int full_returned;        /* the whole message was returned */
    int needs_8bitmime;       /* 8-bit octets in the report */
    int needs_smtputf8;       /* UTF-8 in a header (To:, message/global) */
};

/*
 * Appends a complete RFC 5322 message (CRLF lines) to out: the DSN for the
 * recipients of m that pst_dsn_wanted() accepts (RFC 3461 5.2.8), with
 * headers From: "Mail Delivery System" <MAILER-DAEMON@reporting_mta>,
 * To: <sender>, Subject (failed > delayed > success), Date (m->now),
 * Message-ID, Auto-Submitted: auto-replied, MIME-Version and
 * multipart/report; report-type=delivery-status; and three parts: a
 * text/plain explanation, message/delivery-status, and the message
 * (whole when a recipient failed, RET is not HDRS and original_len <=
 * max_return, else its header section, cut at a field boundary to
 * max_return).
 *
 * Text from the outside (addresses, diagnostics, MTA names) cannot add
 * lines: control octets become "?" or SP and long values are folded.
 * The boundary is made from the seed and checked against the content.
 *
 * Returns 0 and fills *info (may be NULL); PST_ERR_NOTFOUND when no
 * recipient is to be reported; PST_ERR_INVAL for a null or malformed
 * sender, a bad reporting_mta, a short seed, a bad ret or action, a now that
 * gmtime_r cannot convert; PST_ERR_TOOBIG for too many recipients or when
 * out's maximum is reached; PST_ERR_NOMEM. Appends all or nothing.
 */
int pst_dsn_generate(const struct pst_dsn_msg *m, struct pst_buf *out, struct pst_dsn_info *info);

/* Appends the RFC 5322 3.3 date-time of t in UTC ("Sat, 28 Nov 2026
 * 22:58:33 +0000"), without locale. PST_ERR_INVAL when gmtime_r fails. */
int pst_dsn_date(struct pst_buf *out, time_t t);

#endif
