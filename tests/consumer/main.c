/* The smallest program a user writes against an installed libmsvc. */
#include <cjson/cJSON.h>
#include <msvc/msvc.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

int main(void) {
  uv_loop_t loop;

  if (msvc_version() != MSVC_VERSION_HEX) {
    fprintf(stderr, "header/library version mismatch\n");
    return 1;
  }
  if (strcmp(msvc_err_name(MSVC_EBREAKER_OPEN), "EBREAKER_OPEN") != 0)
    return 1;
  /* libuv is a public dependency: it must come along with libmsvc. */
  if (uv_loop_init(&loop) != 0 || uv_run(&loop, UV_RUN_DEFAULT) != 0 ||
      uv_loop_close(&loop) != 0)
    return 1;
  /* cJSON is public too: msvc_http_req_json() hands out its documents, so a
   * program linking only libmsvc must be able to call it. */
  {
    cJSON *doc = cJSON_Parse("{\"ok\":true}");
    int ok = doc != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "ok"));
    cJSON_Delete(doc);
    if (!ok)
      return 1;
  }
  msvc_log_write(MSVC_LOG_INFO, "consumer", NULL, 0, "libmsvc %s",
                 msvc_version_string());
  printf("ok %s\n", msvc_version_string());
  return 0;
}
