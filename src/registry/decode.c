/*
 * decode.c - Consul's registration bodies to instances and checks.
 *
 * Consul's clients disagree on how keys are spelled: the Go API sends "ServiceID",
 * python-consul sends {"http": ..., "interval": ...}, others "service_id". Consul reads
 * them all, so weft__json_get matches a key without regard to ASCII case and underscores.
 * Every field is checked for its type and bounds before anything is built, and the first
 * problem is reported as "Field: what is wrong" (the API answers 400 with it and changes
 * nothing). Fields that weft does not use (TaggedAddresses, Proxy, Connect, Namespace,
 * TLSSkipVerify...) are accepted and ignored, as an agent of another version would; check
 * types weft does not run (Script/Args, GRPC, Docker, Alias, H2PING, UDP, OSService) are
 * refused by name, so that nobody believes a check runs that does not.
 *
 * Defaults are Consul's: ID = Name; a service's single Check gets CheckID
 * "service:ID", its Checks "service:ID:1", "service:ID:2"...; check Name "Service 'NAME'
 * check"; Status critical; an HTTP check's Method GET and Timeout 10 s; intervals under 1 s
 * are raised to 1 s (Consul's minimum).
 *
 * The same code reads the store's records back (src == REG_SRC_STORE), which carry the
 * state fields too (Status, Output, CreateIndex, ModifyIndex, History).
 * Pure functions on the caller's thread.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/snapshot.h"
#include "registry/model.h"

#define MIN_INTERVAL_MS 1000
#define DEF_TIMEOUT_MS  10000

static bool key_eq(const char *k, const char *name)
{
    for (;;) {
        while (*k == '_') k++;
        while (*name == '_') name++;
        if (!*k || !*name) return !*k && !*name;
        if (tolower((unsigned char)*k) != tolower((unsigned char)*name)) return false;
        k++, name++;
    }
}

json_t *weft__json_get(json_t *o, const char *name)
{
    if (!json_is_object(o)) return NULL;
    const char *k;
    json_t *v;
    json_t *found = NULL;
    json_object_foreach(o, k, v)
    {
        if (key_eq(k, name)) found = v; /* the last one, as Go's decoder would */
    }
    return found;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* s as it may be quoted in a one-line message: control bytes as '?', at most 64 bytes. */
static const char *quote(const char *s, char out[68])
{
    size_t i = 0;
    for (; s[i] && i < 64; i++) out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    out[i] = 0;
    return out;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

/* A string field: absent -> def (copied; NULL def: required). *out is malloc'd. */
static int get_str(json_t *o, const char *field, const char *label, const char *def, size_t max,
                   char **out, char *err, size_t errlen)
{
    json_t *v = weft__json_get(o, field);
    const char *s;
    if (!v || json_is_null(v)) {
        if (!def) return fail(err, errlen, "%s: missing", label);
        s = def;
    } else if (!json_is_string(v)) {
        return fail(err, errlen, "%s: must be a string", label);
    } else {
        s = json_string_value(v);
        if (json_string_length(v) != strlen(s))
            return fail(err, errlen, "%s: must not contain NUL", label);
    }
    if (strlen(s) > max) return fail(err, errlen, "%s: longer than %zu bytes", label, max);
    if (!(*out = weft__sdup(s))) return fail(err, errlen, "%s: out of memory", label);
    return 0;
}

static int get_id(json_t *o, const char *field, const char *label, const char *def, char **out,
                  char *err, size_t errlen)
{
    if (get_str(o, field, label, def, REG_MAX_ID, out, err, errlen) != 0) return -1;
    if (!**out || !printable(*out) || strchr(*out, '/')) {
        weft__sfree(*out);
        *out = NULL;
        return fail(err, errlen, "%s: must be non-empty, without '/' or control characters", label);
    }
    return 0;
}

/* A non-negative integer field (absent: def). */
static int get_uint(json_t *o, const char *field, const char *label, uint64_t def, uint64_t min,
                    uint64_t max, uint64_t *out, char *err, size_t errlen)
{
    json_t *v = weft__json_get(o, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) return fail(err, errlen, "%s: must be an integer", label);
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return fail(err, errlen, "%s: must be between %llu and %llu", label,
                    (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)i;
    return 0;
}

/* A duration: a Go duration string, or a number of nanoseconds (as Consul also reads). */
static int get_dur(json_t *o, const char *field, const char *label, uint64_t *out_ms, char *err,
                   size_t errlen)
{
    json_t *v = weft__json_get(o, field);
    *out_ms = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        json_int_t ns = json_integer_value(v);
        if (ns < 0) return fail(err, errlen, "%s: must not be negative", label);
        *out_ms = (uint64_t)ns / 1000000;
        return 0;
    }
    if (!json_is_string(v) ||
        (json_string_length(v) &&
         weft__duration_parse(json_string_value(v), json_string_length(v), out_ms) != 0))
        return fail(err, errlen, "%s: not a duration (like \"10s\", \"1m30s\", \"500ms\")", label);
    return 0;
}

static int get_bool(json_t *o, const char *field, const char *label, bool *out, char *err,
                    size_t errlen)
{
    json_t *v = weft__json_get(o, field);
    *out = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return fail(err, errlen, "%s: must be true or false", label);
    *out = json_is_true(v);
    return 0;
}

static const char *const unsupported[] = {
    "Script", "Args", "ScriptArgs", "GRPC", "DockerContainerID", "AliasService", "AliasNode",
    "H2PING", "UDP",  "OSService",  NULL};

static int decode_history(json_t *o, reg_check_t *c)
{
    json_t *h = weft__json_get(o, "History");
    size_t i;
    json_t *e;
    if (!json_is_array(h)) return 0;
    json_array_foreach(h, i, e)
    {
        if (c->nhist == REG_HIST) break;
        json_t *at = weft__json_get(e, "At"), *from = weft__json_get(e, "From"),
               *to = weft__json_get(e, "To");
        weft_health_t f, t;
        if (!json_is_integer(at) || !json_is_string(from) || !json_is_string(to)) continue;
        if (weft__health_parse(json_string_value(from), json_string_length(from), &f) != 0 ||
            weft__health_parse(json_string_value(to), json_string_length(to), &t) != 0)
            continue;
        weft__check_hist(c, f, t, (uint64_t)json_integer_value(at));
    }
    return 0;
}

int weft__check_decode(json_t *o, reg_src_t src, const char *def_id, const char *def_name,
                       reg_check_t **out, char *err, size_t errlen)
{
    if (!json_is_object(o)) return fail(err, errlen, "Check: must be an object");
    reg_check_t *c = calloc(1, sizeof(*c));
    if (!c) return fail(err, errlen, "Check: out of memory");
    char dflt[REG_MAX_ID + 64];
    for (const char *const *u = unsupported; *u; u++) {
        json_t *v = weft__json_get(o, *u);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0) &&
            !(json_is_array(v) && json_array_size(v) == 0)) {
            fail(err, errlen, "%s: check type not supported (weft runs HTTP, TCP and TTL checks)",
                 *u);
            goto bad;
        }
    }
    if (get_str(o, "Name", "Name", def_name, REG_MAX_ID, &c->name, err, errlen) != 0) goto bad;
    if (!*c->name) {
        fail(err, errlen, "Name: must not be empty");
        goto bad;
    }
    json_t *idv = weft__json_get(o, "CheckID");
    if (!idv || json_is_null(idv)) idv = weft__json_get(o, "ID");
    snprintf(dflt, sizeof(dflt), "%s", def_id ? def_id : c->name);
    if (idv && !json_is_null(idv)) {
        json_t *tmp = json_pack("{sO}", "ID", idv);
        int r = tmp ? get_id(tmp, "ID", "CheckID", NULL, &c->id, err, errlen) : -1;
        json_decref(tmp);
        if (r != 0) goto bad;
    } else if (get_id(o, "-", "CheckID", dflt, &c->id, err, errlen) != 0) {
        goto bad;
    }
    if (get_str(o, "Notes", "Notes", "", REG_MAX_STR, &c->notes, err, errlen) != 0) goto bad;
    if (get_str(o, "ServiceID", "ServiceID", "", REG_MAX_ID, &c->service_id, err, errlen) != 0)
        goto bad;
    if (get_str(o, "ServiceName", "ServiceName", "", REG_MAX_ID, &c->service_name, err, errlen) !=
        0)
        goto bad;
    if (get_str(o, "HTTP", "HTTP", "", REG_MAX_STR, &c->http, err, errlen) != 0) goto bad;
    if (get_str(o, "TCP", "TCP", "", REG_MAX_STR, &c->tcp, err, errlen) != 0) goto bad;
    if (get_str(o, "Method", "Method", "", 32, &c->method, err, errlen) != 0) goto bad;
    if (get_str(o, "Body", "Body", "", REG_MAX_STR, &c->body, err, errlen) != 0) goto bad;
    if (get_str(o, "Output", "Output", "", REG_MAX_OUTPUT, &c->output, err, errlen) != 0) goto bad;
    if (src == REG_SRC_API && *c->output) { /* the API does not set outputs */
        weft__sfree(c->output);
        c->output = weft__empty;
    }
    if (get_dur(o, "Interval", "Interval", &c->interval_ms, err, errlen) != 0 ||
        get_dur(o, "Timeout", "Timeout", &c->timeout_ms, err, errlen) != 0 ||
        get_dur(o, "TTL", "TTL", &c->ttl_ms, err, errlen) != 0 ||
        get_dur(o, "DeregisterCriticalServiceAfter", "DeregisterCriticalServiceAfter", &c->dereg_ms,
                err, errlen) != 0)
        goto bad;
    uint64_t u;
    if (get_uint(o, "SuccessBeforePassing", "SuccessBeforePassing", 0, 0, 1000000, &u, err,
                 errlen) != 0)
        goto bad;
    c->sbp = (uint32_t)u;
    if (get_uint(o, "FailuresBeforeWarning", "FailuresBeforeWarning", 0, 0, 1000000, &u, err,
                 errlen) != 0)
        goto bad;
    c->fbw = (uint32_t)u;
    if (get_uint(o, "FailuresBeforeCritical", "FailuresBeforeCritical", 0, 0, 1000000, &u, err,
                 errlen) != 0)
        goto bad;
    c->fbc = (uint32_t)u;
    if (c->fbw == 0) c->fbw = c->fbc; /* Consul: defaults to FailuresBeforeCritical */

    json_t *hdr = weft__json_get(o, "Header");
    if (hdr && !json_is_null(hdr)) {
        if (!json_is_object(hdr)) {
            fail(err, errlen, "Header: must be an object of string arrays");
            goto bad;
        }
        const char *k;
        json_t *vals;
        json_object_foreach(hdr, k, vals)
        {
            size_t i;
            json_t *v;
            if (!json_is_array(vals)) {
                char q[68];
                fail(err, errlen, "Header: %s: must be an array of strings", quote(k, q));
                goto bad;
            }
            json_array_foreach(vals, i, v)
            {
                if (!json_is_string(v) || !printable(json_string_value(v)) || !*k ||
                    !printable(k) || strchr(k, ':')) {
                    char q[68];
                    fail(err, errlen, "Header: %s: bad header name or value", quote(k, q));
                    goto bad;
                }
                if (c->nheaders == REG_MAX_HEADERS) {
                    fail(err, errlen, "Header: more than %d values", REG_MAX_HEADERS);
                    goto bad;
                }
                reg_kv_t *a = realloc(c->headers, (c->nheaders + 1) * sizeof(*a));
                if (!a) goto oom;
                c->headers = a;
                a[c->nheaders].k = strdup(k);
                a[c->nheaders].v = strdup(json_string_value(v));
                c->nheaders++;
                if (!a[c->nheaders - 1].k || !a[c->nheaders - 1].v) goto oom;
            }
        }
    }

    /* The type, from the fields present. */
    int kinds = (*c->http != 0) + (*c->tcp != 0) + (c->ttl_ms != 0);
    json_t *ttlv = weft__json_get(o, "TTL");
    if (kinds > 1) {
        fail(err, errlen, "Check: only one of HTTP, TCP and TTL may be given");
        goto bad;
    }
    json_t *typev = weft__json_get(o, "Type");
    bool maint = src == REG_SRC_STORE && json_is_string(typev) &&
                 strcmp(json_string_value(typev), "maintenance") == 0;
    if (maint) {
        c->type = REG_CHECK_MAINT;
    } else if (*c->http) {
        c->type = REG_CHECK_HTTP;
        if (strncmp(c->http, "http://", 7) != 0 && strncmp(c->http, "https://", 8) != 0) {
            fail(err, errlen, "HTTP: must be an http:// URL");
            goto bad;
        }
        if (strncmp(c->http, "https://", 8) == 0) {
            fail(err, errlen, "HTTP: https checks are not supported");
            goto bad;
        }
    } else if (*c->tcp) {
        c->type = REG_CHECK_TCP;
        if (!strchr(c->tcp, ':')) {
            fail(err, errlen, "TCP: must be host:port");
            goto bad;
        }
    } else if (c->ttl_ms || (ttlv && !json_is_null(ttlv))) {
        if (!c->ttl_ms) {
            fail(err, errlen, "TTL: must be more than 0");
            goto bad;
        }
        c->type = REG_CHECK_TTL;
    } else if (src == REG_SRC_STORE && json_is_string(typev) &&
               strcmp(json_string_value(typev), "") == 0) {
        c->type = REG_CHECK_NONE;
    } else {
        json_t *t = typev;
        char q[68];
        if (json_is_string(t) && json_string_length(t))
            fail(err, errlen, "Type: unknown check type \"%s\" (weft runs http, tcp and ttl)",
                 quote(json_string_value(t), q));
        else
            fail(err, errlen, "Check: one of HTTP, TCP or TTL is required");
        goto bad;
    }
    if (c->type == REG_CHECK_HTTP || c->type == REG_CHECK_TCP) {
        if (!weft__json_get(o, "Interval") || c->interval_ms == 0) {
            fail(err, errlen, "Interval: required for %s checks",
                 c->type == REG_CHECK_HTTP ? "HTTP" : "TCP");
            goto bad;
        }
        if (c->interval_ms < MIN_INTERVAL_MS) c->interval_ms = MIN_INTERVAL_MS;
        if (c->timeout_ms == 0) c->timeout_ms = DEF_TIMEOUT_MS;
    }
    if (c->type == REG_CHECK_HTTP && !*c->method) {
        weft__sfree(c->method);
        if (!(c->method = strdup("GET"))) goto oom;
    }

    json_t *st = weft__json_get(o, "Status");
    c->status = WEFT_HEALTH_CRITICAL;
    if (st && !json_is_null(st)) {
        weft_health_t h;
        if (!json_is_string(st) ||
            weft__health_parse(json_string_value(st), json_string_length(st), &h) != 0) {
            fail(err, errlen, "Status: must be \"passing\", \"warning\" or \"critical\"");
            goto bad;
        }
        c->status = h;
    }
    if (src == REG_SRC_STORE) {
        uint64_t ci = 0, mi = 0;
        get_uint(o, "CreateIndex", "CreateIndex", 0, 0, UINT64_MAX >> 1, &ci, err, errlen);
        get_uint(o, "ModifyIndex", "ModifyIndex", 0, 0, UINT64_MAX >> 1, &mi, err, errlen);
        c->create_index = ci;
        c->modify_index = mi;
        decode_history(o, c);
    }
    *out = c;
    return 0;
oom:
    fail(err, errlen, "Check: out of memory");
bad:
    weft__check_free(c);
    return -1;
}

static int decode_checks(json_t *root, reg_src_t src, reg_inst_t *in, char *err, size_t errlen)
{
    json_t *one = weft__json_get(root, "Check");
    json_t *many = weft__json_get(root, "Checks");
    if (one && json_is_null(one)) one = NULL;
    if (many && json_is_null(many)) many = NULL;
    if (many && !json_is_array(many)) return fail(err, errlen, "Checks: must be an array");
    size_t total = (one ? 1 : 0) + (many ? json_array_size(many) : 0);
    if (total > REG_MAX_CHECKS)
        return fail(err, errlen, "Checks: more than %d checks", REG_MAX_CHECKS);
    char def_id[REG_MAX_ID + 64], def_name[REG_MAX_ID + 64];
    snprintf(def_name, sizeof(def_name), "Service '%s' check", in->name);
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
        json_t *o = (one && i == 0) ? one : json_array_get(many, i - (one ? 1 : 0));
        if (total == 1)
            snprintf(def_id, sizeof(def_id), "service:%s", in->id);
        else
            snprintf(def_id, sizeof(def_id), "service:%s:%zu", in->id, ++n);
        reg_check_t *c;
        char cerr[512];
        if (weft__check_decode(o, src, def_id, def_name, &c, cerr, sizeof(cerr)) != 0) {
            char where[32];
            if (one && i == 0)
                snprintf(where, sizeof(where), "Check");
            else
                snprintf(where, sizeof(where), "Checks[%zu]", i - (one ? 1 : 0));
            /* "Check: what" is about the check as a whole; else a field of it */
            if (strncmp(cerr, "Check:", 6) == 0) return fail(err, errlen, "%s%s", where, cerr + 5);
            return fail(err, errlen, "%s.%s", where, cerr);
        }
        if (weft__inst_find_check(in, c->id)) {
            weft__check_free(c);
            return fail(err, errlen, "Checks: CheckID \"%s\" given twice", def_id);
        }
        weft__sfree(c->service_id);
        weft__sfree(c->service_name);
        c->service_id = strdup(in->id);
        c->service_name = strdup(in->name);
        if (!c->service_id || !c->service_name || weft__inst_put_check(in, c) != 0) {
            weft__check_free(c);
            return fail(err, errlen, "Checks: out of memory");
        }
    }
    return 0;
}

int weft__inst_decode(json_t *root, reg_src_t src, reg_inst_t **out, char *err, size_t errlen)
{
    if (!json_is_object(root)) return fail(err, errlen, "body: must be a JSON object");
    reg_inst_t *in = weft__inst_new();
    if (!in) return fail(err, errlen, "body: out of memory");
    if (get_id(root, "Name", "Name", NULL, &in->name, err, errlen) != 0) goto bad;
    if (get_id(root, "ID", "ID", in->name, &in->id, err, errlen) != 0) goto bad;
    if (get_str(root, "Address", "Address", "", REG_MAX_ID, &in->address, err, errlen) != 0)
        goto bad;
    if (get_str(root, "Kind", "Kind", "", REG_MAX_ID, &in->kind, err, errlen) != 0) goto bad;
    weft__inst_parse_addr(in);
    json_t *pv = weft__json_get(root, "Port");
    if (pv && !json_is_null(pv)) {
        uint64_t port;
        if (!json_is_integer(pv) || json_integer_value(pv) < 1 || json_integer_value(pv) > 65535 ||
            get_uint(root, "Port", "Port", 0, 1, 65535, &port, err, errlen) != 0) {
            fail(err, errlen, "Port: must be an integer between 1 and 65535");
            goto bad;
        }
        in->port = (uint16_t)port;
    }
    if (get_bool(root, "EnableTagOverride", "EnableTagOverride", &in->eto, err, errlen) != 0)
        goto bad;
    json_t *tags = weft__json_get(root, "Tags");
    if (tags && !json_is_null(tags)) {
        size_t i;
        json_t *t;
        if (!json_is_array(tags)) {
            fail(err, errlen, "Tags: must be an array of strings");
            goto bad;
        }
        if (json_array_size(tags) > REG_MAX_TAGS) {
            fail(err, errlen, "Tags: more than %d tags", REG_MAX_TAGS);
            goto bad;
        }
        if (json_array_size(tags) && !(in->tags = calloc(json_array_size(tags), sizeof(char *))))
            goto oom;
        json_array_foreach(tags, i, t)
        {
            if (!json_is_string(t) || json_string_length(t) > REG_MAX_ID ||
                !printable(json_string_value(t))) {
                fail(err, errlen, "Tags[%zu]: must be a printable string of at most %d bytes", i,
                     REG_MAX_ID);
                goto bad;
            }
            if (!(in->tags[in->ntags] = strdup(json_string_value(t)))) goto oom;
            in->ntags++;
        }
    }
    json_t *meta = weft__json_get(root, "Meta");
    if (meta && !json_is_null(meta)) {
        const char *k;
        json_t *v;
        if (!json_is_object(meta)) {
            fail(err, errlen, "Meta: must be an object of strings");
            goto bad;
        }
        if (json_object_size(meta) > REG_MAX_META) {
            fail(err, errlen, "Meta: more than %d keys", REG_MAX_META);
            goto bad;
        }
        if (json_object_size(meta) &&
            !(in->meta = calloc(json_object_size(meta), sizeof(reg_kv_t))))
            goto oom;
        json_object_foreach(meta, k, v)
        {
            if (!*k || strlen(k) > 128 || !printable(k)) {
                char q[68];
                fail(err, errlen, "Meta: key \"%s\" must be 1 to 128 printable bytes", quote(k, q));
                goto bad;
            }
            if (!json_is_string(v) || json_string_length(v) > 512) {
                fail(err, errlen, "Meta.%s: must be a string of at most 512 bytes", k);
                goto bad;
            }
            in->meta[in->nmeta].k = strdup(k);
            in->meta[in->nmeta].v = strdup(json_string_value(v));
            in->nmeta++;
            if (!in->meta[in->nmeta - 1].k || !in->meta[in->nmeta - 1].v) goto oom;
        }
    }
    json_t *w = weft__json_get(root, "Weights");
    if (w && !json_is_null(w)) {
        uint64_t p, wa;
        if (!json_is_object(w)) {
            fail(err, errlen, "Weights: must be an object");
            goto bad;
        }
        if (get_uint(w, "Passing", "Weights.Passing", 1, 1, 1 << 20, &p, err, errlen) != 0 ||
            get_uint(w, "Warning", "Weights.Warning", 1, 0, 1 << 20, &wa, err, errlen) != 0)
            goto bad;
        in->w_passing = (int)p;
        in->w_warning = (int)wa;
    }
    if (decode_checks(root, src, in, err, errlen) != 0) goto bad;
    if (src == REG_SRC_STORE) {
        uint64_t ci = 0, mi = 0;
        get_uint(root, "CreateIndex", "CreateIndex", 0, 0, UINT64_MAX >> 1, &ci, err, errlen);
        get_uint(root, "ModifyIndex", "ModifyIndex", 0, 0, UINT64_MAX >> 1, &mi, err, errlen);
        in->create_index = ci;
        in->modify_index = mi;
    }
    *out = in;
    return 0;
oom:
    fail(err, errlen, "body: out of memory");
bad:
    weft_snap_release(in);
    return -1;
}
