"""U-Net as the paper describes it (Ronneberger et al. 2015, Figure 1 and Section 2), written out in plain
PyTorch as the reference for architectures/unet.cnn: the module names are the .cnn file's, so that the
generated model loads this one's state_dict, and its parameters and MACs are counted independently.
"""

from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Module):
    """Two 3x3 convolutions, each followed by a ReLU (unpadded in the paper: "unpadded convolutions")."""

    def __init__(self, cin: int, cout: int, padding: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=padding)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=padding)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))


class Down(nn.Module):
    """"a 2x2 max pooling operation with stride 2 for downsampling", then the two convolutions."""

    def __init__(self, cin: int, cout: int, padding: int):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(cin, cout, padding)

    def forward(self, x):
        return self.conv(self.pool(x))


class Up(nn.Module):
    """"an upsampling of the feature map followed by a 2x2 convolution ("up-convolution") that halves the
    number of feature channels, a concatenation with the correspondingly cropped feature map from the
    contracting path, and two 3x3 convolutions"."""

    def __init__(self, cin: int, cout: int, padding: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = DoubleConv(2 * cout, cout, padding)

    def forward(self, x, skip):
        x = self.up(x)
        top = (skip.shape[2] - x.shape[2]) // 2
        left = (skip.shape[3] - x.shape[3]) // 2
        skip = skip[:, :, top:top + x.shape[2], left:left + x.shape[3]]
        return self.conv(torch.cat([skip, x], dim=1))


class ReferenceUNet(nn.Module):
    def __init__(self, num_classes: int = 2, width: int = 64, padding: int = 0):
        super().__init__()
        w = width
        self.inc = DoubleConv(1, w, padding)
        self.down1, self.down2 = Down(w, 2 * w, padding), Down(2 * w, 4 * w, padding)
        self.down3, self.down4 = Down(4 * w, 8 * w, padding), Down(8 * w, 16 * w, padding)
        self.up1, self.up2 = Up(16 * w, 8 * w, padding), Up(8 * w, 4 * w, padding)
        self.up3, self.up4 = Up(4 * w, 2 * w, padding), Up(2 * w, w, padding)
        # "At the final layer a 1x1 convolution is used to map each 64-component feature vector to the desired
        # number of classes."
        self.outc = nn.Conv2d(w, num_classes, 1)

    def forward(self, x):
        s1 = self.inc(x)
        s2 = self.down1(s1)
        s3 = self.down2(s2)
        s4 = self.down3(s3)
        y = self.down4(s4)
        y = self.up4(self.up3(self.up2(self.up1(y, s4), s3), s2), s1)
        return self.outc(y)
