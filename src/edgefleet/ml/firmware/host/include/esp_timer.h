/* Host stand-in for ESP-IDF's esp_timer.h (edgefleet host harnesses; defined in host/esp_host.cc). */
#ifndef EF_HOST_ESP_TIMER_H_
#define EF_HOST_ESP_TIMER_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Microseconds of a monotonic clock. */
int64_t esp_timer_get_time(void);

#ifdef __cplusplus
}
#endif

#endif /* EF_HOST_ESP_TIMER_H_ */
