/*
 * delivery.c - the queue manager: when each queued message is tried, and
 * what an attempt does with it.
 *
 * Schedule: a table on the loop thread, queue id -> when it is due and
 * whether an attempt runs. A committed message is due at once (kick); a
 * timer each second starts the due ones on the delivery pool (whose size,
 * delivery.concurrency, is the global limit; outbound.c adds the
 * per-domain one); an attempt's end sets the next due time from the
 * envelope. A full scan of the queue directory fills the table at start,
 * on SIGUSR1 (`postern queue flush`) and every ten minutes.
 *
 * An attempt (worker thread) locks the message (flock on queue/ID.msg, the
 * same lock `postern queue` takes to hold, release or delete), loads the
 * envelope, and:
 *   - delivers local recipients into their Maildirs (the Junk folder for
 *     DMARC quarantine), remote ones through outbound.c;
 *   - queues one DSN (RFC 3464, lib/core/dsn) to the sender for the
 *     recipients that failed, succeeded with NOTIFY=SUCCESS, or are still
 *     waiting past the delay-warning time; never for the null sender;
 *   - expires recipients still pending after the queue lifetime (4.4.7);
 *   - writes the envelope back atomically (or removes the message when no
 *     recipient is pending), with attempts and the next attempt from the
 *     retry schedule (lib/core/route backoff).
 * Each recipient's state is on disk before the next attempt starts, so a
 * crash repeats at most the attempt in flight (at least once: a recipient
 * delivered just before a crash may get the message twice, never zero).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "buf.h"
#include "daemon.h"
#include "dsn.h"
#include "err.h"
#include "log.h"
#include "route.h"
#include "worker.h"

#define BUCKETS      4096
#define RESCAN_EVERY 600 /* seconds between full scans of the queue */
#define NOT_DUE      INT64_MAX

struct entry {
    char id[PST_QUEUE_ID_LEN + 1];
    int64_t due; /* seconds since the epoch */
    int running;
    struct entry *next;
};

struct pstd_delivery {
    struct pstd *d;
    struct entry *tab[BUCKETS]; /* loop thread only */
    size_t n;
    int scanning;
    int64_t last_scan;
    struct event *tick;
};

static unsigned hash_id(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % BUCKETS;
}

static struct entry *find(struct pstd_delivery *dl, const char *id, int create)
{
    unsigned h = hash_id(id);
    for (struct entry *e = dl->tab[h]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    if (!create)
        return NULL;
    struct entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->due = 0;
    e->next = dl->tab[h];
    dl->tab[h] = e;
    dl->n++;
    return e;
}

static void forget(struct pstd_delivery *dl, const char *id)
{
    unsigned h = hash_id(id);
    for (struct entry **pp = &dl->tab[h]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            struct entry *e = *pp;
            *pp = e->next;
            free(e);
            dl->n--;
            return;
        }
    }
}

static const struct pst_user_conf *find_user(const struct pst_conf *c, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < c->nusers; i++)
        if (strcmp(c->users[i].name, name) == 0)
            return &c->users[i];
    return NULL;
}

/* Keeps the last result, at most 512 bytes (the envelope stays small). */
void pstd_set_reply(struct pst_envelope_rcpt *r, const char *text)
{
    free(r->last_reply);
    r->last_reply = strndup(text, 512);
}

/* ---- local recipients ---------------------------------------------------- */

static void deliver_local(const struct pst_conf *conf, struct pst_envelope *env, int fd,
                          struct pstd_out_report *rep)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    for (size_t i = 0; i < env->nrcpts; i++) {
        struct pst_envelope_rcpt *r = &env->rcpts[i];
        if (r->state != PST_RCPT_PENDING || r->user == NULL)
            continue;
        const struct pst_user_conf *u = find_user(conf, r->user);
        if (u == NULL) {
            log_warn("delivery %s: to=<%s> user %s is not configured; deferred", env->id, r->addr,
                     r->user);
            pstd_set_reply(r, "user not configured");
            rep->rcpts[i].action = PSTD_OUT_DEFERRED;
            continue;
        }
        char name[512];
        uint64_t now_usec = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
        /* DMARC quarantine: the Maildir++ folder Junk, which IMAP servers
         * (Dovecot's Maildir++ layout) show as the junk mailbox */
        char junk[4096];
        const char *box = u->maildir;
        if (env->quarantine) {
            int w = snprintf(junk, sizeof(junk), "%s/.Junk", u->maildir);
            if (w < 0 || (size_t)w >= sizeof(junk)) {
                pstd_set_reply(r, "Maildir path too long for its Junk folder");
                rep->rcpts[i].action = PSTD_OUT_DEFERRED;
                continue;
            }
            box = junk;
        }
        int rc = pst_maildir_deliver(box, fd, conf->hostname, env->sender, r->addr, now_usec, name,
                                     sizeof(name));
        if (rc == 0) {
            r->state = PST_RCPT_DELIVERED;
            pstd_set_reply(r, "delivered to Maildir");
            rep->rcpts[i].action = PSTD_OUT_DELIVERED;
            log_info("delivery %s: to=<%s> user=%s status=sent maildir=%s/new/%s", env->id, r->addr,
                     u->name, box, name);
        } else {
            char why[4096 + 256];
            snprintf(why, sizeof(why), "Maildir %s: %s", box,
                     rc == PST_ERR_IO ? strerror(errno) : pst_strerror(rc));
            pstd_set_reply(r, why);
            rep->rcpts[i].action = PSTD_OUT_DEFERRED;
            log_warn("delivery %s: to=<%s> status=deferred (%s)", env->id, r->addr, why);
        }
    }
}

/* ---- delivery status notifications --------------------------------------- */

struct kick_arg {
    struct pstd_delivery *dl;
    char id[PST_QUEUE_ID_LEN + 1];
};

static void kick_on_loop(void *arg)
{
    struct kick_arg *k = arg;
    pstd_delivery_kick(k->dl, k->id);
    free(k);
}

/* Queues text as a message from the null sender to rcpt (worker thread). */
static int queue_notice(struct pstd_delivery *dl, const struct pst_conf *conf, const char *rcpt,
                        const struct pst_buf *text, const struct pst_dsn_info *info,
                        char id[PST_QUEUE_ID_LEN + 1])
{
    struct pstd *d = dl->d;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    pst_queue_new_id(d->queue, (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec, id);
    int fd = -1;
    int rc = pst_queue_create(d->queue, id, &fd);
    if (rc != 0)
        return rc;
    const char *p = pst_buf_data(text);
    size_t left = pst_buf_len(text);
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            pst_queue_abort(d->queue, id, fd);
            return PST_ERR_IO;
        }
        p += w;
        left -= (size_t)w;
    }
    struct pst_envelope env;
    struct pst_envelope_rcpt r;
    memset(&env, 0, sizeof(env));
    memset(&r, 0, sizeof(r));
    memcpy(env.id, id, sizeof(env.id));
    env.sender = "";
    env.arrival = tv.tv_sec;
    env.body_8bit = info->needs_8bitmime;
    env.smtputf8 = info->needs_smtputf8;
    env.rcpts = &r;
    env.nrcpts = 1;
    r.addr = (char *)rcpt;
    r.state = PST_RCPT_PENDING;
    /* a local sender gets the notice in its mailbox */
    const char *at = strrchr(rcpt, '@');
    char local[256] = "", domain[256] = "";
    if (at != NULL && (size_t)(at - rcpt) < sizeof(local)) {
        memcpy(local, rcpt, (size_t)(at - rcpt));
        local[at - rcpt] = '\0';
        snprintf(domain, sizeof(domain), "%s", at + 1);
        for (char *q = domain; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q + 32);
    }
    const struct pst_user_conf *u = NULL;
    if (at != NULL && pst_conf_rcpt(conf, local, domain, &u) == PST_RCPT_OK && u != NULL)
        r.user = u->name;
    return pst_queue_commit(d->queue, fd, &env);
}

/* Reads the queued message for a DSN (at most max + 1 bytes: past max the
 * generator returns the header section only). */
static struct pst_buf *read_original(int fd, size_t max)
{
    struct pst_buf *b = pst_buf_new(max + 1);
    char chunk[65536];
    off_t off = 0;
    if (b == NULL)
        return NULL;
    while (pst_buf_len(b) <= max) {
        size_t want = sizeof(chunk);
        if (want > max + 1 - pst_buf_len(b))
            want = max + 1 - pst_buf_len(b);
        ssize_t r = pread(fd, chunk, want, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (pst_buf_add(b, chunk, (size_t)r) != 0)
            break;
        off += r;
    }
    return b;
}

/* The DSN for this attempt's outcomes (RFC 3461 5.2, RFC 3464). delayed:
 * also report pending recipients as delayed (the delay warning). */
static void notify_sender(struct pstd_delivery *dl, const struct pst_conf *conf,
                          struct pst_envelope *env, int fd, const struct pstd_out_report *rep,
                          int delayed, int64_t now)
{
    if (!pst_dsn_sender_ok(env->sender)) {
        /* RFC 3461 5.2 / RFC 5321 4.5.5: nothing goes back to <> */
        for (size_t i = 0; i < env->nrcpts; i++)
            if (rep->rcpts[i].action == PSTD_OUT_FAILED)
                log_warn("delivery %s: to=<%s> failed; the sender is <>, no notice sent", env->id,
                         env->rcpts[i].addr);
        return;
    }
    struct pst_dsn_rcpt *r = calloc(env->nrcpts, sizeof(*r));
    if (r == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct pstd_out_rcpt *o = &rep->rcpts[i];
        const struct pst_envelope_rcpt *e = &env->rcpts[i];
        enum pst_dsn_action a;
        if (o->action == PSTD_OUT_FAILED)
            a = PST_DSN_FAILED;
        else if (o->action == PSTD_OUT_DELIVERED)
            a = PST_DSN_DELIVERED;
        else if (o->action == PSTD_OUT_RELAYED)
            a = PST_DSN_RELAYED;
        else if (delayed && e->state == PST_RCPT_PENDING)
            a = PST_DSN_DELAYED;
        else
            continue;
        r[k] = (struct pst_dsn_rcpt){
            .rcpt = e->addr,
            .orcpt = e->orcpt,
            .notify = e->notify,
            .action = a,
            .status = o->status[0] ? o->status : NULL,
            .remote_mta = o->mta[0] ? o->mta : NULL,
            .diag = e->last_reply,
            .last_attempt = (time_t)now,
            .retry_until =
                a == PST_DSN_DELAYED ? (time_t)(env->arrival + conf->backoff.lifetime) : 0};
        k++;
    }
    if (k == 0) {
        free(r);
        return;
    }
    unsigned char seed[16];
    RAND_bytes(seed, sizeof(seed));
    struct pst_buf *orig = read_original(fd, PST_DSN_DEFAULT_MAX_RETURN);
    struct pst_buf *out = pst_buf_new(PST_DSN_DEFAULT_MAX_RETURN + (256u << 10) + k * 8192);
    static const enum pst_dsn_ret rets[] = {PST_DSN_RET_NONE, PST_DSN_RET_FULL, PST_DSN_RET_HDRS};
    struct pst_dsn_msg m = {.reporting_mta = conf->hostname,
                            .sender = env->sender,
                            .envid = env->envid,
                            .ret = rets[env->ret],
                            .arrival = (time_t)env->arrival,
                            .now = (time_t)now,
                            .seed = seed,
                            .seed_len = sizeof(seed),
                            .original = orig ? pst_buf_data(orig) : "",
                            .original_len = orig ? pst_buf_len(orig) : 0,
                            .delay_policy = 1,
                            .rcpts = r,
                            .nrcpts = k};
    struct pst_dsn_info info;
    int rc = out != NULL ? pst_dsn_generate(&m, out, &info) : PST_ERR_NOMEM;
    if (rc == 0) {
        char nid[PST_QUEUE_ID_LEN + 1];
        rc = queue_notice(dl, conf, env->sender, out, &info, nid);
        if (rc == 0) {
            log_info("delivery %s: sender notified: %s (%s) about %zu recipient%s", env->id, nid,
                     pst_dsn_action_name(info.kind), info.nreported,
                     info.nreported == 1 ? "" : "s");
            struct kick_arg *ka = calloc(1, sizeof(*ka));
            if (ka != NULL) {
                ka->dl = dl;
                memcpy(ka->id, nid, sizeof(ka->id));
                pstd_pool_complete(dl->d->deliver_pool, kick_on_loop, ka);
            }
        } else {
            log_err("delivery %s: cannot queue the notice to <%s>: %s", env->id, env->sender,
                    pst_strerror(rc));
        }
    } else if (rc != PST_ERR_NOTFOUND) {
        log_err("delivery %s: cannot write the notice to <%s>: %s", env->id, env->sender,
                pst_strerror(rc));
    }
    pst_buf_free(orig);
    pst_buf_free(out);
    free(r);
}

/* ---- one attempt (worker thread) ------------------------------------------ */

/* Returns when the message is next due, or -1 when it left the schedule
 * (delivered, bounced, held, removed). */
static int64_t attempt(struct pstd_delivery *dl, const char *id)
{
    struct pstd *d = dl->d;
    struct pst_envelope *env = NULL;
    int64_t next = -1;
    int fd = -1;
    int rc = pst_queue_open_msg(d->queue, id, &fd);
    if (rc == PST_ERR_NOTFOUND)
        return -1;
    if (rc < 0) {
        log_err("delivery %s: cannot open message: %s", id, pst_strerror(rc));
        return time(NULL) + 60;
    }
    /* the message lock `postern queue` takes too */
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    rc = pst_queue_load(d->queue, id, &env);
    if (rc == PST_ERR_NOTFOUND) {
        close(fd);
        return -1;
    }
    if (rc < 0) {
        log_err("delivery %s: cannot load envelope: %s", id, pst_strerror(rc));
        close(fd);
        return time(NULL) + 60;
    }
    int64_t now = time(NULL);
    if (env->hold) {
        log_info("delivery %s: on hold", id);
        goto out; /* released by `postern queue release`, then a rescan */
    }
    if (env->next_attempt > now) {
        next = env->next_attempt;
        goto out;
    }
    struct pstd_confref *cr = pstd_conf_get(d);
    const struct pst_conf *conf = cr->conf;
    struct pstd_out_report rep = {0};
    rep.rcpts = calloc(env->nrcpts, sizeof(*rep.rcpts));
    if (rep.rcpts == NULL) {
        pstd_conf_put(d, cr);
        next = now + 60;
        goto out;
    }
    rep.n = env->nrcpts;
    deliver_local(conf, env, fd, &rep);
    if (__atomic_load_n(&d->stop_flag, __ATOMIC_RELAXED)) {
        /* shutting down: local deliveries are quick and done; remote ones
         * wait for the next start, and this was no attempt for them */
        size_t left = 0, done = 0;
        for (size_t i = 0; i < env->nrcpts; i++) {
            left += env->rcpts[i].state == PST_RCPT_PENDING;
            done += rep.rcpts[i].action == PSTD_OUT_DELIVERED;
        }
        if (left == 0)
            rc = pst_queue_remove(d->queue, id);
        else if (done > 0)
            rc = pst_queue_update(d->queue, env);
        if (rc < 0)
            log_err("delivery %s: cannot update the queue: %s", id, pst_strerror(rc));
        free(rep.rcpts);
        pstd_conf_put(d, cr);
        next = left ? 0 : -1;
        goto out;
    }
    struct pstd_out_report remote = {0};
    if (pstd_outbound_deliver(d, cr, env, fd, &remote) == 0) {
        for (size_t i = 0; i < env->nrcpts && i < remote.n; i++)
            if (remote.rcpts[i].action != PSTD_OUT_NONE)
                rep.rcpts[i] = remote.rcpts[i];
    }
    free(remote.rcpts);
    int tried = remote.tried > 0, busy = remote.busy > 0;
    for (size_t i = 0; i < env->nrcpts; i++)
        tried |=
            rep.rcpts[i].action == PSTD_OUT_DELIVERED || rep.rcpts[i].action == PSTD_OUT_DEFERRED;
    now = time(NULL);

    /* the queue lifetime: what is still pending now fails (RFC 3463 X.4.7) */
    size_t pending = 0;
    int expired = pst_backoff_expired(&conf->backoff, env->arrival, now);
    for (size_t i = 0; i < env->nrcpts; i++) {
        struct pst_envelope_rcpt *r = &env->rcpts[i];
        if (r->state != PST_RCPT_PENDING)
            continue;
        if (!expired) {
            pending++;
            continue;
        }
        char text[600];
        snprintf(text, sizeof(text), "message expired after %lld s in the queue; last: %s",
                 (long long)(now - env->arrival), r->last_reply ? r->last_reply : "none");
        pstd_set_reply(r, text);
        r->state = PST_RCPT_FAILED;
        rep.rcpts[i].action = PSTD_OUT_FAILED;
        snprintf(rep.rcpts[i].status, sizeof(rep.rcpts[i].status), "4.4.7");
        log_info("delivery %s: to=<%s> status=expired (%s)", id, r->addr, text);
    }
    int warn = pending > 0 && pst_backoff_warn_due(&conf->backoff, env->arrival, now, env->warned);
    notify_sender(dl, conf, env, fd, &rep, warn, now);
    if (warn)
        env->warned = 1;
    free(rep.rcpts);

    if (pending == 0) {
        rc = pst_queue_remove(d->queue, id);
        if (rc < 0)
            log_err("delivery %s: cannot remove from queue: %s", id, pst_strerror(rc));
        else
            log_info("delivery %s: removed from queue", id);
    } else {
        uint32_t rnd = 0;
        RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
        if (tried || !busy) {
            env->attempts++;
            env->next_attempt =
                pst_backoff_next(&conf->backoff, env->arrival, now, env->attempts, rnd);
        }
        /* a destination at its concurrency limit: again in a second */
        if (busy && (!tried || env->next_attempt > now + 1))
            env->next_attempt = now + 1;
        /* local retries (a full disk) keep their own, shorter interval */
        int local_only = 1;
        for (size_t i = 0; i < env->nrcpts; i++)
            if (env->rcpts[i].state == PST_RCPT_PENDING && env->rcpts[i].user == NULL)
                local_only = 0;
        if (local_only && now + (int64_t)conf->retry_interval < env->next_attempt)
            env->next_attempt = now + (int64_t)conf->retry_interval;
        rc = pst_queue_update(d->queue, env);
        if (rc < 0)
            log_err("delivery %s: cannot update envelope: %s", id, pst_strerror(rc));
        next = env->next_attempt;
    }
    pstd_conf_put(d, cr);
out:
    close(fd); /* releases the lock */
    pst_envelope_free(env);
    return next;
}

/* ---- the schedule (loop thread) ------------------------------------------ */

struct job {
    struct pstd_delivery *dl;
    char id[PST_QUEUE_ID_LEN + 1];
    int64_t next;
};

static void job_work(void *arg)
{
    struct job *j = arg;
    j->next = attempt(j->dl, j->id);
}

static void job_done(void *arg)
{
    struct job *j = arg;
    struct entry *e = find(j->dl, j->id, 0);
    if (e != NULL) {
        e->running = 0;
        if (j->next < 0)
            forget(j->dl, j->id);
        else if (e->due != 0) /* a kick while running keeps it due now */
            e->due = j->next;
    }
    free(j);
}

static void start(struct pstd_delivery *dl, struct entry *e)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    j->dl = dl;
    memcpy(j->id, e->id, sizeof(j->id));
    e->running = 1;
    e->due = NOT_DUE; /* until the attempt says */
    if (pstd_pool_submit(dl->d->deliver_pool, job_work, job_done, j) != 0) {
        e->running = 0;
        e->due = time(NULL) + 1;
        free(j);
    }
}

void pstd_delivery_kick(struct pstd_delivery *dl, const char *id)
{
    struct entry *e = find(dl, id, 1);
    if (e == NULL)
        return; /* the next scan finds it */
    if (e->running) {
        e->due = 0; /* once more when this attempt ends */
        return;
    }
    e->due = 0;
    start(dl, e);
}

struct scan {
    struct pstd_delivery *dl;
    char *ids; /* PST_QUEUE_ID_LEN + 1 each */
    size_t n, cap;
};

static int scan_cb(const char *id, void *arg)
{
    struct scan *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        char *p = realloc(s->ids, cap * (PST_QUEUE_ID_LEN + 1));
        if (p == NULL)
            return 1;
        s->ids = p;
        s->cap = cap;
    }
    memcpy(s->ids + s->n * (PST_QUEUE_ID_LEN + 1), id, PST_QUEUE_ID_LEN + 1);
    s->n++;
    return 0;
}

static void scan_work(void *arg)
{
    struct scan *s = arg;
    int rc = pst_queue_scan(s->dl->d->queue, scan_cb, s);
    if (rc < 0)
        log_err("delivery: queue scan failed: %s", pst_strerror(rc));
}

static void scan_done(void *arg)
{
    struct scan *s = arg;
    struct pstd_delivery *dl = s->dl;
    for (size_t i = 0; i < s->n; i++) {
        const char *id = s->ids + i * (PST_QUEUE_ID_LEN + 1);
        struct entry *e = find(dl, id, 0);
        if (e == NULL) {
            e = find(dl, id, 1);
            if (e != NULL)
                e->due = 0; /* the attempt reads next_attempt from the envelope */
        } else if (!e->running) {
            e->due = 0;
        }
    }
    dl->scanning = 0;
    free(s->ids);
    free(s);
    if (!dl->d->stopping)
        pstd_delivery_tick(dl);
}

void pstd_delivery_scan(struct pstd_delivery *dl)
{
    if (dl->scanning)
        return;
    struct scan *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->dl = dl;
    dl->scanning = 1;
    dl->last_scan = time(NULL);
    if (pstd_pool_submit(dl->d->deliver_pool, scan_work, scan_done, s) != 0) {
        dl->scanning = 0;
        free(s);
    }
}

void pstd_delivery_tick(struct pstd_delivery *dl)
{
    int64_t now = time(NULL);
    if (dl->d->stopping)
        return;
    if (now - dl->last_scan >= RESCAN_EVERY)
        pstd_delivery_scan(dl);
    for (size_t b = 0; b < BUCKETS; b++)
        for (struct entry *e = dl->tab[b]; e; e = e->next)
            if (!e->running && e->due <= now)
                start(dl, e);
}

struct pstd_delivery *pstd_delivery_new(struct pstd *d)
{
    struct pstd_delivery *dl = calloc(1, sizeof(*dl));
    if (dl == NULL)
        return NULL;
    dl->d = d;
    return dl;
}

void pstd_delivery_free(struct pstd_delivery *dl)
{
    if (dl == NULL)
        return;
    for (size_t i = 0; i < BUCKETS; i++) {
        while (dl->tab[i]) {
            struct entry *e = dl->tab[i];
            dl->tab[i] = e->next;
            free(e);
        }
    }
    free(dl);
}
