/*
 * gw_loadgen: HTTP/1.1 load generator that presents a client certificate, so an mTLS
 * gateway can be measured next to nginx and HAProxy (wrk, h2load and hey cannot).
 * See bench/README.md for the method and the meaning of every number printed.
 *
 * main() only wires things: options, one SSL_CTX and one worker per thread, the threads,
 * then the merged report. Exit status: 0 when at least one request got a 2xx, 1 when none
 * did, 2 on bad options or setup failure.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "loadgen.h"

struct run_thread {
	struct lg_worker *w; /* borrowed */
	pthread_t tid;
	bool started;
	int rc;
};

static void *run_thread_main(void *arg)
{
	struct run_thread *t = arg;
	t->rc = lg_worker_run(t->w);
	return NULL;
}

/* Every connection needs a descriptor; the default soft limit of 1024 is too low for -c. */
static void nofile_raise(unsigned conns)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)conns + 64;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		fprintf(stderr, "gw_loadgen: cannot raise the descriptor limit\n");
}

/* Build thread i's worker: its share of connections and of the -n budget. */
static struct lg_worker *worker_build(const struct lg_opts *o, unsigned i, char *err, size_t errlen)
{
	unsigned base = o->conns / o->threads, extra = o->conns % o->threads;
	unsigned nconns = base + (i < extra ? 1 : 0);
	unsigned first = i * base + (i < extra ? i : extra);
	uint64_t budget = UINT64_MAX;
	if (o->total) {
		uint64_t bb = o->total / o->threads, be = o->total % o->threads;
		budget = bb + (i < be ? 1 : 0);
	}
	SSL_CTX *ctx = lg_tls_ctx_new(o, err, errlen);
	if (!ctx)
		return NULL;
	return lg_worker_new(o, ctx, first, nconns, budget, err, errlen);
}

static double tv_sec(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Run all workers (worker 0 on this thread) and fill r->wall and the CPU times. */
static int workers_run(struct run_thread *t, unsigned n, struct lg_result *r)
{
	struct rusage ru0, ru1;
	int rc = 0;
	getrusage(RUSAGE_SELF, &ru0);
	uint64_t t0 = lg_now_ns();
	for (unsigned i = 1; i < n; i++) {
		if (pthread_create(&t[i].tid, NULL, run_thread_main, &t[i]) != 0) {
			fprintf(stderr, "gw_loadgen: cannot start thread %u\n", i);
			rc = -1;
			continue;
		}
		t[i].started = true;
	}
	run_thread_main(&t[0]);
	for (unsigned i = 1; i < n; i++)
		if (t[i].started)
			pthread_join(t[i].tid, NULL);
	r->wall = (double)(lg_now_ns() - t0) / 1e9;
	getrusage(RUSAGE_SELF, &ru1);
	r->cpu_user = tv_sec(ru1.ru_utime) - tv_sec(ru0.ru_utime);
	r->cpu_sys = tv_sec(ru1.ru_stime) - tv_sec(ru0.ru_stime);
	for (unsigned i = 0; i < n; i++)
		rc |= t[i].rc;
	return rc;
}

/* Merge the workers' stats into total and return the measured window in seconds. */
static double workers_merge(struct run_thread *t, unsigned n, struct lg_stats *total)
{
	uint64_t start = UINT64_MAX, end = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t s, e;
		lg_stats_merge(total, lg_worker_stats(t[i].w));
		lg_worker_window(t[i].w, &s, &e);
		start = s < start ? s : start;
		end = e > end ? e : end;
	}
	return end > start ? (double)(end - start) / 1e9 : 0.0;
}

int main(int argc, char **argv)
{
	char err[512];
	int rc = 2;
	struct run_thread *t = NULL;
	struct lg_stats *total = NULL;
	struct lg_opts *o = lg_opts_new(argc, argv, err, sizeof(err));
	if (!o) {
		fprintf(stderr, "gw_loadgen: %s\n", err);
		goto fail;
	}
	if (o->help) {
		lg_opts_usage(stdout);
		rc = 0;
		goto fail;
	}
	/* A server closing mid-write must be an error count, not a dead process. */
	signal(SIGPIPE, SIG_IGN);
	nofile_raise(o->conns);
	t = calloc(o->threads, sizeof(*t));
	total = lg_stats_new();
	if (!t || !total) {
		fprintf(stderr, "gw_loadgen: out of memory\n");
		goto fail;
	}
	for (unsigned i = 0; i < o->threads; i++) {
		t[i].w = worker_build(o, i, err, sizeof(err));
		if (!t[i].w) {
			fprintf(stderr, "gw_loadgen: %s\n", err);
			goto fail;
		}
	}
	struct lg_result r = {.stats = total};
	if (workers_run(t, o->threads, &r) != 0)
		fprintf(stderr, "gw_loadgen: a worker failed; results are partial\n");
	r.elapsed = workers_merge(t, o->threads, total);
	if (o->json)
		lg_report_json(stdout, o, &r);
	else
		lg_report_text(stdout, o, &r);
	rc = total->status[2] > 0 ? 0 : 1;
fail:
	for (unsigned i = 0; t && i < o->threads; i++)
		lg_worker_free(t[i].w);
	free(t);
	lg_stats_free(total);
	lg_opts_free(o);
	return rc;
}
