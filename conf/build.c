/*
 * Builders for the snapshot's globals, listeners and clusters: raw values in, pki
 * contexts out. pki says what is wrong with a file; we add where it was configured.
 * A value with an error keeps its default in the raw tree, so building goes on after
 * errors without crashing and without a cascade of follow-up messages.
 */
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

#define PATH_BUF 256

static void oom(struct conf_ctx *c, const config_setting_t *s)
{
	conf_diag_at(c, s, true, "out of memory");
}

static const config_setting_t *member(const config_setting_t *g, const char *name)
{
	return g ? config_setting_get_member(g, name) : NULL;
}

static enum pki_tls_version tls_version(const char *v)
{
	return v && strcmp(v, "TLSv1.3") == 0 ? PKI_TLS13 : PKI_TLS12;
}

/* The audit writer's settings; the gateway reads the signing key itself at start. */
static void build_audit(struct conf_ctx *c, const struct conf_raw_audit *r, struct conf_audit *a)
{
	a->mode = CONF_AUDIT_DURABLE;
	if (r->mode && strcmp(r->mode, "best-effort") == 0)
		a->mode = CONF_AUDIT_BEST_EFFORT;
	else if (r->mode && strcmp(r->mode, "off") == 0)
		a->mode = CONF_AUDIT_OFF;
	a->queue = r->queue;
	a->fsync_batch = r->fsync_batch;
	a->fsync_interval = r->fsync_interval;
	a->checkpoint_records = r->checkpoint_records;
	a->checkpoint_interval = r->checkpoint_interval;
	a->syslog = r->syslog;
	if (r->signing_key && !(a->signing_key = strdup(r->signing_key)))
		oom(c, NULL);
	conf_parse_address(r->syslog_address ? r->syslog_address : "127.0.0.1:514", &a->syslog_addr,
	                   &a->syslog_addrlen);
}

static bool addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return ss->ss_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static void build_globals(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	s->workers = raw->workers;
	s->limits = raw->limits;
	s->timeouts = raw->timeouts;
	if (raw->audit.path && !(s->audit_path = strdup(raw->audit.path)))
		oom(c, NULL);
	build_audit(c, &raw->audit, &s->audit);
	if (!raw->admin.address)
		return;
	s->admin_address = strdup(raw->admin.address);
	if (!s->admin_address)
		oom(c, NULL);
	/* Already validated by the schema; this only stores the parsed form. */
	conf_parse_address(raw->admin.address, &s->admin_addr, &s->admin_addrlen);
	s->admin_allow_remote = raw->admin.allow_remote;
	/* Plain HTTP without authentication: only on loopback unless explicitly asked. */
	if (!s->admin_allow_remote && !addr_is_loopback(&s->admin_addr))
		conf_report(c, true, NULL, 0,
		            "admin.address %s is not a loopback address (set admin.allow_remote = true "
		            "to expose the admin listener)",
		            raw->admin.address);
}

/*
 * A listener without client certificates is not an mTLS gateway: refused unless the
 * second, explicitly insecure key is set too, and then loudly warned about.
 */
static int check_client_cert(struct conf_ctx *c, const struct conf_raw_listener *r)
{
	const config_setting_t *tls = member(r->node.where, "tls");
	const config_setting_t *req = member(tls, "require_client_cert");
	char path[PATH_BUF];

	if (r->tls.require_client_cert)
		return 0;
	conf_setting_path(req, path, sizeof(path));
	if (!r->tls.insecure_no_client_cert) {
		conf_diag_at(c, req, true,
		             "'%s' = false is refused unless insecure_no_client_cert = true", path);
		return -1;
	}
	conf_diag_at(c, req, false, "listener %s accepts clients without a certificate",
	             r->address ? r->address : "?");
	return 0;
}

/*
 * The TLS context of one listener; errors from pki get the line of its tls group. pki is
 * asked even after other errors in the listener, as long as it has its three files, so
 * that a missing certificate is reported in the same run as, say, a misspelt key.
 */
static void build_listener_tls(struct conf_ctx *c, const struct conf_raw_listener *r,
                               struct conf_listener *l)
{
	const struct conf_raw_tls_server *t = &r->tls;
	struct pki_server_opts o = {
	    .cert_file = t->cert,
	    .key_file = t->key,
	    .client_ca_file = t->client_ca,
	    .crl_files = t->crl.v,
	    .n_crl_files = t->crl.n,
	    .min_version = tls_version(t->min_version),
	    .verify_depth = (int)t->verify_depth,
	    .require_client_cert = t->require_client_cert,
	    .ciphers_tls12 = t->ciphers,
	    .suites_tls13 = t->ciphersuites,
	    .session_tickets = t->session_tickets,
	    .ticket_lifetime = t->ticket_lifetime,
	    .session_cache_size = t->session_cache_size,
	    .crl_grace = conf_crl_grace_mode(t) ? t->crl_grace : 0,
	};
	char err[512] = "";

	check_client_cert(c, r);
	if (!t->cert || !t->key || !t->client_ca)
		return;
	if (pki_server_new(&o, &l->tls, err, sizeof(err)) < 0) {
		l->tls = NULL;
		conf_diag_at(c, member(r->node.where, "tls"), true, "%s",
		             err[0] ? err : "TLS setup failed");
		return;
	}
	pki_server_trust_digest(l->tls, l->trust_digest);
}

/* An earlier listener on the same address; port 0 asks for a free port, so never equal. */
static const struct conf_listener *listener_find(const struct conf_snapshot *s, size_t n,
                                                 const struct sockaddr_storage *a)
{
	if (conf_addr_port(a) == 0)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (conf_addr_equal(&s->listeners[i].addr, a))
			return &s->listeners[i];
	}
	return NULL;
}

static void build_listeners(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	const struct conf_raw_listener *rl = raw->listeners.v;

	s->listeners = calloc(raw->listeners.n + 1, sizeof(*s->listeners));
	if (!s->listeners) {
		oom(c, raw->listeners.where);
		return;
	}
	for (size_t i = 0; i < raw->listeners.n; i++) {
		const struct conf_raw_listener *r = &rl[i];
		struct conf_listener *l = &s->listeners[s->n_listeners++];
		const config_setting_t *where = r->node.where;
		l->file = strdup(conf_setting_file(c, where));
		l->line = conf_setting_line(where);
		build_listener_tls(c, r, l);
		if (!r->address)
			continue; /* missing or invalid: already reported */
		l->address = strdup(r->address);
		if (!l->address || !l->file) {
			oom(c, where);
			continue;
		}
		conf_parse_address(r->address, &l->addr, &l->addrlen);
		const struct conf_listener *dup = listener_find(s, s->n_listeners - 1, &l->addr);
		if (dup)
			conf_diag_at(c, member(where, "address"), true,
			             "listener address '%s' is already used at line %d", r->address,
			             dup->line);
	}
}

/* Default backend name: the host part of its address, brackets removed. */
static char *server_default_name(const char *address)
{
	if (address[0] == '[') {
		const char *close = strchr(address, ']');
		return strndup(address + 1, close ? (size_t)(close - address - 1) : 0);
	}
	const char *colon = strrchr(address, ':');
	return strndup(address, colon ? (size_t)(colon - address) : strlen(address));
}

static void build_servers(struct conf_ctx *c, const struct conf_raw_cluster *r,
                          struct conf_cluster *cl)
{
	const struct conf_raw_server *rs = r->servers.v;

	cl->servers = calloc(r->servers.n + 1, sizeof(*cl->servers));
	if (!cl->servers) {
		oom(c, r->servers.where);
		return;
	}
	for (size_t i = 0; i < r->servers.n; i++) {
		struct conf_server *sv = &cl->servers[cl->n_servers];
		if (rs[i].node.bad)
			continue;
		cl->n_servers++;
		sv->address = strdup(rs[i].address);
		sv->name = rs[i].name ? strdup(rs[i].name) : server_default_name(rs[i].address);
		sv->weight = rs[i].weight;
		sv->backup = rs[i].backup;
		if (!sv->address || !sv->name) {
			oom(c, rs[i].node.where);
			continue;
		}
		conf_parse_address(sv->address, &sv->addr, &sv->addrlen);
	}
}

/* Cross-key rules of a cluster's tls group that a per-key schema cannot express. */
static int check_client_tls(struct conf_ctx *c, const struct conf_raw_cluster *r,
                            const config_setting_t *tls)
{
	const struct conf_raw_tls_client *t = &r->tls;
	char path[PATH_BUF];
	int rc = 0;

	conf_setting_path(tls, path, sizeof(path));
	if (t->verify && !t->ca) {
		conf_diag_at(c, tls, true,
		             "missing required key 'ca' in '%s' (needed unless verify = false)",
		             path);
		rc = -1;
	}
	if (!t->cert != !t->key) {
		conf_diag_at(c, tls, true, "'%s' needs both cert and key, or neither", path);
		rc = -1;
	}
	/* pki checks the name whenever it verifies; there is no verify-without-name mode. */
	if (!t->name_check) {
		conf_diag_at(
		    c, member(tls, "name_check"), true,
		    "'%s.name_check' = false is not supported; set the servers' name to the "
		    "name in their certificate",
		    path);
		rc = -1;
	}
	if (!t->verify)
		conf_diag_at(c, member(tls, "verify"), false,
		             "TLS verification of cluster %s is disabled", r->name);
	return rc;
}

static void build_cluster_tls(struct conf_ctx *c, const struct conf_raw_cluster *r,
                              struct conf_cluster *cl)
{
	const config_setting_t *tls = member(r->node.where, "tls");
	struct pki_client_opts o = {
	    .ca_file = r->tls.ca,
	    .cert_file = r->tls.cert,
	    .key_file = r->tls.key,
	    .min_version = tls_version(r->tls.min_version),
	    .verify = r->tls.verify,
	    .ciphers_tls12 = r->tls.ciphers,
	};
	char err[512] = "";

	/* No tls group (already reported) or an impossible combination: nothing to build. */
	if (!tls || check_client_tls(c, r, tls) < 0)
		return;
	if (pki_client_new(&o, &cl->tls, err, sizeof(err)) < 0) {
		cl->tls = NULL;
		conf_diag_at(c, tls, true, "%s", err[0] ? err : "TLS setup failed");
	}
}

/* Active checks: only with a health group; its strings are copied out of the tree. */
static void build_cluster_health(struct conf_ctx *c, const struct conf_raw_cluster *r,
                                 struct conf_cluster *cl)
{
	const struct conf_raw_health *h = &r->health;
	const config_setting_t *g = member(r->node.where, "health");
	struct conf_health *o = &cl->health;

	if (!g)
		return;
	o->enabled = true;
	o->path = strdup(h->path ? h->path : "/healthz");
	o->method = strdup(h->method ? h->method : "GET");
	o->expect_body = h->expect_body ? strdup(h->expect_body) : NULL;
	if (!o->path || !o->method || (h->expect_body && !o->expect_body))
		oom(c, g);
	o->status_min = h->expect_status[0];
	o->status_max = h->expect_status[1];
	o->interval = h->interval;
	o->timeout = h->timeout;
	o->rise = h->rise;
	o->fall = h->fall;
	o->jitter = h->jitter;
}

/*
 * Balancing, retries, connection limits and passive health. retries is the newer spelling
 * of max_attempts (retries + 1 attempts); giving both would leave one of them ignored.
 */
static void build_cluster_upstream(struct conf_ctx *c, const struct conf_raw_cluster *r,
                                   struct conf_cluster *cl)
{
	const config_setting_t *where = r->node.where;
	const config_setting_t *retries = member(where, "retries");

	if (retries && member(where, "max_attempts"))
		conf_diag_at(c, retries, true, "set either 'retries' or 'max_attempts', not both");
	cl->max_attempts = retries ? r->retries + 1 : r->max_attempts;
	cl->balance = r->balance && strcmp(r->balance, "least_outstanding") == 0
	                  ? CONF_BALANCE_LEAST_OUTSTANDING
	                  : CONF_BALANCE_ROUND_ROBIN;
	cl->retry_deadline = r->retry_deadline;
	cl->max_connections = r->pool.max_connections;
	cl->queue = r->pool.queue;
	cl->outlier.consecutive_failures = r->outlier.consecutive_failures;
	cl->outlier.base_ejection = r->outlier.base_ejection;
	cl->outlier.max_ejection = r->outlier.max_ejection;
	cl->outlier.max_ejected_percent = r->outlier.max_ejected_percent;
	if (r->outlier.max_ejection < r->outlier.base_ejection)
		conf_diag_at(c, member(where, "outlier"), true,
		             "'outlier.max_ejection' must not be shorter than 'base_ejection'");
	build_cluster_health(c, r, cl);
}

static const struct conf_cluster *cluster_find(const struct conf_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->n_clusters; i++) {
		if (s->clusters[i].name && strcmp(s->clusters[i].name, name) == 0)
			return &s->clusters[i];
	}
	return NULL;
}

/*
 * Clusters are kept even when their keys had errors (as long as they have a name), so
 * routes naming them do not add "unknown cluster" noise to the real problem, and their
 * TLS files are still checked so that one run reports every problem.
 */
static void build_clusters(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	const struct conf_raw_cluster *rc = raw->clusters.v;

	s->clusters = calloc(raw->clusters.n + 1, sizeof(*s->clusters));
	if (!s->clusters) {
		oom(c, raw->clusters.where);
		return;
	}
	for (size_t i = 0; i < raw->clusters.n; i++) {
		const struct conf_raw_cluster *r = &rc[i];
		if (!r->name)
			continue;
		const struct conf_cluster *dup = cluster_find(s, r->name);
		if (dup) {
			conf_diag_at(c, member(r->node.where, "name"), true,
			             "cluster '%s' is already defined at line %d", r->name,
			             dup->line);
			continue;
		}
		struct conf_cluster *cl = &s->clusters[s->n_clusters++];
		cl->name = strdup(r->name);
		cl->file = strdup(conf_setting_file(c, r->node.where));
		cl->line = conf_setting_line(r->node.where);
		cl->pool_max_idle = r->pool.max_idle;
		cl->pool_idle_timeout = r->pool.idle_timeout;
		build_cluster_upstream(c, r, cl);
		if (!cl->name || !cl->file) {
			oom(c, r->node.where);
			continue;
		}
		build_servers(c, r, cl);
		build_cluster_tls(c, r, cl);
	}
}

/* Builds everything; problems go to c->d and leave s partly built for the caller to free. */
void conf_build(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	build_globals(c, raw, s);
	build_listeners(c, raw, s);
	build_clusters(c, raw, s);
	conf_build_authn(c, raw, s);
	conf_build_policy(c, raw, s);
	conf_build_ops(c, raw, s);
}
