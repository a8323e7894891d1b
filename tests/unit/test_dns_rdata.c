/*
 * test_dns_rdata.c - lib/core/dns: rdata decoding (A, AAAA, TXT, MX, TLSA,
 * PTR, CNAME), names in wire and text form with compression refused or
 * bounded, answers with their limits, the budget in front of a resolver,
 * and the text helpers. Every table prints got/want for each failed row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dns.h"
#include "err.h"

/* bytes of a string literal, NULs included */
#define B(s) (const uint8_t *)(s), sizeof(s) - 1

/* Text of a decoded record, as the CLI prints it (TXT quoted). */
static void render(const struct pst_dns_rr *rr, char *out, size_t outlen)
{
    struct pst_buf *b = pst_buf_new(1 << 20);
    char ip[64];

    assert_non_null(b);
    switch (rr->type) {
    case PST_DNS_A:
    case PST_DNS_AAAA:
        inet_ntop(rr->type == PST_DNS_A ? AF_INET : AF_INET6, rr->addr, ip, sizeof ip);
        pst_buf_addstr(b, ip);
        break;
    case PST_DNS_TXT:
        pst_buf_addc(b, '"');
        pst_dns_text_escape(b, rr->data, rr->len, 1);
        pst_buf_addc(b, '"');
        break;
    case PST_DNS_MX:
        pst_buf_addf(b, "%u %s", rr->preference, rr->name);
        break;
    case PST_DNS_TLSA:
        pst_buf_addf(b, "%u %u %u ", rr->usage, rr->selector, rr->mtype);
        for (size_t i = 0; i < rr->len; i++)
            pst_buf_addf(b, "%02x", rr->data[i]);
        break;
    default:
        pst_buf_addstr(b, rr->name);
        break;
    }
    snprintf(out, outlen, "%s", pst_buf_data(b));
    pst_buf_free(b);
}

/* ---- rdata -------------------------------------------------------------- */

struct rdata_case {
    const char *name;
    uint16_t type;
    const uint8_t *rdata;
    size_t len;
    int rc;
    const char *want; /* rendered record, or a substring of the reason */
};

static const struct rdata_case rdata_cases[] = {
    {"A", PST_DNS_A, B("\xc0\x00\x02\x01"), 0, "192.0.2.1"},
    {"A short", PST_DNS_A, B("\xc0\x00\x02"), PST_ERR_SYNTAX, "A rdata is not 4 octets"},
    {"A long", PST_DNS_A, B("\xc0\x00\x02\x01\x00"), PST_ERR_SYNTAX, "not 4 octets"},
    {"A empty", PST_DNS_A, B(""), PST_ERR_SYNTAX, "not 4 octets"},
    {"AAAA", PST_DNS_AAAA, B("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"), 0, "2001:db8::1"},
    {"AAAA short", PST_DNS_AAAA, B("\x20\x01\x0d\xb8"), PST_ERR_SYNTAX, "not 16 octets"},
    {"TXT one string", PST_DNS_TXT, B("\x0bv=spf1 -all"), 0, "\"v=spf1 -all\""},
    {"TXT several strings joined", PST_DNS_TXT,
     B("\x05v=spf\x06"
       "1 -all\x00\x01x"),
     0, "\"v=spf1 -allx\""},
    {"TXT one empty string", PST_DNS_TXT, B("\x00"), 0, "\"\""},
    {"TXT empty strings", PST_DNS_TXT,
     B("\x00\x00\x02"
       "ab\x00"),
     0, "\"ab\""},
    {"TXT NUL and 8-bit kept", PST_DNS_TXT,
     B("\x06"
       "a\x00\xff\\\"z"),
     0, "\"a\\000\\255\\092\\034z\""},
    {"TXT no string", PST_DNS_TXT, B(""), PST_ERR_SYNTAX, "no character-string"},
    {"TXT truncated", PST_DNS_TXT,
     B("\x05"
       "abc"),
     PST_ERR_SYNTAX, "character-string runs past the end"},
    {"TXT truncated second", PST_DNS_TXT,
     B("\x01"
       "a\x02"
       "b"),
     PST_ERR_SYNTAX, "runs past the end"},
    {"TXT length octet alone", PST_DNS_TXT,
     B("\x01"
       "a\x01"),
     PST_ERR_SYNTAX, "past the end"},
    {"MX", PST_DNS_MX,
     B("\x00\x0a\x02mx\x07"
       "Example\x04test\x00"),
     0, "10 mx.example.test."},
    {"MX preference 65535", PST_DNS_MX, B("\xff\xff\x01m\x00"), 0, "65535 m."},
    {"MX null (RFC 7505)", PST_DNS_MX, B("\x00\x00\x00"), 0, "0 ."},
    {"MX short", PST_DNS_MX, B("\x00\x0a"), PST_ERR_SYNTAX, "shorter than a preference"},
    {"MX trailing octets", PST_DNS_MX, B("\x00\x0a\x01m\x00x"), PST_ERR_SYNTAX,
     "octets after the name"},
    {"MX compressed", PST_DNS_MX, B("\x00\x0a\x02mx\xc0\x0c"), PST_ERR_SYNTAX,
     "compression pointer where the name must be uncompressed"},
    {"MX name runs past the end", PST_DNS_MX, B("\x00\x0a\x05mx"), PST_ERR_SYNTAX,
     "label runs past the end"},
    {"MX name without root", PST_DNS_MX, B("\x00\x0a\x02mx"), PST_ERR_SYNTAX,
     "name runs past the end"},
    {"TLSA", PST_DNS_TLSA, B("\x03\x01\x01\xab\xcd\xef\x00"), 0, "3 1 1 abcdef00"},
    {"TLSA short", PST_DNS_TLSA, B("\x03\x01"), PST_ERR_SYNTAX, "shorter than usage"},
    {"TLSA no data", PST_DNS_TLSA, B("\x03\x01\x01"), PST_ERR_SYNTAX,
     "no certificate association data"},
    {"PTR", PST_DNS_PTR,
     B("\x04host\x07"
       "example\x04test\x00"),
     0, "host.example.test."},
    {"PTR odd octets escaped", PST_DNS_PTR,
     B("\x03"
       "a.b\x03\xc3\xa9 \x00"),
     0, "a\\046b.\\195\\169\\032."},
    {"CNAME upper case folded", PST_DNS_CNAME, B("\x03WWW\x01X\x00"), 0, "www.x."},
    {"CNAME underscore and star", PST_DNS_CNAME, B("\x01*\x06_dmarc\x00"), 0, "*._dmarc."},
    {"CNAME root", PST_DNS_CNAME, B("\x00"), 0, "."},
    {"CNAME label type 01", PST_DNS_CNAME,
     B("\x41"
       "a\x00"),
     PST_ERR_SYNTAX, "reserved label type"},
    {"CNAME label type 10", PST_DNS_CNAME,
     B("\x81"
       "a\x00"),
     PST_ERR_SYNTAX, "reserved label type"},
    {"CNAME empty", PST_DNS_CNAME, B(""), PST_ERR_SYNTAX, "name runs past the end"},
    {"unsupported type", 2, B("\x00"), PST_ERR_UNSUPPORTED, "type not supported"},
};

static void test_rdata_table(void **state)
{
    int bad = 0;
    size_t n = sizeof rdata_cases / sizeof rdata_cases[0];

    for (size_t i = 0; i < n; i++) {
        const struct rdata_case *t = &rdata_cases[i];
        struct pst_dns_rr rr;
        const char *why = NULL;
        char got[4096] = "";
        int rc = pst_dns_rdata_decode(t->type, t->rdata, t->len, &rr, &why);
        if (rc == 0)
            render(&rr, got, sizeof got);
        else
            snprintf(got, sizeof got, "%s", why != NULL ? why : "(no reason)");
        int ok =
            rc == t->rc && (rc == 0 ? strcmp(got, t->want) == 0 : strstr(got, t->want) != NULL);
        if (rc != 0 && (rr.name != NULL || rr.data != NULL))
            ok = 0;
        if (!ok) {
            print_error("%s:\n  got  rc %d %s\n  want rc %d %s\n", t->name, rc, got, t->rc,
                        t->want);
            bad++;
        }
        pst_dns_rr_clear(&rr);
    }
    print_message("%zu rdata cases, %d failed\n", n, bad);
    assert_int_equal(bad, 0);
}

/* 255-octet strings, many strings, and the total length. */
static void test_txt_long(void **state)
{
    uint8_t rdata[3 * 256];
    struct pst_dns_rr rr;
    const char *why;

    for (int s = 0; s < 3; s++) {
        rdata[s * 256] = 255;
        memset(rdata + s * 256 + 1, 'a' + s, 255);
    }
    assert_int_equal(pst_dns_rdata_decode(PST_DNS_TXT, rdata, sizeof rdata, &rr, &why), 0);
    assert_int_equal(rr.len, 765);
    assert_int_equal(rr.data[0], 'a');
    assert_int_equal(rr.data[254], 'a');
    assert_int_equal(rr.data[255], 'b');
    assert_int_equal(rr.data[764], 'c');
    assert_int_equal(rr.data[765], '\0');
    pst_dns_rr_clear(&rr);
    /* the last string one octet short */
    assert_int_equal(pst_dns_rdata_decode(PST_DNS_TXT, rdata, sizeof rdata - 1, &rr, &why),
                     PST_ERR_SYNTAX);
    assert_string_equal(why, "character-string runs past the end");
}

/* ---- names -------------------------------------------------------------- */

struct wire_case {
    const char *name;
    const uint8_t *wire;
    size_t len;
    int rc;
    const char *want; /* text, or a substring of the reason */
    size_t used;
};

static const struct wire_case wire_cases[] = {
    {"simple",
     B("\x03www\x07"
       "example\x04test\x00"),
     0, "www.example.test.", 18},
    {"octets after the name ignored",
     B("\x01"
       "a\x00zz"),
     0, "a.", 3},
    {"root", B("\x00"), 0, ".", 1},
    {"63-octet label",
     B("\x3f"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x00"),
     0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.", 65},
    {"64-octet label (type bits 01)",
     B("\x40"
       "a\x00"),
     PST_ERR_SYNTAX, "reserved label type", 0},
    {"pointer", B("\xc0\x00"), PST_ERR_SYNTAX, "compression pointer", 0},
    {"pointer after a label",
     B("\x01"
       "a\xc0\x00"),
     PST_ERR_SYNTAX, "compression pointer", 0},
    {"empty input", B(""), PST_ERR_SYNTAX, "name runs past the end", 0},
    {"label past the end",
     B("\x05"
       "ab"),
     PST_ERR_SYNTAX, "label runs past the end", 0},
    {"no root label",
     B("\x02"
       "ab"),
     PST_ERR_SYNTAX, "name runs past the end", 0},
};

static void test_name_wire_table(void **state)
{
    int bad = 0;
    size_t n = sizeof wire_cases / sizeof wire_cases[0];

    for (size_t i = 0; i < n; i++) {
        const struct wire_case *t = &wire_cases[i];
        char text[PST_DNS_NAME_TEXT_MAX] = "";
        const char *why = NULL;
        size_t used = 0;
        int rc = pst_dns_name_from_wire(t->wire, t->len, &used, text, sizeof text, &why);
        const char *got = rc == 0 ? text : why != NULL ? why : "(no reason)";
        int ok = rc == t->rc && (rc == 0 ? strcmp(got, t->want) == 0 && used == t->used
                                         : strstr(got, t->want) != NULL);
        if (!ok) {
            print_error("%s:\n  got  rc %d used %zu %s\n  want rc %d used %zu %s\n", t->name, rc,
                        used, got, t->rc, t->used, t->want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* 255 octets is the limit: four 62-octet labels (252 + 4 + root = 256)
 * is one too many, three 63s and a 61 is exactly 255. */
static void test_name_length(void **state)
{
    uint8_t wire[300];
    char text[PST_DNS_NAME_TEXT_MAX];
    const char *why;
    size_t used, len = 0;

    for (int i = 0; i < 4; i++) {
        wire[len++] = 62;
        memset(wire + len, 'x', 62);
        len += 62;
    }
    wire[len++] = 0;
    assert_int_equal(len, 253);
    assert_int_equal(pst_dns_name_from_wire(wire, len, &used, text, sizeof text, &why), 0);
    len = 0;
    for (int i = 0; i < 3; i++) {
        wire[len++] = 63;
        memset(wire + len, 'x', 63);
        len += 63;
    }
    wire[len++] = 61;
    memset(wire + len, 'y', 61);
    len += 61;
    wire[len++] = 0;
    assert_int_equal(len, 255);
    assert_int_equal(pst_dns_name_from_wire(wire, len, &used, text, sizeof text, &why), 0);
    assert_int_equal(used, 255);
    /* the text encodes back to the same 255 octets */
    uint8_t back[PST_DNS_NAME_WIRE_MAX];
    size_t blen;
    assert_int_equal(pst_dns_name_to_wire(text, back, &blen), 0);
    assert_int_equal(blen, 255);
    assert_memory_equal(back, wire, 255);
    /* one octet more */
    wire[len - 63] = 62;
    wire[len - 1] = 'y';
    wire[len++] = 0;
    assert_int_equal(pst_dns_name_from_wire(wire, len, &used, text, sizeof text, &why),
                     PST_ERR_SYNTAX);
    assert_string_equal(why, "name longer than 255 octets");
    /* every octet escaped: the text buffer is always enough */
    len = 0;
    for (int i = 0; i < 4; i++) {
        wire[len++] = 62;
        memset(wire + len, 0xff, 62);
        len += 62;
    }
    wire[len++] = 0;
    assert_int_equal(pst_dns_name_from_wire(wire, len, &used, text, sizeof text, &why), 0);
    assert_int_equal(strlen(text), 4 * 62 * 4 + 4);
    /* a small buffer is refused, never overrun */
    assert_int_equal(pst_dns_name_from_wire(wire, len, &used, text, 10, &why), PST_ERR_TOOBIG);
}

struct unpack_case {
    const char *name;
    const uint8_t *msg;
    size_t len;
    size_t off;
    int rc;
    const char *want;
    size_t next;
};

/* A 12-octet header, then "example.test" at 12 and names after it. */
#define HDR "\0\0\0\0\0\0\0\0\0\0\0\0"
#define EXT                                                                                        \
    "\x07"                                                                                         \
    "example\x04test\x00" /* 12..25 */

static const struct unpack_case unpack_cases[] = {
    {"plain", B(HDR EXT), 12, 0, "example.test.", 26},
    {"pointer to an earlier name", B(HDR EXT "\x03www\xc0\x0c"), 26, 0, "www.example.test.", 32},
    {"pointer alone", B(HDR EXT "\xc0\x0c"), 26, 0, "example.test.", 28},
    {"pointer into a name",
     B(HDR EXT "\x01"
               "a\xc0\x14"),
     26, 0, "a.test.", 30},
    {"chain of pointers",
     B(HDR EXT "\x01"
               "b\xc0\x0c\x01"
               "c\xc0\x1a"),
     30, 0, "c.b.example.test.", 34},
    {"pointer to itself", B(HDR "\xc0\x0c"), 12, PST_ERR_SYNTAX,
     "compression pointer does not point backwards", 0},
    {"pointer forward",
     B(HDR "\xc0\x0e\x00\x01"
           "a\x00"),
     12, PST_ERR_SYNTAX, "does not point backwards", 0},
    {"loop through two pointers",
     B(HDR "\x01"
           "a\xc0\x10\x01"
           "b\xc0\x0c"),
     16, PST_ERR_SYNTAX, "does not point backwards", 0},
    {"pointer into its own labels",
     B(HDR "\x01"
           "a\x01"
           "b\xc0\x0e"),
     12, PST_ERR_SYNTAX, "does not point backwards", 0},
    {"pointer cut", B(HDR "\xc0"), 12, PST_ERR_SYNTAX, "compression pointer runs past the end", 0},
    {"pointer out of the message",
     B(HDR "\x01"
           "a\xc0\xff"),
     12, PST_ERR_SYNTAX, "does not point backwards", 0},
    {"offset past the end", B(HDR), 12, PST_ERR_SYNTAX, "name runs past the end", 0},
};

static void test_name_unpack_table(void **state)
{
    int bad = 0;

    for (size_t i = 0; i < sizeof unpack_cases / sizeof unpack_cases[0]; i++) {
        const struct unpack_case *t = &unpack_cases[i];
        char text[PST_DNS_NAME_TEXT_MAX] = "";
        const char *why = NULL;
        size_t next = 0;
        int rc = pst_dns_name_unpack(t->msg, t->len, t->off, &next, text, sizeof text, &why);
        const char *got = rc == 0 ? text : why != NULL ? why : "(no reason)";
        int ok = rc == t->rc && (rc == 0 ? strcmp(got, t->want) == 0 && next == t->next
                                         : strstr(got, t->want) != NULL);
        if (!ok) {
            print_error("%s:\n  got  rc %d next %zu %s\n  want rc %d next %zu %s\n", t->name, rc,
                        next, got, t->rc, t->next, t->want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* A 255-octet name built from pointers is still bounded. */
static void test_name_unpack_long(void **state)
{
    uint8_t msg[1024];
    size_t len = 0;
    char text[PST_DNS_NAME_TEXT_MAX];
    const char *why;
    size_t next;

    /* label "x" + pointer to the previous one, 200 times: 400 octets */
    msg[len++] = 0;
    for (int i = 0; i < 200; i++) {
        size_t prev = len == 1 ? 0 : len - 4;
        msg[len++] = 1;
        msg[len++] = 'x';
        msg[len++] = (uint8_t)(0xc0 | prev >> 8);
        msg[len++] = (uint8_t)prev;
    }
    assert_int_equal(pst_dns_name_unpack(msg, len, len - 4, &next, text, sizeof text, &why),
                     PST_ERR_SYNTAX);
    assert_string_equal(why, "name longer than 255 octets");
    assert_int_equal(pst_dns_name_unpack(msg, len, 1 + 4 * 9, &next, text, sizeof text, &why), 0);
    assert_string_equal(text, "x.x.x.x.x.x.x.x.x.x.");
}

struct text_case {
    const char *in;
    int rc;
    const char *want;
};

static const struct text_case text_cases[] = {
    {"www.Example.TEST", 0, "www.example.test."},
    {"www.example.test.", 0, "www.example.test."},
    {".", 0, "."},
    {"_dmarc.example.test", 0, "_dmarc.example.test."},
    {"sel._domainkey.example.test", 0, "sel._domainkey.example.test."},
    {"*.wild.example.test", 0, "*.wild.example.test."},
    {"0/25.2.0.192.in-addr.arpa", 0, "0/25.2.0.192.in-addr.arpa."},
    {"a\\.b.test", 0, "a\\046b.test."},
    {"a\\065.test", 0, "aa.test."},
    {"a\\255.test", 0, "a\\255.test."},
    {"a+b.test", 0, "a\\043b.test."},
    {"", PST_ERR_SYNTAX, NULL},
    {"..", PST_ERR_SYNTAX, NULL},
    {"a..b", PST_ERR_SYNTAX, NULL},
    {".a", PST_ERR_SYNTAX, NULL},
    {"a b", PST_ERR_SYNTAX, NULL},
    {"a\tb", PST_ERR_SYNTAX, NULL},
    {"a\x7f", PST_ERR_SYNTAX, NULL},
    {"b\xc3\xbc"
     "cher.test",
     PST_ERR_SYNTAX, NULL},
    {"a\\256.test", PST_ERR_SYNTAX, NULL},
    {"a\\25", PST_ERR_SYNTAX, NULL},
    {"a\\", PST_ERR_SYNTAX, NULL},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", PST_ERR_SYNTAX, NULL},
};

static void test_name_text_table(void **state)
{
    int bad = 0;

    for (size_t i = 0; i < sizeof text_cases / sizeof text_cases[0]; i++) {
        const struct text_case *t = &text_cases[i];
        char out[PST_DNS_NAME_TEXT_MAX] = "";
        int rc = pst_dns_name_normalize(t->in, out, sizeof out);
        if (rc != t->rc || (rc == 0 && strcmp(out, t->want) != 0)) {
            print_error("\"%s\":\n  got  rc %d %s\n  want rc %d %s\n", t->in, rc, out, t->rc,
                        t->want != NULL ? t->want : "");
            bad++;
        }
    }
    /* a name of 254 text characters (255 octets) passes, 256 octets not */
    char name[300];
    memset(name, 'a', sizeof name);
    for (int i = 63; i < 300; i += 64)
        name[i] = '.';
    name[253] = '\0'; /* 63.63.63.61 */
    char out[PST_DNS_NAME_TEXT_MAX];
    if (pst_dns_name_normalize(name, out, sizeof out) != 0) {
        print_error("253-character name refused\n");
        bad++;
    }
    name[253] = 'a';
    name[254] = '\0';
    if (pst_dns_name_normalize(name, out, sizeof out) != PST_ERR_SYNTAX) {
        print_error("254-character name (256 octets) accepted\n");
        bad++;
    }
    assert_int_equal(bad, 0);

    assert_int_equal(pst_dns_name_in("a.b.test.", "b.test."), 1);
    assert_int_equal(pst_dns_name_in("b.test.", "b.test."), 1);
    assert_int_equal(pst_dns_name_in("ab.test.", "b.test."), 0);
    assert_int_equal(pst_dns_name_in("test.", "b.test."), 0);
    assert_int_equal(pst_dns_name_in("x.", "."), 1);
}

/* ---- answers ------------------------------------------------------------ */

static void test_answer_build(void **state)
{
    struct pst_dns_answer *a;

    assert_int_equal(pst_dns_answer_new("Example.TEST", PST_DNS_MX, &a), 0);
    assert_string_equal(a->name, "example.test.");
    assert_string_equal(a->canonical, "example.test.");
    assert_int_equal(a->status, PST_DNS_OK);
    assert_int_equal(a->dnssec, PST_DNS_INSECURE);
    assert_int_equal(pst_dns_answer_add(a,
                                        B("\x00\x14\x02mx\x01"
                                          "b\x00"),
                                        300),
                     0);
    assert_int_equal(pst_dns_answer_add(a,
                                        B("\x00\x0a\x02mx\x01"
                                          "z\x00"),
                                        200),
                     0);
    assert_int_equal(pst_dns_answer_add(a,
                                        B("\x00\x0a\x02mx\x01"
                                          "a\x00"),
                                        400),
                     0);
    pst_dns_answer_finish(a);
    assert_int_equal(a->nrrs, 3);
    assert_int_equal(a->ttl, 200);
    assert_string_equal(a->rrs[0].name, "mx.a.");
    assert_string_equal(a->rrs[1].name, "mx.z.");
    assert_string_equal(a->rrs[2].name, "mx.b.");
    assert_int_equal(a->rrs[2].ttl, 300);
    assert_int_equal(pst_dns_answer_set_canonical(a, "Other.Test"), 0);
    assert_string_equal(a->canonical, "other.test.");
    assert_int_equal(pst_dns_answer_set_canonical(a, "a..b"), PST_ERR_SYNTAX);
    /* a malformed record turns the whole answer into FAIL */
    assert_int_equal(pst_dns_answer_add(a, B("\x00\x0a\x02mx"), 300), PST_ERR_SYNTAX);
    assert_int_equal(a->status, PST_DNS_FAIL);
    assert_int_equal(a->nrrs, 0);
    assert_null(a->rrs);
    assert_string_equal(a->reason, "malformed MX rdata: name runs past the end");
    /* and stays so */
    assert_int_equal(pst_dns_answer_add(a, B("\x00\x0a\x00"), 300), 0);
    assert_int_equal(a->nrrs, 0);
    pst_dns_answer_free(a);
    pst_dns_answer_free(NULL);

    /* OK without records is NODATA */
    assert_int_equal(pst_dns_answer_new("x.test", PST_DNS_A, &a), 0);
    pst_dns_answer_finish(a);
    assert_int_equal(a->status, PST_DNS_NOTFOUND);
    assert_int_equal(a->notfound, PST_DNS_NODATA);
    pst_dns_answer_free(a);

    assert_int_equal(pst_dns_answer_retry("x.test", PST_DNS_TXT, "timed out after 1 s", &a), 0);
    assert_int_equal(a->status, PST_DNS_RETRY);
    assert_int_equal(a->notfound, PST_DNS_FOUND);
    assert_string_equal(a->reason, "timed out after 1 s");
    assert_int_equal(pst_dns_answer_set(a, PST_DNS_NOTFOUND, PST_DNS_FOUND, NULL), 0);
    assert_int_equal(a->notfound, PST_DNS_NXDOMAIN);
    assert_null(a->reason);
    pst_dns_answer_free(a);

    assert_int_equal(pst_dns_answer_timeout("x.test", PST_DNS_A, 5000, &a), 0);
    assert_int_equal(a->status, PST_DNS_RETRY);
    assert_string_equal(a->reason, "timed out after 5 s");
    pst_dns_answer_free(a);
    assert_int_equal(pst_dns_answer_timeout("x.test", PST_DNS_A, 1500, &a), 0);
    assert_string_equal(a->reason, "timed out after 1500 ms");
    pst_dns_answer_free(a);

    assert_int_equal(pst_dns_answer_new("a..b", PST_DNS_A, &a), PST_ERR_SYNTAX);
}

static void test_answer_limits(void **state)
{
    struct pst_dns_answer *a;
    uint8_t rdata[4369];

    /* PST_DNS_MAX_RECORDS records pass; one more is an oversize answer */
    assert_int_equal(pst_dns_answer_new("many.test", PST_DNS_A, &a), 0);
    for (int i = 0; i < PST_DNS_MAX_RECORDS; i++) {
        uint8_t ip[4] = {192, 0, (uint8_t)(i >> 8), (uint8_t)i};
        assert_int_equal(pst_dns_answer_add(a, ip, 4, 60), 0);
    }
    assert_int_equal(a->nrrs, PST_DNS_MAX_RECORDS);
    assert_int_equal(pst_dns_answer_add(a, B("\1\2\3\4"), 60), PST_ERR_TOOBIG);
    assert_int_equal(a->status, PST_DNS_FAIL);
    assert_string_equal(a->reason, "oversize answer: more than 128 A records");
    assert_int_equal(a->nrrs, 0);
    pst_dns_answer_free(a);

    /* 65535 rdata octets (15 TXT records of 4369) pass; one more does not */
    assert_int_equal(pst_dns_answer_new("big.test", PST_DNS_TXT, &a), 0);
    for (size_t off = 0; off < sizeof rdata;) {
        size_t l = sizeof rdata - off - 1 < 255 ? sizeof rdata - off - 1 : 255;
        rdata[off] = (uint8_t)l;
        memset(rdata + off + 1, 'x', l);
        off += l + 1;
    }
    for (int i = 0; i < 15; i++)
        assert_int_equal(pst_dns_answer_add(a, rdata, sizeof rdata, 60), 0);
    assert_int_equal(a->bytes, 65535);
    assert_int_equal(pst_dns_answer_add(a, B("\0"), 60), PST_ERR_TOOBIG);
    assert_string_equal(a->reason, "oversize answer: more than 65535 octets of TXT data");
    pst_dns_answer_free(a);
}

/* ---- the budget, against a resolver that only counts -------------------- */

struct fake {
    struct pst_resolver r;
    int calls;
    unsigned last_timeout;
    char last_name[PST_DNS_NAME_TEXT_MAX];
};

static int fake_query(struct pst_resolver *r, const char *name, uint16_t type, unsigned timeout_ms,
                      struct pst_dns_answer **out)
{
    struct fake *f = (struct fake *)r;
    f->calls++;
    f->last_timeout = timeout_ms;
    snprintf(f->last_name, sizeof f->last_name, "%s", name);
    return pst_dns_answer_new(name, type, out);
}

static void fake_free(struct pst_resolver *r)
{
    (void)r;
}

static void test_budget(void **state)
{
    struct fake f = {.r = {.kind = "fake", .query = fake_query, .free = fake_free}};
    struct pst_dns_budget b = {.max_queries = 3, .timeout_ms = 1500};
    struct pst_dns_answer *a = NULL;

    for (int i = 0; i < 3; i++) {
        assert_int_equal(pst_dns_query(&f.r, &b, "WWW.example.test", PST_DNS_A, &a), 0);
        assert_non_null(a);
        pst_dns_answer_free(a);
        a = NULL;
    }
    assert_string_equal(f.last_name, "www.example.test.");
    assert_int_equal(f.last_timeout, 1500);
    assert_int_equal(b.used, 3);
    /* the fourth is refused before the resolver sees it */
    assert_int_equal(pst_dns_query(&f.r, &b, "www.example.test", PST_DNS_A, &a), PST_ERR_TOOBIG);
    assert_null(a);
    assert_int_equal(f.calls, 3);
    assert_int_equal(b.used, 3);

    /* bad names and types cost nothing */
    b.used = 0;
    assert_int_equal(pst_dns_query(&f.r, &b, "a..b", PST_DNS_A, &a), PST_ERR_SYNTAX);
    assert_int_equal(pst_dns_query(&f.r, &b, "a.b", 2 /* NS */, &a), PST_ERR_UNSUPPORTED);
    assert_int_equal(pst_dns_query(&f.r, &b, NULL, PST_DNS_A, &a), PST_ERR_INVAL);
    assert_int_equal(b.used, 0);
    assert_int_equal(f.calls, 3);

    /* no budget: no limit, the default timeout */
    assert_int_equal(pst_dns_query(&f.r, NULL, "x.test", PST_DNS_TXT, &a), 0);
    pst_dns_answer_free(a);
    assert_int_equal(f.last_timeout, PST_DNS_TIMEOUT_MS);
    /* max_queries 0: no limit either */
    struct pst_dns_budget unlimited = {0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pst_dns_query(&f.r, &unlimited, "x.test", PST_DNS_TXT, &a), 0);
        pst_dns_answer_free(a);
    }
    assert_int_equal(unlimited.used, 5);

    /* no asynchronous side */
    assert_int_equal(pst_dns_query_async(&f.r, NULL, "x.test", PST_DNS_A, NULL, NULL, NULL),
                     PST_ERR_UNSUPPORTED);
    assert_int_equal(pst_dns_fd(&f.r), PST_ERR_UNSUPPORTED);
    assert_int_equal(pst_dns_process(&f.r), PST_ERR_UNSUPPORTED);
    assert_int_equal(pst_dns_cancel(&f.r, 1), PST_ERR_UNSUPPORTED);
    pst_resolver_free(NULL);
}

/* ---- text helpers ------------------------------------------------------- */

static void test_text_helpers(void **state)
{
    uint16_t t = 0;
    struct pst_buf *b = pst_buf_new(64);
    char out[80];

    assert_int_equal(pst_dns_type_parse("mx", &t), 0);
    assert_int_equal(t, PST_DNS_MX);
    assert_int_equal(pst_dns_type_parse("Tlsa", &t), 0);
    assert_int_equal(t, PST_DNS_TLSA);
    assert_int_equal(pst_dns_type_parse("AAAA", &t), 0);
    assert_int_equal(t, PST_DNS_AAAA);
    assert_int_equal(pst_dns_type_parse("AA", &t), PST_ERR_UNSUPPORTED);
    assert_int_equal(pst_dns_type_parse("NS", &t), PST_ERR_UNSUPPORTED);
    assert_int_equal(pst_dns_type_parse("", &t), PST_ERR_UNSUPPORTED);
    assert_string_equal(pst_dns_type_name(PST_DNS_CNAME), "CNAME");
    assert_string_equal(pst_dns_type_name(99), "?");
    assert_string_equal(pst_dns_status_name(PST_DNS_RETRY), "retry");
    assert_string_equal(pst_dns_notfound_name(PST_DNS_NODATA), "nodata");
    assert_null(pst_dns_notfound_name(PST_DNS_FOUND));
    assert_string_equal(pst_dns_dnssec_name(PST_DNS_BOGUS), "bogus");

    assert_int_equal(pst_dns_text_escape(b, B("a\"b\\c\x00\x7f\x80 ~"), 0), 0);
    assert_string_equal(pst_buf_data(b), "a\"b\\092c\\000\\127\\128 ~");
    pst_buf_reset(b);
    assert_int_equal(pst_dns_text_escape(b, B("\""), 1), 0);
    assert_string_equal(pst_buf_data(b), "\\034");
    pst_buf_reset(b);
    uint8_t big[100];
    memset(big, 0, sizeof big);
    assert_int_equal(pst_dns_text_escape(b, big, sizeof big, 0), PST_ERR_TOOBIG);
    pst_buf_free(b);

    assert_int_equal(pst_dns_ptr_name("192.0.2.1", out, sizeof out), 0);
    assert_string_equal(out, "1.2.0.192.in-addr.arpa.");
    assert_int_equal(pst_dns_ptr_name("2001:db8::1", out, sizeof out), 0);
    assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
                             "ip6.arpa.");
    assert_int_equal(pst_dns_ptr_name("example.test", out, sizeof out), PST_ERR_SYNTAX);
    assert_int_equal(pst_dns_ptr_name("192.0.2.1", out, 10), PST_ERR_TOOBIG);
    assert_int_equal(pst_dns_ptr_name("::1", out, 60), PST_ERR_TOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rdata_table),       cmocka_unit_test(test_txt_long),
        cmocka_unit_test(test_name_wire_table),   cmocka_unit_test(test_name_length),
        cmocka_unit_test(test_name_unpack_table), cmocka_unit_test(test_name_unpack_long),
        cmocka_unit_test(test_name_text_table),   cmocka_unit_test(test_answer_build),
        cmocka_unit_test(test_answer_limits),     cmocka_unit_test(test_budget),
        cmocka_unit_test(test_text_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
