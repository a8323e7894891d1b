/*
 * spf_bench.c - SPF evaluations per second through postern's library
 * (pst_spf_check) and one libunbound resolver forwarding to a given server;
 * built and driven by bench/spf.
 *
 * usage: spf_bench SERVER LIST ROUNDS
 *   SERVER: ADDR[:PORT] of a resolver, or zone:FILE for the zone-file
 *   resolver (no network: the cost of the SPF code itself);
 *   LIST: lines "IP SENDER HELO"; each round evaluates every line once.
 * Prints the result of each line of the first round ("RESULT IP SENDER"),
 * then "evaluations N seconds S".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "resolver.h"
#include "spf.h"

#define MAX_LINES 4096

struct line {
    char ip[64], sender[256], helo[256];
};

int main(int argc, char **argv)
{
    static struct line lines[MAX_LINES];
    size_t n = 0;
    char err[512] = "";
    struct pst_resolver *r = NULL;

    if (argc != 4) {
        fprintf(stderr, "usage: spf_bench SERVER LIST ROUNDS\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "r");
    if (f == NULL) {
        perror(argv[2]);
        return 2;
    }
    while (n < MAX_LINES &&
           fscanf(f, "%63s %255s %255s", lines[n].ip, lines[n].sender, lines[n].helo) == 3)
        n++;
    fclose(f);
    long rounds = strtol(argv[3], NULL, 10);
    struct pst_resolver_unbound_conf c = {.server = argv[1]};
    int rc = strncmp(argv[1], "zone:", 5) == 0
                 ? pst_resolver_zone_open(argv[1] + 5, &r, err, sizeof err)
                 : pst_resolver_unbound_new(&c, &r, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "spf_bench: %s\n", err);
        return 2;
    }
    struct pst_spf_options o;
    pst_spf_options_default(&o);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < rounds; k++) {
        for (size_t i = 0; i < n; i++) {
            struct pst_spf_verdict *v = NULL;
            int rc = pst_spf_check(r, &o, PST_SPF_MAILFROM, lines[i].ip, lines[i].sender,
                                   lines[i].helo, &v);
            if (rc != 0) {
                fprintf(stderr, "spf_bench: %s\n", pst_strerror(rc));
                return 2;
            }
            if (k == 0)
                printf("%s %s %s\n", pst_spf_result_name(v->result), lines[i].ip, lines[i].sender);
            pst_spf_verdict_free(v);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("evaluations %ld seconds %.6f\n", rounds * (long)n,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    pst_resolver_free(r);
    return 0;
}
