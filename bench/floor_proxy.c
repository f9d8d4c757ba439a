/* bench/floor_proxy.c - the least a keep-alive reverse proxy can do, as a reference for
 * bench/gateway.
 *
 *   floor_proxy PORT UPSTREAM_PORT
 *
 * One thread, level-triggered epoll on 127.0.0.1:PORT. Each client connection it accepts
 * gets its own connection to 127.0.0.1:UPSTREAM_PORT, opened at once and kept for the
 * client connection's life; whatever one of the two sends is written to the other as it
 * is, in one write. It parses nothing, adds and removes no header, keeps no pool, balances
 * nothing: per request it makes the system calls no proxy can do without (a read and a
 * write each way, and its share of an epoll_wait), and nothing else. Its requests/s under
 * wrk is what the client, the upstream and the kernel allow any proxy on this machine; a
 * proxy's ratio to NGINX cannot be above floor's. Not a proxy for anything else (a short
 * write, which these small messages never meet on loopback, closes both connections). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floor_listen.h"

#define MAX_FD 65536

static int peer[MAX_FD]; /* the other end of each descriptor's pair; -1 for none */

static void drop(int ep, int fd)
{
    int o = peer[fd];
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    peer[fd] = -1;
    if (o >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, o, NULL);
        close(o);
        peer[o] = -1;
    }
}

static int watch(int ep, int fd)
{
    struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

int main(int argc, char **argv)
{
    long port = argc == 3 ? strtol(argv[1], NULL, 10) : 0;
    long uport = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    if (port <= 0 || port > 65535 || uport <= 0 || uport > 65535) {
        fprintf(stderr, "usage: floor_proxy PORT UPSTREAM_PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_FD; i++) peer[i] = -1;
    int l, ep = floor_listen("floor_proxy", port, &l);
    if (ep < 0) return 1;
    struct sockaddr_in u = {.sin_family = AF_INET, .sin_port = htons((uint16_t)uport)};
    u.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct epoll_event evs[512];
    static char buf[16384];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, c;
            if (fd == l) {
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    /* the upstream connection, connected before it is made non-blocking
                     * (on loopback the handshake is done within connect) */
                    int s = socket(AF_INET, SOCK_STREAM, 0);
                    if (c >= MAX_FD || s < 0 || s >= MAX_FD ||
                        connect(s, (struct sockaddr *)&u, sizeof u) != 0 ||
                        fcntl(s, F_SETFL, O_NONBLOCK) != 0 || watch(ep, c) != 0) {
                        close(c);
                        if (s >= 0) close(s);
                        continue;
                    }
                    peer[c] = s;
                    peer[s] = c;
                    if (watch(ep, s) != 0) drop(ep, c);
                }
                continue;
            }
            if (peer[fd] < 0) continue; /* dropped earlier in this batch */
            ssize_t r = read(fd, buf, sizeof buf);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0 || write(peer[fd], buf, (size_t)r) != r) drop(ep, fd);
        }
    }
}
