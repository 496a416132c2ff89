"""Wall time of one SCL optimizer step against the sum of its parts, and of the supervised / +consistency steps.

    python benchmarks/bench_step.py [--preset tiny|wrn-small|wrn38] [--size 192] [--batch 4] [--repeats 5]

Steps run SCLTrainer.compute_loss + backward + SGD step + EMA update on fixed random inputs (B labeled images and
one unlabeled pair, C = 19). Parts, timed separately on the same inputs: the student forward+backward over
[labeled; CutMix image] with the three losses (the step fuses the two student forwards into one, and BatchNorm's
image-pooling branch cannot train on the single mixed image alone), the teacher forward on the 2 unlabeled
views, CutMix sampling, the EMA update and the SGD step.
Goal (issue 5): SCL step / sum of parts <= 1.10. Medians of `repeats` after one warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch
import transformers

from sclseg import SCLTrainer, SCLTrainingArguments
from sclseg.cutmix import cutmix, sample_cutmix_boxes
from sclseg.losses import pixel_consistency_loss, relaxed_boundary_loss, structured_consistency_loss
from sclseg.recipe import ModelArguments, build_model

TINY = {"backbone_config": {"stem_channels": 4, "depths": [1, 1, 1, 1, 1, 1],
                            "stage_channels": [[4, 4], [4, 8], [8, 8], [8, 16], [8, 8, 16], [8, 16, 32]]},
        "aspp_channels": 8, "aspp_rates": [1, 2, 3], "low_level_channels": 4, "decoder_channels": 8}


def _tiny_model() -> torch.nn.Module:
    from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation, WideResNetConfig

    kwargs = dict(TINY)
    backbone = WideResNetConfig(**kwargs.pop("backbone_config"))
    return DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusConfig(backbone_config=backbone, **kwargs))


class _Pairs:
    def __init__(self, size: int) -> None:
        self.pair = {"pixel_values_a": torch.randn(3, size, size), "pixel_values_b": torch.randn(3, size, size)}

    def __iter__(self):
        while True:
            yield self.pair


def median_time(fn, repeats: int) -> float:
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        fn()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_trainer(preset: str, size: int, batch: int, weights: tuple[float, float], out: str) -> SCLTrainer:
    torch.manual_seed(0)
    model = _tiny_model() if preset == "tiny" else build_model(ModelArguments(model_preset=preset))
    args = SCLTrainingArguments(output_dir=out, report_to=[], use_cpu=not torch.cuda.is_available(),
                                consistency_weight=weights[0], structured_consistency_weight=weights[1],
                                per_device_train_batch_size=batch, max_steps=10)
    return SCLTrainer(model=model, args=args, train_dataset=[None], unlabeled_dataset=_Pairs(size))


def step(trainer: SCLTrainer, optimizer: torch.optim.Optimizer, inputs: dict) -> None:
    loss = trainer.compute_loss(trainer.model, dict(inputs))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    trainer.teacher.update(trainer.model)


def parts(trainer: SCLTrainer, optimizer, inputs: dict, size: int, repeats: int) -> dict[str, float]:
    model, teacher, args = trainer.model, trainer.teacher.model, trainer.args
    u_a, u_b = torch.randn(1, 3, size, size), torch.randn(1, 3, size, size)

    boxes = sample_cutmix_boxes(1, size, size, num_boxes=args.cutmix_boxes)
    with torch.no_grad():
        p_mt = cutmix(*teacher(pixel_values=torch.cat([u_a, u_b])).logits.softmax(1).chunk(2), boxes.mask)
    both = torch.cat([inputs["pixel_values"], cutmix(u_a, u_b, boxes.mask)])
    batch = len(inputs["labels"])

    def labeled():
        relaxed_boundary_loss(model(pixel_values=inputs["pixel_values"]).logits, inputs["labels"]).backward()

    def student():  # what the SCL step runs: one forward over [labeled; mixed], all three losses
        logits = model(pixel_values=both).logits
        probs = logits[batch:].softmax(1)
        loss = relaxed_boundary_loss(logits[:batch], inputs["labels"]) + 20 * pixel_consistency_loss(probs, p_mt)
        loss = loss + 3 * structured_consistency_loss(probs, p_mt, boxes.owner, num_boxes=args.cutmix_boxes,
                                                      last_boxes=args.structured_boxes, max_pairs=args.max_pairs)
        loss.backward()

    def teacher_forward():
        with torch.no_grad():
            teacher(pixel_values=torch.cat([u_a, u_b])).logits.softmax(1)

    def sgd():
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    timed = {"student fwd+bwd [x; u_m] + losses": student, "teacher fwd (2 images)": teacher_forward,
             "CutMix boxes": lambda: sample_cutmix_boxes(1, size, size, num_boxes=args.cutmix_boxes),
             "EMA update": lambda: trainer.teacher.update(model)}
    result = {name: median_time(fn, repeats) for name, fn in timed.items()}
    labeled_seconds = median_time(labeled, repeats)
    result["SGD step"] = max(median_time(lambda: (labeled(), sgd()), repeats) - labeled_seconds, 0.0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="wrn-small", choices=["tiny", "wrn-small", "wrn38"])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}")
    print(f"versions: torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"model preset {args.preset}, {args.batch} labeled {args.size}x{args.size} + 1 unlabeled pair, C=19")
    inputs = {"pixel_values": torch.randn(args.batch, 3, args.size, args.size),
              "labels": torch.randint(0, 19, (args.batch, args.size, args.size))}
    with tempfile.TemporaryDirectory() as out:
        for name, weights in (("supervised only", (0.0, 0.0)), ("+ consistency", (20.0, 0.0)), ("+ SCL", (20.0, 3.0))):
            trainer = make_trainer(args.preset, args.size, args.batch, weights, out)
            optimizer = torch.optim.SGD(trainer.model.parameters(), lr=1e-4, momentum=0.9)
            trainer.model.train()
            step_seconds = median_time(lambda: step(trainer, optimizer, inputs), args.repeats)
            print(f"{name:>16}: {step_seconds:.3f} s per optimizer step")
        breakdown = parts(trainer, optimizer, inputs, args.size, args.repeats)
    total = sum(breakdown.values())
    for name, seconds in breakdown.items():
        print(f"  part {name:>24}: {seconds:.3f} s")
    print(f"SCL step / sum of parts = {step_seconds / total:.3f}  (goal <= 1.10)")


if __name__ == "__main__":
    main()
