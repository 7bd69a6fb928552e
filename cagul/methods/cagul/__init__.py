"""CAGUL, the method the project is named after: a frozen VLM, a discriminator that flags the
forget people's images and a token encoder that rewrites their least-attended visual tokens.

One file per idea: `selection` (which tokens), `train_discriminator` (who is flagged),
`train_encoder` (how their tokens are rewritten), `objective` (what the rewrite is trained
towards); `train` is the loop over them, `adapter` the saved modules and their stacking, and
`method` CAGUL behind the `cagul.methods.base.Method` interface, which is how every consumer
uses it. This `__init__` imports nothing, so naming the package stays cheap.
"""
