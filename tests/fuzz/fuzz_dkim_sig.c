/*
 * fuzz_dkim_sig.c - the DKIM-Signature parser and the tag-list parser on
 * arbitrary values, and the header splitter plus header canonicalization
 * on the same bytes as a header section. Besides "no crash, no leak":
 *  - a refused value comes with a reason and no signature;
 *  - a parsed signature holds what RFC 6376 3.5 requires (From in h=,
 *    i= within d=, x > t, bounded h=);
 *  - relaxed header canonicalization is idempotent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "dkim.h"
#include "err.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_sig(const char *p, size_t n)
{
    struct pst_dkim_sig *g = NULL;
    const char *why = NULL;
    int rc = pst_dkim_sig_parse(p, n, &g, &why);
    if (rc != 0) {
        CHECK(rc == PST_ERR_SYNTAX || rc == PST_ERR_TOOBIG || rc == PST_ERR_UNSUPPORTED ||
              rc == PST_ERR_NOMEM);
        CHECK(g == NULL && (why != NULL || rc == PST_ERR_NOMEM));
        return;
    }
    CHECK(g->nh >= 1 && g->nh <= PST_DKIM_MAX_H);
    int from = 0;
    for (size_t k = 0; k < g->nh; k++)
        from |= strcmp(g->h[k], "from") == 0;
    CHECK(from);
    CHECK(g->d[0] != '\0' && g->s[0] != '\0' && strchr(g->i, '@') != NULL);
    const char *dom = strrchr(g->i, '@') + 1;
    size_t dn = strlen(dom), n2 = strlen(g->d);
    CHECK(dn >= n2 && strcasecmp(dom + dn - n2, g->d) == 0);
    CHECK(!(g->has_t && g->has_x) || g->x > g->t);
    CHECK(g->b_len > 0 && g->bh_len > 0);
    pst_dkim_sig_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct pst_dkim_taglist tl;
    const char *why = NULL;
    if (pst_dkim_taglist_parse(p, size, &tl, &why) == 0) {
        CHECK(tl.ntags <= PST_DKIM_MAX_TAGS);
        for (size_t k = 0; k < tl.ntags; k++)
            CHECK(tl.tags[k].vstart <= tl.tags[k].vend && tl.tags[k].vend <= size);
    } else {
        CHECK(why != NULL);
    }
    check_sig(p, size);

    struct pst_msg_header *h = NULL;
    if (pst_msg_split(p, size, NULL, &h, &why) == 0) {
        struct pst_buf *a = pst_buf_new(1 << 20), *b = pst_buf_new(1 << 20);
        CHECK(a != NULL && b != NULL);
        for (size_t k = 0; k < h->nfields; k++) {
            const struct pst_msg_field *f = &h->fields[k];
            pst_buf_reset(a);
            pst_buf_reset(b);
            CHECK(pst_dkim_canon_header(PST_DKIM_RELAXED, f->raw, f->raw_len, 0, a) == 0);
            CHECK(pst_dkim_canon_header(PST_DKIM_RELAXED, pst_buf_data(a), pst_buf_len(a), 0, b) ==
                  0);
            CHECK(pst_buf_len(a) == pst_buf_len(b) &&
                  memcmp(pst_buf_data(a), pst_buf_data(b), pst_buf_len(a)) == 0);
            if (pst_msg_field_is(f, "dkim-signature"))
                check_sig(f->value, f->value_len);
        }
        pst_buf_free(a);
        pst_buf_free(b);
        pst_msg_header_free(h);
    }
    return 0;
}
