/*
 * client_read.c - the HTTP client's responses: reading (through the client's reader,
 * src/http/reader.h) into each connection's read buffer, parsing with llhttp, on_head's
 * views into that buffer, body pieces, completion.
 *
 * The read buffer (rbuf, a weft_buf_t) holds what the socket gave: [rpos, len) is not
 * parsed yet. Reads go straight into its room (weft_buf_room / weft_buf_commit), so a
 * response's bytes are never copied on their way to the caller:
 *   - While a head is parsed, its header names and values are kept as offsets into rbuf
 *     (hoffs), and the head stays in rbuf until on_head has run. Between reads, when room
 *     runs short, rbuf is compacted from the first header still needed (offsets move with
 *     it) and grows, up to max_response_head + CLIENT_HEAD_SLACK + CLIENT_READ_CHUNK; a
 *     head that does not fit is WEFT_ELIMIT. At the end of the head, harr's views are made
 *     from the offsets and on_head gets them: they point into rbuf.
 *   - Body pieces are handed to on_body as spans of rbuf; once everything read is parsed,
 *     the next read starts again at the front, so a streamed body needs one 16 KiB buffer.
 * Offsets, not pointers, are kept because rbuf may move (realloc, compaction) between reads;
 * it never moves during llhttp_execute.
 *
 * Pauses. A callback that pauses (weft_http_client_pause) makes the parser stop (HPE_PAUSED);
 * the unparsed bytes stay in rbuf (`held`) and reading stops, so at most one buffer is held.
 * Resume puts the connection on the client's kick, which parses the held bytes and then
 * reads again. The parser pauses itself at the end of each response (bytes after it are not
 * this call's), so completion always happens outside llhttp.
 *
 * Call states (client_int.h): the final head moves the call HEAD -> BODY, the end of the
 * message BODY -> COMPLETE; 1xx interim heads (100 Continue) are skipped and do not stop the
 * head timeout; a 101 is final, and malformed unless the request had an Upgrade field.
 * Every parser callback checks that the call it serves is still there, by sequence number,
 * because any user callback may cancel it or close the client.
 *
 * Threads: the client's loop thread only. Memory: failures end the call with WEFT_ENOMEM.
 */
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "http/client_int.h"
#include "http/syntax.h"

static const llhttp_settings_t settings;

void weft__read_reset(conn_t *k)
{
    k->got_bytes = k->interim = k->in_value = k->parser_paused = k->held = false;
    k->parsed = k->fast = false;
    k->nh = 0;
    k->hsize = 0;
    k->perr = 0;
    k->rpos = 0;
    weft_buf_reset(&k->rbuf);
    llhttp_init(&k->parser, HTTP_RESPONSE, &settings);
    k->parser.data = k;
}

/* ---- llhttp callbacks ---- */

/* Counts len bytes of names and values against max_response_head. */
static int head_count(conn_t *k, size_t len)
{
    if (len > k->client->o.max_response_head - k->hsize) {
        k->perr = WEFT_ELIMIT;
        return -1;
    }
    k->hsize += len;
    return 0;
}

static uint32_t offset_of(const conn_t *k, const char *at)
{
    return (uint32_t)(at - k->rbuf.p); /* rbuf's limit keeps it below 4 GiB */
}

/* The head's offsets and views, max_headers of each, at the connection's first head. */
static int hoffs_alloc(conn_t *k)
{
    unsigned max = k->client->o.max_headers;
    k->hoffs = malloc(sizeof(*k->hoffs) * max);
    k->harr = malloc(sizeof(*k->harr) * max);
    if (k->hoffs && k->harr) return 0;
    free(k->hoffs);
    free(k->harr);
    k->hoffs = NULL;
    k->harr = NULL;
    return WEFT_ENOMEM;
}

static int r_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    weft_http_client_t *c = k->client;
    if (!k->call) return -1;
    if (k->nh == 0 || k->in_value) {
        if (k->nh >= c->o.max_headers) {
            k->perr = WEFT_ELIMIT;
            return -1;
        }
        if (!k->hoffs && hoffs_alloc(k) != 0) {
            k->perr = WEFT_ENOMEM;
            return -1;
        }
        hoff_t *h = &k->hoffs[k->nh++];
        h->noff = offset_of(k, at);
        h->nlen = h->voff = h->vlen = 0;
        k->in_value = false;
    }
    k->hoffs[k->nh - 1].nlen += (uint32_t)len; /* pieces of one name are contiguous in rbuf */
    return head_count(k, len);
}

static int r_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    if (!k->call || k->nh == 0) return -1;
    hoff_t *h = &k->hoffs[k->nh - 1];
    if (h->nlen == 0) return -1; /* llhttp lets ":x: y" through in responses: not a token */
    if (h->vlen == 0) h->voff = offset_of(k, at);
    /* from the value's first byte to this piece's end: an obs-fold (a line that goes on with
     * a space) comes in pieces with its CRLF between them, which r_headers_complete blanks */
    h->vlen = offset_of(k, at) + (uint32_t)len - h->voff;
    k->in_value = true;
    return head_count(k, len);
}

static int r_header_value_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    k->in_value = true;
    return 0;
}

static int head_done(conn_t *k, call_t *call, int status, bool checked);

static int r_headers_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call) return -1;
    int status = llhttp_get_status_code(p);
    if (status < 100 || status > 999) return -1; /* llhttp takes "HTTP/1.1 2 OK": 3DIGIT */
    if (status < 200 && status != 101) {
        k->interim = true; /* 100 Continue and friends: not the response, and no body */
        return 1;
    }
    /* RFC 9110 15.2.2: no switch to a protocol the request did not name in Upgrade. Taken
     * as a response, the bytes after it would be the "new protocol" to a client, or to a
     * proxy in front, while this connection's next bytes are parsed as HTTP again */
    if (status == 101 && !call->upgrade) return -1;
    return head_done(k, call, status, false);
}

/* The final head is all there (hoffs, nh): on_head gets it, as views into rbuf. Checked:
 * head.c read it, so no value holds a CR or LF. Returns llhttp's answer to the head: -1
 * (failed, or the call ended), 0 (a body follows), 1 (no body), HPE_PAUSED. */
static int head_done(conn_t *k, call_t *call, int status, bool checked)
{
    char *rb = k->rbuf.p;
    for (unsigned i = 0; i < k->nh; i++) { /* views into rbuf: the head is all there */
        const hoff_t *h = &k->hoffs[i];
        /* RFC 9112 5.2: a user agent replaces each obs-fold of a response with spaces
         * (looked for only in a value that has a CR, LF or NUL: one pass, a word at a time) */
        if (!checked && !weft__http_value_clean(rb + h->voff, h->vlen))
            for (char *v = rb + h->voff, *e = v + h->vlen; v < e; v++)
                if (*v == '\r' || *v == '\n') *v = ' ';
        k->harr[i].name = (weft_str_t){h->nlen ? rb + h->noff : "", h->nlen};
        k->harr[i].value = (weft_str_t){h->vlen ? rb + h->voff : "", h->vlen};
    }
    /* Bytes after the head (past the last value's CRLF and the blank line) are read
     * already: on_body or on_done follows before the loop runs again, unless paused. An
     * unusual head (a value ending in blanks) can only make this true when no body byte is
     * read yet, which delays nothing past the call's end. */
    if (k->nh) {
        const hoff_t *last = &k->hoffs[k->nh - 1];
        size_t head_end =
            (size_t)(last->vlen ? last->voff + last->vlen : last->noff + last->nlen + 1) + 4;
        call->more_read = k->rbuf.len > head_end;
    } else {
        call->more_read = false;
    }
    weft__call_to(call, CALL_BODY);
    call->status = status;
    call->head_deadline = 0;
    if (call->body_ms) call->body_deadline = weft__add_ms(uv_now(k->client->loop), call->body_ms);
    weft__pool_count_head(call->pool, call);
    uint64_t seq = call->seq;
    if (call->cbs.on_head) call->cbs.on_head(call, status, k->harr, k->nh, call->arg);
    if (k->state == CONN_CLOSED || !k->call || k->call->seq != seq)
        return -1;                                                 /* cancelled from on_head */
    if (call->is_head || status == 204 || status == 304) return 1; /* never a body */
    return call->paused ? HPE_PAUSED : 0;
}

static int r_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call || call->state != CALL_BODY) return -1; /* body bytes with no head: malformed */
    if (len == 0) return 0;                           /* a span flushed by a zero-length execute */
    uint64_t seq = call->seq;
    if (call->cbs.on_body) call->cbs.on_body(call, at, len, call->arg);
    if (k->state == CONN_CLOSED || !k->call || k->call->seq != seq) return HPE_USER;
    return call->paused ? HPE_PAUSED : 0;
}

static int r_message_complete(llhttp_t *p)
{
    conn_t *k = p->data;
    call_t *call = k->call;
    if (!call) return -1;
    if (k->interim) {
        k->interim = false;
        k->nh = 0;
        k->hsize = 0;
        k->in_value = false;
        return 0;
    }
    if (call->state != CALL_BODY) return -1;
    weft__call_to(call, CALL_COMPLETE);
    return HPE_PAUSED; /* stop here: bytes after the response are not ours to parse */
}

static const llhttp_settings_t settings = {
    .on_header_field = r_header_field,
    .on_header_value = r_header_value,
    .on_header_value_complete = r_header_value_complete,
    .on_headers_complete = r_headers_complete,
    .on_body = r_body,
    .on_message_complete = r_message_complete,
};

/* ---- parsing and completion ---- */

/* A 101: the bytes from rpos on are the new protocol's. The connection leaves the client
 * (closed here, never pooled); with on_upgrade, a duplicate of its socket goes to the caller
 * first, so that closing the client's descriptor sends nothing (no FIN: the socket stays
 * open through the duplicate). */
static void upgrade_complete(conn_t *k, call_t *call)
{
    uint64_t seq = call->seq;
    if (!call->cbs.on_upgrade) {
        weft__conn_close(k);
        weft__call_finish(call, 0);
        return;
    }
    if (!weft__conn_body_sent(k, call)) {
        weft__call_fail(call, WEFT_EPARSE); /* switched before it heard the whole request */
        return;
    }
    uv_os_fd_t fd;
    int err = uv_fileno((uv_handle_t *)&k->tcp, &fd);
    int dfd = err ? err : weft__dup_cloexec(fd);
    if (dfd < 0) {
        weft__call_fail(call, dfd);
        return;
    }
    const char *data = k->rbuf.p ? k->rbuf.p + k->rpos : "";
    size_t len = k->rbuf.len - k->rpos;
    weft__conn_close(k); /* k's memory (and rbuf) stays until its close callback */
    call->cbs.on_upgrade(call, dfd, data, len, call->arg);
    if (call->state == CALL_FREE || call->seq != seq) return; /* cancelled meanwhile */
    weft__call_finish(call, 0);
}

void weft__read_complete(conn_t *k, call_t *call, bool all_used)
{
    if (call->status == 101) {
        upgrade_complete(k, call);
        return;
    }
    bool keep = all_used && (k->fast ? k->fast_keep : llhttp_should_keep_alive(&k->parser) != 0) &&
                weft__conn_body_sent(k, call) && !k->client->closing;
    k->call = NULL;
    call->conn = NULL;
    k->rpos = 0;
    weft_buf_reset(&k->rbuf);
    if (keep)
        weft__conn_handoff(k);
    else
        weft__conn_close(k);
    weft__call_finish(call, 0);
}

/* The call ended (cancelled, failed, the connection closed) in a callback. */
static bool ended(const conn_t *k, uint64_t seq)
{
    return k->state == CONN_CLOSED || !k->call || k->call->seq != seq;
}

/* A response whose whole head is in the first bytes read, in the plain shape head.c takes:
 * the head read in one pass, and its Content-Length body counted here, with llhttp never
 * seeing a byte of it (it stands at a message's start for the next response). As llhttp's
 * path would: on_head, body pieces as they come, pauses held, completion. False: not such
 * a head (or no memory for its offsets): llhttp parses this response. */
static bool fast_parse(conn_t *k, call_t *call)
{
    uint64_t seq = call->seq;
    if (!k->fast) {
        weft_http_client_t *c = k->client;
        if (!k->rbuf.p || (!k->hoffs && hoffs_alloc(k) != 0)) return false;
        weft__head_t o;
        const char *base = k->rbuf.p + k->rpos;
        if (!weft__head_scan(true, base, k->rbuf.len - k->rpos, SIZE_MAX, k->hoffs,
                             c->o.max_headers, &o))
            return false;
        size_t hsize = 0;
        for (uint32_t i = 0; i < o.nhdr; i++) hsize += k->hoffs[i].nlen + k->hoffs[i].vlen;
        if (hsize > c->o.max_response_head) return false; /* llhttp's path: WEFT_ELIMIT */
        uint32_t at = (uint32_t)k->rpos;
        for (uint32_t i = 0; i < o.nhdr; i++) {
            k->hoffs[i].noff += at;
            if (k->hoffs[i].vlen) k->hoffs[i].voff += at;
        }
        k->nh = o.nhdr;
        k->hsize = hsize;
        k->fast = true;
        k->fast_keep = !o.close;
        k->fast_left = o.length;
        k->rpos += o.len;
        int r = head_done(k, call, o.status, true);
        if (ended(k, seq)) return true;
        if (r < 0) {
            weft__call_fail(call, k->perr ? k->perr : WEFT_EPARSE);
            return true;
        }
        if (r == 1) k->fast_left = 0;
    }
    while (!call->paused) {
        size_t avail = k->rbuf.len - k->rpos;
        if (k->fast_left == 0) {
            weft__call_to(call, CALL_COMPLETE);
            weft__read_complete(k, call, avail == 0);
            return true;
        }
        if (avail == 0) return true; /* the rest comes with the next reads */
        size_t take = avail < k->fast_left ? avail : (size_t)k->fast_left;
        const char *at = k->rbuf.p + k->rpos;
        k->rpos += take;
        k->fast_left -= take;
        if (call->cbs.on_body) call->cbs.on_body(call, at, take, call->arg);
        if (ended(k, seq)) return true;
    }
    k->held = true; /* paused: the client's kick comes back here once resumed */
    weft__conn_read_stop(k);
    return true;
}

void weft__read_parse(conn_t *k)
{
    call_t *call = k->call;
    uint64_t seq = call->seq;
    if ((k->fast || (!k->parsed && call->state == CALL_HEAD && !call->is_head)) &&
        fast_parse(k, call))
        return;
    k->parsed = true;
    const char *base = k->rbuf.p ? k->rbuf.p + k->rpos : "";
    llhttp_errno_t e = llhttp_execute(&k->parser, base, k->rbuf.len - k->rpos);
    if (k->state == CONN_CLOSED || !k->call || k->call->seq != seq) return; /* ended */
    if (e == HPE_OK) {
        k->rpos = k->rbuf.len;
        return;
    }
    if (e == HPE_PAUSED) {
        k->rpos = (size_t)(llhttp_get_error_pos(&k->parser) - k->rbuf.p);
        if (call->state == CALL_COMPLETE && !call->paused) {
            weft__read_complete(k, call, k->rpos == k->rbuf.len);
            return;
        }
        /* paused from on_head or on_body; or complete, but paused */
        k->parser_paused = call->state != CALL_COMPLETE;
        k->held = true;
        weft__conn_read_stop(k);
        return;
    }
    weft__call_fail(call, k->perr ? k->perr : WEFT_EPARSE);
}

/* ---- the reader's callbacks ---- */

void weft__read_alloc(weft__rfd_t *f, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *k = f->data;
    weft_buf_t *b = &k->rbuf;
    /* what must stay: the first header name of a head in progress, else the unparsed bytes */
    bool in_head = k->call && k->call->state == CALL_HEAD && k->nh;
    size_t keep = in_head ? k->hoffs[0].noff : k->rpos;
    if (keep == b->len) {
        weft_buf_reset(b); /* everything was used: start again at the front */
        k->rpos = 0;
    } else if (weft_buf_room(b) < CLIENT_READ_MIN && keep > 0) {
        weft_buf_consume(b, keep);
        k->rpos -= keep;
        for (unsigned i = 0; in_head && i < k->nh; i++) {
            k->hoffs[i].noff -= (uint32_t)keep;
            if (k->hoffs[i].vlen) k->hoffs[i].voff -= (uint32_t)keep;
        }
    }
    if (weft_buf_room(b) < CLIENT_READ_MIN) {
        size_t want = CLIENT_READ_CHUNK;
        if (want > b->limit - b->len) want = b->limit - b->len;
        weft_buf_try_reserve(b, want); /* on failure, the room there is (maybe none) */
    }
    size_t room = weft_buf_room(b);
    *buf = uv_buf_init(room ? b->p + b->len : NULL, (unsigned)room);
}

void weft__read_cb(weft__rfd_t *f, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    conn_t *k = f->data;
    WEFT_ASSERT(k->state == CONN_BUSY || k->state == CONN_IDLE);
    call_t *call = k->call;
    if (nread > 0) weft_buf_commit(&k->rbuf, (size_t)nread);
    if (!call) {
        weft__conn_close(k); /* an idle connection closed, or sent bytes nobody asked for */
        return;
    }
    if (nread > 0) {
        k->got_bytes = true;
        if (call->state == CALL_BODY && call->body_ms)
            call->body_deadline = weft__add_ms(uv_now(k->client->loop), call->body_ms);
        weft__read_parse(k);
        return;
    }
    if (nread == UV_ENOBUFS) { /* a head that does not fit the read buffer */
        weft__call_fail(call, WEFT_ELIMIT);
        return;
    }
    if (weft__conn_retry_fresh(k, call)) return;
    if (nread == UV_EOF && k->got_bytes) {
        /* read-until-close bodies end here */
        llhttp_errno_t e = llhttp_finish(&k->parser);
        if (k->state == CONN_CLOSED || k->call != call) return;
        if ((e == HPE_OK || e == HPE_PAUSED) && call->state == CALL_COMPLETE) {
            weft__read_complete(k, call, false);
            return;
        }
        bool had_head = call->state == CALL_BODY || call->state == CALL_COMPLETE;
        weft__call_fail(call, had_head ? WEFT_ECONNRESET : WEFT_EPARSE);
        return;
    }
    weft__call_fail(call, nread == UV_EOF ? WEFT_ECONNRESET : (int)nread);
}
