"""Consistency alone, towards a frozen better teacher: does the CutMix consistency path move a student towards
its teacher? (RESULTS.md, open question.)

    python benchmarks/distill_probe.py [--steps 200] [--weight 20] [--structured 0]

Student: the ablation's supervised start at 1/4 labeled (11.79 mIoU); teacher: the longer-pretraining probe's start
(17.30), frozen. Each step: one `SCLTrainer._mixed_batch()` (2 unlabeled pairs, so BatchNorm sees 2 images), the
student's forward on u_m in train mode, loss = weight·L_c (+ structured·L_sc), SGD lr 0.02 momentum 0.9 poly,
no labeled loss. Prints the student's validation mIoU (eval mode, whole image) every `--eval-every` steps.
Needs the runs of `python benchmarks/ablation.py` and of its longer-pretraining probe (see RESULTS.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--weight", type=float, default=20.0, help="λ_c")
    parser.add_argument("--structured", type=float, default=0.0, help="λ_sc")
    parser.add_argument("--eval-every", type=int, default=50)
    cli = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import ablation
    from safetensors.torch import load_file

    from sclseg.losses import pixel_consistency_loss, structured_consistency_loss

    spec = {"variant": "c_scl_frozen_better_teacher", "fraction": "1/4", "seed": 0}
    out = ROOT / "benchmarks" / "results" / "ablation"
    flags = ablation.worker_flags(spec, dict(ablation.FULL), ROOT / "data" / "ablation", out / "work" / "distill")
    trainer, _ = ablation.build_trainer(flags + ["--unlabeled_batch_size", "2"])
    student, args = trainer.model, trainer.args
    teacher_dir = ablation.pretrained_dir(out.parent / "ablation-probe-longer-pretraining", "1/4")
    trainer.teacher.model.load_state_dict(load_file(teacher_dir / "model.safetensors"))
    optimizer = torch.optim.SGD(student.parameters(), lr=0.02, momentum=0.9, weight_decay=0.001)
    print(f"step 0: student mIoU {100 * trainer.evaluate()['eval_mean_iou']:.2f} (teacher: see RESULTS.md, 17.30)")
    for step in range(1, cli.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = 0.02 * (1 - (step - 1) / cli.steps)
        student.train()
        mixed = trainer._mixed_batch()
        probs = student(pixel_values=mixed["u_m"]).logits.softmax(1)
        loss = cli.weight * pixel_consistency_loss(probs, mixed["p_mt"])
        if cli.structured > 0:
            loss = loss + cli.structured * structured_consistency_loss(
                probs, mixed["p_mt"], mixed["owner"], num_boxes=args.cutmix_boxes, last_boxes=args.structured_boxes,
                max_pairs=args.max_pairs, generator=trainer.generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % cli.eval_every == 0:
            print(f"step {step}: loss {loss.item():.4f}, student mIoU {100 * trainer.evaluate()['eval_mean_iou']:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
