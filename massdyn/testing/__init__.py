"""Test kits that users of massdyn can reuse in their own tests.

``localhub``: a real Hub-compatible server (olah) on loopback serving tiny checkpoint series
built on the spot; ``synthetic``: those tiny GPT-NeoX series, with planted massive activations;
``curves``: noisy emergence series of known shape and peak (numpy only).
Nothing here is imported by the libraries themselves.
"""
