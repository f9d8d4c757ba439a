/**
 * weft/config.h - configuration declared in one table per module.
 *
 * Each module declares its settings in a table of weft_conf_option_t: key (dotted YAML
 * path), type, where the value goes (offset into the module's struct), default, bounds,
 * flag, environment variable and help. The same tables drive YAML parsing (libyaml),
 * environment overrides, command-line flags, validation, `--help` and the Markdown
 * reference. Precedence: defaults, then the file, then the environment, then flags.
 *
 * Errors name where the bad value came from, in one line:
 *   weft.yaml:7:12: http.max_headers: 5000 is above the maximum 1000
 *   WEFT_WORKERS: expected a whole number, got "many"
 *   --api: expected HOST:PORT, got "localhost"
 * and callers exit with status 2.
 */
#ifndef WEFT_CONFIG_H
#define WEFT_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_CONF_MAX_FILE (1u << 20) /* bytes of YAML read at most */

typedef enum {
    WEFT_CONF_BOOL,     /* bool: true/false, yes/no, on/off */
    WEFT_CONF_INT,      /* int64_t */
    WEFT_CONF_UINT,     /* uint64_t */
    WEFT_CONF_DOUBLE,   /* double */
    WEFT_CONF_STRING,   /* char *, owned by the weft_conf_t */
    WEFT_CONF_DURATION, /* uint64_t milliseconds, from "250ms", "10s", "5m", "1h", "1m30s" */
    WEFT_CONF_SIZE,     /* uint64_t bytes, from "512", "64KiB", "1MiB", "2GiB", "10KB" */
    WEFT_CONF_ADDR,     /* weft_conf_addr_t, from "host:port" or "[v6]:port" */
    WEFT_CONF_ENUM,     /* int: index into choices */
} weft_conf_type_t;

typedef struct weft_conf_addr_s {
    char host[256];
    uint16_t port;
} weft_conf_addr_t;

typedef struct weft_conf_option_s {
    const char *key; /* dotted path in the YAML file, e.g. "http.max_headers" */
    weft_conf_type_t type;
    size_t offset;              /* where the value goes in the section's struct */
    const char *def;            /* default, in the file's syntax; NULL: zero/empty */
    double min, max;            /* inclusive bounds for numbers, durations (ms), sizes;
                                   both 0: unbounded */
    const char *flag;           /* long flag without dashes, or NULL */
    const char *env;            /* environment variable, or NULL */
    const char *const *choices; /* WEFT_CONF_ENUM: NULL-terminated */
    const char *help;
} weft_conf_option_t;

typedef struct weft_conf_section_s {
    const char *name;
    const weft_conf_option_t *opts;
    size_t n;
    void *target; /* the struct the offsets refer to */
} weft_conf_section_t;

/** Owns what loading allocated (strings); free with weft_conf_free. */
typedef struct weft_conf_s {
    char **owned;
    size_t nowned, capowned;
} weft_conf_t;

/**
 * Loads the settings of secs into their targets: defaults, then the YAML file (file, or the
 * `--config FILE` flag when file is NULL), then environment variables, then flags from
 * argv[1..argc-1] (`--flag value`, `--flag=value`, `--flag`/`--no-flag` for booleans).
 * Positional arguments and unknown flags are errors. On error, writes one line (without
 * the trailing newline) into err and returns WEFT_EINVAL (bad value, unknown key or flag)
 * or WEFT_ENOENT (the file cannot be read) or WEFT_ENOMEM; conf holds nothing to free then.
 */
WEFT_EXTERN int weft_conf_load(weft_conf_t *conf, const weft_conf_section_t *secs, size_t nsecs,
                               const char *file, int argc, char **argv, char *err, size_t errlen);

/** Frees what weft_conf_load allocated (the string values in the targets). */
WEFT_EXTERN void weft_conf_free(weft_conf_t *conf);

/** Prints every option: flag (or key), type, default, environment variable, bounds, help. */
WEFT_EXTERN void weft_conf_help(const weft_conf_section_t *secs, size_t nsecs, FILE *out);

/** Prints a Markdown table of every option. */
WEFT_EXTERN void weft_conf_markdown(const weft_conf_section_t *secs, size_t nsecs, FILE *out);

/**
 * Parses one value of type t as the table would (no bounds check). For tests and for
 * callers that take values from elsewhere. Returns 0 or WEFT_EINVAL with a reason in why.
 */
WEFT_EXTERN int weft_conf_parse_value(const weft_conf_option_t *opt, const char *text, void *out,
                                      char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
