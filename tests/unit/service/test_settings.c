/*
 * test_settings.c - weft_service_options_from_args: weft's standard settings for a service
 * from flags, environment variables (named after the service) and a YAML file, with the
 * caller's options as the defaults; --help printed from the tables; the exact message and
 * the untouched options of every kind of bad value; the OTLP exporter --otlp makes; and
 * ownership (ASan's leak check holds the settings object and the exporters to it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/log.h"
#include "weft/otlp.h"
#include "weft/service.h"
#include "weft/trace.h"

static const char *const vars[] = {
    "SVC_T_NAME",
    "SVC_T_HOST",
    "SVC_T_PORT",
    "SVC_T_WORKERS",
    "SVC_T_LOG_LEVEL",
    "SVC_T_ACCESS_LOG",
    "SVC_T_ACCESS_LOG_FILE",
    "SVC_T_OTLP",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_RESOURCE_ATTRIBUTES",
    "SVC_T_REGISTRY",
    "SVC_T_REGISTRY_TAGS",
    "SVC_T_REGISTRY_CHECK",
    "WEFT_REGISTRY",
    "WEFT_REGISTRY_TOKEN",
};

static weft_service_options_t o;
static weft_service_settings_t *st;
static char err[512];
static char path[64];

static int setup(void **state)
{
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) unsetenv(vars[i]);
    weft_log_set_level(WEFT_LOG_INFO);
    weft_service_options_init(&o);
    o.name = "svc.t"; /* variables SVC_T_* */
    o.port = 8081;
    st = NULL;
    err[0] = 0;
    return 0;
}

static int teardown(void **state)
{
    if (o.exporter) o.exporter->shutdown(o.exporter->arg);
    weft_service_settings_free(st);
    weft_log_set_level(WEFT_LOG_INFO);
    return 0;
}

static const char *file_of(const char *text)
{
    strcpy(path, "/tmp/weft-test-settings-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* weft_service_options_from_args with argv {"svc", args..., NULL} */
static int load_args(char **argv)
{
    int argc = 0;
    while (argv[argc]) argc++;
    return weft_service_options_from_args(&o, argc, argv, &st, err, sizeof(err));
}
#define LOAD(...) load_args((char *[]){"svc", __VA_ARGS__, NULL})
#define LOAD0()   load_args((char *[]){"svc", NULL})

static void test_defaults_are_the_callers(void **state)
{
    char *argv[] = {"svc"};
    o.host = "::1";
    o.workers = 3;
    o.access_log = true;
    o.http.max_headers = 7; /* an http.* key sets it: the table's default replaces it */
    assert_int_equal(weft_service_options_from_args(&o, 1, argv, &st, err, sizeof(err)), 0);
    assert_non_null(st);
    assert_string_equal(o.name, "svc.t");
    assert_string_equal(o.host, "::1");
    assert_int_equal(o.port, 8081);
    assert_int_equal(o.workers, 3);
    assert_true(o.access_log);
    assert_null(o.access_log_file);
    assert_int_equal(o.http.max_headers, 100);
    assert_null(o.exporter);
    assert_int_equal(weft_log_get_level(), WEFT_LOG_INFO);
}

static void test_flags(void **state)
{
    /* every flag tests/integration and bench/ start hello with */
    assert_int_equal(LOAD("--name", "other", "--port", "0", "--host", "0.0.0.0", "--workers", "2",
                          "--log-level", "warn", "--access-log", "--access-log-file", "/tmp/a.log",
                          "--otlp", "127.0.0.1:4318"),
                     0);
    assert_string_equal(o.name, "other");
    assert_string_equal(o.host, "0.0.0.0");
    assert_int_equal(o.port, 0);
    assert_int_equal(o.workers, 2);
    assert_true(o.access_log);
    assert_string_equal(o.access_log_file, "/tmp/a.log");
    assert_int_equal(weft_log_get_level(), WEFT_LOG_WARN);
    weft_otlp_stats_t s;
    assert_non_null(o.exporter);
    assert_int_equal(weft_otlp_exporter_stats(o.exporter, &s), 0); /* an OTLP exporter */
    teardown(NULL);
    setup(NULL);
    /* --name=value, --no-access-log */
    assert_int_equal(LOAD("--name=x", "--no-access-log", "--port=9"), 0);
    assert_string_equal(o.name, "x");
    assert_false(o.access_log);
    assert_int_equal(o.port, 9);
}

static void test_env(void **state)
{
    setenv("SVC_T_PORT", "1234", 1);
    setenv("SVC_T_ACCESS_LOG", "yes", 1);
    setenv("SVC_T_LOG_LEVEL", "debug", 1);
    setenv("SVC_T_NAME", "from-env", 1);
    assert_int_equal(LOAD("--name", "from-flag"), 0); /* flags win over the environment */
    assert_int_equal(o.port, 1234);
    assert_true(o.access_log);
    assert_int_equal(weft_log_get_level(), WEFT_LOG_DEBUG);
    assert_string_equal(o.name, "from-flag");
    teardown(NULL);
    setup(NULL);
    /* a name starting with a digit: its variables start with '_' */
    o.name = "1st-svc";
    setenv("_1ST_SVC_WORKERS", "5", 1);
    assert_int_equal(LOAD0(), 0);
    assert_int_equal(o.workers, 5);
    unsetenv("_1ST_SVC_WORKERS");
}

static void test_config_file(void **state)
{
    const char *f = file_of("name: filed\n"
                            "port: 7000\n"
                            "access_log_file: /tmp/f.log\n"
                            "http:\n"
                            "  max_headers: 5\n"
                            "  idle_timeout: 2s\n");
    setenv("SVC_T_PORT", "7001", 1); /* the environment wins over the file */
    int rc = LOAD("--config", (char *)f);
    unlink(f);
    assert_int_equal(rc, 0);
    assert_string_equal(o.name, "filed");
    assert_int_equal(o.port, 7001);
    assert_string_equal(o.access_log_file, "/tmp/f.log");
    assert_int_equal(o.http.max_headers, 5);
    assert_int_equal(o.http.idle_timeout_ms, 2000);
}

/* What fn printed on stdout. */
static char *stdout_of(int (*fn)(void))
{
    char tmpl[] = "/tmp/weft-test-settings-out-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    unlink(tmpl);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    int rc = fn();
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(rc, 1);
    off_t n = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    assert_int_equal(pread(fd, out, (size_t)n, 0), n);
    close(fd);
    return out;
}

static int help(void)
{
    return LOAD("--port", "1", "--help");
}

static void test_help(void **state)
{
    o.exporter = weft_trace_memory_exporter_new(4);
    weft_span_exporter_t *mine = o.exporter;
    char *out = stdout_of(help);
    assert_null(st);
    assert_int_equal(o.port, 8081); /* o unchanged */
    assert_ptr_equal(o.exporter, mine);
    static const char *const want[] = {
        "usage: svc [--config FILE] [flags]",
        "--config FILE",
        "--name string",
        "key name, default \"svc.t\", env SVC_T_NAME, range length 1..64",
        "key port, default 8081, env SVC_T_PORT, range 0..65535",
        "--host string",
        "--workers uint",
        "--log-level level",
        "default info, env SVC_T_LOG_LEVEL",
        "--access-log, --no-access-log",
        "--access-log-file string",
        "env SVC_T_ACCESS_LOG_FILE",
        "--otlp host:port",
        "key otlp, default none, env SVC_T_OTLP",
        "http.max_headers: uint",
        "http.shutdown_delay: duration",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(out, want[i])) fail_msg("--help lacks \"%s\":\n%s", want[i], out);
    free(out);
}

/* A load that must fail with rc and exactly want, leaving o and st alone. */
static void refused(int rc, int want_rc, const char *want)
{
    if (rc != want_rc) fail_msg("rc %d, wanted %d (%s)", rc, want_rc, err);
    assert_string_equal(err, want);
    assert_null(st);
    assert_string_equal(o.name, "svc.t");
    assert_int_equal(o.port, 8081);
    assert_null(o.exporter);
    assert_int_equal(weft_log_get_level(), WEFT_LOG_INFO);
}

static void test_bad_values(void **state)
{
    refused(LOAD("--workers", "many", "--log-level", "debug"), WEFT_EINVAL,
            "--workers: expected a whole number, got \"many\"");
    refused(LOAD("--workers", "257"), WEFT_EINVAL, "--workers: 257 is above the maximum 256");
    refused(LOAD("--port", "65536"), WEFT_EINVAL, "--port: 65536 is above the maximum 65535");
    refused(LOAD("--log-level", "loud"), WEFT_EINVAL,
            "--log-level: expected one of debug, info, warn, error, off, got \"loud\"");
    refused(LOAD("--name", "a b"), WEFT_EINVAL,
            "--name: expected letters, digits, '-', '_' and '.', got \"a b\"");
    refused(LOAD("--name", ""), WEFT_EINVAL, "--name: 0 bytes is below the minimum length 1");
    refused(LOAD("--nope"), WEFT_EINVAL, "--nope: unknown flag (see --help)");
    refused(LOAD("positional"), WEFT_EINVAL,
            "positional: unexpected argument (flags look like --name value)");
    refused(LOAD("--otlp", "bad..name:4318"), WEFT_EINVAL,
            "--otlp: expected a numeric IPv4 or IPv6 address or a host name as the host, got "
            "\"bad..name:4318\"");
    refused(LOAD("--otlp", "127.0.0.1:0"), WEFT_EINVAL,
            "--otlp: expected a port from 1 to 65535 (spans need somewhere to go), got "
            "\"127.0.0.1:0\"");
    refused(LOAD("--host", "localhost"), WEFT_EINVAL,
            "--host: expected a numeric IPv4 or IPv6 address to listen on (127.0.0.1 for "
            "localhost), got \"localhost\"");
    refused(LOAD("--otlp", "nohost"), WEFT_EINVAL,
            "--otlp: expected HOST:PORT (port 0-65535, [v6]:port), got \"nohost\"");
    setenv("SVC_T_PORT", "-1", 1);
    refused(LOAD0(), WEFT_EINVAL, "SVC_T_PORT: expected a whole number, got \"-1\"");
    unsetenv("SVC_T_PORT");
    setenv("SVC_T_NAME", "a/b", 1);
    refused(LOAD0(), WEFT_EINVAL,
            "SVC_T_NAME: expected letters, digits, '-', '_' and '.', got \"a/b\"");
    unsetenv("SVC_T_NAME");
    /* OpenTelemetry's variables, read for --otlp */
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
    refused(LOAD("--otlp", "127.0.0.1:4318"), WEFT_EINVAL,
            "OTEL_EXPORTER_OTLP_PROTOCOL: expected http/json or http/protobuf (not grpc), got "
            "\"grpc\"");
    unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");
    setenv("OTEL_EXPORTER_OTLP_HEADERS", "content-type=secret", 1);
    refused(LOAD("--otlp", "127.0.0.1:4318"), WEFT_EINVAL,
            "OTEL_EXPORTER_OTLP_HEADERS: Content-Type, Content-Encoding, Content-Length and "
            "Transfer-Encoding are the exporter's");
    unsetenv("OTEL_EXPORTER_OTLP_HEADERS");
    /* the file: FILE:LINE:COLUMN: key: what is wrong */
    static const struct {
        const char *text, *want;
    } files[] = {
        {"port: 70000\n", "1:7: port: 70000 is above the maximum 65535"},
        {"name: \"a/b\"\n", "1:7: name: expected letters, digits, '-', '_' and '.', got \"a/b\""},
        {"workers: 1\notlp: \"x..y:1\"\n",
         "2:7: otlp: expected a numeric IPv4 or IPv6 address or a host name as the host, got "
         "\"x..y:1\""},
        {"http:\n  max_headers: 0\n", "2:16: http.max_headers: 0 is below the minimum 1"},
        {"prot: 1\n", "1:1: prot: unknown key (did you mean \"port\"?)"},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const char *f = file_of(files[i].text);
        int rc = LOAD("--config", (char *)f);
        unlink(f);
        char want[256];
        snprintf(want, sizeof(want), "%s:%s", f, files[i].want);
        refused(rc, WEFT_EINVAL, want);
    }
    refused(LOAD("--config", "/nonexistent/weft.yaml"), WEFT_ENOENT,
            "/nonexistent/weft.yaml: cannot read: No such file or directory");
}

static void test_bad_calls(void **state)
{
    char *argv[] = {"svc"};
    o.name = NULL;
    assert_int_equal(weft_service_options_from_args(&o, 1, argv, &st, err, sizeof(err)),
                     WEFT_EINVAL);
    assert_non_null(strstr(err, "options: name must be set"));
    assert_null(st);
    o.name = "has space";
    assert_int_equal(weft_service_options_from_args(&o, 1, argv, &st, err, sizeof(err)),
                     WEFT_EINVAL);
    o.name = "svc";
    o.workers = 1000; /* a default out of the table's bounds */
    assert_int_equal(weft_service_options_from_args(&o, 1, argv, &st, err, sizeof(err)),
                     WEFT_EINVAL);
    assert_string_equal(err, "service: workers: default: 1000 is above the maximum 256");
    assert_int_equal(weft_service_options_from_args(&o, 1, argv, NULL, err, sizeof(err)),
                     WEFT_EINVAL);
    assert_int_equal(weft_service_options_from_args(NULL, 1, argv, &st, NULL, 0), WEFT_EINVAL);
    weft_service_settings_free(NULL);
}

static void test_otlp_replaces_an_exporter(void **state)
{
    o.exporter = weft_trace_memory_exporter_new(4); /* shut down by the call (ASan: no leak) */
    setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", 1);
    setenv("OTEL_RESOURCE_ATTRIBUTES", "team=core", 1);
    setenv("SVC_T_OTLP", "localhost:4318", 1);
    assert_int_equal(LOAD0(), 0);
    weft_otlp_stats_t s;
    assert_int_equal(weft_otlp_exporter_stats(o.exporter, &s), 0);
    /* without otlp, an exporter from code stays */
    teardown(NULL);
    setup(NULL);
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(4);
    o.exporter = mem;
    assert_int_equal(LOAD("--port", "1"), 0);
    assert_ptr_equal(o.exporter, mem);
}

static void test_registry(void **state)
{
    /* off by default */
    assert_int_equal(LOAD0(), 0);
    assert_null(o.registry.url);
    assert_int_equal(o.registry.check, WEFT_DISCOVERY_CHECK_HTTP);
    assert_int_equal(o.registry.check_interval_ms, 10000);
    assert_int_equal(o.registry.timeout_ms, 2000);
    teardown(NULL);
    setup(NULL);
    /* every flag */
    assert_int_equal(LOAD("--registry", "http://127.0.0.1:8500", "--registry-token", "t0k",
                          "--registry-id", "svc:1", "--registry-address", "10.0.0.7",
                          "--registry-tags", " blue, v1 ,,canary", "--registry-check", "ttl",
                          "--registry-check-interval", "2s", "--registry-check-timeout", "500ms",
                          "--registry-deregister-after", "5m", "--registry-timeout", "1s",
                          "--registry-resync", "0", "--registry-policy", "least_outstanding"),
                     0);
    assert_string_equal(o.registry.url, "http://127.0.0.1:8500");
    assert_string_equal(o.registry.token, "t0k");
    assert_string_equal(o.registry.id, "svc:1");
    assert_string_equal(o.registry.address, "10.0.0.7");
    assert_int_equal(o.registry.ntags, 3);
    assert_string_equal(o.registry.tags[0], "blue");
    assert_string_equal(o.registry.tags[1], "v1");
    assert_string_equal(o.registry.tags[2], "canary");
    assert_int_equal(o.registry.check, WEFT_DISCOVERY_CHECK_TTL);
    assert_int_equal(o.registry.check_interval_ms, 2000);
    assert_int_equal(o.registry.check_timeout_ms, 500);
    assert_int_equal(o.registry.deregister_after_ms, 300000);
    assert_int_equal(o.registry.timeout_ms, 1000);
    assert_int_equal(o.registry.resync_ms, 0);
    assert_int_equal(o.registry.policy, WEFT_DISCOVERY_LEAST_OUTSTANDING);
    teardown(NULL);
    setup(NULL);
    /* WEFT_REGISTRY is the host-wide default; the service's own variable wins */
    setenv("WEFT_REGISTRY", "http://10.0.0.1:8500", 1);
    setenv("WEFT_REGISTRY_TOKEN", "host-token", 1);
    assert_int_equal(LOAD0(), 0);
    assert_string_equal(o.registry.url, "http://10.0.0.1:8500");
    assert_string_equal(o.registry.token, "host-token");
    teardown(NULL);
    setup(NULL);
    setenv("SVC_T_REGISTRY", "127.0.0.1:9500", 1);
    setenv("SVC_T_REGISTRY_TAGS", "a,b", 1);
    assert_int_equal(LOAD0(), 0);
    assert_string_equal(o.registry.url, "127.0.0.1:9500");
    assert_int_equal(o.registry.ntags, 2);
    teardown(NULL);
    setup(NULL);
    /* the caller's options are the defaults: tags and check from code, "" turns it off */
    const char *tags[] = {"x", "y"};
    o.registry.url = "http://127.0.0.1:1";
    o.registry.tags = tags;
    o.registry.ntags = 2;
    o.registry.check = WEFT_DISCOVERY_CHECK_NONE;
    o.registry.check_interval_ms = 1500;
    assert_int_equal(LOAD("--registry", ""), 0);
    assert_null(o.registry.url);
    assert_int_equal(o.registry.ntags, 2);
    assert_string_equal(o.registry.tags[1], "y");
    assert_int_equal(o.registry.check, WEFT_DISCOVERY_CHECK_NONE);
    assert_int_equal(o.registry.check_interval_ms, 1500);
    teardown(NULL);
    setup(NULL);
    /* bad values, said where they came from */
    refused(LOAD("--registry", "https://127.0.0.1:8501"), WEFT_EINVAL,
            "--registry: https is not supported (the client has no TLS yet), got "
            "\"https://127.0.0.1:8501\"");
    refused(LOAD("--registry", "http://127.0.0.1"), WEFT_EINVAL,
            "--registry: expected http://HOST:PORT, got \"http://127.0.0.1\"");
    refused(LOAD("--registry-id", "a/b"), WEFT_EINVAL,
            "--registry-id: expected letters, digits, '-', '_', '.' and ':', got \"a/b\"");
    refused(LOAD("--registry-check-interval", "500ms"), WEFT_EINVAL,
            "--registry-check-interval: 500ms is below the minimum 1s");
    setenv("SVC_T_REGISTRY_CHECK", "script", 1);
    refused(LOAD0(), WEFT_EINVAL,
            "SVC_T_REGISTRY_CHECK: expected one of none, http, ttl, got \"script\"");
    unsetenv("SVC_T_REGISTRY_CHECK");
    const char *f = file_of("registry:\n  url: \"ftp://x:1\"\n");
    int rc = LOAD("--config", (char *)f);
    unlink(f);
    char want[256];
    snprintf(want, sizeof(want),
             "%s:2:8: registry.url: expected http://HOST:PORT, got "
             "\"ftp://x:1\"",
             f);
    refused(rc, WEFT_EINVAL, want);
}

static void test_a_service_from_the_settings(void **state)
{
    assert_int_equal(LOAD("--name", "made", "--port", "0", "--workers", "1", "--log-level", "error",
                          "--access-log-file", "/dev/null"),
                     0);
    weft_service_t *svc;
    assert_int_equal(weft_service_new(&o, &svc), 0);
    weft_service_free(svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_are_the_callers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_otlp_replaces_an_exporter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_service_from_the_settings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
