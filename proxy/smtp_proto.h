/* smtp_proto: the pure SMTP grammar (commands, replies, EHLO keywords, DATA end scanning, reply scrubbing);
 * no I/O, no logging. */
#ifndef LIVERY_SMTP_PROTO_H
#define LIVERY_SMTP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iobuf.h"

/* RFC 5321 4.5.3.1.4 allows 512 octets per command line; RFC 4954 4 allows 12288 for AUTH. */
#define SMTP_CMD_LINE_MAX    512
#define SMTP_AUTH_LINE_MAX   12288
#define SMTP_REPLY_LINE_MAX  4096
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

enum smtp_parse_result { SMTP_PARSE_OK, SMTP_PARSE_EMPTY, SMTP_PARSE_NUL, SMTP_PARSE_CR };

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

/* What to do with a bare CR or LF in message content (SMTP smuggling defence). */
enum smtp_bare_policy { SMTP_BARE_REJECT, SMTP_BARE_NORMALIZE };

/* RFC 5321 4.5.3.1.6: a text line is at most 998 octets plus CRLF. */
#define SMTP_TEXT_LINE_MAX 998

/* Filters message content on its way to the relay. DATA mode finds the end of data: only
 * the client's own CRLF "." CRLF ends it (the body start counting as a line start), in
 * either policy, so a client cannot end a message where a receiver that takes bare line
 * ends as line ends would not (SMTP smuggling). With REJECT, output stops for good (halted)
 * at the first bare CR or LF, so the relay never receives one; with NORMALIZE, each bare CR
 * or LF goes out as CRLF, and a "." that starts a line so created is dot-stuffed, whatever
 * ends that line, so it never ends the message and the relay finds the end of data exactly
 * where this filter does. Chunked (BDAT) mode has no end marker and no dot rules, and emits
 * a CR at once (chunk sizes are fixed); only REJECT applies to it. A line over
 * SMTP_TEXT_LINE_MAX octets halts output too, and so does a NUL octet unless allow_nul is
 * set after init. The owner may set halted itself (e.g. for size) and the filter keeps
 * scanning for the end. */
struct smtp_data_filter {
	int state;
	enum smtp_bare_policy policy;
	bool chunked;
	bool halted;
	bool bare;      /* a bare CR or LF was seen */
	bool long_line; /* a line was longer than SMTP_TEXT_LINE_MAX */
	bool nul;       /* a NUL octet was seen (and refused) */
	bool allow_nul; /* forward NUL octets instead (false after init) */
	size_t line_len;
	uint64_t bytes; /* input bytes consumed */
};

void smtp_data_filter_init(struct smtp_data_filter *f, enum smtp_bare_policy policy, bool chunked);
/* Consumes input up to and including the end of data (then *done is set) and appends what
 * may be forwarded to out. Returns the number of input bytes consumed. */
size_t smtp_data_filter(struct smtp_data_filter *f, const char *in, size_t len, struct iobuf *out,
                        bool *done);
/* Chunked mode: true when the content so far ends in a CR whose LF has not come. */
bool smtp_data_filter_cr_pending(const struct smtp_data_filter *f);

/* Returns a new string: text with every space-separated word that contains one of words[]
 * (case-insensitively) replaced by replacement; adjacent replaced words (and a replaced word
 * next to the replacement itself) collapse into one. */
char *smtp_scrub(const char *text, const char *const *words, size_t nwords, const char *replacement);

#endif
