/* smtp_proto: the pure SMTP grammar (commands, replies, EHLO keywords, DATA end scanning, reply scrubbing); no I/O, no logging. */
#ifndef LIVERY_SMTP_PROTO_H
#define LIVERY_SMTP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iobuf.h"

/* RFC 5321 4.5.3.1.4 allows 512 octets per command line; RFC 4954 4 allows 12288 for AUTH. */
#define SMTP_CMD_LINE_MAX 512
#define SMTP_AUTH_LINE_MAX 12288
#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_REPLY_MAX_LINES 64

enum smtp_verb {
	SMTP_UNKNOWN,
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_STARTTLS,
	SMTP_AUTH,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_BDAT,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_VRFY,
	SMTP_EXPN,
	SMTP_HELP,
	SMTP_VERB_COUNT
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg; /* after the verb and its separating spaces; not NUL-terminated */
	size_t arg_len;
};

enum smtp_parse_result { SMTP_PARSE_OK, SMTP_PARSE_EMPTY, SMTP_PARSE_NUL };

/* Length of the line without its trailing CRLF (or bare LF). */
size_t smtp_line_strip(const char *line, size_t len);
/* Parses one command line (terminator already stripped). */
enum smtp_parse_result smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);
const char *smtp_verb_name(enum smtp_verb verb);

/* A reply assembled from one or more lines; lines[] hold the text after "NNN-"/"NNN ". */
struct smtp_reply {
	int code;
	size_t nlines;
	char *lines[SMTP_REPLY_MAX_LINES];
};

enum smtp_reply_status { SMTP_REPLY_MORE, SMTP_REPLY_DONE, SMTP_REPLY_BAD };

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_clear(struct smtp_reply *r);
/* Feeds one reply line (terminator already stripped). After DONE or BAD, clear before reuse. */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len);
/* Length of a leading enhanced status code "c.s.d " (RFC 3463) in text, 0 if none. */
size_t smtp_enhanced_code_len(const char *text);

/* Appends a reply to out: every line but the last as "NNN-text", the last as "NNN text". */
void smtp_reply_append(struct iobuf *out, int code, const char *const *lines, size_t nlines);
/* Appends a one-line reply built like printf. */
void smtp_reply_appendf(struct iobuf *out, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* What a server announced in its EHLO reply. */
struct smtp_caps {
	bool starttls, pipelining, eightbitmime, smtputf8, chunking, enhanced;
	bool auth_plain, auth_login;
	bool has_size;
	uint64_t size; /* 0 with has_size: no fixed limit */
};

void smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *caps);

/* AUTH argument: mechanism and optional initial response. */
struct smtp_auth_arg {
	const char *mech;
	size_t mech_len;
	const char *initial; /* NULL when absent */
	size_t initial_len;
};

bool smtp_auth_parse(const char *arg, size_t len, struct smtp_auth_arg *out);
/* True when arg names the mechanism case-insensitively. */
bool smtp_auth_is(const struct smtp_auth_arg *a, const char *mech);
/* Finds SIZE=n among MAIL FROM parameters. Returns false when absent or malformed. */
bool smtp_mail_size_param(const char *arg, size_t len, uint64_t *size);
/* Parses "BDAT <size> [LAST]". */
bool smtp_bdat_parse(const char *arg, size_t len, uint64_t *size, bool *last);

/* Incremental scanner for the end of a DATA body (CRLF "." CRLF, where the body start counts
 * as a line start), also noting bare CR and bare LF for smuggling defences. */
struct smtp_data_scan {
	int state;
	uint64_t bytes;
	bool bare_lf, bare_cr;
};

void smtp_data_scan_init(struct smtp_data_scan *s);
/* Scans buf; returns the number of bytes belonging to the body (including the terminating
 * ".\r\n" when *done is set). Bytes after it are not part of the message. */
size_t smtp_data_scan(struct smtp_data_scan *s, const char *buf, size_t len, bool *done);

/* Returns a new string: text with every space-separated word that contains one of words[]
 * (case-insensitively) replaced by replacement. */
char *smtp_scrub(const char *text, const char *const *words, size_t nwords, const char *replacement);

#endif
