/* A file that breaks the rule on purpose: the layering test expects the
 * check to refuse this tree. Never compiled. */
#include "tls/tls-internal.h"
