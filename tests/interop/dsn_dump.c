/*
 * dsn_dump.c - writes one DSN made by pst_dsn_generate to stdout, so that
 * independent parsers (Python's email package in tests/e2e/test_dsn_parse.py)
 * can judge it.
 *
 *   dsn_dump [-H reporting-mta] [-f sender] [-r full|hdrs] [-e envid-xtext]
 *            [-i original-file] [-x max-return] [-t now] [-D]
 *            -R rcpt [-a action] [-s status] [-m remote-mta] [-g diagnostic]
 *            [-O orcpt] [-N notify] [-R rcpt ...]
 *
 * -R starts a recipient; the options after it describe that recipient.
 * -D reports delays for recipients without NOTIFY. "\n" in -g is a line
 * break (to pass multi-line replies). Exit 0 with the message on stdout,
 * 2 for bad arguments, 1 when the library refuses (its error on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dsn.h"
#include "err.h"

#define MAX_RCPTS 32

static enum pst_dsn_action action_of(const char *s)
{
    static const char *const names[] = {"",          "failed",  "delayed",
                                        "delivered", "relayed", "expanded"};
    for (int i = 1; i <= 5; i++)
        if (strcmp(s, names[i]) == 0)
            return (enum pst_dsn_action)i;
    return (enum pst_dsn_action)0;
}

/* "\n" in a command-line argument becomes CRLF */
static char *unescape(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(2 * n + 1);
    size_t j = 0;
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && s[i + 1] == 'n') {
            o[j++] = '\r';
            o[j++] = '\n';
            i++;
        } else
            o[j++] = s[i];
    }
    o[j] = '\0';
    return o;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 16, n = 0, k;
    char *b = malloc(cap);
    if (f == NULL || b == NULL) {
        if (f != NULL)
            fclose(f);
        free(b);
        return NULL;
    }
    while ((k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, cap * 2);
            if (nb == NULL)
                break;
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    *len = n;
    return b;
}

int main(int argc, char **argv)
{
    static const unsigned char seed[16] = {0x70, 0x6f, 0x73, 0x74, 0x65, 0x72, 0x6e, 0x21,
                                           0x64, 0x73, 0x6e, 0x2d, 0x74, 0x65, 0x73, 0x74};
    struct pst_dsn_rcpt r[MAX_RCPTS];
    char *diags[MAX_RCPTS] = {0};
    size_t nr = 0;
    struct pst_dsn_msg m = {0};
    char *orig = NULL;
    int opt, rc = 2;
    const char *why = NULL;

    memset(r, 0, sizeof(r));
    m.reporting_mta = "mx.example.org";
    m.sender = "alice@example.org";
    m.now = 1795906713;
    m.arrival = 1795900000;
    m.seed = seed;
    m.seed_len = sizeof(seed);
    while ((opt = getopt(argc, argv, "H:f:r:e:i:x:t:DR:a:s:m:g:O:N:")) != -1) {
        struct pst_dsn_rcpt *cur = nr > 0 ? &r[nr - 1] : NULL;
        if (strchr("asmgON", opt) != NULL && cur == NULL) {
            fprintf(stderr, "dsn_dump: -%c before any -R\n", opt);
            goto out;
        }
        switch (opt) {
        case 'H':
            m.reporting_mta = optarg;
            break;
        case 'f':
            m.sender = optarg;
            break;
        case 'r':
            if (pst_dsn_parse_ret(optarg, &m.ret, &why) < 0) {
                fprintf(stderr, "dsn_dump: -r: %s\n", why);
                goto out;
            }
            break;
        case 'e':
            m.envid = optarg;
            break;
        case 'i':
            orig = read_file(optarg, &m.original_len);
            if (orig == NULL) {
                perror(optarg);
                goto out;
            }
            m.original = orig;
            break;
        case 'x':
            m.max_return = strtoul(optarg, NULL, 10);
            break;
        case 't':
            m.now = (time_t)strtoll(optarg, NULL, 10);
            break;
        case 'D':
            m.delay_policy = 1;
            break;
        case 'R':
            if (nr == MAX_RCPTS) {
                fprintf(stderr, "dsn_dump: too many recipients\n");
                goto out;
            }
            r[nr].rcpt = optarg;
            r[nr].action = PST_DSN_FAILED;
            r[nr].last_attempt = m.now - 5;
            r[nr].retry_until = m.now + 5 * 86400;
            nr++;
            break;
        case 'a':
            cur->action = action_of(optarg);
            break;
        case 's':
            cur->status = optarg;
            break;
        case 'm':
            cur->remote_mta = optarg;
            break;
        case 'g':
            diags[nr - 1] = unescape(optarg);
            cur->diag = diags[nr - 1];
            break;
        case 'O':
            cur->orcpt = optarg;
            break;
        case 'N':
            if (pst_dsn_parse_notify(optarg, &cur->notify, &why) < 0) {
                fprintf(stderr, "dsn_dump: -N: %s\n", why);
                goto out;
            }
            break;
        default:
            fprintf(stderr, "usage: see the comment at the top of dsn_dump.c\n");
            goto out;
        }
    }
    m.rcpts = r;
    m.nrcpts = nr;

    struct pst_buf *b = pst_buf_new(64u << 20);
    if (b == NULL)
        goto out;
    int e = pst_dsn_generate(&m, b, NULL);
    if (e < 0) {
        fprintf(stderr, "dsn_dump: pst_dsn_generate: %s\n", pst_strerror(e));
        rc = 1;
    } else {
        rc = fwrite(pst_buf_data(b), 1, pst_buf_len(b), stdout) == pst_buf_len(b) ? 0 : 1;
    }
    pst_buf_free(b);
out:
    for (size_t i = 0; i < MAX_RCPTS; i++)
        free(diags[i]);
    free(orig);
    return rc;
}
