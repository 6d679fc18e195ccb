"""The torch optimiser against Darknet's update written out from its C (update_*_layer, adam_update_gpu)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import Darknet, parse_cfg_text
from darknetpy.optim import build_optimizer, clip_weights, first_updated_layer, param_groups, set_learning_rate
from darknetpy.schedule import images_per_update

pytestmark = pytest.mark.unit

# batch=6, subdivisions=4: Darknet's net->batch is 6/4 = 1, so B = 1·4 = 4 images per update (not 6)
NET = """[net]
batch=6
subdivisions=4
width=5
height=5
channels=2
momentum=0.9
decay=0.01
learning_rate=0.1
{extra}
"""
LAYERS = """
[convolutional]
batch_normalize=1
filters=3
size=3
stride=1
pad=1
activation=leaky
learning_rate=0.5

[convolutional]
filters=2
size=1
stride=1
activation=linear

[connected]
output=3
activation=linear
"""
B = 4
# Darknet decays conv/connected weights only; layer 0 has learning_rate=0.5
DECAYED = {"layers.0.weight", "layers.1.weight", "layers.2.block.weight"}
SCALE = {"0": 0.5, "1": 1.0, "2": 1.0}
NAMES = {"layers.0.weight", "layers.0.biases", "layers.0.bn.scales", "layers.1.weight", "layers.1.biases",
         "layers.2.block.weight", "layers.2.block.biases"}


def make(extra: str = "", layers: str = LAYERS, flavor: str = "alexeyab") -> Darknet:
    model = Darknet(parse_cfg_text(NET.format(extra=extra) + layers, "optim.cfg"), flavor=flavor).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model


def sum_gradients(model: Darknet, steps: int, scale: float = 1.0) -> list[dict[str, np.ndarray]]:
    """Per step, a made-up Σ over the B images of ∂L/∂θ for every parameter."""
    rng = np.random.default_rng(1)
    return [{n: scale * rng.standard_normal(tuple(p.shape)) for n, p in model.named_parameters()} for _ in range(steps)]


def torch_steps(model: Darknet, opt: torch.optim.Optimizer, grads, rates) -> dict[str, np.ndarray]:
    params = dict(model.named_parameters())
    for g, lr in zip(grads, rates):
        opt.zero_grad()
        for n, arr in g.items():
            params[n].grad = torch.from_numpy(arr / B)  # what (loss_sum / B).backward() leaves
        set_learning_rate(opt, lr)
        opt.step()
    return {n: p.detach().numpy().copy() for n, p in params.items()}


def test_param_groups_decay_weights_only_and_carry_the_layer_scale():
    model = make()
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {}
    for group in param_groups(model):
        for p in group["params"]:
            seen[names[id(p)]] = (group["weight_decay"], group["lr_scale"])
    assert set(seen) == NAMES
    for n, (decay, scale) in seen.items():
        assert decay == (0.01 if n in DECAYED else 0.0), n
        assert scale == SCALE[n.split(".")[1]], n


def test_sgd_matches_darknets_update_over_three_steps():
    model = make()
    opt = build_optimizer(model)
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["momentum"] == 0.9 and g["dampening"] == 0 and not g["nesterov"] for g in opt.param_groups)
    rates = [0.1, 0.05, 0.02]  # the rate changes between updates; momentum must not depend on it
    grads = sum_gradients(model, 3)
    # Darknet: weight_updates accumulate −Σ∂L/∂θ in backward, then update_convolutional_layer /
    # update_connected_layer with batch = B and learning_rate = rate·learning_rate_scale.
    W = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    U = {n: np.zeros_like(w) for n, w in W.items()}
    for g, rate in zip(grads, rates):
        for n in W:
            U[n] += -g[n]
            eta = rate * SCALE[n.split(".")[1]]
            if n in DECAYED:
                U[n] += -0.01 * B * W[n]  # axpy_cpu(nweights, -decay*batch, weights, 1, weight_updates, 1)
            W[n] += eta / B * U[n]  # axpy_cpu(n, learning_rate/batch, updates, 1, values, 1)
            U[n] *= 0.9  # scal_cpu(n, momentum, updates, 1)
    got = torch_steps(model, opt, grads, rates)
    start = make()
    for n in W:
        assert not np.allclose(W[n], start.state_dict()[n].numpy())  # every parameter moved
        np.testing.assert_allclose(got[n], W[n], rtol=1e-12, atol=1e-14, err_msg=n)


def test_adam_matches_adam_update_gpu_over_two_steps():
    model = make("adam=1\nB1=0.8\nB2=0.95\neps=0.001")
    net = model.net
    assert images_per_update(net) == B
    opt = build_optimizer(model)
    assert isinstance(opt, torch.optim.Adam)
    assert all(g["weight_decay"] == 0.01 for g in opt.param_groups)  # biases and scales decayed too
    rates = [0.1, 0.05]
    grads = sum_gradients(model, 2, scale=4e-3)  # small enough for eps (vs eps/B) to matter
    W = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    m = {n: np.zeros_like(w) for n, w in W.items()}
    v = {n: np.zeros_like(w) for n, w in W.items()}
    for t, (g, rate) in enumerate(zip(grads, rates), start=1):
        for n in W:
            d = -g[n]  # the weight_updates of this update
            eta = rate * SCALE[n.split(".")[1]]
            m[n] *= 0.8
            v[n] *= 0.95
            d = d + -0.01 * B * W[n]  # axpy(n, -decay*batch, w, d): every parameter
            m[n] += (1 - 0.8) * d
            v[n] += (1 - 0.95) * d * d
            mhat = m[n] / (1 - 0.8**t)
            vhat = v[n] / (1 - 0.95**t)
            W[n] += eta * mhat / (np.sqrt(vhat) + 0.001)  # adam_kernel; then d is zeroed
    got = torch_steps(model, opt, grads, rates)
    for n in W:
        np.testing.assert_allclose(got[n], W[n], rtol=1e-10, atol=1e-14, err_msg=n)
    # the same optimiser with eps not divided by B misses Darknet's result
    other = make("adam=1\nB1=0.8\nB2=0.95\neps=0.001")
    groups = param_groups(other)
    wrong = torch_steps(other, torch.optim.Adam(groups, lr=0.1, betas=(0.8, 0.95), eps=0.001), grads, rates)
    assert not np.allclose(wrong["layers.1.weight"], W["layers.1.weight"], rtol=1e-6, atol=0)


def test_set_learning_rate_scales_each_group():
    opt = build_optimizer(make())
    set_learning_rate(opt, 0.02)
    assert sorted({g["lr"] for g in opt.param_groups}) == [pytest.approx(0.01), pytest.approx(0.02)]
    assert all(g["lr"] == pytest.approx(0.02 * g["lr_scale"]) for g in opt.param_groups)


def _trained(model: Darknet, groups) -> set[str]:
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter appears twice"
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[i] for i in ids}


def _layer(name: str) -> int:
    return int(name.split(".")[1])


def test_freeze_leaves_the_first_layers_out():
    model = make()
    trained = _trained(model, param_groups(model, freeze=1))
    assert trained == {n for n in NAMES if _layer(n) >= 1}
    assert [p.requires_grad for p in model.layers[0].parameters()] == [False] * 3
    assert all(p.requires_grad for layer in model.layers[1:] for p in layer.parameters())
    # a later call without freeze makes them trainable again
    assert _trained(model, param_groups(model)) == NAMES
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_parameters_do_not_move():
    model = make()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, freeze=2)
    torch_steps(model, opt, sum_gradients(model, 2), [0.1, 0.1])
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (_layer(n) < 2), n


STOP = LAYERS.replace("[connected]", "[connected]\nstopbackward={value}")


@pytest.mark.parametrize("flavor", ["alexeyab", "pjreddie"])
def test_stopbackward_freezes_the_layers_before_it(flavor):
    model = make(layers=STOP.format(value=1), flavor=flavor)
    assert first_updated_layer(model) == 2
    assert _trained(model, param_groups(model)) == {"layers.2.block.weight", "layers.2.block.biases"}
    assert not any(p.requires_grad for layer in model.layers[:2] for p in layer.parameters())


def test_stopbackward_above_one_is_an_iteration_limit_in_alexeyab_only():
    assert first_updated_layer(make(layers=STOP.format(value=1000), flavor="alexeyab")) == 0
    assert first_updated_layer(make(layers=STOP.format(value=1000), flavor="pjreddie")) == 2


def test_train_only_bn_freezes_that_layer_and_those_before():
    layers = LAYERS.replace("activation=linear\n\n[connected]", "activation=linear\ntrain_only_bn=1\n\n[connected]")
    model = make(layers=layers)
    assert first_updated_layer(model) == 2
    assert first_updated_layer(model, freeze=3) == 3


SHARED = """
[convolutional]
filters=2
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=2
size=1
stride=1
activation=linear

[convolutional]
share_index=0
filters=2
size=3
stride=1
pad=1
activation=leaky
learning_rate=2
"""


def test_shared_parameters_appear_once():
    model = make(layers=SHARED)
    assert model.layers[2].weight is model.layers[0].weight
    groups = param_groups(model)
    assert len(_trained(model, groups)) == len(list(model.parameters())) == 4
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale[id(model.layers[0].weight)] == 1.0  # the first layer holding it
    # layer 0 frozen, but layer 2 (updated) holds its weights: they stay, with layer 2's scale
    groups = param_groups(model, freeze=1)
    assert _trained(model, groups) == {"layers.0.weight", "layers.0.biases", "layers.1.weight", "layers.1.biases"}
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale[id(model.layers[0].weight)] == 2.0
    assert model.layers[0].weight.requires_grad


def test_nothing_left_to_train_is_an_error():
    with pytest.raises(ValueError, match="nothing to train"):
        build_optimizer(make(), freeze=3)


def test_clip_weights_per_layer_alexeyab_and_net_pjreddie():
    model = make(layers=LAYERS.replace("learning_rate=0.5", "learning_rate=0.5\nclip=0.05"))
    biases = model.layers[0].biases.detach().clone()
    other = model.layers[1].weight.detach().clone()
    clip_weights(model)
    assert model.layers[0].weight.abs().max().item() == 0.05
    assert torch.equal(model.layers[0].biases, biases) and torch.equal(model.layers[1].weight, other)
    pj = make("clip=0.2", flavor="pjreddie")
    connected = pj.layers[2].block.weight.detach().clone()
    clip_weights(pj)
    assert max(pj.layers[i].weight.abs().max().item() for i in (0, 1)) == 0.2
    assert torch.equal(pj.layers[2].block.weight, connected)  # only conv weights are clipped
