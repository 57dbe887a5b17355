"""Classical anomaly scores that ``bench/kpi.py`` compares sentinel's generic detector with.

Each baseline maps a series (values in time order, gaps ignored) to a per-sample score
where larger means more anomalous; every score at index i uses only samples 0..i (and
the window before it), as a streaming detector would. They are vectorised (numpy) for
speed, so their measured cost is a batch cost, not a streaming one. Their window sizes
are fixed here; their thresholds are picked on the tuning part by ``bench/kpi.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_CHUNK = 100_000
"""Rows of windows materialised at once (bounds memory of the windowed baselines)."""


@dataclass(frozen=True)
class Baseline:
    name: str
    score: Callable[[np.ndarray], np.ndarray]
    state_floats: int
    """Numbers a streaming version would keep per series (for the memory column)."""


def _previous_windows(values: np.ndarray, window: int) -> np.ndarray:
    """Row i holds the ``window`` samples before sample i (padded with the first value)."""
    padded = np.concatenate([np.full(window, values[0]), values])
    return sliding_window_view(padded, window)[: len(values)]


def rolling_zscore(values: np.ndarray, window: int = 1440) -> np.ndarray:
    """|x - mean| / std of the previous ``window`` samples (running sums)."""
    padded = np.concatenate([np.full(window, values[0]), values]).astype(np.float64)
    c1 = np.concatenate([[0.0], np.cumsum(padded)])
    c2 = np.concatenate([[0.0], np.cumsum(padded * padded)])
    n = len(values)
    idx = np.arange(n) + window
    s1 = c1[idx] - c1[idx - window]
    s2 = c2[idx] - c2[idx - window]
    mean = s1 / window
    var = np.maximum(s2 / window - mean * mean, 0.0)
    return np.abs(values - mean) / (np.sqrt(var) + 1e-9 * (1 + np.abs(mean)))


def ewma_chart(values: np.ndarray, alpha: float = 0.02) -> np.ndarray:
    """EWMA control chart: |x - EWMA| / EW standard deviation, both before the sample."""
    out = np.zeros(len(values))
    mean = float(values[0])
    var = 0.0
    for i, x in enumerate(values.tolist()):
        d = x - mean
        out[i] = abs(d) / (var**0.5 + 1e-9 * (1 + abs(mean)))
        mean += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
    return out


def median_mad(values: np.ndarray, window: int = 60) -> np.ndarray:
    """|x - median| / (1.4826 MAD) of the previous ``window`` samples."""
    out = np.empty(len(values))
    wins = _previous_windows(values.astype(np.float64), window)
    for a in range(0, len(values), _CHUNK):
        w = wins[a : a + _CHUNK]
        med = np.median(w, axis=1)
        mad = np.median(np.abs(w - med[:, None]), axis=1) * 1.4826
        out[a : a + _CHUNK] = np.abs(values[a : a + _CHUNK] - med) / (
            mad + 1e-9 * (1 + np.abs(med))
        )
    return out


def spectral_residual(
    values: np.ndarray, window: int = 64, extend: int = 5, q: int = 3, z: int = 21
) -> np.ndarray:
    """Spectral residual saliency of the newest sample of each trailing window (Ren et al.,
    KDD 2019): the window is extended by ``extend`` extrapolated points, its log amplitude
    spectrum minus its ``q``-point average gives the residual, and the saliency of the
    newest sample against the mean saliency of the ``z`` before it is the score."""
    x = values.astype(np.float64)
    out = np.zeros(len(x))
    padded = np.concatenate([np.full(window - 1, x[0]), x])
    wins = sliding_window_view(padded, window)
    for a in range(0, len(x), _CHUNK):
        w = wins[a : a + _CHUNK]
        # extrapolate: the last value plus the mean slope of the last few points
        grads = (w[:, -1:] - w[:, -extend - 1 : -1]) / np.arange(extend, 0, -1)
        nxt = w[:, -2] + grads.mean(axis=1) * extend
        ext = np.concatenate([w, np.repeat(nxt[:, None], extend, axis=1)], axis=1)
        spec = np.fft.fft(ext, axis=1)
        amp = np.abs(spec)
        log_amp = np.log(np.maximum(amp, 1e-12))
        avg = _moving_average(log_amp, q)
        residual = np.exp(log_amp - avg)
        sal = np.abs(np.fft.ifft(residual * spec / np.maximum(amp, 1e-12), axis=1))
        target = sal[:, window - 1]
        local = sal[:, max(0, window - 1 - z) : window - 1].mean(axis=1)
        out[a : a + _CHUNK] = np.abs(target - local) / (local + 1e-12)
    return out


def _moving_average(rows: np.ndarray, q: int) -> np.ndarray:
    """Each row's centred ``q``-point average, zeros beyond the ends (np.convolve 'same')."""
    half = q // 2
    padded = np.pad(rows, ((0, 0), (half + 1, q - 1 - half)))
    c = np.cumsum(padded, axis=1)
    return (c[:, q:] - c[:, :-q]) / q


BASELINES = (
    Baseline("rolling z-score (1440)", rolling_zscore, 1440 + 3),
    Baseline("EWMA chart (a=0.02)", ewma_chart, 2),
    Baseline("median/MAD (60)", median_mad, 60),
    Baseline("spectral residual (64)", spectral_residual, 64),
)
