/*
 * test_dmarc_record.c - DMARC policy records (RFC 9989 4.7, 4.8, 4.10.1,
 * Appendix A.6 and C.5): a table of records with the fields they give,
 * and a table of records that are not DMARC records with their errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "err.h"

#define A  PST_DMARC_POLICY_ABSENT
#define N  PST_DMARC_POLICY_NONE
#define Q  PST_DMARC_POLICY_QUARANTINE
#define R  PST_DMARC_POLICY_REJECT
#define OK PST_DMARC_REC_OK
#define AN PST_DMARC_REC_AS_NONE
#define NP PST_DMARC_REC_NO_POLICY

struct good_case {
    const char *name, *txt;
    enum pst_dmarc_policy p, sp, np;
    enum pst_dmarc_rec_state state;
    char psd, adkim, aspf;
    int testing;
    unsigned fo;
    size_t nrua, nruf;
    int pct;
    size_t nissues;
    const char *first_rua;
};

static const struct good_case good[] = {
    {"minimal", "v=DMARC1; p=none", N, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, -1, 0, NULL},
    {"trailing sep", "v=DMARC1; p=reject;", R, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, -1, 0, NULL},
    {"wsp everywhere", "v = DMARC1 ;\tp = quarantine ; sp=reject ;", Q, R, A, OK, 'u', 'r', 'r', 0,
     1, 0, 0, -1, 0, NULL},
    {"all tags",
     "v=DMARC1; p=reject; sp=quarantine; np=reject; psd=n; t=y; adkim=s; aspf=s; "
     "rua=mailto:a@example.com,mailto:b@example.net; ruf=mailto:f@example.com; fo=1:d:s",
     R, Q, R, OK, 'n', 's', 's', 1, PST_DMARC_FO_1 | PST_DMARC_FO_D | PST_DMARC_FO_S, 2, 1, -1, 0,
     "mailto:a@example.com"},
    {"values case-insensitive", "v=DMARC1; P=Reject; ADKIM=S; psd=Y", R, A, A, OK, 'y', 's', 'r', 0,
     1, 0, 0, -1, 0, NULL},
    {"unknown tag ignored", "v=DMARC1; p=none; xyz=1; future=whatever", N, A, A, OK, 'u', 'r', 'r',
     0, 1, 0, 0, -1, 0, NULL},
    {"bad sp, no rua: no policy", "v=DMARC1; p=reject; sp=bogus", R, A, A, NP, 'u', 'r', 'r', 0, 1,
     0, 0, -1, 1, NULL},
    {"bad np with rua: p=none", "v=DMARC1; p=reject; np=x; rua=mailto:r@example.com", N, A, A, AN,
     'u', 'r', 'r', 0, 1, 1, 0, -1, 1, "mailto:r@example.com"},
    {"no p with rua: p=none", "v=DMARC1; rua=mailto:r@example.com", N, A, A, AN, 'u', 'r', 'r', 0,
     1, 1, 0, -1, 1, NULL},
    {"no p, no rua", "v=DMARC1; adkim=s", A, A, A, NP, 'u', 's', 'r', 0, 1, 0, 0, -1, 1, NULL},
    {"no p, bad rua", "v=DMARC1; rua=not a uri", A, A, A, NP, 'u', 'r', 'r', 0, 1, 0, 0, -1, 2,
     NULL},
    {"bad p value", "v=DMARC1; p=rejected; rua=mailto:x@example.com", N, A, A, AN, 'u', 'r', 'r', 0,
     1, 1, 0, -1, 1, NULL},
    {"bad adkim keeps r", "v=DMARC1; p=none; adkim=x", N, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, -1,
     1, NULL},
    {"bad t keeps n", "v=DMARC1; p=none; t=yes", N, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, -1, 1,
     NULL},
    {"repeated tag: first wins", "v=DMARC1; p=reject; p=none", R, A, A, OK, 'u', 'r', 'r', 0, 1, 0,
     0, -1, 1, NULL},
    {"report size dropped", "v=DMARC1; p=none; rua=mailto:r@example.com!10m", N, A, A, OK, 'u', 'r',
     'r', 0, 1, 1, 0, -1, 0, "mailto:r@example.com"},
    {"one bad uri of two", "v=DMARC1; p=none; rua=mailto:a@example.com, bogus", N, A, A, OK, 'u',
     'r', 'r', 0, 1, 1, 0, -1, 1, NULL},
    {"fo d alone", "v=DMARC1; p=none; fo=d", N, A, A, OK, 'u', 'r', 'r', 0,
     PST_DMARC_FO_0 | PST_DMARC_FO_D, 0, 0, -1, 0, NULL},
    {"fo 0:1 invalid", "v=DMARC1; p=none; fo=0:1", N, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, -1, 1,
     NULL},
    {"pct=0 is t=y (A.6)", "v=DMARC1; p=reject; pct=0", R, A, A, OK, 'u', 'r', 'r', 1, 1, 0, 0, 0,
     1, NULL},
    {"pct=0 but t=n", "v=DMARC1; p=reject; pct=0; t=n", R, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, 0,
     1, NULL},
    {"pct=50 ignored", "v=DMARC1; p=reject; pct=50", R, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, 50, 1,
     NULL},
    {"pct=101 invalid", "v=DMARC1; p=reject; pct=101", R, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, -1,
     2, NULL},
    {"rf ri parsed", "v=DMARC1; p=none; rf=afrf; ri=3600", N, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0,
     -1, 2, NULL},
    {"garbage tag skipped", "v=DMARC1; p=none; 123; =x", N, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, -1,
     2, NULL},
    {"empty between seps", "v=DMARC1;; p=none", N, A, A, OK, 'u', 'r', 'r', 0, 1, 0, 0, -1, 1,
     NULL},
};

static void test_good(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const struct good_case *c = &good[i];
        struct pst_dmarc_record *r = NULL;
        const char *why = NULL;
        int rc = pst_dmarc_record_parse(c->txt, strlen(c->txt), &r, &why);
        if (rc != 0) {
            printf("# %s: got rc %d (%s) want 0\n", c->name, rc, why);
            failures++;
            continue;
        }
        if (r->p != c->p || r->sp != c->sp || r->np != c->np || r->state != c->state ||
            r->psd != c->psd || r->adkim != c->adkim || r->aspf != c->aspf ||
            r->testing != c->testing || r->fo != c->fo || r->nrua != c->nrua ||
            r->nruf != c->nruf || r->pct != c->pct || r->nissues != c->nissues ||
            (c->first_rua && strcmp(r->rua[0], c->first_rua) != 0)) {
            printf("# %s: got p=%d sp=%d np=%d state=%d psd=%c adkim=%c aspf=%c t=%d fo=%u "
                   "rua=%zu ruf=%zu pct=%d issues=%zu\n",
                   c->name, r->p, r->sp, r->np, r->state, r->psd, r->adkim, r->aspf, r->testing,
                   r->fo, r->nrua, r->nruf, r->pct, r->nissues);
            printf("#   want p=%d sp=%d np=%d state=%d psd=%c adkim=%c aspf=%c t=%d fo=%u rua=%zu "
                   "ruf=%zu pct=%d issues=%zu\n",
                   c->p, c->sp, c->np, c->state, c->psd, c->adkim, c->aspf, c->testing, c->fo,
                   c->nrua, c->nruf, c->pct, c->nissues);
            for (size_t k = 0; k < r->nissues; k++)
                printf("#   issue %s: %s\n", r->issues[k].tag, r->issues[k].why);
            failures++;
        }
        pst_dmarc_record_free(r);
    }
    assert_int_equal(failures, 0);
}

struct bad_case {
    const char *name, *txt;
    int rc;
    const char *why_has;
};

static const struct bad_case bad[] = {
    {"empty", "", PST_ERR_SYNTAX, "v=DMARC1"},
    {"v not first", "p=none; v=DMARC1", PST_ERR_SYNTAX, "first"},
    {"v lower case value", "v=dmarc1; p=none", PST_ERR_SYNTAX, "v=DMARC1"},
    {"v other version", "v=DMARC2; p=none", PST_ERR_SYNTAX, "v=DMARC1"},
    {"v prefix only", "v=DMARC10; p=none", PST_ERR_SYNTAX, "v=DMARC1"},
    {"spf record", "v=spf1 -all", PST_ERR_SYNTAX, "v=DMARC1"},
    {"leading space", " v=DMARC1; p=none", PST_ERR_SYNTAX, "v=DMARC1"},
    {"control char", "v=DMARC1; p=none\r\n", PST_ERR_SYNTAX, "control"},
};

static void test_bad(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const struct bad_case *c = &bad[i];
        struct pst_dmarc_record *r = NULL;
        const char *why = NULL;
        int rc = pst_dmarc_record_parse(c->txt, strlen(c->txt), &r, &why);
        if (rc != c->rc || r != NULL || why == NULL || strstr(why, c->why_has) == NULL) {
            printf("# %s: got rc %d why \"%s\" want %d \"%s\"\n", c->name, rc, why ? why : "",
                   c->rc, c->why_has);
            failures++;
        }
        pst_dmarc_record_free(r);
    }
    assert_int_equal(failures, 0);
}

static void test_limits(void **state)
{
    (void)state;
    char big[PST_DMARC_MAX_RECORD + 64];
    struct pst_dmarc_record *r = NULL;
    const char *why = NULL;
    size_t n = (size_t)snprintf(big, sizeof(big), "v=DMARC1; p=none");
    while (n < PST_DMARC_MAX_RECORD + 10)
        big[n++] = ' ';
    assert_int_equal(pst_dmarc_record_parse(big, n, &r, &why), PST_ERR_TOOBIG);
    assert_null(r);

    /* 33 tags */
    n = (size_t)snprintf(big, sizeof(big), "v=DMARC1; p=none");
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "; x=%d", i);
    assert_int_equal(pst_dmarc_record_parse(big, n, &r, &why), PST_ERR_TOOBIG);

    /* 10 URIs: 8 kept, one issue */
    n = (size_t)snprintf(big, sizeof(big), "v=DMARC1; p=none; rua=");
    for (int i = 0; i < 10; i++)
        n +=
            (size_t)snprintf(big + n, sizeof(big) - n, "%smailto:r%d@example.com", i ? "," : "", i);
    assert_int_equal(pst_dmarc_record_parse(big, n, &r, &why), 0);
    assert_int_equal(r->nrua, PST_DMARC_MAX_URIS);
    assert_int_equal(r->nissues, 1);
    pst_dmarc_record_free(r);

    /* a URI over PST_DMARC_MAX_URI bytes */
    n = (size_t)snprintf(big, sizeof(big), "v=DMARC1; p=none; rua=mailto:");
    for (int i = 0; i < PST_DMARC_MAX_URI; i++)
        big[n++] = 'a';
    assert_int_equal(pst_dmarc_record_parse(big, n, &r, &why), 0);
    assert_int_equal(r->nrua, 0);
    pst_dmarc_record_free(r);

    /* a NUL inside */
    assert_int_equal(pst_dmarc_record_parse("v=DMARC1; p=none\0x", 18, &r, &why), PST_ERR_SYNTAX);
}

static void test_is_dmarc(void **state)
{
    (void)state;
    assert_true(pst_dmarc_record_is_dmarc("v=DMARC1", 8));
    assert_true(pst_dmarc_record_is_dmarc("v =\tDMARC1;p=none", 17));
    assert_false(pst_dmarc_record_is_dmarc("v=DMARC1x", 9));
    assert_false(pst_dmarc_record_is_dmarc("V=DMARC1", 8));
    assert_false(pst_dmarc_record_is_dmarc("", 0));
    assert_string_equal(pst_dmarc_policy_name(PST_DMARC_POLICY_QUARANTINE), "quarantine");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_is_dmarc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
