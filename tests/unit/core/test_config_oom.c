/*
 * test_config_oom.c - fault injection for the config loader (STYLE.md: the SDK never aborts
 * its host). config.c is compiled into this test with malloc, calloc and realloc that fail
 * on their Nth call; one load that touches every allocation site (flags, the file buffer,
 * per-key state, anchors, parent keys, strings from defaults, file, environment and flags,
 * a tree's arena, nodes, text, key lists and an alias's shared text)
 * is run with N = 1, 2, ... until it gets through. Every failing run must return
 * WEFT_ENOMEM with "out of memory", leave no string in the target and leak nothing
 * (LeakSanitizer checks at exit). libyaml's own allocations are not intercepted.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_alloc.h"

#define malloc(n)     oom_malloc(n)
#define calloc(n, m)  oom_calloc(n, m)
#define realloc(p, n) oom_realloc(p, n)
#include "../../../src/core/config.c"
#include "../../../src/core/arena.c"
#undef malloc
#undef calloc
#undef realloc

#include <cmocka.h>

typedef struct {
    bool flag;
    char *name, *note, *extra;
    uint64_t timeout;
    const weft_conf_node_t *tree;
} oom_t;

static const weft_conf_option_t opts[] = {
    {.key = "flag", .type = WEFT_CONF_BOOL, .offset = offsetof(oom_t, flag), .flag = "flag"},
    {.key = "name",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(oom_t, name),
     .def = "default",
     .env = "T_OOM_NAME"},
    {.key = "note", .type = WEFT_CONF_STRING, .offset = offsetof(oom_t, note), .flag = "note"},
    {.key = "net.extra", .type = WEFT_CONF_STRING, .offset = offsetof(oom_t, extra)},
    {.key = "net.timeout",
     .type = WEFT_CONF_DURATION,
     .offset = offsetof(oom_t, timeout),
     .def = "1s"},
    {.key = "net.tree", .type = WEFT_CONF_TREE, .offset = offsetof(oom_t, tree)},
};

static void test_every_allocation_fails_once(void **state)
{
    char path[] = "/tmp/weft-test-config-oom-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "name: &a from-file\nnet:\n  timeout: 2s\n  extra: *a\n"
                       "  tree: [{k: v, l: *a}, [1, 2, 3, 4, 5, 6, 7, 8, 9], *a]\nnote: n1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    setenv("T_OOM_NAME", "from-env", 1);
    char *argv[] = {"prog", "--note", "from-flag", "--flag"};
    oom_t t;
    weft_conf_section_t sec = {.name = "oom", .opts = opts, .n = 6, .target = &t};
    long n;
    for (n = 1; n < 1000; n++) {
        weft_conf_t conf;
        char err[256] = "";
        memset(&t, 0, sizeof(t));
        alloc_failures = 0;
        alloc_countdown = n - 1; /* the n-th allocation fails */
        int rc = weft_conf_load(&conf, &sec, 1, path, 4, argv, err, sizeof(err));
        alloc_countdown = -1;
        if (rc == 0) {
            assert_int_equal(alloc_failures, 0); /* got through because nothing failed */
            assert_string_equal(t.name, "from-env");
            assert_string_equal(t.note, "from-flag");
            assert_string_equal(t.extra, "from-file");
            assert_true(t.flag);
            assert_int_equal(t.timeout, 2000);
            assert_int_equal(weft_conf_node_len(t.tree), 3);
            assert_string_equal(weft_conf_node_str(weft_conf_node_at(t.tree, 2), NULL),
                                "from-file");
            assert_string_equal(
                weft_conf_node_str(weft_conf_node_get(weft_conf_node_at(t.tree, 0), "l"), NULL),
                "from-file");
            weft_conf_free(&conf);
            break;
        }
        assert_int_equal(rc, WEFT_ENOMEM);
        assert_string_equal(err, "out of memory");
        assert_null(t.name);
        assert_null(t.note);
        assert_null(t.extra);
        assert_null(t.tree);
        assert_null(conf.owned);
        assert_null(conf.trees);
    }
    assert_true(n > 8); /* the load allocates at every site named above */
    unlink(path);
    unsetenv("T_OOM_NAME");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_allocation_fails_once)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
