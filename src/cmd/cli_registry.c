/*
 * cli_registry.c - `weft services`, `instances`, `register`, `deregister`, `checks`: the
 * registry from the command line, through the same Consul HTTP API every client uses.
 *
 * What each command reads, and what it prints with --json:
 *   services    GET /v1/agent/services and GET /v1/health/state/any, sent together, and
 *               sent again (up to 5 times) until both answers carry the same X-Consul-Index,
 *               so that the counts come from one state of the catalog. An instance's health
 *               is the worst of its checks and the node's (Consul's rule; maintenance is
 *               critical). --json: weft's own shape, stable, sorted by name:
 *               [{"Name", "Instances", "Passing", "Warning", "Critical", "Tags"}], Tags the
 *               union of the instances' tags in first-seen order (instances by ID).
 *   instances   GET /v1/health/service/NAME; --json prints that answer as it came.
 *   checks      GET /v1/health/state/any, or /v1/health/checks/NAME; --json prints the
 *               answer as it came (an array of checks, each with weft's History).
 *   register    PUT /v1/agent/service/register with the file's bytes, once jansson has
 *               found them to be a JSON object (else exit 2 with FILE:LINE:COLUMN); the API
 *               validates the rest. --json prints {"ID", "Name"}.
 *   deregister  PUT /v1/agent/service/deregister/ID; --json prints {"ID"}.
 *
 * Tables are for people: columns aligned, identifiers whole (a user copies them into the
 * next command), free text (tags, check names, outputs) cut with "..." (--wide: whole),
 * rows sorted (services by name, instances by ID; checks in the API's order: node first,
 * then by service). An empty answer prints a note on stderr and no table, as kubectl does,
 * so that standard output holds only data.
 *
 * Exit status: 0 done; 1 the API answered an error, could not be reached, or answered
 * something that is not the expected JSON (one line on stderr naming the URL; cli_http.c);
 * 2 a usage error, including a FILE that cannot be read or is not a JSON object.
 *
 * Memory: out of memory prints a line and exits 1 (the command line's policy, table.c).
 * Threads: the main thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd/cli_int.h"
#include "weft/weft.h"

#define MAX_FILE   (4u << 20) /* bytes of a registration file */
#define MAX_TARGET 2048

#define N(a) (sizeof(a) / sizeof((a)[0]))

_Noreturn static void oom(void)
{
    fputs("weft: out of memory\n", stderr);
    exit(1);
}

/* The call's answer as JSON of the given type (JSON_ARRAY, JSON_OBJECT), or NULL after
 * saying on stderr that it is not. */
static json_t *answer_json(const weft__cli_t *cli, const weft__api_call_t *call, json_type type)
{
    json_error_t e;
    json_t *j = json_loadb(call->resp, call->resp_len, 0, &e);
    if (!j) {
        fprintf(stderr, "weft: %s %s%s: the answer is not JSON (%d:%d: %s)\n", call->method,
                cli->api.url, call->target, e.line, e.column, e.text);
        return NULL;
    }
    if (json_typeof(j) != type) {
        fprintf(stderr, "weft: %s %s%s: expected a JSON %s\n", call->method, cli->api.url,
                call->target, type == JSON_ARRAY ? "array" : "object");
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Prints an answer as it came, ending with a newline. */
static void print_raw(const weft__api_call_t *call)
{
    fwrite(call->resp, 1, call->resp_len, stdout);
    if (!call->resp_len || call->resp[call->resp_len - 1] != '\n') putchar('\n');
}

/* Prints j compactly, keys in their order, and frees it. */
static int print_json(json_t *j)
{
    if (!j || json_dumpf(j, stdout, JSON_COMPACT) != 0) {
        json_decref(j);
        fputs("weft: out of memory\n", stderr);
        return 1;
    }
    putchar('\n');
    json_decref(j);
    return 0;
}

static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* passing 0, warning 1, anything else (critical) 2. */
static int rank(const char *status)
{
    if (strcmp(status, "passing") == 0) return 0;
    if (strcmp(status, "warning") == 0) return 1;
    return 2;
}

static const char *const rank_name[] = {"passing", "warning", "critical"};

/* Joins a JSON array of strings with ",", into a malloc'd string. */
static char *join(const json_t *arr)
{
    size_t len = 1, i;
    json_t *v;
    json_array_foreach(arr, i, v) len += json_string_length(v) + 1;
    char *out = malloc(len);
    if (!out) oom();
    size_t k = 0;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v)) continue;
        if (k) out[k++] = ',';
        memcpy(out + k, json_string_value(v), json_string_length(v));
        k += json_string_length(v);
    }
    out[k] = 0;
    return out;
}

/* "12s ago", "3m05s ago", "2h10m ago", "4d2h ago" for a time in ms since the epoch. */
static void fmt_age(char *out, size_t cap, uint64_t at_ms)
{
    uint64_t now = weft_wall_ns() / 1000000, s = now > at_ms ? (now - at_ms) / 1000 : 0;
    if (s < 60)
        snprintf(out, cap, "%" PRIu64 "s ago", s);
    else if (s < 3600)
        snprintf(out, cap, "%" PRIu64 "m%02" PRIu64 "s ago", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, cap, "%" PRIu64 "h%02" PRIu64 "m ago", s / 3600, s / 60 % 60);
    else
        snprintf(out, cap, "%" PRIu64 "d%" PRIu64 "h ago", s / 86400, s / 3600 % 24);
}

/* Prints t, or the note on stderr when it has no row; frees t. */
static void print_table(const weft__cli_t *cli, weft__table_t *t, const char *empty_note)
{
    if (weft__table_rows(t))
        weft__table_print(t, stdout, &cli->table);
    else
        fprintf(stderr, "%s\n", empty_note);
    weft__table_free(t);
}

/* Runs one call; returns its answer, parsed, when it is JSON of type `type` (the bytes stay
 * in call, for --json); else NULL after saying why on stderr. */
static json_t *get_one(const weft__cli_t *cli, weft__api_call_t *call, json_type type)
{
    weft__api_run(&cli->api, call, 1); /* a failure to set up is in call->err */
    if (!weft__api_ok(&cli->api, call)) return NULL;
    return answer_json(cli, call, type);
}

typedef struct inst_s {
    const char *name, *id;
    const json_t *tags;
    int rank;
} inst_t;

static int inst_cmp(const void *a, const void *b)
{
    const inst_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->id, y->id);
}

/* The summary `weft services` prints, from /v1/agent/services and /v1/health/state/any:
 * [{"Name", "Instances", "Passing", "Warning", "Critical", "Tags"}] sorted by name. */
static json_t *summarize(json_t *svcs, json_t *checks)
{
    /* the worst status of each instance's checks, and of the node's */
    json_t *worst = json_object(), *v;
    int node = 0;
    size_t i, n = json_object_size(svcs);
    json_array_foreach(checks, i, v)
    {
        const char *sid = str(v, "ServiceID");
        int r = rank(str(v, "Status"));
        if (!*sid) {
            if (r > node) node = r;
            continue;
        }
        json_t *have = json_object_get(worst, sid);
        if (!have || json_integer_value(have) < r) json_object_set_new(worst, sid, json_integer(r));
    }
    inst_t *in = calloc(n ? n : 1, sizeof(*in));
    json_t *out = json_array();
    if (!worst || !in || !out) oom();
    const char *key;
    size_t k = 0;
    json_object_foreach(svcs, key, v)
    {
        json_t *w = json_object_get(worst, key);
        int r = w ? (int)json_integer_value(w) : 0;
        in[k++] = (inst_t){.name = str(v, "Service"),
                           .id = key,
                           .tags = json_object_get(v, "Tags"),
                           .rank = r > node ? r : node};
    }
    qsort(in, n, sizeof(*in), inst_cmp);
    for (size_t a = 0, b; a < n; a = b) {
        json_int_t count[3] = {0, 0, 0};
        json_t *tags = json_array();
        for (b = a; b < n && strcmp(in[b].name, in[a].name) == 0; b++) {
            count[in[b].rank]++;
            size_t t, u;
            json_t *tag, *have;
            json_array_foreach(in[b].tags, t, tag)
            {
                bool seen = false;
                json_array_foreach(tags, u, have) seen = seen || json_equal(have, tag);
                if (!seen) json_array_append(tags, tag);
            }
        }
        json_t *row = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o}", "Name", in[a].name, "Instances",
                                (json_int_t)(b - a), "Passing", count[0], "Warning", count[1],
                                "Critical", count[2], "Tags", tags);
        if (!row || json_array_append_new(out, row) != 0) oom();
    }
    free(in);
    json_decref(worst);
    return out;
}

static void services_table(const weft__cli_t *cli, const json_t *rows)
{
    static const weft__col_t cols[] = {{.title = "NAME"},
                                       {.title = "INSTANCES", .right = true},
                                       {.title = "PASSING", .right = true},
                                       {.title = "WARNING", .right = true},
                                       {.title = "CRITICAL", .right = true},
                                       {.title = "TAGS", .max = 60, .flex = true}};
    static const char *const keys[] = {"Instances", "Passing", "Warning", "Critical"};
    weft__table_t *t = weft__table_new(cols, N(cols));
    size_t i;
    json_t *v;
    json_array_foreach(rows, i, v)
    {
        weft__table_add(t, str(v, "Name"), NULL);
        for (size_t c = 0; c < N(keys); c++) {
            char num[24];
            json_int_t x = json_integer_value(json_object_get(v, keys[c]));
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, x);
            weft__table_add(t, num, c > 0 && x > 0 ? weft__status_sgr(rank_name[c - 1]) : NULL);
        }
        char *tags = join(json_object_get(v, "Tags"));
        weft__table_add(t, tags, NULL);
        free(tags);
    }
    print_table(cli, t, "no services registered");
}

static int run_services(weft__cli_t *cli)
{
    json_t *svcs = NULL, *checks = NULL;
    /* Both reads at once; again while a change came between them (their indexes differ),
     * so that the counts come from one state of the catalog. */
    for (int attempt = 0; attempt < 5; attempt++) {
        json_decref(svcs);
        json_decref(checks);
        svcs = checks = NULL;
        weft__api_call_t calls[2] = {{.method = "GET", .target = "/v1/agent/services"},
                                     {.method = "GET", .target = "/v1/health/state/any"}};
        weft__api_run(&cli->api, calls, 2);
        bool ok = weft__api_ok(&cli->api, &calls[0]) && weft__api_ok(&cli->api, &calls[1]) &&
                  (svcs = answer_json(cli, &calls[0], JSON_OBJECT)) &&
                  (checks = answer_json(cli, &calls[1], JSON_ARRAY));
        bool same = calls[0].index == calls[1].index;
        weft__api_call_free(&calls[0]);
        weft__api_call_free(&calls[1]);
        if (!ok) {
            json_decref(svcs);
            return 1;
        }
        if (same) break;
    }
    json_t *rows = summarize(svcs, checks);
    int rc = 0;
    if (cli->json) {
        rc = print_json(rows);
    } else {
        services_table(cli, rows);
        json_decref(rows);
    }
    json_decref(svcs);
    json_decref(checks);
    return rc;
}

static int entry_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(str(json_object_get(x, "Service"), "ID"),
                  str(json_object_get(y, "Service"), "ID"));
}

/* The health of one entry of /v1/health/service/NAME: the worst of its checks. */
static int entry_rank(const json_t *entry)
{
    int worst = 0;
    size_t k;
    json_t *ck;
    json_array_foreach(json_object_get(entry, "Checks"), k, ck)
    {
        int r = rank(str(ck, "Status"));
        if (r > worst) worst = r;
    }
    return worst;
}

/* One line per check of each instance; the instance's columns on its first line only. */
static void instances_table(const weft__cli_t *cli, const json_t *arr)
{
    static const weft__col_t cols[] = {{.title = "ID"},
                                       {.title = "ADDRESS"},
                                       {.title = "HEALTH"},
                                       {.title = "TAGS", .max = 30},
                                       {.title = "CHECK"},
                                       {.title = "STATUS"},
                                       {.title = "OUTPUT", .max = 60, .flex = true}};
    size_t n = json_array_size(arr), i;
    json_t **e = malloc((n ? n : 1) * sizeof(*e));
    if (!e) oom();
    for (i = 0; i < n; i++) e[i] = json_array_get(arr, i);
    qsort(e, n, sizeof(*e), entry_cmp);
    weft__table_t *t = weft__table_new(cols, N(cols));
    for (i = 0; i < n; i++) {
        const json_t *svc = json_object_get(e[i], "Service"),
                     *checks = json_object_get(e[i], "Checks");
        const char *addr = str(svc, "Address");
        if (!*addr) addr = str(json_object_get(e[i], "Node"), "Address"); /* Consul's rule */
        json_int_t port = json_integer_value(json_object_get(svc, "Port"));
        char hostport[300];
        bool v6 = strchr(addr, ':') != NULL;
        if (port)
            snprintf(hostport, sizeof(hostport), "%s%s%s:%" JSON_INTEGER_FORMAT, v6 ? "[" : "",
                     addr, v6 ? "]" : "", port);
        else
            snprintf(hostport, sizeof(hostport), "%s", addr);
        const char *health = rank_name[entry_rank(e[i])];
        char *tags = join(json_object_get(svc, "Tags"));
        weft__table_add(t, str(svc, "ID"), NULL);
        weft__table_add(t, hostport, NULL);
        weft__table_add(t, health, weft__status_sgr(health));
        weft__table_add(t, tags, NULL);
        free(tags);
        if (json_array_size(checks) == 0)
            for (int c = 0; c < 3; c++) weft__table_add(t, "", NULL);
        size_t k;
        json_t *ck;
        json_array_foreach(checks, k, ck)
        {
            if (k)
                for (int c = 0; c < 4; c++) weft__table_add(t, NULL, NULL);
            weft__table_add(t, str(ck, "CheckID"), NULL);
            weft__table_add(t, str(ck, "Status"), weft__status_sgr(str(ck, "Status")));
            weft__table_add(t, str(ck, "Output"), NULL);
        }
    }
    free(e);
    char note[600];
    snprintf(note, sizeof(note), "no instances of service \"%.500s\"", cli->arg[0]);
    print_table(cli, t, note);
}

/* GETs target, an array: printed as it came with --json, else as table(cli, array).
 * Returns the exit status. */
static int show_array(weft__cli_t *cli, const char *target,
                      void (*table)(const weft__cli_t *cli, const json_t *arr))
{
    weft__api_call_t call = {.method = "GET", .target = target};
    json_t *arr = get_one(cli, &call, JSON_ARRAY);
    if (arr && cli->json)
        print_raw(&call);
    else if (arr)
        table(cli, arr);
    json_decref(arr);
    weft__api_call_free(&call);
    return arr ? 0 : 1;
}

static int run_instances(weft__cli_t *cli)
{
    char target[MAX_TARGET] = "/v1/health/service/";
    if (!weft__api_escape(target, sizeof(target), cli->arg[0]))
        return weft__cli_usage_error(cli->cmd, "NAME is too long");
    return show_array(cli, target, instances_table);
}

static void checks_table(const weft__cli_t *cli, const json_t *arr)
{
    static const weft__col_t cols[] = {{.title = "ID"},
                                       {.title = "NAME", .max = 30},
                                       {.title = "SERVICE"},
                                       {.title = "TYPE"},
                                       {.title = "STATUS"},
                                       {.title = "CHANGED"},
                                       {.title = "OUTPUT", .max = 60, .flex = true}};
    weft__table_t *t = weft__table_new(cols, N(cols));
    size_t i;
    json_t *ck;
    json_array_foreach(arr, i, ck)
    {
        /* History: the last transitions, oldest first, At in ms since the epoch */
        const json_t *hist = json_object_get(ck, "History");
        const json_t *at = json_object_get(json_array_get(hist, json_array_size(hist) - 1), "At");
        char age[48] = "";
        if (json_is_integer(at)) fmt_age(age, sizeof(age), (uint64_t)json_integer_value(at));
        weft__table_add(t, str(ck, "CheckID"), NULL);
        weft__table_add(t, str(ck, "Name"), NULL);
        weft__table_add(t, str(ck, "ServiceID"), NULL);
        weft__table_add(t, str(ck, "Type"), NULL);
        weft__table_add(t, str(ck, "Status"), weft__status_sgr(str(ck, "Status")));
        weft__table_add(t, age, NULL);
        weft__table_add(t, str(ck, "Output"), NULL);
    }
    char note[600];
    if (cli->nargs)
        snprintf(note, sizeof(note), "no checks for service \"%.500s\"", cli->arg[0]);
    else
        snprintf(note, sizeof(note), "no checks");
    print_table(cli, t, note);
}

static int run_checks(weft__cli_t *cli)
{
    char target[MAX_TARGET] = "/v1/health/state/any";
    if (cli->nargs) {
        snprintf(target, sizeof(target), "/v1/health/checks/");
        if (!weft__api_escape(target, sizeof(target), cli->arg[0]))
            return weft__cli_usage_error(cli->cmd, "NAME is too long");
    }
    return show_array(cli, target, checks_table);
}

/* Reads path ("-": stdin) whole into *out (malloc'd). Returns 0, or 2 after saying why. */
static int read_file(const weft__cli_t *cli, const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "weft %s: cannot read %s: %s\n", cli->cmd->name, path, strerror(errno));
        return 2;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    bool too_large = false;
    for (;;) {
        if (n == cap) {
            if (cap > MAX_FILE) {
                too_large = true;
                break;
            }
            cap = cap ? cap * 2 : 64 * 1024;
            if (!(buf = realloc(buf, cap))) oom();
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break; /* the end, or an error */
    }
    int err = ferror(f) ? errno : 0;
    if (f != stdin) fclose(f);
    if (err || too_large || n > MAX_FILE) {
        if (err)
            fprintf(stderr, "weft %s: cannot read %s: %s\n", cli->cmd->name, path, strerror(err));
        else
            fprintf(stderr, "weft %s: %s: larger than %u MiB\n", cli->cmd->name, path,
                    MAX_FILE >> 20);
        free(buf);
        return 2;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* The value of the member of obj whose key is `want` regardless of case and underscores
 * (the API's rule for registration bodies), when it is a string; else "". */
static const char *member(const json_t *obj, const char *want)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        const char *a = key, *b = want;
        for (;;) {
            while (*a == '_') a++;
            if (!*a || !*b || (*a | 0x20) != (*b | 0x20)) break;
            a++, b++;
        }
        if (!*a && !*b && json_is_string(v)) return json_string_value(v);
    }
    return "";
}

static int run_register(weft__cli_t *cli)
{
    const char *path = cli->arg[0], *shown = strcmp(path, "-") == 0 ? "<stdin>" : path;
    char *body;
    size_t len;
    int rc = read_file(cli, path, &body, &len);
    if (rc != 0) return rc;
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    if (!j) {
        /* jansson's column is 0 before the first byte of a line (an empty file) */
        fprintf(stderr, "weft register: %s:%d:%d: %s\n", shown, e.line, e.column < 1 ? 1 : e.column,
                e.text);
        free(body);
        return 2;
    }
    if (!json_is_object(j)) {
        fprintf(stderr,
                "weft register: %s: expected a JSON object (a registration body), got an "
                "array\n",
                shown);
        json_decref(j);
        free(body);
        return 2;
    }
    const char *name = member(j, "name"), *id = member(j, "id");
    if (!*id) id = name; /* the API's default */
    weft__api_call_t call = {.method = "PUT",
                             .target = cli->replace ? "/v1/agent/service/register"
                                                      "?replace-existing-checks=true"
                                                    : "/v1/agent/service/register",
                             .body = body,
                             .body_len = len};
    rc = 1;
    weft__api_run(&cli->api, &call, 1);
    if (weft__api_ok(&cli->api, &call)) {
        if (cli->json)
            rc = print_json(json_pack("{s:s, s:s}", "ID", id, "Name", name));
        else
            rc = 0, printf("registered %s (service %s)\n", id, name);
    }
    weft__api_call_free(&call);
    json_decref(j);
    free(body);
    return rc;
}

static int run_deregister(weft__cli_t *cli)
{
    char target[MAX_TARGET] = "/v1/agent/service/deregister/";
    if (!weft__api_escape(target, sizeof(target), cli->arg[0]))
        return weft__cli_usage_error(cli->cmd, "ID is too long");
    weft__api_call_t call = {.method = "PUT", .target = target};
    int rc = 1;
    weft__api_run(&cli->api, &call, 1);
    if (weft__api_ok(&cli->api, &call)) {
        if (cli->json)
            rc = print_json(json_pack("{s:s}", "ID", cli->arg[0]));
        else
            rc = 0, printf("deregistered %s\n", cli->arg[0]);
    }
    weft__api_call_free(&call);
    return rc;
}

const weft__cli_cmd_t weft__cli_cmds[] = {
    {"services", "", 0, 0, WEFT__CLI_ALL | WEFT__CLI_TABLE,
     "list services: instances, health counts, tags",
     "One line per service: its instances, how many are passing, warning and critical (an\n"
     "instance counts with the worst of its checks and the node's), and the union of their\n"
     "tags. --json prints [{\"Name\", \"Instances\", \"Passing\", \"Warning\", \"Critical\",\n"
     "\"Tags\"}], sorted by name.\n",
     run_services},
    {"instances", "NAME", 1, 1, WEFT__CLI_ALL | WEFT__CLI_TABLE,
     "list a service's instances and their checks",
     "One line per check of each instance of service NAME: the instance's ID, address:port,\n"
     "health (the worst of its checks) and tags, then the check's ID, status and output.\n"
     "--json prints the answer of GET /v1/health/service/NAME.\n",
     run_instances},
    {"register", "FILE.json|-", 1, 1, WEFT__CLI_ALL | WEFT__CLI_REGISTER,
     "register a service instance",
     "Registers the instance FILE describes (\"-\": standard input) in the JSON body of\n"
     "Consul's PUT /v1/agent/service/register, for example\n"
     "  {\"Name\": \"web\", \"ID\": \"web-1\", \"Port\": 8080, \"Tags\": [\"v1\"],\n"
     "   \"Check\": {\"HTTP\": \"http://127.0.0.1:8080/health\", \"Interval\": \"5s\"}}\n"
     "FILE must be a JSON object (an error names FILE:LINE:COLUMN); the API checks the rest.\n"
     "Registering an ID again replaces that instance. --json prints {\"ID\", \"Name\"}.\n",
     run_register},
    {"deregister", "ID", 1, 1, WEFT__CLI_ALL, "deregister a service instance by its ID",
     "Removes instance ID and its checks. An unknown ID is an error (exit status 1).\n"
     "--json prints {\"ID\"}.\n",
     run_deregister},
    {"checks", "[NAME]", 0, 1, WEFT__CLI_ALL | WEFT__CLI_TABLE,
     "list health checks, all or one service's",
     "One line per check: ID, name, the service instance it belongs to (- for the node's),\n"
     "type, status, when it last changed (weft's History), output. --json prints the answer\n"
     "of GET /v1/health/state/any, or of GET /v1/health/checks/NAME.\n",
     run_checks},
};

const size_t weft__cli_ncmds = N(weft__cli_cmds);
