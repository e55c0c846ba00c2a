/**
 * @file msvc/admin.h
 * @brief The admin pages of a service: what a running process is doing
 *        right now, in a browser (HTML) or as JSON.
 *
 * A service started with `MSVC_ADMIN=127.0.0.1:PORT` (or the `admin`
 * option of msvc_service_opts_t) opens a second listener, separate from
 * its public port, that serves `GET /debug/` and the pages below it:
 * overview, registry, balancers, breakers, pools, work and events,
 * configuration (secrets redacted), request charts and the log level
 * (which a `POST` changes). Every page is server-rendered HTML with an
 * inline stylesheet, and JSON with `?format=json`. The listener is off by
 * default, binds only where it is told, never shares the public port, and
 * may require a bearer token (`MSVC_ADMIN_TOKEN` or the `admin_token`
 * option). See docs/admin.md.
 *
 * Other blocks add pages of their own with msvc_admin_section_add(): a
 * section gives a JSON object, which becomes its page's `?format=json`
 * answer and is rendered as HTML the same way as the built-in pages
 * (objects as tables of keys and values, arrays of objects as tables,
 * arrays of numbers as small charts).
 */
#ifndef MSVC_ADMIN_H
#define MSVC_ADMIN_H

#include <stddef.h>

#include <msvc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;
struct msvc_service_s;

/** @brief Longest section name (bytes): `[a-z0-9_-]`, 1..32 characters. */
#define MSVC_ADMIN_SECTION_NAME_MAX 32

/**
 * @brief Fills the page of a section.
 * @param svc   The service whose admin listener serves the page.
 * @param out   An empty JSON object to fill (cJSON); owned by the caller.
 *              Keys become headings; values are rendered by type.
 * @param data  The pointer given to msvc_admin_section_add().
 * @return #MSVC_OK, or a negative code (the page then answers 500
 *         `INTERNAL`).
 * @note Runs on the loop thread of the service's main loop, while the
 *       section table is locked: it must not add or remove sections.
 */
typedef int (*msvc_admin_section_fn)(struct msvc_service_s *svc, struct cJSON *out,
                                     void *data);

/**
 * @brief Add a page to the admin listener of every service of the process,
 *        at `/debug/<name>`, listed in the navigation with @p title.
 * @param name   Page name, `[a-z0-9_-]`, 1..#MSVC_ADMIN_SECTION_NAME_MAX
 *               characters, not a built-in page's; copied.
 * @param title  Title shown in the navigation and on the page; copied.
 * @param fn     Fills the page.
 * @param data   Passed to @p fn; borrowed until the section is removed.
 * @return #MSVC_OK; MSVC_EINVAL for a bad name or NULL arguments;
 *         MSVC_EEXIST when the name is taken; MSVC_ENOMEM.
 * @note Thread-safe. Sections may be added before or after services start.
 * @since 0.2
 */
MSVC_API int msvc_admin_section_add(const char *name, const char *title,
                                    msvc_admin_section_fn fn, void *data);

/**
 * @brief Remove a page added with msvc_admin_section_add().
 * @param name  The page name.
 * @return #MSVC_OK; MSVC_ENOENT when there is no such section; MSVC_EINVAL.
 * @note Thread-safe; once it returns, the section's function is not
 *       running and will not run again.
 * @since 0.2
 */
MSVC_API int msvc_admin_section_remove(const char *name);

/**
 * @brief The port the admin listener of a service is bound to.
 * @param svc  The service.
 * @return The port (useful with `MSVC_ADMIN=127.0.0.1:0`); MSVC_ENOENT when
 *         the admin listener is off; MSVC_ESTATE before the service started
 *         listening; MSVC_EINVAL for NULL.
 * @note Loop thread of the service.
 * @since 0.2
 */
MSVC_API int msvc_admin_port(const struct msvc_service_s *svc);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_ADMIN_H */
