/*
 * config.c - declaration tables to settings: YAML file, environment, flags, help, docs.
 *
 * Loading runs four passes over the same tables: defaults (parsed from the table's text, so
 * defaults and files share one syntax), the YAML file, the environment, the flags. The YAML
 * file is read with libyaml's document API: each mapping key extends a dotted path; a path
 * equal to an option key takes a scalar value, a path that prefixes option keys takes a
 * mapping, anything else is an unknown key (with a "did you mean" from edit distance).
 * Errors carry libyaml's marks (0-based) printed 1-based as FILE:LINE:COLUMN of the value.
 *
 * Runs at start-up on one thread; no global state. Strings set in targets are owned by the
 * weft_conf_t and replaced (freed) when a later pass sets them again.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "weft/config.h"

#define MAX_DEPTH 16

typedef struct loader_s {
    weft_conf_t *conf;
    const weft_conf_section_t *secs;
    size_t nsecs;
    char *err;
    size_t errlen;
} loader_t;

static int fail(loader_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(loader_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, l->errlen, fmt, ap);
    va_end(ap);
    return WEFT_EINVAL;
}

static int own(weft_conf_t *conf, char *s)
{
    if (conf->nowned == conf->capowned) {
        size_t cap = conf->capowned ? conf->capowned * 2 : 16;
        char **p = realloc(conf->owned, cap * sizeof(*p));
        if (!p) return WEFT_ENOMEM;
        conf->owned = p;
        conf->capowned = cap;
    }
    conf->owned[conf->nowned++] = s;
    return 0;
}

static void disown(weft_conf_t *conf, char *s)
{
    for (size_t i = 0; i < conf->nowned; i++) {
        if (conf->owned[i] == s) {
            free(s);
            conf->owned[i] = conf->owned[--conf->nowned];
            return;
        }
    }
}

void weft_conf_free(weft_conf_t *conf)
{
    for (size_t i = 0; i < conf->nowned; i++) free(conf->owned[i]);
    free(conf->owned);
    memset(conf, 0, sizeof(*conf));
}

/* ---- value parsing ---- */

static int why(char *w, size_t wl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why(char *w, size_t wl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w, wl, fmt, ap);
    va_end(ap);
    return WEFT_EINVAL;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s) return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = false, 0;
    }
    return -1;
}

/* "1h30m", "250ms", "10s" -> milliseconds. */
static int parse_duration(const char *s, uint64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    if (!*s) return -1;
    uint64_t total = 0;
    const char *p = s;
    while (*p) {
        uint64_t v = 0;
        const char *d = p;
        while (*p >= '0' && *p <= '9') {
            if (v > UINT64_MAX / 10 - 9) return -2;
            v = v * 10 + (uint64_t)(*p++ - '0');
        }
        if (p == d) return -1;
        const char *u = p;
        while (*p && !(*p >= '0' && *p <= '9')) p++;
        size_t ul = (size_t)(p - u);
        size_t k;
        for (k = 0; k < 4; k++)
            if (strlen(units[k].unit) == ul && memcmp(units[k].unit, u, ul) == 0) break;
        if (k == 4) return -1;
        if (v > (UINT64_MAX - total) / units[k].ms) return -2;
        total += v * units[k].ms;
    }
    *ms = total;
    return 0;
}

static int parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {{"", 1},           {"B", 1},     {"KiB", 1024},   {"MiB", 1 << 20},
                 {"GiB", 1u << 30}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}};
    const char *p = s;
    uint64_t v = 0;
    if (!(*p >= '0' && *p <= '9')) return -1;
    while (*p >= '0' && *p <= '9') {
        if (v > UINT64_MAX / 10 - 9) return -2;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
        if (strcmp(p, units[k].unit) == 0) {
            if (units[k].mul && v > UINT64_MAX / units[k].mul) return -2;
            *bytes = v * units[k].mul;
            return 0;
        }
    }
    return -1;
}

static int parse_addr(const char *s, weft_conf_addr_t *a)
{
    const char *colon;
    size_t hl;
    const char *host = s;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') return -1;
        host = s + 1;
        hl = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -1;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl)) return -1; /* a bare IPv6 address needs brackets */
    }
    if (hl == 0 || hl >= sizeof(a->host)) return -1;
    for (size_t i = 0; i < hl; i++)
        if (isspace((unsigned char)host[i])) return -1;
    uint64_t port;
    if (parse_u64(colon + 1, &port) != 0 || port > 65535) return -1;
    memcpy(a->host, host, hl);
    a->host[hl] = 0;
    a->port = (uint16_t)port;
    return 0;
}

static const char *type_name(weft_conf_type_t t)
{
    switch (t) {
    case WEFT_CONF_BOOL:
        return "bool";
    case WEFT_CONF_INT:
        return "int";
    case WEFT_CONF_UINT:
        return "uint";
    case WEFT_CONF_DOUBLE:
        return "number";
    case WEFT_CONF_STRING:
        return "string";
    case WEFT_CONF_DURATION:
        return "duration";
    case WEFT_CONF_SIZE:
        return "size";
    case WEFT_CONF_ADDR:
        return "host:port";
    case WEFT_CONF_ENUM:
        return "enum";
    }
    return "?";
}

/* Parses text into *out (a scratch of the option's storage type). */
int weft_conf_parse_value(const weft_conf_option_t *o, const char *text, void *out, char *w,
                          size_t wl)
{
    int r;
    switch (o->type) {
    case WEFT_CONF_BOOL:
        if (parse_bool(text, out) != 0)
            return why(w, wl, "expected true or false, got \"%s\"", text);
        return 0;
    case WEFT_CONF_INT: {
        const char *p = text[0] == '-' ? text + 1 : text;
        uint64_t v;
        r = parse_u64(p, &v);
        if (r == -1) return why(w, wl, "expected a whole number, got \"%s\"", text);
        if (r == -2 || v > (uint64_t)INT64_MAX + (p != text))
            return why(w, wl, "%s is out of range", text);
        *(int64_t *)out = p != text ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
    }
    case WEFT_CONF_UINT:
        r = parse_u64(text, out);
        if (r == -1) return why(w, wl, "expected a whole number, got \"%s\"", text);
        if (r == -2) return why(w, wl, "%s is out of range", text);
        return 0;
    case WEFT_CONF_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(text, &end);
        if (!*text || *end || errno || !isfinite(d))
            return why(w, wl, "expected a number, got \"%s\"", text);
        *(double *)out = d;
        return 0;
    }
    case WEFT_CONF_STRING:
        *(const char **)out = text;
        return 0;
    case WEFT_CONF_DURATION:
        r = parse_duration(text, out);
        if (r == -1) return why(w, wl, "expected a duration like 10s or 250ms, got \"%s\"", text);
        if (r == -2) return why(w, wl, "%s is out of range", text);
        return 0;
    case WEFT_CONF_SIZE:
        r = parse_size(text, out);
        if (r == -1) return why(w, wl, "expected a size like 512, 64KiB or 1MiB, got \"%s\"", text);
        if (r == -2) return why(w, wl, "%s is out of range", text);
        return 0;
    case WEFT_CONF_ADDR:
        if (parse_addr(text, out) != 0)
            return why(w, wl, "expected HOST:PORT (port 0-65535, [v6]:port), got \"%s\"", text);
        return 0;
    case WEFT_CONF_ENUM:
        for (int i = 0; o->choices && o->choices[i]; i++) {
            if (strcmp(o->choices[i], text) == 0) {
                *(int *)out = i;
                return 0;
            }
        }
        {
            char list[256] = "";
            for (int i = 0; o->choices && o->choices[i]; i++) {
                if (i) strncat(list, ", ", sizeof(list) - strlen(list) - 1);
                strncat(list, o->choices[i], sizeof(list) - strlen(list) - 1);
            }
            return why(w, wl, "expected one of %s, got \"%s\"", list, text);
        }
    }
    return why(w, wl, "unknown type");
}

static void fmt_bound(const weft_conf_option_t *o, double v, char *out, size_t n)
{
    bool unit = (o->type == WEFT_CONF_DURATION || o->type == WEFT_CONF_SIZE) && v >= 0 &&
                v < 18446744073709551616.0;
    uint64_t u = unit ? (uint64_t)v : 0;
    if (!unit) {
        snprintf(out, n, "%.15g", v);
    } else if (o->type == WEFT_CONF_DURATION) {
        if (u && u % 3600000 == 0)
            snprintf(out, n, "%lluh", (unsigned long long)(u / 3600000));
        else if (u && u % 60000 == 0)
            snprintf(out, n, "%llum", (unsigned long long)(u / 60000));
        else if (u && u % 1000 == 0)
            snprintf(out, n, "%llus", (unsigned long long)(u / 1000));
        else
            snprintf(out, n, "%llums", (unsigned long long)u);
    } else if (o->type == WEFT_CONF_SIZE) {
        if (u && u % (1u << 30) == 0)
            snprintf(out, n, "%lluGiB", (unsigned long long)(u >> 30));
        else if (u && u % (1u << 20) == 0)
            snprintf(out, n, "%lluMiB", (unsigned long long)(u >> 20));
        else if (u && u % 1024 == 0)
            snprintf(out, n, "%lluKiB", (unsigned long long)(u >> 10));
        else
            snprintf(out, n, "%llu", (unsigned long long)u);
    } else {
        snprintf(out, n, "%.15g", v);
    }
}

/* Parses, checks bounds and stores one value. where: "file:l:c: key" or "--flag" etc. */
static int set_value(loader_t *l, const weft_conf_section_t *sec, const weft_conf_option_t *o,
                     const char *text, const char *where)
{
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        const char *s;
        int e;
        weft_conf_addr_t a;
    } v;
    char w[512];
    if (weft_conf_parse_value(o, text, &v, w, sizeof(w)) != 0) return fail(l, "%s: %s", where, w);
    double num = 0;
    int numeric = 1;
    switch (o->type) {
    case WEFT_CONF_INT:
        num = (double)v.i;
        break;
    case WEFT_CONF_UINT:
    case WEFT_CONF_DURATION:
    case WEFT_CONF_SIZE:
        num = (double)v.u;
        break;
    case WEFT_CONF_DOUBLE:
        num = v.d;
        break;
    default:
        numeric = 0;
    }
    if (numeric && (o->min != 0 || o->max != 0)) {
        char b[64];
        if (num < o->min) {
            fmt_bound(o, o->min, b, sizeof(b));
            return fail(l, "%s: %s is below the minimum %s", where, text, b);
        }
        if (num > o->max) {
            fmt_bound(o, o->max, b, sizeof(b));
            return fail(l, "%s: %s is above the maximum %s", where, text, b);
        }
    }
    char *dst = (char *)sec->target + o->offset;
    switch (o->type) {
    case WEFT_CONF_BOOL:
        *(bool *)dst = v.b;
        break;
    case WEFT_CONF_INT:
        *(int64_t *)dst = v.i;
        break;
    case WEFT_CONF_UINT:
    case WEFT_CONF_DURATION:
    case WEFT_CONF_SIZE:
        *(uint64_t *)dst = v.u;
        break;
    case WEFT_CONF_DOUBLE:
        *(double *)dst = v.d;
        break;
    case WEFT_CONF_ENUM:
        *(int *)dst = v.e;
        break;
    case WEFT_CONF_ADDR:
        *(weft_conf_addr_t *)dst = v.a;
        break;
    case WEFT_CONF_STRING: {
        char *copy = strdup(text);
        if (!copy || own(l->conf, copy) != 0) {
            free(copy);
            return fail(l, "out of memory");
        }
        char **slot = (char **)dst;
        if (*slot) disown(l->conf, *slot);
        *slot = copy;
        break;
    }
    }
    return 0;
}

/* ---- the file ---- */

static const weft_conf_option_t *find_key(loader_t *l, const char *key,
                                          const weft_conf_section_t **sec)
{
    for (size_t s = 0; s < l->nsecs; s++)
        for (size_t i = 0; i < l->secs[s].n; i++)
            if (strcmp(l->secs[s].opts[i].key, key) == 0) {
                *sec = &l->secs[s];
                return &l->secs[s].opts[i];
            }
    return NULL;
}

static int is_prefix(loader_t *l, const char *path)
{
    size_t n = strlen(path);
    for (size_t s = 0; s < l->nsecs; s++)
        for (size_t i = 0; i < l->secs[s].n; i++) {
            const char *k = l->secs[s].opts[i].key;
            if (strncmp(k, path, n) == 0 && k[n] == '.') return 1;
        }
    return 0;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* The closest known name at the same level as path (the last component), or NULL. */
static void suggest(loader_t *l, const char *prefix, const char *name, char *out, size_t n)
{
    size_t best = 3, pl = strlen(prefix);
    out[0] = 0;
    for (size_t s = 0; s < l->nsecs; s++)
        for (size_t i = 0; i < l->secs[s].n; i++) {
            const char *k = l->secs[s].opts[i].key;
            if (pl && (strncmp(k, prefix, pl) != 0 || k[pl] != '.')) continue;
            const char *rest = pl ? k + pl + 1 : k;
            char comp[128];
            size_t cl = strcspn(rest, ".");
            if (cl >= sizeof(comp)) continue;
            memcpy(comp, rest, cl);
            comp[cl] = 0;
            size_t dist = edit_distance(name, comp);
            if (dist < best) {
                best = dist;
                snprintf(out, n, "%s", comp);
            }
        }
}

static int walk_mapping(loader_t *l, yaml_document_t *doc, yaml_node_t *map, const char *prefix,
                        const char *file, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(l, "%s:%zu:%zu: nesting deeper than %d levels", file, map->start_mark.line + 1,
                    map->start_mark.column + 1, MAX_DEPTH);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (!k || !v) continue;
        size_t kl = k->start_mark.line + 1, kc = k->start_mark.column + 1;
        if (k->type != YAML_SCALAR_NODE)
            return fail(l, "%s:%zu:%zu: keys must be plain names", file, kl, kc);
        const char *name = (const char *)k->data.scalar.value;
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = yaml_document_get_node(doc, q->key);
            if (k2 && k2->type == YAML_SCALAR_NODE &&
                strcmp((const char *)k2->data.scalar.value, name) == 0)
                return fail(l, "%s:%zu:%zu: %s%s%s: duplicate key", file, kl, kc, prefix,
                            *prefix ? "." : "", name);
        }
        char path[512];
        if (snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name) >=
            (int)sizeof(path))
            return fail(l, "%s:%zu:%zu: key too long", file, kl, kc);
        const weft_conf_section_t *sec;
        const weft_conf_option_t *o = find_key(l, path, &sec);
        size_t vl = v->start_mark.line + 1, vc = v->start_mark.column + 1;
        if (o) {
            if (v->type != YAML_SCALAR_NODE)
                return fail(l, "%s:%zu:%zu: %s: expected a single %s value, got a %s", file, vl, vc,
                            path, type_name(o->type),
                            v->type == YAML_MAPPING_NODE ? "mapping" : "list");
            char where[700];
            snprintf(where, sizeof(where), "%s:%zu:%zu: %s", file, vl, vc, path);
            int err = set_value(l, sec, o, (const char *)v->data.scalar.value, where);
            if (err) return err;
        } else if (is_prefix(l, path)) {
            if (v->type != YAML_MAPPING_NODE)
                return fail(l, "%s:%zu:%zu: %s: expected a mapping of settings", file, vl, vc,
                            path);
            int err = walk_mapping(l, doc, v, path, file, depth + 1);
            if (err) return err;
        } else {
            char s[128];
            suggest(l, prefix, name, s, sizeof(s));
            if (s[0])
                return fail(l, "%s:%zu:%zu: %s: unknown key (did you mean \"%s\"?)", file, kl, kc,
                            path, s);
            return fail(l, "%s:%zu:%zu: %s: unknown key", file, kl, kc, path);
        }
    }
    return 0;
}

static int load_file(loader_t *l, const char *file)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(l->err, l->errlen, "%s: cannot read: %s", file, strerror(errno));
        return WEFT_ENOENT;
    }
    char *buf = malloc(WEFT_CONF_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return fail(l, "out of memory");
    }
    size_t n = fread(buf, 1, WEFT_CONF_MAX_FILE + 1, f);
    fclose(f);
    if (n > WEFT_CONF_MAX_FILE) {
        free(buf);
        return fail(l, "%s: larger than %u bytes", file, WEFT_CONF_MAX_FILE);
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free(buf);
        return fail(l, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, n);
    int err = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_mark_t m = parser.problem_mark;
        err = fail(l, "%s:%zu:%zu: invalid YAML: %s%s%s", file, m.line + 1, m.column + 1,
                   parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                   parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        free(buf);
        return err;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        if (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0) {
            /* an empty document: nothing set */
        } else if (root->type != YAML_MAPPING_NODE) {
            err = fail(l, "%s:%zu:%zu: expected a mapping of settings at the top", file,
                       root->start_mark.line + 1, root->start_mark.column + 1);
        } else {
            err = walk_mapping(l, &doc, root, "", file, 0);
        }
    }
    yaml_document_delete(&doc);
    /* A second document in the same file is almost certainly a mistake. */
    if (!err) {
        yaml_document_t extra;
        if (yaml_parser_load(&parser, &extra)) {
            yaml_node_t *r2 = yaml_document_get_root_node(&extra);
            if (r2)
                err = fail(l, "%s:%zu:%zu: only one YAML document is read", file,
                           r2->start_mark.line + 1, r2->start_mark.column + 1);
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&parser);
    free(buf);
    return err;
}

/* ---- flags ---- */

static const weft_conf_option_t *find_flag(loader_t *l, const char *name, size_t n,
                                           const weft_conf_section_t **sec)
{
    for (size_t s = 0; s < l->nsecs; s++)
        for (size_t i = 0; i < l->secs[s].n; i++) {
            const char *f = l->secs[s].opts[i].flag;
            if (f && strlen(f) == n && memcmp(f, name, n) == 0) {
                *sec = &l->secs[s];
                return &l->secs[s].opts[i];
            }
        }
    return NULL;
}

static int load_flags(loader_t *l, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == 0)
            return fail(l, "%s: unexpected argument (flags look like --name value)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        if (nl == 6 && memcmp(name, "config", 6) == 0) {
            if (!eq) i++;
            continue; /* handled before the file pass */
        }
        const weft_conf_section_t *sec;
        const weft_conf_option_t *o = find_flag(l, name, nl, &sec);
        bool negated = false;
        if (!o && nl > 3 && memcmp(name, "no-", 3) == 0) {
            o = find_flag(l, name + 3, nl - 3, &sec);
            negated = o && o->type == WEFT_CONF_BOOL;
            if (!negated) o = NULL;
        }
        char where[160];
        snprintf(where, sizeof(where), "--%.*s", (int)nl, name);
        if (!o) return fail(l, "%s: unknown flag (see --help)", where);
        const char *value;
        if (o->type == WEFT_CONF_BOOL && !eq) {
            value = negated ? "false" : "true";
        } else if (eq) {
            if (negated) return fail(l, "%s: takes no value", where);
            value = eq + 1;
        } else {
            if (i + 1 >= argc) return fail(l, "%s: needs a value", where);
            value = argv[++i];
        }
        int err = set_value(l, sec, o, value, where);
        if (err) return err;
    }
    return 0;
}

static const char *config_flag(int argc, char **argv, char *err, size_t errlen, int *bad)
{
    const char *file = NULL;
    *bad = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config: needs a file name");
                *bad = 1;
                return NULL;
            }
            file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
    }
    return file;
}

int weft_conf_load(weft_conf_t *conf, const weft_conf_section_t *secs, size_t nsecs,
                   const char *file, int argc, char **argv, char *err, size_t errlen)
{
    memset(conf, 0, sizeof(*conf));
    loader_t l = {.conf = conf, .secs = secs, .nsecs = nsecs, .err = err, .errlen = errlen};
    int rc = 0;
    /* defaults */
    for (size_t s = 0; s < nsecs && !rc; s++) {
        for (size_t i = 0; i < secs[s].n && !rc; i++) {
            const weft_conf_option_t *o = &secs[s].opts[i];
            if (o->type == WEFT_CONF_STRING) *(char **)((char *)secs[s].target + o->offset) = NULL;
            if (o->def) {
                char where[300];
                snprintf(where, sizeof(where), "default of %s", o->key);
                rc = set_value(&l, &secs[s], o, o->def, where);
            }
        }
    }
    if (!rc && !file) {
        int bad;
        file = config_flag(argc, argv, err, errlen, &bad);
        if (bad) rc = WEFT_EINVAL;
    }
    if (!rc && file) rc = load_file(&l, file);
    /* environment */
    for (size_t s = 0; s < nsecs && !rc; s++) {
        for (size_t i = 0; i < secs[s].n && !rc; i++) {
            const weft_conf_option_t *o = &secs[s].opts[i];
            const char *v = o->env ? getenv(o->env) : NULL;
            if (v) rc = set_value(&l, &secs[s], o, v, o->env);
        }
    }
    if (!rc) rc = load_flags(&l, argc, argv);
    if (rc) weft_conf_free(conf);
    return rc;
}

/* ---- help and docs ---- */

static void bounds_text(const weft_conf_option_t *o, char *out, size_t n)
{
    out[0] = 0;
    if (o->min == 0 && o->max == 0) return;
    char a[64], b[64];
    fmt_bound(o, o->min, a, sizeof(a));
    fmt_bound(o, o->max, b, sizeof(b));
    snprintf(out, n, "%s..%s", a, b);
}

void weft_conf_help(const weft_conf_section_t *secs, size_t nsecs, FILE *out)
{
    fprintf(out, "  --config FILE            YAML file with the settings below (by key)\n");
    for (size_t s = 0; s < nsecs; s++) {
        for (size_t i = 0; i < secs[s].n; i++) {
            const weft_conf_option_t *o = &secs[s].opts[i];
            char left[96], bounds[140];
            if (o->flag)
                snprintf(left, sizeof(left), "--%s %s", o->flag,
                         o->type == WEFT_CONF_BOOL ? "" : type_name(o->type));
            else
                snprintf(left, sizeof(left), "%s: %s", o->key, type_name(o->type));
            bounds_text(o, bounds, sizeof(bounds));
            fprintf(out, "  %-24s %s\n", left, o->help ? o->help : "");
            fprintf(out, "  %-24s   key %s, default %s", "", o->key, o->def ? o->def : "(none)");
            if (o->env) fprintf(out, ", env %s", o->env);
            if (bounds[0]) fprintf(out, ", range %s", bounds);
            if (o->type == WEFT_CONF_ENUM && o->choices) {
                fprintf(out, ", one of");
                for (int k = 0; o->choices[k]; k++) fprintf(out, " %s", o->choices[k]);
            }
            fprintf(out, "\n");
        }
    }
}

void weft_conf_markdown(const weft_conf_section_t *secs, size_t nsecs, FILE *out)
{
    fprintf(out, "| key | type | default | flag | environment | range | description |\n");
    fprintf(out, "| --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t s = 0; s < nsecs; s++) {
        for (size_t i = 0; i < secs[s].n; i++) {
            const weft_conf_option_t *o = &secs[s].opts[i];
            char bounds[140];
            bounds_text(o, bounds, sizeof(bounds));
            if (o->type == WEFT_CONF_ENUM && o->choices) {
                bounds[0] = 0;
                for (int k = 0; o->choices[k]; k++) {
                    if (k) strncat(bounds, ", ", sizeof(bounds) - strlen(bounds) - 1);
                    strncat(bounds, o->choices[k], sizeof(bounds) - strlen(bounds) - 1);
                }
            }
            fprintf(out, "| `%s` | %s | `%s` | %s%s%s | %s%s%s | %s | %s |\n", o->key,
                    type_name(o->type), o->def ? o->def : "", o->flag ? "`--" : "",
                    o->flag ? o->flag : "", o->flag ? "`" : "", o->env ? "`" : "",
                    o->env ? o->env : "", o->env ? "`" : "", bounds, o->help ? o->help : "");
        }
    }
}
