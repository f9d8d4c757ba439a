/*
 * test_catalog.c - the registry's model and catalog without the network: Go durations,
 * registration bodies (keys in any case, defaults, every refusal naming its field), the
 * store record's round trip, and the catalog on a loop of the test's own (no store): indexes
 * that grow only on real changes, per-service indexes, check state kept on re-registration,
 * replace-existing-checks, maintenance, TTL expiry, node checks, and the shared bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#include "registry/catalog.h"

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint64_t ms;
    } cases[] = {
        {"0", 0, 0},
        {"10s", 0, 10000},
        {"1m30s", 0, 90000},
        {"120000ms", 0, 120000},
        {"1.5h", 0, 5400000},
        {"2h45m", 0, 9900000},
        {"500us", 0, 0},
        {"1500us", 0, 1},
        {"3000000ns", 0, 3},
        {"1\xc2\xb5s", 0, 0},
        {".5s", 0, 500},
        {"1.s", 0, 1000},
        {"+5s", 0, 5000},
        {"", -1, 0},
        {"10", -1, 0},
        {"s", -1, 0},
        {"-1s", -1, 0},
        {"1d", -1, 0},
        {"ten seconds", -1, 0},
        {"1s ", -1, 0},
        {".s", -1, 0},
        {"99999999999999999999h", -1, 0},
        {"300000000000h", -1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t ms = 777;
        int rc = weft__duration_parse(cases[i].s, strlen(cases[i].s), &ms);
        if (rc != cases[i].rc) fail_msg("%s: rc %d", cases[i].s, rc);
        if (rc == 0 && ms != cases[i].ms)
            fail_msg("%s: %llu ms", cases[i].s, (unsigned long long)ms);
    }
}

static reg_inst_t *decode_ok(const char *json)
{
    json_error_t je;
    json_t *root = json_loads(json, 0, &je);
    assert_non_null(root);
    char err[512] = "";
    reg_inst_t *in = NULL;
    int rc = weft__inst_decode(root, REG_SRC_API, &in, err, sizeof(err));
    json_decref(root);
    if (rc != 0) fail_msg("%s: %s", json, err);
    return in;
}

static void decode_bad(const char *json, const char *prefix)
{
    json_error_t je;
    json_t *root = json_loads(json, 0, &je);
    assert_non_null(root);
    char err[512] = "";
    reg_inst_t *in = NULL;
    int rc = weft__inst_decode(root, REG_SRC_API, &in, err, sizeof(err));
    json_decref(root);
    if (rc == 0) fail_msg("%s: accepted", json);
    if (strncmp(err, prefix, strlen(prefix)) != 0) fail_msg("%s: \"%s\"", json, err);
}

static void test_decode(void **state)
{
    (void)state;
    weft_snap_thread_register();
    reg_inst_t *in =
        decode_ok("{\"name\":\"web\",\"PORT\":80,\"tags\":[\"a\"],\"Meta\":{\"k\":\"v\"},"
                  "\"checks\":[{\"ttl\":\"5s\"},{\"http\":\"http://x/h\",\"interval\":"
                  "\"500ms\",\"header\":{\"A\":[\"1\",\"2\"]}}],"
                  "\"weights\":{\"passing\":3}}");
    assert_string_equal(in->id, "web");
    assert_int_equal(in->port, 80);
    assert_int_equal(in->nchecks, 2);
    assert_string_equal(in->checks[0]->id, "service:web:1");
    assert_string_equal(in->checks[1]->id, "service:web:2");
    assert_string_equal(in->checks[0]->name, "Service 'web' check");
    assert_int_equal(in->checks[0]->type, REG_CHECK_TTL);
    assert_int_equal(in->checks[1]->type, REG_CHECK_HTTP);
    assert_int_equal(in->checks[1]->interval_ms, 1000); /* raised to Consul's minimum */
    assert_int_equal(in->checks[1]->timeout_ms, 10000);
    assert_string_equal(in->checks[1]->method, "GET");
    assert_int_equal(in->checks[1]->nheaders, 2);
    assert_int_equal(in->checks[0]->status, WEFT_HEALTH_CRITICAL);
    assert_int_equal(in->w_passing, 3);
    assert_int_equal(in->w_warning, 1);

    /* the store's record reads back as the same instance */
    in->checks[0]->status = WEFT_HEALTH_PASSING;
    weft__sfree(in->checks[0]->output);
    in->checks[0]->output = strdup("fine \"quoted\"\n");
    in->create_index = 5;
    in->modify_index = 9;
    weft__check_hist(in->checks[0], WEFT_HEALTH_CRITICAL, WEFT_HEALTH_PASSING, 12345);
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft__put_inst_record(&b, in);
    json_error_t je;
    json_t *root = json_loads(b.p, 0, &je);
    assert_non_null(root);
    char err[512];
    reg_inst_t *back = NULL;
    if (weft__inst_decode(root, REG_SRC_STORE, &back, err, sizeof(err)) != 0) fail_msg("%s", err);
    json_decref(root);
    weft_buf_t b2;
    weft_buf_init(&b2, 0);
    weft__put_inst_record(&b2, back);
    assert_string_equal(b.p, b2.p);
    assert_int_equal(back->checks[0]->status, WEFT_HEALTH_PASSING);
    assert_int_equal(back->checks[0]->nhist, 1);
    assert_int_equal(back->modify_index, 9);
    weft_buf_free(&b);
    weft_buf_free(&b2);
    weft_snap_release(back);
    weft_snap_release(in);

    decode_bad("{}", "Name: missing");
    decode_bad("{\"Name\":\"\"}", "Name:");
    decode_bad("{\"Name\":5}", "Name: must be a string");
    decode_bad("{\"Name\":\"a\",\"Port\":0}", "Port:");
    decode_bad("{\"Name\":\"a\",\"Port\":65536}", "Port:");
    decode_bad("{\"Name\":\"a\",\"Port\":-1}", "Port:");
    decode_bad("{\"Name\":\"a\",\"Port\":1.5}", "Port:");
    decode_bad("{\"Name\":\"a\",\"Tags\":[1]}", "Tags[0]:");
    decode_bad("{\"Name\":\"a\",\"Meta\":[]}", "Meta:");
    decode_bad("{\"Name\":\"a\",\"Weights\":{\"Passing\":0}}", "Weights.Passing:");
    decode_bad("{\"Name\":\"a\",\"Check\":{\"TTL\":\"x\"}}", "Check.TTL:");
    decode_bad("{\"Name\":\"a\",\"Check\":{\"HTTP\":\"http://x\"}}", "Check.Interval:");
    decode_bad("{\"Name\":\"a\",\"Check\":{\"HTTP\":\"ftp://x\",\"Interval\":\"1s\"}}",
               "Check.HTTP:");
    decode_bad("{\"Name\":\"a\",\"Check\":{\"TCP\":\"nohost\",\"Interval\":\"1s\"}}", "Check.TCP:");
    decode_bad("{\"Name\":\"a\",\"Check\":{\"Args\":[\"x\"],\"Interval\":\"1s\"}}", "Check.Args:");
    decode_bad("{\"Name\":\"a\",\"Check\":{\"TTL\":\"1s\",\"HTTP\":\"http://x\"}}", "Check:");
    decode_bad("{\"Name\":\"a\",\"Checks\":[{\"TTL\":\"1s\"},{}]}", "Checks[1]:");
    decode_bad("{\"Name\":\"a\",\"Checks\":[{\"TTL\":\"1s\",\"Status\":\"ok\"}]}",
               "Checks[0].Status:");
    decode_bad("{\"Name\":\"a\",\"Checks\":{}}", "Checks:");
    weft_snap_thread_unregister();
}

/* ---- the catalog on a loop of the test's own ---- */

typedef struct done_s {
    reg_done_t d;
    int status;
    int calls;
} done_t;

static void on_done(reg_done_t *d, int status, const char *msg)
{
    done_t *x = (done_t *)d;
    (void)msg;
    x->status = status;
    x->calls++;
}

typedef struct fix_s {
    uv_loop_t loop;
    weft_snap_cell_t cell;
    weft_catalog_t *cat;
    int published;
} fix_t;

static void on_published(void *arg, const reg_snap_t *s, reg_events_t *ev)
{
    (void)s, (void)ev;
    ((fix_t *)arg)->published++;
}

/* The catalog answers from a zero timer: due at once, so NOWAIT runs it (ONCE would then
 * also block until the next timer, a TTL's, and let it fire). */
static int wait_done(fix_t *f, done_t *d)
{
    for (int i = 0; i < 1000 && !d->calls; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(d->calls, 1);
    return d->status;
}

static const reg_snap_t *cur(fix_t *f)
{
    return atomic_load(&f->cell.cur);
}

static int reg(fix_t *f, const char *json, bool replace)
{
    done_t d = {.d.fn = on_done};
    weft__cat_register(f->cat, decode_ok(json), replace, &d.d);
    return wait_done(f, &d);
}

static int ttl(fix_t *f, const char *id, weft_health_t st, const char *out)
{
    done_t d = {.d.fn = on_done};
    weft__cat_check_update(f->cat, id, st, out, &d.d);
    return wait_done(f, &d);
}

static void fix_up(fix_t *f)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    weft_snap_thread_register();
    weft_snap_cell_init(&f->cell);
    weft_catalog_options_t o = {
        .node = {"n1", "00000000-0000-4000-8000-000000000000", "127.0.0.1", "dc1"},
        .cell = &f->cell,
        .loop = &f->loop,
        .published = on_published,
        .arg = f,
    };
    char err[256];
    assert_int_equal(weft_catalog_new(&o, &f->cat, err, sizeof(err)), 0);
    assert_int_equal(weft_catalog_load(f->cat, err, sizeof(err)), 0);
}

static void fix_down(fix_t *f)
{
    weft_catalog_close(f->cat);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    weft_catalog_free(f->cat);
    weft_snap_cell_destroy(&f->cell);
    weft_snap_thread_unregister();
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void test_catalog_indexes(void **state)
{
    (void)state;
    fix_t f;
    fix_up(&f);
    uint64_t i0 = cur(&f)->index;
    assert_int_equal(
        reg(&f, "{\"Name\":\"a\",\"ID\":\"a1\",\"Port\":1,\"Check\":{\"TTL\":\"60s\"}}", false),
        200);
    assert_int_equal(reg(&f, "{\"Name\":\"b\",\"ID\":\"b1\",\"Port\":2}", false), 200);
    const reg_snap_t *s = cur(&f);
    assert_int_equal(s->nsvc, 2);
    reg_svc_t *a = weft__snap_service(s, "a", 1);
    reg_svc_t *b = weft__snap_service(s, "b", 1);
    assert_non_null(a);
    assert_true(a->index > i0 && b->index > a->index);
    uint64_t a_idx = a->index, g = s->index;
    assert_int_equal(a->npassing, 0); /* TTL starts critical */
    /* a real change bumps the index of a, not of b */
    assert_int_equal(ttl(&f, "service:a1", WEFT_HEALTH_PASSING, "ok"), 200);
    s = cur(&f);
    assert_true(s->index == g + 1);
    assert_true(weft__snap_service(s, "a", 1)->index == g + 1);
    assert_true(weft__snap_service(s, "b", 1)->index == b->index);
    assert_ptr_equal(weft__snap_service(s, "b", 1), b); /* shared, unchanged */
    assert_int_equal(weft__snap_service(s, "a", 1)->npassing, 1);
    /* the same status again: no new index, nothing woken */
    int pubs = f.published;
    assert_int_equal(ttl(&f, "service:a1", WEFT_HEALTH_PASSING, "ok"), 200);
    assert_int_equal(cur(&f)->index, g + 1);
    assert_int_equal(f.published, pubs);
    /* unknown IDs */
    assert_int_equal(ttl(&f, "nope", WEFT_HEALTH_PASSING, NULL), 404);
    done_t d = {.d.fn = on_done};
    weft__cat_deregister(f.cat, "nope", &d.d);
    assert_int_equal(wait_done(&f, &d), 404);
    /* re-registering keeps the check's status; replace-existing-checks drops the others */
    assert_int_equal(
        reg(&f, "{\"Name\":\"a\",\"ID\":\"a1\",\"Port\":1,\"Check\":{\"TTL\":\"60s\"}}", false),
        200);
    reg_svc_t *na = weft__snap_service(cur(&f), "a", 1);
    assert_int_equal(na->inst[0]->checks[0]->status, WEFT_HEALTH_PASSING);
    assert_true(na->index > a_idx);
    done_t d2 = {.d.fn = on_done};
    json_error_t je;
    json_t *cj = json_loads("{\"Name\":\"extra\",\"ServiceID\":\"a1\",\"TTL\":\"9s\"}", 0, &je);
    reg_check_t *k;
    char err[256];
    assert_int_equal(weft__check_decode(cj, REG_SRC_API, NULL, NULL, &k, err, sizeof(err)), 0);
    json_decref(cj);
    weft__cat_check_register(f.cat, k, &d2.d);
    assert_int_equal(wait_done(&f, &d2), 200);
    assert_int_equal(weft__snap_service(cur(&f), "a", 1)->inst[0]->nchecks, 2);
    assert_int_equal(
        reg(&f, "{\"Name\":\"a\",\"ID\":\"a1\",\"Port\":1,\"Check\":{\"TTL\":\"60s\"}}", true),
        200);
    assert_int_equal(weft__snap_service(cur(&f), "a", 1)->inst[0]->nchecks, 1);
    /* maintenance makes the instance critical, and back */
    done_t d3 = {.d.fn = on_done};
    weft__cat_maintenance(f.cat, "a1", true, "deploy", &d3.d);
    assert_int_equal(wait_done(&f, &d3), 200);
    assert_int_equal(weft__snap_service(cur(&f), "a", 1)->npassing, 0);
    done_t d4 = {.d.fn = on_done};
    weft__cat_maintenance(f.cat, "a1", false, NULL, &d4.d);
    assert_int_equal(wait_done(&f, &d4), 200);
    assert_int_equal(weft__snap_service(cur(&f), "a", 1)->npassing, 1);
    /* bodies are built once and shared */
    weft_snap_read_lock();
    s = weft_snap_get(&f.cell);
    reg_svc_t *sa = weft__snap_service(s, "a", 1);
    const reg_body_t *b1 = weft__svc_body(s, sa, REG_BODY_PASSING);
    const reg_body_t *b2 = weft__svc_body(s, sa, REG_BODY_PASSING);
    assert_ptr_equal(b1, b2);
    assert_non_null(strstr(b1->data, "\"ID\":\"a1\""));
    const reg_body_t *b3 = weft__svc_body(s, weft__snap_service(s, "b", 1), REG_BODY_PASSING);
    assert_non_null(strstr(b3->data, "\"ID\":\"b1\"")); /* no check: passing */
    weft_snap_read_unlock();
    /* deregistration drops the service when it was the last instance */
    done_t d5 = {.d.fn = on_done};
    weft__cat_deregister(f.cat, "b1", &d5.d);
    assert_int_equal(wait_done(&f, &d5), 200);
    assert_null(weft__snap_service(cur(&f), "b", 1));
    assert_int_equal(cur(&f)->nsvc, 1);
    fix_down(&f);
}

static void test_catalog_ttl_expiry(void **state)
{
    (void)state;
    fix_t f;
    fix_up(&f);
    assert_int_equal(reg(&f, "{\"Name\":\"t\",\"Port\":1,\"Check\":{\"TTL\":\"50ms\"}}", false),
                     200);
    assert_int_equal(ttl(&f, "service:t", WEFT_HEALTH_PASSING, NULL), 200);
    assert_int_equal(weft__snap_service(cur(&f), "t", 1)->npassing, 1);
    for (int i = 0; i < 200 && weft__snap_service(cur(&f), "t", 1)->npassing; i++)
        uv_run(&f.loop, UV_RUN_ONCE);
    reg_svc_t *t = weft__snap_service(cur(&f), "t", 1);
    assert_int_equal(t->npassing, 0);
    assert_non_null(strstr(t->inst[0]->checks[0]->output, "TTL expired"));
    assert_int_equal(t->inst[0]->checks[0]->nhist, 3); /* registered, passing, critical */
    fix_down(&f);
}

/* A node check is part of every instance's health: the instances are rebuilt, and the
 * snapshot published before keeps the ones it had, unchanged. */
static void test_catalog_node_check(void **state)
{
    (void)state;
    fix_t f;
    fix_up(&f);
    assert_int_equal(reg(&f, "{\"Name\":\"a\",\"ID\":\"a1\",\"Port\":1}", false), 200);
    assert_int_equal(reg(&f, "{\"Name\":\"b\",\"ID\":\"b1\",\"Port\":1}", false), 200);
    const reg_snap_t *before = weft_snap_hold(&f.cell);
    reg_inst_t *a_before = weft__snap_service(before, "a", 1)->inst[0];
    assert_int_equal(a_before->health, WEFT_HEALTH_PASSING);
    json_error_t je;
    json_t *cj = json_loads("{\"Name\":\"disk\",\"TTL\":\"60s\"}", 0, &je);
    reg_check_t *k;
    char err[256];
    assert_int_equal(weft__check_decode(cj, REG_SRC_API, NULL, NULL, &k, err, sizeof(err)), 0);
    json_decref(cj);
    done_t d = {.d.fn = on_done};
    weft__cat_check_register(f.cat, k, &d.d); /* starts critical */
    assert_int_equal(wait_done(&f, &d), 200);
    const reg_snap_t *s = cur(&f);
    assert_int_equal(s->nnode_checks, 2);
    assert_int_equal(weft__snap_service(s, "a", 1)->npassing, 0);
    assert_int_equal(weft__snap_service(s, "b", 1)->inst[0]->health, WEFT_HEALTH_CRITICAL);
    assert_int_equal(a_before->health, WEFT_HEALTH_PASSING); /* the old snapshot's, untouched */
    assert_int_equal(ttl(&f, "disk", WEFT_HEALTH_PASSING, NULL), 200);
    assert_int_equal(weft__snap_service(cur(&f), "a", 1)->npassing, 1);
    assert_int_equal(ttl(&f, "disk", WEFT_HEALTH_WARNING, NULL), 200);
    assert_int_equal(weft__snap_service(cur(&f), "b", 1)->inst[0]->health, WEFT_HEALTH_WARNING);
    weft_snap_release((void *)before);
    fix_down(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),          cmocka_unit_test(test_decode),
        cmocka_unit_test(test_catalog_indexes),    cmocka_unit_test(test_catalog_ttl_expiry),
        cmocka_unit_test(test_catalog_node_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
