/*
 * daemon.h - the shared state of posternd and the pieces that use it:
 * server.c (listeners, limits, signals), session.c (one SMTP session),
 * spool.c (group commit of received messages), delivery.c (local
 * delivery to Maildir with retries).
 *
 * Threads: one libevent loop owns sessions and listeners; two small pools
 * run what blocks (commits, deliveries). The configuration is swapped on
 * SIGHUP; whoever uses it holds a reference (pstd_conf_get/put).
 */
#ifndef PSTD_DAEMON_H
#define PSTD_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"

struct event_base;
struct event;
struct evconnlistener;
struct pstd_pool;
struct session;
typedef struct ssl_ctx_st SSL_CTX;

/* A configuration and the TLS context made from it, reference counted. */
struct pstd_signers;
struct pst_users;
struct pst_authlimit;
struct pstd_results;

struct pstd_confref {
    struct pst_conf *conf;
    SSL_CTX *tls;                 /* NULL when no certificate is configured */
    struct pstd_signers *signers; /* DKIM signing keys, parsed once */
    struct pst_users *users;      /* AUTH users (submission), or NULL */
    SSL_CTX *client_tls;          /* remote delivery's TLS client context */
    unsigned long gen;            /* generation: each load gets a new one */
    int refs;                     /* guarded by the daemon's conf lock */
};

struct pstd_listener {
    struct pstd *d;
    struct evconnlistener *lev;
    struct pst_listener_conf lc; /* copy; address string owned here */
};

struct pstd {
    struct event_base *base;
    const char *conf_path; /* NULL with --embedded */
    struct pstd_confref *cur;

    struct pstd_pool *commit_pool;
    struct pstd_pool *check_pool; /* checks before the 250: DKIM (DNS) */
    struct pstd_pool *deliver_pool;
    struct pst_queue *queue;
    struct pstd_spool *spool;
    struct pstd_delivery *delivery;
    struct pstd_outbound *outbound; /* per-domain concurrency of remote delivery */

    struct pstd_listener *listeners;
    size_t nlisteners;

    struct session *sessions; /* all live sessions, doubly linked */
    unsigned nsessions;
    struct pstd_iptab *iptab;
    struct pst_authlimit *authlimit; /* failed AUTH per client (loop thread) */
    struct pstd_results *results;    /* the SQLite results store (checks.c) */
    uint64_t next_session;

    int stopping;  /* loop thread */
    int stop_flag; /* the same, read by workers with __atomic_load_n */
    struct event *grace_timer;
    struct event *sig_term, *sig_int, *sig_hup;
};

/* server.c */
struct pstd_confref *pstd_confref_make(struct pst_conf *conf, char *err, size_t errlen);
int pstd_listen(struct pstd *d, char *err, size_t errlen);
void pstd_listeners_free(struct pstd *d);
int pstd_signals(struct pstd *d);
void pstd_signals_free(struct pstd *d);
void pstd_reload(struct pstd *d);
int pstd_mkdirs(const char *path);                  /* mkdir -p, mode 0755 */
int pstd_mkdirs_for(const char *file);              /* mkdir -p of the file's directory */
struct pstd_confref *pstd_conf_get(struct pstd *d); /* takes a reference */
void pstd_conf_put(struct pstd *d, struct pstd_confref *ref);
struct pstd_iptab *pstd_iptab_new(void);
void pstd_iptab_free(struct pstd_iptab *t);
unsigned pstd_iptab_add(struct pstd *d, const char *ip);
void pstd_iptab_del(struct pstd *d, const char *ip);
void pstd_session_gone(struct pstd *d); /* a session ended; may finish a shutdown */

/* session.c */
/* local_user: the peer of a local (unix socket) listener, authenticated
 * by its uid; NULL for network sessions. */
struct session *session_new(struct pstd *d, int fd, const struct pst_listener_conf *lc,
                            const char *ip, int port, const char *local_user);
void session_shutdown(struct session *s); /* 421 4.3.2 and close (end of grace) */
struct session *session_next(struct session *s);

/* spool.c: group commit. The callback runs on the loop thread with rc 0
 * when the message is on disk (then, and only then, the client gets 250). */
struct pstd_spool *pstd_spool_new(struct pstd *d);
void pstd_spool_free(struct pstd_spool *sp);
int pstd_spool_commit(struct pstd_spool *sp, int fd, struct pst_envelope *env,
                      void (*cb)(void *arg, int rc), void *arg);

/* checks.c: the checks run before a message is acknowledged, and the
 * DKIM signing keys of a configuration. */
struct pstd_results *pstd_results_new(void);
void pstd_results_free(struct pstd_results *r); /* commits gathered rows */
/* Each second on the loop: commits gathered rows on the check pool. */
void pstd_results_tick(struct pstd *d);
int pstd_signers_load(const struct pst_conf *c, struct pstd_signers **out, char *err,
                      size_t errlen);
void pstd_signers_free(struct pstd_signers *s);
size_t pstd_signers_count(const struct pstd_signers *s);
struct pst_dkim_signer;
/* The signer of a domain (all its keys), or NULL: for outbound signing. */
const struct pst_dkim_signer *pstd_signer_for(const struct pstd_signers *s, const char *domain);
/* What the session knew about a message. */
struct pstd_check_in {
    const char *ip;
    const char *helo;   /* NULL when none */
    const char *sender; /* MAIL FROM without <>, "" for the null sender */
    int authenticated;  /* an AUTH session: exempt from policy */
};
enum pstd_check_action {
    PSTD_CHECK_ACCEPT = 0,
    PSTD_CHECK_QUARANTINE, /* accept; deliver into the Junk folder */
    PSTD_CHECK_REJECT,     /* answer code/enh/reason (550 5.7.1), drop */
    PSTD_CHECK_TEMPFAIL,   /* answer code/enh/reason (451 4.7.5), drop */
};
struct pstd_check_result {
    enum pstd_check_action action;
    int quarantine;
    int code; /* the reply for REJECT and TEMPFAIL */
    const char *enh;
    const char *reason;  /* the reply text */
    const char *summary; /* one line in RFC 8601 words, for the log */
};
/* Checks the message at fd (offset 0, the fd stays the caller's; id its
 * queue id) on the check pool; then cb(arg, result) on the loop. 0, or -1
 * when the check could not be queued. */
int pstd_check_message(struct pstd *d, int fd, const char *id, const struct pstd_check_in *in,
                       void (*cb)(void *arg, struct pstd_check_result *r), void *arg);

/* tres.c: the calling thread's resolver for the configuration cr (made
 * on first use and after a reload); NULL with the reason in err. Owned by
 * the thread. */
struct pst_resolver;
struct pst_resolver *pstd_thread_resolver(const struct pstd_confref *cr, char *err, size_t errlen);

/* outbound.c: remote delivery (worker threads). */
enum pstd_out_action {
    PSTD_OUT_NONE = 0,  /* not tried (local, or not pending) */
    PSTD_OUT_DEFERRED,  /* temporary failure: stays pending */
    PSTD_OUT_FAILED,    /* permanent failure: bounce */
    PSTD_OUT_PASSED,    /* accepted by a next hop with DSN: it reports on */
    PSTD_OUT_RELAYED,   /* accepted by a next hop without DSN */
    PSTD_OUT_DELIVERED, /* into a local mailbox */
};
struct pstd_out_rcpt {
    enum pstd_out_action action;
    char status[16]; /* enhanced status code of the outcome, or "" */
    char mta[256];   /* the remote host that answered, or "" */
};
struct pstd_out_report {
    struct pstd_out_rcpt *rcpts; /* one per envelope recipient */
    size_t n;
    unsigned tried; /* destinations tried */
    unsigned busy;  /* destinations skipped at their concurrency limit */
};
struct pstd_outbound *pstd_outbound_new(void);
void pstd_outbound_free(struct pstd_outbound *o);
/* Delivers env's pending recipients without a local user; updates their
 * state and last_reply and fills rep (free rep->rcpts). Blocks. 0 or
 * PST_ERR_NOMEM. */
int pstd_outbound_deliver(struct pstd *d, const struct pstd_confref *cr, struct pst_envelope *env,
                          int fd, struct pstd_out_report *rep);

/* delivery.c */
struct pstd_delivery *pstd_delivery_new(struct pstd *d);
void pstd_delivery_free(struct pstd_delivery *dl);
/* A newly committed message: deliver it now. */
void pstd_delivery_kick(struct pstd_delivery *dl, const char *id);
/* Scan the whole queue directory into the schedule (start-up, SIGUSR1). */
void pstd_delivery_scan(struct pstd_delivery *dl);
/* Sets a recipient's last result (at most 512 bytes, the envelope stays
 * small). */
void pstd_set_reply(struct pst_envelope_rcpt *r, const char *text);
/* Starts the attempts that are due (the one-second timer). */
void pstd_delivery_tick(struct pstd_delivery *dl);

#endif
