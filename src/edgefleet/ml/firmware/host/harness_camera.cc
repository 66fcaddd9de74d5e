// Host harness of a generated camera project (edgefleet.ml.firmware.hostbuild).
//
// Links the project's own inference.cc, model_data.cc, ef_image.c and ef_presence.c with TFLite
// Micro built for the host, and runs what app_main.cc's camera task does with each frame:
// ef_image_to_int8 -> Invoke -> person score -> ef_presence_update -> the `person` event
// (ef_camera_format_event; without the thumbnail, whose JPEG encoder is esp32-camera's).
//
//   harness_camera info                         the project's settings, and whether the model loads
//   harness_camera frames FILE WIDTH HEIGHT FMT FILE: n frames of WIDTH x HEIGHT pixels, FMT 0
//                                               grayscale, 1 RGB565, 2 RGB888 (B, G, R bytes) ->
//                                               one JSON object per frame: input (hex of the int8
//                                               input), output, invoke_us, score, smoothed,
//                                               transition (1 raised, -1 cleared, 0), event or null
//
// Events carry a fixed header: device_id "cam-host", seq = the event's number, ts 2026-01-01.
// Exit status 2: bad arguments or input; 3: the model does not load; 4: the frame size is refused.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ef_image.h"
#include "ef_presence.h"
#include "inference.h"
#include "model_settings.h"

#define EF_HARNESS_NAME "harness_camera"
#include "harness_io.h"

namespace {

const char *kDeviceId = "cam-host";
const char *kTimestamp = "2026-01-01T00:00:00.000Z";

using harness_io::fail;
using harness_io::read_file;

int bytes_per_pixel(int format) {
  return format == EF_PIXFORMAT_GRAYSCALE ? 1 : format == EF_PIXFORMAT_RGB565 ? 2 : format == EF_PIXFORMAT_RGB888 ? 3 : 0;
}

int parse_int(const char *text, int lo, int hi, const char *what) {
  char *end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < lo || value > hi) {
    fail(2, "bad ", what);
  }
  return static_cast<int>(value);
}

void load_model() {
  if (ef_inference_init() != 0) {
    fail(3, "the model does not load");
  }
}

void info() {
  load_model();
  std::printf("{\"input_w\":%d,\"input_h\":%d,\"output_bytes\":%d,\"person_index\":%d,\"threshold_on\":%.17g,"
              "\"threshold_off\":%.17g,\"smoothing\":%.17g,\"arena_bytes\":%d,\"arena_used\":%zu}\n",
              EF_INPUT_WIDTH, EF_INPUT_HEIGHT, EF_OUTPUT_BYTES, EF_PERSON_INDEX, EF_PRESENCE_THRESHOLD_ON,
              EF_PRESENCE_THRESHOLD_OFF, EF_PRESENCE_SMOOTHING, EF_ARENA_BYTES, ef_inference_arena_used());
}

void frames(const char *path, int width, int height, int format) {
  const int bpp = bytes_per_pixel(format);
  if (bpp == 0) {
    fail(2, "bad pixel format");
  }
  const size_t frame_bytes = static_cast<size_t>(width) * height * bpp;
  const std::vector<unsigned char> data = read_file(path, frame_bytes);
  load_model();
  const size_t workspace_bytes = ef_image_workspace_bytes(width, height, EF_INPUT_WIDTH, EF_INPUT_HEIGHT);
  std::vector<int32_t> workspace(workspace_bytes / 4 + 1);
  static ef_image_plan_t plan;
  const int rc = ef_image_plan(&plan, width, height, format, EF_INPUT_WIDTH, EF_INPUT_HEIGHT, workspace.data(),
                               workspace_bytes);
  if (rc != EF_IMAGE_OK) {
    char detail[32];
    std::snprintf(detail, sizeof(detail), "%d", rc);
    fail(4, "ef_image_plan refused the frame size: ", detail);
  }
  ef_presence_t presence;
  if (ef_presence_init(&presence, EF_PRESENCE_THRESHOLD_ON, EF_PRESENCE_THRESHOLD_OFF, EF_PRESENCE_SMOOTHING) != 0) {
    fail(2, "the presence settings are invalid");
  }
  static int8_t input[EF_INPUT_BYTES];
  static int8_t output[EF_OUTPUT_BYTES];
  static char event[2048];
  std::string hex(2 * EF_INPUT_BYTES, '0');
  uint64_t events = 0;
  for (size_t i = 0; i < data.size() / frame_bytes; ++i) {
    if (ef_image_to_int8(&plan, &data[i * frame_bytes], frame_bytes, input) != EF_IMAGE_OK) {
      fail(2, "ef_image_to_int8 refused a frame");
    }
    int64_t invoke_us = 0;
    if (ef_inference_run(input, output, &invoke_us) != 0) {
      fail(3, "Invoke() failed");
    }
    const double score = ef_person_score(output[EF_PERSON_INDEX], EF_OUTPUT_SCALE, EF_OUTPUT_ZERO_POINT);
    const int transition = ef_presence_update(&presence, score);
    const char *digits = "0123456789abcdef";
    for (int k = 0; k < EF_INPUT_BYTES; ++k) {
      const unsigned byte = static_cast<uint8_t>(input[k]);
      hex[2 * k] = digits[byte >> 4];
      hex[2 * k + 1] = digits[byte & 15];
    }
    std::printf("{\"frame\":%zu,\"input\":\"%s\",\"output\":[", i, hex.c_str());
    for (int k = 0; k < EF_OUTPUT_BYTES; ++k) {
      std::printf("%s%d", k ? "," : "", output[k]);
    }
    std::printf("],\"invoke_us\":%" PRId64 ",\"score\":%.17g,\"smoothed\":%.17g,\"transition\":%d,\"event\":", invoke_us,
                score, presence.smoothed, transition);
    if (transition != EF_PRESENCE_NONE) {
      const ef_camera_header_t header = {kDeviceId, events++, kTimestamp, 1};
      if (ef_camera_format_event(event, sizeof(event), &header, &presence, transition == EF_PRESENCE_RAISED,
                                 nullptr) < 0) {
        fail(2, "the event does not fit");
      }
      std::printf("%s}\n", event);
    } else {
      std::printf("null}\n");
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  if (argc == 2 && std::strcmp(argv[1], "info") == 0) {
    info();
  } else if (argc == 6 && std::strcmp(argv[1], "frames") == 0) {
    frames(argv[2], parse_int(argv[3], 1, EF_IMAGE_MAX_SIDE, "width"), parse_int(argv[4], 1, EF_IMAGE_MAX_SIDE, "height"),
           parse_int(argv[5], 0, 2, "format"));
  } else {
    fail(2, "usage: harness_camera info | frames FILE WIDTH HEIGHT FORMAT");
  }
  return 0;
}
