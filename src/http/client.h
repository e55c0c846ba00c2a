/* Internals of the HTTP client, shared by client.c (calls) and pool.c
 * (endpoints and connections). */
#ifndef MSVC_HTTP_CLIENT_INTERNAL_H
#define MSVC_HTTP_CLIENT_INTERNAL_H

#include <msvc/http_client.h>
#include <msvc/tls.h>

#include "http/client_factory.h"
#include "http/transport.h"
#include "http/wire.h"
#include "msvc-internal.h"

typedef struct msvc__endpoint_s msvc__endpoint_t;


typedef struct msvc__cconn_s msvc__cconn_t;

struct msvc__endpoint_s {
  msvc__queue_t node; /* in the client's list */
  msvc_http_client_t *c;
  char *host;         /* without brackets */
  int port;
  bool tls;           /* https: part of the pool key beside host and port */
  char key[80];       /* "host:port", "[v6]:port" */
  msvc__queue_t idle; /* connections waiting for a request */
  msvc__queue_t waiting; /* calls waiting for a connection */
  uint32_t nconns;    /* open or opening, idle or busy */
  uint32_t nidle;
  uint32_t nwaiting;
  msvc__queue_t h2conns; /* HTTP/2 connections (h2_client.c) */
  uint32_t nh2;
};

struct msvc__cconn_s {
  msvc__queue_t node; /* in ep->idle while idle */
  msvc__endpoint_t *ep;
  msvc__transport_t *tr;
  uv_tcp_t *tcp;
  uv_connect_t creq;
  uv_getaddrinfo_t gai;
  uv_timer_t idle_timer;
  msvc__http_parser_t parser;
  msvc_http_call_t *call; /* the request on this connection, or NULL */
  uint32_t uses;          /* responses completed on it */
  uint8_t handles;        /* libuv handles still open */
  bool resolving;         /* a getaddrinfo request is outstanding */
  bool connected;
  bool closing;
  bool idle;
  bool informational; /* a 1xx response is being skipped */
  bool msg_done;      /* the call's response is complete */
  bool writing;       /* a write is in flight */
};

struct msvc_http_response_s {
  msvc__http_head_t *head;
  msvc__http_head_t *trailers; /* HTTP/2 only; NULL when none came */
  msvc__buf_t body;
};

enum {
  ST_QUEUED = 1,
  ST_CONNECTING,
  ST_SENDING,
  ST_WAITING,   /* request sent, no response byte yet */
  ST_RECEIVING,
  ST_BACKOFF,   /* waiting to retry */
  ST_FINISHING, /* completion deferred to the loop */
  ST_DONE
};

enum { SEND_HEAD, SEND_BODY, SEND_DONE };

struct msvc_http_call_s {
  msvc__queue_t node;  /* in the client's list of live calls */
  msvc__queue_t wnode; /* in ep->waiting while queued */
  msvc_http_client_t *c;
  msvc__endpoint_t *ep;
  msvc__cconn_t *conn;
  uv_timer_t timer; /* timeouts, backoff and deferred completion */
  char *method;
  msvc__buf_t out; /* the serialized request */
  char chunk_head[24]; /* size line of the body chunk being written */
  msvc_http_timeouts_t to;
  msvc_retry_t *retry;
  msvc_http_chunk_fn on_chunk;
  msvc_http_body_source_fn body_source;
  msvc_http_response_fn on_done;
  void *data;
  struct msvc_http_response_s res;
  uint64_t max_body;   /* buffered body cap */
  uint64_t dl_total;   /* loop time deadlines in ms, 0 when unset */
  uint64_t dl_phase;
  uint64_t attempt_t0; /* uv_hrtime at the attempt's start */
  uint32_t attempt;
  int state;
  int send_phase; /* SEND_* */
  int result; /* outcome handed to on_done */
  bool retryable; /* may run twice: marked, or an Idempotency-Key */
  bool sent;      /* a byte of the request was handed over in this attempt */
  bool is_head;
  bool got_bytes;
  bool streamed; /* body bytes went to on_chunk: no retry any more */
  bool reused;
  bool cancelled;
  bool h2;        /* over HTTP/2 */
  int32_t h2id;   /* its stream while an attempt is on one */
  struct msvc__h2cc_s *h2c;     /* and that stream's connection */
  msvc__buf_t h2body; /* request body copy (HTTP/2 sends it as DATA) */
  size_t h2off;
  uint8_t h2refused; /* streams of this attempt the server refused */
  /* A streamed body (body_source) over HTTP/2: the source's current piece,
   * what of it went into DATA frames, and the source's error, if any. */
  const char *h2piece;
  size_t h2piece_len, h2piece_off;
  int h2src_err;
  bool h2src_used; /* the source was called: the body cannot be sent again */
  msvc__http_head_t *h2req; /* request method, target and fields */
};

struct msvc_http_client_s {
  uv_loop_t *loop;
  msvc_http_client_opts_t o;
  msvc__queue_t endpoints;
  msvc__queue_t calls;
  uv_timer_t closer; /* only closed, to report the end asynchronously */
  uint32_t nconns;   /* connection objects not yet freed */
  uint32_t ncalls;   /* call objects not yet freed */
  uint32_t in_api;   /* inside a public call: completions are deferred */
  bool closing;
  bool close_started;
  msvc_http_client_close_cb close_cb;
  void *close_data;
  msvc__transport_factory_fn factory; /* NULL: TCP */
  void *factory_data;
  struct msvc_tls_config_s *tls; /* for https endpoints; NULL until needed */
};

/* pool.c */
msvc__endpoint_t *msvc__endpoint_get(msvc_http_client_t *c, const char *host,
                                     int port, bool tls, bool create);
void msvc__endpoint_free(msvc__endpoint_t *ep);
bool msvc__endpoint_full(const msvc__endpoint_t *ep);
/* Gives the call a connection: an idle one (unless fresh), a new one, or a
 * place in the queue. Failures end the attempt through the call path. */
void msvc__pool_dispatch(msvc_http_call_t *call, bool fresh);
/* Detaches a connection from its finished call; keeps it when keep. */
void msvc__pool_release(msvc__cconn_t *conn, bool keep);
void msvc__cconn_close(msvc__cconn_t *conn);
void msvc__pool_close_idle(msvc__endpoint_t *ep);

/* client.c */
void msvc__call_arm(msvc_http_call_t *call);
void msvc__call_send(msvc_http_call_t *call, msvc__cconn_t *conn);
/* Ends the current attempt with err (0: the response is complete). */
void msvc__call_attempt_end(msvc_http_call_t *call, int err, bool keep_conn);
/* The pooled connection died before any response byte: send the request
 * again on a fresh connection when it may go twice or never left. */
void msvc__call_stale(msvc_http_call_t *call);
void msvc__client_maybe_closed(msvc_http_client_t *c);

#endif /* MSVC_HTTP_CLIENT_INTERNAL_H */
