/*
 * test_users.c - the users file: parse errors with their line numbers,
 * lookups, yescrypt hash and verify round trip, the dummy hash for unknown
 * users, may_send through a user record, the file mode check and the
 * atomic edits (add, passwd, del) keeping comments and never storing a
 * password.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "users.h"

/* a real yescrypt hash of "pw" (made with pst_users_hash's method) */
#define H "$y$j9T$Y7IVIwqe2bbfc1OJi2qiJ1$JZfiNT27GMH4iVIwY5Hwa5.R7joyJ4KihTlYm8RbGY/"
#define H6                                                                                         \
    "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/"                                      \
    "jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/"

struct parse_case {
    const char *name;
    const char *text;
    int rc;
    const char *err; /* expected error text, "" when rc is 0 */
    size_t nusers;
};

static const struct parse_case parse_cases[] = {
    {"empty file", "", 0, "", 0},
    {"comments and blank lines", "# users\n\n   \n#x:y:z\n", 0, "", 0},
    {"one user", "alice:" H ":alice@example.org\n", 0, "", 1},
    {"no final LF", "alice:" H ":", 0, "", 1},
    {"sha512 hash and wildcard", "# c\nbob:" H6 ":@example.org,b@x.example\nc@d.example:" H ":\n",
     0, "", 2},
    {"two fields", "# c\nalice:" H "\n", PST_ERR_SYNTAX, "f:2: want NAME:HASH:ADDRESSES", 0},
    {"four fields", "alice:" H ":a@b.example:x\n", PST_ERR_SYNTAX, "f:1: more than three fields",
     0},
    {"empty name", ":" H ":\n", PST_ERR_SYNTAX,
     "f:1: bad user name (1-254 of A-Z a-z 0-9 . _ - + @)", 0},
    {"space in name", "al ice:" H ":\n", PST_ERR_SYNTAX,
     "f:1: bad user name (1-254 of A-Z a-z 0-9 . _ - + @)", 0},
    {"plaintext as hash", "\n\nalice:secret:\n", PST_ERR_SYNTAX,
     "f:3: bad password hash (not a crypt(5) hash of a current method)", 0},
    {"legacy md5 hash", "alice:$1$abcdefgh$abcdefghijklmnopqrstuv:\n", PST_ERR_SYNTAX,
     "f:1: bad password hash (not a crypt(5) hash of a current method)", 0},
    {"empty hash", "alice::\n", PST_ERR_SYNTAX,
     "f:1: bad password hash (not a crypt(5) hash of a current method)", 0},
    {"bad address", "alice:" H ":alice\n", PST_ERR_SYNTAX,
     "f:1: bad address (want local@domain or @domain)", 0},
    {"address with space", "alice:" H ":a b@c.example\n", PST_ERR_SYNTAX,
     "f:1: bad address (want local@domain or @domain)", 0},
    {"trailing comma", "alice:" H ":a@b.example,\n", PST_ERR_SYNTAX, "f:1: empty address", 0},
    {"domain with empty label", "alice:" H ":a@b..example\n", PST_ERR_SYNTAX,
     "f:1: bad address (want local@domain or @domain)", 0},
    {"repeated name, case differs", "alice:" H ":\n# x\nALICE:" H ":\n", PST_ERR_SYNTAX,
     "f:3: user name repeated", 0},
    {"CR", "alice:" H ":\r\n", PST_ERR_SYNTAX, "f:1: CR in line (the file must have LF line ends)",
     0},
    {"NUL", "#\nal\0ice:" H ":\n", PST_ERR_SYNTAX, "f:2: NUL byte", 0},
};

static void test_parse_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *t = &parse_cases[i];
        struct pst_users *u = NULL;
        char err[256] = "";
        size_t len = strlen(t->text);
        if (strcmp(t->name, "NUL") == 0)
            len = sizeof("#\nal\0ice:" H ":\n") - 1;
        int rc = pst_users_parse(t->text, len, "f", &u, err, sizeof(err));
        if (rc != t->rc || strcmp(err, t->err) != 0 || pst_users_count(u) != t->nusers ||
            (rc != 0 && u != NULL)) {
            print_error("%s: got rc %d \"%s\" %zu users; want rc %d \"%s\" %zu\n", t->name, rc, err,
                        pst_users_count(u), t->rc, t->err, t->nusers);
            bad++;
        }
        pst_users_free(u);
    }
    assert_int_equal(bad, 0);
}

static void test_parse_bounds(void **state)
{
    (void)state;
    char err[256];
    struct pst_users *u = NULL;
    /* a line over the limit */
    size_t n = PST_USERS_MAX_LINE + 100;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    memcpy(big, "#\n", 2);
    big[n] = '\0';
    assert_int_equal(pst_users_parse(big, n, "f", &u, err, sizeof(err)), PST_ERR_TOOBIG);
    assert_string_equal(err, "f:2: line too long");
    free(big);
    /* too many addresses */
    struct {
        char s[8192];
    } *line = malloc(sizeof(*line));
    assert_non_null(line);
    size_t k = (size_t)snprintf(line->s, sizeof(line->s), "alice:%s:", H);
    for (int i = 0; i <= PST_USERS_MAX_ADDRS; i++)
        k += (size_t)snprintf(line->s + k, sizeof(line->s) - k, "%sa%d@b.example", i > 0 ? "," : "",
                              i);
    assert_true(k < PST_USERS_MAX_LINE);
    assert_int_equal(pst_users_parse(line->s, k, "f", &u, err, sizeof(err)), PST_ERR_TOOBIG);
    assert_string_equal(err, "f:1: too many addresses");
    free(line);
    /* too many users */
    size_t per = strlen("u00000:" H ":\n");
    size_t total = per * (PST_USERS_MAX_USERS + 1);
    char *many = malloc(total + 1);
    assert_non_null(many);
    for (int i = 0; i <= PST_USERS_MAX_USERS; i++)
        snprintf(many + per * (size_t)i, per + 1, "u%05d:%s:\n", i, H);
    assert_int_equal(pst_users_parse(many, total, "f", &u, err, sizeof(err)), PST_ERR_TOOBIG);
    char want[64];
    snprintf(want, sizeof(want), "f:%d: too many users", PST_USERS_MAX_USERS + 1);
    assert_string_equal(err, want);
    /* exactly the maximum is fine, and lookups work across it */
    assert_int_equal(pst_users_parse(many, total - per, "f", &u, err, sizeof(err)), 0);
    assert_int_equal(pst_users_count(u), PST_USERS_MAX_USERS);
    assert_non_null(pst_users_find(u, "u09999"));
    assert_non_null(pst_users_find(u, "U00000"));
    assert_null(pst_users_find(u, "u10000"));
    pst_users_free(u);
    free(many);
}

static void test_lookup(void **state)
{
    (void)state;
    struct pst_users *u = NULL;
    const char *text = "carol:" H ":\nalice:" H ":alice@example.org,@alias.example\nBob:" H6 ":\n";
    assert_int_equal(pst_users_parse(text, strlen(text), "f", &u, NULL, 0), 0);
    assert_int_equal(pst_users_count(u), 3);
    const struct pst_user *a = pst_users_find(u, "ALICE");
    assert_non_null(a);
    assert_string_equal(pst_user_name(a), "alice");
    assert_int_equal(pst_user_naddrs(a), 2);
    assert_string_equal(pst_user_addr(a, 0), "alice@example.org");
    assert_string_equal(pst_user_addr(a, 1), "@alias.example");
    assert_null(pst_user_addr(a, 2));
    assert_ptr_equal(pst_users_find(u, "bob"), pst_users_at(u, 2));
    assert_string_equal(pst_user_name(pst_users_at(u, 0)), "carol");
    assert_null(pst_users_at(u, 3));
    assert_null(pst_users_find(u, "dave"));
    assert_null(pst_users_find(u, "alic"));
    /* may_send through the record */
    assert_int_equal(pst_users_may_send(a, "alice", "EXAMPLE.org"), 1);
    assert_int_equal(pst_users_may_send(a, "x", "alias.example"), 1);
    assert_int_equal(pst_users_may_send(a, "bob", "example.org"), 0);
    assert_int_equal(pst_users_may_send(a, "", ""), 1);
    assert_int_equal(pst_users_may_send(pst_users_find(u, "carol"), "carol", "example.org"), 0);
    assert_int_equal(pst_users_may_send(NULL, "", ""), 0);
    pst_users_free(u);
}

#define PW "s3cret p\xc3\xa4ss"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_hash_verify(void **state)
{
    (void)state;
    char h[256];
    assert_int_equal(pst_users_hash(PW, strlen(PW), h, sizeof(h)), 0);
    assert_memory_equal(h, "$y$", 3);
    assert_null(strstr(h, "s3cret"));
    char h2[256];
    assert_int_equal(pst_users_hash(PW, strlen(PW), h2, sizeof(h2)), 0);
    assert_string_not_equal(h, h2); /* a new salt each time */
    /* refused passwords */
    assert_int_equal(pst_users_hash("", 0, h2, sizeof(h2)), PST_ERR_INVAL);
    assert_int_equal(pst_users_hash("a\0b", 3, h2, sizeof(h2)), PST_ERR_INVAL);
    assert_int_equal(pst_users_hash("\xff", 1, h2, sizeof(h2)), PST_ERR_INVAL);
    assert_int_equal(pst_users_hash("abc", 3, h2, 10), PST_ERR_INVAL);

    char text[1024];
    snprintf(text, sizeof(text), "alice:%s:a@b.example\nbob:%s:\n", h, H);
    struct pst_users *u = NULL;
    assert_int_equal(pst_users_parse(text, strlen(text), "f", &u, NULL, 0), 0);
    const struct pst_user *who = NULL;
    assert_int_equal(pst_users_verify(u, "alice", PW, strlen(PW), &who), PST_USERS_OK);
    assert_ptr_equal(who, pst_users_find(u, "alice"));
    who = NULL;
    assert_int_equal(pst_users_verify(u, "Alice", PW, strlen(PW), &who), PST_USERS_OK);
    who = NULL;
    assert_int_equal(pst_users_verify(u, "alice", "s3cret p\xc3\xa4sS", 12, &who),
                     PST_USERS_MISMATCH);
    assert_null(who);
    assert_int_equal(pst_users_verify(u, "alice", "s3cret", 6, &who), PST_USERS_MISMATCH);
    assert_int_equal(pst_users_verify(u, "bob", "pw", 2, &who), PST_USERS_OK);
    assert_int_equal(pst_users_verify(u, "bob", "pw ", 3, &who), PST_USERS_MISMATCH);
    assert_int_equal(pst_users_verify(u, "bob", "", 0, &who), PST_USERS_MISMATCH);
    assert_int_equal(pst_users_verify(u, "bob", "p\0w", 3, &who), PST_ERR_INVAL);

    /* an unknown user: UNKNOWN, after a hash as costly as a real one */
    double t0 = now_s();
    assert_int_equal(pst_users_verify(u, "alice", "wrong", 5, NULL), PST_USERS_MISMATCH);
    double known = now_s() - t0;
    t0 = now_s();
    assert_int_equal(pst_users_verify(u, "mallory", PW, strlen(PW), &who), PST_USERS_UNKNOWN);
    double unknown = now_s() - t0;
    print_message("# verify: known user %.4fs, unknown user %.4fs\n", known, unknown);
    assert_true(unknown > known * 0.3);
    pst_users_free(u);

    /* an empty table still hashes (the default dummy setting) */
    assert_int_equal(pst_users_parse("", 0, "f", &u, NULL, 0), 0);
    t0 = now_s();
    assert_int_equal(pst_users_verify(u, "alice", "x", 1, NULL), PST_USERS_UNKNOWN);
    double empty = now_s() - t0;
    assert_true(empty > known * 0.3);
    pst_users_free(u);
}

/* ---- threads ---- */

struct verify_job {
    const struct pst_users *u;
    const char *name, *pw;
    int want;
    int bad; /* results that differed */
};

static void *verify_thread(void *arg)
{
    struct verify_job *j = arg;
    for (int i = 0; i < 3; i++)
        if (pst_users_verify(j->u, j->name, j->pw, strlen(j->pw), NULL) != j->want)
            j->bad++;
    return NULL;
}

/* The daemon verifies from worker threads: concurrent calls on one table
 * each get their own answer. */
static void test_verify_threads(void **state)
{
    (void)state;
    struct pst_users *u = NULL;
    const char *text = "bob:" H ":\n";
    assert_int_equal(pst_users_parse(text, strlen(text), "f", &u, NULL, 0), 0);
    struct verify_job jobs[4] = {
        {u, "bob", "pw", PST_USERS_OK, 0},
        {u, "bob", "wrong", PST_USERS_MISMATCH, 0},
        {u, "nobody", "pw", PST_USERS_UNKNOWN, 0},
        {u, "BOB", "pw", PST_USERS_OK, 0},
    };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, verify_thread, &jobs[i]), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 4; i++) {
        if (jobs[i].bad != 0)
            print_error("%s/%s: %d wrong answers\n", jobs[i].name, jobs[i].pw, jobs[i].bad);
        assert_int_equal(jobs[i].bad, 0);
    }
    pst_users_free(u);
}

/* ---- files ---- */

static char dir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_users.XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *read_all(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_load_mode(void **state)
{
    (void)state;
    char path[128], err[256];
    struct pst_users *u = NULL;
    snprintf(path, sizeof(path), "%s/users", dir);
    write_file(path, "alice:" H ":\n", 0600);
    assert_int_equal(pst_users_load(path, &u, err, sizeof(err)), 0);
    assert_int_equal(pst_users_count(u), 1);
    pst_users_free(u);
    u = NULL;
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(pst_users_load(path, &u, err, sizeof(err)), PST_USERS_ERR_MODE);
    assert_null(u);
    assert_non_null(strstr(err, "mode 640"));
    assert_int_equal(chmod(path, 0602), 0);
    assert_int_equal(pst_users_load(path, &u, err, sizeof(err)), PST_USERS_ERR_MODE);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(pst_users_load(path, &u, err, sizeof(err)), 0);
    pst_users_free(u);
    u = NULL;
    /* the file name and line in parse errors */
    write_file(path, "\nalice:plain:\n", 0600);
    assert_int_equal(pst_users_load(path, &u, err, sizeof(err)), PST_ERR_SYNTAX);
    char want[256];
    snprintf(want, sizeof(want),
             "%s:2: bad password hash (not a crypt(5) hash of a current method)", path);
    assert_string_equal(err, want);
    assert_null(strstr(err, "plain"));
    /* missing file, directory */
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(pst_users_load(path, &u, err, sizeof(err)), PST_ERR_NOTFOUND);
    assert_int_equal(pst_users_load(dir, &u, err, sizeof(err)), PST_ERR_IO);
    assert_null(u);
}

static void test_edits(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/edit-users", dir);
    unlink(path);
    static const char *const addrs[] = {"alice@example.org", "@alias.example"};
    /* add to a missing file creates it, mode 0600 */
    assert_int_equal(pst_users_add(path, "alice", "Pa55:word", 9, addrs, 2, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *text = read_all(path);
    assert_null(strstr(text, "Pa55"));
    assert_memory_equal(text, "alice:$y$", 9);
    assert_non_null(strstr(text, ":alice@example.org,@alias.example\n"));

    /* comments are kept through edits */
    char keep[8192];
    snprintf(keep, sizeof(keep), "# our users\n%s# end", text);
    write_file(path, keep, 0600);
    assert_int_equal(pst_users_add(path, "bob", "bobpw", 5, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(pst_users_add(path, "BOB", "x", 1, NULL, 0, err, sizeof(err)), PST_ERR_INVAL);
    assert_non_null(strstr(err, "user bob exists"));
    assert_int_equal(pst_users_add(path, "b:ob", "x", 1, NULL, 0, err, sizeof(err)), PST_ERR_INVAL);
    static const char *const bad[] = {"nodomain"};
    assert_int_equal(pst_users_add(path, "carol", "x", 1, bad, 1, err, sizeof(err)), PST_ERR_INVAL);
    assert_int_equal(pst_users_add(path, "carol", "", 0, NULL, 0, err, sizeof(err)), PST_ERR_INVAL);

    struct pst_users *u = NULL;
    assert_int_equal(pst_users_load(path, &u, err, sizeof(err)), 0);
    assert_int_equal(pst_users_count(u), 2);
    assert_int_equal(pst_users_verify(u, "bob", "bobpw", 5, NULL), PST_USERS_OK);
    assert_int_equal(pst_users_verify(u, "alice", "Pa55:word", 9, NULL), PST_USERS_OK);
    pst_users_free(u);
    text = read_all(path);
    assert_memory_equal(text, "# our users\nalice:", 18);
    assert_non_null(strstr(text, "\n# end\nbob:$y$"));

    /* passwd changes the hash, keeps the addresses and the comments */
    assert_int_equal(pst_users_passwd(path, "ALICE", "new-pw", 6, err, sizeof(err)), 0);
    assert_int_equal(pst_users_passwd(path, "dave", "x", 1, err, sizeof(err)), PST_ERR_NOTFOUND);
    assert_int_equal(pst_users_load(path, &u, err, sizeof(err)), 0);
    assert_int_equal(pst_users_verify(u, "alice", "Pa55:word", 9, NULL), PST_USERS_MISMATCH);
    assert_int_equal(pst_users_verify(u, "alice", "new-pw", 6, NULL), PST_USERS_OK);
    assert_int_equal(pst_user_naddrs(pst_users_find(u, "alice")), 2);
    pst_users_free(u);
    text = read_all(path);
    assert_non_null(strstr(text, "# our users\nalice:$y$"));
    assert_non_null(strstr(text, "# end\n"));

    /* del */
    assert_int_equal(pst_users_del(path, "alice", err, sizeof(err)), 0);
    assert_int_equal(pst_users_del(path, "alice", err, sizeof(err)), PST_ERR_NOTFOUND);
    text = read_all(path);
    assert_memory_equal(text, "# our users\n# end\nbob:$y$", 25);
    assert_int_equal(pst_users_del(path, "bob", err, sizeof(err)), 0);
    assert_string_equal(read_all(path), "# our users\n# end\n");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a file with a bad mode or bad syntax is not edited */
    write_file(path, "alice:" H ":\n", 0644);
    assert_int_equal(pst_users_del(path, "alice", err, sizeof(err)), PST_USERS_ERR_MODE);
    write_file(path, "alice:" H ":\nbroken\n", 0600);
    assert_int_equal(pst_users_del(path, "alice", err, sizeof(err)), PST_ERR_SYNTAX);
    assert_string_equal(read_all(path), "alice:" H ":\nbroken\n");
    /* no users file: passwd and del find no user */
    unlink(path);
    assert_int_equal(pst_users_del(path, "alice", err, sizeof(err)), PST_ERR_NOTFOUND);
    /* no temporary files left behind */
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -q tmp", dir);
    assert_int_not_equal(system(cmd), 0);
}

static void test_edit_through_symlink(void **state)
{
    (void)state;
    char target[128], link[128], err[256];
    snprintf(target, sizeof(target), "%s/real-users", dir);
    snprintf(link, sizeof(link), "%s/link-users", dir);
    write_file(target, "", 0600);
    unlink(link);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(pst_users_add(link, "alice", "pw", 2, NULL, 0, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_memory_equal(read_all(target), "alice:$y$", 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),    cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_lookup),         cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_verify_threads), cmocka_unit_test(test_load_mode),
        cmocka_unit_test(test_edits),          cmocka_unit_test(test_edit_through_symlink),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
