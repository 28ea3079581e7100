"""Fuel and energy model: hand-computed road loads, engine states, EV regen, presets, batching,
and validation against SUMO's emission models on the standard drive cycles."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.dynamics import AIR_DENSITY, GRAVITY, VehicleParams
from sim.fuel import (
    CO2_G_PER_L,
    CO2_PER_LITRE,
    VEHICLE_DIR,
    ElectricParams,
    FuelParams,
    VehicleConfigError,
    cycle_fuel,
    energy_rate,
    engine_state,
    fuel_rate,
    idle_fuel_rate,
    load_cycle,
    load_vehicle,
    tractive_force,
    tractive_power,
    vehicle_from_dict,
)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
CYCLES = DATA / "drive_cycles"
REFERENCE = DATA / "fuel_reference" / "sumo_emissions_driving_cycle.csv"
P = FuelParams()
EV = ElectricParams()
PETROL_REFERENCE = "HBEFA4/PC_petrol_Euro-4"

needs_data = pytest.mark.skipif(
    not (CYCLES.is_dir() and REFERENCE.is_file()),
    reason=f"shared data absent: need {CYCLES} and {REFERENCE}",
)


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fuel_validation", REPO / "bench" / "fuel_validation.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- road load, hand-computed --------------------------------------------------------------------


def test_defaults_are_the_simulated_ego() -> None:
    ego = VehicleParams()
    assert (P.mass, P.rolling_coef, P.drag_area, P.rated_power) == (
        ego.mass,
        ego.rolling_coef,
        ego.drag_area,
        ego.max_power,
    )


def test_constant_speed_on_flat_road_is_rolling_plus_drag() -> None:
    # 1600 kg * 9.81 * 0.012 = 188.352 N; 0.5 * 1.2 * 0.62 * 20^2 = 148.8 N; times 20 m/s
    assert float(tractive_force(20.0, 0.0, 0.0, P)) == pytest.approx(188.352 + 148.8)
    assert float(tractive_power(20.0, 0.0, 0.0, P)) == pytest.approx((188.352 + 148.8) * 20.0)


def test_grade_term() -> None:
    v, g = 10.0, 0.05  # 5 % uphill: theta = atan(0.05)
    cos, sin = 1.0 / math.sqrt(1.0 + g * g), g / math.sqrt(1.0 + g * g)
    expected = (
        P.mass * GRAVITY * (P.rolling_coef * cos + sin) + 0.5 * AIR_DENSITY * 0.62 * v**2
    ) * v
    assert float(tractive_power(v, 0.0, g, P)) == pytest.approx(expected)
    # 1600 * 9.81 * sin(theta) (0.0499376) * 10 m/s = 7838.2 W of climbing, less 2.35 W of rolling
    # resistance (the normal force is m g cos(theta), 1600 * 9.81 * 0.012 * -0.001248 * 10)
    climb = float(tractive_power(v, 0.0, g, P) - tractive_power(v, 0.0, 0.0, P))
    assert climb == pytest.approx(7838.2 - 2.35, abs=0.05)
    assert float(tractive_power(v, 0.0, -g, P)) < 0.0  # downhill the road pushes


def test_inertia_term_with_rotating_mass_factor() -> None:
    # (1.03 * 1600 kg) * 1 m/s^2 * 10 m/s = 16,480 W on top of the resistances
    extra = tractive_power(10.0, 1.0, 0.0, P) - tractive_power(10.0, 0.0, 0.0, P)
    assert float(extra) == pytest.approx(1.03 * 1600.0 * 10.0)
    braking = tractive_power(10.0, -3.0, 0.0, P)
    assert float(braking) == pytest.approx(
        (-1.03 * 1600 * 3.0 + 188.352 + 0.5 * 1.2 * 0.62 * 100.0) * 10.0
    )


# --- engine states -------------------------------------------------------------------------------


def test_idle_at_standstill_and_start_stop() -> None:
    idle = idle_fuel_rate(P)
    assert 0.15 < idle < 0.35  # [ml/s]: 0.55-1.25 l/h, a warm 2.0 l petrol engine with no A/C
    assert float(fuel_rate(0.0, 0.0, 0.0, P)) == pytest.approx(idle)
    assert float(fuel_rate(0.0, 0.0, 0.1, P)) == pytest.approx(idle)  # held on a hill by the brakes
    assert float(fuel_rate(0.0, 0.0, 0.0, replace(P, start_stop=True))) == 0.0
    assert float(fuel_rate(0.0, 1.0, 0.0, P)) > idle  # pulling away burns more


def test_fuel_cut_off_on_deceleration() -> None:
    assert float(tractive_power(20.0, -1.0, 0.0, P)) < 0
    assert float(fuel_rate(20.0, -1.0, 0.0, P)) == 0.0
    assert float(fuel_rate(15.0, 0.0, -0.08, P)) == 0.0  # steep descent, no braking needed
    # below fuel_cutoff_min_speed the driver has declutched: idle
    slow = 0.5 * P.fuel_cutoff_min_speed
    assert float(fuel_rate(slow, -2.0, 0.0, P)) == pytest.approx(idle_fuel_rate(P))
    # gentle deceleration still needing positive power keeps the engine firing
    assert float(tractive_power(20.0, -0.1, 0.0, P)) > 0
    assert float(fuel_rate(20.0, -0.1, 0.0, P)) >= idle_fuel_rate(P)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.0, 50.0),
    st.floats(-8.0, 4.0),
    st.floats(-0.15, 0.15),
)
def test_fuel_is_idle_or_more_unless_cut_off(v: float, a: float, g: float) -> None:
    rate = float(fuel_rate(v, a, g, P))
    cut = float(tractive_power(v, a, g, P)) < 0 and v >= P.fuel_cutoff_min_speed
    if cut:
        assert rate == 0.0
    else:
        assert rate >= idle_fuel_rate(P) - 1e-12
    assert math.isfinite(rate)


def test_monotone_in_speed_at_constant_speed_in_top_gear() -> None:
    v = np.linspace(0.0, 55.0, 1101)
    gear, rpm, _ = engine_state(v, 0.0, 0.0, P)
    top = gear == len(P.gear_ratios) - 1
    first_top = int(np.argmax(top))
    assert top[first_top:].all() and v[first_top] < 20.0  # top gear from ~65 km/h on
    rate = fuel_rate(v[first_top:], 0.0, 0.0, P)
    assert (np.diff(rate) > 0).all()
    assert (np.diff(rpm[first_top:]) > 0).all()


def test_gear_choice_follows_wltp_minimum_engine_speed() -> None:
    v = np.linspace(5.0, 40.0, 200)
    gear, rpm, _ = engine_state(v, 0.0, 0.0, P)
    assert (rpm >= P.min_drive_rpm - 1e-9).all()
    assert (np.diff(gear) >= 0).all()  # upshifts only as speed rises at constant speed
    hard, _, _ = engine_state(v, 2.5, 0.0, P)
    assert (hard <= gear).all() and (hard < gear).any()  # hard acceleration holds lower gears


def test_steady_cruise_consumption_is_realistic() -> None:
    # a 1600 kg petrol sedan: ~5 l/100 km at a steady 70 km/h, 6-8 at 120 km/h
    for kmh, lo, hi in ((70.0, 4.0, 6.0), (120.0, 6.0, 8.5)):
        v = kmh / 3.6
        l_per_100km = float(fuel_rate(v, 0.0, 0.0, P)) / v * 100.0
        assert lo < l_per_100km < hi, (kmh, l_per_100km)


# --- electric ------------------------------------------------------------------------------------


def test_electric_regen_is_negative_when_braking() -> None:
    assert float(energy_rate(20.0, -2.0, 0.0, EV)) < 0.0
    assert float(energy_rate(20.0, 1.0, 0.0, EV)) > 0.0
    assert float(energy_rate(0.0, 0.0, 0.0, EV)) == pytest.approx(
        EV.aux_power / EV.battery_efficiency
    )
    no_regen = replace(EV, regen_efficiency=0.0)
    assert float(energy_rate(20.0, -2.0, 0.0, no_regen)) == pytest.approx(
        EV.aux_power / EV.battery_efficiency
    )
    # regeneration is power-limited and recovers less than the wheels give up
    hard = float(energy_rate(30.0, -8.0, 0.0, EV))
    assert hard >= -EV.max_regen_power
    wheel = float(tractive_power(20.0, -2.0, 0.0, EV))
    assert float(energy_rate(20.0, -2.0, 0.0, EV)) > wheel
    assert float(fuel_rate(20.0, 1.0, 0.0, EV)) == 0.0


def test_electric_cycle_net_energy_below_no_regen() -> None:
    t = np.arange(0.0, 61.0)
    v = np.concatenate([np.linspace(0, 20, 21), np.full(20, 20.0), np.linspace(20, 0, 20)])
    with_regen = cycle_fuel(t, v, EV)
    without = cycle_fuel(t, v, replace(EV, regen_efficiency=0.0))
    assert float(with_regen["kwh"]) < float(without["kwh"])
    assert float(with_regen["regen_kwh"]) == pytest.approx(
        float(without["kwh"]) - float(with_regen["kwh"])
    )
    assert with_regen["co2_g_per_km"] == 0.0 and with_regen["litres"] == 0.0


# --- cycle integration ---------------------------------------------------------------------------


def test_cycle_uses_central_differences_and_trapezoids() -> None:
    t = np.arange(0.0, 11.0)
    v = np.full_like(t, 15.0)
    r = cycle_fuel(t, v, P)
    assert r["distance_km"] == pytest.approx(0.150)
    assert r["litres"] == pytest.approx(float(fuel_rate(15.0, 0.0, 0.0, P)) * 10.0 / 1000.0)
    assert r["co2_g_per_km"] == pytest.approx(float(r["litres"]) * CO2_G_PER_L / 0.150)
    assert r["l_per_100km"] == pytest.approx(float(r["litres"]) / 0.150 * 100.0)
    assert r["kwh"] == pytest.approx(float(r["litres"]) * 0.745 * 43.2e6 / 3.6e6)
    # a parabola: central differences are exact for the inner samples
    vq = 0.05 * t**2
    rq = cycle_fuel(t, vq, P)
    inner = fuel_rate(vq[1:-1], 0.1 * t[1:-1], 0.0, P)
    assert rq["litres"] > 0
    assert np.trapezoid(inner, t[1:-1]) / 1000.0 < float(rq["litres"])
    with pytest.raises(ValueError, match="increasing"):
        cycle_fuel(np.array([0.0, 1.0, 1.0]), np.zeros(3), P)


def test_co2_factor() -> None:
    assert 2310.0 <= CO2_G_PER_L <= 2390.0  # [g/l] petrol, US EPA 8,887 g/gal
    assert math.isclose(CO2_PER_LITRE, CO2_G_PER_L / 1000.0)


# --- batching ------------------------------------------------------------------------------------


def test_batched_equals_elementwise() -> None:
    rng = np.random.default_rng(0)
    shape = (4, 5)
    v = rng.uniform(0.0, 40.0, shape)
    v[0, :2] = 0.0
    a = rng.uniform(-4.0, 3.0, shape)
    g = rng.uniform(-0.08, 0.08, shape)
    for p in (P, load_vehicle("diesel_car"), EV):
        for fn in (tractive_power, fuel_rate, energy_rate):
            batched = fn(v, a, g, p)
            assert batched.shape == shape
            single = np.array(
                [float(fn(v[i, j], a[i, j], g[i, j], p)) for i, j in np.ndindex(*shape)]
            ).reshape(shape)
            np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-12)
    # broadcasting: a (B,) speed against a scalar grade, float32 in, float64 out
    out = fuel_rate(v[0].astype(np.float32), a[0].astype(np.float32), 0.0, P)
    assert out.shape == (5,) and out.dtype == np.float64
    # a batch of traces on the last axis equals trace by trace
    t = np.arange(0.0, 30.0)
    traces = rng.uniform(0.0, 25.0, (3, 30))
    batch = cycle_fuel(t, traces, P)
    for i in range(3):
        one = cycle_fuel(t, traces[i], P)
        for k, x in one.items():
            assert np.asarray(batch[k])[i] == pytest.approx(x)


# --- presets -------------------------------------------------------------------------------------


def test_presets_load() -> None:
    names = sorted(q.stem for q in VEHICLE_DIR.glob("*.yaml"))
    assert {"petrol_car", "diesel_car", "electric_car"} <= set(names)
    for n in names:
        assert load_vehicle(n).name == n
    assert load_vehicle("petrol_car") == P  # the dataclass defaults are the default preset
    assert load_vehicle("electric_car") == EV
    assert load_vehicle(VEHICLE_DIR / "diesel_car.yaml") == load_vehicle("diesel_car")
    diesel = load_vehicle("diesel_car")
    assert isinstance(diesel, FuelParams) and diesel.fuel == "diesel"
    assert diesel.co2_g_per_l > P.co2_g_per_l


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("kind: combustion\nmass: heavy\n", "mass"),
        ("kind: combustion\nmass: -5.0\n", "mass"),
        ("kind: combustion\nmasss: 1500.0\n", "masss"),
        ("kind: combustion\ngear_ratios: [1.0, 2.0]\n", "gear_ratios"),
        ("kind: electric\nregen_efficiency: 1.5\n", "regen_efficiency"),
        ("kind: electric\ndisplacement_l: 2.0\n", "displacement_l"),
        ("kind: hovercraft\n", "kind"),
        ("mass: 1500.0\n", "kind"),
        ("kind: combustion\nstart_stop: 1\n", "start_stop"),
    ],
)
def test_bad_yaml_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad_car.yaml"
    path.write_text(text)
    with pytest.raises(VehicleConfigError) as e:
        load_vehicle(path)
    assert str(path) in str(e.value) and f"'{field}'" in str(e.value)


def test_vehicle_from_a_config_node() -> None:
    p = vehicle_from_dict({"kind": "combustion", "mass": 1500}, source="config 'vehicle'")
    assert isinstance(p, FuelParams) and p.mass == 1500.0 and p.name == "petrol_car"
    with pytest.raises(VehicleConfigError, match="config 'vehicle': field 'drag_area'"):
        vehicle_from_dict({"kind": "electric", "drag_area": "big"}, source="config 'vehicle'")


def test_bad_yaml_hints_at_exponent_strings_and_missing_presets(tmp_path: Path) -> None:
    path = tmp_path / "car.yaml"
    path.write_text("kind: combustion\nrated_power: 110e3\n")
    with pytest.raises(VehicleConfigError, match=r"rated_power.*1\.0e\+3"):
        load_vehicle(path)
    path.write_text("kind: combustion\nrated_power: 1.1e+5\nmass: 1500\n")
    p = load_vehicle(path)
    assert isinstance(p, FuelParams) and p.rated_power == 110000.0 and p.mass == 1500.0
    with pytest.raises(FileNotFoundError, match="petrol_car"):
        load_vehicle("no_such_car")
    path.write_text("- a list\n")
    with pytest.raises(VehicleConfigError, match="mapping"):
        load_vehicle(path)


# --- validation against the SUMO references ------------------------------------------------------


def _ours(cycle: Path, p: FuelParams | ElectricParams = P) -> float:
    t, v = load_cycle(cycle)
    return float(cycle_fuel(t, v, p)["l_per_100km"])


@needs_data
def test_wltc3b_within_10_percent_of_hbefa4_default() -> None:
    refs = _bench().load_reference(REFERENCE)
    ref = refs["wltc3b"][PETROL_REFERENCE]
    assert ref == pytest.approx(8.463)  # README: 8.46 l/100 km, 1800 s, 23.266 km
    t, v = load_cycle(CYCLES / "wltc_class3b.csv")
    r = cycle_fuel(t, v, P)
    assert r["distance_km"] == pytest.approx(23.266, abs=1e-3)
    assert abs(float(r["l_per_100km"]) / ref - 1.0) < 0.10, r["l_per_100km"]


@needs_data
def test_ranks_cycles_like_the_references() -> None:
    """Every pair of cycles that the reference models all order the same way (a pair they
    disagree on has no reference order) must come out in that order; all present cycles."""
    bench = _bench()
    refs = bench.load_reference(REFERENCE)
    files = {bench.cycle_key(c.stem): c for c in CYCLES.glob("*.csv")}
    keys = sorted(k for k in files if PETROL_REFERENCE in refs.get(k, {}))
    assert {"wltc3b", "nedc"} <= set(keys)
    ours = {k: _ours(files[k]) for k in keys}
    petrol = [c for c in refs[keys[0]] if all(c in refs[k] for k in keys)]
    ranked = 0
    for a, b in itertools.combinations(keys, 2):
        signs = {np.sign(refs[a][c] - refs[b][c]) for c in petrol}
        if len(signs) != 1:
            continue
        ranked += 1
        assert np.sign(ours[a] - ours[b]) == signs.pop(), (a, b, ours, refs[a], refs[b])
    assert ranked >= 1
    assert ours["nedc"] > ours["wltc3b"]  # all seven reference models agree


@needs_data
def test_bench_prints_one_json_line_per_cycle() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fuel_validation.py"), "--cycle",
         str(CYCLES / "wltc_class3b.csv"), "--vehicle", "petrol_car"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["cycle"] == "wltc_class3b" and row["vehicle"] == "petrol_car"
    assert row["reference_l_per_100km"] == pytest.approx(8.463)
    assert {"l_per_100km", "co2_g_per_km", "distance_km", "rel_error"} <= row.keys()


def test_flat_lookup_table_matches_the_model_on_every_cycle() -> None:
    from sim.fuel import FuelParams, fuel_rate, fuel_rate_flat, load_cycle

    p = FuelParams()
    cycles = sorted((DATA / "drive_cycles").glob("*.csv")) if DATA.is_dir() else []
    if not cycles:
        pytest.skip(f"no drive cycles under {DATA}")
    for path in cycles:
        t, v = load_cycle(path)
        a = np.gradient(v, t)
        exact = np.trapezoid(fuel_rate(v, a, np.zeros_like(v), p), t)
        fast = np.trapezoid(fuel_rate_flat(v, a, p), t)
        assert fast == pytest.approx(exact, rel=0.01), path.name
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 40, 2000)
    a = rng.uniform(-3, 3, 2000)
    exact = fuel_rate(v, a, np.zeros_like(v), p)
    fast = fuel_rate_flat(v, a, p)
    assert np.median(np.abs(fast - exact)) < 0.02 * np.median(exact)
