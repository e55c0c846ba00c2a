/*
 * Pure parts of the context middlewares: request id validation, W3C
 * traceparent parsing and formatting (the trace block's, in the shape the
 * middleware API has always had), id generation. Everything here takes
 * untrusted header bytes, so every read is bounded by the given length and
 * nothing assumes NUL termination.
 */
#include <msvc/middleware.h>
#include <msvc/trace.h>

#include "msvc-internal.h"
#include "service/mw-internal.h"
#include "trace/trace-internal.h"

bool msvc_mw_request_id_valid(const char *s, size_t len) {
  size_t i;

  if (s == NULL || len == 0 || len > MSVC_MW_REQUEST_ID_MAX)
    return false;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x21 || c > 0x7e)
      return false;
  }
  return true;
}

int msvc_mw_traceparent_parse(const char *s, size_t len, msvc_mw_trace_t *out) {
  msvc_trace_ctx_t c;

  if (out == NULL || msvc_trace_traceparent_parse(s, len, &c) != MSVC_OK)
    return MSVC_EINVAL;
  memcpy(out->trace_id, c.trace_id, sizeof(out->trace_id));
  memcpy(out->parent_id, c.span_id, sizeof(out->parent_id));
  out->span_id[0] = '\0';
  out->flags = c.flags;
  return MSVC_OK;
}

int msvc_mw_trace_child(const msvc_mw_trace_t *parent, msvc_mw_trace_t *out) {
  msvc_mw_trace_t t;

  if (out == NULL)
    return MSVC_EINVAL;
  memset(&t, 0, sizeof(t));
  if (parent != NULL && msvc__trace_hex_ok(parent->trace_id, 32, true) &&
      parent->trace_id[32] == '\0') {
    memcpy(t.trace_id, parent->trace_id, sizeof(t.trace_id));
    /* The caller's span is this hop's parent. When parent is a context that
     * already has its own span (a child of a child), that span is the
     * parent instead. */
    if (parent->span_id[0] != '\0')
      memcpy(t.parent_id, parent->span_id, sizeof(t.parent_id));
    else
      memcpy(t.parent_id, parent->parent_id, sizeof(t.parent_id));
    t.parent_id[16] = '\0';
    t.flags = parent->flags;
  } else {
    msvc__trace_random_id(t.trace_id, 32);
  }
  msvc__trace_random_id(t.span_id, 16);
  *out = t;
  return MSVC_OK;
}

int msvc_mw_traceparent_format(const msvc_mw_trace_t *t, char *out, size_t cap) {
  msvc_trace_ctx_t c;

  if (t == NULL)
    return MSVC_EINVAL;
  memcpy(c.trace_id, t->trace_id, sizeof(c.trace_id));
  memcpy(c.span_id, t->span_id, sizeof(c.span_id));
  c.flags = t->flags;
  c.remote = false;
  return msvc_trace_traceparent_format(&c, out, cap);
}
