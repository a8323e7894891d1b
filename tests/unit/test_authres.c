/*
 * test_authres.c - Authentication-Results (RFC 8601): golden fields for
 * spf/dkim/dmarc, value quoting, injection attempts (CR, LF, quotes,
 * semicolons in message-derived values) that must stay inside one value
 * of one field, and the removal of forged fields carrying our authserv-id
 * (RFC 8601 5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "buf.h"
#include "dkim.h"
#include "dmarc.h"
#include "err.h"
#include "msg.h"

#define ID "mx.example.org"

static void test_golden(void **state)
{
    (void)state;
    struct pst_dkim_verdict v[2] = {
        {.result = PST_DKIM_PASS,
         .reason = "",
         .d = "example.com",
         .s = "sel",
         .i = "@example.com",
         .a = "rsa-sha256",
         .b8 = "abcdefgh"},
        {.result = PST_DKIM_FAIL,
         .reason = "body hash mismatch",
         .d = "example.net",
         .s = "s2",
         .i = "",
         .a = "ed25519-sha256",
         .b8 = "AB/+cd=="},
    };
    struct pst_dmarc_eval e = {.result = PST_DMARC_RESULT_PASS,
                               .author = "example.com",
                               .policy_tag = "p",
                               .policy = PST_DMARC_POLICY_REJECT,
                               .disposition = PST_DMARC_POLICY_NONE};
    struct pst_authres a = {.authserv_id = ID,
                            .spf_result = "pass",
                            .spf_mailfrom = "user@example.com",
                            .dkim = v,
                            .ndkim = 2,
                            .dmarc = &e};
    struct pst_buf *b = pst_buf_new(4096);
    assert_int_equal(pst_authres_header(&a, b), 0);
    assert_string_equal(pst_buf_data(b),
                        "Authentication-Results: mx.example.org;\r\n"
                        "\tspf=pass smtp.mailfrom=user@example.com;\r\n"
                        "\tdkim=pass header.d=example.com header.s=sel header.i=@example.com "
                        "header.a=rsa-sha256 header.b=abcdefgh;\r\n"
                        "\tdkim=fail reason=\"body hash mismatch\" header.d=example.net "
                        "header.s=s2 header.a=ed25519-sha256 header.b=\"AB/+cd==\";\r\n"
                        "\tdmarc=pass header.from=example.com policy.dmarc=none\r\n");

    /* the HELO identity too: a second spf resinfo (RFC 7208 2.3) */
    pst_buf_reset(b);
    struct pst_authres ah = {.authserv_id = ID,
                             .spf_result = "pass",
                             .spf_mailfrom = "user@example.com",
                             .spf_helo_result = "fail",
                             .spf_helo_name = "mail.example.net",
                             .spf_helo_reason = "matched -all"};
    assert_int_equal(pst_authres_header(&ah, b), 0);
    assert_string_equal(pst_buf_data(b), "Authentication-Results: mx.example.org;\r\n"
                                         "\tspf=pass smtp.mailfrom=user@example.com;\r\n"
                                         "\tspf=fail reason=\"matched -all\" "
                                         "smtp.helo=mail.example.net\r\n");

    /* null sender: smtp.helo; dmarc fail under t=y */
    pst_buf_reset(b);
    e.result = PST_DMARC_RESULT_FAIL;
    e.disposition = PST_DMARC_POLICY_QUARANTINE;
    snprintf(e.reason, sizeof(e.reason), "no aligned SPF or DKIM pass; p=reject t=y");
    struct pst_authres a2 = {.authserv_id = ID,
                             .spf_result = "none",
                             .spf_mailfrom = "",
                             .spf_helo = "mail.example.net",
                             .dmarc = &e};
    assert_int_equal(pst_authres_header(&a2, b), 0);
    assert_string_equal(pst_buf_data(b),
                        "Authentication-Results: mx.example.org;\r\n"
                        "\tspf=none smtp.helo=mail.example.net;\r\n"
                        "\tdmarc=fail reason=\"no aligned SPF or DKIM pass; p=reject t=y\" "
                        "header.from=example.com policy.dmarc=quarantine\r\n");

    /* nothing checked */
    pst_buf_reset(b);
    struct pst_authres a3 = {.authserv_id = ID};
    assert_int_equal(pst_authres_header(&a3, b), 0);
    assert_string_equal(pst_buf_data(b), "Authentication-Results: mx.example.org; none\r\n");

    /* a bad authserv-id is the caller's error */
    struct pst_authres a4 = {.authserv_id = "mx.example.org;\r\nX: y"};
    assert_int_equal(pst_authres_header(&a4, b), PST_ERR_INVAL);
    a4.authserv_id = "";
    assert_int_equal(pst_authres_header(&a4, b), PST_ERR_INVAL);
    /* too small a buffer: nothing left behind */
    struct pst_buf *small = pst_buf_new(40);
    assert_int_equal(pst_authres_header(&a, small), PST_ERR_TOOBIG);
    assert_int_equal(pst_buf_len(small), 0);
    pst_buf_free(small);
    pst_buf_free(b);
}

struct value_case {
    const char *in, *want;
};

static const struct value_case values[] = {
    {"example.com", "example.com"},
    {"user+tag@example.com", "user+tag@example.com"},
    {"a@b@example.com", "\"a@b@example.com\""},
    {"x;dkim=pass", "\"x;dkim=pass\""},
    {"a\"b", "\"a\\\"b\""},
    {"a\\b", "\"a\\\\b\""},
    {"evil\r\nAuthentication-Results: mx.example.org; dmarc=pass",
     "\"evil??Authentication-Results: mx.example.org; dmarc=pass\""},
    {"b\xc3\xbc", "\"b??\""},
    {"", "\"\""},
    {"sp ace", "\"sp ace\""},
    {"(comment)", "\"(comment)\""},
};

static void test_values(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct pst_buf *b = pst_buf_new(1024);
        assert_int_equal(pst_authres_value(b, values[i].in, strlen(values[i].in)), 0);
        if (strcmp(pst_buf_data(b), values[i].want) != 0) {
            printf("# value %zu: got [%s] want [%s]\n", i, pst_buf_data(b), values[i].want);
            failures++;
        }
        pst_buf_free(b);
    }
    assert_int_equal(failures, 0);
}

/* Every message-derived field full of CR, LF and separators: the result
 * has exactly one CRLF per line we made, no bare CR/LF, and parses back
 * as one field. */
static void test_injection(void **state)
{
    (void)state;
    static const char evil[] = "x\r\nAuthentication-Results: " ID "; dmarc=pass\r\n\r\nbody";
    struct pst_dkim_verdict v = {.result = PST_DKIM_FAIL,
                                 .reason = evil,
                                 .d = evil,
                                 .s = evil,
                                 .i = evil,
                                 .a = "rsa-sha256",
                                 .b8 = "\r\n;\"\\()x"};
    struct pst_dmarc_eval e = {.result = PST_DMARC_RESULT_FAIL, .policy_tag = "p"};
    snprintf(e.author, sizeof(e.author), "%s", evil);
    snprintf(e.reason, sizeof(e.reason), "%s", evil);
    struct pst_authres a = {.authserv_id = ID,
                            .spf_result = "pass\r\nX-Evil: 1",
                            .spf_mailfrom = evil,
                            .dkim = &v,
                            .ndkim = 1,
                            .dmarc = &e};
    struct pst_buf *b = pst_buf_new(8192);
    assert_int_equal(pst_authres_header(&a, b), 0);
    const char *s = pst_buf_data(b);
    size_t n = pst_buf_len(b);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r')
            assert_true(i + 2 < n ? s[i + 1] == '\n' && s[i + 2] == '\t' : s[i + 1] == '\n');
        if (s[i] == '\n')
            assert_true(i > 0 && s[i - 1] == '\r');
    }
    /* the bad SPF result word is dropped, not written */
    assert_null(strstr(s, "X-Evil"));
    /* parse it back: one field, and it is ours */
    struct pst_msg_header *h = NULL;
    const char *why = NULL;
    assert_int_equal(pst_msg_split(s, n, NULL, &h, &why), 0);
    assert_int_equal(h->nfields, 1);
    assert_true(pst_authres_is_ours(h->fields[0].value, h->fields[0].value_len, ID));
    pst_msg_header_free(h);
    pst_buf_free(b);
}

struct ours_case {
    const char *value;
    int want;
};

static const struct ours_case ours[] = {
    {" mx.example.org; spf=pass", 1},
    {" MX.Example.ORG; dkim=pass", 1},
    {" mx.example.org 1; none", 1},
    {"mx.example.org;dmarc=pass", 1},
    {" (forged) mx.example.org; dmarc=pass", 1},
    {" (a (nested) comment)\r\n\tmx.example.org; dmarc=pass", 1},
    {" \"mx.example.org\"; dmarc=pass", 1},
    {" mx.example.org.evil; dmarc=pass", 0},
    {" evil.mx.example.org; dmarc=pass", 0},
    {" mx.example.or; dmarc=pass", 0},
    {" other.example; dmarc=pass header.from=mx.example.org", 0},
    {"", 0},
    {" (unclosed comment mx.example.org;", 0},
};

static void test_is_ours(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
        int got = pst_authres_is_ours(ours[i].value, strlen(ours[i].value), ID);
        if (got != ours[i].want) {
            printf("# [%s]: got %d want %d\n", ours[i].value, got, ours[i].want);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_strip(void **state)
{
    (void)state;
    static const char msg[] = "Received: from a by b\r\n"
                              "Authentication-Results: mx.example.org; dmarc=pass\r\n"
                              "authentication-results: (x) MX.EXAMPLE.ORG;\r\n"
                              "\tdkim=pass header.d=example.com\r\n"
                              "Authentication-Results: other.example; spf=fail\r\n"
                              "From: a@example.com\r\n"
                              "Authentication-Results: mx.example.org; spf=pass\r\n"
                              "\r\n"
                              "Authentication-Results: mx.example.org; in the body\r\n";
    static const char want[] = "Received: from a by b\r\n"
                               "Authentication-Results: other.example; spf=fail\r\n"
                               "From: a@example.com\r\n"
                               "\r\n"
                               "Authentication-Results: mx.example.org; in the body\r\n";
    struct pst_buf *b = pst_buf_new(4096);
    size_t removed = 0;
    const char *why = NULL;
    assert_int_equal(pst_authres_strip(msg, strlen(msg), ID, b, &removed, &why), 0);
    assert_int_equal(removed, 3);
    assert_string_equal(pst_buf_data(b), want);

    /* nothing to remove: a copy */
    pst_buf_reset(b);
    assert_int_equal(pst_authres_strip(want, strlen(want), ID, b, &removed, &why), 0);
    assert_int_equal(removed, 0);
    assert_string_equal(pst_buf_data(b), want);

    /* a header section that does not split */
    pst_buf_reset(b);
    assert_int_equal(pst_authres_strip("bad\nline\r\n", 11, ID, b, &removed, &why),
                     PST_ERR_BARE_EOL);
    pst_buf_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),    cmocka_unit_test(test_values),
        cmocka_unit_test(test_injection), cmocka_unit_test(test_is_ours),
        cmocka_unit_test(test_strip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
