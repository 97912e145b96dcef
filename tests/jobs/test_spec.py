"""interp.jobs.spec: job and run names are checked with interp.names (fullmatch, no trailing newline)."""

from __future__ import annotations

import pytest

from interp.interpreters.training import FinetuneConfig
from interp.jobs.spec import EffectsJobConfig, EvaluateJobConfig, JobSpec

FT = FinetuneConfig(dataset="d", out="")


@pytest.mark.parametrize("name", ["run\n", "run\r\n", "../run", "..", "a/b", "-rf", ""])
def test_a_job_name_that_is_not_a_plain_folder_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"^run name must be 1-64 letters"):
        JobSpec(kind="finetune", name=name, finetune=FT)


@pytest.mark.parametrize("run", ["run\n", "../run", "a/b", "shipped:../x", "shipped:"])
def test_an_evaluation_of_a_run_takes_only_a_run_name_a_shipped_one_or_a_base_preset(run: str) -> None:
    with pytest.raises(ValueError, match="run must be a run name, shipped:NAME or base:PRESET"):
        EvaluateJobConfig(run=run)
    assert EvaluateJobConfig(run="shipped:reader-smollm2").run == "shipped:reader-smollm2"
    assert EvaluateJobConfig(run="base:smollm2-135m").run == "base:smollm2-135m"
    assert JobSpec(kind="evaluate", name="ok-1", evaluate=EvaluateJobConfig(run="run-1")).name == "ok-1"


def test_run_ref_names_any_listed_interpreter() -> None:
    assert EvaluateJobConfig.run_ref("shipped", "/x/assets/interpreters/reader-smollm2") == "shipped:reader-smollm2"
    assert EvaluateJobConfig.run_ref("run", "/x/runs/my-run/adapter") == "my-run"
    assert EvaluateJobConfig.run_ref("base", "base:smollm2-135m") == "base:smollm2-135m"
    with pytest.raises(ValueError, match="injected"):
        EvaluateJobConfig.run_ref("injected", "injected:fake")


def test_an_effects_job_takes_an_interpreter_reference_and_sizes() -> None:
    spec = JobSpec(kind="effects", name="fx", effects=EffectsJobConfig(run="shipped:reader-smollm2", n=200))
    assert JobSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="run must be"):
        EffectsJobConfig(run="../x")
    with pytest.raises(ValueError, match="n must be"):
        EffectsJobConfig(run="r", n=0)
    with pytest.raises(ValueError, match="exactly its own config"):
        JobSpec(kind="effects", name="fx", evaluate=EvaluateJobConfig(run="r"))


@pytest.mark.parametrize("eval_set", ["syn_alt", "file:my-set", "mnist_eval"])
def test_an_evaluation_takes_a_held_out_set_or_a_labelled_one_by_name(eval_set: str) -> None:
    assert EvaluateJobConfig(run="r", eval_set=eval_set).eval_set == eval_set


@pytest.mark.parametrize("eval_set", ["syn", "file:", "file:../x", "file:a/b", "/tmp/x.npz"])
def test_an_evaluation_refuses_any_other_set(eval_set: str) -> None:
    with pytest.raises(ValueError, match="eval_set must be one of"):
        EvaluateJobConfig(run="r", eval_set=eval_set)
