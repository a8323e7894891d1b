/*
 * test_smtp_cmd.c - the SMTP command parser and the MAIL/RCPT parameter
 * checks, table-driven: each case is a line and the parse rendered as one
 * string ("MAIL path=<a@b> local=a domain=b" or "ERR rc code enh").
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
#include "smtp.h"

/* Renders a parse result as text to compare. */
static void render(int rc, const struct pst_smtp_cmd *c, const struct pst_smtp_perr *why, char *b,
                   size_t n)
{
    size_t j = 0;
#define ADD(...) (j += (size_t)snprintf(b + j, j < n ? n - j : 0, __VA_ARGS__))
    if (rc != 0) {
        ADD("ERR %d %d %s", rc, why->code, why->enh);
        return;
    }
    ADD("%s", pst_smtp_verb_name(c->verb));
    if (c->arg != NULL)
        ADD(" arg=%s", c->arg);
    if (c->path != NULL)
        ADD(" path=<%s> local=%s domain=%s", c->path, c->local, c->domain);
    if (c->path_utf8)
        ADD(" utf8");
    for (size_t i = 0; i < c->nparams; i++) {
        if (c->params[i].value != NULL)
            ADD(" %s=%s", c->params[i].keyword, c->params[i].value);
        else
            ADD(" %s", c->params[i].keyword);
    }
    if (c->verb == PST_SMTP_BDAT)
        ADD(" size=%llu%s", (unsigned long long)c->bdat_size, c->bdat_last ? " last" : "");
#undef ADD
}

struct cmd_case {
    const char *name;
    const char *line;
    size_t len; /* 0: strlen(line) */
    const char *want;
};

static const struct cmd_case cmd_cases[] = {
    /* EHLO / HELO, RFC 5321 4.1.1.1 */
    {"ehlo domain", "EHLO mail.example.com", 0, "EHLO arg=mail.example.com"},
    {"ehlo lower-case verb, case kept", "ehlo Mail.Example.COM", 0, "EHLO arg=Mail.Example.COM"},
    {"ehlo single label", "EHLO localhost", 0, "EHLO arg=localhost"},
    {"ehlo ipv4 literal", "EHLO [192.0.2.1]", 0, "EHLO arg=[192.0.2.1]"},
    {"ehlo ipv6 literal", "EHLO [IPv6:2001:db8::1]", 0, "EHLO arg=[IPv6:2001:db8::1]"},
    {"ehlo ipv6 tag any case", "EHLO [ipv6:::1]", 0, "EHLO arg=[ipv6:::1]"},
    {"ehlo ipv6v4 literal", "EHLO [IPv6:::ffff:192.0.2.1]", 0, "EHLO arg=[IPv6:::ffff:192.0.2.1]"},
    {"ehlo trailing blanks ignored", "EHLO a.example \t ", 0, "EHLO arg=a.example"},
    {"ehlo missing", "EHLO", 0, "ERR -3 501 5.5.4"},
    {"ehlo only a space", "EHLO ", 0, "ERR -3 501 5.5.4"},
    {"ehlo two spaces", "EHLO  a.example", 0, "ERR -3 501 5.5.4"},
    {"ehlo bad ipv4", "EHLO [300.1.1.1]", 0, "ERR -3 501 5.5.4"},
    {"ehlo short ipv4", "EHLO [1.2.3]", 0, "ERR -3 501 5.5.4"},
    {"ehlo general literal refused", "EHLO [x-tag:foo]", 0, "ERR -3 501 5.5.4"},
    {"ehlo ipv6 tag with ipv4", "EHLO [IPv6:1.2.3.4]", 0, "ERR -3 501 5.5.4"},
    {"ehlo unclosed literal", "EHLO [192.0.2.1", 0, "ERR -3 501 5.5.4"},
    {"ehlo text after literal", "EHLO [192.0.2.1]x", 0, "ERR -3 501 5.5.4"},
    {"ehlo underscore", "EHLO foo_bar.example", 0, "ERR -3 501 5.5.4"},
    {"ehlo leading hyphen", "EHLO -foo.example", 0, "ERR -3 501 5.5.4"},
    {"ehlo trailing hyphen", "EHLO foo-.example", 0, "ERR -3 501 5.5.4"},
    {"ehlo inner hyphens", "EHLO x--y.example", 0, "EHLO arg=x--y.example"},
    {"ehlo empty label", "EHLO foo..example", 0, "ERR -3 501 5.5.4"},
    {"ehlo trailing dot", "EHLO foo.example.", 0, "ERR -3 501 5.5.4"},
    {"ehlo non-ascii (RFC 6531 3.7.1)", "EHLO ex\xc3\xa4mple.com", 0, "ERR -3 501 5.5.4"},
    {"ehlo two words", "EHLO a.example b", 0, "ERR -3 501 5.5.4"},
    {"helo domain", "HELO mail.example.org", 0, "HELO arg=mail.example.org"},
    {"helo literal refused", "HELO [192.0.2.1]", 0, "ERR -3 501 5.5.4"},
    {"helo missing", "HELO", 0, "ERR -3 501 5.5.4"},

    /* MAIL, RFC 5321 4.1.1.2 and 4.1.2 */
    {"mail", "MAIL FROM:<a@b.example>", 0, "MAIL path=<a@b.example> local=a domain=b.example"},
    {"mail lower case, domain folded", "mail from:<Joe@EXAMPLE.com>", 0,
     "MAIL path=<Joe@EXAMPLE.com> local=Joe domain=example.com"},
    {"mail null path", "MAIL FROM:<>", 0, "MAIL path=<> local= domain="},
    {"mail null path with params", "MAIL FROM:<> SIZE=10", 0,
     "MAIL path=<> local= domain= SIZE=10"},
    {"mail one space after colon", "MAIL FROM: <a@b.example>", 0,
     "MAIL path=<a@b.example> local=a domain=b.example"},
    {"mail two spaces after colon", "MAIL FROM:  <a@b.example>", 0, "ERR -3 501 5.1.7"},
    {"mail no brackets", "MAIL FROM:a@b.example", 0, "ERR -3 501 5.1.7"},
    {"mail no colon", "MAIL FROM <a@b.example>", 0, "ERR -3 501 5.5.4"},
    {"mail no argument", "MAIL", 0, "ERR -3 501 5.5.4"},
    {"mail to:", "MAIL TO:<a@b.example>", 0, "ERR -3 501 5.5.4"},
    {"mail params", "MAIL FROM:<a@b.example> SIZE=1000 BODY=8bitmime", 0,
     "MAIL path=<a@b.example> local=a domain=b.example SIZE=1000 BODY=8bitmime"},
    {"mail params, many spaces, keyword upper-cased", "MAIL FROM:<a@b.example>   size=1   smtputf8",
     0, "MAIL path=<a@b.example> local=a domain=b.example SIZE=1 SMTPUTF8"},
    {"mail trailing blanks", "MAIL FROM:<a@b.example>  ", 0,
     "MAIL path=<a@b.example> local=a domain=b.example"},
    {"mail param glued to path", "MAIL FROM:<a@b.example>SIZE=1", 0, "ERR -3 501 5.5.4"},
    {"mail param no keyword", "MAIL FROM:<a@b.example> =x", 0, "ERR -3 555 5.5.4"},
    {"mail param empty value", "MAIL FROM:<a@b.example> SIZE=", 0, "ERR -3 555 5.5.4"},
    {"mail param two =", "MAIL FROM:<a@b.example> SIZE==1", 0, "ERR -3 555 5.5.4"},
    {"mail param leading hyphen", "MAIL FROM:<a@b.example> -X", 0, "ERR -3 555 5.5.4"},
    {"mail param bad keyword char", "MAIL FROM:<a@b.example> X_Y", 0, "ERR -3 555 5.5.4"},
    {"mail param tab", "MAIL FROM:<a@b.example> SIZE=1\tBODY=7BIT", 0, "ERR -3 555 5.5.4"},
    {"mail param utf-8 value", "MAIL FROM:<a@b.example> X=\xc3\xa9", 0,
     "MAIL path=<a@b.example> local=a domain=b.example X=\xc3\xa9"},
    {"mail param bad utf-8 value", "MAIL FROM:<a@b.example> X=\xc3", 0, "ERR -3 555 5.5.4"},
    {"mail 16 params", "MAIL FROM:<a@b> A B C D E F G H I J K L M N O P", 0,
     "MAIL path=<a@b> local=a domain=b A B C D E F G H I J K L M N O P"},
    {"mail 17 params", "MAIL FROM:<a@b> A B C D E F G H I J K L M N O P Q", 0, "ERR -3 555 5.5.4"},
    {"mail quoted local", "MAIL FROM:<\"john doe\"@b.example>", 0,
     "MAIL path=<\"john doe\"@b.example> local=\"john doe\" domain=b.example"},
    {"mail quoted pair kept", "MAIL FROM:<\"a\\\"b\\\\\"@b>", 0,
     "MAIL path=<\"a\\\"b\\\\\"@b> local=\"a\\\"b\\\\\" domain=b"},
    {"mail quoted with > and @", "MAIL FROM:<\"a>b@c\"@d>", 0,
     "MAIL path=<\"a>b@c\"@d> local=\"a>b@c\" domain=d"},
    {"mail empty quoted", "MAIL FROM:<\"\"@d>", 0, "MAIL path=<\"\"@d> local=\"\" domain=d"},
    {"mail unterminated quote", "MAIL FROM:<\"a@b>", 0, "ERR -3 501 5.1.7"},
    {"mail quote then atom", "MAIL FROM:<\"a\"b@c>", 0, "ERR -3 501 5.1.7"},
    {"mail atext specials", "MAIL FROM:<!#$%&'*+-/=?^_`{|}~@b>", 0,
     "MAIL path=<!#$%&'*+-/=?^_`{|}~@b> local=!#$%&'*+-/=?^_`{|}~ domain=b"},
    {"mail dotted local", "MAIL FROM:<a.b.c@d>", 0, "MAIL path=<a.b.c@d> local=a.b.c domain=d"},
    {"mail double dot", "MAIL FROM:<a..b@c>", 0, "ERR -3 501 5.1.7"},
    {"mail leading dot", "MAIL FROM:<.a@c>", 0, "ERR -3 501 5.1.7"},
    {"mail trailing dot", "MAIL FROM:<a.@c>", 0, "ERR -3 501 5.1.7"},
    {"mail space in local", "MAIL FROM:<a b@c>", 0, "ERR -3 501 5.1.7"},
    {"mail tab in path", "MAIL FROM:<a\t@b>", 0, "ERR -3 501 5.1.7"},
    {"mail no domain", "MAIL FROM:<a>", 0, "ERR -3 501 5.1.7"},
    {"mail empty domain", "MAIL FROM:<a@>", 0, "ERR -3 501 5.1.7"},
    {"mail no local", "MAIL FROM:<@b>", 0, "ERR -3 501 5.1.7"},
    {"mail two @", "MAIL FROM:<a@b@c>", 0, "ERR -3 501 5.1.7"},
    {"mail unclosed", "MAIL FROM:<a@b", 0, "ERR -3 501 5.1.7"},
    {"mail underscore domain", "MAIL FROM:<a@b_c.example>", 0, "ERR -3 501 5.1.7"},
    {"mail postmaster only for RCPT", "MAIL FROM:<Postmaster>", 0, "ERR -3 501 5.1.7"},
    {"mail ipv4 literal", "MAIL FROM:<a@[192.0.2.1]>", 0,
     "MAIL path=<a@[192.0.2.1]> local=a domain=[192.0.2.1]"},
    {"mail ipv6 literal kept as sent", "MAIL FROM:<a@[IPv6:2001:DB8::1]>", 0,
     "MAIL path=<a@[IPv6:2001:DB8::1]> local=a domain=[IPv6:2001:DB8::1]"},
    {"mail general literal", "MAIL FROM:<a@[foo:bar]>", 0, "ERR -3 501 5.1.7"},
    {"mail bad ipv6", "MAIL FROM:<a@[IPv6:2001:db8:::1]>", 0, "ERR -3 501 5.1.7"},
    {"mail source route dropped", "MAIL FROM:<@r1.example,@r2.example:a@b.example>", 0,
     "MAIL path=<a@b.example> local=a domain=b.example"},
    {"mail one-hop route", "MAIL FROM:<@r1:a@b>", 0, "MAIL path=<a@b> local=a domain=b"},
    {"mail route missing @", "MAIL FROM:<@r1,r2:a@b>", 0, "ERR -3 501 5.1.7"},
    {"mail route missing colon", "MAIL FROM:<@r1 a@b>", 0, "ERR -3 501 5.1.7"},
    {"mail utf-8 route dropped, not counted", "MAIL FROM:<@r\xc3\xa9.example:a@b>", 0,
     "MAIL path=<a@b> local=a domain=b"},
    {"mail route bad domain", "MAIL FROM:<@r_1:a@b>", 0, "ERR -3 501 5.1.7"},
    {"mail utf-8 (RFC 6531 3.3)", "MAIL FROM:<j\xc3\xb6ran@EX\xc3\x84mple.com>", 0,
     "MAIL path=<j\xc3\xb6ran@EX\xc3\x84mple.com> local=j\xc3\xb6ran "
     "domain=ex\xc3\x84mple.com utf8"},
    {"mail utf-8 quoted", "MAIL FROM:<\"\xe2\x82\xac 1\"@b>", 0,
     "MAIL path=<\"\xe2\x82\xac 1\"@b> local=\"\xe2\x82\xac 1\" domain=b utf8"},
    {"mail utf-8 4-octet", "MAIL FROM:<\xf0\x9f\x93\xa7@b>", 0,
     "MAIL path=<\xf0\x9f\x93\xa7@b> local=\xf0\x9f\x93\xa7 domain=b utf8"},
    {"mail truncated utf-8", "MAIL FROM:<j\xc3@b>", 0, "ERR -3 501 5.1.7"},
    {"mail overlong utf-8", "MAIL FROM:<\xc0\xaf@b>", 0, "ERR -3 501 5.1.7"},
    {"mail utf-8 surrogate", "MAIL FROM:<\xed\xa0\x80@b>", 0, "ERR -3 501 5.1.7"},
    {"mail utf-8 above U+10FFFF", "MAIL FROM:<\xf4\x90\x80\x80@b>", 0, "ERR -3 501 5.1.7"},
    {"mail utf-8 lone continuation", "MAIL FROM:<a\x80@b>", 0, "ERR -3 501 5.1.7"},
    {"mail bad utf-8 in domain", "MAIL FROM:<a@b\xff.example>", 0, "ERR -3 501 5.1.7"},
    {"mail NUL", "MAIL FROM:<a\0@b>", 17, "ERR -9 500 5.5.2"},
    {"mail CR", "MAIL FROM:<a@b>\r", 0, "ERR -3 500 5.5.2"},
    {"mail LF inside", "MAIL FROM:<a@b>\nRCPT TO:<c@d>", 0, "ERR -3 500 5.5.2"},

    /* RCPT, RFC 5321 4.1.1.3 */
    {"rcpt", "RCPT TO:<b@c.example>", 0, "RCPT path=<b@c.example> local=b domain=c.example"},
    {"rcpt lower case", "rcpt to:<b@C.example>", 0,
     "RCPT path=<b@C.example> local=b domain=c.example"},
    {"rcpt one space", "RCPT TO: <b@c>", 0, "RCPT path=<b@c> local=b domain=c"},
    {"rcpt postmaster", "RCPT TO:<Postmaster>", 0,
     "RCPT path=<Postmaster> local=postmaster domain="},
    {"rcpt postmaster any case", "RCPT TO:<pOSTMASTER>", 0,
     "RCPT path=<pOSTMASTER> local=postmaster domain="},
    {"rcpt postmaster with params", "RCPT TO:<postmaster> X=1", 0,
     "RCPT path=<postmaster> local=postmaster domain= X=1"},
    {"rcpt postmaster at domain", "RCPT TO:<Postmaster@Example.COM>", 0,
     "RCPT path=<Postmaster@Example.COM> local=Postmaster domain=example.com"},
    {"rcpt not quite postmaster", "RCPT TO:<postmasters>", 0, "ERR -3 501 5.1.3"},
    {"rcpt null path refused", "RCPT TO:<>", 0, "ERR -3 501 5.1.3"},
    {"rcpt bad address", "RCPT TO:<b@c..d>", 0, "ERR -3 501 5.1.3"},
    {"rcpt from:", "RCPT FROM:<b@c>", 0, "ERR -3 501 5.5.4"},
    {"rcpt params kept", "RCPT TO:<b@c> NOTIFY=NEVER", 0,
     "RCPT path=<b@c> local=b domain=c NOTIFY=NEVER"},
    {"rcpt no argument", "RCPT", 0, "ERR -3 501 5.5.4"},

    /* BDAT, RFC 3030 2 */
    {"bdat", "BDAT 1000", 0, "BDAT size=1000"},
    {"bdat last", "BDAT 0 LAST", 0, "BDAT size=0 last"},
    {"bdat last lower case", "bdat 12 last", 0, "BDAT size=12 last"},
    {"bdat max", "BDAT 18446744073709551615", 0, "BDAT size=18446744073709551615"},
    {"bdat overflow", "BDAT 18446744073709551616", 0, "ERR -3 501 5.5.4"},
    {"bdat 21 digits", "BDAT 000000000000000000001", 0, "ERR -3 501 5.5.4"},
    {"bdat 20 digits", "BDAT 00000000000000000001", 0, "BDAT size=1"},
    {"bdat missing size", "BDAT", 0, "ERR -3 501 5.5.4"},
    {"bdat not digits", "BDAT x", 0, "ERR -3 501 5.5.4"},
    {"bdat negative", "BDAT -1", 0, "ERR -3 501 5.5.4"},
    {"bdat lastx", "BDAT 10 LASTX", 0, "ERR -3 501 5.5.4"},
    {"bdat two spaces", "BDAT 10  LAST", 0, "ERR -3 501 5.5.4"},
    {"bdat other word", "BDAT 10 MORE", 0, "ERR -3 501 5.5.4"},

    /* commands without arguments */
    {"data", "DATA", 0, "DATA"},
    {"data lower case", "data", 0, "DATA"},
    {"data trailing space", "DATA ", 0, "DATA"},
    {"data with argument", "DATA x", 0, "ERR -3 501 5.5.4"},
    {"rset", "RSET", 0, "RSET"},
    {"rset with argument", "RSET now", 0, "ERR -3 501 5.5.4"},
    {"quit", "QUIT", 0, "QUIT"},
    {"quit with argument", "QUIT bye", 0, "ERR -3 501 5.5.4"},
    {"starttls", "STARTTLS", 0, "STARTTLS"},
    {"starttls lower case", "starttls", 0, "STARTTLS"},
    {"starttls with argument", "STARTTLS now", 0, "ERR -3 501 5.5.4"},

    /* free-text arguments */
    {"noop", "NOOP", 0, "NOOP"},
    {"noop with text (RFC 5321 4.1.1.9)", "NOOP hello\tworld", 0, "NOOP arg=hello\tworld"},
    {"help", "HELP", 0, "HELP"},
    {"help topic", "HELP MAIL", 0, "HELP arg=MAIL"},
    {"vrfy", "VRFY joe", 0, "VRFY arg=joe"},
    {"vrfy missing", "VRFY", 0, "ERR -3 501 5.5.4"},
    {"expn", "EXPN staff", 0, "EXPN arg=staff"},
    {"expn missing", "EXPN", 0, "ERR -3 501 5.5.4"},
    {"auth", "AUTH PLAIN dGVzdA==", 0, "AUTH arg=PLAIN dGVzdA=="},
    {"auth missing", "AUTH", 0, "ERR -3 501 5.5.4"},

    /* garbage */
    {"empty line", "", 0, "ERR -3 500 5.5.2"},
    {"blank line", "   ", 0, "ERR -3 500 5.5.2"},
    {"unknown verb", "FOO bar", 0, "ERR -3 500 5.5.2"},
    {"verb glued to argument", "MAILFROM:<a@b>", 0, "ERR -3 500 5.5.2"},
    {"tab after verb", "MAIL\tFROM:<a@b>", 0, "ERR -3 500 5.5.2"},
    {"leading space", " MAIL FROM:<a@b>", 0, "ERR -3 500 5.5.2"},
    {"verb prefix", "STARTTLSX", 0, "ERR -3 500 5.5.2"},
    {"verb too short", "EHL", 0, "ERR -3 500 5.5.2"},
    {"http", "GET / HTTP/1.1", 0, "ERR -3 500 5.5.2"},
    {"NUL alone", "\0", 1, "ERR -9 500 5.5.2"},
    {"NUL after verb", "NOOP \0", 6, "ERR -9 500 5.5.2"},
    {"control character", "NOOP \x01", 0, "ERR -3 500 5.5.2"},
    {"DEL", "NOOP \x7f", 0, "ERR -3 500 5.5.2"},
    {"escape sequence", "HELP \x1b[2J", 0, "ERR -3 500 5.5.2"},
    {"8-bit verb", "M\xc3\x81IL FROM:<a@b>", 0, "ERR -3 500 5.5.2"},
};

static int check_parse(const char *name, const char *line, size_t len, const char *want)
{
    struct pst_smtp_cmd c = {0};
    struct pst_smtp_perr why = {0};
    char got[2048];
    int rc = pst_smtp_cmd_parse(line, len, &c, &why);
    render(rc, &c, &why, got, sizeof(got));
    int ok = strcmp(got, want) == 0;
    if (!ok)
        print_error("%s: got \"%s\" want \"%s\"\n", name, got, want);
    if (rc != 0 && (why.msg == NULL || why.enh == NULL)) {
        print_error("%s: error without a reply text\n", name);
        ok = 0;
    }
    pst_smtp_cmd_clear(&c);
    return ok;
}

static void test_parse_table(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
        const struct cmd_case *t = &cmd_cases[i];
        bad += !check_parse(t->name, t->line, t->len ? t->len : strlen(t->line), t->want);
    }
    assert_int_equal(bad, 0);
}

/* RFC 5321 4.5.3.1: local part 64, domain 255, path 256 octets. */
static void test_parse_limits(void **state)
{
    char line[1024], want[1024], local[128], dom[300];
    int bad = 0;

    memset(local, 'l', 64);
    local[64] = '\0';
    snprintf(line, sizeof(line), "MAIL FROM:<%s@b>", local);
    snprintf(want, sizeof(want), "MAIL path=<%s@b> local=%s domain=b", local, local);
    bad += !check_parse("local part of 64", line, strlen(line), want);
    local[64] = 'l';
    local[65] = '\0';
    snprintf(line, sizeof(line), "MAIL FROM:<%s@b>", local);
    bad += !check_parse("local part of 65", line, strlen(line), "ERR -3 501 5.1.7");

    /* 32 two-octet characters = 64 octets; 40 = 80 octets, within the
     * character limit of a UTF-8 local part */
    char u[128] = "";
    for (int i = 0; i < 40; i++)
        memcpy(u + 2 * i, "\xc3\xa9", 3);
    snprintf(line, sizeof(line), "MAIL FROM:<%s@b>", u);
    snprintf(want, sizeof(want), "MAIL path=<%s@b> local=%s domain=b utf8", u, u);
    bad += !check_parse("utf-8 local part of 40 characters", line, strlen(line), want);
    char u65[200] = "";
    for (int i = 0; i < 65; i++)
        memcpy(u65 + 2 * i, "\xc3\xa9", 3);
    snprintf(line, sizeof(line), "MAIL FROM:<%s@b>", u65);
    bad +=
        !check_parse("utf-8 local part of 65 characters", line, strlen(line), "ERR -3 501 5.1.7");

    /* path of 256: "<" + 64 + "@" + 189 + ">" */
    local[64] = '\0';
    memset(dom, 'd', 189);
    dom[63] = '.';
    dom[127] = '.';
    dom[189] = '\0';
    snprintf(line, sizeof(line), "RCPT TO:<%s@%s>", local, dom);
    snprintf(want, sizeof(want), "RCPT path=<%s@%s> local=%s domain=%s", local, dom, local, dom);
    bad += !check_parse("path of 256", line, strlen(line), want);
    dom[189] = 'd';
    dom[190] = '\0';
    snprintf(line, sizeof(line), "RCPT TO:<%s@%s>", local, dom);
    bad += !check_parse("path of 257", line, strlen(line), "ERR -3 501 5.1.3");

    /* labels of 63 and 64 octets (RFC 1035 2.3.4) */
    memset(dom, 'd', 63);
    dom[63] = '\0';
    snprintf(line, sizeof(line), "EHLO %s.example", dom);
    snprintf(want, sizeof(want), "EHLO arg=%s.example", dom);
    bad += !check_parse("label of 63", line, strlen(line), want);
    memset(dom, 'd', 64);
    dom[64] = '\0';
    snprintf(line, sizeof(line), "EHLO %s.example", dom);
    bad += !check_parse("label of 64", line, strlen(line), "ERR -3 501 5.5.4");

    /* domain of 255 and 256 octets in EHLO */
    for (int i = 0; i < 256; i++)
        dom[i] = (i % 64 == 63) ? '.' : 'd';
    dom[255] = '\0';
    snprintf(line, sizeof(line), "EHLO %s", dom);
    snprintf(want, sizeof(want), "EHLO arg=%s", dom);
    bad += !check_parse("domain of 255", line, strlen(line), want);
    dom[255] = 'd';
    dom[256] = '\0';
    snprintf(line, sizeof(line), "EHLO %s", dom);
    bad += !check_parse("domain of 256", line, strlen(line), "ERR -3 501 5.5.4");

    /* a line longer than any limit */
    size_t big = 70000;
    char *huge = malloc(big);
    assert_non_null(huge);
    memcpy(huge, "NOOP ", 5);
    memset(huge + 5, 'x', big - 5);
    bad += !check_parse("huge line", huge, big, "ERR -2 500 5.5.2");
    free(huge);
    assert_int_equal(bad, 0);
}

/* Out-parameters are written only on success. */
static void test_parse_leaves_cmd_on_error(void **state)
{
    struct pst_smtp_cmd c, before;
    struct pst_smtp_perr why;
    memset(&c, 0x5a, sizeof(c));
    before = c;
    assert_int_equal(pst_smtp_cmd_parse("MAIL FROM:<a", 12, &c, &why), PST_ERR_SYNTAX);
    assert_memory_equal(&c, &before, sizeof(c));
    assert_int_equal(why.code, 501);
    assert_string_equal(why.enh, "5.1.7");
    memset(&c, 0, sizeof(c));
    pst_smtp_cmd_clear(&c);
    pst_smtp_cmd_clear(NULL);
}

static void test_verb_names(void **state)
{
    static const struct {
        enum pst_smtp_verb verb;
        const char *want;
    } t[] = {
        {PST_SMTP_UNKNOWN, "UNKNOWN"},
        {PST_SMTP_EHLO, "EHLO"},
        {PST_SMTP_HELO, "HELO"},
        {PST_SMTP_MAIL, "MAIL"},
        {PST_SMTP_RCPT, "RCPT"},
        {PST_SMTP_DATA, "DATA"},
        {PST_SMTP_BDAT, "BDAT"},
        {PST_SMTP_RSET, "RSET"},
        {PST_SMTP_NOOP, "NOOP"},
        {PST_SMTP_QUIT, "QUIT"},
        {PST_SMTP_HELP, "HELP"},
        {PST_SMTP_VRFY, "VRFY"},
        {PST_SMTP_EXPN, "EXPN"},
        {PST_SMTP_STARTTLS, "STARTTLS"},
        {PST_SMTP_AUTH, "AUTH"},
        {(enum pst_smtp_verb)99, "UNKNOWN"},
        {(enum pst_smtp_verb) - 1, "UNKNOWN"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *got = pst_smtp_verb_name(t[i].verb);
        if (strcmp(got, t[i].want) != 0) {
            print_error("verb %d: got %s want %s\n", (int)t[i].verb, got, t[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

struct params_case {
    const char *name;
    const char *line;
    int smtputf8; /* RCPT: the transaction's SMTPUTF8 */
    const char *want;
};

static const struct params_case params_cases[] = {
    {"no params", "MAIL FROM:<a@b>", 0, "size=0 8bit=0 utf8=0"},
    {"size", "MAIL FROM:<a@b> SIZE=1000", 0, "size=1000 8bit=0 utf8=0"},
    {"size max", "MAIL FROM:<a@b> SIZE=18446744073709551615", 0,
     "size=18446744073709551615 8bit=0 utf8=0"},
    {"size overflow", "MAIL FROM:<a@b> SIZE=18446744073709551616", 0, "ERR -3 555 5.5.4"},
    {"size 21 digits", "MAIL FROM:<a@b> SIZE=000000000000000000001", 0, "ERR -3 555 5.5.4"},
    {"size not digits", "MAIL FROM:<a@b> SIZE=1k", 0, "ERR -3 555 5.5.4"},
    {"size without value", "MAIL FROM:<a@b> SIZE", 0, "ERR -3 555 5.5.4"},
    {"size twice", "MAIL FROM:<a@b> SIZE=1 SIZE=2", 0, "ERR -3 555 5.5.4"},
    {"size lower case keyword", "MAIL FROM:<a@b> size=7", 0, "size=7 8bit=0 utf8=0"},
    {"body 8bitmime", "MAIL FROM:<a@b> BODY=8BITMIME", 0, "size=0 8bit=1 utf8=0"},
    {"body any case", "MAIL FROM:<a@b> body=8bitMIME", 0, "size=0 8bit=1 utf8=0"},
    {"body 7bit", "MAIL FROM:<a@b> BODY=7bit", 0, "size=0 8bit=0 utf8=0"},
    {"body binarymime not offered", "MAIL FROM:<a@b> BODY=BINARYMIME", 0, "ERR -3 555 5.5.4"},
    {"body without value", "MAIL FROM:<a@b> BODY", 0, "ERR -3 555 5.5.4"},
    {"body twice", "MAIL FROM:<a@b> BODY=7BIT BODY=8BITMIME", 0, "ERR -3 555 5.5.4"},
    {"smtputf8", "MAIL FROM:<a@b> SMTPUTF8", 0, "size=0 8bit=0 utf8=1"},
    {"smtputf8 with value", "MAIL FROM:<a@b> SMTPUTF8=yes", 0, "ERR -3 555 5.5.4"},
    {"smtputf8 twice", "MAIL FROM:<a@b> SMTPUTF8 SMTPUTF8", 0, "ERR -3 555 5.5.4"},
    {"all three", "MAIL FROM:<a@b> SMTPUTF8 BODY=8BITMIME SIZE=5", 0, "size=5 8bit=1 utf8=1"},
    {"unknown", "MAIL FROM:<a@b> RET=HDRS", 0, "ERR -3 555 5.5.4"},
    {"utf-8 path without SMTPUTF8 (RFC 6531 3.5)", "MAIL FROM:<\xc3\xa9@b>", 0, "ERR -3 550 5.6.7"},
    {"utf-8 path with SMTPUTF8", "MAIL FROM:<\xc3\xa9@b> SMTPUTF8", 0, "size=0 8bit=0 utf8=1"},
    {"null path", "MAIL FROM:<> SIZE=10", 0, "size=10 8bit=0 utf8=0"},
    {"rcpt", "RCPT TO:<a@b>", 0, "ok"},
    {"rcpt param", "RCPT TO:<a@b> NOTIFY=NEVER", 0, "ERR -3 555 5.5.4"},
    {"rcpt utf-8 without SMTPUTF8", "RCPT TO:<\xc3\xa9@b>", 0, "ERR -3 553 5.6.7"},
    {"rcpt utf-8 with SMTPUTF8", "RCPT TO:<\xc3\xa9@b>", 1, "ok"},
    {"rcpt postmaster", "RCPT TO:<Postmaster>", 0, "ok"},
    {"mail check on RCPT", "RCPT TO:<a@b>", -1, "ERR -4 503 5.5.1"},
    {"rcpt check on MAIL", "MAIL FROM:<a@b>", -1, "ERR -4 503 5.5.1"},
};

static void test_params_table(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(params_cases) / sizeof(params_cases[0]); i++) {
        const struct params_case *t = &params_cases[i];
        struct pst_smtp_cmd c = {0};
        struct pst_smtp_perr why = {0};
        char got[256];
        int rc = pst_smtp_cmd_parse(t->line, strlen(t->line), &c, &why);
        assert_int_equal(rc, 0);
        int as_mail = c.verb == PST_SMTP_MAIL;
        if (t->smtputf8 < 0)
            as_mail = !as_mail; /* the wrong check on purpose */
        if (as_mail) {
            struct pst_smtp_mail_params mp;
            memset(&mp, 0x5a, sizeof(mp));
            rc = pst_smtp_mail_params(&c, &mp, &why);
            if (rc == 0)
                snprintf(got, sizeof(got), "size=%llu 8bit=%d utf8=%d", (unsigned long long)mp.size,
                         mp.body_8bit, mp.smtputf8);
        } else {
            rc = pst_smtp_rcpt_params(&c, t->smtputf8 > 0, &why);
            if (rc == 0)
                snprintf(got, sizeof(got), "ok");
        }
        if (rc != 0)
            snprintf(got, sizeof(got), "ERR %d %d %s", rc, why.code, why.enh);
        if (strcmp(got, t->want) != 0) {
            print_error("%s: got \"%s\" want \"%s\"\n", t->name, got, t->want);
            bad++;
        }
        pst_smtp_cmd_clear(&c);
    }
    assert_int_equal(bad, 0);
}

/* DSN parameters (RFC 3461) through pst_smtp_mail_params_dsn and
 * pst_smtp_rcpt_params_dsn, with DSN offered (dsn = 1) or not (dsn = 0). */
struct dsn_case {
    const char *name;
    const char *line;
    int dsn;
    const char *want;
};

static const struct dsn_case dsn_cases[] = {
    {"ret full", "MAIL FROM:<a@b> RET=FULL", 1, "ret=1 envid="},
    {"ret hdrs lower case", "MAIL FROM:<a@b> ret=hdrs", 1, "ret=2 envid="},
    {"envid kept as xtext", "MAIL FROM:<a@b> ENVID=Q+2B1 SIZE=9", 1, "ret=0 envid=Q+2B1"},
    {"ret and envid", "MAIL FROM:<> RET=HDRS ENVID=x", 1, "ret=2 envid=x"},
    {"ret without DSN offered", "MAIL FROM:<a@b> RET=FULL", 0, "ERR -3 555 5.5.4"},
    {"envid without DSN offered", "MAIL FROM:<a@b> ENVID=x", 0, "ERR -3 555 5.5.4"},
    {"ret bad value (RFC 3461 5.1 a)", "MAIL FROM:<a@b> RET=ALL", 1, "ERR -3 501 5.5.4"},
    {"ret without value", "MAIL FROM:<a@b> RET", 1, "ERR -3 501 5.5.4"},
    {"ret twice (RFC 3461 4.5)", "MAIL FROM:<a@b> RET=FULL RET=FULL", 1, "ERR -3 501 5.5.4"},
    {"envid twice", "MAIL FROM:<a@b> ENVID=a ENVID=b", 1, "ERR -3 501 5.5.4"},
    {"envid bad xtext", "MAIL FROM:<a@b> ENVID=a+2b", 1, "ERR -3 501 5.5.4"},
    {"envid decodes to CRLF", "MAIL FROM:<a@b> ENVID=a+0D+0A", 1, "ERR -3 501 5.5.4"},
    {"envid too long",
     "MAIL FROM:<a@b> ENVID=01234567890123456789012345678901234567890123456789"
     "012345678901234567890123456789012345678901234567890",
     1, "ERR -3 501 5.5.4"},
    {"other parameter still unknown", "MAIL FROM:<a@b> MT-PRIORITY=3", 1, "ERR -3 555 5.5.4"},
    {"notify never", "RCPT TO:<a@b> NOTIFY=NEVER", 1, "notify=0x1 orcpt="},
    {"notify list", "RCPT TO:<a@b> NOTIFY=success,DELAY", 1, "notify=0xa orcpt="},
    {"orcpt kept as received", "RCPT TO:<a@b> ORCPT=rfc822;A+2Bb@B NOTIFY=FAILURE", 1,
     "notify=0x4 orcpt=rfc822;A+2Bb@B"},
    {"no parameters", "RCPT TO:<a@b>", 1, "notify=0 orcpt="},
    {"notify without DSN offered", "RCPT TO:<a@b> NOTIFY=NEVER", 0, "ERR -3 555 5.5.4"},
    {"orcpt without DSN offered", "RCPT TO:<a@b> ORCPT=rfc822;a@b", 0, "ERR -3 555 5.5.4"},
    {"notify never with success", "RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS", 1, "ERR -3 501 5.5.4"},
    {"notify repeated keyword", "RCPT TO:<a@b> NOTIFY=DELAY,DELAY", 1, "ERR -3 501 5.5.4"},
    {"notify twice", "RCPT TO:<a@b> NOTIFY=DELAY NOTIFY=FAILURE", 1, "ERR -3 501 5.5.4"},
    {"notify without value", "RCPT TO:<a@b> NOTIFY", 1, "ERR -3 501 5.5.4"},
    {"orcpt twice", "RCPT TO:<a@b> ORCPT=rfc822;a@b ORCPT=rfc822;a@b", 1, "ERR -3 501 5.5.4"},
    {"orcpt without type", "RCPT TO:<a@b> ORCPT=a@b", 1, "ERR -3 501 5.5.4"},
    {"orcpt bad xtext", "RCPT TO:<a@b> ORCPT=rfc822;a+4@b", 1, "ERR -3 501 5.5.4"},
    {"rcpt other parameter", "RCPT TO:<a@b> FOO=1", 1, "ERR -3 555 5.5.4"},
    {"rcpt utf-8 without SMTPUTF8, DSN", "RCPT TO:<\xc3\xa9@b> NOTIFY=NEVER", 1,
     "ERR -3 553 5.6.7"},
};

static void test_dsn_params_table(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(dsn_cases) / sizeof(dsn_cases[0]); i++) {
        const struct dsn_case *t = &dsn_cases[i];
        struct pst_smtp_cmd c = {0};
        struct pst_smtp_perr why = {0};
        char got[700];
        int rc = pst_smtp_cmd_parse(t->line, strlen(t->line), &c, &why);
        assert_int_equal(rc, 0);
        if (c.verb == PST_SMTP_MAIL) {
            struct pst_smtp_mail_params mp;
            memset(&mp, 0x5a, sizeof(mp));
            rc = pst_smtp_mail_params_dsn(&c, t->dsn, &mp, &why);
            if (rc == 0)
                snprintf(got, sizeof(got), "ret=%d envid=%s", (int)mp.ret, mp.envid);
        } else {
            struct pst_smtp_rcpt_params rp;
            memset(&rp, 0x5a, sizeof(rp));
            rc = pst_smtp_rcpt_params_dsn(&c, 0, t->dsn, &rp, &why);
            if (rc == 0)
                snprintf(got, sizeof(got), "notify=%#x orcpt=%s", rp.notify, rp.orcpt);
        }
        if (rc != 0)
            snprintf(got, sizeof(got), "ERR %d %d %s", rc, why.code, why.enh);
        if (strcmp(got, t->want) != 0) {
            print_error("%s: got \"%s\" want \"%s\"\n", t->name, got, t->want);
            bad++;
        }
        pst_smtp_cmd_clear(&c);
    }
    assert_int_equal(bad, 0);
}

/* A parsed path printed back in brackets parses to the same mailbox. */
static void test_path_round_trip(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
        const struct cmd_case *t = &cmd_cases[i];
        struct pst_smtp_cmd a = {0}, b = {0};
        struct pst_smtp_perr why;
        size_t len = t->len ? t->len : strlen(t->line);
        if (pst_smtp_cmd_parse(t->line, len, &a, &why) != 0)
            continue;
        if (a.path == NULL) {
            pst_smtp_cmd_clear(&a);
            continue;
        }
        char line[1024];
        int n = snprintf(line, sizeof(line), "%s:<%s>",
                         a.verb == PST_SMTP_MAIL ? "MAIL FROM" : "RCPT TO", a.path);
        int rc = pst_smtp_cmd_parse(line, (size_t)n, &b, &why);
        if (rc != 0 || strcmp(a.path, b.path) != 0 || strcmp(a.local, b.local) != 0 ||
            strcmp(a.domain, b.domain) != 0 || a.path_utf8 != b.path_utf8) {
            print_error("%s: round trip of \"%s\" failed (rc %d)\n", t->name, line, rc);
            bad++;
        }
        pst_smtp_cmd_clear(&a);
        pst_smtp_cmd_clear(&b);
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_parse_leaves_cmd_on_error),
        cmocka_unit_test(test_verb_names),
        cmocka_unit_test(test_params_table),
        cmocka_unit_test(test_dsn_params_table),
        cmocka_unit_test(test_path_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
