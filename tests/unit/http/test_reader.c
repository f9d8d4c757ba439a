/*
 * test_reader.c - the edge-triggered reader (src/http/reader.c) on its own, over
 * non-blocking AF_UNIX socket pairs (whose bytes and FIN are in the receiver's queue as soon
 * as write or shutdown returns, so every test knows what one epoll_wait will see): reads in
 * order of arrival, a FIN that comes with the last bytes, WEFT__READS_PER_TURN, stop and
 * start with bytes waiting (only the kick list can read them: no new edge comes), removal
 * while on the kick list, removal (and freeing) inside a batch and inside the fd's own
 * callback, a refused buffer (UV_ENOBUFS), the loop reference held only while an fd
 * reads, and the hooks (drained, hup). Each test waits for the callbacks it expects
 * (run_until) and ends by closing the reader and the loop with nothing left open.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/reader.h"

#define LOG_MAX 512

/* One end being read, with the other end (peer) for the test to write to. */
typedef struct sock_s {
    weft__rfd_t rf;
    int fd, peer;
    char id;        /* its letter in the log */
    size_t bufsize; /* what alloc gives; 0: UV_ENOBUFS */
    char buf[64];
    size_t got; /* bytes read */
    int reads, eofs, errors, nobufs;
    char data[256]; /* the bytes, in order */
    bool stop_after_read;
    struct sock_s *remove_in_read; /* removed (and freed) from this one's read callback */
    int drains, hups;              /* the reader's hooks (weft__reader_hooks) */
    bool remove_in_hup;            /* removed and freed by its own hup hook */
} sock_t;

static char order[LOG_MAX]; /* one letter per read callback, '!' for EOF */
static size_t norder;
static int reader_closed;

static void on_alloc(weft__rfd_t *f, size_t suggested, uv_buf_t *b)
{
    sock_t *s = f->data;
    assert_int_equal(suggested, WEFT__READER_SUGGESTED);
    *b = uv_buf_init(s->buf, (unsigned)s->bufsize);
}

static void sock_free(sock_t *s)
{
    weft__reader_remove(&s->rf);
    close(s->fd);
    close(s->peer);
    free(s);
}

static void on_read(weft__rfd_t *f, ssize_t n, const uv_buf_t *b)
{
    sock_t *s = f->data;
    assert_true(n != 0);
    assert_true(norder < LOG_MAX);
    if (n > 0) {
        order[norder++] = s->id;
        assert_ptr_equal(b->base, s->buf);
        assert_true((size_t)n <= b->len);
        assert_true(s->got + (size_t)n <= sizeof(s->data));
        memcpy(s->data + s->got, b->base, (size_t)n);
        s->got += (size_t)n;
        s->reads++;
    } else if (n == UV_EOF) {
        order[norder++] = '!';
        s->eofs++;
    } else if (n == UV_ENOBUFS) {
        s->nobufs++;
    } else {
        s->errors++;
    }
    if (s->stop_after_read) weft__reader_stop(f);
    if (s->remove_in_read) {
        sock_t *x = s->remove_in_read;
        s->remove_in_read = NULL;
        sock_free(x); /* may be s itself: nothing touches it after this */
    }
}

static sock_t *sock_new(weft__reader_t *r, char id, size_t bufsize)
{
    sock_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    s->fd = sv[0];
    s->peer = sv[1];
    s->id = id;
    s->bufsize = bufsize;
    assert_int_equal(weft__reader_add(r, &s->rf, s->fd, on_alloc, on_read, s), 0);
    assert_ptr_equal(s->rf.data, s);
    return s;
}

static void put(sock_t *s, const char *bytes, size_t n)
{
    assert_int_equal(write(s->peer, bytes, n), (ssize_t)n);
}

static void run_until(uv_loop_t *loop, const int *counter, int want)
{
    for (int i = 0; i < 1000 && *counter < want; i++) uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(*counter, want);
}

static void on_reader_closed(weft__reader_t *r)
{
    reader_closed++;
}

static void setup_loop(uv_loop_t *loop, weft__reader_t *r)
{
    norder = 0;
    memset(order, 0, sizeof(order));
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(weft__reader_init(r, loop), 0);
}

static void teardown_loop(uv_loop_t *loop, weft__reader_t *r)
{
    reader_closed = 0;
    weft__reader_close(r, on_reader_closed);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(reader_closed, 1);
    assert_int_equal(r->ep, -1);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Bytes that arrive c, a, b are read c, a, b, whatever order the fds were added in. */
static void test_order_of_arrival(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    sock_t *a = sock_new(&r, 'a', 64), *b = sock_new(&r, 'b', 64), *c = sock_new(&r, 'c', 64);
    weft__reader_start(&a->rf);
    weft__reader_start(&b->rf);
    weft__reader_start(&c->rf);
    put(c, "3", 1);
    put(a, "1", 1);
    put(b, "2", 1);
    int total = 0;
    for (int i = 0; i < 1000 && total < 3; i++) {
        uv_run(&loop, UV_RUN_ONCE);
        total = a->reads + b->reads + c->reads;
    }
    assert_string_equal(order, "cab");
    /* again, in another order, with a second wave behind the first */
    norder = 0;
    memset(order, 0, sizeof(order));
    put(b, "22", 2);
    put(c, "33", 2);
    put(a, "11", 2);
    for (int i = 0; i < 1000 && total < 6; i++) {
        uv_run(&loop, UV_RUN_ONCE);
        total = a->reads + b->reads + c->reads;
    }
    assert_string_equal(order, "bca");
    assert_memory_equal(a->data, "111", 3);
    sock_free(a);
    sock_free(b);
    sock_free(c);
    teardown_loop(&loop, &r);
}

/* A FIN queued behind the last bytes is reported with them: bytes, then EOF, in the same
 * turn, though the short read of the bytes would otherwise end the reading. */
static void test_fin_with_last_bytes(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    sock_t *a = sock_new(&r, 'a', 64);
    weft__reader_start(&a->rf);
    put(a, "xyz", 3);
    assert_int_equal(shutdown(a->peer, SHUT_WR), 0);
    run_until(&loop, &a->reads, 1);
    assert_int_equal(a->eofs, 1); /* within the turn that read the bytes */
    assert_string_equal(order, "a!");
    assert_int_equal(a->got, 3);
    assert_false(a->rf.rready);

    /* a FIN on its own edge, after bytes read earlier */
    sock_t *b = sock_new(&r, 'b', 64);
    weft__reader_start(&b->rf);
    put(b, "hi", 2);
    run_until(&loop, &b->reads, 1);
    assert_int_equal(b->eofs, 0);
    assert_int_equal(shutdown(b->peer, SHUT_WR), 0);
    run_until(&loop, &b->eofs, 1);
    sock_free(a);
    sock_free(b);
    teardown_loop(&loop, &r);
}

/* After WEFT__READS_PER_TURN reads one fd yields: the other's bytes come next. */
static void test_reads_per_turn(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    sock_t *a = sock_new(&r, 'a', 1), *b = sock_new(&r, 'b', 64);
    weft__reader_start(&a->rf);
    weft__reader_start(&b->rf);
    char bytes[100];
    for (int i = 0; i < 100; i++) bytes[i] = (char)('0' + i % 10);
    put(a, bytes, sizeof(bytes));
    put(b, "b", 1);
    run_until(&loop, &a->reads, 100);
    assert_int_equal(b->reads, 1);
    const char *bpos = strchr(order, 'b');
    assert_non_null(bpos);
    assert_int_equal(bpos - order, WEFT__READS_PER_TURN);
    assert_memory_equal(a->data, bytes, sizeof(bytes));
    sock_free(a);
    sock_free(b);
    teardown_loop(&loop, &r);
}

/* Two sockets reading in r: a taking 4 bytes a read, which stops reading after its first
 * read of 10 bytes sent to it, so 6 wait in its socket; b taking 64. */
static void a_stopped_with_bytes(uv_loop_t *loop, weft__reader_t *r, sock_t **a, sock_t **b)
{
    *a = sock_new(r, 'a', 4);
    *b = sock_new(r, 'b', 64);
    weft__reader_start(&(*a)->rf);
    weft__reader_start(&(*b)->rf);
    (*a)->stop_after_read = true;
    put(*a, "0123456789", 10);
    run_until(loop, &(*a)->reads, 1);
}

/* Stop with bytes waiting: nothing more is read (another fd's bytes are, meanwhile); start
 * reads the rest from the kick list (no new edge comes), never inside the start call. */
static void test_stop_start_with_bytes_waiting(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    sock_t *a, *b;
    a_stopped_with_bytes(&loop, &r, &a, &b);
    assert_int_equal(a->got, 4);
    assert_true(a->rf.rready);
    put(b, "b", 1); /* an event to wait for, after which a must still be where it was */
    run_until(&loop, &b->reads, 1);
    assert_int_equal(a->reads, 1);
    a->stop_after_read = false;
    weft__reader_start(&a->rf);
    assert_int_equal(a->reads, 1); /* not inside start */
    assert_int_equal(a->rf.kick, WEFT__KICK_NEXT);
    run_until(&loop, &a->reads, 3);
    assert_int_equal(a->got, 10);
    assert_memory_equal(a->data, "0123456789", 10);
    assert_false(a->rf.rready);
    assert_int_equal(a->rf.kick, WEFT__KICK_NONE);
    /* starting again without bytes waiting puts nothing on the kick list */
    weft__reader_stop(&a->rf);
    weft__reader_start(&a->rf);
    assert_int_equal(a->rf.kick, WEFT__KICK_NONE);
    sock_free(a);
    sock_free(b);
    teardown_loop(&loop, &r);
}

/* Removed (and freed) while on the kick list, for the next turn or in the pass running. */
static void test_remove_while_kicked(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    sock_t *a, *b;
    a_stopped_with_bytes(&loop, &r, &a, &b);
    weft__reader_start(&a->rf);
    assert_int_equal(a->rf.kick, WEFT__KICK_NEXT);
    sock_free(a); /* ASan would see the reader touch it after this */
    put(b, "b", 1);
    run_until(&loop, &b->reads, 1);
    for (int i = 0; i < 3; i++) uv_run(&loop, UV_RUN_NOWAIT); /* the idle pass, if any */
    assert_string_equal(order, "ab");
    assert_int_equal(r.nfds, 1);

    /* three kicked; the first removes the second during the pass that runs them all */
    sock_t *x = sock_new(&r, 'x', 4), *y = sock_new(&r, 'y', 4), *z = sock_new(&r, 'z', 4);
    sock_t *all[] = {x, y, z};
    for (int i = 0; i < 3; i++) {
        all[i]->stop_after_read = true;
        weft__reader_start(&all[i]->rf);
        put(all[i], "12345678", 8);
    }
    norder = 0;
    memset(order, 0, sizeof(order));
    for (int i = 0; i < 1000 && x->reads + y->reads + z->reads < 3; i++) uv_run(&loop, UV_RUN_ONCE);
    assert_string_equal(order, "xyz");
    for (int i = 0; i < 3; i++) {
        all[i]->stop_after_read = false;
        weft__reader_start(&all[i]->rf); /* kicked: x, y, z */
    }
    x->remove_in_read = y;
    run_until(&loop, &z->reads, 2);
    assert_int_equal(x->reads, 2);
    assert_string_equal(order, "xyzxz");
    sock_free(x);
    sock_free(z);
    sock_free(b);
    teardown_loop(&loop, &r);
}

/* Removed and freed inside a batch: another fd whose event is still ahead, and the fd
 * whose callback runs. */
static void test_remove_in_batch(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    sock_t *a = sock_new(&r, 'a', 64), *b = sock_new(&r, 'b', 64), *c = sock_new(&r, 'c', 1);
    weft__reader_start(&a->rf);
    weft__reader_start(&b->rf);
    weft__reader_start(&c->rf);
    a->remove_in_read = b;
    c->remove_in_read = c; /* itself, on its first of several reads */
    put(a, "a", 1);
    put(b, "b", 1);
    put(c, "ccc", 3);
    sock_t *d = sock_new(&r, 'd', 64);
    weft__reader_start(&d->rf);
    put(d, "d", 1); /* after the others in the same batch: the batch went on */
    run_until(&loop, &d->reads, 1);
    assert_string_equal(order, "acd");
    assert_int_equal(r.nfds, 2);
    sock_free(a);
    sock_free(d);
    teardown_loop(&loop, &r);
}

/* A zero-length buffer gives UV_ENOBUFS and leaves the bytes; stop and start read them. */
static void test_no_buffer(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    sock_t *a = sock_new(&r, 'a', 0);
    weft__reader_start(&a->rf);
    put(a, "abc", 3);
    run_until(&loop, &a->nobufs, 1);
    assert_int_equal(a->reads, 0);
    weft__reader_stop(&a->rf);
    a->bufsize = 64;
    weft__reader_start(&a->rf);
    run_until(&loop, &a->reads, 1);
    assert_int_equal(a->got, 3);
    sock_free(a);
    teardown_loop(&loop, &r);
}

static int hups_total; /* hup hooks run, also for freed socks */

static void on_drained(weft__rfd_t *f)
{
    ((sock_t *)f->data)->drains++;
}

static void on_hup(weft__rfd_t *f)
{
    sock_t *s = f->data;
    assert_false(f->reading);
    hups_total++;
    s->hups++;
    if (s->remove_in_hup) sock_free(s);
}

/* The hooks: drained when a read finds EAGAIN (not after a short read, which says so with
 * its bytes); hup when a FIN comes while reading is off (not while on: then it is UV_EOF),
 * and the fd may be removed and freed inside it. */
static void test_hooks(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    weft__reader_hooks(&r, on_drained, on_hup);
    sock_t *a = sock_new(&r, 'a', 8);
    weft__reader_start(&a->rf);
    put(a, "12345678", 8); /* fills the buffer: the next read finds EAGAIN */
    run_until(&loop, &a->drains, 1);
    assert_int_equal(a->reads, 1);
    assert_false(weft__reader_ready(&a->rf));
    put(a, "123", 3); /* a short read: no hook */
    run_until(&loop, &a->reads, 2);
    assert_int_equal(a->drains, 1);

    /* a FIN while reading is off: hup, no read; started again, the bytes and the EOF */
    sock_t *b = sock_new(&r, 'b', 64);
    put(b, "xy", 2);
    assert_int_equal(shutdown(b->peer, SHUT_WR), 0);
    run_until(&loop, &b->hups, 1);
    assert_int_equal(b->reads + b->eofs, 0);
    assert_true(weft__reader_ready(&b->rf));
    weft__reader_start(&b->rf);
    run_until(&loop, &b->eofs, 1);
    assert_int_equal(b->got, 2);
    assert_int_equal(b->hups, 1);

    /* a FIN while reading: UV_EOF, no hup */
    sock_t *c = sock_new(&r, 'c', 64);
    weft__reader_start(&c->rf);
    assert_int_equal(shutdown(c->peer, SHUT_WR), 0);
    run_until(&loop, &c->eofs, 1);
    assert_int_equal(c->hups, 0);

    /* removed inside its own hook, in a batch with another fd's FIN behind it */
    sock_t *d = sock_new(&r, 'd', 64), *e = sock_new(&r, 'e', 64);
    d->remove_in_hup = true;
    hups_total = 0;
    assert_int_equal(shutdown(d->peer, SHUT_WR), 0);
    assert_int_equal(shutdown(e->peer, SHUT_WR), 0);
    run_until(&loop, &e->hups, 1);
    assert_int_equal(hups_total, 2); /* d's, then e's */
    weft__reader_hooks(&r, NULL, NULL);
    sock_free(a);
    sock_free(b);
    sock_free(c);
    sock_free(e);
    teardown_loop(&loop, &r);
}

/* The reader holds the loop only while an fd reads; an error from read(2) is reported. */
static void test_loop_reference_and_errors(void **state)
{
    uv_loop_t loop;
    weft__reader_t r;
    setup_loop(&loop, &r);
    assert_false(uv_loop_alive(&loop));
    sock_t *a = sock_new(&r, 'a', 64), *b = sock_new(&r, 'b', 64);
    assert_false(uv_loop_alive(&loop));
    weft__reader_start(&a->rf);
    weft__reader_start(&b->rf);
    assert_true(uv_loop_alive(&loop));
    weft__reader_stop(&a->rf);
    assert_true(uv_loop_alive(&loop));
    weft__reader_stop(&b->rf);
    weft__reader_stop(&b->rf); /* idempotent */
    assert_false(uv_loop_alive(&loop));
    weft__reader_start(&b->rf);
    sock_free(b); /* removal of a reading fd drops its reference */
    assert_false(uv_loop_alive(&loop));
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* returns: nothing holds the loop */

    /* add refuses what epoll refuses */
    weft__rfd_t bad;
    assert_int_equal(weft__reader_add(&r, &bad, -1, on_alloc, on_read, NULL), UV_EBADF);
    assert_false(bad.added);
    assert_int_equal(r.nfds, 1);

    /* a read error: the peer resets a TCP connection */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int sfd = accept(lfd, NULL, NULL);
    assert_true(sfd >= 0);
    assert_int_equal(fcntl(cfd, F_SETFL, O_NONBLOCK), 0);
    sock_t t = {.id = 't', .bufsize = 64};
    assert_int_equal(weft__reader_add(&r, &t.rf, cfd, on_alloc, on_read, &t), 0);
    weft__reader_start(&t.rf);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(sfd); /* RST */
    run_until(&loop, &t.errors, 1);
    assert_int_equal(t.reads, 0);
    weft__reader_remove(&t.rf);
    close(cfd);
    close(lfd);
    sock_free(a);
    teardown_loop(&loop, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_of_arrival),
        cmocka_unit_test(test_fin_with_last_bytes),
        cmocka_unit_test(test_reads_per_turn),
        cmocka_unit_test(test_stop_start_with_bytes_waiting),
        cmocka_unit_test(test_remove_while_kicked),
        cmocka_unit_test(test_remove_in_batch),
        cmocka_unit_test(test_no_buffer),
        cmocka_unit_test(test_loop_reference_and_errors),
        cmocka_unit_test(test_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
