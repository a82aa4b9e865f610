/*
 * Routes: which cluster serves a path, found by the longest segment-aware prefix in a
 * segment trie, and how the path is rewritten on the way to the backend.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

/* Checks one route spec, reporting each problem; true if it can be kept. */
static bool route_spec_check(const struct policy_route_spec *rs, struct policy_reporter *rep)
{
	bool ok = true;

	if (!rs->prefix || !policy_prefix_valid(rs->prefix, strlen(rs->prefix))) {
		policy_report(rep, true, rs->file, rs->line,
		              "route prefix \"%s\" is not a normalised path prefix (like \"/api\": "
		              "no trailing '/', no dot segments, no needless escapes)",
		              rs->prefix ? rs->prefix : "(null)");
		ok = false;
	}
	if (rs->rewrite && !policy_prefix_valid(rs->rewrite, strlen(rs->rewrite))) {
		policy_report(
		    rep, true, rs->file, rs->line,
		    "route rewrite \"%s\" is not a normalised path (like \"/v1\" or \"/\")",
		    rs->rewrite);
		ok = false;
	}
	if ((unsigned)rs->need > POLICY_NEED_CERT_APIKEY) {
		policy_report(rep, true, rs->file, rs->line, "route has an unknown 'need' value %d",
		              (int)rs->need);
		ok = false;
	}
	return ok;
}

/* Copies a route spec's strings into r; -1 on allocation failure. */
static int route_copy(struct policy_route *r, const struct policy_route_spec *rs)
{
	r->prefix = policy_strdup(rs->prefix);
	r->rewrite = policy_strdup(rs->rewrite);
	r->file = policy_strdup(rs->file);
	if (!r->prefix || (rs->rewrite && !r->rewrite) || (rs->file && !r->file))
		return -1;
	r->prefix_len = strlen(r->prefix);
	r->rewrite_len = r->rewrite ? strlen(r->rewrite) : 0;
	r->cluster = rs->cluster;
	r->need = rs->need;
	r->line = rs->line;
	return 0;
}

/* Indexes route i; a second route with the same prefix is an error (which one wins?). */
static int route_index(struct policy *p, size_t i, struct policy_reporter *rep)
{
	struct policy_route *r = &p->routes[i];
	struct ptrie_node *n = ptrie_insert(p->route_trie, r->prefix, r->prefix_len);

	if (!n)
		return -1;
	if (n->val) {
		const struct policy_route *first = n->val;
		policy_report(rep, true, r->file, r->line,
		              "duplicate route prefix \"%s\" (first defined at %s:%d)", r->prefix,
		              first->file ? first->file : "?", first->line);
		return 0;
	}
	n->val = r;
	return 0;
}

/*
 * Copies and indexes every route of spec into p. Invalid routes are reported and counted
 * in rep; returns -1 only when building cannot go on (allocation failure).
 */
int policy_routes_build(struct policy *p, const struct policy_spec *spec,
                        struct policy_reporter *rep)
{
	if (spec->n_routes && !spec->routes) {
		policy_report(rep, true, NULL, 0, "routes: count without an array");
		return -1;
	}
	p->route_trie = ptrie_new();
	p->routes = calloc(spec->n_routes ? spec->n_routes : 1, sizeof(*p->routes));
	if (!p->route_trie || !p->routes)
		goto fail;
	for (size_t i = 0; i < spec->n_routes; i++) {
		const struct policy_route_spec *rs = &spec->routes[i];
		if (!route_spec_check(rs, rep))
			continue;
		/* Counted as soon as it owns strings, so policy_routes_free sees them. */
		p->n_routes++;
		if (route_copy(&p->routes[p->n_routes - 1], rs) < 0 ||
		    route_index(p, p->n_routes - 1, rep) < 0)
			goto fail;
	}
	return 0;
fail:
	policy_report(rep, true, NULL, 0, "out of memory");
	return -1;
}

void policy_routes_free(struct policy *p)
{
	for (size_t i = 0; p->routes && i < p->n_routes; i++) {
		free(p->routes[i].prefix);
		free(p->routes[i].rewrite);
		free(p->routes[i].file);
	}
	free(p->routes);
	ptrie_free(p->route_trie, NULL);
	p->routes = NULL;
	p->route_trie = NULL;
	p->n_routes = 0;
}

static void route_visit(void *arg, const struct ptrie_node *n, size_t plen)
{
	const struct policy_route **best = arg;

	if (n->val)
		*best = n->val; /* the walk goes root first, so the last hit is the longest */
}

/* Longest segment-aware prefix route for a normalised path, or NULL. */
const struct policy_route *policy_route_lookup(const struct policy *p, const char *path, size_t len)
{
	const struct policy_route *best = NULL;

	if (p && path)
		ptrie_walk(p->route_trie, path, len, route_visit, &best);
	return best;
}

/*
 * The path to forward. The part after the prefix always starts with '/' (or is empty),
 * and the rewrite has no trailing '/', so joining them keeps the path normalised.
 * Returns -1 if path is not under r's prefix or the result does not fit; out must not
 * overlap path.
 */
int policy_route_rewrite(const struct policy_route *r, const char *path, size_t len, char *out,
                         size_t cap, size_t *outlen)
{
	const char *head = "";
	size_t hlen = 0, skip = 0;

	if (!r || !path || !out || !policy_prefix_covers(r->prefix, r->prefix_len, path, len))
		return -1;
	if (r->rewrite) {
		/* A "/" prefix is the empty string before the path's own '/'. */
		skip = (r->prefix_len == 1) ? 0 : r->prefix_len;
		bool root = r->rewrite_len == 1;
		head = root ? "" : r->rewrite;
		hlen = root ? 0 : r->rewrite_len;
	}
	const char *rest = path + skip;
	size_t rlen = len - skip;
	bool need_slash = hlen == 0 && rlen == 0; /* "/api" with rewrite "/" is "/" */
	size_t total = hlen + rlen + (need_slash ? 1 : 0);
	if (total + 1 > cap)
		return -1;
	memcpy(out, head, hlen);
	memcpy(out + hlen, rest, rlen);
	if (need_slash)
		out[hlen + rlen] = '/';
	out[total] = '\0';
	if (outlen)
		*outlen = total;
	return 0;
}
