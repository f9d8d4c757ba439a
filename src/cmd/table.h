/*
 * table.h - aligned text tables for the command line (internal to the weft binary).
 *
 *     static const weft__col_t cols[] = {{"NAME"}, {"INSTANCES", .right = true},
 *                                        {"TAGS", .max = 40, .flex = true}};
 *     weft__table_t *t = weft__table_new(cols, 3);
 *     weft__table_add(t, "web", NULL);  weft__table_add(t, "2", NULL);  ...
 *     weft__table_print(t, stdout, &opts);
 *     weft__table_free(t);
 *
 * Cells are added left to right, a row after the other; a row is complete after one cell
 * per column. Text is copied and made safe for a terminal: control characters (C0, DEL,
 * C1) become spaces and bytes that are not UTF-8 become '?', so a check's output cannot
 * move the cursor or change colours. Widths count code points (not bytes; East Asian wide
 * characters count as one).
 */
#ifndef WEFT_CMD_TABLE_H
#define WEFT_CMD_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/** A column. */
typedef struct weft__col_s {
    const char *title; /* header, printed as given */
    unsigned max;      /* longest cell shown, in code points, cut with "..." (at least 4);
                          0: never cut (identifiers, which a user copies) */
    bool right;        /* right-aligned (numbers) */
    bool flex;         /* the one column narrowed further to fit opts.width */
} weft__col_t;

typedef struct weft__table_s weft__table_t;

/** How to print. */
typedef struct weft__table_opts_s {
    bool wide;      /* no cutting at all: neither max nor width */
    unsigned width; /* the terminal's columns, or 0 (not a terminal): the flex column is
                       narrowed (to 10 at least) so lines fit */
    bool color;     /* emit the cells' SGR colours */
} weft__table_opts_t;

/** A table of ncols columns (cols must outlive it). Exits with status 1 on out of memory,
 *  as every allocation of the command line does. */
weft__table_t *weft__table_new(const weft__col_t *cols, size_t ncols);

/** Appends the next cell: text ("" prints as "-", NULL as a blank: a row that continues
 *  the one above), and an SGR colour ("31", "1;33") or NULL. */
void weft__table_add(weft__table_t *t, const char *text, const char *sgr);

/** Rows added so far (complete ones). */
size_t weft__table_rows(const weft__table_t *t);

/** Prints the header and the rows: columns two spaces apart, no trailing blanks. */
void weft__table_print(const weft__table_t *t, FILE *f, const weft__table_opts_t *o);

void weft__table_free(weft__table_t *t);

/** Colour of a Consul health status word ("passing" green, "warning" yellow, "critical"
 *  red), or NULL. */
const char *weft__status_sgr(const char *status);

#endif
