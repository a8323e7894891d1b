/*
 * msg.h - the header section of an RFC 5322 message, split without I/O.
 *
 * RFC 5322 2.1 (header section, empty line, body), 2.2 (header fields:
 * field-name ":" unstructured value), 2.2.3 (folding: a line that starts
 * with WSP continues the field before it), 3.6.8 (ftext = %d33-57 /
 * %d59-126), 4.5 (obs: WSP between the field name and the colon).
 *
 * Lines end in CRLF only: a bare CR or LF in the header section is
 * refused (PST_ERR_BARE_EOL), as is a NUL (PST_ERR_NUL); the caller
 * converts LF-only text first if it wants to accept it. The header section
 * ends at the first empty line; the body starts after it. A message made
 * of header fields only (no empty line) has an empty body at its end.
 *
 * Deliberate leniencies: WSP before the colon (RFC 5322 4.5 obs-optional),
 * 8-bit octets in field values (RFC 6532 allows UTF-8).
 *
 * Limits (struct pst_msg_limits, 0 = the default): the number of fields,
 * the size of the header section and of one field. Past one the split
 * fails with PST_ERR_TOOBIG and says which.
 */
#ifndef PST_MSG_H
#define PST_MSG_H

#include <stddef.h>

#define PST_MSG_MAX_FIELDS    1000
#define PST_MSG_MAX_HEADER    (1024 * 1024)
#define PST_MSG_MAX_FIELD_LEN (128 * 1024)

struct pst_msg_limits {
    size_t max_fields; /* 0: PST_MSG_MAX_FIELDS */
    size_t max_header; /* bytes of the header section, 0: PST_MSG_MAX_HEADER */
    size_t max_field;  /* bytes of one field with its folding, 0: PST_MSG_MAX_FIELD_LEN */
};

/*
 * One header field. Every pointer borrows the text handed to
 * pst_msg_split(): it stays valid as long as that text does.
 *   raw/raw_len      the whole field from its name to before its final
 *                    CRLF (folding CRLFs inside included)
 *   name/name_len    the field name, without WSP before the colon
 *   value/value_len  everything after the colon up to the final CRLF
 */
struct pst_msg_field {
    const char *raw;
    size_t raw_len;
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct pst_msg_header {
    struct pst_msg_field *fields;
    size_t nfields;
    size_t body_off; /* offset of the body in the text (== len when none) */
};

/*
 * Splits text[0..len) (a message, or its header section alone) into
 * header fields. lim may be NULL (defaults). On success *out is a new
 * header (free with pst_msg_header_free). On failure *why is a static
 * text naming the problem. Returns 0, PST_ERR_SYNTAX (a line without a
 * colon, an empty field name, a continuation line first), PST_ERR_BARE_EOL,
 * PST_ERR_NUL, PST_ERR_TOOBIG, PST_ERR_NOMEM, PST_ERR_INVAL.
 */
int pst_msg_split(const char *text, size_t len, const struct pst_msg_limits *lim,
                  struct pst_msg_header **out, const char **why);
void pst_msg_header_free(struct pst_msg_header *h);

/* 1 when the field's name equals name (ASCII case-insensitive), else 0. */
int pst_msg_field_is(const struct pst_msg_field *f, const char *name);

/* Number of fields named name. */
size_t pst_msg_count(const struct pst_msg_header *h, const char *name);

#endif
