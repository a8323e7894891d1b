/*
 * cmd_auth.c - `postern auth`: the checks posternd runs on a received
 * message (lib/core/auth: SPF, DKIM, DMARC), on a message from stdin with
 * the SMTP facts given as options.
 *
 * Output, plain: the Authentication-Results field as posternd would add
 * it (folded, CRLF shown as line ends), then one line
 *   disposition: deliver|quarantine|reject|tempfail
 * Output, --json (kept for scripts and tests):
 *   {"authentication_results":"Authentication-Results: ...",
 *    "spf":"pass"|null, "dkim":[{"result":..,"domain":..,"selector":..,
 *    "reason":..}], "dmarc":{"result":..,"header_from":..,"policy":..,
 *    "disposition":..,"reason":..}|null, "disposition":"deliver"}
 *
 * Exit status: 0 deliver; 1 quarantine or reject; 75 tempfail; 2 usage
 * or setup error.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "cli.h"
#include "dns.h"
#include "err.h"
#include "psl.h"

void cmd_auth_usage(FILE *f)
{
    fprintf(f, "  postern auth --ip IP --mail-from ADDR [--helo NAME] [--authserv-id NAME]\n"
               "               [--psl] [--dns-server ADDR[:PORT] | --dns-zone FILE]\n"
               "               [--timeout SECONDS] [--json] < MESSAGE\n"
               "      The checks posternd runs on received mail: SPF for the MAIL FROM\n"
               "      (--mail-from \"\" for the null sender), every DKIM signature, DMARC for\n"
               "      the From domain (DNS tree walk, or RFC 7489 with --psl). Prints the\n"
               "      Authentication-Results field and the disposition: deliver, quarantine,\n"
               "      reject or tempfail. Exit status 0 deliver; 1 quarantine or reject;\n"
               "      75 tempfail; 2 usage.\n");
}

static int usage_error(const char *what)
{
    fprintf(stderr, "postern: auth: %s\nusage:\n", what);
    cmd_auth_usage(stderr);
    return CLI_ERROR;
}

static void feed(void *arg, const char *p, size_t n)
{
    pst_auth_body(arg, p, n);
}

static json_t *dkim_json(const struct pst_auth *a)
{
    json_t *arr = json_array();
    size_t n = 0, skipped = 0;
    const struct pst_dkim_verdict *v = pst_auth_dkim(a, &n, &skipped);
    for (size_t i = 0; arr != NULL && i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "result",
                                             pst_dkim_result_name(v[i].result), "domain", v[i].d,
                                             "selector", v[i].s, "reason", v[i].reason));
    return arr;
}

static json_t *dmarc_json(const struct pst_auth *a)
{
    const struct pst_dmarc_eval *e = pst_auth_dmarc(a);
    if (e == NULL)
        return json_null();
    return json_pack("{s:s, s:s, s:s?, s:s, s:b, s:s}", "result", pst_dmarc_result_name(e->result),
                     "header_from", e->author, "policy", e->policy_tag ? e->policy_tag : NULL,
                     "disposition", pst_dmarc_policy_name(e->disposition), "testing", e->testing,
                     "reason", e->reason);
}

int cmd_auth(int argc, char **argv)
{
    struct cli_dns_opts dopts = {0};
    struct pst_auth_in in = {0};
    const char *authserv_id = NULL;
    int json = 0, use_psl = 0, used;
    char host[256];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--psl") == 0) {
            use_psl = 1;
        } else if ((used = cli_dns_option(argc, argv, &i, &dopts, "auth")) != 0) {
            if (used < 0)
                return CLI_ERROR;
        } else if (i + 1 >= argc) {
            return usage_error(strncmp(a, "--", 2) == 0 ? "option needs a value"
                                                        : "unknown argument");
        } else if (strcmp(a, "--ip") == 0) {
            in.ip = argv[++i];
        } else if (strcmp(a, "--helo") == 0) {
            in.helo = argv[++i];
        } else if (strcmp(a, "--mail-from") == 0) {
            in.mailfrom = argv[++i];
        } else if (strcmp(a, "--authserv-id") == 0) {
            authserv_id = argv[++i];
        } else {
            return usage_error("unknown option");
        }
    }
    if (in.ip == NULL)
        return usage_error("--ip is required");
    if (in.mailfrom == NULL)
        return usage_error("--mail-from is required (\"\" for the null sender)");
    if (in.mailfrom[0] == '\0' && in.helo == NULL)
        return usage_error("--helo is required with the null sender");
    if (authserv_id == NULL) {
        if (gethostname(host, sizeof host) != 0)
            return usage_error("no --authserv-id, and no host name");
        host[sizeof host - 1] = '\0';
        authserv_id = host;
    }

    struct cli_message m = {0};
    struct pst_resolver *r = NULL;
    struct pst_psl *psl = NULL;
    struct pst_auth *au = NULL;
    struct pst_buf *out = pst_buf_new(64 * 1024);
    int ret = cli_message_read(&m, "auth");
    if (ret != CLI_OK || out == NULL)
        goto done;
    ret = cli_dns_resolver(&dopts, "auth", &r);
    if (ret != CLI_OK)
        goto done;
    char err[256];
    if (use_psl && pst_psl_open(NULL, &psl, err, sizeof err) != 0) {
        fprintf(stderr, "postern: auth: %s\n", err);
        ret = CLI_ERROR;
        goto done;
    }
    struct pst_auth_opts o = {.resolver = r,
                              .authserv_id = authserv_id,
                              .now = (int64_t)time(NULL),
                              .timeout_ms = dopts.timeout_ms,
                              .dmarc_mode = use_psl ? PST_DMARC_PSL : PST_DMARC_TREEWALK,
                              .dmarc_psl = psl ? pst_psl_dmarc(psl) : NULL};
    /* the header section without the empty line that ends it */
    size_t hlen = pst_buf_len(m.hdr);
    if (hlen >= 2 && memcmp(pst_buf_data(m.hdr) + hlen - 2, "\r\n", 2) == 0 && hlen >= 4 &&
        memcmp(pst_buf_data(m.hdr) + hlen - 4, "\r\n\r\n", 4) == 0)
        hlen -= 2;
    int rc = pst_auth_start(&o, &in, pst_buf_data(m.hdr), hlen, &au);
    if (rc != 0) {
        fprintf(stderr, "postern: auth: %s\n",
                rc == PST_ERR_INVAL ? "--ip is not an IP address" : pst_strerror(rc));
        ret = CLI_ERROR;
        goto done;
    }
    cli_message_feed(&m, feed, au);
    if (pst_auth_finish(au) != 0 || pst_auth_header(au, out) != 0) {
        fprintf(stderr, "postern: auth: out of memory\n");
        ret = CLI_ERROR;
        goto done;
    }
    enum pst_auth_disposition d = pst_auth_disposition(au);
    if (json) {
        const struct pst_spf_verdict *spf = pst_auth_spf(au);
        json_t *doc = json_pack(
            "{s:s%, s:s?, s:o, s:o, s:s}", "authentication_results", pst_buf_data(out),
            pst_buf_len(out), "spf", spf ? pst_spf_result_name(spf->result) : NULL, "dkim",
            dkim_json(au), "dmarc", dmarc_json(au), "disposition", pst_auth_disposition_name(d));
        char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (s == NULL) {
            fprintf(stderr, "postern: auth: out of memory\n");
            ret = CLI_ERROR;
            goto done;
        }
        printf("%s\n", s);
        free(s);
    } else {
        /* the field as it would stand in the message, with LF line ends */
        const char *p = pst_buf_data(out);
        for (size_t i = 0; i < pst_buf_len(out); i++)
            if (p[i] != '\r')
                putchar(p[i]);
        printf("disposition: %s\n", pst_auth_disposition_name(d));
    }
    ret = d == PST_AUTH_DELIVER    ? CLI_OK
          : d == PST_AUTH_TEMPFAIL ? CLI_TEMPFAIL
                                   : 1 /* quarantine or reject */;
done:
    pst_auth_free(au);
    pst_psl_free(psl);
    pst_resolver_free(r);
    pst_buf_free(out);
    cli_message_free(&m);
    return ret;
}
