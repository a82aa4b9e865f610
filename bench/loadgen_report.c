/* Result printing for gw_loadgen: wrk-like text, or one JSON object (see bench/README.md). */
#include <string.h>

#include "loadgen.h"

static const char *const status_key[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};

static const char *report_mode(const struct lg_opts *o)
{
	return o->new_conn ? (o->resume ? "new-conn+resume" : "new-conn") : "keep-alive";
}

static const char *report_tls(const struct lg_opts *o)
{
	return o->tls_version == TLS1_2_VERSION   ? "1.2"
	       : o->tls_version == TLS1_3_VERSION ? "1.3"
	                                          : "any";
}

/* A duration in ns, scaled to a readable unit. */
static void fmt_time(char *buf, size_t len, double ns)
{
	if (ns < 1e6)
		snprintf(buf, len, "%.1fus", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2fms", ns / 1e6);
	else
		snprintf(buf, len, "%.2fs", ns / 1e9);
}

static void fmt_bytes(char *buf, size_t len, double b)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;
	while (b >= 1024.0 && u < 4) {
		b /= 1024.0;
		u++;
	}
	snprintf(buf, len, "%.2f%s", b, unit[u]);
}

/* One row of percentiles for a histogram, in the text report. */
static void text_hist_row(FILE *out, const char *label, const struct lg_hist *h)
{
	const double pct[] = {50, 90, 99, 99.9};
	char v[16];
	fprintf(out, "  %-10s", label);
	for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++) {
		fmt_time(v, sizeof(v), (double)lg_hist_percentile(h, pct[i]));
		fprintf(out, " %9s", v);
	}
	fmt_time(v, sizeof(v), (double)h->max);
	fprintf(out, " %9s", v);
	fmt_time(v, sizeof(v), lg_hist_mean(h));
	fprintf(out, " %9s", v);
	fmt_time(v, sizeof(v), lg_hist_stdev(h));
	fprintf(out, " %9s\n", v);
}

static void text_errors(FILE *out, const struct lg_stats *s)
{
	uint64_t total = lg_stats_errors_total(s);
	fprintf(out, "  Errors: %llu", (unsigned long long)total);
	for (size_t i = 0; i < LG_ERR_COUNT; i++)
		if (s->errors[i])
			fprintf(out, ", %s %llu", lg_err_str((enum lg_err)i),
			        (unsigned long long)s->errors[i]);
	for (size_t i = 0; i < 6; i++)
		if (i != 2 && s->status[i])
			fprintf(out, ", status %s %llu", status_key[i],
			        (unsigned long long)s->status[i]);
	fputc('\n', out);
	for (size_t i = 0; i < LG_ERR_COUNT; i++)
		if (s->first_err[i][0])
			fprintf(out, "    first %s error: %s\n", lg_err_str((enum lg_err)i),
			        s->first_err[i]);
}

void lg_report_text(FILE *out, const struct lg_opts *o, const struct lg_result *r)
{
	const struct lg_stats *s = r->stats;
	double el = r->elapsed > 0 ? r->elapsed : 1e-9;
	char rb[24], wb[24], tb[24];
	fprintf(out, "gw_loadgen %.2fs @ %s\n", r->elapsed, o->url);
	fprintf(out, "  %u threads, %u connections, %s, TLS %s, ", o->threads, o->conns,
	        report_mode(o), report_tls(o));
	if (o->rate > 0)
		fprintf(out, "open loop at %.1f req/s (latency from scheduled send)\n", o->rate);
	else
		fprintf(out, "closed loop\n");
	fprintf(out, "  %-10s %9s %9s %9s %9s %9s %9s %9s\n", "", "p50", "p90", "p99", "p99.9",
	        "max", "mean", "stdev");
	text_hist_row(out, "Latency", s->latency);
	if (s->handshakes)
		text_hist_row(out, "Handshake", s->handshake);
	fmt_bytes(rb, sizeof(rb), (double)s->bytes_read);
	fmt_bytes(wb, sizeof(wb), (double)s->bytes_written);
	fprintf(out, "  %llu requests in %.2fs, %llu ok (2xx), %s read, %s written\n",
	        (unsigned long long)s->requests, r->elapsed, (unsigned long long)s->status[2], rb,
	        wb);
	fmt_bytes(tb, sizeof(tb), (double)s->bytes_read / el);
	fprintf(out, "  Requests/sec: %10.2f\n  Transfer/sec: %10s\n", (double)s->responses / el,
	        tb);
	fprintf(out, "  Handshakes: %llu (%llu resumed, %.2f/s)\n",
	        (unsigned long long)s->handshakes, (unsigned long long)s->resumed,
	        (double)s->handshakes / el);
	text_errors(out, s);
	if (o->rate > 0 && (double)s->requests / el < 0.95 * o->rate)
		fprintf(out,
		        "  Note: only %.1f of the %.1f req/s asked for were sent; the server (or "
		        "this generator) is saturated\n",
		        (double)s->requests / el, o->rate);
	if (s->latency->clamped)
		fprintf(out, "  %llu latencies above the histogram range were clamped\n",
		        (unsigned long long)s->latency->clamped);
	fprintf(out, "  CPU: %.1f%% of one core (user %.2fs, sys %.2fs)\n",
	        r->wall > 0 ? (r->cpu_user + r->cpu_sys) / r->wall * 100.0 : 0.0, r->cpu_user,
	        r->cpu_sys);
}

/* A JSON string literal; error details come from OpenSSL and llhttp, so escape them. */
static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

/* {"count":..,"min":..,...} in microseconds with sub-microsecond decimals. */
static void json_hist(FILE *out, const struct lg_hist *h)
{
	fprintf(out,
	        "{\"count\": %llu, \"min\": %.3f, \"mean\": %.3f, \"stdev\": %.3f, "
	        "\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p99_9\": %.3f, \"max\": %.3f}",
	        (unsigned long long)h->total, h->total ? (double)h->min / 1e3 : 0.0,
	        lg_hist_mean(h) / 1e3, lg_hist_stdev(h) / 1e3,
	        (double)lg_hist_percentile(h, 50) / 1e3, (double)lg_hist_percentile(h, 90) / 1e3,
	        (double)lg_hist_percentile(h, 99) / 1e3, (double)lg_hist_percentile(h, 99.9) / 1e3,
	        (double)h->max / 1e3);
}

static void json_errors(FILE *out, const struct lg_stats *s)
{
	fputs("  \"errors\": {", out);
	for (size_t i = 0; i < LG_ERR_COUNT; i++)
		fprintf(out, "\"%s\": %llu, ", lg_err_str((enum lg_err)i),
		        (unsigned long long)s->errors[i]);
	for (size_t i = 0; i < 6; i++)
		if (i != 2)
			fprintf(out, "\"status_%s\": %llu, ", status_key[i],
			        (unsigned long long)s->status[i]);
	fprintf(out, "\"total\": %llu},\n  \"error_detail\": {",
	        (unsigned long long)lg_stats_errors_total(s));
	const char *sep = "";
	for (size_t i = 0; i < LG_ERR_COUNT; i++) {
		if (!s->first_err[i][0])
			continue;
		fprintf(out, "%s\"%s\": ", sep, lg_err_str((enum lg_err)i));
		json_str(out, s->first_err[i]);
		sep = ", ";
	}
	fputs("},\n", out);
}

void lg_report_json(FILE *out, const struct lg_opts *o, const struct lg_result *r)
{
	const struct lg_stats *s = r->stats;
	double el = r->elapsed > 0 ? r->elapsed : 1e-9;
	fputs("{\n  \"url\": ", out);
	json_str(out, o->url);
	fprintf(out,
	        ",\n  \"mode\": \"%s\", \"tls\": \"%s\", \"threads\": %u, \"connections\": %u, "
	        "\"rate\": %.3f,\n",
	        report_mode(o), report_tls(o), o->threads, o->conns, o->rate);
	fprintf(
	    out,
	    "  \"duration_s\": %.6f, \"requests\": %llu, \"responses\": %llu, \"ok\": %llu,\n"
	    "  \"rps\": %.2f, \"ok_rps\": %.2f, \"bytes_read\": %llu, \"bytes_written\": %llu,\n",
	    r->elapsed, (unsigned long long)s->requests, (unsigned long long)s->responses,
	    (unsigned long long)s->status[2], (double)s->responses / el, (double)s->status[2] / el,
	    (unsigned long long)s->bytes_read, (unsigned long long)s->bytes_written);
	fputs("  \"status\": {", out);
	for (size_t i = 1; i <= 6; i++)
		fprintf(out, "\"%s\": %llu%s", status_key[i % 6],
		        (unsigned long long)s->status[i % 6], i < 6 ? ", " : "},\n");
	json_errors(out, s);
	fputs("  \"latency_us\": ", out);
	json_hist(out, s->latency);
	fprintf(out, ",\n  \"handshakes\": %llu, \"resumed\": %llu, \"handshake_us\": ",
	        (unsigned long long)s->handshakes, (unsigned long long)s->resumed);
	json_hist(out, s->handshake);
	fprintf(out,
	        ",\n  \"cpu\": {\"user_s\": %.3f, \"sys_s\": %.3f, \"wall_s\": %.3f, "
	        "\"pct_one_core\": %.1f}\n}\n",
	        r->cpu_user, r->cpu_sys, r->wall,
	        r->wall > 0 ? (r->cpu_user + r->cpu_sys) / r->wall * 100.0 : 0.0);
}
