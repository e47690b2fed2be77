/*
 * The calling thread's last error text. Thread-local so that a failure on
 * one thread (a CUDA callback, a host-backend worker) never overwrites the
 * message another thread is about to read.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

static _Thread_local char last_error[1024];

int32_t sched_fail(int32_t status, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, args);
  va_end(args);
  return status;
}

SCHED_API uint32_t sched_last_error(char *buf, uint32_t len) {
  size_t n = strlen(last_error);
  if (buf != NULL && len > 0) {
    size_t copy = n < len - 1 ? n : len - 1;
    memcpy(buf, last_error, copy);
    buf[copy] = '\0';
  }
  return (uint32_t)n;
}
