/*
 * health.c: whether a backend server should get traffic. Three parts:
 *
 * - The registry: one struct gw_hstate per (cluster name, server name, address), shared
 *   by every generation that configures that server, so a reload keeps what is known.
 * - Passive health: workers report each request's outcome; N consecutive failures eject
 *   the server for base * 2^k (capped), never more than a share of its cluster at once.
 *   The decision is taken by the worker that saw the Nth failure, under the registry
 *   lock, so the share is exact across workers; successes only touch an atomic.
 * - The active checker: one for the process, on the main thread's event base. It sends
 *   an HTTP request over exactly the TLS profile of real traffic (pki_client_ssl_new with
 *   the cluster's context: SNI, CA, name check, client certificate) and flips the
 *   server's shared "down" flag after rise/fall results. Workers only read flags.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/tcp.h>

#include <event2/bufferevent_ssl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "pki.h"
#include "upstream_int.h"

#define REG_BUCKETS 1024
#define HC_BODY_MAX (64 * 1024) /* what expect_body is searched in */
#define SWEEP_MS    500

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_hstate *reg[REG_BUCKETS];
static struct gw_gen *reg_gen; /* generation the checker follows (for the status JSON) */

/* One check target: a server of a cluster with active checks, in the checked generation. */
struct hc_probe {
	struct gw_health *hc;
	struct gw_hstate *h; /* borrowed through hc->gen */
	unsigned cluster;
	size_t idx;          /* within the cluster */
	struct event *timer; /* next check, or the deadline of the running one */
	struct event *tcp_ev;
	int fd;
	SSL *ssl; /* owned until the bufferevent takes it */
	struct bufferevent *bev;
	struct gw_parser ps;
	bool ps_ready, running;
	struct evbuffer *body;
};

struct gw_health {
	struct gw_main *m;
	struct gw_gen *gen; /* ref */
	struct hc_probe *probes;
	size_t n_probes;
	struct event *sweep;
	uint64_t rnd;
};

/* ------------------------------------------------------------------ registry -- */

static unsigned reg_hash(const char *a, const char *b, const char *c)
{
	uint32_t h = 2166136261u;
	const char *parts[3] = {a, b, c};
	for (int i = 0; i < 3; i++) {
		for (const char *p = parts[i]; *p; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
		h = (h ^ 0xff) * 16777619u; /* separator: ("ab","c") differs from ("a","bc") */
	}
	return h % REG_BUCKETS;
}

static void hstate_free(struct gw_hstate *h)
{
	free(h->cluster);
	free(h->name);
	free(h->address);
	free(h);
}

/* Finds or adds the state of one server, with a reference taken. Registry lock held. */
static struct gw_hstate *reg_get(const char *cluster, const char *name, const char *address)
{
	unsigned b = reg_hash(cluster, name, address);
	struct gw_hstate *h;
	for (h = reg[b]; h; h = h->next)
		if (!strcmp(h->cluster, cluster) && !strcmp(h->name, name) &&
		    !strcmp(h->address, address))
			break;
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (!h)
			return NULL;
		h->cluster = strdup(cluster);
		h->name = strdup(name);
		h->address = strdup(address);
		if (!h->cluster || !h->name || !h->address) {
			hstate_free(h);
			return NULL;
		}
		h->next = reg[b];
		reg[b] = h;
	}
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
	return h;
}

/* Frees states no generation points to any more. Registry lock held. */
static void reg_prune(void)
{
	for (unsigned b = 0; b < REG_BUCKETS; b++) {
		struct gw_hstate **pp = &reg[b];
		while (*pp) {
			struct gw_hstate *h = *pp;
			/* A reference is only ever taken under this lock (reg_get), so zero
			 * here stays zero. */
			if (atomic_load(&h->refs) == 0) {
				*pp = h->next;
				hstate_free(h);
			} else {
				pp = &h->next;
			}
		}
	}
}

static void unbind_n(struct gw_gen *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		atomic_fetch_sub_explicit(&g->hs[i]->refs, 1, memory_order_acq_rel);
	pthread_mutex_lock(&reg_lock);
	reg_prune();
	pthread_mutex_unlock(&reg_lock);
	free(g->hs);
	g->hs = NULL;
}

int gw_health_gen_bind(struct gw_gen *g)
{
	const struct conf_snapshot *cfg = g->cfg;
	size_t n = 0;
	g->hs = calloc(g->n_servers_total ? g->n_servers_total : 1, sizeof(*g->hs));
	if (!g->hs)
		return -1;
	pthread_mutex_lock(&reg_lock);
	for (size_t c = 0; c < cfg->n_clusters; c++) {
		const struct conf_cluster *cl = &cfg->clusters[c];
		for (size_t i = 0; i < cl->n_servers; i++, n++) {
			g->hs[n] = reg_get(cl->name, cl->servers[i].name, cl->servers[i].address);
			if (!g->hs[n])
				goto fail;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return 0;
fail:
	pthread_mutex_unlock(&reg_lock);
	unbind_n(g, n);
	return -1;
}

/* Drops g's references; states of servers no generation has any more are freed. */
void gw_health_gen_unbind(struct gw_gen *g)
{
	if (g->hs)
		unbind_n(g, g->n_servers_total);
}

/* --------------------------------------------------------------- passive ---- */

void gw_health_passive_ok(struct gw_gen *g, size_t srv)
{
	struct gw_hstate *h = g->hs[srv];
	/* Read first: a healthy server's line is then only ever shared, never written. */
	if (atomic_load_explicit(&h->consec_fail, memory_order_relaxed))
		atomic_store_explicit(&h->consec_fail, 0, memory_order_relaxed);
}

/* Ejects h if its cluster's share allows. Registry lock held (serialises decisions). */
static void eject_locked(struct gw_gen *g, unsigned cl, struct gw_hstate *h, const char *why)
{
	const struct conf_cluster *c = &g->cfg->clusters[cl];
	uint64_t now = gw_now_us();
	size_t ejected = 0;
	if (atomic_load(&h->ejected_until) > now)
		return; /* another worker was first */
	for (size_t i = 0; i < c->n_servers; i++)
		if (atomic_load(&g->hs[g->cluster_base[cl] + i]->ejected_until) > now)
			ejected++;
	if (ejected >= gw_outlier_max_ejected(c->n_servers, c->outlier.max_ejected_percent)) {
		gw_log(GW_LOG_WARN, "upstream %s/%s (%s): not ejected, %zu of %zu already are (%s)",
		       c->name, h->address, h->name, ejected, c->n_servers, why);
		atomic_store(&h->consec_fail, 0);
		return;
	}
	unsigned level = atomic_fetch_add(&h->eject_level, 1);
	uint32_t ms =
	    gw_outlier_ejection_ms(c->outlier.base_ejection, c->outlier.max_ejection, level);
	atomic_store(&h->ejected_until, now + (uint64_t)ms * 1000u);
	atomic_store(&h->consec_fail, 0);
	gw_stat_add(&h->ejections);
	gw_log(
	    GW_LOG_WARN,
	    "upstream %s/%s (%s) down: ejected for %u ms after %u consecutive failures, last: %s",
	    c->name, h->address, h->name, ms, c->outlier.consecutive_failures, why);
}

void gw_health_passive_fail(struct gw_gen *g, unsigned cl, size_t srv, const char *why)
{
	struct gw_hstate *h = g->hs[srv];
	const struct conf_outlier *o = &g->cfg->clusters[cl].outlier;
	gw_stat_add(&h->failures);
	unsigned n = atomic_fetch_add_explicit(&h->consec_fail, 1, memory_order_relaxed) + 1;
	if (!o->consecutive_failures || n < o->consecutive_failures)
		return;
	pthread_mutex_lock(&reg_lock);
	eject_locked(g, cl, h, why);
	pthread_mutex_unlock(&reg_lock);
}

/* ---------------------------------------------------------------- checker ---- */

static uint32_t hc_random(struct gw_health *hc)
{
	/* xorshift64: jitter only needs to differ between processes and servers. */
	hc->rnd ^= hc->rnd << 13;
	hc->rnd ^= hc->rnd >> 7;
	hc->rnd ^= hc->rnd << 17;
	return (uint32_t)(hc->rnd >> 32);
}

static const struct conf_cluster *probe_cluster(const struct hc_probe *p)
{
	return &p->hc->gen->cfg->clusters[p->cluster];
}

static void probe_timer_set(struct hc_probe *p, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
}

/* Closes whatever the running check holds; the probe itself stays. */
static void probe_reset(struct hc_probe *p)
{
	if (p->tcp_ev)
		event_free(p->tcp_ev);
	if (p->bev) {
		/* close_notify keeps the backend's logs free of "unexpected EOF" noise */
		if (SSL_is_init_finished(p->ssl))
			SSL_shutdown(p->ssl);
		bufferevent_free(p->bev);
	} else if (p->ssl) {
		SSL_free(p->ssl);
	}
	if (p->fd >= 0 && !p->bev)
		evutil_closesocket(p->fd);
	if (p->ps_ready)
		gw_parser_free(&p->ps);
	if (p->body)
		evbuffer_free(p->body);
	ERR_clear_error();
	p->tcp_ev = NULL;
	p->bev = NULL;
	p->ssl = NULL;
	p->fd = -1;
	p->body = NULL;
	p->ps_ready = p->running = false;
}

/* A state change: publish it to the workers and log it. */
static void probe_flip(struct hc_probe *p, const char *reason)
{
	struct gw_hstate *h = p->h;
	const struct conf_cluster *c = probe_cluster(p);
	bool down = h->fsm.down;
	atomic_store_explicit(&h->down, down, memory_order_relaxed);
	if (down) {
		gw_log(GW_LOG_WARN, "upstream %s/%s (%s) down: %s", c->name, h->address, h->name,
		       reason);
		return;
	}
	/* A server that passes its checks again is trusted again: any passive ejection
	 * ends now rather than after its remaining time. */
	atomic_store(&h->ejected_until, 0);
	atomic_store(&h->consec_fail, 0);
	pthread_mutex_lock(&reg_lock);
	h->reason[0] = '\0';
	pthread_mutex_unlock(&reg_lock);
	gw_log(GW_LOG_INFO, "upstream %s/%s (%s) up: %u consecutive checks passed", c->name,
	       h->address, h->name, c->health.rise);
}

/* One check ended: feed the state machine and schedule the next one. */
static void probe_done(struct hc_probe *p, bool ok, const char *reason)
{
	const struct conf_health *hc = &probe_cluster(p)->health;
	struct gw_hstate *h = p->h;
	probe_reset(p);
	gw_stat_add(&h->checks);
	if (!ok) {
		gw_stat_add(&h->checks_failed);
		pthread_mutex_lock(&reg_lock);
		snprintf(h->reason, sizeof(h->reason), "%s", reason);
		pthread_mutex_unlock(&reg_lock);
		gw_log(GW_LOG_DEBUG, "upstream %s/%s health check failed: %s", h->cluster,
		       h->address, reason);
	}
	if (gw_hc_fsm_step(&h->fsm, ok, hc->rise, hc->fall))
		probe_flip(p, reason);
	probe_timer_set(p, gw_hc_delay_ms(hc->interval, hc->jitter, hc_random(p->hc)));
}

static int probe_body_cb(void *ud, const char *at, size_t len)
{
	struct hc_probe *p = ud;
	size_t have = evbuffer_get_length(p->body);
	if (have < HC_BODY_MAX)
		evbuffer_add(p->body, at, len < HC_BODY_MAX - have ? len : HC_BODY_MAX - have);
	return 0;
}

/* The whole answer is in: status range, then the optional body substring. */
static void probe_judge(struct hc_probe *p)
{
	const struct conf_health *hc = &probe_cluster(p)->health;
	unsigned st = p->ps.head.status;
	char why[80];
	if (st < hc->status_min || st > hc->status_max) {
		snprintf(why, sizeof(why), "status %u not in [%u, %u]", st, hc->status_min,
		         hc->status_max);
		probe_done(p, false, why);
		return;
	}
	if (hc->expect_body) {
		size_t len = evbuffer_get_length(p->body);
		const char *b = (const char *)evbuffer_pullup(p->body, -1);
		if (!b || !memmem(b, len, hc->expect_body, strlen(hc->expect_body))) {
			probe_done(p, false, "expected body text not found");
			return;
		}
	}
	probe_done(p, true, "ok");
}

static void probe_readcb(struct bufferevent *bev, void *arg)
{
	struct hc_probe *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used = 0;
		evbuffer_peek(in, -1, NULL, &v, 1);
		enum gw_feed f = gw_parser_feed(&p->ps, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (f == GW_FEED_ERROR) {
			probe_done(p, false, "malformed response");
			return;
		}
		if (f == GW_FEED_DONE) {
			probe_judge(p);
			return;
		}
		if (f == GW_FEED_HEAD && p->ps.head.status < 200)
			gw_parser_reset(&p->ps); /* interim 1xx */
	}
}

/* TLS is up: ask. The request is what an operator would send with curl. */
static void probe_send(struct hc_probe *p)
{
	const struct conf_cluster *c = probe_cluster(p);
	const char *name = c->servers[p->idx].name;
	bool v6 = strchr(name, ':') != NULL;
	evbuffer_add_printf(
	    bufferevent_get_output(p->bev),
	    "%s %s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: gatewayd-health-check\r\n"
	    "Accept: */*\r\nConnection: close\r\n\r\n",
	    c->health.method, c->health.path, v6 ? "[" : "", name, v6 ? "]" : "");
}

static void probe_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct hc_probe *p = arg;
	char why[200];
	if (what & BEV_EVENT_CONNECTED) {
		probe_send(p);
		return;
	}
	if (!SSL_is_init_finished(p->ssl)) {
		/* Exactly what a real request would have met: verification or handshake. */
		unsigned long e = bufferevent_get_openssl_error(bev);
		snprintf(why, sizeof(why), "tls: %s", pki_client_error_str(p->ssl, e));
		probe_done(p, false, why);
		return;
	}
	if ((what & BEV_EVENT_EOF) && p->ps.head_done && llhttp_message_needs_eof(&p->ps.p)) {
		llhttp_finish(&p->ps.p);
		probe_judge(p);
		return;
	}
	probe_done(p, false,
	           p->ps.head_done ? "connection closed mid-response"
	                           : "connection closed before answering");
}

static void probe_tcp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hc_probe *p = arg;
	const struct conf_cluster *c = probe_cluster(p);
	int err = 0;
	socklen_t len = sizeof(err);
	char why[160];
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	event_free(p->tcp_ev);
	p->tcp_ev = NULL;
	if (err) {
		snprintf(why, sizeof(why), "connect: %s", evutil_socket_error_to_string(err));
		probe_done(p, false, why);
		return;
	}
	p->ssl = pki_client_ssl_new(c->tls, c->servers[p->idx].name);
	p->body = evbuffer_new();
	if (p->ssl) {
		p->bev = bufferevent_openssl_socket_new(
		    p->hc->m->base, fd, p->ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (!p->bev)
			p->ssl = NULL; /* libevent freed it; the fd is still ours */
	}
	if (!p->bev || !p->body) {
		probe_done(p, false, "out of memory");
		return;
	}
	gw_parser_init(&p->ps, HTTP_RESPONSE, &p->hc->gen->cfg->limits);
	p->ps_ready = true;
	p->ps.ud = p;
	p->ps.on_body = probe_body_cb;
	p->ps.skip_body = strcmp(c->health.method, "HEAD") == 0;
	bufferevent_openssl_set_allow_dirty_shutdown(p->bev, 1);
	bufferevent_setcb(p->bev, probe_readcb, NULL, probe_eventcb, p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
}

/* Starts one check: raw TCP connect first, as for real traffic, then TLS. */
static void probe_begin(struct hc_probe *p)
{
	const struct conf_cluster *c = probe_cluster(p);
	const struct conf_server *s = &c->servers[p->idx];
	char why[160];
	p->running = true;
	probe_timer_set(p, c->health.timeout);
	p->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		probe_done(p, false, why);
		return;
	}
	int one = 1;
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(p->fd, (const struct sockaddr *)&s->addr, s->addrlen) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		probe_done(p, false, why);
		return;
	}
	p->tcp_ev = event_new(p->hc->m->base, p->fd, EV_WRITE, probe_tcp_cb, p);
	if (!p->tcp_ev) {
		probe_done(p, false, "out of memory");
		return;
	}
	event_add(p->tcp_ev, NULL);
}

static void probe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hc_probe *p = arg;
	char why[64];
	if (!p->running) {
		probe_begin(p);
		return;
	}
	snprintf(why, sizeof(why), "timeout after %u ms", probe_cluster(p)->health.timeout);
	probe_done(p, false, why);
}

static void probes_free(struct gw_health *hc)
{
	for (size_t i = 0; i < hc->n_probes; i++) {
		probe_reset(&hc->probes[i]);
		if (hc->probes[i].timer)
			event_free(hc->probes[i].timer);
	}
	free(hc->probes);
	hc->probes = NULL;
	hc->n_probes = 0;
}

/*
 * Builds the probes of hc->gen. A server seen for the first time, or whose cluster just
 * gained checks, starts as up with a fresh state machine; one that was checked before
 * keeps its verdict. Servers of clusters without checks are up (no "down" left over).
 */
static int probes_build(struct gw_health *hc)
{
	const struct conf_snapshot *cfg = hc->gen->cfg;
	int rc = 0;
	hc->probes =
	    calloc(hc->gen->n_servers_total ? hc->gen->n_servers_total : 1, sizeof(*hc->probes));
	if (!hc->probes)
		return -1;
	pthread_mutex_lock(&reg_lock); /* "checked" is read by the status JSON */
	for (unsigned c = 0; c < cfg->n_clusters && rc == 0; c++) {
		const struct conf_cluster *cl = &cfg->clusters[c];
		for (size_t i = 0; i < cl->n_servers; i++) {
			struct gw_hstate *h = hc->gen->hs[hc->gen->cluster_base[c] + i];
			if (!cl->health.enabled || !h->checked) {
				memset(&h->fsm, 0, sizeof(h->fsm));
				atomic_store(&h->down, false);
			}
			h->checked = cl->health.enabled;
			if (!cl->health.enabled)
				continue;
			struct hc_probe *p = &hc->probes[hc->n_probes++];
			*p = (struct hc_probe){.hc = hc, .h = h, .cluster = c, .idx = i, .fd = -1};
			p->timer = evtimer_new(hc->m->base, probe_timer_cb, p);
			if (!p->timer) {
				rc = -1;
				break;
			}
			/* Soon, but spread: instances and servers do not probe in lock-step. */
			uint32_t spread =
			    (uint32_t)((uint64_t)cl->health.interval * cl->health.jitter / 1000);
			probe_timer_set(p, spread ? hc_random(hc) % spread : 0);
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return rc;
}

/*
 * Logs the end of ejections, and forgets the backoff of a server that stayed in service
 * for max_ejection since its last ejection ended.
 */
static void sweep_server(const struct conf_cluster *cl, struct gw_hstate *h, uint64_t now)
{
	uint64_t until = atomic_load(&h->ejected_until);
	if (until && until <= now && atomic_compare_exchange_strong(&h->ejected_until, &until, 0)) {
		gw_log(GW_LOG_INFO, "upstream %s/%s (%s) up: ejection over", cl->name, h->address,
		       h->name);
		until = 0;
	}
	if (until || !atomic_load(&h->eject_level)) {
		h->calm_since = 0;
		return;
	}
	if (!h->calm_since)
		h->calm_since = now;
	else if (now - h->calm_since >= (uint64_t)cl->outlier.max_ejection * 1000u)
		atomic_store(&h->eject_level, 0);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_health *hc = arg;
	const struct conf_snapshot *cfg = hc->gen->cfg;
	uint64_t now = gw_now_us();
	for (size_t c = 0; c < cfg->n_clusters; c++)
		for (size_t i = 0; i < cfg->clusters[c].n_servers; i++)
			sweep_server(&cfg->clusters[c], hc->gen->hs[hc->gen->cluster_base[c] + i],
			             now);
}

static void checker_follow(struct gw_health *hc, struct gw_gen *g)
{
	probes_free(hc);
	pthread_mutex_lock(&reg_lock);
	struct gw_gen *old = hc->gen;
	hc->gen = gw_gen_ref(g);
	reg_gen = hc->gen;
	pthread_mutex_unlock(&reg_lock);
	gw_gen_unref(old);
	if (probes_build(hc) != 0)
		gw_log(GW_LOG_ERR, "health checks: out of memory, some servers are not checked");
}

int gw_health_start(struct gw_main *m)
{
	struct gw_health *hc = calloc(1, sizeof(*hc));
	if (!hc)
		return -1;
	hc->m = m;
	if (RAND_bytes((unsigned char *)&hc->rnd, sizeof(hc->rnd)) != 1 || hc->rnd == 0)
		hc->rnd = gw_wall_us() | 1;
	hc->sweep = event_new(m->base, -1, EV_PERSIST, sweep_cb, hc);
	if (!hc->sweep) {
		free(hc);
		return -1;
	}
	struct timeval tv = {0, SWEEP_MS * 1000};
	event_add(hc->sweep, &tv);
	m->health = hc;
	checker_follow(hc, m->gen);
	return 0;
}

void gw_health_reload(struct gw_main *m)
{
	if (m->health)
		checker_follow(m->health, m->gen);
}

void gw_health_stop(struct gw_main *m)
{
	struct gw_health *hc = m->health;
	if (!hc)
		return;
	probes_free(hc);
	event_free(hc->sweep);
	pthread_mutex_lock(&reg_lock);
	reg_gen = NULL;
	pthread_mutex_unlock(&reg_lock);
	gw_gen_unref(hc->gen);
	free(hc);
	m->health = NULL;
}

/* ----------------------------------------------------------------- status ---- */

static json_t *status_server(const struct conf_server *s, struct gw_hstate *h, uint64_t now)
{
	uint64_t until = atomic_load(&h->ejected_until);
	bool down = atomic_load(&h->down), ejected = until > now;
	json_t *o = json_pack(
	    "{s:s, s:s, s:i, s:b, s:s, s:{s:b, s:b, s:o, s:I, s:I}, s:{s:b, s:I, s:I, s:i, s:i},"
	    " s:I, s:I, s:I, s:{s:i, s:i}, s:i}",
	    "name", s->name, "address", s->address, "weight", (int)s->weight, "backup", s->backup,
	    "state",
	    down      ? "down"
	    : ejected ? "ejected"
	              : "up",
	    "active", "checked", h->checked, "down", down, "reason",
	    h->reason[0] ? json_string(h->reason) : json_null(), "checks",
	    (json_int_t)atomic_load(&h->checks), "checks_failed",
	    (json_int_t)atomic_load(&h->checks_failed), "passive", "ejected", ejected,
	    "ejected_ms_left", (json_int_t)(ejected ? (until - now) / 1000 : 0), "ejections",
	    (json_int_t)atomic_load(&h->ejections), "consecutive_failures",
	    (int)atomic_load(&h->consec_fail), "level", (int)atomic_load(&h->eject_level),
	    "requests", (json_int_t)atomic_load(&h->requests), "failures",
	    (json_int_t)atomic_load(&h->failures), "retries",
	    (json_int_t)atomic_load(&h->failovers), "connections", "open",
	    atomic_load(&h->conns_open), "idle", atomic_load(&h->conns_idle), "outstanding",
	    atomic_load(&h->outstanding));
	return o;
}

static json_t *status_cluster(struct gw_gen *g, size_t c, uint64_t now)
{
	const struct conf_cluster *cl = &g->cfg->clusters[c];
	json_t *servers = json_array();
	json_int_t retries = 0;
	int healthy = 0;
	for (size_t i = 0; i < cl->n_servers && servers; i++) {
		struct gw_hstate *h = g->hs[g->cluster_base[c] + i];
		healthy += gw_hstate_usable(h, now);
		retries += (json_int_t)atomic_load(&h->failovers);
		json_array_append_new(servers, status_server(&cl->servers[i], h, now));
	}
	return json_pack(
	    "{s:s, s:s, s:b, s:i, s:i, s:I, s:o*}", "name", cl->name, "balance",
	    cl->balance == CONF_BALANCE_LEAST_OUTSTANDING ? "least_outstanding" : "round_robin",
	    "active_checks", cl->health.enabled, "servers_usable", healthy, "servers_total",
	    (int)cl->n_servers, "retries", retries, "servers", servers);
}

/*
 * The document the admin endpoint serves at /upstreams. Rendered under the registry lock
 * (check reasons are written under it); the counters are relaxed atomics, each exact but
 * not all of one instant.
 */
char *gw_upstream_status_json(struct gw_main *m)
{
	uint64_t now = gw_now_us();
	char *out = NULL;
	pthread_mutex_lock(&reg_lock);
	/* Without a checker (not started yet) only the main thread may read m->gen. */
	struct gw_gen *g = gw_gen_ref(reg_gen ? reg_gen : m->gen);
	json_t *clusters = json_array();
	for (size_t c = 0; c < g->cfg->n_clusters && clusters; c++)
		json_array_append_new(clusters, status_cluster(g, c, now));
	json_t *doc =
	    json_pack("{s:I, s:o*}", "generation", (json_int_t)g->number, "clusters", clusters);
	pthread_mutex_unlock(&reg_lock);
	if (doc)
		out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	gw_gen_unref(g);
	return out;
}
