/*
 * spool.c - group commit of received messages.
 *
 * Every commit request joins a pending list and queues one pool job; the
 * first worker to run takes the whole list and commits it with
 * pst_queue_commit_batch (one fsync of queue/ for all of them), the others
 * find less or nothing to do. Under load many messages share a directory
 * fsync; alone, a message waits for no one. Results go back to the loop.
 */
#include <pthread.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"
#include "worker.h"

struct commit_req {
    int fd;
    struct pst_envelope *env;
    void (*cb)(void *arg, int rc);
    void *arg;
    int rc;
    struct commit_req *next;
};

struct pstd_spool {
    struct pstd *d;
    pthread_mutex_t mu;
    struct commit_req *head, *tail;
};

struct pstd_spool *pstd_spool_new(struct pstd *d)
{
    struct pstd_spool *sp = calloc(1, sizeof(*sp));
    if (sp == NULL)
        return NULL;
    sp->d = d;
    pthread_mutex_init(&sp->mu, NULL);
    return sp;
}

void pstd_spool_free(struct pstd_spool *sp)
{
    if (sp == NULL)
        return;
    pthread_mutex_destroy(&sp->mu);
    free(sp);
}

static void commit_result(void *arg)
{
    struct commit_req *r = arg;
    r->cb(r->arg, r->rc);
    free(r);
}

#define BATCH_MAX 256

static void commit_work(void *arg)
{
    struct pstd_spool *sp = arg;
    for (;;) {
        struct commit_req *batch[BATCH_MAX];
        size_t n = 0;
        pthread_mutex_lock(&sp->mu);
        while (sp->head != NULL && n < BATCH_MAX) {
            batch[n++] = sp->head;
            sp->head = sp->head->next;
        }
        if (sp->head == NULL)
            sp->tail = NULL;
        pthread_mutex_unlock(&sp->mu);
        if (n == 0)
            return;
        int fds[BATCH_MAX];
        const struct pst_envelope *envs[BATCH_MAX];
        int results[BATCH_MAX];
        for (size_t i = 0; i < n; i++) {
            fds[i] = batch[i]->fd;
            envs[i] = batch[i]->env;
            results[i] = 0;
        }
        pst_queue_commit_batch(sp->d->queue, fds, envs, n, results);
        for (size_t i = 0; i < n; i++) {
            batch[i]->rc = results[i];
            pstd_pool_complete(sp->d->commit_pool, commit_result, batch[i]);
        }
    }
}

int pstd_spool_commit(struct pstd_spool *sp, int fd, struct pst_envelope *env,
                      void (*cb)(void *arg, int rc), void *arg)
{
    struct commit_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    r->fd = fd;
    r->env = env;
    r->cb = cb;
    r->arg = arg;
    pthread_mutex_lock(&sp->mu);
    if (sp->tail)
        sp->tail->next = r;
    else
        sp->head = r;
    sp->tail = r;
    pthread_mutex_unlock(&sp->mu);
    if (pstd_pool_submit(sp->d->commit_pool, commit_work, NULL, sp) != 0) {
        /* the request stays queued; the next job or shutdown takes it */
        log_err("spool: cannot queue a commit job");
    }
    return 0;
}
