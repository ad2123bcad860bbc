"""Seeded parameter initialisation shared by the scorers.

Values are drawn on the generator's device and copied into the parameter, so a model's initial
values depend on the generator only, not on the device the module lives on.
"""

import torch

__all__ = ["normal_", "normal_linear_"]


def normal_(param, std, generator=None):
    """Fill ``param`` in place with N(0, std) draws from ``generator`` and return it.

    Examples
    --------
    >>> import torch
    >>> p = torch.nn.Parameter(torch.empty(2, 3))
    >>> a = normal_(p, 0.1, torch.Generator().manual_seed(0)).detach().clone()
    >>> b = normal_(p, 0.1, torch.Generator().manual_seed(0)).detach()
    >>> bool(torch.equal(a, b)), tuple(a.shape)
    (True, (2, 3))
    """
    device = generator.device if generator is not None else param.device
    draw = torch.randn(param.shape, generator=generator, device=device, dtype=param.dtype)
    with torch.no_grad():
        param.copy_(draw.mul_(std))
    return param


def normal_linear_(layer, std, generator=None):
    """N(0, std) weight of a linear ``layer`` from ``generator``, bias (if any) zero."""
    normal_(layer.weight, std, generator)
    if layer.bias is not None:
        with torch.no_grad():
            layer.bias.zero_()
    return layer
