/*
 * fuzz_config.c - the configuration loader (our lexical pre-scan, then
 * libconfig, then validation) on arbitrary bytes. The loader reads a file,
 * so each input goes through an anonymous memory file.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("postern.conf", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return 0;
        }
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char err[512];
    struct pst_conf *c = pst_conf_load_file(path, err, sizeof(err));
    if (c != NULL) {
        /* a loaded configuration must answer lookups without trouble */
        const struct pst_user_conf *u = NULL;
        pst_conf_rcpt(c, "postmaster", "", &u);
        pst_conf_rcpt(c, "x", "example.test", &u);
        pst_conf_free(c);
    }
    close(fd);
    return 0;
}
