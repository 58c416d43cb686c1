"""Feature and prediction drift on synthetic autocorrelated data with known truth."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from driftline.contracts import Severity
from driftline.drift import ks
from driftline.drift.calibration import NullModel, calibrate
from driftline.drift.detectors import FeatureDrift, PredictionDrift
from driftline.drift.errors import DriftInputError
from driftline.drift.severity import grade
from driftline.drift.window import Baseline, Window

from .conftest import NAMES, REFERENCE_ROWS, WINDOW

STATIONARY_WINDOWS = 120
SHIFTED = "f10"
STEP = 25  # rows between monitor runs
DETECT_WITHIN = 8  # windows after the shift (8 x 25 = 200 rows)


@pytest.fixture(scope="module")
def baseline(reference: pd.DataFrame, null: NullModel) -> Baseline:
    return Baseline(reference=reference, null=null)


def _window(rows: npt.NDArray[np.float64]) -> Window:
    return Window(features=pd.DataFrame(rows, columns=NAMES))


@pytest.mark.slow
def test_false_alarm_rate_on_stationary_windows_is_at_most_5_percent(
    series: npt.NDArray[np.float64], baseline: Baseline
) -> None:
    detector = FeatureDrift(prefer_alibi=False)
    rng = np.random.default_rng(11)
    severities = []
    # Half continue the same stationary process; half are block re-samples of the reference.
    for i in range(STATIONARY_WINDOWS // 2):
        start = REFERENCE_ROWS + i * WINDOW
        severities.append(
            grade([detector.detect(_window(series[start : start + WINDOW]), baseline)])[0]
        )
        starts = rng.integers(0, REFERENCE_ROWS - 50, size=WINDOW // 50)
        blocks = np.concatenate([series[s : s + 50] for s in starts])
        severities.append(grade([detector.detect(_window(blocks), baseline)])[0])
    any_drift = np.mean([s > Severity.NONE for s in severities])
    alerting = np.mean([s >= Severity.MEDIUM for s in severities])
    assert len(severities) >= 100
    assert any_drift <= 0.05, f"false alarms (any drift) in {any_drift:.1%} of windows"
    assert alerting <= 0.05


@pytest.mark.slow
def test_a_one_sigma_mean_shift_in_one_feature_is_detected_within_the_stated_windows(
    series: npt.NDArray[np.float64], baseline: Baseline
) -> None:
    detector = FeatureDrift(prefer_alibi=False)
    j = NAMES.index(SHIFTED)
    shifted = series.copy()
    at = REFERENCE_ROWS + 2 * WINDOW
    shifted[at:, j] += 1.0 * series[:REFERENCE_ROWS, j].std()
    before = detector.detect(_window(shifted[at - WINDOW : at]), baseline)
    assert SHIFTED not in _drifted(before)
    found = None
    for k in range(1, DETECT_WITHIN + 1):
        end = at + k * STEP
        result = detector.detect(_window(shifted[end - WINDOW : end]), baseline)
        if SHIFTED in _drifted(result):
            found = k
            break
    assert found is not None, f"shift not detected within {DETECT_WITHIN} windows"
    assert set(_drifted(result)) <= {SHIFTED}, "only the shifted feature may be flagged"


def test_a_large_shift_everywhere_is_critical(
    series: npt.NDArray[np.float64], baseline: Baseline
) -> None:
    rows = series[REFERENCE_ROWS : REFERENCE_ROWS + WINDOW] + 3.0
    result = FeatureDrift(prefer_alibi=False).detect(_window(rows), baseline)
    severity, recommendation, _ = grade([result])
    assert severity is Severity.CRITICAL
    assert recommendation.value == "retrain"
    assert result.summary["n_drifted"] == len(NAMES)


@pytest.fixture
def without_alibi(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """alibi-detect made unimportable, as on an installation without the BSL package."""
    real = ks.importlib.import_module

    def refuse(name: str, *args: object) -> object:
        if name.startswith("alibi_detect"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)  # type: ignore[arg-type]

    ks.alibi_ks_class.cache_clear()
    monkeypatch.setattr(ks.importlib, "import_module", refuse)
    yield
    ks.alibi_ks_class.cache_clear()


@pytest.mark.slow
def test_alibi_and_scipy_paths_agree(series: npt.NDArray[np.float64], baseline: Baseline) -> None:
    if ks.alibi_ks_class() is None:
        pytest.skip("alibi-detect (the optional `alibi` extra, BSL 1.1) is not installed")
    rows = series[REFERENCE_ROWS : REFERENCE_ROWS + WINDOW].copy()
    rows[:, 3] += 0.8
    with_alibi = FeatureDrift(prefer_alibi=True).detect(_window(rows), baseline)
    with_scipy = FeatureDrift(prefer_alibi=False).detect(_window(rows), baseline)
    assert with_alibi.summary["backend"] == "alibi-detect"
    assert with_scipy.summary["backend"] == "scipy"
    for a, b in zip(with_alibi.scores, with_scipy.scores, strict=True):
        assert (a.feature, a.method, a.drifted) == (b.feature, b.method, b.drifted)
        assert a.value == pytest.approx(b.value)
        if a.method == "ks_textbook":
            assert a.pvalue == pytest.approx(
                b.pvalue, rel=1e-6, abs=1e-12
            )  # alibi-detect works in float32
    assert "f03" in _drifted(with_alibi)


def test_without_alibi_detect_the_scipy_path_runs(
    without_alibi: None, series: npt.NDArray[np.float64], baseline: Baseline
) -> None:
    assert ks.alibi_ks_class() is None
    assert ks.backend_name(prefer_alibi=True).startswith("scipy")
    rows = series[REFERENCE_ROWS : REFERENCE_ROWS + WINDOW].copy()
    rows[:, 3] += 0.8
    result = FeatureDrift(prefer_alibi=True).detect(_window(rows), baseline)
    assert result.summary["backend"] == "scipy"
    assert "f03" in _drifted(result)


def test_prediction_drift_compares_outputs_with_the_reference() -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"a": rng.normal(size=600), "prediction": rng.normal(size=600)})
    null = calibrate(reference, 100)
    baseline = Baseline(reference=reference, null=null)
    features = pd.DataFrame({"a": rng.normal(size=100)})
    detector = PredictionDrift(prefer_alibi=False)
    calm = detector.detect(Window(features, predictions=rng.normal(size=100)), baseline)
    moved = detector.detect(Window(features, predictions=rng.normal(1.0, 1, size=100)), baseline)
    assert not calm.drifted
    assert moved.drifted
    assert grade([moved])[0] is Severity.MEDIUM
    assert detector.detect(Window(features), baseline).skipped == "no predictions to compare"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.rename(columns={"f00": "nope"}), "unknown feature"),
        (lambda f: f.drop(columns=["f00"]), "lacks feature"),
        (lambda f: f.iloc[:20], "at least 30"),
        (lambda f: f.iloc[:100], "calibrated for 250"),
        (lambda f: f.assign(f01=np.nan), "NaN or infinite"),
    ],
)
def test_bad_windows_are_refused_in_one_line(
    series: npt.NDArray[np.float64], baseline: Baseline, mutate: object, message: str
) -> None:
    frame = pd.DataFrame(series[REFERENCE_ROWS : REFERENCE_ROWS + WINDOW], columns=NAMES)
    with pytest.raises(DriftInputError, match=message) as caught:
        FeatureDrift(prefer_alibi=False).detect(Window(mutate(frame)), baseline)  # type: ignore[operator]
    assert "\n" not in str(caught.value)


def _drifted(result: object) -> list[str]:
    return [s.feature for s in result.scores if s.method == "ks" and s.drifted]  # type: ignore[attr-defined]
