/*
 * test_route.c - delivery planning, relay hosts and backoff (lib/core/route),
 * hermetic: DNS comes from a zone resolver over zone text written here.
 *
 *  - planning, table-driven: MX order, null MX (RFC 7505), the implicit MX,
 *    NXDOMAIN, simulated SERVFAIL and timeouts at the domain and at an MX
 *    host, MX hosts without addresses, our own names among the MX (RFC 5321
 *    5.1), IPv6 only, family choice and interleaving, the caps, duplicate
 *    addresses, CNAME'd hosts, address literals;
 *  - the order of equal preferences: all present, the same for a seed,
 *    different across seeds;
 *  - the policy hook, the query budget, the DNSSEC state of the answers;
 *  - relay host syntax (good and bad) and planning through a relay;
 *  - the backoff schedule, jitter, expiry and the delay warning.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "err.h"
#include "resolver.h"
#include "route.h"

static struct pst_resolver *zone(const char *text)
{
    struct pst_resolver *r = NULL;
    char err[256] = "";
    size_t n = strlen(text) + 64;
    char *full = malloc(n);
    assert_non_null(full);
    snprintf(full, n, "$ORIGIN e.test.\n$TTL 300\n%s", text);
    int rc = pst_resolver_zone_from_text(full, strlen(full), &r, err, sizeof(err));
    if (rc != 0)
        print_error("zone: %s\n", err);
    free(full);
    assert_int_equal(rc, 0);
    return r;
}

/* "mx pref addr|mx pref addr" (port shown when not 25) */
static void targets_text(const struct pst_route *rt, char *out, size_t outlen)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < rt->ntargets && off < outlen; i++) {
        const struct pst_route_target *t = &rt->targets[i];
        int n;
        if (t->port != 25)
            n = snprintf(out + off, outlen - off, "%s%s %u %s:%u", i ? "|" : "", t->mx,
                         t->preference, t->addr_text, t->port);
        else
            n = snprintf(out + off, outlen - off, "%s%s %u %s", i ? "|" : "", t->mx, t->preference,
                         t->addr_text);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

/* ---- planning, table-driven --------------------------------------------- */

struct plan_case {
    const char *name;
    const char *zone;
    const char *domain;
    unsigned families; /* 0: both */
    int prefer_v4;
    const char *local; /* one of our names, or NULL */
    unsigned max_mx, max_addrs, max_targets;
    enum pst_route_status want;
    const char *want_enh;     /* NULL when OK */
    const char *want_targets; /* targets_text, for OK */
    const char *want_reason;  /* a substring of the reason, or NULL */
};

#define V4 PST_ROUTE_INET4
#define V6 PST_ROUTE_INET6

static const struct plan_case plan_cases[] = {
    {"mx order", "d MX 20 b\nd MX 10 a\nd MX 30 c\na A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3\n",
     "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_OK, NULL,
     "a.e.test. 10 192.0.2.1|b.e.test. 20 192.0.2.2|c.e.test. 30 192.0.2.3", NULL},
    {"case and dot", "d MX 10 a\na A 192.0.2.1\n", "D.E.TEST.", 0, 0, NULL, 0, 0, 0, PST_ROUTE_OK,
     NULL, "a.e.test. 10 192.0.2.1", NULL},
    {"implicit mx", "d A 192.0.2.9\nd TXT \"v=spf1 -all\"\n", "d.e.test", 0, 0, NULL, 0, 0, 0,
     PST_ROUTE_OK, NULL, "d.e.test. 0 192.0.2.9", NULL},
    {"implicit mx v6", "d AAAA 2001:db8::9\n", "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_OK, NULL,
     "d.e.test. 0 2001:db8::9", NULL},
    {"implicit unusable", "d TXT \"hello\"\n", "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_PERMFAIL,
     "5.4.4", NULL, "no MX and no address records"},
    {"null mx", "d MX 0 .\nd A 192.0.2.1\n", "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_PERMFAIL,
     "5.1.10", NULL, "domain d.e.test does not accept mail (null MX"},
    {"null mx other preference", "d MX 10 .\n", "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_PERMFAIL,
     "5.1.10", NULL, "does not accept mail"},
    {"two null mx", "d MX 0 .\nd MX 10 .\n", "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_PERMFAIL,
     "5.1.10", NULL, "does not accept mail"},
    {"null mx among others", "d MX 0 .\nd MX 10 a\na A 192.0.2.1\n", "d.e.test", 0, 0, NULL, 0, 0,
     0, PST_ROUTE_OK, NULL, "a.e.test. 10 192.0.2.1", NULL},
    {"nxdomain", "d MX 10 a\n", "nope.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_PERMFAIL, "5.1.2",
     NULL, "no such domain: nope.e.test"},
    {"servfail", "d TXT \"postern-test=servfail\"\n", "d.e.test", 0, 0, NULL, 0, 0, 0,
     PST_ROUTE_TEMPFAIL, "4.4.3", NULL, "MX lookup of d.e.test: SERVFAIL (simulated)"},
    {"timeout", "d TXT \"postern-test=timeout\"\n", "d.e.test", 0, 0, NULL, 0, 0, 0,
     PST_ROUTE_TEMPFAIL, "4.4.3", NULL, "timed out (simulated)"},
    {"cname loop", "d CNAME x\nx CNAME d\n", "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_PERMFAIL,
     "5.4.4", NULL, "CNAME loop"},
    {"mx to missing host", "d MX 10 gone\nd MX 20 b\nb A 192.0.2.2\n", "d.e.test", 0, 0, NULL, 0, 0,
     0, PST_ROUTE_OK, NULL, "b.e.test. 20 192.0.2.2", "gone.e.test: AAAA nxdomain, A nxdomain"},
    {"every mx missing", "d MX 10 gone\nd MX 20 gone2\nother A 192.0.2.1\n", "d.e.test", 0, 0, NULL,
     0, 0, 0, PST_ROUTE_TEMPFAIL, "4.4.4", NULL,
     "no MX host of d.e.test has an address: gone.e.test: AAAA nxdomain, A nxdomain; gone2.e.test"},
    {"mx host without address records", "d MX 10 a\na TXT \"x\"\n", "d.e.test", 0, 0, NULL, 0, 0, 0,
     PST_ROUTE_TEMPFAIL, "4.4.4", NULL, "a.e.test: AAAA nodata, A nodata"},
    {"mx host servfail", "d MX 10 a\na TXT \"postern-test=servfail\"\n", "d.e.test", 0, 0, NULL, 0,
     0, 0, PST_ROUTE_TEMPFAIL, "4.4.3", NULL, "SERVFAIL (simulated)"},
    {"mx host servfail, another works",
     "d MX 10 a\nd MX 20 b\na TXT \"postern-test=timeout\"\nb A 192.0.2.2\n", "d.e.test", 0, 0,
     NULL, 0, 0, 0, PST_ROUTE_OK, NULL, "b.e.test. 20 192.0.2.2", "timed out (simulated)"},
    {"mx host is a cname", "d MX 10 a\na CNAME real\nreal A 192.0.2.5\n", "d.e.test", 0, 0, NULL, 0,
     0, 0, PST_ROUTE_OK, NULL, "a.e.test. 10 192.0.2.5", NULL},
    {"self in mx",
     "d MX 10 mx0\nd MX 20 mx1\nd MX 30 mx2\nmx0 A 192.0.2.10\nmx1 A 192.0.2.11\n"
     "mx2 A 192.0.2.12\n",
     "d.e.test", 0, 0, "MX1.e.test.", 0, 0, 0, PST_ROUTE_OK, NULL, "mx0.e.test. 10 192.0.2.10",
     NULL},
    {"self is the best mx", "d MX 10 mx0\nd MX 20 mx1\nmx0 A 192.0.2.10\nmx1 A 192.0.2.11\n",
     "d.e.test", 0, 0, "mx0.e.test", 0, 0, 0, PST_ROUTE_PERMFAIL, "5.4.6", NULL,
     "mail for d.e.test loops back to myself"},
    {"self at equal preference", "d MX 10 mx0\nd MX 10 mx1\nmx0 A 192.0.2.10\nmx1 A 192.0.2.11\n",
     "d.e.test", 0, 0, "mx1.e.test", 0, 0, 0, PST_ROUTE_PERMFAIL, "5.4.6", NULL,
     "loops back to myself"},
    {"self is the implicit mx", "d A 192.0.2.1\n", "d.e.test", 0, 0, "d.e.test", 0, 0, 0,
     PST_ROUTE_PERMFAIL, "5.4.6", NULL, "mail for d.e.test loops back to myself"},
    {"not self", "d MX 10 mx0\nmx0 A 192.0.2.10\n", "d.e.test", 0, 0, "mx.other.test", 0, 0, 0,
     PST_ROUTE_OK, NULL, "mx0.e.test. 10 192.0.2.10", NULL},
    {"ipv6 only host", "d MX 10 a\na AAAA 2001:db8::1\n", "d.e.test", 0, 0, NULL, 0, 0, 0,
     PST_ROUTE_OK, NULL, "a.e.test. 10 2001:db8::1", NULL},
    {"ipv6 only host, v4 only sender", "d MX 10 a\na AAAA 2001:db8::1\n", "d.e.test", V4, 0, NULL,
     0, 0, 0, PST_ROUTE_TEMPFAIL, "4.4.4", NULL, "a.e.test: A nodata"},
    {"v6 only sender", "d MX 10 a\na A 192.0.2.1\na AAAA 2001:db8::1\n", "d.e.test", V6, 0, NULL, 0,
     0, 0, PST_ROUTE_OK, NULL, "a.e.test. 10 2001:db8::1", NULL},
    {"dual stack, v6 first, interleaved",
     "d MX 10 a\na A 192.0.2.1\na A 192.0.2.2\na AAAA 2001:db8::1\na AAAA 2001:db8::2\n",
     "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_OK, NULL,
     "a.e.test. 10 2001:db8::1|a.e.test. 10 192.0.2.1|a.e.test. 10 2001:db8::2|"
     "a.e.test. 10 192.0.2.2",
     NULL},
    {"dual stack, v4 first", "d MX 10 a\na A 192.0.2.1\na AAAA 2001:db8::1\n", "d.e.test", 0, 1,
     NULL, 0, 0, 0, PST_ROUTE_OK, NULL, "a.e.test. 10 192.0.2.1|a.e.test. 10 2001:db8::1", NULL},
    {"max addrs per host",
     "d MX 10 a\nd MX 20 b\na A 192.0.2.1\na A 192.0.2.2\na A 192.0.2.3\nb A 192.0.2.9\n",
     "d.e.test", V4, 0, NULL, 0, 2, 0, PST_ROUTE_OK, NULL,
     "a.e.test. 10 192.0.2.1|a.e.test. 10 192.0.2.2|b.e.test. 20 192.0.2.9", NULL},
    {"max mx", "d MX 10 a\nd MX 20 b\nd MX 30 c\na A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3\n",
     "d.e.test", V4, 0, NULL, 2, 0, 0, PST_ROUTE_OK, NULL,
     "a.e.test. 10 192.0.2.1|b.e.test. 20 192.0.2.2", NULL},
    {"max targets",
     "d MX 10 a\nd MX 20 b\na A 192.0.2.1\na A 192.0.2.2\nb A 192.0.2.3\nb A 192.0.2.4\n",
     "d.e.test", V4, 0, NULL, 0, 0, 3, PST_ROUTE_OK, NULL,
     "a.e.test. 10 192.0.2.1|a.e.test. 10 192.0.2.2|b.e.test. 20 192.0.2.3", NULL},
    {"mx host named twice",
     "d MX 10 a\nd MX 20 b\nd MX 30 a\na A 192.0.2.1\na A 192.0.2.2\na A 192.0.2.3\n"
     "b A 192.0.2.9\n",
     "d.e.test", V4, 0, NULL, 0, 2, 0, PST_ROUTE_OK, NULL,
     "a.e.test. 10 192.0.2.1|a.e.test. 10 192.0.2.2|b.e.test. 20 192.0.2.9", NULL},
    {"unusable addresses dropped",
     "d MX 10 a\na A 0.0.0.0\na A 224.0.0.1\na A 255.255.255.255\na A 192.0.2.1\n"
     "a AAAA ::\na AAAA ff02::1\n",
     "d.e.test", 0, 0, NULL, 0, 0, 0, PST_ROUTE_OK, NULL, "a.e.test. 10 192.0.2.1", NULL},
    {"only unusable addresses", "d MX 10 a\nd MX 20 b\na A 0.0.0.0\nb AAAA ::\n", "d.e.test", 0, 0,
     NULL, 0, 0, 0, PST_ROUTE_TEMPFAIL, "4.4.4", NULL,
     "a.e.test: AAAA nodata, A unusable addresses only; b.e.test: AAAA unusable addresses "
     "only, A nodata"},
    {"duplicate address", "d MX 10 a\nd MX 20 b\na A 192.0.2.1\nb A 192.0.2.1\nb A 192.0.2.2\n",
     "d.e.test", V4, 0, NULL, 0, 0, 0, PST_ROUTE_OK, NULL,
     "a.e.test. 10 192.0.2.1|b.e.test. 20 192.0.2.2", NULL},
    {"address literal v4", "", "[192.0.2.7]", 0, 0, NULL, 0, 0, 0, PST_ROUTE_OK, NULL,
     "[192.0.2.7] 0 192.0.2.7", NULL},
    {"address literal v6", "", "[IPv6:2001:DB8::7]", 0, 0, NULL, 0, 0, 0, PST_ROUTE_OK, NULL,
     "[IPv6:2001:DB8::7] 0 2001:db8::7", NULL},
    {"address literal unusable", "", "[0.0.0.0]", 0, 0, NULL, 0, 0, 0, PST_ROUTE_PERMFAIL, "5.4.4",
     NULL, "no connection can go there"},
    {"address literal, family off", "", "[192.0.2.7]", V6, 0, NULL, 0, 0, 0, PST_ROUTE_PERMFAIL,
     "5.4.4", NULL, "no usable address family"},
};

static int run_plan_case(const struct plan_case *c)
{
    struct pst_resolver *r = zone(c->zone);
    struct pst_route_options o;
    struct pst_route *rt = NULL;
    const char *names[1] = {c->local};
    char got[2048];
    int bad = 0;

    pst_route_options_default(&o);
    if (c->families)
        o.families = c->families;
    if (c->prefer_v4)
        o.prefer = PST_ROUTE_INET4;
    if (c->local != NULL) {
        o.local_names = names;
        o.nlocal_names = 1;
    }
    o.max_mx = c->max_mx;
    o.max_addrs = c->max_addrs;
    o.max_targets = c->max_targets;
    int rc = pst_route_plan(r, NULL, c->domain, &o, &rt);
    if (rc != 0) {
        print_error("%s: rc %d (%s)\n", c->name, rc, pst_strerror(rc));
        pst_resolver_free(r);
        return 1;
    }
    targets_text(rt, got, sizeof got);
    if (rt->status != c->want || (c->want_enh == NULL) != (rt->enh == NULL) ||
        (c->want_enh != NULL && strcmp(c->want_enh, rt->enh) != 0))
        bad = 1;
    if (c->want_targets != NULL && strcmp(got, c->want_targets) != 0)
        bad = 1;
    if (c->want_targets == NULL && rt->ntargets != 0)
        bad = 1;
    if (c->want_reason != NULL &&
        (rt->reason == NULL || strstr(rt->reason, c->want_reason) == NULL))
        bad = 1;
    if (bad)
        print_error("%s:\n  got  %s %s [%s] (%s)\n  want %s %s [%s] (%s)\n", c->name,
                    pst_route_status_name(rt->status), rt->enh ? rt->enh : "-", got,
                    rt->reason ? rt->reason : "", pst_route_status_name(c->want),
                    c->want_enh ? c->want_enh : "-", c->want_targets ? c->want_targets : "",
                    c->want_reason ? c->want_reason : "");
    pst_route_free(rt);
    pst_resolver_free(r);
    return bad;
}

static void test_plan_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof plan_cases / sizeof plan_cases[0]; i++)
        bad += run_plan_case(&plan_cases[i]);
    assert_int_equal(bad, 0);
}

/* The fields the table does not show. */
static void test_plan_fields(void **state)
{
    (void)state;
    struct pst_resolver *r = zone("d MX 10 a\na A 192.0.2.1\na AAAA 2001:db8::1\n"
                                  "i A 192.0.2.9\n");
    struct pst_route *rt = NULL;
    struct pst_route_options o;

    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", NULL, &rt), 0);
    assert_int_equal(rt->status, PST_ROUTE_OK);
    assert_null(rt->enh);
    assert_null(rt->reason);
    assert_string_equal(rt->domain, "d.e.test.");
    assert_int_equal(rt->implicit, 0);
    assert_int_equal(rt->truncated, 0);
    assert_int_equal(rt->ntargets, 2);
    assert_int_equal(rt->targets[0].family, PST_ROUTE_INET6);
    assert_int_equal(rt->targets[1].family, PST_ROUTE_INET4);
    const unsigned char v4[4] = {192, 0, 2, 1};
    assert_memory_equal(rt->targets[1].addr, v4, 4);
    assert_int_equal(rt->targets[0].addr[0], 0x20);
    assert_int_equal(rt->targets[0].addr[15], 1);
    assert_int_equal(rt->targets[0].port, 25);
    assert_int_equal(rt->targets[0].implicit, 0);
    assert_int_equal(rt->mx_dnssec, PST_DNS_INSECURE);
    pst_route_free(rt);

    /* implicit: flagged on the route and the target; a port from options */
    pst_route_options_default(&o);
    o.port = 2525;
    assert_int_equal(pst_route_plan(r, NULL, "i.e.test", &o, &rt), 0);
    assert_int_equal(rt->implicit, 1);
    assert_int_equal(rt->ntargets, 1);
    assert_int_equal(rt->targets[0].implicit, 1);
    assert_int_equal(rt->targets[0].port, 2525);
    pst_route_free(rt);

    /* truncated by a cap */
    o.port = 0;
    o.max_addrs = 1;
    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", &o, &rt), 0);
    assert_int_equal(rt->ntargets, 1);
    assert_int_equal(rt->truncated, 1);
    pst_route_free(rt);

    /* caller errors */
    assert_int_equal(pst_route_plan(r, NULL, "bad name", NULL, &rt), PST_ERR_SYNTAX);
    assert_int_equal(pst_route_plan(r, NULL, ".", NULL, &rt), PST_ERR_SYNTAX);
    assert_int_equal(pst_route_plan(r, NULL, "[2001:db8::1]", NULL, &rt), PST_ERR_SYNTAX);
    assert_int_equal(pst_route_plan(r, NULL, "[192.0.2.300]", NULL, &rt), PST_ERR_SYNTAX);
    assert_int_equal(pst_route_plan(NULL, NULL, "d.e.test", NULL, &rt), PST_ERR_INVAL);
    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", NULL, NULL), PST_ERR_INVAL);
    pst_route_options_default(&o);
    o.families = 4;
    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", &o, &rt), PST_ERR_INVAL);
    const char *badname[1] = {"not a name"};
    pst_route_options_default(&o);
    o.local_names = badname;
    o.nlocal_names = 1;
    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", &o, &rt), PST_ERR_INVAL);
    pst_resolver_free(r);
}

/* More than ten MX hosts: the default cap keeps the ten best. */
static void test_default_caps(void **state)
{
    (void)state;
    char text[4096];
    size_t off = 0;
    for (int i = 0; i < 14; i++)
        off += (size_t)snprintf(text + off, sizeof text - off, "d MX %d h%d\nh%d A 192.0.2.%d\n",
                                10 + i, i, i, 10 + i);
    struct pst_resolver *r = zone(text);
    struct pst_route *rt = NULL;
    struct pst_route_options o;
    pst_route_options_default(&o);
    o.max_targets = 100;
    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", &o, &rt), 0);
    assert_int_equal(rt->ntargets, PST_ROUTE_MAX_MX);
    assert_int_equal(rt->truncated, 1);
    assert_string_equal(rt->targets[9].mx, "h9.e.test.");
    pst_route_free(rt);
    /* and the default total cap (20) with two addresses per host */
    off = 0;
    for (int i = 0; i < 14; i++)
        off += (size_t)snprintf(text + off, sizeof text - off,
                                "d MX 10 h%d\nh%d A 192.0.2.%d\nh%d A 198.51.100.%d\n", i, i,
                                10 + i, i, 10 + i);
    pst_resolver_free(r);
    r = zone(text);
    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", NULL, &rt), 0);
    assert_int_equal(rt->ntargets, PST_ROUTE_MAX_TARGETS);
    assert_int_equal(rt->truncated, 1);
    pst_route_free(rt);
    pst_resolver_free(r);
}

/* RFC 5321 5.1: equal preferences in random order, from the seed. */
static void test_shuffle(void **state)
{
    (void)state;
    struct pst_resolver *r = zone("d MX 10 a\nd MX 10 b\nd MX 10 c\nd MX 10 d\nd MX 5 first\n"
                                  "d MX 20 z\n"
                                  "a A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3\nd A 192.0.2.4\n"
                                  "first A 192.0.2.5\nz A 192.0.2.6\n");
    struct pst_route_options o;
    char orders[64][256];
    int firsts[4] = {0, 0, 0, 0};
    size_t distinct = 0;

    pst_route_options_default(&o);
    o.families = V4;
    for (uint64_t seed = 0; seed < 64; seed++) {
        struct pst_route *rt = NULL;
        o.seed = seed * 0x1234567ULL;
        assert_int_equal(pst_route_plan(r, NULL, "d.e.test", &o, &rt), 0);
        assert_int_equal(rt->ntargets, 6);
        /* the lower and higher preferences stay in place */
        assert_string_equal(rt->targets[0].mx, "first.e.test.");
        assert_string_equal(rt->targets[5].mx, "z.e.test.");
        /* the four equal ones are all there, once each */
        int seen[4] = {0, 0, 0, 0};
        for (size_t i = 1; i < 5; i++) {
            assert_int_equal(rt->targets[i].preference, 10);
            const char *m = rt->targets[i].mx;
            assert_true(m[0] >= 'a' && m[0] <= 'd' && m[1] == '.');
            seen[m[0] - 'a']++;
        }
        for (int k = 0; k < 4; k++)
            assert_int_equal(seen[k], 1);
        firsts[rt->targets[1].mx[0] - 'a']++;
        char text[256];
        targets_text(rt, text, sizeof text);
        size_t j;
        for (j = 0; j < distinct; j++)
            if (strcmp(orders[j], text) == 0)
                break;
        if (j == distinct)
            snprintf(orders[distinct++], sizeof orders[0], "%s", text);
        /* the same seed, the same order */
        struct pst_route *again = NULL;
        assert_int_equal(pst_route_plan(r, NULL, "d.e.test", &o, &again), 0);
        char text2[256];
        targets_text(again, text2, sizeof text2);
        assert_string_equal(text, text2);
        pst_route_free(again);
        pst_route_free(rt);
    }
    /* 24 orders are possible; 64 seeds must show many, each host first */
    if (distinct < 10)
        print_error("only %zu distinct orders over 64 seeds\n", distinct);
    assert_true(distinct >= 10);
    for (int k = 0; k < 4; k++)
        assert_true(firsts[k] > 0);
    pst_resolver_free(r);
}

/* The MTA-STS hook: hosts the policy refuses are dropped. */
static int allow_not_a(void *arg, const char *mx)
{
    int *calls = arg;
    (*calls)++;
    return strcmp(mx, "a.e.test.") != 0;
}

static int allow_none(void *arg, const char *mx)
{
    (void)arg;
    (void)mx;
    return 0;
}

static void test_policy_hook(void **state)
{
    (void)state;
    struct pst_resolver *r = zone("d MX 10 a\nd MX 20 b\na A 192.0.2.1\nb A 192.0.2.2\n");
    struct pst_route_options o;
    struct pst_route *rt = NULL;
    int calls = 0;

    pst_route_options_default(&o);
    o.families = V4;
    o.allow_mx = allow_not_a;
    o.allow_arg = &calls;
    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", &o, &rt), 0);
    assert_int_equal(calls, 2);
    assert_int_equal(rt->status, PST_ROUTE_OK);
    assert_int_equal(rt->ntargets, 1);
    assert_string_equal(rt->targets[0].mx, "b.e.test.");
    assert_non_null(strstr(rt->reason, "a.e.test: not allowed by policy"));
    pst_route_free(rt);

    o.allow_mx = allow_none;
    assert_int_equal(pst_route_plan(r, NULL, "d.e.test", &o, &rt), 0);
    assert_int_equal(rt->status, PST_ROUTE_TEMPFAIL);
    assert_string_equal(rt->enh, "4.7.0");
    assert_int_equal(rt->ntargets, 0);
    assert_non_null(strstr(rt->reason, "no MX host of d.e.test is allowed by its policy"));
    pst_route_free(rt);
    pst_resolver_free(r);
}

/* The query budget stops the planning. */
static void test_budget(void **state)
{
    (void)state;
    struct pst_resolver *r =
        zone("d MX 10 a\nd MX 20 b\nd MX 30 c\na A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3\n");
    struct pst_route_options o;
    struct pst_route *rt = NULL;

    pst_route_options_default(&o);
    o.families = V4;
    /* MX + a's A + b's A: c is never asked */
    struct pst_dns_budget b = {.max_queries = 3};
    assert_int_equal(pst_route_plan(r, &b, "d.e.test", &o, &rt), 0);
    assert_int_equal(rt->status, PST_ROUTE_OK);
    assert_int_equal(rt->ntargets, 2);
    assert_int_equal(rt->truncated, 1);
    assert_int_equal(b.used, 3);
    pst_route_free(rt);

    /* room for the MX query only */
    struct pst_dns_budget b1 = {.max_queries = 1};
    assert_int_equal(pst_route_plan(r, &b1, "d.e.test", &o, &rt), 0);
    assert_int_equal(rt->status, PST_ROUTE_TEMPFAIL);
    assert_string_equal(rt->enh, "4.4.3");
    assert_non_null(strstr(rt->reason, "budget"));
    pst_route_free(rt);

    /* no room at all */
    struct pst_dns_budget b0 = {.max_queries = 1, .used = 1};
    assert_int_equal(pst_route_plan(r, &b0, "d.e.test", &o, &rt), 0);
    assert_int_equal(rt->status, PST_ROUTE_TEMPFAIL);
    assert_non_null(strstr(rt->reason, "budget used up before MX lookup"));
    pst_route_free(rt);
    pst_resolver_free(r);
}

/* A resolver that marks the answers of one type secure: the DNSSEC state
 * of the MX answer and of the address answers reach the route. */
struct secure_resolver {
    struct pst_resolver r;
    struct pst_resolver *inner;
    uint16_t secure_type;
};

static int secure_query(struct pst_resolver *r, const char *name, uint16_t type,
                        unsigned timeout_ms, struct pst_dns_answer **out)
{
    struct secure_resolver *s = (struct secure_resolver *)r;
    int rc = s->inner->query(s->inner, name, type, timeout_ms, out);
    if (rc == 0 && type == s->secure_type)
        (*out)->dnssec = PST_DNS_SECURE;
    return rc;
}

static void test_dnssec_state(void **state)
{
    (void)state;
    struct secure_resolver s = {.r = {.kind = "secure", .query = secure_query}};
    struct pst_route *rt = NULL;
    struct pst_route_options o;

    s.inner = zone("d MX 10 a\na A 192.0.2.1\n");
    pst_route_options_default(&o);
    o.families = V4;
    s.secure_type = PST_DNS_MX;
    assert_int_equal(pst_route_plan(&s.r, NULL, "d.e.test", &o, &rt), 0);
    assert_int_equal(rt->mx_dnssec, PST_DNS_SECURE);
    assert_int_equal(rt->targets[0].addr_dnssec, PST_DNS_INSECURE);
    pst_route_free(rt);
    s.secure_type = PST_DNS_A;
    assert_int_equal(pst_route_plan(&s.r, NULL, "d.e.test", &o, &rt), 0);
    assert_int_equal(rt->mx_dnssec, PST_DNS_INSECURE);
    assert_int_equal(rt->targets[0].addr_dnssec, PST_DNS_SECURE);
    pst_route_free(rt);
    pst_resolver_free(s.inner);
}

/* ---- relay hosts -------------------------------------------------------- */

struct relay_case {
    const char *spec;
    int ok;
    const char *host;
    unsigned port;
    int mx, literal;
};

static const struct relay_case relay_cases[] = {
    {"relay.example.com", 1, "relay.example.com", 25, 1, 0},
    {"relay.example.com:587", 1, "relay.example.com", 587, 1, 0},
    {"Relay.Example.COM.", 1, "relay.example.com", 25, 1, 0},
    {"localhost", 1, "localhost", 25, 1, 0},
    {"[relay.example.com]", 1, "relay.example.com", 25, 0, 0},
    {"[relay.example.com]:2525", 1, "relay.example.com", 2525, 0, 0},
    {"[mx-1.example.com]:65535", 1, "mx-1.example.com", 65535, 0, 0},
    {"[192.0.2.1]", 1, "192.0.2.1", 25, 0, 1},
    {"[192.0.2.1]:1", 1, "192.0.2.1", 1, 0, 1},
    {"[IPv6:2001:db8::1]:587", 1, "2001:db8::1", 587, 0, 1},
    {"[ipv6:2001:DB8::1]", 1, "2001:db8::1", 25, 0, 1},
    {"[2001:db8::1]", 1, "2001:db8::1", 25, 0, 1},
    {"3com.example", 1, "3com.example", 25, 1, 0},
    {"", 0, NULL, 0, 0, 0},
    {" relay.example.com", 0, NULL, 0, 0, 0},
    {"relay.example.com ", 0, NULL, 0, 0, 0},
    {"relay\t.example.com", 0, NULL, 0, 0, 0},
    {"relay.example.com:", 0, NULL, 0, 0, 0},
    {"relay.example.com:0", 0, NULL, 0, 0, 0},
    {"relay.example.com:65536", 0, NULL, 0, 0, 0},
    {"relay.example.com:123456", 0, NULL, 0, 0, 0},
    {"relay.example.com:+25", 0, NULL, 0, 0, 0},
    {"relay.example.com:25x", 0, NULL, 0, 0, 0},
    {"relay.example.com:smtp", 0, NULL, 0, 0, 0},
    {"relay.example.com:25:25", 0, NULL, 0, 0, 0},
    {"[relay.example.com", 0, NULL, 0, 0, 0},
    {"relay.example.com]", 0, NULL, 0, 0, 0},
    {"[relay.example.com]x", 0, NULL, 0, 0, 0},
    {"[relay.example.com]:", 0, NULL, 0, 0, 0},
    {"[relay.example.com]:25]", 0, NULL, 0, 0, 0},
    {"[]", 0, NULL, 0, 0, 0},
    {"[]:25", 0, NULL, 0, 0, 0},
    {"192.0.2.1", 0, NULL, 0, 0, 0},
    {"192.0.2.1:25", 0, NULL, 0, 0, 0},
    {"2001:db8::1", 0, NULL, 0, 0, 0},
    {"[192.0.2.300]", 0, NULL, 0, 0, 0},
    {"[0.0.0.0]", 0, NULL, 0, 0, 0},
    {"[::]:25", 0, NULL, 0, 0, 0},
    {"[IPv6:ff02::1]", 0, NULL, 0, 0, 0},
    {"[IPv6:192.0.2.1]", 0, NULL, 0, 0, 0},
    {"[ipv6:zz::1]", 0, NULL, 0, 0, 0},
    {"-relay.example.com", 0, NULL, 0, 0, 0},
    {"relay-.example.com", 0, NULL, 0, 0, 0},
    {"re_lay.example.com", 0, NULL, 0, 0, 0},
    {"relay..example.com", 0, NULL, 0, 0, 0},
    {"relay.example.com..", 0, NULL, 0, 0, 0},
    {"[relay.example.com..]", 0, NULL, 0, 0, 0},
    {".relay.example.com", 0, NULL, 0, 0, 0},
    {".", 0, NULL, 0, 0, 0},
    {":25", 0, NULL, 0, 0, 0},
    {"caf\xc3\xa9.example", 0, NULL, 0, 0, 0},
    {"a1234567890123456789012345678901234567890123456789012345678901234.example", 0, NULL, 0, 0, 0},
};

static void test_relay_parse(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof relay_cases / sizeof relay_cases[0]; i++) {
        const struct relay_case *c = &relay_cases[i];
        struct pst_route_relay rl;
        char why[128] = "";
        memset(&rl, 0x55, sizeof rl);
        int rc = pst_route_relay_parse(c->spec, &rl, why, sizeof why);
        if (c->ok) {
            if (rc != 0 || strcmp(rl.host, c->host) != 0 || rl.port != c->port || rl.mx != c->mx ||
                rl.literal != c->literal) {
                print_error("\"%s\": got rc %d host %s port %u mx %d literal %d (%s)\n", c->spec,
                            rc, rc == 0 ? rl.host : "", rc == 0 ? rl.port : 0, rl.mx, rl.literal,
                            why);
                bad++;
            }
        } else if (rc != PST_ERR_SYNTAX || why[0] == '\0') {
            print_error("\"%s\": got rc %d, want PST_ERR_SYNTAX with a reason\n", c->spec, rc);
            bad++;
        }
    }
    assert_int_equal(bad, 0);

    struct pst_route_relay rl;
    assert_int_equal(pst_route_relay_parse("[IPv6:2001:db8::1]", &rl, NULL, 0), 0);
    assert_int_equal(rl.family, PST_ROUTE_INET6);
    assert_int_equal(rl.addr[0], 0x20);
    assert_int_equal(pst_route_relay_parse("[192.0.2.1]", &rl, NULL, 0), 0);
    assert_int_equal(rl.family, PST_ROUTE_INET4);
    assert_int_equal(rl.addr[3], 1);
    assert_int_equal(pst_route_relay_parse("x y", &rl, NULL, 0), PST_ERR_SYNTAX);
    assert_int_equal(pst_route_relay_parse(NULL, &rl, NULL, 0), PST_ERR_INVAL);
}

static void test_relay_plan(void **state)
{
    (void)state;
    /* the relay's own MX records point elsewhere: "[name]" must not use them */
    struct pst_resolver *r = zone("relay MX 10 elsewhere\nrelay A 192.0.2.50\n"
                                  "elsewhere A 192.0.2.60\n");
    struct pst_route_options o;
    struct pst_route_relay rl;
    struct pst_route *rt = NULL;
    char got[512];

    pst_route_options_default(&o);
    o.families = V4;
    assert_int_equal(pst_route_relay_parse("[relay.e.test]:2525", &rl, NULL, 0), 0);
    assert_int_equal(pst_route_plan_relay(r, NULL, &rl, &o, &rt), 0);
    targets_text(rt, got, sizeof got);
    assert_string_equal(got, "relay.e.test. 0 192.0.2.50:2525");
    pst_route_free(rt);

    assert_int_equal(pst_route_relay_parse("relay.e.test:587", &rl, NULL, 0), 0);
    assert_int_equal(pst_route_plan_relay(r, NULL, &rl, &o, &rt), 0);
    targets_text(rt, got, sizeof got);
    assert_string_equal(got, "elsewhere.e.test. 10 192.0.2.60:587");
    pst_route_free(rt);

    assert_int_equal(pst_route_relay_parse("[192.0.2.99]:26", &rl, NULL, 0), 0);
    assert_int_equal(pst_route_plan_relay(r, NULL, &rl, &o, &rt), 0);
    targets_text(rt, got, sizeof got);
    assert_string_equal(got, "[192.0.2.99] 0 192.0.2.99:26");
    pst_route_free(rt);

    /* a bracketed relay without addresses: our configuration, so temporary */
    assert_int_equal(pst_route_relay_parse("[gone.e.test]", &rl, NULL, 0), 0);
    assert_int_equal(pst_route_plan_relay(r, NULL, &rl, &o, &rt), 0);
    assert_int_equal(rt->status, PST_ROUTE_TEMPFAIL);
    assert_string_equal(rt->enh, "4.4.4");
    assert_non_null(strstr(rt->reason, "gone.e.test: A nxdomain"));
    pst_route_free(rt);
    pst_resolver_free(r);
}

/* ---- backoff ------------------------------------------------------------ */

static void test_backoff_schedule(void **state)
{
    (void)state;
    struct pst_backoff b;
    pst_backoff_default(&b);
    assert_int_equal(pst_backoff_check(&b), 0);
    const int64_t want[] = {300, 600, 1200, 2400, 3600, 3600, 3600};
    for (unsigned i = 0; i < 7; i++) {
        int64_t got = pst_backoff_delay(&b, i + 1, 0);
        if (got != want[i])
            print_error("attempt %u: got %lld want %lld\n", i + 1, (long long)got,
                        (long long)want[i]);
        assert_int_equal(got, want[i]);
    }
    assert_int_equal(pst_backoff_delay(&b, 0, 0), 300);
    assert_int_equal(pst_backoff_delay(&b, 4000000000u, 0), 3600);

    /* jitter only shortens, by at most jitter_percent */
    assert_int_equal(pst_backoff_delay(&b, 1, UINT32_MAX), 270);
    assert_int_equal(pst_backoff_delay(&b, 9, UINT32_MAX), 3240);
    int64_t mid = pst_backoff_delay(&b, 1, UINT32_MAX / 2);
    assert_true(mid > 270 && mid < 300);

    /* a schedule of one's own */
    struct pst_backoff c = {.initial = 60,
                            .factor = 3.0,
                            .max = 1000,
                            .lifetime = 86400,
                            .warn = 0,
                            .jitter_percent = 0};
    assert_int_equal(pst_backoff_check(&c), 0);
    assert_int_equal(pst_backoff_delay(&c, 1, 77), 60);
    assert_int_equal(pst_backoff_delay(&c, 2, 77), 180);
    assert_int_equal(pst_backoff_delay(&c, 3, 77), 540);
    assert_int_equal(pst_backoff_delay(&c, 4, 77), 1000);
    c.factor = 1.0;
    assert_int_equal(pst_backoff_delay(&c, 50, 0), 60);
    c.factor = 1.5;
    assert_int_equal(pst_backoff_delay(&c, 2, 0), 90);

    /* invalid schedules */
    struct pst_backoff x;
#define BAD(field, value)                                                                          \
    do {                                                                                           \
        pst_backoff_default(&x);                                                                   \
        x.field = value;                                                                           \
        assert_int_equal(pst_backoff_check(&x), PST_ERR_INVAL);                                    \
    } while (0)
    BAD(initial, 0);
    BAD(initial, -5);
    BAD(max, 100);
    BAD(factor, 0.5);
    BAD(factor, 17.0);
    BAD(factor, 0.0 / 0.0);
    BAD(lifetime, 0);
    BAD(warn, -1);
    BAD(jitter_percent, 51);
#undef BAD
    assert_int_equal(pst_backoff_check(NULL), PST_ERR_INVAL);
    /* a bad schedule still answers the default one */
    pst_backoff_default(&x);
    x.factor = -1;
    assert_int_equal(pst_backoff_delay(&x, 2, 0), 600);
}

static void test_backoff_times(void **state)
{
    (void)state;
    struct pst_backoff b;
    pst_backoff_default(&b);
    b.jitter_percent = 0;
    const int64_t t = 1700000000;

    assert_int_equal(pst_backoff_next(&b, t, t, 1, 0), t + 300);
    assert_int_equal(pst_backoff_next(&b, t, t + 1000, 3, 0), t + 1000 + 1200);
    /* the last try is at the expiry time, not after it */
    assert_int_equal(pst_backoff_next(&b, t, t + 431000, 20, 0), t + 432000);
    /* already expired: no clamp into the past */
    assert_int_equal(pst_backoff_next(&b, t, t + 500000, 20, 0), t + 500000 + 3600);
    /* saturation */
    assert_int_equal(pst_backoff_next(&b, INT64_MAX - 10, INT64_MAX - 5, 1, 0), INT64_MAX);

    assert_int_equal(pst_backoff_expired(&b, t, t + 431999), 0);
    assert_int_equal(pst_backoff_expired(&b, t, t + 432000), 1);
    assert_int_equal(pst_backoff_expired(&b, INT64_MAX - 10, INT64_MAX - 1), 0);

    assert_int_equal(pst_backoff_warn_due(&b, t, t + 14399, 0), 0);
    assert_int_equal(pst_backoff_warn_due(&b, t, t + 14400, 0), 1);
    assert_int_equal(pst_backoff_warn_due(&b, t, t + 20000, 1), 0);
    assert_int_equal(pst_backoff_warn_due(&b, t, t + 432000, 0), 0);
    b.warn = 0;
    assert_int_equal(pst_backoff_warn_due(&b, t, t + 20000, 0), 0);
    b.warn = 600;
    b.lifetime = 3600;
    assert_int_equal(pst_backoff_warn_due(&b, t, t + 600, 0), 1);
    assert_int_equal(pst_backoff_expired(&b, t, t + 3600), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_table),    cmocka_unit_test(test_plan_fields),
        cmocka_unit_test(test_default_caps),  cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_policy_hook),   cmocka_unit_test(test_budget),
        cmocka_unit_test(test_dnssec_state),  cmocka_unit_test(test_relay_parse),
        cmocka_unit_test(test_relay_plan),    cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_backoff_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
