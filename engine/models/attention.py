"""Additive attention gate (Oktay et al., Attention U-Net) for U-Net skip connections."""

from __future__ import annotations

from torch import Tensor, nn

from engine.models.norm import norm_layer


class AttentionGate(nn.Module):
    """Weight skip features by ``sigmoid(psi(relu(W_x skip + W_g gate)))`` in [0, 1].

    ``skip`` and ``gate`` must have the same spatial size (the decoder upsamples the gate
    first). With ``keep_attention = True`` the map of the last call is kept in
    ``last_attention`` for inspection (off by default: no state changes in forward).
    """

    def __init__(
        self, skip_ch: int, gate_ch: int, inter_ch: int | None = None, norm: str = "batch"
    ) -> None:
        super().__init__()
        inter = inter_ch or max(1, skip_ch // 2)
        self.w_skip = nn.Sequential(
            nn.Conv2d(skip_ch, inter, 1, bias=False), norm_layer(norm, inter)
        )
        self.w_gate = nn.Sequential(
            nn.Conv2d(gate_ch, inter, 1, bias=False), norm_layer(norm, inter)
        )
        self.psi = nn.Sequential(nn.Conv2d(inter, 1, 1), nn.Sigmoid())
        self.act = nn.ReLU(inplace=True)
        self.keep_attention = False
        self.last_attention: Tensor | None = None

    def forward(self, skip: Tensor, gate: Tensor) -> Tensor:
        attention = self.psi(self.act(self.w_skip(skip) + self.w_gate(gate)))
        if self.keep_attention:
            self.last_attention = attention.detach()
        return skip * attention
