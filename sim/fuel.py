"""Physical vehicle fuel and energy model: road loads, drivetrain, a Willans-line engine, a BEV.

Everything is computed from speed ``v`` [m/s], acceleration ``a`` [m/s^2] and road grade ``G``
(rise over run, ``tan(theta)``) and is batched: arguments broadcast together, any shape.

Road load at the wheels (Wong 2008, ch. 3; Rakha et al. 2011)::

    F = f_r m a + m g (c_rr cos(theta) + sin(theta)) + 1/2 rho C_dA v^2     theta = atan(G)
    P_wheel = F v                                                            (tractive_power)

with ``f_r`` the rotating-mass factor of the wheels and driveline (1.03: WLTP GTR No. 15 puts the
rotating inertia of wheels and axles at 3 % of the test mass). The engine's own flywheel inertia
depends on the gear and is added in the engine model below, which is why ``f_r`` is not the
1.04 to 1.5 of gear-averaged textbook factors.

Gear and engine speed. A manual gearbox with ratios ``i_k`` and final drive ``i_0``; the engine
speed in gear ``k`` is ``n_k = v i_k i_0 / r_w`` (in rpm ``* 60 / 2 pi``). The gear is chosen like
the WLTP gear-shift procedure (GTR No. 15, Annex 2): the highest gear with
``n_k >= n_min_drive = n_idle + 0.125 (n_rated - n_idle)`` whose full-load power, less a 10 %
safety margin, covers the demand; below first-gear speeds the clutch slips and the engine runs at
``1.15 n_idle``. Full load is ``min(T_max omega, P_rated)``.

Engine, Willans line (Guzzella & Sciarretta 2013, ch. 3; Heywood 1988, ch. 13). Fuel power is
the gross indicated work divided by a constant indicated efficiency ``eta_i``; brake power is
indicated power less friction and pumping::

    P_e     = F r_w omega_e / (i_k i_0 eta_d) + P_aux + J_e omega_e d(omega_e)/dt
    P_loss  = (fmep(n) + pmep) V_d n / 120            [W, mep in Pa, V_d in m^3, n in rpm]
    fmep(n) = c0 + c1 (n/1000) + c2 (n/1000)^2        (Barnes-Moss form, Heywood 1988 ch. 13)
    pmep    = pmep_0 max(0, 1 - P_e / P_full(n))      (throttling loss, falls to 0 at full load)
    fuel    = (P_e + P_loss) / (eta_i LHV rho_f)      [l/s; the API returns ml/s]

so at a fixed engine speed the fuel rate is affine in engine power, which is the VT-CPFM-1 form
``alpha_0 + alpha_1 P`` of Rakha et al. (2011). We use the Willans form instead of VT-CPFM
because every coefficient here is a physical quantity with literature values (displacement,
indicated efficiency, friction correlation, gear ratios), while VT-CPFM's ``alpha_1, alpha_2``
are calibrated per vehicle against its city/highway fuel-economy ratings, which would amount to
fitting the model to drive cycles. As a check, the petrol defaults give a full-load brake
specific fuel consumption of 241-254 g/kWh between 1000 and 3000 rpm, typical of a port-injected
naturally aspirated petrol engine (diesel preset: 202-209 g/kWh). Not modelled: full-load
enrichment, cold start, warm-up, and torque falling off below ~1500 rpm.

Operating states, in this order (``fuel_rate``):

- stopped (``v < STANDSTILL_SPEED`` and ``a <= 0``): idle, the Willans fuel at ``n_idle`` with
  only ``P_aux`` (0.237 ml/s = 0.85 l/h for the petrol default); 0 with ``start_stop``;
- traction (``F > 0``): the Willans fuel above, never below the idle rate;
- deceleration fuel cut-off: negative tractive power (``P_wheel < 0``) at
  ``v >= fuel_cutoff_min_speed`` gives exactly 0 ml/s (the engine is dragged in gear and the
  injectors are shut, as engine controllers do on overrun);
- negative tractive power below that speed: the driver has declutched, the engine idles.

Battery-electric variant (``ElectricParams``, ``energy_rate``; cf. Fiori et al. 2016)::

    P_wheel >= 0:  P_batt = (P_wheel / (eta_d eta_m) + P_aux) / eta_b
    P_wheel <  0:  P_batt = r s(v) max(P_wheel, -P_regen_max) eta_d eta_m eta_b + P_aux / eta_b

with ``r`` the share of braking power the motor takes (``regen_efficiency``; the rest goes to the
friction brakes) and ``s(v) = min(1, v / regen_fade_speed)`` the fade-out of regeneration near
standstill. ``P_batt < 0`` is charging.

Cycle integration (``cycle_fuel``): acceleration by central differences of the speed trace
(``numpy.gradient``: second-order central inside, one-sided at the ends) because a central
difference is centred on the sample at which speed is taken, so ``P = F v`` pairs a speed with
the acceleration at the same instant (SUMO's ``--compute-a`` uses backward differences, which lag
by half a step); rates are integrated with the trapezoidal rule.

CO2. Tailpipe CO2 is proportional to the carbon burnt: 8,887 g per US gallon of petrol and
10,180 g per gallon of diesel (US EPA 2018), i.e. 2,348 g/l and 2,689 g/l. SUMO's HBEFA4 petrol
classes use ~2,289 g/l (193.70 g/km at 8.463 l/100 km in the reference CSV).

References:
    Rakha, H., Ahn, K., Moran, K., Saerens, B., Van den Bulck, E. (2011). Virginia Tech
        Comprehensive Power-Based Fuel Consumption Model: model development and testing.
        Transportation Research Part D 16(7), 492-503.
    Guzzella, L., Sciarretta, A. (2013). Vehicle Propulsion Systems, 3rd ed. Springer.
    Heywood, J. B. (1988). Internal Combustion Engine Fundamentals. McGraw-Hill.
    Wong, J. Y. (2008). Theory of Ground Vehicles, 4th ed. Wiley.
    UNECE Global Technical Regulation No. 15, WLTP (Annex 2 gear shift, Annex 4 road load).
    Fiori, C., Ahn, K., Rakha, H. (2016). Power-based electric vehicle energy consumption model.
        Applied Energy 168, 257-268.
    US EPA (2018). Greenhouse Gas Emissions from a Typical Passenger Vehicle, EPA-420-F-18-008.
    Prussi, M. et al. (2020). JEC Well-to-Tank report v5, JRC121213 (fuel properties).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray

from sim.dynamics import AIR_DENSITY, GRAVITY

F64 = NDArray[np.float64]

# --- fuels (JEC WTT v5 fuel properties; US EPA 2018 CO2 factors) ---------------------------------
LITRES_PER_US_GALLON = 3.785411784  # [l/gal] definition of the US liquid gallon
FUEL_DENSITY = 0.745  # [kg/l] petrol (EN 228 E5), JEC WTT v5; EN 228 allows 0.720-0.775
PETROL_LHV = 43.2e6  # [J/kg] lower heating value of petrol, JEC WTT v5
CO2_G_PER_L = 8887.0 / LITRES_PER_US_GALLON  # [g/l] petrol, 8,887 g CO2/gal (US EPA 2018)
CO2_PER_LITRE = CO2_G_PER_L / 1000.0  # [kg/l] the same petrol factor, 2.348 kg CO2/l
DIESEL_DENSITY = 0.832  # [kg/l] diesel (EN 590 B7), JEC WTT v5; EN 590 allows 0.820-0.845
DIESEL_LHV = 43.1e6  # [J/kg] lower heating value of diesel, JEC WTT v5
DIESEL_CO2_G_PER_L = 10180.0 / LITRES_PER_US_GALLON  # [g/l] 10,180 g CO2/gal (US EPA 2018)

# --- model constants -----------------------------------------------------------------------------
STANDSTILL_SPEED = 0.1  # [m/s] below this with a <= 0 the car is stopped (cycles: 0.1 km/h steps)
PA_PER_BAR = 1.0e5  # [Pa/bar] mean effective pressures are given in bar
ML_PER_L = 1000.0  # [ml/l]
RPM_PER_RAD_S = 60.0 / (2.0 * math.pi)  # [rpm/(rad/s)]
FOUR_STROKE_REVS_PER_CYCLE = 2.0  # [rev] a four-stroke fires each cylinder every second revolution
WLTP_N_MIN_DRIVE_FRACTION = 0.125  # [-] GTR 15 Annex 2: n_idle + 0.125 (n_rated - n_idle)
WLTP_LAUNCH_IDLE_FACTOR = 1.15  # [-] GTR 15 Annex 2: 1.15 n_idle, used as the clutch-slip speed
J_PER_KWH = 3.6e6  # [J/kWh]
J_PER_MJ = 1e6  # [J/MJ] heating values are given in MJ/kg
M3_PER_L = 1e-3  # [m^3/l] displacement is given in litres
S_PER_MIN = 60.0  # [s/min] engine speeds are given in rpm
RPM_PER_KRPM = 1000.0  # [rpm/krpm] the friction correlation is in 1000 rpm
KMH_PER_MPS = 3.6  # [(km/h)/(m/s)]
M_PER_KM = 1000.0  # [m/km]
MIN_CYCLE_DISTANCE_KM = 1e-3  # [km] per-distance figures of shorter traces are NaN

VEHICLE_DIR = Path(__file__).resolve().parents[1] / "configs" / "vehicle"


class VehicleConfigError(ValueError):
    """A vehicle preset that cannot be used; the message names the file and the field."""


def _check(name: str, ok: bool, why: str, value: object) -> None:
    if not ok:
        raise ValueError(f"field '{name}': {why}, got {value!r}")


@dataclass(frozen=True)
class FuelParams:
    """A combustion-engine car. Defaults: ``configs/vehicle/petrol_car.yaml``, a generic
    mid-size petrol sedan with a 2.0 l naturally aspirated engine and a 6-speed manual gearbox.

    Body (mass, rolling, drag) is the ego of :mod:`sim.dynamics` (``VehicleParams``: 1600 kg,
    c_rr 0.012, C_dA 0.62 m^2, 110 kW), so the fuel figures belong to the car the simulator drives.
    """

    name: str = "petrol_car"
    fuel: str = "petrol"  # [-] label only; the physics is in the numbers below
    # body
    mass: float = 1600.0  # [kg] sim.dynamics.VehicleParams.mass (car, driver and some luggage)
    rolling_coef: float = 0.012  # [-] sim.dynamics; passenger-car tyres on asphalt 0.008-0.015
    drag_area: float = 0.62  # [m^2] C_d A = 0.28 * 2.2 m^2, sim.dynamics
    rotating_mass_factor: float = 1.03  # [-] wheels and axles, WLTP GTR 15 (3 % of test mass)
    wheel_radius: float = 0.31  # [m] dynamic radius of a 205/55 R16 tyre
    # driveline
    drivetrain_efficiency: float = 0.92  # [-] manual gearbox + final drive (Rakha et al. 2011)
    gear_ratios: tuple[float, ...] = (3.58, 2.02, 1.35, 1.03, 0.84, 0.69)  # [-] 6-speed manual
    final_drive: float = 3.94  # [-] 120 km/h in 6th is 2,790 rpm
    # engine
    displacement_l: float = 2.0  # [l] 55 kW/l, a naturally aspirated petrol engine
    idle_speed_rpm: float = 800.0  # [rpm] warm idle of a 4-cylinder petrol engine
    rated_speed_rpm: float = 6000.0  # [rpm] speed of rated power
    rated_power: float = 110e3  # [W] sim.dynamics.VehicleParams.max_power
    max_torque: float = 190.0  # [N m] 11.9 bar bmep at 2.0 l, typical NA petrol
    indicated_efficiency: float = 0.38  # [-] gross indicated efficiency of an SI engine (Willans e)
    friction_mep_bar: tuple[float, float, float] = (0.97, 0.15, 0.05)  # [bar, bar/krpm, bar/krpm^2]
    pumping_mep_bar: float = 0.7  # [bar] throttling loss at closed throttle (manifold ~0.3 bar)
    engine_inertia: float = 0.15  # [kg m^2] crankshaft and flywheel of a 2.0 l 4-cylinder
    aux_power: float = 500.0  # [W] alternator base load (~300 W electric at 60 %), lights off
    shift_power_margin: float = 0.1  # [-] WLTP GTR 15 safety margin on full-load power
    # fuel
    fuel_density_kg_per_l: float = FUEL_DENSITY  # [kg/l]
    fuel_lhv_mj_per_kg: float = PETROL_LHV / J_PER_MJ  # [MJ/kg]
    co2_g_per_l: float = CO2_G_PER_L  # [g/l]
    # operation
    fuel_cutoff_min_speed: float = 15.0 / KMH_PER_MPS  # [m/s] below ~15 km/h drivers declutch: idle
    start_stop: bool = False  # engine off at standstill (False: a Euro-4-era car, as HBEFA4)

    def __post_init__(self) -> None:
        for f in (
            "mass", "wheel_radius", "final_drive", "displacement_l", "idle_speed_rpm",
            "rated_power", "max_torque", "fuel_density_kg_per_l", "fuel_lhv_mj_per_kg",
        ):  # fmt: skip
            v = getattr(self, f)
            _check(f, v > 0, "must be > 0", v)
        for f in ("rolling_coef", "drag_area", "pumping_mep_bar", "engine_inertia", "aux_power",
                  "co2_g_per_l", "fuel_cutoff_min_speed"):  # fmt: skip
            v = getattr(self, f)
            _check(f, v >= 0, "must be >= 0", v)
        _check("rotating_mass_factor", self.rotating_mass_factor >= 1, "must be >= 1",
               self.rotating_mass_factor)  # fmt: skip
        for f in ("drivetrain_efficiency", "indicated_efficiency"):
            v = getattr(self, f)
            _check(f, 0 < v <= 1, "must be in (0, 1]", v)
        _check("shift_power_margin", 0 <= self.shift_power_margin < 1, "must be in [0, 1)",
               self.shift_power_margin)  # fmt: skip
        _check("rated_speed_rpm", self.rated_speed_rpm > self.idle_speed_rpm,
               "must be above idle_speed_rpm", self.rated_speed_rpm)  # fmt: skip
        r = self.gear_ratios
        _check("gear_ratios", len(r) > 0 and all(x > 0 for x in r), "must be positive numbers", r)
        _check("gear_ratios", all(a > b for a, b in itertools.pairwise(r)),
               "must decrease from first to top gear", r)  # fmt: skip
        _check("friction_mep_bar", len(self.friction_mep_bar) == 3 and
               all(c >= 0 for c in self.friction_mep_bar), "must be 3 numbers >= 0",
               self.friction_mep_bar)  # fmt: skip

    @property
    def min_drive_rpm(self) -> float:
        """[rpm] lowest engine speed for gear selection (WLTP GTR 15 Annex 2)."""
        return self.idle_speed_rpm + WLTP_N_MIN_DRIVE_FRACTION * (
            self.rated_speed_rpm - self.idle_speed_rpm
        )

    @property
    def launch_rpm(self) -> float:
        """[rpm] engine speed while the clutch slips below first-gear speeds."""
        return WLTP_LAUNCH_IDLE_FACTOR * self.idle_speed_rpm

    @property
    def fuel_energy_j_per_l(self) -> float:
        """[J/l] volumetric lower heating value."""
        return self.fuel_lhv_mj_per_kg * J_PER_MJ * self.fuel_density_kg_per_l


@dataclass(frozen=True)
class ElectricParams:
    """A battery-electric car. Defaults: ``configs/vehicle/electric_car.yaml``, a generic
    mid-size BEV (the size of CARLA's vehicle.tesla.model3, whose wheelbase sim.dynamics uses).

    It differs from the sim.dynamics ego on purpose: a battery adds ~250 kg (1850 kg), and BEVs
    ship with low-rolling-resistance tyres (c_rr 0.009) and a smoother body (C_dA 0.51 m^2).
    """

    name: str = "electric_car"
    # body
    mass: float = 1850.0  # [kg] mid-size BEV, 60 kWh pack, with driver
    rolling_coef: float = 0.009  # [-] low-rolling-resistance tyres (EU tyre label B/C)
    drag_area: float = 0.51  # [m^2] C_d A = 0.23 * 2.22 m^2 (a streamlined BEV saloon)
    rotating_mass_factor: float = 1.05  # [-] wheels 3 % (WLTP) + motor rotor at ~9:1 reduction
    # drivetrain
    drivetrain_efficiency: float = 0.97  # [-] single-speed reduction gear
    motor_efficiency: float = 0.90  # [-] cycle-average motor + inverter (peak 0.95-0.97)
    battery_efficiency: float = 0.95  # [-] one way (discharge or charge), internal resistance
    regen_efficiency: float = 0.9  # [-] share of wheel braking power the motor takes (brake blend)
    max_regen_power: float = 60e3  # [W] regenerative braking power limit at the wheels
    regen_fade_speed: float = 2.0  # [m/s] regeneration fades out linearly below this speed
    aux_power: float = 300.0  # [W] DC/DC, electronics, pumps; no heating or air conditioning
    battery_kwh: float = 60.0  # [kWh] usable capacity, for the share of battery a cycle uses

    def __post_init__(self) -> None:
        for f in ("mass", "battery_kwh"):
            v = getattr(self, f)
            _check(f, v > 0, "must be > 0", v)
        for f in ("rolling_coef", "drag_area", "max_regen_power", "regen_fade_speed",
                  "aux_power"):  # fmt: skip
            v = getattr(self, f)
            _check(f, v >= 0, "must be >= 0", v)
        _check("rotating_mass_factor", self.rotating_mass_factor >= 1, "must be >= 1",
               self.rotating_mass_factor)  # fmt: skip
        for f in ("drivetrain_efficiency", "motor_efficiency", "battery_efficiency"):
            v = getattr(self, f)
            _check(f, 0 < v <= 1, "must be in (0, 1]", v)
        _check("regen_efficiency", 0 <= self.regen_efficiency <= 1, "must be in [0, 1]",
               self.regen_efficiency)  # fmt: skip


Vehicle = FuelParams | ElectricParams


def _f64(x: ArrayLike) -> F64:
    return np.asarray(x, dtype=np.float64)


def _inputs(speed: ArrayLike, accel: ArrayLike, grade: ArrayLike) -> tuple[F64, F64, F64]:
    v, a, g = np.broadcast_arrays(_f64(speed), _f64(accel), _f64(grade))
    return np.maximum(v, 0.0), a, g  # no reverse


def tractive_force(speed: ArrayLike, accel: ArrayLike, grade: ArrayLike, p: Vehicle) -> F64:
    """Force the wheels must deliver to follow ``(speed, accel)`` on ``grade``.

    Args:
        speed: [m/s], negative values are read as 0 (no reverse). accel: [m/s^2].
        grade: road gradient, rise over run [-] (0.05 = 5 % uphill). All broadcast together.
        p: vehicle parameters.

    Returns:
        Tractive force [N], the broadcast shape; negative when the brakes (or the engine's
        drag, or regeneration) must take energy out.
    """
    v, a, g = _inputs(speed, accel, grade)
    theta = np.arctan(g)
    return (
        p.rotating_mass_factor * p.mass * a
        + p.mass * GRAVITY * (p.rolling_coef * np.cos(theta) + np.sin(theta))
        + 0.5 * AIR_DENSITY * p.drag_area * v * v
    )


def tractive_power(speed: ArrayLike, accel: ArrayLike, grade: ArrayLike, p: Vehicle) -> F64:
    """Power at the wheels ``F v`` [W] (see :func:`tractive_force` for the arguments)."""
    v, _, _ = _inputs(speed, accel, grade)
    return tractive_force(speed, accel, grade, p) * v


def _full_load_power(rpm: F64, p: FuelParams) -> F64:
    """[W] full-load power at ``rpm``: torque-limited, then power-limited."""
    return np.minimum(p.max_torque * rpm / RPM_PER_RAD_S, p.rated_power)


def _loss_power(rpm: F64, engine_power: F64, p: FuelParams) -> F64:
    """[W] friction + pumping power at ``rpm`` and brake power ``engine_power``."""
    c0, c1, c2 = p.friction_mep_bar
    k = rpm / RPM_PER_KRPM
    load = np.clip(engine_power / _full_load_power(rpm, p), 0.0, 1.0)
    mep = (c0 + c1 * k + c2 * k * k + p.pumping_mep_bar * (1.0 - load)) * PA_PER_BAR
    swept_per_s = (
        p.displacement_l * M3_PER_L * rpm / S_PER_MIN / FOUR_STROKE_REVS_PER_CYCLE
    )  # [m^3/s]
    return mep * swept_per_s


def _willans_fuel(rpm: F64, engine_power: F64, p: FuelParams) -> F64:
    """[ml/s] fuel for brake power ``engine_power`` [W] at ``rpm``."""
    fuel_power = (engine_power + _loss_power(rpm, engine_power, p)) / p.indicated_efficiency
    return fuel_power / p.fuel_energy_j_per_l * ML_PER_L


@functools.lru_cache(maxsize=64)
def idle_fuel_rate(p: FuelParams) -> float:
    """Fuel rate of the warm engine idling with the auxiliaries on [ml/s] (cached per ``p``)."""
    rpm = np.array(p.idle_speed_rpm)
    return float(_willans_fuel(rpm, np.array(p.aux_power), p))


def engine_state(
    speed: ArrayLike, accel: ArrayLike, grade: ArrayLike, p: FuelParams
) -> tuple[NDArray[np.int64], F64, F64]:
    """Gear, engine speed and engine brake power while driving (ignores stops and cut-off).

    Args:
        speed: [m/s]. accel: [m/s^2]. grade: rise over run [-]. Broadcast together.
        p: combustion-car parameters.

    Returns:
        (gear index, 0 = first gear; engine speed [rpm]; brake power [W] including the
        auxiliaries and the flywheel's inertia), each of the broadcast shape.
    """
    v, a, _ = _inputs(speed, accel, grade)
    return _engine(v, a, tractive_force(speed, accel, grade, p), p)


def _engine(v: F64, a: F64, force: F64, p: FuelParams) -> tuple[NDArray[np.int64], F64, F64]:
    """:func:`engine_state` from clipped speed, acceleration and tractive force."""
    ratios = np.asarray(p.gear_ratios, np.float64) * p.final_drive  # (G,)
    rpm_gear = (v / p.wheel_radius * RPM_PER_RAD_S)[..., None] * ratios  # (..., G)
    traction = np.maximum(force, 0.0)
    need = (traction * v / p.drivetrain_efficiency + p.aux_power)[..., None]
    full = _full_load_power(np.maximum(rpm_gear, p.launch_rpm), p)
    in_range = rpm_gear <= p.rated_speed_rpm
    ok = in_range & (rpm_gear >= p.min_drive_rpm) & (need <= (1 - p.shift_power_margin) * full)
    n_gears = ratios.shape[0]
    highest_ok = n_gears - 1 - np.argmax(ok[..., ::-1], axis=-1)
    most_power = np.argmax(np.where(in_range, full, -np.inf), axis=-1)
    fallback = np.where(in_range.any(axis=-1), most_power, n_gears - 1)
    gear = np.where(ok.any(axis=-1), highest_ok, fallback).astype(np.int64)
    ratio = ratios[gear]
    rpm_locked = np.take_along_axis(rpm_gear, gear[..., None], axis=-1)[..., 0]
    locked = rpm_locked >= p.launch_rpm
    rpm = np.maximum(rpm_locked, p.launch_rpm)
    omega = rpm / RPM_PER_RAD_S
    # torque at the engine times the engine's speed: with a slipping clutch this exceeds F v
    drive = traction * p.wheel_radius / (ratio * p.drivetrain_efficiency) * omega
    spin = np.where(locked, p.engine_inertia * (ratio / p.wheel_radius) ** 2 * v * a, 0.0)
    return gear, rpm, drive + p.aux_power + spin


def fuel_rate(speed: ArrayLike, accel: ArrayLike, grade: ArrayLike, p: Vehicle) -> F64:
    """Instantaneous fuel consumption [ml/s].

    At least the idle rate whenever the engine runs; exactly 0 during deceleration fuel cut-off
    (negative tractive power at ``v >= p.fuel_cutoff_min_speed``) and, with ``p.start_stop``,
    when stopped. A battery-electric car burns no fuel: 0 for :class:`ElectricParams`.

    Args:
        speed: [m/s]. accel: [m/s^2]. grade: rise over run [-]. Broadcast together.
        p: vehicle parameters.

    Returns:
        Fuel rate [ml/s], float64, the broadcast shape.
    """
    v, a, _ = _inputs(speed, accel, grade)
    if isinstance(p, ElectricParams):
        return np.zeros_like(v)
    force = tractive_force(v, a, grade, p)
    _, rpm, engine_power = _engine(v, a, force, p)
    idle = idle_fuel_rate(p)
    stopped = (v < STANDSTILL_SPEED) & (a <= 0.0)
    driving = np.maximum(_willans_fuel(rpm, engine_power, p), idle)
    rate = np.where((force > 0.0) & ~stopped, driving, idle)
    cutoff = (force * v < 0.0) & (v >= p.fuel_cutoff_min_speed)
    rate = np.where(cutoff, 0.0, rate)
    if p.start_stop:
        rate = np.where(stopped, 0.0, rate)
    return rate


def energy_rate(speed: ArrayLike, accel: ArrayLike, grade: ArrayLike, p: Vehicle) -> F64:
    """Power drawn from the vehicle's energy store [W].

    Electric: battery power, negative while regenerative braking charges the battery.
    Combustion: the chemical power of the fuel burnt (``fuel_rate`` times its heating value),
    never negative, so both kinds compare on one scale.

    Args:
        speed: [m/s]. accel: [m/s^2]. grade: rise over run [-]. Broadcast together.
        p: vehicle parameters.

    Returns:
        Power [W], float64, the broadcast shape.
    """
    if isinstance(p, FuelParams):
        return fuel_rate(speed, accel, grade, p) / ML_PER_L * p.fuel_energy_j_per_l
    v, _, _ = _inputs(speed, accel, grade)
    wheel = tractive_power(speed, accel, grade, p)
    eta_dm = p.drivetrain_efficiency * p.motor_efficiency
    aux = p.aux_power / p.battery_efficiency
    drive = np.maximum(wheel, 0.0) / eta_dm / p.battery_efficiency
    fade = np.minimum(1.0, v / p.regen_fade_speed) if p.regen_fade_speed > 0 else 1.0
    braking = np.maximum(np.minimum(wheel, 0.0), -p.max_regen_power)
    regen = p.regen_efficiency * fade * braking * eta_dm * p.battery_efficiency
    return drive + regen + aux


def _integrate(y: F64, t: F64) -> F64:
    """Trapezoidal integral of ``y`` (..., T) over ``t`` (T,)."""
    return np.asarray(np.trapezoid(y, t, axis=-1), np.float64)


def cycle_fuel(
    time_s: ArrayLike, speed_mps: ArrayLike, p: Vehicle, grade: ArrayLike = 0.0
) -> dict[str, float | F64]:
    """Fuel or energy over a speed trace.

    Acceleration by central differences (``numpy.gradient``), rates integrated by the
    trapezoidal rule over ``time_s``.

    Args:
        time_s: sample times [s], shape (T,), strictly increasing.
        speed_mps: speeds [m/s], shape (..., T): one trace or a batch of traces on the last axis.
        p: vehicle parameters.
        grade: road gradient [-], broadcastable to ``speed_mps``.

    Returns:
        Floats for one trace, arrays of shape ``speed_mps.shape[:-1]`` for a batch:
        ``duration_s``, ``distance_km``, ``litres``, ``l_per_100km``, ``co2_g_per_km``
        (tailpipe; 0 for electric), ``kwh`` and ``kwh_per_100km`` (battery energy, net of
        regeneration, for electric; the fuel's heating value for combustion), and for electric
        also ``regen_kwh`` (recovered) and ``battery_pct``. Per-km figures are NaN for traces
        shorter than 1 m.

    Raises:
        ValueError: times not strictly increasing, fewer than 2 samples, or mismatched shapes.
    """
    t = _f64(time_s)
    v = np.maximum(_f64(speed_mps), 0.0)
    if t.ndim != 1 or t.shape[0] < 2 or v.ndim < 1 or v.shape[-1] != t.shape[0]:
        raise ValueError(
            f"time_s must be (T,), T >= 2, and speed (..., T); got {t.shape}, {v.shape}"
        )
    if not np.all(np.diff(t) > 0):
        raise ValueError("time_s must be strictly increasing")
    a = np.gradient(v, t, axis=-1)
    g = np.broadcast_to(_f64(grade), v.shape)
    km = _integrate(v, t) / M_PER_KM
    per_100km = np.where(km >= MIN_CYCLE_DISTANCE_KM, 100.0 / np.maximum(km, 1e-12), np.nan)
    per_km = per_100km / 100.0
    kwh = _integrate(energy_rate(v, a, g, p), t) / J_PER_KWH
    out: dict[str, F64] = {"duration_s": np.full_like(km, t[-1] - t[0]), "distance_km": km}
    if isinstance(p, FuelParams):
        litres = _integrate(fuel_rate(v, a, g, p), t) / ML_PER_L
        out |= {
            "litres": litres,
            "l_per_100km": litres * per_100km,
            "co2_g_per_km": litres * p.co2_g_per_l * per_km,
        }
    else:
        no_regen = replace(p, regen_efficiency=0.0)
        regen_j = _integrate(energy_rate(v, a, g, no_regen) - energy_rate(v, a, g, p), t)
        zero = 0.0 * km
        out |= {
            "litres": zero,
            "l_per_100km": zero,
            "co2_g_per_km": zero,
            "regen_kwh": regen_j / J_PER_KWH,
            "battery_pct": 100.0 * kwh / p.battery_kwh,
        }
    out |= {"kwh": kwh, "kwh_per_100km": kwh * per_100km}
    if v.ndim == 1:
        return {k: float(x) for k, x in out.items()}
    return dict(out)


# --- presets -------------------------------------------------------------------------------------


def _coerce(source: str, name: str, value: Any, default: Any) -> Any:
    """``value`` from YAML as the type of the field's ``default``; errors name source and field."""

    def bad(expected: str) -> VehicleConfigError:
        hint = ""
        if isinstance(value, str) and "e" in value.lower():
            hint = " (YAML reads 1e3 as text: write 1000.0 or 1.0e+3)"
        return VehicleConfigError(
            f"{source}: field '{name}': expected {expected}, got {value!r}{hint}"
        )

    def number(x: Any) -> float:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise bad("a finite number")
        return float(x)

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, float):
        return number(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not value:
            raise bad("a list of numbers")
        return tuple(number(x) for x in value)
    raise bad(type(default).__name__)  # pragma: no cover - every field type is handled above


def resolve_vehicle_path(path_or_name: str | Path) -> Path:
    """A preset name (``petrol_car``) is ``configs/vehicle/<name>.yaml``; anything else a path."""
    s = str(path_or_name)
    if isinstance(path_or_name, Path) or "/" in s or "\\" in s or s.endswith((".yaml", ".yml")):
        return Path(path_or_name)
    return VEHICLE_DIR / f"{s}.yaml"


def load_vehicle(path_or_name: str | Path) -> Vehicle:
    """Read a vehicle preset from ``configs/vehicle/<name>.yaml`` or a YAML file path.

    The file is a mapping with ``kind: combustion`` (:class:`FuelParams`) or ``kind: electric``
    (:class:`ElectricParams`) and any of that class's fields; missing fields keep the defaults.

    Args:
        path_or_name: preset name (``petrol_car``, ``diesel_car``, ``electric_car``) or path.

    Returns:
        The parameters; ``name`` defaults to the file's stem.

    Raises:
        FileNotFoundError: no such file (the message lists the presets).
        VehicleConfigError: bad YAML, unknown ``kind`` or field, wrong type or out-of-range
            value; the message names the file and the field.
    """
    path = resolve_vehicle_path(path_or_name)
    if not path.is_file():
        presets = sorted(q.stem for q in VEHICLE_DIR.glob("*.yaml"))
        raise FileNotFoundError(
            f"vehicle preset {str(path_or_name)!r}: no file {path}; presets: {presets}"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise VehicleConfigError(f"{path}: not valid YAML: {e}") from e
    return vehicle_from_dict(data, source=str(path), name=path.stem)


def vehicle_from_dict(data: object, source: str, name: str | None = None) -> Vehicle:
    """Vehicle parameters from a mapping (a parsed preset, or a Hydra config node as a dict).

    Args:
        data: ``{"kind": "combustion" | "electric", <field>: <value>, ...}``; missing fields
            keep the class defaults.
        source: where ``data`` came from (a file path, ``config 'vehicle'``), for error messages.
        name: the ``name`` field unless ``data`` sets one.

    Returns:
        :class:`FuelParams` or :class:`ElectricParams`.

    Raises:
        VehicleConfigError: not a mapping, unknown ``kind`` or field, wrong type or out-of-range
            value; the message starts with ``source`` and names the field.
    """
    if not isinstance(data, Mapping):
        raise VehicleConfigError(
            f"{source}: expected a mapping of fields, got {type(data).__name__}"
        )
    fields_in = {str(k): v for k, v in data.items()}
    kind = fields_in.pop("kind", None)
    classes: dict[str, type[FuelParams] | type[ElectricParams]] = {
        "combustion": FuelParams,
        "electric": ElectricParams,
    }
    if kind not in classes:
        raise VehicleConfigError(
            f"{source}: field 'kind': expected one of {sorted(classes)}, got {kind!r}"
        )
    cls = classes[kind]
    defaults = cls()
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {} if name is None else {"name": name}
    for key, value in fields_in.items():
        if key not in known:
            raise VehicleConfigError(
                f"{source}: field '{key}': unknown for kind '{kind}'; known: {sorted(known)}"
            )
        kwargs[key] = _coerce(source, key, value, getattr(defaults, key))
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise VehicleConfigError(f"{source}: {e}") from e


def load_cycle(path: str | Path) -> tuple[F64, F64]:
    """A drive cycle CSV with columns ``time_s`` and ``speed_mps`` (or ``speed_kmh``).

    Returns:
        (time [s], speed [m/s]), each (T,).
    """
    path = Path(path)
    with path.open() as f:
        header = f.readline().strip().split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    col = {name: i for i, name in enumerate(header)}
    if "time_s" not in col or not ({"speed_mps", "speed_kmh"} & col.keys()):
        raise ValueError(f"{path}: needs columns time_s and speed_mps or speed_kmh, has {header}")
    t = table[:, col["time_s"]]
    if "speed_mps" in col:
        return t, table[:, col["speed_mps"]]
    return t, table[:, col["speed_kmh"]] / KMH_PER_MPS


__all__ = [
    "CO2_G_PER_L",
    "CO2_PER_LITRE",
    "DIESEL_CO2_G_PER_L",
    "FUEL_DENSITY",
    "ElectricParams",
    "FuelParams",
    "Vehicle",
    "VehicleConfigError",
    "cycle_fuel",
    "energy_rate",
    "engine_state",
    "fuel_rate",
    "idle_fuel_rate",
    "load_cycle",
    "load_vehicle",
    "tractive_force",
    "tractive_power",
    "vehicle_from_dict",
]


# ---------------------------------------------------------------------------------------------
# A lookup table for the per-step hot path
# ---------------------------------------------------------------------------------------------

LUT_SPEED_STEP = 0.1  # [m/s] table spacing: gear changes make steps in speed, keep them sharp
LUT_SPEED_MAX = 70.0  # [m/s] ~250 km/h, above any speed the simulator's car reaches
LUT_ACCEL_STEP = 0.05  # [m/s^2] fine enough that the cut-off edge smears over < 0.05 m/s^2
LUT_ACCEL_RANGE = (-12.0, 8.0)  # [m/s^2] beyond emergency braking and full throttle


@functools.lru_cache(maxsize=8)
def _flat_lut(p: FuelParams) -> NDArray[np.float32]:
    """The engine's driving-branch fuel rate on a flat road, on a (speed, accel) grid [ml/s].

    Only the smooth part is tabulated (Willans fuel at the WLTP gear, floored at idle); the
    discontinuous rules (standstill, fuel cut-off, start-stop) are applied exactly at lookup.
    """
    v = np.arange(0.0, LUT_SPEED_MAX + LUT_SPEED_STEP / 2, LUT_SPEED_STEP)
    a = np.arange(LUT_ACCEL_RANGE[0], LUT_ACCEL_RANGE[1] + LUT_ACCEL_STEP / 2, LUT_ACCEL_STEP)
    vv, aa = np.meshgrid(v, a, indexing="ij")
    _, rpm, engine_power = engine_state(vv, aa, np.zeros_like(vv), p)
    table = np.maximum(_willans_fuel(rpm, engine_power, p), idle_fuel_rate(p)).astype(np.float32)
    table.setflags(write=False)
    return table


def fuel_rate_flat(speed: NDArray[np.floating], accel: NDArray[np.floating], p: Vehicle) -> F64:
    """:func:`fuel_rate` on a flat road, with the engine model read from a table [ml/s].

    The full engine model (gear choice over six gears, Willans line) costs ~70 us per call at
    batch 1; here the smooth driving branch is bilinear in a precomputed table and the
    standstill, cut-off and start-stop rules are applied exactly, as in :func:`fuel_rate`.
    Agrees with the model to < 1 % of fuel on every drive cycle (test); inputs outside the
    table are clamped to its edge.
    """
    if isinstance(p, ElectricParams):
        return np.zeros(np.shape(speed), np.float64)
    c = _flat_constants(p)
    v = np.maximum(np.asarray(speed, np.float64), c.zero)
    acc = np.asarray(accel, np.float64)
    u = np.minimum(v / c.speed_step, c.u_max)
    # minimum(maximum()) is np.clip's result (NaN too) at a fraction of its call overhead.
    w = np.minimum(np.maximum((acc - c.accel_min) / c.accel_step, c.zero), c.w_max)
    i = u.astype(np.intp)
    j = w.astype(np.intp)
    fu, fw = u - i, w - j
    # The cell's four corners in one gather: rows (i, j), (i, j+1), (i+1, j), (i+1, j+1).
    corner = c.table.take(np.add.outer(c.corner_offsets, i * c.na + j)).reshape(
        (2, 2, *np.shape(i))
    )
    # Both rows of the cell weighted at once: (2, 2, Q) * (2, Q) then the two columns added,
    # the same products and sums as top = c00 gw + c01 fw, bottom = c10 gw + c11 fw.
    wc = corner * np.array([c.one - fw, fw])
    top, bottom = wc[:, 0] + wc[:, 1]
    driving = top * (c.one - fu) + bottom * fu
    force = c.inertia * acc + c.rolling + c.drag * v * v
    stopped = (v < c.standstill) & (acc <= c.zero)
    # The selects below are skipped where they change nothing (the usual case at B=1).
    powered = (force > c.zero) & ~stopped
    rate = (
        driving if np.count_nonzero(powered) == powered.size else np.where(powered, driving, c.idle)
    )
    cut = (force * v < c.zero) & (v >= c.cutoff_speed)
    if np.count_nonzero(cut):
        rate = np.where(cut, c.zero, rate)
    if p.start_stop and np.count_nonzero(stopped):
        rate = np.where(stopped, c.zero, rate)
    return np.asarray(rate, np.float64)


@dataclass(frozen=True)
class _FlatConstants:
    """Per-``FuelParams`` operands of :func:`fuel_rate_flat`, as typed 0-d float64 arrays (a
    Python float costs a conversion per ufunc call; these give the same bits)."""

    table: NDArray[np.float32]  # the flattened look-up table
    na: NDArray[np.intp]  # its accel columns (0-d: a Python int operand costs a conversion)
    corner_offsets: NDArray[np.intp]  # flat offsets of a cell's four corners
    zero: NDArray[np.float64]
    one: NDArray[np.float64]
    speed_step: NDArray[np.float64]
    u_max: NDArray[np.float64]
    accel_min: NDArray[np.float64]
    accel_step: NDArray[np.float64]
    w_max: NDArray[np.float64]
    inertia: NDArray[np.float64]  # [kg] rotating-mass factor times mass
    rolling: NDArray[np.float64]  # [N]
    drag: NDArray[np.float64]  # [kg/m] half air density times drag area
    standstill: NDArray[np.float64]
    cutoff_speed: NDArray[np.float64]
    idle: NDArray[np.float64]


@functools.lru_cache(maxsize=8)
def _flat_constants(p: FuelParams) -> _FlatConstants:
    table = _flat_lut(p)
    nv, na = table.shape

    def f64(x: float) -> NDArray[np.float64]:
        return np.array(x, np.float64)

    return _FlatConstants(
        table=table.reshape(-1),
        na=np.array(na, np.intp),
        corner_offsets=np.array([0, 1, na, na + 1], np.intp),
        zero=f64(0.0),
        one=f64(1.0),
        speed_step=f64(LUT_SPEED_STEP),
        u_max=f64(nv - 1.000001),
        accel_min=f64(LUT_ACCEL_RANGE[0]),
        accel_step=f64(LUT_ACCEL_STEP),
        w_max=f64(na - 1.000001),
        # Grouped as the force formula of fuel_rate groups them, so the products round alike.
        inertia=f64(p.rotating_mass_factor * p.mass),
        rolling=f64(p.mass * GRAVITY * p.rolling_coef),
        drag=f64(0.5 * AIR_DENSITY * p.drag_area),
        standstill=f64(STANDSTILL_SPEED),
        cutoff_speed=f64(p.fuel_cutoff_min_speed),
        idle=f64(idle_fuel_rate(p)),
    )
