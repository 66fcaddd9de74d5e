/* Host stand-in for ESP-IDF's esp_log.h (edgefleet host harnesses; defined in host/esp_host.cc).
 * Errors and warnings go to stderr; info only when EF_HOST_VERBOSE is set in the environment. */
#ifndef EF_HOST_ESP_LOG_H_
#define EF_HOST_ESP_LOG_H_

#ifdef __cplusplus
extern "C" {
#endif

void ef_host_log(char level, const char *tag, const char *format, ...) __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#define ESP_LOGE(tag, ...) ef_host_log('E', tag, __VA_ARGS__)
#define ESP_LOGW(tag, ...) ef_host_log('W', tag, __VA_ARGS__)
#define ESP_LOGI(tag, ...) ef_host_log('I', tag, __VA_ARGS__)
#define ESP_LOGD(tag, ...) ef_host_log('D', tag, __VA_ARGS__)
#define ESP_LOGV(tag, ...) ef_host_log('V', tag, __VA_ARGS__)

#endif /* EF_HOST_ESP_LOG_H_ */
