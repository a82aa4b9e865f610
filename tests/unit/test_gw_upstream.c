/*
 * Unit tests of the upstream side's pure decisions (gateway/balance.c) and of the shared
 * health state (gateway/health.c): smooth weighted round robin, least outstanding, the
 * tried list, the rise/fall state machine, check jitter, ejection backoff and share,
 * passive ejection across a reload-style rebind, and the status JSON.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cu.h"
#include "upstream_int.h"

/* ---- balancing ---- */

static void servers_init(struct conf_server *s, const unsigned *w, size_t n)
{
	memset(s, 0, n * sizeof(*s));
	for (size_t i = 0; i < n; i++)
		s[i].weight = w[i];
}

static void test_wrr_counts(void)
{
	static const struct {
		unsigned w[4];
		size_t n;
	} cases[] = {{{1, 2, 5}, 3}, {{1, 1}, 2}, {{3, 1, 1, 7}, 4}, {{256, 1}, 2}};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct conf_server s[4];
		struct gw_pool p[4] = {0};
		unsigned got[4] = {0}, sum = 0;
		servers_init(s, cases[c].w, cases[c].n);
		for (size_t i = 0; i < cases[c].n; i++) {
			p[i].eligible = true;
			sum += cases[c].w[i];
		}
		/* Over k full rounds each server is picked exactly k * weight times. */
		for (unsigned k = 0; k < 7 * sum; k++) {
			int i = gw_balance_wrr(p, s, cases[c].n);
			CU_ASSERT_FATAL(i >= 0 && (size_t)i < cases[c].n);
			got[i]++;
		}
		for (size_t i = 0; i < cases[c].n; i++)
			CU_ASSERT_EQUAL(got[i], 7 * cases[c].w[i]);
	}
}

/* The interleaving nginx documents for weights 5, 1, 1: a a b a c a a. */
static void test_wrr_smooth(void)
{
	static const unsigned w[3] = {5, 1, 1};
	struct conf_server s[3];
	struct gw_pool p[3] = {{.eligible = true}, {.eligible = true}, {.eligible = true}};
	char seq[8] = "";
	servers_init(s, w, 3);
	for (int k = 0; k < 7; k++)
		seq[k] = (char)('a' + gw_balance_wrr(p, s, 3));
	CU_ASSERT_STRING_EQUAL(seq, "aabacaa");
}

static void test_wrr_eligible(void)
{
	static const unsigned w[3] = {1, 1, 1};
	struct conf_server s[3];
	struct gw_pool p[3] = {{.eligible = false}, {.eligible = true}, {.eligible = false}};
	servers_init(s, w, 3);
	for (int k = 0; k < 5; k++)
		CU_ASSERT_EQUAL(gw_balance_wrr(p, s, 3), 1);
	p[1].eligible = false;
	CU_ASSERT_EQUAL(gw_balance_wrr(p, s, 3), -1);
}

static void test_least(void)
{
	static const struct {
		unsigned out[3], w[3];
		bool el[3];
		unsigned start;
		int want;
	} cases[] = {
	    {{3, 1, 2}, {1, 1, 1}, {true, true, true}, 0, 1},
	    {{0, 0, 0}, {1, 1, 1}, {true, true, true}, 0, 0},
	    {{0, 0, 0}, {1, 1, 1}, {true, true, true}, 2, 2}, /* ties rotate with start */
	    {{0, 0, 0}, {1, 1, 1}, {true, true, true}, 4, 1},
	    {{2, 1, 9}, {4, 1, 1}, {true, true, true}, 0, 0},  /* 2/4 beats 1/1 */
	    {{3, 1, 0}, {1, 1, 1}, {true, true, false}, 0, 1}, /* idle but not eligible */
	    {{0, 0, 0}, {1, 1, 1}, {false, false, false}, 0, -1},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct conf_server s[3];
		struct gw_pool p[3] = {0};
		servers_init(s, cases[c].w, 3);
		for (int i = 0; i < 3; i++) {
			p[i].outstanding = cases[c].out[i];
			p[i].eligible = cases[c].el[i];
		}
		CU_ASSERT_EQUAL(gw_balance_least(p, s, 3, cases[c].start), cases[c].want);
	}
}

static void test_tried(void)
{
	const uint16_t tried[3] = {4, 0, 1023};
	CU_ASSERT_TRUE(gw_balance_tried(tried, 3, 0));
	CU_ASSERT_TRUE(gw_balance_tried(tried, 3, 1023));
	CU_ASSERT_FALSE(gw_balance_tried(tried, 3, 1));
	CU_ASSERT_FALSE(gw_balance_tried(tried, 1, 0)); /* only the first n count */
	CU_ASSERT_FALSE(gw_balance_tried(tried, 0, 4));
}

/* ---- active checks ---- */

/* Feeds results ('+' pass, '-' fail) and returns the verdict after each: 'U' or 'D'. */
static void fsm_run(struct gw_hc_fsm *f, const char *in, unsigned rise, unsigned fall, char *out)
{
	for (; *in; in++, out++) {
		gw_hc_fsm_step(f, *in == '+', rise, fall);
		*out = f->down ? 'D' : 'U';
	}
	*out = '\0';
}

static void test_fsm(void)
{
	static const struct {
		const char *in;
		unsigned rise, fall;
		const char *want;
	} cases[] = {
	    {"-", 2, 3, "D"},             /* a new server's first result decides */
	    {"+--+---", 2, 3, "UUUUUUD"}, /* then fall consecutive failures */
	    {"+---++", 2, 3, "UUUDDU"},   /* and rise consecutive passes */
	    {"-+-++", 2, 3, "DDDDU"},     /* a failure restarts the rise count */
	    {"++++", 1, 1, "UUUU"},
	    {"+-+-", 1, 1, "UDUD"},
	    {"-+++", 3, 2, "DDDU"},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct gw_hc_fsm f = {0};
		char out[16];
		fsm_run(&f, cases[c].in, cases[c].rise, cases[c].fall, out);
		CU_ASSERT_STRING_EQUAL(out, cases[c].want);
	}
	struct gw_hc_fsm f = {0};
	CU_ASSERT_TRUE(gw_hc_fsm_step(&f, false, 2, 3)); /* returns whether it flipped */
	CU_ASSERT_FALSE(gw_hc_fsm_step(&f, true, 2, 3));
	CU_ASSERT_TRUE(gw_hc_fsm_step(&f, true, 2, 3));
}

static void test_delay(void)
{
	CU_ASSERT_EQUAL(gw_hc_delay_ms(2000, 0, 12345), 2000);
	CU_ASSERT_EQUAL(gw_hc_delay_ms(2000, 200, 0), 1600);
	CU_ASSERT_EQUAL(gw_hc_delay_ms(2000, 200, 800), 2400);
	CU_ASSERT_EQUAL(gw_hc_delay_ms(2000, 200, 400), 2000);
	CU_ASSERT_EQUAL(gw_hc_delay_ms(10, 1000, 0), 1); /* never zero */
	unsigned lo = 1u << 31, hi = 0;
	for (uint32_t r = 0; r < 100000; r += 7) {
		uint32_t d = gw_hc_delay_ms(500, 200, r * 2654435761u);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	CU_ASSERT_EQUAL(lo, 400);
	CU_ASSERT_EQUAL(hi, 600);
}

/* ---- passive ---- */

static void test_ejection_math(void)
{
	static const uint32_t want[] = {10000, 20000, 40000, 80000, 160000, 300000, 300000};
	for (unsigned k = 0; k < 7; k++)
		CU_ASSERT_EQUAL(gw_outlier_ejection_ms(10000, 300000, k), want[k]);
	CU_ASSERT_EQUAL(gw_outlier_ejection_ms(10000, 300000, 40), 300000);
	CU_ASSERT_EQUAL(gw_outlier_ejection_ms(5, 5, 3), 5);
	static const struct {
		size_t n;
		unsigned pct;
		size_t want;
	} share[] = {{2, 50, 1}, {1, 50, 0},  {3, 50, 1}, {10, 100, 10},
	             {4, 0, 0},  {1, 100, 1}, {7, 30, 2}};
	for (size_t i = 0; i < sizeof(share) / sizeof(share[0]); i++)
		CU_ASSERT_EQUAL(gw_outlier_max_ejected(share[i].n, share[i].pct), share[i].want);
}

/* A snapshot with one cluster "app" of n servers 127.0.0.1:9001.. (no TLS, no listener). */
static struct conf_snapshot *snap_new(size_t n, unsigned first_port)
{
	struct conf_snapshot *s = calloc(1, sizeof(*s));
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	s->clusters = calloc(1, sizeof(*s->clusters));
	CU_ASSERT_PTR_NOT_NULL_FATAL(s->clusters);
	s->n_clusters = 1;
	struct conf_cluster *c = &s->clusters[0];
	c->name = strdup("app");
	c->servers = calloc(n, sizeof(*c->servers));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->servers);
	c->n_servers = n;
	c->outlier = (struct conf_outlier){.consecutive_failures = 3,
	                                   .base_ejection = 10000,
	                                   .max_ejection = 300000,
	                                   .max_ejected_percent = 50};
	for (size_t i = 0; i < n; i++) {
		char a[32];
		snprintf(a, sizeof(a), "127.0.0.1:%u", first_port + (unsigned)i);
		c->servers[i].address = strdup(a);
		c->servers[i].name = strdup("backend.test");
		c->servers[i].weight = 1;
	}
	return s;
}

static bool ejected(struct gw_gen *g, size_t i)
{
	return !gw_hstate_usable(g->hs[i], gw_now_us());
}

static void test_passive_ejection(void)
{
	struct gw_gen *g = gw_gen_new(snap_new(4, 9001), 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	/* Two failures, a success, two failures: never three in a row. */
	for (int k = 0; k < 2; k++)
		gw_health_passive_fail(g, 0, 0, "test");
	gw_health_passive_ok(g, 0);
	for (int k = 0; k < 2; k++)
		gw_health_passive_fail(g, 0, 0, "test");
	CU_ASSERT_FALSE(ejected(g, 0));
	gw_health_passive_fail(g, 0, 0, "test");
	CU_ASSERT_TRUE(ejected(g, 0));
	uint64_t left = atomic_load(&g->hs[0]->ejected_until) - gw_now_us();
	CU_ASSERT(left > 9000000 && left <= 10000000);
	/* 4 servers at 50%: a second may go, a third may not. */
	for (int k = 0; k < 3; k++) {
		gw_health_passive_fail(g, 0, 1, "test");
		gw_health_passive_fail(g, 0, 2, "test");
	}
	CU_ASSERT_TRUE(ejected(g, 1));
	CU_ASSERT_FALSE(ejected(g, 2));
	CU_ASSERT_EQUAL(atomic_load(&g->hs[2]->ejections), 0);
	/* A repeated ejection lasts twice as long. */
	atomic_store(&g->hs[0]->ejected_until, 1);
	for (int k = 0; k < 3; k++)
		gw_health_passive_fail(g, 0, 0, "test");
	left = atomic_load(&g->hs[0]->ejected_until) - gw_now_us();
	CU_ASSERT(left > 19000000 && left <= 20000000);
	CU_ASSERT_EQUAL(atomic_load(&g->hs[0]->ejections), 2);
	gw_gen_unref(g);
}

/* A new generation with the same (cluster, name, address) shares the state; others don't. */
static void test_rebind_keeps_state(void)
{
	struct gw_gen *g1 = gw_gen_new(snap_new(3, 9001), 1);
	struct gw_gen *g2 = gw_gen_new(snap_new(3, 9002), 2); /* 9002, 9003 kept; 9004 new */
	CU_ASSERT_PTR_NOT_NULL_FATAL(g1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g2);
	CU_ASSERT_PTR_EQUAL(g1->hs[1], g2->hs[0]);
	CU_ASSERT_PTR_EQUAL(g1->hs[2], g2->hs[1]);
	CU_ASSERT_PTR_NOT_EQUAL(g1->hs[0], g2->hs[0]);
	CU_ASSERT_PTR_NOT_EQUAL(g1->hs[0], g2->hs[2]);
	atomic_store(&g1->hs[1]->down, true);
	atomic_store(&g1->hs[0]->down, true);
	gw_gen_unref(g1); /* the shared states survive the old generation */
	CU_ASSERT_TRUE(atomic_load(&g2->hs[0]->down));
	CU_ASSERT_EQUAL(atomic_load(&g2->hs[0]->refs), 1);
	struct gw_gen *g3 = gw_gen_new(snap_new(1, 9001), 3); /* 9001 was dropped: fresh */
	CU_ASSERT_PTR_NOT_NULL_FATAL(g3);
	CU_ASSERT_FALSE(atomic_load(&g3->hs[0]->down));
	CU_ASSERT_EQUAL(atomic_load(&g3->hs[0]->refs), 1);
	gw_gen_unref(g3);
	gw_gen_unref(g2);
}

static void test_status_json(void)
{
	struct gw_gen *g = gw_gen_new(snap_new(2, 9101), 7);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	struct gw_main m = {.gen = g};
	g->cfg->clusters[0].servers[1].backup = true;
	atomic_store(&g->hs[0]->down, true);
	char *s = gw_upstream_status_json(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	json_error_t err;
	json_t *doc = json_loads(s, 0, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(doc, "generation")), 7);
	json_t *cl = json_array_get(json_object_get(doc, "clusters"), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(cl, "name")), "app");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(cl, "servers_usable")), 1);
	json_t *s0 = json_array_get(json_object_get(cl, "servers"), 0);
	json_t *s1 = json_array_get(json_object_get(cl, "servers"), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s0, "state")), "down");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s1, "state")), "up");
	CU_ASSERT_TRUE(json_is_true(json_object_get(s1, "backup")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s1, "address")), "127.0.0.1:9102");
	CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(s0, "connections"), "idle"));
	json_decref(doc);
	free(s);
	gw_gen_unref(g);
}

CU_SUITE(gw_upstream, NULL, NULL, {"wrr_counts", test_wrr_counts}, {"wrr_smooth", test_wrr_smooth},
         {"wrr_eligible", test_wrr_eligible}, {"least_outstanding", test_least},
         {"tried", test_tried}, {"rise_fall", test_fsm}, {"check_delay", test_delay},
         {"ejection_math", test_ejection_math}, {"passive_ejection", test_passive_ejection},
         {"rebind_keeps_state", test_rebind_keeps_state}, {"status_json", test_status_json})
