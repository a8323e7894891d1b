/*
 * smtp_client.h - deliver one message over SMTP: a blocking driver that
 * runs the lib/core/smtpc engine over a TCP (IPv4/IPv6) or unix socket,
 * with STARTTLS or implicit TLS through OpenSSL, poll() timeouts on every
 * wait (RFC 5321 4.5.3.2) and the message streamed from a file.
 *
 * How a delivery worker calls it (one call per attempt, one MX address):
 *
 *   struct pst_smtpc_rcpt rcpts[n] = {{"bob@example.net", NULL, NULL}, ...};
 *   struct pst_smtp_client_opts o = {0};
 *   o.host = "192.0.2.25";  o.port = 25;           // or o.unix_path
 *   o.mx_name = "mx1.example.net";                 // SNI + certificate name
 *   o.ehlo_name = "mail.example.org";
 *   o.tls = PST_SMTPC_TLS_OPPORTUNISTIC;            // or REQUIRED / NONE
 *   o.tls_verify = 0;       // 1 (MTA-STS enforce): unverified = failure
 *   struct pst_smtp_client_msg m = {"alice@example.org", rcpts, n};
 *   m.body_8bit = env->body_8bit;  m.smtputf8 = env->smtputf8;
 *   struct pst_smtp_client_result res;
 *   pst_smtp_client_deliver(&o, &m, msg_fd, &res);   // 0, or INVAL/NOMEM
 *   for (i...) res.rcpts[i].status: PST_SMTPC_OK delivered,
 *       PST_SMTPC_TEMP retry, PST_SMTPC_PERM bounce with
 *       "smtp; " res.rcpts[i].text as Diagnostic-Code;
 *   log: res.peer, res.text, pst_smtpc_stage_name(res.stage), res.tls.*;
 *   (res.rcpts[i] is each recipient's own fate also when the session
 *   failed: one refused at RCPT keeps its own reply, one accepted takes
 *   the session's; bounce by res.rcpts[i].status, not by res.status);
 *   if (res.retry_plaintext) the next attempt may use PST_SMTPC_TLS_NONE;
 *   if (res.host_failure) try the next MX now;
 *   pst_smtp_client_result_free(&res);
 *
 * The message file holds the message as queued: CRLF line ends (a bare CR
 * or LF is sent as CRLF), read with pread from offset 0 (the fd's offset
 * is not used or moved). Its size (fstat) is announced with SIZE=.
 *
 * Every wait has a timeout: connect, TLS handshake, each reply (restarted
 * when a reply completes or a command is written) and each write. Errors
 * always carry a reason text. The calling thread's SIGPIPE is blocked
 * around writes, so a peer that closes never kills the process.
 */
#ifndef PST_SMTP_CLIENT_H
#define PST_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "smtpc.h"

/* Timeouts in milliseconds; 0 takes the default (RFC 5321 4.5.3.2 where it
 * gives one). */
struct pst_smtp_client_timeouts {
    unsigned connect;    /* 30 s */
    unsigned tls;        /* the TLS handshake: 60 s */
    unsigned greeting;   /* initial 220: 5 min */
    unsigned command;    /* EHLO, HELO, STARTTLS, AUTH, QUIT: 5 min */
    unsigned mail;       /* MAIL: 5 min */
    unsigned rcpt;       /* RCPT: 5 min */
    unsigned data_init;  /* DATA: 2 min */
    unsigned data_block; /* each write of the message: 3 min */
    unsigned dot;        /* the end of data: 10 min */
    unsigned quit;       /* the reply to QUIT: 30 s (the mail is gone by then) */
};

/* TLS-RPT result types (RFC 8460 4.3) for the outcome of TLS with a peer. */
enum pst_tls_failure {
    PST_TLS_FAIL_NONE = 0,               /* no failure (or TLS not tried) */
    PST_TLS_FAIL_STARTTLS_NOT_SUPPORTED, /* "starttls-not-supported" */
    PST_TLS_FAIL_CERT_HOST_MISMATCH,     /* "certificate-host-mismatch" */
    PST_TLS_FAIL_CERT_EXPIRED,           /* "certificate-expired" */
    PST_TLS_FAIL_CERT_NOT_TRUSTED,       /* "certificate-not-trusted" */
    PST_TLS_FAIL_VALIDATION,             /* "validation-failure" */
};
/* The RFC 8460 string, "" for PST_TLS_FAIL_NONE. */
const char *pst_tls_failure_name(enum pst_tls_failure f);

struct pst_smtp_client_tls {
    int used;               /* the session ran under TLS */
    char version[16];       /* "TLSv1.3" */
    char cipher[64];        /* "TLS_AES_256_GCM_SHA384" */
    int verified;           /* chain trusted and (with mx_name) name matched */
    char verify_error[128]; /* OpenSSL's text when not verified, or the
                               handshake failure, "" otherwise */
    enum pst_tls_failure failure;
    int handshake_failed;
};

struct pst_smtp_client_opts {
    const char *host;      /* IPv4 or IPv6 address literal (no brackets) */
    uint16_t port;         /* 0: 25 */
    const char *unix_path; /* instead of host: a unix socket */
    const char *mx_name;   /* name for SNI and the certificate check; NULL:
                              no name check (chain only) */
    const char *ehlo_name;
    enum pst_smtpc_tls tls;
    int implicit_tls;           /* TLS at connect (port 465 smarthost) */
    int tls_verify;             /* an unverified certificate fails the attempt
                                   (temporary, 4.7.5); 0: record it and go on */
    const char *ca_file;        /* PEM CA bundle; NULL: the system store */
    struct ssl_ctx_st *ssl_ctx; /* borrowed SSL_CTX from pst_smtp_client_ctx
                                   (a worker keeps one instead of loading
                                   the CAs for every attempt); NULL: made
                                   per attempt from ca_file */
    const char *auth_user;      /* AUTH PLAIN/LOGIN (smarthost); NULL: none */
    const char *auth_pass;
    int auth_plaintext_ok; /* allow AUTH without TLS */
    struct pst_smtp_client_timeouts timeouts;
};

/* The envelope of the attempt; borrowed. */
struct pst_smtp_client_msg {
    const char *sender; /* "" for the null sender */
    const struct pst_smtpc_rcpt *rcpts;
    size_t nrcpts;
    int body_8bit;
    int smtputf8;
    const char *dsn_ret;   /* "FULL" / "HDRS" or NULL */
    const char *dsn_envid; /* xtext or NULL */
};

struct pst_smtp_client_rcpt_result {
    enum pst_smtpc_status status;
    int code; /* 0: no reply of the server's (local reason) */
    char enh[PST_SMTPC_ENH_MAX];
    char *text; /* one line: "550 5.1.1 ..." or our reason */
    enum pst_smtpc_stage stage;
};

struct pst_smtp_client_result {
    enum pst_smtpc_status status; /* of the session: OK = end of data accepted */
    int code;
    char enh[PST_SMTPC_ENH_MAX];
    char *text;
    enum pst_smtpc_stage stage;
    int from_server;
    char peer[128]; /* "192.0.2.25:25", "[2001:db8::1]:25" or the path */
    struct pst_smtp_client_tls tls;
    int retry_plaintext;                       /* opportunistic STARTTLS failed in the handshake:
                                                  the next attempt may go without TLS */
    int host_failure;                          /* the failure is about this host (connect,
                                                  greeting, TLS, protocol): try the next MX */
    int auth;                                  /* AUTH succeeded */
    size_t discarded;                          /* plaintext octets after the 220 to STARTTLS,
                                                  dropped unread (RFC 3207 4.2): worth a log line,
                                                  it is what a command injection sends */
    struct pst_smtpc_ext ext;                  /* the server's last EHLO */
    struct pst_smtp_client_rcpt_result *rcpts; /* nrcpts entries */
    size_t nrcpts;
};

/*
 * Makes a client TLS context for pst_smtp_client_opts.ssl_ctx: TLS 1.2 at
 * least (RFC 8996), the CAs of ca_file (PEM) or of the system store when
 * NULL, verification results recorded rather than enforced by OpenSSL
 * (the driver decides with tls_verify). Returns 0 and *out (free it with
 * SSL_CTX_free), or PST_ERR_CRYPTO with OpenSSL's reason in err.
 */
int pst_smtp_client_ctx(const char *ca_file, struct ssl_ctx_st **out, char *err, size_t errlen);

/*
 * Runs one SMTP session: connect, deliver the message in msg_fd to the
 * recipients, QUIT. Returns 0 with *res filled (whatever happened to the
 * mail: read res), or PST_ERR_INVAL (bad options or envelope: no address,
 * a control octet in an address, a fd that is not a readable file) or
 * PST_ERR_NOMEM with *res untouched. Free *res with
 * pst_smtp_client_result_free.
 */
int pst_smtp_client_deliver(const struct pst_smtp_client_opts *opts,
                            const struct pst_smtp_client_msg *msg, int msg_fd,
                            struct pst_smtp_client_result *res);
void pst_smtp_client_result_free(struct pst_smtp_client_result *res);

#endif
