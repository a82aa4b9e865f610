/*
 * Token issuers and API keys: the raw groups become authn options, authn reads and checks
 * every JWKS, secret and key file and says what is wrong, and we say where (the line of
 * the issuer or of the api_keys group). A route that needs a kind of credential nobody
 * can present is an error too, rather than a route that answers 401 forever.
 */
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

#define PATH_BUF 256

/* authn's findings become diagnostics of this load, at the place authn was given. */
static void report_cb(void *arg, bool is_error, const char *file, int line, const char *msg)
{
	conf_report(arg, is_error, file, line, "%s", msg);
}

/* The api_keys group, found through the root (groups carry no conf_node of their own). */
static const config_setting_t *api_keys_setting(const struct conf_raw *raw)
{
	const config_setting_t *any =
	    raw->listeners.where ? raw->listeners.where : raw->routes.where;
	const config_setting_t *root = any ? config_setting_parent(any) : NULL;

	return root ? config_setting_get_member(root, "api_keys") : NULL;
}

/* Each route's need must name a credential that is configured. */
static void check_route_needs(struct conf_ctx *c, const struct conf_raw *raw)
{
	const struct conf_raw_route *rr = raw->routes.v;
	char path[PATH_BUF];

	for (size_t i = 0; i < raw->routes.n; i++) {
		const char *need = rr[i].need;
		if (rr[i].node.bad || !need)
			continue;
		const config_setting_t *m = config_setting_get_member(rr[i].node.where, "need");
		conf_setting_path(m, path, sizeof(path));
		if (strstr(need, "token") && raw->issuers.n == 0)
			conf_diag_at(c, m, true, "'%s' is \"%s\" but no issuers are configured",
			             path, need);
		else if (strcmp(need, "cert+apikey") == 0 && !raw->api_keys.file)
			conf_diag_at(c, m, true, "'%s' is \"%s\" but api_keys is not configured",
			             path, need);
	}
}

/* One raw issuer to authn options; strings stay borrowed from the raw tree. */
static void issuer_opts(struct conf_ctx *c, const struct conf_raw_issuer *r,
                        struct authn_issuer_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->name = r->name;
	o->issuer = r->issuer;
	o->audience = r->audience;
	o->jwks_file = r->jwks;
	o->hmac_secret_file = r->hmac_secret;
	o->hmac_kid = r->hmac_kid;
	o->scope_claim = r->scope_claim;
	o->leeway = r->leeway;
	o->max_token = r->max_token;
	o->file = conf_setting_file(c, r->node.where);
	o->line = conf_setting_line(r->node.where);
}

/*
 * Builds s->keys; NULL when neither issuers nor api_keys are configured. Issuers with
 * schema errors are left out, the others are still built so their file problems are
 * reported in the same pass.
 */
void conf_build_authn(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	const struct conf_raw_issuer *ri = raw->issuers.v;
	struct authn_keys_opts o = {.report = report_cb, .report_arg = c};
	struct authn_issuer_opts *is = NULL;
	char err[512] = "";

	check_route_needs(c, raw);
	if (raw->issuers.n == 0 && !raw->api_keys.file)
		return;
	is = calloc(raw->issuers.n + 1, sizeof(*is));
	if (!is) {
		conf_report(c, true, NULL, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < raw->issuers.n; i++) {
		if (!ri[i].node.bad)
			issuer_opts(c, &ri[i], &is[o.n_issuers++]);
	}
	o.issuers = is;
	/* Without both files the schema has already reported the missing one. */
	if (raw->api_keys.file && raw->api_keys.hash_key) {
		const config_setting_t *g = api_keys_setting(raw);
		o.apikey_file = raw->api_keys.file;
		o.apikey_hash_key_file = raw->api_keys.hash_key;
		o.apikey_conf_file = g ? conf_setting_file(c, g) : NULL;
		o.apikey_conf_line = g ? conf_setting_line(g) : 0;
	}
	size_t before = c->n_errors;
	if (authn_keys_new(&o, &s->keys, err, sizeof(err)) < 0 && c->n_errors == before)
		conf_report(c, true, NULL, 0, "%s", err[0] ? err : "token keys could not be built");
	free(is);
}
