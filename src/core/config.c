/*
 * config.c - declaration tables to settings: defaults, YAML file, environment, flags.
 *
 * A load is four passes over the same tables, each replacing what the one before set:
 * defaults (parsed from the table's text, so defaults and files share one syntax), the
 * YAML file, the environment, the flags. Before any of them the tables are checked
 * (weft_conf_check) and the flags are scanned, because `--config FILE` names the file;
 * flag values are applied last.
 *
 * The file is read whole (at most WEFT_CONF_MAX_FILE bytes) and parsed twice as libyaml's
 * event stream, never as a document tree. The first pass checks only YAML syntax and
 * nesting (at most WEFT_CONF_MAX_DEPTH levels), so a broken file is reported as broken
 * YAML wherever the break is. The second walks the events against the tables, and the
 * first problem in file order is the one reported: a key path equal to an option's key
 * takes a scalar, a path that is a parent of option keys takes a mapping, anything else is
 * an unknown key (with a "did you mean" by edit distance). Anchors of single values are
 * kept (at most MAX_ANCHORS) so aliases to them work; aliases of mappings would re-walk
 * shared structure and are refused.
 *
 * The value of a WEFT_CONF_TREE option is the one place a tree is built: its events become
 * weft_conf_node_t (config_int.h) in an arena the weft_conf_t owns, each node with its
 * position, its parent and its key or index, so that config_tree.c can name it in
 * messages. The same rules hold inside as outside (no null values, keys unique, aliases
 * of single values only); a tree's scalar text is copied once per anchor, so aliases
 * cannot multiply the file's size, and a tree has at most WEFT_CONF_MAX_NODES nodes. A
 * duplicate key in a tree's mapping is found when the mapping ends (by sorting its keys),
 * so a problem inside a later value of that mapping is reported before it.
 *
 * Invariants: every error is one line in the caller's buffer (keys and values from the
 * input are escaped) and stops the load; a key set twice in the file is an error even when
 * written once nested and once dotted (the option's first position is kept); strings in
 * targets are always NULL or owned by the weft_conf_t, and NULL again after a failed load.
 * Memory: out of memory is returned as WEFT_ENOMEM, never an abort.
 *
 * Runs at start-up on the caller's thread; no global state (reads the environment).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "weft/log.h"
#include "core/arena.h"
#include "core/config_int.h"
#include "core/errbuf.h"

#define MAX_ANCHORS 64 /* anchors kept per file; more is an error */

typedef struct anchor_s {
    char *name;
    char *value; /* NULL for an anchor of a mapping or list */
    size_t len;
    bool null;             /* a plain empty/~/null scalar */
    bool quoted;           /* not a plain scalar */
    const char *tree_text; /* value's copy in the trees' arena, once an alias in a tree used it */
} anchor_t;

typedef struct flagval_s {
    size_t opt;        /* global option index */
    const char *value; /* points into argv, or "true"/"false" */
    int arg;           /* argv index of the flag, for the message */
} flagval_t;

typedef struct loader_s {
    weft_conf_t *conf;
    const weft_conf_section_t *secs;
    size_t nsecs, nopts;
    char *err;
    size_t errlen;
    char fname[512]; /* the file's name, escaped for messages */
    const char *buf; /* the file's bytes while it is walked */
    size_t buflen;
    yaml_parser_t parser;
    size_t *set_line; /* per option: the line where the file set it (0: not set) */
    anchor_t anchors[MAX_ANCHORS];
    size_t nanchors;
    const char *tree_fname; /* fname in the trees' arena, once a tree needed it */
    size_t tree_nodes;      /* nodes of the tree being built */
} loader_t;

#define fail(l, ...) weft__errf((l)->err, (l)->errlen, WEFT_EINVAL, __VA_ARGS__)

static int oom(loader_t *l)
{
    fail(l, "out of memory");
    return WEFT_ENOMEM;
}

static const weft_conf_option_t *opt_at(const loader_t *l, size_t g,
                                        const weft_conf_section_t **sec)
{
    for (size_t s = 0; s < l->nsecs; s++) {
        if (g < l->secs[s].n) {
            if (sec) *sec = &l->secs[s];
            return &l->secs[s].opts[g];
        }
        g -= l->secs[s].n;
    }
    return NULL;
}

/* ---- ownership ---- */

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
    if (!conf) return;
    for (size_t i = 0; i < conf->nowned; i++) free(conf->owned[i]);
    free(conf->owned);
    if (conf->trees) weft_arena_free(conf->trees);
    free(conf->trees);
    memset(conf, 0, sizeof(*conf));
}

/* ---- one value ---- */

/* Parses, checks bounds and stores one value of option g. where: "file:l:c: key",
 * "--flag", "ENV" (already escaped). */
static int set_value(loader_t *l, size_t g, const char *text, size_t len, const char *where)
{
    const weft_conf_section_t *sec = NULL;
    const weft_conf_option_t *o = opt_at(l, g, &sec);
    weft__conf_value_t v;
    char w[512];
    if (weft__conf_parse(o, text, len, &v, w, sizeof(w)) != 0 ||
        weft__conf_check_bounds(o, &v, text, len, w, sizeof(w)) != 0)
        return fail(l, "%s: %s", where, w);
    char *dst = (char *)sec->target + o->offset;
    if (!weft__conf_store(o, &v, dst)) {
        /* A string: an owned copy, freed with the configuration. */
        char *copy = malloc(len + 1);
        if (!copy) return oom(l);
        memcpy(copy, text, len);
        copy[len] = 0;
        if (own(l->conf, copy) != 0) {
            free(copy);
            return oom(l);
        }
        char **slot = (char **)dst;
        if (*slot) disown(l->conf, *slot);
        *slot = copy;
    }
    const char *why = o->check ? o->check(dst) : NULL;
    if (why) { /* the load fails: what was stored goes with it */
        if (o->secret) return fail(l, "%s: %s", where, why);
        weft__conf_escape(w, sizeof(w), text, len, WEFT__CONF_SHOW);
        return fail(l, "%s: %s, got \"%s\"", where, why, w);
    }
    return 0;
}

/* ---- table lookups ---- */

static bool find_key(const loader_t *l, const char *key, size_t *g)
{
    size_t i = 0;
    for (size_t s = 0; s < l->nsecs; s++)
        for (size_t k = 0; k < l->secs[s].n; k++, i++)
            if (strcmp(l->secs[s].opts[k].key, key) == 0) {
                *g = i;
                return true;
            }
    return false;
}

static bool is_parent(const loader_t *l, const char *path)
{
    size_t n = strlen(path);
    for (size_t s = 0; s < l->nsecs; s++)
        for (size_t k = 0; k < l->secs[s].n; k++) {
            const char *key = l->secs[s].opts[k].key;
            if (strncmp(key, path, n) == 0 && key[n] == '.') return true;
        }
    return false;
}

/*
 * A suggestion for an unknown key: name under prefix, path the two joined. Tries, in
 * order: the closest name at the same level ("timout" -> "timeout"), the closest whole key
 * ("net.tmeout" -> "net.timeout"), the key of an option whose last part is close to name's
 * last part (a setting put at the wrong level: "listen" -> "net.listen"). Writes "" when
 * nothing is close.
 */
static void suggest_key(const loader_t *l, const char *prefix, const char *name, size_t nl,
                        const char *path, char *out, size_t n)
{
    size_t pl = strlen(prefix);
    const char *last = strrchr(name, '.');
    last = last ? last + 1 : name;
    out[0] = 0;
    for (int pass = 0; pass < 3 && !out[0]; pass++) {
        size_t best = (size_t)-1;
        for (size_t s = 0; s < l->nsecs; s++)
            for (size_t k = 0; k < l->secs[s].n; k++) {
                const char *key = l->secs[s].opts[k].key, *mine = name, *theirs = key;
                size_t ml = nl, tl;
                if (pass == 0) {
                    if (pl && (strncmp(key, prefix, pl) != 0 || key[pl] != '.')) continue;
                    theirs = pl ? key + pl + 1 : key;
                    tl = strcspn(theirs, ".");
                } else if (pass == 1) {
                    mine = path;
                    ml = strlen(path);
                    tl = strlen(key);
                } else {
                    mine = last;
                    ml = strlen(last);
                    theirs = strrchr(key, '.');
                    theirs = theirs ? theirs + 1 : key;
                    tl = strlen(theirs);
                }
                size_t d = weft__conf_distance(mine, ml, theirs, tl);
                if (d < best && weft__conf_close(d, ml)) {
                    best = d;
                    if (pass == 0)
                        snprintf(out, n, "%.*s", (int)tl, theirs);
                    else
                        snprintf(out, n, "%s", key);
                }
            }
    }
}

/* ---- the file ---- */

/* Line and column (1-based, in characters) of byte offset off in the file. */
static void offset_mark(const loader_t *l, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < l->buflen; i++) {
        unsigned char c = (unsigned char)l->buf[i];
        if (c == '\n') {
            ++*line;
            *col = 1;
        } else if ((c & 0xC0) != 0x80) {
            ++*col;
        }
    }
}

static int yaml_error(loader_t *l)
{
    yaml_parser_t *p = &l->parser;
    if (p->error == YAML_MEMORY_ERROR) return oom(l);
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_READER_ERROR) {
        size_t line, col;
        offset_mark(l, p->problem_offset, &line, &col);
        if (p->problem_value >= 0)
            return fail(l, "%s:%zu:%zu: invalid YAML: %s (byte 0x%02x)", l->fname, line, col,
                        problem, (unsigned)p->problem_value & 0xff);
        return fail(l, "%s:%zu:%zu: invalid YAML: %s", l->fname, line, col, problem);
    }
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->context && (p->context_mark.line != p->problem_mark.line ||
                       p->context_mark.column != p->problem_mark.column))
        return fail(l, "%s:%zu:%zu: invalid YAML: %s %s (which started at %zu:%zu)", l->fname, line,
                    col, problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    if (p->context)
        return fail(l, "%s:%zu:%zu: invalid YAML: %s %s", l->fname, line, col, problem, p->context);
    return fail(l, "%s:%zu:%zu: invalid YAML: %s", l->fname, line, col, problem);
}

static bool plain_null(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        ev->data.scalar.tag)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static char *dup_bytes(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

/* Remembers the anchor an event defines, if any. */
static int keep_anchor(loader_t *l, const yaml_event_t *ev)
{
    const yaml_char_t *name = NULL;
    if (ev->type == YAML_SCALAR_EVENT)
        name = ev->data.scalar.anchor;
    else if (ev->type == YAML_MAPPING_START_EVENT)
        name = ev->data.mapping_start.anchor;
    else if (ev->type == YAML_SEQUENCE_START_EVENT)
        name = ev->data.sequence_start.anchor;
    if (!name) return 0;
    if (l->nanchors == MAX_ANCHORS)
        return fail(l, "%s:%zu:%zu: more than %d anchors", l->fname, ev->start_mark.line + 1,
                    ev->start_mark.column + 1, MAX_ANCHORS);
    anchor_t *a = &l->anchors[l->nanchors];
    memset(a, 0, sizeof(*a));
    a->name = dup_bytes(name, strlen((const char *)name));
    if (!a->name) return oom(l);
    if (ev->type == YAML_SCALAR_EVENT) {
        a->value = dup_bytes(ev->data.scalar.value, ev->data.scalar.length);
        if (!a->value) {
            free(a->name);
            return oom(l);
        }
        a->len = ev->data.scalar.length;
        a->null = plain_null(ev);
        a->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    }
    l->nanchors++;
    return 0;
}

static void drop_anchors(loader_t *l)
{
    for (size_t i = 0; i < l->nanchors; i++) {
        free(l->anchors[i].name);
        free(l->anchors[i].value);
    }
    l->nanchors = 0;
}

/* The latest anchor named like an alias event's, or NULL. */
static anchor_t *find_anchor(loader_t *l, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    for (size_t i = l->nanchors; i > 0; i--)
        if (strcmp(l->anchors[i - 1].name, name) == 0) return &l->anchors[i - 1];
    return NULL;
}

static int next_event(loader_t *l, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&l->parser, ev)) return yaml_error(l);
    int rc = keep_anchor(l, ev);
    if (rc) yaml_event_delete(ev);
    return rc;
}

static const char *kind_name(yaml_event_type_t t)
{
    return t == YAML_MAPPING_START_EVENT ? "a mapping" : "a list";
}

typedef struct seen_s {
    char *name;
    size_t line;
} seen_t;

static int walk_mapping(loader_t *l, const char *prefix, yaml_mark_t at, int depth);
static int build_tree(loader_t *l, size_t g, const yaml_event_t *ev, int depth);

/* One key (event k) and its value of a mapping under prefix; seen: parents so far. */
static int walk_pair(loader_t *l, const char *prefix, int depth, yaml_event_t *k, seen_t **seen,
                     size_t *nseen)
{
    size_t kl = k->start_mark.line + 1, kc = k->start_mark.column + 1;
    if (k->type != YAML_SCALAR_EVENT)
        return fail(l, "%s:%zu:%zu: keys must be names, not %s", l->fname, kl, kc,
                    k->type == YAML_ALIAS_EVENT ? "aliases" : kind_name(k->type));
    const char *name = (const char *)k->data.scalar.value;
    size_t nl = k->data.scalar.length;
    /* path: prefix.name, kept byte for byte (NULs too) up to the buffer, for messages */
    char path[2 * WEFT_CONF_MAX_KEY + 2], shown[WEFT__CONF_SHOW * 4 + 8];
    size_t pl = strlen(prefix), pn = pl + (pl ? 1 : 0) + nl, cut = pn;
    if (cut >= sizeof(path)) cut = sizeof(path) - 1;
    memcpy(path, prefix, pl);
    if (pl) path[pl] = '.';
    memcpy(path + pl + (pl ? 1 : 0), name, cut - pl - (pl ? 1 : 0));
    path[cut] = 0;
    weft__conf_escape(shown, sizeof(shown), path, cut, WEFT__CONF_SHOW);
    if (strlen(name) != nl)
        return fail(l, "%s:%zu:%zu: %s: a key with a NUL byte", l->fname, kl, kc, shown);
    if (pn > WEFT_CONF_MAX_KEY)
        return fail(l, "%s:%zu:%zu: %s: unknown key (longer than any key)", l->fname, kl, kc,
                    shown);
    if (k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp(name, "<<") == 0)
        return fail(l, "%s:%zu:%zu: %s: merge keys are not supported; write the settings out",
                    l->fname, kl, kc, shown);
    size_t g = 0;
    bool leaf = find_key(l, path, &g), parent = !leaf && is_parent(l, path);
    if (!leaf && !parent) {
        char s[WEFT_CONF_MAX_KEY + 1];
        suggest_key(l, prefix, name, nl, path, s, sizeof(s));
        if (s[0])
            return fail(l, "%s:%zu:%zu: %s: unknown key (did you mean \"%s\"?)", l->fname, kl, kc,
                        shown, s);
        return fail(l, "%s:%zu:%zu: %s: unknown key", l->fname, kl, kc, shown);
    }
    if (leaf && l->set_line[g])
        return fail(l, "%s:%zu:%zu: %s: duplicate key (first at line %zu)", l->fname, kl, kc, shown,
                    l->set_line[g]);
    if (parent) {
        for (size_t i = 0; i < *nseen; i++)
            if (strcmp((*seen)[i].name, name) == 0)
                return fail(l, "%s:%zu:%zu: %s: duplicate key (first at line %zu)", l->fname, kl,
                            kc, shown, (*seen)[i].line);
    }

    yaml_event_t v;
    int rc = next_event(l, &v);
    if (rc) return rc;
    size_t vl = v.start_mark.line + 1, vc = v.start_mark.column + 1;
    const char *text = NULL;
    size_t len = 0;
    bool null = false, collection = false;
    if (v.type == YAML_SCALAR_EVENT) {
        text = (const char *)v.data.scalar.value;
        len = v.data.scalar.length;
        null = plain_null(&v);
    } else if (v.type == YAML_ALIAS_EVENT) {
        const anchor_t *a = find_anchor(l, &v);
        if (!a) {
            char an[WEFT__CONF_SHOW * 4 + 8];
            const char *n = (const char *)v.data.alias.anchor;
            weft__conf_escape(an, sizeof(an), n, strlen(n), WEFT__CONF_SHOW);
            rc = fail(l, "%s:%zu:%zu: %s: alias *%s has no anchor before it", l->fname, vl, vc,
                      shown, an);
            goto out;
        }
        text = a->value;
        len = a->len;
        null = a->null;
        collection = !a->value;
    }

    if (leaf && opt_at(l, g, NULL)->type == WEFT_CONF_TREE) {
        if (null) {
            rc = fail(l, "%s:%zu:%zu: %s: no value (write one, or remove the key for the default)",
                      l->fname, vl, vc, shown);
        } else {
            rc = build_tree(l, g, &v, depth + 1);
            if (!rc) l->set_line[g] = kl;
        }
    } else if (leaf) {
        const weft_conf_option_t *o = opt_at(l, g, NULL);
        if (v.type == YAML_MAPPING_START_EVENT || v.type == YAML_SEQUENCE_START_EVENT) {
            rc = fail(l, "%s:%zu:%zu: %s: expected a single %s value, got %s", l->fname, vl, vc,
                      shown, weft__conf_type_name(o->type), kind_name(v.type));
        } else if (collection) {
            rc = fail(l,
                      "%s:%zu:%zu: %s: expected a single %s value, got an alias of a mapping "
                      "or list",
                      l->fname, vl, vc, shown, weft__conf_type_name(o->type));
        } else if (null) {
            rc = fail(l, "%s:%zu:%zu: %s: no value (write one, or remove the key for the default)",
                      l->fname, vl, vc, shown);
        } else {
            char where[sizeof(l->fname) + sizeof(shown) + 48];
            snprintf(where, sizeof(where), "%s:%zu:%zu: %s", l->fname, vl, vc, shown);
            rc = set_value(l, g, text, len, where);
            if (!rc) l->set_line[g] = kl;
        }
    } else if (v.type == YAML_MAPPING_START_EVENT) {
        seen_t *ns = realloc(*seen, (*nseen + 1) * sizeof(**seen));
        char *copy = ns ? dup_bytes(name, nl) : NULL;
        if (ns) *seen = ns;
        if (!copy) {
            rc = oom(l);
            goto out;
        }
        (*seen)[(*nseen)++] = (seen_t){.name = copy, .line = kl};
        rc = walk_mapping(l, path, v.start_mark, depth + 1);
    } else if (collection) {
        rc = fail(l,
                  "%s:%zu:%zu: %s: aliases of mappings are not supported; write the settings "
                  "out",
                  l->fname, vl, vc, shown);
    } else {
        rc = fail(l, "%s:%zu:%zu: %s: expected a mapping of settings", l->fname, vl, vc, shown);
    }
out:
    yaml_event_delete(&v);
    return rc;
}

/* Walks the pairs of a mapping whose start event has been read, up to its end event. */
static int walk_mapping(loader_t *l, const char *prefix, yaml_mark_t at, int depth)
{
    if (depth > WEFT_CONF_MAX_DEPTH)
        return fail(l, "%s:%zu:%zu: mappings nested deeper than %d levels", l->fname, at.line + 1,
                    at.column + 1, WEFT_CONF_MAX_DEPTH);
    seen_t *seen = NULL;
    size_t nseen = 0;
    int rc = 0;
    for (;;) {
        yaml_event_t k;
        rc = next_event(l, &k);
        if (rc) break;
        if (k.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&k);
            break;
        }
        rc = walk_pair(l, prefix, depth, &k, &seen, &nseen);
        yaml_event_delete(&k);
        if (rc) break;
    }
    for (size_t i = 0; i < nseen; i++) free(seen[i].name);
    free(seen);
    return rc;
}

/* ---- trees ---- */

/* "FILE:LINE:COLUMN: PATH: " + fmt for node n (its key's position when at_key). */
static int node_fail(loader_t *l, const weft_conf_node_t *n, bool at_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int node_fail(loader_t *l, const weft_conf_node_t *n, bool at_key, const char *fmt, ...)
{
    char path[1024], what[512];
    weft_conf_node_path(n, path, sizeof(path));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return fail(l, "%s:%zu:%zu: %s: %s", l->fname, at_key ? n->key_line : n->line,
                at_key ? n->key_col : n->col, path, what);
}

/* A new node in the trees' arena under parent, or NULL (out of memory: l->err says so). */
static weft_conf_node_t *new_node(loader_t *l, const weft_conf_node_t *parent)
{
    weft_arena_t *a = l->conf->trees;
    if (!a) {
        a = malloc(sizeof(*a));
        if (!a) return oom(l), NULL;
        weft_arena_init(a, 16384, SIZE_MAX);
        l->conf->trees = a;
    }
    if (!l->tree_fname) l->tree_fname = weft_arena_strndup(a, l->fname, strlen(l->fname));
    weft_conf_node_t *n = l->tree_fname ? weft_arena_alloc(a, sizeof(*n)) : NULL;
    if (!n) return oom(l), NULL;
    memset(n, 0, sizeof(*n));
    n->file = l->tree_fname;
    n->parent = parent;
    return n;
}

static int build_node(loader_t *l, const yaml_event_t *ev, weft_conf_node_t *n, int depth);

/* Orders a mapping's values by key, then by place in the file. */
static int key_order(const void *a, const void *b)
{
    const weft_conf_node_t *x = *(const weft_conf_node_t *const *)a;
    const weft_conf_node_t *y = *(const weft_conf_node_t *const *)b;
    size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    if (x->keylen != y->keylen) return x->keylen < y->keylen ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool same_key(const weft_conf_node_t *x, const weft_conf_node_t *y)
{
    return x->keylen == y->keylen && memcmp(x->key, y->key, x->keylen) == 0;
}

/* The first key in file order that repeats one before it among a mapping's values (the
 * array is sorted in place), as an error; 0 when the keys are unique. */
static int check_duplicates(loader_t *l, weft_conf_node_t **vals, size_t n)
{
    if (n < 2) return 0;
    qsort(vals, n, sizeof(*vals), key_order);
    const weft_conf_node_t *dup = NULL, *first = NULL;
    for (size_t i = 1; i < n; i++) {
        /* in a run of equal keys, the second is the key's first repetition */
        if (!same_key(vals[i - 1], vals[i]) || (i >= 2 && same_key(vals[i - 2], vals[i]))) continue;
        if (!dup || vals[i]->index < dup->index) {
            dup = vals[i];
            first = vals[i - 1];
        }
    }
    if (!dup) return 0;
    return node_fail(l, dup, true, "duplicate key (first at line %zu)", first->key_line);
}

/* The items of a list or the pairs of a mapping (its start event read) up to its end. */
static int build_collection(loader_t *l, weft_conf_node_t *n, int depth)
{
    weft_conf_node_t **tmp = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    for (;;) {
        yaml_event_t k, v;
        rc = next_event(l, &k);
        if (rc) break;
        if (k.type == YAML_MAPPING_END_EVENT || k.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&k);
            break;
        }
        weft_conf_node_t *c = new_node(l, n);
        if (!c) {
            yaml_event_delete(&k);
            rc = WEFT_ENOMEM;
            break;
        }
        c->index = cnt;
        if (n->kind == WEFT_CONF_NODE_MAP) {
            c->key_line = k.start_mark.line + 1;
            c->key_col = k.start_mark.column + 1;
            if (k.type != YAML_SCALAR_EVENT) {
                const char *what = k.type == YAML_ALIAS_EVENT ? "aliases" : kind_name(k.type);
                yaml_event_delete(&k);
                char where[1024];
                weft_conf_node_path(n, where, sizeof(where));
                rc = fail(l, "%s:%zu:%zu: %s: keys must be single values, not %s", l->fname,
                          c->key_line, c->key_col, where, what);
                break;
            }
            c->keylen = k.data.scalar.length;
            c->key =
                weft_arena_strndup(l->conf->trees, (const char *)k.data.scalar.value, c->keylen);
            bool merge = k.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && c->keylen == 2 &&
                         memcmp(c->key ? c->key : "", "<<", 2) == 0;
            yaml_event_delete(&k);
            if (!c->key) {
                rc = oom(l);
                break;
            }
            if (strlen(c->key) != c->keylen) {
                rc = node_fail(l, c, true, "a key with a NUL byte");
                break;
            }
            if (merge) {
                rc = node_fail(l, c, true, "merge keys are not supported; write the settings out");
                break;
            }
            rc = next_event(l, &v);
            if (rc) break;
        } else {
            v = k;
        }
        rc = build_node(l, &v, c, depth);
        yaml_event_delete(&v);
        if (rc) break;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            weft_conf_node_t **t = realloc(tmp, ncap * sizeof(*t));
            if (!t) {
                rc = oom(l);
                break;
            }
            tmp = t;
            cap = ncap;
        }
        tmp[cnt++] = c;
    }
    if (!rc && cnt) {
        n->items = weft_arena_alloc(l->conf->trees, cnt * sizeof(*n->items));
        if (!n->items) rc = oom(l);
    }
    if (!rc) {
        for (size_t i = 0; i < cnt; i++) n->items[i] = tmp[i];
        n->len = cnt;
        if (n->kind == WEFT_CONF_NODE_MAP) rc = check_duplicates(l, tmp, cnt);
    }
    free(tmp);
    return rc;
}

/* Fills n (placed in its parent already, so that errors can name it) from event ev and,
 * for a list or mapping, the events up to its end. depth: levels of nesting of ev. */
static int build_node(loader_t *l, const yaml_event_t *ev, weft_conf_node_t *n, int depth)
{
    n->line = ev->start_mark.line + 1;
    n->col = ev->start_mark.column + 1;
    if (++l->tree_nodes > WEFT_CONF_MAX_NODES) {
        const weft_conf_node_t *root = n;
        while (root->parent) root = root->parent;
        return node_fail(l, root, false,
                         "more than %d nodes (values, lists and mappings) in one setting "
                         "(the one at %zu:%zu)",
                         WEFT_CONF_MAX_NODES, n->line, n->col);
    }
    const char *none = n->parent && n->parent->kind == WEFT_CONF_NODE_SEQ ? "item" : "key";
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (plain_null(ev))
            return node_fail(l, n, false, "no value (write one, or remove the %s)", none);
        n->kind = WEFT_CONF_NODE_SCALAR;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        n->len = ev->data.scalar.length;
        n->text = weft_arena_strndup(l->conf->trees, (const char *)ev->data.scalar.value, n->len);
        return n->text ? 0 : oom(l);
    case YAML_ALIAS_EVENT: {
        anchor_t *a = find_anchor(l, ev);
        if (!a) {
            char an[WEFT__CONF_SHOW * 4 + 8];
            const char *name = (const char *)ev->data.alias.anchor;
            weft__conf_escape(an, sizeof(an), name, strlen(name), WEFT__CONF_SHOW);
            return node_fail(l, n, false, "alias *%s has no anchor before it", an);
        }
        if (!a->value)
            return node_fail(l, n, false,
                             "aliases of mappings and lists are not supported; write it out");
        if (a->null) return node_fail(l, n, false, "no value (write one, or remove the %s)", none);
        if (!a->tree_text) a->tree_text = weft_arena_strndup(l->conf->trees, a->value, a->len);
        if (!a->tree_text) return oom(l);
        n->kind = WEFT_CONF_NODE_SCALAR;
        n->quoted = a->quoted;
        n->text = a->tree_text;
        n->len = a->len;
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (depth > WEFT_CONF_MAX_DEPTH)
            return node_fail(l, n, false, "nested deeper than %d levels", WEFT_CONF_MAX_DEPTH);
        n->kind = ev->type == YAML_MAPPING_START_EVENT ? WEFT_CONF_NODE_MAP : WEFT_CONF_NODE_SEQ;
        return build_collection(l, n, depth + 1);
    default:
        return node_fail(l, n, false, "unexpected YAML (event %d)", (int)ev->type);
    }
}

/* The value of tree option g from event ev (the key's value, not null), stored in the
 * target. depth: levels of nesting of ev. */
static int build_tree(loader_t *l, size_t g, const yaml_event_t *ev, int depth)
{
    const weft_conf_section_t *sec = NULL;
    const weft_conf_option_t *o = opt_at(l, g, &sec);
    weft_conf_node_t *root = new_node(l, NULL);
    if (!root) return WEFT_ENOMEM;
    root->key = weft_arena_strndup(l->conf->trees, o->key, strlen(o->key));
    if (!root->key) return oom(l);
    root->keylen = strlen(o->key);
    l->tree_nodes = 0;
    int rc = build_node(l, ev, root, depth);
    if (!rc) *(const weft_conf_node_t **)((char *)sec->target + o->offset) = root;
    return rc;
}

/* Reads a document's root (its start event already read) and its end event. second:
 * this is a document after the first, which may only be empty. */
static int walk_document(loader_t *l, bool second)
{
    yaml_event_t root;
    int rc = next_event(l, &root);
    if (rc) return rc;
    size_t line = root.start_mark.line + 1, col = root.start_mark.column + 1;
    if (plain_null(&root)) {
        /* an empty document sets nothing */
    } else if (second) {
        rc = fail(l, "%s:%zu:%zu: a second YAML document; only one is read", l->fname, line, col);
    } else if (root.type == YAML_MAPPING_START_EVENT) {
        rc = walk_mapping(l, "", root.start_mark, 1);
    } else {
        rc = fail(l, "%s:%zu:%zu: expected a mapping of settings at the top", l->fname, line, col);
    }
    yaml_event_delete(&root);
    if (rc) return rc;
    yaml_event_t end;
    rc = next_event(l, &end); /* the document end, as the parser guarantees */
    if (!rc) yaml_event_delete(&end);
    return rc;
}

static int walk_stream(loader_t *l)
{
    yaml_event_t ev;
    int rc = next_event(l, &ev); /* stream start */
    if (rc) return rc;
    yaml_event_delete(&ev);
    for (int docs = 0;; docs++) {
        rc = next_event(l, &ev);
        if (rc) return rc;
        yaml_event_type_t t = ev.type;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) return 0;
        rc = walk_document(l, docs > 0);
        if (rc) return rc;
    }
}

static int read_file(loader_t *l, const char *file, char **out, size_t *outlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fail(l, "%s: cannot read: %s", l->fname, strerror(errno));
        return WEFT_ENOENT;
    }
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            if (ncap > WEFT_CONF_MAX_FILE + 1) ncap = WEFT_CONF_MAX_FILE + 1;
            if (ncap == cap) break; /* read one byte past the limit: too large */
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return oom(l);
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (bad) {
        free(buf);
        fail(l, "%s: cannot read: %s", l->fname, strerror(e));
        return WEFT_ENOENT;
    }
    if (n > WEFT_CONF_MAX_FILE) {
        free(buf);
        return fail(l, "%s: larger than the limit of %u bytes", l->fname, WEFT_CONF_MAX_FILE);
    }
    if (!buf) buf = calloc(1, 1);
    if (!buf) return oom(l);
    buf[n] = 0;
    *out = buf;
    *outlen = n;
    return 0;
}

/* The syntax pass: every event of the stream, checking YAML syntax and nesting depth
 * only, so that a broken file is reported as broken YAML before anything in it is judged
 * by the tables. Needs l->parser set up on the file's bytes. */
static int check_syntax(loader_t *l)
{
    int depth = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&l->parser, &ev)) return yaml_error(l);
        yaml_event_type_t t = ev.type;
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) return 0;
        if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) depth--;
        if ((t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) &&
            ++depth > WEFT_CONF_MAX_DEPTH)
            return fail(l, "%s:%zu:%zu: nested deeper than %d levels", l->fname, m.line + 1,
                        m.column + 1, WEFT_CONF_MAX_DEPTH);
    }
}

/* Runs pass (check_syntax or walk_stream) with a fresh parser over the file's bytes. */
static int parse_pass(loader_t *l, int (*pass)(loader_t *))
{
    if (!yaml_parser_initialize(&l->parser)) return oom(l);
    yaml_parser_set_input_string(&l->parser, (const unsigned char *)l->buf, l->buflen);
    int rc = pass(l);
    yaml_parser_delete(&l->parser);
    return rc;
}

static int load_file(loader_t *l, const char *file)
{
    weft__conf_escape(l->fname, sizeof(l->fname), file, strlen(file), 400);
    char *buf = NULL;
    size_t n = 0;
    int rc = read_file(l, file, &buf, &n);
    if (rc) return rc;
    l->buf = buf;
    l->buflen = n;
    l->set_line = calloc(l->nopts + 1, sizeof(size_t));
    if (!l->set_line) rc = oom(l);
    if (!rc) rc = parse_pass(l, check_syntax);
    if (!rc) rc = parse_pass(l, walk_stream);
    drop_anchors(l);
    free(l->set_line);
    l->set_line = NULL;
    l->buf = NULL;
    free(buf);
    return rc;
}

/* ---- flags ---- */

static bool find_flag(const loader_t *l, const char *name, size_t n, size_t *g)
{
    size_t i = 0;
    for (size_t s = 0; s < l->nsecs; s++)
        for (size_t k = 0; k < l->secs[s].n; k++, i++) {
            const char *f = l->secs[s].opts[k].flag;
            if (f && strlen(f) == n && memcmp(f, name, n) == 0) {
                *g = i;
                return true;
            }
        }
    return false;
}

/*
 * An unknown flag's message: the closest flag ("did you mean --workers?"), else the option
 * whose key is close to the name with '-' read as '_' (a file-only setting, or one asked
 * for by its key: --max-headers, --http.max_headers).
 */
static int unknown_flag(loader_t *l, const char *where, const char *name, size_t nl)
{
    size_t best = (size_t)-1, found = 0, g = 0;
    char norm[WEFT_CONF_MAX_KEY + 1];
    size_t ml = nl < WEFT_CONF_MAX_KEY ? nl : WEFT_CONF_MAX_KEY;
    for (size_t i = 0; i < ml; i++) norm[i] = name[i] == '-' ? '_' : name[i];
    norm[ml] = 0;
    for (int pass = 0; pass < 2; pass++) {
        g = 0;
        for (size_t s = 0; s < l->nsecs; s++)
            for (size_t k = 0; k < l->secs[s].n; k++, g++) {
                const weft_conf_option_t *o = &l->secs[s].opts[k];
                size_t d;
                if (pass == 0) {
                    if (!o->flag) continue;
                    d = weft__conf_distance(name, nl, o->flag, strlen(o->flag));
                } else {
                    const char *last = strrchr(o->key, '.');
                    last = last ? last + 1 : o->key;
                    d = weft__conf_distance(norm, ml, o->key, strlen(o->key));
                    size_t d2 = weft__conf_distance(norm, ml, last, strlen(last));
                    if (d2 < d) d = d2;
                }
                if (d < best && weft__conf_close(d, nl)) {
                    best = d;
                    found = g + 1;
                }
            }
    }
    if (!found) return fail(l, "%s: unknown flag (see --help)", where);
    const weft_conf_option_t *o = opt_at(l, found - 1, NULL);
    if (o->flag) return fail(l, "%s: unknown flag (did you mean --%s?)", where, o->flag);
    if (o->env)
        return fail(l, "%s: unknown flag; %s is set in the config file or with %s", where, o->key,
                    o->env);
    return fail(l, "%s: unknown flag; %s is set in the config file", where, o->key);
}

static bool dashdash(const char *a)
{
    return a[0] == '-' && a[1] == '-';
}

/*
 * Reads argv's flags into vals (not applied yet) and the --config file into *cfg. Stops at
 * the first positional argument or after `--` when argi is given (*argi: where it stopped);
 * without argi both are errors.
 */
static int scan_flags(loader_t *l, int argc, char **argv, int *argi, flagval_t *vals, size_t *nvals,
                      const char **cfg)
{
    *nvals = 0;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        char where[WEFT__CONF_SHOW * 4 + 16];
        bool end = strcmp(a, "--") == 0;
        if (end || !dashdash(a)) {
            if (end) i++; /* skip the "--" */
            if (argi || i >= argc) break;
            a = argv[i]; /* without argi, a positional argument is a mistake */
            weft__conf_escape(where, sizeof(where), a, strlen(a), WEFT__CONF_SHOW);
            return fail(l, "%s: unexpected argument (flags look like --name value)", where);
        }
        int at = i;
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        char shown[WEFT__CONF_SHOW * 4 + 8];
        weft__conf_escape(shown, sizeof(shown), name, nl, WEFT__CONF_SHOW);
        snprintf(where, sizeof(where), "--%s", shown);
        const char *value = eq ? eq + 1 : NULL;
        if (nl == 6 && memcmp(name, "config", 6) == 0) {
            if (!value && i + 1 < argc && !dashdash(argv[i + 1])) value = argv[++i];
            if (!value || !*value) return fail(l, "--config: needs a file name");
            *cfg = value;
            continue;
        }
        size_t g = 0;
        bool negated = false;
        if (!find_flag(l, name, nl, &g)) {
            if (nl > 3 && memcmp(name, "no-", 3) == 0 && find_flag(l, name + 3, nl - 3, &g) &&
                opt_at(l, g, NULL)->type == WEFT_CONF_BOOL)
                negated = true;
            else
                return unknown_flag(l, where, name, nl);
        }
        if (opt_at(l, g, NULL)->type == WEFT_CONF_BOOL && !value) {
            value = negated ? "false" : "true";
        } else if (negated) {
            return fail(l, "%s: takes no value", where);
        } else if (!value) {
            if (i + 1 >= argc || dashdash(argv[i + 1]))
                return fail(l, "%s: needs a value (--%s=VALUE for one that starts with --)", where,
                            shown);
            value = argv[++i];
        }
        vals[(*nvals)++] = (flagval_t){.opt = g, .value = value, .arg = at};
    }
    if (argi) *argi = i < argc ? i : argc;
    return 0;
}

/* The flag of argv[fv->arg] as written, for messages: "--workers", "--no-tls". */
static void flag_where(char **argv, const flagval_t *fv, char *out, size_t n)
{
    const char *name = argv[fv->arg] + 2;
    size_t nl = strcspn(name, "=");
    char shown[WEFT__CONF_SHOW * 4 + 8];
    weft__conf_escape(shown, sizeof(shown), name, nl, WEFT__CONF_SHOW);
    snprintf(out, n, "--%s", shown);
}

/* ---- load ---- */

int weft_conf_load_args(weft_conf_t *conf, const weft_conf_section_t *secs, size_t nsecs,
                        const char *file, int argc, char **argv, int *argi, char *err,
                        size_t errlen)
{
    if (err && errlen) err[0] = 0;
    if (argi) *argi = argc > 0 ? argc : 0;
    if (!conf) return WEFT_EINVAL;
    memset(conf, 0, sizeof(*conf));
    loader_t l = {.conf = conf, .secs = secs, .nsecs = nsecs, .err = err, .errlen = errlen};
    if (argc < 0 || (argc > 0 && !argv)) return fail(&l, "no arguments (argc %d)", argc);
    int rc = weft_conf_check(secs, nsecs, err, errlen);
    if (rc) return rc;
    for (size_t s = 0; s < nsecs; s++) l.nopts += secs[s].n;

    flagval_t *vals = malloc(((size_t)argc + 1) * sizeof(*vals));
    if (!vals) return oom(&l);
    size_t nvals = 0;
    const char *cfg = NULL;
    rc = scan_flags(&l, argc, argv, argi, vals, &nvals, &cfg);
    if (rc) {
        free(vals);
        return rc;
    }

    /* defaults: every field is written, so none keeps what the caller left in it */
    for (size_t g = 0; g < l.nopts; g++) {
        const weft_conf_section_t *sec;
        const weft_conf_option_t *o = opt_at(&l, g, &sec);
        memset((char *)sec->target + o->offset, 0, weft__conf_storage_size(o->type));
    }
    for (size_t g = 0; g < l.nopts && !rc; g++) {
        const weft_conf_option_t *o = opt_at(&l, g, NULL);
        if (!o->def) continue;
        char where[WEFT_CONF_MAX_KEY + 32];
        snprintf(where, sizeof(where), "default of %s", o->key);
        rc = set_value(&l, g, o->def, strlen(o->def), where);
    }

    if (cfg) file = cfg;
    if (!rc && file) {
        rc = load_file(&l, file);
        if (!rc) conf->file = file;
    }

    for (size_t g = 0; g < l.nopts && !rc; g++) {
        const weft_conf_option_t *o = opt_at(&l, g, NULL);
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v) rc = set_value(&l, g, v, strlen(v), o->env);
    }

    for (size_t i = 0; i < nvals && !rc; i++) {
        char where[WEFT__CONF_SHOW * 4 + 16];
        flag_where(argv, &vals[i], where, sizeof(where));
        rc = set_value(&l, vals[i].opt, vals[i].value, strlen(vals[i].value), where);
    }
    free(vals);

    if (rc) {
        for (size_t g = 0; g < l.nopts; g++) {
            const weft_conf_section_t *sec;
            const weft_conf_option_t *o = opt_at(&l, g, &sec);
            if (o->type == WEFT_CONF_STRING || o->type == WEFT_CONF_TREE)
                *(void **)((char *)sec->target + o->offset) = NULL;
        }
        weft_conf_free(conf);
        if (argi) *argi = argc;
    }
    return rc;
}

int weft_conf_load(weft_conf_t *conf, const weft_conf_section_t *secs, size_t nsecs,
                   const char *file, int argc, char **argv, char *err, size_t errlen)
{
    return weft_conf_load_args(conf, secs, nsecs, file, argc, argv, NULL, err, errlen);
}

/* ---- checking the tables ---- */

static bool name_ok(const char *s, size_t max, bool dots, bool dashes)
{
    size_t n = strlen(s), comps = 1;
    if (n == 0 || n > max) return false;
    if (!isalnum((unsigned char)s[0]) && s[0] != '_') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_') continue;
        if (c == '-' && dashes) continue;
        if (c == '.' && dots && i + 1 < n && s[i + 1] != '.') {
            comps++;
            continue;
        }
        return false;
    }
    return comps <= WEFT_CONF_MAX_DEPTH;
}

/* True when a is b's parent ("net" and "net.port"). */
static bool parent_of(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && b[n] == '.';
}

int weft_conf_check(const weft_conf_section_t *secs, size_t nsecs, char *err, size_t errlen)
{
    loader_t l = {.secs = secs, .nsecs = nsecs, .err = err, .errlen = errlen};
    if (nsecs && !secs) return fail(&l, "no sections");
    for (size_t s = 0; s < nsecs; s++) {
        const weft_conf_section_t *sec = &secs[s];
        const char *sn = sec->name ? sec->name : "(unnamed)";
        if (sec->n && (!sec->opts || !sec->target))
            return fail(&l, "%s: no options or no target struct", sn);
        for (size_t i = 0; i < sec->n; i++) {
            const weft_conf_option_t *o = &sec->opts[i];
            if (!o->key) return fail(&l, "%s: option %zu: no key", sn, i);
            const char *k = o->key;
            if (!name_ok(k, WEFT_CONF_MAX_KEY, true, true))
                return fail(&l,
                            "%s: %s: a key is names of letters, digits, '_' and '-' joined "
                            "by dots, at most %d levels and %d bytes",
                            sn, k, WEFT_CONF_MAX_DEPTH, WEFT_CONF_MAX_KEY);
            if ((unsigned)o->type > WEFT_CONF_TREE)
                return fail(&l, "%s: %s: unknown type %d", sn, k, (int)o->type);
            if (o->type == WEFT_CONF_TREE) {
                if (o->def) return fail(&l, "%s: %s: a list/map (YAML) has no default", sn, k);
                if (o->flag || o->env)
                    return fail(&l,
                                "%s: %s: a list/map (YAML) is set in the file only, not with "
                                "a flag or an environment variable",
                                sn, k);
                if (o->check)
                    return fail(&l,
                                "%s: %s: check does not apply to a list/map (YAML); validate it "
                                "with the weft_conf_node readers after the load",
                                sn, k);
            }
            if (o->type == WEFT_CONF_ENUM) {
                if (!o->choices || !o->choices[0])
                    return fail(&l, "%s: %s: an enum needs choices", sn, k);
                for (int c = 0; o->choices[c]; c++) {
                    if (c >= 64) return fail(&l, "%s: %s: more than 64 choices", sn, k);
                    if (!o->choices[c][0]) return fail(&l, "%s: %s: an empty choice", sn, k);
                    for (int d = 0; d < c; d++)
                        if (strcmp(o->choices[c], o->choices[d]) == 0)
                            return fail(&l, "%s: %s: choice \"%s\" twice", sn, k, o->choices[c]);
                }
            } else if (o->choices) {
                return fail(&l, "%s: %s: choices are for enum options", sn, k);
            }
            if (isnan(o->min) || isnan(o->max)) return fail(&l, "%s: %s: a bound is NaN", sn, k);
            if (weft__conf_bounded(o)) {
                switch (o->type) {
                case WEFT_CONF_BOOL:
                case WEFT_CONF_ADDR:
                case WEFT_CONF_ENUM:
                case WEFT_CONF_LOGLEVEL:
                case WEFT_CONF_TREE:
                    return fail(&l, "%s: %s: bounds do not apply to a %s", sn, k,
                                weft__conf_type_name(o->type));
                default:
                    break;
                }
                if (o->min > o->max) return fail(&l, "%s: %s: min is above max", sn, k);
                if (o->type != WEFT_CONF_INT && o->type != WEFT_CONF_DOUBLE && o->max < 0)
                    return fail(&l, "%s: %s: max is below 0 for a %s", sn, k,
                                weft__conf_type_name(o->type));
            }
            if (o->flag && (!name_ok(o->flag, 64, false, true) || strcmp(o->flag, "config") == 0 ||
                            strcmp(o->flag, "help") == 0))
                return fail(&l,
                            "%s: %s: flag \"%s\": letters, digits, '_' and '-', at most 64 "
                            "bytes, not config or help",
                            sn, k, o->flag);
            if (o->env &&
                (!name_ok(o->env, 128, false, false) || isdigit((unsigned char)o->env[0])))
                return fail(&l, "%s: %s: environment variable \"%s\": letters, digits and '_'", sn,
                            k, o->env);
            if (o->def) {
                weft__conf_value_t v;
                char w[512];
                size_t dl = strlen(o->def);
                if (weft__conf_parse(o, o->def, dl, &v, w, sizeof(w)) != 0 ||
                    weft__conf_check_bounds(o, &v, o->def, dl, w, sizeof(w)) != 0)
                    return fail(&l, "%s: %s: default: %s", sn, k, w);
                weft__conf_stored_t stored;
                if (!weft__conf_store(o, &v, &stored)) stored.s = o->def;
                const char *why = o->check ? o->check(&stored) : NULL;
                if (why) return fail(&l, "%s: %s: default: %s", sn, k, why);
            }
            /* against every option before this one, in any section */
            for (size_t s2 = 0; s2 <= s; s2++) {
                for (size_t j = 0; j < (s2 == s ? i : secs[s2].n); j++) {
                    const weft_conf_option_t *p = &secs[s2].opts[j];
                    if (strcmp(p->key, k) == 0)
                        return fail(&l, "%s: %s: key declared twice", sn, k);
                    if (p->type == WEFT_CONF_TREE && parent_of(p->key, k))
                        return fail(&l, "%s: %s: no key can be nested below the list/map %s", sn, k,
                                    p->key);
                    if (o->type == WEFT_CONF_TREE && parent_of(k, p->key))
                        return fail(&l, "%s: %s: no key can be nested below the list/map %s", sn,
                                    p->key, k);
                    if (parent_of(p->key, k) || parent_of(k, p->key))
                        return fail(&l, "%s: %s: a key cannot also be the parent of another (%s)",
                                    sn, k, p->key);
                    if (o->flag && p->flag) {
                        if (strcmp(o->flag, p->flag) == 0)
                            return fail(&l, "%s: %s: flag --%s declared twice", sn, k, o->flag);
                        const weft_conf_option_t *b = o->type == WEFT_CONF_BOOL ? o : p;
                        const weft_conf_option_t *x = b == o ? p : o;
                        if (b->type == WEFT_CONF_BOOL && strncmp(x->flag, "no-", 3) == 0 &&
                            strcmp(x->flag + 3, b->flag) == 0)
                            return fail(&l, "%s: %s: flag --%s is also the negation of --%s", sn, k,
                                        x->flag, b->flag);
                    }
                    if (o->env && p->env && strcmp(o->env, p->env) == 0)
                        return fail(&l, "%s: %s: environment variable %s declared twice", sn, k,
                                    o->env);
                }
            }
        }
    }
    return 0;
}
