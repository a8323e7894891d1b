/*
 * authlimit.c - failed AUTH attempts per client address, in a fixed-size
 * table (see sasl.h for the policy and the eviction order).
 *
 * The table is 8-way set associative: an address hashes (SipHash-like
 * keyed mixing with a random key from RAND_bytes, so a client cannot aim
 * its addresses at one set) to a set of 8 slots, and only that set is
 * searched and evicted from. Memory: slots * 40 octets, fixed at creation.
 */
#include "err.h"
#include "sasl.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define WAYS      8
#define MAX_SLOTS (1u << 20)

struct entry {
    unsigned char key[17]; /* family octet + address (IPv6: /64, rest 0) */
    unsigned char used;
    unsigned failures;
    int64_t first; /* time of the first failure of this window */
    int64_t last;  /* time of the latest failure */
};

struct pst_authlimit {
    struct entry *slots;
    size_t nsets;
    unsigned max_failures;
    int64_t window;
    uint64_t k0, k1; /* hash key */
};

struct pst_authlimit *pst_authlimit_new(size_t slots, unsigned max_failures, int64_t window)
{
    if (slots == 0 || slots > MAX_SLOTS || max_failures == 0 || window < 1)
        return NULL;
    struct pst_authlimit *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->nsets = (slots + WAYS - 1) / WAYS;
    l->slots = calloc(l->nsets * WAYS, sizeof(struct entry));
    if (l->slots == NULL) {
        free(l);
        return NULL;
    }
    unsigned char k[16];
    if (RAND_bytes(k, sizeof(k)) != 1) {
        free(l->slots);
        free(l);
        return NULL;
    }
    memcpy(&l->k0, k, 8);
    memcpy(&l->k1, k + 8, 8);
    l->max_failures = max_failures;
    l->window = window;
    return l;
}

void pst_authlimit_free(struct pst_authlimit *l)
{
    if (l == NULL)
        return;
    free(l->slots);
    free(l);
}

/* The key of a textual address: IPv4 whole, IPv6 by its /64. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as the IPv4 one. */
static int make_key(const char *ip, unsigned char key[17])
{
    unsigned char a[16];
    memset(key, 0, 17);
    if (ip == NULL)
        return PST_ERR_INVAL;
    if (inet_pton(AF_INET, ip, a) == 1) {
        key[0] = 4;
        memcpy(key + 1, a, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            key[0] = 4;
            memcpy(key + 1, a + 12, 4);
            return 0;
        }
        key[0] = 6;
        memcpy(key + 1, a, 8);
        return 0;
    }
    return PST_ERR_INVAL;
}

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* Keyed mixing of the 17 key octets (SipHash-style rounds). */
static size_t set_of(const struct pst_authlimit *l, const unsigned char key[17])
{
    uint64_t v0 = l->k0 ^ 0x736f6d6570736575ull, v1 = l->k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = l->k0 ^ 0x6c7967656e657261ull, v3 = l->k1 ^ 0x7465646279746573ull;
    for (int i = 0; i < 3; i++) {
        uint64_t m = 0;
        for (int j = 0; j < 8 && i * 8 + j < 17; j++)
            m |= (uint64_t)key[i * 8 + j] << (8 * j);
        v3 ^= m;
        for (int r = 0; r < 2; r++) {
            v0 += v1;
            v1 = rotl(v1, 13) ^ v0;
            v0 = rotl(v0, 32);
            v2 += v3;
            v3 = rotl(v3, 16) ^ v2;
            v0 += v3;
            v3 = rotl(v3, 21) ^ v0;
            v2 += v1;
            v1 = rotl(v1, 17) ^ v2;
            v2 = rotl(v2, 32);
        }
        v0 ^= m;
    }
    uint64_t h = v0 ^ v1 ^ v2 ^ v3;
    return (size_t)(h % l->nsets);
}

static struct entry *find(struct pst_authlimit *l, const unsigned char key[17])
{
    struct entry *set = l->slots + set_of(l, key) * WAYS;
    for (size_t i = 0; i < WAYS; i++)
        if (set[i].used && memcmp(set[i].key, key, 17) == 0)
            return &set[i];
    return NULL;
}

static int expired(const struct pst_authlimit *l, const struct entry *e, int64_t now)
{
    /* a clock that went backwards also ends the window */
    return now < e->first || now - e->first >= l->window;
}

static int blocked(const struct pst_authlimit *l, const struct entry *e)
{
    return e->failures >= l->max_failures;
}

/* The slot a new key takes in its set: a free one, else the victim. */
static struct entry *victim(struct pst_authlimit *l, const unsigned char key[17], int64_t now)
{
    struct entry *set = l->slots + set_of(l, key) * WAYS;
    struct entry *quiet = NULL, *held = NULL;
    for (size_t i = 0; i < WAYS; i++) {
        struct entry *e = &set[i];
        if (!e->used || expired(l, e, now))
            return e;
        if (!blocked(l, e)) {
            if (quiet == NULL || e->last < quiet->last)
                quiet = e;
        } else if (held == NULL || e->first < held->first) {
            held = e;
        }
    }
    return quiet != NULL ? quiet : held;
}

int pst_authlimit_check(struct pst_authlimit *l, const char *ip, int64_t now)
{
    unsigned char key[17];
    if (l == NULL || make_key(ip, key) != 0)
        return PST_ERR_INVAL;
    struct entry *e = find(l, key);
    if (e == NULL)
        return 0;
    if (expired(l, e, now)) {
        memset(e, 0, sizeof(*e));
        return 0;
    }
    return blocked(l, e) ? PST_ERR_AGAIN : 0;
}

int pst_authlimit_fail(struct pst_authlimit *l, const char *ip, int64_t now)
{
    unsigned char key[17];
    if (l == NULL || make_key(ip, key) != 0)
        return PST_ERR_INVAL;
    struct entry *e = find(l, key);
    if (e != NULL && expired(l, e, now))
        memset(e, 0, sizeof(*e));
    if (e == NULL || !e->used) {
        if (e == NULL)
            e = victim(l, key, now);
        memset(e, 0, sizeof(*e));
        memcpy(e->key, key, 17);
        e->used = 1;
        e->first = now;
    }
    if (e->failures < l->max_failures)
        e->failures++;
    e->last = now;
    return 0;
}

int pst_authlimit_success(struct pst_authlimit *l, const char *ip)
{
    unsigned char key[17];
    if (l == NULL || make_key(ip, key) != 0)
        return PST_ERR_INVAL;
    struct entry *e = find(l, key);
    if (e != NULL)
        memset(e, 0, sizeof(*e));
    return 0;
}

size_t pst_authlimit_count(const struct pst_authlimit *l)
{
    size_t n = 0;
    if (l == NULL)
        return 0;
    for (size_t i = 0; i < l->nsets * WAYS; i++)
        n += l->slots[i].used;
    return n;
}
