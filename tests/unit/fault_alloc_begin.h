/*
 * fault_alloc_begin.h - included before a .c file that a test builds into itself, so that
 * its allocations go through fault_alloc.h's failing wrappers; fault_alloc_end.h after it.
 * No include guard: each begin/end pair wraps its own files.
 */
#define malloc        oom_malloc
#define calloc        oom_calloc
#define realloc       oom_realloc
#define aligned_alloc oom_aligned_alloc
#define strdup        oom_strdup
