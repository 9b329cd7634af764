/* certdir_watch: watches certificate directories with inotify (uv_fs_event) and, 2 s after the
 * last change, reports which of them changed; knows nothing of certificates. */
#include "certdir_watch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "certdir.h"
#include "log.h"
#include "util.h"

/* One inotify watch; freed from its close callback. */
struct watch_handle {
	uv_fs_event_t ev;
	struct certdir_watch *owner;
	size_t root; /* index of the configured directory it belongs to */
};

struct watch_root {
	char *dir;
	struct watch_handle **handles;
	size_t nhandles;
	bool changed;
};

struct certdir_watch {
	uv_loop_t *loop;
	uv_timer_t debounce;
	struct watch_root *roots;
	size_t nroots;
	void (*on_change)(void *arg);
	void *arg;
	unsigned pending_closes;
	bool stopping;
};

static void maybe_free(struct certdir_watch *w)
{
	if (!w->stopping || w->pending_closes > 0)
		return;
	for (size_t i = 0; i < w->nroots; i++) {
		free(w->roots[i].dir);
		free(w->roots[i].handles);
	}
	free(w->roots);
	free(w);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct watch_handle *wh = container_of((uv_fs_event_t *)h, struct watch_handle, ev);
	struct certdir_watch *w = wh->owner;

	free(wh);
	w->pending_closes--;
	maybe_free(w);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct certdir_watch *w = container_of((uv_timer_t *)h, struct certdir_watch, debounce);

	w->pending_closes--;
	maybe_free(w);
}

/* Closes root's inotify watches (each frees itself once closed). */
static void unwatch_root(struct certdir_watch *w, struct watch_root *r)
{
	for (size_t i = 0; i < r->nhandles; i++) {
		w->pending_closes++;
		uv_close((uv_handle_t *)&r->handles[i]->ev, on_handle_closed);
	}
	free(r->handles);
	r->handles = NULL;
	r->nhandles = 0;
}

static void on_event(uv_fs_event_t *ev, const char *name, int events, int status);

/* Watches root's directory and the certbot subdirectories it has now; a directory that cannot
 * be watched (gone, no permission) is logged and left out. */
static void watch_root(struct certdir_watch *w, size_t root)
{
	struct watch_root *r = &w->roots[root];
	char **dirs = certdir_watch_dirs(r->dir);

	for (size_t i = 0; dirs[i]; i++) {
		struct watch_handle *wh = xcalloc(1, sizeof(*wh));
		wh->owner = w;
		wh->root = root;
		uv_fs_event_init(w->loop, &wh->ev);
		int rc = uv_fs_event_start(&wh->ev, on_event, dirs[i], 0);
		if (rc < 0) {
			log_warn("cert_dir: cannot watch %s: %s", dirs[i], uv_strerror(rc));
			w->pending_closes++;
			uv_close((uv_handle_t *)&wh->ev, on_handle_closed);
			continue;
		}
		r->handles = xrealloc(r->handles, (r->nhandles + 1) * sizeof(*r->handles));
		r->handles[r->nhandles++] = wh;
	}
	certdir_free_strv(dirs);
}

/* Changes have settled. The set of directories is taken again, since certbot may have added
 * a live/<name>/ for a new certificate. */
static void on_debounce(uv_timer_t *t)
{
	struct certdir_watch *w = container_of(t, struct certdir_watch, debounce);

	for (size_t i = 0; i < w->nroots; i++) {
		if (!w->roots[i].changed)
			continue;
		w->roots[i].changed = false;
		log_info("certificates under %s changed", w->roots[i].dir);
		unwatch_root(w, &w->roots[i]);
		watch_root(w, i);
	}
	w->on_change(w->arg);
}

static void on_event(uv_fs_event_t *ev, const char *name, int events, int status)
{
	struct watch_handle *wh = container_of(ev, struct watch_handle, ev);
	struct certdir_watch *w = wh->owner;

	(void)events;
	/* Hidden entries are never read as certificates: ACME's state directory (.acme) and the
	 * temporary files of an atomic write change without changing what certdir finds. */
	if (name && name[0] == '.' && status == 0)
		return;
	log_debug("cert_dir %s: %s changed (status %d)", w->roots[wh->root].dir, name ? name : "?", status);
	w->roots[wh->root].changed = true;
	uv_timer_start(&w->debounce, on_debounce, CERTDIR_WATCH_DEBOUNCE_MS, 0);
}

struct certdir_watch *certdir_watch_start(uv_loop_t *loop, const char *const *dirs, size_t ndirs,
                                          void (*on_change)(void *arg), void *arg)
{
	struct certdir_watch *w = xcalloc(1, sizeof(*w));

	w->loop = loop;
	w->on_change = on_change;
	w->arg = arg;
	w->roots = xcalloc(ndirs ? ndirs : 1, sizeof(*w->roots));
	w->nroots = ndirs;
	uv_timer_init(loop, &w->debounce);
	for (size_t i = 0; i < ndirs; i++) {
		w->roots[i].dir = xstrdup(dirs[i]);
		watch_root(w, i);
	}
	return w;
}

void certdir_watch_stop(struct certdir_watch *w)
{
	if (!w)
		return;
	w->stopping = true;
	for (size_t i = 0; i < w->nroots; i++)
		unwatch_root(w, &w->roots[i]);
	w->pending_closes++;
	uv_close((uv_handle_t *)&w->debounce, on_timer_closed);
}

void certdir_watch_free_closed(struct certdir_watch *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->nroots; i++) {
		for (size_t k = 0; k < w->roots[i].nhandles; k++)
			free(w->roots[i].handles[k]);
	}
	w->stopping = true;
	w->pending_closes = 0;
	maybe_free(w);
}
