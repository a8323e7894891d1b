/*
 * test_smtp_reply.c - reply formatting: single and multi-line replies,
 * control characters, the 512-octet line limit, bad codes, full buffers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "smtp.h"

struct reply_case {
    const char *name;
    int code;
    const char *enh;
    const char *text; /* formatted with "%s" */
    int rc;
    const char *want;
};

static const struct reply_case reply_cases[] = {
    {"greeting without enhanced code", 220, NULL, "mx.example ESMTP postern", 0,
     "220 mx.example ESMTP postern\r\n"},
    {"ok", 250, "2.0.0", "OK", 0, "250 2.0.0 OK\r\n"},
    {"354 without enhanced code", 354, NULL, "End data with <CR><LF>.<CR><LF>", 0,
     "354 End data with <CR><LF>.<CR><LF>\r\n"},
    {"CRLF injection", 250, "2.1.0", "<a@b>\r\n250 fake", 0, "250 2.1.0 <a@b>??250 fake\r\n"},
    {"bare LF", 501, "5.5.4", "a\nb", 0, "501 5.5.4 a?b\r\n"},
    {"tab, escape and DEL", 500, "5.5.2", "a\tb\x1b[0m\x7f", 0, "500 5.5.2 a?b?[0m?\r\n"},
    {"UTF-8 kept", 250, "2.1.5", "<j\xc3\xb6ran@b>", 0, "250 2.1.5 <j\xc3\xb6ran@b>\r\n"},
    {"empty text with enhanced code", 250, "2.0.0", "", 0, "250 2.0.0\r\n"},
    {"empty text", 250, NULL, "", 0, "250\r\n"},
    {"three-digit subcodes", 550, "5.100.999", "x", 0, "550 5.100.999 x\r\n"},
    {"code too small", 199, NULL, "x", PST_ERR_INVAL, ""},
    {"code too large", 600, NULL, "x", PST_ERR_INVAL, ""},
    {"second digit above 5", 260, NULL, "x", PST_ERR_INVAL, ""},
    {"class differs from code", 250, "5.5.2", "x", PST_ERR_INVAL, ""},
    {"class 3", 354, "3.0.0", "x", PST_ERR_INVAL, ""},
    {"enhanced code too short", 250, "2.0", "x", PST_ERR_INVAL, ""},
    {"enhanced code leading zero", 250, "2.01.0", "x", PST_ERR_INVAL, ""},
    {"enhanced code four digits", 250, "2.0.1000", "x", PST_ERR_INVAL, ""},
    {"enhanced code trailing text", 250, "2.0.0 ", "x", PST_ERR_INVAL, ""},
    {"enhanced code empty", 250, "", "x", PST_ERR_INVAL, ""},
};

static const char *esc(const char *s)
{
    static char b[4096];
    size_t j = 0;
    for (; *s != '\0' && j + 5 < sizeof(b); s++) {
        if (*s == '\r')
            j += (size_t)snprintf(b + j, 8, "\\r");
        else if (*s == '\n')
            j += (size_t)snprintf(b + j, 8, "\\n");
        else
            b[j++] = *s;
    }
    b[j] = '\0';
    return b;
}

static void test_reply_table(void **state)
{
    int bad = 0;
    struct pst_buf *out = pst_buf_new(4096);
    for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
        const struct reply_case *t = &reply_cases[i];
        pst_buf_reset(out);
        int rc = pst_smtp_reply(out, t->code, t->enh, "%s", t->text);
        if (rc != t->rc || strcmp(pst_buf_data(out), t->want) != 0) {
            print_error("%s: got rc %d \"%s\"", t->name, rc, esc(pst_buf_data(out)));
            print_error(" want rc %d \"%s\"\n", t->rc, esc(t->want));
            bad++;
        }
    }
    pst_buf_free(out);
    assert_int_equal(bad, 0);
}

static void test_reply_format(void **state)
{
    struct pst_buf *out = pst_buf_new(4096);
    assert_int_equal(pst_smtp_reply(out, 250, "2.0.0", "Ok: queued as %s, %d bytes", "Q1", 42), 0);
    assert_string_equal(pst_buf_data(out), "250 2.0.0 Ok: queued as Q1, 42 bytes\r\n");
    /* a NUL produced by the format is a control octet too */
    pst_buf_reset(out);
    assert_int_equal(pst_smtp_reply(out, 250, NULL, "a%cb", 0), 0);
    assert_int_equal(pst_buf_len(out), 9);
    assert_memory_equal(pst_buf_data(out), "250 a?b\r\n", 9);
    pst_buf_free(out);
}

/* RFC 5321 4.5.3.1.5: at most 512 octets with CRLF; cut at a character. */
static void test_reply_line_limit(void **state)
{
    struct pst_buf *out = pst_buf_new(4096);
    char text[1000];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    assert_int_equal(pst_smtp_reply(out, 550, "5.1.1", "%s", text), 0);
    assert_int_equal(pst_buf_len(out), 512);
    assert_memory_equal(pst_buf_data(out) + 510, "\r\n", 2);

    /* "550 5.1.1 " is 10 octets, 500 remain for text: 499 x and a
     * two-octet character would end at 501, so it is left out */
    memset(text, 'x', 499);
    memcpy(text + 499, "\xc3\xa9zzz", 6);
    pst_buf_reset(out);
    assert_int_equal(pst_smtp_reply(out, 550, "5.1.1", "%s", text), 0);
    assert_int_equal(pst_buf_len(out), 511);
    assert_memory_equal(pst_buf_data(out) + 507, "xx\r\n", 4);

    /* 498 x and the character fit exactly */
    memset(text, 'x', 498);
    memcpy(text + 498, "\xc3\xa9zzz", 6);
    pst_buf_reset(out);
    assert_int_equal(pst_smtp_reply(out, 550, "5.1.1", "%s", text), 0);
    assert_int_equal(pst_buf_len(out), 512);
    assert_memory_equal(pst_buf_data(out) + 508, "\xc3\xa9\r\n", 4);

    /* same for multi-line replies */
    const char *lines[] = {text, "last"};
    memset(text, 'y', sizeof(text) - 1);
    pst_buf_reset(out);
    assert_int_equal(pst_smtp_reply_lines(out, 250, lines, 2), 0);
    assert_int_equal(pst_buf_len(out), 512 + 10);
    assert_memory_equal(pst_buf_data(out), "250-yyy", 7);
    assert_memory_equal(pst_buf_data(out) + 510, "\r\n250 last\r\n", 12);
    pst_buf_free(out);
}

/* A reply that does not fit leaves the buffer as it was. */
static void test_reply_toobig(void **state)
{
    struct pst_buf *out = pst_buf_new(30);
    assert_int_equal(pst_buf_addstr(out, "keep"), 0);
    assert_int_equal(pst_smtp_reply(out, 250, "2.0.0", "%s", "this is far too long"),
                     PST_ERR_TOOBIG);
    assert_string_equal(pst_buf_data(out), "keep");
    const char *lines[] = {"abc", "def", "ghi"};
    assert_int_equal(pst_smtp_reply_lines(out, 250, lines, 3), PST_ERR_TOOBIG);
    assert_string_equal(pst_buf_data(out), "keep");
    assert_int_equal(pst_smtp_reply_lines(out, 250, lines, 2), 0);
    assert_string_equal(pst_buf_data(out), "keep250-abc\r\n250 def\r\n");
    pst_buf_free(out);
}

struct lines_case {
    const char *name;
    int code;
    const char *lines[5];
    size_t n;
    int rc;
    const char *want;
};

static const struct lines_case lines_cases[] = {
    {"ehlo reply (RFC 5321 4.2.1)",
     250,
     {"mx.example", "PIPELINING", "SIZE 10240000", "8BITMIME"},
     4,
     0,
     "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"},
    {"one line", 250, {"OK"}, 1, 0, "250 OK\r\n"},
    {"two lines",
     220,
     {"mx.example ESMTP", "no UCE"},
     2,
     0,
     "220-mx.example ESMTP\r\n220 no UCE\r\n"},
    {"control characters", 250, {"a\r\n250 b", "c\x01"}, 2, 0, "250-a??250 b\r\n250 c?\r\n"},
    {"empty lines", 250, {"", ""}, 2, 0, "250-\r\n250\r\n"},
    {"no lines", 250, {NULL}, 0, PST_ERR_INVAL, ""},
    {"a NULL line", 250, {"a", NULL}, 2, PST_ERR_INVAL, ""},
    {"bad code", 99, {"a"}, 1, PST_ERR_INVAL, ""},
};

static void test_lines_table(void **state)
{
    int bad = 0;
    struct pst_buf *out = pst_buf_new(4096);
    for (size_t i = 0; i < sizeof(lines_cases) / sizeof(lines_cases[0]); i++) {
        const struct lines_case *t = &lines_cases[i];
        pst_buf_reset(out);
        int rc = pst_smtp_reply_lines(out, t->code, t->lines, t->n);
        if (rc != t->rc || strcmp(pst_buf_data(out), t->want) != 0) {
            print_error("%s: got rc %d \"%s\"", t->name, rc, esc(pst_buf_data(out)));
            print_error(" want rc %d \"%s\"\n", t->rc, esc(t->want));
            bad++;
        }
    }
    pst_buf_free(out);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_table),      cmocka_unit_test(test_reply_format),
        cmocka_unit_test(test_reply_line_limit), cmocka_unit_test(test_reply_toobig),
        cmocka_unit_test(test_lines_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
