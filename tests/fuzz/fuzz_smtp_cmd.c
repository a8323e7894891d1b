/*
 * fuzz_smtp_cmd.c - the SMTP command parser and the MAIL/RCPT parameter
 * checks on arbitrary lines. Besides "no crash, no leak" it checks:
 *  - a refused line comes with a 4xx/5xx reply whose text is one line;
 *  - what a parsed command holds is well formed (no control octets, the
 *    RFC 5321 4.5.3.1 lengths, upper-case keywords);
 *  - a parsed path printed back in brackets parses to the same mailbox;
 *  - a reply quoting the parsed text is exactly one CRLF-terminated line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* No control octets; free-text arguments (NOOP, HELP) may hold HTAB. */
static void check_text(const char *s, int tab_ok)
{
    for (; *s != '\0'; s++)
        CHECK(((unsigned char)*s >= 0x20 && *s != 0x7f) || (tab_ok && *s == '\t'));
}

/* The reply is one line: its only CR and LF are the final CRLF. */
static void check_one_line(const struct pst_buf *out)
{
    const char *p = pst_buf_data(out);
    size_t n = pst_buf_len(out);
    CHECK(n >= 5 && n <= 512);
    CHECK(p[n - 2] == '\r' && p[n - 1] == '\n');
    for (size_t i = 0; i + 2 < n; i++)
        CHECK(p[i] != '\r' && p[i] != '\n' && p[i] != '\0');
}

static void check_path(const struct pst_smtp_cmd *c)
{
    CHECK(c->path != NULL && c->local != NULL && c->domain != NULL);
    check_text(c->path, 0);
    CHECK(strlen(c->path) <= 254);
    CHECK(strlen(c->domain) <= 255);
    if (c->path[0] == '\0') {
        CHECK(c->verb == PST_SMTP_MAIL);
        return;
    }
    /* printed back, the path parses to the same mailbox */
    char line[300];
    int n = snprintf(line, sizeof(line), "%s:<%s>",
                     c->verb == PST_SMTP_MAIL ? "MAIL FROM" : "RCPT TO", c->path);
    CHECK(n > 0 && (size_t)n < sizeof(line));
    struct pst_smtp_cmd b = {0};
    struct pst_smtp_perr why;
    CHECK(pst_smtp_cmd_parse(line, (size_t)n, &b, &why) == 0);
    CHECK(strcmp(b.path, c->path) == 0 && strcmp(b.local, c->local) == 0 &&
          strcmp(b.domain, c->domain) == 0 && b.path_utf8 == c->path_utf8);
    pst_smtp_cmd_clear(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pst_smtp_cmd c = {0};
    struct pst_smtp_perr why = {0};
    struct pst_buf *out = pst_buf_new(4096);
    if (out == NULL)
        return 0;
    int rc = pst_smtp_cmd_parse((const char *)data, size, &c, &why);
    if (rc != 0) {
        CHECK(rc == PST_ERR_SYNTAX || rc == PST_ERR_NUL || rc == PST_ERR_TOOBIG ||
              rc == PST_ERR_NOMEM);
        CHECK(why.code >= 400 && why.code <= 559 && why.enh != NULL && why.msg != NULL);
        CHECK(c.storage == NULL && c.verb == PST_SMTP_UNKNOWN);
        CHECK(pst_smtp_reply(out, why.code, why.enh, "%s", why.msg) == 0);
        check_one_line(out);
        pst_buf_free(out);
        return 0;
    }
    CHECK(c.verb != PST_SMTP_UNKNOWN && c.storage != NULL);
    CHECK(strcmp(pst_smtp_verb_name(c.verb), "UNKNOWN") != 0);
    CHECK(c.nparams <= PST_SMTP_MAX_PARAMS);
    for (size_t i = 0; i < c.nparams; i++) {
        const char *k = c.params[i].keyword;
        CHECK(k != NULL && k[0] != '\0');
        for (; *k != '\0'; k++)
            CHECK((*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '-');
        if (c.params[i].value != NULL) {
            CHECK(c.params[i].value[0] != '\0');
            check_text(c.params[i].value, 0);
        }
    }
    if (c.arg != NULL)
        check_text(c.arg, 1);
    switch (c.verb) {
    case PST_SMTP_EHLO:
    case PST_SMTP_HELO:
        CHECK(c.arg != NULL && c.arg[0] != '\0');
        break;
    case PST_SMTP_MAIL: {
        check_path(&c);
        struct pst_smtp_mail_params mp;
        rc = pst_smtp_mail_params(&c, &mp, &why);
        CHECK(rc == 0 || (rc == PST_ERR_SYNTAX && (why.code == 555 || why.code == 550)));
        if (rc == 0)
            CHECK(!c.path_utf8 || mp.smtputf8);
        CHECK(pst_smtp_rcpt_params(&c, 1, &why) == PST_ERR_INVAL);
        break;
    }
    case PST_SMTP_RCPT:
        check_path(&c);
        rc = pst_smtp_rcpt_params(&c, data[0] & 1, &why);
        CHECK(rc == 0 || (rc == PST_ERR_SYNTAX && (why.code == 555 || why.code == 553)));
        break;
    default:
        break;
    }
    /* a reply that quotes what the client sent stays one line */
    pst_buf_reset(out);
    CHECK(pst_smtp_reply(out, 250, "2.1.0", "<%s> %s ok", c.path ? c.path : "",
                         c.arg ? c.arg : "") == 0);
    check_one_line(out);
    pst_smtp_cmd_clear(&c);
    CHECK(c.storage == NULL);
    pst_buf_free(out);
    return 0;
}
