/*
 * cmd_dns.c - `postern dns query NAME TYPE`: what postern's resolver sees,
 * through the library's public API only (dns.h, resolver.h), and the DNS
 * options every command that does DNS shares (cli_dns_option,
 * cli_dns_resolver).
 *
 * Output, plain:
 *   status=ok notfound=- dnssec=insecure ttl=300 canonical=www.example.test.
 *   <one record per line>
 * with reason="..." added to the first line when the answer has one.
 * Output, --json (a contract the end-to-end tests rely on; keep it):
 *   {"name":"www.example.test.","type":"MX","status":"ok","notfound":null,
 *    "dnssec":"insecure","ttl":300,"canonical":"www.example.test.",
 *    "reason":null,"records":[...]}
 * records: A/AAAA "192.0.2.1"; TXT the joined strings, bytes outside
 * 0x20..0x7e and the backslash as \DDD; MX {"preference":10,"exchange":
 * "mx.example.test."}; TLSA {"usage":3,"selector":1,"mtype":1,"data":
 * "<hex>"}; PTR and CNAME "host.example.test.".
 *
 * Exit status: 0 OK, 1 NOTFOUND, 75 RETRY (EX_TEMPFAIL), 2 FAIL or usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "dns.h"
#include "err.h"
#include "resolver.h"

#define MAX_TIMEOUT_S 300
#define TEXT_MAX      (4 * PST_DNS_MAX_ANSWER_BYTES + 16)

void cmd_dns_usage(FILE *f)
{
    fprintf(f,
            "  postern dns query NAME TYPE [--dns-server ADDR[:PORT] | --dns-zone FILE]\n"
            "                   [--trust-anchor FILE] [--timeout SECONDS] [--json]\n"
            "      what postern's resolver answers; TYPE is A, AAAA, TXT, MX, TLSA, PTR\n"
            "      or CNAME (for PTR, NAME may be an IP address). First line:\n"
            "      status=ok|notfound|retry|fail notfound=nxdomain|nodata|-\n"
            "      dnssec=secure|insecure|bogus ttl=N canonical=NAME [reason=\"...\"],\n"
            "      then one record per line. Exit status 0 ok, 1 not found,\n"
            "      75 temporary failure, 2 failure or usage error.\n"
            "      --dns-server  forward to ADDR[:PORT] ([::1]:53 for IPv6 with a port)\n"
            "                    instead of the servers of /etc/resolv.conf\n"
            "      --dns-zone    answer from an RFC 1035 zone file instead of the network;\n"
            "                    a name holding the TXT record \"postern-test=servfail\"\n"
            "                    or \"postern-test=timeout\" answers retry (for tests)\n"
            "      --trust-anchor  DS/DNSKEY file: validate DNSSEC (secure/bogus)\n"
            "      --timeout     seconds per query, 1..%d (default %d)\n",
            MAX_TIMEOUT_S, PST_DNS_TIMEOUT_MS / 1000);
}

/* ---- shared DNS options ------------------------------------------------- */

int cli_dns_option(int argc, char **argv, int *i, struct cli_dns_opts *o, const char *cmd)
{
    const char *s = argv[*i];
    static const char *const names[] = {"--dns-server", "--dns-zone", "--trust-anchor",
                                        "--timeout"};
    const char *val = NULL;
    size_t which = 0;

    for (which = 0; which < sizeof names / sizeof names[0]; which++) {
        size_t n = strlen(names[which]);
        if (strncmp(s, names[which], n) == 0 && (s[n] == '\0' || s[n] == '=')) {
            if (s[n] == '=') {
                val = s + n + 1;
            } else if (*i + 1 < argc) {
                val = argv[++*i];
            } else {
                fprintf(stderr, "postern: %s: %s needs a value\n", cmd, s);
                return -1;
            }
            break;
        }
    }
    if (which == sizeof names / sizeof names[0])
        return 0;
    if (val[0] == '\0') {
        fprintf(stderr, "postern: %s: %s needs a value\n", cmd, names[which]);
        return -1;
    }
    switch (which) {
    case 0:
        o->server = val;
        break;
    case 1:
        o->zone = val;
        break;
    case 2:
        o->trust_anchor = val;
        break;
    default: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(val, &end, 10);
        if (val[0] < '0' || val[0] > '9' || *end != '\0' || errno != 0 || v < 1 ||
            v > MAX_TIMEOUT_S) {
            fprintf(stderr, "postern: %s: --timeout wants whole seconds, 1..%d\n", cmd,
                    MAX_TIMEOUT_S);
            return -1;
        }
        o->timeout_ms = (unsigned)v * 1000;
        break;
    }
    }
    return 1;
}

int cli_dns_resolver(const struct cli_dns_opts *o, const char *cmd, struct pst_resolver **r)
{
    char err[512] = "";
    int rc;

    if (o->zone != NULL && (o->server != NULL || o->trust_anchor != NULL)) {
        fprintf(stderr,
                "postern: %s: --dns-zone answers alone: no --dns-server or "
                "--trust-anchor with it\n",
                cmd);
        return CLI_ERROR;
    }
    if (o->zone != NULL) {
        rc = pst_resolver_zone_open(o->zone, r, err, sizeof err);
    } else {
        struct pst_resolver_unbound_conf c = {.server = o->server, .trust_anchor = o->trust_anchor};
        rc = pst_resolver_unbound_new(&c, r, err, sizeof err);
    }
    if (rc != 0) {
        fprintf(stderr, "postern: %s: %s\n", cmd, err[0] != '\0' ? err : pst_strerror(rc));
        return CLI_ERROR;
    }
    return CLI_OK;
}

/* ---- output ------------------------------------------------------------- */

/* Text of a record's bytes in the \DDD style; NULL when out of memory. */
static char *escaped(const unsigned char *p, size_t n, int quote)
{
    struct pst_buf *b = pst_buf_new(TEXT_MAX);
    char *s = NULL;

    if (b != NULL && pst_dns_text_escape(b, p, n, quote) == 0)
        s = pst_buf_steal(b);
    pst_buf_free(b);
    return s;
}

static char *hex(const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);

    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 0xf];
    }
    s[2 * n] = '\0';
    return s;
}

static void addr_text(const struct pst_dns_rr *rr, char *out, size_t outlen)
{
    if (inet_ntop(rr->type == PST_DNS_A ? AF_INET : AF_INET6, rr->addr, out, (socklen_t)outlen) ==
        NULL)
        snprintf(out, outlen, "?");
}

static int print_plain(const struct pst_dns_answer *a)
{
    const char *nf = pst_dns_notfound_name(a->notfound);
    char addr[INET6_ADDRSTRLEN];

    printf("status=%s notfound=%s dnssec=%s ttl=%u canonical=%s", pst_dns_status_name(a->status),
           nf != NULL ? nf : "-", pst_dns_dnssec_name(a->dnssec), (unsigned)a->ttl, a->canonical);
    if (a->reason != NULL) {
        char *r = escaped((const unsigned char *)a->reason, strlen(a->reason), 1);
        if (r == NULL)
            return PST_ERR_NOMEM;
        printf(" reason=\"%s\"", r);
        free(r);
    }
    printf("\n");
    for (size_t i = 0; i < a->nrrs; i++) {
        const struct pst_dns_rr *rr = &a->rrs[i];
        char *s = NULL;
        switch (rr->type) {
        case PST_DNS_A:
        case PST_DNS_AAAA:
            addr_text(rr, addr, sizeof addr);
            printf("%s\n", addr);
            break;
        case PST_DNS_TXT:
            if ((s = escaped(rr->data, rr->len, 1)) == NULL)
                return PST_ERR_NOMEM;
            printf("\"%s\"\n", s);
            break;
        case PST_DNS_MX:
            printf("%u %s\n", (unsigned)rr->preference, rr->name);
            break;
        case PST_DNS_TLSA:
            if ((s = hex(rr->data, rr->len)) == NULL)
                return PST_ERR_NOMEM;
            printf("%u %u %u %s\n", (unsigned)rr->usage, (unsigned)rr->selector,
                   (unsigned)rr->mtype, s);
            break;
        default:
            printf("%s\n", rr->name);
            break;
        }
        free(s);
    }
    return 0;
}

/* One record as JSON; NULL when out of memory. */
static json_t *json_record(const struct pst_dns_rr *rr)
{
    char addr[INET6_ADDRSTRLEN];
    json_t *j = NULL;
    char *s = NULL;

    switch (rr->type) {
    case PST_DNS_A:
    case PST_DNS_AAAA:
        addr_text(rr, addr, sizeof addr);
        return json_string(addr);
    case PST_DNS_TXT:
        if ((s = escaped(rr->data, rr->len, 0)) != NULL)
            j = json_string(s);
        free(s);
        return j;
    case PST_DNS_MX:
        return json_pack("{s:i,s:s}", "preference", (json_int_t)rr->preference, "exchange",
                         rr->name);
    case PST_DNS_TLSA:
        if ((s = hex(rr->data, rr->len)) != NULL)
            j = json_pack("{s:i,s:i,s:i,s:s}", "usage", (json_int_t)rr->usage, "selector",
                          (json_int_t)rr->selector, "mtype", (json_int_t)rr->mtype, "data", s);
        free(s);
        return j;
    default:
        return json_string(rr->name);
    }
}

static int print_json(const struct pst_dns_answer *a)
{
    const char *nf = pst_dns_notfound_name(a->notfound);
    json_t *records = json_array();
    json_t *o = NULL;
    char *reason = NULL, *text = NULL;
    int rc = PST_ERR_NOMEM;

    if (records == NULL)
        goto out;
    for (size_t i = 0; i < a->nrrs; i++)
        if (json_array_append_new(records, json_record(&a->rrs[i])) != 0)
            goto out;
    if (a->reason != NULL &&
        (reason = escaped((const unsigned char *)a->reason, strlen(a->reason), 0)) == NULL)
        goto out;
    /* the key order is the documented one: jansson keeps insertion order */
    o = json_pack("{s:s,s:s,s:s,s:o,s:s,s:I,s:s,s:o,s:O}", "name", a->name, "type",
                  pst_dns_type_name(a->type), "status", pst_dns_status_name(a->status), "notfound",
                  nf != NULL ? json_string(nf) : json_null(), "dnssec",
                  pst_dns_dnssec_name(a->dnssec), "ttl", (json_int_t)a->ttl, "canonical",
                  a->canonical, "reason", reason != NULL ? json_string(reason) : json_null(),
                  "records", records);
    if (o == NULL || (text = json_dumps(o, JSON_COMPACT)) == NULL)
        goto out;
    printf("%s\n", text);
    rc = 0;
out:
    free(text);
    free(reason);
    json_decref(o);
    json_decref(records);
    return rc;
}

/* ---- dns query ---------------------------------------------------------- */

static int dns_query(int argc, char **argv)
{
    struct cli_dns_opts o = {0};
    const char *pos[2];
    int npos = 0, json = 0, opts = 1;

    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        int used;
        if (opts && strcmp(s, "--") == 0) {
            opts = 0;
        } else if (opts && strcmp(s, "--json") == 0) {
            json = 1;
        } else if (opts && (used = cli_dns_option(argc, argv, &i, &o, "dns query")) != 0) {
            if (used < 0)
                return CLI_ERROR;
        } else if (opts && s[0] == '-' && s[1] != '\0') {
            fprintf(stderr, "postern: dns query: unknown option '%s'\n", s);
            return CLI_ERROR;
        } else if (npos < 2) {
            pos[npos++] = s;
        } else {
            fprintf(stderr, "postern: dns query: too many arguments\n");
            return CLI_ERROR;
        }
    }
    if (npos < 2) {
        fprintf(stderr, "postern: dns query: needs NAME and TYPE\nusage:\n");
        cmd_dns_usage(stderr);
        return CLI_ERROR;
    }
    uint16_t type;
    if (pst_dns_type_parse(pos[1], &type) != 0) {
        fprintf(stderr,
                "postern: dns query: type '%s' is not one of A, AAAA, TXT, MX, TLSA, "
                "PTR, CNAME\n",
                pos[1]);
        return CLI_ERROR;
    }
    char name[PST_DNS_NAME_TEXT_MAX];
    if (!(type == PST_DNS_PTR && pst_dns_ptr_name(pos[0], name, sizeof name) == 0) &&
        pst_dns_name_normalize(pos[0], name, sizeof name) != 0) {
        fprintf(stderr, "postern: dns query: '%s' is not a domain name\n", pos[0]);
        return CLI_ERROR;
    }

    struct pst_resolver *r = NULL;
    int ret = cli_dns_resolver(&o, "dns query", &r);
    if (ret != CLI_OK)
        return ret;
    struct pst_dns_budget budget = {.max_queries = 1, .timeout_ms = o.timeout_ms};
    struct pst_dns_answer *a = NULL;
    int rc = pst_dns_query(r, &budget, name, type, &a);
    if (rc != 0) {
        fprintf(stderr, "postern: dns query: %s %s: %s\n", name, pst_dns_type_name(type),
                pst_strerror(rc));
        pst_resolver_free(r);
        return CLI_ERROR;
    }
    rc = json ? print_json(a) : print_plain(a);
    if (rc != 0) {
        fprintf(stderr, "postern: dns query: %s\n", pst_strerror(rc));
        ret = CLI_ERROR;
    } else {
        static const int codes[] = {
            [PST_DNS_OK] = CLI_OK,
            [PST_DNS_NOTFOUND] = CLI_NOTFOUND,
            [PST_DNS_RETRY] = CLI_TEMPFAIL,
            [PST_DNS_FAIL] = CLI_ERROR,
        };
        ret = codes[a->status];
    }
    pst_dns_answer_free(a);
    pst_resolver_free(r);
    return ret;
}

int cmd_dns(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "postern: dns: missing subcommand\nusage:\n");
        cmd_dns_usage(stderr);
        return CLI_ERROR;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        printf("usage:\n");
        cmd_dns_usage(stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "query") == 0)
        return dns_query(argc - 2, argv + 2);
    fprintf(stderr, "postern: dns: unknown subcommand '%s'\nusage:\n", sub);
    cmd_dns_usage(stderr);
    return CLI_ERROR;
}
