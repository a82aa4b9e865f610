/*
 * audit_json.c: audit records written as JSON text in place, in one buffer. A record is
 * built on the request path of a worker, where a DOM library's allocations per member
 * cost more than the rest of the audit; this writer appends, and escapes whatever came
 * from a client: quotes, backslashes and control characters, non-ASCII as \uXXXX, and
 * invalid UTF-8 as U+FFFD (the record stays valid JSON and shows that bytes were there).
 */
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

/* The separator before a member and its key; keys are literals of ours, never escaped. */
static void member(struct audit_json *j, const char *key)
{
	if (j->depth > 0 && j->need_comma[j->depth - 1])
		put(j, ",", 1);
	if (j->depth > 0)
		j->need_comma[j->depth - 1] = true;
	if (key) {
		size_t n = strlen(key);
		char k[64];
		if (n > sizeof(k) - 3) {
			j->oom = true; /* keys are short literals of ours */
			return;
		}
		k[0] = '"';
		memcpy(k + 1, key, n);
		k[n + 1] = '"';
		k[n + 2] = ':';
		put(j, k, n + 3);
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

static void put_string(struct audit_json *j, const char *v, size_t n)
{
	const unsigned char *s = (const unsigned char *)v;
	size_t i = 0, run = 0;
	put(j, "\"", 1);
	while (i < n) {
		unsigned char c = s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			i++;
			continue;
		}
		put(j, s + run, i - run);
		i += put_escape(j, s + i, n - i);
		run = i;
	}
	put(j, s + run, n - run);
	put(j, "\"", 1);
}

void audit_json_begin(struct audit_json *j)
{
	memset(j, 0, sizeof(*j));
	if (audit_buf_reserve(&j->b, 1024) != 0)
		j->oom = true;
	put(j, "{", 1);
	j->depth = 1;
}

void audit_json_strn(struct audit_json *j, const char *key, const char *v, size_t n)
{
	member(j, key);
	if (v)
		put_string(j, v, n);
	else
		PUT_LIT(j, "null");
}

void audit_json_str(struct audit_json *j, const char *key, const char *v)
{
	audit_json_strn(j, key, v, v ? strlen(v) : 0);
}

void audit_json_int(struct audit_json *j, const char *key, long long v)
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
	member(j, key);
	put(j, d + i, sizeof(d) - i);
}

void audit_json_null(struct audit_json *j, const char *key)
{
	member(j, key);
	PUT_LIT(j, "null");
}

void audit_json_open(struct audit_json *j, const char *key, char kind)
{
	member(j, key);
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
