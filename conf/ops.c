/*
 * Process and operations settings: the user to run as, drain and watch intervals, and
 * the checks that keep trust files healthy over the years: private keys that others can
 * read, CRLs past their nextUpdate (refused, or accepted for a grace period), and
 * certificates that expire soon. Also the list of every file a snapshot was read from,
 * which the gateway's watcher polls. Runs last in conf_build, on the raw values.
 */
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "conf_int.h"

#define EXPIRY_WARN_DAYS 14
#define DAY              86400L

static const config_setting_t *member(const config_setting_t *g, const char *name)
{
	return g ? config_setting_get_member(g, name) : NULL;
}

/* Root keys carry no conf_node; the root is found as the parent of a list that has one. */
static const config_setting_t *root_member(const struct conf_raw *raw, const char *name)
{
	const config_setting_t *any =
	    raw->listeners.where ? raw->listeners.where : raw->routes.where;
	return member(any ? config_setting_parent(any) : NULL, name);
}

bool conf_crl_grace_mode(const struct conf_raw_tls_server *t)
{
	return t->crl_next_update && strcmp(t->crl_next_update, "grace") == 0;
}

static void day_text(time_t t, char out[32])
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		strcpy(out, "?");
}

/* ---- files for the watcher ---- */

static void files_add(struct conf_ctx *c, struct conf_snapshot *s, const char *path)
{
	if (!path)
		return;
	for (size_t i = 0; i < s->n_files; i++)
		if (strcmp(s->files[i], path) == 0)
			return;
	char **v = realloc(s->files, (s->n_files + 1) * sizeof(*v));
	if (!v || !(v[s->n_files] = strdup(path))) {
		if (v)
			s->files = v;
		conf_report(c, true, NULL, 0, "out of memory");
		return;
	}
	s->files = v;
	s->n_files++;
}

/* Everything a reload would read again. The audit log is output, never watched. */
static void collect_files(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	const struct conf_raw_listener *rl = raw->listeners.v;
	const struct conf_raw_cluster *rc = raw->clusters.v;
	const struct conf_raw_issuer *ri = raw->issuers.v;

	files_add(c, s, s->path);
	for (size_t i = 0; i < c->n_incs; i++)
		files_add(c, s, c->incs[i]);
	for (size_t i = 0; i < raw->listeners.n; i++) {
		files_add(c, s, rl[i].tls.cert);
		files_add(c, s, rl[i].tls.key);
		files_add(c, s, rl[i].tls.client_ca);
		for (size_t j = 0; j < rl[i].tls.crl.n; j++)
			files_add(c, s, rl[i].tls.crl.v[j]);
	}
	for (size_t i = 0; i < raw->clusters.n; i++) {
		files_add(c, s, rc[i].tls.ca);
		files_add(c, s, rc[i].tls.cert);
		files_add(c, s, rc[i].tls.key);
	}
	for (size_t i = 0; i < raw->issuers.n; i++) {
		files_add(c, s, ri[i].jwks);
		files_add(c, s, ri[i].hmac_secret);
	}
	files_add(c, s, raw->api_keys.file);
	files_add(c, s, raw->api_keys.hash_key);
}

/* ---- run-as user and process settings ---- */

static void build_run_as(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	const config_setting_t *su = root_member(raw, "user"), *sg = root_member(raw, "group");

	if (raw->user && !getpwnam(raw->user))
		conf_diag_at(c, su, true, "user '%s' does not exist", raw->user);
	if (raw->group && !getgrnam(raw->group))
		conf_diag_at(c, sg, true, "group '%s' does not exist", raw->group);
	if (raw->group && !raw->user)
		conf_diag_at(c, sg, true, "'group' needs 'user' as well");
	if ((raw->user && !(s->run_user = strdup(raw->user))) ||
	    (raw->group && !(s->run_group = strdup(raw->group))))
		conf_report(c, true, NULL, 0, "out of memory");
	s->allow_root = raw->allow_root;
	s->drain_ms = raw->drain_timeout;
	s->watch_ms = raw->watch_files;
}

/* ---- trust file checks ---- */

/*
 * A key that others can read is one copy away from a stolen identity. Warned about by
 * default (upgrades must not stop a running site), refused with strict_key_permissions.
 */
static void check_key_mode(struct conf_ctx *c, const config_setting_t *where, const char *path,
                           bool strict)
{
	struct stat st;

	if (!path || stat(path, &st) != 0 || !(st.st_mode & 077))
		return; /* an unreadable key is reported by pki */
	conf_diag_at(c, where, strict,
	             "private key %s is accessible by group or others (mode %04o); chmod 600 "
	             "and make it owned by the user the gateway runs as",
	             path, (unsigned)(st.st_mode & 07777));
}

/* CRLs past nextUpdate: an error, or with crl_next_update = "grace" a warning for a while. */
static void check_crls(struct conf_ctx *c, const struct conf_raw_tls_server *t,
                       const config_setting_t *where, time_t now)
{
	char err[512], when[32];
	time_t nu;

	for (size_t i = 0; i < t->crl.n; i++) {
		if (pki_crl_file_next_update(t->crl.v[i], &nu, err, sizeof(err)) < 0 || nu == 0 ||
		    nu >= now)
			continue; /* unreadable: pki says so when it builds the store */
		day_text(nu, when);
		long past = (long)(now - nu);
		if (conf_crl_grace_mode(t) && past <= (long)t->crl_grace)
			conf_diag_at(c, where, false,
			             "%s: CRL nextUpdate %s has passed; still used for %ld s "
			             "(crl_next_update = \"grace\")",
			             t->crl.v[i], when, (long)t->crl_grace - past);
		else
			conf_diag_at(c, where, true,
			             "%s: CRL nextUpdate %s has passed (%s); publish a fresh CRL",
			             t->crl.v[i], when,
			             conf_crl_grace_mode(t) ? "grace period over"
			                                    : "crl_next_update = \"fail\"");
	}
}

/* A warning when the earliest certificate of a file expires within EXPIRY_WARN_DAYS. */
static void warn_expiry(struct conf_ctx *c, const config_setting_t *where, const char *path,
                        const char *what, time_t now)
{
	char err[512], subject[256], when[32];
	time_t na;

	if (!path ||
	    pki_cert_file_not_after(path, &na, subject, sizeof(subject), err, sizeof(err)) < 0)
		return;
	if (na - now >= EXPIRY_WARN_DAYS * DAY)
		return;
	day_text(na, when);
	if (na <= now)
		conf_diag_at(c, where, false, "%s: %s certificate %s expired on %s", path, what,
		             subject, when);
	else
		conf_diag_at(c, where, false, "%s: %s certificate %s expires in %ld day(s), on %s",
		             path, what, subject, (long)((na - now + DAY - 1) / DAY), when);
}

static void check_trust_files(struct conf_ctx *c, const struct conf_raw *raw, time_t now)
{
	const struct conf_raw_listener *rl = raw->listeners.v;
	const struct conf_raw_cluster *rc = raw->clusters.v;

	for (size_t i = 0; i < raw->listeners.n; i++) {
		const struct conf_raw_tls_server *t = &rl[i].tls;
		const config_setting_t *tls = member(rl[i].node.where, "tls");
		check_key_mode(c, member(tls, "key"), t->key, raw->strict_key_permissions);
		check_crls(c, t, member(tls, "crl"), now);
		warn_expiry(c, member(tls, "cert"), t->cert, "server", now);
		warn_expiry(c, member(tls, "client_ca"), t->client_ca, "client CA", now);
	}
	for (size_t i = 0; i < raw->clusters.n; i++) {
		const config_setting_t *tls = member(rc[i].node.where, "tls");
		check_key_mode(c, member(tls, "key"), rc[i].tls.key, raw->strict_key_permissions);
		warn_expiry(c, member(tls, "cert"), rc[i].tls.cert, "upstream client", now);
		warn_expiry(c, member(tls, "ca"), rc[i].tls.ca, "backend CA", now);
	}
}

void conf_build_ops(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	build_run_as(c, raw, s);
	check_trust_files(c, raw, time(NULL));
	collect_files(c, raw, s);
}
