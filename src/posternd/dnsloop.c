/*
 * dnsloop.c - a resolver's asynchronous side on the libevent loop
 * (dnsloop.h).
 *
 * One persistent read event on the resolver's descriptor calls
 * pst_dns_process(), which runs the resolver's callbacks; each query also
 * has a timer. Whichever comes first wins: an answer stops the timer, the
 * timer cancels the query in the resolver and delivers a RETRY answer.
 * Either way the caller's callback runs once, and the query's memory is
 * freed before it runs, so the callback may start or cancel other queries.
 */
#include "dnsloop.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct pstd_dns_query {
    struct pstd_dns_query *next, *prev;
    struct pstd_dns *d;
    unsigned id; /* the resolver's */
    struct event *timer;
    unsigned timeout_ms;
    uint16_t type;
    char name[PST_DNS_NAME_TEXT_MAX];
    pst_dns_done_fn *done;
    void *arg;
};

struct pstd_dns {
    struct event_base *base;
    struct pst_resolver *r;
    struct event *readable;
    struct pstd_dns_query *pending;
    unsigned npending;
};

static void unlink_query(struct pstd_dns_query *q)
{
    struct pstd_dns *d = q->d;

    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        d->pending = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    d->npending--;
    event_free(q->timer);
}

/* Unlinks and frees q, then hands a to its callback. */
static void deliver(struct pstd_dns_query *q, struct pst_dns_answer *a)
{
    pst_dns_done_fn *done = q->done;
    void *arg = q->arg;

    unlink_query(q);
    free(q);
    done(arg, a);
}

static void on_answer(void *arg, struct pst_dns_answer *a)
{
    deliver(arg, a);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pstd_dns_query *q = arg;
    struct pst_dns_answer *a = NULL;

    (void)fd;
    (void)what;
    pst_dns_cancel(q->d->r, q->id);
    if (pst_dns_answer_timeout(q->name, q->type, q->timeout_ms, &a) != 0) {
        /* out of memory: try again in a second (the resolver's query is
         * gone already); done must run once, with an answer */
        struct timeval tv = {.tv_sec = 1};
        evtimer_add(q->timer, &tv);
        return;
    }
    deliver(q, a);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct pstd_dns *d = arg;

    (void)fd;
    (void)what;
    pst_dns_process(d->r);
}

struct pstd_dns *pstd_dns_new(struct event_base *base, struct pst_resolver *r)
{
    int fd = pst_dns_fd(r);
    struct pstd_dns *d;

    if (fd < 0 || r->query_async == NULL)
        return NULL;
    d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->base = base;
    d->r = r;
    d->readable = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, d);
    if (d->readable == NULL || event_add(d->readable, NULL) != 0) {
        pstd_dns_free(d);
        return NULL;
    }
    return d;
}

void pstd_dns_free(struct pstd_dns *d)
{
    if (d == NULL)
        return;
    while (d->pending != NULL)
        pstd_dns_cancel(d->pending);
    if (d->readable != NULL)
        event_free(d->readable);
    free(d);
}

int pstd_dns_query(struct pstd_dns *d, struct pst_dns_budget *b, const char *name, uint16_t type,
                   pst_dns_done_fn *done, void *arg, struct pstd_dns_query **out)
{
    struct pstd_dns_query *q;
    int rc;

    if (d == NULL || name == NULL || done == NULL)
        return PST_ERR_INVAL;
    q = calloc(1, sizeof *q);
    if (q == NULL)
        return PST_ERR_NOMEM;
    q->d = d;
    q->done = done;
    q->arg = arg;
    q->type = type;
    q->timeout_ms = b != NULL && b->timeout_ms > 0 ? b->timeout_ms : PST_DNS_TIMEOUT_MS;
    if (strlen(name) >= sizeof q->name) {
        free(q);
        return PST_ERR_SYNTAX;
    }
    memcpy(q->name, name, strlen(name) + 1);
    q->timer = evtimer_new(d->base, on_timeout, q);
    if (q->timer == NULL) {
        free(q);
        return PST_ERR_NOMEM;
    }
    struct timeval tv = {.tv_sec = q->timeout_ms / 1000,
                         .tv_usec = (suseconds_t)(q->timeout_ms % 1000) * 1000};
    if (evtimer_add(q->timer, &tv) != 0) {
        event_free(q->timer);
        free(q);
        return PST_ERR_NOMEM;
    }
    /* linked first: the resolver calls back only from process(), but the
     * query must be findable by then */
    q->next = d->pending;
    if (d->pending != NULL)
        d->pending->prev = q;
    d->pending = q;
    d->npending++;
    rc = pst_dns_query_async(d->r, b, name, type, on_answer, q, &q->id);
    if (rc != 0) {
        unlink_query(q);
        free(q);
        return rc;
    }
    if (out != NULL)
        *out = q;
    return 0;
}

void pstd_dns_cancel(struct pstd_dns_query *q)
{
    if (q == NULL)
        return;
    pst_dns_cancel(q->d->r, q->id);
    unlink_query(q);
    free(q);
}

unsigned pstd_dns_pending(const struct pstd_dns *d)
{
    return d != NULL ? d->npending : 0;
}
