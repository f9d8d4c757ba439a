/*
 * test_cklog.c - the checks' transition log (src/registry/cklog.h): the last 32 per check
 * kept oldest first with the rest counted as dropped, outputs cut at their bound, ?since,
 * the bound on checks (the one whose last transition is oldest gives its place), and an
 * unknown check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "registry/cklog.h"
#include "registry/status.h"

static json_t *read_log(reg_cklog_t *l, const char *id, uint64_t since)
{
    weft_buf_t b;
    weft_buf_init(&b, 1 << 20);
    if (weft__cklog_json(l, id, since, &b) != 0) {
        weft_buf_free(&b);
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb(b.p, b.len, 0, &e);
    if (!j) fail_msg("bad JSON (%s): %.*s", e.text, (int)b.len, b.p);
    weft_buf_free(&b);
    return j;
}

static void test_ring_and_since(void **state)
{
    (void)state;
    reg_cklog_t *l = weft__cklog_new();
    assert_non_null(l);
    weft__cklog_add(l, "c1", WEFT_HEALTH_CRITICAL, WEFT_HEALTH_CRITICAL, 1000, NULL);
    for (int i = 1; i <= 40; i++) {
        char out[32];
        snprintf(out, sizeof(out), "run %d", i);
        weft__cklog_add(l, "c1", i % 2 ? WEFT_HEALTH_CRITICAL : WEFT_HEALTH_PASSING,
                        i % 2 ? WEFT_HEALTH_PASSING : WEFT_HEALTH_CRITICAL, 1000 + (uint64_t)i,
                        out);
    }
    json_t *j = read_log(l, "c1", 0);
    assert_non_null(j);
    json_t *ts = json_object_get(j, "transitions");
    assert_int_equal(json_array_size(ts), 32);
    assert_int_equal(json_integer_value(json_object_get(j, "dropped")), 9);
    /* oldest kept first: run 9 */
    json_t *t0 = json_array_get(ts, 0);
    assert_string_equal(json_string_value(json_object_get(t0, "output")), "run 9");
    assert_int_equal(json_integer_value(json_object_get(t0, "time_ms")), 1009);
    assert_string_equal(json_string_value(json_object_get(t0, "from")), "critical");
    assert_string_equal(json_string_value(json_object_get(t0, "to")), "passing");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(ts, 31), "output")), "run 40");
    json_decref(j);
    j = read_log(l, "c1", 1038);
    ts = json_object_get(j, "transitions");
    assert_int_equal(json_array_size(ts), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ts, 0), "output")),
                        "run 39");
    json_decref(j);
    assert_null(read_log(l, "nope", 0));
    weft__cklog_free(l);
}

static void test_output_cut(void **state)
{
    (void)state;
    reg_cklog_t *l = weft__cklog_new();
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    weft__cklog_add(l, "c", WEFT_HEALTH_PASSING, WEFT_HEALTH_CRITICAL, 5, big);
    json_t *j = read_log(l, "c", 0);
    const char *o = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "transitions"), 0), "output"));
    assert_int_equal(strlen(o), REG_CKLOG_OUTPUT_MAX - 1);
    assert_int_equal(json_integer_value(json_object_get(j, "output_max_bytes")),
                     REG_CKLOG_OUTPUT_MAX - 1);
    json_decref(j);
    weft__cklog_free(l);
}

static void test_bounded_checks(void **state)
{
    (void)state;
    reg_cklog_t *l = weft__cklog_new();
    char id[32];
    for (int i = 0; i < REG_CKLOG_CHECKS; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        /* c0's last transition is the oldest, save one: c1 moves again last */
        weft__cklog_add(l, id, 0, 2, 100 + (uint64_t)i, "x");
    }
    weft__cklog_add(l, "c0", 2, 0, 100000, "back");
    weft__cklog_add(l, "new", 0, 2, 200000, "y"); /* full: c1 (oldest now) gives its place */
    json_t *j;
    assert_null(read_log(l, "c1", 0));
    assert_non_null(j = read_log(l, "c0", 0));
    json_decref(j);
    assert_non_null(j = read_log(l, "new", 0));
    json_decref(j);
    snprintf(id, sizeof(id), "c%d", REG_CKLOG_CHECKS - 1);
    assert_non_null(j = read_log(l, id, 0));
    json_decref(j);
    weft__cklog_add(NULL, "c", 0, 0, 1, NULL); /* no log: nothing */
    weft__cklog_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ring_and_since),
                                       cmocka_unit_test(test_output_cut),
                                       cmocka_unit_test(test_bounded_checks)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
