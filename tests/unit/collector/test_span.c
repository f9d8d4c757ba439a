/*
 * test_span.c - the checks every decoder shares (collector/span.h): each limit at its
 * bound and one past it, with its message; the batch's record of refusals; col_attr_str.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/span.h"

static col_resource_t res;
static col_scope_t scope;

static col_span_t good_span(void)
{
    col_span_t s;
    memset(&s, 0, sizeof(s));
    s.trace_id[15] = 1;
    s.span_id[0] = 2;
    s.start_ns = 10;
    s.end_ns = 10;
    s.name = COL_STR("GET /");
    s.resource = &res;
    s.scope = &scope;
    return s;
}

static char big[COL_MAX_SPAN_BYTES + 2];

static col_str_t str_n(size_t n)
{
    return (col_str_t){.p = big, .n = (uint32_t)n};
}

static void test_ids_and_times(void **state)
{
    col_span_t s = good_span();
    assert_null(col_span_check(&s));
    memset(s.trace_id, 0, 16);
    assert_string_equal(col_span_check(&s), "traceId is all zero");
    s = good_span();
    memset(s.span_id, 0, 8);
    assert_string_equal(col_span_check(&s), "spanId is all zero");
    s = good_span();
    s.end_ns = 9;
    assert_string_equal(col_span_check(&s), "endTimeUnixNano is before startTimeUnixNano");
}

static void test_lengths(void **state)
{
    col_span_t s = good_span();
    s.name = str_n(COL_NAME_MAX);
    assert_null(col_span_check(&s));
    s.name = str_n(COL_NAME_MAX + 1);
    assert_string_equal(col_span_check(&s), "name is longer than 1024 bytes");

    col_attr_t attrs[COL_MAX_ATTRS + 1];
    memset(attrs, 0, sizeof(attrs));
    for (size_t i = 0; i < COL_MAX_ATTRS + 1; i++) {
        attrs[i].key = COL_STR("k");
        attrs[i].type = COL_V_INT;
    }
    s = good_span();
    s.attrs = attrs;
    s.nattrs = COL_MAX_ATTRS;
    assert_null(col_span_check(&s));
    s.nattrs = COL_MAX_ATTRS + 1;
    assert_string_equal(col_span_check(&s), "attributes: more than 256 attributes");
    s.nattrs = 4;
    attrs[3].key = str_n(COL_KEY_MAX);
    assert_null(col_span_check(&s));
    attrs[3].key = str_n(COL_KEY_MAX + 1);
    assert_string_equal(col_span_check(&s), "attributes[3].key is longer than 256 bytes");
    attrs[3].key = COL_STR("k");
    attrs[2].type = COL_V_ARRAY;
    attrs[2].v.s = str_n(COL_VALUE_MAX);
    assert_null(col_span_check(&s));
    attrs[2].v.s = str_n(COL_VALUE_MAX + 1);
    assert_string_equal(col_span_check(&s), "attributes[2].value is longer than 65536 bytes");
    attrs[2].type = COL_V_INT; /* a number's union bits are not a length */
    assert_null(col_span_check(&s));

    /* the span's strings together: 20 values of 64 KiB pass each, not all */
    col_attr_t many[20];
    for (size_t i = 0; i < 20; i++)
        many[i] = (col_attr_t){.key = COL_STR("k"), .type = COL_V_STRING, .v.s = str_n(60000)};
    s = good_span();
    s.attrs = many;
    s.nattrs = 17; /* 17 * 60001 + 5 < 1 MiB */
    assert_null(col_span_check(&s));
    s.nattrs = 18;
    assert_string_equal(col_span_check(&s),
                        "the span's strings are longer than 1048576 bytes together");
}

static void test_events_links_resource(void **state)
{
    static col_event_t events[COL_MAX_EVENTS + 1];
    static col_link_t links[COL_MAX_LINKS + 1];
    col_span_t s = good_span();
    s.events = events;
    s.nevents = COL_MAX_EVENTS;
    assert_null(col_span_check(&s));
    s.nevents = COL_MAX_EVENTS + 1;
    assert_string_equal(col_span_check(&s), "events: more than 1024 events");
    s.nevents = 3;
    events[2].name = str_n(COL_NAME_MAX + 1);
    assert_string_equal(col_span_check(&s), "events[2].name is longer than 1024 bytes");
    events[2].name = COL_STR("e");
    col_attr_t a = {.key = str_n(COL_KEY_MAX + 1), .type = COL_V_BOOL};
    events[1].attrs = &a;
    events[1].nattrs = 1;
    assert_string_equal(col_span_check(&s), "events[1].attributes[0].key is longer than 256 bytes");
    events[1].nattrs = 0;

    s = good_span();
    s.links = links;
    s.nlinks = COL_MAX_LINKS + 1;
    assert_string_equal(col_span_check(&s), "links: more than 128 links");
    s.nlinks = 1;
    links[0].attrs = &a;
    links[0].nattrs = 1;
    assert_string_equal(col_span_check(&s), "links[0].attributes[0].key is longer than 256 bytes");
    links[0].nattrs = 0;
    assert_null(col_span_check(&s));

    s = good_span();
    res.attrs = &a;
    res.nattrs = 1;
    assert_string_equal(col_span_check(&s), "resource.attributes[0].key is longer than 256 bytes");
    res.nattrs = 0;
    scope.name = str_n(COL_NAME_MAX + 1);
    assert_string_equal(col_span_check(&s), "scope.name is longer than 1024 bytes");
    scope.name = COL_STR("lib");
    scope.attrs = &a;
    scope.nattrs = 1;
    assert_string_equal(col_span_check(&s), "scope.attributes[0].key is longer than 256 bytes");
    scope.nattrs = 0;
    assert_null(col_span_check(&s));
    /* the same checks alone, for a resource or scope read after its spans */
    assert_null(col_shared_check(NULL, NULL));
    assert_null(col_shared_check(&res, &scope));
    res.attrs = &a;
    res.nattrs = 1;
    assert_string_equal(col_shared_check(&res, NULL),
                        "resource.attributes[0].key is longer than 256 bytes");
    res.nattrs = 0;
    scope.version = str_n(COL_NAME_MAX + 1);
    assert_string_equal(col_shared_check(NULL, &scope), "scope.version is longer than 1024 bytes");
    scope.version = COL_STR("");
}

static void test_batch_reject(void **state)
{
    col_batch_t b;
    memset(&b, 0, sizeof(b));
    col_batch_reject(&b, 7, "traceId is all zero");
    col_batch_reject(&b, 9, "spanId is all zero");
    assert_int_equal(b.rejected, 2);
    assert_string_equal(b.reject_msg, "span 7: traceId is all zero");
}

static void test_attr_str(void **state)
{
    col_attr_t a[3] = {
        {.key = COL_STR("n"), .type = COL_V_INT, .v.i = 3},
        {.key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = COL_STR("api")},
        {.key = COL_STR("service.name"), .type = COL_V_STRING, .v.s = COL_STR("second")},
    };
    const col_str_t *v = col_attr_str(a, 3, "service.name");
    assert_non_null(v);
    assert_true(col_str_eq(*v, "api", 3));
    assert_null(col_attr_str(a, 3, "n")); /* not a string */
    assert_null(col_attr_str(a, 3, "service"));
    assert_null(col_attr_str(a, 0, "service.name"));
}

int main(void)
{
    memset(big, 'x', sizeof(big));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_and_times),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_events_links_resource),
        cmocka_unit_test(test_batch_reject),
        cmocka_unit_test(test_attr_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
