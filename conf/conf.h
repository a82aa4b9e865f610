/*
 * conf: a libconfig file turned into one immutable snapshot.
 *
 * conf_load() parses, checks every key against a schema (unknown keys are errors), then
 * builds the TLS contexts, the policy and the cluster tables from the pure modules. Every
 * problem is reported as "file:line: what is wrong" and loading continues so that all of
 * them are seen at once; if any error was found nothing is returned. The snapshot holds
 * no libevent object and nothing thread-bound, so it can be freed on any thread.
 */
#ifndef CONF_H
#define CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "pki.h"
#include "policy.h"

/* ---- types ---- */

struct conf_limits {
	uint32_t request_line;  /* bytes of method + target + version; default 8192 */
	uint32_t header_bytes;  /* bytes of all header lines; default 32768 */
	uint32_t header_count;  /* default 100 */
	uint64_t body;          /* max request body bytes; default 1 GiB; 0 = none allowed */
};

/* All in milliseconds. */
struct conf_timeouts {
	uint32_t handshake;         /* TLS handshake; default 10000 */
	uint32_t request_header;    /* from first byte to end of head (slowloris); 10000 */
	uint32_t idle;              /* keep-alive idle between requests; 60000 */
	uint32_t upstream_connect;  /* TCP + TLS to a backend; 5000 */
	uint32_t upstream_response; /* request sent to first response byte, and between reads; 30000 */
	uint32_t body;              /* max gap between body reads from the client; 30000 */
};

struct conf_listener {
	char *address;                    /* as written, e.g. "127.0.0.1:8443" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct pki_server *tls;           /* owned */
	unsigned char trust_digest[32];   /* pki_server_trust_digest(tls) */
	char *file;
	int line;
};

struct conf_server {
	char *address;                    /* "127.0.0.1:9001" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char *name;                       /* SNI and certificate name to verify */
	unsigned weight;                  /* default 1 */
	bool backup;
};

/* Active health checks of a cluster's servers (gateway/health.c; docs/upstream.md). */
struct conf_health {
	bool enabled;                     /* false (no health group): servers count as up */
	char *path;                       /* "/healthz" */
	char *method;                     /* "GET" or "HEAD" */
	uint32_t status_min, status_max;  /* expect_status = [200, 399] */
	char *expect_body;                /* substring the body must contain; NULL = any */
	uint32_t interval, timeout;       /* ms; 2000, 1000 */
	uint32_t rise, fall;              /* consecutive results that change the state; 2, 3 */
	uint32_t jitter;                  /* thousandths of interval, added or removed; 200 */
};

/* Passive health: consecutive failures eject a server for a while (gateway/health.c). */
struct conf_outlier {
	uint32_t consecutive_failures;    /* 0 = never eject; 5 */
	uint32_t base_ejection;           /* ms; 10000, doubled on each repeated ejection */
	uint32_t max_ejection;            /* ms; 300000 */
	uint32_t max_ejected_percent;     /* of the cluster's servers at once; 50 */
};

enum conf_balance { CONF_BALANCE_ROUND_ROBIN = 0, CONF_BALANCE_LEAST_OUTSTANDING };

struct conf_cluster {
	char *name;
	struct conf_server *servers;
	size_t n_servers;
	struct pki_client *tls;           /* owned */
	uint32_t pool_max_idle;           /* idle upstream connections per server and worker; 128 */
	uint32_t pool_idle_timeout;       /* ms; 60000 */
	uint32_t max_attempts;            /* connection attempts per request; default 3 */
	enum conf_balance balance;        /* weighted round robin (default) or least outstanding */
	uint32_t retry_deadline;          /* ms after the request head: no new attempt; 10000 */
	uint32_t max_connections;         /* per server and worker; 0 = no limit */
	uint32_t queue;                   /* requests per worker waiting for a free slot; 64 */
	struct conf_health health;
	struct conf_outlier outlier;
	char *file;
	int line;
};

enum conf_audit_mode { CONF_AUDIT_DURABLE = 0, CONF_AUDIT_BEST_EFFORT, CONF_AUDIT_OFF };

/* The audit writer (gateway/audit.c, docs/audit.md); durations in milliseconds. */
struct conf_audit {
	enum conf_audit_mode mode;        /* durable (default), best-effort, off */
	uint32_t queue;                   /* records waiting for the writer thread; 65536 */
	uint32_t fsync_batch;             /* durable: fsync after this many records; 256 */
	uint32_t fsync_interval;          /* durable: or this long after a write; 200 */
	uint32_t checkpoint_records;      /* a signed checkpoint every this many records; 1000 */
	uint32_t checkpoint_interval;     /* or this often while records come; 10000 */
	char *signing_key;                /* Ed25519 key file; NULL = hash chain only */
	bool syslog;                      /* also send every record as RFC 5424 over UDP */
	struct sockaddr_storage syslog_addr; /* default 127.0.0.1:514 */
	socklen_t syslog_addrlen;
};

struct conf_snapshot {
	char *path;                       /* the file this came from */
	unsigned workers;                 /* worker threads; 0 in the file = number of CPUs */
	struct conf_listener *listeners;
	size_t n_listeners;
	struct conf_cluster *clusters;
	size_t n_clusters;
	struct policy *policy;            /* owned: routes and rules */
	struct authn_keys *keys;          /* owned: token issuers and API keys; NULL = none */
	struct conf_limits limits;
	struct conf_timeouts timeouts;
	char *audit_path;                 /* NULL = audit records go to stderr */
	char *admin_address;              /* NULL = no admin listener */
	struct sockaddr_storage admin_addr;
	socklen_t admin_addrlen;
	bool admin_allow_remote;          /* admin may listen on a non-loopback address */
	struct conf_audit audit;          /* writer settings; the file is audit_path */
	/* Process settings (added with the operations work, conf/ops.c): */
	char *run_user, *run_group;       /* drop to these after start-up; NULL = stay */
	bool allow_root;                  /* may keep running as root after start-up */
	uint32_t drain_ms;                /* SIGTERM: longest wait for requests in flight */
	uint32_t watch_ms;                /* poll files for changes every ...; 0 = off */
	char **files;                     /* every file this snapshot was read from, for the
	                                     watcher: config, includes, certs, keys, CRLs, JWKS */
	size_t n_files;
};

/* One diagnostic per line: "file:line: message", errors and warnings kept apart. */
struct conf_diag {
	bool is_error;
	char *text;
};
struct conf_diags {
	struct conf_diag *v;
	size_t n, cap;
	size_t n_errors;
};

/* ---- functions ---- */

/* Loads and builds a snapshot; NULL if any error was reported into diags. */
struct conf_snapshot *conf_load(const char *path, struct conf_diags *diags);
/* The same from text in memory; name stands in for the file name in diagnostics. */
struct conf_snapshot *conf_load_string(const char *text, const char *name,
                                       struct conf_diags *diags);
void conf_snapshot_free(struct conf_snapshot *s);

/*
 * Loads policy files on their own (groups and rules, no routes), as gatewayctl does to
 * check or compare them outside a configuration. pattern is a file name or a glob; rules
 * that name routes ("route:NAME") are errors here. Returns an owned policy, or NULL with
 * every problem added to diags (which may be NULL). Added with policy files.
 */
struct policy *conf_policy_load(const char *pattern, struct conf_diags *diags);

/* True when both snapshots listen on the same addresses in the same order. */
bool conf_listeners_equal(const struct conf_snapshot *a, const struct conf_snapshot *b);

/* Parses "host:port" / "[v6]:port" (numeric host only). Returns 0 or -1. */
int conf_parse_address(const char *s, struct sockaddr_storage *out, socklen_t *outlen);

/* ---- JWKS fetched over HTTPS (issuers[].jwks_url; added with the JWKS fetcher) ---- */

/* The parts of an https:// URL; host is as written (an IPv6 literal keeps its brackets). */
struct conf_https_url {
	char host[256];
	unsigned port;    /* 443 when absent */
	const char *path; /* into the parsed string: "/..." ("" when absent: means "/") */
};

/*
 * Parses "https://host[:port][/path]": a DNS name, IPv4 or [IPv6] host, no user info, no
 * fragment, no spaces or control characters. Returns 0, or -1 with a predicate in err
 * ("must be ..."). Pure.
 */
int conf_https_url_parse(const char *url, struct conf_https_url *out, char *err, size_t errlen);

/* One issuer whose JWKS the gateway fetches, as configured; all strings borrowed. */
struct conf_jwks_source {
	const char *name;    /* the issuer's name */
	const char *issuer;  /* its "iss" */
	const char *url;     /* jwks_url, valid for conf_https_url_parse */
	const char *ca_file; /* jwks_ca, resolved: verifies the identity provider */
	const char *address; /* jwks_address (numeric host:port to connect to), or NULL */
	uint32_t refresh_ms, min_refetch_ms, timeout_ms;
	const char *file; /* where the issuer was configured */
	int line;
};

/*
 * Where conf_load finds fetched JWKS text. begin runs once at the start of every load that
 * builds issuers; source once for each jwks_url issuer of that load, and returns the latest
 * good JWKS text fetched from src->url (valid until the load returns) and its length, or
 * NULL when there is none yet: the issuer is then built without JWKS keys (left out of the
 * key set unless it has an HMAC secret, so its tokens are refused with bad_issuer).
 */
struct conf_jwks_cache {
	void (*begin)(void *arg);
	const char *(*source)(void *arg, const struct conf_jwks_source *src, size_t *len);
	void *arg;
};

/* Installs the cache every later load consults (copied; NULL = none). Process-wide: set it
 * on the thread that loads configurations, before loading. */
void conf_jwks_cache_set(const struct conf_jwks_cache *cache);

/* The embedded default configuration (conf/default.conf), NUL-terminated. */
extern const char conf_default_text[];

void conf_diags_add(struct conf_diags *d, bool is_error, const char *file, int line,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void conf_diags_print(const struct conf_diags *d, FILE *f);
void conf_diags_clear(struct conf_diags *d);

#endif
