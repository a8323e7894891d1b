/*
 * fuzz_spf_record.c - the SPF record parser (RFC 7208 4.6, 12) on
 * arbitrary TXT data. Besides "no crash, no leak": a refused record has a
 * reason; a parsed one has terms with qualifiers and prefix lengths in
 * range, and every domain-spec it kept expands within 253 octets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static const struct pst_spf_macro_env env = {
    .s = "strong-bad@email.example.com",
    .l = "strong-bad",
    .o = "email.example.com",
    .d = "email.example.com",
    .i = "192.0.2.3",
    .h = "mx.example.org",
    .c = "192.0.2.3",
    .r = "unknown",
    .t = "0",
    .v = "in-addr",
};

static void expands(const char *spec)
{
    char *out = NULL, why[PST_SPF_REASON_MAX];
    if (spec == NULL)
        return;
    int rc =
        pst_spf_macro_expand(spec, strlen(spec), PST_SPF_MACRO_DOMAIN, &env, &out, why, sizeof why);
    CHECK(rc == 0 || rc == PST_ERR_TOOBIG || rc == PST_ERR_NOMEM);
    if (rc == 0)
        CHECK(strlen(out) <= PST_SPF_DOMAIN_MAX);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pst_spf_record *rec = NULL;
    char why[PST_SPF_REASON_MAX];
    int rc = pst_spf_record_parse((const char *)data, size, &rec, why, sizeof why);
    if (rc != 0) {
        CHECK(rec == NULL && (why[0] != '\0' || rc == PST_ERR_NOMEM));
        return 0;
    }
    for (size_t k = 0; k < rec->nterms; k++) {
        const struct pst_spf_term *t = &rec->terms[k];
        CHECK(t->cidr4 <= 32 && t->cidr6 <= 128 && t->text != NULL);
        CHECK(t->qualifier == PST_SPF_PASS || t->qualifier == PST_SPF_FAIL ||
              t->qualifier == PST_SPF_SOFTFAIL || t->qualifier == PST_SPF_NEUTRAL);
        expands(t->domain);
    }
    expands(rec->redirect);
    expands(rec->exp);
    pst_spf_record_free(rec);
    return 0;
}
