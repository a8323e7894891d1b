/*
 * fuzz_from_domain.c - the Author Domain from a From field value (RFC 5322
 * 3.4, RFC 9989 5.3.1) on arbitrary bytes, and the same as a whole header
 * section (thousands of From fields). Besides "no crash, no leak": a
 * domain comes out only with FROM_OK, and it is a normalised DNS name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "err.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dom[PST_DMARC_DOMAIN_MAX];
    char again[PST_DMARC_DOMAIN_MAX];
    enum pst_dmarc_from res;
    int rc = pst_dmarc_from_domain((const char *)data, size, dom, sizeof(dom), &res);
    CHECK((rc == 0) == (res == PST_DMARC_FROM_OK));
    if (rc == 0) {
        CHECK(pst_dmarc_domain_norm(dom, strlen(dom), again, sizeof(again)) == 0);
        CHECK(strcmp(dom, again) == 0);
    }
    struct pst_msg_header *h = NULL;
    const char *why = NULL;
    if (pst_msg_split((const char *)data, size, NULL, &h, &why) == 0) {
        rc = pst_dmarc_author_domain(h, dom, sizeof(dom), &res);
        CHECK((rc == 0) == (res == PST_DMARC_FROM_OK));
        if (pst_msg_count(h, "From") > 1)
            CHECK(res == PST_DMARC_FROM_MULTIPLE_FIELDS);
        pst_msg_header_free(h);
    }
    return 0;
}
