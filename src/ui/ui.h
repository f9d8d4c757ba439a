/*
 * ui.h - the dashboard at /ui/ (internal to the daemon): its embedded files, served on the
 * API port. What the page shows and how it is built: docs/ui.md.
 */
#ifndef WEFT_UI_H
#define WEFT_UI_H

#include <stdbool.h>
#include <stddef.h>

#include "weft/common.h"
#include "weft/service.h"

/**
 * Adds GET (and so HEAD) /ui, /ui/ and /ui/<asset> to the API service svc, before
 * weft_service_run. Returns 0, or a WEFT_E* code with err set to one line.
 */
int weft_ui_register(weft_service_t *svc, char *err, size_t errlen);

/* For the unit tests (tests/unit/ui): whether an Accept-Encoding value v accepts gzip (RFC
 * 9110 12.5.3: "gzip", "x-gzip" or "*" with a q above 0, a coding named outright winning
 * over "*"), and whether an If-None-Match value v matches the entity-tag etag (quoted) by
 * the weak comparison RFC 9110 13.1.2 asks for ("*" matches any). */
bool weft__ui_accepts_gzip(weft_str_t v);
bool weft__ui_etag_matches(weft_str_t v, const char *etag);

#endif
