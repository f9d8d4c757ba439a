/* fault_alloc_end.h - ends what fault_alloc_begin.h started. */
#undef malloc
#undef calloc
#undef realloc
#undef aligned_alloc
#undef strdup
