/*
 * loopback.h - a blocking TCP connection to 127.0.0.1, for unit tests that talk to a
 * server on a free loopback port. Include after <cmocka.h> (it asserts).
 */
#ifndef WEFT_TESTS_LOOPBACK_H
#define WEFT_TESTS_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

/* Connects to 127.0.0.1:port; returns the socket (the test fails when it cannot). A
 * listener's kernel completes the handshake from its backlog: no loop needs to run. */
static inline int test_dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

#endif
