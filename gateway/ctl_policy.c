/*
 * ctl_policy.c: `gatewayctl policy ...`, the operator's view of the policy, computed by
 * the very code the daemon runs (conf_load, policy_build, policy_decide).
 *   check    every error and warning of a configuration or of policy files alone
 *   explain  the decision for one identity and request, the rule that made it (file:line)
 *            and the rules that were close
 *   diff     the grants (identity, prefix, methods) a new policy adds and removes
 *   grants   every grant of one policy
 * A policy source is a configuration (-c FILE, which reads its policy files too) or policy
 * files alone (-p FILE or a glob); a bare file name is recognised by its top-level keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>
#include <openssl/pem.h>

#include "authn.h"
#include "conf.h"
#include "policy.h"

#define MAX_IDS   16 /* --dns and --scope values */
#define CLOSE_MAX 20 /* close rules listed per kind before "... and N more" */
#define LINE_BUF  1024

int ctl_policy_main(int argc, char **argv);

/* A loaded policy: from a configuration (with routes) or from policy files alone. */
struct psrc {
	const char *path;
	struct conf_snapshot *cfg; /* owned, or NULL */
	struct policy *own;        /* owned when loaded from policy files */
	const struct policy *p;    /* borrowed from cfg or own */
	size_t warnings;
};

/* Who to explain a decision for, and the request. */
struct ask {
	struct authn_cert_id cert; /* from the options, or read from cert_file */
	char *dns[MAX_IDS], *scopes[MAX_IDS];
	size_t n_scopes;
	const char *cert_file, *token_sub, *method, *path;
};

static void policy_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage (SRC: -c CONFIG, -p POLICY-FILE-OR-GLOB, or a file of either kind):\n"
	    "  gatewayctl policy check SRC\n"
	    "        every error and warning (file:line); exit 1 on errors\n"
	    "  gatewayctl policy explain SRC (--spiffe ID | --cn NAME | --cert FILE | --dns D |\n"
	    "        --fingerprint HEX)... [--token-sub S] [--scope X]... [--method M] --path P\n"
	    "        the decision, the rule that made it and the rules that were close\n"
	    "  gatewayctl policy diff OLD NEW\n"
	    "        grants (identity, prefix, methods) gained (+) and lost (-); exit 1 if any\n"
	    "  gatewayctl policy grants SRC\n"
	    "        every identity, prefix and the methods it may use there\n");
}

/* True when path reads as a main configuration rather than a policy file. */
static bool looks_like_config(const char *path)
{
	config_t cfg;
	bool conf = true; /* unreadable: let conf_load say why */

	if (strpbrk(path, "*?["))
		return false; /* only policy files are named by globs */
	config_init(&cfg);
	if (config_read_file(&cfg, path))
		conf = config_lookup(&cfg, "listeners") ||
		       !(config_lookup(&cfg, "rules") || config_lookup(&cfg, "groups"));
	config_destroy(&cfg);
	return conf;
}

/*
 * Loads kind 'c' (configuration), 'p' (policy files) or 0 (guess). Errors go to stderr,
 * warnings too when asked (check shows them; the other commands only count them).
 */
static int psrc_load(struct psrc *s, const char *path, int kind, bool warnings)
{
	struct conf_diags d = {0};

	memset(s, 0, sizeof(*s));
	s->path = path;
	if (kind == 0)
		kind = looks_like_config(path) ? 'c' : 'p';
	if (kind == 'c') {
		s->cfg = conf_load(path, &d);
		s->p = s->cfg ? s->cfg->policy : NULL;
	} else {
		s->own = conf_policy_load(path, &d);
		s->p = s->own;
	}
	for (size_t i = 0; i < d.n; i++)
		if (warnings || d.v[i].is_error)
			fprintf(stderr, "%s\n", d.v[i].text);
	s->warnings = d.n - d.n_errors;
	size_t errors = d.n_errors;
	conf_diags_clear(&d);
	if (!s->p || errors) {
		fprintf(stderr, "%s: %zu error(s)\n", path, errors ? errors : 1);
		return -1;
	}
	return 0;
}

static void psrc_free(struct psrc *s)
{
	conf_snapshot_free(s->cfg);
	policy_free(s->own);
	memset(s, 0, sizeof(*s));
}

/* "file:line  allow cn=alice /a,/b GET,POST" for one rule. */
static void rule_text(const struct policy_rule *r, char *buf, size_t cap)
{
	struct policy_rule_info ri;
	char who[512], meth[128], where[300];
	size_t n;

	policy_rule_get(r, &ri);
	policy_ident_format(ri.who, ri.value, ri.group, who, sizeof(who));
	policy_methods_format(ri.methods, meth, sizeof(meth));
	snprintf(where, sizeof(where), "%s:%d", ri.file ? ri.file : "?", ri.line);
	n = (size_t)snprintf(buf, cap, "%s  %s %s ", where,
	                     ri.effect == POLICY_ALLOW ? "allow" : "deny", who);
	for (size_t i = 0; i < ri.n_prefixes && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", ri.prefixes[i]);
	if (n < cap)
		snprintf(buf + n, cap - n, " %s", meth);
}

/* One source from argv[*i] ("-c F", "-p F" or "F"); NULL when argv[*i] is none of those. */
static const char *src_arg(int argc, char **argv, int *i, int *kind)
{
	const char *a = argv[*i];

	if ((strcmp(a, "-c") == 0 || strcmp(a, "-p") == 0) && *i + 1 < argc) {
		*kind = a[1];
		return argv[++*i];
	}
	if (a[0] != '-') {
		*kind = 0;
		return a;
	}
	return NULL;
}

/* The single source of "SUBCOMMAND SRC"; NULL (after usage) when argv is not that. */
static const char *one_src(int argc, char **argv, int *kind)
{
	int i = 1;
	const char *path = argc > 1 ? src_arg(argc, argv, &i, kind) : NULL;

	if (!path || i != argc - 1) {
		policy_usage(stderr);
		return NULL;
	}
	return path;
}

static int cmd_check(int argc, char **argv)
{
	struct psrc s;
	char digest[65];
	int kind = 0;
	const char *path = one_src(argc, argv, &kind);

	if (!path)
		return 2;
	if (psrc_load(&s, path, kind, true) < 0)
		return 1;
	policy_digest_hex(s.p, digest);
	printf("%s: policy OK: %zu rule(s), %zu group(s), %zu route(s), %zu warning(s)\n"
	       "digest sha256:%s\n",
	       path, policy_n_rules(s.p), policy_n_groups(s.p), policy_n_routes(s.p), s.warnings,
	       digest);
	psrc_free(&s);
	return 0;
}

/* ---- explain ---- */

static int read_cert_id(const char *file, struct authn_cert_id *id)
{
	char err[256];
	FILE *f = fopen(file, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	int rc = -1;

	if (!f)
		perror(file);
	else if (!x)
		fprintf(stderr, "%s: not a PEM certificate\n", file);
	else if ((rc = authn_cert_id_from_x509(id, x, err, sizeof(err))) != 0)
		fprintf(stderr, "%s: %s\n", file, err);
	X509_free(x);
	if (f)
		fclose(f);
	return rc;
}

/* Parses one identity or request option at argv[*i]; 1 taken, 0 not one, -1 bad. */
static int ask_opt(struct ask *a, int argc, char **argv, int *i)
{
	const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	if (!v || o[0] != '-' || o[1] != '-')
		return 0;
	if (strcmp(o, "--spiffe") == 0)
		a->cert.spiffe_id = (char *)v;
	else if (strcmp(o, "--cn") == 0)
		a->cert.cn = (char *)v;
	else if (strcmp(o, "--cert") == 0)
		a->cert_file = v;
	else if (strcmp(o, "--fingerprint") == 0 && strlen(v) == 64)
		memcpy(a->cert.sha256_hex, v, 65);
	else if (strcmp(o, "--dns") == 0 && a->cert.n_dns < MAX_IDS) {
		a->dns[a->cert.n_dns++] = (char *)v;
		a->cert.san_dns = a->dns;
	} else if (strcmp(o, "--token-sub") == 0)
		a->token_sub = v;
	else if (strcmp(o, "--scope") == 0 && a->n_scopes < MAX_IDS)
		a->scopes[a->n_scopes++] = (char *)v;
	else if (strcmp(o, "--method") == 0)
		a->method = v;
	else if (strcmp(o, "--path") == 0)
		a->path = v;
	else
		return -1;
	(*i)++;
	return 1;
}

/* The caller as the options describe it; -1 when --cert cannot be read. */
static int ask_principal(struct ask *a, struct authn_principal *who, bool *from_file)
{
	memset(who, 0, sizeof(*who));
	*from_file = false;
	if (a->cert_file) {
		if (read_cert_id(a->cert_file, &a->cert) != 0)
			return -1;
		*from_file = true;
	}
	if (a->cert.spiffe_id &&
	    !authn_spiffe_id_valid(a->cert.spiffe_id, strlen(a->cert.spiffe_id)))
		fprintf(stderr,
		        "warning: %s is not a valid SPIFFE ID: no certificate would carry it\n",
		        a->cert.spiffe_id);
	who->cert = &a->cert;
	if (a->token_sub || a->n_scopes) {
		who->has_token = true;
		who->token.kind = AUTHN_CRED_JWT;
		who->token.sub = (char *)a->token_sub;
		who->token.scopes = a->scopes;
		who->token.n_scopes = a->n_scopes;
	}
	return 0;
}

static void id_part(const char **sep, const char *key, const char *value)
{
	printf("%s%s=%s", *sep, key, value);
	*sep = ", ";
}

static void print_identity(const struct authn_principal *who)
{
	const struct authn_cert_id *c = who->cert;
	const char *sep = "";

	printf("%-9s ", "identity");
	if (c->spiffe_id)
		id_part(&sep, "spiffe", c->spiffe_id);
	if (c->cn)
		id_part(&sep, "cn", c->cn);
	for (size_t i = 0; i < c->n_dns; i++)
		id_part(&sep, "dns", c->san_dns[i]);
	if (c->sha256_hex[0])
		id_part(&sep, "fingerprint", c->sha256_hex);
	if (who->has_token && who->token.sub)
		id_part(&sep, "token_sub", who->token.sub);
	for (size_t i = 0; who->has_token && i < who->token.n_scopes; i++)
		id_part(&sep, "scope", who->token.scopes[i]);
	printf("%s\n", *sep ? "" : "(none: only rules for any apply)");
}

/* Rules per explain kind, printed in groups after the decision. */
struct explain_out {
	const struct policy_rule *rules[5][CLOSE_MAX];
	size_t n[5];
};

static void explain_collect(void *arg, const struct policy_explain_item *it)
{
	struct explain_out *o = arg;
	size_t k = (size_t)it->kind;

	if (k < 5 && o->n[k]++ < CLOSE_MAX)
		o->rules[k][o->n[k] - 1] = it->rule;
}

static void explain_print(const struct explain_out *o, enum policy_explain_kind k,
                          const char *label, const char *why)
{
	char line[LINE_BUF];

	for (size_t i = 0; i < o->n[k] && i < CLOSE_MAX; i++) {
		rule_text(o->rules[k][i], line, sizeof(line));
		printf("%-9s %s   (%s)\n", label, line, why);
	}
	if (o->n[k] > CLOSE_MAX)
		printf("%-9s ... and %zu more\n", label, o->n[k] - CLOSE_MAX);
}

/* The route line: which route serves the path, or why the request would not get that far. */
static void print_route(const struct psrc *s, const char *norm, size_t nlen)
{
	const struct policy_route *r = policy_route_lookup(s->p, norm, nlen);

	if (!s->cfg)
		printf("%-9s (policy files only: routes are not known)\n", "route");
	else if (!r)
		printf("%-9s none: the gateway answers 404 before the policy is asked\n", "route");
	else
		printf("%-9s %s -> cluster %s (%s:%d)\n", "route", r->prefix,
		       r->cluster < s->cfg->n_clusters ? s->cfg->clusters[r->cluster].name : "?",
		       r->file ? r->file : "?", r->line);
}

/* Normalises, routes, decides and explains one request; 0, or 1 when it cannot. */
static int explain_run(const struct psrc *s, const struct authn_principal *who, struct ask *a)
{
	static char norm[3 * 8192 + 1];
	struct explain_out o = {0};
	struct policy_decision d;
	char line[LINE_BUF], digest[65];
	size_t nlen;
	unsigned m = policy_method_bit(a->method, strlen(a->method));
	enum policy_path_status ps =
	    policy_path_normalize(a->path, strlen(a->path), norm, sizeof(norm), &nlen);

	if (ps != POLICY_PATH_OK) {
		printf("%-9s %s\n%-9s 400 (%s): refused before routing and policy\n", "path",
		       a->path, "result", policy_path_status_str(ps));
		return 0;
	}
	printf("%-9s %s%s%s%s\n", "path", norm, strcmp(norm, a->path) ? "   (as sent: " : "",
	       strcmp(norm, a->path) ? a->path : "", strcmp(norm, a->path) ? ")" : "");
	print_route(s, norm, nlen);
	print_identity(who);
	printf("%-9s %s\n", "method", a->method);
	policy_explain(s->p, who, m, norm, nlen, &d, explain_collect, &o);
	printf("%-9s %s\n", "decision", d.effect == POLICY_ALLOW ? "allow" : "deny");
	if (d.rule) {
		rule_text(d.rule, line, sizeof(line));
		printf("%-9s %s\n", "rule", line);
	} else {
		printf("%-9s (none: default deny, no rule allows this)\n", "rule");
	}
	explain_print(&o, POLICY_EXPLAIN_MATCHED, "matched", "also applies");
	explain_print(&o, POLICY_EXPLAIN_OTHER_METHOD, "close",
	              "same identity and prefix, other methods");
	explain_print(&o, POLICY_EXPLAIN_OTHER_PREFIX, "close", "same identity, other prefix");
	explain_print(&o, POLICY_EXPLAIN_OTHER_IDENTITY, "close",
	              "covers the path, other identity");
	policy_digest_hex(s->p, digest);
	printf("%-9s sha256:%s\n", "digest", digest);
	return 0;
}

static int cmd_explain(int argc, char **argv)
{
	struct ask a = {.method = "GET"};
	struct authn_principal who;
	struct psrc s;
	const char *src = NULL;
	int kind = 0, rc = 1;
	bool from_file = false;

	for (int i = 1; i < argc; i++) {
		int k = ask_opt(&a, argc, argv, &i);
		/* Not an option: the one source, given once. */
		if (k == 0 && (src || !(src = src_arg(argc, argv, &i, &kind))))
			k = -1;
		if (k < 0) {
			policy_usage(stderr);
			return 2;
		}
	}
	if (!src || !a.path) {
		policy_usage(stderr);
		return 2;
	}
	if (ask_principal(&a, &who, &from_file) < 0)
		return 1;
	if (psrc_load(&s, src, kind, false) == 0) {
		rc = explain_run(&s, &who, &a);
		psrc_free(&s);
	}
	if (from_file)
		authn_cert_id_clear(&a.cert);
	return rc;
}

/* ---- diff and grants ---- */

struct diff_out {
	size_t gained, lost;
};

static void print_change(void *arg, const struct policy_change *c)
{
	struct diff_out *o = arg;
	char who[512], meth[128], was[LINE_BUF] = "", now[LINE_BUF] = "";

	policy_ident_format(c->who, c->value, NULL, who, sizeof(who));
	if (c->was)
		rule_text(c->was, was, sizeof(was));
	if (c->now)
		rule_text(c->now, now, sizeof(now));
	if (c->gained) {
		policy_methods_format(c->gained, meth, sizeof(meth));
		printf("+ %s %s %s   (now: %s)\n", who, c->prefix, meth, now[0] ? now : "?");
		o->gained++;
	}
	if (c->lost) {
		policy_methods_format(c->lost, meth, sizeof(meth));
		printf("- %s %s %s   (was: %s; now: %s)\n", who, c->prefix, meth,
		       was[0] ? was : "?", now[0] ? now : "no rule allows it");
		o->lost++;
	}
}

static int cmd_diff(int argc, char **argv)
{
	const char *path[2] = {NULL, NULL};
	int kind[2] = {0, 0}, n = 0, rc = 2;
	struct psrc a, b;
	struct diff_out o = {0};

	for (int i = 1; i < argc; i++) {
		const char *p = n < 2 ? src_arg(argc, argv, &i, &kind[n]) : NULL;
		if (!p) {
			policy_usage(stderr);
			return 2;
		}
		path[n++] = p;
	}
	if (n != 2) {
		policy_usage(stderr);
		return 2;
	}
	if (psrc_load(&a, path[0], kind[0], false) < 0)
		return 2;
	if (psrc_load(&b, path[1], kind[1], false) == 0) {
		if (policy_diff(a.p, b.p, print_change, &o) < 0) {
			fprintf(stderr, "policy diff: out of memory\n");
		} else {
			printf("%zu grant(s) gained, %zu lost\n", o.gained, o.lost);
			rc = o.gained || o.lost ? 1 : 0;
		}
		psrc_free(&b);
	}
	psrc_free(&a);
	return rc;
}

static void print_grant(void *arg, const struct policy_grant *g)
{
	char who[512], allowed[128], denied[128];

	policy_ident_format(g->who, g->value, NULL, who, sizeof(who));
	policy_methods_format(g->allowed, allowed, sizeof(allowed));
	policy_methods_format(g->denied, denied, sizeof(denied));
	printf("%s %s allow %s%s%s\n", who, g->prefix, g->allowed ? allowed : "-",
	       g->denied ? " deny " : "", g->denied ? denied : "");
	(*(size_t *)arg)++;
}

static int cmd_grants(int argc, char **argv)
{
	struct psrc s;
	int kind = 0;
	size_t n = 0;
	const char *path = one_src(argc, argv, &kind);

	if (!path)
		return 2;
	if (psrc_load(&s, path, kind, false) < 0)
		return 1;
	int rc = policy_grants(s.p, print_grant, &n);
	psrc_free(&s);
	if (rc < 0) {
		fprintf(stderr, "policy grants: out of memory\n");
		return 1;
	}
	return 0;
}

/* `gatewayctl policy SUBCOMMAND ...`; argv[0] is "policy". */
int ctl_policy_main(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "help";

	if (strcmp(sub, "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(sub, "explain") == 0)
		return cmd_explain(argc - 1, argv + 1);
	if (strcmp(sub, "diff") == 0)
		return cmd_diff(argc - 1, argv + 1);
	if (strcmp(sub, "grants") == 0)
		return cmd_grants(argc - 1, argv + 1);
	if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0) {
		policy_usage(stdout);
		return 0;
	}
	policy_usage(stderr);
	return 2;
}
