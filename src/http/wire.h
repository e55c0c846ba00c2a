/*
 * HTTP/1.1 message parsing shared by the server and the client: the llhttp
 * glue, header storage, size limits and the hardening checks that llhttp
 * 8.1.0 lacks. Nothing here knows about sockets or routing, so a client
 * connection can parse responses with the same code and the same limits.
 */
#ifndef MSVC_HTTP_WIRE_H
#define MSVC_HTTP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "msvc-internal.h"

/* Size limits of one message. A zero field means "no limit" only where said. */
typedef struct msvc__http_limits_s {
  size_t max_head_bytes; /* start line + header lines, CRLFs included */
  uint32_t max_headers;  /* header fields */
  uint64_t max_body;     /* decoded body bytes */
} msvc__http_limits_t;

/* One header field; offsets into the head's raw buffer, where name and value
 * are each NUL-terminated so they can be handed out as C strings. */
typedef struct msvc__http_field_s {
  uint32_t name;
  uint32_t name_len;
  uint32_t value;
  uint32_t value_len;
} msvc__http_field_t;

/* The start line and headers of one message, copied out of the read buffers
 * (llhttp hands out spans into buffers that are reused). */
typedef struct msvc__http_head_s {
  msvc__buf_t raw; /* target (or reason), then name\0value\0 pairs */
  msvc__http_field_t *fields;
  uint32_t nfields;
  uint32_t cap;
  uint32_t target;     /* offset of the request target / reason phrase */
  uint32_t target_len;
  int method;          /* llhttp_method_t, requests only */
  int status;          /* responses only */
  uint8_t http_major;
  uint8_t http_minor;
  bool keep_alive;
  bool chunked;
  bool has_length;
  bool expect_continue;
  /* The fields were looked over by the HTTP/1 parser (fields_scanned),
   * which noted whether one is named grpc-status. */
  bool fields_scanned;
  bool grpc_status;
  uint64_t content_length;
} msvc__http_head_t;

/* What the user of a parser is told about. Each returns 0 to go on or a
 * negative MSVC_E* code to stop parsing with that error. on_head takes
 * ownership of the head (free it with msvc__http_head_free). */
typedef struct msvc__http_parser_cbs_s {
  int (*on_head)(void *ud, msvc__http_head_t *head);
  int (*on_body)(void *ud, const char *data, size_t len);
  int (*on_done)(void *ud);
} msvc__http_parser_cbs_t;

typedef struct msvc__http_parser_s {
  llhttp_t llp;
  const msvc__http_parser_cbs_t *cbs;
  void *ud;
  msvc__http_limits_t lim;
  msvc__http_head_t *head; /* being filled; NULL between messages */
  msvc__http_head_t *spare; /* a used head kept for the next message */
  size_t head_bytes;
  uint64_t body_bytes;
  uint8_t scan;      /* state of the pre-scan of the head, see wire.c */
  uint8_t field_st;  /* 0 none, 1 in name, 2 in value */
  bool in_body;      /* headers complete, message not yet */
  bool paused;
  bool chunk_pause; /* stopped after the last chunk's size line */
  bool skip_body;   /* responses: the request was HEAD, no body follows */
  bool host_rule;   /* requests, set by a server: exactly one valid Host in
                       HTTP/1.1, at most one in HTTP/1.0 (RFC 9112 3.2) */
  int err;           /* first error (negative MSVC_E* code) or 0 */
  int err_status;    /* the HTTP status that error deserves */
  const char *err_reason;
} msvc__http_parser_t;

/* Returned by msvc__http_parser_feed when a whole message was parsed. */
#define MSVC__HTTP_MESSAGE_DONE 1

void msvc__http_limits_default(msvc__http_limits_t *lim);
/* Takes the parser's spare head (NULL if none), for a connection going idle;
 * msvc__http_parser_give() hands one back before parsing resumes. */
msvc__http_head_t *msvc__http_parser_take_spare(msvc__http_parser_t *p);
void msvc__http_parser_give_spare(msvc__http_parser_t *p, msvc__http_head_t *h);

/* type is HTTP_REQUEST or HTTP_RESPONSE. */
void msvc__http_parser_init(msvc__http_parser_t *p, llhttp_type_t type,
                            const msvc__http_limits_t *lim,
                            const msvc__http_parser_cbs_t *cbs, void *ud);
void msvc__http_parser_free(msvc__http_parser_t *p);

/* Feeds bytes. Returns 0 when all of them were consumed, MSVC__HTTP_MESSAGE_
 * DONE when a message ended after *used bytes (call again with the rest to
 * parse the next one), or a negative code: see p->err_status (400, 413, 431)
 * and p->err_reason. After an error the parser accepts nothing more. */
int msvc__http_parser_feed(msvc__http_parser_t *p, const char *data,
                           size_t len, size_t *used);
/* Tells the parser the peer closed; ends a body delimited by EOF. */
int msvc__http_parser_finish(msvc__http_parser_t *p);
/* True while part of a message has been seen but not all of it. */
bool msvc__http_parser_busy(const msvc__http_parser_t *p);

void msvc__http_head_free(msvc__http_head_t *h);
/* Gives a head back once its message is done, so that the next message of
 * the same connection reuses its memory instead of allocating. */
void msvc__http_parser_recycle(msvc__http_parser_t *p, msvc__http_head_t *h);
/* First value of a header (case-insensitive), or NULL. */
const char *msvc__http_head_get(const msvc__http_head_t *h, const char *name);
static inline const char *msvc__http_head_str(const msvc__http_head_t *h,
                                              uint32_t off) {
  return h->raw.data + off;
}

/* A status line's standard reason phrase ("Not Found"); "Unknown" if none. */
const char *msvc__http_reason(int status);
/* Appends an RFC 7231 IMF-fixdate for the given time to out (29 chars). */
void msvc__http_date(int64_t unix_secs, char out[32]);

#endif /* MSVC_HTTP_WIRE_H */
