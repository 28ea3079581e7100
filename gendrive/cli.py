"""The ``gendrive`` command: ``gendrive <subcommand> [hydra overrides...]``.

Each subcommand is a Hydra app over the config tree in ``configs/`` (``configs/<subcommand>.yaml``):
``gendrive run episodes=20 scenario=ring driver=random``, ``gendrive run --cfg job`` prints the
composed config, ``gendrive run --help`` lists the config groups.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "headless episodes on the embedded simulator with a built-in driver"),
    "drive": ("drive", "drive live in a window; take over from the policy with a wheel or pad"),
    "devices": ("devices", "list connected joysticks and wheels with their axes and buttons"),
    "train": ("train", "train a PPO driving policy; checkpoints, logs and resume in the run dir"),
    "evaluate": ("evaluate", "compare policies on a suite of scenarios: tables, plots, videos"),
    "generate": ("generate", "sample scenarios of a family: JSON specs, previews, OpenSCENARIO"),
}


def _app(name: str) -> Callable[[Any], None]:
    if name == "run":
        from gendrive.run import main as run_main

        return run_main
    if name == "drive":
        from gendrive.drive import main as drive_main

        return drive_main
    if name == "devices":
        from gendrive.devices import main as devices_main

        return devices_main
    if name == "train":
        from gendrive.train import main as train_main

        return train_main
    if name == "evaluate":
        from gendrive.evaluate import main as evaluate_main

        return evaluate_main
    if name == "generate":
        from gendrive.generate import main as generate_main

        return generate_main
    raise KeyError(name)  # pragma: no cover


def usage() -> str:
    lines = ["usage: gendrive <command> [key=value ...] [hydra flags]", "", "commands:"]
    lines += [f"  {k:<10} {v[1]}" for k, v in SUBCOMMANDS.items()]
    lines += ["", "Each command is a Hydra app: `gendrive run --help` shows its config groups."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Dispatch to a Hydra app; the remaining arguments are Hydra's."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return
    cmd = args[0]
    if cmd not in SUBCOMMANDS:
        print(f"gendrive: unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    import hydra

    from gendrive.config import register_configs

    register_configs()
    config_name, _ = SUBCOMMANDS[cmd]
    fn = _app(cmd)
    app = hydra.main(config_path=CONFIG_DIR, config_name=config_name, version_base="1.3")(fn)
    sys.argv = [f"gendrive {cmd}", *args[1:]]
    app()


if __name__ == "__main__":
    main()
