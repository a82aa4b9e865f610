/*
 * Unit tests of the audit chain (gateway/audit_chain.c): a signed log is built in memory,
 * damaged in one way per table row, and the verifier must name that damage and the exact
 * record number. Also the canonical line form, rotation series, resumption and key files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "audit_chain.h"
#include "cu.h"

#define MAX_LINES 64
#define TIME      "2024-01-02T03:04:05.000006Z"

/* A log as separate lines (each without its newline). */
struct lines {
	char *v[MAX_LINES];
	size_t n;
};

static struct audit_signer key_a, key_b;
static unsigned char pk_a[32];

static int suite_init(void)
{
	unsigned char pk_b[32];
	if (sodium_init() < 0)
		return -1;
	crypto_sign_keypair(pk_a, key_a.sk);
	crypto_sign_keypair(pk_b, key_b.sk);
	/* The verifier computes key ids itself; make the signers carry the same ones. */
	struct audit_verify v;
	audit_verify_init(&v, pk_a, false);
	memcpy(key_a.key_id, v.key_id, sizeof(key_a.key_id));
	audit_verify_init(&v, pk_b, false);
	memcpy(key_b.key_id, v.key_id, sizeof(key_b.key_id));
	return 0;
}

static void lines_clear(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

/* Splits a buffer of complete lines and appends them to l. */
static void lines_take(struct lines *l, struct audit_buf *b)
{
	size_t start = 0;
	for (size_t i = 0; i < b->len; i++) {
		if (b->p[i] != '\n')
			continue;
		CU_ASSERT_FATAL(l->n < MAX_LINES);
		l->v[l->n++] = strndup(b->p + start, i - start);
		start = i + 1;
	}
	b->len = 0;
}

static void add_record(struct audit_chain *ch, struct lines *l, int i)
{
	char obj[160];
	struct audit_buf b = {0};
	int n = snprintf(obj, sizeof(obj),
	                 "{\"time\":\"%s\",\"type\":\"request\",\"path\":\"/p/%d\","
	                 "\"note\":\"q\\\"uote\",\"status\":200}",
	                 TIME, i);
	CU_ASSERT_FATAL(audit_chain_seal(ch, obj, (size_t)n, &b) == 0);
	lines_take(l, &b);
	audit_buf_free(&b);
}

/* One file: open, n1 records, a checkpoint, n2 records, a final checkpoint. */
static void build_file(struct audit_chain *ch, struct lines *l, int n1, int n2,
                       const struct audit_signer *s)
{
	struct audit_buf b = {0};
	CU_ASSERT_FATAL(audit_chain_open(ch, TIME, "start", &b) == 0);
	lines_take(l, &b);
	for (int i = 0; i < n1; i++)
		add_record(ch, l, i);
	CU_ASSERT_FATAL(audit_chain_checkpoint(ch, TIME, false, s, &b) == 0);
	lines_take(l, &b);
	for (int i = 0; i < n2; i++)
		add_record(ch, l, n1 + i);
	CU_ASSERT_FATAL(audit_chain_checkpoint(ch, TIME, true, s, &b) == 0);
	lines_take(l, &b);
	audit_buf_free(&b);
}

/* Verifies files in order; the last line of the last file may be marked incomplete. */
static enum audit_verdict verify(struct lines *files, size_t nf, const unsigned char *pk,
                                 bool allow_open, bool cut_last, struct audit_report *rep)
{
	static struct audit_verify v;
	audit_verify_init(&v, pk, allow_open);
	for (size_t f = 0; f < nf; f++) {
		char name[32];
		snprintf(name, sizeof(name), "f%zu", f);
		audit_verify_file(&v, name);
		for (size_t i = 0; i < files[f].n; i++) {
			bool last = f == nf - 1 && i == files[f].n - 1;
			audit_verify_line(&v, files[f].v[i], strlen(files[f].v[i]),
			                  !(last && cut_last));
		}
	}
	enum audit_verdict r = audit_verify_finish(&v);
	*rep = v.rep;
	return r;
}

/* ---- the canonical form ---- */

static void test_seal_form(void)
{
	struct audit_chain ch = {0};
	struct audit_buf b = {0};
	struct audit_line l;
	CU_ASSERT_FATAL(audit_chain_seal(&ch, "{}", 2, &b) == 0);
	CU_ASSERT_FATAL(audit_chain_seal(&ch, "{\"a\":1}", 7, &b) == 0);
	CU_ASSERT(audit_chain_seal(&ch, "[1]", 3, &b) != 0);
	CU_ASSERT(audit_chain_seal(&ch, "{", 1, &b) != 0);
	CU_ASSERT_EQUAL(ch.seq, 2);
	char *nl = memchr(b.p, '\n', b.len);
	CU_ASSERT_FATAL(nl != NULL);
	CU_ASSERT(strncmp(b.p, "{\"seq\":1,\"chain\":\"", 18) == 0);
	CU_ASSERT(strncmp(nl + 1, "{\"a\":1,\"seq\":2,\"chain\":\"", 24) == 0);
	/* chain(1) = BLAKE2b-256(32 zero bytes || {"seq":1) */
	unsigned char in[32 + 8] = {0}, h[32];
	memcpy(in + 32, "{\"seq\":1", 8);
	crypto_generichash(h, 32, in, sizeof(in), NULL, 0);
	CU_ASSERT_FATAL(audit_line_parse(b.p, (size_t)(nl - b.p), &l) == 0);
	CU_ASSERT_EQUAL(l.seq, 1);
	CU_ASSERT_EQUAL(l.prefix_len, 8);
	CU_ASSERT(memcmp(l.chain, h, 32) == 0);
	CU_ASSERT(!l.has_sig);
	audit_buf_free(&b);
}

static void test_parse_rejects(void)
{
	static const char hex[] =
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	/* Each line is before + 64 hex digits + after. */
	static const struct {
		const char *name, *before, *after;
		int ok;
	} rows[] = {
	    {"well formed", "{\"x\":1,\"seq\":12,\"chain\":\"", "\"}", 1},
	    {"no seq", "{\"x\":1,\"chain\":\"", "\"}", 0},
	    {"seq zero", "{\"seq\":0,\"chain\":\"", "\"}", 0},
	    {"seq leading zero", "{\"seq\":012,\"chain\":\"", "\"}", 0},
	    {"seq not a member", "{\"x\":\"seq\":12,\"chain\":\"", "\"}", 0},
	    {"missing brace", "{\"seq\":1,\"chain\":\"", "\"", 0},
	    {"trailing member", "{\"seq\":1,\"chain\":\"", "\",\"x\":1}", 0},
	    {"short sig", "{\"seq\":1,\"chain\":\"", "\",\"sig\":\"AAAA\"}", 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char line[256];
		struct audit_line l;
		snprintf(line, sizeof(line), "%s%s%s", rows[i].before, hex, rows[i].after);
		int rc = audit_line_parse(line, strlen(line), &l);
		if ((rc == 0) != rows[i].ok)
			fprintf(stderr, "row '%s' parsed %d\n", rows[i].name, rc);
		CU_ASSERT((rc == 0) == rows[i].ok);
	}
	char upper[160];
	snprintf(upper, sizeof(upper), "{\"seq\":1,\"chain\":\"%.63sA\"}", hex);
	struct audit_line l;
	CU_ASSERT(audit_line_parse(upper, strlen(upper), &l) != 0);
}

/* ---- damage, one kind per row ---- */

enum damage {
	DMG_NONE,
	DMG_BYTE,
	DMG_DELETE,
	DMG_SWAP,
	DMG_INSERT_COPY,
	DMG_INSERT_FORGED,
	DMG_INSERT_TEXT,
	DMG_TRUNCATE,
	DMG_CUT,
	DMG_DROP_FINAL,
	DMG_FORGE_CKPT,
	DMG_RESIGN,
	DMG_STRIP_SIG,
	DMG_REWRITE
};

/* The intact log: line i (1-based) holds record i; 1 open, 10 records, checkpoint (12),
 * 10 records, final checkpoint (23). */
static const struct {
	const char *name;
	enum damage d;
	int at;
	enum audit_verdict want;
	uint64_t seq;
} damage_rows[] = {
    {"intact", DMG_NONE, 0, AUDIT_INTACT, 0},
    {"byte changed", DMG_BYTE, 5, AUDIT_MODIFIED, 5},
    {"byte changed in checkpoint", DMG_BYTE, 12, AUDIT_MODIFIED, 12},
    {"line deleted", DMG_DELETE, 7, AUDIT_DELETED, 7},
    {"checkpoint deleted", DMG_DELETE, 12, AUDIT_DELETED, 12},
    {"two lines swapped", DMG_SWAP, 8, AUDIT_REORDERED, 8},
    {"copy inserted", DMG_INSERT_COPY, 10, AUDIT_INSERTED, 10},
    {"forged record inserted", DMG_INSERT_FORGED, 10, AUDIT_INSERTED, 10},
    {"text inserted", DMG_INSERT_TEXT, 10, AUDIT_INSERTED, 10},
    {"tail truncated", DMG_TRUNCATE, 20, AUDIT_TRUNCATED, 21},
    {"cut mid-line", DMG_CUT, 23, AUDIT_TRUNCATED, 23},
    {"final checkpoint dropped", DMG_DROP_FINAL, 23, AUDIT_TRUNCATED, 23},
    {"checkpoint forged with another key", DMG_FORGE_CKPT, 23, AUDIT_BAD_SIGNATURE, 23},
    {"signature replaced", DMG_RESIGN, 12, AUDIT_BAD_SIGNATURE, 12},
    {"signature stripped", DMG_STRIP_SIG, 12, AUDIT_UNSIGNED, 12},
    {"record rewritten, chain recomputed", DMG_REWRITE, 5, AUDIT_BAD_SIGNATURE, 12},
};

static void replace_line(struct lines *l, size_t idx, char *s)
{
	free(l->v[idx]);
	l->v[idx] = s;
}

static void insert_line(struct lines *l, size_t idx, char *s)
{
	memmove(&l->v[idx + 1], &l->v[idx], (l->n - idx) * sizeof(char *));
	l->v[idx] = s;
	l->n++;
}

/* Rebuilds the checkpoint at line `at` from the chain state of the line before it. */
static char *reseal_ckpt(struct lines *l, int at, const struct audit_signer *s, bool final)
{
	struct audit_chain ch = {0};
	struct audit_buf b = {0};
	CU_ASSERT_FATAL(audit_chain_resume(&ch, l->v[at - 2], strlen(l->v[at - 2])) == 0);
	ch.segment = (uint64_t)at - 1; /* one file: every line before it is in its segment */
	CU_ASSERT_FATAL(audit_chain_checkpoint(&ch, TIME, final, s, &b) == 0);
	char *out = strndup(b.p, b.len - 1);
	audit_buf_free(&b);
	return out;
}

/* Re-seals lines from..end after the content of line `from` changed (no key). */
static void rewrite_from(struct lines *l, int from)
{
	struct audit_chain ch = {0};
	CU_ASSERT_FATAL(audit_chain_resume(&ch, l->v[from - 2], strlen(l->v[from - 2])) == 0);
	for (size_t i = (size_t)from - 1; i < l->n; i++) {
		struct audit_line al;
		struct audit_buf b = {0};
		char obj[512];
		CU_ASSERT_FATAL(audit_line_parse(l->v[i], strlen(l->v[i]), &al) == 0);
		/* Cut ,"seq":N (the digits and the tag) off the prefix and close the object. */
		const char *p = strstr(l->v[i], ",\"seq\":");
		int n = snprintf(obj, sizeof(obj), "%.*s}", (int)(p - l->v[i]), l->v[i]);
		CU_ASSERT_FATAL(audit_chain_seal(&ch, obj, (size_t)n, &b) == 0);
		/* The attacker has no key: an old signature is kept as it was. */
		const char *sig = strstr(l->v[i], ",\"sig\":\"");
		char *line = NULL;
		CU_ASSERT_FATAL(asprintf(&line, "%.*s%s", (int)(b.len - 2), b.p, sig ? sig : "}") >
		                0);
		replace_line(l, i, line);
		audit_buf_free(&b);
	}
}

static void apply(struct lines *l, enum damage d, int at)
{
	size_t i = (size_t)at - 1;
	char *s;
	switch (d) {
	case DMG_NONE:
		break;
	case DMG_BYTE:
		s = strstr(l->v[i], "\"time\":\"2024") + 9;
		*s = '3';
		break;
	case DMG_DELETE:
		free(l->v[i]);
		memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(char *));
		l->n--;
		break;
	case DMG_SWAP:
		s = l->v[i];
		l->v[i] = l->v[i + 1];
		l->v[i + 1] = s;
		break;
	case DMG_INSERT_COPY:
		insert_line(l, i, strdup(l->v[2]));
		break;
	case DMG_INSERT_FORGED: {
		char forged[256];
		snprintf(forged, sizeof(forged),
		         "{\"type\":\"request\",\"seq\":%d,\"chain\":\"%064d\"}", at, 0);
		insert_line(l, i, strdup(forged));
		break;
	}
	case DMG_INSERT_TEXT:
		insert_line(l, i, strdup("hello"));
		break;
	case DMG_TRUNCATE:
		while (l->n > (size_t)at)
			free(l->v[--l->n]);
		break;
	case DMG_CUT:
		l->v[i][strlen(l->v[i]) / 2] = '\0';
		break;
	case DMG_DROP_FINAL:
		free(l->v[--l->n]);
		break;
	case DMG_FORGE_CKPT:
		replace_line(l, i, reseal_ckpt(l, at, &key_b, true));
		break;
	case DMG_RESIGN: {
		/* Same chain value, signature by key B: only the signature differs. */
		char *other = reseal_ckpt(l, at, &key_b, false);
		char *sig = strstr(other, ",\"sig\":\""), *mine = strstr(l->v[i], ",\"sig\":\"");
		memcpy(mine, sig, strlen(sig));
		free(other);
		break;
	}
	case DMG_STRIP_SIG:
		strcpy(strstr(l->v[i], ",\"sig\":\""), "}");
		break;
	case DMG_REWRITE:
		s = strstr(l->v[i], "/p/") + 3;
		*s = '9';
		rewrite_from(l, at);
		break;
	}
}

static void test_damage_table(void)
{
	for (size_t r = 0; r < sizeof(damage_rows) / sizeof(damage_rows[0]); r++) {
		struct audit_chain ch = {0};
		struct lines l = {0};
		struct audit_report rep;
		build_file(&ch, &l, 10, 10, &key_a);
		CU_ASSERT_FATAL(l.n == 23);
		apply(&l, damage_rows[r].d, damage_rows[r].at);
		enum audit_verdict v =
		    verify(&l, 1, pk_a, false, damage_rows[r].d == DMG_CUT, &rep);
		if (v != damage_rows[r].want || rep.seq != damage_rows[r].seq)
			fprintf(stderr, "row '%s': got %s seq %llu (%s)\n", damage_rows[r].name,
			        audit_verdict_str(v), (unsigned long long)rep.seq, rep.text);
		CU_ASSERT_EQUAL(v, damage_rows[r].want);
		CU_ASSERT_EQUAL(rep.seq, damage_rows[r].seq);
		if (damage_rows[r].d == DMG_NONE) {
			CU_ASSERT_EQUAL(rep.records, 23);
			CU_ASSERT_EQUAL(rep.signed_checkpoints, 2);
		}
		lines_clear(&l);
	}
}

/* Without a public key only the chain is checked: a re-signed checkpoint passes. */
static void test_chain_only(void)
{
	struct audit_chain ch = {0};
	struct lines l = {0};
	struct audit_report rep;
	build_file(&ch, &l, 3, 3, &key_a);
	apply(&l, DMG_FORGE_CKPT, (int)l.n);
	CU_ASSERT_EQUAL(verify(&l, 1, NULL, false, false, &rep), AUDIT_INTACT);
	CU_ASSERT_EQUAL(verify(&l, 1, pk_a, false, false, &rep), AUDIT_BAD_SIGNATURE);
	lines_clear(&l);
	/* An unsigned log verifies without a key and is refused with one. */
	struct audit_chain ch2 = {0};
	build_file(&ch2, &l, 2, 2, NULL);
	CU_ASSERT_EQUAL(verify(&l, 1, NULL, false, false, &rep), AUDIT_INTACT);
	CU_ASSERT_EQUAL(verify(&l, 1, pk_a, false, false, &rep), AUDIT_UNSIGNED);
	CU_ASSERT_EQUAL(rep.seq, 4);
	lines_clear(&l);
}

/* ---- series, resumption, open files ---- */

static void test_rotation_series(void)
{
	struct audit_chain ch = {0};
	struct lines f[2], swapped[2];
	struct audit_report rep;
	memset(f, 0, sizeof(f));
	build_file(&ch, &f[0], 4, 4, &key_a); /* records 1..11 */
	build_file(&ch, &f[1], 4, 4, &key_a); /* records 12..22 */
	CU_ASSERT_EQUAL(verify(f, 2, pk_a, false, false, &rep), AUDIT_INTACT);
	CU_ASSERT_EQUAL(rep.records, 22);
	CU_ASSERT_EQUAL(rep.files, 2);
	/* The second file alone verifies from its opening record. */
	CU_ASSERT_EQUAL(verify(&f[1], 1, pk_a, false, false, &rep), AUDIT_INTACT);
	/* Files given in the wrong order. */
	swapped[0] = f[1];
	swapped[1] = f[0];
	CU_ASSERT_NOT_EQUAL(verify(swapped, 2, pk_a, false, false, &rep), AUDIT_INTACT);
	/* The second file's opening record deleted: record 12 is missing. */
	apply(&f[1], DMG_DELETE, 1);
	CU_ASSERT_EQUAL(verify(f, 2, pk_a, false, false, &rep), AUDIT_DELETED);
	CU_ASSERT_EQUAL(rep.seq, 12);
	CU_ASSERT_STRING_EQUAL(rep.file, "f1");
	CU_ASSERT_EQUAL(rep.line, 1);
	lines_clear(&f[0]);
	lines_clear(&f[1]);
}

/* A restarted gateway continues the chain after the last line of the existing file. */
static void test_resume_and_open(void)
{
	struct audit_chain ch = {0}, ch2 = {0};
	struct lines l = {0};
	struct audit_report rep;
	struct audit_buf b = {0};
	CU_ASSERT_FATAL(audit_chain_open(&ch, TIME, "start", &b) == 0);
	lines_take(&l, &b);
	add_record(&ch, &l, 1);
	add_record(&ch, &l, 2);
	/* Crash: no final checkpoint. Open files are accepted only when asked for. */
	CU_ASSERT_EQUAL(verify(&l, 1, pk_a, false, false, &rep), AUDIT_TRUNCATED);
	CU_ASSERT_EQUAL(rep.seq, 4);
	CU_ASSERT_EQUAL(verify(&l, 1, pk_a, true, false, &rep), AUDIT_INTACT);
	CU_ASSERT_EQUAL(rep.warnings, 1);
	CU_ASSERT_FATAL(audit_chain_resume(&ch2, l.v[l.n - 1], strlen(l.v[l.n - 1])) == 0);
	CU_ASSERT_EQUAL(ch2.seq, 3);
	build_file(&ch2, &l, 1, 1, &key_a);
	CU_ASSERT_EQUAL(verify(&l, 1, pk_a, false, false, &rep), AUDIT_INTACT);
	CU_ASSERT_EQUAL(rep.warnings, 1); /* the unclosed segment is reported, not failed */
	CU_ASSERT_EQUAL(rep.records, 8);
	CU_ASSERT_EQUAL(verify(&l, 0, pk_a, false, false, &rep), AUDIT_EMPTY);
	audit_buf_free(&b);
	lines_clear(&l);
}

/* ---- key files ---- */

static void test_key_files(void)
{
	char dir[] = "/tmp/gwaudit-keys.XXXXXX", prefix[64], path[80], err[256];
	struct audit_signer s;
	unsigned char pk[32];
	char id[AUDIT_KEYID_LEN + 1];
	struct stat st;
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	snprintf(prefix, sizeof(prefix), "%s/audit", dir);
	CU_ASSERT_FATAL(audit_key_generate(prefix, err, sizeof(err)) == 0);
	CU_ASSERT(audit_key_generate(prefix, err, sizeof(err)) != 0); /* never overwritten */
	snprintf(path, sizeof(path), "%s.key", prefix);
	CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CU_ASSERT_FATAL(audit_signer_load(&s, path, err, sizeof(err)) == 0);
	chmod(path, 0644);
	CU_ASSERT(audit_signer_load(&s, path, err, sizeof(err)) != 0);
	CU_ASSERT(strstr(err, "readable") != NULL);
	snprintf(path, sizeof(path), "%s.pub", prefix);
	CU_ASSERT_FATAL(audit_pubkey_load(pk, id, path, err, sizeof(err)) == 0);
	CU_ASSERT_STRING_EQUAL(id, s.key_id);
	/* A public key is not a secret key and the other way round. */
	CU_ASSERT(audit_signer_load(&s, path, err, sizeof(err)) != 0);
	/* The pair works end to end. */
	struct audit_chain ch = {0};
	struct lines l = {0};
	struct audit_report rep;
	build_file(&ch, &l, 2, 2, &s);
	CU_ASSERT_EQUAL(verify(&l, 1, pk, false, false, &rep), AUDIT_INTACT);
	lines_clear(&l);
	snprintf(path, sizeof(path), "%s.key", prefix);
	unlink(path);
	snprintf(path, sizeof(path), "%s.pub", prefix);
	unlink(path);
	rmdir(dir);
}

CU_SUITE(audit_chain, suite_init, NULL, {"seal form", test_seal_form},
         {"parse rejects", test_parse_rejects}, {"damage table", test_damage_table},
         {"chain only", test_chain_only}, {"rotation series", test_rotation_series},
         {"resume and open", test_resume_and_open}, {"key files", test_key_files})
