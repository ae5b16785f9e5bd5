"""NumPy kernels that generated NumPy files may need: one function per op, with PyTorch's semantics.

The NumPy backend copies the definitions a network uses (and the helpers they call), by name, into the
generated file, reading this file's text; the compiler never imports it. Each generated file therefore
needs only numpy and the standard library. Tests import this module to check the kernels one by one.

Conventions:
- arrays are batch first, channels next (N, C, *spatial) or token sequences (N, T, D), float32;
- `conv` returns its result as a (N, O, *spatial) view of an (O, N, *spatial) array, the natural layout
  of its one matrix product; elementwise kernels keep that layout, and the next conv reads it with no
  copy (a 1x1 conv is then a plain matrix product). Reshaping kernels copy only when they must;
- kernels that accept `out=` write their result there (the generator passes the input itself when the
  network no longer needs it, so the step allocates nothing);
- no Python loop runs over pixels, channels or samples: windows are strided views
  (`sliding_window_view`); a convolution copies them once into a patch matrix and makes one matrix
  product per group (np.matmul over groups); pooling reduces them one kernel tap at a time.

Ops whose inference is one obvious NumPy expression are emitted inline by the generator rather than
called here: add and mul (`a + b`, `a * b`), concat (`np.concatenate`), slice and select (indexing), flatten
(`reshape`), pos_embedding (`x + p`), and dropout, stochastic depth and identity (the identity).
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class WeightError(KeyError, ValueError):
    """A weight given to load_state_dict is missing, unexpected, or of the wrong shape."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _numpy(value):
    """A weight as a NumPy array; a torch tensor is detached and brought to the CPU first."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    return np.asarray(value)


# ---------------------------------------------------------------- helpers


def _per_axis(value, n):
    """One int for every axis (an int is repeated)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _pairs(padding, n):
    """Padding as ((before, after), ...) per spatial axis, from an int, one int per axis, or pairs."""
    return tuple(p if isinstance(p, (tuple, list)) else (p, p) for p in _per_axis(padding, n))


def _channels_major(x):
    """True when x (N, C, ...) lies in memory as (C, N, ...), as conv returns its results."""
    return x.ndim > 2 and x.shape[0] > 1 and x.swapaxes(0, 1).flags.c_contiguous


def pad(x, padding, value=0.0):
    """x (N, C, *spatial) with `value` added around its spatial axes; padding is ((before, after), ...)
    per axis. The result keeps x's memory layout (channels-major stays channels-major)."""
    sizes = [size + before + after for size, (before, after) in zip(x.shape[2:], padding)]
    inside = tuple(slice(before, before + size) for size, (before, _) in zip(x.shape[2:], padding))
    if _channels_major(x):
        out = np.full((x.shape[1], x.shape[0], *sizes), value, dtype=x.dtype).swapaxes(0, 1)
    else:
        out = np.full((*x.shape[:2], *sizes), value, dtype=x.dtype)
    out[(slice(None), slice(None), *inside)] = x
    return out


def _windows(x, kernel, stride, dilation):
    """Strided view of x's sliding windows: (N, C, *out, *kernel) for x (N, C, *spatial); no copy."""
    d = len(kernel)
    extent = [dl * (k - 1) + 1 for k, dl in zip(kernel, dilation)]
    view = sliding_window_view(x, extent, axis=tuple(range(2, 2 + d)))
    steps = (*(slice(None, None, s) for s in stride), *(slice(None, None, dl) for dl in dilation))
    return view[(slice(None), slice(None), *steps)]


def _reduce_windows(windows, d, ufunc):
    """Reduce a view of windows (..., *kernel) over its d window axes with np.maximum or np.add, one
    kernel tap at a time: each step is one operation over the whole output (NumPy's own reductions over
    short strided axes run about ten times slower). The loop runs over the kernel's taps, not pixels."""
    taps = np.ndindex(*windows.shape[windows.ndim - d:])
    out = windows[(..., *next(taps))].copy()
    for tap in taps:
        ufunc(out, windows[(..., *tap)], out=out)
    return out


def _pooled_size(size, kernel, stride, padding, dilation, ceil_mode):
    """PyTorch's pooling output size, with the ceil-mode rule that drops a last window starting in the
    right padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, fill):
    """The windows of a pooling layer, (N, C, *out, *kernel), with `fill` in the padding (and past it,
    where ceil mode lets the last window overhang)."""
    d = x.ndim - 2
    kernel, stride = _per_axis(kernel, d), _per_axis(stride, d)
    padding, dilation = _per_axis(padding, d), _per_axis(dilation, d)
    outs, pads = [], []
    for size, k, s, p, dl in zip(x.shape[2:], kernel, stride, padding, dilation):
        out = _pooled_size(size, k, s, p, dl, ceil_mode)
        overhang = max(0, (out - 1) * s + dl * (k - 1) + 1 - (size + 2 * p))
        outs.append(out)
        pads.append((p, p + overhang))
    if any(before or after for before, after in pads):
        x = pad(x, pads, fill)
    windows = _windows(x, kernel, stride, dilation)
    return windows[(slice(None), slice(None), *(slice(0, o) for o in outs))]


# ---------------------------------------------------------------- convolution


def conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, pad_value=0.0):
    """Convolution of x (N, C, *spatial) with weight (O, C / groups, *kernel) over 1, 2 or 3 spatial
    axes, as torch.nn.functional.conv1d/2d/3d (cross-correlation). padding: an int, one per axis, or
    (before, after) pairs per axis (asymmetric "same"); pad_value fills the padding (LeCun 1989 pads
    with -1). bias: (O,), or one bias per output position (O, *out) ("untied").

    The windows are a strided view of the padded input; they are copied once into a patch matrix
    (groups, C / groups * kernel size, N * output positions) and multiplied by the weight matrix,
    one product per group (np.matmul over the group axis; groups = C is a depthwise conv).
    """
    d = x.ndim - 2
    stride, dilation, padding = _per_axis(stride, d), _per_axis(dilation, d), _pairs(padding, d)
    if any(before or after for before, after in padding):
        x = pad(x, padding, pad_value)
    n = len(x)
    out_channels, group_channels, *kernel = weight.shape
    by_channel = x.swapaxes(0, 1)  # (C, N, *spatial): a view; contiguous when x came from a conv
    if all(k == 1 for k in kernel):
        windows = by_channel[(slice(None), slice(None), *(slice(None, None, s) for s in stride))]
        out = windows.shape[2:]
        patches = windows.reshape(groups, group_channels, n * math.prod(out))
    else:
        windows = _windows(by_channel, kernel, stride, dilation)  # (C, N, *out, *kernel)
        out = windows.shape[2:2 + d]
        order = (0, *range(2 + d, 2 + 2 * d), 1, *range(2, 2 + d))  # (C, *kernel, N, *out)
        size = (groups, group_channels * math.prod(kernel), n * math.prod(out))
        patches = windows.transpose(order).reshape(size)  # the one copy: im2col
    y = np.matmul(weight.reshape(groups, out_channels // groups, -1), patches)
    y = y.reshape(out_channels, n, *out).swapaxes(0, 1)
    if bias is not None:
        y += bias if bias.ndim > 1 else bias.reshape(out_channels, *(1,) * d)
    return y


def conv_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """Transposed convolution of x (N, C, *spatial) with weight (C, O / groups, *kernel), as
    torch.nn.functional.conv_transpose1d/2d/3d: each kernel tap scatters the input, multiplied by the
    tap's (C, O) matrix, onto every stride-th output position; then `padding` is cut from both sides."""
    d = x.ndim - 2
    stride, dilation = _per_axis(stride, d), _per_axis(dilation, d)
    padding, output_padding = _per_axis(padding, d), _per_axis(output_padding, d)
    n, channels, *size = x.shape
    _, group_out, *kernel = weight.shape
    full = [(i - 1) * s + t * (k - 1) + 1 + op
            for i, s, t, k, op in zip(size, stride, dilation, kernel, output_padding)]
    y = np.zeros((n, group_out * groups, *full), dtype=np.result_type(x, weight))
    per_group = channels // groups
    for g in range(groups):
        xs = x[:, g * per_group:(g + 1) * per_group]
        for tap in np.ndindex(*kernel):
            w = weight[(slice(g * per_group, (g + 1) * per_group), slice(None), *tap)]  # (C / groups, O / groups)
            where = tuple(slice(t * dd, t * dd + (i - 1) * s + 1, s)
                          for t, dd, i, s in zip(tap, dilation, size, stride))
            y[(slice(None), slice(g * group_out, (g + 1) * group_out), *where)] += np.einsum(
                "nc...,co->no...", xs, w)
    y = y[(slice(None), slice(None), *(slice(p, f - p) for p, f in zip(padding, full)))]
    if bias is not None:
        y = y + bias.reshape(-1, *(1,) * d)
    return y


def connection_weight(weight, table, in_channels):
    """The dense weight (O, C, *kernel) of a conv with a connection table (LeCun 1989, LeNet-5's C3):
    `weight` holds one kernel per connection, row by row of the table; the other kernels are zero.
    Built once, when the weights are loaded."""
    rows = [o for o, inputs in enumerate(table) for _ in inputs]
    cols = [c for inputs in table for c in inputs]
    dense = np.zeros((len(table), in_channels, *weight.shape[1:]), dtype=weight.dtype)
    dense[rows, cols] = weight
    return dense


# ---------------------------------------------------------------- pooling


def maxpool(x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling as torch.nn.MaxPool1d/2d/3d: padding counts as -inf, ceil_mode rounds the output
    size up (dropping a last window that would start in the right padding)."""
    stride = kernel if stride is None else stride
    windows = _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, -np.inf)
    return _reduce_windows(windows, x.ndim - 2, np.maximum)


def avgpool(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling as torch.nn.AvgPool1d/2d/3d. A window's divisor counts the padding (when
    count_include_pad) but never the part of a ceil-mode window past the padding."""
    d = x.ndim - 2
    kernel = _per_axis(kernel, d)
    stride = kernel if stride is None else _per_axis(stride, d)
    padding = _per_axis(padding, d)
    windows = _pool_windows(x, kernel, stride, padding, 1, ceil_mode, 0.0)
    total = _reduce_windows(windows, d, np.add)
    divisor = np.ones((), dtype=x.dtype)
    for axis, (size, k, s, p) in enumerate(zip(x.shape[2:], kernel, stride, padding)):
        start = np.arange(total.shape[2 + axis]) * s - p
        end = np.minimum(start + k, size + p)
        count = end - start if count_include_pad else np.minimum(end, size) - np.maximum(start, 0)
        divisor = np.multiply.outer(divisor, count.astype(x.dtype))
    return total / divisor


def _adaptive_axis(x, axis, out, reduce):
    """Pool one axis of x to `out` positions with PyTorch's adaptive windows
    [floor(i * L / out), ceil((i + 1) * L / out))."""
    size = x.shape[axis]
    if size % out == 0:
        shape = (*x.shape[:axis], out, size // out, *x.shape[axis + 1:])
        return reduce(x.reshape(shape), axis=axis + 1)
    i = np.arange(out)
    start, end = i * size // out, -(-(i + 1) * size // out)
    longest = int((end - start).max())
    fill = -np.inf if reduce is np.max else 0.0
    tail = np.full((*x.shape[:axis], longest - 1, *x.shape[axis + 1:]), fill, dtype=x.dtype)
    windows = sliding_window_view(np.concatenate([x, tail], axis=axis), longest, axis=axis)
    windows = np.take(windows, start, axis=axis)  # (..., out, ..., longest)
    inside = np.arange(longest) < (end - start)[:, None]  # (out, longest)
    inside = inside.reshape(out, *(1,) * (x.ndim - axis - 1), longest)
    pooled = reduce(np.where(inside, windows, np.asarray(fill, dtype=x.dtype)), axis=-1)
    if reduce is np.mean:
        pooled = pooled * (longest / (end - start).astype(x.dtype)).reshape(out, *(1,) * (x.ndim - axis - 1))
    return pooled


def adaptive_avgpool(x, size):
    """Average pooling to a fixed output size, as torch.nn.AdaptiveAvgPool1d/2d/3d (axis by axis: the
    windows are boxes, so the mean over a box is a mean of means)."""
    for axis, out in enumerate(_per_axis(size, x.ndim - 2)):
        x = _adaptive_axis(x, 2 + axis, out, np.mean)
    return x


def adaptive_maxpool(x, size):
    """Max pooling to a fixed output size, as torch.nn.AdaptiveMaxPool1d/2d/3d (axis by axis)."""
    for axis, out in enumerate(_per_axis(size, x.ndim - 2)):
        x = _adaptive_axis(x, 2 + axis, out, np.max)
    return x


def global_avgpool(x):
    """The mean over every spatial position, keeping the axes (N, C, 1, ...)."""
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


def subsample(x, weight, bias, kernel=2, stride=None):
    """LeNet-5's subsampling (S2, S4): each window's sum, times a coefficient, plus a bias, per map."""
    d = x.ndim - 2
    kernel = _per_axis(kernel, d)
    windows = _windows(x, kernel, kernel if stride is None else _per_axis(stride, d), (1,) * d)
    total = _reduce_windows(windows, d, np.add)
    shape = (len(weight), *(1,) * d)
    return total * weight.reshape(shape) + bias.reshape(shape)


# ---------------------------------------------------------------- normalisation


def batchnorm(x, weight, bias, running_mean, running_var, eps=1e-5, out=None):
    """Batch normalisation at inference (running statistics), over the channel axis 1 of x (N, C, ...)."""
    scale = weight / np.sqrt(running_var + eps)
    shape = (len(scale), *(1,) * (x.ndim - 2))
    y = np.multiply(x, scale.reshape(shape), out=out)
    y += (bias - running_mean * scale).reshape(shape)
    return y


def layernorm(x, weight, bias, eps=1e-5):
    """Layer normalisation over the last axis (biased variance, as PyTorch)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    centred *= weight / np.sqrt(variance + eps)
    centred += bias
    return centred


def layernorm2d(x, weight, bias, eps=1e-6):
    """Layer normalisation over the channels (axis 1) at each position (torchvision's LayerNorm2d)."""
    shape = (1, -1, *(1,) * (x.ndim - 2))
    centred = x - x.mean(axis=1, keepdims=True)
    variance = np.mean(centred * centred, axis=1, keepdims=True)
    centred /= np.sqrt(variance + eps)
    return centred * weight.reshape(shape) + bias.reshape(shape)


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels, as torch.nn.LocalResponseNorm:
    x / (k + alpha / size * sum of x^2 over `size` neighbouring channels, zero-padded) ** beta."""
    squares = x * x
    padding = [(0, 0)] * x.ndim
    padding[1] = (size // 2, (size - 1) // 2)
    total = _reduce_windows(sliding_window_view(np.pad(squares, padding), size, axis=1), 1, np.add)
    return x / (k + alpha / size * total) ** beta


# ---------------------------------------------------------------- activations


def relu(x, out=None):
    """max(x, 0)."""
    return np.maximum(x, 0, out=out)


def relu6(x, out=None):
    """min(max(x, 0), 6)."""
    return np.clip(x, 0, 6, out=out)


def leaky_relu(x, slope=0.01):
    """x where x >= 0, slope * x elsewhere."""
    return np.where(x >= 0, x, x * np.float32(slope))


def tanh(x):
    return np.tanh(x)


def scaled_tanh(x, a=1.7159, s=2 / 3):
    """a * tanh(s * x): LeNet-5's squashing function."""
    return np.float32(a) * np.tanh(np.float32(s) * x)


def sigmoid(x):
    """1 / (1 + exp(-x)); exp overflows to inf for very negative x, which gives the right limit, 0."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def hardsigmoid(x):
    """relu6(x + 3) / 6."""
    return np.clip(x + 3, 0, 6) / 6


def silu(x):
    """x * sigmoid(x) (swish)."""
    return x * sigmoid(x)


def hardswish(x):
    """x * relu6(x + 3) / 6."""
    return x * (np.clip(x + 3, 0, 6) / 6)


# Chebyshev coefficients of erfc (Press et al., Numerical Recipes, 2nd ed., section 6.2, erfcc)
ERFC_COEFFICIENTS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
                     1.48851587, -0.82215223, 0.17087277)


def _erfc_of_positive(z):
    """erfc(z) for z >= 0 (Press et al.'s Chebyshev fit), using z's buffer as scratch space:
    erfc(z) = t exp(-z^2 + P(t)) with t = 1 / (1 + z / 2), P evaluated by Horner's rule in place."""
    t = 0.5 * z
    t += 1
    np.reciprocal(t, out=t)
    tail = np.full_like(t, ERFC_COEFFICIENTS[-1])
    for c in ERFC_COEFFICIENTS[-2::-1]:
        tail *= t
        tail += c
    z *= z
    tail -= z
    np.exp(tail, out=tail)
    tail *= t
    return tail


def erfc(x):
    """The complementary error function (NumPy has none), in x's precision: relative error below 1.2e-7
    everywhere in float64; erfc(-z) = 2 - erfc(z)."""
    y = _erfc_of_positive(np.abs(x))
    np.subtract(2, y, out=y, where=x < 0)
    return y


def gelu(x):
    """x * Phi(x) with the exact normal CDF (nn.GELU's default): Phi(-|x|) = erfc(|x| / sqrt(2)) / 2, and
    Phi(x) = 1 - Phi(-x)."""
    z = np.abs(x)
    z *= 1 / math.sqrt(2)
    phi = _erfc_of_positive(z)
    phi *= 0.5
    np.subtract(1, phi, out=phi, where=x >= 0)
    phi *= x
    return phi


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along a NumPy axis, shifted by the maximum so that exp never overflows."""
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


# ---------------------------------------------------------------- fully connected and composite layers


def linear(x, weight, bias=None):
    """x @ weight.T + bias, on a vector (N, F) or on every token of (N, T, F): one matrix product."""
    y = np.matmul(x.reshape(-1, x.shape[-1]), weight.T).reshape(*x.shape[:-1], len(weight))
    if bias is not None:
        y += bias
    return y


def upsample(x, size, mode="nearest", align_corners=False, scales=None):
    """F.interpolate of x (N, C, *spatial) to `size`: "nearest", or linear interpolation ("linear",
    "bilinear", "trilinear" are the same rule, one axis at a time). `scales`: the input/output ratio PyTorch
    uses per axis (1 / scale_factor when one was given), computed in float32 as PyTorch computes it."""
    for axis, out in enumerate(_per_axis(size, x.ndim - 2)):
        n = x.shape[2 + axis]
        ratio = np.float32(scales[axis] if scales else n / out)
        o = np.arange(out, dtype=np.float32)
        if mode == "nearest":
            x = np.take(x, np.minimum(np.floor(o * ratio).astype(np.int64), n - 1), axis=2 + axis)
            continue
        if align_corners:
            src = o * np.float32((n - 1) / (out - 1)) if out > 1 else np.zeros(out, np.float32)
        else:
            src = np.maximum((o + np.float32(0.5)) * ratio - np.float32(0.5), np.float32(0))
        lo = np.minimum(src.astype(np.int64), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        w = (src - lo).astype(x.dtype).reshape(-1, *(1,) * (x.ndim - 3 - axis))
        x = np.take(x, lo, axis=2 + axis) * (1 - w) + np.take(x, hi, axis=2 + axis) * w
    return x


def pixel_shuffle(x, factor):
    """(N, C*r*r, H, W) -> (N, C, H*r, W*r), as nn.PixelShuffle."""
    n, c, h, w = x.shape
    r = factor
    return x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (r * r), h * r, w * r)


def pixel_unshuffle(x, factor):
    """(N, C, H*r, W*r) -> (N, C*r*r, H, W), as nn.PixelUnshuffle."""
    n, c, h, w = x.shape
    r = factor
    return x.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * r * r, h // r, w // r)


def patch_merge(x):
    """Each 2x2 group of positions of (..., H, W, C) concatenated: (..., H/2, W/2, 4C) (Swin's patch merging)."""
    x = np.pad(x, [(0, 0)] * (x.ndim - 3) + [(0, x.shape[-3] % 2), (0, x.shape[-2] % 2), (0, 0)])
    parts = [x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]]
    return np.concatenate(parts, axis=-1)


def window_attention_3d(x, table, index, qkv_weight, qkv_bias, proj_weight, proj_bias, heads, window, shift):
    """Self-attention within (shifted) windows of a clip (N, T, H, W, C) (Video Swin): a window no shorter than
    its axis shrinks to it, unshifted, and takes the top-left corner of the position index."""
    n, *size, c = x.shape
    window = [min(s, k) for s, k in zip(size, window)]
    shift = [0 if s <= k else h for s, k, h in zip(size, window, shift)]
    volume = window[0] * window[1] * window[2]
    x = np.pad(x, [(0, 0)] + [(0, -s % k) for s, k in zip(size, window)] + [(0, 0)])
    padded = x.shape[1:4]
    if sum(shift):
        x = np.roll(x, [-s for s in shift], axis=(1, 2, 3))
    grid = [s // k for s, k in zip(padded, window)]
    t = x.reshape(n, grid[0], window[0], grid[1], window[1], grid[2], window[2], c)
    t = t.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, volume, c)
    qkv = linear(t, qkv_weight, qkv_bias).reshape(len(t), volume, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)
    attn = (qkv[0] * (c // heads) ** -0.5) @ qkv[1].transpose(0, 1, 3, 2)
    chosen = index.astype(np.int64)[:volume, :volume].reshape(-1)  # loaded as floats
    attn += table[chosen].reshape(volume, volume, heads).transpose(2, 0, 1)
    if sum(shift):
        mask = np.zeros(padded, dtype=x.dtype)
        count = 0
        parts = [((0, -k), (-k, -s), (-s, None)) for k, s in zip(window, shift)]
        for d in parts[0]:
            for r in parts[1]:
                for q in parts[2]:
                    mask[d[0]:d[1], r[0]:r[1], q[0]:q[1]] = count
                    count += 1
        mask = mask.reshape(grid[0], window[0], grid[1], window[1], grid[2], window[2])
        mask = mask.transpose(0, 2, 4, 1, 3, 5).reshape(-1, volume)
        mask = np.where(mask[:, None, :] != mask[:, :, None], -100.0, 0.0).astype(x.dtype)
        attn = (attn.reshape(n, len(mask), heads, volume, volume) + mask[None, :, None]).reshape(attn.shape)
    out = (softmax(attn, axis=-1) @ qkv[2]).transpose(0, 2, 1, 3).reshape(len(t), volume, c)
    out = linear(out, proj_weight, proj_bias)
    out = out.reshape(n, *grid, *window, c).transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(n, *padded, c)
    if sum(shift):
        out = np.roll(out, shift, axis=(1, 2, 3))
    return np.ascontiguousarray(out[:, :size[0], :size[1], :size[2]])


def window_attention(x, table, index, qkv_weight, qkv_bias, proj_weight, proj_bias, heads, window, shift=0,
                     logit_scale=None, cpb=None):
    """Self-attention within (shifted) windows of (N, H, W, C), with a relative position bias (Swin). With
    `logit_scale` and `cpb` (the bias MLP's weights, over the coordinates `table`): Swin V2's scaled cosine
    attention, no key bias, and the bias 16 sigmoid(MLP(table))."""
    n, h, w, c = x.shape
    if cpb is not None:
        table = np.maximum(table.reshape(-1, 2) @ cpb[0].T + cpb[1], 0) @ cpb[2].T
    bias = table[index.astype(np.int64)].reshape(window * window, window * window, heads).transpose(2, 0, 1)
    if cpb is not None:
        bias = 16 / (1 + np.exp(-bias))
    if logit_scale is not None and qkv_bias is not None:
        qkv_bias = qkv_bias.copy()
        qkv_bias[c:2 * c] = 0
    x = np.pad(x, ((0, 0), (0, -h % window), (0, -w % window), (0, 0)))
    ph, pw = x.shape[1:3]
    shifts = (0 if window >= ph else shift, 0 if window >= pw else shift)
    if sum(shifts):
        x = np.roll(x, (-shifts[0], -shifts[1]), axis=(1, 2))
    rows, cols, size = ph // window, pw // window, window * window
    t = x.reshape(n, rows, window, cols, window, c).transpose(0, 1, 3, 2, 4, 5).reshape(-1, size, c)
    qkv = linear(t, qkv_weight, qkv_bias).reshape(len(t), size, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)
    if logit_scale is not None:
        q, k = (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12) for v in qkv[:2])
        attn = (q @ k.transpose(0, 1, 3, 2)) * np.exp(np.minimum(logit_scale, np.log(100.0)))
    else:
        attn = (qkv[0] * (c // heads) ** -0.5) @ qkv[1].transpose(0, 1, 3, 2)
    attn += bias
    if sum(shifts):
        mask = np.zeros((ph, pw), dtype=x.dtype)
        count = 0
        for r in ((0, -window), (-window, -shifts[0]), (-shifts[0], None)):
            for q in ((0, -window), (-window, -shifts[1]), (-shifts[1], None)):
                mask[r[0]:r[1], q[0]:q[1]] = count
                count += 1
        mask = mask.reshape(rows, window, cols, window).transpose(0, 2, 1, 3).reshape(rows * cols, size)
        mask = np.where(mask[:, None, :] != mask[:, :, None], -100.0, 0.0).astype(x.dtype)
        attn = (attn.reshape(n, rows * cols, heads, size, size) + mask[None, :, None]).reshape(attn.shape)
    out = (softmax(attn, axis=-1) @ qkv[2]).transpose(0, 2, 1, 3).reshape(len(t), size, c)
    out = linear(out, proj_weight, proj_bias)
    out = out.reshape(n, rows, cols, window, window, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, ph, pw, c)
    if sum(shifts):
        out = np.roll(out, shifts, axis=(1, 2))
    return np.ascontiguousarray(out[:, :h, :w])


def partition_attention(x, table, index, qkv_weight, qkv_bias, merge_weight, merge_bias, heads, size, grid=False):
    """Self-attention within the groups of a window or grid partition of (N, H, W, C), with a relative position bias
    (MaxViT, as torchvision's PartitionAttentionLayer): a window group is a size x size tile, a grid group the
    size x size positions spaced H/size and W/size apart. Keys scaled by 1/sqrt(C), as torchvision's."""
    n, h, w, c = x.shape
    s, tokens = size, size * size
    if grid:  # rows a * (H/s) + r: the group is (r_h, r_w), the token (a_h, a_w)
        t = x.reshape(n, s, h // s, s, w // s, c).transpose(0, 2, 4, 1, 3, 5)
    else:  # rows g * s + a: the group is the tile (g_h, g_w), the token (a_h, a_w)
        t = x.reshape(n, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5)
    t = t.reshape(-1, tokens, c)
    qkv = linear(t, qkv_weight, qkv_bias).reshape(len(t), tokens, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)
    attn = qkv[0] @ (qkv[1] * np.float32(c ** -0.5)).transpose(0, 1, 3, 2)
    attn += table[index.astype(np.int64).reshape(-1)].reshape(tokens, tokens, heads).transpose(2, 0, 1)
    out = (softmax(attn, axis=-1) @ qkv[2]).transpose(0, 2, 1, 3).reshape(len(t), tokens, c)
    out = linear(out, merge_weight, merge_bias).reshape(n, h // s, w // s, s, s, c)
    out = out.transpose(0, 3, 1, 4, 2, 5) if grid else out.transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(out.reshape(n, h, w, c))


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle: (groups, C / groups) -> transposed -> flattened."""
    n, c, *spatial = x.shape
    return x.reshape(n, groups, c // groups, *spatial).swapaxes(1, 2).reshape(n, c, *spatial)


def se(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation=relu, gate=sigmoid):
    """Squeeze-and-excitation (torchvision.ops.SqueezeExcitation): the channels' means through two 1x1
    convs (fc1, activation, fc2, gate) give a scale per channel, which multiplies x."""
    pooled = x.mean(axis=tuple(range(2, x.ndim)))  # (N, C)
    hidden = activation(linear(pooled, fc1_weight.reshape(len(fc1_weight), -1), fc1_bias))
    scale = gate(linear(hidden, fc2_weight.reshape(len(fc2_weight), -1), fc2_bias))
    return x * scale.reshape(*scale.shape, *(1,) * (x.ndim - 2))


def mlp(x, weight1, bias1, weight2, bias2, activation=gelu):
    """Two linear layers with an activation between (torchvision's MLPBlock; dropout is the identity)."""
    return linear(activation(linear(x, weight1, bias1)), weight2, bias2)


def rbf(x, weight):
    """Euclidean radial basis units: y_i = sum_j (x_j - w_ij)^2 for x (N, F), weight (units, F)."""
    difference = x[:, None, :] - weight
    return np.einsum("nuf,nuf->nu", difference, difference)


def patch_embed(x, weight, bias, patch):
    """ViT's patch embedding: non-overlapping patch x patch squares of x (N, C, H, W), each projected
    by weight (D, C, patch, patch) to a token: (N, H / patch * W / patch, D), tokens row by row."""
    n, c, h, w = x.shape
    rows, cols = h // patch, w // patch
    patches = x.reshape(n, c, rows, patch, cols, patch).transpose(0, 2, 4, 1, 3, 5)
    tokens = np.matmul(patches.reshape(n * rows * cols, -1), weight.reshape(len(weight), -1).T) + bias
    return tokens.reshape(n, rows * cols, len(weight))


def class_token(x, token):
    """Prepends the learned token (1, 1, D) to every sequence of x (N, T, D)."""
    return np.concatenate([np.broadcast_to(token, (len(x), 1, x.shape[2])), x], axis=1)


def attention(x, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, heads):
    """Multi-head self-attention on x (N, T, D), as torch.nn.MultiheadAttention(batch_first=True) with
    query = key = value = x: Q, K, V projections, softmax(Q K^T / sqrt(D / heads)) V per head, output
    projection. Biases may be None."""
    n, tokens, dim = x.shape
    qkv = linear(x, in_proj_weight, in_proj_bias).reshape(n, tokens, 3, heads, dim // heads)
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (N, heads, T, D / heads)
    scores = np.matmul(q * np.float32(1 / math.sqrt(dim // heads)), k.swapaxes(-1, -2))
    mixed = np.matmul(softmax(scores, axis=-1), v)  # (N, heads, T, D / heads)
    return linear(mixed.transpose(0, 2, 1, 3).reshape(n, tokens, dim), out_proj_weight, out_proj_bias)


def spacetime_tokens(x, class_token, spatial_pos=None, temporal_pos=None, class_pos=None):
    """A (N, C, T, H, W) map as tokens (N, 1 + T H W, C): the class token (C,), then every position (time, rows,
    columns); plus MViT's separable position embedding, temporal_pos[t] + spatial_pos[h W + w] (class_pos for
    the class token), when those tables are given."""
    n, c = x.shape[:2]
    grid = x.reshape(n, c, -1).transpose(0, 2, 1)
    tokens = np.concatenate([np.broadcast_to(class_token, (n, 1, c)), grid], axis=1)
    if spatial_pos is not None:
        pos = (temporal_pos[:, None] + spatial_pos[None]).reshape(-1, c)
        tokens += np.concatenate([class_pos[None], pos])
    return tokens


def _pool_tokens(x, grid, pool):
    """x (..., 1 + T H W, C), a class token and a T x H x W grid: pool(the grid as (M, C, T, H, W) maps), the class
    token put back in front. Returns the tokens and the new grid."""
    lead, c = x.shape[:-2], x.shape[-1]
    maps = pool(np.ascontiguousarray(x[..., 1:, :].swapaxes(-1, -2)).reshape(-1, c, *grid))
    rest = maps.reshape(*lead, c, -1).swapaxes(-1, -2)
    return np.concatenate([x[..., :1, :], rest], axis=-2), tuple(maps.shape[2:])


def token_pool(x, grid, kernel, stride, padding):
    """Max pooling over the grid of (N, 1 + T H W, C) tokens, the class token passed through (MViT's pool_skip)."""
    return _pool_tokens(x, grid, lambda maps: maxpool(maps, kernel, stride, padding))[0]


def _rel_distance(q, k):
    """MViTv2's index of the relative position of each query (q of them) and key (k) along one axis."""
    q_ratio, k_ratio = max(k / q, 1.0), max(q / k, 1.0)
    return (np.arange(q)[:, None] * q_ratio - (np.arange(k)[None, :] + (1.0 - k)) * k_ratio).astype(np.int64)


def pool_attention(x, grid, heads, qkv_weight, qkv_bias, proj_weight, proj_bias, pool_q=None, pool_k=None,
                   pool_v=None, rel_pos=None, residual_pool=False, eps=1e-6):
    """Multi-head pooling attention (MViT; torchvision's MultiscaleAttention) on (N, 1 + T H W, C) tokens, a class
    token and a `grid` of positions. pool_q, pool_k, pool_v: None, or (conv weight (D, 1, *kernel), layer-norm
    weight, bias, stride) that pool each head's queries, keys or values over the grid (depthwise conv padded by
    kernel // 2, then layer norm). rel_pos: None, or MViTv2's tables (h, w, t) of a decomposed relative position
    bias; residual_pool adds the pooled queries to the result (not to the class token's)."""
    n, tokens, _ = x.shape
    out = len(proj_weight)
    q, k, v = linear(x, qkv_weight, qkv_bias).reshape(n, tokens, 3, heads, out // heads).transpose(2, 0, 3, 1, 4)

    def pooled(t, spec):
        if spec is None:
            return t, tuple(grid)
        weight, norm_weight, norm_bias, stride = spec
        padding = [size // 2 for size in weight.shape[2:]]
        t, new_grid = _pool_tokens(t, grid, lambda maps: conv(maps, weight, None, stride, padding, groups=len(weight)))
        return layernorm(t, norm_weight, norm_bias, eps), new_grid

    k, k_grid = pooled(k, pool_k)
    v = pooled(v, pool_v)[0]
    q, q_grid = pooled(q, pool_q)
    scores = np.matmul(q * np.float32(1 / math.sqrt(out // heads)), k.swapaxes(-1, -2))
    if rel_pos is not None:
        (qt, qh, qw), (kt, kh, kw) = q_grid, k_grid
        rel_h, rel_w, rel_t = rel_pos
        r_q = q[:, :, 1:].reshape(n, heads, qt, qh, qw, -1)
        bias = (np.einsum("bythwc,hkc->bythwk", r_q, rel_h[_rel_distance(qh, kh)])[:, :, :, :, :, None, :, None]
                + np.einsum("bythwc,wkc->bythwk", r_q, rel_w[_rel_distance(qw, kw)])[:, :, :, :, :, None, None, :]
                + np.einsum("bythwc,tkc->bythwk", r_q, rel_t[_rel_distance(qt, kt)])[:, :, :, :, :, :, None, None])
        scores[:, :, 1:, 1:] += bias.reshape(n, heads, qt * qh * qw, kt * kh * kw)
    mixed = np.matmul(softmax(scores, axis=-1), v)  # (N, heads, 1 + pooled grid, D / heads)
    if residual_pool:
        mixed[:, :, 1:] += q[:, :, 1:]
    return linear(mixed.transpose(0, 2, 1, 3).reshape(n, mixed.shape[2], out), proj_weight, proj_bias)
