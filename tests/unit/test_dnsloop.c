/*
 * test_dnsloop.c - posternd's DNS glue (src/posternd/dnsloop.c) on a real
 * libevent loop: answers from the zone resolver arrive through the
 * descriptor, every callback runs exactly once, the per-query timer turns
 * a query that never finishes into RETRY (a resolver that never answers,
 * and libunbound against a loopback socket that stays silent), cancel and
 * free leave no callback and no leak, the budget is enforced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"
#include "dnsloop.h"
#include "err.h"
#include "resolver.h"

static const char zone[] = "$ORIGIN example.test.\n"
                           "$TTL 300\n"
                           "@ IN SOA ns hostmaster 1 3600 600 86400 60\n"
                           "@ IN MX 10 mx\n"
                           "mx IN A 192.0.2.25\n"
                           "alias IN CNAME mx\n"
                           "sf IN TXT \"postern-test=servfail\"\n";

struct result {
    int calls;
    char name[PST_DNS_NAME_TEXT_MAX];
    enum pst_dns_status status;
    char reason[128];
    size_t nrrs;
};

struct ctx {
    struct event_base *base;
    struct pstd_dns *d;
    struct result res[8];
    int outstanding;
    struct pstd_dns_query *to_cancel; /* cancelled by the first callback */
};

struct slot {
    struct ctx *c;
    int i;
};

static void done(void *arg, struct pst_dns_answer *a)
{
    struct slot *s = arg;
    struct result *r = &s->c->res[s->i];

    r->calls++;
    snprintf(r->name, sizeof r->name, "%s", a->name);
    r->status = a->status;
    snprintf(r->reason, sizeof r->reason, "%s", a->reason != NULL ? a->reason : "");
    r->nrrs = a->nrrs;
    pst_dns_answer_free(a);
    if (s->c->to_cancel != NULL) {
        pstd_dns_cancel(s->c->to_cancel);
        s->c->to_cancel = NULL;
        s->c->outstanding--;
    }
    if (--s->c->outstanding == 0)
        event_base_loopbreak(s->c->base);
}

static void run(struct ctx *c, int seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    event_base_loopexit(c->base, &tv);
    event_base_dispatch(c->base);
}

static struct pst_resolver *zone_resolver(void)
{
    struct pst_resolver *r = NULL;
    char err[256];
    assert_int_equal(pst_resolver_zone_from_text(zone, strlen(zone), &r, err, sizeof err), 0);
    return r;
}

static void test_answers(void **state)
{
    struct pst_resolver *r = zone_resolver();
    struct ctx c = {.base = event_base_new()};
    struct slot s[4] = {{&c, 0}, {&c, 1}, {&c, 2}, {&c, 3}};
    struct pst_dns_budget b = {.max_queries = 3, .timeout_ms = 2000};

    assert_non_null(c.base);
    c.d = pstd_dns_new(c.base, r);
    assert_non_null(c.d);
    assert_int_equal(pstd_dns_query(c.d, &b, "example.test", PST_DNS_MX, done, &s[0], NULL), 0);
    assert_int_equal(pstd_dns_query(c.d, &b, "alias.example.test", PST_DNS_A, done, &s[1], NULL),
                     0);
    assert_int_equal(pstd_dns_query(c.d, &b, "sf.example.test", PST_DNS_A, done, &s[2], NULL), 0);
    /* the budget: the fourth is refused and never calls back */
    assert_int_equal(pstd_dns_query(c.d, &b, "mx.example.test", PST_DNS_A, done, &s[3], NULL),
                     PST_ERR_TOOBIG);
    assert_int_equal(pstd_dns_query(c.d, NULL, "a..b", PST_DNS_A, done, &s[3], NULL),
                     PST_ERR_SYNTAX);
    assert_int_equal(pstd_dns_pending(c.d), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.res[i].calls, 0); /* only from the loop */
    c.outstanding = 3;
    run(&c, 5);
    assert_int_equal(c.res[0].calls, 1);
    assert_int_equal(c.res[0].status, PST_DNS_OK);
    assert_int_equal(c.res[0].nrrs, 1);
    assert_int_equal(c.res[1].calls, 1);
    assert_string_equal(c.res[1].name, "alias.example.test.");
    assert_int_equal(c.res[1].nrrs, 1);
    assert_int_equal(c.res[2].calls, 1);
    assert_int_equal(c.res[2].status, PST_DNS_RETRY);
    assert_string_equal(c.res[2].reason, "SERVFAIL (simulated)");
    assert_int_equal(c.res[3].calls, 0);
    assert_int_equal(pstd_dns_pending(c.d), 0);

    /* a callback cancelling another query: that one never calls back */
    memset(c.res, 0, sizeof c.res);
    struct pstd_dns_query *q = NULL;
    assert_int_equal(pstd_dns_query(c.d, NULL, "example.test", PST_DNS_MX, done, &s[0], NULL), 0);
    assert_int_equal(pstd_dns_query(c.d, NULL, "mx.example.test", PST_DNS_A, done, &s[1], &q), 0);
    c.to_cancel = q;
    c.outstanding = 2;
    run(&c, 5);
    assert_int_equal(c.res[0].calls + c.res[1].calls, 1);
    assert_int_equal(pstd_dns_pending(c.d), 0);

    /* freed with queries pending: no callback */
    memset(c.res, 0, sizeof c.res);
    assert_int_equal(pstd_dns_query(c.d, NULL, "example.test", PST_DNS_MX, done, &s[0], NULL), 0);
    pstd_dns_free(c.d);
    run(&c, 0);
    assert_int_equal(c.res[0].calls, 0);
    pst_resolver_free(r);
    event_base_free(c.base);
}

/* ---- a resolver that never answers --------------------------------------- */

struct mute {
    struct pst_resolver r;
    int pipe[2];
    unsigned next, cancelled;
};

static int mute_query(struct pst_resolver *r, const char *name, uint16_t type, unsigned timeout_ms,
                      struct pst_dns_answer **out)
{
    return PST_ERR_UNSUPPORTED;
}

static int mute_async(struct pst_resolver *r, const char *name, uint16_t type, pst_dns_done_fn *fn,
                      void *arg, unsigned *id)
{
    *id = ++((struct mute *)r)->next;
    return 0;
}

static int mute_cancel(struct pst_resolver *r, unsigned id)
{
    ((struct mute *)r)->cancelled++;
    return 0;
}

static int mute_fd(struct pst_resolver *r)
{
    return ((struct mute *)r)->pipe[0];
}

static int mute_process(struct pst_resolver *r)
{
    return 0;
}

static void mute_free(struct pst_resolver *r)
{
}

static void test_timeout(void **state)
{
    struct mute m = {.r = {.kind = "mute",
                           .query = mute_query,
                           .query_async = mute_async,
                           .cancel = mute_cancel,
                           .fd = mute_fd,
                           .process = mute_process,
                           .free = mute_free}};
    struct ctx c = {.base = event_base_new()};
    struct slot s[2] = {{&c, 0}, {&c, 1}};
    struct pst_dns_budget fast = {.timeout_ms = 150}, slow = {.timeout_ms = 1000};

    assert_int_equal(pipe(m.pipe), 0);
    c.d = pstd_dns_new(c.base, &m.r);
    assert_non_null(c.d);
    assert_int_equal(pstd_dns_query(c.d, &fast, "a.example.test", PST_DNS_A, done, &s[0], NULL), 0);
    assert_int_equal(pstd_dns_query(c.d, &slow, "b.example.test", PST_DNS_TXT, done, &s[1], NULL),
                     0);
    c.outstanding = 2;
    run(&c, 5);
    assert_int_equal(c.res[0].calls, 1);
    assert_int_equal(c.res[0].status, PST_DNS_RETRY);
    assert_string_equal(c.res[0].reason, "timed out after 150 ms");
    assert_int_equal(c.res[1].calls, 1);
    assert_string_equal(c.res[1].reason, "timed out after 1 s");
    assert_string_equal(c.res[1].name, "b.example.test.");
    assert_int_equal(m.cancelled, 2);

    /* cancelled before its timer: nothing */
    memset(c.res, 0, sizeof c.res);
    struct pstd_dns_query *q;
    assert_int_equal(pstd_dns_query(c.d, &fast, "a.example.test", PST_DNS_A, done, &s[0], &q), 0);
    pstd_dns_cancel(q);
    assert_int_equal(m.cancelled, 3);
    run(&c, 1);
    assert_int_equal(c.res[0].calls, 0);
    pstd_dns_free(c.d);

    /* a resolver without a descriptor is refused */
    m.r.fd = NULL;
    assert_null(pstd_dns_new(c.base, &m.r));
    close(m.pipe[0]);
    close(m.pipe[1]);
    event_base_free(c.base);
}

/* libunbound on the loop: a loopback server that never answers. */
static void test_unbound_timeout(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char spec[64], err[256] = "";

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(spec, sizeof spec, "127.0.0.1:%u", ntohs(sa.sin_port));

    struct pst_resolver_unbound_conf conf = {.server = spec};
    struct pst_resolver *r = NULL;
    assert_int_equal(pst_resolver_unbound_new(&conf, &r, err, sizeof err), 0);
    struct ctx c = {.base = event_base_new()};
    struct slot s[2] = {{&c, 0}, {&c, 1}};
    struct pst_dns_budget b = {.timeout_ms = 300};
    c.d = pstd_dns_new(c.base, r);
    assert_non_null(c.d);
    assert_int_equal(pstd_dns_query(c.d, &b, "www.example.test", PST_DNS_A, done, &s[0], NULL), 0);
    assert_int_equal(pstd_dns_query(c.d, &b, "example.test", PST_DNS_MX, done, &s[1], NULL), 0);
    c.outstanding = 2;
    run(&c, 5);
    assert_int_equal(c.res[0].calls, 1);
    assert_int_equal(c.res[1].calls, 1);
    assert_string_equal(c.res[0].reason, "timed out after 300 ms");
    assert_int_equal(c.res[1].status, PST_DNS_RETRY);
    /* one left pending at free */
    assert_int_equal(pstd_dns_query(c.d, &b, "x.example.test", PST_DNS_A, done, &s[0], NULL), 0);
    pstd_dns_free(c.d);
    pst_resolver_free(r);
    event_base_free(c.base);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_unbound_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
