/*
 * upstream_int.h: what upstream.c, health.c and balance.c share, and what the unit tests
 * of their pure parts call. Nothing here is for the rest of the daemon (see gw.h).
 *
 * Health state is process-wide: one struct gw_hstate per (cluster name, server name,
 * address), found through the generation (gen->hs[global server index]) so a reload keeps
 * the state of every server it keeps. Writers: the active checker (main thread) and the
 * workers' passive reports, all through relaxed atomics; readers (the workers' picks) take
 * no lock. The only lock is the registry's, taken when generations are bound or freed, for
 * the status JSON, and for an ejection decision (rare, never on a successful request).
 */
#ifndef GW_UPSTREAM_INT_H
#define GW_UPSTREAM_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw.h"

/* ---- active check state machine (pure; the checker keeps one per server) ---- */

struct gw_hc_fsm {
	bool down;        /* current verdict */
	bool seen;        /* a result was recorded since the server appeared */
	unsigned ok_run;  /* consecutive passes while down */
	unsigned bad_run; /* consecutive failures while up */
};

/*
 * Records one check result; returns true when the verdict flipped. A new server counts as
 * up, and its first result decides at once (one failure marks it down), so a server that
 * is broken from the start is not used for fall x interval.
 */
bool gw_hc_fsm_step(struct gw_hc_fsm *f, bool ok, unsigned rise, unsigned fall);

/* Delay before the next check: interval +- jitter thousandths of it, from random rnd. */
uint32_t gw_hc_delay_ms(uint32_t interval, uint32_t jitter, uint32_t rnd);

/* ---- passive health arithmetic (pure) ---- */

/* Ejection time for the level-th repeated ejection: base * 2^level, at most max. */
uint32_t gw_outlier_ejection_ms(uint32_t base, uint32_t max, unsigned level);

/* How many of n servers may be ejected at once: floor(n * percent / 100). */
size_t gw_outlier_max_ejected(size_t n, unsigned percent);

/* ---- balancing over one cluster's pools in one worker (pure) ---- */

/*
 * Smooth weighted round robin (the interleaving nginx uses) over the pools whose eligible
 * flag is set: each gains its weight, the largest current value wins and pays the total.
 * Returns the index within the cluster, or -1 when none is eligible.
 */
int gw_balance_wrr(struct gw_pool *p, const struct conf_server *s, size_t n);

/*
 * Least outstanding requests relative to weight among eligible pools; ties go to the
 * first one at or after start (the caller rotates it). -1 when none is eligible.
 */
int gw_balance_least(const struct gw_pool *p, const struct conf_server *s, size_t n,
                     unsigned start);

/* True when idx is among the first n entries of tried. */
bool gw_balance_tried(const uint16_t *tried, unsigned n, size_t idx);

enum { GW_PICK_NONE = -1, GW_PICK_FULL = -2 };

/*
 * The server for r's next attempt in cluster cl: usable (not down, not ejected), not tried
 * yet by r, a primary unless none is left; then below max_connections; then the cluster's
 * balancing. Returns the index in the cluster, GW_PICK_NONE, or GW_PICK_FULL (wait).
 */
int gw_balance_pick(struct gw_req *r, unsigned cl);

/* ---- shared per-server health (health.c) ---- */

struct gw_hstate {
	/* identity, immutable: the registry key */
	char *cluster, *name, *address;
	struct gw_hstate *next; /* registry chain (registry lock) */
	atomic_uint refs;       /* generations and checks pointing here */
	/* verdicts read by every worker */
	atomic_bool down;                    /* active checks say down */
	atomic_uint_least64_t ejected_until; /* gw_now_us() deadline; 0 = not ejected */
	/* passive reports from the workers */
	atomic_uint consec_fail;
	atomic_uint eject_level; /* repeated ejections so far (backoff) */
	/* counters for the status JSON */
	atomic_uint_least64_t requests, failures, failovers, ejections, checks, checks_failed;
	atomic_int conns_open, conns_idle, outstanding;
	/* main thread (checker) only */
	struct gw_hc_fsm fsm;
	bool checked;        /* the cluster has active checks */
	uint64_t calm_since; /* not ejected since (backoff reset), or 0 */
	char reason[160];    /* last check failure (registry lock to read) */
};

static inline bool gw_hstate_usable(struct gw_hstate *h, uint64_t now_us)
{
	return !atomic_load_explicit(&h->down, memory_order_relaxed) &&
	       atomic_load_explicit(&h->ejected_until, memory_order_relaxed) <= now_us;
}

static inline void gw_stat_add(atomic_uint_least64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline void gw_gauge_add(atomic_int *g, int d)
{
	atomic_fetch_add_explicit(g, d, memory_order_relaxed);
}

/* A request to server srv (global index) of generation g ended well (no 5xx, no failure). */
void gw_health_passive_ok(struct gw_gen *g, size_t srv);

/* The same request failed there (connect, TLS, 5xx, timeout, early close): may eject. */
void gw_health_passive_fail(struct gw_gen *g, unsigned cluster, size_t srv, const char *why);

#endif
