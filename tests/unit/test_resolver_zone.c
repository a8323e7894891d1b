/*
 * test_resolver_zone.c - the master-file resolver (lib/io/resolver_zone.c)
 * through the public dns.h calls: every type, NXDOMAIN against NODATA
 * (empty non-terminals included), wildcards, CNAME chains, loops and long
 * chains, simulated SERVFAIL and timeouts (markers and the API), oversize
 * answers, zone files with errors refused with their line, the query
 * budget, and the asynchronous fd/process cycle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dns.h"
#include "err.h"
#include "resolver.h"

static const char zone_text[] =
    "$ORIGIN example.test.\n"
    "$TTL 300\n"
    "@        IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
    "@        IN NS  ns1\n"
    "ns1      IN A   192.0.2.53\n"
    "@        IN MX  20 mx2\n"
    "@     60 IN MX  10 MX1\n"
    "@        IN MX  10 mx0\n"
    "www      IN A   192.0.2.1\n"
    "www      IN A   192.0.2.2\n"
    "www      IN AAAA 2001:db8::1\n"
    "spf      IN TXT \"v=spf1 \" \"ip4:192.0.2.0/24\" \" -all\"\n"
    "odd      IN TXT \"a\\000b\\\\c\\\"d\\255\" \"\"\n"
    "two      IN TXT \"one\"\n"
    "two      IN TXT \"two\"\n"
    "_25._tcp.mx1 IN TLSA 3 1 1 ABCDEF0123456789\n"
    "alias    IN CNAME www\n"
    "alias2 100 IN CNAME alias\n"
    "dangling IN CNAME nothere\n"
    "outside  IN CNAME www.elsewhere.test.\n"
    "loop1    IN CNAME loop2\n"
    "loop2    IN CNAME loop1\n"
    "self     IN CNAME self\n"
    "a.b.ent  IN A   192.0.2.5\n"
    "*.wild   IN TXT \"wildcard\"\n"
    "*.wild   IN CNAME www\n"
    "*.wcn    IN CNAME www\n"
    "exists.wild IN A 192.0.2.6\n"
    "sf       IN TXT \"postern-test=servfail\"\n"
    "slow     IN TXT \"postern-test=timeout\"\n"
    "viafail  IN CNAME sf\n"
    "c1 IN CNAME c2\nc2 IN CNAME c3\nc3 IN CNAME c4\nc4 IN CNAME c5\nc5 IN CNAME c6\n"
    "c6 IN CNAME c7\nc7 IN CNAME c8\nc8 IN CNAME c9\nc9 IN CNAME www\n"
    "d2 IN CNAME c3\n"
    "1.2.0.192.in-addr.arpa. 3600 IN PTR www.example.test.\n";

struct zcase {
    const char *qname;
    uint16_t type;
    enum pst_dns_status status;
    enum pst_dns_notfound nf;
    uint32_t ttl;
    const char *canonical;
    const char *records; /* rendered, joined with " | " */
    const char *reason;  /* substring, or NULL for none */
};

static const struct zcase zcases[] = {
    {"www.example.test", PST_DNS_A, PST_DNS_OK, 0, 300, "www.example.test.",
     "192.0.2.1 | 192.0.2.2", NULL},
    {"WWW.Example.Test.", PST_DNS_AAAA, PST_DNS_OK, 0, 300, "www.example.test.", "2001:db8::1",
     NULL},
    {"example.test", PST_DNS_MX, PST_DNS_OK, 0, 60, "example.test.",
     "10 mx0.example.test. | 10 mx1.example.test. | 20 mx2.example.test.", NULL},
    {"spf.example.test", PST_DNS_TXT, PST_DNS_OK, 0, 300, "spf.example.test.",
     "\"v=spf1 ip4:192.0.2.0/24 -all\"", NULL},
    {"odd.example.test", PST_DNS_TXT, PST_DNS_OK, 0, 300, "odd.example.test.",
     "\"a\\000b\\092c\\034d\\255\"", NULL},
    {"two.example.test", PST_DNS_TXT, PST_DNS_OK, 0, 300, "two.example.test.", "\"one\" | \"two\"",
     NULL},
    {"_25._tcp.mx1.example.test", PST_DNS_TLSA, PST_DNS_OK, 0, 300, "_25._tcp.mx1.example.test.",
     "3 1 1 abcdef0123456789", NULL},
    {"1.2.0.192.in-addr.arpa", PST_DNS_PTR, PST_DNS_OK, 0, 3600, "1.2.0.192.in-addr.arpa.",
     "www.example.test.", NULL},
    /* CNAMEs: followed, TTL the smallest of the chain */
    {"alias.example.test", PST_DNS_A, PST_DNS_OK, 0, 300, "www.example.test.",
     "192.0.2.1 | 192.0.2.2", NULL},
    {"alias2.example.test", PST_DNS_AAAA, PST_DNS_OK, 0, 100, "www.example.test.", "2001:db8::1",
     NULL},
    {"alias2.example.test", PST_DNS_CNAME, PST_DNS_OK, 0, 100, "alias2.example.test.",
     "alias.example.test.", NULL},
    {"alias2.example.test", PST_DNS_TXT, PST_DNS_NOTFOUND, PST_DNS_NODATA, 60, "www.example.test.",
     "", NULL},
    {"dangling.example.test", PST_DNS_A, PST_DNS_NOTFOUND, PST_DNS_NXDOMAIN, 60,
     "nothere.example.test.", "", NULL},
    {"outside.example.test", PST_DNS_A, PST_DNS_NOTFOUND, PST_DNS_NXDOMAIN, 60,
     "www.elsewhere.test.", "", NULL},
    {"c1.example.test", PST_DNS_A, PST_DNS_FAIL, 0, 0, "c1.example.test.", "",
     "CNAME chain longer than 8: c1.example.test. -> c2.example.test."},
    {"d2.example.test", PST_DNS_A, PST_DNS_OK, 0, 300, "www.example.test.", "192.0.2.1 | 192.0.2.2",
     NULL},
    {"loop1.example.test", PST_DNS_A, PST_DNS_FAIL, 0, 0, "loop1.example.test.", "",
     "CNAME loop: loop1.example.test. -> loop2.example.test. -> loop1.example.test."},
    {"loop2.example.test", PST_DNS_MX, PST_DNS_FAIL, 0, 0, "loop2.example.test.", "",
     "CNAME loop: loop2.example.test. -> loop1.example.test. -> loop2.example.test."},
    {"self.example.test", PST_DNS_TXT, PST_DNS_FAIL, 0, 0, "self.example.test.", "",
     "CNAME loop: self.example.test. -> self.example.test."},
    {"loop1.example.test", PST_DNS_CNAME, PST_DNS_OK, 0, 300, "loop1.example.test.",
     "loop2.example.test.", NULL},
    /* NXDOMAIN against NODATA */
    {"nothing.example.test", PST_DNS_A, PST_DNS_NOTFOUND, PST_DNS_NXDOMAIN, 60,
     "nothing.example.test.", "", NULL},
    {"www.example.test", PST_DNS_TXT, PST_DNS_NOTFOUND, PST_DNS_NODATA, 60, "www.example.test.", "",
     NULL},
    {"example.test", PST_DNS_A, PST_DNS_NOTFOUND, PST_DNS_NODATA, 60, "example.test.", "", NULL},
    {"b.ent.example.test", PST_DNS_A, PST_DNS_NOTFOUND, PST_DNS_NODATA, 60, "b.ent.example.test.",
     "", NULL},
    {"ent.example.test", PST_DNS_TXT, PST_DNS_NOTFOUND, PST_DNS_NODATA, 60, "ent.example.test.", "",
     NULL},
    {"x.a.b.ent.example.test", PST_DNS_A, PST_DNS_NOTFOUND, PST_DNS_NXDOMAIN, 60,
     "x.a.b.ent.example.test.", "", NULL},
    {"other.test", PST_DNS_A, PST_DNS_NOTFOUND, PST_DNS_NXDOMAIN, 60, "other.test.", "", NULL},
    /* wildcards (RFC 4592) */
    {"x.wild.example.test", PST_DNS_TXT, PST_DNS_OK, 0, 300, "x.wild.example.test.", "\"wildcard\"",
     NULL},
    {"a.b.wild.example.test", PST_DNS_TXT, PST_DNS_OK, 0, 300, "a.b.wild.example.test.",
     "\"wildcard\"", NULL},
    {"x.wcn.example.test", PST_DNS_A, PST_DNS_OK, 0, 300, "www.example.test.",
     "192.0.2.1 | 192.0.2.2", NULL},
    {"x.wild.example.test", PST_DNS_MX, PST_DNS_NOTFOUND, PST_DNS_NODATA, 60, "www.example.test.",
     "", NULL},
    {"exists.wild.example.test", PST_DNS_TXT, PST_DNS_NOTFOUND, PST_DNS_NODATA, 60,
     "exists.wild.example.test.", "", NULL},
    {"wild.example.test", PST_DNS_TXT, PST_DNS_NOTFOUND, PST_DNS_NODATA, 60, "wild.example.test.",
     "", NULL},
    {"x.exists.wild.example.test", PST_DNS_TXT, PST_DNS_NOTFOUND, PST_DNS_NXDOMAIN, 60,
     "x.exists.wild.example.test.", "", NULL},
    /* simulated failures */
    {"sf.example.test", PST_DNS_A, PST_DNS_RETRY, 0, 0, "sf.example.test.", "",
     "SERVFAIL (simulated)"},
    {"sf.example.test", PST_DNS_TXT, PST_DNS_RETRY, 0, 0, "sf.example.test.", "",
     "SERVFAIL (simulated)"},
    {"slow.example.test", PST_DNS_MX, PST_DNS_RETRY, 0, 0, "slow.example.test.", "",
     "timed out (simulated)"},
    {"viafail.example.test", PST_DNS_A, PST_DNS_RETRY, 0, 0, "viafail.example.test.", "",
     "SERVFAIL (simulated) at sf.example.test."},
};

/* Records of an answer, rendered and joined with " | ". */
static void render(const struct pst_dns_answer *a, char *out, size_t outlen)
{
    struct pst_buf *b = pst_buf_new(1 << 20);
    char ip[64];

    assert_non_null(b);
    for (size_t i = 0; i < a->nrrs; i++) {
        const struct pst_dns_rr *rr = &a->rrs[i];
        if (i > 0)
            pst_buf_addstr(b, " | ");
        switch (rr->type) {
        case PST_DNS_A:
        case PST_DNS_AAAA:
            inet_ntop(rr->type == PST_DNS_A ? AF_INET : AF_INET6, rr->addr, ip, sizeof ip);
            pst_buf_addstr(b, ip);
            break;
        case PST_DNS_TXT:
            pst_buf_addc(b, '"');
            pst_dns_text_escape(b, rr->data, rr->len, 1);
            pst_buf_addc(b, '"');
            break;
        case PST_DNS_MX:
            pst_buf_addf(b, "%u %s", rr->preference, rr->name);
            break;
        case PST_DNS_TLSA:
            pst_buf_addf(b, "%u %u %u ", rr->usage, rr->selector, rr->mtype);
            for (size_t j = 0; j < rr->len; j++)
                pst_buf_addf(b, "%02x", rr->data[j]);
            break;
        default:
            pst_buf_addstr(b, rr->name);
        }
    }
    snprintf(out, outlen, "%s", pst_buf_data(b));
    pst_buf_free(b);
}

static struct pst_resolver *load(const char *text)
{
    struct pst_resolver *r = NULL;
    char err[256] = "";
    int rc = pst_resolver_zone_from_text(text, strlen(text), &r, err, sizeof err);

    if (rc != 0)
        fail_msg("zone refused: %s", err);
    return r;
}

/* 0 when a matches c, else prints got and want. */
static int check(const struct zcase *c, const struct pst_dns_answer *a)
{
    char got[4096];
    const char *nf = pst_dns_notfound_name(c->nf);

    render(a, got, sizeof got);
    int ok = a->status == c->status && a->notfound == c->nf && a->ttl == c->ttl &&
             strcmp(a->canonical, c->canonical) == 0 && strcmp(got, c->records) == 0 &&
             (c->reason == NULL ? a->reason == NULL
                                : a->reason != NULL && strstr(a->reason, c->reason) != NULL);
    if (ok)
        return 0;
    print_error("%s %s:\n  got  %s %s ttl=%u canonical=%s [%s] reason=%s\n"
                "  want %s %s ttl=%u canonical=%s [%s] reason=%s\n",
                c->qname, pst_dns_type_name(c->type), pst_dns_status_name(a->status),
                pst_dns_notfound_name(a->notfound) ? pst_dns_notfound_name(a->notfound) : "-",
                (unsigned)a->ttl, a->canonical, got, a->reason ? a->reason : "(none)",
                pst_dns_status_name(c->status), nf != NULL ? nf : "-", (unsigned)c->ttl,
                c->canonical, c->records, c->reason ? c->reason : "(none)");
    return 1;
}

static void test_zone_table(void **state)
{
    struct pst_resolver *r = load(zone_text);
    size_t n = sizeof zcases / sizeof zcases[0];
    int bad = 0;

    for (size_t i = 0; i < n; i++) {
        struct pst_dns_answer *a = NULL;
        int rc = pst_dns_query(r, NULL, zcases[i].qname, zcases[i].type, &a);
        if (rc != 0) {
            print_error("%s: rc %d\n", zcases[i].qname, rc);
            bad++;
            continue;
        }
        assert_int_equal(a->dnssec, PST_DNS_INSECURE);
        bad += check(&zcases[i], a);
        pst_dns_answer_free(a);
    }
    print_message("%zu zone cases, %d failed\n", n, bad);
    pst_resolver_free(r);
    assert_int_equal(bad, 0);
}

/* ---- loading ------------------------------------------------------------ */

struct bad_zone {
    const char *name;
    const char *text;
    const char *want; /* err starts with it */
};

static const struct bad_zone bad_zones[] = {
    {"bad rdata line 4", "$ORIGIN t.\n$TTL 60\nwww A 192.0.2.1\nfoo A 192.0.2.400\n", "(text):4: "},
    {"MX without exchange", "$ORIGIN t.\n\n\n; comment\n\nmx MX 10\nx A 192.0.2.1\n", "(text):6: "},
    {"unknown type", "a.t. 60 IN BOGUS 1\n", "(text):1: "},
    {"A without address", "$TTL 60\na.t. A 192.0.2.1\nb.t. A\n", "(text):3: "},
    {"second SOA", "a.t. SOA ns h 1 2 3 4 5\nw.a.t. A 192.0.2.1\nb.t. SOA ns h 1 2 3 4 5\n",
     "(text):3: a second SOA record (one zone per file)"},
    {"TXT string over 255", NULL, "(text):2: "},
    {"include", "$ORIGIN t.\n$INCLUDE /etc/passwd\n", "(text):2: "},
};

static void test_zone_errors(void **state)
{
    int bad = 0;
    char long_txt[400];

    snprintf(long_txt, sizeof long_txt, "$ORIGIN t.\nx TXT \"%0300d\"\n", 0);
    for (size_t i = 0; i < sizeof bad_zones / sizeof bad_zones[0]; i++) {
        const char *text = bad_zones[i].text != NULL ? bad_zones[i].text : long_txt;
        struct pst_resolver *r = NULL;
        char err[256] = "";
        int rc = pst_resolver_zone_from_text(text, strlen(text), &r, err, sizeof err);
        if (rc != PST_ERR_SYNTAX || r != NULL ||
            strncmp(err, bad_zones[i].want, strlen(bad_zones[i].want)) != 0 ||
            err[strlen(err) - 1] == ' ') {
            print_error("%s:\n  got  rc %d \"%s\"\n  want rc %d \"%s...\"\n", bad_zones[i].name, rc,
                        err, PST_ERR_SYNTAX, bad_zones[i].want);
            bad++;
        }
        pst_resolver_free(r);
    }
    assert_int_equal(bad, 0);
}

static void test_zone_file(void **state)
{
    char path[] = "/tmp/pst_test_zone_XXXXXX";
    char err[512] = "";
    struct pst_resolver *r = NULL;
    struct pst_dns_answer *a = NULL;
    int fd = mkstemp(path);
    const char bad[] = "$ORIGIN t.\nwww A 192.0.2.1\n\nmail MX 10\n";

    assert_true(fd >= 0);
    assert_int_equal(write(fd, zone_text, strlen(zone_text)), (ssize_t)strlen(zone_text));
    close(fd);
    assert_int_equal(pst_resolver_zone_open(path, &r, err, sizeof err), 0);
    assert_int_equal(pst_dns_query(r, NULL, "alias.example.test", PST_DNS_A, &a), 0);
    assert_int_equal(a->nrrs, 2);
    pst_dns_answer_free(a);
    pst_resolver_free(r);
    r = NULL;

    /* the error names the file and the line */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    close(fd);
    assert_int_equal(pst_resolver_zone_open(path, &r, err, sizeof err), PST_ERR_SYNTAX);
    assert_null(r);
    char want[128];
    snprintf(want, sizeof want, "%s:4: ", path);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got \"%s\", want \"%s...\"", err, want);
    unlink(path);

    assert_int_equal(pst_resolver_zone_open(path, &r, err, sizeof err), PST_ERR_IO);
    assert_null(r);
    assert_non_null(strstr(err, "cannot open: No such file or directory"));
    assert_int_equal(pst_resolver_zone_open(NULL, &r, err, sizeof err), PST_ERR_INVAL);
}

/* An empty file is a DNS where nothing exists; without an SOA the
 * negative TTL is 0. Relative names without $ORIGIN hang off the root. */
static void test_zone_small(void **state)
{
    struct pst_resolver *r = NULL;
    struct pst_dns_answer *a = NULL;
    char err[256];

    assert_int_equal(pst_resolver_zone_from_text("", 0, &r, err, sizeof err), 0);
    assert_int_equal(pst_dns_query(r, NULL, "x.test", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_NOTFOUND);
    assert_int_equal(a->notfound, PST_DNS_NXDOMAIN);
    assert_int_equal(a->ttl, 0);
    pst_dns_answer_free(a);
    pst_resolver_free(r);

    const char *t = "host 30 IN A 192.0.2.7\n";
    assert_int_equal(pst_resolver_zone_from_text(t, strlen(t), &r, err, sizeof err), 0);
    assert_int_equal(pst_dns_query(r, NULL, "host.", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_OK);
    assert_int_equal(a->ttl, 30);
    pst_dns_answer_free(a);
    pst_resolver_free(r);
}

/* ---- limits ------------------------------------------------------------- */

static void test_zone_oversize(void **state)
{
    struct pst_buf *b = pst_buf_new(8 << 20);
    struct pst_resolver *r = NULL;
    struct pst_dns_answer *a = NULL;
    char err[256];

    assert_non_null(b);
    pst_buf_addstr(b, "$ORIGIN t.\n$TTL 60\n");
    for (int i = 0; i < PST_DNS_MAX_RECORDS; i++)
        pst_buf_addf(b, "ok A 10.0.%d.%d\nmany A 10.0.%d.%d\n", i / 256, i % 256, i / 256, i % 256);
    pst_buf_addstr(b, "many A 10.1.0.0\n");
    /* 40 TXT records of 2000 octets each: 80000 > 65535 */
    for (int i = 0; i < 40; i++) {
        pst_buf_addf(b, "big TXT");
        for (int s = 0; s < 8; s++)
            pst_buf_addf(b, " \"%02d%0248d\"", i, s);
        pst_buf_addstr(b, "\n");
    }
    assert_int_equal(
        pst_resolver_zone_from_text(pst_buf_data(b), pst_buf_len(b), &r, err, sizeof err), 0);
    assert_int_equal(pst_dns_query(r, NULL, "ok.t", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_OK);
    assert_int_equal(a->nrrs, PST_DNS_MAX_RECORDS);
    pst_dns_answer_free(a);
    assert_int_equal(pst_dns_query(r, NULL, "many.t", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_FAIL);
    assert_string_equal(a->reason, "oversize answer: more than 128 A records");
    assert_int_equal(a->nrrs, 0);
    pst_dns_answer_free(a);
    assert_int_equal(pst_dns_query(r, NULL, "big.t", PST_DNS_TXT, &a), 0);
    assert_int_equal(a->status, PST_DNS_FAIL);
    assert_string_equal(a->reason, "oversize answer: more than 65535 octets of TXT data");
    pst_dns_answer_free(a);
    pst_resolver_free(r);

    /* more records than a zone may hold */
    pst_buf_reset(b);
    for (int i = 0; i <= PST_ZONE_MAX_RECORDS; i++)
        assert_int_equal(pst_buf_addf(b, "h%d.t. 1 A 10.0.0.1\n", i), 0);
    r = NULL;
    assert_int_equal(
        pst_resolver_zone_from_text(pst_buf_data(b), pst_buf_len(b), &r, err, sizeof err),
        PST_ERR_TOOBIG);
    assert_null(r);
    assert_string_equal(err, "(text): more than 100000 records");
    pst_buf_free(b);
}

/* ---- simulated failures through the API ---------------------------------- */

static int fake_query(struct pst_resolver *r, const char *name, uint16_t type, unsigned timeout_ms,
                      struct pst_dns_answer **out)
{
    return PST_ERR_INVAL;
}

static void fake_free(struct pst_resolver *r)
{
}

static void test_zone_fail_api(void **state)
{
    struct pst_resolver *r = load(zone_text);
    struct pst_dns_answer *a = NULL;

    assert_int_equal(pst_resolver_zone_fail(r, "WWW.example.test", PST_DNS_RETRY, NULL), 0);
    assert_int_equal(pst_resolver_zone_fail(r, "mx1.example.test", PST_DNS_FAIL, NULL), 0);
    assert_int_equal(
        pst_resolver_zone_fail(r, "spf.example.test", PST_DNS_RETRY, "timed out after 5 s"), 0);
    assert_int_equal(pst_resolver_zone_fail(r, "x.test", PST_DNS_OK, NULL), PST_ERR_INVAL);
    assert_int_equal(pst_resolver_zone_fail(r, "x.test", PST_DNS_NOTFOUND, NULL), PST_ERR_INVAL);
    assert_int_equal(pst_resolver_zone_fail(r, "a..b", PST_DNS_RETRY, NULL), PST_ERR_SYNTAX);
    struct pst_resolver fake = {.kind = "fake", .query = fake_query, .free = fake_free};
    assert_int_equal(pst_resolver_zone_fail(&fake, "x.test", PST_DNS_RETRY, NULL), PST_ERR_INVAL);
    assert_int_equal(pst_resolver_zone_fail(NULL, "x.test", PST_DNS_RETRY, NULL), PST_ERR_INVAL);

    static const struct zcase cases[] = {
        {"www.example.test", PST_DNS_A, PST_DNS_RETRY, 0, 0, "www.example.test.", "",
         "SERVFAIL (simulated)"},
        {"www.example.test", PST_DNS_TXT, PST_DNS_RETRY, 0, 0, "www.example.test.", "",
         "SERVFAIL (simulated)"},
        {"alias.example.test", PST_DNS_A, PST_DNS_RETRY, 0, 0, "alias.example.test.", "",
         "SERVFAIL (simulated) at www.example.test."},
        {"alias.example.test", PST_DNS_CNAME, PST_DNS_OK, 0, 300, "alias.example.test.",
         "www.example.test.", NULL},
        {"mx1.example.test", PST_DNS_A, PST_DNS_FAIL, 0, 0, "mx1.example.test.", "",
         "failure (simulated)"},
        {"spf.example.test", PST_DNS_TXT, PST_DNS_RETRY, 0, 0, "spf.example.test.", "",
         "timed out after 5 s"},
        {"example.test", PST_DNS_MX, PST_DNS_OK, 0, 60, "example.test.",
         "10 mx0.example.test. | 10 mx1.example.test. | 20 mx2.example.test.", NULL},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(pst_dns_query(r, NULL, cases[i].qname, cases[i].type, &a), 0);
        bad += check(&cases[i], a);
        pst_dns_answer_free(a);
    }
    pst_resolver_free(r);
    assert_int_equal(bad, 0);
}

/* ---- the budget --------------------------------------------------------- */

static void test_zone_budget(void **state)
{
    struct pst_resolver *r = load(zone_text);
    struct pst_dns_budget b = {.max_queries = 2};
    struct pst_dns_answer *a = NULL;

    assert_int_equal(pst_dns_query(r, &b, "www.example.test", PST_DNS_A, &a), 0);
    pst_dns_answer_free(a);
    /* a CNAME chain is one query, whatever its length */
    assert_int_equal(pst_dns_query(r, &b, "d2.example.test", PST_DNS_A, &a), 0);
    assert_int_equal(a->status, PST_DNS_OK);
    pst_dns_answer_free(a);
    a = NULL;
    assert_int_equal(pst_dns_query(r, &b, "www.example.test", PST_DNS_A, &a), PST_ERR_TOOBIG);
    assert_null(a);
    assert_int_equal(pst_dns_query_async(r, &b, "www.example.test", PST_DNS_A, NULL, NULL, NULL),
                     PST_ERR_TOOBIG);
    assert_int_equal(b.used, 2);
    pst_resolver_free(r);
}

/* ---- asynchronous ------------------------------------------------------- */

struct got {
    int calls;
    char last[PST_DNS_NAME_TEXT_MAX];
    enum pst_dns_status status;
    struct pst_resolver *r; /* to queue another query from a callback */
    int requeue;
};

static void done(void *arg, struct pst_dns_answer *a)
{
    struct got *g = arg;
    g->calls++;
    snprintf(g->last, sizeof g->last, "%s", a->name);
    g->status = a->status;
    pst_dns_answer_free(a);
    if (g->requeue > 0) {
        unsigned id;
        g->requeue--;
        assert_int_equal(
            pst_dns_query_async(g->r, NULL, "alias.example.test", PST_DNS_A, done, g, &id), 0);
    }
}

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static void test_zone_async(void **state)
{
    struct pst_resolver *r = load(zone_text);
    struct got g = {.r = r};
    unsigned id1 = 0, id2 = 0, id3 = 0;
    int fd = pst_dns_fd(r);

    assert_true(fd >= 0);
    assert_false(readable(fd));
    assert_int_equal(pst_dns_query_async(r, NULL, "www.example.test", PST_DNS_A, done, &g, &id1),
                     0);
    assert_int_equal(pst_dns_query_async(r, NULL, "sf.example.test", PST_DNS_A, done, &g, &id2), 0);
    assert_int_equal(pst_dns_query_async(r, NULL, "x.test", PST_DNS_A, done, &g, &id3), 0);
    assert_true(id1 != id2 && id2 != id3 && id1 != 0);
    assert_int_equal(g.calls, 0); /* never from inside query_async */
    assert_true(readable(fd));
    assert_int_equal(pst_dns_cancel(r, id3), 0);
    assert_int_equal(pst_dns_cancel(r, id3), PST_ERR_NOTFOUND);
    assert_int_equal(pst_dns_process(r), 0);
    assert_int_equal(g.calls, 2);
    assert_string_equal(g.last, "sf.example.test.");
    assert_int_equal(g.status, PST_DNS_RETRY);
    assert_false(readable(fd));
    assert_int_equal(pst_dns_cancel(r, id1), PST_ERR_NOTFOUND);

    /* a callback queueing more: delivered by the next round */
    g.requeue = 2;
    assert_int_equal(pst_dns_query_async(r, NULL, "www.example.test", PST_DNS_A, done, &g, &id1),
                     0);
    assert_int_equal(pst_dns_process(r), 0);
    assert_int_equal(g.calls, 3);
    assert_true(readable(fd));
    assert_int_equal(pst_dns_process(r), 0);
    assert_int_equal(g.calls, 4);
    assert_string_equal(g.last, "alias.example.test.");
    /* freeing with one pending: no callback, no leak */
    pst_resolver_free(r);
    assert_int_equal(g.calls, 4);

    /* bad arguments */
    r = load(zone_text);
    assert_int_equal(pst_dns_query_async(r, NULL, "a..b", PST_DNS_A, done, &g, &id1),
                     PST_ERR_SYNTAX);
    assert_int_equal(pst_dns_query_async(r, NULL, "a.b", PST_DNS_A, NULL, &g, &id1), PST_ERR_INVAL);
    pst_resolver_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zone_table),    cmocka_unit_test(test_zone_errors),
        cmocka_unit_test(test_zone_file),     cmocka_unit_test(test_zone_small),
        cmocka_unit_test(test_zone_oversize), cmocka_unit_test(test_zone_fail_api),
        cmocka_unit_test(test_zone_budget),   cmocka_unit_test(test_zone_async),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
