/*
 * test_config.c - every type, bounds, precedence, and the exact error messages.
 */
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
    bool flag;
    int64_t delta;
    uint64_t count;
    double ratio;
    char *name;
    uint64_t timeout;
    uint64_t size;
    weft_conf_addr_t addr;
    int level;
} conf_t;

static const char *const levels[] = {"low", "high", NULL};

static const weft_conf_option_t opts[] = {
    {.key = "flag",
     .type = WEFT_CONF_BOOL,
     .offset = offsetof(conf_t, flag),
     .def = "false",
     .flag = "flag",
     .env = "T_FLAG",
     .help = "a bool"},
    {.key = "delta",
     .type = WEFT_CONF_INT,
     .offset = offsetof(conf_t, delta),
     .def = "-5",
     .min = -10,
     .max = 10,
     .flag = "delta",
     .help = "an int"},
    {.key = "count",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(conf_t, count),
     .def = "3",
     .min = 1,
     .max = 100,
     .flag = "count",
     .env = "T_COUNT",
     .help = "a uint"},
    {.key = "ratio",
     .type = WEFT_CONF_DOUBLE,
     .offset = offsetof(conf_t, ratio),
     .def = "0.5",
     .min = 0,
     .max = 1,
     .help = "a double"},
    {.key = "name",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(conf_t, name),
     .def = "x",
     .flag = "name",
     .help = "a string"},
    {.key = "net.timeout",
     .type = WEFT_CONF_DURATION,
     .offset = offsetof(conf_t, timeout),
     .def = "10s",
     .min = 100,
     .max = 3600000,
     .flag = "timeout",
     .help = "a duration"},
    {.key = "net.size",
     .type = WEFT_CONF_SIZE,
     .offset = offsetof(conf_t, size),
     .def = "64KiB",
     .min = 1024,
     .max = 1 << 20,
     .help = "a size"},
    {.key = "net.listen",
     .type = WEFT_CONF_ADDR,
     .offset = offsetof(conf_t, addr),
     .def = "127.0.0.1:80",
     .flag = "listen",
     .help = "an address"},
    {.key = "level",
     .type = WEFT_CONF_ENUM,
     .offset = offsetof(conf_t, level),
     .def = "low",
     .choices = levels,
     .flag = "level",
     .help = "an enum"},
};

static conf_t c;
static weft_conf_section_t secs[] = {{.name = "t", .opts = opts, .n = 9, .target = &c}};
static char path[64];
static char err[512];

static const char *file_of(const char *text)
{
    strcpy(path, "/tmp/weft-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int load_text(const char *text, int argc, char **argv, weft_conf_t *conf)
{
    const char *f = text ? file_of(text) : NULL;
    int rc = weft_conf_load(conf, secs, 1, f, argc, argv, err, sizeof(err));
    if (f) unlink(f);
    return rc;
}

/* Checks a file error: "PATH:rest". */
static void file_error(const char *text, const char *want)
{
    weft_conf_t conf;
    char *argv[] = {"prog"};
    assert_int_not_equal(load_text(text, 1, argv, &conf), 0);
    char full[600];
    snprintf(full, sizeof(full), "%s:%s", path, want);
    assert_string_equal(err, full);
}

static void test_defaults(void **state)
{
    weft_conf_t conf;
    char *argv[] = {"prog"};
    unsetenv("T_FLAG");
    unsetenv("T_COUNT");
    assert_int_equal(load_text(NULL, 1, argv, &conf), 0);
    assert_false(c.flag);
    assert_int_equal(c.delta, -5);
    assert_int_equal(c.count, 3);
    assert_true(c.ratio == 0.5);
    assert_string_equal(c.name, "x");
    assert_int_equal(c.timeout, 10000);
    assert_int_equal(c.size, 65536);
    assert_string_equal(c.addr.host, "127.0.0.1");
    assert_int_equal(c.addr.port, 80);
    assert_int_equal(c.level, 0);
    weft_conf_free(&conf);
}

static void test_file_values(void **state)
{
    weft_conf_t conf;
    char *argv[] = {"prog"};
    assert_int_equal(load_text("flag: yes\ndelta: -10\ncount: 100\nratio: 1\nname: hello world\n"
                               "net:\n  timeout: 1m30s\n  size: 1MiB\n  listen: '[::1]:8500'\n"
                               "level: high\n",
                               1, argv, &conf),
                     0);
    assert_true(c.flag);
    assert_int_equal(c.delta, -10);
    assert_int_equal(c.count, 100);
    assert_string_equal(c.name, "hello world");
    assert_int_equal(c.timeout, 90000);
    assert_int_equal(c.size, 1 << 20);
    assert_string_equal(c.addr.host, "::1");
    assert_int_equal(c.addr.port, 8500);
    assert_int_equal(c.level, 1);
    weft_conf_free(&conf);
    /* dotted keys at the top level work too; an empty file is fine */
    assert_int_equal(load_text("net.timeout: 250ms\n", 1, argv, &conf), 0);
    assert_int_equal(c.timeout, 250);
    weft_conf_free(&conf);
    assert_int_equal(load_text("", 1, argv, &conf), 0);
    weft_conf_free(&conf);
}

static void test_file_errors(void **state)
{
    file_error("count: 101\n", "1:8: count: 101 is above the maximum 100");
    file_error("count: 0\n", "1:8: count: 0 is below the minimum 1");
    file_error("delta: 5x\n", "1:8: delta: expected a whole number, got \"5x\"");
    file_error("count: -1\n", "1:8: count: expected a whole number, got \"-1\"");
    file_error("count: 99999999999999999999999\n",
               "1:8: count: 99999999999999999999999 is out of range");
    file_error("ratio: 1.5\n", "1:8: ratio: 1.5 is above the maximum 1");
    file_error("ratio: nan\n", "1:8: ratio: expected a number, got \"nan\"");
    file_error("flag: maybe\n", "1:7: flag: expected true or false, got \"maybe\"");
    file_error("net:\n  timeout: 10\n",
               "2:12: net.timeout: expected a duration like 10s or 250ms, got \"10\"");
    file_error("net:\n  timeout: 2h\n", "2:12: net.timeout: 2h is above the maximum 1h");
    file_error("net:\n  size: 10\n", "2:9: net.size: 10 is below the minimum 1KiB");
    file_error("net:\n  size: 1TB\n",
               "2:9: net.size: expected a size like 512, 64KiB or 1MiB, got \"1TB\"");
    file_error("net:\n  listen: nohost\n",
               "2:11: net.listen: expected HOST:PORT (port 0-65535, [v6]:port), got \"nohost\"");
    file_error("net:\n  listen: a:70000\n",
               "2:11: net.listen: expected HOST:PORT (port 0-65535, [v6]:port), got \"a:70000\"");
    file_error("level: mid\n", "1:8: level: expected one of low, high, got \"mid\"");
    file_error("cuont: 1\n", "1:1: cuont: unknown key (did you mean \"count\"?)");
    file_error("net:\n  timout: 1s\n", "2:3: net.timout: unknown key (did you mean \"timeout\"?)");
    file_error("zzzzzz: 1\n", "1:1: zzzzzz: unknown key");
    file_error("net: 5\n", "1:6: net: expected a mapping of settings");
    file_error("count: [1]\n", "1:8: count: expected a single uint value, got a list");
    file_error("count: {a: 1}\n", "1:8: count: expected a single uint value, got a mapping");
    file_error("count: 1\ncount: 2\n", "2:1: count: duplicate key");
    file_error("- 1\n- 2\n", "1:1: expected a mapping of settings at the top");
    file_error("count: 1\n---\ncount: 2\n", "3:1: only one YAML document is read");
    weft_conf_t conf;
    char *argv[] = {"prog"};
    assert_int_not_equal(load_text("count: [\n", 1, argv, &conf), 0);
    assert_non_null(strstr(err, ":2:1: invalid YAML: "));
    assert_int_equal(
        weft_conf_load(&conf, secs, 1, "/nonexistent/x.yaml", 1, argv, err, sizeof(err)),
        WEFT_ENOENT);
    assert_string_equal(err, "/nonexistent/x.yaml: cannot read: No such file or directory");
}

static void test_precedence_env_flags(void **state)
{
    weft_conf_t conf;
    setenv("T_COUNT", "7", 1);
    setenv("T_FLAG", "on", 1);
    char *argv1[] = {"prog"};
    assert_int_equal(load_text("count: 5\n", 1, argv1, &conf), 0);
    assert_int_equal(c.count, 7); /* env beats file */
    assert_true(c.flag);
    weft_conf_free(&conf);
    char *argv2[] = {"prog", "--count", "9", "--no-flag", "--name=a=b", "--listen", "[::]:1"};
    assert_int_equal(load_text("count: 5\n", 7, argv2, &conf), 0);
    assert_int_equal(c.count, 9); /* flag beats env */
    assert_false(c.flag);
    assert_string_equal(c.name, "a=b");
    assert_string_equal(c.addr.host, "::");
    weft_conf_free(&conf);
    setenv("T_COUNT", "x", 1);
    assert_int_not_equal(load_text(NULL, 1, argv1, &conf), 0);
    assert_string_equal(err, "T_COUNT: expected a whole number, got \"x\"");
    unsetenv("T_COUNT");
    unsetenv("T_FLAG");
    char *argv3[] = {"prog", "--count"};
    assert_int_not_equal(load_text(NULL, 2, argv3, &conf), 0);
    assert_string_equal(err, "--count: needs a value");
    char *argv4[] = {"prog", "--bogus", "1"};
    assert_int_not_equal(load_text(NULL, 3, argv4, &conf), 0);
    assert_string_equal(err, "--bogus: unknown flag (see --help)");
    char *argv5[] = {"prog", "stray"};
    assert_int_not_equal(load_text(NULL, 2, argv5, &conf), 0);
    assert_string_equal(err, "stray: unexpected argument (flags look like --name value)");
    char *argv6[] = {"prog", "--delta", "11"};
    assert_int_not_equal(load_text(NULL, 3, argv6, &conf), 0);
    assert_string_equal(err, "--delta: 11 is above the maximum 10");
    /* --config FILE is read when no file is given */
    const char *f = file_of("count: 42\n");
    char *argv7[] = {"prog", "--config", (char *)f};
    assert_int_equal(weft_conf_load(&conf, secs, 1, NULL, 3, argv7, err, sizeof(err)), 0);
    assert_int_equal(c.count, 42);
    weft_conf_free(&conf);
    unlink(f);
}

static void test_help_and_markdown(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    weft_conf_help(secs, 1, f);
    fclose(f);
    for (size_t i = 0; i < 9; i++) assert_non_null(strstr(buf, opts[i].key));
    assert_non_null(strstr(buf, "--timeout duration"));
    assert_non_null(strstr(buf, "env T_COUNT"));
    assert_non_null(strstr(buf, "range 100ms..1h"));
    free(buf);
    f = open_memstream(&buf, &len);
    weft_conf_markdown(secs, 1, f);
    fclose(f);
    assert_non_null(strstr(buf, "| `net.size` | size | `64KiB` |  |  | 1KiB..1MiB | a size |"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),          cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_file_errors),       cmocka_unit_test(test_precedence_env_flags),
        cmocka_unit_test(test_help_and_markdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
