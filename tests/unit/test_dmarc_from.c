/*
 * test_dmarc_from.c - the Author Domain from a From field value (RFC 9989
 * 5.3.1, RFC 5322 3.4): single addresses in every form, multiple
 * addresses, groups, comments, quoted strings and garbage, each with the
 * defined result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "err.h"
#include "msg.h"

#define F_OK    PST_DMARC_FROM_OK
#define F_NONE  PST_DMARC_FROM_NO_ADDRESS
#define F_MULTI PST_DMARC_FROM_MULTIPLE_ADDRESSES
#define F_SYN   PST_DMARC_FROM_SYNTAX
#define F_DOM   PST_DMARC_FROM_BAD_DOMAIN

struct from_case {
    const char *name, *value;
    enum pst_dmarc_from want;
    const char *domain;
};

static const struct from_case cases[] = {
    {"addr-spec", " user@example.com", F_OK, "example.com"},
    {"upper case domain", " user@Example.COM", F_OK, "example.com"},
    {"name-addr", " Joe User <joe@mail.example.com>", F_OK, "mail.example.com"},
    {"quoted display name", " \"User, Joe\" <joe@example.com>", F_OK, "example.com"},
    {"display name with @", " \"evil@attacker.example\" <joe@example.com>", F_OK, "example.com"},
    {"quoted local part", " \"joe smith\"@example.com", F_OK, "example.com"},
    {"quoted local part with @", " \"a@b.example\"@example.com", F_OK, "example.com"},
    {"comments", " (c1) joe (c2) @ (c3) example.com (c4)", F_OK, "example.com"},
    {"nested comment", " joe@example.com (a (b (c)) d)", F_OK, "example.com"},
    {"comment hides address", " (evil@attacker.example) joe@example.com", F_OK, "example.com"},
    {"angle without name", " <joe@example.com>", F_OK, "example.com"},
    {"folded", " Joe\r\n <joe@example.com>", F_OK, "example.com"},
    {"group with one", " team: joe@example.com;", F_OK, "example.com"},
    {"obs-route", " <@relay.example:joe@example.com>", F_OK, "example.com"},
    {"trailing comma (obs)", " joe@example.com,", F_OK, "example.com"},
    {"trailing dot in domain", " joe@example.com.", F_SYN, ""},
    {"two addresses", " a@example.com, b@example.net", F_MULTI, ""},
    {"two name-addrs", " A <a@example.com>, B <b@example.net>", F_MULTI, ""},
    {"group with two", " g: a@example.com, b@example.com;", F_MULTI, ""},
    {"address and group", " a@example.com, g: b@example.net;", F_MULTI, ""},
    {"empty", "", F_NONE, ""},
    {"only spaces", "   ", F_NONE, ""},
    {"empty group", " undisclosed-recipients:;", F_NONE, ""},
    {"null address", " <>", F_NONE, ""},
    {"no at", " joe", F_SYN, ""},
    {"no domain", " joe@", F_SYN, ""},
    {"two at", " joe@a@example.com", F_SYN, ""},
    {"unclosed angle", " Joe <joe@example.com", F_SYN, ""},
    {"unclosed quote", " \"Joe <joe@example.com>", F_SYN, ""},
    {"unclosed comment", " joe@example.com (oops", F_SYN, ""},
    {"stray paren", " joe@example.com)", F_SYN, ""},
    {"unclosed group", " g: joe@example.com", F_SYN, ""},
    {"domain literal", " joe@[192.0.2.1]", F_DOM, ""},
    {"utf-8 domain",
     " joe@b\xc3\xbc"
     "cher.example",
     F_DOM, ""},
    {"a-label domain", " joe@xn--bcher-kva.example", F_OK, "xn--bcher-kva.example"},
    {"bad domain chars", " joe@exa!mple.com", F_DOM, ""},
    {"label too long",
     " joe@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", F_DOM, ""},
    {"words before at", " joe smith@example.com", F_SYN, ""},
    {"control character", " joe@exa\x01mple.com", F_SYN, ""},
};

static void test_from_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct from_case *c = &cases[i];
        char dom[PST_DMARC_DOMAIN_MAX] = "";
        enum pst_dmarc_from res = (enum pst_dmarc_from)99;
        int rc = pst_dmarc_from_domain(c->value, strlen(c->value), dom, sizeof(dom), &res);
        if (res != c->want || (rc == 0) != (c->want == F_OK) ||
            (rc == 0 && strcmp(dom, c->domain) != 0)) {
            printf("# %s: got rc %d %s \"%s\" want %s \"%s\"\n", c->name, rc,
                   pst_dmarc_from_name(res), dom, pst_dmarc_from_name(c->want), c->domain);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_from_bounds(void **state)
{
    (void)state;
    char buf[8192];
    char dom[PST_DMARC_DOMAIN_MAX];
    enum pst_dmarc_from res;
    size_t n = 0;
    /* comments nested past the limit */
    buf[n++] = ' ';
    for (int i = 0; i < 100; i++)
        buf[n++] = '(';
    for (int i = 0; i < 100; i++)
        buf[n++] = ')';
    memcpy(buf + n, " a@example.com", 14);
    n += 14;
    assert_int_equal(pst_dmarc_from_domain(buf, n, dom, sizeof(dom), &res), PST_ERR_SYNTAX);
    assert_int_equal(res, F_SYN);
    /* a thousand addresses: stops at the second */
    n = 0;
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sa@b.c", i ? "," : "");
    assert_int_equal(pst_dmarc_from_domain(buf, n, dom, sizeof(dom), &res), PST_ERR_SYNTAX);
    assert_int_equal(res, F_MULTI);
    /* out too small */
    assert_int_equal(pst_dmarc_from_domain(" a@example.com", 14, dom, 5, &res), PST_ERR_TOOBIG);
}

static void test_author_fields(void **state)
{
    (void)state;
    static const char *const hdrs[] = {
        "From: a@example.com\r\nSubject: x\r\n\r\n",
        "Subject: x\r\n\r\n",
        "From: a@example.com\r\nfrom: b@example.com\r\n\r\n",
    };
    static const enum pst_dmarc_from want[] = {F_OK, PST_DMARC_FROM_ABSENT,
                                               PST_DMARC_FROM_MULTIPLE_FIELDS};
    for (size_t i = 0; i < 3; i++) {
        struct pst_msg_header *h = NULL;
        const char *why = NULL;
        char dom[PST_DMARC_DOMAIN_MAX];
        enum pst_dmarc_from res;
        assert_int_equal(pst_msg_split(hdrs[i], strlen(hdrs[i]), NULL, &h, &why), 0);
        int rc = pst_dmarc_author_domain(h, dom, sizeof(dom), &res);
        assert_int_equal(res, want[i]);
        assert_int_equal(rc == 0, want[i] == F_OK);
        if (rc == 0)
            assert_string_equal(dom, "example.com");
        pst_msg_header_free(h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_table),
        cmocka_unit_test(test_from_bounds),
        cmocka_unit_test(test_author_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
