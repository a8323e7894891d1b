/*
 * dkim.h - DomainKeys Identified Mail: parsing, canonicalization, signing
 * and verification without I/O (DNS only through the struct pst_resolver
 * the caller hands in; time is passed in).
 *
 * RFC 6376 (DKIM: tag lists 3.2, canonicalization 3.4, signature 3.5, key
 * records 3.6.1, signing 5, verifying 6), RFC 8463 (ed25519-sha256),
 * RFC 8301 (rsa-sha1 refused, RSA keys under 1024 bits refused), RFC 8460
 * 3 (s=tlsrpt), RFC 8601 2.7.1 (result words for Authentication-Results).
 *
 * Deviations and choices, each named:
 *  - rsa-sha1 signatures are parsed and always permerror (RFC 8301 3.1).
 *  - A signature with l= whose count leaves body bytes unsigned is
 *    "policy" (RFC 6376 8.2: appended content would pass); postern never
 *    signs with l=.
 *  - A failing signature under a key in testing mode (t=y, RFC 6376 3.6.1)
 *    is "neutral", not "fail".
 *  - Of several TXT records at a key name the first that parses as a key
 *    record is used (RFC 6376 6.1.2 lets the verifier choose).
 *  - Signatures past the cap (default 5) are not looked at; the count of
 *    those is reported.
 *
 * Crypto, hashing and base64 are OpenSSL 3's (EVP); nothing hand-written.
 */
#ifndef PST_DKIM_H
#define PST_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct pst_resolver;
struct pst_dns_budget;

/* ---- limits ------------------------------------------------------------- */

#define PST_DKIM_MAX_TAGS      64   /* tags in one tag list */
#define PST_DKIM_MAX_TAGLIST   8192 /* bytes of one tag list (signature or key record) */
#define PST_DKIM_MAX_H         64   /* names in h= */
#define PST_DKIM_MAX_SIGS      5    /* signatures verified per message by default */
#define PST_DKIM_MAX_SIGS_HARD 64   /* largest cap a caller may ask for */
#define PST_DKIM_MIN_RSA_BITS  1024 /* RFC 8301 3.2 */
#define PST_DKIM_MAX_RSA_BITS  8192
#define PST_DKIM_MAX_KEYS      4 /* keys in one signer */

/* ---- tag lists (RFC 6376 3.2) -------------------------------------------- */

/*
 * One tag of a tag list. Pointers borrow the parsed text. value has the
 * FWS around it stripped (inner FWS kept); vstart/vend are the offsets in
 * the text of everything between the '=' and the ';' (or the end), which is
 * what RFC 6376 3.7 empties for b=.
 */
struct pst_dkim_tag {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    size_t vstart, vend;
};

struct pst_dkim_taglist {
    struct pst_dkim_tag tags[PST_DKIM_MAX_TAGS];
    size_t ntags;
};

/*
 * Parses text[0..len) as a tag-list (RFC 6376 3.2): tag names are ALPHA
 * *(ALPHA / DIGIT / "_"), values VALCHARs separated by FWS, one optional
 * trailing ";". Duplicate names, empty tag-specs, bad characters and more
 * than PST_DKIM_MAX_TAGS tags are errors: PST_ERR_SYNTAX or PST_ERR_TOOBIG
 * with *why (static text). *out is written only on success.
 */
int pst_dkim_taglist_parse(const char *text, size_t len, struct pst_dkim_taglist *out,
                           const char **why);
/* The tag named name, or NULL. */
const struct pst_dkim_tag *pst_dkim_tag_get(const struct pst_dkim_taglist *tl, const char *name);

/* ---- signatures (RFC 6376 3.5) ------------------------------------------- */

enum pst_dkim_alg {
    PST_DKIM_RSA_SHA256 = 0,
    PST_DKIM_ED25519_SHA256 = 1, /* RFC 8463 */
    PST_DKIM_RSA_SHA1 = 2,       /* parsed only: RFC 8301 */
};

enum pst_dkim_canon {
    PST_DKIM_SIMPLE = 0,
    PST_DKIM_RELAXED = 1,
};

/*
 * A parsed DKIM-Signature value; owns its strings (pst_dkim_sig_free).
 * d, s and the domain of i are kept as written; compare without case.
 */
struct pst_dkim_sig {
    enum pst_dkim_alg alg;
    enum pst_dkim_canon hcanon, bcanon;
    char *d, *s, *i;       /* i defaults to "@" d (RFC 6376 3.5) */
    char *b64;             /* b= without FWS (for header.b) */
    unsigned char *b, *bh; /* decoded */
    size_t b_len, bh_len;
    char **h; /* h= names, lower case */
    size_t nh;
    int has_l;
    uint64_t l;
    int has_t, has_x;
    int64_t t, x;
};

/*
 * Parses the value of a DKIM-Signature header field (after the colon).
 * Checks: v=1; a, b, bh, d, h, s present; i within d (RFC 6376 3.5 i=);
 * h includes From (RFC 6376 5.4); q contains dns/txt; t and x numbers with
 * x > t; c one of the four pairs; the limits above. Returns 0 and *out,
 * or PST_ERR_SYNTAX / PST_ERR_TOOBIG / PST_ERR_UNSUPPORTED (unknown a= or
 * c= or q=) with *why, or PST_ERR_NOMEM.
 */
int pst_dkim_sig_parse(const char *value, size_t len, struct pst_dkim_sig **out, const char **why);
void pst_dkim_sig_free(struct pst_dkim_sig *sig);

/* "rsa-sha256", "ed25519-sha256", "rsa-sha1". */
const char *pst_dkim_alg_name(enum pst_dkim_alg alg);

/* ---- key records (RFC 6376 3.6.1) ---------------------------------------- */

enum pst_dkim_keytype {
    PST_DKIM_KEY_RSA = 0,
    PST_DKIM_KEY_ED25519 = 1,
};

#define PST_DKIM_HASH_SHA1   0x1
#define PST_DKIM_HASH_SHA256 0x2
#define PST_DKIM_SVC_EMAIL   0x1
#define PST_DKIM_SVC_TLSRPT  0x2 /* RFC 8460 3 */
#define PST_DKIM_SVC_ANY     0x3 /* s=* */

/* A parsed key record; owns the public key (pst_dkim_key_free). */
struct pst_dkim_key {
    enum pst_dkim_keytype type;
    int revoked;       /* empty p= (RFC 6376 3.6.1) */
    unsigned hashes;   /* PST_DKIM_HASH_*: h=, all when absent */
    unsigned services; /* PST_DKIM_SVC_*: s=, "*" when absent */
    int testing;       /* t=y */
    int strict;        /* t=s: i= must not be a subdomain of d= */
    unsigned bits;     /* RSA modulus size; 256 for Ed25519 */
    void *pkey;        /* EVP_PKEY *, NULL when revoked */
};

/*
 * Parses a key record (TXT rdata, strings joined). p= may hold an RSA
 * SubjectPublicKeyInfo or a bare RSAPublicKey (both are published), or the
 * 32 raw octets of an Ed25519 key (RFC 8463 4.2). v= must be DKIM1 and
 * first when present; unknown tags and unknown h=/s=/t= values are ignored
 * (RFC 6376 3.6.1), an unknown k= is PST_ERR_UNSUPPORTED. No minimum key
 * size here (the verifier applies RFC 8301). Returns 0 and *out, or
 * PST_ERR_SYNTAX / PST_ERR_TOOBIG / PST_ERR_UNSUPPORTED with *why, or
 * PST_ERR_NOMEM.
 */
int pst_dkim_key_parse(const char *rec, size_t len, struct pst_dkim_key **out, const char **why);
void pst_dkim_key_free(struct pst_dkim_key *key);

/*
 * Makes a key pair: appends the private key (PKCS#8 PEM) to pem, which
 * should be a pst_buf_new_secret() buffer, and the key record text
 * ("v=DKIM1; k=rsa; p=...") to record. bits is for RSA only (1024..4096).
 * PST_ERR_INVAL, PST_ERR_CRYPTO, PST_ERR_TOOBIG, PST_ERR_NOMEM; nothing is
 * appended on failure.
 */
int pst_dkim_keygen(enum pst_dkim_keytype type, unsigned bits, struct pst_buf *pem,
                    struct pst_buf *record);

/* ---- canonicalization (RFC 6376 3.4) ------------------------------------- */

/*
 * Appends the canonical form of one header field raw[0..len) (name, colon,
 * value, folding; without the final CRLF) followed by CRLF when crlf is
 * set. Simple: unchanged (3.4.1); relaxed: name lower-cased, unfolded, WSP
 * runs to one SP, WSP at the value's end and around the colon removed
 * (3.4.2). PST_ERR_TOOBIG, PST_ERR_NOMEM.
 */
int pst_dkim_canon_header(enum pst_dkim_canon c, const char *raw, size_t len, int crlf,
                          struct pst_buf *out);

/* Where canonical body bytes go. */
typedef void pst_dkim_sink_fn(void *arg, const char *p, size_t n);

/*
 * Streaming body canonicalization (RFC 6376 3.4.3, 3.4.4): feed the body
 * in pieces of any size; output is passed to the sink as it becomes
 * final, so nothing is held but a count of pending empty lines and one
 * pending WSP/CR. Lines end in CRLF; a lone CR or LF is an ordinary octet.
 */
struct pst_dkim_bodycanon {
    enum pst_dkim_canon canon;
    pst_dkim_sink_fn *sink;
    void *arg;
    uint64_t crlfs; /* empty lines held back (3.4.3: dropped at the end) */
    int cr;         /* a CR held back: the start of CRLF? */
    int wsp;        /* relaxed: a WSP run held back */
    int any;        /* a line with content was seen */
    int open;       /* content since the last CRLF */
};

void pst_dkim_bodycanon_init(struct pst_dkim_bodycanon *bc, enum pst_dkim_canon c,
                             pst_dkim_sink_fn *sink, void *arg);
void pst_dkim_bodycanon_update(struct pst_dkim_bodycanon *bc, const char *p, size_t n);
void pst_dkim_bodycanon_final(struct pst_dkim_bodycanon *bc);

/* ---- signing (RFC 6376 5, RFC 8463) -------------------------------------- */

/* The default header list (NULL-terminated) and the names oversigned. */
extern const char *const pst_dkim_default_headers[];
extern const char *const pst_dkim_oversign_headers[];

struct pst_dkim_signer_opts {
    const char *domain;                 /* d= (required) */
    const char *identity;               /* i= or NULL */
    enum pst_dkim_canon hcanon, bcanon; /* zeroed: simple/simple; use relaxed */
    const char *const *headers;         /* NULL-terminated, NULL: the default list */
    int no_oversign;                    /* 1: no extra entries for oversigned names */
    int64_t expire;                     /* > 0: x = t + expire */
};

struct pst_dkim_signer;

/*
 * A signing context: made once (e.g. at daemon start) from the domain and
 * key files, then used for any number of messages, from several threads
 * at once (it is read-only while signing). Copies what it needs from
 * opts. PST_ERR_INVAL (no domain, bad name), PST_ERR_NOMEM.
 */
int pst_dkim_signer_new(const struct pst_dkim_signer_opts *opts, struct pst_dkim_signer **out);
/*
 * Adds a private key (PEM, PKCS#8 or traditional; RSA of at least 1024
 * bits or Ed25519) with its selector; each key makes one signature, so an
 * RSA and an Ed25519 key sign each message twice (RFC 8463 3). The PEM is
 * borrowed; the parsed key lives in the signer. PST_ERR_CRYPTO (not a key),
 * PST_ERR_UNSUPPORTED (other key types, RSA < 1024 bits), PST_ERR_TOOBIG
 * (more than PST_DKIM_MAX_KEYS), PST_ERR_INVAL (selector).
 */
int pst_dkim_signer_add_key(struct pst_dkim_signer *s, const char *selector, const char *pem,
                            size_t pem_len);
void pst_dkim_signer_free(struct pst_dkim_signer *s);

struct pst_dkim_signing;

/*
 * Starts signing one message whose header section is hdr[0..len) (CRLF
 * lines; the body may follow, it is ignored here). The header is copied.
 * now is the signing time (t=). PST_ERR_NOTFOUND: the message has no From
 * (RFC 6376 5.4); PST_ERR_SYNTAX: more than one From (RFC 5322 3.6);
 * PST_ERR_STATE: the signer has no key;
 * split errors of pst_msg_split.
 */
int pst_dkim_sign_start(const struct pst_dkim_signer *s, const char *hdr, size_t len, int64_t now,
                        struct pst_dkim_signing **out);
/* Feeds body bytes (any pieces). */
void pst_dkim_sign_body(struct pst_dkim_signing *g, const char *p, size_t n);
/*
 * Appends to out one DKIM-Signature header field per key, each ending in
 * CRLF, to be put above the message. PST_ERR_CRYPTO, PST_ERR_TOOBIG,
 * PST_ERR_NOMEM. The job can be freed after it either way.
 */
int pst_dkim_sign_finish(struct pst_dkim_signing *g, struct pst_buf *out);
void pst_dkim_signing_free(struct pst_dkim_signing *g);

/* ---- verifying (RFC 6376 6) ---------------------------------------------- */

/* RFC 8601 2.7.1 result words. */
enum pst_dkim_result {
    PST_DKIM_NONE = 0,
    PST_DKIM_PASS,
    PST_DKIM_FAIL,
    PST_DKIM_NEUTRAL,
    PST_DKIM_POLICY,
    PST_DKIM_TEMPERROR,
    PST_DKIM_PERMERROR,
};

/* "pass", "fail"... */
const char *pst_dkim_result_name(enum pst_dkim_result r);

/*
 * A verified signature: what Authentication-Results needs (RFC 8601 2.7.1,
 * RFC 6008 for header.b). Strings are owned by the verifier and never NULL
 * ("" when the signature did not parse that far).
 */
struct pst_dkim_verdict {
    enum pst_dkim_result result;
    const char *reason; /* "" for pass, else why ("body hash mismatch") */
    const char *d, *s, *i, *a;
    char b8[9];  /* first 8 characters of b= */
    int testing; /* the key has t=y */
    unsigned key_bits;
};

struct pst_dkim_keycache;

/*
 * A cache of parsed key records keyed by selector._domainkey.domain, each
 * kept for its DNS TTL (capped at max_ttl seconds when max_ttl > 0). For
 * one thread at a time. entries 0: 64.
 */
int pst_dkim_keycache_new(size_t entries, uint32_t max_ttl, struct pst_dkim_keycache **out);
void pst_dkim_keycache_free(struct pst_dkim_keycache *c);

struct pst_dkim_verify_opts {
    struct pst_resolver *resolver;   /* borrowed, required */
    struct pst_dns_budget *budget;   /* borrowed, NULL: none */
    struct pst_dkim_keycache *cache; /* borrowed, NULL: none */
    int64_t now;                     /* seconds since the epoch */
    size_t max_sigs;                 /* 0: PST_DKIM_MAX_SIGS */
    unsigned services;               /* PST_DKIM_SVC_*; 0: email */
};

struct pst_dkim_verify;

/*
 * Verifies a message: pst_dkim_verify_start with the header section
 * (copied), pst_dkim_verify_body with the body in pieces, then
 * pst_dkim_verify_finish, which asks DNS. The verifier keeps no body.
 * start fails only for a header section that does not split (the split's
 * error with *why) or PST_ERR_NOMEM / PST_ERR_INVAL; malformed signatures
 * become permerror verdicts.
 */
int pst_dkim_verify_start(const struct pst_dkim_verify_opts *opts, const char *hdr, size_t len,
                          struct pst_dkim_verify **out, const char **why);
void pst_dkim_verify_body(struct pst_dkim_verify *v, const char *p, size_t n);
/* 0, or PST_ERR_NOMEM. Then read the verdicts. */
int pst_dkim_verify_finish(struct pst_dkim_verify *v);
/* The verdicts in header order (borrowed from v); *skipped signatures past
 * the cap were not looked at. */
const struct pst_dkim_verdict *pst_dkim_verify_verdicts(const struct pst_dkim_verify *v, size_t *n,
                                                        size_t *skipped);
void pst_dkim_verify_free(struct pst_dkim_verify *v);

#endif
