/*
 * cmd_user.c - `postern user add|passwd|del|list`: the submission users
 * file (format in lib/io/users.h) edited through its public API.
 *
 * The password is read from stdin: one line when stdin is not a terminal
 * (for scripts: `printf '%s\n' "$pw" | postern user add alice`), otherwise
 * prompted twice on the terminal with echo off. It is never printed, never
 * put in an error text, and the memory that held it is wiped. Only its
 * yescrypt hash reaches the file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "pst_config.h"
#include "users.h"

#define DEFAULT_USERS PST_SYSCONFDIR "/users"

void cmd_user_usage(FILE *f)
{
    fprintf(f, "  postern user add NAME [--address ADDR]... [--users FILE]\n"
               "      adds a submission user; ADDR (local@domain, or @domain for any\n"
               "      local part) is a MAIL FROM address the user may send as\n"
               "  postern user passwd NAME [--users FILE]\n"
               "      sets a new password\n"
               "  postern user del NAME [--users FILE]\n"
               "  postern user list [--users FILE]\n"
               "      one line per user: NAME [ADDR...] (never the hashes)\n"
               "      (the password is read from stdin, one line, or prompted for twice\n"
               "      on a terminal; the default users file is " DEFAULT_USERS ")\n");
}

static int usage_error(const char *sub, const char *what)
{
    fprintf(stderr, "postern: user %s: %s\nusage:\n", sub, what);
    cmd_user_usage(stderr);
    return CLI_ERROR;
}

/* ---- password input ---- */

/* Room for the longest password, its line end and one octet more to see
 * that a line is too long. */
#define PWBUF (PST_USERS_MAX_PASS + 3)

static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

/* Puts the terminal's echo back when a signal ends the prompt. */
static void restore_tty(int sig)
{
    if (tty_changed)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Reads one line from stdin (unbuffered, so no copy stays in stdio) into
 * buf without its LF (or CRLF). Returns its length, -1 at EOF before any
 * octet or on a read error, -2 when the line is too long. */
static int read_line(char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (n == 0)
                return -1;
            break;
        }
        if (c == '\n')
            break;
        if (n + 1 >= size) {
            explicit_bzero(&c, sizeof(c));
            return -2;
        }
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return (int)n;
}

/* Prompts on the terminal with echo off. */
static int prompt(const char *text, char *buf, size_t size)
{
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &saved_tty) != 0)
        return -1;
    t = saved_tty;
    t.c_lflag &= ~(tcflag_t)ECHO;
    t.c_lflag |= ECHONL;
    tty_changed = 1;
    signal(SIGINT, restore_tty);
    signal(SIGTERM, restore_tty);
    signal(SIGHUP, restore_tty);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0) {
        tty_changed = 0;
        return -1;
    }
    /* the prompt only once echo is off: TCSAFLUSH dropped what was typed
     * before, so nothing typed after the prompt is lost */
    fputs(text, stderr);
    fflush(stderr);
    int n = read_line(buf, size);
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    tty_changed = 0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    return n;
}

/* The new password into pw (PWBUF octets); its length, or -1 after
 * printing why. */
static int get_password(const char *sub, char *pw)
{
    int n;
    if (isatty(STDIN_FILENO)) {
        char again[PWBUF];
        n = prompt("New password: ", pw, PWBUF);
        if (n >= 0) {
            int m = prompt("Retype new password: ", again, sizeof(again));
            if (m != n || memcmp(pw, again, (size_t)n) != 0)
                n = -3;
        }
        explicit_bzero(again, sizeof(again));
    } else {
        n = read_line(pw, PWBUF);
    }
    if (n == -1)
        fprintf(stderr, "postern: user %s: no password on stdin\n", sub);
    else if (n == -2 || n > PST_USERS_MAX_PASS)
        fprintf(stderr, "postern: user %s: password longer than %d octets\n", sub,
                PST_USERS_MAX_PASS);
    else if (n == -3)
        fprintf(stderr, "postern: user %s: the passwords differ\n", sub);
    else if (n == 0)
        fprintf(stderr, "postern: user %s: empty password\n", sub);
    else
        return n;
    explicit_bzero(pw, PWBUF);
    return -1;
}

/* ---- subcommands ---- */

struct user_args {
    const char *sub;
    const char *users;
    const char *name;
    const char **addrs; /* argv-sized */
    size_t naddrs;
};

static int fail(const struct user_args *a, int rc, const char *err)
{
    fprintf(stderr, "postern: user %s: %s\n", a->sub, err[0] != '\0' ? err : pst_strerror(rc));
    return rc == PST_ERR_NOTFOUND ? CLI_NOTFOUND : CLI_ERROR;
}

static int user_add(const struct user_args *a)
{
    char err[512] = "";
    if (!pst_users_name_ok(a->name))
        return usage_error(a->sub, "NAME must be 1-254 of A-Z a-z 0-9 . _ - + @");
    for (size_t i = 0; i < a->naddrs; i++)
        if (!pst_users_addr_ok(a->addrs[i])) {
            fprintf(stderr, "postern: user add: bad address '%s' (want local@domain or @domain)\n",
                    a->addrs[i]);
            return CLI_ERROR;
        }
    char pw[PWBUF];
    int n = get_password(a->sub, pw);
    if (n < 0)
        return CLI_ERROR;
    int rc = pst_users_add(a->users, a->name, pw, (size_t)n, a->addrs, a->naddrs, err, sizeof(err));
    explicit_bzero(pw, sizeof(pw));
    if (rc != 0)
        return rc == PST_ERR_NOTFOUND ? fail(a, PST_ERR_IO, err) : fail(a, rc, err);
    printf("added user %s to %s\n", a->name, a->users);
    return CLI_OK;
}

static int user_passwd(const struct user_args *a)
{
    char err[512] = "";
    struct pst_users *u = NULL;
    /* say "no such user" before asking for a password */
    int rc = pst_users_load(a->users, &u, err, sizeof(err));
    if (rc == PST_ERR_NOTFOUND) {
        fprintf(stderr, "postern: user passwd: %s: no users file, so no user %s\n", a->users,
                a->name);
        return CLI_NOTFOUND;
    }
    if (rc != 0)
        return fail(a, rc, err);
    int known = pst_users_find(u, a->name) != NULL;
    pst_users_free(u);
    if (!known) {
        fprintf(stderr, "postern: user passwd: %s: no user %s\n", a->users, a->name);
        return CLI_NOTFOUND;
    }
    char pw[PWBUF];
    int n = get_password(a->sub, pw);
    if (n < 0)
        return CLI_ERROR;
    rc = pst_users_passwd(a->users, a->name, pw, (size_t)n, err, sizeof(err));
    explicit_bzero(pw, sizeof(pw));
    if (rc != 0)
        return fail(a, rc, err);
    printf("changed the password of %s\n", a->name);
    return CLI_OK;
}

static int user_del(const struct user_args *a)
{
    char err[512] = "";
    int rc = pst_users_del(a->users, a->name, err, sizeof(err));
    if (rc != 0)
        return fail(a, rc, err);
    printf("deleted user %s from %s\n", a->name, a->users);
    return CLI_OK;
}

static int user_list(const struct user_args *a)
{
    char err[512] = "";
    struct pst_users *u = NULL;
    int rc = pst_users_load(a->users, &u, err, sizeof(err));
    if (rc == PST_ERR_NOTFOUND) {
        fprintf(stderr, "postern: user list: %s: no users file\n", a->users);
        return CLI_NOTFOUND;
    }
    if (rc != 0)
        return fail(a, rc, err);
    /* names and addresses passed the parser: printable, no control octets */
    for (size_t i = 0; i < pst_users_count(u); i++) {
        const struct pst_user *user = pst_users_at(u, i);
        fputs(pst_user_name(user), stdout);
        for (size_t j = 0; j < pst_user_naddrs(user); j++)
            printf(" %s", pst_user_addr(user, j));
        putchar('\n');
    }
    pst_users_free(u);
    return CLI_OK;
}

int cmd_user(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("", "missing subcommand");
    struct user_args a = {.sub = argv[1], .users = DEFAULT_USERS};
    const char *sub = argv[1];
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0) {
        printf("usage:\n");
        cmd_user_usage(stdout);
        return CLI_OK;
    }
    int (*run)(const struct user_args *);
    int want_name = 1;
    if (strcmp(sub, "add") == 0)
        run = user_add;
    else if (strcmp(sub, "passwd") == 0)
        run = user_passwd;
    else if (strcmp(sub, "del") == 0)
        run = user_del;
    else if (strcmp(sub, "list") == 0) {
        run = user_list;
        want_name = 0;
    } else
        return usage_error(sub, "unknown subcommand");
    a.addrs = calloc((size_t)argc, sizeof(char *));
    if (a.addrs == NULL) {
        fprintf(stderr, "postern: user: out of memory\n");
        return CLI_ERROR;
    }
    int rc = CLI_OK;
    for (int i = 2; i < argc && rc == CLI_OK; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--users") == 0 || strcmp(o, "-u") == 0) {
            if (i + 1 >= argc)
                rc = usage_error(sub, "--users wants a file");
            else
                a.users = argv[++i];
        } else if ((strcmp(o, "--address") == 0 || strcmp(o, "-a") == 0) &&
                   strcmp(sub, "add") == 0) {
            if (i + 1 >= argc)
                rc = usage_error(sub, "--address wants an address");
            else
                a.addrs[a.naddrs++] = argv[++i];
        } else if (o[0] == '-' && o[1] != '\0') {
            fprintf(stderr, "postern: user %s: unknown option %s\nusage:\n", sub, o);
            cmd_user_usage(stderr);
            rc = CLI_ERROR;
        } else if (want_name && a.name == NULL) {
            a.name = o;
        } else {
            rc = usage_error(sub, "too many arguments");
        }
    }
    if (rc == CLI_OK && want_name && a.name == NULL)
        rc = usage_error(sub, "missing NAME");
    if (rc == CLI_OK && a.naddrs > PST_USERS_MAX_ADDRS)
        rc = usage_error(sub, "too many addresses");
    if (rc == CLI_OK)
        rc = run(&a);
    free(a.addrs);
    return rc;
}
