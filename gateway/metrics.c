/*
 * metrics.c: counters for /metrics. Each worker owns one struct gw_metrics and is its
 * only writer: relaxed atomic increments, no lock on the request path. Labelled series
 * live in fixed open-addressing tables whose keys are written once and published with a
 * release store, so the main thread can read them while the worker adds new ones. A
 * scrape sums all workers and prints the Prometheus text format (version 0.0.4).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki.h"
#include "gw.h"

#define MET_SERIES    512 /* route x status x decision combinations per worker */
#define MET_REASONS   32  /* handshake failure reasons (a small fixed set of tokens) */
#define MET_ROUTE_LEN 120 /* longer route prefixes are cut (and may share a series) */
#define MET_NAME_LEN  48
#define PUT(out, lit) evbuffer_add(out, lit, sizeof(lit) - 1)

/* Upper bounds of the latency histogram, in microseconds (Prometheus "le" in seconds). */
static const uint64_t met_bounds_us[] = {500,     1000,    2500,    5000,    10000,
                                         25000,   50000,   100000,  250000,  500000,
                                         1000000, 2500000, 5000000, 10000000};
#define MET_BUCKETS (sizeof(met_bounds_us) / sizeof(met_bounds_us[0]))

struct met_series {
	atomic_uint used; /* 0 free; 1 once the key below is written (release) */
	uint16_t status;
	bool allow;
	char route[MET_ROUTE_LEN];
	atomic_uint_fast64_t count;
};

struct met_reason {
	atomic_uint used;
	char name[MET_NAME_LEN];
	atomic_uint_fast64_t count;
};

struct gw_metrics {
	struct met_series series[MET_SERIES];
	struct met_reason reasons[MET_REASONS];       /* failed handshakes */
	struct met_reason token_reasons[MET_REASONS]; /* refused tokens and API keys */
	atomic_uint_fast64_t hist[MET_BUCKETS + 1];   /* per bucket, not cumulative; last: +Inf */
	atomic_uint_fast64_t dur_sum_us;
	atomic_uint_fast64_t overflow; /* requests whose series did not fit in the table */
};

struct gw_metrics *gw_metrics_new(void)
{
	return calloc(1, sizeof(struct gw_metrics));
}

void gw_metrics_free(struct gw_metrics *mt)
{
	free(mt);
}

static void bump(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static uint32_t fnv1a(const char *s, uint32_t h)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The series of (route, status, decision), created on first use; NULL when full. */
static struct met_series *series_get(struct gw_metrics *mt, const char *route, int status,
                                     bool allow)
{
	uint32_t h =
	    fnv1a(route, 2166136261u) ^ ((uint32_t)status * 2654435761u) ^ (allow ? 1u : 0u);
	for (unsigned i = 0; i < MET_SERIES; i++) {
		struct met_series *s = &mt->series[(h + i) % MET_SERIES];
		if (!atomic_load_explicit(&s->used, memory_order_relaxed)) {
			s->status = (uint16_t)status;
			s->allow = allow;
			snprintf(s->route, sizeof(s->route), "%s", route);
			atomic_store_explicit(&s->used, 1, memory_order_release);
			return s;
		}
		if (s->status == status && s->allow == allow &&
		    strncmp(s->route, route, sizeof(s->route) - 1) == 0)
			return s;
	}
	return NULL;
}

/* Counts one finished request; called from the funnel with its audit record. */
void gw_metrics_request(struct gw_worker *w, const struct gw_req *r)
{
	struct gw_metrics *mt = w->metrics;
	if (!mt)
		return;
	const char *route = r->route ? r->route->prefix : "(none)";
	struct met_series *s = series_get(mt, route, r->status, r->decision.effect == POLICY_ALLOW);
	bump(s ? &s->count : &mt->overflow);
	uint64_t us = gw_now_us() - r->t_start;
	size_t b = 0;
	while (b < MET_BUCKETS && us > met_bounds_us[b])
		b++;
	bump(&mt->hist[b]);
	atomic_fetch_add_explicit(&mt->dur_sum_us, us, memory_order_relaxed);
}

/* Counts one occurrence of reason in an open-addressed table of reason tokens. */
static void reason_bump(struct gw_metrics *mt, struct met_reason *tab, const char *reason)
{
	uint32_t h = fnv1a(reason, 2166136261u);
	for (unsigned i = 0; i < MET_REASONS; i++) {
		struct met_reason *x = &tab[(h + i) % MET_REASONS];
		if (!atomic_load_explicit(&x->used, memory_order_relaxed)) {
			snprintf(x->name, sizeof(x->name), "%s", reason);
			atomic_store_explicit(&x->used, 1, memory_order_release);
		} else if (strncmp(x->name, reason, sizeof(x->name) - 1) != 0) {
			continue;
		}
		bump(&x->count);
		return;
	}
	bump(&mt->overflow);
}

void gw_metrics_handshake_failed(struct gw_worker *w, const char *reason)
{
	if (w->metrics)
		reason_bump(w->metrics, w->metrics->reasons, reason);
}

void gw_metrics_token_failed(struct gw_worker *w, const char *reason)
{
	if (w->metrics)
		reason_bump(w->metrics, w->metrics->token_reasons, reason);
}

/* ------------------------------------------------------------- rendering -- */

/* A label value with \, " and newline escaped, as the text format requires. */
/* A Prometheus label value with the text format's escapes (shared with admin_upstream.c). */
void gw_metrics_label(struct evbuffer *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(out, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

static void put_head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct met_row {
	const char *route;
	int status;
	bool allow;
	uint64_t count;
};

static int row_cmp(const void *a, const void *b)
{
	const struct met_row *x = a, *y = b;
	int c = strcmp(x->route, y->route);
	if (c)
		return c;
	if (x->status != y->status)
		return x->status - y->status;
	return (int)x->allow - (int)y->allow;
}

/* Series of all workers, sorted, equal keys summed into one line each. */
static void render_requests(struct gw_main *m, struct evbuffer *out)
{
	size_t n = 0, cap = (size_t)m->n_workers * MET_SERIES;
	struct met_row *rows = calloc(cap ? cap : 1, sizeof(*rows));
	put_head(out, "gateway_requests_total", "counter",
	         "Requests by route, status and decision.");
	if (!rows)
		return;
	for (unsigned w = 0; w < m->n_workers; w++) {
		struct gw_metrics *mt = m->workers[w].metrics;
		for (unsigned i = 0; mt && i < MET_SERIES; i++) {
			struct met_series *s = &mt->series[i];
			if (!atomic_load_explicit(&s->used, memory_order_acquire))
				continue;
			rows[n++] = (struct met_row){s->route, s->status, s->allow, get(&s->count)};
		}
	}
	qsort(rows, n, sizeof(*rows), row_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && row_cmp(&rows[i], &rows[i + 1]) == 0) {
			rows[i + 1].count += rows[i].count;
			continue;
		}
		PUT(out, "gateway_requests_total{route=\"");
		gw_metrics_label(out, rows[i].route);
		evbuffer_add_printf(out, "\",status=\"%d\",decision=\"%s\"} %llu\n", rows[i].status,
		                    rows[i].allow ? "allow" : "deny",
		                    (unsigned long long)rows[i].count);
	}
	free(rows);
}

/* Reasons are few: sum by name with a quadratic merge over a small array. */
static void render_reasons(struct gw_main *m, struct evbuffer *out, const char *name,
                           const char *help, bool tokens)
{
	const char *names[MET_REASONS];
	uint64_t counts[MET_REASONS];
	size_t n = 0;
	put_head(out, name, "counter", help);
	for (unsigned w = 0; w < m->n_workers; w++) {
		struct gw_metrics *mt = m->workers[w].metrics;
		for (unsigned i = 0; mt && i < MET_REASONS; i++) {
			struct met_reason *x = tokens ? &mt->token_reasons[i] : &mt->reasons[i];
			if (!atomic_load_explicit(&x->used, memory_order_acquire))
				continue;
			size_t j = 0;
			while (j < n && strcmp(names[j], x->name) != 0)
				j++;
			if (j == n) {
				if (n == MET_REASONS)
					continue;
				names[n] = x->name;
				counts[n++] = 0;
			}
			counts[j] += get(&x->count);
		}
	}
	for (size_t j = 0; j < n; j++) {
		evbuffer_add_printf(out, "%s{reason=\"", name);
		gw_metrics_label(out, names[j]);
		evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)counts[j]);
	}
}

/* Cumulative buckets; the count is their sum, so +Inf always equals _count. */
static void render_latency(struct gw_main *m, struct evbuffer *out)
{
	uint64_t b[MET_BUCKETS + 1] = {0}, sum_us = 0, total = 0;
	for (unsigned w = 0; w < m->n_workers; w++) {
		struct gw_metrics *mt = m->workers[w].metrics;
		for (size_t i = 0; mt && i <= MET_BUCKETS; i++)
			b[i] += get(&mt->hist[i]);
		if (mt)
			sum_us += get(&mt->dur_sum_us);
	}
	put_head(out, "gateway_request_duration_seconds", "histogram",
	         "Time from the first byte of a request to its end.");
	for (size_t i = 0; i <= MET_BUCKETS; i++) {
		total += b[i];
		if (i < MET_BUCKETS)
			evbuffer_add_printf(
			    out, "gateway_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			    (double)met_bounds_us[i] / 1e6, (unsigned long long)total);
		else
			evbuffer_add_printf(
			    out, "gateway_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)total);
	}
	evbuffer_add_printf(out, "gateway_request_duration_seconds_sum %.6f\n",
	                    (double)sum_us / 1e6);
	evbuffer_add_printf(out, "gateway_request_duration_seconds_count %llu\n",
	                    (unsigned long long)total);
}

static void render_process(struct gw_main *m, struct evbuffer *out)
{
	struct gw_audit_stats st = {0};
	uint64_t conns = 0, overflow = 0;
	gw_audit_stats(&st);
	for (unsigned w = 0; w < m->n_workers; w++) {
		/* A gauge written by its worker; an aligned word read without tearing. */
		conns += __atomic_load_n(&m->workers[w].n_conns, __ATOMIC_RELAXED);
		if (m->workers[w].metrics)
			overflow += get(&m->workers[w].metrics->overflow);
	}
	put_head(out, "gateway_audit_queue_depth", "gauge",
	         "Audit records waiting for the writer.");
	evbuffer_add_printf(out, "gateway_audit_queue_depth %llu\n", (unsigned long long)st.depth);
	put_head(out, "gateway_audit_dropped_total", "counter",
	         "Audit records dropped (best-effort mode).");
	evbuffer_add_printf(out, "gateway_audit_dropped_total %llu\n",
	                    (unsigned long long)st.dropped);
	put_head(out, "gateway_audit_records_total", "counter", "Audit records written.");
	evbuffer_add_printf(out, "gateway_audit_records_total %llu\n",
	                    (unsigned long long)st.written);
	put_head(out, "gateway_connections_open", "gauge", "Client connections open.");
	evbuffer_add_printf(out, "gateway_connections_open %llu\n", (unsigned long long)conns);
	put_head(out, "gateway_metrics_overflow_total", "counter",
	         "Events not counted in a labelled series because its table was full.");
	evbuffer_add_printf(out, "gateway_metrics_overflow_total %llu\n",
	                    (unsigned long long)overflow);
	put_head(out, "gateway_reloads_total", "counter", "Configuration reloads by result.");
	evbuffer_add_printf(out, "gateway_reloads_total{result=\"ok\"} %llu\n",
	                    (unsigned long long)m->reloads_ok);
	evbuffer_add_printf(out, "gateway_reloads_total{result=\"failed\"} %llu\n",
	                    (unsigned long long)m->reloads_failed);
	put_head(out, "gateway_config_generation", "gauge",
	         "Number of the configuration in service.");
	evbuffer_add_printf(out, "gateway_config_generation %llu\n",
	                    (unsigned long long)m->gen->number);
	const struct conf_snapshot *cfg = m->gen->cfg;
	put_head(out, "gateway_cert_expiry_seconds", "gauge",
	         "Seconds until a listener's server certificate expires (negative: expired).");
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		PUT(out, "gateway_cert_expiry_seconds{listener=\"");
		gw_metrics_label(out, cfg->listeners[i].address);
		evbuffer_add_printf(out, "\"} %ld\n",
		                    pki_server_cert_expiry(cfg->listeners[i].tls, time(NULL)));
	}
	/* Every other certificate file the configuration names (client CA bundles, upstream
	 * CAs and client certificates): the earliest notAfter in each. Read at scrape time,
	 * on the main thread, so a rotated file shows up before the reload that loads it. */
	put_head(out, "gateway_cert_file_expiry_seconds", "gauge",
	         "Seconds until the earliest certificate in a configured file expires.");
	time_t now = time(NULL);
	for (size_t i = 0; i < cfg->n_files; i++) {
		time_t na;
		char subj[256], err[256];
		if (pki_cert_file_not_after(cfg->files[i], &na, subj, sizeof(subj), err,
		                            sizeof(err)) != 0)
			continue; /* keys, CRLs, policy files */
		PUT(out, "gateway_cert_file_expiry_seconds{file=\"");
		gw_metrics_label(out, cfg->files[i]);
		evbuffer_add_printf(out, "\"} %lld\n", (long long)(na - now));
	}
	/* CRL freshness: negative once nextUpdate has passed (stale, in its grace period or
	 * about to be refused by the next reload, depending on crl_next_update). */
	put_head(
	    out, "gateway_crl_next_update_seconds", "gauge",
	    "Seconds until the earliest nextUpdate of a configured CRL file (negative: stale).");
	for (size_t i = 0; i < cfg->n_files; i++) {
		time_t nu;
		char err[256];
		if (pki_crl_file_next_update(cfg->files[i], &nu, err, sizeof(err)) != 0 || nu == 0)
			continue;
		PUT(out, "gateway_crl_next_update_seconds{file=\"");
		gw_metrics_label(out, cfg->files[i]);
		evbuffer_add_printf(out, "\"} %lld\n", (long long)(nu - now));
	}
}

void gw_metrics_render(struct gw_main *m, struct evbuffer *out)
{
	render_requests(m, out);
	render_reasons(m, out, "gateway_handshake_failures_total",
	               "Failed TLS handshakes by reason.", false);
	render_reasons(m, out, "gateway_token_failures_total",
	               "Refused bearer tokens and API keys by reason.", true);
	render_latency(m, out);
	render_process(m, out);
}
