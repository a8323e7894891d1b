/*
 * fuzz_sasl.c - the AUTH exchange (PLAIN, LOGIN) on arbitrary input. The
 * input is split at LF into the AUTH argument and the response lines; the
 * first octet's low bit chooses TLS. Besides "no crash, no leak" it checks:
 *  - every step is one of the three, every failure has a reply whose line
 *    is well formed and a reason text;
 *  - a VERIFY step holds credentials within the bounds, NUL-terminated,
 *    valid UTF-8, and the user name has no control characters;
 *  - without TLS no exchange gets past the AUTH line;
 *  - a failure leaves the struct wiped and idle;
 *  - base64 decoding agrees with a re-encode of what it decoded.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return 0;
    return 1;
}

static void check_out(const struct pst_sasl *s, const struct pst_sasl_out *o, int tls)
{
    switch (o->step) {
    case PST_SASL_STEP_CHALLENGE:
        CHECK(tls);
        CHECK(o->challenge != NULL);
        CHECK(s->state == PST_SASL_WAIT_PLAIN || s->state == PST_SASL_WAIT_USER ||
              s->state == PST_SASL_WAIT_PASS);
        break;
    case PST_SASL_STEP_VERIFY:
        CHECK(tls);
        CHECK(s->state == PST_SASL_VERIFY);
        CHECK(s->authcid_len >= 1 && s->authcid_len <= PST_SASL_MAX_FIELD);
        CHECK(s->passwd_len >= 1 && s->passwd_len <= PST_SASL_MAX_FIELD);
        CHECK(s->authcid[s->authcid_len] == '\0' && strlen(s->authcid) == s->authcid_len);
        CHECK(s->passwd[s->passwd_len] == '\0' && strlen(s->passwd) == s->passwd_len);
        CHECK(pst_sasl_utf8_ok(s->authcid, s->authcid_len));
        CHECK(pst_sasl_utf8_ok(s->passwd, s->passwd_len));
        for (size_t i = 0; i < s->authcid_len; i++)
            CHECK((unsigned char)s->authcid[i] >= 0x20 && s->authcid[i] != 0x7f);
        break;
    case PST_SASL_STEP_FAIL: {
        CHECK(o->reason != NULL);
        CHECK(all_zero(s, sizeof(*s)));
        struct pst_buf *b = pst_buf_new(600);
        CHECK(b != NULL);
        CHECK(pst_sasl_reply_add(b, o->result) == 0);
        const char *p = pst_buf_data(b);
        size_t n = pst_buf_len(b);
        CHECK(n > 10 && p[n - 2] == '\r' && p[n - 1] == '\n');
        CHECK(p[0] == '4' || p[0] == '5');
        pst_buf_free(b);
        break;
    }
    default:
        CHECK(0);
    }
}

static void check_b64(const uint8_t *data, size_t size)
{
    unsigned char out[PST_SASL_MAX_LINE];
    size_t n = 0;
    if (size > PST_SASL_MAX_LINE)
        size = PST_SASL_MAX_LINE;
    int rc = pst_sasl_b64_decode((const char *)data, size, out, sizeof(out), &n);
    CHECK(rc == 0 || rc == PST_ERR_SYNTAX);
    if (rc != 0)
        return;
    /* strict decoding is a bijection: re-encoding gives the input back */
    unsigned char again[PST_SASL_MAX_LINE + 4];
    int m = EVP_EncodeBlock(again, out, (int)n);
    CHECK(m >= 0 && (size_t)m == size && memcmp(again, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_b64(data, size);
    if (size == 0)
        return 0;
    int tls = data[0] & 1;
    const char *p = (const char *)data + 1;
    size_t left = size - 1;
    struct pst_sasl s;
    struct pst_sasl_out o;
    pst_sasl_init(&s);
    const char *nl = memchr(p, '\n', left);
    size_t len = nl != NULL ? (size_t)(nl - p) : left;
    CHECK(pst_sasl_start(&s, p, len, tls, &o) == 0);
    check_out(&s, &o, tls);
    p += len;
    left -= len;
    int lines = 0;
    while (o.step == PST_SASL_STEP_CHALLENGE && left > 0 && lines++ < 8) {
        p++; /* the LF */
        left--;
        nl = memchr(p, '\n', left);
        len = nl != NULL ? (size_t)(nl - p) : left;
        CHECK(pst_sasl_continue(&s, p, len, &o) == 0);
        check_out(&s, &o, tls);
        p += len;
        left -= len;
    }
    if (o.step == PST_SASL_STEP_VERIFY)
        CHECK(pst_sasl_continue(&s, "*", 1, &o) == PST_ERR_STATE);
    pst_sasl_clear(&s);
    CHECK(all_zero(&s, sizeof(s)));
    return 0;
}
