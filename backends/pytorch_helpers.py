"""Modules and functions that generated PyTorch files may need. The code generator copies the
definitions a network uses, by name, into the generated file (reading this file's text: it is never
imported by the compiler), so each generated file imports only torch."""

import math

import torch
from torch import nn
from torch.nn import functional as F


def make_divisible(v, divisor=8, min_value=None):
    """Round v to the nearest multiple of divisor, never below min_value nor 10% below v (MobileNet's rule)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ClassicConv(nn.Module):
    """A convolution as LeCun's early networks had it: padding with any value, one bias per output
    position (untied), and a table of the input maps each output map sees (partial connections)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 pad_value=0.0, table=None, untied_bias=None, bias=True):
        super().__init__()
        dims = len(kernel_size)
        self.conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]  # a function, not a submodule
        self.shape = (out_channels, in_channels // groups, *kernel_size)
        self.stride, self.dilation, self.groups = stride, dilation, groups
        pads = padding if isinstance(padding, tuple) else (padding,) * dims
        self.pads = [p for pair in reversed(pads) for p in (pair if isinstance(pair, tuple) else (pair, pair))]
        self.pad_value = pad_value
        self.table = table
        if table is None:
            self.weight = nn.Parameter(torch.empty(*self.shape))
            fan_in = math.prod(self.shape[1:])
        else:
            self.weight = nn.Parameter(torch.empty(sum(len(row) for row in table), *kernel_size))
            self.rows = [o for o, row in enumerate(table) for _ in row]
            self.cols = [i for row in table for i in row]
            fan_in = len(self.rows) / out_channels * math.prod(kernel_size)
        nn.init.uniform_(self.weight, -2.4 / math.sqrt(fan_in), 2.4 / math.sqrt(fan_in))  # LeCun et al. 1989
        if untied_bias is not None:
            self.bias = nn.Parameter(torch.zeros(out_channels, *untied_bias))
        elif bias:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter("bias", None)

    def full_weight(self):
        if self.table is None:
            return self.weight
        weight = self.weight.new_zeros(self.shape)
        weight[self.rows, self.cols] = self.weight
        return weight

    def forward(self, x):
        x = F.pad(x, self.pads, value=self.pad_value)
        x = self.conv(x, self.full_weight(), stride=self.stride, dilation=self.dilation, groups=self.groups)
        if self.bias is None:
            return x
        return x + (self.bias if self.bias.dim() > 1 else self.bias.view(-1, *[1] * (x.dim() - 2)))


class Subsample(nn.Module):
    """LeNet-5's subsampling (S2, S4): each map's window is summed, scaled by a learned coefficient and
    shifted by a learned bias."""

    def __init__(self, channels, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride or kernel_size
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        dims = x.dim() - 2
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[dims - 1]
        kernel = self.kernel_size if isinstance(self.kernel_size, tuple) else (self.kernel_size,) * dims
        total = pool(x, self.kernel_size, self.stride) * math.prod(kernel)  # the window's sum
        shape = (1, -1, *[1] * dims)
        return total * self.weight.view(shape) + self.bias.view(shape)


class ScaledTanh(nn.Module):
    """a * tanh(s * x): LeNet-5's squashing function (a = 1.7159, s = 2/3)."""

    def __init__(self, a=1.7159, s=2 / 3):
        super().__init__()
        self.a, self.s = a, s

    def forward(self, x):
        return self.a * torch.tanh(self.s * x)


class Slice(nn.Module):
    """x[start:stop] along an axis counted without the batch."""

    def __init__(self, start, stop=None, axis=0):
        super().__init__()
        self.start, self.stop, self.axis = start, stop, axis

    def forward(self, x):
        return x.narrow(self.axis + 1, self.start, (self.stop or x.shape[self.axis + 1]) - self.start)


class Select(nn.Module):
    """x[index] along an axis counted without the batch; the axis goes away (x[:, 0] for axis 0)."""

    def __init__(self, index, axis=0):
        super().__init__()
        self.index, self.axis = index, axis

    def forward(self, x):
        return x.select(self.axis + 1, self.index)


class Permute(nn.Module):
    """x.permute(*dims), as a module (torchvision's ConvNeXt blocks number theirs in an nn.Sequential)."""

    def __init__(self, dims):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return x.permute(*self.dims)


class LayerNorm2d(nn.LayerNorm):
    """nn.LayerNorm over the channels at each position of an NCHW map (torchvision's LayerNorm2d)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def center_crop(x, like):
    """The centre of x with the spatial size of `like` (U-Net's copy and crop)."""
    cuts = [slice((n - m) // 2, (n - m) // 2 + m) for n, m in zip(x.shape[2:], like.shape[2:])]
    return x[(slice(None), slice(None), *cuts)]


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle: (groups, channels / groups) -> transpose -> flatten."""
    batch, channels, *spatial = x.shape
    x = x.view(batch, groups, channels // groups, *spatial).transpose(1, 2)
    return x.reshape(batch, channels, *spatial)


class ChannelShuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return channel_shuffle(x, self.groups)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), laid out as torchvision.ops.SqueezeExcitation."""

    def __init__(self, channels, squeeze_channels, activation=nn.ReLU, gate=nn.Sigmoid, dims=2):
        super().__init__()
        pool, conv = {1: (nn.AdaptiveAvgPool1d, nn.Conv1d), 2: (nn.AdaptiveAvgPool2d, nn.Conv2d),
                      3: (nn.AdaptiveAvgPool3d, nn.Conv3d)}[dims]
        self.avgpool = pool(1)
        self.fc1 = conv(channels, squeeze_channels, 1)
        self.fc2 = conv(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = gate()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class RBF(nn.Module):
    """Euclidean radial basis units (LeNet-5's output): y_i = sum_j (x_j - w_ij)^2. The prototypes w are
    fixed, so they are a buffer, not a parameter."""

    def __init__(self, in_features, units):
        super().__init__()
        self.register_buffer("weight", torch.randint(0, 2, (units, in_features)).float() * 2 - 1)

    def forward(self, x):
        return ((x.unsqueeze(1) - self.weight) ** 2).sum(-1)


class PatchEmbed(nn.Conv2d):
    """Non-overlapping patches projected to tokens: a conv with kernel = stride = patch, flattened."""

    def __init__(self, in_channels, dim, patch):
        super().__init__(in_channels, dim, patch, stride=patch)

    def forward(self, x):
        return super().forward(x).flatten(2).transpose(1, 2)


class SelfAttention(nn.MultiheadAttention):
    """Multi-head self-attention on a batch-first token sequence."""

    def __init__(self, dim, heads, dropout=0.0, bias=True):
        super().__init__(dim, heads, dropout=dropout, bias=bias, batch_first=True)

    def forward(self, x):
        return super().forward(x, x, x, need_weights=False)[0]


class SpaceTimeTokens(nn.Module):
    """A (C, T, H, W) map as tokens: a learned class token, then every position (time, rows, columns), with
    MViT's separable space-time position embedding when `positions` (torchvision's PositionalEncoding)."""

    def __init__(self, dim, grid, positions=True):
        super().__init__()
        t, h, w = grid
        self.positions = positions
        self.class_token = nn.Parameter(torch.zeros(dim))
        if positions:
            self.spatial_pos = nn.Parameter(torch.zeros(h * w, dim))
            self.temporal_pos = nn.Parameter(torch.zeros(t, dim))
            self.class_pos = nn.Parameter(torch.zeros(dim))
        for p in self.parameters():
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], 1, -1), x], dim=1)
        if self.positions:
            pos = (self.temporal_pos[:, None] + self.spatial_pos[None]).reshape(-1, x.shape[2])
            x = x + torch.cat([self.class_pos[None], pos])
        return x


def pool_tokens(x, grid, pool, norm=None):
    """x (..., 1 + T H W, C), a class token and a T x H x W grid of tokens: the grid pooled as (C, T, H, W) maps,
    the class token put back in front, then `norm` on every token. Returns the tokens and the new grid."""
    lead, c = x.shape[:-2], x.shape[-1]
    grid_part = pool(x[..., 1:, :].transpose(-1, -2).reshape(-1, c, *grid))
    new_grid = tuple(grid_part.shape[2:])
    x = torch.cat([x[..., :1, :], grid_part.reshape(*lead, c, -1).transpose(-1, -2)], dim=-2)
    return (x if norm is None else norm(x)), new_grid


class TokenPool(nn.Module):
    """Max pooling over the grid of a class token + T x H x W tokens, the class token passed through (MViT's
    pool_skip)."""

    def __init__(self, grid, kernel, stride, padding):
        super().__init__()
        self.grid = tuple(grid)
        self.pool = nn.MaxPool3d(kernel, stride, padding)

    def forward(self, x):
        return pool_tokens(x, self.grid, self.pool)[0]


class TokenConvPool(nn.Module):
    """MViT's attention pooling of one of Q, K, V: a depthwise 3D conv over each head's grid (padding kernel // 2),
    then layer norm (torchvision's Pool, with its module names)."""

    def __init__(self, dim, kernel, stride, eps=1e-6):
        super().__init__()
        self.pool = nn.Conv3d(dim, dim, kernel, stride=stride, padding=[k // 2 for k in kernel], groups=dim,
                              bias=False)
        self.norm_act = nn.Sequential(nn.LayerNorm(dim, eps=eps))

    def forward(self, x, grid):
        return pool_tokens(x, grid, self.pool, self.norm_act)


def add_rel_pos(attn, q, q_grid, k_grid, rel_pos_h, rel_pos_w, rel_pos_t):
    """MViTv2's decomposed relative position bias, added to the scores between grid tokens (torchvision's
    _add_rel_pos, whose tables here always have the sizes the grids need)."""
    (qt, qh, qw), (kt, kh, kw) = q_grid, k_grid

    def distance(qn, kn):
        q_ratio, k_ratio = max(kn / qn, 1.0), max(qn / kn, 1.0)
        return (torch.arange(qn)[:, None] * q_ratio - (torch.arange(kn)[None, :] + (1.0 - kn)) * k_ratio).long()

    rh, rw, rt = rel_pos_h[distance(qh, kh)], rel_pos_w[distance(qw, kw)], rel_pos_t[distance(qt, kt)]
    b, heads, _, dim = q.shape
    r_q = q[:, :, 1:].reshape(b, heads, qt, qh, qw, dim)
    rel_h = torch.einsum("bythwc,hkc->bythwk", r_q, rh)
    rel_w = torch.einsum("bythwc,wkc->bythwk", r_q, rw)
    r_q = r_q.permute(2, 0, 1, 3, 4, 5).reshape(qt, b * heads * qh * qw, dim)
    rel_t = torch.matmul(r_q, rt.transpose(1, 2)).transpose(0, 1)
    rel_t = rel_t.view(b, heads, qh, qw, qt, kt).permute(0, 1, 4, 2, 3, 5)
    rel = (rel_h[:, :, :, :, :, None, :, None] + rel_w[:, :, :, :, :, None, None, :]
           + rel_t[:, :, :, :, :, :, None, None]).reshape(b, heads, qt * qh * qw, kt * kh * kw)
    attn[:, :, 1:, 1:] += rel
    return attn


class PoolingAttention(nn.Module):
    """Multi-head pooling attention on a class token + T x H x W grid of tokens (MViT; torchvision's
    MultiscaleAttention): Q, K, V each pooled over the grid where their kernel or stride is not 1, MViTv2's
    relative position bias and pooled-query residual when asked."""

    def __init__(self, dim, out, heads, grid, kernel_q=1, stride_q=1, kernel_kv=1, stride_kv=1,
                 residual_pool=False, rel_pos=False, eps=1e-6, dropout=0.0):
        super().__init__()
        kernel_q, stride_q, kernel_kv, stride_kv = (v if isinstance(v, (tuple, list)) else (v,) * 3
                                                    for v in (kernel_q, stride_q, kernel_kv, stride_kv))
        head_dim = out // heads
        self.heads, self.grid, self.residual_pool = heads, tuple(grid), residual_pool
        self.scale = 1.0 / math.sqrt(head_dim)
        self.qkv = nn.Linear(dim, 3 * out)
        self.project = nn.Sequential(nn.Linear(out, out), *([nn.Dropout(dropout, inplace=True)] if dropout else []))
        self.pool_q = self.pool_k = self.pool_v = None
        if math.prod(kernel_q) > 1 or math.prod(stride_q) > 1:
            self.pool_q = TokenConvPool(head_dim, kernel_q, stride_q, eps)
        if math.prod(kernel_kv) > 1 or math.prod(stride_kv) > 1:
            self.pool_k = TokenConvPool(head_dim, kernel_kv, stride_kv, eps)
            self.pool_v = TokenConvPool(head_dim, kernel_kv, stride_kv, eps)
        self.rel_pos_h = self.rel_pos_w = self.rel_pos_t = None
        if rel_pos:
            size = max(grid[1:])
            spatial = 2 * max(size // stride_q[1], size // stride_kv[1]) - 1
            self.rel_pos_h = nn.Parameter(nn.init.trunc_normal_(torch.empty(spatial, head_dim), std=0.02))
            self.rel_pos_w = nn.Parameter(nn.init.trunc_normal_(torch.empty(spatial, head_dim), std=0.02))
            self.rel_pos_t = nn.Parameter(nn.init.trunc_normal_(torch.empty(2 * grid[0] - 1, head_dim), std=0.02))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).transpose(1, 3).unbind(dim=2)
        q_grid = k_grid = self.grid
        if self.pool_k is not None:
            k, k_grid = self.pool_k(k, self.grid)
            v = self.pool_v(v, self.grid)[0]
        if self.pool_q is not None:
            q, q_grid = self.pool_q(q, self.grid)
        attn = torch.matmul(self.scale * q, k.transpose(2, 3))
        if self.rel_pos_h is not None:
            attn = add_rel_pos(attn, q, q_grid, k_grid, self.rel_pos_h, self.rel_pos_w, self.rel_pos_t)
        x = torch.matmul(attn.softmax(dim=-1), v)
        if self.residual_pool:
            x[:, :, 1:] += q[:, :, 1:]
        return self.project(x.transpose(1, 2).reshape(b, x.shape[2], -1))


class StochasticDepth(nn.Module):
    """Drops the whole input per sample (row) or per batch while training (Huang et al. 2016)."""

    def __init__(self, p, mode="row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


def patch_merge(x):
    """Each 2x2 group of positions of (..., H, W, C) concatenated: (..., H/2, W/2, 4C), odd sizes padded with
    zeros (torchvision's _patch_merging_pad)."""
    x = F.pad(x, (0, 0, 0, x.shape[-2] % 2, 0, x.shape[-3] % 2))
    parts = [x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]]
    return torch.cat(parts, dim=-1)


def shifted_window_attention(x, qkv_weight, proj_weight, bias, window, heads, shift, attention_dropout=0.0, dropout=0.0,
                             qkv_bias=None, proj_bias=None, logit_scale=None, training=False):
    """Self-attention within windows of a (N, H, W, C) map, shifted cyclically by `shift` (Swin; as torchvision's
    shifted_window_attention): padded to whole windows, no shift along an axis that one window covers, tokens
    the shift brought together from opposite borders masked apart. With `logit_scale`, Swin V2's scaled cosine
    attention (and no key bias)."""
    n, h, w, c = x.shape
    x = F.pad(x, (0, 0, 0, (window - w % window) % window, 0, (window - h % window) % window))
    _, ph, pw, _ = x.shape
    shifts = [0 if window >= ph else shift, 0 if window >= pw else shift]
    if sum(shifts) > 0:
        x = torch.roll(x, shifts=(-shifts[0], -shifts[1]), dims=(1, 2))
    windows = (ph // window) * (pw // window)
    x = x.view(n, ph // window, window, pw // window, window, c).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(n * windows, window * window, c)
    if logit_scale is not None and qkv_bias is not None:
        qkv_bias = qkv_bias.clone()
        qkv_bias[c:2 * c].zero_()
    qkv = F.linear(x, qkv_weight, qkv_bias)
    q, k, v = qkv.reshape(x.size(0), x.size(1), 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    if logit_scale is not None:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    else:
        attn = (q * (c // heads) ** -0.5).matmul(k.transpose(-2, -1))
    attn = attn + bias
    if sum(shifts) > 0:
        mask = x.new_zeros((ph, pw))
        count = 0
        for rows in ((0, -window), (-window, -shifts[0]), (-shifts[0], None)):
            for cols in ((0, -window), (-window, -shifts[1]), (-shifts[1], None)):
                mask[rows[0]:rows[1], cols[0]:cols[1]] = count
                count += 1
        mask = mask.view(ph // window, window, pw // window, window).permute(0, 2, 1, 3).reshape(windows, -1)
        mask = mask.unsqueeze(1) - mask.unsqueeze(2)
        mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        attn = attn.view(n, windows, heads, x.size(1), x.size(1)) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, x.size(1), x.size(1))
    attn = F.dropout(F.softmax(attn, dim=-1), p=attention_dropout, training=training)
    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), c)
    x = F.dropout(F.linear(x, proj_weight, proj_bias), p=dropout, training=training)
    x = x.view(n, ph // window, pw // window, window, window, c).permute(0, 1, 3, 2, 4, 5).reshape(n, ph, pw, c)
    if sum(shifts) > 0:
        x = torch.roll(x, shifts=(shifts[0], shifts[1]), dims=(1, 2))
    return x[:, :h, :w, :].contiguous()


class ShiftedWindowAttention(nn.Module):
    """Shifted-window attention with a relative position bias (torchvision's ShiftedWindowAttention, square windows)."""

    def __init__(self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True, attention_dropout=0.0,
                 dropout=0.0):
        super().__init__()
        self.window_size, self.shift_size, self.num_heads = window_size, shift_size, num_heads
        self.attention_dropout, self.dropout = attention_dropout, dropout
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.define_relative_position_bias_table()
        w = window_size
        coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)
        self.register_buffer("relative_position_index", (relative[:, :, 0] * (2 * w - 1) + relative[:, :, 1]).flatten())

    def define_relative_position_bias_table(self):
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * self.window_size - 1) ** 2, self.num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self, table):
        n = self.window_size ** 2
        return table[self.relative_position_index].view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x):
        return shifted_window_attention(x, self.qkv.weight, self.proj.weight,
                                        self.position_bias(self.relative_position_bias_table), self.window_size,
                                        self.num_heads, self.shift_size, self.attention_dropout, self.dropout,
                                        self.qkv.bias, self.proj.bias, training=self.training)


class ShiftedWindowAttentionV2(ShiftedWindowAttention):
    """Swin V2's window attention: scaled cosine attention, a position bias from a small MLP over log-spaced
    relative coordinates (torchvision's ShiftedWindowAttentionV2, square windows)."""

    def __init__(self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True, attention_dropout=0.0,
                 dropout=0.0):
        super().__init__(dim, window_size, shift_size, num_heads, qkv_bias, proj_bias, attention_dropout, dropout)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((num_heads, 1, 1))))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512, bias=True), nn.ReLU(inplace=True),
                                     nn.Linear(512, num_heads, bias=False))
        if qkv_bias:
            self.qkv.bias[dim:2 * dim].data.zero_()

    def define_relative_position_bias_table(self):
        w = self.window_size
        steps = torch.arange(-(w - 1), w, dtype=torch.float32)
        table = torch.stack(torch.meshgrid([steps, steps], indexing="ij")).permute(1, 2, 0).contiguous().unsqueeze(0)
        table = table / (w - 1) * 8  # normalised to -8 .. 8, then log-spaced
        self.register_buffer("relative_coords_table", torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0)

    def forward(self, x):
        bias = 16 * torch.sigmoid(self.position_bias(self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)))
        return shifted_window_attention(x, self.qkv.weight, self.proj.weight, bias, self.window_size, self.num_heads,
                                        self.shift_size, self.attention_dropout, self.dropout, self.qkv.bias,
                                        self.proj.bias, self.logit_scale, self.training)


def shifted_window_attention_3d(x, qkv_weight, proj_weight, bias, window, heads, shift, attention_dropout=0.0,
                                dropout=0.0, qkv_bias=None, proj_bias=None, training=False):
    """Self-attention within (shifted) windows of a (N, T, H, W, C) clip (Video Swin; as torchvision's
    shifted_window_attention_3d)."""
    n, t, h, w, c = x.shape
    pads = [(k - s % k) % k for s, k in zip((t, h, w), window)]
    x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    sizes = x.shape[1:4]
    if sum(shift) > 0:
        x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    grid = [s // k for s, k in zip(sizes, window)]
    windows, volume = grid[0] * grid[1] * grid[2], window[0] * window[1] * window[2]
    x = x.view(n, grid[0], window[0], grid[1], window[1], grid[2], window[2], c)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(n * windows, volume, c)
    q, k, v = F.linear(x, qkv_weight, qkv_bias).reshape(x.size(0), volume, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (c // heads) ** -0.5).matmul(k.transpose(-2, -1)) + bias
    if sum(shift) > 0:
        mask = x.new_zeros(*sizes)
        count = 0
        slices = [((0, -k), (-k, -s), (-s, None)) for k, s in zip(window, shift)]
        for d in slices[0]:
            for r in slices[1]:
                for col in slices[2]:
                    mask[d[0]:d[1], r[0]:r[1], col[0]:col[1]] = count
                    count += 1
        mask = mask.view(grid[0], window[0], grid[1], window[1], grid[2], window[2])
        mask = mask.permute(0, 2, 4, 1, 3, 5).reshape(windows, volume)
        mask = mask.unsqueeze(1) - mask.unsqueeze(2)
        mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        attn = attn.view(n, windows, heads, volume, volume) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, volume, volume)
    attn = F.dropout(F.softmax(attn, dim=-1), p=attention_dropout, training=training)
    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), volume, c)
    x = F.dropout(F.linear(x, proj_weight, proj_bias), p=dropout, training=training)
    x = x.view(n, grid[0], grid[1], grid[2], window[0], window[1], window[2], c)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(n, *sizes, c)
    if sum(shift) > 0:
        x = torch.roll(x, shifts=tuple(shift), dims=(1, 2, 3))
    return x[:, :t, :h, :w, :].contiguous()


class ShiftedWindowAttention3d(nn.Module):
    """Video Swin's window attention over (T, H, W) windows (torchvision's ShiftedWindowAttention3d): a window no
    shorter than its axis shrinks to it, unshifted, and takes the top-left corner of the position index."""

    def __init__(self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True, attention_dropout=0.0,
                 dropout=0.0):
        super().__init__()
        self.window_size, self.shift_size, self.num_heads = list(window_size), list(shift_size), num_heads
        self.attention_dropout, self.dropout = attention_dropout, dropout
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        d, h, w = self.window_size
        table = (2 * d - 1) * (2 * h - 1) * (2 * w - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(d), torch.arange(h), torch.arange(w), indexing="ij"))
        relative = coords.flatten(1)[:, :, None] - coords.flatten(1)[:, None, :]
        relative = relative.permute(1, 2, 0) + torch.tensor([d - 1, h - 1, w - 1])
        index = relative[:, :, 0] * (2 * h - 1) * (2 * w - 1) + relative[:, :, 1] * (2 * w - 1) + relative[:, :, 2]
        self.register_buffer("relative_position_index", index)

    def forward(self, x):
        window, shift = self.window_size.copy(), self.shift_size.copy()
        for i, size in enumerate(x.shape[1:4]):
            if size <= window[i]:
                window[i], shift[i] = size, 0
        volume = window[0] * window[1] * window[2]
        bias = self.relative_position_bias_table[self.relative_position_index[:volume, :volume].flatten()]
        bias = bias.view(volume, volume, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        return shifted_window_attention_3d(x, self.qkv.weight, self.proj.weight, bias, window, self.num_heads, shift,
                                           self.attention_dropout, self.dropout, self.qkv.bias, self.proj.bias,
                                           self.training)


class PartitionAttention(nn.Module):
    """MaxViT's attention within the groups of a window or grid partition of a (N, H, W, C) map, with a relative
    position bias over each group's size x size positions (torchvision's RelativePositionalMultiHeadAttention, with
    the partition and departition of its PartitionAttentionLayer around it). A window group is a size x size tile;
    a grid group holds the positions spaced H/size rows and W/size columns apart. As torchvision's, the keys are
    scaled by 1/sqrt(channels), not 1/sqrt(head channels)."""

    def __init__(self, dim, heads, size=7, partition="window"):
        super().__init__()
        self.heads, self.size, self.grid = heads, size, partition == "grid"
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.merge = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.empty((2 * size - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (size - 1)
        self.register_buffer("relative_position_index", relative[:, :, 0] * (2 * size - 1) + relative[:, :, 1])

    def forward(self, x):
        n, h, w, c = x.shape
        s, tokens = self.size, self.size * self.size
        if self.grid:  # rows a * (H/s) + r: the group is (r_h, r_w), the token (a_h, a_w)
            x = x.view(n, s, h // s, s, w // s, c).permute(0, 2, 4, 1, 3, 5)
        else:  # rows g * s + a: the group is the tile (g_h, g_w), the token (a_h, a_w)
            x = x.view(n, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5)
        qkv = self.to_qkv(x.reshape(n, -1, tokens, c)).view(n, -1, tokens, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5)
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        attn = q @ (k * c ** -0.5).transpose(-2, -1) + bias.view(tokens, tokens, -1).permute(2, 0, 1)
        out = self.merge((attn.softmax(dim=-1) @ v).transpose(2, 3).reshape(n, -1, tokens, c))
        out = out.view(n, h // s, w // s, s, s, c)  # (group rows, group columns, token rows, token columns)
        out = out.permute(0, 3, 1, 4, 2, 5) if self.grid else out.permute(0, 1, 3, 2, 4, 5)
        return out.reshape(n, h, w, c)
