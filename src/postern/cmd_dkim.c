/*
 * cmd_dkim.c - `postern dkim keygen|sign|verify`: the DKIM library
 * (lib/core/dkim) on files and standard input.
 *
 *   keygen  a key pair: the private key to a new file (mode 0600, PEM,
 *           never overwritten) and the key record as a zone-file line,
 *           its text split into strings of at most 255 octets (RFC 1035
 *           3.3.14, RFC 6376 3.6.2.2)
 *   sign    the message on stdin with one signature per -s/-k pair; the
 *           signature fields and then the message unchanged on stdout
 *   verify  every signature of the message on stdin (up to --max-sigs):
 *           one line each, the RFC 8601 result word first
 *
 * Messages with LF line ends (files on disk) are read as CRLF and signed
 * output keeps the message's own line ends. Exit codes: 0 pass / done,
 * 1 no signature passes, 2 usage or I/O error, 75 a temporary DNS failure
 * and nothing passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "dkim.h"
#include "dns.h"
#include "err.h"
#include "msg.h"

#define MAX_KEYFILE (64 * 1024)
#define MAX_SIGNERS PST_DKIM_MAX_KEYS

void cmd_dkim_usage(FILE *f)
{
    fprintf(f, "  postern dkim keygen -d DOMAIN -s SELECTOR [-t rsa|ed25519] [-b BITS] [-o FILE]\n"
               "  postern dkim sign -d DOMAIN -s SELECTOR -k KEYFILE [-s SELECTOR -k KEYFILE]\n"
               "                    [--canon relaxed/relaxed] [--headers LIST] [--expire SECONDS]\n"
               "                    [--identity I] [--now EPOCH] < message\n"
               "  postern dkim verify [--dns-server ADDR[:PORT] | --dns-zone FILE] [--now EPOCH]\n"
               "                      [--max-sigs N] [--json] < message\n");
}

static int usage_error(const char *sub, const char *what)
{
    fprintf(stderr, "postern: dkim %s: %s\nusage:\n", sub, what);
    cmd_dkim_usage(stderr);
    return CLI_ERROR;
}

static int parse_num(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- keygen ------------------------------------------------------------- */

static int dkim_keygen(int argc, char **argv)
{
    const char *domain = NULL, *selector = NULL, *type = "rsa", *outfile = NULL;
    long long bits = 2048;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage_error("keygen", "an option needs a value");
        if (strcmp(a, "-d") == 0)
            domain = argv[++i];
        else if (strcmp(a, "-s") == 0)
            selector = argv[++i];
        else if (strcmp(a, "-t") == 0)
            type = argv[++i];
        else if (strcmp(a, "-o") == 0)
            outfile = argv[++i];
        else if (strcmp(a, "-b") == 0) {
            if (parse_num(argv[++i], 1024, 4096, &bits) < 0)
                return usage_error("keygen", "-b wants 1024..4096");
        } else
            return usage_error("keygen", "unknown option");
    }
    if (domain == NULL || selector == NULL)
        return usage_error("keygen", "-d DOMAIN and -s SELECTOR are required");
    char name[PST_DNS_NAME_TEXT_MAX], sel[PST_DNS_NAME_TEXT_MAX];
    if (pst_dns_name_normalize(domain, name, sizeof name) != 0 ||
        pst_dns_name_normalize(selector, sel, sizeof sel) != 0)
        return usage_error("keygen", "bad domain or selector");
    sel[strlen(sel) - 1] = '\0'; /* no trailing dot */
    enum pst_dkim_keytype t;
    if (strcmp(type, "rsa") == 0)
        t = PST_DKIM_KEY_RSA;
    else if (strcmp(type, "ed25519") == 0)
        t = PST_DKIM_KEY_ED25519;
    else
        return usage_error("keygen", "-t is rsa or ed25519");
    char deffile[PST_DNS_NAME_TEXT_MAX + 16];
    if (outfile == NULL) {
        snprintf(deffile, sizeof deffile, "%s.private", sel);
        outfile = deffile;
    }
    struct pst_buf *pem = pst_buf_new_secret(MAX_KEYFILE), *rec = pst_buf_new(8192);
    int ret = CLI_ERROR;
    int fd = -1;
    if (pem == NULL || rec == NULL)
        goto out;
    int rc = pst_dkim_keygen(t, (unsigned)bits, pem, rec);
    if (rc != 0) {
        fprintf(stderr, "postern: dkim keygen: %s\n", pst_strerror(rc));
        goto out;
    }
    fd = open(outfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "postern: dkim keygen: %s: %s\n", outfile, strerror(errno));
        goto out;
    }
    const char *p = pst_buf_data(pem);
    size_t n = pst_buf_len(pem);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "postern: dkim keygen: %s: %s\n", outfile, strerror(errno));
            goto out;
        }
        p += w;
        n -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        fprintf(stderr, "postern: dkim keygen: %s: %s\n", outfile, strerror(errno));
        goto out;
    }
    fd = -1;
    /* RFC 1035 3.3.14: character-strings of at most 255 octets */
    printf("%s._domainkey.%s IN TXT (", sel, name);
    const char *r = pst_buf_data(rec);
    size_t rl = pst_buf_len(rec);
    for (size_t k = 0; k < rl; k += 255)
        printf(" \"%.*s\"", (int)(rl - k < 255 ? rl - k : 255), r + k);
    printf(" )\n");
    ret = CLI_OK;
out:
    if (fd >= 0)
        close(fd);
    pst_buf_free(pem);
    pst_buf_free(rec);
    return ret;
}

/* ---- sign --------------------------------------------------------------- */

static int read_file(const char *path, struct pst_buf *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PST_ERR_IO;
    int rc = cli_read_all(fd, b);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static int parse_canon(const char *s, enum pst_dkim_canon *h, enum pst_dkim_canon *b)
{
    static const char *const names[] = {"simple", "relaxed"};
    const char *slash = strchr(s, '/');
    size_t hn = slash ? (size_t)(slash - s) : strlen(s);
    int hi = -1, bi = 0;
    for (int k = 0; k < 2; k++) {
        if (strlen(names[k]) == hn && strncmp(s, names[k], hn) == 0)
            hi = k;
        if (slash && strcmp(slash + 1, names[k]) == 0)
            bi = k + 1;
    }
    if (hi < 0 || (slash && bi == 0))
        return -1;
    *h = (enum pst_dkim_canon)hi;
    *b = slash ? (enum pst_dkim_canon)(bi - 1) : PST_DKIM_SIMPLE;
    return 0;
}

static void sign_feed(void *arg, const char *p, size_t n)
{
    pst_dkim_sign_body(arg, p, n);
}

static int dkim_sign(int argc, char **argv)
{
    const char *domain = NULL, *identity = NULL, *headers = NULL;
    const char *sels[MAX_SIGNERS], *keys[MAX_SIGNERS];
    size_t nsel = 0, nkey = 0;
    struct pst_dkim_signer_opts o = {.hcanon = PST_DKIM_RELAXED, .bcanon = PST_DKIM_RELAXED};
    long long now = (long long)time(NULL), v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage_error("sign", "an option needs a value");
        const char *val = argv[++i];
        if (strcmp(a, "-d") == 0)
            domain = val;
        else if (strcmp(a, "-s") == 0 && nsel < MAX_SIGNERS)
            sels[nsel++] = val;
        else if (strcmp(a, "-k") == 0 && nkey < MAX_SIGNERS)
            keys[nkey++] = val;
        else if (strcmp(a, "--identity") == 0 || strcmp(a, "-i") == 0)
            identity = val;
        else if (strcmp(a, "--headers") == 0)
            headers = val;
        else if (strcmp(a, "--canon") == 0 || strcmp(a, "-c") == 0) {
            if (parse_canon(val, &o.hcanon, &o.bcanon) < 0)
                return usage_error("sign", "--canon is simple|relaxed[/simple|relaxed]");
        } else if (strcmp(a, "--expire") == 0) {
            if (parse_num(val, 1, 100LL * 365 * 86400, &v) < 0)
                return usage_error("sign", "--expire wants seconds");
            o.expire = v;
        } else if (strcmp(a, "--now") == 0) {
            if (parse_num(val, 0, 999999999999LL, &now) < 0)
                return usage_error("sign", "--now wants seconds since the epoch");
        } else
            return usage_error("sign", "unknown option, or too many -s/-k");
    }
    if (domain == NULL || nsel == 0 || nsel != nkey)
        return usage_error("sign", "-d DOMAIN and pairs of -s SELECTOR -k KEYFILE are required");
    o.domain = domain;
    o.identity = identity;
    char *hcopy = NULL;
    const char *hlist[PST_DKIM_MAX_H / 2 + 1];
    if (headers != NULL) {
        hcopy = strdup(headers);
        if (hcopy == NULL)
            return CLI_ERROR;
        size_t n = 0;
        char *save = NULL;
        for (char *t = strtok_r(hcopy, ",:", &save); t != NULL; t = strtok_r(NULL, ",:", &save)) {
            if (n == PST_DKIM_MAX_H / 2) {
                free(hcopy);
                return usage_error("sign", "too many --headers");
            }
            hlist[n++] = t;
        }
        hlist[n] = NULL;
        o.headers = hlist;
    }
    int ret = CLI_ERROR, rc;
    struct pst_dkim_signer *s = NULL;
    struct pst_dkim_signing *g = NULL;
    struct pst_buf *kb = pst_buf_new_secret(MAX_KEYFILE), *sig = pst_buf_new(65536);
    struct cli_message m = {0};
    if (kb == NULL || sig == NULL)
        goto out;
    if ((rc = pst_dkim_signer_new(&o, &s)) != 0) {
        fprintf(stderr, "postern: dkim sign: bad domain, identity or header list\n");
        goto out;
    }
    for (size_t k = 0; k < nsel; k++) {
        pst_buf_reset(kb);
        if ((rc = read_file(keys[k], kb)) != 0) {
            fprintf(stderr, "postern: dkim sign: %s: %s\n", keys[k],
                    rc == PST_ERR_IO ? strerror(errno) : pst_strerror(rc));
            goto out;
        }
        if ((rc = pst_dkim_signer_add_key(s, sels[k], pst_buf_data(kb), pst_buf_len(kb))) != 0) {
            fprintf(stderr, "postern: dkim sign: %s: %s\n", keys[k],
                    rc == PST_ERR_CRYPTO        ? "not a private key (PEM)"
                    : rc == PST_ERR_UNSUPPORTED ? "not an RSA (>= 1024 bits) or Ed25519 key"
                                                : "bad selector");
            goto out;
        }
    }
    pst_buf_reset(kb);
    if (cli_message_read(&m, "dkim sign") != CLI_OK)
        goto out;
    rc = pst_dkim_sign_start(s, pst_buf_data(m.hdr), pst_buf_len(m.hdr), now, &g);
    if (rc != 0) {
        fprintf(stderr, "postern: dkim sign: %s\n",
                rc == PST_ERR_NOTFOUND ? "the message has no From header field"
                : rc == PST_ERR_SYNTAX ? "the message's header section is malformed "
                                         "(or has more than one From)"
                                       : pst_strerror(rc));
        goto out;
    }
    cli_message_feed(&m, sign_feed, g);
    if ((rc = pst_dkim_sign_finish(g, sig)) != 0) {
        fprintf(stderr, "postern: dkim sign: %s\n", pst_strerror(rc));
        goto out;
    }
    const char *p = pst_buf_data(sig);
    for (size_t k = 0; k < pst_buf_len(sig); k++)
        if (!(m.lf && p[k] == '\r'))
            putchar(p[k]);
    fwrite(pst_buf_data(m.raw), 1, pst_buf_len(m.raw), stdout);
    ret = CLI_OK;
out:
    free(hcopy);
    cli_message_free(&m);
    pst_dkim_signing_free(g);
    pst_dkim_signer_free(s);
    pst_buf_free(kb);
    pst_buf_free(sig);
    return ret;
}

/* ---- verify ------------------------------------------------------------- */

static void verify_feed(void *arg, const char *p, size_t n)
{
    pst_dkim_verify_body(arg, p, n);
}

static int dkim_verify(int argc, char **argv)
{
    struct cli_dns_opts dopts = {0};
    long long now = (long long)time(NULL), maxsigs = PST_DKIM_MAX_SIGS;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used;
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if ((used = cli_dns_option(argc, argv, &i, &dopts, "dkim verify")) != 0) {
            if (used < 0)
                return CLI_ERROR;
        } else if (strcmp(a, "--now") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], 0, 999999999999LL, &now) < 0)
                return usage_error("verify", "--now wants seconds since the epoch");
        } else if (strcmp(a, "--max-sigs") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], 1, PST_DKIM_MAX_SIGS_HARD, &maxsigs) < 0)
                return usage_error("verify", "--max-sigs wants 1..64");
        } else {
            return usage_error("verify", "unknown option");
        }
    }
    struct cli_message m = {0};
    struct pst_resolver *r = NULL;
    struct pst_dkim_verify *v = NULL;
    int ret = cli_message_read(&m, "dkim verify");
    if (ret != CLI_OK)
        goto out;
    if ((ret = cli_dns_resolver(&dopts, "dkim verify", &r)) != CLI_OK)
        goto out;
    ret = CLI_ERROR;
    struct pst_dns_budget budget = {.max_queries = 2 * PST_DKIM_MAX_SIGS_HARD,
                                    .timeout_ms = dopts.timeout_ms};
    struct pst_dkim_verify_opts o = {
        .resolver = r, .budget = &budget, .now = now, .max_sigs = (size_t)maxsigs};
    const char *why = NULL;
    int rc = pst_dkim_verify_start(&o, pst_buf_data(m.hdr), pst_buf_len(m.hdr), &v, &why);
    if (rc != 0) {
        fprintf(stderr, "postern: dkim verify: the message's header section: %s\n",
                why ? why : pst_strerror(rc));
        goto out;
    }
    cli_message_feed(&m, verify_feed, v);
    if ((rc = pst_dkim_verify_finish(v)) != 0) {
        fprintf(stderr, "postern: dkim verify: %s\n", pst_strerror(rc));
        goto out;
    }
    size_t n, skipped;
    const struct pst_dkim_verdict *vd = pst_dkim_verify_verdicts(v, &n, &skipped);
    int pass = 0, temp = 0;
    json_t *arr = json ? json_array() : NULL;
    for (size_t k = 0; k < n; k++) {
        pass |= vd[k].result == PST_DKIM_PASS;
        temp |= vd[k].result == PST_DKIM_TEMPERROR;
        if (json) {
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "result",
                                                 pst_dkim_result_name(vd[k].result), "d", vd[k].d,
                                                 "s", vd[k].s, "i", vd[k].i, "a", vd[k].a, "b",
                                                 vd[k].b8, "reason", vd[k].reason));
        } else {
            printf("%s d=%s s=%s a=%s%s%s\n", pst_dkim_result_name(vd[k].result), vd[k].d, vd[k].s,
                   vd[k].a, vd[k].reason[0] ? " " : "", vd[k].reason);
        }
    }
    if (json) {
        json_t *doc = json_pack("{s:o, s:I}", "signatures", arr, "skipped", (json_int_t)skipped);
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(doc);
    } else {
        if (n == 0)
            printf("none (no DKIM-Signature)\n");
        if (skipped > 0)
            printf("(%zu more signatures not checked)\n", skipped);
    }
    ret = pass ? CLI_OK : temp ? CLI_TEMPFAIL : CLI_NOTFOUND;
out:
    pst_dkim_verify_free(v);
    pst_resolver_free(r);
    cli_message_free(&m);
    return ret;
}

int cmd_dkim(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("", "missing subcommand");
    const char *sub = argv[1];
    if (strcmp(sub, "keygen") == 0)
        return dkim_keygen(argc - 1, argv + 1);
    if (strcmp(sub, "sign") == 0)
        return dkim_sign(argc - 1, argv + 1);
    if (strcmp(sub, "verify") == 0)
        return dkim_verify(argc - 1, argv + 1);
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0) {
        printf("usage:\n");
        cmd_dkim_usage(stdout);
        return CLI_OK;
    }
    return usage_error(sub, "unknown subcommand");
}
