/*
 * test_propagation.c - traceparent, tracestate and B3 parsing and formatting, and the
 * extract/inject helpers.
 *
 * The W3C cases are those of the w3c/trace-context test suite (test/test.py), which sends
 * headers to a service and checks what it propagates; here each case is checked at the parser:
 * "expects the same trace_id" becomes "parses", "expects a newly generated trace_id" becomes
 * "rejected", "tracestate discarded" becomes "tracestate empty".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "weft/trace.h"

#define TID "12345678901234567890123456789012"
#define SID "1234567890123456"
#define TP  "00-" TID "-" SID "-01"

static int tp(const char *s)
{
    weft_trace_context_t c;
    return weft_traceparent_parse(s, strlen(s), &c);
}

/* ---- traceparent ---- */

static void test_traceparent_suite_valid(void **state)
{
    weft_trace_context_t c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(weft_traceparent_parse(TP, strlen(TP), &c), 0);
    static const uint8_t tid[16] = {0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56,
                                    0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12};
    static const uint8_t sid[8] = {0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56};
    assert_memory_equal(c.trace_id, tid, 16);
    assert_memory_equal(c.span_id, sid, 8);
    assert_int_equal(c.flags, WEFT_TRACE_FLAG_SAMPLED);
    assert_true(c.remote);
    assert_false(c.deferred);
    assert_int_equal(c.tracestate_len, 0);
    assert_true(weft_trace_context_is_valid(&c));
    char out[WEFT_TRACEPARENT_LEN + 1] = {0};
    assert_int_equal(weft_traceparent_format(&c, out), WEFT_TRACEPARENT_LEN);
    assert_string_equal(out, TP);
    /* test_traceparent_ows_handling */
    assert_int_equal(tp(" " TP), 0);
    assert_int_equal(tp("\t" TP), 0);
    assert_int_equal(tp(TP " "), 0);
    assert_int_equal(tp(TP "\t"), 0);
    assert_int_equal(tp("\t " TP " \t"), 0);
    /* test_traceparent_version_0xcc: future versions */
    assert_int_equal(tp("cc-" TID "-" SID "-01"), 0);
    assert_int_equal(tp("cc-" TID "-" SID "-01-what-the-future-will-be-like"), 0);
    assert_int_equal(weft_traceparent_parse("cc-" TID "-" SID "-01-x", 57, &c), 0);
    assert_memory_equal(c.trace_id, tid, 16);
    /* flags: only the sampled bit is kept, whatever else is set */
    assert_int_equal(weft_traceparent_parse("00-" TID "-" SID "-00", 55, &c), 0);
    assert_int_equal(c.flags, 0);
    assert_int_equal(weft_traceparent_parse("00-" TID "-" SID "-ff", 55, &c), 0);
    assert_int_equal(c.flags, WEFT_TRACE_FLAG_SAMPLED);
    assert_int_equal(weft_traceparent_parse("00-" TID "-" SID "-02", 55, &c), 0);
    assert_int_equal(c.flags, 0);
    assert_int_equal(weft_traceparent_format(&c, out), WEFT_TRACEPARENT_LEN);
    assert_string_equal(out, "00-" TID "-" SID "-00");
}

/* weft_trace_hex: every byte value, at every offset of its 4-byte groups and tails. */
static void test_hex_every_byte(void **state)
{
    (void)state;
    uint8_t b[256 + 3];
    char out[2 * sizeof(b)], want[2 * sizeof(b) + 1];
    for (size_t i = 0; i < sizeof(b); i++) b[i] = (uint8_t)(i * 7 + 3);
    for (size_t off = 0; off < 4; off++)
        for (size_t n = 0; n + off <= sizeof(b); n += 1 + n / 8) {
            memset(out, 'X', sizeof(out));
            weft_trace_hex(b + off, n, out);
            for (size_t i = 0; i < n; i++) snprintf(want + 2 * i, 3, "%02x", b[off + i]);
            assert_memory_equal(out, want, 2 * n);
            if (2 * n < sizeof(out)) assert_int_equal(out[2 * n], 'X');
        }
}

static void test_traceparent_suite_invalid(void **state)
{
    static const char *const bad[] = {
        /* test_traceparent_version_0x00: extra trailing characters */
        "00-" TID "-" SID "-01.",
        "00-" TID "-" SID "-01-what-the-future-will-be-like",
        /* test_traceparent_version_0xcc: the 56th character must be '-' */
        "cc-" TID "-" SID "-01.what-the-future-will-be-like",
        /* test_traceparent_version_0xff */
        "ff-" TID "-" SID "-01",
        /* test_traceparent_version_illegal_characters */
        ".0-" TID "-" SID "-01",
        "0.-" TID "-" SID "-01",
        /* test_traceparent_version_too_long / too_short */
        "000-" TID "-" SID "-01",
        "0000-" TID "-" SID "-01",
        "0-" TID "-" SID "-01",
        /* test_traceparent_trace_id_all_zero */
        "00-00000000000000000000000000000000-" SID "-01",
        /* test_traceparent_trace_id_illegal_characters */
        "00-.2345678901234567890123456789012-" SID "-01",
        "00-1234567890123456789012345678901.-" SID "-01",
        /* test_traceparent_trace_id_too_long / too_short */
        "00-123456789012345678901234567890123-" SID "-01",
        "00-1234567890123456789012345678901-" SID "-01",
        /* test_traceparent_parent_id_all_zero */
        "00-" TID "-0000000000000000-01",
        /* test_traceparent_parent_id_illegal_characters */
        "00-" TID "-.234567890123456-01",
        "00-" TID "-123456789012345.-01",
        /* test_traceparent_parent_id_too_long / too_short */
        "00-" TID "-12345678901234567-01",
        "00-" TID "-123456789012345-01",
        /* test_traceparent_trace_flags_illegal_characters */
        "00-" TID "-" SID "-.0",
        "00-" TID "-" SID "-0.",
        /* test_traceparent_trace_flags_too_long / too_short */
        "00-" TID "-" SID "-001",
        "00-" TID "-" SID "-1",
        /* uppercase hex is not lowercase hex */
        "00-0AF7651916CD43DD8448EB211C80319C-" SID "-01",
        "00-" TID "-B7AD6B7169203331-01",
        "0A-" TID "-" SID "-01",
        "00-" TID "-" SID "-0A",
        /* separators */
        "00_" TID "-" SID "-01",
        "00-" TID "_" SID "-01",
        "00-" TID "-" SID "_01",
        /* a duplicated header joined with ',' (RFC 9110), as a getter must deliver it */
        "00-" TID "-" SID "-01,00-12345678901234567890123456789011-" SID "-01",
        "cc-" TID "-" SID "-01,cc-" TID "-" SID "-01",
        "",
        "00",
        "   ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        weft_trace_context_t c, keep;
        memset(&c, 0xa5, sizeof(c));
        keep = c;
        if (weft_traceparent_parse(bad[i], strlen(bad[i]), &c) != WEFT_EPARSE)
            fail_msg("accepted: \"%s\"", bad[i]);
        assert_memory_equal(&c, &keep, sizeof(c)); /* a failed parse changes nothing */
    }
    /* the length is the view's, not the string's: a NUL inside is just a bad character */
    assert_int_equal(weft_traceparent_parse(TP "\0", 56, &(weft_trace_context_t){0}), WEFT_EPARSE);
    /* formatting an invalid context writes nothing */
    weft_trace_context_t z;
    memset(&z, 0, sizeof(z));
    char out[64];
    assert_int_equal(weft_traceparent_format(&z, out), 0);
}

/* ---- tracestate ---- */

static int ts(const char *s, weft_trace_context_t *c)
{
    return weft_tracestate_parse(s, strlen(s), c);
}

static void assert_ts(const weft_trace_context_t *c, const char *want)
{
    assert_int_equal(c->tracestate_len, strlen(want));
    assert_memory_equal(c->tracestate, want, strlen(want));
}

static int lines(weft_trace_context_t *c, int n, ...)
{
    weft_str_t l[8];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        l[i].base = va_arg(ap, const char *);
        l[i].len = strlen(l[i].base);
    }
    va_end(ap);
    return weft_tracestate_parse_lines(l, (size_t)n, c);
}

static void test_tracestate_suite(void **state)
{
    weft_trace_context_t c;
    weft_str_t v;
    memset(&c, 0, sizeof(c));
    /* test_tracestate_included_traceparent_included */
    assert_int_equal(ts("foo=1,bar=2", &c), 0);
    assert_ts(&c, "foo=1,bar=2");
    assert_true(weft_tracestate_get(&c, "bar", &v));
    assert_int_equal(v.len, 1);
    assert_memory_equal(v.base, "2", 1);
    assert_false(weft_tracestate_get(&c, "ba", &v));
    /* test_tracestate_empty_header: empty lines vanish, the rest is kept */
    assert_int_equal(ts("", &c), 0);
    assert_int_equal(c.tracestate_len, 0);
    assert_int_equal(lines(&c, 2, "foo=1", ""), 0);
    assert_ts(&c, "foo=1");
    assert_int_equal(lines(&c, 2, "", "foo=1"), 0);
    assert_ts(&c, "foo=1");
    /* test_tracestate_multiple_headers_different_keys: combined in order */
    assert_int_equal(lines(&c, 3, "foo=1,bar=2", "rojo=1,congo=2", "baz=3"), 0);
    assert_ts(&c, "foo=1,bar=2,rojo=1,congo=2,baz=3");
    /* test_tracestate_duplicated_keys: the whole header is discarded */
    assert_int_equal(ts("foo=1,foo=1", &c), WEFT_EPARSE);
    assert_int_equal(c.tracestate_len, 0);
    assert_int_equal(ts("foo=1,foo=2", &c), WEFT_EPARSE);
    assert_int_equal(lines(&c, 2, "foo=1", "foo=1"), WEFT_EPARSE);
    assert_int_equal(lines(&c, 2, "foo=1", "foo=2"), WEFT_EPARSE);
    assert_int_equal(c.tracestate_len, 0);
    /* test_tracestate_all_allowed_characters */
    char key[128], val[128], member[300];
    size_t k = 0, o = 0;
    for (char ch = 'a'; ch <= 'z'; ch++) key[k++] = ch;
    memcpy(key + k, "0123456789_-*/", 14);
    k += 14;
    key[k] = 0;
    for (int ch = 0x20; ch <= 0x7e; ch++)
        if (ch != ',' && ch != '=') val[o++] = (char)ch;
    val[o] = 0;
    snprintf(member, sizeof(member), "%s=%s", key, val);
    assert_int_equal(ts(member, &c), 0);
    assert_true(weft_tracestate_get(&c, key, &v));
    assert_int_equal(v.len, strlen(val)); /* the leading space belongs to the value */
    assert_memory_equal(v.base, val, v.len);
    snprintf(member, sizeof(member), "%s@a-z0-9_-*/=%s", key, val);
    assert_int_equal(ts(member, &c), 0);
    /* test_tracestate_ows_handling */
    assert_int_equal(ts("foo=1 \t , \t bar=2, \t baz=3", &c), 0);
    assert_ts(&c, "foo=1,bar=2,baz=3");
    assert_int_equal(ts("foo=1\t \t,\t \tbar=2,\t \tbaz=3", &c), 0);
    assert_ts(&c, "foo=1,bar=2,baz=3");
    const char *ows[] = {" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ts(ows[i], &c), 0);
        assert_ts(&c, "foo=1");
    }
    /* test_tracestate_key_illegal_characters */
    assert_int_equal(ts("foo =1", &c), WEFT_EPARSE);
    assert_int_equal(ts("FOO=1", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo.bar=1", &c), WEFT_EPARSE);
    /* test_tracestate_key_illegal_vendor_format */
    assert_int_equal(ts("foo@=1,bar=2", &c), WEFT_EPARSE);
    assert_int_equal(ts("@foo=1,bar=2", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo@@bar=1,bar=2", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo@bar@baz=1,bar=2", &c), WEFT_EPARSE);
    /* test_tracestate_member_count_limit: 32 kept, 33 discard everything */
    assert_int_equal(
        lines(&c, 4,
              "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,"
              "bar09=09,bar10=10",
              "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,"
              "bar19=19,bar20=20",
              "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,"
              "bar29=29,bar30=30",
              "bar31=31,bar32=32"),
        0);
    assert_true(weft_tracestate_get(&c, "bar01", &v));
    assert_true(weft_tracestate_get(&c, "bar32", &v));
    assert_int_equal(
        lines(&c, 4,
              "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,"
              "bar09=09,bar10=10",
              "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,"
              "bar19=19,bar20=20",
              "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,"
              "bar29=29,bar30=30",
              "bar31=31,bar32=32,bar33=33"),
        WEFT_EPARSE);
    assert_false(weft_tracestate_get(&c, "bar01", &v));
    /* test_tracestate_key_length_limit */
    char big[600];
    memset(big, 'z', 256);
    strcpy(big + 256, "=1");
    assert_int_equal(lines(&c, 2, "foo=1", big), 0);
    assert_true(weft_tracestate_get(&c, "foo", &v));
    memset(big, 'z', 257);
    strcpy(big + 257, "=1");
    assert_int_equal(lines(&c, 2, "foo=1", big), WEFT_EPARSE);
    assert_false(weft_tracestate_get(&c, "foo", &v));
    memset(big, 't', 241);
    big[241] = '@';
    memset(big + 242, 'v', 14);
    strcpy(big + 256, "=1");
    assert_int_equal(lines(&c, 2, "foo=1", big), 0);
    memset(big, 't', 242);
    strcpy(big + 242, "@v=1");
    assert_int_equal(lines(&c, 2, "foo=1", big), WEFT_EPARSE);
    snprintf(big, sizeof(big), "t@%s=1", "vvvvvvvvvvvvvvv"); /* 15-byte system id */
    assert_int_equal(lines(&c, 2, "foo=1", big), WEFT_EPARSE);
    /* test_tracestate_value_illegal_characters */
    assert_int_equal(ts("foo=bar=baz", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo=,bar=3", &c), WEFT_EPARSE);
    /* more of the grammar */
    assert_int_equal(ts("1tenant@sys=v", &c), 0);    /* tenant ids may start with a digit */
    assert_int_equal(ts("1foo=1", &c), WEFT_EPARSE); /* simple keys may not */
    assert_int_equal(ts("t@1sys=1", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo=a ", &c), 0); /* trailing OWS of the member, not the value */
    assert_ts(&c, "foo=a");
    assert_int_equal(ts("foo=\x01", &c), WEFT_EPARSE);
    assert_int_equal(ts("foo=\x7f", &c), WEFT_EPARSE);
    memset(big, 'v', 256);
    big[256] = 0;
    char m2[sizeof(big) + 8];
    snprintf(m2, sizeof(m2), "k=%s", big);
    assert_int_equal(ts(m2, &c), 0); /* 256-byte value */
    snprintf(m2, sizeof(m2), "k=%sv", big);
    assert_int_equal(ts(m2, &c), WEFT_EPARSE); /* 257 */
}

/* Over 512 bytes: members over 128 bytes go first, then members from the end. */
static void test_tracestate_truncation(void **state)
{
    weft_trace_context_t c;
    memset(&c, 0, sizeof(c));
    char in[2048], longv[201];
    memset(longv, 'x', 200);
    longv[200] = 0;
    /* a=<200>, g=<200>, h=<200> and small ones: 624 bytes. Dropping h, the last long member,
     * is enough; the small e after it stays. */
    snprintf(in, sizeof(in), "a=%s,b=1,c=2,g=%s,d=3,h=%s,e=4", longv, longv, longv);
    assert_int_equal(ts(in, &c), 0);
    char want[600];
    snprintf(want, sizeof(want), "a=%s,b=1,c=2,g=%s,d=3,e=4", longv, longv);
    assert_ts(&c, want);
    /* four long members: the last two long ones go, from the end */
    snprintf(in, sizeof(in), "a=%s,b=1,c=%s,d=%s,e=%s,f=2", longv, longv, longv, longv);
    assert_int_equal(ts(in, &c), 0);
    snprintf(want, sizeof(want), "a=%s,b=1,c=%s,f=2", longv, longv);
    assert_ts(&c, want);
    /* many short members past 512 bytes: dropped from the end */
    char v42[43];
    memset(v42, 'v', 42);
    v42[42] = 0;
    size_t o = 0;
    for (int i = 0; i < 32; i++) /* 46-byte members */
        o += (size_t)snprintf(in + o, sizeof(in) - o, "%sk%02d=%s", i ? "," : "", i, v42);
    assert_int_equal(ts(in, &c), 0);
    assert_int_equal(c.tracestate_len, 10 * 46 + 9); /* 10 members fit in 512, 11 do not */
    assert_memory_equal(c.tracestate, in, c.tracestate_len);
    weft_str_t v;
    assert_true(weft_tracestate_get(&c, "k09", &v));
    assert_false(weft_tracestate_get(&c, "k10", &v));
}

static void test_tracestate_put(void **state)
{
    weft_trace_context_t c;
    memset(&c, 0, sizeof(c));
    char big[1024];
    size_t o = 0;
    for (int i = 0; i < 32; i++) o += (size_t)sprintf(big + o, "%sk%d=v", i ? "," : "", i);
    assert_int_equal(ts(big, &c), 0);
    /* ours first, the old entry for the key removed */
    assert_int_equal(weft_tracestate_put(&c, "k5", "new"), 0);
    assert_memory_equal(c.tracestate, "k5=new,k0=v,k1=v,k2=v,k3=v,k4=v,k6=v", 36);
    weft_str_t v;
    assert_true(weft_tracestate_get(&c, "k31", &v));
    /* a new key: the oldest (rightmost) member goes to stay at 32 */
    assert_int_equal(weft_tracestate_put(&c, "weft", "x"), 0);
    assert_memory_equal(c.tracestate, "weft=x,k5=new,k0=v,", 19);
    assert_false(weft_tracestate_get(&c, "k31", &v));
    assert_true(weft_tracestate_get(&c, "k30", &v));
    weft_trace_context_t again;
    assert_int_equal(weft_tracestate_parse(c.tracestate, c.tracestate_len, &again), 0);
    assert_int_equal(again.tracestate_len, c.tracestate_len); /* still valid: 32 members */
    /* an empty state */
    c.tracestate_len = 0;
    assert_int_equal(weft_tracestate_put(&c, "tenant@weft", "a b"), 0);
    assert_ts(&c, "tenant@weft=a b");
    /* invalid key or value: refused, nothing changed */
    assert_int_equal(weft_tracestate_put(&c, "Bad", "x"), WEFT_EINVAL);
    assert_int_equal(weft_tracestate_put(&c, "ok", "a,b"), WEFT_EINVAL);
    assert_int_equal(weft_tracestate_put(&c, "ok", ""), WEFT_EINVAL);
    assert_int_equal(weft_tracestate_put(&c, "ok", "trailing "), WEFT_EINVAL);
    assert_ts(&c, "tenant@weft=a b");
    /* a long own value pushes long members out first, then from the end */
    char longv[201];
    memset(longv, 'y', 200);
    longv[200] = 0;
    char in[1024];
    snprintf(in, sizeof(in), "a=%s,b=1,c=%s", longv, longv);
    assert_int_equal(ts(in, &c), 0);
    assert_int_equal(weft_tracestate_put(&c, "mine", longv), 0);
    char want[600];
    snprintf(want, sizeof(want), "mine=%s,a=%s,b=1", longv, longv);
    assert_ts(&c, want);
}

/* ---- B3 ---- */

static int b3(const char *s, weft_trace_context_t *c)
{
    return weft_b3_parse(s, strlen(s), c);
}

static void test_b3_single(void **state)
{
    weft_trace_context_t c;
    char out[WEFT_B3_MAX_LEN + 1];
    /* the spec's examples */
    assert_int_equal(b3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", &c),
                     0);
    assert_int_equal(c.trace_id[0], 0x80);
    assert_int_equal(c.trace_id[15], 0xf7);
    assert_int_equal(c.span_id[0], 0xe4);
    assert_int_equal(c.flags, 1);
    assert_true(c.remote);
    assert_false(c.deferred);
    size_t n = weft_b3_format(&c, out);
    out[n] = 0;
    assert_string_equal(out, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
    /* debug is an accept */
    assert_int_equal(b3("80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-d", &c), 0);
    assert_int_equal(c.flags, 1);
    /* 64-bit trace id: the low half; written back as 16 hex */
    assert_int_equal(b3("64fe8b2a57d3eff7-e457b5a2e4d86bd1-0", &c), 0);
    static const uint8_t t64[16] = {0,    0,    0,    0,    0,    0,    0,    0,
                                    0x64, 0xfe, 0x8b, 0x2a, 0x57, 0xd3, 0xef, 0xf7};
    assert_memory_equal(c.trace_id, t64, 16);
    assert_int_equal(c.flags, 0);
    n = weft_b3_format(&c, out);
    out[n] = 0;
    assert_string_equal(out, "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0");
    /* no sampling field: deferred, and written back without one */
    assert_int_equal(b3(" 64fe8b2a57d3eff7-e457b5a2e4d86bd1\t", &c), 0);
    assert_true(c.deferred);
    n = weft_b3_format(&c, out);
    out[n] = 0;
    assert_string_equal(out, "64fe8b2a57d3eff7-e457b5a2e4d86bd1");
    /* sampling state alone: a sampling-only context */
    memset(&c, 0x11, sizeof(c));
    assert_int_equal(b3("0", &c), 0);
    assert_false(weft_trace_context_is_valid(&c));
    assert_int_equal(c.flags, 0);
    assert_false(c.deferred);
    assert_int_equal(weft_b3_format(&c, out), 1);
    assert_int_equal(out[0], '0');
    assert_int_equal(b3("1", &c), 0);
    assert_int_equal(c.flags, 1);
    assert_int_equal(b3("d", &c), 0);
    assert_int_equal(c.flags, 1);
    /* invalid */
    static const char *const bad[] = {
        "x",
        "",
        "-",
        "64fe8b2a57d3eff7",
        "64fe8b2a57d3eff7-",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-x",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-10",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9g",
        "64fe8b2a57d3eff-e457b5a2e4d86bd1",
        "64fe8b2a57d3eff7a-e457b5a2e4d86bd1",
        "0000000000000000-e457b5a2e4d86bd1-1",
        "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
        "64fe8b2a57d3eff7-0000000000000000-1",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd-1",
        "64FE8B2A57D3EFF7-e457b5a2e4d86bd1-1",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-1",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-D",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        weft_trace_context_t k;
        memset(&c, 0x33, sizeof(c));
        k = c;
        if (b3(bad[i], &c) != WEFT_EPARSE) fail_msg("accepted: \"%s\"", bad[i]);
        assert_memory_equal(&c, &k, sizeof(c));
    }
    /* a 128-bit id with a zero low half is fine (only all-zero is invalid) */
    assert_int_equal(b3("00000000000000010000000000000000-e457b5a2e4d86bd1-1", &c), 0);
    n = weft_b3_format(&c, out);
    out[n] = 0;
    assert_string_equal(out, "00000000000000010000000000000000-e457b5a2e4d86bd1-1");
}

/* ---- extract / inject ---- */

typedef struct {
    const char *names[10];
    const char *values[10];
    int n;
    int lookups;
    char set_buf[8][160];
    int nset;
    int fail_at; /* the setter fails on this call (1-based); 0: never */
} hdrs_t;

static int get(void *arg, const char *name, const char **v, size_t *len)
{
    hdrs_t *h = arg;
    h->lookups++;
    for (int i = 0; i < h->n; i++)
        if (strcasecmp(h->names[i], name) == 0) {
            *v = h->values[i];
            *len = strlen(h->values[i]);
            return 1;
        }
    return 0;
}

static int set(void *arg, const char *name, const char *v, size_t len)
{
    hdrs_t *h = arg;
    if (h->fail_at && h->nset + 1 == h->fail_at) return WEFT_ENOSPC;
    snprintf(h->set_buf[h->nset++], 160, "%s: %.*s", name, (int)len, v);
    return 0;
}

/* Runs both extractors (getter and header array) on h and checks they agree. */
static int extract_both(hdrs_t *h, weft_trace_context_t *c)
{
    weft_http_header_t arr[10];
    for (int i = 0; i < h->n; i++) {
        arr[i].name = (weft_str_t){h->names[i], strlen(h->names[i])};
        arr[i].value = (weft_str_t){h->values[i], strlen(h->values[i])};
    }
    weft_trace_context_t a, b;
    memset(&a, 0x77, sizeof(a));
    memset(&b, 0x77, sizeof(b));
    int ra = weft_trace_extract(get, h, &a), rb = weft_trace_extract_headers(arr, (size_t)h->n, &b);
    assert_int_equal(ra, rb);
    if (ra == 0) {
        assert_memory_equal(a.trace_id, b.trace_id, 16);
        assert_memory_equal(a.span_id, b.span_id, 8);
        assert_int_equal(a.flags, b.flags);
        assert_int_equal(a.deferred, b.deferred);
        assert_int_equal(a.tracestate_len, b.tracestate_len);
        assert_memory_equal(a.tracestate, b.tracestate, a.tracestate_len);
    }
    *c = ra == 0 ? a : *c;
    return ra;
}

static void test_extract(void **state)
{
    weft_trace_context_t c;
    /* traceparent + tracestate, any name casing */
    hdrs_t h = {.names = {"TraceParent", "TRACESTATE"}, .values = {TP, "a=1, b=2"}, .n = 2};
    assert_int_equal(extract_both(&h, &c), 0);
    assert_true(c.remote);
    assert_int_equal(c.trace_id[0], 0x12);
    assert_ts(&c, "a=1,b=2");
    /* an invalid tracestate is dropped, the traceparent kept */
    hdrs_t h1 = {.names = {"traceparent", "tracestate"}, .values = {TP, "A=1"}, .n = 2};
    assert_int_equal(extract_both(&h1, &c), 0);
    assert_int_equal(c.tracestate_len, 0);
    /* wrong names are not ours (test_traceparent_header_name, test_tracestate_header_name) */
    hdrs_t h2 = {.names = {"trace-parent", "trace.state"}, .values = {TP, "a=1"}, .n = 2};
    assert_int_equal(extract_both(&h2, &c), WEFT_ENOENT);
    /* traceparent preferred over b3 */
    hdrs_t h3 = {.names = {"b3", "traceparent"},
                 .values = {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0", TP},
                 .n = 2};
    assert_int_equal(extract_both(&h3, &c), 0);
    assert_int_equal(c.trace_id[0], 0x12);
    /* an invalid traceparent falls back to b3; its tracestate is not used */
    hdrs_t h4 = {.names = {"traceparent", "b3", "tracestate"},
                 .values = {"bogus", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0", "a=1"},
                 .n = 3};
    assert_int_equal(extract_both(&h4, &c), 0);
    assert_int_equal(c.trace_id[0], 0x80);
    assert_int_equal(c.flags, 0);
    assert_int_equal(c.tracestate_len, 0);
    /* b3 preferred over X-B3-* */
    hdrs_t h5 = {.names = {"X-B3-TraceId", "X-B3-SpanId", "b3"},
                 .values = {"463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "0"},
                 .n = 3};
    assert_int_equal(extract_both(&h5, &c), 0);
    assert_false(weft_trace_context_is_valid(&c)); /* b3: 0 wins: deny, no ids */
    assert_int_equal(c.flags, 0);
    /* X-B3-* */
    hdrs_t h6 = {
        .names = {"X-B3-TraceId", "X-B3-SpanId", "X-B3-ParentSpanId", "X-B3-Sampled"},
        .values = {"463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "0020000000000001", "1"},
        .n = 4};
    assert_int_equal(extract_both(&h6, &c), 0);
    assert_int_equal(c.trace_id[0], 0x46);
    assert_int_equal(c.span_id[0], 0xa2);
    assert_int_equal(c.flags, 1);
    assert_false(c.deferred);
    h6.values[3] = "false"; /* the pre-spec spelling */
    assert_int_equal(extract_both(&h6, &c), 0);
    assert_int_equal(c.flags, 0);
    h6.values[3] = "yes";
    assert_int_equal(extract_both(&h6, &c), WEFT_ENOENT);
    h6.values[3] = "1";
    h6.values[2] = "002000000000001"; /* a bad parent id spoils the context */
    assert_int_equal(extract_both(&h6, &c), WEFT_ENOENT);
    /* no sampled header: deferred; X-B3-Flags: 1 is debug, an accept */
    hdrs_t h7 = {.names = {"x-b3-traceid", "x-b3-spanid"},
                 .values = {"48485a3953bb6124", "a2fb4a1d1a96d312"},
                 .n = 2};
    assert_int_equal(extract_both(&h7, &c), 0);
    assert_true(c.deferred);
    h7.names[2] = "X-B3-Flags";
    h7.values[2] = "1";
    h7.n = 3;
    assert_int_equal(extract_both(&h7, &c), 0);
    assert_false(c.deferred);
    assert_int_equal(c.flags, 1);
    /* a lone decision */
    hdrs_t h8 = {.names = {"X-B3-Sampled"}, .values = {"0"}, .n = 1};
    assert_int_equal(extract_both(&h8, &c), 0);
    assert_false(weft_trace_context_is_valid(&c));
    assert_int_equal(c.flags, 0);
    /* a span id missing or zero */
    hdrs_t h9 = {.names = {"X-B3-TraceId", "X-B3-Sampled"},
                 .values = {"463ac35c9f6413ad48485a3953bb6124", "1"},
                 .n = 2};
    assert_int_equal(extract_both(&h9, &c), WEFT_ENOENT);
    hdrs_t h10 = {.names = {"X-B3-TraceId", "X-B3-SpanId"},
                  .values = {"463ac35c9f6413ad48485a3953bb6124", "0000000000000000"},
                  .n = 2};
    assert_int_equal(extract_both(&h10, &c), WEFT_ENOENT);
    /* nothing at all */
    hdrs_t none = {.n = 0};
    memset(&c, 0x42, sizeof(c));
    weft_trace_context_t keep = c;
    assert_int_equal(weft_trace_extract(get, &none, &c), WEFT_ENOENT);
    assert_memory_equal(&c, &keep, sizeof(c));
    /* the getter stops at the first format that parses */
    hdrs_t lazy = {.names = {"traceparent"}, .values = {TP}, .n = 1};
    assert_int_equal(weft_trace_extract(get, &lazy, &c), 0);
    assert_int_equal(lazy.lookups, 2); /* traceparent, tracestate */
}

/* What only the header-array extractor can see: repeated lines. */
static void test_extract_headers_lines(void **state)
{
    weft_trace_context_t c;
    /* test_traceparent_duplicated: two traceparent lines are invalid */
    weft_http_header_t dup[] = {
        {WEFT_STR("traceparent"), WEFT_STR("00-12345678901234567890123456789011-" SID "-01")},
        {WEFT_STR("traceparent"), WEFT_STR("00-12345678901234567890123456789012-" SID "-01")},
    };
    assert_int_equal(weft_trace_extract_headers(dup, 2, &c), WEFT_ENOENT);
    /* several tracestate lines combine */
    weft_http_header_t multi[] = {
        {WEFT_STR("Host"), WEFT_STR("x")},
        {WEFT_STR("tracestate"), WEFT_STR("foo=1,bar=2")},
        {WEFT_STR("traceparent"), WEFT_STR(TP)},
        {WEFT_STR("TraceState"), WEFT_STR("rojo=1,congo=2")},
        {WEFT_STR("tracestate"), WEFT_STR("")},
        {WEFT_STR("tracestate"), WEFT_STR("baz=3")},
    };
    assert_int_equal(weft_trace_extract_headers(multi, 6, &c), 0);
    assert_ts(&c, "foo=1,bar=2,rojo=1,congo=2,baz=3");
    /* a duplicate key across lines drops the tracestate, not the traceparent */
    weft_http_header_t dupkey[] = {
        {WEFT_STR("traceparent"), WEFT_STR(TP)},
        {WEFT_STR("tracestate"), WEFT_STR("foo=1")},
        {WEFT_STR("tracestate"), WEFT_STR("foo=2")},
    };
    assert_int_equal(weft_trace_extract_headers(dupkey, 3, &c), 0);
    assert_int_equal(c.trace_id[0], 0x12);
    assert_int_equal(c.tracestate_len, 0);
    /* B3 multi: the first line wins */
    weft_http_header_t b3first[] = {
        {WEFT_STR("X-B3-TraceId"), WEFT_STR("463ac35c9f6413ad48485a3953bb6124")},
        {WEFT_STR("X-B3-TraceId"), WEFT_STR("ffffffffffffffffffffffffffffffff")},
        {WEFT_STR("X-B3-SpanId"), WEFT_STR("a2fb4a1d1a96d312")},
        {WEFT_STR("X-B3-Sampled"), WEFT_STR("1")},
    };
    assert_int_equal(weft_trace_extract_headers(b3first, 4, &c), 0);
    assert_int_equal(c.trace_id[0], 0x46);
    /* a name that merely starts like ours */
    weft_http_header_t near[] = {
        {WEFT_STR("x-b3-traceidx"), WEFT_STR("463ac35c9f6413ad48485a3953bb6124")},
        {WEFT_STR("traceparents"), WEFT_STR(TP)},
        {WEFT_STR("b"), WEFT_STR("0")},
    };
    assert_int_equal(weft_trace_extract_headers(near, 3, &c), WEFT_ENOENT);
}

/* weft_trace_extract_headers_mask: the formats left out of the mask are not looked at. */
static void test_extract_headers_mask(void **state)
{
    weft_trace_context_t c;
    weft_http_header_t all[] = {
        {WEFT_STR("traceparent"), WEFT_STR(TP)},
        {WEFT_STR("tracestate"), WEFT_STR("foo=1")},
        {WEFT_STR("b3"), WEFT_STR("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")},
        {WEFT_STR("X-B3-TraceId"), WEFT_STR("463ac35c9f6413ad48485a3953bb6124")},
        {WEFT_STR("X-B3-SpanId"), WEFT_STR("a2fb4a1d1a96d312")},
        {WEFT_STR("X-B3-Sampled"), WEFT_STR("1")},
    };
    assert_int_equal(weft_trace_extract_headers_mask(all, 6, WEFT_PROPAGATE_ALL, &c), 0);
    assert_int_equal(c.trace_id[0], 0x12); /* W3C first */
    assert_ts(&c, "foo=1");
    assert_int_equal(
        weft_trace_extract_headers_mask(all, 6, WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI, &c),
        0);
    assert_int_equal(c.trace_id[0], 0x80); /* then b3 */
    assert_int_equal(c.tracestate_len, 0);
    assert_int_equal(weft_trace_extract_headers_mask(all, 6, WEFT_PROPAGATE_B3_MULTI, &c), 0);
    assert_int_equal(c.trace_id[0], 0x46); /* then X-B3-* */
    assert_int_equal(weft_trace_extract_headers_mask(all + 2, 4, WEFT_PROPAGATE_W3C, &c),
                     WEFT_ENOENT);
    assert_int_equal(weft_trace_extract_headers_mask(all, 6, 0, &c), WEFT_ENOENT);
    /* a duplicated traceparent does not spoil B3 when W3C is left out */
    weft_http_header_t dup[] = {
        {WEFT_STR("traceparent"), WEFT_STR(TP)},
        {WEFT_STR("traceparent"), WEFT_STR(TP)},
        {WEFT_STR("b3"), WEFT_STR("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")},
    };
    assert_int_equal(weft_trace_extract_headers_mask(dup, 3, WEFT_PROPAGATE_B3, &c), 0);
    assert_int_equal(c.trace_id[0], 0x80);
}

/* WEFT_PROPAGATE_B3_WINS: B3 ids override a valid traceparent (OpenTelemetry's order for
 * "tracecontext,b3"); a B3 sampling decision alone or a bad B3 context does not. */
static void test_extract_b3_wins(void **state)
{
    (void)state;
    weft_trace_context_t c;
    const unsigned wins = WEFT_PROPAGATE_ALL | WEFT_PROPAGATE_B3_WINS;
    weft_http_header_t both[] = {
        {WEFT_STR("traceparent"), WEFT_STR(TP)},
        {WEFT_STR("tracestate"), WEFT_STR("foo=1")},
        {WEFT_STR("b3"), WEFT_STR("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")},
    };
    assert_int_equal(weft_trace_extract_headers_mask(both, 3, WEFT_PROPAGATE_ALL, &c), 0);
    assert_int_equal(c.trace_id[0], 0x12); /* without the bit: W3C */
    assert_int_equal(weft_trace_extract_headers_mask(both, 3, wins, &c), 0);
    assert_int_equal(c.trace_id[0], 0x80);
    assert_int_equal(c.span_id[0], 0xe4);
    assert_int_equal(c.flags, 0);          /* b3's "0", not traceparent's sampled flag */
    assert_int_equal(c.tracestate_len, 0); /* tracestate belongs to the traceparent */
    assert_true(c.remote);
    assert_false(c.deferred);
    /* the multi headers, with no sampling decision: deferred */
    weft_http_header_t multi[] = {
        {WEFT_STR("traceparent"), WEFT_STR(TP)},
        {WEFT_STR("X-B3-TraceId"), WEFT_STR("463ac35c9f6413ad48485a3953bb6124")},
        {WEFT_STR("X-B3-SpanId"), WEFT_STR("a2fb4a1d1a96d312")},
    };
    assert_int_equal(weft_trace_extract_headers_mask(multi, 3, wins, &c), 0);
    assert_int_equal(c.trace_id[0], 0x46);
    assert_true(c.deferred);
    /* without B3 in the mask the bit changes nothing */
    assert_int_equal(
        weft_trace_extract_headers_mask(multi, 3, WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3_WINS, &c),
        0);
    assert_int_equal(c.trace_id[0], 0x12);
    /* not enough to override: a sampling decision alone, a malformed b3 */
    static const char *const weak[] = {"0", "1", "d", "80f198ee56343ba8-e457b5a2e4d86bd1-x",
                                       "00000000000000000000000000000000-e457b5a2e4d86bd1-1"};
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        weft_http_header_t h[] = {
            {WEFT_STR("traceparent"), WEFT_STR(TP)},
            {WEFT_STR("b3"), {weak[i], strlen(weak[i])}},
        };
        assert_int_equal(weft_trace_extract_headers_mask(h, 2, wins, &c), 0);
        assert_int_equal(c.trace_id[0], 0x12);
        assert_int_equal(c.flags, WEFT_TRACE_FLAG_SAMPLED);
    }
    /* no traceparent: B3 as always, a sampling decision included */
    weft_http_header_t only[] = {{WEFT_STR("b3"), WEFT_STR("0")}};
    assert_int_equal(weft_trace_extract_headers_mask(only, 1, wins, &c), 0);
    assert_false(weft_trace_context_is_valid(&c));
    assert_int_equal(c.flags, 0);
}

static void test_inject(void **state)
{
    weft_trace_context_t c;
    assert_int_equal(weft_traceparent_parse(TP, strlen(TP), &c), 0);
    assert_int_equal(weft_tracestate_parse("a=1", 3, &c), 0);
    hdrs_t out = {0};
    assert_int_equal(
        weft_trace_inject(&c, WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI, set,
                          &out),
        0);
    assert_int_equal(out.nset, 6);
    assert_string_equal(out.set_buf[0], "traceparent: " TP);
    assert_string_equal(out.set_buf[1], "tracestate: a=1");
    assert_string_equal(out.set_buf[2], "b3: " TID "-" SID "-1");
    assert_string_equal(out.set_buf[3], "X-B3-TraceId: " TID);
    assert_string_equal(out.set_buf[4], "X-B3-SpanId: " SID);
    assert_string_equal(out.set_buf[5], "X-B3-Sampled: 1");
    /* W3C only, no tracestate */
    c.tracestate_len = 0;
    hdrs_t w3c = {0};
    assert_int_equal(weft_trace_inject(&c, WEFT_PROPAGATE_W3C, set, &w3c), 0);
    assert_int_equal(w3c.nset, 1);
    /* round trip through the extractor */
    hdrs_t back = {.n = 0};
    for (int i = 0; i < out.nset; i++) {
        char *colon = strchr(out.set_buf[i], ':');
        if (!colon) { /* gcc 12 cannot see that every injected line has one */
            fail_msg("no ':' in %s", out.set_buf[i]);
            return;
        }
        *colon = 0;
        back.names[back.n] = out.set_buf[i];
        back.values[back.n++] = colon + 2;
    }
    weft_trace_context_t r;
    assert_int_equal(extract_both(&back, &r), 0);
    assert_memory_equal(r.trace_id, c.trace_id, 16);
    assert_memory_equal(r.span_id, c.span_id, 8);
    /* a sampling-only context: only B3 can say it */
    weft_trace_context_t deny;
    assert_int_equal(weft_b3_parse("0", 1, &deny), 0);
    hdrs_t d = {0};
    assert_int_equal(
        weft_trace_inject(&deny, WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI,
                          set, &d),
        0);
    assert_int_equal(d.nset, 2);
    assert_string_equal(d.set_buf[0], "b3: 0");
    assert_string_equal(d.set_buf[1], "X-B3-Sampled: 0");
    /* a setter error stops the injection and is returned */
    hdrs_t failing = {.fail_at = 2};
    assert_int_equal(weft_trace_inject(&c, WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3, set, &failing),
                     WEFT_ENOSPC);
    assert_int_equal(failing.nset, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_suite_valid),
        cmocka_unit_test(test_hex_every_byte),
        cmocka_unit_test(test_traceparent_suite_invalid),
        cmocka_unit_test(test_tracestate_suite),
        cmocka_unit_test(test_tracestate_truncation),
        cmocka_unit_test(test_tracestate_put),
        cmocka_unit_test(test_b3_single),
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_extract_headers_lines),
        cmocka_unit_test(test_extract_headers_mask),
        cmocka_unit_test(test_extract_b3_wins),
        cmocka_unit_test(test_inject),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
