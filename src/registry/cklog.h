/*
 * cklog.h - each health check's recent status transitions with the output it had then, for
 * the dashboard (GET /v1/weft/checks/ID/history; internal to src/registry, see cklog.c).
 */
#ifndef WEFT_REGISTRY_CKLOG_H
#define WEFT_REGISTRY_CKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "weft/common.h"

#define REG_CKLOG_KEPT       32   /* transitions kept per check */
#define REG_CKLOG_OUTPUT_MAX 256  /* bytes of an output kept (a longer one is cut) */
#define REG_CKLOG_CHECKS     2048 /* checks logged at once */

typedef struct reg_cklog_s reg_cklog_t;

/* An empty log, or NULL when out of memory. */
reg_cklog_t *weft__cklog_new(void);
void weft__cklog_free(reg_cklog_t *l);

/* Check id moved from -> to (from == to: registered with that status) at at_ms (wall clock),
 * its output then being output (NULL: ""). A check seen for the first time takes a free
 * place, else the place of the check whose last transition is oldest (counted as evicted).
 * The control loop (the catalog's writes); NULL l: nothing. */
void weft__cklog_add(reg_cklog_t *l, const char *id, int from, int to, uint64_t at_ms,
                     const char *output);

/* Writes check id's transitions after since_ms, oldest first, as the JSON object of
 * docs/registry.md into b. Returns 0, or WEFT_ENOENT when the log has none for id. Any
 * thread. */
int weft__cklog_json(reg_cklog_t *l, const char *id, uint64_t since_ms, weft_buf_t *b);

#endif
