/*
 * test_smtp_client.c - the blocking driver over a unix socket with a
 * scripted server thread: a whole transaction (exact commands and the
 * stuffed message), a refused recipient, a missing socket, the reply
 * timeout, and the arguments it refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "smtp_client.h"

struct srv {
    char path[108];
    int lfd;
    const char *const *replies; /* sent after each read line (NULL: read only) */
    char got[65536];            /* everything the client sent */
    size_t gotlen;
    int silent; /* never greet */
    int hold;   /* after the script, keep the connection until the client closes */
    pthread_t th;
};

/* Reads until a line ends (or the data ends with CRLF.CRLF in DATA). */
static int read_line(int fd, struct srv *s, int data)
{
    for (;;) {
        if (s->gotlen + 1 >= sizeof(s->got))
            return -1;
        ssize_t n = read(fd, s->got + s->gotlen, 1);
        if (n <= 0)
            return -1;
        s->gotlen++;
        s->got[s->gotlen] = '\0';
        if (!data && s->gotlen >= 2 && memcmp(s->got + s->gotlen - 2, "\r\n", 2) == 0)
            return 0;
        if (data && s->gotlen >= 5 && memcmp(s->got + s->gotlen - 5, "\r\n.\r\n", 5) == 0)
            return 0;
    }
}

static void *serve(void *arg)
{
    struct srv *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (s->silent) {
        char b[64];
        while (read(fd, b, sizeof(b)) > 0)
            ;
        close(fd);
        return NULL;
    }
    const char *const *r = s->replies;
    int in_data = 0;
    /* the first reply is the greeting */
    if (write(fd, r[0], strlen(r[0])) < 0)
        goto out;
    for (r++; *r != NULL; r++) {
        if (read_line(fd, s, in_data) != 0)
            break;
        in_data = strstr(*r, "354 ") != NULL;
        if (**r != '\0' && write(fd, *r, strlen(*r)) < 0)
            break;
    }
    if (s->hold) {
        char b[64];
        while (read(fd, b, sizeof(b)) > 0)
            ;
    }
out:
    close(fd);
    return NULL;
}

static void srv_start(struct srv *s, const char *const *replies, int silent)
{
    memset(s, 0, sizeof(*s));
    s->silent = silent;
    s->replies = replies;
    snprintf(s->path, sizeof(s->path), "/tmp/pst-smtpc-%d-%p.sock", (int)getpid(), (void *)s);
    unlink(s->path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->lfd, 1), 0);
    assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void srv_stop(struct srv *s)
{
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->lfd);
    unlink(s->path);
}

static int msg_file(const char *text)
{
    char path[] = "/tmp/pst-smtpc-msg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    return fd;
}

static const struct pst_smtpc_rcpt rcpts[] = {{"a@example.net", NULL, NULL},
                                              {"b@example.net", NULL, NULL}};

static void test_transaction(void **state)
{
    static const char *const replies[] = {
        "220 t ESMTP\r\n",
        "250-t\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
        "", /* MAIL, the RCPTs: their replies come after DATA */
        "",
        "",
        "250 ok\r\n250 ok\r\n550 5.1.1 no b\r\n354 go\r\n",
        "250 2.0.0 queued\r\n",
        "221 bye\r\n",
        NULL,
    };
    struct srv s;
    srv_start(&s, replies, 0);
    int fd = msg_file("Subject: x\r\n\r\n.dot\r\nend");
    struct pst_smtp_client_opts o = {0};
    o.unix_path = s.path;
    o.ehlo_name = "me.example";
    o.tls = PST_SMTPC_TLS_OPPORTUNISTIC;
    o.timeouts.greeting = o.timeouts.command = o.timeouts.mail = o.timeouts.rcpt = 5000;
    o.timeouts.data_init = o.timeouts.data_block = o.timeouts.dot = 5000;
    struct pst_smtp_client_msg m = {"s@example.org", rcpts, 2, 0, 0, NULL, NULL};
    struct pst_smtp_client_result r;
    assert_int_equal(pst_smtp_client_deliver(&o, &m, fd, &r), 0);
    srv_stop(&s);
    assert_string_equal(s.got, "EHLO me.example\r\n"
                               "MAIL FROM:<s@example.org> SIZE=23\r\n"
                               "RCPT TO:<a@example.net>\r\n"
                               "RCPT TO:<b@example.net>\r\n"
                               "DATA\r\n"
                               "Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n"
                               "QUIT\r\n");
    assert_int_equal(r.status, PST_SMTPC_OK);
    assert_string_equal(r.text, "250 2.0.0 queued");
    assert_int_equal(r.nrcpts, 2);
    assert_int_equal(r.rcpts[0].status, PST_SMTPC_OK);
    assert_int_equal(r.rcpts[1].status, PST_SMTPC_PERM);
    assert_string_equal(r.rcpts[1].text, "550 5.1.1 no b");
    assert_string_equal(r.peer, s.path);
    assert_int_equal(r.tls.failure, PST_TLS_FAIL_STARTTLS_NOT_SUPPORTED);
    assert_int_equal(r.host_failure, 0);
    pst_smtp_client_result_free(&r);
    close(fd);
}

static void test_no_socket(void **state)
{
    int fd = msg_file("x\r\n");
    struct pst_smtp_client_opts o = {0};
    o.unix_path = "/nonexistent/pst.sock";
    o.ehlo_name = "me.example";
    struct pst_smtp_client_msg m = {"", rcpts, 1, 0, 0, NULL, NULL};
    struct pst_smtp_client_result r;
    assert_int_equal(pst_smtp_client_deliver(&o, &m, fd, &r), 0);
    assert_int_equal(r.status, PST_SMTPC_TEMP);
    assert_int_equal(r.stage, PST_SMTPC_STAGE_CONNECT);
    assert_string_equal(r.enh, "4.4.1");
    assert_non_null(strstr(r.text, "No such file or directory"));
    assert_int_equal(r.rcpts[0].status, PST_SMTPC_TEMP);
    assert_int_equal(r.host_failure, 1);
    pst_smtp_client_result_free(&r);
    close(fd);
}

static void test_greeting_timeout(void **state)
{
    struct srv s;
    static const char *const none[] = {NULL};
    srv_start(&s, none, 1);
    int fd = msg_file("x\r\n");
    struct pst_smtp_client_opts o = {0};
    o.unix_path = s.path;
    o.ehlo_name = "me.example";
    o.timeouts.greeting = 300;
    struct pst_smtp_client_msg m = {"", rcpts, 1, 0, 0, NULL, NULL};
    struct pst_smtp_client_result r;
    assert_int_equal(pst_smtp_client_deliver(&o, &m, fd, &r), 0);
    srv_stop(&s);
    assert_int_equal(r.status, PST_SMTPC_TEMP);
    assert_int_equal(r.stage, PST_SMTPC_STAGE_GREETING);
    assert_string_equal(r.text, "timeout (300 ms) waiting for the reply in the greeting");
    pst_smtp_client_result_free(&r);
    close(fd);
}

static void test_refused_arguments(void **state)
{
    int fd = msg_file("x\r\n");
    struct pst_smtp_client_opts o = {0};
    o.ehlo_name = "me.example";
    struct pst_smtp_client_msg m = {"", rcpts, 1, 0, 0, NULL, NULL};
    struct pst_smtp_client_result r;
    memset(&r, 0x5a, sizeof(r));
    /* neither host nor unix path, or both */
    assert_int_equal(pst_smtp_client_deliver(&o, &m, fd, &r), PST_ERR_INVAL);
    o.host = "127.0.0.1";
    o.unix_path = "/x";
    assert_int_equal(pst_smtp_client_deliver(&o, &m, fd, &r), PST_ERR_INVAL);
    o.unix_path = NULL;
    /* not a file */
    assert_int_equal(pst_smtp_client_deliver(&o, &m, -1, &r), PST_ERR_INVAL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pst_smtp_client_deliver(&o, &m, p[0], &r), PST_ERR_INVAL);
    close(p[0]);
    close(p[1]);
    /* an address with CRLF */
    const struct pst_smtpc_rcpt bad[] = {{"a@b\r\nDATA", NULL, NULL}};
    m.rcpts = bad;
    assert_int_equal(pst_smtp_client_deliver(&o, &m, fd, &r), PST_ERR_INVAL);
    /* a host name is not an address: a result, not a refusal */
    m.rcpts = rcpts;
    o.host = "mx.example.net";
    assert_int_equal(pst_smtp_client_deliver(&o, &m, fd, &r), 0);
    assert_int_equal(r.stage, PST_SMTPC_STAGE_CONNECT);
    assert_string_equal(r.text, "not an IP address: mx.example.net");
    pst_smtp_client_result_free(&r);
    close(fd);
}

/* A server that never answers QUIT: the delivery stands, and the wait
 * ends at the QUIT timeout. */
static void test_no_reply_to_quit(void **state)
{
    static const char *const replies[] = {
        "220 t\r\n", "250 t\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 2.0.0 queued\r\n",
        "",          NULL,
    };
    struct srv s;
    srv_start(&s, replies, 0);
    s.hold = 1;
    int fd = msg_file("x\r\n");
    struct pst_smtp_client_opts o = {0};
    o.unix_path = s.path;
    o.ehlo_name = "me.example";
    o.timeouts.quit = 200;
    struct pst_smtp_client_msg m = {"", rcpts, 1, 0, 0, NULL, NULL};
    struct pst_smtp_client_result r;
    assert_int_equal(pst_smtp_client_deliver(&o, &m, fd, &r), 0);
    srv_stop(&s);
    assert_non_null(strstr(s.got, "\r\n.\r\nQUIT\r\n"));
    assert_int_equal(r.status, PST_SMTPC_OK);
    assert_string_equal(r.text, "250 2.0.0 queued");
    assert_int_equal(r.rcpts[0].status, PST_SMTPC_OK);
    pst_smtp_client_result_free(&r);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transaction),      cmocka_unit_test(test_no_socket),
        cmocka_unit_test(test_greeting_timeout), cmocka_unit_test(test_refused_arguments),
        cmocka_unit_test(test_no_reply_to_quit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
