/*
 * fuzz_snapshot.c: what the configuration fuzzers check after each load. The load
 * contract (a snapshot if and only if there was no error, every diagnostic has text),
 * then, for a loaded snapshot, the policy's own promises: a route prefix finds its own
 * route, a rewritten path is still in normal form, and an allow always names its rule.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz_files.h"
#include "fuzz_snapshot.h"

static char *dns_names[] = {(char *)"svc.example.org"};

/* Principals that match the identities the seeds use (and some that match nothing). */
static const struct authn_cert_id principals[] = {
    {.cn = (char *)"alice", .sha256_hex = "00"},
    {.cn = (char *)"bob", .san_dns = dns_names, .n_dns = 1},
    {.spiffe_id = (char *)"spiffe://example.org/ns/prod/sa/web", .cn = (char *)"web"},
    {.cn = NULL},
};

static const char *const paths[] = {"/", "/api", "/api/admin/x", "/public/a", "/health"};

static const unsigned methods[] = {POLICY_M_GET, POLICY_M_POST, POLICY_M_OTHER};

static void check_diags(const struct conf_diags *d)
{
	size_t errors = 0;
	for (size_t i = 0; i < d->n; i++) {
		FUZZ_CHECK(d->v[i].text != NULL && d->v[i].text[0] != '\0');
		errors += d->v[i].is_error;
	}
	FUZZ_CHECK(errors == d->n_errors);
}

/* The rewritten path must be its own normal form (it is forwarded as it is). */
static void check_rewrite(const struct policy_route *r, const char *path, size_t len)
{
	char out[4096], again[3 * sizeof(out) + 2];
	size_t ol = 0, al = 0;
	if (policy_route_rewrite(r, path, len, out, sizeof(out), &ol) != 0)
		return;
	FUZZ_CHECK(ol < sizeof(out) && out[ol] == '\0');
	FUZZ_CHECK(policy_path_normalize(out, ol, again, sizeof(again), &al) == POLICY_PATH_OK);
	FUZZ_CHECK(al == ol && memcmp(out, again, ol) == 0);
}

static void decide_all(const struct policy *p, const char *path, size_t len)
{
	for (size_t i = 0; i < sizeof(principals) / sizeof(principals[0]); i++) {
		struct authn_principal who = {.cert = &principals[i]};
		for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
			struct policy_decision dec;
			policy_decide(p, &who, methods[m], path, len, &dec);
			FUZZ_CHECK(dec.effect == POLICY_ALLOW || dec.effect == POLICY_DENY);
			if (dec.effect == POLICY_ALLOW)
				FUZZ_CHECK(dec.rule != NULL);
			int line = 0;
			if (dec.rule)
				FUZZ_CHECK(policy_rule_file(dec.rule, &line) != NULL);
		}
	}
	const struct policy_route *r = policy_route_lookup(p, path, len);
	if (r)
		check_rewrite(r, path, len);
}

void fuzz_snapshot_check(const struct conf_snapshot *s, const struct conf_diags *d)
{
	check_diags(d);
	FUZZ_CHECK((s == NULL) == (d->n_errors > 0));
	if (!s)
		return;
	FUZZ_CHECK(s->n_listeners >= 1 && conf_listeners_equal(s, s));
	const struct policy *p = s->policy;
	if (!p)
		return;
	for (size_t i = 0; i < policy_n_routes(p); i++) {
		const struct policy_route *r = policy_route_at(p, i);
		const struct policy_route *found = policy_route_lookup(p, r->prefix, r->prefix_len);
		/* Longest segment-aware prefix of a route's own prefix is that route. */
		FUZZ_CHECK(found && found->prefix_len == r->prefix_len &&
		           memcmp(found->prefix, r->prefix, r->prefix_len) == 0);
		FUZZ_CHECK(r->cluster < s->n_clusters);
		decide_all(p, r->prefix, r->prefix_len);
	}
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		decide_all(p, paths[i], strlen(paths[i]));
}

void fuzz_snapshot_warm_up(const char *header)
{
	static const char tail[] = "routes = ( { prefix = \"/\"; cluster = \"app\"; } );\n"
	                           "policy = ( { cn = \"alice\"; allow = [ \"/\" ]; } );\n";
	char text[4096];
	if (header)
		snprintf(text, sizeof(text), "%s%s", header, tail);
	else
		snprintf(text, sizeof(text), "%s", conf_default_text);
	for (int i = 0; i < 3; i++) {
		struct conf_diags d = {0};
		conf_snapshot_free(conf_load_string(text, "warm-up", &d));
		conf_diags_clear(&d);
	}
}
