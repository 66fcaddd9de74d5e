/* The camera node's QR decoder hook (main/ef_qr_decode.h) on the host: it calls a function that the
 * test sets through ctypes, which decodes with zxing-cpp. On the chip the hook is ef_qr_decode.c. */
#include <stddef.h>
#include <stdint.h>

#include "ef_qr_decode.h"
#include "ef_qr_provision.h"

typedef int (*host_qr_decoder_t)(const uint8_t *gray, int width, int height, char *out, size_t cap);

static host_qr_decoder_t decoder;

void host_qr_set_decoder(host_qr_decoder_t fn)
{
    decoder = fn;
}

int ef_qr_decode(const uint8_t *gray, int width, int height, char *out, size_t cap)
{
    return decoder != NULL ? decoder(gray, width, height, out, cap) : EF_QR_DECODER_ERROR;
}

/* The bindings mirror the struct; the test checks they agree on its size. */
size_t host_sizeof_qr_provision(void)
{
    return sizeof(ef_qr_provision_t);
}
