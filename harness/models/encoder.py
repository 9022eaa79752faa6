"""A BERT-style transformer encoder: token + position embeddings, post-LayerNorm blocks of
multi-head self-attention and a GELU feed-forward network, and a pooled classifier head."""

from __future__ import annotations

from harness.models.base import InputSpec, TorchModel, TransformerFacts

SIZES = {
    #            layers hidden heads  seq  vocab
    "bert_tiny": (2, 128, 2, 128, 1000),
    "bert_mini": (4, 256, 4, 128, 1000),
    "bert_base": (12, 768, 12, 128, 30522),
}


def encoder_facts(hidden: int, heads: int) -> TransformerFacts:
    """The encoder as onnxruntime.transformers' optimizer knows it: BERT's architecture ("bert")."""
    return TransformerFacts("bert", heads, hidden)


def build_encoder(
    name: str, batch: int = 1, layers: int = 2, hidden: int = 128, heads: int = 2, seq: int = 128, vocab: int = 1000
) -> TorchModel:
    if hidden % heads:
        raise ValueError(f"{name}: hidden size {hidden} is not divisible by {heads} heads")

    def factory():
        import torch
        import torch.nn as nn

        class SelfAttention(nn.Module):
            def __init__(self):
                super().__init__()
                self.qkv = nn.Linear(hidden, 3 * hidden)
                self.out = nn.Linear(hidden, hidden)

            def forward(self, x):
                b, s, _ = x.shape
                q, k, v = self.qkv(x).reshape(b, s, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
                scores = torch.matmul(q, k.transpose(-1, -2)) * (hidden // heads) ** -0.5
                ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
                return self.out(ctx.transpose(1, 2).reshape(b, s, hidden))

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = SelfAttention()
                self.ln1 = nn.LayerNorm(hidden)
                self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
                self.ln2 = nn.LayerNorm(hidden)

            def forward(self, x):
                x = self.ln1(x + self.attn(x))
                return self.ln2(x + self.ffn(x))

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.tok = nn.Embedding(vocab, hidden)
                self.pos = nn.Parameter(0.02 * torch.randn(1, seq, hidden))
                self.ln = nn.LayerNorm(hidden)
                self.blocks = nn.Sequential(*[Block() for _ in range(layers)])
                self.pool = nn.Linear(hidden, hidden)
                self.cls = nn.Linear(hidden, 2)

            def forward(self, input_ids):
                x = self.ln(self.tok(input_ids) + self.pos)
                x = self.blocks(x)
                return self.cls(torch.tanh(self.pool(x[:, 0])))

        return Encoder()

    inputs = [InputSpec("input_ids", (batch, seq), "int64", high=vocab)]
    return TorchModel(name, factory, inputs, transformer=encoder_facts(hidden, heads))
