/*
 * gw_loadgen internals: an mTLS HTTP/1.1 load generator (see bench/README.md).
 *
 * Layout: loadgen_opts.c turns argv into an immutable struct lg_opts (URL, resolved
 * address, the request bytes formatted once); loadgen_tls.c builds one SSL_CTX per worker
 * thread; loadgen_conn.c is the per-thread event loop driving non-blocking sockets with
 * SSL_read/SSL_write directly (no bufferevent copy); loadgen_hist.c is a log-linear latency
 * histogram; loadgen_report.c merges the per-thread stats and prints text or JSON.
 *
 * Time is always CLOCK_MONOTONIC nanoseconds (lg_now_ns()).
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

/* ---- types ---- */

/* Why a request attempt failed. Stable tokens come from lg_err_str(). */
enum lg_err {
	LG_ERR_CONNECT = 0, /* socket/connect failed or refused */
	LG_ERR_TLS,         /* handshake failure or TLS alert/protocol error */
	LG_ERR_READ,        /* read failed, or EOF before the response was complete */
	LG_ERR_WRITE,       /* write of the request failed */
	LG_ERR_TIMEOUT,     /* no complete response within --timeout */
	LG_ERR_HTTP,        /* malformed response */
	LG_ERR_COUNT
};

struct lg_opts {
	/* target */
	char host[256]; /* as in the URL, without IPv6 brackets */
	char port[8];   /* decimal */
	char *path;     /* owned: path and query, starts with '/' */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool host_is_ip;
	/* TLS */
	const char *cert_file; /* borrowed: argv */
	const char *key_file;
	const char *ca_file;
	const char *servername; /* SNI and name to verify; NULL = host unless an IP */
	bool insecure;
	int tls_version; /* 0 = TLS 1.2 or 1.3, else TLS1_2_VERSION / TLS1_3_VERSION */
	bool resume;
	/* load shape */
	unsigned conns;
	unsigned threads;
	double duration; /* seconds of measurement; 0 = until total is reached */
	double warmup;   /* seconds before measurement starts */
	uint64_t total;  /* requests to measure; 0 = unlimited */
	double rate;     /* requests/s over all connections; 0 = closed loop */
	double timeout;  /* seconds for one attempt (connect to end of response) */
	bool new_conn;
	/* request */
	const char *method; /* borrowed: argv or literal */
	bool head;          /* a HEAD response has no body whatever its headers say */
	size_t body_size;
	const char **headers; /* owned array of borrowed argv strings */
	size_t n_headers;
	char *request; /* owned: the full request bytes, formatted once */
	size_t request_len;
	/* output */
	const char *url; /* borrowed: argv */
	bool json;
	bool help;
};

/*
 * Log-linear histogram of nanosecond values, in the manner of HdrHistogram: values below
 * 2048 are exact, above that each power of two is split into 1024 buckets (relative error
 * under 0.1%). Values up to LG_HIST_MAX_NS (~137 s) are tracked; larger ones are clamped
 * and counted. Fixed memory: ~230 KiB.
 */
#define LG_HIST_SUB_BITS 11
#define LG_HIST_MAX_NS   ((uint64_t)1 << 37)

struct lg_hist {
	uint64_t *counts; /* owned */
	size_t n;
	uint64_t total;
	uint64_t min;
	uint64_t max;
	uint64_t sum;
	uint64_t clamped;
};

/* What one worker (then the merged run) observed. */
struct lg_stats {
	uint64_t requests;  /* attempts finished: responses + transport errors */
	uint64_t responses; /* complete HTTP responses, any status */
	uint64_t status[6]; /* responses by class: [1]=1xx .. [5]=5xx, [0]=other */
	uint64_t errors[LG_ERR_COUNT];
	char first_err[LG_ERR_COUNT][160]; /* detail of the first error of each kind */
	uint64_t bytes_read;               /* decrypted response bytes */
	uint64_t bytes_written;            /* plaintext request bytes */
	uint64_t handshakes;
	uint64_t resumed;
	struct lg_hist *latency;   /* owned */
	struct lg_hist *handshake; /* owned: connect start to handshake done */
};

/* The result of one run, as printed. */
struct lg_result {
	const struct lg_stats *stats; /* borrowed */
	double elapsed;               /* seconds of measurement */
	double wall;                  /* seconds the workers ran, warmup included */
	double cpu_user;              /* CPU seconds of the whole process over wall */
	double cpu_sys;
};

struct lg_worker;

/* ---- functions ---- */

uint64_t lg_now_ns(void);
const char *lg_err_str(enum lg_err e);

/* Parse argv into a new lg_opts (resolving the host, formatting the request). NULL with a
 * reason in err on any bad option; --help returns opts with help set. */
struct lg_opts *lg_opts_new(int argc, char **argv, char *err, size_t errlen);
void lg_opts_free(struct lg_opts *o);
void lg_opts_usage(FILE *out);
/* Split an https URL into host, port and path (path points into url). 0 or -1 + err. */
int lg_url_split(const char *url, char *host, size_t hostlen, char *port, size_t portlen,
                 const char **path, char *err, size_t errlen);
/* Parse "1.5", "250ms", "10s" or "2m" into seconds. 0 or -1 when malformed. */
int lg_seconds_parse(const char *s, double *out);

struct lg_hist *lg_hist_new(void);
void lg_hist_free(struct lg_hist *h);
void lg_hist_record(struct lg_hist *h, uint64_t ns);
void lg_hist_reset(struct lg_hist *h);
void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);
/* Value at percentile pct (0..100]: the highest value equivalent to the bucket holding it,
 * capped at the exact max. 0 when empty. */
uint64_t lg_hist_percentile(const struct lg_hist *h, double pct);
double lg_hist_mean(const struct lg_hist *h);
double lg_hist_stdev(const struct lg_hist *h);

struct lg_stats *lg_stats_new(void);
void lg_stats_free(struct lg_stats *s);
void lg_stats_reset(struct lg_stats *s);
void lg_stats_merge(struct lg_stats *dst, const struct lg_stats *src);
/* Count one failed attempt of kind e; the first detail of each kind is kept. */
void lg_stats_error(struct lg_stats *s, enum lg_err e, const char *detail);
uint64_t lg_stats_errors_total(const struct lg_stats *s);

/* A client SSL_CTX for these options (cert, key, CA, version, verification). Owned by the
 * caller; NULL + err on an unreadable or mismatched file. */
SSL_CTX *lg_tls_ctx_new(const struct lg_opts *o, char *err, size_t errlen);

/* A worker driving nconns connections (global indexes first_conn..) with its own
 * event_base. Takes ownership of ctx, even on failure. budget: requests to measure,
 * UINT64_MAX = unlimited. */
struct lg_worker *lg_worker_new(const struct lg_opts *o, SSL_CTX *ctx, unsigned first_conn,
                                unsigned nconns, uint64_t budget, char *err, size_t errlen);
void lg_worker_free(struct lg_worker *w);
/* Run until the duration ends or the budget is used; safe to call from its own thread. */
int lg_worker_run(struct lg_worker *w);
const struct lg_stats *lg_worker_stats(const struct lg_worker *w);
/* Measurement window of the last run, monotonic ns. */
void lg_worker_window(const struct lg_worker *w, uint64_t *start, uint64_t *end);

void lg_report_text(FILE *out, const struct lg_opts *o, const struct lg_result *r);
void lg_report_json(FILE *out, const struct lg_opts *o, const struct lg_result *r);

#endif
