/*
 * test_config.c - posternd's configuration: the embedded default, the
 * documented example, every refusal with its line and reason, and recipient
 * lookup. Runs with cwd = repository root (docs/postern.conf.example).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* A valid configuration, one setting per line, for building cases. */
#define L_OK "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
#define D_OK "domains = [ \"example.org\" ];\n"
#define U_OK "users = ( { name = \"alice\"; } );\n"
#define P_OK "postmaster = \"alice\";\n"
#define MIN  L_OK D_OK U_OK P_OK
#define TLS  "tls = { certificate = \"c.pem\"; key = \"k.pem\"; };\n"

/* Writes text (len bytes) to a new temporary file; the caller unlinks it. */
static void write_temp(char *path, size_t pathlen, const char *text, size_t len)
{
    int fd;

    snprintf(path, pathlen, "/tmp/pst_test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static struct pst_conf *load_text(const char *text, char *err, size_t errlen)
{
    char path[64];
    struct pst_conf *conf;

    write_temp(path, sizeof path, text, strlen(text));
    conf = pst_conf_load_file(path, err, errlen);
    if (conf == NULL)
        print_message("load: %s\n", err);
    unlink(path);
    return conf;
}

/* ---- the embedded default ----------------------------------------------- */

static void test_default(void **state)
{
    char err[512] = "";
    struct pst_conf *c = pst_conf_load_default(err, sizeof err);

    assert_non_null(c);
    assert_string_equal(err, "");
    assert_string_equal(c->source, "(embedded default)");
    assert_string_equal(c->hostname, "localhost");
    assert_string_equal(c->spool, "./var/spool");
    assert_string_equal(c->mail_root, "./var/mail");
    assert_null(c->run_user);
    assert_int_equal(c->log_target, PST_LOG_STDERR);
    assert_int_equal(c->log_debug, 0);
    assert_string_equal(c->tls_cert, "./var/tls/cert.pem");
    assert_string_equal(c->tls_key, "./var/tls/key.pem");
    assert_int_equal(c->tls_generate, 1);

    assert_int_equal(c->nlisteners, 2);
    assert_string_equal(c->listeners[0].address, "127.0.0.1");
    assert_int_equal(c->listeners[0].port, 2525);
    assert_int_equal(c->listeners[0].mode, PST_LISTEN_SMTP);
    assert_int_equal(c->listeners[0].starttls, 1);
    assert_string_equal(c->listeners[1].address, "127.0.0.1");
    assert_int_equal(c->listeners[1].port, 4650);
    assert_int_equal(c->listeners[1].mode, PST_LISTEN_TLS);
    assert_int_equal(c->listeners[1].starttls, 0);

    assert_int_equal(c->ndomains, 2);
    assert_string_equal(c->domains[0], "localhost");
    assert_string_equal(c->domains[1], "example.test");
    assert_int_equal(c->nusers, 1);
    assert_string_equal(c->users[0].name, "postmaster");
    assert_string_equal(c->users[0].maildir, "./var/mail/postmaster");
    assert_string_equal(c->postmaster, "postmaster");
    assert_null(c->catchall);
    assert_int_equal(c->naliases, 0);

    assert_int_equal(c->message_size, 26214400);
    assert_int_equal(c->max_recipients, 100);
    assert_int_equal(c->line_length, 2048);
    assert_int_equal(c->max_bad_commands, 20);
    assert_int_equal(c->max_sessions, 1000);
    assert_int_equal(c->max_sessions_per_ip, 50);
    assert_int_equal(c->bare_eol, PST_BARE_EOL_REJECT);
    assert_int_equal(c->timeout_command, 300);
    assert_int_equal(c->timeout_data, 180);
    assert_int_equal(c->timeout_tls, 30);
    assert_int_equal(c->shutdown_grace, 30);
    assert_int_equal(c->retry_interval, 300);
    assert_null(c->dns_server);
    assert_null(c->dns_trust_anchor);
    assert_int_equal(c->dns_timeout, 5);
    pst_conf_free(c);

    /* the text is what --print-default shows; it loads from a file too */
    c = load_text(pst_conf_default_text(), err, sizeof err);
    assert_non_null(c);
    pst_conf_free(c);
}

/* ---- the documented example --------------------------------------------- */

static void test_example(void **state)
{
    char err[512] = "";
    struct pst_conf *c = pst_conf_load_file("docs/postern.conf.example", err, sizeof err);

    if (c == NULL)
        fail_msg("docs/postern.conf.example: %s", err);
    assert_string_equal(c->source, "docs/postern.conf.example");
    assert_string_equal(c->hostname, "mx.example.org");
    assert_string_equal(c->spool, "/var/spool/postern");
    assert_string_equal(c->mail_root, "/var/mail");
    assert_string_equal(c->run_user, "postern");
    assert_int_equal(c->log_target, PST_LOG_STDERR);
    assert_string_equal(c->tls_cert, "/etc/postern/cert.pem");
    assert_string_equal(c->tls_key, "/etc/postern/key.pem");
    assert_int_equal(c->tls_generate, 0);
    assert_int_equal(c->nlisteners, 4);
    assert_string_equal(c->listeners[0].address, "0.0.0.0");
    assert_int_equal(c->listeners[0].port, 25);
    assert_int_equal(c->listeners[0].starttls, 1);
    assert_int_equal(c->listeners[0].submission, 0);
    assert_string_equal(c->listeners[1].address, "::");
    assert_int_equal(c->listeners[1].port, 587);
    assert_int_equal(c->listeners[1].mode, PST_LISTEN_SMTP);
    assert_int_equal(c->listeners[1].starttls, 1);
    assert_int_equal(c->listeners[1].submission, 1);
    assert_int_equal(c->listeners[2].port, 465);
    assert_int_equal(c->listeners[2].mode, PST_LISTEN_TLS);
    assert_int_equal(c->listeners[2].submission, 1);
    assert_int_equal(c->listeners[3].mode, PST_LISTEN_UNIX);
    assert_string_equal(c->listeners[3].path, "/var/lib/postern/submit.sock");
    assert_int_equal(c->has_submission, 1);
    assert_string_equal(c->users_file, "/etc/postern/users");
    assert_int_equal(c->out_concurrency, 20);
    assert_int_equal(c->backoff.lifetime, 432000);
    assert_null(c->relayhost);
    assert_int_equal(c->ndomains, 2);
    assert_int_equal(c->nusers, 2);
    assert_string_equal(c->users[0].maildir, "/var/mail/alice");
    assert_string_equal(c->users[1].maildir, "/srv/mail/bob");
    assert_string_equal(c->postmaster, "alice");
    assert_string_equal(c->catchall, "alice");
    assert_int_equal(c->naliases, 2);
    assert_string_equal(c->aliases[1].from, "info@example.net");
    assert_string_equal(c->aliases[1].to, "bob");
    assert_int_equal(c->message_size, 26214400);
    assert_int_equal(c->timeout_command, 300);
    assert_string_equal(c->dns_server, "127.0.0.1");
    assert_string_equal(c->dns_trust_anchor, "/usr/share/dns/root.ds");
    assert_int_equal(c->dns_timeout, 5);
    assert_int_equal(c->dkim_verify, 1);
    assert_int_equal(c->ndkim_keys, 2);
    assert_string_equal(c->dkim_keys[1].selector, "s2026e");
    pst_conf_free(c);
}

/* ---- defaults and accepted variants ------------------------------------- */

static void test_minimal_defaults(void **state)
{
    char err[512] = "";
    char host[256] = "";
    struct pst_conf *c = load_text(MIN, err, sizeof err);

    assert_non_null(c);
    gethostname(host, sizeof host - 1);
    for (char *p = host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    assert_string_equal(c->hostname, host);
    assert_string_equal(c->spool, "/var/spool/postern");
    assert_string_equal(c->mail_root, "/var/mail");
    assert_string_equal(c->users[0].maildir, "/var/mail/alice");
    assert_null(c->run_user);
    assert_null(c->tls_cert);
    assert_null(c->tls_key);
    assert_int_equal(c->listeners[0].mode, PST_LISTEN_SMTP);
    assert_int_equal(c->listeners[0].starttls, 0); /* no TLS configured */
    assert_null(c->catchall);
    assert_int_equal(c->naliases, 0);
    assert_int_equal(c->message_size, 26214400);
    assert_int_equal(c->max_recipients, 100);
    assert_int_equal(c->line_length, 2048);
    assert_int_equal(c->max_bad_commands, 20);
    assert_int_equal(c->max_sessions, 1000);
    assert_int_equal(c->max_sessions_per_ip, 50);
    assert_int_equal(c->bare_eol, PST_BARE_EOL_REJECT);
    assert_int_equal(c->timeout_command, 300);
    assert_int_equal(c->timeout_data, 180);
    assert_int_equal(c->timeout_tls, 30);
    assert_int_equal(c->shutdown_grace, 30);
    assert_int_equal(c->retry_interval, 300);
    assert_null(c->dns_server);
    assert_null(c->dns_trust_anchor);
    assert_int_equal(c->dns_timeout, 5);
    pst_conf_free(c);
}

static void test_variants(void **state)
{
    char err[512] = "";
    struct pst_conf *c;

    /* starttls defaults on with TLS; generate without paths uses the spool */
    c = load_text("spool = \"sp/\";\ntls = { generate = true; };\n" MIN, err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->tls_cert, "sp/tls/cert.pem");
    assert_string_equal(c->tls_key, "sp/tls/key.pem");
    assert_int_equal(c->listeners[0].starttls, 1);
    pst_conf_free(c);

    c = load_text(TLS "listeners = ( { address = \"::1\"; port = 25; starttls = false; },\n"
                      "  { address = \"::1\"; port = 465; mode = \"tls\"; },\n"
                      "  { address = \"127.0.0.1\"; port = 25; } );\n"
                      "hostname = \"MX.Example.ORG\";\n"
                      "domains = ( \"Example.ORG\", \"xn--bcher-kva.example\" );\n"
                      "mail_root = \"mail\";\n"
                      "users = ( { name = \"alice\"; }, { name = \"b-o_b.1\"; } );\n"
                      "postmaster = \"alice\";\n"
                      "aliases = ( { from = \"Info@EXAMPLE.org\"; to = \"b-o_b.1\"; } );\n"
                      "log = { target = \"syslog\"; debug = true; };\n"
                      "limits = { message_size = 2147483648L; line_length = 1036;\n"
                      "  recipients = 10000; bare_eol = \"normalize\"; };\n"
                      "timeouts = { shutdown_grace = 0; command = 0x3c; };\n",
                  err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->hostname, "mx.example.org");
    assert_string_equal(c->domains[0], "example.org");
    assert_string_equal(c->users[0].maildir, "mail/alice");
    assert_string_equal(c->aliases[0].from, "info@example.org");
    assert_int_equal(c->listeners[0].starttls, 0);
    assert_int_equal(c->listeners[1].starttls, 0);
    assert_int_equal(c->listeners[2].starttls, 1);
    assert_int_equal(c->log_target, PST_LOG_SYSLOG);
    assert_int_equal(c->log_debug, 1);
    assert_int_equal(c->message_size, 2147483648ULL);
    assert_int_equal(c->line_length, 1036);
    assert_int_equal(c->max_recipients, 10000);
    assert_int_equal(c->bare_eol, PST_BARE_EOL_NORMALIZE);
    assert_int_equal(c->shutdown_grace, 0);
    assert_int_equal(c->timeout_command, 60);
    pst_conf_free(c);

    /* DNS: IPv6 forwarders with and without a port, relative anchors */
    c = load_text(MIN "dns = { server = \"[2001:db8::53]:5353\"; trust_anchor = \"ta.ds\";\n"
                      "  timeout = 300; };\n",
                  err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->dns_server, "[2001:db8::53]:5353");
    assert_string_equal(c->dns_trust_anchor, "ta.ds");
    assert_int_equal(c->dns_timeout, 300);
    pst_conf_free(c);
    c = load_text(MIN "dns = { server = \"::1\"; timeout = 1; };\n", err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->dns_server, "::1");
    assert_null(c->dns_trust_anchor);
    assert_int_equal(c->dns_timeout, 1);
    pst_conf_free(c);
    c = load_text(MIN "dkim = { verify = false; max_signatures = 64; sign = (\n"
                      "  { domain = \"Example.ORG\"; selector = \"s1.x\"; key = \"/k1\"; },\n"
                      "  { domain = \"example.org\"; selector = \"s2\"; key = \"/k2\"; } ); };\n",
                  err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->dkim_verify, 0);
    assert_int_equal(c->dkim_max_sigs, 64);
    assert_int_equal(c->ndkim_keys, 2);
    assert_string_equal(c->dkim_keys[0].domain, "example.org");
    assert_string_equal(c->dkim_keys[0].selector, "s1.x");
    assert_string_equal(c->dkim_keys[1].key_file, "/k2");
    pst_conf_free(c);
    c = load_text(
        MIN "spf = { verify = false; };\n"
            "dmarc = { reject = \"quarantine\"; temperror = \"accept\";\n"
            "  org_domain = \"psl\"; };\n"
            "auth = { authserv_id = \"mx.example.org\"; allow = [ \"192.0.2.0/24\", \"::1\" ];\n"
            "  store = false; };\n",
        err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->spf_verify, 0);
    assert_int_equal(c->dmarc_verify, 1);
    assert_int_equal(c->dmarc_reject_quarantine, 1);
    assert_int_equal(c->dmarc_temperror_accept, 1);
    assert_int_equal(c->dmarc_psl, 1);
    assert_string_equal(c->authserv_id, "mx.example.org");
    assert_int_equal(c->nauth_allow, 2);
    assert_true(pst_cidr_match_any(c->auth_allow, c->nauth_allow, "192.0.2.9"));
    assert_null(c->auth_store);
    pst_conf_free(c);
    c = load_text(MIN, err, sizeof err);
    assert_non_null(c);
    /* defaults: every check on, policy as published, results kept */
    assert_int_equal(c->spf_verify, 1);
    assert_int_equal(c->dmarc_verify, 1);
    assert_int_equal(c->dmarc_reject_quarantine, 0);
    assert_int_equal(c->dmarc_temperror_accept, 0);
    assert_string_equal(c->authserv_id, c->hostname);
    assert_non_null(c->auth_store);
    pst_conf_free(c);
    c = load_text(MIN "delivery = { concurrency = 5; destination_concurrency = 2;\n"
                      "  retry_initial = 1; retry_max = 4; retry_factor = 2; lifetime = 30;\n"
                      "  delay_warning = 0; port = 2525; families = \"ipv4\";\n"
                      "  relayhost = \"[smtp.example.net]:587\"; relay_tls = \"starttls\";\n"
                      "  relay_user = \"me\"; relay_password_file = \"/etc/p\"; };\n",
                  err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->out_concurrency, 5);
    assert_int_equal(c->out_dest_concurrency, 2);
    assert_int_equal(c->backoff.initial, 1);
    assert_int_equal(c->backoff.max, 4);
    assert_int_equal(c->backoff.lifetime, 30);
    assert_int_equal(c->backoff.warn, 0);
    assert_int_equal(c->out_port, 2525);
    assert_int_equal(c->out_families, PST_ROUTE_INET4);
    assert_string_equal(c->relayhost, "[smtp.example.net]:587");
    pst_conf_free(c);
    c = load_text(MIN "dns = { };\n", err, sizeof err);
    assert_non_null(c);
    assert_null(c->dns_server);
    assert_int_equal(c->dns_timeout, 5);
    pst_conf_free(c);

    /* numbers, @ and \x00 inside strings and comments are not scanned */
    c = load_text("# 99999999999 @include \"x\"\n/* 4294967296\n */ hostname = \"h1\"; // 5e99\n"
                  "run_as = \"x99999999999\";\n" MIN,
                  err, sizeof err);
    assert_non_null(c);
    pst_conf_free(c);

    pst_conf_free(NULL);
}

/* ---- refusals: every one names the line and the reason ------------------ */

struct bad_case {
    const char *name;
    const char *text;
    unsigned line; /* 0: the message has no line ("FILE: reason") */
    const char *want;
};

static const struct bad_case bad_cases[] = {
    /* libconfig syntax */
    {"syntax error", "a = ;\n", 1, "syntax error"},
    {"syntax error later", MIN "limits = { recipients = 5 }\n}\n", 6, "syntax error"},
    {"duplicate setting", MIN P_OK, 5, "duplicate setting name"},
    {"include", MIN "@include \"other.conf\"\n", 5, "@include is not supported"},
    {"int wraps", MIN "limits = {\n recipients = 4294967396; };\n", 6,
     "4294967396 does not fit in 32 bits"},
    {"2 GiB without L", MIN "limits = { message_size = 2147483648; };\n", 5, "write 2147483648L"},
    {"hex wraps", MIN "limits = { recipients = 0x100000064; };\n", 5, "does not fit in 32 bits"},
    {"int64 overflow", MIN "limits = { message_size = 99999999999999999999L; };\n", 5,
     "does not fit in 64 bits"},
    {"nul escape", "hostname = \"a\\x00b\";\n" MIN, 1, "\"\\x00\" in a string"},

    /* unknown keys */
    {"unknown top", "hostnme = \"x\";\n" MIN, 1,
     "hostnme: unknown setting (did you mean hostname?)"},
    {"unknown top far", MIN "queue = \"x\";\n", 5, "queue: unknown setting$"},
    {"unknown top swap", MIN "catchlal = \"alice\";\n", 5,
     "catchlal: unknown setting (did you mean catchall?)$"},
    {"unknown log", "log = {\n  target = \"stderr\";\n  debgu = true;\n};\n" MIN, 3,
     "log.debgu: unknown setting (did you mean debug?)"},
    {"unknown tls", "tls = { cert = \"c\"; };\n" MIN, 1, "tls.cert: unknown setting"},
    {"unknown listener",
     "listeners = ( { address = \"127.0.0.1\"; port = 25; starttsl = true; } );\n" D_OK U_OK P_OK,
     1, "listeners.starttsl: unknown setting (did you mean starttls?)"},
    {"unknown user", L_OK D_OK "users = (\n { name = \"alice\"; home = \"/x\"; } );\n" P_OK, 4,
     "users.home: unknown setting$"},
    {"unknown alias", MIN "aliases = ( { from = \"a\"; too = \"alice\"; } );\n", 5,
     "aliases.too: unknown setting (did you mean to?)"},
    {"unknown limit", MIN "limits = { msg_size = 1; };\n", 5, "limits.msg_size: unknown setting"},
    {"unknown timeout", MIN "timeouts = {\n tls = 5; };\n", 6, "timeouts.tls: unknown setting"},

    /* types */
    {"hostname int", "hostname = 5;\n" MIN, 1, "hostname: must be a string"},
    {"spool empty", "spool = \"\";\n" MIN, 1, "spool: must not be empty"},
    {"mail_root control", "mail_root = \"a\\nb\";\n" MIN, 1, "must not contain control"},
    {"log not group", "log = \"syslog\";\n" MIN, 1, "log: must be a group"},
    {"log target", "log = { target = \"file\"; };\n" MIN, 1,
     "log.target: must be \"stderr\" or \"syslog\", not \"file\""},
    {"debug string", "log = { debug = \"yes\"; };\n" MIN, 1, "log.debug: must be true or false"},
    {"generate int", "tls = { generate = 1; };\n" MIN, 1, "tls.generate: must be true or false"},
    {"listeners group", "listeners = { address = \"::\"; port = 25; };\n" D_OK U_OK P_OK, 1,
     "listeners: must be a list"},
    {"listener string", "listeners = ( \"::\" );\n" D_OK U_OK P_OK, 1,
     "listeners: each element must be a group"},
    {"port string", "listeners = ( { address = \"::\"; port = \"25\"; } );\n" D_OK U_OK P_OK, 1,
     "listeners.port: must be an integer"},
    {"domains string", L_OK "domains = \"example.org\";\n" U_OK P_OK, 2,
     "domains: must be a list of strings"},
    {"domain int", L_OK "domains = [ 5 ];\n" U_OK P_OK, 2, "domains: must be a string"},
    {"users strings", L_OK D_OK "users = ( \"alice\" );\n" P_OK, 3,
     "users: each element must be a group"},
    {"limit float", MIN "limits = { message_size = 1.5; };\n", 5,
     "limits.message_size: must be an integer"},
    {"limits list", MIN "limits = ( 1 );\n", 5, "limits: must be a group"},

    /* hostname and run_as */
    {"hostname space", "hostname = \"mx example\";\n" MIN, 1,
     "hostname: \"mx example\" may hold only"},
    {"hostname dot", "hostname = \"mx.example.org.\";\n" MIN, 1, "must not end with a dot"},
    {"run_as colon", "run_as = \"a:b\";\n" MIN, 1, "run_as: \"a:b\" is not a user name"},
    {"run_as dash", "run_as = \"-x\";\n" MIN, 1, "run_as: must not start with '-'"},

    /* tls */
    {"cert without key", "tls = {\n certificate = \"c.pem\"; };\n" MIN, 1,
     "tls: certificate and key go together"},
    {"key without cert", "tls = { key = \"k.pem\"; generate = true; };\n" MIN, 1,
     "certificate and key go together"},

    /* listeners */
    {"no listeners", D_OK U_OK P_OK, 0, "listeners: required"},
    {"empty listeners", "listeners = ( );\n" D_OK U_OK P_OK, 1, "needs at least one listener"},
    {"port 0", "listeners = ( { address = \"::\"; port = 0; } );\n" D_OK U_OK P_OK, 1,
     "listeners.port: must be between 1 and 65535, not 0"},
    {"port 65536", "listeners = (\n { address = \"::\";\n port = 65536; } );\n" D_OK U_OK P_OK, 3,
     "must be between 1 and 65535, not 65536"},
    {"port negative", "listeners = ( { address = \"::\"; port = -25; } );\n" D_OK U_OK P_OK, 1,
     "not -25"},
    {"no port", "listeners = (\n { address = \"::\"; } );\n" D_OK U_OK P_OK, 2,
     "listeners: listener needs a port"},
    {"no address", "listeners = ( { port = 25; } );\n" D_OK U_OK P_OK, 1,
     "listener needs an address"},
    {"address short", "listeners = ( { address = \"1.2.3\"; port = 25; } );\n" D_OK U_OK P_OK, 1,
     "listeners.address: \"1.2.3\" is not a numeric IPv4 or IPv6 address"},
    {"address name", "listeners = ( { address = \"localhost\"; port = 25; } );\n" D_OK U_OK P_OK, 1,
     "\"localhost\" is not a numeric"},
    {"address scope",
     "listeners = ( { address = \"fe80::1%eth0\"; port = 25; } );\n" D_OK U_OK P_OK, 1,
     "is not a numeric"},
    {"address brackets", "listeners = ( { address = \"[::1]\"; port = 25; } );\n" D_OK U_OK P_OK, 1,
     "is not a numeric"},
    {"mode", "listeners = ( { address = \"::\"; port = 25; mode = \"smtps\"; } );\n" D_OK U_OK P_OK,
     1,
     "listeners.mode: must be \"smtp\" or \"tls\" or \"submission\" or \"submissions\" or "
     "\"local\", not \"smtps\""},
    {"starttls with tls",
     TLS "listeners = (\n { address = \"::\"; port = 465; mode = \"tls\";\n"
         "   starttls = false; } );\n" D_OK U_OK P_OK,
     4, "listeners.starttls: applies only to mode \"smtp\""},
    {"tls without cert",
     "listeners = (\n { address = \"::\"; port = 465;\n mode = \"tls\"; } );\n" D_OK U_OK P_OK, 3,
     "mode \"tls\" needs tls.certificate and tls.key"},
    {"starttls without cert",
     "listeners = (\n { address = \"::\"; port = 25; starttls = true; } );\n" D_OK U_OK P_OK, 2,
     "listeners.starttls: starttls needs tls.certificate and tls.key"},
    {"duplicate listener",
     "listeners = ( { address = \"127.0.0.1\"; port = 25; },\n"
     "  { address = \"127.0.0.1\"; port = 25; } );\n" D_OK U_OK P_OK,
     2, "duplicate listener 127.0.0.1 port 25 (also on line 1)"},
    {"duplicate listener v6 spelling",
     "listeners = ( { address = \"::\"; port = 25; },\n { address = \"::1\"; port = 25; },\n"
     " { address = \"0:0::0\"; port = 25; } );\n" D_OK U_OK P_OK,
     3, "duplicate listener 0:0::0 port 25 (also on line 1)"},

    /* domains */
    {"no domains", L_OK U_OK P_OK, 0, "domains: required"},
    {"empty domains", L_OK "domains = [ ];\n" U_OK P_OK, 2, "needs at least one domain"},
    {"domain space", L_OK "domains = [ \"example.org\",\n \"exa mple.org\" ];\n" U_OK P_OK, 3,
     "domains: domain \"exa mple.org\" may hold only letters"},
    {"domain trailing dot", L_OK "domains = [ \"example.org.\" ];\n" U_OK P_OK, 2,
     "must not end with a dot"},
    {"domain empty label", L_OK "domains = [ \"example..org\" ];\n" U_OK P_OK, 2,
     "has an empty label"},
    {"domain leading dot", L_OK "domains = [ \".example.org\" ];\n" U_OK P_OK, 2,
     "has an empty label"},
    {"domain hyphen", L_OK "domains = [ \"-example.org\" ];\n" U_OK P_OK, 2,
     "label starting with a hyphen"},
    {"domain hyphen end", L_OK "domains = [ \"example-.org\" ];\n" U_OK P_OK, 2,
     "label ending with a hyphen"},
    {"domain underscore", L_OK "domains = [ \"ex_ample.org\" ];\n" U_OK P_OK, 2, "may hold only"},
    {"domain utf8",
     L_OK "domains = [ \"b\xc3\xbc"
          "cher.example\" ];\n" U_OK P_OK,
     2, "write IDNs as xn--"},
    {"domain long label",
     L_OK "domains = [ \"a123456789012345678901234567890123456789012345678901234567890123.org\" "
          "];\n" U_OK P_OK,
     2, "label longer than 63"},
    {"domain empty", L_OK "domains = [ \"\" ];\n" U_OK P_OK, 2, "domains: must not be empty"},
    {"duplicate domain", L_OK "domains = [ \"example.org\",\n \"Example.ORG\" ];\n" U_OK P_OK, 3,
     "duplicate domain \"Example.ORG\""},

    /* users */
    {"no users", L_OK D_OK P_OK, 0, "users: required"},
    {"empty users", L_OK D_OK "users = ( );\n" P_OK, 3, "needs at least one user"},
    {"user no name", L_OK D_OK "users = ( { maildir = \"/x\"; } );\n" P_OK, 3,
     "users: user needs a name"},
    {"user upper", L_OK D_OK "users = ( { name = \"Alice\"; } );\n" P_OK, 3,
     "users.name: \"Alice\" may hold only a-z"},
    {"user dot", L_OK D_OK "users = ( { name = \".alice\"; } );\n" P_OK, 3,
     "must not start with a dot"},
    {"user dotdot", L_OK D_OK "users = ( { name = \"..\"; } );\n" P_OK, 3,
     "must not start with a dot"},
    {"user slash", L_OK D_OK "users = ( { name = \"a/b\"; } );\n" P_OK, 3, "may hold only"},
    {"user long",
     L_OK D_OK "users = ( { name = "
               "\"a1234567890123456789012345678901234567890123456789012345678901234\"; "
               "} );\n" P_OK,
     3, "longer than 64"},
    {"duplicate user",
     L_OK D_OK
     "users = ( { name = \"alice\"; },\n { name = \"bob\"; },\n { name = \"alice\"; } );\n" P_OK,
     5, "users.name: duplicate user \"alice\" (also on line 3)"},
    {"maildir int", L_OK D_OK "users = ( { name = \"alice\"; maildir = 1; } );\n" P_OK, 3,
     "users.maildir: must be a string"},

    /* postmaster, catchall */
    {"no postmaster", L_OK D_OK U_OK, 0, "postmaster: required"},
    {"postmaster unknown", L_OK D_OK U_OK "\npostmaster = \"root\";\n", 5,
     "postmaster: \"root\" is not a user defined in users"},
    {"postmaster upper", L_OK D_OK U_OK "postmaster = \"ALICE\";\n", 4,
     "\"ALICE\" is not a user defined"},
    {"catchall unknown", MIN "catchall = \"bob\";\n", 5,
     "catchall: \"bob\" is not a user defined in users"},
    {"catchall bool", MIN "catchall = true;\n", 5, "catchall: must be a string"},

    /* aliases */
    {"alias to unknown", MIN "aliases = (\n { from = \"abuse\"; to = \"bob\"; } );\n", 6,
     "aliases.to: \"bob\" is not a user defined in users"},
    {"alias no to", MIN "aliases = ( { from = \"abuse\"; } );\n", 5, "alias needs to"},
    {"alias no from", MIN "aliases = ( { to = \"alice\"; } );\n", 5, "alias needs from"},
    {"alias foreign domain",
     MIN "aliases = ( { from = \"info@example.net\"; to = \"alice\"; } );\n", 5,
     "aliases.from: \"info@example.net\": example.net is not one of the domains"},
    {"alias two at", MIN "aliases = ( { from = \"a@b@example.org\"; to = \"alice\"; } );\n", 5,
     "must be \"local\" or \"local@domain\""},
    {"alias empty domain", MIN "aliases = ( { from = \"a@\"; to = \"alice\"; } );\n", 5,
     "must be \"local\" or \"local@domain\""},
    {"alias empty local", MIN "aliases = ( { from = \"@example.org\"; to = \"alice\"; } );\n", 5,
     "has an empty local part"},
    {"alias dotdot", MIN "aliases = ( { from = \"a..b\"; to = \"alice\"; } );\n", 5,
     "two dots in a row"},
    {"alias space", MIN "aliases = ( { from = \"a b\"; to = \"alice\"; } );\n", 5,
     "not allowed in a dot-atom"},
    {"alias postmaster", MIN "aliases = ( { from = \"PostMaster\"; to = \"alice\"; } );\n", 5,
     "aliases.from: postmaster is routed by the postmaster setting"},
    {"alias postmaster full",
     MIN "aliases = ( { from = \"postmaster@example.org\"; to = \"alice\"; } );\n", 5,
     "postmaster is routed"},
    {"duplicate alias",
     MIN "aliases = ( { from = \"abuse\"; to = \"alice\"; },\n"
         " { from = \"Abuse\"; to = \"alice\"; } );\n",
     6, "duplicate alias \"abuse\" (also on line 5)"},
    {"aliases group", MIN "aliases = { from = \"a\"; to = \"alice\"; };\n", 5,
     "aliases: must be a list"},

    /* limits */
    {"message_size small", MIN "limits = { message_size = 1023; };\n", 5,
     "limits.message_size: must be between 1024 and 2147483648, not 1023"},
    {"message_size big", MIN "limits = { message_size = 2147483649L; };\n", 5,
     "must be between 1024 and 2147483648"},
    {"message_size zero", MIN "limits = { message_size = 0; };\n", 5, "not 0"},
    {"recipients 0", MIN "limits = { recipients = 0; };\n", 5,
     "limits.recipients: must be between 1 and 10000, not 0"},
    {"recipients big", MIN "limits = { recipients = 10001; };\n", 5, "not 10001"},
    {"recipients negative", MIN "limits = { recipients = -1; };\n", 5, "not -1"},
    {"line_length small", MIN "limits = {\n line_length = 1035; };\n", 6,
     "limits.line_length: must be between 1036 and 65536, not 1035"},
    {"line_length big", MIN "limits = { line_length = 65537; };\n", 5, "not 65537"},
    {"bad_commands 0", MIN "limits = { bad_commands = 0; };\n", 5, "limits.bad_commands"},
    {"sessions 0", MIN "limits = { sessions = 0; };\n", 5, "limits.sessions: must be between"},
    {"sessions_per_ip 0", MIN "limits = { sessions_per_ip = 0; };\n", 5,
     "limits.sessions_per_ip: must be between"},
    {"bare_eol", MIN "limits = { bare_eol = \"strip\"; };\n", 5,
     "limits.bare_eol: must be \"reject\" or \"normalize\", not \"strip\""},
    {"bare_eol bool", MIN "limits = { bare_eol = true; };\n", 5,
     "limits.bare_eol: must be a string"},

    /* timeouts */
    {"command 0", MIN "timeouts = { command = 0; };\n", 5,
     "timeouts.command: must be between 1 and 3600, not 0"},
    {"data big", MIN "timeouts = { data = 3601; };\n", 5, "timeouts.data: must be between"},
    {"tls_handshake 0", MIN "timeouts = { tls_handshake = 0; };\n", 5, "timeouts.tls_handshake"},
    {"shutdown_grace big", MIN "timeouts = { shutdown_grace = 3601; };\n", 5,
     "timeouts.shutdown_grace: must be between 0 and 3600"},
    {"retry 0", MIN "timeouts = { retry = 0; };\n", 5, "timeouts.retry: must be between 1"},
    {"retry string", MIN "timeouts = { retry = \"5m\"; };\n", 5,
     "timeouts.retry: must be an integer"},

    /* dns */
    {"dns not group", MIN "dns = \"127.0.0.1\";\n", 5, "dns: must be a group"},
    {"dns unknown", MIN "dns = {\n servre = \"127.0.0.1\"; };\n", 6,
     "dns.servre: unknown setting (did you mean server?)"},
    {"dns anchor typo", MIN "dns = { trust_anchr = \"x\"; };\n", 5,
     "dns.trust_anchr: unknown setting (did you mean trust_anchor?)"},
    {"dns server name", MIN "dns = {\n server = \"ns.example.org\"; };\n", 6,
     "dns.server: \"ns.example.org\" is not ADDR[:PORT]"},
    {"dns server port 0", MIN "dns = { server = \"127.0.0.1:0\"; };\n", 5,
     "dns.server: \"127.0.0.1:0\" is not ADDR[:PORT]"},
    {"dns server port big", MIN "dns = { server = \"127.0.0.1:65536\"; };\n", 5,
     "is not ADDR[:PORT]"},
    {"dns server v6 port", MIN "dns = { server = \"::1:53x\"; };\n", 5, "is not ADDR[:PORT]"},
    {"dns server v6 bracket", MIN "dns = { server = \"[::1]:\"; };\n", 5, "is not ADDR[:PORT]"},
    {"dns server at", MIN "dns = { server = \"127.0.0.1@53\"; };\n", 5, "is not ADDR[:PORT]"},
    {"dns server empty", MIN "dns = { server = \"\"; };\n", 5, "dns.server: must not be empty"},
    {"dns server int", MIN "dns = { server = 53; };\n", 5, "dns.server: must be a string"},
    {"dns anchor int", MIN "dns = { trust_anchor = 1; };\n", 5,
     "dns.trust_anchor: must be a string"},
    {"dns timeout 0", MIN "dns = { timeout = 0; };\n", 5,
     "dns.timeout: must be between 1 and 300, not 0"},
    {"dns timeout big", MIN "dns = {\n\n timeout = 301; };\n", 7, "not 301"},
    {"dns timeout string", MIN "dns = { timeout = \"5\"; };\n", 5,
     "dns.timeout: must be an integer"},
    {"dkim not group", MIN "dkim = true;\n", 5, "dkim: must be a group"},
    {"dkim unknown", MIN "dkim = {\n verfy = true; };\n", 6,
     "unknown setting (did you mean verify?)"},
    {"dkim verify int", MIN "dkim = { verify = 1; };\n", 5, "dkim.verify: must be true or false"},
    {"dkim max 0", MIN "dkim = { max_signatures = 0; };\n", 5, "must be between 1 and 64, not 0"},
    {"dkim sign not list", MIN "dkim = { sign = \"k.pem\"; };\n", 5, "must be a list"},
    {"dkim sign no domain", MIN "dkim = { sign = (\n { selector = \"s\"; key = \"k\"; } ); };\n", 6,
     "domain: required"},
    {"dkim sign bad domain",
     MIN "dkim = { sign = ( { domain = \"a..b\"; selector = \"s\"; key = \"k\"; } ); };\n", 5,
     "domain \"a..b\""},
    {"dkim sign bad selector",
     MIN "dkim = { sign = ( { domain = \"a.b\"; selector = \"s s\"; key = \"k\"; } ); };\n", 5,
     "selector \"s s\""},
    {"dkim sign no key", MIN "dkim = { sign = ( { domain = \"a.b\"; selector = \"s\"; } ); };\n", 5,
     "key: required (the private key file)"},
    {"dmarc reject choice", MIN "dmarc = { reject = \"drop\"; };\n", 5,
     "must be \"reject\" or \"quarantine\", not \"drop\""},
    {"dmarc unknown", MIN "dmarc = { policy = \"x\"; };\n", 5, "policy"},
    {"auth bad allow", MIN "auth = { allow = [ \"192.0.2.0/33\" ]; };\n", 5,
     "is not an address or prefix"},
    {"auth bad id", MIN "auth = { authserv_id = \"a b\"; };\n", 5, "\"a b\""},
    {"local needs path", "listeners = ( { mode = \"local\"; } );\n" D_OK U_OK P_OK, 1,
     "mode \"local\" needs an absolute socket path"},
    {"local with port",
     "listeners = ( { mode = \"local\"; path = \"/run/p.sock\"; port = 25; } );\n" D_OK U_OK P_OK,
     1, "takes a path, not an address, port or starttls"},
    {"path for smtp",
     "listeners = ( { address = \"127.0.0.1\"; port = 25; path = \"/x\"; } );\n" D_OK U_OK P_OK, 1,
     "only for mode \"local\""},
    {"submission without tls",
     "listeners = ( { address = \"::\"; port = 587; mode = \"submission\"; } );\n" D_OK U_OK P_OK,
     1, "mode \"submission\" needs tls.certificate"},
    {"delivery bad relayhost", MIN "delivery = { relayhost = \"[smtp.example.net\"; };\n", 5,
     "[smtp.example.net"},
    {"delivery retry order", MIN "delivery = { retry_initial = 600; retry_max = 60; };\n", 5,
     "must not be shorter than retry_initial"},
    {"delivery relay user alone", MIN "delivery = { relay_user = \"u\"; };\n", 5,
     "relay_user and relay_password_file go together"},
    {"delivery families", MIN "delivery = { families = \"ipx\"; };\n", 5, "must be \"both\""},
    {"dkim sign duplicate",
     MIN "dkim = { sign = ( { domain = \"a.b\"; selector = \"s\"; key = \"k\"; },\n"
         " { domain = \"A.b\"; selector = \"s\"; key = \"k2\"; } ); };\n",
     6, "duplicate key s._domainkey.a.b"},
    {"dkim sign unknown key",
     MIN "dkim = { sign = ( { domain = \"a.b\"; selector = \"s\"; file = \"k\"; } ); };\n", 5,
     "unknown setting"},
};

/* want is a substring of got; a want ending in '$' must end got. */
static int contains(const char *got, const char *want)
{
    size_t gl = strlen(got), wl = strlen(want);

    if (wl > 0 && want[wl - 1] == '$')
        return gl >= wl - 1 && memcmp(got + gl - (wl - 1), want, wl - 1) == 0;
    return strstr(got, want) != NULL;
}

/* Loads text (len bytes) from a file; 0 when refused with "FILE:LINE: ...want",
 * else prints got and want and returns 1. */
static int check_refusal(const char *name, const char *text, size_t len, unsigned line,
                         const char *want)
{
    char path[64], prefix[96], err[512] = "";
    struct pst_conf *c;

    write_temp(path, sizeof path, text, len);
    c = pst_conf_load_file(path, err, sizeof err);
    unlink(path);
    if (c != NULL) {
        pst_conf_free(c);
        print_error("%s: loaded, want refusal \"%s\"\n", name, want);
        return 1;
    }
    if (line > 0)
        snprintf(prefix, sizeof prefix, "%s:%u: ", path, line);
    else
        snprintf(prefix, sizeof prefix, "%s: ", path);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !contains(err, want)) {
        print_error("%s:\n  got  %s\n  want %s...%s\n", name, err, prefix, want);
        return 1;
    }
    return 0;
}

static void test_refusals(void **state)
{
    size_t n = sizeof bad_cases / sizeof bad_cases[0];
    int failed = 0;

    for (size_t i = 0; i < n; i++)
        failed += check_refusal(bad_cases[i].name, bad_cases[i].text, strlen(bad_cases[i].text),
                                bad_cases[i].line, bad_cases[i].want);
    print_message("%zu refusal cases, %d failed\n", n, failed);
    assert_int_equal(failed, 0);
}

static void test_refusals_file(void **state)
{
    static const char with_nul[] = MIN "# a\0b\n";
    char err[512] = "";
    char big[64];
    struct pst_conf *c;
    char *text;
    size_t n = 1024 * 1024 + 1;

    assert_int_equal(
        check_refusal("nul byte", with_nul, sizeof with_nul - 1, 5, "NUL byte in the file"), 0);

    text = malloc(n + 1);
    assert_non_null(text);
    memset(text, '\n', n);
    text[n] = '\0';
    assert_int_equal(check_refusal("too big", text, n, 0, "larger than 1048576 bytes"), 0);
    free(text);

    c = pst_conf_load_file("/nonexistent/postern.conf", err, sizeof err);
    assert_null(c);
    assert_string_equal(err, "/nonexistent/postern.conf: cannot open: No such file or directory");

    /* a short err buffer is cut, never overrun; NULL err is allowed */
    c = pst_conf_load_file("/nonexistent/postern.conf", big, 8);
    assert_null(c);
    assert_string_equal(big, "/nonexi");
    assert_null(pst_conf_load_file("/nonexistent/postern.conf", NULL, 0));
}

/* ---- recipient lookup --------------------------------------------------- */

#define RCPT_CONF                                                                                  \
    L_OK "domains = [ \"example.org\", \"example.net\" ];\n"                                       \
         "users = ( { name = \"alice\"; }, { name = \"bob\"; }, { name = \"carol\"; } );\n"        \
         "postmaster = \"alice\";\n"                                                               \
         "aliases = ( { from = \"abuse\"; to = \"bob\"; },\n"                                      \
         "  { from = \"info@example.net\"; to = \"bob\"; },\n"                                     \
         "  { from = \"alice@example.net\"; to = \"bob\"; },\n"                                    \
         "  { from = \"sales\"; to = \"carol\"; },\n"                                              \
         "  { from = \"Sales@example.org\"; to = \"bob\"; } );\n"

struct rcpt_case {
    const char *local, *domain;
    enum pst_rcpt_result want;
    const char *want_user; /* with PST_RCPT_OK */
};

static const struct rcpt_case rcpt_catchall[] = {
    {"postmaster", "example.org", PST_RCPT_OK, "alice"},
    {"postmaster", "example.net", PST_RCPT_OK, "alice"},
    {"PostMaster", "example.net", PST_RCPT_OK, "alice"},
    {"Postmaster", "", PST_RCPT_OK, "alice"},
    {"postmaster", "", PST_RCPT_OK, "alice"},
    {"bob", "", PST_RCPT_NOUSER, NULL},
    {"info", "example.net", PST_RCPT_OK, "bob"},   /* alias, full address */
    {"INFO", "example.net", PST_RCPT_OK, "bob"},   /* case-insensitive local part */
    {"info", "example.org", PST_RCPT_OK, "carol"}, /* full alias is per domain: catch-all */
    {"abuse", "example.org", PST_RCPT_OK, "bob"},  /* alias, local part, every domain */
    {"Abuse", "example.net", PST_RCPT_OK, "bob"},
    {"sales", "example.org", PST_RCPT_OK, "bob"},   /* full address before local part */
    {"sales", "example.net", PST_RCPT_OK, "carol"}, /* local part alias */
    {"alice", "example.org", PST_RCPT_OK, "alice"}, /* user */
    {"ALICE", "example.org", PST_RCPT_OK, "alice"},
    {"alice", "example.net", PST_RCPT_OK, "bob"}, /* full address alias before user */
    {"bob", "example.net", PST_RCPT_OK, "bob"},
    {"nobody", "example.org", PST_RCPT_OK, "carol"}, /* catch-all */
    {"alic", "example.org", PST_RCPT_OK, "carol"},
    {"alice", "example.com", PST_RCPT_NOTLOCAL, NULL},
    {"postmaster", "example.com", PST_RCPT_NOTLOCAL, NULL},
    {"alice", "org", PST_RCPT_NOTLOCAL, NULL},
    {"alice", "sub.example.org", PST_RCPT_NOTLOCAL, NULL},
};

static const struct rcpt_case rcpt_plain[] = {
    {"postmaster", "example.org", PST_RCPT_OK, "alice"},
    {"nobody", "example.org", PST_RCPT_NOUSER, NULL}, /* unknown user */
    {"info", "example.org", PST_RCPT_NOUSER, NULL},
    {"info", "example.net", PST_RCPT_OK, "bob"},
    {"carol", "example.org", PST_RCPT_OK, "carol"},
    {"carol", "example.com", PST_RCPT_NOTLOCAL, NULL},
    {"", "example.org", PST_RCPT_NOUSER, NULL},
};

static void check_rcpt(const char *text, const struct rcpt_case *cases, size_t n)
{
    char err[512] = "";
    struct pst_conf *c = load_text(text, err, sizeof err);

    assert_non_null(c);
    for (size_t i = 0; i < n; i++) {
        const struct pst_user_conf *u = NULL;
        enum pst_rcpt_result got = pst_conf_rcpt(c, cases[i].local, cases[i].domain, &u);

        if (got != cases[i].want || (got == PST_RCPT_OK && strcmp(u->name, cases[i].want_user)))
            fail_msg("rcpt <%s@%s>: got %d %s want %d %s", cases[i].local, cases[i].domain,
                     (int)got, got == PST_RCPT_OK ? u->name : "-", (int)cases[i].want,
                     cases[i].want_user ? cases[i].want_user : "-");
        if (got != PST_RCPT_OK)
            assert_null(u); /* not written on failure */
    }
    pst_conf_free(c);
}

static void test_rcpt(void **state)
{
    check_rcpt(RCPT_CONF "catchall = \"carol\";\n", rcpt_catchall,
               sizeof rcpt_catchall / sizeof rcpt_catchall[0]);
    check_rcpt(RCPT_CONF, rcpt_plain, sizeof rcpt_plain / sizeof rcpt_plain[0]);
}

static void test_local_domain(void **state)
{
    char err[512] = "";
    struct pst_conf *c = pst_conf_load_default(err, sizeof err);

    assert_non_null(c);
    assert_true(pst_conf_is_local_domain(c, "localhost"));
    assert_true(pst_conf_is_local_domain(c, "example.test"));
    assert_true(pst_conf_is_local_domain(c, "Example.TEST"));
    assert_false(pst_conf_is_local_domain(c, "example.test."));
    assert_false(pst_conf_is_local_domain(c, "test"));
    assert_false(pst_conf_is_local_domain(c, ""));
    assert_false(pst_conf_is_local_domain(c, NULL));
    pst_conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_refusals_file),
        cmocka_unit_test(test_rcpt),
        cmocka_unit_test(test_local_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
