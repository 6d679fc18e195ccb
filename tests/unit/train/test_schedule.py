"""Darknet's learning-rate policies (get_current_rate) and update counter (get_current_batch)."""
from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest

from darknetpy.cfg import read_cfg
from darknetpy.flavor import ALEXEYAB
from darknetpy.net import NetOptions
from darknetpy.schedule import current_batch, images_per_update, learning_rate

from ...conftest import SHARED, needs_shared

pytestmark = pytest.mark.unit

# Darknet returns the rate as a C float: values agree with the double formulas to float32 precision.
F32 = 1e-6


def approx(x: float):
    return pytest.approx(x, rel=F32, abs=0.0)


def test_burn_in_starts_at_the_first_update_and_uses_power():
    net = NetOptions(learning_rate=0.01, burn_in=1000, power=4.0)
    assert learning_rate(net, 0) == 0.0
    assert learning_rate(net, 1) == approx(0.01 * (1 / 1000) ** 4)
    assert learning_rate(net, 500) == approx(0.01 * 0.5**4)
    assert learning_rate(net, 999) == approx(0.01 * 0.999**4)
    assert learning_rate(net, 1000) == approx(0.01)
    net.power = 2.0
    assert learning_rate(net, 250) == approx(0.01 * 0.25**2)


def test_constant():
    net = NetOptions(learning_rate=0.003, policy="constant")
    assert [learning_rate(net, b) for b in (0, 1, 10**6)] == [approx(0.003)] * 3


def test_step_uses_integer_division():
    net = NetOptions(learning_rate=0.1, policy="step", step=100, scale=0.5)
    for b, k in ((0, 0), (99, 0), (100, 1), (199, 1), (250, 2), (1000, 10)):
        assert learning_rate(net, b) == approx(0.1 * 0.5**k), b


def test_steps_multiply_every_reached_scale():
    net = NetOptions(learning_rate=0.1, policy="steps", steps=[100, 200, 300], scales=[0.1, 10.0, 0.5])
    expected = {0: 0.1, 99: 0.1, 100: 0.01, 199: 0.01, 200: 0.1, 299: 0.1, 300: 0.05, 10**6: 0.05}
    for b, rate in expected.items():
        assert learning_rate(net, b) == approx(rate), b


def test_burn_in_comes_before_the_policy():
    net = NetOptions(learning_rate=0.1, policy="steps", steps=[10], scales=[0.1], burn_in=20, power=1.0)
    assert learning_rate(net, 15) == approx(0.1 * 15 / 20)  # the step at 10 is ignored during burn-in
    assert learning_rate(net, 20) == approx(0.01)


def test_exp_with_gamma_a_c_float():
    net = NetOptions(learning_rate=0.1, policy="exp", gamma=0.999)
    gamma = float(np.float32(0.999))  # net->gamma is a float: 0.99900001...
    for b in (0, 1, 1000, 5000):
        assert learning_rate(net, b) == approx(0.1 * gamma**b), b
    assert learning_rate(net, 5000) != approx(0.1 * 0.999**5000)  # the float gamma shows after 5000 powers


def test_poly_in_c_floats():
    net = NetOptions(learning_rate=0.1, policy="poly", power=2.0, max_batches=1000)
    for b in (0, 250, 500, 999):
        base = np.float32(1) - np.float32(b) / np.float32(1000)  # 1 - (float)batch_num / max_batches
        assert learning_rate(net, b) == approx(0.1 * float(base) ** 2), b
    assert learning_rate(net, 999) != approx(0.1 * 0.001**2)  # 1 - 0.999f is 0.00099998...
    assert learning_rate(net, 1000) == 0.0


def test_sigmoid_and_pjreddies_unsigned_difference():
    net = NetOptions(learning_rate=0.1, policy="sigmoid", gamma=0.01, step=500)
    for b in (500, 700, 2000):
        want = 0.1 / (1 + math.exp(0.01 * (b - 500)))
        assert learning_rate(net, b) == approx(want)
        assert learning_rate(net, b, flavor="pjreddie") == approx(want)
    assert learning_rate(net, 500) == approx(0.05)
    assert learning_rate(net, 300) == approx(0.1 / (1 + math.exp(-2.0)))
    # pjreddie: size_t batch_num - step wraps to ~1.8e19, exp overflows, the rate is 0 before `step`
    assert learning_rate(net, 300, flavor="pjreddie") == 0.0


def test_random_is_seeded_and_redrawn_each_call():
    net = NetOptions(learning_rate=0.1, policy="random", power=3.0)
    mine, ref = random.Random(11), random.Random(11)
    got = [learning_rate(net, 50, mine) for _ in range(4)]
    want = [0.1 * float(np.float32(ref.random())) ** 3 for _ in range(4)]
    assert got == [approx(w) for w in want]
    assert len(set(got)) == 4


def test_random_draws_nothing_during_burn_in():
    net = NetOptions(learning_rate=0.1, policy="random", burn_in=10, power=1.0)
    rng = random.Random(3)
    state = rng.getstate()
    assert learning_rate(net, 5, rng) == approx(0.05)
    assert rng.getstate() == state


def _sgdr_reference(b: int, lr: float, lr_min: float, cycle: int, mult: int) -> float:
    """Cycles [0, c], (c, c+c·m], ... ; cosine from lr to lr_min inside each, written out directly."""
    end, length = cycle, cycle
    start = 0
    while b > end:
        start = end
        length *= mult
        end = start + length
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * (b - start) / length))


def test_sgdr_cycles_grow_and_restart():
    net = NetOptions(
        learning_rate=0.01, policy="sgdr", learning_rate_min=0.0001, sgdr_cycle=100, sgdr_mult=2, max_batches=2000
    )
    mid = 0.0001 + 0.5 * (0.01 - 0.0001)
    assert learning_rate(net, 0) == approx(0.01)
    assert learning_rate(net, 50) == approx(mid)
    assert learning_rate(net, 100) == approx(0.0001)  # a cycle includes its last iteration
    assert learning_rate(net, 101) > 0.0099  # restart: cycle 2 is (100, 300]
    assert learning_rate(net, 200) == approx(mid)
    assert learning_rate(net, 300) == approx(0.0001)
    assert learning_rate(net, 500) == approx(mid)  # cycle 3 is (300, 700]
    for b in (1, 37, 99, 101, 150, 299, 301, 699, 700, 701, 1234):
        assert learning_rate(net, b) == approx(_sgdr_reference(b, 0.01, 0.0001, 100, 2)), b


def test_sgdr_ignores_steps_scales_and_seq_scales():
    plain = NetOptions(learning_rate=0.01, policy="sgdr", sgdr_cycle=50, sgdr_mult=3)
    stepped = NetOptions(
        learning_rate=0.01, policy="sgdr", sgdr_cycle=50, sgdr_mult=3, steps=[20, 80], scales=[0.1, 0.1], seq_scales=[2, 2]
    )
    assert [learning_rate(stepped, b) for b in range(0, 400, 7)] == [learning_rate(plain, b) for b in range(0, 400, 7)]


def test_sgdr_with_burn_in():
    net = NetOptions(learning_rate=0.01, policy="sgdr", sgdr_cycle=100, burn_in=10, power=4.0)
    assert learning_rate(net, 5) == approx(0.01 * 0.5**4)
    assert learning_rate(net, 10) == approx(_sgdr_reference(10, 0.01, 0.00001, 100, 2))


def test_impossible_settings_raise_instead_of_hanging():
    with pytest.raises(ValueError, match="sgdr_cycle"):
        learning_rate(NetOptions(policy="sgdr", sgdr_cycle=0), 5)
    with pytest.raises(ValueError, match="division by zero"):
        learning_rate(NetOptions(policy="step", step=0), 5)


def test_current_batch_counts_darknets_images_per_update():
    assert images_per_update(NetOptions(batch=64, subdivisions=16)) == 64
    odd = NetOptions(batch=10, subdivisions=4)  # net->batch = 10/4 = 2: 8 images per update
    assert images_per_update(odd) == 8
    assert [current_batch(s, odd) for s in (0, 7, 8, 15, 16, 80)] == [0, 0, 1, 1, 2, 10]
    assert images_per_update(NetOptions(batch=4, subdivisions=2, time_steps=3)) == 12


# ---- the BCCD run of AlexeyAB's darknet: every printed rate ----------------------------------------------
_LINE = re.compile(r"^\s*(\d+): [-\d.]+, [-\d.]+ avg loss, ([\d.]+) rate, [\d.]+ seconds, (\d+) images")


@needs_shared("runs/bccd-darknet")
def test_bccd_rates_match_darknets_log():
    run = SHARED / "runs" / "bccd-darknet"
    net = NetOptions.from_section(read_cfg(run / "bccd-fastest.cfg").net, ALEXEYAB)
    assert (net.learning_rate, net.burn_in, net.steps, net.scales) == (0.001, 100, [320, 360], [0.1, 0.1])
    printed = {}
    for line in (run / "train-iterations.log").read_text().splitlines():
        m = _LINE.match(line)
        if m:
            iteration, rate, images = int(m[1]), m[2], int(m[3])
            # Darknet prints get_current_rate after the update, when seen = iteration·batch·subdivisions
            assert current_batch(images, net) == iteration
            printed[iteration] = rate
    assert sorted(printed) == list(range(1, 401))
    for b in (1, 50, 99, 100, 319, 320, 359, 360, 400):
        assert f"{learning_rate(net, b):.6f}" == printed[b], b
    assert {b: f"{learning_rate(net, b):.6f}" for b in printed} == printed
    # the printed rate is that of the update just made (batch_num = iteration), not of the one before
    assert f"{learning_rate(net, 99):.6f}" != printed[100]
    assert [printed[b] for b in (1, 50, 99, 100, 320, 360)] == [
        "0.000000", "0.000063", "0.000961", "0.001000", "0.000100", "0.000010"
    ]
