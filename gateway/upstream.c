/*
 * upstream.c: connections to backends. Each worker keeps, per server, a pool of idle
 * keep-alive TLS connections (with the last TLS session, to resume), a connection count
 * for max_connections, and per cluster a bounded queue of requests waiting for a slot.
 * A request picks a server among the usable ones (health.c: not down, not ejected;
 * backups only when no primary is), leases or opens a connection, and its response is
 * relayed to the client with backpressure. Failures before the backend can have acted
 * (connect, TLS, a connection closed before any answer for a replayable request) go to
 * the next server within max_attempts and retry_deadline; every outcome is reported to
 * the passive health of the server. Nothing here takes a lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>

#include <openssl/err.h>

#include "pki.h"
#include "upstream_int.h"

TAILQ_HEAD(gw_req_list, gw_req);

/* Requests of one cluster in one worker waiting for a connection slot (max_connections). */
struct gw_upq {
	struct gw_req_list q;
	unsigned n;
	struct event *ev; /* the head's deadline, or "a slot was freed" */
	struct gw_worker *w;
	unsigned cluster;
};

enum up_start_result { UP_STARTED, UP_REQUEUED, UP_FINISHED };

static void up_readcb(struct gw_stream *st, void *arg);
static void up_writecb(struct gw_stream *st, void *arg);
static void up_eventcb(struct gw_stream *st, short what, void *arg);
static int up_body_cb(void *ud, const char *at, size_t len);
static void up_timeout_cb(evutil_socket_t fd, short what, void *arg);
static enum up_start_result up_start(struct gw_req *r, bool from_queue);

static void up_timer_set(struct event *ev, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

static const struct conf_cluster *up_cluster(const struct gw_upconn *u)
{
	return &u->gen->cfg->clusters[u->cluster];
}

static struct gw_hstate *up_hs(const struct gw_upconn *u)
{
	return u->gen->hs[u->srv];
}

/* The worker's pool of u's server, or NULL when u belongs to an older generation. */
static struct gw_pool *up_pool(const struct gw_upconn *u)
{
	struct gw_worker *w = u->w;
	return w->pools && w->pools_gen == u->gen ? &w->pools[u->srv] : NULL;
}

/* ------------------------------------------------------------------ queue ---- */

/* A slot of cluster cl was freed: let the queue's callback try its head. */
static void upq_kick(struct gw_worker *w, unsigned cl)
{
	if (w->upq && w->upq[cl].n)
		event_active(w->upq[cl].ev, EV_TIMEOUT, 0);
}

static void upq_remove(struct gw_upq *q, struct gw_req *r)
{
	TAILQ_REMOVE(&q->q, r, up_qlink);
	q->n--;
	r->up_queued = false;
}

/* Arms the deadline of the oldest waiting request. */
static void upq_arm(struct gw_upq *q)
{
	struct gw_req *r = TAILQ_FIRST(&q->q);
	if (!r) {
		evtimer_del(q->ev);
		return;
	}
	uint64_t deadline = r->t_queued + (uint64_t)r->gen->cfg->timeouts.upstream_connect * 1000u;
	uint64_t now = gw_now_us();
	up_timer_set(q->ev, deadline > now ? (uint32_t)((deadline - now + 999) / 1000) : 0);
}

/* Times out the oldest requests, then starts waiting ones in order while slots last. */
static void upq_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upq *q = arg;
	uint64_t now = gw_now_us();
	struct gw_req *r;
	while ((r = TAILQ_FIRST(&q->q)) &&
	       now >= r->t_queued + (uint64_t)r->gen->cfg->timeouts.upstream_connect * 1000u) {
		upq_remove(q, r);
		gw_req_finish(r, 503, GW_NO_BACKEND, "upstream_queue_timeout");
	}
	/* Each waiting request is tried at most once per run; a request that finds no slot
	 * goes back to the head, and so would every one behind it. */
	for (unsigned n = q->n; n > 0 && (r = TAILQ_FIRST(&q->q)); n--) {
		upq_remove(q, r);
		if (up_start(r, true) == UP_REQUEUED)
			break;
	}
	upq_arm(q);
}

/* Queues r for a slot, or answers 503 when the queue is full. */
static enum up_start_result upq_add(struct gw_req *r, unsigned cl, bool from_queue)
{
	struct gw_worker *w = r->c->w;
	const struct conf_cluster *c = &r->gen->cfg->clusters[cl];
	struct gw_upq *q = w->upq ? &w->upq[cl] : NULL;
	if (!q || (!from_queue && q->n >= c->queue)) {
		gw_req_finish(r, 503, GW_NO_BACKEND, "upstream_queue_full");
		return UP_FINISHED;
	}
	if (from_queue) {
		TAILQ_INSERT_HEAD(&q->q, r, up_qlink);
	} else {
		TAILQ_INSERT_TAIL(&q->q, r, up_qlink);
		r->t_queued = gw_now_us();
	}
	q->n++;
	r->up_queued = true;
	if (!from_queue)
		upq_arm(q);
	return UP_REQUEUED;
}

void gw_upstream_req_done(struct gw_req *r)
{
	struct gw_worker *w = r->c->w;
	if (r->up_queued && w->upq)
		upq_remove(&w->upq[r->route->cluster], r);
}

/* --------------------------------------------------------- connections ---- */

/* u now works for r: counts toward least_outstanding and the status page. */
static void up_lease(struct gw_upconn *u, struct gw_req *r)
{
	struct gw_pool *pl = up_pool(u);
	u->req = r;
	r->up = u;
	if (pl)
		pl->outstanding++;
	gw_gauge_add(&up_hs(u)->outstanding, 1);
}

static void up_unlease(struct gw_upconn *u)
{
	struct gw_pool *pl = up_pool(u);
	if (!u->req)
		return;
	if (u->req->up == u)
		u->req->up = NULL;
	u->req = NULL;
	if (pl)
		pl->outstanding--;
	gw_gauge_add(&up_hs(u)->outstanding, -1);
}

/* Keeps the connection's session for the next connection to this server. With TLS 1.3
 * the resumable session arrives after the handshake, so this runs after a response. */
static void up_session_keep(struct gw_upconn *u)
{
	struct gw_pool *pl = up_pool(u);
	SSL_SESSION *s = u->ssl ? SSL_get0_session(u->ssl) : NULL;
	if (!pl || !s || s == pl->sess || !SSL_SESSION_is_resumable(s))
		return;
	SSL_SESSION_up_ref(s);
	SSL_SESSION_free(pl->sess);
	pl->sess = s;
}

static void up_free(struct gw_upconn *u)
{
	struct gw_pool *pl = up_pool(u);
	struct gw_hstate *h = up_hs(u);
	if (u->state == GW_UP_IDLE) {
		TAILQ_REMOVE(&pl->idle, u, link);
		pl->n_idle--;
		gw_gauge_add(&h->conns_idle, -1);
	}
	up_unlease(u);
	if (u->timer)
		event_free(u->timer);
	if (u->tcp_ev)
		event_free(u->tcp_ev);
	gw_stream_free(u->st); /* with close_notify, which keeps the session resumable */
	if (u->ssl_owned)
		SSL_free(u->ssl);
	if (u->fd >= 0)
		evutil_closesocket(u->fd);
	gw_parser_free(&u->ps);
	gw_gauge_add(&h->conns_open, -1);
	if (pl) {
		pl->n_open--;
		upq_kick(u->w, u->cluster);
	}
	free(u);
}

/* Takes every waiting request out of the queues (before the pools they wait on go). */
static void upq_take_all(struct gw_worker *w, struct gw_req_list *out)
{
	for (size_t c = 0; w->upq && c < w->pools_gen->cfg->n_clusters; c++) {
		struct gw_req *r;
		while ((r = TAILQ_FIRST(&w->upq[c].q))) {
			upq_remove(&w->upq[c], r);
			TAILQ_INSERT_TAIL(out, r, up_qlink);
		}
	}
}

/* Drops every idle connection, session and queue of the worker (generation change, exit). */
/* Pooled connections idle for a while give back their buffers (gw_conn_trim_idle). */
unsigned gw_worker_pools_trim(struct gw_worker *w)
{
	unsigned n = 0;
	if (!w->pools)
		return 0;
	uint64_t now = gw_now_us();
	for (size_t i = 0; i < w->pools_gen->n_servers_total; i++) {
		struct gw_upconn *u;
		TAILQ_FOREACH(u, &w->pools[i].idle, link)
		{
			if (u->trimmed || now - u->t_idle < GW_IDLE_TRIM_US)
				continue;
			gw_stream_trim(u->st);
			gw_parser_trim(&u->ps);
			u->trimmed = true;
			n++;
		}
	}
	return n;
}

void gw_worker_pools_free(struct gw_worker *w)
{
	if (!w->pools)
		return;
	struct gw_req_list left;
	struct gw_req *r;
	TAILQ_INIT(&left);
	upq_take_all(w, &left);
	while ((r = TAILQ_FIRST(&left))) {
		TAILQ_REMOVE(&left, r, up_qlink);
		gw_req_finish(r, 503, GW_SHUTDOWN, "upstream_queue_dropped");
	}
	size_t n = w->pools_gen->n_servers_total;
	for (size_t i = 0; i < n; i++) {
		while (!TAILQ_EMPTY(&w->pools[i].idle))
			up_free(TAILQ_FIRST(&w->pools[i].idle));
		SSL_SESSION_free(w->pools[i].sess);
	}
	for (size_t c = 0; w->upq && c < w->pools_gen->cfg->n_clusters; c++)
		if (w->upq[c].ev)
			event_free(w->upq[c].ev);
	free(w->pools);
	free(w->rr);
	free(w->upq);
	w->pools = NULL;
	w->rr = NULL;
	w->upq = NULL;
	w->pools_gen = NULL;
}

static int pools_alloc(struct gw_worker *w)
{
	size_t n = w->gen->n_servers_total, nc = w->gen->cfg->n_clusters;
	w->pools = calloc(n ? n : 1, sizeof(*w->pools));
	w->rr = calloc(nc ? nc : 1, sizeof(*w->rr));
	w->upq = calloc(nc ? nc : 1, sizeof(*w->upq));
	if (!w->pools || !w->rr || !w->upq)
		goto fail;
	for (size_t i = 0; i < n; i++)
		TAILQ_INIT(&w->pools[i].idle);
	for (size_t c = 0; c < nc; c++) {
		TAILQ_INIT(&w->upq[c].q);
		w->upq[c].w = w;
		w->upq[c].cluster = (unsigned)c;
		w->upq[c].ev = evtimer_new(w->base, upq_cb, &w->upq[c]);
		if (!w->upq[c].ev)
			goto fail;
	}
	w->pools_gen = w->gen;
	return 0;
fail:
	for (size_t c = 0; w->upq && c < nc; c++)
		if (w->upq[c].ev)
			event_free(w->upq[c].ev);
	free(w->pools);
	free(w->rr);
	free(w->upq);
	w->pools = NULL;
	w->rr = NULL;
	w->upq = NULL;
	return -1;
}

/*
 * Rebuilds the pools for the worker's current generation; old idle connections go.
 * Requests that were waiting for a slot start over under the new pools.
 */
void gw_worker_pools_sync(struct gw_worker *w)
{
	struct gw_req_list moved;
	struct gw_req *r;
	if (w->pools_gen == w->gen)
		return;
	TAILQ_INIT(&moved);
	if (w->pools)
		upq_take_all(w, &moved);
	gw_worker_pools_free(w);
	if (pools_alloc(w) != 0)
		gw_log(GW_LOG_ERR, "worker %u: out of memory for upstream pools", w->id);
	while ((r = TAILQ_FIRST(&moved))) {
		TAILQ_REMOVE(&moved, r, up_qlink);
		gw_upstream_start(r);
	}
}

/* ------------------------------------------------------------------- pick ---- */

/* No (further) attempt: answer with what the last attempt met, or 503 at once. */
static void up_give_up(struct gw_req *r)
{
	if (r->attempts == 0)
		gw_req_finish(r, 503, GW_NO_BACKEND, "no_healthy_upstream");
	else if (r->last_fail == GW_UPSTREAM_TLS)
		gw_req_finish(r, 502, GW_UPSTREAM_TLS, "upstream_tls_failed");
	else if (r->last_fail == GW_UPSTREAM_TIMEOUT)
		gw_req_finish(r, 504, GW_UPSTREAM_TIMEOUT, "upstream_connect_timeout");
	else if (r->last_fail == GW_UPSTREAM_PROTOCOL)
		gw_req_finish(r, 502, GW_UPSTREAM_PROTOCOL, "upstream_closed_early");
	else
		gw_req_finish(r, 503, GW_NO_BACKEND, "no_backend_available");
}

/* ----------------------------------------------------------------- attempt ---- */

/* Moves what the request queued so far onto the now-usable, leased connection. */
static void up_attach(struct gw_upconn *u)
{
	struct gw_req *r = u->req;
	u->state = GW_UP_ACTIVE;
	u->got_bytes = false;
	u->n_requests++;
	r->t_up = gw_now_us();
	gw_parser_reset(&u->ps);
	u->ps.skip_body = r->resp_head_req;
	u->ps.ud = r;
	evbuffer_add_buffer(gw_stream_output(u->st), r->pending);
	gw_stream_set_wlowat(u->st, GW_HIGH_WATER / 2);
	gw_stream_read(u->st, true);
	up_timer_set(u->timer, r->gen->cfg->timeouts.upstream_response);
	/* The client may have been paused while we connected. */
	if (r->c->read_paused && evbuffer_get_length(gw_stream_output(u->st)) < GW_HIGH_WATER)
		gw_conn_pause_read(r->c, false);
}

/*
 * One attempt failed before the backend could have produced a response: fail over if
 * the request can still be sent elsewhere unchanged, else answer with why. count says
 * whether the server is to blame (a pooled connection the backend closed while idle is
 * the keep-alive race, not a failure).
 */
static void up_attempt_failed(struct gw_upconn *u, enum gw_reason why, const char *detail,
                              bool count)
{
	struct gw_req *r = u->req;
	const struct conf_cluster *c = up_cluster(u);
	const struct conf_server *s = &c->servers[u->srv - u->gen->cluster_base[u->cluster]];
	gw_log(GW_LOG_WARN, "upstream %s/%s (%s) for request %s: %s: %s", c->name, s->address,
	       s->name, r ? r->id : "-", gw_reason_str(why), detail);
	if (count)
		gw_health_passive_fail(u->gen, u->cluster, u->srv, detail);
	bool sent_nothing = u->state == GW_UP_CONNECTING;
	up_free(u);
	if (!r)
		return;
	r->last_fail = why;
	if (!sent_nothing) {
		/* Rebuild the request from the replay copy, if it still holds all of it. */
		if (!r->replay_ok || r->resp_started) {
			gw_req_finish(r, 502, why, "upstream_closed_early");
			return;
		}
		evbuffer_drain(r->pending, evbuffer_get_length(r->pending));
		evbuffer_add(r->pending, evbuffer_pullup(r->replay, -1),
		             evbuffer_get_length(r->replay));
	}
	gw_upstream_start(r);
}

/*
 * TCP is connected (or failed): start TLS on the socket. The connect is done on a raw
 * socket first so that "nobody listens" (503, fail over) is never mistaken for a TLS
 * verification failure (502).
 */
static void up_tcp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upconn *u = arg;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	event_free(u->tcp_ev);
	u->tcp_ev = NULL;
	if (err) {
		up_attempt_failed(u, GW_NO_BACKEND, evutil_socket_error_to_string(err), true);
		return;
	}
	u->st = gw_stream_new(u->w->base, fd, u->ssl, false);
	if (!u->st) {
		up_attempt_failed(u, GW_INTERNAL, "out of memory", false);
		return;
	}
	u->ssl_owned = false; /* the stream owns the SSL and the fd now */
	u->fd = -1;
	gw_stream_setcb(u->st, up_readcb, up_writecb, up_eventcb, u);
}

/* Starts a new connection to server idx of the cluster for r: TCP first, then TLS. */
static struct gw_upconn *up_connect(struct gw_req *r, unsigned cl, int idx)
{
	struct gw_worker *w = r->c->w;
	const struct conf_cluster *c = &r->gen->cfg->clusters[cl];
	const struct conf_server *s = &c->servers[idx];
	struct gw_upconn *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->w = w;
	u->gen = r->gen;
	u->cluster = cl;
	u->srv = r->gen->cluster_base[cl] + (size_t)idx;
	u->state = GW_UP_CONNECTING;
	u->fd = -1;
	struct gw_pool *pl = up_pool(u);
	if (pl)
		pl->n_open++;
	gw_gauge_add(&up_hs(u)->conns_open, 1);
	up_lease(u, r);
	gw_parser_init(&u->ps, HTTP_RESPONSE, &r->gen->cfg->limits);
	u->ps.on_body = up_body_cb;
	u->ssl = pki_client_ssl_new(c->tls, s->name);
	u->ssl_owned = u->ssl != NULL;
	u->timer = evtimer_new(w->base, up_timeout_cb, u);
	u->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!u->ssl || !u->timer || u->fd < 0)
		goto fail;
	/* Resume the last session with this server: the pool is per generation, so the
	 * session was verified with the same trust and name. */
	if (pl && pl->sess)
		SSL_set_session(u->ssl, pl->sess);
	int one = 1;
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	w->ctr.upstream_connects++;
	if (connect(u->fd, (const struct sockaddr *)&s->addr, s->addrlen) != 0 &&
	    errno != EINPROGRESS)
		u->broken = true; /* refused at once: reported from the timer, not re-entrantly */
	u->tcp_ev = event_new(w->base, u->fd, EV_WRITE, up_tcp_cb, u);
	if (!u->tcp_ev)
		goto fail;
	if (!u->broken)
		event_add(u->tcp_ev, NULL);
	return u;
fail:
	up_free(u);
	return NULL;
}

/*
 * Picks a server and leases or opens a connection for r, or queues r for a slot, or
 * answers (503 at once when no server is usable). from_queue: r was the queue's head.
 */
static enum up_start_result up_start(struct gw_req *r, bool from_queue)
{
	const struct conf_cluster *c = &r->gen->cfg->clusters[r->route->cluster];
	unsigned cl = r->route->cluster;
	struct gw_worker *w = r->c->w;
	bool late =
	    r->attempts > 0 && gw_now_us() - r->t_head > (uint64_t)c->retry_deadline * 1000u;
	int idx = r->attempts < c->max_attempts && !late ? gw_balance_pick(r, cl) : GW_PICK_NONE;
	if (idx == GW_PICK_FULL)
		return upq_add(r, cl, from_queue);
	if (idx < 0) {
		up_give_up(r);
		return UP_FINISHED;
	}
	size_t base = r->gen->cluster_base[cl], srv = base + (size_t)idx;
	if (r->attempts > 0)
		gw_stat_add(&r->gen->hs[base + r->tried_srv[r->attempts - 1]]->failovers);
	r->tried_srv[r->attempts++] = (uint16_t)idx;
	if (idx < 64)
		r->tried |= 1ull << idx;
	r->cluster = (int)cl;
	r->server = idx;
	gw_stat_add(&r->gen->hs[srv]->requests);
	if (w->pools && w->pools_gen == r->gen && !TAILQ_EMPTY(&w->pools[srv].idle)) {
		struct gw_upconn *u = TAILQ_FIRST(&w->pools[srv].idle);
		TAILQ_REMOVE(&w->pools[srv].idle, u, link);
		w->pools[srv].n_idle--;
		gw_gauge_add(&up_hs(u)->conns_idle, -1);
		u->reused = true;
		w->ctr.upstream_reuses++;
		up_lease(u, r);
		up_attach(u);
		return UP_STARTED;
	}
	struct gw_upconn *u = up_connect(r, cl, idx);
	if (!u) {
		gw_req_finish(r, 500, GW_INTERNAL, "out_of_memory");
		return UP_FINISHED;
	}
	up_timer_set(u->timer, u->broken ? 0 : r->gen->cfg->timeouts.upstream_connect);
	return UP_STARTED;
}

void gw_upstream_start(struct gw_req *r)
{
	(void)up_start(r, false);
}

/*
 * Ends the lease. A clean, reusable connection of the worker's current generation goes
 * back to its pool (bounded) and keeps its session for resumption; anything else closes.
 */
void gw_upstream_release(struct gw_upconn *u, bool reusable)
{
	struct gw_worker *w = u->w;
	struct gw_pool *pl = up_pool(u);
	const struct conf_cluster *cl = up_cluster(u);
	up_unlease(u);
	u->ps.ud = NULL;
	if (reusable && !u->broken)
		up_session_keep(u);
	bool pool_ok = reusable && !u->broken && pl && !w->draining &&
	               pl->n_idle < cl->pool_max_idle &&
	               evbuffer_get_length(gw_stream_input(u->st)) == 0;
	if (!pool_ok) {
		up_free(u);
		return;
	}
	u->state = GW_UP_IDLE;
	u->t_idle = gw_now_us();
	u->trimmed = false;
	TAILQ_INSERT_HEAD(&pl->idle, u, link);
	pl->n_idle++;
	gw_gauge_add(&up_hs(u)->conns_idle, 1);
	gw_stream_read(u->st, true);
	up_timer_set(u->timer, cl->pool_idle_timeout);
	upq_kick(w, u->cluster);
}

/*
 * The client drained: continue relaying the response. Bytes may already wait in the
 * input buffer (read before we paused) with nothing more coming from the socket, so
 * they are processed now rather than on a read event that might never fire.
 */
void gw_upstream_resume_read(struct gw_upconn *u)
{
	if (u->state != GW_UP_ACTIVE)
		return;
	gw_stream_read(u->st, true);
	if (evbuffer_get_length(gw_stream_input(u->st)) > 0)
		up_readcb(u->st, u);
}

static void up_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upconn *u = arg;
	switch (u->state) {
	case GW_UP_IDLE:
		up_free(u);
		return;
	case GW_UP_CONNECTING:
		if (u->broken)
			up_attempt_failed(u, GW_NO_BACKEND, "connect failed", true);
		else
			up_attempt_failed(u, GW_UPSTREAM_TIMEOUT, "connect timeout", true);
		return;
	case GW_UP_ACTIVE:
		/* The backend may have acted: a timeout is never retried, but it is held
		 * against the server (a hung backend gets ejected). */
		u->broken = true;
		gw_health_passive_fail(u->gen, u->cluster, u->srv, "response timeout");
		gw_req_finish(u->req, 504, GW_UPSTREAM_TIMEOUT, "upstream_response_timeout");
		return;
	}
}

static void up_eventcb(struct gw_stream *st, short what, void *arg)
{
	struct gw_upconn *u = arg;
	if (what & GW_STREAM_CONNECTED) {
		if (u->req)
			up_attach(u);
		return;
	}
	if (u->state == GW_UP_IDLE) {
		up_free(u); /* the backend closed an idle connection */
		return;
	}
	if (u->state == GW_UP_CONNECTING) {
		/* TCP was up (see up_tcp_cb): whatever failed now failed in TLS. */
		unsigned long e = gw_stream_error(st);
		up_attempt_failed(u, GW_UPSTREAM_TLS, pki_client_error_str(u->ssl, e), true);
		return;
	}
	struct gw_req *r = u->req;
	u->broken = true;
	if ((what & GW_STREAM_EOF) && !(what & GW_STREAM_ERROR) && u->ps.head_done &&
	    llhttp_message_needs_eof(&u->ps.p)) {
		/* A close-delimited body ends here. */
		llhttp_finish(&u->ps.p);
		if (r && r->resp_rechunk)
			gw_conn_write(r->c, "0\r\n\r\n", 5);
		if (r)
			gw_req_finish(r, r->status, GW_OK, NULL);
		else
			up_free(u);
		return;
	}
	if (!u->got_bytes) {
		/* Closed before a byte of the answer: safe to send elsewhere when replayable.
		 * On a pooled connection this is the classic keep-alive race. */
		up_attempt_failed(
		    u, GW_UPSTREAM_PROTOCOL,
		    u->reused ? "pooled connection closed" : "closed before answering", !u->reused);
		return;
	}
	if (!r) {
		up_free(u);
		return;
	}
	gw_health_passive_fail(u->gen, u->cluster, u->srv, "closed mid-response");
	gw_req_finish(r, 502, GW_UPSTREAM_PROTOCOL, "upstream_closed_early");
}

/* The response head: status line and headers minus hop-by-hop, framing set by us. */
static void up_send_head(struct gw_upconn *u, struct gw_req *r)
{
	const struct gw_head *h = &u->ps.head;
	struct gw_conn *c = r->c;
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		gw_req_finish(r, 500, GW_INTERNAL, "out_of_memory");
		return;
	}
	/* The head is the passive health verdict: a 5xx counts against the server. */
	if (h->status >= 500)
		gw_health_passive_fail(u->gen, u->cluster, u->srv, "5xx answer");
	else
		gw_health_passive_ok(u->gen, u->srv);
	char num[24];
	evbuffer_add(b, "HTTP/1.1 ", 9);
	evbuffer_add(b, num, gw_u64_dec(h->status, num));
	evbuffer_add(b, " ", 1);
	evbuffer_add(b, h->buf + h->url_off, h->url_len);
	evbuffer_add(b, "\r\n", 2);
	for (uint32_t i = 0; i < h->n_hdrs; i++) {
		const struct gw_hdr *hd = &h->hdrs[i];
		if (gw_header_is_hop_by_hop(h->buf + hd->name_off, hd->name_len, h))
			continue;
		evbuffer_add(b, h->buf + hd->name_off, hd->name_len);
		evbuffer_add(b, ": ", 2);
		evbuffer_add(b, h->buf + hd->val_off, hd->val_len);
		evbuffer_add(b, "\r\n", 2);
	}
	bool no_body = r->resp_head_req || h->status == 204 || h->status == 304;
	if (h->has_clen && (h->status != 204)) {
		gw_add_clen(b, h->clen);
	} else if (!no_body) {
		if (c->ps.head.http_minor == 1) {
			r->resp_rechunk = true;
			evbuffer_add(b, "Transfer-Encoding: chunked\r\n", 28);
		} else {
			c->close_after = true; /* HTTP/1.0 client: the body ends at close */
		}
	}
	if (!llhttp_should_keep_alive(&u->ps.p) && !h->chunked && !h->has_clen && !no_body)
		u->broken = true;
	if (c->close_after || c->w->draining)
		evbuffer_add(b, "Connection: close\r\n", 19);
	evbuffer_add(b, "\r\n", 2);
	r->bytes_out += evbuffer_get_length(b);
	evbuffer_add_buffer(gw_stream_output(c->st), b);
	evbuffer_free(b);
	r->status = h->status;
	r->resp_started = true;
}

static int up_body_cb(void *ud, const char *at, size_t len)
{
	struct gw_req *r = ud;
	if (!r)
		return 0;
	if (r->resp_rechunk) {
		char sz[24];
		int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		gw_conn_write(r->c, sz, (size_t)n);
		gw_conn_write(r->c, at, len);
		gw_conn_write(r->c, "\r\n", 2);
		r->bytes_out += (uint64_t)n + len + 2;
	} else {
		gw_conn_write(r->c, at, len);
		r->bytes_out += len;
	}
	return 0;
}

/* The response ended cleanly: the connection may go back to the pool. */
static void up_response_done(struct gw_upconn *u, struct gw_req *r)
{
	if (r->resp_rechunk)
		gw_conn_write(r->c, "0\r\n\r\n", 5);
	bool reusable = llhttp_should_keep_alive(&u->ps.p) && r->body_done && !u->broken;
	gw_upstream_release(u, reusable);
	gw_req_finish(r, r->status, GW_OK, NULL);
}

static void up_readcb(struct gw_stream *st, void *arg)
{
	struct gw_upconn *u = arg;
	struct evbuffer *in = gw_stream_input(st);
	if (u->state != GW_UP_ACTIVE || !u->req) {
		/* Bytes on an idle connection: the backend is confused; do not reuse it. */
		up_free(u);
		return;
	}
	struct gw_req *r = u->req;
	up_timer_set(u->timer, r->gen->cfg->timeouts.upstream_response);
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		evbuffer_peek(in, -1, NULL, &v, 1);
		bool had_head = u->ps.head_done;
		size_t used = 0;
		u->got_bytes = true;
		enum gw_feed f = gw_parser_feed(&u->ps, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (f == GW_FEED_ERROR) {
			u->broken = true;
			gw_health_passive_fail(u->gen, u->cluster, u->srv, "bad response");
			gw_req_finish(r, 502, GW_UPSTREAM_PROTOCOL, "bad_upstream_response");
			return;
		}
		if (u->ps.head_done && !had_head) {
			if (u->ps.head.status < 200) {
				/* Interim 1xx (complete at once, no body): not relayed, as we
				 * answer 100-continue ourselves. */
				gw_parser_reset(&u->ps);
				u->ps.skip_body = r->resp_head_req;
				continue;
			}
			up_send_head(u, r);
			if (u->req != r)
				return;
		}
		if (f == GW_FEED_DONE) {
			up_response_done(u, r);
			return;
		}
		if (evbuffer_get_length(gw_stream_output(r->c->st)) > GW_HIGH_WATER) {
			/* The client is slower than the backend: stop reading until it drains. */
			gw_stream_read(st, false);
			return;
		}
	}
}

static void up_writecb(struct gw_stream *st, void *arg)
{
	struct gw_upconn *u = arg;
	struct gw_req *r = u->req;
	if (u->state != GW_UP_ACTIVE || !r)
		return;
	/* Upload progress counts as liveness; and the backend drained: read the client. */
	up_timer_set(u->timer, r->gen->cfg->timeouts.upstream_response);
	if (r->c->read_paused)
		gw_conn_pause_read(r->c, false);
}
