/*
 * sysio.h - recv and send on a non-blocking socket as bare system calls (internal).
 *
 * Why. In a process with more than one thread, glibc's read(2) and write(2) are
 * cancellation points: each call enables and disables asynchronous cancellation around the
 * system call, two atomic read-modify-writes of the thread's cancel state. weft never
 * cancels a thread, and a proxied request makes four of these calls (read the client,
 * write the upstream, read the upstream, write the client): about 160 instructions and
 * eight atomics a request (perf: __pthread_disable_asynccancel alone was 1% of the
 * gateway's CPU). glibc's syscall(3) makes the same system call without them.
 *
 * weft__sys_send also passes MSG_NOSIGNAL: a peer that has gone gives EPIPE, never
 * SIGPIPE, whatever the process does with that signal (libweft runs in other programs).
 *
 * Sanitizer builds call recv and send through libc instead, so that the sanitizers'
 * interceptors still see every buffer the kernel fills or reads (ASan) and every byte
 * that passes between threads through a socket (TSan's synchronization on descriptors).
 *
 * Both return what the system call returns and set errno as it does. Threads: any.
 */
#ifndef WEFT_CORE_SYSIO_H
#define WEFT_CORE_SYSIO_H

#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) ||                               \
    __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer) || !defined(SYS_recvfrom) || !defined(SYS_sendto)
#define WEFT__SYSIO_LIBC 1
#else
#define WEFT__SYSIO_LIBC 0
#endif

static inline ssize_t weft__sys_recv(int fd, void *buf, size_t len)
{
#if WEFT__SYSIO_LIBC
    return recv(fd, buf, len, 0);
#else
    return (ssize_t)syscall(SYS_recvfrom, fd, buf, len, 0, (void *)0, (void *)0);
#endif
}

static inline ssize_t weft__sys_send(int fd, const void *buf, size_t len)
{
#if WEFT__SYSIO_LIBC
    return send(fd, buf, len, MSG_NOSIGNAL);
#else
    return (ssize_t)syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, (void *)0, 0);
#endif
}

/* Sends what the socket takes at once: the number of bytes sent, 0 when it takes none
 * (EAGAIN), or a negative errno (libuv's error codes on Unix). */
static inline ssize_t weft__sys_try_send(int fd, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = weft__sys_send(fd, buf, len);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
}

#endif
