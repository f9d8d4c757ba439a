/*
 * test_config_tree.c - WEFT_CONF_TREE options: the gateway's routes as the feature will
 * write them load, and every value is reachable with its position and path; every reader
 * accepts its syntax and rejects the rest with the exact message and position; unknown and
 * missing keys; the YAML rules inside a tree (null values, duplicate keys, aliases, merge
 * keys); the depth and node limits; the table rules for trees; --help and the reference.
 * Each load is freed, so LeakSanitizer sees any node left behind.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/config.h"

typedef struct {
    weft_conf_addr_t listen;
    const weft_conf_node_t *routes;
    const weft_conf_node_t *t;
    char *name;
} gw_t;

static const weft_conf_option_t opts[] = {
    {.key = "gateway.listen",
     .type = WEFT_CONF_ADDR,
     .offset = offsetof(gw_t, listen),
     .def = "0.0.0.0:8080",
     .help = "listener"},
    {.key = "gateway.routes",
     .type = WEFT_CONF_TREE,
     .offset = offsetof(gw_t, routes),
     .help = "routes, see docs/gateway.md#routes"},
    {.key = "t", .type = WEFT_CONF_TREE, .offset = offsetof(gw_t, t), .help = "a tree"},
    {.key = "name", .type = WEFT_CONF_STRING, .offset = offsetof(gw_t, name), .def = "x"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static gw_t g;
static const weft_conf_section_t secs[] = {{.name = "gw", .opts = opts, .n = NOPTS, .target = &g}};
static char path[64];
static char err[2048];

static const char example[] =
    "gateway:\n"
    "  listen: 0.0.0.0:8080\n"
    "  routes:\n"
    "    - name: orders\n"
    "      match: { path_prefix: /api/orders }\n"
    "      strip_prefix: true\n"
    "      service: orders\n"
    "      timeout: 2s\n"
    "      retry: { attempts: 2, on: [connect-failure, reset, 502, 503, 504], per_try_timeout: "
    "500ms }\n"
    "      rate_limit: { algorithm: token_bucket, rate: 100/s, burst: 50, key: client_ip }\n"
    "      circuit_breaker: { consecutive_failures: 5, failure_rate: 50%, slow_call_duration: "
    "1s, slow_call_rate: 80%, window: 10s, min_requests: 20, open_for: 30s, "
    "half_open_requests: 3 }\n"
    "    - name: legacy\n"
    "      match: { path_prefix: /legacy }\n"
    "      upstream: { targets: [127.0.0.1:9001, 127.0.0.1:9002], lb: least_request }\n"
    "      rate_limit: { algorithm: sliding_window, limit: 1000, window: 60s, key: "
    "header:X-Api-Key }\n";

/* Loads text into g with conf; the file is removed again. */
static int load(const char *text, size_t n, weft_conf_t *conf)
{
    strcpy(path, "/tmp/weft-test-config-tree-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    char *argv[] = {"prog"};
    int rc = weft_conf_load(conf, secs, 1, path, 1, argv, err, sizeof(err));
    unlink(path);
    return rc;
}

static void load_ok(const char *text, weft_conf_t *conf)
{
    if (load(text, strlen(text), conf) != 0) fail_msg("load failed: %s", err);
}

/* A file whose load must fail with exactly "PATH:" + want; nothing may be left behind. */
static void load_error(const char *text, const char *want)
{
    weft_conf_t conf;
    int rc = load(text, strlen(text), &conf);
    if (rc == 0) fail_msg("loaded without an error, wanted %s", want);
    assert_int_equal(rc, WEFT_EINVAL);
    char full[2200];
    snprintf(full, sizeof(full), "%s:%s", path, want);
    assert_string_equal(err, full);
    assert_null(g.routes);
    assert_null(g.t);
    assert_null(g.name);
    assert_null(conf.trees);
    assert_null(conf.owned);
}

/* err must be "PATH:" + want (path: the file last loaded). */
static void assert_err(int rc, const char *want)
{
    assert_int_equal(rc, WEFT_EINVAL);
    char full[2200];
    snprintf(full, sizeof(full), "%s:%s", path, want);
    assert_string_equal(err, full);
}

static void assert_at(const weft_conf_node_t *n, size_t line, size_t col, const char *want_path)
{
    const char *file;
    size_t l, c;
    char p[512];
    assert_non_null(n);
    weft_conf_node_where(n, &file, &l, &c);
    assert_string_equal(file, path);
    assert_int_equal(l, line);
    assert_int_equal(c, col);
    weft_conf_node_path(n, p, sizeof(p));
    assert_string_equal(p, want_path);
}

static const char *str(const weft_conf_node_t *n)
{
    const char *s = weft_conf_node_str(n, NULL);
    assert_non_null(s);
    return s;
}

/* node at a path of keys (const char *) and indexes (written "[i]" as a string) */
static const weft_conf_node_t *at(const weft_conf_node_t *n, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    for (const char *k = first; k; k = va_arg(ap, const char *)) {
        if (k[0] == '[')
            n = weft_conf_node_at(n, (size_t)atoi(k + 1));
        else
            n = weft_conf_node_get(n, k);
        if (!n) fail_msg("no node at %s", k);
    }
    va_end(ap);
    return n;
}

/* ---- the gateway's example ---- */

static void test_example_loads(void **state)
{
    (void)state;
    weft_conf_t conf;
    load_ok(example, &conf);
    assert_string_equal(g.listen.host, "0.0.0.0");
    assert_int_equal(g.listen.port, 8080);
    assert_null(g.t); /* absent: NULL */
    const weft_conf_node_t *routes = g.routes, *r0, *r1, *n;
    assert_int_equal(weft_conf_node_kind(routes), WEFT_CONF_NODE_SEQ);
    assert_int_equal(weft_conf_node_len(routes), 2);
    assert_at(routes, 4, 5, "gateway.routes");
    assert_null(weft_conf_node_str(routes, NULL));
    assert_null(weft_conf_node_at(routes, 2));
    assert_null(weft_conf_node_key(routes, 0));

    r0 = weft_conf_node_at(routes, 0);
    assert_int_equal(weft_conf_node_kind(r0), WEFT_CONF_NODE_MAP);
    assert_at(r0, 4, 7, "gateway.routes[0]");
    static const char *const keys0[] = {"name",    "match", "strip_prefix", "service",
                                        "timeout", "retry", "rate_limit",   "circuit_breaker"};
    assert_int_equal(weft_conf_node_len(r0), 8);
    for (size_t i = 0; i < 8; i++) {
        assert_string_equal(weft_conf_node_key(r0, i), keys0[i]); /* file order */
        assert_ptr_equal(weft_conf_node_at(r0, i), weft_conf_node_get(r0, keys0[i]));
    }
    assert_null(weft_conf_node_key(r0, 8));
    assert_null(weft_conf_node_get(r0, "nope"));

    n = at(r0, "name", NULL);
    assert_string_equal(str(n), "orders");
    assert_false(weft_conf_node_quoted(n));
    assert_at(n, 4, 13, "gateway.routes[0].name");
    n = at(r0, "match", "path_prefix", NULL);
    assert_string_equal(str(n), "/api/orders");
    assert_at(n, 5, 29, "gateway.routes[0].match.path_prefix");

    bool strip = false;
    assert_int_equal(weft_conf_node_bool(at(r0, "strip_prefix", NULL), &strip, err, sizeof(err)),
                     0);
    assert_true(strip);
    uint64_t u = 0;
    assert_int_equal(weft_conf_node_duration(at(r0, "timeout", NULL), 1, 3600000, &u, err, 99), 0);
    assert_int_equal(u, 2000);

    n = at(r0, "retry", "attempts", NULL);
    assert_at(n, 9, 26, "gateway.routes[0].retry.attempts");
    assert_int_equal(weft_conf_node_uint(n, 0, 10, &u, err, sizeof(err)), 0);
    assert_int_equal(u, 2);
    n = at(r0, "retry", "on", NULL);
    assert_int_equal(weft_conf_node_kind(n), WEFT_CONF_NODE_SEQ);
    assert_int_equal(weft_conf_node_len(n), 5);
    static const char *const on[] = {"connect-failure", "reset", "502", "503", "504"};
    for (size_t i = 0; i < 5; i++) assert_string_equal(str(weft_conf_node_at(n, i)), on[i]);
    assert_at(weft_conf_node_at(n, 2), 9, 58, "gateway.routes[0].retry.on[2]");
    assert_int_equal(
        weft_conf_node_duration(at(r0, "retry", "per_try_timeout", NULL), 0, 0, &u, err, 99), 0);
    assert_int_equal(u, 500);

    static const char *const algos[] = {"token_bucket", "sliding_window", NULL};
    int e = -1;
    double d = 0;
    assert_int_equal(
        weft_conf_node_enum(at(r0, "rate_limit", "algorithm", NULL), algos, &e, err, sizeof(err)),
        0);
    assert_int_equal(e, 0);
    assert_int_equal(weft_conf_node_rate(at(r0, "rate_limit", "rate", NULL), &d, err, 99), 0);
    assert_true(d == 100.0);
    assert_int_equal(
        weft_conf_node_uint(at(r0, "rate_limit", "burst", NULL), 1, UINT64_MAX, &u, err, 99), 0);
    assert_int_equal(u, 50);

    const weft_conf_node_t *cb = at(r0, "circuit_breaker", NULL);
    assert_int_equal(weft_conf_node_len(cb), 8);
    assert_int_equal(weft_conf_node_percent(at(cb, "failure_rate", NULL), &d, err, 99), 0);
    assert_true(d == 50.0);
    assert_int_equal(weft_conf_node_percent(at(cb, "slow_call_rate", NULL), &d, err, 99), 0);
    assert_true(d == 80.0);
    assert_int_equal(weft_conf_node_duration(at(cb, "open_for", NULL), 0, 0, &u, err, 99), 0);
    assert_int_equal(u, 30000);
    assert_int_equal(weft_conf_node_uint(at(cb, "half_open_requests", NULL), 0, 0, &u, err, 9), 0);
    assert_int_equal(u, 3);

    r1 = weft_conf_node_at(routes, 1);
    assert_at(r1, 12, 7, "gateway.routes[1]");
    assert_string_equal(str(at(r1, "name", NULL)), "legacy");
    assert_null(weft_conf_node_get(r1, "service"));
    n = at(r1, "upstream", "targets", "[1]", NULL);
    assert_at(n, 14, 45, "gateway.routes[1].upstream.targets[1]");
    weft_conf_addr_t a;
    assert_int_equal(weft_conf_node_addr(n, &a, err, sizeof(err)), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 9002);
    static const char *const lbs[] = {"round_robin", "least_request", "random", NULL};
    assert_int_equal(weft_conf_node_enum(at(r1, "upstream", "lb", NULL), lbs, &e, err, 99), 0);
    assert_int_equal(e, 1);
    assert_int_equal(
        weft_conf_node_enum(at(r1, "rate_limit", "algorithm", NULL), algos, &e, err, sizeof(err)),
        0);
    assert_int_equal(e, 1);
    const char *s = NULL;
    assert_int_equal(
        weft_conf_node_string(at(r1, "rate_limit", "key", NULL), 1, 256, &s, err, sizeof(err)), 0);
    assert_string_equal(s, "header:X-Api-Key");
    assert_int_equal(
        weft_conf_node_duration(at(r1, "rate_limit", "window", NULL), 0, 0, &u, err, sizeof(err)),
        0);
    assert_int_equal(u, 60000);
    weft_conf_free(&conf);
    assert_null(conf.trees);
}

/* What the gateway will do: walk the routes, refusing unknown keys and missing ones. */
static int check_routes(const weft_conf_node_t *routes)
{
    static const char *const keys[] = {
        "name",    "match", "strip_prefix", "service",         "upstream",
        "timeout", "retry", "rate_limit",   "circuit_breaker", NULL};
    int rc = weft_conf_node_expect(routes, WEFT_CONF_NODE_SEQ, err, sizeof(err));
    for (size_t i = 0; !rc && i < weft_conf_node_len(routes); i++) {
        const weft_conf_node_t *r = weft_conf_node_at(routes, i), *name = NULL, *t;
        uint64_t timeout = 15000;
        rc = weft_conf_node_check_keys(r, keys, err, sizeof(err));
        if (!rc) rc = weft_conf_node_require(r, "name", &name, err, sizeof(err));
        if (!rc && (t = weft_conf_node_get(r, "timeout")))
            rc = weft_conf_node_duration(t, 1, 3600000, &timeout, err, sizeof(err));
        if (!rc && !weft_conf_node_get(r, "service") && !weft_conf_node_get(r, "upstream"))
            rc = weft_conf_node_errorf(r, err, sizeof(err), "needs a service or an upstream");
    }
    return rc;
}

static void test_walking_routes(void **state)
{
    (void)state;
    weft_conf_t conf;
    load_ok(example, &conf);
    assert_int_equal(check_routes(g.routes), 0);
    weft_conf_free(&conf);

    load_ok("gateway.routes:\n  - name: a\n    servce: x\n", &conf);
    assert_err(check_routes(g.routes),
               "3:5: gateway.routes[0].servce: unknown key (did you mean \"service\"?)");
    weft_conf_free(&conf);
    load_ok("gateway.routes:\n  - service: x\n", &conf);
    assert_err(check_routes(g.routes), "2:5: gateway.routes[0]: missing key \"name\"");
    weft_conf_free(&conf);
    load_ok("gateway.routes:\n  - {name: a, timeout: 2h}\n", &conf);
    assert_err(check_routes(g.routes),
               "2:24: gateway.routes[0].timeout: 2h is above the maximum 1h");
    weft_conf_free(&conf);
    load_ok("gateway.routes:\n  - {name: a}\n", &conf);
    assert_err(check_routes(g.routes), "2:5: gateway.routes[0]: needs a service or an upstream");
    weft_conf_free(&conf);
    load_ok("gateway.routes: {name: a}\n", &conf);
    assert_err(check_routes(g.routes), "1:17: gateway.routes: expected a list, got a mapping");
    weft_conf_free(&conf);
    load_ok("gateway:\n  routes:\n    - zzz: 1\n", &conf);
    assert_err(check_routes(g.routes), "3:7: gateway.routes[0].zzz: unknown key");
    weft_conf_free(&conf);
}

/* ---- readers ---- */

static const char bad[] = "t:\n"
                          "  b: maybe\n"
                          "  u: two\n"
                          "  big: 5000\n"
                          "  dur: 10x\n"
                          "  size: 1.5B\n"
                          "  addr: localhost\n"
                          "  enum: round_robbin\n"
                          "  str: \"\"\n"
                          "  pct: 150%\n"
                          "  pct2: half\n"
                          "  rate: 0/s\n"
                          "  rate2: 100/d\n"
                          "  map: {a: 1}\n"
                          "  list: [1, 2]\n"
                          "  long: 2h\n"
                          "  neg: -1\n"
                          "  huge: 99999999999999999999\n";

static void test_reader_errors(void **state)
{
    (void)state;
    weft_conf_t conf;
    load_ok(bad, &conf);
    const weft_conf_node_t *t = g.t;
    bool b = true;
    uint64_t u = 7;
    int e = 9;
    double d = 3;
    const char *s = "unchanged";
    weft_conf_addr_t a = {.port = 1};
    static const char *const lbs[] = {"round_robin", "least_request", "random", NULL};
#define E sizeof(err)
    assert_err(weft_conf_node_bool(at(t, "b", NULL), &b, err, E),
               "2:6: t.b: expected true or false, got \"maybe\"");
    assert_err(weft_conf_node_uint(at(t, "u", NULL), 0, 10, &u, err, E),
               "3:6: t.u: expected a whole number, got \"two\"");
    assert_err(weft_conf_node_uint(at(t, "big", NULL), 1, 1000, &u, err, E),
               "4:8: t.big: 5000 is above the maximum 1000");
    assert_err(weft_conf_node_uint(at(t, "big", NULL), 6000, UINT64_MAX, &u, err, E),
               "4:8: t.big: 5000 is below the minimum 6000");
    assert_err(weft_conf_node_uint(at(t, "neg", NULL), 0, 0, &u, err, E),
               "17:8: t.neg: expected a whole number, got \"-1\"");
    assert_err(weft_conf_node_uint(at(t, "huge", NULL), 0, 0, &u, err, E),
               "18:9: t.huge: 99999999999999999999 is out of range");
    assert_err(weft_conf_node_duration(at(t, "dur", NULL), 0, 0, &u, err, E),
               "5:8: t.dur: expected a duration like 10s or 250ms, got \"10x\"");
    assert_err(weft_conf_node_duration(at(t, "long", NULL), 100, 3600000, &u, err, E),
               "16:9: t.long: 2h is above the maximum 1h");
    assert_err(weft_conf_node_size(at(t, "size", NULL), 0, 0, &u, err, E),
               "6:9: t.size: 1.5B is not a whole number of bytes");
    assert_err(weft_conf_node_size(at(t, "big", NULL), 8192, 1 << 20, &u, err, E),
               "4:8: t.big: 5000 is below the minimum 8KiB");
    assert_err(weft_conf_node_addr(at(t, "addr", NULL), &a, err, E),
               "7:9: t.addr: expected HOST:PORT (port 0-65535, [v6]:port), got \"localhost\"");
    assert_err(weft_conf_node_enum(at(t, "enum", NULL), lbs, &e, err, E),
               "8:9: t.enum: expected one of round_robin, least_request, random, got "
               "\"round_robbin\" (did you mean \"round_robin\"?)");
    assert_err(weft_conf_node_string(at(t, "str", NULL), 1, 64, &s, err, E),
               "9:8: t.str: 0 bytes is below the minimum length 1");
    assert_err(weft_conf_node_percent(at(t, "pct", NULL), &d, err, E),
               "10:8: t.pct: 150% is above the maximum 100%");
    assert_err(weft_conf_node_percent(at(t, "pct2", NULL), &d, err, E),
               "11:9: t.pct2: expected a percentage like 50%, got \"half\"");
    assert_err(weft_conf_node_rate(at(t, "rate", NULL), &d, err, E),
               "12:9: t.rate: a rate must be above 0, got \"0/s\"");
    assert_err(weft_conf_node_rate(at(t, "rate2", NULL), &d, err, E),
               "13:10: t.rate2: expected a rate like 100/s, 10/m or 1/h, got \"100/d\"");
    assert_err(weft_conf_node_uint(at(t, "map", NULL), 0, 0, &u, err, E),
               "14:8: t.map: expected a single uint value, got a mapping");
    assert_err(weft_conf_node_bool(at(t, "list", NULL), &b, err, E),
               "15:9: t.list: expected a single bool value, got a list");
    assert_err(weft_conf_node_rate(at(t, "list", NULL), &d, err, E),
               "15:9: t.list: expected a single rate value, got a list");
    assert_err(weft_conf_node_expect(at(t, "list", NULL), WEFT_CONF_NODE_MAP, err, E),
               "15:9: t.list: expected a mapping, got a list");
    assert_err(weft_conf_node_expect(at(t, "b", NULL), WEFT_CONF_NODE_SEQ, err, E),
               "2:6: t.b: expected a list, got a single value");
    assert_err(weft_conf_node_require(t, "missing", NULL, err, E),
               "2:3: t: missing key \"missing\"");
    assert_err(weft_conf_node_require(at(t, "list", NULL), "a", NULL, err, E),
               "15:9: t.list: expected a mapping, got a list");
    assert_err(weft_conf_node_errorf(at(t, "list", "[1]", NULL), err, E, "%d is odd", 2 + 1),
               "15:13: t.list[1]: 3 is odd");
    /* failed reads leave the output alone */
    assert_true(b);
    assert_int_equal(u, 7);
    assert_int_equal(e, 9);
    assert_true(d == 3);
    assert_string_equal(s, "unchanged");
    assert_int_equal(a.port, 1);

    /* unknown keys: the first in file order, at the key, with a suggestion when one is close */
    static const char *const most[] = {"b",    "u",    "big", "dur",  "size", "addr",
                                       "enum", "str",  "pct", "pct2", "rate", "map",
                                       "list", "long", "neg", "huge", NULL};
    assert_err(weft_conf_node_check_keys(t, most, err, E),
               "13:3: t.rate2: unknown key (did you mean \"rate\"?)");
    static const char *const none[] = {"zzzzzz", NULL};
    assert_err(weft_conf_node_check_keys(t, none, err, E), "2:3: t.b: unknown key");
    assert_err(weft_conf_node_check_keys(at(t, "list", NULL), none, err, E),
               "15:9: t.list: expected a mapping, got a list");

    /* NULL nodes: no value, without a position */
    assert_int_equal(weft_conf_node_uint(NULL, 0, 0, &u, err, E), WEFT_EINVAL);
    assert_string_equal(err, "no value");
    assert_int_equal(weft_conf_node_expect(NULL, WEFT_CONF_NODE_MAP, err, E), WEFT_EINVAL);
    assert_string_equal(err, "no value");
    assert_int_equal(weft_conf_node_len(NULL), 0);
    assert_null(weft_conf_node_get(NULL, "x"));
    assert_null(weft_conf_node_str(NULL, NULL));
    assert_false(weft_conf_node_quoted(NULL));
    char p[8] = "x";
    assert_int_equal(weft_conf_node_path(NULL, p, sizeof(p)), 0);
    assert_string_equal(p, "");
    /* a path cut to fit */
    assert_int_equal(weft_conf_node_path(at(t, "list", "[1]", NULL), p, sizeof(p)), 7);
    assert_string_equal(p, "t.list[");
    /* a tree option is not a single value */
    weft_conf_option_t treeopt = {.type = WEFT_CONF_TREE};
    assert_int_equal(weft_conf_node_value(at(t, "b", NULL), &treeopt, &u, err, E), WEFT_EINVAL);
#undef E
    weft_conf_free(&conf);
}

static const char *odd_check(const void *v)
{
    return (*(const uint64_t *)v % 2) ? "an even number" : NULL;
}

static void test_reader_values(void **state)
{
    (void)state;
    weft_conf_t conf;
    load_ok("t:\n"
            "  pcts: [0%, 99.5%, 100%, 12.25%]\n"
            "  rates: [10/m, 1/h, 2.5/s, 0.5/s]\n"
            "  q: 'quoted: yes'\n"
            "  dq: \"a\\0b\"\n"
            "  block: |\n    two\n    lines\n"
            "  plain: yes\n"
            "  bools: [true, off, Yes, 0]\n"
            "  sizes: [512, 64KiB, 1.5MiB, 10KB]\n"
            "  v6: '[::1]:80'\n"
            "  n: 3\n"
            "  odd: 0x10\n"
            "  \"a.b\": 1\n"
            "  '': 2\n"
            "  X-Api-Key: 3\n"
            "  empty_list: []\n"
            "  empty_map: {}\n",
            &conf);
    const weft_conf_node_t *t = g.t, *n;
    double d;
    static const double pcts[] = {0, 99.5, 100, 12.25};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            weft_conf_node_percent(weft_conf_node_at(at(t, "pcts", NULL), i), &d, err, sizeof(err)),
            0);
        assert_true(d == pcts[i]);
    }
    static const double rates[] = {10.0 / 60, 1.0 / 3600, 2.5, 0.5};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            weft_conf_node_rate(weft_conf_node_at(at(t, "rates", NULL), i), &d, err, sizeof(err)),
            0);
        assert_true(d == rates[i]);
    }
    n = at(t, "q", NULL);
    assert_string_equal(str(n), "quoted: yes");
    assert_true(weft_conf_node_quoted(n));
    size_t len = 0;
    n = at(t, "dq", NULL);
    assert_non_null(weft_conf_node_str(n, &len));
    assert_int_equal(len, 3); /* the NUL is kept, and refused by the readers */
    assert_true(memcmp(weft_conf_node_str(n, NULL), "a\0b", 3) == 0);
    const char *s;
    assert_err(weft_conf_node_string(n, 0, 0, &s, err, sizeof(err)),
               "5:7: t.dq: contains a NUL byte: \"a\\x00b\"");
    n = at(t, "block", NULL);
    assert_string_equal(str(n), "two\nlines\n");
    assert_true(weft_conf_node_quoted(n));
    n = at(t, "plain", NULL);
    assert_string_equal(str(n), "yes"); /* kept as written, not read as a bool */
    assert_false(weft_conf_node_quoted(n));
    static const bool bools[] = {true, false, true, false};
    for (size_t i = 0; i < 4; i++) {
        bool b = !bools[i];
        assert_int_equal(
            weft_conf_node_bool(weft_conf_node_at(at(t, "bools", NULL), i), &b, err, sizeof(err)),
            0);
        assert_int_equal(b, bools[i]);
    }
    static const uint64_t sizes[] = {512, 65536, 1572864, 10000};
    for (size_t i = 0; i < 4; i++) {
        uint64_t u = 0;
        assert_int_equal(weft_conf_node_size(weft_conf_node_at(at(t, "sizes", NULL), i), 0, 0, &u,
                                             err, sizeof(err)),
                         0);
        assert_int_equal(u, sizes[i]);
    }
    weft_conf_addr_t a;
    assert_int_equal(weft_conf_node_addr(at(t, "v6", NULL), &a, err, sizeof(err)), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 80);
    /* the generic reader: any scalar type, with the option's check */
    weft_conf_option_t even = {.type = WEFT_CONF_UINT, .check = odd_check};
    uint64_t u = 0;
    assert_err(weft_conf_node_value(at(t, "n", NULL), &even, &u, err, sizeof(err)),
               "13:6: t.n: an even number, got \"3\"");
    assert_int_equal(u, 0);
    weft_conf_option_t i64 = {.type = WEFT_CONF_INT, .min = -5, .max = 5};
    int64_t i = 0;
    assert_int_equal(weft_conf_node_value(at(t, "n", NULL), &i64, &i, err, sizeof(err)), 0);
    assert_int_equal(i, 3);
    assert_err(weft_conf_node_value(at(t, "odd", NULL), &i64, &i, err, sizeof(err)),
               "14:8: t.odd: expected a whole number, got \"0x10\"");
    /* keys that are not names are shown in brackets */
    assert_err(weft_conf_node_errorf(at(t, "a.b", NULL), err, sizeof(err), "x"),
               "15:10: t[\"a.b\"]: x");
    assert_err(weft_conf_node_errorf(at(t, "", NULL), err, sizeof(err), "x"), "16:7: t[\"\"]: x");
    assert_err(weft_conf_node_errorf(at(t, "X-Api-Key", NULL), err, sizeof(err), "x"),
               "17:14: t.X-Api-Key: x");
    n = at(t, "empty_list", NULL);
    assert_int_equal(weft_conf_node_kind(n), WEFT_CONF_NODE_SEQ);
    assert_int_equal(weft_conf_node_len(n), 0);
    assert_null(weft_conf_node_at(n, 0));
    n = at(t, "empty_map", NULL);
    assert_int_equal(weft_conf_node_kind(n), WEFT_CONF_NODE_MAP);
    assert_int_equal(weft_conf_node_len(n), 0);
    weft_conf_free(&conf);

    /* a tree may be a single value */
    load_ok("t: hello\n", &conf);
    assert_int_equal(weft_conf_node_kind(g.t), WEFT_CONF_NODE_SCALAR);
    assert_string_equal(str(g.t), "hello");
    assert_at(g.t, 1, 4, "t");
    weft_conf_free(&conf);
}

/* ---- the YAML rules inside a tree ---- */

static void test_yaml_rules(void **state)
{
    (void)state;
    weft_conf_t conf;
    /* anchors and aliases of single values work, inside and into a tree */
    load_ok("name: &n 'svc'\nt:\n  a: *n\n  b: &x 5s\n  c: [*x, *x]\n", &conf);
    assert_string_equal(str(at(g.t, "a", NULL)), "svc");
    assert_true(weft_conf_node_quoted(at(g.t, "a", NULL)));
    assert_at(at(g.t, "a", NULL), 3, 6, "t.a");
    assert_string_equal(str(at(g.t, "c", "[1]", NULL)), "5s");
    assert_ptr_equal(str(at(g.t, "c", "[0]", NULL)), str(at(g.t, "c", "[1]", NULL))); /* shared */
    assert_at(at(g.t, "c", "[1]", NULL), 5, 11, "t.c[1]");
    weft_conf_free(&conf);
    /* a tree set once nested, once dotted */
    load_error("gateway:\n  routes: []\ngateway.routes: []\n",
               "3:1: gateway.routes: duplicate key (first at line 2)");
    load_error("t: 1\nt: 2\n", "2:1: t: duplicate key (first at line 1)");
    load_error("gateway.routes.x: 1\n", "1:1: gateway.routes.x: unknown key (did you mean "
                                        "\"gateway.routes\"?)");
    load_error("t:\n", "1:3: t: no value (write one, or remove the key for the default)");
    load_error("t: ~\n", "1:4: t: no value (write one, or remove the key for the default)");
    load_error("t: {a: 1, b: }\n", "1:14: t.b: no value (write one, or remove the key)");
    load_error("t: [1, ~]\n", "1:8: t[1]: no value (write one, or remove the item)");
    load_error("t:\n  - a\n  -\n", "3:4: t[1]: no value (write one, or remove the item)");
    load_error("t: {&n ~ : 1, b: *n}\n", "1:18: t.b: no value (write one, or remove the key)");
    load_error("t: {a: 1, b: 2, a: 3, b: 4}\n", "1:17: t.a: duplicate key (first at line 1)");
    load_error("t:\n  b: 1\n  a: 2\n  c: 3\n  a: 4\n  b: 5\n",
               "5:3: t.a: duplicate key (first at line 3)");
    load_error("t: {x: {a: 1, a: 2}, y: [1, ~]}\n", "1:15: t.x.a: duplicate key (first at line 1)");
    load_error("t:\n  m: &m {a: 1}\n  n: *m\n",
               "3:6: t.n: aliases of mappings and lists are not supported; write it out");
    load_error("t: [*nope]\n", "1:5: t[0]: alias *nope has no anchor before it");
    load_error("t:\n  <<: {a: 1}\n",
               "2:3: t[\"<<\"]: merge keys are not supported; write the settings out");
    load_error("t: {? [a] : 1}\n", "1:7: t: keys must be single values, not a list");
    load_error("name: &k x\nt: {*k : 1}\n", "2:5: t: keys must be single values, not aliases");
    load_error("t: {\"a\\0b\": 1}\n", "1:5: t[\"a\\x00b\"]: a key with a NUL byte");
    /* an error in a tree after other options were set leaves nothing behind */
    load_error("name: set\nt: [a, [b, ~]]\n", "2:12: t[1][1]: no value (write one, or remove the "
                                              "item)");
}

/* ---- limits ---- */

static void test_limits(void **state)
{
    (void)state;
    weft_conf_t conf;
    char text[256];
    /* depth: the top mapping and 15 lists are 16 levels; one more is refused */
    int k = snprintf(text, sizeof(text), "t: ");
    for (int i = 0; i < 15; i++) text[k++] = '[';
    text[k++] = '1';
    for (int i = 0; i < 15; i++) text[k++] = ']';
    strcpy(text + k, "\n");
    load_ok(text, &conf);
    const weft_conf_node_t *n = g.t;
    for (int i = 0; i < 15; i++) n = weft_conf_node_at(n, 0);
    assert_string_equal(str(n), "1");
    assert_at(n, 1, 19, "t[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]");
    weft_conf_free(&conf);
    k = snprintf(text, sizeof(text), "t: ");
    for (int i = 0; i < 16; i++) text[k++] = '[';
    for (int i = 0; i < 16; i++) text[k++] = ']';
    strcpy(text + k, "\n");
    load_error(text, "1:19: nested deeper than 16 levels");

    /* nodes: the root and 65535 items fit; one item more does not */
    size_t items = WEFT_CONF_MAX_NODES - 1, cap = 8 + 2 * (items + 1) + 4;
    char *big = malloc(cap);
    assert_non_null(big);
    size_t o = (size_t)snprintf(big, cap, "t: [");
    for (size_t i = 0; i < items; i++) big[o++] = '0', big[o++] = ',';
    big[o - 1] = ']';
    big[o++] = '\n';
    assert_int_equal(load(big, o, &conf), 0);
    assert_int_equal(weft_conf_node_len(g.t), items);
    assert_at(weft_conf_node_at(g.t, items - 1), 1, 5 + 2 * (items - 1), "t[65534]");
    weft_conf_free(&conf);
    o = (size_t)snprintf(big, cap, "t: [");
    for (size_t i = 0; i < items + 1; i++) big[o++] = '0', big[o++] = ',';
    big[o - 1] = ']';
    big[o] = 0;
    char want[200];
    snprintf(want, sizeof(want),
             "1:4: t: more than %d nodes (values, lists and mappings) in one setting (the one at "
             "1:%zu)",
             WEFT_CONF_MAX_NODES, 5 + 2 * items);
    load_error(big, want);
    free(big);
}

/* ---- tables ---- */

static void table_error(const weft_conf_option_t *o, size_t n, const char *want)
{
    gw_t t;
    weft_conf_section_t sec = {.name = "s", .opts = o, .n = n, .target = &t};
    assert_int_equal(weft_conf_check(&sec, 1, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, want);
}

static const char *no_check(const void *v)
{
    (void)v;
    return NULL;
}

static void test_table_rules(void **state)
{
    (void)state;
    const weft_conf_option_t env[] = {{.key = "r", .type = WEFT_CONF_TREE, .env = "R"}};
    table_error(env, 1,
                "s: r: a list/map (YAML) is set in the file only, not with a flag or an "
                "environment variable");
    const weft_conf_option_t flag[] = {{.key = "r", .type = WEFT_CONF_TREE, .flag = "r"}};
    table_error(flag, 1,
                "s: r: a list/map (YAML) is set in the file only, not with a flag or an "
                "environment variable");
    const weft_conf_option_t def[] = {{.key = "r", .type = WEFT_CONF_TREE, .def = "[]"}};
    table_error(def, 1, "s: r: a list/map (YAML) has no default");
    const weft_conf_option_t bounds[] = {{.key = "r", .type = WEFT_CONF_TREE, .max = 5}};
    table_error(bounds, 1, "s: r: bounds do not apply to a list/map (YAML)");
    const weft_conf_option_t check[] = {{.key = "r", .type = WEFT_CONF_TREE, .check = no_check}};
    table_error(check, 1,
                "s: r: check does not apply to a list/map (YAML); validate it with the "
                "weft_conf_node readers after the load");
    const weft_conf_option_t below[] = {
        {.key = "gw.routes", .type = WEFT_CONF_TREE, .offset = offsetof(gw_t, routes)},
        {.key = "gw.routes.timeout", .type = WEFT_CONF_DURATION},
    };
    table_error(below, 2,
                "s: gw.routes.timeout: no key can be nested below the list/map gw.routes");
    const weft_conf_option_t above[] = {
        {.key = "gw.routes.timeout", .type = WEFT_CONF_DURATION},
        {.key = "gw.routes", .type = WEFT_CONF_TREE, .offset = offsetof(gw_t, routes)},
    };
    table_error(above, 2,
                "s: gw.routes.timeout: no key can be nested below the list/map gw.routes");
    const weft_conf_option_t choices[] = {
        {.key = "r", .type = WEFT_CONF_TREE, .choices = (const char *const[]){"a", NULL}}};
    table_error(choices, 1, "s: r: choices are for enum options");
    assert_int_equal(weft_conf_check(secs, 1, err, sizeof(err)), 0);

    /* a tree has no single value to parse */
    uint64_t scratch[40];
    assert_int_equal(weft_conf_parse_value(&opts[1], "x", scratch, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, "a list/map (YAML) setting is set in the file only, got \"x\"");
    /* nor a flag: a flag of its name is unknown, pointing at the file */
    weft_conf_t conf;
    char *argv[] = {"prog", "--routes", "x"};
    assert_int_equal(weft_conf_load(&conf, secs, 1, NULL, 3, argv, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, "--routes: unknown flag; gateway.routes is set in the config file");
}

/* ---- documentation ---- */

static void test_docs(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    weft_conf_markdown(secs, 1, f);
    fclose(f);
    assert_non_null(strstr(buf, "| `gateway.routes` | list/map (YAML) |  |  |  |  | routes, see "
                                "docs/gateway.md#routes |\n"));
    assert_non_null(strstr(buf, "| list/map (YAML) | YAML as written under the key: a list or "
                                "mapping (nested) or a single value, whose contents the section "
                                "named in the description documents; set in the file only (no "
                                "default, flag or environment variable) |\n"));
    free(buf);
    f = open_memstream(&buf, &n);
    weft_conf_help(secs, 1, f);
    fclose(f);
    assert_non_null(strstr(buf, "  gateway.routes: list/map (YAML)\n"
                                "                               routes, see "
                                "docs/gateway.md#routes\n"
                                "                                 set in the config file only\n"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads), cmocka_unit_test(test_walking_routes),
        cmocka_unit_test(test_reader_errors), cmocka_unit_test(test_reader_values),
        cmocka_unit_test(test_yaml_rules),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_table_rules),   cmocka_unit_test(test_docs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
