/*
 * checker_int.h - what the health checker's three files share (internal to src/registry).
 *
 * checker.c is the thread, the inbox, the table, the schedule, the thresholds and the
 * statistics; checker_spec.c checks and copies a spec on the caller's thread into one
 * allocation (weft__check_t); checker_probe.c runs one check (an HTTP call on the checker's
 * client, a TCP connect) and writes its output. The probe hands each result back through
 * weft__check_done, the one way a run ends.
 *
 * A check's life (weft__check_state_t, moved only by checker.c's check_to, which asserts
 * the state it leaves):
 *
 *     QUEUED --insert--> IDLE --start--> RUNNING --done--> IDLE
 *                         |                 |
 *                         remove            remove (or replaced)
 *                         v                 v
 *                       freed             GONE --done--> freed
 *
 * QUEUED: built by weft_checker_add, travelling through the inbox (its own message).
 * IDLE and RUNNING: in the table and the heap. GONE: out of the table and the heap, kept
 * only by the run in flight, which ends unreported and frees it.
 *
 * Threads: everything here but weft__check_build (any thread, before the post) is the
 * checker's thread's.
 */
#ifndef WEFT_REGISTRY_CHECKER_INT_H
#define WEFT_REGISTRY_CHECKER_INT_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/mpsc.h"
#include "registry/checker.h"
#include "weft/client.h"

#define WEFT__CHECK_OUTPUT_MAX  4096                    /* bytes of an output, its NUL included */
#define WEFT__CHECK_TIMEOUT_MS  10000                   /* Consul's default timeout */
#define WEFT__CHECK_MAX_MS      (1000ull * 86400 * 365) /* intervals and timeouts: a year */
#define WEFT__CHECK_MAX_HEADERS 64
#define WEFT__LATE_SLOTS        10  /* seconds of lateness kept */
#define WEFT__LATE_BUCKETS      592 /* 16 exact, then 16 per power of two up to 2^40 us */

typedef enum weft__check_msg_type_e {
    WEFT__CHECK_MSG_ADD = 1,   /* the message is a weft__check_t */
    WEFT__CHECK_MSG_REMOVE = 2 /* the message is a bare weft__check_msg_t */
} weft__check_msg_type_t;

typedef struct weft__check_msg_s {
    weft_mpsc_node_t node;
    weft__check_msg_type_t type;
    uint64_t key;
} weft__check_msg_t;

typedef enum weft__check_state_e {
    WEFT__CHECK_QUEUED = 0,
    WEFT__CHECK_IDLE,
    WEFT__CHECK_RUNNING,
    WEFT__CHECK_GONE
} weft__check_state_t;

typedef struct weft__check_s weft__check_t;

struct weft__check_s {
    weft__check_msg_t msg; /* first: an add travels as the check itself */
    weft_checker_t *owner;
    weft__check_state_t state;
    weft_check_kind_t kind;

    /* The spec, checked; strings live in the same allocation, after the struct. */
    const char *target;                /* as given: outputs name it */
    const char *method;                /* HTTP */
    const char *host;                  /* HTTP: the client's host; TCP: the name to look up
                                          (unused when numeric) */
    const char *path;                  /* HTTP: the request target, "/" at least */
    uint16_t port;                     /* HTTP (80 by default) and TCP */
    const weft_http_header_t *headers; /* HTTP: the spec's, then User-Agent and Accept */
    size_t nheaders;
    const char *body; /* HTTP: NULL when none */
    size_t body_len;
    bool numeric;                 /* TCP: host is an address, already in addr */
    struct sockaddr_storage addr; /* TCP, numeric: the address and port */
    uint64_t interval_ns;
    uint64_t timeout_ms;
    unsigned succ_need, warn_need, crit_need;

    /* Status and schedule (checker.c). */
    weft_health_t status;               /* what the owner was last told (or spec.initial) */
    unsigned successes;                 /* in a row (Consul's successCounter) */
    unsigned failures;                  /* in a row (Consul's failuresCounter) */
    bool reported;                      /* a result was reported since the check was added */
    size_t heap_i;                      /* index in the heap, which holds the next run's start */
    weft__check_t *run_prev, *run_next; /* the list of checks with a run in flight */

    /* The run in flight (checker_probe.c). */
    weft_http_client_call_t *call; /* HTTP, until on_done */
    void *probe;                   /* TCP: its probe, until it reports */
    int http_status;               /* 0 until a response head came */
    bool capture;                  /* the result will change the status: keep the body */
    char *out;                     /* the first bytes of the body (malloc'd when captured) */
    size_t out_len;
    uint64_t body_seen; /* body bytes received */
};

/* The checker (weft_checker_t). Fields under "any thread" are atomics; the rest are the
 * checker thread's once it runs (weft_checker_new sets them up before it starts). */
struct weft_checker_s {
    weft_checker_options_t o;

    /* any thread */
    atomic_bool closing; /* weft_checker_free began: add and remove refuse */
    atomic_uint users;   /* add and remove calls between their look at closing and their
                            post (free waits for none to be left) */
    atomic_size_t held;  /* checks in the table plus adds on their way (<= max_checks) */
    atomic_ullong st_checks, st_runs, st_changes, st_skipped, st_late_p99, st_late_max;

    /* checker thread */
    uv_loop_t loop;
    uv_thread_t thread;
    weft_inbox_t inbox;
    uv_async_t stop_async;
    uv_timer_t timer; /* the schedule: armed for the heap's first due time */
    uv_timer_t tick;  /* every second: the lateness window moves on */
    weft_http_client_t *client;
    bool have_loop, have_inbox, have_async, have_timers, stopping;

    weft__check_t **slots;         /* the table: open addressing, linear probing, by key */
    size_t slot_bits;              /* 2^slot_bits slots (0: none allocated) */
    size_t nchecks;                /* in the table, and so in the heap */
    struct weft__heap_ent_s *heap; /* min-heap by due time, nchecks entries */
    size_t heap_cap;
    weft__check_t *running; /* checks with a run in flight, GONE ones included */
    unsigned in_flight;
    uint64_t rng;

    uint32_t late[WEFT__LATE_SLOTS][WEFT__LATE_BUCKETS]; /* lateness histograms, one a second */
    uint64_t late_max[WEFT__LATE_SLOTS];
    unsigned late_cur; /* the slot of this second */
};

/* checker_spec.c. Any thread. Checks spec and copies it into one allocation (*out, state
 * QUEUED, status spec->initial). Returns 0, WEFT_EINVAL, WEFT_EUNSUPPORTED (https) or
 * WEFT_ENOMEM. */
int weft__check_build(const weft_check_spec_t *spec, weft_checker_t *owner, weft__check_t **out);
/* Frees a check that no run holds (and its captured body). */
void weft__ckr_free(weft__check_t *k);

/* checker_probe.c. Starts a run of k (RUNNING, counted in flight). It ends with exactly one
 * weft__check_done(k, ...), which may come before this returns (a request that could not
 * start); the caller must not touch k afterwards. */
void weft__probe_start(weft_checker_t *c, weft__check_t *k);
/* Stopping: a TCP run of k stops without reporting and lets go of k (k->probe is NULL
 * after); its handles close and its memory is freed by the loop. HTTP runs end through the
 * client's close instead. */
void weft__probe_abandon(weft__check_t *k);

/* checker.c. Whether a run of k that ends with result will be told to the owner (it changes
 * the status the owner was told, or it is k's first result): its output is worth writing. */
bool weft__check_would_change(const weft__check_t *k, weft_health_t result);
/* The run of k ended with result (PASSING, WARNING or CRITICAL) and output (a string of at
 * most WEFT__CHECK_OUTPUT_MAX bytes with its NUL, read only when the status changes; may
 * be NULL when weft__check_would_change said no). Applies the thresholds, tells the owner
 * of a change, frees k if it is GONE. */
void weft__check_done(weft__check_t *k, weft_health_t result, const char *output);

#endif
