/*
 * main.c: gatewayd. Loads the configuration, creates the listening sockets, starts the
 * workers and then only handles signals: SIGHUP reloads (build a whole new generation,
 * publish it, or keep the old one on any error), SIGTERM/SIGINT drain and exit. This is
 * the only file with process-wide mutable state.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>
#include <jansson.h>
#include <openssl/rand.h>

#include "pki.h"
#include "gw.h"

extern const char conf_default_text[];

static struct conf_snapshot *load_config(const char *path, struct conf_diags *d)
{
	if (path)
		return conf_load(path, d);
	return conf_load_string(conf_default_text, "<embedded default>", d);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gatewayd [-c FILE] [-t] [-w WORKERS] [--ready-file FILE] [-v]\n"
	           "  -c FILE     configuration (default: the embedded demo configuration)\n"
	           "  -t          check the configuration, print every problem, exit\n"
	           "  -w N        worker threads (overrides the file)\n"
	           "  --ready-file FILE  write the bound listener addresses there once serving\n"
	           "  -v          debug logging\n");
}

/* A socket per worker on the same address, so the kernel balances accepts. */
static int listen_socket(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, 1024) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Creates listen_fds[listener][worker]; port 0 is resolved once and reused. */
static int create_listeners(struct gw_main *m, const struct conf_snapshot *cfg)
{
	m->n_listen = cfg->n_listeners;
	m->listen_fds = calloc(m->n_listen, sizeof(int *));
	if (!m->listen_fds)
		return -1;
	for (size_t i = 0; i < m->n_listen; i++) {
		struct sockaddr_storage ss = cfg->listeners[i].addr;
		socklen_t len = cfg->listeners[i].addrlen;
		m->listen_fds[i] = calloc(m->n_workers, sizeof(int));
		if (!m->listen_fds[i])
			return -1;
		for (unsigned w = 0; w < m->n_workers; w++) {
			int fd = listen_socket(&ss, len);
			if (fd < 0) {
				gw_log(GW_LOG_ERR, "%s:%d: cannot listen on %s: %s",
				       cfg->listeners[i].file, cfg->listeners[i].line,
				       cfg->listeners[i].address, strerror(errno));
				return -1;
			}
			m->listen_fds[i][w] = fd;
			if (w == 0)
				getsockname(fd, (struct sockaddr *)&ss, &len);
		}
	}
	return 0;
}

/* Tells tests and scripts where we listen: written atomically once serving. */
static int write_ready_file(const struct gw_main *m)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", m->ready_file);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	for (size_t i = 0; i < m->n_listen; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char host[INET6_ADDRSTRLEN] = "?";
		uint16_t port = 0;
		int fd = evconnlistener_get_fd(m->workers[0].listeners[i]);
		getsockname(fd, (struct sockaddr *)&ss, &len);
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			port = ntohs(in->sin_port);
			fprintf(f, "listen %s:%u\n", host, port);
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			port = ntohs(in6->sin6_port);
			fprintf(f, "listen [%s]:%u\n", host, port);
		}
	}
	char admin[INET6_ADDRSTRLEN + 8];
	if (gw_admin_address(m, admin, sizeof(admin)) == 0)
		fprintf(f, "admin %s\n", admin);
	fprintf(f, "pid %d\n", (int)getpid());
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, m->ready_file);
}

/*
 * A failed reload is a security-relevant event (a CRL or policy update did not take
 * effect), so it goes to the audit trail with every diagnostic, not only to the log.
 */
static void audit_reload_failed(const struct gw_main *m, const struct conf_diags *d,
                                const char *why)
{
	char ts[80];
	uint64_t us = gw_wall_us();
	time_t secs = (time_t)(us / 1000000u);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (unsigned)(us % 1000000u));
	json_t *errs = json_array();
	for (size_t i = 0; d && i < d->n; i++)
		if (d->v[i].is_error)
			json_array_append_new(errs, json_string(d->v[i].text));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "time", ts, "type", "reload",
	                      "result", "failed", "reason", why, "kept_generation",
	                      (json_int_t)m->gen->number, "errors", errs);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(o);
	if (text)
		gw_audit_submit(text, strlen(text));
}

/* SIGHUP: a reload behaves exactly like `gatewayd -t`, and a failure changes nothing. */
static void reload(struct gw_main *m)
{
	struct conf_diags d = {0};
	gw_log(GW_LOG_INFO, "reload: loading %s",
	       m->conf_path ? m->conf_path : "<embedded default>");
	struct conf_snapshot *cfg = load_config(m->conf_path, &d);
	for (size_t i = 0; i < d.n; i++)
		gw_log(d.v[i].is_error ? GW_LOG_ERR : GW_LOG_WARN, "reload: %s", d.v[i].text);
	if (!cfg) {
		gw_log(GW_LOG_ERR, "reload failed: keeping generation %llu",
		       (unsigned long long)m->gen->number);
		audit_reload_failed(m, &d, "invalid_configuration");
		conf_diags_clear(&d);
		return;
	}
	conf_diags_clear(&d);
	if (!conf_listeners_equal(cfg, m->gen->cfg)) {
		gw_log(GW_LOG_ERR,
		       "reload refused: listener addresses changed (restart needed); keeping "
		       "generation %llu",
		       (unsigned long long)m->gen->number);
		audit_reload_failed(m, NULL, "listeners_changed");
		conf_snapshot_free(cfg);
		return;
	}
	struct gw_gen *g = gw_gen_new(cfg, ++m->gen_seq);
	if (!g) {
		conf_snapshot_free(cfg);
		return;
	}
	gw_workers_publish(m, g);
	gw_gen_unref(m->gen);
	m->gen = g;
	m->drain_ms = g->cfg->drain_ms;
	gw_health_reload(m);
	gw_jwks_commit(m->jwks);
	gw_log(GW_LOG_INFO, "reload: generation %llu in service", (unsigned long long)g->number);
}

/*
 * Hourly: a new ticket key for every listener of the generation in service. The previous
 * key still decrypts, so a ticket survives one rotation and a stolen key exposes at most
 * two hours of resumed sessions.
 */
static void ticket_rotate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_main *m = arg;
	for (size_t i = 0; i < m->gen->cfg->n_listeners; i++)
		if (pki_server_rotate_tickets(m->gen->cfg->listeners[i].tls) != 0)
			gw_log(GW_LOG_ERR, "listener %s: ticket key rotation failed",
			       m->gen->cfg->listeners[i].address);
}

/* SIGHUP and the file watcher: a reload, counted for the metrics. */
static void reload_counted(struct gw_main *m)
{
	uint64_t before = m->gen->number; /* a failed reload keeps the generation */
	reload(m);
	if (m->gen->number != before)
		m->reloads_ok++;
	else
		m->reloads_failed++;
}

/*
 * A second TERM/INT while draining. The main loop no longer runs then (it is joining the
 * workers), so this is a plain handler doing only async-signal-safe calls.
 */
static void exit_now(int sig)
{
	static const char msg[] = "gatewayd: second signal: exiting now\n";
	ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)w;
	_exit(1);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct gw_main *m = arg;
	if (sig == SIGHUP) {
		reload_counted(m);
		return;
	}
	if (sig == SIGUSR1) {
		gw_audit_reopen(); /* logrotate has moved the audit file */
		return;
	}
	if (m->stopping) {
		gw_log(GW_LOG_WARN, "second signal: exiting now");
		_exit(1);
	}
	m->stopping = true;
	struct sigaction sa = {.sa_handler = exit_now};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	gw_notify("STOPPING=1");
	gw_log(GW_LOG_INFO, "signal %d: draining (up to %u ms)", (int)sig, m->drain_ms);
	event_base_loopexit(m->base, NULL);
}

/* The audit writer runs from before the first connection until after the last record. */
static int start_audit(const struct conf_snapshot *cfg)
{
	char err[512];
	if (gw_audit_start(cfg->audit_path, &cfg->audit, err, sizeof(err)) == 0)
		return 0;
	gw_log(GW_LOG_ERR, "audit: %s", err);
	return -1;
}

static int check_only(const char *path)
{
	struct conf_diags d = {0};
	struct conf_snapshot *cfg = load_config(path, &d);
	conf_diags_print(&d, stderr);
	size_t errors = d.n_errors;
	conf_diags_clear(&d);
	conf_snapshot_free(cfg);
	if (errors || !cfg) {
		fprintf(stderr, "%s: configuration has %zu error(s)\n",
		        path ? path : "<embedded default>", errors);
		return 1;
	}
	printf("%s: configuration OK\n", path ? path : "<embedded default>");
	return 0;
}

int main(int argc, char **argv)
{
	struct gw_main m = {.drain_ms = 10000};
	bool test = false;
	int workers = -1;
	static const struct option opts[] = {{"ready-file", required_argument, NULL, 'r'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:tw:vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			m.conf_path = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'w':
			workers = atoi(optarg);
			break;
		case 'r':
			m.ready_file = optarg;
			break;
		case 'v':
			gw_log_set_level(GW_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (test)
		return check_only(m.conf_path);

	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	/* Before the first load: jwks_url issuers take their keys from the fetcher's cache. */
	m.jwks = gw_jwks_new(&m, reload);
	if (!m.jwks)
		return 1;
	struct conf_diags d = {0};
	struct conf_snapshot *cfg = load_config(m.conf_path, &d);
	conf_diags_print(&d, stderr);
	conf_diags_clear(&d);
	if (!cfg)
		return 1;
	unsigned char rnd[8];
	RAND_bytes(rnd, sizeof(rnd));
	for (int i = 0; i < 8; i++)
		snprintf(m.id_prefix + 2 * i, 3, "%02x", rnd[i]);
	m.n_workers = workers > 0 ? (unsigned)workers : cfg->workers;
	if (m.n_workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		m.n_workers = n > 0 ? (unsigned)n : 1;
	}
	m.gen = gw_gen_new(cfg, ++m.gen_seq);
	if (!m.gen || start_audit(cfg) != 0 || create_listeners(&m, cfg) != 0)
		return 1;
	m.base = event_base_new();
	if (!m.base || gw_jwks_start(m.jwks) != 0 || gw_workers_start(&m) != 0 ||
	    gw_admin_start(&m) != 0 || gw_admin_upstream_init(&m) != 0 || gw_health_start(&m) != 0)
		return 1;
	/* Everything that may need root (ports, keys, audit file) is open: drop it now. */
	if (gw_privs_drop(cfg) != 0)
		return 1;
	m.drain_ms = cfg->drain_ms;
	m.watch = gw_watch_new(&m, reload_counted);
	struct event *sigs[4];
	int signums[4] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
	for (int i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(m.base, signums[i], signal_cb, &m);
		evsignal_add(sigs[i], NULL);
	}
	struct event *rot = event_new(m.base, -1, EV_PERSIST, ticket_rotate_cb, &m);
	struct timeval hour = {3600, 0};
	event_add(rot, &hour);
	if (m.ready_file && write_ready_file(&m) != 0)
		gw_log(GW_LOG_ERR, "cannot write ready file %s: %s", m.ready_file, strerror(errno));
	gw_notify("READY=1");
	gw_log(GW_LOG_INFO, "serving with %u workers, %zu listener(s), generation 1", m.n_workers,
	       m.n_listen);
	event_base_dispatch(m.base);

	gw_workers_stop(&m);
	gw_health_stop(&m);
	gw_jwks_free(m.jwks);
	m.jwks = NULL;
	for (int i = 0; i < 4; i++)
		event_free(sigs[i]);
	event_free(rot);
	gw_watch_free(m.watch);
	gw_admin_free(&m);
	event_base_free(m.base);
	for (size_t i = 0; i < m.n_listen; i++)
		free(m.listen_fds[i]);
	free(m.listen_fds);
	gw_gen_unref(m.gen);
	gw_audit_close();
	gw_log(GW_LOG_INFO, "stopped");
	return 0;
}
