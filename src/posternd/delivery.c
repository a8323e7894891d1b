/*
 * delivery.c - local delivery of queued messages into users' Maildirs.
 *
 * A committed message is delivered at once on the delivery pool; the
 * envelope records each recipient's state, so a crash between recipients
 * delivers the rest after restart (at least once: a recipient delivered
 * just before a crash may get the message twice, never zero times). A
 * temporary failure (disk full, unwritable Maildir, user removed from the
 * configuration) keeps the message queued with attempts and next_attempt
 * updated; the retry timer scans the queue. No bounce exists yet: this
 * issue has no outbound path (see the issue note).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "worker.h"

#define INFLIGHT_BUCKETS 1024

struct inflight {
    char id[PST_QUEUE_ID_LEN + 1];
    struct inflight *next;
};

struct pstd_delivery {
    struct pstd *d;
    pthread_mutex_t mu;
    struct inflight *tab[INFLIGHT_BUCKETS];
    int scan_queued;
};

static unsigned hash_id(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % INFLIGHT_BUCKETS;
}

/* Marks id in flight; 0 when it already was. */
static int claim(struct pstd_delivery *dl, const char *id)
{
    unsigned h = hash_id(id);
    pthread_mutex_lock(&dl->mu);
    for (struct inflight *f = dl->tab[h]; f; f = f->next) {
        if (strcmp(f->id, id) == 0) {
            pthread_mutex_unlock(&dl->mu);
            return 0;
        }
    }
    struct inflight *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        pthread_mutex_unlock(&dl->mu);
        return 0;
    }
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->next = dl->tab[h];
    dl->tab[h] = f;
    pthread_mutex_unlock(&dl->mu);
    return 1;
}

static void release(struct pstd_delivery *dl, const char *id)
{
    unsigned h = hash_id(id);
    pthread_mutex_lock(&dl->mu);
    for (struct inflight **pp = &dl->tab[h]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            struct inflight *f = *pp;
            *pp = f->next;
            free(f);
            break;
        }
    }
    pthread_mutex_unlock(&dl->mu);
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
static void set_reply(struct pst_envelope_rcpt *r, const char *text)
{
    free(r->last_reply);
    r->last_reply = strndup(text, 512);
}

/* Delivers one queued message (worker thread). force: ignore next_attempt. */
static void deliver_one(struct pstd_delivery *dl, const char *id, int force)
{
    struct pstd *d = dl->d;
    struct pst_envelope *env = NULL;
    int fd = -1;
    int rc = pst_queue_load(d->queue, id, &env);
    if (rc == PST_ERR_NOTFOUND)
        return;
    if (rc < 0) {
        log_err("delivery %s: cannot load envelope: %s", id, pst_strerror(rc));
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (!force && env->next_attempt > tv.tv_sec) {
        pst_envelope_free(env);
        return;
    }
    struct pstd_confref *cr = pstd_conf_get(d);
    const struct pst_conf *conf = cr->conf;
    rc = pst_queue_open_msg(d->queue, id, &fd);
    if (rc < 0) {
        log_err("delivery %s: cannot open message: %s", id, pst_strerror(rc));
        goto out;
    }
    size_t pending = 0;
    for (size_t i = 0; i < env->nrcpts; i++) {
        struct pst_envelope_rcpt *r = &env->rcpts[i];
        if (r->state != PST_RCPT_PENDING)
            continue;
        const struct pst_user_conf *u = find_user(conf, r->user);
        if (u == NULL) {
            log_warn("delivery %s: to=<%s> user %s is not configured; deferred", id, r->addr,
                     r->user ? r->user : "(none)");
            set_reply(r, "user not configured");
            pending++;
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
                set_reply(r, "Maildir path too long for its Junk folder");
                pending++;
                continue;
            }
            box = junk;
        }
        rc = pst_maildir_deliver(box, fd, conf->hostname, env->sender, r->addr, now_usec, name,
                                 sizeof(name));
        if (rc == 0) {
            r->state = PST_RCPT_DELIVERED;
            set_reply(r, "delivered to Maildir");
            log_info("delivery %s: to=<%s> user=%s status=sent maildir=%s/new/%s", id, r->addr,
                     u->name, box, name);
        } else {
            char why[4096 + 256];
            snprintf(why, sizeof(why), "Maildir %s: %s", box,
                     rc == PST_ERR_IO ? strerror(errno) : pst_strerror(rc));
            set_reply(r, why);
            log_warn("delivery %s: to=<%s> status=deferred (%s)", id, r->addr, why);
            pending++;
        }
    }
    if (pending == 0) {
        rc = pst_queue_remove(d->queue, id);
        if (rc < 0)
            log_err("delivery %s: cannot remove from queue: %s", id, pst_strerror(rc));
        else
            log_info("delivery %s: removed from queue", id);
    } else {
        env->attempts++;
        env->next_attempt = tv.tv_sec + (int64_t)conf->retry_interval;
        rc = pst_queue_update(d->queue, env);
        if (rc < 0)
            log_err("delivery %s: cannot update envelope: %s", id, pst_strerror(rc));
    }
out:
    if (fd >= 0)
        close(fd);
    pstd_conf_put(d, cr);
    pst_envelope_free(env);
}

struct kick {
    struct pstd_delivery *dl;
    char id[PST_QUEUE_ID_LEN + 1];
};

static void kick_work(void *arg)
{
    struct kick *k = arg;
    deliver_one(k->dl, k->id, 1);
    release(k->dl, k->id);
}

static void kick_done(void *arg)
{
    free(arg);
}

void pstd_delivery_kick(struct pstd_delivery *dl, const char *id)
{
    if (!claim(dl, id))
        return;
    struct kick *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        release(dl, id);
        return; /* the retry scan will find it */
    }
    k->dl = dl;
    snprintf(k->id, sizeof(k->id), "%s", id);
    if (pstd_pool_submit(dl->d->deliver_pool, kick_work, kick_done, k) != 0) {
        release(dl, id);
        free(k);
    }
}

static int scan_cb(const char *id, void *arg)
{
    struct pstd_delivery *dl = arg;
    if (__atomic_load_n(&dl->d->stop_flag, __ATOMIC_RELAXED))
        return 1;
    if (!claim(dl, id))
        return 0;
    deliver_one(dl, id, 0);
    release(dl, id);
    return 0;
}

static void scan_work(void *arg)
{
    struct pstd_delivery *dl = arg;
    int rc = pst_queue_scan(dl->d->queue, scan_cb, dl);
    if (rc < 0)
        log_err("delivery: queue scan failed: %s", pst_strerror(rc));
}

static void scan_done(void *arg)
{
    struct pstd_delivery *dl = arg;
    dl->scan_queued = 0;
}

void pstd_delivery_scan(struct pstd_delivery *dl)
{
    if (dl->scan_queued)
        return;
    dl->scan_queued = 1;
    if (pstd_pool_submit(dl->d->deliver_pool, scan_work, scan_done, dl) != 0)
        dl->scan_queued = 0;
}

struct pstd_delivery *pstd_delivery_new(struct pstd *d)
{
    struct pstd_delivery *dl = calloc(1, sizeof(*dl));
    if (dl == NULL)
        return NULL;
    dl->d = d;
    pthread_mutex_init(&dl->mu, NULL);
    return dl;
}

void pstd_delivery_free(struct pstd_delivery *dl)
{
    if (dl == NULL)
        return;
    for (size_t i = 0; i < INFLIGHT_BUCKETS; i++) {
        while (dl->tab[i]) {
            struct inflight *f = dl->tab[i];
            dl->tab[i] = f->next;
            free(f);
        }
    }
    pthread_mutex_destroy(&dl->mu);
    free(dl);
}
