/* bench/floor.c - the least an HTTP/1.1 keep-alive server can do, as a reference for bench/http.
 *
 *   floor PORT
 *
 * One thread, level-triggered epoll on 127.0.0.1:PORT; every read is answered with one fixed
 * response per request head it completes (a blank line ends a head; bodies are not
 * supported), in one write. It parses nothing, keeps no state but the last bytes of the
 * previous read, and sends a response of the same size as examples/hello's. Its requests/s
 * under `wrk -t1` is what the client and the kernel allow any server on this machine: a
 * server that matches it is not the bottleneck. Not a server for anything else. */
#define _GNU_SOURCE
#include <arpa/inet.h>
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

static const char RESP[] = "HTTP/1.1 200 OK\r\n"
                           "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 13\r\n"
                           "\r\n"
                           "hello, world\n";

static unsigned tail[MAX_FD]; /* the last bytes of the previous read, per descriptor */

int main(int argc, char **argv)
{
    long port = argc == 2 ? strtol(argv[1], NULL, 10) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: floor PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int one = 1, l, ep = floor_listen("floor", port, &l);
    if (ep < 0) return 1;
    struct epoll_event evs[512];
    static char in[16384], out[16384];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, c;
            if (fd == l) {
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    if (c >= MAX_FD || epoll_ctl(ep, EPOLL_CTL_ADD, c, &e) != 0) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    tail[c] = 0;
                }
                continue;
            }
            ssize_t r = read(fd, in, sizeof in);
            if (r <= 0) {
                close(fd);
                continue;
            }
            unsigned t = tail[fd]; /* the last four bytes seen, newest lowest */
            size_t o = 0;
            for (ssize_t k = 0; k < r; k++) {
                t = t << 8 | (unsigned char)in[k];
                if (t == 0x0d0a0d0a && o + sizeof RESP - 1 <= sizeof out) {
                    memcpy(out + o, RESP, sizeof RESP - 1);
                    o += sizeof RESP - 1;
                }
            }
            tail[fd] = t;
            if (o && write(fd, out, o) != (ssize_t)o) close(fd); /* a short write: give up */
        }
    }
}
