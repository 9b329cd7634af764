/* record.c: the relay's recording directory (events.log, conn-<n>.raw, msg-<n>.{data,env}). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay.h"

static const char *record_dir;
static int events_fd = -1;
static unsigned msg_count;
static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;

static bool write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

bool record_init(const char *dir)
{
    char path[PATH_MAX];
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        warnx_relay("%s: %s", dir, strerror(errno));
        return false;
    }
    record_dir = dir;
    snprintf(path, sizeof path, "%s/events.log", dir);
    events_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (events_fd < 0) {
        warnx_relay("%s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

void record_event(const char *fmt, ...)
{
    if (!record_dir)
        return; /* --sink */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    pthread_mutex_lock(&record_lock);
    write_all(events_fd, line, (size_t)n);
    pthread_mutex_unlock(&record_lock);
}

int record_open_raw(unsigned n)
{
    if (!record_dir)
        return -1; /* --sink */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/conn-%u.raw", record_dir, n);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        warnx_relay("%s: %s", path, strerror(errno));
    return fd;
}

void record_raw(int fd, const void *p, size_t n)
{
    if (fd >= 0)
        write_all(fd, p, n);
}

/* Writes DIR/NAME through a temporary file, so the name appears only once complete. */
static void write_file(const char *name, const char *head, const struct buf *body)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/%s", record_dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        warnx_relay("%s: %s", tmp, strerror(errno));
        return;
    }
    bool ok = write_all(fd, head, strlen(head)) && write_all(fd, body->p ? body->p : "", body->len);
    if (close(fd) < 0 || !ok || rename(tmp, path) < 0)
        warnx_relay("%s: write failed: %s", path, strerror(errno));
}

unsigned record_message(const char *user, const struct buf *env, const struct buf *payload)
{
    if (!record_dir)
        return 0; /* --sink */
    char name[64], head[600];
    pthread_mutex_lock(&record_lock);
    unsigned n = ++msg_count;
    pthread_mutex_unlock(&record_lock);
    snprintf(name, sizeof name, "msg-%u.data", n);
    write_file(name, "", payload);
    snprintf(name, sizeof name, "msg-%u.env", n);
    snprintf(head, sizeof head, "AUTH %s\n", user);
    write_file(name, head, env);
    return n;
}
