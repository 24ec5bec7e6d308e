/* Long-double arithmetic for INCRBYFLOAT and HINCRBYFLOAT.
 *
 * Redis computes these in C `long double` (80-bit extended on x86-64) and
 * prints the result with "%.17Lf", trailing zeros removed. Rust has no such
 * type, and doing the sum in f64 prints different digits (0.1 + 0.2), so the
 * sum and its formatting are done here, in the C compiler's long double. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDOUBT_LD_MAX 5120

/* Parses the whole of s (no leading space, no trailing bytes, no NaN, no
 * overflow). Returns 1 on success. */
static int parse_ld(const char *s, size_t len, long double *out)
{
    char buf[REDOUBT_LD_MAX];
    char *end;
    long double v;

    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (isspace((unsigned char)buf[0]))
        return 0;
    errno = 0;
    v = strtold(buf, &end);
    if (*end != '\0' || (size_t)(end - buf) != len || errno == ERANGE || isnan(v))
        return 0;
    *out = v;
    return 1;
}

/* out = a + b. Returns 0 on success, 1 if a is not a number, 2 if b is
 * not, 3 if the sum is NaN or infinite, 4 if it does not fit in out. */
int redoubt_ld_add(const char *a, size_t alen, const char *b, size_t blen,
                   char *out, size_t outlen, size_t *written)
{
    long double x, y, r;
    int n;

    if (!parse_ld(b, blen, &y))
        return 2;
    if (!parse_ld(a, alen, &x))
        return 1;
    r = x + y;
    if (isnan(r) || isinf(r))
        return 3;
    n = snprintf(out, outlen, "%.17Lf", r);
    if (n < 0 || (size_t)n >= outlen)
        return 4;
    if (memchr(out, '.', (size_t)n) != NULL) {
        while (n > 0 && out[n - 1] == '0')
            n--;
        if (n > 0 && out[n - 1] == '.')
            n--;
    }
    if (n == 2 && out[0] == '-' && out[1] == '0') {
        out[0] = '0';
        n = 1;
    }
    *written = (size_t)n;
    return 0;
}
