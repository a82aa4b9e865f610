/*
 * gw.h: the daemon's one internal header. Types first, then one prototype section per
 * source file (relayd style). Everything with sockets, threads, time and logs lives in
 * gateway/; the modules below (conf, policy, authn, pki) are pure.
 *
 * Threads: the main thread owns signals, reloads and generation publishing; each worker
 * owns an event_base, its own SO_REUSEPORT listeners, its connections and its upstream
 * pools. The only shared object is the immutable, refcounted generation (gw_gen).
 */
#ifndef GW_H
#define GW_H

/* Past this much unsent data towards either side, stop reading the other side. */
#define GW_HIGH_WATER (256 * 1024)

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include <llhttp.h>

#include "authn.h"
#include "conf.h"
#include "policy.h"

/* ======================================================================== types == */

/* Why a request or connection ended; one table in proxy.c maps each to a status. */
enum gw_reason {
	GW_OK = 0,
	GW_TLS_HANDSHAKE,     /* handshake failed (pki_reason says why) */
	GW_BAD_REQUEST,       /* 400, then close */
	GW_MISDIRECTED,       /* 421: SNI and Host disagree */
	GW_UNAUTHENTICATED,   /* 401 */
	GW_FORBIDDEN,         /* 403 */
	GW_NO_ROUTE,          /* 404 */
	GW_TOO_LARGE,         /* 413 body over the limit */
	GW_HEADER_TIMEOUT,    /* 408 head not complete in time */
	GW_UPSTREAM_TLS,      /* 502 backend TLS verification / handshake */
	GW_UPSTREAM_PROTOCOL, /* 502 malformed or truncated backend answer */
	GW_NO_BACKEND,        /* 503 no server could be reached */
	GW_UPSTREAM_TIMEOUT,  /* 504 no answer in time */
	GW_CLIENT_CLOSED,     /* client went away mid-request */
	GW_SHUTDOWN,          /* drained at exit */
	GW_INTERNAL,          /* 500 allocation failure and the like */
	GW_REASON_MAX
};

/* A published configuration generation. Only refs is ever written after publishing. */
struct gw_gen {
	atomic_uint refs;
	uint64_t number;
	struct conf_snapshot *cfg; /* owned, immutable */
	size_t n_servers_total;    /* servers across all clusters (pool array size) */
	size_t *cluster_base;      /* index of each cluster's first server in that array */
	struct gw_hstate **hs;     /* per server: shared health state (health.c), refs held */
};

/* One header line of a parsed head, as offsets into gw_head.buf. */
struct gw_hdr {
	uint32_t name_off, name_len;
	uint32_t val_off, val_len;
};

/*
 * A parsed request or response head. The arena holds the target (or reason phrase) and
 * every header, so the head costs one allocation and limits are enforced while parsing.
 */
struct gw_head {
	char *buf;
	uint32_t len, cap, cap_max; /* cap grows on demand up to cap_max (the limits) */
	uint32_t url_off, url_len;
	struct gw_hdr *hdrs;
	uint32_t n_hdrs, hdrs_cap, max_hdrs;
	uint32_t line_bytes, header_bytes; /* what the limits are checked against */
	bool in_value;                     /* the parser is inside a header value */
	uint8_t method;                    /* llhttp_method_t */
	uint8_t http_major, http_minor;
	uint16_t status; /* responses */
	bool chunked, has_clen;
	uint64_t clen;
	const char *error; /* first problem found while collecting */
};

/* Parser wrapper shared by the client side (requests) and upstream side (responses). */
struct gw_parser {
	llhttp_t p;
	struct gw_head head;
	const struct conf_limits *limits; /* borrowed from the generation */
	void *ud;
	int (*on_body)(void *ud, const char *at, size_t len);
	bool head_done, msg_done, skip_body;
	const char *feed_start; /* first byte of the current feed (obs-fold check) */
	bool feed_after_lf;     /* the previous feed ended with a line feed */
	char err_token[48];     /* gw_parser_error() output */
};

enum gw_feed { GW_FEED_MORE = 0, GW_FEED_HEAD, GW_FEED_DONE, GW_FEED_ERROR };

struct gw_worker;
struct gw_stream;
struct gw_conn;
struct gw_req;
struct gw_upconn;
struct gw_hstate;
struct gw_upq;
struct gw_health;

enum gw_conn_state { GW_CONN_HANDSHAKE, GW_CONN_READY, GW_CONN_ACTIVE, GW_CONN_CLOSING };

/* One client TLS connection; owned by its worker's list, freed by gw_conn_close(). */
struct gw_conn {
	TAILQ_ENTRY(gw_conn) link;
	struct gw_worker *w; /* borrowed */
	struct gw_gen *gen;  /* ref: the trust the connection was verified with */
	unsigned lis_idx;
	struct gw_stream *st;    /* owns the fd and the SSL */
	SSL *ssl;                /* borrowed from st */
	struct event *timer;     /* handshake, header, idle and body timeouts */
	struct event *ev_resume; /* re-enters parsing after a request finished */
	struct gw_parser ps;
	bool ps_ready;
	struct authn_cert_id cert; /* owned */
	struct gw_req *req;        /* the request in progress, at most one */
	enum gw_conn_state state;
	bool read_paused; /* backpressure: upstream output is full */
	bool close_after; /* close once the current response is flushed */
	char peer[INET6_ADDRSTRLEN];
	uint16_t peer_port;
	char sni[256];
	uint64_t t_accept, handshake_us;
	uint64_t t_idle; /* when the last request ended (or the handshake did) */
	/* Per-connection constants, made at the first request (proxy.c): the identity and
	 * forwarding header lines sent upstream, and the audit record's peer members. */
	char *fwd_hdrs, *audit_peer;
	size_t fwd_hdrs_len, audit_peer_len;
	struct evbuffer *pending, *replay; /* lent to the request in progress */
	bool trimmed;                      /* idle buffers given back (gw_conn_trim_idle) */
	unsigned n_requests;
};

/* One request, from head to the end of its response; freed by gw_req_finish(). */
struct gw_req {
	struct gw_conn *c;  /* borrowed */
	struct gw_gen *gen; /* ref */
	char id[40];
	char *path; /* normalised: authorised and forwarded */
	size_t path_len;
	const char *query; /* in the head arena, after '?', or NULL */
	size_t query_len;
	const struct policy_route *route; /* borrowed from gen */
	struct policy_decision decision;
	struct authn_token_id token; /* owned: the verified token or API key identity */
	bool has_token;
	int cluster, server; /* chosen upstream (global server index) */
	uint64_t tried;      /* servers already tried (bit per cluster member) */
	unsigned attempts;
	struct gw_upconn *up;     /* leased upstream connection */
	struct evbuffer *pending; /* head + body not yet given to an upstream */
	struct evbuffer *replay;  /* copy of what was sent, for a safe retry */
	bool replay_ok;           /* replay holds the whole request so far */
	bool body_done;           /* client finished sending the body */
	bool body_chunked;        /* body is re-chunked towards the upstream */
	bool resp_started;        /* a byte of the response reached the client */
	bool resp_rechunk;        /* response body is re-chunked to the client */
	bool resp_head_req;       /* HEAD: response has no body */
	bool finished;
	int status;
	enum gw_reason reason;
	const char *detail; /* static text for the log/audit */
	uint64_t bytes_in, bytes_out, body_bytes;
	enum gw_reason last_fail; /* why the previous upstream attempt failed */
	uint64_t t_start, t_head, t_up;
	uint16_t tried_srv[16];       /* servers tried (index in cluster), attempts of them */
	TAILQ_ENTRY(gw_req) up_qlink; /* in its cluster's queue, waiting for a slot */
	bool up_queued;
	uint64_t t_queued;
};

enum gw_up_state { GW_UP_CONNECTING, GW_UP_ACTIVE, GW_UP_IDLE };

/* One upstream TLS connection: leased to a request, or idle in its worker's pool. */
struct gw_upconn {
	TAILQ_ENTRY(gw_upconn) link;
	struct gw_worker *w;
	struct gw_gen *gen; /* borrowed: the generation of the pool it is in */
	size_t srv;         /* global server index in gen */
	unsigned cluster;
	struct gw_stream *st; /* owns fd and ssl once TCP is up */
	SSL *ssl;
	struct event *timer;
	struct gw_parser ps;
	struct gw_req *req; /* borrowed while leased */
	enum gw_up_state state;
	bool reused, got_bytes, broken;
	bool ssl_owned;       /* ssl not yet handed to a bufferevent */
	int fd;               /* the socket while TCP connects, else -1 */
	struct event *tcp_ev; /* TCP connect completion */
	bool trimmed;         /* idle in the pool with its buffers given back */
	uint64_t t_idle;      /* when it went back to the pool */
	unsigned n_requests;
};

/* Idle upstream connections of one server in one worker. */
TAILQ_HEAD(gw_upconn_list, gw_upconn);
struct gw_pool {
	struct gw_upconn_list idle;
	unsigned n_idle;
	unsigned n_open;      /* connections: connecting, leased and idle */
	unsigned outstanding; /* requests on this server (least_outstanding) */
	int wrr_cur;          /* smooth weighted round robin state */
	bool eligible;        /* scratch flag of the pick in progress */
	SSL_SESSION *sess;    /* last resumable TLS session from this server */
};

TAILQ_HEAD(gw_conn_list, gw_conn);

struct gw_counters {
	uint64_t requests, handshakes_ok, handshakes_failed, upstream_connects, upstream_reuses;
};

struct gw_worker {
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct evconnlistener **listeners; /* one per configured listener */
	size_t n_listeners;
	struct gw_gen *gen;   /* current; read and written by this thread only */
	pthread_mutex_t lock; /* guards next */
	struct gw_gen *next;  /* handed over by the main thread */
	struct event *ev_gen, *ev_stop;
	struct event *ev_trim; /* every GW_IDLE_TRIM_US: idle connections give buffers back */
	struct gw_conn_list conns;
	unsigned n_conns;
	struct gw_pool *pools;    /* one per server of pools_gen */
	struct gw_gen *pools_gen; /* borrowed via gen; pools are rebuilt on change */
	unsigned *rr;             /* round-robin cursor per cluster */
	struct gw_upq *upq;       /* per cluster of pools_gen: requests waiting */
	uint64_t req_seq;
	bool draining;
	struct gw_counters ctr;
	struct gw_main *main;            /* borrowed */
	struct gw_lis_ctx *lis_ctx;      /* accept callback arguments, one per listener */
	struct authn_cache *authn_cache; /* verified tokens; this thread's only */
	struct gw_metrics *metrics;      /* owned: counters the admin endpoint sums (metrics.c) */
};

struct gw_main {
	const char *conf_path; /* NULL = embedded default */
	const char *ready_file;
	struct event_base *base;
	struct gw_gen *gen;
	struct gw_worker *workers;
	unsigned n_workers;
	int **listen_fds; /* [listener][worker] */
	size_t n_listen;
	uint64_t gen_seq;
	char id_prefix[17]; /* random per process, prefixes request ids */
	unsigned drain_ms;  /* graceful stop deadline */
	bool stopping;
	struct gw_health *health;            /* the active health checker (health.c) */
	struct gw_admin *admin;              /* owned: admin listener and its hooks (admin.c) */
	uint64_t reloads_ok, reloads_failed; /* main thread only */
	struct gw_watch *watch;              /* owned: file change poller (watch.c) */
	struct gw_jwks *jwks;                /* owned: JWKS fetcher (jwks_fetch.c) */
};

/* ====================================================================== gen.c == */
struct gw_gen *gw_gen_new(struct conf_snapshot *cfg, uint64_t number);
struct gw_gen *gw_gen_ref(struct gw_gen *g);
void gw_gen_unref(struct gw_gen *g);

/* ===================================================================== http.c == */
void gw_parser_init(struct gw_parser *ps, llhttp_type_t type, const struct conf_limits *lim);
void gw_parser_reset(struct gw_parser *ps);
void gw_parser_free(struct gw_parser *ps);
void gw_parser_trim(struct gw_parser *ps);
enum gw_feed gw_parser_feed(struct gw_parser *ps, const char *data, size_t len, size_t *used);
const char *gw_parser_error(struct gw_parser *ps);
const char *gw_parser_error_text(const struct gw_parser *ps);
/* Case-insensitive lookup; returns the value's count of occurrences, first in *val. */
unsigned gw_head_find(const struct gw_head *h, const char *name, const char **val, size_t *len);
static inline const char *gw_head_str(const struct gw_head *h, uint32_t off)
{
	return h->buf + off;
}
/* Request head checks that llhttp does not make; NULL if fine, else the 400 reason. */
const char *gw_head_check_request(const struct gw_head *h);
bool gw_header_is_hop_by_hop(const char *name, size_t len, const struct gw_head *h);
bool gw_header_is_identity(const char *name, size_t len);
bool gw_header_aliases_identity(const char *name, size_t len);

/* =================================================================== stream.c == */
/* A TLS connection on a non-blocking socket with input/output evbuffers (stream.c says
 * why not bufferevent_openssl). Callbacks come only from the stream's own events. */
#define GW_STREAM_CONNECTED 0x01
#define GW_STREAM_EOF       0x02
#define GW_STREAM_ERROR     0x04
typedef void (*gw_stream_cb)(struct gw_stream *s, void *arg);
typedef void (*gw_stream_event_cb)(struct gw_stream *s, short what, void *arg);
/* Takes fd and ssl on success; on failure (NULL) the caller still owns both. */
struct gw_stream *gw_stream_new(struct event_base *base, evutil_socket_t fd, SSL *ssl,
                                bool accepting);
void gw_stream_setcb(struct gw_stream *s, gw_stream_cb on_read, gw_stream_cb on_write,
                     gw_stream_event_cb on_event, void *arg);
void gw_stream_free(struct gw_stream *s); /* closes the socket, frees the SSL */
struct evbuffer *gw_stream_input(struct gw_stream *s);
struct evbuffer *gw_stream_output(struct gw_stream *s);
SSL *gw_stream_ssl(struct gw_stream *s);
void gw_stream_read(struct gw_stream *s, bool on); /* off at start */
/* on_write runs when a write left at most this much queued (default 0). */
void gw_stream_set_wlowat(struct gw_stream *s, size_t lowat);
unsigned long gw_stream_error(const struct gw_stream *s); /* first OpenSSL error, or 0 */
bool gw_stream_done(const struct gw_stream *s);
void gw_stream_trim(struct gw_stream *s); /* idle: give OpenSSL's buffers back */

/* ===================================================================== conn.c == */
void gw_conn_accept(struct gw_worker *w, unsigned lis_idx, evutil_socket_t fd,
                    const struct sockaddr *sa, int salen);
void gw_conn_close(struct gw_conn *c, enum gw_reason why);
void gw_conn_close_idle(struct gw_worker *w);
void gw_conn_resume(struct gw_conn *c);
void gw_conn_request_done(struct gw_conn *c);
int gw_conn_recheck(struct gw_conn *c, struct gw_gen *g); /* enum pki_reason */
void gw_conn_write(struct gw_conn *c, const void *data, size_t len);
void gw_conn_pause_read(struct gw_conn *c, bool pause);
/* Connections idle for GW_IDLE_TRIM_US give back TLS record buffers and the parser
 * arena; the worker runs this every GW_IDLE_TRIM_US. */
#define GW_IDLE_TRIM_US 500000u
void gw_conn_trim_idle(struct gw_worker *w);

/* ==================================================================== proxy.c == */
/* Decimal text of v into out (at least 21 bytes); its length. No printf on hot paths. */
size_t gw_u64_dec(uint64_t v, char *out);
/* Appends "Content-Length: n\r\n". */
void gw_add_clen(struct evbuffer *b, uint64_t n);
int gw_reason_status(enum gw_reason r);
const char *gw_reason_str(enum gw_reason r);
void gw_req_on_head(struct gw_req *r);
int gw_req_body(struct gw_req *r, const char *at, size_t len);
void gw_req_body_done(struct gw_req *r);
void gw_req_finish(struct gw_req *r, int status, enum gw_reason why, const char *detail);
void gw_req_write_upstream(struct gw_req *r, const void *data, size_t len);
void gw_audit_handshake(struct gw_conn *c, const char *reason);

/* ================================================================= upstream.c == */
void gw_worker_pools_sync(struct gw_worker *w);
void gw_worker_pools_free(struct gw_worker *w);
unsigned gw_worker_pools_trim(struct gw_worker *w); /* idle pooled ones; how many */
void gw_upstream_start(struct gw_req *r);
void gw_upstream_release(struct gw_upconn *u, bool reusable);
void gw_upstream_resume_read(struct gw_upconn *u);
/* From gw_req_finish: drops what the upstream side still holds of r (queue slot). */
void gw_upstream_req_done(struct gw_req *r);

/* =================================================================== health.c == */
/* Shared health state of g's servers (gen.c): 0, or -1 on allocation failure. */
int gw_health_gen_bind(struct gw_gen *g);
void gw_health_gen_unbind(struct gw_gen *g);
/* The one active checker, on the main thread's base: after the workers, after each
 * reload (state carries over by cluster, name and address), and before the base goes. */
int gw_health_start(struct gw_main *m);
void gw_health_reload(struct gw_main *m);
void gw_health_stop(struct gw_main *m);
/* Clusters, servers, health, ejections, retries and pools as JSON (malloc'd, or NULL);
 * callable from any thread. */
char *gw_upstream_status_json(struct gw_main *m);

/* ==================================================================== audit.c == */
int gw_audit_open(const char *path);
void gw_audit_close(void);
void gw_audit_line(const char *line, size_t len);
/* Added with the audit writer (docs/audit.md): */
struct gw_audit_stats {
	uint64_t depth, capacity; /* records queued now, queue size */
	uint64_t dropped;         /* best-effort drops since start */
	uint64_t written;         /* records sealed and written since start */
};
int gw_audit_start(const char *path, const struct conf_audit *a, char *err, size_t errlen);
bool gw_audit_enabled(void);                 /* false in mode "off": build no record */
void gw_audit_submit(char *obj, size_t len); /* takes a malloc'd JSON object text */
void gw_audit_reopen(void);                  /* SIGUSR1 */
void gw_audit_stats(struct gw_audit_stats *st);

/* ================================================================== metrics.c == */
struct gw_metrics;
struct gw_metrics *gw_metrics_new(void);
void gw_metrics_free(struct gw_metrics *mt);
/* Called by the worker that owns w: relaxed atomics, no lock. */
void gw_metrics_request(struct gw_worker *w, const struct gw_req *r);
void gw_metrics_handshake_failed(struct gw_worker *w, const char *reason);
void gw_metrics_token_failed(struct gw_worker *w, const char *reason);
void gw_metrics_label(struct evbuffer *out, const char *v); /* escaped label value */
/* Prometheus text of all workers' counters and the process gauges (main thread). */
void gw_metrics_render(struct gw_main *m, struct evbuffer *out);

/* ==================================================================== admin.c == */
/* Hooks for other parts (e.g. upstream health): a readiness condition and extra
 * Prometheus text. Both run on the main thread. */
typedef bool (*gw_ready_fn)(struct gw_main *m, char *why, size_t whylen);
typedef void (*gw_metrics_fn)(struct gw_main *m, struct evbuffer *out);
int gw_admin_add_ready_check(struct gw_main *m, gw_ready_fn fn);
int gw_admin_add_metrics(struct gw_main *m, gw_metrics_fn fn);
/* Starts the admin listener of m->gen's config on m->base (none configured: 0). */
int gw_admin_start(struct gw_main *m);
void gw_admin_free(struct gw_main *m);
/* "host:port" the admin listener is bound to; -1 when there is none. */
int gw_admin_address(const struct gw_main *m, char *buf, size_t len);
struct evhttp;
struct evhttp *gw_admin_http(struct gw_main *m);
/* admin_upstream.c: upstream readiness, metrics and /upstreams (after gw_admin_start). */
int gw_admin_upstream_init(struct gw_main *m);

/* ====================================================================== log.c == */
enum gw_log_level { GW_LOG_ERR, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };
void gw_log(enum gw_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_log_set_level(enum gw_log_level lvl);
uint64_t gw_now_us(void);  /* CLOCK_MONOTONIC */
uint64_t gw_wall_us(void); /* CLOCK_REALTIME */

/* ==================================================== privs.c, watch.c, notify.c == */
/* After start-up: drop to the configured user/group, and refuse to stay root unless
 * allow_root. 0, or -1 after logging why the process must not go on. */
int gw_privs_drop(const struct conf_snapshot *cfg);
/* Polls the files of the generation in service (cfg->watch_ms) and calls reload when one
 * changed (mtime, size, inode: symlink swaps too). Runs on m->base. */
struct gw_watch *gw_watch_new(struct gw_main *m, void (*reload)(struct gw_main *m));
void gw_watch_free(struct gw_watch *w);
/* sd_notify by hand: a state line ("READY=1") to $NOTIFY_SOCKET, if systemd gave one. */
void gw_notify(const char *state);

/* =============================================================== jwks_fetch.c == */
/* JWKS of jwks_url issuers, fetched over HTTPS on the main thread (docs/config.md). */
struct gw_jwks;
/* Installs the conf hook, before the first load; reload is main.c's reload path, run
 * when a fetch brought a new key set. NULL when out of memory. */
struct gw_jwks *gw_jwks_new(struct gw_main *m, void (*reload)(struct gw_main *m));
/* On m->base, before the workers: the first load's sources are fetched at once. 0 or -1. */
int gw_jwks_start(struct gw_jwks *j);
/* After a load whose generation was published: its jwks_url issuers are the ones served. */
void gw_jwks_commit(struct gw_jwks *j);
/* After the workers stopped; NULL-safe. */
void gw_jwks_free(struct gw_jwks *j);
/* Any thread: a token's issuer lacks its kid; asks for a rate-limited refetch. NULL-safe. */
void gw_jwks_unknown_kid(struct gw_jwks *j, const char *token, size_t len);
/* Pure: the unverified "iss" of a compact JWS into out. 0, or -1. */
int gw_jwks_token_iss(const char *tok, size_t len, char *out, size_t outlen);

/* =================================================================== worker.c == */
int gw_workers_start(struct gw_main *m);
void gw_workers_publish(struct gw_main *m, struct gw_gen *g);
void gw_workers_stop(struct gw_main *m);

#endif
