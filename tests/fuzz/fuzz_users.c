/*
 * fuzz_users.c - the users file parser on arbitrary bytes. Besides "no
 * crash, no leak" it checks:
 *  - a refused file comes with an error text "users:LINE: reason" and no
 *    table; a parsed one with a table and no error text;
 *  - every user found by its index is found by its name, whatever the
 *    case, and has a valid name and valid addresses;
 *  - no two users share a name (ASCII case ignored);
 *  - a user's own addresses pass pst_users_may_send.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pst_users *u = NULL;
    char err[256] = "";
    int rc = pst_users_parse((const char *)data, size, "users", &u, err, sizeof(err));
    if (rc != 0) {
        CHECK(rc == PST_ERR_SYNTAX || rc == PST_ERR_TOOBIG || rc == PST_ERR_NOMEM);
        CHECK(u == NULL);
        CHECK(strncmp(err, "users:", 6) == 0 && isdigit((unsigned char)err[6]));
        CHECK(strchr(err, '\n') == NULL);
        return 0;
    }
    CHECK(u != NULL && err[0] == '\0');
    size_t n = pst_users_count(u);
    CHECK(n <= PST_USERS_MAX_USERS);
    for (size_t i = 0; i < n; i++) {
        const struct pst_user *user = pst_users_at(u, i);
        const char *name = pst_user_name(user);
        CHECK(pst_users_name_ok(name));
        CHECK(pst_users_find(u, name) == user);
        char upper[PST_USERS_MAX_NAME + 1];
        size_t k = 0;
        for (; name[k] != '\0'; k++)
            upper[k] = (char)toupper((unsigned char)name[k]);
        upper[k] = '\0';
        CHECK(pst_users_find(u, upper) == user);
        CHECK(pst_user_naddrs(user) <= PST_USERS_MAX_ADDRS);
        for (size_t j = 0; j < pst_user_naddrs(user); j++) {
            const char *a = pst_user_addr(user, j);
            CHECK(pst_users_addr_ok(a));
            const char *at = strrchr(a, '@');
            CHECK(at != NULL);
            if (at == a) {
                CHECK(pst_users_may_send(user, "anyone", at + 1) == 1);
            } else {
                char local[256];
                size_t ll = (size_t)(at - a);
                CHECK(ll < sizeof(local));
                memcpy(local, a, ll);
                local[ll] = '\0';
                CHECK(pst_users_may_send(user, local, at + 1) == 1);
            }
        }
        CHECK(pst_users_may_send(user, "", "") == 1);
    }
    CHECK(pst_users_at(u, n) == NULL);
    pst_users_free(u);
    return 0;
}
