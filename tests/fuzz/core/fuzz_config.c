/*
 * fuzz_config.c - arbitrary bytes as a YAML config file against a table of every type (and,
 * when the input starts with a NUL byte, the rest as NUL-separated command-line arguments).
 *
 * Checks beyond "no crash, no leak, no sanitizer report": a failed load leaves exactly one
 * line of message, naming the file for file errors, and no strings or trees in the target; a
 * successful load leaves every value inside its bounds and every string owned, and every
 * node of a tree (keys "t" and "x.t") well-formed: positions in the file, at most
 * WEFT_CONF_MAX_NODES nodes, and every reader's error one line naming the file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "weft/config.h"
#include "weft/log.h"

typedef struct {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    char *s, *s2;
    uint64_t dur, size;
    weft_conf_addr_t a;
    int e;
    weft_log_level_t lv;
    const weft_conf_node_t *t, *xt;
} fz_t;

static const char *const choices[] = {"a", "b", "ccc", NULL};
static const weft_conf_option_t opts[] = {
    {.key = "b", .type = WEFT_CONF_BOOL, .offset = offsetof(fz_t, b), .flag = "b"},
    {.key = "x.i",
     .type = WEFT_CONF_INT,
     .offset = offsetof(fz_t, i),
     .min = -5,
     .max = 5,
     .flag = "i"},
    {.key = "x.u", .type = WEFT_CONF_UINT, .offset = offsetof(fz_t, u), .min = 1, .max = 1e6},
    {.key = "x.y.d",
     .type = WEFT_CONF_DOUBLE,
     .offset = offsetof(fz_t, d),
     .min = -1.5,
     .max = 2.5,
     .flag = "d"},
    {.key = "s",
     .type = WEFT_CONF_STRING,
     .offset = offsetof(fz_t, s),
     .def = "q",
     .min = 1,
     .max = 32,
     .flag = "s"},
    {.key = "x.s2", .type = WEFT_CONF_STRING, .offset = offsetof(fz_t, s2), .flag = "s2"},
    {.key = "dur",
     .type = WEFT_CONF_DURATION,
     .offset = offsetof(fz_t, dur),
     .def = "1s",
     .min = 100,
     .max = 86400000,
     .flag = "dur"},
    {.key = "size",
     .type = WEFT_CONF_SIZE,
     .offset = offsetof(fz_t, size),
     .min = 0,
     .max = 1ull << 40},
    {.key = "addr", .type = WEFT_CONF_ADDR, .offset = offsetof(fz_t, a), .flag = "addr"},
    {.key = "e", .type = WEFT_CONF_ENUM, .offset = offsetof(fz_t, e), .choices = choices},
    {.key = "log.level", .type = WEFT_CONF_LOGLEVEL, .offset = offsetof(fz_t, lv), .def = "info"},
    {.key = "t", .type = WEFT_CONF_TREE, .offset = offsetof(fz_t, t)},
    {.key = "x.t", .type = WEFT_CONF_TREE, .offset = offsetof(fz_t, xt)},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *fz_file; /* the file's name, as nodes give it */

static void check_error(int rc, const char *err)
{
    if (rc == 0) return;
    if (rc != WEFT_EINVAL || strchr(err, '\n') || strncmp(err, fz_file, strlen(fz_file)) != 0)
        abort();
}

/* Checks n and what is under it; returns the nodes seen. */
static size_t check_node(const weft_conf_node_t *n, int depth)
{
    const char *file;
    size_t line, col, count = 1;
    char err[1024];
    weft_conf_node_where(n, &file, &line, &col);
    if (!n || depth > WEFT_CONF_MAX_DEPTH || line < 1 || col < 1 || !file) abort();
    if (fz_file && strcmp(file, fz_file) != 0) abort();
    fz_file = file;
    char path[2048];
    size_t pl = weft_conf_node_path(n, path, sizeof(path));
    if (pl == 0 || pl != strlen(path) || strchr(path, '\n')) abort();
    size_t len = weft_conf_node_len(n);
    switch (weft_conf_node_kind(n)) {
    case WEFT_CONF_NODE_SCALAR: {
        size_t sl;
        const char *s = weft_conf_node_str(n, &sl);
        if (!s || s[sl] != 0 || len != 0) abort();
        bool b;
        uint64_t u;
        double d;
        int e;
        weft_conf_addr_t a;
        check_error(weft_conf_node_bool(n, &b, err, sizeof(err)), err);
        check_error(weft_conf_node_uint(n, 1, 100, &u, err, sizeof(err)), err);
        check_error(weft_conf_node_duration(n, 0, 0, &u, err, sizeof(err)), err);
        check_error(weft_conf_node_size(n, 0, 0, &u, err, sizeof(err)), err);
        check_error(weft_conf_node_addr(n, &a, err, sizeof(err)), err);
        check_error(weft_conf_node_enum(n, choices, &e, err, sizeof(err)), err);
        check_error(weft_conf_node_string(n, 1, 8, &s, err, sizeof(err)), err);
        if (weft_conf_node_percent(n, &d, err, sizeof(err)) == 0 && !(d >= 0 && d <= 100)) abort();
        check_error(weft_conf_node_percent(n, &d, err, sizeof(err)), err);
        if (weft_conf_node_rate(n, &d, err, sizeof(err)) == 0 && !(d > 0)) abort();
        check_error(weft_conf_node_rate(n, &d, err, sizeof(err)), err);
        check_error(weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, sizeof(err)), err);
        break;
    }
    case WEFT_CONF_NODE_MAP: {
        static const char *const allowed[] = {"name", "match", "retry", NULL};
        check_error(weft_conf_node_check_keys(n, allowed, err, sizeof(err)), err);
        check_error(weft_conf_node_require(n, "name", NULL, err, sizeof(err)), err);
        for (size_t i = 0; i < len; i++) {
            const char *k = weft_conf_node_key(n, i);
            if (!k || weft_conf_node_at(n, i) == NULL) abort();
            const weft_conf_node_t *first = weft_conf_node_get(n, k);
            if (!first) abort(); /* a key with a NUL byte is refused by the load */
            if (first != weft_conf_node_at(n, i)) abort(); /* keys are unique */
        }
    } /* fall through */
    case WEFT_CONF_NODE_SEQ:
        if (weft_conf_node_str(n, NULL) || weft_conf_node_at(n, len)) abort();
        for (size_t i = 0; i < len; i++) count += check_node(weft_conf_node_at(n, i), depth + 1);
        break;
    }
    return count;
}

static void check_success(const fz_t *t, const weft_conf_t *conf)
{
    fz_file = NULL;
    if (t->t && check_node(t->t, 1) > WEFT_CONF_MAX_NODES) abort();
    if (t->xt && check_node(t->xt, 1) > WEFT_CONF_MAX_NODES) abort();
    if (!t->t && !t->xt && conf->trees) abort();
    if (t->i < -5 || t->i > 5) abort();
    if (t->u > 1000000) abort(); /* 0 when not set: no default */
    if (t->d < -1.5 || t->d > 2.5) abort();
    if (!t->s || strlen(t->s) < 1 || strlen(t->s) > 32) abort();
    if (t->dur < 100 || t->dur > 86400000) abort();
    if (t->size > (1ull << 40)) abort();
    if (t->e < 0 || t->e > 2) abort();
    if (t->lv < WEFT_LOG_DEBUG || t->lv > WEFT_LOG_OFF) abort();
    if (strlen(t->a.host) >= sizeof(t->a.host)) abort();
    size_t strings = 1 + (t->s2 != NULL);
    if (conf->nowned != strings) abort();
    for (size_t k = 0; k < conf->nowned; k++)
        if (conf->owned[k] != t->s && conf->owned[k] != t->s2) abort();
}

static void check_failure(const fz_t *t, const weft_conf_t *conf, const char *err, const char *path,
                          int rc)
{
    if (!err[0] || strchr(err, '\n') || strchr(err, '\r')) abort();
    if (t->s || t->s2 || t->t || t->xt || conf->owned || conf->nowned || conf->trees) abort();
    if (rc != WEFT_EINVAL && rc != WEFT_ENOENT && rc != WEFT_ENOMEM) abort();
    if (path && rc != WEFT_ENOMEM &&
        (strncmp(err, path, strlen(path)) != 0 || err[strlen(path)] != ':'))
        abort();
}

static void fuzz_flags(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1), *argv[64];
    if (!copy) return;
    memcpy(copy, data, size);
    copy[size] = 0;
    int argc = 0;
    argv[argc++] = "fuzz";
    for (char *p = copy; p < copy + size && argc < 63; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;
    fz_t t;
    memset(&t, 0, sizeof(t));
    weft_conf_section_t sec = {.name = "f", .opts = opts, .n = NOPTS, .target = &t};
    weft_conf_t conf;
    char err[512] = "";
    int argi;
    int rc = weft_conf_load_args(&conf, &sec, 1, NULL, argc, argv, &argi, err, sizeof(err));
    if (rc == 0) {
        if (argi < 1 || argi > argc) abort();
        check_success(&t, &conf);
        weft_conf_free(&conf);
    } else {
        check_failure(&t, &conf, err, NULL, rc);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == 0) {
        fuzz_flags(data + 1, size - 1);
        return 0;
    }
    int fd = memfd_create("fuzz_config", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    fz_t t;
    memset(&t, 0, sizeof(t));
    weft_conf_section_t sec = {.name = "f", .opts = opts, .n = NOPTS, .target = &t};
    weft_conf_t conf;
    char err[512] = "";
    char *argv[] = {"fuzz"};
    int rc = weft_conf_load(&conf, &sec, 1, path, 1, argv, err, sizeof(err));
    close(fd);
    if (rc == 0) {
        check_success(&t, &conf);
        weft_conf_free(&conf);
    } else {
        check_failure(&t, &conf, err, path, rc);
    }
    return 0;
}
