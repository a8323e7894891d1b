/*
 * test_dkim_verify.c - DKIM signing and verification end to end inside the
 * library, hermetic: keys come from a zone resolver (lib/io
 * resolver_zone.c) over zone text built here, time is passed in.
 *
 *  - RFC 8463 Appendix A: both signatures (ed25519-sha256 and rsa-sha256)
 *    verify with the RFC's key records;
 *  - sign then verify, rsa and ed25519 at once, all four c= pairs, body
 *    streamed in pieces;
 *  - every verdict class: tampered header and body (fail), added From
 *    (fail: From is oversigned), expired x=, revoked key, 512-bit key,
 *    rsa-sha1, no key, key of another type, h= and s= of the key, t=s
 *    (permerror), SERVFAIL (temperror), t=y (neutral), signatures past
 *    the cap, the key cache.
 *
 * RFC 6376 Appendix A's example is not used yet (not tried).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dkim.h"
#include "dns.h"
#include "err.h"
#include "resolver.h"

#define NOW 1700000000

static const char rfc8463_zone[] =
    "$ORIGIN football.example.com.\n"
    "$TTL 300\n"
    "brisbane._domainkey IN TXT ( \"v=DKIM1; k=ed25519; "
    "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\" )\n"
    "test._domainkey IN TXT (\n"
    " \"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR\"\n"
    " \"iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC\"\n"
    " \"DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3\"\n"
    " \"Ip3G+2kryOTIKT+l/K4w3QIDAQAB\")\n";

static const char rfc8463_msg[] = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
                                  " d=football.example.com; i=@football.example.com;\r\n"
                                  " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
                                  " subject : date : message-id : from : subject : date;\r\n"
                                  " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                                  " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
                                  " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
                                  "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
                                  " d=football.example.com; i=@football.example.com;\r\n"
                                  " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
                                  " date : message-id : from : subject : date;\r\n"
                                  " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                                  " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
                                  " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
                                  " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n"
                                  "From: Joe SixPack <joe@football.example.com>\r\n"
                                  "To: Suzie Q <suzie@shopping.example.net>\r\n"
                                  "Subject: Is dinner ready?\r\n"
                                  "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
                                  "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
                                  "\r\n"
                                  "Hi.\r\n"
                                  "\r\n"
                                  "We lost the game.  Are you hungry yet?\r\n"
                                  "\r\n"
                                  "Joe.\r\n";

static const char plain_msg[] = "From: Joe <joe@example.com>\r\n"
                                "To: Ann <ann@example.net>\r\n"
                                "Subject: lunch\r\n"
                                "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                                "Message-ID: <1@example.com>\r\n"
                                "X-Other: not signed\r\n"
                                "\r\n"
                                "Hello  there, \r\n"
                                "\r\n"
                                "see you.\r\n"
                                "\r\n";

static struct pst_resolver *zone(const char *text)
{
    struct pst_resolver *r = NULL;
    char err[256] = "";
    int rc = pst_resolver_zone_from_text(text, strlen(text), &r, err, sizeof(err));
    if (rc != 0)
        print_error("zone: %s\n", err);
    assert_int_equal(rc, 0);
    return r;
}

/* Verifies msg (body streamed in pieces of step octets) and renders the
 * verdicts as "result d s a reason|" ... */
static void verify(struct pst_resolver *r, struct pst_dkim_keycache *cache,
                   struct pst_dns_budget *budget, const char *msg, size_t len, int64_t now,
                   unsigned services, size_t step, char *out, size_t outlen)
{
    struct pst_dkim_verify_opts o = {
        .resolver = r, .budget = budget, .cache = cache, .now = now, .services = services};
    struct pst_dkim_verify *v = NULL;
    const char *why = NULL;
    assert_int_equal(pst_dkim_verify_start(&o, msg, len, &v, &why), 0);
    const char *body = strstr(msg, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    size_t blen = len - (size_t)(body - msg);
    for (size_t k = 0; k < blen; k += step)
        pst_dkim_verify_body(v, body + k, blen - k < step ? blen - k : step);
    assert_int_equal(pst_dkim_verify_finish(v), 0);
    size_t n, skipped;
    const struct pst_dkim_verdict *vd = pst_dkim_verify_verdicts(v, &n, &skipped);
    size_t j = 0;
    out[0] = '\0';
    for (size_t k = 0; k < n; k++)
        j += (size_t)snprintf(out + j, outlen - j, "%s %s %s %s %s|",
                              pst_dkim_result_name(vd[k].result), vd[k].d, vd[k].s, vd[k].a,
                              vd[k].reason);
    if (skipped)
        snprintf(out + j, outlen - j, "skipped %zu", skipped);
    pst_dkim_verify_free(v);
}

static void test_rfc8463(void **state)
{
    (void)state;
    struct pst_resolver *r = zone(rfc8463_zone);
    char got[1024];
    for (size_t step = 1; step <= 4096; step *= 8) {
        verify(r, NULL, NULL, rfc8463_msg, strlen(rfc8463_msg), NOW, 0, step, got, sizeof(got));
        assert_string_equal(got, "pass football.example.com brisbane ed25519-sha256 |"
                                 "pass football.example.com test rsa-sha256 |");
    }
    /* the header.b and header.i of RFC 8601 */
    struct pst_dkim_verify_opts o = {.resolver = r, .now = NOW};
    struct pst_dkim_verify *v;
    assert_int_equal(pst_dkim_verify_start(&o, rfc8463_msg, strlen(rfc8463_msg), &v, NULL), 0);
    const char *body = strstr(rfc8463_msg, "\r\n\r\n") + 4;
    pst_dkim_verify_body(v, body, strlen(body));
    assert_int_equal(pst_dkim_verify_finish(v), 0);
    size_t n;
    const struct pst_dkim_verdict *vd = pst_dkim_verify_verdicts(v, &n, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(vd[0].b8, "/gCrinpc");
    assert_string_equal(vd[1].b8, "F45dVWDf");
    assert_string_equal(vd[0].i, "@football.example.com");
    assert_int_equal(vd[1].key_bits, 1024);
    pst_dkim_verify_free(v);
    /* the body changed by one octet: both fail on the body hash */
    char *m = strdup(rfc8463_msg);
    *strstr(m, "Joe.") = 'j';
    verify(r, NULL, NULL, m, strlen(m), NOW, 0, 4096, got, sizeof(got));
    assert_string_equal(got, "fail football.example.com brisbane ed25519-sha256 body hash mismatch|"
                             "fail football.example.com test rsa-sha256 body hash mismatch|");
    free(m);
    pst_resolver_free(r);
}

/* ---- a signer with an RSA and an Ed25519 key, and a zone for both ------- */

struct keys {
    struct pst_buf *rsa_pem, *ed_pem, *rsa_rec, *ed_rec;
};

static struct keys K;

static int setup(void **state)
{
    (void)state;
    K.rsa_pem = pst_buf_new_secret(16384);
    K.ed_pem = pst_buf_new_secret(16384);
    K.rsa_rec = pst_buf_new(4096);
    K.ed_rec = pst_buf_new(4096);
    if (pst_dkim_keygen(PST_DKIM_KEY_RSA, 1024, K.rsa_pem, K.rsa_rec) != 0 ||
        pst_dkim_keygen(PST_DKIM_KEY_ED25519, 0, K.ed_pem, K.ed_rec) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pst_buf_free(K.rsa_pem);
    pst_buf_free(K.ed_pem);
    pst_buf_free(K.rsa_rec);
    pst_buf_free(K.ed_rec);
    return 0;
}

/* TXT rdata text split into <= 200-octet strings. */
static void add_txt(struct pst_buf *z, const char *owner, const char *rec)
{
    assert_int_equal(pst_buf_addf(z, "%s IN TXT (", owner), 0);
    size_t n = strlen(rec);
    for (size_t k = 0; k < n; k += 200)
        assert_int_equal(pst_buf_addf(z, " \"%.*s\"", (int)(n - k < 200 ? n - k : 200), rec + k),
                         0);
    assert_int_equal(pst_buf_addstr(z, " )\n"), 0);
}

/* The zone: rsa and ed keys at "r" and "e"; extra tags are added after
 * the generated record, or replace it when they start with '!'. */
static struct pst_resolver *keyzone(const char *rsa_extra, const char *ed_extra)
{
    struct pst_buf *z = pst_buf_new(65536);
    assert_int_equal(pst_buf_addstr(z, "$ORIGIN example.com.\n$TTL 300\n"), 0);
    char rec[4096];
    if (rsa_extra[0] == '!')
        snprintf(rec, sizeof(rec), "%s", rsa_extra + 1);
    else
        snprintf(rec, sizeof(rec), "%s%s%s", pst_buf_data(K.rsa_rec), *rsa_extra ? "; " : "",
                 rsa_extra);
    add_txt(z, "r._domainkey", rec);
    if (ed_extra[0] == '!')
        snprintf(rec, sizeof(rec), "%s", ed_extra + 1);
    else
        snprintf(rec, sizeof(rec), "%s%s%s", pst_buf_data(K.ed_rec), *ed_extra ? "; " : "",
                 ed_extra);
    add_txt(z, "e._domainkey", rec);
    struct pst_resolver *r = zone(pst_buf_data(z));
    pst_buf_free(z);
    return r;
}

static struct pst_dkim_signer *signer(enum pst_dkim_canon hc, enum pst_dkim_canon bc,
                                      int64_t expire, const char *identity)
{
    struct pst_dkim_signer_opts o = {.domain = "example.com",
                                     .identity = identity,
                                     .hcanon = hc,
                                     .bcanon = bc,
                                     .expire = expire};
    struct pst_dkim_signer *s = NULL;
    assert_int_equal(pst_dkim_signer_new(&o, &s), 0);
    assert_int_equal(
        pst_dkim_signer_add_key(s, "r", pst_buf_data(K.rsa_pem), pst_buf_len(K.rsa_pem)), 0);
    assert_int_equal(pst_dkim_signer_add_key(s, "e", pst_buf_data(K.ed_pem), pst_buf_len(K.ed_pem)),
                     0);
    return s;
}

/* Signs msg and returns the signed message (signatures on top). */
static char *sign(const struct pst_dkim_signer *s, const char *msg, int64_t now)
{
    struct pst_dkim_signing *g = NULL;
    assert_int_equal(pst_dkim_sign_start(s, msg, strlen(msg), now, &g), 0);
    const char *body = strstr(msg, "\r\n\r\n") + 4;
    for (const char *p = body; *p; p++)
        pst_dkim_sign_body(g, p, 1); /* the worst streaming case */
    struct pst_buf *out = pst_buf_new(1 << 20);
    assert_int_equal(pst_dkim_sign_finish(g, out), 0);
    pst_dkim_signing_free(g);
    assert_int_equal(pst_buf_addstr(out, msg), 0);
    char *m = pst_buf_steal(out);
    pst_buf_free(out);
    return m;
}

static const char *const PASS2 =
    "pass example.com r rsa-sha256 |pass example.com e ed25519-sha256 |";

static void test_sign_verify_all_canons(void **state)
{
    (void)state;
    struct pst_resolver *r = keyzone("", "");
    char got[2048];
    for (int hc = 0; hc < 2; hc++) {
        for (int bc = 0; bc < 2; bc++) {
            struct pst_dkim_signer *s = signer(hc, bc, 0, NULL);
            char *m = sign(s, plain_msg, NOW);
            /* what RFC 6376 and the issue ask of the header field */
            assert_non_null(strstr(m, "t=1700000000;"));
            assert_null(strstr(m, " l="));
            assert_null(strstr(m, " x="));
            assert_non_null(strstr(m, "h=from:from:subject:subject:date:date:to:to:"));
            verify(r, NULL, NULL, m, strlen(m), NOW + 10, 0, 7, got, sizeof(got));
            if (strcmp(got, PASS2) != 0)
                print_error("c=%d/%d: %s\n%s", hc, bc, got, m);
            assert_string_equal(got, PASS2);
            free(m);
            pst_dkim_signer_free(s);
        }
    }
    pst_resolver_free(r);
}

/* Replaces the first from in m by to (same or other length). */
static char *edit(const char *m, const char *from, const char *to)
{
    const char *p = strstr(m, from);
    assert_non_null(p);
    size_t n = strlen(m) - strlen(from) + strlen(to);
    char *o = malloc(n + 1);
    size_t a = (size_t)(p - m);
    memcpy(o, m, a);
    memcpy(o + a, to, strlen(to));
    memcpy(o + a + strlen(to), p + strlen(from), strlen(p + strlen(from)) + 1);
    return o;
}

struct vcase {
    const char *name;
    const char *rsa_extra, *ed_extra; /* key record prefixes */
    int64_t expire;                   /* x= after t */
    const char *identity;
    const char *from, *to; /* message edit after signing */
    int64_t dnow;          /* verification time - signing time */
    unsigned services;
    const char *want;
};

static const struct vcase vcases[] = {
    {"pass", "", "", 0, NULL, NULL, NULL, 10, 0, NULL},
    {"tampered header", "", "", 0, NULL, "Subject: lunch", "Subject: dinner", 10, 0,
     "fail example.com r rsa-sha256 signature mismatch|"
     "fail example.com e ed25519-sha256 signature mismatch|"},
    {"tampered body", "", "", 0, NULL, "see you.", "see you!", 10, 0,
     "fail example.com r rsa-sha256 body hash mismatch|"
     "fail example.com e ed25519-sha256 body hash mismatch|"},
    {"unsigned header changed", "", "", 0, NULL, "X-Other: not", "X-Other: now", 10, 0, NULL},
    {"relaxed-insensitive change", "", "", 0, NULL, "Subject: lunch", "Subject:    lunch  ", 10, 0,
     NULL},
    {"added From", "", "", 0, NULL, "From: Joe", "From: Eve <eve@evil.example>\r\nFrom: Joe", 10, 0,
     "fail example.com r rsa-sha256 signature mismatch|"
     "fail example.com e ed25519-sha256 signature mismatch|"},
    {"added Subject", "", "", 0, NULL, "Subject: lunch", "Subject: lunch\r\nSubject: x", 10, 0,
     "fail example.com r rsa-sha256 signature mismatch|"
     "fail example.com e ed25519-sha256 signature mismatch|"},
    {"x= not reached", "", "", 100, NULL, NULL, NULL, 100, 0, NULL},
    {"x= expired", "", "", 100, NULL, NULL, NULL, 101, 0,
     "permerror example.com r rsa-sha256 signature expired (x=)|"
     "permerror example.com e ed25519-sha256 signature expired (x=)|"},
    {"revoked", "!v=DKIM1; p=", "", 0, NULL, NULL, NULL, 10, 0,
     "permerror example.com r rsa-sha256 key revoked|"
     "pass example.com e ed25519-sha256 |"},
    {"key h=sha1", "h=sha1", "", 0, NULL, NULL, NULL, 10, 0,
     "permerror example.com r rsa-sha256 sha256 not allowed by the key's h=|"
     "pass example.com e ed25519-sha256 |"},
    {"key h=sha256", "h=sha256", "h=sha1:sha256", 0, NULL, NULL, NULL, 10, 0, NULL},
    {"key s=tlsrpt for email", "s=tlsrpt", "s=email", 0, NULL, NULL, NULL, 10, 0,
     "permerror example.com r rsa-sha256 key not for this service (s=)|"
     "pass example.com e ed25519-sha256 |"},
    {"key s=tlsrpt for tlsrpt", "s=tlsrpt", "s=*", 0, NULL, NULL, NULL, 10, PST_DKIM_SVC_TLSRPT,
     NULL},
    {"key s=email for tlsrpt", "s=email", "", 0, NULL, NULL, NULL, 10, PST_DKIM_SVC_TLSRPT,
     "permerror example.com r rsa-sha256 key not for this service (s=)|"
     "pass example.com e ed25519-sha256 |"},
    {"t=s with subdomain i=", "t=s", "", 0, "joe@mail.example.com", NULL, NULL, 10, 0,
     "permerror example.com r rsa-sha256 key has t=s but i= is a subdomain of d=|"
     "pass example.com e ed25519-sha256 |"},
    {"t=s with i= in d=", "t=s", "", 0, "joe@example.com", NULL, NULL, 10, 0, NULL},
    {"t=y pass", "t=y", "", 0, NULL, NULL, NULL, 10, 0,
     "pass example.com r rsa-sha256 key in testing mode (t=y)|"
     "pass example.com e ed25519-sha256 |"},
    {"t=y fail is neutral", "t=y", "", 0, NULL, "see you.", "see you!", 10, 0,
     "neutral example.com r rsa-sha256 body hash mismatch|"
     "fail example.com e ed25519-sha256 body hash mismatch|"},
    {"unknown k", "!v=DKIM1; k=dsa; p=AAAA", "", 0, NULL, NULL, NULL, 10, 0,
     "permerror example.com r rsa-sha256 bad key record: unknown key type|"
     "pass example.com e ed25519-sha256 |"},
    {"sha1", "", "", 0, NULL, "a=rsa-sha256", "a=rsa-sha1", 10, 0,
     "permerror example.com r rsa-sha1 rsa-sha1 is not accepted (RFC 8301)|"
     "pass example.com e ed25519-sha256 |"},
    {"no key", "", "", 0, NULL, "s=r;", "s=nokey;", 10, 0,
     "permerror example.com nokey rsa-sha256 no key record at nokey._domainkey.example.com|"
     "pass example.com e ed25519-sha256 |"},
    {"key of another type", "", "", 0, NULL, "s=e;", "s=r;", 10, 0,
     "pass example.com r rsa-sha256 |"
     "permerror example.com r ed25519-sha256 key type does not match a=|"},
    {"temperror", "", "", 0, NULL, "s=r;", "s=down;", 10, 0,
     "temperror example.com down rsa-sha256 key lookup for down._domainkey.example.com: "
     "SERVFAIL (simulated)|"
     "pass example.com e ed25519-sha256 |"},
    {"broken signature", "", "", 0, NULL, "v=1;", "v=2;", 10, 0,
     "permerror example.com r rsa-sha256 bad signature: v= is not 1|"
     "pass example.com e ed25519-sha256 |"},
    {"h= without from", "", "", 0, NULL, "h=from:from:", "h=", 10, 0,
     "permerror example.com r rsa-sha256 bad signature: h= does not include From|"
     "permerror example.com e ed25519-sha256 bad signature: h= does not include From|"},
};

static void test_verdict_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
        const struct vcase *t = &vcases[i];
        struct pst_resolver *r = keyzone(t->rsa_extra, t->ed_extra);
        const char *down = "down._domainkey.example.com";
        assert_int_equal(pst_resolver_zone_fail(r, down, PST_DNS_RETRY, NULL), 0);
        struct pst_dkim_signer *s =
            signer(PST_DKIM_RELAXED, PST_DKIM_RELAXED, t->expire, t->identity);
        char *m = sign(s, plain_msg, NOW);
        if (t->from != NULL) {
            char *e = edit(m, t->from, t->to);
            if (strcmp(t->from, "h=from:from:") == 0) { /* both signatures */
                free(m);
                m = e;
                e = edit(m, t->from, t->to);
            }
            free(m);
            m = e;
        }
        char got[2048];
        verify(r, NULL, NULL, m, strlen(m), NOW + t->dnow, t->services, 64, got, sizeof(got));
        const char *want = t->want ? t->want : PASS2;
        if (strcmp(got, want) != 0) {
            print_error("%s:\n  got  %s\n  want %s\n", t->name, got, want);
            bad++;
        }
        free(m);
        pst_dkim_signer_free(s);
        pst_resolver_free(r);
    }
    assert_int_equal(bad, 0);
}

/* A 512-bit key published for the selector: refused before any crypto. */
static void test_small_rsa_key(void **state)
{
    (void)state;
    struct pst_buf *z = pst_buf_new(4096);
    assert_int_equal(pst_buf_addstr(z, "$ORIGIN example.com.\n"), 0);
    add_txt(z, "r._domainkey",
            "v=DKIM1; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANgqs9FhMo1YDfs+hkMxoXhusB1s6uyu4hQpbb2"
            "pHYvPlNeArAp1xxTpYPRDCVcDZkFvhdV31PAYeqoQe+m5bSECAwEAAQ==");
    add_txt(z, "e._domainkey", pst_buf_data(K.ed_rec));
    struct pst_resolver *r = zone(pst_buf_data(z));
    pst_buf_free(z);
    struct pst_dkim_signer *s = signer(PST_DKIM_RELAXED, PST_DKIM_SIMPLE, 0, NULL);
    char *m = sign(s, plain_msg, NOW);
    char got[1024];
    verify(r, NULL, NULL, m, strlen(m), NOW, 0, 100, got, sizeof(got));
    assert_string_equal(got,
                        "permerror example.com r rsa-sha256 RSA key too small (512 bits; RFC 8301)|"
                        "pass example.com e ed25519-sha256 |");
    free(m);
    pst_dkim_signer_free(s);
    pst_resolver_free(r);
}

/* Seven signatures: five looked at, two counted as skipped; the cache
 * answers the repeated key names without DNS. */
static void test_cap_and_cache(void **state)
{
    (void)state;
    struct pst_resolver *r = keyzone("", "");
    struct pst_dkim_signer *s = signer(PST_DKIM_SIMPLE, PST_DKIM_SIMPLE, 0, NULL);
    char *m = sign(s, plain_msg, NOW);
    for (int k = 0; k < 2; k++) {
        char *m2 = sign(s, m, NOW);
        free(m);
        m = m2;
    }
    /* 6 signatures; one more from the ed key alone makes 7 */
    char *m2 = edit(m, "DKIM-Signature:", "DKIM-Signature: v=1; bogus\r\nDKIM-Signature:");
    free(m);
    m = m2;
    struct pst_dkim_keycache *c = NULL;
    assert_int_equal(pst_dkim_keycache_new(0, 3600, &c), 0);
    struct pst_dns_budget b = {0};
    char got[4096];
    verify(r, c, &b, m, strlen(m), NOW, 0, 4096, got, sizeof(got));
    assert_string_equal(got, "permerror    bad signature: tag without '='|"
                             "pass example.com r rsa-sha256 |"
                             "pass example.com e ed25519-sha256 |"
                             "pass example.com r rsa-sha256 |"
                             "pass example.com e ed25519-sha256 |"
                             "skipped 2");
    assert_int_equal(b.used, 2); /* r and e once each */
    verify(r, c, &b, m, strlen(m), NOW + 10, 0, 4096, got, sizeof(got));
    assert_int_equal(b.used, 2); /* all from the cache */
    verify(r, c, &b, m, strlen(m), NOW + 300, 0, 4096, got, sizeof(got));
    assert_int_equal(b.used, 4); /* TTL 300 passed */
    /* a budget of one query: the second key name is a permerror */
    struct pst_dns_budget one = {.max_queries = 1};
    verify(r, NULL, &one, m, strlen(m), NOW, 0, 4096, got, sizeof(got));
    assert_non_null(strstr(got, "permerror example.com e ed25519-sha256 DNS query budget used up"));
    pst_dkim_keycache_free(c);
    pst_dkim_keycache_free(NULL);
    free(m);
    pst_dkim_signer_free(s);
    pst_resolver_free(r);
}

static void test_sign_refusals(void **state)
{
    (void)state;
    struct pst_dkim_signer *s = signer(PST_DKIM_RELAXED, PST_DKIM_RELAXED, 0, NULL);
    struct pst_dkim_signing *g = NULL;
    const char *nofrom = "To: a@b\r\nSubject: x\r\n\r\nbody\r\n";
    assert_int_equal(pst_dkim_sign_start(s, nofrom, strlen(nofrom), NOW, &g), PST_ERR_NOTFOUND);
    const char *twofrom = "From: a@b\r\nFrom: c@d\r\n\r\nbody\r\n";
    assert_int_equal(pst_dkim_sign_start(s, twofrom, strlen(twofrom), NOW, &g), PST_ERR_SYNTAX);
    const char *bare = "From: a@b\nTo: c\n\nbody\n";
    assert_int_equal(pst_dkim_sign_start(s, bare, strlen(bare), NOW, &g), PST_ERR_BARE_EOL);
    assert_null(g);
    pst_dkim_signer_free(s);

    struct pst_dkim_signer_opts o = {.domain = "example.com"};
    assert_int_equal(pst_dkim_signer_new(&o, &s), 0);
    assert_int_equal(pst_dkim_sign_start(s, plain_msg, strlen(plain_msg), NOW, &g), PST_ERR_STATE);
    assert_int_equal(pst_dkim_signer_add_key(s, "x", "not a key", 9), PST_ERR_CRYPTO);
    assert_int_equal(
        pst_dkim_signer_add_key(s, "bad selector", pst_buf_data(K.ed_pem), pst_buf_len(K.ed_pem)),
        PST_ERR_INVAL);
    const char k512[] = "-----BEGIN RSA PRIVATE KEY-----\n"
                        "MIIBPAIBAAJBANgqs9FhMo1YDfs+hkMxoXhusB1s6uyu4hQpbb2pHYvPlNeArAp1\n"
                        "xxTpYPRDCVcDZkFvhdV31PAYeqoQe+m5bSECAwEAAQJAMhsb2UG1bQvnGcCxcGvV\n"
                        "qMvHaNqxTbFv2AqOVHMZ1SkYSx3AQsr54EFIltcjKSArGGD5CyqqICMZxBZh7tVX\n"
                        "TQIhAP6EKxzEMugsf6Titj38IQRzWUWVG8u0B2mQv52+A57bAiEA2W1Ncoyhq1Yq\n"
                        "/zjWOAeYhAFqzsARzDdyBLnuO3XSLrMCIQCji0ooseoERpO+3+865UhSE8zJaYby\n"
                        "3jvlGZ4HPpIVAQIhALWG6C5G84NVAbjr/w3waYlslXvgJ/vUHsGLajcCe2S5AiEA\n"
                        "0N5oIVLOrAp8XeoV9KRH9a3/t3tEKmD3GDRWL5XxAdY=\n"
                        "-----END RSA PRIVATE KEY-----\n";
    assert_int_equal(pst_dkim_signer_add_key(s, "x", k512, sizeof(k512) - 1), PST_ERR_UNSUPPORTED);
    pst_dkim_signer_free(s);
    pst_dkim_signer_free(NULL);

    static const char *const nofromlist[] = {"to", "subject", NULL};
    struct pst_dkim_signer_opts o2 = {.domain = "example.com", .headers = nofromlist};
    assert_int_equal(pst_dkim_signer_new(&o2, &s), PST_ERR_INVAL);
    struct pst_dkim_signer_opts o3 = {.domain = "example.com", .identity = "a@evil.com"};
    assert_int_equal(pst_dkim_signer_new(&o3, &s), PST_ERR_INVAL);
    struct pst_dkim_signer_opts o4 = {.domain = "exa mple.com"};
    assert_int_equal(pst_dkim_signer_new(&o4, &s), PST_ERR_INVAL);
}

/* A header list of the caller's, without oversigning. */
static void test_custom_headers(void **state)
{
    (void)state;
    static const char *const list[] = {"From", "Subject", "X-Other", NULL};
    struct pst_dkim_signer_opts o = {.domain = "example.com", .headers = list, .no_oversign = 1};
    struct pst_dkim_signer *s = NULL;
    assert_int_equal(pst_dkim_signer_new(&o, &s), 0);
    assert_int_equal(pst_dkim_signer_add_key(s, "e", pst_buf_data(K.ed_pem), pst_buf_len(K.ed_pem)),
                     0);
    char *m = sign(s, plain_msg, NOW);
    assert_non_null(strstr(m, "h=from:subject:x-other;"));
    struct pst_resolver *r = keyzone("", "");
    char got[1024];
    verify(r, NULL, NULL, m, strlen(m), NOW, 0, 3, got, sizeof(got));
    assert_string_equal(got, "pass example.com e ed25519-sha256 |");
    char *e = edit(m, "X-Other: not", "X-Other: now");
    verify(r, NULL, NULL, e, strlen(e), NOW, 0, 3, got, sizeof(got));
    assert_string_equal(got, "fail example.com e ed25519-sha256 signature mismatch|");
    free(e);
    free(m);
    pst_resolver_free(r);
    pst_dkim_signer_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8463),        cmocka_unit_test(test_sign_verify_all_canons),
        cmocka_unit_test(test_verdict_table),  cmocka_unit_test(test_small_rsa_key),
        cmocka_unit_test(test_cap_and_cache),  cmocka_unit_test(test_sign_refusals),
        cmocka_unit_test(test_custom_headers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
