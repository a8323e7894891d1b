/*
 * fuzz_smtp_data.c - the DATA/BDAT state machine. The first input byte
 * picks the mode, NORMALIZE and the output buffer size, the second seeds
 * the cut points; the rest is the data. It checks that
 *  - one feed gives what a byte-at-a-time model written from smtp.h gives;
 *  - any cutting of the input, through a small output buffer that fills
 *    up (PST_ERR_TOOBIG, then resume), gives the same output, the same end
 *    of data and the same counters as one feed;
 *  - feeding byte by byte gives the same again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

struct result {
    char *out;
    size_t outlen;
    size_t outcap;
    int done;
    size_t consumed;
    uint64_t bare;
    uint64_t nul;
};

static void put(struct result *r, const char *s, size_t n)
{
    CHECK(r->outlen + n <= r->outcap);
    memcpy(r->out + r->outlen, s, n);
    r->outlen += n;
}

static void drain(struct pst_buf *b, struct result *r)
{
    put(r, pst_buf_data(b), pst_buf_len(b));
    pst_buf_reset(b);
}

/* Byte-at-a-time model of the header's rules. */
static void model(int mode, int flags, const char *in, size_t len, struct result *r)
{
    enum { BOL, MID, CR, DOT, DOTCR } st = mode == PST_SMTP_DATA_DOT ? BOL : MID;
    size_t i = 0;
    while (i < len) {
        char c = in[i];
        int bare = 0;
        switch (st) {
        case BOL:
            if (c == '.') {
                st = DOT;
                i++;
            } else
                st = MID;
            continue;
        case MID:
            i++;
            if (c == '\r') {
                st = CR;
                continue;
            }
            if (c != '\n') {
                r->nul += c == '\0';
                put(r, &c, 1);
                continue;
            }
            bare = '\n';
            break;
        case CR:
            if (c == '\n') {
                put(r, "\r\n", 2);
                st = mode == PST_SMTP_DATA_DOT ? BOL : MID;
                i++;
                continue;
            }
            bare = '\r';
            st = MID;
            break;
        case DOT:
            if (c == '\r') {
                st = DOTCR;
                i++;
            } else
                st = MID;
            continue;
        case DOTCR:
            if (c == '\n') {
                r->done = 1;
                r->consumed = i + 1;
                return;
            }
            bare = '\r';
            st = MID;
            break;
        }
        char b = (char)bare;
        r->bare++;
        if (flags & PST_SMTP_DATA_NORMALIZE)
            put(r, "\r\n", 2);
        else
            put(r, &b, 1);
    }
    if (mode == PST_SMTP_DATA_RAW && st == CR) {
        r->bare++;
        put(r, (flags & PST_SMTP_DATA_NORMALIZE) ? "\r\n" : "\r",
            (flags & PST_SMTP_DATA_NORMALIZE) ? 2 : 1);
    }
    r->consumed = len;
}

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Feeds in pieces whose lengths come from the seed (0 means byte by
 * byte) through an output buffer of outmax bytes. */
static void run(int mode, int flags, const char *in, size_t len, uint32_t seed, size_t outmax,
                struct result *r)
{
    struct pst_smtp_data d;
    struct pst_buf *out = pst_buf_new(outmax);
    CHECK(out != NULL);
    pst_smtp_data_init(&d, mode, flags);
    size_t pos = 0;
    while (pos < len && !r->done) {
        size_t piece = 1;
        if (seed != 0) {
            uint32_t v = next(&seed);
            piece = (v & 0x100) ? (v & 7) : (v % 97); /* many tiny, some larger */
        }
        if (piece > len - pos)
            piece = len - pos;
        size_t stop = pos + piece;
        do {
            size_t used = 99;
            int was_empty = pst_buf_len(out) == 0;
            int rc = pst_smtp_data_feed(&d, in + pos, stop - pos, &used, out);
            CHECK(used <= stop - pos);
            pos += used;
            if (rc == PST_ERR_TOOBIG) {
                /* progress: into an empty buffer of 2 or more bytes
                 * something is always written, or some input taken */
                CHECK(!was_empty || used > 0 || pst_buf_len(out) > 0);
                drain(out, r);
                continue;
            }
            CHECK(rc == 0 || rc == 1);
            CHECK(d.done == (rc == 1));
            if (rc == 1) {
                r->done = 1;
                size_t u = 7;
                CHECK(pst_smtp_data_feed(&d, "x", 1, &u, out) == PST_ERR_STATE && u == 0);
                break;
            }
            CHECK(pos == stop);
        } while (pos < stop);
    }
    if (mode == PST_SMTP_DATA_RAW) {
        int rc;
        while ((rc = pst_smtp_data_finish(&d, out)) == PST_ERR_TOOBIG)
            drain(out, r);
        CHECK(rc == 0);
    }
    drain(out, r);
    r->consumed = pos;
    r->bare = d.bare_eol;
    r->nul = d.nul;
    CHECK(d.out_bytes == r->outlen);
    pst_buf_free(out);
}

static void same(const struct result *a, const struct result *b)
{
    CHECK(a->outlen == b->outlen);
    CHECK(memcmp(a->out, b->out, a->outlen) == 0);
    CHECK(a->done == b->done);
    CHECK(a->consumed == b->consumed);
    CHECK(a->bare == b->bare);
    CHECK(a->nul == b->nul);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = (data[0] & 1) ? PST_SMTP_DATA_RAW : PST_SMTP_DATA_DOT;
    int flags = (data[0] & 2) ? PST_SMTP_DATA_NORMALIZE : 0;
    size_t outmax = 2 + (size_t)(data[0] >> 2); /* 2 .. 65 */
    uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[1] * 0x01000193u);
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    size_t cap = 2 * len + 16; /* NORMALIZE at most doubles */

    struct result m = {0}, one = {0}, cut = {0}, bytes = {0};
    m.out = malloc(cap);
    one.out = malloc(cap);
    cut.out = malloc(cap);
    bytes.out = malloc(cap);
    if (m.out == NULL || one.out == NULL || cut.out == NULL || bytes.out == NULL)
        goto out;
    m.outcap = one.outcap = cut.outcap = bytes.outcap = cap;

    model(mode, flags, in, len, &m);
    /* one feed through a buffer that never fills */
    {
        struct pst_smtp_data d;
        struct pst_buf *b = pst_buf_new(cap);
        CHECK(b != NULL);
        pst_smtp_data_init(&d, mode, flags);
        size_t used = 0;
        int rc = pst_smtp_data_feed(&d, in, len, &used, b);
        CHECK(rc == 0 || rc == 1);
        one.done = rc == 1;
        CHECK(rc == 1 || used == len);
        if (mode == PST_SMTP_DATA_RAW)
            CHECK(pst_smtp_data_finish(&d, b) == 0);
        drain(b, &one);
        one.consumed = used;
        one.bare = d.bare_eol;
        one.nul = d.nul;
        pst_buf_free(b);
    }
    same(&one, &m);
    run(mode, flags, in, len, seed, outmax, &cut);
    same(&cut, &one);
    if (len <= 4096) {
        run(mode, flags, in, len, 0, 2 + (outmax & 3), &bytes);
        same(&bytes, &one);
    }
out:
    free(m.out);
    free(one.out);
    free(cut.out);
    free(bytes.out);
    return 0;
}
