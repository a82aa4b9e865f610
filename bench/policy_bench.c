/*
 * policy_bench: what a policy decision and a policy build cost as the rule count grows,
 * beside a naive linear scan over the very same rules.
 *
 * Each size gets N rules for N/10 certificate CN identities (10 prefixes per identity,
 * one of them a deny below another's allow, a third of them GET/HEAD only). Queries pick
 * an identity and a path under one of its prefixes or under another identity's, so both
 * allows and denies are measured. Callers are drawn uniformly (every decision touches a
 * random part of the index: the worst case for caches) and, in a second run, Zipf-like
 * (a few callers make most requests, as in production). Every size runs in its own child
 * process so RSS growth is not hidden by memory a previous size gave back to malloc. The
 * indexed and the naive answers are compared on every naive query: a disagreement is a
 * bug and makes the exit status 1. Each indexed figure is the best of three rounds; rates
 * and build times count this thread's CPU time, latencies are wall-clock.
 *
 * usage: policy_bench [--quick] [--sizes 10,1000,...] [--seconds S]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"

#define N_QUERIES    (1u << 16)
#define PATH_CAP     64
#define MAX_SIZES    8
#define PER_IDENTITY 10
#define N_SERVICES   4096
#define ROUNDS       3

/* One request; the caller's CN is copied in, as a connection holds its peer's identity. */
struct query {
	uint32_t id; /* identity index */
	unsigned method;
	char path[PATH_CAP];
	size_t len;
	char cn[32];
};

/* One generated rule set: specs plus the strings and arrays they point into. */
struct bench_set {
	size_t n_rules, n_ids;
	struct policy_rule_spec *rules;
	char (*names)[32];
	char (*prefixes)[32];
	const char **pp; /* pp[i] = prefixes[i]: each rule has exactly one prefix */
};

struct bench_result {
	size_t n_rules;
	double build_s, rss_mb, dec_per_s, p50_ns, p99_ns;
	double zipf_per_s, zipf_p99_ns;
	double naive_per_s, naive_p99_ns;
	unsigned long mismatches;
};

/* How callers are drawn: uniformly, or Zipf (s = 1) over a shuffled ranking. */
struct draw {
	const double *cdf; /* NULL = uniform */
	const uint32_t *perm;
};

/*
 * CPU time of this thread: rates and build times are per CPU second, so time the machine
 * gave to other processes (the development VM is shared) does not count against us.
 */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: reproducible and fast enough not to show in the numbers. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Resident set size of this process in MiB. */
static double rss_mb(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(f);
	return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* Prefix j of identity i: services are shared between identities, as in real policies. */
static void prefix_of(char *out, size_t cap, size_t i, unsigned j)
{
	unsigned svc = (unsigned)((i + (size_t)j * 7919u) % N_SERVICES);

	if (j == PER_IDENTITY - 1) /* the deny, below the allow of prefix 0 */
		snprintf(out, cap, "/svc/%u/r0/admin", (unsigned)(i % N_SERVICES));
	else
		snprintf(out, cap, "/svc/%u/r%u", svc, j);
}

static void set_free(struct bench_set *s)
{
	free(s->rules);
	free(s->names);
	free(s->prefixes);
	free(s->pp);
}

/* Generates n rules; 0 or -1 when memory runs out. */
static int set_make(struct bench_set *s, size_t n)
{
	memset(s, 0, sizeof(*s));
	s->n_rules = n;
	s->n_ids = (n + PER_IDENTITY - 1) / PER_IDENTITY;
	s->rules = calloc(n, sizeof(*s->rules));
	s->names = calloc(s->n_ids, sizeof(*s->names));
	s->prefixes = calloc(n, sizeof(*s->prefixes));
	s->pp = calloc(n, sizeof(*s->pp));
	if (!s->rules || !s->names || !s->prefixes || !s->pp)
		goto fail;
	for (size_t i = 0; i < s->n_ids; i++)
		snprintf(s->names[i], sizeof(s->names[i]), "client-%07zu", i);
	for (size_t r = 0; r < n; r++) {
		size_t id = r / PER_IDENTITY;
		unsigned j = (unsigned)(r % PER_IDENTITY);
		prefix_of(s->prefixes[r], sizeof(s->prefixes[r]), id, j);
		s->pp[r] = s->prefixes[r];
		s->rules[r] = (struct policy_rule_spec){
		    .effect = j == PER_IDENTITY - 1 ? POLICY_DENY : POLICY_ALLOW,
		    .who = POLICY_WHO_CN,
		    .value = s->names[id],
		    .prefixes = &s->pp[r],
		    .n_prefixes = 1,
		    .methods = j % 3 == 1 ? POLICY_M_GET | POLICY_M_HEAD : 0,
		    .file = "bench.conf",
		    .line = (int)r + 1,
		};
	}
	return 0;
fail:
	set_free(s);
	return -1;
}

/* A caller drawn as dr says. */
static size_t draw_id(const struct bench_set *s, const struct draw *dr, uint64_t *seed)
{
	if (!dr->cdf)
		return (size_t)(rnd(seed) % s->n_ids);
	double u = (double)(rnd(seed) >> 11) / (double)(1ull << 53);
	size_t lo = 0, hi = s->n_ids - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dr->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return dr->perm[lo];
}

/*
 * The Zipf ranking: identity perm[r] is the r-th most frequent caller, with weight
 * 1 / (r + 1); shuffled so that hot identities are spread over the whole index.
 */
static int zipf_make(const struct bench_set *s, double **cdf, uint32_t **perm)
{
	uint64_t seed = 0x2545f4914f6cdd1dull;
	double sum = 0;

	*cdf = calloc(s->n_ids, sizeof(**cdf));
	*perm = calloc(s->n_ids, sizeof(**perm));
	if (!*cdf || !*perm)
		return -1;
	for (size_t i = 0; i < s->n_ids; i++) {
		(*perm)[i] = (uint32_t)i;
		sum += 1.0 / (double)(i + 1);
		(*cdf)[i] = sum;
	}
	for (size_t i = 0; i < s->n_ids; i++)
		(*cdf)[i] /= sum;
	for (size_t i = s->n_ids; i > 1; i--) {
		size_t j = (size_t)(rnd(&seed) % i);
		uint32_t t = (*perm)[i - 1];
		(*perm)[i - 1] = (*perm)[j];
		(*perm)[j] = t;
	}
	return 0;
}

/* Random queries: 3 in 4 under one of the caller's own prefixes, the rest elsewhere. */
static void queries_make(const struct bench_set *s, struct query *q, size_t n, uint64_t seed,
                         const struct draw *dr)
{
	static const unsigned methods[] = {POLICY_M_GET, POLICY_M_GET, POLICY_M_POST,
	                                   POLICY_M_DELETE};

	for (size_t k = 0; k < n; k++) {
		size_t id = draw_id(s, dr, &seed);
		size_t owner = rnd(&seed) % 4 ? id : (size_t)(rnd(&seed) % s->n_ids);
		unsigned j = (unsigned)(rnd(&seed) % PER_IDENTITY);
		char pf[32];
		prefix_of(pf, sizeof(pf), owner, j);
		q[k].id = (uint32_t)id;
		memcpy(q[k].cn, s->names[id], sizeof(q[k].cn));
		q[k].method = methods[rnd(&seed) % 4];
		int len =
		    snprintf(q[k].path, PATH_CAP, "%s/item/%u", pf, (unsigned)(rnd(&seed) % 1000));
		q[k].len = (size_t)len;
	}
}

/* The reference: every rule looked at, longest covering prefix wins, deny beats allow. */
static const struct policy_rule_spec *naive_decide(const struct bench_set *s, const char *cn,
                                                   unsigned method, const char *path, size_t len,
                                                   enum policy_effect *effect)
{
	const struct policy_rule_spec *best[2] = {NULL, NULL};
	size_t best_len[2] = {0, 0};

	for (size_t r = 0; r < s->n_rules; r++) {
		const struct policy_rule_spec *rs = &s->rules[r];
		if (rs->who != POLICY_WHO_CN || strcmp(rs->value, cn) != 0)
			continue;
		if (rs->methods && !(rs->methods & method))
			continue;
		for (size_t i = 0; i < rs->n_prefixes; i++) {
			size_t pl = strlen(rs->prefixes[i]);
			if (!policy_prefix_covers(rs->prefixes[i], pl, path, len))
				continue;
			if (!best[rs->effect] || pl > best_len[rs->effect]) {
				best[rs->effect] = rs;
				best_len[rs->effect] = pl;
			}
		}
	}
	*effect = best[POLICY_DENY] || !best[POLICY_ALLOW] ? POLICY_DENY : POLICY_ALLOW;
	return best[POLICY_DENY] ? best[POLICY_DENY] : best[POLICY_ALLOW];
}

static void decide_one(const struct policy *p, const struct query *q, struct policy_decision *d)
{
	struct authn_cert_id cert = {.cn = (char *)q->cn};
	const struct authn_principal who = {.cert = &cert};

	policy_decide(p, &who, q->method, q->path, q->len, d);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Throughput: the query set over and over, untimed inside, for at least `seconds`. */
static double indexed_rate(const struct policy *p, const struct query *q, double seconds)
{
	struct policy_decision d;
	unsigned long n = 0, allowed = 0;
	double t0 = now_s(), t;

	do {
		for (size_t k = 0; k < N_QUERIES; k++) {
			decide_one(p, &q[k], &d);
			allowed += d.effect == POLICY_ALLOW;
		}
		n += N_QUERIES;
		t = now_s() - t0;
	} while (t < seconds);
	/* Keeps the compiler from dropping the loop, and tells a broken run apart. */
	if (allowed == 0)
		fprintf(stderr, "policy_bench: no query was allowed\n");
	return (double)n / t;
}

/* Latency of each decision on its own, clock reads included; p50 and p99 out. */
static void indexed_latency(const struct policy *p, const struct query *q, uint64_t *ns,
                            double *p50, double *p99)
{
	struct policy_decision d;

	for (size_t k = 0; k < N_QUERIES; k++) {
		uint64_t t0 = now_ns();
		decide_one(p, &q[k], &d);
		ns[k] = now_ns() - t0;
	}
	qsort(ns, N_QUERIES, sizeof(*ns), cmp_u64);
	*p50 = (double)ns[N_QUERIES / 2];
	*p99 = (double)ns[N_QUERIES * 99 / 100];
}

/* The naive scan on as many queries as fit in `seconds` (at least 20). */
static void naive_run(const struct policy *p, const struct bench_set *s, const struct query *q,
                      uint64_t *ns, double seconds, struct bench_result *res)
{
	double t0 = now_s();
	size_t k = 0;

	while (k < N_QUERIES && (k < 20 || now_s() - t0 < seconds)) {
		enum policy_effect e;
		struct policy_decision d;
		uint64_t a = now_ns();
		const struct policy_rule_spec *rs =
		    naive_decide(s, s->names[q[k].id], q[k].method, q[k].path, q[k].len, &e);
		ns[k] = now_ns() - a;
		decide_one(p, &q[k], &d);
		int line = 0;
		policy_rule_file(d.rule, &line);
		if (e != d.effect || (rs ? rs->line : 0) != line)
			res->mismatches++;
		k++;
	}
	double t = now_s() - t0;
	qsort(ns, k, sizeof(*ns), cmp_u64);
	res->naive_per_s = (double)k / t;
	res->naive_p99_ns = (double)ns[k * 99 / 100];
}

/* Throughput and latency for queries drawn as dr says (rate, p50, p99 into out[0..2]). */
/*
 * The best of ROUNDS rounds: on a shared machine other processes only ever make a round
 * slower, so the best one is the closest to what the code costs.
 */
static void measure(const struct policy *p, const struct bench_set *s, struct query *q,
                    uint64_t *ns, double seconds, const struct draw *dr, double out[3])
{
	queries_make(s, q, N_QUERIES, 0x9e3779b97f4a7c15ull ^ s->n_rules, dr);
	indexed_rate(p, q, seconds / 4); /* warm-up: caches, branch predictors, pages */
	out[0] = 0;
	out[1] = out[2] = 1e18;
	for (int r = 0; r < ROUNDS; r++) {
		double rate = indexed_rate(p, q, seconds / ROUNDS), p50, p99;
		indexed_latency(p, q, ns, &p50, &p99);
		out[0] = rate > out[0] ? rate : out[0];
		out[1] = p50 < out[1] ? p50 : out[1];
		out[2] = p99 < out[2] ? p99 : out[2];
	}
}

/* One size, measured in the calling process; 0 or -1. */
static int bench_size(size_t n, double seconds, struct bench_result *res)
{
	struct bench_set s;
	struct policy *p = NULL;
	struct query *q = calloc(N_QUERIES, sizeof(*q));
	uint64_t *ns = calloc(N_QUERIES, sizeof(*ns));
	double *cdf = NULL, m[3];
	uint32_t *perm = NULL;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	res->n_rules = n;
	if (!q || !ns || set_make(&s, n) < 0)
		goto fail_early;
	const struct policy_spec spec = {.rules = s.rules, .n_rules = n};
	double rss0 = rss_mb(), t0 = now_s();
	if (policy_build(&spec, NULL, NULL, &p) < 0 || zipf_make(&s, &cdf, &perm) < 0)
		goto fail;
	res->build_s = now_s() - t0;
	res->rss_mb = rss_mb() - rss0;
	const struct draw zipf = {cdf, perm}, uniform = {NULL, NULL};
	measure(p, &s, q, ns, seconds, &zipf, m);
	res->zipf_per_s = m[0];
	res->zipf_p99_ns = m[2];
	measure(p, &s, q, ns, seconds, &uniform, m);
	res->dec_per_s = m[0];
	res->p50_ns = m[1];
	res->p99_ns = m[2];
	naive_run(p, &s, q, ns, seconds, res);
	rc = 0;
fail:
	policy_free(p);
	set_free(&s);
	free(cdf);
	free(perm);
fail_early:
	free(q);
	free(ns);
	return rc;
}

/* Runs one size in a child so each starts from a fresh heap; the result comes back on a pipe. */
static int bench_fork(size_t n, double seconds, struct bench_result *res)
{
	int fd[2], status = 0;

	if (pipe(fd) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		close(fd[0]);
		int rc = bench_size(n, seconds, res);
		if (rc == 0 && write(fd[1], res, sizeof(*res)) != (ssize_t)sizeof(*res))
			rc = -1;
		_exit(rc == 0 ? 0 : 1);
	}
	close(fd[1]);
	ssize_t got = read(fd[0], res, sizeof(*res));
	close(fd[0]);
	waitpid(pid, &status, 0);
	return got == (ssize_t)sizeof(*res) && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0
	                                                                                     : -1;
}

/* Median cost of the two clock reads around each timed decision. */
static double clock_overhead(void)
{
	uint64_t v[1001];

	for (size_t i = 0; i < 1001; i++) {
		uint64_t t0 = now_ns();
		v[i] = now_ns() - t0;
	}
	qsort(v, 1001, sizeof(*v), cmp_u64);
	return (double)v[500];
}

static void print_header(void)
{
	printf("%9s %8s %8s %8s | %11s %7s %7s | %11s %7s | %9s %11s | %s\n", "rules", "idents",
	       "build_ms", "rss_MiB", "uniform/s", "p50_ns", "p99_ns", "zipf/s", "p99_ns",
	       "naive/s", "naive_p99", "mismatch");
}

static void print_result(const struct bench_result *r)
{
	printf("%9zu %8zu %8.1f %8.1f | %11.0f %7.0f %7.0f | %11.0f %7.0f | %9.0f %11.0f | %lu\n",
	       r->n_rules, (r->n_rules + PER_IDENTITY - 1) / PER_IDENTITY, r->build_s * 1000.0,
	       r->rss_mb, r->dec_per_s, r->p50_ns, r->p99_ns, r->zipf_per_s, r->zipf_p99_ns,
	       r->naive_per_s, r->naive_p99_ns, r->mismatches);
	fflush(stdout);
}

/* Parses "10,1000" into sizes; returns the count, 0 on a malformed list. */
static size_t parse_sizes(const char *arg, size_t *sizes)
{
	size_t n = 0;
	char *end;

	while (*arg && n < MAX_SIZES) {
		unsigned long long v = strtoull(arg, &end, 10);
		if (end == arg || v == 0 || (*end && *end != ','))
			return 0;
		sizes[n++] = (size_t)v;
		arg = *end ? end + 1 : end;
	}
	return *arg ? 0 : n;
}

int main(int argc, char **argv)
{
	size_t sizes[MAX_SIZES] = {10, 1000, 100000, 1000000};
	size_t n_sizes = 4;
	double seconds = 1.5;
	struct bench_result res[MAX_SIZES];
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			seconds = 0.2;
		} else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			n_sizes = parse_sizes(argv[++i], sizes);
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			n_sizes = 0;
			break;
		}
	}
	if (n_sizes == 0 || !(seconds > 0)) {
		fprintf(stderr, "usage: policy_bench [--quick] [--sizes N,N,...] [--seconds S]\n");
		return 2;
	}
	print_header();
	for (size_t i = 0; i < n_sizes; i++) {
		if (bench_fork(sizes[i], seconds, &res[i]) < 0) {
			fprintf(stderr, "policy_bench: size %zu failed\n", sizes[i]);
			return 1;
		}
		print_result(&res[i]);
		if (res[i].mismatches)
			rc = 1;
	}
	if (n_sizes > 1)
		printf("decisions/s, smallest / largest: uniform %.2fx, zipf %.2fx\n",
		       res[0].dec_per_s / res[n_sizes - 1].dec_per_s,
		       res[0].zipf_per_s / res[n_sizes - 1].zipf_per_s);
	printf("latencies include two clock reads, %.0f ns\n", clock_overhead());
	return rc;
}
