/* Internals of the HTTP server, shared by its source files. */
#ifndef MSVC_HTTP_SERVER_H
#define MSVC_HTTP_SERVER_H

#include <msvc/http.h>
#include <msvc/tls.h>

#include "http/attach.h"
#include "http/transport.h"
#include "http/wire.h"
#include "msvc-internal.h"

#define MSVC__HTTP_MAX_SEGS 32
#define MSVC__HTTP_MAX_PARAMS 8

enum { SEG_LIT, SEG_PARAM, SEG_WILD };

typedef struct msvc__seg_s {
  const char *s; /* into route->pattern; for params the name without ':' */
  uint16_t len;
  uint8_t kind;
} msvc__seg_t;

typedef struct msvc__route_s {
  char *method; /* "*" matches any */
  char *pattern;
  msvc__seg_t segs[MSVC__HTTP_MAX_SEGS];
  uint16_t nsegs;
  msvc_http_handler_fn handler;
  void *data;
  msvc_http_route_opts_t opts;
} msvc__route_t;

typedef struct msvc__router_s {
  msvc__route_t **routes;
  size_t n;
  size_t cap;
} msvc__router_t;

/* A matched parameter: its route segment and its span in the raw path. */
typedef struct msvc__param_s {
  const msvc__seg_t *seg;
  uint32_t off;
  uint32_t len;
} msvc__param_t;

typedef struct msvc__match_s {
  const msvc__route_t *route;
  msvc__param_t params[MSVC__HTTP_MAX_PARAMS];
  uint16_t nparams;
} msvc__match_t;

int msvc__router_add(msvc__router_t *r, const char *method, const char *pattern,
                     msvc_http_handler_fn handler, void *data,
                     const msvc_http_route_opts_t *opts);
void msvc__router_free(msvc__router_t *r);
/* Returns 200 with *m filled, 404, or 405 with the allowed methods
 * (comma-separated) appended to allow when it is not NULL. */
int msvc__router_match(const msvc__router_t *r, const char *method,
                       const char *path, size_t len, msvc__match_t *m,
                       msvc__buf_t *allow);

typedef struct msvc__conn_s msvc__conn_t;

typedef struct msvc__alloc_s {
  struct msvc__alloc_s *next;
  const char *key; /* attributes only */
  void *value;
  void (*free_fn)(void *);
} msvc__alloc_t;

#define MSVC__REQ_INLINE_ALLOCS 4
#define MSVC__REQ_SCRATCH 192
/* Storage of hdrs kept for the next request up to this size. */
#define MSVC__REQ_KEEP_HDRS 1024

struct msvc_http_res_s {
  int status;
};

enum { RES_NEW, RES_STREAMING, RES_DONE };

struct msvc_http_req_s {
  msvc__queue_t node; /* in the connection's pipeline */
  msvc__conn_t *conn; /* NULL once the client is gone */
  msvc_http_server_t *srv;
  msvc__http_head_t *head; /* NULL for a request that could not be parsed */
  msvc__buf_t body;
  msvc__match_t match;
  msvc__alloc_t *allocs; /* decoded strings and attributes */
  msvc_http_cancel_fn cancel_fn;
  void *cancel_data;
  struct msvc_http_res_s res;
  msvc__buf_t hdrs; /* "Name: value\r\n" lines added by the application */
  msvc__buf_t trailers; /* the same for msvc_http_res_trailer() */
  struct msvc__h2stream_s *h2; /* the stream of a request over HTTP/2 */
  msvc__buf_t out;  /* response bytes waiting for earlier responses */
  uint64_t t0;
  uint32_t path_len;
  uint16_t mw_next;
  uint8_t state;
  bool queued;
  bool cancelled;
  bool after_done;
  bool paused;
  bool running;    /* inside middleware or the handler: not released yet */
  bool close;      /* this response ends the connection */
  bool close_asked;
  bool is_head;
  bool chunked_out;
  int route_status; /* 200, 404 or 405 */
  char *allow;      /* methods for a 405 */
  /* So that the common path allocates nothing: the first attribute
   * records, and an arena for decoded parameters (request.c). With the
   * storage of hdrs, they survive the recycling of the object. */
  uint8_t ninline;
  uint16_t scratch_used;
  msvc__alloc_t inline_allocs[MSVC__REQ_INLINE_ALLOCS];
  char scratch[MSVC__REQ_SCRATCH];
};

/* Spare request objects, parsed heads and write buffers a server keeps for
 * its connections: an idle keep-alive connection holds none of them, so its
 * memory is the connection itself, while busy connections still find them
 * ready without an allocation. */
#define MSVC__IDLE_CACHE 32

struct msvc__conn_s {
  msvc__queue_t node; /* in the server's list */
  msvc__queue_t idle_node; /* in the server's idle list while idle */
  msvc_http_server_t *srv;
  msvc__transport_t *tr;
  msvc__http_parser_t parser;
  msvc_http_req_t *cur;   /* request whose body is being read */
  msvc_http_req_t *spare; /* recycled request object */
  msvc__queue_t pipeline;
  uint32_t npipe;
  msvc__buf_t wbuf[2];
  uint8_t wi; /* index of the buffer collecting output */
  bool writing;
  bool in_read;
  bool read_stopped;
  bool closing;
  bool close_after; /* close once everything queued is written */
  bool overflow;
  bool overflow_answered;
  bool lingering;
  uint64_t linger_until;
  uint64_t nserved;
  uint8_t handles;  /* libuv handles still open: transport and timer */
  char *stash;      /* input not yet parsed while the pipeline is full */
  size_t nstash;
  uv_timer_t timer;
  uint64_t deadline; /* loop time in ms; 0 = none */
  uint64_t head_start;
  uint64_t body_start; /* loop time the current body began */
  bool idle; /* in the server's idle list: first to go when full */
  struct msvc__h2s_s *h2; /* set once the connection speaks HTTP/2 */
  char preface[24]; /* first bytes, while they may be the HTTP/2 preface */
  uint8_t npreface;
  bool sniffed;    /* the first bytes were looked at */
};

struct msvc_http_server_s {
  uv_loop_t *loop;
  msvc_http_server_opts_t opts;
  msvc__http_limits_t lim;
  uv_tcp_t listener;
  uv_timer_t drain_timer;
  msvc__router_t router;
  msvc_http_middleware_t *mw;
  size_t nmw;
  msvc__queue_t conns;
  msvc__queue_t idle; /* lingering, then idle keep-alive connections,
                         longest idle first: closed to make room */
  uint32_t nconns;
  uint32_t max_conns; /* max_connections, or what 0 stands for */
  uv_timer_t accept_timer; /* retries an accept that failed */
  uint32_t accept_backoff_ms;
  int port;
  uint8_t handles;
  bool listening;
  bool listener_closed;
  bool draining;
  bool drain_reported;
  bool drain_timedout;
  bool closing;
  msvc_http_drain_cb drain_cb;
  void *drain_data;
  msvc_http_close_cb close_cb;
  void *close_data;
  int64_t date_secs;
  char date[32];
  struct msvc_tls_config_s *tls; /* NULL: plain HTTP */
  struct msvc_work_s *work;      /* TLS handshakes run here; NULL: on the loop */
  /* Told when a drain begins (the service drains its worker pool). */
  void (*drain_hook)(void *data, uint32_t timeout_ms);
  void *drain_hook_data;
  /* What idle keep-alive connections gave back, for the next busy one. */
  msvc_http_req_t *idle_reqs[MSVC__IDLE_CACHE];
  msvc__http_head_t *idle_heads[MSVC__IDLE_CACHE];
  msvc__buf_t idle_bufs[MSVC__IDLE_CACHE];
  uint32_t nidle_reqs;
  uint32_t nidle_heads;
  uint32_t nidle_bufs;
};

/* Default max_connections: the soft descriptor limit less a reserve for
 * outgoing calls, files and probes, within [8, 10000]. */
uint32_t msvc__http_auto_max_connections(void);
/* Raises the soft RLIMIT_NOFILE to the hard limit. Returns the soft limit
 * now in force, or a negative code. */
long msvc__http_raise_fd_limit(void);

/* conn.c */
int msvc__conn_accept(msvc_http_server_t *srv);
/* Frees what idle connections gave back (the server is going away). */
void msvc__conn_cache_free(msvc_http_server_t *srv);
/* Closes the first connection of the idle list; false if it is empty. */
bool msvc__conn_shed_idle(msvc_http_server_t *srv);
void msvc__conn_close(msvc__conn_t *c);
void msvc__conn_drain(msvc__conn_t *c);
void msvc__conn_flush(msvc__conn_t *c);
/* Moves finished responses into the output without writing. */
void msvc__conn_collect(msvc__conn_t *c);
void msvc__server_conn_gone(msvc_http_server_t *srv);
/* Ends a drain under way at once: what is still open is cut, and the drain
 * callback follows as at its deadline. A no-op when not draining. */
void msvc__http_server_drain_cut(msvc_http_server_t *srv);

/* request.c */
msvc_http_req_t *msvc__req_new(msvc__conn_t *c);
void msvc__req_reset(msvc_http_req_t *req);
void msvc__req_destroy(msvc_http_req_t *req);
void msvc__req_dispatch(msvc_http_req_t *req);
void msvc__req_run_after(msvc_http_req_t *req);
/* The request will never be answered to its client. */
void msvc__req_detach(msvc_http_req_t *req);
/* Finished and no longer queued: free or recycle. */
void msvc__req_release(msvc_http_req_t *req);
/* Keep req allocated across a callback that may finish it; unhold with the
 * value hold returned, which releases or sends it if it was finished. */
bool msvc__req_hold(msvc_http_req_t *req);
void msvc__req_unhold(msvc_http_req_t *req, bool was);

/* workers.c: stops like msvc_http_workers_stop(), returning the first
 * non-zero uv_loop_close() result of a worker (tests check for leaks). */
int msvc__http_workers_stop_rc(msvc_http_workers_t *w, uint32_t timeout_ms);

/* server.c: fn runs at the start of msvc_http_server_drain(). */
void msvc__http_server_on_drain(msvc_http_server_t *srv,
                                void (*fn)(void *data, uint32_t timeout_ms),
                                void *data);

/* response.c */
const char *msvc__server_date(msvc_http_server_t *srv);
int msvc__res_error_close(msvc_http_req_t *req, int status, const char *code,
                          const char *message);
/* msvc_http_res_header() for a field the caller built itself, unchecked:
 * name is a token the framing does not own (not Date, Connection,
 * Content-Length or Transfer-Encoding) and value holds no CR or LF. */
int msvc__res_header_trusted(msvc_http_res_t *res, const char *name, size_t nlen,
                             const char *value, size_t vlen);

#endif /* MSVC_HTTP_SERVER_H */
