/*
 * smtpc.c - the SMTP client state machine: one mail transaction over one
 * connection, without I/O (RFC 5321 3.1-3.3, 4.1.1; RFC 3207, 2920, 1870,
 * 6152, 6531, 3461, 4954). The policy choices are listed in smtpc.h.
 *
 * The engine keeps a count of replies due (commands written or about to
 * be) and the order they were sent in: with PIPELINING, MAIL, every RCPT
 * and DATA go out in one write and the replies are matched in order (RFC
 * 2920 3.1); without it, one command at a time.
 */
#include "smtpc.h"
#include "err.h"

#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Commands of one pipelined group: a RCPT line is at most 512 + 2 * 500
 * octets of address and parameters plus its keywords. */
#define OUT_MAX(n) (16384 + (size_t)(n)*1600)

enum state {
    S_GREETING,
    S_EHLO,
    S_HELO,
    S_STARTTLS,
    S_TLS, /* waiting for the driver's handshake */
    S_AUTH_PLAIN,
    S_AUTH_LOGIN,  /* waiting for 334 (user) */
    S_AUTH_USER,   /* user sent, waiting for 334 (password) */
    S_AUTH_PASS,   /* password sent, waiting for 235 */
    S_TRANS,       /* MAIL / RCPT / DATA replies */
    S_BODY,        /* the driver sends the message */
    S_DOT,         /* waiting for the reply to the end of data */
    S_DOT_DISCARD, /* an empty message after a 354 we did not want */
    S_QUIT,
    S_DONE,
};

struct rcpt_res {
    int accepted;
    int has; /* a result of its own */
    enum pst_smtpc_status status;
    int code;
    char enh[PST_SMTPC_ENH_MAX];
    char *text;
    enum pst_smtpc_stage stage;
};

struct pst_smtpc {
    struct pst_smtpc_config cfg;
    int needs_utf8;
    enum state st;
    struct pst_smtpc_rparser *rp;
    struct pst_buf *out; /* secret: AUTH */
    struct pst_smtpc_ext ext;
    struct pst_smtpc_info info;
    int pipelining; /* this transaction is pipelined */
    size_t due;     /* replies due */
    size_t pos;     /* transaction: next reply is for 0 MAIL, 1..n RCPT, n+1 DATA */
    int mail_ok;
    size_t naccepted;
    /* the session outcome */
    int has;
    enum pst_smtpc_status status;
    int code;
    char enh[PST_SMTPC_ENH_MAX];
    char *text;
    enum pst_smtpc_stage stage;
    int from_server;
    struct rcpt_res *rr;
};

const char *pst_smtpc_stage_name(enum pst_smtpc_stage s)
{
    switch (s) {
    case PST_SMTPC_STAGE_CONNECT:
        return "connection";
    case PST_SMTPC_STAGE_GREETING:
        return "in the greeting";
    case PST_SMTPC_STAGE_EHLO:
        return "after EHLO";
    case PST_SMTPC_STAGE_HELO:
        return "after HELO";
    case PST_SMTPC_STAGE_STARTTLS:
        return "after STARTTLS";
    case PST_SMTPC_STAGE_TLS:
        return "in the TLS handshake";
    case PST_SMTPC_STAGE_AUTH:
        return "after AUTH";
    case PST_SMTPC_STAGE_BEFORE_MAIL:
        return "before MAIL FROM";
    case PST_SMTPC_STAGE_MAIL:
        return "after MAIL FROM";
    case PST_SMTPC_STAGE_RCPT:
        return "after RCPT TO";
    case PST_SMTPC_STAGE_DATA:
        return "after DATA";
    case PST_SMTPC_STAGE_DATA_BLOCK:
        return "while sending data";
    case PST_SMTPC_STAGE_DOT:
        return "after end of data";
    case PST_SMTPC_STAGE_QUIT:
        return "after QUIT";
    }
    return "unknown";
}

/* ---- configuration ----------------------------------------------------- */

/* An address: no control octets, no SP outside quotes is not checked
 * (quoted local parts may hold SP), but '<', '>' and controls never. */
static int addr_ok(const char *s, int allow_empty, int *utf8)
{
    if (s == NULL || (!allow_empty && s[0] == '\0'))
        return 0;
    size_t n = strlen(s);
    if (n > 512)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
            return 0;
        if (c >= 0x80)
            *utf8 = 1;
    }
    return 1;
}

/* An ESMTP parameter value (RFC 5321 4.1.2 esmtp-value, xtext of RFC
 * 3461 4): printable ASCII without SP and '='. */
static int param_ok(const char *s)
{
    if (s == NULL)
        return 1;
    if (s[0] == '\0' || strlen(s) > 500)
        return 0;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '=')
            return 0;
    return 1;
}

static int name_ok(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 255)
        return 0;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static int cred_ok(const char *s)
{
    return s != NULL && strlen(s) <= 1024;
}

int pst_smtpc_new(const struct pst_smtpc_config *cfg, struct pst_smtpc **out)
{
    int utf8 = 0;
    if (cfg == NULL || out == NULL || !name_ok(cfg->ehlo_name) || !addr_ok(cfg->sender, 1, &utf8) ||
        cfg->rcpts == NULL || cfg->nrcpts == 0 || cfg->nrcpts > PST_SMTPC_MAX_RCPTS ||
        !param_ok(cfg->dsn_ret) || !param_ok(cfg->dsn_envid) ||
        (cfg->auth_user == NULL) != (cfg->auth_pass == NULL) || cfg->tls < PST_SMTPC_TLS_NONE ||
        cfg->tls > PST_SMTPC_TLS_REQUIRED)
        return PST_ERR_INVAL;
    if (cfg->auth_user != NULL && (!cred_ok(cfg->auth_user) || !cred_ok(cfg->auth_pass)))
        return PST_ERR_INVAL;
    for (size_t i = 0; i < cfg->nrcpts; i++)
        if (!addr_ok(cfg->rcpts[i].addr, 0, &utf8) || !param_ok(cfg->rcpts[i].notify) ||
            !param_ok(cfg->rcpts[i].orcpt))
            return PST_ERR_INVAL;
    struct pst_smtpc *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return PST_ERR_NOMEM;
    e->cfg = *cfg;
    e->needs_utf8 = cfg->smtputf8 || utf8;
    e->rp = pst_smtpc_rparser_new();
    e->out = pst_buf_new_secret(OUT_MAX(cfg->nrcpts));
    e->rr = calloc(cfg->nrcpts, sizeof(*e->rr));
    if (e->rp == NULL || e->out == NULL || e->rr == NULL) {
        pst_smtpc_free(e);
        return PST_ERR_NOMEM;
    }
    e->st = S_GREETING;
    e->due = 1;
    e->info.tls = cfg->tls_active;
    *out = e;
    return 0;
}

void pst_smtpc_free(struct pst_smtpc *e)
{
    if (e == NULL)
        return;
    pst_smtpc_rparser_free(e->rp);
    pst_buf_free(e->out);
    if (e->rr != NULL)
        for (size_t i = 0; i < e->cfg.nrcpts; i++)
            free(e->rr[i].text);
    free(e->rr);
    free(e->text);
    free(e);
}

/* ---- results ----------------------------------------------------------- */

static char *reply_text(const struct pst_smtpc_reply *r)
{
    char *t = malloc(PST_SMTPC_TEXT_MAX);
    if (t != NULL)
        pst_smtpc_reply_oneline(r, t, PST_SMTPC_TEXT_MAX);
    return t;
}

static enum pst_smtpc_status code_status(int code)
{
    /* a 3yz reply is never a final success */
    return code >= 500 ? PST_SMTPC_PERM : code >= 300 ? PST_SMTPC_TEMP : PST_SMTPC_OK;
}

/* Sets the session outcome from a reply (first one wins). */
static void set_reply(struct pst_smtpc *e, const struct pst_smtpc_reply *r,
                      enum pst_smtpc_stage stage)
{
    if (e->has)
        return;
    e->has = 1;
    e->status = code_status(r->code);
    e->code = r->code;
    memcpy(e->enh, r->enh, sizeof(e->enh));
    e->text = reply_text(r);
    e->stage = stage;
    e->from_server = 1;
}

/* Sets a local outcome (first one wins). */
static void set_local(struct pst_smtpc *e, enum pst_smtpc_status status, int code, const char *enh,
                      enum pst_smtpc_stage stage, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void set_local(struct pst_smtpc *e, enum pst_smtpc_status status, int code, const char *enh,
                      enum pst_smtpc_stage stage, const char *fmt, ...)
{
    if (e->has)
        return;
    e->has = 1;
    e->status = status;
    e->code = code;
    snprintf(e->enh, sizeof(e->enh), "%s", enh);
    e->stage = stage;
    e->from_server = 0;
    e->text = malloc(PST_SMTPC_TEXT_MAX);
    if (e->text != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->text, PST_SMTPC_TEXT_MAX, fmt, ap);
        va_end(ap);
    }
}

static void rcpt_set(struct pst_smtpc *e, size_t i, const struct pst_smtpc_reply *r,
                     enum pst_smtpc_stage stage)
{
    struct rcpt_res *x = &e->rr[i];
    free(x->text);
    x->has = 1;
    x->status = code_status(r->code);
    x->code = r->code;
    memcpy(x->enh, r->enh, sizeof(x->enh));
    x->text = reply_text(r);
    x->stage = stage;
}

void pst_smtpc_session(const struct pst_smtpc *e, struct pst_smtpc_outcome *out)
{
    memset(out, 0, sizeof(*out));
    if (!e->has) {
        /* no result yet: the session is still running or ended silently */
        out->status = PST_SMTPC_TEMP;
        snprintf(out->enh, sizeof(out->enh), "4.4.2");
        out->text = "session ended without a result";
        out->stage = pst_smtpc_wait_stage(e);
        return;
    }
    out->status = e->status;
    out->code = e->code;
    memcpy(out->enh, e->enh, sizeof(out->enh));
    out->text = e->text != NULL ? e->text : "";
    out->stage = e->stage;
    out->from_server = e->from_server;
}

void pst_smtpc_rcpt_outcome(const struct pst_smtpc *e, size_t i, struct pst_smtpc_outcome *out)
{
    if (i >= e->cfg.nrcpts || !e->rr[i].has) {
        pst_smtpc_session(e, out);
        if (out->status == PST_SMTPC_OK) /* cannot happen: kept for safety */
            out->status = PST_SMTPC_TEMP;
        return;
    }
    const struct rcpt_res *x = &e->rr[i];
    memset(out, 0, sizeof(*out));
    out->status = x->status;
    out->code = x->code;
    memcpy(out->enh, x->enh, sizeof(out->enh));
    out->text = x->text != NULL ? x->text : "";
    out->stage = x->stage;
    out->from_server = 1;
}

const struct pst_smtpc_ext *pst_smtpc_extensions(const struct pst_smtpc *e)
{
    return &e->ext;
}

void pst_smtpc_info(const struct pst_smtpc *e, struct pst_smtpc_info *out)
{
    *out = e->info;
}

/* ---- output ------------------------------------------------------------ */

int pst_smtpc_output(struct pst_smtpc *e, struct pst_buf *out)
{
    int rc = pst_buf_add(out, pst_buf_data(e->out), pst_buf_len(e->out));
    if (rc == 0)
        pst_buf_reset(e->out);
    return rc;
}

size_t pst_smtpc_output_len(const struct pst_smtpc *e)
{
    return pst_buf_len(e->out);
}

/* Appends a command line; on failure (cannot happen with OUT_MAX unless
 * out of memory) the session ends. */
static int cmd(struct pst_smtpc *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cmd(struct pst_smtpc *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pst_buf_vaddf(e->out, fmt, ap);
    va_end(ap);
    if (rc == 0)
        rc = pst_buf_add(e->out, "\r\n", 2);
    if (rc != 0) {
        set_local(e, PST_SMTPC_TEMP, 0, "4.3.0", pst_smtpc_wait_stage(e),
                  "cannot build command: %s", pst_strerror(rc));
        e->st = S_DONE;
        return rc;
    }
    e->due++;
    return 0;
}

static void quit(struct pst_smtpc *e)
{
    pst_buf_reset(e->out);
    e->due = 0;
    e->st = S_QUIT;
    cmd(e, "QUIT");
}

static void done(struct pst_smtpc *e)
{
    e->st = S_DONE;
    e->due = 0;
}

/* ---- the transaction ---------------------------------------------------- */

static int send_mail(struct pst_smtpc *e)
{
    int rc = pst_buf_addf(e->out, "MAIL FROM:<%s>", e->cfg.sender);
    if (rc == 0 && (e->ext.flags & PST_SMTPC_EXT_SIZE) && e->cfg.size > 0)
        rc = pst_buf_addf(e->out, " SIZE=%llu", (unsigned long long)e->cfg.size);
    if (rc == 0 && e->cfg.body_8bit && (e->ext.flags & PST_SMTPC_EXT_8BITMIME))
        rc = pst_buf_addstr(e->out, " BODY=8BITMIME");
    if (rc == 0 && e->needs_utf8)
        rc = pst_buf_addstr(e->out, " SMTPUTF8");
    if (rc == 0 && (e->ext.flags & PST_SMTPC_EXT_DSN)) {
        if (e->cfg.dsn_ret != NULL)
            rc = pst_buf_addf(e->out, " RET=%s", e->cfg.dsn_ret);
        if (rc == 0 && e->cfg.dsn_envid != NULL)
            rc = pst_buf_addf(e->out, " ENVID=%s", e->cfg.dsn_envid);
    }
    return rc == 0 ? cmd(e, "%s", "") : rc;
}

static int send_rcpt(struct pst_smtpc *e, size_t i)
{
    const struct pst_smtpc_rcpt *r = &e->cfg.rcpts[i];
    int rc = pst_buf_addf(e->out, "RCPT TO:<%s>", r->addr);
    if (rc == 0 && (e->ext.flags & PST_SMTPC_EXT_DSN)) {
        if (r->notify != NULL)
            rc = pst_buf_addf(e->out, " NOTIFY=%s", r->notify);
        if (rc == 0 && r->orcpt != NULL)
            rc = pst_buf_addf(e->out, " ORCPT=%s", r->orcpt);
    }
    return rc == 0 ? cmd(e, "%s", "") : rc;
}

/* After EHLO/HELO (and TLS and AUTH): local checks, then MAIL. */
static void start_mail(struct pst_smtpc *e)
{
    if ((e->ext.flags & PST_SMTPC_EXT_SIZE) && e->ext.size_max > 0 &&
        e->cfg.size > e->ext.size_max) {
        /* RFC 1870 6.1 */
        set_local(e, PST_SMTPC_PERM, 552, "5.3.4", PST_SMTPC_STAGE_BEFORE_MAIL,
                  "message size %llu exceeds the server's limit of %llu octets",
                  (unsigned long long)e->cfg.size, (unsigned long long)e->ext.size_max);
        quit(e);
        return;
    }
    if (e->needs_utf8 && !(e->ext.flags & PST_SMTPC_EXT_SMTPUTF8)) {
        /* RFC 6531 3.4, 3.7.3: no downgrade */
        set_local(e, PST_SMTPC_PERM, 553, "5.6.7", PST_SMTPC_STAGE_BEFORE_MAIL,
                  "message needs SMTPUTF8 (internationalised address or header) and the "
                  "server does not offer it");
        quit(e);
        return;
    }
    e->st = S_TRANS;
    e->pos = 0;
    e->mail_ok = 0;
    e->naccepted = 0;
    e->pipelining = (e->ext.flags & PST_SMTPC_EXT_PIPELINING) != 0;
    if (send_mail(e) != 0)
        return;
    if (e->pipelining) {
        /* RFC 2920 3.1: MAIL, RCPTs and DATA in one group; DATA ends it */
        for (size_t i = 0; i < e->cfg.nrcpts; i++)
            if (send_rcpt(e, i) != 0)
                return;
        cmd(e, "DATA");
    }
}

static void start_auth(struct pst_smtpc *e)
{
    if (e->cfg.auth_user == NULL) {
        start_mail(e);
        return;
    }
    if (!e->info.tls && !e->cfg.auth_plaintext_ok) {
        set_local(e, PST_SMTPC_TEMP, 0, "4.7.0", PST_SMTPC_STAGE_AUTH,
                  "not sending credentials over a connection without TLS");
        quit(e);
        return;
    }
    if (!(e->ext.flags & PST_SMTPC_EXT_AUTH) ||
        !(e->ext.auth & (PST_SMTPC_AUTH_PLAIN | PST_SMTPC_AUTH_LOGIN))) {
        set_local(e, PST_SMTPC_TEMP, 0, "4.7.0", PST_SMTPC_STAGE_AUTH,
                  "credentials are configured but the server offers no AUTH PLAIN or LOGIN");
        quit(e);
        return;
    }
    if (e->ext.auth & PST_SMTPC_AUTH_PLAIN) {
        /* RFC 4616 2: authzid NUL authcid NUL passwd, sent as the initial
         * response (RFC 4954 4) */
        size_t ul = strlen(e->cfg.auth_user), pl = strlen(e->cfg.auth_pass);
        size_t n = ul + pl + 2;
        unsigned char *raw = malloc(n);
        unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
        if (raw == NULL || b64 == NULL) {
            free(raw);
            free(b64);
            set_local(e, PST_SMTPC_TEMP, 0, "4.3.0", PST_SMTPC_STAGE_AUTH, "out of memory");
            done(e);
            return;
        }
        raw[0] = '\0';
        memcpy(raw + 1, e->cfg.auth_user, ul);
        raw[1 + ul] = '\0';
        memcpy(raw + 2 + ul, e->cfg.auth_pass, pl);
        EVP_EncodeBlock(b64, raw, (int)n);
        e->st = S_AUTH_PLAIN;
        cmd(e, "AUTH PLAIN %s", (const char *)b64);
        explicit_bzero(raw, n);
        explicit_bzero(b64, 4 * ((n + 2) / 3) + 1);
        free(raw);
        free(b64);
        return;
    }
    e->st = S_AUTH_LOGIN;
    cmd(e, "AUTH LOGIN");
}

static void send_b64(struct pst_smtpc *e, const char *s)
{
    size_t n = strlen(s);
    unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
    if (b64 == NULL) {
        set_local(e, PST_SMTPC_TEMP, 0, "4.3.0", PST_SMTPC_STAGE_AUTH, "out of memory");
        done(e);
        return;
    }
    EVP_EncodeBlock(b64, (const unsigned char *)s, (int)n);
    cmd(e, "%s", (const char *)b64);
    explicit_bzero(b64, 4 * ((n + 2) / 3) + 1);
    free(b64);
}

/* After a good EHLO/HELO: STARTTLS, AUTH or MAIL. */
static void after_hello(struct pst_smtpc *e)
{
    if (!e->info.tls && e->cfg.tls != PST_SMTPC_TLS_NONE) {
        if (e->ext.flags & PST_SMTPC_EXT_STARTTLS) {
            e->st = S_STARTTLS;
            cmd(e, "STARTTLS");
            return;
        }
        e->info.tls_not_offered = 1;
        if (e->cfg.tls == PST_SMTPC_TLS_REQUIRED) {
            set_local(e, PST_SMTPC_TEMP, 0, "4.7.10",
                      e->info.helo ? PST_SMTPC_STAGE_HELO : PST_SMTPC_STAGE_EHLO,
                      "TLS is required and the server does not offer STARTTLS");
            quit(e);
            return;
        }
    }
    start_auth(e);
}

static void send_ehlo(struct pst_smtpc *e)
{
    memset(&e->ext, 0, sizeof(e->ext));
    e->st = S_EHLO;
    cmd(e, "EHLO %s", e->cfg.ehlo_name);
}

/* A reply failed the transaction: record it, QUIT or (421) hang up. */
static void fail_reply(struct pst_smtpc *e, const struct pst_smtpc_reply *r,
                       enum pst_smtpc_stage stage)
{
    set_reply(e, r, stage);
    if (e->status == PST_SMTPC_OK) /* a 2yz where it makes no sense */
        e->status = PST_SMTPC_TEMP;
    if (r->code == 421)
        done(e);
    else
        quit(e);
}

/* Every recipient was refused at RCPT: the session is PERM only when
 * every refusal is, else TEMP, and carries the first refusal of that
 * status; so a caller that bounces on a PERM session never bounces a
 * recipient that was only deferred. */
static void all_refused(struct pst_smtpc *e)
{
    enum pst_smtpc_status st = PST_SMTPC_PERM;
    for (size_t i = 0; i < e->cfg.nrcpts; i++)
        if (e->rr[i].status != PST_SMTPC_PERM)
            st = PST_SMTPC_TEMP;
    for (size_t i = 0; i < e->cfg.nrcpts; i++) {
        const struct rcpt_res *x = &e->rr[i];
        if (x->status == st) {
            set_local(e, st, x->code, x->enh, PST_SMTPC_STAGE_RCPT, "%s",
                      x->text != NULL ? x->text : "");
            e->from_server = 1;
            return;
        }
    }
}

/* Refused credentials are our configuration's fault, not the message's:
 * temporary, whatever the code (as Postfix's smtp_sasl_auth_soft_bounce). */
static void auth_failed(struct pst_smtpc *e, const struct pst_smtpc_reply *r)
{
    fail_reply(e, r, PST_SMTPC_STAGE_AUTH);
    if (e->stage == PST_SMTPC_STAGE_AUTH)
        e->status = PST_SMTPC_TEMP;
}

static void on_trans(struct pst_smtpc *e, const struct pst_smtpc_reply *r)
{
    size_t n = e->cfg.nrcpts;
    size_t pos = e->pos++;
    int ok = r->code / 100 == 2;
    if (r->code == 421) {
        /* RFC 5321 3.8: the server is going away; everything is temporary */
        set_reply(e, r,
                  pos == 0   ? PST_SMTPC_STAGE_MAIL
                  : pos <= n ? PST_SMTPC_STAGE_RCPT
                             : PST_SMTPC_STAGE_DATA);
        done(e);
        return;
    }
    if (pos == 0) {
        e->mail_ok = ok;
        if (!ok)
            set_reply(e, r, PST_SMTPC_STAGE_MAIL); /* not 2yz: never OK */
        if (!e->pipelining) {
            if (ok)
                send_rcpt(e, 0);
            else
                quit(e);
        }
        return;
    }
    if (pos <= n) {
        size_t i = pos - 1;
        if (e->mail_ok) {
            if (ok) {
                e->rr[i].accepted = 1;
                e->naccepted++;
            } else {
                rcpt_set(e, i, r, PST_SMTPC_STAGE_RCPT);
            }
        }
        if (!e->pipelining) {
            if (i + 1 < n) {
                send_rcpt(e, i + 1);
            } else if (e->naccepted == 0) {
                all_refused(e);
                quit(e);
            } else {
                cmd(e, "DATA");
            }
        }
        return;
    }
    /* DATA */
    if (!e->mail_ok || e->naccepted == 0) {
        if (e->naccepted == 0 && e->mail_ok)
            all_refused(e);
        if (r->code == 354) {
            /* RFC 2920 3.1: DATA was accepted anyway; end it empty */
            pst_buf_reset(e->out);
            e->due = 0;
            e->st = S_DOT_DISCARD;
            cmd(e, ".");
        } else {
            quit(e);
        }
        return;
    }
    if (r->code == 354) {
        e->st = S_BODY;
        return;
    }
    fail_reply(e, r, PST_SMTPC_STAGE_DATA);
}

static void on_dot(struct pst_smtpc *e, const struct pst_smtpc_reply *r)
{
    for (size_t i = 0; i < e->cfg.nrcpts; i++)
        if (e->rr[i].accepted)
            rcpt_set(e, i, r, PST_SMTPC_STAGE_DOT);
    if (r->code / 100 == 2) {
        set_reply(e, r, PST_SMTPC_STAGE_DOT);
        quit(e);
        return;
    }
    fail_reply(e, r, PST_SMTPC_STAGE_DOT);
}

/* One complete reply. */
static void on_reply(struct pst_smtpc *e, const struct pst_smtpc_reply *r)
{
    e->due--;
    e->info.replies++;
    int c = r->code;
    switch (e->st) {
    case S_GREETING:
        if (c == 220) {
            send_ehlo(e);
            return;
        }
        /* RFC 5321 3.1: 554 (or anything else) instead of 220 */
        fail_reply(e, r, PST_SMTPC_STAGE_GREETING);
        return;
    case S_EHLO:
        if (c == 250) {
            pst_smtpc_ehlo_parse(r, &e->ext);
            after_hello(e);
            return;
        }
        if (c == 500 || c == 501 || c == 502 || c == 504) {
            /* RFC 5321 3.2: a server without EHLO; no extensions then */
            memset(&e->ext, 0, sizeof(e->ext));
            e->info.helo = 1;
            e->st = S_HELO;
            cmd(e, "HELO %s", e->cfg.ehlo_name);
            return;
        }
        fail_reply(e, r, PST_SMTPC_STAGE_EHLO);
        return;
    case S_HELO:
        if (c == 250) {
            after_hello(e);
            return;
        }
        fail_reply(e, r, PST_SMTPC_STAGE_HELO);
        return;
    case S_STARTTLS:
        if (c == 220) {
            e->st = S_TLS;
            return;
        }
        if (c == 421 || e->cfg.tls == PST_SMTPC_TLS_REQUIRED) {
            e->info.tls_not_offered = 1;
            fail_reply(e, r, PST_SMTPC_STAGE_STARTTLS);
            if (e->status == PST_SMTPC_PERM && c != 421) {
                /* the refusal is about TLS, not the message */
                e->status = PST_SMTPC_TEMP;
            }
            return;
        }
        /* opportunistic: go on in plaintext */
        e->info.tls_not_offered = 1;
        start_auth(e);
        return;
    case S_AUTH_PLAIN:
    case S_AUTH_PASS:
        if (c == 235) {
            e->info.auth = 1;
            start_mail(e);
            return;
        }
        auth_failed(e, r);
        return;
    case S_AUTH_LOGIN:
    case S_AUTH_USER:
        if (c == 334) {
            if (e->st == S_AUTH_LOGIN) {
                e->st = S_AUTH_USER;
                send_b64(e, e->cfg.auth_user);
            } else {
                e->st = S_AUTH_PASS;
                send_b64(e, e->cfg.auth_pass);
            }
            return;
        }
        auth_failed(e, r);
        return;
    case S_TRANS:
        on_trans(e, r);
        return;
    case S_DOT:
        on_dot(e, r);
        return;
    case S_DOT_DISCARD:
        quit(e);
        return;
    case S_QUIT:
        done(e);
        return;
    case S_TLS:
    case S_BODY:
    case S_DONE:
        break;
    }
}

enum pst_smtpc_event pst_smtpc_event(const struct pst_smtpc *e)
{
    switch (e->st) {
    case S_DONE:
        return PST_SMTPC_EV_DONE;
    case S_TLS:
        return PST_SMTPC_EV_NEED_TLS;
    case S_BODY:
        return PST_SMTPC_EV_NEED_DATA;
    default:
        return PST_SMTPC_EV_READ;
    }
}

enum pst_smtpc_stage pst_smtpc_wait_stage(const struct pst_smtpc *e)
{
    switch (e->st) {
    case S_GREETING:
        return PST_SMTPC_STAGE_GREETING;
    case S_EHLO:
        return PST_SMTPC_STAGE_EHLO;
    case S_HELO:
        return PST_SMTPC_STAGE_HELO;
    case S_STARTTLS:
        return PST_SMTPC_STAGE_STARTTLS;
    case S_TLS:
        return PST_SMTPC_STAGE_TLS;
    case S_AUTH_PLAIN:
    case S_AUTH_LOGIN:
    case S_AUTH_USER:
    case S_AUTH_PASS:
        return PST_SMTPC_STAGE_AUTH;
    case S_TRANS:
        return e->pos == 0               ? PST_SMTPC_STAGE_MAIL
               : e->pos <= e->cfg.nrcpts ? PST_SMTPC_STAGE_RCPT
                                         : PST_SMTPC_STAGE_DATA;
    case S_BODY:
        return PST_SMTPC_STAGE_DATA_BLOCK;
    case S_DOT:
    case S_DOT_DISCARD:
        return PST_SMTPC_STAGE_DOT;
    case S_QUIT:
    case S_DONE:
        return PST_SMTPC_STAGE_QUIT;
    }
    return PST_SMTPC_STAGE_QUIT;
}

/* The first octets of s, non-printable ones as \xHH. */
static void quote(char *out, size_t outlen, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            out[j++] = (char)c;
        } else {
            snprintf(out + j, 5, "\\x%02x", c);
            j += 4;
        }
    }
    out[j] = '\0';
}

static void protocol_error(struct pst_smtpc *e, const char *what)
{
    set_local(e, PST_SMTPC_TEMP, 0, "4.5.0", pst_smtpc_wait_stage(e), "protocol error: %s", what);
    done(e);
}

int pst_smtpc_input(struct pst_smtpc *e, const char *in, size_t len)
{
    if (e->st == S_DONE)
        return 0;
    if (e->st == S_TLS) {
        /* RFC 3207 4.2: plaintext after the 220 to STARTTLS is never read */
        e->info.discarded += len;
        return 0;
    }
    size_t i = 0;
    while (i < len && e->st != S_DONE) {
        if (e->st == S_TLS) {
            /* RFC 3207 4.2: plaintext after the 220 to STARTTLS is never
             * read; the driver starts the handshake on a clean stream */
            e->info.discarded += len - i;
            return 0;
        }
        if (e->due == 0 || pst_buf_len(e->out) > 0 || e->st == S_BODY) {
            char why[PST_SMTPC_WHY_MAX];
            char quoted[80];
            quote(quoted, sizeof(quoted), in + i, len - i);
            snprintf(why, sizeof(why), "server sent data when no reply was due: '%s'", quoted);
            protocol_error(e, why);
            return 0;
        }
        struct pst_smtpc_reply r = {0};
        size_t used = 0;
        char why[PST_SMTPC_WHY_MAX];
        int rc = pst_smtpc_rparser_feed(e->rp, in + i, len - i, &used, &r, why, sizeof(why));
        if (rc < 0) {
            if (rc == PST_ERR_NOMEM) {
                set_local(e, PST_SMTPC_TEMP, 0, "4.3.0", pst_smtpc_wait_stage(e), "out of memory");
                done(e);
                return rc;
            }
            protocol_error(e, why);
            return 0;
        }
        i += used;
        if (rc == 0)
            break;
        if (e->st == S_TLS) {
            pst_smtpc_reply_clear(&r);
            protocol_error(e, "reply while TLS was starting");
            return 0;
        }
        on_reply(e, &r);
        pst_smtpc_reply_clear(&r);
    }
    return 0;
}

void pst_smtpc_eof(struct pst_smtpc *e)
{
    if (e->st == S_DONE)
        return;
    if (e->st == S_QUIT) {
        done(e);
        return;
    }
    set_local(e, PST_SMTPC_TEMP, 0, "4.4.2", pst_smtpc_wait_stage(e),
              "connection closed by the server");
    done(e);
}

void pst_smtpc_fail(struct pst_smtpc *e, const char *enh, const char *reason)
{
    if (e->st == S_DONE)
        return;
    if (e->st == S_QUIT && e->has) {
        done(e);
        return;
    }
    set_local(e, PST_SMTPC_TEMP, 0, enh != NULL ? enh : "4.4.2", pst_smtpc_wait_stage(e), "%s",
              reason != NULL ? reason : "connection failed");
    done(e);
}

void pst_smtpc_tls_done(struct pst_smtpc *e, int ok, const char *reason)
{
    if (e->st != S_TLS)
        return;
    if (!ok) {
        set_local(e, PST_SMTPC_TEMP, 0, "4.7.5", PST_SMTPC_STAGE_TLS, "TLS handshake failed: %s",
                  reason != NULL ? reason : "unknown reason");
        done(e);
        return;
    }
    /* RFC 3207 4.2: forget what we knew, say EHLO again */
    e->info.tls = 1;
    pst_smtpc_rparser_reset(e->rp);
    e->due = 0;
    send_ehlo(e);
}

void pst_smtpc_data_sent(struct pst_smtpc *e)
{
    if (e->st != S_BODY)
        return;
    e->st = S_DOT;
    e->due = 1;
}
