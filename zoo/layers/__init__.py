"""Reusable attention blocks, one concept per file (as timm.layers)."""
from .cbam import CBAM, ChannelGate, SpatialGate, ZPool
from .triplet import TripletAttention, AttentionGate
from .halo import PaddedHaloAttn
