/* A three-node JetStream cluster on loopback ports: a stream with three
 * replicas keeps every acknowledged event when one node is killed mid-run,
 * and the handle carries on through the other nodes. */
#include "conformance.h"
#include "nats_server.h"

#define NODES 3

static natsd_t N[NODES];

static void start_node(int i) {
  char name[16], cluster[64], routes[256];
  const char *extra[10];
  int n = 0;

  snprintf(name, sizeof(name), "n%d", i);
  snprintf(cluster, sizeof(cluster), "nats://127.0.0.1:%d", N[i].cluster_port);
  routes[0] = '\0';
  for (int j = 0; j < NODES; j++) {
    char r[64];
    if (j == i)
      continue;
    snprintf(r, sizeof(r), "%snats://127.0.0.1:%d", routes[0] ? "," : "", N[j].cluster_port);
    strncat(routes, r, sizeof(routes) - strlen(routes) - 1);
  }
  extra[n++] = "-n";
  extra[n++] = name;
  extra[n++] = "--cluster_name";
  extra[n++] = "msvc";
  extra[n++] = "--cluster";
  extra[n++] = cluster;
  extra[n++] = "--routes";
  extra[n++] = routes;
  extra[n] = NULL;
  natsd_start_args(&N[i], extra);
}

/* A free port none of the nodes uses yet: the kernel may hand out a port
 * it just released again, and a node given its peer's cluster port as its
 * own never starts. */
static int distinct_port(int upto) {
  for (;;) {
    int port = natsd_free_port();
    bool used = false;
    for (int j = 0; j <= upto && !used; j++)
      used = port == N[j].port || port == N[j].cluster_port;
    if (!used)
      return port;
  }
}

static void setup(void) {
  if (!natsd_available())
    cr_skip_test("nats-server is not installed");
  for (int i = 0; i < NODES; i++) {
    natsd_init(&N[i]);
    N[i].port = 0;
    N[i].port = distinct_port(i);
    snprintf(N[i].uri, sizeof(N[i].uri), "nats://127.0.0.1:%d", N[i].port);
    N[i].cluster_port = distinct_port(i);
  }
  for (int i = 0; i < NODES; i++)
    start_node(i);
}

static void teardown(void) {
  for (int i = 0; i < NODES; i++)
    natsd_stop(&N[i]);
}

/* Time one step may take while the cluster elects leaders. */
#define RETRY_BUDGET_MS 30000

TestSuite(events_nats_cluster, .init = setup, .fini = teardown, .timeout = 110);

static uint64_t now_ms(uv_loop_t *loop) {
  uv_update_time(loop);
  return uv_now(loop);
}

/* Publishes each event until the cluster stores it, as an outbox relay
 * does: the same id each time. While a stream's leader is being elected the
 * broker answers at once that no stream takes the subject, so the budget is
 * time (an election on a loaded machine takes seconds), not a count. */
static void publish_acked(uv_loop_t *loop, msvc_events_t *ev, const char *subject, int from,
                          int to) {
  char id[32], data[32];
  pubrec_t p;

  pubrec_init(&p);
  for (int i = from; i < to; i++) {
    msvc_event_t e = {.type = "order.created", .subject = subject, .id = id, .data = data};
    uint64_t deadline = now_ms(loop) + RETRY_BUDGET_MS;

    snprintf(id, sizeof(id), "c-%d", i);
    snprintf(data, sizeof(data), "{\"n\":%d}", i);
    e.data_len = strlen(data);
    for (;;) {
      int before = p.calls;
      cr_assert_lt(now_ms(loop), deadline, "event %d never stored: %s", i,
                   msvc_strerror(p.last_status));
      if (msvc_events_publish(ev, &e, on_published, &p) != MSVC_OK) {
        run_for(loop, 100);
        continue;
      }
      wait_count(loop, &p.calls, before + 1, 10000);
      if (p.last_status == MSVC_OK)
        break;
      run_for(loop, 200);
    }
  }
}

Test(events_nats_cluster, node_killed_mid_run_loses_nothing) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  msvc_events_stream_opts_t so;
  msvc_events_sub_opts_t o;
  const char *subjects[1];
  got_t *g = calloc(1, sizeof(*g));
  names_t n;
  char uri[256];
  int status = 1, total = 200;

  snprintf(uri, sizeof(uri), "nats://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", N[0].port,
           N[1].port, N[2].port);
  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "cl");
  got_init(g, SETTLE_ACK);
  ev = open_events(&loop, uri, "/order-service");
  subjects[0] = n.filter;
  msvc_events_stream_opts_init(&so);
  so.name = n.stream;
  so.subjects = subjects;
  so.subject_count = 1;
  so.replicas = 3;
  /* The cluster elects its JetStream leader first: retry until it can. */
  for (uint64_t deadline = now_ms(&loop) + RETRY_BUDGET_MS; now_ms(&loop) < deadline;) {
    status = 1;
    cr_assert_eq(msvc_events_stream_ensure(ev, &so, on_done_status, &status), MSVC_OK);
    run_until(&loop, status_set, &status, 10000);
    if (status == MSVC_OK)
      break;
    run_for(&loop, 250);
  }
  cr_assert_eq(status, MSVC_OK, "replicated stream: %s", msvc_strerror(status));
  msvc_events_sub_opts_init(&o);
  o.ack_wait_ms = 2000;
  subscribe(ev, &n, g, &o);
  publish_acked(&loop, ev, n.subject, 0, total / 2);
  /* the node this handle is connected to first */
  natsd_kill(&N[0], SIGKILL);
  publish_acked(&loop, ev, n.subject, total / 2, total);
  for (uint64_t deadline = now_ms(&loop) + RETRY_BUDGET_MS;
       got_distinct(g, NULL) < total && now_ms(&loop) < deadline;)
    run_for(&loop, 25);
  cr_assert_eq(got_distinct(g, NULL), total, "consumed %d distinct of %d",
               got_distinct(g, NULL), total);
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
}
