/*
 * test_dkim_canon.c - DKIM canonicalization (RFC 6376 3.4): every header
 * and body rule of simple and relaxed, the 3.4.5 example exactly, and the
 * streaming body canonicalizer fed at every split point.
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
#include "dkim.h"
#include "err.h"
#include "msg.h"

static const char *esc(const char *s, size_t n)
{
    static char b[2][4096];
    static int w;
    char *o = b[w ^= 1];
    size_t j = 0;
    for (size_t i = 0; i < n && j + 8 < sizeof(b[0]); i++) {
        if (s[i] == '\r')
            j += (size_t)snprintf(o + j, 8, "<CR>");
        else if (s[i] == '\n')
            j += (size_t)snprintf(o + j, 8, "<LF>");
        else if (s[i] == '\t')
            j += (size_t)snprintf(o + j, 8, "<HT>");
        else if (s[i] == ' ')
            j += (size_t)snprintf(o + j, 8, "<SP>");
        else
            o[j++] = s[i];
    }
    o[j] = '\0';
    return o;
}

struct hcase {
    const char *name;
    enum pst_dkim_canon c;
    const char *in;
    const char *want;
};

static const struct hcase hcases[] = {
    {"simple unchanged", PST_DKIM_SIMPLE, "SubJect :  a \r\n\tb  ", "SubJect :  a \r\n\tb  \r\n"},
    {"relaxed lower-cases the name", PST_DKIM_RELAXED, "SubJect: a", "subject:a\r\n"},
    {"relaxed: WSP before colon", PST_DKIM_RELAXED, "X \t: a", "x:a\r\n"},
    {"relaxed: WSP after colon", PST_DKIM_RELAXED, "X:\t  a", "x:a\r\n"},
    {"relaxed: unfold", PST_DKIM_RELAXED, "X: a\r\n b", "x:a b\r\n"},
    {"relaxed: unfold without WSP before", PST_DKIM_RELAXED, "X: a\r\n\tb", "x:a b\r\n"},
    {"relaxed: WSP runs", PST_DKIM_RELAXED, "X: a \t \t b", "x:a b\r\n"},
    {"relaxed: trailing WSP", PST_DKIM_RELAXED, "X: a \t", "x:a\r\n"},
    {"relaxed: trailing fold", PST_DKIM_RELAXED, "X: a\r\n ", "x:a\r\n"},
    {"relaxed: empty value", PST_DKIM_RELAXED, "X:", "x:\r\n"},
    {"relaxed: only WSP", PST_DKIM_RELAXED, "X: \r\n \t", "x:\r\n"},
    {"relaxed: value case kept", PST_DKIM_RELAXED, "X: AbC", "x:AbC\r\n"},
    {"relaxed: 8-bit kept", PST_DKIM_RELAXED, "X: \xc3\xa9  \xc3\xa9", "x:\xc3\xa9 \xc3\xa9\r\n"},
};

static void test_header_table(void **state)
{
    (void)state;
    int bad = 0;
    struct pst_buf *b = pst_buf_new(4096);
    for (size_t i = 0; i < sizeof(hcases) / sizeof(hcases[0]); i++) {
        const struct hcase *t = &hcases[i];
        pst_buf_reset(b);
        int rc = pst_dkim_canon_header(t->c, t->in, strlen(t->in), 1, b);
        if (rc != 0 || strcmp(pst_buf_data(b), t->want) != 0) {
            print_error("%s: got %d \"%s\" want \"%s\"\n", t->name, rc,
                        esc(pst_buf_data(b), pst_buf_len(b)), esc(t->want, strlen(t->want)));
            bad++;
        }
    }
    pst_buf_reset(b);
    assert_int_equal(pst_dkim_canon_header(PST_DKIM_RELAXED, "X: a", 4, 0, b), 0);
    assert_string_equal(pst_buf_data(b), "x:a");
    struct pst_buf *small = pst_buf_new(3);
    assert_int_equal(pst_dkim_canon_header(PST_DKIM_RELAXED, "X: abc", 6, 1, small),
                     PST_ERR_TOOBIG);
    assert_int_equal(pst_buf_len(small), 0);
    pst_buf_free(small);
    pst_buf_free(b);
    assert_int_equal(bad, 0);
}

struct bcase {
    const char *name;
    enum pst_dkim_canon c;
    const char *in;
    const char *want;
};

static const struct bcase bcases[] = {
    {"simple: empty body is CRLF", PST_DKIM_SIMPLE, "", "\r\n"},
    {"relaxed: empty body is empty", PST_DKIM_RELAXED, "", ""},
    {"simple: only empty lines", PST_DKIM_SIMPLE, "\r\n\r\n\r\n", "\r\n"},
    {"relaxed: only empty lines", PST_DKIM_RELAXED, "\r\n\r\n", ""},
    {"simple: trailing empty lines dropped", PST_DKIM_SIMPLE, "a\r\n\r\n\r\n", "a\r\n"},
    {"relaxed: trailing empty lines dropped", PST_DKIM_RELAXED, "a\r\n\r\n", "a\r\n"},
    {"simple: missing final CRLF added", PST_DKIM_SIMPLE, "a", "a\r\n"},
    {"relaxed: missing final CRLF added", PST_DKIM_RELAXED, "a", "a\r\n"},
    {"simple: inner empty lines kept", PST_DKIM_SIMPLE, "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
    {"relaxed: inner empty lines kept", PST_DKIM_RELAXED, "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
    {"simple: WSP kept", PST_DKIM_SIMPLE, " a \t b \r\n", " a \t b \r\n"},
    {"relaxed: WSP runs to SP", PST_DKIM_RELAXED, "a \t b\r\n", "a b\r\n"},
    {"relaxed: leading WSP to SP", PST_DKIM_RELAXED, "\t\ta\r\n", " a\r\n"},
    {"relaxed: trailing WSP dropped", PST_DKIM_RELAXED, "a \t\r\n", "a\r\n"},
    {"relaxed: WSP-only line is empty", PST_DKIM_RELAXED, "a\r\n \t\r\n", "a\r\n"},
    {"relaxed: WSP-only lines inside", PST_DKIM_RELAXED, "a\r\n \r\nb\r\n", "a\r\n\r\nb\r\n"},
    {"simple: WSP-only line is content", PST_DKIM_SIMPLE, "a\r\n \r\n", "a\r\n \r\n"},
    {"relaxed: no final CRLF, trailing WSP", PST_DKIM_RELAXED, "a  ", "a\r\n"},
    {"bare LF is content", PST_DKIM_SIMPLE, "a\nb\r\n", "a\nb\r\n"},
    {"bare CR is content", PST_DKIM_RELAXED, "a\rb\r\n", "a\rb\r\n"},
    {"CR CR LF", PST_DKIM_SIMPLE, "a\r\r\n", "a\r\r\n"},
    {"final bare CR", PST_DKIM_SIMPLE, "a\r", "a\r\r\n"},
    {"relaxed: CR is not WSP", PST_DKIM_RELAXED, "a \r \r\n", "a \r\r\n"},
    /* RFC 6376 3.4.5 */
    {"3.4.5 relaxed body", PST_DKIM_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"},
    {"3.4.5 simple body", PST_DKIM_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n"},
};

static void sink(void *arg, const char *p, size_t n)
{
    assert_int_equal(pst_buf_add(arg, p, n), 0);
}

/* Canonicalizes in split at every cut (1 and 2 cuts), all must agree. */
static int body_all_splits(enum pst_dkim_canon c, const char *in, const char *want, char *got,
                           size_t gotlen)
{
    size_t n = strlen(in);
    struct pst_buf *b = pst_buf_new(1 << 16);
    int bad = 0;
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            struct pst_dkim_bodycanon bc;
            pst_buf_reset(b);
            pst_dkim_bodycanon_init(&bc, c, sink, b);
            pst_dkim_bodycanon_update(&bc, in, i);
            pst_dkim_bodycanon_update(&bc, in + i, j - i);
            pst_dkim_bodycanon_update(&bc, in + j, n - j);
            pst_dkim_bodycanon_final(&bc);
            if (pst_buf_len(b) != strlen(want) || memcmp(pst_buf_data(b), want, strlen(want))) {
                snprintf(got, gotlen, "%s (cut %zu %zu)", esc(pst_buf_data(b), pst_buf_len(b)), i,
                         j);
                bad = 1;
                goto out;
            }
        }
    }
out:
    pst_buf_free(b);
    return bad;
}

static void test_body_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(bcases) / sizeof(bcases[0]); i++) {
        const struct bcase *t = &bcases[i];
        char got[1024];
        if (body_all_splits(t->c, t->in, t->want, got, sizeof(got))) {
            print_error("%s: got \"%s\" want \"%s\"\n", t->name, got,
                        esc(t->want, strlen(t->want)));
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* RFC 6376 3.4.5, the whole message: header and body, both ways. */
static void test_rfc6376_345(void **state)
{
    (void)state;
    const char *msg = "A: X\r\n"
                      "B : Y\t\r\n"
                      "\tZ  \r\n"
                      "\r\n"
                      " C \r\n"
                      "D \t E\r\n"
                      "\r\n"
                      "\r\n";
    struct pst_msg_header *h;
    assert_int_equal(pst_msg_split(msg, strlen(msg), NULL, &h, NULL), 0);
    assert_int_equal(h->nfields, 2);
    struct pst_buf *b = pst_buf_new(1024);
    for (size_t i = 0; i < h->nfields; i++)
        assert_int_equal(
            pst_dkim_canon_header(PST_DKIM_RELAXED, h->fields[i].raw, h->fields[i].raw_len, 1, b),
            0);
    assert_string_equal(pst_buf_data(b), "a:X\r\nb:Y Z\r\n");
    pst_buf_reset(b);
    for (size_t i = 0; i < h->nfields; i++)
        assert_int_equal(
            pst_dkim_canon_header(PST_DKIM_SIMPLE, h->fields[i].raw, h->fields[i].raw_len, 1, b),
            0);
    assert_string_equal(pst_buf_data(b), "A: X\r\nB : Y\t\r\n\tZ  \r\n");
    const char *body = msg + h->body_off;
    struct pst_dkim_bodycanon bc;
    pst_buf_reset(b);
    pst_dkim_bodycanon_init(&bc, PST_DKIM_RELAXED, sink, b);
    pst_dkim_bodycanon_update(&bc, body, strlen(body));
    pst_dkim_bodycanon_final(&bc);
    assert_string_equal(pst_buf_data(b), " C\r\nD E\r\n");
    pst_buf_reset(b);
    pst_dkim_bodycanon_init(&bc, PST_DKIM_SIMPLE, sink, b);
    pst_dkim_bodycanon_update(&bc, body, strlen(body));
    pst_dkim_bodycanon_final(&bc);
    assert_string_equal(pst_buf_data(b), " C \r\nD \t E\r\n");
    pst_buf_free(b);
    pst_msg_header_free(h);
}

/* A long run of empty lines and of WSP costs no memory: only counters. */
static void test_body_streaming_bounded(void **state)
{
    (void)state;
    char chunk[4096];
    for (size_t i = 0; i < sizeof(chunk); i += 2)
        memcpy(chunk + i, "\r\n", 2);
    struct pst_buf *b = pst_buf_new(64);
    struct pst_dkim_bodycanon bc;
    pst_dkim_bodycanon_init(&bc, PST_DKIM_SIMPLE, sink, b);
    pst_dkim_bodycanon_update(&bc, "x", 1);
    for (int k = 0; k < 1000; k++)
        pst_dkim_bodycanon_update(&bc, chunk, sizeof(chunk));
    pst_dkim_bodycanon_final(&bc);
    assert_string_equal(pst_buf_data(b), "x\r\n");
    pst_buf_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_table),
        cmocka_unit_test(test_body_table),
        cmocka_unit_test(test_rfc6376_345),
        cmocka_unit_test(test_body_streaming_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
