/*
 * test_dsn.c - RFC 3461 parameters (xtext, NOTIFY, RET, ENVID, ORCPT and
 * their encoders), the decisions (which recipient gets a notice, null
 * sender, permanent status) and the generated RFC 3464 report, parsed
 * back: headers, boundary, parts, per-recipient fields, RET=HDRS, the size
 * cap, header injection through recipients and diagnostics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "dsn.h"
#include "err.h"

/* ---- xtext ---- */

struct xtext_case {
    const char *name;
    const char *in;
    int rc;
    const char *want; /* decoded */
    size_t wantlen;
};

static const struct xtext_case xtext_cases[] = {
    {"plain", "abc@example.org", 0, "abc@example.org", 15},
    {"hexchar plus", "a+2Bb", 0, "a+b", 3},
    {"hexchar equals and space", "+3D+20x", 0, "= x", 3},
    {"hexchar NUL", "a+00b", 0, "a\0b", 3},
    {"high octet", "+C3+A9", 0, "\xc3\xa9", 2},
    {"empty", "", 0, "", 0},
    {"lower-case hex refused", "a+2bb", PST_ERR_SYNTAX, NULL, 0},
    {"plus at end", "ab+", PST_ERR_SYNTAX, NULL, 0},
    {"plus one digit at end", "ab+4", PST_ERR_SYNTAX, NULL, 0},
    {"plus non-hex", "a+G0", PST_ERR_SYNTAX, NULL, 0},
    {"bare equals", "a=b", PST_ERR_SYNTAX, NULL, 0},
    {"space", "a b", PST_ERR_SYNTAX, NULL, 0},
    {"control", "a\rb", PST_ERR_SYNTAX, NULL, 0},
    {"non-ASCII octet", "\xc3\xa9", PST_ERR_SYNTAX, NULL, 0},
    {"DEL", "a\x7f", PST_ERR_SYNTAX, NULL, 0},
};

static void test_xtext_decode(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(xtext_cases) / sizeof(xtext_cases[0]); i++) {
        const struct xtext_case *t = &xtext_cases[i];
        char out[64];
        size_t n = 99;
        int rc = pst_xtext_decode(t->in, strlen(t->in), out, sizeof(out), &n);
        if (rc != t->rc || (rc == 0 && (n != t->wantlen || memcmp(out, t->want, n) != 0))) {
            print_error("%s: got rc %d len %zu want rc %d len %zu\n", t->name, rc, n, t->rc,
                        t->wantlen);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    /* the output room is respected: 3 octets and the NUL need 4 */
    char small[4];
    assert_int_equal(pst_xtext_decode("abcd", 4, small, sizeof(small), NULL), PST_ERR_TOOBIG);
    assert_int_equal(pst_xtext_decode("abc", 3, small, sizeof(small), NULL), 0);
    assert_string_equal(small, "abc");
}

static void test_xtext_round_trip(void **state)
{
    unsigned char all[256];
    char back[257];
    size_t n = 0;
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    struct pst_buf *b = pst_buf_new(2048);
    assert_non_null(b);
    assert_int_equal(pst_xtext_encode(b, all, sizeof(all)), 0);
    /* only xchars in the encoding */
    const char *e = pst_buf_data(b);
    for (size_t i = 0; i < pst_buf_len(b); i++)
        assert_true(e[i] >= '!' && e[i] <= '~' && e[i] != '=');
    assert_int_equal(pst_xtext_decode(e, pst_buf_len(b), back, sizeof(back), &n), 0);
    assert_int_equal(n, 256);
    assert_memory_equal(back, all, 256);
    /* "+" and "=" are always encoded, other graphics never */
    pst_buf_reset(b);
    assert_int_equal(pst_xtext_encode(b, "a+b=c", 5), 0);
    assert_string_equal(pst_buf_data(b), "a+2Bb+3Dc");
    /* all or nothing when the buffer is full */
    struct pst_buf *s = pst_buf_new(4);
    assert_non_null(s);
    assert_int_equal(pst_buf_addstr(s, "x"), 0);
    assert_int_equal(pst_xtext_encode(s, "a+b", 3), PST_ERR_TOOBIG);
    assert_int_equal(pst_buf_len(s), 1);
    pst_buf_free(s);
    pst_buf_free(b);
}

/* ---- NOTIFY, RET, ENVID, ORCPT ---- */

struct notify_case {
    const char *name;
    const char *v;
    int rc;
    unsigned want;
};

static const struct notify_case notify_cases[] = {
    {"never", "NEVER", 0, PST_DSN_NOTIFY_NEVER},
    {"never lower case", "never", 0, PST_DSN_NOTIFY_NEVER},
    {"success", "SUCCESS", 0, PST_DSN_NOTIFY_SUCCESS},
    {"all three", "SUCCESS,FAILURE,DELAY", 0,
     PST_DSN_NOTIFY_SUCCESS | PST_DSN_NOTIFY_FAILURE | PST_DSN_NOTIFY_DELAY},
    {"mixed case, other order", "delay,Failure", 0, PST_DSN_NOTIFY_DELAY | PST_DSN_NOTIFY_FAILURE},
    {"no value", NULL, PST_ERR_SYNTAX, 0},
    {"empty", "", PST_ERR_SYNTAX, 0},
    {"never with success", "NEVER,SUCCESS", PST_ERR_SYNTAX, 0},
    {"success with never", "SUCCESS,NEVER", PST_ERR_SYNTAX, 0},
    {"repeat", "FAILURE,FAILURE", PST_ERR_SYNTAX, 0},
    {"never twice", "NEVER,NEVER", PST_ERR_SYNTAX, 0},
    {"trailing comma", "SUCCESS,", PST_ERR_SYNTAX, 0},
    {"leading comma", ",SUCCESS", PST_ERR_SYNTAX, 0},
    {"empty element", "SUCCESS,,DELAY", PST_ERR_SYNTAX, 0},
    {"unknown", "ALWAYS", PST_ERR_SYNTAX, 0},
    {"prefix of a keyword", "SUCC", PST_ERR_SYNTAX, 0},
    {"too long", "SUCCESS,FAILURE,DELAY,DELAYX", PST_ERR_SYNTAX, 0},
};

static void test_notify(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(notify_cases) / sizeof(notify_cases[0]); i++) {
        const struct notify_case *t = &notify_cases[i];
        unsigned got = 0xdead;
        const char *why = NULL;
        int rc = pst_dsn_parse_notify(t->v, &got, &why);
        if (rc != t->rc || (rc == 0 && got != t->want) || (rc != 0 && got != 0xdead) ||
            (rc != 0 && why == NULL)) {
            print_error("%s: got rc %d flags %#x want rc %d flags %#x\n", t->name, rc, got, t->rc,
                        t->want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_ret(void **state)
{
    enum pst_dsn_ret r = PST_DSN_RET_NONE;
    const char *why = NULL;
    assert_int_equal(pst_dsn_parse_ret("FULL", &r, &why), 0);
    assert_int_equal(r, PST_DSN_RET_FULL);
    assert_int_equal(pst_dsn_parse_ret("hdrs", &r, &why), 0);
    assert_int_equal(r, PST_DSN_RET_HDRS);
    assert_int_equal(pst_dsn_parse_ret("HEADERS", &r, &why), PST_ERR_SYNTAX);
    assert_non_null(why);
    assert_int_equal(pst_dsn_parse_ret(NULL, &r, &why), PST_ERR_SYNTAX);
    assert_int_equal(pst_dsn_parse_ret("", &r, &why), PST_ERR_SYNTAX);
    assert_int_equal(pst_dsn_parse_ret("FULL,HDRS", &r, &why), PST_ERR_SYNTAX);
    assert_int_equal(r, PST_DSN_RET_HDRS); /* unchanged by the failures */
}

struct value_case {
    const char *name;
    const char *v;
    int rc;
    const char *want; /* ENVID: decoded; ORCPT: "type|addr" */
};

static const struct value_case envid_cases[] = {
    {"plain", "QQ314159", 0, "QQ314159"},
    {"hexchar", "a+2Bb+20c", 0, "a+b c"},
    {"tab allowed", "a+09b", 0, "a\tb"},
    {"100 octets",
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "012345678901234567890123456789",
     0,
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "012345678901234567890123456789"},
    {"101 octets",
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890",
     PST_ERR_SYNTAX, NULL},
    {"no value", NULL, PST_ERR_SYNTAX, NULL},
    {"empty", "", PST_ERR_SYNTAX, NULL},
    {"bad xtext", "a+zz", PST_ERR_SYNTAX, NULL},
    {"decodes to CRLF", "a+0D+0Ab", PST_ERR_SYNTAX, NULL},
    {"decodes to NUL", "a+00", PST_ERR_SYNTAX, NULL},
    {"decodes to non-ASCII", "+C3+A9", PST_ERR_SYNTAX, NULL},
};

static const struct value_case orcpt_cases[] = {
    {"rfc822", "rfc822;bob@example.net", 0, "rfc822|bob@example.net"},
    {"hexchar kept case", "RFC822;Bob+2Bx@Example.net", 0, "RFC822|Bob+x@Example.net"},
    {"utf-8 type", "utf-8;j\\x{F6}ran@example.net", 0, "utf-8|j\\x{F6}ran@example.net"},
    {"x400", "x400;/G+3Da/S+3Db/", 0, "x400|/G=a/S=b/"},
    {"no semicolon", "rfc822", PST_ERR_SYNTAX, NULL},
    {"empty type", ";a@b", PST_ERR_SYNTAX, NULL},
    {"type with parenthesis", "rfc(822;a@b", PST_ERR_SYNTAX, NULL},
    {"type too long", "abcdefghijabcdefghijabcdefghijabc;a@b", PST_ERR_SYNTAX, NULL},
    {"empty address", "rfc822;", PST_ERR_SYNTAX, NULL},
    {"bad xtext", "rfc822;a+4", PST_ERR_SYNTAX, NULL},
    {"decodes to CRLF", "rfc822;a@b+0D+0ABcc:x", PST_ERR_SYNTAX, NULL},
    {"decodes to non-ASCII", "rfc822;+C3+A9@b", PST_ERR_SYNTAX, NULL},
    {"no value", NULL, PST_ERR_SYNTAX, NULL},
};

static void test_envid(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(envid_cases) / sizeof(envid_cases[0]); i++) {
        const struct value_case *t = &envid_cases[i];
        char dec[PST_DSN_ENVID_MAX + 1] = "unchanged";
        const char *why = NULL;
        int rc = pst_dsn_parse_envid(t->v, dec, &why);
        if (rc != t->rc || (rc == 0 && strcmp(dec, t->want) != 0) ||
            (rc != 0 && (why == NULL || strcmp(dec, "unchanged") != 0))) {
            print_error("%s: got rc %d \"%s\" want rc %d\n", t->name, rc, dec, t->rc);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_orcpt(void **state)
{
    int bad = 0;
    char v501[PST_DSN_ORCPT_MAX + 2];
    for (size_t i = 0; i < sizeof(orcpt_cases) / sizeof(orcpt_cases[0]); i++) {
        const struct value_case *t = &orcpt_cases[i];
        char type[PST_DSN_ADDRTYPE_MAX + 1] = "", addr[PST_DSN_ORCPT_MAX + 1] = "";
        char got[700];
        const char *why = NULL;
        int rc = pst_dsn_parse_orcpt(t->v, type, addr, &why);
        snprintf(got, sizeof(got), "%s|%s", type, addr);
        if (rc != t->rc || (rc == 0 && strcmp(got, t->want) != 0) || (rc != 0 && why == NULL)) {
            print_error("%s: got rc %d \"%s\" want rc %d \"%s\"\n", t->name, rc, got, t->rc,
                        t->want ? t->want : "");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    /* RFC 3461 4.2: up to 500 characters */
    memcpy(v501, "rfc822;", 7);
    memset(v501 + 7, 'a', sizeof(v501) - 8);
    v501[PST_DSN_ORCPT_MAX] = '\0';
    assert_int_equal(pst_dsn_parse_orcpt(v501, NULL, NULL, NULL), 0);
    v501[PST_DSN_ORCPT_MAX] = 'a';
    v501[PST_DSN_ORCPT_MAX + 1] = '\0';
    assert_int_equal(pst_dsn_parse_orcpt(v501, NULL, NULL, NULL), PST_ERR_SYNTAX);
}

static void test_encoders(void **state)
{
    struct pst_buf *b = pst_buf_new(1024);
    assert_non_null(b);
    assert_int_equal(pst_dsn_notify_encode(b, PST_DSN_NOTIFY_DELAY | PST_DSN_NOTIFY_SUCCESS), 0);
    assert_string_equal(pst_buf_data(b), "SUCCESS,DELAY");
    pst_buf_reset(b);
    assert_int_equal(pst_dsn_notify_encode(b, PST_DSN_NOTIFY_NEVER), 0);
    assert_string_equal(pst_buf_data(b), "NEVER");
    assert_int_equal(pst_dsn_notify_encode(b, 0), PST_ERR_INVAL);
    assert_int_equal(pst_dsn_notify_encode(b, PST_DSN_NOTIFY_NEVER | PST_DSN_NOTIFY_DELAY),
                     PST_ERR_INVAL);
    assert_int_equal(pst_dsn_notify_encode(b, 0x100), PST_ERR_INVAL);

    pst_buf_reset(b);
    assert_int_equal(pst_dsn_mail_params_encode(b, PST_DSN_RET_HDRS, "Q+2B1"), 0);
    assert_string_equal(pst_buf_data(b), " RET=HDRS ENVID=Q+2B1");
    pst_buf_reset(b);
    assert_int_equal(pst_dsn_mail_params_encode(b, PST_DSN_RET_NONE, ""), 0);
    assert_string_equal(pst_buf_data(b), "");
    assert_int_equal(pst_dsn_mail_params_encode(b, PST_DSN_RET_FULL, "a b"), PST_ERR_INVAL);
    assert_int_equal(pst_buf_len(b), 0);

    assert_int_equal(pst_dsn_rcpt_params_encode(b, PST_DSN_NOTIFY_FAILURE, "rfc822;A+2Bb@c"), 0);
    assert_string_equal(pst_buf_data(b), " NOTIFY=FAILURE ORCPT=rfc822;A+2Bb@c");
    pst_buf_reset(b);
    assert_int_equal(pst_dsn_rcpt_params_encode(b, 0, NULL), 0);
    assert_int_equal(pst_buf_len(b), 0);
    assert_int_equal(pst_dsn_rcpt_params_encode(b, 0, "rfc822;a\r\nb"), PST_ERR_INVAL);

    /* an ORCPT made from an address parses back to it */
    assert_int_equal(pst_dsn_orcpt_from_addr(b, "a+b=c@example.org"), 0);
    assert_string_equal(pst_buf_data(b), "rfc822;a+2Bb+3Dc@example.org");
    char type[40], addr[600];
    assert_int_equal(pst_dsn_parse_orcpt(pst_buf_data(b), type, addr, NULL), 0);
    assert_string_equal(addr, "a+b=c@example.org");
    pst_buf_reset(b);
    /* RFC 6533 3: non-ASCII as \x{HEX}, "\" too */
    assert_int_equal(pst_dsn_orcpt_from_addr(b, "j\xc3\xb6ran\\@\xe4\xbe\x8b.example"), 0);
    assert_string_equal(pst_buf_data(b), "utf-8;j\\x{F6}ran\\x{5C}@\\x{4F8B}.example");
    assert_int_equal(pst_dsn_parse_orcpt(pst_buf_data(b), type, addr, NULL), 0);
    assert_string_equal(type, "utf-8");
    assert_int_equal(pst_dsn_orcpt_from_addr(b, ""), PST_ERR_INVAL);
    assert_int_equal(pst_dsn_orcpt_from_addr(b, "a@b\r\nc"), PST_ERR_INVAL);
    pst_buf_free(b);
}

/* ---- decisions ---- */

static void test_wanted(void **state)
{
#define S PST_DSN_NOTIFY_SUCCESS
#define F PST_DSN_NOTIFY_FAILURE
#define D PST_DSN_NOTIFY_DELAY
#define N PST_DSN_NOTIFY_NEVER
    static const struct {
        unsigned notify;
        enum pst_dsn_action a;
        int policy, want;
    } c[] = {
        {0, PST_DSN_FAILED, 0, 1},    {0, PST_DSN_DELAYED, 1, 1},   {0, PST_DSN_DELAYED, 0, 0},
        {0, PST_DSN_DELIVERED, 1, 0}, {0, PST_DSN_RELAYED, 1, 0},   {N, PST_DSN_FAILED, 1, 0},
        {N, PST_DSN_DELAYED, 1, 0},   {N, PST_DSN_DELIVERED, 1, 0}, {S, PST_DSN_FAILED, 1, 0},
        {S, PST_DSN_DELIVERED, 0, 1}, {S, PST_DSN_RELAYED, 0, 1},   {S, PST_DSN_EXPANDED, 0, 1},
        {F, PST_DSN_FAILED, 0, 1},    {F, PST_DSN_DELAYED, 1, 0},   {F, PST_DSN_DELIVERED, 1, 0},
        {D, PST_DSN_DELAYED, 1, 1},   {D, PST_DSN_DELAYED, 0, 1},   {D, PST_DSN_FAILED, 1, 0},
    };
#undef S
#undef F
#undef D
#undef N
    int bad = 0;
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int got = pst_dsn_wanted(c[i].notify, c[i].a, c[i].policy);
        if (got != c[i].want) {
            print_error("case %zu: notify %#x action %d policy %d: got %d want %d\n", i,
                        c[i].notify, c[i].a, c[i].policy, got, c[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    assert_int_equal(pst_dsn_sender_ok(""), 0);
    assert_int_equal(pst_dsn_sender_ok(NULL), 0);
    assert_int_equal(pst_dsn_sender_ok("a@b"), 1);
}

static void test_status(void **state)
{
    assert_int_equal(pst_dsn_status_permanent("5.1.1"), 1);
    assert_int_equal(pst_dsn_status_permanent("5.100.999"), 1);
    assert_int_equal(pst_dsn_status_permanent("4.4.7"), 0);
    assert_int_equal(pst_dsn_status_permanent("2.0.0"), 0);
    assert_int_equal(pst_dsn_status_permanent("3.0.0"), -1);
    assert_int_equal(pst_dsn_status_permanent("5.1"), -1);
    assert_int_equal(pst_dsn_status_permanent("5.01.1"), -1);
    assert_int_equal(pst_dsn_status_permanent("5.1.1 "), -1);
    assert_int_equal(pst_dsn_status_permanent("5.1.1000"), -1);
    assert_int_equal(pst_dsn_status_permanent(NULL), -1);

    char st[16];
    assert_int_equal(pst_dsn_status_from_reply(550, "5.1.1 no such user", st), 0);
    assert_string_equal(st, "5.1.1");
    assert_int_equal(pst_dsn_status_from_reply(550, "no enhanced code", st), 0);
    assert_string_equal(st, "5.0.0");
    assert_int_equal(pst_dsn_status_from_reply(451, "5.1.1 class differs", st), 0);
    assert_string_equal(st, "4.0.0");
    assert_int_equal(pst_dsn_status_from_reply(250, "2.1.5x", st), 0);
    assert_string_equal(st, "2.0.0");
    assert_int_equal(pst_dsn_status_from_reply(354, "", st), PST_ERR_INVAL);
    assert_int_equal(pst_dsn_status_from_reply(600, "", st), PST_ERR_INVAL);
}

static void test_date(void **state)
{
    struct pst_buf *b = pst_buf_new(64);
    assert_non_null(b);
    assert_int_equal(pst_dsn_date(b, 0), 0);
    assert_string_equal(pst_buf_data(b), "Thu, 01 Jan 1970 00:00:00 +0000");
    pst_buf_reset(b);
    assert_int_equal(pst_dsn_date(b, 1795906713), 0);
    assert_string_equal(pst_buf_data(b), "Sat, 28 Nov 2026 22:58:33 +0000");
    pst_buf_free(b);
}

/* ---- the report, parsed back ---- */

#define NOW     ((time_t)1795906713)
#define ARRIVAL ((time_t)1795900000)

static const unsigned char seed[16] = {0xde, 0xad, 0xbe, 0xef, 1, 2,  3,  4,
                                       5,    6,    7,    8,    9, 10, 11, 12};

static const char original[] = "From: Alice <alice@example.org>\r\n"
                               "To: bob@example.net\r\n"
                               "Subject: lunch\r\n"
                               "Message-ID: <m1@example.org>\r\n"
                               "\r\n"
                               "BODY-MARKER let us meet at noon\r\n";

struct part {
    const char *hdr; /* header section (with its last CRLF) */
    size_t hlen;
    const char *body;
    size_t blen;
};

struct parsed {
    char *text;
    size_t hlen; /* top-level header section */
    char boundary[128];
    struct part parts[8];
    size_t nparts;
};

/* The value of header field name in h[0..n) (first line only), or "" */
static void field(const char *h, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (size_t i = 0; i < n;) {
        const char *e = memchr(h + i, '\n', n - i);
        size_t ll = e != NULL ? (size_t)(e - (h + i)) + 1 : n - i;
        if (ll > nl + 1 && strncasecmp(h + i, name, nl) == 0 && h[i + nl] == ':') {
            size_t s = i + nl + 1;
            while (s < i + ll && h[s] == ' ')
                s++;
            size_t end = i + ll;
            while (end > s && (h[end - 1] == '\r' || h[end - 1] == '\n'))
                end--;
            /* unfold continuation lines */
            size_t o = 0;
            for (size_t k = s; k < end && o + 1 < cap; k++)
                out[o++] = h[k];
            size_t j = i + ll;
            while (j < n && (h[j] == ' ' || h[j] == '\t')) {
                const char *e2 = memchr(h + j, '\n', n - j);
                size_t l2 = e2 != NULL ? (size_t)(e2 - (h + j)) + 1 : n - j;
                size_t end2 = j + l2;
                while (end2 > j && (h[end2 - 1] == '\r' || h[end2 - 1] == '\n'))
                    end2--;
                for (size_t k = j; k < end2 && o + 1 < cap; k++)
                    out[o++] = h[k];
                j += l2;
            }
            out[o] = '\0';
            return;
        }
        i += ll;
    }
}

/* Every line ends in CRLF, no bare CR or LF, no NUL, no line over 998. */
static void check_lines(const char *s, size_t n)
{
    size_t col = 0;
    assert_true(n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n');
    for (size_t i = 0; i < n; i++) {
        assert_true(s[i] != '\0');
        if (s[i] == '\r') {
            assert_true(i + 1 < n && s[i + 1] == '\n');
            i++;
            col = 0;
            continue;
        }
        assert_true(s[i] != '\n');
        col++;
        assert_true(col <= 998);
    }
}

/* Splits the multipart/report at its boundary (RFC 2046 5.1.1). */
static void parse(const char *s, size_t n, struct parsed *p)
{
    char ct[512];
    memset(p, 0, sizeof(*p));
    p->text = malloc(n + 1);
    assert_non_null(p->text);
    memcpy(p->text, s, n);
    p->text[n] = '\0';
    check_lines(s, n);
    const char *hend = strstr(p->text, "\r\n\r\n");
    assert_non_null(hend);
    p->hlen = (size_t)(hend - p->text) + 2;
    field(p->text, p->hlen, "Content-Type", ct, sizeof(ct));
    assert_non_null(strstr(ct, "multipart/report;"));
    assert_non_null(strstr(ct, "report-type=delivery-status"));
    const char *bq = strstr(ct, "boundary=\"");
    assert_non_null(bq);
    bq += 10;
    const char *be = strchr(bq, '"');
    assert_non_null(be);
    assert_true(be - bq > 0 && be - bq <= 70);
    memcpy(p->boundary, bq, (size_t)(be - bq));
    p->boundary[be - bq] = '\0';

    char delim[160];
    snprintf(delim, sizeof(delim), "\r\n--%s", p->boundary);
    size_t dl = strlen(delim);
    const char *cur = strstr(p->text, delim);
    assert_non_null(cur);
    for (;;) {
        cur += dl;
        if (strncmp(cur, "--\r\n", 4) == 0) {
            assert_int_equal((size_t)(cur + 4 - p->text), n); /* close delimiter ends it */
            break;
        }
        assert_true(strncmp(cur, "\r\n", 2) == 0);
        cur += 2;
        const char *next = strstr(cur, delim);
        assert_non_null(next);
        assert_true(p->nparts < 8);
        struct part *pt = &p->parts[p->nparts++];
        const char *ph = strstr(cur, "\r\n\r\n");
        assert_true(ph != NULL && ph < next);
        pt->hdr = cur;
        pt->hlen = (size_t)(ph - cur) + 2;
        pt->body = ph + 4;
        pt->blen = (size_t)(next - pt->body);
        cur = next;
    }
    /* the delimiter appears nowhere else */
    size_t count = 0;
    for (const char *q = strstr(p->text, delim); q != NULL; q = strstr(q + 1, delim))
        count++;
    assert_int_equal(count, p->nparts + 1);
}

static void part_type(const struct part *pt, char *out, size_t cap)
{
    field(pt->hdr, pt->hlen, "Content-Type", out, cap);
}

/* Does a line of s[0..n) start with prefix? */
static int has_line(const char *s, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        if ((i == 0 || s[i - 1] == '\n') && n - i >= pl && memcmp(s + i, prefix, pl) == 0)
            return 1;
    return 0;
}

static struct pst_dsn_msg base_msg(const struct pst_dsn_rcpt *r, size_t n)
{
    struct pst_dsn_msg m = {0};
    m.reporting_mta = "mx.example.org";
    m.sender = "alice@example.org";
    m.envid = "QQ+2B314";
    m.arrival = ARRIVAL;
    m.now = NOW;
    m.seed = seed;
    m.seed_len = sizeof(seed);
    m.original = original;
    m.original_len = sizeof(original) - 1;
    m.rcpts = r;
    m.nrcpts = n;
    return m;
}

static void test_generate_failed(void **state)
{
    struct pst_dsn_rcpt r[2] = {{0}};
    r[0].rcpt = "bob@example.net";
    r[0].orcpt = "rfc822;Bob+2Bx@example.net";
    r[0].action = PST_DSN_FAILED;
    r[0].status = "5.1.1";
    r[0].remote_mta = "mx.example.net";
    r[0].diag = "550-5.1.1 The email account that you tried to reach\r\n"
                "550 5.1.1 does not exist.";
    r[0].last_attempt = NOW - 5;
    r[1].rcpt = "carol@example.net"; /* NOTIFY=SUCCESS only: not reported */
    r[1].notify = PST_DSN_NOTIFY_SUCCESS;
    r[1].action = PST_DSN_FAILED;
    struct pst_dsn_msg m = base_msg(r, 2);
    struct pst_buf *out = pst_buf_new(1 << 20);
    struct pst_dsn_info info;
    assert_non_null(out);
    assert_int_equal(pst_dsn_generate(&m, out, &info), 0);
    assert_int_equal(info.nreported, 1);
    assert_int_equal(info.kind, PST_DSN_FAILED);
    assert_int_equal(info.full_returned, 1);
    assert_int_equal(info.needs_8bitmime, 0);
    assert_int_equal(info.needs_smtputf8, 0);

    struct parsed p;
    char v[1024];
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    field(p.text, p.hlen, "From", v, sizeof(v));
    assert_string_equal(v, "\"Mail Delivery System\" <MAILER-DAEMON@mx.example.org>");
    field(p.text, p.hlen, "To", v, sizeof(v));
    assert_string_equal(v, "<alice@example.org>");
    field(p.text, p.hlen, "Subject", v, sizeof(v));
    assert_string_equal(v, "Undelivered Mail Returned to Sender");
    field(p.text, p.hlen, "Date", v, sizeof(v));
    assert_string_equal(v, "Sat, 28 Nov 2026 22:58:33 +0000");
    field(p.text, p.hlen, "Auto-Submitted", v, sizeof(v));
    assert_string_equal(v, "auto-replied");
    field(p.text, p.hlen, "MIME-Version", v, sizeof(v));
    assert_string_equal(v, "1.0");
    field(p.text, p.hlen, "Message-ID", v, sizeof(v));
    assert_string_equal(v, "<dsn.20261128225833.deadbeef0102030405060708090a0b0c@mx.example.org>");

    assert_int_equal(p.nparts, 3);
    part_type(&p.parts[0], v, sizeof(v));
    assert_string_equal(v, "text/plain; charset=us-ascii");
    assert_non_null(strstr(p.parts[0].body, "<bob@example.net>: delivery failed permanently"));
    assert_null(strstr(p.parts[0].body, "carol"));

    part_type(&p.parts[1], v, sizeof(v));
    assert_string_equal(v, "message/delivery-status");
    const char *ds = p.parts[1].body;
    size_t dn = p.parts[1].blen;
    /* per-message group, blank line, one per-recipient group */
    const char *sep = strstr(ds, "\r\n\r\n");
    assert_true(sep != NULL && (size_t)(sep - ds) < dn);
    size_t mlen = (size_t)(sep - ds) + 2;
    const char *rg = sep + 4;
    size_t rlen = dn - (size_t)(rg - ds);
    field(ds, mlen, "Original-Envelope-Id", v, sizeof(v));
    assert_string_equal(v, "QQ+314"); /* decoded (RFC 3461 6.3 a) */
    field(ds, mlen, "Reporting-MTA", v, sizeof(v));
    assert_string_equal(v, "dns; mx.example.org");
    field(ds, mlen, "Arrival-Date", v, sizeof(v));
    assert_string_equal(v, "Sat, 28 Nov 2026 21:06:40 +0000");
    field(rg, rlen, "Original-Recipient", v, sizeof(v));
    assert_string_equal(v, "rfc822; Bob+x@example.net");
    field(rg, rlen, "Final-Recipient", v, sizeof(v));
    assert_string_equal(v, "rfc822; bob@example.net");
    field(rg, rlen, "Action", v, sizeof(v));
    assert_string_equal(v, "failed");
    field(rg, rlen, "Status", v, sizeof(v));
    assert_string_equal(v, "5.1.1");
    field(rg, rlen, "Remote-MTA", v, sizeof(v));
    assert_string_equal(v, "dns; mx.example.net");
    field(rg, rlen, "Diagnostic-Code", v, sizeof(v));
    assert_string_equal(v, "smtp; 550-5.1.1 The email account that you tried to reach 550 5.1.1 "
                           "does not exist.");
    field(rg, rlen, "Last-Attempt-Date", v, sizeof(v));
    assert_string_equal(v, "Sat, 28 Nov 2026 22:58:28 +0000");
    assert_false(has_line(rg, rlen, "Will-Retry-Until:"));
    assert_null(strstr(ds, "carol"));

    part_type(&p.parts[2], v, sizeof(v));
    assert_string_equal(v, "message/rfc822");
    assert_int_equal(p.parts[2].blen, sizeof(original) - 1);
    assert_memory_equal(p.parts[2].body, original, sizeof(original) - 1);
    free(p.text);

    /* all or nothing: a buffer too small keeps what it had */
    struct pst_buf *small = pst_buf_new(600);
    assert_non_null(small);
    assert_int_equal(pst_buf_addstr(small, "keep"), 0);
    assert_int_equal(pst_dsn_generate(&m, small, NULL), PST_ERR_TOOBIG);
    assert_string_equal(pst_buf_data(small), "keep");
    pst_buf_free(small);
    pst_buf_free(out);
}

static void test_generate_hdrs(void **state)
{
    struct pst_dsn_rcpt r = {0};
    r.rcpt = "bob@example.net";
    r.action = PST_DSN_FAILED;
    r.status = "5.2.2";
    struct pst_dsn_msg m = base_msg(&r, 1);
    m.ret = PST_DSN_RET_HDRS;
    m.envid = NULL;
    struct pst_buf *out = pst_buf_new(1 << 20);
    struct pst_dsn_info info;
    struct parsed p;
    char v[256];
    assert_int_equal(pst_dsn_generate(&m, out, &info), 0);
    assert_int_equal(info.full_returned, 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    assert_int_equal(p.nparts, 3);
    part_type(&p.parts[2], v, sizeof(v));
    assert_string_equal(v, "text/rfc822-headers");
    assert_null(strstr(p.text, "BODY-MARKER"));
    assert_non_null(strstr(p.parts[2].body, "Subject: lunch\r\n"));
    /* no ENVID: no Original-Envelope-Id (RFC 3461 6.3 a); no ORCPT: no
     * Original-Recipient (6.3 d) */
    assert_null(strstr(p.text, "Original-Envelope-Id"));
    assert_null(strstr(p.text, "Original-Recipient"));
    free(p.text);

    /* RET=FULL but above the cap: headers only */
    pst_buf_reset(out);
    m.ret = PST_DSN_RET_FULL;
    m.max_return = 40;
    assert_int_equal(pst_dsn_generate(&m, out, &info), 0);
    assert_int_equal(info.full_returned, 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    part_type(&p.parts[2], v, sizeof(v));
    assert_string_equal(v, "text/rfc822-headers");
    assert_null(strstr(p.text, "BODY-MARKER"));
    /* the headers themselves are cut to 40 octets at a field boundary */
    assert_true(p.parts[2].blen <= 40);
    assert_memory_equal(p.parts[2].body, "From: Alice <alice@example.org>\r\n", 33);
    free(p.text);

    /* an empty header section and headers only: no third part at all */
    static const char nohdr[] = "\r\nBODY-MARKER\r\n";
    pst_buf_reset(out);
    m.original = nohdr;
    m.original_len = sizeof(nohdr) - 1;
    m.ret = PST_DSN_RET_HDRS;
    assert_int_equal(pst_dsn_generate(&m, out, &info), 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    assert_int_equal(p.nparts, 2);
    assert_null(strstr(p.text, "BODY-MARKER"));
    assert_null(strstr(p.text, "attached"));
    free(p.text);
    pst_buf_free(out);
}

static void test_generate_delay_and_success(void **state)
{
    struct pst_dsn_rcpt r = {0};
    r.rcpt = "bob@example.net";
    r.action = PST_DSN_DELAYED;
    r.status = "4.4.1";
    r.remote_mta = "mx.example.net";
    r.diag = "421 4.4.1 try later";
    r.retry_until = NOW + 5 * 86400;
    struct pst_dsn_msg m = base_msg(&r, 1);
    struct pst_buf *out = pst_buf_new(1 << 20);
    struct pst_dsn_info info;
    struct parsed p;
    char v[256];
    /* delays without NOTIFY only when the policy says so */
    assert_int_equal(pst_dsn_generate(&m, out, &info), PST_ERR_NOTFOUND);
    assert_int_equal(pst_buf_len(out), 0);
    m.delay_policy = 1;
    assert_int_equal(pst_dsn_generate(&m, out, &info), 0);
    assert_int_equal(info.kind, PST_DSN_DELAYED);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    field(p.text, p.hlen, "Subject", v, sizeof(v));
    assert_string_equal(v, "Delayed Mail (still being retried)");
    field(p.parts[1].body, p.parts[1].blen, "Will-Retry-Until", v, sizeof(v));
    assert_string_equal(v, "Thu, 03 Dec 2026 22:58:33 +0000");
    /* no failure: headers only, even with RET=FULL (RFC 3461 6.2) */
    part_type(&p.parts[2], v, sizeof(v));
    assert_string_equal(v, "text/rfc822-headers");
    free(p.text);

    /* NOTIFY=SUCCESS, delivered */
    pst_buf_reset(out);
    r.action = PST_DSN_DELIVERED;
    r.status = "2.0.0";
    r.notify = PST_DSN_NOTIFY_SUCCESS;
    r.diag = NULL;
    r.remote_mta = NULL;
    m.ret = PST_DSN_RET_FULL;
    assert_int_equal(pst_dsn_generate(&m, out, &info), 0);
    assert_int_equal(info.kind, PST_DSN_DELIVERED);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    field(p.text, p.hlen, "Subject", v, sizeof(v));
    assert_string_equal(v, "Successful Mail Delivery Report");
    field(p.parts[1].body, p.parts[1].blen, "Action", v, sizeof(v));
    assert_string_equal(v, "delivered");
    assert_false(has_line(p.parts[1].body, p.parts[1].blen, "Remote-MTA:"));
    assert_false(has_line(p.parts[1].body, p.parts[1].blen, "Will-Retry-Until:"));
    part_type(&p.parts[2], v, sizeof(v));
    assert_string_equal(v, "text/rfc822-headers");
    free(p.text);

    /* NEVER: nothing at all */
    pst_buf_reset(out);
    r.notify = PST_DSN_NOTIFY_NEVER;
    r.action = PST_DSN_FAILED;
    assert_int_equal(pst_dsn_generate(&m, out, &info), PST_ERR_NOTFOUND);
    pst_buf_free(out);
}

static void test_generate_refusals(void **state)
{
    struct pst_dsn_rcpt r = {0};
    r.rcpt = "bob@example.net";
    r.action = PST_DSN_FAILED;
    struct pst_dsn_msg m = base_msg(&r, 1);
    struct pst_buf *out = pst_buf_new(1 << 20);
    assert_non_null(out);
    m.sender = ""; /* never bounce a bounce (RFC 3461 5.2) */
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_INVAL);
    m.sender = NULL;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_INVAL);
    m.sender = "alice@example.org\r\nBcc: x@y";
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_INVAL);
    m.sender = "alice@example.org";
    m.reporting_mta = "mx example";
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_INVAL);
    m.reporting_mta = "mx.example.org";
    m.seed_len = 4;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_INVAL);
    m.seed_len = sizeof(seed);
    m.ret = (enum pst_dsn_ret)3;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_INVAL);
    m.ret = PST_DSN_RET_NONE;
    r.action = (enum pst_dsn_action)9;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_INVAL);
    r.action = PST_DSN_FAILED;
    m.now = (time_t)1 << 60; /* no date for it */
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_INVAL);
    m.now = NOW;
    m.nrcpts = PST_DSN_MAX_RCPTS + 1;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), PST_ERR_TOOBIG);
    assert_int_equal(pst_buf_len(out), 0);
    pst_buf_free(out);
}

static void test_generate_injection(void **state)
{
    struct pst_dsn_rcpt r = {0};
    char longdiag[3000];
    memset(longdiag, 'x', sizeof(longdiag) - 1);
    longdiag[sizeof(longdiag) - 1] = '\0';
    r.rcpt = "bob@example.net\r\nBcc: evil@example.com";
    r.action = PST_DSN_FAILED;
    r.status = "5.1.1\r\nX-Status: 2.0.0";
    r.remote_mta = "mx.example.net\r\nX-Remote: 1";
    r.diag = "550 no\r\nX-Injected: yes\r\n\r\n--=_pst_dsn_x\r\nContent-Type: text/html\n\rbare";
    struct pst_dsn_msg m = base_msg(&r, 1);
    struct pst_buf *out = pst_buf_new(1 << 20);
    struct parsed p;
    char v[1024];
    assert_int_equal(pst_dsn_generate(&m, out, NULL), 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    const char *s = pst_buf_data(out);
    size_t n = pst_buf_len(out);
    assert_false(has_line(s, n, "Bcc:"));
    assert_false(has_line(s, n, "X-Injected:"));
    assert_false(has_line(s, n, "X-Status:"));
    assert_false(has_line(s, n, "X-Remote:"));
    assert_false(has_line(s, n, "Content-Type: text/html"));
    assert_int_equal(p.nparts, 3);
    field(p.parts[1].body, p.parts[1].blen, "Status", v, sizeof(v));
    assert_string_equal(v, "5.0.0"); /* malformed status: the action's default */
    field(p.parts[1].body, p.parts[1].blen, "Diagnostic-Code", v, sizeof(v));
    assert_string_equal(v, "smtp; 550 no X-Injected: yes --=_pst_dsn_x Content-Type: text/html "
                           "bare");
    free(p.text);

    /* a very long diagnostic is folded and capped */
    pst_buf_reset(out);
    r.diag = longdiag;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p); /* checks the 998 limit */
    field(p.parts[1].body, p.parts[1].blen, "Diagnostic-Code", v, sizeof(v));
    assert_true(strlen(v) < PST_DSN_DIAG_MAX + 20);
    free(p.text);

    /* the original holds the would-be delimiter: the boundary changes */
    static const char evil[] = "Subject: x\r\n\r\n--=_pst_dsn_deadbeef0102030405060708090a0b0c\r\n"
                               "Content-Type: text/html\r\n\r\nboo\r\n";
    pst_buf_reset(out);
    r.diag = "550 no";
    m.original = evil;
    m.original_len = sizeof(evil) - 1;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p); /* delimiter count == parts + 1 */
    assert_int_equal(p.nparts, 3);
    assert_string_not_equal(p.boundary, "=_pst_dsn_deadbeef0102030405060708090a0b0c");
    assert_memory_equal(p.parts[2].body, evil, sizeof(evil) - 1);
    free(p.text);

    /* bare LF and NUL in the stored message are made CRLF and "?" */
    static const char bare[] = "Subject: x\n\nline1\rline2\0end";
    pst_buf_reset(out);
    m.original = bare;
    m.original_len = sizeof(bare) - 1;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    assert_int_equal(p.parts[2].blen, strlen("Subject: x\r\n\r\nline1\r\nline2?end\r\n"));
    assert_memory_equal(p.parts[2].body, "Subject: x\r\n\r\nline1\r\nline2?end\r\n",
                        p.parts[2].blen);
    free(p.text);

    /* a 2500-octet line is broken with CRLF SP into lines of 998 at most
     * (parse() checks every line) and nothing is lost */
    size_t ll = 2500;
    char *lng = malloc(ll + 32);
    assert_non_null(lng);
    memcpy(lng, "X-Long: ", 8);
    memset(lng + 8, 'y', ll - 8);
    memcpy(lng + ll, "\r\n\r\nbody\r\n", 11);
    pst_buf_reset(out);
    m.original = lng;
    m.original_len = ll + 10;
    assert_int_equal(pst_dsn_generate(&m, out, NULL), 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    assert_int_equal(p.parts[2].blen, ll + 10 + 2 * 3);
    assert_memory_equal(p.parts[2].body, lng, 998);
    assert_memory_equal(p.parts[2].body + 998, "\r\n y", 4);
    free(p.text);
    free(lng);
    pst_buf_free(out);
}

static void test_generate_utf8(void **state)
{
    static const char orig8[] = "Subject: caf\xc3\xa9\r\n\r\nbody\r\n";
    struct pst_dsn_rcpt r = {0};
    r.rcpt = "j\xc3\xb6ran@example.net";
    r.action = PST_DSN_FAILED;
    r.status = "5.1.1";
    struct pst_dsn_msg m = base_msg(&r, 1);
    m.original = orig8;
    m.original_len = sizeof(orig8) - 1;
    struct pst_buf *out = pst_buf_new(1 << 20);
    struct pst_dsn_info info;
    struct parsed p;
    char v[256];
    assert_int_equal(pst_dsn_generate(&m, out, &info), 0);
    assert_int_equal(info.needs_smtputf8, 1);
    assert_int_equal(info.needs_8bitmime, 1);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    field(p.parts[1].body, p.parts[1].blen, "Final-Recipient", v, sizeof(v));
    assert_string_equal(v, "utf-8; j\\x{F6}ran@example.net");
    /* the machine-readable part stays ASCII */
    for (size_t i = 0; i < p.parts[1].blen; i++)
        assert_true((unsigned char)p.parts[1].body[i] < 0x80);
    part_type(&p.parts[0], v, sizeof(v));
    assert_string_equal(v, "text/plain; charset=utf-8");
    assert_non_null(strstr(p.parts[0].body, "<j\xc3\xb6ran@example.net>"));
    part_type(&p.parts[2], v, sizeof(v));
    assert_string_equal(v, "message/global");
    field(p.parts[2].hdr, p.parts[2].hlen, "Content-Transfer-Encoding", v, sizeof(v));
    assert_string_equal(v, "8bit");
    free(p.text);

    /* an absurdly long non-ASCII recipient is capped, not refused */
    size_t big = 3000;
    char *longaddr = malloc(2 * big + 3);
    assert_non_null(longaddr);
    for (size_t i = 0; i < big; i++)
        memcpy(longaddr + 2 * i, "\xc3\xa9", 2);
    memcpy(longaddr + 2 * big, "@x", 3);
    r.rcpt = longaddr;
    pst_buf_reset(out);
    assert_int_equal(pst_dsn_generate(&m, out, &info), 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    char fr[8192];
    field(p.parts[1].body, p.parts[1].blen, "Final-Recipient", fr, sizeof(fr));
    assert_memory_equal(fr, "utf-8; \\x{E9}\\x{E9}", 19);
    assert_true(strlen(fr) < 6 * 520 + 16);
    assert_string_equal(fr + strlen(fr) - 3, "...");
    free(p.text);
    free(longaddr);
    pst_buf_free(out);
}

/* Status codes must fit the action; ENVID and ORCPT are kept as sent. */
static void test_generate_fields(void **state)
{
    struct pst_dsn_rcpt r[3] = {{0}};
    r[0].rcpt = "a@example.net";
    r[0].action = PST_DSN_FAILED;
    r[0].status = "4.4.7"; /* gave up after retrying: kept */
    r[0].orcpt = "rfc822;A+20+20B@Example.NET";
    r[0].last_attempt = (time_t)1 << 60; /* no date for it: left out */
    r[1].rcpt = "b@example.net";
    r[1].action = PST_DSN_DELIVERED;
    r[1].notify = PST_DSN_NOTIFY_SUCCESS;
    r[1].status = "5.1.1"; /* does not fit "delivered" */
    r[2].rcpt = "c@example.net";
    r[2].action = PST_DSN_RELAYED;
    r[2].notify = PST_DSN_NOTIFY_SUCCESS;
    r[2].status = "2.1.5";
    struct pst_dsn_msg m = base_msg(r, 3);
    m.envid = "a+20+20b+09c";
    struct pst_buf *out = pst_buf_new(1 << 20);
    struct parsed p;
    char v[256];
    assert_int_equal(pst_dsn_generate(&m, out, NULL), 0);
    parse(pst_buf_data(out), pst_buf_len(out), &p);
    const char *ds = p.parts[1].body;
    size_t dn = p.parts[1].blen;
    field(ds, dn, "Original-Envelope-Id", v, sizeof(v));
    assert_string_equal(v, "a  b c");
    const char *g1 = strstr(ds, "Original-Recipient:");
    assert_non_null(g1);
    field(g1, dn - (size_t)(g1 - ds), "Original-Recipient", v, sizeof(v));
    assert_string_equal(v, "rfc822; A  B@Example.NET");
    field(g1, dn - (size_t)(g1 - ds), "Status", v, sizeof(v));
    assert_string_equal(v, "4.4.7");
    assert_null(strstr(ds, "Last-Attempt-Date"));
    const char *g2 = strstr(ds, "Final-Recipient: rfc822; b@example.net");
    assert_non_null(g2);
    field(g2, dn - (size_t)(g2 - ds), "Status", v, sizeof(v));
    assert_string_equal(v, "2.0.0");
    const char *g3 = strstr(ds, "Final-Recipient: rfc822; c@example.net");
    assert_non_null(g3);
    field(g3, dn - (size_t)(g3 - ds), "Status", v, sizeof(v));
    assert_string_equal(v, "2.1.5");
    field(g3, dn - (size_t)(g3 - ds), "Action", v, sizeof(v));
    assert_string_equal(v, "relayed");
    free(p.text);
    pst_buf_free(out);
}

/* The whole report for a fixed input, octet for octet (a golden text). */
static const char golden[] =
    "From: \"Mail Delivery System\" <MAILER-DAEMON@mx.example.org>\r\n"
    "To: <alice@example.org>\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Date: Sat, 28 Nov 2026 22:58:33 +0000\r\n"
    "Message-ID: <dsn.20261128225833.deadbeef0102030405060708090a0b0c@mx.example.org>\r\n"
    "Auto-Submitted: auto-replied\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
    " boundary=\"=_pst_dsn_deadbeef0102030405060708090a0b0c\"\r\n"
    "\r\n"
    "This is a MIME-encapsulated delivery status notification.\r\n"
    "\r\n"
    "--=_pst_dsn_deadbeef0102030405060708090a0b0c\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "Content-Description: Notification\r\n"
    "\r\n"
    "This is the mail system at mx.example.org.\r\n"
    "\r\n"
    "Your message could not be delivered to one or more recipients.\r\n"
    "\r\n"
    "Your message has not been delivered yet to one or more recipients. The mail\r\n"
    "system will keep trying; you do not need to send it again.\r\n"
    "\r\n"
    "<bob@example.net>: delivery failed permanently (status 5.1.1).\r\n"
    "    mx.example.net said: 550-5.1.1 The email account that you tried to reach\r\n"
    "    does not exist. 550 5.1.1 Please check the address and try again.\r\n"
    "\r\n"
    "<carol@example.net>: not delivered yet; still trying (status 4.4.1).\r\n"
    "    Next attempts until Wed, 02 Dec 2026 22:58:33 +0000.\r\n"
    "    mx2.example.net said: 421 4.4.1 Connection timed out\r\n"
    "\r\n"
    "The header section of your message is attached below.\r\n"
    "\r\n"
    "--=_pst_dsn_deadbeef0102030405060708090a0b0c\r\n"
    "Content-Type: message/delivery-status\r\n"
    "Content-Description: Delivery report\r\n"
    "\r\n"
    "Original-Envelope-Id: QQ+314\r\n"
    "Reporting-MTA: dns; mx.example.org\r\n"
    "Arrival-Date: Sat, 28 Nov 2026 21:06:40 +0000\r\n"
    "\r\n"
    "Original-Recipient: rfc822; bob@example.net\r\n"
    "Final-Recipient: rfc822; bob@example.net\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Remote-MTA: dns; mx.example.net\r\n"
    "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach\r\n"
    " does not exist. 550 5.1.1 Please check the address and try again.\r\n"
    "Last-Attempt-Date: Sat, 28 Nov 2026 22:58:28 +0000\r\n"
    "\r\n"
    "Final-Recipient: rfc822; carol@example.net\r\n"
    "Action: delayed\r\n"
    "Status: 4.4.1\r\n"
    "Remote-MTA: dns; mx2.example.net\r\n"
    "Diagnostic-Code: smtp; 421 4.4.1 Connection timed out\r\n"
    "Last-Attempt-Date: Sat, 28 Nov 2026 22:57:33 +0000\r\n"
    "Will-Retry-Until: Wed, 02 Dec 2026 22:58:33 +0000\r\n"
    "\r\n"
    "--=_pst_dsn_deadbeef0102030405060708090a0b0c\r\n"
    "Content-Type: text/rfc822-headers\r\n"
    "Content-Description: Message headers\r\n"
    "\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: lunch\r\n"
    "Message-ID: <m1@example.org>\r\n"
    "\r\n"
    "--=_pst_dsn_deadbeef0102030405060708090a0b0c--\r\n";

static void test_generate_golden(void **state)
{
    struct pst_dsn_rcpt r[2] = {{0}};
    r[0].rcpt = "bob@example.net";
    r[0].orcpt = "rfc822;bob@example.net";
    r[0].action = PST_DSN_FAILED;
    r[0].status = "5.1.1";
    r[0].remote_mta = "mx.example.net";
    r[0].diag = "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
                "550 5.1.1 Please check the address and try again.";
    r[0].last_attempt = NOW - 5;
    r[1].rcpt = "carol@example.net";
    r[1].action = PST_DSN_DELAYED;
    r[1].notify = PST_DSN_NOTIFY_DELAY | PST_DSN_NOTIFY_FAILURE;
    r[1].status = "4.4.1";
    r[1].remote_mta = "mx2.example.net";
    r[1].diag = "421 4.4.1 Connection timed out";
    r[1].last_attempt = NOW - 60;
    r[1].retry_until = NOW + 4 * 86400;
    struct pst_dsn_msg m = base_msg(r, 2);
    m.ret = PST_DSN_RET_HDRS;
    struct pst_buf *out = pst_buf_new(1 << 20);
    assert_int_equal(pst_dsn_generate(&m, out, NULL), 0);
    if (strcmp(pst_buf_data(out), golden) != 0)
        print_error("report differs from the golden text\n");
    assert_string_equal(pst_buf_data(out), golden);
    pst_buf_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xtext_decode),
        cmocka_unit_test(test_xtext_round_trip),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_ret),
        cmocka_unit_test(test_envid),
        cmocka_unit_test(test_orcpt),
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_wanted),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_generate_failed),
        cmocka_unit_test(test_generate_hdrs),
        cmocka_unit_test(test_generate_delay_and_success),
        cmocka_unit_test(test_generate_refusals),
        cmocka_unit_test(test_generate_injection),
        cmocka_unit_test(test_generate_utf8),
        cmocka_unit_test(test_generate_fields),
        cmocka_unit_test(test_generate_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
