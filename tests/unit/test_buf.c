/* test_buf.c - the bounded buffer: limits, formatting, consume, steal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>

#include "buf.h"
#include "err.h"

static void test_add_within_max(void **state)
{
    struct pst_buf *b = pst_buf_new(8);
    assert_non_null(b);
    assert_int_equal(pst_buf_addstr(b, "abcd"), 0);
    assert_int_equal(pst_buf_addstr(b, "efgh"), 0);
    assert_int_equal(pst_buf_len(b), 8);
    assert_string_equal(pst_buf_data(b), "abcdefgh");
    pst_buf_free(b);
}

static void test_add_past_max_leaves_buffer(void **state)
{
    struct pst_buf *b = pst_buf_new(5);
    assert_int_equal(pst_buf_addstr(b, "abc"), 0);
    assert_int_equal(pst_buf_addstr(b, "def"), PST_ERR_TOOBIG);
    assert_int_equal(pst_buf_len(b), 3);
    assert_string_equal(pst_buf_data(b), "abc");
    assert_int_equal(pst_buf_addf(b, "%d", 123), PST_ERR_TOOBIG);
    assert_int_equal(pst_buf_addf(b, "%d", 12), 0);
    assert_string_equal(pst_buf_data(b), "abc12");
    assert_int_equal(pst_buf_addc(b, 'x'), PST_ERR_TOOBIG);
    pst_buf_free(b);
}

static void test_consume_and_truncate(void **state)
{
    struct pst_buf *b = pst_buf_new_secret(1024);
    for (int i = 0; i < 100; i++)
        assert_int_equal(pst_buf_addf(b, "%02d", i), 0);
    assert_int_equal(pst_buf_len(b), 200);
    pst_buf_consume(b, 190);
    assert_string_equal(pst_buf_data(b), "9596979899");
    assert_int_equal(pst_buf_truncate(b, 4), 0);
    assert_string_equal(pst_buf_data(b), "9596");
    assert_int_equal(pst_buf_truncate(b, 5), PST_ERR_INVAL);
    pst_buf_consume(b, 99);
    assert_int_equal(pst_buf_len(b), 0);
    assert_string_equal(pst_buf_data(b), "");
    pst_buf_free(b);
}

static void test_steal(void **state)
{
    struct pst_buf *b = pst_buf_new(64);
    char *s = pst_buf_steal(b);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(pst_buf_add(b, "a\0b", 3), 0);
    s = pst_buf_steal(b);
    assert_memory_equal(s, "a\0b", 4);
    free(s);
    assert_int_equal(pst_buf_len(b), 0);
    pst_buf_free(b);
    pst_buf_free(NULL);
}

static void test_strerror(void **state)
{
    assert_string_equal(pst_strerror(PST_ERR_TOOBIG), "limit exceeded");
    assert_string_equal(pst_strerror(12345), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_within_max),
        cmocka_unit_test(test_add_past_max_leaves_buffer),
        cmocka_unit_test(test_consume_and_truncate),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
