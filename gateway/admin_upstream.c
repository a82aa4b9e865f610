/*
 * admin_upstream.c: what the admin listener shows of the upstreams. Readiness needs at
 * least one usable server per cluster (a gateway that can only answer 503 is not ready
 * for traffic); /metrics gets per-server health and counters; /upstreams the status JSON
 * rendered by health.c. All of it runs on the main thread, which owns m->gen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "upstream_int.h"

static bool upstream_ready(struct gw_main *m, char *why, size_t whylen)
{
	const struct gw_gen *g = m->gen;
	uint64_t now = gw_now_us();
	for (size_t c = 0; c < g->cfg->n_clusters; c++) {
		const struct conf_cluster *cl = &g->cfg->clusters[c];
		bool any = false;
		for (size_t s = 0; s < cl->n_servers && !any; s++) {
			struct gw_hstate *h = g->hs ? g->hs[g->cluster_base[c] + s] : NULL;
			any = !h || gw_hstate_usable(h, now);
		}
		if (!any) {
			snprintf(why, whylen, "cluster %s has no healthy server", cl->name);
			return false;
		}
	}
	return true;
}

static void series(struct evbuffer *out, const char *name, const struct conf_cluster *cl,
                   const struct conf_server *sv, unsigned long long v)
{
	evbuffer_add_printf(out, "%s{cluster=\"", name);
	gw_metrics_label(out, cl->name);
	evbuffer_add_printf(out, "\",server=\"");
	gw_metrics_label(out, sv->address);
	evbuffer_add_printf(out, "\"} %llu\n", v);
}

static void upstream_metrics(struct gw_main *m, struct evbuffer *out)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"gateway_upstream_up", "gauge",
	     "1 when the server may get traffic (healthy, not ejected)"},
	    {"gateway_upstream_requests_total", "counter", "requests sent to the server"},
	    {"gateway_upstream_failures_total", "counter",
	     "failed attempts (connect, TLS, 5xx, timeout)"},
	    {"gateway_upstream_ejections_total", "counter", "passive ejections"},
	    {"gateway_upstream_connections_open", "gauge", "open upstream connections"},
	    {"gateway_upstream_connections_idle", "gauge", "idle pooled upstream connections"},
	};
	const struct gw_gen *g = m->gen;
	uint64_t now = gw_now_us();
	if (!g->hs)
		return;
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help,
		                    fam[f].name, fam[f].type);
		for (size_t c = 0; c < g->cfg->n_clusters; c++) {
			const struct conf_cluster *cl = &g->cfg->clusters[c];
			for (size_t s = 0; s < cl->n_servers; s++) {
				struct gw_hstate *h = g->hs[g->cluster_base[c] + s];
				unsigned long long v = 0;
				switch (f) {
				case 0:
					v = gw_hstate_usable(h, now);
					break;
				case 1:
					v = atomic_load_explicit(&h->requests,
					                         memory_order_relaxed);
					break;
				case 2:
					v = atomic_load_explicit(&h->failures,
					                         memory_order_relaxed);
					break;
				case 3:
					v = atomic_load_explicit(&h->ejections,
					                         memory_order_relaxed);
					break;
				case 4: {
					int n = atomic_load_explicit(&h->conns_open,
					                             memory_order_relaxed);
					v = n > 0 ? (unsigned long long)n : 0;
					break;
				}
				default: {
					int n = atomic_load_explicit(&h->conns_idle,
					                             memory_order_relaxed);
					v = n > 0 ? (unsigned long long)n : 0;
					break;
				}
				}
				series(out, fam[f].name, cl, &cl->servers[s], v);
			}
		}
	}
}

static void upstreams_cb(struct evhttp_request *req, void *arg)
{
	char *json = gw_upstream_status_json(arg);
	struct evbuffer *b = evbuffer_new();
	if (!json || !b) {
		free(json);
		if (b)
			evbuffer_free(b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(b, json, strlen(json));
	free(json);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* Registers the readiness check, the metrics and /upstreams on the admin listener. */
int gw_admin_upstream_init(struct gw_main *m)
{
	if (gw_admin_add_ready_check(m, upstream_ready) != 0 ||
	    gw_admin_add_metrics(m, upstream_metrics) != 0)
		return -1;
	struct evhttp *http = gw_admin_http(m);
	if (http)
		evhttp_set_cb(http, "/upstreams", upstreams_cb, m);
	return 0;
}
