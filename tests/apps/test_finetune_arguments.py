"""The flags of ``python -m apps.finetune``: mistakes a person can make get one line saying what to change,
never a traceback, and the settings a resume compares are the ones that decide the steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from apps.finetune.arguments import parse_arguments, resume_settings
from apps.finetune.checkpoints import check_same_settings
from apps.finetune.cli import main
from apps.finetune.errors import FinetuneError

BASE = ["--data", "d", "--out", "o", "--steps", "3"]


def error_of(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_steps_and_epochs_together_are_refused(capsys):
    err = error_of([*BASE, "--epochs", "2"], capsys)
    assert "--epochs: not allowed with argument --steps" in err


def test_missing_data_says_to_give_data(capsys):
    err = error_of(["--out", "o", "--steps", "3"], capsys)
    assert "say what to train on: --data PATH" in err


def test_missing_length_says_steps_or_epochs(capsys):
    err = error_of(["--data", "d", "--out", "o"], capsys)
    assert "--steps N or --epochs E" in err


def test_unknown_freeze_mode_lists_the_modes(capsys):
    err = error_of([*BASE, "--freeze", "encoder"], capsys)
    assert "--freeze: invalid choice: 'encoder'" in err
    assert "'image-encoder'" in err and "'all-but-heads'" in err


def test_a_weight_without_data_before_it_is_refused(capsys):
    err = error_of(["--weight", "2", *BASE], capsys)
    assert "--weight must follow the --data it weighs" in err


def test_zero_steps_is_refused(capsys):
    err = error_of(["--data", "d", "--out", "o", "--steps", "0"], capsys)
    assert "--steps: must be at least 1" in err


def test_an_image_size_the_encoder_cannot_take_suggests_one_it_can(capsys):
    err = error_of([*BASE, "--image-size", "500"], capsys)
    assert "--image-size must be a multiple of 32 (the image encoder's stride): try 480 or 512" in err


def test_each_weight_belongs_to_the_data_before_it():
    args = parse_arguments(
        ["--data", "a", "--data", "b", "--weight", "0.5", "--data", "c", "--out", "o", "--epochs", "1"]
    )
    assert args.data == [(Path("a"), 1.0), (Path("b"), 0.5), (Path("c"), 1.0)]


def test_data_that_is_not_there_stops_with_the_accepted_layouts(tmp_path, capsys):
    code = main(
        [
            "--data",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out"),
            "--steps",
            "1",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "There is no file or folder" in err and "JPEGImages/<video>" in err
    assert "Traceback" not in err


def test_two_processes_and_accumulating_two_resume_each_other():
    one = parse_arguments([*BASE, "--accumulate", "2"])
    two = parse_arguments(BASE)
    assert resume_settings(one, 3, world_size=1) == resume_settings(two, 3, world_size=2)


def test_a_resume_with_another_learning_rate_names_the_flag(tmp_path):
    saved = resume_settings(parse_arguments(BASE), 3, 1)
    now = resume_settings(parse_arguments([*BASE, "--lr", "1e-4"]), 3, 1)
    with pytest.raises(FinetuneError) as error:
        check_same_settings(saved, now, tmp_path)
    message = str(error.value)
    assert "--lr: 5e-06 in the saved run, 0.0001 now" in message
    assert "choose another --out" in message


def test_output_and_validation_flags_may_change_on_resume(tmp_path):
    saved = resume_settings(parse_arguments(BASE), 3, 1)
    changed = [*BASE[:3], "o2", *BASE[4:], "--save-every", "7", "--workers", "5", "--precision", "bf16"]
    check_same_settings(saved, resume_settings(parse_arguments(changed), 3, 1), tmp_path)


def test_drop_path_defaults_to_the_official_recipe_and_must_be_a_probability(capsys):
    assert parse_arguments(BASE).drop_path == 0.1
    err = error_of([*BASE, "--drop-path", "1.5"], capsys)
    assert "--drop-path is a probability below 1, got 1.5" in err


def test_the_network_trains_with_the_drop_path_asked_for(tmp_path):
    from apps.finetune.model_setup import build_network

    args = parse_arguments([*BASE, "--drop-path", "0.2", "--image-size", "64"])
    network = build_network("sam2.1_hiera_tiny", None, args, torch.device("cpu"))
    rates = [block.drop_path for block in network.image_encoder.trunk.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
