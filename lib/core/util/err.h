/*
 * err.h - the error codes of the postern library.
 *
 * Every library function that can fail returns int: 0 on success or a
 * negative PST_ERR_* code. Out-parameters are written only on success.
 * The library never exits, prints or logs; callers decide what is fatal.
 */
#ifndef PST_ERR_H
#define PST_ERR_H

enum pst_err {
    PST_OK = 0,
    PST_ERR_NOMEM = -1,        /* allocation failed */
    PST_ERR_TOOBIG = -2,       /* a size or count limit was reached */
    PST_ERR_SYNTAX = -3,       /* input does not follow the grammar */
    PST_ERR_INVAL = -4,        /* bad argument from the caller */
    PST_ERR_IO = -5,           /* a system call failed; errno tells more */
    PST_ERR_NOTFOUND = -6,     /* the thing asked for does not exist */
    PST_ERR_AGAIN = -7,        /* temporary failure; try again later */
    PST_ERR_BARE_EOL = -8,     /* bare CR or LF where only CRLF is allowed */
    PST_ERR_NUL = -9,          /* NUL byte in text */
    PST_ERR_STATE = -10,       /* call not allowed in the current state */
    PST_ERR_CRYPTO = -11,      /* the crypto library reported an error */
    PST_ERR_UNSUPPORTED = -12, /* recognised but not supported */
};

/* pst_strerror returns a static English text for a PST_ERR_* code. */
const char *pst_strerror(int err);

#endif
