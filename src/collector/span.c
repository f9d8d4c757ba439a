/*
 * span.c - what every decoder shares about a decoded span (collector/span.h): the limits
 * it must keep (col_span_check), how a refused span is recorded in its batch
 * (col_batch_reject), and the lookup of a string attribute (col_attr_str).
 *
 * A span over a limit is refused alone (OTLP's partial_success), not its whole request:
 * the request was well formed, only this span is more than the store keeps. The words are
 * OTLP's field names whatever the format the span came in, so that a Zipkin client and an
 * OTLP one read the same refusal for the same fault.
 *
 * Checked: both ids not all zero, end not before start, the name and every key and value
 * within their lengths, attribute/event/link counts, and all of the span's own strings
 * together within COL_MAX_SPAN_BYTES. The resource's and scope's attributes are checked
 * with each of their spans (a fault there refuses those spans): a few comparisons per
 * attribute, which is little next to decoding them.
 *
 * A message that names an index ("attributes[3].key ...") is formatted into a buffer of
 * the calling thread, valid until its next call of col_span_check; col_batch_reject copies
 * it at once. Otherwise pure functions.
 */
#include <stdio.h>
#include <string.h>

#include "collector/span.h"

static _Thread_local char why_buf[192];

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

/* What is wrong with attrs[0..n), or NULL; *bytes grows by their strings' lengths. The
 * message names them as `what`, or as `what`[index].`what2` when index >= 0 (formatted
 * only when something is wrong: this runs for every attribute of every span). */
static const char *attrs_check(const col_attr_t *attrs, uint32_t n, const char *what, int index,
                               const char *what2, uint64_t *bytes)
{
    char name[64];
    const char *fault = NULL;
    uint32_t at = 0;
    if (n > COL_MAX_ATTRS) {
        fault = "count";
    } else {
        for (uint32_t i = 0; i < n && !fault; i++) {
            const col_attr_t *a = &attrs[i];
            at = i;
            if (a->key.n > COL_KEY_MAX) {
                fault = "key";
                break;
            }
            *bytes += a->key.n;
            switch (a->type) {
            case COL_V_STRING:
            case COL_V_BYTES:
            case COL_V_ARRAY:
            case COL_V_KVLIST:
                if (a->v.s.n > COL_VALUE_MAX) fault = "value";
                *bytes += a->v.s.n;
                break;
            default:
                break;
            }
        }
    }
    if (!fault) return NULL;
    if (index >= 0)
        snprintf(name, sizeof(name), "%s[%d].%s", what, index, what2);
    else
        snprintf(name, sizeof(name), "%s", what);
    if (fault[0] == 'c')
        snprintf(why_buf, sizeof(why_buf), "%s: more than %u attributes", name, COL_MAX_ATTRS);
    else if (fault[0] == 'k')
        snprintf(why_buf, sizeof(why_buf), "%s[%u].key is longer than %u bytes", name, at,
                 COL_KEY_MAX);
    else
        snprintf(why_buf, sizeof(why_buf), "%s[%u].value is longer than %u bytes", name, at,
                 COL_VALUE_MAX);
    return why_buf;
}

/* `what` (or `what`[index].name) when name is over its limit, else NULL. */
static const char *name_check(col_str_t name, const char *what, int index)
{
    if (name.n <= COL_NAME_MAX) return NULL;
    if (index >= 0)
        snprintf(why_buf, sizeof(why_buf), "%s[%d].name is longer than %u bytes", what, index,
                 COL_NAME_MAX);
    else
        snprintf(why_buf, sizeof(why_buf), "%s is longer than %u bytes", what, COL_NAME_MAX);
    return why_buf;
}

const char *col_span_check(const col_span_t *s)
{
    if (all_zero(s->trace_id, sizeof(s->trace_id))) return "traceId is all zero";
    if (all_zero(s->span_id, sizeof(s->span_id))) return "spanId is all zero";
    if (s->end_ns < s->start_ns) return "endTimeUnixNano is before startTimeUnixNano";
    const char *why;
    if ((why = name_check(s->name, "name", -1))) return why;
    uint64_t bytes = s->name.n + s->trace_state.n + s->status_message.n + s->remote.service.n;
    if ((why = attrs_check(s->attrs, s->nattrs, "attributes", -1, NULL, &bytes))) return why;
    if (s->nevents > COL_MAX_EVENTS) {
        snprintf(why_buf, sizeof(why_buf), "events: more than %u events", COL_MAX_EVENTS);
        return why_buf;
    }
    if (s->nlinks > COL_MAX_LINKS) {
        snprintf(why_buf, sizeof(why_buf), "links: more than %u links", COL_MAX_LINKS);
        return why_buf;
    }
    for (uint32_t i = 0; i < s->nevents; i++) {
        const col_event_t *e = &s->events[i];
        if ((why = name_check(e->name, "events", (int)i))) return why;
        bytes += e->name.n;
        if ((why = attrs_check(e->attrs, e->nattrs, "events", (int)i, "attributes", &bytes)))
            return why;
    }
    for (uint32_t i = 0; i < s->nlinks; i++) {
        const col_link_t *l = &s->links[i];
        bytes += l->trace_state.n;
        if ((why = attrs_check(l->attrs, l->nattrs, "links", (int)i, "attributes", &bytes)))
            return why;
    }
    if (bytes > COL_MAX_SPAN_BYTES) {
        snprintf(why_buf, sizeof(why_buf), "the span's strings are longer than %u bytes together",
                 COL_MAX_SPAN_BYTES);
        return why_buf;
    }
    return col_shared_check(s->resource, s->scope);
}

const char *col_shared_check(const col_resource_t *r, const col_scope_t *s)
{
    uint64_t shared = 0; /* the resource's and scope's bytes are not the span's */
    const char *why;
    if (r && (why = attrs_check(r->attrs, r->nattrs, "resource.attributes", -1, NULL, &shared)))
        return why;
    if (!s) return NULL;
    if ((why = name_check(s->name, "scope.name", -1))) return why;
    if ((why = name_check(s->version, "scope.version", -1))) return why;
    return attrs_check(s->attrs, s->nattrs, "scope.attributes", -1, NULL, &shared);
}

void col_batch_reject(col_batch_t *b, size_t index, const char *why)
{
    if (b->rejected++ == 0)
        snprintf(b->reject_msg, sizeof(b->reject_msg), "span %zu: %s", index, why);
}

const col_str_t *col_attr_str(const col_attr_t *attrs, uint32_t n, const char *key)
{
    size_t kn = strlen(key);
    for (uint32_t i = 0; i < n; i++)
        if (col_str_eq(attrs[i].key, key, kn))
            return attrs[i].type == COL_V_STRING ? &attrs[i].v.s : NULL;
    return NULL;
}
