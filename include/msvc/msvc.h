/**
 * @file msvc/msvc.h
 * @brief The umbrella header: `#include <msvc/msvc.h>` gives every block.
 */
#ifndef MSVC_MSVC_H
#define MSVC_MSVC_H

#include <msvc/common.h>
#include <msvc/version.h>
#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/breaker.h>
#include <msvc/http.h>
#include <msvc/http_client.h>
#include <msvc/jwt.h>
#include <msvc/jwks.h>
#include <msvc/lb.h>
#include <msvc/limit.h>
#include <msvc/metrics.h>
#include <msvc/middleware.h>
#include <msvc/registry.h>
#include <msvc/service.h>
#include <msvc/tls.h>
#include <msvc/work.h>
#include <msvc/events.h>
#include <msvc/admin.h>
#include <msvc/trace.h>
#include <msvc/cache.h>

#endif /* MSVC_MSVC_H */
