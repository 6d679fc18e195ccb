"""Recurrent sections: [rnn], [gru], [lstm], [crnn], and AlexeyAB's [conv_lstm], [history].

Forward passes are checked against literal numpy re-implementations of Darknet's CPU loops
(``forward_rnn_layer``, ``forward_gru_layer``, ``forward_lstm_layer``, ``forward_crnn_layer``,
``forward_conv_lstm_layer``, ``forward_history_layer``) in float64, on 2 time steps of tiny sizes.
"""
from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, Darknet, DarknetError, FlavorError, ShapeError, parse_cfg_text
from darknetpy.cfg import UnusedKeyWarning
from darknetpy.summary import shape_model, summary_json
from tests.conftest import ZOO, zoo_expected, zoo_flavor

pytestmark = pytest.mark.unit

FLAVORS = ("pjreddie", "alexeyab")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def build(text: str, flavor: str) -> Darknet:
    return Darknet(parse_cfg_text(text, "test.cfg"), flavor=flavor)


def randomize(model: Darknet, seed: int = 0) -> Darknet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "rolling_variance" in name:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
    return model


def npy(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


ACT = {
    "linear": lambda v: v,
    "logistic": sig,
    "loggy": lambda v: 2 * sig(v) - 1,
    "leaky": lambda v: np.where(v > 0, v, 0.1 * v),
    "tanh": np.tanh,
}


def np_bn(y, p, flavor, train, axes):
    """normalize_cpu with rolling (inference) or batch statistics (training, unbiased variance)."""
    shape = [1] * y.ndim
    shape[1] = -1
    if train:
        mean, var = y.mean(axis=axes), y.var(axis=axes, ddof=1)
    else:
        mean, var = p["mean"], p["var"]
    mean, var = mean.reshape(shape), var.reshape(shape)
    if flavor == "pjreddie":
        yhat = (y - mean) / (np.sqrt(var) + 1e-6)
    else:
        yhat = (y - mean) / np.sqrt(var + 1e-5)
    return yhat * p["scale"].reshape(shape) + p["b"].reshape(shape)


def params(block) -> dict:
    p = {"W": npy(block.weight), "b": npy(block.biases), "bn": block.bn is not None}
    if block.bn is not None:
        p.update(scale=npy(block.bn.scales), mean=npy(block.bn.rolling_mean), var=npy(block.bn.rolling_variance))
    return p


def np_connected(x, p, act, flavor, train=False):
    """forward_connected_layer: gemm, BN or +bias, activation."""
    y = x @ p["W"].T
    y = np_bn(y, p, flavor, train, (0,)) if p["bn"] else y + p["b"]
    return ACT[act](y)


def np_conv(x, p, act, flavor, train=False, stride=1, pad=1):
    """forward_convolutional_layer (groups 1) as explicit loops over output pixels."""
    W = p["W"]
    B, C, H, Wd = x.shape
    n, _, k, _ = W.shape
    oh, ow = (H + 2 * pad - k) // stride + 1, (Wd + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    y = np.zeros((B, n, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            y[:, :, i, j] = np.einsum("bckl,nckl->bn", patch, W)
    y = np_bn(y, p, flavor, train, (0, 2, 3)) if p["bn"] else y + p["b"].reshape(1, -1, 1, 1)
    return ACT[act](y)


def close(got: torch.Tensor, want: np.ndarray) -> None:
    np.testing.assert_allclose(got.detach().double().numpy().reshape(want.shape), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# numpy re-implementations of the C loops (state in, outputs and state out)
# ---------------------------------------------------------------------------------------------
def ref_rnn(x, steps, layer, flavor, state, train=False):
    inp, slf, out = params(layer.input_layer), params(layer.self_layer), params(layer.output_layer)
    act, self_act = layer.input_layer.activation, layer.self_layer.activation
    batch = x.shape[0] // steps
    if train:
        state = np.zeros_like(state)  # if(state.train) fill_cpu(l.hidden*l.batch, 0, l.state, 1)
    y = []
    for i in range(steps):
        a = np_connected(x[i * batch : (i + 1) * batch], inp, act, flavor, train)
        b = np_connected(state, slf, self_act, flavor, train)
        new = state.copy() if layer.shortcut else np.zeros_like(state)
        new += a
        new += b
        state = new
        y.append(np_connected(state, out, act, flavor, train))
    return np.concatenate(y), state


def ref_gru(x, steps, layer, flavor, state, tanh=False):
    P = {k: params(getattr(layer, k)) for k in ("uz", "ur", "uh", "wz", "wr", "wh")}
    batch = x.shape[0] // steps
    y = []
    for i in range(steps):
        xi = x[i * batch : (i + 1) * batch]
        sz, sr = np_connected(state, P["wz"], "linear", flavor), np_connected(state, P["wr"], "linear", flavor)
        iz, ir, ih = (np_connected(xi, P[k], "linear", flavor) for k in ("uz", "ur", "uh"))
        z = sig(iz + sz)
        r = sig(ir + sr)
        forgot = state * r
        h = ih + np_connected(forgot, P["wh"], "linear", flavor)
        h = np.tanh(h) if tanh else sig(h)
        out = z * state + (1 - z) * h  # weighted_sum_cpu
        state = out.copy()
        y.append(out)
    return np.concatenate(y), state


def ref_lstm(x, steps, layer, flavor, h, c):
    P = {k: params(getattr(layer, k)) for k in ("wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo")}
    batch = x.shape[0] // steps
    y = []
    for i in range(steps):
        xi = x[i * batch : (i + 1) * batch]
        w = {k: np_connected(h, P["w" + k], "linear", flavor) for k in "figo"}
        u = {k: np_connected(xi, P["u" + k], "linear", flavor) for k in "figo"}
        f, ii, g, o = sig(w["f"] + u["f"]), sig(w["i"] + u["i"]), np.tanh(w["g"] + u["g"]), sig(w["o"] + u["o"])
        c = c * f + ii * g
        h = np.tanh(c) * o
        y.append(h)
    return np.concatenate(y), h, c


def ref_crnn(x, steps, layer, flavor, state, train=False):
    inp, slf, out = params(layer.input_layer), params(layer.self_layer), params(layer.output_layer)
    act = layer.input_layer.activation
    pad, stride = layer.padding, layer.stride
    batch = x.shape[0] // steps
    if train:
        state = np.zeros_like(state)
    y = []
    for i in range(steps):
        a = np_conv(x[i * batch : (i + 1) * batch], inp, act, flavor, train, stride, pad)
        b = np_conv(state, slf, act, flavor, train, stride, pad)
        new = state.copy() if layer.shortcut else np.zeros_like(state)
        new += a
        new += b
        state = new
        y.append(np_conv(state, out, act, flavor, train, stride, pad))
    return np.concatenate(y), state


def ref_conv_lstm(x, steps, layer, flavor, h, c):
    names = ["wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"] + (["vf", "vi", "vo"] if layer.peephole else [])
    P = {k: params(getattr(layer, k)) for k in names}
    act, pad = layer.uf.activation, layer.padding
    conv = lambda v, k: np_conv(v, P[k], act, flavor, False, 1, pad)  # noqa: E731
    batch = x.shape[0] // steps
    y = []
    for i in range(steps):
        xi = x[i * batch : (i + 1) * batch]
        f = conv(h, "wf") + conv(xi, "uf")
        ii = conv(h, "wi") + conv(xi, "ui")
        if layer.peephole:
            f = f + conv(c, "vf")
            ii = ii + conv(c, "vi")
        g = np.tanh(conv(h, "wg") + conv(xi, "ug"))
        f, ii = sig(f), sig(ii)
        c = c * f + ii * g
        o = conv(h, "wo") + conv(xi, "uo")
        if layer.peephole:
            o = o + conv(c, "vo")
        h = np.tanh(c) * sig(o)
        a = layer.state_constrain
        if a:
            c = np.fmin(a, np.fmax(-a, c))
        y.append(h)
    return np.concatenate(y), h, c


# ---------------------------------------------------------------------------------------------
# cfgs
# ---------------------------------------------------------------------------------------------
def flat_net(steps: int, inputs: int = 5, batch: int = 2) -> str:
    return f"[net]\ninputs={inputs}\nbatch={batch}\nsubdivisions=1\ntime_steps={steps}\n"


def image_net(steps: int, c: int = 2, hw: int = 4, batch: int = 2) -> str:
    return f"[net]\nwidth={hw}\nheight={hw}\nchannels={c}\nbatch={batch}\ntime_steps={steps}\n"


RNN_PJ = flat_net(2) + "[rnn]\noutput=3\nactivation=leaky\nbatch_normalize=1\nshortcut={sc}\n"
RNN_AB = flat_net(2) + "[rnn]\noutput=3\nhidden=4\nactivation=leaky\nbatch_normalize=1\nshortcut={sc}\nlogistic=1\n"
CRNN_PJ = image_net(2) + "[crnn]\noutput_filters=3\nhidden_filters=2\nactivation=leaky\nbatch_normalize=1\nshortcut=1\n"
CRNN_AB = image_net(2) + "[crnn]\nsize=3\npad=1\noutput=3\nhidden=2\nactivation=leaky\nbatch_normalize=1\nshortcut=1\n"


# ---------------------------------------------------------------------------------------------
# defaults and shapes per fork
# ---------------------------------------------------------------------------------------------
def test_pjreddie_rnn_ignores_hidden_and_logistic():
    with pytest.warns(UnusedKeyWarning, match="hidden"):
        model = build(flat_net(1) + "[rnn]\noutput=3\nhidden=7\n", "pjreddie")
    layer = model.layers[0]
    assert layer.hidden == 3  # make_rnn_layer(batch, inputs, output, ...): the state has `output` units
    assert layer.self_layer.weight.shape == (3, 3)
    assert layer.input_layer.activation == "logistic"  # parse_rnn default activation


def test_alexeyab_rnn_reads_hidden_default_1_and_logistic():
    layer = build(flat_net(1) + "[rnn]\noutput=3\n", "alexeyab").layers[0]
    assert layer.hidden == 1
    assert layer.input_layer.weight.shape == (1, 5) and layer.output_layer.weight.shape == (3, 1)
    for value, act in (("0", "leaky"), ("1", "logistic"), ("2", "loggy")):
        layer = build(flat_net(1) + f"[rnn]\noutput=3\nhidden=4\nactivation=leaky\nlogistic={value}\n", "alexeyab").layers[0]
        assert layer.self_layer.activation == act
        assert layer.input_layer.activation == layer.output_layer.activation == "leaky"


@pytest.mark.parametrize("section", ["rnn", "gru", "lstm"])
def test_flat_recurrent_out_shape_per_fork(section):
    pj = build(flat_net(1) + f"[{section}]\noutput=3\n", "pjreddie").layers[0]
    ab = build(flat_net(1) + f"[{section}]\noutput=3\n", "alexeyab").layers[0]
    assert pj.out_shape == (0, 0, 0) and pj.outputs == 3
    # AlexeyAB's make_rnn_layer/make_lstm_layer set l.out_w = l.out_h = 1, l.out_c = outputs; make_gru_layer does not
    assert ab.out_shape == ((0, 0, 0) if section == "gru" else (3, 1, 1))
    assert ab.outputs == 3


def test_gru_tanh_is_a_pjreddie_key():
    assert build(flat_net(1) + "[gru]\noutput=3\ntanh=1\n", "pjreddie").layers[0].tanh == 1
    assert build(flat_net(1) + "[gru]\noutput=3\n", "pjreddie").layers[0].tanh == 0
    with pytest.warns(UnusedKeyWarning, match="tanh"):
        layer = build(flat_net(1) + "[gru]\noutput=3\ntanh=1\n", "alexeyab").layers[0]
    assert layer.tanh == 0


def test_pjreddie_crnn_keys_and_fixed_3x3():
    layer = build(image_net(1) + "[crnn]\n", "pjreddie").layers[0]
    assert (layer.hidden, layer.out_shape) == (1, (1, 4, 4))  # output_filters=1, hidden_filters=1
    assert (layer.size, layer.stride, layer.padding) == (3, 1, 1)
    assert layer.input_layer.activation == "logistic"
    with pytest.warns(UnusedKeyWarning):  # pjreddie reads output_filters/hidden_filters, not output/size
        layer = build(image_net(1) + "[crnn]\noutput=5\nsize=1\noutput_filters=3\nhidden_filters=2\n", "pjreddie").layers[0]
    assert (layer.hidden, layer.out_shape, layer.size) == (2, (3, 4, 4), 3)


def test_alexeyab_crnn_keys():
    layer = build(image_net(1) + "[crnn]\nsize=1\noutput=3\nhidden=2\ngroups=1\n", "alexeyab").layers[0]
    assert (layer.size, layer.padding, layer.hidden, layer.out_shape) == (1, 0, 2, (3, 4, 4))
    assert layer.input_layer.weight.shape == (2, 2, 1, 1)
    layer = build(image_net(1) + "[crnn]\npad=1\n", "alexeyab").layers[0]  # size defaults to 3
    assert (layer.size, layer.padding, layer.hidden, layer.out_shape) == (3, 1, 1, (1, 4, 4))


def test_alexeyab_crnn_default_pad_does_not_keep_size():
    # size=3, pad=0 (the defaults) shrink 4x4 to 2x2: make_crnn_layer's assert fails in Darknet
    with pytest.raises(ShapeError, match=r"test.cfg:\d+: \[crnn #0\].*feeds its state back"):
        build(image_net(1) + "[crnn]\noutput=2\n", "alexeyab")


def test_conv_lstm_defaults():
    layer = build(image_net(3) + "[conv_lstm]\npad=1\noutput=2\n", "alexeyab").layers[0]
    assert layer.state_constrain == 3 * 32  # time_steps*32
    assert layer.uf.activation == "linear" and layer.peephole == 0
    assert layer.block_order == ("wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo")
    assert layer.out_shape == (2, 4, 4)
    peep = build(image_net(1) + "[conv_lstm]\npad=1\noutput=2\npeephole=1\n", "alexeyab").layers[0]
    assert peep.block_order[:3] == ("vf", "vi", "vo")


def test_history_shape():
    layer = build(image_net(2, c=3) + "[history]\n", "alexeyab").layers[0]
    assert layer.history_size == 4 and layer.out_shape == (12, 4, 4) and layer.outputs == 12 * 16


def test_zoo_recurrent_cfgs_match_darknet():
    expected = zoo_expected()
    names = [n for n in expected if expected[n]["darknet"] == "ok" and any(k in n for k in ("rnn", "gru", "occlusion"))]
    assert len(names) >= 4
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = summary_json(shape_model(ZOO / name, zoo_flavor(name)))
        got = [[l["type"], l["out_c"], l["out_h"], l["out_w"]] for l in summary["layers"]]
        assert got == expected[name]["layers"], name
        assert summary["weights_bytes"] == expected[name]["weights_bytes"], name


@pytest.mark.parametrize("name", ["rnn.cfg", "rnn.train.cfg", "gru.cfg", "lstm.train.cfg", "crnn.train.cfg"])
def test_alexeyab_rejected_zoo_cfgs_never_crash(name):
    # AlexeyAB's darknet stops on these with SIGFPE (avg_outputs / avg_counter in parse_network_cfg)
    path = ZOO / "alexeyab" / name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = shape_model(path, "alexeyab")
    except DarknetError as err:
        assert str(err).startswith(str(path))
    else:
        assert model.layers[-1].section_type == "cost"


# ---------------------------------------------------------------------------------------------
# forward vs the C loops
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("shortcut", [0, 1])
def test_rnn_inference_matches_c_loops_and_carries_state(flavor, shortcut):
    text = (RNN_PJ if flavor == "pjreddie" else RNN_AB).format(sc=shortcut)
    model = randomize(build(text, flavor)).eval()
    layer = model.layers[0]
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    state = np.zeros((2, layer.hidden))
    want1, state = ref_rnn(npy(x1), 2, layer, flavor, state)
    want2, state = ref_rnn(npy(x2), 2, layer, flavor, state)  # l.state carries over in inference
    with torch.no_grad():
        close(model(x1), want1)
        close(model(x2), want2)
    close(layer.state[0], state)
    layer.reset_state()
    with torch.no_grad():
        close(model(x1), want1)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_rnn_training_uses_batch_statistics_and_zero_state(flavor):
    text = (RNN_PJ if flavor == "pjreddie" else RNN_AB).format(sc=1)
    model = randomize(build(text, flavor))
    layer = model.layers[0]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 5, generator=g)
    model.eval()
    with torch.no_grad():
        model(torch.randn(4, 5, generator=g))  # leaves a non-zero state behind
    assert layer.state is not None and float(layer.state[0].abs().sum()) > 0
    model.train()
    mean_before = layer.input_layer.bn.rolling_mean.clone()
    want, _ = ref_rnn(npy(x), 2, layer, flavor, np.ones((2, layer.hidden)), train=True)
    close(model(x), want)  # starts from zeros whatever was kept
    assert layer.state is None  # a training call leaves l.state (slot 0) zero
    assert not torch.equal(mean_before, layer.input_layer.bn.rolling_mean)  # rolling stats moved (once per step)
    close(model(x), want)


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("train", [False, True])
def test_gru_matches_c_loops_and_carries_state(flavor, train):
    tanh = "tanh=1\n" if flavor == "pjreddie" else ""
    model = randomize(build(flat_net(2) + "[gru]\noutput=3\n" + tanh, flavor)).train(train)
    layer = model.layers[0]
    g = torch.Generator().manual_seed(3)
    x1, x2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    state = np.zeros((2, 3))
    want1, state = ref_gru(npy(x1), 2, layer, flavor, state, tanh=bool(tanh))
    want2, state = ref_gru(npy(x2), 2, layer, flavor, state, tanh=bool(tanh))
    close(model(x1), want1)
    close(model(x2), want2)  # forward_gru_layer never zeroes l.state, in training either
    close(layer.state[0], state)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_lstm_matches_c_loops_and_carries_state(flavor):
    model = randomize(build(flat_net(2) + "[lstm]\noutput=3\nbatch_normalize=1\n", flavor)).eval()
    layer = model.layers[0]
    g = torch.Generator().manual_seed(4)
    x1, x2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    h = c = np.zeros((2, 3))
    want1, h, c = ref_lstm(npy(x1), 2, layer, flavor, h, c)
    want2, h, c = ref_lstm(npy(x2), 2, layer, flavor, h, c)
    with torch.no_grad():
        close(model(x1), want1)
        close(model(x2), want2)
    close(layer.state[0], h)
    close(layer.state[1], c)


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("train", [False, True])
def test_crnn_matches_c_loops(flavor, train):
    model = randomize(build(CRNN_PJ if flavor == "pjreddie" else CRNN_AB, flavor))
    layer = model.layers[0]
    g = torch.Generator().manual_seed(5)
    x1, x2 = torch.randn(4, 2, 4, 4, generator=g), torch.randn(4, 2, 4, 4, generator=g)
    state = np.zeros((2, 2, 4, 4))
    model.train(train)
    want1, state = ref_crnn(npy(x1), 2, layer, flavor, state, train)
    want2, state = ref_crnn(npy(x2), 2, layer, flavor, state, train)
    y1 = model(x1)
    assert tuple(y1.shape) == (4, 3, 4, 4)
    close(y1, want1)
    close(model(x2), want2)
    if train:
        assert layer.state is None
    else:
        close(layer.state[0], state)


def test_conv_lstm_matches_c_loops():
    text = image_net(2) + "[conv_lstm]\npad=1\noutput=3\npeephole=1\nbatch_normalize=1\nactivation=leaky\nstate_constrain=1\n"
    model = randomize(build(text, "alexeyab")).eval()
    layer = model.layers[0]
    with torch.no_grad():  # f, i, g near 1: the cell grows past state_constrain=1
        for name in ("uf", "ui", "ug"):
            getattr(layer, name).biases.add_(4.0)
    g = torch.Generator().manual_seed(6)
    x1, x2 = torch.randn(4, 2, 4, 4, generator=g), torch.randn(4, 2, 4, 4, generator=g)
    h = c = np.zeros((2, 3, 4, 4))
    want1, h, c = ref_conv_lstm(npy(x1), 2, layer, "alexeyab", h, c)
    want2, h, c = ref_conv_lstm(npy(x2), 2, layer, "alexeyab", h, c)
    assert np.abs(c).max() == 1.0  # state_constrain=1 clamps the cell
    with torch.no_grad():
        close(model(x1), want1)
        close(model(x2), want2)
    close(layer.state[1], c)


def test_history_stacks_previous_steps():
    model = build(image_net(2, c=1, hw=2, batch=2) + "[history]\nhistory_size=3\n", "alexeyab")
    x1 = torch.arange(16, dtype=torch.float32).reshape(4, 1, 2, 2)  # step 0: rows 0,1; step 1: rows 2,3
    x2 = 100 + x1
    y1, y2 = model(x1), model(x2)
    assert tuple(y1.shape) == (4, 3, 2, 2)
    zero = torch.zeros(1, 2, 2)
    for b in range(2):
        assert torch.equal(y1[b], torch.cat([x1[b], zero, zero]))
        assert torch.equal(y1[2 + b], torch.cat([x1[2 + b], x1[b], zero]))
        # the next call continues from the last step of this one (l.prev_state_cpu)
        assert torch.equal(y2[b], torch.cat([x2[b], x1[2 + b], x1[b]]))
        assert torch.equal(y2[2 + b], torch.cat([x2[2 + b], x2[b], x1[2 + b]]))


def test_history_with_one_time_step_copies_the_flat_input():
    model = build(image_net(1, c=1, hw=2, batch=2) + "[history]\nhistory_size=2\n", "alexeyab")
    x = torch.arange(1, 9, dtype=torch.float32).reshape(2, 1, 2, 2)
    y = model(x).reshape(-1)
    # copy_cpu(l.inputs*l.batch, input, output): the inputs fill the start of the whole buffer
    assert torch.equal(y[:8], x.reshape(-1)) and torch.equal(y[8:], torch.zeros(8))


def test_time_steps_one_streams_state_like_one_call():
    one = randomize(build(flat_net(1, batch=1) + "[lstm]\noutput=3\n", "pjreddie"), seed=7).eval()
    two = build(flat_net(2, batch=1) + "[lstm]\noutput=3\n", "pjreddie").eval()
    two.load_state_dict(one.state_dict())
    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        streamed = torch.cat([one(x[:1]), one(x[1:])])
        close(streamed, two(x).double().numpy())


def test_state_restarts_when_the_batch_changes():
    model = randomize(build(flat_net(1, batch=2) + "[lstm]\noutput=3\n", "alexeyab"), seed=12).eval()
    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        first = model(x[:1])
        model(x)  # 2 sequences: the kept 1-row state does not fit, start from zeros
        assert model.layers[0].state[0].shape == (2, 3)
        model.layers[0].reset_state()
        assert torch.equal(model(x[:1]), first)


def test_fix_nan_and_inf_uses_one_over_the_index():
    from darknetpy.layers.lstm import _fix_nan_and_inf

    v = torch.tensor([[float("nan"), 2.0], [float("inf"), -float("inf")]])
    # blas.c:fix_nan_and_inf_cpu: input[i] = 1.0f / i (i = 0 gives inf)
    assert torch.equal(_fix_nan_and_inf(v), torch.tensor([[float("inf"), 2.0], [0.5, 1.0 / 3.0]]))


@pytest.mark.parametrize("case", ["rnn", "gru", "lstm", "crnn_ab", "conv_lstm"])
def test_training_backward_reaches_every_block(case):
    text, flavors = ROUND_TRIP[case]
    model = randomize(build(text, flavors[-1]), seed=14).train()
    c, h, w = model.input_shape
    x = torch.randn(4, c, h, w) if c else torch.randn(4, model.net.inputs)
    model(x).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, name


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------
ROUND_TRIP = {
    "rnn": (flat_net(2) + "[rnn]\noutput=3\nhidden=4\nbatch_normalize=1\n[connected]\noutput=2\n", FLAVORS),
    "gru": (flat_net(2) + "[gru]\noutput=3\nbatch_normalize=1\n", FLAVORS),
    "lstm": (flat_net(2) + "[lstm]\noutput=3\nbatch_normalize=1\n", FLAVORS),
    "crnn_pj": (CRNN_PJ, ("pjreddie",)),
    "crnn_ab": (CRNN_AB, ("alexeyab",)),
    "conv_lstm": (image_net(2) + "[conv_lstm]\npad=1\noutput=2\npeephole=1\nbatch_normalize=1\n[history]\n", ("alexeyab",)),
}


@pytest.mark.parametrize("case,flavor", [(c, f) for c, (_, fl) in ROUND_TRIP.items() for f in fl])
def test_weights_round_trip(tmp_path, case, flavor):
    text = ROUND_TRIP[case][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedKeyWarning)  # pjreddie does not read [rnn] hidden
        model = randomize(build(text, flavor), seed=9)
        fresh = build(text, flavor)
    path = tmp_path / "a.weights"
    model.save_weights(path)
    assert path.stat().st_size == model.weights_bytes() == fresh.weights_bytes()
    fresh.load_weights(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name
    again = tmp_path / "b.weights"
    fresh.save_weights(again)
    assert path.read_bytes() == again.read_bytes()


def _check_file_order(path, layer, order):
    """Give every block's biases a distinct constant first; the file must hold the blocks in ``order``."""
    data = np.frombuffer(path.read_bytes()[20:], dtype="<f4")
    pos = 0
    for name in order:
        block = getattr(layer, name)
        assert np.all(data[pos : pos + block.outputs] == float(block.biases.detach()[0])), name
        assert np.array_equal(data[pos + block.outputs : pos + block.outputs + block.weight.numel()], npy(block.weight).reshape(-1))
        pos += block.outputs + block.weight.numel()
    assert pos == data.size


def _distinct(layer, names):
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for k, name in enumerate(names):
            getattr(layer, name).biases.fill_(float(k + 1))
            getattr(layer, name).weight.copy_(torch.randn(getattr(layer, name).weight.shape, generator=g))


@pytest.mark.parametrize(
    "flavor,order",
    [("pjreddie", ["wz", "wr", "wh", "uz", "ur", "uh"]), ("alexeyab", ["uz", "ur", "uh", "wz", "wr", "wh"])],
)
def test_gru_file_order_per_fork(tmp_path, flavor, order):
    # pjreddie save_weights_upto: wz, wr, wh, uz, ur, uh; AlexeyAB: input_z/r/h then state_z/r/h
    model = build(flat_net(1, inputs=4) + "[gru]\noutput=3\n", flavor)
    layer = model.layers[0]
    _distinct(layer, ["uz", "ur", "uh", "wz", "wr", "wh"])
    model.save_weights(tmp_path / "g.weights")
    _check_file_order(tmp_path / "g.weights", layer, order)


@pytest.mark.parametrize(
    "flavor,order",
    [("pjreddie", ["wi", "wf", "wo", "wg", "ui", "uf", "uo", "ug"]), ("alexeyab", ["wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"])],
)
def test_lstm_file_order_per_fork(tmp_path, flavor, order):
    model = build(flat_net(1, inputs=4) + "[lstm]\noutput=3\n", flavor)
    layer = model.layers[0]
    _distinct(layer, ["wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"])
    model.save_weights(tmp_path / "l.weights")
    _check_file_order(tmp_path / "l.weights", layer, order)


def test_rnn_file_layout_input_self_output(tmp_path):
    model = build(flat_net(1, inputs=2) + "[rnn]\noutput=2\nhidden=3\nbatch_normalize=1\n", "alexeyab")
    layer = model.layers[0]
    with torch.no_grad():
        for k, block in enumerate((layer.input_layer, layer.self_layer, layer.output_layer)):
            block.biases.fill_(10.0 * (k + 1))
            block.weight.copy_(torch.arange(block.weight.numel(), dtype=torch.float32).view_as(block.weight))
            block.bn.scales.fill_(-1.0)
    model.save_weights(tmp_path / "r.weights")
    data = np.frombuffer((tmp_path / "r.weights").read_bytes()[20:], dtype="<f4")
    # input block: biases[3], weights[3][2], scales[3], rolling_mean[3], rolling_variance[3] (connected layout)
    assert np.all(data[:3] == 10) and np.array_equal(data[3:9], np.arange(6)) and np.all(data[9:12] == -1)
    assert np.all(data[18:21] == 20) and np.all(data[18 + 3 + 9 + 9 : 18 + 3 + 9 + 9 + 2] == 30)
    assert data.size == (3 + 6 + 9) + (3 + 9 + 9) + (2 + 6 + 6)


def test_transposed_file_transposes_every_connected_block(tmp_path):
    model = build(flat_net(1, inputs=2) + "[rnn]\noutput=2\nhidden=3\n", "alexeyab")
    layer = model.layers[0]
    rng = np.random.default_rng(10)
    body, want = [], []
    for block in (layer.input_layer, layer.self_layer, layer.output_layer):
        b = rng.standard_normal(block.outputs).astype("<f4")
        w = rng.standard_normal((block.inputs, block.outputs)).astype("<f4")  # stored [in][out]
        body += [b, w.reshape(-1)]
        want.append((b, w.T))
    path = tmp_path / "t.weights"
    path.write_bytes(struct.pack("<iiiQ", 0, 1001, 0, 0) + np.concatenate(body).tobytes())
    model.load_weights(path)
    for block, (b, w) in zip((layer.input_layer, layer.self_layer, layer.output_layer), want):
        assert np.array_equal(block.biases.detach().numpy(), b)
        assert np.array_equal(block.weight.detach().numpy(), w)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_rows_not_a_multiple_of_time_steps():
    model = build(flat_net(3) + "[rnn]\noutput=2\n", "pjreddie")
    with pytest.raises(DarknetError, match=r"layer 0 \[rnn\] \(test.cfg:\d+\): 4 input rows are not a multiple of time_steps=3"):
        model(torch.zeros(4, 5))


def test_time_steps_zero_is_an_error_at_net():
    with pytest.raises(BadValueError, match=r"test.cfg:\d+: \[net\] time_steps=0: must be at least 1"):
        build(flat_net(0) + "[gru]\noutput=2\n", "pjreddie")


@pytest.mark.parametrize(
    "flavor,text,cls,pattern",
    [
        ("pjreddie", flat_net(1) + "[rnn]\noutput=0\n", BadValueError, r"test.cfg:7: \[rnn #0\] output=0"),
        ("alexeyab", flat_net(1) + "[rnn]\noutput=2\nhidden=0\n", BadValueError, r"test.cfg:8: \[rnn #0\] hidden=0"),
        ("alexeyab", flat_net(1) + "[lstm]\noutput=-1\n", BadValueError, r"test.cfg:7: \[lstm #0\] output=-1"),
        ("alexeyab", flat_net(1) + "[rnn]\nactivation=normalize_channels\n", BadValueError, r"\[rnn #0\] activation="),
        ("pjreddie", flat_net(1) + "[crnn]\n", ShapeError, r"test.cfg:6: \[crnn #0\].*must output an image"),
        ("alexeyab", image_net(1) + "[crnn]\npad=1\nhidden=3\ngroups=2\n", ShapeError, r"\[crnn #0\] groups=2: .*hidden filters"),
        ("alexeyab", image_net(1) + "[crnn]\npad=1\nstride=2\n", ShapeError, r"\[crnn #0\].*turns the 4x4 input into 2x2"),
        ("alexeyab", image_net(1) + "[crnn]\npad=1\nxnor=1\n", BadValueError, r"\[crnn #0\] xnor=1"),
        ("alexeyab", image_net(1) + "[conv_lstm]\npad=1\nbottleneck=1\n", BadValueError, r"\[conv_lstm #0\] bottleneck=1"),
        ("alexeyab", image_net(1) + "[conv_lstm]\noutput=2\n", ShapeError, r"\[conv_lstm #0\].*feeds its state back"),
        ("alexeyab", image_net(1) + "[history]\nhistory_size=0\n", BadValueError, r"\[history #0\] history_size=0"),
        ("pjreddie", image_net(1) + "[history]\n", FlavorError, r"\[history\] is a section of AlexeyAB"),
        ("pjreddie", image_net(1) + "[conv_lstm]\n", FlavorError, r"\[conv_lstm\] is a section of AlexeyAB"),
    ],
)
def test_bad_cfgs_are_located_errors(flavor, text, cls, pattern):
    with pytest.raises(cls, match=pattern):
        build(text, flavor)
