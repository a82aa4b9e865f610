/*
 * audit_json.c: audit records written as JSON text in place, in one buffer. A record is
 * built on the request path of a worker, where a DOM library's allocations per member
 * cost more than the rest of the audit; this writer appends, and escapes whatever came
 * from a client: quotes, backslashes and control characters, non-ASCII as \uXXXX, and
 * invalid UTF-8 as U+FFFD (the record stays valid JSON and shows that bytes were there).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit_chain.h"

/* Appends; the common case (room left) stays inline, a record is a few hundred calls. */
static inline void put(struct audit_json *j, const void *p, size_t n)
{
	struct audit_buf *b = &j->b;
	if (n <= b->cap - b->len) {
		memcpy(b->p + b->len, p, n);
		b->len += n;
	} else if (!j->oom && audit_buf_add(b, p, n) != 0) {
		j->oom = true;
	}
}

#define PUT_LIT(j, lit) put(j, lit, sizeof(lit) - 1)

/* Longest key accepted; keys are literals of ours, a longer one is a programming error. */
#define KEY_MAX 61

/*
 * The separator before a member and its key (klen bytes; keys are literals of ours,
 * never escaped). With room, written straight into the buffer.
 */
static inline void member(struct audit_json *j, const char *key, size_t klen)
{
	struct audit_buf *b = &j->b;
	bool comma = false;
	if (j->depth > 0) {
		comma = j->need_comma[j->depth - 1];
		j->need_comma[j->depth - 1] = true;
	}
	if (key && klen > KEY_MAX) {
		j->oom = true;
		return;
	}
	if (1 + KEY_MAX + 3 <= b->cap - b->len) {
		char *q = b->p + b->len;
		if (comma)
			*q++ = ',';
		if (key) {
			*q++ = '"';
			memcpy(q, key, klen);
			q += klen;
			*q++ = '"';
			*q++ = ':';
		}
		b->len = (size_t)(q - b->p);
		return;
	}
	if (comma)
		put(j, ",", 1);
	if (key) {
		put(j, "\"", 1);
		put(j, key, klen);
		put(j, "\":", 2);
	}
}

static void put_u(struct audit_json *j, unsigned v)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = {'\\',       'u', hex[(v >> 12) & 15], hex[(v >> 8) & 15], hex[(v >> 4) & 15],
	             hex[v & 15]};
	put(j, e, sizeof(e));
}

/* Decodes one UTF-8 sequence at s (n bytes left); the code point, or -1 if invalid. */
static long utf8_decode(const unsigned char *s, size_t n, size_t *used)
{
	static const long min[] = {0, 0, 0x80, 0x800, 0x10000};
	int len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
	if (len == 0 || s[0] >= 0xf8 || (size_t)len > n)
		return -1;
	long cp = s[0] & (0x7f >> len);
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and values past Unicode are not UTF-8. */
	if (cp < min[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return -1;
	*used = (size_t)len;
	return cp;
}

/* One byte (or UTF-8 sequence) that cannot be copied as is; returns bytes consumed. */
static size_t put_escape(struct audit_json *j, const unsigned char *s, size_t n)
{
	size_t used = 1;
	long cp;
	switch (s[0]) {
	case '"':
		PUT_LIT(j, "\\\"");
		return 1;
	case '\\':
		PUT_LIT(j, "\\\\");
		return 1;
	case '\n':
		PUT_LIT(j, "\\n");
		return 1;
	case '\r':
		PUT_LIT(j, "\\r");
		return 1;
	case '\t':
		PUT_LIT(j, "\\t");
		return 1;
	default:
		break;
	}
	if (s[0] < 0x80) {
		put_u(j, s[0]);
		return 1;
	}
	cp = utf8_decode(s, n, &used);
	if (cp < 0) {
		put_u(j, 0xfffd);
		return 1;
	}
	if (cp >= 0x10000) {
		put_u(j, 0xd800 + (unsigned)((cp - 0x10000) >> 10));
		put_u(j, 0xdc00 + (unsigned)((cp - 0x10000) & 0x3ff));
	} else {
		put_u(j, (unsigned)cp);
	}
	return used;
}

/*
 * The length of the run at s (n bytes) that is copied as is: printable ASCII other than
 * quote and backslash. Eight bytes at a time: special() flags, exactly and per byte (no
 * carry crosses a byte), each byte that is < 0x20, 0x7f, '"', '\\' or >= 0x80.
 */
#define ONES UINT64_C(0x0101010101010101)
#define HIGH (ONES * 0x80)

static inline uint64_t special(uint64_t w)
{
	uint64_t t = w & ~HIGH; /* each byte's low 7 bits: adding to them cannot carry out */
	/* The top bit of each byte of these is set when the byte passes the test. */
	uint64_t ge20 = t + ONES * (0x80 - 0x20);
	uint64_t ne7f = ~(t + ONES);
	uint64_t nequote = (t ^ ONES * '"') + ONES * 0x7f;
	uint64_t nebslash = (t ^ ONES * '\\') + ONES * 0x7f;
	uint64_t ascii = ~w;
	return ~(ge20 & ne7f & nequote & nebslash & ascii) & HIGH;
}

static inline size_t first_flagged(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return (size_t)__builtin_clzll(m) / 8;
#else
	return (size_t)__builtin_ctzll(m) / 8;
#endif
}

/*
 * With d not NULL, also copies what it reads to d (room for n bytes): the run, and
 * possibly bytes after it that the caller will overwrite.
 */
static inline size_t plain_run(unsigned char *d, const unsigned char *s, size_t n)
{
	uint64_t w, m;
	size_t i = 0;
	if (n < 8) {
		for (; i < n && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\'; i++)
			if (d)
				d[i] = s[i];
		return i;
	}
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		if (d)
			memcpy(d + i, &w, 8);
		if ((m = special(w)) != 0)
			return i + first_flagged(m);
	}
	if (i == n)
		return n;
	/* The last, partial word: the 8 bytes that end the string; those already seen are
	 * plain, so the first flagged one is new. */
	memcpy(&w, s + n - 8, 8);
	if (d)
		memcpy(d + n - 8, &w, 8);
	if ((m = special(w)) != 0)
		return n - 8 + first_flagged(m);
	return n;
}

/*
 * The rest of a string value from s[i], a byte to escape (or the end), and its quote. Not
 * inlined: the common case (nothing to escape) stays small, without its register saves.
 */
__attribute__((noinline)) static void put_string_rest(struct audit_json *j, const unsigned char *s,
                                                      size_t n, size_t i)
{
	while (i < n) {
		i += put_escape(j, s + i, n - i);
		size_t run = plain_run(NULL, s + i, n - i);
		if (run)
			put(j, s + i, run);
		i += run;
	}
	put(j, "\"", 1);
}

/* A string value: with room for it unescaped, scanned and copied in one pass. */
static inline void put_string(struct audit_json *j, const unsigned char *s, size_t n)
{
	struct audit_buf *b = &j->b;
	size_t room = b->cap - b->len, run;
	if (room >= 2 && n <= room - 2) {
		char *q = b->p + b->len;
		q[0] = '"';
		run = plain_run((unsigned char *)q + 1, s, n);
		b->len += 1 + run;
		if (run == n) {
			q[n + 1] = '"';
			b->len++;
			return;
		}
	} else {
		put(j, "\"", 1);
		run = plain_run(NULL, s, n);
		if (run)
			put(j, s, run);
	}
	put_string_rest(j, s, n, run);
}

void audit_json_begin(struct audit_json *j)
{
	memset(j, 0, sizeof(*j));
	if (audit_buf_reserve(&j->b, 1024) != 0)
		j->oom = true;
	put(j, "{", 1);
	j->depth = 1;
}

void audit_json_fragment_begin(struct audit_json *j)
{
	memset(j, 0, sizeof(*j));
	if (audit_buf_reserve(&j->b, 256) != 0)
		j->oom = true;
	j->depth = 1;
	j->fragment = true;
}

void audit_json_raw(struct audit_json *j, const char *text, size_t len)
{
	if (len == 0)
		return; /* an empty fragment adds no member, and so no comma */
	member(j, NULL, 0);
	put(j, text, len);
}

void audit_json_kstrn(struct audit_json *j, const char *key, size_t klen, const char *v, size_t n)
{
	member(j, key, klen);
	if (!v) {
		PUT_LIT(j, "null");
		return;
	}
	put_string(j, (const unsigned char *)v, n);
}

void audit_json_kint(struct audit_json *j, const char *key, size_t klen, long long v)
{
	char d[24];
	size_t i = sizeof(d);
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		d[--i] = '-';
	member(j, key, klen);
	put(j, d + i, sizeof(d) - i);
}

void audit_json_knull(struct audit_json *j, const char *key, size_t klen)
{
	member(j, key, klen);
	PUT_LIT(j, "null");
}

void audit_json_kopen(struct audit_json *j, const char *key, size_t klen, char kind)
{
	member(j, key, klen);
	if (j->depth == AUDIT_JSON_DEPTH) {
		j->oom = true; /* a programming error: refuse the record rather than corrupt it */
		return;
	}
	put(j, kind == '[' ? "[" : "{", 1);
	j->close[j->depth] = kind == '[' ? ']' : '}';
	j->need_comma[j->depth++] = false;
}

void audit_json_close(struct audit_json *j)
{
	if (j->depth <= 1) {
		j->oom = true;
		return;
	}
	j->depth--;
	put(j, &j->close[j->depth], 1);
}

char *audit_json_take(struct audit_json *j, size_t *len)
{
	if (!j->fragment)
		put(j, "}", 1);
	put(j, "", 1); /* a terminating NUL, not counted */
	if (j->oom || j->depth != 1) {
		audit_buf_free(&j->b);
		return NULL;
	}
	*len = j->b.len - 1;
	char *p = j->b.p;
	memset(&j->b, 0, sizeof(j->b));
	return p;
}

void audit_json_free(struct audit_json *j)
{
	audit_buf_free(&j->b);
}
