"""EfficientNet-Lite0 written with PyTorch's own operators (convolutions, un-fused batch norm,
ReLU6, TensorFlow SAME padding) over a state dict read by torch.load: the reference that the
Candle encoder is checked and benchmarked against. Used by scripts/reference-image-encoder and
scripts/bench-encoder."""

import pathlib
import tomllib

import torch
import torch.nn.functional as F

STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


def manifest_entry(name="efficientnet-lite0"):
    manifest = tomllib.loads(pathlib.Path("models/manifest.toml").read_text())
    return manifest["image_encoder"][name]


class EfficientNetLite:
    def __init__(self, entry):
        self.state = torch.load(pathlib.Path("models/weights") / entry["file"], map_location="cpu")

    @staticmethod
    def _same_pad(x, k, s):
        def pad(n):
            o = -(-n // s)
            return max((o - 1) * s + k - n, 0)
        ph, pw = pad(x.shape[2]), pad(x.shape[3])
        return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])

    def _conv_bn(self, x, conv, bn, stride=1, groups=1):
        st = self.state
        w = st[conv + ".weight"]
        x = F.conv2d(self._same_pad(x, w.shape[-1], stride), w, None, stride, 0, 1, groups)
        return F.batch_norm(x, st[bn + ".running_mean"], st[bn + ".running_var"],
                            st[bn + ".weight"], st[bn + ".bias"], False, 0.0, 1e-3)

    def features(self, x):
        """Pooled 1280-d features of normalised images (N, 3, H, W)."""
        x = F.relu6(self._conv_bn(x, "_conv_stem", "_bn0", 2))
        i = 0
        for repeats, _k, stride, expand, cin, cout in STAGES:
            for r in range(repeats):
                s, c = (stride, cin) if r == 0 else (1, cout)
                p = f"_blocks.{i}"
                h = x
                if expand != 1:
                    h = F.relu6(self._conv_bn(h, p + "._expand_conv", p + "._bn0"))
                h = F.relu6(self._conv_bn(h, p + "._depthwise_conv", p + "._bn1", s, c * expand))
                h = self._conv_bn(h, p + "._project_conv", p + "._bn2")
                x = h + x if (s == 1 and c == cout) else h
                i += 1
        x = F.relu6(self._conv_bn(x, "_conv_head", "_bn1"))
        return x.mean(dim=(2, 3))

    def probabilities(self, features):
        return torch.softmax(F.linear(features, self.state["_fc.weight"], self.state["_fc.bias"]), dim=-1)
