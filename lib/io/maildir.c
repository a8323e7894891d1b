/*
 * maildir.c - local delivery into a Maildir (https://cr.yp.to/proto/maildir.html
 * and the Dovecot/Courier name extensions): write tmp/UNIQUE, fsync, rename
 * into new/UNIQUE,S=<size>, fsync new/. The trace lines Return-Path
 * (RFC 5321 4.4) and Delivered-To come first; CRLF becomes LF since
 * Maildir files hold local (LF) line ends.
 *
 * Limits: the message is streamed through two fixed 64 KiB buffers; host
 * names longer than 255 bytes are refused.
 */
#include "queue.h"
#include "err.h"
#include "fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK    (64 * 1024)
#define HOST_MAX 255
#define TRIES    8
/* "SECONDS.M<usec>P<pid>Q<n>." with every number at its widest */
#define BASE_FIXED (20 + 2 + 6 + 1 + 10 + 1 + 10 + 1)
/* ",S=" and a 64-bit size */
#define SIZE_SUFFIX (3 + 20)

/* Per-process delivery counter (the Q part of the name). */
static atomic_uint delivery_counter;

/* 1 when s holds no control characters (header injection guard). */
static int line_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* Host part of the name: '/' and ':' written as \057 and \072 (they
 * separate paths and Maildir flags). PST_ERR_INVAL when too long. */
static int encode_host(const char *host, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = host; *p != '\0'; p++) {
        const char *rep = NULL;
        if (*p == '/')
            rep = "\\057";
        else if (*p == ':')
            rep = "\\072";
        size_t n = rep != NULL ? 4 : 1;
        if (o + n >= outlen)
            return PST_ERR_INVAL;
        if (rep != NULL)
            memcpy(out + o, rep, 4);
        else
            out[o] = *p;
        o += n;
    }
    out[o] = '\0';
    return 0;
}

/* Opens path (made with mode 0700 when missing) and its tmp/ and new/,
 * creating cur/ too. Directory fds in *dir, *tmp, *new. */
static int open_maildir(const char *path, int *dir, int *tmp, int *new)
{
    int rc, created = 0;
    int d = -1, t = -1, n = -1;

    if ((rc = pst_fsio_mkdirs(path, 0700)) != 0)
        goto out;
    d = pst_fsio_openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, 0);
    if (d < 0) {
        rc = PST_ERR_IO;
        goto out;
    }
    if ((rc = pst_fsio_mkdir_at(d, "tmp", 0700, &created)) != 0 ||
        (rc = pst_fsio_mkdir_at(d, "new", 0700, &created)) != 0 ||
        (rc = pst_fsio_mkdir_at(d, "cur", 0700, &created)) != 0)
        goto out;
    if (created && (rc = pst_fsio_fsync(d)) != 0)
        goto out;
    t = pst_fsio_opendir_at(d, "tmp");
    if (t >= 0)
        n = pst_fsio_opendir_at(d, "new");
    if (t < 0 || n < 0) {
        rc = PST_ERR_IO;
        goto out;
    }
    *dir = d;
    *tmp = t;
    *new = n;
    return 0;
out:;
    int saved = errno;
    if (n >= 0)
        close(n);
    if (t >= 0)
        close(t);
    if (d >= 0)
        close(d);
    errno = saved;
    return rc;
}

/* Copies the message from msg_fd (offset 0, by pread) to out, CRLF -> LF.
 * *written gets the bytes written. */
static int copy_lf(int msg_fd, int out, uint64_t *written)
{
    int rc;
    char *in = malloc(CHUNK), *buf = malloc(CHUNK);
    size_t o = 0;
    off_t off = 0;
    int cr = 0; /* a CR seen at the end of the last chunk, not yet written */
    uint64_t total = 0;

    if (in == NULL || buf == NULL) {
        rc = PST_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = pst_fsio_pread(msg_fd, in, CHUNK, off);
        if (n < 0) {
            rc = PST_ERR_IO;
            goto out;
        }
        if (n == 0)
            break;
        off += n;
        for (ssize_t i = 0; i < n; i++) {
            char c = in[i];
            /* room for a held CR and c */
            if (o + 2 > CHUNK) {
                if ((rc = pst_fsio_write_all(out, buf, o)) != 0)
                    goto out;
                total += o;
                o = 0;
            }
            if (cr) {
                cr = 0;
                if (c != '\n')
                    buf[o++] = '\r'; /* a CR alone is kept */
            }
            if (c == '\r')
                cr = 1;
            else
                buf[o++] = c;
        }
    }
    if (cr)
        buf[o++] = '\r';
    if (o > 0 && (rc = pst_fsio_write_all(out, buf, o)) != 0)
        goto out;
    total += o;
    *written = total;
    rc = 0;
out:
    free(in);
    free(buf);
    return rc;
}

int pst_maildir_deliver(const char *path, int msg_fd, const char *hostname, const char *sender,
                        const char *rcpt, uint64_t now_usec, char *name_out, size_t name_len)
{
    int rc;
    int dir = -1, tmp = -1, new = -1, fd = -1;
    char host[HOST_MAX + 1], ehost[4 * HOST_MAX + 1];
    char base[BASE_FIXED + sizeof(ehost)], final[sizeof(base) + SIZE_SUFFIX];
    int in_tmp = 0, in_new = 0;
    char *head = NULL;

    if (path == NULL || msg_fd < 0 || sender == NULL || rcpt == NULL || rcpt[0] == '\0')
        return PST_ERR_INVAL;
    if (!line_safe(sender) || !line_safe(rcpt))
        return PST_ERR_INVAL;
    if (hostname == NULL) {
        if (gethostname(host, sizeof(host)) != 0)
            return PST_ERR_IO;
        host[sizeof(host) - 1] = '\0';
        hostname = host;
    }
    if (hostname[0] == '\0' || strlen(hostname) > HOST_MAX)
        return PST_ERR_INVAL;
    if (encode_host(hostname, ehost, sizeof(ehost)) != 0)
        return PST_ERR_INVAL;

    /* RFC 5321 4.4: the return path as the first line of the delivered
     * message, then the recipient it was delivered to */
    size_t hlen = strlen(sender) + strlen(rcpt) + 64;
    head = malloc(hlen);
    if (head == NULL)
        return PST_ERR_NOMEM;
    int hn = snprintf(head, hlen, "Return-Path: <%s>\nDelivered-To: %s\n", sender, rcpt);
    if (hn < 0 || (size_t)hn >= hlen) {
        rc = PST_ERR_INVAL;
        goto out;
    }

    if ((rc = open_maildir(path, &dir, &tmp, &new)) != 0)
        goto out;

    uint64_t secs = now_usec / 1000000, usec = now_usec % 1000000;
    for (int t = 0;; t++) {
        unsigned q = atomic_fetch_add(&delivery_counter, 1);
        snprintf(base, sizeof(base), "%" PRIu64 ".M%" PRIu64 "P%ldQ%u.%s", secs, usec,
                 (long)getpid(), q, ehost);
        if (name_out != NULL && name_len < strlen(base) + SIZE_SUFFIX + 1) {
            rc = PST_ERR_INVAL;
            goto out;
        }
        fd = pst_fsio_openat(tmp, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
        if (fd >= 0)
            break;
        /* the name is taken (another process reusing our pid in the same
         * microsecond): the counter makes the next name different */
        if (errno != EEXIST || t + 1 == TRIES) {
            rc = PST_ERR_IO;
            goto out;
        }
    }
    in_tmp = 1;

    uint64_t size = 0;
    if ((rc = pst_fsio_write_all(fd, head, (size_t)hn)) != 0 ||
        (rc = copy_lf(msg_fd, fd, &size)) != 0 || (rc = pst_fsio_fsync(fd)) != 0)
        goto out;
    size += (uint64_t)hn;
    int f = fd;
    fd = -1;
    if ((rc = pst_fsio_close(f)) != 0)
        goto out;

    snprintf(final, sizeof(final), "%s,S=%" PRIu64, base, size);
    if ((rc = pst_fsio_rename_noreplace(tmp, base, new, final)) != 0)
        goto out;
    in_tmp = 0;
    in_new = 1;
    if ((rc = pst_fsio_fsync(new)) != 0)
        goto out;
    in_new = 0;
    if (name_out != NULL)
        snprintf(name_out, name_len, "%s", final);
    rc = 0;
out:;
    int saved = errno;
    if (fd >= 0)
        close(fd); /* failing anyway */
    /* a failure means "not delivered": take back what is visible, so a
     * retry does not leave two copies (best effort) */
    if (in_tmp)
        unlinkat(tmp, base, 0);
    if (in_new)
        unlinkat(new, final, 0);
    /* read-only directory fds: nothing to flush */
    if (new >= 0)
        close(new);
    if (tmp >= 0)
        close(tmp);
    if (dir >= 0)
        close(dir);
    free(head);
    errno = saved;
    return rc;
}
