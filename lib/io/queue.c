/*
 * queue.c - the durable queue on disk: ids, reception (create, commit,
 * abort), recovery after a crash, scan, envelope load/update, removal,
 * and the per-message lock that delivery attempts and `postern queue`
 * share.
 * The layout, the commit order and the recovery rules are in queue.h.
 *
 * Every operation works relative to the directory fds opened once in
 * pst_queue_open, so a spool path that changes under us does not redirect
 * writes; fsync of a directory uses the same fds. Files are 0600,
 * directories 0700. A failed fsync is never retried as if it had worked:
 * the operation fails and the caller answers 4xx (or retries later).
 */
#include "queue.h"
#include "buf.h"
#include "err.h"
#include "fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* "ID" + ".env.tmp" + NUL */
#define NAME_MAX_LEN (PST_QUEUE_ID_LEN + 9)

struct pst_queue {
    int spool_fd;
    int incoming_fd;
    int queue_fd;
    int readonly;
    int admin; /* pst_queue_open_admin: update and remove, no reception */
};

/* ---- ids ---- */

/* The per-process id state (queue.h: "a per-process counter"): global so
 * that two handles in one process never hand out the same id. */
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last_usec;
static unsigned id_counter;

void pst_queue_new_id(struct pst_queue *q, uint64_t now_usec, char id[PST_QUEUE_ID_LEN + 1])
{
    (void)q;
    uint64_t usec;
    unsigned n;

    pthread_mutex_lock(&id_lock);
    if (now_usec > id_last_usec) {
        id_last_usec = now_usec;
        id_counter = 0;
    } else if (++id_counter > 0xffff) {
        /* 65536 ids in one microsecond, or the clock stepped back: move
         * the time part on so ids stay unique and increasing */
        id_last_usec++;
        id_counter = 0;
    }
    usec = id_last_usec;
    n = id_counter;
    pthread_mutex_unlock(&id_lock);

    snprintf(id, PST_QUEUE_ID_LEN + 1, "%016" PRIX64 "%04X%04X", usec, n,
             (unsigned)getpid() & 0xffffu);
}

/* ID + ext into name (NAME_MAX_LEN + 1 bytes). */
static void file_name(char *name, const char *id, const char *ext)
{
    snprintf(name, NAME_MAX_LEN + 1, "%s%s", id, ext);
}

/* ---- open / close ---- */

static void close_fds(struct pst_queue *q)
{
    /* directories opened read-only: nothing to flush, so errors are moot */
    if (q->queue_fd >= 0)
        close(q->queue_fd);
    if (q->incoming_fd >= 0)
        close(q->incoming_fd);
    if (q->spool_fd >= 0)
        close(q->spool_fd);
}

static int queue_open(const char *path, int readonly, struct pst_queue **out)
{
    int rc;
    struct pst_queue *q = NULL;
    int created = 0;

    if (path == NULL || out == NULL)
        return PST_ERR_INVAL;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return PST_ERR_NOMEM;
    q->spool_fd = q->incoming_fd = q->queue_fd = -1;
    q->readonly = readonly;

    if (!readonly && (rc = pst_fsio_mkdirs(path, 0700)) != 0)
        goto out;
    q->spool_fd = pst_fsio_openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, 0);
    if (q->spool_fd < 0) {
        rc = errno == ENOENT ? PST_ERR_NOTFOUND : PST_ERR_IO;
        goto out;
    }
    if (!readonly && flock(q->spool_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? PST_ERR_AGAIN : PST_ERR_IO;
        goto out;
    }
    if (!readonly) {
        if ((rc = pst_fsio_mkdir_at(q->spool_fd, "incoming", 0700, &created)) != 0 ||
            (rc = pst_fsio_mkdir_at(q->spool_fd, "queue", 0700, &created)) != 0)
            goto out;
        if (created && (rc = pst_fsio_fsync(q->spool_fd)) != 0)
            goto out;
    }
    q->incoming_fd = pst_fsio_opendir_at(q->spool_fd, "incoming");
    if (q->incoming_fd >= 0)
        q->queue_fd = pst_fsio_opendir_at(q->spool_fd, "queue");
    if (q->incoming_fd < 0 || q->queue_fd < 0) {
        rc = errno == ENOENT ? PST_ERR_NOTFOUND : PST_ERR_IO;
        goto out;
    }
    *out = q;
    q = NULL;
    rc = 0;
out:
    if (q != NULL) {
        int saved = errno;
        close_fds(q);
        free(q);
        errno = saved;
    }
    return rc;
}

int pst_queue_open(const char *path, struct pst_queue **out)
{
    return queue_open(path, 0, out);
}

int pst_queue_open_readonly(const char *path, struct pst_queue **out)
{
    return queue_open(path, 1, out);
}

int pst_queue_open_admin(const char *path, struct pst_queue **out)
{
    struct pst_queue *q = NULL;
    /* opened as read-only (no mkdir, no spool lock), then allowed to
     * change existing messages */
    int rc = queue_open(path, 1, &q);
    if (rc != 0)
        return rc;
    q->readonly = 0;
    q->admin = 1;
    *out = q;
    return 0;
}

/* Reception and recovery belong to the daemon, which holds the spool lock. */
static int may_receive(const struct pst_queue *q)
{
    return !q->readonly && !q->admin;
}

void pst_queue_close(struct pst_queue *q)
{
    if (q == NULL)
        return;
    close_fds(q);
    free(q);
}

/* ---- reception ---- */

static int exists_at(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int pst_queue_create(struct pst_queue *q, const char *id, int *fd)
{
    char name[NAME_MAX_LEN + 1];

    if (q == NULL || fd == NULL || pst_queue_id_check(id) != 0)
        return PST_ERR_INVAL;
    if (!may_receive(q))
        return PST_ERR_STATE;
    /* an id already committed (a clash across processes whose pids agree
     * in the low 16 bits) must not be reused: the renames would refuse it
     * only at commit time, after the client sent the whole message */
    file_name(name, id, ".env");
    if (exists_at(q->queue_fd, name)) {
        errno = EEXIST;
        return PST_ERR_IO;
    }
    file_name(name, id, ".msg");
    if (exists_at(q->queue_fd, name)) {
        errno = EEXIST;
        return PST_ERR_IO;
    }
    int f = pst_fsio_openat(q->incoming_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (f < 0)
        return PST_ERR_IO;
    *fd = f;
    return 0;
}

/* What unlink_id removes from queue/ besides the incoming/ files. */
enum {
    UNLINK_QUEUE_MSG = 1,
    UNLINK_QUEUE_ENV = 2,
};

/* Removes the files of one id that a failed commit may have left, the
 * envelope first (it is the commit point). Only files this commit put in
 * queue/ are named in what. Keeps errno. */
static void unlink_id(struct pst_queue *q, const char *id, int what)
{
    char name[NAME_MAX_LEN + 1];
    int saved = errno;
    if (what & UNLINK_QUEUE_ENV) {
        file_name(name, id, ".env");
        unlinkat(q->queue_fd, name, 0);
    }
    if (what & UNLINK_QUEUE_MSG) {
        file_name(name, id, ".msg");
        unlinkat(q->queue_fd, name, 0);
    }
    file_name(name, id, ".env");
    unlinkat(q->incoming_fd, name, 0);
    file_name(name, id, ".msg");
    unlinkat(q->incoming_fd, name, 0);
    errno = saved;
}

/* One message up to (not including) the fsync of queue/: fsync(msg),
 * close, env into incoming/ with fsync, rename msg, rename env. Closes fd
 * in every case and removes the message's files on failure. */
static int stage(struct pst_queue *q, int fd, const struct pst_envelope *env)
{
    int rc;
    char *json = NULL;
    char msg[NAME_MAX_LEN + 1], envname[NAME_MAX_LEN + 1];
    int have_id = env != NULL && pst_queue_id_check(env->id) == 0;
    int renamed = 0;

    if (fd < 0 || !have_id) {
        rc = PST_ERR_INVAL;
        goto out;
    }
    if ((rc = pst_envelope_to_json(env, &json)) != 0)
        goto out;
    file_name(msg, env->id, ".msg");
    file_name(envname, env->id, ".env");

    if ((rc = pst_fsio_fsync(fd)) != 0)
        goto out;
    int f = fd;
    fd = -1;
    if ((rc = pst_fsio_close(f)) != 0)
        goto out;
    if ((rc = pst_fsio_write_file_at(q->incoming_fd, envname, json, strlen(json), 0)) != 0)
        goto out;
    /* the message before the envelope: queue/ID.env is the commit point */
    if ((rc = pst_fsio_rename_noreplace(q->incoming_fd, msg, q->queue_fd, msg)) != 0)
        goto out;
    renamed = 1;
    if ((rc = pst_fsio_rename_noreplace(q->incoming_fd, envname, q->queue_fd, envname)) != 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0) {
        int saved = errno;
        close(fd); /* failing anyway: the close result changes nothing */
        errno = saved;
    }
    if (rc != 0 && have_id)
        unlink_id(q, env->id, renamed ? UNLINK_QUEUE_MSG : 0);
    free(json);
    return rc;
}

int pst_queue_commit_batch(struct pst_queue *q, const int *fds,
                           const struct pst_envelope *const *envs, size_t n, int *results)
{
    int rc = 0;
    size_t staged = 0;

    if (q == NULL || fds == NULL || envs == NULL || results == NULL || !may_receive(q)) {
        /* the contract closes the fds in every case; a read-only or admin
         * handle removes nothing */
        rc = q != NULL && !may_receive(q) ? PST_ERR_STATE : PST_ERR_INVAL;
        for (size_t i = 0; fds != NULL && i < n; i++) {
            if (fds[i] >= 0)
                close(fds[i]);
            if (results != NULL)
                results[i] = rc;
        }
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        results[i] = stage(q, fds[i], envs[i]);
        if (results[i] == 0)
            staged++;
        else if (rc == 0)
            rc = results[i];
    }
    if (staged == 0)
        return rc;
    /* one fsync of queue/ makes every staged rename durable (group commit) */
    int src = pst_fsio_fsync(q->queue_fd);
    if (src != 0) {
        /* not durable: undo so nothing unacknowledged is delivered later
         * (best effort; what stays is at worst delivered once) */
        int saved = errno;
        for (size_t i = 0; i < n; i++) {
            if (results[i] != 0)
                continue;
            results[i] = src;
            unlink_id(q, envs[i]->id, UNLINK_QUEUE_MSG | UNLINK_QUEUE_ENV);
        }
        errno = saved;
        if (rc == 0)
            rc = src;
    }
    return rc;
}

int pst_queue_commit(struct pst_queue *q, int fd, const struct pst_envelope *env)
{
    int result;
    const struct pst_envelope *envs[1] = {env};
    return pst_queue_commit_batch(q, &fd, envs, 1, &result);
}

void pst_queue_abort(struct pst_queue *q, const char *id, int fd)
{
    int saved = errno;
    if (fd >= 0)
        close(fd); /* the message is being dropped: its data does not matter */
    if (q != NULL && may_receive(q) && pst_queue_id_check(id) == 0)
        unlink_id(q, id, 0);
    errno = saved;
}

/* ---- directory listing ---- */

/* Kinds of queue file names. */
enum qfile {
    QF_OTHER = 0,
    QF_MSG,
    QF_ENV,
    QF_TMP,
};

/* Classifies a name as ID.msg / ID.env / ID.env.tmp; the id is the first
 * PST_QUEUE_ID_LEN characters. */
static enum qfile classify(const char *name)
{
    size_t len = strlen(name);
    if (len < PST_QUEUE_ID_LEN)
        return QF_OTHER;
    char id[PST_QUEUE_ID_LEN + 1];
    memcpy(id, name, PST_QUEUE_ID_LEN);
    id[PST_QUEUE_ID_LEN] = '\0';
    if (pst_queue_id_check(id) != 0)
        return QF_OTHER;
    const char *ext = name + PST_QUEUE_ID_LEN;
    if (strcmp(ext, ".msg") == 0)
        return QF_MSG;
    if (strcmp(ext, ".env") == 0)
        return QF_ENV;
    if (strcmp(ext, ".env.tmp") == 0)
        return QF_TMP;
    return QF_OTHER;
}

/* Lists the queue-file names of dirfd matching want (QF_OTHER: any queue
 * file) as NUL-terminated NAME_MAX_LEN + 1 records, sorted. *list is
 * malloc'd (the caller frees it), *count the number of records. */
#define REC_LEN    (NAME_MAX_LEN + 1)
#define MAX_LISTED (16u * 1024 * 1024)

static int rec_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int list_dir(int dirfd, enum qfile want, char **list, size_t *count)
{
    int rc;
    DIR *d = NULL;
    struct pst_buf *b = pst_buf_new((size_t)REC_LEN * MAX_LISTED);
    if (b == NULL)
        return PST_ERR_NOMEM;
    /* a fresh open file description: a dup() would share the read offset
     * with concurrent scans in other threads */
    int fd = pst_fsio_opendir_at(dirfd, ".");
    if (fd < 0) {
        rc = PST_ERR_IO;
        goto out;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
        rc = PST_ERR_IO;
        goto out;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                rc = PST_ERR_IO;
                goto out;
            }
            break;
        }
        enum qfile k = classify(de->d_name);
        if (k == QF_OTHER || (want != QF_OTHER && k != want))
            continue;
        char rec[REC_LEN] = {0};
        memcpy(rec, de->d_name, strlen(de->d_name));
        if ((rc = pst_buf_add(b, rec, sizeof(rec))) != 0)
            goto out;
    }
    size_t n = pst_buf_len(b) / REC_LEN;
    char *recs = pst_buf_steal(b);
    if (recs == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    qsort(recs, n, REC_LEN, rec_cmp);
    *list = recs;
    *count = n;
    rc = 0;
out:
    if (d != NULL) {
        int saved = errno;
        closedir(d);
        errno = saved;
    }
    pst_buf_free(b);
    return rc;
}

int pst_queue_scan(struct pst_queue *q, int (*cb)(const char *id, void *arg), void *arg)
{
    char *list = NULL;
    size_t n = 0;
    if (q == NULL || cb == NULL)
        return PST_ERR_INVAL;
    int rc = list_dir(q->queue_fd, QF_ENV, &list, &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char *rec = list + i * REC_LEN;
        rec[PST_QUEUE_ID_LEN] = '\0'; /* cut ".env" */
        if ((rc = cb(rec, arg)) != 0)
            break;
    }
    free(list);
    return rc;
}

/* Binary search in a sorted record list. */
static int listed(const char *list, size_t n, const char *name)
{
    return bsearch(name, list, n, REC_LEN, rec_cmp) != NULL;
}

int pst_queue_recover(struct pst_queue *q)
{
    int rc;
    char *in = NULL, *qu = NULL;
    size_t nin = 0, nqu = 0;
    int removed = 0, removed_in = 0, removed_qu = 0;

    if (q == NULL)
        return PST_ERR_INVAL;
    if (!may_receive(q))
        return PST_ERR_STATE;
    if ((rc = list_dir(q->incoming_fd, QF_OTHER, &in, &nin)) != 0 ||
        (rc = list_dir(q->queue_fd, QF_OTHER, &qu, &nqu)) != 0)
        goto out;

    /* incoming/: receptions that never committed */
    for (size_t i = 0; i < nin; i++) {
        const char *name = in + i * REC_LEN;
        if (unlinkat(q->incoming_fd, name, 0) != 0) {
            if (errno == ENOENT)
                continue;
            rc = PST_ERR_IO;
            goto out;
        }
        removed_in++;
    }

    /* queue/: a message needs its envelope and an envelope its message;
     * envelope-first removal and message-first commit make every half
     * pair one that was never acknowledged or is already finished */
    for (size_t i = 0; i < nqu; i++) {
        const char *name = qu + i * REC_LEN;
        char id[PST_QUEUE_ID_LEN + 1], other[NAME_MAX_LEN + 1];
        memcpy(id, name, PST_QUEUE_ID_LEN);
        id[PST_QUEUE_ID_LEN] = '\0';
        enum qfile k = classify(name);
        int drop;
        if (k == QF_TMP) {
            drop = 1; /* an update cut short: the old envelope stands */
        } else {
            file_name(other, id, k == QF_MSG ? ".env" : ".msg");
            drop = !listed(qu, nqu, other);
        }
        if (!drop)
            continue;
        if (unlinkat(q->queue_fd, name, 0) != 0) {
            if (errno == ENOENT)
                continue;
            rc = PST_ERR_IO;
            goto out;
        }
        removed_qu++;
    }
    if (removed_in > 0 && (rc = pst_fsio_fsync(q->incoming_fd)) != 0)
        goto out;
    if (removed_qu > 0 && (rc = pst_fsio_fsync(q->queue_fd)) != 0)
        goto out;
    removed = removed_in + removed_qu;
    rc = removed;
out:
    free(in);
    free(qu);
    return rc;
}

/* ---- committed messages ---- */

int pst_queue_load(struct pst_queue *q, const char *id, struct pst_envelope **out)
{
    int rc;
    char name[NAME_MAX_LEN + 1];
    struct pst_envelope *env = NULL;

    if (q == NULL || out == NULL || pst_queue_id_check(id) != 0)
        return PST_ERR_INVAL;
    /* one byte over the cap so an oversized file is told apart */
    struct pst_buf *b = pst_buf_new(PST_ENVELOPE_MAX_JSON + 1);
    if (b == NULL)
        return PST_ERR_NOMEM;
    file_name(name, id, ".env");
    if ((rc = pst_fsio_read_file_at(q->queue_fd, name, b)) != 0)
        goto out;
    if ((rc = pst_envelope_from_json(pst_buf_data(b), pst_buf_len(b), &env)) != 0)
        goto out;
    if (strcmp(env->id, id) != 0) {
        rc = PST_ERR_SYNTAX;
        goto out;
    }
    *out = env;
    env = NULL;
    rc = 0;
out:
    pst_envelope_free(env);
    pst_buf_free(b);
    return rc;
}

int pst_queue_update(struct pst_queue *q, const struct pst_envelope *env)
{
    int rc;
    char *json = NULL;
    char name[NAME_MAX_LEN + 1], tmp[NAME_MAX_LEN + 1];

    if (q == NULL || env == NULL || pst_queue_id_check(env->id) != 0)
        return PST_ERR_INVAL;
    if (q->readonly)
        return PST_ERR_STATE;
    if ((rc = pst_envelope_to_json(env, &json)) != 0)
        goto out;
    file_name(name, env->id, ".env");
    file_name(tmp, env->id, ".env.tmp");
    if (!exists_at(q->queue_fd, name)) {
        rc = errno == ENOENT ? PST_ERR_NOTFOUND : PST_ERR_IO;
        goto out;
    }
    /* O_TRUNC, not O_EXCL: a tmp left by a crash is ours to overwrite (the
     * caller serialises work on one id) */
    if ((rc = pst_fsio_write_file_at(q->queue_fd, tmp, json, strlen(json), 0)) != 0)
        goto out;
    if (renameat(q->queue_fd, tmp, q->queue_fd, name) != 0) {
        rc = PST_ERR_IO;
        int saved = errno;
        unlinkat(q->queue_fd, tmp, 0);
        errno = saved;
        goto out;
    }
    rc = pst_fsio_fsync(q->queue_fd);
out:
    free(json);
    return rc;
}

int pst_queue_open_msg(struct pst_queue *q, const char *id, int *fd)
{
    char name[NAME_MAX_LEN + 1];
    if (q == NULL || fd == NULL || pst_queue_id_check(id) != 0)
        return PST_ERR_INVAL;
    file_name(name, id, ".msg");
    int f = pst_fsio_openat(q->queue_fd, name, O_RDONLY | O_NOFOLLOW, 0);
    if (f < 0)
        return errno == ENOENT ? PST_ERR_NOTFOUND : PST_ERR_IO;
    *fd = f;
    return 0;
}

int pst_queue_remove(struct pst_queue *q, const char *id)
{
    char name[NAME_MAX_LEN + 1];
    int found = 0;

    if (q == NULL || pst_queue_id_check(id) != 0)
        return PST_ERR_INVAL;
    if (q->readonly)
        return PST_ERR_STATE;
    /* the envelope first: once it is gone the message is no longer queued */
    static const char *const exts[] = {".env", ".env.tmp", ".msg"};
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        file_name(name, id, exts[i]);
        if (unlinkat(q->queue_fd, name, 0) == 0) {
            if (i != 1)
                found = 1;
        } else if (errno != ENOENT) {
            return PST_ERR_IO;
        }
    }
    if (!found)
        return PST_ERR_NOTFOUND;
    return pst_fsio_fsync(q->queue_fd);
}

/* ---- the per-message lock ---- */

/* Milliseconds between two tries of a taken lock. */
#define LOCK_POLL_MS 10

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pst_queue_lock_msg(struct pst_queue *q, const char *id, unsigned timeout_ms, int *fd)
{
    int rc;
    char name[NAME_MAX_LEN + 1];
    struct stat st;

    if (q == NULL || fd == NULL || pst_queue_id_check(id) != 0)
        return PST_ERR_INVAL;
    file_name(name, id, ".msg");
    int f = pst_fsio_openat(q->queue_fd, name, O_RDONLY | O_NOFOLLOW, 0);
    if (f < 0)
        return errno == ENOENT ? PST_ERR_NOTFOUND : PST_ERR_IO;
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        if (flock(f, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK) {
            rc = PST_ERR_IO;
            goto out;
        }
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            rc = PST_ERR_AGAIN;
            goto out;
        }
        struct timespec ts = {0, (long)(left < LOCK_POLL_MS ? left : LOCK_POLL_MS) * 1000000L};
        nanosleep(&ts, NULL); /* EINTR: the loop looks at the clock again */
    }
    /* the attempt we waited for may have finished the message: its file
     * is unlinked (our fd keeps it alive) or its envelope is gone */
    if (fstat(f, &st) != 0) {
        rc = PST_ERR_IO;
        goto out;
    }
    file_name(name, id, ".env");
    if (st.st_nlink == 0 || !exists_at(q->queue_fd, name)) {
        rc = PST_ERR_NOTFOUND;
        goto out;
    }
    *fd = f;
    f = -1;
    rc = 0;
out:
    if (f >= 0) {
        int saved = errno;
        close(f); /* read-only: releases the lock if we had it */
        errno = saved;
    }
    return rc;
}

void pst_queue_unlock_msg(int fd)
{
    if (fd < 0)
        return;
    /* closing the only descriptor of this open file releases the flock;
     * nothing was written through it */
    close(fd);
}
