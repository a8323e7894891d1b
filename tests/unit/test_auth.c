/* test_auth.c - lib/core/auth: SPF, DKIM and DMARC of one message over the
 * zone resolver, the disposition, and the Authentication-Results field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "buf.h"
#include "err.h"
#include "resolver.h"

static const char ZONE[] = "$ORIGIN test.\n"
                           "$TTL 300\n"
                           "@ SOA ns.test. host.test. 1 3600 600 86400 300\n"
                           "rej TXT \"v=spf1 ip4:192.0.2.1 -all\"\n"
                           "_dmarc.rej TXT \"v=DMARC1; p=reject\"\n"
                           "quar TXT \"v=spf1 ip4:192.0.2.1 -all\"\n"
                           "_dmarc.quar TXT \"v=DMARC1; p=quarantine\"\n"
                           "tst TXT \"v=spf1 ip4:192.0.2.1 -all\"\n"
                           "_dmarc.tst TXT \"v=DMARC1; p=reject; t=y\"\n"
                           "broken TXT \"v=spf1 ip4:192.0.2.1 -all\"\n"
                           "_dmarc.broken TXT \"postern-test=servfail\"\n"
                           "helo TXT \"v=spf1 ip4:192.0.2.1 -all\"\n";

static struct pst_resolver *zone(void)
{
    struct pst_resolver *r = NULL;
    char err[256];
    int rc = pst_resolver_zone_from_text(ZONE, strlen(ZONE), &r, err, sizeof(err));
    if (rc != 0)
        fail_msg("zone: %s", err);
    return r;
}

/* Runs the checks on a message from domain, sent from ip. */
static struct pst_auth *check(struct pst_resolver *r, const char *ip, const char *domain,
                              const char *helo)
{
    char hdr[512], from[128];
    snprintf(from, sizeof(from), "news@%s", domain);
    snprintf(hdr, sizeof(hdr),
             "Received: from x by mx.test\r\n"
             "From: News <%s>\r\nTo: a@example.org\r\nSubject: s\r\n",
             from);
    struct pst_auth_opts o = {.resolver = r, .authserv_id = "mx.test", .now = 1795900000};
    struct pst_auth_in in = {.ip = ip, .helo = helo, .mailfrom = from};
    struct pst_auth *a = NULL;
    assert_int_equal(pst_auth_start(&o, &in, hdr, strlen(hdr), &a), 0);
    pst_auth_body(a, "body\r\n", 6);
    assert_int_equal(pst_auth_finish(a), 0);
    return a;
}

static void dispositions(void **state)
{
    (void)state;
    struct pst_resolver *r = zone();
    static const struct {
        const char *ip, *domain;
        enum pst_auth_disposition want;
        const char *spf, *dmarc;
    } cases[] = {
        {"192.0.2.1", "rej.test", PST_AUTH_DELIVER, "pass", "pass"},
        {"192.0.2.9", "rej.test", PST_AUTH_REJECT, "fail", "fail"},
        {"192.0.2.9", "quar.test", PST_AUTH_QUARANTINE, "fail", "fail"},
        /* t=y: one level lower (RFC 9989 5.3) */
        {"192.0.2.9", "tst.test", PST_AUTH_QUARANTINE, "fail", "fail"},
        /* a DNS error deciding DMARC: the receiver's choice */
        {"192.0.2.1", "broken.test", PST_AUTH_TEMPFAIL, "pass", "temperror"},
        /* no DMARC record: none, delivered */
        {"192.0.2.9", "helo.test", PST_AUTH_DELIVER, "fail", "none"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pst_auth *a = check(r, cases[i].ip, cases[i].domain, NULL);
        const struct pst_spf_verdict *spf = pst_auth_spf(a);
        const struct pst_dmarc_eval *e = pst_auth_dmarc(a);
        assert_non_null(spf);
        assert_non_null(e);
        if (strcmp(pst_spf_result_name(spf->result), cases[i].spf) != 0 ||
            strcmp(pst_dmarc_result_name(e->result), cases[i].dmarc) != 0 ||
            pst_auth_disposition(a) != cases[i].want)
            fail_msg("%s from %s: spf=%s dmarc=%s disposition=%s", cases[i].domain, cases[i].ip,
                     pst_spf_result_name(spf->result), pst_dmarc_result_name(e->result),
                     pst_auth_disposition_name(pst_auth_disposition(a)));
        size_t n = 9;
        pst_auth_dkim(a, &n, NULL);
        assert_int_equal(n, 0); /* unsigned */
        pst_auth_free(a);
    }
    pst_resolver_free(r);
}

static void header_and_summary(void **state)
{
    (void)state;
    struct pst_resolver *r = zone();
    struct pst_auth *a = check(r, "192.0.2.9", "rej.test", "helo.test");
    struct pst_buf *b = pst_buf_new(4096);
    assert_int_equal(pst_auth_header(a, b), 0);
    assert_string_equal(pst_buf_data(b),
                        "Authentication-Results: mx.test;\r\n"
                        "\tspf=fail reason=\"rej.test: matched \\\"-all\\\"\" "
                        "smtp.mailfrom=news@rej.test;\r\n"
                        "\tspf=fail reason=\"helo.test: matched \\\"-all\\\"\" "
                        "smtp.helo=helo.test;\r\n"
                        "\tdkim=none;\r\n"
                        "\tdmarc=fail reason=\"no aligned SPF or DKIM pass; p=reject\" "
                        "header.from=rej.test policy.dmarc=reject\r\n");
    pst_buf_reset(b);
    assert_int_equal(pst_auth_summary(a, b), 0);
    assert_non_null(strstr(pst_buf_data(b), "dmarc=fail header.from=rej.test policy=p=reject"));
    assert_non_null(strstr(pst_buf_data(b), "disposition=reject"));
    pst_buf_free(b);
    pst_auth_free(a);
    pst_resolver_free(r);
}

static void header_that_does_not_split(void **state)
{
    (void)state;
    struct pst_resolver *r = zone();
    const char hdr[] = "From: a@rej.test\r\nthis is no header field\r\n";
    struct pst_auth_opts o = {.resolver = r, .authserv_id = "mx.test"};
    struct pst_auth_in in = {.ip = "192.0.2.1", .mailfrom = "a@rej.test"};
    struct pst_auth *a = NULL;
    assert_int_equal(pst_auth_start(&o, &in, hdr, strlen(hdr), &a), 0);
    assert_int_equal(pst_auth_finish(a), 0);
    size_t n = 0;
    const struct pst_dkim_verdict *v = pst_auth_dkim(a, &n, NULL);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].result, PST_DKIM_PERMERROR);
    assert_int_equal(pst_auth_dmarc(a)->result, PST_DMARC_RESULT_PERMERROR);
    assert_int_equal(pst_auth_disposition(a), PST_AUTH_DELIVER);
    pst_auth_free(a);
    pst_resolver_free(r);
}

static void bad_arguments(void **state)
{
    (void)state;
    struct pst_resolver *r = zone();
    struct pst_auth *a = NULL;
    struct pst_auth_opts o = {.resolver = r, .authserv_id = "mx.test"};
    struct pst_auth_in in = {.ip = NULL, .mailfrom = ""};
    assert_int_equal(pst_auth_start(&o, &in, "", 0, &a), PST_ERR_INVAL);
    o.resolver = NULL;
    in.ip = "192.0.2.1";
    assert_int_equal(pst_auth_start(&o, &in, "", 0, &a), PST_ERR_INVAL);
    /* checks left out give no results */
    o.resolver = r;
    o.no_spf = o.no_dmarc = 1;
    in.mailfrom = "a@rej.test";
    assert_int_equal(pst_auth_start(&o, &in, "From: a@rej.test\r\n", 18, &a), 0);
    assert_int_equal(pst_auth_finish(a), 0);
    assert_null(pst_auth_spf(a));
    assert_null(pst_auth_dmarc(a));
    pst_auth_free(a);
    pst_auth_free(NULL);
    pst_resolver_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dispositions),
        cmocka_unit_test(header_and_summary),
        cmocka_unit_test(header_that_does_not_split),
        cmocka_unit_test(bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
