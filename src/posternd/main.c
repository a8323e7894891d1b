/*
 * main.c - posternd, the postern mail transfer agent daemon.
 *
 *   posternd [-c FILE]     run with a configuration file (default
 *                          PST_SYSCONFDIR/postern.conf), in the foreground
 *   posternd --embedded    run on the embedded default configuration
 *                          (make run): ports 2525 and 4650 on 127.0.0.1,
 *                          everything below ./var
 *   posternd -t [-c FILE]  check the configuration and exit
 *   posternd --print-default   print the embedded configuration
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "sasl.h"
#include "pst_config.h"
#include "worker.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: posternd [-c FILE | --embedded] [-t]\n"
               "       posternd --print-default | --version\n");
}

static int drop_privileges(const char *user)
{
    if (user == NULL || geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        log_err("run_as: no such user %s", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        log_err("run_as %s: %s", user, strerror(errno));
        return -1;
    }
    log_info("running as %s", user);
    return 0;
}

static struct event *retry_timer, *usr1;

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct pstd *d = arg;
    (void)fd;
    (void)what;
    if (!d->stopping) {
        pstd_delivery_tick(d->delivery);
        pstd_results_tick(d);
    }
}

/* SIGUSR1 (`postern queue flush`, release): read the queue directory again */
static void on_usr1(evutil_socket_t fd, short what, void *arg)
{
    struct pstd *d = arg;
    (void)fd;
    (void)what;
    if (!d->stopping) {
        log_info("SIGUSR1: scanning the queue");
        pstd_delivery_scan(d->delivery);
    }
}

/* spool/posternd.pid, for `postern queue flush` to signal us */
static void write_pid(const char *spool)
{
    char path[4096], text[32];
    snprintf(path, sizeof(path), "%s/posternd.pid", spool);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        log_warn("cannot write %s: %s", path, strerror(errno));
        return;
    }
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (write(fd, text, (size_t)n) != n)
        log_warn("cannot write %s: %s", path, strerror(errno));
    close(fd);
}

int main(int argc, char **argv)
{
    const char *conf_path = PST_SYSCONFDIR "/postern.conf";
    int embedded = 0, test_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            conf_path = argv[++i];
        } else if (strcmp(argv[i], "--embedded") == 0) {
            embedded = 1;
        } else if (strcmp(argv[i], "-t") == 0) {
            test_only = 1;
        } else if (strcmp(argv[i], "--print-default") == 0) {
            fputs(pst_conf_default_text(), stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("posternd %s\n", PST_VERSION);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    char err[1024] = "";
    struct pst_conf *conf = embedded ? pst_conf_load_default(err, sizeof(err))
                                     : pst_conf_load_file(conf_path, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "posternd: %s\n", err);
        return 1;
    }
    if (test_only) {
        printf("posternd: configuration %s is valid\n", conf->source);
        pst_conf_free(conf);
        return 0;
    }
    pstd_log_init(conf->log_target == PST_LOG_SYSLOG, conf->log_debug);

    struct pstd d;
    memset(&d, 0, sizeof(d));
    d.conf_path = embedded ? NULL : conf_path;
    int status = 1;
    if (pstd_mkdirs(conf->spool) != 0 || pstd_mkdirs(conf->mail_root) != 0) {
        log_err("cannot create %s or %s: %s", conf->spool, conf->mail_root, strerror(errno));
        pst_conf_free(conf);
        return 1;
    }
    d.cur = pstd_confref_make(conf, err, sizeof(err));
    if (d.cur == NULL) {
        log_err("%s", err);
        pst_conf_free(conf);
        return 1;
    }
    int rc = pst_queue_open(conf->spool, &d.queue);
    if (rc != 0) {
        if (rc == PST_ERR_AGAIN)
            log_err("the spool %s is in use by another posternd", conf->spool);
        else
            log_err("cannot open the spool %s: %s: %s", conf->spool, pst_strerror(rc),
                    strerror(errno));
        goto out;
    }
    rc = pst_queue_recover(d.queue);
    if (rc < 0)
        log_err("queue recovery: %s", pst_strerror(rc));
    else if (rc > 0)
        log_info("queue recovery: removed %d unacknowledged file%s", rc, rc == 1 ? "" : "s");

    evthread_use_pthreads();
    d.base = event_base_new();
    d.iptab = pstd_iptab_new();
    d.commit_pool = pstd_pool_new(d.base, 2);
    d.check_pool = pstd_pool_new(d.base, 2);
    /* the delivery pool's size is the global limit of deliveries at once */
    d.deliver_pool = pstd_pool_new(d.base, (int)conf->out_concurrency);
    d.outbound = pstd_outbound_new();
    d.authlimit = pst_authlimit_new(4096, conf->auth_max_failures, conf->auth_window);
    d.results = pstd_results_new();
    d.spool = pstd_spool_new(&d);
    d.delivery = pstd_delivery_new(&d);
    if (!d.base || !d.iptab || !d.commit_pool || !d.check_pool || !d.deliver_pool || !d.outbound ||
        !d.spool || !d.delivery) {
        log_err("out of memory at start");
        goto out;
    }
    if (pstd_listen(&d, err, sizeof(err)) != 0) {
        log_err("%s", err);
        goto out;
    }
    if (pstd_signals(&d) != 0) {
        log_err("cannot install signal handlers");
        goto out;
    }
    if (conf->run_user != NULL && geteuid() == 0) {
        /* the spool and the mail root must stay writable after the switch */
        struct passwd *pw = getpwnam(conf->run_user);
        if (pw == NULL) {
            log_err("run_as: no such user %s", conf->run_user);
            goto out;
        }
        const char *dirs[] = {conf->spool, conf->mail_root};
        for (size_t i = 0; i < 2; i++) {
            char sub[4096];
            const char *subs[] = {"", "/incoming", "/queue"};
            for (size_t j = 0; j < (i == 0 ? 3u : 1u); j++) {
                snprintf(sub, sizeof(sub), "%s%s", dirs[i], subs[j]);
                if (chown(sub, pw->pw_uid, pw->pw_gid) != 0)
                    log_warn("chown %s: %s", sub, strerror(errno));
            }
        }
    }
    if (drop_privileges(conf->run_user) != 0)
        goto out;

    log_info("posternd %s started with %s", PST_VERSION, conf->source);
    if (embedded) {
        const struct pst_listener_conf *l = &conf->listeners[0];
        log_info("send a first message: swaks --server %s:%d --to postmaster@example.test "
                 "--from you@example.test --tls ; it lands in %s/postmaster/new/",
                 l->address, l->port, conf->mail_root);
    }
    write_pid(conf->spool);
    pstd_delivery_scan(d.delivery);
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    retry_timer = event_new(d.base, -1, EV_PERSIST, on_retry, &d);
    if (retry_timer != NULL)
        event_add(retry_timer, &tv);
    usr1 = evsignal_new(d.base, SIGUSR1, on_usr1, &d);
    if (usr1 != NULL)
        evsignal_add(usr1, NULL);

    event_base_dispatch(d.base);
    status = 0;
    {
        /* the running configuration's spool (conf may be gone after a reload) */
        char pidfile[4096];
        snprintf(pidfile, sizeof(pidfile), "%s/posternd.pid", d.cur->conf->spool);
        unlink(pidfile);
    }

out:
    /* orderly end: no sessions remain; let commits and deliveries finish */
    if (retry_timer != NULL)
        event_free(retry_timer);
    if (usr1 != NULL)
        event_free(usr1);
    pstd_pool_free(d.check_pool);
    pstd_pool_free(d.commit_pool);
    pstd_pool_free(d.deliver_pool);
    pstd_spool_free(d.spool);
    pstd_delivery_free(d.delivery);
    pstd_outbound_free(d.outbound);
    pst_authlimit_free(d.authlimit);
    pstd_results_free(d.results); /* after the check pool: nothing writes now */
    pstd_signals_free(&d);
    pstd_listeners_free(&d);
    pstd_iptab_free(d.iptab);
    pst_queue_close(d.queue);
    pstd_conf_put(&d, d.cur);
    if (d.base != NULL)
        event_base_free(d.base);
    libevent_global_shutdown();
    log_info("%s", status == 0 ? "stopped" : "not started");
    return status;
}
