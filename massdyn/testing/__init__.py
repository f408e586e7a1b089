"""Test kits that users of massdyn can reuse in their own tests.

``localhub``: a real Hub-compatible server (olah) on loopback serving tiny checkpoint series
built on the spot; ``synthetic``: those tiny GPT-NeoX series, with planted massive activations.
Nothing here is imported by the libraries themselves.
"""
