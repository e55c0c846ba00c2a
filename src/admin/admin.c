/*
 * The admin listener of a service: a second HTTP server of the library's
 * own, bound only where MSVC_ADMIN (or the admin option) says, never on
 * the public port, serving the pages under /debug/ after an optional
 * bearer-token check. Its memory outlives the listener: the public
 * servers' middleware writes into the request ring until the service's
 * very end, so the ring goes with the service's memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/middleware.h>

#include "../service/service-core.h"
#include "admin-internal.h"

#define LOG_COMPONENT "admin"
/* Longest body of a POST (the log level form). */
#define ADMIN_MAX_BODY 4096u

/* ---- sections other blocks add -------------------------------------------- */

typedef struct section_s {
  struct section_s *next;
  char name[MSVC_ADMIN_SECTION_NAME_MAX + 1];
  char *title;
  msvc_admin_section_fn fn;
  void *data;
} section_t;

static uv_once_t sections_once = UV_ONCE_INIT;
static uv_mutex_t sections_mu;
static section_t *sections;

static void sections_init(void) { (void)uv_mutex_init(&sections_mu); }

static bool builtin_name(const char *name) {
  size_t i;

  for (i = 0; i < msvc__admin_npages; i++)
    if (strcmp(msvc__admin_pages[i].name, name) == 0) return true;
  return false;
}

int msvc_admin_section_add(const char *name, const char *title, msvc_admin_section_fn fn,
                           void *data) {
  section_t *s, **p;

  if (!msvc__admin_section_name_ok(name) || title == NULL || fn == NULL || builtin_name(name))
    return MSVC_EINVAL;
  s = msvc__calloc(1, sizeof(*s));
  if (s == NULL || (s->title = msvc__strdup(title)) == NULL) {
    msvc__free(s);
    return MSVC_ENOMEM;
  }
  snprintf(s->name, sizeof(s->name), "%s", name);
  s->fn = fn;
  s->data = data;
  uv_once(&sections_once, sections_init);
  uv_mutex_lock(&sections_mu);
  for (p = &sections; *p != NULL; p = &(*p)->next) {
    if (strcmp((*p)->name, name) == 0) {
      uv_mutex_unlock(&sections_mu);
      msvc__free(s->title);
      msvc__free(s);
      return MSVC_EEXIST;
    }
  }
  *p = s;
  uv_mutex_unlock(&sections_mu);
  return MSVC_OK;
}

int msvc_admin_section_remove(const char *name) {
  section_t *s = NULL, **p;

  if (name == NULL) return MSVC_EINVAL;
  uv_once(&sections_once, sections_init);
  uv_mutex_lock(&sections_mu);
  for (p = &sections; *p != NULL; p = &(*p)->next) {
    if (strcmp((*p)->name, name) == 0) {
      s = *p;
      *p = s->next;
      break;
    }
  }
  uv_mutex_unlock(&sections_mu);
  if (s == NULL) return MSVC_ENOENT;
  msvc__free(s->title);
  msvc__free(s);
  return MSVC_OK;
}

void msvc__admin_sections_foreach(void (*fn)(const char *name, const char *title,
                                             msvc_admin_section_fn render,
                                             void *rdata, void *arg),
                                  void *arg) {
  section_t *s;

  uv_once(&sections_once, sections_init);
  uv_mutex_lock(&sections_mu);
  for (s = sections; s != NULL; s = s->next) fn(s->name, s->title, s->fn, s->data, arg);
  uv_mutex_unlock(&sections_mu);
}

/* ---- answering ------------------------------------------------------------- */

typedef struct nav_build_s {
  msvc__admin_nav_t nav[64];
  char names[64][MSVC_ADMIN_SECTION_NAME_MAX + 1];
  char titles[64][64];
  size_t n;
  /* the section asked for, if any */
  const char *want;
  msvc_service_t *svc;
  cJSON *page;
  int rc;
  bool found;
  char title[64];
} nav_build_t;

static void nav_add(nav_build_t *nb, const char *name, const char *title) {
  if (nb->n >= 64) return;
  snprintf(nb->names[nb->n], sizeof(nb->names[0]), "%s", name);
  snprintf(nb->titles[nb->n], sizeof(nb->titles[0]), "%s", title);
  nb->nav[nb->n].name = nb->names[nb->n];
  nb->nav[nb->n].title = nb->titles[nb->n];
  nb->n++;
}

/* Sections are listed and, when one is asked for, rendered while the
 * table is locked, so that a section removed meanwhile is never called. */
static void on_section(const char *name, const char *title, msvc_admin_section_fn render,
                       void *rdata, void *arg) {
  nav_build_t *nb = arg;

  nav_add(nb, name, title);
  if (nb->want != NULL && strcmp(nb->want, name) == 0) {
    nb->found = true;
    snprintf(nb->title, sizeof(nb->title), "%s", title);
    nb->rc = render(nb->svc, nb->page, rdata);
  }
}

static void security_headers(msvc_http_res_t *res) {
  msvc_http_res_header(res, "Cache-Control", "no-store");
  msvc_http_res_header(res, "X-Content-Type-Options", "nosniff");
  msvc_http_res_header(res, "X-Frame-Options", "DENY");
  msvc_http_res_header(res, "Referrer-Policy", "same-origin");
  msvc_http_res_header(res, "Content-Security-Policy",
                       "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
}

/* The log level form, the current level selected. */
static void loglevel_form(char *out, size_t cap) {
  msvc_log_level_t cur = msvc_log_get_level();
  size_t n;
  int i;

  n = (size_t)snprintf(out, cap, "<form method=\"post\" action=\"/debug/loglevel\">"
                       "<label for=\"lv\">New level</label><select id=\"lv\" name=\"level\">");
  for (i = MSVC_LOG_TRACE; i <= MSVC_LOG_OFF && n < cap; i++)
    n += (size_t)snprintf(out + n, cap - n, "<option%s>%s</option>",
                          i == (int)cur ? " selected" : "",
                          msvc_log_level_name((msvc_log_level_t)i));
  if (n < cap)
    snprintf(out + n, cap - n, "</select><button type=\"submit\">Set</button></form>");
}

/* ?format=json|html; anything else is refused so that a typo is seen. */
static int wants_json(msvc_http_req_t *req, msvc_http_res_t *res, bool *json) {
  const char *f = msvc_http_req_query(req, "format");

  *json = false;
  if (f == NULL || strcmp(f, "html") == 0) return 0;
  if (strcmp(f, "json") == 0) {
    *json = true;
    return 0;
  }
  msvc_http_res_error(res, 400, "INVALID_ARGUMENT",
                      "format: expected json or html");
  return -1;
}

/* A page that draws itself: its HTML goes where the extra HTML goes, and
 * the generic part gets an empty object. */
static char *drawn_by(msvc__admin_html_fn html, const cJSON *page, cJSON **empty) {
  msvc__buf_t b;

  *empty = cJSON_CreateObject();
  msvc__buf_init(&b, 0);
  html(&b, page);
  return msvc__buf_detach(&b, NULL);
}

static void send_page(msvc__admin_t *a, msvc_http_res_t *res, bool json,
                      nav_build_t *nb, const char *current, const char *title,
                      msvc__admin_html_fn html) {
  msvc__buf_t b;
  char *body, form[512], *custom;
  cJSON *empty = NULL;
  size_t len;

  security_headers(res);
  if (json) {
    msvc_http_res_json(res, 200, nb->page);
    return;
  }
  msvc__buf_init(&b, 0);
  if (html != NULL) {
    custom = drawn_by(html, nb->page, &empty);
    msvc__admin_html_page(&b, a->svc->cfg.name, title, nb->nav, nb->n, current,
                          empty != NULL ? empty : nb->page, custom);
    if (custom == NULL || empty == NULL) b.err = MSVC_ENOMEM;
    msvc__free(custom);
    cJSON_Delete(empty);
  } else {
    loglevel_form(form, sizeof(form));
    msvc__admin_html_page(&b, a->svc->cfg.name, title, nb->nav, nb->n, current, nb->page,
                          strcmp(current, "loglevel") == 0 ? form : NULL);
  }
  body = msvc__buf_detach(&b, &len);
  if (body == NULL) {
    msvc_http_res_error(res, 500, "INTERNAL", "out of memory while rendering the page");
    return;
  }
  msvc_http_res_send_owned(res, 200, "text/html; charset=utf-8", body, len);
}

static void on_page(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc__admin_t *a = data;
  const char *name = msvc_http_req_param(req, "*");
  const msvc__admin_page_t *page = NULL;
  nav_build_t *nb;
  const char *title = NULL;
  bool json;
  size_t i;

  if (wants_json(req, res, &json) != 0) return;
  if (name == NULL) name = "";
  nb = msvc__calloc(1, sizeof(*nb));
  if (nb == NULL || (nb->page = cJSON_CreateObject()) == NULL) {
    msvc__free(nb);
    msvc_http_res_error(res, 500, "INTERNAL", "out of memory");
    return;
  }
  for (i = 0; i < msvc__admin_npages; i++) {
    nav_add(nb, msvc__admin_pages[i].name, msvc__admin_pages[i].title);
    if (strcmp(msvc__admin_pages[i].name, name) == 0) page = &msvc__admin_pages[i];
  }
  nb->svc = a->svc;
  nb->want = page == NULL ? name : NULL;
  msvc__admin_sections_foreach(on_section, nb);
  if (page != NULL) {
    nb->rc = page->fn(a, nb->page);
    title = page->title;
  } else if (nb->found) {
    title = nb->title;
  }
  if (page == NULL && !nb->found)
    msvc_http_res_error(res, 404, "NOT_FOUND", "no such admin page");
  else if (nb->rc != MSVC_OK)
    msvc_http_res_error(res, 500, "INTERNAL", msvc_strerror(nb->rc));
  else
    send_page(a, res, json, nb, name, title, page != NULL ? msvc__admin_page_html(page->name) : NULL);
  cJSON_Delete(nb->page);
  msvc__free(nb);
}

static void on_root(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_header(res, "Location", "/debug/");
  msvc_http_res_send(res, 302, "text/plain", "see /debug/\n", 12);
}

/* level=NAME from a form body, {"level":"NAME"} from JSON, or ?level=. */
static bool level_of(msvc_http_req_t *req, char *out, size_t cap) {
  const char *q = msvc_http_req_query(req, "level"), *body, *p;
  size_t len, n;
  cJSON *j;

  if (q != NULL) {
    snprintf(out, cap, "%s", q);
    return true;
  }
  body = msvc_http_req_body(req, &len);
  if (body == NULL || len == 0) return false;
  if (body[0] == '{') {
    const cJSON *l;
    bool ok = false;

    /* Parsed here rather than by msvc_http_req_json(), which would answer
     * a bad body itself: the caller answers. */
    if ((j = cJSON_ParseWithLength(body, len)) == NULL) return false;
    l = cJSON_GetObjectItemCaseSensitive(j, "level");
    if (cJSON_IsString(l)) {
      snprintf(out, cap, "%s", l->valuestring);
      ok = true;
    }
    cJSON_Delete(j);
    return ok;
  }
  if (len < 6 || strncmp(body, "level=", 6) != 0) return false;
  p = body + 6;
  n = strcspn(p, "&");
  if (n > (size_t)(body + len - p)) n = (size_t)(body + len - p);
  if (n >= cap) return false;
  memcpy(out, p, n);
  out[n] = '\0';
  return true;
}

/* A browser on another site can post a form to a loopback address: a
 * request whose Origin is not this listener's own is refused. */
static bool same_origin(msvc_http_req_t *req) {
  const char *origin = msvc_http_req_header(req, "Origin");
  const char *host = msvc_http_req_header(req, "Host");
  char want[300];

  if (origin == NULL) return true;
  if (host == NULL) return false;
  snprintf(want, sizeof(want), "http://%s", host);
  return strcmp(origin, want) == 0;
}

static void on_loglevel(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char name[32], msg[160];
  msvc_log_level_t lv, before = msvc_log_get_level();
  bool json;

  (void)data;
  if (wants_json(req, res, &json) != 0) return;
  if (!same_origin(req)) {
    msvc_http_res_error(res, 403, "PERMISSION_DENIED", "cross-origin request refused");
    return;
  }
  if (!level_of(req, name, sizeof(name)) || msvc_log_level_parse(name, &lv) != MSVC_OK) {
    msvc_http_res_error(res, 400, "INVALID_ARGUMENT",
                        "level: expected trace, debug, info, warn, error or off");
    return;
  }
  msvc_log_set_level(lv);
  msvc_log_write(MSVC_LOG_WARN, LOG_COMPONENT, NULL, 0, "log level changed from %s to %s "
                 "through the admin listener", msvc_log_level_name(before),
                 msvc_log_level_name(lv));
  security_headers(res);
  if (json) {
    int n = snprintf(msg, sizeof(msg), "{\"level\":\"%s\",\"previous\":\"%s\"}",
                     msvc_log_level_name(lv), msvc_log_level_name(before));
    msvc_http_res_send(res, 200, "application/json", msg, (size_t)n);
    return;
  }
  msvc_http_res_header(res, "Location", "/debug/loglevel");
  msvc_http_res_send(res, 303, "text/plain", "", 0);
}

/* Every request of the admin listener passes the token check first. */
static int on_auth(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc__admin_t *a = data;
  const char *h = msvc_http_req_header(req, "Authorization");

  if (msvc__admin_token_ok(h, a->token)) return MSVC_HTTP_NEXT;
  if (h == NULL) {
    msvc_http_res_header(res, "WWW-Authenticate", "Bearer realm=\"msvc-admin\"");
    msvc_http_res_error(res, 401, "UNAUTHENTICATED", "a bearer token is required");
  } else {
    msvc_http_res_error(res, 401, "UNAUTHENTICATED", "the token is not the admin token");
  }
  return MSVC_HTTP_STOP;
}

/* ---- counting the public servers' requests ------------------------------- */

static void on_public_done(msvc_http_req_t *req, msvc_http_res_t *res, uint64_t dur_ns,
                           void *data) {
  msvc__admin_t *a = data;

  msvc__admin_ring_record(a->ring, msvc_http_req_method(req), msvc_http_req_route(req),
                          msvc_http_res_status(res), dur_ns, uv_hrtime() / 1000000u);
}

int msvc__admin_use(msvc__admin_t *a, msvc_http_server_t *srv) {
  if (a == NULL) return MSVC_OK;
  return msvc_http_server_use(srv, &a->mw);
}

/* ---- life ------------------------------------------------------------------ */

static int admin_config(msvc__admin_t *a, const char *opt_addr, const char *opt_token,
                        char *err, size_t errlen) {
  const char *v = opt_addr, *t = opt_token;
  int pub = a->svc->cfg.port;

  a->addr_what = "admin option";
  if (v == NULL) {
    v = getenv("MSVC_ADMIN");
    a->addr_what = "MSVC_ADMIN";
  }
  if (v == NULL || v[0] == '\0') return MSVC_ENOENT;
  if (msvc__admin_parse_addr(v, a->host, sizeof(a->host), &a->port) != MSVC_OK) {
    snprintf(err, errlen, "%s: bad value '%.64s' (expected host:port, e.g. "
             "127.0.0.1:9901, or [::1]:9901; port 0 picks a free one)", a->addr_what, v);
    return MSVC_ECONFIG;
  }
  if (a->port != 0 && a->port == pub) {
    snprintf(err, errlen, "%s: port %d is the public port (MSVC_PORT); the admin "
             "listener needs a port of its own", a->addr_what, a->port);
    return MSVC_ECONFIG;
  }
  if (t == NULL) {
    t = getenv("MSVC_ADMIN_TOKEN");
    if (t != NULL && t[0] == '\0') t = NULL;
  }
  if (t != NULL) {
    size_t i, n = strlen(t);
    bool ok = n >= 16 && n <= 256;

    for (i = 0; ok && i < n; i++) ok = t[i] > ' ' && t[i] < 0x7f;
    if (!ok) {
      snprintf(err, errlen, "%s: bad value (expected 16..256 printable ASCII characters "
               "without spaces)", opt_token != NULL ? "admin_token option" : "MSVC_ADMIN_TOKEN");
      return MSVC_ECONFIG;
    }
    if ((a->token = msvc__strdup(t)) == NULL) return MSVC_ENOMEM;
  }
  return MSVC_OK;
}

static int admin_routes(msvc__admin_t *a) {
  msvc_http_middleware_t auth;
  int rc;

  /* Like every answer of a service, the admin's carry X-Request-Id. */
  if ((rc = msvc_mw_request_id_use(a->srv)) != MSVC_OK) return rc;
  memset(&auth, 0, sizeof(auth));
  auth.name = "admin-auth";
  auth.before = on_auth;
  auth.data = a;
  if ((rc = msvc_http_server_use(a->srv, &auth)) != MSVC_OK) return rc;
  if ((rc = msvc_http_server_route(a->srv, "GET", "/debug", on_root, a, NULL)) != 0) return rc;
  if ((rc = msvc_http_server_route(a->srv, "GET", "/debug/*", on_page, a, NULL)) != 0)
    return rc;
  return msvc_http_server_route(a->srv, "POST", "/debug/loglevel", on_loglevel, a, NULL);
}

int msvc__admin_new(msvc_service_t *svc, const char *opt_addr, const char *opt_token,
                    char *err, size_t errlen, msvc__admin_t **out) {
  msvc_http_server_opts_t so;
  msvc__admin_t *a;
  int rc;

  *out = NULL;
  a = msvc__calloc(1, sizeof(*a));
  if (a == NULL) return MSVC_ENOMEM;
  a->svc = svc;
  rc = admin_config(a, opt_addr, opt_token, err, errlen);
  if (rc != MSVC_OK) {
    msvc__free(a->token);
    msvc__free(a);
    return rc == MSVC_ENOENT ? MSVC_OK : rc;
  }
  a->created_wall_ms = msvc_wall_ms();
  a->mw.name = "admin-requests";
  a->mw.after = on_public_done;
  a->mw.data = a;
  msvc_http_server_opts_init(&so);
  so.max_connections = 64;
  so.max_body_bytes = ADMIN_MAX_BODY;
  so.max_header_bytes = 8192;
  rc = msvc__admin_ring_new(&a->ring);
  if (rc == MSVC_OK) rc = msvc_http_server_new(svc->loop, &so, &a->srv);
  if (rc != MSVC_OK) {
    msvc__admin_ring_free(a->ring);
    msvc__free(a->token);
    msvc__free(a);
    snprintf(err, errlen, "admin listener: %s", msvc_strerror(rc));
    return rc;
  }
  *out = a; /* from here the service frees it */
  if ((rc = admin_routes(a)) != MSVC_OK) {
    snprintf(err, errlen, "admin listener: %s", msvc_strerror(rc));
    return rc;
  }
  return MSVC_OK;
}

int msvc__admin_start(msvc__admin_t *a) {
  int rc;

  if (a == NULL) return MSVC_OK;
  rc = msvc_http_server_listen(a->srv, a->host, a->port);
  if (rc != MSVC_OK) {
    msvc_log_write(MSVC_LOG_ERROR, LOG_COMPONENT, NULL, 0,
                   "%s: cannot listen on %s:%d: %s", a->addr_what, a->host, a->port,
                   msvc_strerror(rc));
    return rc;
  }
  a->state = 1;
  msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0,
                 "admin pages of %s on http://%s%s%s:%d/debug/%s", a->svc->cfg.name,
                 strchr(a->host, ':') != NULL ? "[" : "", a->host,
                 strchr(a->host, ':') != NULL ? "]" : "", msvc_http_server_port(a->srv),
                 a->token != NULL ? " (bearer token required)" : "");
  return MSVC_OK;
}

int msvc__admin_bound_port(const msvc__admin_t *a) {
  if (a == NULL) return MSVC_ENOENT;
  if (a->state != 1) return MSVC_ESTATE;
  return msvc_http_server_port(a->srv);
}

static void on_closed(void *data) {
  msvc__admin_t *a = data;

  a->srv = NULL;
  a->state = 3;
  if (a->close_cb != NULL) a->close_cb(a->close_data);
}

bool msvc__admin_close(msvc__admin_t *a, void (*cb)(void *data), void *data) {
  if (a == NULL || a->state == 3) return false;
  if (a->state == 2) return true; /* the first close's callback goes on */
  a->state = 2;
  a->close_cb = cb;
  a->close_data = data;
  msvc_http_server_close(a->srv, on_closed, a);
  return true;
}

void msvc__admin_free(msvc__admin_t *a) {
  if (a == NULL) return;
  msvc__admin_ring_free(a->ring);
  msvc__free(a->token);
  msvc__free(a);
}

int msvc_admin_port(const msvc_service_t *svc) {
  if (svc == NULL) return MSVC_EINVAL;
  return msvc__admin_bound_port(svc->admin);
}
