"""Fuel model validation: our figures on the standard drive cycles against SUMO's emission models.

    python bench/fuel_validation.py                                  # every cycle, petrol_car
    python bench/fuel_validation.py --cycle ../shared/data/drive_cycles/wltc_class3b.csv
    python bench/fuel_validation.py --vehicle diesel_car
    python bench/fuel_validation.py --markdown                       # the table in docs/fuel.md
    python bench/fuel_validation.py --sensitivity                    # one parameter at a time

Each JSON line: cycle, vehicle, l_per_100km, co2_g_per_km, distance_km, kwh_per_100km (battery
energy for electric, fuel heating value for combustion), litres, duration_s and, where
``../shared/data/fuel_reference/sumo_emissions_driving_cycle.csv`` has the cycle, the reference
class, its l/100 km and our relative error (petrol: SUMO's default HBEFA4/PC_petrol_Euro-4;
diesel: HBEFA4/PC_diesel_Euro-6d; electric: none).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from sim.fuel import (  # noqa: E402
    ElectricParams,
    FuelParams,
    cycle_fuel,
    load_cycle,
    load_vehicle,
)

DATA = REPO.parent / "shared" / "data"
REFERENCE_CSV = "fuel_reference/sumo_emissions_driving_cycle.csv"
PETROL_REFERENCE = "HBEFA4/PC_petrol_Euro-4"  # SUMO's HBEFA4/default gives the same figures
DIESEL_REFERENCE = "HBEFA4/PC_diesel_Euro-6d"


def cycle_key(name: str) -> str:
    """One spelling for a cycle's name: ``wltc_class3b`` (file) and ``wltc3b`` (reference)."""
    return name.lower().replace("class", "").replace("_", "").replace("-", "")


def load_reference(path: Path) -> dict[str, dict[str, float]]:
    """``{cycle_key: {emission_class: l/100 km}}`` from the SUMO reference CSV."""
    out: dict[str, dict[str, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(cycle_key(row["cycle"]), {})[row["emission_class"]] = float(
                row["l_per_100km"]
            )
    return out


def reference_class(p: FuelParams | ElectricParams) -> str | None:
    """The reference emission class our vehicle is compared with, if any."""
    if isinstance(p, ElectricParams):
        return None
    return DIESEL_REFERENCE if p.fuel == "diesel" else PETROL_REFERENCE


def evaluate(
    cycle: Path, vehicle: str, refs: dict[str, dict[str, float]]
) -> dict[str, str | float | None]:
    """One result line for ``cycle`` driven by preset (or YAML path) ``vehicle``."""
    p = load_vehicle(vehicle)
    t, v = load_cycle(cycle)
    r = cycle_fuel(t, v, p)
    line: dict[str, str | float | None] = {"cycle": cycle.stem, "vehicle": p.name}
    for k in ("l_per_100km", "co2_g_per_km", "distance_km", "kwh_per_100km", "litres"):
        line[k] = round(float(r[k]), 4)
    line["duration_s"] = float(r["duration_s"])
    cls = reference_class(p)
    ref = refs.get(cycle_key(cycle.stem), {}).get(cls) if cls else None
    if ref is not None:
        line["reference_class"] = cls
        line["reference_l_per_100km"] = ref
        line["rel_error"] = round(float(r["l_per_100km"]) / ref - 1.0, 4)
    return line


def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def markdown(cycles: list[Path], refs: dict[str, dict[str, float]]) -> str:
    """The comparison tables of docs/fuel.md."""
    classes = sorted({c for r in refs.values() for c in r})
    petrol_refs = [c for c in classes if c != PETROL_REFERENCE and "diesel" not in c.lower()
                   and not c.endswith("_D_MW")]  # fmt: skip
    diesel_refs = [c for c in classes if c not in petrol_refs and c != PETROL_REFERENCE]
    rows = {c.stem: {n: evaluate(c, n, refs) for n in ("petrol_car", "diesel_car", "electric_car")}
            for c in cycles}  # fmt: skip

    def ref(cycle: str, cls: str) -> float | None:
        return refs.get(cycle_key(cycle), {}).get(cls)

    head = ["cycle", "ours petrol_car", f"SUMO {PETROL_REFERENCE} (default)", "rel. error",
            *petrol_refs]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cyc, r in rows.items():
        p = r["petrol_car"]
        err = p.get("rel_error")
        cells = [cyc, _fmt(float(p["l_per_100km"] or 0)), _fmt(ref(cyc, PETROL_REFERENCE)),
                 "–" if err is None else f"{float(err):+.1%}",
                 *(_fmt(ref(cyc, c)) for c in petrol_refs)]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    head = ["cycle", "ours diesel_car", *diesel_refs, "rel. error (HBEFA4 diesel)",
            "ours electric_car kWh/100 km"]  # fmt: skip
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cyc, r in rows.items():
        d, e = r["diesel_car"], r["electric_car"]
        err = d.get("rel_error")
        cells = [cyc, _fmt(float(d["l_per_100km"] or 0)), *(_fmt(ref(cyc, c)) for c in diesel_refs),
                 "–" if err is None else f"{float(err):+.1%}",
                 _fmt(float(e["kwh_per_100km"] or 0))]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


# One parameter at a time, across the range the literature gives for such a car (not a fit).
SENSITIVITY: tuple[tuple[str, dict[str, object]], ...] = (
    ("indicated efficiency 0.35", {"indicated_efficiency": 0.35}),
    ("indicated efficiency 0.41", {"indicated_efficiency": 0.41}),
    ("friction mep x 0.8", {"friction_mep_bar": (0.776, 0.12, 0.04)}),
    ("friction mep x 1.2", {"friction_mep_bar": (1.164, 0.18, 0.06)}),
    ("pumping mep 0.5 bar", {"pumping_mep_bar": 0.5}),
    ("pumping mep 0.9 bar", {"pumping_mep_bar": 0.9}),
    ("auxiliaries 300 W", {"aux_power": 300.0}),
    ("auxiliaries 1000 W", {"aux_power": 1000.0}),
    ("mass 1450 kg", {"mass": 1450.0}),
    ("mass 1750 kg", {"mass": 1750.0}),
    ("rolling coef 0.009", {"rolling_coef": 0.009}),
    ("rolling coef 0.015", {"rolling_coef": 0.015}),
    ("drivetrain efficiency 0.88", {"drivetrain_efficiency": 0.88}),
    ("drivetrain efficiency 0.95", {"drivetrain_efficiency": 0.95}),
    ("no fuel cut-off (idle instead)", {"fuel_cutoff_min_speed": 1e9}),
    ("stop-start", {"start_stop": True}),
)


def sensitivity(cycles: list[Path], vehicle: str) -> str:
    """A markdown table: l/100 km on each cycle as one parameter moves across its range."""
    base = load_vehicle(vehicle)
    if not isinstance(base, FuelParams):
        raise SystemExit("--sensitivity needs a combustion vehicle")
    traces = [(c.stem, *load_cycle(c)) for c in cycles]

    def run(p: FuelParams) -> list[float]:
        return [float(cycle_fuel(t, v, p)["l_per_100km"]) for _, t, v in traces]

    ref = run(base)
    head = ["variation", *(name for name, _, _ in traces)]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out.append("| " + " | ".join([f"{base.name} (defaults)", *(f"{x:.2f}" for x in ref)]) + " |")
    for label, change in SENSITIVITY:
        got = run(replace(base, **change))  # type: ignore[arg-type]
        cells = [f"{x:.2f} ({x / r - 1:+.1%})" for x, r in zip(got, ref, strict=True)]
        out.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycle", type=Path, help="a drive-cycle CSV (time_s, speed_mps)")
    ap.add_argument("--vehicle", default="petrol_car", help="configs/vehicle preset or YAML path")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    ap.add_argument("--markdown", action="store_true", help="print the docs/fuel.md tables")
    ap.add_argument("--sensitivity", action="store_true", help="one-at-a-time parameter table")
    args = ap.parse_args(argv)
    ref_path = args.data / REFERENCE_CSV
    refs = load_reference(ref_path) if ref_path.is_file() else {}
    if args.cycle is not None:
        cycles = [args.cycle]
    else:
        cycles = sorted((args.data / "drive_cycles").glob("*.csv"))
        if not cycles:
            sys.exit(f"no drive cycles in {args.data / 'drive_cycles'}; pass --cycle PATH")
    if args.markdown:
        print(markdown(cycles, refs))
        return
    if args.sensitivity:
        print(sensitivity(cycles, args.vehicle))
        return
    for c in cycles:
        print(json.dumps(evaluate(c, args.vehicle, refs)))


if __name__ == "__main__":
    main()
