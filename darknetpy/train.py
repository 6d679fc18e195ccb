"""``darknet detector train``: the cfg's training, Darknet's update, weights and log lines.

Darknet: ``src/detector.c:train_detector`` (AlexeyAB), ``examples/detector.c`` (pjreddie),
``train_network`` and ``update_network`` (darknet-reference.md §5, §8).

One iteration takes the cfg's ``batch`` images (the global batch, over every process), in
``subdivisions`` forward/backward passes; the gradients are summed and divided by ``batch``, then one
SGD (or Adam) step with the rate of :func:`darknetpy.schedule.learning_rate` at the new iteration.
Sample ``k`` of the run (``k = iteration·batch + j``) is a pure function of the seed and ``k``
(:class:`darknetpy.data.dataset.DetectionDataset`), so a run repeats exactly, resumes where it
stopped, and splits across processes without changing which images go into an update.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from .data import DataConfig, read_image_list
from .errors import DarknetError, TrainingError
from .loss import NetworkLoss
from .model import Darknet
from .schedule import images_per_update, learning_rate
from .transfer import StartReport, load_start_weights
from .weights import read_header

__all__ = ["TrainOptions", "TrainResult", "train_detector", "iteration_line", "map_interval"]


@dataclass
class TrainOptions:
    """Everything ``detector train`` takes besides the .data, cfg and start weights."""

    weights_cfg: str | None = None  # the cfg the start weights were made for (another class count)
    flavor: str | None = None  # default: the start weights' header, else alexeyab
    clear: bool = False  # start the iteration count at 0 (Darknet's -clear)
    freeze: int = 0  # train only layers >= freeze
    calc_map: bool = False  # Darknet's -map: mAP on the valid list periodically, _best.weights
    map_points: int = 0
    map_epochs: int = 4  # Darknet's -mAP_epochs: epochs between two mAP calculations
    map_thresh: float = 0.25  # Darknet's -thresh and -iou_thresh, passed to the periodic mAP
    map_iou_thresh: float = 0.5
    augment: str | None = "default"  # see DetectionDataset
    seed: int = 0
    workers: int = 2  # DataLoader workers
    device: str | None = None  # default: cuda when available
    amp: bool = True  # float16 autocast on CUDA
    channels_last: bool = True
    loss: str = "darknet"
    max_batches: int | None = None  # override the cfg's
    backup: str | None = None  # override the .data file's backup=
    show_details: bool = False  # per-head loss lines
    progress: bool = True  # tqdm bar
    chart: bool = True  # chart.png
    chart_file: str | None = None  # Darknet's -chart: where the chart goes (default <backup>/chart.png)
    dropout: float | None = None  # override every [dropout] p (0 turns them off)
    log: Callable[[str], None] | None = None


@dataclass
class TrainResult:
    """What a run did: the final weights, the last iteration, the loss and mAP histories."""

    final_weights: Path | None
    iteration: int
    losses: list[tuple[int, float]] = field(default_factory=list)  # (iteration, avg loss)
    maps: list[tuple[int, float]] = field(default_factory=list)  # (iteration, mAP at map_iou_thresh)
    best_map: float | None = None
    start: StartReport | None = None
    images_per_second: float = 0.0


def iteration_line(flavor: str, iteration: int, loss: float, avg: float, rate: float, seconds: float, images: int, hours_left: float) -> str:
    """Darknet's per-iteration line (AlexeyAB's with hours left, pjreddie's without)."""
    if flavor == "pjreddie":
        return f"{iteration}: {loss:f}, {avg:f} avg, {rate:f} rate, {seconds:f} seconds, {images} images"
    return f" {iteration}: {loss:f}, {avg:f} avg loss, {rate:f} rate, {seconds:f} seconds, {images} images, {hours_left:f} hours left"


class _TrainForward(nn.Module):
    """``forward_train`` as ``forward``, so DistributedDataParallel wraps it."""

    def __init__(self, model: Darknet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_train(x)


class _ChunkSampler(torch.utils.data.Sampler):
    """Sample numbers of this process's forward passes, iteration after iteration."""

    def __init__(self, start: int, stop: int, batch: int, subdivisions: int, rank: int, world: int) -> None:
        self.start, self.stop, self.batch, self.sub, self.rank, self.world = start, stop, batch, subdivisions, rank, world
        self.mini = batch // (subdivisions * world)

    def __iter__(self):
        for it in range(self.start, self.stop):
            for s in range(self.sub):
                j = s * self.world + self.rank  # forward chunk j of the iteration's batch
                first = it * self.batch + j * self.mini
                yield list(range(first, first + self.mini))

    def __len__(self) -> int:
        return (self.stop - self.start) * self.sub


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def map_interval(map_epochs: int, train_images: int, batch: int) -> int:
    """Iterations between two mAP calculations of ``-map``: ``map_epochs`` epochs of the train list,
    at least 100; the next one comes at ``max(last + interval, burn_in)`` or at ``max_batches``.

    Darknet: ``train_detector``'s ``calc_map_for_each`` and ``next_map_calc`` (AlexeyAB).
    """
    return max(100, map_epochs * train_images // batch)


def _save_schedule(flavor: str, iteration: int, saveweights: int) -> bool:
    if flavor == "pjreddie":
        return iteration % 10000 == 0 or (iteration < 1000 and iteration % 100 == 0)
    return iteration % saveweights == 0


def train_detector(
    data: "str | os.PathLike",
    cfg: "str | os.PathLike",
    weights: "str | os.PathLike | None" = None,
    options: TrainOptions | None = None,
) -> TrainResult:
    """Train ``cfg`` on the ``train`` list of ``data`` from ``weights`` (full, partial, another class
    count with ``options.weights_cfg`` or a recognised published file, or a ``_last`` to resume).

    Writes ``<backup>/<cfg>_last.weights`` every 100 iterations (the .data ``savelast=``), ``_<N>``
    on the flavour's schedule, ``_best`` by mAP with ``calc_map``, ``_final`` at the end (each to a
    temporary file, then renamed), and ``chart.png``. Under ``torchrun`` the processes share the
    cfg's batch and only rank 0 writes.
    """
    from .data.dataset import DetectionDataset, collate
    from .optim import build_optimizer, set_learning_rate

    o = options or TrainOptions()
    rank, world, local_rank = _distributed()
    say = o.log or print
    log = (lambda text: say(text)) if rank == 0 else (lambda text: None)
    device = torch.device(o.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    datacfg = DataConfig.read(data)
    flavor = o.flavor or (read_header(weights).flavor.name if weights else None)
    torch.manual_seed(o.seed)  # Darknet's initialisation of the layers the weights do not hold: repeatable
    model = Darknet(cfg, flavor=flavor)
    start = None
    if weights:
        start = load_start_weights(model, weights, o.weights_cfg, clear=o.clear)
        for line in start.lines():
            log(line)
    if o.dropout is not None:
        model.set_dropout(o.dropout)
    net = model.net
    if o.max_batches is not None:
        net.max_batches = o.max_batches
    classes = datacfg.classes
    head_classes = {getattr(h, "classes", classes) for h in model.heads}
    if head_classes != {classes}:
        raise DarknetError(f"{datacfg.path}: classes={classes}, but the heads of {cfg} have classes={sorted(head_classes)}: "
                           f"make the cfg with `darknetpy cfg classes {classes} {cfg} out.cfg`")
    batch, sub = images_per_update(net), net.subdivisions  # Darknet's net->batch·subdivisions
    if batch % (sub * world):
        raise TrainingError(f"batch={batch} does not split into subdivisions={sub} x {world} processes")
    mini = batch // (sub * world)
    backup = Path(o.backup or datacfg.get("backup", "backup/") or "backup/")
    if rank == 0:
        backup.mkdir(parents=True, exist_ok=True)
    base = Path(cfg).stem
    savelast = int(datacfg.get("savelast", "100") or 100)
    saveweights = int(datacfg.get("saveweights", "1000" if net.max_batches < 10000 else "10000") or 1000)
    iteration = model.seen // batch
    if iteration >= net.max_batches:
        log(f"seen {model.seen} images = {iteration} iterations, max_batches={net.max_batches}: nothing to train "
            f"(start again with -clear)")
    model.to(device)
    if o.channels_last and device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    model.train()
    param_dtype = next(model.parameters()).dtype
    loss_fn = NetworkLoss(model, o.loss)
    optimizer = build_optimizer(model, freeze=o.freeze)
    wrapped: nn.Module = _TrainForward(model)
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            wrapped, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)
    use_amp = o.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    dataset = DetectionDataset.from_model(model, datacfg, augment=o.augment, seed=o.seed, log=log)
    size_for = dataset.size_for  # multi-scale from the head's random= (train_size), None without it
    if size_for is not None:
        log(f"random={size_for.keywords['random']:g}: multi-scale training around {net.width}x{net.height} "
            f"(resize_step={net.resize_step})")
    sampler = _ChunkSampler(iteration, net.max_batches, batch, sub, rank, world)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=o.workers, collate_fn=collate,
        persistent_workers=False, pin_memory=device.type == "cuda",
        prefetch_factor=4 if o.workers else None, worker_init_fn=_worker_init if o.workers else None)

    result = TrainResult(None, iteration, start=start)
    train_images = len(read_image_list(datacfg.resolve(datacfg.get("train", "data/train.list"))))
    map_every = map_interval(o.map_epochs, train_images, batch)
    last_map = iteration  # Darknet's iter_map
    best_map = -1.0
    avg_loss = -1.0
    avg_time = -1.0
    bar = None
    if o.progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=net.max_batches, initial=iteration, unit="it", dynamic_ncols=True, file=sys.stderr)
    write = bar.write if bar is not None else log
    chart_path = Path(o.chart_file) if o.chart_file else backup / "chart.png"
    if rank == 0 and o.chart:
        chart_path.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    images_done = 0
    batches = iter(loader)
    try:
        while iteration < net.max_batches:
            t0 = time.perf_counter()
            if size_for is not None:
                w, h = size_for(iteration)
                if (w, h) != (net.width, net.height):
                    model.resize(w, h)
                    loss_fn = NetworkLoss(model, o.loss)
                    if o.show_details:
                        write(f"resizing to {w}x{h}")
            cost_sum = 0.0
            head_lines: list[str] = []
            for s in range(sub):
                x, truths = next(batches)
                x = x.to(device, dtype=param_dtype, non_blocking=True)
                if o.channels_last and device.type == "cpu":
                    x = x.contiguous(memory_format=torch.channels_last)
                sync = world == 1 or s == sub - 1
                ctx = wrapped.no_sync() if not sync else contextlib.nullcontext()
                with ctx:
                    with torch.autocast("cuda", torch.float16, enabled=use_amp):
                        heads = wrapped(x)
                    heads = [h.float() for h in heads]
                    result_loss = loss_fn(heads, truths, seen=model.seen)
                    scaled = result_loss.loss * (world / batch)
                    (scaler.scale(scaled) if scaler else scaled).backward()
                cost_sum += result_loss.cost
                if o.show_details:
                    head_lines.extend(result_loss.lines())
                model.seen += mini * world
            if world > 1:
                cost = torch.tensor([cost_sum], dtype=torch.float64, device=device)
                dist.all_reduce(cost)
                cost_sum = float(cost)
            loss = cost_sum / batch
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the loss is {loss} at iteration {iteration + 1}: nothing was written for this iteration "
                    f"({backup / (base + '_last.weights')} holds the last good weights). Check: the learning rate "
                    f"and burn_in (learning_rate={net.learning_rate}, burn_in={net.burn_in}), the labels "
                    f"(`darknetpy data check {datacfg.path}`), that the start weights fit the cfg, and that "
                    f"classes/filters agree in every head")
            iteration += 1
            rate = learning_rate(net, iteration, flavor=model.flavor.name)
            set_learning_rate(optimizer, rate)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            avg_loss = loss if avg_loss < 0 else avg_loss * 0.9 + loss * 0.1
            seconds = time.perf_counter() - t0
            images_done += batch
            remaining = (net.max_batches - iteration) * seconds / 3600
            avg_time = remaining if avg_time < 0 else 0.01 * remaining + 0.99 * avg_time
            for line in head_lines:
                write(line)
            if rank == 0:
                write(iteration_line(model.flavor.name, iteration, loss, avg_loss, rate, seconds, iteration * batch, avg_time))
            result.losses.append((iteration, avg_loss))
            if bar is not None:
                bar.set_postfix_str(f"loss {loss:.3f} avg {avg_loss:.3f} rate {rate:.6f}", refresh=False)
                bar.update(1)
            if rank == 0:
                if iteration % savelast == 0:
                    model.save_weights(backup / f"{base}_last.weights")
                if _save_schedule(model.flavor.name, iteration, saveweights):
                    model.save_weights(backup / f"{base}_{iteration}.weights")
            if o.calc_map and (iteration >= max(last_map + map_every, net.burn_in) or iteration == net.max_batches):
                last_map = iteration
                m = _periodic_map(model, datacfg, o, rank, world, write)
                if m is not None:
                    result.maps.append((iteration, m))
                if rank == 0 and m is not None and m >= best_map:
                    best_map = m
                    model.save_weights(backup / f"{base}_best.weights")
                    write(f"New best mAP {100 * m:.2f} %: saved {backup / (base + '_best.weights')}")
            if rank == 0:
                if o.chart and (iteration % 10 == 0 or iteration == net.max_batches or result.maps and result.maps[-1][0] == iteration):
                    from .chart import draw_chart

                    draw_chart(chart_path, result.losses, result.maps, net.max_batches, base)
    except KeyboardInterrupt:
        if rank == 0:
            model.save_weights(backup / f"{base}_last.weights")
            write(f"Interrupted at iteration {iteration}: saved {backup / (base + '_last.weights')}; "
                  f"give it as the weights to resume")
        raise
    finally:
        if bar is not None:
            bar.close()
    result.iteration = iteration
    elapsed = time.perf_counter() - t_start
    result.images_per_second = images_done / elapsed if elapsed > 0 else 0.0
    result.best_map = best_map if best_map >= 0 else None
    if rank == 0:
        final = backup / f"{base}_final.weights"
        model.save_weights(final)
        model.save_weights(backup / f"{base}_last.weights")
        result.final_weights = final
        log(f"Saved {final} ({result.images_per_second:.1f} images/s)")
    if world > 1:
        dist.barrier()
    return result


def _periodic_map(model: Darknet, datacfg: DataConfig, o: TrainOptions, rank: int, world: int, write) -> float | None:
    """mAP on the valid list (rank 0), shared with every process; None (and a line) when it cannot
    be computed: a bad valid list must not end the training."""
    from .evaluate import evaluate_map

    value = torch.full((1,), -1.0, dtype=torch.float64)
    if rank == 0:
        write(" calculation mAP (mean average precision)...")
        try:
            report = evaluate_map(model, datacfg, points=o.map_points, iou_thresh=o.map_iou_thresh, thresh=o.map_thresh)
            value[0] = report.map
            write(f" mean average precision (mAP@{o.map_iou_thresh:.2f}) = {report.map:f}, or {100 * report.map:.2f} % ")
        except DarknetError as err:
            write(f"mAP not computed: {err}")
    if world > 1:
        dist.broadcast(value, 0)
    model.train()
    return float(value[0]) if value[0] >= 0 else None


def _worker_init(worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(0)
    torch.set_num_threads(1)

