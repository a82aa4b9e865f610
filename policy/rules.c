/*
 * Groups and rules: every spec is checked (all problems reported, each at its file:line),
 * and the valid ones are copied into the policy's pool. Indexing is index.c's job.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

#define PREFIX_MAX 8192 /* longer than any path a request line of the config's limits holds */
#define FILE_CACHE 64   /* distinct file names remembered while interning */

/* File names interned while copying: the rules of one file share one string. */
struct file_cache {
	const char *v[FILE_CACHE];
	size_t n, next;
};

static bool fingerprint_valid(const char *v)
{
	size_t n = strlen(v);

	for (size_t i = 0; i < n; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return false;
	return n == 64;
}

/* Why an identity value is unusable, or NULL when it is fine. */
static const char *value_problem(enum policy_who who, const char *v)
{
	size_t n = v ? strlen(v) : 0;

	if (n == 0)
		return "is empty";
	if (who == POLICY_WHO_SPIFFE && !authn_spiffe_id_valid(v, n))
		return "is not a valid SPIFFE ID";
	if (who == POLICY_WHO_SPIFFE_PREFIX) {
		/* "spiffe://td/ns/" plus a "*": what precedes the last "/" must be an ID. */
		if (v[n - 1] == '*')
			n--;
		if (n < 2 || v[n - 1] != '/' || !authn_spiffe_id_valid(v, n - 1))
			return "is not a SPIFFE ID prefix of the form spiffe://trust.domain/path/*";
	}
	if (who == POLICY_WHO_FINGERPRINT && !fingerprint_valid(v))
		return "is not 64 lower-case hex digits (SHA-256 of the certificate DER)";
	return NULL;
}

/*
 * Checks one identity (what is the rule's or the member's own text in the report); true
 * when it can be kept. A value with control characters is kept with a warning: authn
 * refuses such identities, so the rule is dead, which is worth a word, not a failure.
 */
static bool ident_check(enum policy_who who, const char *v, const char *what, const char *file,
                        int line, struct policy_reporter *rep)
{
	const char *why = value_problem(who, v);

	if (why) {
		policy_report(rep, true, file, line, "%s %s value \"%s\" %s", what,
		              policy_who_str(who), v ? v : "(null)", why);
		return false;
	}
	for (const char *c = v; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			policy_report(rep, false, file, line,
			              "%s %s value contains control characters and can never match",
			              what, policy_who_str(who));
			break;
		}
	return true;
}

static int group_name_cmp(const void *a, const void *b)
{
	const struct policy_group *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* By name, then in spec order, so the first definition of a name comes first. */
static int group_sort_cmp(const void *a, const void *b)
{
	const struct policy_group *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* The group called name, by binary search over the groups sorted by name; or NULL. */
static const struct policy_group *group_find(const struct policy *p, const char *name)
{
	const struct policy_group key = {.name = name};

	if (!p->n_groups)
		return NULL;
	return bsearch(&key, p->groups, p->n_groups, sizeof(key), group_name_cmp);
}

/* A copy of file in the pool, shared with earlier rules of the same file. */
static const char *file_intern(struct policy *p, struct file_cache *fc, const char *file)
{
	if (!file)
		return NULL;
	for (size_t i = 0; i < fc->n; i++)
		if (strcmp(fc->v[i], file) == 0)
			return fc->v[i];
	const char *copy = policy_pool_strndup(&p->pool, file, strlen(file));
	if (copy) {
		fc->v[fc->next] = copy;
		fc->next = (fc->next + 1) % FILE_CACHE;
		if (fc->n < FILE_CACHE)
			fc->n++;
	}
	return copy;
}

/* Copies an identity value; a SPIFFE prefix loses its '*' (it is matched as a prefix). */
static int member_copy(struct policy *p, struct policy_member *m, enum policy_who who,
                       const char *v)
{
	size_t n = v ? strlen(v) : 0;

	m->who = who;
	if (who == POLICY_WHO_ANY)
		return 0;
	if (who == POLICY_WHO_SPIFFE_PREFIX && v[n - 1] == '*')
		n--;
	m->value = policy_pool_strndup(&p->pool, v, n);
	m->value_len = n;
	return m->value ? 0 : -1;
}

/* Checks one group spec, reporting each problem; true if it can be kept. */
static bool group_check(const struct policy_group_spec *gs, struct policy_reporter *rep)
{
	bool ok = true;

	if (!gs->name || !gs->name[0]) {
		policy_report(rep, true, gs->file, gs->line, "group has no name");
		return false;
	}
	if (gs->n_members == 0 || !gs->members) {
		policy_report(rep, true, gs->file, gs->line, "group '%s' has no members", gs->name);
		return false;
	}
	for (size_t i = 0; i < gs->n_members; i++) {
		enum policy_who who = gs->members[i].who;
		if ((unsigned)who >= POLICY_WHO_ANY) {
			policy_report(
			    rep, true, gs->file, gs->line,
			    "group '%s' member %zu has no usable identity kind (any cannot "
			    "be a member)",
			    gs->name, i + 1);
			ok = false;
		} else if (!ident_check(who, gs->members[i].value, "group member", gs->file,
		                        gs->line, rep)) {
			ok = false;
		}
	}
	return ok;
}

/* Copies the valid groups, sorted by name; a second group of one name is an error. */
static int groups_build(struct policy *p, const struct policy_spec *spec,
                        struct policy_reporter *rep, struct file_cache *fc)
{
	p->groups = calloc(spec->n_groups + 1, sizeof(*p->groups));
	if (!p->groups)
		return -1;
	for (size_t i = 0; i < spec->n_groups; i++) {
		const struct policy_group_spec *gs = &spec->groups[i];
		if (!group_check(gs, rep))
			continue;
		struct policy_group *g = &p->groups[p->n_groups];
		g->name = policy_pool_strndup(&p->pool, gs->name, strlen(gs->name));
		g->members = policy_pool_alloc(&p->pool, gs->n_members * sizeof(*g->members));
		g->file = file_intern(p, fc, gs->file);
		g->line = gs->line;
		g->index = i;
		if (!g->name || !g->members || (gs->file && !g->file))
			return -1;
		for (size_t j = 0; j < gs->n_members; j++)
			if (member_copy(p, &g->members[j], gs->members[j].who,
			                gs->members[j].value) < 0)
				return -1;
		g->n_members = gs->n_members;
		p->n_groups++;
	}
	qsort(p->groups, p->n_groups, sizeof(*p->groups), group_sort_cmp);
	for (size_t i = 1; i < p->n_groups; i++) {
		const struct policy_group *a = &p->groups[i - 1], *b = &p->groups[i];
		if (strcmp(a->name, b->name) == 0)
			policy_report(rep, true, b->file, b->line,
			              "group '%s' is already defined at %s:%d", b->name,
			              a->file ? a->file : "?", a->line);
	}
	return 0;
}

/* Checks the prefixes of a rule spec; true if all are normalised prefixes. */
static bool prefixes_check(const struct policy_rule_spec *rs, struct policy_reporter *rep)
{
	bool ok = true;

	if (rs->n_prefixes == 0 || !rs->prefixes) {
		policy_report(rep, true, rs->file, rs->line, "rule lists no path prefixes");
		return false;
	}
	for (size_t i = 0; i < rs->n_prefixes; i++) {
		const char *pf = rs->prefixes[i];
		size_t n = pf ? strlen(pf) : 0;
		if (pf && n <= PREFIX_MAX && policy_prefix_valid(pf, n))
			continue;
		policy_report(rep, true, rs->file, rs->line,
		              "rule prefix \"%s\" is not a normalised path prefix (like \"/api\": "
		              "no trailing '/', no dot segments, no needless escapes)",
		              pf ? pf : "(null)");
		ok = false;
	}
	return ok;
}

/* Checks one rule spec, reporting every problem; true if it can be kept. */
static bool rule_check(const struct policy *p, const struct policy_rule_spec *rs,
                       struct policy_reporter *rep)
{
	bool ok = true;

	if ((unsigned)rs->effect > POLICY_ALLOW ||
	    (!rs->group && (unsigned)rs->who >= POLICY_WHO_MAX)) {
		policy_report(rep, true, rs->file, rs->line, "rule has an unknown effect or kind");
		return false;
	}
	if (rs->group) {
		if (!group_find(p, rs->group)) {
			policy_report(rep, true, rs->file, rs->line,
			              "rule names undefined group '%s'", rs->group);
			ok = false;
		}
	} else if (rs->who != POLICY_WHO_ANY &&
	           !ident_check(rs->who, rs->value, "rule", rs->file, rs->line, rep)) {
		ok = false;
	}
	if (rs->methods & ~POLICY_M_ALL) {
		policy_report(rep, true, rs->file, rs->line, "rule has unknown method bits 0x%x",
		              rs->methods & ~POLICY_M_ALL);
		ok = false;
	}
	return prefixes_check(rs, rep) && ok;
}

/* Copies a checked rule spec into r; -1 on allocation failure. */
static int rule_copy(struct policy *p, struct policy_rule *r, const struct policy_rule_spec *rs,
                     struct file_cache *fc)
{
	struct policy_member m = {0};

	r->effect = (uint8_t)rs->effect;
	r->methods = rs->methods;
	r->line = rs->line;
	r->index = (uint32_t)p->n_rules;
	r->file = file_intern(p, fc, rs->file);
	if (rs->file && !r->file)
		return -1;
	if (rs->group) {
		r->group = group_find(p, rs->group);
	} else {
		if (member_copy(p, &m, rs->who, rs->value) < 0)
			return -1;
		r->who = (uint8_t)m.who;
		r->value = m.value;
		r->value_len = (uint32_t)m.value_len;
	}
	r->prefixes = policy_pool_alloc(&p->pool, rs->n_prefixes * sizeof(*r->prefixes));
	if (!r->prefixes)
		return -1;
	for (size_t i = 0; i < rs->n_prefixes; i++) {
		r->prefixes[i] =
		    policy_pool_strndup(&p->pool, rs->prefixes[i], strlen(rs->prefixes[i]));
		if (!r->prefixes[i])
			return -1;
	}
	r->n_prefixes = (uint32_t)rs->n_prefixes;
	return 0;
}

/*
 * Checks and copies every group and rule. Invalid ones are reported and counted in rep;
 * returns -1 only when building cannot go on (allocation failure).
 */
int policy_rules_build(struct policy *p, const struct policy_spec *spec,
                       struct policy_reporter *rep)
{
	struct file_cache fc = {0};

	if ((spec->n_rules && !spec->rules) || (spec->n_groups && !spec->groups)) {
		policy_report(rep, true, NULL, 0, "rules or groups: count without an array");
		return -1;
	}
	if (groups_build(p, spec, rep, &fc) < 0)
		goto fail;
	p->rules = calloc(spec->n_rules + 1, sizeof(*p->rules));
	if (!p->rules)
		goto fail;
	for (size_t i = 0; i < spec->n_rules; i++) {
		if (!rule_check(p, &spec->rules[i], rep))
			continue;
		if (rule_copy(p, &p->rules[p->n_rules], &spec->rules[i], &fc) < 0)
			goto fail;
		p->n_rules++;
	}
	return 0;
fail:
	policy_report(rep, true, NULL, 0, "out of memory");
	return -1;
}

/* r's identities: its group's members, or its own identity in *one. */
const struct policy_member *policy_rule_members(const struct policy_rule *r,
                                                struct policy_member *one, size_t *n)
{
	if (r->group) {
		*n = r->group->n_members;
		return r->group->members;
	}
	*one = (struct policy_member){(enum policy_who)r->who, r->value, r->value_len};
	*n = 1;
	return one;
}
