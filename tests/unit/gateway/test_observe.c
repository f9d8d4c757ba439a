/*
 * test_observe.c - the gateway's access log writer (src/gateway/observe.h): lines reach the
 * file whole and in order, what is buffered is written out when it is freed, and a writer
 * that cannot keep up (a pipe nobody reads) makes lines drop and be counted instead of
 * blocking the thread that writes them.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/gw_int.h"

static size_t count_lines(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += p[i] == '\n';
    return k;
}

static void test_lines_written_in_order(void **state)
{
    (void)state;
    char path[] = "/tmp/weft-alog-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    gw_alog_t *a;
    char err[256];
    assert_int_equal(gw_alog_new(path, &a, err, sizeof(err)), 0);
    char line[64];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(line, sizeof(line), "{\"n\":%d}\n", i);
        gw_alog_write(a, line, (size_t)n);
    }
    assert_int_equal(gw_alog_dropped(a), 0);
    gw_alog_free(a); /* writes what is left */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int want = 0, got;
    while (fscanf(f, "{\"n\":%d}\n", &got) == 1) assert_int_equal(got, want++);
    fclose(f);
    unlink(path);
    assert_int_equal(want, 10000);
}

static void test_bad_path(void **state)
{
    (void)state;
    gw_alog_t *a = NULL;
    char err[256];
    assert_true(gw_alog_new("/nonexistent-dir/x.log", &a, err, sizeof(err)) < 0);
    assert_null(a);
    assert_non_null(strstr(err, "gateway.access_log.path: cannot open /nonexistent-dir/x.log"));
}

typedef struct reader_s {
    int fd;
    size_t lines;
} reader_t;

static void *drain(void *arg)
{
    reader_t *r = arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(r->fd, buf, sizeof(buf))) > 0) r->lines += count_lines(buf, (size_t)n);
    return NULL;
}

static void test_full_buffer_drops_and_counts(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    char path[64];
    snprintf(path, sizeof(path), "/dev/fd/%d", p[1]); /* the pipe's write end, opened again */
    gw_alog_t *a;
    char err[256];
    assert_int_equal(gw_alog_new(path, &a, err, sizeof(err)), 0);
    close(p[1]); /* the writer holds its own */
    /* nobody reads: the pipe fills, the writer blocks in write(), the buffer fills; every
     * further line is dropped at once (this loop would hang if writing waited) */
    char line[1024];
    memset(line, 'x', sizeof(line));
    line[sizeof(line) - 1] = '\n';
    size_t sent = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (gw_alog_dropped(a) < 100) {
        gw_alog_write(a, line, sizeof(line));
        sent++;
        assert_true(sent < 100000); /* 1 MiB buffers of 1 KiB lines: about 2,100 fit */
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 5);
    assert_int_equal(gw_alog_dropped(a), 100);
    reader_t r = {.fd = p[0]};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drain, &r), 0);
    gw_alog_free(a); /* the reader unblocks the writer; what was kept is written out */
    pthread_join(th, NULL);
    close(p[0]);
    assert_int_equal(r.lines + 100, sent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_written_in_order),
        cmocka_unit_test(test_bad_path),
        cmocka_unit_test(test_full_buffer_drops_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
