"""Plot the reconstructed zenith angle of a production's triggered events, weighted to rates.

Usage::

    km3sim run productions/quickstart.yaml
    python examples/plot_reco_zenith.py productions/quickstart.yaml zenith.png

``km3sim.open`` reads every table of the production (all runs and chunks); ``weights=True``
adds the rate [1/s] each event stands for, so the histogram is in events per second.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import km3sim  # noqa: E402
from km3sim.validate.samples import fit_rank  # noqa: E402


def main(production: str, out: str) -> None:
    prod = km3sim.open(production)
    print(prod)
    events = prod.table("events", weights=True, library="pandas")
    reco = prod.table("reco_tracks", weights=True, library="pandas")
    # the best converged fit of each event: the row furthest along its reconstruction chain
    fit = reco[reco.status == 0].assign(rank=lambda r: fit_rank(r.rec_type, r.rec_stage))
    fit = fit.sort_values(["event_id", "rank"], ascending=[True, False], kind="stable").drop_duplicates("event_id")
    # the true direction of each fitted event, from the generator's events table
    fit = fit.merge(events[["event_id", "dir_z"]], on="event_id", suffixes=("", "_true"))
    print(f"livetime {prod.livetime_s:.1f} s; generated {len(events)} events ({events.weight.sum():.2f} Hz); "
          f"track fits {len(fit)} ({fit.weight.sum():.3f} Hz)")

    cos_reco, cos_true = -fit.dir_z, -fit.dir_z_true  # cos(zenith) = -dir_z, 1 = down-going
    bins = np.linspace(0.0, 1.0, 21)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    a.hist(cos_reco, bins=bins, weights=fit.weight, histtype="step", label="reconstructed")
    a.hist(cos_true, bins=bins, weights=fit.weight, histtype="step", label="true")
    a.set_xlabel("cos(zenith)  (1 = down-going)")
    a.set_ylabel("rate per bin [Hz]")
    a.legend()
    b.scatter(cos_true, cos_reco, s=8)
    b.plot([0, 1], [0, 1], "k:", lw=1)
    b.set_xlabel("true cos(zenith)")
    b.set_ylabel("reconstructed cos(zenith)")
    fig.suptitle(f"{prod.path.name}: best track fit per event")
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
