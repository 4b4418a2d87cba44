"""Training losses (paper Section 3.4), all in the scaled domain.

* :func:`l1_loss` - the target loss L_T (Eq. 2): mean |P - T| over batch, bands and pixels.
* :func:`carl_loss` - the cloud-adaptive regularized loss (Eq. 3)::

      mean[(1 - M) |P - I| + M |P - T|] + lambda * mean|P - T|

  with P the prediction, T the cloud-free target, I the cloudy input and M the binary
  cloud-or-shadow mask broadcast over the bands.
"""

from __future__ import annotations

import torch


def l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Target loss: mean absolute error over batch, bands and pixels.

    Args:
        prediction: (B, 13, H, W) scaled prediction P.
        target: (B, 13, H, W) scaled cloud-free target T.

    Returns:
        Scalar tensor.
    """
    return (prediction - target).abs().mean()


def carl_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    cloudy: torch.Tensor,
    mask: torch.Tensor,
    lam: float = 1.0,
) -> torch.Tensor:
    """Cloud-adaptive regularized loss (CARL, paper Eq. 3).

    Args:
        prediction: (B, 13, H, W) scaled prediction P.
        target: (B, 13, H, W) scaled cloud-free target T.
        cloudy: (B, 13, H, W) scaled cloudy input I.
        mask: (B, 1, H, W) or (B, H, W) binary cloud-or-shadow mask M (1 = cloud or shadow),
            any numeric or bool dtype.
        lam: weight lambda of the target regularization term (paper: 1).

    Returns:
        Scalar tensor.
    """
    if mask.ndim == prediction.ndim - 1:
        mask = mask.unsqueeze(-3)
    m = mask.to(prediction.dtype)
    to_target = (prediction - target).abs()
    adaptive = ((1.0 - m) * (prediction - cloudy).abs() + m * to_target).mean()
    return adaptive + lam * to_target.mean()
