/*
 * strmap.h - a hash map from NUL-terminated strings to pointers (internal).
 *
 * Open addressing with linear probing and backward-shift deletion (no tombstones), FNV-1a
 * hashes, growth at 3/4 load. Keys are not copied: a key must live as long as its entry
 * (the registry's keys are fields of the values they map to). One thread at a time.
 */
#ifndef WEFT_REGISTRY_STRMAP_H
#define WEFT_REGISTRY_STRMAP_H

#include <stddef.h>

typedef struct weft_strmap_slot_s {
    const char *key; /* NULL: empty */
    void *val;
    size_t hash;
} weft_strmap_slot_t;

typedef struct weft_strmap_s {
    weft_strmap_slot_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
} weft_strmap_t;

void weft_strmap_init(weft_strmap_t *m);
void weft_strmap_free(weft_strmap_t *m);
void *weft_strmap_get(const weft_strmap_t *m, const char *key);
/* Sets key to val (replacing the value and the key pointer). Returns 0, or -1 when out of
 * memory (the map is unchanged). */
int weft_strmap_put(weft_strmap_t *m, const char *key, void *val);
/* Removes key and returns its value (NULL if absent). */
void *weft_strmap_del(weft_strmap_t *m, const char *key);

/* Iterate: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... (no changes while
 * iterating). */

#endif
