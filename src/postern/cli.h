/*
 * cli.h - the command table of postern, the command-line tool. Each
 * subcommand is one entry: main.c dispatches on the first argument, and a
 * new subcommand (dkim, spf, dmarc, dns...) is a new cmd_<name>.c with one
 * line in the table.
 */
#ifndef PST_CLI_H
#define PST_CLI_H

#include <stdio.h>

/* Exit codes shared by every subcommand. */
enum {
    CLI_OK = 0,
    CLI_NOTFOUND = 1, /* the thing asked for does not exist */
    CLI_ERROR = 2,    /* usage error, or an I/O error (message on stderr) */
};

struct cli_cmd {
    const char *name;
    /* argv[0] is the subcommand's name; returns an exit code */
    int (*run)(int argc, char **argv);
    /* prints the subcommand's usage lines to f */
    void (*usage)(FILE *f);
    const char *summary;
};

/* `postern queue list|show ID [--spool DIR]` (cmd_queue.c). */
int cmd_queue(int argc, char **argv);
void cmd_queue_usage(FILE *f);

#endif
