/*
 * strmap.c - the registry's string-keyed hash map (see strmap.h). One thread at a time.
 */
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "registry/strmap.h"

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

void weft_strmap_init(weft_strmap_t *m)
{
    m->slots = NULL;
    m->cap = m->n = 0;
}

void weft_strmap_free(weft_strmap_t *m)
{
    free(m->slots);
    weft_strmap_init(m);
}

static weft_strmap_slot_t *find(const weft_strmap_t *m, const char *key, size_t h)
{
    if (!m->cap) return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        weft_strmap_slot_t *s = &m->slots[i];
        if (!s->key) return NULL;
        if (s->hash == h && strcmp(s->key, key) == 0) return s;
    }
}

void *weft_strmap_get(const weft_strmap_t *m, const char *key)
{
    weft_strmap_slot_t *s = find(m, key, hash(key));
    return s ? s->val : NULL;
}

static void insert(weft_strmap_slot_t *slots, size_t cap, const char *key, void *val, size_t h)
{
    size_t i = h & (cap - 1);
    while (slots[i].key) i = (i + 1) & (cap - 1);
    slots[i] = (weft_strmap_slot_t){key, val, h};
}

int weft_strmap_put(weft_strmap_t *m, const char *key, void *val)
{
    size_t h = hash(key);
    weft_strmap_slot_t *s = find(m, key, h);
    if (s) {
        s->key = key;
        s->val = val;
        return 0;
    }
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        weft_strmap_slot_t *ns = calloc(cap, sizeof(*ns));
        if (!ns) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key)
                insert(ns, cap, m->slots[i].key, m->slots[i].val, m->slots[i].hash);
        free(m->slots);
        m->slots = ns;
        m->cap = cap;
    }
    insert(m->slots, m->cap, key, val, h);
    m->n++;
    return 0;
}

void *weft_strmap_del(weft_strmap_t *m, const char *key)
{
    weft_strmap_slot_t *s = find(m, key, hash(key));
    if (!s) return NULL;
    void *val = s->val;
    size_t mask = m->cap - 1, i = (size_t)(s - m->slots);
    /* Backward shift: move later entries of the cluster into the hole when their home slot
     * does not lie (cyclically) between the hole and them. */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (!m->slots[j].key) break;
        size_t home = m->slots[j].hash & mask;
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->n--;
    return val;
}
