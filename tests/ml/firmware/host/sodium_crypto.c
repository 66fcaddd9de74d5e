/* The OTA core's crypto hooks on the host, from Debian's libsodium (the chip uses the
 * espressif/libsodium managed component the same way). The runtime package ships no headers: the
 * prototypes below are the ones of sodium/core.h, crypto_sign.h and crypto_hash_sha256.h. */
#include "ef_ota.h"

int sodium_init(void);
int crypto_sign_verify_detached(const unsigned char *sig, const unsigned char *m, unsigned long long mlen,
                                const unsigned char *pk);
int crypto_hash_sha256(unsigned char *out, const unsigned char *in, unsigned long long inlen);

int ef_platform_ed25519_verify(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t pubkey[32])
{
    if (sodium_init() < 0) {
        return -1;
    }
    return crypto_sign_verify_detached(sig, msg, len, pubkey) == 0 ? 0 : -1;
}

int ef_platform_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    return crypto_hash_sha256(out, data, len) == 0 ? 0 : -1;
}
