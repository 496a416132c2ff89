"""`SCLTrainer`: supervised loss + CutMix pixel consistency + structured consistency against an EMA teacher
(Kim, Jang, Park 2020, eq. 1), for any model whose output has segmentation `logits`.

How it sits in `Trainer`: the labeled set is `train_dataset` (Trainer's sampler, resume and distribution apply
unchanged; a `ClassUniformDataset` gets an `EpochShuffleSampler`, which seeds every crop); the unlabeled pair
stream is held here and one batch of it is drawn per micro-step inside `compute_loss`; the teacher lives on the
trainer, never as a submodule (Trainer calls `model.train()`), is updated by a callback after each optimizer
step, evaluates, and is what `save_model` exports, with sclseg's model card. Checkpoints carry the teacher, each
rank's stream state and random generator, and a completion marker written last (`checkpointing.py`); pushing
to and resuming from the Hub is `hub.HubPushMixin`.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .checkpointing import (
    COMPLETE_MARKER, check_checkpoint_complete, last_complete_checkpoint, load_rank_state, load_teacher,
    mark_complete, save_rank_state, save_teacher,
)
from .collator import segmentation_collator
from .cutmix import cutmix, sample_cutmix_boxes
from .data.sampling import EpochShuffleSampler
from .data.strong_view import strong_view
from .evaluation.trainer_metrics import SegmentationMetrics, per_image_confusion
from .hub import HubPushMixin, parse_hub_checkpoint
from .losses import (
    pixel_consistency_loss, pseudo_label_loss, relaxed_boundary_loss, structured_consistency_loss,
)
from .model_card import write_model_card
from .redaction import without_tokens
from .teacher import EMATeacher
from .training_args import SCLTrainingArguments

logger = logging.getLogger(__name__)


def logits_at(outputs: Any, size: tuple[int, int]) -> torch.Tensor:
    """The model output's `logits` (B, C, h, w), bilinearly resized to `size` when smaller (e.g. SegFormer's 1/4)."""
    logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits


def _share_above(p_mt: torch.Tensor, valid: torch.Tensor | None, threshold: float) -> torch.Tensor:
    """Share of the (valid) pixels of p_mt (B, C, H, W) whose largest probability reaches `threshold`; valid is
    (B, H, W) bool or None (every pixel). Scalar."""
    confident = p_mt.max(dim=1).values >= threshold
    if valid is None:
        return confident.float().mean()
    return (confident & valid).sum() / valid.sum().clamp_min(1)


class _EMAUpdate(TrainerCallback):
    """θ_t ← d·θ_t + (1 − d)·θ_s once per optimizer step (after gradient accumulation)."""

    def __init__(self, trainer: SCLTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        teacher = self.trainer.teacher
        if args.uses_unlabeled and state.global_step == args.supervised_warmup_steps > 0:
            # End of the supervised warm-up: the teacher restarts as the trained student (the paper's protocol:
            # semi-supervised training starts from a supervised model), with no EMA warm-up left to run.
            teacher.load_state_dict({"model": self.trainer.model.state_dict(), "step": teacher.step + 1})
        else:
            teacher.update(self.trainer.model)


class SCLTrainer(HubPushMixin, Trainer):
    """`Trainer` for the SCL method. Extra arguments: `unlabeled_dataset` (an iterable of
    `{"pixel_values_a", "pixel_values_b"}` pairs, e.g. `sclseg.data.UnlabeledPairStream`, sharded per process;
    required when a consistency weight is > 0) and `model_card_data` (keyword arguments of
    `sclseg.model_card.write_model_card` describing the data: `data_root`, `synthetic`, `num_labeled`,
    `num_unlabeled`, `data_args`). `compute_metrics` defaults to mIoU from confusion matrices."""

    def __init__(self, model: nn.Module | None = None, args: SCLTrainingArguments | None = None, *,
                 unlabeled_dataset: Iterable[dict[str, torch.Tensor]] | None = None,
                 model_card_data: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not isinstance(args, SCLTrainingArguments):
            raise TypeError("SCLTrainer needs SCLTrainingArguments (the method's weights, EMA, CutMix settings)")
        if args.uses_unlabeled and unlabeled_dataset is None:
            raise ValueError("consistency_weight, structured_consistency_weight or pseudo_label_weight > 0 needs "
                             "`unlabeled_dataset`; set them to 0 for supervised-only training")
        if args.term_gradient_norm_steps and args.world_size > 1:
            # torch.autograd.grad on a DDP-wrapped forward bypasses its gradient all-reduce bookkeeping.
            raise ValueError("term_gradient_norm_steps needs one process; it was launched with "
                             f"{args.world_size}")
        model = _maybe_sync_batch_norm(model, args)
        kwargs.setdefault("data_collator", segmentation_collator)
        if "compute_metrics" not in kwargs and getattr(model, "config", None) is not None:
            kwargs["compute_metrics"] = SegmentationMetrics(model.config.num_labels, model.config.id2label)
        self._epoch_sampler: EpochShuffleSampler | None = None  # the labeled sampler, when it is ours
        self._defer_push = False  # set while Trainer's _save_checkpoint runs: the push waits for our marker
        self._hub_pushes: dict[int, list] = {}  # checkpoint step → its upload jobs
        super().__init__(model=model, args=args, **kwargs)
        self.loss_is_scaled_for_ga = False  # compute_loss returns a mean; Trainer divides by accumulation steps
        self.unlabeled_dataset = unlabeled_dataset
        self.model_card_data = dict(model_card_data or {})
        self._unlabeled_iter: Iterator | None = None
        self.teacher = EMATeacher(self.model, decay=args.ema_decay, warmup=args.ema_warmup)
        self.generator = torch.Generator(device=args.device).manual_seed(args.seed + 7919 * args.process_index)
        self.add_callback(_EMAUpdate(self))
        self._nonfinite_in_a_row = 0
        self._zero = torch.zeros((), device=args.device, requires_grad=True)
        self._weighted_terms: dict[str, torch.Tensor] = {}  # filled on steps whose term gradients are logged
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self.trained_image_ids: list[str] = []

    def _get_train_sampler(self, train_dataset=None):
        """For a dataset that takes `SampleKey`s (`ClassUniformDataset`): an `EpochShuffleSampler` seeded by
        `data_seed` (else `seed`), so that every sample's augmentation follows from (seed, epoch, index) alone
        and a resumed or re-run training sees the same crops; Trainer's sampler otherwise."""
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if getattr(dataset, "accepts_sample_keys", False) and self.args.train_sampling_strategy == "random":
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            self._epoch_sampler = EpochShuffleSampler(len(dataset), seed=seed)
            return self._epoch_sampler
        return super()._get_train_sampler(train_dataset)

    def get_resumed_dataloader(self, dataloader, num_batches: int):
        """Trainer's (skip the batches already trained in the resumed epoch), telling our sampler the epoch:
        accelerate's skip wrapper hides the sampler from `set_epoch` in a multi-process run (accelerate 1.16),
        which resumed two CPU processes with epoch 0's order and crops. Mid-epoch, `state.epoch` is the epoch
        plus a fraction below 1."""
        if self._epoch_sampler is not None:
            self._epoch_sampler.set_epoch(int(self.state.epoch))
        return super().get_resumed_dataloader(dataloader, num_batches)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """L = L_x + λ_c·L_c + λ_sc·L_sc (+ λ_u·L_u) for one labeled and one unlabeled batch (paper eq. 1)."""
        self.trained_image_ids.extend(inputs.pop("image_id", []))
        pixel_values, labels = inputs["pixel_values"], inputs["labels"]
        mixed = self.mixed_batch() if self.unlabeled_active() else None
        sup_logits, student_logits = self.student_logits(model, pixel_values, tuple(labels.shape[-2:]), mixed)
        supervised = self._supervised_loss(sup_logits, labels)
        tensors = [supervised] if mixed is None else [supervised, student_logits, mixed["p_mt"]]
        if not self._all_finite(tensors):
            return self._skip_step(supervised)
        self._nonfinite_in_a_row = 0
        loss = supervised
        self._record("loss/supervised", supervised)
        self._weighted_terms = {"supervised": supervised} if self._logs_term_gradients() else {}
        if mixed is not None:
            loss = loss + self.unlabeled_loss(student_logits.float(), mixed)
        self._record_term_gradient_norms(model)
        return (loss, {"logits": sup_logits}) if return_outputs else loss

    def _logs_term_gradients(self) -> bool:
        every = self.args.term_gradient_norm_steps
        return every > 0 and self.state.global_step % every == 0

    def _add_weighted_term(self, name: str, term: torch.Tensor) -> None:
        if self._weighted_terms:
            self._weighted_terms[name] = term

    def _record_term_gradient_norms(self, model: nn.Module) -> None:
        """‖∂(weighted term)/∂θ‖₂ over the student's trainable parameters, for each term of this step's loss."""
        if not self._weighted_terms:
            return
        parameters = [p for p in model.parameters() if p.requires_grad]
        for name, term in self._weighted_terms.items():
            grads = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True)
            squares = [g.float().pow(2).sum() for g in grads if g is not None]
            norm = torch.stack(squares).sum().sqrt() if squares else torch.zeros(())
            self._record(f"grad_norm/{name}", norm)
        self._weighted_terms = {}

    def student_logits(self, model, pixel_values: torch.Tensor, size: tuple[int, int],
                       mixed: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Student logits on the labeled batch (at the label size) and on the mixed batch (or None). A hook:
        override it for a model that takes other inputs than `pixel_values`."""
        if mixed is None:
            return logits_at(model(pixel_values=pixel_values), size), None
        u_m = mixed["u_m"]
        if self.args.joint_student_forward and tuple(u_m.shape[-2:]) == tuple(pixel_values.shape[-2:]):
            # One forward over [labeled; mixed]: half the kernel launches, and BatchNorm sees ≥ 2 images even
            # at the paper's 1 + 1 per GPU (its image-pooling branch needs > 1 value per channel).
            both = logits_at(model(pixel_values=torch.cat([pixel_values, u_m])), size)
            return both[: len(pixel_values)], both[len(pixel_values):]
        return logits_at(model(pixel_values=pixel_values), size), logits_at(model(pixel_values=u_m), u_m.shape[-2:])

    def _supervised_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        args: SCLTrainingArguments = self.args
        relaxation_off = (args.relaxation_off_fraction is not None and self.state.max_steps > 0
                          and self.state.global_step >= args.relaxation_off_fraction * self.state.max_steps)
        return relaxed_boundary_loss(
            logits.float(), labels,
            window=1 if relaxation_off else args.relaxation_window,
            class_weight_bound=args.class_weight_bound,
            strict_classes=tuple(args.strict_classes),
            ignore_index=getattr(getattr(self.model, "config", None), "semantic_loss_ignore_index", 255),
            boundary_weight=2.0 if relaxation_off else 1.0,  # NVIDIA's "relaxation off" phase
        )

    def consistency_ramp(self) -> float:
        """exp(−5(1 − t)²) with t = (step − supervised_warmup_steps) / consistency_rampup_steps (1 without
        ramp-up or after it)."""
        steps = self.args.consistency_rampup_steps
        done = self.state.global_step - self.args.supervised_warmup_steps
        if steps <= 0 or done >= steps:
            return 1.0
        return math.exp(-5.0 * (1.0 - max(done, 0) / steps) ** 2)

    def unlabeled_active(self) -> bool:
        """Whether this step adds the unlabeled terms (an unlabeled weight > 0 and the warm-up is over)."""
        return self.args.uses_unlabeled and self.state.global_step >= self.args.supervised_warmup_steps

    def unlabeled_loss(self, student_logits: torch.Tensor, mixed: dict[str, torch.Tensor]) -> torch.Tensor:
        """ramp · (λ_c·L_c + λ_sc·L_sc + λ_u·L_u) on the mixed batch (`mixed_batch`); padding pixels left out
        (`mask_padding`); each term is logged. A hook: override it to add or replace an unlabeled term."""
        args: SCLTrainingArguments = self.args
        ramp = self.consistency_ramp()
        self._record("consistency/ramp", torch.tensor(ramp))
        student_probs, p_mt = student_logits.softmax(dim=1), mixed["p_mt"]
        valid = mixed["valid"] if args.mask_padding else None
        terms = torch.zeros((), device=student_logits.device)
        if args.consistency_weight > 0:
            consistency = pixel_consistency_loss(student_probs, p_mt, reduction=args.consistency_reduction,
                                                 valid=valid)
            self._record("loss/consistency", consistency)
            weighted = ramp * args.consistency_weight * consistency * self._confident_share(p_mt, valid)
            self._add_weighted_term("consistency", weighted)
            terms = terms + weighted
        if args.structured_consistency_weight > 0:
            owner = mixed["owner"] if valid is None else mixed["owner"].masked_fill(~valid, -1)
            structured = structured_consistency_loss(
                student_probs, p_mt, owner, num_boxes=args.cutmix_boxes,
                last_boxes=args.structured_boxes, max_pairs=args.max_pairs, generator=self.generator,
            )
            self._record("loss/structured", structured)
            weighted = ramp * args.structured_consistency_weight * structured
            self._add_weighted_term("structured", weighted)
            terms = terms + weighted
        if args.pseudo_label_weight > 0:
            pseudo = pseudo_label_loss(student_logits, p_mt, threshold=args.pseudo_label_threshold, valid=valid)
            self._record("loss/pseudo_label", pseudo)
            # How many pixels the hard-label term trains on: the diagnostic FixMatch's threshold needs.
            self._record("pseudo_label/confident_share", _share_above(p_mt, valid, args.pseudo_label_threshold))
            weighted = ramp * args.pseudo_label_weight * pseudo
            self._add_weighted_term("pseudo_label", weighted)
            terms = terms + weighted
        return terms

    def _confident_share(self, p_mt: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor | float:
        """French et al.'s confidence scaling of L_c: the share of (valid) pixels whose largest teacher
        probability reaches `consistency_confidence_threshold`; 1 when the threshold is 0."""
        threshold = self.args.consistency_confidence_threshold
        if threshold <= 0:
            return 1.0
        share = _share_above(p_mt, valid, threshold)
        self._record("consistency/confident_share", share)
        return share

    @torch.no_grad()
    def guess_labels(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's probabilities (B, C, h, w) on the two views `batch["pixel_values_a"]` and `["..._b"]`.

        The one place where guessed labels come from: override it to use another teacher (a frozen model, an
        ensemble, or, in tests, the ground truth as an oracle). `batch` holds every key the unlabeled stream
        yields, stacked over the unlabeled batch and on the training device. Default: one forward of the EMA
        teacher (in eval mode, never trained) over both views, softmax in float32."""
        u_a, u_b = batch["pixel_values_a"], batch["pixel_values_b"]
        logits = logits_at(self.teacher.model(pixel_values=torch.cat([u_a, u_b])), u_a.shape[-2:])
        return logits.float().softmax(dim=1).chunk(2)

    @torch.no_grad()
    def mixed_batch(self) -> dict[str, torch.Tensor]:
        """u_m = CutMix(u_a, u_b), the guessed label p_mt = CutMix(p_t(u_a), p_t(u_b)) with the same mask, the
        owner map and `valid`: the pixels of u_m that are image, not padding, in the view they come from. Draws
        the next unlabeled batch and CutMix boxes (from the trainer's generator); probes and tests call it to see
        what one step trains on."""
        batch = self._next_unlabeled()
        u_a, u_b = batch["pixel_values_a"], batch["pixel_values_b"]
        boxes = sample_cutmix_boxes(u_a.shape[0], u_a.shape[2], u_a.shape[3], num_boxes=self.args.cutmix_boxes,
                                    generator=self.generator, device=u_a.device)
        p_a, p_b = self.guess_labels(batch)
        self._record("cutmix/coverage", boxes.mask.mean())
        self._record("ema/decay", torch.tensor(self.teacher.decay))
        union = boxes.mask[:, 0] > 0.5
        valid = torch.where(union, batch["valid_b"], batch["valid_a"])
        s_a, s_b = self.student_views(u_a, u_b)
        return {"u_m": cutmix(s_a, s_b, boxes.mask.to(u_a.dtype)), "p_mt": cutmix(p_a, p_b, boxes.mask),
                "owner": boxes.owner, "valid": valid}

    def student_views(self, u_a: torch.Tensor, u_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the student sees of the two views: the same pixels as the teacher, or, with `student_jitter` /
        `student_grayscale_prob`, their strong views (same geometry, so the guessed label stays aligned)."""
        args: SCLTrainingArguments = self.args
        if args.student_jitter <= 0 and args.student_grayscale_prob <= 0:
            return u_a, u_b
        views = strong_view(torch.cat([u_a, u_b]), jitter=args.student_jitter,
                            grayscale_prob=args.student_grayscale_prob, generator=self.generator)
        return views.chunk(2)

    def _next_unlabeled(self) -> dict[str, torch.Tensor]:
        """The next `unlabeled_batch_size` pairs, stacked and on the device; `valid_a`/`valid_b` (B, h, w) bool
        are all True when the stream gives no padding map."""
        if self._unlabeled_iter is None:
            self._unlabeled_iter = iter(self.unlabeled_dataset)
        pairs = []
        for _ in range(self.args.unlabeled_batch_size):
            try:
                pairs.append(next(self._unlabeled_iter))
            except StopIteration:
                raise RuntimeError("the unlabeled stream ended; make it endless "
                                   "(UnlabeledPairStream(max_epochs=None))") from None
        batch = {key: torch.stack([p[key] for p in pairs]).to(self.args.device, non_blocking=True)
                 for key in pairs[0] if isinstance(pairs[0][key], torch.Tensor)}
        for view in ("a", "b"):
            if f"valid_{view}" not in batch:
                pixels = batch[f"pixel_values_{view}"]
                batch[f"valid_{view}"] = torch.ones(pixels.shape[:1] + pixels.shape[2:], dtype=torch.bool,
                                                    device=pixels.device)
        return batch

    # ------------------------------------------------------------------ non-finite steps
    def _all_finite(self, tensors: list[torch.Tensor]) -> bool:
        finite = torch.stack([torch.isfinite(t.detach()).all() for t in tensors]).all().float()
        if self.args.world_size > 1:  # every rank must skip together, or DDP's gradient all-reduce hangs
            finite = self.accelerator.reduce(finite, reduction="min")
        return bool(finite.item())

    def _skip_step(self, supervised: torch.Tensor) -> torch.Tensor:
        """A loss whose backward reaches no parameter: their gradients stay None and SGD leaves them (and its
        momentum) untouched. Its value is NaN, which Trainer's `logging_nan_inf_filter` keeps out of the logs."""
        self._nonfinite_in_a_row += 1
        limit = self.args.max_nonfinite_steps
        if self._nonfinite_in_a_row >= limit:
            raise RuntimeError(
                f"the loss was NaN or infinite for {limit} steps in a row (step {self.state.global_step}); "
                "lower the learning rate, check the inputs for NaN, or use bf16 instead of fp16"
            )
        warnings.warn(f"non-finite loss at step {self.state.global_step}: this step is skipped "
                      f"({self._nonfinite_in_a_row}/{limit} in a row)", stacklevel=2)
        return supervised.detach() * float("nan") + self._zero

    # ------------------------------------------------------------------ logging
    def _record(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        self._sums[name] = self._sums.get(name, 0.0) + value
        self._counts[name] = self._counts.get(name, 0) + 1

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._sums:  # a training log: add each term's mean since the last one
            for name in sorted(self._sums):
                mean = self._sums[name] / self._counts[name]
                if self.args.world_size > 1:  # on the device: NCCL reduces no CPU tensors
                    mean = self.accelerator.reduce(mean.reshape(1).to(self.args.device), reduction="mean")
                logs[name] = round(float(mean), 6)
            self._sums, self._counts = {}, {}
        super().log(logs, *args, **kwargs)

    # ------------------------------------------------------------------ evaluation with the teacher
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluate the teacher (or the student if `eval_with_teacher=False`); returns per-image confusion
        matrices (B, C, C) as the "predictions" so that only C² numbers per image are gathered."""
        inputs = self._prepare_inputs({k: v for k, v in inputs.items() if k != "image_id"})
        labels = inputs.get("labels")
        net = self.teacher.model if self.args.eval_with_teacher else model
        with torch.no_grad(), self.compute_loss_context_manager():
            logits = logits_at(net(pixel_values=inputs["pixel_values"]), inputs["pixel_values"].shape[-2:])
        if labels is None:
            return None, None, None
        ignore = getattr(getattr(self.model, "config", None), "semantic_loss_ignore_index", 255)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=ignore)
        if prediction_loss_only:
            return loss, None, None
        matrices = per_image_confusion(logits.argmax(dim=1), labels, logits.shape[1], ignore)
        return loss, matrices, torch.zeros(len(matrices), device=matrices.device)

    # ------------------------------------------------------------------ saving and resuming
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Checkpoints (`_internal_call`) hold the student; an explicit save exports the teacher (paper Table 3)
        and, with `push_to_hub`, pushes it like Trainer does (a failed push only warns)."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call)
        self._export(output_dir or self.args.output_dir)
        if self.args.push_to_hub:
            self._warn_on_failure("model save", lambda: self.push_to_hub(commit_message="Model save"))

    def create_model_card(self, **kwargs: Any) -> None:
        """sclseg's card in `output_dir/README.md` instead of Trainer's (which drops `mean_iou`): the paper, tags,
        every SCL hyper-parameter, the labeled/unlabeled counts and the latest evaluation (the newest
        `eval_mean_iou` of the log history; none before the first). Written at every export and push, so any
        model trained with SCLTrainer gets it. Trainer's keyword arguments (language, tags, ...) are ignored."""
        self._write_card(self.args.output_dir)

    def _write_card(self, folder: str) -> None:
        if not self.is_world_process_zero():
            return
        card = {"num_labeled": _length(self.train_dataset), "num_unlabeled": _length(self.unlabeled_dataset),
                **self.model_card_data}
        write_model_card(folder, self.latest_eval_metrics(), args=self.args, steps=self.state.global_step, **card)

    def latest_eval_metrics(self) -> dict[str, float]:
        """The newest logged evaluation that has an mIoU (`eval_mean_iou`, per-class IoU, ...); {} if none."""
        for entry in reversed(self.state.log_history):
            if "eval_mean_iou" in entry:
                return dict(entry)
        return {}

    def _export(self, output_dir: str) -> None:
        """The model users load into `output_dir`: the teacher (or the student with `eval_with_teacher=False`),
        the processor and the model card."""
        self._write_card(output_dir)
        if not self.args.eval_with_teacher:
            return super().save_model(output_dir, _internal_call=True)
        if self.args.should_save:
            os.makedirs(output_dir, exist_ok=True)
            self.teacher.model.save_pretrained(output_dir)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            with open(os.path.join(output_dir, "training_args.json"), "w") as f:
                f.write(self.args.to_json_string())  # to_dict() masks tokens
        self.accelerator.wait_for_everyone()

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:  # Trainer pickles the arguments with the token; ours never holds one
            torch.save(without_tokens(self.args), os.path.join(output_dir or self.args.output_dir, TRAINING_ARGS_NAME))

    def _save_checkpoint(self, model, trial):
        # Our state goes in first, so that it is part of the checkpoint whatever reads it next.
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        os.makedirs(folder, exist_ok=True)
        self._save_scl_state(folder)
        self._defer_push = True  # Trainer pushes before our marker exists; a Hub copy must be complete too
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._defer_push = False
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            mark_complete(folder, self.state.global_step)
        if self.args.push_to_hub:
            self._push_from_checkpoint(folder)

    def _save_scl_state(self, folder: str) -> None:
        stream = self.unlabeled_dataset if hasattr(self.unlabeled_dataset, "state_dict") else None
        rank = self.args.process_index
        save_rank_state(folder, rank, generator=self.generator, nonfinite=self._nonfinite_in_a_row, stream=stream)
        if self.args.should_save:
            save_teacher(folder, self.teacher)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        check_checkpoint_complete(resume_from_checkpoint)
        load_teacher(resume_from_checkpoint, self.teacher)
        self._nonfinite_in_a_row = load_rank_state(resume_from_checkpoint, self.args.process_index,
                                                   generator=self.generator, stream=self.unlabeled_dataset)
        self._unlabeled_iter = None  # a new iterator starts where the loaded stream state says

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        """`resume_from_checkpoint`: True = the newest complete checkpoint of `output_dir`; a path; or a Hub repo
        `"user/run"` / `"user/run@revision"` whose `last-checkpoint/` is downloaded (at `hub_revision` when no
        revision is given) into `output_dir/_hub_resume/`."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"no complete checkpoint in {self.args.output_dir} to resume from")
        elif isinstance(resume_from_checkpoint, str) and (ref := parse_hub_checkpoint(resume_from_checkpoint)):
            resume_from_checkpoint = self._fetch_hub_checkpoint(ref)
        if self.is_world_process_zero():
            logger.info(self.method_summary())
        output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        self._push_unpushed_checkpoint()
        return output

    def method_summary(self) -> str:
        """One line naming the unlabeled terms of this run and their settings (the L_c reduction included)."""
        a: SCLTrainingArguments = self.args
        if not a.uses_unlabeled:
            return "SCLTrainer: supervised only (no unlabeled term)"
        parts = [f"λ_c={a.consistency_weight:g} (L_c {a.consistency_reduction} over classes"
                 + (f", confidence {a.consistency_confidence_threshold:g})" if a.consistency_confidence_threshold
                    else ")"),
                 f"λ_sc={a.structured_consistency_weight:g}", f"λ_u={a.pseudo_label_weight:g}",
                 f"boxes={a.cutmix_boxes}", f"pairs={getattr(self.unlabeled_dataset, 'pair_mode', 'as streamed')}",
                 f"ema={a.ema_decay:g}",
                 f"student view: jitter {a.student_jitter:g}, grey {a.student_grayscale_prob:g}",
                 f"padding {'masked' if a.mask_padding else 'kept'}"]
        return "SCLTrainer: " + ", ".join(parts)



def _length(dataset: object) -> int | None:
    """len(dataset), or None for a stream without one."""
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return None


def _maybe_sync_batch_norm(model: nn.Module | None, args: SCLTrainingArguments) -> nn.Module | None:
    """SyncBatchNorm across processes on CUDA (the paper: 8 GPUs, 1 + 1 images each); PyTorch's SyncBatchNorm
    has no CPU implementation, so CPU runs keep per-process statistics."""
    if model is not None and args.world_size > 1 and args.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


# Kept importable from here: tests and user code read these names from sclseg.trainer.
__all__ = ["COMPLETE_MARKER", "SCLTrainer", "check_checkpoint_complete", "last_complete_checkpoint", "logits_at"]
