/*
 * cmd_spf.c - `postern spf check`: the SPF library (lib/core/spf, RFC
 * 7208) for one client address and identity, through the public API only.
 *
 * Output, plain (first line is the contract):
 *   RESULT TEXT
 *   identity=smtp.mailfrom value=ADDR domain=DOMAIN mechanism=TERM|- terms=N voids=N queries=N
 * where RESULT is the RFC 7208 2.6 word and TEXT the expanded explanation
 * (exp=) for a fail that has one, else the reason.
 * Output, --json (the end-to-end tests rely on it; keep it):
 *   {"result":"fail","identity":"smtp.mailfrom","value":"joe@example.test",
 *    "domain":"example.test","mechanism":"-all","explanation":null,
 *    "reason":"...","terms":1,"voids":0,"queries":2}
 *
 * Exit status: 0 pass; 1 fail, softfail, neutral, none or permerror;
 * 75 temperror; 2 usage or setup error.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "dns.h"
#include "err.h"
#include "spf.h"

void cmd_spf_usage(FILE *f)
{
    fprintf(f,
            "  postern spf check --ip IP --sender ADDR [--helo NAME] [--identity mailfrom|helo]\n"
            "                    [--receiver NAME] [--now EPOCH]\n"
            "                    [--dns-server ADDR[:PORT] | --dns-zone FILE] [--timeout SECONDS]\n"
            "                    [--json]\n"
            "      SPF (RFC 7208) for a client address: the MAIL FROM identity (an empty\n"
            "      --sender \"\" checks postmaster@HELO), or the HELO identity. First line:\n"
            "      the result (none neutral pass fail softfail temperror permerror), then\n"
            "      the explanation (exp=) of a fail or the reason. Exit status 0 pass;\n"
            "      1 fail, softfail, neutral, none or permerror; 75 temperror; 2 usage.\n");
}

static int usage_error(const char *what)
{
    fprintf(stderr, "postern: spf check: %s\nusage:\n", what);
    cmd_spf_usage(stderr);
    return CLI_ERROR;
}

static int spf_check(int argc, char **argv)
{
    struct cli_dns_opts dopts = {0};
    struct pst_spf_options o;
    const char *ip = NULL, *sender = NULL, *helo = NULL;
    enum pst_spf_identity id = PST_SPF_MAILFROM;
    int json = 0, used;

    pst_spf_options_default(&o);
    o.now = (long long)time(NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if ((used = cli_dns_option(argc, argv, &i, &dopts, "spf check")) != 0) {
            if (used < 0)
                return CLI_ERROR;
        } else if (i + 1 >= argc) {
            return usage_error(strncmp(a, "--", 2) == 0 ? "option needs a value"
                                                        : "unknown argument");
        } else if (strcmp(a, "--ip") == 0) {
            ip = argv[++i];
        } else if (strcmp(a, "--sender") == 0) {
            sender = argv[++i];
        } else if (strcmp(a, "--helo") == 0) {
            helo = argv[++i];
        } else if (strcmp(a, "--receiver") == 0) {
            o.receiver = argv[++i];
        } else if (strcmp(a, "--identity") == 0) {
            const char *v = argv[++i];
            if (strcmp(v, "mailfrom") == 0)
                id = PST_SPF_MAILFROM;
            else if (strcmp(v, "helo") == 0)
                id = PST_SPF_HELO;
            else
                return usage_error("--identity is mailfrom or helo");
        } else if (strcmp(a, "--now") == 0) {
            char *end;
            errno = 0;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || errno != 0 || v < 0)
                return usage_error("--now wants seconds since the epoch");
            o.now = v;
        } else {
            return usage_error("unknown option");
        }
    }
    if (ip == NULL)
        return usage_error("--ip is required");
    if (id == PST_SPF_MAILFROM && sender == NULL)
        return usage_error("--sender is required (\"\" for the null sender)");
    if ((id == PST_SPF_HELO || sender[0] == '\0') && (helo == NULL || helo[0] == '\0'))
        return usage_error("--helo is required for the HELO identity and the null sender");
    o.timeout_ms = dopts.timeout_ms;

    struct pst_resolver *r = NULL;
    struct pst_spf_verdict *v = NULL;
    int ret = cli_dns_resolver(&dopts, "spf check", &r);
    if (ret != CLI_OK)
        return ret;
    int rc = pst_spf_check(r, &o, id, ip, sender, helo, &v);
    if (rc == PST_ERR_INVAL) {
        ret = usage_error("--ip is not an IP address, or an identity is missing or too long");
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "postern: spf check: %s\n", pst_strerror(rc));
        ret = CLI_ERROR;
        goto out;
    }
    const char *text = v->explanation != NULL ? v->explanation : v->reason;
    if (json) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, s:I, s:I, s:I}", "result",
                                pst_spf_result_name(v->result), "identity", pst_spf_ar_property(v),
                                "value", pst_spf_ar_value(v), "domain", v->domain, "mechanism",
                                v->mechanism, "explanation", v->explanation, "reason", v->reason,
                                "terms", (json_int_t)v->terms, "voids", (json_int_t)v->voids,
                                "queries", (json_int_t)v->queries);
        char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
        if (s == NULL) {
            json_decref(doc);
            fprintf(stderr, "postern: spf check: %s\n", pst_strerror(PST_ERR_NOMEM));
            ret = CLI_ERROR;
            goto out;
        }
        printf("%s\n", s);
        free(s);
        json_decref(doc);
    } else {
        printf("%s %s\n", pst_spf_result_name(v->result), text);
        printf("identity=%s value=%s domain=%s mechanism=%s terms=%u voids=%u queries=%u\n",
               pst_spf_ar_property(v), pst_spf_ar_value(v), v->domain,
               v->mechanism != NULL ? v->mechanism : "-", v->terms, v->voids, v->queries);
    }
    ret = v->result == PST_SPF_PASS        ? CLI_OK
          : v->result == PST_SPF_TEMPERROR ? CLI_TEMPFAIL
                                           : CLI_NOTFOUND;
out:
    pst_spf_verdict_free(v);
    pst_resolver_free(r);
    return ret;
}

int cmd_spf(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing subcommand");
    const char *sub = argv[1];
    if (strcmp(sub, "check") == 0)
        return spf_check(argc - 1, argv + 1);
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0) {
        printf("usage:\n");
        cmd_spf_usage(stdout);
        return CLI_OK;
    }
    return usage_error("unknown subcommand");
}
