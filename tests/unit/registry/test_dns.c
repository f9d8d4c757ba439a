/*
 * test_dns.c - the registry's DNS interface (src/registry/dns.h).
 *
 * weft_dns_answer is driven with queries built by hand (q_build: a header, one question,
 * an optional OPT record) and a fake lookup with fixed targets that records how it was
 * called; every answer is parsed back (m_parse, which fails the test unless the whole
 * answer parses, its counts included) and every field asserted: header flags, the echoed
 * question, each record's owner, type, class, TTL and data, and exact lengths where the
 * answer is truncated. The forms of names (A, AAAA, ANY, SRV with its additional section,
 * TAG.NAME, DC, RFC 2782, node), the negative answers (NXDOMAIN and NODATA with the SOA,
 * REFUSED, NOTIMP, FORMERR, BADVERS), compression in queries (loops, pointers past the end
 * or forwards, long chains), UDP truncation at 512 and at the EDNS payload, TCP answers and
 * their far compression pointers, shuffling and the TTL.
 *
 * The last test serves the same function on a real host (two workers, a thread of its own)
 * and queries it over UDP and TCP from the test's thread: several TCP messages in one
 * write and one split over two writes. It waits on events (the start callback, answers
 * with receive timeouts), never on a sleep.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopback.h"

#include "core/snapshot.h"
#include "registry/dns.h"

#define T_A    1
#define T_SOA  6
#define T_TXT  16
#define T_AAAA 28
#define T_SRV  33
#define T_OPT  41
#define T_AXFR 252
#define T_ANY  255

/* ---- building queries ---- */

static size_t put_name(uint8_t *b, const char *name)
{
    size_t n = 0;
    while (*name) {
        size_t l = strcspn(name, ".");
        if (l == 0) { /* "." alone: the root */
            name++;
            continue;
        }
        b[n++] = (uint8_t)l;
        memcpy(b + n, name, l);
        n += l;
        name += l;
        if (*name == '.') name++;
    }
    b[n++] = 0;
    return n;
}

static size_t put16(uint8_t *b, unsigned v)
{
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
    return 2;
}

/* A query: id, RD when rd, one question; with payload >= 0 an OPT record (that payload,
 * version). Returns its length. */
static size_t q_build(uint8_t *b, unsigned id, bool rd, const char *name, unsigned qtype,
                      unsigned qclass, int payload, unsigned version)
{
    memset(b, 0, 12);
    put16(b, id);
    b[2] = rd ? 0x01 : 0;
    put16(b + 4, 1);
    put16(b + 10, payload >= 0 ? 1 : 0);
    size_t n = 12 + put_name(b + 12, name);
    n += put16(b + n, qtype);
    n += put16(b + n, qclass);
    if (payload >= 0) {
        b[n++] = 0;
        n += put16(b + n, T_OPT);
        n += put16(b + n, (unsigned)payload);
        b[n++] = 0;
        b[n++] = (uint8_t)version;
        n += put16(b + n, 0);
        n += put16(b + n, 0);
    }
    return n;
}

/* ---- parsing answers ---- */

typedef struct rr_s {
    char name[300];
    size_t at; /* offset of the owner name in the message */
    unsigned type, klass;
    uint32_t ttl;
    unsigned rdlen;
    size_t rd; /* offset of the data in the message */
} rr_t;

typedef struct msg_s {
    unsigned id, f2, f3, qd, an, ns, ar;
    char qname[300];
    unsigned qtype, qclass;
    rr_t rr[1200]; /* answer, authority, additional, in order */
    size_t nrr;
} msg_t;

static msg_t M; /* the answer last parsed */

static unsigned get16(const uint8_t *p)
{
    return (unsigned)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decodes the name at pos into text ("a.b." ; "." for the root); returns the offset after
 * it. Pointers must go back (the test fails otherwise). */
static size_t get_name(const uint8_t *m, size_t len, size_t pos, char *out)
{
    size_t end = 0, o = 0;
    unsigned jumps = 0;
    out[0] = 0;
    for (;;) {
        assert_true(pos < len);
        uint8_t c = m[pos];
        if ((c & 0xc0) == 0xc0) {
            assert_true(pos + 1 < len);
            size_t to = (size_t)(c & 0x3f) << 8 | m[pos + 1];
            assert_true(to < pos);
            assert_true(++jumps < 64);
            if (!end) end = pos + 2;
            pos = to;
            continue;
        }
        assert_true(c <= 63);
        if (c == 0) {
            if (!end) end = pos + 1;
            if (o == 0) strcpy(out, ".");
            return end;
        }
        assert_true(pos + 1 + c <= len && o + c + 2 < 300);
        memcpy(out + o, m + pos + 1, c);
        o += c;
        out[o++] = '.';
        out[o] = 0;
        pos += 1 + c;
    }
}

/* Parses the answer m[0..len) into M; every byte must belong to it. */
static void m_parse(const uint8_t *m, size_t len)
{
    memset(&M, 0, sizeof(M));
    assert_true(len >= 12);
    M.id = get16(m);
    M.f2 = m[2];
    M.f3 = m[3];
    M.qd = get16(m + 4);
    M.an = get16(m + 6);
    M.ns = get16(m + 8);
    M.ar = get16(m + 10);
    size_t pos = 12;
    assert_true(M.qd <= 1);
    if (M.qd) {
        pos = get_name(m, len, pos, M.qname);
        assert_true(pos + 4 <= len);
        M.qtype = get16(m + pos);
        M.qclass = get16(m + pos + 2);
        pos += 4;
    }
    size_t all = M.an + M.ns + M.ar;
    assert_true(all <= 1200);
    for (size_t i = 0; i < all; i++) {
        rr_t *r = &M.rr[i];
        r->at = pos;
        pos = get_name(m, len, pos, r->name);
        assert_true(pos + 10 <= len);
        r->type = get16(m + pos);
        r->klass = get16(m + pos + 2);
        r->ttl = get32(m + pos + 4);
        r->rdlen = get16(m + pos + 8);
        r->rd = pos + 10;
        pos += 10 + r->rdlen;
        assert_true(pos <= len);
    }
    M.nrr = all;
    assert_int_equal(pos, len);
}

/* ---- the fake lookup ---- */

typedef struct fake_s {
    int result; /* -1: no such name; else answer the targets below */
    const weft_dns_target_t *t;
    size_t n;
    /* what the last call asked */
    int calls;
    char kind;
    char name[80], tag[80], dc[80];
    bool tag_null, dc_null;
    size_t max;
    int in_read_section;
} fake_t;

static int fake_lookup(void *arg, char kind, const char *name, size_t name_len, const char *tag,
                       size_t tag_len, const char *dc, size_t dc_len, weft_dns_target_t *out,
                       size_t max)
{
    fake_t *f = arg;
    f->calls++;
    f->kind = kind;
    snprintf(f->name, sizeof(f->name), "%.*s", (int)name_len, name);
    f->tag_null = tag == NULL;
    snprintf(f->tag, sizeof(f->tag), "%.*s", (int)tag_len, tag ? tag : "");
    f->dc_null = dc == NULL;
    snprintf(f->dc, sizeof(f->dc), "%.*s", (int)dc_len, dc ? dc : "");
    f->max = max;
    f->in_read_section = weft_snap_read_ongoing();
    if (f->result < 0) return -1;
    if (dc && !(dc_len == 3 && strncasecmp(dc, "dc1", 3) == 0)) return -1;
    size_t n = f->n < max ? f->n : max;
    memcpy(out, f->t, n * sizeof(*out));
    return (int)n;
}

static const weft_dns_target_t four[] = {
    {"node1", "10.0.0.1", 8080, 0, NULL},
    {"node2", "10.0.0.2", 8081, 0, NULL},
    {"node3", "fd00::3", 8082, 0, NULL},
    {"node4", "not-an-address", 8083, 0, NULL},
};

static weft_dns_config_t cfg;
static fake_t fake;
static uint8_t qb[70000], ab[70000];

static int reset(void **state)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.domain = "consul.";
    cfg.datacenter = "dc1";
    cfg.max_targets = 256;
    memset(&fake, 0, sizeof(fake));
    fake.t = four;
    fake.n = 4;
    return 0;
}

/* Answers qb[0..qlen) into ab (UDP: cap 4096; TCP: 65535), parses it into M, returns its
 * length. */
static size_t ask_len(size_t qlen, bool tcp, uint64_t rnd)
{
    size_t n =
        weft_dns_answer(&cfg, qb, qlen, ab, tcp ? 65535 : 4096, tcp, rnd, fake_lookup, &fake);
    m_parse(ab, n);
    return n;
}

static size_t ask(const char *name, unsigned qtype)
{
    return ask_len(q_build(qb, 0x1234, true, name, qtype, 1, -1, 0), false, 7);
}

/* Asserts the header: id 0x1234, QR, opcode 0, aa, tc, RD (as sent by ask), RA clear,
 * rcode, counts. */
static void hdr_is(bool aa, bool tc, unsigned rcode, unsigned an, unsigned ns, unsigned ar)
{
    assert_int_equal(M.id, 0x1234);
    assert_int_equal(M.f2, 0x80 | (aa ? 0x04 : 0) | (tc ? 0x02 : 0) | 0x01);
    assert_int_equal(M.f3, rcode);
    assert_int_equal(M.qd, 1);
    assert_int_equal(M.an, an);
    assert_int_equal(M.ns, ns);
    assert_int_equal(M.ar, ar);
}

static void addr_is(const rr_t *r, const char *name, unsigned type, uint32_t ttl, const char *ip)
{
    uint8_t want[16];
    assert_string_equal(r->name, name);
    assert_int_equal(r->type, type);
    assert_int_equal(r->klass, 1);
    assert_int_equal(r->ttl, ttl);
    if (type == T_A) {
        assert_int_equal(r->rdlen, 4);
        assert_int_equal(inet_pton(AF_INET, ip, want), 1);
    } else {
        assert_int_equal(r->rdlen, 16);
        assert_int_equal(inet_pton(AF_INET6, ip, want), 1);
    }
    assert_memory_equal(ab + r->rd, want, r->rdlen);
}

/* The record's address as text. */
static const char *addr_of(const rr_t *r)
{
    static char s[64];
    inet_ntop(r->rdlen == 4 ? AF_INET : AF_INET6, ab + r->rd, s, sizeof(s));
    return s;
}

/* Asserts an SRV record: owner, ttl, priority 1, weight 1, port, an uncompressed target. */
static void srv_is(const rr_t *r, const char *owner, uint32_t ttl, unsigned port,
                   const char *target)
{
    char t[300];
    assert_string_equal(r->name, owner);
    assert_int_equal(r->type, T_SRV);
    assert_int_equal(r->klass, 1);
    assert_int_equal(r->ttl, ttl);
    assert_int_equal(get16(ab + r->rd), 1);
    assert_int_equal(get16(ab + r->rd + 2), 1);
    assert_int_equal(get16(ab + r->rd + 4), port);
    size_t end = get_name(ab, r->rd + r->rdlen, r->rd + 6, t);
    assert_int_equal(end, r->rd + r->rdlen);
    assert_string_equal(t, target);
    assert_int_equal(r->rdlen, 6 + strlen(target) + 1); /* uncompressed: no pointer */
}

/* Asserts the SOA of consul. (owner, fields, minimum = ttl). */
static void soa_is(const rr_t *r, uint32_t ttl)
{
    char n[300];
    assert_string_equal(r->name, "consul.");
    assert_int_equal(r->type, T_SOA);
    assert_int_equal(r->klass, 1);
    assert_int_equal(r->ttl, ttl);
    size_t p = get_name(ab, r->rd + r->rdlen, r->rd, n);
    assert_string_equal(n, "ns.consul.");
    p = get_name(ab, r->rd + r->rdlen, p, n);
    assert_string_equal(n, "hostmaster.consul.");
    assert_int_equal(p + 20, r->rd + r->rdlen);
    assert_int_equal(get32(ab + p), 1);
    assert_int_equal(get32(ab + p + 4), 3600);
    assert_int_equal(get32(ab + p + 8), 600);
    assert_int_equal(get32(ab + p + 12), 86400);
    assert_int_equal(get32(ab + p + 16), ttl);
}

static void opt_is(const rr_t *r, uint32_t ttl)
{
    assert_string_equal(r->name, ".");
    assert_int_equal(r->type, T_OPT);
    assert_int_equal(r->klass, 4096);
    assert_int_equal(r->ttl, ttl);
    assert_int_equal(r->rdlen, 0);
}

/* ---- the answers ---- */

static void test_a(void **state)
{
    size_t n = ask("web.service.consul", T_A);
    hdr_is(true, false, 0, 2, 0, 0);
    assert_int_equal(n, 12 + 24 + 2 * 16);
    assert_string_equal(M.qname, "web.service.consul.");
    assert_int_equal(M.qtype, T_A);
    assert_int_equal(M.qclass, 1);
    assert_int_equal(get16(ab + 36), 0xc00c); /* the owner points at the question */
    bool seen1 = false, seen2 = false;
    for (size_t i = 0; i < 2; i++) {
        const char *ip = addr_of(&M.rr[i]);
        seen1 |= strcmp(ip, "10.0.0.1") == 0;
        seen2 |= strcmp(ip, "10.0.0.2") == 0;
        addr_is(&M.rr[i], "web.service.consul.", T_A, 0, ip);
    }
    assert_true(seen1 && seen2);
    assert_int_equal(fake.calls, 1);
    assert_int_equal(fake.kind, 's');
    assert_string_equal(fake.name, "web");
    assert_true(fake.tag_null && fake.dc_null);
    assert_int_equal(fake.max, 256);
    /* RD clear in the query: clear in the answer */
    ask_len(q_build(qb, 0x1234, false, "web.service.consul", T_A, 1, -1, 0), false, 1);
    assert_int_equal(M.f2, 0x84);
}

/* A target whose address the lookup parsed already (fam, bin) is answered from those bytes,
 * not from its text: the registry parses each instance's address once. */
static void test_preparsed(void **state)
{
    static const uint8_t v4[4] = {10, 9, 8, 7};
    static const uint8_t v6[16] = {0xfd, 0, [15] = 9};
    static const weft_dns_target_t pre[] = {
        {"node1", "10.0.0.1", 8080, 4, v4},
        {"node2", "fd00::3", 8081, 6, v6},
    };
    fake.t = pre;
    fake.n = 2;
    ask("web.service.consul", T_A);
    hdr_is(true, false, 0, 1, 0, 0);
    addr_is(&M.rr[0], "web.service.consul.", T_A, 0, "10.9.8.7");
    ask("web.service.consul", T_AAAA);
    hdr_is(true, false, 0, 1, 0, 0);
    addr_is(&M.rr[0], "web.service.consul.", T_AAAA, 0, "fd00::9");
}

static void test_aaaa(void **state)
{
    size_t n = ask("web.service.consul", T_AAAA);
    hdr_is(true, false, 0, 1, 0, 0);
    assert_int_equal(n, 12 + 24 + 28);
    assert_int_equal(M.qtype, T_AAAA);
    addr_is(&M.rr[0], "web.service.consul.", T_AAAA, 0, "fd00::3");
}

static void test_any(void **state)
{
    ask("web.service.consul", T_ANY);
    hdr_is(true, false, 0, 3, 0, 0);
    unsigned a = 0, aaaa = 0;
    for (size_t i = 0; i < 3; i++) {
        if (M.rr[i].type == T_A) a++;
        if (M.rr[i].type == T_AAAA) aaaa++;
        addr_is(&M.rr[i], "web.service.consul.", M.rr[i].type, 0, addr_of(&M.rr[i]));
    }
    assert_int_equal(a, 2);
    assert_int_equal(aaaa, 1);
}

/* An address is answered once (RFC 2181 5), however many instances share it: given as text
 * or parsed already, among many targets (TCP, 300 of them: 10 addresses, 30 times each). */
static void test_duplicates(void **state)
{
    static const uint8_t v4[4] = {10, 0, 0, 1};
    static const weft_dns_target_t dups[] = {
        {"node1", "10.0.0.1", 1, 0, NULL}, {"node2", "10.0.0.1", 2, 4, v4},
        {"node3", "fd00::3", 3, 0, NULL},  {"node1", "10.0.0.2", 4, 0, NULL},
        {"node1", "fd00::3", 5, 0, NULL},  {"node4", "10.0.0.1", 6, 0, NULL},
    };
    fake.t = dups;
    fake.n = 6;
    ask("web.service.consul", T_A);
    hdr_is(true, false, 0, 2, 0, 0);
    char first[64];
    snprintf(first, sizeof(first), "%s", addr_of(&M.rr[0]));
    assert_string_not_equal(first, addr_of(&M.rr[1]));
    ask("web.service.consul", T_AAAA);
    hdr_is(true, false, 0, 1, 0, 0);
    addr_is(&M.rr[0], "web.service.consul.", T_AAAA, 0, "fd00::3");
    ask("web.service.consul", T_ANY);
    hdr_is(true, false, 0, 3, 0, 0);
    static weft_dns_target_t many[300];
    static char ips[10][16];
    for (size_t i = 0; i < 300; i++) {
        snprintf(ips[i % 10], sizeof(ips[0]), "10.1.0.%zu", i % 10);
        many[i] = (weft_dns_target_t){"node1", ips[i % 10], (uint16_t)(1000 + i), 0, NULL};
    }
    fake.t = many;
    fake.n = 300;
    cfg.max_targets = 512;
    ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0), true, 3);
    hdr_is(true, false, 0, 10, 0, 0);
    bool seen[10] = {0};
    for (size_t i = 0; i < 10; i++) {
        unsigned a, b, c, d;
        assert_int_equal(sscanf(addr_of(&M.rr[i]), "%u.%u.%u.%u", &a, &b, &c, &d), 4);
        assert_true(d < 10 && !seen[d]);
        seen[d] = true;
    }
}

/* The additional record for SRV target t (exactly one). */
static const rr_t *additional_for(const char *t)
{
    const rr_t *found = NULL;
    for (size_t i = M.an + M.ns; i < M.nrr; i++) {
        if (strcmp(M.rr[i].name, t) != 0) continue;
        assert_null(found);
        found = &M.rr[i];
    }
    assert_non_null(found);
    return found;
}

static void test_srv_additional(void **state)
{
    ask("web.service.consul", T_SRV);
    hdr_is(true, false, 0, 3, 0, 3);
    static const struct {
        unsigned port;
        const char *target, *ip;
        unsigned type;
    } want[] = {{8080, "node1.node.dc1.consul.", "10.0.0.1", T_A},
                {8081, "node2.node.dc1.consul.", "10.0.0.2", T_A},
                {8082, "node3.node.dc1.consul.", "fd00::3", T_AAAA}};
    for (size_t k = 0; k < 3; k++) {
        size_t i = 0;
        while (i < 3 && get16(ab + M.rr[i].rd + 4) != want[k].port) i++;
        assert_true(i < 3);
        srv_is(&M.rr[i], "web.service.consul.", 0, want[k].port, want[k].target);
        addr_is(additional_for(want[k].target), want[k].target, want[k].type, 0, want[k].ip);
    }
    /* two instances on one node and address: two SRV records, one additional record */
    static const weft_dns_target_t same[] = {{"node1", "10.0.0.1", 1, 0, NULL},
                                             {"node1", "10.0.0.1", 2, 0, NULL}};
    fake.t = same;
    fake.n = 2;
    ask("web.service.consul", T_SRV);
    hdr_is(true, false, 0, 2, 0, 1);
    srv_is(&M.rr[0], "web.service.consul.", 0, get16(ab + M.rr[0].rd + 4),
           "node1.node.dc1.consul.");
    srv_is(&M.rr[1], "web.service.consul.", 0, get16(ab + M.rr[1].rd + 4),
           "node1.node.dc1.consul.");
    addr_is(&M.rr[2], "node1.node.dc1.consul.", T_A, 0, "10.0.0.1");
    /* a node name that cannot be a label: no SRV for it; its address still answers A */
    static const weft_dns_target_t longname[] = {
        {"n234567890123456789012345678901234567890123456789012345678901234", "10.0.0.9", 1, 0,
         NULL},
        {"", "10.0.0.8", 2, 0, NULL},
        {"ok", "10.0.0.7", 3, 0, NULL}};
    fake.t = longname;
    fake.n = 3;
    ask("web.service.consul", T_SRV);
    hdr_is(true, false, 0, 1, 0, 1);
    srv_is(&M.rr[0], "web.service.consul.", 0, 3, "ok.node.dc1.consul.");
    ask("web.service.consul", T_A);
    hdr_is(true, false, 0, 3, 0, 0);
}

static void test_tag(void **state)
{
    ask("primary.web.service.consul", T_SRV);
    hdr_is(true, false, 0, 3, 0, 3);
    assert_int_equal(fake.kind, 's');
    assert_string_equal(fake.name, "web");
    assert_false(fake.tag_null);
    assert_string_equal(fake.tag, "primary");
    assert_true(fake.dc_null);
    assert_string_equal(M.rr[0].name, "primary.web.service.consul.");
}

static void test_dc(void **state)
{
    ask("web.service.dc1.consul", T_A);
    hdr_is(true, false, 0, 2, 0, 0);
    assert_string_equal(fake.name, "web");
    assert_true(fake.tag_null);
    assert_false(fake.dc_null);
    assert_string_equal(fake.dc, "dc1");
    addr_is(&M.rr[0], "web.service.dc1.consul.", T_A, 0, addr_of(&M.rr[0]));
    ask("primary.web.service.dc1.consul", T_SRV);
    hdr_is(true, false, 0, 3, 0, 3);
    assert_string_equal(fake.tag, "primary");
    assert_string_equal(fake.dc, "dc1");
    /* another datacenter: the lookup says no */
    ask("web.service.dc2.consul", T_A);
    hdr_is(true, false, 3, 0, 1, 0);
    assert_string_equal(fake.dc, "dc2");
    soa_is(&M.rr[0], 0);
}

static void test_rfc2782(void **state)
{
    ask("_web._tcp.service.consul", T_SRV);
    hdr_is(true, false, 0, 3, 0, 3);
    assert_string_equal(fake.name, "web");
    assert_true(fake.tag_null); /* _tcp: any tag */
    assert_true(fake.dc_null);
    for (size_t i = 0; i < 3; i++) {
        unsigned port = get16(ab + M.rr[i].rd + 4);
        assert_true(port >= 8080 && port <= 8082);
        char target[64];
        snprintf(target, sizeof(target), "%s.node.dc1.consul.", four[port - 8080].node);
        srv_is(&M.rr[i], "_web._tcp.service.consul.", 0, port, target);
        addr_is(additional_for(target), target, port == 8082 ? T_AAAA : T_A, 0,
                four[port - 8080].address);
    }
}

static void test_rfc2782_tag_dc(void **state)
{
    ask("_web._Primary.service.dc1.consul", T_SRV);
    hdr_is(true, false, 0, 3, 0, 3);
    assert_string_equal(fake.name, "web");
    assert_false(fake.tag_null);
    assert_string_equal(fake.tag, "Primary"); /* as asked: the lookup ignores case */
    assert_string_equal(fake.dc, "dc1");
    ask("_web._TCP.service.consul", T_SRV);
    assert_true(fake.tag_null);
}

static void test_node(void **state)
{
    static const weft_dns_target_t node[] = {{"node1", "10.0.0.1", 0, 0, NULL},
                                             {"node1", "fd00::1", 0, 0, NULL}};
    fake.t = node;
    fake.n = 2;
    ask("node1.node.consul", T_A);
    hdr_is(true, false, 0, 1, 0, 0);
    assert_int_equal(fake.kind, 'n');
    assert_string_equal(fake.name, "node1");
    assert_true(fake.dc_null);
    addr_is(&M.rr[0], "node1.node.consul.", T_A, 0, "10.0.0.1");
    ask("node1.node.dc1.consul", T_AAAA);
    hdr_is(true, false, 0, 1, 0, 0);
    assert_string_equal(fake.dc, "dc1");
    addr_is(&M.rr[0], "node1.node.dc1.consul.", T_AAAA, 0, "fd00::1");
    /* a node has no SRV: NODATA with the SOA */
    ask("node1.node.consul", T_SRV);
    hdr_is(true, false, 0, 0, 1, 0);
    soa_is(&M.rr[0], 0);
}

static void test_nxdomain_soa(void **state)
{
    fake.result = -1;
    size_t n = ask("nosuch.service.consul", T_A);
    hdr_is(true, false, 3, 0, 1, 0);
    assert_int_equal(n, 12 + 27 + 50);
    assert_string_equal(M.qname, "nosuch.service.consul.");
    soa_is(&M.rr[0], 0);
    assert_int_equal(fake.calls, 1);
    /* names of no known form: NXDOMAIN without a lookup */
    fake.result = 0;
    const char *others[] = {"foo.bar.consul",         "service.consul",    "node.consul",
                            "a.b.c.d.service.consul", "x.web.node.consul", "_web._tcp.node.consul"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        ask(others[i], T_A);
        hdr_is(true, false, 3, 0, 1, 0);
        soa_is(&M.rr[0], 0);
    }
    assert_int_equal(fake.calls, 1);
}

static void test_nodata(void **state)
{
    fake.n = 0; /* the service exists with no passing instance */
    ask("web.service.consul", T_A);
    hdr_is(true, false, 0, 0, 1, 0);
    soa_is(&M.rr[0], 0);
    ask("web.service.consul", T_SRV);
    hdr_is(true, false, 0, 0, 1, 0);
    fake.n = 4;
    ask("web.service.consul", T_TXT); /* a type the interface does not answer */
    hdr_is(true, false, 0, 0, 1, 0);
    soa_is(&M.rr[0], 0);
    static const weft_dns_target_t v6[] = {{"n", "fd00::1", 1, 0, NULL}};
    fake.t = v6;
    fake.n = 1;
    ask("web.service.consul", T_A); /* no IPv4 address */
    hdr_is(true, false, 0, 0, 1, 0);
}

static void test_apex(void **state)
{
    ask("consul", T_SOA);
    hdr_is(true, false, 0, 1, 0, 0);
    soa_is(&M.rr[0], 0);
    ask("CONSUL", T_ANY);
    hdr_is(true, false, 0, 1, 0, 0);
    ask("consul", T_A);
    hdr_is(true, false, 0, 0, 1, 0);
    soa_is(&M.rr[0], 0);
    assert_int_equal(fake.calls, 0);
}

static void test_refused(void **state)
{
    const char *outside[] = {"web.service.example.com", "xconsul", "consul.com", "."};
    for (size_t i = 0; i < 4; i++) {
        size_t n = ask(outside[i], T_A);
        hdr_is(false, false, 5, 0, 0, 0);
        assert_int_equal(n, 12 + (strcmp(outside[i], ".") ? strlen(outside[i]) + 2 : 1) + 4);
    }
    ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 3, -1, 0), false, 1); /* CH */
    hdr_is(false, false, 5, 0, 0, 0);
    assert_int_equal(M.qclass, 3);
    ask("consul", T_AXFR);
    hdr_is(false, false, 5, 0, 0, 0);
    /* with EDNS: the OPT comes back */
    ask_len(q_build(qb, 0x1234, true, "example.com", T_A, 1, 1232, 0), false, 1);
    hdr_is(false, false, 5, 0, 0, 1);
    opt_is(&M.rr[0], 0);
    assert_int_equal(fake.calls, 0);
    /* class ANY is answered as IN */
    ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 255, -1, 0), false, 1);
    hdr_is(true, false, 0, 2, 0, 0);
    assert_int_equal(M.rr[0].klass, 1);
}

static void test_notimp(void **state)
{
    size_t qlen = q_build(qb, 0xbeef, true, "web.service.consul", T_A, 1, -1, 0);
    qb[2] |= 2 << 3; /* STATUS */
    size_t n = weft_dns_answer(&cfg, qb, qlen, ab, 512, false, 1, fake_lookup, &fake);
    assert_int_equal(n, 12);
    m_parse(ab, n);
    assert_int_equal(M.id, 0xbeef);
    assert_int_equal(M.f2, 0x80 | (2 << 3) | 0x01);
    assert_int_equal(M.f3, 4);
    assert_int_equal(M.qd + M.an + M.ns + M.ar, 0);
    qb[2] = (uint8_t)((qb[2] & ~0x78) | (5 << 3)); /* UPDATE */
    assert_int_equal(weft_dns_answer(&cfg, qb, qlen, ab, 512, false, 1, fake_lookup, &fake), 12);
    assert_int_equal(ab[3], 4);
    assert_int_equal(fake.calls, 0);
}

/* Answers qb[0..qlen) and asserts a header-only FORMERR with the query's id. */
static void formerr(size_t qlen)
{
    size_t n = weft_dns_answer(&cfg, qb, qlen, ab, 512, false, 1, fake_lookup, &fake);
    assert_int_equal(n, 12);
    m_parse(ab, n);
    assert_int_equal(M.id, get16(qb));
    assert_int_equal(M.f2, 0x80 | (qb[2] & 0x01));
    assert_int_equal(M.f3, 1);
    assert_int_equal(M.qd + M.an + M.ns + M.ar, 0);
}

static void test_formerr(void **state)
{
    size_t qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
    qb[5] = 0; /* QDCOUNT 0 */
    formerr(qlen);
    qb[5] = 2; /* QDCOUNT 2, one question there */
    formerr(qlen);
    qb[5] = 1;
    formerr(qlen - 1); /* QCLASS cut */
    formerr(qlen - 4); /* QTYPE and QCLASS missing */
    formerr(12 + 5);   /* the name cut */
    formerr(12);       /* no question at all */
    qb[12] = 0x40 | 3; /* label type 01 */
    formerr(qlen);
    qb[12] = 0x80 | 3; /* label type 10 */
    formerr(qlen);
    /* a name over 255 bytes: 5 labels of 63 */
    size_t n = 12;
    for (int i = 0; i < 5; i++) {
        qb[n++] = 63;
        memset(qb + n, 'a', 63);
        n += 63;
    }
    qb[n++] = 0;
    n += put16(qb + n, T_A);
    n += put16(qb + n, 1);
    formerr(n);
    /* two OPT records */
    qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, 1232, 0);
    memcpy(qb + qlen, qb + qlen - 11, 11);
    qb[11] = 2;
    formerr(qlen + 11);
    /* an OPT whose owner is not the root */
    qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
    qb[11] = 1;
    n = qlen + put_name(qb + qlen, "x");
    n += put16(qb + n, T_OPT);
    n += put16(qb + n, 1232);
    memset(qb + n, 0, 6);
    formerr(n + 6);
    /* an additional record whose data runs past the end */
    qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
    qb[11] = 1;
    n = qlen;
    qb[n++] = 0;
    n += put16(qb + n, T_TXT);
    n += put16(qb + n, 1);
    memset(qb + n, 0, 4);
    n += 4;
    n += put16(qb + n, 9);
    memset(qb + n, 'x', 8);
    formerr(n + 8);
    /* an answer record (ANCOUNT 1) that is not there */
    qlen = q_build(qb, 0x1234, false, "web.service.consul", T_A, 1, -1, 0);
    qb[7] = 1;
    formerr(qlen);
    assert_int_equal(fake.calls, 0);
}

static void test_compression(void **state)
{
    size_t qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
    /* the question's name as a pointer to itself */
    qb[12] = 0xc0;
    qb[13] = 12;
    formerr(qlen);
    /* "a" then a pointer back to "a": a loop */
    qb[12] = 1;
    qb[13] = 'a';
    qb[14] = 0xc0;
    qb[15] = 12;
    formerr(qlen);
    /* pointers past the end, forwards, and a pointer cut in half */
    qb[12] = 0xc0;
    qb[13] = 0xff;
    formerr(qlen);
    qb[12] = 0xc0;
    qb[13] = 20;
    formerr(qlen);
    qb[12] = 0xc0;
    formerr(13);
    /* a pointer back into the header: bytes 10-11 (ARCOUNT 0) read as the root */
    qb[12] = 0xc0;
    qb[13] = 11;
    qb[14] = 0;
    qb[15] = T_A;
    qb[16] = 0;
    qb[17] = 1;
    size_t n = weft_dns_answer(&cfg, qb, 18, ab, 512, false, 1, fake_lookup, &fake);
    m_parse(ab, n);
    hdr_is(false, false, 5, 0, 0, 0); /* the root is outside the domain */
    assert_string_equal(M.qname, ".");

    /* a chain of additional records, each owner a pointer to the one before it: followed
     * back to the question while it is 127 jumps long at most */
    for (unsigned chain = 126; chain <= 128; chain++) {
        qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
        size_t prev = 12;
        for (unsigned i = 0; i < chain; i++) {
            size_t at = qlen;
            qlen += put16(qb + qlen, 0xc000 | (unsigned)prev);
            qlen += put16(qb + qlen, T_TXT);
            qlen += put16(qb + qlen, 1);
            memset(qb + qlen, 0, 6);
            qlen += 6;
            prev = at;
        }
        put16(qb + 10, chain);
        n = weft_dns_answer(&cfg, qb, qlen, ab, 512, false, 1, fake_lookup, &fake);
        m_parse(ab, n);
        if (chain <= 127) {
            hdr_is(true, false, 0, 2, 0, 0);
        } else {
            assert_int_equal(M.f3, 1);
            assert_int_equal(n, 12);
        }
    }
    /* an OPT after a compressed additional record is still found */
    qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
    qlen += put16(qb + qlen, 0xc00c);
    qlen += put16(qb + qlen, T_TXT);
    qlen += put16(qb + qlen, 1);
    memset(qb + qlen, 0, 4);
    qlen += 4;
    qlen += put16(qb + qlen, 2);
    qb[qlen++] = 1;
    qb[qlen++] = 'x';
    static const uint8_t opt[11] = {0, 0, T_OPT, 0x10, 0, 0, 0, 0, 0, 0, 0};
    memcpy(qb + qlen, opt, sizeof(opt));
    qlen += sizeof(opt);
    put16(qb + 10, 2);
    ask_len(qlen, false, 1);
    hdr_is(true, false, 0, 2, 0, 1);
    opt_is(&M.rr[2], 0);
}

/* n IPv4 targets on nodes "n000".."n(n-1)", addresses 10.0.x.y, ports 1000 + i. */
static weft_dns_target_t many[600];
static char many_names[600][8], many_addrs[600][20];

static void make_many(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(many_names[i], sizeof(many_names[i]), "n%03zu", i);
        snprintf(many_addrs[i], sizeof(many_addrs[i]), "10.0.%zu.%zu", i / 256, i % 256);
        many[i] = (weft_dns_target_t){many_names[i], many_addrs[i], (uint16_t)(1000 + i), 0, NULL};
    }
    fake.t = many;
    fake.n = n;
}

static void test_truncation_udp(void **state)
{
    make_many(100);
    size_t n = ask("web.service.consul", T_A);
    hdr_is(true, true, 0, 29, 0, 0); /* (512 - 36) / 16 = 29 whole records */
    assert_int_equal(n, 36 + 29 * 16);
    for (size_t i = 0; i < 29; i++)
        addr_is(&M.rr[i], "web.service.consul.", T_A, 0, addr_of(&M.rr[i]));
    /* SRV: each unit is an SRV (18 + 22 bytes) and its A (16) */
    n = ask("web.service.consul", T_SRV);
    hdr_is(true, true, 0, 8, 0, 8); /* (512 - 36) / 56 = 8 */
    assert_int_equal(n, 36 + 8 * 56);
    for (size_t i = 0; i < 8; i++) {
        char target[64];
        unsigned port = get16(ab + M.rr[i].rd + 4);
        snprintf(target, sizeof(target), "n%03u.node.dc1.consul.", port - 1000);
        srv_is(&M.rr[i], "web.service.consul.", 0, port, target);
        addr_is(additional_for(target), target, T_A, 0, many_addrs[port - 1000]);
    }
    /* a cap below the payload size still bounds the answer */
    size_t qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, 4096, 0);
    n = weft_dns_answer(&cfg, qb, qlen, ab, 600, false, 1, fake_lookup, &fake);
    m_parse(ab, n);
    hdr_is(true, true, 0, 34, 0, 1); /* (600 - 47) / 16 = 34 */
    assert_int_equal(n, 47 + 34 * 16);
}

static void test_edns(void **state)
{
    make_many(300);
    static const struct {
        int payload;
        unsigned an;
        bool tc;
    } cases[] = {
        {4096, 253, true},                   /* (4096 - 47) / 16 = 253.06 */
        {65000, 253, true},                  /* clamped to 4096 */
        {1232, 74, true},   {100, 29, true}, /* below 512: 512 */
        {0, 29, true},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t n = ask_len(
            q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, cases[k].payload, 0), false, k);
        hdr_is(true, cases[k].tc, 0, cases[k].an, 0, 1);
        assert_int_equal(n, 47 + cases[k].an * 16);
        opt_is(&M.rr[M.nrr - 1], 0);
    }
    make_many(100); /* everything fits in 4096 */
    size_t n = ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, 4096, 0), false, 1);
    hdr_is(true, false, 0, 100, 0, 1);
    assert_int_equal(n, 47 + 100 * 16);
    /* version 1: BADVERS (extended rcode 16: 0 in the header, 1 in the OPT), no answer */
    n = ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, 4096, 1), false, 1);
    hdr_is(true, false, 0, 0, 0, 1);
    opt_is(&M.rr[0], 0x01000000);
    assert_int_equal(n, 36 + 11);
    /* NXDOMAIN with EDNS: SOA in the authority section, OPT in the additional one */
    fake.result = -1;
    ask_len(q_build(qb, 0x1234, true, "x.service.consul", T_A, 1, 1232, 0), false, 1);
    hdr_is(true, false, 3, 0, 1, 1);
    soa_is(&M.rr[0], 0);
    opt_is(&M.rr[1], 0);
}

static void test_tcp_complete(void **state)
{
    make_many(300);
    cfg.max_targets = 300;
    size_t n = ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0), true, 1);
    hdr_is(true, false, 0, 300, 0, 0);
    assert_int_equal(n, 36 + 300 * 16);
    n = ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_SRV, 1, -1, 0), true, 1);
    hdr_is(true, false, 0, 300, 0, 300);
    assert_int_equal(n, 36 + 300 * 56);
    /* a cap below the answer: whole records up to it, TC */
    size_t qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
    n = weft_dns_answer(&cfg, qb, qlen, ab, 1000, true, 1, fake_lookup, &fake);
    m_parse(ab, n);
    hdr_is(true, true, 0, 60, 0, 0); /* (1000 - 36) / 16 = 60 */
}

/* SRV targets past offset 0x3fff: their additional records spell the owner out. */
static void test_tcp_far_targets(void **state)
{
    static weft_dns_target_t t[512];
    static char names[512][40];
    for (size_t i = 0; i < 512; i++) {
        snprintf(names[i], sizeof(names[i]), "node-with-a-longer-name-%06zu", i); /* 30 */
        t[i] = (weft_dns_target_t){names[i], "10.1.2.3", (uint16_t)i, 0, NULL};
    }
    fake.t = t;
    fake.n = 512;
    cfg.max_targets = 512;
    size_t n = ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_SRV, 1, -1, 0), true, 3);
    hdr_is(true, false, 0, 512, 0, 512);
    assert_true(n > 0x4000);
    assert_int_equal(fake.max, 512);
    unsigned pointed = 0, spelt = 0;
    for (size_t i = 0; i < 512; i++) {
        char target[80];
        unsigned port = get16(ab + M.rr[i].rd + 4);
        snprintf(target, sizeof(target), "%s.node.dc1.consul.", names[port]);
        srv_is(&M.rr[i], "web.service.consul.", 0, port, target);
        const rr_t *add = additional_for(target);
        addr_is(add, target, T_A, 0, "10.1.2.3");
        if (ab[add->at] >= 0xc0) {
            pointed++;
            assert_true(M.rr[i].rd + 6 <= 0x3fff); /* only targets a pointer reaches */
        } else {
            spelt++;
        }
    }
    assert_int_equal(pointed, 248); /* (0x3fff - 36 - 18) / 66 + 1 */
    assert_int_equal(spelt, 512 - 248);
    assert_int_equal(n, 36 + 512 * 66 + 248 * 16 + 264 * 56);
    /* max_targets bounds what the lookup is asked for; past 512 it is 512 */
    cfg.max_targets = 5;
    ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0), true, 3);
    assert_int_equal(fake.max, 5);
    hdr_is(true, false, 0, 1, 0, 0); /* one address, five instances */
    cfg.max_targets = 100000;
    ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0), true, 3);
    assert_int_equal(fake.max, 512);
}

static void test_shuffle(void **state)
{
    make_many(10);
    char first[10][64], order[10][64];
    unsigned differ = 0;
    for (uint64_t rnd = 0; rnd < 20; rnd++) {
        ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0), false, rnd);
        hdr_is(true, false, 0, 10, 0, 0);
        bool seen[10] = {0};
        for (size_t i = 0; i < 10; i++) {
            const char *ip = addr_of(&M.rr[i]);
            unsigned a, b, c, d;
            assert_int_equal(sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
            assert_true(d < 10 && !seen[d]); /* the same set, each once */
            seen[d] = true;
            snprintf(order[i], sizeof(order[i]), "%s", ip);
        }
        if (rnd == 0)
            memcpy(first, order, sizeof(first));
        else if (memcmp(first, order, sizeof(first)) != 0)
            differ++;
    }
    assert_true(differ >= 15); /* 10! orders: a repeat is rare */
    /* the same rnd, the same order */
    ask_len(q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0), false, 0);
    for (size_t i = 0; i < 10; i++) assert_string_equal(addr_of(&M.rr[i]), first[i]);
}

static void test_ttl(void **state)
{
    cfg.ttl = 30;
    ask("web.service.consul", T_SRV);
    hdr_is(true, false, 0, 3, 0, 3);
    for (size_t i = 0; i < M.nrr; i++) assert_int_equal(M.rr[i].ttl, 30);
    ask("web.service.consul", T_ANY);
    for (size_t i = 0; i < M.nrr; i++) assert_int_equal(M.rr[i].ttl, 30);
    fake.result = -1;
    ask("web.service.consul", T_A);
    soa_is(&M.rr[0], 30);
}

static void test_case_and_domain(void **state)
{
    ask("WeB.SeRvIcE.CoNsUl", T_A);
    hdr_is(true, false, 0, 2, 0, 0);
    assert_string_equal(M.qname, "WeB.SeRvIcE.CoNsUl."); /* echoed as asked */
    assert_string_equal(fake.name, "WeB");
    cfg.domain = "Weft.Example"; /* no final dot; two labels */
    cfg.datacenter = "eu1";
    ask("web.service.weft.example", T_SRV);
    hdr_is(true, false, 0, 3, 0, 3);
    char t[80];
    size_t end = get_name(ab, M.rr[0].rd + M.rr[0].rdlen, M.rr[0].rd + 6, t);
    assert_int_equal(end, M.rr[0].rd + M.rr[0].rdlen);
    assert_true(strstr(t, ".node.eu1.Weft.Example.") != NULL);
    fake.result = -1;
    ask("x.service.weft.example", T_A);
    hdr_is(true, false, 3, 0, 1, 0);
    assert_string_equal(M.rr[0].name, "weft.example.");
    ask("web.service.consul", T_A);
    hdr_is(false, false, 5, 0, 0, 0);
}

static void test_ignored(void **state)
{
    size_t qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
    assert_int_equal(weft_dns_answer(&cfg, qb, 11, ab, 512, false, 1, fake_lookup, &fake), 0);
    qb[2] |= 0x80; /* a response */
    assert_int_equal(weft_dns_answer(&cfg, qb, qlen, ab, 512, false, 1, fake_lookup, &fake), 0);
    assert_int_equal(fake.calls, 0);
}

static void test_config_check(void **state)
{
    assert_int_equal(weft_dns_config_check(&cfg), 0);
    weft_dns_config_t c = cfg;
    c.domain = NULL;
    c.datacenter = NULL;
    assert_int_equal(weft_dns_config_check(&c), 0); /* the defaults */
    const char *bad_domains[] = {
        "", ".", "a..b", "a.b..",
        "x234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < 5; i++) {
        c = cfg;
        c.domain = bad_domains[i];
        assert_int_equal(weft_dns_config_check(&c), WEFT_EINVAL);
    }
    c = cfg;
    c.datacenter = "a.b";
    assert_int_equal(weft_dns_config_check(&c), WEFT_EINVAL);
    c.datacenter = "";
    assert_int_equal(weft_dns_config_check(&c), WEFT_EINVAL);
    c = cfg;
    c.ttl = 0x80000000u;
    assert_int_equal(weft_dns_config_check(&c), WEFT_EINVAL);
    c = cfg;
    c.max_targets = 513;
    assert_int_equal(weft_dns_config_check(&c), WEFT_EINVAL);
    /* an answer with a bad configuration: SERVFAIL, header only */
    c = cfg;
    c.domain = "a..b";
    size_t qlen = q_build(qb, 0x1234, true, "web.service.consul", T_A, 1, -1, 0);
    assert_int_equal(weft_dns_answer(&c, qb, qlen, ab, 512, false, 1, fake_lookup, &fake), 12);
    assert_int_equal(ab[3], 2);
}

/* ---- served on a host ---- */

static weft_host_t *host;
static weft_dns_server_t *dns;
static pthread_t runner;
static int run_rc = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool started, ran;
static atomic_int served_calls, served_outside_section;

static int served_lookup(void *arg, char kind, const char *name, size_t name_len, const char *tag,
                         size_t tag_len, const char *dc, size_t dc_len, weft_dns_target_t *out,
                         size_t max)
{
    atomic_fetch_add(&served_calls, 1);
    if (!weft_snap_read_ongoing()) atomic_fetch_add(&served_outside_section, 1);
    if (kind != 's' || name_len != 3 || memcmp(name, "web", 3) != 0) return -1;
    size_t n = max < 3 ? max : 3;
    memcpy(out, four, n * sizeof(*out));
    return (int)n;
}

static void on_start(weft_host_t *h, void *arg)
{
    pthread_mutex_lock(&mu);
    started = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
}

static void *run(void *arg)
{
    run_rc = weft_host_run(host);
    pthread_mutex_lock(&mu);
    ran = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void recv_exactly(int fd, uint8_t *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, b + got, n - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

/* Reads one framed TCP answer into ab; returns its length. */
static size_t recv_framed(int fd)
{
    uint8_t len[2];
    recv_exactly(fd, len, 2);
    size_t n = get16(len);
    recv_exactly(fd, ab, n);
    return n;
}

static void test_serve(void **state)
{
    weft_host_options_t ho;
    weft_host_options_init(&ho);
    ho.name = "dns";
    ho.workers = 2;
    ho.signals = false;
    assert_int_equal(weft_host_new(&ho, &host), 0);
    weft_dns_serve_options_t o;
    weft_dns_serve_options_init(&o);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 8600);
    assert_string_equal(o.cfg.domain, "consul.");
    assert_string_equal(o.cfg.datacenter, "dc1");
    assert_int_equal(o.cfg.ttl, 0);
    assert_int_equal(o.cfg.max_targets, 256);
    assert_int_equal(weft_dns_serve(host, &o, &dns), WEFT_EINVAL); /* no lookup */
    o.port = 0;
    o.lookup = served_lookup;
    o.cfg.ttl = 5;
    o.cfg.domain = "a..b";
    assert_int_equal(weft_dns_serve(host, &o, &dns), WEFT_EINVAL);
    o.cfg.domain = "consul.";
    o.host = "localhost";
    assert_int_equal(weft_dns_serve(host, &o, &dns), WEFT_EINVAL); /* not numeric */
    o.host = "127.0.0.1";
    assert_int_equal(weft_dns_serve(host, &o, &dns), 0);
    weft_host_on_start(host, on_start, NULL);
    pthread_create(&runner, NULL, run, NULL);
    pthread_mutex_lock(&mu);
    while (!started && !ran) pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    assert_true(started);
    uint16_t uport = weft_dns_server_udp_port(dns), tport = weft_dns_server_tcp_port(dns);
    assert_true(uport && tport);

    /* UDP */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(uport)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    size_t qlen = q_build(qb, 0x1234, true, "web.service.consul", T_SRV, 1, -1, 0);
    assert_int_equal(sendto(fd, qb, qlen, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)qlen);
    ssize_t n = recv(fd, ab, sizeof(ab), 0);
    assert_true(n > 0);
    m_parse(ab, (size_t)n);
    hdr_is(true, false, 0, 3, 0, 3);
    for (size_t i = 0; i < M.nrr; i++) assert_int_equal(M.rr[i].ttl, 5);
    qlen = q_build(qb, 0x1234, true, "nosuch.service.consul", T_A, 1, -1, 0);
    assert_int_equal(sendto(fd, qb, qlen, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)qlen);
    n = recv(fd, ab, sizeof(ab), 0);
    m_parse(ab, (size_t)n);
    hdr_is(true, false, 3, 0, 1, 0);
    soa_is(&M.rr[0], 5);
    close(fd);

    /* TCP: three queries, the first two in one write, the third split over two */
    fd = test_dial(tport);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint8_t out[1024];
    size_t o1 = 0;
    unsigned ids[3] = {0x1111, 0x2222, 0x3333};
    unsigned types[3] = {T_A, T_AAAA, T_SRV};
    for (int i = 0; i < 3; i++) {
        qlen = q_build(out + o1 + 2, ids[i], true, "web.service.consul", types[i], 1, -1, 0);
        put16(out + o1, (unsigned)qlen);
        o1 += 2 + qlen;
    }
    size_t cut = o1 - 7;
    assert_int_equal(send(fd, out, cut, MSG_NOSIGNAL), (ssize_t)cut);
    for (int i = 0; i < 2; i++) {
        size_t len = recv_framed(fd);
        m_parse(ab, len);
        assert_int_equal(M.id, ids[i]);
        assert_int_equal(M.f3, 0);
        assert_int_equal(M.an, i == 0 ? 2 : 1);
    }
    assert_int_equal(send(fd, out + cut, o1 - cut, MSG_NOSIGNAL), (ssize_t)(o1 - cut));
    size_t len = recv_framed(fd);
    m_parse(ab, len);
    assert_int_equal(M.id, 0x3333);
    assert_int_equal(M.an, 3);
    assert_int_equal(M.ar, 3);
    /* a zero length closes the connection */
    assert_int_equal(send(fd, "\0\0", 2, MSG_NOSIGNAL), 2);
    assert_true(recv(fd, ab, 1, 0) <= 0);
    close(fd);

    weft_host_stop(host);
    pthread_join(runner, NULL);
    assert_int_equal(run_rc, 0);
    weft_host_free(host);
    weft_dns_server_free(dns);
    assert_int_equal(atomic_load(&served_calls), 5);
    assert_int_equal(atomic_load(&served_outside_section), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_a, reset),
        cmocka_unit_test_setup(test_preparsed, reset),
        cmocka_unit_test_setup(test_aaaa, reset),
        cmocka_unit_test_setup(test_any, reset),
        cmocka_unit_test_setup(test_duplicates, reset),
        cmocka_unit_test_setup(test_srv_additional, reset),
        cmocka_unit_test_setup(test_tag, reset),
        cmocka_unit_test_setup(test_dc, reset),
        cmocka_unit_test_setup(test_rfc2782, reset),
        cmocka_unit_test_setup(test_rfc2782_tag_dc, reset),
        cmocka_unit_test_setup(test_node, reset),
        cmocka_unit_test_setup(test_nxdomain_soa, reset),
        cmocka_unit_test_setup(test_nodata, reset),
        cmocka_unit_test_setup(test_apex, reset),
        cmocka_unit_test_setup(test_refused, reset),
        cmocka_unit_test_setup(test_notimp, reset),
        cmocka_unit_test_setup(test_formerr, reset),
        cmocka_unit_test_setup(test_compression, reset),
        cmocka_unit_test_setup(test_truncation_udp, reset),
        cmocka_unit_test_setup(test_edns, reset),
        cmocka_unit_test_setup(test_tcp_complete, reset),
        cmocka_unit_test_setup(test_tcp_far_targets, reset),
        cmocka_unit_test_setup(test_shuffle, reset),
        cmocka_unit_test_setup(test_ttl, reset),
        cmocka_unit_test_setup(test_case_and_domain, reset),
        cmocka_unit_test_setup(test_ignored, reset),
        cmocka_unit_test_setup(test_config_check, reset),
        cmocka_unit_test_setup(test_serve, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
