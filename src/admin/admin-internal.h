/*
 * Private to the admin block (src/admin/) and to the two places of the
 * service object that start and stop it.
 *
 * Pieces, from the pure to the loop-bound:
 *   render.c  HTML from a page's JSON (escaping, tables, SVG charts);
 *   ring.c    the bounded in-memory history of requests per route;
 *   util.c    address parsing, token comparison, secret redaction;
 *   pages.c   each built-in page as JSON, read from the live service;
 *   admin.c   the listener: routes, token check, answers.
 */
#ifndef MSVC_ADMIN_INTERNAL_H
#define MSVC_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include <msvc/admin.h>
#include <msvc/http.h>

#include "../msvc-internal.h"

typedef struct msvc__admin_s msvc__admin_t;
struct msvc_service_s;

/* ---- service side (admin.c) --------------------------------------------
 * msvc_service_new() calls msvc__admin_new() once its configuration is
 * read, before its servers exist: *out stays NULL when the listener is off. opt_addr / opt_token are the
 * options' values (NULL: the environment). Bad values give MSVC_ECONFIG
 * with one line in err. */
int msvc__admin_new(struct msvc_service_s *svc, const char *opt_addr,
                    const char *opt_token, char *err, size_t errlen,
                    msvc__admin_t **out);
/* Counts the requests of one loop's public server for the charts. Any
 * thread (worker loops). */
int msvc__admin_use(msvc__admin_t *a, msvc_http_server_t *srv);
/* Binds the listener (before the public port). */
int msvc__admin_start(msvc__admin_t *a);
/* Closes the listener; cb runs from the loop once it is released and the
 * admin freed. Returns false (and never calls cb) for a NULL admin. */
bool msvc__admin_close(msvc__admin_t *a, void (*cb)(void *data), void *data);
/* Frees an admin that was never started (its server not listening: the
 * loop releases the handle). */
void msvc__admin_free(msvc__admin_t *a);
int msvc__admin_bound_port(const msvc__admin_t *a);

/* ---- util.c -------------------------------------------------------------- */
/* "host:port" or "[v6]:port", port 0..65535. host receives the address
 * without brackets. */
int msvc__admin_parse_addr(const char *s, char *host, size_t hostcap, int *port);
/* Whether an Authorization header carries the token (Bearer, compared in
 * time that does not depend on where the bytes differ). */
bool msvc__admin_token_ok(const char *authorization, const char *token);
/* Whether a configuration key names a secret (token, password, key, ...). */
bool msvc__admin_is_secret(const char *key);
/* A value as shown: secrets become "[redacted]", and the password of a
 * URI's user-info is replaced. Writes into out (always NUL-terminated). */
void msvc__admin_redact(const char *key, const char *value, char *out, size_t cap);
bool msvc__admin_section_name_ok(const char *name);

/* ---- render.c ------------------------------------------------------------ */
/* Appends s HTML-escaped (& < > " '). */
void msvc__admin_html_escape(msvc__buf_t *b, const char *s);
/* A navigation entry. */
typedef struct msvc__admin_nav_s {
  const char *name;  /* "" for the overview */
  const char *title;
} msvc__admin_nav_t;
/* A whole page: head with the inline stylesheet, navigation (current
 * marked), title, then the page's JSON object rendered key by key. Extra
 * HTML (already safe) may follow the body (the log level form). */
void msvc__admin_html_page(msvc__buf_t *b, const char *service, const char *title,
                           const msvc__admin_nav_t *nav, size_t nnav,
                           const char *current, const cJSON *page,
                           const char *extra_html);
/* One value (recursive, depth-bounded). */
void msvc__admin_html_value(msvc__buf_t *b, const cJSON *v, int depth);
/* An inline SVG line chart of n values. */
void msvc__admin_svg_chart(msvc__buf_t *b, const double *v, size_t n);

/* ---- ring.c -------------------------------------------------------------
 * Requests per route in time slots (MSVC__ADMIN_SLOT_MS each, the last
 * MSVC__ADMIN_SLOTS kept): count, 5xx, and a latency histogram for p99.
 * Thread-safe; time is passed in. The method and route given to record
 * must not change while the ring lives (route patterns owned by the
 * service's servers, static method names): rows are found by pointer
 * first. */
#define MSVC__ADMIN_SLOT_MS 5000u
#define MSVC__ADMIN_SLOTS 60u
#define MSVC__ADMIN_ROUTES 32u
typedef struct msvc__admin_ring_s msvc__admin_ring_t;
int msvc__admin_ring_new(msvc__admin_ring_t **out);
void msvc__admin_ring_free(msvc__admin_ring_t *r);
void msvc__admin_ring_record(msvc__admin_ring_t *r, const char *method,
                             const char *route, int status, uint64_t dur_ns,
                             uint64_t now_ms);
/* {"slot_seconds":5,"routes":[{"route","requests","errors","rate","errors_per_s","p99_ms"}]}
 * oldest slot first; the last slot is the one in progress. */
int msvc__admin_ring_json(msvc__admin_ring_t *r, uint64_t now_ms, cJSON *out);

/* ---- pages.c ------------------------------------------------------------- */
typedef int (*msvc__admin_page_fn)(msvc__admin_t *a, cJSON *out);
typedef struct msvc__admin_page_s {
  const char *name;
  const char *title;
  msvc__admin_page_fn fn;
} msvc__admin_page_t;
extern const msvc__admin_page_t msvc__admin_pages[];
extern const size_t msvc__admin_npages;

/* ---- tracez.c: recent and slowest traces per route ----------------------- */
int msvc__admin_page_tracez(msvc__admin_t *a, cJSON *out);
void msvc__admin_html_tracez(msvc__buf_t *b, const cJSON *page);
/* A page whose HTML is more than its JSON drawn as tables has an html
 * function that draws the page's JSON itself; NULL for the others. */
typedef void (*msvc__admin_html_fn)(msvc__buf_t *b, const cJSON *page);
msvc__admin_html_fn msvc__admin_page_html(const char *name);

/* ---- the admin of one service (admin.c) ---------------------------------- */
struct msvc__admin_s {
  struct msvc_service_s *svc;
  char host[64];
  int port;             /* as configured (0: any free one) */
  char *token;          /* NULL: no token asked */
  const char *addr_what; /* the option or variable that turned it on */
  msvc_http_server_t *srv;
  msvc__admin_ring_t *ring;
  msvc_http_middleware_t mw; /* counts the public servers' requests */
  uint64_t created_wall_ms;
  int state;            /* 0 created, 1 listening, 2 closing, 3 closed */
  void (*close_cb)(void *data);
  void *close_data;
};

/* ---- sections (admin.c) ---------------------------------------------------
 * Calls fn for each section in the order added, with the table locked. */
void msvc__admin_sections_foreach(void (*fn)(const char *name, const char *title,
                                             msvc_admin_section_fn render,
                                             void *rdata, void *arg),
                                  void *arg);

#endif /* MSVC_ADMIN_INTERNAL_H */
