/*
 * fuzz_config.c - arbitrary bytes as a YAML config file against a table of every type:
 * no crash, no leak, and an error always comes with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "weft/config.h"

typedef struct {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    char *s;
    uint64_t dur, size;
    weft_conf_addr_t a;
    int e;
} fz_t;

static const char *const choices[] = {"a", "b", NULL};
static const weft_conf_option_t opts[] = {
    {.key = "b", .type = WEFT_CONF_BOOL, .offset = offsetof(fz_t, b)},
    {.key = "x.i", .type = WEFT_CONF_INT, .offset = offsetof(fz_t, i), .min = -5, .max = 5},
    {.key = "x.u", .type = WEFT_CONF_UINT, .offset = offsetof(fz_t, u)},
    {.key = "x.y.d", .type = WEFT_CONF_DOUBLE, .offset = offsetof(fz_t, d)},
    {.key = "s", .type = WEFT_CONF_STRING, .offset = offsetof(fz_t, s), .def = "q"},
    {.key = "dur", .type = WEFT_CONF_DURATION, .offset = offsetof(fz_t, dur)},
    {.key = "size", .type = WEFT_CONF_SIZE, .offset = offsetof(fz_t, size)},
    {.key = "addr", .type = WEFT_CONF_ADDR, .offset = offsetof(fz_t, a)},
    {.key = "e", .type = WEFT_CONF_ENUM, .offset = offsetof(fz_t, e), .choices = choices},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
    weft_conf_section_t sec = {.name = "f", .opts = opts, .n = 9, .target = &t};
    weft_conf_t conf;
    char err[512] = "";
    char *argv[] = {"fuzz"};
    int rc = weft_conf_load(&conf, &sec, 1, path, 1, argv, err, sizeof(err));
    close(fd);
    if (rc == 0) {
        if (!t.s) abort();
        weft_conf_free(&conf);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
