/*
 * Token issuers and API keys: the raw groups become authn options, authn reads and checks
 * every JWKS, secret and key file and says what is wrong, and we say where (the line of
 * the issuer or of the api_keys group). A route that needs a kind of credential nobody
 * can present is an error too, rather than a route that answers 401 forever.
 */
#include <ctype.h>
#include <stdio.h>
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

/* The fetched-JWKS cache of the loading thread (gateway/jwks_fetch.c); unset = none. */
static struct conf_jwks_cache jwks_cache;
static bool jwks_cache_on;

/* Installs the cache later loads consult; see conf.h. */
void conf_jwks_cache_set(const struct conf_jwks_cache *cache)
{
	jwks_cache_on = cache != NULL;
	if (cache)
		jwks_cache = *cache;
}

/* The host of an https URL: a bracketed IPv6 literal or DNS/IPv4 characters; -1 if bad. */
static int url_host(const char *p, size_t n, struct conf_https_url *out)
{
	if (n == 0 || n >= sizeof(out->host))
		return -1;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		bool v6 = p[0] == '[' && (ch == ':' || ch == '[' || ch == ']');
		if (!(isalnum((unsigned char)ch) || ch == '.' || ch == '-' || v6))
			return -1;
	}
	if (p[0] == '[' &&
	    (n < 3 || p[n - 1] != ']' || memchr(p + 1, '[', n - 1) || memchr(p, ']', n - 1)))
		return -1;
	memcpy(out->host, p, n);
	out->host[n] = '\0';
	return 0;
}

/* Parses an https URL into host, port and path; see conf.h. */
int conf_https_url_parse(const char *url, struct conf_https_url *out, char *err, size_t errlen)
{
	static const char scheme[] = "https://";
	const char *why = NULL;

	memset(out, 0, sizeof(*out));
	if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
		snprintf(err, errlen, "must be an https:// URL, not '%s'", url);
		return -1;
	}
	const char *h = url + sizeof(scheme) - 1, *path = h + strcspn(h, "/");
	const char *colon = h[0] == '[' ? memchr(h, ']', (size_t)(path - h)) : h;
	colon = colon ? memchr(colon, ':', (size_t)(path - colon)) : NULL;
	size_t hlen = (size_t)((colon ? colon : path) - h);
	char *end = NULL;
	out->port = 443;
	out->path = path;
	if (colon) {
		unsigned long port = strtoul(colon + 1, &end, 10);
		if (!isdigit((unsigned char)colon[1]) || end != path || port == 0 || port > 65535)
			why = "a port of 1..65535";
		out->port = (unsigned)port;
	}
	if (memchr(h, '@', (size_t)(path - h)))
		why = "no user info";
	else if (url_host(h, hlen, out) < 0)
		why = "a DNS name, IPv4 or [IPv6] host";
	for (const char *p = path; !why && *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
			why = "a path without spaces, control characters or a fragment";
	}
	if (!why)
		return 0;
	snprintf(err, errlen, "must be https://host[:port]/path with %s, not '%s'", why, url);
	return -1;
}

/* The jwks_url keys of an issuer go together; -1 after reporting what is missing. */
static int jwks_url_check(struct conf_ctx *c, const struct conf_raw_issuer *r)
{
	const config_setting_t *g = r->node.where;

	if (r->jwks_url && r->jwks) {
		conf_diag_at(c, config_setting_get_member(g, "jwks_url"), true,
		             "issuer '%s': give either jwks or jwks_url, not both", r->name);
		return -1;
	}
	if (r->jwks_url && !r->jwks_ca) {
		conf_diag_at(c, config_setting_get_member(g, "jwks_url"), true,
		             "issuer '%s': jwks_url needs jwks_ca (the CA bundle that verifies the "
		             "identity provider)",
		             r->name);
		return -1;
	}
	if (!r->jwks_url && (r->jwks_ca || r->jwks_address)) {
		conf_diag_at(c,
		             config_setting_get_member(g, r->jwks_ca ? "jwks_ca" : "jwks_address"),
		             true, "issuer '%s': jwks_ca and jwks_address need jwks_url", r->name);
		return -1;
	}
	return 0;
}

/* The CA bundle must load exactly as the fetcher will load it; -1 after reporting. */
static int jwks_ca_check(struct conf_ctx *c, const struct conf_raw_issuer *r)
{
	struct pki_client_opts po = {.ca_file = r->jwks_ca, .verify = true};
	struct pki_client *cli = NULL;
	char err[384] = "";

	if (pki_client_new(&po, &cli, err, sizeof(err)) == 0) {
		pki_client_free(cli);
		return 0;
	}
	conf_diag_at(c, config_setting_get_member(r->node.where, "jwks_ca"), true,
	             "issuer '%s': jwks_ca: %s", r->name, err);
	return -1;
}

/*
 * A jwks_url issuer takes the cached text as its JWKS. Returns false when the issuer has
 * no keys at all yet (nothing fetched, no HMAC secret), so it is left out of the key set.
 */
static bool jwks_url_opts(struct conf_ctx *c, const struct conf_raw_issuer *r,
                          struct authn_issuer_opts *o)
{
	struct conf_jwks_source src = {
	    .name = r->name,
	    .issuer = r->issuer,
	    .url = r->jwks_url,
	    .ca_file = r->jwks_ca,
	    .address = r->jwks_address,
	    .refresh_ms = r->jwks_refresh,
	    .min_refetch_ms = r->jwks_min_refetch,
	    .timeout_ms = r->jwks_timeout,
	    .file = o->file,
	    .line = o->line,
	};
	size_t len = 0;
	const char *text = jwks_cache_on ? jwks_cache.source(jwks_cache.arg, &src, &len) : NULL;

	if (text) {
		o->jwks_json = text;
		o->jwks_json_len = len;
		return true;
	}
	/* Without a cache (gatewayd -t, gatewayctl) there is nothing to warn about. */
	if (jwks_cache_on)
		conf_diag_at(c, config_setting_get_member(r->node.where, "jwks_url"), false,
		             "issuer '%s': no JWKS fetched from %s yet: its tokens are refused "
		             "until a fetch succeeds",
		             r->name, r->jwks_url);
	return o->hmac_secret_file != NULL;
}

/* One raw issuer to authn options; strings stay borrowed from the raw tree. Returns false
 * when the issuer is to be left out (a configuration error, or no keys yet). */
static bool issuer_opts(struct conf_ctx *c, const struct conf_raw_issuer *r,
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
	if (jwks_url_check(c, r) < 0)
		return false;
	if (!r->jwks_url)
		return true;
	if (jwks_ca_check(c, r) < 0)
		return false;
	return jwks_url_opts(c, r, o);
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

	/* Every load that gets this far tells the cache, also one without issuers (so the
	 * fetcher forgets the sources of the previous configuration). */
	if (jwks_cache_on && jwks_cache.begin)
		jwks_cache.begin(jwks_cache.arg);
	check_route_needs(c, raw);
	if (raw->issuers.n == 0 && !raw->api_keys.file)
		return;
	is = calloc(raw->issuers.n + 1, sizeof(*is));
	if (!is) {
		conf_report(c, true, NULL, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < raw->issuers.n; i++) {
		if (!ri[i].node.bad && issuer_opts(c, &ri[i], &is[o.n_issuers]))
			o.n_issuers++;
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
