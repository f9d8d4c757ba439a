/*
 * ids.c - random trace and span ids.
 *
 * Every thread owns a xoshiro256** generator (Blackman and Vigna) in thread-local storage,
 * seeded on its first use from getrandom(GRND_NONBLOCK); if the kernel cannot answer yet, the
 * seed mixes clocks, the thread id and an address through splitmix64, which is unpredictable
 * enough for ids (they are not secrets, only need to be unique). After the seed an id costs a
 * few shifts and multiplies: no lock, no system call, nothing shared between threads.
 *
 * fork: a child process would otherwise continue its parent's sequence and repeat its ids, so
 * a pthread_atfork child handler (registered once) marks the forking thread's generator for
 * reseeding; it is the only thread the child has.
 *
 * Invariants: the state is never all zero (xoshiro's one fixed point); ids returned are never
 * all zero (W3C treats them as invalid), by drawing again in the 2^-64 case.
 */
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "trace/trace_int.h"

static _Thread_local uint64_t rng[4];
static _Thread_local bool rng_ready;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void reseed_in_child(void)
{
    rng_ready = false;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, reseed_in_child);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void seed(void)
{
    pthread_once(&atfork_once, register_atfork);
    if (getrandom(rng, sizeof(rng), GRND_NONBLOCK) != (ssize_t)sizeof(rng)) {
        struct timespec rt, mono;
        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        uint64_t x = (uint64_t)rt.tv_sec * 1000000007ull ^ (uint64_t)rt.tv_nsec ^
                     (uint64_t)mono.tv_nsec << 20 ^ (uint64_t)(uintptr_t)&rng_ready ^
                     (uint64_t)pthread_self();
        for (int i = 0; i < 4; i++) rng[i] = splitmix64(&x);
    }
    if (!(rng[0] | rng[1] | rng[2] | rng[3])) rng[0] = 1;
    rng_ready = true;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t next64(void)
{
    if (__builtin_expect(!rng_ready, 0)) seed();
    uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return r;
}

void weft_trace_random_trace_id(uint8_t id[16])
{
    uint64_t a, b;
    do {
        a = next64();
        b = next64();
    } while (!(a | b));
    memcpy(id, &a, 8);
    memcpy(id + 8, &b, 8);
}

void weft_trace_random_span_id(uint8_t id[8])
{
    uint64_t a;
    do a = next64();
    while (!a);
    memcpy(id, &a, 8);
}
