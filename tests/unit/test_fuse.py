"""The fused inference path (darknetpy/fuse.py): same numbers, same files, never stale.

Measured on the golden cases (torch 2.13 CPU, oneDNN): the fused model's every layer output is
within 2.4e-5 of the largest magnitude of the unfused one (pjreddie-yolov3-slim, 107 layers; the
first conv differs by ~3e-7, a few ulps, and the gap grows with depth as float32 rounding noise
does), 1.1e-5 on the three shallower cases; against Darknet's own ``fwd_out_*`` dumps it stays
within the verifier's 3e-5 (worst 2.8e-5, yolov3-slim, where the unfused model is at 2.1e-5).
bfloat16: head outputs within 0.11 (yolo-fastest), 0.08 (yolov4-tiny), 0.03 (yolov3-tiny-slim) of
the largest magnitude of the float32 ones, and the same detections on yolo-fastest's image.
"""
from __future__ import annotations

import copy
import io
import pickle
import warnings

import numpy as np
import pytest
import torch

from darknetpy import Darknet, parse_cfg_text
from darknetpy.fuse import InferencePlan, bf16_supported, fold_batchnorm, optimize_for_inference
from darknetpy.verify import TOLERANCES, Case

from ..conftest import GOLDEN, GOLDEN_CASES

pytestmark = pytest.mark.unit

# fused vs unfused, every layer, relative to the layer's largest magnitude (measured: module doc)
FUSED_VS_UNFUSED = {"pjreddie-yolov3-slim": 4e-5}
FUSED_VS_UNFUSED_DEFAULT = 2e-5


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = float(b.abs().max())
    return float((a.double() - b.double()).abs().max()) / (scale if scale > 0 else 1.0)


def build(body: str, width=16, height=16, channels=3, flavor="alexeyab", seed=0) -> Darknet:
    """A small net with random weights and non-trivial batch-norm statistics, in eval mode."""
    text = f"[net]\nwidth={width}\nheight={height}\nchannels={channels}\n{body}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg_text(text, "t.cfg"), flavor=flavor)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scales"):
                p.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("biases"):
                p.normal_(0, 0.2, generator=g)
            elif name.endswith("weights"):
                p.uniform_(0.2, 1.0, generator=g)
        for name, b in model.named_buffers():
            if name.endswith("rolling_mean"):
                b.normal_(0, 0.2, generator=g)
            elif name.endswith("rolling_variance"):
                b.uniform_(0.3, 2.0, generator=g)
    return model.eval()


def fused_and_plain(model: Darknet, x: torch.Tensor, **kwargs):
    with torch.no_grad():
        plain = model.trace(x)
    model.optimize_for_inference(**kwargs)
    with torch.inference_mode():
        fused = model.trace(x)
    return fused, plain


# ---- golden cases -----------------------------------------------------------------------------
@pytest.fixture(scope="module", params=GOLDEN_CASES)
def golden(request):
    case = Case.open(GOLDEN / request.param)
    return case, case.model(), torch.from_numpy(case.expected()["input"])


def test_fused_equals_unfused_within_float32_rounding(golden):
    case, model, x = golden
    with torch.no_grad():
        plain = model.trace(x)
        heads = model(x)
    model.optimize_for_inference()
    with torch.inference_mode():
        fused = model.trace(x)
        fused_heads = model(x)
    info = model.inference_plan.info
    assert info["dtype"] == torch.float32 and info["ordinary_layers"] == []  # every layer a fused step
    bound = FUSED_VS_UNFUSED.get(case.name, FUSED_VS_UNFUSED_DEFAULT)
    worst = max(rel(a, b) for a, b in zip(fused, plain))
    assert worst <= bound, f"{case.name}: {worst:.2e}"
    assert rel(fused[0], plain[0]) <= 1e-6  # one conv: a few ulps
    for a, b in zip(fused_heads, heads):
        assert a.dtype == b.dtype and a.shape == b.shape and a.is_contiguous()
        assert rel(a, b) <= bound
    model.inference_plan = None


def test_fused_matches_darknets_dumps(golden):
    case, model, x = golden
    model.optimize_for_inference()
    with torch.inference_mode():
        outs = model.trace(x)
    exp = case.expected()
    keys = [k for k in exp if k.startswith("fwd_out_")]
    assert keys
    for key in keys:
        ref = exp[key].reshape(-1).astype(np.float64)
        got = outs[int(key[len("fwd_out_"):])].reshape(-1).numpy().astype(np.float64)
        err = np.abs(got - ref).max() / np.abs(ref).max()
        assert err <= TOLERANCES["fwd"], f"{case.name} {key}: {err:.2e}"
    model.inference_plan = None


def test_batch_of_eight_equals_eight_single_runs(golden):
    case, model, x = golden
    model.optimize_for_inference()
    g = torch.Generator().manual_seed(0)
    xs = torch.cat([x] + [torch.rand(x.shape, generator=g) for _ in range(7)])
    with torch.inference_mode():
        batch = model(xs)
        singles = [model(xs[i : i + 1]) for i in range(8)]
    for h, out in enumerate(batch):
        one_by_one = torch.cat([s[h] for s in singles])
        assert rel(out, one_by_one) <= 1e-6  # measured: equal or ~1e-8 (oneDNN blocks a batch differently)
    model.inference_plan = None


def test_save_weights_after_optimizing_gives_the_original_bytes(golden, tmp_path):
    case, model, x = golden
    original = (case.path / "model.weights").read_bytes()
    model.optimize_for_inference()
    with torch.inference_mode():
        model(x)
    out = tmp_path / "again.weights"
    model.save_weights(out)
    assert out.read_bytes() == original
    model.inference_plan = None


def test_bfloat16_runs_and_is_close(golden):
    case, model, x = golden
    with torch.no_grad():
        ref = model(x)
    model.optimize_for_inference(dtype=torch.bfloat16)
    with torch.inference_mode():
        got = model(x)
    assert model.inference_plan.info["dtype"] == torch.bfloat16
    # heads come back in float32 (the convs feeding them run in float32)
    assert all(g.dtype == torch.float32 for g in got)
    assert model.inference_plan.info["head_convs"]
    # measured: 0.107 yolo-fastest, 0.078 yolov4-tiny, 0.033 yolov3-tiny-slim, 0.23 yolov3-slim
    # (75 convs of random weights, each rounding to 8 bits)
    bound = 0.35 if case.name == "pjreddie-yolov3-slim" else 0.15
    for a, b in zip(got, ref):
        assert rel(a, b) <= bound
    model.inference_plan = None


def test_bfloat16_keeps_yolo_fastests_detections():
    from darknetpy.detect import detections_to_list, network_boxes
    from darknetpy.nms import do_nms_sort

    case = Case.open(GOLDEN / "alexeyab-yolo-fastest-1.1")
    model, x = case.model(), torch.from_numpy(case.expected()["input"])
    s = case.info["detect"]
    size = tuple(s["image_size"])

    def dets():
        with torch.inference_mode():
            heads = model(x)
        (d,) = network_boxes(model, heads, [size], s["thresh"], 0.5, letterbox=True)
        return sorted(detections_to_list(do_nms_sort(d, s["nms"]), size, s["thresh"], None), key=lambda d: (d.class_id, d.x))

    ref = dets()
    model.optimize_for_inference(dtype=torch.bfloat16)
    got = dets()
    assert [d.class_id for d in got] == [d.class_id for d in ref]
    for a, b in zip(got, ref):  # measured: scores within 0.06, boxes within 0.06
        assert abs(a.score - b.score) < 0.1
        assert max(abs(a.x - b.x), abs(a.y - b.y), abs(a.w - b.w), abs(a.h - b.h)) < 0.1


# ---- never stale ------------------------------------------------------------------------------
CONV_NET = """
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=4
size=1
stride=1
pad=1
activation=linear
"""


def test_fold_is_alexeyabs_fuse_conv_batchnorm_in_double():
    for flavor in ("alexeyab", "pjreddie"):
        model = build(CONV_NET, flavor=flavor)
        layer = model.layers[0]
        w, b = fold_batchnorm(layer)
        g, beta = layer.bn.scales.double(), layer.biases.double()
        mu, var = layer.bn.rolling_mean.double(), layer.bn.rolling_variance.double()
        sigma = torch.sqrt(var + 1e-5) if flavor == "alexeyab" else torch.sqrt(var) + 1e-6
        assert w.dtype == b.dtype == torch.float64
        assert torch.allclose(w, layer.weight.double() * (g / sigma).view(-1, 1, 1, 1), rtol=1e-15, atol=0)
        assert torch.allclose(b, beta - g * mu / sigma, rtol=1e-14, atol=1e-15)


def test_train_mode_runs_the_real_batch_norm():
    model = build(CONV_NET)
    twin = copy.deepcopy(model)
    x = torch.rand(2, 3, 16, 16)
    model.optimize_for_inference()
    with torch.inference_mode():
        model(x)
    assert model.inference_plan._built
    model.train()
    assert not model.inference_plan._built  # the fused copy is dropped
    twin.train()
    y, y_twin = model(x), twin(x)  # batch statistics, rolling updates, autograd
    assert y.requires_grad and torch.equal(y, y_twin)
    assert torch.equal(model.layers[0].bn.rolling_mean, twin.layers[0].bn.rolling_mean)
    y.sum().backward()
    assert model.layers[0].weight.grad is not None
    # back in eval mode the plan is rebuilt from the updated rolling statistics
    model.eval()
    twin.eval()
    with torch.inference_mode():
        assert rel(model(x), twin(x)) <= 1e-6
    assert model.inference_plan._built


def test_a_submodule_in_train_mode_or_autograd_on_uses_the_modules():
    model = build(CONV_NET)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
    model.optimize_for_inference()
    # autograd on: the ordinary modules, gradients reach the parameters
    y = model(x)
    assert torch.equal(y, ref) and y.requires_grad
    model.layers[0].bn.train()
    with torch.no_grad():
        assert not model.inference_plan.usable(model)
        model(x)  # batch statistics of this input
    assert not torch.equal(model.layers[0].bn.rolling_mean, build(CONV_NET).layers[0].bn.rolling_mean)


@pytest.mark.parametrize(
    "change",
    ["copy_", "data", "parameter", "rolling", "load_weights", "load_state_dict", "to_double", "optimizer"],
)
def test_changed_parameters_rebuild_the_plan(change, tmp_path):
    model = build(CONV_NET)
    other = build(CONV_NET, seed=1)
    x = torch.rand(1, 3, 16, 16)
    model.optimize_for_inference()
    with torch.inference_mode():
        before = model(x)
    layer, source = model.layers[2], other.layers[2]
    if change == "copy_":
        with torch.no_grad():
            layer.weight.copy_(source.weight)
    elif change == "data":
        layer.weight.data = source.weight.detach().clone()
    elif change == "parameter":
        layer.weight = torch.nn.Parameter(source.weight.detach().clone())
    elif change == "rolling":
        with torch.inference_mode():
            layer.bn.rolling_variance.mul_(4)
    elif change == "load_weights":
        path = tmp_path / "other.weights"
        other.save_weights(path)
        model.load_weights(path)
    elif change == "load_state_dict":
        model.load_state_dict(other.state_dict())
    elif change == "to_double":
        model.double()
        x = x.double()
    elif change == "optimizer":
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model(x).sum().backward()  # autograd on: the real modules
        opt.step()
    with torch.no_grad():
        plain = model.trace(x)
    with torch.inference_mode():
        after = model.trace(x)
    assert not torch.equal(plain[-1].float(), before)
    for a, b in zip(after, plain):
        assert a.dtype == b.dtype
        assert rel(a, b) <= 1e-6, change


def test_plan_survives_pickle_and_deepcopy():
    model = build(CONV_NET).optimize_for_inference()
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        ref = model(x)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(clone.inference_plan, InferencePlan) and not clone.inference_plan._built
        with torch.inference_mode():
            assert torch.equal(clone(x), ref)
    buf = io.BytesIO()
    torch.save(model, buf)
    assert "_inference_plan" not in model.state_dict()


def test_removing_the_plan():
    model = build(CONV_NET)
    optimize_for_inference(model)
    assert model.inference_plan is not None
    model.inference_plan = None
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 16))


# ---- every layer kind, exactly where max is exact ------------------------------------------------
def conv(filters, size=3, stride=1, act="leaky", groups=1, bn=1, extra=""):
    return (
        f"[convolutional]\nbatch_normalize={bn}\nfilters={filters}\nsize={size}\nstride={stride}\npad=1\n"
        f"groups={groups}\nactivation={act}\n{extra}\n"
    )


NETS = {
    # maxpools: Darknet's padding rule, odd sizes, stride 1 (right/bottom -inf), SPP, size 3 stride 2
    "maxpool": conv(8) + "[maxpool]\nsize=2\nstride=2\n" + "[maxpool]\nsize=2\nstride=1\n" + "[maxpool]\nsize=3\nstride=2\n"
    + "[maxpool]\nsize=3\nstride=1\n" + "[route]\nlayers=-1\n[maxpool]\nsize=5\nstride=1\n[route]\nlayers=-2\n"
    + "[maxpool]\nsize=9\nstride=1\n[route]\nlayers=-1,-3,-5\n" + "[maxpool]\nsize=3\nstride=3\n" + "[maxpool]\nsize=1\nstride=1\n",
    "maxpool_odd": conv(4) + "[maxpool]\nsize=2\nstride=2\n" + "[maxpool]\nsize=3\nstride=2\npadding=1\n",
    # yolov4-tiny's group routes and concatenations
    "route_groups": conv(8) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n" + conv(4) + conv(4) + "[route]\nlayers=-1,-2\n"
    + conv(8, size=1) + "[route]\nlayers=-6,-1\n" + "[maxpool]\nsize=2\nstride=2\n" + conv(6, act="linear"),
    # Yolo-Fastest's conv(linear) -> dropout -> shortcut, depthwise convs, a shortcut with an activation
    "shortcuts": conv(8) + conv(8, size=1, act="linear") + conv(8, groups=8) + conv(8, size=1, act="linear")
    + "[dropout]\nprobability=.15\n" + "[shortcut]\nfrom=-4\nactivation=linear\n" + conv(8, size=1, act="leaky")
    + "[shortcut]\nfrom=-2\nactivation=leaky\n" + conv(8, size=1, act="linear") + "[shortcut]\nfrom=-2,-4\nactivation=linear\n"
    + "[route]\nlayers=-3\n" + conv(4, act="mish") + conv(4, act="logistic") + conv(4, act="swish", bn=0),
    # a shortcut whose previous output is still read later (no in-place add allowed)
    "shortcut_reused": conv(8) + conv(8) + "[shortcut]\nfrom=-2\n" + "[route]\nlayers=-2,-1\n" + conv(4),
    # an in-place sum whose output is read again later through aliases (dropout, single route)
    "inplace_alias": conv(8) + conv(8) + "[shortcut]\nfrom=0\n" + "[dropout]\n" + conv(8) + "[shortcut]\nfrom=-2\n"
    + "[route]\nlayers=3\n" + "[shortcut]\nfrom=0\n" + conv(8) + "[route]\nlayers=2,-1\n" + conv(4),
    # layers the plan hands to the ordinary modules
    "ordinary": conv(8, extra="antialiasing=1") + "[reorg]\nstride=2\n" + conv(8) + "[upsample]\nstride=-2\n"
    + conv(8, extra="xnor=1") + "[local_avgpool]\nsize=3\nstride=1\n" + "[maxpool]\nmaxpool_depth=1\nout_channels=4\n"
    + conv(8) + "[shortcut]\nfrom=-2\nweights_type=per_channel\n" + "[upsample]\nstride=2\n" + conv(4)
    + "[avgpool]\n" + "[connected]\noutput=12\nactivation=leaky\n",
    # flat outputs of ordinary layers feeding convs, maxpools, routes and shortcuts
    "flat": conv(8, stride=2) + "[connected]\noutput=72\nactivation=leaky\n" + "[maxpool]\nsize=1\nstride=1\n"
    + conv(8, size=1) + "[route]\nlayers=-3\n" + "[dropout]\n" + conv(8, size=1, act="linear")
    + "[shortcut]\nfrom=-3\n" + conv(4, size=1),
    "heads": conv(8) + conv(8, stride=2) + conv(3 * 7, size=1, act="linear", bn=0)
    + "[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=2\nnum=3\n" + "[route]\nlayers=-3\n" + "[upsample]\nstride=2\n"
    + "[route]\nlayers=-1,0\n" + conv(3 * 7, size=1, act="linear", bn=0) + "[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=2\nnum=3\nscale_x_y=1.05\n",
}


_AB_KEYS = ("groups=2", "mish", "swish", "antialiasing", "local_avg", "depth", "weights_type", "-2,-4", "scale_x_y")
CASES = [(n, f) for n in sorted(NETS) for f in ("alexeyab", "pjreddie") if f == "alexeyab" or not any(k in NETS[n] for k in _AB_KEYS)]


@pytest.mark.parametrize("name,flavor", CASES)
def test_every_layer_kind_matches_the_modules(name, flavor):
    body = NETS[name]
    model = build(body, width=24, height=24, flavor=flavor)
    x = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain, out = model.trace(x), model(x)
    model.optimize_for_inference()
    with torch.inference_mode():
        fused, fused_out = model.trace(x), model(x)
    info = model.inference_plan.info
    for i, (a, b) in enumerate(zip(fused, plain)):
        assert a.shape == b.shape and a.dtype == b.dtype, i
        assert rel(a, b) <= 1e-5, (name, i, model.layers[i].section_type)
    outs = fused_out if isinstance(fused_out, list) else [fused_out]
    refs = out if isinstance(out, list) else [out]
    for a, b in zip(outs, refs):
        assert a.shape == b.shape and a.is_contiguous() and rel(a, b) <= 1e-5
    if name == "ordinary":
        assert len(info["ordinary_layers"]) >= 8
    if name == "shortcuts" and info["onednn"]:
        # conv 3 (linear) -> dropout -> shortcut 5: fused; shortcuts 7 and 9 add into dead outputs
        assert info["fused_adds"] == 1 and info["inplace_adds"] == 2
    if name == "shortcut_reused":
        assert info["inplace_adds"] == 0
    if name == "inplace_alias":
        assert info["inplace_adds"] == 2  # shortcuts 2 and 5; not 7, whose input layer 9 reads again


def test_maxpool_steps_are_exact():
    """Max is exact: the fused maxpools equal the modules' on the same input, bit for bit."""
    body = "[maxpool]\nsize=2\nstride=2\n[maxpool]\nsize=2\nstride=1\n[route]\nlayers=0\n[maxpool]\nsize=3\nstride=2\n" \
        "[route]\nlayers=0\n[maxpool]\nsize=5\nstride=1\n[route]\nlayers=0\n[maxpool]\nsize=13\nstride=1\n" \
        "[route]\nlayers=0\n[maxpool]\nsize=3\nstride=3\n[route]\nlayers=0\n[maxpool]\nsize=2\nstride=2\npadding=3\n"
    for size in (12, 13):
        model = build(body, width=size, height=size, channels=5)
        x = torch.randn(2, 5, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            plain = model.trace(x)
        model.optimize_for_inference()
        with torch.inference_mode():
            fused = model.trace(x)
        for a, b in zip(fused, plain):
            assert torch.equal(a, b)


def test_pjreddie_shortcut_of_another_shape_runs_ordinarily():
    # 4x16x16 and 16x8x8 hold as many values, but Darknet samples and drops channels here
    model = build(conv(4) + conv(16, stride=2) + "[shortcut]\nfrom=-2\n" + conv(4), flavor="pjreddie")
    x = torch.rand(2, 3, 16, 16)
    fused, plain = fused_and_plain(model, x)
    assert model.inference_plan.info["ordinary_layers"] == [2]
    assert all(rel(a, b) <= 1e-5 for a, b in zip(fused, plain))


@pytest.mark.parametrize("options", ["", "scale_x_y=1.05\n", "new_coords=1\nscale_x_y=2.0\n"])
def test_yolo_step_gives_the_layers_bits(options):
    from darknetpy.fuse import _yolo_step

    model = build(conv(3 * 7, size=1, act="linear", bn=0) + f"[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=2\nnum=3\n{options}", 9, 5)
    layer = model.layers[1]
    x = torch.randn(2, 21, 5, 9, generator=torch.Generator().manual_seed(0)) * 6
    expected = layer.forward(x, [])
    for t in (x, x.contiguous(memory_format=torch.channels_last)):
        got = _yolo_step(layer, torch.float32)(t, [])
        assert torch.equal(got, expected) and got.is_contiguous()
        assert torch.equal(t, x)  # its input is left alone (trace() keeps it)


def test_float16_and_no_channels_last_and_no_onednn_run():
    model = build(NETS["heads"], width=24, height=24)
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        ref = model(x)
    for kwargs in (dict(channels_last=False), dict(use_onednn=False), dict(dtype=torch.float16)):
        model.optimize_for_inference(**kwargs)
        with torch.inference_mode():
            got = model(x)
        bound = 1e-5 if "dtype" not in kwargs else 2e-2
        for a, b in zip(got, ref):
            assert a.dtype == torch.float32 and rel(a, b) <= bound, kwargs


def test_in_place_activations_round_as_the_modules_do():
    from darknetpy.activations import ACTIVATIONS
    from darknetpy.fuse import _INPLACE_ACTIVATIONS

    x = torch.randn(2, 8, 5, 7, generator=torch.Generator().manual_seed(3)) * 5
    for name, fn in _INPLACE_ACTIVATIONS.items():
        for t in (x, x.contiguous(memory_format=torch.channels_last)):
            assert torch.equal(fn(t.clone()), ACTIVATIONS[name](t)), name


def test_bf16_supported_reports_a_bool():
    assert isinstance(bf16_supported(), bool)
