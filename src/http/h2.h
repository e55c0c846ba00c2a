/*
 * HTTP/2 inside the HTTP block, on nghttp2 (built when LIBMSVC_HAVE_NGHTTP2).
 *
 * Design
 * ------
 * HTTP/2 is another framing of the same requests, not another server: a
 * server connection (msvc__conn_t) starts as HTTP/1.1 and switches to
 * HTTP/2 when its first bytes are the client connection preface (h2c with
 * prior knowledge) or when TLS negotiated `h2` by ALPN. From then on the
 * connection's input goes to an nghttp2 server session (msvc__h2s_t) and
 * its output comes from that session, through the same transport, the
 * same double write buffer and the same high-water mark as HTTP/1.1: the
 * session is asked for frames whenever the last write completed, so a
 * 16 MiB answer is framed piece by piece as the peer's flow-control window
 * and the socket allow.
 *
 * Each stream gets an ordinary msvc_http_req_t (req->h2 points at its
 * stream state): pseudo-headers become the method and target, the other
 * fields the head, DATA the body; once END_STREAM arrives the request goes
 * through the router, the middleware and the handler exactly as an
 * HTTP/1.1 request does. The response functions of response.c branch to
 * msvc__h2_res_*() below for such requests: the head becomes a HEADERS
 * frame, written bytes wait in the stream's buffer until nghttp2 pulls
 * them as DATA, and trailers (msvc_http_res_trailer()) close the stream in
 * a final HEADERS frame. A RST_STREAM from the peer, or the connection
 * going away, detaches the request (msvc__req_detach()): the handler's
 * cancel callback runs and its late answer is dropped. Streams are not in
 * the connection's pipeline queue: they finish in any order.
 *
 * Limits: SETTINGS advertise max concurrent streams, the per-stream window
 * and the header list size; nghttp2 enforces frame sizes, flow control,
 * the HPACK table and the stream limit (protocol errors end the connection
 * with GOAWAY and the matching code). On top of it: header bytes and count
 * per request (431), body size (413), and a budget of streams the client
 * resets before their answer went out, per connection (rapid reset):
 * beyond it the connection ends with GOAWAY(ENHANCE_YOUR_CALM). A drain, or
 * msvc_http_res_close_connection() once its stream ended, sends GOAWAY
 * with the last stream id processed, lets open streams finish and then
 * closes. A cleartext connection over max_connections is answered by its
 * first bytes: the preface gets SETTINGS and GOAWAY, anything else a 503.
 *
 * Client: msvc__h2c_*() give an endpoint of the HTTP client one (or
 * opts.h2_conns_per_endpoint) multiplexed connection(s); each call is a
 * stream on it. The call machinery of client.c (timeouts, retries, attempt
 * hook for balancer and breaker) is unchanged; only the attempt's
 * transport differs. Status, headers, body and trailers land in the same
 * msvc_http_response_t. Over TLS the connection offers only `h2` by ALPN.
 *
 * What a protocol on top (gRPC) uses, all public API:
 *   server  a route handler as usual; msvc_http_req_version() == 20,
 *           msvc_http_req_header(req, "te" / "content-type" /
 *           "grpc-timeout"), msvc_http_req_body(); answer with
 *           msvc_http_res_start(res, 200, "application/grpc"), any number
 *           of msvc_http_res_write() over time (msvc_http_res_pending()
 *           says what still waits for the peer's window), then
 *           msvc_http_res_trailer(res, "grpc-status", "0") and
 *           msvc_http_res_end(). A trailers-only error: start, trailers,
 *           end with no write. msvc_http_req_on_cancel() hears RST_STREAM;
 *           the handler still ends the response (it is dropped).
 *   client  msvc_http_request_t.http2 (or msvc_service_request_t.http2
 *           through discovery and balancing); on_chunk for streamed
 *           replies; msvc_http_response_trailer() in on_done;
 *           msvc_http_call_cancel() resets the stream.
 */
#ifndef MSVC_HTTP_H2_H
#define MSVC_HTTP_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The client connection preface (RFC 9113 3.4). */
#define MSVC__H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define MSVC__H2_PREFACE_LEN 24

/* Compares the first bytes of a connection with the preface: 1 when all
 * 24 bytes are there and match, 0 while what is there matches so far, -1
 * when it is not HTTP/2. Pure; available without nghttp2. */
int msvc__h2_preface_check(const char *data, size_t len);

#ifdef MSVC_HAVE_NGHTTP2

struct msvc__conn_s;
struct msvc_http_req_s;
struct msvc_http_call_s;
struct msvc__endpoint_s;
struct msvc_http_request_s;
typedef struct msvc__h2s_s msvc__h2s_t;
typedef struct msvc__h2stream_s msvc__h2stream_t;

/* ---- server ------------------------------------------------------------ */

/* Switches c to HTTP/2 (c->h2); the bytes read so far (which start with
 * the preface, or follow an ALPN `h2` handshake) go to msvc__h2s_feed(). */
int msvc__h2s_new(struct msvc__conn_s *c, msvc__h2s_t **out);
void msvc__h2s_free(msvc__h2s_t *s);
/* Input from the transport. Returns 0, or a negative code after which the
 * connection is to be closed once its GOAWAY is written. */
int msvc__h2s_feed(msvc__h2s_t *s, const char *data, size_t len);
/* Moves frames into the connection's write buffer up to its high-water
 * mark. Returns false when the session is over (nothing more to read or
 * write): the caller closes the connection once the buffer is written. */
bool msvc__h2s_pump(msvc__h2s_t *s);
/* Frames are waiting to be produced (not counting flow-control stalls). */
bool msvc__h2s_want_write(const msvc__h2s_t *s);
/* Streams still open. */
uint32_t msvc__h2s_streams(const msvc__h2s_t *s);
/* Every open stream is still receiving its request (nothing is owed to
 * the client): the connection's silence is then limited. */
bool msvc__h2s_all_receiving(const msvc__h2s_t *s);
/* Graceful shutdown: GOAWAY with the last stream processed. */
void msvc__h2s_goaway(msvc__h2s_t *s);
/* The connection is going away: every stream's request is detached. */
void msvc__h2s_detach_all(msvc__h2s_t *s);

/* Response writers for a request that came over HTTP/2 (req->h2 set). */
int msvc__h2_res_head(struct msvc_http_req_s *req, int status,
                      const char *ctype, size_t body_len, bool stream);
int msvc__h2_res_data(struct msvc_http_req_s *req, const void *data, size_t len);
/* The body is complete: trailers (if any) follow it. */
int msvc__h2_res_end(struct msvc_http_req_s *req);
size_t msvc__h2_res_pending(const struct msvc_http_req_s *req);

/* ---- client ------------------------------------------------------------ */

/* Keeps what an HTTP/2 attempt sends (method, path, authority, fields,
 * body) in the call; sets call->h2. */
int msvc__h2c_prepare(struct msvc_http_call_s *call,
                      const struct msvc_http_request_s *r, const char *path,
                      size_t path_len);
/* Starts the call's attempt on a stream of one of the endpoint's HTTP/2
 * connections, opening one when none has room. Failures end the attempt
 * through msvc__call_attempt_end(). */
void msvc__h2c_dispatch(struct msvc_http_call_s *call);
/* The attempt ends early (timeout, cancel): resets the call's stream. */
void msvc__h2c_abandon(struct msvc_http_call_s *call);
/* Closes the endpoint's HTTP/2 connections (client closing). */
void msvc__h2c_close_all(struct msvc__endpoint_s *ep);

#endif /* MSVC_HAVE_NGHTTP2 */

#endif /* MSVC_HTTP_H2_H */
