/*
 * tres.c - one resolver per worker thread (checks and deliveries ask DNS
 * synchronously from their worker), made for the configuration generation
 * the thread serves and remade after a reload changes the dns group.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "dns.h"
#include "resolver.h"

struct tres {
    unsigned long gen;
    struct pst_resolver *res;
    char err[256];
};

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void tres_free(void *p)
{
    struct tres *t = p;
    if (t != NULL)
        pst_resolver_free(t->res);
    free(t);
}

static void key_make(void)
{
    pthread_key_create(&key, tres_free);
}

struct pst_resolver *pstd_thread_resolver(const struct pstd_confref *cr, char *err, size_t errlen)
{
    pthread_once(&once, key_make);
    struct tres *t = pthread_getspecific(key);
    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t == NULL) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        pthread_setspecific(key, t);
    }
    if (t->res != NULL && t->gen == cr->gen)
        return t->res;
    pst_resolver_free(t->res);
    t->res = NULL;
    t->gen = cr->gen;
    struct pst_resolver_unbound_conf uc;
    memset(&uc, 0, sizeof(uc));
    uc.server = cr->conf->dns_server;
    uc.trust_anchor = cr->conf->dns_trust_anchor;
    if (pst_resolver_unbound_new(&uc, &t->res, t->err, sizeof(t->err)) != 0) {
        t->res = NULL;
        snprintf(err, errlen, "%s", t->err);
        return NULL;
    }
    return t->res;
}
