/* Test helper: registers <count> instances of <service> on <uri> with
 * <ttl_ms>, prints "ready" once all are visible, then keeps them alive until
 * it is killed. Exit status 2 on bad arguments, 1 on a registry failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/registry.h>

static int registered, wanted;

static void on_lease(msvc_registry_lease_t *lease, int status, void *data) {
  (void)lease;
  (void)data;
  if (status != 0) {
    fprintf(stderr, "registry_child: %s\n", msvc_strerror(status));
    exit(1);
  }
  if (++registered == wanted) {
    printf("ready\n");
    fflush(stdout);
  }
}

int main(int argc, char **argv) {
  uv_loop_t loop;
  msvc_registry_t *reg;
  msvc_registry_instance_t inst;
  int i, rc;

  if (argc != 5) {
    fprintf(stderr, "usage: registry_child <uri> <service> <count> <ttl_ms>\n");
    return 2;
  }
  wanted = atoi(argv[3]);
  if (uv_loop_init(&loop) != 0)
    return 1;
  if ((rc = msvc_registry_new(&loop, argv[1], NULL, &reg)) != 0) {
    fprintf(stderr, "registry_child: %s\n", msvc_strerror(rc));
    return 1;
  }
  for (i = 0; i < wanted; i++) {
    msvc_registry_instance_init(&inst);
    inst.service = argv[2];
    inst.address = "127.0.0.1";
    inst.port = (uint16_t)(20000 + i);
    rc = msvc_registry_register(reg, &inst,
                                (uint32_t)atoi(argv[4]), on_lease, NULL, NULL);
    if (rc != 0) {
      fprintf(stderr, "registry_child: %s\n", msvc_strerror(rc));
      return 1;
    }
  }
  return uv_run(&loop, UV_RUN_DEFAULT);
}
