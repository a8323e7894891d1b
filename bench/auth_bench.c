/*
 * auth_bench.c - full inbound checks per second (SPF, DKIM and DMARC of
 * one message: lib/core/auth, as posternd runs them on its check pool) on
 * one thread with one libunbound resolver and a DKIM key cache; built and
 * driven by bench/auth.
 *
 * usage: auth_bench SERVER LIST ROUNDS
 *   SERVER: ADDR[:PORT] of a resolver;
 *   LIST: lines "IP MAILFROM HELO MESSAGE-FILE" (CRLF messages).
 * Prints "spf dkim dmarc disposition" of each line of the first round,
 * then "checks N seconds S".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "buf.h"
#include "err.h"
#include "resolver.h"

#define MAX_LINES 1024

struct line {
    char ip[64], from[256], helo[256], file[1024];
    char *text;
    size_t len, hlen, body;
};

static int load(struct line *l)
{
    FILE *f = fopen(l->file, "rb");
    if (f == NULL)
        return -1;
    l->text = malloc(1 << 20);
    l->len = l->text ? fread(l->text, 1, 1 << 20, f) : 0;
    fclose(f);
    if (l->text == NULL)
        return -1;
    char *eoh = memmem(l->text, l->len, "\r\n\r\n", 4);
    if (eoh == NULL)
        return -1;
    l->hlen = (size_t)(eoh - l->text) + 2;
    l->body = l->hlen + 2;
    return 0;
}

int main(int argc, char **argv)
{
    static struct line lines[MAX_LINES];
    size_t n = 0;
    char err[512] = "";
    struct pst_resolver *r = NULL;
    struct pst_dkim_keycache *cache = NULL;

    if (argc != 4) {
        fprintf(stderr, "usage: auth_bench SERVER LIST ROUNDS\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "r");
    if (f == NULL) {
        perror(argv[2]);
        return 2;
    }
    while (n < MAX_LINES && fscanf(f, "%63s %255s %255s %1023s", lines[n].ip, lines[n].from,
                                   lines[n].helo, lines[n].file) == 4) {
        if (load(&lines[n]) != 0) {
            fprintf(stderr, "auth_bench: cannot load %s\n", lines[n].file);
            return 2;
        }
        n++;
    }
    fclose(f);
    long rounds = strtol(argv[3], NULL, 10);
    struct pst_resolver_unbound_conf c = {.server = argv[1]};
    if (pst_resolver_unbound_new(&c, &r, err, sizeof err) != 0 ||
        pst_dkim_keycache_new(256, 3600, &cache) != 0) {
        fprintf(stderr, "auth_bench: %s\n", err);
        return 2;
    }
    struct pst_auth_opts o = {.resolver = r, .authserv_id = "mx.bench.test", .dkim_cache = cache};
    struct pst_buf *ar = pst_buf_new(65536);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < rounds; k++) {
        for (size_t i = 0; i < n; i++) {
            struct line *l = &lines[i];
            struct pst_auth_in in = {.ip = l->ip, .helo = l->helo, .mailfrom = l->from};
            struct pst_auth *a = NULL;
            o.now = (int64_t)time(NULL);
            if (pst_auth_start(&o, &in, l->text, l->hlen, &a) != 0) {
                fprintf(stderr, "auth_bench: start failed\n");
                return 2;
            }
            pst_auth_body(a, l->text + l->body, l->len - l->body);
            pst_buf_reset(ar);
            if (pst_auth_finish(a) != 0 || pst_auth_header(a, ar) != 0) {
                fprintf(stderr, "auth_bench: finish failed\n");
                return 2;
            }
            if (k == 0) {
                size_t nd = 0;
                const struct pst_dkim_verdict *v = pst_auth_dkim(a, &nd, NULL);
                const struct pst_spf_verdict *s = pst_auth_spf(a);
                const struct pst_dmarc_eval *e = pst_auth_dmarc(a);
                printf("%s %s %s %s\n", s ? pst_spf_result_name(s->result) : "-",
                       nd ? pst_dkim_result_name(v[0].result) : "none",
                       e ? pst_dmarc_result_name(e->result) : "-",
                       pst_auth_disposition_name(pst_auth_disposition(a)));
            }
            pst_auth_free(a);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("checks %ld seconds %.6f\n", rounds * (long)n,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    pst_buf_free(ar);
    pst_dkim_keycache_free(cache);
    pst_resolver_free(r);
    for (size_t i = 0; i < n; i++)
        free(lines[i].text);
    return 0;
}
