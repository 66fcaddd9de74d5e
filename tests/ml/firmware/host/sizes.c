/* Host-side helpers for the fleet modules' tests: the sizes of the opaque structs (ctypes allocates them). */
#include "ef_ota.h"
#include "ef_outbox.h"

size_t host_sizeof_outbox(void);
size_t host_sizeof_ota(void);
size_t host_sizeof_ota_cmd(void);
size_t host_sizeof_ota_config(void);

size_t host_sizeof_outbox(void)
{
    return sizeof(ef_outbox_t);
}

size_t host_sizeof_ota(void)
{
    return sizeof(ef_ota_t);
}

size_t host_sizeof_ota_cmd(void)
{
    return sizeof(ef_ota_cmd_t);
}

size_t host_sizeof_ota_config(void)
{
    return sizeof(ef_ota_config_t);
}
