/*
 * envelope.c - the queue envelope as JSON (RFC 8259) with jansson: an
 * encoder and a strict, bounded decoder. The format is described in
 * queue.h. Limits: PST_ENVELOPE_MAX_JSON bytes of JSON (checked before
 * parsing and after encoding), PST_ENVELOPE_MAX_RCPTS recipients (checked
 * before anything is allocated for them). Nesting is fixed by the format;
 * jansson's own depth limit (2048) bounds what a hostile file can nest
 * before the type checks refuse it.
 */
#include "queue.h"
#include "err.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define ENVELOPE_VERSION 1

static const char *const state_names[] = {
    [PST_RCPT_PENDING] = "pending",
    [PST_RCPT_DELIVERED] = "delivered",
    [PST_RCPT_FAILED] = "failed",
};
#define NSTATES (sizeof(state_names) / sizeof(state_names[0]))

static const char *const env_keys[] = {
    "v",         "id",     "sender",   "arrival",      "client_addr", "helo",       "smtputf8",
    "body_8bit", "tls",    "attempts", "next_attempt", "rcpts",       "quarantine", "ret",
    "envid",     "warned", "hold",     "auth_user",    NULL,
};
static const char *const rcpt_keys[] = {"addr",   "user",  "state", "last_reply",
                                        "notify", "orcpt", NULL};
static const char *const ret_names[] = {"", "full", "hdrs"};

enum text_kind {
    TEXT_PLAIN, /* no control characters at all */
    TEXT_REPLY, /* CR, LF and TAB allowed (multi-line SMTP replies) */
};

/* 1 when the n bytes at s are well-formed UTF-8 (RFC 3629 4: no overlongs,
 * no surrogates, nothing past U+10FFFF) without forbidden controls. */
static int text_ok(const char *s, size_t n, enum text_kind kind)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c == 0x7f)
                return 0;
            if (c < 0x20 && !(kind == TEXT_REPLY && (c == '\r' || c == '\n' || c == '\t')))
                return 0;
            p++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return 0;
        }
        if ((size_t)(end - p) < len)
            return 0;
        if (p[1] < lo || p[1] > hi)
            return 0;
        for (size_t i = 2; i < len; i++)
            if (p[i] < 0x80 || p[i] > 0xbf)
                return 0;
        p += len;
    }
    return 1;
}

static int id_ok(const char *id, size_t n)
{
    if (n != PST_QUEUE_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

int pst_queue_id_check(const char *id)
{
    if (id == NULL || !id_ok(id, strnlen(id, PST_QUEUE_ID_LEN + 1)))
        return PST_ERR_SYNTAX;
    return 0;
}

void pst_envelope_free(struct pst_envelope *env)
{
    if (env == NULL)
        return;
    free(env->sender);
    free(env->client_addr);
    free(env->helo);
    free(env->envid);
    free(env->auth_user);
    for (size_t i = 0; i < env->nrcpts; i++) {
        free(env->rcpts[i].addr);
        free(env->rcpts[i].user);
        free(env->rcpts[i].last_reply);
        free(env->rcpts[i].orcpt);
    }
    free(env->rcpts);
    free(env);
}

/* ---- encoder ---- */

static int str_valid(const char *s, int nullable, enum text_kind kind)
{
    if (s == NULL)
        return nullable;
    return text_ok(s, strlen(s), kind);
}

static int env_valid(const struct pst_envelope *env)
{
    if (pst_queue_id_check(env->id) != 0)
        return 0;
    if (!str_valid(env->sender, 0, TEXT_PLAIN) || !str_valid(env->client_addr, 1, TEXT_PLAIN) ||
        !str_valid(env->helo, 1, TEXT_PLAIN))
        return 0;
    if (env->arrival < 0 || env->next_attempt < 0)
        return 0;
    if (env->ret < 0 || env->ret > 2 || !str_valid(env->envid, 1, TEXT_PLAIN) ||
        !str_valid(env->auth_user, 1, TEXT_PLAIN))
        return 0;
    if (env->nrcpts == 0 || env->rcpts == NULL)
        return 0;
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct pst_envelope_rcpt *r = &env->rcpts[i];
        if ((unsigned)r->state >= NSTATES)
            return 0;
        if (!str_valid(r->addr, 0, TEXT_PLAIN) || !str_valid(r->user, 1, TEXT_PLAIN) ||
            !str_valid(r->last_reply, 1, TEXT_REPLY) || !str_valid(r->orcpt, 1, TEXT_PLAIN) ||
            r->notify > 15)
            return 0;
    }
    return 1;
}

/* A string, or null for NULL; reference-stealing set, so NULL from jansson
 * (out of memory) is reported by the caller's final check. */
static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static int obj_set(json_t *obj, const char *key, json_t *val)
{
    if (val == NULL)
        return PST_ERR_NOMEM;
    return json_object_set_new(obj, key, val) == 0 ? 0 : PST_ERR_NOMEM;
}

int pst_envelope_to_json(const struct pst_envelope *env, char **json)
{
    int rc;
    json_t *root = NULL;
    char *s = NULL;

    if (env == NULL || json == NULL)
        return PST_ERR_INVAL;
    if (env->nrcpts > PST_ENVELOPE_MAX_RCPTS)
        return PST_ERR_TOOBIG;
    if (!env_valid(env))
        return PST_ERR_INVAL;

    root = json_object();
    json_t *rcpts = json_array();
    if (root == NULL || rcpts == NULL) {
        json_decref(rcpts);
        rc = PST_ERR_NOMEM;
        goto out;
    }
    if ((rc = obj_set(root, "v", json_integer(ENVELOPE_VERSION))) != 0 ||
        (rc = obj_set(root, "id", json_string(env->id))) != 0 ||
        (rc = obj_set(root, "sender", json_string(env->sender))) != 0 ||
        (rc = obj_set(root, "arrival", json_integer(env->arrival))) != 0 ||
        (rc = obj_set(root, "client_addr", str_or_null(env->client_addr))) != 0 ||
        (rc = obj_set(root, "helo", str_or_null(env->helo))) != 0 ||
        (rc = obj_set(root, "smtputf8", json_boolean(env->smtputf8))) != 0 ||
        (rc = obj_set(root, "body_8bit", json_boolean(env->body_8bit))) != 0 ||
        (rc = obj_set(root, "tls", json_boolean(env->tls))) != 0 ||
        (rc = obj_set(root, "attempts", json_integer(env->attempts))) != 0 ||
        (rc = obj_set(root, "next_attempt", json_integer(env->next_attempt))) != 0 ||
        (rc = obj_set(root, "rcpts", rcpts)) != 0)
        goto out;
    /* optional keys are written only when set, so older readers of the
     * common case are not surprised */
    if ((env->quarantine && (rc = obj_set(root, "quarantine", json_true())) != 0) ||
        (env->ret && (rc = obj_set(root, "ret", json_string(ret_names[env->ret]))) != 0) ||
        (env->envid && (rc = obj_set(root, "envid", json_string(env->envid))) != 0) ||
        (env->warned && (rc = obj_set(root, "warned", json_true())) != 0) ||
        (env->hold && (rc = obj_set(root, "hold", json_true())) != 0) ||
        (env->auth_user && (rc = obj_set(root, "auth_user", json_string(env->auth_user))) != 0))
        goto out;
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct pst_envelope_rcpt *r = &env->rcpts[i];
        json_t *o = json_object();
        if (o == NULL) {
            rc = PST_ERR_NOMEM;
            goto out;
        }
        if (json_array_append_new(rcpts, o) != 0) {
            rc = PST_ERR_NOMEM;
            goto out;
        }
        if ((rc = obj_set(o, "addr", json_string(r->addr))) != 0 ||
            (rc = obj_set(o, "user", str_or_null(r->user))) != 0 ||
            (rc = obj_set(o, "state", json_string(state_names[r->state]))) != 0 ||
            (rc = obj_set(o, "last_reply", str_or_null(r->last_reply))) != 0 ||
            (r->notify && (rc = obj_set(o, "notify", json_integer(r->notify))) != 0) ||
            (r->orcpt && (rc = obj_set(o, "orcpt", json_string(r->orcpt))) != 0))
            goto out;
    }
    s = json_dumps(root, JSON_COMPACT);
    if (s == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    if (strlen(s) > PST_ENVELOPE_MAX_JSON) {
        rc = PST_ERR_TOOBIG;
        goto out;
    }
    *json = s;
    s = NULL;
    rc = 0;
out:
    free(s);
    json_decref(root);
    return rc;
}

/* ---- decoder ---- */

/* Refuses keys outside the allowed list (strict format). */
static int only_keys(json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        (void)val;
        size_t i;
        for (i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                break;
        if (allowed[i] == NULL)
            return PST_ERR_SYNTAX;
    }
    return 0;
}

/* A required string member (or null when nullable), copied into *out. */
static int get_str(json_t *obj, const char *key, int nullable, enum text_kind kind, char **out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return PST_ERR_SYNTAX;
    if (json_is_null(v) && nullable) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return PST_ERR_SYNTAX;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    /* jansson refuses \u0000 unless asked, but check anyway: C strings */
    if (memchr(s, '\0', n) != NULL || !text_ok(s, n, kind))
        return PST_ERR_SYNTAX;
    char *copy = strndup(s, n);
    if (copy == NULL)
        return PST_ERR_NOMEM;
    *out = copy;
    return 0;
}

static int get_int(json_t *obj, const char *key, long long max, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || !json_is_integer(v))
        return PST_ERR_SYNTAX;
    json_int_t i = json_integer_value(v);
    if (i < 0 || i > max)
        return PST_ERR_SYNTAX;
    *out = i;
    return 0;
}

static int get_bool(json_t *obj, const char *key, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || !json_is_boolean(v))
        return PST_ERR_SYNTAX;
    *out = json_is_true(v);
    return 0;
}

/* An optional string: absent is NULL (null is refused). */
static int get_str_opt(json_t *obj, const char *key, char **out)
{
    if (json_object_get(obj, key) == NULL) {
        *out = NULL;
        return 0;
    }
    return get_str(obj, key, 0, TEXT_PLAIN, out);
}

/* An optional boolean: absent is false. */
static int get_bool_opt(json_t *obj, const char *key, int *out)
{
    if (json_object_get(obj, key) == NULL) {
        *out = 0;
        return 0;
    }
    return get_bool(obj, key, out);
}

static int get_rcpt(json_t *o, struct pst_envelope_rcpt *r)
{
    int rc;
    char *state = NULL;
    if (!json_is_object(o))
        return PST_ERR_SYNTAX;
    if ((rc = only_keys(o, rcpt_keys)) != 0)
        return rc;
    if ((rc = get_str(o, "addr", 0, TEXT_PLAIN, &r->addr)) != 0 ||
        (rc = get_str(o, "user", 1, TEXT_PLAIN, &r->user)) != 0 ||
        (rc = get_str(o, "last_reply", 1, TEXT_REPLY, &r->last_reply)) != 0 ||
        (rc = get_str(o, "state", 0, TEXT_PLAIN, &state)) != 0 ||
        (rc = get_str_opt(o, "orcpt", &r->orcpt)) != 0)
        goto out;
    if (json_object_get(o, "notify") != NULL) {
        long long n;
        if ((rc = get_int(o, "notify", 15, &n)) != 0)
            goto out;
        r->notify = (unsigned)n;
    }
    rc = PST_ERR_SYNTAX;
    for (size_t i = 0; i < NSTATES; i++) {
        if (strcmp(state, state_names[i]) == 0) {
            r->state = (enum pst_rcpt_state)i;
            rc = 0;
            break;
        }
    }
out:
    free(state);
    return rc;
}

int pst_envelope_from_json(const char *json, size_t len, struct pst_envelope **out)
{
    int rc;
    json_t *root = NULL;
    struct pst_envelope *env = NULL;
    char *id = NULL;
    long long v;

    if (json == NULL || out == NULL)
        return PST_ERR_INVAL;
    if (len > PST_ENVELOPE_MAX_JSON)
        return PST_ERR_TOOBIG;

    json_error_t jerr;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc = json_error_code(&jerr) == json_error_out_of_memory ? PST_ERR_NOMEM : PST_ERR_SYNTAX;
        goto out;
    }
    rc = PST_ERR_SYNTAX;
    if (!json_is_object(root) || only_keys(root, env_keys) != 0)
        goto out;
    if (get_int(root, "v", INT_MAX, &v) != 0 || v != ENVELOPE_VERSION)
        goto out;
    json_t *rcpts = json_object_get(root, "rcpts");
    if (rcpts == NULL || !json_is_array(rcpts) || json_array_size(rcpts) == 0)
        goto out;
    if (json_array_size(rcpts) > PST_ENVELOPE_MAX_RCPTS) {
        rc = PST_ERR_TOOBIG;
        goto out;
    }

    env = calloc(1, sizeof(*env));
    if (env == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    if ((rc = get_str(root, "id", 0, TEXT_PLAIN, &id)) != 0)
        goto out;
    if (!id_ok(id, strlen(id))) {
        rc = PST_ERR_SYNTAX;
        goto out;
    }
    memcpy(env->id, id, PST_QUEUE_ID_LEN + 1);

    long long arrival, attempts, next_attempt;
    if ((rc = get_str(root, "sender", 0, TEXT_PLAIN, &env->sender)) != 0 ||
        (rc = get_str(root, "client_addr", 1, TEXT_PLAIN, &env->client_addr)) != 0 ||
        (rc = get_str(root, "helo", 1, TEXT_PLAIN, &env->helo)) != 0 ||
        (rc = get_int(root, "arrival", INT64_MAX, &arrival)) != 0 ||
        (rc = get_int(root, "attempts", UINT_MAX, &attempts)) != 0 ||
        (rc = get_int(root, "next_attempt", INT64_MAX, &next_attempt)) != 0 ||
        (rc = get_bool(root, "smtputf8", &env->smtputf8)) != 0 ||
        (rc = get_bool(root, "body_8bit", &env->body_8bit)) != 0 ||
        (rc = get_bool(root, "tls", &env->tls)) != 0 ||
        (rc = get_bool_opt(root, "quarantine", &env->quarantine)) != 0 ||
        (rc = get_bool_opt(root, "warned", &env->warned)) != 0 ||
        (rc = get_bool_opt(root, "hold", &env->hold)) != 0 ||
        (rc = get_str_opt(root, "envid", &env->envid)) != 0 ||
        (rc = get_str_opt(root, "auth_user", &env->auth_user)) != 0)
        goto out;
    if (json_object_get(root, "ret") != NULL) {
        char *ret = NULL;
        if ((rc = get_str(root, "ret", 0, TEXT_PLAIN, &ret)) != 0)
            goto out;
        rc = strcmp(ret, "full") == 0   ? (env->ret = 1, 0)
             : strcmp(ret, "hdrs") == 0 ? (env->ret = 2, 0)
                                        : PST_ERR_SYNTAX;
        free(ret);
        if (rc != 0)
            goto out;
    }
    env->arrival = arrival;
    env->attempts = (unsigned)attempts;
    env->next_attempt = next_attempt;

    size_t n = json_array_size(rcpts);
    env->rcpts = calloc(n, sizeof(*env->rcpts));
    if (env->rcpts == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        /* count first so pst_envelope_free releases a half-filled entry */
        env->nrcpts = i + 1;
        if ((rc = get_rcpt(json_array_get(rcpts, i), &env->rcpts[i])) != 0)
            goto out;
    }
    *out = env;
    env = NULL;
    rc = 0;
out:
    free(id);
    pst_envelope_free(env);
    json_decref(root);
    return rc;
}
