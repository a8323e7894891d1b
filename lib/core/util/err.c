/* err.c - texts for the library's error codes. */
#include "err.h"

const char *pst_strerror(int err)
{
    switch (err) {
    case PST_OK:
        return "success";
    case PST_ERR_NOMEM:
        return "out of memory";
    case PST_ERR_TOOBIG:
        return "limit exceeded";
    case PST_ERR_SYNTAX:
        return "syntax error";
    case PST_ERR_INVAL:
        return "invalid argument";
    case PST_ERR_IO:
        return "input/output error";
    case PST_ERR_NOTFOUND:
        return "not found";
    case PST_ERR_AGAIN:
        return "temporary failure";
    case PST_ERR_BARE_EOL:
        return "bare CR or LF";
    case PST_ERR_NUL:
        return "NUL byte in text";
    case PST_ERR_STATE:
        return "not allowed in this state";
    case PST_ERR_CRYPTO:
        return "cryptographic library error";
    case PST_ERR_UNSUPPORTED:
        return "not supported";
    }
    return "unknown error";
}
