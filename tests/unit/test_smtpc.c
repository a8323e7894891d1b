/*
 * test_smtpc.c - the SMTP client engine driven by scripted server replies:
 * exact transcripts (greeting, EHLO with and without PIPELINING, HELO
 * fallback, STARTTLS with plaintext injection, AUTH PLAIN and LOGIN, DSN
 * and SIZE parameters), failures at each stage, 421, partial RCPT
 * refusals, malformed and oversize replies, unexpected server data, and
 * the reply parser, EHLO keywords and dot-stuffing on their own.
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
#include "err.h"
#include "smtpc.h"

/* ---- the scripted server ---------------------------------------------- */

/* A script: the server's replies in order. "<EOF>" closes the
 * connection, "<TIMEOUT>" makes the driver give up, NULL ends the script
 * (the test fails if the engine still wants to read). */
struct run {
    struct pst_smtpc *e;
    struct pst_buf *ts; /* transcript: "C: line" and "S: line" */
    int tls_ok;         /* answer to NEED_TLS */
    const char *msg;    /* the message for NEED_DATA */
    int feed_bytewise;
    int leftover; /* replies not used */
};

static void add_lines(struct pst_buf *ts, const char *who, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t k = nl != NULL ? (size_t)(nl - (s + i)) + 1 : n - i;
        assert_int_equal(pst_buf_addstr(ts, who), 0);
        size_t line = k;
        if (line > 0 && s[i + line - 1] == '\n')
            line--;
        if (line > 0 && s[i + line - 1] == '\r')
            line--;
        assert_int_equal(pst_buf_add(ts, s + i, line), 0);
        assert_int_equal(pst_buf_addc(ts, '\n'), 0);
        i += k;
    }
}

static void run_engine(struct run *r, const char *const *replies)
{
    struct pst_buf *w = pst_buf_new_secret(1 << 24);
    size_t ri = 0;
    for (int guard = 0; guard < 1000; guard++) {
        pst_buf_reset(w);
        assert_int_equal(pst_smtpc_output(r->e, w), 0);
        if (pst_buf_len(w) > 0)
            add_lines(r->ts, "C: ", pst_buf_data(w), pst_buf_len(w));
        enum pst_smtpc_event ev = pst_smtpc_event(r->e);
        if (ev == PST_SMTPC_EV_DONE)
            break;
        if (ev == PST_SMTPC_EV_NEED_TLS) {
            pst_buf_addstr(r->ts, "<TLS>\n");
            pst_smtpc_tls_done(r->e, r->tls_ok, "handshake failure (test)");
            continue;
        }
        if (ev == PST_SMTPC_EV_NEED_DATA) {
            struct pst_smtpc_dot d;
            pst_smtpc_dot_init(&d);
            pst_buf_reset(w);
            const char *m = r->msg != NULL ? r->msg : "Subject: t\r\n\r\nbody\r\n";
            assert_int_equal(pst_smtpc_data_encode(&d, m, strlen(m), w), 0);
            assert_int_equal(pst_smtpc_data_end(&d, w), 0);
            add_lines(r->ts, "D: ", pst_buf_data(w), pst_buf_len(w));
            pst_smtpc_data_sent(r->e);
            continue;
        }
        const char *rep = replies[ri];
        if (rep == NULL)
            fail_msg("script ended while the engine waits for a reply:\n%s", pst_buf_data(r->ts));
        ri++;
        if (strcmp(rep, "<EOF>") == 0) {
            pst_buf_addstr(r->ts, "<EOF>\n");
            pst_smtpc_eof(r->e);
            continue;
        }
        if (strcmp(rep, "<TIMEOUT>") == 0) {
            pst_buf_addstr(r->ts, "<TIMEOUT>\n");
            pst_smtpc_fail(r->e, NULL, "timeout");
            continue;
        }
        add_lines(r->ts, "S: ", rep, strlen(rep));
        if (r->feed_bytewise) {
            for (size_t k = 0; rep[k] != '\0'; k++)
                assert_int_equal(pst_smtpc_input(r->e, rep + k, 1), 0);
        } else {
            assert_int_equal(pst_smtpc_input(r->e, rep, strlen(rep)), 0);
        }
    }
    for (; replies[ri] != NULL; ri++)
        r->leftover++;
    pst_buf_free(w);
}

static const struct pst_smtpc_rcpt two_rcpts[] = {
    {"alice@example.net", NULL, NULL},
    {"bob@example.net", NULL, NULL},
};

static struct pst_smtpc_config base_cfg(void)
{
    struct pst_smtpc_config c = {0};
    c.ehlo_name = "mx.example.org";
    c.sender = "sender@example.org";
    c.rcpts = two_rcpts;
    c.nrcpts = 2;
    c.size = 1234;
    c.tls = PST_SMTPC_TLS_NONE;
    return c;
}

static struct run *start(const struct pst_smtpc_config *c)
{
    struct run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    assert_int_equal(pst_smtpc_new(c, &r->e), 0);
    r->ts = pst_buf_new(1 << 24);
    r->tls_ok = 1;
    return r;
}

static void finish(struct run *r)
{
    pst_smtpc_free(r->e);
    pst_buf_free(r->ts);
    free(r);
}

static void want_ts(struct run *r, const char *want)
{
    if (strcmp(pst_buf_data(r->ts), want) != 0)
        fail_msg("transcript\ngot:\n%s\nwant:\n%s", pst_buf_data(r->ts), want);
}

static void want_outcome(const struct pst_smtpc_outcome *o, enum pst_smtpc_status st, int code,
                         const char *enh, enum pst_smtpc_stage stage, const char *text)
{
    if (o->status != st || o->code != code || strcmp(o->enh, enh) != 0 || o->stage != stage ||
        (text != NULL && strcmp(o->text, text) != 0))
        fail_msg("outcome got status %d code %d enh '%s' stage '%s' text '%s'\n"
                 "want status %d code %d enh '%s' stage '%s' text '%s'",
                 o->status, o->code, o->enh, pst_smtpc_stage_name(o->stage), o->text, st, code, enh,
                 pst_smtpc_stage_name(stage), text ? text : "(any)");
}

#define GREET "220 mx.example.net ESMTP\r\n"
#define EHLO_PIPE                                                                                  \
    "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"                \
    "250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n"
#define EHLO_PLAIN "250-mx.example.net\r\n250 SIZE\r\n"

/* ---- transcripts --------------------------------------------------------- */

static void test_pipelined_ok(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    const struct pst_smtpc_rcpt rc[] = {
        {"alice@example.net", "SUCCESS,FAILURE", "rfc822;alice@example.net"},
        {"bob@example.net", "NEVER", NULL}};
    c.rcpts = rc;
    c.body_8bit = 1;
    c.dsn_ret = "HDRS";
    c.dsn_envid = "Q123";
    struct run *r = start(&c);
    const char *s[] = {GREET,
                       EHLO_PIPE,
                       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n",
                       "250 2.0.0 Ok: queued as X\r\n",
                       "221 2.0.0 Bye\r\n",
                       NULL};
    run_engine(r, s);
    want_ts(r, "S: 220 mx.example.net ESMTP\n"
               "C: EHLO mx.example.org\n"
               "S: 250-mx.example.net\nS: 250-PIPELINING\nS: 250-SIZE 10240000\n"
               "S: 250-8BITMIME\nS: 250-ENHANCEDSTATUSCODES\nS: 250 DSN\n"
               "C: MAIL FROM:<sender@example.org> SIZE=1234 BODY=8BITMIME RET=HDRS ENVID=Q123\n"
               "C: RCPT TO:<alice@example.net> NOTIFY=SUCCESS,FAILURE "
               "ORCPT=rfc822;alice@example.net\n"
               "C: RCPT TO:<bob@example.net> NOTIFY=NEVER\n"
               "C: DATA\n"
               "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 250 2.1.5 Ok\nS: 354 go ahead\n"
               "D: Subject: t\nD: \nD: body\nD: .\n"
               "S: 250 2.0.0 Ok: queued as X\n"
               "C: QUIT\n"
               "S: 221 2.0.0 Bye\n");
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_OK, 250, "2.0.0", PST_SMTPC_STAGE_DOT, "250 2.0.0 Ok: queued as X");
    assert_int_equal(o.from_server, 1);
    for (size_t i = 0; i < 2; i++) {
        pst_smtpc_rcpt_outcome(r->e, i, &o);
        want_outcome(&o, PST_SMTPC_OK, 250, "2.0.0", PST_SMTPC_STAGE_DOT, NULL);
    }
    const struct pst_smtpc_ext *x = pst_smtpc_extensions(r->e);
    assert_int_equal(x->size_max, 10240000);
    assert_true(x->flags & PST_SMTPC_EXT_PIPELINING);
    finish(r);
}

static void test_one_by_one_bytewise(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.dsn_ret = "FULL"; /* no DSN offered: not passed */
    struct run *r = start(&c);
    r->feed_bytewise = 1;
    const char *s[] = {GREET,        EHLO_PLAIN,       "250 ok\r\n",  "250 ok\r\n", "250 ok\r\n",
                       "354 go\r\n", "250 queued\r\n", "221 bye\r\n", NULL};
    run_engine(r, s);
    want_ts(r, "S: 220 mx.example.net ESMTP\n"
               "C: EHLO mx.example.org\n"
               "S: 250-mx.example.net\nS: 250 SIZE\n"
               "C: MAIL FROM:<sender@example.org> SIZE=1234\n"
               "S: 250 ok\n"
               "C: RCPT TO:<alice@example.net>\n"
               "S: 250 ok\n"
               "C: RCPT TO:<bob@example.net>\n"
               "S: 250 ok\n"
               "C: DATA\n"
               "S: 354 go\n"
               "D: Subject: t\nD: \nD: body\nD: .\n"
               "S: 250 queued\n"
               "C: QUIT\n"
               "S: 221 bye\n");
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_OK, 250, "", PST_SMTPC_STAGE_DOT, "250 queued");
    finish(r);
}

static void test_helo_fallback(void **state)
{
    static const int codes[] = {500, 501, 502, 504};
    for (size_t k = 0; k < 4; k++) {
        struct pst_smtpc_config c = base_cfg();
        c.nrcpts = 1;
        c.body_8bit = 1; /* sent anyway, without BODY= */
        c.tls = PST_SMTPC_TLS_OPPORTUNISTIC;
        struct run *r = start(&c);
        char ehlo[64];
        snprintf(ehlo, sizeof(ehlo), "%d 5.5.1 what?\r\n", codes[k]);
        const char *s[] = {GREET,        ehlo,           "250 hi\r\n",  "250 ok\r\n", "250 ok\r\n",
                           "354 go\r\n", "250 done\r\n", "221 bye\r\n", NULL};
        run_engine(r, s);
        char want[1024];
        snprintf(want, sizeof(want),
                 "S: 220 mx.example.net ESMTP\n"
                 "C: EHLO mx.example.org\n"
                 "S: %d 5.5.1 what?\n"
                 "C: HELO mx.example.org\n"
                 "S: 250 hi\n"
                 "C: MAIL FROM:<sender@example.org>\n"
                 "S: 250 ok\n"
                 "C: RCPT TO:<alice@example.net>\n"
                 "S: 250 ok\n"
                 "C: DATA\n"
                 "S: 354 go\n"
                 "D: Subject: t\nD: \nD: body\nD: .\n"
                 "S: 250 done\n"
                 "C: QUIT\n"
                 "S: 221 bye\n",
                 codes[k]);
        want_ts(r, want);
        struct pst_smtpc_info info;
        pst_smtpc_info(r->e, &info);
        assert_int_equal(info.helo, 1);
        assert_int_equal(info.tls_not_offered, 1);
        assert_int_equal(pst_smtpc_extensions(r->e)->flags, 0);
        finish(r);
    }
}

static void test_starttls_discards_plaintext(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.nrcpts = 1;
    c.tls = PST_SMTPC_TLS_OPPORTUNISTIC;
    struct run *r = start(&c);
    const char *s[] = {GREET, "250-mx.example.net\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                       /* a man in the middle appends a fake EHLO reply */
                       "220 2.0.0 Ready to start TLS\r\n250-evil\r\n250 AUTH PLAIN\r\n",
                       "250-mx.example.net\r\n250 8BITMIME\r\n", "250 ok\r\n", "250 ok\r\n",
                       "354 go\r\n", "250 done\r\n", "221 bye\r\n", NULL};
    run_engine(r, s);
    want_ts(r, "S: 220 mx.example.net ESMTP\n"
               "C: EHLO mx.example.org\n"
               "S: 250-mx.example.net\nS: 250-PIPELINING\nS: 250 STARTTLS\n"
               "C: STARTTLS\n"
               "S: 220 2.0.0 Ready to start TLS\nS: 250-evil\nS: 250 AUTH PLAIN\n"
               "<TLS>\n"
               "C: EHLO mx.example.org\n"
               "S: 250-mx.example.net\nS: 250 8BITMIME\n"
               /* no PIPELINING after TLS: the old extensions are gone */
               "C: MAIL FROM:<sender@example.org>\n"
               "S: 250 ok\n"
               "C: RCPT TO:<alice@example.net>\n"
               "S: 250 ok\n"
               "C: DATA\n"
               "S: 354 go\n"
               "D: Subject: t\nD: \nD: body\nD: .\n"
               "S: 250 done\n"
               "C: QUIT\n"
               "S: 221 bye\n");
    struct pst_smtpc_info info;
    pst_smtpc_info(r->e, &info);
    assert_int_equal(info.tls, 1);
    assert_int_equal(info.discarded, strlen("250-evil\r\n250 AUTH PLAIN\r\n"));
    assert_int_equal(pst_smtpc_extensions(r->e)->flags, PST_SMTPC_EXT_8BITMIME);
    finish(r);
}

static void test_starttls_required_not_offered(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.tls = PST_SMTPC_TLS_REQUIRED;
    struct run *r = start(&c);
    const char *s[] = {GREET, EHLO_PIPE, "221 bye\r\n", NULL};
    run_engine(r, s);
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.7.10", PST_SMTPC_STAGE_EHLO,
                 "TLS is required and the server does not offer STARTTLS");
    assert_int_equal(o.from_server, 0);
    assert_non_null(strstr(pst_buf_data(r->ts), "C: QUIT\n"));
    assert_null(strstr(pst_buf_data(r->ts), "MAIL FROM"));
    pst_smtpc_rcpt_outcome(r->e, 1, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.7.10", PST_SMTPC_STAGE_EHLO, NULL);
    struct pst_smtpc_info info;
    pst_smtpc_info(r->e, &info);
    assert_int_equal(info.tls_not_offered, 1);
    finish(r);
}

static void test_starttls_refused(void **state)
{
    /* opportunistic: 454 to STARTTLS, go on in plaintext */
    struct pst_smtpc_config c = base_cfg();
    c.nrcpts = 1;
    c.tls = PST_SMTPC_TLS_OPPORTUNISTIC;
    struct run *r = start(&c);
    const char *s[] = {GREET,
                       "250-x\r\n250 STARTTLS\r\n",
                       "454 4.7.0 TLS not available\r\n",
                       "250 ok\r\n",
                       "250 ok\r\n",
                       "354 go\r\n",
                       "250 done\r\n",
                       "221 bye\r\n",
                       NULL};
    run_engine(r, s);
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_OK, 250, "", PST_SMTPC_STAGE_DOT, "250 done");
    finish(r);
    /* required: the same refusal is a temporary failure */
    c.tls = PST_SMTPC_TLS_REQUIRED;
    r = start(&c);
    const char *s2[] = {GREET, "250-x\r\n250 STARTTLS\r\n", "554 5.7.0 no TLS for you\r\n",
                        "221 bye\r\n", NULL};
    run_engine(r, s2);
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 554, "5.7.0", PST_SMTPC_STAGE_STARTTLS,
                 "554 5.7.0 no TLS for you");
    finish(r);
}

static void test_tls_handshake_failure(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.tls = PST_SMTPC_TLS_OPPORTUNISTIC;
    struct run *r = start(&c);
    r->tls_ok = 0;
    const char *s[] = {GREET, "250-x\r\n250 STARTTLS\r\n", "220 go\r\n", NULL};
    run_engine(r, s);
    want_ts(r, "S: 220 mx.example.net ESMTP\nC: EHLO mx.example.org\nS: 250-x\nS: 250 STARTTLS\n"
               "C: STARTTLS\nS: 220 go\n<TLS>\n");
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.7.5", PST_SMTPC_STAGE_TLS,
                 "TLS handshake failed: handshake failure (test)");
    finish(r);
}

static void test_implicit_tls_auth_plain(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.nrcpts = 1;
    c.tls = PST_SMTPC_TLS_REQUIRED;
    c.tls_active = 1;
    c.auth_user = "user";
    c.auth_pass = "pass";
    struct run *r = start(&c);
    const char *s[] = {GREET,
                       "250-x\r\n250-AUTH LOGIN PLAIN\r\n250 STARTTLS\r\n",
                       "235 2.7.0 ok\r\n",
                       "250 ok\r\n",
                       "250 ok\r\n",
                       "354 go\r\n",
                       "250 done\r\n",
                       "221 bye\r\n",
                       NULL};
    run_engine(r, s);
    /* base64("\0user\0pass") */
    assert_non_null(strstr(pst_buf_data(r->ts), "S: 250 STARTTLS\nC: AUTH PLAIN AHVzZXIAcGFzcw==\n"
                                                "S: 235 2.7.0 ok\nC: MAIL FROM:"));
    struct pst_smtpc_info info;
    pst_smtpc_info(r->e, &info);
    assert_int_equal(info.auth, 1);
    finish(r);
}

static void test_auth_login_and_failure(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.nrcpts = 1;
    c.auth_user = "user";
    c.auth_pass = "pass";
    c.auth_plaintext_ok = 1;
    struct run *r = start(&c);
    const char *s[] = {GREET,
                       "250-x\r\n250 AUTH=LOGIN\r\n",
                       "334 VXNlcm5hbWU6\r\n",
                       "334 UGFzc3dvcmQ6\r\n",
                       "535 5.7.8 Authentication credentials invalid\r\n",
                       "221 bye\r\n",
                       NULL};
    run_engine(r, s);
    want_ts(r, "S: 220 mx.example.net ESMTP\nC: EHLO mx.example.org\nS: 250-x\n"
               "S: 250 AUTH=LOGIN\nC: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: dXNlcg==\n"
               "S: 334 UGFzc3dvcmQ6\nC: cGFzcw==\n"
               "S: 535 5.7.8 Authentication credentials invalid\nC: QUIT\nS: 221 bye\n");
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    /* refused credentials defer the mail, they do not bounce it */
    want_outcome(&o, PST_SMTPC_TEMP, 535, "5.7.8", PST_SMTPC_STAGE_AUTH,
                 "535 5.7.8 Authentication credentials invalid");
    pst_smtpc_rcpt_outcome(r->e, 0, &o);
    assert_int_equal(o.status, PST_SMTPC_TEMP);
    finish(r);
}

static void test_auth_never_in_plaintext(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.auth_user = "user";
    c.auth_pass = "secret";
    struct run *r = start(&c);
    const char *s[] = {GREET, "250-x\r\n250 AUTH PLAIN\r\n", "221 bye\r\n", NULL};
    run_engine(r, s);
    assert_null(strstr(pst_buf_data(r->ts), "AUTH PLAIN A"));
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.7.0", PST_SMTPC_STAGE_AUTH,
                 "not sending credentials over a connection without TLS");
    finish(r);
    /* with TLS but no PLAIN/LOGIN offered */
    c.tls_active = 1;
    r = start(&c);
    const char *s2[] = {GREET, "250-x\r\n250 AUTH CRAM-MD5\r\n", "221 bye\r\n", NULL};
    run_engine(r, s2);
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.7.0", PST_SMTPC_STAGE_AUTH, NULL);
    assert_int_equal(pst_smtpc_extensions(r->e)->auth, PST_SMTPC_AUTH_OTHER);
    finish(r);
}

static void test_rcpt_partial_reject(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    struct run *r = start(&c);
    const char *s[] = {GREET,
                       EHLO_PIPE,
                       "250 2.1.0 Ok\r\n550-5.1.1 <alice@example.net>: no\r\n"
                       "550 5.1.1 such user\r\n250 2.1.5 Ok\r\n354 go\r\n",
                       "250 2.0.0 queued\r\n",
                       "221 bye\r\n",
                       NULL};
    run_engine(r, s);
    struct pst_smtpc_outcome o;
    pst_smtpc_rcpt_outcome(r->e, 0, &o);
    want_outcome(&o, PST_SMTPC_PERM, 550, "5.1.1", PST_SMTPC_STAGE_RCPT,
                 "550 5.1.1 <alice@example.net>: no such user");
    pst_smtpc_rcpt_outcome(r->e, 1, &o);
    want_outcome(&o, PST_SMTPC_OK, 250, "2.0.0", PST_SMTPC_STAGE_DOT, "250 2.0.0 queued");
    pst_smtpc_session(r->e, &o);
    assert_int_equal(o.status, PST_SMTPC_OK);
    finish(r);
}

static void test_all_rcpts_refused(void **state)
{
    /* pipelined: DATA refused as expected */
    struct pst_smtpc_config c = base_cfg();
    struct run *r = start(&c);
    const char *s[] = {GREET, EHLO_PIPE,
                       "250 Ok\r\n450 4.2.0 greylisted\r\n550 5.1.1 unknown\r\n"
                       "554 5.5.1 no valid recipients\r\n",
                       "221 bye\r\n", NULL};
    run_engine(r, s);
    assert_null(strstr(pst_buf_data(r->ts), "D: "));
    struct pst_smtpc_outcome o;
    pst_smtpc_rcpt_outcome(r->e, 0, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 450, "4.2.0", PST_SMTPC_STAGE_RCPT, "450 4.2.0 greylisted");
    pst_smtpc_rcpt_outcome(r->e, 1, &o);
    want_outcome(&o, PST_SMTPC_PERM, 550, "5.1.1", PST_SMTPC_STAGE_RCPT, NULL);
    /* one refusal is temporary: the session is too, with that reply */
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 450, "4.2.0", PST_SMTPC_STAGE_RCPT, "450 4.2.0 greylisted");
    assert_int_equal(o.from_server, 1);
    finish(r);
    /* a server that says 354 anyway gets an empty message */
    r = start(&c);
    const char *s2[] = {GREET,
                        EHLO_PIPE,
                        "250 Ok\r\n550 5.1.1 a\r\n550 5.1.1 b\r\n354 go ahead\r\n",
                        "554 5.5.1 no recipients\r\n",
                        "221 bye\r\n",
                        NULL};
    run_engine(r, s2);
    assert_non_null(strstr(pst_buf_data(r->ts), "S: 354 go ahead\nC: .\n"
                                                "S: 554 5.5.1 no recipients\nC: QUIT\n"));
    pst_smtpc_rcpt_outcome(r->e, 1, &o);
    want_outcome(&o, PST_SMTPC_PERM, 550, "5.1.1", PST_SMTPC_STAGE_RCPT, "550 5.1.1 b");
    /* every refusal permanent: so is the session, with the first one */
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_PERM, 550, "5.1.1", PST_SMTPC_STAGE_RCPT, "550 5.1.1 a");
    finish(r);
    /* one by one: no DATA at all */
    c.nrcpts = 1;
    r = start(&c);
    const char *s3[] = {GREET,         EHLO_PLAIN, "250 ok\r\n", "550 5.1.1 unknown\r\n",
                        "221 bye\r\n", NULL};
    run_engine(r, s3);
    assert_null(strstr(pst_buf_data(r->ts), "DATA"));
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_PERM, 550, "5.1.1", PST_SMTPC_STAGE_RCPT, "550 5.1.1 unknown");
    finish(r);
}

/* A failure at each stage: the session outcome and whether QUIT is sent. */
struct stage_case {
    const char *name;
    int pipelining;
    const char *replies[8];
    enum pst_smtpc_status status;
    int code;
    const char *enh;
    enum pst_smtpc_stage stage;
    int quit;
};

static const struct stage_case stage_cases[] = {
    {"greeting 554",
     0,
     {"554 5.3.2 go away\r\n", "221 bye\r\n"},
     PST_SMTPC_PERM,
     554,
     "5.3.2",
     PST_SMTPC_STAGE_GREETING,
     1},
    {"greeting 421",
     0,
     {"421 4.3.2 busy\r\n"},
     PST_SMTPC_TEMP,
     421,
     "4.3.2",
     PST_SMTPC_STAGE_GREETING,
     0},
    {"greeting 250 is not a greeting",
     0,
     {"250 hi\r\n", "221 bye\r\n"},
     PST_SMTPC_TEMP,
     250,
     "",
     PST_SMTPC_STAGE_GREETING,
     1},
    {"EHLO 421",
     0,
     {GREET, "421 4.4.2 timeout\r\n"},
     PST_SMTPC_TEMP,
     421,
     "4.4.2",
     PST_SMTPC_STAGE_EHLO,
     0},
    {"EHLO 550",
     0,
     {GREET, "550 5.7.1 no\r\n", "221 bye\r\n"},
     PST_SMTPC_PERM,
     550,
     "5.7.1",
     PST_SMTPC_STAGE_EHLO,
     1},
    {"HELO 550",
     0,
     {GREET, "502 no\r\n", "550 no helo\r\n", "221 bye\r\n"},
     PST_SMTPC_PERM,
     550,
     "",
     PST_SMTPC_STAGE_HELO,
     1},
    {"MAIL 451",
     0,
     {GREET, EHLO_PLAIN, "451 4.3.0 try later\r\n", "221 bye\r\n"},
     PST_SMTPC_TEMP,
     451,
     "4.3.0",
     PST_SMTPC_STAGE_MAIL,
     1},
    {"MAIL 553 pipelined",
     1,
     {GREET, EHLO_PIPE,
      "553 5.1.8 bad sender\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
      "503 5.5.1 need RCPT\r\n",
      "221 bye\r\n"},
     PST_SMTPC_PERM,
     553,
     "5.1.8",
     PST_SMTPC_STAGE_MAIL,
     1},
    {"RCPT 421",
     0,
     {GREET, EHLO_PLAIN, "250 ok\r\n", "421 4.7.0 bye\r\n"},
     PST_SMTPC_TEMP,
     421,
     "4.7.0",
     PST_SMTPC_STAGE_RCPT,
     0},
    {"RCPT 421 pipelined",
     1,
     {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n421 4.7.0 closing\r\n"},
     PST_SMTPC_TEMP,
     421,
     "4.7.0",
     PST_SMTPC_STAGE_RCPT,
     0},
    {"DATA 554",
     0,
     {GREET, EHLO_PLAIN, "250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "554 5.6.0 no data\r\n",
      "221 bye\r\n"},
     PST_SMTPC_PERM,
     554,
     "5.6.0",
     PST_SMTPC_STAGE_DATA,
     1},
    {"DATA 451 pipelined",
     1,
     {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n250 ok\r\n451 4.3.0 later\r\n", "221 bye\r\n"},
     PST_SMTPC_TEMP,
     451,
     "4.3.0",
     PST_SMTPC_STAGE_DATA,
     1},
    {"end of data 552",
     1,
     {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "552 5.3.4 message too big\r\n",
      "221 bye\r\n"},
     PST_SMTPC_PERM,
     552,
     "5.3.4",
     PST_SMTPC_STAGE_DOT,
     1},
    {"end of data 451",
     1,
     {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "451 4.3.0 disk full\r\n",
      "221 bye\r\n"},
     PST_SMTPC_TEMP,
     451,
     "4.3.0",
     PST_SMTPC_STAGE_DOT,
     1},
    {"end of data 421",
     1,
     {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "421 4.3.0 shutting down\r\n"},
     PST_SMTPC_TEMP,
     421,
     "4.3.0",
     PST_SMTPC_STAGE_DOT,
     0},
    {"connection closed at RCPT",
     0,
     {GREET, EHLO_PLAIN, "250 ok\r\n", "<EOF>"},
     PST_SMTPC_TEMP,
     0,
     "4.4.2",
     PST_SMTPC_STAGE_RCPT,
     0},
    {"timeout after DATA",
     0,
     {GREET, EHLO_PLAIN, "250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "<TIMEOUT>"},
     PST_SMTPC_TEMP,
     0,
     "4.4.2",
     PST_SMTPC_STAGE_DATA,
     0},
    {"timeout at end of data",
     1,
     {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "<TIMEOUT>"},
     PST_SMTPC_TEMP,
     0,
     "4.4.2",
     PST_SMTPC_STAGE_DOT,
     0},
    {"no reply to QUIT is fine",
     1,
     {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "250 2.0.0 ok\r\n", "<EOF>"},
     PST_SMTPC_OK,
     250,
     "2.0.0",
     PST_SMTPC_STAGE_DOT,
     1},
    {"QUIT timeout after success",
     1,
     {GREET, EHLO_PIPE, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "250 2.0.0 ok\r\n",
      "<TIMEOUT>"},
     PST_SMTPC_OK,
     250,
     "2.0.0",
     PST_SMTPC_STAGE_DOT,
     1},
};

static void test_stage_table(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(stage_cases) / sizeof(stage_cases[0]); i++) {
        const struct stage_case *t = &stage_cases[i];
        struct pst_smtpc_config c = base_cfg();
        struct run *r = start(&c);
        run_engine(r, t->replies);
        struct pst_smtpc_outcome o;
        pst_smtpc_session(r->e, &o);
        int quit = strstr(pst_buf_data(r->ts), "C: QUIT\n") != NULL;
        int pipe = strstr(pst_buf_data(r->ts), "C: DATA\nS: ") == NULL &&
                   strstr(pst_buf_data(r->ts), "C: DATA\n") != NULL;
        const char *greet_250 = "250 hi";
        if (o.status != t->status || o.code != t->code || strcmp(o.enh, t->enh) != 0 ||
            o.stage != t->stage || quit != t->quit || r->leftover != 0 ||
            (strcmp(t->name, "DATA 554") == 0 && pipe)) {
            print_error("%s: got status %d code %d enh '%s' stage '%s' quit %d leftover %d "
                        "text '%s'\n",
                        t->name, o.status, o.code, o.enh, pst_smtpc_stage_name(o.stage), quit,
                        r->leftover, o.text);
            print_error("  want status %d code %d enh '%s' stage '%s' quit %d\n%s", t->status,
                        t->code, t->enh, pst_smtpc_stage_name(t->stage), t->quit,
                        pst_buf_data(r->ts));
            bad++;
        }
        (void)greet_250;
        finish(r);
    }
    assert_int_equal(bad, 0);
}

/* A greeting other than 220 fails: "250 hi" is not a greeting, so the
 * session must not go on to EHLO. */
static void test_greeting_not_220(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    struct run *r = start(&c);
    const char *s[] = {"250 hi\r\n", "221 bye\r\n", NULL};
    run_engine(r, s);
    assert_null(strstr(pst_buf_data(r->ts), "EHLO"));
    finish(r);
}

static void test_multiline_greeting_and_reply_text(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.nrcpts = 1;
    struct run *r = start(&c);
    const char *s[] = {"220-mx.example.net ESMTP\r\n220-no UCE\r\n220 welcome\r\n",
                       "250-mx.example.net\r\n250-PIPELINING\r\n250 X-FOO bar\r\n",
                       "250 ok\r\n250 ok\r\n354 go\r\n",
                       "550-5.7.1 rejected\r\n550-5.7.1 see\n550 5.7.1 https://example.net/why\r\n",
                       "221 bye\r\n",
                       NULL};
    run_engine(r, s);
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_PERM, 550, "5.7.1", PST_SMTPC_STAGE_DOT,
                 "550 5.7.1 rejected see https://example.net/why");
    pst_smtpc_rcpt_outcome(r->e, 0, &o);
    want_outcome(&o, PST_SMTPC_PERM, 550, "5.7.1", PST_SMTPC_STAGE_DOT, NULL);
    finish(r);
}

static void test_malformed_reply(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    struct run *r = start(&c);
    const char *s[] = {GREET, "250-ok\r\nHELLO\x01 there\r\n", NULL};
    run_engine(r, s);
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.5.0", PST_SMTPC_STAGE_EHLO,
                 "protocol error: malformed reply line: 'HELLO\\x01 there'");
    assert_null(strstr(pst_buf_data(r->ts), "QUIT"));
    finish(r);
    /* a code that changes within a reply */
    r = start(&c);
    const char *s2[] = {GREET, "250-ok\r\n251 ok\r\n", NULL};
    run_engine(r, s2);
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.5.0", PST_SMTPC_STAGE_EHLO,
                 "protocol error: reply code changed within a reply: '251 ok'");
    finish(r);
}

static void test_oversize_replies(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    /* one line over 4096 octets, fed in pieces */
    struct run *r = start(&c);
    char *big = malloc(5000);
    memcpy(big, "250-", 4);
    memset(big + 4, 'A', 4994);
    big[4998] = '\n';
    big[4999] = '\0';
    const char *s[] = {GREET, big, NULL};
    run_engine(r, s);
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.5.0", PST_SMTPC_STAGE_EHLO, NULL);
    assert_non_null(strstr(o.text, "reply line longer than 4096 octets"));
    finish(r);
    free(big);
    /* endless multi-line reply: more than 200 lines */
    r = start(&c);
    struct pst_buf *many = pst_buf_new(1 << 20);
    for (int i = 0; i < 300; i++)
        pst_buf_addstr(many, "250-X\r\n");
    const char *s2[] = {GREET, pst_buf_data(many), NULL};
    run_engine(r, s2);
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.5.0", PST_SMTPC_STAGE_EHLO,
                 "protocol error: reply has too many lines: '250-X'");
    finish(r);
    /* more than 64 KiB in fewer than 200 lines */
    r = start(&c);
    pst_buf_reset(many);
    for (int i = 0; i < 20; i++) {
        pst_buf_addstr(many, "250-");
        for (int k = 0; k < 4000; k++)
            pst_buf_addc(many, 'B');
        pst_buf_addstr(many, "\r\n");
    }
    const char *s3[] = {GREET, pst_buf_data(many), NULL};
    run_engine(r, s3);
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.5.0", PST_SMTPC_STAGE_EHLO,
                 "protocol error: reply longer than 65536 octets");
    pst_buf_free(many);
    finish(r);
}

static void test_unexpected_data(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    /* the greeting and a reply to a command not yet sent */
    struct run *r = start(&c);
    const char *s[] = {"220 hi\r\n250 early\r\n", NULL};
    run_engine(r, s);
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.5.0", PST_SMTPC_STAGE_EHLO,
                 "protocol error: server sent data when no reply was due: '250 early\\x0d\\x0a'");
    finish(r);
    /* extra replies in a non-pipelined exchange */
    r = start(&c);
    const char *s2[] = {GREET, EHLO_PLAIN, "250 ok\r\n250 ok\r\n", NULL};
    run_engine(r, s2);
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.5.0", PST_SMTPC_STAGE_RCPT, NULL);
    finish(r);
    /* input while the driver sends the message: a driver error */
    r = start(&c);
    assert_int_equal(pst_smtpc_input(r->e, GREET, strlen(GREET)), 0);
    struct pst_buf *w = pst_buf_new(4096);
    pst_smtpc_output(r->e, w);
    assert_string_equal(pst_buf_data(w), "EHLO mx.example.org\r\n");
    pst_smtpc_input(r->e, EHLO_PIPE, strlen(EHLO_PIPE));
    pst_buf_reset(w);
    pst_smtpc_output(r->e, w);
    const char *rr = "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n";
    pst_smtpc_input(r->e, rr, strlen(rr));
    assert_int_equal(pst_smtpc_event(r->e), PST_SMTPC_EV_NEED_DATA);
    assert_int_equal(pst_smtpc_wait_stage(r->e), PST_SMTPC_STAGE_DATA_BLOCK);
    assert_int_equal(pst_smtpc_input(r->e, "250 x\r\n", 7), 0);
    assert_int_equal(pst_smtpc_event(r->e), PST_SMTPC_EV_DONE);
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_TEMP, 0, "4.5.0", PST_SMTPC_STAGE_DATA_BLOCK, NULL);
    pst_buf_free(w);
    finish(r);
}

static void test_size_refused(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.size = 20000000;
    struct run *r = start(&c);
    const char *s[] = {GREET, EHLO_PIPE, "221 bye\r\n", NULL};
    run_engine(r, s);
    assert_null(strstr(pst_buf_data(r->ts), "MAIL"));
    struct pst_smtpc_outcome o;
    pst_smtpc_session(r->e, &o);
    want_outcome(&o, PST_SMTPC_PERM, 552, "5.3.4", PST_SMTPC_STAGE_BEFORE_MAIL,
                 "message size 20000000 exceeds the server's limit of 10240000 octets");
    assert_int_equal(o.from_server, 0);
    pst_smtpc_rcpt_outcome(r->e, 0, &o);
    assert_int_equal(o.status, PST_SMTPC_PERM);
    finish(r);
    /* SIZE 0: no limit */
    r = start(&c);
    const char *s2[] = {GREET,
                        "250-x\r\n250-PIPELINING\r\n250 SIZE 0\r\n",
                        "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
                        "250 ok\r\n",
                        "221 bye\r\n",
                        NULL};
    run_engine(r, s2);
    assert_non_null(strstr(pst_buf_data(r->ts), "MAIL FROM:<sender@example.org> SIZE=20000000"));
    finish(r);
}

static void test_smtputf8(void **state)
{
    const struct pst_smtpc_rcpt rc[] = {{"j\xc3\xb6rg@example.net", NULL, NULL}};
    struct pst_smtpc_config c = base_cfg();
    c.rcpts = rc;
    c.nrcpts = 1;
    struct run *r = start(&c);
    const char *s[] = {GREET, EHLO_PIPE, "221 bye\r\n", NULL};
    run_engine(r, s);
    struct pst_smtpc_outcome o;
    pst_smtpc_rcpt_outcome(r->e, 0, &o);
    want_outcome(&o, PST_SMTPC_PERM, 553, "5.6.7", PST_SMTPC_STAGE_BEFORE_MAIL, NULL);
    assert_non_null(strstr(o.text, "SMTPUTF8"));
    finish(r);
    /* offered: the parameter is sent */
    r = start(&c);
    const char *s2[] = {GREET,
                        "250-x\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n",
                        "250 ok\r\n250 ok\r\n354 go\r\n",
                        "250 ok\r\n",
                        "221 bye\r\n",
                        NULL};
    run_engine(r, s2);
    assert_non_null(strstr(pst_buf_data(r->ts), "C: MAIL FROM:<sender@example.org> SMTPUTF8\n"
                                                "C: RCPT TO:<j\xc3\xb6rg@example.net>\n"));
    finish(r);
}

static void test_data_stuffing_in_session(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.nrcpts = 1;
    struct run *r = start(&c);
    r->msg = "Subject: dots\r\n\r\n.\r\n..two\r\n.x\r\nlast line without CRLF";
    const char *s[] = {GREET,        EHLO_PIPE,     "250 ok\r\n250 ok\r\n354 go\r\n",
                       "250 ok\r\n", "221 bye\r\n", NULL};
    run_engine(r, s);
    assert_non_null(strstr(pst_buf_data(r->ts), "D: Subject: dots\nD: \nD: ..\nD: ...two\n"
                                                "D: ..x\nD: last line without CRLF\nD: .\n"));
    finish(r);
}

static void test_config_checked(void **state)
{
    struct pst_smtpc *e = NULL;
    struct pst_smtpc_config c = base_cfg();
    c.sender = "a@b\r\nRCPT TO:<x@y>";
    assert_int_equal(pst_smtpc_new(&c, &e), PST_ERR_INVAL);
    c = base_cfg();
    const struct pst_smtpc_rcpt bad[] = {{"a@b> NOTIFY=NEVER", NULL, NULL}};
    c.rcpts = bad;
    c.nrcpts = 1;
    assert_int_equal(pst_smtpc_new(&c, &e), PST_ERR_INVAL);
    const struct pst_smtpc_rcpt badp[] = {{"a@b", "NEVER ORCPT=x", NULL}};
    c.rcpts = badp;
    assert_int_equal(pst_smtpc_new(&c, &e), PST_ERR_INVAL);
    c = base_cfg();
    c.nrcpts = 0;
    assert_int_equal(pst_smtpc_new(&c, &e), PST_ERR_INVAL);
    c = base_cfg();
    c.ehlo_name = "";
    assert_int_equal(pst_smtpc_new(&c, &e), PST_ERR_INVAL);
    c = base_cfg();
    c.auth_user = "u";
    assert_int_equal(pst_smtpc_new(&c, &e), PST_ERR_INVAL);
    c = base_cfg();
    c.sender = "";
    assert_int_equal(pst_smtpc_new(&c, &e), 0);
    assert_non_null(e);
    pst_smtpc_free(e);
}

static void test_null_sender(void **state)
{
    struct pst_smtpc_config c = base_cfg();
    c.sender = "";
    c.nrcpts = 1;
    c.size = 0;
    struct run *r = start(&c);
    const char *s[] = {GREET,        EHLO_PIPE,     "250 ok\r\n250 ok\r\n354 go\r\n",
                       "250 ok\r\n", "221 bye\r\n", NULL};
    run_engine(r, s);
    assert_non_null(strstr(pst_buf_data(r->ts), "C: MAIL FROM:<>\n"));
    finish(r);
}

/* ---- the reply parser on its own ----------------------------------------- */

struct reply_case {
    const char *name;
    const char *in;
    int rc;
    int code;
    const char *enh;
    const char *text;
    size_t used; /* 0: the whole input */
};

static const struct reply_case reply_cases[] = {
    {"one line", "250 ok\r\n", 1, 250, "", "ok", 0},
    {"bare code", "250\r\n", 1, 250, "", "", 0},
    {"bare LF accepted", "250 ok\n", 1, 250, "", "ok", 0},
    {"enhanced", "550 5.1.1 unknown\r\n", 1, 550, "5.1.1", "5.1.1 unknown", 0},
    {"enhanced alone", "250 2.0.0\r\n", 1, 250, "2.0.0", "2.0.0", 0},
    {"enhanced of another class", "550 4.1.1 x\r\n", 1, 550, "", "4.1.1 x", 0},
    {"enhanced too many digits", "550 5.1111.1 x\r\n", 1, 550, "", "5.1111.1 x", 0},
    {"enhanced glued", "550 5.1.1x\r\n", 1, 550, "", "5.1.1x", 0},
    {"multi-line", "250-a\r\n250-b\r\n250 c\r\n", 1, 250, "", "a\nb\nc", 0},
    {"multi-line empty continuation", "250-\r\n250 c\r\n", 1, 250, "", "\nc", 0},
    {"stops after the reply", "250 a\r\n250 b\r\n", 1, 250, "", "a", 7},
    {"control octets", "250 a\tb\rc\x7f\r\n", 1, 250, "", "a?b?c?", 0},
    {"8-bit text kept", "250 \xc3\xa9t\xc3\xa9\r\n", 1, 250, "", "\xc3\xa9t\xc3\xa9", 0},
    {"incomplete", "250-a\r\n250 b", PST_ERR_AGAIN, 0, "", NULL, 0},
    {"empty", "", PST_ERR_AGAIN, 0, "", NULL, 0},
    {"no code", "hello\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
    {"code 199", "199 x\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
    {"code 600", "600 x\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
    {"code 260", "260 x\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
    {"two digits", "25\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
    {"bad separator", "250x\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
    {"code changes", "250-a\r\n550 b\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
    {"NUL", "250 a\0b\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
    {"empty line", "\r\n", PST_ERR_SYNTAX, 0, "", NULL, 0},
};

static void test_reply_table(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
        const struct reply_case *t = &reply_cases[i];
        size_t len = strlen(t->in);
        if (strcmp(t->name, "NUL") == 0)
            len = 9;
        struct pst_smtpc_reply r = {0};
        size_t used = 0;
        char why[PST_SMTPC_WHY_MAX] = "";
        int rc = pst_smtpc_reply_parse(t->in, len, &used, &r, why, sizeof(why));
        size_t want_used = t->used ? t->used : len;
        int ok = rc == t->rc;
        if (ok && rc == 1)
            ok = r.code == t->code && strcmp(r.enh, t->enh) == 0 && strcmp(r.text, t->text) == 0 &&
                 used == want_used;
        if (ok && rc < 0)
            ok = why[0] != '\0';
        if (!ok) {
            print_error("%s: got rc %d code %d enh '%s' text '%s' used %zu why '%s'\n", t->name, rc,
                        r.code, r.enh, r.text ? r.text : "", used, why);
            print_error("  want rc %d code %d enh '%s' text '%s' used %zu\n", t->rc, t->code,
                        t->enh, t->text ? t->text : "", want_used);
            bad++;
        }
        pst_smtpc_reply_clear(&r);
    }
    assert_int_equal(bad, 0);
}

/* Every split of a pipelined group of replies gives the same replies. */
static void test_reply_splits(void **state)
{
    const char *in = "250-a\r\n250 2.1.0 b\r\n550 5.1.1 c\r\n354 d\r\n";
    size_t len = strlen(in);
    for (size_t cut = 0; cut <= len; cut++) {
        struct pst_smtpc_rparser *p = pst_smtpc_rparser_new();
        int codes[8], n = 0;
        const char *parts[2] = {in, in + cut};
        size_t lens[2] = {cut, len - cut};
        for (int k = 0; k < 2; k++) {
            size_t off = 0;
            while (off < lens[k]) {
                struct pst_smtpc_reply r = {0};
                size_t used;
                char why[PST_SMTPC_WHY_MAX];
                int rc = pst_smtpc_rparser_feed(p, parts[k] + off, lens[k] - off, &used, &r, why,
                                                sizeof(why));
                assert_true(rc >= 0);
                off += used;
                if (rc == 1)
                    codes[n++] = r.code;
                pst_smtpc_reply_clear(&r);
            }
        }
        assert_int_equal(n, 3);
        assert_int_equal(codes[0], 250);
        assert_int_equal(codes[1], 550);
        assert_int_equal(codes[2], 354);
        pst_smtpc_rparser_free(p);
    }
}

static void test_rparser_stops_after_error(void **state)
{
    struct pst_smtpc_rparser *p = pst_smtpc_rparser_new();
    struct pst_smtpc_reply r = {0};
    size_t used;
    char why[PST_SMTPC_WHY_MAX];
    assert_int_equal(pst_smtpc_rparser_feed(p, "xx\r\n", 4, &used, &r, why, sizeof(why)),
                     PST_ERR_SYNTAX);
    assert_int_equal(pst_smtpc_rparser_feed(p, "250 ok\r\n", 8, &used, &r, why, sizeof(why)),
                     PST_ERR_SYNTAX);
    pst_smtpc_rparser_reset(p);
    assert_int_equal(pst_smtpc_rparser_feed(p, "250 ok\r\n", 8, &used, &r, why, sizeof(why)), 1);
    assert_string_equal(r.text, "ok");
    pst_smtpc_reply_clear(&r);
    pst_smtpc_rparser_free(p);
}

static void test_oneline(void **state)
{
    struct pst_smtpc_reply r = {0};
    size_t used;
    char why[PST_SMTPC_WHY_MAX], out[64];
    const char *in = "550-5.1.1 first\r\n550-5.1.1\r\n550 5.1.1 last\r\n";
    assert_int_equal(pst_smtpc_reply_parse(in, strlen(in), &used, &r, why, sizeof(why)), 1);
    pst_smtpc_reply_oneline(&r, out, sizeof(out));
    assert_string_equal(out, "550 5.1.1 first last");
    pst_smtpc_reply_oneline(&r, out, 8);
    assert_string_equal(out, "550 5.1");
    pst_smtpc_reply_clear(&r);
}

/* ---- EHLO keywords --------------------------------------------------------- */

static void test_ehlo_keywords(void **state)
{
    const char *in = "250-mx.example.net greets you\r\n250-pipelining\r\n250-Size 52428800\r\n"
                     "250-8bitmime\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250-DSN\r\n"
                     "250-AUTH CRAM-MD5 login\r\n250-AUTH=PLAIN\r\n250-ENHANCEDSTATUSCODES\r\n"
                     "250-CHUNKING\r\n250-XFORWARD NAME ADDR\r\n250 VRFY\r\n";
    struct pst_smtpc_reply r = {0};
    size_t used;
    char why[PST_SMTPC_WHY_MAX];
    assert_int_equal(pst_smtpc_reply_parse(in, strlen(in), &used, &r, why, sizeof(why)), 1);
    struct pst_smtpc_ext x;
    pst_smtpc_ehlo_parse(&r, &x);
    assert_int_equal(x.flags, PST_SMTPC_EXT_PIPELINING | PST_SMTPC_EXT_SIZE |
                                  PST_SMTPC_EXT_8BITMIME | PST_SMTPC_EXT_SMTPUTF8 |
                                  PST_SMTPC_EXT_STARTTLS | PST_SMTPC_EXT_DSN | PST_SMTPC_EXT_AUTH |
                                  PST_SMTPC_EXT_ENHANCED | PST_SMTPC_EXT_CHUNKING);
    assert_int_equal(x.size_max, 52428800);
    assert_int_equal(x.auth, PST_SMTPC_AUTH_PLAIN | PST_SMTPC_AUTH_LOGIN | PST_SMTPC_AUTH_OTHER);
    pst_smtpc_reply_clear(&r);
    /* the first line is the domain, not a keyword; bad SIZE is no limit */
    in = "250-PIPELINING\r\n250-SIZE 12x\r\n250 STARTTLSX\r\n";
    assert_int_equal(pst_smtpc_reply_parse(in, strlen(in), &used, &r, why, sizeof(why)), 1);
    pst_smtpc_ehlo_parse(&r, &x);
    assert_int_equal(x.flags, PST_SMTPC_EXT_SIZE);
    assert_int_equal(x.size_max, 0);
    pst_smtpc_reply_clear(&r);
    in = "250-x\r\n250 SIZE 99999999999999999999999\r\n";
    assert_int_equal(pst_smtpc_reply_parse(in, strlen(in), &used, &r, why, sizeof(why)), 1);
    pst_smtpc_ehlo_parse(&r, &x);
    assert_true(x.size_max == UINT64_MAX);
    pst_smtpc_reply_clear(&r);
}

/* ---- dot-stuffing ---------------------------------------------------------- */

struct dot_case {
    const char *name;
    const char *in;
    const char *want; /* with the final ".\r\n" */
};

static const struct dot_case dot_cases[] = {
    {"empty message", "", ".\r\n"},
    {"one line", "a\r\n", "a\r\n.\r\n"},
    {"no final CRLF", "a", "a\r\n.\r\n"},
    {"dot line", ".\r\n", "..\r\n.\r\n"},
    {"leading dots", ".a\r\n..b\r\nc.d\r\n", "..a\r\n...b\r\nc.d\r\n.\r\n"},
    {"dot first, no CRLF", ".", "..\r\n.\r\n"},
    {"bare LF", "a\nb\n", "a\r\nb\r\n.\r\n"},
    {"bare LF then dot", "a\n.\n", "a\r\n..\r\n.\r\n"},
    {"bare CR", "a\rb", "a\r\nb\r\n.\r\n"},
    {"bare CR then dot", "a\r.\r", "a\r\n..\r\n.\r\n"},
    {"CR at the end", "a\r", "a\r\n.\r\n"},
    {"smuggling attempt", "a\r\n\n.\r\nMAIL FROM:<x>\r\n", "a\r\n\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"},
    {"empty lines", "\r\n\r\n", "\r\n\r\n.\r\n"},
};

static void test_dot_table(void **state)
{
    int bad = 0;
    struct pst_buf *out = pst_buf_new(4096);
    for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
        const struct dot_case *t = &dot_cases[i];
        size_t len = strlen(t->in);
        /* every split into two calls, and byte by byte */
        for (size_t cut = 0; cut <= len + 1; cut++) {
            struct pst_smtpc_dot d;
            pst_smtpc_dot_init(&d);
            pst_buf_reset(out);
            if (cut <= len) {
                assert_int_equal(pst_smtpc_data_encode(&d, t->in, cut, out), 0);
                assert_int_equal(pst_smtpc_data_encode(&d, t->in + cut, len - cut, out), 0);
            } else {
                for (size_t k = 0; k < len; k++)
                    assert_int_equal(pst_smtpc_data_encode(&d, t->in + k, 1, out), 0);
            }
            assert_int_equal(pst_smtpc_data_end(&d, out), 0);
            if (strcmp(pst_buf_data(out), t->want) != 0 || d.out_bytes != pst_buf_len(out)) {
                print_error("%s (cut %zu): got '%s' want '%s'\n", t->name, cut, pst_buf_data(out),
                            t->want);
                bad++;
                break;
            }
        }
    }
    pst_buf_free(out);
    assert_int_equal(bad, 0);
}

static void test_dot_room(void **state)
{
    struct pst_buf *out = pst_buf_new(10);
    struct pst_smtpc_dot d;
    pst_smtpc_dot_init(&d);
    /* 2 * 5 + 2 > 10: refused whole */
    assert_int_equal(pst_smtpc_data_encode(&d, ".....", 5, out), PST_ERR_TOOBIG);
    assert_int_equal(pst_buf_len(out), 0);
    assert_int_equal(pst_smtpc_data_encode(&d, "....", 4, out), 0);
    assert_string_equal(pst_buf_data(out), ".....");
    pst_buf_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_ok),
        cmocka_unit_test(test_one_by_one_bytewise),
        cmocka_unit_test(test_helo_fallback),
        cmocka_unit_test(test_starttls_discards_plaintext),
        cmocka_unit_test(test_starttls_required_not_offered),
        cmocka_unit_test(test_starttls_refused),
        cmocka_unit_test(test_tls_handshake_failure),
        cmocka_unit_test(test_implicit_tls_auth_plain),
        cmocka_unit_test(test_auth_login_and_failure),
        cmocka_unit_test(test_auth_never_in_plaintext),
        cmocka_unit_test(test_rcpt_partial_reject),
        cmocka_unit_test(test_all_rcpts_refused),
        cmocka_unit_test(test_stage_table),
        cmocka_unit_test(test_greeting_not_220),
        cmocka_unit_test(test_multiline_greeting_and_reply_text),
        cmocka_unit_test(test_malformed_reply),
        cmocka_unit_test(test_oversize_replies),
        cmocka_unit_test(test_unexpected_data),
        cmocka_unit_test(test_size_refused),
        cmocka_unit_test(test_smtputf8),
        cmocka_unit_test(test_data_stuffing_in_session),
        cmocka_unit_test(test_config_checked),
        cmocka_unit_test(test_null_sender),
        cmocka_unit_test(test_reply_table),
        cmocka_unit_test(test_reply_splits),
        cmocka_unit_test(test_rparser_stops_after_error),
        cmocka_unit_test(test_oneline),
        cmocka_unit_test(test_ehlo_keywords),
        cmocka_unit_test(test_dot_table),
        cmocka_unit_test(test_dot_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
