/*
 * cli.h - the registry's commands of the weft binary: services, instances, register,
 * deregister, checks (internal; the design is in cli_registry.c).
 */
#ifndef WEFT_CMD_CLI_H
#define WEFT_CMD_CLI_H

#include <stdio.h>

/**
 * Runs `weft CMD ARGS...` (argv[0] is CMD) when CMD is one of the registry's commands and
 * returns its exit status: 0 done, 1 the API answered an error or could not be reached,
 * 2 a usage error. Returns -1, having done nothing, when CMD is not one of them.
 */
int weft__cli_run(int argc, char **argv);

/** Prints one line per command ("  services      ...") for `weft help`. */
void weft__cli_usage(FILE *f);

#endif
