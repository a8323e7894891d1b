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
    CLI_NOTFOUND = 1,  /* the thing asked for does not exist */
    CLI_ERROR = 2,     /* usage error, or an I/O error (message on stderr) */
    CLI_TEMPFAIL = 75, /* temporary failure, try again later (EX_TEMPFAIL) */
};

struct cli_cmd {
    const char *name;
    /* argv[0] is the subcommand's name; returns an exit code */
    int (*run)(int argc, char **argv);
    /* prints the subcommand's usage lines to f */
    void (*usage)(FILE *f);
    const char *summary;
};

/* `postern queue list|show|flush|hold|release|delete [ID] [--spool DIR] [--json]` (cmd_queue.c). */
int cmd_queue(int argc, char **argv);
void cmd_queue_usage(FILE *f);

/* `postern dns query NAME TYPE [DNS options] [--json]` (cmd_dns.c). */
int cmd_dns(int argc, char **argv);
void cmd_dns_usage(FILE *f);

/* `postern dkim keygen|sign|verify` (cmd_dkim.c). */
int cmd_dkim(int argc, char **argv);
void cmd_dkim_usage(FILE *f);

/* `postern spf check --ip IP --sender ADDR [--helo NAME]` (cmd_spf.c). */
int cmd_spf(int argc, char **argv);
void cmd_spf_usage(FILE *f);

/* `postern dmarc record DOMAIN | lint "RECORD"` (cmd_dmarc.c). */
int cmd_dmarc(int argc, char **argv);
void cmd_dmarc_usage(FILE *f);

/* `postern auth --ip IP --mail-from ADDR [--helo NAME] < MESSAGE` (cmd_auth.c). */
int cmd_auth(int argc, char **argv);
void cmd_auth_usage(FILE *f);

/* `postern user add|passwd|del|list [--users FILE]` (cmd_user.c). */
int cmd_user(int argc, char **argv);
void cmd_user_usage(FILE *f);

/* `postern sendmail [OPTIONS] [RECIPIENT...]`, also run as `sendmail`
 * (cmd_sendmail.c); exits with sysexits.h codes. */
int cmd_sendmail(int argc, char **argv);
void cmd_sendmail_usage(FILE *f);
/* `mailq`: `postern queue list` with argv[1..] after it. */
int cmd_mailq(int argc, char **argv);

struct pst_resolver;

/* The DNS options of every command that does DNS: --dns-server ADDR[:PORT],
 * --dns-zone FILE, --trust-anchor FILE, --timeout SECONDS. */
struct cli_dns_opts {
    const char *server;
    const char *zone;
    const char *trust_anchor;
    unsigned timeout_ms; /* 0: the library's default */
};
/* Takes argv[*i] (and its value, moving *i) when it is a DNS option: 1;
 * 0 when it is not one; -1 after printing a usage error. */
int cli_dns_option(int argc, char **argv, int *i, struct cli_dns_opts *o, const char *cmd);
/* Makes the resolver the options ask for (zone file, forwarder or the
 * system's); CLI_OK, or CLI_ERROR after printing why. */
int cli_dns_resolver(const struct cli_dns_opts *o, const char *cmd, struct pst_resolver **r);

struct pst_buf;

/* The largest message a command reads from stdin. */
#define CLI_MAX_MESSAGE (256u * 1024 * 1024)

/* Reads all of fd into b: 0, PST_ERR_IO (errno set) or b's limit. */
int cli_read_all(int fd, struct pst_buf *b);

/*
 * A message from stdin (cli_msg.c). When its first line ends in a bare LF
 * the whole text is taken as LF-terminated: hdr holds the header section
 * converted to CRLF (with the empty line that ends it), and the body is
 * converted as it is fed.
 */
struct cli_message {
    struct pst_buf *raw;
    struct pst_buf *hdr; /* CRLF header section */
    size_t body_off;     /* in raw */
    int lf;
};
/* CLI_OK, or CLI_ERROR after saying why (cmd names the command). */
int cli_message_read(struct cli_message *m, const char *cmd);
void cli_message_free(struct cli_message *m);
/* Feeds the body to feed(arg, ...) in pieces, as CRLF text. */
void cli_message_feed(const struct cli_message *m, void (*feed)(void *, const char *, size_t),
                      void *arg);

#endif
