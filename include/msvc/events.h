/**
 * @file msvc/events.h
 * @brief Asynchronous messaging: publish events to a broker and consume them
 *        through durable subscriptions shared by the instances of a service.
 *
 * An events handle (#msvc_events_t) is bound to one `uv_loop_t` (the
 * caller's) and to one backend chosen by a URI:
 *
 * | URI | backend |
 * |---|---|
 * | `memory://` | in-process broker: tests and single-process programs |
 * | `nats://host:port` | NATS JetStream (built when libnats is found) |
 *
 * What every backend gives:
 *
 * - **Acknowledged publish.** msvc_events_publish() returns at once; its
 *   callback says whether the broker has stored the event.
 * - **Durable, shared subscriptions.** Every subscription names a durable
 *   consumer (`durable`). All subscriptions with the same durable name, in
 *   this process or in other instances of the service, share one cursor:
 *   each event is delivered to one of them (a consumer group).
 * - **At-least-once delivery with explicit settlement.** A handler settles
 *   each message once: msvc_events_ack() (done), msvc_events_nack() (deliver
 *   again after a backoff), or msvc_events_term() (give up now). A message
 *   not settled within `ack_wait_ms` (its instance died) is delivered again,
 *   possibly to another instance. After `max_deliveries` deliveries a nacked
 *   message is moved to the subscription's dead-letter subject with the
 *   reason of its last nack.
 * - **Flow control.** At most `max_unacked` messages of a subscription are
 *   handed to its handler and not yet settled.
 * - **Headers end to end.** Per-message headers (`traceparent`,
 *   `X-Request-Id`, ...) reach the consumer unchanged.
 * - **CloudEvents 1.0.** Every message body is a structured-mode JSON
 *   CloudEvent (`specversion`, `id`, `source`, `type`, `time`,
 *   `datacontenttype`, `data`). An event id is unique and stays the same
 *   across retries of the publish and across redeliveries, so consumers can
 *   deduplicate (see msvc_events_dedup_new()).
 *
 * Threading: every function taking an #msvc_events_t, a subscription or a
 * message must be called on the handle's loop thread, and every callback
 * runs on that thread, never on a thread of the client library and never
 * from inside the call that registered it. The envelope functions and the
 * dedup window are thread-safe and need no loop.
 *
 * @since 0.2
 */
#ifndef MSVC_EVENTS_H
#define MSVC_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <msvc/common.h>
#include <msvc/error.h>

#ifdef __cplusplus
extern "C" {
#endif

struct msvc_metrics_registry_s;

/** @brief An events handle: one backend connection bound to one loop. */
typedef struct msvc_events_s msvc_events_t;
/** @brief A subscription (one member of a durable consumer group). */
typedef struct msvc_events_sub_s msvc_events_sub_t;
/** @brief One delivered message, valid until it is settled. */
typedef struct msvc_events_msg_s msvc_events_msg_t;
/** @brief A bounded window of recently processed event ids. */
typedef struct msvc_events_dedup_s msvc_events_dedup_t;

/** @brief Largest event (serialised envelope) accepted by default: 1 MiB. */
#define MSVC_EVENTS_DEFAULT_MAX_BYTES (1024u * 1024u)
/** @brief Longest event id accepted (bytes, without the NUL). */
#define MSVC_EVENTS_ID_MAX 256u
/** @brief Header carrying the dead-letter reason on a dead-lettered message. */
#define MSVC_EVENTS_HDR_REASON "Msvc-Dead-Letter-Reason"
/** @brief Header carrying the original subject on a dead-lettered message. */
#define MSVC_EVENTS_HDR_SUBJECT "Msvc-Dead-Letter-Subject"
/** @brief Header carrying the number of deliveries on a dead-lettered message. */
#define MSVC_EVENTS_HDR_DELIVERIES "Msvc-Deliveries"
/** @brief Prefix of default dead-letter subjects: `dlq.<durable>`. */
#define MSVC_EVENTS_DLQ_PREFIX "dlq."
/** @brief Stream that holds every `dlq.>` subject (created on demand). */
#define MSVC_EVENTS_DLQ_STREAM "DLQ"

/** @brief One message header (name and value, NUL-terminated). */
typedef struct msvc_events_header_s {
  const char *name;  /**< Header name, e.g. "traceparent". */
  const char *value; /**< Header value. */
} msvc_events_header_t;

/**
 * @brief An event: what msvc_events_publish() sends, and what a delivered
 *        message carries (msvc_events_msg_event()).
 *
 * For publishing, fields left NULL get defaults. For a delivered message,
 * every string field is set (possibly to "") and borrowed from the message.
 */
typedef struct msvc_event_s {
  /** CloudEvents `type`, e.g. "order.created"; required. */
  const char *type;
  /** Subject published to; NULL: the type. */
  const char *subject;
  /** CloudEvents `id`; NULL: a fresh random id (32 hex digits). Give the
   *  same id when publishing the same event again (an outbox retry). */
  const char *id;
  /** CloudEvents `source`, e.g. "/order-service"; NULL: the handle's
   *  `source` option. */
  const char *source;
  /** CloudEvents `time` (RFC 3339); NULL: now, UTC, milliseconds. */
  const char *time;
  /** CloudEvents `datacontenttype`; NULL: "application/json". */
  const char *datacontenttype;
  /** The payload. With a JSON content type (`application/json` or any
   *  `+json` type) it must be one JSON value and is embedded as such;
   *  otherwise it is carried as a JSON string. May be NULL (no `data`). */
  const char *data;
  /** Length of data in bytes. */
  size_t data_len;
  /** Message headers (copied at publish); NULL when header_count is 0. */
  const msvc_events_header_t *headers;
  /** Number of headers. */
  size_t header_count;
} msvc_event_t;

/** @brief Connection state of a handle (see msvc_events_state()). */
typedef enum msvc_events_state_e {
  MSVC_EVENTS_CONNECTING = 0,  /**< Not connected yet (first attempt or
                                    retrying with backoff). */
  MSVC_EVENTS_CONNECTED = 1,   /**< Connected; publishes are acknowledged. */
  MSVC_EVENTS_DISCONNECTED = 2, /**< Lost the broker after being connected;
                                    reconnecting. */
  MSVC_EVENTS_CLOSED = 3       /**< msvc_events_close() was called. */
} msvc_events_state_t;

/** @brief Options of a handle; fill with msvc_events_opts_init(). */
typedef struct msvc_events_opts_s {
  size_t size; /**< sizeof(msvc_events_opts_t), set by msvc_events_opts_init(). */
  /** Default CloudEvents `source` of published events; NULL: "/msvc".
   *  Copied. */
  const char *source;
  /** Connection name shown by the broker; NULL: the source. Copied. */
  const char *name;
  /** Registry for the handle's metrics (`msvc_events_*`); NULL: none.
   *  Borrowed: must outlive the handle. */
  struct msvc_metrics_registry_s *metrics;
  /** Largest serialised event published or accepted on delivery; default
   *  #MSVC_EVENTS_DEFAULT_MAX_BYTES. A larger delivered message is nacked
   *  with the reason "oversized" (and so dead-lettered in the end). */
  size_t max_event_bytes;
  /** Longest wait for a publish acknowledgement before the callback gets
   *  MSVC_ETIMEDOUT; default 5000 ms. */
  uint32_t publish_timeout_ms;
  /** Publishes that may await their acknowledgement at once; default 4096.
   *  Beyond it msvc_events_publish() fails with MSVC_EEVENTS_BUSY. */
  uint32_t max_pending_publishes;
  /** First reconnect delay (jittered, doubling); default 250 ms. */
  uint32_t reconnect_min_ms;
  /** Largest reconnect delay; default 5000 ms. */
  uint32_t reconnect_max_ms;
  /** How long the broker may be unreachable before msvc_events_ready()
   *  reports false; default 15000 ms. A short blip never flips readiness. */
  uint32_t ready_grace_ms;
  /** Tracer (msvc/trace.h) for a producer span per publish and a consumer
   *  span per delivery of messages that carry a `traceparent` header; the
   *  header is rewritten to the new span's context both ways, so a handler
   *  passing it on continues the trace. NULL (default): no spans. Borrowed:
   *  must outlive the handle. @since 0.2 */
  struct msvc_tracer_s *tracer;
} msvc_events_opts_t;

/** @brief Options of a stream; fill with msvc_events_stream_opts_init(). */
typedef struct msvc_events_stream_opts_s {
  size_t size; /**< Set by msvc_events_stream_opts_init(). */
  /** Stream name, e.g. "ORDERS" (letters, digits, '-', '_'); required. */
  const char *name;
  /** Subjects stored by the stream, e.g. "order.>"; required, at least one. */
  const char *const *subjects;
  /** Number of subjects. */
  size_t subject_count;
  /** Copies kept by a clustered broker, 1..5; default 1. */
  unsigned replicas;
  /** Age after which events are dropped, in ms; 0 (default): kept forever. */
  uint64_t max_age_ms;
  /** Window in which the broker drops a second publish with the same event
   *  id, in ms; 0: the broker's default (two minutes for JetStream). */
  uint64_t duplicate_window_ms;
} msvc_events_stream_opts_t;

/** @brief Options of a subscription; fill with msvc_events_sub_opts_init(). */
typedef struct msvc_events_sub_opts_s {
  size_t size; /**< Set by msvc_events_sub_opts_init(). */
  /** Stream holding the subject; required. */
  const char *stream;
  /** Subject filter, wildcards allowed ("order.created", "payment.*",
   *  "order.>"); required. */
  const char *subject;
  /** Durable consumer name, shared by every instance of the consuming
   *  service (e.g. "payment-service"); required, letters, digits, '-', '_'. */
  const char *durable;
  /** Messages handed to the handler and not yet settled, 1..100000;
   *  default 64. */
  uint32_t max_unacked;
  /** Deliveries of one message before a nack dead-letters it, 1..1000;
   *  default 5. */
  uint32_t max_deliveries;
  /** Time after which a message handed out and not settled is delivered
   *  again; default 30000 ms. */
  uint32_t ack_wait_ms;
  /** Delay before the redelivery of a message nacked with delay 0 after its
   *  first delivery; doubles with each delivery (with jitter); default
   *  500 ms. */
  uint32_t backoff_min_ms;
  /** Largest nack delay; default 30000 ms. */
  uint32_t backoff_max_ms;
  /** Subject dead-lettered messages go to; NULL: `dlq.<durable>` (stored in
   *  the stream #MSVC_EVENTS_DLQ_STREAM, which is created when missing).
   *  An explicit subject must be held by a stream of the caller's. */
  const char *dead_letter;
  /** Start with events published after the consumer is created rather than
   *  with every event the stream holds; default false. Ignored when the
   *  durable consumer already exists. */
  bool deliver_new;
  /** Hand over bodies that are not CloudEvents envelopes too (malformed, or
   *  larger than the handle's `max_event_bytes`) instead of rejecting them
   *  to the dead-letter subject: for readers of a dead-letter subject, where
   *  such bodies end, and of foreign producers. The event of such a message
   *  has "" for every attribute, `datacontenttype`
   *  "application/octet-stream" and the whole body as `data` (also
   *  msvc_events_msg_body()); its headers are there as usual. Default
   *  false. @since 0.2 */
  bool accept_raw;
} msvc_events_sub_opts_t;

/**
 * @brief Completion of msvc_events_publish().
 * @param status    #MSVC_OK: the broker stored the event (a duplicate of an
 *                  id already stored counts as stored). MSVC_ETIMEDOUT: no
 *                  acknowledgement within `publish_timeout_ms` (the event
 *                  may or may not be stored: publish again with the same
 *                  id). MSVC_EEVENTS_NO_STREAM: no stream holds the subject.
 *                  MSVC_EEVENTS_UNAVAILABLE: not connected, or the
 *                  connection dropped before the acknowledgement (the event
 *                  may be stored: publish again with the same id). MSVC_ECLOSED:
 *                  the handle was closed first.
 * @param event_id  The event's id (given or generated); valid during the call.
 * @param data      The pointer given to msvc_events_publish().
 */
typedef void (*msvc_events_publish_cb)(int status, const char *event_id, void *data);

/**
 * @brief Completion of msvc_events_stream_ensure().
 * @param status  #MSVC_OK, or an error (MSVC_EEVENTS_UNAVAILABLE,
 *                MSVC_EEVENTS_BROKER with the broker's words in the log,
 *                MSVC_ECLOSED).
 * @param data    The pointer given with the request.
 */
typedef void (*msvc_events_done_cb)(int status, void *data);

/**
 * @brief Receives one message of a subscription.
 *
 * The handler owns the message until it settles it with msvc_events_ack(),
 * msvc_events_nack() or msvc_events_term(), now or later (after a database
 * write on the worker pool, for instance). Not settling it keeps it counted
 * against `max_unacked` and lets the broker deliver it again after
 * `ack_wait_ms`.
 *
 * Messages whose body is not a valid CloudEvent, or is larger than
 * `max_event_bytes`, never reach the handler: they are nacked with the
 * reason "malformed envelope: ..." or "oversized".
 *
 * @param sub   The subscription.
 * @param msg   The message.
 * @param data  The pointer given to msvc_events_subscribe().
 */
typedef void (*msvc_events_handler_fn)(msvc_events_sub_t *sub, msvc_events_msg_t *msg,
                                       void *data);

/** @brief Called once when a closed handle has released everything. */
typedef void (*msvc_events_close_cb)(void *data);

/**
 * @brief Called on every change of msvc_events_state().
 * @param ev     The handle.
 * @param state  The new state.
 * @param data   The pointer given to msvc_events_on_state().
 */
typedef void (*msvc_events_state_cb)(msvc_events_t *ev, msvc_events_state_t state,
                                     void *data);

/* ---- handle --------------------------------------------------------------- */

/**
 * @brief Fill options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.2
 */
MSVC_API void msvc_events_opts_init(msvc_events_opts_t *opts);

/**
 * @brief Create a handle on a backend chosen by URI.
 *
 * Returns at once; a network backend connects in the background (state
 * #MSVC_EVENTS_CONNECTING) and keeps retrying with jittered backoff,
 * logging one line when the broker is unreachable and one when it is
 * reached. Publishes, stream and subscription requests made before the
 * connection is up wait for it (publishes within `publish_timeout_ms`).
 *
 * @param loop    The loop; borrowed, must outlive the handle.
 * @param uri     `memory://` or `nats://host[:port]` (port default 4222);
 *                copied.
 * @param opts    Options, or NULL for the defaults; copied.
 * @param out     Receives the handle.
 * @param err     Receives a one-line explanation on failure; may be NULL.
 * @param errlen  Size of err (#MSVC_ERRMSG_MAX is always enough).
 * @return #MSVC_OK; MSVC_EINVAL (NULL argument, options not initialised or
 *         out of range); MSVC_EURI (malformed URI or unknown scheme);
 *         MSVC_ENOTSUP (`nats://` in a build without libnats); MSVC_ENOMEM;
 *         or a libuv error.
 * @note Free with msvc_events_close().
 * @since 0.2
 */
MSVC_API int msvc_events_new(uv_loop_t *loop, const char *uri,
                             const msvc_events_opts_t *opts, msvc_events_t **out,
                             char *err, size_t errlen);

/**
 * @brief Close a handle.
 *
 * Stops every subscription (messages not settled are left to the broker,
 * which delivers them again after `ack_wait_ms`; settling them afterwards
 * returns MSVC_ECLOSED and frees them), fails publishes still awaiting
 * acknowledgement with MSVC_ECLOSED, disconnects, and calls cb once every
 * libuv handle is closed. Blocks the loop thread at most for the client
 * library's own shutdown (well under a second).
 *
 * @param ev    The handle; NULL is a no-op (cb is then not called).
 * @param cb    Called once on the loop thread when done; may be NULL.
 * @param data  Passed to cb.
 * @since 0.2
 */
MSVC_API void msvc_events_close(msvc_events_t *ev, msvc_events_close_cb cb, void *data);

/**
 * @brief The backend's name: "memory" or "nats".
 * @param ev  The handle.
 * @return A static string; "" for NULL.
 * @since 0.2
 */
MSVC_API const char *msvc_events_backend(const msvc_events_t *ev);

/**
 * @brief The current connection state (memory: always connected).
 * @param ev  The handle.
 * @return The state; #MSVC_EVENTS_CLOSED for NULL.
 * @since 0.2
 */
MSVC_API msvc_events_state_t msvc_events_state(const msvc_events_t *ev);

/**
 * @brief Whether the handle counts as ready: connected, or unreachable for
 *        less than `ready_grace_ms` after having been connected.
 *
 * Readiness checks use this so that a broker restart does not take the
 * service out of its load balancer.
 *
 * @param ev      The handle.
 * @param detail  Receives a short static description of the state
 *                ("connected", "connecting", "reconnecting", "unreachable",
 *                "closed"); may be NULL.
 * @return true when ready.
 * @since 0.2
 */
MSVC_API bool msvc_events_ready(const msvc_events_t *ev, const char **detail);

/**
 * @brief Be told of every state change (one listener; NULL removes it).
 * @param ev    The handle.
 * @param cb    Called on the loop thread; never from inside this call.
 * @param data  Passed to cb.
 * @since 0.2
 */
MSVC_API void msvc_events_on_state(msvc_events_t *ev, msvc_events_state_cb cb, void *data);

/* ---- streams -------------------------------------------------------------- */

/**
 * @brief Fill stream options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.2
 */
MSVC_API void msvc_events_stream_opts_init(msvc_events_stream_opts_t *opts);

/**
 * @brief Create a stream, or update an existing one to these subjects.
 *
 * A publish to a subject no stream holds fails with
 * MSVC_EEVENTS_NO_STREAM, so a producing service ensures its stream at
 * start. The request waits for the connection when there is none yet.
 *
 * @param ev    The handle.
 * @param opts  The stream; copied.
 * @param cb    Called once on the loop thread; may be NULL.
 * @param data  Passed to cb.
 * @return #MSVC_OK (cb will be called); MSVC_EINVAL (bad name, no
 *         subjects, replicas out of range); MSVC_ECLOSED; MSVC_ENOMEM.
 * @since 0.2
 */
MSVC_API int msvc_events_stream_ensure(msvc_events_t *ev,
                                       const msvc_events_stream_opts_t *opts,
                                       msvc_events_done_cb cb, void *data);

/* ---- publishing ----------------------------------------------------------- */

/**
 * @brief Publish an event and learn when the broker has stored it.
 *
 * The event is wrapped in a CloudEvents envelope (msvc_events_envelope_build())
 * and published to its subject with its headers; the event id is also given
 * to the broker as the message id, so a second publish of the same id inside
 * the stream's duplicate window is stored once.
 *
 * @param ev     The handle.
 * @param event  The event; copied (nothing is borrowed after the call).
 * @param cb     Called exactly once on the loop thread, never from inside
 *               this call; may be NULL.
 * @param data   Passed to cb.
 * @return #MSVC_OK (cb will be called); MSVC_EINVAL (no type, bad subject
 *         or header, data not JSON under a JSON content type, id too long);
 *         MSVC_ETOOLARGE (envelope above `max_event_bytes`);
 *         MSVC_EEVENTS_BUSY (`max_pending_publishes` reached); MSVC_ECLOSED;
 *         MSVC_ENOMEM.
 * @since 0.2
 */
MSVC_API int msvc_events_publish(msvc_events_t *ev, const msvc_event_t *event,
                                 msvc_events_publish_cb cb, void *data);

/**
 * @brief Publish an envelope built earlier (an outbox relay's publish).
 *
 * The body is sent as it is, so an event stored with its id in an outbox is
 * published with that same id however often the relay retries. The body
 * is parsed to find the id (and checked to be a CloudEvent).
 *
 * @param ev           The handle.
 * @param subject      Subject to publish to; copied.
 * @param envelope     A CloudEvents structured JSON envelope; copied.
 * @param len          Its length in bytes.
 * @param headers      Message headers; copied. NULL when count is 0.
 * @param header_count Number of headers.
 * @param cb           As for msvc_events_publish().
 * @param data         Passed to cb.
 * @return As msvc_events_publish(), and MSVC_EEVENTS_ENVELOPE when the body
 *         is not a valid envelope.
 * @since 0.2
 */
MSVC_API int msvc_events_publish_envelope(msvc_events_t *ev, const char *subject,
                                          const char *envelope, size_t len,
                                          const msvc_events_header_t *headers,
                                          size_t header_count,
                                          msvc_events_publish_cb cb, void *data);

/* ---- subscribing ---------------------------------------------------------- */

/**
 * @brief Fill subscription options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.2
 */
MSVC_API void msvc_events_sub_opts_init(msvc_events_sub_opts_t *opts);

/**
 * @brief Join a durable consumer group and start receiving its messages.
 *
 * Creates the durable consumer when it does not exist (and the dead-letter
 * stream when the default dead-letter subject is used), in the background;
 * messages start to flow once it is set up and the connection is up. A
 * consumer that exists already keeps its position; its limits are updated
 * to these options.
 *
 * @param ev       The handle.
 * @param opts     The subscription; copied.
 * @param handler  Receives each message on the loop thread; required.
 * @param data     Passed to handler.
 * @param out      Receives the subscription.
 * @return #MSVC_OK; MSVC_EINVAL (missing stream, subject or durable, bad
 *         name, value out of range); MSVC_ECLOSED; MSVC_ENOMEM.
 * @note Stop with msvc_events_sub_close(), or let msvc_events_close() do it.
 * @since 0.2
 */
MSVC_API int msvc_events_subscribe(msvc_events_t *ev, const msvc_events_sub_opts_t *opts,
                                   msvc_events_handler_fn handler, void *data,
                                   msvc_events_sub_t **out);

/**
 * @brief Leave the consumer group (the durable consumer itself stays on the
 *        broker, with its position, for the other instances).
 *
 * No handler call follows. Messages not settled yet are delivered again
 * after `ack_wait_ms`, possibly to another member; settling one afterwards
 * returns MSVC_ECLOSED and frees it.
 *
 * @param sub  The subscription; NULL is a no-op. Invalid after the call.
 * @since 0.2
 */
MSVC_API void msvc_events_sub_close(msvc_events_sub_t *sub);

/**
 * @brief Messages of a subscription handed out and not settled yet.
 * @param sub  The subscription.
 * @return The count; 0 for NULL.
 * @since 0.2
 */
MSVC_API uint32_t msvc_events_sub_unacked(const msvc_events_sub_t *sub);

/* ---- messages ------------------------------------------------------------- */

/**
 * @brief The event a message carries (the parsed envelope).
 * @param msg  The message.
 * @return Borrowed until the message is settled; every string is set, `data`
 *         is the JSON text of the `data` member (or the string's contents
 *         under a non-JSON content type; NULL when absent).
 * @since 0.2
 */
MSVC_API const msvc_event_t *msvc_events_msg_event(const msvc_events_msg_t *msg);

/**
 * @brief The subject the message was published to.
 * @param msg  The message.
 * @return Borrowed until the message is settled.
 * @since 0.2
 */
MSVC_API const char *msvc_events_msg_subject(const msvc_events_msg_t *msg);

/**
 * @brief A header of the message, by name (case-insensitive).
 * @param msg   The message.
 * @param name  Header name, e.g. "traceparent".
 * @return The value, borrowed until the message is settled; NULL when absent.
 * @since 0.2
 */
MSVC_API const char *msvc_events_msg_header(const msvc_events_msg_t *msg, const char *name);

/**
 * @brief Which delivery of this message this is: 1 the first, 2 the first
 *        redelivery, ...
 * @param msg  The message.
 * @return The delivery count (>= 1).
 * @since 0.2
 */
MSVC_API uint32_t msvc_events_msg_deliveries(const msvc_events_msg_t *msg);

/**
 * @brief The raw envelope bytes as received.
 * @param msg  The message.
 * @param len  Receives the length; may be NULL.
 * @return Borrowed until the message is settled (NUL-terminated).
 * @since 0.2
 */
MSVC_API const char *msvc_events_msg_body(const msvc_events_msg_t *msg, size_t *len);

/**
 * @brief Acknowledge a message: processed, never deliver it again.
 * @param msg  The message; freed by the call, whatever it returns.
 * @return #MSVC_OK; MSVC_ECLOSED when the subscription was closed first
 *         (the broker will deliver it again).
 * @since 0.2
 */
MSVC_API int msvc_events_ack(msvc_events_msg_t *msg);

/**
 * @brief Negative acknowledgement: deliver the message again later.
 *
 * When this was the subscription's `max_deliveries`-th delivery, the message
 * is published to the dead-letter subject instead (with headers
 * #MSVC_EVENTS_HDR_REASON, #MSVC_EVENTS_HDR_SUBJECT and
 * #MSVC_EVENTS_HDR_DELIVERIES) and acknowledged once that publish is stored.
 *
 * @param msg       The message; freed by the call, whatever it returns.
 * @param delay_ms  Delay before the redelivery; 0: the subscription's
 *                  backoff for this delivery count (msvc_events_backoff_ms()).
 * @param reason    Why (kept for the dead-letter header); NULL: "nack".
 * @return #MSVC_OK; MSVC_ECLOSED as for msvc_events_ack().
 * @since 0.2
 */
MSVC_API int msvc_events_nack(msvc_events_msg_t *msg, uint32_t delay_ms, const char *reason);

/**
 * @brief Give up on a message now: dead-letter it with the reason, whatever
 *        its delivery count (a message that can never succeed).
 * @param msg     The message; freed by the call, whatever it returns.
 * @param reason  Why; NULL: "terminated".
 * @return #MSVC_OK; MSVC_ECLOSED as for msvc_events_ack().
 * @since 0.2
 */
MSVC_API int msvc_events_term(msvc_events_msg_t *msg, const char *reason);

/**
 * @brief The redelivery delay after a nack of the given delivery:
 *        `min << (deliveries - 1)`, capped at `max`, with up to 20% random
 *        jitter taken off (never below min).
 * @param min_ms      Delay after the first delivery.
 * @param max_ms      Cap.
 * @param deliveries  Delivery count of the nacked message (>= 1).
 * @param rnd         A random value (any uint64_t) for the jitter.
 * @return The delay in ms. Pure and thread-safe.
 * @since 0.2
 */
MSVC_API uint32_t msvc_events_backoff_ms(uint32_t min_ms, uint32_t max_ms,
                                         uint32_t deliveries, uint64_t rnd);

/* ---- CloudEvents envelope (no loop, thread-safe) -------------------------- */

/**
 * @brief Build the structured-mode CloudEvents 1.0 JSON envelope of an event.
 *
 * Defaults are filled as for msvc_events_publish() (`source` defaults to
 * "/msvc" here). The id, when generated, can be read back with
 * msvc_events_envelope_parse().
 *
 * @param event  The event.
 * @param out    Receives the NUL-terminated JSON; the caller frees it with
 *               msvc_free().
 * @param len    Receives its length; may be NULL.
 * @return #MSVC_OK; MSVC_EINVAL (see msvc_events_publish()); MSVC_ENOMEM.
 * @since 0.2
 */
MSVC_API int msvc_events_envelope_build(const msvc_event_t *event, char **out, size_t *len);

/**
 * @brief A parsed envelope (msvc_events_envelope_parse()).
 *
 * Every string field of `event` points into this object and lives until
 * msvc_events_envelope_free().
 */
typedef struct msvc_events_envelope_s msvc_events_envelope_t;

/**
 * @brief Parse a structured-mode CloudEvents 1.0 JSON envelope.
 *
 * Requires `specversion` "1.0" and non-empty string `id`, `source` and
 * `type`; `time` and `datacontenttype` are optional strings (missing ones
 * read as ""); `data` may be any JSON value; `data_base64` is refused
 * (binary data is not supported). Extension attributes are ignored.
 *
 * @param text  The JSON text (need not be NUL-terminated).
 * @param len   Its length.
 * @param out   Receives the envelope; free with msvc_events_envelope_free().
 * @param why   Receives a static description of the first problem on
 *              MSVC_EEVENTS_ENVELOPE; may be NULL.
 * @return #MSVC_OK; MSVC_EEVENTS_ENVELOPE; MSVC_ENOMEM.
 * @since 0.2
 */
MSVC_API int msvc_events_envelope_parse(const char *text, size_t len,
                                        msvc_events_envelope_t **out, const char **why);

/**
 * @brief The event of a parsed envelope (headers are empty).
 * @param env  The envelope.
 * @return Borrowed from env.
 * @since 0.2
 */
MSVC_API const msvc_event_t *msvc_events_envelope_event(const msvc_events_envelope_t *env);

/**
 * @brief Free a parsed envelope.
 * @param env  The envelope; NULL is a no-op.
 * @since 0.2
 */
MSVC_API void msvc_events_envelope_free(msvc_events_envelope_t *env);

/**
 * @brief Write a fresh random event id: 32 lowercase hex digits.
 * @param out  At least 33 bytes.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API void msvc_events_id_generate(char out[33]);

/* ---- idempotent consumer -------------------------------------------------- */

/**
 * @brief Create a dedup window: the last `capacity` event ids marked done,
 *        each remembered at most `ttl_ms`.
 *
 * With at-least-once delivery a handler may see an event twice (a lost ack,
 * a redelivery after a crash). Checking the window first and marking an id
 * only after its effect is committed gives an exactly-once effect for
 * duplicates inside the window.
 *
 * @param capacity  Ids remembered, 1..10000000 (oldest forgotten first).
 * @param ttl_ms    Longest time an id is remembered; 0: no time limit.
 * @param out       Receives the window.
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_ENOMEM.
 * @note Thread-safe (one mutex). Free with msvc_events_dedup_free().
 * @since 0.2
 */
MSVC_API int msvc_events_dedup_new(size_t capacity, uint64_t ttl_ms,
                                   msvc_events_dedup_t **out);

/**
 * @brief Free a window. @param d The window; NULL is a no-op. @since 0.2
 */
MSVC_API void msvc_events_dedup_free(msvc_events_dedup_t *d);

/**
 * @brief Whether an id was marked done (and not yet forgotten).
 * @param d       The window.
 * @param id      The event id.
 * @param now_ms  Current time (monotonic ms), for the TTL.
 * @return true when seen.
 * @since 0.2
 */
MSVC_API bool msvc_events_dedup_seen(msvc_events_dedup_t *d, const char *id, uint64_t now_ms);

/**
 * @brief Mark an id done.
 * @param d       The window.
 * @param id      The event id; copied.
 * @param now_ms  Current time (monotonic ms).
 * @return #MSVC_OK; MSVC_EEXIST when already present (its time is left
 *         alone); MSVC_EINVAL; MSVC_ENOMEM.
 * @since 0.2
 */
MSVC_API int msvc_events_dedup_mark(msvc_events_dedup_t *d, const char *id, uint64_t now_ms);

/**
 * @brief Number of ids currently remembered (expired ones may still count
 *        until the next call that looks at them).
 * @param d  The window.
 * @return The count.
 * @since 0.2
 */
MSVC_API size_t msvc_events_dedup_size(msvc_events_dedup_t *d);

/** @brief What msvc_events_subs() reports about one subscription. */
typedef struct msvc_events_sub_info_s {
  const char *stream;  /**< Stream name. Borrowed for the callback only. */
  const char *subject; /**< Subject filter. Borrowed for the callback only. */
  const char *durable; /**< Durable consumer name ("" when none). Borrowed. */
  uint32_t unacked;    /**< Messages handed to the handler, not yet settled. */
  uint64_t lag;        /**< Messages waiting in the broker, last reported. */
  bool closing;        /**< msvc_events_sub_close() was called. */
} msvc_events_sub_info_t;

/**
 * @brief Report every subscription of a handle (for the admin pages).
 * @param ev    The handle.
 * @param cb    Called once per subscription, in the order subscribed; it
 *              must not subscribe or close subscriptions. Returns 0 to go
 *              on, anything else to stop.
 * @param data  Passed to @p cb.
 * @return #MSVC_OK; MSVC_EINVAL for NULL arguments.
 * @note Loop thread only.
 * @since 0.2
 */
MSVC_API int msvc_events_subs(const msvc_events_t *ev,
                              int (*cb)(const msvc_events_sub_info_t *info, void *data),
                              void *data);

/**
 * @brief Publishes accepted and not yet acknowledged by the broker.
 * @param ev  The handle.
 * @return The count (0 for NULL).
 * @note Loop thread only.
 * @since 0.2
 */
MSVC_API size_t msvc_events_pending_publishes(const msvc_events_t *ev);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_EVENTS_H */
