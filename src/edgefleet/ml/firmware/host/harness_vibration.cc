// Host harness of a generated vibration project (edgefleet.ml.firmware.hostbuild).
//
// Links the project's own inference.cc, model_data.cc, features.c and ef_core.c with TFLite Micro
// built for the host, and runs what app_main.cc's processor task does for each window: guard ->
// features -> standardize -> int8 quantize -> Invoke -> score -> RMS velocity -> ef_decider_step ->
// events (the contract's JSON from ef_format_event). The event assembly mirrors app_main.cc.
//
//   harness info                      the project's settings, and whether the model loads
//   harness int8 FILE                 FILE: n x EF_N_FEATURES int8 inputs -> {"q_out": [...]} each
//   harness windows FILE [THRESHOLD]  FILE: n x EF_WINDOW x EF_AXES float32 (sample-major) -> one
//                                     JSON object per window: reasons, features, z, q_in, q_out,
//                                     score, velocity, state, alert, drift, events. THRESHOLD
//                                     replaces the card's (as commissioning would).
//   harness cost FILE REPEAT          wall ns per window of each stage, REPEAT passes over FILE
//
// Before the mode, as a model update would have it (app_main.cc's load_model with a slot):
//   --card CARD.json    score with this model card (ef_card_read, ef_core_use_card) instead of the
//                       factory card compiled into model_settings.h
//   --model MODEL.tflite  run this model instead of the compiled model_data.cc
//
// Exit status 2: bad arguments or input; 3: the model does not load; 4: the card is refused.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "ef_card.h"
#include "ef_core.h"
#include "esp_timer.h"
#include "features.h"
#include "inference.h"
#include "model_settings.h"

#define EF_HARNESS_NAME "harness"
#include "harness_io.h"

namespace {

constexpr int kKeyFeatures = EF_KEY_FEATURES > 0 ? EF_KEY_FEATURES : 1;
constexpr size_t kWindowFloats = static_cast<size_t>(EF_WINDOW) * EF_AXES;

using harness_io::fail;
using harness_io::read_file;

// Appends JSON text to a string.
struct Json {
  std::string text;
  bool first = true;

  void raw(const char *s) { text += s; }
  void key(const char *name) {
    text += first ? "\"" : ",\"";
    text += name;
    text += "\":";
    first = false;
  }
  void number(double value, const char *format) {
    if (!std::isfinite(value)) {
      text += "null";
      return;
    }
    char num[40];
    std::snprintf(num, sizeof(num), format, value);
    text += num;
  }
  void field(const char *name, double value, const char *format = "%.17g") {
    key(name);
    number(value, format);
  }
  void field_int(const char *name, long long value) {
    key(name);
    text += std::to_string(value);
  }
  void floats(const char *name, const float *values, int n) {
    key(name);
    text += "[";
    for (int i = 0; i < n; ++i) {
      if (i) text += ",";
      number(values[i], "%.9g");  // round-trips a float
    }
    text += "]";
  }
  void int8s(const char *name, const int8_t *values, int n) {
    key(name);
    text += "[";
    for (int i = 0; i < n; ++i) {
      if (i) text += ",";
      text += std::to_string(values[i]);
    }
    text += "]";
  }
};

const unsigned char *runtime_model = nullptr;  // --model: the flatbuffer (16-byte aligned), else null

int load_model() { return runtime_model != nullptr ? ef_inference_init_with(runtime_model) : ef_inference_init(); }

// --card and --model: what app_main.cc does when it boots a model slot.
void use_package(const char *card_path, const char *model_path) {
  if (card_path != nullptr) {
    const std::vector<unsigned char> json = read_file(card_path, 1);
    static ef_card_t card;
    char reason[EF_CARD_REASON_MAX + 1];
    if (ef_card_read(reinterpret_cast<const char *>(json.data()), json.size(), &card, reason, sizeof(reason)) !=
        EF_CARD_OK) {
      std::fprintf(stderr, "harness: the card is refused: %s\n", reason);
      std::exit(4);
    }
    ef_core_use_card(&card);
  }
  if (model_path != nullptr) {
    const std::vector<unsigned char> model = read_file(model_path, 1);
    static std::vector<uint64_t> aligned;  // 8-byte aligned storage, moved up to a 16-byte boundary
    aligned.assign((model.size() + 2 * sizeof(uint64_t)) / sizeof(uint64_t), 0);
    unsigned char *data = reinterpret_cast<unsigned char *>(aligned.data());
    data += (16 - reinterpret_cast<uintptr_t>(data) % 16) % 16;
    std::memcpy(data, model.data(), model.size());
    runtime_model = data;
  }
}

void init_model() {
  const int rc = load_model();
  if (rc != 0) {
    std::fprintf(stderr, "harness: ef_inference_init() = %d\n", rc);
    std::exit(3);
  }
}

int run_info() {
  const int rc = load_model();
  Json j;
  j.raw("{");
  j.field_int("window", EF_WINDOW);
  j.field_int("hop", EF_HOP);
  j.field_int("axes", EF_AXES);
  j.field_int("n_features", EF_N_FEATURES);
  j.field("sample_rate_hz", EF_SAMPLE_RATE_HZ);
  j.field("threshold", ef_core_card()->threshold);
  j.key("model_id");
  j.raw("\"");
  j.raw(ef_core_card()->model_id);  // a contract Name: nothing to escape
  j.raw("\"");
  j.field_int("key_features", EF_KEY_FEATURES);
  j.field_int("init", rc);
  j.field_int("arena_bytes", EF_ARENA_BYTES);
  j.field_int("arena_used", static_cast<long long>(ef_inference_arena_used()));
  j.raw("}");
  std::printf("%s\n", j.text.c_str());
  return rc == 0 ? 0 : 3;
}

int run_int8(const char *path) {
  init_model();
  const std::vector<unsigned char> data = read_file(path, EF_N_FEATURES);
  int8_t out[EF_N_FEATURES];
  for (size_t offset = 0; offset < data.size(); offset += EF_N_FEATURES) {
    int64_t elapsed_us = 0;
    if (ef_inference_run(reinterpret_cast<const int8_t *>(&data[offset]), out, &elapsed_us) != 0) {
      fail(3, "ef_inference_run failed");
    }
    Json j;
    j.raw("{");
    j.int8s("q_out", out, EF_N_FEATURES);
    j.raw("}");
    std::printf("%s\n", j.text.c_str());
  }
  return 0;
}

// The events of one window, as app_main.cc's processor task builds and publishes them.
class Publisher {
 public:
  explicit Publisher(Json &out) : out_(out) {}

  void send(const ef_event_t &event) {
    static char json[2048];
    ef_header_t header = {"host-harness", ++seq_, "2026-01-01T00:00:00.000Z", 1};
    if (ef_format_event(json, sizeof(json), &header, &event) <= 0) {
      fail(3, "ef_format_event: the event does not fit 2048 bytes");
    }
    out_.raw(count_++ ? "," : "");
    out_.raw(json);
  }

 private:
  Json &out_;
  int count_ = 0;
  static uint64_t seq_;
};
uint64_t Publisher::seq_ = 0;

void window_events(Publisher &publisher, const ef_step_t &step, int64_t window_index, double velocity, double score,
                   double threshold, const float *z) {
  for (int r = 0; r < EF_N_REASONS; ++r) {
    if (step.faults[r] != EF_NO_CHANGE) {
      const bool raised = step.faults[r] == EF_RAISED;
      char message[64];
      std::snprintf(message, sizeof(message), "sensor input %s%s", ef_reason_name(r), raised ? "" : " cleared");
      ef_event_t event = {};
      event.kind = "sensor_fault";
      event.active = raised;
      event.severity = raised ? "critical" : "info";
      event.window = window_index;
      event.reason = ef_reason_name(r);
      event.message = message;
      publisher.send(event);
    }
  }
  if (step.rule != EF_NO_CHANGE) {
    static const char *const zones[] = {"A", "B", "C", "D"};
    const bool raised = step.rule == EF_RAISED;
    char reason[24], message[64];
    std::snprintf(reason, sizeof(reason), "iso10816_zone_%s", zones[step.rule_zone]);
    std::snprintf(message, sizeof(message), "RMS velocity %.2f mm/s (zone %s)", velocity, zones[step.rule_zone]);
    ef_event_t event = {};
    event.kind = "rule";
    event.active = raised;
    event.severity = raised ? (step.rule_zone == 3 ? "critical" : "warning") : "info";
    event.has_score = 1;
    event.score = velocity;
    event.threshold = EF_RULE_ALARM_LIMIT;
    event.window = window_index;
    event.reason = reason;
    event.message = message;
    publisher.send(event);
  }
  if (step.drift != EF_NO_CHANGE) {
    ef_event_t event = {};
    event.kind = "drift";
    event.active = step.drift == EF_RAISED;
    event.severity = event.active ? "warning" : "info";
    event.has_score = 1;
    event.score = step.drift_value;
    event.threshold = EF_DRIFT_LIMIT;
    event.window = window_index;
    event.reason = "standardized_mean_shift";
    publisher.send(event);
  }
  if (step.anomaly != EF_NO_CHANGE) {
    const bool raised = step.anomaly == EF_RAISED;
    int top[kKeyFeatures];
    const char *names[kKeyFeatures];
    float values[kKeyFeatures];
    ef_top_features(z, top, EF_KEY_FEATURES);
    for (int k = 0; k < EF_KEY_FEATURES; ++k) {
      names[k] = ef_feature_names[top[k]];
      values[k] = std::round(z[top[k]] * 1e4f) / 1e4f;
    }
    ef_event_t event = {};
    event.kind = "anomaly";
    event.active = raised;
    event.severity = raised ? "warning" : "info";
    event.has_score = 1;
    event.score = score;
    event.threshold = threshold;  // the decider's: the card's, or a commissioned one
    event.window = window_index;
    event.n_features = EF_KEY_FEATURES;
    event.feature_names = names;
    event.feature_values = values;
    event.message = raised ? "anomaly" : "anomaly cleared";
    publisher.send(event);
  }
}

int run_windows(const char *path, const char *threshold) {
  init_model();
  const std::vector<unsigned char> data = read_file(path, kWindowFloats * sizeof(float));
  const size_t n = data.size() / (kWindowFloats * sizeof(float));
  std::vector<float> samples(n * kWindowFloats);
  std::memcpy(samples.data(), data.data(), data.size());
  static ef_decider_t decider;
  ef_decider_init(&decider);
  if (threshold != nullptr) {
    char *end = nullptr;
    decider.threshold = std::strtod(threshold, &end);
    if (end == threshold || *end != '\0' || !(decider.threshold > 0)) {
      fail(2, "bad threshold ", threshold);
    }
  }
  static float features[EF_N_FEATURES], z[EF_N_FEATURES];
  static int8_t q_in[EF_N_FEATURES], q_out[EF_N_FEATURES];
  for (size_t i = 0; i < n; ++i) {
    const float *w = &samples[i * kWindowFloats];
    const int64_t window_index = static_cast<int64_t>(i);
    // as app_main.cc's processor(): no sampling gaps on the host
    unsigned reasons = ef_guard_check(w);
    double score = -INFINITY;
    double velocity = -1.0;
    bool scored = false;
    bool extracted = false;
    int64_t elapsed_us = 0;
    if (reasons == 0) {
      extracted = ef_features_extract(w, features) == EF_FEATURES_OK;
      if (!extracted) {
        reasons |= EF_REASON_NONFINITE;
      }
    }
    if (reasons == 0) {
      ef_standardize(features, z);
      ef_quantize_input(z, q_in);
      if (ef_inference_run(q_in, q_out, &elapsed_us) != 0) {
        fail(3, "ef_inference_run failed");
      }
      score = ef_score(z, q_out);
      scored = true;
    }
    if (reasons == 0) {
      velocity = ef_rms_velocity_mm_s(w);
    }
    ef_step_t step;
    ef_decider_step(&decider, reasons, velocity, score, scored ? z : nullptr, &step);
    Json j;
    j.raw("{");
    j.field_int("window", window_index);
    j.field_int("reasons", reasons);
    j.field_int("state", step.state);
    j.field_int("alert", ef_decider_alert(&decider));
    j.field("score", scored ? score : NAN, "%.9g");
    j.field("velocity", velocity >= 0 ? velocity : NAN);
    j.field("drift", step.drift_value >= 0 ? step.drift_value : NAN);
    if (extracted) {
      j.floats("features", features, EF_N_FEATURES);
    }
    if (scored) {
      j.floats("z", z, EF_N_FEATURES);
      j.int8s("q_in", q_in, EF_N_FEATURES);
      j.int8s("q_out", q_out, EF_N_FEATURES);
    }
    j.key("events");
    j.raw("[");
    Publisher publisher(j);
    window_events(publisher, step, window_index, velocity, score, decider.threshold, z);
    j.raw("]}");
    std::printf("%s\n", j.text.c_str());
  }
  return 0;
}

// Wall time per window of each stage (the same work as run_windows, without the decisions).
int run_cost(const char *path, int repeat) {
  init_model();
  const std::vector<unsigned char> data = read_file(path, kWindowFloats * sizeof(float));
  const size_t n = data.size() / (kWindowFloats * sizeof(float));
  std::vector<float> samples(n * kWindowFloats);
  std::memcpy(samples.data(), data.data(), data.size());
  static float features[EF_N_FEATURES], z[EF_N_FEATURES];
  static int8_t q_in[EF_N_FEATURES], q_out[EF_N_FEATURES];
  int64_t ns[4] = {0, 0, 0, 0};
  volatile double sink = 0;
  for (int r = 0; r < repeat; ++r) {
    for (size_t i = 0; i < n; ++i) {
      const float *w = &samples[i * kWindowFloats];
      timespec t[5];
      clock_gettime(CLOCK_MONOTONIC, &t[0]);
      sink = sink + ef_guard_check(w);
      clock_gettime(CLOCK_MONOTONIC, &t[1]);
      sink = sink + ef_features_extract(w, features);
      clock_gettime(CLOCK_MONOTONIC, &t[2]);
      sink = sink + ef_rms_velocity_mm_s(w);
      clock_gettime(CLOCK_MONOTONIC, &t[3]);
      ef_standardize(features, z);
      ef_quantize_input(z, q_in);
      int64_t elapsed_us = 0;
      sink = sink + ef_inference_run(q_in, q_out, &elapsed_us) + ef_score(z, q_out);
      clock_gettime(CLOCK_MONOTONIC, &t[4]);
      for (int s = 0; s < 4; ++s) {
        ns[s] += (t[s + 1].tv_sec - t[s].tv_sec) * 1000000000LL + (t[s + 1].tv_nsec - t[s].tv_nsec);
      }
    }
  }
  const double windows = static_cast<double>(n) * repeat;
  Json j;
  j.raw("{");
  j.field_int("windows", static_cast<long long>(n));
  j.field_int("repeat", repeat);
  j.field("guard_ns", ns[0] / windows, "%.1f");
  j.field("features_ns", ns[1] / windows, "%.1f");
  j.field("velocity_ns", ns[2] / windows, "%.1f");
  j.field("inference_ns", ns[3] / windows, "%.1f");
  j.raw("}");
  std::printf("%s\n", j.text.c_str());
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  const char *card = nullptr, *model = nullptr;
  while (argc > 2 && (std::strcmp(argv[1], "--card") == 0 || std::strcmp(argv[1], "--model") == 0)) {
    (std::strcmp(argv[1], "--card") == 0 ? card : model) = argv[2];
    argc -= 2;
    argv += 2;
  }
  use_package(card, model);
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "info" && argc == 2) {
    return run_info();
  }
  if (mode == "int8" && argc == 3) {
    return run_int8(argv[2]);
  }
  if (mode == "windows" && (argc == 3 || argc == 4)) {
    return run_windows(argv[2], argc == 4 ? argv[3] : nullptr);
  }
  if (mode == "cost" && argc == 4 && std::atoi(argv[3]) > 0) {
    return run_cost(argv[2], std::atoi(argv[3]));
  }
  fail(2, "usage: harness [--card CARD.json] [--model MODEL.tflite] info | int8 FILE | windows FILE [THRESHOLD] | "
          "cost FILE REPEAT");
}
