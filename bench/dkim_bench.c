/*
 * dkim_bench.c - postern's side of bench/dkim: signs or verifies one
 * message N times in this process, single thread, keys in memory, and
 * prints "msgs_per_s=X". Not installed.
 *
 *   dkim_bench sign   KEYFILE DOMAIN SELECTOR MESSAGE N
 *   dkim_bench verify KEYFILE DOMAIN SELECTOR MESSAGE N [--no-cache]
 *
 * sign: a signer made once (the private key parsed once, as the daemon
 * does), then per message pst_dkim_sign_start / _body / _finish, relaxed/
 * relaxed, the default header list, producing the DKIM-Signature field.
 *
 * verify: MESSAGE carries signatures made with KEYFILE (bench/dkim signs
 * it with `postern dkim sign`, and libopendkim and dkimpy verify the same
 * file); every one of them must pass, N times. The key record (derived
 * from KEYFILE) comes from a resolver of this file that answers every TXT
 * query from memory (no DNS, no file). By default a key cache is used,
 * as the daemon's workers do, so the key record is parsed once; with
 * --no-cache every message asks the resolver and parses the record again.
 * Each verification must pass, or the run fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "buf.h"
#include "dkim.h"
#include "dns.h"
#include "err.h"

#define MAX_FILE (64u * 1024 * 1024)

/* ---- a resolver that knows one TXT record -------------------------------- */

struct mem_resolver {
    struct pst_resolver r; /* first: the interface */
    uint8_t rdata[4096];   /* TXT rdata in wire form */
    size_t rdlen;
};

static int mem_query(struct pst_resolver *r, const char *name, uint16_t type, unsigned timeout_ms,
                     struct pst_dns_answer **out)
{
    (void)timeout_ms;
    struct mem_resolver *m = (struct mem_resolver *)r;
    struct pst_dns_answer *a = NULL;
    int rc = pst_dns_answer_new(name, type, &a);
    if (rc < 0)
        return rc;
    if (type == PST_DNS_TXT)
        rc = pst_dns_answer_add(a, m->rdata, m->rdlen, 300);
    if (rc == PST_ERR_NOMEM) {
        pst_dns_answer_free(a);
        return rc;
    }
    pst_dns_answer_finish(a);
    *out = a;
    return 0;
}

static void mem_free(struct pst_resolver *r)
{
    free(r);
}

/* The record text as TXT rdata: character-strings of at most 255 octets. */
static struct pst_resolver *mem_resolver_new(const char *record, size_t len)
{
    struct mem_resolver *m = calloc(1, sizeof(*m));
    if (m == NULL || len + len / 255 + 1 > sizeof(m->rdata)) {
        free(m);
        return NULL;
    }
    m->r.kind = "memory";
    m->r.query = mem_query;
    m->r.free = mem_free;
    for (size_t k = 0; k < len; k += 255) {
        size_t n = len - k < 255 ? len - k : 255;
        m->rdata[m->rdlen++] = (uint8_t)n;
        memcpy(m->rdata + m->rdlen, record + k, n);
        m->rdlen += n;
    }
    return &m->r;
}

/* ---- helpers ------------------------------------------------------------- */

/* The key record of the private key pem: "v=DKIM1; k=rsa|ed25519; p=..."
 * (RSA as SubjectPublicKeyInfo, Ed25519 as its 32 raw octets, RFC 8463). */
static int public_record(const struct pst_buf *pem, struct pst_buf *out)
{
    BIO *bio = BIO_new_mem_buf(pst_buf_data(pem), (int)pst_buf_len(pem));
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
    unsigned char raw[8192], *p = raw, b64[12000];
    size_t n = sizeof raw;
    int ed = k != NULL && EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519, rc = PST_ERR_CRYPTO;
    if (k == NULL)
        goto out;
    if (ed) {
        if (EVP_PKEY_get_raw_public_key(k, raw, &n) != 1)
            goto out;
    } else {
        int len = i2d_PUBKEY(k, NULL);
        if (len <= 0 || (size_t)len > sizeof raw || i2d_PUBKEY(k, &p) != len)
            goto out;
        n = (size_t)len;
    }
    EVP_EncodeBlock(b64, raw, (int)n);
    rc = pst_buf_addf(out, "v=DKIM1; k=%s; p=%s", ed ? "ed25519" : "rsa", (const char *)b64);
out:
    EVP_PKEY_free(k);
    BIO_free(bio);
    return rc;
}

static int read_file(const char *path, struct pst_buf *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PST_ERR_IO;
    char chunk[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? PST_ERR_IO : 0;
            break;
        }
        if ((rc = pst_buf_add(b, chunk, (size_t)n)) < 0)
            break;
    }
    close(fd);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Offset of the body: after the first CRLF CRLF (the message is CRLF). */
static size_t body_offset(const char *p, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return i + 4;
    return n;
}

/* Signs msg[0..n) with s into out (the signature fields only). */
static int sign_once(const struct pst_dkim_signer *s, const char *msg, size_t n, size_t body,
                     int64_t t, struct pst_buf *out)
{
    struct pst_dkim_signing *g = NULL;
    int rc = pst_dkim_sign_start(s, msg, body, t, &g);
    if (rc == 0) {
        pst_dkim_sign_body(g, msg + body, n - body);
        rc = pst_dkim_sign_finish(g, out);
    }
    pst_dkim_signing_free(g);
    return rc;
}

/* Verifies msg[0..n); 0 when it has signatures and every one passes. */
static int verify_once(const struct pst_dkim_verify_opts *o, const char *msg, size_t n)
{
    struct pst_dkim_verify *v = NULL;
    size_t body = body_offset(msg, n), nv = 0;
    int rc = pst_dkim_verify_start(o, msg, body, &v, NULL);
    if (rc == 0) {
        pst_dkim_verify_body(v, msg + body, n - body);
        rc = pst_dkim_verify_finish(v);
    }
    if (rc == 0) {
        const struct pst_dkim_verdict *vd = pst_dkim_verify_verdicts(v, &nv, NULL);
        for (size_t k = 0; k < nv && rc == 0; k++)
            if (vd[k].result != PST_DKIM_PASS) {
                fprintf(stderr, "dkim_bench: verify: %s %s\n", pst_dkim_result_name(vd[k].result),
                        vd[k].reason);
                rc = PST_ERR_STATE;
            }
        if (nv == 0)
            rc = PST_ERR_STATE;
    }
    pst_dkim_verify_free(v);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: dkim_bench sign|verify KEYFILE DOMAIN SELECTOR MESSAGE N "
                    "[--no-cache]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 7 || argc > 8)
        return usage();
    const char *mode = argv[1], *keyfile = argv[2], *domain = argv[3], *selector = argv[4];
    char *end;
    errno = 0;
    long long count = strtoll(argv[6], &end, 10);
    int verify = strcmp(mode, "verify") == 0, cache = 1;
    if ((!verify && strcmp(mode, "sign") != 0) || *end != '\0' || errno != 0 || count <= 0)
        return usage();
    if (argc == 8) {
        if (!verify || strcmp(argv[7], "--no-cache") != 0)
            return usage();
        cache = 0;
    }
    int ret = 1, rc;
    struct pst_buf *pem = pst_buf_new_secret(MAX_FILE), *msg = pst_buf_new(MAX_FILE);
    struct pst_buf *sig = pst_buf_new(65536);
    struct pst_buf *record = pst_buf_new(16384);
    struct pst_dkim_signer *s = NULL;
    struct pst_resolver *r = NULL;
    struct pst_dkim_keycache *kc = NULL;
    if (pem == NULL || msg == NULL || sig == NULL || record == NULL)
        goto out;
    if (read_file(keyfile, pem) < 0 || read_file(argv[5], msg) < 0) {
        fprintf(stderr, "dkim_bench: reading %s or %s: %s\n", keyfile, argv[5], strerror(errno));
        goto out;
    }
    struct pst_dkim_signer_opts so = {
        .domain = domain, .hcanon = PST_DKIM_RELAXED, .bcanon = PST_DKIM_RELAXED};
    if ((rc = pst_dkim_signer_new(&so, &s)) < 0 ||
        (rc = pst_dkim_signer_add_key(s, selector, pst_buf_data(pem), pst_buf_len(pem))) < 0) {
        fprintf(stderr, "dkim_bench: signer: %s\n", pst_strerror(rc));
        goto out;
    }
    const char *m = pst_buf_data(msg);
    size_t n = pst_buf_len(msg), body = body_offset(m, n);
    int64_t t = (int64_t)time(NULL);
    double t0, t1;
    if (!verify) {
        t0 = now_s();
        for (long long k = 0; k < count; k++) {
            pst_buf_reset(sig);
            if ((rc = sign_once(s, m, n, body, t, sig)) < 0) {
                fprintf(stderr, "dkim_bench: sign: %s\n", pst_strerror(rc));
                goto out;
            }
        }
        t1 = now_s();
    } else {
        /* the key record for the private key: "v=DKIM1; k=...; p=..." */
        if ((rc = public_record(pem, record)) < 0) {
            fprintf(stderr, "dkim_bench: public key: %s\n", pst_strerror(rc));
            goto out;
        }
        r = mem_resolver_new(pst_buf_data(record), pst_buf_len(record));
        if (r == NULL || (cache && pst_dkim_keycache_new(0, 0, &kc) < 0))
            goto out;
        struct pst_dkim_verify_opts vo = {.resolver = r, .cache = kc, .now = t};
        t0 = now_s();
        for (long long k = 0; k < count; k++) {
            if ((rc = verify_once(&vo, m, n)) < 0) {
                fprintf(stderr, "dkim_bench: verify: %s\n", pst_strerror(rc));
                goto out;
            }
        }
        t1 = now_s();
    }
    printf("msgs_per_s=%.1f\n", (double)count / (t1 - t0));
    ret = 0;
out:
    pst_dkim_keycache_free(kc);
    pst_resolver_free(r);
    pst_dkim_signer_free(s);
    pst_buf_free(pem);
    pst_buf_free(msg);
    pst_buf_free(sig);
    pst_buf_free(record);
    return ret;
}
