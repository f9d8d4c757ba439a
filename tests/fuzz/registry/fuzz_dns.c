/*
 * fuzz_dns.c - any bytes as a DNS query for weft_dns_answer (src/registry/dns.h).
 *
 * Input: two control bytes, eight bytes of rnd, then the query. Control byte 0: bit 0 TCP;
 * bits 1-2 the output's size (512, 1000, 4096, 65535; TCP always 65535); bit 3 the domain
 * ("consul." or "Weft.Example", datacenter "dc1" or "eu-west"); bit 4 max_targets (0, the
 * default, or 512). Control byte 1: what the fake lookup answers (-1, or a count of
 * targets from a fixed table of 600 that mixes IPv4, IPv6 and bad addresses, node names of
 * 0 to 65 bytes or NULL, and instances that share a node, or a node and an address).
 *
 * Properties: no crash or sanitizer report; the lookup is called with what dns.h promises
 * (kind 's' or 'n', a name of 1..63 bytes, a tag and a datacenter NULL with length 0 or
 * 1..63 bytes, max <= 512); the answer is 0 bytes exactly when the query is under 12 bytes
 * or a response, else at least 12 and at most the output's size, at most 4096 over UDP, and
 * at most 512 over UDP unless it carries an OPT record; it parses back whole (every name in
 * bounds, compression pointers going backwards, the section counts matching the records, no
 * byte left over) with the query's ID, QR set and the query's opcode; an error that is not
 * the name's (FORMERR, NOTIMP, SERVFAIL) is the header alone; and a second call with the
 * same input writes the same bytes (the function is pure).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/dns.h"

#define NT 600

static weft_dns_target_t targets[NT];
static char names[NT][80], addrs[NT][48];
static bool ready;

static void setup(void)
{
    for (unsigned i = 0; i < NT; i++) {
        unsigned nl = (i * 7) % 66; /* 0..65 bytes */
        memset(names[i], 'a' + (char)(i % 26), nl);
        names[i][nl] = 0;
        switch (i % 5) {
        case 0:
        case 1:
            snprintf(addrs[i], sizeof(addrs[i]), "10.%u.%u.%u", i % 3, i / 256, i % 256);
            break;
        case 2:
            snprintf(addrs[i], sizeof(addrs[i]), "fd00::%x", i % 7);
            break;
        case 3:
            snprintf(addrs[i], sizeof(addrs[i]), "::ffff:192.0.2.%u", i % 9);
            break;
        default:
            snprintf(addrs[i], sizeof(addrs[i]), i % 10 ? "bogus" : "10.0.0.256");
            break;
        }
        targets[i].node = i % 97 == 13 ? NULL : names[i];
        targets[i].address = i % 89 == 5 ? NULL : addrs[i];
        if (i % 11 == 10) targets[i] = targets[i - 1];           /* a second instance, same node */
        if (i % 23 == 22) targets[i].node = targets[i - 2].node; /* same node, other address */
        targets[i].port = (uint16_t)(i * 131);
    }
    ready = true;
}

static bool label_ok(const char *s, size_t n, bool may_be_null)
{
    if (!s) return may_be_null && n == 0;
    return n >= 1 && n <= 63;
}

static int lookup(void *arg, char kind, const char *name, size_t name_len, const char *tag,
                  size_t tag_len, const char *dc, size_t dc_len, weft_dns_target_t *out, size_t max)
{
    int want = *(const int *)arg;
    if ((kind != 's' && kind != 'n') || !label_ok(name, name_len, false) ||
        !label_ok(tag, tag_len, true) || !label_ok(dc, dc_len, true) || max == 0 || max > 512)
        abort();
    if (kind == 'n' && tag) abort();
    if (want < 0) return -1;
    size_t n = (size_t)want < max ? (size_t)want : max;
    memcpy(out, targets, n * sizeof(*out));
    return (int)n;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)(p[0] << 8 | p[1]);
}

/* Skips the name at pos of m[0..len): 0 and *end, or -1. */
static int skip_name(const uint8_t *m, size_t len, size_t pos, size_t *end)
{
    size_t total = 0;
    bool jumped = false;
    for (unsigned hops = 0; hops < 256;) {
        if (pos >= len) return -1;
        uint8_t c = m[pos];
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len) return -1;
            size_t to = (size_t)(c & 0x3f) << 8 | m[pos + 1];
            if (to >= pos) return -1;
            if (!jumped) *end = pos + 2;
            jumped = true;
            pos = to;
            hops++;
            continue;
        }
        if (c > 63) return -1;
        total += 1 + (size_t)c;
        if (total > 255) return -1;
        if (c == 0) {
            if (!jumped) *end = pos + 1;
            return 0;
        }
        pos += 1 + (size_t)c;
    }
    return -1;
}

/* Parses the answer whole; returns whether it holds an OPT record. Aborts when it does not
 * parse. */
static bool check_parse(const uint8_t *m, size_t len)
{
    size_t pos = 12;
    for (unsigned i = 0; i < get16(m + 4); i++) {
        if (skip_name(m, len, pos, &pos) != 0 || len - pos < 4) abort();
        pos += 4;
    }
    unsigned rrs = get16(m + 6) + get16(m + 8), all = rrs + get16(m + 10);
    bool opt = false;
    for (unsigned i = 0; i < all; i++) {
        size_t start = pos;
        if (skip_name(m, len, pos, &pos) != 0 || len - pos < 10) abort();
        unsigned type = get16(m + pos), rdlen = get16(m + pos + 8);
        if (rdlen > len - pos - 10) abort();
        if (type == 41) {
            if (i < rrs || opt || m[start] != 0 || rdlen != 0) abort();
            opt = true;
        }
        pos += 10 + rdlen;
    }
    if (pos != len) abort();
    return opt;
}

static uint8_t out[65535], again[65535];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) setup();
    if (size < 10) return 0;
    static const size_t caps[] = {512, 1000, 4096, 65535};
    bool tcp = data[0] & 1;
    size_t cap = tcp ? 65535 : caps[(data[0] >> 1) & 3];
    weft_dns_config_t cfg = {.domain = "consul.", .datacenter = "dc1", .ttl = data[1]};
    if (data[0] & 8) {
        cfg.domain = "Weft.Example";
        cfg.datacenter = "eu-west";
    }
    cfg.max_targets = data[0] & 16 ? 512 : 0;
    static const int counts[] = {-1, 0, 1, 2, 3, 5, 8, 13, 29, 30, 60, 100, 253, 300, 512, 600};
    int want = counts[data[1] & 15];
    uint64_t rnd = 0;
    for (int i = 0; i < 8; i++) rnd = rnd << 8 | data[2 + i];
    const uint8_t *q = data + 10;
    size_t qlen = size - 10;

    size_t n = weft_dns_answer(&cfg, q, qlen, out, cap, tcp, rnd, lookup, &want);
    bool silent = qlen < 12 || (q[2] & 0x80);
    if (silent) {
        if (n != 0) abort();
        return 0;
    }
    if (n < 12 || n > cap || (!tcp && n > 4096)) abort();
    if (get16(out) != get16(q) || !(out[2] & 0x80) || (out[2] & 0x78) != (q[2] & 0x78)) abort();
    unsigned rcode = out[3] & 0x0f;
    if ((rcode == 1 || rcode == 2 || rcode == 4) && n != 12) abort();
    if (((q[2] >> 3) & 0x0f) != 0 && rcode != 4) abort();
    bool opt = check_parse(out, n);
    if (!tcp && n > 512 && !opt) abort();
    if (weft_dns_answer(&cfg, q, qlen, again, cap, tcp, rnd, lookup, &want) != n ||
        memcmp(out, again, n) != 0)
        abort();
    return 0;
}
