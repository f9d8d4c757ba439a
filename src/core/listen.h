/*
 * listen.h - the bound sockets of a listener, one per worker loop (internal; see listen.c).
 */
#ifndef WEFT_CORE_LISTEN_H
#define WEFT_CORE_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when host is a numeric IPv4 or IPv6 address. */
bool weft__listen_numeric(const char *host);

/*
 * Opens n non-blocking SO_REUSEPORT sockets of type (SOCK_STREAM: listening with backlog;
 * SOCK_DGRAM) on host:port (numeric; IPv6 sockets are v6-only) into fds[0..n-1], and the
 * port they share in *bound (port 0 picks a free one). A probe socket without SO_REUSEPORT
 * is bound first: it fails when anything already uses the address, even a process that set
 * SO_REUSEPORT itself, so two servers never silently share a port. Returns 0, WEFT_EINVAL
 * (host not numeric), or -errno with err naming the address; on error nothing stays open.
 */
int weft__listen_open(const char *host, uint16_t port, int type, int backlog, unsigned n, int *fds,
                      uint16_t *bound, char *err, size_t errlen);

#endif
