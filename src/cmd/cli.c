/*
 * cli.c - the frame of weft's client commands: flags, arguments, help, the API's address.
 *
 * The commands themselves (the registry's in cli_registry.c, the trace store's in
 * cli_traces.c) are rows of tables (name, arguments, which flags, help, function); the
 * flags are rows of this file's table (name, value, help, which commands take them). The
 * parser, the usage errors, `weft CMD --help` and the command list of `weft help` come from
 * those tables. Flags and arguments mix in any order, `--name value` or `--name=value`;
 * `--` ends the flags; "-" is an argument. A flag marked `many` (--tag) may be given up to
 * WEFT__CLI_LIST_MAX times, its values kept in order; any other given twice keeps the last.
 *
 * Why not weft_conf (weft/config.h), which drives `weft serve`: it is made for a daemon's
 * settings (a YAML file, one environment variable per key, no positional arguments), while
 * these flags take a chain of variables (--api: WEFT_API_ADDR, then the consul CLI's
 * CONSUL_HTTP_ADDR; an empty variable counts as unset, as for consul) and arguments among
 * them. Its value syntax is still used for --timeout (weft_conf_parse_value), so that a
 * duration reads as everywhere in weft.
 *
 * Settling (after parsing, before the command runs): the API's URL (--api, then the
 * variables, then http://127.0.0.1:8500; a bad one is a usage error naming its source),
 * the token (--token, then CONSUL_HTTP_TOKEN), the timeout, and how tables print: cut to
 * the terminal's width and coloured only when standard output is a terminal, NO_COLOR is
 * unset or empty, TERM is not "dumb" and --no-color was not given.
 *
 * Exit status: the command's; 2 for usage errors; 1 when standard output could not be
 * written. Threads: the main thread only.
 */
#include "cmd/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cmd/cli_int.h"
#include "weft/weft.h"

#define DEFAULT_API     "http://127.0.0.1:8500"
#define DEFAULT_TIMEOUT "10s"

typedef struct flag_s {
    const char *name;    /* without the dashes */
    const char *metavar; /* the value's name in help; NULL: a boolean flag */
    size_t offset;       /* into weft__cli_t: const char *, bool, or (many) weft__cli_list_t */
    bool many;           /* may be repeated: the values go into a weft__cli_list_t */
    unsigned cmds;       /* WEFT__CLI_* bits of the commands that take it */
    const char *help;    /* one line */
    const char *def;     /* where the value comes from without the flag, or NULL */
} flag_t;

static const flag_t flags[] = {
    {"api", "URL", offsetof(weft__cli_t, api_spec), false, WEFT__CLI_ALL,
     "the API: [http://]HOST[:PORT] (port 80 if left out)",
     "$WEFT_API_ADDR, $CONSUL_HTTP_ADDR, " DEFAULT_API},
    {"token", "TOKEN", offsetof(weft__cli_t, token), false, WEFT__CLI_ALL,
     "ACL token, sent as X-Consul-Token", "$CONSUL_HTTP_TOKEN"},
    {"timeout", "DURATION", offsetof(weft__cli_t, timeout), false, WEFT__CLI_ALL,
     "longest wait for each request, connecting included (500ms, 10s, 1m)", DEFAULT_TIMEOUT},
    {"json", NULL, offsetof(weft__cli_t, json), false, WEFT__CLI_ALL,
     "print JSON for scripts instead of text", NULL},
    {"wide", NULL, offsetof(weft__cli_t, wide), false, WEFT__CLI_TABLE, "do not cut long values",
     NULL},
    {"no-color", NULL, offsetof(weft__cli_t, no_color), false, WEFT__CLI_TABLE,
     "no colours (they are used only on a terminal, without NO_COLOR)", NULL},
    {"replace-existing-checks", NULL, offsetof(weft__cli_t, replace), false, WEFT__CLI_REGISTER,
     "drop the instance's checks that FILE leaves out", NULL},
    {"service", "NAME", offsetof(weft__cli_t, service), false, WEFT__CLI_TRACES,
     "traces with a span of this service (required) meeting the flags below", NULL},
    {"operation", "NAME", offsetof(weft__cli_t, operation), false, WEFT__CLI_TRACES,
     "the span's operation (its name)", NULL},
    {"min-duration", "DURATION", offsetof(weft__cli_t, min_duration), false, WEFT__CLI_TRACES,
     "the span lasted at least this long (100ms, 1.5s, 2m)", NULL},
    {"max-duration", "DURATION", offsetof(weft__cli_t, max_duration), false, WEFT__CLI_TRACES,
     "the span lasted at most this long", NULL},
    {"tag", "KEY=VALUE", offsetof(weft__cli_t, tags), true, WEFT__CLI_TRACES,
     "the span or its resource has this attribute (repeatable: all must hold)", NULL},
    {"lookback", "DURATION", offsetof(weft__cli_t, lookback), false, WEFT__CLI_TRACES,
     "the span started within this long before now (30m, 1h, 2d)", "24h (the API's)"},
    {"limit", "N", offsetof(weft__cli_t, limit), false, WEFT__CLI_TRACES,
     "at most N traces, 1 to 1000", "20 (the API's)"},
    {"help", NULL, offsetof(weft__cli_t, help), false, WEFT__CLI_ALL, "this text", NULL},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The commands, a table per subsystem, in the order `weft help` lists them. */
static const struct {
    const weft__cli_cmd_t *cmds;
    const size_t *n;
    const char *title; /* the heading of the group in `weft help` */
} groups[] = {
    {weft__cli_cmds, &weft__cli_ncmds, "the registry, through the API of a running `weft serve`"},
    {weft__cli_trace_cmds, &weft__cli_trace_ncmds,
     "traces, from the trace store of a running `weft serve` (through the same API)"},
};

void weft__cli_usage(FILE *f)
{
    for (size_t g = 0; g < N(groups); g++) {
        fprintf(f, "\n%s:\n", groups[g].title);
        for (size_t i = 0; i < *groups[g].n; i++) {
            const weft__cli_cmd_t *c = &groups[g].cmds[i];
            char head[64];
            snprintf(head, sizeof(head), "%s %s", c->name, c->args);
            fprintf(f, "  %-26s%s\n", head, c->summary);
        }
    }
}

static void cmd_help(const weft__cli_cmd_t *c, FILE *f)
{
    fprintf(f, "usage: weft %s%s%s [flags]\n\n%s\nflags:\n", c->name, *c->args ? " " : "", c->args,
            c->help);
    int width = 0;
    char head[N(flags)][64];
    for (size_t i = 0; i < N(flags); i++) {
        int n = snprintf(head[i], sizeof(head[i]), "--%s%s%s", flags[i].name,
                         flags[i].metavar ? " " : "", flags[i].metavar ? flags[i].metavar : "");
        if ((flags[i].cmds & c->flags) && n > width) width = n;
    }
    for (size_t i = 0; i < N(flags); i++) {
        if (!(flags[i].cmds & c->flags)) continue;
        fprintf(f, "  %-*s  %s\n", width, head[i], flags[i].help);
        if (flags[i].def) fprintf(f, "  %-*s  default: %s\n", width, "", flags[i].def);
    }
    fprintf(f, "\nexit status: 0 done; 1 the API answered an error or could not be reached;\n"
               "2 a usage error (flags, arguments, FILE)\n");
}

/* Usage error: one line, then where to look. Returns 2. */
int weft__cli_usage_error(const weft__cli_cmd_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "weft %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see `weft %s --help`)\n", c->name);
    va_end(ap);
    return 2;
}

static const flag_t *find_flag(const weft__cli_cmd_t *c, const char *name, size_t len)
{
    for (size_t i = 0; i < N(flags); i++)
        if ((flags[i].cmds & c->flags) && strlen(flags[i].name) == len &&
            memcmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

/* Fills cli from argv[1..argc-1]. Returns 0, or 2 after printing the usage error. */
static int parse_args(const weft__cli_cmd_t *c, weft__cli_t *cli, int argc, char **argv)
{
    bool flags_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!flags_done && strcmp(a, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (!flags_done && strcmp(a, "-h") == 0) a = "--help";
        if (flags_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (cli->nargs == c->max_args)
                return weft__cli_usage_error(c, "unexpected argument \"%s\"", a);
            cli->arg[cli->nargs++] = a;
            continue;
        }
        if (a[1] != '-') return weft__cli_usage_error(c, "unknown flag %s", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const flag_t *f = find_flag(c, name, len);
        if (!f) {
            char tmp[128];
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(len + 2 < 100 ? len + 2 : 100), a);
            return weft__cli_usage_error(c, "unknown flag %s", tmp);
        }
        char *dst = (char *)cli + f->offset;
        if (f->many) {
            weft__cli_list_t *l = (weft__cli_list_t *)dst;
            const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!v) return weft__cli_usage_error(c, "--%s needs a value", f->name);
            if (l->n == WEFT__CLI_LIST_MAX)
                return weft__cli_usage_error(c, "--%s: at most %d", f->name, WEFT__CLI_LIST_MAX);
            l->v[l->n++] = v;
        } else if (!f->metavar) {
            if (eq) return weft__cli_usage_error(c, "--%s takes no value", f->name);
            *(bool *)dst = true;
        } else if (eq) {
            *(const char **)dst = eq + 1;
        } else if (i + 1 < argc) {
            *(const char **)dst = argv[++i];
        } else {
            return weft__cli_usage_error(c, "--%s needs a value", f->name);
        }
    }
    return 0;
}

/* The first of the environment variables that is set and not empty, or NULL. */
static const char *env_first(const char *a, const char *b, const char **which)
{
    const char *v;
    if (a && (v = getenv(a)) && *v) return *which = a, v;
    if (b && (v = getenv(b)) && *v) return *which = b, v;
    return NULL;
}

/* The API's address, token and timeout; how to print. Returns 0 or 2 (usage). */
static int settle(weft__cli_t *cli)
{
    const weft__cli_cmd_t *c = cli->cmd;
    const char *src = "--api", *spec = cli->api_spec;
    if (!spec) spec = env_first("WEFT_API_ADDR", "CONSUL_HTTP_ADDR", &src);
    if (!spec) spec = DEFAULT_API;
    const char *why = weft__api_parse(&cli->api, spec);
    if (why) return weft__cli_usage_error(c, "%s: %s, got \"%.200s\"", src, why, spec);
    const char *tsrc = "--token";
    if (!cli->token) cli->token = env_first("CONSUL_HTTP_TOKEN", NULL, &tsrc);
    for (const char *p = cli->token; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return weft__cli_usage_error(c, "%s: the token holds control characters", tsrc);
    cli->api.token = cli->token;

    static const weft_conf_option_t topt = {.key = "timeout", .type = WEFT_CONF_DURATION};
    uint64_t ms = 0;
    char twhy[256];
    if (weft_conf_parse_value(&topt, cli->timeout ? cli->timeout : DEFAULT_TIMEOUT, &ms, twhy,
                              sizeof(twhy)) != 0)
        return weft__cli_usage_error(c, "--timeout: %s", twhy);
    if (ms == 0 || ms > 3600 * 1000)
        return weft__cli_usage_error(c, "--timeout: expected a duration from 1ms to 1h, got \"%s\"",
                                     cli->timeout);
    cli->api.timeout_ms = ms;

    bool tty = isatty(STDOUT_FILENO);
    const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
    cli->table.wide = cli->wide;
    cli->table.color =
        tty && !cli->no_color && !(nc && *nc) && !(term && strcmp(term, "dumb") == 0);
    struct winsize ws;
    if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) cli->table.width = ws.ws_col;
    return 0;
}

int weft__cli_run(int argc, char **argv)
{
    const weft__cli_cmd_t *c = NULL;
    for (size_t g = 0; g < N(groups) && !c; g++)
        for (size_t i = 0; i < *groups[g].n && !c; i++)
            if (strcmp(argv[0], groups[g].cmds[i].name) == 0) c = &groups[g].cmds[i];
    if (!c) return -1;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cmd_help(c, stdout);
            return 0;
        }
    weft__cli_t cli;
    memset(&cli, 0, sizeof(cli));
    cli.cmd = c;
    int rc = parse_args(c, &cli, argc, argv);
    if (rc != 0) return rc;
    if (cli.nargs < c->min_args) return weft__cli_usage_error(c, "missing %s", c->args);
    for (int i = 0; i < cli.nargs; i++)
        if (!*cli.arg[i]) return weft__cli_usage_error(c, "%s is empty", c->args);
    if ((rc = settle(&cli)) != 0) return rc;
    rc = c->run(&cli);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "weft: writing to standard output: %s\n", strerror(errno));
        return 1;
    }
    return rc;
}
