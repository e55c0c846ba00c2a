/*
 * llhttp glue with the checks llhttp 8.1.0 does not do itself.
 *
 * Every byte of a message head passes a small pre-scan before llhttp sees
 * it. The pre-scan insists on CRLF line endings, so a bare CR (a header line
 * ended by CR alone) or a bare LF is refused, and it refuses a line that
 * starts with SP or HT (obsolete line folding, the shape of CVE-2024-27982).
 * Because the pre-scan also finds the blank line that ends the head, llhttp
 * is fed the head exactly up to that line: both agree where the body starts.
 * The body goes to llhttp unscanned, and llhttp is paused at the end of each
 * message so that the next head is pre-scanned from its first byte.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/wire.h"

enum {
  SC_START,    /* before the start line; empty lines are skipped */
  SC_START_CR, /* CR of such an empty line */
  SC_LINE,     /* inside a line */
  SC_CR,       /* CR ending a line */
  SC_LSTART,   /* first byte of a header line */
  SC_END_CR,   /* CR of the blank line ending the head */
  SC_BODY      /* head complete: bytes go to llhttp unscanned */
};

void msvc__http_limits_default(msvc__http_limits_t *lim) {
  lim->max_head_bytes = 8192;
  lim->max_headers = 100;
  lim->max_body = 1024 * 1024;
}

/* uri-host [ ":" port ] (RFC 3986): a reg-name, an IPv4 address or a
 * bracketed IP literal, so only these characters; empty is allowed. Bit c
 * of the two words is set for each such ASCII character c: one look-up per
 * byte (a Host header is checked on every request). */
static const uint64_t host_chars[2] = {UINT64_C(0x2fff7ff200000000), UINT64_C(0x47fffffeaffffffe)};

static bool host_value_ok(const char *v) {
  for (; *v != '\0'; v++)
    if ((unsigned char)*v >= 128 || !(host_chars[(unsigned char)*v >> 6] >> (*v & 63) & 1))
      return false;
  return true;
}

static int fail(msvc__http_parser_t *p, int err, int status,
                const char *reason) {
  if (p->err == 0) {
    p->err = err;
    p->err_status = status;
    p->err_reason = reason;
  }
  return HPE_USER;
}

static msvc__http_parser_t *P(llhttp_t *llp) {
  return msvc__container_of(llp, msvc__http_parser_t, llp);
}

#define ONES UINT64_C(0x0101010101010101)

/* Whether one of the eight bytes of w is CR or LF: a byte is zero after
 * the xor exactly where it was one of them (the classic has-zero-byte
 * test, exact as to whether there is one). */
static inline uint64_t has_cr_lf(uint64_t w) {
  uint64_t cr = w ^ (ONES * '\r'), lf = w ^ (ONES * '\n');

  return (((cr - ONES) & ~cr) | ((lf - ONES) & ~lf)) & (ONES * 0x80);
}

/* The index of the first CR or LF in data[i..len), or len: most bytes of
 * a head lie inside a line, and are passed over eight at a time. */
static size_t line_end(const char *data, size_t i, size_t len) {
  uint64_t w, m;

  for (; i + 8 <= len; i += 8) {
    memcpy(&w, data + i, 8);
    if ((m = has_cr_lf(w)) != 0) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      /* the lowest flag is exact (a false one only follows a true one) */
      return i + (size_t)__builtin_ctzll(m) / 8;
#else
      break;
#endif
    }
  }
  while (i < len && data[i] != '\r' && data[i] != '\n')
    i++;
  return i;
}

/* Scans head bytes; returns how many belong to the head (all of them unless
 * the head ends inside this span), or sets p->err. */
static size_t scan_head(msvc__http_parser_t *p, const char *data, size_t len) {
  size_t i;
  uint8_t st = p->scan;

  for (i = 0; i < len; i++) {
    char c = data[i];
    switch (st) {
    case SC_START:
      st = c == '\r' ? SC_START_CR : SC_LINE;
      if (c == '\n' || c == ' ' || c == '\t')
        goto bad_line;
      break;
    case SC_START_CR:
      if (c != '\n')
        goto bare_cr;
      st = SC_START;
      break;
    case SC_LINE:
      if (c == '\r')
        st = SC_CR;
      else if (c == '\n')
        goto bad_line;
      else /* on to the byte before the line's end: the loop steps onto it */
        i = line_end(data, i + 1, len) - 1;
      break;
    case SC_CR:
      if (c != '\n')
        goto bare_cr;
      st = SC_LSTART;
      break;
    case SC_LSTART:
      if (c == ' ' || c == '\t') {
        fail(p, MSVC_EHTTP_PARSE, 400, "obsolete line folding");
        return i;
      }
      if (c == '\n')
        goto bad_line;
      st = c == '\r' ? SC_END_CR : SC_LINE;
      break;
    case SC_END_CR:
      if (c != '\n')
        goto bare_cr;
      p->scan = SC_BODY;
      p->head_bytes += i + 1;
      if (p->head_bytes > p->lim.max_head_bytes)
        fail(p, MSVC_EHTTP_HEADERS_TOO_LARGE, 431, "headers too large");
      return i + 1;
    default:
      return i;
    }
  }
  p->scan = st;
  p->head_bytes += len;
  if (p->head_bytes > p->lim.max_head_bytes)
    fail(p, MSVC_EHTTP_HEADERS_TOO_LARGE, 431, "headers too large");
  return len;

bare_cr:
  fail(p, MSVC_EHTTP_PARSE, 400, "CR not followed by LF");
  return i;
bad_line:
  fail(p, MSVC_EHTTP_PARSE, 400, "malformed line ending");
  return i;
}

static int on_message_begin(llhttp_t *llp) {
  msvc__http_parser_t *p = P(llp);
  msvc__http_head_t *h = p->spare;

  if (h != NULL) {
    p->spare = NULL;
  } else {
    h = msvc__calloc(1, sizeof(*h));
    if (h == NULL)
      return fail(p, MSVC_ENOMEM, 500, "out of memory");
    /* The pre-scan bounds the head; the NULs added per field stay below
     * this. */
    msvc__buf_init(&h->raw, p->lim.max_head_bytes + 2 * (size_t)p->lim.max_headers + 2);
  }
  p->head = h;
  p->field_st = 0;
  p->body_bytes = 0;
  return 0;
}

static int raw_failed(msvc__http_parser_t *p) {
  return p->head->raw.err == MSVC_ENOMEM
             ? fail(p, MSVC_ENOMEM, 500, "out of memory")
             : fail(p, MSVC_EHTTP_HEADERS_TOO_LARGE, 431, "headers too large");
}

static int append(msvc__http_parser_t *p, const char *at, size_t len) {
  if (p->head == NULL)
    return fail(p, MSVC_EHTTP_PARSE, 400, "unexpected data");
  msvc__buf_append(&p->head->raw, at, len);
  return p->head->raw.err == MSVC_OK ? 0 : raw_failed(p);
}

/* Ends a name or value with a NUL so it can be handed out as a C string.
 * Every caller has a head; a constant length lets the append inline. */
static int terminate(msvc__http_parser_t *p) {
  msvc__buf_append(&p->head->raw, "", 1);
  return p->head->raw.err == MSVC_OK ? 0 : raw_failed(p);
}

static int on_url(llhttp_t *llp, const char *at, size_t len) {
  return append(P(llp), at, len);
}

static int on_url_complete(llhttp_t *llp) {
  msvc__http_parser_t *p = P(llp);

  if (p->head == NULL)
    return fail(p, MSVC_EHTTP_PARSE, 400, "unexpected data");
  p->head->target = 0;
  p->head->target_len = (uint32_t)p->head->raw.len;
  return terminate(p);
}

static int on_status(llhttp_t *llp, const char *at, size_t len) {
  return on_url(llp, at, len);
}

static int new_field(msvc__http_parser_t *p) {
  msvc__http_head_t *h = p->head;

  if (p->in_body)
    return fail(p, MSVC_EHTTP_PARSE, 400, "trailer fields are not accepted");
  if (h == NULL)
    return fail(p, MSVC_EHTTP_PARSE, 400, "unexpected data");
  if (h->nfields >= p->lim.max_headers)
    return fail(p, MSVC_EHTTP_HEADERS_TOO_LARGE, 431, "too many header fields");
  if (h->nfields == h->cap) {
    uint32_t cap = h->cap == 0 ? 16 : h->cap * 2;
    msvc__http_field_t *f = msvc__realloc(h->fields, cap * sizeof(*f));
    if (f == NULL)
      return fail(p, MSVC_ENOMEM, 500, "out of memory");
    h->fields = f;
    h->cap = cap;
  }
  memset(&h->fields[h->nfields], 0, sizeof(h->fields[0]));
  h->fields[h->nfields].name = (uint32_t)h->raw.len;
  p->field_st = 1;
  return 0;
}

static int on_header_field(llhttp_t *llp, const char *at, size_t len) {
  msvc__http_parser_t *p = P(llp);
  int rc;

  if (p->field_st != 1 && (rc = new_field(p)) != 0)
    return rc;
  return append(p, at, len);
}

static int on_header_field_complete(llhttp_t *llp) {
  msvc__http_parser_t *p = P(llp);
  msvc__http_field_t *f;

  if (p->field_st != 1) {
    int rc = new_field(p);
    if (rc != 0)
      return rc;
  }
  f = &p->head->fields[p->head->nfields];
  f->name_len = (uint32_t)p->head->raw.len - f->name;
  p->field_st = 2;
  f->value = 0;
  if (terminate(p) != 0)
    return HPE_USER;
  f->value = (uint32_t)p->head->raw.len;
  return 0;
}

static int on_header_value(llhttp_t *llp, const char *at, size_t len) {
  msvc__http_parser_t *p = P(llp);

  if (p->field_st != 2 || p->head == NULL)
    return fail(p, MSVC_EHTTP_PARSE, 400, "header value without a name");
  return append(p, at, len);
}

static int on_header_value_complete(llhttp_t *llp) {
  msvc__http_parser_t *p = P(llp);
  msvc__http_head_t *h = p->head;
  msvc__http_field_t *f;

  if (p->field_st != 2 || h == NULL)
    return fail(p, MSVC_EHTTP_PARSE, 400, "header value without a name");
  f = &h->fields[h->nfields];
  while (h->raw.len > f->value &&
         (h->raw.data[h->raw.len - 1] == ' ' || h->raw.data[h->raw.len - 1] == '\t'))
    h->raw.len--;
  f->value_len = (uint32_t)h->raw.len - f->value;
  if (terminate(p) != 0)
    return HPE_USER;
  h->nfields++;
  p->field_st = 0;
  return 0;
}

/* llhttp already refuses most of these in strict mode; checking again here
 * keeps the guarantee independent of the llhttp version underneath. */
static int check_framing(msvc__http_parser_t *p, msvc__http_head_t *h) {
  const char *cl = NULL;
  bool te = false;
  uint32_t i, hosts = 0;

  /* The names' lengths first: a field of another length is none of these,
   * and is passed over without a byte compared. */
  h->fields_scanned = true;
  h->grpc_status = false;
  for (i = 0; i < h->nfields; i++) {
    const char *name = msvc__http_head_str(h, h->fields[i].name);
    const char *value = msvc__http_head_str(h, h->fields[i].value);
    switch (h->fields[i].name_len) {
    case sizeof("content-length") - 1:
      if (msvc__strcasecmp(name, "content-length") == 0) {
        if (cl != NULL && strcmp(cl, value) != 0)
          return fail(p, MSVC_EHTTP_PARSE, 400, "conflicting Content-Length");
        cl = value;
      }
      break;
    case sizeof("transfer-encoding") - 1:
      if (msvc__strcasecmp(name, "transfer-encoding") == 0)
        te = true;
      break;
    case sizeof("expect") - 1:
      if (msvc__strcasecmp(name, "expect") == 0 && msvc__strcasecmp(value, "100-continue") == 0)
        h->expect_continue = true;
      break;
    case sizeof("grpc-status") - 1: /* for msvc__http_response_grpc_status() */
      if (msvc__strcasecmp(name, "grpc-status") == 0)
        h->grpc_status = true;
      break;
    case sizeof("host") - 1:
      if (msvc__strcasecmp(name, "host") == 0) {
        hosts++;
        if (p->host_rule && !host_value_ok(value))
          return fail(p, MSVC_EHTTP_PARSE, 400, "invalid Host header");
      }
      break;
    default:
      break;
    }
  }
  if (p->host_rule && p->llp.type == HTTP_REQUEST) {
    if (hosts > 1)
      return fail(p, MSVC_EHTTP_PARSE, 400, "more than one Host header");
    if (hosts == 0 && h->http_minor >= 1)
      return fail(p, MSVC_EHTTP_PARSE, 400, "missing Host header");
  }
  if (cl != NULL && te)
    return fail(p, MSVC_EHTTP_PARSE, 400,
                "both Content-Length and Transfer-Encoding");
  /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding is faulty. */
  if (te && h->http_minor == 0)
    return fail(p, MSVC_EHTTP_PARSE, 400, "Transfer-Encoding in HTTP/1.0");
  return 0;
}

static int on_headers_complete(llhttp_t *llp) {
  msvc__http_parser_t *p = P(llp);
  msvc__http_head_t *h = p->head;
  int rc;

  if (h == NULL)
    return fail(p, MSVC_EHTTP_PARSE, 400, "unexpected data");
  h->method = llp->method;
  h->status = llp->status_code;
  h->http_major = llp->http_major;
  h->http_minor = llp->http_minor;
  h->keep_alive = llhttp_should_keep_alive(llp) != 0;
  h->chunked = (llp->flags & F_CHUNKED) != 0;
  h->has_length = (llp->flags & F_CONTENT_LENGTH) != 0;
  h->content_length = h->has_length ? llp->content_length : 0;
  /* llhttp takes a request line without a version as HTTP/0.9. */
  if (h->http_major != 1)
    return fail(p, MSVC_EHTTP_PARSE, 400, "unsupported HTTP version");
  if (check_framing(p, h) != 0)
    return HPE_USER;
  /* A response to HEAD announces the length of a body it does not send. */
  if (h->has_length && !p->skip_body && p->lim.max_body != 0 &&
      h->content_length > p->lim.max_body)
    return fail(p, MSVC_EHTTP_BODY_TOO_LARGE, 413, "body too large");
  p->head = NULL;
  p->in_body = true;
  rc = p->cbs->on_head(p->ud, h);
  if (rc != 0)
    return fail(p, rc, 500, "rejected by the receiver");
  /* 1 is llhttp's "this message has no body", meant for HEAD responses. */
  return p->skip_body ? 1 : 0;
}

static int on_body(llhttp_t *llp, const char *at, size_t len) {
  msvc__http_parser_t *p = P(llp);
  int rc;

  p->body_bytes += len;
  if (p->lim.max_body != 0 && p->body_bytes > p->lim.max_body)
    return fail(p, MSVC_EHTTP_BODY_TOO_LARGE, 413, "body too large");
  rc = p->cbs->on_body(p->ud, at, len);
  if (rc != 0)
    return fail(p, rc, rc == MSVC_ENOMEM ? 500 : 400, "body rejected");
  return 0;
}

static int on_message_complete(llhttp_t *llp) {
  msvc__http_parser_t *p = P(llp);
  int rc;

  p->in_body = false;
  p->scan = SC_START;
  p->head_bytes = 0;
  rc = p->cbs->on_done(p->ud);
  if (rc != 0)
    return fail(p, rc, 500, "rejected by the receiver");
  /* Stop after every message: the next head must be pre-scanned first. */
  return HPE_PAUSED;
}

/* Chunk extensions have no use here and were the vector of several llhttp
 * smuggling and resource bugs; refuse them outright. */
static int on_chunk_ext(llhttp_t *llp, const char *at, size_t len) {
  (void)at;
  (void)len;
  return fail(P(llp), MSVC_EHTTP_PARSE, 400, "chunk extensions are not accepted");
}

/* After the last chunk, llhttp 8.1.0 accepts a bare LF or a bare CR where
 * the final CRLF belongs. Stop there so the trailer section is pre-scanned
 * like a head. */
static int on_chunk_header(llhttp_t *llp) {
  msvc__http_parser_t *p = P(llp);

  if (llp->content_length != 0)
    return 0;
  p->chunk_pause = true;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_chunk_header = on_chunk_header,
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_chunk_extension_name = on_chunk_ext,
    .on_chunk_extension_value = on_chunk_ext,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_url_complete = on_url_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
};

void msvc__http_parser_init(msvc__http_parser_t *p, llhttp_type_t type,
                            const msvc__http_limits_t *lim,
                            const msvc__http_parser_cbs_t *cbs, void *ud) {
  memset(p, 0, sizeof(*p));
  llhttp_init(&p->llp, type, &settings);
  p->cbs = cbs;
  p->ud = ud;
  if (lim != NULL)
    p->lim = *lim;
  else
    msvc__http_limits_default(&p->lim);
  p->scan = SC_START;
}

void msvc__http_parser_free(msvc__http_parser_t *p) {
  msvc__http_head_free(p->head);
  msvc__http_head_free(p->spare);
  p->head = NULL;
  p->spare = NULL;
}

msvc__http_head_t *msvc__http_parser_take_spare(msvc__http_parser_t *p) {
  msvc__http_head_t *h = p->spare;

  p->spare = NULL;
  return h;
}

void msvc__http_parser_give_spare(msvc__http_parser_t *p, msvc__http_head_t *h) {
  if (p->spare != NULL)
    msvc__http_head_free(h);
  else
    p->spare = h;
}

void msvc__http_parser_recycle(msvc__http_parser_t *p, msvc__http_head_t *h) {
  msvc__buf_t raw;
  msvc__http_field_t *fields;
  uint32_t cap;

  if (h == NULL)
    return;
  /* Unusually large heads are not kept: idle connections stay small. */
  if (p->spare != NULL || h->raw.cap > 2048 || h->cap > 32) {
    msvc__http_head_free(h);
    return;
  }
  raw = h->raw;
  fields = h->fields;
  cap = h->cap;
  memset(h, 0, sizeof(*h));
  h->raw = raw;
  h->raw.len = 0;
  h->raw.err = MSVC_OK;
  h->fields = fields;
  h->cap = cap;
  p->spare = h;
}

static int llhttp_failed(msvc__http_parser_t *p, llhttp_errno_t rc) {
  if (p->err == 0) {
    const char *reason = llhttp_get_error_reason(&p->llp);
    if (rc == HPE_PAUSED_UPGRADE)
      fail(p, MSVC_EHTTP_PARSE, 0, "protocol upgrade is not supported");
    else
      fail(p, MSVC_EHTTP_PARSE, 400, reason != NULL ? reason : llhttp_errno_name(rc));
  }
  return p->err;
}

int msvc__http_parser_feed(msvc__http_parser_t *p, const char *data,
                           size_t len, size_t *used) {
  size_t pos = 0;

  *used = 0;
  if (p->err != 0)
    return p->err;
  if (p->paused) {
    llhttp_resume(&p->llp);
    p->paused = false;
  }
  while (pos < len) {
    size_t n = len - pos;
    llhttp_errno_t rc;

    if (p->scan != SC_BODY) {
      n = scan_head(p, data + pos, n);
      if (p->err != 0) {
        *used = pos + n;
        return p->err;
      }
    }
    rc = llhttp_execute(&p->llp, data + pos, n);
    if (rc == HPE_PAUSED) {
      const char *at = llhttp_get_error_pos(&p->llp);
      pos = (size_t)(at - data);
      if (p->chunk_pause) {
        p->chunk_pause = false;
        llhttp_resume(&p->llp);
        p->scan = SC_LSTART;
        p->head_bytes = 0;
        continue;
      }
      p->paused = true;
      *used = pos;
      return MSVC__HTTP_MESSAGE_DONE;
    }
    if (rc != HPE_OK || p->err != 0) {
      *used = pos;
      return llhttp_failed(p, rc);
    }
    pos += n;
  }
  *used = len;
  return 0;
}

int msvc__http_parser_finish(msvc__http_parser_t *p) {
  llhttp_errno_t rc;

  if (p->err != 0)
    return p->err;
  if (p->paused) {
    llhttp_resume(&p->llp);
    p->paused = false;
  }
  rc = llhttp_finish(&p->llp);
  if (rc == HPE_PAUSED) {
    p->paused = true;
    return MSVC__HTTP_MESSAGE_DONE;
  }
  if (rc != HPE_OK)
    return llhttp_failed(p, rc);
  return 0;
}

bool msvc__http_parser_busy(const msvc__http_parser_t *p) {
  return p->head != NULL || p->in_body || p->scan != SC_START;
}

void msvc__http_head_free(msvc__http_head_t *h) {
  if (h == NULL)
    return;
  msvc__buf_free(&h->raw);
  msvc__free(h->fields);
  msvc__free(h);
}

const char *msvc__http_head_get(const msvc__http_head_t *h, const char *name) {
  size_t n = strlen(name);
  uint32_t i;

  /* the lengths first: most names differ there, without a byte compared */
  for (i = 0; i < h->nfields; i++)
    if (h->fields[i].name_len == n &&
        msvc__strncasecmp(h->raw.data + h->fields[i].name, name, n) == 0)
      return h->raw.data + h->fields[i].value;
  return NULL;
}

const char *msvc__http_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

void msvc__http_date(int64_t unix_secs, char out[32]) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t t = (time_t)unix_secs;
  struct tm tm;

  char tmp[64];

  gmtime_r(&t, &tm);
  /* Formatted into a wider buffer: without optimisation gcc cannot see that
   * the fields are bounded and warns about truncation. */
  snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d GMT",
           days[tm.tm_wday % 7], tm.tm_mday % 100, months[tm.tm_mon % 12],
           (tm.tm_year + 1900) % 10000, tm.tm_hour % 100, tm.tm_min % 100,
           tm.tm_sec % 100);
  memcpy(out, tmp, 29);
  out[29] = '\0';
}
