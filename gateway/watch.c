/*
 * watch.c: optional polling of the files a generation was built from (watch_files =
 * seconds). cert-manager, Vault agents and Kubernetes secret volumes replace certificates
 * and CRLs on disk, often by swapping a symlink; stat() follows it, so a new inode, mtime
 * or size of the file in use triggers the very same reload as SIGHUP (build, check, swap;
 * the old generation keeps serving on any error). Polling rather than inotify: it sees
 * symlink swaps in any directory and needs no descriptor per watched directory.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gw.h"

#define WATCH_IDLE_MS 5000 /* how often a disabled watcher checks whether it was enabled */

struct watch_file {
	char *path;
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct gw_watch {
	struct gw_main *m; /* borrowed */
	void (*reload)(struct gw_main *m);
	struct event *timer;
	struct watch_file *v;
	size_t n;
};

static void watch_file_stat(struct watch_file *f)
{
	struct stat st;
	f->exists = stat(f->path, &st) == 0;
	if (!f->exists)
		return;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtime = st.st_mtim;
	f->ctime = st.st_ctim;
}

static bool watch_file_differs(const struct watch_file *a, const struct watch_file *b)
{
	if (a->exists != b->exists)
		return true;
	return a->exists &&
	       (a->dev != b->dev || a->ino != b->ino || a->size != b->size ||
	        a->mtime.tv_sec != b->mtime.tv_sec || a->mtime.tv_nsec != b->mtime.tv_nsec ||
	        a->ctime.tv_sec != b->ctime.tv_sec || a->ctime.tv_nsec != b->ctime.tv_nsec);
}

static void watch_clear(struct gw_watch *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].path);
	free(w->v);
	w->v = NULL;
	w->n = 0;
}

static const struct watch_file *watch_find(const struct gw_watch *w, const char *path)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->v[i].path, path) == 0)
			return &w->v[i];
	return NULL;
}

/*
 * Stats every file of the generation in service into a new table. Returns the first
 * file that changed since the previous table, or NULL; a file new to the table (after a
 * reload that added it) only starts being watched.
 */
static char *watch_scan(struct gw_watch *w, const struct conf_snapshot *cfg, bool *oom)
{
	struct watch_file *v = calloc(cfg->n_files + 1, sizeof(*v));
	char *changed = NULL;

	*oom = v == NULL;
	for (size_t i = 0; v && i < cfg->n_files; i++) {
		v[i].path = strdup(cfg->files[i]);
		if (!v[i].path) {
			*oom = true;
			break;
		}
		watch_file_stat(&v[i]);
		const struct watch_file *old = watch_find(w, v[i].path);
		if (old && !changed && watch_file_differs(old, &v[i]))
			changed = strdup(v[i].path);
	}
	if (*oom) {
		for (size_t i = 0; v && i < cfg->n_files; i++)
			free(v[i].path);
		free(v);
		free(changed);
		return NULL;
	}
	watch_clear(w);
	w->v = v;
	w->n = cfg->n_files;
	return changed;
}

static void watch_arm(struct gw_watch *w)
{
	uint32_t ms = w->m->gen->cfg->watch_ms ? w->m->gen->cfg->watch_ms : WATCH_IDLE_MS;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_add(w->timer, &tv);
}

static void watch_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gw_watch *w = arg;
	const struct conf_snapshot *cfg = w->m->gen->cfg;
	bool oom = false;

	if (w->m->stopping)
		return;
	if (cfg->watch_ms == 0) {
		watch_clear(w); /* re-enabled later: start from a fresh table, no stale trigger */
		watch_arm(w);
		return;
	}
	char *changed = watch_scan(w, cfg, &oom);
	if (oom)
		gw_log(GW_LOG_ERR, "watch: out of memory; files not checked this time");
	if (changed) {
		gw_log(GW_LOG_INFO, "watch: %s changed; reloading", changed);
		free(changed);
		w->reload(w->m);
		/* The new generation may list other files; its first scan adopts them. */
	}
	watch_arm(w);
}

struct gw_watch *gw_watch_new(struct gw_main *m, void (*reload)(struct gw_main *m))
{
	struct gw_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->m = m;
	w->reload = reload;
	w->timer = evtimer_new(m->base, watch_tick, w);
	if (!w->timer) {
		free(w);
		return NULL;
	}
	/* The table of the first generation is taken now, so a change before the first tick
	 * is seen too. */
	bool oom = false;
	if (m->gen->cfg->watch_ms)
		free(watch_scan(w, m->gen->cfg, &oom));
	watch_arm(w);
	return w;
}

void gw_watch_free(struct gw_watch *w)
{
	if (!w)
		return;
	event_free(w->timer);
	watch_clear(w);
	free(w);
}
