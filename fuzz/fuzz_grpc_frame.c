/* Length-prefixed gRPC messages from arbitrary bytes, as a peer sends them
 * in DATA frames, split at an input-chosen point and read with gzip on.
 * Every message handed out must fit the limit and re-encode to something
 * that reads back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT 65536

static void check(const uint8_t *msg, size_t len) {
  msvc__buf_t b;
  msvc__grpc_reader_t r;
  const uint8_t *again = NULL;
  size_t alen = 0, used = 0;

  if (len > LIMIT)
    abort(); /* a fuzzing oracle, not library code */
  msvc__buf_init(&b, 0);
  if (msvc__grpc_frame_encode(&b, msg, len, MSVC__GRPC_ENC_GZIP, LIMIT) != MSVC_OK) {
    msvc__buf_free(&b);
    return;
  }
  msvc__grpc_reader_init(&r, LIMIT, MSVC__GRPC_ENC_GZIP);
  if (msvc__grpc_reader_feed(&r, (uint8_t *)b.data, b.len, &used, &again, &alen) != 1 ||
      alen != len || (len > 0 && memcmp(again, msg, len) != 0))
    abort();
  msvc__grpc_reader_free(&r);
  msvc__buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc__grpc_reader_t r;
  size_t split, off = 0, end;
  int rounds = 0;

  if (size < 1)
    return 0;
  split = data[0] % (size);
  data++;
  size--;
  msvc__grpc_reader_init(&r, LIMIT, MSVC__GRPC_ENC_GZIP);
  end = split < size ? split : size;
  while (rounds++ < 1000) {
    const uint8_t *msg = NULL;
    size_t mlen = 0, used = 0;
    int rc = msvc__grpc_reader_feed(&r, data + off, end - off, &used, &msg, &mlen);

    off += used;
    if (rc < 0)
      break;
    if (rc == 1)
      check(msg, mlen);
    if (rc == 0 || off == end) {
      if (end == size)
        break;
      end = size;
    }
  }
  msvc__grpc_reader_free(&r);
  return 0;
}
