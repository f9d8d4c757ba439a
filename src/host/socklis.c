/*
 * socklis.c - what the host's UDP and TCP listeners share: their address, the sockets bound
 * for them (one per worker, core/listen.c) and their registration with the host.
 *
 * Threads: add and bind run on the thread that builds and runs the host, before any worker
 * starts; take runs on worker index's thread and touches only fds[index]; the port is an
 * atomic that any thread may read.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/listen.h"
#include "host/host_int.h"

int weft__socklis_add(weft_host_t *h, weft__socklis_t *b, const char *host, uint16_t port,
                      const weft__listener_ops_t *ops, void *l)
{
    if (!host) host = "127.0.0.1";
    if (strlen(host) >= sizeof(b->host) || !weft__listen_numeric(host)) return WEFT_EINVAL;
    strcpy(b->host, host);
    b->want = port;
    return weft__host_add_listener(h, ops, l);
}

int weft__socklis_bind(weft__socklis_t *b, int type, int backlog, unsigned n_loops, char *err,
                       size_t errlen)
{
    if (b->fds) return 0;
    int *fds = malloc(n_loops * sizeof(int));
    if (!fds) return WEFT_ENOMEM;
    uint16_t port = 0;
    int r = weft__listen_open(b->host, b->want, type, backlog, n_loops, fds, &port, err, errlen);
    if (r != 0) {
        free(fds);
        return r;
    }
    b->fds = fds;
    b->n = n_loops;
    atomic_store_explicit(&b->port, port, memory_order_release);
    return 0;
}

int weft__socklis_take(weft__socklis_t *b, unsigned index)
{
    int fd = b->fds[index];
    b->fds[index] = -1;
    return fd;
}

void weft__socklis_free(weft__socklis_t *b)
{
    for (unsigned i = 0; b->fds && i < b->n; i++)
        if (b->fds[i] >= 0) close(b->fds[i]);
    free(b->fds);
}
