/* Latency histogram and per-worker counters for gw_loadgen. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen.h"

#define SUB_COUNT ((uint64_t)1 << LG_HIST_SUB_BITS)
#define SUB_HALF  (SUB_COUNT / 2)

/* Current CLOCK_MONOTONIC time in nanoseconds (vDSO, no syscall). */
uint64_t lg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Stable token for an error kind, used as a JSON key. */
const char *lg_err_str(enum lg_err e)
{
	static const char *const names[LG_ERR_COUNT] = {
	    [LG_ERR_CONNECT] = "connect", [LG_ERR_TLS] = "tls",         [LG_ERR_READ] = "read",
	    [LG_ERR_WRITE] = "write",     [LG_ERR_TIMEOUT] = "timeout", [LG_ERR_HTTP] = "http",
	};
	return (unsigned)e < LG_ERR_COUNT ? names[e] : "unknown";
}

/* Bucket index of v (v < LG_HIST_MAX_NS): exact below SUB_COUNT, then SUB_HALF buckets per
 * power of two, laid out contiguously. */
static size_t hist_index(uint64_t v)
{
	if (v < SUB_COUNT)
		return (size_t)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - (LG_HIST_SUB_BITS - 1);
	return (size_t)(shift * SUB_HALF + (v >> shift));
}

/* Highest value that maps to bucket idx (the inverse of hist_index). */
static uint64_t hist_bucket_high(size_t idx)
{
	if (idx < SUB_COUNT)
		return idx;
	uint64_t shift = idx / SUB_HALF - 1;
	uint64_t sub = idx - shift * SUB_HALF;
	return ((sub + 1) << shift) - 1;
}

/* Lowest value that maps to bucket idx. */
static uint64_t hist_bucket_low(size_t idx)
{
	if (idx < SUB_COUNT)
		return idx;
	uint64_t shift = idx / SUB_HALF - 1;
	return (idx - shift * SUB_HALF) << shift;
}

/* A new empty histogram, or NULL when out of memory. Free with lg_hist_free(). */
struct lg_hist *lg_hist_new(void)
{
	struct lg_hist *h = calloc(1, sizeof(*h));
	if (!h)
		goto fail;
	h->n = hist_index(LG_HIST_MAX_NS - 1) + 1;
	h->counts = calloc(h->n, sizeof(*h->counts));
	if (!h->counts)
		goto fail;
	h->min = UINT64_MAX;
	return h;
fail:
	lg_hist_free(h);
	return NULL;
}

void lg_hist_free(struct lg_hist *h)
{
	if (!h)
		return;
	free(h->counts);
	free(h);
}

/* Count one value; values past the tracked range are clamped so percentiles stay bounded
 * while the exact max still shows the outlier. */
void lg_hist_record(struct lg_hist *h, uint64_t ns)
{
	uint64_t v = ns;
	if (v >= LG_HIST_MAX_NS) {
		v = LG_HIST_MAX_NS - 1;
		h->clamped++;
	}
	h->counts[hist_index(v)]++;
	h->total++;
	h->sum += ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

void lg_hist_reset(struct lg_hist *h)
{
	memset(h->counts, 0, h->n * sizeof(*h->counts));
	h->total = h->sum = h->max = h->clamped = 0;
	h->min = UINT64_MAX;
}

/* Add src's counts into dst (same geometry by construction). */
void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
	for (size_t i = 0; i < dst->n; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->sum += src->sum;
	dst->clamped += src->clamped;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t lg_hist_percentile(const struct lg_hist *h, double pct)
{
	if (h->total == 0)
		return 0;
	if (pct >= 100.0)
		return h->max;
	/* The rank is rounded up so p50 of {1,2} is 1 and p99.9 of 1000 values is the 999th;
	 * the epsilon keeps 99.9/100*1000 = 999.0000000000001 from rounding up to 1000. */
	uint64_t rank = (uint64_t)ceil(pct * (double)h->total / 100.0 - 1e-7);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (size_t i = 0; i < h->n; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = hist_bucket_high(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

double lg_hist_mean(const struct lg_hist *h)
{
	return h->total ? (double)h->sum / (double)h->total : 0.0;
}

/* Standard deviation from bucket midpoints: exact sums of squares of ns values would
 * overflow, and bucket error is below 0.1%. */
double lg_hist_stdev(const struct lg_hist *h)
{
	if (h->total < 2)
		return 0.0;
	double mean = lg_hist_mean(h), acc = 0.0;
	for (size_t i = 0; i < h->n; i++) {
		if (!h->counts[i])
			continue;
		double mid = ((double)hist_bucket_low(i) + (double)hist_bucket_high(i)) / 2.0;
		acc += (double)h->counts[i] * (mid - mean) * (mid - mean);
	}
	return sqrt(acc / (double)(h->total - 1));
}

/* New zeroed stats with both histograms, or NULL when out of memory. */
struct lg_stats *lg_stats_new(void)
{
	struct lg_stats *s = calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	s->latency = lg_hist_new();
	s->handshake = lg_hist_new();
	if (!s->latency || !s->handshake)
		goto fail;
	return s;
fail:
	lg_stats_free(s);
	return NULL;
}

void lg_stats_free(struct lg_stats *s)
{
	if (!s)
		return;
	lg_hist_free(s->latency);
	lg_hist_free(s->handshake);
	free(s);
}

/* Zero every counter but keep the histograms' memory (used when warmup ends). */
void lg_stats_reset(struct lg_stats *s)
{
	struct lg_hist *lat = s->latency, *hs = s->handshake;
	memset(s, 0, sizeof(*s));
	s->latency = lat;
	s->handshake = hs;
	lg_hist_reset(lat);
	lg_hist_reset(hs);
}

void lg_stats_merge(struct lg_stats *dst, const struct lg_stats *src)
{
	dst->requests += src->requests;
	dst->responses += src->responses;
	for (size_t i = 0; i < 6; i++)
		dst->status[i] += src->status[i];
	for (size_t i = 0; i < LG_ERR_COUNT; i++) {
		dst->errors[i] += src->errors[i];
		if (!dst->first_err[i][0])
			memcpy(dst->first_err[i], src->first_err[i], sizeof(dst->first_err[i]));
	}
	dst->bytes_read += src->bytes_read;
	dst->bytes_written += src->bytes_written;
	dst->handshakes += src->handshakes;
	dst->resumed += src->resumed;
	lg_hist_merge(dst->latency, src->latency);
	lg_hist_merge(dst->handshake, src->handshake);
}

void lg_stats_error(struct lg_stats *s, enum lg_err e, const char *detail)
{
	s->requests++;
	s->errors[e]++;
	if (!s->first_err[e][0] && detail)
		snprintf(s->first_err[e], sizeof(s->first_err[e]), "%s", detail);
}

/* Transport errors plus non-2xx responses: everything that is not a success. */
uint64_t lg_stats_errors_total(const struct lg_stats *s)
{
	uint64_t n = 0;
	for (size_t i = 0; i < LG_ERR_COUNT; i++)
		n += s->errors[i];
	return n + s->responses - s->status[2];
}
