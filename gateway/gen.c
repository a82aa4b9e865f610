/*
 * gen.c: the published configuration generation. A request or connection holds a
 * reference for as long as it lives, so a reload never frees a snapshot under it; the
 * last reference frees it, on whichever thread that happens (the snapshot holds nothing
 * thread-bound).
 */
#include <stdlib.h>

#include "gw.h"

/* Wraps cfg (ownership moves in) with refs = 1; NULL on allocation failure (cfg kept). */
struct gw_gen *gw_gen_new(struct conf_snapshot *cfg, uint64_t number)
{
	struct gw_gen *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->cluster_base = calloc(cfg->n_clusters ? cfg->n_clusters : 1, sizeof(size_t));
	if (!g->cluster_base) {
		free(g);
		return NULL;
	}
	/* One flat index over all servers, so per-worker pools are a plain array. */
	for (size_t i = 0; i < cfg->n_clusters; i++) {
		g->cluster_base[i] = g->n_servers_total;
		g->n_servers_total += cfg->clusters[i].n_servers;
	}
	atomic_init(&g->refs, 1);
	g->number = number;
	g->cfg = cfg;
	if (gw_health_gen_bind(g) != 0) {
		free(g->cluster_base);
		free(g);
		return NULL;
	}
	return g;
}

struct gw_gen *gw_gen_ref(struct gw_gen *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void gw_gen_unref(struct gw_gen *g)
{
	if (!g)
		return;
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	gw_health_gen_unbind(g);
	conf_snapshot_free(g->cfg);
	free(g->cluster_base);
	free(g);
}
