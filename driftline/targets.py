"""The learning target: the log return over the next `horizon` bars."""

from __future__ import annotations

import numpy as np
import pandas as pd


def forward_log_return(close: pd.Series, horizon: int = 1) -> pd.Series:
    """log(close[t + horizon] / close[t]) at each t; NaN for the last `horizon` bars."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 bar, got {horizon}")
    future = close.shift(-horizon)
    return pd.Series(np.log(future / close), index=close.index, name=f"fwd_logret_{horizon}")
