/* Entry points: read a file or string with libconfig, walk the schema, build, or report. */
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

/* Reports libconfig's own failure (syntax error, unreadable @include) with its line. */
static void report_read_error(struct conf_ctx *c, const config_t *cfg)
{
	const char *text = config_error_text(cfg);
	conf_report(c, true, config_error_file(cfg), config_error_line(cfg), "%s",
	            text ? text : "cannot be read");
}

/* Walks and builds a parsed tree into a new snapshot; NULL if this load found an error. */
static struct conf_snapshot *load_tree(struct conf_ctx *c, const config_t *cfg, const char *path)
{
	struct conf_raw raw;
	struct conf_snapshot *s = NULL;

	memset(&raw, 0, sizeof(raw));
	conf_walk_group(c, conf_schema_root, config_root_setting(cfg), &raw);
	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		conf_report(c, true, NULL, 0, "out of memory");
		goto fail;
	}
	conf_build(c, &raw, s);
	if (c->n_errors)
		goto fail;
	conf_walk_release(conf_schema_root, &raw);
	return s;
fail:
	conf_walk_release(conf_schema_root, &raw);
	conf_snapshot_free(s);
	return NULL;
}

/* Opens path with libconfig, @include names resolved against c->dir. */
static int read_file(struct conf_ctx *c, config_t *cfg, const char *path)
{
	/* libconfig only says "file I/O error"; errno names the actual problem. */
	FILE *f = fopen(path, "r");
	if (!f) {
		conf_report(c, true, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	fclose(f);
	config_set_include_dir(cfg, c->dir);
	if (!config_read_file(cfg, path)) {
		report_read_error(c, cfg);
		return -1;
	}
	return 0;
}

/*
 * Loads the file at path; relative file names inside it are resolved against its
 * directory. Returns an owned snapshot, or NULL with every problem added to diags
 * (which may be NULL when the caller does not want them), sorted by line.
 */
struct conf_snapshot *conf_load(const char *path, struct conf_diags *diags)
{
	struct conf_diags local = {0};
	struct conf_ctx c = {.d = diags ? diags : &local, .name = path ? path : "(config)"};
	struct conf_snapshot *s = NULL;
	char *copy = path ? strdup(path) : NULL; /* dirname() may write into its argument */
	config_t cfg;

	config_init(&cfg);
	if (!path)
		conf_report(&c, true, NULL, 0, "no configuration file given");
	else if (!copy)
		conf_report(&c, true, NULL, 0, "out of memory");
	else {
		c.dir = dirname(copy);
		if (read_file(&c, &cfg, path) == 0)
			s = load_tree(&c, &cfg, path);
	}
	conf_report_flush(&c);
	config_destroy(&cfg);
	free(copy);
	conf_diags_clear(&local);
	return s;
}

/*
 * Loads from text in memory; name is used as the file name in diagnostics and as the
 * snapshot's path. Relative file names stay relative to the current directory.
 */
struct conf_snapshot *conf_load_string(const char *text, const char *name, struct conf_diags *diags)
{
	struct conf_diags local = {0};
	struct conf_ctx c = {.d = diags ? diags : &local, .name = name ? name : "(string)"};
	struct conf_snapshot *s = NULL;
	config_t cfg;

	config_init(&cfg);
	if (!text)
		conf_report(&c, true, NULL, 0, "no configuration text given");
	else if (!config_read_string(&cfg, text))
		report_read_error(&c, &cfg);
	else
		s = load_tree(&c, &cfg, c.name);
	conf_report_flush(&c);
	config_destroy(&cfg);
	conf_diags_clear(&local);
	return s;
}

static void cluster_clear(struct conf_cluster *cl)
{
	for (size_t j = 0; j < cl->n_servers; j++) {
		free(cl->servers[j].address);
		free(cl->servers[j].name);
	}
	free(cl->servers);
	pki_client_free(cl->tls);
	free(cl->health.path);
	free(cl->health.method);
	free(cl->health.expect_body);
	free(cl->name);
	free(cl->file);
}

/* Frees a snapshot and everything it owns; NULL-safe, and safe on a partly built one. */
void conf_snapshot_free(struct conf_snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_listeners; i++) {
		free(s->listeners[i].address);
		pki_server_free(s->listeners[i].tls);
		free(s->listeners[i].file);
	}
	free(s->listeners);
	for (size_t i = 0; i < s->n_clusters; i++)
		cluster_clear(&s->clusters[i]);
	free(s->clusters);
	if (s->policy)
		policy_free(s->policy);
	authn_keys_free(s->keys);
	free(s->audit_path);
	free(s->audit.signing_key);
	free(s->admin_address);
	free(s->run_user);
	free(s->run_group);
	for (size_t i = 0; i < s->n_files; i++)
		free(s->files[i]);
	free(s->files);
	free(s->path);
	free(s);
}

/*
 * True when both snapshots listen on the same addresses in the same order (so a reload
 * can keep the bound sockets). Two NULL snapshots are equal; one NULL is not.
 */
bool conf_listeners_equal(const struct conf_snapshot *a, const struct conf_snapshot *b)
{
	if (!a || !b)
		return a == b;
	if (a->n_listeners != b->n_listeners)
		return false;
	for (size_t i = 0; i < a->n_listeners; i++) {
		if (!conf_addr_equal(&a->listeners[i].addr, &b->listeners[i].addr))
			return false;
	}
	return true;
}
