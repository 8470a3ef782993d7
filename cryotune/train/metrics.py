"""Segmentation metrics from one confusion matrix over all evaluated pixels (Cryo-Bench protocol).

Pixels whose target equals the ignore index are left out. IoU_c = TP / (TP + FP + FN) x 100 and
mIoU is the mean over *all* classes, background included. A class absent from both prediction and
target scores 0 (IoU, F1, precision and recall) and still counts in the means: that is what
PANGAEA-bench's ``SegEvaluator`` (which Cryo-Bench runs) gives, since it divides by
``union + 1e-6``. Precision is TP / (TP + FP) and recall TP / (TP + FN); PANGAEA labels the two the
other way round (its matrix is indexed [prediction, target]), F1 and IoU are unaffected.
"""

from __future__ import annotations

import torch

from cryotune.errors import DataError


class ConfusionMatrix:
    """A (K, K) pixel count indexed [target, prediction], accumulated on the tensors' device."""

    def __init__(
        self, num_classes: int, ignore_index: int, device: torch.device | str | None = None
    ):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of class-id predictions and targets of the same shape."""
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction shape {tuple(prediction.shape)} != target shape {tuple(target.shape)}"
            )
        k = self.num_classes
        target = target.to(self.matrix.device, torch.int64)
        prediction = prediction.to(self.matrix.device, torch.int64)
        valid = target != self.ignore_index
        target, prediction = target[valid], prediction[valid]
        bad = (target < 0) | (target >= k)
        if bool(bad.any()):
            values = sorted(set(torch.unique(target[bad]).tolist()))
            raise DataError(
                f"mask holds class ids {values[:10]} outside 0..{k - 1} "
                f"(ignore index {self.ignore_index})"
            )
        self.matrix += torch.bincount(target * k + prediction, minlength=k * k).view(k, k)

    def update_from_logits(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of (B, K, H, W) logits scored by argmax against (B, H, W) targets."""
        self.update(logits.argmax(dim=1), target)

    def merge(self, other: ConfusionMatrix) -> None:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different class counts")
        self.matrix += other.matrix.to(self.matrix.device)

    def compute(self) -> dict:
        """Metrics in percent: miou, mf1, accuracy, and per class iou, f1, precision, recall;
        ``confusion`` is the pixel count matrix itself, as lists indexed [target][prediction]."""
        m = self.matrix.double().cpu()
        tp = m.diag()
        per_target = m.sum(dim=1)
        per_prediction = m.sum(dim=0)
        total = m.sum()

        def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
            return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num)) * 100

        iou = ratio(tp, per_target + per_prediction - tp)
        precision = ratio(tp, per_prediction)
        recall = ratio(tp, per_target)
        f1 = ratio(2 * tp, per_target + per_prediction)
        return {
            "miou": float(iou.mean()),
            "mf1": float(f1.mean()),
            "accuracy": float(tp.sum() / total * 100) if total > 0 else 0.0,
            "iou": iou.tolist(),
            "f1": f1.tolist(),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "pixels": int(total),
            "confusion": self.matrix.cpu().tolist(),
        }
