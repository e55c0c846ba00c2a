/*
 * Private to the grpc block: the wire pieces of gRPC over HTTP/2 that need
 * no socket (message framing and compression, grpc-timeout, grpc-message
 * escaping, metadata values), so that they are tested and fuzzed alone.
 */
#ifndef MSVC_GRPC_INTERNAL_H
#define MSVC_GRPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msvc/grpc.h>

#include "../msvc-internal.h"

/* Length-prefixed message: 1 byte compressed flag, 4 bytes big-endian
 * length, then the (maybe compressed) message. */
#define MSVC__GRPC_PREFIX 5

typedef enum {
  MSVC__GRPC_ENC_IDENTITY = 0,
  MSVC__GRPC_ENC_GZIP = 1
} msvc__grpc_enc_t;

/* Parses a grpc-encoding / grpc-accept-encoding token; -1 when unknown. */
int msvc__grpc_enc_parse(const char *s, size_t len);
const char *msvc__grpc_enc_name(msvc__grpc_enc_t enc);

/* Appends one framed message to out. With enc gzip the message is
 * compressed (and sent uncompressed, flag 0, when that is not smaller).
 * MSVC_ETOOLARGE when len > max_send (0: no limit); MSVC_ENOMEM. */
int msvc__grpc_frame_encode(msvc__buf_t *out, const void *msg, size_t len,
                            msvc__grpc_enc_t enc, size_t max_send);

/* Incremental reader of framed messages from a DATA stream. It buffers at
 * most one message (the declared length is checked against max_recv before
 * anything of the body is kept) and decompresses into at most max_recv
 * bytes, so neither a lying length nor a decompression bomb costs more
 * memory than the limit. */
typedef struct msvc__grpc_reader_s {
  size_t max_recv;        /* decoded message limit */
  msvc__grpc_enc_t enc;   /* the stream's grpc-encoding */
  uint8_t hdr[MSVC__GRPC_PREFIX];
  size_t hdr_have;
  uint8_t *body;          /* the message being received */
  size_t body_need;
  size_t body_have;
  uint8_t *out;           /* the last message handed out (decompressed) */
} msvc__grpc_reader_t;

void msvc__grpc_reader_init(msvc__grpc_reader_t *r, size_t max_recv, msvc__grpc_enc_t enc);
void msvc__grpc_reader_free(msvc__grpc_reader_t *r);
/* Takes bytes from data until one message is complete. Returns 1 with
 * *msg and *msg_len (borrowed until the next call) when one is, 0 when all of
 * data was taken and more is needed, or an error: MSVC_ETOOLARGE (over
 * max_recv, compressed or not), MSVC_EPROTO (bad flag, compressed message
 * on an identity stream, corrupt gzip), MSVC_ENOMEM. *used says how much of
 * data was taken in every case. */
int msvc__grpc_reader_feed(msvc__grpc_reader_t *r, const uint8_t *data, size_t len,
                           size_t *used, const uint8_t **msg, size_t *msg_len);
/* Whether the stream ended between two messages (nothing half read). */
bool msvc__grpc_reader_idle(const msvc__grpc_reader_t *r);

/* Inflates a gzip member into at most max bytes; MSVC_ETOOLARGE beyond,
 * MSVC_EPROTO when corrupt. *out is the caller's (msvc__free). */
int msvc__grpc_gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **out,
                      size_t *out_len);

/* grpc-timeout: "<1..8 digits><H|M|S|m|u|n>". Parse gives milliseconds,
 * rounded up so that a sub-millisecond timeout is not "none"; MSVC_EINVAL
 * when malformed. Format writes the shortest exact-enough form. */
int msvc__grpc_timeout_parse(const char *s, size_t len, uint64_t *ms);
void msvc__grpc_timeout_format(uint64_t ms, char out[16]);

/* grpc-message: percent-encoding of bytes outside 0x20..0x7e and '%'.
 * Decode is lenient as the spec asks: a bad escape is kept as it is. */
int msvc__grpc_pct_encode(msvc__buf_t *out, const char *s, size_t len);
int msvc__grpc_pct_decode(msvc__buf_t *out, const char *s, size_t len);

/* -bin metadata: base64 (standard alphabet); decode takes padded and
 * unpadded input. */
int msvc__grpc_b64_encode(msvc__buf_t *out, const void *data, size_t len);
int msvc__grpc_b64_decode(msvc__buf_t *out, const char *s, size_t len);

/* Checks a metadata key (lower case, 0-9a-z_-.); reserved says whether a
 * grpc- key is allowed (transport-level keys). */
bool msvc__grpc_key_ok(const char *key, size_t len, bool reserved);

/* Adds an entry received on the wire: -bin values are base64-decoded. */
int msvc__grpc_metadata_add_wire(msvc_grpc_metadata_t *md, const char *key, size_t klen,
                                 const char *value, size_t vlen);
/* Calls fn for every entry as it goes on the wire (-bin values encoded). */
typedef int (*msvc__grpc_md_fn)(void *data, const char *key, const char *value, size_t len);
int msvc__grpc_metadata_wire(const msvc_grpc_metadata_t *md, msvc__grpc_md_fn fn, void *data);

/* Counts one finished call in family (labels service, method, code); the
 * children are looked up once per code and kept in cache. NULL family: no
 * metrics. */
#include <stdatomic.h>

#include <msvc/metrics.h>

#define MSVC__GRPC_CODES 17
typedef struct msvc__grpc_counted_s {
  msvc_metrics_family_t *fam;
  const char *service;
  const char *method;
  _Atomic(msvc_metrics_counter_t *) by_code[MSVC__GRPC_CODES];
} msvc__grpc_counted_t;

/* Registers (or finds) the family name in reg; MSVC_OK or the metrics
 * error. */
int msvc__grpc_family(msvc_metrics_registry_t *reg, const char *name, const char *help,
                      msvc_metrics_family_t **out);
void msvc__grpc_count(msvc__grpc_counted_t *c, int code);

/* The key under which a gRPC call's deadline (uint64_t, msvc_now_ms()
 * time) hangs on its HTTP request, for calls made while serving it. */
#define MSVC__GRPC_DEADLINE_KEY "msvc.grpc.deadline"

/* ---- server internals shared by server.c, health.c, mount_service.c ---- */
typedef struct msvc__grpc_mount_s {
  msvc_grpc_server_t *srv;
  msvc_service_t *svc;
} msvc__grpc_mount_t;

void msvc__grpc_server_health(msvc_grpc_server_t *srv, msvc_grpc_health_fn *fn, void **data);
int msvc__grpc_server_set_health(msvc_grpc_server_t *srv, msvc_grpc_health_fn fn, void *data);
bool msvc__grpc_server_has_health(const msvc_grpc_server_t *srv);
bool msvc__grpc_server_has_service(const msvc_grpc_server_t *srv, const char *name);
msvc__grpc_mount_t *msvc__grpc_server_mount_slot(msvc_grpc_server_t *srv);
int msvc__grpc_server_routes(msvc_grpc_server_t *srv, msvc_service_t *svc);

/* ---- trace.c ---------------------------------------------------------------
 * Names the span of a call (path "/package.Service/Method") and sets its
 * rpc.* attributes and status for the final code (conventions of the
 * server or the client side). NULL span: nothing. Does not end it. */
struct msvc_span_s;
void msvc__grpc_span_finish(struct msvc_span_s *s, const char *path, int code,
                            const char *message, bool server);

#endif /* MSVC_GRPC_INTERNAL_H */
