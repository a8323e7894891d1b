/*
 * psl.c - libpsl behind struct pst_dmarc_psl (psl.h). libpsl's lookups are
 * read-only on a loaded list, so one list may serve every worker thread.
 */
#include <libpsl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "psl.h"

struct pst_psl {
    psl_ctx_t *ctx;
    int owned; /* ctx from psl_load_file/psl_latest: freed with psl_free */
    struct pst_dmarc_psl iface;
};

static int registrable_cb(void *arg, const char *domain, char *out, size_t outlen)
{
    return pst_psl_registrable(arg, domain, out, outlen);
}

int pst_psl_open(const char *path, struct pst_psl **out, char *err, size_t errlen)
{
    struct pst_psl *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return PST_ERR_NOMEM;
    p->ctx = path ? psl_load_file(path) : psl_latest(NULL);
    if (p->ctx == NULL) {
        snprintf(err, errlen, "%s: cannot load the public suffix list",
                 path ? path : "libpsl's default list");
        free(p);
        return PST_ERR_IO;
    }
    p->owned = 1;
    p->iface.registrable = registrable_cb;
    p->iface.arg = p;
    *out = p;
    return 0;
}

void pst_psl_free(struct pst_psl *p)
{
    if (p == NULL)
        return;
    if (p->owned)
        psl_free(p->ctx);
    free(p);
}

const struct pst_dmarc_psl *pst_psl_dmarc(struct pst_psl *p)
{
    return p ? &p->iface : NULL;
}

int pst_psl_registrable(struct pst_psl *p, const char *domain, char *out, size_t outlen)
{
    char d[PST_DMARC_DOMAIN_MAX];
    if (p == NULL || domain == NULL)
        return PST_ERR_INVAL;
    if (pst_dmarc_domain_norm(domain, strlen(domain), d, sizeof(d)) != 0)
        return PST_ERR_SYNTAX;
    const char *reg = psl_registrable_domain(p->ctx, d);
    if (reg == NULL)
        return PST_ERR_NOTFOUND;
    size_t n = strlen(reg);
    if (n + 1 > outlen)
        return PST_ERR_TOOBIG;
    memcpy(out, reg, n + 1);
    return 0;
}
