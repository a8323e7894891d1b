/*
 * cmd_dmarc.c - `postern dmarc record DOMAIN` (the policy record DMARC
 * discovery finds for DOMAIN, where, and its tags: RFC 9989 4.10) and
 * `postern dmarc lint "RECORD"` (a record checked before publishing:
 * RFC 9989 4.7, 4.8), through the library's public API only.
 *
 * Output of record, plain:
 *   found _dmarc.example.com org-domain=example.com
 *   v=DMARC1; p=reject
 *   <one tag per line: "  p=reject">
 *   query _dmarc.mail.example.com none
 *   query _dmarc.example.com record
 * --json (a contract for the end-to-end tests; keep it):
 *   {"domain":"mail.example.com","found":true,"policy_domain":"example.com",
 *    "org_domain":"example.com","record":"v=DMARC1; p=reject",
 *    "queries":[{"name":"_dmarc.mail.example.com","result":"none"},...],
 *    "tags":{"p":"reject","sp":null,...},"state":"ok","issues":[...],
 *    "error":null}
 * Exit status: 0 a record that applies, 1 none (or one without a policy),
 * 75 temporary DNS failure, 2 usage or a permanent DNS failure.
 *
 * lint prints "valid" or "invalid" with the errors and warnings; --json
 * {"valid":true,"error":null,"tags":{...},"state":"ok","issues":[...]}.
 * Exit status 0 valid (warnings allowed), 1 invalid, 2 usage.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dmarc.h"
#include "dns.h"
#include "err.h"
#include "psl.h"
#include "resolver.h"

void cmd_dmarc_usage(FILE *f)
{
    fprintf(f, "  postern dmarc record DOMAIN [--dns-server ADDR[:PORT] | --dns-zone FILE]\n"
               "                      [--trust-anchor FILE] [--timeout SECONDS] [--psl] [--json]\n"
               "      the DMARC policy record that applies to DOMAIN (RFC 9989 tree walk,\n"
               "      or RFC 7489 with the Public Suffix List when --psl), where it was\n"
               "      found, its tags and the queries asked. Exit status 0 found, 1 none,\n"
               "      75 temporary DNS failure, 2 usage or DNS failure.\n"
               "  postern dmarc lint \"RECORD\" [--json]\n"
               "      checks a DMARC record before publishing it. Exit status 0 valid,\n"
               "      1 invalid, 2 usage.\n");
}

static int usage_error(const char *sub, const char *msg)
{
    fprintf(stderr, "postern: dmarc %s: %s\n", sub, msg);
    cmd_dmarc_usage(stderr);
    return CLI_ERROR;
}

static const char *step_name(enum pst_dmarc_step s)
{
    static const char *const names[] = {"none",    "record",    "multiple",
                                        "invalid", "temperror", "permerror"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static const char *state_name(enum pst_dmarc_rec_state s)
{
    return s == PST_DMARC_REC_OK ? "ok" : s == PST_DMARC_REC_AS_NONE ? "as-none" : "no-policy";
}

static void fo_text(unsigned fo, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s%s", (fo & PST_DMARC_FO_1) ? "1" : "0",
             (fo & PST_DMARC_FO_D) ? ":d" : "", (fo & PST_DMARC_FO_S) ? ":s" : "", "");
}

static json_t *pol_json(enum pst_dmarc_policy p)
{
    return p == PST_DMARC_POLICY_ABSENT ? json_null() : json_string(pst_dmarc_policy_name(p));
}

static json_t *tags_json(const struct pst_dmarc_record *r)
{
    char fo[16], c[2] = {0};
    json_t *t = json_object(), *rua = json_array(), *ruf = json_array();
    fo_text(r->fo, fo, sizeof(fo));
    json_object_set_new(t, "p", pol_json(r->p));
    json_object_set_new(t, "sp", pol_json(r->sp));
    json_object_set_new(t, "np", pol_json(r->np));
    c[0] = r->psd;
    json_object_set_new(t, "psd", json_string(c));
    json_object_set_new(t, "t", json_string(r->testing ? "y" : "n"));
    c[0] = r->adkim;
    json_object_set_new(t, "adkim", json_string(c));
    c[0] = r->aspf;
    json_object_set_new(t, "aspf", json_string(c));
    json_object_set_new(t, "fo", json_string(fo));
    for (size_t i = 0; i < r->nrua; i++)
        json_array_append_new(rua, json_string(r->rua[i]));
    for (size_t i = 0; i < r->nruf; i++)
        json_array_append_new(ruf, json_string(r->ruf[i]));
    json_object_set_new(t, "rua", rua);
    json_object_set_new(t, "ruf", ruf);
    json_object_set_new(t, "pct", r->pct < 0 ? json_null() : json_integer(r->pct));
    json_object_set_new(t, "rf", r->rf[0] ? json_string(r->rf) : json_null());
    json_object_set_new(t, "ri", r->ri < 0 ? json_null() : json_integer(r->ri));
    return t;
}

static json_t *issues_json(const struct pst_dmarc_record *r)
{
    json_t *a = json_array();
    for (size_t i = 0; r != NULL && i < r->nissues; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "tag", r->issues[i].tag, "why",
                                           r->issues[i].why, "warning", r->issues[i].warning));
    return a;
}

static void print_tags(const struct pst_dmarc_record *r)
{
    char fo[16];
    fo_text(r->fo, fo, sizeof(fo));
    printf("  p=%s\n  sp=%s\n  np=%s\n  psd=%c\n  t=%s\n  adkim=%c\n  aspf=%c\n  fo=%s\n",
           pst_dmarc_policy_name(r->p), pst_dmarc_policy_name(r->sp), pst_dmarc_policy_name(r->np),
           r->psd, r->testing ? "y" : "n", r->adkim, r->aspf, fo);
    for (size_t i = 0; i < r->nrua; i++)
        printf("  rua=%s\n", r->rua[i]);
    for (size_t i = 0; i < r->nruf; i++)
        printf("  ruf=%s\n", r->ruf[i]);
    if (r->pct >= 0)
        printf("  pct=%d (RFC 7489)\n", r->pct);
    if (r->rf[0])
        printf("  rf=%s (RFC 7489)\n", r->rf);
    if (r->ri >= 0)
        printf("  ri=%ld (RFC 7489)\n", r->ri);
    printf("  state=%s\n", state_name(r->state));
}

static void print_issues(const struct pst_dmarc_record *r)
{
    for (size_t i = 0; i < r->nissues; i++)
        printf("%s: %s%s%s\n", r->issues[i].warning ? "warning" : "error", r->issues[i].tag,
               r->issues[i].tag[0] ? ": " : "", r->issues[i].why);
}

static int print_json(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        fprintf(stderr, "postern: dmarc: out of memory\n");
        return -1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

/* ---- lint --------------------------------------------------------------- */

static int dmarc_lint(int argc, char **argv)
{
    const char *txt = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            return usage_error("lint", "unknown option");
        else if (txt == NULL)
            txt = argv[i];
        else
            return usage_error("lint", "one RECORD only (quote it)");
    }
    if (txt == NULL)
        return usage_error("lint", "RECORD missing");
    struct pst_dmarc_record *r = NULL;
    const char *why = NULL;
    int rc = pst_dmarc_record_parse(txt, strlen(txt), &r, &why);
    int valid = rc == 0 && r->state == PST_DMARC_REC_OK;
    for (size_t i = 0; valid && i < r->nissues; i++)
        if (!r->issues[i].warning)
            valid = 0;
    if (rc == PST_ERR_NOMEM) {
        fprintf(stderr, "postern: dmarc lint: out of memory\n");
        return CLI_ERROR;
    }
    if (json) {
        json_t *doc = json_pack(
            "{s:b, s:o, s:o, s:o, s:o}", "valid", valid, "error",
            rc ? json_string(why) : json_null(), "tags", r ? tags_json(r) : json_null(), "state",
            r ? json_string(state_name(r->state)) : json_null(), "issues", issues_json(r));
        if (print_json(doc) != 0)
            valid = -1;
    } else if (rc != 0) {
        printf("invalid: %s\n", why);
    } else {
        printf("%s\n", valid ? "valid" : "invalid");
        print_tags(r);
        if (r->state == PST_DMARC_REC_AS_NONE)
            printf("error: no valid policy: receivers act as if p=none (RFC 9989 4.10.1)\n");
        else if (r->state == PST_DMARC_REC_NO_POLICY)
            printf("error: no valid policy and no valid rua: receivers apply no DMARC "
                   "(RFC 9989 4.10.1)\n");
        print_issues(r);
    }
    pst_dmarc_record_free(r);
    return valid < 0 ? CLI_ERROR : valid ? CLI_OK : CLI_NOTFOUND;
}

/* ---- record ------------------------------------------------------------- */

static int dmarc_record(int argc, char **argv)
{
    struct cli_dns_opts dopts = {0};
    const char *domain = NULL;
    int json = 0, use_psl = 0;
    for (int i = 1; i < argc; i++) {
        int used;
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--psl") == 0) {
            use_psl = 1;
        } else if ((used = cli_dns_option(argc, argv, &i, &dopts, "dmarc record")) != 0) {
            if (used < 0)
                return CLI_ERROR;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return usage_error("record", "unknown option");
        } else if (domain == NULL) {
            domain = argv[i];
        } else {
            return usage_error("record", "one DOMAIN only");
        }
    }
    if (domain == NULL)
        return usage_error("record", "DOMAIN missing");

    struct pst_resolver *r = NULL;
    struct pst_psl *psl = NULL;
    struct pst_dmarc_walk *w = NULL;
    int ret;
    char err[512];
    if (use_psl && pst_psl_open(NULL, &psl, err, sizeof(err)) != 0) {
        fprintf(stderr, "postern: dmarc record: %s\n", err);
        return CLI_ERROR;
    }
    if ((ret = cli_dns_resolver(&dopts, "dmarc record", &r)) != CLI_OK)
        goto out;
    struct pst_dns_budget budget = {.max_queries = PST_DMARC_WALK_MAX,
                                    .timeout_ms = dopts.timeout_ms};
    struct pst_dmarc_opts o = {.resolver = r,
                               .budget = &budget,
                               .mode = use_psl ? PST_DMARC_PSL : PST_DMARC_TREEWALK,
                               .psl = pst_psl_dmarc(psl)};
    int rc = pst_dmarc_walk(&o, domain, &w);
    if (rc == PST_ERR_SYNTAX) {
        ret = usage_error("record", "DOMAIN is not a domain name");
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "postern: dmarc record: %s\n", pst_strerror(rc));
        ret = CLI_ERROR;
        goto out;
    }
    const struct pst_dmarc_walk_query *pq = w->policy >= 0 ? &w->q[w->policy] : NULL;
    if (w->error)
        ret = w->error == PST_DMARC_STEP_TEMPERROR ? CLI_TEMPFAIL : CLI_ERROR;
    else if (pq == NULL || pq->rec->state == PST_DMARC_REC_NO_POLICY)
        ret = CLI_NOTFOUND;
    else
        ret = CLI_OK;
    if (json) {
        json_t *qs = json_array();
        for (size_t i = 0; i < w->nq; i++) {
            char name[PST_DMARC_DOMAIN_MAX + 8];
            snprintf(name, sizeof(name), "_dmarc.%s", w->q[i].domain);
            json_array_append_new(
                qs, json_pack("{s:s, s:s}", "name", name, "result", step_name(w->q[i].step)));
        }
        json_t *doc = json_pack("{s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "domain",
                                w->start, "found", pq != NULL, "policy_domain",
                                pq ? json_string(pq->domain) : json_null(), "org_domain",
                                w->error ? json_null() : json_string(w->org), "record",
                                pq ? json_string(pq->text) : json_null(), "queries", qs, "tags",
                                pq ? tags_json(pq->rec) : json_null(), "state",
                                pq ? json_string(state_name(pq->rec->state)) : json_null(),
                                "issues", issues_json(pq ? pq->rec : NULL), "error",
                                w->error ? json_string(w->dns_reason) : json_null());
        if (print_json(doc) != 0)
            ret = CLI_ERROR;
    } else {
        if (w->error)
            printf("error %s: %s\n", step_name((enum pst_dmarc_step)w->error), w->dns_reason);
        else if (pq == NULL)
            printf("none org-domain=%s\n", w->org);
        else
            printf("found _dmarc.%s org-domain=%s\n%s\n", pq->domain, w->org, pq->text);
        if (pq != NULL) {
            print_tags(pq->rec);
            print_issues(pq->rec);
        }
        for (size_t i = 0; i < w->nq; i++)
            printf("query _dmarc.%s %s%s%s\n", w->q[i].domain, step_name(w->q[i].step),
                   w->q[i].why ? ": " : "", w->q[i].why ? w->q[i].why : "");
    }
out:
    pst_dmarc_walk_free(w);
    pst_resolver_free(r);
    pst_psl_free(psl);
    return ret;
}

int cmd_dmarc(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("", "record or lint?");
    if (strcmp(argv[1], "record") == 0)
        return dmarc_record(argc - 1, argv + 1);
    if (strcmp(argv[1], "lint") == 0)
        return dmarc_lint(argc - 1, argv + 1);
    return usage_error(argv[1], "unknown subcommand (record, lint)");
}
