/*
 * arena.c - bump allocation in blocks, released all at once (see arena.h).
 *
 * Blocks form a singly linked list, newest first. Requests larger than a quarter of the
 * block size get a block of their own so that one large allocation does not waste the rest
 * of a block. Reset frees all blocks except the oldest (the first allocated, ordinary-sized
 * one), which becomes the head again. Never aborts: out of memory returns NULL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

struct weft_arena_block_s {
    weft_arena_block_t *next;
    size_t size; /* bytes of data after the header */
    _Alignas(16) char data[];
};

void weft_arena_init(weft_arena_t *a, size_t block_size, size_t limit)
{
    memset(a, 0, sizeof(*a));
    a->block_size = block_size < 256 ? 256 : block_size;
    a->limit = limit;
}

static weft_arena_block_t *block_new(size_t size)
{
    weft_arena_block_t *b = malloc(sizeof(*b) + size);
    if (!b) return NULL;
    b->size = size;
    b->next = NULL;
    return b;
}

void *weft__arena_alloc_slow(weft_arena_t *a, size_t n)
{
    size_t rounded = (n + 15) & ~(size_t)15;
    if (rounded < n || a->used + rounded > a->limit) return NULL;
    if ((size_t)(a->end - a->cur) >= rounded) {
        void *p = a->cur;
        a->cur += rounded;
        a->used += rounded;
        return p;
    }
    if (rounded > a->block_size / 4 && a->head) {
        /* Large: a block of its own, linked behind the head so the head keeps filling. */
        weft_arena_block_t *b = block_new(rounded);
        if (!b) return NULL;
        b->next = a->head->next;
        a->head->next = b;
        a->used += rounded;
        return b->data;
    }
    size_t size = rounded > a->block_size ? rounded : a->block_size;
    weft_arena_block_t *b = block_new(size);
    if (!b) return NULL;
    b->next = a->head;
    a->head = b;
    a->cur = b->data + rounded;
    a->end = b->data + size;
    a->used += rounded;
    return b->data;
}

char *weft_arena_strndup(weft_arena_t *a, const char *s, size_t n)
{
    char *p = weft_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void weft_arena_reset(weft_arena_t *a)
{
    /* One block of block_size is kept for the next use: the first found, wherever an
     * outsized one was linked in the chain (a large one goes behind the head). */
    weft_arena_block_t *keep = NULL, *b = a->head;
    while (b) {
        weft_arena_block_t *next = b->next;
        if (!keep && b->size == a->block_size)
            keep = b;
        else
            free(b);
        b = next;
    }
    a->used = 0;
    a->head = keep;
    if (!keep) {
        a->cur = a->end = NULL;
        return;
    }
    keep->next = NULL;
    a->cur = keep->data;
    a->end = keep->data + keep->size;
}

void weft_arena_free(weft_arena_t *a)
{
    weft_arena_block_t *b = a->head;
    while (b) {
        weft_arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->cur = a->end = NULL;
    a->used = 0;
}
