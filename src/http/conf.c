/*
 * conf.c - the HTTP engine's declaration table (STYLE.md: configuration declared beside the
 * code it configures). Every program built on the engine (weft serve, services on the SDK)
 * adds this section to its configuration and gets the same keys, bounds, help and docs.
 * The defaults here equal weft_http_server_options_init's; a unit test holds them together.
 * Read-only data; any thread.
 */
#include <stddef.h>

#include "weft/http.h"

#define OPT(k, t, field, d, lo, hi, h)                                                             \
    {                                                                                              \
        .key = "http." k, .type = t, .offset = offsetof(weft_http_conf_t, field), .def = d,        \
        .min = lo, .max = hi, .help = h                                                            \
    }

static const weft_conf_option_t options[] = {
    OPT("max_head_size", WEFT_CONF_SIZE, max_head, "64KiB", 1024, 1 << 20,
        "request line + headers; larger heads get 431"),
    OPT("max_target_size", WEFT_CONF_SIZE, max_target, "8KiB", 256, 64 << 10,
        "request target; longer gets 414"),
    OPT("max_headers", WEFT_CONF_UINT, max_headers, "100", 1, 1000,
        "header lines per request; more gets 431"),
    OPT("max_body_size", WEFT_CONF_SIZE, max_body, "1MiB", 0, 1ull << 32,
        "default request body limit per route; larger gets 413"),
    OPT("max_connections", WEFT_CONF_UINT, max_connections, "10000", 1, 1000000,
        "open connections per worker (fewer when the open-file limit cannot hold them); "
        "past it new ones get 503 and are closed"),
    OPT("head_timeout", WEFT_CONF_DURATION, head_timeout, "10s", 100, 3600000,
        "the whole request head must arrive within this (else 408)"),
    OPT("idle_timeout", WEFT_CONF_DURATION, idle_timeout, "60s", 100, 3600000,
        "an idle keep-alive connection is closed after this"),
    OPT("body_timeout", WEFT_CONF_DURATION, body_timeout, "30s", 100, 3600000,
        "longest wait between two reads of a request body (else 408)"),
    OPT("write_timeout", WEFT_CONF_DURATION, write_timeout, "30s", 100, 3600000,
        "a response write that makes no progress for this long closes the connection"),
    OPT("shutdown_timeout", WEFT_CONF_DURATION, shutdown_timeout, "10s", 0, 3600000,
        "on SIGTERM/SIGINT, in-flight requests get this long to finish"),
    OPT("shutdown_delay", WEFT_CONF_DURATION, shutdown_delay, "0s", 0, 3600000,
        "on SIGTERM/SIGINT, first keep serving this long with /health answering 503 "
        "(draining), so that load balancers and Kubernetes stop sending traffic; a second "
        "signal skips the rest"),
    OPT("busy_poll_us", WEFT_CONF_UINT, busy_poll_us, "30", 0, 1000,
        "a worker that has been busy at least 75% of its last 2 ms (by its thread's CPU "
        "time) and has nothing to do polls for up to this many microseconds before it "
        "sleeps, which spares requests near saturation the wake-up of a sleeping thread; "
        "an idle or moderately loaded worker never polls; 0: off"),
    OPT("busy_poll_share", WEFT_CONF_UINT, busy_poll_share, "25", 0, 100,
        "the most a worker spends busy polling, in percent of the time it spends working "
        "(an idle worker never polls); 0: off"),
};

weft_conf_section_t weft_http_conf_section(weft_http_conf_t *conf)
{
    return (weft_conf_section_t){
        .name = "http", .opts = options, .n = sizeof(options) / sizeof(options[0]), .target = conf};
}

void weft_http_conf_apply(const weft_http_conf_t *c, weft_http_server_options_t *o)
{
    o->max_head = (size_t)c->max_head;
    o->max_target = (size_t)c->max_target;
    o->max_headers = (unsigned)c->max_headers;
    o->max_body = c->max_body;
    o->max_connections = (unsigned)c->max_connections;
    o->head_timeout_ms = c->head_timeout;
    o->idle_timeout_ms = c->idle_timeout;
    o->body_timeout_ms = c->body_timeout;
    o->write_timeout_ms = c->write_timeout;
    o->shutdown_timeout_ms = c->shutdown_timeout;
    o->shutdown_delay_ms = c->shutdown_delay;
    o->busy_poll_us = (unsigned)c->busy_poll_us;
    o->busy_poll_share = (unsigned)c->busy_poll_share;
}
