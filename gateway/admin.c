/*
 * admin.c: the admin listener, plain HTTP on the main thread's event base (evhttp):
 * /healthz (the process answers), /readyz (configuration loaded, listeners up, server
 * certificates valid, and every registered readiness hook agrees) and /metrics.
 * It binds to loopback unless admin.allow_remote is set (checked by conf); it accepts
 * only GET and HEAD and reads no request body.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>

#include "pki.h"
#include "gw.h"

#define ADMIN_HOOKS 8

struct gw_admin {
	struct evhttp *http;
	struct evhttp_bound_socket *bound; /* borrowed: freed with http */
	gw_ready_fn ready[ADMIN_HOOKS];
	size_t n_ready;
	gw_metrics_fn metrics[ADMIN_HOOKS];
	size_t n_metrics;
};

/* The admin state, created on first use so hooks can be added before the listener. */
static struct gw_admin *admin_get(struct gw_main *m)
{
	if (!m->admin)
		m->admin = calloc(1, sizeof(*m->admin));
	return m->admin;
}

int gw_admin_add_ready_check(struct gw_main *m, gw_ready_fn fn)
{
	struct gw_admin *a = admin_get(m);
	if (!a || a->n_ready == ADMIN_HOOKS)
		return -1;
	a->ready[a->n_ready++] = fn;
	return 0;
}

int gw_admin_add_metrics(struct gw_main *m, gw_metrics_fn fn)
{
	struct gw_admin *a = admin_get(m);
	if (!a || a->n_metrics == ADMIN_HOOKS)
		return -1;
	a->metrics[a->n_metrics++] = fn;
	return 0;
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; charset=utf-8");
	if (b)
		evbuffer_add_printf(b, "%s\n", text);
	evhttp_send_reply(req, code, reason, b);
	if (b)
		evbuffer_free(b);
}

static void healthz_cb(struct evhttp_request *req, void *arg)
{
	reply_text(req, 200, "OK", "ok");
}

/* Ready: serving (not draining), certificates valid, and every hook agrees. */
static bool admin_ready(struct gw_main *m, char *why, size_t whylen)
{
	const struct conf_snapshot *cfg = m->gen->cfg;
	if (m->stopping || !m->workers) {
		snprintf(why, whylen, "stopping");
		return false;
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		if (pki_server_cert_expiry(cfg->listeners[i].tls, time(NULL)) < 0) {
			snprintf(why, whylen, "listener %s: server certificate expired",
			         cfg->listeners[i].address);
			return false;
		}
	}
	for (size_t i = 0; i < m->admin->n_ready; i++)
		if (!m->admin->ready[i](m, why, whylen))
			return false;
	return true;
}

static void readyz_cb(struct evhttp_request *req, void *arg)
{
	char why[256] = "not ready";
	if (admin_ready(arg, why, sizeof(why)))
		reply_text(req, 200, "OK", "ready");
	else
		reply_text(req, 503, "Service Unavailable", why);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct gw_main *m = arg;
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	gw_metrics_render(m, b);
	for (size_t i = 0; i < m->admin->n_metrics; i++)
		m->admin->metrics[i](m, b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void notfound_cb(struct evhttp_request *req, void *arg)
{
	reply_text(req, 404, "Not Found", "not found: /healthz /readyz /metrics /upstreams");
}

static int admin_socket(const struct conf_snapshot *cfg)
{
	int fd = socket(cfg->admin_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cfg->admin_addr, cfg->admin_addrlen) != 0 ||
	    listen(fd, 64) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * Starts the listener configured in m->gen (none: nothing to do). A change of the admin
 * address takes a restart, like the listeners. 0, or -1 after logging why.
 */
int gw_admin_start(struct gw_main *m)
{
	const struct conf_snapshot *cfg = m->gen->cfg;
	struct gw_admin *a = admin_get(m);
	int fd = -1;
	errno = 0;
	if (!a)
		goto fail;
	if (!cfg->admin_address)
		return 0;
	a->http = evhttp_new(m->base);
	if (!a->http || (fd = admin_socket(cfg)) < 0)
		goto fail;
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	/* Small limits: nobody needs to send the admin listener anything big or slowly. */
	evhttp_set_max_headers_size(a->http, 8192);
	evhttp_set_max_body_size(a->http, 0);
	evhttp_set_timeout(a->http, 10);
	evhttp_set_cb(a->http, "/healthz", healthz_cb, m);
	evhttp_set_cb(a->http, "/readyz", readyz_cb, m);
	evhttp_set_cb(a->http, "/metrics", metrics_cb, m);
	evhttp_set_gencb(a->http, notfound_cb, m);
	a->bound = evhttp_accept_socket_with_handle(a->http, fd);
	if (!a->bound)
		goto fail;
	return 0;
fail:
	gw_log(GW_LOG_ERR, "admin: cannot listen on %s: %s",
	       cfg->admin_address ? cfg->admin_address : "?",
	       errno ? strerror(errno) : "out of memory");
	if (fd >= 0 && (!a || !a->bound))
		close(fd);
	return -1;
}

/* The listener's evhttp (NULL when none is configured), for other parts' endpoints. */
struct evhttp *gw_admin_http(struct gw_main *m)
{
	return m->admin ? m->admin->http : NULL;
}

void gw_admin_free(struct gw_main *m)
{
	if (!m->admin)
		return;
	if (m->admin->http)
		evhttp_free(m->admin->http);
	free(m->admin);
	m->admin = NULL;
}

int gw_admin_address(const struct gw_main *m, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	if (!m->admin || !m->admin->bound ||
	    getsockname(evhttp_bound_socket_get_fd(m->admin->bound), (struct sockaddr *)&ss, &sl) !=
	        0)
		return -1;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	}
	return 0;
}
