/*
 * test_config.c - the config module against a table of every type: each parser's accepted
 * and rejected forms, exact bounds, the exact text and position of every kind of error
 * (file, environment, flags, tables), precedence, positional arguments, --help and the
 * Markdown reference.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/config.h"
#include "weft/log.h"

typedef struct {
    bool flag;
    int64_t delta;
    uint64_t count;
    double ratio;
    char *name;
    char *note;
    uint64_t timeout;
    uint64_t size;
    weft_conf_addr_t addr;
    int level;
    weft_log_level_t log;
    uint64_t big;
    uint64_t retries;
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
     .flag = "ratio",
     .help = "a double"},
    {.key = "name",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(conf_t, name),
     .def = "x",
     .min = 1,
     .max = 16,
     .flag = "name",
     .env = "T_NAME",
     .help = "a string | with a pipe"},
    {.key = "note",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(conf_t, note),
     .help = "no default"},
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
    {.key = "log.level",
     .type = WEFT_CONF_LOGLEVEL,
     .offset = offsetof(conf_t, log),
     .def = "info",
     .flag = "log-level",
     .env = "T_LOG",
     .help = "a log level"},
    {.key = "big",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(conf_t, big),
     .min = 0,
     .max = 9007199254740992.0, /* 2^53: 2^53 + 1 has no double of its own */
     .help = "exact bounds"},
    {.key = "retries",
     .type = WEFT_CONF_UINT,
     .offset = offsetof(conf_t, retries),
     .def = "1",
     .min = 1,
     .max = INFINITY,
     .help = "no maximum"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static conf_t c;
static weft_conf_section_t secs[] = {{.name = "t", .opts = opts, .n = NOPTS, .target = &c}};
static char path[64];
static char err[1024];

static const char *file_of_n(const char *text, size_t n)
{
    strcpy(path, "/tmp/weft-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static const char *file_of(const char *text)
{
    return file_of_n(text, strlen(text));
}

static void clear_env(void)
{
    unsetenv("T_FLAG");
    unsetenv("T_COUNT");
    unsetenv("T_NAME");
    unsetenv("T_LOG");
}

/* Loads text (NULL: no file) with argv; the file is removed again. */
static int load_text(const char *text, int argc, char **argv, weft_conf_t *conf)
{
    const char *f = text ? file_of(text) : NULL;
    int rc = weft_conf_load(conf, secs, 1, f, argc, argv, err, sizeof(err));
    if (f) unlink(f);
    return rc;
}

/* A file whose load must fail with exactly "PATH:" + want. */
static void file_error_n(const char *text, size_t n, const char *want)
{
    weft_conf_t conf;
    char *argv[] = {"prog"};
    const char *f = file_of_n(text, n);
    int rc = weft_conf_load(&conf, secs, 1, f, 1, argv, err, sizeof(err));
    unlink(f);
    if (rc == 0) fail_msg("loaded without an error, wanted %s", want);
    assert_int_equal(rc, WEFT_EINVAL);
    char full[1200];
    snprintf(full, sizeof(full), "%s:%s", path, want);
    assert_string_equal(err, full);
    assert_null(c.name); /* a failed load leaves no dangling strings */
    assert_null(conf.owned);
}

static void file_error(const char *text, const char *want)
{
    file_error_n(text, strlen(text), want);
}

/* A flag line that must fail with exactly want. */
static void flag_error(int argc, char **argv, const char *want)
{
    weft_conf_t conf;
    assert_int_equal(weft_conf_load(&conf, secs, 1, NULL, argc, argv, err, sizeof(err)),
                     WEFT_EINVAL);
    assert_string_equal(err, want);
}

/* ---- single values ---- */

static void parses(const weft_conf_option_t *o, const char *text, void *out)
{
    char why[256] = "";
    if (weft_conf_parse_value(o, text, out, why, sizeof(why)) != 0)
        fail_msg("\"%s\" rejected: %s", text, why);
}

static void rejects(const weft_conf_option_t *o, const char *text, const char *want)
{
    char why[256] = "";
    uint64_t scratch[40];
    assert_int_equal(weft_conf_parse_value(o, text, scratch, why, sizeof(why)), WEFT_EINVAL);
    assert_string_equal(why, want);
}

static const weft_conf_option_t *opt(const char *key)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].key, key) == 0) return &opts[i];
    fail_msg("no option %s", key);
    return NULL;
}

/* getaddrinfo, interposed: "db.test" resolves to an IPv6 and then an IPv4 address,
 * "nowhere.test" to nothing, without asking any name server; other names go to the C
 * library's (only "localhost" is used, which /etc/hosts answers). */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    if (node && strcmp(node, "nowhere.test") == 0) return EAI_NONAME;
    if (node && strcmp(node, "db.test") == 0) {
        /* as glibc lays them out: the address in the same block, so its freeaddrinfo works */
        struct addrinfo *a6 = calloc(1, sizeof(*a6) + sizeof(struct sockaddr_in6));
        struct addrinfo *a4 = calloc(1, sizeof(*a4) + sizeof(struct sockaddr_in));
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(a6 + 1);
        struct sockaddr_in *s4 = (struct sockaddr_in *)(a4 + 1);
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::7", &s6->sin6_addr);
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, "192.0.2.7", &s4->sin_addr);
        *a6 = (struct addrinfo){.ai_family = AF_INET6,
                                .ai_socktype = SOCK_STREAM,
                                .ai_addrlen = sizeof(*s6),
                                .ai_addr = (struct sockaddr *)s6,
                                .ai_next = a4};
        *a4 = (struct addrinfo){.ai_family = AF_INET,
                                .ai_socktype = SOCK_STREAM,
                                .ai_addrlen = sizeof(*s4),
                                .ai_addr = (struct sockaddr *)s4};
        *res = a6;
        return 0;
    }
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(
            RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

/* A listen address (resolve): a name becomes its numeric address, IPv4 first, at load; a
 * name that does not resolve is an error naming it. Numeric hosts are not looked up. */
static void test_addr_resolve(void **state)
{
    weft_conf_option_t o = *opt("net.listen");
    o.resolve = true;
    weft_conf_addr_t a;
    parses(&o, "localhost:8500", &a);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 8500);
    parses(&o, "db.test:80", &a);
    assert_string_equal(a.host, "192.0.2.7");
    parses(&o, "[::1]:80", &a);
    assert_string_equal(a.host, "::1");
    rejects(&o, "nowhere.test:80",
            "cannot resolve the host of \"nowhere.test:80\": Name or service not known");
    /* without resolve, a name is kept for whoever connects to it */
    parses(opt("net.listen"), "nowhere.test:80", &a);
    assert_string_equal(a.host, "nowhere.test");
}

static void test_bool(void **state)
{
    const weft_conf_option_t *o = opt("flag");
    bool b;
    const char *yes[] = {"true", "TRUE", "True", "yes", "on", "1"};
    const char *no[] = {"false", "FALSE", "no", "off", "Off", "0"};
    for (size_t i = 0; i < 6; i++) {
        b = false;
        parses(o, yes[i], &b);
        assert_true(b);
        b = true;
        parses(o, no[i], &b);
        assert_false(b);
    }
    rejects(o, "maybe", "expected true or false, got \"maybe\"");
    rejects(o, "", "expected true or false, got \"\"");
    rejects(o, " true", "expected true or false, got \" true\"");
    rejects(o, "2", "expected true or false, got \"2\"");
}

static void test_int(void **state)
{
    const weft_conf_option_t *o = opt("delta");
    int64_t v;
    parses(o, "-9223372036854775808", &v);
    assert_true(v == INT64_MIN);
    parses(o, "9223372036854775807", &v);
    assert_true(v == INT64_MAX);
    parses(o, "+5", &v);
    assert_int_equal(v, 5);
    parses(o, "-0", &v);
    assert_int_equal(v, 0);
    parses(o, "007", &v);
    assert_int_equal(v, 7);
    rejects(o, "9223372036854775808", "9223372036854775808 is out of range");
    rejects(o, "-9223372036854775809", "-9223372036854775809 is out of range");
    rejects(o, "99999999999999999999999", "99999999999999999999999 is out of range");
    const char *bad[] = {"5x", "", "-", "+", "1e3", " 5", "5 ", "0x10", "1_000", "1.0", "--5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "expected a whole number, got \"%s\"", bad[i]);
        rejects(o, bad[i], want);
    }
}

static void test_uint(void **state)
{
    const weft_conf_option_t *o = opt("count");
    uint64_t v;
    parses(o, "18446744073709551615", &v);
    assert_true(v == UINT64_MAX);
    parses(o, "+42", &v);
    assert_int_equal(v, 42);
    rejects(o, "18446744073709551616", "18446744073709551616 is out of range");
    rejects(o, "-1", "expected a whole number, got \"-1\"");
    rejects(o, "-0", "expected a whole number, got \"-0\"");
    rejects(o, "12abc", "expected a whole number, got \"12abc\"");
}

static void test_double(void **state)
{
    const weft_conf_option_t *o = opt("ratio");
    double d;
    parses(o, "0.25", &d);
    assert_true(d == 0.25);
    parses(o, "-1e3", &d);
    assert_true(d == -1000);
    parses(o, "1.", &d);
    assert_true(d == 1);
    parses(o, ".5", &d);
    assert_true(d == 0.5);
    parses(o, "+2E-1", &d);
    assert_true(d == 0.2);
    parses(o, "7", &d);
    assert_true(d == 7);
    const char *bad[] = {"nan", "inf", "-inf", "1,5", "0x1p3", " 1",  "1 ",
                         "",    ".",   "1e",   "e5",  "1e+",   "--1", "1.2.3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "expected a number, got \"%s\"", bad[i]);
        rejects(o, bad[i], want);
    }
    rejects(o, "1e999", "1e999 is out of range");
}

static void test_duration(void **state)
{
    const weft_conf_option_t *o = opt("net.timeout");
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {{"0", 0},
                {"250ms", 250},
                {"10s", 10000},
                {"1m30s", 90000},
                {"1.5h", 5400000},
                {"7d", 604800000},
                {"1h1ms", 3600001},
                {"0s", 0},
                {"1.25s", 1250},
                {"0.001s", 1},
                {"1d2h3m4s5ms", 93784005},
                {"1.500000000s", 1500}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 12345;
        parses(o, good[i].text, &v);
        assert_int_equal(v, good[i].ms);
    }
    const char *bad[] = {"10", "",    "-1s", "1 s",   "s",    "1.s", "1sec",
                         "1S", "ten", "00",  "1h 2m", "1e3s", "1,5s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[96];
        snprintf(want, sizeof(want), "expected a duration like 10s or 250ms, got \"%s\"", bad[i]);
        rejects(o, bad[i], want);
    }
    rejects(o, "1.5ms", "1.5ms is finer than a millisecond");
    rejects(o, "0.0001s", "0.0001s is finer than a millisecond");
    rejects(o, "1.0000000001s", "1.0000000001s is finer than a millisecond");
    rejects(o, "30m1h", "units go from the largest down, once each (1h30m), got \"30m1h\"");
    rejects(o, "1s1s", "units go from the largest down, once each (1h30m), got \"1s1s\"");
    rejects(o, "999999999999999d", "999999999999999d is out of range");
    rejects(o, "99999999999999999999ms", "99999999999999999999ms is out of range");
}

static void test_size(void **state)
{
    const weft_conf_option_t *o = opt("net.size");
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {{"512", 512},
                {"512B", 512},
                {"0", 0},
                {"64KiB", 65536},
                {"64kib", 65536},
                {"1.5MiB", 1572864},
                {"2GiB", 2147483648ull},
                {"1TiB", 1099511627776ull},
                {"10KB", 10000},
                {"10kB", 10000},
                {"5MB", 5000000},
                {"1GB", 1000000000},
                {"1TB", 1000000000000ull},
                {"1.0", 1},
                {"0.5KiB", 512}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 7;
        parses(o, good[i].text, &v);
        assert_int_equal(v, good[i].bytes);
    }
    const char *bad[] = {"1XB", "64 KiB", "-1", "KiB", "", "1K", "1KiBB", "1.KiB", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[96];
        snprintf(want, sizeof(want), "expected a size like 512, 64KiB or 1MiB, got \"%s\"", bad[i]);
        rejects(o, bad[i], want);
    }
    rejects(o, "1.5", "1.5 is not a whole number of bytes");
    rejects(o, "1.0001KiB", "1.0001KiB is not a whole number of bytes");
    rejects(o, "17179869184GiB", "17179869184GiB is out of range");
}

static void test_addr(void **state)
{
    const weft_conf_option_t *o = opt("net.listen");
    weft_conf_addr_t a;
    parses(o, "127.0.0.1:80", &a);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 80);
    parses(o, "localhost:0", &a);
    assert_string_equal(a.host, "localhost");
    assert_int_equal(a.port, 0);
    parses(o, "[::1]:8500", &a);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 8500);
    parses(o, "[fe80::1%eth0]:65535", &a);
    assert_string_equal(a.host, "fe80::1%eth0");
    assert_int_equal(a.port, 65535);
    parses(o, "[::ffff:10.0.0.1]:1", &a);
    assert_string_equal(a.host, "::ffff:10.0.0.1");
    parses(o, "my_host-1.example.com:443", &a);
    assert_string_equal(a.host, "my_host-1.example.com");
    char host[300];
    memset(host, 'h', 255);
    strcpy(host + 255, ":1");
    parses(o, host, &a);
    assert_int_equal(strlen(a.host), 255);
    memset(host, 'h', 256);
    strcpy(host + 256, ":1");
    char why[512];
    assert_int_equal(weft_conf_parse_value(o, host, &a, why, sizeof(why)), WEFT_EINVAL);
    const char *bad[] = {"nohost",   ":80",    "a:70000",       "a:",           "::1:80",
                         "[::1]80",  "[]:80",  "[zz]:80",       "a b:80",       "a:+80",
                         "a:-1",     "[::1]:", "[fe80::1%]:80", "[1.2.3.4]:80", "a:1:2",
                         "a:123456", "a/b:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[128];
        snprintf(want, sizeof(want), "expected HOST:PORT (port 0-65535, [v6]:port), got \"%s\"",
                 bad[i]);
        rejects(o, bad[i], want);
    }
}

static void test_enum_and_level(void **state)
{
    const weft_conf_option_t *o = opt("level");
    int e = -1;
    parses(o, "low", &e);
    assert_int_equal(e, 0);
    parses(o, "high", &e);
    assert_int_equal(e, 1);
    rejects(o, "mid", "expected one of low, high, got \"mid\"");
    rejects(o, "hihg", "expected one of low, high, got \"hihg\" (did you mean \"high\"?)");
    rejects(o, "HIGH", "expected one of low, high, got \"HIGH\" (did you mean \"high\"?)");
    rejects(o, "", "expected one of low, high, got \"\"");

    const weft_conf_option_t *l = opt("log.level");
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        weft_log_level_t lv = (weft_log_level_t)-1, want;
        parses(l, names[i], &lv);
        assert_int_equal(weft_log_level_parse(names[i], &want), 0);
        assert_int_equal(lv, want);
        assert_int_equal(lv, i);
    }
    weft_log_level_t lv;
    parses(l, "warning", &lv);
    assert_int_equal(lv, WEFT_LOG_WARN);
    rejects(l, "loud", "expected one of debug, info, warn, error, off, got \"loud\"");
    rejects(l, "Info",
            "expected one of debug, info, warn, error, off, got \"Info\" (did you mean \"info\"?)");
}

static void test_string_and_escaping(void **state)
{
    const weft_conf_option_t *o = opt("name");
    const char *text = "any text: at all", *s = NULL;
    parses(o, text, &s);
    assert_ptr_equal(s, text); /* not a copy */
    /* values are shown escaped and cut, so a message is always one line */
    const weft_conf_option_t *u = opt("count");
    rejects(u, "1\n2", "expected a whole number, got \"1\\n2\"");
    rejects(u, "\"\\\t\x01\x7f", "expected a whole number, got \"\\\"\\\\\\t\\x01\\x7f\"");
    char longv[200];
    memset(longv, 'a', 199);
    longv[199] = 0;
    char want[256];
    snprintf(want, sizeof(want), "expected a whole number, got \"%.64s...\"", longv);
    rejects(u, longv, want);
    /* a cut never splits a UTF-8 character: 63 ASCII bytes, then 'é' (2 bytes) */
    char utf[100];
    memset(utf, 'b', 63);
    strcpy(utf + 63, "\xc3\xa9zz");
    snprintf(want, sizeof(want), "expected a whole number, got \"%.63s...\"", utf);
    rejects(u, utf, want);
    char why[8];
    assert_int_equal(weft_conf_parse_value(u, "x", &s, why, sizeof(why)), WEFT_EINVAL);
    assert_string_equal(why, "expecte"); /* cut to the buffer, terminated */
    assert_int_equal(weft_conf_parse_value(u, "x", &s, NULL, 0), WEFT_EINVAL);
}

/* ---- loading ---- */

static void test_defaults(void **state)
{
    weft_conf_t conf;
    char *argv[] = {"prog"};
    clear_env();
    memset(&c, 0xa5, sizeof(c)); /* every field must be written */
    c.name = c.note = NULL;
    assert_int_equal(load_text(NULL, 1, argv, &conf), 0);
    assert_null(conf.file);
    assert_false(c.flag);
    assert_int_equal(c.delta, -5);
    assert_int_equal(c.count, 3);
    assert_true(c.ratio == 0.5);
    assert_string_equal(c.name, "x");
    assert_null(c.note);
    assert_int_equal(c.timeout, 10000);
    assert_int_equal(c.size, 65536);
    assert_string_equal(c.addr.host, "127.0.0.1");
    assert_int_equal(c.addr.port, 80);
    assert_int_equal(c.level, 0);
    assert_int_equal(c.log, WEFT_LOG_INFO);
    assert_int_equal(c.big, 0);
    assert_int_equal(c.retries, 1);
    weft_conf_free(&conf);
    weft_conf_free(&conf); /* twice is harmless */
}

static void test_file_values(void **state)
{
    weft_conf_t conf;
    char *argv[] = {"prog"};
    clear_env();
    assert_int_equal(load_text("# settings\n"
                               "flag: yes\ndelta: -10\ncount: 100\nratio: 1\nname: hello world\n"
                               "note: ''\n"
                               "net:\n  timeout: 1m30s\n  size: 1MiB\n  listen: '[::1]:8500'\n"
                               "level: high\n"
                               "log: {level: debug}\n"
                               "big: 9007199254740992\n"
                               "retries: 18446744073709551615\n",
                               1, argv, &conf),
                     0);
    assert_string_equal(conf.file, path);
    assert_true(c.flag);
    assert_int_equal(c.delta, -10);
    assert_int_equal(c.count, 100);
    assert_true(c.ratio == 1);
    assert_string_equal(c.name, "hello world");
    assert_string_equal(c.note, "");
    assert_int_equal(c.timeout, 90000);
    assert_int_equal(c.size, 1 << 20);
    assert_string_equal(c.addr.host, "::1");
    assert_int_equal(c.addr.port, 8500);
    assert_int_equal(c.level, 1);
    assert_int_equal(c.log, WEFT_LOG_DEBUG);
    assert_true(c.big == 9007199254740992ull);
    assert_true(c.retries == UINT64_MAX);
    weft_conf_free(&conf);

    /* dotted keys, explicit document markers, anchors of values, tags, quoted numbers */
    assert_int_equal(load_text("---\nnet.timeout: &t 250ms\ncount: &c \"7\"\nbig: *c\n"
                               "name: !!str 123\nnet: {size: 2KiB}\nlog.level: *nope_is_not_used\n",
                               1, argv, &conf),
                     WEFT_EINVAL);
    assert_non_null(
        strstr(err, ":7:12: log.level: alias *nope_is_not_used has no anchor before it"));
    assert_int_equal(load_text("---\nnet.timeout: &t 250ms\ncount: &c \"7\"\nbig: *c\n"
                               "name: !!str 123\nnet: {size: 2KiB}\n...\n",
                               1, argv, &conf),
                     0);
    assert_int_equal(c.timeout, 250);
    assert_int_equal(c.count, 7);
    assert_int_equal(c.big, 7);
    assert_string_equal(c.name, "123");
    assert_int_equal(c.size, 2048);
    weft_conf_free(&conf);

    /* empty files and documents set nothing */
    const char *empty[] = {"",    "# only a comment\n", "---\n",
                           "~\n", "count: 5\n---\n",    "\xef\xbb\xbf"}; /* a byte order mark */
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        assert_int_equal(load_text(empty[i], 1, argv, &conf), 0);
        weft_conf_free(&conf);
    }
}

static void test_file_bounds(void **state)
{
    clear_env();
    file_error("count: 101\n", "1:8: count: 101 is above the maximum 100");
    file_error("count: 0\n", "1:8: count: 0 is below the minimum 1");
    file_error("delta: -11\n", "1:8: delta: -11 is below the minimum -10");
    file_error("delta: 11\n", "1:8: delta: 11 is above the maximum 10");
    file_error("ratio: 1.5\n", "1:8: ratio: 1.5 is above the maximum 1");
    file_error("ratio: -0.001\n", "1:8: ratio: -0.001 is below the minimum 0");
    file_error("net:\n  timeout: 2h\n", "2:12: net.timeout: 2h is above the maximum 1h");
    file_error("net:\n  timeout: 99ms\n", "2:12: net.timeout: 99ms is below the minimum 100ms");
    file_error("net:\n  size: 10\n", "2:9: net.size: 10 is below the minimum 1KiB");
    file_error("net:\n  size: 1025KiB\n", "2:9: net.size: 1025KiB is above the maximum 1MiB");
    file_error("name: ''\n", "1:7: name: 0 bytes is below the minimum length 1");
    file_error("name: abcdefghijklmnopq\n", "1:7: name: 17 bytes is above the maximum length 16");
    /* integer bounds are exact: 2^53 + 1 is above 2^53 although both are the same double */
    file_error("big: 9007199254740993\n",
               "1:6: big: 9007199254740993 is above the maximum 9007199254740992");
    file_error("retries: 0\n", "1:10: retries: 0 is below the minimum 1");
}

static void test_file_errors(void **state)
{
    clear_env();
    /* wrong values */
    file_error("delta: 5x\n", "1:8: delta: expected a whole number, got \"5x\"");
    file_error("count: -1\n", "1:8: count: expected a whole number, got \"-1\"");
    file_error("count: 99999999999999999999999\n",
               "1:8: count: 99999999999999999999999 is out of range");
    file_error("ratio: nan\n", "1:8: ratio: expected a number, got \"nan\"");
    file_error("flag: maybe\n", "1:7: flag: expected true or false, got \"maybe\"");
    file_error("net:\n  timeout: 10\n",
               "2:12: net.timeout: expected a duration like 10s or 250ms, got \"10\"");
    file_error("net:\n  timeout: ten\n",
               "2:12: net.timeout: expected a duration like 10s or 250ms, got \"ten\"");
    file_error("net:\n  size: 1XB\n",
               "2:9: net.size: expected a size like 512, 64KiB or 1MiB, got \"1XB\"");
    file_error("net:\n  listen: nohost\n",
               "2:11: net.listen: expected HOST:PORT (port 0-65535, [v6]:port), got \"nohost\"");
    file_error("level: mid\n", "1:8: level: expected one of low, high, got \"mid\"");
    file_error("log:\n  level: loud\n",
               "2:10: log.level: expected one of debug, info, warn, error, off, got \"loud\"");
    file_error("count: |\n  12\n  x\n", "1:8: count: expected a whole number, got \"12\\nx\\n\"");
    file_error_n("name: \"a\\0b\"\n", 13, "1:7: name: contains a NUL byte: \"a\\x00b\"");
    /* no value */
    file_error("count: ~\n", "1:8: count: no value (write one, or remove the key for the default)");
    file_error("count: null\n",
               "1:8: count: no value (write one, or remove the key for the default)");
    file_error("name:\nflag: true\n",
               "1:6: name: no value (write one, or remove the key for the default)");
    /* unknown keys and suggestions */
    file_error("cuont: 1\n", "1:1: cuont: unknown key (did you mean \"count\"?)");
    file_error("Count: 1\n", "1:1: Count: unknown key (did you mean \"count\"?)");
    file_error("net:\n  timout: 1s\n", "2:3: net.timout: unknown key (did you mean \"timeout\"?)");
    file_error("nett:\n  timeout: 1s\n", "1:1: nett: unknown key (did you mean \"net\"?)");
    file_error("listen: a:1\n", "1:1: listen: unknown key (did you mean \"net.listen\"?)");
    file_error("net.tmeout: 1s\n", "1:1: net.tmeout: unknown key (did you mean \"net.timeout\"?)");
    file_error("net:\n  level: x\n", "2:3: net.level: unknown key (did you mean \"log.level\"?)");
    char longkey[400];
    memset(longkey, 'k', 300);
    strcpy(longkey + 300, ": 1\n");
    char want[200];
    snprintf(want, sizeof(want), "1:1: %.64s...: unknown key (longer than any key)", longkey);
    file_error(longkey, want);
    file_error("zzzzzz: 1\n", "1:1: zzzzzz: unknown key");
    file_error("count.x: 1\n", "1:1: count.x: unknown key (did you mean \"count\"?)");
    file_error("\"a\\nb\": 1\n", "1:1: a\\nb: unknown key");
    file_error_n("\"a\\0b\": 1\n", 10, "1:1: a\\x00b: a key with a NUL byte");
    /* structure */
    file_error("net: 5\n", "1:6: net: expected a mapping of settings");
    file_error("net: [1]\n", "1:6: net: expected a mapping of settings");
    file_error("net:\n", "1:5: net: expected a mapping of settings");
    file_error("count: [1]\n", "1:8: count: expected a single uint value, got a list");
    file_error("count: {a: 1}\n", "1:8: count: expected a single uint value, got a mapping");
    file_error("count:\n  - 1\n", "2:3: count: expected a single uint value, got a list");
    file_error("- 1\n- 2\n", "1:1: expected a mapping of settings at the top");
    file_error("hello\n", "1:1: expected a mapping of settings at the top");
    file_error("? [a]\n: 1\n", "1:3: keys must be names, not a list");
    file_error("? {a: 1}\n: 1\n", "1:3: keys must be names, not a mapping");
    file_error("net:\n  <<: {timeout: 1s}\n",
               "2:3: net.<<: merge keys are not supported; write the settings out");
    /* duplicates, literal or through another spelling of the same key */
    file_error("count: 1\ncount: 2\n", "2:1: count: duplicate key (first at line 1)");
    file_error("net:\n  timeout: 1s\nnet.timeout: 2s\n",
               "3:1: net.timeout: duplicate key (first at line 2)");
    file_error("net:\n  size: 2KiB\nnet:\n  timeout: 1s\n",
               "3:1: net: duplicate key (first at line 1)");
    /* aliases */
    file_error("count: *c\n", "1:8: count: alias *c has no anchor before it");
    file_error("net: &n {timeout: 1s}\nlog: *n\n",
               "2:6: log: aliases of mappings are not supported; write the settings out");
    file_error("net: &n {timeout: 1s}\ncount: *n\n",
               "2:8: count: expected a single uint value, got an alias of a mapping or list");
    file_error("name: &e\ncount: 1\n",
               "1:7: name: no value (write one, or remove the key for the default)");
    /* documents */
    file_error("count: 1\n---\ncount: 2\n", "3:1: a second YAML document; only one is read");
}

static void test_yaml_syntax_and_limits(void **state)
{
    clear_env();
    file_error("count: [\n", "2:1: invalid YAML: did not find expected node content while "
                             "parsing a flow node");
    file_error("net:\n\ttimeout: 1s\n",
               "2:1: invalid YAML: found character that cannot start any token while scanning "
               "for the next token");
    file_error("count: 5\n  x: 1\n", "2:4: invalid YAML: mapping values are not allowed in this "
                                     "context");
    file_error("count: \"5\n", "2:1: invalid YAML: found unexpected end of stream while "
                               "scanning a quoted scalar (which started at 1:8)");
    /* broken YAML is reported as such even after a value that is wrong */
    file_error("count: 500\nx: [\n", "3:1: invalid YAML: did not find expected node content "
                                     "while parsing a flow node");
    /* otherwise the first problem in file order wins */
    file_error("count: 500\nx: 1\n", "1:8: count: 500 is above the maximum 100");
    file_error("a: [[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]\n", "1:19: nested deeper than 16 levels");
    file_error("a: [[[[[[[[[[[[[[[]]]]]]]]]]]]]]]\n", "1:1: a: unknown key");
    /* errors of the reader: control bytes, broken UTF-8 */
    file_error("count: 1\nname: a\x01\n",
               "2:8: invalid YAML: control characters are not allowed (byte 0x01)");
    file_error("name: \xff\n", "1:7: invalid YAML: invalid leading UTF-8 octet (byte 0xff)");

    /* a file over the limit */
    size_t big = WEFT_CONF_MAX_FILE + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    text[big - 1] = '\n';
    weft_conf_t conf;
    char *argv[] = {"prog"};
    const char *f = file_of_n(text, big);
    assert_int_equal(weft_conf_load(&conf, secs, 1, f, 1, argv, err, sizeof(err)), WEFT_EINVAL);
    char want[200];
    snprintf(want, sizeof(want), "%s: larger than the limit of 1048576 bytes", f);
    assert_string_equal(err, want);
    /* exactly at the limit is fine */
    f = file_of_n(text, big - 1);
    assert_int_equal(weft_conf_load(&conf, secs, 1, f, 1, argv, err, sizeof(err)), 0);
    weft_conf_free(&conf);
    unlink(f);
    free(text);

    assert_int_equal(
        weft_conf_load(&conf, secs, 1, "/nonexistent/x.yaml", 1, argv, err, sizeof(err)),
        WEFT_ENOENT);
    assert_string_equal(err, "/nonexistent/x.yaml: cannot read: No such file or directory");
    assert_int_equal(weft_conf_load(&conf, secs, 1, "/tmp", 1, argv, err, sizeof(err)),
                     WEFT_ENOENT);
    assert_string_equal(err, "/tmp: cannot read: Is a directory");
}

static void test_precedence(void **state)
{
    weft_conf_t conf;
    clear_env();
    setenv("T_COUNT", "7", 1);
    setenv("T_FLAG", "on", 1);
    setenv("T_NAME", "from-env", 1);
    char *argv1[] = {"prog"};
    assert_int_equal(load_text("count: 5\nname: from-file\ndelta: 2\n", 1, argv1, &conf), 0);
    assert_int_equal(c.count, 7); /* env beats file */
    assert_true(c.flag);
    assert_string_equal(c.name, "from-env");
    assert_int_equal(c.delta, 2); /* the file beats the default */
    weft_conf_free(&conf);
    char *argv2[] = {"prog", "--count", "9", "--no-flag", "--name=from-flag", "--delta=-3"};
    assert_int_equal(load_text("count: 5\ndelta: 2\n", 6, argv2, &conf), 0);
    assert_int_equal(c.count, 9); /* flag beats env */
    assert_false(c.flag);
    assert_string_equal(c.name, "from-flag");
    assert_int_equal(c.delta, -3);    /* flag beats file */
    assert_int_equal(conf.nowned, 1); /* replaced strings were freed as they went */
    weft_conf_free(&conf);
    /* a later flag beats an earlier one */
    char *argv3[] = {"prog", "--count", "9", "--count=10"};
    assert_int_equal(load_text(NULL, 4, argv3, &conf), 0);
    assert_int_equal(c.count, 10);
    weft_conf_free(&conf);
    clear_env();
}

static void test_env(void **state)
{
    weft_conf_t conf;
    char *argv[] = {"prog"};
    clear_env();
    setenv("T_LOG", "error", 1);
    assert_int_equal(load_text(NULL, 1, argv, &conf), 0);
    assert_int_equal(c.log, WEFT_LOG_ERROR);
    weft_conf_free(&conf);
    setenv("T_COUNT", "x", 1);
    assert_int_equal(load_text(NULL, 1, argv, &conf), WEFT_EINVAL);
    assert_string_equal(err, "T_COUNT: expected a whole number, got \"x\"");
    setenv("T_COUNT", "", 1); /* set but empty is a value, and a wrong one */
    assert_int_equal(load_text(NULL, 1, argv, &conf), WEFT_EINVAL);
    assert_string_equal(err, "T_COUNT: expected a whole number, got \"\"");
    setenv("T_COUNT", "1000", 1);
    assert_int_equal(load_text(NULL, 1, argv, &conf), WEFT_EINVAL);
    assert_string_equal(err, "T_COUNT: 1000 is above the maximum 100");
    unsetenv("T_COUNT");
    setenv("T_NAME", "", 1);
    assert_int_equal(load_text(NULL, 1, argv, &conf), WEFT_EINVAL);
    assert_string_equal(err, "T_NAME: 0 bytes is below the minimum length 1");
    assert_null(c.name);
    clear_env();
}

static void test_flags(void **state)
{
    weft_conf_t conf;
    clear_env();
    char *ok[] = {"prog",    "--flag", "--delta",     "-7",     "--ratio=0.75",
                  "--name",  "a=b",    "--listen",    "[::]:1", "--timeout=1s",
                  "--level", "high",   "--log-level", "off"};
    assert_int_equal(load_text(NULL, 14, ok, &conf), 0);
    assert_true(c.flag);
    assert_int_equal(c.delta, -7); /* a value may start with one dash */
    assert_true(c.ratio == 0.75);
    assert_string_equal(c.name, "a=b");
    assert_string_equal(c.addr.host, "::");
    assert_int_equal(c.addr.port, 1);
    assert_int_equal(c.timeout, 1000);
    assert_int_equal(c.level, 1);
    assert_int_equal(c.log, WEFT_LOG_OFF);
    weft_conf_free(&conf);
    char *b1[] = {"prog", "--flag=false"};
    assert_int_equal(load_text(NULL, 2, b1, &conf), 0);
    assert_false(c.flag);
    weft_conf_free(&conf);
    char *b2[] = {"prog", "--no-flag", "--flag=yes"};
    assert_int_equal(load_text(NULL, 3, b2, &conf), 0);
    assert_true(c.flag);
    weft_conf_free(&conf);
    char *dd[] = {"prog", "--name=--x", "--"}; /* "--" with nothing after it is fine */
    assert_int_equal(load_text(NULL, 3, dd, &conf), 0);
    assert_string_equal(c.name, "--x");
    weft_conf_free(&conf);

    char *e1[] = {"prog", "--count"};
    flag_error(2, e1, "--count: needs a value (--count=VALUE for one that starts with --)");
    char *e2[] = {"prog", "--count", "--flag"};
    flag_error(3, e2, "--count: needs a value (--count=VALUE for one that starts with --)");
    char *e3[] = {"prog", "--bogus", "1"};
    flag_error(3, e3, "--bogus: unknown flag (see --help)");
    char *e4[] = {"prog", "--cuont", "1"};
    flag_error(3, e4, "--cuont: unknown flag (did you mean --count?)");
    char *e5[] = {"prog", "--net.size", "1"};
    flag_error(3, e5, "--net.size: unknown flag; net.size is set in the config file");
    char *e6[] = {"prog", "--no-flag=1"};
    flag_error(2, e6, "--no-flag: takes no value");
    char *e5b[] = {"prog", "--net-size", "1"};
    flag_error(3, e5b, "--net-size: unknown flag; net.size is set in the config file");
    char *e5c[] = {"prog", "--size", "1"};
    flag_error(3, e5c, "--size: unknown flag; net.size is set in the config file");
    char *e5d[] = {"prog", "--log_level", "1"};
    flag_error(3, e5d, "--log_level: unknown flag (did you mean --log-level?)");
    char *e5e[] = {"prog", "--nme", "1"};
    flag_error(3, e5e, "--nme: unknown flag (did you mean --name?)");
    char *e7[] = {"prog", "--no-count"};
    flag_error(2, e7, "--no-count: unknown flag (see --help)");
    char *e8[] = {"prog", "stray"};
    flag_error(2, e8, "stray: unexpected argument (flags look like --name value)");
    char *e9[] = {"prog", "-c", "1"};
    flag_error(3, e9, "-c: unexpected argument (flags look like --name value)");
    char *e10[] = {"prog", "--", "--count"};
    flag_error(3, e10, "--count: unexpected argument (flags look like --name value)");
    char *e11[] = {"prog", "--flag", "false"}; /* a bool flag takes no separate value */
    flag_error(3, e11, "false: unexpected argument (flags look like --name value)");
    char *e12[] = {"prog", "--delta", "11"};
    flag_error(3, e12, "--delta: 11 is above the maximum 10");
    char *e13[] = {"prog", "--flag=maybe"};
    flag_error(2, e13, "--flag: expected true or false, got \"maybe\"");
    char *e14[] = {"prog", "--no-flag=true"};
    flag_error(2, e14, "--no-flag: takes no value");
    char *e15[] = {"prog", "--=1"};
    flag_error(2, e15, "--: unknown flag (see --help)");
    char *e16[] = {"prog", "--a\nb"};
    flag_error(2, e16, "--a\\nb: unknown flag (see --help)");
    char *e17[] = {"prog", "--config"};
    flag_error(2, e17, "--config: needs a file name");
    char *e18[] = {"prog", "--config="};
    flag_error(2, e18, "--config: needs a file name");
    /* a flag error does not hide behind a file: the usage is checked first */
    const char *f = file_of("count: 1000\n");
    char *e19[] = {"prog", "--config", (char *)f, "--bogus"};
    flag_error(4, e19, "--bogus: unknown flag (see --help)");
    unlink(f);
}

static void test_config_flag(void **state)
{
    weft_conf_t conf;
    clear_env();
    char f1[64], f2[64];
    strcpy(f1, file_of("count: 42\n"));
    strcpy(f2, file_of("count: 43\n"));
    char *a1[] = {"prog", "--config", f1};
    assert_int_equal(weft_conf_load(&conf, secs, 1, NULL, 3, a1, err, sizeof(err)), 0);
    assert_int_equal(c.count, 42);
    assert_ptr_equal(conf.file, f1);
    weft_conf_free(&conf);
    /* --config replaces the file argument */
    char eq[80];
    snprintf(eq, sizeof(eq), "--config=%s", f1);
    char *a2[] = {"prog", eq};
    assert_int_equal(weft_conf_load(&conf, secs, 1, f2, 2, a2, err, sizeof(err)), 0);
    assert_int_equal(c.count, 42);
    weft_conf_free(&conf);
    assert_int_equal(weft_conf_load(&conf, secs, 1, f2, 1, a2, err, sizeof(err)), 0);
    assert_int_equal(c.count, 43);
    assert_ptr_equal(conf.file, f2);
    weft_conf_free(&conf);
    unlink(f1);
    unlink(f2);
}

static void test_positional(void **state)
{
    weft_conf_t conf;
    clear_env();
    int argi = -1;
    char *a1[] = {"prog", "--count", "5", "run", "--count", "6", "x"};
    assert_int_equal(weft_conf_load_args(&conf, secs, 1, NULL, 7, a1, &argi, err, sizeof(err)), 0);
    assert_int_equal(argi, 3); /* "run"; the flags after it are the caller's */
    assert_int_equal(c.count, 5);
    weft_conf_free(&conf);
    char *a2[] = {"prog", "--flag", "--", "--count", "6"};
    assert_int_equal(weft_conf_load_args(&conf, secs, 1, NULL, 5, a2, &argi, err, sizeof(err)), 0);
    assert_int_equal(argi, 3);
    assert_int_equal(c.count, 3);
    weft_conf_free(&conf);
    char *a3[] = {"prog", "--count", "8"};
    assert_int_equal(weft_conf_load_args(&conf, secs, 1, NULL, 3, a3, &argi, err, sizeof(err)), 0);
    assert_int_equal(argi, 3);
    weft_conf_free(&conf);
    char *a4[] = {"prog", "--"};
    assert_int_equal(weft_conf_load_args(&conf, secs, 1, NULL, 2, a4, &argi, err, sizeof(err)), 0);
    assert_int_equal(argi, 2);
    weft_conf_free(&conf);
    assert_int_equal(weft_conf_load_args(&conf, secs, 1, NULL, 0, NULL, &argi, err, sizeof(err)),
                     0);
    assert_int_equal(argi, 0);
    weft_conf_free(&conf);
}

/* ---- tables ---- */

static void table_error(const weft_conf_option_t *bad, size_t n, const char *want)
{
    conf_t t;
    weft_conf_section_t s = {.name = "mod", .opts = bad, .n = n, .target = &t};
    assert_int_equal(weft_conf_check(&s, 1, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, want);
    weft_conf_t conf;
    char *argv[] = {"prog"};
    assert_int_equal(weft_conf_load(&conf, &s, 1, NULL, 1, argv, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, want);
}

#define U(k) .key = k, .type = WEFT_CONF_UINT, .offset = offsetof(conf_t, count)

static void test_tables(void **state)
{
    assert_int_equal(weft_conf_check(secs, 1, err, sizeof(err)), 0);
    const weft_conf_option_t dup[] = {{U("a")}, {U("a")}};
    table_error(dup, 2, "mod: a: key declared twice");
    const weft_conf_option_t parent[] = {{U("a.b")}, {U("a")}};
    table_error(parent, 2, "mod: a: a key cannot also be the parent of another (a.b)");
    const weft_conf_option_t key[] = {{U("a..b")}};
    table_error(key, 1,
                "mod: a..b: a key is names of letters, digits, '_' and '-' joined by "
                "dots, at most 16 levels and 255 bytes");
    const weft_conf_option_t key2[] = {{U("a b")}};
    table_error(key2, 1,
                "mod: a b: a key is names of letters, digits, '_' and '-' joined by "
                "dots, at most 16 levels and 255 bytes");
    const weft_conf_option_t nokey[] = {{.type = WEFT_CONF_BOOL}};
    table_error(nokey, 1, "mod: option 0: no key");
    const weft_conf_option_t en[] = {{.key = "e", .type = WEFT_CONF_ENUM}};
    table_error(en, 1, "mod: e: an enum needs choices");
    static const char *const twice[] = {"a", "a", NULL};
    const weft_conf_option_t en2[] = {{.key = "e", .type = WEFT_CONF_ENUM, .choices = twice}};
    table_error(en2, 1, "mod: e: choice \"a\" twice");
    const weft_conf_option_t ch[] = {{U("u"), .choices = levels}};
    table_error(ch, 1, "mod: u: choices are for enum options");
    const weft_conf_option_t mm[] = {{U("u"), .min = 5, .max = 1}};
    table_error(mm, 1, "mod: u: min is above max");
    const weft_conf_option_t neg[] = {{U("u"), .min = -5, .max = -1}};
    table_error(neg, 1, "mod: u: max is below 0 for a uint");
    const weft_conf_option_t nan_[] = {{U("u"), .max = NAN}};
    table_error(nan_, 1, "mod: u: a bound is NaN");
    const weft_conf_option_t bb[] = {{.key = "b", .type = WEFT_CONF_BOOL, .max = 1}};
    table_error(bb, 1, "mod: b: bounds do not apply to a bool");
    const weft_conf_option_t def[] = {{U("u"), .def = "ten"}};
    table_error(def, 1, "mod: u: default: expected a whole number, got \"ten\"");
    const weft_conf_option_t def2[] = {{U("u"), .def = "11", .min = 1, .max = 10}};
    table_error(def2, 1, "mod: u: default: 11 is above the maximum 10");
    const weft_conf_option_t fl[] = {{U("a"), .flag = "x"}, {U("b"), .flag = "x"}};
    table_error(fl, 2, "mod: b: flag --x declared twice");
    const weft_conf_option_t fl2[] = {{.key = "a", .type = WEFT_CONF_BOOL, .flag = "tls"},
                                      {U("b"), .flag = "no-tls"}};
    table_error(fl2, 2, "mod: b: flag --no-tls is also the negation of --tls");
    const weft_conf_option_t fl3[] = {{U("a"), .flag = "config"}};
    table_error(fl3, 1,
                "mod: a: flag \"config\": letters, digits, '_' and '-', at most 64 "
                "bytes, not config or help");
    const weft_conf_option_t fl4[] = {{U("a"), .flag = "-x"}};
    table_error(fl4, 1,
                "mod: a: flag \"-x\": letters, digits, '_' and '-', at most 64 bytes, "
                "not config or help");
    const weft_conf_option_t ev[] = {{U("a"), .env = "X"}, {U("b"), .env = "X"}};
    table_error(ev, 2, "mod: b: environment variable X declared twice");
    const weft_conf_option_t ev2[] = {{U("a"), .env = "WEFT-X"}};
    table_error(ev2, 1, "mod: a: environment variable \"WEFT-X\": letters, digits and '_'");
    const weft_conf_option_t ty[] = {{.key = "a", .type = (weft_conf_type_t)99}};
    table_error(ty, 1, "mod: a: unknown type 99");
    /* across sections too */
    conf_t t1, t2;
    const weft_conf_option_t one[] = {{U("a.b")}};
    weft_conf_section_t two[] = {{.name = "one", .opts = one, .n = 1, .target = &t1},
                                 {.name = "two", .opts = parent + 1, .n = 1, .target = &t2}};
    assert_int_equal(weft_conf_check(two, 2, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, "two: a: a key cannot also be the parent of another (a.b)");
    weft_conf_section_t notarget = {.name = "nt", .opts = one, .n = 1};
    assert_int_equal(weft_conf_check(&notarget, 1, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, "nt: no options or no target struct");
}

static void test_failed_load_leaves_nothing(void **state)
{
    weft_conf_t conf;
    clear_env();
    char *argv[] = {"prog", "--name", "set", "--count", "0"};
    memset(&conf, 0x5a, sizeof(conf)); /* whatever the caller had */
    assert_int_equal(load_text("note: a note\n", 5, argv, &conf), WEFT_EINVAL);
    assert_string_equal(err, "--count: 0 is below the minimum 1");
    assert_null(c.name);
    assert_null(c.note);
    assert_null(conf.owned);
    assert_int_equal(conf.nowned, 0);
    assert_null(conf.file);
}

/* ---- checks declared in the table ---- */

static const char *no_blank(const void *v)
{
    const char *s = *(const char *const *)v;
    return strchr(s, ' ') ? "a word without blanks" : NULL;
}

static const char *even(const void *v)
{
    return *(const uint64_t *)v % 2 ? "an even number" : NULL;
}

typedef struct {
    char *word;
    uint64_t n;
} checked_t;

static void test_check(void **state)
{
    checked_t k;
    weft_conf_option_t t[] = {
        {.key = "word",
         .type = WEFT_CONF_STRING,
         .offset = offsetof(checked_t, word),
         .def = "w",
         .flag = "word",
         .env = "T_WORD",
         .help = "w",
         .check = no_blank},
        {.key = "n",
         .type = WEFT_CONF_UINT,
         .offset = offsetof(checked_t, n),
         .def = "2",
         .flag = "n",
         .help = "n",
         .check = even},
    };
    weft_conf_section_t ks[] = {{.name = "k", .opts = t, .n = 2, .target = &k}};
    weft_conf_t conf;
    char *ok[] = {"prog", "--n", "4", "--word", "yes"};
    unsetenv("T_WORD");
    assert_int_equal(weft_conf_load(&conf, ks, 1, NULL, 5, ok, err, sizeof(err)), 0);
    assert_string_equal(k.word, "yes");
    assert_int_equal(k.n, 4);
    weft_conf_free(&conf);
    /* a flag, the environment, the file: each says where, like any other bad value */
    char *bad[] = {"prog", "--n", "3"};
    assert_int_equal(weft_conf_load(&conf, ks, 1, NULL, 3, bad, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, "--n: an even number, got \"3\"");
    setenv("T_WORD", "two words", 1);
    assert_int_equal(weft_conf_load(&conf, ks, 1, NULL, 1, bad, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, "T_WORD: a word without blanks, got \"two words\"");
    assert_null(k.word); /* the refused string went with the load */
    unsetenv("T_WORD");
    const char *f = file_of("n: 2\nword: \"a b\"\n");
    assert_int_equal(weft_conf_load(&conf, ks, 1, f, 1, bad, err, sizeof(err)), WEFT_EINVAL);
    unlink(f);
    char want[200];
    snprintf(want, sizeof(want), "%s:2:7: word: a word without blanks, got \"a b\"", f);
    assert_string_equal(err, want);
    assert_null(conf.owned);
    /* a default the check refuses is a broken table */
    t[1].def = "1";
    assert_int_equal(weft_conf_check(ks, 1, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, "k: n: default: an even number");
    t[1].def = "2";
    t[0].def = "a b";
    assert_int_equal(weft_conf_check(ks, 1, err, sizeof(err)), WEFT_EINVAL);
    assert_string_equal(err, "k: word: default: a word without blanks");
}

/* ---- help and reference ---- */

static char *capture(void (*fn)(const weft_conf_section_t *, size_t, FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(secs, 1, f);
    fclose(f);
    return buf;
}

static void test_help(void **state)
{
    char *h = capture(weft_conf_help);
    assert_non_null(strstr(h, "--config FILE"));
    for (size_t i = 0; i < NOPTS; i++) {
        assert_non_null(strstr(h, opts[i].key));
        assert_non_null(strstr(h, opts[i].help));
        if (opts[i].env) assert_non_null(strstr(h, opts[i].env));
        if (opts[i].flag) {
            char fl[80];
            snprintf(fl, sizeof(fl), "--%s", opts[i].flag);
            assert_non_null(strstr(h, fl));
        }
    }
    assert_non_null(strstr(h, "  --flag, --no-flag"));
    assert_non_null(strstr(h, "  --timeout duration"));
    assert_non_null(strstr(h, "key net.timeout, default 10s, range 100ms..1h\n"));
    assert_non_null(strstr(h, "  net.size: size"));
    assert_non_null(strstr(h, "default 64KiB, range 1KiB..1MiB\n"));
    assert_non_null(strstr(h, "key count, default 3, env T_COUNT, range 1..100\n"));
    assert_non_null(strstr(h, "key name, default \"x\", env T_NAME, range length 1..16\n"));
    assert_non_null(strstr(h, "default none\n"));
    assert_non_null(strstr(h, "default low, one of low|high\n"));
    assert_non_null(strstr(h, "one of debug|info|warn|error|off\n"));
    assert_non_null(strstr(h, "default 1, range >= 1\n"));
    free(h);
}

static void test_markdown(void **state)
{
    char *m = capture(weft_conf_markdown);
    assert_non_null(strstr(m, "| key | type | default | flag | environment | range | "
                              "description |\n| --- | --- | --- | --- | --- | --- | --- |\n"));
    for (size_t i = 0; i < NOPTS; i++) {
        char k[80];
        snprintf(k, sizeof(k), "| `%s` |", opts[i].key);
        assert_non_null(strstr(m, k));
    }
    assert_non_null(strstr(m, "| `net.size` | size | `64KiB` |  |  | 1KiB..1MiB | a size |\n"));
    assert_non_null(
        strstr(m, "| `count` | uint | `3` | `--count` | `T_COUNT` | 1..100 | a uint |"));
    assert_non_null(strstr(m, "| `name` | string | `x` | `--name` | `T_NAME` | length 1..16 | "
                              "a string \\| with a pipe |\n"));
    assert_non_null(strstr(m, "| `level` | enum | `low` | `--level` |  | low, high | an enum |"));
    assert_non_null(strstr(m, "| `note` | string |  |  |  |  | no default |"));
    assert_non_null(strstr(m, "\n| type | syntax |\n"));
    assert_non_null(strstr(m, "| duration | `250ms`"));
    assert_non_null(strstr(m, "| host:port | `host:port`"));
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_uint),
        cmocka_unit_test(test_double),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_addr_resolve),
        cmocka_unit_test(test_enum_and_level),
        cmocka_unit_test(test_string_and_escaping),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_file_bounds),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_yaml_syntax_and_limits),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_config_flag),
        cmocka_unit_test(test_positional),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_failed_load_leaves_nothing),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_markdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
