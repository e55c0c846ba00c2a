/* Out-of-memory sweeps over the HTTP server (a request over a real socket)
 * and the HTTP client (a call to a server on the same loop). After the
 * injected failure has happened, a second request must succeed: one failed
 * allocation may cost one request, never the server or the client. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <msvc/http.h>
#include <msvc/http_client.h>

#include "oom/oom.h"

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *name = msvc_http_req_param(req, "name");
  char body[64];
  int n;

  (void)data;
  if (name == NULL) {
    /* Copying the parameter failed: the request still gets an answer. */
    msvc_http_res_send(res, 500, NULL, NULL, 0);
    return;
  }
  n = snprintf(body, sizeof(body), "hello %s", name);
  if (msvc_http_res_header(res, "X-Hello", name) != MSVC_OK) {
    msvc_http_res_send(res, 500, NULL, NULL, 0);
    return;
  }
  msvc_http_res_send(res, 200, "text/plain", body, (size_t)n);
}

/* POST /echo: the JSON body back, with a member added. */
static void on_echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  cJSON *doc = NULL;
  int rc;

  (void)data;
  rc = msvc_http_req_json(req, &doc);
  if (rc == MSVC_ENOMEM) {
    msvc_http_res_send(res, 503, NULL, NULL, 0);
    return;
  }
  cr_assert_eq(rc, 0, "N=%lu: a valid body refused: %s", oom_n,
               msvc_err_name(rc));
  if (cJSON_AddStringToObject(doc, "seen", "yes") == NULL)
    msvc_http_res_send(res, 503, NULL, NULL, 0);
  else
    msvc_http_res_json(res, 200, doc);
  cJSON_Delete(doc);
}

static int serve(oom_loop_t *l, msvc_http_server_t **srv) {
  int rc;

  *srv = NULL;
  OOM_CALL(rc, msvc_http_server_new(&l->loop, NULL, srv), fail);
  OOM_CALL(rc, msvc_http_server_route(*srv, "GET", "/hello/:name", on_hello,
                                      NULL, NULL),
           fail);
  OOM_CALL(rc, msvc_http_server_route(*srv, "POST", "/echo", on_echo, NULL,
                                      NULL),
           fail);
  OOM_CALL(rc, msvc_http_server_listen(*srv, "127.0.0.1", 0), fail);
  return 0;
fail:
  return rc;
}

static void on_server_closed(void *data) {
  (*(int *)data)++;
}

/* ---- server request ----------------------------------------------------- */

/* A blocking client in a thread of its own: it allocates nothing through
 * the library, so the loop thread's allocations are the same at every run. */
typedef struct raw_client_s {
  pthread_t thread;
  int port;
  atomic_int done;
  int status; /* > 0 status; 0 closed without a response; -1 timed out */
  int status2; /* the second answer's, or 0 */
} raw_client_t;

static void *raw_client_main(void *arg) {
  /* Two requests pipelined on one connection; the second closes it. */
  static const char req[] =
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nContent-Length: 24\r\n\r\n"
      "{\"a\":[1,2,{\"b\":\"text\"}]}"
      "GET /hello/oom?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Accept: */*\r\nConnection: close\r\n\r\n";
  raw_client_t *c = arg;
  struct timeval tv = {2, 0};
  struct sockaddr_in a;
  char buf[4096];
  size_t got = 0;
  ssize_t n;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)c->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  c->status = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
    goto out;
  while (got < sizeof(buf) - 1 &&
         (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        c->status = -1;
      break;
    }
    got += (size_t)n;
  }
  buf[got] = '\0';
  if (c->status == 0 && strncmp(buf, "HTTP/1.1 ", 9) == 0) {
    const char *second = strstr(buf + 9, "HTTP/1.1 ");

    c->status = atoi(buf + 9);
    if (c->status == 200)
      cr_assert_not_null(strstr(buf, "{\"a\":[1,2,{\"b\":\"text\"}],\"seen\":\"yes\"}"),
                         "%s", buf);
    c->status2 = second != NULL ? atoi(second + 9) : 0;
  }
out:
  close(fd);
  atomic_store(&c->done, 1);
  return NULL;
}

static bool raw_client_done(void *arg) {
  return atomic_load(&((raw_client_t *)arg)->done) != 0;
}

static void raw_request(oom_loop_t *l, int port, raw_client_t *c) {
  memset(c, 0, sizeof(*c));
  c->port = port;
  cr_assert_eq(pthread_create(&c->thread, NULL, raw_client_main, c), 0);
  cr_assert(oom_run_until(l, raw_client_done, c, 5000),
            "N=%lu: the request wedged", oom_n);
  pthread_join(c->thread, NULL);
  cr_assert_neq(c->status, -1, "N=%lu: no answer within 2 s", oom_n);
}

static int server_request(void *arg) {
  msvc_http_server_t *srv = NULL;
  raw_client_t first, second;
  oom_loop_t l;
  int rc, closed = 0;
  bool failed_before;

  (void)arg;
  rc = oom_loop_init(&l);
  if (rc != 0)
    return rc;
  rc = serve(&l, &srv);
  if (rc != 0)
    goto out;
  raw_request(&l, msvc_http_server_port(srv), &first);
  failed_before = msvc__fault_hit();
  raw_request(&l, msvc_http_server_port(srv), &second);
  if (!msvc__fault_hit())
    cr_assert(first.status == 200 && first.status2 == 200,
              "N=%lu: status %d, %d", oom_n, first.status, first.status2);
  else
    cr_assert(first.status == 200 || first.status == 500 ||
                  first.status == 503 || first.status == 0,
              "N=%lu: status %d", oom_n, first.status);
  if (failed_before)
    cr_assert(second.status == 200 && second.status2 == 200,
              "N=%lu: after one failed allocation the server answers %d, %d",
              oom_n, second.status, second.status2);
out:
  if (srv != NULL)
    msvc_http_server_close(srv, on_server_closed, &closed);
  oom_loop_finish(&l);
  cr_assert_eq(closed, srv != NULL ? 1 : 0);
  return rc;
}

Test(oom, server_request, .init = oom_init, .timeout = 240) {
  oom_stats_t st;

  oom_sweep("server request", server_request, NULL, 100000, 1, &st);
}

/* ---- client call --------------------------------------------------------- */

typedef struct call_s {
  const char *want; /* the body a 200 must carry */
  bool done;
  int err;
  int status;
} call_t;

static void on_call_done(msvc_http_call_t *call, int err,
                         const msvc_http_response_t *res, void *data) {
  call_t *c = data;
  size_t len = 0;

  (void)call;
  c->done = true;
  c->err = err;
  if (err == 0) {
    c->status = msvc_http_response_status(res);
    if (c->status == 200) {
      const char *body = msvc_http_response_body(res, &len);

      cr_assert_eq(len, strlen(c->want));
      cr_assert_eq(memcmp(body, c->want, len), 0);
    }
  }
}

static bool call_done(void *arg) {
  return ((call_t *)arg)->done;
}

/* MSVC_ENOMEM from the call itself; else 0 with the outcome in *c. The
 * first call posts JSON under a retry policy, the second is a plain GET
 * (on the pooled connection when the first left one). */
static int client_call(oom_loop_t *l, msvc_http_client_t *cli, int port,
                       msvc_retry_t *retry, call_t *c) {
  static const msvc_http_header_t hdr[] = {
      {"X-Request", "oom"}, {"Content-Type", "application/json"}};
  static const char body[] = "{\"x\":\"y\"}";
  msvc_http_request_t req;
  msvc_http_call_t *call;
  int rc;

  memset(c, 0, sizeof(*c));
  msvc_http_request_init(&req);
  req.host = "127.0.0.1";
  req.port = port;
  if (retry != NULL) {
    c->want = "{\"x\":\"y\",\"seen\":\"yes\"}";
    req.method = "POST";
    req.target = "/echo";
    req.body = body;
    req.body_len = sizeof(body) - 1;
    req.retry = retry;
    req.nheaders = 2;
  } else {
    c->want = "hello oom";
    req.target = "/hello/oom?q=1";
    req.nheaders = 1;
  }
  req.headers = hdr;
  req.timeouts.total_ms = 3000;
  req.on_done = on_call_done;
  req.data = c;
  OOM_CALL(rc, msvc_http_client_request(cli, &req, &call), out);
  cr_assert(oom_run_until(l, call_done, c, 5000), "N=%lu: the call wedged",
            oom_n);
out:
  return rc;
}

static void on_client_closed(void *data) {
  (*(int *)data)++;
}

static int client_scenario(void *arg) {
  msvc_http_server_t *srv = NULL;
  msvc_http_client_t *cli = NULL;
  msvc_retry_t *retry = NULL;
  call_t first, second;
  oom_loop_t l;
  int rc, closed = 0, port;
  bool failed_before;

  (void)arg;
  rc = oom_loop_init(&l);
  if (rc != 0)
    return rc;
  rc = serve(&l, &srv);
  if (rc != 0)
    goto out;
  port = msvc_http_server_port(srv);
  OOM_CALL(rc, msvc_http_client_new(&l.loop, NULL, &cli), out);
  OOM_CALL(rc, msvc_retry_new(NULL, &retry), out);
  OOM_CALL(rc, client_call(&l, cli, port, retry, &first), out);
  failed_before = msvc__fault_hit();
  if (!failed_before)
    cr_assert(first.err == 0 && first.status == 200,
              "N=%lu: err %d status %d", oom_n, first.err, first.status);
  rc = client_call(&l, cli, port, NULL, &second);
  if (failed_before)
    cr_assert(rc == 0 && second.err == 0 && second.status == 200,
              "N=%lu: after one failed allocation: rc %d err %d status %d",
              oom_n, rc, second.err, second.status);
  if (rc != 0)
    goto out;
out:
  if (cli != NULL)
    msvc_http_client_close(cli, on_client_closed, &closed);
  if (srv != NULL)
    msvc_http_server_close(srv, on_server_closed, &closed);
  oom_loop_finish(&l);
  msvc_retry_free(retry);
  cr_assert_eq(closed, (srv != NULL) + (cli != NULL));
  return rc;
}

Test(oom, client_call, .init = oom_init, .timeout = 240) {
  oom_stats_t st;

  oom_sweep("client call", client_scenario, NULL, 100000, 1, &st);
}
