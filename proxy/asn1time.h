/* asn1time: X.509 validity times (UTCTime and GeneralizedTime text) as Unix seconds, with no time zone. */
#ifndef LIVERY_ASN1TIME_H
#define LIVERY_ASN1TIME_H

#include <stdbool.h>
#include <stddef.h>

/* Parses RFC 5280's forms: "YYMMDDHHMMSSZ" (UTCTime; YY < 50 is 20YY) and "YYYYMMDDHHMMSSZ"
 * (GeneralizedTime), in UTC. Sets *out and returns true, or returns false for any other text
 * (a missing Z, fractional seconds, an offset, a field out of range). Pure: the process's TZ
 * plays no part, unlike mktime() or wolfSSL_ASN1_TIME_to_tm(), which shifts an hour across DST. */
bool asn1time_parse(const unsigned char *s, size_t len, long long *out);

#endif
