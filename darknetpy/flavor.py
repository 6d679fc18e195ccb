"""Every difference between pjreddie's and AlexeyAB's Darknet, in one place.

Layers never test ``flavor.name``; they read a field of the :class:`FlavorSpec` they are given.
Each field names its source in ``shared/reference/darknet-reference.md`` (§) and the C function.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["FlavorSpec", "ALEXEYAB", "PJREDDIE", "FLAVORS", "get_flavor", "flavor_from_header"]

# Sections each fork's string_to_layer_type knows beyond the common set (§1.2).
_COMMON_SECTIONS = frozenset(
    "net network conv convolutional local activation crnn gru lstm rnn conn connected max maxpool avg avgpool "
    "dropout lrn normalization batchnorm soft softmax route upsample shortcut crop cost detection region yolo reorg".split()
)
_PJ_ONLY_SECTIONS = frozenset("deconv deconvolutional logistic l2norm iseg".split())
_AB_ONLY_SECTIONS = frozenset(
    "reorg3d scale_channels sam Gaussian_yolo local_avg local_avgpool conv_lstm history contrastive empty silence "
    "implicit".split()
)

# Keys read by every layer section at the end of parse_network_cfg (§1.4).
_PJ_LAYER_KEYS = frozenset("truth onlyforward stopbackward dontsave dontload numload dontloadscales learning_rate smooth".split())
_AB_LAYER_KEYS = frozenset(
    "clip onlyforward dont_update burnin_update stopbackward train_only_bn dontload dontloadscales learning_rate".split()
)

# Keys of one fork only, per section (§1.3, §1.5). Used to read a key only under the fork that reads it,
# and to name the fork that knows a key when the other one reports it unused.
_AB_ONLY_KEYS: Mapping[str, frozenset[str]] = {
    "net": frozenset(
        "learning_rate_min sgdr_cycle sgdr_mult track augment_speed sequential_subdivisions try_fix_nan "
        "weights_reject_freq equidistant_point badlabels_rejection_percentage num_sigmas_reject_badlabels ema_alpha "
        "use_cuda_graph loss_scale dynamic_minibatch optimized_memory workspace_size_limit_MB flip blur gaussian_noise "
        "mixup cutmix mosaic letter_box mosaic_bound contrastive contrastive_jit_flip contrastive_color unsupervised "
        "label_smooth_eps resize_step attention adversarial_lr max_chart_loss seq_scales show_receptive_field".split()
    ),
    "convolutional": frozenset(
        "stride_x stride_y dilation antialiasing share_index cbn assisted_excitation bin_output sway rotate stretch "
        "stretch_sway angle grad_centr reverse coordconv stream wait_stream".split()
    ),
    "maxpool": frozenset("stride_x stride_y maxpool_depth out_channels antialiasing maxpool_zero_nonmax".split()),
    "route": frozenset("groups group_id stream wait_stream".split()),
    "shortcut": frozenset("weights_type weights_normalization".split()),
    "dropout": frozenset("dropblock dropblock_size_rel dropblock_size_abs".split()),
    "yolo": frozenset(
        "show_details max_delta counters_per_class label_smooth_eps scale_x_y objectness_smooth new_coords "
        "iou_normalizer obj_normalizer cls_normalizer delta_normalizer iou_loss iou_thresh_kind beta_nms nms_kind "
        "resize focal_loss iou_thresh track_history_size sim_thresh dets_for_track dets_for_show track_ciou_norm "
        "embedding_layer".split()
    ),
    "region": frozenset("focal_loss resize".split()),
    "detection": frozenset("resize".split()),
    "crnn": frozenset("size stride dilation pad padding groups xnor output hidden".split()),
    "rnn": frozenset("hidden logistic".split()),
}
_PJ_ONLY_KEYS: Mapping[str, frozenset[str]] = {
    "net": frozenset("notruth random max_ratio min_ratio center clip".split()),
    "shortcut": frozenset("alpha beta".split()),
    "reorg": frozenset("flatten extra".split()),
    "cost": frozenset("noobj thresh".split()),
    "region": frozenset("background".split()),
    "crnn": frozenset("output_filters hidden_filters".split()),
    "gru": frozenset("tanh".split()),
}


@dataclass(frozen=True)
class FlavorSpec:
    """The behaviour of one Darknet code base."""

    name: str
    title: str
    # §3.1 batch norm: PJ CPU normalize_cpu (x-m)/(sqrt(v)+1e-6); AB normalize_cpu (x-m)/sqrt(v+1e-5).
    bn_eps: float
    bn_eps_inside_sqrt: bool
    # §3.1 rolling update r = (1-m)·r + m·batch_stat: PJ .01 (CPU and GPU), AB CPU .1 (the reference run is AB CPU).
    bn_momentum: float
    # §2.1 save_weights_upto header (major, minor, revision), always followed by a 64-bit seen.
    header_version: tuple[int, int, int]
    # §2.1 load_weights_upto: PJ reads a 64-bit seen only if major < 1000 and minor < 1000 as well.
    seen64_needs_small_version: bool
    # §1.2 section names (string_to_layer_type).
    sections: frozenset[str]
    other_sections: frozenset[str]
    layer_keys: frozenset[str]
    only_keys: Mapping[str, frozenset[str]]
    other_only_keys: Mapping[str, frozenset[str]]
    # §1.5 defaults that differ.
    yolo_max_boxes: int  # parse_yolo "max": 90 / 200
    region_max_boxes: int  # parse_region "max": 30 / 200
    dropout_probability: float  # parse_dropout: .5 / .2
    # §1.5 shortcut: PJ one `from` with alpha/beta (shortcut_cpu), AB a list with optional weights.
    shortcut_multilayer: bool
    # §2.2 [batchnorm] payload: PJ scales, mean, variance; AB biases too.
    batchnorm_saves_biases: bool
    # §2.2 lstm payload order.
    lstm_order: tuple[str, ...]
    # §3.6 region layer: PJ planar [n][coords+1+C][H][W]; AB flattens to [cell][n][...].
    region_interleaved: bool
    # §3.2 tanh formula; AB CPU activate() has no relu6 (we use the GPU's min(max(x,0),6) in both).
    # §7.1 detector test defaults.
    detect_thresh: float
    always_letterbox: bool
    # §1.1 PJ does not strip '\r' (a CRLF cfg breaks pjreddie's darknet).
    strips_cr: bool
    # §5.4 conv init: PJ sqrt(2/fan_in)·N(0,1), AB sqrt(2/fan_in)·U(-1,1).
    conv_init_uniform: bool
    # Recurrent layers (rnn_layer.c, gru_layer.c, lstm_layer.c, crnn_layer.c, parser.c): GRU block file
    # order (save_weights_upto), whether [gru] reads tanh=, which layers report 1x1xoutput instead of
    # 0x0x0, whether [crnn] reads size/stride/pad (PJ: fixed 3x3, output_filters/hidden_filters).
    gru_order: tuple[str, ...]
    gru_reads_tanh: bool
    recurrent_out_1x1: frozenset[str]
    crnn_configurable: bool
    # Heads (parse_region, parse_detection, cost_layer.c): PJ reads `random` with atoi; AB ignores
    # anchors beyond 2·num in [region] (PJ writes past its buffer: refused here); region truth slots
    # (PJ 30·(coords+1), AB max·5); the cost types each fork knows and PJ's reversed smooth-L1 delta.
    head_random_is_float: bool
    region_anchors_bounded: bool
    region_truths_from_max: bool
    detection_max_boxes: int
    cost_types: frozenset[str]
    smooth_l1_delta_reversed: bool
    # AB parse_network_cfg_custom divides avg_outputs by the number of layers with w>1 and h>1:
    # a network with none (inputs= only) dies with SIGFPE. Such cfgs build here with a warning.
    rejects_no_spatial_layer: bool
    # §4 loss flavour (issue on losses).
    loss: str = field(default="")

    def knows_section(self, name: str) -> bool:
        return name in self.sections

    def reads(self, section: str, key: str) -> bool:
        """Whether this fork reads ``key`` in ``[section]`` (False only for the other fork's keys)."""
        return key not in self.other_only_keys.get(section, ())

    def other_knows(self, section: str, key: str) -> bool:
        return key in self.other_only_keys.get(section, ()) or (
            key in (_AB_LAYER_KEYS | _PJ_LAYER_KEYS) and key not in self.layer_keys
        )

    @property
    def other_title(self) -> str:
        return PJREDDIE.title if self.name == "alexeyab" else ALEXEYAB.title

    def batchnorm(self) -> tuple[float, bool]:
        return self.bn_eps, self.bn_eps_inside_sqrt


ALEXEYAB = FlavorSpec(
    name="alexeyab",
    title="AlexeyAB",
    bn_eps=1e-5,
    bn_eps_inside_sqrt=True,
    bn_momentum=0.1,
    header_version=(0, 2, 5),
    seen64_needs_small_version=False,
    sections=_COMMON_SECTIONS | _AB_ONLY_SECTIONS,
    other_sections=_PJ_ONLY_SECTIONS,
    layer_keys=_AB_LAYER_KEYS,
    only_keys=_AB_ONLY_KEYS,
    other_only_keys=_PJ_ONLY_KEYS,
    yolo_max_boxes=200,
    region_max_boxes=200,
    dropout_probability=0.2,
    shortcut_multilayer=True,
    batchnorm_saves_biases=True,
    lstm_order=("wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"),
    region_interleaved=True,
    detect_thresh=0.25,
    always_letterbox=False,
    strips_cr=True,
    conv_init_uniform=True,
    gru_order=("uz", "ur", "uh", "wz", "wr", "wh"),
    gru_reads_tanh=False,
    recurrent_out_1x1=frozenset({"rnn", "lstm"}),
    crnn_configurable=True,
    rejects_no_spatial_layer=True,
    head_random_is_float=True,
    region_anchors_bounded=True,
    region_truths_from_max=True,
    detection_max_boxes=200,
    cost_types=frozenset("sse masked smooth".split()),
    smooth_l1_delta_reversed=False,
    loss="alexeyab",
)

PJREDDIE = FlavorSpec(
    name="pjreddie",
    title="pjreddie",
    bn_eps=1e-6,
    bn_eps_inside_sqrt=False,
    bn_momentum=0.01,
    header_version=(0, 2, 0),
    seen64_needs_small_version=True,
    sections=_COMMON_SECTIONS | _PJ_ONLY_SECTIONS,
    other_sections=_AB_ONLY_SECTIONS,
    layer_keys=_PJ_LAYER_KEYS,
    only_keys=_PJ_ONLY_KEYS,
    other_only_keys=_AB_ONLY_KEYS,
    yolo_max_boxes=90,
    region_max_boxes=30,
    dropout_probability=0.5,
    shortcut_multilayer=False,
    batchnorm_saves_biases=False,
    lstm_order=("wi", "wf", "wo", "wg", "ui", "uf", "uo", "ug"),
    region_interleaved=False,
    detect_thresh=0.5,
    always_letterbox=True,
    strips_cr=False,
    conv_init_uniform=False,
    gru_order=("wz", "wr", "wh", "uz", "ur", "uh"),
    gru_reads_tanh=True,
    recurrent_out_1x1=frozenset(),
    crnn_configurable=False,
    rejects_no_spatial_layer=False,
    head_random_is_float=False,
    region_anchors_bounded=False,
    region_truths_from_max=False,
    detection_max_boxes=90,
    cost_types=frozenset("seg sse masked smooth L1 wgan".split()),
    smooth_l1_delta_reversed=True,
    loss="pjreddie",
)

FLAVORS: dict[str, FlavorSpec] = {"alexeyab": ALEXEYAB, "pjreddie": PJREDDIE}


def get_flavor(flavor: "str | FlavorSpec") -> FlavorSpec:
    """``"alexeyab"``/``"ab"`` or ``"pjreddie"``/``"pj"`` (or a spec) to a :class:`FlavorSpec`."""
    if isinstance(flavor, FlavorSpec):
        return flavor
    key = str(flavor).lower()
    key = {"ab": "alexeyab", "pj": "pjreddie"}.get(key, key)
    if key not in FLAVORS:
        from .errors import DarknetError

        raise DarknetError(f"unknown flavor {flavor!r}: use 'alexeyab' or 'pjreddie'")
    return FLAVORS[key]


def flavor_from_header(major: int, minor: int, revision: int) -> FlavorSpec:
    """The fork that wrote a weights header: AlexeyAB writes revision 5, pjreddie 0 (§2.1)."""
    return ALEXEYAB if (major, minor, revision) >= (0, 2, 5) else PJREDDIE


def seen_is_64bit(flavor: FlavorSpec, major: int, minor: int) -> bool:
    """§2.1 ``load_weights_upto``: whether ``seen`` is 8 bytes in a file with this version."""
    if flavor.seen64_needs_small_version:
        return (major * 10 + minor) >= 2 and major < 1000 and minor < 1000
    return (major * 10 + minor) >= 2


def is_transposed(major: int, minor: int) -> bool:
    """§2.1: connected weights stored transposed."""
    return major > 1000 or minor > 1000
