/*
 * fuzz_mx.c - the relay host parser and the delivery planner (lib/core/
 * route) over DNS answers synthesised from the input.
 *
 * Input: a first line is a relay host spec for pst_route_relay_parse; the
 * bytes after it drive the options and a resolver of this file whose
 * answers for d.e.test (MX) and h0..h7.e.test (A, AAAA) are built from
 * them with pst_dns_answer_new / pst_dns_answer_add (the real rdata
 * decoders: a malformed rdata makes the answer FAIL), with any status,
 * NXDOMAIN or NODATA, and any DNSSEC state. Besides "no crash, no leak" it
 * checks:
 *  - a parsed relay host is well formed and prints back to a spec that
 *    parses to the same thing;
 *  - a plan is OK with targets and no code, or a failure with a 4.x.x or
 *    5.x.x code, a reason and no targets;
 *  - the caps hold (targets in all, addresses per host), preferences never
 *    go down, only the families asked appear, no address twice, every
 *    address text is its address, no target is "." or one of our names or
 *    at or above our own preference, or refused by the policy hook, and
 *    no unusable address (0/8, multicast, 240/4, ::).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "err.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define NHOSTS 8

struct reader {
    const uint8_t *p;
    size_t n, pos;
};

static unsigned byte(struct reader *r)
{
    return r->pos < r->n ? r->p[r->pos++] : 0;
}

/* ---- relay hosts -------------------------------------------------------- */

static void check_relay(const char *spec)
{
    struct pst_route_relay rl, again;
    char why[128] = "";
    int rc = pst_route_relay_parse(spec, &rl, why, sizeof why);

    if (rc != 0) {
        CHECK(rc == PST_ERR_SYNTAX && why[0] != '\0');
        return;
    }
    CHECK(rl.host[0] != '\0' && rl.port >= 1);
    CHECK(!(rl.literal && rl.mx));
    for (const char *c = rl.host; *c != '\0'; c++)
        CHECK(*c > 0x20 && *c < 0x7f && !(*c >= 'A' && *c <= 'Z'));
    char text[PST_DNS_NAME_TEXT_MAX + 32];
    if (rl.literal && rl.family == PST_ROUTE_INET6)
        snprintf(text, sizeof text, "[IPv6:%s]:%u", rl.host, rl.port);
    else if (!rl.mx)
        snprintf(text, sizeof text, "[%s]:%u", rl.host, rl.port);
    else
        snprintf(text, sizeof text, "%s:%u", rl.host, rl.port);
    CHECK(pst_route_relay_parse(text, &again, NULL, 0) == 0);
    CHECK(strcmp(again.host, rl.host) == 0 && again.port == rl.port && again.mx == rl.mx &&
          again.literal == rl.literal);
    if (rl.literal)
        CHECK(again.family == rl.family && memcmp(again.addr, rl.addr, 16) == 0);
}

/* ---- a resolver answering from the input -------------------------------- */

struct fake {
    struct pst_resolver r;
    struct pst_dns_answer *mx;
    struct pst_dns_answer *addr[NHOSTS][2]; /* A, AAAA */
};

static void host_name(unsigned i, char *out, size_t len)
{
    snprintf(out, len, "h%u.e.test.", i);
}

static int fake_query(struct pst_resolver *r, const char *name, uint16_t type, unsigned timeout_ms,
                      struct pst_dns_answer **out)
{
    struct fake *f = (struct fake *)r;
    char h[32];
    (void)timeout_ms;

    if (type == PST_DNS_MX && strcmp(name, "d.e.test.") == 0)
        return pst_dns_answer_copy(f->mx, out);
    for (unsigned i = 0; i < NHOSTS; i++) {
        host_name(i, h, sizeof h);
        if (strcmp(name, h) == 0 && (type == PST_DNS_A || type == PST_DNS_AAAA))
            return pst_dns_answer_copy(f->addr[i][type == PST_DNS_AAAA], out);
    }
    /* d.e.test itself (the implicit MX) has an address when asked */
    struct pst_dns_answer *a;
    int rc = pst_dns_answer_new(name, type, &a);
    if (rc != 0)
        return rc;
    if (strcmp(name, "d.e.test.") == 0 && type == PST_DNS_A) {
        const uint8_t rd[4] = {192, 0, 2, 200};
        pst_dns_answer_add(a, rd, 4, 60);
    } else {
        pst_dns_answer_set(a, PST_DNS_NOTFOUND, PST_DNS_NXDOMAIN, NULL);
    }
    pst_dns_answer_finish(a);
    *out = a;
    return 0;
}

/* The status, DNSSEC state and records of one answer, from the input. */
static int build(struct reader *in, const char *name, uint16_t type, struct pst_dns_answer **out)
{
    struct pst_dns_answer *a;
    int rc = pst_dns_answer_new(name, type, &a);

    if (rc != 0)
        return rc;
    unsigned ctl = byte(in);
    a->dnssec = (enum pst_dns_dnssec)(ctl >> 6 == 3 ? 0 : ctl >> 6);
    unsigned n = ctl & 0x0f;
    for (unsigned k = 0; k < n; k++) {
        uint8_t rd[300];
        size_t len = 0;
        unsigned kind = byte(in);
        if ((kind & 0xe0) == 0xe0) {
            /* raw rdata: the decoder judges it */
            len = byte(in) % 24;
            for (size_t j = 0; j < len; j++)
                rd[j] = (uint8_t)byte(in);
        } else if (type == PST_DNS_MX) {
            unsigned pref = (kind & 0x10) ? byte(in) : kind % 4;
            rd[0] = (uint8_t)(pref >> 8);
            rd[1] = (uint8_t)pref;
            char h[32];
            unsigned which = byte(in) % 10;
            if (which < NHOSTS)
                host_name(which, h, sizeof h);
            else
                snprintf(h, sizeof h, "%s", which == NHOSTS ? "." : "d.e.test.");
            size_t wl;
            if (pst_dns_name_to_wire(h, rd + 2, &wl) != 0)
                continue;
            len = 2 + wl;
        } else {
            len = type == PST_DNS_A ? 4 : 16;
            for (size_t j = 0; j < len; j++)
                rd[j] = (uint8_t)(j + 1 < len ? (type == PST_DNS_A ? 10 : 0x20) : byte(in) % 8);
        }
        rc = pst_dns_answer_add(a, rd, len, 60);
        if (rc == PST_ERR_NOMEM) {
            pst_dns_answer_free(a);
            return rc;
        }
    }
    switch (ctl & 0x30) {
    case 0x10:
        pst_dns_answer_set(a, PST_DNS_NOTFOUND, (ctl & 1) ? PST_DNS_NODATA : PST_DNS_NXDOMAIN,
                           NULL);
        break;
    case 0x20:
        pst_dns_answer_set(a, (ctl & 1) ? PST_DNS_FAIL : PST_DNS_RETRY, PST_DNS_FOUND, "simulated");
        break;
    default:
        break;
    }
    pst_dns_answer_finish(a);
    *out = a;
    return 0;
}

static void fake_free(struct fake *f)
{
    pst_dns_answer_free(f->mx);
    for (unsigned i = 0; i < NHOSTS; i++) {
        pst_dns_answer_free(f->addr[i][0]);
        pst_dns_answer_free(f->addr[i][1]);
    }
}

/* ---- the planner -------------------------------------------------------- */

static int allow(void *arg, const char *mx)
{
    unsigned mask = *(const unsigned *)arg;
    if (strncmp(mx, "h", 1) == 0 && mx[1] >= '0' && mx[1] < '0' + NHOSTS)
        return (mask >> (mx[1] - '0')) & 1;
    return mask >> 8 & 1;
}

/* limit: targets must have a preference below it (RFC 5321 5.1, our own
 * MX preference); 0x10000 when none of ours is an MX. */
static void check_route(const struct pst_route *rt, const struct pst_route_options *o,
                        const char *local, unsigned mask, unsigned limit)
{
    if (rt->status == PST_ROUTE_OK) {
        CHECK(rt->ntargets >= 1 && rt->enh == NULL);
    } else {
        CHECK(rt->ntargets == 0 && rt->enh != NULL && rt->reason != NULL);
        CHECK(rt->enh[0] == (rt->status == PST_ROUTE_TEMPFAIL ? '4' : '5') && rt->enh[1] == '.');
        return;
    }
    unsigned max_targets = o->max_targets ? o->max_targets : PST_ROUTE_MAX_TARGETS;
    unsigned max_addrs = o->max_addrs ? o->max_addrs : PST_ROUTE_MAX_ADDRS;
    CHECK(rt->ntargets <= max_targets);
    for (size_t i = 0; i < rt->ntargets; i++) {
        const struct pst_route_target *t = &rt->targets[i];
        CHECK(t->mx != NULL && strcmp(t->mx, ".") != 0);
        CHECK(local == NULL || strcmp(t->mx, local) != 0);
        CHECK(t->family & o->families);
        CHECK(t->port == o->port);
        if (o->allow_mx != NULL)
            CHECK(allow(&mask, t->mx));
        if (i > 0)
            CHECK(t->preference >= rt->targets[i - 1].preference);
        unsigned char a[16] = {0};
        CHECK(inet_pton(t->family == PST_ROUTE_INET4 ? AF_INET : AF_INET6, t->addr_text, a) == 1);
        CHECK(memcmp(a, t->addr, t->family == PST_ROUTE_INET4 ? 4 : 16) == 0);
        if (t->family == PST_ROUTE_INET4)
            CHECK(t->addr[0] != 0 && t->addr[0] < 224);
        else
            CHECK(t->addr[0] != 0xff && memcmp(t->addr, (const unsigned char[16]){0}, 16) != 0);
        size_t same_host = 0;
        for (size_t j = 0; j < rt->ntargets; j++) {
            const struct pst_route_target *u = &rt->targets[j];
            if (strcmp(u->mx, t->mx) == 0)
                same_host++;
            if (j != i && u->family == t->family)
                CHECK(memcmp(u->addr, t->addr, t->family == PST_ROUTE_INET4 ? 4 : 16) != 0);
        }
        CHECK(same_host <= max_addrs);
        CHECK(t->preference < limit);
    }
}

static void plan(struct reader *in, const char *relay_spec)
{
    struct fake f = {.r = {.kind = "fuzz", .query = fake_query}};
    struct pst_route_options o;
    char local[32];
    const char *names[1] = {local};
    unsigned mask;

    unsigned flags = byte(in);
    pst_route_options_default(&o);
    o.families = (flags & 3) == 0 ? (PST_ROUTE_INET4 | PST_ROUTE_INET6) : (flags & 3);
    o.prefer = (flags & 4) ? PST_ROUTE_INET4 : PST_ROUTE_INET6;
    o.max_mx = byte(in) % 12;
    o.max_addrs = byte(in) % 12;
    o.max_targets = byte(in) % 24;
    o.port = (uint16_t)(25 + (flags & 8));
    o.seed = byte(in) * 0x9e3779b9ULL + byte(in);
    if (flags & 0x10) {
        host_name(byte(in) % NHOSTS, local, sizeof local);
        o.local_names = names;
        o.nlocal_names = 1;
    }
    mask = byte(in) | (byte(in) & 1) << 8;
    if (flags & 0x20) {
        o.allow_mx = allow;
        o.allow_arg = &mask;
    }
    struct pst_dns_budget b = {.max_queries = (flags & 0x40) ? byte(in) % 12 : 0};

    if (build(in, "d.e.test", PST_DNS_MX, &f.mx) != 0)
        goto out;
    for (unsigned i = 0; i < NHOSTS; i++) {
        char h[32];
        host_name(i, h, sizeof h);
        if (build(in, h, PST_DNS_A, &f.addr[i][0]) != 0 ||
            build(in, h, PST_DNS_AAAA, &f.addr[i][1]) != 0)
            goto out;
    }
    struct pst_route *rt = NULL;
    int rc = pst_route_plan(&f.r, &b, "d.e.test", &o, &rt);
    CHECK(rc == 0 || rc == PST_ERR_NOMEM);
    if (rc == 0) {
        unsigned limit = 0x10000;
        if ((flags & 0x10) && f.mx->status == PST_DNS_OK)
            for (size_t i = 0; i < f.mx->nrrs; i++)
                if (f.mx->rrs[i].name != NULL && strcmp(f.mx->rrs[i].name, local) == 0 &&
                    f.mx->rrs[i].preference < limit)
                    limit = f.mx->rrs[i].preference;
        check_route(rt, &o, (flags & 0x10) ? local : NULL, mask, limit);
        if (b.max_queries > 0)
            CHECK(b.used <= b.max_queries);
        pst_route_free(rt);
    }
    /* the same answers through the relay form, when the spec parsed */
    struct pst_route_relay rl;
    if (pst_route_relay_parse(relay_spec, &rl, NULL, 0) == 0) {
        rc = pst_route_plan_relay(&f.r, NULL, &rl, &o, &rt);
        CHECK(rc == 0 || rc == PST_ERR_NOMEM || rc == PST_ERR_SYNTAX);
        if (rc == 0) {
            struct pst_route_options ro = o;
            ro.port = rl.port;
            if (!rl.mx)
                ro.allow_mx = NULL; /* "[host]": no MX, so no MX policy */
            check_route(rt, &ro, NULL, mask, 0x10000);
            pst_route_free(rt);
        }
    }
out:
    fake_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nl = 0;
    while (nl < size && data[nl] != '\n')
        nl++;
    char *spec = malloc(nl + 1);
    if (spec == NULL)
        return 0;
    memcpy(spec, data, nl);
    spec[nl] = '\0';
    check_relay(spec);
    struct reader in = {data, size, nl < size ? nl + 1 : size};
    plan(&in, spec);
    free(spec);
    return 0;
}
