/*
 * rltable.c - rate limiters keyed by client (IP address, API key, tenant) in fixed memory:
 * an open-addressing hash table of per-slot atomics, no lock.
 *
 * Why open addressing with atomics rather than striped locks: a slot is two words, the
 * key's 64-bit hash and the limiter's state, and the limiter already updates its state with
 * a compare-and-swap (gcra.c, window.c); claiming a slot is one more CAS on the key word.
 * So a lookup on the hot path is a scan of at most `probe` slots (two or four cache lines)
 * and one CAS, with nothing shared between threads but the slots themselves; a striped
 * lock would add a second shared cache line per call and make readers of different keys in
 * one stripe wait for each other.
 *
 * Layout: capacity (a power of two) slots of 16 bytes, allocated once: a million keys are
 * 16 MiB, and nothing grows. A key lives in one of the `probe` slots from hash & mask
 * (linear probing in a bounded window). Keys are stored only as their XXH3 hash (a key of
 * 0 is mapped to 1, since 0 marks an empty slot): the table never copies or frees key bytes.
 *
 * Lookup and insert, in one pass over the window: the key's slot if there is one; else the
 * first empty slot, claimed by CAS 0 -> key (a thread that loses to the same key uses it;
 * one that loses to another key starts over); else the slot whose limiter has been back to
 * full the longest (an idle key: its limit would admit a newcomer exactly as a fresh
 * limiter would, so its state is reused as it is, with no reset), claimed by CAS old key ->
 * key. Slots never return to empty, so threads scanning one window in the same order
 * converge on the same empty slot for the same new key.
 *
 * Full: a key that finds neither its slot, nor an empty one, nor an idle one in its window
 * is admitted (or denied, with deny_when_full) without a limiter, and counted in
 * table_full: the table never grows, never evicts a key whose limit is in force, and never
 * blocks. Races that reuse can lose are described in weft/ratelimit.h.
 *
 * Threads: any number, concurrently; creation and free by one, with no other using it.
 */
#include <stdlib.h>

#include "core/errbuf.h"
#include "resilience/res_int.h"

typedef struct slot_s {
    _Atomic uint64_t key;   /* hash of the key; 0 empty */
    _Atomic uint64_t state; /* the limiter's word */
} slot_t;

struct weft_ratelimit_table_s {
    rl_params_t p;
    slot_t *slots;
    uint64_t mask;
    unsigned probe;
    int deny_when_full;
    _Atomic uint64_t inserted, reused, table_full;
};

#define MAX_CAPACITY (1ull << 30)
#define RESTARTS     8 /* lost CASes before a call gives up and counts as table_full */

void weft_ratelimit_table_options_init(weft_ratelimit_table_options_t *o)
{
    *o = (weft_ratelimit_table_options_t){.capacity = 65536, .probe = 16};
    weft_ratelimit_options_init(&o->limiter);
}

int weft_ratelimit_table_new(const weft_ratelimit_table_options_t *o, weft_ratelimit_table_t **out,
                             char *err, size_t errlen)
{
    weft_ratelimit_table_options_t def;
    if (!o) {
        weft_ratelimit_table_options_init(&def);
        o = &def;
    }
    rl_params_t p;
    int rc = weft__rl_params(&o->limiter, &p, err, errlen);
    if (rc) return rc;
    if (o->capacity == 0 || o->capacity > MAX_CAPACITY)
        return weft__errf(err, errlen, WEFT_EINVAL,
                          "ratelimit_table: capacity %zu is not within 1..2^30", o->capacity);
    if (o->probe == 0 || o->probe > 64)
        return weft__errf(err, errlen, WEFT_EINVAL, "ratelimit_table: probe %u is not within 1..64",
                          o->probe);
    uint64_t cap = 1;
    while (cap < o->capacity) cap <<= 1;
    weft_ratelimit_table_t *t = calloc(1, sizeof(*t));
    slot_t *slots = t ? calloc(cap, sizeof(*slots)) : NULL; /* all-zero: every slot empty */
    if (!slots) {
        free(t);
        return weft__errf(err, errlen, WEFT_ENOMEM, "ratelimit_table: out of memory for %llu slots",
                          (unsigned long long)cap);
    }
    t->p = p;
    t->slots = slots;
    t->mask = cap - 1;
    t->probe = o->probe < cap ? o->probe : (unsigned)cap;
    t->deny_when_full = o->deny_when_full;
    *out = t;
    return 0;
}

void weft_ratelimit_table_free(weft_ratelimit_table_t *t)
{
    if (!t) return;
    free(t->slots);
    free(t);
}

static int full(weft_ratelimit_table_t *t, weft_ratelimit_result_t *res)
{
    atomic_fetch_add_explicit(&t->table_full, 1, memory_order_relaxed);
    int allowed = !t->deny_when_full;
    weft_ratelimit_result_t r;
    weft__rl_unlimited(&t->p, allowed, res ? res : &r);
    return allowed;
}

int weft_ratelimit_table_take(weft_ratelimit_table_t *t, const void *key, size_t len,
                              uint64_t now_ms, weft_ratelimit_result_t *res)
{
    uint64_t h = weft__res_hash(key, len);
    if (h == 0) h = 1;
    for (unsigned attempt = 0; attempt < RESTARTS; attempt++) {
        slot_t *empty = NULL, *idle = NULL;
        uint64_t idle_key = 0, idle_age = 0;
        for (unsigned i = 0; i < t->probe; i++) {
            slot_t *s = &t->slots[(h + i) & t->mask];
            uint64_t k = atomic_load_explicit(&s->key, memory_order_relaxed);
            if (k == h) return weft__rl_take(&t->p, &s->state, now_ms, res);
            if (k == 0) {
                if (!empty) empty = s;
                continue;
            }
            uint64_t age = weft__rl_idle_age(
                &t->p, atomic_load_explicit(&s->state, memory_order_relaxed), now_ms);
            if (age > idle_age) {
                idle = s;
                idle_key = k;
                idle_age = age;
            }
        }
        slot_t *s = empty ? empty : idle;
        if (!s) return full(t, res);
        uint64_t expect = empty ? 0 : idle_key;
        if (atomic_compare_exchange_strong_explicit(&s->key, &expect, h, memory_order_relaxed,
                                                    memory_order_relaxed)) {
            atomic_fetch_add_explicit(empty ? &t->inserted : &t->reused, 1, memory_order_relaxed);
            return weft__rl_take(&t->p, &s->state, now_ms, res);
        }
        if (expect == h) return weft__rl_take(&t->p, &s->state, now_ms, res);
        /* another key took the slot: scan again */
    }
    return full(t, res);
}

void weft_ratelimit_table_stats(const weft_ratelimit_table_t *t, weft_ratelimit_table_stats_t *st)
{
    weft_ratelimit_table_t *m = (weft_ratelimit_table_t *)t; /* atomic loads take non-const */
    uint64_t used = 0;
    for (uint64_t i = 0; i <= t->mask; i++)
        used += atomic_load_explicit(&m->slots[i].key, memory_order_relaxed) != 0;
    st->capacity = t->mask + 1;
    st->used = used;
    st->inserted = atomic_load_explicit(&m->inserted, memory_order_relaxed);
    st->reused = atomic_load_explicit(&m->reused, memory_order_relaxed);
    st->table_full = atomic_load_explicit(&m->table_full, memory_order_relaxed);
}

size_t weft_ratelimit_table_memory(const weft_ratelimit_table_t *t)
{
    return sizeof(*t) + (size_t)(t->mask + 1) * sizeof(slot_t);
}
