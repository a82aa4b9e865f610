/* Diagnostics: "file:line: message" lines, and where a libconfig setting came from. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

/*
 * Grows the list by one entry. Returns 0, or -1 when memory ran out (the caller still
 * counts the error, so a load never succeeds just because its message was lost).
 */
static int diags_grow(struct conf_diags *d)
{
	if (d->n < d->cap)
		return 0;
	size_t cap = d->cap ? d->cap * 2 : 16;
	struct conf_diag *v = realloc(d->v, cap * sizeof(*v));
	if (!v)
		return -1;
	d->v = v;
	d->cap = cap;
	return 0;
}

/* Control characters from config values would break the one-line-per-diagnostic rule. */
static void diag_sanitize(char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

/*
 * Appends "file:line: message" (errors) or "file:line: warning: message". A line <= 0
 * means the problem concerns the whole file: "file: message". file NULL reads "(config)".
 * Never fails visibly: when memory runs out the text is lost but an error still counts.
 */
void conf_diags_add(struct conf_diags *d, bool is_error, const char *file, int line,
                    const char *fmt, ...)
{
	char *msg = NULL, *text = NULL;
	char where[32] = "";
	va_list ap;

	if (!d)
		return;
	if (is_error)
		d->n_errors++;
	va_start(ap, fmt);
	int rc = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		msg = NULL;
		goto fail;
	}
	if (line > 0)
		snprintf(where, sizeof(where), ":%d", line);
	if (asprintf(&text, "%s%s: %s%s", file ? file : "(config)", where,
	             is_error ? "" : "warning: ", msg) < 0) {
		text = NULL;
		goto fail;
	}
	diag_sanitize(text);
	if (diags_grow(d) < 0)
		goto fail;
	d->v[d->n++] = (struct conf_diag){.is_error = is_error, .text = text};
	free(msg);
	return;
fail:
	free(text);
	free(msg);
}

/* Writes every diagnostic, one per line, in the order they were found. */
void conf_diags_print(const struct conf_diags *d, FILE *f)
{
	if (!d || !f)
		return;
	for (size_t i = 0; i < d->n; i++)
		fprintf(f, "%s\n", d->v[i].text);
}

/* Frees all diagnostics and leaves d empty and reusable. */
void conf_diags_clear(struct conf_diags *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].text);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

/* Joined name of an included file, made once per file and kept in c until the flush. */
static const char *include_name(struct conf_ctx *c, const char *f)
{
	char *joined = NULL;

	/* Every entry is c->dir + "/" + the name libconfig recorded. */
	for (size_t i = 0; i < c->n_incs; i++) {
		if (strcmp(c->incs[i] + strlen(c->dir) + 1, f) == 0)
			return c->incs[i];
	}
	char **v = realloc(c->incs, (c->n_incs + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->incs = v;
	if (asprintf(&joined, "%s/%s", c->dir, f) < 0)
		return NULL;
	c->incs[c->n_incs++] = joined;
	return joined;
}

const char *conf_setting_file(struct conf_ctx *c, const config_setting_t *s)
{
	const char *f = s ? config_setting_source_file(s) : NULL;

	if (!f)
		return c->name;
	if (!c->dir || f[0] == '/' || strcmp(f, c->name) == 0 || strcmp(c->dir, ".") == 0)
		return f;
	const char *joined = include_name(c, f);
	return joined ? joined : f;
}

int conf_setting_line(const config_setting_t *s)
{
	return s ? (int)config_setting_source_line(s) : 0;
}

/*
 * Builds the path bottom-up by recursion so that list members read "routes[2]" and
 * group members "listeners[0].tls.cert". Truncates silently when buf is too small.
 */
void conf_setting_path(const config_setting_t *s, char *buf, size_t len)
{
	if (len == 0)
		return;
	buf[0] = '\0';
	const config_setting_t *parent = s ? config_setting_parent(s) : NULL;
	if (!parent)
		return;
	conf_setting_path(parent, buf, len);
	size_t used = strlen(buf);
	if (config_setting_is_list(parent) || config_setting_is_array(parent))
		snprintf(buf + used, len - used, "[%d]", config_setting_index(s));
	else
		snprintf(buf + used, len - used, "%s%s", used ? "." : "",
		         config_setting_name(s) ? config_setting_name(s) : "?");
}

static int pending_grow(struct conf_ctx *c)
{
	if (c->n < c->cap)
		return 0;
	size_t cap = c->cap ? c->cap * 2 : 16;
	struct conf_pending *v = realloc(c->v, cap * sizeof(*v));
	if (!v)
		return -1;
	c->v = v;
	c->cap = cap;
	return 0;
}

/*
 * Records one diagnostic of the load. The file name is copied because some come from
 * policy's own copies, which are gone once a failed policy_build returns.
 */
void conf_report(struct conf_ctx *c, bool is_error, const char *file, int line, const char *fmt,
                 ...)
{
	struct conf_pending p = {.line = line, .is_error = is_error, .seq = c->n};
	va_list ap;

	if (is_error)
		c->n_errors++;
	va_start(ap, fmt);
	int rc = vasprintf(&p.msg, fmt, ap);
	va_end(ap);
	if (rc < 0)
		p.msg = NULL;
	p.file = strdup(file ? file : c->name);
	if (!p.msg || !p.file || pending_grow(c) < 0) {
		/* No room to sort it: hand it over directly (which still counts an error). */
		conf_diags_add(c->d, is_error, file ? file : c->name, line, "%s",
		               p.msg ? p.msg : "out of memory");
		free(p.msg);
		free(p.file);
		return;
	}
	c->v[c->n++] = p;
}

static int pending_cmp(const void *a, const void *b)
{
	const struct conf_pending *x = a, *y = b;
	int r = strcmp(x->file, y->file);

	if (r)
		return r;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Compiler-like output: by file, then line, then the order the problems were found. */
void conf_report_flush(struct conf_ctx *c)
{
	if (c->n)
		qsort(c->v, c->n, sizeof(*c->v), pending_cmp);
	for (size_t i = 0; i < c->n; i++) {
		conf_diags_add(c->d, c->v[i].is_error, c->v[i].file, c->v[i].line, "%s",
		               c->v[i].msg);
		free(c->v[i].file);
		free(c->v[i].msg);
	}
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
	for (size_t i = 0; i < c->n_incs; i++)
		free(c->incs[i]);
	free(c->incs);
	c->incs = NULL;
	c->n_incs = 0;
}

/* Adds a diagnostic with the file and line of setting s. */
void conf_diag_at(struct conf_ctx *c, const config_setting_t *s, bool is_error, const char *fmt,
                  ...)
{
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	int rc = vasprintf(&msg, fmt, ap);
	va_end(ap);
	conf_report(c, is_error, conf_setting_file(c, s), conf_setting_line(s), "%s",
	            rc < 0 ? "out of memory" : msg);
	if (rc >= 0)
		free(msg);
}
