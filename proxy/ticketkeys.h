/* ticketkeys: the session-ticket key file's format (one base64 key per line, the current one first),
 * parsed from text in memory; no I/O. */
#ifndef LIVERY_TICKETKEYS_H
#define LIVERY_TICKETKEYS_H

#include <stdbool.h>
#include <stddef.h>

/* Keys a file may hold: the current one and up to seven previous ones. */
#define TICKETKEYS_MAX 8
/* A key is the base64 of this many random octets or more (openssl rand -base64 48)... */
#define TICKETKEYS_MIN_LEN 32
/* ... and at most this many (nginx's 80-octet key files, base64-encoded, fit). */
#define TICKETKEYS_MAX_LEN 80

struct ticketkeys {
	unsigned n; /* 0: none */
	struct {
		unsigned char octets[TICKETKEYS_MAX_LEN];
		size_t len;
	} key[TICKETKEYS_MAX]; /* key[0] encrypts new tickets; all of them decrypt */
};

/* Parses text (not NUL-terminated): blank lines and lines starting with '#' are skipped; every
 * other line is one key, base64 (standard alphabet, padding optional, surrounding spaces and a
 * CR ignored). False with *line the 1-based line at fault (0: the file as a whole) and a
 * message in err that never quotes the file's content. */
bool ticketkeys_parse(const char *text, size_t len, struct ticketkeys *out, int *line, char *err,
                      size_t errlen);
/* Overwrites the keys with zeros. */
void ticketkeys_wipe(struct ticketkeys *k);

#endif
