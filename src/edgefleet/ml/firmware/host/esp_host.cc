// Host definitions of the ESP-IDF functions the shims in include/ declare (edgefleet host harnesses).
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "esp_log.h"
#include "esp_timer.h"

extern "C" int64_t esp_timer_get_time(void) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
}

extern "C" void ef_host_log(char level, const char *tag, const char *format, ...) {
  static const bool verbose = std::getenv("EF_HOST_VERBOSE") != nullptr;
  if (level != 'E' && level != 'W' && !verbose) {
    return;
  }
  std::fprintf(stderr, "%c (%s) ", level, tag);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}
