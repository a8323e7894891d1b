/*
 * fsio.c - durable-file helpers shared by the queue and Maildir delivery:
 * EINTR retries, full writes, checked fsync and close, bounded reads,
 * no-replace renames and directory creation made durable.
 */
#include "fsio.h"
#include "buf.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pst_fsio_openat(int dirfd, const char *name, int flags, mode_t mode)
{
    int fd;
    do {
        fd = openat(dirfd, name, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

int pst_fsio_opendir_at(int dirfd, const char *name)
{
    return pst_fsio_openat(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
}

int pst_fsio_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return PST_ERR_IO;
        }
        if (n == 0) {
            /* write(2) returning 0 for len > 0 should not happen on files;
             * do not spin on it */
            errno = EIO;
            return PST_ERR_IO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t pst_fsio_read(int fd, void *data, size_t len)
{
    ssize_t n;
    do {
        n = read(fd, data, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

int pst_fsio_pwrite_all(int fd, const void *data, size_t len, off_t off)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return PST_ERR_IO;
        p += w;
        len -= (size_t)w;
        off += w;
    }
    return 0;
}

ssize_t pst_fsio_pread(int fd, void *data, size_t len, off_t off)
{
    ssize_t n;
    do {
        n = pread(fd, data, len, off);
    } while (n < 0 && errno == EINTR);
    return n;
}

int pst_fsio_fsync(int fd)
{
    int r;
    do {
        r = fsync(fd);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? PST_ERR_IO : 0;
}

int pst_fsio_close(int fd)
{
    if (close(fd) < 0 && errno != EINTR)
        return PST_ERR_IO;
    return 0;
}

int pst_fsio_write_file_at(int dirfd, const char *name, const void *data, size_t len, int excl)
{
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | (excl ? O_EXCL : O_TRUNC);
    int fd = pst_fsio_openat(dirfd, name, flags, 0600);
    if (fd < 0)
        return PST_ERR_IO;
    int rc = pst_fsio_write_all(fd, data, len);
    if (rc == 0)
        rc = pst_fsio_fsync(fd);
    if (rc != 0) {
        int saved = errno;
        close(fd);
        unlinkat(dirfd, name, 0);
        errno = saved;
        return rc;
    }
    if (pst_fsio_close(fd) != 0) {
        int saved = errno;
        unlinkat(dirfd, name, 0);
        errno = saved;
        return PST_ERR_IO;
    }
    return 0;
}

int pst_fsio_read_file_at(int dirfd, const char *name, struct pst_buf *b)
{
    int rc;
    char chunk[8192];
    int fd = pst_fsio_openat(dirfd, name, O_RDONLY | O_NOFOLLOW, 0);
    if (fd < 0)
        return errno == ENOENT ? PST_ERR_NOTFOUND : PST_ERR_IO;
    for (;;) {
        ssize_t n = pst_fsio_read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            rc = PST_ERR_IO;
            goto out;
        }
        if (n == 0)
            break;
        rc = pst_buf_add(b, chunk, (size_t)n);
        if (rc != 0)
            goto out;
    }
    rc = 0;
out:;
    int saved = errno;
    close(fd); /* read-only: nothing to lose */
    errno = saved;
    return rc;
}

int pst_fsio_rename_noreplace(int olddir, const char *oldname, int newdir, const char *newname)
{
    if (renameat2(olddir, oldname, newdir, newname, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return PST_ERR_IO;
    /* file system without RENAME_NOREPLACE: a plain rename */
    if (renameat(olddir, oldname, newdir, newname) == 0)
        return 0;
    return PST_ERR_IO;
}

/* fsyncs the directory holding the last component of path (path is cut at
 * its last '/' by the caller: dir is "" for ".", "/" stays "/"). */
static int fsync_dir_path(const char *dir)
{
    int fd = pst_fsio_openat(AT_FDCWD, dir[0] != '\0' ? dir : ".", O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return PST_ERR_IO;
    int rc = pst_fsio_fsync(fd);
    int saved = errno;
    if (pst_fsio_close(fd) != 0 && rc == 0)
        rc = PST_ERR_IO;
    else
        errno = saved;
    return rc;
}

int pst_fsio_mkdirs(const char *path, mode_t mode)
{
    int rc;
    size_t len = strlen(path);
    if (len == 0) {
        errno = ENOENT;
        return PST_ERR_IO;
    }
    char *p = strdup(path);
    if (p == NULL)
        return PST_ERR_NOMEM;
    /* strip trailing slashes ("a/b/" is "a/b") */
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    for (size_t i = 1; i <= len; i++) {
        if (i < len && p[i] != '/')
            continue;
        if (i < len && p[i - 1] == '/')
            continue; /* "a//b" */
        char saved_c = p[i];
        p[i] = '\0';
        if (mkdir(p, mode) == 0) {
            /* the new entry lives in its parent: make it durable there */
            char *slash = strrchr(p, '/');
            if (slash == p) {
                rc = fsync_dir_path("/");
            } else if (slash != NULL) {
                *slash = '\0';
                rc = fsync_dir_path(p);
                *slash = '/';
            } else {
                rc = fsync_dir_path("");
            }
            if (rc != 0)
                goto out;
        } else if (errno != EEXIST) {
            rc = PST_ERR_IO;
            goto out;
        }
        p[i] = saved_c;
    }
    rc = 0;
out:;
    int saved = errno;
    free(p);
    errno = saved;
    return rc;
}

int pst_fsio_mkdir_at(int dirfd, const char *name, mode_t mode, int *created)
{
    if (mkdirat(dirfd, name, mode) == 0) {
        *created = 1;
        return 0;
    }
    return errno == EEXIST ? 0 : PST_ERR_IO;
}
