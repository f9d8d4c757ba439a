/*
 * config_tree.c - reading the value of a WEFT_CONF_TREE option: a read-only tree of
 * weft_conf_node_t that config.c built from the YAML file.
 *
 * A module whose settings do not fit one value per key (the gateway's list of routes)
 * declares one TREE key and validates what is under it here, after the load. So that its
 * errors read like the loader's, every checking function writes
 * "FILE:LINE:COLUMN: PATH: what is wrong" from the node itself: its position, and its path
 * rebuilt by walking up the parents (a mapping's value knows its key, a list's item its
 * index, the root its option's key). Single values are parsed by the same code as table
 * options (config_value.c), so "10s" means the same in a tree as anywhere else.
 *
 * Invariants: nodes are never changed after the load; nothing here allocates; a NULL node
 * (an absent key) is accepted everywhere. Any thread, as long as the weft_conf_t lives.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/config_int.h"
#include "core/errbuf.h"

#define PATH_MAX_LEN 1024 /* bytes of a path in a message */

weft_conf_node_kind_t weft_conf_node_kind(const weft_conf_node_t *n)
{
    return n ? n->kind : WEFT_CONF_NODE_SCALAR;
}

size_t weft_conf_node_len(const weft_conf_node_t *n)
{
    return n && n->kind != WEFT_CONF_NODE_SCALAR ? n->len : 0;
}

const weft_conf_node_t *weft_conf_node_at(const weft_conf_node_t *n, size_t i)
{
    return i < weft_conf_node_len(n) ? n->items[i] : NULL;
}

const char *weft_conf_node_key(const weft_conf_node_t *n, size_t i)
{
    if (!n || n->kind != WEFT_CONF_NODE_MAP || i >= n->len) return NULL;
    return n->items[i]->key;
}

const weft_conf_node_t *weft_conf_node_get(const weft_conf_node_t *n, const char *key)
{
    if (!n || !key || n->kind != WEFT_CONF_NODE_MAP) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < n->len; i++)
        if (n->items[i]->keylen == kl && memcmp(n->items[i]->key, key, kl) == 0) return n->items[i];
    return NULL;
}

const char *weft_conf_node_str(const weft_conf_node_t *n, size_t *len)
{
    if (!n || n->kind != WEFT_CONF_NODE_SCALAR) return NULL;
    if (len) *len = n->len;
    return n->text;
}

bool weft_conf_node_quoted(const weft_conf_node_t *n)
{
    return n && n->kind == WEFT_CONF_NODE_SCALAR && n->quoted;
}

void weft_conf_node_where(const weft_conf_node_t *n, const char **file, size_t *line,
                          size_t *column)
{
    if (file) *file = n ? n->file : NULL;
    if (line) *line = n ? n->line : 0;
    if (column) *column = n ? n->col : 0;
}

/* ---- paths ---- */

static void put(char *out, size_t cap, size_t *o, const char *s)
{
    size_t n = strlen(s);
    if (*o + 1 >= cap) return;
    if (n > cap - 1 - *o) n = cap - 1 - *o;
    memcpy(out + *o, s, n);
    *o += n;
    out[*o] = 0;
}

static bool plain_name(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void path_of(const weft_conf_node_t *n, char *out, size_t cap, size_t *o)
{
    char part[WEFT__CONF_SHOW * 4 + 16];
    if (n->parent) path_of(n->parent, out, cap, o);
    if (!n->parent) {
        weft__conf_escape(part, sizeof(part), n->key, n->keylen, WEFT_CONF_MAX_KEY);
        put(out, cap, o, part);
    } else if (n->parent->kind == WEFT_CONF_NODE_SEQ) {
        snprintf(part, sizeof(part), "[%zu]", n->index);
        put(out, cap, o, part);
    } else if (plain_name(n->key, n->keylen)) {
        put(out, cap, o, ".");
        weft__conf_escape(part, sizeof(part), n->key, n->keylen, WEFT__CONF_SHOW);
        put(out, cap, o, part);
    } else {
        put(out, cap, o, "[\"");
        weft__conf_escape(part, sizeof(part), n->key, n->keylen, WEFT__CONF_SHOW);
        put(out, cap, o, part);
        put(out, cap, o, "\"]");
    }
}

size_t weft_conf_node_path(const weft_conf_node_t *n, char *out, size_t outlen)
{
    size_t o = 0;
    if (!out || !outlen) return 0;
    out[0] = 0;
    if (n) path_of(n, out, outlen, &o);
    return o;
}

/* ---- errors ---- */

/* The error for n (at its key when at_key) with a formatted reason. */
static int verr(const weft_conf_node_t *n, bool at_key, char *err, size_t errlen, const char *fmt,
                va_list ap)
{
    char path[PATH_MAX_LEN], what[512];
    vsnprintf(what, sizeof(what), fmt, ap);
    if (!n) return weft__errf(err, errlen, WEFT_EINVAL, "%s", what);
    weft_conf_node_path(n, path, sizeof(path));
    return weft__errf(err, errlen, WEFT_EINVAL, "%s:%zu:%zu: %s: %s", n->file,
                      at_key ? n->key_line : n->line, at_key ? n->key_col : n->col, path, what);
}

static int node_err(const weft_conf_node_t *n, bool at_key, char *err, size_t errlen,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int node_err(const weft_conf_node_t *n, bool at_key, char *err, size_t errlen,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = verr(n, at_key, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

int weft_conf_node_errorf(const weft_conf_node_t *n, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = verr(n, false, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *node_kind_name(weft_conf_node_kind_t k)
{
    return k == WEFT_CONF_NODE_MAP   ? "a mapping"
           : k == WEFT_CONF_NODE_SEQ ? "a list"
                                     : "a single value";
}

int weft_conf_node_expect(const weft_conf_node_t *n, weft_conf_node_kind_t kind, char *err,
                          size_t errlen)
{
    if (!n) return weft__errf(err, errlen, WEFT_EINVAL, "no value");
    if (n->kind == kind) return 0;
    return node_err(n, false, err, errlen, "expected %s, got %s", node_kind_name(kind),
                    node_kind_name(n->kind));
}

int weft_conf_node_check_keys(const weft_conf_node_t *n, const char *const *allowed, char *err,
                              size_t errlen)
{
    int rc = weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen);
    if (rc) return rc;
    for (size_t i = 0; i < n->len; i++) {
        const weft_conf_node_t *v = n->items[i];
        const char *near = NULL;
        size_t best = (size_t)-1, a;
        for (a = 0; allowed && allowed[a]; a++) {
            size_t al = strlen(allowed[a]);
            if (al == v->keylen && memcmp(allowed[a], v->key, al) == 0) break;
            size_t d = weft__conf_distance(v->key, v->keylen, allowed[a], al);
            if (d < best && weft__conf_close(d, v->keylen)) {
                best = d;
                near = allowed[a];
            }
        }
        if (allowed && allowed[a]) continue;
        if (near) return node_err(v, true, err, errlen, "unknown key (did you mean \"%s\"?)", near);
        return node_err(v, true, err, errlen, "unknown key");
    }
    return 0;
}

int weft_conf_node_require(const weft_conf_node_t *n, const char *key, const weft_conf_node_t **out,
                           char *err, size_t errlen)
{
    int rc = weft_conf_node_expect(n, WEFT_CONF_NODE_MAP, err, errlen);
    if (rc) return rc;
    const weft_conf_node_t *v = weft_conf_node_get(n, key);
    if (!v) {
        char k[WEFT__CONF_SHOW * 4 + 8];
        weft__conf_escape(k, sizeof(k), key ? key : "", key ? strlen(key) : 0, WEFT__CONF_SHOW);
        return node_err(n, false, err, errlen, "missing key \"%s\"", k);
    }
    if (out) *out = v;
    return 0;
}

/* ---- single values ---- */

/* Fails unless n is a single value; what: the expected type, for the message. */
static int need_scalar(const weft_conf_node_t *n, const char *what, char *err, size_t errlen)
{
    if (!n) return weft__errf(err, errlen, WEFT_EINVAL, "no value");
    if (n->kind == WEFT_CONF_NODE_SCALAR) return 0;
    return node_err(n, false, err, errlen, "expected a single %s value, got %s", what,
                    node_kind_name(n->kind));
}

int weft_conf_node_value(const weft_conf_node_t *n, const weft_conf_option_t *opt, void *out,
                         char *err, size_t errlen)
{
    if (!opt || !out || opt->type == WEFT_CONF_TREE || (unsigned)opt->type > WEFT_CONF_TREE)
        return weft__errf(err, errlen, WEFT_EINVAL, "no option, a tree option or no output");
    int rc = need_scalar(n, weft__conf_type_name(opt->type), err, errlen);
    if (rc) return rc;
    weft__conf_value_t v;
    char w[512];
    if (weft__conf_parse(opt, n->text, n->len, &v, w, sizeof(w)) != 0 ||
        weft__conf_check_bounds(opt, &v, n->text, n->len, w, sizeof(w)) != 0)
        return node_err(n, false, err, errlen, "%s", w);
    weft__conf_stored_t stored;
    if (!weft__conf_store(opt, &v, &stored)) stored.s = n->text;
    const char *why = opt->check ? opt->check(&stored) : NULL;
    if (why) {
        if (opt->secret) return node_err(n, false, err, errlen, "%s", why);
        weft__conf_escape(w, sizeof(w), n->text, n->len, WEFT__CONF_SHOW);
        return node_err(n, false, err, errlen, "%s, got \"%s\"", why, w);
    }
    memcpy(out, &stored, weft__conf_storage_size(opt->type));
    return 0;
}

int weft_conf_node_bool(const weft_conf_node_t *n, bool *out, char *err, size_t errlen)
{
    weft_conf_option_t o = {.type = WEFT_CONF_BOOL};
    return weft_conf_node_value(n, &o, out, err, errlen);
}

int weft_conf_node_uint(const weft_conf_node_t *n, uint64_t min, uint64_t max, uint64_t *out,
                        char *err, size_t errlen)
{
    weft_conf_option_t o = {.type = WEFT_CONF_UINT, .min = (double)min, .max = (double)max};
    return weft_conf_node_value(n, &o, out, err, errlen);
}

int weft_conf_node_duration(const weft_conf_node_t *n, uint64_t min_ms, uint64_t max_ms,
                            uint64_t *ms, char *err, size_t errlen)
{
    weft_conf_option_t o = {
        .type = WEFT_CONF_DURATION, .min = (double)min_ms, .max = (double)max_ms};
    return weft_conf_node_value(n, &o, ms, err, errlen);
}

int weft_conf_node_size(const weft_conf_node_t *n, uint64_t min, uint64_t max, uint64_t *bytes,
                        char *err, size_t errlen)
{
    weft_conf_option_t o = {.type = WEFT_CONF_SIZE, .min = (double)min, .max = (double)max};
    return weft_conf_node_value(n, &o, bytes, err, errlen);
}

int weft_conf_node_addr(const weft_conf_node_t *n, weft_conf_addr_t *out, char *err, size_t errlen)
{
    weft_conf_option_t o = {.type = WEFT_CONF_ADDR};
    return weft_conf_node_value(n, &o, out, err, errlen);
}

int weft_conf_node_enum(const weft_conf_node_t *n, const char *const *choices, int *out, char *err,
                        size_t errlen)
{
    if (!choices || !choices[0]) return weft__errf(err, errlen, WEFT_EINVAL, "no choices");
    weft_conf_option_t o = {.type = WEFT_CONF_ENUM, .choices = choices};
    return weft_conf_node_value(n, &o, out, err, errlen);
}

int weft_conf_node_string(const weft_conf_node_t *n, size_t min_len, size_t max_len,
                          const char **out, char *err, size_t errlen)
{
    weft_conf_option_t o = {
        .type = WEFT_CONF_STRING, .min = (double)min_len, .max = (double)max_len};
    return weft_conf_node_value(n, &o, out, err, errlen);
}

int weft_conf_node_percent(const weft_conf_node_t *n, double *out, char *err, size_t errlen)
{
    int rc = need_scalar(n, "percentage", err, errlen);
    if (rc) return rc;
    char w[512];
    if (weft__conf_parse_percent(n->text, n->len, out, w, sizeof(w)) != 0)
        return node_err(n, false, err, errlen, "%s", w);
    return 0;
}

int weft_conf_node_rate(const weft_conf_node_t *n, double *per_second, char *err, size_t errlen)
{
    int rc = need_scalar(n, "rate", err, errlen);
    if (rc) return rc;
    char w[512];
    if (weft__conf_parse_rate(n->text, n->len, per_second, w, sizeof(w)) != 0)
        return node_err(n, false, err, errlen, "%s", w);
    return 0;
}
