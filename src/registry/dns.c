/*
 * dns.c - weft_dns_answer: one DNS query in, one answer out (see dns.h for the names served).
 *
 * Purpose. The registry answers Consul's DNS interface. This file is the whole protocol: the
 * parsing of a query (RFC 1035 4.1, with EDNS0's OPT record, RFC 6891) and the building of
 * its answer (A, RFC 1035 3.4.1; AAAA, RFC 3596; SRV, RFC 2782; SOA for negative answers,
 * RFC 2308). It is a pure function: it reads the query, calls the caller's lookup, writes
 * into the caller's buffer, and allocates nothing, keeps nothing and does no I/O, so any
 * thread may call it and the fuzzer drives it directly. dns_serve.c puts it on sockets.
 *
 * Design.
 * - Parsing. The header must say QUERY (else NOTIMP, header only) and hold exactly one
 *   question (else FORMERR, header only). Every record after the question (answer,
 *   authority and additional sections, which a query normally leaves empty) is walked, so
 *   that an OPT record in the additional section is found wherever it is; a record running
 *   past the end, a second OPT, or an OPT whose owner is not the root is FORMERR (RFC 6891
 *   6.1.1). Bytes after the last record are ignored.
 * - Names. read_name decodes a name into its uncompressed wire form (dname_t) with the
 *   offset of every label. Compression pointers are followed only backwards: each jump
 *   must land before the place the previous jump landed (or before the name's start), so
 *   the positions visited strictly decrease and no loop is possible; jumps are also capped
 *   (MAX_JUMPS) and the decoded name at 255 bytes (RFC 1035 3.1), and label types 01 and
 *   10 (RFC 6891 5's extended labels, never used) are FORMERR.
 * - Matching. Names compare ASCII case-insensitively (RFC 4343); the question is echoed
 *   with its case as received. The domain's labels are matched at the end of the question's
 *   name; what comes before is one of dns.h's forms, or NXDOMAIN. The domain's apex answers
 *   its SOA (qtype SOA or ANY); other types there get NODATA.
 * - Building. The answer is the header, the question, the records, and an OPT record when
 *   the query had one (RFC 6891 7: the OPT is never dropped by truncation, its 11 bytes are
 *   reserved first). Owner names are compression pointers: to the question's name (offset
 *   12) for answers, to the domain's labels inside it for the SOA and its names, to the
 *   SRV's target name for the target's address in the additional section. An SRV's target
 *   itself is written uncompressed, as RFC 2782 requires. A pointer can only reach offsets
 *   below 0x4000: an additional record whose SRV target lies further (TCP answers only) has
 *   its owner written out (node, "node", datacenter, then a pointer to the domain).
 * - Negative answers. NXDOMAIN (no such service or node, or a name of no known form) and
 *   NODATA (a name that exists with no record of the type asked) carry the domain's SOA in
 *   the authority section, so a resolver may cache them for the SOA's minimum (RFC 2308 5),
 *   which is the configured TTL.
 * - Order and truncation. The targets are shuffled (Fisher-Yates, drawing from splitmix64
 *   seeded with rnd) and then written in that order while they fit; a target is a unit: an
 *   A/AAAA record, or an SRV record with its target's address in the additional section.
 *   The first unit that does not fit ends the answer and sets TC. The limit is 512 bytes
 *   over UDP, or the query's EDNS payload size clamped to 512..4096; over TCP it is cap.
 *   Duplicate records are not written twice (RFC 2181 5): an address already answered, an
 *   additional record for a node and address already there.
 * - Flags. AA on every answer for a name under the domain (and BADVERS); RD copied; RA,
 *   AD, CD and Z clear. REFUSED (a name outside the domain, a class other than IN or ANY,
 *   a zone transfer), FORMERR and NOTIMP are not authoritative: AA clear.
 *
 * Invariants. Nothing is written past out[cap): every record's size is known and checked
 * against the limit before it is written (w_* also refuse to overrun, and an overrun would
 * be a bug: asserted, then answered SERVFAIL). The returned length is 0 or at least 12,
 * and the answer's counts match the records written.
 *
 * Threads: any; no state.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/assert.h"
#include "registry/dns.h"

/* Record types and classes (RFC 1035 3.2.2, 3.2.4; RFC 3596; RFC 2782; RFC 6891; RFC 1995) */
#define T_A    1
#define T_SOA  6
#define T_AAAA 28
#define T_SRV  33
#define T_OPT  41
#define T_IXFR 251
#define T_AXFR 252
#define T_ANY  255
#define C_IN   1
#define C_ANY  255

/* Response codes (RFC 1035 4.1.1; BADVERS is RFC 6891's extended code) */
#define RC_NOERROR  0
#define RC_FORMERR  1
#define RC_SERVFAIL 2
#define RC_NXDOMAIN 3
#define RC_NOTIMP   4
#define RC_REFUSED  5
#define RC_BADVERS  16

#define HDR_LEN     12
#define DNAME_MAX   255  /* a name's wire length at most, the root's zero included */
#define LABEL_MAX   63   /* a label's length at most */
#define MAX_JUMPS   127  /* compression pointers followed in one name at most */
#define UDP_MIN     512  /* a UDP answer may always be this long (RFC 1035 4.2.1) */
#define EDNS_MAX    4096 /* the largest EDNS payload honoured, and the one advertised */
#define OPT_LEN     11   /* an OPT record without options */
#define SOA_LEN     50   /* the SOA record as put_soa writes it */
#define PTR_MAX     0x3fff
#define TTL_MAX     0x7fffffffu /* RFC 2181 8 */
#define TARGETS_DEF 256
#define TARGETS_MAX 512

/* SOA timers (RFC 1035 3.3.13): only minimum matters to a resolver (negative caching). */
#define SOA_SERIAL  1
#define SOA_REFRESH 3600
#define SOA_RETRY   600
#define SOA_EXPIRE  86400

/* A name in uncompressed wire form, with where each label starts. */
typedef struct dname_s {
    uint8_t wire[DNAME_MAX];
    size_t len;                 /* bytes in wire, the root's zero included */
    uint8_t off[DNAME_MAX / 2]; /* offset in wire of each label's length byte */
    unsigned n;                 /* labels, the root not counted */
} dname_t;

/* What the query says, once parsed. */
typedef struct query_s {
    dname_t qn;
    uint16_t qtype, qclass;
    bool edns;
    uint16_t payload;     /* the OPT's UDP payload size, as sent */
    uint8_t edns_version; /* the OPT's VERSION */
} query_t;

/* A target the answer may use: what lookup gave, with its address parsed. */
typedef struct ent_s {
    const char *node;
    uint8_t node_len; /* 1..63; 0: the node's name cannot be a label (no SRV for it) */
    uint8_t fam;      /* 4 or 6 */
    bool used;        /* written (or, for SRV, chosen) */
    bool add;         /* SRV: its address goes in the additional section */
    uint16_t port;
    uint32_t name_at; /* SRV: offset of its target's name in the answer */
    uint64_t key;     /* fam and the address folded into 64 bits: equal addresses have equal
                         keys, so the duplicate checks compare one word per pair */
    uint8_t addr[16];
} ent_t;

/* The answer being written. */
typedef struct resp_s {
    uint8_t *p;
    size_t len, cap; /* bytes written; out's size */
    size_t limit;    /* the most the answer may hold (<= cap) */
    uint16_t an, ns, ar;
    bool tc, over;
} resp_t;

static inline uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint8_t fold(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static inline void w_bytes(resp_t *r, const void *b, size_t n)
{
    if (r->over || n > r->cap - r->len) {
        r->over = true;
        return;
    }
    memcpy(r->p + r->len, b, n);
    r->len += n;
}

static void w16(resp_t *r, unsigned v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    w_bytes(r, b, 2);
}

static void w32(resp_t *r, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    w_bytes(r, b, 4);
}

/* A compression pointer to offset at (< 0x4000). */
static void w_ptr(resp_t *r, size_t at)
{
    WEFT_ASSERT(at <= PTR_MAX);
    w16(r, 0xc000u | (unsigned)at);
}

static void w_label(resp_t *r, const void *s, size_t n)
{
    uint8_t l = (uint8_t)n;
    w_bytes(r, &l, 1);
    w_bytes(r, s, n);
}

/* Type, class IN, TTL and RDLENGTH of a record whose owner was just written. */
static void w_rr_fixed(resp_t *r, unsigned type, uint32_t ttl, size_t rdlen)
{
    w16(r, type);
    w16(r, C_IN);
    w32(r, ttl);
    w16(r, (unsigned)rdlen);
}

/*
 * Decodes the name at m[pos] (m[0..mlen) is the whole message, for pointers) into *nm and
 * sets *end to the offset just after the name as it appears at pos. Returns 0, or -1 for a
 * name that runs past the end, is longer than 255 bytes, uses a label type other than 00 or
 * 11, or a pointer that does not go strictly back (see the essay).
 */
static int read_name(const uint8_t *m, size_t mlen, size_t pos, dname_t *nm, size_t *end)
{
    size_t floor = pos; /* the next jump must land below this */
    unsigned jumps = 0;
    nm->len = 0;
    nm->n = 0;
    for (;;) {
        if (pos >= mlen) return -1;
        uint8_t c = m[pos];
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= mlen) return -1;
            size_t to = ((size_t)(c & 0x3f) << 8) | m[pos + 1];
            if (jumps == 0) *end = pos + 2;
            if (to >= floor || ++jumps > MAX_JUMPS) return -1;
            floor = to;
            pos = to;
            continue;
        }
        if (c & 0xc0) return -1;
        if (nm->len + 1 + c > DNAME_MAX) return -1;
        if (c == 0) {
            nm->wire[nm->len++] = 0;
            if (jumps == 0) *end = pos + 1;
            return 0;
        }
        if (c > mlen - pos - 1) return -1;
        nm->off[nm->n++] = (uint8_t)nm->len;
        memcpy(nm->wire + nm->len, m + pos, 1 + (size_t)c);
        nm->len += 1 + (size_t)c;
        pos += 1 + (size_t)c;
    }
}

/* Encodes a dotted name ("consul." or "consul"; no escapes) into *nm. Returns 0, or -1 for
 * NULL, an empty label, a label over 63 bytes or a name over 255. The root alone is -1. */
static int encode_name(const char *s, dname_t *nm)
{
    nm->len = 0;
    nm->n = 0;
    if (!s || !*s) return -1;
    while (*s) {
        size_t n = strcspn(s, ".");
        if (n == 0 || n > LABEL_MAX || nm->len + 1 + n + 1 > DNAME_MAX) return -1;
        nm->off[nm->n++] = (uint8_t)nm->len;
        nm->wire[nm->len++] = (uint8_t)n;
        memcpy(nm->wire + nm->len, s, n);
        nm->len += n;
        s += n;
        if (*s == '.') s++;
    }
    nm->wire[nm->len++] = 0;
    return 0;
}

static inline const uint8_t *label(const dname_t *nm, unsigned i, size_t *n)
{
    *n = nm->wire[nm->off[i]];
    return nm->wire + nm->off[i] + 1;
}

/* Whether label i of nm is word (lower case), ignoring case. */
static bool label_is(const dname_t *nm, unsigned i, const char *word)
{
    size_t n;
    const uint8_t *l = label(nm, i, &n);
    if (n != strlen(word)) return false;
    for (size_t k = 0; k < n; k++)
        if (fold(l[k]) != (uint8_t)word[k]) return false;
    return true;
}

/* Whether nm ends with the labels of dom, ignoring case. Length bytes are at most 63, below
 * 'A', so folding the wire form bytewise folds only the labels' letters. */
static bool in_domain(const dname_t *nm, const dname_t *dom)
{
    if (nm->n < dom->n) return false;
    size_t at = nm->off[nm->n - dom->n];
    if (nm->len - at != dom->len) return false;
    for (size_t k = 0; k < dom->len; k++)
        if (fold(nm->wire[at + k]) != fold(dom->wire[k])) return false;
    return true;
}

/*
 * Parses everything after the header: the question, then the records of the other sections
 * (skipped, except an OPT in the additional section). Returns 0 with *pq, or -1: FORMERR.
 */
static int parse_query(const uint8_t *q, size_t qlen, query_t *pq)
{
    if (get16(q + 4) != 1) return -1;
    size_t pos;
    if (read_name(q, qlen, HDR_LEN, &pq->qn, &pos) != 0 || qlen - pos < 4) return -1;
    pq->qtype = get16(q + pos);
    pq->qclass = get16(q + pos + 2);
    pos += 4;
    pq->edns = false;
    unsigned before_ar = (unsigned)get16(q + 6) + get16(q + 8), all = before_ar + get16(q + 10);
    dname_t owner;
    for (unsigned i = 0; i < all; i++) { /* each record takes at least 11 bytes or fails */
        if (read_name(q, qlen, pos, &owner, &pos) != 0 || qlen - pos < 10) return -1;
        uint16_t type = get16(q + pos), rdlen = get16(q + pos + 8);
        if (rdlen > qlen - pos - 10) return -1;
        if (i >= before_ar && type == T_OPT) {
            if (pq->edns || owner.n != 0) return -1;
            pq->edns = true;
            pq->payload = get16(q + pos + 2);
            pq->edns_version = q[pos + 5];
        }
        pos += 10 + (size_t)rdlen;
    }
    return 0;
}

/* A header-only answer with rcode (FORMERR, NOTIMP, SERVFAIL): not authoritative. */
static size_t header_only(const uint8_t *q, uint8_t *out, unsigned rcode, bool tc)
{
    memset(out, 0, HDR_LEN);
    out[0] = q[0];
    out[1] = q[1];
    out[2] = (uint8_t)(0x80 | (q[2] & 0x78) | (tc ? 0x02 : 0) | (q[2] & 0x01));
    out[3] = (uint8_t)rcode;
    return HDR_LEN;
}

/* splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, one add and a mix per draw. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void shuffle(ent_t *e, size_t n, uint64_t rnd)
{
    uint64_t s = rnd;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(next_rand(&s) % i);
        ent_t t = e[i - 1];
        e[i - 1] = e[j];
        e[j] = t;
    }
}

/* The answer's addresses for qtype (A, AAAA, or both for ANY), one unit each. */
static bool fam_wanted(uint8_t fam, uint16_t qtype)
{
    return qtype == T_ANY || (fam == 4 && qtype == T_A) || (fam == 6 && qtype == T_AAAA);
}

/* The duplicate checks are quadratic in the targets: keys first, one word per pair; the
 * sizes known at compile time let the compiler compare the rest in registers. */
static inline bool same_addr(const ent_t *a, const ent_t *b)
{
    if (a->key != b->key || a->fam != b->fam) return false;
    return a->fam == 4 ? memcmp(a->addr, b->addr, 4) == 0 : memcmp(a->addr, b->addr, 16) == 0;
}

static uint64_t addr_key(const ent_t *t)
{
    if (t->fam == 4) {
        uint32_t v4;
        memcpy(&v4, t->addr, 4);
        return ((uint64_t)4 << 32) | v4;
    }
    uint64_t h[2];
    memcpy(h, t->addr, 16);
    return (h[0] ^ (h[1] * 0x9e3779b97f4a7c15ull)) + 6;
}

static bool same_node(const ent_t *a, const ent_t *b)
{
    if (a->node_len != b->node_len) return false;
    for (size_t k = 0; k < a->node_len; k++)
        if (fold((uint8_t)a->node[k]) != fold((uint8_t)b->node[k])) return false;
    return true;
}

/* Keeps the first of every address in e[0..n) (RFC 2181 5: no record twice in an A/AAAA
 * answer), in order, and returns how many are left: one pass over a small open-addressing
 * table of their keys rather than a comparison of every pair. */
static size_t unique_addresses(ent_t *e, size_t n)
{
    uint16_t slot[2 * TARGETS_MAX]; /* 1 + an index into the kept ones; 0: empty */
    unsigned bits = 5;
    while ((1u << bits) < 2 * n) bits++;
    size_t mask = ((size_t)1 << bits) - 1, m = 0;
    memset(slot, 0, (mask + 1) * sizeof(slot[0]));
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)((e[i].key * 0x9e3779b97f4a7c15ull) >> (64 - bits));
        while (slot[h] && !same_addr(&e[slot[h] - 1], &e[i])) h = (h + 1) & mask;
        if (slot[h]) continue; /* seen */
        e[m] = e[i];
        slot[h] = (uint16_t)++m;
    }
    return m;
}

/* A and AAAA records of e[0..n) (no address twice: unique_addresses) in order, owned by the
 * question's name, while they fit in the limit less reserve; the first that does not sets
 * TC. */
static void put_addresses(resp_t *r, ent_t *e, size_t n, uint16_t qtype, uint32_t ttl,
                          size_t reserve)
{
    for (size_t i = 0; i < n; i++) {
        if (!fam_wanted(e[i].fam, qtype)) continue;
        size_t alen = e[i].fam == 4 ? 4 : 16;
        if (r->len + 12 + alen + reserve > r->limit) {
            r->tc = true;
            return;
        }
        /* the whole record at once: a pointer to the question's name, type, class, TTL,
         * RDLENGTH, the address */
        unsigned type = e[i].fam == 4 ? T_A : T_AAAA;
        uint8_t rec[12 + 16] = {0xc0,
                                HDR_LEN,
                                (uint8_t)(type >> 8),
                                (uint8_t)type,
                                0,
                                C_IN,
                                (uint8_t)(ttl >> 24),
                                (uint8_t)(ttl >> 16),
                                (uint8_t)(ttl >> 8),
                                (uint8_t)ttl,
                                0,
                                (uint8_t)alen};
        memcpy(rec + 12, e[i].addr, 16);
        w_bytes(r, rec, 12 + alen);
        e[i].used = true;
        r->an++;
    }
}

/* The SRV target's name: NODE.node.DC.<domain>, uncompressed. */
static void w_target(resp_t *r, const ent_t *e, const char *dc, size_t dc_len, const dname_t *dom)
{
    w_label(r, e->node, e->node_len);
    w_label(r, "node", 4);
    w_label(r, dc, dc_len);
    w_bytes(r, dom->wire, dom->len);
}

/*
 * SRV records of e[0..n) in order, each with its target's address in the additional
 * section (once per node and address), while a whole unit fits in the limit less reserve;
 * the first that does not sets TC. dom_at: the domain's offset in the answer.
 */
static void put_srv(resp_t *r, ent_t *e, size_t n, uint32_t ttl, size_t reserve, const char *dc,
                    size_t dc_len, const dname_t *dom, size_t dom_at)
{
    size_t ans = 0, add = 0;
    for (size_t i = 0; i < n; i++) { /* first pass: which units fit */
        if (e[i].node_len == 0) continue;
        size_t tlen = 1 + e[i].node_len + 5 + 1 + dc_len + dom->len;
        if (tlen > DNAME_MAX) continue;
        size_t srv = 2 + 10 + 6 + tlen, name_at = r->len + ans + 2 + 10 + 6, a = 0;
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = e[j].used && same_addr(&e[j], &e[i]) && same_node(&e[j], &e[i]);
        if (!dup) {
            size_t owner = name_at <= PTR_MAX ? 2 : tlen - dom->len + 2;
            a = owner + 10 + (e[i].fam == 4 ? 4 : 16);
        }
        if (r->len + ans + srv + add + a + reserve > r->limit) {
            r->tc = true;
            break;
        }
        e[i].used = true;
        e[i].add = !dup;
        e[i].name_at = (uint32_t)name_at;
        ans += srv;
        add += a;
    }
    for (size_t i = 0; i < n; i++) {
        if (!e[i].used) continue;
        w_ptr(r, HDR_LEN);
        size_t tlen = 1 + e[i].node_len + 5 + 1 + dc_len + dom->len;
        w_rr_fixed(r, T_SRV, ttl, 6 + tlen);
        w16(r, 1); /* priority */
        w16(r, 1); /* weight */
        w16(r, e[i].port);
        WEFT_ASSERT(r->over || r->len == e[i].name_at);
        w_target(r, &e[i], dc, dc_len, dom);
        r->an++;
    }
    for (size_t i = 0; i < n; i++) {
        if (!e[i].used || !e[i].add) continue;
        if (e[i].name_at <= PTR_MAX) {
            w_ptr(r, e[i].name_at);
        } else {
            w_label(r, e[i].node, e[i].node_len);
            w_label(r, "node", 4);
            w_label(r, dc, dc_len);
            w_ptr(r, dom_at);
        }
        size_t alen = e[i].fam == 4 ? 4 : 16;
        w_rr_fixed(r, e[i].fam == 4 ? T_A : T_AAAA, ttl, alen);
        w_bytes(r, e[i].addr, alen);
        r->ar++;
    }
}

/* The domain's SOA record (SOA_LEN bytes), owned by the domain at dom_at. */
static void put_soa(resp_t *r, size_t dom_at, uint32_t ttl)
{
    size_t start = r->len;
    w_ptr(r, dom_at);
    w_rr_fixed(r, T_SOA, ttl, SOA_LEN - 12);
    w_label(r, "ns", 2); /* MNAME ns.<domain> */
    w_ptr(r, dom_at);
    w_label(r, "hostmaster", 10); /* RNAME hostmaster.<domain> */
    w_ptr(r, dom_at);
    w32(r, SOA_SERIAL);
    w32(r, SOA_REFRESH);
    w32(r, SOA_RETRY);
    w32(r, SOA_EXPIRE);
    w32(r, ttl); /* MINIMUM: how long a negative answer may be cached */
    WEFT_ASSERT(r->over || r->len - start == SOA_LEN);
    (void)start;
}

/* An SOA in the answer (answer) or authority section, if it fits; else TC. */
static void put_soa_in(resp_t *r, bool answer, size_t dom_at, uint32_t ttl, size_t reserve)
{
    if (r->len + SOA_LEN + reserve > r->limit) {
        r->tc = true;
        return;
    }
    put_soa(r, dom_at, ttl);
    if (answer)
        r->an++;
    else
        r->ns++;
}

/* What the name before the domain asks for. */
typedef struct ask_s {
    char kind; /* 's' service, 'n' node, 'a' the domain's apex, 0 no known form */
    const uint8_t *name, *tag, *dc;
    size_t name_len, tag_len, dc_len;
} ask_t;

/* Reads the first nl labels of qn as one of dns.h's forms. */
static void classify(const dname_t *qn, unsigned nl, ask_t *a)
{
    memset(a, 0, sizeof(*a));
    if (nl == 0) {
        a->kind = 'a';
        return;
    }
    unsigned k = nl; /* labels up to "service" or "node" */
    if (k >= 3 && !label_is(qn, k - 1, "service") && !label_is(qn, k - 1, "node") &&
        (label_is(qn, k - 2, "service") || label_is(qn, k - 2, "node"))) {
        a->dc = label(qn, k - 1, &a->dc_len);
        k--;
    }
    size_t l0n, l1n;
    const uint8_t *l0 = label(qn, 0, &l0n);
    if (k == 2 && label_is(qn, 1, "node")) {
        a->kind = 'n';
        a->name = l0;
        a->name_len = l0n;
    } else if (k == 2 && label_is(qn, 1, "service")) {
        a->kind = 's';
        a->name = l0;
        a->name_len = l0n;
    } else if (k == 3 && label_is(qn, 2, "service")) {
        const uint8_t *l1 = label(qn, 1, &l1n);
        a->kind = 's';
        if (l0n > 1 && l0[0] == '_' && l1n > 1 && l1[0] == '_') { /* _NAME._TAG (RFC 2782) */
            a->name = l0 + 1;
            a->name_len = l0n - 1;
            if (!label_is(qn, 1, "_tcp")) {
                a->tag = l1 + 1;
                a->tag_len = l1n - 1;
            }
        } else { /* TAG.NAME */
            a->name = l1;
            a->name_len = l1n;
            a->tag = l0;
            a->tag_len = l0n;
        }
    }
}

size_t weft_dns_answer(const weft_dns_config_t *cfg, const uint8_t *q, size_t qlen, uint8_t *out,
                       size_t cap, bool tcp, uint64_t rnd, weft_dns_lookup_fn lookup, void *arg)
{
    if (!q || qlen < HDR_LEN || !out || cap < HDR_LEN) return 0;
    if (q[2] & 0x80) return 0; /* QR: a response */
    if (((q[2] >> 3) & 0x0f) != 0) return header_only(q, out, RC_NOTIMP, false);
    query_t pq;
    if (parse_query(q, qlen, &pq) != 0) return header_only(q, out, RC_FORMERR, false);
    dname_t dom;
    if (!cfg || !lookup) return header_only(q, out, RC_SERVFAIL, false);
    const char *dc = cfg->datacenter ? cfg->datacenter : "dc1";
    size_t dc_len = strlen(dc);
    if (encode_name(cfg->domain ? cfg->domain : "consul.", &dom) != 0 || dc_len == 0 ||
        dc_len > LABEL_MAX)
        return header_only(q, out, RC_SERVFAIL, false);
    uint32_t ttl = cfg->ttl > TTL_MAX ? TTL_MAX : cfg->ttl;

    resp_t r = {.p = out, .cap = cap};
    if (tcp)
        r.limit = cap < 65535 ? cap : 65535;
    else {
        size_t want = UDP_MIN;
        if (pq.edns && pq.payload > UDP_MIN) want = pq.payload < EDNS_MAX ? pq.payload : EDNS_MAX;
        r.limit = want < cap ? want : cap;
    }
    size_t reserve = pq.edns ? OPT_LEN : 0;
    if (HDR_LEN + pq.qn.len + 4 + reserve > r.limit) /* only when cap breaks the contract */
        return header_only(q, out, RC_NOERROR, true);
    memset(out, 0, HDR_LEN);
    r.len = HDR_LEN;
    w_bytes(&r, pq.qn.wire, pq.qn.len);
    w16(&r, pq.qtype);
    w16(&r, pq.qclass);

    unsigned rcode = RC_NOERROR;
    bool aa = true;
    if (pq.edns && pq.edns_version != 0) {
        rcode = RC_BADVERS; /* RFC 6891 6.1.3: no answer, our version in the OPT */
    } else if ((pq.qclass != C_IN && pq.qclass != C_ANY) || !in_domain(&pq.qn, &dom) ||
               pq.qtype == T_AXFR || pq.qtype == T_IXFR) {
        rcode = RC_REFUSED;
        aa = false;
    } else {
        unsigned nl = pq.qn.n - dom.n;
        size_t dom_at = HDR_LEN + pq.qn.off[nl];
        ask_t a;
        classify(&pq.qn, nl, &a);
        weft_dns_target_t tg[TARGETS_MAX];
        ent_t e[TARGETS_MAX];
        size_t max = cfg->max_targets ? cfg->max_targets : TARGETS_DEF, n = 0;
        if (max > TARGETS_MAX) max = TARGETS_MAX;
        int got = -1;
        const char *last_node = NULL;
        size_t last_len = 0;
        if (a.kind == 's' || a.kind == 'n')
            got = lookup(arg, a.kind, (const char *)a.name, a.name_len, (const char *)a.tag,
                         a.tag_len, (const char *)a.dc, a.dc_len, tg, max);
        for (int i = 0; i < got && (size_t)i < max; i++) {
            ent_t *t = &e[n];
            memset(t, 0, sizeof(*t));
            if (tg[i].fam == 4 && tg[i].bin) {
                memcpy(t->addr, tg[i].bin, 4);
                t->fam = 4;
            } else if (tg[i].fam == 6 && tg[i].bin) {
                memcpy(t->addr, tg[i].bin, 16);
                t->fam = 6;
            } else if (!tg[i].address) {
                continue;
            } else if (inet_pton(AF_INET, tg[i].address, t->addr) == 1)
                t->fam = 4;
            else if (inet_pton(AF_INET6, tg[i].address, t->addr) == 1)
                t->fam = 6;
            else
                continue;
            if (tg[i].node != last_node) { /* every target of this node shares its name */
                last_node = tg[i].node;
                last_len = last_node ? strnlen(last_node, LABEL_MAX + 1) : 0;
            }
            t->node = tg[i].node;
            t->node_len = last_len <= LABEL_MAX ? (uint8_t)last_len : 0;
            t->key = addr_key(t);
            t->port = tg[i].port;
            n++;
        }
        bool addresses = pq.qtype == T_A || pq.qtype == T_AAAA || pq.qtype == T_ANY;
        if (addresses) n = unique_addresses(e, n);
        shuffle(e, n, rnd);
        if (a.kind == 'a') {
            if (pq.qtype == T_SOA || pq.qtype == T_ANY) put_soa_in(&r, true, dom_at, ttl, reserve);
        } else if (got < 0) {
            rcode = RC_NXDOMAIN;
        } else if (addresses) {
            put_addresses(&r, e, n, pq.qtype, ttl, reserve);
        } else if (pq.qtype == T_SRV && a.kind == 's') {
            put_srv(&r, e, n, ttl, reserve, dc, dc_len, &dom, dom_at);
        }
        if (r.an == 0 && !r.tc) /* NXDOMAIN or NODATA: the SOA for negative caching */
            put_soa_in(&r, false, dom_at, ttl, reserve);
    }
    if (pq.edns) { /* RFC 6891 6.1.2: root owner, our payload size, extended rcode, v0 */
        w_bytes(&r, "", 1);
        w16(&r, T_OPT);
        w16(&r, EDNS_MAX);
        w32(&r, (uint32_t)(rcode >> 4) << 24);
        w16(&r, 0);
        r.ar++;
    }
    WEFT_ASSERT(!r.over && r.len <= r.limit);
    if (r.over || r.len > r.limit) return header_only(q, out, RC_SERVFAIL, false);
    out[0] = q[0];
    out[1] = q[1];
    out[2] = (uint8_t)(0x80 | (aa ? 0x04 : 0) | (r.tc ? 0x02 : 0) | (q[2] & 0x01));
    out[3] = (uint8_t)(rcode & 0x0f);
    out[4] = 0;
    out[5] = 1;
    out[6] = (uint8_t)(r.an >> 8);
    out[7] = (uint8_t)r.an;
    out[8] = (uint8_t)(r.ns >> 8);
    out[9] = (uint8_t)r.ns;
    out[10] = (uint8_t)(r.ar >> 8);
    out[11] = (uint8_t)r.ar;
    return r.len;
}

int weft_dns_config_check(const weft_dns_config_t *cfg)
{
    dname_t dom;
    if (!cfg || encode_name(cfg->domain ? cfg->domain : "consul.", &dom) != 0) return WEFT_EINVAL;
    const char *dc = cfg->datacenter ? cfg->datacenter : "dc1";
    size_t n = strlen(dc);
    if (n == 0 || n > LABEL_MAX || memchr(dc, '.', n)) return WEFT_EINVAL;
    if (cfg->ttl > TTL_MAX || cfg->max_targets > TARGETS_MAX) return WEFT_EINVAL;
    return 0;
}
