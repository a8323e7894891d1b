/*
 * fuzz_spf_macro.c - SPF macro expansion (RFC 7208 7), where libspf2 had
 * its memory-corruption CVEs. The first byte picks the kind (domain-spec
 * or explanation) and the client family, the second the length of a
 * sender built from the input; the rest is the macro-string. Besides "no
 * crash, no leak": an expansion is bounded (253 octets for a domain-spec,
 * PST_SPF_EXP_MAX for an explanation), and a refusal has a reason.
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

static int p_name(void *arg, const char **text)
{
    *text = arg;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char sender[PST_SPF_SENDER_MAX + 1];
    if (size < 2)
        return 0;
    unsigned flags = data[0];
    size_t slen = data[1];
    data += 2;
    size -= 2;
    /* the sender: the input's first slen bytes, repeated, NULs made '.' */
    size_t n = slen * 2 < PST_SPF_SENDER_MAX ? slen * 2 : PST_SPF_SENDER_MAX;
    for (size_t k = 0; k < n; k++)
        sender[k] = size > 0 && data[k % size] != 0 ? (char)data[k % size] : '.';
    sender[n] = '\0';
    struct pst_spf_macro_env env = {
        .s = sender,
        .l = sender,
        .o = "example.com",
        .d = (flags & 4) ? sender : "email.example.com",
        .i = (flags & 2) ? "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
                         : "192.0.2.3",
        .h = "mx.example.org",
        .c = (flags & 2) ? "2001:db8::cb01" : "192.0.2.3",
        .r = "unknown",
        .t = "1700000000",
        .v = (flags & 2) ? "ip6" : "in-addr",
        .p = p_name,
        .p_arg = (flags & 8) ? sender : (void *)"mx.example.org",
    };
    enum pst_spf_macro_kind kind = (flags & 1) ? PST_SPF_MACRO_EXP : PST_SPF_MACRO_DOMAIN;
    char *out = NULL, why[PST_SPF_REASON_MAX] = "";
    int rc = pst_spf_macro_expand((const char *)data, size, kind, &env, &out, why, sizeof why);
    if (rc != 0) {
        CHECK(out == NULL && (why[0] != '\0' || rc == PST_ERR_NOMEM));
        return 0;
    }
    CHECK(strlen(out) <= (kind == PST_SPF_MACRO_EXP ? PST_SPF_EXP_MAX : PST_SPF_DOMAIN_MAX));
    free(out);
    return 0;
}
