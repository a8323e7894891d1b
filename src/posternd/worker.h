/*
 * worker.h - a small thread pool for work that may block (fsync, Maildir
 * delivery, later DNS checks), so the event loop never waits on a disk.
 * Each job's work() runs on a worker thread; its done() then runs on the
 * event loop thread. A batch job type lets the spool group many commits
 * into one directory fsync.
 */
#ifndef PSTD_WORKER_H
#define PSTD_WORKER_H

#include <stddef.h>

struct event_base;
struct pstd_pool;

/* Starts nthreads workers; needs evthread_use_pthreads() first. */
struct pstd_pool *pstd_pool_new(struct event_base *base, int nthreads);
/* Queues work(arg) then done(arg) on the loop. done may be NULL. 0 or -1. */
int pstd_pool_submit(struct pstd_pool *p, void (*work)(void *), void (*done)(void *), void *arg);
/* Schedules done(arg) on the loop thread; callable from any thread. */
void pstd_pool_complete(struct pstd_pool *p, void (*done)(void *), void *arg);
/* Jobs queued or running. */
size_t pstd_pool_pending(struct pstd_pool *p);
/* Finishes queued jobs, joins the threads, runs the outstanding done()s. */
void pstd_pool_free(struct pstd_pool *p);

#endif
