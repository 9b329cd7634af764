/* records: one line per session end and per message, for operators: a JSON object (jansson) or, with
 * log_format = "text", a human line with a timestamp; gathered and written to stdout or to log_file once
 * per loop turn, reopened on request. Plain data in, no protocol decisions. */
#include "records.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "iobuf.h"
#include "log.h"
#include "util.h"

static int out_fd = STDOUT_FILENO;
static char *out_path;
static enum records_format out_format = RECORDS_JSON;
/* Records made since the last flush: written in one system call per event-loop turn (the
 * worker flushes before it polls), not one per record. */
static struct iobuf pending;
/* Past this, a flush happens at once. */
#define RECORDS_FLUSH_AT (64 * 1024)

/* RFC 3339 in UTC with milliseconds: 2026-12-06T07:30:00.123Z. */
static void timestamp(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static int open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

bool records_prepare(const char *path, int uid, int gid, char *err, size_t errlen)
{
	int fd = open_file(path);

	if (fd < 0 || fchown(fd, (uid_t)uid, (gid_t)gid) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	return true;
}

bool records_open(const char *path, enum records_format format, char *err, size_t errlen)
{
	out_format = format;
	if (!path)
		return true;
	int fd = open_file(path);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	out_fd = fd;
	out_path = xstrdup(path);
	return true;
}

void records_reopen(void)
{
	if (!out_path)
		return;
	records_flush(); /* what was made before the rotation goes to the old file */
	int fd = open_file(out_path);
	if (fd < 0) {
		log_error("cannot reopen %s: %s (records go on to the old file)", out_path, strerror(errno));
		return;
	}
	close(out_fd);
	out_fd = fd;
	log_info("reopened %s", out_path);
}

void records_close(void)
{
	records_flush();
	iobuf_free(&pending);
	if (out_path)
		close(out_fd);
	free(out_path);
	out_path = NULL;
	out_fd = STDOUT_FILENO;
}

/* Whole lines in one write(2) each time (O_APPEND), so lines from several worker processes
 * never interleave; a short write (a pipe) goes on from where it stopped. */
void records_flush(void)
{
	while (iobuf_avail(&pending) > 0) {
		ssize_t w = write(out_fd, iobuf_peek(&pending), iobuf_avail(&pending));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_error("records: write failed: %s (%zu octets dropped)", w < 0 ? strerror(errno) : "no progress",
			          iobuf_avail(&pending));
			break;
		}
		iobuf_consume(&pending, (size_t)w);
	}
	iobuf_clear(&pending);
}

static void line_done(void)
{
	iobuf_append(&pending, "\n", 1);
	if (iobuf_avail(&pending) >= RECORDS_FLUSH_AT)
		records_flush();
}

static int append_json(const char *buf, size_t size, void *data)
{
	iobuf_append(data, buf, size);
	return 0;
}

static void set_str(json_t *o, const char *key, const char *v)
{
	/* jansson refuses invalid UTF-8 (a relay's reply text may hold some): such a value is
	 * recorded as null rather than losing the record. */
	json_t *j = v ? json_string(v) : NULL;

	json_object_set_new(o, key, j ? j : json_null());
}

static void set_ms(json_t *o, const char *key, double ms)
{
	json_object_set_new(o, key, json_real((double)(long long)(ms * 1000) / 1000));
}

static json_t *relay_json(const struct upstream_info *r)
{
	json_t *o = json_object();

	set_str(o, "region", r->region);
	set_str(o, "host", r->host);
	set_str(o, "address", r->addr[0] ? r->addr : NULL);
	json_object_set_new(o, "tls", json_boolean(r->tls));
	set_str(o, "tls_version", r->tls ? r->tls_version : NULL);
	set_str(o, "cipher", r->tls ? r->cipher : NULL);
	json_object_set_new(o, "certificate_verified", json_boolean(r->verified && r->tls));
	json_object_set_new(o, "resumed", json_boolean(r->resumed));
	json_object_set_new(o, "pooled", json_boolean(r->reused));
	set_ms(o, "connect_ms", r->connect_ms);
	set_ms(o, "handshake_ms", r->handshake_ms);
	json_object_set_new(o, "bytes_in", json_integer((json_int_t)r->bytes_in));
	json_object_set_new(o, "bytes_out", json_integer((json_int_t)r->bytes_out));
	set_str(o, "failure", r->failure == UPSTREAM_OK ? NULL : upstream_failure_name(r->failure));
	return o;
}

/* Encodes o straight into the pending lines (o is released). */
static void emit_json(json_t *o)
{
	/* 15 significant digits: 0.075, not the 0.074999999999999997 that 17 would show. */
	if (json_dump_callback(o, append_json, &pending, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)))
		abort(); /* only allocation fails here */
	json_decref(o);
	line_done();
}

static void emit_text(char *line)
{
	iobuf_append(&pending, line, strlen(line));
	free(line);
	line_done();
}

/* The fields every record starts with. */
static json_t *record_head(const char *ts, const char *kind, const char *session)
{
	json_t *o = json_object();

	set_str(o, "ts", ts);
	set_str(o, "record", kind);
	set_str(o, "session", session);
	return o;
}

static json_t *session_json(const struct records_session *r, const char *ts)
{
	json_t *o = record_head(ts, "session", r->id);

	set_str(o, "listener", r->listener);
	set_str(o, "client", r->client);
	set_str(o, "sni", r->sni && r->sni[0] ? r->sni : NULL);
	set_str(o, "tenant", r->tenant);
	set_str(o, "brand", r->brand);
	json_object_set_new(o, "tls", json_boolean(r->tls_version != NULL));
	set_str(o, "tls_version", r->tls_version);
	set_str(o, "cipher", r->cipher);
	json_object_set_new(o, "resumed", json_boolean(r->tls_resumed));
	set_str(o, "user", r->user);
	set_str(o, "auth", r->auth);
	set_str(o, "end", r->end);
	set_str(o, "detail", r->detail);
	json_object_set_new(o, "messages", json_integer(r->messages));
	json_object_set_new(o, "bytes_in", json_integer((json_int_t)r->bytes_in));
	json_object_set_new(o, "bytes_out", json_integer((json_int_t)r->bytes_out));
	set_ms(o, "duration_ms", r->duration_ms);
	json_object_set_new(o, "relay", r->relay ? relay_json(r->relay) : json_null());
	return o;
}

static json_t *message_json(const struct records_message *r, const char *ts)
{
	json_t *o = record_head(ts, "message", r->session);

	set_str(o, "tenant", r->tenant);
	set_str(o, "user", r->user);
	set_str(o, "sender", r->sender);
	json_object_set_new(o, "recipients", json_integer(r->rcpts));
	json_object_set_new(o, "size", json_integer((json_int_t)r->size));
	json_object_set_new(o, "code", r->code ? json_integer(r->code) : json_null());
	set_str(o, "reply", r->reply);
	set_str(o, "by", r->by);
	set_str(o, "queue_id", r->queue_id);
	set_str(o, "limit", r->limit);
	json_object_set_new(o, "relay", r->relay ? relay_json(r->relay) : json_null());
	return o;
}

#define OR_DASH(s) ((s) && (s)[0] ? (s) : "-")

/* A value a client or relay chose, fit for one text line: control octets (a terminal escape,
 * a bare CR), DEL, '\\' and '"' are written \xHH, and so is a space when the value is not
 * between quotes, so a sender such as "a end=quit"@x cannot add a field of its own. */
static char *text_value(const char *s, bool quoted)
{
	size_t n = 0, len = s ? strlen(s) : 0;
	char *out = xmalloc(len * 4 + 1);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '\\' || c == '"' || (c == ' ' && !quoted))
			n += (size_t)sprintf(out + n, "\\x%02x", c);
		else
			out[n++] = (char)c;
	}
	out[n] = '\0';
	return out;
}

static char *session_text(const struct records_session *r, const char *ts)
{
	const struct upstream_info *u = r->relay;
	char *user = text_value(r->user, false), *detail = text_value(r->detail, true);
	char *line = xasprintf(
	        "%s session %s end=%s client=%s listener=%s sni=%s tenant=%s tls=%s%s%s user=%s "
	        "messages=%u in=%llu out=%llu duration_ms=%.0f relay=%s relay_tls=%s verified=%s "
	        "(%s)",
	        ts, r->id, r->end, r->client, r->listener, OR_DASH(r->sni), r->tenant,
	        OR_DASH(r->tls_version), r->cipher ? "/" : "", r->cipher ? r->cipher : "", OR_DASH(user),
	        r->messages, (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out,
	        r->duration_ms, u ? OR_DASH(u->addr) : "-", u && u->tls ? u->tls_version : "-",
	        u && u->tls && u->verified ? "yes" : "no", detail);

	free(user);
	free(detail);
	return line;
}

static char *message_text(const struct records_message *r, const char *ts)
{
	char *sender = text_value(r->sender, false), *reply = text_value(r->reply, true);
	char *line = xasprintf(
	        "%s message %s sender=%s recipients=%u size=%llu code=%d by=%s queue_id=%s limit=%s "
	        "reply=\"%s\"",
	        ts, r->session, OR_DASH(sender), r->rcpts, (unsigned long long)r->size, r->code, r->by,
	        OR_DASH(r->queue_id), OR_DASH(r->limit), reply);

	free(sender);
	free(reply);
	return line;
}

void records_session(const struct records_session *r)
{
	char ts[40];

	if (out_format == RECORDS_NONE)
		return;
	timestamp(ts, sizeof(ts));
	if (out_format == RECORDS_JSON)
		emit_json(session_json(r, ts));
	else
		emit_text(session_text(r, ts));
}

void records_message(const struct records_message *r)
{
	char ts[40];

	if (out_format == RECORDS_NONE)
		return;
	timestamp(ts, sizeof(ts));
	if (out_format == RECORDS_JSON)
		emit_json(message_json(r, ts));
	else
		emit_text(message_text(r, ts));
}
