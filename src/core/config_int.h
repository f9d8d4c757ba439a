/*
 * config_int.h - what the config files share (internal): config_value.c parses and
 * formats single values, config.c loads tables from defaults, file, environment and
 * flags (and builds the trees of WEFT_CONF_TREE options), config_tree.c reads those trees,
 * config_doc.c prints --help and the Markdown reference.
 */
#ifndef WEFT_CORE_CONFIG_INT_H
#define WEFT_CORE_CONFIG_INT_H

#include "weft/config.h"

#define WEFT__CONF_SHOW 64 /* bytes of a value or key shown in a message */

/* One parsed value, before it is stored; s points into the parsed text. */
typedef union weft__conf_value_u {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    int e;
    weft_conf_addr_t a;
    struct {
        const char *p;
        size_t len;
    } s;
} weft__conf_value_t;

/* Room for any option's stored value (what weft__conf_store writes for its type), for a
 * check callback run on a value before it reaches the option's field. */
typedef union weft__conf_stored_u {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    int e;
    weft_conf_addr_t a;
    const char *s;
} weft__conf_stored_t;

/* A node of a tree (WEFT_CONF_TREE). Built by config.c in the weft_conf_t's arena, never
 * changed afterwards. A mapping's values carry their keys; its items are the values in
 * file order. */
struct weft_conf_node_s {
    weft_conf_node_kind_t kind;
    bool quoted;                    /* SCALAR: written in quotes or as a block */
    size_t line, col;               /* where the value starts, 1-based */
    size_t key_line, key_col;       /* in a mapping: where its key starts */
    const char *file;               /* the file's name, escaped for messages */
    const weft_conf_node_t *parent; /* NULL for the root */
    const char *key;                /* in a mapping: its key; the root: the option's key */
    size_t keylen;
    size_t index;                   /* in a list: its index */
    const char *text;               /* SCALAR: NUL-terminated at len */
    size_t len;                     /* SCALAR: bytes of text; SEQ, MAP: items */
    const weft_conf_node_t **items; /* SEQ, MAP: len children */
};

/* Parses text (len bytes, NUL-terminated at len) as o's type into *v. Returns 0, or
 * WEFT_EINVAL with one line in why. No bounds check. Allocates nothing. */
int weft__conf_parse(const weft_conf_option_t *o, const char *text, size_t len,
                     weft__conf_value_t *v, char *why, size_t whylen);

/* Checks *v (parsed from text) against o's bounds. Returns 0 or WEFT_EINVAL with
 * "5000 is above the maximum 1000" in why. */
int weft__conf_check_bounds(const weft_conf_option_t *o, const weft__conf_value_t *v,
                            const char *text, size_t len, char *why, size_t whylen);

/* Stores *v at dst as o's C type. Returns false for WEFT_CONF_STRING, whose storage
 * (a borrowed or an owned copy) is the caller's choice; true otherwise. */
bool weft__conf_store(const weft_conf_option_t *o, const weft__conf_value_t *v, void *dst);

/* Bytes of a target field of type t. */
size_t weft__conf_storage_size(weft_conf_type_t t);

/* True when o has bounds to check (not min == max == 0). */
bool weft__conf_bounded(const weft_conf_option_t *o);

/* Writes s (len bytes) escaped for a one-line message into out (cap bytes, always
 * NUL-terminated): quotes and backslashes escaped, control bytes as \n, \t, \xNN, and at
 * most show bytes of s (cut at a UTF-8 boundary) followed by "..." when longer. */
void weft__conf_escape(char *out, size_t cap, const char *s, size_t len, size_t show);

/* "50%" -> 50 (0 to 100), "100/s" -> 100 (per second; above 0; units s, m, h). Return 0
 * or WEFT_EINVAL with one line in why. */
int weft__conf_parse_percent(const char *text, size_t len, double *out, char *why, size_t whylen);
int weft__conf_parse_rate(const char *text, size_t len, double *out, char *why, size_t whylen);

/* "uint", "duration", "host:port", ... */
const char *weft__conf_type_name(weft_conf_type_t t);

/* The range of o as text ("1..100", "100ms..1h", ">= 1", "<= 64 bytes"); "" if none. */
void weft__conf_bounds_text(const weft_conf_option_t *o, char *out, size_t n);

/* The choices of an ENUM or LOGLEVEL option, joined with sep; "" for other types. */
void weft__conf_choices_text(const weft_conf_option_t *o, const char *sep, char *out, size_t n);

/* Edit distance (insert, delete, substitute, swap two neighbours), ignoring ASCII case;
 * a large number for strings over 64 bytes. */
size_t weft__conf_distance(const char *a, size_t alen, const char *b, size_t blen);

/* True when a suggestion at distance d is worth making for a name of len bytes. */
bool weft__conf_close(size_t d, size_t len);

#endif
