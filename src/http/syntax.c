/*
 * syntax.c - the HTTP syntax rules that are not inline (see syntax.h): the tchar table and
 * the Host / authority check.
 *
 * Design. Tables over bytes where a rule is a set of characters (tchar here, reg-name as a
 * 128-bit set below): one load per byte, no branches on the character. Pure functions over
 * constant data; any thread.
 */
#include "http/syntax.h"

const uint8_t weft__http_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

bool weft__http_authority_valid(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0) return true;
    if (p[0] == '[') {
        for (i = 1; i < n && p[i] != ']'; i++)
            if (weft__http_hex_digit(p[i]) < 0 && p[i] != ':' && p[i] != '.') return false;
        if (i == n || i == 1) return false;
        i++;
    } else {
        /* bit c of the pair: c is a reg-name byte (ALPHA DIGIT -._~ !$&'()*+,;= and '%') */
        static const uint64_t REGNAME[2] = {0x2bff7ff200000000ull, 0x47fffffe87fffffeull};
        for (; i < n && p[i] != ':'; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (ch >= 128 || !(REGNAME[ch >> 6] >> (ch & 63) & 1)) return false;
        }
        if (i == 0) return false;
    }
    if (i == n) return true;
    if (p[i] != ':' || n - i - 1 > 5) return false;
    for (i++; i < n; i++)
        if (!weft__http_is_digit((unsigned char)p[i])) return false;
    return true;
}
