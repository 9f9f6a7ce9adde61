"""Fit time and prediction latency of one scikit-survival model on a whole cohort, the peer
of `prognostics train` and `model_latency` in scripts/bench-survival. Run under
/usr/bin/time for its peak memory.

Usage: survival_fit_python.py COHORT.arff TIME_COL EVENT_COL coxph|rsf SEED RUNS
Prints {"fit_s": …, "batch1_ms": …, "batch256_ms": …} (latencies: medians over RUNS).
"""

import json
import sys
import time

import numpy as np
import pandas as pd
from sksurv.ensemble import RandomSurvivalForest
from sksurv.io import loadarff
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv


def main():
    cohort, time_col, event_col, kind, seed, runs = sys.argv[1:7]
    frame = loadarff(cohort)
    event = frame.pop(event_col).astype(str).isin(["1", "1.0", "yes", "true"]).to_numpy()
    t = frame.pop(time_col).astype(float).to_numpy()
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    x = pd.get_dummies(frame, columns=categorical, drop_first=True, dtype=float)
    x = ((x.fillna(x.mean()) - x.mean()) / x.std().replace(0, 1)).to_numpy()
    y = Surv.from_arrays(event, t)
    model = (
        CoxPHSurvivalAnalysis()
        if kind == "coxph"
        else RandomSurvivalForest(n_estimators=500, min_samples_split=10, min_samples_leaf=15,
                                  n_jobs=-1, random_state=int(seed))
    )
    started = time.perf_counter()
    model.fit(x, y)
    fit_s = time.perf_counter() - started

    def median_ms(batch):
        model.predict(batch)
        samples = []
        for _ in range(int(runs)):
            began = time.perf_counter()
            model.predict(batch)
            samples.append((time.perf_counter() - began) * 1e3)
        return float(np.median(samples))

    print(json.dumps({"fit_s": fit_s, "batch1_ms": median_ms(x[:1]), "batch256_ms": median_ms(x[:256])}))


if __name__ == "__main__":
    main()
