/*
 * Policy files: groups and rules kept apart from the main configuration, where operators
 * edit them most. The main file lists them in policy_files (file names or globs, matches
 * sorted, resolved against the directory of the file that names them); each is a
 * libconfig file with only `groups` and `rules`, checked against its own schema (unknown
 * keys are errors). They are read with the configuration, so a reload reads them again
 * and a broken policy file fails the whole load like any other error, keeping the old
 * generation in service.
 *
 * Diagnostics name the policy file itself: while one is walked, the load's name is that
 * file and no include directory applies (an @include inside a policy file is resolved
 * against the policy file's directory and named as written).
 */
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

#define PATH_BUF 256

/* The identity keys of a group member, in the order they are looked for. */
static const struct {
	const char *name;
	enum policy_who who;
	size_t offset;
} member_keys[] = {
    {"spiffe", POLICY_WHO_SPIFFE, offsetof(struct conf_raw_member, spiffe)},
    {"cn", POLICY_WHO_CN, offsetof(struct conf_raw_member, cn)},
    {"dns", POLICY_WHO_SAN_DNS, offsetof(struct conf_raw_member, dns)},
    {"fingerprint", POLICY_WHO_FINGERPRINT, offsetof(struct conf_raw_member, fingerprint)},
    {"token_sub", POLICY_WHO_TOKEN_SUB, offsetof(struct conf_raw_member, token_sub)},
    {"scope", POLICY_WHO_SCOPE, offsetof(struct conf_raw_member, scope)},
};

/* What the load's context says about file names, saved while a policy file is handled. */
struct ctx_save {
	const char *name, *dir;
};

static void ctx_enter(struct conf_ctx *c, const char *path, struct ctx_save *sv)
{
	sv->name = c->name;
	sv->dir = c->dir;
	c->name = path;
	c->dir = NULL;
}

static void ctx_leave(struct conf_ctx *c, const struct ctx_save *sv)
{
	c->name = sv->name;
	c->dir = sv->dir;
}

/* Appends a copy of s to v[*n] unless already there; -1 when memory runs out. */
static int strs_add(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], s) == 0)
			return 0;
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -1;
	(*n)++;
	return 0;
}

/* The directory part of path, as a new string; NULL when memory runs out. */
static char *dir_of(const char *path)
{
	char *copy = strdup(path);
	char *d = copy ? strdup(dirname(copy)) : NULL;

	free(copy);
	return d;
}

/*
 * Adds the files one pattern names: itself when it has no wildcard (a missing file is
 * then an error when it is read), else its matches in sorted order. A pattern matching
 * nothing is only a warning: an empty policy.d is a legitimate, if strict, policy.
 */
static void expand_one(struct conf_ctx *c, const config_setting_t *at, const char *pat,
                       struct conf_policy_set *set)
{
	glob_t g;

	if (!strpbrk(pat, "*?[")) {
		if (strs_add(&set->paths, &set->n, pat) < 0)
			conf_diag_at(c, at, true, "out of memory");
		return;
	}
	char *dir = dir_of(pat);
	if (!dir || strs_add(&set->dirs, &set->n_dirs, dir) < 0)
		conf_diag_at(c, at, true, "out of memory");
	free(dir);
	int rc = glob(pat, GLOB_MARK, NULL, &g);
	if (rc == GLOB_NOMATCH)
		conf_diag_at(c, at, false, "policy_files pattern \"%s\" matches no file", pat);
	else if (rc != 0)
		conf_diag_at(c, at, true, "policy_files pattern \"%s\" cannot be listed", pat);
	for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
		size_t n = strlen(g.gl_pathv[i]);
		if (n && g.gl_pathv[i][n - 1] == '/')
			continue; /* GLOB_MARK: a directory */
		if (strs_add(&set->paths, &set->n, g.gl_pathv[i]) < 0)
			conf_diag_at(c, at, true, "out of memory");
	}
	if (rc == 0)
		globfree(&g);
}

/* Opens and walks one policy file; its problems carry its own name. */
static void read_one(struct conf_ctx *c, struct conf_policy_set *set, size_t i)
{
	const char *path = set->paths[i];
	config_t *cfg = &set->cfgs[i];
	struct ctx_save sv;
	char *dir = dir_of(path);
	FILE *f = fopen(path, "r");

	ctx_enter(c, path, &sv);
	config_init(cfg);
	if (!f) {
		conf_report(c, true, path, 0, "cannot open policy file: %s", strerror(errno));
	} else if (!dir) {
		conf_report(c, true, path, 0, "out of memory");
	} else {
		config_set_include_dir(cfg, dir);
		if (!config_read_file(cfg, path)) {
			const char *text = config_error_text(cfg);
			conf_report(c, true, config_error_file(cfg), config_error_line(cfg), "%s",
			            text ? text : "cannot be read");
		} else {
			conf_walk_group(c, conf_schema_policy_file, config_root_setting(cfg),
			                &set->raws[i]);
			set->ok[i] = true;
		}
	}
	if (f)
		fclose(f);
	free(dir);
	ctx_leave(c, &sv);
}

void conf_policy_files_read(struct conf_ctx *c, const struct conf_strs *patterns,
                            struct conf_policy_set *set)
{
	for (size_t i = 0; i < patterns->n; i++) {
		const config_setting_t *at =
		    patterns->where ? config_setting_get_elem(patterns->where, (unsigned)i) : NULL;
		expand_one(c, at ? at : patterns->where, patterns->v[i], set);
	}
	if (set->n == 0)
		return;
	set->cfgs = calloc(set->n, sizeof(*set->cfgs));
	set->raws = calloc(set->n, sizeof(*set->raws));
	set->ok = calloc(set->n, sizeof(*set->ok));
	if (!set->cfgs || !set->raws || !set->ok) {
		conf_report(c, true, NULL, 0, "out of memory");
		free(set->cfgs);
		set->cfgs = NULL;
		return;
	}
	for (size_t i = 0; i < set->n; i++)
		read_one(c, set, i);
}

size_t conf_policy_files_count(const struct conf_policy_set *set)
{
	size_t n = 0;

	for (size_t i = 0; set->cfgs && i < set->n; i++)
		n += set->raws[i].rules.n;
	return n;
}

/* The single identity of a group member; -1 after a diagnostic. */
static int member_spec(struct conf_ctx *c, const struct conf_raw_member *m,
                       struct policy_member_spec *out)
{
	char path[PATH_BUF];
	int n = 0;

	for (size_t i = 0; i < sizeof(member_keys) / sizeof(member_keys[0]); i++) {
		const char *v = *(const char *const *)((const char *)m + member_keys[i].offset);
		if (!v)
			continue;
		out->who = member_keys[i].who;
		out->value = v;
		n++;
	}
	if (n == 1) {
		/* As in rules: a SPIFFE ID ending in a slash and a star covers those below. */
		size_t len = strlen(out->value);
		if (out->who == POLICY_WHO_SPIFFE && len >= 2 &&
		    strcmp(out->value + len - 2, "/*") == 0)
			out->who = POLICY_WHO_SPIFFE_PREFIX;
		return 0;
	}
	conf_setting_path(m->node.where, path, sizeof(path));
	conf_diag_at(c, m->node.where, true,
	             "'%s' must name exactly one of spiffe, cn, dns, fingerprint, token_sub or "
	             "scope",
	             path);
	return -1;
}

/* One group of a policy file to a spec, its members from set->members[*used..]. */
static int group_spec(struct conf_ctx *c, const struct conf_raw_group *g,
                      struct conf_policy_set *set, size_t *used, struct policy_group_spec *out)
{
	const struct conf_raw_member *m = g->members.v;
	int rc = 0;

	out->name = g->name;
	out->members = &set->members[*used];
	out->n_members = 0;
	out->file = conf_setting_file(c, g->node.where);
	out->line = conf_setting_line(g->node.where);
	for (size_t i = 0; i < g->members.n; i++) {
		if (m[i].node.bad || member_spec(c, &m[i], &set->members[*used]) < 0) {
			rc = -1;
			continue;
		}
		(*used)++;
		out->n_members++;
	}
	return rc;
}

/* Room for every group and member of the set's files; -1 when memory runs out. */
static int groups_alloc(struct conf_policy_set *set)
{
	size_t n_groups = 0, n_members = 0;

	for (size_t i = 0; i < set->n; i++) {
		const struct conf_raw_group *g = set->raws[i].groups.v;
		n_groups += set->raws[i].groups.n;
		for (size_t j = 0; j < set->raws[i].groups.n; j++)
			n_members += g[j].members.n;
	}
	set->groups = calloc(n_groups + 1, sizeof(*set->groups));
	set->members = calloc(n_members + 1, sizeof(*set->members));
	return set->groups && set->members ? 0 : -1;
}

void conf_policy_files_specs(struct conf_ctx *c, struct conf_policy_set *set,
                             const struct conf_raw *raw, struct policy_spec *spec,
                             struct policy_rule_spec *rules)
{
	size_t used = 0;

	if (!set->cfgs || set->n == 0)
		return;
	if (groups_alloc(set) < 0) {
		conf_report(c, true, NULL, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < set->n; i++) {
		const struct conf_raw_group *g = set->raws[i].groups.v;
		const struct conf_raw_rule *r = set->raws[i].rules.v;
		struct ctx_save sv;
		if (!set->ok[i])
			continue;
		ctx_enter(c, set->paths[i], &sv);
		for (size_t j = 0; j < set->raws[i].groups.n; j++)
			if (!g[j].node.bad &&
			    group_spec(c, &g[j], set, &used, &set->groups[set->n_groups]) == 0)
				set->n_groups++;
		for (size_t j = 0; j < set->raws[i].rules.n; j++)
			if (!r[j].node.bad &&
			    conf_rule_spec(c, &r[j], raw, &rules[spec->n_rules]) == 0)
				spec->n_rules++;
		ctx_leave(c, &sv);
	}
	spec->groups = set->groups;
	spec->n_groups = set->n_groups;
}

void conf_policy_files_watch(struct conf_ctx *c, const struct conf_policy_set *set,
                             struct conf_snapshot *s)
{
	for (size_t i = 0; i < set->n + set->n_dirs; i++) {
		const char *f = i < set->n ? set->paths[i] : set->dirs[i - set->n];
		if (strs_add(&s->files, &s->n_files, f) < 0) {
			conf_report(c, true, NULL, 0, "out of memory");
			return;
		}
	}
}

void conf_policy_files_release(struct conf_policy_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		if (set->cfgs) {
			conf_walk_release(conf_schema_policy_file, &set->raws[i]);
			config_destroy(&set->cfgs[i]);
		}
		free(set->paths[i]);
	}
	for (size_t i = 0; i < set->n_dirs; i++)
		free(set->dirs[i]);
	free(set->dirs);
	free(set->paths);
	free(set->cfgs);
	free(set->raws);
	free(set->ok);
	free(set->groups);
	free(set->members);
	memset(set, 0, sizeof(*set));
}

/*
 * Loads policy files alone (see conf.h): the groups and rules of every file the pattern
 * names, built into a policy without routes. NULL after any error; diags may be NULL.
 */
struct policy *conf_policy_load(const char *pattern, struct conf_diags *diags)
{
	struct conf_diags local = {0};
	struct conf_ctx c = {.d = diags ? diags : &local, .name = pattern ? pattern : "(policy)"};
	const char *pats[1] = {pattern};
	const struct conf_strs strs = {pats, pattern ? 1 : 0, NULL};
	struct conf_policy_set set = {0};
	struct policy_rule_spec *rules = NULL;
	struct policy_spec spec = {0};
	struct policy *p = NULL;

	conf_policy_files_read(&c, &strs, &set);
	if (set.n == 0 && c.n_errors == 0)
		conf_report(&c, true, NULL, 0, "no policy file");
	rules = calloc(conf_policy_files_count(&set) + 1, sizeof(*rules));
	if (!rules)
		conf_report(&c, true, NULL, 0, "out of memory");
	else
		conf_policy_files_specs(&c, &set, NULL, &spec, rules);
	spec.rules = rules;
	size_t before = c.n_errors;
	if (policy_build(&spec, conf_policy_report, &c, &p) < 0 && c.n_errors == before)
		conf_report(&c, true, NULL, 0, "the policy could not be built");
	if (c.n_errors) {
		policy_free(p);
		p = NULL;
	}
	conf_policy_files_release(&set);
	free(rules);
	conf_report_flush(&c);
	conf_diags_clear(&local);
	return p;
}
