/*
 * test_msg_header.c - the RFC 5322 header splitter: fields, folding, the
 * body offset, bad line ends, NUL, bad lines and every limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "msg.h"

struct split_case {
    const char *name;
    const char *in;
    struct pst_msg_limits lim;
    int rc;
    const char *want; /* fields as "name=value|" ; then "#" body offset */
};

static const struct split_case cases[] = {
    {"two fields and a body", "From: a\r\nTo: b\r\n\r\nbody\r\n", {0}, 0, "From= a|To= b|#18"},
    {"folded field",
     "Subject: a\r\n b\r\n\tc\r\nX: y\r\n\r\n",
     {0},
     0,
     "Subject= a\r\n b\r\n\tc|X= y|#28"},
    {"no body", "From: a\r\n", {0}, 0, "From= a|#9"},
    {"no final CRLF", "From: a", {0}, 0, "From= a|#7"},
    {"empty message", "", {0}, 0, "#0"},
    {"empty header section", "\r\nbody", {0}, 0, "#2"},
    {"WSP before colon (obs)", "From : a\r\n\r\n", {0}, 0, "From= a|#12"},
    {"empty value", "X:\r\n\r\n", {0}, 0, "X=|#6"},
    {"8-bit value", "Subject: \xc3\xa9\r\n\r\n", {0}, 0, "Subject= \xc3\xa9|#15"},
    {"colon in value", "X: a:b\r\n\r\n", {0}, 0, "X= a:b|#10"},
    {"bare LF", "From: a\nTo: b\r\n\r\n", {0}, PST_ERR_BARE_EOL, ""},
    {"bare CR", "From: a\rTo: b\r\n\r\n", {0}, PST_ERR_BARE_EOL, ""},
    {"NUL", "From: a\0b\r\n\r\n", {0}, PST_ERR_NUL, ""},
    {"no colon", "From a\r\n\r\n", {0}, PST_ERR_SYNTAX, ""},
    {"empty name", ": a\r\n\r\n", {0}, PST_ERR_SYNTAX, ""},
    {"space in name", "Fr om: a\r\n\r\n", {0}, PST_ERR_SYNTAX, ""},
    {"continuation first", " a\r\nFrom: b\r\n\r\n", {0}, PST_ERR_SYNTAX, ""},
    {"field limit", "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", {2, 0, 0}, PST_ERR_TOOBIG, ""},
    {"field limit exact", "A: 1\r\nB: 2\r\n\r\n", {2, 0, 0}, 0, "A= 1|B= 2|#14"},
    {"header size limit", "A: 1234567890\r\n\r\n", {0, 10, 0}, PST_ERR_TOOBIG, ""},
    {"field size limit", "A: 1\r\n 2345678\r\n\r\n", {0, 0, 8}, PST_ERR_TOOBIG, ""},
    {"body not checked", "A: 1\r\n\r\nbare\nLF\0", {0}, 0, "A= 1|#8"},
};

static void render(const struct pst_msg_header *h, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < h->nfields; i++) {
        const struct pst_msg_field *f = &h->fields[i];
        j += (size_t)snprintf(out + j, n - j, "%.*s=%.*s|", (int)f->name_len, f->name,
                              (int)f->value_len, f->value);
        /* raw covers name to value end */
        assert_true(f->raw == f->name && f->value + f->value_len == f->raw + f->raw_len);
    }
    snprintf(out + j, n - j, "#%zu", h->body_off);
}

static void test_split_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct split_case *t = &cases[i];
        size_t len = strlen(t->in);
        if (strcmp(t->name, "NUL") == 0)
            len = 12;
        if (strcmp(t->name, "body not checked") == 0)
            len = 17;
        struct pst_msg_header *h = NULL;
        const char *why = NULL;
        int rc = pst_msg_split(t->in, len, &t->lim, &h, &why);
        char got[512] = "";
        if (rc == 0)
            render(h, got, sizeof(got));
        if (rc != t->rc || strcmp(got, t->want) != 0 || (rc != 0 && why == NULL)) {
            print_error("%s: got rc %d \"%s\" want rc %d \"%s\"\n", t->name, rc, got, t->rc,
                        t->want);
            bad++;
        }
        pst_msg_header_free(h);
    }
    assert_int_equal(bad, 0);
}

static void test_count_and_case(void **state)
{
    (void)state;
    const char *m = "from: a\r\nFROM: b\r\nTo: c\r\n\r\n";
    struct pst_msg_header *h;
    assert_int_equal(pst_msg_split(m, strlen(m), NULL, &h, NULL), 0);
    assert_int_equal(pst_msg_count(h, "From"), 2);
    assert_int_equal(pst_msg_count(h, "to"), 1);
    assert_int_equal(pst_msg_count(h, "cc"), 0);
    pst_msg_header_free(h);
    pst_msg_header_free(NULL);
}

static void test_default_field_limit(void **state)
{
    (void)state;
    size_t n = PST_MSG_MAX_FIELDS + 1;
    char *m = malloc(n * 6 + 3);
    assert_non_null(m);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(m + j, "X: 1\r\n", 6);
        j += 6;
    }
    struct pst_msg_header *h = NULL;
    const char *why;
    assert_int_equal(pst_msg_split(m, j, NULL, &h, &why), PST_ERR_TOOBIG);
    assert_null(h);
    assert_int_equal(pst_msg_split(m, j - 6, NULL, &h, &why), 0);
    assert_int_equal(h->nfields, PST_MSG_MAX_FIELDS);
    pst_msg_header_free(h);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_table),
        cmocka_unit_test(test_count_and_case),
        cmocka_unit_test(test_default_field_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
