/*
 * test_retry_after.c - weft_http_retry_after_parse: delay-seconds, IMF-fixdate, clamping,
 * dates in the past, and every form it refuses (RFC 850 and asctime dates included).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "weft/http.h"

static void test_values(void **state)
{
    uint64_t ms = 7;
    const time_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
#define OK(v, want)                                                                                \
    do {                                                                                           \
        ms = 7;                                                                                    \
        if (weft_http_retry_after_parse(v, strlen(v), now, &ms) != 0 || ms != (want))              \
            fail_msg("\"%s\": got %llu", v, (unsigned long long)ms);                               \
    } while (0)
#define NO(v)                                                                                      \
    do {                                                                                           \
        ms = 7;                                                                                    \
        if (weft_http_retry_after_parse(v, strlen(v), now, &ms) == 0 || ms != 7)                   \
            fail_msg("\"%s\" was taken", v);                                                       \
    } while (0)
    OK("0", 0);
    OK("120", 120000);
    OK(" 3\t", 3000);
    OK("0000000000000000000000007", 7000);
    OK("99999999999999999999999999", 4294967296000ULL);
    OK("Sun, 06 Nov 1994 08:49:37 GMT", 0);
    OK("Sun, 06 Nov 1994 08:50:37 GMT", 60000);
    OK("Sat, 05 Nov 1994 08:49:37 GMT", 0); /* past: at once */
    OK("Mon, 07 Nov 1994 08:49:37 GMT", 86400000);
    OK("Thu, 29 Feb 1996 00:00:00 GMT", (uint64_t)(825552000 - now) * 1000);
    OK("Sat, 01 Jan 2000 00:00:00 GMT", (uint64_t)(946684800 - now) * 1000);
    OK("Sun, 06 Nov 1994 08:49:60 GMT", 23000); /* a leap second */
    NO("");
    NO(" ");
    NO("-1");
    NO("1.5");
    NO("1s");
    NO("0x10");
    NO("soon");
    NO("Sunday, 06-Nov-94 08:49:37 GMT"); /* RFC 850 */
    NO("Sun Nov  6 08:49:37 1994");       /* asctime */
    NO("Sun, 06 Nov 1994 08:49:37 UTC");
    NO("Sun, 6 Nov 1994 08:49:37 GMT");
    NO("Sun, 06 nov 1994 08:49:37 GMT");
    NO("Xyz, 06 Nov 1994 08:49:37 GMT");
    NO("Sun, 31 Nov 1994 08:49:37 GMT");
    NO("Sun, 29 Feb 1900 08:49:37 GMT");
    NO("Sun, 00 Nov 1994 08:49:37 GMT");
    NO("Sun, 06 Nov 1994 24:00:00 GMT");
    NO("Sun, 06 Nov 1994 08:60:00 GMT");
    NO("Sun, 06 Nov 1994 08:49:61 GMT");
    NO("Sun, 06 Nov 19a4 08:49:37 GMT");
    NO("Sun, 06 Nov 1994 08:49:37 GMTx");
#undef OK
#undef NO
    /* not NUL-terminated: only n bytes are read */
    assert_int_equal(weft_http_retry_after_parse("12345", 2, now, &ms), 0);
    assert_int_equal(ms, 12000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
