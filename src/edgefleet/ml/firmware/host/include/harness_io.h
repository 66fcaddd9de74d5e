// What both host harnesses (vibration, camera) need around their input: fail with a message, read a
// file of fixed-size records. Define EF_HARNESS_NAME before including it (the prefix of messages).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <vector>

#ifndef EF_HARNESS_NAME
#error "define EF_HARNESS_NAME before including harness_io.h"
#endif

namespace harness_io {

[[noreturn]] inline void fail(int status, const char *message, const char *detail = "") {
  std::fprintf(stderr, "%s: %s%s\n", EF_HARNESS_NAME, message, detail);
  std::exit(status);
}

inline std::vector<unsigned char> read_file(const char *path, size_t record_bytes) {
  FILE *file = std::fopen(path, "rb");
  if (file == nullptr) {
    fail(2, "cannot open ", path);
  }
  std::vector<unsigned char> data;
  unsigned char chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), file)) > 0) {
    data.insert(data.end(), chunk, chunk + n);
  }
  std::fclose(file);
  if (data.empty() || data.size() % record_bytes != 0) {
    char detail[96];
    std::snprintf(detail, sizeof(detail), "%zu bytes, not a positive multiple of %zu", data.size(), record_bytes);
    fail(2, "bad input: ", detail);
  }
  return data;
}

}  // namespace harness_io
