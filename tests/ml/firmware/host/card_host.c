/* Host-side helpers for the model card reader's tests: the size of ef_card_t (ctypes mirrors it), and
 * a fuzz driver (built as a program with AddressSanitizer): every input is copied into a buffer of
 * exactly its length, so a read past it is caught. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ef_card.h"

size_t host_sizeof_card(void);

size_t host_sizeof_card(void)
{
    return sizeof(ef_card_t);
}

#ifdef EF_CARD_FUZZ_MAIN
/* argv[1]: inputs as [4-byte little-endian length][bytes]...; prints one result code per input. */
int main(int argc, char **argv)
{
    static ef_card_t card;
    char reason[EF_CARD_REASON_MAX + 1];
    unsigned char head[4];
    FILE *file;
    if (argc != 2 || (file = fopen(argv[1], "rb")) == NULL) {
        return 2;
    }
    while (fread(head, 1, 4, file) == 4) {
        const size_t len = (size_t)head[0] | (size_t)head[1] << 8 | (size_t)head[2] << 16 | (size_t)head[3] << 24;
        char *text = malloc(len ? len : 1);
        if (text == NULL || fread(text, 1, len, file) != len) {
            return 2;
        }
        printf("%d\n", ef_card_read(text, len, (len & 1) ? &card : NULL, reason, sizeof(reason)));
        if (strlen(reason) > EF_CARD_REASON_MAX) {
            return 3;
        }
        free(text);
    }
    fclose(file);
    return 0;
}
#endif
