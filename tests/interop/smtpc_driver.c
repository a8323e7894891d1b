/*
 * smtpc_driver.c - delivers one message file with pst_smtp_client_deliver
 * and prints the result as one line of JSON, for tests/e2e/
 * test_smtp_client.py against real servers.
 *
 *   smtpc_driver --host ADDR --port N | --unix PATH
 *                --from ADDR --to ADDR [--notify V --orcpt V] [--to ...]
 *                --msg FILE [--ehlo NAME] [--mx-name NAME]
 *                [--tls none|opportunistic|required] [--implicit-tls]
 *                [--verify] [--ca FILE] [--user U --pass P]
 *                [--auth-plaintext] [--8bit] [--smtputf8] [--ret FULL|HDRS]
 *                [--envid X] [--timeout-ms N] [--connect-timeout-ms N]
 *                [--shared-ctx]   (a context from pst_smtp_client_ctx, as a
 *                                  delivery worker keeps one)
 *
 * Exit status: 0 when a result was printed, 2 for a usage error or a
 * refused call (the reason on stderr).
 */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "smtp_client.h"

#define MAXR 64

static const char *status_name(enum pst_smtpc_status s)
{
    return s == PST_SMTPC_OK ? "ok" : s == PST_SMTPC_TEMP ? "temp" : "perm";
}

static unsigned num(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > 100000000UL) {
        fprintf(stderr, "smtpc_driver: bad number %s\n", s);
        exit(2);
    }
    return (unsigned)v;
}

/* A JSON string; text that is not UTF-8 gets '?' for each 8-bit octet. */
static json_t *js(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *c = strdup(s);
    if (c == NULL)
        return NULL;
    for (char *p = c; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(c);
    free(c);
    return j;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},
        {"port", 1, 0, 'p'},
        {"unix", 1, 0, 'u'},
        {"from", 1, 0, 'f'},
        {"to", 1, 0, 't'},
        {"notify", 1, 0, 'N'},
        {"orcpt", 1, 0, 'O'},
        {"msg", 1, 0, 'm'},
        {"ehlo", 1, 0, 'e'},
        {"mx-name", 1, 0, 'x'},
        {"tls", 1, 0, 'T'},
        {"implicit-tls", 0, 0, 'I'},
        {"verify", 0, 0, 'V'},
        {"ca", 1, 0, 'c'},
        {"user", 1, 0, 'U'},
        {"pass", 1, 0, 'P'},
        {"auth-plaintext", 0, 0, 'A'},
        {"8bit", 0, 0, '8'},
        {"smtputf8", 0, 0, 'S'},
        {"ret", 1, 0, 'R'},
        {"envid", 1, 0, 'E'},
        {"timeout-ms", 1, 0, 'o'},
        {"connect-timeout-ms", 1, 0, 'C'},
        {"shared-ctx", 0, 0, 'X'},
        {0, 0, 0, 0},
    };
    struct pst_smtp_client_opts o = {0};
    struct pst_smtp_client_msg m = {0};
    struct pst_smtpc_rcpt rcpts[MAXR];
    size_t n = 0;
    const char *msgfile = NULL;
    o.ehlo_name = "client.test";
    o.tls = PST_SMTPC_TLS_OPPORTUNISTIC;
    m.sender = NULL;
    memset(rcpts, 0, sizeof(rcpts));
    int c, shared = 0;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'h':
            o.host = optarg;
            break;
        case 'p':
            o.port = (uint16_t)num(optarg);
            break;
        case 'u':
            o.unix_path = optarg;
            break;
        case 'f':
            m.sender = optarg;
            break;
        case 't':
            if (n == MAXR) {
                fprintf(stderr, "smtpc_driver: too many recipients\n");
                return 2;
            }
            rcpts[n++].addr = optarg;
            break;
        case 'N':
        case 'O':
            if (n == 0) {
                fprintf(stderr, "smtpc_driver: --notify/--orcpt after --to\n");
                return 2;
            }
            if (c == 'N')
                rcpts[n - 1].notify = optarg;
            else
                rcpts[n - 1].orcpt = optarg;
            break;
        case 'm':
            msgfile = optarg;
            break;
        case 'e':
            o.ehlo_name = optarg;
            break;
        case 'x':
            o.mx_name = optarg;
            break;
        case 'T':
            if (strcmp(optarg, "none") == 0)
                o.tls = PST_SMTPC_TLS_NONE;
            else if (strcmp(optarg, "opportunistic") == 0)
                o.tls = PST_SMTPC_TLS_OPPORTUNISTIC;
            else if (strcmp(optarg, "required") == 0)
                o.tls = PST_SMTPC_TLS_REQUIRED;
            else {
                fprintf(stderr, "smtpc_driver: --tls none|opportunistic|required\n");
                return 2;
            }
            break;
        case 'I':
            o.implicit_tls = 1;
            break;
        case 'V':
            o.tls_verify = 1;
            break;
        case 'c':
            o.ca_file = optarg;
            break;
        case 'U':
            o.auth_user = optarg;
            break;
        case 'P':
            o.auth_pass = optarg;
            break;
        case 'A':
            o.auth_plaintext_ok = 1;
            break;
        case '8':
            m.body_8bit = 1;
            break;
        case 'S':
            m.smtputf8 = 1;
            break;
        case 'R':
            m.dsn_ret = optarg;
            break;
        case 'E':
            m.dsn_envid = optarg;
            break;
        case 'o': {
            unsigned t = num(optarg);
            o.timeouts.tls = o.timeouts.greeting = o.timeouts.command = t;
            o.timeouts.mail = o.timeouts.rcpt = o.timeouts.data_init = t;
            o.timeouts.data_block = o.timeouts.dot = t;
            break;
        }
        case 'C':
            o.timeouts.connect = num(optarg);
            break;
        case 'X':
            shared = 1;
            break;
        default:
            return 2;
        }
    }
    if (m.sender == NULL || n == 0 || msgfile == NULL) {
        fprintf(stderr, "smtpc_driver: --from, --to and --msg are required\n");
        return 2;
    }
    m.rcpts = rcpts;
    m.nrcpts = n;
    int fd = open(msgfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(msgfile);
        return 2;
    }
    if (shared) {
        char err[256];
        if (pst_smtp_client_ctx(o.ca_file, &o.ssl_ctx, err, sizeof(err)) != 0) {
            fprintf(stderr, "smtpc_driver: %s\n", err);
            return 2;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct pst_smtp_client_result r;
    int rc = pst_smtp_client_deliver(&o, &m, fd, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    SSL_CTX_free(o.ssl_ctx);
    if (rc != 0) {
        fprintf(stderr, "smtpc_driver: %s\n", pst_strerror(rc));
        return 2;
    }
    json_t *tls = json_pack(
        "{s:b,s:s,s:s,s:b,s:s,s:s,s:b}", "used", r.tls.used, "version", r.tls.version, "cipher",
        r.tls.cipher, "verified", r.tls.verified, "verify_error", r.tls.verify_error, "failure",
        pst_tls_failure_name(r.tls.failure), "handshake_failed", r.tls.handshake_failed);
    json_t *ext = json_pack(
        "{s:b,s:b,s:b,s:b,s:b,s:b,s:I}", "pipelining",
        (r.ext.flags & PST_SMTPC_EXT_PIPELINING) != 0, "starttls",
        (r.ext.flags & PST_SMTPC_EXT_STARTTLS) != 0, "8bitmime",
        (r.ext.flags & PST_SMTPC_EXT_8BITMIME) != 0, "smtputf8",
        (r.ext.flags & PST_SMTPC_EXT_SMTPUTF8) != 0, "dsn", (r.ext.flags & PST_SMTPC_EXT_DSN) != 0,
        "auth", (r.ext.flags & PST_SMTPC_EXT_AUTH) != 0, "size_max", (json_int_t)r.ext.size_max);
    json_t *rs = json_array();
    for (size_t i = 0; i < r.nrcpts; i++)
        json_array_append_new(rs, json_pack("{s:o,s:s,s:i,s:s,s:o,s:s}", "addr", js(rcpts[i].addr),
                                            "status", status_name(r.rcpts[i].status), "code",
                                            r.rcpts[i].code, "enh", r.rcpts[i].enh, "text",
                                            js(r.rcpts[i].text), "stage",
                                            pst_smtpc_stage_name(r.rcpts[i].stage)));
    long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    json_t *j = json_pack("{s:s,s:i,s:s,s:o,s:s,s:b,s:s,s:o,s:o,s:b,s:b,s:b,s:o,s:i,s:I}", "status",
                          status_name(r.status), "code", r.code, "enh", r.enh, "text", js(r.text),
                          "stage", pst_smtpc_stage_name(r.stage), "from_server", r.from_server,
                          "peer", r.peer, "tls", tls, "ext", ext, "retry_plaintext",
                          r.retry_plaintext, "host_failure", r.host_failure, "auth", r.auth,
                          "rcpts", rs, "elapsed_ms", (int)ms, "discarded", (json_int_t)r.discarded);
    if (j == NULL) {
        fprintf(stderr, "smtpc_driver: JSON (non-UTF-8 text?)\n");
        pst_smtp_client_result_free(&r);
        return 2;
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    printf("%s\n", s);
    free(s);
    json_decref(j);
    pst_smtp_client_result_free(&r);
    return 0;
}
