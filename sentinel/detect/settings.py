"""Detector thresholds (the `detectors:` config section). Owned by the detect stage.

Every threshold has a default chosen for canaries every 2 s with rechecks 0.5 s apart on
suspicion, NVML samples every 1 s and Triton health every 1 s (the probes' defaults);
``bench/detectors.py`` measures them on the labelled trace suite (false findings per clean
simulated week) and ``bench/time_to_mitigate.py`` on real Triton faults (seconds to detect).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from sentinel.base.duration import Duration
from sentinel.base.settings import Section
from sentinel.vocabulary.processes import DEFAULT_SERVER_PROCESSES


class LatencySettings(Section):
    """``latency_spike``: short-window high quantile against a robust baseline and an SLO."""

    enabled: bool = True
    """Run this detector."""
    quantile: float = Field(0.9, gt=0, lt=1)
    """Quantile of canary latency taken over the short window (0.9 = p90)."""
    short_window_s: Duration = Field(100.0, gt=0)
    """Span of the short window the quantile is taken over."""
    despike: bool = True
    """Replace each latency by the median of it and the two before it, so a lone GC
    pause cannot fake a spike (a real one shows after two samples)."""
    min_samples: int = Field(5, ge=1)
    """Samples the short window needs before it is judged."""
    baseline_window_s: Duration = Field(3600.0, gt=0)
    """Span of the long window whose median and IQR make the baseline; it learns only from
    samples taken while no breach is pending or open, so a spike cannot raise its own bar."""
    baseline_min_samples: int = Field(30, ge=3)
    """Baseline samples needed before the relative rule applies (the SLO rule needs none)."""
    ratio: float = Field(2.0, gt=1)
    """Relative rule: the quantile must exceed baseline median x ratio ..."""
    k_sigma: float = Field(5.0, ge=0)
    """... and baseline median + k_sigma x robust sigma (IQR / 1.349) ..."""
    min_increase_s: Duration = Field(0.02, ge=0)
    """... and baseline median + this many seconds (ignores the few milliseconds a busy
    host adds to a fast model's canaries; a spike is an increase a caller notices)."""
    slo_s: Duration | None = Field(None, gt=0)
    """Absolute SLO on the quantile, seconds; breached means a finding even when the
    baseline has crept up. None: only the relative rule."""
    evidence_log_odds: float | None = Field(13.8, gt=0)
    """Sequential rule (a CUSUM over the canaries): also a spike once the canaries since
    they began to exceed the bar (the relative threshold, or the SLO) are this much
    likelier (a natural log of the odds) under a spike (9 in 10 over the bar) than under
    normal noise (1 in 200), and most of them were over it: three in a row, found within
    two rechecks, where the window's quantile still holds the canaries from before. None
    turns it off."""
    sequential_min_increase_s: Duration = Field(0.05, ge=0)
    """The sequential rule counts a canary as over the bar only when it is also this much
    over the baseline median: it acts within seconds, so it is kept to increases worth
    acting on at once (a model reload's brief slowdown is not one); smaller spikes are the
    window rule's, after ``min_duration_s``."""
    min_duration_s: Duration = Field(30.0, ge=0)
    """The window's breach must hold this long before a finding (onset = first breaching
    sample); the sequential rule's needs no more than its evidence."""
    clear_fraction: float = Field(0.5, ge=0, le=1)
    """Hysteresis: clear below baseline + clear_fraction x (threshold - baseline), and
    below clear_fraction x the SLO's excess over the baseline."""
    clear_duration_s: Duration = Field(20.0, ge=0)
    """The quantile must stay under the clear level this long to close the finding."""

    @model_validator(mode="after")
    def _windows(self) -> LatencySettings:
        if self.baseline_window_s < self.short_window_s:
            raise ValueError("baseline_window_s must be >= short_window_s")
        return self


class MemorySettings(Section):
    """``gpu_oom`` (memory high, or OOM error text) and ``gpu_oom_predicted`` (growth slope)."""

    enabled: bool = True
    """Run this detector."""
    high_fraction: float = Field(0.95, gt=0, le=1)
    """Used/total memory at or above this is high."""
    high_min_duration_s: Duration = Field(60.0, ge=0)
    """High memory must hold this long before a ``gpu_oom`` finding."""
    full_fraction: float = Field(0.99, gt=0, le=1)
    """Used/total at or above this is full: allocations are failing now ..."""
    full_min_duration_s: Duration = Field(5.0, ge=0)
    """... so ``gpu_oom`` fires after only this long."""
    clear_fraction: float = Field(0.90, gt=0, le=1)
    """Hysteresis: ``gpu_oom`` (high) clears below this fraction ..."""
    clear_duration_s: Duration = Field(120.0, ge=0)
    """... held this long (also how long OOM error text must be absent to clear)."""
    trend_windows_s: list[Duration] = Field(default_factory=lambda: [300.0, 1800.0])
    """Least-squares fits over these spans; any one predicting exhaustion is enough
    (a short span catches fast leaks, a long one slow leaks)."""
    trend_min_samples: int = Field(30, ge=3)
    """Samples a fit needs (and it must span at least half its window)."""
    min_r2: float = Field(0.9, ge=0, le=1)
    """The fit must explain this share of the variance: steady growth, not one step up
    (a single step inside the window gives r2 <= 0.75)."""
    min_slope_per_h: float = Field(0.005, ge=0)
    """Ignore growth slower than this fraction of total memory per hour."""
    horizon_s: Duration = Field(3600.0, gt=0)
    """``gpu_oom_predicted`` when the fit reaches 100 % within this many seconds."""
    eta_confidence_z: float = Field(2.0, ge=0)
    """The time to 100 % is read from the fit's upper confidence band, this many standard
    errors above the line (2: about 98 %, one-sided), so a noisy fit warns early rather
    than late; 0 reads the line itself."""
    predict_min_duration_s: Duration = Field(60.0, ge=0)
    """The prediction must hold this long before a finding."""
    oom_patterns: list[str] = Field(
        default_factory=lambda: [
            "out of memory",
            "outofmemory",
            "cuda_error_out_of_memory",
            "cudaerrormemoryallocation",
            "failed to allocate",
        ]
    )
    """Case-insensitive substrings of canary/Triton error text that mean a GPU OOM."""
    server_pids: list[int] = Field(default_factory=list)
    """PIDs of the Triton server (also settable at run time); memory held by any other
    process is attributed as the cause."""
    server_process_names: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SERVER_PROCESSES), exclude=True
    )
    """The server's processes (names or patterns). Set once, at the top level, as
    ``server_processes`` (this key is a deprecated alias the config fills from it)."""
    other_process_min_share: float = Field(0.1, ge=0, le=1)
    """Other processes holding at least this share of the GPU's memory are named as the
    cause (cause = 'other_process')."""

    @model_validator(mode="after")
    def _consistent(self) -> MemorySettings:
        if not self.trend_windows_s or any(w <= 0 for w in self.trend_windows_s):
            raise ValueError("trend_windows_s must be a non-empty list of spans > 0")
        if self.clear_fraction > self.high_fraction:
            raise ValueError("clear_fraction must be <= high_fraction")
        return self


class ThermalSettings(Section):
    """``thermal_throttle`` and ``power_brake`` from NVML clock-event reasons."""

    enabled: bool = True
    """Run this detector."""
    thermal_reasons: list[str] = Field(
        default_factory=lambda: ["HwThermalSlowdown", "SwThermalSlowdown", "HwSlowdown"]
    )
    """Clock-event reasons that mean thermal throttling."""
    power_brake_reasons: list[str] = Field(default_factory=lambda: ["HwPowerBrakeSlowdown"])
    """Clock-event reasons that mean an external power brake (its own finding)."""
    sw_power_cap_is_incident: bool = False
    """SwPowerCap is normal under full load; set true to count it as throttling."""
    min_samples: int = Field(3, ge=1)
    """Consecutive samples a reason (or the temperature margin) must hold."""
    min_margin_c: float | None = Field(2.0, ge=0)
    """Throttling also when the temperature is within this many degrees of the slowdown
    threshold (warns just before the clocks drop); None turns this off."""
    fallback_slowdown_c: float | None = Field(None, gt=0)
    """Slowdown threshold used when NVML does not report one (Ada and later may not)."""
    clear_samples: int = Field(5, ge=1)
    """Consecutive clean samples that close a finding."""


class AccuracySettings(Section):
    """``accuracy_drift``: canary agreement with the golden reference over a window."""

    enabled: bool = True
    """Run this detector."""
    window_s: Duration = Field(20.0, gt=0)
    """Span of the window whose mean agreement is judged."""
    min_samples: int = Field(4, ge=1)
    """Canaries with agreement the window needs before it is judged."""
    top1_floor: float = Field(0.9, ge=0, le=1)
    """Mean top-1 agreement below this is drift."""
    cosine_floor: float = Field(0.95, ge=-1, le=1)
    """Mean cosine similarity below this is drift."""
    baseline_window_s: Duration = Field(86400.0, gt=0)
    """Long window whose per-row top-1 agreement is this model's normal level, learned from
    scheduled canaries (not rechecks) while the window is healthy and no drop is pending,
    open or gathering evidence (long, so that a slow slide does not drag the baseline down
    with it)."""
    baseline_min_samples: int = Field(60, ge=3)
    """Baseline samples needed before the relative rule applies."""
    max_drop: float = Field(0.05, ge=0, le=1)
    """Relative rule: top-1 more than this below the baseline is drift."""
    evidence_log_odds: float | None = Field(13.8, gt=0)
    """Sequential rule (a CUSUM over the canaries' rows): also drift once the canaries
    since agreement began to fall are this much likelier (a natural log of the odds) at
    the bar (the baseline minus ``max_drop``, or the floor) than at the model's normal
    per-row agreement, and their own agreement is under the bar. 13.8 is a million to
    one. A drop then shows within a few canaries, before the window's mean, which still
    holds the canaries from before, crosses the bar. None turns it off."""
    min_duration_s: Duration = Field(20.0, ge=0)
    """The window's breach must hold this long before a finding; the sequential rule's
    needs no more than its evidence."""
    sudden_max_s: Duration = Field(120.0, gt=0)
    """From the last healthy window to the breach within this long is 'sudden' (a
    deployment-like step); longer is 'gradual' (a slide)."""
    clear_duration_s: Duration = Field(20.0, ge=0)
    """Agreement must be back above the clear level this long to close the finding."""


class ErrorSettings(Section):
    """``error_burst``, ``server_unhealthy``, ``model_not_ready``, ``gpu_lost``,
    ``xid_hardware``."""

    enabled: bool = True
    """Run this detector."""
    window_s: Duration = Field(20.0, gt=0)
    """Span of the window canary error rates and Triton failure rates are taken over."""
    min_samples: int = Field(3, ge=1)
    """Canaries the window needs before an error rate is judged."""
    max_error_rate: float = Field(0.5, gt=0, lt=1)
    """Canary error rate at or above this is an ``error_burst``."""
    normal_error_rate: float = Field(0.01, gt=0, lt=1)
    """Canary error rate taken as normal by the sequential rule below."""
    evidence_log_odds: float | None = Field(13.8, gt=0)
    """Sequential rule (a CUSUM): also an ``error_burst`` once the canaries since errors
    began are this much likelier under ``max_error_rate`` than under
    ``normal_error_rate`` (a natural log of the odds), and at least ``max_error_rate`` of
    them failed. 13.8 is a million to one: four failures in a row, or five among seven,
    give it; on normal canaries it comes at most once in a million canaries. It finds a
    partial burst (70 % failing) within seconds of rechecks, where the window's rate still
    holds the good canaries from before. None turns it off."""
    max_failure_ratio: float = Field(0.05, gt=0, le=1)
    """Triton failures / requests over the window at or above this is an ``error_burst``."""
    min_requests: float = Field(20.0, ge=1)
    """Requests the window needs before Triton's failure ratio is judged."""
    min_duration_s: Duration = Field(0.0, ge=0)
    """An error burst must hold this long before a finding (the window's rate already
    needs several errors, so none by default)."""
    clear_duration_s: Duration = Field(20.0, ge=0)
    """Error rates must stay under half their threshold this long to clear."""
    unhealthy_samples: int = Field(2, ge=1)
    """Consecutive health samples not live/ready (or unreadable) for ``server_unhealthy``,
    and not model-ready for ``model_not_ready``."""
    healthy_samples: int = Field(3, ge=1)
    """Consecutive good samples that clear them."""
    gpu_back_samples: int = Field(3, ge=1)
    """Consecutive NVML samples of a lost GPU that clear ``gpu_lost``."""
    xid_clear_after_s: Duration = Field(3600.0, gt=0)
    """``xid_hardware`` clears after this long without another hardware Xid."""

    @model_validator(mode="after")
    def _rates(self) -> ErrorSettings:
        if self.normal_error_rate >= self.max_error_rate:
            raise ValueError("normal_error_rate must be < max_error_rate")
        return self


class BacklogSettings(Section):
    """``backlog``: Triton's pending requests and the queue's share of request time."""

    enabled: bool = True
    """Run this detector."""
    window_s: Duration = Field(6.0, gt=0)
    """Span over which pending requests (median) and queue share (counter deltas) are taken."""
    min_samples: int = Field(3, ge=1)
    """Health samples the window needs."""
    max_pending: float = Field(16.0, gt=0)
    """Median pending requests at or above this is a backlog."""
    max_queue_share: float = Field(0.5, gt=0, le=1)
    """Queue time / request time over the window at or above this is a backlog ..."""
    min_pending_for_share: float = Field(1.0, ge=0)
    """... when at least this many requests are pending (median)."""
    min_duration_s: Duration = Field(60.0, ge=0)
    """The backlog must hold this long before a finding."""
    clear_duration_s: Duration = Field(60.0, ge=0)
    """Both measures must stay under half their threshold this long to clear."""


class IntegritySettings(Section):
    """``model_integrity``: the served model's files against its known-good manifest."""

    enabled: bool = True
    """Run this detector (it sees samples only when ``model_files.repository`` is set)."""
    unreachable_after_s: Duration = Field(30.0, ge=0)
    """The repository must stay unreadable this long before a finding (a remount blips)."""
    unverified_after_s: Duration = Field(600.0, ge=0)
    """A served version with no known-good manifest this long is reported (its canaries
    never proved it)."""
    clear_samples: int = Field(2, ge=1)
    """Scans in a row that must find the files good again before a finding clears."""
    engine_suffixes: list[str] = Field(default_factory=lambda: [".plan", ".engine", ".trt"])
    """Files that are GPU-specific (a TensorRT engine runs only on the GPU class it was
    built for): a version holding one, proven on another GPU, is reported."""


class GenerationSettings(Section):
    """``ttft_spike``, ``stream_stalled`` and ``generation_drift`` from streaming canaries."""

    enabled: bool = True
    """Run this detector (it reads only streaming canaries)."""
    ttft_quantile: float = Field(0.5, gt=0, lt=1)
    """Quantile of time to first token over the short window (0.5: a few canaries suffice)."""
    ttft_window_s: Duration = Field(60.0, gt=0)
    """Span of the short TTFT window."""
    ttft_min_samples: int = Field(3, ge=1)
    """Streams the short window needs before it is judged."""
    ttft_baseline_window_s: Duration = Field(3600.0, gt=0)
    """Span of the TTFT baseline (median and IQR); it learns only while nothing is pending
    or open, and not from rechecks."""
    ttft_baseline_min_samples: int = Field(10, ge=3)
    """Baseline streams needed before the relative rule applies."""
    ttft_ratio: float = Field(3.0, gt=1)
    """Relative rule: the TTFT quantile must exceed baseline median x ratio ..."""
    ttft_k_sigma: float = Field(5.0, ge=0)
    """... and baseline median + k_sigma x robust sigma ..."""
    ttft_min_increase_s: Duration = Field(0.05, ge=0)
    """... and baseline median + this many seconds."""
    ttft_slo_s: Duration | None = Field(None, gt=0)
    """Absolute TTFT SLO on the quantile; a breach is critical. None: relative rule only."""
    ttft_min_duration_s: Duration = Field(10.0, ge=0)
    """A TTFT breach must hold this long before a finding."""
    ttft_clear_duration_s: Duration = Field(30.0, ge=0)
    """TTFT must stay under half way back to the baseline this long to clear."""
    stall_min_streams: int = Field(2, ge=1)
    """Stalled or timed-out streams in a row before ``stream_stalled`` (one could be a blip)."""
    stall_clear_streams: int = Field(2, ge=1)
    """Completed streams in a row that clear it."""
    drift_window_s: Duration = Field(60.0, gt=0)
    """Span over which the generated text's agreement with the golden text is averaged."""
    drift_min_samples: int = Field(3, ge=1)
    """Completed streams the drift window needs before it is judged."""
    max_edit_distance: float = Field(0.15, ge=0, le=1)
    """Mean normalised edit distance to the golden text above this is drift ..."""
    min_exact_share: float | None = Field(None, ge=0, le=1)
    """... and so is a share of exact matches below this (for deterministic deployments,
    where greedy decoding must reproduce the golden text); None: edit distance only."""
    critical_edit_distance: float = Field(0.5, ge=0, le=1)
    """A mean edit distance at or above this is critical (garbage, or a plan that no longer
    says what it used to); below it, drift is a warning."""
    drift_clear_duration_s: Duration = Field(30.0, ge=0)
    """The window must stay under half the drift bar this long to clear."""


class GenericSettings(Section):
    """``metric_anomaly``: the generic detector for any numeric series (see docs/detectors.md).

    Windows are counted in samples, so they follow whatever interval the series has;
    seasonal periods are in seconds and turned into slots at the observed interval.
    Defaults were fixed on the tuning half of the KPI corpus (``bench/kpi.py``), one
    configuration for all series.
    """

    enabled: bool = True
    """Run this detector."""
    level_samples: int = Field(20, ge=1)
    """The expected value is the median of this many previous samples."""
    spread_samples: int = Field(1440, ge=8)
    """Spread (IQR / 1.349) of the deviations from the expected value over this many samples."""
    spread_tail: float | None = Field(0.99, gt=0.75, lt=1)
    """The spread is also at least the central range between this quantile and its mirror,
    over that range's width on a normal curve: a sparse or spiky series is then judged by
    its usual excursions, not by its quiet half. None: IQR only."""
    min_samples: int = Field(60, ge=4)
    """Samples seen before anything is scored (the spread needs a history)."""
    threshold: float = Field(3.1, gt=0)
    """Anomaly score (in robust sigmas: the larger of the level score and the weighted
    one-period-earlier score) at which a sample breaches."""
    seasonal_periods_s: list[Duration] = Field(default_factory=lambda: [86400.0, 604800.0])
    """Seasons tried (daily, weekly). Once the history holds a period, a deviation that the
    same time one period earlier also had does not count (the score is the smallest of the
    plain and the seasonal ones). Empty: no seasonality."""
    season_weight: float = Field(1.0, ge=0)
    """Weight of the value-against-one-period-earlier score (robust sigmas of those
    differences, the smallest over the seasons) in the anomaly score, which is the larger
    of the level score and this weight times it: a sustained anomaly (an outage, a moved
    level) keeps breaching after the level window has accepted it. 0: not used."""
    season_stride: int = Field(7, ge=1)
    """The spread of those differences is learnt from every this-many-th one, so its
    window (spread_samples long) covers this many times more history at the same cost."""
    max_season_slots: int = Field(20160, ge=0)
    """A season longer than this many samples is skipped (memory: 24 bytes per slot)."""
    variance_ratio: float = Field(2.0, gt=1)
    """Variance change: evidence (CUSUM) that the spread grew this many times ..."""
    variance_log_odds: float | None = Field(None, gt=0)
    """... alarms at this log-likelihood ratio (None: no variance rule)."""
    flat_samples: int | None = Field(None, ge=2)
    """Flat line: this many identical values in a row on a series that is normally never
    flat for that long breaches (None: no flat-line rule)."""
    min_breach_samples: int = Field(1, ge=1)
    """Breaching samples in a row before a finding."""
    clear_fraction: float = Field(0.5, ge=0, le=1)
    """Hysteresis: a finding clears when the score is under clear_fraction x threshold ..."""
    clear_samples: int = Field(5, ge=1)
    """... for this many samples in a row."""


class TrafficSettings(Section):
    """``traffic_latency_spike``, ``queue_buildup``, ``throughput_collapse`` and
    ``error_rate_rise``: the traffic users send, from Triton's per-model counters.

    Every measure is per model, from counter deltas over ``window_s`` (and the request-time
    quantile of Triton's latency summary when the server exports it: start tritonserver
    with ``--metrics-config summary_latencies=true``). Judged only while the window holds
    ``min_requests`` requests; each measure against its own baseline, learned only while
    no finding of it is pending or open.
    """

    enabled: bool = True
    """Run this detector (it reads only Triton health samples with counters)."""
    window_s: Duration = Field(10.0, gt=0)
    """Span of the counter deltas: request rate, failure ratio, mean request and queue time."""
    min_requests: float = Field(20.0, ge=1)
    """Requests the window needs before latency, queue and failures are judged."""
    quantile: float | None = Field(0.99, gt=0, lt=1)
    """Quantile of Triton's request-time summary judged beside the mean (0.99 = p99); the
    mean request time alone when the server exports no summary. None: the mean only."""
    baseline_window_s: Duration = Field(3600.0, gt=0)
    """Span of each measure's baseline (median and IQR)."""
    baseline_min_samples: int = Field(30, ge=3)
    """Judged samples a baseline needs before its relative rule applies."""
    latency_ratio: float = Field(2.0, gt=1)
    """``traffic_latency_spike``: the quantile (or mean) request time exceeds baseline median
    x this ...
    """
    k_sigma: float = Field(5.0, ge=0)
    """... and baseline median + k_sigma x robust sigma (also for the queue and failures) ..."""
    latency_min_increase_s: Duration = Field(0.005, ge=0)
    """... and baseline median + this many seconds."""
    latency_slo_s: Duration | None = Field(None, gt=0)
    """Absolute SLO on the quantile (or the mean when there is no summary), seconds; a
    breach is critical even while the baseline is still learning. None: relative only."""
    queue_ratio: float = Field(3.0, gt=1)
    """``queue_buildup``: mean queue time per request exceeds baseline median x this ..."""
    queue_min_increase_s: Duration = Field(0.005, ge=0)
    """... and baseline median + this many seconds (plus k_sigma)."""
    failure_min_increase: float = Field(0.02, gt=0, le=1)
    """``error_rate_rise``: the failure ratio exceeds its baseline median + this (and
    k_sigma); ``error_burst`` keeps the absolute bar (``errors.max_failure_ratio``)."""
    rate_step_s: Duration = Field(30.0, gt=0)
    """``throughput_collapse``: the request rate is taken over steps of this length and
    each step scored against the rate's own (daily and weekly) history, by the generic
    detector's scorer (``generic.py``) ..."""
    collapse_min_drop: float = Field(0.5, gt=0, le=1)
    """... a step breaches when its rate is this share (or more) below the expected rate ..."""
    collapse_threshold: float = Field(4.0, gt=0)
    """... and its anomaly score (robust sigmas) is at least this ..."""
    collapse_level_samples: int = Field(20, ge=1)
    """... the expected rate being the median of this many earlier steps ..."""
    collapse_min_samples: int = Field(20, ge=4)
    """... once this many steps are seen, with at least ``min_requests`` in the expected
    step (no traffic before, no collapse)."""
    seasonal_periods_s: list[Duration] = Field(default_factory=lambda: [86400.0, 604800.0])
    """Seasons of the request rate (daily, weekly): a drop the rate also had one period
    earlier (the night) is not a collapse. Empty: none."""
    min_duration_s: Duration = Field(10.0, ge=0)
    """A breach must hold this long before a finding."""
    min_samples: int = Field(3, ge=1)
    """... and this many judged samples (steps for ``throughput_collapse``)."""
    clear_fraction: float = Field(0.5, ge=0, le=1)
    """Hysteresis: a measure clears below baseline + clear_fraction x (threshold - baseline)."""
    clear_duration_s: Duration = Field(60.0, ge=0)
    """... held this long."""

    @model_validator(mode="after")
    def _windows(self) -> TrafficSettings:
        if self.baseline_window_s < self.window_s:
            raise ValueError("baseline_window_s must be >= window_s")
        return self


class DetectorSettings(Section):
    """Thresholds of every detector; each has a documented default."""

    latency: LatencySettings = LatencySettings()
    memory: MemorySettings = MemorySettings()
    thermal: ThermalSettings = ThermalSettings()
    accuracy: AccuracySettings = AccuracySettings()
    errors: ErrorSettings = ErrorSettings()
    backlog: BacklogSettings = BacklogSettings()
    model_integrity: IntegritySettings = IntegritySettings()
    generation: GenerationSettings = GenerationSettings()
    generic: GenericSettings = GenericSettings()
    traffic: TrafficSettings = TrafficSettings()
