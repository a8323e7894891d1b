/* worker.c - thread pool with completions delivered to the libevent loop. */
#include "worker.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

struct job {
    void (*work)(void *);
    void (*done)(void *);
    void *arg;
    struct job *next;
};

struct pstd_pool {
    struct event_base *base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;   /* queued work */
    struct job *dhead, *dtail; /* finished, waiting for done() on the loop */
    size_t pending;
    int stop;
    int nthreads;
    pthread_t *threads;
    struct event *wake;
};

static void push(struct job **head, struct job **tail, struct job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void run_done(struct pstd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct job *j = p->dhead;
    p->dhead = p->dtail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        struct job *next = j->next;
        if (j->done)
            j->done(j->arg);
        free(j);
        j = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_done(arg);
}

void pstd_pool_complete(struct pstd_pool *p, void (*done)(void *), void *arg)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        abort(); /* daemon code: cannot report completion otherwise */
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    push(&p->dhead, &p->dtail, j);
    pthread_mutex_unlock(&p->mu);
    event_active(p->wake, EV_READ, 0);
}

static void *worker_main(void *arg)
{
    struct pstd_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->head == NULL && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        struct job *j = p->head;
        if (j == NULL) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        if (j->work)
            j->work(j->arg);
        pthread_mutex_lock(&p->mu);
        p->pending--;
        push(&p->dhead, &p->dtail, j);
        pthread_mutex_unlock(&p->mu);
        event_active(p->wake, EV_READ, 0);
    }
}

struct pstd_pool *pstd_pool_new(struct event_base *base, int nthreads)
{
    struct pstd_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->base = base;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->wake = event_new(base, -1, 0, on_wake, p);
    p->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    if (p->wake == NULL || p->threads == NULL)
        goto fail;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
            goto fail;
        p->nthreads++;
    }
    return p;
fail:
    pstd_pool_free(p);
    return NULL;
}

int pstd_pool_submit(struct pstd_pool *p, void (*work)(void *), void (*done)(void *), void *arg)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -1;
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    push(&p->head, &p->tail, j);
    p->pending++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t pstd_pool_pending(struct pstd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void pstd_pool_free(struct pstd_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    run_done(p);
    if (p->wake)
        event_free(p->wake);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
