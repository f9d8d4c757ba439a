/*
 * listen.c - the bound sockets of a listener, one per worker loop (see listen.h).
 *
 * weft's listeners (the HTTP servers, the host's UDP and TCP listeners) give each worker loop
 * its own SO_REUSEPORT socket on the listener's address, so the kernel spreads connections
 * and datagrams over the workers and no socket is shared between loops. SO_REUSEPORT alone
 * would also let a second process (of the same user) join the group without a word, so a
 * probe socket without the option is bound first and closed: it fails if anyone already
 * uses the address. With port 0 the probe picks the port the others then bind.
 *
 * Threads: any; called at start-up, before the loops run, so errors come back at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/listen.h"
#include "weft/common.h"

bool weft__listen_numeric(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int make_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof(*s6);
        return 0;
    }
    return WEFT_EINVAL;
}

/* One socket; reuseport: join the group; backlog 0: bind only (a stream socket nobody can
 * connect to). Returns the descriptor or -errno. */
static int open_one(const struct sockaddr_storage *ss, socklen_t len, int type, bool reuseport,
                    int backlog)
{
    int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        (ss->ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        (type == SOCK_STREAM && backlog && listen(fd, backlog) != 0)) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int weft__listen_open(const char *host, uint16_t port, int type, int backlog, unsigned n, int *fds,
                      uint16_t *bound, char *err, size_t errlen)
{
    const char *kind = type == SOCK_DGRAM ? "udp " : "";
    struct sockaddr_storage ss;
    socklen_t len;
    if (make_addr(host, port, &ss, &len) != 0) {
        if (err) snprintf(err, errlen, "%s: not a numeric IP address", host);
        return WEFT_EINVAL;
    }
    int probe = open_one(&ss, len, type, false, 0);
    if (probe < 0) {
        if (err)
            snprintf(err, errlen, "cannot listen on %s%s:%u: %s", kind, host, port,
                     strerror(-probe));
        return probe;
    }
    struct sockaddr_storage got;
    socklen_t glen = sizeof(got);
    getsockname(probe, (struct sockaddr *)&got, &glen);
    close(probe);
    port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                           : ((struct sockaddr_in *)&got)->sin_port);
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    for (unsigned i = 0; i < n; i++) {
        int fd = open_one(&ss, len, type, true, backlog);
        if (fd < 0) {
            if (err)
                snprintf(err, errlen, "cannot listen on %s%s:%u: %s", kind, host, port,
                         strerror(-fd));
            while (i > 0) close(fds[--i]);
            return fd;
        }
        fds[i] = fd;
    }
    *bound = port;
    return 0;
}
