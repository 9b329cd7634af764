/* certdir_watch: watches certificate directories with inotify (uv_fs_event) and, 2 s after the
 * last change, reports which of them changed; knows nothing of certificates. */
#ifndef LIVERY_CERTDIR_WATCH_H
#define LIVERY_CERTDIR_WATCH_H

#include <stddef.h>
#include <uv.h>

#define CERTDIR_WATCH_DEBOUNCE_MS 2000

struct certdir_watch;

/* Watches each of dirs (and, for certbot's layout, live/ and each live/<name>/ under it).
 * When changes stop for CERTDIR_WATCH_DEBOUNCE_MS, logs "certificates under DIR changed" for
 * each directory that changed, then calls on_change(arg) once, from the loop. */
struct certdir_watch *certdir_watch_start(uv_loop_t *loop, const char *const *dirs, size_t ndirs,
                                          void (*on_change)(void *arg), void *arg);
/* Closes the watch's handles; it frees itself once they are closed. */
void certdir_watch_stop(struct certdir_watch *w);
/* For a loop that closed every handle itself (uv_walk) and has run since: frees the memory. */
void certdir_watch_free_closed(struct certdir_watch *w);

#endif
