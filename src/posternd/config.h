/*
 * config.h - posternd's configuration: loaded from a libconfig file or from
 * the embedded default, checked as a whole, then read-only. A reload builds
 * a new struct pst_conf and swaps it in only when it loaded without error.
 * The format is documented in docs/postern.conf.example.
 */
#ifndef PSTD_CONFIG_H
#define PSTD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "route.h"

enum pst_listen_mode {
    PST_LISTEN_SMTP = 0, /* plaintext SMTP, STARTTLS when starttls is set */
    PST_LISTEN_TLS = 1,  /* implicit TLS (RFC 8314 style) */
    PST_LISTEN_UNIX = 2, /* a unix socket for local submission (postern sendmail) */
};

/* Listener modes in the file: "smtp" (port 25), "tls" (implicit TLS),
 * "submission" (RFC 6409: STARTTLS, then AUTH before MAIL), "submissions"
 * (RFC 8314: implicit TLS, then AUTH), "local" (a unix socket: the peer's
 * uid is the authenticated user). */
struct pst_listener_conf {
    char *address; /* numeric IPv4 or IPv6; NULL for a unix socket */
    int port;
    char *path; /* PST_LISTEN_UNIX: the socket's path */
    enum pst_listen_mode mode;
    int starttls;   /* offer STARTTLS (mode smtp only) */
    int submission; /* AUTH required before MAIL; relaying for the authenticated */
};

struct pst_user_conf {
    char *name;    /* local user name, lower case */
    char *maildir; /* absolute or relative path of the user's Maildir */
};

struct pst_alias_conf {
    char *from; /* "local@domain" (one domain) or "local" (every local domain), lower case */
    char *to;   /* a user name */
};

enum pst_bare_eol_policy {
    PST_BARE_EOL_REJECT = 0,
    PST_BARE_EOL_NORMALIZE = 1,
};

enum pst_log_target {
    PST_LOG_STDERR = 0,
    PST_LOG_SYSLOG = 1,
};

/* One DKIM signing key (RFC 6376): a domain may have several (rsa and
 * ed25519 at once, RFC 8463 3). The key file is read at start and on
 * reload by the daemon, never by the loader, and never logged. */
struct pst_dkim_key_conf {
    char *domain;   /* d=, lower case */
    char *selector; /* s= */
    char *key_file; /* PEM private key */
};

struct pst_conf {
    char *source; /* file name, or "(embedded default)" */

    char *hostname;  /* our name in the greeting, EHLO and Received */
    char *spool;     /* spool directory (queue lives below it) */
    char *mail_root; /* default parent of users' Maildirs: <mail_root>/<user>/ */
    char *run_user;  /* user to switch to after binding, NULL = stay */

    enum pst_log_target log_target;
    int log_debug;

    char *tls_cert;   /* PEM certificate chain file */
    char *tls_key;    /* PEM private key file */
    int tls_generate; /* make a self-signed pair at start when both are missing */

    struct pst_listener_conf *listeners;
    size_t nlisteners;

    char **domains; /* local domains, lower case, no trailing dot */
    size_t ndomains;

    struct pst_user_conf *users;
    size_t nusers;
    struct pst_alias_conf *aliases;
    size_t naliases;
    char *postmaster; /* user receiving postmaster@ every local domain (RFC 5321 4.5.1) */
    char *catchall;   /* user receiving unknown local parts, NULL = none */

    /* limits */
    uint64_t message_size;     /* bytes, SIZE advertised */
    unsigned max_recipients;   /* per message */
    unsigned line_length;      /* command line, bytes including CRLF */
    unsigned max_bad_commands; /* unknown or bad commands before 421 */
    unsigned max_sessions;     /* concurrent sessions */
    unsigned max_sessions_per_ip;
    enum pst_bare_eol_policy bare_eol;

    /* timeouts in seconds (RFC 5321 4.5.3.2) */
    unsigned timeout_command; /* waiting for a command line (4.5.3.2.7: 5 min) */
    unsigned timeout_data;    /* waiting for the next data block (3 min) */
    unsigned timeout_tls;     /* TLS handshake */
    unsigned shutdown_grace;  /* SIGTERM: time sessions get to finish */
    unsigned retry_interval;  /* local delivery retry after a temporary failure */

    /* DKIM (the dkim group) */
    struct pst_dkim_key_conf *dkim_keys;
    size_t ndkim_keys;
    int dkim_verify;        /* verify inbound signatures */
    unsigned dkim_max_sigs; /* signatures looked at per message */

    /* SPF, DMARC and Authentication-Results on received mail (the spf,
     * dmarc and auth groups) */
    int spf_verify;              /* SPF for the MAIL FROM identity */
    int dmarc_verify;            /* DMARC for the From domain */
    int dmarc_reject_quarantine; /* a p=reject failure is quarantined, not refused */
    int dmarc_temperror_accept;  /* a DNS error deciding DMARC delivers, not 451 */
    int dmarc_psl;               /* RFC 7489 Organizational Domain by the PSL */
    char *psl_file;              /* NULL: libpsl's and Debian's list */
    char *authserv_id;           /* in Authentication-Results; the hostname by default */
    struct pst_cidr *auth_allow; /* sources exempt from policy (still checked) */
    size_t nauth_allow;
    char *auth_store; /* SQLite file of check results; NULL: none */

    /* Remote delivery (the delivery group) */
    unsigned out_concurrency;      /* remote deliveries at once (threads) */
    unsigned out_dest_concurrency; /* at once per recipient domain */
    struct pst_backoff backoff;    /* retry schedule, lifetime, delay warning */
    uint16_t out_port;             /* port of MX hosts: 25 (tests change it) */
    unsigned out_families;         /* PST_ROUTE_INET4 | PST_ROUTE_INET6 */
    char *out_ca_file;             /* CA bundle for MX certificates; NULL: system */
    unsigned out_connect_timeout;  /* seconds */
    unsigned out_command_timeout;  /* seconds per reply (RFC 5321 4.5.3.2: 5 min) */
    char *relayhost;               /* "[host]:port" / "host": smarthost, or NULL */
    int relay_tls;                 /* 0 starttls required, 1 implicit TLS, 2 opportunistic */
    char *relay_user;              /* AUTH to the relay host, or NULL */
    char *relay_password_file;     /* read at each connection, never logged */

    /* Submission (the submission group) */
    char *users_file;           /* AUTH users (postern user); default PST_SYSCONFDIR/users */
    unsigned auth_max_failures; /* failed AUTH per client before 454 */
    unsigned auth_window;       /* seconds those failures are counted over */
    int has_submission;         /* a listener needs the users file */

    /* DNS (the dns group) */
    char *dns_server;       /* "ADDR[:PORT]" to forward queries to; NULL: resolv.conf */
    char *dns_trust_anchor; /* DS/DNSKEY file for DNSSEC validation; NULL: none */
    unsigned dns_timeout;   /* seconds per query */
};

/*
 * Loads a configuration file. Returns the configuration, or NULL and writes
 * "FILE:LINE: reason" into err (size errlen).
 */
struct pst_conf *pst_conf_load_file(const char *path, char *err, size_t errlen);
/* Loads the embedded default (make run): listeners 127.0.0.1:2525 (smtp +
 * STARTTLS) and 127.0.0.1:4650 (tls), domains localhost and example.test,
 * paths below ./var, a self-signed certificate generated on first start. */
struct pst_conf *pst_conf_load_default(char *err, size_t errlen);
/* The embedded default's text (printed by posternd --print-default). */
const char *pst_conf_default_text(void);
void pst_conf_free(struct pst_conf *conf);

/* Recipient lookup. */
enum pst_rcpt_result {
    PST_RCPT_OK = 0,       /* *user names the user */
    PST_RCPT_NOUSER = 1,   /* local domain, unknown user: 550 5.1.1 */
    PST_RCPT_NOTLOCAL = 2, /* not a local domain: 554 5.7.1 relay denied */
};
/*
 * Resolves local@domain (domain already lower case; "" domain is the bare
 * <postmaster>) to a user: postmaster of any local domain, then aliases
 * (full address first, then bare local part), then users, then catch-all.
 * Local parts compare case-insensitively. *user borrows from conf.
 */
enum pst_rcpt_result pst_conf_rcpt(const struct pst_conf *conf, const char *local,
                                   const char *domain, const struct pst_user_conf **user);
int pst_conf_is_local_domain(const struct pst_conf *conf, const char *domain);

#endif
