/*
 * fuzz_smtpc_reply.c - arbitrary server bytes against the SMTP client: the
 * reply parser alone (whole and split at every line), and the engine in a
 * full transaction whose options come from the first octet. Besides "no
 * crash, no leak" it checks:
 *  - a parsed reply has a code 200-559, an enhanced code of its class or
 *    none, and text without control octets but the '\n' separators;
 *  - feeding the same bytes whole or line by line gives the same replies;
 *  - the dot-stuffed input, read back by the server's DATA parser, is the
 *    input with CRLF line ends (see dot_roundtrip);
 *  - the engine always ends (DONE) once the input is used up, every
 *    command it wrote is one CRLF line without other control octets, and
 *    its outcomes are coherent (OK only with a 2yz reply, one-line text).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "smtp.h"
#include "smtpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_reply(const struct pst_smtpc_reply *r)
{
    CHECK(r->code >= 200 && r->code <= 559);
    CHECK(r->text != NULL && r->nlines >= 1 && r->nlines <= PST_SMTPC_REPLY_LINES);
    size_t nl = 0;
    for (const char *p = r->text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        CHECK(c == '\n' || (c >= 0x20 && c != 0x7f));
        nl += c == '\n';
    }
    CHECK(nl + 1 == r->nlines);
    if (r->enh[0] != '\0') {
        CHECK(r->enh[0] == '0' + r->code / 100);
        CHECK(strncmp(r->text, r->enh, strlen(r->enh)) == 0);
    }
    char one[PST_SMTPC_TEXT_MAX];
    size_t n = pst_smtpc_reply_oneline(r, one, sizeof(one));
    CHECK(n == strlen(one) && strchr(one, '\n') == NULL);
}

#define MAXR 64

/* Parses all replies of in, fed whole (step 0) or line by line. */
static int parse_all(const char *in, size_t len, int linewise, int *codes, int *rc_end)
{
    struct pst_smtpc_rparser *p = pst_smtpc_rparser_new();
    if (p == NULL)
        return -1;
    int n = 0;
    size_t off = 0;
    *rc_end = 0;
    while (off < len && n < MAXR) {
        size_t chunk = len - off;
        if (linewise) {
            const char *nl = memchr(in + off, '\n', len - off);
            if (nl != NULL)
                chunk = (size_t)(nl - (in + off)) + 1;
        }
        size_t used = 0;
        struct pst_smtpc_reply r = {0};
        char why[PST_SMTPC_WHY_MAX];
        int rc = pst_smtpc_rparser_feed(p, in + off, chunk, &used, &r, why, sizeof(why));
        if (rc < 0) {
            CHECK(rc == PST_ERR_SYNTAX || rc == PST_ERR_TOOBIG || rc == PST_ERR_NOMEM);
            CHECK(strlen(why) < PST_SMTPC_WHY_MAX && why[0] != '\0');
            for (const char *q = why; *q != '\0'; q++)
                CHECK((unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f);
            *rc_end = rc;
            break;
        }
        CHECK(used <= chunk);
        off += used;
        if (rc == 1) {
            check_reply(&r);
            codes[n++] = r.code;
        } else {
            CHECK(used == chunk);
        }
        pst_smtpc_reply_clear(&r);
    }
    pst_smtpc_rparser_free(p);
    return n;
}

static void check_commands(const struct pst_buf *w)
{
    const char *p = pst_buf_data(w);
    size_t n = pst_buf_len(w);
    CHECK(n == 0 || (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n'));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r') {
            CHECK(i + 1 < n && p[i + 1] == '\n');
            i++;
            continue;
        }
        CHECK(c != '\n' && c >= 0x20 && c != 0x7f);
    }
}

static void check_outcome(const struct pst_smtpc_outcome *o)
{
    CHECK(o->text != NULL && strchr(o->text, '\n') == NULL && strchr(o->text, '\r') == NULL);
    if (o->status == PST_SMTPC_OK)
        CHECK(o->code >= 200 && o->code <= 299 && o->from_server);
    if (o->from_server)
        CHECK(o->code >= 200 && o->code <= 559);
    CHECK(strlen(pst_smtpc_stage_name(o->stage)) > 0);
}

static void engine(const uint8_t *data, size_t size)
{
    unsigned opt = size > 0 ? data[0] : 0;
    const char *in = size > 0 ? (const char *)data + 1 : "";
    size_t len = size > 0 ? size - 1 : 0;
    static const struct pst_smtpc_rcpt rcpts[] = {
        {"a@example.net", "SUCCESS,FAILURE", "rfc822;a@example.net"},
        {"b@example.net", NULL, NULL},
        {"c@example.net", "NEVER", NULL},
    };
    struct pst_smtpc_config c = {0};
    c.ehlo_name = "client.example.org";
    c.sender = (opt & 0x40) ? "" : "s@example.org";
    c.rcpts = rcpts;
    c.nrcpts = 1 + (opt & 3) % 3;
    c.size = (opt & 0x80) ? 50000000 : 1000;
    c.body_8bit = (opt >> 2) & 1;
    c.smtputf8 = (opt >> 3) & 1;
    c.tls = (enum pst_smtpc_tls)((opt >> 4) & 3) % 3;
    c.dsn_ret = "HDRS";
    c.dsn_envid = "ID1";
    if (opt & 0x20) {
        c.auth_user = "u";
        c.auth_pass = "p";
        c.auth_plaintext_ok = (opt & 1);
    }
    struct pst_smtpc *e = NULL;
    if (pst_smtpc_new(&c, &e) != 0)
        return;
    struct pst_buf *w = pst_buf_new_secret(1 << 20);
    if (w == NULL) {
        pst_smtpc_free(e);
        return;
    }
    size_t off = 0;
    int steps = 0;
    for (;;) {
        CHECK(++steps < 100000);
        pst_buf_reset(w);
        CHECK(pst_smtpc_output(e, w) == 0);
        check_commands(w);
        CHECK(pst_smtpc_output_len(e) == 0);
        enum pst_smtpc_event ev = pst_smtpc_event(e);
        if (ev == PST_SMTPC_EV_DONE)
            break;
        if (ev == PST_SMTPC_EV_NEED_TLS) {
            pst_smtpc_tls_done(e, off % 2 == 0, "fuzz");
            continue;
        }
        if (ev == PST_SMTPC_EV_NEED_DATA) {
            struct pst_smtpc_dot d;
            pst_smtpc_dot_init(&d);
            pst_buf_reset(w);
            CHECK(pst_smtpc_data_encode(&d, in, len < 64 ? len : 64, w) == 0);
            CHECK(pst_smtpc_data_end(&d, w) == 0);
            pst_smtpc_data_sent(e);
            continue;
        }
        if (off >= len) {
            pst_smtpc_eof(e);
            CHECK(pst_smtpc_event(e) == PST_SMTPC_EV_DONE);
            continue;
        }
        const char *nl = memchr(in + off, '\n', len - off);
        size_t chunk = nl != NULL ? (size_t)(nl - (in + off)) + 1 : len - off;
        CHECK(pst_smtpc_input(e, in + off, chunk) == 0);
        off += chunk;
    }
    struct pst_smtpc_outcome o;
    pst_smtpc_session(e, &o);
    check_outcome(&o);
    for (size_t i = 0; i < c.nrcpts; i++) {
        struct pst_smtpc_outcome ro;
        pst_smtpc_rcpt_outcome(e, i, &ro);
        check_outcome(&ro);
        if (ro.status == PST_SMTPC_OK)
            CHECK(o.status == PST_SMTPC_OK);
    }
    pst_buf_free(w);
    pst_smtpc_free(e);
}

/* The dot-stuffer against the server's DATA parser (lib/core/smtp): what
 * we send ends exactly at our ".\r\n", has no bare CR or LF, and
 * unstuffs to the input with every line end made CRLF and the last line
 * ended. */
static void dot_roundtrip(const uint8_t *data, size_t size)
{
    struct pst_buf *enc = pst_buf_new(2 * size + 16);
    struct pst_buf *want = pst_buf_new(2 * size + 16);
    struct pst_buf *got = pst_buf_new(2 * size + 16);
    if (enc == NULL || want == NULL || got == NULL)
        goto out;
    const char *in = (const char *)data;
    size_t cut = size > 0 ? data[0] % (size + 1) : 0;
    struct pst_smtpc_dot d;
    pst_smtpc_dot_init(&d);
    CHECK(pst_smtpc_data_encode(&d, in, cut, enc) == 0);
    CHECK(pst_smtpc_data_encode(&d, in + cut, size - cut, enc) == 0);
    CHECK(pst_smtpc_data_end(&d, enc) == 0);
    CHECK(d.out_bytes == pst_buf_len(enc));
    /* the expected message: CR, LF and CRLF each one line end */
    for (size_t i = 0; i < size; i++) {
        if (in[i] == '\r') {
            CHECK(pst_buf_add(want, "\r\n", 2) == 0);
            if (i + 1 < size && in[i + 1] == '\n')
                i++;
        } else if (in[i] == '\n') {
            CHECK(pst_buf_add(want, "\r\n", 2) == 0);
        } else {
            CHECK(pst_buf_addc(want, in[i]) == 0);
        }
    }
    size_t wl = pst_buf_len(want);
    if (wl > 0 && !(wl >= 2 && memcmp(pst_buf_data(want) + wl - 2, "\r\n", 2) == 0))
        CHECK(pst_buf_add(want, "\r\n", 2) == 0);
    struct pst_smtp_data sd;
    pst_smtp_data_init(&sd, PST_SMTP_DATA_DOT, 0);
    size_t used = 0;
    int rc = pst_smtp_data_feed(&sd, pst_buf_data(enc), pst_buf_len(enc), &used, got);
    CHECK(rc == 1 && used == pst_buf_len(enc) && sd.bare_eol == 0);
    CHECK(pst_buf_len(got) == pst_buf_len(want));
    CHECK(memcmp(pst_buf_data(got), pst_buf_data(want), pst_buf_len(want)) == 0);
out:
    pst_buf_free(enc);
    pst_buf_free(want);
    pst_buf_free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dot_roundtrip(data, size);
    int a[MAXR], b[MAXR], ra, rb;
    int na = parse_all((const char *)data, size, 0, a, &ra);
    int nb = parse_all((const char *)data, size, 1, b, &rb);
    if (na >= 0 && nb >= 0) {
        CHECK(na == nb && ra == rb);
        CHECK(memcmp(a, b, (size_t)na * sizeof(int)) == 0);
    }
    /* the one-shot form agrees with the first reply */
    struct pst_smtpc_reply r = {0};
    size_t used = 0;
    char why[PST_SMTPC_WHY_MAX];
    int rc = pst_smtpc_reply_parse((const char *)data, size, &used, &r, why, sizeof(why));
    if (rc == 1) {
        check_reply(&r);
        CHECK(na >= 1 && r.code == a[0] && used <= size);
        struct pst_smtpc_ext x;
        pst_smtpc_ehlo_parse(&r, &x);
        CHECK(x.size_max == 0 || (x.flags & PST_SMTPC_EXT_SIZE));
    } else {
        CHECK(rc == PST_ERR_AGAIN || rc == PST_ERR_SYNTAX || rc == PST_ERR_TOOBIG ||
              rc == PST_ERR_NOMEM);
    }
    pst_smtpc_reply_clear(&r);
    engine(data, size);
    return 0;
}
