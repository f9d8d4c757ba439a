/*
 * discovery_policy.h - the discovery client's per-service policy state (internal): the
 * balancer over a service's passing instances and a circuit breaker per instance, kept
 * across cache updates by instance ID. No sockets and no clock of its own: every function
 * that needs the time takes now_ms, so tests drive it on a fake clock (see
 * discovery_policy.c for the design).
 */
#ifndef WEFT_SERVICE_DISCOVERY_POLICY_H
#define WEFT_SERVICE_DISCOVERY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/balance.h"
#include "weft/breaker.h"
#include "weft/discovery.h"

/* What every set of one client shares (the client's options, as checked). */
typedef struct dpol_conf_s {
    weft_discovery_policy_t policy;
    bool breaker;                         /* a breaker per instance */
    weft_breaker_options_t bconf;         /* its options (on_transition and data are ours) */
    weft_discovery_breaker_fn on_breaker; /* may be NULL */
    void *data;
} dpol_conf_t;

struct dpol_set_s;

/* One instance's state, found again by its ID after every update. */
typedef struct dpol_inst_s {
    struct dpol_set_s *set;
    char *id;
    weft_breaker_t *b; /* NULL when breakers are off */
} dpol_inst_t;

typedef struct dpol_set_s {
    const dpol_conf_t *conf;
    const char *service; /* the entry's name (outlives the set) */
    dpol_inst_t **inst;  /* parallel to the cache's instances: sorted by ID */
    size_t n;
    unsigned *weights; /* n: the instances' weights (each >= 1) */
    unsigned *active;  /* n: scratch for least request */
    unsigned *excl;    /* n: scratch, the exclusion set of a pick */
    bool weighted;     /* weights differ: round robin is smooth weighted (swrr) */
    weft_swrr_t *swrr; /* ROUND_ROBIN with weights that differ */
    weft_ring_t *ring; /* RING_HASH */
    unsigned rr;       /* round-robin position, kept across updates */
    uint64_t rng;
    uint64_t rejected; /* picks a breaker refused */
} dpol_set_t;

/* An empty set for service (whose string must outlive it); seed: the PRNG's. */
void weft__dpol_init(dpol_set_t *s, const dpol_conf_t *c, const char *service, uint64_t seed);
/* Frees everything the set holds (not s). */
void weft__dpol_clear(dpol_set_t *s);

/* The cache's instances are now inst[0..n) (sorted by ID): each keeps the state of the
 * instance of the same ID, new ones get a CLOSED breaker (on_breaker is told, from and to
 * CLOSED with reason NONE), gone ones are freed. Returns 0, or WEFT_ENOMEM with s as it was
 * (the caller keeps its old instances too). */
int weft__dpol_update(dpol_set_t *s, const weft_discovery_instance_t *inst, size_t n,
                      uint64_t now_ms);

/* The instance for the next attempt of a call, by the policy, among inst[0..s->n) (the
 * same array the last update was given; its outstanding counts are read) not in
 * tried[0..ntried) (indexes), whose breaker admits it now (weft_breaker_allow: the caller
 * then owes one weft__dpol_record for it). key_hash: RING_HASH's key (has_key false: the
 * pick is random). Returns the index, or -1 with *err WEFT_ENOENT (nothing untried is left)
 * or WEFT_EBREAKER (every untried instance's breaker refused). */
long weft__dpol_pick(dpol_set_t *s, const weft_discovery_instance_t *inst, const unsigned *tried,
                     size_t ntried, bool has_key, uint64_t key_hash, uint64_t now_ms, int *err);

/* How a call that pick admitted went, to instance id: ok, and its duration. An ID no longer
 * in the set is ignored. */
void weft__dpol_record(dpol_set_t *s, const char *id, uint64_t now_ms, bool ok,
                       uint64_t duration_ms);

/* The state of instance id's breaker (CLOSED when none or unknown). */
weft_breaker_state_t weft__dpol_state(const dpol_set_t *s, const char *id);

#endif
