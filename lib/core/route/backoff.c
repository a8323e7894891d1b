/*
 * backoff.c - the retry schedule of queued mail: when to try next, when to
 * warn the sender, when to give up (route.h).
 *
 * RFC 5321 4.5.4.1 asks for a retry interval of at least 30 minutes in
 * general and a give-up time of at least 4-5 days; the default schedule
 * starts shorter (5 minutes, doubling) because most temporary failures
 * (greylisting, a restarting peer) clear within minutes, and reaches one
 * hour after five tries. Times are seconds, passed in; all arithmetic
 * saturates instead of overflowing.
 */
#include "route.h"
#include "err.h"

#include <math.h>

void pst_backoff_default(struct pst_backoff *b)
{
    b->initial = PST_BACKOFF_INITIAL;
    b->factor = PST_BACKOFF_FACTOR;
    b->max = PST_BACKOFF_MAX;
    b->lifetime = PST_BACKOFF_LIFETIME;
    b->warn = PST_BACKOFF_WARN;
    b->jitter_percent = PST_BACKOFF_JITTER;
}

/* Ten years: longer settings are mistakes, and the sums below stay far
 * from INT64_MAX. */
#define SECONDS_MAX ((int64_t)10 * 366 * 86400)

int pst_backoff_check(const struct pst_backoff *b)
{
    if (b == NULL)
        return PST_ERR_INVAL;
    if (b->initial <= 0 || b->initial > SECONDS_MAX || b->max < b->initial || b->max > SECONDS_MAX)
        return PST_ERR_INVAL;
    if (!isfinite(b->factor) || b->factor < 1.0 || b->factor > 16.0)
        return PST_ERR_INVAL;
    if (b->lifetime <= 0 || b->lifetime > SECONDS_MAX || b->warn < 0 || b->warn > SECONDS_MAX)
        return PST_ERR_INVAL;
    if (b->jitter_percent > 50)
        return PST_ERR_INVAL;
    return 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

int64_t pst_backoff_delay(const struct pst_backoff *b, unsigned attempts, uint32_t rnd)
{
    struct pst_backoff d;

    if (pst_backoff_check(b) != 0) {
        pst_backoff_default(&d); /* a bad schedule still gives a sane one */
        b = &d;
    }
    if (attempts == 0)
        attempts = 1;
    /* initial * factor^(attempts-1), stopping once it reaches max */
    double delay = (double)b->initial;
    for (unsigned i = 1; i < attempts && delay < (double)b->max; i++)
        delay *= b->factor;
    int64_t s = delay >= (double)b->max ? b->max : (int64_t)delay;
    /* jitter shortens only, so no delay passes max */
    int64_t cut = (int64_t)((double)s * b->jitter_percent / 100.0 * ((double)rnd / UINT32_MAX));
    s -= cut;
    return s < 1 ? 1 : s;
}

int64_t pst_backoff_next(const struct pst_backoff *b, int64_t arrival, int64_t last,
                         unsigned attempts, uint32_t rnd)
{
    int64_t next = sat_add(last, pst_backoff_delay(b, attempts, rnd));
    int64_t lifetime = pst_backoff_check(b) == 0 ? b->lifetime : PST_BACKOFF_LIFETIME;
    int64_t expiry = sat_add(arrival, lifetime);

    if (last < expiry && next > expiry)
        next = expiry;
    return next;
}

int pst_backoff_expired(const struct pst_backoff *b, int64_t arrival, int64_t now)
{
    int64_t lifetime = pst_backoff_check(b) == 0 ? b->lifetime : PST_BACKOFF_LIFETIME;

    return now >= sat_add(arrival, lifetime);
}

int pst_backoff_warn_due(const struct pst_backoff *b, int64_t arrival, int64_t now, int warned)
{
    if (pst_backoff_check(b) != 0 || b->warn == 0 || warned)
        return 0;
    if (pst_backoff_expired(b, arrival, now))
        return 0;
    return now >= sat_add(arrival, b->warn);
}
