/*
 * discovery_call.c - calls, broadcasts and resolutions by service name
 * (weft_discovery_call, _broadcast, _resolve, _cancel; weft/discovery.h).
 *
 * A call's life (call_t.state; each transition asserts the state it comes from):
 *
 *     C_NEW ──entry known──────────────────────────────▶ C_SENDING ──answer, error──▶ C_DONE
 *     C_NEW ──entry's first query in flight──▶ C_WAITING ──first answer──▶ C_NEW (as above)
 *     C_WAITING ──its deadline, or the first query failed──▶ C_DONE
 *     C_SENDING ──a retry_on failure, retry() admits it──▶ C_NEW ──▶ C_SENDING (no backoff)
 *     C_SENDING ──the same, with a backoff──▶ C_BACKOFF ──retry_ns (the tick)──▶ C_NEW
 *     broadcasts: C_NEW ──instances known──▶ C_CHILDREN ──last child done──▶ C_DONE
 *     C_DONE ──▶ delivered (by the kick, or by cancel and close) and freed
 *
 * Picking (a K_CALL that is not pinned) is the entry's policy set's (discovery_policy.c):
 * the balancer proposes an instance the call has not tried, and that instance's breaker
 * admits it or not. An admitted attempt owes its breaker one record (owes_record), paid
 * when the attempt ends, or as a failure when the call is canceled. Outstanding counts live
 * on the cached instances; a call that ends finds its instance again by ID (the entry may
 * have been updated meanwhile) to count itself out.
 *
 * Retries (retry()): the outcome must meet a retry_on condition (beyond connect failures,
 * for an idempotent method or retry_any_method), an untried instance must be left, the
 * backoff must end before the deadline, and the client's retry budget must admit it. A
 * call counts in the budget's requests from its first attempt to its end (budget_req); an
 * admitted retry holds one of the budget's retries until that attempt ends (budget_retry).
 *
 * A broadcast is a parent whose children are K_CALLs pinned to one instance each; a "*"
 * broadcast is a parent of one catalog read and then one broadcast per service. Children
 * count themselves out of their parent's `pending`; the parent finishes with its last
 * child. The results are built only at delivery, from the children, which live until then.
 *
 * Deadlines: a call's deadline covers everything: waiting for its entry (the tick expires
 * waiting calls), its backoffs, and every attempt (each gets what is left as its request
 * timeout, so the HTTP client ends it with WEFT_ETIMEDOUT). Children share their parent's
 * deadline. Broadcasts' children are pinned: no breaker, no budget, no retry.
 *
 * Threads: the client's loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "service/discovery_int.h"

static void attempt(call_t *c);
static void fanout(call_t *c);

/* The breaker hears how the attempt it admitted went (once); the retry budget gets back
 * the retry in flight. */
static void attempt_over(call_t *c, bool ok)
{
    weft_discovery_t *d = c->d;
    if (c->owes_record) {
        c->owes_record = false;
        uint64_t now = weft_now_ns();
        weft__dpol_record(&c->svc->pol, c->inst_id, uv_now(d->loop), ok,
                          now > c->sent_ns ? (now - c->sent_ns) / 1000000 : 0);
    }
    if (c->budget_retry) {
        c->budget_retry = false;
        weft_retry_budget_retry_end(d->budget);
    }
}

/* The call lets go of what it holds in the policies: the attempt in flight (failed, when
 * it is being canceled) and its place among the budget's requests. */
static void let_go(call_t *c, bool canceled)
{
    attempt_over(c, !canceled);
    if (c->budget_req) {
        c->budget_req = false;
        weft_retry_budget_request_end(c->d->budget);
    }
}

/* ---- life and death of a call ---- */

call_t *weft__disc_call_new(weft_discovery_t *d, kind_t kind, call_t *parent)
{
    call_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->d = d;
    c->kind = kind;
    c->state = C_NEW;
    c->parent = parent;
    dl_init(&c->link);
    dl_init(&c->rlink);
    dl_init(&c->wlink);
    dl_init(&c->dlink);
    weft_buf_init(&c->body, kind == K_OP ? d->o.max_registry_body : d->o.max_body);
    weft_buf_init(&c->head, 0);
    d->active++;
    return c;
}

/* Ends a call's CLIENT span with what the call came to. */
static void span_finish(call_t *c)
{
    weft_span_t *sp = c->span;
    if (!sp) return;
    c->span = NULL;
    if (c->inst_addr[0]) {
        weft_span_set_attr_str(sp, "server.address", c->inst_addr);
        weft_span_set_attr_int(sp, "server.port", c->inst_port);
        weft_span_set_attr_str(sp, "weft.instance", c->inst_id);
    }
    weft_span_set_attr_int(sp, "weft.attempts", c->attempts);
    if (c->status) weft_span_set_attr_int(sp, "http.response.status_code", c->status);
    if (c->err)
        weft_span_set_status(sp, WEFT_SPAN_STATUS_ERROR, weft_err_name(c->err));
    else if (c->status >= 500)
        weft_span_set_status(sp, WEFT_SPAN_STATUS_ERROR, NULL);
    weft_span_end(sp);
}

void weft__disc_call_free(call_t *c)
{
    weft_discovery_t *d = c->d;
    if (c->span) {
        if (!c->err) c->err = WEFT_ECANCELED;
        span_finish(c);
    }
    for (size_t i = 0; i < c->nkids; i++)
        if (c->kids[i]) weft__disc_call_free(c->kids[i]);
    if (c->catalog) weft__disc_call_free(c->catalog);
    free(c->kids);
    free(c->results);
    free(c->hdrs);
    free(c->tried);
    free(c->rq_own);
    weft_buf_free(&c->body);
    weft_buf_free(&c->head);
    if (c->svc_held) {
        svc_t *s = c->svc;
        s->users--;
        if (s->users == 0 && d->o.idle_ms && !d->closing)
            weft__disc_tick_arm(d, s->used_ns + d->o.idle_ms * 1000000ull);
    }
    d->active--;
    free(c);
}

static void parent_kid_done(call_t *p);
static void catalog_in(call_t *c);

/* The call is over (err final): a child tells its parent, a top-level call is queued for
 * delivery. Runs no user callback. */
void weft__disc_finish(call_t *c, int err)
{
    WEFT_ASSERT(c->state != C_DONE);
    if (c->state == C_WAITING) {
        dl_del(&c->wlink);
        dl_del(&c->dlink);
    }
    if (c->state == C_BACKOFF) dl_del(&c->dlink);
    let_go(c, false);
    c->state = C_DONE;
    c->err = err;
    if (c->kind == K_CALL && err) c->d->st.call_errors++;
    if (c->parent) {
        if (c->stopping) return;
        if (c->parent->catalog == c)
            catalog_in(c->parent); /* a "*" broadcast's catalog read */
        else
            parent_kid_done(c->parent);
        return;
    }
    if (c->stopping) return; /* cancel delivers it */
    c->queued = true;
    dl_push(&c->d->ready, &c->rlink);
    weft__disc_kick(c->d);
}

/* A waiting call's deadline passed (the tick). */
void weft__disc_expire(call_t *c)
{
    WEFT_ASSERT(c->state == C_WAITING);
    weft__disc_finish(c, WEFT_ETIMEDOUT);
}

/* Stops everything a call (and its children) has under way, delivering nothing. */
static void stop_activity(call_t *c)
{
    c->stopping = true;
    if (c->state == C_WAITING) {
        dl_del(&c->wlink);
        dl_del(&c->dlink);
    }
    if (c->state == C_BACKOFF) dl_del(&c->dlink);
    /* A canceled attempt counts as a failure: the breaker must hear of every call it
     * admitted (a trial never heard of would hold it half-open), and a caller that gives
     * up on an instance has mostly waited too long for it. */
    if (c->state != C_DONE) let_go(c, true);
    if (c->hc) weft_http_client_cancel(c->hc); /* its on_done lets go */
    c->hc = NULL;
    for (size_t i = 0; i < c->nkids; i++)
        if (c->kids[i]) stop_activity(c->kids[i]);
    if (c->catalog) stop_activity(c->catalog);
    c->state = C_DONE;
}

/* ---- the entry's first answer ---- */

/* What a call does once its entry is known (answered, or its first query failed). */
static void proceed(call_t *c)
{
    svc_t *s = c->svc;
    if (s->state != SVC_READY) {
        weft__disc_finish(c, s->err ? s->err : WEFT_ENOENT);
        return;
    }
    switch (c->kind) {
    case K_CALL:
        attempt(c);
        break;
    case K_BCAST:
        fanout(c);
        break;
    case K_RESOLVE:
        weft__disc_finish(c, 0);
        break;
    default:
        WEFT_ASSERT(0);
    }
}

void weft__disc_entry_answered(svc_t *s)
{
    /* proceed only queues calls or starts requests: the list is not touched behind us */
    while (!dl_empty(&s->waiters)) {
        call_t *c = DL_ITEM(s->waiters.next, call_t, wlink);
        WEFT_ASSERT(c->state == C_WAITING);
        dl_del(&c->wlink);
        dl_del(&c->dlink);
        c->state = C_NEW;
        proceed(c);
    }
}

/* Starts a call on its entry: at once when it is known, else it waits for the first
 * answer (or fails at once when the first query failed and waits for its backoff). */
static void start_on(call_t *c, svc_t *s, bool hold)
{
    WEFT_ASSERT(c->state == C_NEW);
    c->svc = s;
    if (hold) {
        s->users++;
        c->svc_held = true;
    }
    if (s->state == SVC_READY || s->wstate != W_QUERY) {
        proceed(c);
        return;
    }
    c->state = C_WAITING;
    dl_push(&s->waiters, &c->wlink);
    dl_push(&c->d->waiting, &c->dlink);
    weft__disc_tick_arm(c->d, c->deadline_ns);
}

/* ---- one attempt ---- */

static weft_discovery_instance_t *find_inst(svc_t *s, const char *id)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(s->inst[mid].id, id);
        if (r == 0) return &s->inst[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The instance for the next attempt, by the client's policy and the instances' breakers
 * (discovery_policy.c), among those the call has not tried; -1 and *err WEFT_ENOENT (none
 * left) or WEFT_EBREAKER (the breakers of those left refused). */
static long pick(call_t *c, int *err)
{
    svc_t *s = c->svc;
    unsigned tried[DISC_MAX_RETRIES + 1];
    size_t nt = 0;
    for (size_t i = 0; i < c->tried_len && nt < DISC_MAX_RETRIES + 1;
         i += strlen(c->tried + i) + 1) {
        weft_discovery_instance_t *in = find_inst(s, c->tried + i);
        if (in) tried[nt++] = (unsigned)(in - s->inst);
    }
    WEFT_ASSERT(s->pol.n == s->n);
    return weft__dpol_pick(&s->pol, s->inst, tried, nt, c->rq->has_key, c->rq->key_hash,
                           uv_now(c->d->loop), err);
}

static bool connect_error(int err)
{
    return err == -ECONNREFUSED || err == -ENETUNREACH || err == -EHOSTUNREACH ||
           err == -EADDRNOTAVAIL || err == WEFT_ETIMEDOUT_CONNECT || err == WEFT_ENOENT;
}

/* The retry condition (WEFT_DISCOVERY_RETRY_*) an attempt's outcome meets; 0: none. An
 * address the HTTP client refuses at once (WEFT_EINVAL) is a connect failure. */
static unsigned retry_condition(int err, int status)
{
    if (err == 0)
        return status == 502 || status == 503 || status == 504 ? WEFT_DISCOVERY_RETRY_5XX : 0;
    if (connect_error(err) || err == WEFT_EINVAL) return WEFT_DISCOVERY_RETRY_CONNECT;
    if (status) return 0; /* the head came: the request was read */
    if (err == WEFT_ETIMEDOUT_HEAD) return WEFT_DISCOVERY_RETRY_TIMEOUT;
    if (err == WEFT_ECONNRESET || err == WEFT_EPARSE) return WEFT_DISCOVERY_RETRY_RESET;
    return 0;
}

/* Whether the instance is to blame for the outcome (the breaker counts it as a failure):
 * a transport error other than the client's own limits, or a 5xx. */
static bool instance_failed(int err, int status)
{
    if (err == WEFT_ELIMIT || err == WEFT_ENOMEM) return false;
    return err != 0 || status >= 500;
}

/* After an attempt that ended with err (status: its response's, 0 if none): true when the
 * call goes on with another try (now, or after a backoff), false when this is its result.
 * Holds the rules: the condition is in retry_on; beyond connect failures only idempotent
 * methods (or retry_any_method); at most `retries`; an untried instance is left; the
 * deadline is not past; the retry budget admits it. */
static bool retry(call_t *c, int err)
{
    weft_discovery_t *d = c->d;
    unsigned cond = retry_condition(err, c->status);
    if (!cond || !(d->o.retry_on & cond) || c->pinned || c->attempts > d->o.retries) return false;
    if (cond != WEFT_DISCOVERY_RETRY_CONNECT && !c->rq->idempotent && !c->rq->any_method)
        return false;
    size_t ntried = 0;
    for (size_t i = 0; i < c->tried_len; i += strlen(c->tried + i) + 1) ntried++;
    if (ntried >= c->svc->n) return false;
    uint64_t now = weft_now_ns();
    if (now >= c->deadline_ns) return false;
    uint64_t wait_ms = 0;
    if (d->o.backoff_base_ms)
        wait_ms = weft_backoff_full_jitter(d->o.backoff_base_ms, d->o.backoff_max_ms,
                                           c->attempts - 1, weft__disc_rand(d));
    if (wait_ms && now + wait_ms * 1000000ull >= c->deadline_ns) return false;
    if (d->budget) {
        if (!weft_retry_budget_try_retry(d->budget)) {
            d->st.budget_exhausted++;
            return false;
        }
        c->budget_retry = true; /* ended with the attempt it admits */
    }
    c->err = err; /* the answer if no other instance is left */
    d->st.retries++;
    if (!wait_ms) {
        c->state = C_NEW;
        attempt(c);
        return true;
    }
    c->state = C_BACKOFF;
    c->retry_ns = now + wait_ms * 1000000ull;
    dl_push(&d->waiting, &c->dlink);
    weft__disc_tick_arm(d, c->retry_ns);
    return true;
}

/* A call's backoff is over (the tick). */
void weft__disc_retry_now(call_t *c)
{
    WEFT_ASSERT(c->state == C_BACKOFF);
    dl_del(&c->dlink);
    c->state = C_NEW;
    attempt(c);
}

static void count_out(call_t *c)
{
    weft_discovery_instance_t *in = find_inst(c->svc, c->inst_id);
    if (in && in->outstanding) in->outstanding--;
}

static void call_head(weft_http_client_call_t *hc, int status, const weft_http_header_t *h,
                      size_t n, void *arg)
{
    call_t *c = arg;
    c->status = status;
    weft_buf_reset(&c->head);
    c->nhdrs = n;
    for (size_t i = 0; i < n; i++) {
        weft_buf_put(&c->head, h[i].name.base, h[i].name.len);
        weft_buf_putc(&c->head, 0);
        weft_buf_put(&c->head, h[i].value.base, h[i].value.len);
        weft_buf_putc(&c->head, 0);
    }
    if (c->head.failed) {
        c->overflow = true; /* out of memory: reported as such */
        weft_http_client_cancel(hc);
    }
}

static void call_body(weft_http_client_call_t *hc, const char *data, size_t len, void *arg)
{
    call_t *c = arg;
    weft_buf_put(&c->body, data, len);
    if (c->body.failed) {
        c->overflow = true;
        weft_http_client_cancel(hc);
    }
}

static void call_done(weft_http_client_call_t *hc, int err, void *arg)
{
    call_t *c = arg;
    c->hc = NULL;
    if (c->kind == K_CALL) count_out(c);
    if (c->stopping) return;
    WEFT_ASSERT(c->state == C_SENDING);
    if (err == WEFT_ECANCELED && c->overflow) err = c->head.failed ? WEFT_ENOMEM : WEFT_ELIMIT;
    attempt_over(c, !instance_failed(err, c->status));
    if (retry(c, err)) return;
    weft__disc_finish(c, err);
}

static const weft_http_client_cbs_t call_cbs = {call_head, call_body, call_done, NULL, NULL};

/* Sends the call to an instance: the pinned one, or one picked by the policy whose breaker
 * admits it; a failure to send is an attempt's failure (retry() decides what follows). */
static void attempt(call_t *c)
{
    weft_discovery_t *d = c->d;
    WEFT_ASSERT(c->state == C_NEW);
    if (weft_now_ns() >= c->deadline_ns) {
        weft__disc_finish(c, WEFT_ETIMEDOUT);
        return;
    }
    if (!c->pinned) {
        int perr;
        long i = pick(c, &perr);
        if (i < 0) {
            /* a call that tried gets its last attempt's result; one that tried none, why
             * (no instance, or every breaker open) */
            if (!c->attempts && perr == WEFT_EBREAKER) d->st.breaker_failfast++;
            weft__disc_finish(c, c->attempts ? c->err : perr);
            return;
        }
        c->owes_record = c->svc->pol.inst[i]->b != NULL;
        const weft_discovery_instance_t *in = &c->svc->inst[i];
        snprintf(c->inst_id, sizeof(c->inst_id), "%s", in->id);
        snprintf(c->inst_addr, sizeof(c->inst_addr), "%s", in->address);
        c->inst_port = in->port;
        size_t idl = strlen(c->inst_id) + 1;
        char *t = realloc(c->tried, c->tried_len + idl);
        if (!t) {
            weft__disc_finish(c, WEFT_ENOMEM);
            return;
        }
        memcpy(t + c->tried_len, c->inst_id, idl);
        c->tried = t;
        c->tried_len += idl;
    }
    uint64_t now = weft_now_ns();
    if (c->attempts == 0) {
        d->st.calls++;
        if (d->budget && !c->pinned) {
            weft_retry_budget_request_start(d->budget);
            c->budget_req = true;
        }
    }
    c->sent_ns = now;
    c->attempts++;
    c->status = 0;
    c->nhdrs = 0;
    c->overflow = false;
    weft_buf_reset(&c->body);
    weft_buf_reset(&c->head);
    const rq_t *q = c->rq;
    weft_http_client_req_t r = {.method = q->method,
                                .host = c->inst_addr,
                                .port = c->inst_port,
                                .target = q->target,
                                .headers = q->hdrs,
                                .nheaders = q->nhdrs,
                                .body = q->body,
                                .body_len = q->body_len,
                                .timeout_ms = weft__disc_timeout_ms(d, c->deadline_ns),
                                .connect_timeout_ms = q->connect_ms,
                                .head_timeout_ms = q->head_ms,
                                .body_timeout_ms = q->body_ms};
    weft_discovery_instance_t *in = find_inst(c->svc, c->inst_id);
    if (in) in->outstanding++;
    c->state = C_SENDING;
    int err = weft_http_client_request(d->http, &r, &call_cbs, c, &c->hc);
    if (err == 0) return;
    c->hc = NULL;
    if (in) in->outstanding--;
    c->err = err;
    attempt_over(c, !instance_failed(err, 0));
    if (!retry(c, err)) weft__disc_finish(c, err);
}

/* ---- broadcasts ---- */

static void parent_kid_done(call_t *p)
{
    WEFT_ASSERT(p->state == C_CHILDREN && p->pending > 0);
    if (--p->pending == 0) weft__disc_finish(p, 0);
}

/* A K_BCAST whose entry is known: one pinned K_CALL per instance. */
static void fanout(call_t *c)
{
    weft_discovery_t *d = c->d;
    svc_t *s = c->svc;
    WEFT_ASSERT(c->state == C_NEW);
    if (s->n == 0) {
        weft__disc_finish(c, WEFT_ENOENT);
        return;
    }
    c->kids = calloc(s->n, sizeof(*c->kids));
    if (!c->kids) {
        weft__disc_finish(c, WEFT_ENOMEM);
        return;
    }
    c->state = C_CHILDREN;
    c->pending = 1; /* held until every child is made: none may finish the parent early */
    size_t n = s->n;
    for (size_t i = 0; i < n; i++) {
        call_t *k = weft__disc_call_new(d, K_CALL, c);
        if (!k) break; /* the rest are not sent; what was made is gathered */
        c->kids[c->nkids++] = k;
        k->pinned = true;
        k->svc = s;
        k->rq = c->rq;
        k->deadline_ns = c->deadline_ns;
        snprintf(k->inst_id, sizeof(k->inst_id), "%s", s->inst[i].id);
        snprintf(k->inst_addr, sizeof(k->inst_addr), "%s", s->inst[i].address);
        k->inst_port = s->inst[i].port;
        c->pending++;
        if (d->active > d->o.max_calls) {
            weft__disc_finish(k, WEFT_ELIMIT);
            continue;
        }
        attempt(k);
    }
    parent_kid_done(c);
}

/* A "*" broadcast's catalog read is in: one K_BCAST per service name. */
static void catalog_in(call_t *c)
{
    weft_discovery_t *d = c->d;
    call_t *op = c->catalog;
    WEFT_ASSERT(c->state == C_CHILDREN && c->pending == 1);
    char **names = NULL;
    size_t n = 0;
    int err = op->err ? op->err : weft__disc_catalog_names(op, &names, &n);
    if (err) {
        weft__disc_finish(c, err);
        return;
    }
    c->kids = calloc(n ? n : 1, sizeof(*c->kids));
    if (!c->kids) {
        for (size_t i = 0; i < n; i++) free(names[i]);
        free(names);
        weft__disc_finish(c, WEFT_ENOMEM);
        return;
    }
    c->pending = 1;
    for (size_t i = 0; i < n; i++) {
        call_t *k = weft__disc_call_new(d, K_BCAST, c);
        if (!k) break;
        c->kids[c->nkids++] = k;
        k->rq = c->rq;
        k->deadline_ns = c->deadline_ns;
        snprintf(k->inst_id, sizeof(k->inst_id), "%s", names[i]); /* the service's name */
        c->pending++;
        svc_t *s = NULL;
        if (!weft__disc_name_ok(names[i], WEFT_DISCOVERY_NAME_MAX, false))
            err = WEFT_EINVAL;
        else
            s = weft__disc_entry(d, names[i], &err);
        if (!s) {
            weft__disc_finish(k, err);
            continue;
        }
        start_on(k, s, true);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    parent_kid_done(c);
}

/* ---- delivery ---- */

static void fill_result(weft_discovery_result_t *r, call_t *c, const char *service)
{
    memset(r, 0, sizeof(*r));
    r->err = c->err;
    r->status = c->status;
    r->service = service;
    r->instance = c->inst_id;
    r->address = c->inst_addr;
    r->port = c->inst_port;
    r->attempts = c->attempts;
    r->body = c->body.p ? c->body.p : "";
    r->body_len = c->body.len;
    if (c->nhdrs && !c->head.failed && !c->hdrs) {
        c->hdrs = malloc(c->nhdrs * sizeof(*c->hdrs));
        if (c->hdrs) {
            const char *p = c->head.p;
            for (size_t i = 0; i < c->nhdrs; i++) {
                size_t nl = strlen(p);
                c->hdrs[i].name = (weft_str_t){p, nl};
                p += nl + 1;
                size_t vl = strlen(p);
                c->hdrs[i].value = (weft_str_t){p, vl};
                p += vl + 1;
            }
        }
    }
    if (c->hdrs) {
        r->headers = c->hdrs;
        r->nheaders = c->nhdrs;
    }
}

/* The results of a finished broadcast into c->results; returns how many, or (size_t)-1
 * when out of memory. */
static size_t gather(call_t *c)
{
    size_t n = 0;
    if (c->kind == K_BCAST) {
        n = c->nkids;
    } else {
        for (size_t i = 0; i < c->nkids; i++) {
            call_t *b = c->kids[i];
            n += b->err == 0 ? b->nkids : b->err == WEFT_ENOENT ? 0 : 1;
        }
    }
    c->results = calloc(n ? n : 1, sizeof(*c->results));
    if (!c->results) return (size_t)-1;
    size_t j = 0;
    for (size_t i = 0; i < c->nkids; i++) {
        call_t *b = c->kids[i];
        if (c->kind == K_BCAST) {
            fill_result(&c->results[j++], b, c->rq->service);
            continue;
        }
        if (b->err == WEFT_ENOENT) continue;
        if (b->err) {
            weft_discovery_result_t *r = &c->results[j++];
            memset(r, 0, sizeof(*r));
            r->err = b->err;
            r->service = b->inst_id;
            r->instance = r->address = r->body = "";
            continue;
        }
        for (size_t k = 0; k < b->nkids; k++) fill_result(&c->results[j++], b->kids[k], b->inst_id);
    }
    return j;
}

static int by_service_then_id(const void *a, const void *b)
{
    const weft_discovery_result_t *x = a, *y = b;
    int r = strcmp(x->service, y->service);
    return r ? r : strcmp(x->instance, y->instance);
}

/* Runs the callback of a finished top-level call and frees it. */
void weft__disc_deliver(call_t *c)
{
    WEFT_ASSERT(c->state == C_DONE && !c->parent);
    dl_del(&c->link);
    if (c->queued) dl_del(&c->rlink);
    c->queued = false;
    switch (c->kind) {
    case K_CALL:
    case K_OP: {
        weft_discovery_result_t r;
        fill_result(&r, c, c->kind == K_OP ? "" : c->rq->service);
        if (c->kind == K_OP) r.instance = r.address = "";
        span_finish(c); /* before the callback, which may end the parent */
        c->cb.call(&r, c->arg);
        break;
    }
    case K_RESOLVE:
        if (c->err || c->svc->state != SVC_READY)
            c->cb.resolve(c->err ? c->err : WEFT_ENOENT, NULL, 0, c->arg);
        else
            c->cb.resolve(0, c->svc->inst, c->svc->n, c->arg);
        break;
    case K_BCAST:
    case K_BCAST_ALL: {
        size_t n = c->err ? 0 : gather(c);
        if (n == (size_t)-1)
            c->cb.bcast(WEFT_ENOMEM, NULL, 0, c->arg);
        else if (c->err)
            c->cb.bcast(c->err, NULL, 0, c->arg);
        else {
            qsort(c->results, n, sizeof(*c->results), by_service_then_id);
            c->cb.bcast(0, c->results, n, c->arg);
        }
        break;
    }
    }
    weft__disc_call_free(c);
}

void weft__disc_cancel(call_t *c)
{
    stop_activity(c);
    c->err = WEFT_ECANCELED;
    weft__disc_deliver(c);
}

void weft_discovery_cancel(weft_discovery_call_t *call)
{
    if (call && !call->parent) weft__disc_cancel(call);
}

/* ---- starting ---- */

static bool token_ok(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

static bool target_ok(const char *s)
{
    if (!s || s[0] != '/') return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f) return false;
    return true;
}

int weft__disc_rq_copy(call_t *c, const weft_discovery_req_t *r, const char *service,
                       const weft_http_header_t *extra, size_t nextra)
{
    const char *method = r->method ? r->method : "GET";
    const char *target = r->target ? r->target : "/";
    if (!token_ok(method) || !target_ok(target) || (r->nheaders && !r->headers) ||
        (r->body_len && !r->body))
        return WEFT_EINVAL;
    size_t nh = r->nheaders + nextra;
    size_t bytes = sizeof(rq_t) + nh * sizeof(weft_http_header_t) + strlen(method) + 1 +
                   strlen(target) + 1 + r->body_len + 1;
    for (size_t i = 0; i < r->nheaders; i++)
        bytes += r->headers[i].name.len + r->headers[i].value.len;
    for (size_t i = 0; i < nextra; i++) bytes += extra[i].name.len + extra[i].value.len;
    rq_t *q = calloc(1, bytes);
    if (!q) return WEFT_ENOMEM;
    q->hdrs = (weft_http_header_t *)(void *)(q + 1);
    char *p = (char *)(q->hdrs + nh);
    for (size_t i = 0; i < nh; i++) {
        const weft_http_header_t *h = i < r->nheaders ? &r->headers[i] : &extra[i - r->nheaders];
        if (h->name.len) memcpy(p, h->name.base, h->name.len);
        q->hdrs[i].name = (weft_str_t){p, h->name.len};
        p += h->name.len;
        if (h->value.len) memcpy(p, h->value.base, h->value.len);
        q->hdrs[i].value = (weft_str_t){p, h->value.len};
        p += h->value.len;
    }
    q->nhdrs = nh;
    q->method = p;
    p = stpcpy(p, method) + 1;
    q->target = p;
    p = stpcpy(p, target) + 1;
    q->body = p;
    if (r->body_len) memcpy(p, r->body, r->body_len);
    q->body_len = r->body_len;
    snprintf(q->service, sizeof(q->service), "%s", service ? service : "");
    q->timeout_ms = r->timeout_ms ? r->timeout_ms : c->d->o.call_timeout_ms;
    q->connect_ms = r->connect_timeout_ms;
    q->head_ms = r->head_timeout_ms;
    q->body_ms = r->body_timeout_ms;
    q->any_method = r->retry_any_method;
    q->idempotent = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
                    strcmp(method, "OPTIONS") == 0 || strcmp(method, "TRACE") == 0 ||
                    strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
    if (r->hash_key) {
        q->has_key = true;
        q->key_hash = weft_ring_hash(r->hash_key, r->hash_key_len);
    }
    c->rq_own = q;
    c->rq = q;
    c->deadline_ns = weft_now_ns() + q->timeout_ms * 1000000ull;
    return 0;
}

/* The checks and the set-up every kind of call shares; returns the call or NULL with *err. */
static call_t *begin(weft_discovery_t *d, kind_t kind, const weft_discovery_req_t *r,
                     const char *service, bool all_ok, const weft_http_header_t *extra,
                     size_t nextra, int *err)
{
    if (d->closing) {
        *err = WEFT_ECLOSED;
        return NULL;
    }
    if (!(all_ok && strcmp(service, "*") == 0) &&
        !weft__disc_name_ok(service, WEFT_DISCOVERY_NAME_MAX, false)) {
        *err = WEFT_EINVAL;
        return NULL;
    }
    if (d->active >= d->o.max_calls) {
        *err = WEFT_ELIMIT;
        return NULL;
    }
    call_t *c = weft__disc_call_new(d, kind, NULL);
    if (!c) {
        *err = WEFT_ENOMEM;
        return NULL;
    }
    weft_discovery_req_t none = {0};
    if ((*err = weft__disc_rq_copy(c, r ? r : &none, service, extra, nextra)) != 0) {
        weft__disc_call_free(c);
        return NULL;
    }
    return c;
}

/* Takes the entry and starts c on it; on failure frees c. */
static int launch(weft_discovery_t *d, call_t *c, const char *service, weft_discovery_call_t **out)
{
    int err = 0;
    svc_t *s = weft__disc_entry(d, service, &err);
    if (!s) {
        weft__disc_call_free(c);
        return err;
    }
    dl_push(&d->calls, &c->link);
    if (out) *out = c;
    start_on(c, s, true);
    return 0;
}

/* The trace headers of a call's span, gathered by weft_trace_inject (at most the three W3C
 * and B3 forms the client could send; only W3C is asked for). */
typedef struct trace_hdrs_s {
    weft_http_header_t h[2];
    char v[2][WEFT_TRACESTATE_MAX + 1];
    size_t n;
} trace_hdrs_t;

static int put_trace_header(void *arg, const char *name, const char *value, size_t len)
{
    trace_hdrs_t *t = arg;
    if (t->n == 2 || len > WEFT_TRACESTATE_MAX) return WEFT_ELIMIT;
    memcpy(t->v[t->n], value, len);
    t->h[t->n].name = (weft_str_t){name, strlen(name)};
    t->h[t->n].value = (weft_str_t){t->v[t->n], len};
    t->n++;
    return 0;
}

int weft_discovery_call(weft_discovery_t *d, const weft_discovery_req_t *r,
                        weft_discovery_call_fn cb, void *arg, weft_discovery_call_t **out)
{
    if (!d || !r || !cb) return WEFT_EINVAL;
    int err;
    weft_span_t *span = NULL;
    trace_hdrs_t th;
    th.n = 0;
    if (r->parent && d->o.tracer && r->service) {
        char name[WEFT_DISCOVERY_NAME_MAX + 32];
        snprintf(name, sizeof(name), "%s %s", r->method ? r->method : "GET", r->service);
        span = weft_span_start(d->o.tracer, name, WEFT_SPAN_CLIENT, weft_span_context(r->parent));
        if (span) {
            weft_span_set_attr_str(span, "peer.service", r->service);
            weft_span_set_attr_str(span, "http.request.method", r->method ? r->method : "GET");
            weft_trace_inject(weft_span_context(span), WEFT_PROPAGATE_W3C, put_trace_header, &th);
        }
    }
    call_t *c = begin(d, K_CALL, r, r->service, false, th.h, th.n, &err);
    if (!c) {
        if (span) {
            weft_span_set_status(span, WEFT_SPAN_STATUS_ERROR, weft_err_name(err));
            weft_span_end(span);
        }
        return err;
    }
    c->span = span;
    c->cb.call = cb;
    c->arg = arg;
    return launch(d, c, r->service, out);
}

int weft_discovery_resolve(weft_discovery_t *d, const char *service, weft_discovery_resolve_fn cb,
                           void *arg, weft_discovery_call_t **out)
{
    if (!d || !service || !cb) return WEFT_EINVAL;
    int err;
    weft_discovery_req_t r = {.timeout_ms = d->o.registry_timeout_ms};
    call_t *c = begin(d, K_RESOLVE, &r, service, false, NULL, 0, &err);
    if (!c) return err;
    c->cb.resolve = cb;
    c->arg = arg;
    return launch(d, c, service, out);
}

int weft_discovery_broadcast(weft_discovery_t *d, const weft_discovery_req_t *r,
                             weft_discovery_broadcast_fn cb, void *arg, weft_discovery_call_t **out)
{
    if (!d || !r || !cb || !r->service) return WEFT_EINVAL;
    bool all = strcmp(r->service, "*") == 0;
    int err;
    call_t *c = begin(d, all ? K_BCAST_ALL : K_BCAST, r, r->service, true, NULL, 0, &err);
    if (!c) return err;
    c->cb.bcast = cb;
    c->arg = arg;
    if (!all) return launch(d, c, r->service, out);
    if (!(c->catalog = weft__disc_catalog_read(c, &err))) {
        weft__disc_call_free(c);
        return err;
    }
    dl_push(&d->calls, &c->link);
    c->state = C_CHILDREN;
    c->pending = 1; /* the catalog read */
    if (out) *out = c;
    return 0;
}
