/* main.c - postern, the command-line tool: a table of subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pst_config.h"

static int cmd_help(int argc, char **argv);
static void cmd_help_usage(FILE *f);
static int cmd_version(int argc, char **argv);
static void cmd_version_usage(FILE *f);

static const struct cli_cmd commands[] = {
    {"queue", cmd_queue, cmd_queue_usage, "list and inspect queued messages"},
    {"dns", cmd_dns, cmd_dns_usage, "look up DNS records as postern sees them"},
    {"dkim", cmd_dkim, cmd_dkim_usage, "make DKIM keys, sign and verify messages"},
    {"dmarc", cmd_dmarc, cmd_dmarc_usage, "find and check DMARC policy records"},
    {"spf", cmd_spf, cmd_spf_usage, "check a client address against a domain's SPF policy"},
    {"auth", cmd_auth, cmd_auth_usage, "check a message as posternd checks received mail"},
    {"user", cmd_user, cmd_user_usage, "manage the submission users (AUTH) and their addresses"},
    {"sendmail", cmd_sendmail, cmd_sendmail_usage,
     "submit a message to posternd (sendmail-compatible)"},
    {"help", cmd_help, cmd_help_usage, "show this help, or a command's"},
    {"version", cmd_version, cmd_version_usage, "print the version"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cli_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: postern COMMAND [ARGS...]\n"
               "       postern --version\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        commands[i].usage(f);
    fprintf(f, "\nexit status: 0 ok, 1 not found, 2 usage or I/O error, 75 temporary failure\n");
}

static void cmd_help_usage(FILE *f)
{
    fprintf(f, "  postern help [COMMAND]\n");
}

static int cmd_help(int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "postern: help: too many arguments\n");
        return CLI_ERROR;
    }
    if (argc == 2) {
        const struct cli_cmd *c = find_command(argv[1]);
        if (c == NULL) {
            fprintf(stderr, "postern: help: unknown command '%s'\n", argv[1]);
            return CLI_ERROR;
        }
        printf("usage:\n");
        c->usage(stdout);
        return CLI_OK;
    }
    usage(stdout);
    return CLI_OK;
}

static void cmd_version_usage(FILE *f)
{
    fprintf(f, "  postern version | --version\n");
}

static int cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "postern: version: takes no arguments\n");
        return CLI_ERROR;
    }
    printf("postern %s\n", PST_VERSION);
    return CLI_OK;
}

/* A failed write to stdout (a full disk, a closed pipe) is an I/O error
 * too: never exit 0 after output that was lost. */
static int finish(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "postern: cannot write output\n");
        return CLI_ERROR;
    }
    return rc;
}

int main(int argc, char **argv)
{
    /* run as /usr/sbin/sendmail (or mailq) through a link */
    const char *base = argc > 0 && argv[0] != NULL ? strrchr(argv[0], '/') : NULL;
    base = base != NULL ? base + 1 : (argc > 0 && argv[0] != NULL ? argv[0] : "");
    if (strcmp(base, "sendmail") == 0)
        return finish(cmd_sendmail(argc, argv));
    if (strcmp(base, "mailq") == 0)
        return finish(cmd_mailq(argc, argv));
    if (argc < 2) {
        usage(stderr);
        return CLI_ERROR;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        name = "version";
    else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    const struct cli_cmd *c = find_command(name);
    if (c == NULL) {
        fprintf(stderr, "postern: unknown command '%s' (try 'postern help')\n", argv[1]);
        return CLI_ERROR;
    }
    return finish(c->run(argc - 1, argv + 1));
}
