/*
 * cli_int.h - what the command-line frame (cli.c) and the commands (cli_registry.c,
 * cli_traces.c) share: a parsed command line, and the tables of commands.
 */
#ifndef WEFT_CMD_CLI_INT_H
#define WEFT_CMD_CLI_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "cmd/cli_http.h"
#include "cmd/table.h"

/* Which flags a command takes: bits of weft__cli_cmd_t.flags (cli.c's flag table says
 * which bit each flag needs). */
#define WEFT__CLI_ALL      0x1u /* every command: --api, --token, --timeout, --json, --help */
#define WEFT__CLI_TABLE    0x2u /* commands that print a table: --wide, --no-color */
#define WEFT__CLI_REGISTER 0x4u /* --replace-existing-checks */
#define WEFT__CLI_TRACES                                                                           \
    0x8u /* --service, --operation, --min-duration, --max-duration,                                \
            --tag, --lookback, --limit */

/* A flag that may be given several times (--tag): its values in order, into argv. */
#define WEFT__CLI_LIST_MAX 16
typedef struct weft__cli_list_s {
    const char *v[WEFT__CLI_LIST_MAX];
    int n;
} weft__cli_list_t;

typedef struct weft__cli_cmd_s weft__cli_cmd_t;

/** A parsed command line, ready to run. */
typedef struct weft__cli_s {
    const weft__cli_cmd_t *cmd;
    const char *arg[2]; /* positional arguments, into argv */
    int nargs;
    const char *api_spec, *token, *timeout; /* flags as given (NULL: not given) */
    bool json, wide, no_color, replace, help;
    const char *service, *operation, *min_duration, *max_duration, *lookback, *limit;
    weft__cli_list_t tags;    /* --tag k=v, as given */
    weft__api_t api;          /* settled: flag, environment or default */
    weft__table_opts_t table; /* settled: --wide, the terminal, colours */
} weft__cli_t;

/** A command. */
struct weft__cli_cmd_s {
    const char *name;
    const char *args;             /* synopsis of the positional arguments: "NAME", "[NAME]" */
    int min_args, max_args;       /* at most 2 */
    unsigned flags;               /* WEFT__CLI_* bits */
    const char *summary;          /* one line, for `weft help` */
    const char *help;             /* paragraphs for `weft CMD --help`, each line ending in \n */
    int (*run)(weft__cli_t *cli); /* returns the exit status */
};

/** The registry's commands (cli_registry.c). */
extern const weft__cli_cmd_t weft__cli_cmds[];
extern const size_t weft__cli_ncmds;

/** The trace store's commands: traces, trace (cli_traces.c). */
extern const weft__cli_cmd_t weft__cli_trace_cmds[];
extern const size_t weft__cli_trace_ncmds;

/** Prints "weft CMD: <message>" and where to read more on stderr; returns 2. */
__attribute__((format(printf, 2, 3))) int weft__cli_usage_error(const weft__cli_cmd_t *c,
                                                                const char *fmt, ...);

#endif
