"""`SCLTrainingArguments`: every knob of the SCL method, with the paper's defaults (Kim, Jang, Park 2020, §4.1).

Optimisation defaults also follow the paper (and Zhu et al. 2019): SGD, lr 0.002, momentum 0.9, weight decay
0.001, polynomial decay with power 1.0 per step. Architecture lives in the model config, not here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from transformers import TrainingArguments

# NVIDIA's Cityscapes recipe keeps one-hot targets for these train ids (pole, traffic light, traffic sign,
# person, rider, motorcycle, bicycle: thin or small classes that relaxation would blur).
NVIDIA_STRICT_CLASSES = [5, 6, 7, 11, 12, 17, 18]


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class SCLTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the SCL method. Supervised only: `consistency_weight=0` and
    `structured_consistency_weight=0`; + consistency: `structured_consistency_weight=0`; no EMA: `ema_decay=0`."""

    # --- the method (paper eq. 1, 4, 10) ---
    consistency_weight: float = field(
        default=20.0, metadata=_help("λ_c, weight of the pixel consistency L_c (paper: 20).")
    )
    structured_consistency_weight: float = field(
        default=3.0, metadata=_help("λ_sc, weight of the structured consistency L_sc (paper: 3).")
    )
    consistency_reduction: str = field(
        default="mean",
        metadata=_help("How L_c reduces over classes: 'mean' (nn.MSELoss: mean over classes, pixels, batch; with "
                       "λ_c = 20 and 19 classes ≈ weight 1 on the class-sum, French et al.'s CutMix-Seg setting) or "
                       "'sum' (the literal eq. 4: sum over classes, mean over pixels and batch)."),
    )
    consistency_confidence_threshold: float = field(
        default=0.0,
        metadata=_help("Scale L_c by the share of unlabeled pixels whose largest teacher probability reaches this "
                       "value (French et al.'s CutMix-Seg: 0.97); 0 = off (the paper)."),
    )
    pseudo_label_weight: float = field(
        default=0.0,
        metadata=_help("Weight of the FixMatch-style hard pseudo-label cross-entropy on the mixed image (UniMatch's "
                       "core; 1 there); 0 = off (the paper)."),
    )
    pseudo_label_threshold: float = field(
        default=0.95,
        metadata=_help("Teacher confidence a pixel needs to get a pseudo-label (FixMatch, UniMatch: 0.95)."),
    )
    student_jitter: float = field(
        default=0.0,
        metadata=_help("Colour jitter of the student's unlabeled views only, on 80% of the images: brightness, "
                       "contrast and saturation factors in [1 - j, 1 + j], hue shift in [-j/2, j/2] turns; the "
                       "teacher guesses on the views without it (FixMatch's weak-to-strong; UniMatch: 0.5). 0 = off "
                       "(the paper)."),
    )
    student_grayscale_prob: float = field(
        default=0.0,
        metadata=_help("Probability that a student unlabeled view is turned grey after the jitter (UniMatch: 0.2); "
                       "0 = off (the paper)."),
    )
    mask_padding: bool = field(
        default=True,
        metadata=_help("Leave out of L_c, L_sc and the pseudo-label loss the unlabeled pixels that are crop padding "
                       "(a scaled-down image padded inside the crop; French et al. mask them too)."),
    )
    joint_student_forward: bool = field(
        default=True,
        metadata=_help("One student forward over [labeled; mixed] (BatchNorm statistics shared by both); False = two "
                       "forwards, so the mixed images never shape the labeled batch's statistics (needs "
                       "unlabeled_batch_size >= 2 in train mode: the image-pooling BatchNorm needs > 1 value)."),
    )
    supervised_warmup_steps: int = field(
        default=0,
        metadata=_help("Supervised-only optimizer steps before the unlabeled terms start; at the last of them the "
                       "teacher becomes a copy of the student, so semi-supervised training starts from a supervised "
                       "model as in the paper (which fine-tunes one). 0 = unlabeled terms from the first step."),
    )
    consistency_rampup_steps: int = field(
        default=0,
        metadata=_help("Ramp λ_c and λ_sc up over this many optimizer steps with exp(-5(1-t)²) (Laine & Aila 2017; "
                       "Tarvainen & Valpola 2017), counted from the end of supervised_warmup_steps. 0 = full weight "
                       "from the first step, as the paper, which starts from a trained network; from scratch, an "
                       "untrained teacher's guesses would dominate."),
    )
    cutmix_boxes: int = field(default=32, metadata=_help("N, CutMix boxes per unlabeled pair (paper: 32)."))
    structured_boxes: int = field(
        default=16, metadata=_help("N_box, the last boxes scored by L_sc (paper: 16); at most cutmix_boxes.")
    )
    max_pairs: int | None = field(
        default=9000, metadata=_help("N_pair, pixel pairs sampled per box for L_sc (paper: 9000); None = all pairs.")
    )
    ema_decay: float = field(
        default=0.999, metadata=_help("Teacher EMA decay d (paper: 0.999); 0 = teacher is the student.")
    )
    ema_warmup: bool = field(default=False, metadata=_help("Use d_t = min(1 - 1/(t+1), d) (Mean Teacher warm-up)."))
    eval_with_teacher: bool = field(
        default=True, metadata=_help("Evaluate and save the EMA teacher (paper Table 3: best); False = the student.")
    )
    # --- labeled loss (paper eq. 2, Zhu et al. 2019) ---
    relaxation_window: int = field(
        default=3, metadata=_help("Boundary relaxation window w (paper: 3); 1 = cross-entropy.")
    )
    class_weight_bound: float = field(
        default=0.0, metadata=_help("Per-image class weights 1 + bound·(1 - f_c); NVIDIA's Cityscapes recipe: 1.0.")
    )
    strict_classes: list[int] = field(
        default_factory=list,
        metadata=_help("Train ids kept one-hot by the relaxation; NVIDIA's Cityscapes recipe: "
                       f"{NVIDIA_STRICT_CLASSES}."),
    )
    relaxation_off_fraction: float | None = field(
        default=None,
        metadata=_help("Switch relaxation off (window 1, boundary pixels weight 2) after this fraction of the "
                       "optimizer steps; NVIDIA: 100/175 epochs ≈ 0.571. None = never."),
    )
    # --- unlabeled batches (what the stream holds is the recipe's DataArguments) ---
    unlabeled_batch_size: int = field(default=1, metadata=_help("Unlabeled pairs per device per step (paper: 1)."))
    term_gradient_norm_steps: int = field(
        default=0,
        metadata=_help("Every this many steps, log the gradient norm over the student's parameters of each loss "
                       "term as weighted in the total (grad_norm/supervised, grad_norm/consistency, ...): how hard "
                       "each term pushes. One extra backward per term on those steps; one process only. 0 = off."),
    )
    max_nonfinite_steps: int = field(
        default=5, metadata=_help("Stop with an error after this many consecutive steps whose loss is NaN/inf.")
    )
    # --- optimisation defaults of the paper (TrainingArguments' own fields, new defaults) ---
    learning_rate: float = field(default=0.002, metadata=_help("Initial learning rate (paper: 0.002)."))
    weight_decay: float = field(default=0.001, metadata=_help("Weight decay (paper: 0.001)."))
    optim: str = field(default="sgd", metadata=_help("Optimizer (paper: SGD with momentum 0.9)."))
    optim_args: str | None = field(
        default="momentum=0.9", metadata=_help("Optimizer arguments (paper: momentum=0.9).")
    )
    lr_scheduler_type: str = field(
        default="polynomial", metadata=_help("Schedule (paper: polynomial, power 1.0, per step).")
    )
    lr_scheduler_kwargs: dict | str | None = field(
        default_factory=lambda: {"power": 1.0, "lr_end": 0.0},
        metadata=_help("Scheduler arguments (paper: power 1.0, decaying to 0)."),
    )
    max_grad_norm: float = field(
        default=0.0, metadata=_help("Gradient clipping norm; 0 = none (paper, NVIDIA: none).")
    )
    # --- resuming (TrainingArguments' field, read by recipes/train_scl.py; SCLTrainer.train accepts the same) ---
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata=_help("A checkpoint folder, or a Hub repo 'user/run' / 'user/run@REVISION' (branch, tag or commit; "
                       "default: hub_revision, else main) whose last-checkpoint/ (pushed with --hub_strategy "
                       "checkpoint) is downloaded to OUTPUT_DIR/_hub_resume/ and resumed. An existing path wins."),
    )
    remove_unused_columns: bool = field(
        default=False, metadata=_help("Kept off: items carry image ids besides tensors.")
    )
    batch_eval_metrics: bool = field(
        default=True, metadata=_help("Confusion matrix accumulated per batch (never all logits).")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._validate_method()
        if self.dataloader_persistent_workers and self.dataloader_num_workers > 0:
            # A fresh DataLoader iterator draws its workers' seed from torch's global generator. Trainer restores
            # that generator before the first iterator of a run resumed at an epoch boundary, and a persistent
            # iterator is never made again, so the resumed run is one draw ahead of the uninterrupted one and its
            # dropout differs (measured: weights 0.2 apart 3 steps after resuming; 0.0 without persistence).
            warnings.warn("dataloader_persistent_workers: a run resumed at an epoch boundary will not repeat the "
                          "uninterrupted run exactly (its dropout draws differ); leave it off for exact resume, "
                          "or use dataloader_num_workers=0 when a labeled epoch is only a few batches",
                          UserWarning, stacklevel=2)

    def _validate_method(self) -> None:
        checks = [
            (self.consistency_weight >= 0, "consistency_weight must be >= 0"),
            (self.structured_consistency_weight >= 0, "structured_consistency_weight must be >= 0"),
            (self.consistency_rampup_steps >= 0, "consistency_rampup_steps must be >= 0"),
            (self.supervised_warmup_steps >= 0, "supervised_warmup_steps must be >= 0"),
            (self.consistency_reduction in ("mean", "sum"), "consistency_reduction must be 'mean' or 'sum'"),
            (0.0 <= self.consistency_confidence_threshold <= 1.0,
             "consistency_confidence_threshold must lie in [0, 1]"),
            (self.pseudo_label_weight >= 0, "pseudo_label_weight must be >= 0"),
            (0.0 <= self.pseudo_label_threshold <= 1.0, "pseudo_label_threshold must lie in [0, 1]"),
            (0.0 <= self.student_jitter <= 1.0, "student_jitter must lie in [0, 1]"),
            (0.0 <= self.student_grayscale_prob <= 1.0, "student_grayscale_prob must lie in [0, 1]"),
            (self.cutmix_boxes >= 1, "cutmix_boxes must be >= 1"),
            (1 <= self.structured_boxes <= self.cutmix_boxes, "structured_boxes must lie in [1, cutmix_boxes]"),
            (self.max_pairs is None or self.max_pairs >= 1, "max_pairs must be >= 1 or None"),
            (0.0 <= self.ema_decay <= 1.0, "ema_decay must lie in [0, 1]"),
            (self.relaxation_window >= 1 and self.relaxation_window % 2 == 1,
             "relaxation_window must be odd and >= 1"),
            (self.class_weight_bound >= 0, "class_weight_bound must be >= 0"),
            (self.relaxation_off_fraction is None or 0.0 <= self.relaxation_off_fraction <= 1.0,
             "relaxation_off_fraction must lie in [0, 1] or be None"),
            (self.unlabeled_batch_size >= 1, "unlabeled_batch_size must be >= 1"),
            (self.max_nonfinite_steps >= 1, "max_nonfinite_steps must be >= 1"),
            (self.term_gradient_norm_steps >= 0, "term_gradient_norm_steps must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SCLTrainingArguments: {message}")

    @property
    def uses_unlabeled(self) -> bool:
        """Whether an unlabeled term (and so CutMix, the teacher forward and the unlabeled stream) run."""
        return self.consistency_weight > 0 or self.structured_consistency_weight > 0 or self.pseudo_label_weight > 0
