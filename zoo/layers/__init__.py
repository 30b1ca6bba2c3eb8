"""Reusable attention blocks, one concept per file (as timm.layers)."""
from .gates import AttentionGate, ZPool, zpool
from .cbam import CBAM, ChannelGate, SpatialGate
from .triplet import TripletAttention
from .halo import PaddedHaloAttn, halo_attention
from .lkca import LargeKernelConvAttention, lkca_aggregate, lkca_attention_matrix, lkca_fit_kernel
from .pyramid import SimpleFeaturePyramid, simple_pyramid_level
from .residual_attention import PreActBottleneck, ResidualAttentionModule, SoftMaskBranch
from .coat_attn import ConvPosEnc, ConvRelPosEnc, FactorAttnConvRelPosEnc
from .bra import BiLevelRoutingAttention
from .lepe import AttentionLePE
from .na2d import NeighbourhoodAggregation, na2d_av, na2d_av_cf, na2d_av_nhwc, na2d_rpb, na2d_window
from .contmix import ContMix
from .conv_mlp import ChannelAffine, ConvGrnMlp, GlobalResponseNorm2d, ResDWConv
from .dilated_reparam import DilatedReparamBlock, merge_dilated_reparam_state
