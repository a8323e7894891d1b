/* test_cidr.c - address prefixes: parsing and matching (lib/core/util/cidr). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cidr.h"
#include "err.h"

static void parse_good(void **state)
{
    (void)state;
    struct pst_cidr c;
    assert_int_equal(pst_cidr_parse("192.0.2.0/24", &c), 0);
    assert_int_equal(c.v6, 0);
    assert_int_equal(c.bits, 24);
    assert_int_equal(pst_cidr_parse("192.0.2.77/24", &c), 0);
    assert_int_equal(c.addr[3], 0); /* host bits cleared */
    assert_int_equal(pst_cidr_parse("2001:db8::/32", &c), 0);
    assert_int_equal(c.v6, 1);
    assert_int_equal(c.bits, 32);
    assert_int_equal(pst_cidr_parse("::1", &c), 0);
    assert_int_equal(c.bits, 128);
    assert_int_equal(pst_cidr_parse("10.0.0.1", &c), 0);
    assert_int_equal(c.bits, 32);
    assert_int_equal(pst_cidr_parse("0.0.0.0/0", &c), 0);
}

static void parse_bad(void **state)
{
    (void)state;
    struct pst_cidr c;
    const char *bad[] = {"",
                         "192.0.2.0/33",
                         "2001:db8::/129",
                         "192.0.2.0/",
                         "192.0.2.0/024",
                         "192.0.2.0/2x",
                         "192.0.2",
                         "example.org",
                         "192.0.2.0/24/1",
                         "1.2.3.4 ",
                         "/24"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(pst_cidr_parse(bad[i], &c), PST_ERR_SYNTAX);
}

static void match(void **state)
{
    (void)state;
    struct pst_cidr l[3];
    assert_int_equal(pst_cidr_parse("127.0.0.0/8", &l[0]), 0);
    assert_int_equal(pst_cidr_parse("2001:db8:1::/48", &l[1]), 0);
    assert_int_equal(pst_cidr_parse("192.0.2.128/25", &l[2]), 0);
    assert_true(pst_cidr_match_any(l, 3, "127.1.2.3"));
    assert_true(pst_cidr_match_any(l, 3, "::ffff:127.0.0.1")); /* IPv4-mapped */
    assert_true(pst_cidr_match_any(l, 3, "2001:db8:1:ffff::5"));
    assert_true(pst_cidr_match_any(l, 3, "192.0.2.200"));
    assert_false(pst_cidr_match_any(l, 3, "192.0.2.127"));
    assert_false(pst_cidr_match_any(l, 3, "2001:db8:2::1"));
    assert_false(pst_cidr_match_any(l, 3, "128.0.0.1"));
    assert_false(pst_cidr_match_any(l, 3, "not an address"));
    assert_false(pst_cidr_match_any(l, 0, "127.0.0.1"));
    assert_false(pst_cidr_match_any(l, 3, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_good),
        cmocka_unit_test(parse_bad),
        cmocka_unit_test(match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
