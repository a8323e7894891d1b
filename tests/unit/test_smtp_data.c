/*
 * test_smtp_data.c - the DATA/BDAT state machine: end of data, dot
 * unstuffing, the smuggling variants, normalization, full output buffers,
 * and that every split of the input gives the same result.
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

#define DOT  PST_SMTP_DATA_DOT
#define RAW  PST_SMTP_DATA_RAW
#define NORM PST_SMTP_DATA_NORMALIZE

struct result {
    char out[4096];
    size_t outlen;
    int rc;          /* 1 end of data seen, 0 more needed, <0 error */
    size_t consumed; /* bytes of the input that belong to the data */
    uint64_t bare;
    uint64_t nul;
};

/* Shows CR, LF and NUL so a mismatch can be read. */
static const char *esc(const char *s, size_t n)
{
    static char bufs[2][8192];
    static int which;
    char *b = bufs[which ^= 1];
    size_t j = 0;
    for (size_t i = 0; i < n && j + 5 < sizeof(bufs[0]); i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r')
            j += (size_t)snprintf(b + j, 8, "\\r");
        else if (c == '\n')
            j += (size_t)snprintf(b + j, 8, "\\n");
        else if (c < 0x20 || c >= 0x7f)
            j += (size_t)snprintf(b + j, 8, "\\x%02x", c);
        else
            b[j++] = (char)c;
    }
    b[j] = '\0';
    return b;
}

static int same(const struct result *a, const struct result *b)
{
    return a->outlen == b->outlen && memcmp(a->out, b->out, a->outlen) == 0 && a->rc == b->rc &&
           a->consumed == b->consumed && a->bare == b->bare && a->nul == b->nul;
}

static void show(const char *what, const struct result *r)
{
    print_error("  %s: out=\"%s\" rc=%d consumed=%zu bare=%llu nul=%llu\n", what,
                esc(r->out, r->outlen), r->rc, r->consumed, (unsigned long long)r->bare,
                (unsigned long long)r->nul);
}

/* Moves out's bytes into r. */
static void drain(struct pst_buf *out, struct result *r)
{
    size_t n = pst_buf_len(out);
    assert_true(r->outlen + n <= sizeof(r->out));
    memcpy(r->out + r->outlen, pst_buf_data(out), n);
    r->outlen += n;
    pst_buf_reset(out);
}

/*
 * Feeds in[0..len) cut at the given points, through an output buffer of
 * outmax bytes that is emptied whenever it is full; RAW mode ends with
 * pst_smtp_data_finish.
 */
static void run(int mode, int flags, const char *in, size_t len, const size_t *cuts, size_t ncuts,
                size_t outmax, struct result *r)
{
    struct pst_smtp_data d;
    struct pst_buf *out = pst_buf_new(outmax);
    assert_non_null(out);
    memset(r, 0, sizeof(*r));
    pst_smtp_data_init(&d, mode, flags);
    size_t pos = 0;
    for (size_t k = 0; k <= ncuts && r->rc == 0; k++) {
        size_t stop = k < ncuts ? cuts[k] : len;
        if (stop < pos)
            stop = pos;
        if (stop > len)
            stop = len;
        while (pos < stop) {
            size_t used = 0, asked = stop - pos;
            int rc = pst_smtp_data_feed(&d, in + pos, asked, &used, out);
            assert_true(used <= asked);
            pos += used;
            if (rc == PST_ERR_TOOBIG) {
                /* an empty buffer of 2 or more bytes always makes progress */
                assert_true(used > 0 || pst_buf_len(out) > 0);
                drain(out, r);
                continue;
            }
            assert_true(rc == 0 || rc == 1);
            if (rc == 1) {
                r->rc = 1;
                assert_int_equal(d.done, 1);
                break;
            }
            assert_int_equal(used, asked);
        }
    }
    if (r->rc == 1) {
        size_t used = 1;
        assert_int_equal(pst_smtp_data_feed(&d, "x", 1, &used, out), PST_ERR_STATE);
        assert_int_equal(used, 0);
    }
    if (mode == RAW) {
        int rc;
        while ((rc = pst_smtp_data_finish(&d, out)) == PST_ERR_TOOBIG)
            drain(out, r);
        assert_int_equal(rc, 0);
    }
    drain(out, r);
    r->consumed = pos;
    r->bare = d.bare_eol;
    r->nul = d.nul;
    assert_int_equal(d.out_bytes, r->outlen);
    pst_buf_free(out);
}

/* A byte-at-a-time model of the machine, written from the header only. */
static void reference(int mode, int flags, const char *in, size_t len, struct result *r)
{
    enum { BOL, MID, CR, DOTST, DOTCR } st = mode == DOT ? BOL : MID;
    memset(r, 0, sizeof(*r));
    size_t i = 0;
#define PUT(c) (r->out[r->outlen++] = (char)(c))
#define BARE(c)                                                                                    \
    do {                                                                                           \
        r->bare++;                                                                                 \
        if (flags & NORM) {                                                                        \
            PUT('\r');                                                                             \
            PUT('\n');                                                                             \
        } else                                                                                     \
            PUT(c);                                                                                \
    } while (0)
    while (i < len) {
        char c = in[i];
        switch (st) {
        case BOL:
            if (c == '.') {
                st = DOTST;
                i++;
            } else
                st = MID;
            break;
        case MID:
            if (c == '\r')
                st = CR;
            else if (c == '\n')
                BARE('\n');
            else {
                PUT(c);
                r->nul += c == '\0';
            }
            i++;
            break;
        case CR:
            if (c == '\n') {
                PUT('\r');
                PUT('\n');
                st = mode == DOT ? BOL : MID;
                i++;
            } else {
                BARE('\r');
                st = MID;
            }
            break;
        case DOTST:
            if (c == '\r') {
                st = DOTCR;
                i++;
            } else
                st = MID;
            break;
        case DOTCR:
            if (c == '\n') {
                r->rc = 1;
                r->consumed = i + 1;
                return;
            }
            BARE('\r');
            st = MID;
            break;
        }
    }
    if (mode == RAW && st == CR)
        BARE('\r');
    r->consumed = len;
#undef PUT
#undef BARE
}

struct data_case {
    const char *name;
    int mode;
    int flags;
    const char *in;
    size_t inlen; /* 0: strlen(in) */
    const char *want;
    size_t wantlen; /* 0: strlen(want) */
    int rc;         /* 1 when the end of data is seen */
    long consumed;  /* -1: all of in */
    uint64_t bare;
    uint64_t nul;
};

static const struct data_case cases[] = {
    {"one line", DOT, 0, "Hello\r\n.\r\n", 0, "Hello\r\n", 0, 1, -1, 0, 0},
    {"empty message: first line is the dot", DOT, 0, ".\r\n", 0, "", 0, 1, -1, 0, 0},
    {"message of one empty line", DOT, 0, "\r\n.\r\n", 0, "\r\n", 0, 1, -1, 0, 0},
    {"headers and body", DOT, 0, "Subject: x\r\n\r\nbody\r\n.\r\n", 0, "Subject: x\r\n\r\nbody\r\n",
     0, 1, -1, 0, 0},
    {"dot-stuffed line", DOT, 0, "..x\r\n.\r\n", 0, ".x\r\n", 0, 1, -1, 0, 0},
    {"first dot of any line is dropped", DOT, 0, ".x\r\n.\r\n", 0, "x\r\n", 0, 1, -1, 0, 0},
    {"three dots", DOT, 0, "a\r\n...\r\n.\r\n", 0, "a\r\n..\r\n", 0, 1, -1, 0, 0},
    {"dot space", DOT, 0, ". \r\n.\r\n", 0, " \r\n", 0, 1, -1, 0, 0},
    {"dot only inside a line is kept", DOT, 0, "a.b\r\n.\r\n", 0, "a.b\r\n", 0, 1, -1, 0, 0},
    {"pipelined command after the end", DOT, 0, "a\r\n.\r\nQUIT\r\n", 0, "a\r\n", 0, 1, 6, 0, 0},
    {"needs more", DOT, 0, "abc\r\n", 0, "abc\r\n", 0, 0, -1, 0, 0},
    {"CR waits for the next byte", DOT, 0, "abc\r", 0, "abc", 0, 0, -1, 0, 0},
    {"line-leading dot waits", DOT, 0, "abc\r\n.", 0, "abc\r\n", 0, 0, -1, 0, 0},
    {"smuggling LF.LF", DOT, 0, "a\n.\nb\r\n.\r\n", 0, "a\n.\nb\r\n", 0, 1, -1, 2, 0},
    {"smuggling CR.CR", DOT, 0, "a\r.\rb\r\n.\r\n", 0, "a\r.\rb\r\n", 0, 1, -1, 2, 0},
    {"smuggling LF.CRLF", DOT, 0, "a\n.\r\nb\r\n.\r\n", 0, "a\n.\r\nb\r\n", 0, 1, -1, 1, 0},
    {"smuggling CRLF.LF", DOT, 0, "a\r\n.\nb\r\n.\r\n", 0, "a\r\n\nb\r\n", 0, 1, -1, 1, 0},
    {"smuggling CRLF.CR", DOT, 0, "a\r\n.\rb\r\n.\r\n", 0, "a\r\n\rb\r\n", 0, 1, -1, 1, 0},
    {"smuggling LF.LF at the start", DOT, 0, "\n.\n", 0, "\n.\n", 0, 0, -1, 2, 0},
    {"smuggling .LF at the start", DOT, 0, ".\nX\r\n.\r\n", 0, "\nX\r\n", 0, 1, -1, 1, 0},
    {"bare LF then .CRLF is not the end", DOT, 0, "\n.\r\n", 0, "\n.\r\n", 0, 0, -1, 1, 0},
    {"CR CR LF: the second CR pairs", DOT, 0, "a\r\r\n.\r\n", 0, "a\r\r\n", 0, 1, -1, 1, 0},
    {"dot CR CR LF", DOT, 0, ".\r\r\n.\r\n", 0, "\r\r\n", 0, 1, -1, 1, 0},
    {"normalize bare LF", DOT, NORM, "a\nb\r\n.\r\n", 0, "a\r\nb\r\n", 0, 1, -1, 1, 0},
    {"normalize bare CR", DOT, NORM, "a\rb\r\n.\r\n", 0, "a\r\nb\r\n", 0, 1, -1, 1, 0},
    {"normalize keeps the dot after a bare LF", DOT, NORM, "a\n.b\r\n.\r\n", 0, "a\r\n.b\r\n", 0, 1,
     -1, 1, 0},
    {"normalize LF.LF never ends", DOT, NORM, "a\n.\nb\r\n.\r\n", 0, "a\r\n.\r\nb\r\n", 0, 1, -1, 2,
     0},
    {"normalize CRLF.LF", DOT, NORM, "a\r\n.\nb\r\n.\r\n", 0, "a\r\n\r\nb\r\n", 0, 1, -1, 1, 0},
    {"normalize CRLF.CR", DOT, NORM, "a\r\n.\rb\r\n.\r\n", 0, "a\r\n\r\nb\r\n", 0, 1, -1, 1, 0},
    {"NUL passes and is counted", DOT, 0, "a\0b\r\n\0\r\n.\r\n", 11, "a\0b\r\n\0\r\n", 8, 1, -1, 0,
     2},
    {"dot NUL", DOT, 0, ".\0\r\n.\r\n", 7, "\0\r\n", 3, 1, -1, 0, 1},
    {"8-bit bytes pass", DOT, 0, "\xc3\xa9t\xc3\xa9\r\n.\r\n", 0, "\xc3\xa9t\xc3\xa9\r\n", 0, 1, -1,
     0, 0},
    {"raw: CRLF", RAW, 0, "a\r\nb", 0, "a\r\nb", 0, 0, -1, 0, 0},
    {"raw: no dot handling", RAW, 0, "\r\n.\r\n..x\r\n", 0, "\r\n.\r\n..x\r\n", 0, 0, -1, 0, 0},
    {"raw: bare CR", RAW, 0, "a\rb", 0, "a\rb", 0, 0, -1, 1, 0},
    {"raw: bare LF", RAW, 0, "a\nb", 0, "a\nb", 0, 0, -1, 1, 0},
    {"raw: CR at the very end is bare", RAW, 0, "a\r", 0, "a\r", 0, 0, -1, 1, 0},
    {"raw: normalize CR at the end", RAW, NORM, "a\r", 0, "a\r\n", 0, 0, -1, 1, 0},
    {"raw: normalize bare LF", RAW, NORM, "a\nb\r\n", 0, "a\r\nb\r\n", 0, 0, -1, 1, 0},
    {"raw: NUL", RAW, 0, "\0\0", 2, "\0\0", 2, 0, -1, 0, 2},
    {"raw: empty", RAW, 0, "", 0, "", 0, 0, -1, 0, 0},
};

static void want_of(const struct data_case *c, struct result *w, size_t inlen)
{
    memset(w, 0, sizeof(*w));
    w->outlen = c->wantlen ? c->wantlen : strlen(c->want);
    memcpy(w->out, c->want, w->outlen);
    w->rc = c->rc;
    w->consumed = c->consumed < 0 ? inlen : (size_t)c->consumed;
    w->bare = c->bare;
    w->nul = c->nul;
}

static void test_table(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct data_case *c = &cases[i];
        size_t len = c->inlen ? c->inlen : strlen(c->in);
        struct result want, got, ref;
        want_of(c, &want, len);
        run(c->mode, c->flags, c->in, len, NULL, 0, 4096, &got);
        if (!same(&got, &want)) {
            print_error("%s: in \"%s\"\n", c->name, esc(c->in, len));
            show("got", &got);
            show("want", &want);
            bad++;
            continue;
        }
        reference(c->mode, c->flags, c->in, len, &ref);
        if (!same(&ref, &want)) {
            print_error("%s: the reference model disagrees\n", c->name);
            show("got", &ref);
            show("want", &want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Every single cut, every two cuts, byte by byte, and tiny output buffers
 * give what one feed gives. */
static void test_splits(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct data_case *c = &cases[i];
        size_t len = c->inlen ? c->inlen : strlen(c->in);
        struct result want, got;
        want_of(c, &want, len);
        for (size_t a = 0; a <= len; a++) {
            for (size_t b = a; b <= len; b++) {
                size_t cuts[2] = {a, b};
                for (size_t outmax = 2; outmax <= 6; outmax += 4) {
                    run(c->mode, c->flags, c->in, len, cuts, 2, outmax, &got);
                    if (!same(&got, &want) && bad++ < 10) {
                        print_error("%s: cut at %zu and %zu, out max %zu\n", c->name, a, b, outmax);
                        show("got", &got);
                        show("want", &want);
                    }
                }
            }
        }
        size_t every[64];
        size_t n = len < 64 ? len : 64;
        for (size_t k = 0; k < n; k++)
            every[k] = k;
        run(c->mode, c->flags, c->in, len, every, n, 3, &got);
        if (!same(&got, &want)) {
            print_error("%s: byte by byte\n", c->name);
            show("got", &got);
            show("want", &want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Random inputs over the interesting bytes against the byte-at-a-time
 * model, with random cuts and random output sizes. */
static void test_random_against_model(void **state)
{
    static const char alphabet[] = {'\r', '\n', '.', 'a', '\0', '\r', '\n', '.'};
    uint64_t seed = 0x9e3779b97f4a7c15u;
    int bad = 0;
    char in[300];
    for (int iter = 0; iter < 20000 && bad < 5; iter++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t len = (size_t)(seed >> 33) % (iter % 10 == 0 ? sizeof(in) : 24);
        for (size_t k = 0; k < len; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            unsigned v = (unsigned)(seed >> 40);
            /* long plain runs now and then, for the fast scanner */
            in[k] = (v & 0x100) ? 'x' : alphabet[v % sizeof(alphabet)];
        }
        int mode = (iter & 1) ? RAW : DOT;
        int flags = (iter & 2) ? NORM : 0;
        size_t cuts[4];
        for (int k = 0; k < 4; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            cuts[k] = len ? (size_t)(seed >> 33) % (len + 1) : 0;
        }
        for (int k = 1; k < 4; k++)
            for (int j = k; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        struct result ref, got;
        reference(mode, flags, in, len, &ref);
        run(mode, flags, in, len, cuts, 4, 2 + (size_t)(seed >> 60), &got);
        if (!same(&got, &ref)) {
            print_error("random #%d mode %d flags %d: in \"%s\"\n", iter, mode, flags,
                        esc(in, len));
            show("got", &got);
            show("want", &ref);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* PST_ERR_TOOBIG keeps everything: what fits is written, *consumed says
 * how far, and the next call resumes exactly. */
static void test_toobig_resumes(void **state)
{
    struct pst_smtp_data d;
    struct pst_buf *out = pst_buf_new(4);
    size_t used;
    pst_smtp_data_init(&d, DOT, 0);
    const char *in = "abcdefgh\r\n.\r\n";
    assert_int_equal(pst_smtp_data_feed(&d, in, strlen(in), &used, out), PST_ERR_TOOBIG);
    assert_int_equal(used, 4);
    assert_string_equal(pst_buf_data(out), "abcd");
    pst_buf_reset(out);
    assert_int_equal(pst_smtp_data_feed(&d, in + 4, strlen(in) - 4, &used, out), PST_ERR_TOOBIG);
    assert_int_equal(used, 4);
    assert_string_equal(pst_buf_data(out), "efgh");
    pst_buf_reset(out);
    /* "\r\n" fits whole; the dot line is consumed without output */
    assert_int_equal(pst_smtp_data_feed(&d, in + 8, strlen(in) - 8, &used, out), 1);
    assert_int_equal(used, 5);
    assert_string_equal(pst_buf_data(out), "\r\n");
    assert_int_equal(d.out_bytes, 10);
    pst_buf_free(out);
}

/* A CRLF is never split across a full buffer. */
static void test_toobig_keeps_crlf_whole(void **state)
{
    struct pst_smtp_data d;
    struct pst_buf *out = pst_buf_new(4);
    size_t used;
    pst_smtp_data_init(&d, DOT, 0);
    assert_int_equal(pst_smtp_data_feed(&d, "abc\r\nd", 6, &used, out), PST_ERR_TOOBIG);
    assert_int_equal(used, 3);
    assert_string_equal(pst_buf_data(out), "abc");
    pst_buf_free(out);
}

static void test_errors(void **state)
{
    struct pst_smtp_data d;
    struct pst_buf *tiny = pst_buf_new(1);
    struct pst_buf *out = pst_buf_new(64);
    size_t used = 99;
    pst_smtp_data_init(&d, DOT, 0);
    assert_int_equal(pst_smtp_data_feed(&d, "a", 1, &used, tiny), PST_ERR_INVAL);
    assert_int_equal(used, 0);
    assert_int_equal(pst_smtp_data_feed(&d, ".\r\n", 3, &used, out), 1);
    assert_int_equal(pst_smtp_data_feed(&d, "", 0, &used, out), PST_ERR_STATE);
    /* finish has no effect in DOT mode */
    assert_int_equal(pst_smtp_data_finish(&d, out), 0);
    /* RAW: finish with a full buffer can be retried */
    pst_smtp_data_init(&d, RAW, NORM);
    assert_int_equal(pst_smtp_data_feed(&d, "ab\r", 3, &used, out), 0);
    assert_int_equal(used, 3);
    struct pst_buf *two = pst_buf_new(2);
    assert_int_equal(pst_buf_addc(two, 'x'), 0);
    assert_int_equal(pst_smtp_data_finish(&d, two), PST_ERR_TOOBIG);
    pst_buf_reset(two);
    assert_int_equal(pst_smtp_data_finish(&d, two), 0);
    assert_memory_equal(pst_buf_data(two), "\r\n", 2);
    assert_int_equal(d.bare_eol, 1);
    assert_int_equal(pst_smtp_data_feed(&d, "a", 1, &used, out), PST_ERR_STATE);
    pst_buf_free(two);
    pst_buf_free(tiny);
    pst_buf_free(out);
}

/* A large message goes through in one append per feed and comes out
 * byte-identical (the fast path). */
static void test_large(void **state)
{
    size_t lines = 20000, len = 0;
    char *in = malloc(lines * 80 + 8);
    assert_non_null(in);
    for (size_t i = 0; i < lines; i++) {
        int w = snprintf(in + len, 81, "%s%05zu %s\r\n", i % 100 == 0 ? "." : "", i,
                         "the quick brown fox jumps over the lazy dog 0123456789 abcdefghijkl");
        len += (size_t)w;
    }
    memcpy(in + len, ".\r\n", 3);
    struct pst_smtp_data d;
    struct pst_buf *out = pst_buf_new(len + 8);
    size_t used;
    pst_smtp_data_init(&d, DOT, 0);
    assert_int_equal(pst_smtp_data_feed(&d, in, len + 3, &used, out), 1);
    assert_int_equal(used, len + 3);
    assert_int_equal(pst_buf_len(out), len - lines / 100);
    assert_int_equal(d.bare_eol, 0);
    free(in);
    pst_buf_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_toobig_resumes),
        cmocka_unit_test(test_toobig_keeps_crlf_whole),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
