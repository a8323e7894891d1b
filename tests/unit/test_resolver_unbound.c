/*
 * test_resolver_unbound.c - the libunbound backend without the network:
 * the ADDR[:PORT] syntax, configuration errors reported at creation (bad
 * server, missing resolv.conf, trust anchor files that do not parse or
 * hold the wrong records), and the timeout against a loopback socket that
 * never answers, blocking and asynchronous. Answers from real servers are
 * tested end to end (tests/e2e/test_dns_cli.py, the rig).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "err.h"
#include "resolver.h"

struct server_case {
    const char *spec;
    int rc;
    const char *addr;
    unsigned port;
};

static const struct server_case server_cases[] = {
    {"192.0.2.53", 0, "192.0.2.53", 53},
    {"127.0.0.1:5353", 0, "127.0.0.1", 5353},
    {"127.0.0.1:053", 0, "127.0.0.1", 53},
    {"10.0.0.1:65535", 0, "10.0.0.1", 65535},
    {"::1", 0, "::1", 53},
    {"2001:db8::53", 0, "2001:db8::53", 53},
    {"[::1]:5353", 0, "::1", 5353},
    {"[2001:db8::1]", 0, "2001:db8::1", 53},
    {"", PST_ERR_SYNTAX, NULL, 0},
    {"ns.example.test", PST_ERR_SYNTAX, NULL, 0},
    {"localhost:53", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.1:", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.1:0", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.1:65536", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.1:123456", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.1:5x", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.1:+53", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.1:-1", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.1@53", PST_ERR_SYNTAX, NULL, 0},
    {" 192.0.2.1", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2", PST_ERR_SYNTAX, NULL, 0},
    {"192.0.2.256", PST_ERR_SYNTAX, NULL, 0},
    {"[::1", PST_ERR_SYNTAX, NULL, 0},
    {"[::1]x", PST_ERR_SYNTAX, NULL, 0},
    {"[::1]:", PST_ERR_SYNTAX, NULL, 0},
    {"[]:53", PST_ERR_SYNTAX, NULL, 0},
    {"[192.0.2.1]:53", PST_ERR_SYNTAX, NULL, 0},
    {"fe80::1%eth0", PST_ERR_SYNTAX, NULL, 0},
    {"::1:x", PST_ERR_SYNTAX, NULL, 0},
};

static void test_server_syntax(void **state)
{
    int bad = 0;

    for (size_t i = 0; i < sizeof server_cases / sizeof server_cases[0]; i++) {
        const struct server_case *t = &server_cases[i];
        char addr[64] = "";
        unsigned port = 0;
        int rc = pst_resolver_server_parse(t->spec, addr, sizeof addr, &port);
        if (rc != t->rc || (rc == 0 && (strcmp(addr, t->addr) != 0 || port != t->port))) {
            print_error("\"%s\":\n  got  rc %d %s port %u\n  want rc %d %s port %u\n", t->spec, rc,
                        addr, port, t->rc, t->addr ? t->addr : "", t->port);
            bad++;
        }
    }
    char small[4];
    unsigned port;
    if (pst_resolver_server_parse("192.0.2.1", small, sizeof small, &port) != PST_ERR_TOOBIG) {
        print_error("small buffer accepted\n");
        bad++;
    }
    if (pst_resolver_server_parse(NULL, small, sizeof small, &port) != PST_ERR_SYNTAX) {
        print_error("NULL accepted\n");
        bad++;
    }
    assert_int_equal(bad, 0);
}

/* A temporary file with text; the caller unlinks path. */
static void temp_file(char *path, size_t len, const char *text)
{
    snprintf(path, len, "/tmp/pst_test_unbound_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

struct conf_case {
    const char *name;
    const char *server;
    const char *anchor_text; /* written to a file when not NULL */
    const char *anchor_path; /* used when anchor_text is NULL */
    const char *resolv_text;
    const char *resolv_path;
    int rc;
    const char *want; /* substring of err; "@" stands for the temporary file */
};

#define DS                                                                                         \
    "example.test. IN DS 2371 13 2 "                                                               \
    "1F987CC6583E92DF0890718C42A1B4AF1E5B2F4E8AE8C8D6A2E5F1B7C8D9E0F1\n"

static const struct conf_case conf_cases[] = {
    {"server with a name", "ns.example.test", NULL, NULL, NULL, NULL, PST_ERR_SYNTAX,
     "DNS server \"ns.example.test\": not ADDR[:PORT]"},
    {"server port 0", "127.0.0.1:0", NULL, NULL, NULL, NULL, PST_ERR_SYNTAX, "not ADDR[:PORT]"},
    {"no resolv.conf", NULL, NULL, NULL, NULL, "/nonexistent/resolv.conf", PST_ERR_IO,
     "/nonexistent/resolv.conf: cannot open: No such file or directory"},
    {"anchor missing", "127.0.0.1", NULL, "/nonexistent/anchor", NULL, NULL, PST_ERR_IO,
     "trust anchor /nonexistent/anchor: cannot open"},
    {"anchor syntax", "127.0.0.1", "; anchors\n" DS "example.test. IN DS 2371 13 2 zz\n", NULL,
     NULL, NULL, PST_ERR_SYNTAX, "trust anchor @:3: "},
    {"anchor not DS", "127.0.0.1", DS "example.test. IN A 192.0.2.1\n", NULL, NULL, NULL,
     PST_ERR_SYNTAX, "trust anchor @:2: not a DS or DNSKEY record"},
    {"anchor empty", "127.0.0.1", "; nothing\n", NULL, NULL, NULL, PST_ERR_SYNTAX,
     "trust anchor @: no DS or DNSKEY record"},
    {"anchor SOA", "127.0.0.1", "t. IN SOA ns h 1 2 3 4 5\n", NULL, NULL, NULL, PST_ERR_SYNTAX,
     "trust anchor @:1: not a DS or DNSKEY record"},
    {"anchor fine", "127.0.0.1:5353", DS, NULL, NULL, NULL, 0, ""},
    {"resolv.conf fine", NULL, NULL, NULL, "nameserver 127.0.0.1\n", NULL, 0, ""},
    {"resolv.conf without servers", NULL, NULL, NULL, "# none\n", NULL, 0, ""},
};

static void test_conf_errors(void **state)
{
    int bad = 0;

    for (size_t i = 0; i < sizeof conf_cases / sizeof conf_cases[0]; i++) {
        const struct conf_case *t = &conf_cases[i];
        char anchor[64] = "", resolv[64] = "", err[512] = "", want[256];
        struct pst_resolver *r = NULL;
        struct pst_resolver_unbound_conf c = {.server = t->server};

        if (t->anchor_text != NULL) {
            temp_file(anchor, sizeof anchor, t->anchor_text);
            c.trust_anchor = anchor;
        } else {
            c.trust_anchor = t->anchor_path;
        }
        if (t->resolv_text != NULL) {
            temp_file(resolv, sizeof resolv, t->resolv_text);
            c.resolv_conf = resolv;
        } else {
            c.resolv_conf = t->resolv_path;
        }
        /* "@" in want is the temporary anchor file */
        const char *at = strchr(t->want, '@');
        if (at != NULL)
            snprintf(want, sizeof want, "%.*s%s%s", (int)(at - t->want), t->want, anchor, at + 1);
        else
            snprintf(want, sizeof want, "%s", t->want);
        int rc = pst_resolver_unbound_new(&c, &r, err, sizeof err);
        if (rc != t->rc || strstr(err, want) == NULL || (rc == 0) != (r != NULL)) {
            print_error("%s:\n  got  rc %d \"%s\"\n  want rc %d \"%s\"\n", t->name, rc, err, t->rc,
                        want);
            bad++;
        }
        if (r != NULL)
            assert_string_equal(r->kind, "unbound");
        pst_resolver_free(r);
        if (anchor[0] != '\0')
            unlink(anchor);
        if (resolv[0] != '\0')
            unlink(resolv);
    }
    assert_int_equal(bad, 0);
}

/* ---- timeouts against a socket that never answers ------------------------ */

static int silent_socket(char *spec, size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(spec, len, "127.0.0.1:%u", ntohs(sa.sin_port));
    return fd;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timeout(void **state)
{
    char spec[64], err[256] = "";
    int fd = silent_socket(spec, sizeof spec);
    struct pst_resolver_unbound_conf c = {.server = spec};
    struct pst_resolver *r = NULL;
    struct pst_dns_answer *a = NULL;
    struct pst_dns_budget b = {.max_queries = 5, .timeout_ms = 300};

    assert_int_equal(pst_resolver_unbound_new(&c, &r, err, sizeof err), 0);
    double t0 = now();
    assert_int_equal(pst_dns_query(r, &b, "www.example.test", PST_DNS_A, &a), 0);
    double took = now() - t0;
    assert_int_equal(a->status, PST_DNS_RETRY);
    assert_string_equal(a->reason, "timed out after 300 ms");
    assert_string_equal(a->canonical, "www.example.test.");
    assert_true(took >= 0.29 && took < 3.0);
    pst_dns_answer_free(a);

    b.timeout_ms = 1000;
    assert_int_equal(pst_dns_query(r, &b, "mx.example.test", PST_DNS_MX, &a), 0);
    assert_string_equal(a->reason, "timed out after 1 s");
    pst_dns_answer_free(a);
    assert_int_equal(b.used, 2);
    pst_resolver_free(r);
    close(fd);
}

static int calls;

static void done(void *arg, struct pst_dns_answer *a)
{
    calls++;
    pst_dns_answer_free(a);
}

/* The asynchronous side: a descriptor to watch, nothing arrives from a
 * silent server, cancel works once, free with queries pending is clean. */
static void test_async(void **state)
{
    char spec[64], err[256] = "";
    int fd = silent_socket(spec, sizeof spec);
    struct pst_resolver_unbound_conf c = {.server = spec};
    struct pst_resolver *r = NULL;
    unsigned id1 = 0, id2 = 0;

    assert_int_equal(pst_resolver_unbound_new(&c, &r, err, sizeof err), 0);
    int ufd = pst_dns_fd(r);
    assert_true(ufd >= 0);
    assert_int_equal(pst_dns_query_async(r, NULL, "a.example.test", PST_DNS_A, done, NULL, &id1),
                     0);
    assert_int_equal(pst_dns_query_async(r, NULL, "b.example.test", PST_DNS_TXT, done, NULL, &id2),
                     0);
    assert_true(id1 != 0 && id1 != id2);
    struct pollfd p = {.fd = ufd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 200), 0);
    assert_int_equal(pst_dns_cancel(r, id1), 0);
    assert_int_equal(pst_dns_cancel(r, id1), PST_ERR_NOTFOUND);
    assert_int_equal(pst_dns_process(r), 0);
    assert_int_equal(calls, 0);
    pst_resolver_free(r); /* id2 still pending */
    assert_int_equal(calls, 0);
    close(fd);
}

/* ---- the answer cache: a tiny UDP server that answers A queries -------- */

struct responder {
    int fd;
    volatile int stop;
    volatile int answered;
};

static void *respond(void *arg)
{
    struct responder *rs = arg;
    unsigned char q[512], out[600];
    while (!rs->stop) {
        struct pollfd p = {.fd = rs->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(rs->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n < 17)
            continue;
        size_t i = 12;
        while (i < (size_t)n && q[i] != 0)
            i += (size_t)q[i] + 1;
        i += 5; /* the root label, QTYPE, QCLASS */
        if (i > (size_t)n)
            continue;
        memcpy(out, q, i);
        out[2] = 0x81;          /* QR, RD */
        out[3] = 0x80;          /* RA, NOERROR */
        out[6] = 0, out[7] = 1; /* one answer */
        out[8] = out[9] = 0;    /* no authority */
        out[10] = out[11] = 0;  /* no additional (drops the OPT) */
        static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7};
        memcpy(out + i, rr, sizeof rr);
        sendto(rs->fd, out, i + sizeof rr, 0, (struct sockaddr *)&from, fl);
        rs->answered++;
    }
    return NULL;
}

/* A cached answer is served after the server has gone quiet (from the
 * backend's own cache or libunbound's: both layers are exercised, neither
 * is told apart here), as a copy the caller frees without harm to the
 * cache; a name that timed out is not kept as an answer. */
static void test_cache(void **state)
{
    char spec[64], err[256] = "";
    struct responder rs = {.fd = silent_socket(spec, sizeof spec)};
    struct pst_resolver_unbound_conf c = {.server = spec};
    struct pst_resolver *r = NULL;
    struct pst_dns_answer *a = NULL;
    struct pst_dns_budget b = {.max_queries = 10, .timeout_ms = 2000};
    pthread_t th;

    assert_int_equal(pthread_create(&th, NULL, respond, &rs), 0);
    assert_int_equal(pst_resolver_unbound_new(&c, &r, err, sizeof err), 0);
    assert_int_equal(pst_dns_query(r, &b, "cached.example.test", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_OK);
    assert_int_equal(a->nrrs, 1);
    assert_memory_equal(a->rrs[0].addr, "\xc0\x00\x02\x07", 4);
    pst_dns_answer_free(a);
    rs.stop = 1;
    pthread_join(th, NULL);
    int answered = rs.answered;
    assert_true(answered >= 1);

    b.timeout_ms = 300;
    assert_int_equal(pst_dns_query(r, &b, "CACHED.example.test.", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_OK);
    assert_int_equal(a->nrrs, 1);
    assert_memory_equal(a->rrs[0].addr, "\xc0\x00\x02\x07", 4);
    assert_true(a->ttl >= 1 && a->ttl <= 60);
    /* a copy of its own: freeing it leaves the cache intact */
    pst_dns_answer_free(a);
    assert_int_equal(pst_dns_query(r, &b, "cached.example.test", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_OK);
    pst_dns_answer_free(a);

    /* nobody answers now: a new name times out, and so does it again */
    assert_int_equal(pst_dns_query(r, &b, "other.example.test", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_RETRY);
    pst_dns_answer_free(a);
    assert_int_equal(pst_dns_query(r, &b, "other.example.test", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_RETRY);
    assert_string_equal(a->reason, "timed out after 300 ms");
    pst_dns_answer_free(a);
    assert_int_equal(rs.answered, answered);
    pst_resolver_free(r);
    close(rs.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_syntax), cmocka_unit_test(test_conf_errors),
        cmocka_unit_test(test_timeout),       cmocka_unit_test(test_async),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
