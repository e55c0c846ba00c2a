#include <string.h>

#include <criterion/criterion.h>
#include <zlib.h>

#include "grpc/grpc-internal.h"

static const uint8_t *feed_all(msvc__grpc_reader_t *r, const void *data, size_t len,
                               size_t *mlen, int *rc) {
  const uint8_t *msg = NULL;
  size_t used = 0;

  *rc = msvc__grpc_reader_feed(r, data, len, &used, &msg, mlen);
  return msg;
}

Test(grpc_frame, identity_roundtrip_byte_by_byte) {
  msvc__buf_t b;
  msvc__grpc_reader_t r;
  const uint8_t *msg = NULL;
  size_t i, mlen = 0, used;
  int rc = 0;

  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__grpc_frame_encode(&b, "hello", 5, MSVC__GRPC_ENC_IDENTITY, 0), 0);
  cr_assert_eq(b.len, 10);
  cr_assert_eq(memcmp(b.data, "\0\0\0\0\5hello", 10), 0);
  msvc__grpc_reader_init(&r, 100, MSVC__GRPC_ENC_IDENTITY);
  for (i = 0; i < b.len; i++) {
    rc = msvc__grpc_reader_feed(&r, (uint8_t *)b.data + i, 1, &used, &msg, &mlen);
    cr_assert_eq(used, 1);
    if (i + 1 < b.len)
      cr_assert_eq(rc, 0);
  }
  cr_assert_eq(rc, 1);
  cr_assert_eq(mlen, 5);
  cr_assert_eq(memcmp(msg, "hello", 5), 0);
  cr_assert(msvc__grpc_reader_idle(&r));
  msvc__grpc_reader_free(&r);
  msvc__buf_free(&b);
}

Test(grpc_frame, two_messages_and_empty_one) {
  msvc__buf_t b;
  msvc__grpc_reader_t r;
  const uint8_t *msg;
  size_t mlen, used, off = 0;
  int rc;

  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__grpc_frame_encode(&b, "", 0, MSVC__GRPC_ENC_IDENTITY, 0), 0);
  cr_assert_eq(msvc__grpc_frame_encode(&b, "ab", 2, MSVC__GRPC_ENC_IDENTITY, 0), 0);
  msvc__grpc_reader_init(&r, 100, MSVC__GRPC_ENC_IDENTITY);
  rc = msvc__grpc_reader_feed(&r, (uint8_t *)b.data, b.len, &used, &msg, &mlen);
  cr_assert_eq(rc, 1);
  cr_assert_eq(mlen, 0);
  off += used;
  rc = msvc__grpc_reader_feed(&r, (uint8_t *)b.data + off, b.len - off, &used, &msg, &mlen);
  cr_assert_eq(rc, 1);
  cr_assert_eq(mlen, 2);
  cr_assert_eq(off + used, b.len);
  msvc__grpc_reader_free(&r);
  msvc__buf_free(&b);
}

Test(grpc_frame, gzip_roundtrip) {
  char big[4096];
  msvc__buf_t b;
  msvc__grpc_reader_t r;
  size_t mlen = 0;
  int rc;
  const uint8_t *msg;

  memset(big, 'x', sizeof(big));
  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__grpc_frame_encode(&b, big, sizeof(big), MSVC__GRPC_ENC_GZIP, 0), 0);
  cr_assert_eq((uint8_t)b.data[0], 1, "compressible data goes compressed");
  cr_assert_lt(b.len, sizeof(big));
  msvc__grpc_reader_init(&r, sizeof(big), MSVC__GRPC_ENC_GZIP);
  msg = feed_all(&r, b.data, b.len, &mlen, &rc);
  cr_assert_eq(rc, 1);
  cr_assert_eq(mlen, sizeof(big));
  cr_assert_eq(memcmp(msg, big, sizeof(big)), 0);
  msvc__grpc_reader_free(&r);
  msvc__buf_free(&b);
}

Test(grpc_frame, gzip_of_tiny_message_stays_uncompressed) {
  msvc__buf_t b;

  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__grpc_frame_encode(&b, "a", 1, MSVC__GRPC_ENC_GZIP, 0), 0);
  cr_assert_eq(b.data[0], 0);
  cr_assert_eq(b.len, 6);
  msvc__buf_free(&b);
}

Test(grpc_frame, send_limit) {
  msvc__buf_t b;

  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__grpc_frame_encode(&b, "abcdef", 6, MSVC__GRPC_ENC_IDENTITY, 5),
               MSVC_ETOOLARGE);
  cr_assert_eq(b.len, 0);
  msvc__buf_free(&b);
}

Test(grpc_frame, declared_length_over_limit_refused_before_body) {
  const uint8_t hdr[5] = {0, 0xff, 0xff, 0xff, 0xff};
  msvc__grpc_reader_t r;
  size_t mlen;
  int rc;

  msvc__grpc_reader_init(&r, 1024, MSVC__GRPC_ENC_IDENTITY);
  feed_all(&r, hdr, 5, &mlen, &rc);
  cr_assert_eq(rc, MSVC_ETOOLARGE);
  msvc__grpc_reader_free(&r);
}

Test(grpc_frame, bad_flag_and_compressed_on_identity) {
  const uint8_t a[6] = {2, 0, 0, 0, 1, 'x'};
  const uint8_t c[6] = {1, 0, 0, 0, 1, 'x'};
  msvc__grpc_reader_t r;
  size_t mlen;
  int rc;

  msvc__grpc_reader_init(&r, 1024, MSVC__GRPC_ENC_GZIP);
  feed_all(&r, a, sizeof(a), &mlen, &rc);
  cr_assert_eq(rc, MSVC_EPROTO);
  msvc__grpc_reader_free(&r);
  msvc__grpc_reader_init(&r, 1024, MSVC__GRPC_ENC_IDENTITY);
  feed_all(&r, c, sizeof(c), &mlen, &rc);
  cr_assert_eq(rc, MSVC_EPROTO);
  msvc__grpc_reader_free(&r);
  msvc__grpc_reader_init(&r, 1024, MSVC__GRPC_ENC_GZIP);
  feed_all(&r, c, sizeof(c), &mlen, &rc);
  cr_assert_eq(rc, MSVC_EPROTO, "corrupt gzip");
  msvc__grpc_reader_free(&r);
}

Test(grpc_frame, decompression_bomb_stops_at_limit) {
  /* 64 MiB of zeros compress to ~64 KiB; the reader must stop at 1 MiB. */
  size_t n = 64u << 20;
  uint8_t *zeros = calloc(1, n);
  msvc__buf_t b;
  msvc__grpc_reader_t r;
  size_t mlen;
  int rc;

  cr_assert_not_null(zeros);
  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__grpc_frame_encode(&b, zeros, n, MSVC__GRPC_ENC_GZIP, 0), 0);
  free(zeros);
  cr_assert_lt(b.len, (size_t)1 << 20);
  msvc__grpc_reader_init(&r, (size_t)1 << 20, MSVC__GRPC_ENC_GZIP);
  feed_all(&r, b.data, b.len, &mlen, &rc);
  cr_assert_eq(rc, MSVC_ETOOLARGE);
  msvc__grpc_reader_free(&r);
  msvc__buf_free(&b);
}

Test(grpc_timeout, parse) {
  uint64_t ms = 0;

  cr_assert_eq(msvc__grpc_timeout_parse("100m", 4, &ms), 0);
  cr_assert_eq(ms, 100);
  cr_assert_eq(msvc__grpc_timeout_parse("2S", 2, &ms), 0);
  cr_assert_eq(ms, 2000);
  cr_assert_eq(msvc__grpc_timeout_parse("1M", 2, &ms), 0);
  cr_assert_eq(ms, 60000);
  cr_assert_eq(msvc__grpc_timeout_parse("1H", 2, &ms), 0);
  cr_assert_eq(ms, 3600000);
  cr_assert_eq(msvc__grpc_timeout_parse("500u", 4, &ms), 0);
  cr_assert_eq(ms, 1, "rounded up");
  cr_assert_eq(msvc__grpc_timeout_parse("1500000n", 8, &ms), 0);
  cr_assert_eq(ms, 2);
  cr_assert_eq(msvc__grpc_timeout_parse("99999999S", 9, &ms), 0);
  cr_assert_eq(msvc__grpc_timeout_parse("123456789S", 10, &ms), MSVC_EINVAL, "9 digits");
  cr_assert_eq(msvc__grpc_timeout_parse("10", 2, &ms), MSVC_EINVAL);
  cr_assert_eq(msvc__grpc_timeout_parse("m", 1, &ms), MSVC_EINVAL);
  cr_assert_eq(msvc__grpc_timeout_parse("1x", 2, &ms), MSVC_EINVAL);
  cr_assert_eq(msvc__grpc_timeout_parse("-1m", 3, &ms), MSVC_EINVAL);
}

Test(grpc_timeout, format) {
  char out[16];
  uint64_t ms;

  msvc__grpc_timeout_format(250, out);
  cr_assert_str_eq(out, "250m");
  msvc__grpc_timeout_format(100000000u, out);
  cr_assert_str_eq(out, "100000S");
  msvc__grpc_timeout_format(UINT64_MAX / 2, out);
  cr_assert_eq(msvc__grpc_timeout_parse(out, strlen(out), &ms), 0, "%s", out);
}

Test(grpc_message, percent_roundtrip) {
  const char in[] = "bad: 100% caf\xc3\xa9\n";
  msvc__buf_t e, d;

  msvc__buf_init(&e, 0);
  msvc__buf_init(&d, 0);
  cr_assert_eq(msvc__grpc_pct_encode(&e, in, strlen(in)), 0);
  cr_assert_str_eq(e.data, "bad: 100%25 caf%C3%A9%0A");
  cr_assert_eq(msvc__grpc_pct_decode(&d, e.data, e.len), 0);
  cr_assert_str_eq(d.data, in);
  msvc__buf_free(&d);
  msvc__buf_init(&d, 0);
  cr_assert_eq(msvc__grpc_pct_decode(&d, "50%zz%4", 7), 0, "lenient");
  cr_assert_str_eq(d.data, "50%zz%4");
  msvc__buf_free(&d);
  msvc__buf_free(&e);
}

Test(grpc_metadata, bin_and_text) {
  msvc_grpc_metadata_t *md;
  const char *v;
  size_t len;
  msvc__buf_t b;

  cr_assert_eq(msvc_grpc_metadata_new(&md), 0);
  cr_assert_eq(msvc_grpc_metadata_add(md, "X-User", "alice", 5), 0);
  cr_assert_eq(msvc_grpc_metadata_add(md, "trace-bin", "\0\1\2\377", 4), 0);
  cr_assert_eq(msvc_grpc_metadata_add(md, "grpc-status", "0", 1), MSVC_EINVAL);
  cr_assert_eq(msvc_grpc_metadata_add(md, "bad key", "v", 1), MSVC_EINVAL);
  cr_assert_eq(msvc_grpc_metadata_add(md, "text", "a\nb", 3), MSVC_EINVAL);
  cr_assert_eq(msvc_grpc_metadata_count(md), 2);
  v = msvc_grpc_metadata_get(md, "x-user", &len);
  cr_assert_str_eq(v, "alice");
  v = msvc_grpc_metadata_get(md, "trace-bin", &len);
  cr_assert_eq(len, 4);
  cr_assert_eq(memcmp(v, "\0\1\2\377", 4), 0);
  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__grpc_b64_encode(&b, "\0\1\2\377", 4), 0);
  cr_assert_str_eq(b.data, "AAEC/w==");
  cr_assert_eq(msvc__grpc_metadata_add_wire(md, "in-bin", 6, "AAEC/w", 6), 0, "unpadded");
  v = msvc_grpc_metadata_get(md, "in-bin", &len);
  cr_assert_eq(len, 4);
  cr_assert_eq(memcmp(v, "\0\1\2\377", 4), 0);
  cr_assert_eq(msvc__grpc_metadata_add_wire(md, "x-bin", 5, "A", 1), MSVC_EINVAL);
  cr_assert_eq(msvc__grpc_metadata_add_wire(md, "x-bin", 5, "A*==", 4), MSVC_EINVAL);
  msvc__buf_free(&b);
  msvc_grpc_metadata_free(md);
}

Test(grpc_codes, names_and_mapping) {
  cr_assert_str_eq(msvc_grpc_code_name(MSVC_GRPC_UNAVAILABLE), "UNAVAILABLE");
  cr_assert_str_eq(msvc_grpc_code_name(99), "UNKNOWN");
  cr_assert_eq(msvc_grpc_code_from_error(MSVC_EBREAKER_OPEN), MSVC_GRPC_UNAVAILABLE);
  cr_assert_eq(msvc_grpc_code_from_error(MSVC_ENO_ENDPOINTS), MSVC_GRPC_UNAVAILABLE);
  cr_assert_eq(msvc_grpc_code_from_error(MSVC_ETIMEDOUT), MSVC_GRPC_DEADLINE_EXCEEDED);
  cr_assert_eq(msvc_grpc_code_from_error(MSVC_EWORK_FULL), MSVC_GRPC_RESOURCE_EXHAUSTED);
  cr_assert_eq(msvc_grpc_code_from_error(MSVC_ETOOLARGE), MSVC_GRPC_RESOURCE_EXHAUSTED);
  cr_assert_eq(msvc_grpc_code_from_error(MSVC_ECANCELED), MSVC_GRPC_CANCELLED);
  cr_assert_eq(msvc_grpc_code_from_error(MSVC_EJWT_EXPIRED), MSVC_GRPC_UNAUTHENTICATED);
  cr_assert_eq(msvc_grpc_code_from_error(-12345), MSVC_GRPC_UNKNOWN);
  cr_assert_eq(msvc_grpc_code_from_http(503), MSVC_GRPC_UNAVAILABLE);
  cr_assert_eq(msvc_grpc_code_from_http(404), MSVC_GRPC_UNIMPLEMENTED);
  cr_assert_eq(msvc_grpc_code_from_http(418), MSVC_GRPC_UNKNOWN);
}
