/**
 * weft/config.h - configuration declared in one table per module.
 *
 * Each module declares its settings in a table of weft_conf_option_t: key (dotted YAML
 * path), type, where the value goes (offset into the module's struct), default, bounds,
 * flag, environment variable and help. The same tables drive YAML parsing (libyaml),
 * environment overrides, command-line flags, validation, `--help` and the Markdown
 * reference. Precedence: defaults, then the file, then the environment, then flags; a
 * later source replaces what an earlier one set.
 *
 * Errors are one line, naming where the bad value came from and which key it is for:
 *   weft.yaml:7:12: http.max_headers: 5000 is above the maximum 1000
 *   weft.yaml:3:1: htpp: unknown key (did you mean "http"?)
 *   WEFT_WORKERS: expected a whole number, got "many"
 *   --api: expected HOST:PORT (port 0-65535, [v6]:port), got "localhost"
 * FILE:LINE:COLUMN is 1-based and points at the offending value (at the key for unknown
 * and duplicate keys). Values quoted in messages are escaped and cut to 64 bytes, so a
 * message never spans lines. Callers print it and exit with status 2.
 *
 * Value syntax, the same in defaults, the file, the environment and flags:
 *   BOOL      true/false, yes/no, on/off, 1/0 (any case)
 *   INT, UINT decimal digits with an optional sign ("-" only for INT); no junk, no overflow
 *   DOUBLE    decimal, optional fraction and exponent ("0.25", "-1e3"); not inf or nan
 *   STRING    any text without NUL bytes; min/max, when set, bound its length in bytes
 *   DURATION  number+unit groups from the largest unit down: "250ms", "10s", "1m30s",
 *             "1.5h", "7d" (units d h m s ms); "0" alone is zero; whole milliseconds
 *   SIZE      number with an optional unit: "512", "512B", "64KiB", "1.5MiB", "2GiB",
 *             "1TiB" (powers of 1024) or "10KB", "5MB", "1GB", "1TB" (powers of 1000);
 *             units in any case; whole bytes
 *   ADDR      "host:port" (host: letters, digits, '.', '-', '_') or "[v6addr]:port";
 *             port 0-65535
 *   ENUM      one of choices, exactly
 *   LOGLEVEL  debug, info, warn (or warning), error, off
 * In the file, a key with no value (`key:`, `key: ~`, `key: null`) is an error; quote a
 * string to set it to "" or "null". Keys may be nested (`http: {max_headers: 5}`) or
 * dotted (`http.max_headers: 5`); setting one key twice either way is an error. Anchors and
 * aliases of single values work; merge keys (`<<`) and aliases of mappings do not. The
 * file may hold one YAML document (an empty second one is ignored), nested at most
 * WEFT_CONF_MAX_DEPTH levels. An environment variable that is set, even to "", is a value.
 *
 * Structured settings (WEFT_CONF_TREE): a key whose value is whatever YAML the file holds
 * there (a mapping, a list or a single value, nested), kept as a read-only tree of
 * weft_conf_node_t that the module declaring it reads and validates itself, with the
 * readers below, after the load. Every node knows its FILE:LINE:COLUMN and its path
 * ("gateway.routes[0].retry.attempts"), so the module's errors look like the loader's:
 *   weft.yaml:9:26: gateway.routes[0].retry.attempts: expected a whole number, got "two"
 * Single values in a tree are kept as written (never converted); the readers parse them
 * with exactly the syntax above. Keys of a mapping in a tree must be single values, unique
 * within it; values may not be null (`key:`); aliases of single values work, of mappings
 * and lists do not; a tree holds at most WEFT_CONF_MAX_NODES nodes. A tree comes from the
 * file only: no default, no environment variable, no flag.
 */
#ifndef WEFT_CONFIG_H
#define WEFT_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_CONF_MAX_FILE  (1u << 20) /* bytes of YAML read at most */
#define WEFT_CONF_MAX_DEPTH 16         /* components of a key, levels of nested mappings */
#define WEFT_CONF_MAX_KEY   255        /* bytes of a dotted key */
#define WEFT_CONF_MAX_NODES 65536      /* nodes in one WEFT_CONF_TREE value */

typedef enum {
    WEFT_CONF_BOOL,     /* bool */
    WEFT_CONF_INT,      /* int64_t */
    WEFT_CONF_UINT,     /* uint64_t */
    WEFT_CONF_DOUBLE,   /* double */
    WEFT_CONF_STRING,   /* char *, owned by the weft_conf_t; NULL when no default */
    WEFT_CONF_DURATION, /* uint64_t milliseconds */
    WEFT_CONF_SIZE,     /* uint64_t bytes */
    WEFT_CONF_ADDR,     /* weft_conf_addr_t */
    WEFT_CONF_ENUM,     /* int: index into choices */
    WEFT_CONF_LOGLEVEL, /* weft_log_level_t (weft/log.h) */
    WEFT_CONF_TREE,     /* const weft_conf_node_t *, owned by the weft_conf_t; NULL when
                           the file does not set it. No def, flag, env, bounds or check;
                           no key may be nested below it */
} weft_conf_type_t;

/** A node of a WEFT_CONF_TREE value: read with the weft_conf_node_* functions below. */
typedef struct weft_conf_node_s weft_conf_node_t;

typedef enum {
    WEFT_CONF_NODE_SCALAR, /* a single value, kept as written */
    WEFT_CONF_NODE_SEQ,    /* a list */
    WEFT_CONF_NODE_MAP,    /* a mapping; its pairs in file order */
} weft_conf_node_kind_t;

typedef struct weft_conf_addr_s {
    char host[256]; /* without brackets: "127.0.0.1", "::1", or a name ("localhost")
                       unless the option resolves names (weft_conf_option_t.resolve) */
    uint16_t port;
} weft_conf_addr_t;

/**
 * One setting. Bounds are inclusive and apply to INT, UINT, DOUBLE, DURATION (in ms), SIZE
 * (in bytes) and STRING (length in bytes); min == max == 0 means unbounded, and INFINITY /
 * -INFINITY (<math.h>) leave one side open. Integers are compared exactly, not as doubles.
 */
typedef struct weft_conf_option_s {
    const char *key; /* dotted path in the YAML file, e.g. "http.max_headers"; letters,
                        digits, '_' and '-' between dots */
    weft_conf_type_t type;
    size_t offset;              /* where the value goes in the section's struct */
    const char *def;            /* default, in the file's syntax; NULL: zero (strings NULL) */
    double min, max;            /* inclusive bounds, see above */
    const char *flag;           /* long flag without dashes, e.g. "log-level", or NULL */
    const char *env;            /* environment variable, e.g. "WEFT_WORKERS", or NULL */
    const char *const *choices; /* WEFT_CONF_ENUM: NULL-terminated, at least one */
    const char *help;           /* one line, for --help and the reference */
    bool resolve;               /* WEFT_CONF_ADDR: a host name is looked up when the value
                                   is loaded (getaddrinfo; an IPv4 address first) and stored
                                   as the numeric address, so a name that does not resolve is
                                   a configuration error naming the key, not a failure to bind
                                   later. Without it a name is kept as written (for
                                   addresses a client looks up when it connects). Listen
                                   addresses set it ("localhost:8500") */
    /* Optional: what the type and bounds cannot say ("a name of letters and digits").
     * Called with the value just stored (value points at the option's storage; for STRING
     * at the char *), after parsing and the bounds check, for the default too; returns
     * NULL, or what is wrong as a constant phrase, which the load reports like any other
     * bad value: "weft.yaml:3:7: name: <phrase>, got \"a b\"". Must not keep value. */
    const char *(*check)(const void *value);
    bool secret; /* the value may hold a credential (an API key in headers): a check's
                    error names the key and what is wrong, never quotes the value */
} weft_conf_option_t;

/** A module's table and the struct its offsets refer to. */
typedef struct weft_conf_section_s {
    const char *name; /* the module, e.g. "http"; names the table in table errors */
    const weft_conf_option_t *opts;
    size_t n;
    void *target; /* the struct the offsets refer to */
} weft_conf_section_t;

/** What a load produced and owns: the string values and the trees. Free with
 * weft_conf_free. */
typedef struct weft_conf_s {
    char **owned; /* strings currently stored in targets */
    size_t nowned, capowned;
    struct weft_arena_s *trees; /* the nodes and text of WEFT_CONF_TREE values, or NULL */
    const char *file;           /* the YAML file that was read (argv's --config or the file
                                   argument), or NULL; points into argv or at the argument */
} weft_conf_t;

/**
 * Fills the targets of secs: every option first gets its default, then values from the
 * YAML file, then from environment variables, then from flags in argv[1..argc-1]:
 *   --name value, --name=value; booleans: --name, --no-name, --name=false
 *   --config FILE, --config=FILE: the YAML file to read (replaces the file argument)
 * A flag's value may not start with "--" unless written --name=value. Positional
 * arguments (not starting with "--") and `--` are errors here; see weft_conf_load_args.
 * `--help` is not handled: callers look for it before loading (it is an unknown flag).
 *
 * conf: filled on success (any previous contents are ignored, not freed).
 * file: the YAML file to read when argv has no --config; NULL for none.
 * err:  receives one line without a newline on failure (may be NULL when errlen is 0).
 * Returns 0, or WEFT_EINVAL (a bad value, key, flag or table; err says which),
 * WEFT_ENOENT (the file cannot be read) or WEFT_ENOMEM. On failure conf owns nothing,
 * string fields of the targets are NULL and other fields may hold partial values.
 * Reads the environment; call at start-up, not concurrently with setenv.
 */
WEFT_EXTERN int weft_conf_load(weft_conf_t *conf, const weft_conf_section_t *secs, size_t nsecs,
                               const char *file, int argc, char **argv, char *err, size_t errlen);

/**
 * Like weft_conf_load, but flags end at the first argument that does not start with "--"
 * or after an argument `--`; *argi receives the index of the first argument left for the
 * caller (argc when none), e.g. a subcommand or file names. Flags after it are not read.
 */
WEFT_EXTERN int weft_conf_load_args(weft_conf_t *conf, const weft_conf_section_t *secs,
                                    size_t nsecs, const char *file, int argc, char **argv,
                                    int *argi, char *err, size_t errlen);

/** Frees what a load allocated; string and tree fields of the targets dangle afterwards. */
WEFT_EXTERN void weft_conf_free(weft_conf_t *conf);

/**
 * Checks the tables themselves: keys well-formed and unique (no key is also the parent of
 * another), flags and environment variables well-formed and unique, choices present for
 * ENUM, bounds ordered and meaningful for the type, every default valid and in bounds.
 * Returns 0 or WEFT_EINVAL with "SECTION: KEY: problem" in err. Loading runs it first;
 * call it from a unit test to catch a broken table without loading.
 */
WEFT_EXTERN int weft_conf_check(const weft_conf_section_t *secs, size_t nsecs, char *err,
                                size_t errlen);

/**
 * Prints a `--help` block for every option: flag (or key for file-only settings) and
 * type, help, then key, default, environment variable, range or choices. Starts with the
 * --config line. Writes to out; allocates nothing.
 */
WEFT_EXTERN void weft_conf_help(const weft_conf_section_t *secs, size_t nsecs, FILE *out);

/**
 * Prints the Markdown reference: one table row per option (key, type, default, flag,
 * environment, range or choices, description), then the syntax of each type used.
 */
WEFT_EXTERN void weft_conf_markdown(const weft_conf_section_t *secs, size_t nsecs, FILE *out);

/**
 * Parses one value of opt's type as the table would, without the bounds check. out points
 * at storage of the option's type; for STRING it receives text itself (not a copy).
 * Returns 0 or WEFT_EINVAL with the reason in why ("expected a whole number, got \"x\"").
 */
WEFT_EXTERN int weft_conf_parse_value(const weft_conf_option_t *opt, const char *text, void *out,
                                      char *why, size_t whylen);

/*
 * Reading a WEFT_CONF_TREE value. Nodes belong to the weft_conf_t that loaded them and live
 * until weft_conf_free; strings returned point into them. The readers take NULL nodes (a
 * key that is absent): the accessors then return 0 or NULL, the checking readers fail
 * with "no value". Every error these functions write is one line,
 *   FILE:LINE:COLUMN: PATH: what is wrong
 * with the position of the node (of its key, for an unknown or duplicate key) and its path
 * from the option's key ("gateway.routes[1].upstream.targets[0]"; a key that is not made
 * of letters, digits, '_' and '-' is written ["like this"]). They return 0 or WEFT_EINVAL.
 *
 * Walking the routes of the gateway (routes: the option's field, err/errlen the caller's):
 *   static const char *const keys[] = {"name", "match", "service", "timeout", ..., NULL};
 *   if (weft_conf_node_expect(routes, WEFT_CONF_NODE_SEQ, err, errlen)) return WEFT_EINVAL;
 *   for (size_t i = 0; i < weft_conf_node_len(routes); i++) {
 *       const weft_conf_node_t *r = weft_conf_node_at(routes, i), *name, *t;
 *       uint64_t timeout_ms = 15000;
 *       if (weft_conf_node_check_keys(r, keys, err, errlen) ||
 *           weft_conf_node_require(r, "name", &name, err, errlen)) return WEFT_EINVAL;
 *       if ((t = weft_conf_node_get(r, "timeout")) &&
 *           weft_conf_node_duration(t, 1, 3600000, &timeout_ms, err, errlen))
 *           return WEFT_EINVAL;
 *   }
 */

/** The kind of n; WEFT_CONF_NODE_SCALAR for NULL. */
WEFT_EXTERN weft_conf_node_kind_t weft_conf_node_kind(const weft_conf_node_t *n);

/** Items of a list, pairs of a mapping; 0 for a single value or NULL. */
WEFT_EXTERN size_t weft_conf_node_len(const weft_conf_node_t *n);

/** The i-th item of a list, or the value of the i-th pair of a mapping (file order); NULL
 * when i is out of range or n is a single value. */
WEFT_EXTERN const weft_conf_node_t *weft_conf_node_at(const weft_conf_node_t *n, size_t i);

/** The key of the i-th pair of a mapping (NUL-terminated, as written); NULL when n is not a
 * mapping or i is out of range. */
WEFT_EXTERN const char *weft_conf_node_key(const weft_conf_node_t *n, size_t i);

/** The value of key in mapping n (keys compared exactly), or NULL: absent, or n not a
 * mapping. Linear in the pairs. */
WEFT_EXTERN const weft_conf_node_t *weft_conf_node_get(const weft_conf_node_t *n, const char *key);

/** The text of a single value as written (NUL-terminated; *len, when len is not NULL,
 * receives its length, which a "\0" escape makes differ from strlen), or NULL when n is
 * a list, a mapping or NULL. */
WEFT_EXTERN const char *weft_conf_node_str(const weft_conf_node_t *n, size_t *len);

/** True when a single value was written in quotes ('x' or "x") or as a block (| or >). */
WEFT_EXTERN bool weft_conf_node_quoted(const weft_conf_node_t *n);

/** Where n was written: *file the file name as messages show it (escaped), *line and
 * *column 1-based (a column counts characters). Any output may be NULL. 0 for a NULL n. */
WEFT_EXTERN void weft_conf_node_where(const weft_conf_node_t *n, const char **file, size_t *line,
                                      size_t *column);

/** Writes n's path ("gateway.routes[0].retry") into out (always NUL-terminated, cut to
 * fit, escaped for a message). Returns the length written. */
WEFT_EXTERN size_t weft_conf_node_path(const weft_conf_node_t *n, char *out, size_t outlen);

/** Writes "FILE:LINE:COLUMN: PATH: " and the formatted text into err (one line) and
 * returns WEFT_EINVAL: for what a module finds wrong beyond syntax ("service and upstream
 * exclude each other"). Input quoted in fmt's arguments should be escaped by the caller. */
WEFT_EXTERN int weft_conf_node_errorf(const weft_conf_node_t *n, char *err, size_t errlen,
                                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** Fails unless n is of kind ("PATH: expected a list, got a mapping"). */
WEFT_EXTERN int weft_conf_node_expect(const weft_conf_node_t *n, weft_conf_node_kind_t kind,
                                      char *err, size_t errlen);

/** Fails unless n is a mapping whose keys are all in allowed (NULL-terminated): the first
 * other key in file order is reported at its position as
 * "PATH.key: unknown key (did you mean \"retry\"?)", the suggestion only when one
 * allowed key is close. */
WEFT_EXTERN int weft_conf_node_check_keys(const weft_conf_node_t *n, const char *const *allowed,
                                          char *err, size_t errlen);

/** *out = the value of key in mapping n; fails at the mapping, when key is absent, with
 * "PATH: missing key \"service\"" (or when n is not a mapping). */
WEFT_EXTERN int weft_conf_node_require(const weft_conf_node_t *n, const char *key,
                                       const weft_conf_node_t **out, char *err, size_t errlen);

/**
 * Parses single value n as opt's type would be in the table (opt->key is not used): the
 * syntax, then the bounds, then opt->check. out is storage of the option's type; a STRING
 * gets a pointer into the tree. Any type but TREE. The readers below are this with an
 * option filled in.
 */
WEFT_EXTERN int weft_conf_node_value(const weft_conf_node_t *n, const weft_conf_option_t *opt,
                                     void *out, char *err, size_t errlen);

/* Typed readers: the syntax of the type of the same name (see the top of this file);
 * inclusive bounds, min == max == 0 for none (UINT64_MAX: no maximum), compared as the
 * tables compare them (a bound above 2^53 is rounded to a double). *out is written only
 * on success. */
WEFT_EXTERN int weft_conf_node_bool(const weft_conf_node_t *n, bool *out, char *err, size_t errlen);
WEFT_EXTERN int weft_conf_node_uint(const weft_conf_node_t *n, uint64_t min, uint64_t max,
                                    uint64_t *out, char *err, size_t errlen);
WEFT_EXTERN int weft_conf_node_duration(const weft_conf_node_t *n, uint64_t min_ms, uint64_t max_ms,
                                        uint64_t *ms, char *err, size_t errlen);
WEFT_EXTERN int weft_conf_node_size(const weft_conf_node_t *n, uint64_t min, uint64_t max,
                                    uint64_t *bytes, char *err, size_t errlen);
/* Host names are kept as written (not resolved). */
WEFT_EXTERN int weft_conf_node_addr(const weft_conf_node_t *n, weft_conf_addr_t *out, char *err,
                                    size_t errlen);
/* *out: the index in choices (NULL-terminated) of the value, which must match exactly. */
WEFT_EXTERN int weft_conf_node_enum(const weft_conf_node_t *n, const char *const *choices, int *out,
                                    char *err, size_t errlen);
/* *out points into the tree; min_len/max_len bound its length in bytes (0, 0: none). */
WEFT_EXTERN int weft_conf_node_string(const weft_conf_node_t *n, size_t min_len, size_t max_len,
                                      const char **out, char *err, size_t errlen);
/* "50%", "99.9%", "0%": a decimal number and '%', 0 to 100; *out the number (50.0). */
WEFT_EXTERN int weft_conf_node_percent(const weft_conf_node_t *n, double *out, char *err,
                                       size_t errlen);
/* "100/s", "10/m", "1/h", "2.5/s": a decimal number above 0, '/', and s, m or h; *out the
 * rate per second (10/m: 0.1666...). */
WEFT_EXTERN int weft_conf_node_rate(const weft_conf_node_t *n, double *per_second, char *err,
                                    size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
