/*
 * assert.h - WEFT_ASSERT, the assertion of a proven invariant (internal).
 *
 * WEFT_ASSERT(cond) states something the code has proven, such as the from-state of a
 * state machine's transition (STYLE.md 12). It is checked where bugs are hunted: in builds
 * without NDEBUG (CMake's Debug, so the ASan/UBSan and TSan trees) and in any build made
 * with a sanitizer; there a false condition prints file:line, the function and the
 * condition to stderr and aborts. In Release (NDEBUG, no sanitizer) it compiles to nothing
 * and cond is not evaluated, so cond must have no side effects.
 *
 * Never assert on input from the network, a file or a caller of the public API: those are
 * handled (SQLite's rule, STYLE.md). Threads: any.
 */
#ifndef WEFT_CORE_ASSERT_H
#define WEFT_CORE_ASSERT_H

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if !defined(NDEBUG) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) ||           \
    __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WEFT_ASSERT_ON 1
#else
#define WEFT_ASSERT_ON 0
#endif

/* Prints "file:line: func: assertion `cond' failed" and aborts. */
_Noreturn void weft__assert_fail(const char *cond, const char *file, int line, const char *func);

#if WEFT_ASSERT_ON
#define WEFT_ASSERT(cond)                                                                          \
    ((cond) ? (void)0 : weft__assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define WEFT_ASSERT(cond) ((void)sizeof(!(cond))) /* not evaluated; names stay "used" */
#endif

#endif
