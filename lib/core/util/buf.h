/*
 * buf.h - the one growable byte string of postern.
 *
 * A buffer has a maximum size fixed when it is made; every append that
 * would pass it fails with PST_ERR_TOOBIG and leaves the buffer unchanged.
 * Growth lives only in buf.c. The bytes are always followed by a NUL that is
 * not counted in the length, so text can be handed to C string functions
 * (which stop early if the data holds a NUL: check with memchr first).
 * A buffer made with pst_buf_new_secret() is wiped before its memory is
 * released (keys, passwords).
 */
#ifndef PST_BUF_H
#define PST_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct pst_buf;

/* New empty buffer that may grow to max bytes. NULL when out of memory. */
struct pst_buf *pst_buf_new(size_t max);
/* Same, and wiped (explicit_bzero) whenever memory is released. */
struct pst_buf *pst_buf_new_secret(size_t max);
/* Frees the buffer; NULL is allowed. */
void pst_buf_free(struct pst_buf *b);

/* Borrowed view of the bytes: valid until the next change of b. */
const char *pst_buf_data(const struct pst_buf *b);
size_t pst_buf_len(const struct pst_buf *b);
size_t pst_buf_max(const struct pst_buf *b);

/* Appends; 0, PST_ERR_TOOBIG (nothing appended) or PST_ERR_NOMEM. */
int pst_buf_add(struct pst_buf *b, const void *data, size_t len);
int pst_buf_addstr(struct pst_buf *b, const char *s);
int pst_buf_addc(struct pst_buf *b, char c);
int pst_buf_addf(struct pst_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pst_buf_vaddf(struct pst_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Empties the buffer (keeps its memory; wipes it when secret). */
void pst_buf_reset(struct pst_buf *b);
/* Removes the first n bytes (all of them when n >= len). */
void pst_buf_consume(struct pst_buf *b, size_t n);
/* Cuts the buffer to n bytes; n > len is PST_ERR_INVAL. */
int pst_buf_truncate(struct pst_buf *b, size_t n);

/* Takes the bytes out as a malloc'd NUL-terminated string and empties b.
 * The caller frees it. NULL when out of memory. */
char *pst_buf_steal(struct pst_buf *b);

#endif
