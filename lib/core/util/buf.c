/* buf.c - bounded growable byte string; the only place buffers grow. */
#include "buf.h"
#include "err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pst_buf {
    char *data;
    size_t len;
    size_t cap; /* allocated bytes, including room for the trailing NUL */
    size_t max; /* largest len allowed */
    int secret;
};

static struct pst_buf *buf_new(size_t max, int secret)
{
    struct pst_buf *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->max = max;
    b->secret = secret;
    return b;
}

struct pst_buf *pst_buf_new(size_t max)
{
    return buf_new(max, 0);
}

struct pst_buf *pst_buf_new_secret(size_t max)
{
    return buf_new(max, 1);
}

void pst_buf_free(struct pst_buf *b)
{
    if (b == NULL)
        return;
    if (b->secret && b->data != NULL)
        explicit_bzero(b->data, b->cap);
    free(b->data);
    free(b);
}

const char *pst_buf_data(const struct pst_buf *b)
{
    return b->data != NULL ? b->data : "";
}

size_t pst_buf_len(const struct pst_buf *b)
{
    return b->len;
}

size_t pst_buf_max(const struct pst_buf *b)
{
    return b->max;
}

/* Makes room for need more bytes plus the NUL. */
static int buf_reserve(struct pst_buf *b, size_t need)
{
    if (need > b->max - b->len)
        return PST_ERR_TOOBIG;
    size_t want = b->len + need + 1;
    if (want <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p;
    if (b->secret) {
        /* never leave a copy of secret bytes in freed memory */
        p = malloc(cap);
        if (p == NULL)
            return PST_ERR_NOMEM;
        if (b->data != NULL) {
            memcpy(p, b->data, b->len + 1);
            explicit_bzero(b->data, b->cap);
            free(b->data);
        }
    } else {
        p = realloc(b->data, cap);
        if (p == NULL)
            return PST_ERR_NOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int pst_buf_add(struct pst_buf *b, const void *data, size_t len)
{
    int rc = buf_reserve(b, len);
    if (rc < 0)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int pst_buf_addstr(struct pst_buf *b, const char *s)
{
    return pst_buf_add(b, s, strlen(s));
}

int pst_buf_addc(struct pst_buf *b, char c)
{
    return pst_buf_add(b, &c, 1);
}

int pst_buf_vaddf(struct pst_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return PST_ERR_INVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int pst_buf_addf(struct pst_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pst_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void pst_buf_reset(struct pst_buf *b)
{
    if (b->data != NULL) {
        if (b->secret)
            explicit_bzero(b->data, b->cap);
        b->data[0] = '\0';
    }
    b->len = 0;
}

void pst_buf_consume(struct pst_buf *b, size_t n)
{
    if (n >= b->len) {
        pst_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
    if (b->secret)
        explicit_bzero(b->data + b->len + 1, b->cap - b->len - 1);
}

int pst_buf_truncate(struct pst_buf *b, size_t n)
{
    if (n > b->len)
        return PST_ERR_INVAL;
    if (b->data == NULL)
        return 0;
    if (b->secret)
        explicit_bzero(b->data + n, b->len - n);
    b->len = n;
    b->data[n] = '\0';
    return 0;
}

char *pst_buf_steal(struct pst_buf *b)
{
    char *s;
    if (b->data == NULL) {
        s = strdup("");
        return s;
    }
    s = b->data;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return s;
}
