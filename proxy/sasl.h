/* sasl: SASL PLAIN and LOGIN credentials for local authentication: decoding the client's responses into a
 * user name and password, encoding livery's own for the relay, and the auth_domains rule; pure functions. */
#ifndef LIVERY_SASL_H
#define LIVERY_SASL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest user name and password livery accepts (PLAIN's whole response is at most 1 KiB). */
#define SASL_FIELD_MAX 512

/* A PLAIN response (base64 of authzid NUL authcid NUL password): the authcid and the password,
 * NUL-terminated. False when it does not decode, a field is empty or too long, or the authzid
 * names someone else (livery authorizes nobody as another user). */
bool sasl_plain_decode(const char *b64, size_t len, char *user, size_t ucap, char *pass, size_t pcap);

/* A LOGIN response (base64 of one text without NUL octets), NUL-terminated into out. */
bool sasl_login_decode(const char *b64, size_t len, char *out, size_t cap);

/* The PLAIN initial response for user and password (NUL-terminated base64); false when out is
 * too small. */
bool sasl_plain_encode(const char *user, const char *pass, char *out, size_t cap);

/* The base64 of text, NUL-terminated; false when out is too small. */
bool sasl_b64_encode(const char *text, char *out, size_t cap);
/* Decodes base64 into buf (callers wipe it: it may hold a password); the decoded length, or -1
 * when invalid or longer than cap. */
long sasl_b64_decode(const char *b64, size_t len, unsigned char *buf, size_t cap);

/* Whether a client's SASL response is base64 in form (RFC 4648 alphabet, whole quanta, padding
 * only at the end), or "=" or empty (a zero-length response, RFC 4954 4). A response that fails
 * to decode but passes this says nothing a client may be told apart from bad credentials
 * (535); one that fails this cannot be decoded at all (501). */
bool sasl_b64_valid(const char *b64, size_t len);

/* auth_domains: true when there are none, or user is "local@domain" with domain one of them
 * (case-insensitively; domains are normalised to lower case by config). */
bool sasl_domain_allowed(const char *user, char *const *domains, size_t n);

#endif
