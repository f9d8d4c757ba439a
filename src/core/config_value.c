/*
 * config_value.c - one configuration value: parsing, bounds, and how values and ranges are
 * written in messages, --help and the reference.
 *
 * Parsers are strict: the whole text must match the type's syntax (weft/config.h lists
 * it), integers are checked for overflow before it happens, and nothing is silently
 * rounded (a duration must come out in whole milliseconds, a size in whole bytes; a
 * fraction is parsed as digits, not through a double). Bounds are doubles in the tables,
 * but an integer value is compared with them exactly: a double near 2^63 cannot stand for
 * every integer, so the comparison works on the bound's floor instead of converting the
 * value. Doubles are parsed in the C syntax whatever the host's locale ("0.5", never
 * "0,5"): the text is checked against a strict grammar, then handed to strtod with the
 * locale's decimal point in place of '.'.
 *
 * Pure functions over their arguments: no allocation, no global mutable state. Called at
 * start-up; localeconv() makes double parsing unsafe against a concurrent setlocale().
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weft/log.h"
#include "core/config_int.h"
#include "core/errbuf.h"

static const char *const log_level_names[] = {"debug", "info", "warn", "error", "off", NULL};

#define why(w, wl, ...) weft__errf(w, wl, WEFT_EINVAL, __VA_ARGS__)

/* ---- message text ---- */

void weft__conf_escape(char *out, size_t cap, const char *s, size_t len, size_t show)
{
    if (!cap) return;
    size_t n = len, o = 0;
    bool cut = false;
    if (n > show) {
        n = show;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--; /* whole characters */
        cut = true;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[5];
        size_t el = 2;
        e[0] = '\\';
        if (c == '"' || c == '\\') {
            e[1] = (char)c;
        } else if (c == '\n') {
            e[1] = 'n';
        } else if (c == '\t') {
            e[1] = 't';
        } else if (c == '\r') {
            e[1] = 'r';
        } else if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            e[1] = 'x';
            e[2] = hex[c >> 4];
            e[3] = hex[c & 15];
            el = 4;
        } else {
            e[0] = (char)c;
            el = 1;
        }
        if (o + el >= cap) {
            cut = false; /* out of room: end here, no room promised for "..." */
            break;
        }
        memcpy(out + o, e, el);
        o += el;
    }
    if (cut && o + 3 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
}

const char *weft__conf_type_name(weft_conf_type_t t)
{
    switch (t) {
    case WEFT_CONF_BOOL:
        return "bool";
    case WEFT_CONF_INT:
        return "int";
    case WEFT_CONF_UINT:
        return "uint";
    case WEFT_CONF_DOUBLE:
        return "number";
    case WEFT_CONF_STRING:
        return "string";
    case WEFT_CONF_DURATION:
        return "duration";
    case WEFT_CONF_SIZE:
        return "size";
    case WEFT_CONF_ADDR:
        return "host:port";
    case WEFT_CONF_ENUM:
        return "enum";
    case WEFT_CONF_LOGLEVEL:
        return "level";
    case WEFT_CONF_TREE:
        return "list/map (YAML)";
    }
    return "?";
}

/* Optimal string alignment distance, ASCII case ignored, three rolling rows. */
size_t weft__conf_distance(const char *a, size_t la, const char *b, size_t lb)
{
    enum { MAXL = 64 };
    if (la > MAXL || lb > MAXL) return (size_t)-1 / 2;
    size_t rows[3][MAXL + 1];
    size_t *pp = rows[0], *p = rows[1], *c = rows[2];
    for (size_t j = 0; j <= lb; j++) p[j] = j;
    for (size_t i = 1; i <= la; i++) {
        c[0] = i;
        int ai = tolower((unsigned char)a[i - 1]);
        for (size_t j = 1; j <= lb; j++) {
            int bj = tolower((unsigned char)b[j - 1]);
            size_t best = p[j - 1] + (ai != bj);
            if (p[j] + 1 < best) best = p[j] + 1;
            if (c[j - 1] + 1 < best) best = c[j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            c[j] = best;
        }
        size_t *t = pp;
        pp = p;
        p = c;
        c = t;
    }
    return p[lb];
}

bool weft__conf_close(size_t d, size_t len)
{
    if (d == 0) return true; /* differs in case only */
    if (d >= len) return false;
    return d <= (len <= 4 ? 1u : len <= 8 ? 2u : 3u);
}

/* ---- bounds ---- */

#define TWO_63 9223372036854775808.0
#define TWO_64 18446744073709551616.0

/* v < d and v > d, exactly, for the integer types. NaN never compares. */
static bool u_lt(uint64_t v, double d)
{
    if (isnan(d) || d <= 0) return false;
    if (d >= TWO_64) return true;
    double f = floor(d);
    return v < (uint64_t)f || (v == (uint64_t)f && d != f);
}

static bool u_gt(uint64_t v, double d)
{
    if (isnan(d)) return false;
    if (d < 0) return true;
    if (d >= TWO_64) return false;
    return v > (uint64_t)floor(d);
}

static bool i_lt(int64_t v, double d)
{
    if (isnan(d) || d < -TWO_63) return false;
    if (d >= TWO_63) return true;
    double f = floor(d);
    return v < (int64_t)f || (v == (int64_t)f && d != f);
}

static bool i_gt(int64_t v, double d)
{
    if (isnan(d)) return false;
    if (d < -TWO_63) return true;
    if (d >= TWO_63) return false;
    return v > (int64_t)floor(d);
}

bool weft__conf_bounded(const weft_conf_option_t *o)
{
    return !(o->min == 0 && o->max == 0);
}

static void fmt_number(double v, char *out, size_t n)
{
    if (v == floor(v) && fabs(v) < TWO_63)
        snprintf(out, n, "%lld", (long long)v);
    else
        snprintf(out, n, "%.15g", v);
}

/* A bound written the way a user would write the value. */
static void fmt_bound(const weft_conf_option_t *o, double v, char *out, size_t n)
{
    bool whole = v >= 0 && v < TWO_64 && v == floor(v);
    uint64_t u = whole ? (uint64_t)v : 0;
    if (o->type == WEFT_CONF_DURATION && whole) {
        static const struct {
            const char *unit;
            uint64_t ms;
        } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
        if (u == 0) {
            snprintf(out, n, "0s");
            return;
        }
        size_t o_ = 0;
        out[0] = 0;
        for (size_t k = 0; k < 5 && u; k++) {
            if (u < units[k].ms) continue;
            int w = snprintf(out + o_, n - o_, "%llu%s", (unsigned long long)(u / units[k].ms),
                             units[k].unit);
            if (w < 0 || (size_t)w >= n - o_) return;
            o_ += (size_t)w;
            u %= units[k].ms;
        }
    } else if (o->type == WEFT_CONF_SIZE && whole) {
        static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};
        for (int k = 0; k < 4; k++) {
            uint64_t m = 1ull << (10 * (4 - k));
            if (u && u % m == 0) {
                snprintf(out, n, "%llu%s", (unsigned long long)(u / m), units[k]);
                return;
            }
        }
        snprintf(out, n, "%llu", (unsigned long long)u);
    } else {
        fmt_number(v, out, n);
        if (o->type == WEFT_CONF_DURATION) strncat(out, "ms", n - strlen(out) - 1);
    }
}

void weft__conf_bounds_text(const weft_conf_option_t *o, char *out, size_t n)
{
    out[0] = 0;
    if (!weft__conf_bounded(o)) return;
    switch (o->type) {
    case WEFT_CONF_INT:
    case WEFT_CONF_UINT:
    case WEFT_CONF_DOUBLE:
    case WEFT_CONF_DURATION:
    case WEFT_CONF_SIZE:
    case WEFT_CONF_STRING:
        break;
    default:
        return;
    }
    char lo[64], hi[64];
    fmt_bound(o, o->min, lo, sizeof(lo));
    fmt_bound(o, o->max, hi, sizeof(hi));
    const char *pre = o->type == WEFT_CONF_STRING ? "length " : "";
    bool open_lo = isinf(o->min), open_hi = isinf(o->max);
    if (open_lo && open_hi)
        return;
    else if (open_lo)
        snprintf(out, n, "%s<= %s", pre, hi);
    else if (open_hi)
        snprintf(out, n, "%s>= %s", pre, lo);
    else
        snprintf(out, n, "%s%s..%s", pre, lo, hi);
}

void weft__conf_choices_text(const weft_conf_option_t *o, const char *sep, char *out, size_t n)
{
    const char *const *c = o->type == WEFT_CONF_ENUM       ? o->choices
                           : o->type == WEFT_CONF_LOGLEVEL ? log_level_names
                                                           : NULL;
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; c && c[i] && used + 1 < n; i++) {
        int w = snprintf(out + used, n - used, "%s%s", i ? sep : "", c[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

int weft__conf_check_bounds(const weft_conf_option_t *o, const weft__conf_value_t *v,
                            const char *text, size_t len, char *w, size_t wl)
{
    if (!weft__conf_bounded(o)) return 0;
    bool below, above;
    switch (o->type) {
    case WEFT_CONF_INT:
        below = i_lt(v->i, o->min);
        above = i_gt(v->i, o->max);
        break;
    case WEFT_CONF_UINT:
    case WEFT_CONF_DURATION:
    case WEFT_CONF_SIZE:
        below = u_lt(v->u, o->min);
        above = u_gt(v->u, o->max);
        break;
    case WEFT_CONF_DOUBLE:
        below = v->d < o->min;
        above = v->d > o->max;
        break;
    case WEFT_CONF_STRING:
        below = u_lt(v->s.len, o->min);
        above = u_gt(v->s.len, o->max);
        break;
    default:
        return 0;
    }
    if (!below && !above) return 0;
    char b[64];
    fmt_bound(o, below ? o->min : o->max, b, sizeof(b));
    const char *side = below ? "below the minimum" : "above the maximum";
    if (o->type == WEFT_CONF_STRING)
        return why(w, wl, "%zu bytes is %s length %s", v->s.len, side, b);
    char t[WEFT__CONF_SHOW * 4 + 8];
    weft__conf_escape(t, sizeof(t), text, len, WEFT__CONF_SHOW);
    return why(w, wl, "%s is %s %s", t, side, b);
}

/* ---- parsers ---- */

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Decimal digits s[0..len) -> *out: 0, -1 not digits, -2 overflow. */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
    if (len == 0) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!digit(s[i])) return -1;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v))
            return -2;
    }
    *out = v;
    return 0;
}

/*
 * A number with an optional fraction at *p ("12", "1.5"): *ip the whole part, *fp / *fscale
 * the fraction with at most maxfrac digits kept. Returns 0, -1 (no digits, or a '.' with
 * none after it), -2 (overflow), -3 (a non-zero digit past maxfrac: finer than the unit
 * can hold). Advances *p past the number.
 */
static int parse_quantity(const char **p, const char *end, int maxfrac, uint64_t *ip, uint64_t *fp,
                          uint64_t *fscale)
{
    const char *s = *p;
    *ip = 0;
    *fp = 0;
    *fscale = 1;
    const char *d0 = s;
    while (s < end && digit(*s)) s++;
    if (s == d0) return -1;
    int r = parse_digits(d0, (size_t)(s - d0), ip);
    if (r) return r;
    if (s < end && *s == '.') {
        s++;
        const char *f0 = s;
        int kept = 0;
        for (; s < end && digit(*s); s++) {
            if (kept < maxfrac) {
                *fp = *fp * 10 + (uint64_t)(*s - '0');
                *fscale *= 10;
                kept++;
            } else if (*s != '0') {
                return -3;
            }
        }
        if (s == f0) return -1;
    }
    *p = s;
    return 0;
}

/* ip.fp * mul as a whole number: 0, -2 overflow, -3 not whole. fp < 10^maxfrac keeps
 * fp * mul in range for the units used here. */
static int scale(uint64_t ip, uint64_t fp, uint64_t fscale, uint64_t mul, uint64_t *out)
{
    uint64_t whole, frac;
    if (__builtin_mul_overflow(ip, mul, &whole)) return -2;
    if (__builtin_mul_overflow(fp, mul, &frac)) return -2;
    if (frac % fscale) return -3;
    if (__builtin_add_overflow(whole, frac / fscale, out)) return -2;
    return 0;
}

/* "1h30m", "250ms", "1.5s", "0" -> milliseconds; units from the largest down, once each.
 * 0, -1 syntax, -2 overflow, -3 finer than a millisecond, -4 units out of order. */
static int parse_duration(const char *s, size_t len, uint64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    if (len == 1 && s[0] == '0') {
        *ms = 0;
        return 0;
    }
    if (len == 0) return -1;
    const char *p = s, *end = s + len;
    uint64_t total = 0;
    int last = -1;
    while (p < end) {
        uint64_t ip, fp, fscale, part;
        int r = parse_quantity(&p, end, 9, &ip, &fp, &fscale);
        if (r) return r;
        const char *u = p;
        while (p < end && isalpha((unsigned char)*p)) p++;
        size_t ul = (size_t)(p - u);
        int k;
        for (k = 0; k < 5; k++)
            if (strlen(units[k].unit) == ul && memcmp(units[k].unit, u, ul) == 0) break;
        if (k == 5) return -1;
        if (k <= last) return -4;
        last = k;
        r = scale(ip, fp, fscale, units[k].ms, &part);
        if (r) return r;
        if (__builtin_add_overflow(total, part, &total)) return -2;
    }
    *ms = total;
    return 0;
}

/* "512", "64KiB", "1.5MiB", "10KB" -> bytes. 0, -1 syntax, -2 overflow, -3 not whole. */
static int parse_size(const char *s, size_t len, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KiB", 1ull << 10},
                 {"MiB", 1ull << 20},
                 {"GiB", 1ull << 30},
                 {"TiB", 1ull << 40},
                 {"KB", 1000},
                 {"MB", 1000000},
                 {"GB", 1000000000},
                 {"TB", 1000000000000ull}};
    const char *p = s, *end = s + len;
    uint64_t ip, fp, fscale;
    int r = parse_quantity(&p, end, 6, &ip, &fp, &fscale);
    if (r) return r;
    size_t ul = (size_t)(end - p);
    for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++)
        if (strlen(units[k].unit) == ul && strncasecmp(units[k].unit, p, ul) == 0)
            return scale(ip, fp, fscale, units[k].mul, bytes);
    return -1;
}

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

/* "host:port" or "[v6]:port" -> *a. 0 or -1. */
static int parse_addr(const char *s, size_t len, weft_conf_addr_t *a)
{
    const char *host, *port;
    size_t hl;
    if (len && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close + 1 >= s + len || close[1] != ':') return -1;
        host = s + 1;
        hl = (size_t)(close - host);
        bool colon = false;
        size_t i = 0;
        for (; i < hl && host[i] != '%'; i++) {
            if (host[i] == ':')
                colon = true;
            else if (!isxdigit((unsigned char)host[i]) && host[i] != '.')
                return -1;
        }
        if (!colon) return -1;
        if (i < hl) { /* a zone: [fe80::1%eth0]:80 */
            if (++i == hl) return -1;
            for (; i < hl; i++)
                if (!host_char(host[i])) return -1;
        }
        port = close + 2;
    } else {
        const char *colon = NULL;
        for (size_t i = len; i > 0; i--)
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        if (!colon) return -1;
        host = s;
        hl = (size_t)(colon - s);
        for (size_t i = 0; i < hl; i++)
            if (!host_char(host[i])) return -1; /* also a bare IPv6 address: needs [] */
        port = colon + 1;
    }
    if (hl == 0 || hl >= sizeof(a->host)) return -1;
    size_t pl = (size_t)(s + len - port);
    uint64_t pv;
    if (pl > 5 || parse_digits(port, pl, &pv) != 0 || pv > 65535) return -1;
    memcpy(a->host, host, hl);
    a->host[hl] = 0;
    a->port = (uint16_t)pv;
    return 0;
}

/* weft_conf_option_t.resolve: a host name becomes the first address it resolves to (IPv4 first, as
 * "localhost" means 127.0.0.1 to most users), so that every consumer gets a numeric address and a
 * name that does not resolve is a configuration error, not a failure to bind or connect later.
 * Numeric addresses are left as written. 0 or a getaddrinfo error (EAI_*). */
static bool numeric_host(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1 ||
           strchr(host, '%'); /* [fe80::1%eth0]: parse_addr checked its syntax */
}

static int resolve_host(weft_conf_addr_t *a)
{
    if (numeric_host(a->host)) return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int r = getaddrinfo(a->host, NULL, &hints, &res);
    if (r != 0) return r;
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    const void *src = pick->ai_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)pick->ai_addr)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
    r = inet_ntop(pick->ai_family, src, a->host, sizeof(a->host)) ? 0 : EAI_FAIL;
    freeaddrinfo(res);
    return r;
}

/* Strict decimal grammar, then strtod with the locale's decimal point. 0, -1, -2. */
static int parse_double(const char *s, size_t len, double *out)
{
    size_t i = 0, nd = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    while (i < len && digit(s[i])) i++, nd++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && digit(s[i])) i++, nd++;
    }
    if (nd == 0) return -1;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) i++;
        size_t e0 = i;
        while (i < len && digit(s[i])) i++;
        if (i == e0) return -1;
    }
    if (i != len) return -1;
    char buf[160];
    const char *dp = localeconv()->decimal_point;
    size_t dpl = dp && *dp ? strlen(dp) : 1, b = 0;
    if (!dp || !*dp) dp = ".";
    for (i = 0; i < len; i++) {
        if (b + dpl + 1 >= sizeof(buf)) return -2; /* 150 digits: not a sensible setting */
        if (s[i] == '.') {
            memcpy(buf + b, dp, dpl);
            b += dpl;
        } else {
            buf[b++] = s[i];
        }
    }
    buf[b] = 0;
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (end != buf + b) return -1;
    if (errno == ERANGE || !isfinite(d)) return -2;
    *out = d;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = false, 0;
    }
    return -1;
}

/* "expected one of a, b, got "x"" with a suggestion when one choice is close. */
static int bad_choice(const weft_conf_option_t *o, const char *const *choices, const char *t,
                      const char *text, size_t len, char *w, size_t wl)
{
    char list[256];
    weft__conf_choices_text(o, ", ", list, sizeof(list));
    size_t best = (size_t)-1;
    const char *near = NULL;
    for (int i = 0; choices[i]; i++) {
        size_t d = weft__conf_distance(text, len, choices[i], strlen(choices[i]));
        if (d < best && weft__conf_close(d, len)) {
            best = d;
            near = choices[i];
        }
    }
    if (near)
        return why(w, wl, "expected one of %s, got \"%s\" (did you mean \"%s\"?)", list, t, near);
    return why(w, wl, "expected one of %s, got \"%s\"", list, t);
}

int weft__conf_parse(const weft_conf_option_t *o, const char *text, size_t len,
                     weft__conf_value_t *v, char *w, size_t wl)
{
    char t[WEFT__CONF_SHOW * 4 + 8]; /* the text as shown in a message */
    weft__conf_escape(t, sizeof(t), text, len, WEFT__CONF_SHOW);
    if (strlen(text) != len) return why(w, wl, "contains a NUL byte: \"%s\"", t);
    int r;
    switch (o->type) {
    case WEFT_CONF_BOOL:
        if (parse_bool(text, &v->b) != 0)
            return why(w, wl, "expected true or false, got \"%s\"", t);
        return 0;
    case WEFT_CONF_INT:
    case WEFT_CONF_UINT: {
        bool neg = text[0] == '-';
        size_t skip = (text[0] == '-' || text[0] == '+') ? 1 : 0;
        uint64_t u;
        r = (neg && o->type == WEFT_CONF_UINT) ? -1 : parse_digits(text + skip, len - skip, &u);
        if (r == -1) return why(w, wl, "expected a whole number, got \"%s\"", t);
        if (o->type == WEFT_CONF_UINT) {
            if (r == -2) return why(w, wl, "%s is out of range", t);
            v->u = u;
            return 0;
        }
        if (r == -2 || u > (uint64_t)INT64_MAX + neg) return why(w, wl, "%s is out of range", t);
        v->i = neg ? (int64_t)(0 - u) : (int64_t)u;
        return 0;
    }
    case WEFT_CONF_DOUBLE:
        r = parse_double(text, len, &v->d);
        if (r == -1) return why(w, wl, "expected a number, got \"%s\"", t);
        if (r) return why(w, wl, "%s is out of range", t);
        return 0;
    case WEFT_CONF_STRING:
        v->s.p = text;
        v->s.len = len;
        return 0;
    case WEFT_CONF_DURATION:
        r = parse_duration(text, len, &v->u);
        if (r == -2) return why(w, wl, "%s is out of range", t);
        if (r == -3) return why(w, wl, "%s is finer than a millisecond", t);
        if (r == -4)
            return why(w, wl, "units go from the largest down, once each (1h30m), got \"%s\"", t);
        if (r) return why(w, wl, "expected a duration like 10s or 250ms, got \"%s\"", t);
        return 0;
    case WEFT_CONF_SIZE:
        r = parse_size(text, len, &v->u);
        if (r == -2) return why(w, wl, "%s is out of range", t);
        if (r == -3) return why(w, wl, "%s is not a whole number of bytes", t);
        if (r) return why(w, wl, "expected a size like 512, 64KiB or 1MiB, got \"%s\"", t);
        return 0;
    case WEFT_CONF_ADDR:
        if (parse_addr(text, len, &v->a) != 0)
            return why(w, wl, "expected HOST:PORT (port 0-65535, [v6]:port), got \"%s\"", t);
        if (o->resolve && (r = resolve_host(&v->a)) != 0)
            return why(w, wl, "cannot resolve the host of \"%s\": %s", t, gai_strerror(r));
        return 0;
    case WEFT_CONF_ENUM:
        if (!o->choices) return why(w, wl, "the table gives no choices");
        for (int i = 0; o->choices[i]; i++) {
            if (strcmp(o->choices[i], text) == 0) {
                v->e = i;
                return 0;
            }
        }
        return bad_choice(o, o->choices, t, text, len, w, wl);
    case WEFT_CONF_LOGLEVEL: {
        weft_log_level_t lv;
        if (weft_log_level_parse(text, &lv) == 0) {
            v->e = (int)lv;
            return 0;
        }
        return bad_choice(o, log_level_names, t, text, len, w, wl);
    }
    case WEFT_CONF_TREE:
        return why(w, wl, "a list/map (YAML) setting is set in the file only, got \"%s\"", t);
    }
    return why(w, wl, "the table gives an unknown type %d", (int)o->type);
}

bool weft__conf_store(const weft_conf_option_t *o, const weft__conf_value_t *v, void *dst)
{
    switch (o->type) {
    case WEFT_CONF_BOOL:
        *(bool *)dst = v->b;
        return true;
    case WEFT_CONF_INT:
        *(int64_t *)dst = v->i;
        return true;
    case WEFT_CONF_UINT:
    case WEFT_CONF_DURATION:
    case WEFT_CONF_SIZE:
        *(uint64_t *)dst = v->u;
        return true;
    case WEFT_CONF_DOUBLE:
        *(double *)dst = v->d;
        return true;
    case WEFT_CONF_ADDR:
        *(weft_conf_addr_t *)dst = v->a;
        return true;
    case WEFT_CONF_ENUM:
        *(int *)dst = v->e;
        return true;
    case WEFT_CONF_LOGLEVEL:
        *(weft_log_level_t *)dst = (weft_log_level_t)v->e;
        return true;
    case WEFT_CONF_STRING:
        return false;
    case WEFT_CONF_TREE: /* never parsed from text, so never stored from a value */
        return true;
    }
    return false;
}

size_t weft__conf_storage_size(weft_conf_type_t t)
{
    switch (t) {
    case WEFT_CONF_BOOL:
        return sizeof(bool);
    case WEFT_CONF_INT:
        return sizeof(int64_t);
    case WEFT_CONF_UINT:
    case WEFT_CONF_DURATION:
    case WEFT_CONF_SIZE:
        return sizeof(uint64_t);
    case WEFT_CONF_DOUBLE:
        return sizeof(double);
    case WEFT_CONF_STRING:
        return sizeof(char *);
    case WEFT_CONF_ADDR:
        return sizeof(weft_conf_addr_t);
    case WEFT_CONF_ENUM:
        return sizeof(int);
    case WEFT_CONF_LOGLEVEL:
        return sizeof(weft_log_level_t);
    case WEFT_CONF_TREE:
        return sizeof(const weft_conf_node_t *);
    }
    return 0;
}

/* digits, optionally '.' digits: the length of that prefix of s, 0 when there is none. */
static size_t plain_decimal(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && digit(s[i])) i++;
    if (i == 0) return 0;
    if (i < len && s[i] == '.') {
        size_t f = ++i;
        while (i < len && digit(s[i])) i++;
        if (i == f) return 0;
    }
    return i;
}

int weft__conf_parse_percent(const char *text, size_t len, double *out, char *w, size_t wl)
{
    char t[WEFT__CONF_SHOW * 4 + 8];
    weft__conf_escape(t, sizeof(t), text, len, WEFT__CONF_SHOW);
    size_t n = plain_decimal(text, len);
    double d;
    if (n == 0 || n + 1 != len || text[n] != '%')
        return why(w, wl, "expected a percentage like 50%%, got \"%s\"", t);
    if (parse_double(text, n, &d) != 0) return why(w, wl, "%s is out of range", t);
    if (d > 100) return why(w, wl, "%s is above the maximum 100%%", t);
    *out = d;
    return 0;
}

int weft__conf_parse_rate(const char *text, size_t len, double *out, char *w, size_t wl)
{
    static const struct {
        char unit;
        double seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}};
    char t[WEFT__CONF_SHOW * 4 + 8];
    weft__conf_escape(t, sizeof(t), text, len, WEFT__CONF_SHOW);
    size_t n = plain_decimal(text, len);
    double d;
    if (n == 0 || n + 2 != len || text[n] != '/')
        return why(w, wl, "expected a rate like 100/s, 10/m or 1/h, got \"%s\"", t);
    size_t k;
    for (k = 0; k < 3 && units[k].unit != text[n + 1]; k++) {
    }
    if (k == 3) return why(w, wl, "expected a rate like 100/s, 10/m or 1/h, got \"%s\"", t);
    if (parse_double(text, n, &d) != 0) return why(w, wl, "%s is out of range", t);
    if (d == 0) return why(w, wl, "a rate must be above 0, got \"%s\"", t);
    *out = d / units[k].seconds;
    return 0;
}

int weft_conf_parse_value(const weft_conf_option_t *o, const char *text, void *out, char *w,
                          size_t wl)
{
    if (!o || !text || !out) return why(w, wl, "no option, text or output");
    weft__conf_value_t v;
    int rc = weft__conf_parse(o, text, strlen(text), &v, w, wl);
    if (rc) return rc;
    if (!weft__conf_store(o, &v, out) && o->type == WEFT_CONF_STRING) *(const char **)out = text;
    return 0;
}
