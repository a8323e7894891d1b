/* test_queue.c - the queue on disk, the envelope codec and Maildir
 * delivery, each in a fresh temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "queue.h"

#define T0 1714564800000000ull /* 2024-05-01T12:00:00Z in microseconds */

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup_dir(void **state)
{
    char tmpl[] = "/tmp/pst_test_queue.XXXXXX";
    char *d = mkdtemp(tmpl);
    if (d == NULL)
        return -1;
    *state = strdup(d);
    return *state == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
    nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(*state);
    return 0;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int file_exists(const char *dir, const char *sub, const char *id, const char *ext)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s/%s%s", dir, sub, id, ext);
    struct stat st;
    return stat(p, &st) == 0;
}

static void write_file(const char *dir, const char *sub, const char *name, const char *data)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s/%s", dir, sub, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
}

/* Number of entries (not . or ..) of dir/sub. */
static int count_entries(const char *dir, const char *sub)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, sub);
    DIR *d = opendir(p);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static char *read_all(int fd)
{
    struct pst_buf *b = pst_buf_new(1 << 20);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        assert_int_equal(pst_buf_add(b, chunk, (size_t)n), 0);
    char *s = pst_buf_steal(b);
    pst_buf_free(b);
    return s;
}

/* A two-recipient envelope with every field set; the caller frees it. */
static struct pst_envelope *make_env(const char *id, size_t nrcpts)
{
    struct pst_envelope *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    memcpy(e->id, id, PST_QUEUE_ID_LEN + 1);
    e->sender = strdup("alice@example.org");
    e->arrival = 1714564800;
    e->client_addr = strdup("192.0.2.1");
    e->helo = strdup("mail.example.org");
    e->smtputf8 = 1;
    e->body_8bit = 0;
    e->tls = 1;
    e->attempts = 3;
    e->next_attempt = 1714565000;
    e->rcpts = calloc(nrcpts, sizeof(*e->rcpts));
    assert_non_null(e->rcpts);
    e->nrcpts = nrcpts;
    for (size_t i = 0; i < nrcpts; i++) {
        char a[64];
        snprintf(a, sizeof(a), "user%zu@example.com", i);
        e->rcpts[i].addr = strdup(a);
        e->rcpts[i].user = strdup("bob");
        e->rcpts[i].state = (enum pst_rcpt_state)(i % 3);
        e->rcpts[i].last_reply = i % 2 ? strdup("451 4.3.0 try\r\nlater") : NULL;
    }
    return e;
}

static void assert_env_equal(const struct pst_envelope *a, const struct pst_envelope *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->sender, b->sender);
    assert_int_equal(a->arrival, b->arrival);
    if (a->client_addr == NULL)
        assert_null(b->client_addr);
    else
        assert_string_equal(a->client_addr, b->client_addr);
    if (a->helo == NULL)
        assert_null(b->helo);
    else
        assert_string_equal(a->helo, b->helo);
    assert_int_equal(a->smtputf8, b->smtputf8);
    assert_int_equal(a->body_8bit, b->body_8bit);
    assert_int_equal(a->tls, b->tls);
    assert_int_equal(a->attempts, b->attempts);
    assert_int_equal(a->next_attempt, b->next_attempt);
    assert_int_equal(a->quarantine, b->quarantine);
    assert_int_equal(a->ret, b->ret);
    assert_int_equal(a->warned, b->warned);
    assert_int_equal(a->hold, b->hold);
    if (a->envid == NULL)
        assert_null(b->envid);
    else
        assert_string_equal(a->envid, b->envid);
    if (a->auth_user == NULL)
        assert_null(b->auth_user);
    else
        assert_string_equal(a->auth_user, b->auth_user);
    assert_int_equal(a->nrcpts, b->nrcpts);
    for (size_t i = 0; i < a->nrcpts; i++) {
        assert_int_equal(a->rcpts[i].notify, b->rcpts[i].notify);
        if (a->rcpts[i].orcpt == NULL)
            assert_null(b->rcpts[i].orcpt);
        else
            assert_string_equal(a->rcpts[i].orcpt, b->rcpts[i].orcpt);
        assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
        if (a->rcpts[i].user == NULL)
            assert_null(b->rcpts[i].user);
        else
            assert_string_equal(a->rcpts[i].user, b->rcpts[i].user);
        assert_int_equal(a->rcpts[i].state, b->rcpts[i].state);
        if (a->rcpts[i].last_reply == NULL)
            assert_null(b->rcpts[i].last_reply);
        else
            assert_string_equal(a->rcpts[i].last_reply, b->rcpts[i].last_reply);
    }
}

/* Receives msg under a new id and commits it; returns the envelope. */
static struct pst_envelope *receive(struct pst_queue *q, uint64_t now, const char *msg)
{
    char id[PST_QUEUE_ID_LEN + 1];
    int fd = -1;
    pst_queue_new_id(q, now, id);
    assert_int_equal(pst_queue_create(q, id, &fd), 0);
    assert_int_equal(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
    struct pst_envelope *e = make_env(id, 2);
    assert_int_equal(pst_queue_commit(q, fd, e), 0);
    return e;
}

static int collect_cb(const char *id, void *arg)
{
    struct pst_buf *b = arg;
    assert_int_equal(pst_queue_id_check(id), 0);
    assert_int_equal(pst_buf_addstr(b, id), 0);
    assert_int_equal(pst_buf_addc(b, ' '), 0);
    return 0;
}

/* ---- ids ---- */

static void test_ids_unique_sorted(void **state)
{
    (void)state;
    char prev[PST_QUEUE_ID_LEN + 1] = "";
    char id[PST_QUEUE_ID_LEN + 1];
    /* many ids in one microsecond, then a clock that steps back */
    const uint64_t times[] = {T0, T0, T0, T0 + 1, T0 - 5000000, T0 + 2};
    for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
        for (int i = 0; i < 70000; i += (t == 0 ? 1 : 10000)) {
            pst_queue_new_id(NULL, times[t], id);
            assert_int_equal(strlen(id), PST_QUEUE_ID_LEN);
            assert_int_equal(pst_queue_id_check(id), 0);
            if (strcmp(prev, id) >= 0)
                fail_msg("got %s after %s, want increasing", id, prev);
            memcpy(prev, id, sizeof(id));
        }
    }
    /* the layout: 16 hex of time, 4 of counter, 4 of pid */
    pst_queue_new_id(NULL, UINT64_C(0x00FF000000000000), id);
    char pid[5];
    snprintf(pid, sizeof(pid), "%04X", (unsigned)getpid() & 0xffff);
    assert_memory_equal(id, "00FF000000000000", 16);
    assert_memory_equal(id + 16, "0000", 4);
    assert_string_equal(id + 20, pid);
}

enum { NTHREADS = 4, PER_THREAD = 5000 };

static void *make_ids(void *arg)
{
    char *out = arg;
    for (int i = 0; i < PER_THREAD; i++)
        pst_queue_new_id(NULL, T0, out + (size_t)i * (PST_QUEUE_ID_LEN + 1));
    return NULL;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_ids_unique_across_threads(void **state)
{
    (void)state;
    size_t rec = PST_QUEUE_ID_LEN + 1, n = (size_t)NTHREADS * PER_THREAD;
    char *ids = calloc(n, rec);
    assert_non_null(ids);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, make_ids, ids + (size_t)i * PER_THREAD * rec),
                         0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    /* each thread's ids increase; together they are all different */
    for (int i = 0; i < NTHREADS; i++)
        for (int j = 1; j < PER_THREAD; j++) {
            const char *a = ids + ((size_t)i * PER_THREAD + (size_t)j - 1) * rec;
            assert_true(strcmp(a, a + rec) < 0);
        }
    qsort(ids, n, rec, id_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(ids + (i - 1) * rec, ids + i * rec) == 0)
            fail_msg("id %s handed out twice", ids + i * rec);
    free(ids);
}

static void test_id_check(void **state)
{
    (void)state;
    static const struct {
        const char *id;
        int want;
    } cases[] = {
        {"0006176339D9300000013F2A", 0},
        {"0006176339d9300000013F2A", PST_ERR_SYNTAX},
        {"0006176339D9300000013F2", PST_ERR_SYNTAX},
        {"0006176339D9300000013F2AB", PST_ERR_SYNTAX},
        {"0006176339D9300000013F2G", PST_ERR_SYNTAX},
        {"../../../../etc/passwd000", PST_ERR_SYNTAX},
        {"", PST_ERR_SYNTAX},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = pst_queue_id_check(cases[i].id);
        if (got != cases[i].want)
            fail_msg("id %s: got %d want %d", cases[i].id, got, cases[i].want);
    }
    assert_int_equal(pst_queue_id_check(NULL), PST_ERR_SYNTAX);
}

/* ---- queue ---- */

static void test_open_creates_dirs(void **state)
{
    char *spool = path_join(*state, "a/b/spool");
    struct pst_queue *q = NULL;
    assert_int_equal(pst_queue_open_readonly(spool, &q), PST_ERR_NOTFOUND);
    assert_null(q);
    assert_int_equal(pst_queue_open(spool, &q), 0);
    struct stat st;
    char *in = path_join(spool, "incoming"), *qu = path_join(spool, "queue");
    assert_int_equal(stat(in, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(stat(qu, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    pst_queue_close(q);
    assert_int_equal(pst_queue_open_readonly(spool, &q), 0);
    char id[PST_QUEUE_ID_LEN + 1];
    int fd;
    pst_queue_new_id(q, T0, id);
    assert_int_equal(pst_queue_create(q, id, &fd), PST_ERR_STATE);
    assert_int_equal(pst_queue_recover(q), PST_ERR_STATE);
    assert_int_equal(pst_queue_remove(q, id), PST_ERR_STATE);
    struct pst_envelope *e = make_env(id, 1);
    assert_int_equal(pst_queue_update(q, e), PST_ERR_STATE);
    /* the commit closes its fd even when it cannot run */
    char *p = path_join(spool, "x");
    fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(pst_queue_commit(q, fd, e), PST_ERR_STATE);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    free(p);
    pst_envelope_free(e);
    pst_queue_close(q);
    pst_queue_close(NULL);
    free(in);
    free(qu);
    free(spool);
}

static void test_round_trip(void **state)
{
    const char *spool = *state;
    struct pst_queue *q;
    assert_int_equal(pst_queue_open(spool, &q), 0);

    const char *msg = "Received: from x\r\nSubject: hi\r\n\r\nbody\r\n";
    struct pst_envelope *e = receive(q, T0, msg);
    assert_true(file_exists(spool, "queue", e->id, ".msg"));
    assert_true(file_exists(spool, "queue", e->id, ".env"));
    assert_false(file_exists(spool, "incoming", e->id, ".msg"));
    assert_false(file_exists(spool, "incoming", e->id, ".env"));
    assert_int_equal(count_entries(spool, "incoming"), 0);

    char p[4096];
    struct stat st;
    snprintf(p, sizeof(p), "%s/queue/%s.msg", spool, e->id);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(p, sizeof(p), "%s/queue/%s.env", spool, e->id);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    /* scan */
    struct pst_buf *b = pst_buf_new(4096);
    assert_int_equal(pst_queue_scan(q, collect_cb, b), 0);
    char want[64];
    snprintf(want, sizeof(want), "%s ", e->id);
    assert_string_equal(pst_buf_data(b), want);
    pst_buf_free(b);

    /* load */
    struct pst_envelope *got = NULL;
    assert_int_equal(pst_queue_load(q, e->id, &got), 0);
    assert_env_equal(e, got);
    pst_envelope_free(got);

    /* message */
    int fd = -1;
    assert_int_equal(pst_queue_open_msg(q, e->id, &fd), 0);
    char *text = read_all(fd);
    close(fd);
    assert_string_equal(text, msg);
    free(text);

    /* update */
    e->attempts = 4;
    e->rcpts[0].state = PST_RCPT_DELIVERED;
    free(e->rcpts[0].last_reply);
    e->rcpts[0].last_reply = strdup("250 ok");
    assert_int_equal(pst_queue_update(q, e), 0);
    assert_false(file_exists(spool, "queue", e->id, ".env.tmp"));
    assert_int_equal(pst_queue_load(q, e->id, &got), 0);
    assert_env_equal(e, got);
    pst_envelope_free(got);

    /* remove */
    assert_int_equal(pst_queue_remove(q, e->id), 0);
    assert_int_equal(count_entries(spool, "queue"), 0);
    assert_int_equal(pst_queue_load(q, e->id, &got), PST_ERR_NOTFOUND);
    assert_int_equal(pst_queue_open_msg(q, e->id, &fd), PST_ERR_NOTFOUND);
    assert_int_equal(pst_queue_update(q, e), PST_ERR_NOTFOUND);
    assert_int_equal(pst_queue_remove(q, e->id), PST_ERR_NOTFOUND);
    assert_int_equal(count_entries(spool, "queue"), 0);

    pst_envelope_free(e);
    pst_queue_close(q);
}

static void test_scan_sorted(void **state)
{
    struct pst_queue *q;
    assert_int_equal(pst_queue_open(*state, &q), 0);
    struct pst_envelope *e[3];
    /* committed out of arrival order */
    e[2] = receive(q, T0 + 300, "a\r\n");
    e[0] = receive(q, T0 + 100, "b\r\n");
    e[1] = receive(q, T0 + 200, "c\r\n");
    /* the id generator is monotonic, so arrival order is commit order;
     * check the scan is sorted whatever it is */
    struct pst_buf *b = pst_buf_new(4096);
    assert_int_equal(pst_queue_scan(q, collect_cb, b), 0);
    assert_int_equal(pst_buf_len(b), 3 * (PST_QUEUE_ID_LEN + 1));
    const char *s = pst_buf_data(b);
    for (int i = 0; i < 2; i++)
        assert_true(memcmp(s + i * (PST_QUEUE_ID_LEN + 1), s + (i + 1) * (PST_QUEUE_ID_LEN + 1),
                           PST_QUEUE_ID_LEN) < 0);
    pst_buf_free(b);
    for (int i = 0; i < 3; i++)
        pst_envelope_free(e[i]);
    pst_queue_close(q);
}

static int count_stop_cb(const char *id, void *arg)
{
    (void)id;
    int *n = arg;
    return ++*n == 2 ? 42 : 0;
}

static void test_scan_stops(void **state)
{
    struct pst_queue *q;
    assert_int_equal(pst_queue_open(*state, &q), 0);
    for (int i = 0; i < 4; i++)
        pst_envelope_free(receive(q, T0 + (uint64_t)i, "x\r\n"));
    int n = 0;
    assert_int_equal(pst_queue_scan(q, count_stop_cb, &n), 42);
    assert_int_equal(n, 2);
    pst_queue_close(q);
}

static void test_batch_commit(void **state)
{
    const char *spool = *state;
    struct pst_queue *q;
    assert_int_equal(pst_queue_open(spool, &q), 0);
    enum { N = 5 };
    int fds[N], results[N];
    struct pst_envelope *e[N];
    const struct pst_envelope *ce[N];
    for (int i = 0; i < N; i++) {
        char id[PST_QUEUE_ID_LEN + 1];
        pst_queue_new_id(q, T0, id);
        assert_int_equal(pst_queue_create(q, id, &fds[i]), 0);
        assert_int_equal(write(fds[i], "m\r\n", 3), 3);
        e[i] = make_env(id, 1);
        ce[i] = e[i];
        results[i] = 99;
    }
    /* one bad envelope fails alone */
    free(e[2]->sender);
    e[2]->sender = strdup("bad\nsender");
    assert_int_equal(pst_queue_commit_batch(q, fds, ce, N, results), PST_ERR_INVAL);
    for (int i = 0; i < N; i++) {
        int want = i == 2 ? PST_ERR_INVAL : 0;
        if (results[i] != want)
            fail_msg("results[%d]: got %d want %d", i, results[i], want);
        assert_int_equal(file_exists(spool, "queue", e[i]->id, ".env"), i != 2);
        assert_int_equal(file_exists(spool, "queue", e[i]->id, ".msg"), i != 2);
        /* every fd is closed, committed or not */
        assert_int_equal(fcntl(fds[i], F_GETFD), -1);
    }
    /* the failed one left nothing behind */
    assert_int_equal(count_entries(spool, "incoming"), 0);
    assert_int_equal(count_entries(spool, "queue"), 2 * (N - 1));

    /* all good */
    for (int i = 0; i < N; i++) {
        char id[PST_QUEUE_ID_LEN + 1];
        pst_queue_new_id(q, T0, id);
        assert_int_equal(pst_queue_create(q, id, &fds[i]), 0);
        memcpy(e[i]->id, id, sizeof(id));
    }
    free(e[2]->sender);
    e[2]->sender = strdup("");
    assert_int_equal(pst_queue_commit_batch(q, fds, ce, N, results), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(results[i], 0);
    assert_int_equal(count_entries(spool, "queue"), 2 * (2 * N - 1));
    for (int i = 0; i < N; i++)
        pst_envelope_free(e[i]);
    pst_queue_close(q);
}

static void test_create_refuses_used_id(void **state)
{
    struct pst_queue *q;
    assert_int_equal(pst_queue_open(*state, &q), 0);
    struct pst_envelope *e = receive(q, T0, "x\r\n");
    int fd = -1;
    errno = 0;
    assert_int_equal(pst_queue_create(q, e->id, &fd), PST_ERR_IO);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(fd, -1);
    assert_int_equal(pst_queue_create(q, "not-an-id", &fd), PST_ERR_INVAL);

    /* an id in incoming/ as well */
    char id[PST_QUEUE_ID_LEN + 1];
    pst_queue_new_id(q, T0, id);
    assert_int_equal(pst_queue_create(q, id, &fd), 0);
    int fd2 = -1;
    assert_int_equal(pst_queue_create(q, id, &fd2), PST_ERR_IO);
    pst_queue_abort(q, id, fd);
    assert_false(file_exists(*state, "incoming", id, ".msg"));
    pst_queue_abort(q, id, -1); /* harmless twice */

    /* a commit for an envelope whose id does not match any file fails and
     * leaves nothing */
    pst_queue_new_id(q, T0, id);
    assert_int_equal(pst_queue_create(q, id, &fd), 0);
    struct pst_envelope *e2 = make_env(id, 1);
    pst_queue_new_id(q, T0, e2->id);
    assert_int_equal(pst_queue_commit(q, fd, e2), PST_ERR_IO);
    assert_false(file_exists(*state, "queue", e2->id, ".env"));
    pst_queue_abort(q, id, -1);
    assert_int_equal(count_entries(*state, "incoming"), 0);

    pst_envelope_free(e2);
    pst_envelope_free(e);
    pst_queue_close(q);
}

static void test_recover(void **state)
{
    const char *spool = *state;
    struct pst_queue *q;
    assert_int_equal(pst_queue_open(spool, &q), 0);
    struct pst_envelope *keep = receive(q, T0, "keep\r\n");

    /* an interrupted reception: message and envelope in incoming/ */
    char a[PST_QUEUE_ID_LEN + 1], b[PST_QUEUE_ID_LEN + 1], c[PST_QUEUE_ID_LEN + 1],
        d[PST_QUEUE_ID_LEN + 1];
    int fd;
    pst_queue_new_id(q, T0, a);
    assert_int_equal(pst_queue_create(q, a, &fd), 0);
    close(fd);
    char name[64];
    snprintf(name, sizeof(name), "%s.env", a);
    write_file(spool, "incoming", name, "{}");
    /* a message renamed into queue/ whose envelope never followed */
    pst_queue_new_id(q, T0, b);
    snprintf(name, sizeof(name), "%s.msg", b);
    write_file(spool, "queue", name, "orphan\r\n");
    /* an envelope without its message (commit cut between the renames) */
    pst_queue_new_id(q, T0, c);
    snprintf(name, sizeof(name), "%s.env", c);
    write_file(spool, "queue", name, "{}");
    /* an update cut short */
    snprintf(name, sizeof(name), "%s.env.tmp", keep->id);
    write_file(spool, "queue", name, "{\"half");
    /* files that are not the queue's are left alone */
    write_file(spool, "queue", "README", "not ours");
    pst_queue_new_id(q, T0, d);
    snprintf(name, sizeof(name), "%s.txt", d);
    write_file(spool, "incoming", name, "not ours");

    assert_int_equal(pst_queue_recover(q), 5);
    assert_false(file_exists(spool, "incoming", a, ".msg"));
    assert_false(file_exists(spool, "incoming", a, ".env"));
    assert_false(file_exists(spool, "queue", b, ".msg"));
    assert_false(file_exists(spool, "queue", c, ".env"));
    assert_false(file_exists(spool, "queue", keep->id, ".env.tmp"));
    assert_true(file_exists(spool, "queue", keep->id, ".env"));
    assert_true(file_exists(spool, "queue", keep->id, ".msg"));
    assert_true(file_exists(spool, "queue", "README", ""));
    assert_true(file_exists(spool, "incoming", d, ".txt"));

    struct pst_envelope *got;
    assert_int_equal(pst_queue_load(q, keep->id, &got), 0);
    assert_env_equal(keep, got);
    pst_envelope_free(got);
    /* nothing left to do */
    assert_int_equal(pst_queue_recover(q), 0);

    pst_envelope_free(keep);
    pst_queue_close(q);
}

static void test_load_rejects(void **state)
{
    const char *spool = *state;
    struct pst_queue *q;
    assert_int_equal(pst_queue_open(spool, &q), 0);
    struct pst_envelope *e = receive(q, T0, "x\r\n");
    struct pst_envelope *other = receive(q, T0, "y\r\n");
    char *json;
    assert_int_equal(pst_envelope_to_json(other, &json), 0);
    char name[64];
    /* an envelope naming another id */
    snprintf(name, sizeof(name), "%s.env", e->id);
    write_file(spool, "queue", name, json);
    struct pst_envelope *got = NULL;
    assert_int_equal(pst_queue_load(q, e->id, &got), PST_ERR_SYNTAX);
    assert_null(got);
    /* bigger than the cap */
    char *big = malloc(PST_ENVELOPE_MAX_JSON + 100);
    memset(big, ' ', PST_ENVELOPE_MAX_JSON + 99);
    big[PST_ENVELOPE_MAX_JSON + 99] = '\0';
    write_file(spool, "queue", name, big);
    assert_int_equal(pst_queue_load(q, e->id, &got), PST_ERR_TOOBIG);
    free(big);
    assert_int_equal(pst_queue_load(q, "nope", &got), PST_ERR_INVAL);
    free(json);
    pst_envelope_free(e);
    pst_envelope_free(other);
    pst_queue_close(q);
}

/* ---- envelope codec ---- */

static void test_envelope_round_trip(void **state)
{
    (void)state;
    struct pst_envelope *e = make_env("0006176339D9300000013F2A", 7);
    free(e->client_addr);
    e->client_addr = NULL;
    free(e->rcpts[1].user);
    e->rcpts[1].user = NULL;
    free(e->sender);
    e->sender = strdup("j\xc3\xb6rg@b\xc3\xbc\x63her.example"); /* SMTPUTF8 */
    char *json = NULL;
    assert_int_equal(pst_envelope_to_json(e, &json), 0);
    struct pst_envelope *got = NULL;
    assert_int_equal(pst_envelope_from_json(json, strlen(json), &got), 0);
    assert_env_equal(e, got);
    /* and the encoding is stable */
    char *json2 = NULL;
    assert_int_equal(pst_envelope_to_json(got, &json2), 0);
    assert_string_equal(json, json2);
    free(json);
    free(json2);
    pst_envelope_free(got);
    got = NULL;
    /* the optional keys: written when set, read back the same */
    e->quarantine = 1;
    e->ret = 2;
    e->warned = 1;
    e->hold = 1;
    e->envid = strdup("QQ+2B314");
    e->auth_user = strdup("alice");
    e->rcpts[0].notify = 0x4 | 0x8;
    e->rcpts[0].orcpt = strdup("rfc822;bob+40example.org");
    assert_int_equal(pst_envelope_to_json(e, &json), 0);
    assert_non_null(strstr(json, "\"ret\":\"hdrs\""));
    assert_int_equal(pst_envelope_from_json(json, strlen(json), &got), 0);
    assert_env_equal(e, got);
    free(json);
    pst_envelope_free(got);
    e->ret = 3; /* not a RET value */
    assert_int_equal(pst_envelope_to_json(e, &json), PST_ERR_INVAL);
    pst_envelope_free(e);
    pst_envelope_free(NULL);
}

#define GOOD_RCPT "{\"addr\":\"b@x\",\"user\":\"b\",\"state\":\"pending\",\"last_reply\":null}"
#define HEAD                                                                                       \
    "\"v\":1,\"id\":\"0006176339D9300000013F2A\",\"sender\":\"a@x\",\"arrival\":1714564800,"       \
    "\"client_addr\":\"192.0.2.1\",\"helo\":\"h\",\"smtputf8\":false,\"body_8bit\":true,"          \
    "\"tls\":false,\"next_attempt\":0"

static void test_envelope_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *json;
        int want;
    } cases[] = {
        {"good", "{" HEAD ",\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}", 0},
        {"good, spaces", " {" HEAD ",\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}\n", 0},
        {"empty", "", PST_ERR_SYNTAX},
        {"not json", "hello", PST_ERR_SYNTAX},
        {"truncated", "{" HEAD ",\"attempts\":0,\"rcpts\":[" GOOD_RCPT, PST_ERR_SYNTAX},
        {"trailing", "{" HEAD ",\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]} {}", PST_ERR_SYNTAX},
        {"array", "[1]", PST_ERR_SYNTAX},
        {"ret bad", "{" HEAD ",\"attempts\":0,\"ret\":\"body\",\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"hold not bool", "{" HEAD ",\"attempts\":0,\"hold\":1,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"notify too big",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\",\"user\":null,\"state\":"
         "\"pending\",\"last_reply\":null,\"notify\":16}]}",
         PST_ERR_SYNTAX},
        {"orcpt null",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\",\"user\":null,\"state\":"
         "\"pending\",\"last_reply\":null,\"orcpt\":null}]}",
         PST_ERR_SYNTAX},
        {"missing attempts", "{" HEAD ",\"rcpts\":[" GOOD_RCPT "]}", PST_ERR_SYNTAX},
        {"missing rcpts", "{" HEAD ",\"attempts\":0}", PST_ERR_SYNTAX},
        {"unknown key", "{" HEAD ",\"attempts\":0,\"x\":1,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"duplicate key", "{" HEAD ",\"attempts\":0,\"attempts\":1,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"attempts string", "{" HEAD ",\"attempts\":\"0\",\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"attempts real", "{" HEAD ",\"attempts\":1.5,\"rcpts\":[" GOOD_RCPT "]}", PST_ERR_SYNTAX},
        {"attempts negative", "{" HEAD ",\"attempts\":-1,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"attempts huge", "{" HEAD ",\"attempts\":4294967296,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"rcpts object", "{" HEAD ",\"attempts\":0,\"rcpts\":{}}", PST_ERR_SYNTAX},
        {"rcpts empty", "{" HEAD ",\"attempts\":0,\"rcpts\":[]}", PST_ERR_SYNTAX},
        {"rcpt not object", "{" HEAD ",\"attempts\":0,\"rcpts\":[\"b@x\"]}", PST_ERR_SYNTAX},
        {"unknown state",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\",\"user\":\"b\","
         "\"state\":\"bounced\",\"last_reply\":null}]}",
         PST_ERR_SYNTAX},
        {"state number",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\",\"user\":\"b\","
         "\"state\":0,\"last_reply\":null}]}",
         PST_ERR_SYNTAX},
        {"addr null",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":null,\"user\":\"b\","
         "\"state\":\"pending\",\"last_reply\":null}]}",
         PST_ERR_SYNTAX},
        {"rcpt missing user",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\","
         "\"state\":\"pending\",\"last_reply\":null}]}",
         PST_ERR_SYNTAX},
        {"rcpt unknown key",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\",\"user\":\"b\",\"z\":1,"
         "\"state\":\"pending\",\"last_reply\":null}]}",
         PST_ERR_SYNTAX},
        {"addr with LF",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\\nBcc: y\",\"user\":\"b\","
         "\"state\":\"pending\",\"last_reply\":null}]}",
         PST_ERR_SYNTAX},
        {"addr with NUL",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\\u0000\",\"user\":\"b\","
         "\"state\":\"pending\",\"last_reply\":null}]}",
         PST_ERR_SYNTAX},
        {"reply multi-line",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\",\"user\":\"b\","
         "\"state\":\"failed\",\"last_reply\":\"550-a\\r\\n550 b\"}]}",
         0},
        {"reply with ESC",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b@x\",\"user\":\"b\","
         "\"state\":\"failed\",\"last_reply\":\"\\u001b[2J\"}]}",
         PST_ERR_SYNTAX},
        {"bad utf-8",
         "{" HEAD ",\"attempts\":0,\"rcpts\":[{\"addr\":\"b\xff@x\",\"user\":\"b\","
         "\"state\":\"pending\",\"last_reply\":null}]}",
         PST_ERR_SYNTAX},
        {"tls number",
         "{\"v\":1,\"id\":\"0006176339D9300000013F2A\",\"sender\":\"a@x\",\"arrival\":1,"
         "\"client_addr\":null,\"helo\":null,\"smtputf8\":false,\"body_8bit\":true,"
         "\"tls\":1,\"next_attempt\":0,\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"sender null",
         "{\"v\":1,\"id\":\"0006176339D9300000013F2A\",\"sender\":null,\"arrival\":1,"
         "\"client_addr\":null,\"helo\":null,\"smtputf8\":false,\"body_8bit\":true,"
         "\"tls\":true,\"next_attempt\":0,\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"id lower case",
         "{\"v\":1,\"id\":\"0006176339d9300000013F2A\",\"sender\":\"\",\"arrival\":1,"
         "\"client_addr\":null,\"helo\":null,\"smtputf8\":false,\"body_8bit\":true,"
         "\"tls\":true,\"next_attempt\":0,\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"id short",
         "{\"v\":1,\"id\":\"0006176339D9300000013F2\",\"sender\":\"\",\"arrival\":1,"
         "\"client_addr\":null,\"helo\":null,\"smtputf8\":false,\"body_8bit\":true,"
         "\"tls\":true,\"next_attempt\":0,\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"id path",
         "{\"v\":1,\"id\":\"../../../etc/passwd/00000\",\"sender\":\"\",\"arrival\":1,"
         "\"client_addr\":null,\"helo\":null,\"smtputf8\":false,\"body_8bit\":true,"
         "\"tls\":true,\"next_attempt\":0,\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"version 2",
         "{\"v\":2,\"id\":\"0006176339D9300000013F2A\",\"sender\":\"\",\"arrival\":1,"
         "\"client_addr\":null,\"helo\":null,\"smtputf8\":false,\"body_8bit\":true,"
         "\"tls\":true,\"next_attempt\":0,\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}",
         PST_ERR_SYNTAX},
        {"null sender, null client",
         "{\"v\":1,\"id\":\"0006176339D9300000013F2A\",\"sender\":\"\",\"arrival\":1,"
         "\"client_addr\":null,\"helo\":null,\"smtputf8\":false,\"body_8bit\":true,"
         "\"tls\":true,\"next_attempt\":0,\"attempts\":0,\"rcpts\":[" GOOD_RCPT "]}",
         0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pst_envelope *e = NULL;
        int got = pst_envelope_from_json(cases[i].json, strlen(cases[i].json), &e);
        if (got != cases[i].want)
            fail_msg("%s: got %d (%s) want %d", cases[i].name, got, pst_strerror(got),
                     cases[i].want);
        if (got == 0)
            assert_non_null(e);
        else
            assert_null(e);
        pst_envelope_free(e);
    }
}

/* JSON text of an envelope with n copies of GOOD_RCPT. */
static char *many_rcpts(size_t n)
{
    struct pst_buf *b = pst_buf_new(SIZE_MAX / 2);
    assert_int_equal(pst_buf_addstr(b, "{" HEAD ",\"attempts\":0,\"rcpts\":["), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pst_buf_addstr(b, i ? "," GOOD_RCPT : GOOD_RCPT), 0);
    assert_int_equal(pst_buf_addstr(b, "]}"), 0);
    char *s = pst_buf_steal(b);
    pst_buf_free(b);
    return s;
}

static void test_envelope_bounds(void **state)
{
    (void)state;
    struct pst_envelope *e = NULL;
    /* PST_ENVELOPE_MAX_JSON bytes exactly are allowed, one byte more is not */
    char *s = many_rcpts(1);
    size_t len = strlen(s);
    char *pad = malloc(PST_ENVELOPE_MAX_JSON + 2);
    memcpy(pad, s, len);
    memset(pad + len, ' ', PST_ENVELOPE_MAX_JSON + 1 - len);
    assert_int_equal(pst_envelope_from_json(pad, PST_ENVELOPE_MAX_JSON, &e), 0);
    pst_envelope_free(e);
    e = NULL;
    assert_int_equal(pst_envelope_from_json(pad, PST_ENVELOPE_MAX_JSON + 1, &e), PST_ERR_TOOBIG);
    assert_null(e);
    free(pad);
    free(s);

    /* the largest count that fits both caps is accepted... */
    size_t fit = (PST_ENVELOPE_MAX_JSON - 400) / (strlen(GOOD_RCPT) + 1);
    if (fit > PST_ENVELOPE_MAX_RCPTS)
        fit = PST_ENVELOPE_MAX_RCPTS;
    s = many_rcpts(fit);
    assert_int_equal(pst_envelope_from_json(s, strlen(s), &e), 0);
    assert_int_equal(e->nrcpts, fit);
    /* ...and written back */
    char *json;
    assert_int_equal(pst_envelope_to_json(e, &json), 0);
    free(json);
    pst_envelope_free(e);
    e = NULL;
    free(s);

    /* too many recipients for the encoder, whatever their size */
    struct pst_envelope *big = make_env("0006176339D9300000013F2A", 1);
    size_t real = big->nrcpts;
    big->nrcpts = PST_ENVELOPE_MAX_RCPTS + 1;
    assert_int_equal(pst_envelope_to_json(big, &json), PST_ERR_TOOBIG);
    big->nrcpts = real;
    /* an envelope too large as JSON */
    free(big->rcpts[0].addr);
    big->rcpts[0].addr = malloc(PST_ENVELOPE_MAX_JSON + 1);
    memset(big->rcpts[0].addr, 'a', PST_ENVELOPE_MAX_JSON);
    big->rcpts[0].addr[PST_ENVELOPE_MAX_JSON] = '\0';
    assert_int_equal(pst_envelope_to_json(big, &json), PST_ERR_TOOBIG);
    pst_envelope_free(big);
}

static void test_envelope_encoder_refuses(void **state)
{
    (void)state;
    char *json = NULL;
    struct pst_envelope *e = make_env("0006176339D9300000013F2A", 1);
    e->id[3] = 'x';
    assert_int_equal(pst_envelope_to_json(e, &json), PST_ERR_INVAL);
    e->id[3] = '6';
    e->rcpts[0].state = (enum pst_rcpt_state)7;
    assert_int_equal(pst_envelope_to_json(e, &json), PST_ERR_INVAL);
    e->rcpts[0].state = PST_RCPT_PENDING;
    free(e->helo);
    e->helo = strdup("evil\r\nhelo");
    assert_int_equal(pst_envelope_to_json(e, &json), PST_ERR_INVAL);
    free(e->helo);
    e->helo = strdup("ok");
    e->arrival = -1;
    assert_int_equal(pst_envelope_to_json(e, &json), PST_ERR_INVAL);
    e->arrival = 0;
    assert_int_equal(pst_envelope_to_json(e, &json), 0);
    free(json);
    e->nrcpts = 0;
    assert_int_equal(pst_envelope_to_json(e, &json), PST_ERR_INVAL);
    e->nrcpts = 1;
    pst_envelope_free(e);
}

/* ---- Maildir ---- */

static int msg_fd_of(const char *dir, const char *text)
{
    char *p = path_join(dir, "message");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    free(p);
    return fd;
}

/* The single file in maildir/new: its name in name, its text returned. */
static char *only_new_file(const char *maildir, char *name, size_t len, off_t *size)
{
    char *newdir = path_join(maildir, "new");
    DIR *d = opendir(newdir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(name, len, "%s", de->d_name);
        n++;
    }
    closedir(d);
    assert_int_equal(n, 1);
    char *p = path_join(newdir, name);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    *size = st.st_size;
    char *text = read_all(fd);
    close(fd);
    free(p);
    free(newdir);
    return text;
}

static void test_maildir_deliver(void **state)
{
    const char *dir = *state;
    const char *msg = "Received: from x\r\nSubject: hi\r\n\r\nline 1\r\nbare\rcr\r\nend\r";
    int fd = msg_fd_of(dir, msg);
    /* the offset is not used and left alone */
    off_t before = lseek(fd, 0, SEEK_CUR);
    char *md = path_join(dir, "mail/bob");
    char name[512];
    assert_int_equal(pst_maildir_deliver(md, fd, "mx/1:2", "alice@example.org", "bob@example.com",
                                         T0 + 42, name, sizeof(name)),
                     0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), before);

    char got_name[512];
    off_t size;
    char *text = only_new_file(md, got_name, sizeof(got_name), &size);
    assert_string_equal(name, got_name);
    assert_string_equal(text, "Return-Path: <alice@example.org>\n"
                              "Delivered-To: bob@example.com\n"
                              "Received: from x\nSubject: hi\n\nline 1\nbare\rcr\nend\r");

    /* SECONDS.M<usec>P<pid>Q<n>.HOST,S=<size> */
    char want_prefix[128];
    snprintf(want_prefix, sizeof(want_prefix), "1714564800.M42P%ld", (long)getpid());
    assert_memory_equal(name, want_prefix, strlen(want_prefix));
    const char *q = name + strlen(want_prefix);
    assert_int_equal(q[0], 'Q');
    char *end;
    strtoul(q + 1, &end, 10);
    assert_true(end > q + 1);
    char want_suffix[128];
    snprintf(want_suffix, sizeof(want_suffix), ".mx\\0571\\0722,S=%lld", (long long)size);
    assert_string_equal(end, want_suffix);
    assert_int_equal((size_t)size, strlen(text));
    free(text);

    /* tmp/ is empty and cur/ exists */
    assert_int_equal(count_entries(md, "tmp"), 0);
    assert_int_equal(count_entries(md, "cur"), 0);
    struct stat st;
    assert_int_equal(stat(md, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);

    /* a second delivery in the same microsecond gets another name */
    char name2[512];
    assert_int_equal(
        pst_maildir_deliver(md, fd, "mx", "", "bob@example.com", T0 + 42, name2, sizeof(name2)), 0);
    assert_string_not_equal(name, name2);
    assert_int_equal(count_entries(md, "new"), 2);
    assert_int_equal(count_entries(md, "tmp"), 0);
    close(fd);
    free(md);
}

static void test_maildir_large_message(void **state)
{
    /* larger than the stream buffer, with CRLF across chunk boundaries */
    const char *dir = *state;
    struct pst_buf *b = pst_buf_new(1 << 20);
    assert_int_equal(pst_buf_addstr(b, "Subject: big\r\n\r\n"), 0);
    while (pst_buf_len(b) < 300000)
        assert_int_equal(pst_buf_addstr(b, "0123456789abcdefghijklmnopqrstuvwxyz0123456789ab\r\n"),
                         0);
    size_t crlf = 0;
    for (size_t i = 0; i + 1 < pst_buf_len(b); i++)
        crlf += pst_buf_data(b)[i] == '\r' && pst_buf_data(b)[i + 1] == '\n';
    int fd = msg_fd_of(dir, pst_buf_data(b));
    char *md = path_join(dir, "Maildir");
    assert_int_equal(pst_maildir_deliver(md, fd, NULL, "a@b", "c@d", T0, NULL, 0), 0);
    char name[512];
    off_t size;
    char *text = only_new_file(md, name, sizeof(name), &size);
    const char *head = "Return-Path: <a@b>\nDelivered-To: c@d\n";
    assert_int_equal((size_t)size, strlen(head) + pst_buf_len(b) - crlf);
    assert_null(strchr(text, '\r'));
    assert_memory_equal(text + strlen(head), "Subject: big\n\n0123", 18);
    free(text);
    close(fd);
    free(md);
    pst_buf_free(b);
}

static void test_maildir_refuses(void **state)
{
    const char *dir = *state;
    int fd = msg_fd_of(dir, "x\r\n");
    char *md = path_join(dir, "md");
    char small[16];
    assert_int_equal(pst_maildir_deliver(md, fd, "h", "a@b\r\nX: y", "c@d", T0, NULL, 0),
                     PST_ERR_INVAL);
    assert_int_equal(pst_maildir_deliver(md, fd, "h", "a@b", "c@d\n", T0, NULL, 0), PST_ERR_INVAL);
    assert_int_equal(pst_maildir_deliver(md, fd, "h", "a@b", "c@d", T0, small, sizeof(small)),
                     PST_ERR_INVAL);
    assert_int_equal(pst_maildir_deliver(md, -1, "h", "a@b", "c@d", T0, NULL, 0), PST_ERR_INVAL);
    /* a path that cannot be a directory */
    char *file = path_join(dir, "message");
    errno = 0;
    assert_int_equal(pst_maildir_deliver(file, fd, "h", "a@b", "c@d", T0, NULL, 0), PST_ERR_IO);
    assert_int_not_equal(errno, 0);
    free(file);
    close(fd);
    free(md);
}

/* ---- the admin handle and the per-message lock ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The daemon's way of locking a message (delivery.c): its own open of
 * queue/ID.msg and a blocking flock. */
static int daemon_lock(const char *spool, const char *id)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/queue/%s.msg", spool, id);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    return fd;
}

static void test_admin_handle(void **state)
{
    const char *spool = *state;
    struct pst_queue *q, *qa = NULL;
    char *missing = path_join(spool, "missing");
    assert_int_equal(pst_queue_open_admin(missing, &qa), PST_ERR_NOTFOUND);
    assert_null(qa);
    struct stat st;
    assert_int_equal(stat(missing, &st), -1); /* created nothing */
    free(missing);

    /* beside the daemon, which holds the spool lock */
    assert_int_equal(pst_queue_open(spool, &q), 0);
    struct pst_envelope *e = receive(q, T0, "Subject: x\r\n\r\nbody\r\n");
    assert_int_equal(pst_queue_open_admin(spool, &qa), 0);

    /* no reception, no recovery */
    char id[PST_QUEUE_ID_LEN + 1];
    int fd = -1;
    pst_queue_new_id(qa, T0, id);
    assert_int_equal(pst_queue_create(qa, id, &fd), PST_ERR_STATE);
    assert_int_equal(fd, -1);
    assert_int_equal(pst_queue_recover(qa), PST_ERR_STATE);
    struct pst_envelope *e2 = make_env(id, 1);
    char *p = path_join(spool, "x");
    fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(pst_queue_commit(qa, fd, e2), PST_ERR_STATE);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed all the same */
    free(p);
    pst_envelope_free(e2);
    /* a reception in progress on the daemon's handle is left alone */
    assert_int_equal(pst_queue_create(q, id, &fd), 0);
    pst_queue_abort(qa, id, -1);
    assert_true(file_exists(spool, "incoming", id, ".msg"));
    pst_queue_abort(q, id, fd);
    assert_int_equal(count_entries(spool, "incoming"), 0);

    /* update and remove an existing message, under its lock */
    struct pst_envelope *got = NULL;
    assert_int_equal(pst_queue_lock_msg(qa, e->id, 1000, &fd), 0);
    assert_int_equal(pst_queue_load(qa, e->id, &got), 0);
    assert_env_equal(e, got);
    got->hold = 1;
    got->next_attempt = 0;
    assert_int_equal(pst_queue_update(qa, got), 0);
    pst_queue_unlock_msg(fd);
    assert_false(file_exists(spool, "queue", e->id, ".env.tmp"));
    struct pst_envelope *seen = NULL;
    assert_int_equal(pst_queue_load(q, e->id, &seen), 0); /* the daemon sees it */
    assert_int_equal(seen->hold, 1);
    assert_int_equal(seen->next_attempt, 0);
    assert_env_equal(got, seen);
    pst_envelope_free(seen);

    /* an update never resurrects a removed message */
    assert_int_equal(pst_queue_lock_msg(qa, e->id, 1000, &fd), 0);
    assert_int_equal(pst_queue_remove(qa, e->id), 0);
    pst_queue_unlock_msg(fd);
    assert_int_equal(count_entries(spool, "queue"), 0);
    assert_int_equal(pst_queue_update(qa, got), PST_ERR_NOTFOUND);
    assert_int_equal(pst_queue_remove(qa, e->id), PST_ERR_NOTFOUND);
    assert_int_equal(pst_queue_lock_msg(qa, e->id, 0, &fd), PST_ERR_NOTFOUND);
    assert_int_equal(count_entries(spool, "queue"), 0);

    pst_envelope_free(got);
    pst_envelope_free(e);
    pst_queue_close(qa);
    pst_queue_close(q);
}

static void test_lock_msg_timeout(void **state)
{
    const char *spool = *state;
    struct pst_queue *q, *qa;
    assert_int_equal(pst_queue_open(spool, &q), 0);
    assert_int_equal(pst_queue_open_admin(spool, &qa), 0);
    struct pst_envelope *e = receive(q, T0, "x\r\n");
    int fd = -1;

    assert_int_equal(pst_queue_lock_msg(qa, "not-an-id", 0, &fd), PST_ERR_INVAL);
    assert_int_equal(pst_queue_lock_msg(qa, e->id, 0, NULL), PST_ERR_INVAL);
    assert_int_equal(pst_queue_lock_msg(NULL, e->id, 0, &fd), PST_ERR_INVAL);
    char other[PST_QUEUE_ID_LEN + 1];
    pst_queue_new_id(q, T0 + 5, other);
    assert_int_equal(pst_queue_lock_msg(qa, other, 0, &fd), PST_ERR_NOTFOUND);

    /* a delivery attempt holds the lock */
    int held = daemon_lock(spool, e->id);
    assert_int_equal(pst_queue_lock_msg(qa, e->id, 0, &fd), PST_ERR_AGAIN);
    assert_int_equal(fd, -1);
    int64_t t = now_ms();
    assert_int_equal(pst_queue_lock_msg(qa, e->id, 200, &fd), PST_ERR_AGAIN);
    int64_t waited = now_ms() - t;
    if (waited < 190 || waited > 2000)
        fail_msg("waited %" PRId64 " ms for a 200 ms timeout", waited);
    assert_int_equal(fd, -1);
    /* and keeps it: the failed tries did not take it */
    char p[4096];
    snprintf(p, sizeof(p), "%s/queue/%s.msg", spool, e->id);
    int probe = open(p, O_RDONLY);
    assert_true(probe >= 0);
    assert_int_equal(flock(probe, LOCK_EX | LOCK_NB), -1);
    assert_int_equal(errno, EWOULDBLOCK);
    close(held);

    /* free now: taken at once, and the daemon's flock waits for us */
    assert_int_equal(pst_queue_lock_msg(qa, e->id, 0, &fd), 0);
    assert_true(fd >= 0);
    assert_int_equal(flock(probe, LOCK_EX | LOCK_NB), -1);
    assert_int_equal(errno, EWOULDBLOCK);
    /* the read-only handle may lock too, but not while we hold it */
    struct pst_queue *qr;
    int fd2 = -1;
    assert_int_equal(pst_queue_open_readonly(spool, &qr), 0);
    assert_int_equal(pst_queue_lock_msg(qr, e->id, 20, &fd2), PST_ERR_AGAIN);
    pst_queue_unlock_msg(fd);
    assert_int_equal(flock(probe, LOCK_EX | LOCK_NB), 0);
    close(probe);
    assert_int_equal(pst_queue_lock_msg(qr, e->id, 0, &fd2), 0);
    pst_queue_unlock_msg(fd2);
    pst_queue_unlock_msg(-1);
    pst_queue_close(qr);

    pst_envelope_free(e);
    pst_queue_close(qa);
    pst_queue_close(q);
}

/* A delivery attempt in another thread: holds the lock for a while, then
 * finishes the message (removes it) or only releases the lock. */
struct attempt_arg {
    struct pst_queue *q;
    const char *spool;
    const char *id;
    int fd;
    int remove;
};

static void *attempt_thread(void *arg)
{
    struct attempt_arg *a = arg;
    struct timespec ts = {0, 150 * 1000000L};
    nanosleep(&ts, NULL);
    if (a->remove && pst_queue_remove(a->q, a->id) != 0)
        return (void *)1;
    close(a->fd);
    return NULL;
}

static void test_lock_msg_waits(void **state)
{
    const char *spool = *state;
    struct pst_queue *q, *qa;
    assert_int_equal(pst_queue_open(spool, &q), 0);
    assert_int_equal(pst_queue_open_admin(spool, &qa), 0);
    struct pst_envelope *e = receive(q, T0, "x\r\n");

    for (int remove = 0; remove <= 1; remove++) {
        struct attempt_arg a = {q, spool, e->id, daemon_lock(spool, e->id), remove};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, attempt_thread, &a), 0);
        int fd = -1;
        int64_t t0 = now_ms();
        int rc = pst_queue_lock_msg(qa, e->id, 5000, &fd);
        int64_t waited = now_ms() - t0;
        void *res;
        pthread_join(t, &res);
        assert_null(res);
        if (waited < 100)
            fail_msg("got the lock after %" PRId64 " ms while it was held", waited);
        if (remove) {
            /* the attempt delivered the message while we waited */
            assert_int_equal(rc, PST_ERR_NOTFOUND);
            assert_int_equal(fd, -1);
        } else {
            assert_int_equal(rc, 0);
            pst_queue_unlock_msg(fd);
        }
    }
    assert_int_equal(count_entries(spool, "queue"), 0);
    pst_envelope_free(e);
    pst_queue_close(qa);
    pst_queue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_unique_sorted),
        cmocka_unit_test(test_ids_unique_across_threads),
        cmocka_unit_test(test_id_check),
        cmocka_unit_test_setup_teardown(test_open_creates_dirs, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_round_trip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_scan_sorted, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_scan_stops, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_batch_commit, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_create_refuses_used_id, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_load_rejects, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_admin_handle, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_lock_msg_timeout, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_lock_msg_waits, setup_dir, teardown_dir),
        cmocka_unit_test(test_envelope_round_trip),
        cmocka_unit_test(test_envelope_rejects),
        cmocka_unit_test(test_envelope_bounds),
        cmocka_unit_test(test_envelope_encoder_refuses),
        cmocka_unit_test_setup_teardown(test_maildir_deliver, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_maildir_large_message, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_maildir_refuses, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
