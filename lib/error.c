/*
 * The last error message of each thread (tri_last_error()).
 *
 * Every public call that fails for a reason a caller can fix or should
 * report (a malformed target, a port in use, a call's failing status)
 * leaves a sentence here naming the bad part and, where there is one, the
 * setting that changes it.  Thread-local: no lock, and a message never
 * mixes calls of two threads.  Successful calls leave it as it was (like
 * errno).
 *
 * Threads: any; each thread sees its own.
 */
#include "tri_int.h"

#include <errno.h>
#include <string.h>

#include <stdarg.h>

#include "core.h"

#define ERR_MAX 512

static _Thread_local char t_err[ERR_MAX];

int tri__fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_err, sizeof(t_err), fmt, ap);
  va_end(ap);
  return code;
}

int tri__fail_msg(int code, const char *msg) {
  if (msg == NULL || *msg == '\0')
    msg = tri_strerror(code);
  snprintf(t_err, sizeof(t_err), "%s", msg);
  return code;
}

int tri__fail_create(int err, const char *what) {
  if (err == 0 || err == ENOMEM)
    return tri__fail(TRI_ENOMEM, "out of memory creating %s", what);
  return tri__fail(TRI_ESYS, "cannot create %s: %s", what, strerror(err));
}

TRI_API const char *tri_last_error(void) { return t_err; }
