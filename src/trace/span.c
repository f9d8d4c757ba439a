/*
 * span.c - the tracer and its spans.
 *
 * A span is one fixed-size block: the exported data (weft_span_data_t) plus a string area of
 * WEFT_SPAN_STRINGS bytes that attribute keys, string values, event names and the status
 * message are copied into. Nothing else is allocated per span; whatever does not fit the
 * fixed limits is dropped and counted (dropped_attrs, dropped_events, an event's
 * dropped_attrs), as OpenTelemetry's span limits do.
 *
 * Memory: blocks come from a per-thread free list (at most FREELIST_MAX kept per thread, the
 * rest freed), so a server span per request allocates nothing in steady state. A thread's
 * list is freed by a pthread key destructor when the thread exits. A span ended on another
 * thread than the one that started it goes to the ending thread's list; that is fine, the
 * blocks are plain malloc memory.
 *
 * Recording: a span records (keeps data and is exported) only when it is sampled and its
 * tracer has an exporter. Otherwise weft_span_start fills in the context only, and every
 * setter returns at once, so unsampled traffic costs an id, a sampler decision and a list pop.
 *
 * Record-only (weft_span_start_ex with WEFT_SAMPLING_RECORD_ONLY): the span records like a
 * sampled one (a full block) but its context's sampled flag is 0, so whatever it propagates
 * says "not sampled"; weft_span_end exports it only when weft_span_keep was called, with the
 * sampled flag set in the exported copy. That is what a tail decision needs: a proxy records
 * its own span of a request whose trace was not sampled, and keeps it if the request failed.
 *
 * Export: weft_span_end calls the exporter synchronously, on the ending thread, with a batch
 * of one. A failed export is counted in the tracer's dropped counter (a relaxed atomic, so
 * the hot path writes nothing shared while exports succeed).
 *
 * Threads: a tracer is shared read-only by every thread after weft_tracer_new; a span is used
 * by one thread at a time (the one that started it, normally).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace_int.h"

#define FREELIST_MAX 64
#define SERVICE_MAX  128

struct weft_tracer_s {
    char service_name[SERVICE_MAX];
    weft_sampler_t sampler;
    weft_trace_rate_t limiter; /* the rate-limiting sampler's bucket (sampler.limiter) */
    weft_span_exporter_t exporter;
    bool has_exporter;
    _Atomic uint64_t dropped;
};

struct weft_span_s {
    struct weft_span_s *next_free;
    weft_tracer_t *tracer;
    bool recording;
    bool record_only; /* recording, not sampled: exported only when kept */
    bool kept;        /* weft_span_keep was called */
    size_t strings_used;
    weft_span_data_t d;
    char strings[WEFT_SPAN_STRINGS];
};

/* A span that does not record uses only the head of the block, up to its data's
 * parent_remote (its context and its parent's id): it gets a block of that size, from a list
 * of its own, so that a request held for minutes (a blocking query) holds a few hundred
 * bytes of span rather than the whole block's kilobytes. */
#define LITE_SIZE                                                                              \
    (offsetof(struct weft_span_s, d) + offsetof(weft_span_data_t, parent_remote) + sizeof(bool))

static _Thread_local struct weft_span_s *free_spans, *free_lite;
static _Thread_local unsigned nfree, nfree_lite;
static _Thread_local bool free_armed;
static pthread_key_t free_key;
static pthread_once_t free_once = PTHREAD_ONCE_INIT;
static bool free_key_ok;

/* Frees a thread's cached spans when the thread exits. */
static void free_list_destructor(void *unused)
{
    (void)unused;
    while (free_spans) {
        struct weft_span_s *n = free_spans->next_free;
        free(free_spans);
        free_spans = n;
    }
    while (free_lite) {
        struct weft_span_s *n = free_lite->next_free;
        free(free_lite);
        free_lite = n;
    }
    nfree = nfree_lite = 0;
    free_armed = false;
}

static void make_key(void)
{
    free_key_ok = pthread_key_create(&free_key, free_list_destructor) == 0;
}

/* ---- tracer ---- */

void weft_tracer_options_init(weft_tracer_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->service_name = "unknown_service";
    o->sampler = weft_sampler_parent_based(weft_sampler_always_on());
}

int weft_tracer_new(const weft_tracer_options_t *o, weft_tracer_t **out)
{
    if (!o || !out || !o->service_name) return WEFT_EINVAL;
    size_t n = strlen(o->service_name);
    if (n == 0 || n >= SERVICE_MAX) return WEFT_EINVAL;
    if (o->exporter && !o->exporter->export_spans) return WEFT_EINVAL;
    weft_tracer_t *t = calloc(1, sizeof(*t));
    if (!t) return WEFT_ENOMEM;
    memcpy(t->service_name, o->service_name, n + 1);
    t->sampler = o->sampler;
    if (t->sampler.root == WEFT_SAMPLER_RATE_LIMITING && !t->sampler.limiter) {
        weft_trace_rate_init(&t->limiter, t->sampler.rate);
        t->sampler.limiter = &t->limiter;
    }
    if (o->exporter) {
        t->exporter = *o->exporter;
        t->has_exporter = true;
    }
    atomic_init(&t->dropped, 0);
    *out = t;
    return 0;
}

bool weft_tracer_exports(const weft_tracer_t *t)
{
    return t && t->has_exporter;
}

uint64_t weft_tracer_dropped(const weft_tracer_t *t)
{
    return t ? atomic_load_explicit(&((weft_tracer_t *)t)->dropped, memory_order_relaxed) : 0;
}

void weft_tracer_free(weft_tracer_t *t)
{
    if (!t) return;
    if (t->has_exporter && t->exporter.shutdown) t->exporter.shutdown(t->exporter.arg);
    free(t);
}

/* ---- strings ---- */

/* The length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max) return n;
    n = max;
    /* back up over continuation bytes (10xxxxxx) to the start of the cut sequence */
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
    return n;
}

/* Copies n bytes of str plus a NUL into the span's string area; NULL when it is full. */
static const char *store(struct weft_span_s *s, const char *str, size_t n)
{
    if (s->strings_used + n + 1 > WEFT_SPAN_STRINGS) return NULL;
    char *p = s->strings + s->strings_used;
    memcpy(p, str, n);
    p[n] = 0;
    s->strings_used += n + 1;
    return p;
}

/* ---- spans ---- */

weft_span_t *weft_span_start(weft_tracer_t *t, const char *name, weft_span_kind_t kind,
                             const weft_trace_context_t *parent)
{
    return weft_span_start_ex(t, name, kind, parent, WEFT_SAMPLING_TRACER);
}

weft_span_t *weft_span_start_ex(weft_tracer_t *t, const char *name, weft_span_kind_t kind,
                                const weft_trace_context_t *parent, weft_sampling_t decision)
{
    if (!t) return NULL;
    /* The sampling decision first: it chooses the size of the block. */
    bool child = parent && weft_trace_context_is_valid(parent);
    uint8_t trace_id[16];
    if (child)
        memcpy(trace_id, parent->trace_id, 16);
    else
        weft_trace_random_trace_id(trace_id);
    bool sampled = decision == WEFT_SAMPLING_TRACER
                       ? weft_sampler_should_sample(&t->sampler, parent, trace_id)
                       : decision == WEFT_SAMPLING_SAMPLE;
    bool rec_only = decision == WEFT_SAMPLING_RECORD_ONLY && t->has_exporter;
    bool rec = (sampled && t->has_exporter) || rec_only;
    struct weft_span_s **list = rec ? &free_spans : &free_lite;
    struct weft_span_s *s = *list;
    if (s) {
        *list = s->next_free;
        if (rec)
            nfree--;
        else
            nfree_lite--;
    } else if (!(s = malloc(rec ? sizeof(*s) : LITE_SIZE))) {
        return NULL;
    }
    s->tracer = t;
    s->strings_used = 0;
    weft_span_data_t *d = &s->d;
    weft_trace_context_t *c = &d->context;
    memcpy(c->trace_id, trace_id, 16);
    if (child) {
        memcpy(d->parent_span_id, parent->span_id, 8);
        c->tracestate_len = parent->tracestate_len;
        if (parent->tracestate_len)
            memcpy(c->tracestate, parent->tracestate, parent->tracestate_len);
        d->parent_remote = parent->remote;
    } else {
        memset(d->parent_span_id, 0, 8);
        c->tracestate_len = 0;
        d->parent_remote = false;
    }
    weft_trace_random_span_id(c->span_id);
    c->remote = false;
    c->deferred = false;
    c->flags = sampled ? WEFT_TRACE_FLAG_SAMPLED : 0;
    s->recording = rec;
    s->record_only = rec_only;
    s->kept = false;
    if (s->recording) {
        d->name[0] = 0;
        weft_span_set_name(s, name);
        d->service_name = t->service_name;
        d->kind = kind;
        d->start_ns = weft_wall_ns();
        d->end_ns = 0;
        d->status = WEFT_SPAN_STATUS_UNSET;
        d->status_message = NULL;
        d->nattrs = d->dropped_attrs = 0;
        d->nevents = d->dropped_events = 0;
        d->nevent_attrs = 0;
    }
    return s;
}

void weft_span_set_name(weft_span_t *s, const char *name)
{
    if (!s || !s->recording || !name) return;
    size_t n = utf8_cut(name, WEFT_SPAN_NAME_MAX - 1);
    memcpy(s->d.name, name, n);
    s->d.name[n] = 0;
}

const weft_trace_context_t *weft_span_context(const weft_span_t *s)
{
    return s ? &s->d.context : NULL;
}

bool weft_span_is_recording(const weft_span_t *s)
{
    return s && s->recording;
}

void weft_span_keep(weft_span_t *s)
{
    if (s && s->record_only) s->kept = true;
}

bool weft_span_is_record_only(const weft_span_t *s)
{
    return s && s->record_only && !s->kept;
}

/*
 * Sets attribute *in among the n attributes at attrs (room for cap), copying its strings.
 * Returns false when it had to be dropped (no slot, or no string space); then nothing changed.
 */
static bool put_attr(struct weft_span_s *s, weft_attr_t *attrs, unsigned *n, unsigned cap,
                     const weft_attr_t *in)
{
    weft_attr_t *slot = NULL;
    for (unsigned i = 0; i < *n; i++)
        if (strcmp(attrs[i].key, in->key) == 0) {
            slot = &attrs[i];
            break;
        }
    if (!slot && *n == cap) return false;
    size_t kn = slot ? 0 : strlen(in->key);
    const char *sv = in->type == WEFT_ATTR_STRING && in->v.s ? in->v.s : "";
    size_t vn = in->type == WEFT_ATTR_STRING ? utf8_cut(sv, WEFT_SPAN_VALUE_MAX - 1) : 0;
    size_t need = (slot ? 0 : kn + 1) + (in->type == WEFT_ATTR_STRING ? vn + 1 : 0);
    if (s->strings_used + need > WEFT_SPAN_STRINGS) return false;
    if (!slot) {
        slot = &attrs[(*n)++];
        slot->key = store(s, in->key, kn);
    }
    slot->type = in->type;
    slot->v = in->v;
    if (in->type == WEFT_ATTR_STRING) slot->v.s = store(s, sv, vn);
    return true;
}

static void set_attr(weft_span_t *s, const weft_attr_t *a)
{
    if (!s || !s->recording || !a->key) return;
    if (!put_attr(s, s->d.attrs, &s->d.nattrs, WEFT_SPAN_MAX_ATTRS, a)) s->d.dropped_attrs++;
}

void weft_span_set_attr_str(weft_span_t *s, const char *key, const char *value)
{
    set_attr(s, &WEFT_ATTR_STR(key, value));
}

void weft_span_set_attr_int(weft_span_t *s, const char *key, int64_t value)
{
    set_attr(s, &WEFT_ATTR_INT(key, value));
}

void weft_span_set_attr_double(weft_span_t *s, const char *key, double value)
{
    set_attr(s, &WEFT_ATTR_DOUBLE(key, value));
}

void weft_span_set_attr_bool(weft_span_t *s, const char *key, bool value)
{
    set_attr(s, &WEFT_ATTR_BOOL(key, value));
}

void weft_span_set_attrs(weft_span_t *s, const weft_attr_t *attrs, size_t n)
{
    if (!s || !s->recording || !attrs) return;
    for (size_t i = 0; i < n; i++) set_attr(s, &attrs[i]);
}

void weft_span_add_event(weft_span_t *s, const char *name, const weft_attr_t *attrs, size_t n)
{
    if (!s || !s->recording || !name) return;
    weft_span_data_t *d = &s->d;
    const char *nm = NULL;
    if (d->nevents < WEFT_SPAN_MAX_EVENTS)
        nm = store(s, name, utf8_cut(name, WEFT_SPAN_NAME_MAX - 1));
    if (!nm) {
        d->dropped_events++;
        return;
    }
    weft_span_event_t *e = &d->events[d->nevents++];
    e->name = nm;
    e->time_ns = weft_wall_ns();
    /* This event's attributes are the pool's tail from here on: events are added in order. */
    weft_attr_t *mine = d->event_attrs + d->nevent_attrs;
    unsigned cap = WEFT_SPAN_MAX_EVENT_ATTRS - d->nevent_attrs;
    e->attrs = mine;
    e->nattrs = e->dropped_attrs = 0;
    for (size_t i = 0; attrs && i < n; i++) {
        if (!attrs[i].key) continue;
        if (!put_attr(s, mine, &e->nattrs, cap, &attrs[i])) e->dropped_attrs++;
    }
    d->nevent_attrs += e->nattrs;
}

void weft_span_set_status(weft_span_t *s, weft_span_status_t status, const char *message)
{
    if (!s || !s->recording) return;
    if (status != WEFT_SPAN_STATUS_OK && status != WEFT_SPAN_STATUS_ERROR) return; /* UNSET */
    if (s->d.status == WEFT_SPAN_STATUS_OK) return;                                /* final */
    s->d.status = status;
    s->d.status_message = NULL;
    if (status == WEFT_SPAN_STATUS_ERROR && message)
        s->d.status_message = store(s, message, utf8_cut(message, WEFT_SPAN_VALUE_MAX - 1));
}

void weft_span_end(weft_span_t *s)
{
    if (!s) return;
    if (s->recording && (!s->record_only || s->kept)) {
        weft_tracer_t *t = s->tracer;
        if (s->record_only) s->d.context.flags |= WEFT_TRACE_FLAG_SAMPLED;
        s->d.end_ns = weft_wall_ns();
        if (s->d.end_ns < s->d.start_ns) s->d.end_ns = s->d.start_ns; /* the clock stepped */
        const weft_span_data_t *batch[1] = {&s->d};
        if (t->exporter.export_spans(batch, 1, t->exporter.arg) != 0)
            atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
    }
    /* Back to the list of its size: a block keeps the size it was made with. */
    struct weft_span_s **list = s->recording ? &free_spans : &free_lite;
    unsigned *n = s->recording ? &nfree : &nfree_lite;
    if (!free_armed && *n < FREELIST_MAX) {
        /* arms the destructor that frees this thread's lists when it exits */
        pthread_once(&free_once, make_key);
        free_armed = free_key_ok && pthread_setspecific(free_key, (void *)1) == 0;
    }
    if (free_armed && *n < FREELIST_MAX) {
        s->next_free = *list;
        *list = s;
        (*n)++;
    } else {
        free(s);
    }
}
