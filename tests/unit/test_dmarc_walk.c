/*
 * test_dmarc_walk.c - the DNS Tree Walk (RFC 9989 4.10, 4.10.1, 4.10.2),
 * Identifier Alignment and the evaluation matrix, hermetic: DNS comes from
 * zone resolvers over zone text written here.
 *
 * The tree-walk table is our own, written from RFC 9989's text and its
 * examples (4.10's eight queries, B.4.1-B.4.3): each case gives the zone,
 * the start domain, the exact list of names queried (which checks the
 * 8-query cap and the skip to 7 labels), the Organizational Domain and the
 * policy domain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim.h"
#include "dmarc.h"
#include "dns.h"
#include "err.h"
#include "msg.h"
#include "psl.h"
#include "resolver.h"

static struct pst_resolver *zone(const char *text)
{
    struct pst_resolver *r = NULL;
    char err[256];
    char buf[4096];
    snprintf(buf, sizeof(buf), "$TTL 300\n%s", text);
    int rc = pst_resolver_zone_from_text(buf, strlen(buf), &r, err, sizeof(err));
    if (rc != 0)
        printf("# zone: %s\n", err);
    assert_int_equal(rc, 0);
    return r;
}

struct walk_case {
    const char *name, *zone, *start;
    const char *queries; /* space-separated domains asked at _dmarc. */
    const char *org;
    const char *policy; /* "" when none */
    int error;
};

#define REC(d, t) "_dmarc." d ". TXT \"" t "\"\n"

static const struct walk_case walks[] = {
    {"record at the author domain", REC("example.com", "v=DMARC1; p=reject"), "example.com",
     "example.com com", "example.com", "example.com", 0},
    {"4.10.2 example 1: two records, fewest labels",
     REC("mail.example.com", "v=DMARC1; p=none") REC("example.com", "v=DMARC1; p=reject"),
     "a.mail.example.com", "a.mail.example.com mail.example.com example.com com", "example.com",
     "example.com", 0},
    {"4.10.2 example 2: psd=n stops",
     REC("mail.example.com", "v=DMARC1; p=none; psd=n") REC("example.com", "v=DMARC1; p=reject"),
     "a.mail.example.com", "a.mail.example.com mail.example.com", "mail.example.com",
     "mail.example.com", 0},
    {"4.10.2 example 3: psd=y at com", REC("com", "v=DMARC1; p=reject; psd=y"),
     "a.mail.example.com", "a.mail.example.com mail.example.com example.com com", "example.com",
     "com", 0},
    {"psd=y at the start: org is the start", REC("example.com", "v=DMARC1; p=none; psd=y"),
     "example.com", "example.com", "example.com", "example.com", 0},
    {"4.10: 14 labels, eight queries", REC("example.com", "v=DMARC1; p=none"),
     "a.b.c.d.e.f.g.h.i.j.mail.example.com",
     "a.b.c.d.e.f.g.h.i.j.mail.example.com g.h.i.j.mail.example.com h.i.j.mail.example.com "
     "i.j.mail.example.com j.mail.example.com mail.example.com example.com com",
     "example.com", "example.com", 0},
    {"B.4.2 deep walk", REC("example.com", "v=DMARC1; p=none"), "a.b.c.d.e.f.g.h.i.j.k.example.com",
     "a.b.c.d.e.f.g.h.i.j.k.example.com g.h.i.j.k.example.com h.i.j.k.example.com "
     "i.j.k.example.com j.k.example.com k.example.com example.com com",
     "example.com", "example.com", 0},
    {"exactly 8 labels: no skip", "", "a.b.c.d.e.f.example.com",
     "a.b.c.d.e.f.example.com b.c.d.e.f.example.com c.d.e.f.example.com d.e.f.example.com "
     "e.f.example.com f.example.com example.com com",
     "a.b.c.d.e.f.example.com", "", 0},
    {"9 labels: the 8-label name is skipped", REC("a.b.c.d.e.f.example.com", "v=DMARC1; p=none"),
     "x.a.b.c.d.e.f.example.com",
     "x.a.b.c.d.e.f.example.com b.c.d.e.f.example.com c.d.e.f.example.com d.e.f.example.com "
     "e.f.example.com f.example.com example.com com",
     "x.a.b.c.d.e.f.example.com", "", 0},
    {"7 labels: one at a time", "", "b.c.d.e.f.example.com",
     "b.c.d.e.f.example.com c.d.e.f.example.com d.e.f.example.com e.f.example.com f.example.com "
     "example.com com",
     "b.c.d.e.f.example.com", "", 0},
    {"B.4.3 author",
     REC("giant.bank.example", "v=DMARC1; p=reject") REC("bank.example", "v=DMARC1; p=none; psd=y"),
     "giant.bank.example", "giant.bank.example bank.example", "giant.bank.example",
     "giant.bank.example", 0},
    {"B.4.3 mail from",
     REC("giant.bank.example", "v=DMARC1; p=reject") REC("bank.example", "v=DMARC1; p=none; psd=y"),
     "mail.giant.bank.example", "mail.giant.bank.example giant.bank.example bank.example",
     "giant.bank.example", "giant.bank.example", 0},
    {"B.4.3 dkim: PSD policy",
     REC("giant.bank.example", "v=DMARC1; p=reject") REC("bank.example", "v=DMARC1; p=none; psd=y"),
     "mail.mega.bank.example", "mail.mega.bank.example mega.bank.example bank.example",
     "mega.bank.example", "bank.example", 0},
    {"two records at one name are discarded",
     REC("example.com", "v=DMARC1; p=reject") REC("example.com", "v=DMARC1; p=none")
         REC("com", "v=DMARC1; p=quarantine"),
     "example.com", "example.com com", "com", "com", 0},
    {"other TXT records ignored",
     "_dmarc.example.com. TXT \"v=spf1 -all\"\n_dmarc.example.com. TXT \"hello\"\n"
     "_dmarc.example.com. TXT \"v=DMARC1; p=quarantine\"\n",
     "example.com", "example.com com", "example.com", "example.com", 0},
    {"no records: org is the start", "", "mail.example.com", "mail.example.com example.com com",
     "mail.example.com", "", 0},
    {"servfail ends the walk", "_dmarc.example.com. TXT \"postern-test=servfail\"\n",
     "mail.example.com", "mail.example.com example.com", "", "", PST_DMARC_STEP_TEMPERROR},
    {"trailing dot and case", REC("example.com", "v=DMARC1; p=none"), "Mail.EXAMPLE.com.",
     "mail.example.com example.com com", "example.com", "example.com", 0},
};

static void test_walk_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(walks) / sizeof(walks[0]); i++) {
        const struct walk_case *c = &walks[i];
        struct pst_resolver *r = zone(c->zone);
        struct pst_dns_budget b = {0};
        struct pst_dmarc_opts o = {.resolver = r, .budget = &b};
        struct pst_dmarc_walk *w = NULL;
        assert_int_equal(pst_dmarc_walk(&o, c->start, &w), 0);
        char got[1024] = "";
        size_t n = 0;
        for (size_t k = 0; k < w->nq; k++)
            n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", k ? " " : "", w->q[k].domain);
        const char *pol = w->policy >= 0 ? w->q[w->policy].domain : "";
        int bad = strcmp(got, c->queries) != 0 || w->error != c->error || b.used != w->nq ||
                  w->nq > PST_DMARC_WALK_MAX ||
                  (!c->error && (strcmp(w->org, c->org) != 0 || strcmp(pol, c->policy) != 0));
        if (bad) {
            printf("# %s:\n#   got  queries [%s] org %s policy %s error %d\n", c->name, got, w->org,
                   pol, w->error);
            printf("#   want queries [%s] org %s policy %s error %d\n", c->queries, c->org,
                   c->policy, c->error);
            failures++;
        }
        pst_dmarc_walk_free(w);
        pst_resolver_free(r);
    }
    assert_int_equal(failures, 0);
}

static void test_walk_errors(void **state)
{
    (void)state;
    struct pst_resolver *r = zone("");
    struct pst_dmarc_opts o = {.resolver = r};
    struct pst_dmarc_walk *w = NULL;
    assert_int_equal(pst_dmarc_walk(&o, "bad domain", &w), PST_ERR_SYNTAX);
    assert_int_equal(pst_dmarc_walk(&o, "", &w), PST_ERR_SYNTAX);
    assert_int_equal(pst_dmarc_walk(&o, "a..b", &w), PST_ERR_SYNTAX);
    assert_null(w);
    /* a name so long that _dmarc.<name> is not a DNS name: skipped */
    char longname[260];
    memset(longname, 'a', 60);
    memcpy(longname + 60, ".", 1);
    memset(longname + 61, 'b', 60);
    memcpy(longname + 121, ".", 1);
    memset(longname + 122, 'c', 60);
    memcpy(longname + 182, ".", 1);
    memset(longname + 183, 'd', 60);
    memcpy(longname + 243, ".example", 9);
    assert_int_equal(pst_dmarc_walk(&o, longname, &w), 0);
    assert_int_equal(w->error, 0);
    assert_int_equal(w->nq, 5);
    assert_int_equal(w->q[0].step, PST_DMARC_STEP_NONE);
    assert_string_equal(w->q[4].domain, "example");
    pst_dmarc_walk_free(w);
    /* a budget of 2 queries: the third is refused, permerror */
    struct pst_dns_budget b = {.max_queries = 2};
    o.budget = &b;
    assert_int_equal(pst_dmarc_walk(&o, "a.b.example.com", &w), 0);
    assert_int_equal(w->error, PST_DMARC_STEP_PERMERROR);
    assert_int_equal(w->nq, 3);
    pst_dmarc_walk_free(w);
    pst_resolver_free(r);
}

/* A fake PSL: the registrable domain is the last two labels, or three
 * under "co.uk". */
static int fake_psl(void *arg, const char *d, char *out, size_t outlen)
{
    (void)arg;
    size_t n = strlen(d);
    int want = (n >= 6 && strcmp(d + n - 6, ".co.uk") == 0) ? 3 : 2;
    int dots = 0;
    for (size_t i = n; i > 0; i--)
        if (d[i - 1] == '.' && ++dots == want) {
            snprintf(out, outlen, "%s", d + i);
            return 0;
        }
    if (dots == want - 1) {
        snprintf(out, outlen, "%s", d);
        return 0;
    }
    return PST_ERR_NOTFOUND;
}

static void test_walk_psl(void **state)
{
    (void)state;
    struct pst_resolver *r = zone(REC("example.co.uk", "v=DMARC1; p=reject"));
    struct pst_dmarc_psl psl = {fake_psl, NULL};
    struct pst_dmarc_opts o = {.resolver = r, .mode = PST_DMARC_PSL, .psl = &psl};
    struct pst_dmarc_walk *w = NULL;
    assert_int_equal(pst_dmarc_walk(&o, "a.b.example.co.uk", &w), 0);
    assert_int_equal(w->nq, 2);
    assert_string_equal(w->q[1].domain, "example.co.uk");
    assert_string_equal(w->org, "example.co.uk");
    assert_int_equal(w->policy, 1);
    pst_dmarc_walk_free(w);
    /* relaxed alignment by the PSL, without DNS */
    assert_int_equal(
        pst_dmarc_aligned(&o, "a.example.co.uk", "example.co.uk", "b.example.co.uk", 'r'), 1);
    assert_int_equal(pst_dmarc_aligned(&o, "a.example.co.uk", "example.co.uk", "other.co.uk", 'r'),
                     0);
    pst_resolver_free(r);
}

/* The libpsl adapter (lib/io/psl.c) with Debian's list. */
static void test_psl_adapter(void **state)
{
    (void)state;
    struct pst_psl *p = NULL;
    char err[256], out[PST_DMARC_DOMAIN_MAX];
    assert_int_equal(pst_psl_open(NULL, &p, err, sizeof(err)), 0);
    assert_int_equal(pst_psl_registrable(p, "a.b.Example.CO.UK.", out, sizeof(out)), 0);
    assert_string_equal(out, "example.co.uk");
    assert_int_equal(pst_psl_registrable(p, "mail.example.com", out, sizeof(out)), 0);
    assert_string_equal(out, "example.com");
    assert_int_equal(pst_psl_registrable(p, "co.uk", out, sizeof(out)), PST_ERR_NOTFOUND);
    assert_int_equal(pst_psl_registrable(p, "bad name", out, sizeof(out)), PST_ERR_SYNTAX);
    assert_int_equal(pst_psl_registrable(p, "example.com", out, 4), PST_ERR_TOOBIG);
    const struct pst_dmarc_psl *i = pst_psl_dmarc(p);
    assert_int_equal(i->registrable(i->arg, "x.example.org", out, sizeof(out)), 0);
    assert_string_equal(out, "example.org");
    pst_psl_free(p);
    assert_int_equal(pst_psl_open("/nonexistent/psl.dat", &p, err, sizeof(err)), PST_ERR_IO);
}

/* ---- evaluation matrix -------------------------------------------------- */

static const char eval_zone[] =
    "example.com. A 192.0.2.1\n"
    "sub.example.com. A 192.0.2.2\n" REC("example.com",
                                         "v=DMARC1; p=reject; sp=quarantine; np=reject")
        REC("mail.example.com",
            "v=DMARC1; p=none") "_dmarc.bad.example.com. TXT \"postern-test=servfail\"\n"
                                "strict.test. A 192.0.2.3\n" REC(
                                    "strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s")
                                    REC("testing.test", "v=DMARC1; p=reject; t=y")
                                        REC("q.test", "v=DMARC1; p=quarantine; t=y")
                                            REC("nopolicy.test", "v=DMARC1; adkim=s")
                                                REC("legacy.test", "v=DMARC1; p=reject; pct=0")
                                                    REC("asnone.test",
                                                        "v=DMARC1; p=bogus; "
                                                        "rua=mailto:d@asnone.test") "_dmarc.temp."
                                                                                    "test. TXT "
                                                                                    "\"postern-"
                                                                                    "test="
                                                                                    "servfail\"\n"
                                                                                    "none.test. A "
                                                                                    "192.0.2.4\n"
                                                                                    "sp.test. A "
                                                                                    "192.0.2.5\n"
                                                                                    "x.sp.test. A "
                                                                                    "192.0.2."
                                                                                    "6\n" REC(
                                                                                        "sp.test",
                                                                                        "v=DMARC1; "
                                                                                        "p=reject; "
                                                                                        "sp=none");

struct eval_case {
    const char *name, *author;
    const char *spf_result, *spf_domain;
    enum pst_dkim_result dkim_result;
    const char *dkim_d;
    enum pst_dmarc_result want;
    const char *tag;
    enum pst_dmarc_policy policy, disposition;
    int spf_aligned, dkim_aligned;
};

#define P_N  PST_DMARC_POLICY_NONE
#define P_Q  PST_DMARC_POLICY_QUARANTINE
#define P_R  PST_DMARC_POLICY_REJECT
#define P_A  PST_DMARC_POLICY_ABSENT
#define D_P  PST_DKIM_PASS
#define D_F  PST_DKIM_FAIL
#define D_NO PST_DKIM_NONE
#define R_P  PST_DMARC_RESULT_PASS
#define R_F  PST_DMARC_RESULT_FAIL
#define R_N  PST_DMARC_RESULT_NONE
#define R_T  PST_DMARC_RESULT_TEMPERROR
#define R_E  PST_DMARC_RESULT_PERMERROR

static const struct eval_case evals[] = {
    {"spf aligned strict", "example.com", "pass", "example.com", D_NO, NULL, R_P, "p", P_R, P_N, 1,
     0},
    {"spf aligned relaxed", "example.com", "pass", "bounce.example.com", D_NO, NULL, R_P, "p", P_R,
     P_N, 1, 0},
    {"dkim aligned relaxed (sub has its own record)", "example.com", "fail", "example.com", D_P,
     "mail.example.com", R_P, "p", P_R, P_N, 0, 1},
    {"dkim foreign domain", "example.com", NULL, NULL, D_P, "example.net", R_F, "p", P_R, P_R, 0,
     0},
    {"dkim look-alike suffix", "example.com", NULL, NULL, D_P, "badexample.com", R_F, "p", P_R, P_R,
     0, 0},
    {"dkim fail aligned d", "example.com", "softfail", "example.com", D_F, "example.com", R_F, "p",
     P_R, P_R, 0, 0},
    {"spf pass unaligned", "example.com", "pass", "example.org", D_NO, NULL, R_F, "p", P_R, P_R, 0,
     0},
    {"existing subdomain: sp", "sub.example.com", NULL, NULL, D_NO, NULL, R_F, "sp", P_Q, P_Q, 0,
     0},
    {"non-existent subdomain: np", "nx.example.com", NULL, NULL, D_NO, NULL, R_F, "np", P_R, P_R, 0,
     0},
    {"np absent: sp for non-existent", "nx.sp.test", NULL, NULL, D_NO, NULL, R_F, "sp", P_N, P_N, 0,
     0},
    {"existing sub, sp=none", "x.sp.test", NULL, NULL, D_NO, NULL, R_F, "sp", P_N, P_N, 0, 0},
    {"strict dkim subdomain fails", "strict.test", NULL, NULL, D_P, "mail.strict.test", R_F, "p",
     P_R, P_R, 0, 0},
    {"strict spf exact passes", "strict.test", "pass", "STRICT.test", D_NO, NULL, R_P, "p", P_R,
     P_N, 1, 0},
    {"t=y: reject becomes quarantine", "testing.test", NULL, NULL, D_NO, NULL, R_F, "p", P_R, P_Q,
     0, 0},
    {"t=y: quarantine becomes none", "q.test", NULL, NULL, D_NO, NULL, R_F, "p", P_Q, P_N, 0, 0},
    {"pct=0 acts as t=y", "legacy.test", NULL, NULL, D_NO, NULL, R_F, "p", P_R, P_Q, 0, 0},
    {"no record", "none.test", "pass", "none.test", D_NO, NULL, R_N, NULL, P_A, P_N, 0, 0},
    {"record without policy", "nopolicy.test", NULL, NULL, D_NO, NULL, R_N, NULL, P_A, P_N, 0, 0},
    {"bad p with rua acts as none", "asnone.test", NULL, NULL, D_NO, NULL, R_F, "p", P_N, P_N, 0,
     0},
    {"servfail on the policy", "temp.test", "pass", "temp.test", D_NO, NULL, R_T, NULL, P_A, P_N, 0,
     0},
    {"identifier walk servfail: temperror", "example.com", NULL, NULL, D_P, "x.bad.example.com",
     R_T, "p", P_R, P_N, 0, 0},
    {"identifier walk servfail but spf aligns", "example.com", "pass", "example.com", D_P,
     "x.bad.example.com", R_P, "p", P_R, P_N, 1, 0},
};

static void test_eval_table(void **state)
{
    (void)state;
    int failures = 0;
    struct pst_resolver *r = zone(eval_zone);
    for (size_t i = 0; i < sizeof(evals) / sizeof(evals[0]); i++) {
        const struct eval_case *c = &evals[i];
        struct pst_dmarc_opts o = {.resolver = r};
        struct pst_dmarc_spf spf = {c->spf_result, c->spf_domain};
        struct pst_dkim_verdict v = {.result = c->dkim_result, .reason = "", .d = c->dkim_d};
        struct pst_dmarc_eval *e = NULL;
        assert_int_equal(pst_dmarc_evaluate(&o, NULL, c->author, &spf, &v, c->dkim_d ? 1 : 0, &e),
                         0);
        int bad = e->result != c->want || e->policy != c->policy ||
                  e->disposition != c->disposition || e->spf_aligned != c->spf_aligned ||
                  e->dkim_aligned != c->dkim_aligned ||
                  (c->tag == NULL ? e->policy_tag != NULL
                                  : (e->policy_tag == NULL || strcmp(e->policy_tag, c->tag) != 0));
        if (bad) {
            printf("# %s: got %s %s=%s dis=%s spf=%d dkim=%d (%s)\n", c->name,
                   pst_dmarc_result_name(e->result), e->policy_tag ? e->policy_tag : "-",
                   pst_dmarc_policy_name(e->policy), pst_dmarc_policy_name(e->disposition),
                   e->spf_aligned, e->dkim_aligned, e->reason);
            printf("#   want %s %s=%s dis=%s spf=%d dkim=%d\n", pst_dmarc_result_name(c->want),
                   c->tag ? c->tag : "-", pst_dmarc_policy_name(c->policy),
                   pst_dmarc_policy_name(c->disposition), c->spf_aligned, c->dkim_aligned);
            failures++;
        }
        pst_dmarc_eval_free(e);
    }
    pst_resolver_free(r);
    assert_int_equal(failures, 0);
}

struct hdr_case {
    const char *name, *hdr;
    enum pst_dmarc_result want;
    enum pst_dmarc_from from;
    const char *author;
};

static const struct hdr_case hdrs[] = {
    {"one From", "From: A <a@example.com>\r\nTo: b@example.net\r\n\r\n", R_F, PST_DMARC_FROM_OK,
     "example.com"},
    {"two From fields", "From: a@example.net\r\nFrom: a@example.com\r\n\r\n", R_E,
     PST_DMARC_FROM_MULTIPLE_FIELDS, ""},
    {"two addresses", "From: a@example.net, b@example.com\r\n\r\n", R_E,
     PST_DMARC_FROM_MULTIPLE_ADDRESSES, ""},
    {"no From", "To: b@example.net\r\n\r\n", R_N, PST_DMARC_FROM_ABSENT, ""},
    {"empty group", "From: undisclosed:;\r\n\r\n", R_N, PST_DMARC_FROM_NO_ADDRESS, ""},
};

static void test_eval_header(void **state)
{
    (void)state;
    int failures = 0;
    struct pst_resolver *r = zone(eval_zone);
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        const struct hdr_case *c = &hdrs[i];
        struct pst_msg_header *h = NULL;
        const char *why = NULL;
        assert_int_equal(pst_msg_split(c->hdr, strlen(c->hdr), NULL, &h, &why), 0);
        struct pst_dmarc_opts o = {.resolver = r};
        struct pst_dmarc_eval *e = NULL;
        assert_int_equal(pst_dmarc_evaluate(&o, h, NULL, NULL, NULL, 0, &e), 0);
        if (e->result != c->want || e->from != c->from || strcmp(e->author, c->author) != 0) {
            printf("# %s: got %s from=%d author=%s want %s from=%d author=%s\n", c->name,
                   pst_dmarc_result_name(e->result), e->from, e->author,
                   pst_dmarc_result_name(c->want), c->from, c->author);
            failures++;
        }
        pst_dmarc_eval_free(e);
        pst_msg_header_free(h);
    }
    pst_resolver_free(r);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_table), cmocka_unit_test(test_walk_errors),
        cmocka_unit_test(test_walk_psl),   cmocka_unit_test(test_psl_adapter),
        cmocka_unit_test(test_eval_table), cmocka_unit_test(test_eval_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
