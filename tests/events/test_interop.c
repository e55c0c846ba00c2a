/* Interoperability with the official JavaScript client (@nats-io/jetstream,
 * pinned by tests/events/interop/package-lock.json): events libmsvc
 * publishes are read by node as CloudEvents with their headers, and events
 * node publishes are consumed by libmsvc. */
#include <stdatomic.h>

#include "conformance.h"
#include "nats_server.h"

static natsd_t S;

static const char *interop_dir(void);

/* Whatever is missing is found here, before the server starts: a test
 * skipped from its body does not run the teardown, and its server would
 * outlive it. */
static void setup(void) {
  if (!natsd_available())
    cr_skip_test("nats-server is not installed");
  (void)interop_dir();
  natsd_init(&S);
  natsd_start(&S);
}

static void teardown(void) {
  natsd_stop(&S);
}

TestSuite(events_interop, .init = setup, .fini = teardown, .timeout = 60);

/* Outside CI a missing node or package skips the check, saying so; CI
 * installs the packages (scripts/install-deps.sh), so there it fails. */
static const char *interop_dir(void) {
  static char dir[512];
  char probe[600];
  const char *ci = getenv("CI");
  bool in_ci = ci != NULL && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);

  snprintf(dir, sizeof(dir), "%s/tests/events/interop", LIBMSVC_TEST_SOURCE_DIR);
  snprintf(probe, sizeof(probe), "%s/node_modules/@nats-io/jetstream/package.json", dir);
  if (system("node --version >/dev/null 2>&1") != 0) {
    if (in_ci)
      cr_assert_fail("node is not installed (CI is set: the interoperability check must run)");
    cr_skip_test("node is not installed");
  }
  if (access(probe, R_OK) != 0) {
    if (in_ci)
      cr_assert_fail("@nats-io/jetstream is not installed: run `npm ci` in tests/events/interop");
    cr_skip_test("@nats-io/jetstream is not installed: run `npm ci` in tests/events/interop");
  }
  return dir;
}

/* Runs a command while the loop keeps turning (the publisher's or the
 * consumer's libmsvc side must stay alive), collecting its output. */
typedef struct cmd_run_s {
  char cmd[1024];
  char out[16384];
  int status;
  atomic_int done;
} cmd_run_t;

static void run_cmd(void *arg) {
  cmd_run_t *c = arg;
  FILE *p = popen(c->cmd, "r");
  size_t n = 0;

  if (p != NULL) {
    size_t got;
    while (n < sizeof(c->out) - 1 && (got = fread(c->out + n, 1, sizeof(c->out) - 1 - n, p)) > 0)
      n += got;
    c->status = pclose(p);
  } else {
    c->status = -1;
  }
  c->out[n] = '\0';
  atomic_store(&c->done, 1);
}

static bool cmd_done(void *arg) {
  return atomic_load(&((cmd_run_t *)arg)->done) != 0;
}

Test(events_interop, node_reads_what_libmsvc_publishes) {
  const char *dir = interop_dir();
  static uv_loop_t loop; /* see fixture.h */
  msvc_events_t *ev;
  names_t n;
  cmd_run_t *c = calloc(1, sizeof(*c));
  uv_thread_t th;
  msvc_events_header_t hdrs[1] = {
      {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}};
  char want[256];

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "jsr");
  ev = open_events(&loop, S.uri, "/order-service");
  ensure_stream(&loop, ev, n.stream, n.filter);
  publish_n(&loop, ev, n.subject, 3, hdrs, 1);
  snprintf(c->cmd, sizeof(c->cmd), "cd '%s' && node interop.mjs consume %s %s %s node-reader 3",
           dir, S.uri, n.stream, n.subject);
  cr_assert_eq(uv_thread_create(&th, run_cmd, c), 0);
  cr_assert(run_until(&loop, cmd_done, c, 30000), "node did not finish");
  uv_thread_join(&th);
  cr_assert_eq(c->status, 0, "node failed: %s", c->out);
  cr_assert(strstr(c->out, "\"specversion\":\"1.0\"") != NULL, "%s", c->out);
  cr_assert(strstr(c->out, "\"source\":\"/order-service\"") != NULL, "%s", c->out);
  snprintf(want, sizeof(want), "\"type\":\"%s\"", n.subject);
  cr_assert(strstr(c->out, want) != NULL, "%s", c->out);
  cr_assert(strstr(c->out, "\"data\":{\"n\":2}") != NULL, "%s", c->out);
  snprintf(want, sizeof(want), "\"traceparent\":\"%s\"", hdrs[0].value);
  cr_assert(strstr(c->out, want) != NULL, "headers lost: %s", c->out);
  close_events(&loop, ev);
  finish_loop(&loop);
  free(c);
}

Test(events_interop, libmsvc_consumes_what_node_publishes) {
  const char *dir = interop_dir();
  static uv_loop_t loop; /* see fixture.h */
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  cmd_run_t *c = calloc(1, sizeof(*c));
  uv_thread_t th;

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "jsw");
  got_init(g, SETTLE_ACK);
  ev = open_events(&loop, S.uri, "/payment-service");
  ensure_stream(&loop, ev, n.stream, n.filter);
  subscribe(ev, &n, g, NULL);
  snprintf(c->cmd, sizeof(c->cmd), "cd '%s' && node interop.mjs publish %s %s 4", dir, S.uri,
           n.subject);
  cr_assert_eq(uv_thread_create(&th, run_cmd, c), 0);
  cr_assert(run_until(&loop, cmd_done, c, 30000), "node did not finish");
  uv_thread_join(&th);
  cr_assert_eq(c->status, 0, "node failed: %s", c->out);
  cr_assert(wait_count(&loop, &g->n, 4, 10000), "consumed %d of 4", g->n);
  cr_assert_eq(got_distinct(g, NULL), 4);
  cr_assert_str_eq(g->ids[0], "node-0");
  cr_assert_str_eq(g->ids[3], "node-3");
  cr_assert(strncmp(g->traceparent, "00-0af7651916cd43dd8448eb211c80319c-", 36) == 0, "%s",
            g->traceparent);
  cr_assert(strstr(g->data, "\"status\":\"authorized\"") != NULL, "%s", g->data);
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
  free(c);
}
