"""The declarative feature specification that travels with every model version, and its hash."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.features.indicators import INDICATORS

# Bump when an indicator's implementation changes meaning: the hash then changes with it, and
# serving refuses versions whose features it would compute differently.
IMPLEMENTATION_VERSION = 1

Param = int | float


class UnsupportedFeatureSpecError(ValueError):
    """A spec names an indicator or parameter this code cannot compute."""


@dataclass(frozen=True, slots=True)
class Feature:
    """One named feature: an indicator and its parameters."""

    name: str
    indicator: str
    params: Mapping[str, Param] = field(default_factory=dict)
    group: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "name": self.name,
            "indicator": self.indicator,
            "params": dict(self.params),
            "group": self.group,
        }


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Ordered features plus the number of bars one feature vector is computed from."""

    features: tuple[Feature, ...]
    window: int
    implementation: int = IMPLEMENTATION_VERSION

    @property
    def names(self) -> list[str]:
        """Feature names in column order."""
        return [f.name for f in self.features]

    @property
    def hash(self) -> str:
        """A stable SHA-256 of the canonical JSON form (order, parameters, window, version)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description that `from_dict` reads back."""
        return {
            "implementation": self.implementation,
            "window": self.window,
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Read a spec written by `to_dict`, refusing what this code cannot compute."""
        spec = cls(
            features=tuple(
                Feature(
                    name=str(f["name"]),
                    indicator=str(f["indicator"]),
                    params=dict(f.get("params", {})),
                    group=str(f.get("group", "")),
                )
                for f in data["features"]
            ),
            window=int(data["window"]),
            implementation=int(data.get("implementation", IMPLEMENTATION_VERSION)),
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise UnsupportedFeatureSpecError unless every feature can be computed here."""
        if self.implementation != IMPLEMENTATION_VERSION:
            raise UnsupportedFeatureSpecError(
                f"feature implementation {self.implementation} differs from this code's "
                f"{IMPLEMENTATION_VERSION}"
            )
        names = self.names
        if len(set(names)) != len(names):
            raise UnsupportedFeatureSpecError("duplicate feature names")
        for feature in self.features:
            function = INDICATORS.get(feature.indicator)
            if function is None:
                raise UnsupportedFeatureSpecError(
                    f"feature {feature.name!r}: unknown indicator {feature.indicator!r}"
                )
            accepted = set(inspect.signature(function).parameters) - {"w"}
            if set(feature.params) != accepted:
                raise UnsupportedFeatureSpecError(
                    f"feature {feature.name!r}: {feature.indicator} takes "
                    f"{sorted(accepted)}, got {sorted(feature.params)}"
                )


def _f(group: str, name: str, indicator: str, **params: Param) -> Feature:
    return Feature(name=name, indicator=indicator, params=params, group=group)


def default_spec() -> FeatureSpec:
    """45 scale-free features in six groups, computed from 260-bar windows."""
    macd = {"fast": 12, "slow": 26, "signal": 9}
    stoch = {"k": 14, "slow_k": 3, "slow_d": 3}
    features = (
        # returns and lags
        *(_f("returns", f"ret_{p}", "log_return", period=p) for p in (1, 5, 10, 20)),
        *(_f("returns", f"ret_lag_{lag}", "lagged_return", lag=lag) for lag in (1, 2, 3, 4)),
        # trend
        *(_f("trend", f"close_sma_{p}", "close_to_sma", period=p) for p in (10, 20, 50, 200)),
        _f("trend", "sma_50_200", "sma_cross", fast=50, slow=200),
        _f("trend", "macd_line", "macd_line", **macd),
        _f("trend", "macd_hist", "macd_hist", **macd),
        _f("trend", "adx_14", "adx", period=14),
        _f("trend", "di_spread_14", "di_spread", period=14),
        _f("trend", "aroonosc_25", "aroon_oscillator", period=25),
        _f("trend", "linreg_slope_20", "regression_slope", period=20),
        # momentum
        _f("momentum", "rsi_14", "rsi", period=14),
        _f("momentum", "rsi_5", "rsi", period=5),
        _f("momentum", "stoch_k", "stochastic_k", **stoch),
        _f("momentum", "stoch_d", "stochastic_d", **stoch),
        _f("momentum", "willr_14", "williams_r", period=14),
        _f("momentum", "cci_20", "cci", period=20),
        _f("momentum", "mfi_14", "mfi", period=14),
        _f("momentum", "ultosc", "ultimate_oscillator", short=7, medium=14, long=28),
        _f("momentum", "cmo_14", "cmo", period=14),
        # volatility
        _f("volatility", "natr_14", "natr", period=14),
        _f("volatility", "rvol_5", "realised_volatility", period=5),
        _f("volatility", "rvol_20", "realised_volatility", period=20),
        _f("volatility", "rvol_ratio_5_60", "volatility_ratio", fast=5, slow=60),
        _f("volatility", "parkinson_20", "parkinson_volatility", period=20),
        _f("volatility", "bb_pctb_20", "bollinger_percent_b", period=20, width=2.0),
        _f("volatility", "bb_width_20", "bollinger_width", period=20, width=2.0),
        _f("volatility", "range", "bar_range"),
        # volume
        _f("volume", "volume_ratio_20", "volume_ratio", period=20),
        _f("volume", "volume_change", "volume_change"),
        _f("volume", "obv_slope_10", "obv_slope", period=10),
        _f("volume", "adosc_3_10", "chaikin_oscillator", fast=3, slow=10),
        _f("volume", "cmf_20", "chaikin_money_flow", period=20),
        # candle
        _f("candle", "body", "candle_body"),
        _f("candle", "upper_shadow", "upper_shadow"),
        _f("candle", "lower_shadow", "lower_shadow"),
        _f("candle", "gap", "overnight_gap"),
    )
    spec = FeatureSpec(features=features, window=260)
    spec.validate()
    return spec
