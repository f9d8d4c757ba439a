/*
 * autocomplete.h - Zipkin's tag autocomplete (GET /api/v2/autocompleteKeys and
 * /api/v2/autocompleteValues?key=K): the configured tag keys, and the distinct values the
 * stored spans have for one of them (internal; the design is in autocomplete.c's opening
 * comment).
 *
 * Threads: col_ac_keys may be called from any thread (the keys never change after
 * col_ac_new); col_ac_values from any thread, concurrently (one mutex per key, held while
 * that key's values are brought up to date and answered: it may read the store, so call
 * it off the event loops, on the thread pool).
 */
#ifndef WEFT_COLLECTOR_AUTOCOMPLETE_H
#define WEFT_COLLECTOR_AUTOCOMPLETE_H

#include <stddef.h>
#include <stdint.h>

#include "collector/span.h"
#include "collector/store.h"
#include "core/buf.h"

typedef struct col_ac_s col_ac_t;

#define COL_AC_MAX_KEYS      32u        /* keys in collector.autocomplete_keys */
#define COL_AC_KEY_MAX       256u       /* bytes of one key */
#define COL_AC_VALUE_MAX     512u       /* a longer value is not offered (bytes) */
#define COL_AC_BYTES_PER_KEY (1u << 20) /* the values of one key, at most (bytes) */

/* NULL, or what is wrong with keys, a comma-separated list of tag keys (spaces around a
 * key are ignored, empty items skipped): a constant phrase for the configuration's error. */
const char *col_ac_keys_check(const char *keys);

/* The autocomplete of keys (as col_ac_keys_check accepts; NULL or "" for none), keeping at
 * most max_values distinct values (>= 1) and COL_AC_BYTES_PER_KEY bytes per key. 0 and
 * *out, or WEFT_EINVAL / WEFT_ENOMEM. */
int col_ac_new(const char *keys, size_t max_values, col_ac_t **out);
/* NULL is fine. */
void col_ac_free(col_ac_t *ac);

/* Appends the keys to out as a JSON array of strings, sorted (bytewise), without repeats. */
void col_ac_keys(const col_ac_t *ac, weft_buf_t *out);

/* Appends the values stored spans have for key to out as a JSON array of strings, sorted
 * (bytewise): [] when key is not one of the keys. 0, or WEFT_ENOMEM / WEFT_EIO (the store
 * could not be read; out is then unchanged). */
int col_ac_values(col_ac_t *ac, col_store_t *st, col_str_t key, weft_buf_t *out);

#endif
