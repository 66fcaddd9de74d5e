"""The FFT of the generated `features.c`: esp-dsp on the chip, the same algorithm elsewhere.

Two real axes ride in one complex FFT (axis a in the real part, axis a + 1 in the imaginary part;
an odd last axis pairs with zeros), as esp-dsp's documented real-input recipe does:

    dsps_fft2r_fc32 (radix-2, in place) -> dsps_bit_rev2r_fc32 -> dsps_cplx2reC_fc32

after which the first N/2 complex slots hold 2 X_a[k] (k = 1 .. N/2-1; slot 0: X_a[0], not
doubled) and slots N/2 + k hold 2 X_b[k] (slot N/2: X_b[0]). The split drops the Nyquist bins
(no band power needs them: a band is `lo <= f < hi <= fs/2`), so they are read before it and
returned apart.

`features.c` exports it for a power-of-two window, whatever the feature sets, as
`ef_features_fft_two_real` with its static buffer (`ef_features_fft_buffer`): the firmware's ISO
rule (`ef_rms_velocity_mm_s` in ef_rule.c) runs the same FFT on its own Hann window.

On ESP-IDF (`ESP_PLATFORM`) the generated code calls espressif/esp-dsp, which selects its
assembly variant for the chip (`_aes3` on the ESP32-S3, `_ae32` on the ESP32, with
CONFIG_DSP_OPTIMIZED, the default); elsewhere, and if esp-dsp cannot initialize its tables for
this size, it runs a transcription of esp-dsp's ANSI C variants (v1.8.2,
modules/fft/float/dsps_fft2r_fc32_ansi.c, Apache-2.0): the same butterflies in the same order, the
same bit-reversed twiddle table (cosf/sinf of float angles, as dsps_gen_w_r2_fc32 computes them,
here printed from numpy), the same bit reversal and the same split. The host tests therefore check
the numerics of esp-dsp's ANSI code path; the chip's assembly variants (different operation
order, fused multiply-adds) are not run here.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np

ESP_DSP_VERSION: Final = "1.8.2"
ESP32S3_FFT2R_CYCLES: Final = {64: 3970, 128: 8999, 256: 20139, 512: 44594, 1024: 97847}
"""dsps_fft2r_fc32 on the ESP32-S3 (_aes3, -O2), cycles per complex FFT: esp-dsp's published
benchmarks (docs/en/esp-dsp-benchmarks.rst, v1.8.2). Not measured here."""


@dataclass(frozen=True)
class FftPlan:
    """How the band powers of one window are computed (for the export's README)."""

    fft: bool  # False: a direct DFT (the window is not a power of two)
    points: int
    ffts: int  # complex FFTs per window: two axes each
    s3_fft_cycles: int | None  # esp-dsp's published S3 figure for all of them, if it lists the size


def fft_plan(window: int, axes: int) -> FftPlan:
    if not is_power_of_two(window):
        return FftPlan(False, window, 0, None)
    ffts = (axes + 1) // 2
    per_fft = ESP32S3_FFT2R_CYCLES.get(window)
    return FftPlan(True, window, ffts, None if per_fft is None else per_fft * ffts)


def is_power_of_two(n: int) -> bool:
    return n >= 4 and n & (n - 1) == 0


def _bit_reverse_pairs(values: np.ndarray) -> np.ndarray:
    """dsps_bit_rev_fc32_ansi on an array of complex pairs (re, im interleaved)."""
    data = values.copy()
    n = len(data) // 2
    j = 0
    for i in range(1, n - 1):
        k = n >> 1
        while k <= j:
            j -= k
            k >>= 1
        j += k
        if i < j:
            data[[2 * i, 2 * i + 1, 2 * j, 2 * j + 1]] = data[[2 * j, 2 * j + 1, 2 * i, 2 * i + 1]]
    return data


def fft_twiddles(window: int) -> tuple[float, ...]:
    """dsps_gen_w_r2_fc32 then dsps_bit_rev_fc32_ansi: N/2 complex twiddles, float32, bit-reversed."""
    e = np.float32(np.pi * 2.0 / window)  # `float e = M_PI * 2.0 / N;`
    angles = (np.arange(window // 2, dtype=np.float32) * e).astype(np.float32)  # `i * e` in float
    w = np.empty(window, dtype=np.float32)
    w[0::2] = np.cos(angles.astype(np.float64)).astype(np.float32)
    w[1::2] = np.sin(angles.astype(np.float64)).astype(np.float32)
    return tuple(float(v) for v in _bit_reverse_pairs(w))


FFT_SOURCE: Final = """\
/* ---- the FFT: esp-dsp on ESP-IDF, its ANSI algorithm transcribed elsewhere ---- */
#include <stddef.h>

#if defined(ESP_PLATFORM) && !defined(EF_FEATURES_PORTABLE_FFT)
#include "dsps_fft2r.h"
#define EF_USE_ESP_DSP 1
#define EF_ALIGN16 __attribute__((aligned(16)))
#else
#define EF_USE_ESP_DSP 0
#define EF_ALIGN16
#endif

/* One window of two axes as N complex values (re: axis a, im: axis a + 1). Static, so the
 * feature extraction is not re-entrant: call it from one task (which may borrow it between
 * extractions: ef_features_fft_buffer). */
static float s_fft[2 * EF_FEATURES_WINDOW] EF_ALIGN16;

/* The portable path transcribes espressif/esp-dsp v1.8.2 (modules/fft/float/dsps_fft2r_fc32_ansi.c:
 * dsps_fft2r_fc32_ansi_, dsps_bit_rev_fc32_ansi, dsps_cplx2reC_fc32_ansi).
 * Copyright 2018-2019 Espressif Systems (Shanghai) PTE LTD, Apache License 2.0. */
static void fft2r(float *data)
{
    int ie = 1, n2, j, i, ia, m;
    for (n2 = EF_FEATURES_WINDOW / 2; n2 > 0; n2 >>= 1) {
        ia = 0;
        for (j = 0; j < ie; j++) {
            const float c = k_fft_w[2 * j], s = k_fft_w[2 * j + 1];
            for (i = 0; i < n2; i++) {
                float re_temp, im_temp;
                m = ia + n2;
                re_temp = c * data[2 * m] + s * data[2 * m + 1];
                im_temp = c * data[2 * m + 1] - s * data[2 * m];
                data[2 * m] = data[2 * ia] - re_temp;
                data[2 * m + 1] = data[2 * ia + 1] - im_temp;
                data[2 * ia] = data[2 * ia] + re_temp;
                data[2 * ia + 1] = data[2 * ia + 1] + im_temp;
                ia++;
            }
            ia += n2;
        }
        ie <<= 1;
    }
}

static void bit_rev(float *data)
{
    int i, j = 0, k;
    for (i = 1; i < EF_FEATURES_WINDOW - 1; i++) {
        float r_temp, i_temp;
        k = EF_FEATURES_WINDOW >> 1;
        while (k <= j) {
            j -= k;
            k >>= 1;
        }
        j += k;
        if (i < j) {
            r_temp = data[j * 2];
            data[j * 2] = data[i * 2];
            data[i * 2] = r_temp;
            i_temp = data[j * 2 + 1];
            data[j * 2 + 1] = data[i * 2 + 1];
            data[i * 2 + 1] = i_temp;
        }
    }
}

static void cplx2re_c(float *data)
{
    const int n = EF_FEATURES_WINDOW, n2 = EF_FEATURES_WINDOW << 1;
    int i;
    for (i = 0; i < n / 4; i++) {
        const float rkl = data[i * 2 + 0 + 2], ikl = data[i * 2 + 1 + 2];
        const float rnl = data[n2 - i * 2 - 2], inl = data[n2 - i * 2 - 1];
        const float rkh = data[i * 2 + 0 + 2 + n], ikh = data[i * 2 + 1 + 2 + n];
        const float rnh = data[n2 - i * 2 - 2 - n], inh = data[n2 - i * 2 - 1 - n];
        data[i * 2 + 0 + 2] = rkl + rnl;
        data[i * 2 + 1 + 2] = ikl - inl;
        data[n2 - i * 2 - 1 - n] = inh - ikh;
        data[n2 - i * 2 - 2 - n] = rkh + rnh;
        data[i * 2 + 0 + 2 + n] = ikl + inl;
        data[i * 2 + 1 + 2 + n] = rnl - rkl;
        data[n2 - i * 2 - 1] = rkh - rnh;
        data[n2 - i * 2 - 2] = ikh + inh;
    }
    data[n] = data[1];
    data[1] = 0;
    data[n + 1] = 0;
}

#if EF_USE_ESP_DSP
/* esp-dsp's twiddle table, once (on the ESP32-S3 up to 1024 points a table in flash; its small
 * bit-reversal table is allocated here, once). A failure keeps the portable FFT. */
static int esp_dsp_ready(void)
{
    static int state = 0;
    if (state == 0) {
        state = dsps_fft2r_init_fc32(NULL, EF_FEATURES_WINDOW) == ESP_OK &&
                        dsps_fft_w_table_size >= EF_FEATURES_WINDOW
                    ? 1
                    : -1;
    }
    return state > 0;
}
#endif

/* The complex FFT in natural order, then (after saving the Nyquist bins, which the split drops)
 * the spectra of the two real signals (see features.h). */
void ef_features_fft_two_real(float *data, float nyquist[2])
{
#if EF_USE_ESP_DSP
    const int esp_dsp = esp_dsp_ready();
    if (esp_dsp) {
        dsps_fft2r_fc32(data, EF_FEATURES_WINDOW);
        dsps_bit_rev2r_fc32(data, EF_FEATURES_WINDOW);
    } else
#endif
    {
        fft2r(data);
        bit_rev(data);
    }
    if (nyquist != NULL) {
        nyquist[0] = data[EF_FEATURES_WINDOW];
        nyquist[1] = data[EF_FEATURES_WINDOW + 1];
    }
#if EF_USE_ESP_DSP
    if (esp_dsp) {
        dsps_cplx2reC_fc32(data, EF_FEATURES_WINDOW);
        return;
    }
#endif
    cplx2re_c(data);
}

float *ef_features_fft_buffer(void)
{
    return s_fft;
}
"""

FFT_BAND_POWERS: Final = """\
/* ---- band powers from the FFT above ---- */
/* |X[k]|^2 of the first (second = 0) or second signal: slot k or N/2 + k holds 2 X[k] (X[0]). */
static float bin_power(const float *spectrum, int k, int second)
{
    const int slot = second ? EF_FEATURES_WINDOW / 2 + k : k;
    const float re = spectrum[2 * slot], im = spectrum[2 * slot + 1];
    return k == 0 ? re * re + im * im : 0.25f * (re * re + im * im);
}

static void band_powers(const float *samples, const ef_moments_t *m, ef_real_t power[][EF_N_BANDS])
{
    int a, j, b, k, s;
    for (a = 0; a < EF_FEATURES_AXES; a += 2) {
        const int pair = a + 1 < EF_FEATURES_AXES;
        for (j = 0; j < EF_FEATURES_WINDOW; ++j) {
            const float *x = samples + j * EF_FEATURES_AXES + a;
            s_fft[2 * j] = (x[0] - m[a].mean) * k_hann[j];
            s_fft[2 * j + 1] = pair ? (x[1] - m[a + 1].mean) * k_hann[j] : 0.0f;
        }
        ef_features_fft_two_real(s_fft, NULL);
        for (s = 0; s <= pair; ++s) {
            for (b = 0; b < EF_N_BANDS; ++b) {
                float total = 0.0f;
                for (k = k_band_first[b]; k < k_band_end[b]; ++k) {
                    total += bin_power(s_fft, k, s);
                }
                power[a + s][b] = total;
            }
        }
    }
}
"""
