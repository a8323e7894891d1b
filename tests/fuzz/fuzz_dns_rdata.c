/*
 * fuzz_dns_rdata.c - the DNS wire decoders of lib/core/dns on arbitrary
 * bytes. The first byte chooses what the rest is:
 *   0..6  rdata of A, AAAA, TXT, MX, TLSA, PTR, CNAME, decoded alone and
 *         added to an answer
 *   7     a message: byte 1 is the offset of a (compressed) name in it
 *   8     a name in text form
 *   9     an uncompressed name in wire form
 * Besides "no crash, no leak, no hang" it checks:
 *  - a refusal is PST_ERR_SYNTAX with a reason, and leaves nothing behind;
 *  - every name text is canonical (lower case, trailing dot, only
 *    a-z 0-9 - _ * / and \DDD), encodes back to the wire octets it came
 *    from (case folded) and normalises to itself;
 *  - decoded lengths never exceed the input; TXT and TLSA data end in NUL;
 *  - an answer is OK with the record, or FAIL with a reason;
 *  - escaped TXT text is printable ASCII.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dns.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static const uint16_t types[] = {PST_DNS_A,    PST_DNS_AAAA, PST_DNS_TXT,  PST_DNS_MX,
                                 PST_DNS_TLSA, PST_DNS_PTR,  PST_DNS_CNAME};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* text is canonical; when wire is given, text encodes to wire[0..len). */
static void check_name(const char *text, const uint8_t *wire, size_t len)
{
    size_t n = strlen(text);
    CHECK(n > 0 && n < PST_DNS_NAME_TEXT_MAX && text[n - 1] == '.');
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == '\\') {
            CHECK(i + 3 < n && text[i + 1] >= '0' && text[i + 1] <= '2');
            i += 3;
            continue;
        }
        CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '*' || c == '/' || c == '.');
    }
    uint8_t back[PST_DNS_NAME_WIRE_MAX];
    size_t blen = 0;
    CHECK(pst_dns_name_to_wire(text, back, &blen) == 0);
    if (wire != NULL) {
        CHECK(blen == len);
        for (size_t i = 0; i < len; i++)
            CHECK(back[i] == lower(wire[i]));
    }
    char again[PST_DNS_NAME_TEXT_MAX];
    CHECK(pst_dns_name_normalize(text, again, sizeof again) == 0);
    CHECK(strcmp(again, text) == 0);
}

static void check_printable(const struct pst_buf *b)
{
    const char *p = pst_buf_data(b);
    for (size_t i = 0; i < pst_buf_len(b); i++)
        CHECK(p[i] >= 0x20 && p[i] <= 0x7e);
}

static void fuzz_rdata(uint16_t type, const uint8_t *p, size_t n)
{
    struct pst_dns_rr rr;
    const char *why = NULL;
    int rc = pst_dns_rdata_decode(type, p, n, &rr, &why);
    if (rc == PST_ERR_NOMEM)
        return;
    if (rc != 0) {
        CHECK(rc == PST_ERR_SYNTAX && why != NULL && why[0] != '\0');
        CHECK(rr.name == NULL && rr.data == NULL && rr.len == 0);
    } else {
        CHECK(rr.type == type);
        switch (type) {
        case PST_DNS_A:
            CHECK(n == 4 && memcmp(rr.addr, p, 4) == 0);
            break;
        case PST_DNS_AAAA:
            CHECK(n == 16 && memcmp(rr.addr, p, 16) == 0);
            break;
        case PST_DNS_TXT: {
            CHECK(n > 0 && rr.len < n && rr.data != NULL && rr.data[rr.len] == '\0');
            struct pst_buf *b = pst_buf_new(4 * 65536);
            if (b != NULL) {
                CHECK(pst_dns_text_escape(b, rr.data, rr.len, 1) == 0);
                check_printable(b);
                pst_buf_free(b);
            }
            break;
        }
        case PST_DNS_MX:
            CHECK(n >= 3 && rr.preference == (p[0] << 8 | p[1]));
            check_name(rr.name, p + 2, n - 2);
            break;
        case PST_DNS_TLSA:
            CHECK(n >= 4 && rr.len == n - 3 && rr.data[rr.len] == '\0');
            CHECK(rr.usage == p[0] && rr.selector == p[1] && rr.mtype == p[2]);
            break;
        default:
            check_name(rr.name, p, n);
            break;
        }
    }
    pst_dns_rr_clear(&rr);

    /* the same through an answer, added twice */
    struct pst_dns_answer *a = NULL;
    if (pst_dns_answer_new("fuzz.example", type, &a) != 0)
        return;
    for (int i = 0; i < 2; i++) {
        rc = pst_dns_answer_add(a, p, n, 300);
        CHECK(rc == 0 || rc == PST_ERR_SYNTAX || rc == PST_ERR_TOOBIG || rc == PST_ERR_NOMEM);
    }
    pst_dns_answer_finish(a);
    if (a->status == PST_DNS_OK) {
        CHECK(a->nrrs == 2 && a->ttl == 300 && a->reason == NULL);
    } else {
        CHECK(a->status == PST_DNS_FAIL && a->reason != NULL && a->nrrs == 0);
        CHECK(a->rrs == NULL && a->ttl == 0);
    }
    pst_dns_answer_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 10;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char text[PST_DNS_NAME_TEXT_MAX];
    const char *why = NULL;

    if (mode < 7) {
        fuzz_rdata(types[mode], p, n);
        return 0;
    }
    if (mode == 7) {
        if (n < 1)
            return 0;
        size_t off = p[0], next = 0;
        int rc = pst_dns_name_unpack(p + 1, n - 1, off, &next, text, sizeof text, &why);
        if (rc != 0) {
            CHECK(rc == PST_ERR_SYNTAX && why != NULL);
            return 0;
        }
        CHECK(next > off && next <= n - 1);
        check_name(text, NULL, 0);
        return 0;
    }
    if (mode == 8) {
        char *s = malloc(n + 1);
        if (s == NULL)
            return 0;
        memcpy(s, p, n);
        s[n] = '\0';
        uint8_t wire[PST_DNS_NAME_WIRE_MAX];
        size_t len = 0, used = 0;
        if (pst_dns_name_to_wire(s, wire, &len) == 0) {
            CHECK(len >= 1 && len <= PST_DNS_NAME_WIRE_MAX);
            CHECK(pst_dns_name_from_wire(wire, len, &used, text, sizeof text, &why) == 0);
            CHECK(used == len);
            check_name(text, wire, len);
            char norm[PST_DNS_NAME_TEXT_MAX];
            CHECK(pst_dns_name_normalize(s, norm, sizeof norm) == 0);
            CHECK(strcmp(norm, text) == 0);
        } else {
            CHECK(pst_dns_name_normalize(s, text, sizeof text) != 0);
        }
        free(s);
        return 0;
    }
    size_t used = 0;
    int rc = pst_dns_name_from_wire(p, n, &used, text, sizeof text, &why);
    if (rc != 0) {
        CHECK(rc == PST_ERR_SYNTAX && why != NULL);
        return 0;
    }
    CHECK(used >= 1 && used <= n && used <= PST_DNS_NAME_WIRE_MAX);
    check_name(text, p, used);
    return 0;
}
