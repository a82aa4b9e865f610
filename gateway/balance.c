/*
 * balance.c: the decisions of the upstream side. The pure ones take plain arrays so the
 * unit tests can drive them: which server a request goes to (smooth weighted round robin,
 * least outstanding), when active checks flip a server, how long an ejection lasts and
 * how many servers may be ejected at once. gw_balance_pick() applies them to a request
 * with the worker's pools and the shared health state.
 */
#include "upstream_int.h"

static unsigned weight_of(const struct conf_server *s)
{
	return s->weight ? s->weight : 1;
}

int gw_balance_wrr(struct gw_pool *p, const struct conf_server *s, size_t n)
{
	int best = -1;
	int total = 0;
	for (size_t i = 0; i < n; i++) {
		if (!p[i].eligible)
			continue;
		int w = (int)weight_of(&s[i]);
		p[i].wrr_cur += w;
		total += w;
		if (best < 0 || p[i].wrr_cur > p[best].wrr_cur)
			best = (int)i;
	}
	/* The winner pays the round's total, so over sum(weights) picks each server is
	 * chosen exactly weight times, spread out rather than in runs. */
	if (best >= 0)
		p[best].wrr_cur -= total;
	return best;
}

int gw_balance_least(const struct gw_pool *p, const struct conf_server *s, size_t n, unsigned start)
{
	int best = -1;
	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;
		if (!p[i].eligible)
			continue;
		/* outstanding/weight compared by cross-multiplying: no division, no rounding. */
		if (best < 0 || (uint64_t)p[i].outstanding * weight_of(&s[best]) <
		                    (uint64_t)p[best].outstanding * weight_of(&s[i]))
			best = (int)i;
	}
	return best;
}

bool gw_balance_tried(const uint16_t *tried, unsigned n, size_t idx)
{
	for (unsigned i = 0; i < n; i++)
		if (tried[i] == idx)
			return true;
	return false;
}

bool gw_hc_fsm_step(struct gw_hc_fsm *f, bool ok, unsigned rise, unsigned fall)
{
	bool first = !f->seen;
	f->seen = true;
	if (ok) {
		f->bad_run = 0;
		if (!f->down || ++f->ok_run < rise)
			return false;
		f->down = false;
		f->ok_run = 0;
		return true;
	}
	f->ok_run = 0;
	if (f->down || (++f->bad_run < fall && !first))
		return false;
	f->down = true;
	f->bad_run = 0;
	return true;
}

uint32_t gw_hc_delay_ms(uint32_t interval, uint32_t jitter, uint32_t rnd)
{
	uint64_t spread = (uint64_t)interval * (jitter > 1000 ? 1000 : jitter) / 1000;
	if (spread == 0)
		return interval ? interval : 1;
	uint64_t d = interval - spread + rnd % (2 * spread + 1);
	return d ? (uint32_t)d : 1;
}

uint32_t gw_outlier_ejection_ms(uint32_t base, uint32_t max, unsigned level)
{
	if (level >= 32)
		return max;
	uint64_t v = (uint64_t)base << level;
	return v > max ? max : (uint32_t)v;
}

size_t gw_outlier_max_ejected(size_t n, unsigned percent)
{
	return n * (percent > 100 ? 100 : percent) / 100;
}

/* Without per-worker state (older generation, or no memory): first usable untried. */
static int up_pick_plain(struct gw_req *r, unsigned cl, uint64_t now)
{
	const struct conf_cluster *c = &r->gen->cfg->clusters[cl];
	size_t base = r->gen->cluster_base[cl], n = c->n_servers;
	size_t start = (size_t)r->c->w->req_seq;
	for (int tier = 0; tier < 2; tier++)
		for (size_t k = 0; k < n; k++) {
			size_t i = (start + k) % n;
			if (c->servers[i].backup == (tier == 1) &&
			    !gw_balance_tried(r->tried_srv, r->attempts, i) &&
			    gw_hstate_usable(r->gen->hs[base + i], now))
				return (int)i;
		}
	return GW_PICK_NONE;
}

int gw_balance_pick(struct gw_req *r, unsigned cl)
{
	const struct conf_cluster *c = &r->gen->cfg->clusters[cl];
	struct gw_worker *w = r->c->w;
	size_t base = r->gen->cluster_base[cl], n = c->n_servers, cand = 0;
	uint64_t now = gw_now_us();
	if (!w->pools || w->pools_gen != r->gen)
		return up_pick_plain(r, cl, now);
	struct gw_pool *p = &w->pools[base];
	/* Every flag is written in each pass, so none is left over from an earlier pick. */
	for (int tier = 0; tier < 2 && !cand; tier++)
		for (size_t i = 0; i < n; i++) {
			p[i].eligible = c->servers[i].backup == (tier == 1) &&
			                !gw_balance_tried(r->tried_srv, r->attempts, i) &&
			                gw_hstate_usable(r->gen->hs[base + i], now);
			cand += p[i].eligible;
		}
	if (!cand)
		return GW_PICK_NONE;
	if (c->max_connections) {
		size_t room = 0;
		for (size_t i = 0; i < n; i++) {
			if (p[i].eligible && !p[i].n_idle && p[i].n_open >= c->max_connections)
				p[i].eligible = false;
			room += p[i].eligible;
		}
		if (!room)
			return GW_PICK_FULL;
	}
	if (c->balance == CONF_BALANCE_LEAST_OUTSTANDING)
		return gw_balance_least(p, c->servers, n, w->rr[cl]++);
	return gw_balance_wrr(p, c->servers, n);
}
