/* The reverse violation; never compiled. */
#include "http/server.h"
