/* smtp_info: what operators' records take from SMTP text: the relay's queue id in its verdict on a message, and
 * the user name in a client's SASL response; pure functions (no I/O, no logging). */
#ifndef LIVERY_SMTP_INFO_H
#define LIVERY_SMTP_INFO_H

#include <stdbool.h>
#include <stddef.h>

/* Copies the queue id out of a relay's reply text (one line, no code): the word after
 * "queued as" (Postfix, SendGrid and most MTAs), else the value of "id=", else the first
 * "<...>" token, else the last word when the text is "Ok"/"OK" and one word (Amazon SES's
 * "Ok <id>"). Ids are at most cap-1 printable octets without spaces; false when none. */
bool smtp_info_queue_id(const char *text, char *out, size_t cap);

/* The authentication identity in a SASL PLAIN response (base64 of authzid NUL authcid NUL
 * password): authcid, never the password. False when it does not decode as PLAIN. */
bool smtp_info_plain_user(const char *b64, size_t len, char *out, size_t cap);

/* The user name in a SASL LOGIN response (base64 of the name). */
bool smtp_info_login_user(const char *b64, size_t len, char *out, size_t cap);

#endif
