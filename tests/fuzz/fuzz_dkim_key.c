/*
 * fuzz_dkim_key.c - the DKIM key-record parser (RFC 6376 3.6.1, RFC 8463)
 * on arbitrary TXT data. Besides "no crash, no leak": a refused record
 * has a reason; a parsed one is revoked or holds a key of its type and a
 * bounded size.
 */
#include <stdint.h>
#include <stdlib.h>

#include "dkim.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pst_dkim_key *k = NULL;
    const char *why = NULL;
    int rc = pst_dkim_key_parse((const char *)data, size, &k, &why);
    if (rc != 0) {
        CHECK(k == NULL && (why != NULL || rc == PST_ERR_NOMEM));
        return 0;
    }
    CHECK(k->revoked ? k->pkey == NULL : k->pkey != NULL);
    if (!k->revoked && k->type == PST_DKIM_KEY_ED25519)
        CHECK(k->bits == 256);
    if (!k->revoked && k->type == PST_DKIM_KEY_RSA)
        CHECK(k->bits > 0 && k->bits <= PST_DKIM_MAX_RSA_BITS);
    pst_dkim_key_free(k);
    return 0;
}
