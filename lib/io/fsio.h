/*
 * fsio.h - private helpers of lib/io for durable file work: system calls
 * retried on EINTR, writes completed after short counts, fsync and close
 * checked. Not a public header: only lib/io's .c files include it.
 *
 * Every function returns 0 (or a count / fd) on success and PST_ERR_IO with
 * errno set by the failing system call; cleanup inside a helper keeps that
 * errno.
 */
#ifndef PST_FSIO_H
#define PST_FSIO_H

#include <stddef.h>
#include <sys/types.h>

struct pst_buf;

/* openat() retried on EINTR; O_CLOEXEC is always added. fd or -1/errno. */
int pst_fsio_openat(int dirfd, const char *name, int flags, mode_t mode);
/* Opens a directory (for openat and fsync). fd or -1/errno. */
int pst_fsio_opendir_at(int dirfd, const char *name);

/* Writes all len bytes, retrying EINTR and short writes. 0 or PST_ERR_IO. */
int pst_fsio_write_all(int fd, const void *data, size_t len);
/* pwrite() of all len bytes at off, retrying EINTR and short writes. 0 or
 * PST_ERR_IO. */
int pst_fsio_pwrite_all(int fd, const void *data, size_t len, off_t off);
/* read() / pread() retried on EINTR: bytes read (0 at EOF) or -1/errno. */
ssize_t pst_fsio_read(int fd, void *data, size_t len);
ssize_t pst_fsio_pread(int fd, void *data, size_t len, off_t off);
/* fsync() retried on EINTR. 0 or PST_ERR_IO. */
int pst_fsio_fsync(int fd);
/* close() once (never retried: Linux releases the fd even on EINTR, and a
 * retry could close another thread's new fd). EINTR counts as closed;
 * callers fsync before, so no data depends on it. 0 or PST_ERR_IO. */
int pst_fsio_close(int fd);

/* Creates dirfd/name (mode 0600, O_EXCL when excl, else truncating), writes
 * len bytes, fsyncs and closes it. On failure the file is unlinked.
 * The directory entry is NOT fsync'd: the caller renames or fsyncs. */
int pst_fsio_write_file_at(int dirfd, const char *name, const void *data, size_t len, int excl);
/* Reads dirfd/name into b (which bounds the size: PST_ERR_TOOBIG when the
 * file is longer than pst_buf_max(b)). PST_ERR_NOTFOUND when missing. */
int pst_fsio_read_file_at(int dirfd, const char *name, struct pst_buf *b);

/* rename that refuses to replace an existing target (RENAME_NOREPLACE;
 * EEXIST then). Falls back to plain renameat() on file systems without
 * RENAME_NOREPLACE. 0 or PST_ERR_IO. */
int pst_fsio_rename_noreplace(int olddir, const char *oldname, int newdir, const char *newname);

/* mkdir -p: creates every missing component of path with mode, and fsyncs
 * the parent of each directory it created so the new entry is durable.
 * An existing non-directory is PST_ERR_IO/ENOTDIR. 0 or PST_ERR_IO. */
int pst_fsio_mkdirs(const char *path, mode_t mode);
/* Makes dirfd/name a directory (mode) when missing; *created is set to 1
 * when it was made (the caller fsyncs dirfd), left alone otherwise. */
int pst_fsio_mkdir_at(int dirfd, const char *name, mode_t mode, int *created);

#endif
