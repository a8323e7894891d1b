/*
 * test_spf.c - SPF (lib/core/spf, RFC 7208), hermetic: DNS comes from a
 * zone resolver over zone text written here.
 *
 *  - macros: the RFC 7208 7.4 examples exactly (IPv4 and IPv6), URL
 *    escaping, delimiters, %% %_ %-, truncation to 253 octets, bounds;
 *  - record syntax: every mechanism, dual CIDR, modifiers, errors;
 *  - check_host: every mechanism and qualifier, CIDR, IPv4-mapped
 *    clients, include/redirect/exp, include loops, the 10-term, void, MX
 *    and PTR limits, the query budget, temperror from simulated SERVFAIL
 *    and timeouts, permerror cases, HELO and the null sender.
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
#include "spf.h"

/* ---- macros ------------------------------------------------------------- */

static int p_mx(void *arg, const char **text)
{
    (void)arg;
    *text = "mx.example.org";
    return 0;
}

static const struct pst_spf_macro_env env4 = {
    .s = "strong-bad@email.example.com",
    .l = "strong-bad",
    .o = "email.example.com",
    .d = "email.example.com",
    .i = "192.0.2.3",
    .h = "mx.example.org",
    .c = "192.0.2.3",
    .r = "receiver.example.net",
    .t = "1700000000",
    .v = "in-addr",
    .p = p_mx,
};

static const struct pst_spf_macro_env env6 = {
    .s = "strong-bad@email.example.com",
    .l = "strong-bad",
    .o = "email.example.com",
    .d = "email.example.com",
    .i = "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1",
    .h = "mx.example.org",
    .c = "2001:db8::cb01",
    .r = "receiver.example.net",
    .t = "1700000000",
    .v = "ip6",
    .p = p_mx,
};

struct macro_case {
    const char *in;
    int exp; /* explanation kind */
    int v6;
    int want_rc;
    const char *want;
};

static const struct macro_case macro_cases[] = {
    /* RFC 7208 7.4, exactly */
    {"%{s}", 0, 0, 0, "strong-bad@email.example.com"},
    {"%{o}", 0, 0, 0, "email.example.com"},
    {"%{d}", 0, 0, 0, "email.example.com"},
    {"%{d4}", 0, 0, 0, "email.example.com"},
    {"%{d3}", 0, 0, 0, "email.example.com"},
    {"%{d2}", 0, 0, 0, "example.com"},
    {"%{d1}", 0, 0, 0, "com"},
    {"%{dr}", 0, 0, 0, "com.example.email"},
    {"%{d2r}", 0, 0, 0, "example.email"},
    {"%{l}", 0, 0, 0, "strong-bad"},
    {"%{l-}", 0, 0, 0, "strong.bad"},
    {"%{lr}", 0, 0, 0, "strong-bad"},
    {"%{lr-}", 0, 0, 0, "bad.strong"},
    {"%{l1r-}", 0, 0, 0, "strong"},
    {"%{ir}.%{v}._spf.%{d2}", 0, 0, 0, "3.2.0.192.in-addr._spf.example.com"},
    {"%{lr-}.lp._spf.%{d2}", 0, 0, 0, "bad.strong.lp._spf.example.com"},
    {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", 0, 0, 0,
     "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
    {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", 0, 0, 0, "3.2.0.192.in-addr.strong.lp._spf.example.com"},
    {"%{d2}.trusted-domains.example.net", 0, 0, 0, "example.com.trusted-domains.example.net"},
    {"%{ir}.%{v}._spf.%{d2}", 0, 1, 0,
     "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"},
    /* the other letters and forms */
    {"%{p}", 0, 0, 0, "mx.example.org"},
    {"%{p2}", 0, 0, 0, "example.org"},
    {"%{h}", 0, 0, 0, "mx.example.org"},
    {"%{v}", 0, 1, 0, "ip6"},
    {"%{c}", 1, 1, 0, "2001:db8::cb01"},
    {"%{c} %{r} %{t}", 1, 0, 0, "192.0.2.3 receiver.example.net 1700000000"},
    {"%{S}", 0, 0, 0, "strong-bad%40email.example.com"},
    {"%{L}", 0, 0, 0, "strong-bad"},
    {"%{D2R}", 0, 0, 0, "example.email"},
    {"%% %_ %-", 1, 0, 0, "%   %20"},
    {"a%%b.example.com", 0, 0, 0, "a%b.example.com"},
    {"%{s1@}", 0, 0, PST_ERR_SYNTAX, NULL}, /* '@' is no delimiter */
    {"%{l+-=,/_}", 0, 0, 0, "strong.bad"},
    {"%{d}.", 0, 0, 0, "email.example.com"}, /* trailing dot dropped */
    {"%{d}.", 1, 0, 0, "email.example.com."},
    {"%{d999}", 0, 0, 0, "email.example.com"},
    /* errors */
    {"%{x}", 0, 0, PST_ERR_SYNTAX, NULL},
    {"%{c}", 0, 0, PST_ERR_SYNTAX, NULL}, /* RFC 7208 7.2: exp only */
    {"%{r}.example.com", 0, 0, PST_ERR_SYNTAX, NULL},
    {"%{t}", 0, 0, PST_ERR_SYNTAX, NULL},
    {"%{d0}", 0, 0, PST_ERR_SYNTAX, NULL},
    {"%{d1234}", 0, 0, PST_ERR_SYNTAX, NULL},
    {"%{d", 0, 0, PST_ERR_SYNTAX, NULL},
    {"%", 0, 0, PST_ERR_SYNTAX, NULL},
    {"%x", 0, 0, PST_ERR_SYNTAX, NULL},
    {"%{dr2}", 0, 0, PST_ERR_SYNTAX, NULL},
    {"a b", 0, 0, PST_ERR_SYNTAX, NULL},
    {"a\tb", 1, 0, PST_ERR_SYNTAX, NULL},
    {"caf\xc3\xa9", 1, 0, PST_ERR_SYNTAX, NULL},
};

static void test_macros(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t k = 0; k < sizeof macro_cases / sizeof macro_cases[0]; k++) {
        const struct macro_case *c = &macro_cases[k];
        char *out = NULL, why[PST_SPF_REASON_MAX] = "";
        int rc = pst_spf_macro_expand(c->in, strlen(c->in),
                                      c->exp ? PST_SPF_MACRO_EXP : PST_SPF_MACRO_DOMAIN,
                                      c->v6 ? &env6 : &env4, &out, why, sizeof why);
        if (rc != c->want_rc || (rc == 0 && strcmp(out, c->want) != 0) ||
            (rc != 0 && why[0] == '\0')) {
            print_error("macro %s: got rc %d \"%s\" (%s) want rc %d \"%s\"\n", c->in, rc,
                        out != NULL ? out : "", why, c->want_rc, c->want ? c->want : "");
            bad++;
        }
        free(out);
    }
    assert_int_equal(bad, 0);
}

/* RFC 7208 7.3: truncation to 253 by whole labels; bounded expansion. */
static void test_macro_bounds(void **state)
{
    (void)state;
    char in[PST_SPF_MACRO_IN_MAX + 2];
    char *out = NULL, why[PST_SPF_REASON_MAX];
    struct pst_spf_macro_env e = env4;
    char longd[300];

    /* 20 labels of 14 octets: 299 octets, cut to the last 16 labels */
    longd[0] = '\0';
    for (int k = 0; k < 20; k++)
        strncat(longd, k == 0 ? "abcdefghijklmn" : ".abcdefghijklmn", sizeof longd - 1);
    e.d = longd;
    assert_int_equal(
        pst_spf_macro_expand("%{d}", 4, PST_SPF_MACRO_DOMAIN, &e, &out, why, sizeof why), 0);
    assert_true(strlen(out) <= 253);
    assert_int_equal(strlen(out), 15 * 15 + 14);
    assert_int_equal(out[0], 'a');
    free(out);

    /* a macro bomb: as many %{S} as fit, each escaped three times over */
    for (size_t k = 0; k + 4 <= PST_SPF_MACRO_IN_MAX; k += 4)
        memcpy(in + k, "%{S}", 4);
    char plus[301];
    memset(plus, '+', 300);
    plus[300] = '\0';
    e = env4;
    e.s = plus;
    int rc = pst_spf_macro_expand(in, PST_SPF_MACRO_IN_MAX, PST_SPF_MACRO_DOMAIN, &e, &out, why,
                                  sizeof why);
    assert_int_equal(rc, PST_ERR_TOOBIG);
    assert_non_null(strstr(why, "expansion over"));

    /* over the input cap */
    memset(in, 'a', sizeof in);
    rc = pst_spf_macro_expand(in, PST_SPF_MACRO_IN_MAX + 1, PST_SPF_MACRO_DOMAIN, &e, &out, why,
                              sizeof why);
    assert_int_equal(rc, PST_ERR_TOOBIG);

    /* a single label over 253 cannot be cut */
    memset(in, 'a', 300);
    rc = pst_spf_macro_expand(in, 300, PST_SPF_MACRO_DOMAIN, &e, &out, why, sizeof why);
    assert_int_equal(rc, PST_ERR_TOOBIG);

    /* an explanation over PST_SPF_EXP_MAX */
    rc = pst_spf_macro_expand(in, 60 * 4, PST_SPF_MACRO_EXP, &e, &out, why, sizeof why);
    assert_int_equal(rc, 0);
    free(out);
    for (size_t k = 0; k + 4 <= 40 * 4; k += 4)
        memcpy(in + k, "%{s}", 4);
    rc = pst_spf_macro_expand(in, 40 * 4, PST_SPF_MACRO_EXP, &e, &out, why, sizeof why);
    assert_int_equal(rc, PST_ERR_TOOBIG);
}

/* ---- record syntax ------------------------------------------------------ */

struct parse_case {
    const char *rec;
    int want_rc;
    size_t nterms;
};

static const struct parse_case parse_cases[] = {
    {"v=spf1", 0, 0},
    {"v=spf1 ", 0, 0},
    {"V=SPF1 +ALL", 0, 1},
    {"v=spf1  a   mx  -all", 0, 3},
    {"v=spf1 a:%{d}.example.com/24//64 mx:example.com/0 ptr ptr:example.com ~all", 0, 5},
    {"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ip6:::ffff:192.0.2.1 ip4:0.0.0.0/0", 0, 4},
    {"v=spf1 include:_spf.example.com exists:%{ir}.%{l1r+-}._spf.%{d} ?all", 0, 3},
    {"v=spf1 redirect=_spf.example.com", 0, 0},
    {"v=spf1 -all exp=explain._spf.%{d}", 0, 1},
    {"v=spf1 foo=bar baz.x-y_z=%{d} -all", 0, 1},
    {"v=spf1 a:example.com. -all", 0, 2},
    {"v=spf1 a:foo.1-2 -all", 0, 2},
    {"v=spf1 a:%%", 0, 1},
    {"v=spf1 a/0//0", 0, 1},
    {"v=spf1 a//128 mx/32", 0, 2},
    /* errors */
    {"v=spf1 moo", PST_ERR_SYNTAX, 0},
    {"v=spf1 +all moo", PST_ERR_SYNTAX, 0},
    {"v=spf1 =all", PST_ERR_SYNTAX, 0},
    {"v=spf1 all:x", PST_ERR_SYNTAX, 0},
    {"v=spf1 all/24", PST_ERR_SYNTAX, 0},
    {"v=spf1 include", PST_ERR_SYNTAX, 0},
    {"v=spf1 include:", PST_ERR_SYNTAX, 0},
    {"v=spf1 exists", PST_ERR_SYNTAX, 0},
    {"v=spf1 a:foo", PST_ERR_SYNTAX, 0},
    {"v=spf1 a:foo.123", PST_ERR_SYNTAX, 0},
    {"v=spf1 a:foo.-x", PST_ERR_SYNTAX, 0},
    {"v=spf1 a:example.com:8080", PST_ERR_SYNTAX, 0},
    {"v=spf1 a/33", PST_ERR_SYNTAX, 0},
    {"v=spf1 a//129", PST_ERR_SYNTAX, 0},
    {"v=spf1 a/024", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip4:192.0.2.300", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip4:192.0.2", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip4:192.0.02.1", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip4:192.0.2.1/33", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip4:192.0.2.1//64", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip4", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip6:2001:db8::/129", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip6:2001:db8:zz::", PST_ERR_SYNTAX, 0},
    {"v=spf1 ip6:192.0.2.1", PST_ERR_SYNTAX, 0},
    {"v=spf1 include:example.com/24", PST_ERR_SYNTAX, 0},
    {"v=spf1 redirect=a.example.com redirect=b.example.com", PST_ERR_SYNTAX, 0},
    {"v=spf1 exp=a.example.com exp=b.example.com", PST_ERR_SYNTAX, 0},
    {"v=spf1 redirect=", PST_ERR_SYNTAX, 0},
    {"v=spf1 foo=%{x}", PST_ERR_SYNTAX, 0},
    {"v=spf1 a:%{c}.example.com", PST_ERR_SYNTAX, 0},
    {"v=spf1 a:foo%.example.com", PST_ERR_SYNTAX, 0},
    {"v=spf1 a:example.com,", PST_ERR_SYNTAX, 0},
    {"v=spf1\ta", PST_ERR_SYNTAX, 0},
    {"v=spf1 a\t-all", PST_ERR_SYNTAX, 0},
    {"v=spf1 a:caf\xc3\xa9.example.com", PST_ERR_SYNTAX, 0},
    {"v=spf10", PST_ERR_SYNTAX, 0},
    {"spf1 -all", PST_ERR_SYNTAX, 0},
};

static void test_parse(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t k = 0; k < sizeof parse_cases / sizeof parse_cases[0]; k++) {
        const struct parse_case *c = &parse_cases[k];
        struct pst_spf_record *rec = NULL;
        char why[PST_SPF_REASON_MAX] = "";
        int rc = pst_spf_record_parse(c->rec, strlen(c->rec), &rec, why, sizeof why);
        if (rc != c->want_rc || (rc == 0 && rec->nterms != c->nterms) ||
            (rc != 0 && (why[0] == '\0' || rec != NULL))) {
            print_error("parse \"%s\": got rc %d terms %zu (%s) want rc %d terms %zu\n", c->rec, rc,
                        rc == 0 ? rec->nterms : 0, why, c->want_rc, c->nterms);
            bad++;
        }
        pst_spf_record_free(rec);
    }
    assert_int_equal(bad, 0);
}

static void test_parse_fields(void **state)
{
    (void)state;
    struct pst_spf_record *rec = NULL;
    char why[PST_SPF_REASON_MAX];
    const char *t = "v=spf1 -a:%{d}.x.example/24//64 ~mx ?ip4:192.0.2.0/25 ip6:2001:db8::1 "
                    "redirect=r.example exp=e.example x=y";
    assert_int_equal(pst_spf_record_parse(t, strlen(t), &rec, why, sizeof why), 0);
    assert_int_equal(rec->nterms, 4);
    assert_int_equal(rec->terms[0].mech, PST_SPF_M_A);
    assert_int_equal(rec->terms[0].qualifier, PST_SPF_FAIL);
    assert_string_equal(rec->terms[0].domain, "%{d}.x.example");
    assert_int_equal(rec->terms[0].cidr4, 24);
    assert_int_equal(rec->terms[0].cidr6, 64);
    assert_int_equal(rec->terms[1].qualifier, PST_SPF_SOFTFAIL);
    assert_null(rec->terms[1].domain);
    assert_int_equal(rec->terms[2].qualifier, PST_SPF_NEUTRAL);
    assert_int_equal(rec->terms[2].cidr4, 25);
    assert_int_equal(rec->terms[2].addr[2], 2);
    assert_int_equal(rec->terms[3].cidr6, 128);
    assert_int_equal(rec->terms[3].addr[15], 1);
    assert_string_equal(rec->redirect, "r.example");
    assert_string_equal(rec->exp, "e.example");
    assert_int_equal(rec->unknown_modifiers, 1);
    pst_spf_record_free(rec);

    /* over the record cap */
    char *big = malloc(PST_SPF_RECORD_MAX + 10);
    memcpy(big, "v=spf1 ", 7);
    memset(big + 7, 'a', PST_SPF_RECORD_MAX + 3);
    assert_int_equal(pst_spf_record_parse(big, PST_SPF_RECORD_MAX + 10, &rec, why, sizeof why),
                     PST_ERR_TOOBIG);
    free(big);
}

/* ---- check_host ----------------------------------------------------------- */

struct eval_case {
    const char *name;
    const char *zone; /* after "$ORIGIN e.test.\n$TTL 300\n" */
    const char *ip;
    const char *sender;
    const char *helo;
    enum pst_spf_result want;
    const char *want_exp; /* NULL: no explanation expected */
};

#define ELEVEN_MX                                                                                  \
    "d MX 1 m1\nd MX 2 m2\nd MX 3 m3\nd MX 4 m4\nd MX 5 m5\nd MX 6 m6\nd MX 7 m7\nd MX 8 m8\n"     \
    "d MX 9 m9\nd MX 10 m10\nm1 A 192.0.2.9\nm2 A 192.0.2.9\nm3 A 192.0.2.9\nm4 A 192.0.2.9\n"     \
    "m5 A 192.0.2.9\nm6 A 192.0.2.9\nm7 A 192.0.2.9\nm8 A 192.0.2.9\nm9 A 192.0.2.9\n"
#define PTRS                                                                                       \
    "1.2.0.192.in-addr.arpa. PTR p1.e.test.\n1.2.0.192.in-addr.arpa. PTR p2.e.test.\n"             \
    "1.2.0.192.in-addr.arpa. PTR p3.e.test.\n1.2.0.192.in-addr.arpa. PTR p4.e.test.\n"             \
    "1.2.0.192.in-addr.arpa. PTR p5.e.test.\n1.2.0.192.in-addr.arpa. PTR p6.e.test.\n"             \
    "1.2.0.192.in-addr.arpa. PTR p7.e.test.\n1.2.0.192.in-addr.arpa. PTR p8.e.test.\n"             \
    "1.2.0.192.in-addr.arpa. PTR p9.e.test.\n1.2.0.192.in-addr.arpa. PTR p10.e.test.\n"            \
    "p1 A 192.0.2.9\np2 A 192.0.2.9\np3 A 192.0.2.9\np4 A 192.0.2.9\np5 A 192.0.2.9\n"             \
    "p6 A 192.0.2.9\np7 A 192.0.2.9\np8 A 192.0.2.9\np9 A 192.0.2.9\n"
#define TEN_A                                                                                      \
    "a1 A 192.0.2.99\na2 A 192.0.2.99\na3 A 192.0.2.99\na4 A 192.0.2.99\na5 A 192.0.2.99\n"        \
    "a6 A 192.0.2.99\na7 A 192.0.2.99\na8 A 192.0.2.99\na9 A 192.0.2.99\na10 A 192.0.2.99\n"       \
    "a11 A 192.0.2.99\n"

static const struct eval_case eval_cases[] = {
    /* record selection (RFC 7208 4.3-4.5) */
    {"nxdomain", "", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_NONE, NULL},
    {"no spf txt", "d TXT \"hello\"\n", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_NONE, NULL},
    {"two records", "d TXT \"v=spf1 -all\"\nd TXT \"v=spf1 +all\"\n", "192.0.2.1", "u@d.e.test",
     NULL, PST_SPF_PERMERROR, NULL},
    {"spf10 ignored", "d TXT \"v=spf10 +all\"\nd TXT \"v=spf1 -all\"\n", "192.0.2.1", "u@d.e.test",
     NULL, PST_SPF_FAIL, NULL},
    {"split strings", "d TXT \"v=spf1 ip4:192.0.2.1\" \" -all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"malformed domain", "", "192.0.2.1", "u@d..e.test", NULL, PST_SPF_NONE, NULL},
    {"single label", "localhost. TXT \"v=spf1 -all\"\n", "192.0.2.1", "u@localhost", NULL,
     PST_SPF_NONE, NULL},
    {"txt servfail", "d TXT \"postern-test=servfail\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_TEMPERROR, NULL},
    {"txt timeout", "d TXT \"postern-test=timeout\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_TEMPERROR, NULL},
    /* qualifiers and all */
    {"+all", "d TXT \"v=spf1 +all\"\n", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"all", "d TXT \"v=spf1 all\"\n", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"-all", "d TXT \"v=spf1 -all\"\n", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"~all", "d TXT \"v=spf1 ~all\"\n", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_SOFTFAIL, NULL},
    {"?all", "d TXT \"v=spf1 ?all\"\n", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_NEUTRAL, NULL},
    {"empty record", "d TXT \"v=spf1\"\n", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_NEUTRAL, NULL},
    {"upper case", "d TXT \"V=SPF1 IP4:192.0.2.1 -ALL\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    /* ip4 / ip6 and CIDR (RFC 7208 5.6) */
    {"ip4 in /24", "d TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n", "192.0.2.9", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"ip4 out of /24", "d TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n", "192.0.3.9", "u@d.e.test", NULL,
     PST_SPF_FAIL, NULL},
    {"ip4 /31", "d TXT \"v=spf1 ip4:192.0.2.8/31 -all\"\n", "192.0.2.9", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"ip4 /0", "d TXT \"v=spf1 ip4:10.0.0.0/0 -all\"\n", "203.0.113.5", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"ip4 vs v6 client", "d TXT \"v=spf1 ip4:0.0.0.0/0 -all\"\n", "2001:db8::1", "u@d.e.test", NULL,
     PST_SPF_FAIL, NULL},
    {"ip6 in /32", "d TXT \"v=spf1 ip6:2001:db8::/32 -all\"\n", "2001:db8:1::5", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"ip6 /127", "d TXT \"v=spf1 ip6:2001:db8::2/127 -all\"\n", "2001:db8::3", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"ip6 out", "d TXT \"v=spf1 ip6:2001:db8::/32 -all\"\n", "2001:db9::1", "u@d.e.test", NULL,
     PST_SPF_FAIL, NULL},
    {"ip6 vs v4 client", "d TXT \"v=spf1 ip6:::/0 -all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_FAIL, NULL},
    {"v4-mapped client", "d TXT \"v=spf1 ip4:192.0.2.1 -all\"\n", "::ffff:192.0.2.1", "u@d.e.test",
     NULL, PST_SPF_PASS, NULL},
    {"v4-mapped not ip6", "d TXT \"v=spf1 ip6:::ffff:0:0/96 -all\"\n", "::ffff:192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    /* a (RFC 7208 5.3) */
    {"a", "d TXT \"v=spf1 a -all\"\nd A 192.0.2.1\n", "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS,
     NULL},
    {"a miss", "d TXT \"v=spf1 a -all\"\nd A 192.0.2.1\n", "192.0.2.2", "u@d.e.test", NULL,
     PST_SPF_FAIL, NULL},
    {"a/24", "d TXT \"v=spf1 a/24 -all\"\nd A 192.0.2.1\n", "192.0.2.200", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"a:other", "d TXT \"v=spf1 a:o.e.test -all\"\no A 192.0.2.7\n", "192.0.2.7", "u@d.e.test",
     NULL, PST_SPF_PASS, NULL},
    {"a aaaa", "d TXT \"v=spf1 a -all\"\nd AAAA 2001:db8::7\n", "2001:db8::7", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"a dual cidr v6", "d TXT \"v=spf1 a/32//64 -all\"\nd AAAA 2001:db8::7\n", "2001:db8::ffff:1",
     "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"a dual cidr v4", "d TXT \"v=spf1 a/30//64 -all\"\nd A 192.0.2.1\n", "192.0.2.3", "u@d.e.test",
     NULL, PST_SPF_PASS, NULL},
    {"a only v6 cidr", "d TXT \"v=spf1 a//64 -all\"\nd A 192.0.2.1\n", "192.0.2.3", "u@d.e.test",
     NULL, PST_SPF_FAIL, NULL},
    {"a v6 ignores A", "d TXT \"v=spf1 a -all\"\nd A 192.0.2.1\n", "2001:db8::1", "u@d.e.test",
     NULL, PST_SPF_FAIL, NULL},
    {"a cname", "d TXT \"v=spf1 a:c.e.test -all\"\nc CNAME t\nt A 192.0.2.1\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"a servfail", "d TXT \"v=spf1 a:s.e.test -all\"\ns TXT \"postern-test=servfail\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_TEMPERROR, NULL},
    /* mx (RFC 7208 5.4) */
    {"mx", "d TXT \"v=spf1 mx -all\"\nd MX 10 m1\nm1 A 192.0.2.10\n", "192.0.2.10", "u@d.e.test",
     NULL, PST_SPF_PASS, NULL},
    {"mx miss", "d TXT \"v=spf1 mx -all\"\nd MX 10 m1\nm1 A 192.0.2.10\n", "192.0.2.11",
     "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"mx/30", "d TXT \"v=spf1 mx/30 -all\"\nd MX 10 m1\nm1 A 192.0.2.10\n", "192.0.2.11",
     "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"mx:other second",
     "d TXT \"v=spf1 mx:o.e.test -all\"\no MX 10 m1\no MX 20 m2\n"
     "m1 A 192.0.2.10\nm2 A 192.0.2.20\n",
     "192.0.2.20", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"mx 10 names", "d TXT \"v=spf1 mx -all\"\n" ELEVEN_MX "m10 A 192.0.2.1\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"mx 11 names", "d TXT \"v=spf1 mx -all\"\n" ELEVEN_MX "d MX 11 m11\nm11 A 192.0.2.1\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PERMERROR, NULL},
    {"mx host servfail", "d TXT \"v=spf1 mx -all\"\nd MX 10 m1\nm1 TXT \"postern-test=servfail\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_TEMPERROR, NULL},
    {"null mx", "d TXT \"v=spf1 mx -all\"\nd MX 0 .\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_FAIL, NULL},
    /* ptr (RFC 7208 5.5) */
    {"ptr",
     "d TXT \"v=spf1 ptr -all\"\n1.2.0.192.in-addr.arpa. PTR h.d.e.test.\n"
     "h.d A 192.0.2.1\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"ptr not validated",
     "d TXT \"v=spf1 ptr -all\"\n1.2.0.192.in-addr.arpa. PTR h.d.e.test.\n"
     "h.d A 192.0.2.2\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"ptr other domain",
     "d TXT \"v=spf1 ptr -all\"\n1.2.0.192.in-addr.arpa. PTR h.o.e.test.\n"
     "h.o A 192.0.2.1\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"ptr:domain",
     "d TXT \"v=spf1 ptr:o.e.test -all\"\n1.2.0.192.in-addr.arpa. PTR o.e.test.\n"
     "o A 192.0.2.1\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"ptr ipv6",
     "d TXT \"v=spf1 ptr -all\"\n"
     "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR "
     "h.d.e.test.\nh.d AAAA 2001:db8::1\n",
     "2001:db8::1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"ptr 10th name", "d TXT \"v=spf1 ptr:p10.e.test -all\"\n" PTRS "p10 A 192.0.2.1\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"ptr 11th ignored",
     "d TXT \"v=spf1 ptr -all\"\n" PTRS "p10 A 192.0.2.9\n"
     "1.2.0.192.in-addr.arpa. PTR h.d.e.test.\nh.d A 192.0.2.1\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"ptr servfail",
     "d TXT \"v=spf1 ptr ~all\"\n1.2.0.192.in-addr.arpa. TXT "
     "\"postern-test=servfail\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_SOFTFAIL, NULL},
    /* exists (RFC 7208 5.7) */
    {"exists", "d TXT \"v=spf1 exists:%{i}.x.e.test -all\"\n192.0.2.1.x A 127.0.0.2\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"exists miss", "d TXT \"v=spf1 exists:%{i}.x.e.test -all\"\n192.0.2.1.x A 127.0.0.2\n",
     "192.0.2.2", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"exists v6 asks A", "d TXT \"v=spf1 exists:%{ir}.x.e.test -all\"\n*.x A 127.0.0.2\n",
     "2001:db8::1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"exists %{p}",
     "d TXT \"v=spf1 exists:%{p}.ok.e.test -all\"\n"
     "1.2.0.192.in-addr.arpa. PTR h.d.e.test.\nh.d A 192.0.2.1\n"
     "h.d.e.test.ok A 127.0.0.2\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"exists %{p} unknown",
     "d TXT \"v=spf1 exists:%{p}.ok.e.test -all\"\n"
     "unknown.ok A 127.0.0.2\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"exists %{l}", "d TXT \"v=spf1 exists:%{l}.u.e.test -all\"\njoe.u A 127.0.0.2\n", "192.0.2.1",
     "joe@d.e.test", NULL, PST_SPF_PASS, NULL},
    /* RFC 7208 7.4 through check_host: %{i} of both families, %{v}, %{d2} */
    {"rfc 7.4 v4",
     "email.example.com. TXT \"v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all\"\n"
     "3.2.0.192.in-addr._spf.example.com. A 127.0.0.2\n",
     "192.0.2.3", "strong-bad@email.example.com", NULL, PST_SPF_PASS, NULL},
    {"rfc 7.4 v6",
     "email.example.com. TXT \"v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all\"\n"
     "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf."
     "example.com. A 127.0.0.2\n",
     "2001:db8::cb01", "strong-bad@email.example.com", NULL, PST_SPF_PASS, NULL},
    {"exp %{i} v6", "d TXT \"v=spf1 -all exp=x.e.test\"\nx TXT \"%{i} %{v} %{c}\"\n",
     "2001:db8::cb01", "u@d.e.test", NULL, PST_SPF_FAIL,
     "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1 ip6 2001:db8::cb01"},
    {"exp %{i} mapped", "d TXT \"v=spf1 -all exp=x.e.test\"\nx TXT \"%{i} %{v} %{c}\"\n",
     "::ffff:192.0.2.3", "u@d.e.test", NULL, PST_SPF_FAIL, "192.0.2.3 in-addr 192.0.2.3"},
    /* include (RFC 7208 5.2) */
    {"include pass", "d TXT \"v=spf1 include:i.e.test -all\"\ni TXT \"v=spf1 +all\"\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"include fail continues", "d TXT \"v=spf1 include:i.e.test ~all\"\ni TXT \"v=spf1 -all\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_SOFTFAIL, NULL},
    {"include neutral", "d TXT \"v=spf1 include:i.e.test ?all\"\ni TXT \"v=spf1\"\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_NEUTRAL, NULL},
    {"-include", "d TXT \"v=spf1 -include:i.e.test +all\"\ni TXT \"v=spf1 ip4:192.0.2.1\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"include none", "d TXT \"v=spf1 include:i.e.test +all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PERMERROR, NULL},
    {"include permerror", "d TXT \"v=spf1 include:i.e.test +all\"\ni TXT \"v=spf1 moo\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PERMERROR, NULL},
    {"include temperror",
     "d TXT \"v=spf1 include:i.e.test +all\"\n"
     "i TXT \"postern-test=servfail\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_TEMPERROR, NULL},
    {"include loop", "d TXT \"v=spf1 include:d.e.test -all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PERMERROR, NULL},
    {"include pair loop",
     "d TXT \"v=spf1 include:i.e.test -all\"\n"
     "i TXT \"v=spf1 include:d.e.test -all\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PERMERROR, NULL},
    /* redirect (RFC 7208 6.1) */
    {"redirect pass", "d TXT \"v=spf1 redirect=r.e.test\"\nr TXT \"v=spf1 ip4:192.0.2.1 -all\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"redirect fail", "d TXT \"v=spf1 redirect=r.e.test\"\nr TXT \"v=spf1 ip4:192.0.2.1 -all\"\n",
     "192.0.2.2", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"redirect after match", "d TXT \"v=spf1 ?all redirect=r.e.test\"\n", "192.0.2.1", "u@d.e.test",
     NULL, PST_SPF_NEUTRAL, NULL},
    {"redirect none", "d TXT \"v=spf1 redirect=r.e.test\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PERMERROR, NULL},
    {"redirect macro d",
     "d TXT \"v=spf1 redirect=_spf.%{d}\"\n_spf.d TXT \"v=spf1 a -all\"\n"
     "_spf.d A 192.0.2.1\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"redirect loop", "d TXT \"v=spf1 redirect=d.e.test\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PERMERROR, NULL},
    /* exp (RFC 7208 6.2) */
    {"exp",
     "d TXT \"v=spf1 -all exp=x.e.test\"\n"
     "x TXT \"%{i} is not one of %{d}'s designated mail servers.\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL,
     "192.0.2.1 is not one of d.e.test's designated mail servers."},
    {"exp c r t", "d TXT \"v=spf1 -all exp=x.e.test\"\nx TXT \"%{c} %{r} %{t} %{l}%_%%\"\n",
     "2001:db8::1", "joe@d.e.test", NULL, PST_SPF_FAIL, "2001:db8::1 mx.local 1700000000 joe %"},
    {"exp softfail none", "d TXT \"v=spf1 ~all exp=x.e.test\"\nx TXT \"no\"\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_SOFTFAIL, NULL},
    {"exp missing", "d TXT \"v=spf1 -all exp=x.e.test\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_FAIL, NULL},
    {"exp two txt", "d TXT \"v=spf1 -all exp=x.e.test\"\nx TXT \"a\"\nx TXT \"b\"\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"exp bad macro", "d TXT \"v=spf1 -all exp=x.e.test\"\nx TXT \"%{x}\"\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"exp via redirect",
     "d TXT \"v=spf1 redirect=r.e.test exp=x.e.test\"\nx TXT \"outer\"\n"
     "r TXT \"v=spf1 -all exp=y.e.test\"\ny TXT \"inner %{d}\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL, "inner r.e.test"},
    {"exp not from include",
     "d TXT \"v=spf1 -include:i.e.test\"\n"
     "i TXT \"v=spf1 +all exp=x.e.test\"\nx TXT \"included\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    /* limits (RFC 7208 4.6.4) */
    {"10 terms",
     "d TXT \"v=spf1 a:a1.e.test a:a2.e.test a:a3.e.test a:a4.e.test a:a5.e.test "
     "a:a6.e.test a:a7.e.test a:a8.e.test a:a9.e.test a:a10.e.test -all\"\n" TEN_A,
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_FAIL, NULL},
    {"11 terms",
     "d TXT \"v=spf1 a:a1.e.test a:a2.e.test a:a3.e.test a:a4.e.test a:a5.e.test "
     "a:a6.e.test a:a7.e.test a:a8.e.test a:a9.e.test a:a10.e.test a:a11.e.test "
     "-all\"\n" TEN_A,
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PERMERROR, NULL},
    {"11 terms after match",
     "d TXT \"v=spf1 a:a1.e.test a:a2.e.test a:a3.e.test a:a4.e.test "
     "a:a5.e.test a:a6.e.test a:a7.e.test a:a8.e.test a:a9.e.test "
     "a:a10.e.test a:a11.e.test -all\"\n" TEN_A,
     "192.0.2.99", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"ip4 not counted",
     "d TXT \"v=spf1 a:a1.e.test a:a2.e.test a:a3.e.test a:a4.e.test "
     "a:a5.e.test a:a6.e.test a:a7.e.test a:a8.e.test a:a9.e.test "
     "a:a10.e.test ip4:192.0.2.0 ip4:192.0.2.1 -all\"\n" TEN_A,
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"include counts",
     "d TXT \"v=spf1 include:i.e.test a:a6.e.test a:a7.e.test "
     "a:a8.e.test a:a9.e.test a:a10.e.test -all\"\n"
     "i TXT \"v=spf1 a:a1.e.test a:a2.e.test a:a3.e.test a:a4.e.test "
     "a:a5.e.test\"\n" TEN_A,
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PERMERROR, NULL},
    {"2 voids", "d TXT \"v=spf1 a:n1.e.test a:n2.e.test -all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_FAIL, NULL},
    {"3 voids", "d TXT \"v=spf1 a:n1.e.test a:n2.e.test a:n3.e.test -all\"\n", "192.0.2.1",
     "u@d.e.test", NULL, PST_SPF_PERMERROR, NULL},
    {"nodata is void",
     "d TXT \"v=spf1 a:n1.e.test mx:n2.e.test exists:n3.e.test -all\"\n"
     "n1 TXT \"x\"\nn2 TXT \"x\"\nn3 TXT \"x\"\n",
     "192.0.2.1", "u@d.e.test", NULL, PST_SPF_PERMERROR, NULL},
    /* syntax errors anywhere are permerror (RFC 7208 4.6) */
    {"unknown mech", "d TXT \"v=spf1 +all moo\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PERMERROR, NULL},
    {"bad ip4", "d TXT \"v=spf1 ip4:192.0.2.1 ip4:192.0.2.300 -all\"\n", "192.0.2.1", "u@d.e.test",
     NULL, PST_SPF_PERMERROR, NULL},
    {"bad domain-end", "d TXT \"v=spf1 a:foo -all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PERMERROR, NULL},
    {"c in domain", "d TXT \"v=spf1 exists:%{c}.e.test -all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PERMERROR, NULL},
    {"unknown modifier", "d TXT \"v=spf1 foo=bar.%{d} +all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PASS, NULL},
    {"non-ascii", "d TXT \"v=spf1 a:caf\\195\\169.e.test -all\"\n", "192.0.2.1", "u@d.e.test", NULL,
     PST_SPF_PERMERROR, NULL},
    /* identities (RFC 7208 2.3, 2.4) */
    {"null sender", "h TXT \"v=spf1 ip4:192.0.2.1 -all\"\n", "192.0.2.1", "", "h.e.test",
     PST_SPF_PASS, NULL},
    {"null sender fail", "h TXT \"v=spf1 ip4:192.0.2.1 -all\"\n", "192.0.2.2", "", "h.e.test",
     PST_SPF_FAIL, NULL},
    {"no local part", "d TXT \"v=spf1 exists:%{l}.u.e.test -all\"\npostmaster.u A 127.0.0.2\n",
     "192.0.2.1", "@d.e.test", NULL, PST_SPF_PASS, NULL},
    {"quoted at", "d TXT \"v=spf1 +all\"\n", "192.0.2.1", "\"a@b\"@d.e.test", NULL, PST_SPF_PASS,
     NULL},
};

static struct pst_resolver *zone(const char *text)
{
    struct pst_resolver *r = NULL;
    char err[256] = "";
    char *full = malloc(strlen(text) + 64);
    assert_non_null(full);
    snprintf(full, strlen(text) + 64, "$ORIGIN e.test.\n$TTL 300\n%s", text);
    int rc = pst_resolver_zone_from_text(full, strlen(full), &r, err, sizeof(err));
    if (rc != 0)
        print_error("zone: %s\n", err);
    free(full);
    assert_int_equal(rc, 0);
    return r;
}

static void test_eval_table(void **state)
{
    (void)state;
    int bad = 0;
    struct pst_spf_options o;
    pst_spf_options_default(&o);
    o.receiver = "mx.local";
    o.now = 1700000000;
    for (size_t k = 0; k < sizeof eval_cases / sizeof eval_cases[0]; k++) {
        const struct eval_case *c = &eval_cases[k];
        struct pst_resolver *r = zone(c->zone);
        struct pst_spf_verdict *v = NULL;
        int rc = pst_spf_check(r, &o, PST_SPF_MAILFROM, c->ip, c->sender, c->helo, &v);
        if (rc != 0) {
            print_error("%s: rc %d\n", c->name, rc);
            bad++;
        } else if (v->result != c->want || (c->want_exp == NULL) != (v->explanation == NULL) ||
                   (c->want_exp != NULL && strcmp(c->want_exp, v->explanation) != 0)) {
            print_error("%s: got %s \"%s\" (%s) want %s \"%s\"\n", c->name,
                        pst_spf_result_name(v->result), v->explanation ? v->explanation : "",
                        v->reason, pst_spf_result_name(c->want), c->want_exp ? c->want_exp : "");
            bad++;
        }
        pst_spf_verdict_free(v);
        pst_resolver_free(r);
    }
    assert_int_equal(bad, 0);
}

/* The verdict's fields, HELO identity, options, the query budget. */
static void test_verdict_fields(void **state)
{
    (void)state;
    struct pst_resolver *r = zone("d TXT \"v=spf1 a mx -all\"\nd A 192.0.2.1\n"
                                  "h TXT \"v=spf1 a -all\"\nh A 192.0.2.5\n"
                                  "1.2.0.192.in-addr.arpa. PTR h.d.e.test.\n");
    struct pst_spf_verdict *v = NULL;

    assert_int_equal(
        pst_spf_check(r, NULL, PST_SPF_MAILFROM, "192.0.2.1", "joe@d.e.test", "h.e.test", &v), 0);
    assert_int_equal(v->result, PST_SPF_PASS);
    assert_string_equal(v->mechanism, "a");
    assert_string_equal(v->sender, "joe@d.e.test");
    assert_string_equal(v->domain, "d.e.test");
    assert_string_equal(pst_spf_ar_property(v), "smtp.mailfrom");
    assert_string_equal(pst_spf_ar_value(v), "joe@d.e.test");
    assert_int_equal(v->terms, 1);
    assert_int_equal(v->queries, 2);
    pst_spf_verdict_free(v);

    assert_int_equal(
        pst_spf_check(r, NULL, PST_SPF_HELO, "192.0.2.5", "joe@d.e.test", "h.e.test", &v), 0);
    assert_int_equal(v->result, PST_SPF_PASS);
    assert_string_equal(pst_spf_ar_property(v), "smtp.helo");
    assert_string_equal(pst_spf_ar_value(v), "h.e.test");
    assert_string_equal(v->sender, "postmaster@h.e.test");
    pst_spf_verdict_free(v);

    /* null sender: postmaster@HELO, reported as smtp.mailfrom */
    assert_int_equal(pst_spf_check(r, NULL, PST_SPF_MAILFROM, "192.0.2.5", "", "h.e.test", &v), 0);
    assert_int_equal(v->result, PST_SPF_PASS);
    assert_string_equal(pst_spf_ar_value(v), "postmaster@h.e.test");
    pst_spf_verdict_free(v);

    /* a tighter configured limit and budget */
    struct pst_spf_options o;
    pst_spf_options_default(&o);
    o.max_terms = 1;
    assert_int_equal(pst_spf_check(r, &o, PST_SPF_MAILFROM, "192.0.2.9", "joe@d.e.test", NULL, &v),
                     0);
    assert_int_equal(v->result, PST_SPF_PERMERROR);
    assert_non_null(strstr(v->reason, "more than 1 DNS-querying terms"));
    pst_spf_verdict_free(v);
    pst_spf_options_default(&o);
    o.max_queries = 2;
    assert_int_equal(pst_spf_check(r, &o, PST_SPF_MAILFROM, "192.0.2.9", "joe@d.e.test", NULL, &v),
                     0);
    assert_int_equal(v->result, PST_SPF_PERMERROR);
    assert_non_null(strstr(v->reason, "budget"));
    pst_spf_verdict_free(v);

    /* caller errors */
    assert_int_equal(pst_spf_check(r, NULL, PST_SPF_MAILFROM, "not-an-ip", "a@b.c", NULL, &v),
                     PST_ERR_INVAL);
    assert_int_equal(pst_spf_check(r, NULL, PST_SPF_MAILFROM, "192.0.2.1", "", NULL, &v),
                     PST_ERR_INVAL);
    assert_int_equal(pst_spf_check(r, NULL, PST_SPF_HELO, "192.0.2.1", NULL, NULL, &v),
                     PST_ERR_INVAL);
    pst_resolver_free(r);
}

/* pst_resolver_zone_fail: temperror for a name failed from outside. */
static void test_zone_fail(void **state)
{
    (void)state;
    struct pst_resolver *r = zone("d TXT \"v=spf1 include:i.e.test -all\"\n"
                                  "i TXT \"v=spf1 +all\"\n");
    struct pst_spf_verdict *v = NULL;
    assert_int_equal(pst_resolver_zone_fail(r, "i.e.test", PST_DNS_RETRY, NULL), 0);
    assert_int_equal(pst_spf_check(r, NULL, PST_SPF_MAILFROM, "192.0.2.1", "u@d.e.test", NULL, &v),
                     0);
    assert_int_equal(v->result, PST_SPF_TEMPERROR);
    assert_non_null(strstr(v->reason, "SERVFAIL"));
    pst_spf_verdict_free(v);
    pst_resolver_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_macros),     cmocka_unit_test(test_macro_bounds),
        cmocka_unit_test(test_parse),      cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_eval_table), cmocka_unit_test(test_verdict_fields),
        cmocka_unit_test(test_zone_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
