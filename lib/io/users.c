/*
 * users.c - the submission users file (format and contracts in users.h):
 * a strict bounded parser, yescrypt hashing and constant-time verification
 * through libxcrypt, and atomic edits for `postern user`.
 */
#include "users.h"
#include "buf.h"
#include "err.h"
#include "fsio.h"
#include "sasl.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct pst_user {
    char *name;
    char *hash;
    char **addrs;
    size_t naddrs;
    size_t line_off; /* where its line starts in the parsed text */
    size_t line_len; /* without the LF */
};

struct pst_users {
    struct pst_user *v;
    size_t n;
    size_t *byname; /* indexes of v sorted by name, ASCII case ignored */
    /* the setting hashed when the user does not exist: the first user's
     * hash (same cost as a real user), or a default yescrypt setting */
    const char *dummy;
};

/* A yescrypt setting with libxcrypt's default cost (a fixed salt: it only
 * ever hashes passwords of users that do not exist). */
static const char default_dummy[] = "$y$j9T$Y7IVIwqe2bbfc1OJi2qiJ1";

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int ascii_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = lower((unsigned char)*a), y = lower((unsigned char)*b);
        if (x != y || x == 0)
            return x - y;
    }
}

/* ---- field checks ---- */

int pst_users_name_ok(const char *name)
{
    if (name == NULL)
        return 0;
    size_t n = strlen(name);
    if (n == 0 || n > PST_USERS_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '+' || c == '@'))
            return 0;
    }
    return 1;
}

/* RFC 5322 3.2.3 atext, and UTF-8 (RFC 6531 3.3) */
static int atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL || c >= 0x80;
}

/* dot-atom local part, 1..64 octets (RFC 5321 4.5.3.1.1) */
static int local_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return 0;
        } else if (c == 0 || !atext(c)) {
            return 0;
        }
    }
    return 1;
}

/* LDH labels (or UTF-8 ones), 1..63 each, at most 253 in all (RFC 1035
 * 2.3.4, RFC 5321 4.5.3.1.2); no address literals. */
static int domain_ok(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)s[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c >= 0x80))
            return 0;
        label++;
    }
    return 1;
}

int pst_users_addr_ok(const char *addr)
{
    if (addr == NULL)
        return 0;
    size_t n = strlen(addr);
    if (n == 0 || n > 254 || !pst_sasl_utf8_ok(addr, n))
        return 0;
    const char *at = strrchr(addr, '@');
    if (at == NULL)
        return 0;
    size_t ll = (size_t)(at - addr);
    if (ll > 0 && !local_ok(addr, ll))
        return 0;
    return domain_ok(at + 1, n - ll - 1);
}

/* Printable ASCII but ':', at most 512 octets, at least "$id$x$", and
 * accepted by libxcrypt as a current method. */
static int hash_ok(const char *h)
{
    size_t n = strlen(h), dollars = 0;
    if (n < 6 || n > 512 || h[0] != '$' || h[n - 1] == '$')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= 0x20 || c >= 0x7f || c == ':')
            return 0;
        dollars += c == '$';
    }
    return dollars >= 3 && crypt_checksalt(h) == CRYPT_SALT_OK;
}

/* ---- the table ---- */

static void user_clear(struct pst_user *u)
{
    if (u->hash != NULL) {
        explicit_bzero(u->hash, strlen(u->hash));
        free(u->hash);
    }
    free(u->name);
    for (size_t i = 0; i < u->naddrs; i++)
        free(u->addrs[i]);
    free(u->addrs);
    memset(u, 0, sizeof(*u));
}

void pst_users_free(struct pst_users *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->n; i++)
        user_clear(&u->v[i]);
    free(u->v);
    free(u->byname);
    free(u);
}

size_t pst_users_count(const struct pst_users *u)
{
    return u == NULL ? 0 : u->n;
}

const struct pst_user *pst_users_at(const struct pst_users *u, size_t i)
{
    return u == NULL || i >= u->n ? NULL : &u->v[i];
}

const char *pst_user_name(const struct pst_user *user)
{
    return user == NULL ? NULL : user->name;
}

size_t pst_user_naddrs(const struct pst_user *user)
{
    return user == NULL ? 0 : user->naddrs;
}

const char *pst_user_addr(const struct pst_user *user, size_t i)
{
    return user == NULL || i >= user->naddrs ? NULL : user->addrs[i];
}

const struct pst_user *pst_users_find(const struct pst_users *u, const char *name)
{
    if (u == NULL || name == NULL)
        return NULL;
    size_t lo = 0, hi = u->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct pst_user *m = &u->v[u->byname[mid]];
        int c = ascii_casecmp(name, m->name);
        if (c == 0)
            return m;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int pst_users_may_send(const struct pst_user *user, const char *local, const char *domain)
{
    if (user == NULL)
        return 0;
    return pst_sasl_may_send(user->name, (const char *const *)user->addrs, user->naddrs, local,
                             domain);
}

/* ---- parser ---- */

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Splits the address field into user->addrs. 0 or a PST_ERR_* with why. */
static int parse_addrs(const char *s, size_t n, struct pst_user *user, const char **why)
{
    if (n == 0)
        return 0;
    size_t count = 1;
    for (size_t i = 0; i < n; i++)
        count += s[i] == ',';
    if (count > PST_USERS_MAX_ADDRS) {
        *why = "too many addresses";
        return PST_ERR_TOOBIG;
    }
    user->addrs = calloc(count, sizeof(char *));
    if (user->addrs == NULL)
        return PST_ERR_NOMEM;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        char *a = dupn(s + start, i - start);
        if (a == NULL)
            return PST_ERR_NOMEM;
        user->addrs[user->naddrs++] = a;
        if (!pst_users_addr_ok(a)) {
            *why = i == start ? "empty address" : "bad address (want local@domain or @domain)";
            return PST_ERR_SYNTAX;
        }
        start = i + 1;
    }
    return 0;
}

/* One user line (not blank, not a comment) into *user. */
static int parse_line(const char *s, size_t n, struct pst_user *user, const char **why)
{
    const char *c1 = memchr(s, ':', n);
    const char *c2 = c1 != NULL ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - s)) : NULL;
    if (c2 == NULL) {
        *why = "want NAME:HASH:ADDRESSES";
        return PST_ERR_SYNTAX;
    }
    if (memchr(c2 + 1, ':', n - (size_t)(c2 + 1 - s)) != NULL) {
        *why = "more than three fields";
        return PST_ERR_SYNTAX;
    }
    user->name = dupn(s, (size_t)(c1 - s));
    user->hash = dupn(c1 + 1, (size_t)(c2 - c1 - 1));
    if (user->name == NULL || user->hash == NULL)
        return PST_ERR_NOMEM;
    if (!pst_users_name_ok(user->name)) {
        *why = "bad user name (1-254 of A-Z a-z 0-9 . _ - + @)";
        return PST_ERR_SYNTAX;
    }
    if (!hash_ok(user->hash)) {
        *why = "bad password hash (not a crypt(5) hash of a current method)";
        return PST_ERR_SYNTAX;
    }
    return parse_addrs(c2 + 1, n - (size_t)(c2 + 1 - s), user, why);
}

static int cmp_byname(const void *a, const void *b, void *arg)
{
    const struct pst_user *v = arg;
    return ascii_casecmp(v[*(const size_t *)a].name, v[*(const size_t *)b].name);
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

int pst_users_parse(const char *buf, size_t len, const char *fname, struct pst_users **out,
                    char *err, size_t errlen)
{
    if ((buf == NULL && len > 0) || out == NULL)
        return PST_ERR_INVAL;
    if (fname == NULL)
        fname = "users";
    if (len > PST_USERS_MAX_FILE) {
        seterr(err, errlen, "%s: file longer than %u octets", fname, PST_USERS_MAX_FILE);
        return PST_ERR_TOOBIG;
    }
    struct pst_users *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return PST_ERR_NOMEM;
    int rc = 0;
    size_t cap = 0, lineno = 0, pos = 0;
    const char *why = NULL;
    while (pos < len) {
        lineno++;
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - s) : len - pos;
        size_t off = pos;
        pos += n + (nl != NULL);
        if (n > PST_USERS_MAX_LINE) {
            why = "line too long";
            rc = PST_ERR_TOOBIG;
            goto out;
        }
        if (memchr(s, '\0', n) != NULL) {
            why = "NUL byte";
            rc = PST_ERR_SYNTAX;
            goto out;
        }
        if (memchr(s, '\r', n) != NULL) {
            why = "CR in line (the file must have LF line ends)";
            rc = PST_ERR_SYNTAX;
            goto out;
        }
        if (blank(s, n) || s[0] == '#')
            continue;
        if (u->n == PST_USERS_MAX_USERS) {
            why = "too many users";
            rc = PST_ERR_TOOBIG;
            goto out;
        }
        if (u->n == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            struct pst_user *nv = realloc(u->v, ncap * sizeof(*nv));
            if (nv == NULL) {
                rc = PST_ERR_NOMEM;
                goto out;
            }
            u->v = nv;
            cap = ncap;
        }
        struct pst_user *user = &u->v[u->n++];
        memset(user, 0, sizeof(*user));
        user->line_off = off;
        user->line_len = n;
        rc = parse_line(s, n, user, &why);
        if (rc != 0)
            goto out;
    }
    if (u->n > 0) {
        u->byname = malloc(u->n * sizeof(size_t));
        if (u->byname == NULL) {
            rc = PST_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < u->n; i++)
            u->byname[i] = i;
        qsort_r(u->byname, u->n, sizeof(size_t), cmp_byname, u->v);
        for (size_t i = 1; i < u->n; i++) {
            const struct pst_user *a = &u->v[u->byname[i - 1]], *b = &u->v[u->byname[i]];
            if (ascii_casecmp(a->name, b->name) == 0) {
                /* name the later line, the one that repeats */
                const struct pst_user *later = a->line_off > b->line_off ? a : b;
                lineno = 1;
                for (size_t k = 0; k < later->line_off; k++)
                    lineno += buf[k] == '\n';
                why = "user name repeated";
                rc = PST_ERR_SYNTAX;
                goto out;
            }
        }
        u->dummy = u->v[0].hash;
    } else {
        u->dummy = default_dummy;
    }
out:
    if (rc != 0) {
        if (why != NULL)
            seterr(err, errlen, "%s:%zu: %s", fname, lineno, why);
        else
            seterr(err, errlen, "%s:%zu: %s", fname, lineno, pst_strerror(rc));
        pst_users_free(u);
        return rc;
    }
    *out = u;
    return 0;
}

/* ---- reading the file ---- */

/* Reads the open file fd (named fname in errors) into a new buffer after
 * checking that it is a regular file only its owner may read or write.
 * *st gets its status. */
static int read_checked(int fd, const char *fname, struct stat *st, struct pst_buf **out, char *err,
                        size_t errlen)
{
    if (fstat(fd, st) != 0) {
        int e = errno;
        seterr(err, errlen, "%s: %s", fname, strerror(e));
        errno = e;
        return PST_ERR_IO;
    }
    if (!S_ISREG(st->st_mode)) {
        seterr(err, errlen, "%s: not a regular file", fname);
        errno = EINVAL;
        return PST_ERR_IO;
    }
    if ((st->st_mode & 077) != 0) {
        seterr(err, errlen,
               "%s: mode %03o lets group or others read or write the password hashes "
               "(chmod 600 it)",
               fname, (unsigned)(st->st_mode & 0777));
        return PST_USERS_ERR_MODE;
    }
    if ((uint64_t)st->st_size > PST_USERS_MAX_FILE) {
        seterr(err, errlen, "%s: file longer than %u octets", fname, PST_USERS_MAX_FILE);
        return PST_ERR_TOOBIG;
    }
    struct pst_buf *b = pst_buf_new_secret(PST_USERS_MAX_FILE);
    if (b == NULL)
        return PST_ERR_NOMEM;
    char chunk[8192];
    int rc = 0;
    for (;;) {
        ssize_t n = pst_fsio_read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            int e = errno;
            seterr(err, errlen, "%s: %s", fname, strerror(e));
            errno = e;
            rc = PST_ERR_IO;
            break;
        }
        if (n == 0)
            break;
        rc = pst_buf_add(b, chunk, (size_t)n);
        if (rc != 0) {
            seterr(err, errlen, "%s: %s", fname,
                   rc == PST_ERR_TOOBIG ? "file too long" : pst_strerror(rc));
            break;
        }
    }
    explicit_bzero(chunk, sizeof(chunk));
    if (rc != 0) {
        pst_buf_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

int pst_users_load(const char *path, struct pst_users **out, char *err, size_t errlen)
{
    if (path == NULL || out == NULL)
        return PST_ERR_INVAL;
    int fd = pst_fsio_openat(AT_FDCWD, path, O_RDONLY | O_NOCTTY, 0);
    if (fd < 0) {
        int e = errno;
        seterr(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return e == ENOENT ? PST_ERR_NOTFOUND : PST_ERR_IO;
    }
    struct stat st;
    struct pst_buf *b = NULL;
    int rc = read_checked(fd, path, &st, &b, err, errlen);
    close(fd); /* read-only */
    if (rc != 0)
        return rc;
    rc = pst_users_parse(pst_buf_data(b), pst_buf_len(b), path, out, err, errlen);
    pst_buf_free(b);
    return rc;
}

/* ---- hashing and verification ---- */

struct crypt_work {
    struct crypt_data cd;
    char pw[PST_USERS_MAX_PASS + 1];
};

static struct crypt_work *work_new(const char *password, size_t len)
{
    struct crypt_work *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    memcpy(w->pw, password, len);
    w->pw[len] = '\0';
    return w;
}

static void work_free(struct crypt_work *w)
{
    if (w == NULL)
        return;
    explicit_bzero(w, sizeof(*w));
    free(w);
}

static int password_ok(const char *password, size_t len)
{
    return password != NULL && len > 0 && len <= PST_USERS_MAX_PASS &&
           pst_sasl_utf8_ok(password, len);
}

int pst_users_hash(const char *password, size_t len, char *out, size_t outlen)
{
    if (!password_ok(password, len) || out == NULL)
        return PST_ERR_INVAL;
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    /* count 0: libxcrypt's default cost; NULL rbytes: salt from the OS */
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, (int)sizeof(setting)) == NULL)
        return PST_ERR_CRYPTO;
    struct crypt_work *w = work_new(password, len);
    if (w == NULL)
        return PST_ERR_NOMEM;
    int rc = 0;
    const char *h = crypt_rn(w->pw, setting, &w->cd, (int)sizeof(w->cd));
    if (h == NULL || h[0] != '$')
        rc = PST_ERR_CRYPTO;
    else if (strlen(h) >= outlen)
        rc = PST_ERR_INVAL;
    else
        memcpy(out, h, strlen(h) + 1);
    work_free(w);
    return rc;
}

int pst_users_verify(const struct pst_users *u, const char *name, const char *password, size_t len,
                     const struct pst_user **user)
{
    if (u == NULL || name == NULL || (password == NULL && len > 0))
        return PST_ERR_INVAL;
    if (len > PST_USERS_MAX_PASS || (len > 0 && memchr(password, '\0', len) != NULL))
        return PST_ERR_INVAL;
    const struct pst_user *found = pst_users_find(u, name);
    struct crypt_work *w = work_new(password != NULL ? password : "", len);
    if (w == NULL)
        return PST_ERR_NOMEM;
    /* Hash even when the user does not exist, with the cost of a real
     * user, so the time taken does not tell which names exist. */
    const char *setting = found != NULL ? found->hash : u->dummy;
    const char *h = crypt_rn(w->pw, setting, &w->cd, (int)sizeof(w->cd));
    int rc;
    if (h == NULL || h[0] != '$') {
        rc = PST_ERR_CRYPTO;
    } else if (found == NULL) {
        rc = PST_USERS_UNKNOWN;
    } else {
        size_t hl = strlen(h), sl = strlen(found->hash);
        /* lengths are not secret; the contents are compared in constant
         * time */
        rc = hl == sl && CRYPTO_memcmp(h, found->hash, hl) == 0 ? PST_USERS_OK : PST_USERS_MISMATCH;
    }
    work_free(w);
    if (rc == PST_USERS_OK && user != NULL)
        *user = found;
    return rc;
}

/* ---- edits ---- */

enum edit_kind { EDIT_ADD, EDIT_PASSWD, EDIT_DEL };

struct edit {
    enum edit_kind kind;
    const char *name;
    const char *hash; /* add, passwd */
    const char *const *addrs;
    size_t naddrs;
};

/* Appends NAME:HASH:ADDR,ADDR (no LF) to b. */
static int put_line(struct pst_buf *b, const char *name, const char *hash, const char *const *addrs,
                    size_t naddrs)
{
    size_t start = pst_buf_len(b);
    int rc = pst_buf_addf(b, "%s:%s:", name, hash);
    for (size_t i = 0; rc == 0 && i < naddrs; i++) {
        if (i > 0)
            rc = pst_buf_addc(b, ',');
        if (rc == 0)
            rc = pst_buf_addstr(b, addrs[i]);
    }
    if (rc == 0 && pst_buf_len(b) - start > PST_USERS_MAX_LINE)
        rc = PST_ERR_TOOBIG;
    return rc;
}

/* The new text of the file: old (parsed as u) with the edit applied. */
static int apply(const struct edit *e, const char *old, size_t oldlen, const struct pst_users *u,
                 struct pst_buf *b, const char *fname, char *err, size_t errlen)
{
    const struct pst_user *user = pst_users_find(u, e->name);
    int rc;
    if (e->kind == EDIT_ADD) {
        if (user != NULL) {
            seterr(err, errlen, "%s: user %s exists", fname, user->name);
            return PST_ERR_INVAL;
        }
        if (pst_users_count(u) >= PST_USERS_MAX_USERS) {
            seterr(err, errlen, "%s: already %d users", fname, PST_USERS_MAX_USERS);
            return PST_ERR_TOOBIG;
        }
        rc = pst_buf_add(b, old, oldlen);
        if (rc == 0 && oldlen > 0 && old[oldlen - 1] != '\n')
            rc = pst_buf_addc(b, '\n');
        if (rc == 0)
            rc = put_line(b, e->name, e->hash, e->addrs, e->naddrs);
        if (rc == 0)
            rc = pst_buf_addc(b, '\n');
        return rc;
    }
    if (user == NULL) {
        seterr(err, errlen, "%s: no user %s", fname, e->name);
        return PST_ERR_NOTFOUND;
    }
    size_t end = user->line_off + user->line_len;
    rc = pst_buf_add(b, old, user->line_off);
    if (e->kind == EDIT_PASSWD) {
        if (rc == 0)
            rc = put_line(b, user->name, e->hash, (const char *const *)user->addrs, user->naddrs);
    } else if (end < oldlen) {
        end++; /* the LF of the deleted line */
    }
    if (rc == 0)
        rc = pst_buf_add(b, old + end, oldlen - end);
    return rc;
}

/* Splits path into its directory and last component (malloc'd). */
static int split_path(const char *path, char **dir, char **base)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        *dir = dupn(".", 1);
        *base = dupn(path, strlen(path));
    } else {
        *dir = slash == path ? dupn("/", 1) : dupn(path, (size_t)(slash - path));
        *base = dupn(slash + 1, strlen(slash + 1));
    }
    if (*dir == NULL || *base == NULL) {
        free(*dir);
        free(*base);
        return PST_ERR_NOMEM;
    }
    return 0;
}

static int io_err(char *err, size_t errlen, const char *what, const char *path)
{
    int e = errno;
    seterr(err, errlen, "%s %s: %s", what, path, strerror(e));
    errno = e;
    return PST_ERR_IO;
}

static int edit_file(const char *path, const struct edit *e, char *err, size_t errlen)
{
    char *real = NULL, *dir = NULL, *base = NULL, *tmp = NULL;
    int dirfd = -1, fd = -1, rc;
    struct pst_buf *old = NULL, *neu = NULL;
    struct pst_users *u = NULL;
    struct stat st;
    int exists = 0;

    /* edit the file a symlink points to, not the link */
    real = realpath(path, NULL);
    if (real == NULL && errno != ENOENT) {
        rc = io_err(err, errlen, "cannot resolve", path);
        goto out;
    }
    rc = split_path(real != NULL ? real : path, &dir, &base);
    if (rc != 0)
        goto out;
    if (base[0] == '\0') {
        seterr(err, errlen, "%s: not a file name", path);
        rc = PST_ERR_INVAL;
        goto out;
    }
    dirfd = pst_fsio_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
    if (dirfd < 0) {
        rc = io_err(err, errlen, "cannot open directory", dir);
        goto out;
    }
    /* one edit at a time: a lock on the directory survives the rename */
    int lr;
    do {
        lr = flock(dirfd, LOCK_EX);
    } while (lr != 0 && errno == EINTR);
    if (lr != 0) {
        rc = io_err(err, errlen, "cannot lock", dir);
        goto out;
    }
    fd = pst_fsio_openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_NOCTTY, 0);
    if (fd >= 0) {
        exists = 1;
        rc = read_checked(fd, path, &st, &old, err, errlen);
        close(fd); /* read-only */
        fd = -1;
        if (rc != 0)
            goto out;
        rc = pst_users_parse(pst_buf_data(old), pst_buf_len(old), path, &u, err, errlen);
        if (rc != 0)
            goto out;
    } else if (errno == ENOENT) {
        if (e->kind != EDIT_ADD) {
            seterr(err, errlen, "%s: no users file, so no user %s", path, e->name);
            rc = PST_ERR_NOTFOUND;
            goto out;
        }
        rc = pst_users_parse("", 0, path, &u, err, errlen);
        if (rc != 0)
            goto out;
    } else {
        rc = io_err(err, errlen, "cannot open", path);
        goto out;
    }
    neu = pst_buf_new_secret(PST_USERS_MAX_FILE);
    if (neu == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    rc = apply(e, exists ? pst_buf_data(old) : "", exists ? pst_buf_len(old) : 0, u, neu, path, err,
               errlen);
    if (rc == PST_ERR_TOOBIG)
        seterr(err, errlen, "%s: the file would pass its limits", path);
    if (rc != 0)
        goto out;
    size_t tlen = strlen(base) + 32;
    tmp = malloc(tlen);
    if (tmp == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    snprintf(tmp, tlen, ".%s.%ld.tmp", base, (long)getpid());
    /* under the lock a leftover temporary file is from a crashed edit */
    (void)unlinkat(dirfd, tmp, 0);
    rc = pst_fsio_write_file_at(dirfd, tmp, pst_buf_data(neu), pst_buf_len(neu), 1);
    if (rc != 0) {
        rc = io_err(err, errlen, "cannot write", tmp);
        goto out;
    }
    /* keep the owner, so a daemon that reads the file as its own user
     * still can after root edited it */
    if (exists && (st.st_uid != geteuid() || st.st_gid != getegid()) &&
        fchownat(dirfd, tmp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) {
        rc = io_err(err, errlen, "cannot give the owner back to", tmp);
        (void)unlinkat(dirfd, tmp, 0);
        goto out;
    }
    if (renameat(dirfd, tmp, dirfd, base) != 0) {
        rc = io_err(err, errlen, "cannot rename over", path);
        (void)unlinkat(dirfd, tmp, 0);
        goto out;
    }
    if (pst_fsio_fsync(dirfd) != 0) {
        rc = io_err(err, errlen, "cannot fsync directory", dir);
        goto out;
    }
    rc = 0;
out:
    if (dirfd >= 0)
        close(dirfd); /* releases the lock */
    pst_users_free(u);
    pst_buf_free(old);
    pst_buf_free(neu);
    free(real);
    free(dir);
    free(base);
    free(tmp);
    return rc;
}

int pst_users_add(const char *path, const char *name, const char *password, size_t len,
                  const char *const *addrs, size_t naddrs, char *err, size_t errlen)
{
    if (path == NULL || (addrs == NULL && naddrs > 0))
        return PST_ERR_INVAL;
    if (!pst_users_name_ok(name)) {
        seterr(err, errlen, "bad user name (1-254 of A-Z a-z 0-9 . _ - + @)");
        return PST_ERR_INVAL;
    }
    if (naddrs > PST_USERS_MAX_ADDRS) {
        seterr(err, errlen, "more than %d addresses", PST_USERS_MAX_ADDRS);
        return PST_ERR_INVAL;
    }
    for (size_t i = 0; i < naddrs; i++) {
        if (!pst_users_addr_ok(addrs[i])) {
            seterr(err, errlen, "bad address '%s' (want local@domain or @domain)",
                   addrs[i] != NULL ? addrs[i] : "");
            return PST_ERR_INVAL;
        }
    }
    if (!password_ok(password, len)) {
        seterr(err, errlen, "the password must be 1-%d octets of UTF-8 text", PST_USERS_MAX_PASS);
        return PST_ERR_INVAL;
    }
    char hash[CRYPT_OUTPUT_SIZE];
    int rc = pst_users_hash(password, len, hash, sizeof(hash));
    if (rc != 0) {
        seterr(err, errlen, "cannot hash the password: %s", pst_strerror(rc));
        return rc;
    }
    struct edit e = {EDIT_ADD, name, hash, addrs, naddrs};
    rc = edit_file(path, &e, err, errlen);
    explicit_bzero(hash, sizeof(hash));
    return rc;
}

int pst_users_passwd(const char *path, const char *name, const char *password, size_t len,
                     char *err, size_t errlen)
{
    if (path == NULL || name == NULL)
        return PST_ERR_INVAL;
    if (!password_ok(password, len)) {
        seterr(err, errlen, "the password must be 1-%d octets of UTF-8 text", PST_USERS_MAX_PASS);
        return PST_ERR_INVAL;
    }
    char hash[CRYPT_OUTPUT_SIZE];
    int rc = pst_users_hash(password, len, hash, sizeof(hash));
    if (rc != 0) {
        seterr(err, errlen, "cannot hash the password: %s", pst_strerror(rc));
        return rc;
    }
    struct edit e = {EDIT_PASSWD, name, hash, NULL, 0};
    rc = edit_file(path, &e, err, errlen);
    explicit_bzero(hash, sizeof(hash));
    return rc;
}

int pst_users_del(const char *path, const char *name, char *err, size_t errlen)
{
    if (path == NULL || name == NULL)
        return PST_ERR_INVAL;
    struct edit e = {EDIT_DEL, name, NULL, NULL, 0};
    return edit_file(path, &e, err, errlen);
}
