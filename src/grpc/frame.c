/*
 * gRPC's length-prefixed messages and their gzip compression.
 *
 * The reader never trusts the declared length beyond the limit and never
 * inflates past it: a 5-byte prefix announcing 4 GiB costs nothing, and a
 * small gzip that would expand to gigabytes stops at max_recv + 1 bytes.
 */
#include <string.h>

#include <zlib.h>

#include "grpc-internal.h"

int msvc__grpc_enc_parse(const char *s, size_t len) {
  if (len == 8 && memcmp(s, "identity", 8) == 0)
    return MSVC__GRPC_ENC_IDENTITY;
  if (len == 4 && memcmp(s, "gzip", 4) == 0)
    return MSVC__GRPC_ENC_GZIP;
  return -1;
}

const char *msvc__grpc_enc_name(msvc__grpc_enc_t enc) {
  return enc == MSVC__GRPC_ENC_GZIP ? "gzip" : "identity";
}

static void put_prefix(uint8_t *p, bool compressed, size_t len) {
  p[0] = compressed ? 1 : 0;
  p[1] = (uint8_t)(len >> 24);
  p[2] = (uint8_t)(len >> 16);
  p[3] = (uint8_t)(len >> 8);
  p[4] = (uint8_t)len;
}

/* Compresses msg straight after a prefix already reserved in out. */
static int gzip_into(msvc__buf_t *out, const void *msg, size_t len, size_t *clen) {
  z_stream z;
  uLong bound;
  int r;

  memset(&z, 0, sizeof(z));
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return MSVC_ENOMEM;
  bound = deflateBound(&z, (uLong)len);
  if (msvc__buf_reserve(out, bound) != MSVC_OK) {
    deflateEnd(&z);
    return out->err;
  }
  z.next_in = (Bytef *)(uintptr_t)msg;
  z.avail_in = (uInt)len;
  z.next_out = (Bytef *)out->data + out->len;
  z.avail_out = (uInt)bound;
  r = deflate(&z, Z_FINISH);
  *clen = z.total_out;
  deflateEnd(&z);
  return r == Z_STREAM_END ? MSVC_OK : MSVC_ENOMEM;
}

int msvc__grpc_frame_encode(msvc__buf_t *out, const void *msg, size_t len,
                            msvc__grpc_enc_t enc, size_t max_send) {
  size_t at, clen = 0;
  int r;

  if (max_send != 0 && len > max_send)
    return MSVC_ETOOLARGE;
  if (len > UINT32_MAX)
    return MSVC_ETOOLARGE;
  if (msvc__buf_reserve(out, MSVC__GRPC_PREFIX + len) != MSVC_OK)
    return out->err;
  at = out->len;
  out->len += MSVC__GRPC_PREFIX;
  /* zlib's interface counts in uInt; very large messages go uncompressed. */
  if (enc == MSVC__GRPC_ENC_GZIP && len > 0 && len < (1u << 30)) {
    r = gzip_into(out, msg, len, &clen);
    if (r != MSVC_OK) {
      out->len = at;
      return r;
    }
    if (clen < len) {
      put_prefix((uint8_t *)out->data + at, true, clen);
      out->len += clen;
      out->data[out->len] = '\0';
      return MSVC_OK;
    }
  }
  put_prefix((uint8_t *)out->data + at, false, len);
  if (len > 0)
    memcpy(out->data + out->len, msg, len);
  out->len += len;
  out->data[out->len] = '\0';
  return MSVC_OK;
}

int msvc__grpc_gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **out,
                      size_t *out_len) {
  z_stream z;
  uint8_t *buf;
  size_t cap = len * 4 + 64;
  int r;

  *out = NULL;
  *out_len = 0;
  if (len > UINT32_MAX)
    return MSVC_ETOOLARGE;
  if (cap > max + 1)
    cap = max + 1;
  buf = msvc__malloc(cap > 0 ? cap : 1);
  if (buf == NULL)
    return MSVC_ENOMEM;
  memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, 15 + 16) != Z_OK) {
    msvc__free(buf);
    return MSVC_ENOMEM;
  }
  z.next_in = (Bytef *)(uintptr_t)in;
  z.avail_in = (uInt)len;
  for (;;) {
    z.next_out = buf + z.total_out;
    z.avail_out = (uInt)(cap - z.total_out);
    r = inflate(&z, Z_NO_FLUSH);
    if (r == Z_STREAM_END)
      break;
    if (r != Z_OK && r != Z_BUF_ERROR) {
      r = r == Z_MEM_ERROR ? MSVC_ENOMEM : MSVC_EPROTO;
      goto fail;
    }
    if (z.avail_out != 0) { /* input ran out before the end of the member */
      r = MSVC_EPROTO;
      goto fail;
    }
    if (cap > max) { /* filled max + 1 bytes: over the limit */
      r = MSVC_ETOOLARGE;
      goto fail;
    }
    {
      size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      uint8_t *nb = msvc__realloc(buf, ncap);

      if (nb == NULL) {
        r = MSVC_ENOMEM;
        goto fail;
      }
      buf = nb;
      cap = ncap;
    }
  }
  if (z.total_out > max) {
    r = MSVC_ETOOLARGE;
    goto fail;
  }
  /* Bytes after the gzip member are not part of any message. */
  if (z.avail_in != 0) {
    r = MSVC_EPROTO;
    goto fail;
  }
  *out = buf;
  *out_len = z.total_out;
  inflateEnd(&z);
  return MSVC_OK;
fail:
  inflateEnd(&z);
  msvc__free(buf);
  return r;
}

void msvc__grpc_reader_init(msvc__grpc_reader_t *r, size_t max_recv, msvc__grpc_enc_t enc) {
  memset(r, 0, sizeof(*r));
  r->max_recv = max_recv;
  r->enc = enc;
}

void msvc__grpc_reader_free(msvc__grpc_reader_t *r) {
  msvc__free(r->body);
  msvc__free(r->out);
  r->body = NULL;
  r->out = NULL;
  r->hdr_have = 0;
  r->body_have = 0;
  r->body_need = 0;
}

bool msvc__grpc_reader_idle(const msvc__grpc_reader_t *r) {
  return r->hdr_have == 0;
}

/* A whole message is in r->body: hand it out, inflated if flagged. */
static int deliver(msvc__grpc_reader_t *r, const uint8_t **msg, size_t *msg_len) {
  bool compressed = r->hdr[0] == 1;
  int rc;

  msvc__free(r->out);
  r->out = NULL;
  if (compressed) {
    size_t n;

    rc = msvc__grpc_gunzip(r->body, r->body_need, r->max_recv, &r->out, &n);
    msvc__free(r->body);
    r->body = NULL;
    if (rc != MSVC_OK)
      return rc;
    *msg_len = n;
  } else {
    r->out = r->body; /* may be NULL for an empty message */
    r->body = NULL;
    *msg_len = r->body_need;
  }
  *msg = r->out != NULL ? r->out : (const uint8_t *)"";
  r->hdr_have = 0;
  r->body_have = 0;
  r->body_need = 0;
  return 1;
}

/* The prefix is complete: check it before keeping any of the body. */
static int check_prefix(msvc__grpc_reader_t *r) {
  uint32_t n = ((uint32_t)r->hdr[1] << 24) | ((uint32_t)r->hdr[2] << 16) |
               ((uint32_t)r->hdr[3] << 8) | r->hdr[4];

  if (r->hdr[0] > 1)
    return MSVC_EPROTO;
  if (r->hdr[0] == 1 && r->enc == MSVC__GRPC_ENC_IDENTITY)
    return MSVC_EPROTO;
  /* A compressed message is at most as long as what it expands to, give or
   * take gzip's framing; one bigger than the limit is refused either way. */
  if ((size_t)n > r->max_recv + (r->hdr[0] == 1 ? 64 : 0))
    return MSVC_ETOOLARGE;
  r->body_need = n;
  r->body_have = 0;
  if (n > 0) {
    r->body = msvc__malloc(n);
    if (r->body == NULL)
      return MSVC_ENOMEM;
  }
  return MSVC_OK;
}

int msvc__grpc_reader_feed(msvc__grpc_reader_t *r, const uint8_t *data, size_t len,
                           size_t *used, const uint8_t **msg, size_t *msg_len) {
  size_t off = 0;
  int rc;

  *used = 0;
  for (;;) {
    if (r->hdr_have < MSVC__GRPC_PREFIX) {
      size_t take = MSVC__GRPC_PREFIX - r->hdr_have;

      if (take > len - off)
        take = len - off;
      memcpy(r->hdr + r->hdr_have, data + off, take);
      r->hdr_have += take;
      off += take;
      *used = off;
      if (r->hdr_have < MSVC__GRPC_PREFIX)
        return 0;
      rc = check_prefix(r);
      if (rc != MSVC_OK)
        return rc;
    }
    {
      size_t take = r->body_need - r->body_have;

      if (take > len - off)
        take = len - off;
      if (take > 0)
        memcpy(r->body + r->body_have, data + off, take);
      r->body_have += take;
      off += take;
      *used = off;
      if (r->body_have == r->body_need)
        return deliver(r, msg, msg_len);
      return 0;
    }
  }
}
