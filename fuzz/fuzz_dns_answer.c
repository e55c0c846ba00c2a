/* DNS answers from arbitrary bytes: the parser on the whole input, then the
 * input cut into the four replies of one resolution (each part preceded by
 * a two-byte length; a part whose length has the top bit set stands for a
 * lookup that got no answer). Whatever set comes out must be valid: every
 * instance passes the registry's own validation. The dns:// parameters are
 * parsed from the same bytes as text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_set(const msvc_registry_set_t *set) {
  size_t i;

  for (i = 0; i < msvc_registry_set_count(set); i++)
    if (msvc__reg_instance_validate(msvc_registry_set_at(set, i)) != MSVC_OK)
      abort(); /* a fuzzing oracle, not library code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES];
  msvc__dns_msg_t msg;
  msvc__dns_config_t cfg;
  msvc_registry_set_t *set = NULL;
  uint32_t ttl;
  bool negative;
  char why[512], *text;
  size_t off = 0, i;

  if (msvc__dns_parse(data, size, &msg) == MSVC_OK)
    msvc__dns_msg_free(&msg);
  memset(r, 0, sizeof(r));
  for (i = 0; i < MSVC__DNS_NQUERIES; i++) {
    size_t len;
    if (off + 2 > size) {
      r[i].err = MSVC_ETIMEDOUT;
      continue;
    }
    len = ((size_t)data[off] << 8) | data[off + 1];
    off += 2;
    if (len & 0x8000) {
      r[i].err = (len & 1) ? MSVC_ETIMEDOUT : MSVC_EIO;
      continue;
    }
    if (len > size - off)
      len = size - off;
    r[i].buf = data + off;
    r[i].len = len;
    off += len;
  }
  if (msvc__dns_build_set("svc", r, 8080, &set, &ttl, &negative, why,
                          sizeof(why)) == MSVC_OK) {
    check_set(set);
    if (negative && msvc_registry_set_count(set) != 0)
      abort();
    msvc_registry_set_unref(set);
  }
  if ((text = malloc(size + 1)) != NULL) {
    memcpy(text, data, size);
    text[size] = '\0';
    (void)msvc__dns_config_parse(text, &cfg, why, sizeof(why));
    free(text);
  }
  return 0;
}
