"""A resumed run keeps the settings it started with, whatever the resume command says."""

from pathlib import Path

from training.run_state import RunState, adopt_settings, given_options, settings_of
from training.train import parse_args


def test_stored_settings_survive_json_and_override_a_resume_command(tmp_path):
    started = parse_args(
        [
            "race",
            "--init-from",
            "runs/a/best.keras",
            "--teacher",
            "t1.keras",
            "--teacher",
            "t2.keras",
            "--balance-power",
            "0",
            "--aux",
            "gender,age",
            "--size",
            "96",
        ]
    )
    state = RunState(tmp_path / "state.json")
    state.data["settings"] = settings_of(started)
    state.save()

    tokens = ["race", "--resume", "--balance-power", "1", "--epochs", "40"]
    resumed = parse_args(tokens)
    notes = adopt_settings(resumed, RunState(tmp_path / "state.json").data["settings"], given_options(tokens))
    assert notes == ["--balance-power stays 0.0 (the run's own)"]  # only what the command tried to change
    assert resumed.init_from == Path("runs/a/best.keras") and resumed.teacher == [Path("t1.keras"), Path("t2.keras")]
    assert (resumed.balance_power, resumed.aux, resumed.size, resumed.epochs) == (0.0, "gender,age", 96, 40)


def test_a_run_recorded_before_settings_were_stored_keeps_the_command_s_values():
    args = parse_args(["gender", "--resume", "--balance-power", "1"])
    assert adopt_settings(args, {}, {"balance_power"}) == [] and args.balance_power == 1.0
    assert given_options(["gender", "--seed=3", "--aux", "race"]) == {"seed", "aux"}
