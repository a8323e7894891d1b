/*
 * fuzz_dmarc_record.c - the DMARC record parser (RFC 9989 4.7, 4.8) on
 * arbitrary TXT data. Besides "no crash, no leak": a refused record has a
 * reason and no record; a parsed one keeps its bounds (URIs, issues) and
 * its state agrees with its policy tags (4.10.1).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pst_dmarc_record *r = NULL;
    const char *why = NULL;
    int rc = pst_dmarc_record_parse((const char *)data, size, &r, &why);
    if (rc != 0) {
        CHECK(r == NULL && why != NULL);
        return 0;
    }
    CHECK(pst_dmarc_record_is_dmarc((const char *)data, size));
    CHECK(r->nrua <= PST_DMARC_MAX_URIS && r->nruf <= PST_DMARC_MAX_URIS);
    CHECK(r->nissues <= PST_DMARC_MAX_ISSUES);
    for (size_t i = 0; i < r->nrua; i++)
        CHECK(strlen(r->rua[i]) <= PST_DMARC_MAX_URI && strchr(r->rua[i], ',') == NULL);
    CHECK(r->psd == 'u' || r->psd == 'y' || r->psd == 'n');
    CHECK(r->adkim == 'r' || r->adkim == 's');
    CHECK(r->pct >= -1 && r->pct <= 100);
    if (r->state == PST_DMARC_REC_OK)
        CHECK(r->p != PST_DMARC_POLICY_ABSENT);
    if (r->state == PST_DMARC_REC_AS_NONE)
        CHECK(r->p == PST_DMARC_POLICY_NONE && r->nrua > 0);
    pst_dmarc_record_free(r);
    return 0;
}
