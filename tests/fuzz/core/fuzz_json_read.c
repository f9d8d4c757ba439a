/*
 * fuzz_json_read.c - arbitrary bytes through the JSON pull reader (core/json_read.h).
 *
 * The input is walked three ways: (A) fully, with the typed calls (peek, object/key,
 * array/next, string, double, bool, null), into a canonical rendering; (B) the same, but at
 * each value a choice drawn from the input's hash either descends or takes the value's raw
 * text and renders that alone with a fresh reader; (C) weft_jr_skip of the whole text.
 * Invariants:
 *   - A and B give the same verdict and, when A passes, the same rendering: a raw value
 *     re-parses to the same structure;
 *   - C fails exactly when A fails, with the same error and offset, but where A stopped at
 *     a number too large for a double (valid JSON: only reading it fails): there C finds
 *     nothing or a later fault;
 *   - an error's offset is within the text;
 *   - jansson (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL) agrees on the
 *     verdict, except for what the reader refuses by its own limit (nesting deeper than
 *     WEFT_JR_MAX_DEPTH) and what jansson refuses by its own (a NUL in a member's name),
 *     when the text holds no NUL byte (which jansson takes for its end);
 *   - every string is valid UTF-8 (by the reference check in this file).
 * The input is the libFuzzer buffer itself, exactly sized, so ASan catches a read past its
 * end. Any violation aborts.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_read.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

typedef struct {
    char *p;
    size_t n, cap;
} out_t;

static void put(out_t *o, const void *s, size_t n)
{
    if (o->n + n > o->cap) {
        size_t cap = (o->n + n) * 2 + 64;
        o->p = realloc(o->p, cap);
        CHECK(o->p);
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static bool utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], len, cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            len = 2, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            len = 3, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            len = 4, cp = c & 0x07;
        else
            return false;
        if (n - i < len) return false;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

typedef struct {
    uint64_t rng; /* 0: always descend */
    bool nul_key; /* a member's name holds a NUL (jansson refuses those) */
    weft_arena_t *a;
} walk_t;

static void render(weft_jr_t *r, walk_t *w, out_t *o);

/* Renders the value text[0..n) alone; false when it does not read. */
static bool render_text(const char *text, size_t n, walk_t *w, out_t *o)
{
    weft_jr_t r;
    weft_jr_init(&r, text, n, w->a);
    render(&r, w, o);
    weft_jr_end(&r);
    return r.err == NULL;
}

static void render_str(weft_jr_str_t s, out_t *o)
{
    CHECK(utf8_ok((const unsigned char *)s.p, s.n));
    char len[24];
    int k = snprintf(len, sizeof(len), "%zu:", s.n);
    put(o, len, (size_t)k);
    put(o, s.p, s.n);
}

static void render(weft_jr_t *r, walk_t *w, out_t *o)
{
    if (w->rng) {
        w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
        if ((w->rng >> 60) < 4) { /* a quarter of the values: raw, re-read alone */
            weft_jr_type_t t = weft_jr_peek(r);
            weft_jr_str_t raw;
            if (t != WEFT_JR_NONE && weft_jr_raw(r, &raw)) {
                CHECK(raw.n > 0 && raw.p >= r->start && raw.p + raw.n <= r->end);
                CHECK(raw.p[0] != ' ' && raw.p[raw.n - 1] != ' ');
                if (!render_text(raw.p, raw.n, w, o)) {
                    /* only a number out of a double's range reads badly from text that
                     * skips well: make the caller's verdict the same */
                    weft_jr_fail(r, "number out of range");
                }
                return;
            }
        }
    }
    weft_jr_str_t s;
    switch (weft_jr_peek(r)) {
    case WEFT_JR_OBJECT:
        weft_jr_object(r);
        put(o, "{", 1);
        while (weft_jr_key(r, &s)) {
            if (memchr(s.p, 0, s.n)) w->nul_key = true;
            render_str(s, o);
            put(o, "=", 1);
            render(r, w, o);
        }
        put(o, "}", 1);
        break;
    case WEFT_JR_ARRAY:
        weft_jr_array(r);
        put(o, "[", 1);
        while (weft_jr_next(r)) {
            render(r, w, o);
            put(o, ",", 1);
        }
        put(o, "]", 1);
        break;
    case WEFT_JR_STRING:
        if (weft_jr_string(r, &s)) render_str(s, o);
        break;
    case WEFT_JR_NUMBER: {
        double d;
        if (weft_jr_double(r, &d)) put(o, &d, sizeof(d));
        break;
    }
    case WEFT_JR_TRUE:
    case WEFT_JR_FALSE: {
        bool b;
        if (weft_jr_bool(r, &b)) put(o, b ? "T" : "F", 1);
        break;
    }
    case WEFT_JR_NULL:
        CHECK(weft_jr_null(r) || r->err);
        put(o, "N", 1);
        break;
    case WEFT_JR_NONE:
        CHECK(!weft_jr_skip(r));
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    weft_arena_t a;
    weft_arena_init(&a, 4096, 1 << 22);

    out_t oa = {0}, ob = {0};
    walk_t wa = {.a = &a}, wb = {.a = &a};
    weft_jr_t ra;
    weft_jr_init(&ra, text, size, &a);
    render(&ra, &wa, &oa);
    weft_jr_end(&ra);
    CHECK(!ra.err || ra.err_off <= size);

    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 1099511628211ull;
    wb.rng = h | 1;
    weft_jr_t rb;
    weft_jr_init(&rb, text, size, &a);
    render(&rb, &wb, &ob);
    weft_jr_end(&rb);
    bool a_range = ra.err && strcmp(ra.err, "number out of range") == 0;
    CHECK((ra.err == NULL) == (rb.err == NULL));
    if (!ra.err) CHECK(oa.n == ob.n && memcmp(oa.p, ob.p, oa.n) == 0);

    weft_jr_t rc;
    weft_jr_init(&rc, text, size, &a);
    weft_jr_skip(&rc);
    weft_jr_end(&rc);
    if (a_range) { /* skip finds nothing wrong there: a later fault, or none */
        CHECK(rc.err == NULL || rc.err_off > ra.err_off);
    } else {
        CHECK((ra.err == NULL) == (rc.err == NULL));
        if (ra.err) CHECK(rc.err_off == ra.err_off && strcmp(rc.err, ra.err) == 0);
    }

    /* jansson takes a NUL byte outside strings for the end of the text */
    bool nul_byte = memchr(text, 0, size) != NULL;
    json_error_t jerr;
    json_t *j =
        json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!nul_byte && j) CHECK(!ra.err || strcmp(ra.err, "nesting too deep") == 0);
    if (!nul_byte && !j && !ra.err) CHECK(wa.nul_key);
    json_decref(j);
    free(oa.p);
    free(ob.p);
    weft_arena_free(&a);
    return 0;
}
