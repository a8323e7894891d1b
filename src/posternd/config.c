/*
 * config.c - posternd's configuration: a libconfig (1.5) text turned into a
 * checked, read-only struct pst_conf. The format and every setting are
 * documented in docs/postern.conf.example.
 *
 * Loading reads the one file and nothing else (paths are not checked for
 * existence; the hostname default asks gethostname()) and never prints:
 * every refusal is one "FILE:LINE: setting: reason" text ("FILE: reason"
 * when no line applies, e.g. a missing required setting).
 *
 * Strictness, and why:
 *  - unknown keys at every level are refused (with a "did you mean" hint for
 *    typos), as are wrong types: libconfig's auto-conversion stays off.
 *  - libconfig 1.5 reads an integer literal without the L suffix with
 *    the C string-to-number calls and silently wraps values outside 32 bits
 *    (4294967396 becomes 100). A small lexical pass over the text refuses
 *    such literals before libconfig sees them; 2147483648L is fine.
 *  - @include is refused: one file is the whole configuration, so a reload
 *    reads exactly what it names and every error points into that file.
 *  - NUL bytes and control characters in strings are refused.
 *  - the file is capped at PST_CONF_MAX_FILE bytes.
 *
 * Limits follow RFC 5321: 4.5.3.1.4 (a command line of at least 512 octets
 * must be accepted), 4.5.3.1.8 (at least 100 recipients must be accepted,
 * the default), 4.5.3.2.7 (server command timeout 5 minutes) and the data
 * block timeout of 4.5.3.2.6 (3 minutes).
 *
 * Lookups (domains, users, aliases) are linear scans: configurations hold a
 * handful of entries. Switch to a sorted array or hash when that changes.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "pst_config.h"
#include "resolver.h"

#define PST_CONF_MAX_FILE (1024 * 1024)
#define EMBEDDED_SOURCE   "(embedded default)"

#define DEFAULT_SPOOL     "/var/spool/postern"
#define DEFAULT_MAIL_ROOT "/var/mail"

static const char default_text[] =
    "# posternd embedded default configuration (make run).\n"
    "# Everything lives below ./var; posternd --print-default shows this text.\n"
    "hostname = \"localhost\";\n"
    "spool = \"./var/spool\";\n"
    "mail_root = \"./var/mail\";\n"
    "log = { target = \"stderr\"; debug = false; };\n"
    "tls = {\n"
    "  certificate = \"./var/tls/cert.pem\";\n"
    "  key = \"./var/tls/key.pem\";\n"
    "  generate = true;   # self-signed pair made at start when both are missing\n"
    "};\n"
    "listeners = (\n"
    "  { address = \"127.0.0.1\"; port = 2525; mode = \"smtp\"; starttls = true; },\n"
    "  { address = \"127.0.0.1\"; port = 4650; mode = \"tls\"; }\n"
    ");\n"
    "domains = [ \"localhost\", \"example.test\" ];\n"
    "users = ( { name = \"postmaster\"; } );\n"
    "postmaster = \"postmaster\";\n"
    "# SPF, DKIM and DMARC run on every message; mail from this machine is\n"
    "# exempt from the DMARC policy (results are still added and kept).\n"
    "auth = { allow = [ \"127.0.0.0/8\", \"::1\" ]; };\n";

/* ---- error reporting ---------------------------------------------------- */

struct ctx {
    const char *source; /* file name in messages */
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 3, 0))) static int vfail_at(struct ctx *c, unsigned line,
                                                          const char *fmt, va_list ap)
{
    char msg[512];

    vsnprintf(msg, sizeof msg, fmt, ap);
    if (c->err != NULL && c->errlen > 0) {
        if (line > 0)
            snprintf(c->err, c->errlen, "%s:%u: %s", c->source, line, msg);
        else
            snprintf(c->err, c->errlen, "%s: %s", c->source, msg);
    }
    return PST_ERR_INVAL;
}

__attribute__((format(printf, 3, 4))) static int fail_at(struct ctx *c, unsigned line,
                                                         const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_at(c, line, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(struct ctx *c)
{
    fail_at(c, 0, "out of memory");
    return PST_ERR_NOMEM;
}

/* "limits.message_size", "listeners.port": named ancestors joined by dots
 * (list elements have no name; the line number tells which one). */
static const char *spath(const config_setting_t *s, char *buf, size_t len)
{
    const char *names[8];
    size_t n = 0, used = 0;

    for (; s != NULL && !config_setting_is_root(s) && n < 8; s = config_setting_parent(s))
        if (config_setting_name(s) != NULL)
            names[n++] = config_setting_name(s);
    buf[0] = '\0';
    while (n-- > 0 && used < len) {
        int w = snprintf(buf + used, len - used, "%s%s", used ? "." : "", names[n]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* Fails with "FILE:LINE: path: reason" for setting s. */
__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, const config_setting_t *s,
                                                      const char *fmt, ...)
{
    char path[128], msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    spath(s, path, sizeof path);
    if (path[0] == '\0')
        return fail_at(c, config_setting_source_line(s), "%s", msg);
    return fail_at(c, config_setting_source_line(s), "%s: %s", path, msg);
}

/* ---- small ASCII helpers (no locale) ------------------------------------ */

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static int is_alnum(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static int ascii_casecmp(const char *a, const char *b)
{
    for (; *a != '\0' && lower((unsigned char)*a) == lower((unsigned char)*b); a++, b++)
        ;
    return lower((unsigned char)*a) - lower((unsigned char)*b);
}

static void to_lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)lower((unsigned char)*s);
}

static int dup_str(struct ctx *c, const char *s, char **out)
{
    char *d = strdup(s);

    if (d == NULL)
        return oom(c);
    free(*out);
    *out = d;
    return 0;
}

/* Edit distance of two short names, an adjacent swap counting as one edit
 * (optimal string alignment), for "did you mean"; SIZE_MAX when long. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), d[33][33];

    if (la > 32 || lb > 32)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* ---- the lexical pre-pass ------------------------------------------------ */

/*
 * Refuses what libconfig 1.5 would accept with a different meaning: integer
 * literals that do not fit their type (wrapped silently), "\x00" in strings
 * (cuts the string) and @include. Comments and strings follow libconfig's
 * scanner: #..., //..., / *...* /, "..." with backslash escapes.
 */
static int prescan(struct ctx *c, const char *p)
{
    unsigned line = 1;

    while (*p != '\0') {
        if (*p == '\n') {
            line++;
            p++;
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            while (*p != '\0' && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/'); p++)
                if (*p == '\n')
                    line++;
            if (*p != '\0')
                p += 2;
        } else if (*p == '"') {
            for (p++; *p != '\0' && *p != '"'; p++) {
                if (*p == '\n')
                    line++;
                if (*p == '\\' && p[1] != '\0') {
                    if (p[1] == 'x' && p[2] == '0' && p[3] == '0')
                        return fail_at(c, line, "\"\\x00\" in a string");
                    p++;
                    if (*p == '\n')
                        line++;
                }
            }
            if (*p == '"')
                p++;
        } else if (*p == '@') {
            if (strncmp(p, "@include", 8) == 0)
                return fail_at(c, line,
                               "@include is not supported: keep the whole "
                               "configuration in one file");
            p++;
        } else if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '*') {
            /* a setting name or true/false: digits in it are no number */
            while (is_alnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '*')
                p++;
        } else if (*p >= '0' && *p <= '9') {
            const char *start = p;
            unsigned long long v = 0, base = 10, over = 0;

            if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
                base = 16;
                p += 2;
            }
            for (;; p++) {
                unsigned d;
                if (*p >= '0' && *p <= '9')
                    d = (unsigned)(*p - '0');
                else if (base == 16 && lower((unsigned char)*p) >= 'a' &&
                         lower((unsigned char)*p) <= 'f')
                    d = (unsigned)(lower((unsigned char)*p) - 'a' + 10);
                else
                    break;
                if (v > (ULLONG_MAX - d) / base)
                    over = 1;
                else
                    v = v * base + d;
            }
            if (base == 10 && (*p == '.' || *p == 'e' || *p == 'E')) {
                /* a float: libconfig parses it with strtod */
                while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                       ((*p == '+' || *p == '-') && (p[-1] == 'e' || p[-1] == 'E')))
                    p++;
                continue;
            }
            if (*p == 'L') {
                if (over || v > LLONG_MAX)
                    return fail_at(c, line, "integer %.*s does not fit in 64 bits",
                                   (int)(p - start), start);
                p++;
                if (*p == 'L')
                    p++;
            } else if (over || v > INT_MAX) {
                return fail_at(c, line,
                               "integer %.*s does not fit in 32 bits and libconfig 1.5 would "
                               "wrap it; write %.*sL",
                               (int)(p - start), start, (int)(p - start), start);
            }
        } else if (*p == '.' && p[1] >= '0' && p[1] <= '9') {
            for (p++; (*p >= '0' && *p <= '9') || *p == 'e' || *p == 'E' ||
                      ((*p == '+' || *p == '-') && (p[-1] == 'e' || p[-1] == 'E'));
                 p++)
                ;
        } else {
            p++;
        }
    }
    return 0;
}

/* ---- typed getters: 1 found, 0 absent, negative error ------------------- */

/* Refuses keys of group g that are not in names (NULL-terminated). */
static int check_keys(struct ctx *c, const config_setting_t *g, const char *const *names)
{
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s), *best = NULL;
        /* one edit, or two in a longer name: "home" is no typo of "name" */
        size_t bestd = strlen(name) >= 6 ? 3 : 2;
        int known = 0;

        for (const char *const *n = names; *n != NULL; n++) {
            size_t d;
            if (strcmp(name, *n) == 0) {
                known = 1;
                break;
            }
            d = edit_distance(name, *n);
            if (d < bestd) {
                bestd = d;
                best = *n;
            }
        }
        if (known)
            continue;
        if (best != NULL)
            return fail(c, s, "unknown setting (did you mean %s?)", best);
        return fail(c, s, "unknown setting");
    }
    return 0;
}

static int str_value(struct ctx *c, const config_setting_t *s, const char **out)
{
    const char *v;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(c, s, "must be a string");
    v = config_setting_get_string(s);
    if (v[0] == '\0')
        return fail(c, s, "must not be empty");
    for (const char *p = v; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(c, s, "must not contain control characters");
    *out = v;
    return 1;
}

static int get_str(struct ctx *c, const config_setting_t *g, const char *name, const char **out)
{
    const config_setting_t *s = config_setting_get_member(g, name);

    return s == NULL ? 0 : str_value(c, s, out);
}

/* Optional string copied into *out (which keeps its default when absent). */
static int get_str_dup(struct ctx *c, const config_setting_t *g, const char *name, char **out)
{
    const char *v;
    int rc = get_str(c, g, name, &v);

    if (rc <= 0)
        return rc;
    rc = dup_str(c, v, out);
    return rc < 0 ? rc : 1;
}

static int get_bool(struct ctx *c, const config_setting_t *g, const char *name, int *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);

    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(c, s, "must be true or false");
    *out = config_setting_get_bool(s) != 0;
    return 1;
}

static int get_uint(struct ctx *c, const config_setting_t *g, const char *name, uint64_t min,
                    uint64_t max, uint64_t *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);
    long long v;

    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return fail(c, s, "must be an integer");
    v = config_setting_get_int64(s);
    if (v < 0 || (uint64_t)v < min || (uint64_t)v > max)
        return fail(c, s, "must be between %llu and %llu, not %lld", (unsigned long long)min,
                    (unsigned long long)max, v);
    *out = (uint64_t)v;
    return 1;
}

/* One of the names in choices (NULL-terminated); *out is its index. */
static int get_choice(struct ctx *c, const config_setting_t *g, const char *name,
                      const char *const *choices, int *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);
    const char *v;
    char list[128] = "";
    size_t used = 0;
    int rc;

    if (s == NULL)
        return 0;
    if ((rc = str_value(c, s, &v)) < 0)
        return rc;
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *out = i;
            return 1;
        }
        if (used < sizeof list) {
            int w =
                snprintf(list + used, sizeof list - used, "%s\"%s\"", i ? " or " : "", choices[i]);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return fail(c, s, "must be %s, not \"%s\"", list, v);
}

static int get_group(struct ctx *c, const config_setting_t *g, const char *name,
                     const config_setting_t **out)
{
    const config_setting_t *s = config_setting_get_member(g, name);

    if (s == NULL)
        return 0;
    if (!config_setting_is_group(s))
        return fail(c, s, "must be a group { ... }");
    *out = s;
    return 1;
}

/* A list ( ... ) of groups { ... }. */
static int get_group_list(struct ctx *c, const config_setting_t *g, const char *name,
                          const config_setting_t **out)
{
    const config_setting_t *s = config_setting_get_member(g, name);

    if (s == NULL)
        return 0;
    if (!config_setting_is_list(s) &&
        !(config_setting_is_array(s) && config_setting_length(s) == 0))
        return fail(c, s, "must be a list ( { ... }, ... )");
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(e))
            return fail(c, e, "each element must be a group { ... }");
    }
    *out = s;
    return 1;
}

/* ---- syntax checks: NULL when fine, else the reason ---------------------- */

/* RFC 1035 2.3.1 / RFC 1123 2.1 host name: LDH labels of 1..63, <= 253. */
static const char *domain_problem(const char *d)
{
    size_t len = strlen(d), label = 0;

    if (len > 253)
        return "is longer than 253 characters";
    if (d[len - 1] == '.')
        return "must not end with a dot";
    for (const char *p = d;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0)
                return "has an empty label";
            if (p[-1] == '-')
                return "has a label ending with a hyphen";
            if (*p == '\0')
                return NULL;
            label = 0;
            continue;
        }
        if (!is_alnum((unsigned char)*p) && *p != '-')
            return "may hold only letters, digits, hyphens and dots (write IDNs as xn--)";
        if (label == 0 && *p == '-')
            return "has a label starting with a hyphen";
        if (++label > 63)
            return "has a label longer than 63 characters";
    }
}

/* A user name is a Maildir path component: [a-z0-9._-], no leading dot. */
static const char *user_problem(const char *n)
{
    if (strlen(n) > 64)
        return "is longer than 64 characters (RFC 5321 4.5.3.1.1)";
    if (n[0] == '.')
        return "must not start with a dot";
    for (const char *p = n; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
              *p == '-'))
            return "may hold only a-z, 0-9, '.', '_' and '-'";
    return NULL;
}

/* RFC 5322 3.2.3 dot-atom local part (quoted local parts are not supported). */
static const char *local_problem(const char *s, size_t len)
{
    if (len == 0)
        return "has an empty local part";
    if (len > 64)
        return "has a local part longer than 64 characters (RFC 5321 4.5.3.1.1)";
    if (s[0] == '.' || s[len - 1] == '.')
        return "has a local part starting or ending with a dot";
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.' && s[i + 1] == '.')
            return "has two dots in a row in the local part";
        if (!is_alnum((unsigned char)s[i]) && s[i] != '.' &&
            strchr("!#$%&'*+-/=?^_`{|}~", s[i]) == NULL)
            return "has a character not allowed in a dot-atom local part";
    }
    return NULL;
}

/* ---- the parts of the configuration ------------------------------------- */

static const struct pst_user_conf *find_user(const struct pst_conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->nusers; i++)
        if (ascii_casecmp(conf->users[i].name, name) == 0)
            return &conf->users[i];
    return NULL;
}

static int parse_hostname(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    const config_setting_t *s = config_setting_get_member(root, "hostname");
    const char *v, *why;
    char host[HOST_NAME_MAX + 1];
    int rc;

    if (s != NULL) {
        if ((rc = str_value(c, s, &v)) < 0)
            return rc;
        if ((why = domain_problem(v)) != NULL)
            return fail(c, s, "\"%s\" %s", v, why);
    } else {
        if (gethostname(host, sizeof host) != 0)
            return fail_at(c, 0, "hostname: not set and gethostname() failed: %s", strerror(errno));
        host[sizeof host - 1] = '\0';
        if (host[0] == '\0' || domain_problem(host) != NULL)
            return fail_at(c, 0,
                           "hostname: not set and the system name \"%s\" is not a host name; "
                           "set hostname",
                           host);
        v = host;
    }
    if ((rc = dup_str(c, v, &conf->hostname)) < 0)
        return rc;
    to_lower(conf->hostname);
    return 0;
}

static int parse_paths(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    const config_setting_t *s;
    const char *v;
    int rc;

    if ((rc = dup_str(c, DEFAULT_SPOOL, &conf->spool)) < 0 ||
        (rc = dup_str(c, DEFAULT_MAIL_ROOT, &conf->mail_root)) < 0)
        return rc;
    if ((rc = get_str_dup(c, root, "spool", &conf->spool)) < 0 ||
        (rc = get_str_dup(c, root, "mail_root", &conf->mail_root)) < 0)
        return rc;
    if ((rc = get_str(c, root, "run_as", &v)) < 0)
        return rc;
    if (rc > 0) {
        /* POSIX portable user name characters; no ':' or '/' surprises */
        s = config_setting_get_member(root, "run_as");
        if (v[0] == '-')
            return fail(c, s, "must not start with '-'");
        for (const char *p = v; *p != '\0'; p++)
            if (!is_alnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
                return fail(c, s, "\"%s\" is not a user name", v);
        if ((rc = dup_str(c, v, &conf->run_user)) < 0)
            return rc;
    }
    return 0;
}

static int parse_log(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"target", "debug", NULL};
    static const char *const targets[] = {"stderr", "syslog", NULL};
    const config_setting_t *g = NULL;
    int rc, target = 0;

    conf->log_target = PST_LOG_STDERR;
    conf->log_debug = 0;
    if ((rc = get_group(c, root, "log", &g)) <= 0)
        return rc;
    if ((rc = check_keys(c, g, keys)) < 0 ||
        (rc = get_choice(c, g, "target", targets, &target)) < 0 ||
        (rc = get_bool(c, g, "debug", &conf->log_debug)) < 0)
        return rc;
    conf->log_target = target == 1 ? PST_LOG_SYSLOG : PST_LOG_STDERR;
    return 0;
}

static int join_path(struct ctx *c, const char *dir, const char *name, char **out)
{
    size_t len = strlen(dir);
    const char *sep = len > 0 && dir[len - 1] == '/' ? "" : "/";
    size_t n = len + strlen(sep) + strlen(name) + 1;
    char *p = malloc(n);

    if (p == NULL)
        return oom(c);
    snprintf(p, n, "%s%s%s", dir, sep, name);
    free(*out);
    *out = p;
    return 0;
}

static int parse_tls(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"certificate", "key", "generate", NULL};
    const config_setting_t *g = NULL;
    int rc, have_cert, have_key;

    conf->tls_generate = 0;
    if ((rc = get_group(c, root, "tls", &g)) <= 0)
        return rc;
    if ((rc = check_keys(c, g, keys)) < 0 ||
        (rc = have_cert = get_str_dup(c, g, "certificate", &conf->tls_cert)) < 0 ||
        (rc = have_key = get_str_dup(c, g, "key", &conf->tls_key)) < 0 ||
        (rc = get_bool(c, g, "generate", &conf->tls_generate)) < 0)
        return rc;
    if (have_cert != have_key)
        return fail(c, g, "certificate and key go together: set both or neither");
    if (!have_cert && conf->tls_generate) {
        /* the generated pair's home when no paths are given */
        char *dir = NULL;
        if ((rc = join_path(c, conf->spool, "tls", &dir)) < 0)
            return rc;
        if ((rc = join_path(c, dir, "cert.pem", &conf->tls_cert)) == 0)
            rc = join_path(c, dir, "key.pem", &conf->tls_key);
        free(dir);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_domains(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    const config_setting_t *s = config_setting_get_member(root, "domains");
    size_t n;

    if (s == NULL)
        return fail_at(c, 0, "domains: required (the local mail domains)");
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return fail(c, s, "must be a list of strings [ \"example.org\", ... ]");
    n = (size_t)config_setting_length(s);
    if (n == 0)
        return fail(c, s, "needs at least one domain");
    conf->domains = calloc(n, sizeof *conf->domains);
    if (conf->domains == NULL)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *v, *why;
        char *d = NULL;
        int rc;

        if ((rc = str_value(c, e, &v)) < 0)
            return rc;
        if ((why = domain_problem(v)) != NULL)
            return fail(c, e, "domain \"%s\" %s", v, why);
        if ((rc = dup_str(c, v, &d)) < 0)
            return rc;
        to_lower(d);
        for (size_t j = 0; j < conf->ndomains; j++) {
            if (strcmp(conf->domains[j], d) == 0) {
                free(d);
                return fail(c, e, "duplicate domain \"%s\"", v);
            }
        }
        conf->domains[conf->ndomains++] = d;
    }
    return 0;
}

struct addr {
    int family;
    unsigned char bytes[16];
};

static int parse_listener(struct ctx *c, const config_setting_t *g, const struct pst_conf *conf,
                          struct pst_listener_conf *l, struct addr *a)
{
    static const char *const keys[] = {"address", "port", "path", "mode", "starttls", NULL};
    static const char *const modes[] = {"smtp", "tls", "submission", "submissions", "local", NULL};
    const int have_tls = conf->tls_cert != NULL && conf->tls_key != NULL;
    const config_setting_t *s;
    const char *v;
    uint64_t port;
    int rc, mode = 0, starttls = have_tls;

    if ((rc = check_keys(c, g, keys)) < 0)
        return rc;
    if ((rc = get_choice(c, g, "mode", modes, &mode)) < 0)
        return rc;
    memset(a, 0, sizeof *a);
    if (mode == 4) {
        /* local submission on a unix socket */
        if (config_setting_get_member(g, "address") || config_setting_get_member(g, "port") ||
            config_setting_get_member(g, "starttls"))
            return fail(c, g, "mode \"local\" takes a path, not an address, port or starttls");
        if ((rc = get_str(c, g, "path", &v)) < 0)
            return rc;
        if (rc == 0 || v[0] != '/' || strlen(v) >= 100)
            return fail(c, g, "mode \"local\" needs an absolute socket path (under 100 bytes)");
        l->mode = PST_LISTEN_UNIX;
        a->family = AF_UNIX;
        return dup_str(c, v, &l->path);
    }
    if (config_setting_get_member(g, "path"))
        return fail(c, config_setting_get_member(g, "path"), "only for mode \"local\"");
    if ((rc = get_str(c, g, "address", &v)) < 0)
        return rc;
    if (rc == 0)
        return fail(c, g, "listener needs an address (\"0.0.0.0\", \"::\", ...)");
    if (inet_pton(AF_INET, v, a->bytes) == 1)
        a->family = AF_INET;
    else if (inet_pton(AF_INET6, v, a->bytes) == 1)
        a->family = AF_INET6;
    else
        return fail(c, config_setting_get_member(g, "address"),
                    "\"%s\" is not a numeric IPv4 or IPv6 address", v);
    if ((rc = dup_str(c, v, &l->address)) < 0)
        return rc;
    if ((rc = get_uint(c, g, "port", 1, 65535, &port)) < 0)
        return rc;
    if (rc == 0)
        return fail(c, g, "listener needs a port");
    l->port = (int)port;
    l->mode = (mode == 1 || mode == 3) ? PST_LISTEN_TLS : PST_LISTEN_SMTP;
    l->submission = mode == 2 || mode == 3;
    s = config_setting_get_member(g, "starttls");
    if (s != NULL && l->mode == PST_LISTEN_TLS)
        return fail(c, s, "applies only to mode \"smtp\" (mode \"tls\" is TLS from the start)");
    if (s != NULL && mode == 2)
        return fail(c, s, "mode \"submission\" always offers STARTTLS (AUTH needs it)");
    if ((rc = get_bool(c, g, "starttls", &starttls)) < 0)
        return rc;
    l->starttls = l->mode == PST_LISTEN_SMTP && (starttls || mode == 2);
    if (!have_tls && l->mode == PST_LISTEN_TLS) {
        s = config_setting_get_member(g, "mode");
        return fail(c, s, "mode \"%s\" needs tls.certificate and tls.key (or tls.generate)",
                    modes[mode]);
    }
    if (!have_tls && l->starttls)
        return fail(c, s ? s : g, "%s needs tls.certificate and tls.key (or tls.generate)",
                    mode == 2 ? "mode \"submission\"" : "starttls");
    return 0;
}

static int parse_listeners(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    const config_setting_t *list = NULL;
    struct addr *addrs;
    size_t n;
    int rc;

    if ((rc = get_group_list(c, root, "listeners", &list)) < 0)
        return rc;
    if (rc == 0)
        return fail_at(c, 0, "listeners: required (where to accept SMTP connections)");
    n = (size_t)config_setting_length(list);
    if (n == 0)
        return fail(c, list, "needs at least one listener");
    conf->listeners = calloc(n, sizeof *conf->listeners);
    addrs = calloc(n, sizeof *addrs);
    if (conf->listeners == NULL || addrs == NULL) {
        free(addrs);
        return oom(c);
    }
    for (size_t i = 0; i < n && rc >= 0; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct pst_listener_conf *l = &conf->listeners[i];

        conf->nlisteners++; /* counted before filling, so free() sees it */
        if ((rc = parse_listener(c, g, conf, l, &addrs[i])) < 0)
            break;
        for (size_t j = 0; j < i; j++) {
            if (addrs[i].family == AF_UNIX) {
                if (addrs[j].family == AF_UNIX && strcmp(conf->listeners[j].path, l->path) == 0) {
                    rc = fail(c, g, "duplicate listener %s", l->path);
                    break;
                }
                continue;
            }
            if (addrs[j].family == addrs[i].family && conf->listeners[j].port == l->port &&
                memcmp(addrs[j].bytes, addrs[i].bytes, sizeof addrs[i].bytes) == 0) {
                rc = fail(c, g, "duplicate listener %s port %d (also on line %u)", l->address,
                          l->port,
                          config_setting_source_line(config_setting_get_elem(list, (unsigned)j)));
                break;
            }
        }
    }
    free(addrs);
    return rc < 0 ? rc : 0;
}

static int parse_users(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"name", "maildir", NULL};
    const config_setting_t *list = NULL;
    size_t n;
    int rc;

    if ((rc = get_group_list(c, root, "users", &list)) < 0)
        return rc;
    if (rc == 0)
        return fail_at(c, 0, "users: required (at least the postmaster)");
    n = (size_t)config_setting_length(list);
    if (n == 0)
        return fail(c, list, "needs at least one user (the postmaster)");
    conf->users = calloc(n, sizeof *conf->users);
    if (conf->users == NULL)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct pst_user_conf *u = &conf->users[i];
        const char *name, *why;

        if ((rc = check_keys(c, g, keys)) < 0 || (rc = get_str(c, g, "name", &name)) < 0)
            return rc;
        if (rc == 0)
            return fail(c, g, "user needs a name");
        if ((why = user_problem(name)) != NULL)
            return fail(c, config_setting_get_member(g, "name"), "\"%s\" %s", name, why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(conf->users[j].name, name) == 0)
                return fail(c, config_setting_get_member(g, "name"),
                            "duplicate user \"%s\" (also on line %u)", name,
                            config_setting_source_line(config_setting_get_elem(list, (unsigned)j)));
        conf->nusers++;
        if ((rc = dup_str(c, name, &u->name)) < 0 ||
            (rc = get_str_dup(c, g, "maildir", &u->maildir)) < 0)
            return rc;
        if (rc == 0 && (rc = join_path(c, conf->mail_root, name, &u->maildir)) < 0)
            return rc;
    }
    return 0;
}

/* postmaster (required) and catchall (optional): names of defined users. */
static int parse_user_ref(struct ctx *c, const config_setting_t *root, struct pst_conf *conf,
                          const char *key, int required, char **out)
{
    const char *v;
    int rc = get_str(c, root, key, &v);

    if (rc < 0)
        return rc;
    if (rc == 0)
        return required ? fail_at(c, 0, "%s: required (a user defined in users)", key) : 0;
    if (find_user(conf, v) == NULL || user_problem(v) != NULL)
        return fail(c, config_setting_get_member(root, key),
                    "\"%s\" is not a user defined in users", v);
    return dup_str(c, v, out);
}

static int parse_alias(struct ctx *c, const config_setting_t *g, const struct pst_conf *conf,
                       struct pst_alias_conf *a)
{
    static const char *const keys[] = {"from", "to", NULL};
    const config_setting_t *sfrom = config_setting_get_member(g, "from");
    const char *from, *to, *at, *why;
    size_t llen;
    int rc;

    if ((rc = check_keys(c, g, keys)) < 0 || (rc = get_str(c, g, "from", &from)) < 0)
        return rc;
    if (rc == 0)
        return fail(c, g, "alias needs from (\"local\" or \"local@domain\")");
    if ((rc = get_str(c, g, "to", &to)) < 0)
        return rc;
    if (rc == 0)
        return fail(c, g, "alias needs to (a user name)");
    at = strchr(from, '@');
    llen = at != NULL ? (size_t)(at - from) : strlen(from);
    if ((why = local_problem(from, llen)) != NULL)
        return fail(c, sfrom, "\"%s\" %s", from, why);
    if (at != NULL) {
        if (strchr(at + 1, '@') != NULL || at[1] == '\0')
            return fail(c, sfrom, "\"%s\" must be \"local\" or \"local@domain\"", from);
        if (!pst_conf_is_local_domain(conf, at + 1))
            return fail(c, sfrom, "\"%s\": %s is not one of the domains", from, at + 1);
    }
    if ((rc = dup_str(c, from, &a->from)) < 0)
        return rc;
    to_lower(a->from);
    /* pst_conf_rcpt answers postmaster first: such an alias would never apply */
    if (strncmp(a->from, "postmaster", 10) == 0 && (a->from[10] == '\0' || a->from[10] == '@'))
        return fail(c, sfrom, "postmaster is routed by the postmaster setting");
    if (find_user(conf, to) == NULL || user_problem(to) != NULL)
        return fail(c, config_setting_get_member(g, "to"), "\"%s\" is not a user defined in users",
                    to);
    return dup_str(c, to, &a->to);
}

static int parse_aliases(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    const config_setting_t *list = NULL;
    size_t n;
    int rc;

    if ((rc = get_group_list(c, root, "aliases", &list)) <= 0)
        return rc;
    n = (size_t)config_setting_length(list);
    if (n == 0)
        return 0;
    conf->aliases = calloc(n, sizeof *conf->aliases);
    if (conf->aliases == NULL)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);

        conf->naliases++;
        if ((rc = parse_alias(c, g, conf, &conf->aliases[i])) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(conf->aliases[j].from, conf->aliases[i].from) == 0)
                return fail(c, config_setting_get_member(g, "from"),
                            "duplicate alias \"%s\" (also on line %u)", conf->aliases[i].from,
                            config_setting_source_line(config_setting_get_elem(list, (unsigned)j)));
    }
    return 0;
}

/* The integer settings of the limits and timeouts groups, with defaults. */
struct num_key {
    const char *name;
    uint64_t def, min, max;
    size_t off;
    size_t size; /* sizeof the field: unsigned or uint64_t */
};

#define NUM(name, def, min, max, field)                                                            \
    {                                                                                              \
        name, def, min, max, offsetof(struct pst_conf, field),                                     \
            sizeof(((struct pst_conf *)0)->field)                                                  \
    }

static const struct num_key limit_keys[] = {
    NUM("message_size", 26214400, 1024, 2147483648ULL, message_size),
    NUM("recipients", 100, 1, 10000, max_recipients), /* RFC 5321 4.5.3.1.8: >= 100 */
    /* RFC 5321 4.5.3.1.4 says 512, but the DSN parameters posternd offers
     * make MAIL and RCPT lines longer (RFC 3461 5.4: 1036 at least), and
     * AUTH PLAIN lines are up to PST_SASL_MAX_LINE */
    NUM("line_length", 2048, 1036, 65536, line_length),
    NUM("bad_commands", 20, 1, 1000, max_bad_commands),
    NUM("sessions", 1000, 1, 100000, max_sessions),
    NUM("sessions_per_ip", 50, 1, 100000, max_sessions_per_ip),
};

static const struct num_key timeout_keys[] = {
    NUM("command", 300, 1, 3600, timeout_command), /* RFC 5321 4.5.3.2.7 */
    NUM("data", 180, 1, 3600, timeout_data),       /* RFC 5321 4.5.3.2.6 */
    NUM("tls_handshake", 30, 1, 600, timeout_tls),
    NUM("shutdown_grace", 30, 0, 3600, shutdown_grace),
    NUM("retry", 300, 1, 86400, retry_interval),
};

static void set_num(struct pst_conf *conf, const struct num_key *k, uint64_t v)
{
    char *field = (char *)conf + k->off;

    if (k->size == sizeof(uint64_t)) {
        memcpy(field, &v, sizeof v);
    } else {
        unsigned u = (unsigned)v;
        memcpy(field, &u, sizeof u);
    }
}

/* Group name: the integer keys plus extra (NULL-terminated) other keys. */
static int parse_numbers(struct ctx *c, const config_setting_t *root, struct pst_conf *conf,
                         const char *group, const struct num_key *keys, size_t nkeys,
                         const char *extra, const config_setting_t **gout)
{
    const char *names[16];
    const config_setting_t *g = NULL;
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < nkeys; i++)
        set_num(conf, &keys[i], keys[i].def);
    if ((rc = get_group(c, root, group, &g)) < 0)
        return rc;
    *gout = g;
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < nkeys && n < 14; i++)
        names[n++] = keys[i].name;
    if (extra != NULL)
        names[n++] = extra;
    names[n] = NULL;
    if ((rc = check_keys(c, g, names)) < 0)
        return rc;
    for (size_t i = 0; i < nkeys; i++) {
        uint64_t v;
        if ((rc = get_uint(c, g, keys[i].name, keys[i].min, keys[i].max, &v)) < 0)
            return rc;
        if (rc > 0)
            set_num(conf, &keys[i], v);
    }
    return 0;
}

static int parse_limits(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const eols[] = {"reject", "normalize", NULL};
    const config_setting_t *g = NULL;
    int rc, eol = 0;

    conf->bare_eol = PST_BARE_EOL_REJECT;
    if ((rc = parse_numbers(c, root, conf, "limits", limit_keys,
                            sizeof limit_keys / sizeof limit_keys[0], "bare_eol", &g)) < 0)
        return rc;
    if (g != NULL && (rc = get_choice(c, g, "bare_eol", eols, &eol)) < 0)
        return rc;
    conf->bare_eol = eol == 1 ? PST_BARE_EOL_NORMALIZE : PST_BARE_EOL_REJECT;
    return 0;
}

static int parse_timeouts(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    const config_setting_t *g = NULL;

    return parse_numbers(c, root, conf, "timeouts", timeout_keys,
                         sizeof timeout_keys / sizeof timeout_keys[0], NULL, &g);
}

/* dns = { server = "ADDR[:PORT]"; trust_anchor = "FILE"; timeout = 5; }; */
static int parse_dns(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"server", "trust_anchor", "timeout", NULL};
    const config_setting_t *g = NULL;
    const char *v;
    uint64_t t;
    int rc;

    conf->dns_timeout = 5;
    if ((rc = get_group(c, root, "dns", &g)) <= 0)
        return rc;
    if ((rc = check_keys(c, g, keys)) < 0 || (rc = get_str(c, g, "server", &v)) < 0)
        return rc;
    if (rc > 0) {
        char addr[64];
        unsigned port;
        if (pst_resolver_server_parse(v, addr, sizeof addr, &port) != 0)
            return fail(c, config_setting_get_member(g, "server"),
                        "\"%s\" is not ADDR[:PORT] (a numeric IPv4 or IPv6 address; IPv6 "
                        "with a port in brackets, \"[::1]:53\")",
                        v);
        if ((rc = dup_str(c, v, &conf->dns_server)) < 0)
            return rc;
    }
    if ((rc = get_str_dup(c, g, "trust_anchor", &conf->dns_trust_anchor)) < 0 ||
        (rc = get_uint(c, g, "timeout", 1, 300, &t)) < 0)
        return rc;
    if (rc > 0)
        conf->dns_timeout = (unsigned)t;
    return 0;
}

/* One dkim.sign entry: { domain; selector; key; } */
static int parse_dkim_key(struct ctx *c, const config_setting_t *g, struct pst_dkim_key_conf *k)
{
    static const char *const keys[] = {"domain", "selector", "key", NULL};
    const char *v, *why;
    int rc;

    if ((rc = check_keys(c, g, keys)) < 0)
        return rc;
    if ((rc = get_str(c, g, "domain", &v)) <= 0)
        return rc < 0 ? rc : fail(c, g, "domain: required");
    if ((why = domain_problem(v)) != NULL)
        return fail(c, config_setting_get_member(g, "domain"), "domain \"%s\" %s", v, why);
    if ((rc = dup_str(c, v, &k->domain)) < 0)
        return rc;
    to_lower(k->domain);
    if ((rc = get_str(c, g, "selector", &v)) <= 0)
        return rc < 0 ? rc : fail(c, g, "selector: required");
    /* RFC 6376 3.1: a selector is one or more sub-domain labels */
    if ((why = domain_problem(v)) != NULL)
        return fail(c, config_setting_get_member(g, "selector"), "selector \"%s\" %s", v, why);
    if ((rc = dup_str(c, v, &k->selector)) < 0)
        return rc;
    if ((rc = get_str(c, g, "key", &v)) <= 0)
        return rc < 0 ? rc : fail(c, g, "key: required (the private key file)");
    return dup_str(c, v, &k->key_file);
}

/* dkim = { verify = true; max_signatures = 5; sign = ( { ... }, ... ); }; */
static int parse_dkim(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"verify", "max_signatures", "sign", NULL};
    const config_setting_t *g = NULL, *list = NULL;
    uint64_t n64;
    int rc;

    conf->dkim_verify = 1;
    conf->dkim_max_sigs = 5;
    if ((rc = get_group(c, root, "dkim", &g)) <= 0)
        return rc;
    if ((rc = check_keys(c, g, keys)) < 0 ||
        (rc = get_bool(c, g, "verify", &conf->dkim_verify)) < 0 ||
        (rc = get_uint(c, g, "max_signatures", 1, 64, &n64)) < 0)
        return rc;
    if (rc > 0)
        conf->dkim_max_sigs = (unsigned)n64;
    if ((rc = get_group_list(c, g, "sign", &list)) <= 0)
        return rc;
    size_t n = (size_t)config_setting_length(list);
    if (n == 0)
        return 0;
    conf->dkim_keys = calloc(n, sizeof *conf->dkim_keys);
    if (conf->dkim_keys == NULL)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        conf->ndkim_keys++;
        if ((rc = parse_dkim_key(c, e, &conf->dkim_keys[i])) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(conf->dkim_keys[j].domain, conf->dkim_keys[i].domain) == 0 &&
                strcmp(conf->dkim_keys[j].selector, conf->dkim_keys[i].selector) == 0)
                return fail(c, e, "duplicate key %s._domainkey.%s", conf->dkim_keys[i].selector,
                            conf->dkim_keys[i].domain);
    }
    return 0;
}

/* delivery = { concurrency; destination_concurrency; retry_initial;
 *   retry_max; retry_factor; lifetime; delay_warning; port; families;
 *   ca_file; connect_timeout; command_timeout; relayhost; relay_tls;
 *   relay_user; relay_password_file; }; */
static int parse_delivery(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"concurrency",
                                       "destination_concurrency",
                                       "retry_initial",
                                       "retry_max",
                                       "retry_factor",
                                       "lifetime",
                                       "delay_warning",
                                       "port",
                                       "families",
                                       "ca_file",
                                       "connect_timeout",
                                       "command_timeout",
                                       "relayhost",
                                       "relay_tls",
                                       "relay_user",
                                       "relay_password_file",
                                       NULL};
    static const char *const fams[] = {"both", "ipv4", "ipv6", NULL};
    static const char *const tlss[] = {"starttls", "tls", "may", NULL};
    const config_setting_t *g = NULL;
    uint64_t v;
    int rc, fam = 0;

    conf->out_concurrency = 20;
    conf->out_dest_concurrency = 10;
    pst_backoff_default(&conf->backoff);
    conf->out_port = 25;
    conf->out_families = PST_ROUTE_INET4 | PST_ROUTE_INET6;
    conf->out_connect_timeout = 30;
    conf->out_command_timeout = 300;
    if ((rc = get_group(c, root, "delivery", &g)) <= 0)
        return rc;
    if ((rc = check_keys(c, g, keys)) < 0)
        return rc;
    struct {
        const char *name;
        uint64_t min, max;
        void *dst;
        int kind; /* 0 unsigned, 1 int64, 2 uint16 */
    } nums[] = {
        {"concurrency", 1, 1000, &conf->out_concurrency, 0},
        {"destination_concurrency", 1, 1000, &conf->out_dest_concurrency, 0},
        {"retry_initial", 1, 86400, &conf->backoff.initial, 1},
        {"retry_max", 1, 7 * 86400, &conf->backoff.max, 1},
        {"lifetime", 1, 100 * 86400, &conf->backoff.lifetime, 1},
        {"delay_warning", 0, 100 * 86400, &conf->backoff.warn, 1},
        {"port", 1, 65535, &conf->out_port, 2},
        {"connect_timeout", 1, 3600, &conf->out_connect_timeout, 0},
        {"command_timeout", 1, 3600, &conf->out_command_timeout, 0},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        if ((rc = get_uint(c, g, nums[i].name, nums[i].min, nums[i].max, &v)) < 0)
            return rc;
        if (rc == 0)
            continue;
        if (nums[i].kind == 0)
            *(unsigned *)nums[i].dst = (unsigned)v;
        else if (nums[i].kind == 1)
            *(int64_t *)nums[i].dst = (int64_t)v;
        else
            *(uint16_t *)nums[i].dst = (uint16_t)v;
    }
    if ((rc = get_uint(c, g, "retry_factor", 1, 16, &v)) < 0)
        return rc;
    if (rc > 0)
        conf->backoff.factor = (double)v;
    if (conf->backoff.max < conf->backoff.initial)
        return fail(c, config_setting_get_member(g, "retry_max"),
                    "must not be shorter than retry_initial");
    if ((rc = get_choice(c, g, "families", fams, &fam)) < 0)
        return rc;
    conf->out_families = fam == 1   ? PST_ROUTE_INET4
                         : fam == 2 ? PST_ROUTE_INET6
                                    : PST_ROUTE_INET4 | PST_ROUTE_INET6;
    if ((rc = get_str_dup(c, g, "ca_file", &conf->out_ca_file)) < 0 ||
        (rc = get_choice(c, g, "relay_tls", tlss, &conf->relay_tls)) < 0 ||
        (rc = get_str_dup(c, g, "relay_user", &conf->relay_user)) < 0 ||
        (rc = get_str_dup(c, g, "relay_password_file", &conf->relay_password_file)) < 0)
        return rc;
    const char *relay;
    if ((rc = get_str(c, g, "relayhost", &relay)) < 0)
        return rc;
    if (rc > 0) {
        struct pst_route_relay r;
        char why[256];
        if (pst_route_relay_parse(relay, &r, why, sizeof why) != 0)
            return fail(c, config_setting_get_member(g, "relayhost"), "\"%s\": %s", relay, why);
        if ((rc = dup_str(c, relay, &conf->relayhost)) < 0)
            return rc;
    }
    if ((conf->relay_user == NULL) != (conf->relay_password_file == NULL))
        return fail(c, g, "relay_user and relay_password_file go together");
    return 0;
}

/* submission = { users = "/etc/postern/users"; auth_max_failures = 5;
 *                auth_window = 600; }; */
static int parse_submission(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"users", "auth_max_failures", "auth_window", NULL};
    const config_setting_t *g = NULL;
    uint64_t v;
    int rc;

    conf->auth_max_failures = 5;
    conf->auth_window = 600;
    for (size_t i = 0; i < conf->nlisteners; i++)
        if (conf->listeners[i].submission)
            conf->has_submission = 1;
    if ((rc = get_group(c, root, "submission", &g)) < 0)
        return rc;
    if (rc > 0) {
        if ((rc = check_keys(c, g, keys)) < 0 ||
            (rc = get_str_dup(c, g, "users", &conf->users_file)) < 0)
            return rc;
        if ((rc = get_uint(c, g, "auth_max_failures", 1, 1000, &v)) < 0)
            return rc;
        if (rc > 0)
            conf->auth_max_failures = (unsigned)v;
        if ((rc = get_uint(c, g, "auth_window", 1, 86400, &v)) < 0)
            return rc;
        if (rc > 0)
            conf->auth_window = (unsigned)v;
    }
    if (conf->users_file == NULL)
        return dup_str(c, PST_SYSCONFDIR "/users", &conf->users_file);
    return 0;
}

/* spf = { verify = true; }; */
static int parse_spf(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"verify", NULL};
    const config_setting_t *g = NULL;
    int rc;

    conf->spf_verify = 1;
    if ((rc = get_group(c, root, "spf", &g)) <= 0)
        return rc;
    if ((rc = check_keys(c, g, keys)) < 0 || (rc = get_bool(c, g, "verify", &conf->spf_verify)) < 0)
        return rc;
    return 0;
}

/* dmarc = { verify = true; reject = "reject"; temperror = "defer";
 *           org_domain = "treewalk"; psl_file = "..."; }; */
static int parse_dmarc(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"verify",     "reject",   "temperror",
                                       "org_domain", "psl_file", NULL};
    static const char *const rejects[] = {"reject", "quarantine", NULL};
    static const char *const temps[] = {"defer", "accept", NULL};
    static const char *const orgs[] = {"treewalk", "psl", NULL};
    const config_setting_t *g = NULL;
    int rc;

    conf->dmarc_verify = 1;
    if ((rc = get_group(c, root, "dmarc", &g)) <= 0)
        return rc;
    if ((rc = check_keys(c, g, keys)) < 0 ||
        (rc = get_bool(c, g, "verify", &conf->dmarc_verify)) < 0 ||
        (rc = get_choice(c, g, "reject", rejects, &conf->dmarc_reject_quarantine)) < 0 ||
        (rc = get_choice(c, g, "temperror", temps, &conf->dmarc_temperror_accept)) < 0 ||
        (rc = get_choice(c, g, "org_domain", orgs, &conf->dmarc_psl)) < 0 ||
        (rc = get_str_dup(c, g, "psl_file", &conf->psl_file)) < 0)
        return rc;
    return 0;
}

/* auth = { authserv_id = "mx.example.org"; allow = [ "192.0.2.0/24" ];
 *          store = "/var/lib/postern/auth.sqlite" | false; }; */
static int parse_auth(struct ctx *c, const config_setting_t *root, struct pst_conf *conf)
{
    static const char *const keys[] = {"authserv_id", "allow", "store", NULL};
    const config_setting_t *g = NULL;
    const char *v;
    int rc;

    if ((rc = get_group(c, root, "auth", &g)) < 0)
        return rc;
    if (rc > 0 && (rc = check_keys(c, g, keys)) < 0)
        return rc;
    if (g != NULL && (rc = get_str(c, g, "authserv_id", &v)) < 0)
        return rc;
    if (g != NULL && rc > 0) {
        /* RFC 8601 2.5: authserv-id is a value; postern writes it bare */
        const char *why = domain_problem(v);
        if (why != NULL)
            return fail(c, config_setting_get_member(g, "authserv_id"), "\"%s\" %s", v, why);
        if ((rc = dup_str(c, v, &conf->authserv_id)) < 0)
            return rc;
    } else if ((rc = dup_str(c, conf->hostname, &conf->authserv_id)) < 0) {
        return rc;
    }
    if (g == NULL) {
        return join_path(c, conf->spool, "auth.sqlite", &conf->auth_store);
    }
    /* store = "FILE", or false: results are not kept */
    const config_setting_t *st = config_setting_get_member(g, "store");
    if (st != NULL && config_setting_type(st) == CONFIG_TYPE_BOOL) {
        if (config_setting_get_bool(st))
            return fail(c, st, "must be a file name, or false (results are not kept)");
        rc = 0;
    } else if ((rc = get_str(c, g, "store", &v)) < 0) {
        return rc;
    } else if (rc == 0) {
        rc = join_path(c, conf->spool, "auth.sqlite", &conf->auth_store);
    } else {
        rc = dup_str(c, v, &conf->auth_store);
    }
    if (rc < 0)
        return rc;
    const config_setting_t *a = config_setting_get_member(g, "allow");
    if (a == NULL)
        return 0;
    if (!config_setting_is_array(a) && !config_setting_is_list(a))
        return fail(c, a, "must be a list of addresses or prefixes [ \"192.0.2.0/24\", ... ]");
    size_t n = (size_t)config_setting_length(a);
    if (n == 0)
        return 0;
    conf->auth_allow = calloc(n, sizeof *conf->auth_allow);
    if (conf->auth_allow == NULL)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(a, (unsigned)i);
        if ((rc = str_value(c, e, &v)) < 0)
            return rc;
        if (pst_cidr_parse(v, &conf->auth_allow[i]) != 0)
            return fail(c, e, "\"%s\" is not an address or prefix (ADDR or ADDR/BITS)", v);
        conf->nauth_allow++;
    }
    return 0;
}

static struct pst_conf *build(struct ctx *c, const config_t *cfg)
{
    static const char *const top_keys[] = {
        "hostname",  "spool",    "mail_root",  "run_as",     "log",      "tls",
        "listeners", "domains",  "users",      "postmaster", "catchall", "aliases",
        "limits",    "timeouts", "dns",        "dkim",       "spf",      "dmarc",
        "auth",      "delivery", "submission", NULL};
    const config_setting_t *root = config_root_setting(cfg);
    struct pst_conf *conf = calloc(1, sizeof *conf);

    if (conf == NULL) {
        oom(c);
        return NULL;
    }
    if (dup_str(c, c->source, &conf->source) < 0 || check_keys(c, root, top_keys) < 0 ||
        parse_hostname(c, root, conf) < 0 || parse_paths(c, root, conf) < 0 ||
        parse_log(c, root, conf) < 0 || parse_tls(c, root, conf) < 0 ||
        parse_domains(c, root, conf) < 0 || parse_listeners(c, root, conf) < 0 ||
        parse_users(c, root, conf) < 0 ||
        parse_user_ref(c, root, conf, "postmaster", 1, &conf->postmaster) < 0 ||
        parse_user_ref(c, root, conf, "catchall", 0, &conf->catchall) < 0 ||
        parse_aliases(c, root, conf) < 0 || parse_limits(c, root, conf) < 0 ||
        parse_timeouts(c, root, conf) < 0 || parse_dns(c, root, conf) < 0 ||
        parse_dkim(c, root, conf) < 0 || parse_spf(c, root, conf) < 0 ||
        parse_dmarc(c, root, conf) < 0 || parse_auth(c, root, conf) < 0 ||
        parse_delivery(c, root, conf) < 0 || parse_submission(c, root, conf) < 0) {
        pst_conf_free(conf);
        return NULL;
    }
    return conf;
}

/* Checks and parses text (NUL-terminated, from source) into a pst_conf. */
static struct pst_conf *load_text(const char *source, const char *text, char *err, size_t errlen)
{
    struct ctx c = {source, err, errlen};
    struct pst_conf *conf;
    config_t cfg;

    if (prescan(&c, text) < 0)
        return NULL;
    config_init(&cfg);
    if (config_read_string(&cfg, text) != CONFIG_TRUE) {
        fail_at(&c, (unsigned)config_error_line(&cfg), "%s",
                config_error_text(&cfg) ? config_error_text(&cfg) : "cannot parse");
        config_destroy(&cfg);
        return NULL;
    }
    conf = build(&c, &cfg);
    config_destroy(&cfg);
    return conf;
}

/* ---- public functions ---------------------------------------------------- */

struct pst_conf *pst_conf_load_file(const char *path, char *err, size_t errlen)
{
    struct ctx c = {path, err, errlen};
    struct pst_conf *conf = NULL;
    struct pst_buf *b = NULL;
    const char *nul;
    char chunk[4096];
    size_t n;
    FILE *fp;

    if (path == NULL) {
        c.source = "(null)";
        fail_at(&c, 0, "no file name");
        return NULL;
    }
    fp = fopen(path, "r");
    if (fp == NULL) {
        fail_at(&c, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    b = pst_buf_new(PST_CONF_MAX_FILE);
    if (b == NULL) {
        oom(&c);
        goto out;
    }
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        int rc = pst_buf_add(b, chunk, n);
        if (rc == PST_ERR_TOOBIG) {
            fail_at(&c, 0, "larger than %d bytes", PST_CONF_MAX_FILE);
            goto out;
        }
        if (rc < 0) {
            oom(&c);
            goto out;
        }
    }
    if (ferror(fp)) {
        fail_at(&c, 0, "cannot read: %s", strerror(errno));
        goto out;
    }
    nul = memchr(pst_buf_data(b), '\0', pst_buf_len(b));
    if (nul != NULL) {
        unsigned line = 1;
        for (const char *p = pst_buf_data(b); p < nul; p++)
            line += *p == '\n';
        fail_at(&c, line, "NUL byte in the file");
        goto out;
    }
    conf = load_text(path, pst_buf_data(b), err, errlen);
out:
    pst_buf_free(b);
    fclose(fp);
    return conf;
}

struct pst_conf *pst_conf_load_default(char *err, size_t errlen)
{
    return load_text(EMBEDDED_SOURCE, default_text, err, errlen);
}

const char *pst_conf_default_text(void)
{
    return default_text;
}

void pst_conf_free(struct pst_conf *conf)
{
    if (conf == NULL)
        return;
    free(conf->source);
    free(conf->hostname);
    free(conf->spool);
    free(conf->mail_root);
    free(conf->run_user);
    free(conf->tls_cert);
    free(conf->tls_key);
    for (size_t i = 0; i < conf->nlisteners; i++) {
        free(conf->listeners[i].address);
        free(conf->listeners[i].path);
    }
    free(conf->listeners);
    for (size_t i = 0; i < conf->ndomains; i++)
        free(conf->domains[i]);
    free(conf->domains);
    for (size_t i = 0; i < conf->nusers; i++) {
        free(conf->users[i].name);
        free(conf->users[i].maildir);
    }
    free(conf->users);
    for (size_t i = 0; i < conf->naliases; i++) {
        free(conf->aliases[i].from);
        free(conf->aliases[i].to);
    }
    free(conf->aliases);
    free(conf->postmaster);
    free(conf->catchall);
    for (size_t i = 0; i < conf->ndkim_keys; i++) {
        free(conf->dkim_keys[i].domain);
        free(conf->dkim_keys[i].selector);
        free(conf->dkim_keys[i].key_file);
    }
    free(conf->dkim_keys);
    free(conf->psl_file);
    free(conf->users_file);
    free(conf->out_ca_file);
    free(conf->relayhost);
    free(conf->relay_user);
    free(conf->relay_password_file);
    free(conf->authserv_id);
    free(conf->auth_allow);
    free(conf->auth_store);
    free(conf->dns_server);
    free(conf->dns_trust_anchor);
    free(conf);
}

int pst_conf_is_local_domain(const struct pst_conf *conf, const char *domain)
{
    if (conf == NULL || domain == NULL)
        return 0;
    for (size_t i = 0; i < conf->ndomains; i++)
        if (ascii_casecmp(conf->domains[i], domain) == 0)
            return 1;
    return 0;
}

/* Does alias from "local@domain" name local@domain (case-insensitive)? */
static int alias_full_match(const char *from, const char *local, const char *domain)
{
    size_t llen = strlen(local);

    for (size_t i = 0; i < llen; i++)
        if (from[i] == '\0' || lower((unsigned char)from[i]) != lower((unsigned char)local[i]))
            return 0;
    return from[llen] == '@' && ascii_casecmp(from + llen + 1, domain) == 0;
}

enum pst_rcpt_result pst_conf_rcpt(const struct pst_conf *conf, const char *local,
                                   const char *domain, const struct pst_user_conf **user)
{
    const struct pst_user_conf *u = NULL;

    if (conf == NULL || local == NULL || domain == NULL)
        return PST_RCPT_NOUSER;
    if (domain[0] == '\0') {
        /* RFC 5321 4.1.1.3: only <postmaster> may come without a domain */
        if (ascii_casecmp(local, "postmaster") != 0)
            return PST_RCPT_NOUSER;
        u = find_user(conf, conf->postmaster);
        goto found;
    }
    if (!pst_conf_is_local_domain(conf, domain))
        return PST_RCPT_NOTLOCAL;
    /* RFC 5321 4.5.1: postmaster of every domain we accept mail for */
    if (ascii_casecmp(local, "postmaster") == 0) {
        u = find_user(conf, conf->postmaster);
        goto found;
    }
    for (size_t i = 0; i < conf->naliases; i++)
        if (alias_full_match(conf->aliases[i].from, local, domain)) {
            u = find_user(conf, conf->aliases[i].to);
            goto found;
        }
    for (size_t i = 0; i < conf->naliases; i++)
        if (strchr(conf->aliases[i].from, '@') == NULL &&
            ascii_casecmp(conf->aliases[i].from, local) == 0) {
            u = find_user(conf, conf->aliases[i].to);
            goto found;
        }
    u = find_user(conf, local);
    if (u == NULL && conf->catchall != NULL)
        u = find_user(conf, conf->catchall);
found:
    if (u == NULL)
        return PST_RCPT_NOUSER;
    if (user != NULL)
        *user = u;
    return PST_RCPT_OK;
}
