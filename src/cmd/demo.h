/*
 * demo.h - `weft demo` (demo.c), and what it needs from `weft serve` (main.c); internal to
 * the weft binary.
 */
#ifndef WEFT_CMD_DEMO_H
#define WEFT_CMD_DEMO_H

#include <stdio.h>

/** Runs `weft demo ARGS...` (argv[0] is "demo") and returns its exit status: 0 stopped by
 *  a signal with everything it started exited cleanly, 1 a runtime failure, 2 a usage
 *  error (a bad flag or value, the hello example not found). */
int weft__demo_run(int argc, char **argv);

/** Prints `weft demo --help`. */
void weft__demo_usage(FILE *f);

/** The embedded default of `weft serve`'s setting KEY ("api.listen", "dns.listen"...) as
 *  written in its declaration table, or NULL when there is no such key or no default. */
const char *weft__serve_default(const char *key);

#endif
