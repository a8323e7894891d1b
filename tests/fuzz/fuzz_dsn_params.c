/*
 * fuzz_dsn_params.c - the RFC 3461 parameter parsers and the DSN writer
 * on arbitrary text. The input is cut at its first NUL-free "\n" lines:
 * line 1 goes to every parameter parser and xtext, line 2 (or line 1) is
 * the diagnostic, line 3 the recipient, the rest the returned message.
 * Besides "no crash, no leak" it checks:
 *  - xtext decodes, re-encodes and decodes to the same octets;
 *  - an accepted ENVID / ORCPT decodes to printable ASCII and is accepted
 *    again by the encoders for relaying; NOTIFY round-trips its flags;
 *  - line 1 as MAIL / RCPT parameters with DSN offered is accepted with
 *    values that parse again, or refused with 501 or 555;
 *  - a generated report has CRLF lines only, none over 998 octets, its
 *    boundary exactly at its parts, and no fuzzed text shows up as a
 *    header or delivery-status field of its own.
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "buf.h"
#include "dsn.h"
#include "err.h"
#include "smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_params(const char *v, size_t n)
{
    char dec[1024];
    size_t dl = 0;
    struct pst_buf *b = pst_buf_new(8192);
    CHECK(b != NULL);
    if (n < 700 && pst_xtext_decode(v, n, dec, sizeof(dec), &dl) == 0) {
        char again[1024];
        size_t al = 0;
        CHECK(pst_xtext_encode(b, dec, dl) == 0);
        CHECK(pst_xtext_decode(pst_buf_data(b), pst_buf_len(b), again, sizeof(again), &al) == 0);
        CHECK(al == dl && memcmp(again, dec, dl) == 0);
    }

    unsigned notify = 0;
    const char *why = NULL;
    if (pst_dsn_parse_notify(v, &notify, &why) == 0) {
        unsigned back = 0;
        pst_buf_reset(b);
        CHECK(pst_dsn_notify_encode(b, notify) == 0);
        CHECK(pst_dsn_parse_notify(pst_buf_data(b), &back, &why) == 0 && back == notify);
    } else
        CHECK(why != NULL);

    enum pst_dsn_ret ret;
    if (pst_dsn_parse_ret(v, &ret, &why) == 0)
        CHECK(ret == PST_DSN_RET_FULL || ret == PST_DSN_RET_HDRS);

    char envid[PST_DSN_ENVID_MAX + 1];
    if (pst_dsn_parse_envid(v, envid, &why) == 0) {
        for (const char *p = envid; *p != '\0'; p++)
            CHECK((*p >= 0x20 && *p <= 0x7e) || *p == '\t');
        pst_buf_reset(b);
        CHECK(pst_dsn_mail_params_encode(b, PST_DSN_RET_FULL, v) == 0);
    }

    char type[PST_DSN_ADDRTYPE_MAX + 1], addr[PST_DSN_ORCPT_MAX + 1];
    if (pst_dsn_parse_orcpt(v, type, addr, &why) == 0) {
        CHECK(type[0] != '\0' && addr[0] != '\0');
        for (const char *p = addr; *p != '\0'; p++)
            CHECK((*p >= 0x20 && *p <= 0x7e) || *p == '\t');
        pst_buf_reset(b);
        CHECK(pst_dsn_rcpt_params_encode(b, PST_DSN_NOTIFY_FAILURE, v) == 0);
    }
    /* any address gives an ORCPT that parses, or a clean refusal */
    pst_buf_reset(b);
    int rc = pst_dsn_orcpt_from_addr(b, v);
    if (rc == 0)
        CHECK(pst_dsn_parse_orcpt(pst_buf_data(b), NULL, NULL, NULL) == 0);
    else
        CHECK(rc == PST_ERR_INVAL || rc == PST_ERR_TOOBIG);

    char st[16];
    CHECK(pst_dsn_status_from_reply(550, v, st) == 0 && pst_dsn_status_permanent(st) == 1);

    /* the same text as MAIL and RCPT parameters, DSN offered */
    for (int verb = 0; verb < 2; verb++) {
        struct pst_smtp_cmd c = {0};
        struct pst_smtp_perr why2;
        pst_buf_reset(b);
        if (pst_buf_addstr(b, verb == 0 ? "MAIL FROM:<a@b> " : "RCPT TO:<a@b> ") < 0 ||
            pst_buf_add(b, v, n) < 0)
            break;
        if (pst_smtp_cmd_parse(pst_buf_data(b), pst_buf_len(b), &c, &why2) != 0)
            continue;
        if (verb == 0) {
            struct pst_smtp_mail_params mp;
            int r = pst_smtp_mail_params_dsn(&c, 1, &mp, &why2);
            if (r == 0) {
                CHECK(mp.ret == PST_DSN_RET_NONE || mp.ret == PST_DSN_RET_FULL ||
                      mp.ret == PST_DSN_RET_HDRS);
                CHECK(mp.envid[0] == '\0' || pst_dsn_parse_envid(mp.envid, NULL, NULL) == 0);
            } else
                CHECK(r == PST_ERR_SYNTAX &&
                      (why2.code == 501 || why2.code == 555 || why2.code == 550));
        } else {
            struct pst_smtp_rcpt_params rp;
            int r = pst_smtp_rcpt_params_dsn(&c, 1, 1, &rp, &why2);
            if (r == 0)
                CHECK(rp.orcpt[0] == '\0' || pst_dsn_parse_orcpt(rp.orcpt, NULL, NULL, NULL) == 0);
            else
                CHECK(r == PST_ERR_SYNTAX && (why2.code == 501 || why2.code == 555));
        }
        pst_smtp_cmd_clear(&c);
    }
    pst_buf_free(b);
}

/* Lines of the report that start a field: only ones the writer makes. */
static int known_field(const char *s, size_t n)
{
    static const char *const names[] = {
        "From:",
        "To:",
        "Subject:",
        "Date:",
        "Message-ID:",
        "Auto-Submitted:",
        "MIME-Version:",
        "Content-Type:",
        "Content-Transfer-Encoding:",
        "Content-Description:",
        "Reporting-MTA:",
        "Original-Envelope-Id:",
        "Arrival-Date:",
        "Original-Recipient:",
        "Final-Recipient:",
        "Action:",
        "Status:",
        "Remote-MTA:",
        "Diagnostic-Code:",
        "Last-Attempt-Date:",
        "Will-Retry-Until:",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t k = strlen(names[i]);
        if (n >= k && memcmp(s, names[i], k) == 0)
            return 1;
    }
    return 0;
}

/*
 * Walks the report line by line: every line ends in CRLF and has at most
 * 998 octets; the header sections (top level and each part) and the
 * message/delivery-status body hold only fields the writer makes (or
 * their continuation lines); the delimiter starts exactly the parts.
 */
static void check_report(const char *s, size_t n)
{
    size_t i = 0, part = 0;
    CHECK(n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n');
    const char *bq = strstr(s, "boundary=\"");
    CHECK(bq != NULL);
    bq += 10;
    const char *be = strchr(bq, '"');
    CHECK(be != NULL && be - bq <= 70);
    size_t bl = (size_t)(be - bq);
    int in_header = 1;
    while (i < n) {
        const char *e = memchr(s + i, '\r', n - i);
        CHECK(e != NULL && (size_t)(e - s) + 1 < n && e[1] == '\n');
        size_t ll = (size_t)(e - (s + i));
        CHECK(memchr(s + i, '\n', ll) == NULL);
        CHECK(ll <= 998);
        const char *l = s + i;
        if (ll >= bl + 2 && l[0] == '-' && l[1] == '-' && memcmp(l + 2, bq, bl) == 0) {
            part++;
            in_header = 1;
        } else if (ll == 0) {
            in_header = 0;
        } else if ((in_header || part == 2) && l[0] != ' ' && l[0] != '\t')
            CHECK(known_field(l, ll));
        i += ll + 2;
    }
    CHECK(part == 3 || part == 4); /* two or three parts, then the close */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    if (size > 1 << 16 || memchr(in, '\0', size) != NULL)
        return 0;
    const char *nl1 = memchr(in, '\n', size);
    size_t l1 = nl1 ? (size_t)(nl1 - in) : size;
    char *first = malloc(l1 + 1);
    if (first == NULL)
        return 0;
    memcpy(first, in, l1);
    first[l1] = '\0';
    check_params(first, l1);

    /* line 2: diagnostic; line 3: recipient; rest: original message */
    const char *p2 = nl1 ? nl1 + 1 : in + size;
    const char *nl2 = memchr(p2, '\n', (size_t)(in + size - p2));
    const char *e2 = nl2 ? nl2 : in + size;
    const char *p3 = nl2 ? nl2 + 1 : in + size;
    const char *nl3 = memchr(p3, '\n', (size_t)(in + size - p3));
    const char *e3 = nl3 ? nl3 : in + size;
    const char *p4 = nl3 ? nl3 + 1 : in + size;
    char *diag = malloc((size_t)(e2 - p2) + 1);
    char *rcpt = malloc((size_t)(e3 - p3) + 16);
    if (diag == NULL || rcpt == NULL)
        goto out;
    memcpy(diag, p2, (size_t)(e2 - p2));
    diag[e2 - p2] = '\0';
    memcpy(rcpt, p3, (size_t)(e3 - p3));
    rcpt[e3 - p3] = '\0';
    if (rcpt[0] == '\0')
        memcpy(rcpt, "x@example.net", 14);

    static const unsigned char seed[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct pst_dsn_rcpt r[2] = {{0}};
    r[0].rcpt = rcpt;
    r[0].orcpt = first;
    r[0].action = (enum pst_dsn_action)(1 + (size % 5));
    r[0].notify = PST_DSN_NOTIFY_SUCCESS | PST_DSN_NOTIFY_FAILURE | PST_DSN_NOTIFY_DELAY;
    r[0].status = diag;
    r[0].remote_mta = diag;
    r[0].diag = diag;
    r[0].diag_type = first;
    /* times: ordinary, none, before 1970, and past what a date can hold */
    static const time_t times[4] = {1795906713, 0, -86400, (time_t)1 << 60};
    r[0].last_attempt = times[size % 4];
    r[0].retry_until = times[(size / 4) % 4];
    r[1].rcpt = diag[0] != '\0' ? diag : "y@example.net";
    r[1].action = PST_DSN_FAILED;
    r[1].diag = first;
    struct pst_dsn_msg m = {0};
    m.reporting_mta = "mx.example.org";
    m.sender = "s@example.org";
    m.envid = first;
    m.ret = (enum pst_dsn_ret)(size % 3);
    m.arrival = times[(size / 16) % 4];
    m.now = 1795906713;
    m.seed = seed;
    m.seed_len = sizeof(seed);
    m.original = p4;
    m.original_len = (size_t)(in + size - p4);
    m.max_return = 1 + size % 4096;
    m.delay_policy = 1;
    m.rcpts = r;
    m.nrcpts = 2;
    struct pst_buf *out = pst_buf_new(1 << 20);
    struct pst_dsn_info info;
    if (out == NULL)
        goto out;
    int rc = pst_dsn_generate(&m, out, &info);
    CHECK(rc == 0 || rc == PST_ERR_NOMEM);
    if (rc == 0) {
        CHECK(info.nreported == 2);
        check_report(pst_buf_data(out), pst_buf_len(out));
    }
    pst_buf_free(out);
out:
    free(first);
    free(diag);
    free(rcpt);
    return 0;
}
