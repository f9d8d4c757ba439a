/*
 * arena.h - a bump allocator freed in one go (internal).
 *
 * Each HTTP exchange owns one: headers, parsed parameters and small response pieces come
 * from it, and weft_arena_reset() gives everything back at the end of the exchange while
 * keeping the first block for the next one, so a keep-alive connection allocates nothing
 * per request in the common case. Owned by one thread at a time; no locking.
 */
#ifndef WEFT_CORE_ARENA_H
#define WEFT_CORE_ARENA_H

#include <stddef.h>

typedef struct weft_arena_block_s weft_arena_block_t;

typedef struct weft_arena_s {
    char *cur;                /* next free byte in head */
    char *end;                /* end of head's space */
    weft_arena_block_t *head; /* newest block; the first block is last in the chain */
    size_t used;              /* bytes handed out since the last reset */
    size_t limit;             /* weft_arena_alloc fails past this many bytes */
    size_t block_size;        /* size of ordinary blocks */
} weft_arena_t;

/* Sets up an arena whose ordinary blocks are block_size bytes and that hands out at most
 * limit bytes between resets. No memory is allocated until the first weft_arena_alloc. */
void weft_arena_init(weft_arena_t *a, size_t block_size, size_t limit);
/* The path of weft_arena_alloc that takes a new block; call weft_arena_alloc. */
void *weft__arena_alloc_slow(weft_arena_t *a, size_t n);

/* Returns n bytes aligned to 16, or NULL when out of memory or past the limit. Inline: a
 * bump of the head block is most calls (every request of a proxy makes several). */
static inline void *weft_arena_alloc(weft_arena_t *a, size_t n)
{
    size_t rounded = (n + 15) & ~(size_t)15;
    if (rounded >= n && a->used + rounded <= a->limit && (size_t)(a->end - a->cur) >= rounded) {
        void *p = a->cur;
        a->cur += rounded;
        a->used += rounded;
        return p;
    }
    return weft__arena_alloc_slow(a, n);
}
/* Copies s (n bytes) and a NUL; NULL on failure. */
char *weft_arena_strndup(weft_arena_t *a, const char *s, size_t n);
/* Frees every block but the first, which is kept for reuse. */
void weft_arena_reset(weft_arena_t *a);
/* Frees everything; the arena may be used again after weft_arena_init. */
void weft_arena_free(weft_arena_t *a);

#endif
