/*
 * smtp.h - SMTP protocol text without I/O: the command parser, reply
 * formatting and the DATA/BDAT byte-stream state machine.
 *
 * RFC 5321 (commands 4.1, syntax 4.1.2, limits 4.5.3), RFC 1870 (SIZE),
 * RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3030 (CHUNKING/BDAT),
 * RFC 2034/3463 (enhanced status codes), RFC 3207 (STARTTLS), RFC 3461
 * (DSN parameters on MAIL and RCPT; the values are checked in dsn.h).
 *
 * Nothing here reads the clock, a socket or a file: the daemon feeds bytes
 * in and sends the produced text out.
 */
#ifndef PST_SMTP_H
#define PST_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dsn.h"

enum pst_smtp_verb {
    PST_SMTP_UNKNOWN = 0,
    PST_SMTP_EHLO,
    PST_SMTP_HELO,
    PST_SMTP_MAIL,
    PST_SMTP_RCPT,
    PST_SMTP_DATA,
    PST_SMTP_BDAT,
    PST_SMTP_RSET,
    PST_SMTP_NOOP,
    PST_SMTP_QUIT,
    PST_SMTP_HELP,
    PST_SMTP_VRFY,
    PST_SMTP_EXPN,
    PST_SMTP_STARTTLS,
    PST_SMTP_AUTH,
};

/* Why a line was refused: the reply the server should send. Strings are
 * static; never free them. */
struct pst_smtp_perr {
    int code;        /* 500, 501, 502, 504, 553, 555 ... */
    const char *enh; /* enhanced status code text, e.g. "5.5.2" */
    const char *msg; /* human text without CRLF */
};

#define PST_SMTP_MAX_PARAMS 16

/* An ESMTP parameter (RFC 5321 4.1.2 esmtp-param): keyword upper-cased,
 * value NULL when the parameter has none. Both point into cmd->storage. */
struct pst_smtp_param {
    const char *keyword;
    const char *value;
};

/*
 * A parsed command line. All pointers point into storage owned by the
 * struct; pst_smtp_cmd_clear() releases it.
 *
 *  EHLO/HELO: arg = the domain or address literal as sent.
 *  MAIL/RCPT: path = the mailbox without angle brackets, "" for the null
 *             reverse-path <>; local/domain split it (domain lower-cased,
 *             address literals kept in brackets); source routes
 *             (<@a,@b:user@d>) are accepted and dropped (RFC 5321 4.1.2,
 *             C); path_utf8 is set when the mailbox has non-ASCII octets
 *             (valid UTF-8 only, RFC 6531 3.3); params hold the ESMTP
 *             parameters after the path.
 *  RCPT TO:<Postmaster> (no domain, RFC 5321 4.1.1.3) gives
 *             local = "postmaster", domain = "".
 *  BDAT:      bdat_size and bdat_last (the LAST keyword).
 *  VRFY/EXPN/AUTH: arg = the rest of the line; required (501 5.5.4
 *             without, RFC 5321 4.1.1.6-7, RFC 4954 4).
 *  HELP/NOOP: arg = the rest of the line or NULL (RFC 5321 4.1.1.8-9:
 *             NOOP's parameter string is accepted and ignored).
 *  DATA/RSET/QUIT/STARTTLS: no argument allowed (501 5.5.4 otherwise).
 *
 * Leniencies (see smtp_cmd.c): one SP after "FROM:"/"TO:", SP/HTAB at the
 * end of the line, several SP between ESMTP parameters.
 */
struct pst_smtp_cmd {
    enum pst_smtp_verb verb;
    const char *arg;
    const char *path;
    const char *local;
    const char *domain;
    int path_utf8;
    struct pst_smtp_param params[PST_SMTP_MAX_PARAMS];
    size_t nparams;
    uint64_t bdat_size;
    int bdat_last;
    char *storage;
};

/*
 * Parses one command line (without its CRLF; the caller has already
 * checked that the line ended in CRLF and that it is within the line
 * limit). Returns 0 and fills *cmd, or PST_ERR_SYNTAX / PST_ERR_NOMEM /
 * PST_ERR_NUL / PST_ERR_TOOBIG (a line over 64 KiB, far above any sane
 * limit) and fills *why with the reply to send (500 5.5.2 for an unknown
 * verb, garbage, a NUL or another control octet but HTAB, 501 5.5.4 for
 * bad arguments, 501 5.1.7 / 5.1.3 for a bad sender / recipient address,
 * 555 5.5.4 for malformed ESMTP parameters or more than
 * PST_SMTP_MAX_PARAMS, 451 4.3.0 when out of memory). Domains are checked
 * as RFC 5321 Domain / address-literal (IPv4, IPv6 via inet_pton,
 * General-address-literal refused). *cmd is written only on success and
 * whatever it held before is not freed: clear it before reusing it.
 */
int pst_smtp_cmd_parse(const char *line, size_t len, struct pst_smtp_cmd *cmd,
                       struct pst_smtp_perr *why);
/* Releases what pst_smtp_cmd_parse allocated; safe on a zeroed struct. */
void pst_smtp_cmd_clear(struct pst_smtp_cmd *cmd);
/* The verb's name in capitals ("MAIL"), "UNKNOWN" for PST_SMTP_UNKNOWN. */
const char *pst_smtp_verb_name(enum pst_smtp_verb verb);

/* What MAIL FROM parameters ask for, validated against what the server
 * offers (SIZE, BODY=7BIT|8BITMIME, SMTPUTF8, and DSN's RET and ENVID
 * when pst_smtp_mail_params_dsn is told DSN is offered). Plain values, so
 * the struct may be copied and kept after the command is cleared. */
struct pst_smtp_mail_params {
    uint64_t size;                     /* SIZE=, 0 when absent */
    int body_8bit;                     /* BODY=8BITMIME */
    int smtputf8;                      /* SMTPUTF8 */
    enum pst_dsn_ret ret;              /* RET=, PST_DSN_RET_NONE when absent */
    char envid[PST_DSN_ENVID_MAX + 1]; /* ENVID= as received (xtext), "" when absent */
};

/*
 * Checks the parameters of a parsed MAIL command. Returns 0 and fills *out,
 * or PST_ERR_SYNTAX with *why: 555 5.5.4 for an unknown or repeated
 * parameter or a bad value, 550 5.6.7 for a non-ASCII path without
 * SMTPUTF8 (RFC 6531 3.4, and 3.5 for the code: 550 for MAIL, 553 for
 * RCPT). A SIZE above max_size is *not* an error here:
 * the caller compares out->size and answers 552 5.3.4 (RFC 1870 6.1).
 * PST_ERR_INVAL when cmd is not a MAIL command.
 */
int pst_smtp_mail_params(const struct pst_smtp_cmd *cmd, struct pst_smtp_mail_params *out,
                         struct pst_smtp_perr *why);
/*
 * pst_smtp_mail_params with the DSN extension (RFC 3461): when dsn_offered
 * is non-zero, RET=FULL|HDRS and ENVID=xtext are accepted and checked
 * (dsn.h); a bad value or a repeated RET or ENVID is 501 5.5.4 (RFC 3461
 * 4.5 and 5.1 a). When dsn_offered is 0 they are unknown parameters, 555
 * 5.5.4, exactly as pst_smtp_mail_params (which is this with 0).
 */
int pst_smtp_mail_params_dsn(const struct pst_smtp_cmd *cmd, int dsn_offered,
                             struct pst_smtp_mail_params *out, struct pst_smtp_perr *why);

/* Same for RCPT: no parameters are offered yet, so any is 555 5.5.4; a
 * non-ASCII path when the transaction has no SMTPUTF8 (smtputf8 == 0) is
 * 553 5.6.7 (RFC 6531 3.5). PST_ERR_INVAL when cmd is not RCPT. */
int pst_smtp_rcpt_params(const struct pst_smtp_cmd *cmd, int smtputf8, struct pst_smtp_perr *why);

/* What RCPT TO parameters ask for (RFC 3461 4.1, 4.2). Plain values. */
struct pst_smtp_rcpt_params {
    unsigned notify;                   /* PST_DSN_NOTIFY_* bits, 0 when absent */
    char orcpt[PST_DSN_ORCPT_MAX + 1]; /* ORCPT= as received ("rfc822;a+2Bb@c"), "" when absent */
};

/*
 * pst_smtp_rcpt_params with the DSN extension: when dsn_offered is non-zero,
 * NOTIFY= and ORCPT= are accepted and checked (dsn.h); a bad value or a
 * repeated NOTIFY or ORCPT is 501 5.5.4 (RFC 3461 4.5 and 5.1 b). Any
 * other parameter, or a DSN one when dsn_offered is 0, is 555 5.5.4; the
 * SMTPUTF8 rule is pst_smtp_rcpt_params's. Fills *out only on success.
 */
int pst_smtp_rcpt_params_dsn(const struct pst_smtp_cmd *cmd, int smtputf8, int dsn_offered,
                             struct pst_smtp_rcpt_params *out, struct pst_smtp_perr *why);

/*
 * Appends a reply to out: "CODE ENH text\r\n". text is formatted with the
 * printf-style arguments; any CR, LF or other control octet it contains is
 * replaced by '?', so a client-supplied string can never end a reply
 * early. enh may be NULL (no enhanced code, as in the 220 greeting).
 * The line is kept within 512 octets with its CRLF (RFC 5321 4.5.3.1.5):
 * longer text is cut at a UTF-8 character boundary. Empty text gives
 * "CODE ENH\r\n". Appends all or nothing. Returns 0, PST_ERR_TOOBIG,
 * PST_ERR_NOMEM, or PST_ERR_INVAL for a code outside 200-559 or an enh
 * that is not class.subject.detail (RFC 3463 2) with the code's class.
 */
int pst_smtp_reply(struct pst_buf *out, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends a multi-line reply: "CODE-line1\r\n ... CODE lineN\r\n" (RFC 5321
 * 4.2.1), no enhanced code (EHLO and greeting style). n >= 1. Lines are
 * cleaned and cut like pst_smtp_reply's text; all or nothing. */
int pst_smtp_reply_lines(struct pst_buf *out, int code, const char *const *lines, size_t n);

/*
 * The DATA and BDAT byte-stream state machine.
 *
 * In DATA mode it finds the end of data, which is only <CRLF>.<CRLF>
 * (RFC 5321 4.1.1.4; the CRLF that precedes the dot belongs to the last
 * line), removes dot-stuffing (4.5.2: a line beginning with "." loses its
 * first "."), and watches for bare CR and bare LF: a CR not followed by LF
 * or an LF not preceded by CR. These never end the data and never start a
 * line for dot handling, whatever the mode (CVE-2023-51764 family).
 *
 * In RAW mode (BDAT chunks, RFC 3030) there is no dot handling and no end
 * marker; only the bare CR/LF watch applies. State carries across calls,
 * so any split of the input gives the same result.
 *
 * With PST_SMTP_DATA_NORMALIZE, each bare CR or LF is written out as CRLF;
 * otherwise it is written through unchanged and bare_eol is set, so the
 * caller can refuse the message once the data has ended.
 * NUL octets are passed through and counted in nul.
 */
enum pst_smtp_data_mode {
    PST_SMTP_DATA_DOT = 0,
    PST_SMTP_DATA_RAW = 1,
};
#define PST_SMTP_DATA_NORMALIZE 0x1

struct pst_smtp_data {
    int mode;
    int flags;
    int st;             /* internal */
    uint64_t bare_eol;  /* number of bare CR or LF seen */
    uint64_t nul;       /* number of NUL octets seen */
    uint64_t out_bytes; /* message bytes produced so far */
    int done;           /* DOT: end of data seen; RAW: finish called */
};

void pst_smtp_data_init(struct pst_smtp_data *d, enum pst_smtp_data_mode mode, int flags);

/*
 * Feeds len bytes. Appends the message bytes (unstuffed, with the final
 * CRLF of the last line, without the terminating ".CRLF") to out, and sets
 * *consumed to the bytes of in that belong to the data: in DOT mode, when
 * the end is found, the rest of in (in + *consumed) is the next pipelined
 * command. Returns 1 when the end of data was seen, 0 when more is needed,
 * PST_ERR_TOOBIG when out is full (nothing of this call is lost: *consumed
 * tells what was used; the caller empties out and calls again), or
 * PST_ERR_STATE when called after the end. A call may use no input and
 * still write output that an earlier call left pending. out must be able
 * to hold at least 2 bytes (a CRLF), else PST_ERR_INVAL.
 */
int pst_smtp_data_feed(struct pst_smtp_data *d, const char *in, size_t len, size_t *consumed,
                       struct pst_buf *out);
/* RAW mode at the end of the last chunk: a CR left pending at the very end
 * counts as bare and is written (as CRLF with NORMALIZE); feeding after it
 * is PST_ERR_STATE. Returns 0, or PST_ERR_TOOBIG / PST_ERR_NOMEM when out
 * has no room (empty it and call again). Does nothing in DOT mode. */
int pst_smtp_data_finish(struct pst_smtp_data *d, struct pst_buf *out);

#endif
