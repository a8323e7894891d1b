/*
 * fuzz_headers.c - header and body text from the network: the removal of
 * forged Authentication-Results fields (RFC 8601 5) on arbitrary bytes,
 * and DKIM body canonicalization (RFC 6376 3.4.3, 3.4.4), whose output must
 * not depend on how the body is split into pieces (it scans 16 octets at a
 * time, so the split points are where it could go wrong).
 */
#include <stdint.h>
#include <string.h>

#include "authres.h"
#include "buf.h"
#include "dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void sink(void *arg, const char *p, size_t n)
{
    if (pst_buf_add(arg, p, n) != 0)
        __builtin_trap(); /* at most the input and a final CRLF */
}

static void canon(enum pst_dkim_canon c, const char *p, size_t n, size_t cut, struct pst_buf *out)
{
    struct pst_dkim_bodycanon bc;
    pst_dkim_bodycanon_init(&bc, c, sink, out);
    pst_dkim_bodycanon_update(&bc, p, cut);
    pst_dkim_bodycanon_update(&bc, p + cut, n - cut);
    pst_dkim_bodycanon_final(&bc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct pst_buf *a = pst_buf_new(size + 2);
    struct pst_buf *b = pst_buf_new(size + 2);
    if (a == NULL || b == NULL)
        goto out;

    size_t removed = 0;
    const char *why = NULL;
    if (pst_authres_strip(text, size, "mx.example.test", a, &removed, &why) == 0 &&
        pst_buf_len(a) > size)
        __builtin_trap(); /* removing fields never adds bytes */

    /* the first byte picks a split point; the canonical form must not change */
    size_t cut = size > 0 ? (size_t)data[0] % (size + 1) : 0;
    for (int c = 0; c < 2; c++) {
        enum pst_dkim_canon cn = c ? PST_DKIM_RELAXED : PST_DKIM_SIMPLE;
        pst_buf_reset(a);
        pst_buf_reset(b);
        canon(cn, text, size, 0, a);
        canon(cn, text, size, cut, b);
        if (pst_buf_len(a) != pst_buf_len(b) ||
            memcmp(pst_buf_data(a), pst_buf_data(b), pst_buf_len(a)) != 0)
            __builtin_trap();
    }
out:
    pst_buf_free(a);
    pst_buf_free(b);
    return 0;
}
