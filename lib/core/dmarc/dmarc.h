/*
 * dmarc.h - DMARC (RFC 9989): policy records, policy discovery and the
 * Organizational Domain by the DNS Tree Walk, the Author Domain from the
 * From header field, Identifier Alignment and the evaluation of a message.
 *
 * No I/O: DNS only through the struct pst_resolver the caller gives, the
 * Public Suffix List (RFC 7489 behaviour) only through the function
 * pointers of struct pst_dmarc_psl (lib/io/psl.h provides them).
 *
 * Records (dmarc_record.c), RFC 9989 4.7 and 4.8:
 *   - "v=DMARC1" must be the first tag (case-sensitive value), else the
 *     record is not a DMARC record (PST_ERR_SYNTAX with the reason).
 *   - Tag names and the values of p, sp, np, t, psd, adkim, aspf, fo are
 *     compared ASCII case-insensitively (RFC 5234 2.3: quoted ABNF strings
 *     are case-insensitive); unknown tags are ignored.
 *   - A tag whose value does not follow its rule is discarded in favour of
 *     the default (4.8) and named in the record's issues; so is a repeated
 *     tag (the first one counts).
 *   - p missing or invalid, or sp/np invalid (4.10.1): the record acts as
 *     p=none when rua holds a syntactically valid URI, else it applies no
 *     DMARC processing (PST_DMARC_REC_NO_POLICY).
 *   - RFC 7489's pct, rf and ri (RFC 9989 Appendix C.5.2: removed) are
 *     parsed and shown. pct=0 with no t tag is read as t=y: Appendix A.6
 *     makes t=y the analogue of pct=0, and RFC 7489 6.6.4 applied the next
 *     lower policy to messages not sampled, which is t=y's rule. Other pct
 *     values are ignored (the full policy applies, as t=n / pct=100).
 *   - obs-dmarc-report-size ("!10m" after a URI) is accepted and dropped.
 * Limits: PST_DMARC_MAX_RECORD bytes, PST_DMARC_MAX_TAGS tags (past
 * either the record is refused, PST_ERR_TOOBIG), PST_DMARC_MAX_URIS URIs
 * per list of at most PST_DMARC_MAX_URI bytes each (the rest are dropped
 * with an issue), PST_DMARC_MAX_ISSUES issues kept.
 *
 * Tree walk (dmarc_walk.c), RFC 9989 4.10, 4.10.1, 4.10.2: at most
 * PST_DMARC_WALK_MAX (8) queries per walk; from a name of 8 or more labels
 * the second query skips to 7 labels. Records not starting with v=DMARC1
 * are discarded; two or more DMARC records at one name are all discarded.
 * The walk stops at a record with psd=y or psd=n. DNS RETRY ends the walk
 * as temperror, DNS FAIL (malformed answer) as permerror (RFC 9989 5.3.6
 * leaves the handling to the receiver; the daemon decides).
 * PSL mode (RFC 7489 6.6.3, a configured alternative): the record at the
 * Author Domain, else at its registrable domain from the PSL; the
 * Organizational Domain is the registrable domain.
 *
 * Author Domain (dmarc_from.c), RFC 9989 5.3.1 and 11.5, RFC 5322 3.4:
 * exactly one From field holding exactly one mailbox (name-addr or
 * addr-spec, also inside a group), else a defined result (multiple From
 * fields: the class of OpenDMARC's multiple-From CVE). Comments (nested to
 * PST_DMARC_MAX_COMMENT_DEPTH) and quoted strings are understood; obs-route
 * in an angle-addr is skipped (RFC 5322 4.4). Domain literals and non-ASCII
 * domains (U-labels, which would need IDNA conversion, RFC 9989 5.3.1) are
 * refused: no DMARC evaluation.
 */
#ifndef PST_DMARC_H
#define PST_DMARC_H

#include <stddef.h>

struct pst_resolver;
struct pst_dns_budget;
struct pst_msg_header;
struct pst_dkim_verdict;

#define PST_DMARC_MAX_RECORD        4096
#define PST_DMARC_MAX_TAGS          32
#define PST_DMARC_MAX_URIS          8
#define PST_DMARC_MAX_URI           512
#define PST_DMARC_MAX_ISSUES        16
#define PST_DMARC_WALK_MAX          8
#define PST_DMARC_DOMAIN_MAX        254 /* 253 octets of text and the NUL */
#define PST_DMARC_MAX_COMMENT_DEPTH 32

/* ---- records ------------------------------------------------------------ */

enum pst_dmarc_policy {
    PST_DMARC_POLICY_ABSENT = 0, /* tag not present (or invalid: see issues) */
    PST_DMARC_POLICY_NONE,
    PST_DMARC_POLICY_QUARANTINE,
    PST_DMARC_POLICY_REJECT,
};

/* What the record means for policy (RFC 9989 4.10.1). */
enum pst_dmarc_rec_state {
    PST_DMARC_REC_OK = 0,    /* p valid, sp/np absent or valid */
    PST_DMARC_REC_AS_NONE,   /* p missing/invalid or sp/np invalid, rua valid: p=none */
    PST_DMARC_REC_NO_POLICY, /* the same without a valid rua: no DMARC processing */
};

/* fo flags (RFC 9989 4.7) */
#define PST_DMARC_FO_0 0x1
#define PST_DMARC_FO_1 0x2
#define PST_DMARC_FO_D 0x4
#define PST_DMARC_FO_S 0x8

struct pst_dmarc_issue {
    char tag[16];    /* the tag name as written (cut to 15), or "" */
    const char *why; /* static text */
    int warning;     /* a note (RFC 7489 tag), not an error of the record */
};

/* A parsed record: everything is owned by it (pst_dmarc_record_free). */
struct pst_dmarc_record {
    enum pst_dmarc_policy p, sp, np;
    enum pst_dmarc_rec_state state;
    char psd;         /* 'u' (default), 'y', 'n' */
    int testing;      /* t=y, or pct=0 without t (see above) */
    int t_set;        /* the t tag was present and valid */
    char adkim, aspf; /* 'r' (default) or 's' */
    unsigned fo;      /* PST_DMARC_FO_*; PST_DMARC_FO_0 by default */
    char *rua[PST_DMARC_MAX_URIS], *ruf[PST_DMARC_MAX_URIS];
    size_t nrua, nruf; /* syntactically valid URIs kept */
    int pct;           /* RFC 7489: 0..100, -1 when absent */
    char rf[32];       /* RFC 7489: "" when absent */
    long ri;           /* RFC 7489: seconds, -1 when absent */
    struct pst_dmarc_issue issues[PST_DMARC_MAX_ISSUES];
    size_t nissues;
    int more_issues; /* issues past PST_DMARC_MAX_ISSUES were dropped */
};

/*
 * Parses a DMARC policy record txt[0..len) (the TXT strings joined, RFC
 * 9989 4.5). Returns 0 with *out (free with pst_dmarc_record_free), or
 * PST_ERR_SYNTAX (not a DMARC record: v missing, not first, not "DMARC1";
 * a NUL or control character; a tag without '='), PST_ERR_TOOBIG (over
 * PST_DMARC_MAX_RECORD bytes or PST_DMARC_MAX_TAGS tags), PST_ERR_NOMEM,
 * with *why (static text) on every failure when why is not NULL.
 */
int pst_dmarc_record_parse(const char *txt, size_t len, struct pst_dmarc_record **out,
                           const char **why);
void pst_dmarc_record_free(struct pst_dmarc_record *r);
/* "none", "quarantine", "reject", or "-" for ABSENT. */
const char *pst_dmarc_policy_name(enum pst_dmarc_policy p);
/* 1 when txt starts like a DMARC record ("v" *WSP "=" *WSP "DMARC1" then
 * end, WSP or ';'): the filter of RFC 9989 4.10 steps 2 and 6. */
int pst_dmarc_record_is_dmarc(const char *txt, size_t len);

/* ---- discovery ---------------------------------------------------------- */

enum pst_dmarc_orgmode {
    PST_DMARC_TREEWALK = 0, /* RFC 9989 4.10 (default) */
    PST_DMARC_PSL,          /* RFC 7489 3.2 and 6.6.3: the Public Suffix List */
};

/*
 * The Public Suffix List, given by lib/io/psl.h. registrable writes the
 * registrable domain of domain (lower case, no trailing dot) into out and
 * returns 0, or a negative PST_ERR_* (PST_ERR_NOTFOUND: domain is itself a
 * public suffix).
 */
struct pst_dmarc_psl {
    int (*registrable)(void *arg, const char *domain, char *out, size_t outlen);
    void *arg;
};

struct pst_dmarc_opts {
    struct pst_resolver *resolver;   /* borrowed, required */
    struct pst_dns_budget *budget;   /* borrowed, NULL: none */
    enum pst_dmarc_orgmode mode;     /* 0: tree walk */
    const struct pst_dmarc_psl *psl; /* borrowed, required for PST_DMARC_PSL */
};

/* What one query of a walk gave. */
enum pst_dmarc_step {
    PST_DMARC_STEP_NONE = 0, /* no DMARC record (NXDOMAIN, NODATA, other TXT) */
    PST_DMARC_STEP_RECORD,   /* exactly one DMARC record */
    PST_DMARC_STEP_MULTIPLE, /* several: all discarded (RFC 9989 4.10 step 2) */
    PST_DMARC_STEP_INVALID,  /* one v=DMARC1 record that did not parse */
    PST_DMARC_STEP_TEMPERROR,
    PST_DMARC_STEP_PERMERROR,
};

struct pst_dmarc_walk_query {
    char domain[PST_DMARC_DOMAIN_MAX]; /* asked at _dmarc.<domain> */
    enum pst_dmarc_step step;
    struct pst_dmarc_record *rec; /* STEP_RECORD: owned by the walk */
    char *text;                   /* STEP_RECORD / INVALID: the record text */
    const char *why;              /* INVALID: the parser's reason; errors: DNS text */
};

/* A finished walk; owned by the caller (pst_dmarc_walk_free). */
struct pst_dmarc_walk {
    char start[PST_DMARC_DOMAIN_MAX];
    struct pst_dmarc_walk_query q[PST_DMARC_WALK_MAX];
    size_t nq;
    int error;                      /* 0, or the STEP_TEMPERROR/PERMERROR that ended it */
    char org[PST_DMARC_DOMAIN_MAX]; /* Organizational Domain (4.10.2) */
    int policy;                     /* index in q of the policy record (4.10.1), -1 */
    char dns_reason[400];           /* the DNS error's text when error */
};

/*
 * Walks the DNS tree from domain (RFC 9989 4.10; with PST_DMARC_PSL the
 * RFC 7489 lookups instead) and selects the Organizational Domain and the
 * policy record. Returns 0 with *out whatever DNS said (look at error), or
 * PST_ERR_SYNTAX (domain is not a domain name), PST_ERR_INVAL,
 * PST_ERR_NOMEM. A budget that runs out ends the walk as permerror.
 */
int pst_dmarc_walk(const struct pst_dmarc_opts *o, const char *domain, struct pst_dmarc_walk **out);
void pst_dmarc_walk_free(struct pst_dmarc_walk *w);

/*
 * Canonical form of a domain for DMARC: ASCII letters, digits, '-' and
 * '_', labels of 1..63 octets, at most 253 octets, lower case, no trailing
 * dot. 0, PST_ERR_SYNTAX, PST_ERR_TOOBIG (outlen too small).
 */
int pst_dmarc_domain_norm(const char *in, size_t len, char *out, size_t outlen);

/* ---- Author Domain ------------------------------------------------------ */

enum pst_dmarc_from {
    PST_DMARC_FROM_OK = 0,
    PST_DMARC_FROM_ABSENT, /* no From field */
    PST_DMARC_FROM_MULTIPLE_FIELDS,
    PST_DMARC_FROM_NO_ADDRESS, /* empty, or an empty group */
    PST_DMARC_FROM_MULTIPLE_ADDRESSES,
    PST_DMARC_FROM_SYNTAX,     /* not an RFC 5322 address list */
    PST_DMARC_FROM_BAD_DOMAIN, /* domain literal, non-ASCII, not a DNS name */
};

/* "ok", "no From field", "multiple From fields"... */
const char *pst_dmarc_from_name(enum pst_dmarc_from f);

/*
 * The domain of the one mailbox in a From field value v[0..len) (folding
 * included), normalised (pst_dmarc_domain_norm) into out. Returns 0 with
 * out set, or PST_ERR_SYNTAX / PST_ERR_NOTFOUND / PST_ERR_TOOBIG with *res
 * saying why (*res is always written).
 */
int pst_dmarc_from_domain(const char *v, size_t len, char *out, size_t outlen,
                          enum pst_dmarc_from *res);
/* The same over a split header section: exactly one From field. */
int pst_dmarc_author_domain(const struct pst_msg_header *h, char *out, size_t outlen,
                            enum pst_dmarc_from *res);

/* ---- alignment and evaluation ------------------------------------------- */

enum pst_dmarc_result {
    PST_DMARC_RESULT_NONE = 0, /* no policy record, or DMARC not applicable */
    PST_DMARC_RESULT_PASS,
    PST_DMARC_RESULT_FAIL,
    PST_DMARC_RESULT_TEMPERROR,
    PST_DMARC_RESULT_PERMERROR,
};
const char *pst_dmarc_result_name(enum pst_dmarc_result r); /* RFC 8601 words */

/* The SPF result for the MAIL FROM identity (RFC 9989 4.4.2): the RFC 7208
 * result word and the domain it was checked for (postmaster@HELO's
 * domain for the null sender, RFC 7208 2.4). NULL fields: no SPF. */
struct pst_dmarc_spf {
    const char *result;
    const char *domain;
};

struct pst_dmarc_eval {
    enum pst_dmarc_result result;
    char author[PST_DMARC_DOMAIN_MAX];        /* header.from; "" when none */
    enum pst_dmarc_from from;                 /* how the Author Domain went */
    char policy_domain[PST_DMARC_DOMAIN_MAX]; /* where the record is; "" */
    char org[PST_DMARC_DOMAIN_MAX];           /* the Author Domain's Org. Domain */
    const char *policy_tag;                   /* "p", "sp", "np" or NULL */
    enum pst_dmarc_policy policy;             /* published policy that applies */
    int testing;                              /* t=y (or pct=0) */
    enum pst_dmarc_policy disposition;        /* to apply: NONE on pass, one
                                                 level lower under t=y */
    int author_exists;                        /* -1 not asked, 0 NXDOMAIN, 1 */
    int spf_aligned, dkim_aligned;
    char dkim_aligned_domain[PST_DMARC_DOMAIN_MAX];
    struct pst_dmarc_record *record; /* copy of the policy record or NULL */
    char reason[512];                /* why, for logs and A-R comments */
};

/*
 * Identifier Alignment of id with the Author Domain author (both
 * normalised; org_author its Organizational Domain), RFC 9989 4.4 and
 * 4.10.2: mode 's' equal; 'r' the same Organizational Domain (a tree walk
 * from id, or the PSL in PSL mode). Returns 1 aligned, 0 not, or
 * PST_ERR_AGAIN (the walk hit a DNS error), PST_ERR_NOMEM, PST_ERR_INVAL.
 */
int pst_dmarc_aligned(const struct pst_dmarc_opts *o, const char *author, const char *org_author,
                      const char *id, char mode);

/*
 * Evaluates a message (RFC 9989 5.3): the Author Domain from h (or author
 * when h is NULL), policy discovery, SPF and DKIM alignment, the result,
 * the policy that applies (p, sp or np) and the disposition. dkim is the
 * verifier's verdicts (may be NULL with ndkim 0). Returns 0 with *out
 * (free with pst_dmarc_eval_free) whatever the result, or PST_ERR_INVAL,
 * PST_ERR_NOMEM.
 */
int pst_dmarc_evaluate(const struct pst_dmarc_opts *o, const struct pst_msg_header *h,
                       const char *author, const struct pst_dmarc_spf *spf,
                       const struct pst_dkim_verdict *dkim, size_t ndkim,
                       struct pst_dmarc_eval **out);
void pst_dmarc_eval_free(struct pst_dmarc_eval *e);

#endif
