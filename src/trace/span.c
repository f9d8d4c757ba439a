/*
 * span.c - tracer, samplers, spans and the in-memory exporter.
 *
 * Spans come from a per-thread free list (at most 64 kept per thread; the rest are freed),
 * so a server span per request allocates nothing in steady state. A span is used by one
 * thread only. A span records (keeps attributes and is exported) only when it is sampled
 * and its tracer has an exporter; otherwise it is a context holder whose setters return at
 * once, which keeps tracing nearly free where nobody collects spans.
 *
 * Attribute keys and string values are copied into a fixed per-span string area
 * (WEFT_SPAN_STRINGS bytes); what does not fit is dropped and counted.
 *
 * The memory exporter keeps deep copies in a ring under a mutex: any thread may end spans
 * and read them back.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "weft/trace.h"

#define FREELIST_MAX 64

struct weft_tracer_s {
    char service_name[128];
    weft_sampler_t sampler;
    weft_span_exporter_t *exporter;
};

struct weft_span_s {
    struct weft_span_s *next_free;
    weft_tracer_t *tracer;
    bool recording;
    size_t strings_used;
    weft_span_data_t d;
    char strings[WEFT_SPAN_STRINGS];
};

static _Thread_local struct weft_span_s *free_spans;
static _Thread_local unsigned nfree;
static pthread_key_t free_key;
static pthread_once_t free_once = PTHREAD_ONCE_INIT;

/* Frees a thread's cached spans when the thread exits. */
static void free_list_destructor(void *unused)
{
    (void)unused;
    while (free_spans) {
        struct weft_span_s *n = free_spans->next_free;
        free(free_spans);
        free_spans = n;
    }
    nfree = 0;
}

static void make_key(void)
{
    pthread_key_create(&free_key, free_list_destructor);
}

/* ---- samplers ---- */

weft_sampler_t weft_sampler_always_on(void)
{
    return (weft_sampler_t){.root = WEFT_SAMPLER_ALWAYS_ON, .ratio = 1};
}

weft_sampler_t weft_sampler_always_off(void)
{
    return (weft_sampler_t){.root = WEFT_SAMPLER_ALWAYS_OFF, .ratio = 0};
}

weft_sampler_t weft_sampler_ratio(double ratio)
{
    if (!(ratio >= 0)) ratio = 0;
    if (ratio > 1) ratio = 1;
    return (weft_sampler_t){.root = WEFT_SAMPLER_RATIO, .ratio = ratio};
}

weft_sampler_t weft_sampler_parent_based(weft_sampler_t root)
{
    root.parent_based = true;
    return root;
}

bool weft_sampler_should_sample(const weft_sampler_t *s, const weft_trace_context_t *parent,
                                const uint8_t trace_id[16])
{
    if (s->parent_based && parent) return (parent->flags & WEFT_TRACE_FLAG_SAMPLED) != 0;
    switch (s->root) {
    case WEFT_SAMPLER_ALWAYS_ON:
        return true;
    case WEFT_SAMPLER_ALWAYS_OFF:
        return false;
    case WEFT_SAMPLER_RATIO: {
        if (s->ratio >= 1) return true;
        if (s->ratio <= 0) return false;
        uint64_t v = 0;
        for (int i = 8; i < 16; i++) v = v << 8 | trace_id[i];
        /* ratio * 2^64, computed in floating point; 2^64 itself is excluded above */
        double bound = ldexp(s->ratio, 64);
        return (double)v < bound;
    }
    }
    return false;
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
    if (!o || !o->service_name || strlen(o->service_name) >= 128) return WEFT_EINVAL;
    weft_tracer_t *t = calloc(1, sizeof(*t));
    if (!t) return WEFT_ENOMEM;
    strcpy(t->service_name, o->service_name);
    t->sampler = o->sampler;
    t->exporter = o->exporter;
    *out = t;
    return 0;
}

void weft_tracer_free(weft_tracer_t *t)
{
    if (!t) return;
    if (t->exporter && t->exporter->shutdown) t->exporter->shutdown(t->exporter);
    free(t);
}

/* ---- spans ---- */

weft_span_t *weft_span_start(weft_tracer_t *t, const char *name, weft_span_kind_t kind,
                             const weft_trace_context_t *parent)
{
    struct weft_span_s *s = free_spans;
    if (s) {
        free_spans = s->next_free;
        nfree--;
    } else if (!(s = malloc(sizeof(*s)))) {
        return NULL;
    }
    s->tracer = t;
    s->strings_used = 0;
    weft_span_data_t *d = &s->d;
    weft_trace_context_t *c = &d->context;
    if (parent) {
        memcpy(c->trace_id, parent->trace_id, 16);
        memcpy(d->parent_span_id, parent->span_id, 8);
        c->tracestate_len = parent->tracestate_len;
        if (parent->tracestate_len)
            memcpy(c->tracestate, parent->tracestate, parent->tracestate_len);
        d->parent_remote = parent->remote;
    } else {
        weft_trace_random_trace_id(c->trace_id);
        memset(d->parent_span_id, 0, 8);
        c->tracestate_len = 0;
        d->parent_remote = false;
    }
    weft_trace_random_span_id(c->span_id);
    c->remote = false;
    bool sampled = weft_sampler_should_sample(&t->sampler, parent, c->trace_id);
    c->flags = sampled ? WEFT_TRACE_FLAG_SAMPLED : 0;
    s->recording = sampled && t->exporter != NULL;
    if (s->recording) {
        weft_span_set_name(s, name);
        d->service_name = t->service_name;
        d->kind = kind;
        d->start_ns = weft_wall_ns();
        d->end_ns = 0;
        d->status = WEFT_SPAN_STATUS_UNSET;
        d->status_message = NULL;
        d->nattrs = d->dropped_attrs = 0;
        d->nevents = d->dropped_events = 0;
    }
    return s;
}

void weft_span_set_name(weft_span_t *s, const char *name)
{
    if (!s || !s->recording || !name) return;
    size_t n = strlen(name);
    if (n >= WEFT_SPAN_NAME_MAX) n = WEFT_SPAN_NAME_MAX - 1;
    memcpy(s->d.name, name, n);
    s->d.name[n] = 0;
}

const weft_trace_context_t *weft_span_context(const weft_span_t *s)
{
    return &s->d.context;
}

bool weft_span_is_recording(const weft_span_t *s)
{
    return s && s->recording;
}

static const char *store(struct weft_span_s *s, const char *str)
{
    size_t n = strlen(str) + 1;
    if (s->strings_used + n > WEFT_SPAN_STRINGS) return NULL;
    char *p = s->strings + s->strings_used;
    memcpy(p, str, n);
    s->strings_used += n;
    return p;
}

/* The attribute slot for key: the existing one, or a new one; NULL when full. */
static weft_attr_t *attr_slot(struct weft_span_s *s, const char *key)
{
    weft_span_data_t *d = &s->d;
    for (unsigned i = 0; i < d->nattrs; i++)
        if (strcmp(d->attrs[i].key, key) == 0) return &d->attrs[i];
    if (d->nattrs == WEFT_SPAN_MAX_ATTRS) return NULL;
    const char *k = store(s, key);
    if (!k) return NULL;
    weft_attr_t *a = &d->attrs[d->nattrs++];
    a->key = k;
    return a;
}

#define ATTR_BEGIN(s, key)                                                                         \
    if (!(s) || !(s)->recording || !(key)) return;                                                 \
    weft_attr_t *a = attr_slot(s, key);                                                            \
    if (!a) {                                                                                      \
        (s)->d.dropped_attrs++;                                                                    \
        return;                                                                                    \
    }

void weft_span_set_attr_str(weft_span_t *s, const char *key, const char *value)
{
    ATTR_BEGIN(s, key);
    const char *v = store(s, value ? value : "");
    if (!v) {
        /* the key stays with an empty value rather than a dangling one */
        a->type = WEFT_ATTR_STRING;
        a->v.s = "";
        s->d.dropped_attrs++;
        return;
    }
    a->type = WEFT_ATTR_STRING;
    a->v.s = v;
}

void weft_span_set_attr_int(weft_span_t *s, const char *key, int64_t value)
{
    ATTR_BEGIN(s, key);
    a->type = WEFT_ATTR_INT;
    a->v.i = value;
}

void weft_span_set_attr_double(weft_span_t *s, const char *key, double value)
{
    ATTR_BEGIN(s, key);
    a->type = WEFT_ATTR_DOUBLE;
    a->v.d = value;
}

void weft_span_set_attr_bool(weft_span_t *s, const char *key, bool value)
{
    ATTR_BEGIN(s, key);
    a->type = WEFT_ATTR_BOOL;
    a->v.b = value;
}

void weft_span_add_event(weft_span_t *s, const char *name)
{
    if (!s || !s->recording || !name) return;
    weft_span_data_t *d = &s->d;
    const char *n = d->nevents < WEFT_SPAN_MAX_EVENTS ? store(s, name) : NULL;
    if (!n) {
        d->dropped_events++;
        return;
    }
    d->events[d->nevents].name = n;
    d->events[d->nevents++].time_ns = weft_wall_ns();
}

void weft_span_set_status(weft_span_t *s, weft_span_status_t status, const char *message)
{
    if (!s || !s->recording) return;
    /* OK is final; ERROR may be replaced only by OK (OpenTelemetry's rule). */
    if (s->d.status == WEFT_SPAN_STATUS_OK) return;
    s->d.status = status;
    s->d.status_message = status == WEFT_SPAN_STATUS_ERROR && message ? store(s, message) : NULL;
}

void weft_span_end(weft_span_t *s)
{
    if (!s) return;
    if (s->recording) {
        s->d.end_ns = weft_wall_ns();
        if (s->d.end_ns < s->d.start_ns) s->d.end_ns = s->d.start_ns;
        weft_span_exporter_t *e = s->tracer->exporter;
        e->export_span(e, &s->d);
    }
    if (nfree < FREELIST_MAX) {
        if (!free_spans) {
            pthread_once(&free_once, make_key);
            pthread_setspecific(free_key, (void *)1); /* arms the destructor */
        }
        s->next_free = free_spans;
        free_spans = s;
        nfree++;
    } else {
        free(s);
    }
}

/* ---- in-memory exporter ---- */

typedef struct held_s {
    weft_span_data_t d;
    char strings[WEFT_SPAN_STRINGS];
} held_t;

typedef struct memory_exporter_s {
    weft_span_exporter_t base;
    pthread_mutex_t mu;
    held_t *ring;
    size_t cap, start, count;
} memory_exporter_t;

/* Deep copy: pointers into the source span's storage are rebased onto dst->strings. */
static void copy_span(held_t *dst, const weft_span_data_t *src)
{
    dst->d = *src;
    size_t o = 0;
#define COPY_STR(field)                                                                            \
    do {                                                                                           \
        if (field) {                                                                               \
            size_t n_ = strlen(field) + 1;                                                         \
            if (o + n_ > sizeof(dst->strings)) n_ = 0;                                             \
            if (n_) {                                                                              \
                memcpy(dst->strings + o, field, n_);                                               \
                field = dst->strings + o;                                                          \
                o += n_;                                                                           \
            } else {                                                                               \
                field = "";                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    COPY_STR(dst->d.status_message);
    for (unsigned i = 0; i < dst->d.nattrs; i++) {
        COPY_STR(dst->d.attrs[i].key);
        if (dst->d.attrs[i].type == WEFT_ATTR_STRING) COPY_STR(dst->d.attrs[i].v.s);
    }
    for (unsigned i = 0; i < dst->d.nevents; i++) COPY_STR(dst->d.events[i].name);
#undef COPY_STR
}

static void mem_export(weft_span_exporter_t *self, const weft_span_data_t *span)
{
    memory_exporter_t *m = (memory_exporter_t *)self;
    pthread_mutex_lock(&m->mu);
    size_t slot;
    if (m->count < m->cap) {
        slot = (m->start + m->count++) % m->cap;
    } else {
        slot = m->start;
        m->start = (m->start + 1) % m->cap;
    }
    copy_span(&m->ring[slot], span);
    pthread_mutex_unlock(&m->mu);
}

static void mem_shutdown(weft_span_exporter_t *self)
{
    memory_exporter_t *m = (memory_exporter_t *)self;
    pthread_mutex_destroy(&m->mu);
    free(m->ring);
    free(m);
}

weft_span_exporter_t *weft_trace_memory_exporter_new(size_t capacity)
{
    if (capacity == 0 || capacity > 1000000) return NULL;
    memory_exporter_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->ring = calloc(capacity, sizeof(held_t));
    if (!m->ring) {
        free(m);
        return NULL;
    }
    m->cap = capacity;
    pthread_mutex_init(&m->mu, NULL);
    m->base.export_span = mem_export;
    m->base.shutdown = mem_shutdown;
    return &m->base;
}

size_t weft_trace_memory_exporter_count(weft_span_exporter_t *e)
{
    memory_exporter_t *m = (memory_exporter_t *)e;
    pthread_mutex_lock(&m->mu);
    size_t n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int weft_trace_memory_exporter_get(weft_span_exporter_t *e, size_t i, weft_span_data_t *out)
{
    memory_exporter_t *m = (memory_exporter_t *)e;
    pthread_mutex_lock(&m->mu);
    int err = WEFT_ERANGE;
    if (i < m->count) {
        *out = m->ring[(m->start + i) % m->cap].d;
        err = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return err;
}

void weft_trace_memory_exporter_clear(weft_span_exporter_t *e)
{
    memory_exporter_t *m = (memory_exporter_t *)e;
    pthread_mutex_lock(&m->mu);
    m->start = m->count = 0;
    pthread_mutex_unlock(&m->mu);
}
