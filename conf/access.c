/*
 * Routes and policy rules: raw groups become policy specs, then policy_build checks what
 * it owns (prefix normal form, identity values, duplicate routes) and reports through a
 * callback that turns its findings into diagnostics at the line of the rule or route.
 */
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

#define PATH_BUF 256

/* The string-valued identity keys of a rule; "any" is a boolean and handled apart. */
static const struct {
	const char *name;
	enum policy_who who;
	size_t offset;
} ident_keys[] = {
    {"spiffe", POLICY_WHO_SPIFFE, offsetof(struct conf_raw_rule, spiffe)},
    {"cn", POLICY_WHO_CN, offsetof(struct conf_raw_rule, cn)},
    {"dns", POLICY_WHO_SAN_DNS, offsetof(struct conf_raw_rule, dns)},
    {"fingerprint", POLICY_WHO_FINGERPRINT, offsetof(struct conf_raw_rule, fingerprint)},
    {"token_sub", POLICY_WHO_TOKEN_SUB, offsetof(struct conf_raw_rule, token_sub)},
    {"scope", POLICY_WHO_SCOPE, offsetof(struct conf_raw_rule, scope)},
};

void conf_policy_report(void *arg, bool is_error, const char *file, int line, const char *msg)
{
	struct conf_ctx *c = arg;
	conf_report(c, is_error, file, line, "%s", msg);
}

/* Finds the single identity of a rule; -1 after a diagnostic when there is not exactly one. */
static int rule_identity(struct conf_ctx *c, const struct conf_raw_rule *r, const char *path,
                         struct policy_rule_spec *out)
{
	const config_setting_t *any = config_setting_get_member(r->node.where, "any");
	char names[128] = "";
	int n = 0;

	for (size_t i = 0; i < sizeof(ident_keys) / sizeof(ident_keys[0]); i++) {
		const char *v = *(const char *const *)((const char *)r + ident_keys[i].offset);
		if (!v)
			continue;
		out->who = ident_keys[i].who;
		out->value = v;
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
		         n ? ", " : "", ident_keys[i].name);
		n++;
	}
	if (any && !r->any) {
		conf_diag_at(c, any, true, "'%s.any' can only be true (leave it out instead)",
		             path);
		return -1;
	}
	if (any) {
		out->who = POLICY_WHO_ANY;
		out->value = NULL;
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%sany",
		         n ? ", " : "");
		n++;
	}
	if (r->group) {
		out->group = r->group;
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%sgroup",
		         n ? ", " : "");
		n++;
	}
	if (n == 1)
		return 0;
	if (n == 0)
		conf_diag_at(c, r->node.where, true,
		             "'%s' names no identity: use one of spiffe, cn, dns, fingerprint, "
		             "token_sub, scope, any or group",
		             path);
	else
		conf_diag_at(c, r->node.where, true,
		             "'%s' names %d identities (%s): a rule must name exactly one", path, n,
		             names);
	return -1;
}

/* Method names to POLICY_M_* bits; an unknown name is an error at its own line. */
static int rule_methods(struct conf_ctx *c, const struct conf_raw_rule *r, const char *path,
                        unsigned *out)
{
	int rc = 0;

	*out = 0;
	for (size_t i = 0; i < r->methods.n; i++) {
		unsigned bit = policy_method_parse(r->methods.v[i]);
		if (bit) {
			*out |= bit;
			continue;
		}
		conf_diag_at(c, config_setting_get_elem(r->methods.where, (unsigned)i), true,
		             "unknown method '%s' in '%s.methods'", r->methods.v[i], path);
		rc = -1;
	}
	return rc;
}

/*
 * Replaces each "route:NAME" of a rule's prefixes by the prefix of the route called NAME
 * (in place: the array is the walker's, its strings are borrowed). -1 after a diagnostic
 * per name that no route has, or when there are no routes to look in.
 */
static int rule_routes(struct conf_ctx *c, const struct conf_strs *pf, const struct conf_raw *raw)
{
	const struct conf_raw_route *rr = raw ? raw->routes.v : NULL;
	int rc = 0;

	for (size_t i = 0; i < pf->n; i++) {
		if (strncmp(pf->v[i], "route:", 6) != 0)
			continue;
		const char *name = pf->v[i] + 6, *prefix = NULL;
		for (size_t j = 0; raw && j < raw->routes.n && !prefix; j++)
			if (rr[j].name && !rr[j].node.bad && strcmp(rr[j].name, name) == 0)
				prefix = rr[j].prefix;
		const config_setting_t *at = config_setting_get_elem(pf->where, (unsigned)i);
		if (!prefix) {
			char path[PATH_BUF];
			conf_setting_path(at, path, sizeof(path));
			conf_diag_at(c, at, true, "'%s' names undefined route '%s'%s", path, name,
			             raw ? "" : " (routes are only known with the configuration)");
			rc = -1;
			continue;
		}
		pf->v[i] = prefix;
	}
	return rc;
}

/* One rule group to a spec; -1 after diagnostics. Strings stay borrowed from raw. */
int conf_rule_spec(struct conf_ctx *c, const struct conf_raw_rule *r, const struct conf_raw *raw,
                   struct policy_rule_spec *out)
{
	char path[PATH_BUF];
	int rc = 0;

	memset(out, 0, sizeof(*out));
	conf_setting_path(r->node.where, path, sizeof(path));
	if (rule_identity(c, r, path, out) < 0)
		rc = -1;
	if (!r->allow.where == !r->deny.where) {
		conf_diag_at(c, r->node.where, true, "'%s' must have exactly one of allow or deny",
		             path);
		rc = -1;
	}
	if (rule_methods(c, r, path, &out->methods) < 0)
		rc = -1;
	if (rule_routes(c, r->allow.where ? &r->allow : &r->deny, raw) < 0)
		rc = -1;
	if (rc < 0)
		return -1;
	/* A value ending in a slash and a star covers every ID below that path. */
	size_t n = out->value ? strlen(out->value) : 0;
	if (out->who == POLICY_WHO_SPIFFE && n >= 2 && strcmp(out->value + n - 2, "/*") == 0)
		out->who = POLICY_WHO_SPIFFE_PREFIX;
	const struct conf_strs *pf = r->allow.where ? &r->allow : &r->deny;
	out->effect = r->allow.where ? POLICY_ALLOW : POLICY_DENY;
	out->prefixes = pf->v;
	out->n_prefixes = pf->n;
	out->file = conf_setting_file(c, r->node.where);
	out->line = conf_setting_line(r->node.where);
	return 0;
}

/* A route's need; the schema (check_need) let only these spellings through. */
static enum policy_need route_need(const char *v)
{
	if (v && strcmp(v, "cert+token") == 0)
		return POLICY_NEED_CERT_TOKEN;
	if (v && strcmp(v, "cert+bound-token") == 0)
		return POLICY_NEED_CERT_BOUND_TOKEN;
	if (v && strcmp(v, "cert+apikey") == 0)
		return POLICY_NEED_CERT_APIKEY;
	return POLICY_NEED_CERT;
}

/* One route group to a spec, resolving the cluster name to its index in the snapshot. */
static int route_spec(struct conf_ctx *c, const struct conf_raw_route *r,
                      const struct conf_snapshot *s, struct policy_route_spec *out)
{
	const config_setting_t *cl = config_setting_get_member(r->node.where, "cluster");
	char path[PATH_BUF];
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < s->n_clusters; i++) {
		if (s->clusters[i].name && strcmp(s->clusters[i].name, r->cluster) == 0)
			break;
	}
	if (i == s->n_clusters) {
		conf_setting_path(cl, path, sizeof(path));
		conf_diag_at(c, cl, true, "'%s' names unknown cluster '%s'", path, r->cluster);
		return -1;
	}
	out->prefix = r->prefix;
	out->rewrite = r->rewrite;
	out->cluster = (unsigned)i;
	out->need = route_need(r->need);
	out->file = conf_setting_file(c, r->node.where);
	out->line = conf_setting_line(r->node.where);
	return 0;
}

/* Where to report that a list is empty: the list itself, or the whole file when absent. */
static void warn_empty(struct conf_ctx *c, const struct conf_vec *v, const char *msg)
{
	if (v->n > 0)
		return;
	if (v->where)
		conf_diag_at(c, v->where, false, "%s", msg);
	else
		conf_report(c, false, NULL, 0, "%s", msg);
}

/* Route names are how rules refer to routes ("route:NAME"): one route per name. */
static void route_names_check(struct conf_ctx *c, const struct conf_raw *raw)
{
	const struct conf_raw_route *rr = raw->routes.v;

	for (size_t i = 0; i < raw->routes.n; i++)
		for (size_t j = 0; rr[i].name && j < i; j++)
			if (rr[j].name && strcmp(rr[i].name, rr[j].name) == 0) {
				const config_setting_t *at =
				    config_setting_get_member(rr[i].node.where, "name");
				conf_diag_at(c, at, true, "route name '%s' is already used at line %d",
				             rr[i].name, conf_setting_line(rr[j].node.where));
				break;
			}
}

/*
 * Builds s->policy from the routes, the inline rules and the policy files (in that order:
 * the order breaks ties between equally specific rules). Routes and rules with errors
 * are left out but policy_build still runs on the others, so their problems are reported
 * in the same pass; a broken policy file fails the whole load like any other error.
 */
void conf_build_policy(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s)
{
	const struct conf_raw_route *rr = raw->routes.v;
	const struct conf_raw_rule *ru = raw->policy.v;
	struct conf_policy_set set = {0};
	struct policy_route_spec *routes = calloc(raw->routes.n + 1, sizeof(*routes));
	struct policy_rule_spec *rules = NULL;
	struct policy_spec spec = {.routes = routes};

	conf_policy_files_read(c, &raw->policy_files, &set);
	rules = calloc(raw->policy.n + conf_policy_files_count(&set) + 1, sizeof(*rules));
	spec.rules = rules;
	if (!routes || !rules) {
		conf_report(c, true, NULL, 0, "out of memory");
		goto fail;
	}
	route_names_check(c, raw);
	for (size_t i = 0; i < raw->routes.n; i++) {
		if (!rr[i].node.bad && route_spec(c, &rr[i], s, &routes[spec.n_routes]) == 0)
			spec.n_routes++;
	}
	for (size_t i = 0; i < raw->policy.n; i++) {
		if (!ru[i].node.bad && conf_rule_spec(c, &ru[i], raw, &rules[spec.n_rules]) == 0)
			spec.n_rules++;
	}
	conf_policy_files_specs(c, &set, raw, &spec, rules);
	warn_empty(c, &raw->routes, "no routes: every request will be answered 404");
	if (raw->policy.n == 0 && spec.n_rules == 0)
		warn_empty(c, &raw->policy, "no policy rules: every request will be denied");
	size_t before = c->n_errors;
	if (policy_build(&spec, conf_policy_report, c, &s->policy) < 0 && c->n_errors == before)
		conf_report(c, true, NULL, 0, "the policy could not be built");
	conf_policy_files_watch(c, &set, s);
fail:
	conf_policy_files_release(&set);
	free(routes);
	free(rules);
}
