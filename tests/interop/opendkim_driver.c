/*
 * opendkim_driver.c - libopendkim (Debian's libopendkim-dev) as an
 * independent DKIM judge and as the benchmark anchor. Not part of postern:
 * built on demand by tests/e2e/test_dkim_interop.py and bench/dkim with
 *
 *   cc -O2 -D_GNU_SOURCE -I/usr/include/opendkim -rdynamic \
 *      tests/interop/opendkim_driver.c -o DRIVER -lopendkim -lcrypto
 *
 * Debian 12's opendkim-testmsg signs only with rsa-sha1; this driver uses
 * the library directly, so it can sign with rsa-sha256 and ed25519-sha256.
 *
 *   sign   -k KEYFILE -d DOMAIN -s SELECTOR [-a rsa-sha256|ed25519-sha256]
 *          [-c relaxed/relaxed] [-t EPOCH] < message
 *          writes "DKIM-Signature: ..." CRLF and the message
 *   verify -f KEYS [-t EPOCH] < message
 *          KEYS: lines "SELECTOR._domainkey.DOMAIN RECORD" (libopendkim's
 *          own DKIM_QUERY_FILE method). One line per signature:
 *          "pass|fail|neutral|temperror|permerror d=D s=S a=ALG [error]";
 *          exit 0 when one passes, 1 when none does, 2 on usage errors
 *   bench  sign|verify -m MESSAGE -n COUNT ...: COUNT messages in a loop,
 *          one process; prints "msgs_per_s=X"
 *          sign:   -k KEYFILE -d DOMAIN -s SELECTOR -a ALG [--reparse]
 *          verify: -r RECORD (the key record text, served from memory
 *                  through dkim_set_key_lookup: no DNS, no file)
 *
 * The private key in the benchmark. libopendkim has no API for a parsed
 * key: dkim_sign() takes the key text, and every message parses it again
 * (PEM_read_bio_PrivateKey in dkim_privkey_load()). To measure the library
 * with the key parsed ONCE, as postern does, this program defines
 * PEM_read_bio_PrivateKey itself (exported with -rdynamic, so it takes
 * precedence over libcrypto's for libopendkim): while a parsed key is
 * cached it hands out a new reference to it instead of parsing. With
 * --reparse the cache is off and every message pays for the parse, as in
 * libopendkim's normal use.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <dkim.h>

/* ---- the key parsed once ------------------------------------------------ */

static EVP_PKEY *cached_key;

typedef EVP_PKEY *pem_read_fn(BIO *, EVP_PKEY **, pem_password_cb *, void *);

EVP_PKEY *PEM_read_bio_PrivateKey(BIO *bp, EVP_PKEY **x, pem_password_cb *cb, void *u)
{
    if (cached_key != NULL && x == NULL && EVP_PKEY_up_ref(cached_key) == 1)
        return cached_key;
    static pem_read_fn *real;
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "PEM_read_bio_PrivateKey");
    return real != NULL ? real(bp, x, cb, u) : NULL;
}

/* ---- input -------------------------------------------------------------- */

struct text {
    unsigned char *p;
    size_t n;
};

static int read_stream(FILE *f, struct text *t)
{
    size_t cap = 65536;
    t->p = malloc(cap);
    t->n = 0;
    if (t->p == NULL)
        return -1;
    for (;;) {
        if (t->n + 1 >= cap) {
            unsigned char *q = realloc(t->p, cap *= 2);
            if (q == NULL)
                return -1;
            t->p = q;
        }
        size_t r = fread(t->p + t->n, 1, cap - 1 - t->n, f);
        t->n += r;
        t->p[t->n] = '\0'; /* dkim_sign() takes the key as a C string */
        if (r == 0)
            return ferror(f) ? -1 : 0;
    }
}

static int read_path(const char *path, struct text *t)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "opendkim_driver: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = read_stream(f, t);
    fclose(f);
    return rc;
}

/* A message with LF line ends becomes CRLF (libopendkim wants CRLF). */
static int to_crlf(struct text *t)
{
    if (memchr(t->p, '\r', t->n) != NULL)
        return 0;
    size_t lf = 0;
    for (size_t i = 0; i < t->n; i++)
        lf += t->p[i] == '\n';
    unsigned char *q = malloc(t->n + lf + 1);
    if (q == NULL)
        return -1;
    size_t j = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->p[i] == '\n')
            q[j++] = '\r';
        q[j++] = t->p[i];
    }
    free(t->p);
    t->p = q;
    t->n = j;
    return 0;
}

/*
 * Feeds the message to a libopendkim handle: each header field (folding
 * kept, without its final CRLF), end of header, the body, end of message.
 */
static DKIM_STAT feed(DKIM *d, const struct text *m)
{
    size_t i = 0, start = 0;
    DKIM_STAT st;
    for (;;) {
        if (i + 1 >= m->n)
            return DKIM_STAT_SYNTAX;
        if (m->p[i] == '\r' && m->p[i + 1] == '\n') {
            if (i == start) { /* the empty line */
                i += 2;
                break;
            }
            if (i + 2 < m->n && (m->p[i + 2] == ' ' || m->p[i + 2] == '\t')) {
                i += 2; /* folded */
                continue;
            }
            if ((st = dkim_header(d, m->p + start, i - start)) != DKIM_STAT_OK)
                return st;
            i += 2;
            start = i;
            continue;
        }
        i++;
    }
    if ((st = dkim_eoh(d)) != DKIM_STAT_OK)
        return st;
    if (i < m->n && (st = dkim_body(d, m->p + i, m->n - i)) != DKIM_STAT_OK)
        return st;
    return dkim_eom(d, NULL);
}

/* ---- the library -------------------------------------------------------- */

static DKIM_LIB *lib_new(long long fixed_time, const char *keyfile)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    if (lib == NULL)
        return NULL;
    if (fixed_time > 0) {
        uint64_t t = (uint64_t)fixed_time;
        dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FIXEDTIME, &t, sizeof t);
    }
    if (keyfile != NULL) {
        dkim_query_t q = DKIM_QUERY_FILE;
        dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &q, sizeof q);
        dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, (void *)keyfile, strlen(keyfile));
    }
    return lib;
}

static int parse_alg(const char *s, dkim_alg_t *alg)
{
    if (strcmp(s, "rsa-sha256") == 0)
        *alg = DKIM_SIGN_RSASHA256;
    else if (strcmp(s, "ed25519-sha256") == 0)
        *alg = DKIM_SIGN_ED25519SHA256;
    else
        return -1;
    return 0;
}

static int parse_canon(const char *s, dkim_canon_t *h, dkim_canon_t *b)
{
    if (strcmp(s, "relaxed/relaxed") == 0)
        *h = *b = DKIM_CANON_RELAXED;
    else if (strcmp(s, "simple/simple") == 0)
        *h = *b = DKIM_CANON_SIMPLE;
    else if (strcmp(s, "relaxed/simple") == 0)
        *h = DKIM_CANON_RELAXED, *b = DKIM_CANON_SIMPLE;
    else if (strcmp(s, "simple/relaxed") == 0)
        *h = DKIM_CANON_SIMPLE, *b = DKIM_CANON_RELAXED;
    else
        return -1;
    return 0;
}

/* One signature of m with the key text; the header value goes into hdr. */
static DKIM_STAT sign_one(DKIM_LIB *lib, const struct text *key, const char *dom, const char *sel,
                          dkim_alg_t alg, dkim_canon_t hc, dkim_canon_t bc, const struct text *m,
                          unsigned char **hdr)
{
    DKIM_STAT st;
    DKIM *d =
        dkim_sign(lib, (const unsigned char *)"driver", NULL, key->p, (const unsigned char *)sel,
                  (const unsigned char *)dom, hc, bc, alg, -1, &st);
    if (d == NULL)
        return st;
    st = feed(d, m);
    if (st == DKIM_STAT_OK && hdr != NULL) {
        unsigned char *h = NULL;
        size_t hl = 0;
        st = dkim_getsighdr_d(d, strlen("DKIM-Signature: "), &h, &hl);
        if (st == DKIM_STAT_OK && (*hdr = malloc(hl + 1)) != NULL) {
            memcpy(*hdr, h, hl);
            (*hdr)[hl] = '\0';
        }
    }
    dkim_free(d);
    return st;
}

static const char *alg_name(DKIM_SIGINFO *s)
{
    dkim_alg_t a = DKIM_SIGN_UNKNOWN;
    dkim_sig_getsignalg(s, &a);
    return a == DKIM_SIGN_RSASHA256       ? "rsa-sha256"
           : a == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256"
           : a == DKIM_SIGN_RSASHA1       ? "rsa-sha1"
                                          : "?";
}

/* ---- commands ----------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: opendkim_driver sign -k KEYFILE -d DOMAIN -s SELECTOR [-a ALG] "
                    "[-c CANON] [-t EPOCH] < msg\n"
                    "       opendkim_driver verify -f KEYS [-t EPOCH] < msg\n"
                    "       opendkim_driver bench sign -m MSG -n N -k KEYFILE -d DOMAIN "
                    "-s SELECTOR -a ALG [--reparse]\n"
                    "       opendkim_driver bench verify -m MSG -n N -r RECORD\n");
    return 2;
}

struct opts {
    const char *key, *dom, *sel, *keys, *msg, *record;
    const char *alg, *canon;
    long long t, n;
    int reparse;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    o->alg = "rsa-sha256";
    o->canon = "relaxed/relaxed";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--reparse") == 0) {
            o->reparse = 1;
            continue;
        }
        if (i + 1 >= argc)
            return -1;
        const char *v = argv[++i];
        char *end;
        if (strcmp(a, "-k") == 0)
            o->key = v;
        else if (strcmp(a, "-d") == 0)
            o->dom = v;
        else if (strcmp(a, "-s") == 0)
            o->sel = v;
        else if (strcmp(a, "-a") == 0)
            o->alg = v;
        else if (strcmp(a, "-c") == 0)
            o->canon = v;
        else if (strcmp(a, "-f") == 0)
            o->keys = v;
        else if (strcmp(a, "-m") == 0)
            o->msg = v;
        else if (strcmp(a, "-r") == 0)
            o->record = v;
        else if (strcmp(a, "-t") == 0 || strcmp(a, "-n") == 0) {
            long long x = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0' || x <= 0)
                return -1;
            if (a[1] == 't')
                o->t = x;
            else
                o->n = x;
        } else
            return -1;
    }
    return 0;
}

static int cmd_sign(struct opts *o)
{
    dkim_alg_t alg;
    dkim_canon_t hc, bc;
    if (o->key == NULL || o->dom == NULL || o->sel == NULL || parse_alg(o->alg, &alg) < 0 ||
        parse_canon(o->canon, &hc, &bc) < 0)
        return usage();
    struct text key, m;
    if (read_path(o->key, &key) < 0 || read_stream(stdin, &m) < 0 || to_crlf(&m) < 0)
        return 2;
    DKIM_LIB *lib = lib_new(o->t, NULL);
    unsigned char *hdr = NULL;
    DKIM_STAT st =
        lib ? sign_one(lib, &key, o->dom, o->sel, alg, hc, bc, &m, &hdr) : DKIM_STAT_NORESOURCE;
    if (st != DKIM_STAT_OK || hdr == NULL) {
        fprintf(stderr, "opendkim_driver: sign: %s\n", dkim_getresultstr(st));
        return 1;
    }
    printf("DKIM-Signature: %s\r\n", hdr);
    fwrite(m.p, 1, m.n, stdout);
    free(hdr);
    dkim_close(lib);
    return 0;
}

static int cmd_verify(struct opts *o)
{
    if (o->keys == NULL)
        return usage();
    struct text m;
    if (read_stream(stdin, &m) < 0 || to_crlf(&m) < 0)
        return 2;
    DKIM_LIB *lib = lib_new(o->t, o->keys);
    DKIM_STAT st;
    DKIM *d = lib ? dkim_verify(lib, (const unsigned char *)"driver", NULL, &st) : NULL;
    if (d == NULL)
        return 2;
    st = feed(d, &m);
    DKIM_SIGINFO **sigs = NULL;
    int nsigs = 0, pass = 0;
    if (dkim_getsiglist(d, &sigs, &nsigs) != DKIM_STAT_OK || nsigs == 0)
        printf("none %s\n", dkim_getresultstr(st));
    for (int k = 0; k < nsigs; k++) {
        DKIM_SIGINFO *s = sigs[k];
        unsigned flags = dkim_sig_getflags(s);
        int err = dkim_sig_geterror(s), bh = dkim_sig_getbh(s);
        const char *word;
        if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH)
            word = "pass";
        else if (err == DKIM_SIGERROR_KEYFAIL)
            word = "temperror";
        else if (err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_BADSIG ||
                 bh == DKIM_SIGBH_MISMATCH)
            word = (flags & DKIM_SIGFLAG_TESTKEY) ? "neutral" : "fail";
        else
            word = "permerror";
        pass |= word[0] == 'p' && word[1] == 'a';
        const char *d_ = (const char *)dkim_sig_getdomain(s);
        const char *s_ = (const char *)dkim_sig_getselector(s);
        printf("%s d=%s s=%s a=%s%s%s%s\n", word, d_ ? d_ : "", s_ ? s_ : "", alg_name(s),
               err != DKIM_SIGERROR_OK ? " " : "",
               err != DKIM_SIGERROR_OK ? dkim_sig_geterrorstr(err) : "",
               bh == DKIM_SIGBH_MISMATCH ? " (body hash mismatch)" : "");
    }
    dkim_free(d);
    dkim_close(lib);
    return pass ? 0 : 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *bench_record;

static DKIM_CBSTAT record_lookup(DKIM *d, DKIM_SIGINFO *s, u_char *buf, size_t buflen)
{
    (void)d;
    (void)s;
    size_t n = strlen(bench_record);
    if (n + 1 > buflen)
        return DKIM_CBSTAT_ERROR;
    memcpy(buf, bench_record, n + 1);
    return DKIM_CBSTAT_CONTINUE;
}

static int cmd_bench(const char *what, struct opts *o)
{
    struct text m;
    if (o->msg == NULL || o->n <= 0 || read_path(o->msg, &m) < 0 || to_crlf(&m) < 0)
        return usage();
    DKIM_LIB *lib = lib_new(0, NULL);
    if (lib == NULL)
        return 2;
    double t0 = 0, t1 = 0;
    if (strcmp(what, "sign") == 0) {
        dkim_alg_t alg;
        dkim_canon_t hc, bc;
        struct text key;
        if (o->key == NULL || o->dom == NULL || o->sel == NULL || parse_alg(o->alg, &alg) < 0 ||
            parse_canon(o->canon, &hc, &bc) < 0 || read_path(o->key, &key) < 0)
            return usage();
        /* parse once (unless --reparse); libopendkim gets references */
        if (!o->reparse) {
            BIO *b = BIO_new_mem_buf(key.p, (int)key.n);
            cached_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
            BIO_free(b);
            if (cached_key == NULL)
                return 2;
        }
        t0 = now_s();
        for (long long k = 0; k < o->n; k++) {
            DKIM_STAT st = sign_one(lib, &key, o->dom, o->sel, alg, hc, bc, &m, NULL);
            if (st != DKIM_STAT_OK) {
                fprintf(stderr, "opendkim_driver: bench sign: %s\n", dkim_getresultstr(st));
                return 1;
            }
        }
        t1 = now_s();
    } else if (strcmp(what, "verify") == 0) {
        if (o->record == NULL)
            return usage();
        bench_record = o->record;
        dkim_set_key_lookup(lib, record_lookup);
        t0 = now_s();
        for (long long k = 0; k < o->n; k++) {
            DKIM_STAT st;
            DKIM *d = dkim_verify(lib, (const unsigned char *)"driver", NULL, &st);
            if (d == NULL)
                return 2;
            st = feed(d, &m);
            if (st != DKIM_STAT_OK) {
                fprintf(stderr, "opendkim_driver: bench verify: %s\n", dkim_getresultstr(st));
                return 1;
            }
            dkim_free(d);
        }
        t1 = now_s();
    } else {
        return usage();
    }
    printf("msgs_per_s=%.1f\n", (double)o->n / (t1 - t0));
    dkim_close(lib);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "bench") == 0) {
        if (argc < 3 || parse_opts(argc - 3, argv + 3, &o) < 0)
            return usage();
        return cmd_bench(argv[2], &o);
    }
    if (parse_opts(argc - 2, argv + 2, &o) < 0)
        return usage();
    if (strcmp(argv[1], "sign") == 0)
        return cmd_sign(&o);
    if (strcmp(argv[1], "verify") == 0)
        return cmd_verify(&o);
    return usage();
}
