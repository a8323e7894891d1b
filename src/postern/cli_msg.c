/*
 * cli_msg.c - reading a message from stdin for the commands that check or
 * sign one (dkim sign/verify, auth). Messages in files often have LF line
 * ends; the protocols want CRLF, so an LF message is converted on the way.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "err.h"
#include "msg.h"

int cli_read_all(int fd, struct pst_buf *b)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return PST_ERR_IO;
        if (n == 0)
            return 0;
        int rc = pst_buf_add(b, chunk, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

int cli_message_read(struct cli_message *m, const char *cmd)
{
    m->raw = pst_buf_new(CLI_MAX_MESSAGE);
    m->hdr = pst_buf_new(PST_MSG_MAX_HEADER * 2);
    if (m->raw == NULL || m->hdr == NULL)
        return CLI_ERROR;
    int rc = cli_read_all(0, m->raw);
    if (rc < 0) {
        fprintf(stderr, "postern: %s: reading the message: %s\n", cmd,
                rc == PST_ERR_IO ? strerror(errno) : pst_strerror(rc));
        return CLI_ERROR;
    }
    const char *p = pst_buf_data(m->raw);
    size_t n = pst_buf_len(m->raw);
    const char *nl = memchr(p, '\n', n);
    m->lf = nl != NULL && (nl == p || nl[-1] != '\r');
    size_t i = 0;
    for (; i < n; i++) {
        /* the header section ends at the first empty line */
        int eol = m->lf ? p[i] == '\n' : (p[i] == '\n' && i > 0 && p[i - 1] == '\r');
        if (!eol)
            continue;
        int empty = m->lf ? (i == 0 || p[i - 1] == '\n') : (i == 1 || (i >= 2 && p[i - 2] == '\n'));
        if (empty) {
            i++;
            break;
        }
    }
    m->body_off = i;
    if (!m->lf)
        return pst_buf_add(m->hdr, p, i) == 0 ? CLI_OK : CLI_ERROR;
    for (size_t k = 0; k < i; k++) {
        if (p[k] == '\n' && pst_buf_addc(m->hdr, '\r') < 0)
            return CLI_ERROR;
        if (pst_buf_addc(m->hdr, p[k]) < 0)
            return CLI_ERROR;
    }
    return CLI_OK;
}

void cli_message_free(struct cli_message *m)
{
    pst_buf_free(m->raw);
    pst_buf_free(m->hdr);
}

/* Feeds the body, converting LF to CRLF when the message uses LF. */
void cli_message_feed(const struct cli_message *m, void (*feed)(void *, const char *, size_t),
                      void *arg)
{
    const char *p = pst_buf_data(m->raw) + m->body_off;
    size_t n = pst_buf_len(m->raw) - m->body_off;
    if (!m->lf) {
        feed(arg, p, n);
        return;
    }
    char out[2 * 8192];
    size_t j = 0;
    for (size_t k = 0; k < n; k++) {
        if (p[k] == '\n')
            out[j++] = '\r';
        out[j++] = p[k];
        if (j >= sizeof out - 2) {
            feed(arg, out, j);
            j = 0;
        }
    }
    feed(arg, out, j);
}
