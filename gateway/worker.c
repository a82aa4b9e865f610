/*
 * worker.c: the worker threads. Each has its own event_base and its own SO_REUSEPORT
 * listening sockets, so the kernel spreads connections and no lock is taken on the
 * request path. The main thread talks to a worker only through two events: "a new
 * generation is waiting" and "stop".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>

#include "gw.h"

struct gw_lis_ctx {
	struct gw_worker *w;
	unsigned idx;
};

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	struct gw_lis_ctx *ctx = arg;
	gw_conn_accept(ctx->w, ctx->idx, fd, sa, salen);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	/* Out of fds: relayd pauses accept; libevent retries on the next readiness. */
	gw_log(GW_LOG_WARN, "accept: %s", evutil_socket_error_to_string(err));
}

/* Runs in the worker: swap to the generation the main thread left in w->next. */
static void gen_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	pthread_mutex_lock(&w->lock);
	struct gw_gen *next = w->next;
	w->next = NULL;
	pthread_mutex_unlock(&w->lock);
	if (!next)
		return;
	struct gw_gen *old = w->gen;
	w->gen = next;
	gw_worker_pools_sync(w);
	gw_gen_unref(old);
}

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
	gw_conn_trim_idle(arg);
}

static void drain_check_cb(evutil_socket_t fd, short what, void *arg);

struct gw_drain {
	struct gw_worker *w;
	struct event *ev;
	uint64_t deadline;
};

/* Stop accepting, let requests in flight finish, close idle keep-alive connections. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	if (w->draining)
		return;
	w->draining = true;
	/* Close the listening sockets, not just stop watching them: with SO_REUSEPORT the
	 * kernel would go on completing handshakes into this socket's backlog, and those
	 * clients would hang until exit instead of being refused (or served by a peer). */
	for (size_t i = 0; i < w->n_listeners; i++) {
		evconnlistener_free(w->listeners[i]);
		w->listeners[i] = NULL;
	}
	gw_conn_close_idle(w);
	event_del(w->ev_trim);
	struct gw_drain *d = calloc(1, sizeof(*d));
	if (!d) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	d->w = w;
	d->deadline = gw_now_us() + (uint64_t)w->main->drain_ms * 1000u;
	d->ev = event_new(w->base, -1, EV_PERSIST, drain_check_cb, d);
	struct timeval tv = {0, 20000};
	event_add(d->ev, &tv);
}

static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_drain *d = arg;
	struct gw_worker *w = d->w;
	if (w->n_conns > 0 && gw_now_us() < d->deadline) {
		gw_conn_close_idle(w);
		return;
	}
	while (!TAILQ_EMPTY(&w->conns))
		gw_conn_close(TAILQ_FIRST(&w->conns), GW_SHUTDOWN);
	event_free(d->ev);
	free(d);
	event_base_loopexit(w->base, NULL);
}

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;
	event_base_dispatch(w->base);
	gw_worker_pools_free(w);
	return NULL;
}

/* Builds a worker's base and listeners on the sockets the main thread created. */
static int worker_init(struct gw_main *m, struct gw_worker *w, unsigned id)
{
	w->id = id;
	w->main = m;
	w->gen = gw_gen_ref(m->gen);
	TAILQ_INIT(&w->conns);
	if (!(w->metrics = gw_metrics_new()))
		return -1;
	pthread_mutex_init(&w->lock, NULL);
	/* With the changelist, the EV_WRITE add and delete that every bufferevent write makes
	 * within one loop iteration cancel out instead of costing two epoll_ctl calls each
	 * (6 per request without it). Safe here: the fds of a base are never dup()ed. */
	struct event_config *ecfg = event_config_new();
	if (!ecfg)
		return -1;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (!w->base)
		return -1;
	w->authn_cache = authn_cache_new(0);
	if (!w->authn_cache)
		return -1;
	w->ev_gen = event_new(w->base, -1, 0, gen_cb, w);
	w->ev_stop = event_new(w->base, -1, 0, stop_cb, w);
	w->ev_trim = event_new(w->base, -1, EV_PERSIST, trim_cb, w);
	struct timeval every = {0, GW_IDLE_TRIM_US};
	if (!w->ev_trim || event_add(w->ev_trim, &every) != 0)
		return -1;
	w->listeners = calloc(m->n_listen, sizeof(*w->listeners));
	struct gw_lis_ctx *ctx = calloc(m->n_listen, sizeof(*ctx));
	if (!w->ev_gen || !w->ev_stop || !w->listeners || !ctx)
		return -1;
	w->lis_ctx = ctx;
	for (size_t i = 0; i < m->n_listen; i++) {
		ctx[i].w = w;
		ctx[i].idx = (unsigned)i;
		w->listeners[i] = evconnlistener_new(
		    w->base, accept_cb, &ctx[i], LEV_OPT_CLOSE_ON_FREE, -1, m->listen_fds[i][id]);
		if (!w->listeners[i])
			return -1;
		m->listen_fds[i][id] = -1; /* owned by the listener now */
		evconnlistener_set_error_cb(w->listeners[i], accept_error_cb);
		w->n_listeners++;
	}
	gw_worker_pools_sync(w);
	return 0;
}

int gw_workers_start(struct gw_main *m)
{
	m->workers = calloc(m->n_workers, sizeof(*m->workers));
	if (!m->workers)
		return -1;
	for (unsigned i = 0; i < m->n_workers; i++)
		if (worker_init(m, &m->workers[i], i) != 0) {
			gw_log(GW_LOG_ERR, "worker %u: cannot initialise", i);
			return -1;
		}
	for (unsigned i = 0; i < m->n_workers; i++)
		if (pthread_create(&m->workers[i].thread, NULL, worker_main, &m->workers[i]) != 0)
			return -1;
	return 0;
}

/* Hands g to every worker (each takes its own reference). */
void gw_workers_publish(struct gw_main *m, struct gw_gen *g)
{
	for (unsigned i = 0; i < m->n_workers; i++) {
		struct gw_worker *w = &m->workers[i];
		pthread_mutex_lock(&w->lock);
		struct gw_gen *stale = w->next;
		w->next = gw_gen_ref(g);
		pthread_mutex_unlock(&w->lock);
		gw_gen_unref(stale);
		event_active(w->ev_gen, 0, 0);
	}
}

/* Asks every worker to drain and waits for them; then frees what they owned. */
void gw_workers_stop(struct gw_main *m)
{
	for (unsigned i = 0; i < m->n_workers; i++)
		event_active(m->workers[i].ev_stop, 0, 0);
	for (unsigned i = 0; i < m->n_workers; i++) {
		struct gw_worker *w = &m->workers[i];
		pthread_join(w->thread, NULL);
		for (size_t j = 0; j < w->n_listeners; j++)
			if (w->listeners[j])
				evconnlistener_free(w->listeners[j]);
		free(w->listeners);
		free(w->lis_ctx);
		gw_metrics_free(w->metrics);
		event_free(w->ev_gen);
		event_free(w->ev_stop);
		if (w->ev_trim)
			event_free(w->ev_trim);
		gw_gen_unref(w->next);
		gw_gen_unref(w->gen);
		event_base_free(w->base);
		authn_cache_free(w->authn_cache);
		pthread_mutex_destroy(&w->lock);
	}
	free(m->workers);
	m->workers = NULL;
}
