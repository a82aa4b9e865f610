/*
 * Strict base64url and hex. A token is compared and cached by its exact bytes, so two
 * spellings of one value must not both decode: padding, '+', '/', whitespace, stray
 * characters and non-zero unused bits are all refused (libsodium checks the last two).
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "authn_int.h"

/* Decodes in[0..len) into out[0..cap); -1 unless every character was consumed. */
int authn_b64url_decode_to(const char *in, size_t len, unsigned char *out, size_t cap,
                           size_t *outlen)
{
	const char *end = NULL;
	size_t n = 0;

	/* One character alone cannot carry a byte: no canonical encoding ends like that. */
	if (len % 4 == 1)
		return -1;
	if (len == 0) {
		*outlen = 0;
		return 0;
	}
	if (sodium_base642bin(out, cap, in, len, NULL, &n, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	/* Why check end: libsodium stops quietly at the first character it does not know. */
	if (end != in + len)
		return -1;
	*outlen = n;
	return 0;
}

/* Decodes into a new buffer with a NUL after the data (caller frees). */
int authn_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen)
{
	size_t cap = len / 4 * 3 + 3;
	unsigned char *buf = malloc(cap + 1);

	*out = NULL;
	if (!buf)
		return -1;
	if (authn_b64url_decode_to(in, len, buf, cap, outlen) != 0) {
		free(buf);
		return -1;
	}
	buf[*outlen] = '\0';
	*out = buf;
	return 0;
}

/* Encodes without padding; returns the length written (NUL not counted), 0 if too small. */
size_t authn_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
	size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

	if (cap < need)
		return 0;
	sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return strlen(out);
}

/* Exactly 2n hex digits (either case) to n bytes. */
int authn_hex_decode(const char *hex, size_t hexlen, unsigned char *out, size_t n)
{
	size_t got = 0;
	const char *end = NULL;

	if (hexlen != 2 * n)
		return -1;
	if (sodium_hex2bin(out, n, hex, hexlen, NULL, &got, &end) != 0 || got != n ||
	    end != hex + hexlen)
		return -1;
	return 0;
}

/* Lower-case hex of n bytes, NUL-terminated. */
void authn_hex_encode(const unsigned char *in, size_t n, char *out)
{
	sodium_bin2hex(out, 2 * n + 1, in, n);
}
