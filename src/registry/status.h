/*
 * status.h - the health of a check, as Consul names it (internal to src/registry).
 *
 * Ordered from best to worst, so that the health of an instance is the worst of its
 * checks' (maintenance is worst of all: an instance in maintenance never passes).
 */
#ifndef WEFT_REGISTRY_STATUS_H
#define WEFT_REGISTRY_STATUS_H

typedef enum weft_health_e {
    WEFT_HEALTH_PASSING = 0,
    WEFT_HEALTH_WARNING = 1,
    WEFT_HEALTH_CRITICAL = 2,
    WEFT_HEALTH_MAINT = 3 /* Consul's "maintenance" (a check of its own, critical) */
} weft_health_t;

/* "passing", "warning", "critical", "maintenance". */
const char *weft__health_name(weft_health_t h);

/* Parses "passing" / "warning" / "critical" (exactly; Consul's casing). Returns 0 and *out,
 * or -1. */
int weft__health_parse(const char *s, size_t n, weft_health_t *out);

#endif
