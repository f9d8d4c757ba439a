/*
 * memory_exporter.c - an exporter that keeps finished spans in memory, for tests and
 * debugging.
 *
 * Design: an array of capacity slots, filled in export order and never overwritten until
 * clear: once full, further spans are refused and counted. Refusing (rather than overwriting
 * the oldest) is what makes read-back safe: weft_trace_memory_exporter_get hands out pointers
 * into a slot, and a slot does not change until the owner calls clear. Each slot holds a deep
 * copy: the span data plus its own string area, into which every string the span points to
 * (service name, status message, attribute keys and values, event names, event attributes)
 * is copied and the pointers rebased. Those strings come from the span's string area
 * (WEFT_SPAN_STRINGS bytes, NULs included) and the tracer's service name (under 128 bytes),
 * so the slot's area is large enough for any span the tracer produces; a string that would
 * not fit anyway (an exporter fed by hand) becomes "".
 *
 * Threads: a mutex guards everything; spans may be exported from many threads while another
 * reads them back.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace_int.h"

#define CAPACITY_MAX 1000000

typedef struct held_s {
    weft_span_data_t d;
    char strings[WEFT_SPAN_STRINGS + 128];
} held_t;

typedef struct memory_exporter_s {
    weft_span_exporter_t base; /* what the API hands out; base.arg points back here */
    pthread_mutex_t mu;
    held_t *slots;
    size_t cap, count;
    uint64_t dropped;
} memory_exporter_t;

typedef struct copier_s {
    held_t *h;
    size_t used;
} copier_t;

static const char *copy_str(copier_t *c, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    if (c->used + n > sizeof(c->h->strings)) return "";
    char *p = c->h->strings + c->used;
    memcpy(p, s, n);
    c->used += n;
    return p;
}

static void copy_attrs(copier_t *c, weft_attr_t *a, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        a[i].key = copy_str(c, a[i].key);
        if (a[i].type == WEFT_ATTR_STRING) a[i].v.s = copy_str(c, a[i].v.s);
    }
}

static void copy_span(held_t *dst, const weft_span_data_t *src)
{
    copier_t c = {dst, 0};
    dst->d = *src;
    weft_span_data_t *d = &dst->d;
    d->service_name = copy_str(&c, d->service_name);
    d->status_message = copy_str(&c, d->status_message);
    copy_attrs(&c, d->attrs, d->nattrs);
    copy_attrs(&c, d->event_attrs, d->nevent_attrs);
    for (unsigned i = 0; i < d->nevents; i++) {
        weft_span_event_t *e = &d->events[i];
        e->name = copy_str(&c, e->name);
        /* rebase the event's attrs from src's pool to ours */
        if (e->attrs && e->attrs >= src->event_attrs &&
            e->attrs <= src->event_attrs + WEFT_SPAN_MAX_EVENT_ATTRS)
            e->attrs = d->event_attrs + (e->attrs - src->event_attrs);
        else
            e->attrs = NULL, e->nattrs = 0;
    }
}

static int mem_export(const weft_span_data_t *const *spans, size_t n, void *arg)
{
    memory_exporter_t *m = arg;
    size_t refused = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++) {
        if (m->count == m->cap) {
            refused++;
            continue;
        }
        copy_span(&m->slots[m->count++], spans[i]);
    }
    m->dropped += refused;
    pthread_mutex_unlock(&m->mu);
    return refused ? WEFT_ENOSPC : 0;
}

static void mem_shutdown(void *arg)
{
    memory_exporter_t *m = arg;
    pthread_mutex_destroy(&m->mu);
    free(m->slots);
    free(m);
}

weft_span_exporter_t *weft_trace_memory_exporter_new(size_t capacity)
{
    if (capacity == 0 || capacity > CAPACITY_MAX) return NULL;
    memory_exporter_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    /* calloc: pages are only touched as spans arrive, so a large capacity costs little */
    m->slots = calloc(capacity, sizeof(held_t));
    if (!m->slots || pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m->slots);
        free(m);
        return NULL;
    }
    m->cap = capacity;
    m->base.export_spans = mem_export;
    m->base.shutdown = mem_shutdown;
    m->base.arg = m;
    return &m->base;
}

size_t weft_trace_memory_exporter_count(weft_span_exporter_t *e)
{
    memory_exporter_t *m = e->arg;
    pthread_mutex_lock(&m->mu);
    size_t n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}

uint64_t weft_trace_memory_exporter_dropped(weft_span_exporter_t *e)
{
    memory_exporter_t *m = e->arg;
    pthread_mutex_lock(&m->mu);
    uint64_t n = m->dropped;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int weft_trace_memory_exporter_get(weft_span_exporter_t *e, size_t i, weft_span_data_t *out)
{
    memory_exporter_t *m = e->arg;
    pthread_mutex_lock(&m->mu);
    int err = WEFT_ERANGE;
    if (i < m->count) {
        *out = m->slots[i].d;
        err = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return err;
}

void weft_trace_memory_exporter_clear(weft_span_exporter_t *e)
{
    memory_exporter_t *m = e->arg;
    pthread_mutex_lock(&m->mu);
    m->count = 0;
    m->dropped = 0;
    pthread_mutex_unlock(&m->mu);
}
