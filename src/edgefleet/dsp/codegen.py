"""Generate portable C99 feature extraction (`features.h`, `features.c`) that mirrors `extract`.

The generated code computes what `features.extract` computes, for one window of `float` samples
laid out `[window][axes]` (row-major, as a sampling loop fills a buffer):

- stats: mean, std (ddof=0), ptp; spectral: rms, crest, kurtosis of the mean-removed window and
  log10 band powers, set-major then axis-major, the order of `feature_names`.
- Band powers sum |X[k]|^2 over the bins inside each band (`lo <= f < hi`, the same bins numpy's
  rFFT selects) of the mean-removed window times the same Hann window (`np.hanning(n + 2)[1:-1]`),
  with the same scale `2 / (n * sum(hann^2))`.
- By default everything is single precision, which the ESP32-S3's FPU runs natively: for a
  power-of-two window the spectrum comes from a radix-2 FFT (`codegen_fft`: esp-dsp on the chip,
  its ANSI algorithm elsewhere), else from a direct DFT over the band bins. Features stay within
  `FLOAT_RTOL` (+ `FLOAT_ATOL`) of numpy. For a power-of-two window `features.c` exports that FFT
  (`ef_features_fft_two_real`, whatever the sets), which the firmware's ISO rule reuses.
- `-DEF_FEATURES_DIRECT_DFT` selects the verification path: double accumulation and the direct
  DFT, within 1e-6 relative of numpy, but software-emulated doubles on the chip (slow).
- Constant tables (Hann, twiddles, band bins, the scale) are computed here with numpy and printed
  with round-trip precision, so the C tables hold the very same values.
- No allocation; only `<math.h>` (and esp-dsp's `dsps_fft2r.h` on ESP-IDF).

Pure functions of a `FeatureConfig` and a window length; output is deterministic.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np

from edgefleet.dsp.codegen_fft import FFT_BAND_POWERS, FFT_SOURCE, fft_twiddles, is_power_of_two
from edgefleet.dsp.errors import FeatureError
from edgefleet.dsp.features import (
    BAND_EPS,
    SPECTRAL_FEATURES,
    STATS_FEATURES,
    FeatureConfig,
    feature_names,
)

HEADER_NAME: Final = "features.h"
SOURCE_NAME: Final = "features.c"
MAX_WINDOW: Final = 65536
_TINY_LITERAL: Final = "1e-12"  # features._TINY
FLOAT_RTOL: Final = 2e-5
"""Measured bound of the default (float, FFT) path against numpy, relative, on the synthetic and CWRU
windows of the tests; see docs/firmware.md."""
FLOAT_ATOL: Final = 1e-7
"""Absolute part of the bound, for features near 0 (a mean of a centred axis, a log10 power near 1)."""


@dataclass(frozen=True)
class FeatureTables:
    """The constants the C code needs, computed once with numpy."""

    hann: tuple[float, ...]
    cos: tuple[float, ...]
    sin: tuple[float, ...]
    band_bins: tuple[tuple[int, int], ...]  # [first, last + 1) rFFT bin per band
    scale: float
    fft_w: tuple[float, ...] = ()  # radix-2 twiddles (float32, bit-reversed); () if no FFT (not 2^k)


def feature_tables(config: FeatureConfig, window: int) -> FeatureTables:
    """Hann window, DFT twiddles and band bins exactly as `band_powers` uses them."""
    if not 2 <= window <= MAX_WINDOW:
        raise FeatureError(f"window must be 2..{MAX_WINDOW} samples, got {window}")
    n = window
    hann = np.hanning(n + 2)[1:-1]
    scale = 2.0 / (n * float(np.sum(hann**2)))
    freqs = np.fft.rfftfreq(n, d=1.0 / config.sample_rate_hz)
    bins = []
    for lo, hi in config.bands_hz:
        idx = np.flatnonzero((freqs >= lo) & (freqs < hi))
        bins.append((int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, 0))
    angle = 2.0 * np.pi * np.arange(n) / n
    spectral = "spectral" in config.sets
    return FeatureTables(
        hann=tuple(float(v) for v in hann),
        cos=tuple(float(v) for v in np.cos(angle)) if spectral else (),
        sin=tuple(float(v) for v in np.sin(angle)) if spectral else (),
        band_bins=tuple(bins),
        scale=scale,
        fft_w=fft_twiddles(n) if is_power_of_two(n) else (),  # also for the firmware's ISO rule
    )


def _lit(value: float) -> str:
    text = repr(float(value))  # shortest round-trip repr: the same double in C
    return text if any(c in text for c in ".eEn") else text + ".0"


def _table(name: str, values: tuple[float, ...], per_line: int = 4, ctype: str = "ef_real_t") -> str:
    suffix = "f" if ctype == "float" else ""
    rows = [
        ", ".join(_lit(v) + suffix for v in values[i : i + per_line]) for i in range(0, len(values), per_line)
    ]
    body = ",\n    ".join(rows)
    return f"static const {ctype} {name}[{len(values)}] = {{\n    {body}\n}};\n"


_FFT_DECLARATIONS = """
/* The FFT behind the band powers (a power-of-two window), for other spectral work of the same task
 * (the ISO rule of ef_rule.c). Two real signals of EF_FEATURES_WINDOW samples, data[2j] and
 * data[2j + 1], are transformed in place: slot k (data[2k], data[2k + 1]) then holds 2 X1[k] for
 * k = 1 .. N/2 - 1 and slot N/2 + k holds 2 X2[k]; slot 0 holds X1[0], slot N/2 X2[0] (real);
 * nyquist (unless NULL) gets X1[N/2] and X2[N/2]. esp-dsp's dsps_fft2r_fc32 on ESP-IDF (data
 * 16-byte aligned), its ANSI algorithm elsewhere. Call it from the task that extracts features
 * (esp-dsp's tables are set up on first use). */
#define EF_FEATURES_FFT 1
void ef_features_fft_two_real(float *data, float nyquist[2]);
/* ef_features_extract's buffer (2 x EF_FEATURES_WINDOW floats, aligned for esp-dsp), for the same
 * task between extractions: it saves a second buffer of that size. */
float *ef_features_fft_buffer(void);
"""


def _fft_declarations(window: int) -> str:
    return _FFT_DECLARATIONS if is_power_of_two(window) else ""


def generate_header(config: FeatureConfig, window: int) -> str:
    names = feature_names(config)
    listing = "\n".join(f" *   {i:3d} {name}" for i, name in enumerate(names))
    return f"""\
/* Generated by edgefleet (dsp.codegen). Do not edit: regenerate from the model card.
 *
 * Window features for {len(config.axes)} axes ({", ".join(config.axes)}) at {config.sample_rate_hz:g} Hz,
 * {window}-sample windows, sets: {", ".join(config.sets)}. Output order:
{listing}
 */
#ifndef EF_FEATURES_H_
#define EF_FEATURES_H_

#ifdef __cplusplus
extern "C" {{
#endif

#define EF_FEATURES_WINDOW {window}
#define EF_FEATURES_AXES {len(config.axes)}
#define EF_FEATURES_COUNT {len(names)}
#define EF_FEATURES_SAMPLE_RATE_HZ {_lit(config.sample_rate_hz)}

#define EF_FEATURES_OK 0
#define EF_FEATURES_NONFINITE (-1)

/* Feature names, in output order (as the model card's feature_spec.names). */
extern const char *const ef_feature_names[EF_FEATURES_COUNT];

/* samples: EF_FEATURES_WINDOW * EF_FEATURES_AXES floats, sample-major ([window][axes]).
 * out: EF_FEATURES_COUNT floats. Returns EF_FEATURES_OK, or EF_FEATURES_NONFINITE (out untouched)
 * when a sample is NaN or infinite. No allocation. Not re-entrant when the spectral features use
 * the FFT (a static buffer of 2 x EF_FEATURES_WINDOW floats): call it from one task. */
int ef_features_extract(const float *samples, float *out);
{_fft_declarations(window)}
#ifdef __cplusplus
}}
#endif

#endif /* EF_FEATURES_H_ */
"""


def _stats_block(offset: int) -> str:
    k = len(STATS_FEATURES)
    return f"""\
    /* stats: mean, std (ddof=0), ptp */
    for (a = 0; a < EF_FEATURES_AXES; ++a) {{
        out[{offset} + a * {k} + 0] = (float)m[a].mean;
        out[{offset} + a * {k} + 1] = (float)EF_SQRT(m[a].m2);
        out[{offset} + a * {k} + 2] = (float)(m[a].max - m[a].min);
    }}
"""


def _spectral_block(offset: int, n_bands: int) -> str:
    k = len(SPECTRAL_FEATURES) + n_bands
    return f"""\
    /* spectral: rms, crest, kurtosis of the mean-removed window, log10 band powers */
    for (a = 0; a < EF_FEATURES_AXES; ++a) {{
        const ef_real_t rms = EF_SQRT(m[a].m2);
        const ef_real_t m2sq = m[a].m2 * m[a].m2;
        int b;
        out[{offset} + a * {k} + 0] = (float)rms;
        out[{offset} + a * {k} + 1] = (float)(m[a].maxabs / (rms > EF_TINY ? rms : EF_TINY));
        out[{offset} + a * {k} + 2] = (float)(m[a].m4 / (m2sq > EF_TINY ? m2sq : EF_TINY));
        for (b = 0; b < EF_N_BANDS; ++b) {{
            out[{offset} + a * {k} + {len(SPECTRAL_FEATURES)} + b] =
                (float)EF_LOG10(power[a][b] * EF_BAND_SCALE + EF_BAND_EPS);
        }}
    }}
"""


_PRECISION = """\
/* EF_FEATURES_DIRECT_DFT: double accumulation and a direct DFT (verification; slow on the chip's
 * single-precision FPU). Default: float throughout. */
#ifdef EF_FEATURES_DIRECT_DFT
typedef double ef_real_t;
#define EF_SQRT sqrt
#define EF_FABS fabs
#define EF_LOG10 log10
#else
typedef float ef_real_t;
#define EF_SQRT sqrtf
#define EF_FABS fabsf
#define EF_LOG10 log10f
#endif
#define EF_TINY ((ef_real_t)_TINY_)

"""

_MOMENTS = """\
typedef struct {
    ef_real_t mean, m2, m4, min, max, maxabs;
} ef_moments_t;

static void moments(const float *samples, int axis, ef_moments_t *m)
{
    ef_real_t sum = 0, m2 = 0, m4 = 0, maxabs = 0;
    ef_real_t lo = samples[axis], hi = samples[axis];
    int j;
    for (j = 0; j < EF_FEATURES_WINDOW; ++j) {
        const ef_real_t x = samples[j * EF_FEATURES_AXES + axis];
        sum += x;
        if (x < lo) {
            lo = x;
        }
        if (x > hi) {
            hi = x;
        }
    }
    m->mean = sum / EF_FEATURES_WINDOW;
    for (j = 0; j < EF_FEATURES_WINDOW; ++j) {
        const ef_real_t d = (ef_real_t)samples[j * EF_FEATURES_AXES + axis] - m->mean;
        const ef_real_t d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
        if (EF_FABS(d) > maxabs) {
            maxabs = EF_FABS(d);
        }
    }
    m->m2 = m2 / EF_FEATURES_WINDOW;
    m->m4 = m4 / EF_FEATURES_WINDOW;
    m->min = lo;
    m->max = hi;
    m->maxabs = maxabs;
}

"""

_DIRECT_DFT = """\
/* Sum of |X[k]|^2 over bins [first, end) of the DFT of the mean-removed, Hann-windowed axis. */
static ef_real_t band_power(const float *samples, int axis, ef_real_t mean, int first, int end)
{
    ef_real_t total = 0;
    int k, j;
    for (k = first; k < end; ++k) {
        ef_real_t re = 0, im = 0;
        int idx = 0; /* (k * j) mod N, kept incrementally */
        for (j = 0; j < EF_FEATURES_WINDOW; ++j) {
            const ef_real_t v = ((ef_real_t)samples[j * EF_FEATURES_AXES + axis] - mean) * k_hann[j];
            re += v * k_cos[idx];
            im -= v * k_sin[idx];
            idx += k;
            if (idx >= EF_FEATURES_WINDOW) {
                idx -= EF_FEATURES_WINDOW;
            }
        }
        total += re * re + im * im;
    }
    return total;
}

static void band_powers(const float *samples, const ef_moments_t *m, ef_real_t power[][EF_N_BANDS])
{
    int a, b;
    for (a = 0; a < EF_FEATURES_AXES; ++a) {
        for (b = 0; b < EF_N_BANDS; ++b) {
            power[a][b] = band_power(samples, a, m[a].mean, k_band_first[b], k_band_end[b]);
        }
    }
}
"""


def _spectral_tables(tables: FeatureTables) -> str:
    firsts = ", ".join(str(b[0]) for b in tables.band_bins)
    ends = ", ".join(str(b[1]) for b in tables.band_bins)
    dft = (
        "/* cos(2 pi m / N), sin(2 pi m / N) */\n"
        + _table("k_cos", tables.cos)
        + _table("k_sin", tables.sin)
        + "\n"
        + _DIRECT_DFT
    )
    text = (
        f"#define EF_N_BANDS {len(tables.band_bins)}\n"
        f"#define EF_BAND_SCALE ((ef_real_t){_lit(tables.scale)})\n"
        f"#define EF_BAND_EPS ((ef_real_t){_lit(BAND_EPS)})\n"
        "/* rFFT bins of each band: [first, end), from f = k * fs / N with lo <= f < hi */\n"
        f"static const int k_band_first[EF_N_BANDS] = {{{firsts}}};\n"
        f"static const int k_band_end[EF_N_BANDS] = {{{ends}}};\n"
        "/* Hann window np.hanning(N + 2)[1:-1] */\n" + _table("k_hann", tables.hann) + "\n"
    )
    if not tables.fft_w:  # not a power of two: the direct DFT, in float unless asked for double
        return text + dft
    return text + "#ifdef EF_FEATURES_DIRECT_DFT\n" + dft + "#else\n" + FFT_BAND_POWERS + "#endif\n"


def _fft(tables: FeatureTables) -> str:
    """The radix-2 FFT (a power-of-two window), exported for other spectral work (features.h)."""
    return (
        "/* radix-2 twiddles cos/sin(i * (float)(2 pi / N)), i < N/2, bit-reversed, as esp-dsp */\n"
        + _table("k_fft_w", tables.fft_w, ctype="float")
        + "\n"
        + FFT_SOURCE
        + "\n"
    )


def generate_source(config: FeatureConfig, window: int) -> str:
    tables = feature_tables(config, window)
    names = feature_names(config)
    spectral = "spectral" in config.sets
    name_rows = ",\n    ".join(f'"{n}"' for n in names)
    how = (
        "a radix-2 FFT in float (esp-dsp on ESP-IDF)"
        if tables.fft_w
        else "a direct DFT over the band bins (the window is not a power of two)"
    )
    parts = [
        f"""\
/* Generated by edgefleet (dsp.codegen). Do not edit: regenerate from the model card.
 * Mirrors edgefleet.dsp.features.extract, verified against it on the host: within {FLOAT_RTOL:g} relative
 * (+{FLOAT_ATOL:g}) in float, band powers by {how};
 * within 1e-5 with -DEF_FEATURES_DIRECT_DFT (double, direct DFT). */
#include "{HEADER_NAME}"

#include <math.h>

{_PRECISION.replace("_TINY_", _TINY_LITERAL)}const char *const ef_feature_names[EF_FEATURES_COUNT] = {{
    {name_rows}
}};

""",
        _MOMENTS,
    ]
    if tables.fft_w:
        parts.append(_fft(tables))
    if spectral:
        parts.append(_spectral_tables(tables))
    parts.append(
        f"""
int ef_features_extract(const float *samples, float *out)
{{
    ef_moments_t m[EF_FEATURES_AXES];
{"    ef_real_t power[EF_FEATURES_AXES][EF_N_BANDS];" + chr(10) if spectral else ""}\
    int a, j;
    for (j = 0; j < EF_FEATURES_WINDOW * EF_FEATURES_AXES; ++j) {{
        if (!isfinite(samples[j])) {{
            return EF_FEATURES_NONFINITE;
        }}
    }}
    for (a = 0; a < EF_FEATURES_AXES; ++a) {{
        moments(samples, a, &m[a]);
    }}
{"    band_powers(samples, m, power);" + chr(10) if spectral else ""}\
"""
    )
    offset = 0
    n_axes = len(config.axes)
    for feature_set in config.sets:
        if feature_set == "stats":
            parts.append(_stats_block(offset))
            offset += n_axes * len(STATS_FEATURES)
        else:
            parts.append(_spectral_block(offset, len(config.bands_hz)))
            offset += n_axes * (len(SPECTRAL_FEATURES) + len(config.bands_hz))
    parts.append("    return EF_FEATURES_OK;\n}\n")
    return "".join(parts)


def generate(config: FeatureConfig, window: int) -> dict[str, str]:
    """`{"features.h": ..., "features.c": ...}` for `config` and `window`-sample windows."""
    return {HEADER_NAME: generate_header(config, window), SOURCE_NAME: generate_source(config, window)}
