/*
 * dns.h - the registry's DNS interface, Consul's (internal).
 *
 * Names under the domain (default "consul."):
 *   NAME.service[.DC].consul        A / AAAA of the passing instances of NAME; SRV with
 *   TAG.NAME.service[.DC].consul    port and target "NODE.node.DC.consul." plus the target's
 *   _NAME._TAG.service[.DC].consul  A/AAAA in the additional section (RFC 2782 form; _tcp
 *                                   as TAG means any tag)
 *   NODE.node[.DC].consul           A / AAAA of the node
 * Other names under the domain: NXDOMAIN with the SOA in the authority section; names
 * outside it: REFUSED. ANY is answered as A + AAAA. Answers are shuffled. Over UDP an
 * answer that does not fit 512 bytes (or the client's EDNS0 payload size, at most 4096)
 * keeps as many whole records as fit and sets TC; over TCP it is complete (up to 64 KiB).
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
} weft_dns_target_t;

/* What the answer is built from. kind 's': service name (tag may be NULL), 'n': node
 * name. Fills out[0..max) with pointers that stay valid until the caller's read section ends
 * (the catalog snapshot), and returns how many; -1: no such service or node (NXDOMAIN).
 * A service that exists with no passing instance returns 0 (NOERROR, no answer). Names are
 * compared ASCII case-insensitively by the lookup. dc is NULL when the query named none;
 * the lookup answers -1 for a datacenter that is not its own. */
typedef int (*weft_dns_lookup_fn)(void *arg, char kind, const char *name, size_t name_len,
                                  const char *tag, size_t tag_len, const char *dc,
                                  size_t dc_len, weft_dns_target_t *out, size_t max);

typedef struct weft_dns_config_s {
    const char *domain;     /* "consul." */
    const char *datacenter; /* "dc1": the SRV targets' DC label */
    uint32_t ttl;           /* seconds, on every record; default 0 */
    size_t max_targets;     /* instances looked up per query at most; default 256 */
} weft_dns_config_t;

/*
 * Answers the query q[0..qlen) into out[0..cap) (cap >= 512; 65535 for TCP). tcp: no
 * truncation except at cap. rnd: a random value to shuffle with. Returns the answer's
 * length; 0 when nothing must be sent (a response, not a query; fewer than 12 bytes); a
 * malformed query with a readable header gets FORMERR, an opcode other than QUERY NOTIMP.
 */
size_t weft_dns_answer(const weft_dns_config_t *cfg, const uint8_t *q, size_t qlen, uint8_t *out,
                       size_t cap, bool tcp, uint64_t rnd, weft_dns_lookup_fn lookup, void *arg);

typedef struct weft_dns_serve_options_s {
    const char *host; /* numeric listen address; "127.0.0.1" */
    uint16_t port;    /* 8600; 0 picks one (UDP and TCP then share the UDP's port) */
    weft_dns_config_t cfg;
    weft_dns_lookup_fn lookup; /* called on the worker thread, inside a snapshot read
                                  section that weft_dns_serve opens around each answer */
    void *arg;
} weft_dns_serve_options_t;

void weft_dns_serve_options_init(weft_dns_serve_options_t *o);

/* Adds the UDP and TCP listeners to h (before weft_host_run). The strings in o must live as
 * long as the host. Returns 0, or an error from weft_host_add_udp/_tcp. */
typedef struct weft_dns_server_s weft_dns_server_t;
int weft_dns_serve(weft_host_t *h, const weft_dns_serve_options_t *o, weft_dns_server_t **out);
/* Ports bound (after weft_host_run bound them). */
uint16_t weft_dns_server_udp_port(const weft_dns_server_t *d);
uint16_t weft_dns_server_tcp_port(const weft_dns_server_t *d);
/* Frees it (after the host stopped). */
void weft_dns_server_free(weft_dns_server_t *d);

#endif
