/* asn1time: X.509 validity times (UTCTime and GeneralizedTime text) as Unix seconds, with no time zone. */
#include "asn1time.h"

/* The number read from N decimal digits at S, or -1 if one of them is not a digit. */
static int asn1time_digits(const unsigned char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static bool asn1time_leap(long long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to Y-M-D of the proleptic Gregorian calendar (Howard Hinnant's algorithm). */
static long long asn1time_days(long long y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

bool asn1time_parse(const unsigned char *s, size_t len, long long *out)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int ylen = len == 13 ? 2 : len == 15 ? 4 : 0;

	if (!s || !ylen || s[len - 1] != 'Z')
		return false;
	long long y = asn1time_digits(s, ylen);
	const unsigned char *p = s + ylen;
	int mo = asn1time_digits(p, 2), d = asn1time_digits(p + 2, 2);
	int h = asn1time_digits(p + 4, 2), mi = asn1time_digits(p + 6, 2), sec = asn1time_digits(p + 8, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 ||
	    sec > 59)
		return false;
	if (ylen == 2)
		y += y < 50 ? 2000 : 1900;
	if (d > mdays[mo - 1] + (mo == 2 && asn1time_leap(y)))
		return false;
	*out = asn1time_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	return true;
}
