/*
 * cli.h - the client commands of the weft binary: the registry's (services, instances,
 * register, deregister, checks: cli_registry.c) and the trace store's (traces, trace:
 * cli_traces.c); internal, the frame is cli.c.
 */
#ifndef WEFT_CMD_CLI_H
#define WEFT_CMD_CLI_H

#include <stdio.h>

/**
 * Runs `weft CMD ARGS...` (argv[0] is CMD) when CMD is one of the client commands and
 * returns its exit status: 0 done, 1 the API answered an error or could not be reached,
 * 2 a usage error. Returns -1, having done nothing, when CMD is not one of them.
 */
int weft__cli_run(int argc, char **argv);

/** Prints the client commands for `weft help`: a heading per group, then one line per
 *  command ("  services      ..."). */
void weft__cli_usage(FILE *f);

#endif
