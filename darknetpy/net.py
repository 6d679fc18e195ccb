"""The ``[net]`` section: input size, batch and the training options.

Darknet: ``src/parser.c:parse_net_options`` (darknet-reference.md §1.3).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .cfg import Section
from .errors import BadValueError, CfgError
from .flavor import FlavorSpec

__all__ = ["NetOptions"]

_POLICIES = ("constant", "step", "steps", "exp", "poly", "sigmoid", "random", "sgdr")


@dataclass
class NetOptions:
    """Typed ``[net]`` options, with Darknet's defaults for the flavour."""

    batch: int = 1  # images per update, as written in the cfg
    subdivisions: int = 1
    time_steps: int = 1
    width: int = 0
    height: int = 0
    channels: int = 0
    inputs: int = 0
    learning_rate: float = 0.001
    momentum: float = 0.9
    decay: float = 0.0001
    policy: str = "constant"
    burn_in: int = 0
    power: float = 4.0
    step: int = 1
    scale: float = 1.0
    steps: list[int] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    seq_scales: list[float] = field(default_factory=list)
    gamma: float = 1.0
    max_batches: int = 0
    learning_rate_min: float = 0.00001
    sgdr_cycle: int = 0
    sgdr_mult: int = 2
    adam: bool = False
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 0.000001
    angle: float = 0.0
    aspect: float = 1.0
    saturation: float = 1.0
    exposure: float = 1.0
    hue: float = 0.0
    max_crop: int = 0
    min_crop: int = 0
    flip: bool = True
    blur: int = 0
    gaussian_noise: int = 0
    mixup: int = 0  # AB encoding: 1 mixup, 2 cutmix, 3 mosaic, 4 mosaic+cutmix
    letter_box: bool = False
    mosaic_bound: bool = False
    label_smooth_eps: float = 0.0
    resize_step: int = 32
    random: int = 0  # PJ [net] random (unused by detector train)
    clip: float = 0.0
    ema_alpha: float = 0.0
    loss_scale: float = 1.0
    section: Section | None = field(default=None, repr=False, compare=False)

    @property
    def mini_batch(self) -> int:
        """Images per forward pass: ``batch/subdivisions`` (Darknet's ``net->batch``)."""
        return max(1, self.batch // max(1, self.subdivisions))

    @classmethod
    def from_section(cls, sec: Section, flavor: FlavorSpec) -> "NetOptions":
        """Read ``[net]``/``[network]`` the way the flavour does."""
        if sec.name not in ("net", "network"):
            raise CfgError(
                f"the first section must be [net] or [network], not [{sec.name}]", path=sec.path, line=sec.line
            )
        ab = flavor.name == "alexeyab"
        o = cls(section=sec)
        o.batch = sec.get_int("batch", 1)
        o.subdivisions = sec.get_int("subdivisions", 1)
        if o.subdivisions < 1:
            raise sec.error("must be at least 1", "subdivisions", BadValueError)
        o.time_steps = sec.get_int("time_steps", 1)
        if ab and o.time_steps < 1:
            o.time_steps = 1  # parse_network_cfg_custom: if (net.time_steps < 1) net.time_steps = 1
        o.height = sec.get_int("height", 0)
        o.width = sec.get_int("width", 0)
        o.channels = sec.get_int("channels", 0)
        o.inputs = sec.get_int("inputs", o.height * o.width * o.channels)
        if not o.inputs and not (o.height and o.width and o.channels):
            raise sec.error("no input size: give width, height and channels (or inputs)")
        for key in ("width", "height", "channels", "inputs", "batch", "time_steps"):
            if getattr(o, key) < 0:
                raise sec.error("must not be negative", key, BadValueError)
        o.learning_rate = sec.get_float("learning_rate", 0.001)
        o.momentum = sec.get_float("momentum", 0.9)
        o.decay = sec.get_float("decay", 0.0001)
        o.max_batches = sec.get_int("max_batches", 0)
        o.burn_in = sec.get_int("burn_in", 0)
        o.power = sec.get_float("power", 4.0)
        o.policy = sec.get_str("policy", "constant")
        if o.policy not in _POLICIES or (o.policy == "sgdr" and not ab):
            raise sec.error(f"unknown learning-rate policy (Darknet would fall back to constant); use one of {', '.join(_POLICIES)}", "policy", BadValueError)
        if o.policy == "step":
            o.step = sec.get_int("step", 1)
            o.scale = sec.get_float("scale", 1.0)
        elif o.policy in ("steps", "sgdr"):
            o.steps = sec.get_ints("steps", []) or []
            o.scales = sec.get_floats("scales", []) or []
            o.seq_scales = (sec.get_floats("seq_scales", []) or []) if ab else []
            if o.policy == "steps" and ("steps" not in sec or "scales" not in sec):
                raise sec.error("policy=steps needs steps= and scales=", "policy")
            if o.scales and len(o.scales) < len(o.steps):
                o.scales = o.scales + [1.0] * (len(o.steps) - len(o.scales))
        elif o.policy == "exp":
            o.gamma = sec.get_float("gamma", 1.0)
        elif o.policy == "sigmoid":
            o.gamma = sec.get_float("gamma", 1.0)
            o.step = sec.get_int("step", 1)
        o.adam = sec.get_bool("adam", False)
        if o.adam:
            o.b1 = sec.get_float("B1", 0.9)
            o.b2 = sec.get_float("B2", 0.999)
            o.eps = sec.get_float("eps", 0.000001 if ab else 0.0000001)
        o.angle = sec.get_float("angle", 0.0)
        o.aspect = sec.get_float("aspect", 1.0)
        o.saturation = sec.get_float("saturation", 1.0)
        o.exposure = sec.get_float("exposure", 1.0)
        o.hue = sec.get_float("hue", 0.0)
        o.max_crop = sec.get_int("max_crop", o.width * 2)
        o.min_crop = sec.get_int("min_crop", o.width)
        if ab:
            o.learning_rate_min = sec.get_float("learning_rate_min", 0.00001)
            o.sgdr_cycle = sec.get_int("sgdr_cycle", o.max_batches)
            o.sgdr_mult = sec.get_int("sgdr_mult", 2)
            o.flip = sec.get_bool("flip", True)
            o.blur = sec.get_int("blur", 0)
            o.gaussian_noise = sec.get_int("gaussian_noise", 0)
            o.mixup = sec.get_int("mixup", 0)
            cutmix = sec.get_int("cutmix", 0)
            mosaic = sec.get_int("mosaic", 0)
            o.mixup = 4 if (mosaic and cutmix) else 2 if cutmix else 3 if mosaic else o.mixup
            o.letter_box = sec.get_bool("letter_box", False)
            o.mosaic_bound = sec.get_bool("mosaic_bound", False)
            o.label_smooth_eps = sec.get_float("label_smooth_eps", 0.0)
            o.resize_step = int(sec.get_float("resize_step", 32))
            o.ema_alpha = sec.get_float("ema_alpha", 0.0)
            o.loss_scale = sec.get_float("loss_scale", 1.0)
            sec.mark_used(
                "track", "augment_speed", "sequential_subdivisions", "try_fix_nan", "weights_reject_freq",
                "equidistant_point", "badlabels_rejection_percentage", "num_sigmas_reject_badlabels",
                "use_cuda_graph", "dynamic_minibatch", "optimized_memory", "workspace_size_limit_MB", "contrastive",
                "contrastive_jit_flip", "contrastive_color", "unsupervised", "attention", "adversarial_lr",
                "max_chart_loss", "show_receptive_field",
            )
        else:
            o.flip = True
            o.random = sec.get_int("random", 0)
            o.clip = sec.get_float("clip", 0.0)
            sec.mark_used("notruth", "max_ratio", "min_ratio", "center")
        return o
