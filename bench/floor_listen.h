/* bench/floor_listen.h - the listening side shared by bench/floor.c and bench/floor_proxy.c:
 * a non-blocking socket listening on 127.0.0.1:port, watched by a new epoll (level-triggered,
 * data.fd = the socket). Header-only, as both are single files built with cc by the scripts. */
#ifndef FLOOR_LISTEN_H
#define FLOOR_LISTEN_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* Returns the epoll descriptor and sets *lfd to the socket; -1 (after perror naming who)
 * when either cannot be had. */
static int floor_listen(const char *who, long port, int *lfd)
{
    int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (l >= 0) setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 511) != 0) {
        fprintf(stderr, "%s: ", who);
        perror("listen");
        return -1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) != 0) {
        fprintf(stderr, "%s: ", who);
        perror("epoll");
        return -1;
    }
    *lfd = l;
    return ep;
}

#endif
