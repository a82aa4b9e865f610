/*
 * The schema walker: checks a libconfig group against a key table and stores typed
 * values into a raw struct. It never stops at the first problem; each one becomes a
 * diagnostic at the line of the offending setting, and the walk goes on.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

#define PATH_BUF 256

static const char *kind_of_setting(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	case CONFIG_TYPE_GROUP:
		return "a group";
	default:
		return "empty";
	}
}

static const char *kind_of_key(enum conf_type t)
{
	switch (t) {
	case CONF_T_BOOL:
		return "a boolean (true or false)";
	case CONF_T_UINT:
	case CONF_T_U32:
	case CONF_T_U64:
		return "an integer";
	case CONF_T_MS:
		return "a number of seconds";
	case CONF_T_STR:
	case CONF_T_PATH:
		return "a string";
	case CONF_T_STRS:
	case CONF_T_PATHS:
		return "an array of strings";
	case CONF_T_GROUP:
		return "a group { ... }";
	case CONF_T_LIST:
		return "a list of groups ( { ... }, ... )";
	case CONF_T_RANGE:
		return "an array of two integers [low, high]";
	case CONF_T_FRAC:
		return "a number";
	}
	return "?";
}

static void type_error(struct conf_ctx *c, const config_setting_t *s, enum conf_type want)
{
	char path[PATH_BUF];
	conf_setting_path(s, path, sizeof(path));
	conf_diag_at(c, s, true, "'%s' must be %s, not %s", path, kind_of_key(want),
	             kind_of_setting(s));
}

static void oom_error(struct conf_ctx *c, const config_setting_t *s)
{
	conf_diag_at(c, s, true, "out of memory");
}

/*
 * Resolves a relative path against the directory of the file the setting was read from,
 * so a config works from any current directory; settings read from a string carry no
 * file and stay relative to the current directory. Returns an owned string or NULL.
 */
static char *path_resolve(struct conf_ctx *c, const config_setting_t *s, const char *value)
{
	const char *file = config_setting_source_file(s) ? conf_setting_file(c, s) : NULL;
	const char *slash = file ? strrchr(file, '/') : NULL;
	char *out = NULL;

	if (value[0] == '/' || !slash)
		return strdup(value);
	if (asprintf(&out, "%.*s/%s", (int)(slash - file), file, value) < 0)
		return NULL;
	return out;
}

static void store_number(const struct conf_key *k, void *field, int64_t v)
{
	switch (k->type) {
	case CONF_T_UINT:
		*(unsigned *)field = (unsigned)v;
		break;
	case CONF_T_U32:
	case CONF_T_MS:
	case CONF_T_FRAC:
		*(uint32_t *)field = (uint32_t)v;
		break;
	case CONF_T_U64:
		*(uint64_t *)field = (uint64_t)v;
		break;
	default:
		break;
	}
}

/* Integers and sizes: int or int64 in the file, within [min, max]. */
static void walk_int(struct conf_ctx *c, const struct conf_key *k, const config_setting_t *m,
                     void *field)
{
	char path[PATH_BUF];
	int t = config_setting_type(m);

	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
		type_error(c, m, k->type);
		return;
	}
	long long v = config_setting_get_int64(m);
	if (v < k->min || v > k->max) {
		/* libconfig wraps integers above 2^31 written without the L suffix. */
		bool wrapped = t == CONFIG_TYPE_INT && v < 0 && k->min >= 0 && k->max > INT32_MAX;
		conf_setting_path(m, path, sizeof(path));
		conf_diag_at(c, m, true, "'%s' must be between %lld and %lld, not %lld%s", path,
		             (long long)k->min, (long long)k->max, v,
		             wrapped ? " (write values above 2147483647 with an L suffix)" : "");
		return;
	}
	store_number(k, field, v);
}

/* Durations: seconds as int or float in the file, milliseconds in memory. Fractions the
 * same way, in thousandths. */
static void walk_ms(struct conf_ctx *c, const struct conf_key *k, const config_setting_t *m,
                    void *field)
{
	char path[PATH_BUF];
	double sec;

	switch (config_setting_type(m)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		sec = (double)config_setting_get_int64(m);
		break;
	case CONFIG_TYPE_FLOAT:
		sec = config_setting_get_float(m);
		break;
	default:
		type_error(c, m, k->type);
		return;
	}
	double ms = round(sec * 1000.0);
	/* The negated comparison also rejects NaN. */
	if (!(ms >= (double)k->min && ms <= (double)k->max)) {
		conf_setting_path(m, path, sizeof(path));
		conf_diag_at(c, m, true, "'%s' must be between %g and %g%s, not %g", path,
		             (double)k->min / 1000.0, (double)k->max / 1000.0,
		             k->type == CONF_T_MS ? " seconds" : "", sec);
		return;
	}
	store_number(k, field, (int64_t)ms);
}

/* Checks length and validator of one string; returns it or NULL after a diagnostic. */
static const char *check_string(struct conf_ctx *c, const struct conf_key *k,
                                const config_setting_t *m)
{
	char path[PATH_BUF], err[256];

	if (config_setting_type(m) != CONFIG_TYPE_STRING) {
		type_error(c, m, CONF_T_STR);
		return NULL;
	}
	const char *v = config_setting_get_string(m);
	size_t len = strlen(v);
	conf_setting_path(m, path, sizeof(path));
	if (len == 0 && k->min > 0) {
		conf_diag_at(c, m, true, "'%s' must not be empty", path);
		return NULL;
	}
	if ((int64_t)len > k->max) {
		conf_diag_at(c, m, true, "'%s' must be at most %lld characters long", path,
		             (long long)k->max);
		return NULL;
	}
	if (k->check && k->check(v, err, sizeof(err)) < 0) {
		conf_diag_at(c, m, true, "'%s' %s", path, err);
		return NULL;
	}
	return v;
}

static void walk_string(struct conf_ctx *c, const struct conf_key *k, const config_setting_t *m,
                        void *field)
{
	const char *v = check_string(c, k, m);
	if (!v)
		return;
	if (k->type == CONF_T_STR) {
		*(const char **)field = v;
		return;
	}
	char *p = path_resolve(c, m, v);
	if (!p) {
		oom_error(c, m);
		return;
	}
	*(char **)field = p;
}

/* Entry count of an array, list or group within [min, max]; false after a diagnostic. */
static bool count_ok(struct conf_ctx *c, const struct conf_key *k, const config_setting_t *m, int n)
{
	char path[PATH_BUF];

	if (n >= k->min && n <= k->max)
		return true;
	conf_setting_path(m, path, sizeof(path));
	if (n < k->min)
		conf_diag_at(c, m, true, "'%s' must have at least %lld entr%s", path,
		             (long long)k->min, k->min == 1 ? "y" : "ies");
	else
		conf_diag_at(c, m, true, "'%s' must have at most %lld entries", path,
		             (long long)k->max);
	return false;
}

/* Array or list of strings; PATHS entries are resolved and owned. */
static void walk_strings(struct conf_ctx *c, const struct conf_key *k, const config_setting_t *m,
                         struct conf_strs *out)
{
	struct conf_key elem = *k;

	if (!config_setting_is_array(m) && !config_setting_is_list(m)) {
		type_error(c, m, k->type);
		return;
	}
	int n = config_setting_length(m);
	if (!count_ok(c, k, m, n))
		return;
	out->where = m;
	out->v = calloc((size_t)n + 1, sizeof(*out->v));
	if (!out->v) {
		oom_error(c, m);
		return;
	}
	/* k's bounds count the entries; each entry is a non-empty string of bounded length. */
	elem.min = 1;
	elem.max = 4096;
	elem.type = k->type == CONF_T_STRS ? CONF_T_STR : CONF_T_PATH;
	for (int i = 0; i < n; i++) {
		const char *v = NULL;
		walk_string(c, &elem, config_setting_get_elem(m, (unsigned)i), &v);
		if (v)
			out->v[out->n++] = v;
	}
}

/* [low, high]: two integers within [k->min, k->max], low <= high. */
static void walk_range(struct conf_ctx *c, const struct conf_key *k, const config_setting_t *m,
                       uint32_t *out)
{
	char path[PATH_BUF];
	long long v[2];

	if (!config_setting_is_array(m) || config_setting_length(m) != 2) {
		type_error(c, m, k->type);
		return;
	}
	for (unsigned i = 0; i < 2; i++) {
		const config_setting_t *e = config_setting_get_elem(m, i);
		int t = config_setting_type(e);
		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
			type_error(c, m, k->type);
			return;
		}
		v[i] = config_setting_get_int64(e);
	}
	if (v[0] < k->min || v[1] > k->max || v[0] > v[1]) {
		conf_setting_path(m, path, sizeof(path));
		conf_diag_at(c, m, true, "'%s' must be [low, high] with %lld <= low <= high <= %lld",
		             path, (long long)k->min, (long long)k->max);
		return;
	}
	out[0] = (uint32_t)v[0];
	out[1] = (uint32_t)v[1];
}

/* List of groups: each element is walked with k->sub and gets its conf_node header. */
static void walk_list(struct conf_ctx *c, const struct conf_key *k, const config_setting_t *m,
                      struct conf_vec *out)
{
	/* "[]" is how libconfig reads an empty list written with brackets. */
	if (!config_setting_is_list(m) &&
	    !(config_setting_is_array(m) && config_setting_length(m) == 0)) {
		type_error(c, m, k->type);
		return;
	}
	int n = config_setting_length(m);
	if (!count_ok(c, k, m, n))
		return;
	out->where = m;
	out->v = calloc((size_t)n + 1, k->elem_size);
	if (!out->v) {
		oom_error(c, m);
		return;
	}
	out->n = (size_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
		struct conf_node *node = (void *)((char *)out->v + (size_t)i * k->elem_size);
		size_t before = c->n_errors;
		node->where = e;
		if (config_setting_is_group(e))
			conf_walk_group(c, k->sub, e, node);
		else
			type_error(c, e, CONF_T_GROUP);
		node->bad = c->n_errors != before;
	}
}

static void set_default(struct conf_ctx *c, const struct conf_key *k, void *field)
{
	switch (k->type) {
	case CONF_T_BOOL:
		*(bool *)field = k->def != 0;
		break;
	case CONF_T_GROUP:
		conf_walk_group(c, k->sub, NULL, field);
		break;
	case CONF_T_UINT:
	case CONF_T_U32:
	case CONF_T_U64:
	case CONF_T_MS:
	case CONF_T_FRAC:
		store_number(k, field, k->def);
		break;
	case CONF_T_RANGE:
		/* def packs the pair as low * 65536 + high */
		((uint32_t *)field)[0] = (uint32_t)(k->def >> 16);
		((uint32_t *)field)[1] = (uint32_t)(k->def & 0xffff);
		break;
	default:
		/* strings, arrays and lists stay NULL / empty, as the raw struct was zeroed */
		break;
	}
}

static void walk_value(struct conf_ctx *c, const struct conf_key *k, const config_setting_t *m,
                       void *field)
{
	switch (k->type) {
	case CONF_T_BOOL:
		if (config_setting_type(m) == CONFIG_TYPE_BOOL)
			*(bool *)field = config_setting_get_bool(m) != 0;
		else
			type_error(c, m, k->type);
		break;
	case CONF_T_UINT:
	case CONF_T_U32:
	case CONF_T_U64:
		walk_int(c, k, m, field);
		break;
	case CONF_T_MS:
	case CONF_T_FRAC:
		walk_ms(c, k, m, field);
		break;
	case CONF_T_RANGE:
		walk_range(c, k, m, field);
		break;
	case CONF_T_STR:
	case CONF_T_PATH:
		walk_string(c, k, m, field);
		break;
	case CONF_T_STRS:
	case CONF_T_PATHS:
		walk_strings(c, k, m, field);
		break;
	case CONF_T_GROUP:
		if (config_setting_is_group(m))
			conf_walk_group(c, k->sub, m, field);
		else
			type_error(c, m, k->type);
		break;
	case CONF_T_LIST:
		walk_list(c, k, m, field);
		break;
	}
}

static const struct conf_key *key_find(const struct conf_key *keys, const char *name)
{
	for (const struct conf_key *k = keys; k->name; k++) {
		if (strcmp(k->name, name) == 0)
			return k;
	}
	return NULL;
}

/*
 * Every key of the table is looked up (missing required keys are reported at the
 * group's line, absent optional ones get their default), then every member of the group
 * is looked up in the table so a misspelt key is an error rather than silently ignored.
 * An absent group (g NULL) only receives defaults.
 */
void conf_walk_group(struct conf_ctx *c, const struct conf_key *keys, const config_setting_t *g,
                     void *base)
{
	char path[PATH_BUF] = "";

	if (g)
		conf_setting_path(g, path, sizeof(path));
	for (const struct conf_key *k = keys; k->name; k++) {
		void *field = (char *)base + k->offset;
		const config_setting_t *m = g ? config_setting_get_member(g, k->name) : NULL;
		set_default(c, k, field);
		if (m)
			walk_value(c, k, m, field);
		else if (g && k->required)
			conf_diag_at(c, g, true, "missing required key '%s'%s%s%s", k->name,
			             path[0] ? " in '" : "", path, path[0] ? "'" : "");
	}
	if (!g)
		return;
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		if (name && key_find(keys, name))
			continue;
		conf_diag_at(c, m, true, "unknown key '%s'%s%s%s", name ? name : "?",
		             path[0] ? " in '" : "", path, path[0] ? "'" : "");
	}
}

static void strs_release(const struct conf_key *k, struct conf_strs *s)
{
	if (k->type == CONF_T_PATHS) {
		for (size_t i = 0; i < s->n; i++)
			free((void *)s->v[i]);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Frees what the walk allocated; safe on a zeroed or partly filled base. */
void conf_walk_release(const struct conf_key *keys, void *base)
{
	for (const struct conf_key *k = keys; k->name; k++) {
		void *field = (char *)base + k->offset;
		switch (k->type) {
		case CONF_T_PATH:
			free(*(char **)field);
			*(char **)field = NULL;
			break;
		case CONF_T_STRS:
		case CONF_T_PATHS:
			strs_release(k, field);
			break;
		case CONF_T_GROUP:
			conf_walk_release(k->sub, field);
			break;
		case CONF_T_LIST: {
			struct conf_vec *vec = field;
			for (size_t i = 0; i < vec->n; i++)
				conf_walk_release(k->sub, (char *)vec->v + i * k->elem_size);
			free(vec->v);
			memset(vec, 0, sizeof(*vec));
			break;
		}
		default:
			break;
		}
	}
}
