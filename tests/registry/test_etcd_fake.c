/* The etcd backend against a scripted etcd (an HTTP server on the test's
 * loop), for orderings a real etcd only produces by chance.
 *
 * A watch sends its first range and its watch stream together. When the
 * range is read before a concurrent put and the stream, started "from now"
 * (no revision known yet), is created after it, the put is in neither: no
 * event will ever announce it. The stream's creation must therefore trigger
 * one more read of the service. */
#include <msvc/http.h>

#include "fixture.h"

typedef struct fake_etcd_s {
  msvc_http_server_t *srv;
  int ranges;             /* range requests answered */
  msvc_http_res_t *watch; /* the open watch stream */
  bool created;           /* its "created" message was sent */
  char one[1024];         /* the range answer after the put */
} fake_etcd_t;

#define CREATED "{\"result\":{\"header\":{\"revision\":\"6\"},\"created\":true}}\n"

/* etcd creates the stream only once the first range (revision 5) has been
 * answered: the put (revision 6) falls between the two. */
static void send_created(fake_etcd_t *fe) {
  if (fe->watch == NULL || fe->ranges == 0 || fe->created)
    return;
  fe->created = true;
  cr_assert_eq(msvc_http_res_start(fe->watch, 200, "application/json"), 0);
  cr_assert_eq(msvc_http_res_write(fe->watch, CREATED, strlen(CREATED)), 0);
}

static void on_range(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  fake_etcd_t *fe = data;
  const char *body =
      fe->ranges++ == 0 ? "{\"header\":{\"revision\":\"5\"}}" : fe->one;

  (void)req;
  msvc_http_res_send(res, 200, "application/json", body, strlen(body));
  send_created(fe);
}

static void on_watch_gone(msvc_http_req_t *req, void *data) {
  fake_etcd_t *fe = data;

  (void)req;
  if (fe->created)
    msvc_http_res_end(fe->watch);
  else
    msvc_http_res_send(fe->watch, 503, NULL, NULL, 0); /* releases it */
  fe->watch = NULL;
}

/* Held open with no event, as etcd does while nothing changes. */
static void on_watch(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  fake_etcd_t *fe = data;

  cr_assert_null(fe->watch, "one stream only");
  fe->watch = res;
  msvc_http_req_on_cancel(req, on_watch_gone, fe);
  send_created(fe);
}

/* The fake serves on f's loop; f is opened on it (fx_open would make its
 * own loop, before the fake's port is known). */
static void fake_open(fake_etcd_t *fe, fx_t *f) {
  msvc_registry_instance_t inst;
  msvc__buf_t json, b;

  memset(fe, 0, sizeof(*fe));
  msvc_registry_instance_init(&inst);
  inst.id = "a1";
  inst.service = "pay";
  inst.address = "127.0.0.1";
  inst.port = 7001;
  inst.weight = 1;
  msvc__buf_init(&json, 0);
  cr_assert_eq(msvc__reg_instance_to_json(&inst, 0, 0, &json), 0);
  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, "{\"header\":{\"revision\":\"6\"},\"kvs\":[{\"key\":\"");
  msvc__etcd_b64_encode(&b, "/msvc/services/pay/a1", 21);
  msvc__buf_puts(&b, "\",\"value\":\"");
  msvc__etcd_b64_encode(&b, json.data, json.len);
  msvc__buf_puts(&b, "\"}],\"count\":\"1\"}");
  cr_assert(b.err == 0 && b.len < sizeof(fe->one));
  memcpy(fe->one, b.data, b.len);
  msvc__buf_free(&b);
  msvc__buf_free(&json);

  memset(f, 0, sizeof(*f));
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(uv_timer_init(&f->loop, &f->tick), 0);
  cr_assert_eq(msvc_http_server_new(&f->loop, NULL, &fe->srv), 0);
  cr_assert_eq(msvc_http_server_route(fe->srv, "POST", "/v3/kv/range",
                                      on_range, fe, NULL),
               0);
  cr_assert_eq(msvc_http_server_route(fe->srv, "POST", "/v3/watch", on_watch,
                                      fe, NULL),
               0);
  cr_assert_eq(msvc_http_server_listen(fe->srv, "127.0.0.1", 0), 0);
  snprintf(f->uri, sizeof(f->uri), "etcd://127.0.0.1:%d",
           msvc_http_server_port(fe->srv));
  cr_assert_eq(msvc_registry_new(&f->loop, f->uri, NULL, &f->reg), 0);
}

Test(etcd_fake, put_between_first_range_and_stream_creation, .timeout = 30) {
  fake_etcd_t fe;
  seen_t seen = {0, NULL};
  want_t one = {&seen, 1};
  fx_t f;

  fake_open(&fe, &f);
  cr_assert_eq(msvc_registry_watch(f.reg, "pay", seen_cb, &seen, NULL), 0);
  /* No event ever comes: only a read after the creation finds a1. */
  cr_assert(fx_run_until(&f, want_count, &one, 5000),
            "the watch re-read the service once the stream was created "
            "(ranges: %d, created: %d)",
            fe.ranges, fe.created);
  cr_assert_str_eq(msvc_registry_set_at(seen.last, 0)->id, "a1");
  cr_assert_eq(fe.ranges, 2, "one re-read");
  seen_clear(&seen);
  msvc_http_server_close(fe.srv, NULL, NULL);
  fx_close(&f);
}
