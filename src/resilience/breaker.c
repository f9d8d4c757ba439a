/*
 * breaker.c - the circuit breaker: stop calling an upstream that fails, try it again later
 * with a few trial calls, and resume when they all succeed.
 *
 * Design. A state machine of three states (weft/breaker.h) with one transition function,
 * transition(), that asserts the from-state of every edge and reports it through the
 * optional callback:
 *
 *     CLOSED --(consecutive failures | failure rate | slow-call rate)--> OPEN
 *     OPEN --(open_for passed, seen by allow())--> HALF_OPEN
 *     HALF_OPEN --(a trial fails)--> OPEN, open_for doubled up to open_for_max
 *     HALF_OPEN --(all half_open_requests trials succeed)--> CLOSED, open_for back to base
 *
 * The rates are measured over a sliding window of BUCKETS buckets of window_ms/BUCKETS ms
 * each, a ring indexed by (now / width) % BUCKETS. Each bucket remembers the epoch
 * (now / width) it counts; a bucket whose epoch has left the window is zeroed when it is
 * reused, and ignored when read, so the window slides in steps of one bucket without a
 * timer, and memory is fixed. A rate counts only once min_requests calls are in the window.
 *
 * The time is the caller's (now_ms); a time older than the last one seen is taken as the
 * last one, so a clock that steps back cannot make a bucket count twice.
 *
 * Invariants: state == HALF_OPEN  =>  trials_ok <= trials_recorded <= trials_admitted <=
 * half_open_requests; state != CLOSED => the window is empty (it is cleared when the
 * breaker opens, so that CLOSED starts afresh).
 *
 * Threads: one. A breaker belongs to one worker loop (or one SDK client); no locks.
 */
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/errbuf.h"
#include "weft/breaker.h"

#define BUCKETS 10

typedef struct bucket_s {
    uint64_t epoch; /* now / width when it was (re)started */
    uint32_t calls, failures, slow;
} bucket_t;

struct weft_breaker_s {
    weft_breaker_options_t o;
    weft_breaker_state_t state;
    weft_breaker_reason_t last_reason;
    uint64_t width;     /* ms per bucket */
    uint64_t last_now;  /* largest now_ms seen */
    uint64_t opened_at; /* when the current OPEN began */
    uint64_t open_for;  /* of the current OPEN, or of the next one while CLOSED (base) */
    unsigned consecutive;
    unsigned trials_admitted, trials_recorded, trials_ok;
    uint64_t transitions, opens, rejected;
    /* what the window held when CLOSED last opened (it is cleared then): for the reason */
    uint64_t trip_calls, trip_failures, trip_slow;
    unsigned trip_consecutive;
    bucket_t b[BUCKETS];
};

void weft_breaker_options_init(weft_breaker_options_t *o)
{
    *o = (weft_breaker_options_t){
        .consecutive_failures = 5,
        .failure_rate = 50,
        .slow_call_duration_ms = 1000,
        .slow_call_rate = 0,
        .window_ms = 10000,
        .min_requests = 20,
        .open_for_ms = 5000,
        .open_for_max_ms = 60000,
        .half_open_requests = 3,
    };
}

int weft_breaker_options_check(const weft_breaker_options_t *o, char *err, size_t errlen)
{
    if (o->failure_rate > 100)
        return weft__errf(err, errlen, WEFT_EINVAL, "breaker: failure_rate %u is not a percent",
                          o->failure_rate);
    if (o->slow_call_rate > 100)
        return weft__errf(err, errlen, WEFT_EINVAL, "breaker: slow_call_rate %u is not a percent",
                          o->slow_call_rate);
    if (o->slow_call_rate && o->slow_call_duration_ms == 0)
        return weft__errf(err, errlen, WEFT_EINVAL,
                          "breaker: slow_call_duration_ms must be > 0 when slow_call_rate is on");
    if (o->window_ms < BUCKETS)
        return weft__errf(err, errlen, WEFT_EINVAL, "breaker: window_ms %llu is below %d",
                          (unsigned long long)o->window_ms, BUCKETS);
    if (o->open_for_ms == 0)
        return weft__errf(err, errlen, WEFT_EINVAL, "breaker: open_for_ms must be > 0");
    if (o->open_for_max_ms < o->open_for_ms)
        return weft__errf(
            err, errlen, WEFT_EINVAL, "breaker: open_for_max_ms %llu is below open_for_ms %llu",
            (unsigned long long)o->open_for_max_ms, (unsigned long long)o->open_for_ms);
    if (o->half_open_requests == 0)
        return weft__errf(err, errlen, WEFT_EINVAL, "breaker: half_open_requests must be > 0");
    return 0;
}

int weft_breaker_new(const weft_breaker_options_t *o, weft_breaker_t **out, char *err,
                     size_t errlen)
{
    weft_breaker_options_t def;
    if (!o) {
        weft_breaker_options_init(&def);
        o = &def;
    }
    int rc = weft_breaker_options_check(o, err, errlen);
    if (rc) return rc;
    weft_breaker_t *b = calloc(1, sizeof(*b));
    if (!b) return weft__errf(err, errlen, WEFT_ENOMEM, "breaker: out of memory");
    b->o = *o;
    b->state = WEFT_BREAKER_CLOSED;
    b->width = o->window_ms / BUCKETS;
    b->open_for = o->open_for_ms;
    for (unsigned i = 0; i < BUCKETS; i++) b->b[i].epoch = UINT64_MAX; /* never current */
    *out = b;
    return 0;
}

void weft_breaker_free(weft_breaker_t *b)
{
    free(b);
}

static uint64_t clamp_now(weft_breaker_t *b, uint64_t now)
{
    if (now < b->last_now) return b->last_now;
    b->last_now = now;
    return now;
}

static void window_clear(weft_breaker_t *b)
{
    for (unsigned i = 0; i < BUCKETS; i++) b->b[i] = (bucket_t){.epoch = UINT64_MAX};
}

/* Is bucket x inside the window that ends in epoch cur? */
static int in_window(const bucket_t *x, uint64_t cur)
{
    return x->epoch != UINT64_MAX && x->epoch <= cur && cur - x->epoch < BUCKETS;
}

static void window_sum(const weft_breaker_t *b, uint64_t now, uint64_t *calls, uint64_t *fail,
                       uint64_t *slow)
{
    uint64_t cur = now / b->width;
    *calls = *fail = *slow = 0;
    for (unsigned i = 0; i < BUCKETS; i++) {
        if (!in_window(&b->b[i], cur)) continue;
        *calls += b->b[i].calls;
        *fail += b->b[i].failures;
        *slow += b->b[i].slow;
    }
}

static void transition(weft_breaker_t *b, weft_breaker_state_t to, weft_breaker_reason_t why,
                       uint64_t now)
{
    weft_breaker_state_t from = b->state;
    switch (why) {
    case WEFT_BREAKER_CONSECUTIVE_FAILURES:
    case WEFT_BREAKER_FAILURE_RATE:
    case WEFT_BREAKER_SLOW_CALL_RATE:
        WEFT_ASSERT(from == WEFT_BREAKER_CLOSED && to == WEFT_BREAKER_OPEN);
        b->open_for = b->o.open_for_ms;
        break;
    case WEFT_BREAKER_HALF_OPEN_FAILURE:
        WEFT_ASSERT(from == WEFT_BREAKER_HALF_OPEN && to == WEFT_BREAKER_OPEN);
        b->open_for =
            b->open_for > b->o.open_for_max_ms / 2 ? b->o.open_for_max_ms : b->open_for * 2;
        break;
    case WEFT_BREAKER_HALF_OPEN_SUCCESS:
        WEFT_ASSERT(from == WEFT_BREAKER_HALF_OPEN && to == WEFT_BREAKER_CLOSED);
        b->open_for = b->o.open_for_ms;
        break;
    case WEFT_BREAKER_OPEN_TIMEOUT:
        WEFT_ASSERT(from == WEFT_BREAKER_OPEN && to == WEFT_BREAKER_HALF_OPEN);
        break;
    case WEFT_BREAKER_NONE:
        WEFT_ASSERT(0);
        return;
    }
    if (from == WEFT_BREAKER_CLOSED && to == WEFT_BREAKER_OPEN) {
        window_sum(b, now, &b->trip_calls, &b->trip_failures, &b->trip_slow);
        b->trip_consecutive = b->consecutive;
    }
    if (to == WEFT_BREAKER_OPEN) {
        b->opened_at = now;
        b->opens++;
        window_clear(b);
    }
    b->trials_admitted = b->trials_recorded = b->trials_ok = 0;
    b->consecutive = 0;
    b->state = to;
    b->last_reason = why;
    b->transitions++;
    if (b->o.on_transition) b->o.on_transition(b->o.data, from, to, why, now);
}

static uint64_t until_half_open(const weft_breaker_t *b, uint64_t now)
{
    if (b->state != WEFT_BREAKER_OPEN) return 0;
    uint64_t due = b->opened_at + b->open_for;
    return now >= due ? 0 : due - now;
}

int weft_breaker_allow(weft_breaker_t *b, uint64_t now, uint64_t *wait_ms)
{
    now = clamp_now(b, now);
    if (b->state == WEFT_BREAKER_OPEN) {
        uint64_t w = until_half_open(b, now);
        if (w) {
            b->rejected++;
            if (wait_ms) *wait_ms = w;
            return 0;
        }
        transition(b, WEFT_BREAKER_HALF_OPEN, WEFT_BREAKER_OPEN_TIMEOUT, now);
    }
    if (b->state == WEFT_BREAKER_HALF_OPEN) {
        if (b->trials_admitted >= b->o.half_open_requests) {
            b->rejected++;
            if (wait_ms) *wait_ms = 0;
            return 0;
        }
        b->trials_admitted++;
    }
    if (wait_ms) *wait_ms = 0;
    return 1;
}

static void record_closed(weft_breaker_t *b, uint64_t now, int ok, int slow)
{
    uint64_t cur = now / b->width;
    bucket_t *x = &b->b[cur % BUCKETS];
    if (x->epoch != cur) *x = (bucket_t){.epoch = cur};
    x->calls++;
    if (!ok) x->failures++;
    if (slow) x->slow++;

    b->consecutive = ok ? 0 : b->consecutive + 1;
    if (b->o.consecutive_failures && b->consecutive >= b->o.consecutive_failures) {
        transition(b, WEFT_BREAKER_OPEN, WEFT_BREAKER_CONSECUTIVE_FAILURES, now);
        return;
    }
    if (!b->o.failure_rate && !b->o.slow_call_rate) return;
    uint64_t calls, fail, nslow;
    window_sum(b, now, &calls, &fail, &nslow);
    if (calls == 0 || calls < b->o.min_requests) return;
    if (b->o.failure_rate && fail * 100 >= (uint64_t)b->o.failure_rate * calls)
        transition(b, WEFT_BREAKER_OPEN, WEFT_BREAKER_FAILURE_RATE, now);
    else if (b->o.slow_call_rate && nslow * 100 >= (uint64_t)b->o.slow_call_rate * calls)
        transition(b, WEFT_BREAKER_OPEN, WEFT_BREAKER_SLOW_CALL_RATE, now);
}

void weft_breaker_record(weft_breaker_t *b, uint64_t now, int ok, uint64_t duration_ms)
{
    now = clamp_now(b, now);
    int slow = b->o.slow_call_duration_ms && duration_ms >= b->o.slow_call_duration_ms;
    switch (b->state) {
    case WEFT_BREAKER_CLOSED:
        record_closed(b, now, ok, slow);
        return;
    case WEFT_BREAKER_OPEN:
        return; /* a call admitted before the breaker opened */
    case WEFT_BREAKER_HALF_OPEN:
        if (b->trials_recorded >= b->trials_admitted) return;
        b->trials_recorded++;
        if (!ok || (slow && b->o.slow_call_rate)) {
            transition(b, WEFT_BREAKER_OPEN, WEFT_BREAKER_HALF_OPEN_FAILURE, now);
            return;
        }
        if (++b->trials_ok == b->o.half_open_requests)
            transition(b, WEFT_BREAKER_CLOSED, WEFT_BREAKER_HALF_OPEN_SUCCESS, now);
        return;
    }
}

void weft_breaker_release(weft_breaker_t *b, uint64_t now)
{
    (void)clamp_now(b, now);
    if (b->state == WEFT_BREAKER_HALF_OPEN && b->trials_admitted > b->trials_recorded)
        b->trials_admitted--;
}

weft_breaker_state_t weft_breaker_state(const weft_breaker_t *b)
{
    return b->state;
}

uint64_t weft_breaker_ms_until_half_open(const weft_breaker_t *b, uint64_t now)
{
    return until_half_open(b, now < b->last_now ? b->last_now : now);
}

void weft_breaker_stats(const weft_breaker_t *b, uint64_t now, weft_breaker_stats_t *st)
{
    if (now < b->last_now) now = b->last_now;
    memset(st, 0, sizeof(*st));
    st->state = b->state;
    st->last_reason = b->last_reason;
    window_sum(b, now, &st->window_calls, &st->window_failures, &st->window_slow);
    if (st->window_calls) {
        st->failure_rate = (unsigned)(st->window_failures * 100 / st->window_calls);
        st->slow_call_rate = (unsigned)(st->window_slow * 100 / st->window_calls);
    }
    st->consecutive_failures = b->consecutive;
    st->open_for_ms = b->open_for;
    st->ms_until_half_open = until_half_open(b, now);
    st->transitions = b->transitions;
    st->opens = b->opens;
    st->rejected = b->rejected;
    st->trip_calls = b->trip_calls;
    st->trip_failures = b->trip_failures;
    st->trip_slow = b->trip_slow;
    st->trip_consecutive = b->trip_consecutive;
}

const char *weft_breaker_state_name(weft_breaker_state_t s)
{
    switch (s) {
    case WEFT_BREAKER_CLOSED:
        return "closed";
    case WEFT_BREAKER_OPEN:
        return "open";
    case WEFT_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

const char *weft_breaker_reason_name(weft_breaker_reason_t r)
{
    switch (r) {
    case WEFT_BREAKER_NONE:
        return "none";
    case WEFT_BREAKER_CONSECUTIVE_FAILURES:
        return "consecutive_failures";
    case WEFT_BREAKER_FAILURE_RATE:
        return "failure_rate";
    case WEFT_BREAKER_SLOW_CALL_RATE:
        return "slow_call_rate";
    case WEFT_BREAKER_HALF_OPEN_FAILURE:
        return "half_open_failure";
    case WEFT_BREAKER_HALF_OPEN_SUCCESS:
        return "half_open_success";
    case WEFT_BREAKER_OPEN_TIMEOUT:
        return "open_timeout";
    }
    return "unknown";
}
