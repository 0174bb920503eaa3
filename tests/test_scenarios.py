"""The measured scenarios of meshedge.sim.scenarios, and the simulator CLI, at tiny sizes."""

from __future__ import annotations

import importlib
import inspect
import math

import pytest

from meshedge import LocalProtocolError
from meshedge.core._timing import Timing
from meshedge.sim.__main__ import main
from meshedge.sim.scenarios import (
    bandwidth,
    convergence_model,
    dissemination,
    failure_detection,
    false_positive_run,
    false_positives,
    partition_heal,
)


def test_convergence_model_matches_the_closed_form() -> None:
    model = convergence_model(1000, Timing.lan(), loss=0.0)
    # beta * n = 3 * 0.5 = 1.5 per round; 100 % is infected(r) = 999.5.
    rounds_all = math.log(1001 * 999.5 / 0.5) / 1.5
    assert model.seconds_all == pytest.approx(rounds_all * 0.2)
    assert model.seconds_9999 == model.seconds_all  # 99.99 % of 1000 nodes is all of them
    assert model.seconds_99 < model.seconds_all
    assert model.lower_bound == pytest.approx(math.log(1000, 4) * 0.2)
    assert convergence_model(1000, Timing.lan(), loss=0.1).seconds_all > model.seconds_all


def test_dissemination_reaches_everyone_and_is_deterministic() -> None:
    first = dissemination(20, loss=0.1, seed=3)
    assert first.informed == 20
    assert 0 < first.informed_99 <= first.informed_9999 <= first.all_informed < 5
    assert first == dissemination(20, loss=0.1, seed=3)


def test_failure_detection_orders_suspicion_before_death() -> None:
    result = failure_detection(12, seed=2, crashes=2)
    assert len(result.first_suspicion) == len(result.all_dead) == 2
    for suspected, first_dead, all_dead in zip(
        result.first_suspicion, result.first_dead, result.all_dead, strict=True
    ):
        assert 0 < suspected < first_dead <= all_dead < math.inf
    minimum, _ = Timing.lan().suspicion_timeouts(12)
    assert min(result.first_dead) - max(result.first_suspicion) >= minimum - 3.0
    assert result.expected_first_suspicion == pytest.approx(math.e / (math.e - 1))


def test_a_frozen_node_is_suspected_and_the_runs_differ_in_lifeguard() -> None:
    single = false_positive_run(10, loss=0.1, seed=1, duration=30.0)
    assert single.lifeguard is True
    assert single.frozen_node_suspicions > 0
    comparison = false_positives(10, loss=0.1, seed=1, duration=30.0)
    assert comparison.lifeguard == single
    assert comparison.swim.lifeguard is False
    assert comparison.lifeguard.healthy_declared_dead <= comparison.lifeguard.false_deaths


def test_bandwidth_counts_the_probe_traffic() -> None:
    result = bandwidth(10, seed=1, duration=10.0)
    # Every node probes once a second and answers about one probe: two datagrams a second.
    assert result.mean_packets_per_second == pytest.approx(2.0, abs=0.3)
    assert 0 < result.mean_bytes_per_second <= result.p99_bytes_per_second
    assert result.p99_bytes_per_second <= result.max_bytes_per_second


def test_partition_separates_then_heals() -> None:
    result = partition_heal(10, seed=1, partition=40.0)
    assert result.halves == (5, 5)
    assert result.separated < 40.0
    assert result.healed < math.inf


@pytest.mark.parametrize(
    "call",
    [
        lambda: dissemination(1),
        lambda: dissemination(10, loss=1.0),
        lambda: failure_detection(3, crashes=2),
        lambda: false_positive_run(10, freeze=10.0, every=10.0),
        lambda: bandwidth(10, duration=0.0),
        lambda: partition_heal(10, partition=-1.0),
    ],
)
def test_misuse_is_a_local_error(call: object) -> None:
    with pytest.raises(LocalProtocolError):
        call()  # type: ignore[operator]


def test_cli_prints_the_chosen_figures(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["--nodes", "10", "--loss", "5%", "--duration", "5", "--only", "dissemination,bandwidth"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "N=10, loss 5.0%" in out
    assert "every node informed" in out
    assert "B/s" in out
    assert "failure detection" not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--nodes", "2"],
        ["--nodes", "10", "--loss", "1"],
        ["--nodes", "10", "--timing", "moon"],
        ["--nodes", "10", "--only", "everything"],
        ["--nodes", "10", "--duration", "0"],
        ["--loss", "0.1"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


#: Where each public name of the simulator is imported from by users, tests, examples and
#: benchmarks; the modules behind them may change, these import paths may not.
PUBLIC_PATHS = {
    "meshedge.sim": ("Delivery", "SimStatistics", "Simulation", "SimulationTimeout"),
    "meshedge.sim.scenarios": (
        "CHECK_EVERY",
        "DEFAULT_WARMUP",
        "SWIM_FIRST_DETECTION_PERIODS",
        "BandwidthResult",
        "ConvergenceModel",
        "DisseminationResult",
        "FailureDetectionResult",
        "FalsePositiveComparison",
        "FalsePositiveResult",
        "PartitionHealResult",
        "bandwidth",
        "convergence_model",
        "dissemination",
        "failure_detection",
        "false_positive_run",
        "false_positives",
        "partition_heal",
    ),
    "meshedge.sim.__main__": ("SCENARIOS", "main"),
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC_PATHS))
def test_public_names_stay_importable_where_they_are_and_are_documented(
    module_name: str,
) -> None:
    module = importlib.import_module(module_name)
    for name in {*PUBLIC_PATHS[module_name], *getattr(module, "__all__", ())}:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"
