/*
 * dns.h - the registry's DNS interface, Consul's (internal).
 *
 * Names under the domain (default "consul."):
 *   NAME.service[.DC].consul        A / AAAA of the passing instances of NAME; SRV with
 *   TAG.NAME.service[.DC].consul    port and target "NODE.node.DC.consul." plus the target's
 *   _NAME._TAG.service[.DC].consul  A/AAAA in the additional section (RFC 2782 form; _tcp
 *                                   as TAG means any tag)
 *   NODE.node[.DC].consul           A / AAAA of the node
 *   consul (the apex)               its SOA (qtype SOA or ANY)
 * Other names under the domain: NXDOMAIN with the SOA in the authority section; a name that
 * exists with no record of the type asked (a service with no passing instance, SRV for a
 * node, TXT...): NOERROR, no answer, the SOA in the authority section too (RFC 2308). Names
 * outside the domain, classes other than IN and ANY, zone transfers: REFUSED (AA clear).
 * ANY is answered as A + AAAA. Answers are shuffled. Over UDP an answer that does not fit
 * 512 bytes (or the client's EDNS0 payload size, clamped to 512..4096) keeps as many whole
 * targets as fit (an SRV with its target's address is one) and sets TC; over TCP it is
 * complete (up to 64 KiB). A query with an OPT record gets one back (payload 4096; an EDNS
 * version other than 0 gets BADVERS).
 *
 * weft_dns_answer is a pure function of the query and what lookup returns: no allocation,
 * no I/O, any thread; the fuzzer drives it. weft_dns_serve puts it on a host's workers
 * (UDP and TCP, framed by a two-byte length as RFC 1035 4.2.2 says).
 */
#ifndef WEFT_REGISTRY_DNS_H
#define WEFT_REGISTRY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weft/host.h"

/* One instance as DNS sees it: numeric address (IPv4 or IPv6) and port, and its node. */
typedef struct weft_dns_target_s {
    const char *node;    /* node name */
    const char *address; /* numeric IPv4 or IPv6; anything else is skipped */
    uint16_t port;
    uint8_t fam;        /* 4 or 6 when bin holds the address already parsed (the lookup's
                           cache: no inet_pton per answer); 0: parse address */
    const uint8_t *bin; /* 4 or 16 bytes, network order */
} weft_dns_target_t;

/* What the answer is built from. kind 's': service name (tag may be NULL), 'n': node
 * name. Fills out[0..max) with pointers that stay valid until the caller's read section ends
 * (the catalog snapshot), and returns how many; -1: no such service or node (NXDOMAIN).
 * A service that exists with no passing instance returns 0 (NOERROR, no answer). Names are
 * compared ASCII case-insensitively by the lookup. dc is NULL when the query named none;
 * the lookup answers -1 for a datacenter that is not its own. */
typedef int (*weft_dns_lookup_fn)(void *arg, char kind, const char *name, size_t name_len,
                                  const char *tag, size_t tag_len, const char *dc, size_t dc_len,
                                  weft_dns_target_t *out, size_t max);

typedef struct weft_dns_config_s {
    const char *domain;     /* "consul." */
    const char *datacenter; /* "dc1": the SRV targets' DC label */
    uint32_t ttl;           /* seconds, on every record and the SOA's minimum; default 0;
                               at most 2^31-1 (RFC 2181 8) */
    size_t max_targets;     /* instances looked up per query at most; default 256 (also when
                               0), at most 512 (the answer keeps them on its stack) */
} weft_dns_config_t;

/* Checks cfg: a domain of 1..127 labels of 1..63 bytes (NULL: "consul."; no escapes), a
 * datacenter of 1..63 bytes without '.' (NULL: "dc1"), ttl and max_targets within bounds.
 * Returns 0 or WEFT_EINVAL. weft_dns_serve checks its cfg with it. */
int weft_dns_config_check(const weft_dns_config_t *cfg);

/*
 * Answers the query q[0..qlen) into out[0..cap) (cap >= 512; 65535 for TCP; q and out do
 * not overlap). tcp: no truncation except at cap. rnd: a random value to shuffle with (the
 * same rnd, the same order). Returns the answer's length (<= cap); 0 when nothing must be
 * sent (a response, not a query; fewer than 12 bytes). A malformed query with a readable
 * header gets FORMERR, an opcode other than QUERY NOTIMP (both header only); a cfg that
 * weft_dns_config_check refuses, SERVFAIL. lookup runs at most once, on the calling thread.
 */
size_t weft_dns_answer(const weft_dns_config_t *cfg, const uint8_t *q, size_t qlen, uint8_t *out,
                       size_t cap, bool tcp, uint64_t rnd, weft_dns_lookup_fn lookup, void *arg);

typedef struct weft_dns_serve_options_s {
    const char *host; /* numeric listen address; "127.0.0.1" */
    uint16_t port;    /* 8600; 0: UDP and TCP each pick a free port of their own, which
                         may differ (the host binds every listener in weft_host_run, so
                         neither can wait for the other's) */
    weft_dns_config_t cfg;
    weft_dns_lookup_fn lookup; /* called on the worker thread, inside a snapshot read
                                  section that weft_dns_serve opens around each answer */
    void *arg;
} weft_dns_serve_options_t;

void weft_dns_serve_options_init(weft_dns_serve_options_t *o);

/* Adds the UDP and TCP listeners to h (before weft_host_run). The strings in o, and arg,
 * must live as long as the host. Returns 0 and *out, WEFT_EINVAL (no lookup, a cfg that
 * weft_dns_config_check refuses, a host that is not numeric), WEFT_ENOMEM, or an error from
 * weft_host_add_udp/_tcp. On error *out is not set, and when the TCP listener failed
 * (WEFT_ELIMIT, WEFT_ENOMEM) the UDP one is already on h with freed memory for argument: a
 * host that weft_dns_serve failed on must be freed, not run. */
typedef struct weft_dns_server_s weft_dns_server_t;
int weft_dns_serve(weft_host_t *h, const weft_dns_serve_options_t *o, weft_dns_server_t **out);
/* Ports bound (after weft_host_run bound them). */
uint16_t weft_dns_server_udp_port(const weft_dns_server_t *d);
uint16_t weft_dns_server_tcp_port(const weft_dns_server_t *d);
/* Frees it (after the host stopped). */
void weft_dns_server_free(weft_dns_server_t *d);

#endif
