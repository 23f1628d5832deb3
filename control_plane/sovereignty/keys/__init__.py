"""In-region keys: envelope encryption of every secret at rest.

A key-encryption key (KEK) per region (``kek.py``) wraps a data key per organization and
region (``datakeys.py``), which encrypts secrets (``envelope.py``). Other domains store and
read secrets through ``control_plane.sovereignty.keys.service``.
"""
