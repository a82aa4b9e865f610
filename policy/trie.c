/*
 * Segment trie: one node per path segment, so "/users" and "/usersx" are different
 * branches and prefix matching is segment-aware by construction. Lookups cost one binary
 * search per path segment, whatever the number of prefixes stored.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

/* A new empty root; NULL on allocation failure. */
struct ptrie_node *ptrie_new(void)
{
	return calloc(1, sizeof(struct ptrie_node));
}

/* Frees root and its subtree; free_val (may be NULL) gets every non-NULL payload. */
void ptrie_free(struct ptrie_node *root, void (*free_val)(void *))
{
	if (!root)
		return;
	for (size_t i = 0; i < root->n_kids; i++)
		ptrie_free(root->kids[i], free_val);
	if (free_val && root->val)
		free_val(root->val);
	free(root->kids);
	free(root->label);
	free(root);
}

static int label_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Binary search among n's children: index of seg, or where it would be inserted. */
static size_t kid_search(const struct ptrie_node *n, const char *seg, size_t len, bool *found)
{
	size_t lo = 0, hi = n->n_kids;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = label_cmp(n->kids[mid]->label, n->kids[mid]->label_len, seg, len);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Child of n labelled seg, created (keeping the children sorted) if absent. */
static struct ptrie_node *kid_get_or_add(struct ptrie_node *n, const char *seg, size_t len)
{
	bool found;
	size_t at = kid_search(n, seg, len, &found);
	struct ptrie_node *k = NULL;

	if (found)
		return n->kids[at];
	if (n->n_kids == n->cap_kids) {
		size_t ncap = n->cap_kids ? 2 * n->cap_kids : 4;
		struct ptrie_node **nk = realloc(n->kids, ncap * sizeof(*nk));
		if (!nk)
			goto fail;
		n->kids = nk;
		n->cap_kids = ncap;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		goto fail;
	k->label = malloc(len + 1);
	if (!k->label)
		goto fail;
	memcpy(k->label, seg, len);
	k->label[len] = '\0';
	k->label_len = len;
	memmove(&n->kids[at + 1], &n->kids[at], (n->n_kids - at) * sizeof(*n->kids));
	n->kids[at] = k;
	n->n_kids++;
	return k;
fail:
	free(k);
	return NULL;
}

/* Node for prefix ("/" is the root), created if absent; NULL on allocation failure. */
struct ptrie_node *ptrie_insert(struct ptrie_node *root, const char *prefix, size_t len)
{
	struct ptrie_node *n = root;
	size_t i = 1;

	while (n && i < len) {
		size_t e = i;
		while (e < len && prefix[e] != '/')
			e++;
		n = kid_get_or_add(n, prefix + i, e - i);
		i = e + 1;
	}
	return n;
}

/* Node for exactly prefix ("/" is the root), or NULL when absent. */
const struct ptrie_node *ptrie_find(const struct ptrie_node *root, const char *prefix, size_t len)
{
	const struct ptrie_node *n = root;
	size_t i = 1;

	if (!root || len == 0 || prefix[0] != '/')
		return NULL;
	while (i < len) {
		size_t e = i;
		bool found;
		while (e < len && prefix[e] != '/')
			e++;
		size_t at = kid_search(n, prefix + i, e - i, &found);
		if (!found)
			return NULL;
		n = n->kids[at];
		i = e + 1;
	}
	return n;
}

/*
 * Calls fn for the root (covering 1 byte, "/") and then for each node matching the next
 * segment of path, deepest last. Stops at the first segment with no node.
 */
void ptrie_walk(const struct ptrie_node *root, const char *path, size_t len, ptrie_visit_fn fn,
                void *arg)
{
	const struct ptrie_node *n = root;
	size_t i = 1;

	if (!root || len == 0 || path[0] != '/')
		return;
	fn(arg, n, 1);
	while (i < len) {
		size_t e = i;
		bool found;
		while (e < len && path[e] != '/')
			e++;
		size_t at = kid_search(n, path + i, e - i, &found);
		if (!found)
			return;
		n = n->kids[at];
		fn(arg, n, e);
		i = e + 1;
	}
}
