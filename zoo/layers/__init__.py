"""Reusable attention blocks, one concept per file (as timm.layers)."""
from .cbam import CBAM, ChannelGate, SpatialGate, ZPool
from .triplet import TripletAttention, AttentionGate
from .halo import PaddedHaloAttn
from .lkca import LargeKernelConvAttention, lkca_attention_matrix, lkca_fit_kernel
from .residual_attention import PreActBottleneck, ResidualAttentionModule, SoftMaskBranch
from .coat_attn import ConvPosEnc, ConvRelPosEnc, FactorAttnConvRelPosEnc
from .bra import BiLevelRoutingAttention, bra_gather_reference
