/*
 * test_sasl.c - SMTP AUTH exchanges: PLAIN and LOGIN decoding (good
 * credentials, bad base64, missing NULs, authzid mismatch, overlong
 * fields and lines, cancel, "="), the reply of each result, strict base64,
 * UTF-8, the MAIL FROM permission table and the failed-attempt limiter
 * (threshold, window expiry, eviction when the table is full).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "sasl.h"

/* base64 of n raw octets into a static buffer */
static const char *b64(const void *raw, size_t n)
{
    static char out[4096];
    assert_true(4 * ((n + 2) / 3) < sizeof(out));
    EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
    return out;
}

/* ---- PLAIN ---- */

struct plain_case {
    const char *name;
    const char *raw; /* PLAIN message, its NULs written as \0 */
    size_t rawlen;
    const char *b64; /* used instead of raw when set */
    int step;        /* PST_SASL_STEP_* */
    int result;      /* on STEP_FAIL */
    const char *authcid, *passwd;
};

#define RAW(s) s, sizeof(s) - 1

static const struct plain_case plain_cases[] = {
    {"no authzid", RAW("\0alice\0secret"), NULL, PST_SASL_STEP_VERIFY, 0, "alice", "secret"},
    {"authzid equals authcid", RAW("alice\0alice\0secret"), NULL, PST_SASL_STEP_VERIFY, 0, "alice",
     "secret"},
    {"UTF-8 name and password", RAW("\0j\xc3\xb6rg\0p\xc3\xa4ss"), NULL, PST_SASL_STEP_VERIFY, 0,
     "j\xc3\xb6rg", "p\xc3\xa4ss"},
    {"password with spaces and colon", RAW("\0a@b.example\0s p:a"), NULL, PST_SASL_STEP_VERIFY, 0,
     "a@b.example", "s p:a"},
    {"authzid differs", RAW("bob\0alice\0secret"), NULL, PST_SASL_STEP_FAIL,
     PST_SASL_BAD_CREDENTIALS, NULL, NULL},
    {"authzid prefix of authcid", RAW("alic\0alice\0secret"), NULL, PST_SASL_STEP_FAIL,
     PST_SASL_BAD_CREDENTIALS, NULL, NULL},
    {"no NUL", RAW("alicesecret"), NULL, PST_SASL_STEP_FAIL, PST_SASL_BAD_CREDENTIALS, NULL, NULL},
    {"one NUL", RAW("alice\0secret"), NULL, PST_SASL_STEP_FAIL, PST_SASL_BAD_CREDENTIALS, NULL,
     NULL},
    {"three NULs", RAW("\0alice\0sec\0ret"), NULL, PST_SASL_STEP_FAIL, PST_SASL_BAD_CREDENTIALS,
     NULL, NULL},
    {"empty authcid", RAW("\0\0secret"), NULL, PST_SASL_STEP_FAIL, PST_SASL_BAD_CREDENTIALS, NULL,
     NULL},
    {"empty password", RAW("\0alice\0"), NULL, PST_SASL_STEP_FAIL, PST_SASL_BAD_CREDENTIALS, NULL,
     NULL},
    {"bad UTF-8 password", RAW("\0alice\0\xff\xfe"), NULL, PST_SASL_STEP_FAIL,
     PST_SASL_BAD_CREDENTIALS, NULL, NULL},
    {"overlong UTF-8 in name", RAW("\0\xc0\xaf\0x"), NULL, PST_SASL_STEP_FAIL,
     PST_SASL_BAD_CREDENTIALS, NULL, NULL},
    {"control character in name", RAW("\0al\nice\0x"), NULL, PST_SASL_STEP_FAIL,
     PST_SASL_BAD_CREDENTIALS, NULL, NULL},
    {"bad base64 character", NULL, 0, "AGFsaWNlAHNlY3!ldA==", PST_SASL_STEP_FAIL,
     PST_SASL_BAD_BASE64, NULL, NULL},
    {"base64 length not a multiple of 4", NULL, 0, "AGFsaWNlAHNlY3JldA=", PST_SASL_STEP_FAIL,
     PST_SASL_BAD_BASE64, NULL, NULL},
    {"pad inside", NULL, 0, "AGFs=WNlAHNlY3JldA==", PST_SASL_STEP_FAIL, PST_SASL_BAD_BASE64, NULL,
     NULL},
    {"pad first", NULL, 0, "=AAA", PST_SASL_STEP_FAIL, PST_SASL_BAD_BASE64, NULL, NULL},
    {"non-zero pad bits", NULL, 0, "AGFsaWNlAHNlY3JldB==", PST_SASL_STEP_FAIL, PST_SASL_BAD_BASE64,
     NULL, NULL},
    {"whitespace inside", NULL, 0, "AGFsaWNl AHNlY3JldA==", PST_SASL_STEP_FAIL, PST_SASL_BAD_BASE64,
     NULL, NULL},
    {"empty response", NULL, 0, "", PST_SASL_STEP_FAIL, PST_SASL_BAD_CREDENTIALS, NULL, NULL},
    {"cancel", NULL, 0, "*", PST_SASL_STEP_FAIL, PST_SASL_CANCELLED, NULL, NULL},
};

static const char *step_name(int s)
{
    return s == PST_SASL_STEP_CHALLENGE ? "challenge"
           : s == PST_SASL_STEP_VERIFY  ? "verify"
                                        : "fail";
}

static void test_plain_continuation(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
        const struct plain_case *t = &plain_cases[i];
        struct pst_sasl s;
        struct pst_sasl_out out;
        pst_sasl_init(&s);
        assert_int_equal(pst_sasl_start(&s, "PLAIN", 5, 1, &out), 0);
        assert_int_equal(out.step, PST_SASL_STEP_CHALLENGE);
        assert_string_equal(out.challenge, "");
        struct pst_buf *b = pst_buf_new(16);
        assert_non_null(b);
        assert_int_equal(pst_sasl_challenge_add(b, &out), 0);
        assert_string_equal(pst_buf_data(b), "334 \r\n");
        pst_buf_free(b);
        const char *line = t->b64 != NULL ? t->b64 : b64(t->raw, t->rawlen);
        assert_int_equal(pst_sasl_continue(&s, line, strlen(line), &out), 0);
        int ok = (int)out.step == t->step;
        if (ok && t->step == PST_SASL_STEP_FAIL)
            ok = (int)out.result == t->result && out.reason != NULL && s.state == PST_SASL_IDLE;
        if (ok && t->step == PST_SASL_STEP_VERIFY)
            ok = strcmp(s.authcid, t->authcid) == 0 && strcmp(s.passwd, t->passwd) == 0 &&
                 s.authcid_len == strlen(t->authcid) && s.passwd_len == strlen(t->passwd) &&
                 s.state == PST_SASL_VERIFY;
        if (!ok) {
            print_error("%s: got %s result %d want %s result %d\n", t->name, step_name(out.step),
                        out.result, step_name(t->step), t->result);
            bad++;
        }
        pst_sasl_clear(&s);
    }
    assert_int_equal(bad, 0);
}

static void test_plain_initial_response(void **state)
{
    (void)state;
    struct pst_sasl s;
    struct pst_sasl_out out;
    char arg[4200];
    pst_sasl_init(&s);
    snprintf(arg, sizeof(arg), "PLAIN %s", b64("\0alice\0secret", 13));
    assert_int_equal(pst_sasl_start(&s, arg, strlen(arg), 1, &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_VERIFY);
    assert_string_equal(s.authcid, "alice");
    assert_string_equal(s.passwd, "secret");
    /* a second start while the verdict is pending is a caller error */
    assert_int_equal(pst_sasl_start(&s, "PLAIN", 5, 1, &out), PST_ERR_STATE);
    assert_int_equal(pst_sasl_continue(&s, "AAAA", 4, &out), PST_ERR_STATE);
    pst_sasl_clear(&s);
    assert_int_equal(s.state, PST_SASL_IDLE);
    assert_int_equal(s.passwd[0], 0);
    assert_int_equal(s.passwd_len, 0);

    /* lower-case mechanism accepted */
    snprintf(arg, sizeof(arg), "plain %s", b64("\0bob\0pw", 7));
    assert_int_equal(pst_sasl_start(&s, arg, strlen(arg), 1, &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_VERIFY);
    assert_string_equal(s.authcid, "bob");
    pst_sasl_clear(&s);

    /* "=": an empty initial response, a malformed PLAIN message */
    assert_int_equal(pst_sasl_start(&s, "PLAIN =", 7, 1, &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_FAIL);
    assert_int_equal(out.result, PST_SASL_BAD_CREDENTIALS);
    /* "*" is not a cancel in the AUTH line itself: it is bad base64 */
    assert_int_equal(pst_sasl_start(&s, "PLAIN *", 7, 1, &out), 0);
    assert_int_equal(out.result, PST_SASL_BAD_BASE64);
    assert_int_equal(s.state, PST_SASL_IDLE);
}

static void test_plain_bounds(void **state)
{
    (void)state;
    struct pst_sasl s;
    struct pst_sasl_out out;
    char raw[800];
    /* 255-octet name and password: the largest accepted */
    raw[0] = '\0';
    memset(raw + 1, 'u', 255);
    raw[256] = '\0';
    memset(raw + 257, 'p', 255);
    pst_sasl_init(&s);
    assert_int_equal(pst_sasl_start(&s, "PLAIN", 5, 1, &out), 0);
    const char *line = b64(raw, 512);
    assert_int_equal(pst_sasl_continue(&s, line, strlen(line), &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_VERIFY);
    assert_int_equal(s.authcid_len, 255);
    assert_int_equal(s.passwd_len, 255);
    pst_sasl_clear(&s);

    /* a 256-octet password */
    memset(raw + 257, 'p', 256);
    assert_int_equal(pst_sasl_start(&s, "PLAIN", 5, 1, &out), 0);
    line = b64(raw, 513);
    assert_int_equal(pst_sasl_continue(&s, line, strlen(line), &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_FAIL);
    assert_int_equal(out.result, PST_SASL_BAD_CREDENTIALS);

    /* a message longer than three full fields */
    memset(raw, 'x', sizeof(raw));
    raw[0] = '\0';
    raw[300] = '\0';
    assert_int_equal(pst_sasl_start(&s, "PLAIN", 5, 1, &out), 0);
    line = b64(raw, sizeof(raw));
    assert_int_equal(pst_sasl_continue(&s, line, strlen(line), &out), 0);
    assert_int_equal(out.result, PST_SASL_BAD_CREDENTIALS);

    /* a line over PST_SASL_MAX_LINE: 500 5.5.6, whatever it holds */
    char *big = malloc(PST_SASL_MAX_LINE + 4);
    assert_non_null(big);
    memset(big, 'A', PST_SASL_MAX_LINE + 4);
    assert_int_equal(pst_sasl_start(&s, "PLAIN", 5, 1, &out), 0);
    assert_int_equal(pst_sasl_continue(&s, big, PST_SASL_MAX_LINE + 4, &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_FAIL);
    assert_int_equal(out.result, PST_SASL_LINE_TOO_LONG);
    free(big);
    /* the session's "discarded, too long" call */
    assert_int_equal(pst_sasl_start(&s, "LOGIN", 5, 1, &out), 0);
    assert_int_equal(pst_sasl_continue(&s, NULL, SIZE_MAX, &out), 0);
    assert_int_equal(out.result, PST_SASL_LINE_TOO_LONG);
    assert_int_equal(s.state, PST_SASL_IDLE);
}

/* ---- LOGIN ---- */

static void test_login(void **state)
{
    (void)state;
    struct pst_sasl s;
    struct pst_sasl_out out;
    pst_sasl_init(&s);
    assert_int_equal(pst_sasl_start(&s, "LOGIN", 5, 1, &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_CHALLENGE);
    assert_string_equal(out.challenge, "VXNlcm5hbWU6"); /* Username: */
    struct pst_buf *b = pst_buf_new(64);
    assert_non_null(b);
    assert_int_equal(pst_sasl_challenge_add(b, &out), 0);
    assert_string_equal(pst_buf_data(b), "334 VXNlcm5hbWU6\r\n");
    const char *u = b64("alice", 5);
    assert_int_equal(pst_sasl_continue(&s, u, strlen(u), &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_CHALLENGE);
    assert_string_equal(out.challenge, "UGFzc3dvcmQ6"); /* Password: */
    const char *p = b64("se:cret", 7);
    assert_int_equal(pst_sasl_continue(&s, p, strlen(p), &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_VERIFY);
    assert_string_equal(s.authcid, "alice");
    assert_string_equal(s.passwd, "se:cret");
    assert_int_equal(s.mech, PST_SASL_MECH_LOGIN);
    pst_buf_reset(b);
    assert_int_equal(pst_sasl_challenge_add(b, &out), PST_ERR_INVAL); /* not a challenge */
    assert_int_equal(pst_buf_len(b), 0);
    pst_buf_free(b);
    pst_sasl_clear(&s);

    /* initial response carries the user name */
    char arg[4200];
    snprintf(arg, sizeof(arg), "LOGIN %s", b64("bob", 3));
    assert_int_equal(pst_sasl_start(&s, arg, strlen(arg), 1, &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_CHALLENGE);
    assert_string_equal(out.challenge, "UGFzc3dvcmQ6");
    /* cancel at the password */
    assert_int_equal(pst_sasl_continue(&s, "*", 1, &out), 0);
    assert_int_equal(out.step, PST_SASL_STEP_FAIL);
    assert_int_equal(out.result, PST_SASL_CANCELLED);
    assert_int_equal(s.state, PST_SASL_IDLE);
    assert_int_equal(s.authcid[0], 0);

    /* bad base64 as the user name */
    assert_int_equal(pst_sasl_start(&s, "LOGIN", 5, 1, &out), 0);
    assert_int_equal(pst_sasl_continue(&s, "YWxp#2U=", 8, &out), 0);
    assert_int_equal(out.result, PST_SASL_BAD_BASE64);

    /* empty user name and empty password */
    assert_int_equal(pst_sasl_start(&s, "LOGIN", 5, 1, &out), 0);
    assert_int_equal(pst_sasl_continue(&s, "", 0, &out), 0);
    assert_int_equal(out.result, PST_SASL_BAD_CREDENTIALS);
    assert_int_equal(pst_sasl_start(&s, "LOGIN =", 7, 1, &out), 0);
    assert_int_equal(out.result, PST_SASL_BAD_CREDENTIALS);
    assert_int_equal(pst_sasl_start(&s, "LOGIN", 5, 1, &out), 0);
    assert_int_equal(pst_sasl_continue(&s, u, strlen(u), &out), 0);
    assert_int_equal(pst_sasl_continue(&s, "", 0, &out), 0);
    assert_int_equal(out.result, PST_SASL_BAD_CREDENTIALS);

    /* a user name with a NUL */
    assert_int_equal(pst_sasl_start(&s, "LOGIN", 5, 1, &out), 0);
    u = b64("al\0ce", 5);
    assert_int_equal(pst_sasl_continue(&s, u, strlen(u), &out), 0);
    assert_int_equal(out.result, PST_SASL_BAD_CREDENTIALS);

    /* a 256-octet password */
    char pw[256];
    memset(pw, 'p', sizeof(pw));
    assert_int_equal(pst_sasl_start(&s, "LOGIN", 5, 1, &out), 0);
    u = b64("alice", 5);
    assert_int_equal(pst_sasl_continue(&s, u, strlen(u), &out), 0);
    p = b64(pw, sizeof(pw));
    assert_int_equal(pst_sasl_continue(&s, p, strlen(p), &out), 0);
    assert_int_equal(out.result, PST_SASL_BAD_CREDENTIALS);
}

/* ---- the AUTH line ---- */

struct start_case {
    const char *arg;
    int tls;
    int step;
    int result;
};

static const struct start_case start_cases[] = {
    {"PLAIN", 1, PST_SASL_STEP_CHALLENGE, 0},
    {"LOGIN", 1, PST_SASL_STEP_CHALLENGE, 0},
    {"Login", 1, PST_SASL_STEP_CHALLENGE, 0},
    {"PLAIN", 0, PST_SASL_STEP_FAIL, PST_SASL_ENCRYPTION_REQUIRED},
    {"LOGIN", 0, PST_SASL_STEP_FAIL, PST_SASL_ENCRYPTION_REQUIRED},
    {"CRAM-MD5", 1, PST_SASL_STEP_FAIL, PST_SASL_UNKNOWN_MECH},
    {"CRAM-MD5", 0, PST_SASL_STEP_FAIL, PST_SASL_UNKNOWN_MECH},
    {"PLAINX", 1, PST_SASL_STEP_FAIL, PST_SASL_UNKNOWN_MECH},
    {"", 1, PST_SASL_STEP_FAIL, PST_SASL_SYNTAX},
    {" PLAIN", 1, PST_SASL_STEP_FAIL, PST_SASL_SYNTAX},
    {"PLAIN ", 1, PST_SASL_STEP_FAIL, PST_SASL_SYNTAX},
    {"PLAIN  AGFAYgBj", 1, PST_SASL_STEP_FAIL, PST_SASL_SYNTAX},
    {"PLAIN AGFAYgBj extra", 1, PST_SASL_STEP_FAIL, PST_SASL_SYNTAX},
    {"PL@IN", 1, PST_SASL_STEP_FAIL, PST_SASL_SYNTAX},
    {"ABCDEFGHIJKLMNOPQRSTU", 1, PST_SASL_STEP_FAIL, PST_SASL_SYNTAX},
    {"ABCDEFGHIJKLMNOPQRST", 1, PST_SASL_STEP_FAIL, PST_SASL_UNKNOWN_MECH},
};

static void test_start_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(start_cases) / sizeof(start_cases[0]); i++) {
        const struct start_case *t = &start_cases[i];
        struct pst_sasl s;
        struct pst_sasl_out out;
        pst_sasl_init(&s);
        int rc = pst_sasl_start(&s, t->arg, strlen(t->arg), t->tls, &out);
        if (rc != 0 || (int)out.step != t->step ||
            (t->step == PST_SASL_STEP_FAIL && (int)out.result != t->result)) {
            print_error("\"%s\" tls=%d: got rc %d %s result %d want %s result %d\n", t->arg, t->tls,
                        rc, step_name(out.step), out.result, step_name(t->step), t->result);
            bad++;
        }
        pst_sasl_clear(&s);
    }
    assert_int_equal(bad, 0);
}

/* ---- replies ---- */

static void test_replies(void **state)
{
    (void)state;
    static const struct {
        enum pst_sasl_result r;
        const char *want;
        int counts;
    } cases[] = {
        {PST_SASL_SUCCESS, "235 2.7.0 Authentication successful\r\n", 0},
        {PST_SASL_BAD_CREDENTIALS, "535 5.7.8 Authentication credentials invalid\r\n", 1},
        {PST_SASL_TOO_WEAK, "534 5.7.9 Authentication mechanism is too weak\r\n", 0},
        {PST_SASL_ENCRYPTION_REQUIRED,
         "538 5.7.11 Encryption required for requested authentication mechanism\r\n", 0},
        {PST_SASL_TEMPFAIL, "454 4.7.0 Temporary authentication failure\r\n", 0},
        {PST_SASL_RATE_LIMITED,
         "454 4.7.0 Too many failed authentication attempts, try again later\r\n", 0},
        {PST_SASL_BAD_BASE64, "501 5.5.2 Cannot decode response\r\n", 0},
        {PST_SASL_CANCELLED, "501 5.0.0 Authentication cancelled\r\n", 0},
        {PST_SASL_SYNTAX, "501 5.5.4 Syntax error in AUTH parameters\r\n", 0},
        {PST_SASL_UNKNOWN_MECH, "504 5.5.4 Unrecognized authentication type\r\n", 0},
        {PST_SASL_LINE_TOO_LONG, "500 5.5.6 Authentication exchange line is too long\r\n", 0},
        {PST_SASL_ALREADY_AUTHENTICATED, "503 5.5.1 Already authenticated\r\n", 0},
        {PST_SASL_IN_TRANSACTION, "503 5.5.1 AUTH not allowed during a mail transaction\r\n", 0},
    };
    struct pst_buf *b = pst_buf_new(1024);
    assert_non_null(b);
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pst_buf_reset(b);
        int rc = pst_sasl_reply_add(b, cases[i].r);
        if (rc != 0 || strcmp(pst_buf_data(b), cases[i].want) != 0 ||
            pst_sasl_result_counts(cases[i].r) != cases[i].counts) {
            print_error("result %d: got rc %d \"%s\" counts %d want \"%s\" counts %d\n", cases[i].r,
                        rc, pst_buf_data(b), pst_sasl_result_counts(cases[i].r), cases[i].want,
                        cases[i].counts);
            bad++;
        }
    }
    pst_buf_free(b);
    assert_int_equal(bad, 0);
}

/* ---- base64 and UTF-8 ---- */

static void test_b64(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        const char *want;
    } cases[] = {
        {"", 0, ""},
        {"YQ==", 0, "a"},
        {"YWI=", 0, "ab"},
        {"YWJj", 0, "abc"},
        {"YWJjZA==", 0, "abcd"},
        {"+/+/", 0, "\xfb\xff\xbf"},
        {"YR==", PST_ERR_SYNTAX, NULL}, /* pad bits set */
        {"YWJ=", PST_ERR_SYNTAX, NULL}, /* pad bits set */
        {"YQ=", PST_ERR_SYNTAX, NULL},
        {"YQ", PST_ERR_SYNTAX, NULL},
        {"Y===", PST_ERR_SYNTAX, NULL},
        {"====", PST_ERR_SYNTAX, NULL},
        {"YQ==YQ==", PST_ERR_SYNTAX, NULL},
        {"YW-j", PST_ERR_SYNTAX, NULL},
        {"YW_j", PST_ERR_SYNTAX, NULL},
        {" YWJj", PST_ERR_SYNTAX, NULL},
        {"YWJj\n", PST_ERR_SYNTAX, NULL},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char out[16];
        size_t n = 99;
        int rc = pst_sasl_b64_decode(cases[i].in, strlen(cases[i].in), out, sizeof(out), &n);
        int ok = rc == cases[i].rc;
        if (ok && rc == 0)
            ok = n == strlen(cases[i].want) && memcmp(out, cases[i].want, n) == 0;
        if (!ok) {
            print_error("\"%s\": got rc %d n %zu want rc %d\n", cases[i].in, rc, n, cases[i].rc);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    unsigned char small[2];
    size_t n;
    assert_int_equal(pst_sasl_b64_decode("YWJj", 4, small, sizeof(small), &n), PST_ERR_TOOBIG);
    assert_int_equal(pst_sasl_b64_decode("YWI=", 4, small, sizeof(small), &n), 0);
    assert_int_equal(n, 2);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(pst_sasl_utf8_ok("plain ascii", 11));
    assert_true(pst_sasl_utf8_ok("\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(pst_sasl_utf8_ok("a\0b", 3));
    assert_false(pst_sasl_utf8_ok("\xc3", 1));             /* cut */
    assert_false(pst_sasl_utf8_ok("\xc1\x81", 2));         /* overlong */
    assert_false(pst_sasl_utf8_ok("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(pst_sasl_utf8_ok("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(pst_sasl_utf8_ok("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(pst_sasl_utf8_ok("\x80", 1));
    assert_false(pst_sasl_utf8_ok("\xff", 1));
}

/* ---- MAIL FROM permission ---- */

static void test_may_send(void **state)
{
    (void)state;
    static const char *const addrs[] = {"alice@example.org", "@alias.example",
                                        "Sales@Shop.Example"};
    static const struct {
        const char *login, *local, *domain;
        int want;
    } cases[] = {
        {"alice", "alice", "example.org", 1},
        {"alice", "ALICE", "Example.ORG", 1},
        {"alice", "bob", "example.org", 0},
        {"alice", "alice", "example.com", 0},
        {"alice", "alice", "sub.example.org", 0},
        {"alice", "alice+list", "example.org", 0},
        {"alice", "anyone", "alias.example", 1},
        {"alice", "x", "ALIAS.example", 1},
        {"alice", "x", "notalias.example", 0},
        {"alice", "sales", "shop.example", 1},
        {"alice", "", "", 1}, /* null sender */
        {"alice", "", "example.org", 0},
        {"alice", "alice", "", 0},
        {"carol@own.example", "carol", "own.example", 1}, /* login is an address */
        {"carol@own.example", "dave", "own.example", 0},
        {"alice", "\"alice\"", "example.org", 0},
        {"alice", "j\xc3\xb6rg", "alias.example", 1},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = pst_sasl_may_send(cases[i].login, addrs, 3, cases[i].local, cases[i].domain);
        if (got != cases[i].want) {
            print_error("%s as %s@%s: got %d want %d\n", cases[i].login, cases[i].local,
                        cases[i].domain, got, cases[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    /* no addresses at all: only the null sender */
    assert_int_equal(pst_sasl_may_send("alice", NULL, 0, "alice", "example.org"), 0);
    assert_int_equal(pst_sasl_may_send("alice", NULL, 0, "", ""), 1);
    /* non-ASCII local parts compare exactly */
    static const char *const u[] = {"j\xc3\xb6rg@example.org"};
    assert_int_equal(pst_sasl_may_send("x", u, 1, "J\xc3\xb6RG", "example.org"), 1);
    assert_int_equal(pst_sasl_may_send("x", u, 1, "j\xc3\x96rg", "example.org"), 0);
}

/* ---- limiter ---- */

static void test_limit_threshold(void **state)
{
    (void)state;
    struct pst_authlimit *l = pst_authlimit_new(64, 3, 600);
    assert_non_null(l);
    int64_t t = 1000000;
    assert_int_equal(pst_authlimit_check(l, "192.0.2.1", t), 0);
    assert_int_equal(pst_authlimit_fail(l, "192.0.2.1", t), 0);
    assert_int_equal(pst_authlimit_fail(l, "192.0.2.1", t + 1), 0);
    assert_int_equal(pst_authlimit_check(l, "192.0.2.1", t + 2), 0); /* 2 < 3 */
    assert_int_equal(pst_authlimit_fail(l, "192.0.2.1", t + 2), 0);
    assert_int_equal(pst_authlimit_check(l, "192.0.2.1", t + 3), PST_ERR_AGAIN);
    /* another address is not affected */
    assert_int_equal(pst_authlimit_check(l, "192.0.2.2", t + 3), 0);
    /* still blocked just before the window from the first failure ends */
    assert_int_equal(pst_authlimit_check(l, "192.0.2.1", t + 599), PST_ERR_AGAIN);
    /* and free when it has passed */
    assert_int_equal(pst_authlimit_check(l, "192.0.2.1", t + 600), 0);
    assert_int_equal(pst_authlimit_count(l), 0);
    /* a success forgets earlier failures */
    assert_int_equal(pst_authlimit_fail(l, "192.0.2.1", t + 700), 0);
    assert_int_equal(pst_authlimit_fail(l, "192.0.2.1", t + 701), 0);
    assert_int_equal(pst_authlimit_success(l, "192.0.2.1"), 0);
    assert_int_equal(pst_authlimit_fail(l, "192.0.2.1", t + 702), 0);
    assert_int_equal(pst_authlimit_check(l, "192.0.2.1", t + 703), 0);
    /* bad addresses */
    assert_int_equal(pst_authlimit_check(l, "not-an-ip", t), PST_ERR_INVAL);
    assert_int_equal(pst_authlimit_fail(l, "192.0.2.300", t), PST_ERR_INVAL);
    assert_int_equal(pst_authlimit_check(l, NULL, t), PST_ERR_INVAL);
    pst_authlimit_free(l);
    pst_authlimit_free(NULL);
    assert_null(pst_authlimit_new(0, 3, 600));
    assert_null(pst_authlimit_new(8, 0, 600));
    assert_null(pst_authlimit_new(8, 3, 0));
}

static void test_limit_window(void **state)
{
    (void)state;
    struct pst_authlimit *l = pst_authlimit_new(8, 2, 60);
    assert_non_null(l);
    /* failures further apart than the window never add up */
    assert_int_equal(pst_authlimit_fail(l, "198.51.100.7", 0), 0);
    assert_int_equal(pst_authlimit_fail(l, "198.51.100.7", 60), 0);
    assert_int_equal(pst_authlimit_check(l, "198.51.100.7", 61), 0);
    assert_int_equal(pst_authlimit_fail(l, "198.51.100.7", 100), 0);
    assert_int_equal(pst_authlimit_check(l, "198.51.100.7", 101), PST_ERR_AGAIN);
    /* a clock that went backwards releases rather than blocking forever */
    assert_int_equal(pst_authlimit_check(l, "198.51.100.7", 10), 0);
    pst_authlimit_free(l);
}

static void test_limit_ipv6_prefix(void **state)
{
    (void)state;
    struct pst_authlimit *l = pst_authlimit_new(8, 2, 60);
    assert_non_null(l);
    /* two addresses of one /64 count together */
    assert_int_equal(pst_authlimit_fail(l, "2001:db8:1:2::1", 0), 0);
    assert_int_equal(pst_authlimit_fail(l, "2001:db8:1:2:ffff::9", 1), 0);
    assert_int_equal(pst_authlimit_check(l, "2001:db8:1:2::77", 2), PST_ERR_AGAIN);
    assert_int_equal(pst_authlimit_check(l, "2001:db8:1:3::1", 2), 0);
    /* an IPv4-mapped address counts as the IPv4 address */
    assert_int_equal(pst_authlimit_fail(l, "::ffff:192.0.2.9", 3), 0);
    assert_int_equal(pst_authlimit_fail(l, "192.0.2.9", 4), 0);
    assert_int_equal(pst_authlimit_check(l, "192.0.2.9", 5), PST_ERR_AGAIN);
    pst_authlimit_free(l);
}

static void test_limit_eviction(void **state)
{
    (void)state;
    /* 8 slots: one set, so every address competes for the same slots */
    struct pst_authlimit *l = pst_authlimit_new(8, 2, 100000);
    assert_non_null(l);
    char ip[32];
    /* a blocked client */
    assert_int_equal(pst_authlimit_fail(l, "203.0.113.1", 0), 0);
    assert_int_equal(pst_authlimit_fail(l, "203.0.113.1", 1), 0);
    assert_int_equal(pst_authlimit_check(l, "203.0.113.1", 2), PST_ERR_AGAIN);
    /* 7 quiet clients with one failure each fill the table */
    for (int i = 0; i < 7; i++) {
        snprintf(ip, sizeof(ip), "10.0.0.%d", i);
        assert_int_equal(pst_authlimit_fail(l, ip, 10 + i), 0);
    }
    assert_int_equal(pst_authlimit_count(l), 8);
    /* a flood of new addresses: the count stays at 8, the blocked client
     * stays blocked, and the quiet clients are evicted oldest first */
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 256, i % 256);
        assert_int_equal(pst_authlimit_fail(l, ip, 100 + i), 0);
        assert_true(pst_authlimit_count(l) <= 8);
    }
    assert_int_equal(pst_authlimit_count(l), 8);
    assert_int_equal(pst_authlimit_check(l, "203.0.113.1", 500), PST_ERR_AGAIN);
    /* the first quiet client was evicted: a second failure does not block */
    assert_int_equal(pst_authlimit_fail(l, "10.0.0.0", 600), 0);
    assert_int_equal(pst_authlimit_check(l, "10.0.0.0", 601), 0);

    /* a table full of blocked clients: the one released first goes */
    struct pst_authlimit *m = pst_authlimit_new(8, 1, 1000);
    assert_non_null(m);
    for (int i = 0; i < 8; i++) {
        snprintf(ip, sizeof(ip), "10.2.0.%d", i);
        assert_int_equal(pst_authlimit_fail(m, ip, i), 0);
    }
    assert_int_equal(pst_authlimit_fail(m, "10.3.0.1", 50), 0);
    assert_int_equal(pst_authlimit_count(m), 8);
    assert_int_equal(pst_authlimit_check(m, "10.2.0.0", 51), 0);
    assert_int_equal(pst_authlimit_check(m, "10.2.0.1", 51), PST_ERR_AGAIN);
    assert_int_equal(pst_authlimit_check(m, "10.3.0.1", 51), PST_ERR_AGAIN);
    pst_authlimit_free(m);
    pst_authlimit_free(l);
}

static void test_limit_large_table(void **state)
{
    (void)state;
    /* many sets: many different clients are each remembered */
    struct pst_authlimit *l = pst_authlimit_new(4096, 1, 1000);
    assert_non_null(l);
    char ip[32];
    for (int i = 0; i < 100; i++) {
        snprintf(ip, sizeof(ip), "192.0.2.%d", i);
        assert_int_equal(pst_authlimit_fail(l, ip, 0), 0);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(ip, sizeof(ip), "192.0.2.%d", i);
        assert_int_equal(pst_authlimit_check(l, ip, 1), PST_ERR_AGAIN);
    }
    assert_int_equal(pst_authlimit_count(l), 100);
    pst_authlimit_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_continuation),
        cmocka_unit_test(test_plain_initial_response),
        cmocka_unit_test(test_plain_bounds),
        cmocka_unit_test(test_login),
        cmocka_unit_test(test_start_table),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_may_send),
        cmocka_unit_test(test_limit_threshold),
        cmocka_unit_test(test_limit_window),
        cmocka_unit_test(test_limit_ipv6_prefix),
        cmocka_unit_test(test_limit_eviction),
        cmocka_unit_test(test_limit_large_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
