/*
 * store.c - the SQLite state store (see store.h).
 */
#include "store.h"
#include "err.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pst_store {
    sqlite3 *db;
    sqlite3_stmt *ins_result, *ins_dkim;
    unsigned batch_rows; /* commit after this many rows (0/1: each) */
    int64_t batch_ms;    /* ... or when the open transaction is this old */
    int in_txn;
    unsigned rows; /* in the open transaction */
    int64_t started;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS auth_result("
    " id INTEGER PRIMARY KEY, time INTEGER NOT NULL, queue_id TEXT, source_ip TEXT NOT NULL,"
    " helo TEXT, envelope_from TEXT, header_from TEXT, spf_result TEXT, spf_domain TEXT,"
    " dmarc_result TEXT, policy_domain TEXT, policy_tag TEXT, policy TEXT, testing INTEGER,"
    " adkim TEXT, aspf TEXT, disposition TEXT NOT NULL, override TEXT);"
    "CREATE INDEX IF NOT EXISTS auth_result_time ON auth_result(time);"
    "CREATE TABLE IF NOT EXISTS auth_dkim("
    " result_id INTEGER NOT NULL REFERENCES auth_result(id) ON DELETE CASCADE,"
    " domain TEXT, selector TEXT, result TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS auth_dkim_result ON auth_dkim(result_id);"
    "PRAGMA user_version=1;";

static int fail(struct pst_store *s, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", what, s->db ? sqlite3_errmsg(s->db) : "out of memory");
    return PST_ERR_IO;
}

int pst_store_open(const char *path, struct pst_store **out, char *err, size_t errlen)
{
    struct pst_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return PST_ERR_NOMEM;
    }
    int rc;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = fail(s, path, err, errlen);
        goto bad;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail(s, path, err, errlen);
        goto bad;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO auth_result(time, queue_id, source_ip, helo, "
                           "envelope_from, header_from, spf_result, spf_domain, dmarc_result, "
                           "policy_domain, policy_tag, policy, testing, adkim, aspf, "
                           "disposition, override) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &s->ins_result, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO auth_dkim(result_id, domain, selector, result) "
                           "VALUES(?,?,?,?)",
                           -1, &s->ins_dkim, NULL) != SQLITE_OK) {
        rc = fail(s, path, err, errlen);
        goto bad;
    }
    *out = s;
    return 0;
bad:
    pst_store_close(s);
    return rc;
}

void pst_store_batch(struct pst_store *s, unsigned max_rows, int64_t max_ms)
{
    if (s == NULL)
        return;
    s->batch_rows = max_rows;
    s->batch_ms = max_ms;
}

unsigned pst_store_pending(const struct pst_store *s)
{
    return s != NULL && s->in_txn ? s->rows : 0;
}

int pst_store_flush(struct pst_store *s, char *err, size_t errlen)
{
    if (s == NULL || !s->in_txn)
        return 0;
    s->in_txn = 0;
    s->rows = 0;
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = fail(s, "commit", err, errlen);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return 0;
}

void pst_store_close(struct pst_store *s)
{
    if (s == NULL)
        return;
    char err[8];
    pst_store_flush(s, err, sizeof(err));
    sqlite3_finalize(s->ins_result);
    sqlite3_finalize(s->ins_dkim);
    sqlite3_close(s->db);
    free(s);
}

static void text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

static void letter(sqlite3_stmt *st, int i, char c)
{
    char v[2] = {c, '\0'};
    text(st, i, c ? v : NULL);
}

int pst_store_add_auth(struct pst_store *s, const struct pst_store_auth *a, char *err,
                       size_t errlen)
{
    if (s == NULL || a == NULL || a->source_ip == NULL || a->disposition == NULL)
        return PST_ERR_INVAL;
    if (!s->in_txn) {
        if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            return fail(s, "begin", err, errlen);
        s->in_txn = 1;
        s->rows = 0;
        s->started = mono_ms();
    }
    sqlite3_stmt *st = s->ins_result;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, a->time);
    text(st, 2, a->queue_id);
    text(st, 3, a->source_ip);
    text(st, 4, a->helo);
    text(st, 5, a->envelope_from);
    text(st, 6, a->header_from);
    text(st, 7, a->spf_result);
    text(st, 8, a->spf_domain);
    text(st, 9, a->dmarc_result);
    text(st, 10, a->policy_domain);
    text(st, 11, a->policy_tag);
    text(st, 12, a->policy);
    sqlite3_bind_int(st, 13, a->testing);
    letter(st, 14, a->adkim);
    letter(st, 15, a->aspf);
    text(st, 16, a->disposition);
    text(st, 17, a->override);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto bad;
    sqlite3_int64 id = sqlite3_last_insert_rowid(s->db);
    for (size_t i = 0; i < a->ndkim; i++) {
        st = s->ins_dkim;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        sqlite3_bind_int64(st, 1, id);
        text(st, 2, a->dkim[i].domain);
        text(st, 3, a->dkim[i].selector);
        text(st, 4, a->dkim[i].result ? a->dkim[i].result : "none");
        if (sqlite3_step(st) != SQLITE_DONE)
            goto bad;
    }
    sqlite3_reset(s->ins_result);
    sqlite3_reset(s->ins_dkim);
    s->rows++;
    if (s->batch_rows <= 1 || s->rows >= s->batch_rows || mono_ms() - s->started >= s->batch_ms)
        return pst_store_flush(s, err, errlen);
    return 0;
bad:;
    int rc = fail(s, "insert", err, errlen);
    sqlite3_reset(s->ins_result);
    sqlite3_reset(s->ins_dkim);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_txn = 0;
    s->rows = 0;
    return rc;
}

int64_t pst_store_count_auth(struct pst_store *s)
{
    sqlite3_stmt *st = NULL;
    if (s == NULL)
        return PST_ERR_INVAL;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM auth_result", -1, &st, NULL) != SQLITE_OK)
        return PST_ERR_IO;
    int64_t n = PST_ERR_IO;
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}
