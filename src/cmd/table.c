/*
 * table.c - aligned text tables for the command line (see table.h).
 *
 * A table keeps its cells as sanitized copies with their widths, then prints in two
 * passes: the widths of the columns (each cell as shown: cut to the column's max, the flex
 * column narrowed until a line fits the terminal), then the lines. Cut text ends in "..."
 * (ASCII, so that the output stays ASCII-clean when the input was). Colours wrap the text
 * only, never the padding, so alignment does not depend on them.
 *
 * Invariants: every stored cell is valid UTF-8 without control characters, and its width
 * is its number of code points. Memory: allocation failure prints "out of memory" and
 * exits with status 1 (the policy of the whole command line, a short-lived process that
 * has nothing to save). Threads: the caller's only.
 */
#include "cmd/table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct weft__table_s {
    const weft__col_t *cols;
    size_t ncols;
    char **text;      /* cells, row-major */
    unsigned *width;  /* code points of each cell */
    const char **sgr; /* colour of each cell, or NULL */
    size_t n, cap;    /* cells */
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("weft: out of memory\n", stderr);
        exit(1);
    }
    return q;
}

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), and its code point in
 * *cp; 0 when s does not start one (overlong forms, surrogates and values past U+10FFFF
 * are not well-formed). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, v = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, v = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, v = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* A copy of s safe to print (see table.h), and its width in *w. */
static char *sanitize(const char *s, unsigned *w)
{
    size_t n = strlen(s);
    char *out = xrealloc(NULL, n + 1); /* never longer: each replacement is one byte */
    size_t k = 0;
    unsigned width = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_seq((const unsigned char *)s + i, n - i, &cp);
        if (len == 0) {
            out[k++] = '?';
            i++;
        } else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
            out[k++] = ' ';
            i += len;
        } else {
            memcpy(out + k, s + i, len);
            k += len;
            i += len;
        }
        width++;
    }
    out[k] = 0;
    *w = width;
    return out;
}

weft__table_t *weft__table_new(const weft__col_t *cols, size_t ncols)
{
    weft__table_t *t = xrealloc(NULL, sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->cols = cols;
    t->ncols = ncols;
    return t;
}

void weft__table_add(weft__table_t *t, const char *text, const char *sgr)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->text = xrealloc(t->text, t->cap * sizeof(*t->text));
        t->width = xrealloc(t->width, t->cap * sizeof(*t->width));
        t->sgr = xrealloc(t->sgr, t->cap * sizeof(*t->sgr));
    }
    t->text[t->n] = sanitize(!text ? "" : *text ? text : "-", &t->width[t->n]);
    t->sgr[t->n] = sgr;
    t->n++;
}

size_t weft__table_rows(const weft__table_t *t)
{
    return t->n / t->ncols;
}

/* Width cell text of width w takes in a column that shows at most max (0: no limit). */
static unsigned shown(unsigned w, unsigned max)
{
    return max && w > max ? max : w;
}

/* Prints text (width w) in at most max code points: whole, or cut with "...". */
static void put_cut(FILE *f, const char *text, unsigned w, unsigned max)
{
    if (!max || w <= max) {
        fputs(text, f);
        return;
    }
    unsigned keep = max > 3 ? max - 3 : 0;
    const unsigned char *p = (const unsigned char *)text;
    for (unsigned i = 0; i < keep; i++) {
        size_t len = 1;
        while ((p[len] & 0xc0) == 0x80) len++; /* text is well-formed (sanitize) */
        fwrite(p, 1, len, f);
        p += len;
    }
    fputs("...", f);
}

static void pad(FILE *f, unsigned n)
{
    while (n--) fputc(' ', f);
}

void weft__table_print(const weft__table_t *t, FILE *f, const weft__table_opts_t *o)
{
    size_t nc = t->ncols, rows = weft__table_rows(t);
    unsigned *lim = xrealloc(NULL, nc * sizeof(*lim)), *colw = xrealloc(NULL, nc * sizeof(*colw));
    unsigned total = 0;
    size_t flex = nc;
    for (size_t c = 0; c < nc; c++) {
        lim[c] = o->wide ? 0 : t->cols[c].max;
        if (lim[c] && lim[c] < 4) lim[c] = 4;
        colw[c] = (unsigned)strlen(t->cols[c].title);
        for (size_t r = 0; r < rows; r++) {
            unsigned w = shown(t->width[r * nc + c], lim[c]);
            if (w > colw[c]) colw[c] = w;
        }
        total += colw[c] + (c ? 2 : 0);
        if (t->cols[c].flex) flex = c;
    }
    if (!o->wide && o->width && total > o->width && flex < nc && colw[flex] > 10) {
        unsigned over = total - o->width, minw = 10;
        if (minw < strlen(t->cols[flex].title)) minw = (unsigned)strlen(t->cols[flex].title);
        unsigned nw = colw[flex] > over + minw ? colw[flex] - over : minw;
        if (nw < colw[flex]) colw[flex] = lim[flex] = nw;
    }
    for (size_t r = 0; r <= rows; r++) {
        /* the last cell that is not blank ends the line: no trailing blanks */
        size_t end = nc;
        while (r && end > 1 && !*t->text[(r - 1) * nc + end - 1]) end--;
        for (size_t c = 0; c < end; c++) {
            const char *text = r ? t->text[(r - 1) * nc + c] : t->cols[c].title;
            unsigned w = r ? shown(t->width[(r - 1) * nc + c], lim[c]) : (unsigned)strlen(text);
            const char *sgr = r && o->color ? t->sgr[(r - 1) * nc + c] : NULL;
            if (c) pad(f, 2);
            if (t->cols[c].right) pad(f, colw[c] - w);
            if (sgr) fprintf(f, "\033[%sm", sgr);
            if (r)
                put_cut(f, text, t->width[(r - 1) * nc + c], lim[c]);
            else
                fputs(text, f);
            if (sgr) fputs("\033[0m", f);
            if (!t->cols[c].right && c + 1 < end) pad(f, colw[c] - w);
        }
        fputc('\n', f);
    }
    free(lim);
    free(colw);
}

void weft__table_free(weft__table_t *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) free(t->text[i]);
    free(t->text);
    free(t->width);
    free(t->sgr);
    free(t);
}

const char *weft__status_sgr(const char *status)
{
    if (!status) return NULL;
    if (strcmp(status, "passing") == 0) return "32";
    if (strcmp(status, "warning") == 0) return "33";
    if (strcmp(status, "critical") == 0) return "31";
    return NULL;
}
