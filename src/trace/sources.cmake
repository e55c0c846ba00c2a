# The trace block: W3C trace context, spans and sampling (pure), and the
# OTLP/HTTP exporter that runs on a thread of its own.
list(APPEND LIBMSVC_SOURCES
  src/trace/context.c
  src/trace/encode.c
  src/trace/encode_pb.c
  src/trace/export.c
  src/trace/span.c
  src/trace/tracez.c)
