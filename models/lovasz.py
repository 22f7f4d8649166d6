"""Lovász-softmax: a smooth surrogate of the Jaccard (IoU) loss, optimised directly.

Berman, Rannen Triki and Blaschko, "The Lovász-Softmax loss: a tractable surrogate for the
optimization of the intersection-over-union measure in neural networks", CVPR 2018, Alg. 1
and Eq. (12). For each class the pixels' errors ``|[y == c] - p_c|`` are sorted in
decreasing order and weighted by the gradient of the Lovász extension of that class's
Jaccard loss; the loss is the mean over the classes present in the batch ("present"
variant). At one-hot probabilities it equals the mean of ``1 - IoU`` over those classes,
computed over the whole batch as the validation mIoU is (not per image).
"""

from __future__ import annotations

import torch


def lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. the sorted errors.

    ``fg_sorted`` holds 1 for the class's pixels and 0 elsewhere, in the order of the
    errors sorted from largest to smallest.
    """
    total = fg_sorted.sum()
    intersection = total - fg_sorted.cumsum(0)
    union = total + (1 - fg_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász-softmax loss of NCHW class probabilities against NHW integer labels."""
    num_classes = probs.shape[1]
    flat = probs.permute(0, 2, 3, 1).reshape(-1, num_classes)
    labels = labels.reshape(-1)
    losses = []
    for c in range(num_classes):
        fg = (labels == c).to(flat.dtype)
        if fg.sum() == 0:  # a class absent from the batch has no IoU to improve
            continue
        errors = (fg - flat[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[order])))
    return torch.stack(losses).mean()
