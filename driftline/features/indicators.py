"""Indicators over one window of bars, each returning a scale-free series (TA-Lib underneath).

Every function takes the window's OHLCV arrays and its parameters and returns an array aligned
with the window; the feature value is its last element. Ratios replace raw price levels so that
features keep their meaning as the market's level moves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import talib

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Window:
    """OHLCV arrays of one window of bars, oldest first, float64 and C-contiguous."""

    open: Array
    high: Array
    low: Array
    close: Array
    volume: Array


Indicator = Callable[..., Array]


def _ratio(numerator: Array, denominator: Array) -> Array:
    # Zero denominators (no volume on a bar, say) give 0 rather than inf: "no signal".
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    out[np.isnan(numerator) | np.isnan(denominator)] = np.nan
    return out


def _log_return(close: Array, period: int) -> Array:
    out = np.full_like(close, np.nan)
    out[period:] = np.log(close[period:] / close[:-period])
    return out


def log_return(w: Window, period: int) -> Array:
    """Log return over `period` bars."""
    return _log_return(w.close, period)


def lagged_return(w: Window, lag: int) -> Array:
    """One-bar log return `lag` bars ago."""
    returns = _log_return(w.close, 1)
    out = np.full_like(returns, np.nan)
    out[lag:] = returns[:-lag]
    return out


def close_to_sma(w: Window, period: int) -> Array:
    """Close relative to its simple moving average, minus one."""
    return _ratio(w.close, talib.SMA(w.close, timeperiod=period)) - 1.0


def sma_cross(w: Window, fast: int, slow: int) -> Array:
    """Fast SMA relative to slow SMA, minus one (golden/death cross distance)."""
    return _ratio(talib.SMA(w.close, timeperiod=fast), talib.SMA(w.close, timeperiod=slow)) - 1.0


def macd_line(w: Window, fast: int, slow: int, signal: int) -> Array:
    """MACD line divided by close."""
    line, _, _ = talib.MACD(w.close, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return _ratio(line, w.close)


def macd_hist(w: Window, fast: int, slow: int, signal: int) -> Array:
    """MACD histogram divided by close."""
    _, _, hist = talib.MACD(w.close, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return _ratio(hist, w.close)


def adx(w: Window, period: int) -> Array:
    """Average directional index, 0 to 1."""
    return talib.ADX(w.high, w.low, w.close, timeperiod=period) / 100.0


def di_spread(w: Window, period: int) -> Array:
    """+DI minus -DI, -1 to 1."""
    plus = talib.PLUS_DI(w.high, w.low, w.close, timeperiod=period)
    minus = talib.MINUS_DI(w.high, w.low, w.close, timeperiod=period)
    return (plus - minus) / 100.0


def aroon_oscillator(w: Window, period: int) -> Array:
    """Aroon oscillator, -1 to 1."""
    return talib.AROONOSC(w.high, w.low, timeperiod=period) / 100.0


def regression_slope(w: Window, period: int) -> Array:
    """Slope of the least-squares line through closes, per bar, relative to close."""
    return _ratio(talib.LINEARREG_SLOPE(w.close, timeperiod=period), w.close)


def rsi(w: Window, period: int) -> Array:
    """Relative strength index, 0 to 1."""
    return talib.RSI(w.close, timeperiod=period) / 100.0


def stochastic_k(w: Window, k: int, slow_k: int, slow_d: int) -> Array:
    """Slow stochastic %K, 0 to 1."""
    out_k, _ = talib.STOCH(
        w.high, w.low, w.close, fastk_period=k, slowk_period=slow_k, slowd_period=slow_d
    )
    return out_k / 100.0


def stochastic_d(w: Window, k: int, slow_k: int, slow_d: int) -> Array:
    """Slow stochastic %D, 0 to 1."""
    _, out_d = talib.STOCH(
        w.high, w.low, w.close, fastk_period=k, slowk_period=slow_k, slowd_period=slow_d
    )
    return out_d / 100.0


def williams_r(w: Window, period: int) -> Array:
    """Williams %R, -1 to 0."""
    return talib.WILLR(w.high, w.low, w.close, timeperiod=period) / 100.0


def cci(w: Window, period: int) -> Array:
    """Commodity channel index, scaled by 1/100."""
    return talib.CCI(w.high, w.low, w.close, timeperiod=period) / 100.0


def mfi(w: Window, period: int) -> Array:
    """Money flow index, 0 to 1."""
    return talib.MFI(w.high, w.low, w.close, w.volume, timeperiod=period) / 100.0


def ultimate_oscillator(w: Window, short: int, medium: int, long: int) -> Array:
    """Ultimate oscillator, 0 to 1."""
    return (
        talib.ULTOSC(
            w.high, w.low, w.close, timeperiod1=short, timeperiod2=medium, timeperiod3=long
        )
        / 100.0
    )


def cmo(w: Window, period: int) -> Array:
    """Chande momentum oscillator, -1 to 1."""
    return talib.CMO(w.close, timeperiod=period) / 100.0


def natr(w: Window, period: int) -> Array:
    """Average true range relative to close."""
    return talib.NATR(w.high, w.low, w.close, timeperiod=period) / 100.0


def realised_volatility(w: Window, period: int) -> Array:
    """Standard deviation of one-bar log returns over `period` bars."""
    return talib.STDDEV(_log_return(w.close, 1), timeperiod=period, nbdev=1.0)


def volatility_ratio(w: Window, fast: int, slow: int) -> Array:
    """Short-horizon over long-horizon realised volatility (volatility regime change)."""
    returns = _log_return(w.close, 1)
    return _ratio(
        talib.STDDEV(returns, timeperiod=fast, nbdev=1.0),
        talib.STDDEV(returns, timeperiod=slow, nbdev=1.0),
    )


def parkinson_volatility(w: Window, period: int) -> Array:
    """Parkinson's high-low range volatility estimator over `period` bars."""
    squared = np.log(w.high / w.low) ** 2
    variance: Array = talib.SMA(squared, timeperiod=period) / (4.0 * np.log(2.0))
    return np.sqrt(variance)


def bollinger_percent_b(w: Window, period: int, width: float) -> Array:
    """Where close sits between the Bollinger bands: 0 at the lower, 1 at the upper."""
    upper, _, lower = talib.BBANDS(w.close, timeperiod=period, nbdevup=width, nbdevdn=width)
    return _ratio(w.close - lower, upper - lower)


def bollinger_width(w: Window, period: int, width: float) -> Array:
    """Bollinger band width relative to the middle band."""
    upper, middle, lower = talib.BBANDS(w.close, timeperiod=period, nbdevup=width, nbdevdn=width)
    return _ratio(upper - lower, middle)


def bar_range(w: Window) -> Array:
    """High-low range relative to close."""
    return _ratio(w.high - w.low, w.close)


def volume_ratio(w: Window, period: int) -> Array:
    """Volume relative to its moving average, minus one."""
    return _ratio(w.volume, talib.SMA(w.volume, timeperiod=period)) - 1.0


def volume_change(w: Window) -> Array:
    """Log change in volume from the previous bar (0 where either bar has no volume)."""
    out = np.full_like(w.volume, np.nan)
    previous, current = w.volume[:-1], w.volume[1:]
    valid = (previous > 0) & (current > 0)
    out[1:] = np.where(
        valid, np.log(np.where(valid, current, 1.0) / np.where(valid, previous, 1.0)), 0.0
    )
    return out


def obv_slope(w: Window, period: int) -> Array:
    """Change in on-balance volume over `period` bars relative to volume traded in them."""
    obv = talib.OBV(w.close, w.volume)
    change = np.full_like(obv, np.nan)
    change[period:] = obv[period:] - obv[:-period]
    return _ratio(change, talib.SUM(w.volume, timeperiod=period))


def chaikin_oscillator(w: Window, fast: int, slow: int) -> Array:
    """Chaikin A/D oscillator relative to average volume over the slow period."""
    osc = talib.ADOSC(w.high, w.low, w.close, w.volume, fastperiod=fast, slowperiod=slow)
    return _ratio(osc, talib.SMA(w.volume, timeperiod=slow))


def chaikin_money_flow(w: Window, period: int) -> Array:
    """Chaikin money flow: volume-weighted close location over `period` bars, -1 to 1."""
    location = _ratio((w.close - w.low) - (w.high - w.close), w.high - w.low)
    return _ratio(
        talib.SUM(location * w.volume, timeperiod=period), talib.SUM(w.volume, timeperiod=period)
    )


def candle_body(w: Window) -> Array:
    """Close relative to open, minus one."""
    return w.close / w.open - 1.0


def upper_shadow(w: Window) -> Array:
    """Upper wick relative to close."""
    wick: Array = w.high - np.maximum(w.open, w.close)
    return wick / w.close


def lower_shadow(w: Window) -> Array:
    """Lower wick relative to close."""
    return (np.minimum(w.open, w.close) - w.low) / w.close


def overnight_gap(w: Window) -> Array:
    """Log of open over the previous close."""
    out = np.full_like(w.close, np.nan)
    out[1:] = np.log(w.open[1:] / w.close[:-1])
    return out


INDICATORS: dict[str, Indicator] = {
    fn.__name__: fn
    for fn in (
        log_return,
        lagged_return,
        close_to_sma,
        sma_cross,
        macd_line,
        macd_hist,
        adx,
        di_spread,
        aroon_oscillator,
        regression_slope,
        rsi,
        stochastic_k,
        stochastic_d,
        williams_r,
        cci,
        mfi,
        ultimate_oscillator,
        cmo,
        natr,
        realised_volatility,
        volatility_ratio,
        parkinson_volatility,
        bollinger_percent_b,
        bollinger_width,
        bar_range,
        volume_ratio,
        volume_change,
        obv_slope,
        chaikin_oscillator,
        chaikin_money_flow,
        candle_body,
        upper_shadow,
        lower_shadow,
        overnight_gap,
    )
}
